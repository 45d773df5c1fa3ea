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

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._check import bad_type, bad_value, check_callback, check_cpu, check_instance, check_int
from ._consts import (
    HARDIRQ_MASK,
    TIMER_CPUMASK,
    TIMER_DEFERRABLE,
    TIMER_INIT_FLAGS,
    TIMER_IRQSAFE,
    TIMER_PINNED,
    ULONG_MASK,
)
from ._context import TaskStruct, _cur, _current
from ._printk import symbol_name, warn, warn_once
from ._softirq import panic_in_interrupt, run_atomic_result
from ._trace import (
    TIMER_CANCEL,
    TIMER_EXPIRE_ENTRY,
    TIMER_EXPIRE_EXIT,
    TIMER_INIT,
    TIMER_START,
    emit,
    emit_locked,
    site_task,
)

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
#: The bits of ``timer->flags`` above TIMER_ARRAYSHIFT (22): the wheel bucket index.
_TIMER_INDEX_MASK = 0xFFC00000
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

    def index(self, expires: int, clk: int) -> int:
        """``calc_wheel_index``'s bucket number (level * 64 + slot), for ``timer_start``."""
        delta = expires - clk
        if delta < 0:
            return clk & (LVL_SIZE - 1)
        lvl = 0
        if delta >= 63:
            lvl = self.depth - 1
            for k, start in enumerate(self.starts):
                if delta < start:
                    lvl = k + 1
                    break
            if delta >= self.cutoff:
                expires = clk + self.timeout_max
        shift = lvl * LVL_CLK_SHIFT
        return lvl * LVL_SIZE + (((expires >> shift) + 1) & (LVL_SIZE - 1))

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
        if callback is not None or flags != 0:
            _check_callback(callback, "TimerList")
            flags = _check_flags(flags, "TimerList")
        self.expires = 0  # A
        self.function: Callable[[Any], object] | None = None  # A
        self.flags = 0  # A
        self._base: TimerBase | None = None  # A: the base it was last armed on
        self._bucket: dict[TimerList, None] | None = None  # A: set while pending
        self._bexp = 0  # A: the bucket's expiry while pending
        self._dead = False  # A: timer_shutdown*() was called
        if callback is not None:
            _setup(self, callback, flags)

    def __repr__(self) -> str:
        fn = symbol_name(self.function) if self.function else None
        state = "pending" if self._bucket is not None else "inactive"
        return f"<TimerList {fn} expires={self.expires} {state}>"


class TimerBase:
    """``struct timer_base``: one CPU's wheel (standard or deferrable)."""

    __slots__ = (
        "buckets",
        "clk",
        "cpu",
        "deferrable",
        "kernel",
        "next_expiry",
        "running_timer",
        "wheel",
    )

    def __init__(self, cpu: CPU, *, deferrable: bool) -> None:
        self.cpu = cpu  # I
        self.kernel = cpu.kernel  # I: its tracing switch is tested on the hot paths
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
    if base.kernel._trace_on:
        _trace_start(base, t, clk, now)
    if bexp < base.next_expiry:
        base.next_expiry = bexp
        if not base.deferrable:
            scope = base.cpu._tick_scope
            if scope is not None:
                # the tick of jiffy ``now`` has happened: the earliest tick left is now + 1
                when = base.cpu.kernel.jiffies_to_time(max(bexp, now + 1))
                if when < scope.deadline:
                    scope.deadline = when


def _trace_start(base: TimerBase, t: TimerList, clk: int, now: int) -> None:
    """``timer_start``, from ``enqueue_timer()``: ``timer->flags`` with the CPU and the
    bucket index in it, as the kernel keeps them."""
    kernel = base.kernel
    idx = base.wheel.index(t.expires, clk)
    flags = (t.flags & ~(TIMER_CPUMASK | _TIMER_INDEX_MASK)) | base.cpu.nr | idx << 22
    task = site_task(kernel, base.cpu.nr)
    emit_locked(kernel, task, TIMER_START, t, t.function, t.expires, t._bexp, now, flags)


def _trace_cancel(base: TimerBase, t: TimerList) -> None:
    """``timer_cancel``, from ``detach_timer()`` (the base lock held, interrupts off)."""
    kernel = base.kernel
    emit_locked(kernel, site_task(kernel, base.cpu.nr), TIMER_CANCEL, t)


