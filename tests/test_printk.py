"""printk, the kernel log, the console and loguru, and the kernel's reports (WARN, BUG, stacks)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator

import anyio
import pytest
from loguru import logger

import kdefer_async
from kdefer_async import (
    BUG_ON,
    KERN_ALERT,
    KERN_CRIT,
    KERN_DEBUG,
    KERN_EMERG,
    KERN_ERR,
    KERN_INFO,
    KERN_NOTICE,
    KERN_WARNING,
    WARN_ON,
    WARN_ON_ONCE,
    Kernel,
    KernelBug,
    NoKernelError,
    Tasklet,
    current,
    dump_stack,
    pr_alert,
    pr_crit,
    pr_debug,
    pr_emerg,
    pr_err,
    pr_info,
    pr_notice,
    pr_warn,
    printk,
    tasklet_schedule,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

STAMP = re.compile(r"^\[([ \d]{5}\d*)\.(\d{6})\] ")
CUT_HERE = "------------[ cut here ]------------"


def _text(line: str) -> str:
    """A dmesg line without its timestamp."""
    m = STAMP.match(line)
    assert m is not None, line
    return line[m.end() :]


def _stamp(line: str) -> float:
    m = STAMP.match(line)
    assert m is not None, line
    return int(m.group(1)) + int(m.group(2)) / 1_000_000


def _texts(k: Kernel) -> list[str]:
    return [_text(line) for line in k.dmesg()]


def _new(k: Kernel, before: int) -> list[str]:
    return _texts(k)[before:]


def _line_here() -> int:
    frame = inspect.currentframe()
    assert frame is not None
    assert frame.f_back is not None
    return frame.f_back.f_lineno


def _fn_here() -> str:
    frame = inspect.currentframe()
    assert frame is not None
    assert frame.f_back is not None
    return frame.f_back.f_code.co_name


class Console:
    """A Kernel console callback that records (line, level)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int]] = []

    def __call__(self, line: str, level: int) -> None:
        self.records.append((line, level))

    def levels_of(self, text: str) -> list[int]:
        return [lvl for line, lvl in self.records if _text(line) == text]


@pytest.fixture
def loguru_lines() -> Iterator[list[str]]:
    """A loguru sink collecting "{level.name}|{message}" lines; removed after the test."""
    lines: list[str] = []
    sink_id = logger.add(lines.append, format="{level.name}|{message}", level="TRACE")
    try:
        yield lines
    finally:
        logger.remove(sink_id)
        logger.disable("kdefer_async")


class TestLevels:
    @pytest.mark.parametrize(
        ("prefix", "level"),
        [
            (KERN_EMERG, 0),
            (KERN_ALERT, 1),
            (KERN_CRIT, 2),
            (KERN_ERR, 3),
            (KERN_WARNING, 4),
            (KERN_NOTICE, 5),
            (KERN_INFO, 6),
            (KERN_DEBUG, 7),
        ],
    )
    async def test_kern_prefix_sets_level(self, prefix: str, level: int) -> None:
        """A KERN_* prefix sets the record's level and is not printed."""
        console = Console()
        async with Kernel(nr_cpus=1, hz=250, console=console) as k:
            printk(prefix + "level message")
            assert console.levels_of("level message") == [level]
            assert _texts(k)[-1] == "level message"

    async def test_kern_constants(self) -> None:
        """KERN_* are the kernel's KERN_SOH ("\\001") followed by the level digit."""
        assert [KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR] == ["\x010", "\x011", "\x012", "\x013"]
        assert [KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG] == [
            "\x014",
            "\x015",
            "\x016",
            "\x017",
        ]

    async def test_default_level_is_warning(self) -> None:
        """printk() without a prefix logs at MESSAGE_LOGLEVEL_DEFAULT, 4 (warning)."""
        console = Console()
        async with Kernel(nr_cpus=1, hz=250, console=console):
            printk("no prefix")
            assert console.levels_of("no prefix") == [4]

    @pytest.mark.parametrize(
        ("fn", "level"),
        [
            (pr_emerg, 0),
            (pr_alert, 1),
            (pr_crit, 2),
            (pr_err, 3),
            (pr_warn, 4),
            (pr_notice, 5),
            (pr_info, 6),
        ],
    )
    async def test_pr_helpers(self, fn: object, level: int) -> None:
        """Each pr_* helper formats its arguments and logs at its own level."""
        console = Console()
        async with Kernel(nr_cpus=1, hz=250, console=console) as k:
            assert callable(fn)
            n = fn("value=%d", 42)
            assert n == len("value=42")
            assert console.levels_of("value=42") == [level]
            assert _texts(k)[-1] == "value=42"

    async def test_pr_debug_off_by_default(self) -> None:
        """pr_debug() prints nothing unless the kernel was booted with dyndbg=True."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert pr_debug("hidden %d", 1) == 0
            assert not any("hidden" in t for t in _texts(k))

    async def test_pr_debug_with_dyndbg(self) -> None:
        """With Kernel(dyndbg=True), pr_debug() logs at level 7."""
        console = Console()
        async with Kernel(nr_cpus=1, hz=250, dyndbg=True, console=console):
            assert pr_debug("shown %d", 1) == len("shown 1")
            assert console.levels_of("shown 1") == [7]

    async def test_printk_kern_debug_always_recorded(self) -> None:
        """printk(KERN_DEBUG ...) is recorded even without dyndbg: only pr_debug is compiled out."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            printk(KERN_DEBUG + "explicit debug")
            assert _texts(k)[-1] == "explicit debug"

    async def test_printk_returns_length(self) -> None:
        """printk() returns the number of characters printed."""
        async with Kernel(nr_cpus=1, hz=250):
            assert printk(KERN_INFO + "%s-%d", "ab", 7) == len("ab-7")

    async def test_printk_outside_a_kernel(self) -> None:
        """printk() outside a kernel raises NoKernelError."""
        with pytest.raises(NoKernelError):
            printk("nobody listens")


