"""The pytest plugin for users' tests (`kdefer_async.pytest_plugin`).

Most tests write a small test file and run pytest on it in-process (``pytester``), as a user's
project would run: an empty conftest, ``pytest.mark.anyio``, anyio's own ``anyio_backend``. The
plugin is loaded explicitly (``-p kdefer_async.pytest_plugin``, its entry point blocked), so
these runs do not depend on which copy of the package metadata is installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

import kdefer_async as kd
from kdefer_async import pytest_plugin
from kdefer_async.pytest_plugin import Report, find_reports
from kdefer_async.testing import BACKEND_NAMES

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
#: The plugin under its module name; the entry point's name is blocked, so that an installed
#: entry point does not register it a second time. Hypothesis's plugin is left out: pytester
#: unloads what a run imported, and it imports hypothesis anew in each run (a second each).
PLUGIN = ("-p", "no:kdefer_async", "-p", "kdefer_async.pytest_plugin", "-p", "no:hypothesispytest")
#: Every warning is an error, as in this project's own configuration, except pytest's note
#: that the plugin module (imported by this file) cannot be rewritten: it has no asserts.
ARGS = (
    *PLUGIN,
    "-p",
    "no:cacheprovider",
    "--strict-markers",
    "-v",
    "-W",
    "error",
    "-W",
    "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning",
)

HAS_TRIO = importlib.util.find_spec("trio") is not None
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
#: anyio's default anyio_backend runs a test once per installed backend.
BACKENDS = ["asyncio", "trio"] if HAS_TRIO else ["asyncio"]

HEADER = """
import asyncio
import time

import anyio
import pytest

import kdefer_async as kd
from kdefer_async.testing import VirtualTimeEventLoop

pytestmark = pytest.mark.anyio


def loop_is_virtual():
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio.testing

        return isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    return isinstance(loop, VirtualTimeEventLoop)


def atomic_sleeper():
    # a tasklet whose callback returns an awaitable: "BUG: scheduling while atomic"
    return kd.Tasklet(lambda t: anyio.sleep(0))
