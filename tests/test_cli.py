"""Tests for the command line, ``python -m kdefer_async``, run as a subprocess.

Each test starts a fresh interpreter, so these are plain (synchronous) tests: they check the
process's output and exit status, not the event loop it ran.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import LOG_LINE, ROOT, kernel_log, subprocess_env

TIMEOUT = 30
SOFTIRQ_NAMES = (
    "HI",
    "TIMER",
    "NET_TX",
    "NET_RX",
    "BLOCK",
    "IRQ_POLL",
    "TASKLET",
    "SCHED",
    "HRTIMER",
    "RCU",
)
SEED_LINES = (
    "Using a string but it could easily be struct pointer",
    "Going to sleep...",
    "Work queue module handler work_handler, data is 42",
    "I have awoken...",
    "Work queue module init onload 49",
    "Work queue module handler do_work, data is 42",
    "Work queue module exit onunload 63",
    "Work queue module exit: onunload 75",
)


def cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kdefer_async ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "kdefer_async", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=subprocess_env(),
        check=False,
    )


def messages(stdout: str) -> list[str]:
    return [msg for _, msg in kernel_log(stdout)]


def module(tmp_path: Path, name: str, body: str) -> Path:
    """Write a module file *name*.py with *body* (dedented) into *tmp_path*."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def softirq_header(stdout: str) -> list[str]:
    """The CPU columns of the printed /proc/softirqs."""
    lines = stdout.splitlines()
    i = lines.index("$ cat /proc/softirqs")
    return lines[i + 1].split()


PARAMS = """\
    import anyio, sniffio
    import kdefer_async
    from kdefer_async import MODULE_LICENSE, module_init, num_online_cpus, printk

    @module_init
    def onload() -> int:
        printk("cpus=%d hz=%d backend=%s\\n", num_online_cpus(), kdefer_async.HZ,
               sniffio.current_async_library())
        return 0

    MODULE_LICENSE("GPL")
"""


class TestHelp:
    def test_top_level_help_lists_the_commands(self) -> None:
        """``--help`` names both commands and exits 0."""
        r = cli("--help")
        assert r.returncode == 0, r.stderr
        assert "usage: kdefer-async" in r.stdout
        for word in ("run", "demo"):
            assert re.search(rf"^\s+{word}\s", r.stdout, re.M), word

    @pytest.mark.parametrize(
        ("command", "options"),
        [
            (
                "run",
                (
                    "--cpus",
                    "--hz",
                    "--backend",
                    "--virtual-time",
                    "--for",
                    "--no-color",
                    "--quiet-stats",
                ),
            ),
            (
                "demo",
                (
                    "--cpus",
                    "--hz",
                    "--backend",
                    "--real-time",
                    "--for",
                    "--no-color",
                    "--quiet-stats",
                ),
            ),
        ],
    )
    def test_command_help_lists_every_option(self, command: str, options: tuple[str, ...]) -> None:
        """``run --help`` and ``demo --help`` describe every option of the command."""
        r = cli(command, "--help")
        assert r.returncode == 0, r.stderr
        for option in options:
            assert re.search(rf"^\s+{re.escape(option)}\b", r.stdout, re.M), option
        assert ("MODULE.py" in r.stdout) == (command == "run")


class TestDemo:
    def test_demo_prints_the_seed_lines_and_softirqs_quickly(self) -> None:
        """``demo`` runs the three seed modules in virtual time: their lines, the softirq
        table, exit 0, all in well under 10 s of wall time."""
        t0 = time.monotonic()
        r = cli("demo")
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert elapsed < 10.0
        msgs = messages(r.stdout)
        for line in SEED_LINES:
            assert line in msgs, line
        assert msgs.index("Going to sleep...") < msgs.index("I have awoken...")
        stamps = {msg: t for t, msg in kernel_log(r.stdout)}
        assert 2.0 <= stamps["I have awoken..."] < 2.1  # msleep(2000) on the virtual clock
        assert softirq_header(r.stdout) == ["CPU0", "CPU1", "CPU2", "CPU3"]
        for name in SOFTIRQ_NAMES:
            assert re.search(rf"^\s*{name}:(\s+\d+){{4}}$", r.stdout, re.M), name
        assert re.search(r"^\s*TASKLET:\s+1\s+0\s+0\s+0$", r.stdout, re.M)
        assert "$ cat /proc/interrupts" in r.stdout

    def test_demo_quiet_stats_drops_the_tables(self) -> None:
        """``--quiet-stats`` keeps the log and leaves out /proc/softirqs and the rest."""
        r = cli("demo", "--quiet-stats", "--backend", "trio")
        assert r.returncode == 0, r.stderr
        assert "I have awoken..." in messages(r.stdout)
        assert "/proc/softirqs" not in r.stdout


