"""High-resolution timers: ``struct hrtimer`` on per-CPU clock bases, the hrtimer sleeps, and
(re-exported from ``_ktime.py``) the ktime helpers.

Kernel invariants modelled (kernel/time/hrtimer.c, include/linux/hrtimer.h,
kernel/time/sleep_timeout.c, include/linux/delay.h; v6.13 for the sleeps):

* An hrtimer expires at a nanosecond ktime on its clock, with no jiffies rounding: the CPU's
  clock-event device (``_tick.py``) is programmed for the earliest hard expiry, and its
  interrupt runs the timer at (never before) that instant. Hard timers run right there, in
  hardirq context with interrupts off; ``*_SOFT`` timers run in ``HRTIMER_SOFTIRQ``, which
  that interrupt raises once the earliest soft timer is due and its ``irq_exit()`` runs.
* Each CPU keeps eight clock bases (MONOTONIC, REALTIME, BOOTTIME, TAI, then their soft
  twins), each ordered by hard expiry; an interrupt scans the bases in that order and expires,
  per base, timers in expiry order while their *soft* expiry has passed, stopping at the first
  that is not due. Equal expiries run in start order. So a range timer
  (``hrtimer_start_range_ns``) fires at its hard expiry, or earlier if another hrtimer event
  of its CPU (another timer, a tick) falls inside ``[soft, hard]``.
* A timer is off its queue before its callback runs: inside it ``hrtimer_is_queued()`` is
  false and ``hrtimer_callback_running()`` true. ``HRTIMER_RESTART`` re-queues it at its
  (moved) expiry unless the callback re-started it already. A RESTART with an expiry that
  has not moved past now would run again in the same interrupt forever: the kernel's NMI
  watchdog reports ``Watchdog detected hard LOCKUP``; kdefer_async reports that and leaves
  the timer inactive instead of looping.
* ``hrtimer_cancel()`` waits (spins) while the callback runs; from the callback itself that
  never ends: kdefer_async reports the self-deadlock and raises :class:`KernelBug`.
* A timer starts on the CPU that starts it and stays there while its callback runs.
  Non-pinned timers stay local too: the kernel may move one to a busy CPU when the local tick
  is stopped, which a single-loop model has no reason to do (``HRTIMER_MODE_PINNED`` is
  accepted and changes nothing).
* The model's clocks: ``CLOCK_MONOTONIC`` is :func:`ktime_get`; with no suspend, no
  ``settimeofday`` and no leap seconds, ``CLOCK_BOOTTIME``, ``CLOCK_REALTIME`` and
  ``CLOCK_TAI`` read the same, so an absolute expiry means the same ktime on all of them.

Bad input follows the library's rule, not the kernel's: an unknown clock id or mode is a
:class:`ValueError` at the call (the kernel WARNs ``Invalid clockid %d. Using MONOTONIC`` and
goes on), and starting a timer never set up is debugobjects' ``ODEBUG: activate not
available`` report and :class:`KernelBug`, with nothing armed.

Queues are binary heaps with lazy deletion: an entry ``(expires, seq, timer)`` is live while
``timer._entry`` is that very entry; cancelling or re-starting a timer only forgets its entry,
and a heap is compacted when dead entries pass half of it. Starting costs one heap push and
reprograms the clock event only when the timer is the new first one.

Field rules: ``A``: changed only in synchronous code, atomic with respect to the loop's other
tasks; ``W``: touched only by code running on the base's CPU.

Guarantees:
    * test_hr01_expires_at_exact_ns: the callback sees ``ktime_get()`` equal to its expiry.
    * test_hr16_equal_expiries_run_in_start_order.
    * test_hr12_restart_without_forward_is_a_hard_lockup: reported, never looped on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any

import anyio.lowlevel

from ._check import bad_value, check_callback, check_instance, check_int
from ._consts import (
    CLOCK_BOOTTIME,
    CLOCK_MONOTONIC,
    CLOCK_REALTIME,
    CLOCK_TAI,
    EINTR,
    HRTIMER_MODE_ABS,
    HRTIMER_MODE_HARD,
    HRTIMER_MODE_REL,
    HRTIMER_MODE_REL_PINNED_HARD,
    HRTIMER_MODE_SOFT,
    HRTIMER_NORESTART,
    HRTIMER_SOFTIRQ,
    KTIME_SEC_MAX,
    NSEC_PER_SEC,
    NSEC_PER_USEC,
    SCHED_FIFO,
    SCHED_RR,
    TASK_NORMAL,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
)
from ._context import TaskStruct, _cur, _current
from ._exceptions import KernelBug, KernelPanic
from ._ktime import (
    S64_MAX,
    S64_MIN,
    U64_MAX,
    check_ktime,
    check_u64,
    ktime_add,
    ktime_add_ns,
    ktime_add_safe,
    ktime_after,
    ktime_before,
    ktime_get,
    ktime_get_boottime,
    ktime_get_ns,
    ktime_set,
    ktime_sub,
    ktime_to_ms,
    ktime_to_ns,
    ktime_to_us,
    ms_to_ktime,
    ns_to_ktime,
    s64,
    us_to_ktime,
)
from ._printk import modules_linked_in, report_lines, symbol_name, warn, warn_once
from ._sleeping import sleeping_checked
from ._softirq import panic_in_interrupt, run_atomic_result
from ._trace import (
    HRTIMER_CANCEL,
    HRTIMER_EXPIRE_ENTRY,
    HRTIMER_EXPIRE_EXIT,
    HRTIMER_INIT,
    HRTIMER_START,
    SOFTIRQ_RAISE,
    emit,
    emit_locked,
    site_task,
)

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = [
    "HrTimer",
    "fsleep",
    "hrtimer_active",
    "hrtimer_callback_running",
    "hrtimer_cancel",
    "hrtimer_forward",
    "hrtimer_forward_now",
    "hrtimer_get_expires",
    "hrtimer_get_remaining",
    "hrtimer_init",
    "hrtimer_interrupt",
    "hrtimer_is_queued",
    "hrtimer_next_expiry",
    "hrtimer_run_softirq",
    "hrtimer_setup",
    "hrtimer_start",
    "hrtimer_start_range_ns",
    "hrtimer_try_to_cancel",
    "ktime_add",
    "ktime_add_ns",
    "ktime_after",
    "ktime_before",
    "ktime_get",
    "ktime_get_boottime",
    "ktime_get_ns",
    "ktime_set",
    "ktime_sub",
    "ktime_to_ms",
    "ktime_to_ns",
    "ktime_to_us",
    "ms_to_ktime",
    "ns_to_ktime",
    "schedule_hrtimeout",
    "schedule_hrtimeout_range",
    "us_to_ktime",
    "usleep_range_state",
]

#: ``hrtimer_clockid_to_base()``: the clock base index of each clock, in scan order.
_CLOCK_BASE = {CLOCK_MONOTONIC: 0, CLOCK_REALTIME: 1, CLOCK_BOOTTIME: 2, CLOCK_TAI: 3}
#: ``HRTIMER_MAX_CLOCK_BASES / 2``: the soft twin of hard base *i* is *i* + 4.
_SOFT_BASES = 4
_MODE_MAX = HRTIMER_MODE_REL_PINNED_HARD
_SATURATED = KTIME_SEC_MAX * NSEC_PER_SEC
_CLOCKS = "CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME or CLOCK_TAI"
_MODES = f"an hrtimer mode (HRTIMER_MODE_*: 0 to {_MODE_MAX})"
_EXPIRES = f"a ktime (nanoseconds, an s64: {S64_MIN} to {S64_MAX}) or None"
#: The start order of equal expiries (one counter for every base: only order matters).
_seq = itertools.count()


class HrTimer:
    """
    ``struct hrtimer``: a nanosecond timer on a clock.

    ``HrTimer()`` is not set up: use :func:`hrtimer_setup` (or the legacy
    :func:`hrtimer_init` and then set :attr:`function`). ``function(timer)`` runs in hardirq
    context, or in ``HRTIMER_SOFTIRQ`` for the ``*_SOFT`` modes, and returns
    ``HRTIMER_NORESTART`` or ``HRTIMER_RESTART``.

    Attributes:
        function: The callback (set by :func:`hrtimer_setup`; the legacy
            :func:`hrtimer_init` leaves it to the caller).

    .. versionadded:: 0.2
    """

    __slots__ = (
        "__weakref__",
        "_base",
        "_entry",
        "_expires",
        "_hard",
        "_index",
        "_soft",
        "_softexpires",
        "function",
    )

    def __init__(self) -> None:
        self.function: Callable[[Any], object] | None = None  # A
        self._index = -1  # A: clock base index (soft ones + 4); -1 until set up
        self._soft = 0  # A: HRTIMER_MODE_SOFT if it expires in softirq context, else 0
        self._hard = False  # A: set up with HRTIMER_MODE_HARD
        self._expires = 0  # A: hard expiry (ktime)
        self._softexpires = 0  # A: soft expiry (ktime)
        #: A: the heap entry while queued (the entry is live while this is it)
        self._entry: tuple[int, int, HrTimer] | None = None
        self._base: _ClockBase | None = None  # A: the clock base it was last queued on

    def __repr__(self) -> str:
        fn = symbol_name(self.function) if self.function else None
        state = "queued" if self._entry is not None else "inactive"
        base = self._base
        if base is not None and base.running is self:
            state += ", running"
        return f"<HrTimer {fn} expires={self._expires} {state}>"


class _Sleeper(HrTimer):
    """``struct hrtimer_sleeper``: the timer of a sleep, and the task it wakes."""

    __slots__ = ("task",)

    def __init__(self, task: TaskStruct, mode: int) -> None:
        super().__init__()
        self.function = _hrtimer_wakeup  # the kernel's own callback: no registration check
        self._index = _SOFT_BASES if mode & HRTIMER_MODE_SOFT else 0  # CLOCK_MONOTONIC
        self._soft = mode & HRTIMER_MODE_SOFT
        self.task: TaskStruct | None = task  # A: None once the timer has fired


def _hrtimer_wakeup(timer: _Sleeper) -> int:
    """``hrtimer_wakeup``: the sleeper's callback, in hardirq context."""
    from ._sched import try_to_wake_up

    task = timer.task
    timer.task = None
    if task is not None:
        try_to_wake_up(task, TASK_NORMAL)
    return HRTIMER_NORESTART