"""


def run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    """Write *source* (after the common header) as ``test_user.py`` and run pytest on it."""
    pytester.makepyfile(test_user=HEADER + source)
    return pytester.runpytest_inprocess(*ARGS)


def each_backend(*lines: str) -> list[str]:
    """fnmatch patterns: each of *lines* on every default backend, in the order pytest runs
    them (anyio's anyio_backend is module-scoped: backend by backend); ``{b}`` in a line is
    the backend's name."""
    return [line.format(b=b) for b in BACKENDS for line in lines]


class TestKernelFixture:
    def test_boots_a_kernel_in_virtual_time_on_every_backend(
        self, pytester: pytest.Pytester
    ) -> None:
        """With an empty conftest, `kernel` is a booted Kernel on each of anyio's default
        backends; msleep(60_000) advances jiffies by a minute in no wall time; the test's task
        is a user task of the kernel; the kernel is shut down at teardown."""
        result = run(
            pytester,
            """
kernels = []


async def test_kernel(kernel):
    assert isinstance(kernel, kd.Kernel)
    assert kd.current_kernel() is kernel
    assert (kernel.nr_cpus, kernel.hz) == (4, 250)
    assert kd.in_task() and not kd.in_atomic()
    assert kd.current().comm == "pytest"
    assert loop_is_virtual()
    j0, t0 = kd.jiffies, time.monotonic()
    await kd.msleep(60_000)
    assert kd.jiffies - j0 >= 60 * 250
    assert time.monotonic() - t0 < 10
    kernels.append(kernel)


async def test_previous_kernel_was_shut_down():
    k = kernels.pop()
    assert k.dmesg()[-1].endswith("reboot: System halted")
    assert k.shutdown_report.reason == "normal"
""",
        )
        result.assert_outcomes(passed=2 * len(BACKENDS))
        result.stdout.fnmatch_lines(
            each_backend(
                "*::test_kernel?{b}? PASSED*", "*::test_previous_kernel_was_shut_down?{b}? PASSED*"
            )
        )

    def test_fixtures_that_use_the_kernel_share_it(self, pytester: pytest.Pytester) -> None:
        """An async fixture using `kernel` runs on the same loop and kernel, and its teardown
        (destroy_workqueue) runs before the kernel shuts down."""
        result = run(
            pytester,
            """
@pytest.fixture
async def wq(kernel):
    wq = kd.alloc_workqueue("test_wq", kd.WQ_UNBOUND, 0)
    yield wq
    await kd.destroy_workqueue(wq)


async def test_work(kernel, wq):
    done = []

    async def fn(work):
        await kd.msleep(1000)
        done.append(kd.current_kernel())

    work = kd.Work(fn)
    assert kd.queue_work(wq, work)
    assert await kd.flush_work(work)
    assert done == [kernel]
""",
        )
        result.assert_outcomes(passed=len(BACKENDS))

    def test_marker_options_apply_closest_first(self, pytester: pytest.Pytester) -> None:
        """nr_cpus and hz from the marker reach the Kernel; a function's marker adds to and
        overrides its class's, which adds to the module's; Kernel options such as
        sleep_in_atomic pass through."""
        result = run(
            pytester,
            """
pytestmark = [pytest.mark.anyio, pytest.mark.kdefer(nr_cpus=2)]


@pytest.mark.kdefer(hz=1000)
async def test_module_and_function(kernel):
    assert (kernel.nr_cpus, kernel.hz) == (2, 1000)
    assert kd.num_online_cpus() == 2
    assert kd.msecs_to_jiffies(1000) == 1000


@pytest.mark.kdefer(nr_cpus=3, sleep_in_atomic="report")
class TestClass:
    async def test_class(self, kernel):
        assert (kernel.nr_cpus, kernel.hz) == (3, 250)
        assert kernel.sleep_in_atomic == "report"

    @pytest.mark.kdefer(nr_cpus=1)
    async def test_method(self, kernel):
        assert (kernel.nr_cpus, kernel.hz, kernel.sleep_in_atomic) == (1, 250, "report")
""",
        )
        result.assert_outcomes(passed=3 * len(BACKENDS))

    def test_virtual_time_false_runs_on_real_time(self, pytester: pytest.Pytester) -> None:
        """With virtual_time=False the loop's clock is real: msleep(50) takes 50 ms of wall
        time."""
        result = run(
            pytester,
            """
@pytest.mark.kdefer(virtual_time=False, hz=1000)
async def test_real(kernel):
    assert not loop_is_virtual()
    t0 = time.monotonic()
    await kd.msleep(50)
    assert time.monotonic() - t0 >= 0.05
""",
        )
        result.assert_outcomes(passed=len(BACKENDS))

    @pytest.mark.skipif(not HAS_TRIO, reason="trio not installed")
    def test_the_users_anyio_backend_decides_the_backend(self, pytester: pytest.Pytester) -> None:
        """A conftest's anyio_backend is followed: "trio" alone runs the test on trio only,
        in virtual time by default."""
        pytester.makeconftest(
            """
import pytest

@pytest.fixture
def anyio_backend():
    return "trio"
"""
        )
        result = run(
            pytester,
            """
async def test_on_trio(kernel, anyio_backend_name):
    import trio

    assert anyio_backend_name == "trio"
    trio.lowlevel.current_task()  # raises outside trio
    assert loop_is_virtual()
""",
        )
        result.assert_outcomes(passed=1)

    def test_backend_options_are_kept_and_the_clock_follows_virtual_time(
        self, pytester: pytest.Pytester
    ) -> None:
        """Over a conftest's anyio_backend with kdefer_async's five backends, virtual time
        replaces each backend's clock (uvloop included), and virtual_time=False runs each on
        real time (uvloop stays uvloop)."""
        pytester.makeconftest(
            """
import importlib.util

import pytest

from kdefer_async.testing import BACKEND_NAMES, backend_params

NAMES = [
    n
    for n in BACKEND_NAMES
    if importlib.util.find_spec(n.split("+")[0]) and ("uvloop" not in n or importlib.util.find_spec("uvloop"))
]

@pytest.fixture(params=NAMES)
def anyio_backend(request):
    return backend_params(request.param)
"""
        )
        result = run(
            pytester,
            """
async def test_virtual(kernel):
    assert loop_is_virtual()


@pytest.mark.kdefer(virtual_time=False)
async def test_real(kernel, anyio_backend):
    assert not loop_is_virtual()
    if anyio_backend[1].get("use_uvloop"):
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
""",
        )
        names = [n for n in BACKEND_NAMES if HAS_TRIO or not n.startswith("trio")]
        names = [n for n in names if HAS_UVLOOP or "uvloop" not in n]
        result.assert_outcomes(passed=2 * len(names))

    def test_a_loop_started_earlier_on_other_time_is_reported(
        self, pytester: pytest.Pytester
    ) -> None:
        """An async fixture set up before `kernel` starts the loop on anyio_backend's real
        time: the kernel fixture fails and says what to do; listed after `kernel`, the same
        fixture runs on the kernel's virtual loop."""
        result = run(
            pytester,
            """
@pytest.fixture
async def early():
    yield loop_is_virtual()


async def test_early_first(early, kernel):
    pass


async def test_kernel_first(kernel, early):
    assert early is True
""",
        )
        result.assert_outcomes(passed=len(BACKENDS), errors=len(BACKENDS))
        result.stdout.fnmatch_lines(
            [
                "*ERROR at setup of test_early_first*",
                "*the kernel fixture wants virtual time (virtual_time=True), but this test's "
                "event loop runs on real time*List `kernel` first*",
            ]
        )

    def test_a_sync_test_is_refused(self, pytester: pytest.Pytester) -> None:
        """A plain `def` test cannot run in the kernel's event loop: the fixture says so."""
        result = run(
            pytester,
            """
def test_sync(kernel):
    pass
""",
        )
        result.assert_outcomes(errors=len(BACKENDS))
        result.stdout.fnmatch_lines(["*the test must be an `async def` test run by anyio*"])

    def test_tests_without_the_fixture_are_left_alone(self, pytester: pytest.Pytester) -> None:
        """The plugin changes nothing for a test that does not use `kernel`: anyio's default
        backend on real time, and a BUG it provokes in its own Kernel is its own business."""
        result = run(
            pytester,
            """
async def test_plain_anyio():
    assert not loop_is_virtual()


async def test_own_kernel_with_a_bug():
    async with kd.Kernel() as k:
        kd.tasklet_schedule(atomic_sleeper())
        await kd.msleep(10)
    assert any("BUG: scheduling while atomic" in line for line in k.dmesg())
""",
        )
        result.assert_outcomes(passed=2 * len(BACKENDS))


class TestMarker:
    def test_marker_is_registered(self, pytester: pytest.Pytester) -> None:
        """`pytest --markers` lists kdefer with its options (so --strict-markers accepts it)."""
        result = pytester.runpytest_inprocess(*PLUGIN, "--markers")
        result.stdout.fnmatch_lines(["@pytest.mark.kdefer(**options): *nr_cpus, hz*"])

    @pytest.mark.parametrize(
        ("marker", "message"),
        [
            (
                "kdefer(nr_cpu=2)",
                "unknown option 'nr_cpu'; the options are nr_cpus, hz, panic_on_oops, *, "
                "virtual_time, expect",
            ),
            ("kdefer(2)", "takes keyword options only, got the positional argument(s) 2"),
            ("kdefer(nr_cpus='2')", "Kernel() expects an int for 'nr_cpus', got str"),
            ("kdefer(hz=0)", "Kernel() expects * for 'hz', got 0"),
            ("kdefer(virtual_time='no')", "virtual_time expects True or False, got 'no'"),
            ("kdefer(expect=3)", "expect expects a str or a list of str, got int"),
            ("kdefer(expect=['BUG', ''])", "expect expects non-empty str, got ''"),
            ("kdefer(expect=[b'BUG'])", "expect expects non-empty str, got b'BUG'"),
        ],
    )
    def test_bad_marker_is_a_usage_error(
        self, pytester: pytest.Pytester, marker: str, message: str
    ) -> None:
        """A marker with an unknown option, a positional argument or a bad value stops pytest
        before any test runs, with a usage error naming the test and the option."""
        result = run(
            pytester,
            f"""
async def test_fine(kernel):
    pass


@pytest.mark.{marker}
async def test_marked(kernel):
    pass
""",
        )
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            [f"ERROR: @pytest.mark.kdefer on test_user.py::test_marked*: {message}"]
        )
        assert "passed" not in result.stdout.str()