class TestRun:
    def test_run_prints_the_modules_printk_lines(self, tmp_path: Path) -> None:
        """``run`` loads the module, streams its printk lines, unloads it and exits 0."""
        path = module(
            tmp_path,
            "hello",
            """\
            from kdefer_async import MODULE_LICENSE, module_exit, module_init, printk

            @module_init
            def onload() -> int:
                printk("hello %s %d\\n", "world", 7)
                return 0

            @module_exit
            def onunload() -> None:
                printk("goodbye\\n")

            MODULE_LICENSE("GPL")
            """,
        )
        r = cli("run", str(path))
        assert r.returncode == 0, r.stderr
        msgs = messages(r.stdout)
        assert (
            msgs.index("hello world 7")
            < msgs.index("goodbye")
            < msgs.index("reboot: System halted")
        )
        assert "$ cat /proc/softirqs" in r.stdout
        assert r.stderr == ""

    def test_module_parameters(self, tmp_path: Path) -> None:
        """``--param NAME=VALUE`` sets a module_param variable before the module's init."""
        path = module(
            tmp_path,
            "counter",
            """\
            from kdefer_async import MODULE_LICENSE, module_init, module_param, printk

            count = 1
            module_param("count", int, 0o644)

            @module_init
            def onload() -> int:
                printk("count is %d\\n", count)
                return 0

            MODULE_LICENSE("GPL")
            """,
        )
        assert "count is 1" in messages(cli("run", str(path), "--virtual-time").stdout)
        r = cli("run", str(path), "--param", "count=7", "--virtual-time")
        assert r.returncode == 0, r.stderr
        assert "count is 7" in messages(r.stdout)

    def test_defaults_are_four_cpus_hz_250_asyncio(self, tmp_path: Path) -> None:
        """Without options: 4 CPUs, HZ=250, asyncio."""
        r = cli("run", str(module(tmp_path, "params", PARAMS)))
        assert r.returncode == 0, r.stderr
        assert "cpus=4 hz=250 backend=asyncio" in messages(r.stdout)
        assert softirq_header(r.stdout) == ["CPU0", "CPU1", "CPU2", "CPU3"]

    def test_cpus_hz_and_backend_are_honoured(self, tmp_path: Path) -> None:
        """``--cpus 3 --hz 1000 --backend trio``: the module sees them, /proc shows 3 CPUs."""
        path = module(tmp_path, "params", PARAMS)
        r = cli("run", str(path), "--cpus", "3", "--hz", "1000", "--backend", "trio")
        assert r.returncode == 0, r.stderr
        assert "cpus=3 hz=1000 backend=trio" in messages(r.stdout)
        assert "smp: Bringing up secondary CPUs ... HZ=1000" in messages(r.stdout)
        assert softirq_header(r.stdout) == ["CPU0", "CPU1", "CPU2"]

    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_virtual_time_takes_no_wall_time(self, tmp_path: Path, backend: str) -> None:
        """``--virtual-time``: a 60 s msleep is 60 s on the kernel's clock, not on the wall.

        The wall time of the run is mostly the interpreter starting and importing, seconds on
        a busy machine; a sleep far longer than that keeps the two apart."""
        path = module(
            tmp_path,
            "sleeper",
            """\
            from kdefer_async import MODULE_LICENSE, module_init, msleep, printk

            @module_init
            async def onload() -> int:
                printk("before\\n")
                await msleep(60_000)
                printk("after\\n")
                return 0

            MODULE_LICENSE("GPL")
            """,
        )
        t0 = time.monotonic()
        r = cli("run", str(path), "--virtual-time", "--backend", backend)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        stamps = {msg: t for t, msg in kernel_log(r.stdout)}
        assert stamps["after"] - stamps["before"] >= 60.0
        assert elapsed < 30.0

    @pytest.mark.parametrize("virtual", [True, False], ids=["virtual", "real"])
    def test_for_keeps_the_modules_loaded_that_long(self, tmp_path: Path, virtual: bool) -> None:
        """``--for 0.5`` unloads the module 0.5 s (500 jiffies at HZ=1000) after loading."""
        path = module(
            tmp_path,
            "timed",
            """\
            import kdefer_async
            from kdefer_async import MODULE_LICENSE, module_exit, module_init, printk

            loaded_at = 0

            @module_init
            def onload() -> int:
                global loaded_at
                loaded_at = kdefer_async.jiffies
                printk("loaded\\n")
                return 0

            @module_exit
            def onunload() -> None:
                printk("held for %d jiffies\\n", kdefer_async.jiffies - loaded_at)

            MODULE_LICENSE("GPL")
            """,
        )
        args = ["run", str(path), "--hz", "1000", "--for", "0.5"]
        if virtual:
            args.append("--virtual-time")
        t0 = time.monotonic()
        r = cli(*args)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        held = [m for m in messages(r.stdout) if m.startswith("held for ")]
        assert len(held) == 1
        jiffies = int(held[0].split()[2])
        if virtual:
            assert jiffies == 500
        else:
            # the loop's timer may fire a clock tick early; never a whole jiffy
            assert 499 <= jiffies < 5000
            assert elapsed >= 0.5

    def test_several_modules_load_in_order_unload_in_reverse(self, tmp_path: Path) -> None:
        """Two modules: insmod in the order given, rmmod in reverse, as a shell script would."""
        template = """\
            from kdefer_async import MODULE_LICENSE, module_exit, module_init, printk

            @module_init
            def onload() -> int:
                printk("load NAME\\n")
                return 0

            @module_exit
            def onunload() -> None:
                printk("unload NAME\\n")

            MODULE_LICENSE("GPL")
            """
        paths = [module(tmp_path, n, template.replace("NAME", n)) for n in ("first", "second")]
        r = cli("run", *map(str, paths), "--quiet-stats")
        assert r.returncode == 0, r.stderr
        order = [m for m in messages(r.stdout) if m.startswith(("load ", "unload "))]
        assert order == ["load first", "load second", "unload second", "unload first"]