def _detach(t: TimerList) -> None:
    bucket = t._bucket
    assert bucket is not None
    del bucket[t]
    t._bucket = None
    base = t._base
    assert base is not None
    if base.kernel._trace_on:
        _trace_cancel(base, t)
    if not bucket:
        del base.buckets[t._bexp]
        if t._bexp == base.next_expiry:
            base.recalc()


def _check_timer(t: object, func: str, param: str = "timer") -> TimerList:
    """*t* if it is a :class:`TimerList` (the cheap exact-type test first)."""
    if type(t) is TimerList:
        return t
    return check_instance(t, TimerList, func, param)


_JIFFIES = f"a jiffies value from 0 to {ULONG_MASK}"


def _check_expires(expires: object, func: str, param: str = "expires") -> int:
    """*expires* if it is a jiffies value: an ``unsigned long``, never negative or wrapped."""
    if type(expires) is int and not expires >> 64:
        return expires  # the common case, without a call
    return check_int(expires, func, param, lo=0, hi=ULONG_MASK, expected=_JIFFIES)


def _check_callback(callback: object, func: str) -> None:
    check_callback(
        callback,
        func,
        "callback",
        shape="callback(timer)",
        nargs=1,
        kind="atomic",
        what="a timer callback",
    )


def _check_flags(flags: object, func: str) -> int:
    """*flags* if it is an ``unsigned int``; which bits are valid is the WARN of timer_setup."""
    return check_int(
        flags, func, "flags", lo=0, hi=0xFFFFFFFF, expected="timer flags (an unsigned int)"
    )


def _uninitialised(t: TimerList, func: str) -> ValueError:
    return bad_value(func, "timer", "a TimerList set up by timer_setup()", t)


def _mod_timer(
    t: TimerList, expires: int, func: str, *, pending_only: bool, reduce: bool = False
) -> int:
    task = _cur()
    if t._dead:
        return 0
    if t.function is None:
        raise _uninitialised(t, func)
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
        TypeError: *timer* is not a :class:`TimerList`; *callback* is not callable, is
            ``async def`` or cannot be called as ``callback(timer)``; *flags* is not an int.
        ValueError: *flags* does not fit the ``unsigned int`` it is in C.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    _check_timer(timer, "timer_setup")
    _check_callback(callback, "timer_setup")
    _setup(timer, callback, _check_flags(flags, "timer_setup"))


def _setup(timer: TimerList, callback: Callable[[Any], object], flags: int) -> None:
    """``do_init_timer``, once the arguments are checked."""
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
    task = _current.get()  # (no kernel is needed to set a timer up)
    if task is not None and task.kernel._trace_on:
        emit(task.kernel, task, TIMER_INIT, timer)


def DEFINE_TIMER(callback: Callable[[Any], object]) -> TimerList:
    """
    Return a timer set up with *callback* and no flags.

    Raises:
        TypeError: *callback* is not a function callable as ``callback(timer)`` in softirq
            context (``None`` included: the timer is defined to run something).

    .. versionadded:: 0.1
    """
    _check_callback(callback, "DEFINE_TIMER")
    timer = TimerList()
    _setup(timer, callback, 0)
    return timer


def mod_timer(timer: TimerList, expires: int) -> int:
    """
    (Re)arm *timer* to fire at jiffy *expires*, pending or not; it moves to this CPU.

    Returns:
        1 if *timer* was pending (now modified, or unchanged for the same expiry); 0 if it was
        inactive (now started) or shut down (then nothing happens).

    Raises:
        TypeError: *timer* is not a :class:`TimerList`, or *expires* is not an int.
        ValueError: *expires* is not a jiffies value (an ``unsigned long``: 0 to 2**64 - 1),
            or *timer* was never set up.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    # The fast path (an inactive, set-up timer and an int expiry) is written out inline;
    # everything else, errors included, goes through _mod_timer. (``expires >> 64`` is
    # nonzero for a negative expiry and for one past ULONG_MAX.)
    task = _current.get()
    if (
        task is None
        or type(expires) is not int
        or expires >> 64
        or not isinstance(timer, TimerList)
        or timer._bucket is not None
        or timer._dead
        or timer.function is None
    ):
        return _mod_timer(
            _check_timer(timer, "mod_timer"),
            _check_expires(expires, "mod_timer"),
            "mod_timer",
            pending_only=False,
        )
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

    Raises:
        TypeError, ValueError: as :func:`mod_timer`.

    .. versionadded:: 0.1
    """
    return _mod_timer(
        _check_timer(timer, "mod_timer_pending"),
        _check_expires(expires, "mod_timer_pending"),
        "mod_timer_pending",
        pending_only=True,
    )