class TestReportCheck:
    def test_an_unexpected_bug_fails_the_test_with_the_dmesg(
        self, pytester: pytest.Pytester
    ) -> None:
        """A BUG the test did not declare fails it: the report and the whole dmesg are in the
        failure message."""
        result = run(
            pytester,
            """
async def test_bug(kernel):
    kd.tasklet_schedule(atomic_sleeper())
    await kd.msleep(10)
""",
        )
        result.assert_outcomes(failed=len(BACKENDS))
        result.stdout.fnmatch_lines(
            [
                "*_ test_bug?*? _*",
                "the kernel logged 1 report the test did not expect, while the test ran:",
                "  BUG: scheduling while atomic: ksoftirqd/*",
                "*kdefer(expect=*kernel_reports.expect(*",
                "dmesg:",
                "*] Linux version *",
                "*BUG: scheduling while atomic*",
                "*Call Trace:*",
            ]
        )

    def test_declared_reports_pass(self, pytester: pytest.Pytester) -> None:
        """A report declared by the marker or by kernel_reports.expect() passes; the expected
        text is a substring of the report; kernel_reports.reports lists what was logged."""
        result = run(
            pytester,
            """
@pytest.mark.kdefer(expect=["BUG: scheduling while atomic"])
async def test_marker(kernel):
    kd.tasklet_schedule(atomic_sleeper())
    await kd.msleep(10)


async def test_method(kernel, kernel_reports):
    assert kernel_reports.reports == []
    kd.tasklet_schedule(atomic_sleeper())
    kd.WARN_ON(True)
    await kd.msleep(10)
    assert [r.kind for r in kernel_reports.reports] == ["WARNING", "BUG"]
    kernel_reports.expect("scheduling while atomic")
    kernel_reports.expect("WARNING: CPU")
    assert kernel_reports.expected == ("scheduling while atomic", "WARNING: CPU")
    assert kernel_reports.unexpected() == []


@pytest.mark.kdefer(expect="Kernel panic")
async def test_string_and_both(kernel, kernel_reports):
    kernel_reports.expect("Oops")
    kd.tasklet_schedule(kd.Tasklet(lambda t: 1 / 0))
    with pytest.raises(kd.NoKernelError, match="halted"):
        await kd.msleep(10)
""",
        )
        result.assert_outcomes(passed=3 * len(BACKENDS))

    def test_an_expected_report_that_never_came_fails_at_teardown(
        self, pytester: pytest.Pytester
    ) -> None:
        """A declared report that was never logged fails the test at teardown, naming it."""
        result = run(
            pytester,
            """
@pytest.mark.kdefer(expect=["BUG: scheduling while atomic"])
async def test_quiet(kernel):
    await kd.msleep(10)
""",
        )
        result.assert_outcomes(passed=len(BACKENDS), errors=len(BACKENDS))
        result.stdout.fnmatch_lines(
            [
                "*ERROR at teardown of test_quiet?*?*",
                "the test expected kernel reports that were never logged:",
                "  'BUG: scheduling while atomic'",
                "dmesg:",
                "*reboot: System halted",
            ]
        )

    def test_a_report_at_teardown_fails_the_test_at_teardown(
        self, pytester: pytest.Pytester
    ) -> None:
        """A report logged after the test ran (by a fixture's teardown, at shutdown) fails the
        test at teardown, with the whole dmesg, shutdown lines included."""
        result = run(
            pytester,
            """
@pytest.fixture
async def noisy(kernel):
    yield
    kd.WARN_ON(True)


async def test_noisy(kernel, noisy):
    timer = kd.TimerList(lambda t: None)
    kd.mod_timer(timer, kd.jiffies + 1000)  # still armed at shutdown: named in dmesg
""",
        )
        result.assert_outcomes(passed=len(BACKENDS), errors=len(BACKENDS))
        result.stdout.fnmatch_lines(
            [
                "*ERROR at teardown of test_noisy?*?*",
                "the kernel logged 1 report the test did not expect, while the test was torn down:",
                "  WARNING: CPU: * at *",
                "dmesg:",
                "*kdefer: shutdown:*timer*",
                "*reboot: System halted",
            ]
        )

    def test_a_failing_test_gets_the_dmesg_and_no_second_failure(
        self, pytester: pytest.Pytester
    ) -> None:
        """A test that fails by itself is reported once, with the dmesg attached; a kernel
        panic wakes the sleeping test with NoKernelError and the next test runs normally."""
        result = run(
            pytester,
            """
async def test_fails(kernel):
    kd.WARN_ON(True)
    assert False, "the test's own failure"


async def test_panics(kernel):
    kd.tasklet_schedule(kd.Tasklet(lambda t: 1 / 0))
    await kd.msleep(10)


async def test_after(kernel):
    await kd.msleep(10)
""",
        )
        result.assert_outcomes(failed=2 * len(BACKENDS), passed=len(BACKENDS))
        text = result.stdout.str()
        assert text.count("Captured kernel dmesg call") == 2 * len(BACKENDS)
        assert "did not expect" not in text
        result.stdout.fnmatch_lines(
            [
                "*AssertionError: the test's own failure*",
                "*Captured kernel dmesg call*",
                "*WARNING: CPU: *",
                "*NoKernelError: the kernel halted while task pytest/* slept in it*",
                "*Captured kernel dmesg call*",
                "*Kernel panic - not syncing: Fatal exception in interrupt*",
            ]
        )


