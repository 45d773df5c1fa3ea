"""Tracing: the event registry, the per-kernel tracefs, per-CPU ring buffers, the text output.

Field rules:

* ``I``: set at creation (events: at import time), read-only after.
* ``A``: changed only in synchronous code, so atomic with respect to the loop's other tasks.

Kernel invariants modelled (include/trace/events/*.h, kernel/trace/trace.c, trace_output.c,
ring_buffer.c):

* Every event is declared once, with its subsystem, name, fields and the ``TP_printk`` format
  of the kernel verbatim (:func:`define_event`, called at import time by the module that owns
  the events). The call sites only fire them; the outputs (``text()``, ``pipe()``, the sinks a
  timeline writer adds) live apart from both.
* A disabled event costs its call site one attribute test on an object the site already holds:
  ``if kernel._trace_on: emit(kernel, task, EVENT, field, ...)``. ``Kernel._trace_on`` is true
  only while tracing is on *and* at least one event is enabled; :func:`emit` then checks the
  event itself. Nothing is formatted when an event is recorded: a record holds the raw fields
  (objects, numbers), and the text is made when the trace is read.
* Each CPU has its own ring buffer of ``buffer_size_kb`` (1408 KiB by default, as
  ``TRACE_BUF_SIZE_DEFAULT``); when it is full the oldest events of that CPU are overwritten and
  counted (``overrun``): the ``trace`` header shows ``entries-in-buffer/entries-written``
  (entries still in the buffers / those plus the overwritten ones) and ``trace_pipe`` prints
  ``CPU:N [LOST M EVENTS]`` before the next event of a CPU that lost some. Each record costs
  its event's size (the ring buffer's event header, ``struct trace_entry`` and the fields).
* Pointers (``%p``) print as a stable 16-hex-digit id per object, like the kernel's hashed
  pointers (32 significant bits, zero-padded): :meth:`Tracing.trace_id`. Functions (``%ps``)
  print as their names.

The record (:class:`TraceRecord`, what sinks receive and :meth:`Tracing.records` returns):

* ``ts``: nanoseconds since boot on the kernel's clock (``Kernel.get_ktime()``);
* ``seq``: the kernel-wide emission number (one event loop: records in ``seq`` order are in
  the order they happened, across CPUs, even when their timestamps are equal);
* ``cpu``, ``pid``, ``comm``: the CPU and the task the event was recorded on (in interrupt
  context the interrupted task, as in the kernel);
* ``flags``: the kernel's ``trace_entry.flags`` bits (``TRACE_FLAG_*`` below), and ``depth``:
  the preempt depth (low nibble, clamped to 15) and the migrate-disable depth (high nibble,
  clamped to 15), as ``trace_entry.preempt_count``; :attr:`TraceRecord.flag_chars` renders
  the five characters of the ``trace`` file;
* ``event``: the :class:`TraceEvent`; ``fields``: the raw values, in the order of
  ``event.fields`` (for ``trace_printk`` lines: the caller's name, the format and the args).
  A ``softirq_entry`` record holds one value more, which the kernel does not record and the
  text does not show: how the pass was entered (``"irq_exit"``, ``"local_bh_enable"``,
  ``"ksoftirqd"``, or ``"do_softirq"`` for ``do_softirq()``, as when the kernel drains them
  at shutdown), for a timeline to show.
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import os
import re
import sys
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate, islice, repeat, starmap
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.lowlevel

from ._check import bad_type, bad_value, check_bool, check_instance, check_int, check_str
from ._consts import (
    HARDIRQ_MASK,
    IRQ_WORK_VECTOR,
    LOCAL_TIMER_VECTOR,
    NMI_MASK,
    SOFTIRQ_MASK,
    SOFTIRQ_NAMES,
    SOFTIRQ_OFFSET,
    TIMER_CPUMASK,
    TIMER_DEFERRABLE,
    TIMER_IRQSAFE,
    TIMER_MIGRATING,
    TIMER_PINNED,
)
from ._context import TaskStruct, _cur, _current
from ._printk import format_c, symbol_name

if TYPE_CHECKING:
    from ._kernel import Kernel
    from ._perfetto import PerfettoStream

__all__ = [
    "TRACE_FLAG_BH_OFF",
    "TRACE_FLAG_HARDIRQ",
    "TRACE_FLAG_IRQS_OFF",
    "TRACE_FLAG_NEED_RESCHED",
    "TRACE_FLAG_NMI",
    "TRACE_FLAG_SOFTIRQ",
    "TraceEvent",
    "TraceRecord",
    "Tracing",
    "available_events",
    "define_event",
    "emit",
    "emit_locked",
    "site_task",
    "trace_id",
    "trace_printk",
    "tracing_is_on",
    "tracing_off",
    "tracing_on",
]

#: ``enum trace_flag_type`` (include/linux/trace_events.h)
TRACE_FLAG_IRQS_OFF = 0x01
TRACE_FLAG_NEED_RESCHED_LAZY = 0x02
TRACE_FLAG_NEED_RESCHED = 0x04
TRACE_FLAG_HARDIRQ = 0x08
TRACE_FLAG_SOFTIRQ = 0x10
TRACE_FLAG_PREEMPT_RESCHED = 0x20
TRACE_FLAG_NMI = 0x40
TRACE_FLAG_BH_OFF = 0x80

#: ``TRACE_BUF_SIZE_DEFAULT``: 1441792 bytes per CPU, shown as 1408 in ``buffer_size_kb``.
BUF_SIZE_KB_DEFAULT = 1408
#: The ring buffer's event header plus ``struct trace_entry`` (type, flags, preempt_count, pid).
_ENTRY_OVERHEAD = 4 + 8
#: Bytes a ``__string`` field takes besides its 4-byte ``__data_loc`` word (a typical name).
_STRING_GUESS = 16
_TYPE_SIZES = {
    "char": 1,
    "bool": 1,
    "short": 2,
    "int": 4,
    "unsigned int": 4,
    "pid_t": 4,
    "u32": 4,
    "s32": 4,
    "long": 8,
    "unsigned long": 8,
    "u64": 8,
    "s64": 8,
    "ktime_t": 8,
    "void *": 8,
}
_FIELD_DECL = re.compile(r"^(?P<type>.*?)\s*(?P<ptr>\*?)\s*(?P<name>\w+)(?:\[(?P<n>\d+)\])?$")


def _field_name_size(decl: str) -> tuple[str, int]:
    """The name and byte size of a field declared the kernel's way (``"unsigned int vec"``,
    ``"void * timer"``, ``"char comm[16]"``, ``"__string name"``)."""
    m = _FIELD_DECL.match(decl.strip())
    if m is None:
        raise ValueError(f"define_event() expects C field declarations, got {decl!r}")
    ctype = m.group("type").strip()
    if ctype == "__string":
        return m.group("name"), 4 + _STRING_GUESS
    size = 8 if m.group("ptr") else _TYPE_SIZES.get(ctype, 8)
    if m.group("n") is not None:
        size *= int(m.group("n"))
    return m.group("name"), size


class TraceEvent:
    """
    One tracepoint: ``system:name``, its fields and its ``TP_printk`` text.

    Attributes:
        system: The subsystem (``irq``, ``timer``...), the directory under ``events/``.
        name: The event name (``softirq_entry``).
        fields: The field names, in record order.
        print_fmt: The kernel's ``TP_printk`` format, verbatim.
        size: Bytes one record takes in a ring buffer.

    .. versionadded:: 0.2
    """

    __slots__ = ("_args", "_parts", "fields", "id", "name", "print_fmt", "size", "system")

    def __init__(
        self,
        system: str,
        name: str,
        fields: tuple[str, ...],
        print_fmt: str,
        args: Callable[..., tuple[object, ...]] | None,
        size: int,
        ident: int,
    ) -> None:
        self.system = system  # I
        self.name = name  # I
        self.fields = fields  # I
        self.print_fmt = print_fmt  # I
        self.size = size  # I
        self.id = ident  # I: the event's type number (registration order)
        self._args = args  # I
        self._parts = _compile(print_fmt)  # I

    def __repr__(self) -> str:
        return f"<TraceEvent {self.system}:{self.name}>"

    def render(self, fields: Sequence[object], tracing: Tracing) -> str:
        """The TP_printk text of one record's *fields* (without the event name)."""
        args = self._args(*fields) if self._args is not None else tuple(fields)
        out: list[str] = []
        i = 0
        for literal, spec, kind in self._parts:
            out.append(literal)
            if kind == _LITERAL:
                continue
            value = args[i]
            i += 1
            if kind == _PTR:
                out.append(
                    "0000000000000000" if value is None else "%016x" % tracing.trace_id(value)
                )
            elif kind in (_SYM, _SYM_OFF):
                out.append(_symbol(value, tracing, kind == _SYM_OFF))
            else:
                out.append(format_c(spec, (value,)))
        return "".join(out)