def _dummy_timeout(timer: HrTimer) -> int:
    """``hrtimer_dummy_timeout``: what a timer set up without a function runs."""
    return HRTIMER_NORESTART


class _ClockBase:
    """``struct hrtimer_clock_base``: one clock's queue on one CPU."""

    __slots__ = ("cpu_base", "heap", "index", "kernel", "ndead", "running", "soft")

    def __init__(self, cpu_base: HrTimerCpuBase, index: int) -> None:
        self.cpu_base = cpu_base  # I
        self.kernel = cpu_base.cpu.kernel  # I: its tracing switch is tested on the hot paths
        self.index = index  # I
        self.soft = index >= _SOFT_BASES  # I
        self.heap: list[tuple[int, int, HrTimer]] = []  # W: (hard expiry, seq, timer)
        self.ndead = 0  # W: entries of the heap that are no longer live
        self.running: HrTimer | None = None  # W: the timer whose callback runs


class HrTimerCpuBase:
    """``struct hrtimer_cpu_base``: a CPU's clock bases. Internal (``CPU.hrtimer_base``)."""

    __slots__ = ("clock_base", "cpu", "hard_bases", "soft_bases", "softirq_activated")

    def __init__(self, cpu: CPU) -> None:
        self.cpu = cpu  # I
        self.clock_base = [_ClockBase(self, i) for i in range(2 * _SOFT_BASES)]  # I
        self.hard_bases = self.clock_base[:_SOFT_BASES]  # I
        self.soft_bases = self.clock_base[_SOFT_BASES:]  # I
        #: W: HRTIMER_SOFTIRQ is raised and has not run yet: the soft bases do not program
        #: the clock event meanwhile
        self.softirq_activated = False

    def __repr__(self) -> str:
        queued = sum(len(b.heap) - b.ndead for b in self.clock_base)
        return f"<HrTimerCpuBase cpu={self.cpu.nr} queued={queued}>"


