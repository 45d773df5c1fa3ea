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

from ._check import bad_value, check_bool, check_callback, check_instance
from ._consts import (
    HI_SOFTIRQ,
    IRQ_MASK,
    TASKLET_SOFTIRQ,
)
from ._context import TaskStruct, _cur, _current
from ._printk import log_text, symbol_name, warn_once
from ._sleeping import _named, _SleepingFunction, sleeping_checked
from ._softirq import panic_in_interrupt, run_atomic_result, wakeup_softirqd
from ._trace import SOFTIRQ_RAISE, TASKLET_ENTRY, TASKLET_EXIT, emit
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
        if func is not None or data is not _NO_DATA:
            _check_func(func, "Tasklet", "func", data is _NO_DATA)
        check_bool(disabled, "Tasklet", "disabled")
        self.state = 0  # A: SCHED and RUN bits
        self.count = 1 if disabled else 0  # A: disable depth
        self.func: Callable[[Any], object] | None = func  # A
        self.data: Any = None if data is _NO_DATA else data  # A
        self.use_callback = data is _NO_DATA and func is not None  # A

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


def _tasklet(t: object, func: str) -> Tasklet:
    """*t* if it is a :class:`Tasklet` (the cheap exact-type test first)."""
    if type(t) is Tasklet:
        return t
    return check_instance(t, Tasklet, func, "t")


def _check_func(fn: object, func: str, param: str, modern: bool) -> None:
    """Check a tasklet function as ``tasklet_setup()`` (``callback(t)``) or ``tasklet_init()``
    (``func(data)``) declares it: called with one argument, in softirq context."""
    check_callback(
        fn,
        func,
        param,
        shape=f"{param}(t)" if modern else f"{param}(data)",
        nargs=1,
        kind="atomic",
        what="a tasklet callback" if modern else "a tasklet function",
    )


def tasklet_setup(t: Tasklet, callback: Callable[[Tasklet], object]) -> None:
    """
    Initialise *t* in the modern form: ``callback(t)`` runs in softirq context. Enabled.

    Raises:
        TypeError: *t* is not a :class:`Tasklet`; *callback* is not callable, is ``async def``,
            or cannot be called as ``callback(t)``.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    _tasklet(t, "tasklet_setup")
    _check_func(callback, "tasklet_setup", "callback", True)
    t.state = 0
    t.count = 0
    t.func = callback
    t.data = None
    t.use_callback = True


def tasklet_init(t: Tasklet, func: Callable[[Any], object], data: Any) -> None:
    """
    Initialise *t* in the legacy form: ``func(data)`` runs in softirq context.

    The tasklet starts **enabled** (count 0), as in every kernel. *data* is the opaque
    ``unsigned long`` cookie handed to *func*: any object.

    Raises:
        TypeError: *t* is not a :class:`Tasklet`; *func* is not callable, is ``async def``, or
            cannot be called as ``func(data)``.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    _tasklet(t, "tasklet_init")
    _check_func(func, "tasklet_init", "func", False)
    t.state = 0
    t.count = 0
    t.func = func
    t.data = data
    t.use_callback = False


def _declare(func: Callable[[Any], object], data: Any, name: str, disabled: bool) -> Tasklet:
    # the macros declare a tasklet to run: without a function it would oops when it runs
    modern = data is _NO_DATA
    _check_func(func, name, "func", modern)
    t = Tasklet()
    t.func = func
    t.data = None if modern else data
    t.use_callback = modern
    t.count = 1 if disabled else 0
    return t


def DECLARE_TASKLET(func: Callable[[Any], object], data: Any = _NO_DATA) -> Tasklet:
    """
    Return an enabled tasklet: ``func(t)`` (5.9+ form), or ``func(data)`` if *data* is given.

    Raises:
        TypeError: *func* is not a function callable with one argument in softirq context
            (``None`` included: the macro makes a tasklet to run, so it needs a function).

    .. versionadded:: 0.1
    """
    return _declare(func, data, "DECLARE_TASKLET", False)


def DECLARE_TASKLET_DISABLED(func: Callable[[Any], object], data: Any = _NO_DATA) -> Tasklet:
    """
    Return a disabled tasklet (count 1): it runs only after one :func:`tasklet_enable`.

    Raises:
        TypeError: as :func:`DECLARE_TASKLET`.

    .. versionadded:: 0.1
    """
    return _declare(func, data, "DECLARE_TASKLET_DISABLED", True)


