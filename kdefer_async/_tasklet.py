"""Tasklets: per-CPU lists run from the TASKLET and HI softirqs.

Kernel invariants modelled (include/linux/interrupt.h, kernel/softirq.c):

* ``TASKLET_STATE_SCHED`` is set by a successful schedule and cleared just before the callback
  starts; scheduling a tasklet that is already scheduled does nothing, so schedules coalesce.
* ``TASKLET_STATE_RUN`` is held while the callback runs: a tasklet never runs concurrently with
  itself. A tasklet found running elsewhere, or disabled (``count != 0``), goes back on the list
  and its softirq is marked pending again (the kernel's busy re-poll).
* The list is chosen by the CPU that calls ``tasklet_schedule()``; each CPU runs its list in
  FIFO order. HI tasklets run from vector 0, before timers and normal tasklets.
* ``tasklet_init()`` makes an **enabled** tasklet (count 0), in every kernel version. (Some
  tutorials say otherwise; the kernel is what we follow.)

Tasklets are the legacy path: since 6.9 the kernel points new code at BH workqueues
(``WQ_BH``), which run from the same softirqs, before the tasklets.

Guarantees:
    * test_schedule_while_pending_runs_once: schedules before the run coalesce into one run.
    * test_reschedule_from_callback_runs_again: a schedule from inside the callback runs it
      exactly once more, after the current run.
    * test_serialized_wrt_itself: a tasklet never runs while it is already running.
    * test_fifo_per_cpu: one CPU runs its tasklets in scheduling order.
    * test_disabled_tasklet_does_not_run: a scheduled, disabled tasklet stays scheduled and runs
      once after it is enabled.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from ._consts import (
    HI_SOFTIRQ,
    IRQ_MASK,
    TASKLET_SOFTIRQ,
)
from ._context import TaskStruct, _cur, _current
from ._printk import log_text, symbol_name, warn_once
from ._sleeping import _SleepingFunction, sleeping
from ._softirq import check_atomic_callable, panic_in_interrupt, run_atomic_result, wakeup_softirqd
from ._wait import wait_var_event, wake_up_var

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = [
    "DECLARE_TASKLET",
    "DECLARE_TASKLET_DISABLED",
    "DECLARE_TASKLET_OLD",
    "Tasklet",
    "tasklet_action",
    "tasklet_disable",
    "tasklet_disable_in_atomic",
    "tasklet_disable_nosync",
    "tasklet_enable",
    "tasklet_hi_action",
    "tasklet_hi_schedule",
    "tasklet_init",
    "tasklet_kill",
    "tasklet_schedule",
    "tasklet_setup",
    "tasklet_unlock_spin_wait",
    "tasklet_unlock_wait",
]

_SCHED = 1  # 1 << TASKLET_STATE_SCHED
_RUN = 2  # 1 << TASKLET_STATE_RUN
_NO_DATA: Any = object()


class Tasklet:
    """
    ``struct tasklet_struct``.

    ``Tasklet()`` is an uninitialised tasklet for :func:`tasklet_setup` / :func:`tasklet_init`;
    ``Tasklet(callback)`` is ``tasklet_setup`` (``callback(t)``), ``Tasklet(func, data)`` is
    ``tasklet_init`` (``func(data)``). Both start enabled; pass ``disabled=True`` for a count of 1.

    Attributes:
        state: ``TASKLET_STATE_SCHED`` and ``TASKLET_STATE_RUN`` bits (``t.state >> n & 1``).
        count: The disable count; the tasklet runs only when it is 0.
        func: The function (either form); ``callback`` is set for the modern form.
        data: The argument of the legacy form.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "count", "data", "func", "state", "use_callback")

    def __init__(
        self,
        func: Callable[[Any], object] | None = None,
        data: Any = _NO_DATA,
        *,
        disabled: bool = False,
    ) -> None:
        self.state = 0  # A: SCHED and RUN bits
        self.count = 0  # A: disable depth
        self.func: Callable[[Any], object] | None = None  # A
        self.data: Any = None  # A
        self.use_callback = False  # A
        if func is not None:
            if data is _NO_DATA:
                tasklet_setup(self, func)
            else:
                tasklet_init(self, func, data)
        if disabled:
            # after the init functions, which (as in the kernel) set the count to 0
            self.count = 1

    @property
    def callback(self) -> Callable[[Any], object] | None:
        """The modern-form callback, or ``None`` for a legacy ``func(data)`` tasklet."""
        return self.func if self.use_callback else None

    def __repr__(self) -> str:
        bits = [n for n, b in (("SCHED", _SCHED), ("RUN", _RUN)) if self.state & b]
        return (
            f"<Tasklet {symbol_name(self.func) if self.func else None} "
            f"state={'|'.join(bits) or '0'} count={self.count}>"
        )