def _cpu_base(cpu: CPU) -> HrTimerCpuBase:
    base = cpu.hrtimer_base
    if base is None:
        base = cpu.hrtimer_base = HrTimerCpuBase(cpu)
    return base  # type: ignore[no-any-return]


# -- the queues ----------------------------------------------------------------------------------


def _compact(cb: _ClockBase) -> None:
    """Drop the dead entries of *cb*'s heap (in place: a running scan keeps its list)."""
    heap = cb.heap
    heap[:] = [e for e in heap if e[2]._entry is e]
    heapify(heap)
    cb.ndead = 0


def _first(cb: _ClockBase) -> tuple[int, int, HrTimer] | None:
    """*cb*'s first live entry, dropping dead ones from the top."""
    heap = cb.heap
    while heap:
        e = heap[0]
        if e[2]._entry is e:
            return e
        heappop(heap)
        cb.ndead -= 1
    return None


def _program(cb: _ClockBase, hard: int) -> None:
    """A new first timer of *cb* expires at *hard*: reprogram the CPU's clock event if that
    is earlier than what it sleeps until (``hrtimer_reprogram``)."""
    cpu_base = cb.cpu_base
    if cb.soft and cpu_base.softirq_activated:
        return  # the softirq reprograms for the soft bases when it has run
    cpu = cpu_base.cpu
    scope = cpu._tick_scope
    if scope is not None:
        when = cpu.kernel._epoch + hard / 1e9
        if when < scope.deadline:
            scope.deadline = when


def _enqueue(cb: _ClockBase, t: HrTimer, hard: int, soft: int) -> None:
    """``enqueue_hrtimer``: queue *t* on *cb* for ``[soft, hard]``."""
    entry = (hard, next(_seq), t)
    heap = cb.heap
    heappush(heap, entry)
    t._entry = entry
    t._base = cb
    t._expires = hard
    t._softexpires = soft
    if heap[0] is entry:
        _program(cb, hard)


def _remove(t: HrTimer) -> None:
    """``remove_hrtimer`` of a queued timer: forget its entry; compact a half-dead heap."""
    cb = t._base
    assert cb is not None
    t._entry = None
    if cb.kernel._trace_on:
        _trace_cancel(cb, t)
    n = cb.ndead = cb.ndead + 1
    if n * 2 > len(cb.heap):
        _compact(cb)


def _trace_cancel(cb: _ClockBase, t: HrTimer) -> None:
    """``hrtimer_cancel``, from ``__remove_hrtimer()`` (the base lock held, interrupts off)."""
    kernel = cb.kernel
    emit_locked(kernel, site_task(kernel, cb.cpu_base.cpu.nr), HRTIMER_CANCEL, t)


def _try_to_cancel(t: HrTimer) -> int:
    cb = t._base
    if cb is not None and cb.running is t:
        return -1
    if t._entry is not None:
        _remove(t)
        return 1
    return 0


def hrtimer_next_expiry(base: HrTimerCpuBase) -> int | None:
    """
    The earliest hard expiry (ktime) of *base*'s queued timers, ``None`` if none: what the
    clock event is programmed for. Soft timers do not count while ``HRTIMER_SOFTIRQ`` is
    raised and has not run (it reprograms for them when it has).
    """
    best: int | None = None
    skip_soft = base.softirq_activated
    for cb in base.clock_base:
        if skip_soft and cb.soft:
            break
        if cb.heap:
            e = _first(cb)
            if e is not None and (best is None or e[0] < best):
                best = e[0]
    return best


# -- expiry ----------------------------------------------------------------------------------------