_LITERAL, _PTR, _SYM, _SYM_OFF, _VALUE = range(5)
_CONV = re.compile(r"%(?:%|[-+ #0]*\d*(?:\.\d+)?(?:hh|h|ll|l|z|t|j)?(?P<conv>[diouxXcsp]))")


def _compile(fmt: str) -> list[tuple[str, str, int]]:
    """*fmt* as (literal text, conversion, kind) parts; a last part holds the trailing text."""
    parts: list[tuple[str, str, int]] = []
    pos = 0
    lit = ""
    for m in _CONV.finditer(fmt):
        if m.start() < pos:
            continue
        lit += fmt[pos : m.start()]
        pos = m.end()
        conv = m.group("conv")
        if conv is None:  # %%
            lit += "%"
            continue
        if conv == "p":
            ext = fmt[pos : pos + 1]
            if ext in ("s", "f"):
                pos += 1
                kind = _SYM
            elif ext in ("S", "F"):
                pos += 1
                kind = _SYM_OFF
            else:
                if ext in ("K", "x"):
                    pos += 1
                kind = _PTR
        else:
            kind = _VALUE
        parts.append((lit, m.group(0), kind))
        lit = ""
    parts.append((lit + fmt[pos:], "", _LITERAL))
    return parts


def _symbol(value: object, tracing: Tracing, offset: bool) -> str:
    """``%ps``/``%pS``: a function's name; an object that is a module global (a static
    ``DECLARE_TASKLET``) its variable's name; anything else an address, as ``%ps`` prints a
    pointer no symbol covers (a stable one: :meth:`Tracing.trace_id` in a kernel-looking
    range)."""
    if value is None:
        return "0x0"
    if isinstance(value, str):
        return value
    if callable(value) and (hasattr(value, "__qualname__") or hasattr(value, "__func__")):
        return symbol_name(value, offset=offset)
    static = _static_name(value)
    if static is not None:
        return static + ("+0x0/0x0" if offset else "")
    return "0xffff8880%08x" % tracing.trace_id(value)


def _static_name(obj: object) -> str | None:
    """The name of the module-level variable holding *obj* in the module of its callback, if
    there is one (how kallsyms names a static object)."""
    fn = getattr(obj, "func", None) or getattr(obj, "function", None)
    fn = getattr(fn, "__func__", fn)
    glob = getattr(fn, "__globals__", None)
    if not isinstance(glob, dict):
        return None
    for name, value in glob.items():
        if value is obj:
            return str(name)
    return None


#: I after import: every event defined, in definition order
_events: list[TraceEvent] = []
_by_key: dict[str, TraceEvent] = {}


def define_event(
    system: str,
    name: str,
    fields: Sequence[str],
    print_fmt: str,
    args: Callable[..., tuple[object, ...]] | None = None,
) -> TraceEvent:
    """
    Declare the tracepoint ``system:name`` (the kernel's ``TRACE_EVENT``); call at import time.

    Args:
        system: The subsystem (``TRACE_SYSTEM``).
        name: The event's name.
        fields: The ``TP_STRUCT__entry`` fields as C declarations (``"unsigned int vec"``,
            ``"void * timer"``, ``"__string name"``, ``"char comm[16]"``): their names are the
            record's field names, their types give the record's size in a ring buffer.
        print_fmt: The ``TP_printk`` format, verbatim. A bare ``%p`` prints the object's stable
            id (:meth:`Tracing.trace_id`), ``%ps`` a function's name.
        args: The ``TP_printk`` arguments computed from the raw fields (``args(*fields)``), when
            they are not the fields themselves (``__print_symbolic``, ``expires - now``...).

    Returns:
        The event: what call sites pass to :func:`emit`.

    .. versionadded:: 0.2
    """
    key = f"{system}:{name}"
    if key in _by_key:
        raise ValueError(f"define_event(): the event {key} is already defined")
    names = []
    size = _ENTRY_OVERHEAD
    for decl in fields:
        fname, fsize = _field_name_size(decl)
        names.append(fname)
        size += fsize
    size = (size + 3) & ~3
    event = TraceEvent(system, name, tuple(names), print_fmt, args, size, len(_events) + 1)
    _events.append(event)
    _by_key[key] = event
    return event


def available_events() -> list[str]:
    """Every event defined, as ``"subsystem:event"`` (the ``available_events`` file)."""
    return [f"{e.system}:{e.name}" for e in _events]


#: ``trace_printk()``'s lines: the ``bprint`` entry of the ftrace subsystem (not an event one
#: enables: it is written whenever tracing is on); 48 bytes: header, entry, ip, fmt, a few args
BPRINT = TraceEvent("ftrace", "bprint", ("ip", "fmt", "buf"), "%ps: %s", None, 48, 6)


#: ``TraceRecord`` built from a tuple of its fields without a Python-level ``__new__``.
_new_record = tuple.__new__


class TraceRecord(NamedTuple):
    """
    One event in a ring buffer (see the module docstring for what each field holds). A named
    tuple: building one is the cheapest object Python makes, which keeps tracepoints cheap.

    .. versionadded:: 0.2
    """

    ts: int
    seq: int
    cpu: int
    pid: int
    comm: str
    flags: int
    depth: int
    event: TraceEvent
    fields: tuple[Any, ...]

    def __repr__(self) -> str:
        return (
            f"<TraceRecord {self.event.system}:{self.event.name} cpu={self.cpu} "
            f"pid={self.pid} ts={self.ts}>"
        )

    @property
    def flag_chars(self) -> str:
        """The five context characters of the ``trace`` file (``trace_print_lat_fmt``)."""
        f = self.flags
        irqs_off = f & TRACE_FLAG_IRQS_OFF
        bh_off = f & TRACE_FLAG_BH_OFF
        if irqs_off and bh_off:
            c1 = "D"
        elif irqs_off:
            c1 = "d"
        elif bh_off:
            c1 = "b"
        else:
            c1 = "."
        resched = f & (
            TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_NEED_RESCHED_LAZY | TRACE_FLAG_PREEMPT_RESCHED
        )
        c2 = _RESCHED_CHARS.get(resched, ".")
        nmi = f & TRACE_FLAG_NMI
        hard = f & TRACE_FLAG_HARDIRQ
        soft = f & TRACE_FLAG_SOFTIRQ
        if nmi and hard:
            c3 = "Z"
        elif nmi:
            c3 = "z"
        elif hard and soft:
            c3 = "H"
        elif hard:
            c3 = "h"
        elif soft:
            c3 = "s"
        else:
            c3 = "."
        pc = self.depth & 0xF
        md = self.depth >> 4
        return c1 + c2 + c3 + ("%x" % pc if pc else ".") + ("%x" % md if md else ".")


_RESCHED_CHARS = {
    TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_NEED_RESCHED_LAZY | TRACE_FLAG_PREEMPT_RESCHED: "B",
    TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_PREEMPT_RESCHED: "N",
    TRACE_FLAG_NEED_RESCHED_LAZY | TRACE_FLAG_PREEMPT_RESCHED: "L",
    TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_NEED_RESCHED_LAZY: "b",
    TRACE_FLAG_NEED_RESCHED: "n",
    TRACE_FLAG_PREEMPT_RESCHED: "p",
    TRACE_FLAG_NEED_RESCHED_LAZY: "l",
}


#: The flags and depth of plain process context: nothing set.
_PLAIN_TASK = (0, 0)


def context_flags(task: TaskStruct) -> tuple[int, int]:
    """``tracing_gen_ctx()`` for *task*: the ``TRACE_FLAG_*`` bits and the depth byte."""
    pc = task.preempt_count
    if not pc and not task.irqs_off and not task.migration_disabled and not task.need_resched:
        return _PLAIN_TASK  # a task in plain process context: ``.....``
    flags = task.need_resched  # (TRACE_FLAG_NEED_RESCHED, PREEMPT_RESCHED: set by a wake-up)
    if task.irqs_off or pc & HARDIRQ_MASK:
        flags |= TRACE_FLAG_IRQS_OFF
    if pc & NMI_MASK:
        flags |= TRACE_FLAG_NMI
    if pc & HARDIRQ_MASK:
        flags |= TRACE_FLAG_HARDIRQ
    if pc & SOFTIRQ_OFFSET:
        flags |= TRACE_FLAG_SOFTIRQ
    if (pc & SOFTIRQ_MASK) >> 9:  # softirq_count() >> (SOFTIRQ_SHIFT + 1): BH disabled
        flags |= TRACE_FLAG_BH_OFF
    depth = min(pc & 0xFF, 15) | min(task.migration_disabled, 15) << 4
    return flags, depth