def tasklet_setup(t: Tasklet, callback: Callable[[Tasklet], object]) -> None:
    """
    Initialise *t* in the modern form: ``callback(t)`` runs in softirq context. Enabled.

    Raises:
        TypeError: *callback* is not callable or is ``async def``.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    check_atomic_callable(callback, "a tasklet callback")
    t.state = 0
    t.count = 0
    t.func = callback
    t.data = None
    t.use_callback = True


def tasklet_init(t: Tasklet, func: Callable[[Any], object], data: Any) -> None:
    """
    Initialise *t* in the legacy form: ``func(data)`` runs in softirq context.

    The tasklet starts **enabled** (count 0), as in every kernel.

    Raises:
        TypeError: *func* is not callable or is ``async def``.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    check_atomic_callable(func, "a tasklet function")
    t.state = 0
    t.count = 0
    t.func = func
    t.data = data
    t.use_callback = False


def DECLARE_TASKLET(func: Callable[[Any], object], data: Any = _NO_DATA) -> Tasklet:
    """
    Return an enabled tasklet: ``func(t)`` (5.9+ form), or ``func(data)`` if *data* is given.

    .. versionadded:: 0.1
    """
    return Tasklet(func, data)


def DECLARE_TASKLET_DISABLED(func: Callable[[Any], object], data: Any = _NO_DATA) -> Tasklet:
    """
    Return a disabled tasklet (count 1): it runs only after one :func:`tasklet_enable`.

    .. versionadded:: 0.1
    """
    return Tasklet(func, data, disabled=True)


def DECLARE_TASKLET_OLD(func: Callable[[Any], object]) -> Tasklet:
    """
    Return an enabled legacy tasklet whose function gets ``data = 0`` (the 5.9 ``_OLD`` macro).

    .. versionadded:: 0.1
    """
    return Tasklet(func, 0)


def _schedule(t: Tasklet, hi: bool) -> None:
    task = _cur()
    if t.state & _SCHED:
        return
    if t.func is None:
        raise ValueError(f"{t!r} was never initialised (tasklet_setup/tasklet_init)")
    t.state |= _SCHED
    cpu = task.kernel.cpus[task.cpu]
    if hi:
        cpu.tasklet_hi_vec.append(t)
        cpu.pending |= 1 << HI_SOFTIRQ
    else:
        cpu.tasklet_vec.append(t)
        cpu.pending |= 1 << TASKLET_SOFTIRQ
    if not task.preempt_count & IRQ_MASK:
        wakeup_softirqd(cpu)


def tasklet_schedule(t: Tasklet) -> None:
    """
    Schedule *t* on this CPU's tasklet list and raise ``TASKLET_SOFTIRQ``.

    Does nothing if *t* is already scheduled and has not started: it still runs once. A
    schedule while it runs (including from its own callback) runs it once more afterwards.

    Raises:
        ValueError: *t* was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    task = _cur()
    if t.state & _SCHED:
        return
    if t.func is None:
        raise ValueError(f"{t!r} was never initialised (tasklet_setup/tasklet_init)")
    t.state |= _SCHED
    cpu = task.kernel.cpus[task.cpu]
    cpu.tasklet_vec.append(t)
    cpu.pending |= 1 << TASKLET_SOFTIRQ
    if not task.preempt_count & IRQ_MASK:
        ev = cpu._ksoftirqd_event
        if ev is not None:
            wakeup_softirqd(cpu)


def tasklet_hi_schedule(t: Tasklet) -> None:
    """
    Schedule *t* on this CPU's high-priority list and raise ``HI_SOFTIRQ`` (vector 0).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _schedule(t, True)


def _action(cpu: CPU, task: TaskStruct, lst: Any, nr: int) -> None:
    """``tasklet_action_common``: run the tasklets on the list when the pass started."""
    bh = cpu.kernel.bh_pools
    if bh is not None:
        bh(cpu, nr == HI_SOFTIRQ)
    n = len(lst)
    popleft = lst.popleft
    append = lst.append
    ran = 0
    try:
        while n:
            n -= 1
            t = popleft()
            state = t.state
            if state & _RUN or t.count:
                append(t)
                cpu.pending |= 1 << nr
                continue
            if not state & _SCHED:
                warn_once(
                    ("tasklet SCHED", id(t)),
                    "tasklet SCHED state not set: %s %ps\n",
                    "callback" if t.use_callback else "func",
                    t.func,
                )
            t.state = (state | _RUN) & ~_SCHED
            func = t.func
            try:
                result = func(t if t.use_callback else t.data)
            except Exception as exc:
                t.state &= ~_RUN
                panic_in_interrupt(task, exc, f"tasklet {symbol_name(func)}")
                raise
            t.state &= ~_RUN
            ran += 1
            if result is not None:
                run_atomic_result(task, result, func)
            if cpu.kernel._var_waiters:
                wake_up_var(cpu.kernel, t)
    finally:
        cpu.progress += ran