class TestFormat:
    @pytest.mark.parametrize(
        ("fmt", "args", "expected"),
        [
            ("%d", (5,), "5"),
            ("%i", (-5,), "-5"),
            ("[%5d]", (42,), "[   42]"),
            ("[%-5d]", (42,), "[42   ]"),
            ("[%05d]", (42,), "[00042]"),
            ("[%+d]", (3,), "[+3]"),
            ("[%-3s]", ("a",), "[a  ]"),
            ("[%3s]", ("a",), "[  a]"),
            ("[%.2s]", ("abcdef",), "[ab]"),
            ("[%*d]", (4, 7), "[   7]"),
            ("%s and %s", ("x", "y"), "x and y"),
            ("%c", ("z",), "z"),
            ("%lu", (-1,), "18446744073709551615"),
            ("%llu", (-1,), "18446744073709551615"),
            ("%zu", (-1,), "18446744073709551615"),
            ("%u", (-1,), "4294967295"),
            ("%lx", (-1,), "ffffffffffffffff"),
            ("%x", (-1,), "ffffffff"),
            ("%x", (-2,), "fffffffe"),
            ("%X", (255,), "FF"),
            ("%lx", (255,), "ff"),
            ("%#x", (255,), "0xff"),
            ("%08x", (0xBEEF,), "0000beef"),
            ("%o", (8,), "10"),
            ("%ld", (-(2**40),), str(-(2**40))),
            ("100%%", (), "100%"),
            ("%d%%", (50,), "50%"),
            ("no conversions", (), "no conversions"),
        ],
    )
    async def test_c_conversions(self, fmt: str, args: tuple[object, ...], expected: str) -> None:
        """printk formats like the kernel's vsnprintf, including C wrap-around of negative %u/%x."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            printk(KERN_INFO + fmt, *args)
            assert _texts(k)[-1] == expected

    async def test_ps_prints_function_name(self) -> None:
        """%ps of a function prints its symbol name, %pS adds +offset/size."""

        def my_handler() -> None:
            pass  # pragma: no cover

        async with Kernel(nr_cpus=1, hz=250) as k:
            printk(KERN_INFO + "cb=%ps", my_handler)
            assert _texts(k)[-1] == "cb=my_handler"
            printk(KERN_INFO + "cb=%pS.", my_handler)
            assert re.fullmatch(r"cb=my_handler\+0x0/0x[0-9a-f]+\.", _texts(k)[-1])
            printk(KERN_INFO + "m=%ps", Console.levels_of)
            assert _texts(k)[-1] == "m=Console.levels_of"

    async def test_plain_p_prints_hex_pointer(self) -> None:
        """%p alone prints a 16-digit hex value, never the object's repr."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            printk(KERN_INFO + "ptr=%p end", object())
            assert re.fullmatch(r"ptr=[0-9a-f]{16} end", _texts(k)[-1])

    async def test_too_few_arguments(self) -> None:
        """Too few arguments for the format raise TypeError and log nothing."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            with pytest.raises(TypeError):
                printk("%d %d", 1)
            assert len(k.dmesg()) == before

    async def test_too_many_arguments(self) -> None:
        """Too many arguments for the format raise TypeError and log nothing."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            with pytest.raises(TypeError):
                printk("%d", 1, 2)
            with pytest.raises(TypeError):
                pr_info("no conversion", 1)
            assert len(k.dmesg()) == before

    async def test_multiline_message(self) -> None:
        """A message with newlines is one dmesg line per line, all with the same stamp and level."""
        console = Console()
        async with Kernel(nr_cpus=1, hz=250, console=console) as k:
            before = len(k.dmesg())
            printk(KERN_ERR + "first %d\nsecond\nthird\n", 1)
            new = k.dmesg()[before:]
            assert [_text(line) for line in new] == ["first 1", "second", "third"]
            assert len({_stamp(line) for line in new}) == 1
            assert console.levels_of("second") == [3]

    async def test_trailing_newline_dropped(self) -> None:
        """One trailing newline ends the message; it does not add an empty line."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            pr_info("one line\n")
            assert _new(k, before) == ["one line"]


class TestTimestamps:
    async def test_stamp_format(self) -> None:
        """Every dmesg line starts with the uptime as "[%5lu.%06lu] "."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            pr_info("x")
        for line in k.dmesg():
            assert STAMP.match(line), line

    async def test_boot_stamp_is_zero_on_virtual_time(self, virtual: bool) -> None:
        """On virtual time nothing has elapsed at boot: "[    0.000000]"."""
        if not virtual:
            pytest.skip("real time moves during boot")
        async with Kernel(nr_cpus=2, hz=250) as k:
            pr_info("at boot")
        assert k.dmesg()[-2] == "[    0.000000] at boot"

    async def test_uptime_grows_on_virtual_time(self, virtual: bool) -> None:
        """On virtual time, after sleeping 1.5 s the stamp is exactly "[    1.500000]"."""
        if not virtual:
            pytest.skip("exact stamps need virtual time")
        async with Kernel(nr_cpus=1, hz=250) as k:
            await anyio.sleep(1.5)
            pr_info("later")
            await anyio.sleep(100)
            pr_info("much later")
        assert "[    1.500000] later" in k.dmesg()
        assert "[  101.500000] much later" in k.dmesg()

    async def test_uptime_never_goes_back(self, virtual: bool) -> None:
        """Stamps never decrease, and a sleep of n jiffies advances them by at least n/HZ s."""
        async with Kernel(nr_cpus=1, hz=1000) as k:
            pr_info("before")
            await kdefer_async.msleep(3)
            pr_info("after")
        stamps = [_stamp(line) for line in k.dmesg()]
        assert stamps == sorted(stamps)
        lines = _texts(k)
        before = stamps[lines.index("before")]
        after = stamps[lines.index("after")]
        assert after - before >= 0.003 - 1e-6