def _hard_lockup(task: TaskStruct, cpu_nr: int, fn: object) -> None:
    """The NMI watchdog's report of a CPU that would loop in the hrtimer interrupt forever."""
    report_lines(
        task,
        [
            f"watchdog: Watchdog detected hard LOCKUP on cpu {cpu_nr}",
            modules_linked_in(task.kernel),
            f"hrtimer: {symbol_name(fn)} returned HRTIMER_RESTART with its expiry not moved "
            "past now: it would run again at once, forever (use hrtimer_forward_now()); "
            "the timer is left inactive",
        ],
        level=0,
    )


def _run_hrtimer(cb: _ClockBase, t: HrTimer, now: int, task: TaskStruct) -> None:
    """``__run_hrtimer``: *t* is off its queue; run its callback and re-queue on RESTART."""
    fn = t.function
    assert fn is not None
    ran_for = t._softexpires
    cb.running = t
    kernel = cb.kernel
    if kernel._trace_on:
        emit(kernel, task, HRTIMER_EXPIRE_ENTRY, t, now, fn)
    try:
        restart = fn(t)
    except KernelPanic:
        cb.running = None
        raise
    except Exception as exc:
        cb.running = None
        panic_in_interrupt(task, exc, f"hrtimer {symbol_name(fn)}")
        raise
    if kernel._trace_on:
        emit(kernel, task, HRTIMER_EXPIRE_EXIT, t)
    if restart is not None and restart != HRTIMER_NORESTART:
        if not isinstance(restart, int):
            run_atomic_result(task, restart, fn)  # an awaitable: it tried to sleep
        elif t._entry is None:  # not re-started by the callback itself
            if t._softexpires <= now and t._softexpires <= ran_for:
                _hard_lockup(task, cb.cpu_base.cpu.nr, fn)
            else:
                _enqueue(cb, t, t._expires, t._softexpires)
                if kernel._trace_on:
                    emit_locked(
                        kernel,
                        task,
                        HRTIMER_START,
                        t,
                        fn,
                        t._expires,
                        t._softexpires,
                        HRTIMER_MODE_ABS,
                    )
    cb.running = None


def _run_queues(bases: list[_ClockBase], now: int, task: TaskStruct) -> None:
    """``__hrtimer_run_queues``: base after base, the due timers in expiry order."""
    for cb in bases:
        while True:
            heap = cb.heap
            if not heap:
                break
            e = heap[0]
            t = e[2]
            if t._entry is not e:
                heappop(heap)
                cb.ndead -= 1
                continue
            if now < t._softexpires:
                break
            heappop(heap)
            t._entry = None
            if cb.kernel._trace_on:
                emit_locked(cb.kernel, task, HRTIMER_CANCEL, t)  # __remove_hrtimer()
            _run_hrtimer(cb, t, now, task)


def _soft_due(base: HrTimerCpuBase, now: int) -> bool:
    for cb in base.soft_bases:
        if cb.heap:
            e = _first(cb)
            if e is not None and e[0] <= now:
                return True
    return False


def hrtimer_interrupt(base: HrTimerCpuBase, task: TaskStruct) -> None:
    """
    The clock-event interrupt's hrtimer part, in hardirq context on *base*'s CPU, borrowing
    *task*: raise ``HRTIMER_SOFTIRQ`` once the first soft timer is due, then run every due
    hard timer.
    """
    cpu = base.cpu
    now = cpu.kernel.get_ktime()
    if not base.softirq_activated and _soft_due(base, now):
        base.softirq_activated = True
        kernel = cpu.kernel
        if kernel._trace_on:
            emit(kernel, task, SOFTIRQ_RAISE, HRTIMER_SOFTIRQ)
        cpu.pending |= 1 << HRTIMER_SOFTIRQ
    _run_queues(base.hard_bases, now, task)


def hrtimer_run_softirq() -> None:
    """The ``HRTIMER_SOFTIRQ`` handler: run this CPU's due soft timers, then reprogram."""
    task = _cur()
    kernel = task.kernel
    cpu = kernel.cpus[task.cpu]
    base: HrTimerCpuBase | None = cpu.hrtimer_base
    if base is None:
        return
    _run_queues(base.soft_bases, kernel.get_ktime(), task)
    base.softirq_activated = False
    for cb in base.soft_bases:
        e = _first(cb)
        if e is not None:
            _program(cb, e[0])


# -- argument checks -------------------------------------------------------------------------------


def _check_timer(timer: object, func: str) -> HrTimer:
    if type(timer) is HrTimer:
        return timer
    return check_instance(timer, HrTimer, func, "timer", "an HrTimer")


def _check_mode(mode: object, func: str) -> int:
    return check_int(mode, func, "mode", lo=0, hi=_MODE_MAX, expected=_MODES)


def _check_clock(clock_id: object, func: str) -> int:
    value = check_int(clock_id, func, "clock_id")
    if value not in _CLOCK_BASE:
        raise bad_value(func, "clock_id", _CLOCKS, value)
    return value


def _check_function(function: object, func: str) -> None:
    if function is not None:
        check_callback(
            function,
            func,
            "function",
            shape="function(timer)",
            nargs=1,
            kind="atomic",
            what="an hrtimer callback",
        )


# -- set-up ----------------------------------------------------------------------------------------


def _addr(obj: object) -> str:
    return "%016x" % (id(obj) & U64_MAX)


