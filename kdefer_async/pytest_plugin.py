"""A pytest plugin for testing code that runs on a kdefer_async kernel.

Installed with the package (the ``pytest11`` entry point ``kdefer_async``), so a project that
has kdefer_async installed only has to ask for the fixture::

    import pytest
    import kdefer_async as kd

    pytestmark = pytest.mark.anyio

    async def test_debounce(kernel):
        ...  # every kernel API works here; ``kernel`` is the booted Kernel
        await kd.msleep(60_000)  # virtual time: no wall time passes

Fixtures
--------

``kernel``
    A :class:`~kdefer_async.Kernel` booted for the test, on the event loop that anyio's pytest
    plugin runs the test on, and shut down (``async with Kernel()`` left normally) when the test
    is torn down. The kernel runs in a task of its own, as an application's lifespan task
    would run it; the test's task is bound to it with :meth:`Kernel.enter` as a user task
    (process context, ``comm`` ``pytest``), so it may call every kernel API and sleep in it.
    Fixtures that use ``kernel`` run in the same event loop and may use the kernel too (their
    teardown runs before the kernel shuts down). The test must be an ``async def`` test run by
    anyio (``pytest.mark.anyio``, or ``anyio_mode = "auto"``).

``kernel_reports``
    The test's kernel reports, in the spirit of ``caplog``: :attr:`KernelReports.reports` (the
    reports logged so far) and :meth:`KernelReports.expect` (declare one expected).

Virtual time and the backend
----------------------------

The backend is the one anyio's ``anyio_backend`` fixture gives (the user's own, from a
conftest, or anyio's default: every installed backend). The plugin does not define
``anyio_backend``, so it never changes how tests that do not use ``kernel`` run.

Virtual time is a property of the event loop, so the ``kernel`` fixture starts the test's
event loop itself, with ``anyio_backend``'s backend and options, adjusted for time:

* ``virtual_time=True`` (the default): asyncio runs on kdefer_async's virtual-time loop
  (:class:`~kdefer_async.testing.VirtualTimeEventLoop`; a ``loop_factory`` or
  ``use_uvloop`` in the options is replaced), trio on a fresh
  ``trio.testing.MockClock(autojump_threshold=0)`` (a ``clock`` in the options is replaced).
  The clock jumps to the next timer whenever every task is blocked: ``msleep(60_000)`` takes
  no wall time, and jiffies advance only virtually.
* ``virtual_time=False``: the options as given, less any virtual clock in them (kdefer_async's
  virtual loop factory, a ``MockClock``): the test runs on real time.

The event loop of a test is made by whichever async fixture is set up first. When another
async fixture of the test starts it before ``kernel`` (one the test lists before ``kernel``,
an autouse one, a module-scoped one), the loop's time is that fixture's; when it is not the
time the test asked for, the ``kernel`` fixture fails and says so. List ``kernel`` first, or
make that fixture use ``kernel``, or give ``anyio_backend`` virtual time yourself
(:func:`kdefer_async.testing.backend_params`).

Options: the ``kdefer`` marker
------------------------------

``@pytest.mark.kdefer(nr_cpus=2, hz=1000, virtual_time=False, expect=[...])``: every keyword
option of :class:`~kdefer_async.Kernel` (``nr_cpus``, ``hz``, ``panic_on_oops``,
``sleep_in_atomic``...), plus ``virtual_time`` (default ``True``) and ``expect`` (the reports
the test provokes on purpose; a str or a list of str). On a class or a module
(``pytestmark``) it applies to every test inside; the closest marker's value of each option
wins. An unknown option, a positional argument or a value ``Kernel()`` rejects is a usage
error (pytest stops before running anything) naming the test and the option.

Kernel reports fail the test
----------------------------

A report is a dmesg block that starts with ``BUG:`` or ``kernel BUG at`` (kind ``BUG``; an
``Oops:`` line right after it makes the block an ``Oops``), ``WARNING:`` (``WARNING``, or
``lockdep`` for ``possible recursive locking detected`` and ``inconsistent lock state``),
``Oops:`` or ``Kernel panic - not syncing`` (``panic``). A WARNING splat runs from its ``cut
here`` line to its end-of-trace line and takes in the ``ODEBUG:`` line printed just before it
(the kernel prints that message inside the splat); any other report runs to the end of its
call trace or trace, and no further than the next report or a line with a later timestamp.
:func:`find_reports` does the parsing.

An expected text covers every report whose text contains it (a substring). Then:

* a report the test did not expect, logged while the test ran, fails the test, with the
  reports and the whole dmesg in the failure message;
* one logged after that, while the test's fixtures are torn down and the kernel shuts down,
  fails it at teardown (pytest shows an error at teardown), with the whole dmesg, shutdown
  lines included (every deferred item that did not run is named there);
* an expected text that no report contains fails the test at teardown too: a test that says
  it provokes a BUG and no longer does has lost what it tested.

A test that fails on its own is not checked again; the kernel's dmesg is attached to its
report (the ``kernel dmesg`` section). Tests that do not use ``kernel`` are never checked: a
test that boots its own ``Kernel()`` and provokes a BUG on purpose is unaffected.

.. versionadded:: 0.1
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncGenerator, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.pytest_plugin import extract_backend_and_options, get_runner

from ._exceptions import KernelPanic
from ._kernel import Kernel
from ._vtime import VirtualTimeEventLoop, new_virtual_event_loop

__all__ = ("KernelReports", "Report", "find_reports", "kernel", "kernel_reports")

#: The marker's options besides Kernel()'s own.
_PLUGIN_OPTIONS = ("virtual_time", "expect")
#: Every keyword option of Kernel().
_KERNEL_OPTIONS = tuple(inspect.signature(Kernel).parameters)
_OPTIONS = _KERNEL_OPTIONS + _PLUGIN_OPTIONS

_MARKER_HELP = (
    "kdefer(**options): options of the kernel fixture: every keyword option of "
    "kdefer_async.Kernel (nr_cpus, hz, panic_on_oops, sleep_in_atomic...), virtual_time "
    "(default True) and expect (the kernel reports the test provokes on purpose)"
)


# -- kernel reports ---------------------------------------------------------------------------

_STAMP = re.compile(r"^\[\s*(\d+\.\d+)\] ?")
_CUT_HERE = "------------[ cut here ]------------"
_LOCKDEP = ("possible recursive locking detected", "inconsistent lock state")
_TRACE_END = (" </TASK>", " </IRQ>", " </NMI>")


@dataclass(frozen=True)
class Report:
    """
    One kernel report found in dmesg: a BUG, a WARNING, an oops, a lockdep report or a panic.

    Attributes:
        kind: ``"BUG"``, ``"WARNING"``, ``"Oops"``, ``"lockdep"`` or ``"panic"``.
        headline: Its first ``BUG:``/``WARNING:``/``Oops:``/``Kernel panic`` line (without the
            timestamp).
        text: All its lines (without timestamps), joined by newlines: what an expected text is
            looked for in.
        line: The index in ``Kernel.dmesg()`` of its first line.

    .. versionadded:: 0.1
    """

    kind: str
    headline: str
    text: str
    line: int


def _split(line: str) -> tuple[str, str]:
    """A dmesg line as (timestamp, message); an unstamped line has the timestamp ``""``."""
    m = _STAMP.match(line)
    if m is None:
        return "", line
    return m.group(1), line[m.end() :]


def _kind(msg: str) -> str | None:
    """The kind of report *msg* starts, or ``None``."""
    if msg.startswith(("BUG:", "kernel BUG at ")):
        return "BUG"
    if msg.startswith("WARNING:"):
        return "lockdep" if any(s in msg for s in _LOCKDEP) else "WARNING"
    if msg.startswith("Oops:"):
        return "Oops"
    if msg.startswith("Kernel panic - not syncing"):
        return "panic"
    return None


def _warn_splat(lines: Sequence[tuple[str, str]], cut: int) -> tuple[int, int] | None:
    """The WARNING line and the end of the splat starting at the ``cut here`` line *cut*."""
    stamp = lines[cut][0]
    head = None
    end = cut + 1
    while end < len(lines) and lines[end][0] == stamp and lines[end][1] != _CUT_HERE:
        msg = lines[end][1]
        end += 1
        if head is None and msg.startswith("WARNING:"):
            head = end - 1
        if msg.startswith("---[ end"):
            break
    return None if head is None else (head, end)


def _report_end(lines: Sequence[tuple[str, str]], start: int) -> int:
    """Where the report whose headline is line *start* ends (exclusive): at the end of its
    call trace or trace, before the next report, or where the timestamp changes."""
    stamp, first = lines[start]
    kind = _kind(first)
    end = start + 1
    while end < len(lines):
        s, msg = lines[end]
        if s != stamp or msg == _CUT_HERE:
            break
        if _kind(msg) is not None and not (
            end == start + 1 and kind == "BUG" and msg.startswith("Oops:")
        ):
            break
        end += 1
        if msg.startswith("---[ end"):
            break
        if msg in _TRACE_END:
            if end < len(lines) and lines[end][0] == stamp and lines[end][1].startswith("---[ end"):
                end += 1
            break
    return end


def find_reports(dmesg: Sequence[str]) -> list[Report]:
    """
    The kernel reports in *dmesg* (the lines of ``Kernel.dmesg()``), in order.

    Returns:
        One :class:`Report` per BUG, WARNING, oops, lockdep report or panic.

    .. versionadded:: 0.1
    """
    lines = [_split(line) for line in dmesg]
    found: list[Report] = []
    i = 0
    while i < len(lines):
        msg = lines[i][1]
        if msg == _CUT_HERE:
            splat = _warn_splat(lines, i)
            if splat is not None:
                head, end = splat
                start = i
                if (
                    i > 0
                    and lines[i - 1][1].startswith("ODEBUG:")
                    and lines[i - 1][0] == lines[i][0]
                ):
                    start = i - 1  # debugobjects' message: the kernel prints it in the WARN
                text = "\n".join(m for _, m in lines[start:end])
                kind = _kind(lines[head][1])
                assert kind is not None
                found.append(Report(kind, lines[head][1], text, start))
                i = end
                continue
        kind = _kind(msg)
        if kind is None:
            i += 1
            continue
        end = _report_end(lines, i)
        block = [m for _, m in lines[i:end]]
        if kind == "BUG" and len(block) > 1 and block[1].startswith("Oops:"):
            kind = "Oops"
        found.append(Report(kind, msg, "\n".join(block), i))
        i = end
    return found


class KernelReports:
    """
    The kernel reports of the running test, and the ones it expects: the ``kernel_reports``
    fixture.

    ``kernel_reports.expect("BUG: scheduling while atomic")`` declares a report the test
    provokes on purpose, as ``@pytest.mark.kdefer(expect=[...])`` does; reports nobody
    expected fail the test (see :mod:`kdefer_async.pytest_plugin`).

    .. versionadded:: 0.1
    """

    def __init__(self, kernel: Kernel, expected: Sequence[str] = ()) -> None:
        self._kernel = kernel  # I
        self._expected: list[str] = list(expected)  # A

    @property
    def reports(self) -> list[Report]:
        """Every report the kernel has logged so far."""
        return find_reports(self._kernel.dmesg())

    @property
    def expected(self) -> tuple[str, ...]:
        """The expected texts, the marker's first, then those given to :meth:`expect`."""
        return tuple(self._expected)

    def expect(self, text: str) -> None:
        """
        Declare that the test provokes a report containing *text* (for example
        ``"BUG: sleeping function called from invalid context"``).

        Every report containing *text* is then expected; if none is logged by the time the
        kernel has shut down, the test fails at teardown.

        Raises:
            TypeError: *text* is not a str.
            ValueError: *text* is empty.
        """
        _check_expected(text, "KernelReports.expect", "text")
        self._expected.append(text)

    def unexpected(self, since: int = 0) -> list[Report]:
        """The reports no expected text covers, from dmesg line *since* on."""
        return [
            r
            for r in self.reports
            if r.line >= since and not any(e in r.text for e in self._expected)
        ]

    def missing(self) -> list[str]:
        """The expected texts that no report contains."""
        reports = self.reports
        return [e for e in self._expected if not any(e in r.text for r in reports)]

    def __repr__(self) -> str:
        return f"<KernelReports reports={len(self.reports)} expected={self._expected!r}>"