#: A raw record as a tracepoint appends it to its CPU's buffer: ``(time, seq, task, ctx,
#: event, *fields)``, one flat tuple (one object fewer to make and free): the loop clock's
#: reading (converted to nanoseconds since boot when the record is read), the kernel-wide
#: sequence number, the task (its pid and comm are read with the record, as the kernel reads
#: comms from its saved cmdlines), ``flags | depth << 8``, the event, then its raw fields. The
#: CPU is the buffer's.
_Raw = tuple[Any, ...]

#: A CPU's buffer is accounted (see :class:`_CpuBuffer`) once it holds more raw records than
#: ``Tracing._hi``: this at first; after an accounting, what the largest buffer kept plus
#: _SYNC_SLACK records, or plus 1/_SYNC_SHARE of them if that is more (memory stays within a
#: few times the buffers' own, and each accounting has many new records to take).
_SYNC_MIN = 8192
_SYNC_SLACK = 1024
_SYNC_SHARE = 4


class _CpuBuffer:
    """
    One CPU's ring buffer: its records, their bytes, and what was overwritten.

    A tracepoint only appends a raw record to :attr:`raw`. The records are accounted (their
    sizes summed, the oldest dropped and counted while the bytes exceed the buffer's size) by
    :meth:`Tracing._sync`, before anything reads the buffer and when it grows past a bound:
    dropping from the front until the rest fits keeps the longest run of newest records that
    fits, whether it is done after each record or after many, so what a reader sees is what a
    ring buffer overwriting on each write would hold.
    """

    __slots__ = ("bytes", "lost", "overrun", "raw", "synced")

    def __init__(self) -> None:
        self.raw: deque[_Raw] = deque()  # A
        self.synced = 0  # A: raw[:synced] are accounted in bytes (the rest are newer)
        self.bytes = 0  # A: what the accounted records take
        self.overrun = 0  # A: records overwritten since the last clear()
        self.lost = 0  # A: records overwritten since the pipe last read this CPU


class _Sinks(list[Callable[["TraceRecord"], object]]):
    """:attr:`Tracing.sinks`: a list that tells its tracing when it gains or loses members
    (an empty one costs a tracepoint nothing)."""

    def __init__(self, tracing: Tracing, items: Sequence[Callable[[TraceRecord], object]] = ()):
        super().__init__(items)
        self._tracing = tracing

    def _changed(self) -> None:
        self._tracing._rearm()


