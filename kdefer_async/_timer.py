"""Timers on jiffies: ``timer_list`` on a per-CPU, non-cascading timer wheel.

Kernel invariants modelled (kernel/time/timer.c, since 4.8):

* A timer armed for ``expires`` fires at the first multiple of its level's granularity
  (1, 8, 64... jiffies) strictly greater than ``expires``: never early, at level 0 one tick late
  by design. A timer whose ``expires`` has passed fires at the next tick.
* Callbacks run from ``TIMER_SOFTIRQ`` on the CPU whose base holds the timer, in softirq context,
  one at a time. The timer is off the wheel before its callback runs (``timer_pending()`` is
  false inside it); re-arming it for "now" from the callback fires on the next tick, never in the
  same pass. A ``TIMER_IRQSAFE`` callback runs with local interrupts off, which is what makes
  ``timer_delete_sync()`` on it legal from hardirq context.
* Deferrable timers live on a second base whose expiry never wakes an idle CPU: they run the
  next time the CPU is awake for something else (a non-deferrable timer, an interrupt).
* Tickless: each CPU's tick sleeps until its earliest non-deferrable bucket is due, and not at
  all when nothing is armed, so an idle kernel costs no CPU.

Re-arming is O(1): a timer lives in a dict keyed by itself inside a bucket keyed by the bucket's
expiry; a bucket that empties is dropped, so nothing is left behind. Timers due in the same
tick run in the order they were armed (the kernel leaves that order unspecified).

Guarantees:
    * test_timer_never_fires_early: the callback sees ``jiffies > expires``.
    * test_rearm_for_now_in_callback_fires_next_tick: no same-pass re-run.
    * test_mod_timer_return_values: 0 for an inactive timer, 1 for a pending one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from ._consts import (
    HARDIRQ_MASK,
    HARDIRQ_OFFSET,
    TIMER_CPUMASK,
    TIMER_DEFERRABLE,
    TIMER_INIT_FLAGS,
    TIMER_IRQSAFE,
    TIMER_PINNED,
    TIMER_SOFTIRQ,
)
from ._context import TaskStruct, _cur, _current
from ._printk import symbol_name, warn, warn_once
from ._softirq import check_atomic_callable, panic_in_interrupt, run_atomic_result

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = [
    "DEFINE_TIMER",
    "TimerBase",
    "TimerList",
    "add_timer",
    "add_timer_global",
    "add_timer_local",
    "add_timer_on",
    "del_timer",
    "del_timer_sync",
    "mod_timer",
    "mod_timer_pending",
    "run_timer_softirq",
    "tick_task",
    "timer_delete",
    "timer_delete_sync",
    "timer_pending",
    "timer_reduce",
    "timer_setup",
    "timer_shutdown",
    "timer_shutdown_sync",
]

LVL_CLK_SHIFT = 3
LVL_BITS = 6
LVL_SIZE = 1 << LVL_BITS
#: ``NEXT_TIMER_MAX_DELTA``-like "nothing armed" marker, later than any real expiry.
_NO_EXPIRY = 1 << 80


def _lvl_start(n: int) -> int:
    return (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT)


class _Wheel:
    """Level geometry for one HZ: 9 levels if HZ > 100, else 8."""

    __slots__ = ("cutoff", "depth", "starts", "timeout_max")

    def __init__(self, hz: int) -> None:
        self.depth = 9 if hz > 100 else 8
        # starts[k] = LVL_START(k + 2): a delta below it belongs to level k + 1
        self.starts = tuple(_lvl_start(n) for n in range(2, self.depth + 1))
        self.cutoff = _lvl_start(self.depth)
        self.timeout_max = self.cutoff - (1 << ((self.depth - 1) * LVL_CLK_SHIFT))

    def bucket_expiry(self, expires: int, clk: int) -> int:
        """``calc_wheel_index``: the tick at which a timer armed for *expires* fires."""
        delta = expires - clk
        if delta < 63:
            return expires + 1 if delta >= 0 else clk
        shift = LVL_CLK_SHIFT
        for start in self.starts:
            if delta < start:
                return ((expires >> shift) + 1) << shift
            shift += LVL_CLK_SHIFT
        if delta >= self.cutoff:
            expires = clk + self.timeout_max
        shift = (self.depth - 1) * LVL_CLK_SHIFT
        return ((expires >> shift) + 1) << shift


class TimerList:
    """
    ``struct timer_list``.

    ``TimerList()`` is uninitialised (use :func:`timer_setup`); ``TimerList(callback, flags)``
    is ``timer_setup`` in one step. ``callback(timer)`` runs in softirq context.

    Attributes:
        expires: Absolute expiry in jiffies.
        function: The callback, ``None`` after ``timer_shutdown*``.
        flags: ``TIMER_DEFERRABLE``, ``TIMER_PINNED``, ``TIMER_IRQSAFE`` (and the CPU, for
            pinned timers).

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__weakref__",
        "_base",
        "_bexp",
        "_bucket",
        "_dead",
        "expires",
        "flags",
        "function",
    )

    def __init__(self, callback: Callable[[Any], object] | None = None, flags: int = 0) -> None:
        self.expires = 0  # A
        self.function: Callable[[Any], object] | None = None  # A
        self.flags = 0  # A
        self._base: TimerBase | None = None  # A: the base it was last armed on
        self._bucket: dict[TimerList, None] | None = None  # A: set while pending
        self._bexp = 0  # A: the bucket's expiry while pending
        self._dead = False  # A: timer_shutdown*() was called
        if callback is not None:
            timer_setup(self, callback, flags)

    def __repr__(self) -> str:
        fn = symbol_name(self.function) if self.function else None
        state = "pending" if self._bucket is not None else "inactive"
        return f"<TimerList {fn} expires={self.expires} {state}>"