class TestFindReports:
    @staticmethod
    def dmesg_of(main: object) -> list[str]:
        """The dmesg of a kernel that ran *main* (in virtual time)."""
        box: list[kd.Kernel] = []

        async def boot() -> None:
            box.append(kd.current_kernel())
            await main()  # type: ignore[operator]

        try:
            kd.run(boot, virtual_time=True)
        except kd.KernelPanic:
            pass
        return box[0].dmesg()

    def test_kinds_and_headlines(self) -> None:
        """WARN_ON, lockdep, BUG_ON, an oops in a work function, a BUG in a tasklet, an ODEBUG
        free and a panic are one report each, with their kind and headline."""

        class Holder:
            def __init__(self) -> None:
                self.work = kd.Work()

        async def main() -> None:
            kd.pr_info("BUGS ahead: none of this line is a report\n")
            kd.WARN_ON(True)
            lock = kd.SpinLock()
            kd.spin_lock(lock)
            with pytest.raises(kd.KernelBug):
                kd.spin_lock(lock)
            kd.spin_unlock(lock)
            with pytest.raises(kd.KernelBug):
                kd.BUG_ON(True)
            kd.schedule_work(kd.Work(lambda w: 1 / 0))
            await kd.msleep(10)
            kd.tasklet_schedule(kd.Tasklet(lambda t: anyio_sleep()))
            await kd.msleep(10)
            h = kd.kmalloc(Holder, kd.GFP_KERNEL)
            h.work = kd.Work(lambda w: None)
            kd.schedule_work(h.work)
            kd.kfree(h)
            kd.current_kernel().panic("on purpose")

        def anyio_sleep() -> object:
            import anyio.lowlevel

            return anyio.lowlevel.checkpoint()

        dmesg = self.dmesg_of(main)
        reports = find_reports(dmesg)
        assert [(r.kind, r.headline.split(" ")[0]) for r in reports] == [
            ("WARNING", "WARNING:"),
            ("lockdep", "WARNING:"),
            ("Oops", "kernel"),
            ("Oops", "BUG:"),
            ("BUG", "BUG:"),
            ("WARNING", "WARNING:"),
            ("panic", "Kernel"),
        ]
        warn, lockdep, bug_on, oops, bug, odebug, panic = reports
        assert warn.headline.startswith("WARNING: CPU: ")
        assert warn.text.startswith("------------[ cut here ]------------\n")
        assert warn.text.endswith("---[ end trace 0000000000000000 ]---")
        assert lockdep.headline == "WARNING: possible recursive locking detected"
        assert "Possible unsafe locking scenario" in lockdep.text
        assert bug_on.headline.startswith("kernel BUG at ")
        assert "Oops: invalid opcode" in bug_on.text
        assert oops.headline.startswith("BUG: unhandled exception in ")
        assert "\nOops: ZeroDivisionError [#" in oops.text
        assert bug.headline.startswith("BUG: scheduling while atomic: ")
        assert odebug.text.startswith("ODEBUG: free active")
        assert "object type: work_struct" in odebug.text
        assert panic.headline == "Kernel panic - not syncing: on purpose"
        assert panic.text.endswith("---[ end Kernel panic - not syncing: on purpose ]---")
        for r in reports:
            assert dmesg[r.line].endswith(r.text.split("\n")[0])
        assert not any("BUGS ahead" in r.text for r in reports)

    def test_report_ends_at_its_trace(self) -> None:
        """A report ends with its call trace: the lines after it, even at the same time, are
        not part of it; a report with no trace ends where the time changes."""
        dmesg = [
            "[    0.100000] BUG: scheduling while atomic: init/1/0x00000002",
            "[    0.100000] Call Trace:",
            "[    0.100000]  <TASK>",
            "[    0.100000]  </TASK>",
            "[    0.100000] after the trace",
            "[    0.100000] BUG: workqueue lockup - pool cpus=0 stuck for 31s!",
            "[    0.100000] detail of the lockup",
            "[    0.200000] later",
        ]
        first, second = find_reports(dmesg)
        assert first == Report(
            "BUG",
            "BUG: scheduling while atomic: init/1/0x00000002",
            "BUG: scheduling while atomic: init/1/0x00000002\nCall Trace:\n <TASK>\n </TASK>",
            0,
        )
        assert second.text.split("\n") == [
            "BUG: workqueue lockup - pool cpus=0 stuck for 31s!",
            "detail of the lockup",
        ]
        assert second.line == 5