class TestSinks:
    async def test_console_receives_formatted_lines(self) -> None:
        """Kernel(console=cb) gets every log line, stamped exactly as dmesg shows it."""
        console = Console()
        async with Kernel(nr_cpus=1, hz=250, console=console) as k:
            pr_info("to the console")
        assert [line for line, _lvl in console.records] == k.dmesg()

    async def test_loguru_silent_unless_enabled(self, loguru_lines: list[str]) -> None:
        """The package disables its loguru logger on import: a sink gets nothing by default."""
        async with Kernel(nr_cpus=1, hz=250):
            pr_err("not for loguru")
        assert loguru_lines == []

    async def test_loguru_after_enable(self, loguru_lines: list[str]) -> None:
        """After logger.enable("kdefer_async") a sink receives each line with a matching level."""
        logger.enable("kdefer_async")
        async with Kernel(nr_cpus=1, hz=250):
            pr_err("an error %d", 1)
            pr_info("two\nlines")
            pr_warn("careful")
        got = [line.rstrip("\n") for line in loguru_lines]
        assert "ERROR|an error 1" in got
        assert "INFO|two" in got
        assert "INFO|lines" in got
        assert "WARNING|careful" in got
        assert got[-1] == "INFO|reboot: System halted"

    async def test_loguru_disable_again(self, loguru_lines: list[str]) -> None:
        """logger.disable("kdefer_async") silences the package again."""
        logger.enable("kdefer_async")
        logger.disable("kdefer_async")
        async with Kernel(nr_cpus=1, hz=250):
            pr_err("silenced")
        assert loguru_lines == []