class TimerBase:
    """``struct timer_base``: one CPU's wheel (standard or deferrable)."""

    __slots__ = ("buckets", "clk", "cpu", "deferrable", "next_expiry", "running_timer", "wheel")

    def __init__(self, cpu: CPU, *, deferrable: bool) -> None:
        self.cpu = cpu  # I
        self.deferrable = deferrable  # I
        self.wheel = cpu.kernel._wheel  # I
        self.clk = 0  # W: the next tick to process
        self.next_expiry = _NO_EXPIRY  # W: earliest bucket expiry
        self.buckets: dict[int, dict[TimerList, None]] = {}  # W
        self.running_timer: TimerList | None = None  # W

    def recalc(self) -> None:
        self.next_expiry = min(self.buckets) if self.buckets else _NO_EXPIRY

    def forward(self, now: int) -> None:
        """``forward_timer_base``: catch ``clk`` up with jiffies on an idle base."""
        if now > self.clk:
            self.clk = now if self.next_expiry > now else self.next_expiry


def _enqueue(base: TimerBase, t: TimerList, expires: int, now: int) -> None:
    clk = base.clk
    if now > clk:  # forward_timer_base(), inline: this is the hot path of mod_timer
        nxt = base.next_expiry
        clk = base.clk = now if nxt > now else nxt
    delta = expires - clk
    bexp = expires + 1 if 0 <= delta < 63 else base.wheel.bucket_expiry(expires, clk)
    buckets = base.buckets
    bucket = buckets.get(bexp)
    if bucket is None:
        bucket = buckets[bexp] = {}
    bucket[t] = None
    t._bucket = bucket
    t._bexp = bexp
    t._base = base
    t.expires = expires
    if bexp < base.next_expiry:
        base.next_expiry = bexp
        if not base.deferrable:
            scope = base.cpu._tick_scope
            if scope is not None:
                # the tick of jiffy ``now`` has happened: the earliest tick left is now + 1
                when = base.cpu.kernel.jiffies_to_time(max(bexp, now + 1))
                if when < scope.deadline:
                    scope.deadline = when


def _detach(t: TimerList) -> None:
    bucket = t._bucket
    assert bucket is not None
    del bucket[t]
    t._bucket = None
    if not bucket:
        base = t._base
        assert base is not None
        del base.buckets[t._bexp]
        if t._bexp == base.next_expiry:
            base.recalc()


def _check_timer(t: object) -> TimerList:
    if not isinstance(t, TimerList):
        raise TypeError(f"expected a TimerList, not {type(t).__name__}")
    return t


def _check_expires(expires: object) -> int:
    if isinstance(expires, bool) or not isinstance(expires, int):
        raise TypeError(f"expires must be an int (jiffies), not {type(expires).__name__}")
    return expires