def DECLARE_TASKLET_OLD(func: Callable[[Any], object]) -> Tasklet:
    """
    Return an enabled legacy tasklet whose function gets ``data = 0`` (the 5.9 ``_OLD`` macro).

    Raises:
        TypeError: *func* is not a function callable as ``func(data)`` in softirq context.

    .. versionadded:: 0.1
    """
    return _declare(func, 0, "DECLARE_TASKLET_OLD", False)


def _uninitialised(t: Tasklet, func: str) -> ValueError:
    return bad_value(func, "t", "a Tasklet set up by tasklet_setup() or tasklet_init()", t)


def tasklet_schedule(t: Tasklet) -> None:
    """
    Schedule *t* on this CPU's tasklet list and raise ``TASKLET_SOFTIRQ``.

    Does nothing if *t* is already scheduled and has not started: it still runs once. A
    schedule while it runs (including from its own callback) runs it once more afterwards.

    Raises:
        TypeError: *t* is not a :class:`Tasklet`.
        ValueError: *t* was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if type(t) is not Tasklet:
        # before anything is read: any object with a ``state`` must not coalesce silently
        _tasklet(t, "tasklet_schedule")
    task = _cur()
    state = t.state
    if state & _SCHED:
        return
    if t.func is None:
        raise _uninitialised(t, "tasklet_schedule")
    t.state = state | _SCHED
    kernel = task.kernel
    cpu = kernel.cpus[task.cpu]
    cpu.tasklet_vec.append(t)
    if kernel._trace_on:
        emit(kernel, task, SOFTIRQ_RAISE, TASKLET_SOFTIRQ)
    cpu.pending |= 1 << TASKLET_SOFTIRQ
    if not task.preempt_count & IRQ_MASK:
        ev = cpu._ksoftirqd_event
        if ev is not None:
            wakeup_softirqd(cpu)


def tasklet_hi_schedule(t: Tasklet) -> None:
    """
    Schedule *t* on this CPU's high-priority list and raise ``HI_SOFTIRQ`` (vector 0).

    Raises:
        TypeError: *t* is not a :class:`Tasklet`.
        ValueError: *t* was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if type(t) is not Tasklet:
        # before anything is read: any object with a ``state`` must not coalesce silently
        _tasklet(t, "tasklet_hi_schedule")
    task = _cur()
    state = t.state
    if state & _SCHED:
        return
    if t.func is None:
        raise _uninitialised(t, "tasklet_hi_schedule")
    t.state = state | _SCHED
    kernel = task.kernel
    cpu = kernel.cpus[task.cpu]
    cpu.tasklet_hi_vec.append(t)
    if kernel._trace_on:
        emit(kernel, task, SOFTIRQ_RAISE, HI_SOFTIRQ)
    cpu.pending |= 1 << HI_SOFTIRQ
    if not task.preempt_count & IRQ_MASK:
        wakeup_softirqd(cpu)


def _action(cpu: CPU, task: TaskStruct, lst: Any, nr: int) -> None:
    """``tasklet_action_common``: run the tasklets on the list when the pass started.

    Whether tracing is on is read once per pass, as a static key the pass was entered with:
    with it off the loop has no tracepoint at all (a tasklet that switches tracing on is
    traced from the next pass).
    """
    bh = cpu.kernel.bh_pools
    if bh is not None:
        bh(cpu, nr == HI_SOFTIRQ)
    kernel = cpu.kernel
    if kernel._trace_on:
        _action_traced(cpu, task, lst, nr)
        return
    popleft = lst.popleft
    append = lst.append
    var_waiters = kernel._var_waiters  # made once, at boot
    ran = 0
    try:
        for _ in range(len(lst)):
            t = popleft()
            state = t.state
            if state & _RUN or t.count:
                append(t)  # busy on another CPU, or disabled: back at the tail, raised again
                cpu.pending |= 1 << nr
                continue
            if not state & _SCHED:
                _sched_not_set(t)
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
            if var_waiters:
                wake_up_var(kernel, t)
    finally:
        cpu.progress += ran