class TestRunErrors:
    def test_missing_module_file(self, tmp_path: Path) -> None:
        """A path that does not exist: one clear line on stderr, nothing booted, exit != 0."""
        missing = tmp_path / "nope.py"
        r = cli("run", str(missing))
        assert r.returncode != 0
        assert r.stderr.splitlines() == [f"kdefer-async: {missing}: no such module file"]
        assert r.stdout == ""

    def test_init_returning_einval_is_not_inserted(self, tmp_path: Path) -> None:
        """init returns -EINVAL: the kernel's "could not insert module" line, exit != 0."""
        path = module(
            tmp_path,
            "refuse",
            """\
            from kdefer_async import EINVAL, MODULE_LICENSE, module_exit, module_init, printk

            @module_init
            def onload() -> int:
                printk("refusing\\n")
                return -EINVAL

            @module_exit
            def onunload() -> None:
                printk("exit must not run\\n")

            MODULE_LICENSE("GPL")
            """,
        )
        r = cli("run", str(path), "--quiet-stats")
        assert r.returncode != 0
        msgs = messages(r.stdout)
        assert "refusing" in msgs
        assert f"insmod: ERROR: could not insert module {path}: Invalid argument" in msgs
        assert "exit must not run" not in msgs
        assert r.stderr.splitlines() == [
            f"kdefer-async: could not insert module {path}: init returned -22 (Invalid argument)"
        ]

    def test_init_raising_is_an_oops(self, tmp_path: Path) -> None:
        """init raises: an oops (with the exception) in the log, the module not loaded."""
        path = module(
            tmp_path,
            "crash",
            """\
            from kdefer_async import MODULE_LICENSE, module_init, printk

            @module_init
            def onload() -> int:
                printk("about to crash\\n")
                raise RuntimeError("boom in init")

            MODULE_LICENSE("GPL")
            """,
        )
        r = cli("run", str(path), "--quiet-stats")
        assert r.returncode != 0
        msgs = messages(r.stdout)
        assert "BUG: unhandled exception in module init crash: RuntimeError: boom in init" in msgs
        assert any(m.startswith("Oops: RuntimeError") for m in msgs)
        assert "could not insert module" in r.stderr
        assert "Traceback" not in r.stderr

    @pytest.mark.parametrize(
        ("option", "value"), [("--cpus", "0"), ("--hz", "0"), ("--for", "-1"), ("--hz", "x")]
    )
    def test_bad_option_values_are_usage_errors(
        self, tmp_path: Path, option: str, value: str
    ) -> None:
        """Out-of-range numbers are refused by the parser (exit 2), not by a traceback."""
        path = module(tmp_path, "params", PARAMS)
        r = cli("run", str(path), option, value)
        assert r.returncode == 2
        assert f"argument {option}:" in r.stderr
        assert "Traceback" not in r.stderr