def _mod_timer(t: TimerList, expires: int, *, pending_only: bool, reduce: bool = False) -> int:
    task = _cur()
    if t._dead:
        return 0
    if t.function is None:
        raise ValueError(f"{t!r} was never initialised (timer_setup)")
    kernel = task.kernel
    now = kernel.get_jiffies()
    if t._bucket is not None:
        if t.expires == expires:
            return 1
        base = t._base
        assert base is not None
        if reduce and expires - t.expires >= 0:
            return 1
        base.forward(now)
        if base.wheel.bucket_expiry(expires, base.clk) == t._bexp:
            t.expires = expires
            return 1
        _detach(t)
        ret = 1
    else:
        if pending_only:
            return 0
        ret = 0
    cpu = kernel.cpus[task.cpu]
    new_base = cpu.def_base if t.flags & TIMER_DEFERRABLE else cpu.std_base
    old = t._base
    if old is not None and old.running_timer is t:
        new_base = old  # never migrate a timer whose callback is running
    _enqueue(new_base, t, expires, now)
    return ret


def timer_setup(timer: TimerList, callback: Callable[[Any], object], flags: int) -> None:
    """
    Initialise *timer*: ``callback(timer)`` will run in softirq context when it expires.

    *flags* is a subset of ``TIMER_DEFERRABLE | TIMER_PINNED | TIMER_IRQSAFE``; other bits are
    a kernel WARN and are masked off.

    Raises:
        TypeError: *callback* is not callable or is ``async def``.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    _check_timer(timer)
    check_atomic_callable(callback, "a timer callback")
    if not isinstance(flags, int):
        raise TypeError(f"flags must be an int, not {type(flags).__name__}")
    if flags & ~TIMER_INIT_FLAGS:
        # WARN_ON_ONCE() in do_init_timer(): once per boot, whichever timer it was
        warn_once("timer_setup: flags", "timer_setup: invalid flags %#x\n", flags)
        flags &= TIMER_INIT_FLAGS
    if timer._bucket is not None:
        _detach(timer)
    timer.function = callback
    timer.flags = flags
    timer.expires = 0
    timer._dead = False
    timer._base = None


def DEFINE_TIMER(callback: Callable[[Any], object]) -> TimerList:
    """
    Return a timer set up with *callback* and no flags.

    .. versionadded:: 0.1
    """
    return TimerList(callback, 0)


def mod_timer(timer: TimerList, expires: int) -> int:
    """
    (Re)arm *timer* to fire at jiffy *expires*, pending or not; it moves to this CPU.

    Returns:
        1 if *timer* was pending (now modified, or unchanged for the same expiry); 0 if it was
        inactive (now started) or shut down (then nothing happens).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    # The fast path (an inactive, set-up timer and an int expiry) is written out inline;
    # everything else, errors included, goes through _mod_timer.
    task = _current.get()
    if (
        task is None
        or type(expires) is not int
        or not isinstance(timer, TimerList)
        or timer._bucket is not None
        or timer._dead
        or timer.function is None
    ):
        return _mod_timer(_check_timer(timer), _check_expires(expires), pending_only=False)
    kernel = task.kernel
    cpu = kernel.cpus[task.cpu]
    base = cpu.def_base if timer.flags & TIMER_DEFERRABLE else cpu.std_base
    old = timer._base
    if old is not None and old.running_timer is timer:
        base = old  # never migrate a timer whose callback is running
    _enqueue(base, timer, expires, kernel.get_jiffies())
    return 0


def mod_timer_pending(timer: TimerList, expires: int) -> int:
    """
    Modify *timer*'s expiry only if it is pending; never starts an inactive timer.

    Returns:
        1 if it was pending and is modified, else 0.

    .. versionadded:: 0.1
    """
    return _mod_timer(_check_timer(timer), _check_expires(expires), pending_only=True)


def timer_reduce(timer: TimerList, expires: int) -> int:
    """
    Like :func:`mod_timer`, but only ever moves a pending timer earlier.

    .. versionadded:: 0.1
    """
    return _mod_timer(_check_timer(timer), _check_expires(expires), pending_only=False, reduce=True)


def add_timer(timer: TimerList) -> None:
    """
    Start an inactive *timer* at ``timer.expires``. On a pending timer: a WARN, nothing else.

    .. versionadded:: 0.1
    """
    _check_timer(timer)
    if timer._bucket is not None:
        warn_once("add_timer")  # WARN_ON_ONCE: once per boot for this call site
        return
    _mod_timer(timer, _check_expires(timer.expires), pending_only=False)