class TestKernelReports:
    def test_expect_checks_its_argument(self) -> None:
        """KernelReports.expect() takes a non-empty str."""
        reports = pytest_plugin.KernelReports(kd.Kernel())
        with pytest.raises(TypeError, match=r"KernelReports.expect\(\) expects a str for 'text'"):
            reports.expect(b"BUG")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="non-empty"):
            reports.expect("")
        assert reports.expected == ()


class TestReadme:
    def test_the_readme_example_passes(self, pytester: pytest.Pytester) -> None:
        """The example of the README's "Testing your code" passes on every backend."""
        readme = (ROOT / "README.md").read_text()
        section = readme.split("## Testing your code\n", 1)[1].split("\n## ", 1)[0]
        match = re.search(r"```python\n(.*?)```", section, re.S)
        assert match is not None, "the README's testing section has lost its example"
        pytester.makepyfile(test_readme_example=match.group(1))
        result = pytester.runpytest_inprocess(*ARGS)
        result.assert_outcomes(passed=2 * len(BACKENDS))


class TestEntryPoint:
    @staticmethod
    def declared() -> dict[str, str]:
        """The ``pytest11`` entry points pyproject.toml declares."""
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pytest itself depends on tomli before Python 3.11
            import tomli as tomllib
        data = tomllib.loads((ROOT / "pyproject.toml").read_text())
        entry_points: dict[str, str] = data["project"]["entry-points"]["pytest11"]
        return entry_points

    def test_declared_in_pyproject(self) -> None:
        """pyproject.toml declares the pytest11 entry point kdefer_async, naming the plugin."""
        value = self.declared()["kdefer_async"]
        ep = importlib.metadata.EntryPoint(name="kdefer_async", value=value, group="pytest11")
        assert ep.load() is pytest_plugin

    def test_the_entry_point_loads_the_plugin(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Installed as pip installs a wheel (the entry point pyproject.toml declares, the
        package's files in RECORD), the plugin is loaded by a plain pytest run, without -p;
        pytest then assertion-rewrites the whole package, and it still exports only its
        public names."""
        site = pytester.mkdir("site")
        dist = site / "kdefer_async_wheel_check-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: kdefer-async-wheel-check\nVersion: 1.0\n"
        )
        lines = "".join(f"{name} = {value}\n" for name, value in self.declared().items())
        (dist / "entry_points.txt").write_text("[pytest11]\n" + lines)
        (dist / "RECORD").write_text(
            "kdefer_async/__init__.py,,\nkdefer_async/pytest_plugin.py,,\n"
        )
        path = [str(ROOT), str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
        monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
        pytester.makepyfile(
            test_user=HEADER
            + """

async def test_k(kernel):
    pass


def test_public_names():
    assert all(name.isidentifier() for name in kd.__all__)
"""
        )
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-W", "error"
        )
        result.assert_outcomes(passed=len(BACKENDS) + 1)
