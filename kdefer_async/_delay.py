"""Busy-waits that interrupts enter (``mdelay``/``udelay``/``ndelay``), ``cond_resched()``, and
the soft-lockup watchdog.

Field rules: ``I``: set at creation, read-only after; ``A``: changed only in synchronous code on
the loop's thread; ``W``: touched only by code running on that CPU (its spins and its ticks).

Kernel invariants modelled (include/linux/delay.h, include/asm-generic/delay.h,
arch/x86/lib/delay.c, kernel/time/tick-sched.c, kernel/watchdog.c, kernel/sched/core.c
``__cond_resched``):

* ``ndelay``/``udelay``/``mdelay`` spin on the calling CPU for the time given (exactly: the model
  never returns early) and disable nothing. They are legal in any context.
* A busy CPU is not tickless: while it spins with local interrupts on, one local timer
  interrupt (``LOC``) hits it at every jiffy boundary, and one at every hrtimer expiry in
  between. Each runs the tick (wheel timers due raise ``TIMER_SOFTIRQ``, lazy irq_work, expired
  hrtimers) in hardirq context and then, on ``irq_exit``, the pending softirqs, borrowing the
  spinning task: ``current()`` in a tasklet run there is the task that busy-waits, not
  ``ksoftirqd``. Interrupts raised for the CPU meanwhile (from other OS threads, through
  ``Kernel.raise_irq_threadsafe``) enter the spin the same way.
* In softirq context, or with bottom halves disabled, the tick still comes but no softirq runs
  at its exit (``irq_exit`` runs them only outside interrupt context); they run at the end of
  the softirq pass or at the matching ``local_bh_enable()``.
* With local interrupts disabled nothing enters: the local timer interrupt is held, once (it
  is one bit in the APIC), and taken when interrupts are enabled again; jiffies then already
  reflect the whole delay (the kernel catches jiffies up).
* Nested delays work: a tasklet that busy-waits inside a spin spins on, and the outer spin
  goes on from where the inner one left the clock.
* Soft lockup: the watchdog's hrtimer samples every CPU every ``watchdog_thresh * 2 / 5``
  seconds (4 s) and queues the per-CPU stopper work, which touches the CPU's timestamp when it
  gets to run. A CPU that spins in non-preemptible context (preemption or bottom halves
  disabled, a spinlock, a softirq or a handler) cannot run it: once its timestamp is more than
  ``2 * watchdog_thresh`` (20 s) old at a sample, ``watchdog: BUG: soft lockup - CPU#%d stuck
  for %us! [%s:%d]`` is printed (at ``KERN_EMERG``, with the modules and a stack dump; taint
  ``L``), and again one lockup period later if it is still stuck. The timestamps count in
  units of 2**30 ns (``running_clock() >> 30``), so "stuck for 22s" means 22 such units.
  A preemptible spin is preempted by the stopper (it is the highest-priority task), so it
  never locks up.
* ``cond_resched()`` runs ``__might_resched()`` first, then schedules if a reschedule is due
  and returns 1 if it did, 0 if not.

Time. On the virtual backends (kdefer_async's virtual asyncio loop, trio's ``MockClock``) a
spin moves the loop's clock forward itself, event by event (to each tick, each hrtimer expiry,
then the end), so that every interrupt sees its own instant and the clock has advanced by
exactly the delay when it returns. Work items that spin are charged the spin as run time (the
workqueue's CPU-hog detection measures run time on the wall clock). On real time the spin
polls the loop's clock.

``cond_resched()`` and the run queue. The kernel reschedules when ``TIF_NEED_RESCHED`` is set,
which a wake-up sets when another task wants the CPU. The model's CPUs share one event loop,
whose run queue is the only honest source: a reschedule is due when another task of the loop
is ready to run now. trio says so (``current_statistics().tasks_runnable``); on asyncio a task
is ready when it is not waiting on a future (or its future is done), and the stdlib loops'
ready queue being empty means no task is. ``cond_resched()`` then yields and returns 1; with
nothing ready it still yields once (a checkpoint, so a cancellation is seen) and returns 0.

What one event loop still cannot show: the other CPUs do not run while a CPU spins (their
timers fire late, after the spin returns; an interrupt aimed at another CPU is still delivered
at once, into what that CPU was running); and a thread woken during the spin (``ksoftirqd``
after a long softirq pass, an irq thread, a kworker) runs only after the delay returns, where
a fully preemptible kernel could run it on the same CPU during a preemptible delay.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from ._consts import HARDIRQ_MASK, LOCAL_TIMER_VECTOR, ULONG_MASK
from ._context import TaskStruct, _cur
from ._hardirq import _loop_waker, deliver_irq, deliver_threadsafe_irqs
from ._printk import modules_linked_in, report_lines
from ._sleeping import sleeping_checked
from ._tick import ktime_to_time, local_timer_interrupt
from ._vtime import VirtualTimeEventLoop

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel

__all__ = ["BusyWait", "cond_resched", "mdelay", "ndelay", "udelay", "watchdog_sample"]

#: ``NUM_SAMPLE_PERIODS``: the watchdog samples five times per soft-lockup threshold.
NUM_SAMPLE_PERIODS = 5
#: How long (wall seconds) a spin on a loop clock that does not move may take beyond its
#: delay before it gives up: a loop whose clock only moves when it is idle (a virtual clock
#: the model does not know how to move) would otherwise spin forever.
_STUCK_CLOCK_SLACK = 0.25


class BusyWait:
    """One spin on a CPU (``cpu.busy_wait`` while it lasts); spins nest through :attr:`prev`."""

    __slots__ = ("advanced", "end", "preemptible", "prev", "task")

    def __init__(self, task: TaskStruct, end: float, prev: BusyWait | None) -> None:
        self.task = task  # I: the task that spins (borrowed by the interrupts entering)
        self.end = end  # I: the loop time at which it returns
        self.prev = prev  # I: the spin this one interrupted, if any
        #: I: the stopper would preempt it (task context, preemption and IRQs enabled)
        self.preemptible = not task.preempt_count and not task.irqs_off
        self.advanced = 0.0  # W: virtual seconds this spin moved the clock itself

    def __repr__(self) -> str:
        return f"<BusyWait {self.task.comm}:{self.task.pid} until {self.end:.6f}>"


class _CpuWatchdog:
    """One CPU's soft-lockup state (``watchdog_touch_ts`` and ``watchdog_report_ts``)."""

    __slots__ = ("report_ts", "sample", "stuck", "touch_ts", "turn_pending")

    def __init__(self) -> None:
        self.touch_ts = 0  # W: when the stopper last ran (units of 2**30 ns)
        self.report_ts = 0  # W: the start of the current reporting period
        self.sample = -1  # W: the number of the last sample taken
        self.stuck = False  # W: spinning non-preemptibly since touch_ts, stopper not run
        self.turn_pending = False  # A: a callback at the loop's next turn will clear stuck