def add_timer_local(timer: TimerList) -> None:
    """
    Start *timer* pinned to this CPU (``TIMER_PINNED`` set).

    .. versionadded:: 0.1
    """
    if _check_timer(timer)._bucket is not None:
        warn_once("add_timer_local")  # before touching the flags of a pending timer
        return
    timer.flags |= TIMER_PINNED
    _mod_timer(timer, _check_expires(timer.expires), pending_only=False)


def add_timer_global(timer: TimerList) -> None:
    """
    Start *timer* without ``TIMER_PINNED``.

    .. versionadded:: 0.1
    """
    if _check_timer(timer)._bucket is not None:
        warn_once("add_timer_global")  # before touching the flags of a pending timer
        return
    timer.flags &= ~TIMER_PINNED
    _mod_timer(timer, _check_expires(timer.expires), pending_only=False)


def add_timer_on(timer: TimerList, cpu: int) -> None:
    """
    Start *timer* pinned on CPU *cpu*.

    Raises:
        ValueError: *cpu* is out of range.

    .. versionadded:: 0.1
    """
    _check_timer(timer)
    task = _cur()
    kernel = task.kernel
    nr = kernel._check_cpu(cpu)
    if timer._bucket is not None:
        warn_once("add_timer_on")
        return
    if timer._dead:
        return
    if timer.function is None:
        raise ValueError(f"{timer!r} was never initialised (timer_setup)")
    expires = _check_expires(timer.expires)
    timer.flags = (timer.flags & ~TIMER_CPUMASK) | TIMER_PINNED | nr
    c = kernel.cpus[nr]
    base = c.def_base if timer.flags & TIMER_DEFERRABLE else c.std_base
    _enqueue(base, timer, expires, kernel.get_jiffies())


def timer_pending(timer: TimerList) -> bool:
    """
    True while *timer* is armed (false while its callback runs, unless re-armed).

    .. versionadded:: 0.1
    """
    return _check_timer(timer)._bucket is not None


def timer_delete(timer: TimerList) -> int:
    """
    Deactivate *timer*; does not wait for a running callback.

    Returns:
        1 if it was pending, else 0.

    .. versionadded:: 0.1
    """
    bucket = getattr(timer, "_bucket", None) if type(timer) is not TimerList else timer._bucket
    if bucket is None:
        _check_timer(timer)
        return 0
    del bucket[timer]  # _detach(), inline
    timer._bucket = None
    if not bucket:
        base = timer._base
        assert base is not None
        del base.buckets[timer._bexp]
        if timer._bexp == base.next_expiry:
            base.recalc()
    return 1


def _delete_sync(timer: TimerList, what: str) -> int:
    task = _cur()
    if task.preempt_count & HARDIRQ_MASK and not timer.flags & TIMER_IRQSAFE:
        warn()
    base = timer._base
    if base is not None and base.running_timer is timer:
        from ._locking import report_recursive_locking

        report_recursive_locking(f"(&{symbol_name(timer.function)})", what, "call_timer_fn")
    return timer_delete(timer)


def timer_delete_sync(timer: TimerList) -> int:
    """
    Deactivate *timer* and wait until its callback is not running.

    In the kernel, calling it from the timer's own callback spins forever; here that reports
    ``possible recursive locking detected`` and raises :class:`KernelBug`. From hardirq
    context on a timer without ``TIMER_IRQSAFE`` it WARNs, as the kernel does.

    Returns:
        1 if it was pending, else 0.

    .. versionadded:: 0.1
    """
    return _delete_sync(_check_timer(timer), "timer_delete_sync")


def del_timer(timer: TimerList) -> int:
    """
    The pre-6.2 name of :func:`timer_delete`.

    .. versionadded:: 0.1
    """
    return timer_delete(timer)


def del_timer_sync(timer: TimerList) -> int:
    """
    The pre-6.2 name of :func:`timer_delete_sync`.

    .. versionadded:: 0.1
    """
    return _delete_sync(_check_timer(timer), "del_timer_sync")