def tasklet_action() -> None:
    """The ``TASKLET_SOFTIRQ`` handler (registered by the kernel at boot)."""
    task = _cur()
    cpu = task.kernel.cpus[task.cpu]
    _action(cpu, task, cpu.tasklet_vec, TASKLET_SOFTIRQ)


def tasklet_hi_action() -> None:
    """The ``HI_SOFTIRQ`` handler (registered by the kernel at boot)."""
    task = _cur()
    cpu = task.kernel.cpus[task.cpu]
    _action(cpu, task, cpu.tasklet_hi_vec, HI_SOFTIRQ)


def tasklet_disable_nosync(t: Tasklet) -> None:
    """
    Increment *t*'s disable count and return at once (a running callback keeps running).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    t.count += 1


def tasklet_enable(t: Tasklet) -> None:
    """
    Decrement *t*'s disable count. Does not schedule it; if it was scheduled while disabled it
    runs at the next pass. No underflow check, as in the kernel: an unmatched enable makes the
    count negative and the tasklet never runs again.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    t.count -= 1


def _self_deadlock_check(t: Tasklet, what: str) -> None:
    if t.state & _RUN:
        from ._locking import report_recursive_locking

        report_recursive_locking(f"tasklet {symbol_name(t.func)}", what)


@sleeping
async def tasklet_unlock_wait(t: Tasklet) -> None:
    """
    Wait (sleeping) until *t*'s callback is not running.

    Context:
        Process context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    await wait_var_event(t, lambda: not t.state & _RUN)


def tasklet_unlock_spin_wait(t: Tasklet) -> None:
    """
    Busy-wait until *t*'s callback is not running (for atomic callers).

    A call from *t*'s own callback would spin forever in the kernel: here it reports
    ``possible recursive locking detected`` and raises :class:`KernelBug`.

    .. versionadded:: 0.1
    """
    _self_deadlock_check(t, "tasklet_unlock_spin_wait")


@sleeping
async def tasklet_disable(t: Tasklet) -> None:
    """
    Disable *t* and wait until its callback is not running.

    Context:
        Process context; may sleep (since the RT rework). Always a checkpoint.

    .. versionadded:: 0.1
    """
    t.count += 1
    await wait_var_event(t, lambda: not t.state & _RUN)


def tasklet_disable_in_atomic(t: Tasklet) -> None:
    """
    Disable *t* and spin until its callback is not running; "do not use in new code".

    From *t*'s own callback this would spin forever: it reports ``possible recursive locking
    detected`` and raises :class:`KernelBug` instead.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    t.count += 1
    try:
        _self_deadlock_check(t, "tasklet_disable_in_atomic")
    except BaseException:
        t.count -= 1
        raise


class _KillFunction(_SleepingFunction):
    # tasklet_kill() prints its notice before it can sleep, so it comes at call time, before
    # the might_sleep() report: from a handler, the coroutine is never awaited.

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        task = _current.get()
        if task is not None and task.preempt_count & IRQ_MASK:
            log_text(task.kernel, 5, "Attempt to kill tasklet from interrupt")
        return super().__call__(*args, **kwargs)


def _kill_notice(
    fn: Callable[[Tasklet], Coroutine[Any, Any, None]],
) -> Callable[[Tasklet], Coroutine[Any, Any, None]]:
    return cast("Callable[[Tasklet], Coroutine[Any, Any, None]]", _KillFunction(fn))


@_kill_notice
async def tasklet_kill(t: Tasklet) -> None:
    """
    Wait until *t* is neither scheduled nor running, absorbing schedules meanwhile.

    If *t* is scheduled it is run once first. Killing a tasklet that is scheduled *and disabled*
    never returns (it can never run), as in the kernel. The tasklet is not dead afterwards: a
    later :func:`tasklet_schedule` works normally.

    Context:
        Process context; may sleep. From interrupt context (including a BH-disabled section)
        the kernel logs ``Attempt to kill tasklet from interrupt`` and goes on: here the notice
        is logged when it is called, followed by the ``might_sleep()`` report. Always a
        checkpoint.

    .. versionadded:: 0.1
    """
    task = _cur()
    # take the SCHED bit: wait for a scheduled run to happen, then hold it
    while t.state & _SCHED:
        await wait_var_event(t, lambda: not t.state & _SCHED)
    t.state |= _SCHED
    try:
        await wait_var_event(t, lambda: not t.state & _RUN)
    finally:
        t.state &= ~_SCHED
        wake_up_var(task.kernel, t)