def _action_traced(cpu: CPU, task: TaskStruct, lst: Any, nr: int) -> None:
    """:func:`_action`'s loop with its tracepoints: the requeue's ``softirq_raise``, and
    ``tasklet_entry``/``tasklet_exit`` around each callback (the exit only if the entry was,
    and tracing is still on)."""
    popleft = lst.popleft
    append = lst.append
    kernel = cpu.kernel
    var_waiters = kernel._var_waiters
    ran = 0
    try:
        for _ in range(len(lst)):
            t = popleft()
            state = t.state
            if state & _RUN or t.count:
                append(t)
                if kernel._trace_on:
                    emit(kernel, task, SOFTIRQ_RAISE, nr)
                cpu.pending |= 1 << nr
                continue
            if not state & _SCHED:
                _sched_not_set(t)
            t.state = (state | _RUN) & ~_SCHED
            func = t.func
            traced = kernel._trace_on
            if traced:
                emit(kernel, task, TASKLET_ENTRY, t, func)
            try:
                result = func(t if t.use_callback else t.data)
            except Exception as exc:
                t.state &= ~_RUN
                panic_in_interrupt(task, exc, f"tasklet {symbol_name(func)}")
                raise
            if traced and kernel._trace_on:
                emit(kernel, task, TASKLET_EXIT, t, func)
            t.state &= ~_RUN
            ran += 1
            if result is not None:
                run_atomic_result(task, result, func)
            if var_waiters:
                wake_up_var(kernel, t)
    finally:
        cpu.progress += ran


def _sched_not_set(t: Tasklet) -> None:
    warn_once(
        ("tasklet SCHED", id(t)),
        "tasklet SCHED state not set: %s %ps\n",
        "callback" if t.use_callback else "func",
        t.func,
    )


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

    Raises:
        TypeError: *t* is not a :class:`Tasklet`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _tasklet(t, "tasklet_disable_nosync").count += 1


def tasklet_enable(t: Tasklet) -> None:
    """
    Decrement *t*'s disable count. Does not schedule it; if it was scheduled while disabled it
    runs at the next pass. No underflow check, as in the kernel: an unmatched enable makes the
    count negative and the tasklet never runs again.

    Raises:
        TypeError: *t* is not a :class:`Tasklet`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _tasklet(t, "tasklet_enable").count -= 1


def _self_deadlock_check(t: Tasklet, what: str) -> None:
    if t.state & _RUN:
        from ._locking import report_recursive_locking

        report_recursive_locking(f"tasklet {symbol_name(t.func)}", what)


@sleeping_checked(lambda t: _tasklet(t, "tasklet_unlock_wait"))
async def tasklet_unlock_wait(t: Tasklet) -> None:
    """
    Wait (sleeping) until *t*'s callback is not running.

    Raises:
        TypeError: *t* is not a :class:`Tasklet` (at the call, before any coroutine exists).

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

    Raises:
        TypeError: *t* is not a :class:`Tasklet`.

    .. versionadded:: 0.1
    """
    _self_deadlock_check(_tasklet(t, "tasklet_unlock_spin_wait"), "tasklet_unlock_spin_wait")


@sleeping_checked(lambda t: _tasklet(t, "tasklet_disable"))
async def tasklet_disable(t: Tasklet) -> None:
    """
    Disable *t* and wait until its callback is not running.

    Raises:
        TypeError: *t* is not a :class:`Tasklet` (at the call, before the count changes).

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

    Raises:
        TypeError: *t* is not a :class:`Tasklet`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _tasklet(t, "tasklet_disable_in_atomic")
    t.count += 1
    try:
        _self_deadlock_check(t, "tasklet_disable_in_atomic")
    except BaseException:
        t.count -= 1
        raise


class _KillFunction(_SleepingFunction):
    # tasklet_kill() prints its notice before it can sleep, so it comes at call time, before
    # the might_sleep() report: from a handler, the coroutine is never awaited. The argument
    # check comes first of all: a rejected call prints nothing.

    def __init__(self, fn: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        super().__init__(fn)
        self._check_args = _named(_check_kill, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        self._check_args(*args, **kwargs)
        task = _current.get()
        if task is not None and task.preempt_count & IRQ_MASK:
            log_text(task.kernel, 5, "Attempt to kill tasklet from interrupt")
        return super().__call__(*args, **kwargs)


def _check_kill(t: object) -> None:
    _tasklet(t, "tasklet_kill")


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

    Raises:
        TypeError: *t* is not a :class:`Tasklet` (at the call, before the notice below).

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