def _watchdogs(kernel: Kernel) -> list[_CpuWatchdog]:
    wds: list[_CpuWatchdog] | None = kernel._softlockup
    if wds is None:
        wds = kernel._softlockup = [_CpuWatchdog() for _ in range(kernel.nr_cpus)]
    return wds


def _sample_period_ns(kernel: Kernel) -> int:
    """``sample_period``: ``watchdog_thresh * 2 / NUM_SAMPLE_PERIODS`` seconds, in ns."""
    return kernel.watchdog_thresh * 2 * (1_000_000_000 // NUM_SAMPLE_PERIODS)


# -- argument checks ------------------------------------------------------------------------------


def _check_ulong(value: object, func: str, param: str) -> int:
    """*value* if it fits the ``unsigned long`` it is in C."""
    if type(value) is int and 0 <= value <= ULONG_MASK:
        return value
    from ._check import check_int

    return check_int(
        value, func, param, lo=0, hi=ULONG_MASK, expected=f"an unsigned long (0 to {ULONG_MASK})"
    )


# -- the delays -----------------------------------------------------------------------------------


def mdelay(ms: int) -> None:
    """
    Busy-wait *ms* milliseconds on this CPU.

    Interrupts still come (see :func:`udelay`): a tasklet scheduled from task context runs at
    the first tick's exit, inside the delay, on the busy CPU.

    Raises:
        TypeError: *ms* is not an int.
        ValueError: *ms* does not fit an ``unsigned long``.

    Context:
        Any context; never sleeps (it spins).

    .. versionadded:: 0.1
    """
    if type(ms) is not int or not 0 <= ms <= ULONG_MASK:
        _check_ulong(ms, "mdelay", "ms")
    _spin(_cur(), ms * 1_000_000)


def udelay(us: int) -> None:
    """
    Busy-wait *us* microseconds on this CPU.

    With local interrupts enabled the local tick (one interrupt per jiffy) and any interrupt
    raised for this CPU meanwhile run during the delay, each with its ``irq_exit`` softirq
    processing (unless in softirq context or with bottom halves disabled); with interrupts
    disabled nothing runs, and one held tick is taken when they are enabled again. In virtual
    time the clock advances by exactly the delay.

    Raises:
        TypeError: *us* is not an int.
        ValueError: *us* does not fit an ``unsigned long``.

    Context:
        Any context; never sleeps (it spins).

    .. versionadded:: 0.1
    """
    if type(us) is not int or not 0 <= us <= ULONG_MASK:
        _check_ulong(us, "udelay", "us")
    _spin(_cur(), us * 1_000)


def ndelay(ns: int) -> None:
    """
    Busy-wait *ns* nanoseconds on this CPU (see :func:`udelay`).

    Raises:
        TypeError: *ns* is not an int.
        ValueError: *ns* does not fit an ``unsigned long``.

    Context:
        Any context; never sleeps (it spins).

    .. versionadded:: 0.1
    """
    if type(ns) is not int or not 0 <= ns <= ULONG_MASK:
        _check_ulong(ns, "ndelay", "ns")
    _spin(_cur(), ns)


def _clock_mover(kernel: Kernel) -> Callable[[float], object] | None:
    """How to move the loop's clock forward to a loop time, on a virtual clock; ``None`` on
    a clock that moves by itself."""
    owner = getattr(kernel._clock, "__self__", None)
    if owner is None:
        return None
    if isinstance(owner, VirtualTimeEventLoop):
        return owner.clock.advance_to
    jump = getattr(owner, "jump", None)  # trio.testing.MockClock
    if jump is None:
        return None
    clock = kernel._clock

    def advance_to(when: float) -> None:
        step = when - clock()
        if step > 0:
            jump(step)

    return advance_to


def _hrtimer_next(cpu: CPU) -> int | None:
    base = cpu.hrtimer_base
    if base is None:
        return None
    from ._hrtimer import hrtimer_next_expiry

    return hrtimer_next_expiry(base)


def _spin(task: TaskStruct, ns: int) -> None:
    """Spin *ns* nanoseconds on *task*'s CPU, taking the interrupts that come meanwhile."""
    if not ns:
        return
    kernel = task.kernel
    cpu = kernel.cpus[task.cpu]
    bw = BusyWait(task, kernel._clock() + ns / 1e9, cpu.busy_wait)
    first_jiffy = kernel.get_jiffies() + 1  # the first tick the spin takes
    advance = _clock_mover(kernel)
    saved_curr = cpu.curr
    cpu.busy_wait = bw
    cpu.curr = task  # interrupts sent here nest into the spinning task
    if kernel.watchdog_thresh:
        _watchdog_enter(kernel, cpu, bw)
    try:
        if advance is None:
            _spin_real(kernel, cpu, task, bw, first_jiffy, ns / 1e9)
        else:
            _spin_virtual(kernel, cpu, task, bw, first_jiffy, advance)
    finally:
        cpu.curr = saved_curr
        cpu.busy_wait = bw.prev
        if kernel.watchdog_thresh:
            _watchdog_leave(kernel, cpu, bw)
        if bw.advanced:
            _charge_run_time(task, bw.advanced)


def _timer_interrupt(cpu: CPU, task: TaskStruct) -> None:
    """The local timer interrupt of a jiffy boundary or an hrtimer expiry during a spin."""
    if task.irqs_off or task.preempt_count & HARDIRQ_MASK:
        deliver_irq(cpu.kernel, task, LOCAL_TIMER_VECTOR, cpu.nr)  # held (once) until enabled
    else:
        local_timer_interrupt(cpu, task)


def _next_event(kernel: Kernel, cpu: CPU, next_jiffy: int, last: float) -> float:
    """The loop time of the spinning CPU's next clock event: the next jiffy's tick, or an
    hrtimer expiring before it (one that did not go away at the last event waits for the
    tick: no event is taken twice at one instant)."""
    when = kernel.jiffies_to_time(next_jiffy)
    hr = _hrtimer_next(cpu)
    if hr is not None:
        at = ktime_to_time(kernel, hr)
        if last < at < when:
            when = at
    return when


def _spin_virtual(
    kernel: Kernel,
    cpu: CPU,
    task: TaskStruct,
    bw: BusyWait,
    next_jiffy: int,
    advance: Callable[[float], object],
) -> None:
    clock = kernel._clock
    end = bw.end
    last = -math.inf
    if kernel._ts_irqs.queue:
        _threadsafe_irqs(kernel)  # raised before the spin, not delivered yet: they come first
    while True:
        when = _next_event(kernel, cpu, next_jiffy, last)
        target = end if when > end else when
        now = clock()
        if target > now:
            bw.advanced += target - now
            advance(target)
        if kernel._ts_irqs.queue:
            _threadsafe_irqs(kernel)
        if when > end:
            return
        _timer_interrupt(cpu, task)
        last = when
        next_jiffy = max(next_jiffy, kernel.get_jiffies() + 1)


def _spin_real(
    kernel: Kernel, cpu: CPU, task: TaskStruct, bw: BusyWait, next_jiffy: int, duration: float
) -> None:
    import time

    clock = kernel._clock
    ts = kernel._ts_irqs
    end = bw.end
    perf = time.perf_counter
    # the delay in wall time too: a loop clock with a coarse resolution (uvloop counts whole
    # milliseconds) may reach ``end`` early, and a delay never returns early
    wall_end = perf() + duration
    give_up = wall_end + _STUCK_CLOCK_SLACK
    last = -math.inf
    while True:
        when = _next_event(kernel, cpu, next_jiffy, last)
        target = end if when > end else when
        while True:
            now = clock()
            if now >= target:
                break
            if ts.queue:
                _threadsafe_irqs(kernel)
            elif perf() > give_up:
                return  # the loop's clock does not move by itself: stop after the wall time
        if when > end:
            while perf() < wall_end:
                if ts.queue:
                    _threadsafe_irqs(kernel)
            return
        _timer_interrupt(cpu, task)
        last = when
        next_jiffy = max(next_jiffy, kernel.get_jiffies() + 1)


def _threadsafe_irqs(kernel: Kernel) -> None:
    """Interrupts raised from other OS threads during a spin: delivered now, each to its CPU
    (the spinning one takes them nested in the spinning task)."""
    deliver_threadsafe_irqs(kernel)


def _charge_run_time(task: TaskStruct, seconds: float) -> None:
    """A spin on a virtual clock took no wall time: charge a kworker's current item with it,
    since the workqueue measures run time (CPU-hog detection) on the wall clock."""
    from ._workqueue import Worker

    if isinstance(task, Worker):
        task.t0 -= seconds


# -- soft-lockup watchdog -------------------------------------------------------------------------


def _watchdog_enter(kernel: Kernel, cpu: CPU, bw: BusyWait) -> None:
    """A spin begins: a non-preemptible one makes the CPU stuck since its last sample (the
    stopper ran then), unless it was stuck already."""
    wd = _watchdogs(kernel)[cpu.nr]
    if wd.stuck:
        return
    period = _sample_period_ns(kernel)
    sample = kernel.get_ktime() // period
    wd.sample = max(wd.sample, sample)
    if not bw.preemptible:
        wd.stuck = True
        wd.touch_ts = wd.report_ts = (sample * period) >> 30


def _watchdog_leave(kernel: Kernel, cpu: CPU, bw: BusyWait) -> None:
    """A spin ends: the stopper runs when the CPU next schedules, i.e. when the event loop
    next gets control (an ``await``); until then a further spin stays stuck."""
    wd = _watchdogs(kernel)[cpu.nr]
    if not wd.stuck or wd.turn_pending or cpu.busy_wait is not None:
        return

    def stopper() -> None:
        wd.turn_pending = False
        if cpu.busy_wait is None:
            wd.stuck = False

    try:
        _loop_waker()(stopper)
    except RuntimeError:  # pragma: no cover - the loop has ended: nothing will spin again
        return
    wd.turn_pending = True


def watchdog_sample(cpu: CPU, task: TaskStruct) -> None:
    """
    The soft-lockup watchdog's hrtimer, from a tick taken while *cpu* busy-waits: at each
    sample (every ``watchdog_thresh * 2 / 5`` seconds) a preemptible spin lets the stopper
    touch the timestamp; a stuck CPU is reported once its timestamp is more than
    ``2 * watchdog_thresh`` old, once per period.
    """
    kernel = cpu.kernel
    thresh = kernel.watchdog_thresh
    bw: BusyWait | None = cpu.busy_wait
    if not thresh or bw is None:
        return
    wd = _watchdogs(kernel)[cpu.nr]
    now_ns = kernel.get_ktime()
    sample = now_ns // _sample_period_ns(kernel)
    if sample <= wd.sample:
        return
    wd.sample = sample
    now = now_ns >> 30
    if bw.preemptible:
        wd.stuck = False
        wd.touch_ts = wd.report_ts = now  # the stopper preempted the spin and ran
        return
    if now > wd.report_ts + 2 * thresh:
        wd.report_ts = now  # start the period for the next report
        _report_soft_lockup(kernel, cpu, task, now - wd.touch_ts)


def _report_soft_lockup(kernel: Kernel, cpu: CPU, task: TaskStruct, duration: int) -> None:
    report_lines(
        task,
        [
            "watchdog: BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]"
            % (cpu.nr, duration, task.comm, task.pid),
            modules_linked_in(kernel),
        ],
        level=0,
    )
    kernel._taint.add("L")


# -- cond_resched ---------------------------------------------------------------------------------


def _others_ready() -> bool:
    """Whether another task of the running event loop is ready to run now (the model's
    ``TIF_NEED_RESCHED``)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            ready = getattr(loop, "_ready", None)
            if ready is not None and not ready:
                return False  # nothing queued to run at all (the stdlib loops)
            me = asyncio.current_task(loop)
            for t in asyncio.all_tasks(loop):
                if t is me:
                    continue
                waiter: Any = getattr(t, "_fut_waiter", None)
                if waiter is None or waiter.done():
                    return True
            return False
    import trio

    return bool(trio.lowlevel.current_statistics().tasks_runnable)


def _no_args() -> None:
    """``cond_resched()`` takes no arguments (a wrong call fails here, at the call)."""


@sleeping_checked(_no_args)
async def cond_resched() -> int:
    """
    Let another task run if one is waiting: a voluntary scheduling point for long loops in
    task context.

    ``__might_resched()`` runs first, at the call: in atomic context (a spinlock held, bottom
    halves or preemption disabled, IRQs off) it is the ``BUG: sleeping function called from
    invalid context`` report, and nothing is scheduled. Otherwise a reschedule is due when
    another task of the event loop is ready to run (see the module notes): it runs now.

    Returns:
        1 if it let another task run, 0 if none was ready (or in atomic context).

    Raises:
        TypeError: called with arguments.
        KernelBug: in atomic context, after the report, unless the kernel was booted with
            ``sleep_in_atomic="report"``.

    Context:
        Task context. Async; always a checkpoint (in atomic context, a cancellation check
        only).

    .. versionadded:: 0.2
    """
    task = _cur()
    if task.preempt_count or task.irqs_off:
        await anyio.lowlevel.checkpoint_if_cancelled()
        return 0
    if not _others_ready():
        await anyio.lowlevel.checkpoint()
        return 0
    # two yields: trio runs a batch of ready tasks in random order, so those ready now have
    # all run once this task has been scheduled twice (asyncio's FIFO needs only one)
    await anyio.lowlevel.checkpoint()
    await anyio.lowlevel.checkpoint()
    return 1
