"""printk, the kernel log, and the kernel's own reports (WARN, BUG, oops, panic).

Kernel invariant modelled: the log is a ring of records stamped with the uptime, each record one
line; a message's level comes from its ``KERN_*`` prefix (``KERN_SOH`` and a digit), default
``MESSAGE_LOGLEVEL_DEFAULT`` (4, warning). Reports use the kernel's wording so that what you learn
here matches what a real ``dmesg`` shows.

Lines go to ``Kernel.dmesg()`` and to loguru under the logger name ``kdefer_async``. Following
loguru's advice for libraries, the package disables its own logger on import: an application
that wants the lines calls ``logger.enable("kdefer_async")``.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from ._check import check_str, type_name
from ._consts import (
    HARDIRQ_MASK,
    KERN_SOH,
    MESSAGE_LOGLEVEL_DEFAULT,
    NMI_MASK,
    SOFTIRQ_OFFSET,
    ULONG_MASK,
)
from ._context import TaskStruct, _cur

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "BUG_ON",
    "Oops",
    "WARN_ON",
    "WARN_ON_ONCE",
    "dump_stack",
    "format_c",
    "pr_alert",
    "pr_crit",
    "pr_debug",
    "pr_emerg",
    "pr_err",
    "pr_info",
    "pr_notice",
    "pr_warn",
    "printk",
    "symbol_name",
]

UTS_RELEASE = "6.12.0-kdefer"
_PKG_DIR = str(Path(__file__).resolve().parent)
_LOGURU_LEVELS = ("CRITICAL", "CRITICAL", "CRITICAL", "ERROR", "WARNING", "INFO", "INFO", "DEBUG")
#: taint_flags[] of kernel/panic.c, in bit order: (letter when set, name).
_TAINT_FLAGS = (
    ("P", "PROPRIETARY_MODULE"),
    ("F", "FORCED_MODULE"),
    ("S", "CPU_OUT_OF_SPEC"),
    ("R", "FORCED_RMMOD"),
    ("M", "MACHINE_CHECK"),
    ("B", "BAD_PAGE"),
    ("U", "USER"),
    ("D", "DIE"),
    ("A", "OVERRIDDEN_ACPI_TABLE"),
    ("W", "WARN"),
    ("C", "CRAP"),
    ("I", "FIRMWARE_WORKAROUND"),
    ("O", "OOT_MODULE"),
    ("E", "UNSIGNED_MODULE"),
    ("L", "SOFTLOCKUP"),
    ("K", "LIVEPATCH"),
    ("X", "AUX"),
    ("T", "RANDSTRUCT"),
    ("N", "TEST"),
)


@dataclass(frozen=True, slots=True)
class Oops:
    """
    One oops: an exception the kernel caught in a work function, a kthread or a handler.

    .. versionadded:: 0.1
    """

    number: int
    exception: BaseException
    comm: str
    pid: int
    cpu: int
    where: str
    lines: tuple[str, ...] = field(repr=False)


# ---------------------------------------------------------------------------------------------
# C-style formatting
# ---------------------------------------------------------------------------------------------

_FMT = re.compile(
    r"%(?P<flags>[-+ #0]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
    r"(?P<len>hh|h|ll|l|z|t|j|L)?(?P<conv>[diouxXcspeEfgG%])"
)


def symbol_name(obj: object, *, offset: bool = False) -> str:
    """Return the ``%ps`` (or ``%pS`` with *offset*) rendering of a function: its name."""
    fn = getattr(obj, "__func__", obj)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(name, str):
        return "0x%016x" % (id(obj) & ULONG_MASK)
    # a nested function's symbol is its own name, not its enclosing function's locals
    name = name.rpartition("<locals>.")[2]
    if offset:
        code = getattr(fn, "__code__", None)
        size = len(code.co_code) if code is not None else 0
        return f"{name}+0x0/0x{size:x}"
    return str(name)


def _nargs(fmt: str) -> int:
    """How many arguments *fmt* converts (``*`` widths and precisions included)."""
    n = pos = 0
    for m in _FMT.finditer(fmt):
        if m.start() < pos:
            continue
        pos = m.end()
        if m.group("conv") == "%":
            continue
        n += 1 + (m.group("width") == "*") + (m.group("prec") == "*")
        if m.group("conv") == "p" and fmt[pos : pos + 1] in ("s", "S", "f", "F", "K", "x"):
            pos += 1
    return n


def _count_error(func: str | None, fmt: str, given: int, short: bool) -> TypeError:
    if func is None:  # (Python's own wording, for the callers that add their context)
        if short:
            return TypeError(f"not enough arguments for format string {fmt!r}")
        return TypeError(f"not all arguments converted during formatting of {fmt!r}")
    need = _nargs(fmt)
    what = f"{need} argument" + ("s" if need != 1 else "")
    return TypeError(f"{func}() expects {what} for the format {fmt!r}, got {given}")


def format_c(fmt: str, args: Sequence[object], func: str | None = None) -> str:
    """
    Format *fmt* with *args* like the kernel's ``vsnprintf``.

    Length modifiers (``l``, ``ll``, ``z``...) are accepted; ``%u``/``%x`` of a negative value
    wrap as in C (64 bits with ``l``/``ll``/``z``, else 32); ``%ps``/``%pS`` print a function's
    symbol name; ``%p`` alone prints a hashed-looking pointer; ``None`` is NULL, printed as
    ``lib/vsprintf.c`` does: ``(null)`` for ``%s``, ``0000000000000000`` for ``%p``/``%px``/``%pK``
    (NULL is not hashed), ``0x0`` for ``%ps``/``%pS``.

    Arguments that do not match the format (too few, too many, or one a conversion cannot
    take) are an error (the compiler's ``-Wformat`` check): a :class:`TypeError` naming *func*
    if it is given, else Python's own exception and wording.
    """
    if not args and "%" not in fmt:
        return fmt
    out: list[str] = []
    pos = 0
    ai = 0
    nargs = len(args)

    def take() -> object:
        nonlocal ai
        if ai >= nargs:
            raise _count_error(func, fmt, nargs, True)
        value = args[ai]
        ai += 1
        return value

    def mismatch(spec: str, value: object) -> TypeError:
        return TypeError(
            f"{func}() expects a value {spec} can print for argument {ai} of the format "
            f"{fmt!r}, got {type_name(value)}"
        )

    for m in _FMT.finditer(fmt):
        if m.start() < pos:
            continue
        out.append(fmt[pos : m.start()])
        pos = m.end()
        conv = m.group("conv")
        if conv == "%":
            out.append("%")
            continue
        flags = m.group("flags") or ""
        width = m.group("width") or ""
        prec = m.group("prec")
        if width == "*":
            width = str(take())
        if prec == "*":
            prec = str(take())
        spec = "%" + flags + width + ("." + prec if prec is not None else "")
        length = m.group("len") or ""
        value = take()
        if conv == "p":
            ext = fmt[pos : pos + 1]
            if ext in ("s", "S", "f", "F"):
                pos += 1
                # a NULL code pointer has no symbol: sprint_symbol() prints the address, 0x0
                name = "0x0" if value is None else symbol_name(value, offset=ext in "SF")
                out.append((spec + "s") % name)
            else:
                if ext in ("K", "x"):
                    pos += 1
                # ptr_to_id(): NULL is printed as the real value, not hashed (it is no address)
                address = 0 if value is None else id(value) & ULONG_MASK
                out.append((spec + "s") % ("%016x" % address))
            continue
        try:
            if conv in "uxXo":
                bits = 64 if length in ("l", "ll", "z", "t", "j", "L") else 32
                iv = int(value)  # type: ignore[call-overload]
                if iv < 0:
                    iv &= (1 << bits) - 1
                out.append((spec + ("d" if conv == "u" else conv)) % iv)
                continue
            if conv == "i":
                conv = "d"
            elif conv == "s" and value is None:
                value = "(null)"  # string(): a NULL pointer, width and precision still apply
            out.append((spec + conv) % (value,))
        except (TypeError, ValueError, OverflowError):
            if func is None:
                raise
            raise mismatch(m.group(0), value) from None
    out.append(fmt[pos:])
    if ai < nargs:
        raise _count_error(func, fmt, nargs, False)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------------------------


def _split_level(text: str) -> tuple[int, str, bool]:
    level = MESSAGE_LOGLEVEL_DEFAULT
    cont = False
    while len(text) >= 2 and text[0] == KERN_SOH:
        code = text[1]
        if "0" <= code <= "7":
            level = ord(code) - 48
        elif code == "c":
            cont = True
        text = text[2:]
    return level, text, cont


def log_text(kernel: Kernel, level: int, text: str) -> None:
    """Append *text* (one or more lines) to *kernel*'s log at *level*."""
    if text.endswith("\n"):
        text = text[:-1]
    ts = kernel.uptime()
    for line in text.split("\n"):
        kernel._log.append((ts, level, line))
        if kernel._console is not None:
            kernel._console(format_record(ts, line), level)
        logger.opt(depth=0).bind(kernel_time=ts, kernel_level=level).log(
            _LOGURU_LEVELS[level], line
        )


def format_record(ts: float, line: str) -> str:
    """Render one record as ``dmesg`` prints it: ``[    1.234567] text``."""
    secs = int(ts)
    usecs = round((ts - secs) * 1_000_000)
    if usecs >= 1_000_000:
        secs += 1
        usecs -= 1_000_000
    return f"[{secs:5d}.{usecs:06d}] {line}"


def vprintk(kernel: Kernel, fmt: str, args: Sequence[object], func: str | None = None) -> int:
    level, body, _cont = _split_level(fmt)
    text = format_c(body, args, func)
    log_text(kernel, level, text)
    return len(text)


def printk(fmt: str, *args: object) -> int:
    """
    Print a kernel message: ``printk(KERN_INFO "x=%d\\n", x)`` is ``printk(KERN_INFO + "x=%d\\n", x)``.

    *fmt* uses C ``%`` conversions (``%d``, ``%lu``, ``%s``, ``%ps``...). The level comes from a
    leading ``KERN_*`` prefix, default ``KERN_WARNING`` as in the kernel. ``%s`` of ``None``
    prints ``(null)``.

    Returns:
        The number of characters printed.

    Raises:
        TypeError: *fmt* is not a str (a C format string; the ``KERN_*`` prefixes are str too),
            or the arguments do not match its conversions (too few, too many, or one a
            conversion cannot print); nothing is logged then.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if type(fmt) is not str:
        check_str(fmt, "printk", "fmt")
    return vprintk(_cur().kernel, fmt, args, "printk")


def _level_printer(prefix: str, name: str) -> Callable[..., int]:
    def pr(fmt: str, *args: object) -> int:
        if type(fmt) is not str:
            check_str(fmt, name, "fmt")
        return vprintk(_cur().kernel, prefix + fmt, args, name)

    pr.__name__ = pr.__qualname__ = name
    pr.__doc__ = (
        f"``{name}(fmt, ...)``: :func:`printk` at this level.\n\n"
        "Raises:\n    TypeError: *fmt* is not a str.\n\n"
        "Context:\n    Any context; never sleeps.\n\n.. versionadded:: 0.1\n"
    )
    return pr


pr_emerg = _level_printer(KERN_SOH + "0", "pr_emerg")
pr_alert = _level_printer(KERN_SOH + "1", "pr_alert")
pr_crit = _level_printer(KERN_SOH + "2", "pr_crit")
pr_err = _level_printer(KERN_SOH + "3", "pr_err")
pr_warn = _level_printer(KERN_SOH + "4", "pr_warn")
pr_notice = _level_printer(KERN_SOH + "5", "pr_notice")
pr_info = _level_printer(KERN_SOH + "6", "pr_info")


def pr_debug(fmt: str, *args: object) -> int:
    """
    ``pr_debug(fmt, ...)``: :func:`printk` at ``KERN_DEBUG``, only when debugging is on.

    Like the kernel's without ``DEBUG`` or dynamic debug, it prints nothing (and returns 0)
    unless the kernel was booted with ``Kernel(dyndbg=True)``. ``printk(KERN_DEBUG + ...)``
    itself is always recorded.

    Raises:
        TypeError: *fmt* is not a str (checked whether or not debugging is on).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if type(fmt) is not str:
        check_str(fmt, "pr_debug", "fmt")
    kernel = _cur().kernel
    if not kernel.dyndbg:
        return 0
    return vprintk(kernel, KERN_SOH + "7" + fmt, args, "pr_debug")


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


def _user_frames(limit: int = 16) -> list[traceback.FrameSummary]:
    stack = traceback.extract_stack()
    keep = [
        fs
        for fs in stack
        if not any(
            part in fs.filename
            for part in ("/anyio/", "/asyncio/", "/trio/", "/_pytest/", "/pluggy/", "/contextlib")
        )
    ]
    # drop the report machinery itself
    while keep and keep[-1].filename.startswith(_PKG_DIR) and keep[-1].name in _REPORT_FUNCS:
        keep.pop()
    return keep[-limit:]


def caller_location() -> tuple[str, int, str]:
    """The first frame outside kdefer_async: where the user's code called in."""
    for fs in reversed(traceback.extract_stack()):
        if not fs.filename.startswith(_PKG_DIR):
            return _short(fs.filename), fs.lineno or 0, fs.name
    return "?", 0, "?"


def _short(filename: str) -> str:
    if filename.startswith(_PKG_DIR):
        return "kdefer_async/" + filename[len(_PKG_DIR) + 1 :]
    return Path(filename).name


def _frame_lines(frames: Sequence[traceback.FrameSummary]) -> list[str]:
    return [f" {fs.name}+0x0/0x0 ({_short(fs.filename)}:{fs.lineno})" for fs in reversed(frames)]


def taint_string(kernel: Kernel, *, verbose: bool = True) -> str:
    """``print_tainted()``: ``Not tainted``, or the set flags in the kernel's bit order.

    Verbose (the CPU line since 6.10): ``Tainted: [P]=PROPRIETARY_MODULE, [W]=WARN``; short
    (hung-task reports): one column per flag, ``G`` for a GPL-only kernel, ``Tainted: G  W``.
    """
    taint = kernel._taint
    if not taint:
        return "Not tainted"
    if verbose:
        return "Tainted: " + ", ".join(f"[{c}]={name}" for c, name in _TAINT_FLAGS if c in taint)
    cols = [c if c in taint else ("G" if c == "P" else " ") for c, _name in _TAINT_FLAGS]
    return "Tainted: " + "".join(cols)


def modules_linked_in(kernel: Kernel) -> str:
    """``print_modules()``: ``Modules linked in:`` and each loaded module after a space."""
    return "Modules linked in:" + "".join(" " + name for name in kernel._module_names())


def cpu_line(task: TaskStruct) -> str:
    k = task.kernel
    return (
        f"CPU: {task.cpu} UID: 0 PID: {task.pid} Comm: {task.comm} "
        f"{taint_string(k)} {UTS_RELEASE} #1"
    )


def _stack_lines(task: TaskStruct, frames: Sequence[traceback.FrameSummary]) -> list[str]:
    pc = task.preempt_count
    kind = "IRQ" if pc & (HARDIRQ_MASK | NMI_MASK | SOFTIRQ_OFFSET) else "TASK"
    return [
        cpu_line(task),
        f"Hardware name: kdefer_async simulated SMP machine, {task.kernel.nr_cpus} CPUs, "
        f"HZ={task.kernel.hz}",
        "Call Trace:",
        f" <{kind}>",
        *_frame_lines(frames),
        f" </{kind}>",
    ]


def dump_stack() -> None:
    """
    Print the current CPU, task and call trace to the log, as the kernel's ``dump_stack()``.

    .. versionadded:: 0.1
    """
    task = _cur()
    log_text(task.kernel, 4, "\n".join(_stack_lines(task, _user_frames())))


def report_lines(
    task: TaskStruct,
    lines: Sequence[str],
    *,
    level: int = 3,
    stack: bool = True,
    taint: str | None = None,
) -> None:
    """Log a multi-line report, followed by the CPU line and call trace."""
    k = task.kernel
    if taint:
        k._taint.add(taint)
    out = list(lines)
    if stack:
        out.extend(_stack_lines(task, _user_frames()))
    log_text(k, level, "\n".join(out))


def warn(fmt: str | None = None, *args: object, task: TaskStruct | None = None) -> None:
    """A ``WARN()``: ``cut here``, the message, the WARNING line, call trace, end trace."""
    task = task or _cur()
    k = task.kernel
    k._taint.add("W")
    file, line, func = caller_location()
    out = ["------------[ cut here ]------------"]
    if fmt:
        out.append(format_c(fmt, args).rstrip("\n"))
    out.append(f"WARNING: CPU: {task.cpu} PID: {task.pid} at {file}:{line} {func}+0x0/0x0")
    out.append(modules_linked_in(k))
    out.extend(_stack_lines(task, _user_frames()))
    out.append("---[ end trace 0000000000000000 ]---")
    log_text(k, 4, "\n".join(out))


def warn_once(key: object, fmt: str | None = None, *args: object) -> bool:
    """``WARN_ONCE``: warn the first time *key* is seen by this kernel; True if it warned."""
    task = _cur()
    if key in task.kernel._warned_once:
        return False
    task.kernel._warned_once.add(key)
    warn(fmt, *args, task=task)
    return True


def WARN_ON(condition: object) -> bool:
    """
    ``WARN_ON(condition)``: if *condition* is true, print a WARNING with a call trace.

    Returns:
        ``bool(condition)``, so it can be used as ``if WARN_ON(x): return``.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    if condition:
        warn()
    return bool(condition)


def WARN_ON_ONCE(condition: object) -> bool:
    """
    ``WARN_ON_ONCE(condition)``: as :func:`WARN_ON`, printed once per call site.

    .. versionadded:: 0.1
    """
    if condition:
        file, line, _ = caller_location()
        warn_once(("WARN_ON_ONCE", file, line))
    return bool(condition)


def BUG_ON(condition: object) -> None:
    """
    ``BUG_ON(condition)``: if *condition* is true, report ``kernel BUG at file:line!`` and raise.

    Raises:
        KernelBug: when *condition* is true (the kernel would oops here).

    .. versionadded:: 0.1
    """
    if condition:
        from ._exceptions import KernelBug

        task = _cur()
        file, line, _ = caller_location()
        msg = f"kernel BUG at {file}:{line}!"
        report_lines(
            task,
            [msg, "Oops: invalid opcode: 0000 [#%d] SMP" % (len(task.kernel.oopses) + 1)],
            level=0,
            taint="D",
        )
        raise KernelBug(msg)


def exception_lines(exc: BaseException) -> list[str]:
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [fs for fs in tb if "/anyio/" not in fs.filename]
    return _frame_lines(frames)


def record_oops(task: TaskStruct, exc: BaseException, where: str) -> Oops:
    """Log an oops for *exc* caught in *task* while running *where*, and remember it."""
    k = task.kernel
    if exc is k._panic and k.oopses:
        # The kernel's own panic unwinding through an outer handler is not a new oops.
        return k.oopses[-1]
    k._taint.add("D")
    number = len(k.oopses) + 1
    tb = traceback.extract_tb(exc.__traceback__)
    rip = tb[-1].name if tb else "?"
    lines = [
        f"BUG: unhandled exception in {where}: {type(exc).__name__}: {exc}",
        f"Oops: {type(exc).__name__} [#{number}] SMP",
        cpu_line(task),
        f"RIP: 0010:{rip}+0x0/0x0",
        "Call Trace:",
        " <TASK>" if not task.preempt_count & (HARDIRQ_MASK | SOFTIRQ_OFFSET) else " <IRQ>",
        *exception_lines(exc),
        " </TASK>" if not task.preempt_count & (HARDIRQ_MASK | SOFTIRQ_OFFSET) else " </IRQ>",
        "---[ end trace 0000000000000000 ]---",
    ]
    log_text(k, 1, "\n".join(lines))
    oops = Oops(number, exc, task.comm, task.pid, task.cpu, where, tuple(lines))
    k.oopses.append(oops)
    return oops


_REPORT_FUNCS = frozenset(
    {
        "_user_frames",
        "report_lines",
        "warn",
        "warn_once",
        "WARN_ON",
        "WARN_ON_ONCE",
        "BUG_ON",
        "dump_stack",
        "report_might_sleep",
        "report_schedule_bug",
        "might_sleep",
        "_might_sleep",
        "__call__",
        "record_oops",
    }
)