def _check_expected(text: object, func: str, param: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{func}() expects a str for '{param}', got {type(text).__name__}")
    if not text:
        raise ValueError(f"{func}() expects a non-empty str for '{param}', got ''")


# -- the marker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    """What the ``kdefer`` markers of a test ask for."""

    kernel_options: dict[str, Any]
    virtual_time: bool
    expect: tuple[str, ...]


_SETTINGS = pytest.StashKey[_Settings]()


def _settings(item: pytest.Item) -> _Settings:
    """The kernel fixture's settings for *item*, from its ``kdefer`` markers (closest wins).

    Raises:
        pytest.UsageError: a marker has a positional argument, an unknown option, or a value
            the option does not take.
    """
    cached = item.stash.get(_SETTINGS, None)
    if cached is not None:
        return cached
    where = f"@pytest.mark.kdefer on {item.nodeid}"
    options: dict[str, Any] = {}
    for mark in item.iter_markers("kdefer"):
        if mark.args:
            raise pytest.UsageError(
                f"{where}: takes keyword options only, got the positional argument(s) "
                f"{', '.join(repr(a) for a in mark.args)}"
            )
        for name, value in mark.kwargs.items():
            if name not in _OPTIONS:
                raise pytest.UsageError(
                    f"{where}: unknown option {name!r}; the options are {', '.join(_OPTIONS)}"
                )
            options.setdefault(name, value)
    virtual_time = options.pop("virtual_time", True)
    if not isinstance(virtual_time, bool):
        raise pytest.UsageError(
            f"{where}: virtual_time expects True or False, got {virtual_time!r}"
        )
    expect = options.pop("expect", ())
    if isinstance(expect, str):
        expect = (expect,)
    if not isinstance(expect, (list, tuple)):
        raise pytest.UsageError(
            f"{where}: expect expects a str or a list of str, got {type(expect).__name__}"
        )
    bad = next((text for text in expect if not isinstance(text, str) or not text), None)
    if bad is not None:
        raise pytest.UsageError(f"{where}: expect expects non-empty str, got {bad!r}")
    try:
        Kernel(**options)  # the options are checked by the constructor, as at boot
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
    settings = _Settings(options, virtual_time, tuple(expect))
    item.stash[_SETTINGS] = settings
    return settings


# -- the event loop ---------------------------------------------------------------------------


def _backend(anyio_backend: object, virtual_time: bool) -> tuple[str, dict[str, Any]]:
    """``anyio_backend``'s backend and options, with virtual time or real time as asked."""
    name, given = extract_backend_and_options(anyio_backend)
    options = dict(given)
    if name == "asyncio":
        if virtual_time:
            options.pop("use_uvloop", None)
            options["loop_factory"] = new_virtual_event_loop
        elif options.get("loop_factory") in (new_virtual_event_loop, VirtualTimeEventLoop):
            del options["loop_factory"]
    elif name == "trio":
        import trio.testing

        if virtual_time:
            options["clock"] = trio.testing.MockClock(autojump_threshold=0)
        elif isinstance(options.get("clock"), trio.testing.MockClock):
            del options["clock"]
    return name, options


def _loop_is_virtual() -> bool:
    """Whether the running event loop's clock is virtual (kdefer_async's loop, a MockClock)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio.testing

        return isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
    return isinstance(loop, VirtualTimeEventLoop)


# -- the kernel of a test ---------------------------------------------------------------------

_TESTED = pytest.StashKey["_TestKernel"]()


class _TestKernel:
    """The kernel of one test: boot, the checks after the test and at teardown."""

    def __init__(self, item: pytest.Item, settings: _Settings) -> None:
        self.item = item  # I
        self.settings = settings  # I
        self.kernel: Kernel | None = None  # I after boot
        self.reports: KernelReports | None = None  # I after boot
        self.checked = 0  # A: dmesg lines checked when the test had run
        self.call_passed = False  # A
        self.exit_error: Exception | None = None  # A: what left `async with Kernel()`

    async def run(self) -> AsyncGenerator[Kernel, None]:
        """Boot the kernel in a task of its own, bind the test's task to it, yield it."""
        if _loop_is_virtual() != self.settings.virtual_time:
            wanted, got = ("virtual", "real") if self.settings.virtual_time else ("real", "virtual")
            pytest.fail(
                f"the kernel fixture wants {wanted} time (virtual_time="
                f"{self.settings.virtual_time}), but this test's event loop runs on {got} time: "
                "an async fixture set up before `kernel` started it. List `kernel` first "
                "among the test's fixtures, or make that fixture use `kernel`, or give "
                "anyio_backend the time you want (kdefer_async.testing.backend_params).",
                pytrace=False,
            )
        kernel = Kernel(**self.settings.kernel_options)
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            await tg.start(self._lifespan, kernel, stop, name="kernel lifespan")
            self.kernel = kernel
            self.reports = KernelReports(kernel, self.settings.expect)
            try:
                with kernel.enter() as task:
                    task.comm = "pytest"
                    yield kernel
            finally:
                stop.set()

    async def _lifespan(
        self,
        kernel: Kernel,
        stop: anyio.Event,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run *kernel* until *stop*; keep what leaves it (a panic) for the teardown check,
        so that it never cancels the task the test runs in."""
        booted = False
        try:
            async with kernel:
                booted = True
                task_status.started()
                await stop.wait()
        except Exception as exc:
            if not booted:
                raise
            self.exit_error = exc

    def dmesg_text(self) -> str:
        assert self.kernel is not None
        return "\n".join(self.kernel.dmesg())

    def after_call(self) -> None:
        """The test ran and passed: fail it if the kernel logged a report it did not expect."""
        assert self.kernel is not None
        assert self.reports is not None
        self.checked = len(self.kernel.dmesg())
        unexpected = self.reports.unexpected()
        if unexpected:
            pytest.fail(self._message(unexpected, []), pytrace=False)
        self.call_passed = True

    def after_shutdown(self) -> None:
        """The kernel has shut down: fail the test for reports logged since the test ran
        and for expected reports that never came."""
        error = self.exit_error
        if error is not None and not isinstance(error, KernelPanic):
            raise error  # not a report: the kernel itself failed
        if not self.call_passed:
            return  # the test failed (or did not run): that is its report
        assert self.reports is not None
        unexpected = self.reports.unexpected(self.checked)
        missing = self.reports.missing()
        if unexpected or missing:
            pytest.fail(self._message(unexpected, missing, teardown=True), pytrace=False)

    def _message(self, unexpected: list[Report], missing: list[str], teardown: bool = False) -> str:
        out: list[str] = []
        if unexpected:
            n = len(unexpected)
            when = "while the test was torn down" if teardown else "while the test ran"
            out.append(
                f"the kernel logged {n} report{'s' if n != 1 else ''} the test did not expect, "
                f"{when}:"
            )
            out.extend(f"  {r.headline}" for r in unexpected)
            out.append(
                "(a report the test provokes on purpose is declared with "
                '@pytest.mark.kdefer(expect=["..."]) or kernel_reports.expect("..."))'
            )
        if missing:
            out.append("the test expected kernel reports that were never logged:")
            out.extend(f"  {text!r}" for text in missing)
        out.append("")
        out.append("dmesg:")
        out.append(self.dmesg_text())
        return "\n".join(out)


# -- fixtures and hooks -----------------------------------------------------------------------


@pytest.fixture
def kernel(request: pytest.FixtureRequest, anyio_backend: object) -> Iterator[Kernel]:
    """
    A :class:`~kdefer_async.Kernel` booted for this test, in virtual time unless the test's
    ``kdefer`` marker says ``virtual_time=False``, on the backend of ``anyio_backend``.

    At teardown the kernel shuts down, and the test fails if the kernel logged a report it did
    not expect (see :mod:`kdefer_async.pytest_plugin`).

    .. versionadded:: 0.1
    """
    item = request.node
    if not inspect.iscoroutinefunction(getattr(item, "obj", None)):
        pytest.fail(
            "the kernel fixture runs the kernel on the test's event loop: the test must be an "
            "`async def` test run by anyio (pytest.mark.anyio)",
            pytrace=False,
        )
    settings = _settings(item)
    name, options = _backend(anyio_backend, settings.virtual_time)
    tested = _TestKernel(item, settings)
    with get_runner(name, options) as runner:
        if runner.is_running():
            pytest.fail(
                "the kernel fixture cannot start while the test's event loop runs (asked for "
                "with request.getfixturevalue() from async code?)",
                pytrace=False,
            )
        item.stash[_TESTED] = tested
        try:
            yield from runner.run_asyncgen_fixture(tested.run, {})
        finally:
            del item.stash[_TESTED]
    tested.after_shutdown()


@pytest.fixture
def kernel_reports(kernel: Kernel, request: pytest.FixtureRequest) -> KernelReports:
    """
    The reports of the test's kernel, and what the test expects: see :class:`KernelReports`.

    .. versionadded:: 0.1
    """
    tested: _TestKernel = request.node.stash[_TESTED]
    assert tested.reports is not None
    return tested.reports


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Check every ``kdefer`` marker before anything runs: a bad one is a usage error."""
    for item in items:
        if item.get_closest_marker("kdefer") is not None:
            _settings(item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After a test that uses ``kernel``: fail it for reports it did not expect; if it failed
    by itself, attach the dmesg to its report."""
    tested = item.stash.get(_TESTED, None)
    if tested is None or tested.kernel is None:
        yield
        return
    try:
        yield
    except BaseException:
        item.add_report_section("call", "kernel dmesg", tested.dmesg_text())
        raise
    tested.after_call()