class TestWarn:
    async def test_warn_on_true(self) -> None:
        """WARN_ON(True) returns True and prints cut here, WARNING at file:line, trace, end trace."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            before = len(k.dmesg())
            line = _line_here() + 1
            assert WARN_ON(True) is True
            new = _new(k, before)
        assert new[0] == CUT_HERE
        assert new[1].startswith(f"WARNING: CPU: 0 PID: 1 at test_printk.py:{line} ")
        assert "test_warn_on_true" in new[1]
        assert "Call Trace:" in new
        assert new[-1].startswith("---[ end trace")

    async def test_warn_on_false(self) -> None:
        """WARN_ON(False) returns False and prints nothing."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            assert WARN_ON(False) is False
            assert WARN_ON(0) is False
            assert WARN_ON(None) is False
            assert _new(k, before) == []
            dump_stack()
            assert any(t.startswith("CPU: ") and "Not tainted" in t for t in _texts(k))

    async def test_warn_on_truthy(self) -> None:
        """WARN_ON() takes any truthy value and returns it as a bool."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert WARN_ON([1]) is True
            assert WARN_ON(5) is True
            assert sum(t == CUT_HERE for t in _texts(k)) == 2

    async def test_warn_on_once_per_call_site(self) -> None:
        """WARN_ON_ONCE prints once per call site, and always returns the condition."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            results = [WARN_ON_ONCE(True) for _ in range(3)]
            assert results == [True, True, True]
            assert sum(t == CUT_HERE for t in _texts(k)) == 1
            assert WARN_ON_ONCE(True) is True  # another call site
            assert sum(t == CUT_HERE for t in _texts(k)) == 2
            assert WARN_ON_ONCE(False) is False
            assert sum(t == CUT_HERE for t in _texts(k)) == 2

    async def test_warn_on_once_per_kernel(self) -> None:
        """The once-state belongs to the kernel: a new kernel warns again at the same site."""
        counts = []
        for _ in range(2):
            async with Kernel(nr_cpus=1, hz=250) as k:
                WARN_ON_ONCE(True)
            counts.append(sum(t == CUT_HERE for t in _texts(k)))
        assert counts == [1, 1]

    async def test_warn_taints(self) -> None:
        """Before a WARN the CPU line says "Not tainted"; after it, "Tainted: [W]=WARN"."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            dump_stack()
            cpu_lines = [t for t in _new(k, before) if t.startswith("CPU: ")]
            assert len(cpu_lines) == 1
            assert "Not tainted" in cpu_lines[0]
            WARN_ON(True)
            before = len(k.dmesg())
            dump_stack()
            cpu_lines = [t for t in _new(k, before) if t.startswith("CPU: ")]
            assert "Tainted: [W]=WARN" in cpu_lines[0]
            assert "Not tainted" not in cpu_lines[0]

    async def test_warn_in_tasklet_names_the_borrowed_task(self) -> None:
        """A WARN in a tasklet run by ksoftirqd names ksoftirqd's pid and shows an <IRQ> trace."""
        done: list[bool] = []

        def cb(t: Tasklet) -> None:
            done.append(WARN_ON(True))

        async with Kernel(nr_cpus=1, hz=250) as k:
            tasklet_schedule(Tasklet(cb))
            await settle()
            pid = k.cpus[0].ksoftirqd.pid
        assert done == [True]
        texts = _texts(k)
        assert any(t.startswith(f"WARNING: CPU: 0 PID: {pid} at ") for t in texts)
        assert " <IRQ>" in texts

    async def test_modules_linked_in_line(self) -> None:
        """A WARN lists loaded modules after "Modules linked in:" (bare when there are none)."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            WARN_ON(True)
        assert "Modules linked in:" in _texts(k)


class TestBug:
    async def test_bug_on_true(self) -> None:
        """BUG_ON(True) reports "kernel BUG at file:line!" and raises KernelBug."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            line = _line_here() + 2
            with pytest.raises(KernelBug, match="kernel BUG at"):
                BUG_ON(True)
            texts = _texts(k)
        assert f"kernel BUG at test_printk.py:{line}!" in texts
        assert any(t.startswith("Oops: invalid opcode") for t in texts)
        assert any("Tainted:" in t and "[D]=DIE" in t for t in texts)

    async def test_bug_on_false(self) -> None:
        """BUG_ON(False) does nothing and returns None."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            assert BUG_ON(False) is None
            assert _new(k, before) == []


class TestDumpStack:
    async def test_dump_stack(self) -> None:
        """dump_stack() prints the CPU line and a call trace naming the calling function."""
        async with Kernel(nr_cpus=2, hz=300) as k:
            before = len(k.dmesg())
            dump_stack()
            new = _new(k, before)
        me = _fn_here()
        assert new[0].startswith("CPU: 0 UID: 0 PID: 1 Comm: init ")
        assert any("HZ=300" in t for t in new)
        at = new.index("Call Trace:")
        assert new[at + 1] == " <TASK>"
        assert new[-1] == " </TASK>"
        assert any(t.startswith(f" {me}+0x0/0x0 (test_printk.py:") for t in new)

    async def test_dump_stack_is_not_a_warning(self) -> None:
        """dump_stack() neither warns nor taints."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            dump_stack()
            assert CUT_HERE not in _texts(k)
            assert current().comm == "init"
            dump_stack()
            assert all("Not tainted" in t for t in _texts(k) if t.startswith("CPU: "))