def _notifying(name: str) -> Callable[..., Any]:
    method = getattr(list, name)

    def wrapper(self: _Sinks, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        self._changed()
        return self if name == "__iadd__" else result

    wrapper.__name__ = name
    return wrapper


for _name in (
    "append",
    "extend",
    "insert",
    "remove",
    "pop",
    "clear",
    "__setitem__",
    "__delitem__",
    "__iadd__",
):
    setattr(_Sinks, _name, _notifying(_name))
del _name


def _no_clock() -> float:
    return 0.0


#: A raw record's event, and an event's size in a ring buffer (for map(): no Python frames)
_event_of = itemgetter(4)
_size_of = attrgetter("size")


class Tracing:
    """
    The tracefs of one :class:`~kdefer_async.Kernel` (``/sys/kernel/tracing``): ``k.tracing``.

    Events are enabled with :meth:`set_event` (``Kernel(trace=...)`` does it at boot); while
    tracing is on (:func:`tracing_on`, the default) each enabled event is recorded in the ring
    buffer of the CPU it happened on. :meth:`text` renders the ``trace`` file, :meth:`pipe`
    consumes like ``trace_pipe``; :attr:`sinks` are called with each record as it is recorded.
    :meth:`write_perfetto` and :meth:`stream_perfetto` write a timeline for ui.perfetto.dev,
    :meth:`write_timeline` draws one as a picture.

    .. versionadded:: 0.2
    """

    def __init__(self, kernel: Kernel) -> None:
        from ._kernel import Kernel  # (at run time: _kernel imports this module)

        check_instance(kernel, Kernel, "Tracing", "kernel")
        self._kernel = kernel  # I
        self._on = True  # A: tracing_on / tracing_off
        self._enabled: set[TraceEvent] = set()  # A
        self._size_kb = BUF_SIZE_KB_DEFAULT  # A
        self._cpus: list[_CpuBuffer] = []  # A: grown to nr_cpus on first use
        self._raw: list[deque[_Raw]] = []  # A: each buffer's raw deque, for the tracepoints
        self._seq = itertools.count(1).__next__  # A: the next record's seq
        self._clock: Callable[[], float] = _no_clock  # I after boot: the loop's clock
        self._epoch = 0.0  # I after boot: the loop time of boot
        self._hi = _SYNC_MIN  # A: the raw length that makes a buffer be accounted
        #: A: a tracepoint calls _after() when its buffer is longer than this: _hi, or -1
        #: while there are sinks or a waiting pipe reader (they see every record at once)
        self._check = _SYNC_MIN
        self._sinks = _Sinks(self)  # A
        self._ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # A
        self._strong_ids: dict[int, tuple[object, int]] = {}  # A: objects without weakrefs
        self._next_id = 0  # A
        #: A: CPUs whose CALL_FUNCTION IPI was sent to them alone (CALL_FUNCTION_SINGLE)
        self._single_ipi: set[int] = set()
        self._pipe_wakeup: anyio.Event | None = None  # A: set when a pipe reader waits
        self._streams: list[PerfettoStream] = []  # A: open stream_perfetto() writers

    @property
    def sinks(self) -> list[Callable[[TraceRecord], object]]:
        """Callables called with each :class:`TraceRecord` as it is recorded, in order (a
        streaming writer appends itself here). Assigning a list replaces them."""
        return self._sinks

    @sinks.setter
    def sinks(self, sinks: Sequence[Callable[[TraceRecord], object]]) -> None:
        self._sinks = _Sinks(self, sinks)
        self._rearm()

    def _rearm(self) -> None:
        """Recompute the tracepoints' one test of their buffer's length (:attr:`_check`)."""
        hooked = bool(self._sinks) or self._pipe_wakeup is not None
        self._check = -1 if hooked else self._hi

    def _booted(self, clock: Callable[[], float], epoch: float) -> None:
        """The kernel booted at loop time *epoch* of *clock*: records are stamped on it (any
        made before boot read as boot)."""
        for buf in self._cpus:
            buf.raw = deque((epoch, *r[1:]) for r in buf.raw)
        self._raw = [buf.raw for buf in self._cpus]
        self._grow(self._kernel.nr_cpus - 1)  # (from now on each CPU has its buffer)
        self._clock = clock
        self._epoch = epoch

    def __repr__(self) -> str:
        state = "on" if self._on else "off"
        return f"<Tracing {state} events={len(self._enabled)} buffer_size_kb={self._size_kb}>"

    # -- events -------------------------------------------------------------------------------

    def available_events(self) -> list[str]:
        """
        Every event this kernel can trace, as ``"subsystem:event"`` (``available_events``).

        .. versionadded:: 0.2
        """
        return available_events()

    def enabled_events(self) -> list[str]:
        """
        The events enabled now, as ``"subsystem:event"`` (reading ``set_event``).

        .. versionadded:: 0.2
        """
        return [f"{e.system}:{e.name}" for e in _events if e in self._enabled]

    def set_event(self, spec: str) -> None:
        """
        Enable (or, with a leading ``!``, disable) the events *spec* names: one line written to
        ``set_event``.

        *spec* is ``subsystem:event``, ``subsystem:*`` or ``subsystem:`` (every event of
        the subsystem), ``*:event``, ``*:*`` (everything), or a bare word, which names an
        event or a subsystem (``timer``, ``softirq_entry``).

        Raises:
            TypeError: *spec* is not a str.
            ValueError: *spec* names no event (the message lists close matches); nothing is
                changed.

        Context:
            Any context; never sleeps.

        .. versionadded:: 0.2
        """
        check_str(spec, "Tracing.set_event", "spec")
        events = self._match(spec, "Tracing.set_event", "spec")
        if spec.strip().startswith("!"):
            self._enabled.difference_update(events)
        else:
            self._enabled.update(events)
        self._update()

    def _boot_events(self, trace: object) -> None:
        """``Kernel(trace=...)``: ``True`` (every event), ``False``, or comma-separated specs;
        all checked before any is enabled."""
        if trace is True:
            self._enabled.update(_events)
        elif trace is False:
            return
        elif isinstance(trace, str):
            found: list[TraceEvent] = []
            removed: list[TraceEvent] = []
            for part in trace.split(","):
                events = self._match(part, "Kernel", "trace")
                (removed if part.strip().startswith("!") else found).extend(events)
            self._enabled.update(found)
            self._enabled.difference_update(removed)
        else:
            raise bad_type("Kernel", "trace", "a bool or an event spec str", trace)
        self._update()

    def clear_events(self) -> None:
        """
        Disable every event (``echo > set_event``).

        .. versionadded:: 0.2
        """
        self._enabled.clear()
        self._update()

    def _match(self, spec: str, func: str, param: str) -> list[TraceEvent]:
        """The events *spec* names (``ftrace_set_clr_event()``'s parsing); a ValueError
        naming close matches if none."""
        text = spec.strip()
        if text.startswith("!"):
            text = text[1:].strip()
        if not text:
            raise bad_value(func, param, "an event spec such as 'irq:softirq_entry'", spec)
        if ":" in text:
            sub, _, name = text.partition(":")
            sub = "" if sub == "*" else sub
            name = "" if name == "*" else name
            found = [
                e for e in _events if (not sub or e.system == sub) and (not name or e.name == name)
            ]
        elif text == "*":
            found = list(_events)
        else:
            found = [e for e in _events if text in (e.name, e.system)]
        if not found:
            words = sorted({e.system for e in _events} | {e.name for e in _events})
            words += available_events()
            close = difflib.get_close_matches(text, words, n=5, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(
                f"{func}() expects an event spec naming an event for '{param}', got "
                f"{spec!r}: no such event or subsystem{hint}"
            )
        return found

    def _update(self) -> None:
        kernel = self._kernel
        on = self._on and bool(self._enabled)
        if on != kernel._trace_on:
            # the sched events' model of what runs is not kept while tracing is off: no
            # need-resched mark outlives a switch it would not see
            st = getattr(kernel, "_sched_trace", None)
            if st is not None:
                for task in st.curr:
                    task.need_resched = 0
        kernel._trace_on = on

    # -- on / off -----------------------------------------------------------------------------

    def _set_on(self, on: bool) -> None:
        self._on = on
        self._update()
        if not on:
            self._wake_pipe()

    # -- buffers ------------------------------------------------------------------------------

    @property
    def buffer_size_kb(self) -> int:
        """
        The size of each CPU's ring buffer in KiB (``buffer_size_kb``; 1408 by default).

        Setting it resizes every CPU's buffer; a smaller size drops the oldest records, which
        count as overwritten.

        Raises:
            TypeError: The new size is not an int.
            ValueError: The new size is zero or negative.

        .. versionadded:: 0.2
        """
        return self._size_kb

    @buffer_size_kb.setter
    def buffer_size_kb(self, kb: int) -> None:
        check_int(kb, "Tracing.buffer_size_kb", "kb", lo=1, expected="a size in KiB >= 1")
        self._sync_all()  # what the old size had overwritten stays overwritten
        self._size_kb = kb
        self._sync_all()

    def _grow(self, cpu: int) -> deque[_Raw]:
        """The raw deque of CPU *cpu*'s buffer, the buffers made up to it."""
        while len(self._cpus) <= cpu:
            buf = _CpuBuffer()
            self._cpus.append(buf)
            self._raw.append(buf.raw)
        return self._raw[cpu]

    def _sync(self, buf: _CpuBuffer) -> None:
        """Account *buf*'s new records: add their sizes, then overwrite (drop and count) the
        oldest while the buffer is over its size."""
        raw = buf.raw
        new = len(raw) - buf.synced
        total = buf.bytes
        if new:
            total += sum(map(_size_of, map(_event_of, islice(reversed(raw), new))))
        limit = self._size_kb * 1024
        if total > limit:
            # overwrite the fewest oldest records whose sizes cover the excess: found and
            # dropped by C loops (about as many as the new ones, so look that far first)
            excess = total - limit
            sizes = map(_size_of, map(_event_of, islice(raw, new + 64)))
            upto = list(accumulate(sizes))
            while upto[-1] < excess:  # the oldest are smaller than the newest: look further
                older = map(_size_of, map(_event_of, islice(raw, len(upto), 2 * len(upto))))
                more = accumulate(older, initial=upto[-1])
                next(more)  # (the initial sum: already the last of upto)
                upto.extend(more)
            drop = bisect_left(upto, excess) + 1
            total -= upto[drop - 1]
            deque(starmap(raw.popleft, repeat((), drop)), 0)
            buf.overrun += drop
            buf.lost += drop
        buf.bytes = total
        buf.synced = len(raw)
        hi = len(raw) + max(_SYNC_SLACK, len(raw) // _SYNC_SHARE)
        if hi > self._hi:
            self._hi = hi
            self._rearm()

    def _sync_all(self) -> list[_CpuBuffer]:
        """Every CPU's buffer, accounted (see :meth:`_sync`)."""
        if len(self._cpus) < self._kernel.nr_cpus:
            self._grow(self._kernel.nr_cpus - 1)
        for buf in self._cpus:
            if buf.synced != len(buf.raw) or buf.bytes > self._size_kb * 1024:
                self._sync(buf)
        return self._cpus

    def _after(self, cpu: int) -> None:
        """A tracepoint appended a record to CPU *cpu*'s buffer, and :attr:`_check` says more
        must be done: account the buffer if it has grown past the bound, hand the record to
        the sinks, wake a pipe reader."""
        buf = self._cpus[cpu]
        raw = buf.raw
        rec = raw[-1]
        if len(raw) > self._hi:
            self._sync(buf)
        if self._sinks:
            record = self._cook(rec, cpu)
            for sink in self._sinks:
                sink(record)
        if self._pipe_wakeup is not None:
            self._wake_pipe()

    def _cook(self, raw: _Raw, cpu: int) -> TraceRecord:
        """The :class:`TraceRecord` of a raw record of CPU *cpu*'s buffer."""
        t, seq, task, ctx, event = raw[:5]
        ns = int((t - self._epoch) * 1e9 + 0.5)
        return _new_record(
            TraceRecord, (ns, seq, cpu, task.pid, task.comm, ctx & 0xFF, ctx >> 8, event, raw[5:])
        )

    def _overruns(self) -> list[int]:
        """Each CPU's count of overwritten records since the last :meth:`clear`."""
        return [buf.overrun for buf in self._sync_all()]

    def clear(self) -> None:
        """
        Empty every ring buffer and reset its counters (``echo > trace``).

        .. versionadded:: 0.2
        """
        for buf in self._cpus:
            buf.raw.clear()
            buf.bytes = buf.overrun = buf.lost = buf.synced = 0

    def _record(
        self,
        cpu: int,
        task: TaskStruct,
        flags: int,
        depth: int,
        event: TraceEvent,
        fields: tuple[Any, ...],
    ) -> None:
        """Stamp and store one record in CPU *cpu*'s ring buffer (the oldest go when it is
        full), and hand it to the sinks. (:func:`emit` and :func:`emit_locked` do the same
        inline.)"""
        try:
            raw = self._raw[cpu]
        except IndexError:
            raw = self._grow(cpu)
        ctx = flags | depth << 8
        raw.append((self._clock(), self._seq(), task, ctx, event) + fields)  # noqa: RUF005
        if len(raw) > self._check:
            self._after(cpu)

    def _wait_pipe(self) -> anyio.Event:
        """The event a pipe reader waits on for the next record."""
        ev = self._pipe_wakeup
        if ev is None:
            ev = self._pipe_wakeup = anyio.Event()
            self._rearm()
        return ev

    def _wake_pipe(self) -> None:
        ev = self._pipe_wakeup
        if ev is not None:
            self._pipe_wakeup = None
            self._rearm()
            ev.set()

    # -- ids ----------------------------------------------------------------------------------

    def trace_id(self, obj: object) -> int:
        """
        The stable id ``%p`` prints for *obj* in this kernel's trace: a 32-bit value, the same
        for the object's whole life, distinct between objects (the kernel's hashed pointers).

        .. versionadded:: 0.2
        """
        try:
            return self._ids[obj]
        except KeyError:
            pass
        except TypeError:  # not weakly referenceable (or unhashable): keep it alive instead
            entry = self._strong_ids.get(id(obj))
            if entry is not None:
                return entry[1]
            ident = self._new_id()
            self._strong_ids[id(obj)] = (obj, ident)
            return ident
        ident = self._new_id()
        self._ids[obj] = ident
        return ident

    def _new_id(self) -> int:
        self._next_id += 1
        # an odd multiplier is a bijection modulo 2**32: distinct, and hash-looking
        return (0x9E3779B1 * self._next_id + 0x5BD1E995) & 0xFFFFFFFF

    # -- reading ------------------------------------------------------------------------------

    def records(self) -> list[TraceRecord]:
        """
        Every record in the ring buffers, oldest first (all CPUs merged in the order the
        events happened), without consuming them.

        .. versionadded:: 0.2
        """
        cook = self._cook
        per_cpu = [[cook(rec, cpu) for rec in buf.raw] for cpu, buf in enumerate(self._sync_all())]
        if len(per_cpu) == 1:
            return per_cpu[0]
        return list(heapq.merge(*per_cpu, key=_seq_key))  # each is in seq order already

    def format_record(self, rec: TraceRecord) -> str:
        """
        One line of the ``trace`` file for *rec* (no newline).

        .. versionadded:: 0.2
        """
        comm = "<idle>" if rec.pid == 0 else rec.comm
        usecs = (rec.ts + 500) // 1000  # ns2usecs() rounds
        secs, usec_rem = divmod(usecs, 1_000_000)
        ev = rec.event
        if ev is BPRINT:
            ip, fmt, args = rec.fields
            body = f"{ip}: {_bprint_text(fmt, args)}"
        else:
            body = f"{ev.name}: {ev.render(rec.fields, self)}"
        return "%16s-%-7d [%03d] %s %5d.%06d: %s" % (
            comm,
            rec.pid,
            rec.cpu,
            rec.flag_chars,
            secs,
            usec_rem,
            body,
        )

    def text(self) -> str:
        """
        The ``trace`` file: the header, then every record in the ring buffers, oldest first.

        Reading does not consume (see :meth:`pipe`).

        .. versionadded:: 0.2
        """
        bufs = self._sync_all()
        entries = sum(len(buf.raw) for buf in bufs)
        written = entries + sum(buf.overrun for buf in bufs)
        lines = [
            "# tracer: nop",
            "#",
            f"# entries-in-buffer/entries-written: {entries}/{written}   #P:{self._kernel.nr_cpus}",
            "#",
            "#                                _-----=> irqs-off/BH-disabled",
            "#                               / _----=> need-resched",
            "#                              | / _---=> hardirq/softirq",
            "#                              || / _--=> preempt-depth",
            "#                              ||| / _-=> migrate-disable",
            "#                              |||| /     delay",
            "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
            "#              | |         |   |||||     |         |",
        ]
        lines.extend(self.format_record(rec) for rec in self.records())
        return "\n".join(lines) + "\n"

    def _consume(self) -> list[str]:
        """Take the oldest record off its buffer: its line, preceded by a LOST line if due."""
        best: _CpuBuffer | None = None
        best_cpu = 0
        for cpu, buf in enumerate(self._sync_all()):
            if buf.raw and (best is None or buf.raw[0][1] < best.raw[0][1]):
                best, best_cpu = buf, cpu
        if best is None:
            return []
        out = []
        if best.lost:
            out.append(f"CPU:{best_cpu} [LOST {best.lost} EVENTS]")
            best.lost = 0
        rec = best.raw.popleft()
        best.bytes -= rec[4].size
        best.synced -= 1
        out.append(self.format_record(self._cook(rec, best_cpu)))
        return out

    # -- timelines (the writers live in _perfetto and _timeline) --------------------------------

    def write_perfetto(self, path: str | os.PathLike[str]) -> None:
        """
        Write the records in the ring buffers as a timeline for ui.perfetto.dev: a
        Chrome/Perfetto JSON object trace (``{"traceEvents": [...]}``), gzip-compressed when
        *path* ends in ``.gz``.

        One process per CPU (``CPU N``) holds its ``hardirq`` and ``softirq`` tracks, with the
        tasklets, timer callbacks and BH work nested in the softirq slice that ran them; the
        ``kernel`` process has a thread per kernel task (kworkers, ksoftirqd, kthreads), the
        ``init`` process the user tasks; arrows follow each queueing instance (a work item from
        ``queue_work`` to its execution, a timer from its arm to its expiry, a tasklet or a
        softirq from its raise to its run); counters show each CPU's pending softirqs and each
        workqueue's active and inactive items. Slices still open are written as begun, not
        ended. The layout and its choices: the docstring of ``kdefer_async._perfetto``.

        Raises:
            TypeError: *path* is not a str or an ``os.PathLike``.
            OSError: The file cannot be written (the error names the path).

        Context:
            Any context (it does not sleep), though a large trace takes a while.

        .. versionadded:: 0.2
        """
        from ._perfetto import check_path, write_perfetto

        write_perfetto(self, check_path(path, "Tracing.write_perfetto"))

    def stream_perfetto(self, path: str | os.PathLike[str]) -> PerfettoStream:
        """
        Write the timeline of :meth:`write_perfetto` as the events are recorded, for runs too
        long for the ring buffers: from now until the stream is closed, every record goes to
        *path* too (gzip-compressed when it ends in ``.gz``), in the bare-array JSON form
        (``[`` and one event per line), which Perfetto loads even if the program dies before
        the end. Memory stays constant whatever the length of the run.

        The stream closes when the kernel halts (the end of ``async with Kernel()``), or
        earlier by :meth:`PerfettoStream.close` (it is also a context manager). It may be
        opened before the kernel boots, to trace from the first event.

        Returns:
            The open :class:`~kdefer_async._perfetto.PerfettoStream`.

        Raises:
            TypeError: *path* is not a str or an ``os.PathLike``.
            OSError: The file cannot be created (the error names the path).

        Context:
            Any context; never sleeps.

        .. versionadded:: 0.2
        """
        from ._perfetto import PerfettoStream, check_path

        return PerfettoStream(self, check_path(path, "Tracing.stream_perfetto"))

    def write_timeline(self, path: str | os.PathLike[str], *, linear: bool = False) -> None:
        """
        Draw the records in the ring buffers as a static timeline picture: SVG, or PNG when
        *path* ends in ``.png``. Needs matplotlib (``pip install kdefer-async[timeline]``).

        One lane per CPU for hardirq and one for softirq, then one lane per kernel task
        (kworkers, ksoftirqd, kthreads) and per user task that has events; slices coloured by
        kind, with a legend; arrows for a sample of the flows of :meth:`write_perfetto`. By
        default the time axis is compressed so that events in one instant (virtual time) stay
        apart and long idle gaps do not flatten the rest: each step between two event
        boundaries gets one unit plus the logarithm of its length; the axis is labelled with
        the real times. ``linear=True`` draws real time to scale.

        Raises:
            TypeError: *path* is not a str or an ``os.PathLike``, or *linear* not a bool.
            ValueError: *path* does not end in ``.svg`` or ``.png``.
            ImportError: matplotlib is not installed (the message names the extra).
            OSError: The file cannot be written.

        Context:
            Any context (it does not sleep), though drawing takes a while.

        .. versionadded:: 0.2
        """
        from ._perfetto import check_path

        target = check_path(path, "Tracing.write_timeline")
        if not target.lower().endswith((".svg", ".png")):
            raise bad_value(
                "Tracing.write_timeline", "path", "a path ending in .svg or .png", target
            )
        check_bool(linear, "Tracing.write_timeline", "linear")
        from ._timeline import write_timeline

        write_timeline(self, target, linear=linear)

    def _halt(self) -> None:
        """The kernel halted: readers of ``trace_pipe`` see the end, streams are closed."""
        self._wake_pipe()
        for stream in list(self._streams):
            stream.close()

    def pipe(self) -> TracePipe:
        """
        ``trace_pipe``: an async iterator over the records as lines (no newline), each
        consumed as it is read: ``async for line in k.tracing.pipe():``.

        Waits while the buffers are empty. As the kernel's ``trace_pipe`` does, it keeps
        waiting while tracing is off if it has returned nothing yet, and ends (EOF) when the
        buffers are empty and tracing is off after it has returned something; it also ends
        when the kernel halts. A reader that stops early leaves the rest in the buffers.
        Before the first line of a CPU that lost events to overwriting since it was last
        read comes ``CPU:N [LOST M EVENTS]``.

        Context:
            The iteration is async: each step is a checkpoint, and waits while empty.

        .. versionadded:: 0.2
        """
        return TracePipe(self)


class TracePipe:
    """
    A reader of ``trace_pipe`` (see :meth:`Tracing.pipe`): an async iterator of lines.

    .. versionadded:: 0.2
    """

    __slots__ = ("_pending", "_read", "_tracing")

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing  # I
        self._pending: deque[str] = deque()  # A: a LOST line's event, not returned yet
        self._read = False  # A: this reader has returned a line

    def __aiter__(self) -> TracePipe:
        return self

    async def __anext__(self) -> str:
        tracing = self._tracing
        kernel = tracing._kernel
        await anyio.lowlevel.checkpoint()
        while True:
            if self._pending:
                return self._pending.popleft()
            lines = tracing._consume()
            if lines:
                self._read = True
                self._pending.extend(lines[1:])
                return lines[0]
            if kernel._halted or (self._read and not tracing._on):
                raise StopAsyncIteration
            await tracing._wait_pipe().wait()


def _seq_key(rec: TraceRecord) -> int:
    return rec.seq


def _bprint_text(fmt: str, args: tuple[object, ...]) -> str:
    text = format_c(fmt, args)
    return text[:-1] if text.endswith("\n") else text


def emit(kernel: Kernel, task: TaskStruct, event: TraceEvent, *fields: object) -> None:
    """
    Record *event* with its raw *fields*, on *task*'s CPU, if the event is enabled.

    Call it only after the site's test of ``kernel._trace_on`` (the one check a disabled
    tracepoint costs). *task* is the running task (in interrupt context, the borrowed one).

    .. versionadded:: 0.2
    """
    tracing = kernel.tracing
    if event not in tracing._enabled:
        return
    if task.preempt_count or task.irqs_off or task.migration_disabled or task.need_resched:
        flags, depth = context_flags(task)
    else:
        flags = depth = 0
    cpu = task.cpu
    try:
        raw = tracing._raw[cpu]
    except IndexError:
        raw = tracing._grow(cpu)
    ctx = flags | depth << 8
    # (a concatenation builds the flat record faster than unpacking into a display)
    raw.append((tracing._clock(), tracing._seq(), task, ctx, event) + fields)  # noqa: RUF005
    if len(raw) > tracing._check:
        tracing._after(cpu)


def emit_locked(kernel: Kernel, task: TaskStruct, event: TraceEvent, *fields: object) -> None:
    """:func:`emit` for a tracepoint the kernel fires with a raw spinlock held and local
    interrupts saved (the timer base lock, the hrtimer base lock): the record shows interrupts
    off and one more preempt level than *task* has."""
    tracing = kernel.tracing
    if event not in tracing._enabled:
        return
    if task.preempt_count or task.irqs_off or task.migration_disabled or task.need_resched:
        flags, depth = context_flags(task)
        if depth & 0xF < 15:
            depth += 1
    else:
        flags, depth = 0, 1
    cpu = task.cpu
    try:
        raw = tracing._raw[cpu]
    except IndexError:
        raw = tracing._grow(cpu)
    ctx = flags | TRACE_FLAG_IRQS_OFF | depth << 8
    raw.append((tracing._clock(), tracing._seq(), task, ctx, event) + fields)  # noqa: RUF005
    if len(raw) > tracing._check:
        tracing._after(cpu)


def site_task(kernel: Kernel, cpu: int) -> TaskStruct:
    """The task a tracepoint reached without one in hand records: the running task of
    *kernel*, or CPU *cpu*'s idle task when none is (at boot, from a foreign context)."""
    task = _current.get()
    if task is None or task.kernel is not kernel:
        return kernel.cpus[cpu].swapper
    return task


def trace_vector(kernel: Kernel, task: TaskStruct, vector: int, entry: bool) -> None:
    """The ``irq_vectors`` entry (or exit) event of the model's system *vector*, with the x86
    vector number; a CALL_FUNCTION IPI sent to one CPU is the CALL_FUNCTION_SINGLE vector, as
    ``send_call_function_single_ipi()`` sends it."""
    if vector == LOCAL_TIMER_VECTOR:
        pair, number = (LOCAL_TIMER_ENTRY, LOCAL_TIMER_EXIT), X86_LOCAL_TIMER_VECTOR
    elif vector == IRQ_WORK_VECTOR:
        pair, number = (IRQ_WORK_ENTRY, IRQ_WORK_EXIT), X86_IRQ_WORK_VECTOR
    else:
        single = kernel.tracing._single_ipi
        if task.cpu in single:
            pair = (CALL_FUNCTION_SINGLE_ENTRY, CALL_FUNCTION_SINGLE_EXIT)
            number = X86_CALL_FUNCTION_SINGLE_VECTOR
            if not entry:
                single.discard(task.cpu)
        else:
            pair, number = (CALL_FUNCTION_ENTRY, CALL_FUNCTION_EXIT), X86_CALL_FUNCTION_VECTOR
    emit(kernel, task, pair[0] if entry else pair[1], number)


def trace_ipi_send(kernel: Kernel, task: TaskStruct, targets: list[int], callsite: object) -> None:
    """``ipi_send_cpu`` for one target (the CALL_FUNCTION_SINGLE IPI), else
    ``ipi_send_cpumask``; the callback is the handler the IPI runs."""
    from ._smp import call_function_interrupt

    if len(targets) == 1:
        kernel.tracing._single_ipi.add(targets[0])
        emit(kernel, task, IPI_SEND_CPU, targets[0], callsite, call_function_interrupt)
    else:
        emit(
            kernel,
            task,
            IPI_SEND_CPUMASK,
            tuple(targets),
            callsite,
            call_function_interrupt,
            kernel.nr_cpus,
        )


def trace_id(obj: object, tracing: Tracing | None = None) -> int:
    """
    The stable id ``%p`` prints for *obj* in *tracing* (default: the current kernel's).

    .. versionadded:: 0.2
    """
    if tracing is None:
        tracing = _cur().kernel.tracing
    return tracing.trace_id(obj)


def trace_printk(fmt: str, *args: object) -> int:
    """
    Write a line to the trace buffer of this CPU (the kernel's ``trace_printk()``).

    The line shows the calling function's name, then the text formatted C-style as
    ``printk`` formats it (a trailing ``\\n`` ends the line, as in the kernel). Nothing is
    written while tracing is off; no event needs to be enabled.

    Returns:
        The number of characters of the text, or 0 when tracing is off.

    Raises:
        TypeError: *fmt* is not a str, or *args* do not match it.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    check_str(fmt, "trace_printk", "fmt")
    task = _cur()
    text = format_c(fmt, args, "trace_printk")
    kernel = task.kernel
    tracing = kernel.tracing
    if not tracing._on:
        return 0
    frame = sys._getframe(1)
    caller = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
    flags, depth = context_flags(task)
    tracing._record(task.cpu, task, flags, depth, BPRINT, (caller, fmt, args))
    return len(text)


def tracing_on() -> None:
    """
    Turn tracing on for the current kernel (``echo 1 > tracing_on``; the default).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _cur().kernel.tracing._set_on(True)


def tracing_off() -> None:
    """
    Turn tracing off for the current kernel: nothing is recorded until :func:`tracing_on`;
    what is in the buffers stays (``echo 0 > tracing_on``).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _cur().kernel.tracing._set_on(False)


def tracing_is_on() -> bool:
    """
    Whether tracing is on for the current kernel.

    Context:
        Any context; never sleeps: it only reads state.

    .. versionadded:: 0.2
    """
    return _cur().kernel.tracing._on


def iter_events() -> Iterator[TraceEvent]:
    """Every event defined (for writers that need the definitions)."""
    return iter(_events)


# -- irq (include/trace/events/irq.h) ------------------------------------------------------------


def _softirq_args(vec: int, *_via: object) -> tuple[object, ...]:
    # show_softirq_name(): __print_symbolic over SOFTIRQ_NAME_LIST (a number it lacks prints as
    # itself in hex, as __print_symbolic does); a softirq_entry record also holds how the model
    # entered the pass, which the kernel does not record and the text does not show
    return (vec, SOFTIRQ_NAMES[vec] if 0 <= vec < len(SOFTIRQ_NAMES) else "0x%x" % vec)


SOFTIRQ_RAISE = define_event(
    "irq", "softirq_raise", ("unsigned int vec",), "vec=%u [action=%s]", _softirq_args
)
SOFTIRQ_ENTRY = define_event(
    "irq", "softirq_entry", ("unsigned int vec",), "vec=%u [action=%s]", _softirq_args
)
SOFTIRQ_EXIT = define_event(
    "irq", "softirq_exit", ("unsigned int vec",), "vec=%u [action=%s]", _softirq_args
)

IRQ_HANDLER_ENTRY = define_event(
    "irq", "irq_handler_entry", ("int irq", "__string name"), "irq=%d name=%s"
)
IRQ_HANDLER_EXIT = define_event(
    "irq",
    "irq_handler_exit",
    ("int irq", "int ret"),
    "irq=%d ret=%s",
    lambda irq, ret: (irq, "handled" if ret else "unhandled"),
)
TASKLET_ENTRY = define_event(
    "irq", "tasklet_entry", ("void * tasklet", "void * func"), "tasklet=%ps function=%ps"
)
TASKLET_EXIT = define_event(
    "irq", "tasklet_exit", ("void * tasklet", "void * func"), "tasklet=%ps function=%ps"
)


# -- timer (include/trace/events/timer.h) ----------------------------------------------------------

#: TIMER_ARRAYSHIFT and the bits of ``timer->flags`` ``timer_start`` decodes (include/linux/timer.h)
TIMER_ARRAYSHIFT = 22
_TIMER_FLAG_NAMES = (
    (TIMER_MIGRATING, "M"),
    (TIMER_DEFERRABLE, "D"),
    (TIMER_PINNED, "P"),
    (TIMER_IRQSAFE, "I"),
)
#: TIMER_TRACE_FLAGMASK
_TIMER_TRACE_FLAGMASK = TIMER_MIGRATING | TIMER_DEFERRABLE | TIMER_PINNED | TIMER_IRQSAFE


def _timer_flags(flags: int) -> str:
    """``decode_timer_flags()``: ``__print_flags(flags, "|", ...)``."""
    return "|".join(name for bit, name in _TIMER_FLAG_NAMES if flags & bit)


def _timer_start_args(
    timer: object, function: object, expires: int, bucket_expiry: int, now: int, flags: int
) -> tuple[object, ...]:
    return (
        timer,
        function,
        expires,
        (expires - now + 2**63) % 2**64 - 2**63,  # (long)expires - now
        bucket_expiry,
        flags & TIMER_CPUMASK,
        flags >> TIMER_ARRAYSHIFT,
        _timer_flags(flags & _TIMER_TRACE_FLAGMASK),
    )


TIMER_INIT = define_event("timer", "timer_init", ("void * timer",), "timer=%p")
TIMER_START = define_event(
    "timer",
    "timer_start",
    (
        "void * timer",
        "void * function",
        "unsigned long expires",
        "unsigned long bucket_expiry",
        "unsigned long now",
        "unsigned int flags",
    ),
    "timer=%p function=%ps expires=%lu [timeout=%ld] bucket_expiry=%lu cpu=%u idx=%u flags=%s",
    _timer_start_args,
)
TIMER_EXPIRE_ENTRY = define_event(
    "timer",
    "timer_expire_entry",
    ("void * timer", "unsigned long now", "void * function", "unsigned long baseclk"),
    "timer=%p function=%ps now=%lu baseclk=%lu",
    lambda timer, now, function, baseclk: (timer, function, now, baseclk),
)
TIMER_EXPIRE_EXIT = define_event("timer", "timer_expire_exit", ("void * timer",), "timer=%p")
TIMER_CANCEL = define_event("timer", "timer_cancel", ("void * timer",), "timer=%p")

_CLOCKIDS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 7: "CLOCK_BOOTTIME", 11: "CLOCK_TAI"}
_HRTIMER_MODES = {
    0x00: "ABS",
    0x01: "REL",
    0x02: "ABS|PINNED",
    0x03: "REL|PINNED",
    0x04: "ABS|SOFT",
    0x05: "REL|SOFT",
    0x06: "ABS|PINNED|SOFT",
    0x07: "REL|PINNED|SOFT",
    0x08: "ABS|HARD",
    0x09: "REL|HARD",
    0x0A: "ABS|PINNED|HARD",
    0x0B: "REL|PINNED|HARD",
}


def _symbolic(table: dict[int, str], value: int) -> str:
    """``__print_symbolic``: the name, or the value in hex when the table lacks it."""
    name = table.get(value)
    return name if name is not None else "0x%x" % value


HRTIMER_INIT = define_event(
    "timer",
    "hrtimer_init",
    ("void * hrtimer", "clockid_t clockid", "enum hrtimer_mode mode"),
    "hrtimer=%p clockid=%s mode=%s",
    lambda hrtimer, clockid, mode: (
        hrtimer,
        _symbolic(_CLOCKIDS, clockid),
        _symbolic(_HRTIMER_MODES, mode),
    ),
)
HRTIMER_START = define_event(
    "timer",
    "hrtimer_start",
    ("void * hrtimer", "void * function", "s64 expires", "s64 softexpires", "int mode"),
    "hrtimer=%p function=%ps expires=%llu softexpires=%llu mode=%s",
    lambda hrtimer, function, expires, softexpires, mode: (
        hrtimer,
        function,
        expires,
        softexpires,
        _symbolic(_HRTIMER_MODES, mode),
    ),
)
HRTIMER_EXPIRE_ENTRY = define_event(
    "timer",
    "hrtimer_expire_entry",
    ("void * hrtimer", "s64 now", "void * function"),
    "hrtimer=%p function=%ps now=%llu",
    lambda hrtimer, now, function: (hrtimer, function, now),
)
HRTIMER_EXPIRE_EXIT = define_event(
    "timer", "hrtimer_expire_exit", ("void * hrtimer",), "hrtimer=%p"
)
HRTIMER_CANCEL = define_event("timer", "hrtimer_cancel", ("void * hrtimer",), "hrtimer=%p")


# -- ipi (include/trace/events/ipi.h) and csd (include/trace/events/csd.h) -------------------------


def _cpumask(cpus: Sequence[int], nbits: int) -> str:
    """``__get_cpumask()``: ``%*pb``, the mask in hex, 32-bit chunks joined by commas, the
    first chunk as wide as its bits need."""
    value = 0
    for cpu in cpus:
        value |= 1 << cpu
    chunks = []
    first = nbits % 32 or 32
    top = ((nbits + 31) // 32 - 1) * 32
    shift = top
    width = (first + 3) // 4
    while shift >= 0:
        chunks.append("%0*x" % (width, (value >> shift) & 0xFFFFFFFF))
        shift -= 32
        width = 8
    return ",".join(chunks)


IPI_SEND_CPU = define_event(
    "ipi",
    "ipi_send_cpu",
    ("unsigned int cpu", "void * callsite", "void * callback"),
    "cpu=%u callsite=%pS callback=%pS",
)
IPI_SEND_CPUMASK = define_event(
    "ipi",
    "ipi_send_cpumask",
    ("__cpumask cpumask", "void * callsite", "void * callback", "int nr_cpumask_bits"),
    "cpumask=%s callsite=%pS callback=%pS",
    lambda cpus, callsite, callback, nbits: (_cpumask(cpus, nbits), callsite, callback),
)
CSD_QUEUE_CPU = define_event(
    "csd",
    "csd_queue_cpu",
    ("unsigned int cpu", "void * callsite", "void * func", "void * csd"),
    "cpu=%u callsite=%pS func=%ps csd=%p",
)
CSD_FUNCTION_ENTRY = define_event(
    "csd", "csd_function_entry", ("void * func", "void * csd"), "func=%ps, csd=%p"
)
CSD_FUNCTION_EXIT = define_event(
    "csd", "csd_function_exit", ("void * func", "void * csd"), "func=%ps, csd=%p"
)


# -- irq_vectors (arch/x86/include/asm/trace/irq_vectors.h) ----------------------------------------

#: The x86 vector numbers the model's system vectors stand for (arch/x86/include/asm/irq_vectors.h)
X86_LOCAL_TIMER_VECTOR = 0xEC
X86_IRQ_WORK_VECTOR = 0xF6
X86_CALL_FUNCTION_SINGLE_VECTOR = 0xFB
X86_CALL_FUNCTION_VECTOR = 0xFC


def _vector_event(name: str) -> TraceEvent:
    return define_event("irq_vectors", name, ("int vector",), "vector=%d")


LOCAL_TIMER_ENTRY = _vector_event("local_timer_entry")
LOCAL_TIMER_EXIT = _vector_event("local_timer_exit")
IRQ_WORK_ENTRY = _vector_event("irq_work_entry")
IRQ_WORK_EXIT = _vector_event("irq_work_exit")
CALL_FUNCTION_ENTRY = _vector_event("call_function_entry")
CALL_FUNCTION_EXIT = _vector_event("call_function_exit")
CALL_FUNCTION_SINGLE_ENTRY = _vector_event("call_function_single_entry")
CALL_FUNCTION_SINGLE_EXIT = _vector_event("call_function_single_exit")


# -- workqueue (include/trace/events/workqueue.h) --------------------------------------------------
#
# Fired where kernel/workqueue.c fires them (see _workqueue.py): queue_work in __queue_work() once
# the pwq is chosen (a delayed item: when its timer fires), activate_work right after it or, for an
# item held back by max_active, when a slot frees; execute_start/end around the function in
# process_one_work() (and in the BH pools' softirq). ``req_cpu`` is the CPU asked for: plain
# queue_work() passes WORK_CPU_UNBOUND, which the kernel defines as NR_CPUS. The model's
# WORK_CPU_UNBOUND is 8192, the NR_CPUS of the CONFIG_MAXSMP builds distributions ship, so traces
# read as on those machines; the model itself boots at most 1024 CPUs (Kernel's limit), a bound of
# its own that the trace does not print. ``cpu`` is pool->cpu: -1 for an unbound pool.


WORKQUEUE_QUEUE_WORK = define_event(
    "workqueue",
    "workqueue_queue_work",
    ("void * work", "void * function", "__string workqueue", "int req_cpu", "int cpu"),
    "work struct=%p function=%ps workqueue=%s req_cpu=%d cpu=%d",
)
WORKQUEUE_ACTIVATE_WORK = define_event(
    "workqueue",
    "workqueue_activate_work",
    ("void * work", "void * function"),
    "work struct %p function=%ps ",
)
WORKQUEUE_EXECUTE_START = define_event(
    "workqueue",
    "workqueue_execute_start",
    ("void * work", "void * function"),
    "work struct %p: function %ps",
)
WORKQUEUE_EXECUTE_END = define_event(
    "workqueue",
    "workqueue_execute_end",
    ("void * work", "void * function"),
    "work struct %p: function %ps",
)


# -- rcu (include/trace/events/rcu.h, CONFIG_RCU_TRACE) ---------------------------------------------
#
# Tree RCU without CONFIG_PREEMPT_RCU names itself "rcu_sched". rcu_callback fires as call_rcu()
# queues (qlen: the CPU's callbacks, this one included); rcu_do_batch() brackets the callbacks
# it invokes in RCU_SOFTIRQ with rcu_batch_start (qlen: all queued on the CPU, blimit: the
# batch limit) and rcu_batch_end (invoked, then C: ready ones left, S: need_resched(), I: the
# idle task runs it, R: run by an rcuc kthread).

#: ``rcu_state.name`` of a kernel without ``CONFIG_PREEMPT_RCU``
RCU_NAME = "rcu_sched"


def _batch_end_args(
    name: str, invoked: int, cb: int, nr: int, iit: int, risk: int
) -> tuple[object, ...]:
    return (
        name,
        invoked,
        "C" if cb else ".",
        "S" if nr else ".",
        "I" if iit else ".",
        "R" if risk else ".",
    )


RCU_CALLBACK = define_event(
    "rcu",
    "rcu_callback",
    ("const char * rcuname", "void * rhp", "void * func", "long qlen"),
    "%s rhp=%p func=%ps %ld",
)
RCU_BATCH_START = define_event(
    "rcu",
    "rcu_batch_start",
    ("const char * rcuname", "long qlen", "long blimit"),
    "%s CBs=%ld bl=%ld",
)
RCU_INVOKE_CALLBACK = define_event(
    "rcu",
    "rcu_invoke_callback",
    ("const char * rcuname", "void * rhp", "void * func"),
    "%s rhp=%p func=%ps",
)
RCU_BATCH_END = define_event(
    "rcu",
    "rcu_batch_end",
    (
        "const char * rcuname",
        "int callbacks_invoked",
        "char cb",
        "char nr",
        "char iit",
        "char risk",
    ),
    "%s CBs-invoked=%d idle=%c%c%c%c",
    _batch_end_args,
)

# -- sched (include/trace/events/sched.h) ----------------------------------------------------------
#
# When the model fires them, and the values it gives: _sched.py's module docstring. The
# kthread_worker events are sched events in the kernel too (there is no kthread_work header).

#: What ``__trace_sched_switch_state()`` stores in ``prev_state``: ``1 << (index - 1)`` of
#: ``__task_state_index()`` (0 for running), or ``TASK_REPORT_MAX`` for a preempted task.
SWITCH_STATE_RUNNING = 0
SWITCH_STATE_S = 0x01  # TASK_INTERRUPTIBLE
SWITCH_STATE_D = 0x02  # TASK_UNINTERRUPTIBLE
SWITCH_STATE_X = 0x10  # EXIT_DEAD
SWITCH_STATE_Z = 0x20  # EXIT_ZOMBIE
SWITCH_STATE_P = 0x40  # TASK_PARKED
SWITCH_STATE_I = 0x80  # TASK_REPORT_IDLE (shown with TASK_DEAD's bit, as the kernel does)
TASK_REPORT_MAX = 0x100
_SWITCH_STATE_NAMES = (
    (0x01, "S"),
    (0x02, "D"),
    (0x04, "T"),
    (0x08, "t"),
    (0x10, "X"),
    (0x20, "Z"),
    (0x40, "P"),
    (0x80, "I"),
)


def _switch_state(state: int) -> str:
    """The first ``%s`` of ``prev_state=%s%s``: the ``__print_flags`` letters, ``R`` when
    none."""
    flags = state & (TASK_REPORT_MAX - 1)
    return "|".join(name for bit, name in _SWITCH_STATE_NAMES if flags & bit) if flags else "R"


def _switch_args(
    prev_comm: str,
    prev_pid: int,
    prev_prio: int,
    prev_state: int,
    next_comm: str,
    next_pid: int,
    next_prio: int,
) -> tuple[object, ...]:
    return (
        prev_comm,
        prev_pid,
        prev_prio,
        _switch_state(prev_state),
        "+" if prev_state & TASK_REPORT_MAX else "",
        next_comm,
        next_pid,
        next_prio,
    )


SCHED_SWITCH = define_event(
    "sched",
    "sched_switch",
    (
        "char prev_comm[16]",
        "pid_t prev_pid",
        "int prev_prio",
        "long prev_state",
        "char next_comm[16]",
        "pid_t next_pid",
        "int next_prio",
    ),
    "prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next_pid=%d "
    "next_prio=%d",
    _switch_args,
)


def _wakeup_event(name: str) -> TraceEvent:
    return define_event(
        "sched",
        name,
        ("char comm[16]", "pid_t pid", "int prio", "int target_cpu"),
        "comm=%s pid=%d prio=%d target_cpu=%03d",
    )


SCHED_WAKING = _wakeup_event("sched_waking")
SCHED_WAKEUP = _wakeup_event("sched_wakeup")
SCHED_WAKEUP_NEW = _wakeup_event("sched_wakeup_new")
SCHED_KTHREAD_STOP = define_event(
    "sched", "sched_kthread_stop", ("__string comm", "pid_t pid"), "comm=%s pid=%d"
)
SCHED_KTHREAD_STOP_RET = define_event("sched", "sched_kthread_stop_ret", ("int ret",), "ret=%d")
SCHED_KTHREAD_WORK_QUEUE_WORK = define_event(
    "sched",
    "sched_kthread_work_queue_work",
    ("void * work", "void * function", "void * worker"),
    "work struct=%p function=%ps worker=%p",
)
SCHED_KTHREAD_WORK_EXECUTE_START = define_event(
    "sched",
    "sched_kthread_work_execute_start",
    ("void * work", "void * function"),
    "work struct %p: function %ps",
)
SCHED_KTHREAD_WORK_EXECUTE_END = define_event(
    "sched",
    "sched_kthread_work_execute_end",
    ("void * work", "void * function"),
    "work struct %p: function %ps",
)


def emit_on(
    kernel: Kernel,
    task: TaskStruct,
    cpu: int,
    event: TraceEvent,
    locks: int,
    *fields: object,
) -> None:
    """:func:`emit` on CPU *cpu* for an event the kernel fires with interrupts off and *locks*
    more preempt levels than *task* has (the scheduler's: its preempt guard, ``p->pi_lock``,
    the runqueue lock)."""
    tracing = kernel.tracing
    if event not in tracing._enabled:
        return
    flags, depth = context_flags(task)
    pc = min((depth & 0xF) + locks, 15)
    tracing._record(cpu, task, flags | TRACE_FLAG_IRQS_OFF, (depth & 0xF0) | pc, event, fields)


def trace_raise_on(kernel: Kernel, task: TaskStruct, cpu: Any, nr: int) -> None:
    """``softirq_raise`` of *nr* on CPU object *cpu*: by *task* if it runs there, else on that
    CPU in the context it is in (the task whose atomic code it runs, or its idle task), as the
    kernel raises a softirq only on the CPU that will run it (kick_bh_pool()'s irq_work, each
    CPU's RCU tick)."""
    if cpu.nr != task.cpu:
        task = cpu.curr if cpu.curr is not None else cpu.swapper
    emit(kernel, task, SOFTIRQ_RAISE, nr)