def timer_reduce(timer: TimerList, expires: int) -> int:
    """
    Like :func:`mod_timer`, but only ever moves a pending timer earlier.

    Raises:
        TypeError, ValueError: as :func:`mod_timer`.

    .. versionadded:: 0.1
    """
    return _mod_timer(
        _check_timer(timer, "timer_reduce"),
        _check_expires(expires, "timer_reduce"),
        "timer_reduce",
        pending_only=False,
        reduce=True,
    )


def _check_add(timer: object, func: str) -> TimerList:
    """The checks of the add_timer family: a set-up (or shut down) timer whose ``expires``
    is a jiffies value."""
    t = _check_timer(timer, func)
    _check_expires(t.expires, func, "timer.expires")
    if t.function is None and not t._dead:
        raise _uninitialised(t, func)
    return t


def add_timer(timer: TimerList) -> None:
    """
    Start an inactive *timer* at ``timer.expires``. On a pending timer: a WARN, nothing else.

    Raises:
        TypeError: *timer* is not a :class:`TimerList`, or ``timer.expires`` is not an int.
        ValueError: ``timer.expires`` is not a jiffies value, or *timer* was never set up.

    .. versionadded:: 0.1
    """
    _check_add(timer, "add_timer")
    if timer._bucket is not None:
        warn_once("add_timer")  # WARN_ON_ONCE: once per boot for this call site
        return
    _mod_timer(timer, timer.expires, "add_timer", pending_only=False)


def add_timer_local(timer: TimerList) -> None:
    """
    Start *timer* pinned to this CPU (``TIMER_PINNED`` set).

    Raises:
        TypeError, ValueError: as :func:`add_timer`, before the flags change.

    .. versionadded:: 0.1
    """
    _check_add(timer, "add_timer_local")
    if timer._bucket is not None:
        warn_once("add_timer_local")  # before touching the flags of a pending timer
        return
    timer.flags |= TIMER_PINNED
    _mod_timer(timer, timer.expires, "add_timer_local", pending_only=False)


def add_timer_global(timer: TimerList) -> None:
    """
    Start *timer* without ``TIMER_PINNED``.

    Raises:
        TypeError, ValueError: as :func:`add_timer`, before the flags change.

    .. versionadded:: 0.1
    """
    _check_add(timer, "add_timer_global")
    if timer._bucket is not None:
        warn_once("add_timer_global")  # before touching the flags of a pending timer
        return
    timer.flags &= ~TIMER_PINNED
    _mod_timer(timer, timer.expires, "add_timer_global", pending_only=False)


def add_timer_on(timer: TimerList, cpu: int) -> None:
    """
    Start *timer* pinned on CPU *cpu*.

    Raises:
        TypeError: *timer* is not a :class:`TimerList`; *cpu* or ``timer.expires`` is not an
            int.
        ValueError: *cpu* is not a CPU of this kernel; ``timer.expires`` is not a jiffies
            value; *timer* was never set up.

    .. versionadded:: 0.1
    """
    _check_add(timer, "add_timer_on")
    task = _cur()
    kernel = task.kernel
    nr = check_cpu(cpu, kernel.nr_cpus, "add_timer_on")
    if timer._bucket is not None:
        warn_once("add_timer_on")
        return
    if timer._dead:
        return
    timer.flags = (timer.flags & ~TIMER_CPUMASK) | TIMER_PINNED | nr
    c = kernel.cpus[nr]
    base = c.def_base if timer.flags & TIMER_DEFERRABLE else c.std_base
    _enqueue(base, timer, timer.expires, kernel.get_jiffies())