def _setup(
    timer: HrTimer, function: Callable[[Any], object] | None, clock_id: int, mode: int
) -> None:
    """``__hrtimer_setup``, once the arguments are checked."""
    task = _current.get()  # (no kernel is needed to set a timer up)
    if task is not None and task.kernel._trace_on:
        emit(task.kernel, task, HRTIMER_INIT, timer, clock_id, mode)  # debug_init()
    if timer._entry is not None:
        # debugobjects: initialising an active object; its fixup cancels the timer
        warn(
            "ODEBUG: init active (active state 0) object: %s object type: hrtimer hint: %s\n",
            _addr(timer),
            symbol_name(timer.function, offset=True) if timer.function else "0x0",
        )
        _remove(timer)
    if clock_id == CLOCK_REALTIME and mode & HRTIMER_MODE_REL:
        clock_id = CLOCK_MONOTONIC  # relative waits ignore changes of the wall clock
    soft = mode & HRTIMER_MODE_SOFT
    timer._index = _CLOCK_BASE[clock_id] + (_SOFT_BASES if soft else 0)
    timer._soft = soft
    timer._hard = bool(mode & HRTIMER_MODE_HARD)
    timer._expires = timer._softexpires = 0
    base = timer._base
    if base is not None and base.running is not timer:
        timer._base = None
    timer.function = function


def hrtimer_setup(
    timer: HrTimer, function: Callable[[Any], object] | None, clock_id: int, mode: int
) -> None:
    """
    Initialise *timer* on clock *clock_id*: ``function(timer)`` will run in hardirq context,
    or in ``HRTIMER_SOFTIRQ`` when *mode* has ``HRTIMER_MODE_SOFT``. Only the SOFT and HARD
    bits of *mode* matter here (ABS/REL and PINNED are the business of the start), except
    that a relative ``CLOCK_REALTIME`` timer becomes ``CLOCK_MONOTONIC``, as POSIX wants.

    ``function=None`` is the kernel's ``WARN_ON_ONCE``, and a callback that does nothing and
    returns ``HRTIMER_NORESTART`` is installed. Set up again while queued, the timer is
    reported (debugobjects' ``ODEBUG: init active``) and cancelled first.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`; *function* is not callable, is
            ``async def`` or cannot be called as ``function(timer)``; *clock_id* or *mode* is
            not an int.
        ValueError: *clock_id* is not one of the four hrtimer clocks, or *mode* is not an
            ``enum hrtimer_mode`` (the kernel WARNs and uses ``CLOCK_MONOTONIC`` for an
            unknown clock; kdefer_async rejects the call, as it rejects every bad argument).

    Context:
        Any context; needs no running kernel unless it reports.

    .. versionadded:: 0.2
    """
    _check_timer(timer, "hrtimer_setup")
    _check_function(function, "hrtimer_setup")
    clock_id = _check_clock(clock_id, "hrtimer_setup")
    mode = _check_mode(mode, "hrtimer_setup")
    if function is None:
        warn_once(("hrtimer_setup", "function"))  # WARN_ON_ONCE(!function)
        function = _dummy_timeout
    _setup(timer, function, clock_id, mode)


def hrtimer_init(timer: HrTimer, clock_id: int, mode: int) -> None:
    """
    The legacy initialiser (removed from the kernel in 6.15): like :func:`hrtimer_setup`,
    but the caller then assigns ``timer.function``.

    Raises:
        TypeError, ValueError: as :func:`hrtimer_setup`.

    .. versionadded:: 0.2
    """
    _check_timer(timer, "hrtimer_init")
    clock_id = _check_clock(clock_id, "hrtimer_init")
    mode = _check_mode(mode, "hrtimer_init")
    _setup(timer, None, clock_id, mode)


# -- starting --------------------------------------------------------------------------------------


def _not_set_up(task: TaskStruct, timer: HrTimer, func: str) -> KernelBug:
    """debugobjects' report for an object activated before it was initialised."""
    warn(
        "ODEBUG: activate not available (active state 0) object: %s object type: hrtimer "
        "hint: 0x0\n",
        _addr(timer),
        task=task,
    )
    return KernelBug(
        f"{func}(): the hrtimer was never set up (call hrtimer_setup() first); nothing was "
        "armed; see dmesg"
    )


def _start(timer: HrTimer, tim: int, delta_ns: int, mode: int, func: str) -> None:
    """``hrtimer_start_range_ns``, once the types are checked."""
    task = _cur()
    if timer._index < 0:
        raise _not_set_up(task, timer, func)
    if timer.function is None:
        raise bad_value(
            func,
            "timer",
            "an HrTimer whose function is set (hrtimer_init() leaves that to the caller)",
            timer,
        )
    if (mode & HRTIMER_MODE_SOFT) != timer._soft:
        # WARN_ON_ONCE in hrtimer_start_range_ns(); the timer keeps its set-up kind
        warn_once(("hrtimer_start_range_ns", "soft"))
    kernel = task.kernel
    old = timer._base
    if timer._entry is not None:
        _remove(timer)
    if mode & HRTIMER_MODE_REL:
        tim = ktime_add_safe(tim, kernel.get_ktime())
    hard = ktime_add_safe(tim, s64(delta_ns))
    if old is not None and old.running is timer:
        cb = old  # a timer whose callback runs stays on its CPU
    else:
        cb = _cpu_base(kernel.cpus[task.cpu]).clock_base[timer._index]
    _enqueue(cb, timer, hard, tim)
    if kernel._trace_on:
        emit_locked(kernel, task, HRTIMER_START, timer, timer.function, hard, tim, mode)