LEVEL_PRINTERS = [pr_emerg, pr_alert, pr_crit, pr_err, pr_warn, pr_notice, pr_info, pr_debug]


class TestArguments:
    @pytest.mark.parametrize(
        ("fmt", "shown"), [([1, 2], "list"), (None, "NoneType"), (b"x=%d\n", "bytes")]
    )
    async def test_printk_format_is_a_str(self, fmt: object, shown: str) -> None:
        """printk([...]) is a TypeError naming printk and 'fmt'; nothing is logged."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = k.dmesg()
            with pytest.raises(
                TypeError, match=rf"^printk\(\) expects a str for 'fmt', got {shown}$"
            ):
                printk(fmt, 1)  # type: ignore[arg-type]
            assert k.dmesg() == before

    @pytest.mark.parametrize("pr", LEVEL_PRINTERS, ids=lambda pr: pr.__name__)
    async def test_level_printers_name_themselves(self, pr: object) -> None:
        """pr_info(None) is a TypeError from pr_info (pr_debug checks even when compiled out)."""
        name = getattr(pr, "__name__", "")
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = k.dmesg()
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects a str for 'fmt', got NoneType$"
            ):
                pr(None)  # type: ignore[operator]
            assert k.dmesg() == before

    @pytest.mark.parametrize(
        ("fmt", "expected"),
        [
            ("%s", "(null)"),
            ("[%-8s]", "[(null)  ]"),
            ("[%8s]", "[  (null)]"),
            ("[%.3s]", "[(nu]"),
            ("name=%s id=%d", "name=(null) id=7"),
        ],
    )
    async def test_null_string_prints_null(self, fmt: str, expected: str) -> None:
        """printk("%s", None) prints (null), as the kernel does for a NULL string."""
        args: tuple[object, ...] = (None, 7) if "%d" in fmt else (None,)
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            assert printk(KERN_INFO + fmt + "\n", *args) == len(expected) + 1
            assert _new(k, before) == [expected]

    @pytest.mark.parametrize(
        ("fmt", "expected"),
        [
            ("%p", "0000000000000000"),
            ("%px", "0000000000000000"),
            ("%pK", "0000000000000000"),
            ("[%ps]", "[0x0]"),
            ("[%pS]", "[0x0]"),
        ],
    )
    async def test_null_pointer_prints_as_vsprintf(self, fmt: str, expected: str) -> None:
        """A NULL (None) pointer: %p prints the real value 0, zero-padded to 16 digits (NULL
        is not hashed), and %ps/%pS print the address that has no symbol, 0x0."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = len(k.dmesg())
            printk(KERN_INFO + fmt + "\n", None)
            assert _new(k, before) == [expected]

    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (
                lambda: printk("%d %d\n", 1),
                r"printk\(\) expects 2 arguments for the format '%d %d\\n', got 1",
            ),
            (
                lambda: pr_info("no conversion\n", 1),
                r"pr_info\(\) expects 0 arguments for the format 'no conversion\\n', "
                r"got 1",
            ),
            (
                lambda: pr_err("[%*d] %ps\n", 4),
                r"pr_err\(\) expects 3 arguments for the format '\[%\*d\] %ps\\n', got 1",
            ),
            (
                lambda: pr_warn("x=%d\n", "seven"),
                r"pr_warn\(\) expects a value %d can print for argument 1 of the format "
                r"'x=%d\\n', got str",
            ),
            (
                lambda: printk("%lu\n", None),
                r"printk\(\) expects a value %lu can print for argument 1 of the format "
                r"'%lu\\n', got NoneType",
            ),
        ],
        ids=["too-few", "too-many", "star-width", "d-of-str", "u-of-none"],
    )
    async def test_arguments_must_match_the_format(
        self, call: Callable[[], int], message: str
    ) -> None:
        """Arguments that do not fit the format are a TypeError naming the printer; no log."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = k.dmesg()
            with pytest.raises(TypeError, match=rf"^{message}$"):
                call()
            assert k.dmesg() == before