def timer_pending(timer: TimerList) -> bool:
    """
    True while *timer* is armed (false while its callback runs, unless re-armed).

    Raises:
        TypeError: *timer* is not a :class:`TimerList`.

    .. versionadded:: 0.1
    """
    return _check_timer(timer, "timer_pending")._bucket is not None


def timer_delete(timer: TimerList) -> int:
    """
    Deactivate *timer*; does not wait for a running callback.

    Returns:
        1 if it was pending, else 0.

    Raises:
        TypeError: *timer* is not a :class:`TimerList`.

    .. versionadded:: 0.1
    """
    if type(timer) is TimerList:
        bucket = timer._bucket
    else:
        bucket = _check_timer(timer, "timer_delete")._bucket
    if bucket is None:
        return 0
    del bucket[timer]  # _detach(), inline
    timer._bucket = None
    base = timer._base
    assert base is not None
    if base.kernel._trace_on:
        _trace_cancel(base, timer)
    if not bucket:
        del base.buckets[timer._bexp]
        if timer._bexp == base.next_expiry:
            base.recalc()
    return 1


def _delete_sync(timer: object, what: str) -> int:
    timer = _check_timer(timer, what)
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

    Raises:
        TypeError: *timer* is not a :class:`TimerList`.

    .. versionadded:: 0.1
    """
    return _delete_sync(timer, "timer_delete_sync")


def del_timer(timer: TimerList) -> int:
    """
    The pre-6.2 name of :func:`timer_delete`.

    Raises:
        TypeError: *timer* is not a :class:`TimerList`.

    .. versionadded:: 0.1
    """
    try:
        return timer_delete(timer)
    except TypeError:
        if not isinstance(timer, TimerList):
            raise bad_type("del_timer", "timer", "a TimerList", timer) from None
        raise


def del_timer_sync(timer: TimerList) -> int:
    """
    The pre-6.2 name of :func:`timer_delete_sync`.

    Raises:
        TypeError: *timer* is not a :class:`TimerList`.

    .. versionadded:: 0.1
    """
    return _delete_sync(timer, "del_timer_sync")


def timer_shutdown(timer: TimerList) -> int:
    """
    Deactivate *timer* for good: later arm attempts are silently ignored.

    Returns:
        1 if it was pending.

    Raises:
        TypeError: *timer* is not a :class:`TimerList`.

    .. versionadded:: 0.1
    """
    ret = timer_delete(_check_timer(timer, "timer_shutdown"))
    timer._dead = True
    timer.function = None
    return ret


def timer_shutdown_sync(timer: TimerList) -> int:
    """
    :func:`timer_shutdown` and wait for a running callback; re-use needs :func:`timer_setup`.

    Returns:
        1 if it was pending.

    Raises:
        TypeError: *timer* is not a :class:`TimerList`.

    .. versionadded:: 0.1
    """
    ret = _delete_sync(timer, "timer_shutdown_sync")
    timer._dead = True
    timer.function = None
    return ret


def _expire(base: TimerBase, bucket: dict[TimerList, None], task: TaskStruct) -> None:
    cpu = base.cpu
    kernel = base.kernel
    for t in list(bucket):
        if t._bucket is not bucket:
            continue  # deleted or re-armed by an earlier callback of this tick
        t._bucket = None
        if kernel._trace_on:
            emit_locked(kernel, task, TIMER_CANCEL, t)  # detach_timer()
        fn = t.function
        if fn is None:
            continue
        base.running_timer = t
        prev = task.preempt_count
        irqs = task.irqs_off
        if t.flags & TIMER_IRQSAFE:
            task.irqs_off = irqs + 1  # expire_timers() keeps local interrupts off for these
        if kernel._trace_on:
            # baseclk: base->clk - 1, the tick whose bucket this is
            emit(kernel, task, TIMER_EXPIRE_ENTRY, t, kernel.get_jiffies(), fn, base.clk - 1)
        try:
            result = fn(t)
        except Exception as exc:
            base.running_timer = None
            task.irqs_off = irqs
            panic_in_interrupt(task, exc, f"timer {symbol_name(fn)}")
            raise
        if kernel._trace_on:
            emit(kernel, task, TIMER_EXPIRE_EXIT, t)
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