def hrtimer_start(timer: HrTimer, tim: int, mode: int) -> None:
    """
    (Re)start *timer* to expire at ktime *tim* (``HRTIMER_MODE_ABS``) or *tim* nanoseconds
    from now (``HRTIMER_MODE_REL``), on this CPU. A queued timer is moved; a timer whose
    callback runs becomes queued *and* running. The callback never runs inside this call: an
    expiry in the past fires at this CPU's next interrupt opportunity.

    A SOFT bit in *mode* that differs from the set-up kind is the kernel's ``WARN_ON_ONCE``;
    the timer keeps its set-up kind. Like the kernel, the expiry saturates (to
    ``KTIME_SEC_MAX`` seconds) when it overflows or is negative.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`; *tim* or *mode* is not an int.
        ValueError: *tim* is not a ktime (an ``s64``), *mode* not an ``enum hrtimer_mode``,
            or *timer* was set up by :func:`hrtimer_init` and its function never set.
        KernelBug: *timer* was never set up (after debugobjects' report); nothing is armed.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    # The fast path (a set-up HrTimer, a valid int expiry and mode) is written out inline;
    # everything else, errors included, goes through _start.
    task = _current.get()
    if (
        task is None
        or type(timer) is not HrTimer
        or type(tim) is not int
        or type(mode) is not int
        or not S64_MIN <= tim <= S64_MAX
        or not 0 <= mode <= _MODE_MAX
        or timer._index < 0
        or timer.function is None
        or mode & HRTIMER_MODE_SOFT != timer._soft
    ):
        _start(
            _check_timer(timer, "hrtimer_start"),
            check_ktime(tim, "hrtimer_start", "tim"),
            0,
            _check_mode(mode, "hrtimer_start"),
            "hrtimer_start",
        )
        return
    kernel = task.kernel
    old = timer._base
    if timer._entry is not None:
        _remove(timer)
    if mode & HRTIMER_MODE_REL:
        now = kernel.get_ktime()
        s = tim + now
        if tim < 0 or s > S64_MAX:  # ktime_add_safe(), inline (now is never negative)
            s = _SATURATED
        tim = s
    hard = tim if tim >= 0 else _SATURATED  # ktime_add_safe(tim, 0)
    if old is not None and old.running is timer:
        cb = old
    else:
        cpu = kernel.cpus[task.cpu]
        cpu_base = cpu.hrtimer_base
        if cpu_base is None:
            cpu_base = _cpu_base(cpu)
        cb = cpu_base.clock_base[timer._index]
    entry = (hard, next(_seq), timer)
    heap = cb.heap
    heappush(heap, entry)
    timer._entry = entry
    timer._base = cb
    timer._expires = hard
    timer._softexpires = tim
    if kernel._trace_on:
        emit_locked(kernel, task, HRTIMER_START, timer, timer.function, hard, tim, mode)
    if heap[0] is entry:
        _program(cb, hard)


def hrtimer_start_range_ns(timer: HrTimer, tim: int, delta_ns: int, mode: int) -> None:
    """
    :func:`hrtimer_start` with slack: the soft expiry is *tim*, the hard one *tim* +
    *delta_ns*. The clock event is programmed for the hard expiry; any hrtimer interrupt of
    the CPU at or after the soft expiry expires the timer too. Only ``[soft, hard]`` is
    guaranteed.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`; *tim*, *delta_ns* or *mode* is not an
            int.
        ValueError: *tim* is not a ktime, *delta_ns* not a ``u64``, *mode* not an
            ``enum hrtimer_mode``, or the function of a :func:`hrtimer_init` timer is unset.
        KernelBug: *timer* was never set up (after debugobjects' report); nothing is armed.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    func = "hrtimer_start_range_ns"
    _start(
        _check_timer(timer, func),
        check_ktime(tim, func, "tim"),
        check_u64(delta_ns, func, "delta_ns"),
        _check_mode(mode, func),
        func,
    )


# -- cancelling ------------------------------------------------------------------------------------


def hrtimer_try_to_cancel(timer: HrTimer) -> int:
    """
    Dequeue *timer* unless its callback is running; never waits.

    Returns:
        1 if it was queued (its callback will not run), 0 if it was inactive, -1 if its
        callback is running (nothing changed).

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    return _try_to_cancel(_check_timer(timer, "hrtimer_try_to_cancel"))


def _cancel_slow(timer: object) -> int:
    t = _check_timer(timer, "hrtimer_cancel")
    ret = _try_to_cancel(t)
    if ret < 0:
        from ._locking import report_recursive_locking

        # the kernel spins here forever: the callback it waits for is the caller
        report_recursive_locking(f"(&{symbol_name(t.function)})", "hrtimer_cancel", "__run_hrtimer")
    return ret


def hrtimer_cancel(timer: HrTimer) -> int:
    """
    Dequeue *timer* and wait until its callback is not running.

    The kernel spins while the callback runs; called from that callback (or from an interrupt
    that nested inside it) it spins forever. kdefer_async reports that self-deadlock
    (``possible recursive locking detected``) and raises :class:`KernelBug` instead. It does
    not stop a callback that re-starts the timer afterwards.

    Returns:
        1 if it was queued, 0 if it was inactive.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`.
        KernelBug: called from *timer*'s own callback.

    Context:
        Any context but the timer's own callback.

    .. versionadded:: 0.2
    """
    if type(timer) is HrTimer:
        if timer._entry is not None:
            cb = timer._base
            assert cb is not None
            if cb.running is not timer:
                timer._entry = None  # _remove(), inline
                if cb.kernel._trace_on:
                    _trace_cancel(cb, timer)
                n = cb.ndead = cb.ndead + 1
                if n * 2 > len(cb.heap):
                    _compact(cb)
                return 1
        elif timer._base is None or timer._base.running is not timer:
            return 0
    return _cancel_slow(timer)


# -- forwarding and queries ------------------------------------------------------------------------


def hrtimer_forward(timer: HrTimer, now: int, interval: int) -> int:
    """
    Move *timer*'s expiry forward by whole *interval*\\ s until it is after *now*.

    If *now* is before the expiry, nothing changes. Otherwise it adds the smallest ``k``
    intervals that put the expiry strictly after *now* (``k = (now - expiry) // interval +
    1``) to both the soft and the hard expiry, and returns ``k``: the periods that passed,
    1 when on time. An interval below the resolution (1 ns) is raised to it. On a queued
    timer it is the kernel's ``WARN_ON`` and returns 0.

    Returns:
        The number of overruns (``u64``).

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`; *now* or *interval* is not an int.
        ValueError: *now* or *interval* is not a ktime (an ``s64``).

    Context:
        From the timer's callback, or on an inactive timer.

    .. versionadded:: 0.2
    """
    t = _check_timer(timer, "hrtimer_forward")
    now = check_ktime(now, "hrtimer_forward", "now")
    interval = check_ktime(interval, "hrtimer_forward", "interval")
    return _forward(t, now, interval)


def _forward(t: HrTimer, now: int, interval: int) -> int:
    delta = s64(now - t._expires)
    if delta < 0:
        return 0
    if t._entry is not None:
        warn()  # WARN_ON(timer->state & HRTIMER_STATE_ENQUEUED)
        return 0
    if interval < 1:
        interval = 1  # hrtimer_resolution in high-resolution mode
    orun = 1
    if delta >= interval:
        orun = delta // interval
        incr = interval * orun  # hrtimer_add_expires_ns(): plain additions
        t._expires = s64(t._expires + incr)
        t._softexpires = s64(t._softexpires + incr)
        if t._expires > now:
            return orun
        orun += 1
    t._expires = ktime_add_safe(t._expires, interval)  # hrtimer_add_expires()
    t._softexpires = ktime_add_safe(t._softexpires, interval)
    return orun


def hrtimer_forward_now(timer: HrTimer, interval: int) -> int:
    """
    :func:`hrtimer_forward` to the timer's clock's now: the periodic timer's step, called
    from its callback before it returns ``HRTIMER_RESTART``.

    Returns:
        The number of overruns: 1 when on time, more when the callback ran late.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`, or *interval* is not an int.
        ValueError: *interval* is not a ktime.

    .. versionadded:: 0.2
    """
    t = _check_timer(timer, "hrtimer_forward_now")
    interval = check_ktime(interval, "hrtimer_forward_now", "interval")
    return _forward(t, _cur().kernel.get_ktime(), interval)


def hrtimer_active(timer: HrTimer) -> bool:
    """
    True while *timer* is queued or its callback runs.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`.

    .. versionadded:: 0.2
    """
    t = _check_timer(timer, "hrtimer_active")
    base = t._base
    return t._entry is not None or (base is not None and base.running is t)


def hrtimer_is_queued(timer: HrTimer) -> bool:
    """
    True while *timer* is queued (false inside its callback unless re-started there).

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`.

    .. versionadded:: 0.2
    """
    return _check_timer(timer, "hrtimer_is_queued")._entry is not None


def hrtimer_callback_running(timer: HrTimer) -> bool:
    """
    True while *timer*'s callback runs.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`.

    .. versionadded:: 0.2
    """
    t = _check_timer(timer, "hrtimer_callback_running")
    base = t._base
    return base is not None and base.running is t


def hrtimer_get_expires(timer: HrTimer) -> int:
    """
    *timer*'s (hard) expiry, an absolute ktime (0 if never started).

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`.

    .. versionadded:: 0.2
    """
    return _check_timer(timer, "hrtimer_get_expires")._expires


def hrtimer_get_remaining(timer: HrTimer) -> int:
    """
    The time left until *timer*'s hard expiry: negative once it has passed.

    Raises:
        TypeError: *timer* is not an :class:`HrTimer`.

    .. versionadded:: 0.2
    """
    t = _check_timer(timer, "hrtimer_get_remaining")
    return s64(t._expires - _cur().kernel.get_ktime())


# -- sleeping --------------------------------------------------------------------------------------


def _check_expires(expires: object, func: str) -> int | None:
    if expires is None:
        return None
    if type(expires) is int and S64_MIN <= expires <= S64_MAX:
        return expires
    return check_int(expires, func, "expires", lo=S64_MIN, hi=S64_MAX, expected=_EXPIRES)


async def _schedule_hrtimeout_range(expires: int | None, delta: int, mode: int) -> int:
    """``schedule_hrtimeout_range_clock`` on ``CLOCK_MONOTONIC``, arguments checked."""
    from ._sched import _sleep_begin, _sleep_end, schedule

    task = _cur()
    if expires is not None and expires == 0:
        task.state = TASK_RUNNING
        await anyio.lowlevel.checkpoint()
        return 0
    if expires is None:
        await schedule()
        return -EINTR
    if task.policy == SCHED_FIFO or task.policy == SCHED_RR:
        delta = 0  # real-time tasks get no slack
    sleeper = _Sleeper(task, mode)
    _start(sleeper, expires, delta, mode, "schedule_hrtimeout_range")
    state = task.state
    try:
        waiter = _sleep_begin(task)  # schedule(), without a coroutine of its own
        await (waiter if waiter is not None else anyio.lowlevel.checkpoint())
    finally:
        _sleep_end(task, state)
        if sleeper._entry is not None:
            _remove(sleeper)
    return 0 if sleeper.task is None else -EINTR


def _check_hrtimeout(expires: object, mode: object, func: str, delta: object = 0) -> None:
    _check_expires(expires, func)
    check_u64(delta, func, "delta")
    _check_mode(mode, func)


@sleeping_checked(lambda expires, mode: _check_hrtimeout(expires, mode, "schedule_hrtimeout"))
async def schedule_hrtimeout(expires: int | None, mode: int) -> int:
    """
    Sleep, in the state set before (:func:`set_current_state`), until the ktime *expires*
    (``HRTIMER_MODE_ABS``) or for *expires* nanoseconds (``HRTIMER_MODE_REL``), or until
    woken: :func:`schedule_hrtimeout_range` with no slack.

    Returns:
        0 if the time passed, ``-EINTR`` if woken earlier.

    Raises:
        TypeError, ValueError: as :func:`schedule_hrtimeout_range`.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    return await _schedule_hrtimeout_range(expires, 0, mode)


@sleeping_checked(
    lambda expires, delta, mode: _check_hrtimeout(expires, mode, "schedule_hrtimeout_range", delta)
)
async def schedule_hrtimeout_range(expires: int | None, delta: int, mode: int) -> int:
    """
    Sleep, in the state set before, on an hrtimer for ``[expires, expires + delta]``.

    As in the kernel: *expires* ``== 0`` sets ``TASK_RUNNING`` and returns 0 at once;
    ``None`` (the kernel's ``NULL``: no timeout) schedules once and returns ``-EINTR``. In
    ``TASK_RUNNING`` the task does not sleep, so it returns ``-EINTR`` at once; in
    ``TASK_INTERRUPTIBLE`` a signal ends the sleep, as does :func:`wake_up_process` in any
    state. Real-time tasks (``SCHED_FIFO``/``SCHED_RR``) get no slack. It always returns in
    ``TASK_RUNNING``.

    Returns:
        0 if the timer expired, ``-EINTR`` if the task was woken before.

    Raises:
        TypeError: *expires* is not an int or None; *delta* or *mode* is not an int.
        ValueError: *expires* is not a ktime, *delta* not a ``u64``, *mode* not an
            ``enum hrtimer_mode``.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    return await _schedule_hrtimeout_range(expires, delta, mode)


async def usleep_range_state(lo: int, hi: int, state: int) -> None:
    """
    ``usleep_range_state``: sleep in *state* until ``now + lo`` µs, with ``hi - lo`` µs of
    slack, never returning early (a wake-up sleeps again). ``hi < lo`` is the kernel's
    ``WARN_ON_ONCE`` and no slack (v6.13). Arguments are checked by the caller.
    """
    task = _cur()
    exp = s64(task.kernel.get_ktime() + ((lo * NSEC_PER_USEC) & U64_MAX))
    delta = (((hi - lo) & U64_MAX) * NSEC_PER_USEC) & U64_MAX
    if hi < lo:
        warn_once(("usleep_range_state", "max < min"))  # WARN_ON_ONCE(max < min)
        delta = 0
    while True:
        task.state = state
        if not await _schedule_hrtimeout_range(exp, delta, 0):
            break


def _check_fsleep(usecs: object) -> None:
    check_u64(usecs, "fsleep", "usecs", f"an unsigned long (0 to {U64_MAX})")


@sleeping_checked(_check_fsleep)
async def fsleep(usecs: int) -> None:
    """
    Sleep *usecs* microseconds the way that suits the length (the v6.13 selection):

    * up to 10 µs: ``udelay(usecs)``, a busy-wait (it does not sleep or yield);
    * below ``USLEEP_RANGE_UPPER_BOUND`` (4 ticks: 16 000 µs at HZ=250):
      ``usleep_range(usecs, usecs + usecs / 4)``, an hrtimer sleep;
    * otherwise ``msleep(DIV_ROUND_UP(usecs, 1000))``, on the timer wheel.

    Raises:
        TypeError: *usecs* is not an int.
        ValueError: *usecs* does not fit an ``unsigned long``.

    Context:
        Task context; may sleep.

    .. versionadded:: 0.2
    """
    from ._sched import _msleep

    task = _cur()
    if usecs <= 10:
        import kdefer_async

        kdefer_async.udelay(usecs)
        return
    hz = task.kernel.hz
    tick_nsec = (NSEC_PER_SEC + hz // 2) // hz
    if usecs < (tick_nsec << 2) // NSEC_PER_USEC:
        await usleep_range_state(usecs, usecs + (usecs >> 2), TASK_UNINTERRUPTIBLE)
    else:
        # msleep() takes an unsigned int: the C call truncates the quotient
        await _msleep(((usecs + 999) // 1000) & 0xFFFFFFFF)