def timer_shutdown(timer: TimerList) -> int:
    """
    Deactivate *timer* for good: later arm attempts are silently ignored.

    Returns:
        1 if it was pending.

    .. versionadded:: 0.1
    """
    ret = timer_delete(timer)
    timer._dead = True
    timer.function = None
    return ret


def timer_shutdown_sync(timer: TimerList) -> int:
    """
    :func:`timer_shutdown` and wait for a running callback; re-use needs :func:`timer_setup`.

    Returns:
        1 if it was pending.

    .. versionadded:: 0.1
    """
    ret = _delete_sync(_check_timer(timer), "timer_shutdown_sync")
    timer._dead = True
    timer.function = None
    return ret


def _expire(base: TimerBase, bucket: dict[TimerList, None], task: TaskStruct) -> None:
    cpu = base.cpu
    for t in list(bucket):
        if t._bucket is not bucket:
            continue  # deleted or re-armed by an earlier callback of this tick
        t._bucket = None
        fn = t.function
        if fn is None:
            continue
        base.running_timer = t
        prev = task.preempt_count
        irqs = task.irqs_off
        if t.flags & TIMER_IRQSAFE:
            task.irqs_off = irqs + 1  # expire_timers() keeps local interrupts off for these
        try:
            result = fn(t)
        except Exception as exc:
            base.running_timer = None
            task.irqs_off = irqs
            panic_in_interrupt(task, exc, f"timer {symbol_name(fn)}")
            raise
        base.running_timer = None
        if task.irqs_off != irqs:
            task.irqs_off = irqs
            if not irqs:
                cpu.kernel._deliver_pending_irqs(task)  # interrupts held off meanwhile
        cpu.progress += 1
        if result is not None:
            run_atomic_result(task, result, fn)
        if task.preempt_count != prev:
            warn_once(
                ("timer preempt leak", fn),
                "timer: %pS preempt leak: %08x -> %08x\n",
                fn,
                prev,
                task.preempt_count,
            )
            task.preempt_count = prev


def _run_timers(base: TimerBase, now: int, task: TaskStruct) -> None:
    buckets = base.buckets
    while base.next_expiry <= now and base.clk <= now:
        if base.next_expiry > base.clk:
            base.clk = base.next_expiry
        bucket = buckets.pop(base.clk, None)
        base.clk += 1
        if bucket is not None:
            base.recalc()
            _expire(base, bucket, task)
        elif base.next_expiry < base.clk:
            base.recalc()


def run_timer_softirq() -> None:
    """The ``TIMER_SOFTIRQ`` handler: expire this CPU's due timers (standard, then deferrable)."""
    task = _cur()
    cpu = task.kernel.cpus[task.cpu]
    now = task.kernel.get_jiffies()
    _run_timers(cpu.std_base, now, task)
    _run_timers(cpu.def_base, now, task)


def timers_due(cpu: CPU, now: int) -> bool:
    return cpu.std_base.next_expiry <= now or cpu.def_base.next_expiry <= now


async def tick_task(cpu: CPU) -> None:
    """
    The CPU's tick, tickless: sleep until the earliest non-deferrable bucket is due, then take a
    local timer interrupt that raises ``TIMER_SOFTIRQ`` and runs it on irq exit.
    """
    from ._hardirq import irq_exit

    task = cpu.swapper
    _current.set(task)
    kernel = cpu.kernel
    base = cpu.std_base
    while True:
        nxt = base.next_expiry
        if nxt == _NO_EXPIRY:
            deadline = math.inf
        else:
            # ticks come at jiffy boundaries: a bucket already due (a timer armed in the past)
            # waits for the next one, as in the kernel, where only the tick raises TIMER_SOFTIRQ
            deadline = kernel.jiffies_to_time(max(nxt, kernel.get_jiffies() + 1))
        with anyio.CancelScope(deadline=deadline) as scope:
            cpu._tick_scope = scope
            await anyio.sleep_forever()
        cpu._tick_scope = None
        now = kernel.get_jiffies()
        if base.next_expiry > now:
            continue  # woke early (clock granularity) or the timer went away
        # the local timer interrupt
        task.preempt_count += HARDIRQ_OFFSET
        kernel.loc_interrupts[cpu.nr] += 1
        cpu.pending |= 1 << TIMER_SOFTIRQ
        task.preempt_count -= HARDIRQ_OFFSET
        irq_exit(cpu, task)