WAITER = """\
    from kdefer_async import (
        DECLARE_WAIT_QUEUE_HEAD, MODULE_LICENSE, module_exit, module_init, printk,
        wait_event_interruptible,
    )

    wq = DECLARE_WAIT_QUEUE_HEAD()

    @module_init
    async def onload() -> int:
        printk("waiting\\n")
        ret = await wait_event_interruptible(wq, lambda: False)
        printk("wait_event_interruptible returned %d\\n", ret)
        return 0

    @module_exit
    def onunload() -> None:
        printk("unloaded\\n")

    MODULE_LICENSE("GPL")
"""


def _wait_for_line(proc: subprocess.Popen[str], wanted: str, deadline: float) -> list[str]:
    """Read *proc*'s stdout until a log line *wanted* appears; return the lines read."""
    assert proc.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        m = LOG_LINE.match(seen[-1])
        if m and m.group(2) == wanted:
            return seen
    raise AssertionError(f"{wanted!r} never appeared; got {seen!r}")


@pytest.mark.skipif(os.name == "nt", reason="no SIGINT delivery to a child process on Windows")
class TestSigint:
    @pytest.mark.parametrize("backend", ["asyncio", "trio"])
    def test_ctrl_c_interrupts_wait_event_interruptible(self, tmp_path: Path, backend: str) -> None:
        """SIGINT: the interruptible sleeper gets -ERESTARTSYS (-512), the module loads and is
        unloaded, and the process exits 0."""
        path = module(tmp_path, "waiter", WAITER)
        proc = subprocess.Popen(
            [sys.executable, "-m", "kdefer_async", "run", str(path), "--backend", backend],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=subprocess_env(),
        )
        try:
            before = _wait_for_line(proc, "waiting", time.monotonic() + TIMEOUT)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        msgs = messages("\n".join(before) + "\n" + out)
        assert msgs.index("waiting") < msgs.index("wait_event_interruptible returned -512")
        assert msgs.index("wait_event_interruptible returned -512") < msgs.index("unloaded")
        assert "^C: sending SIGINT to interruptible sleepers" in err
        assert "Traceback" not in err

    def test_second_ctrl_c_stops_the_kernel(self, tmp_path: Path) -> None:
        """A module stuck in an uninterruptible sleep: the second SIGINT stops the kernel
        (exit status 130, like a shell's for an interrupted command)."""
        path = module(
            tmp_path,
            "stuck",
            """\
            from kdefer_async import MODULE_LICENSE, module_init, msleep, printk

            @module_init
            async def onload() -> int:
                printk("stuck\\n")
                await msleep(600000)
                printk("never\\n")
                return 0

            MODULE_LICENSE("GPL")
            """,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "kdefer_async", "run", str(path), "--quiet-stats"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=subprocess_env(),
        )
        try:
            _wait_for_line(proc, "stuck", time.monotonic() + TIMEOUT)
            assert proc.stderr is not None
            proc.send_signal(signal.SIGINT)
            first = proc.stderr.readline()  # the first ^C has been handled
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert first.strip() == "^C: sending SIGINT to interruptible sleepers"
        assert "^C: stopping the kernel" in err
        assert proc.returncode == 130
        assert "never" not in messages(out)
        assert "reboot: System halted" in messages(out)
