"""Threaded interrupts: the irq threads, their wake-ups, ``synchronize_irq``, ``disable_irq`` /
``enable_irq``, and forced interrupt threading (``Kernel(threadirqs=True)``).

Field rules: as in ``_hardirq.py`` (``I``: set at creation, read-only after; ``A``: changed
only on the loop's thread, in synchronous code).

Kernel invariants modelled (kernel/irq/manage.c ``irq_thread``, ``irq_wait_for_interrupt``,
``irq_thread_fn``, ``irq_forced_thread_fn``, ``irq_finalize_oneshot``, ``irq_thread_dtor``,
``__disable_irq``/``__enable_irq``, ``synchronize_irq``; kernel/irq/handle.c
``__irq_wake_thread``, which lives beside the flow handler in ``_hardirq.py``):

* Every action with a thread function has one kernel thread, ``irq/<irq>-<name>`` (its comm
  cut to 15 characters), ``SCHED_FIFO`` priority 50, made when the handler is requested; the
  forced-threading secondary is ``irq/<irq>-s-<name>``, priority 49. It is listed with the
  kernel's other kthreads.
* The thread sleeps (``TASK_INTERRUPTIBLE``) until it test-and-clears ``IRQTF_RUNTHREAD``, then
  calls ``thread_fn(irq, dev)`` in process context (preemptible, may sleep), on the CPU that
  took the interrupt. Because the bit is cleared before ``thread_fn`` starts, N wakes before
  it runs make one run, and a wake while it runs makes exactly one more run afterwards.
* After each run: ``IRQ_HANDLED`` counts in ``threads_handled`` (the spurious-interrupt check
  reads it); the action's ONESHOT bit is cleared and, with no other ONESHOT thread pending,
  the line is unmasked unless it was disabled meanwhile (then ``enable_irq`` unmasks it);
  ``threads_active`` goes down, and ``synchronize_irq`` waiters are woken at 0.
* A stopped thread (``free_irq``) still gives a pending wake its run, then exits. A thread
  whose ``thread_fn`` raises is an oops; the thread dies with ``genirq: exiting task "<comm>"
  (<pid>) is an active IRQ thread (irq <irq>)``, later wakes are ignored, and the run it died
  in is never finished: ``synchronize_irq`` and ``disable_irq`` on the line wait forever, as
  they do in the kernel.
* ``disable_irq_nosync`` adds one to the line's depth (any context); ``disable_irq`` does
  that, then waits as ``synchronize_irq`` does (from the line's own ``thread_fn`` it waits for
  itself, forever). ``enable_irq`` at depth 0 is a WARN; at 1 it enables and unmasks the line
  and resends an interrupt held meanwhile, once.
* Forced threading: the original primary runs in its thread between ``local_bh_disable()`` +
  ``local_irq_disable()`` and ``local_irq_enable()`` + ``local_bh_enable()`` (preempt_count
  0x200), so softirqs it raises run at that ``local_bh_enable()``, in the thread.

The thread parks on the kernel's low-level parker (``_park.py``), as kworkers do: a wake is a
flag and, if it sleeps, one unpark; no event or task is made per interrupt. A woken thread runs
at its CPU's next scheduling point, i.e. when the running task next awaits (a ``PREEMPT_NONE``
kernel's behaviour): code must not depend on whether that is before or after the raising
task's next ``await``.
"""

from __future__ import annotations

import inspect
import math
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._consts import (
    IRQ_HANDLED,
    IRQ_WAKE_THREAD,
    SCHED_FIFO,
    SOFTIRQ_DISABLE_OFFSET,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
)
from ._context import TaskStruct, _cur, _current, check_loop_thread, claim
from ._exceptions import KernelPanic
from ._hardirq import (
    IRQ_NOTCONNECTED,
    IrqAction,
    IrqDesc,
    check_irq,
    effective_cpu,
    enable_line,
    irq_forced_secondary_handler,
    irq_to_desc,
    irq_wake,
    request_threaded_irq,
    unmask_line,
)
from ._kthread import kthread_comm
from ._printk import log_text, record_oops, symbol_name, warn, warn_once
from ._sched import sched_exit, sched_in, sched_out, sched_resume, sched_wakeup
from ._sleeping import sleeping_checked
from ._softirq import local_bh_enable, panic_in_interrupt, run_atomic_result
from ._trace import SWITCH_STATE_S
from ._wait import wait_var_event, wake_up_var

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "IRQ_NOTCONNECTED",
    "create_irq_thread",
    "disable_irq",
    "disable_irq_nosync",
    "enable_irq",
    "irq_threads_quiesce",
    "irq_wake_thread",
    "request_threaded_irq",
    "stop_irq_thread",
    "stop_irq_threads",
    "synchronize_irq",
]

#: ``MAX_RT_PRIO / 2``: the priority ``sched_set_fifo()`` gives an irq thread.
IRQ_THREAD_PRIO = 50


# -- the thread ---------------------------------------------------------------------------------


def create_irq_thread(kernel: Kernel, action: IrqAction, *, secondary: bool) -> TaskStruct:
    """``setup_irq_thread()``: make *action*'s thread and start it (it waits for a wake)."""
    desc = action.desc
    assert desc is not None
    comm = kthread_comm("irq/%d-s-%s" if secondary else "irq/%d-%s", action.irq, action.name)
    task = TaskStruct(
        kernel, comm, kernel._alloc_pid(), effective_cpu(kernel, action.irq), kthread=True
    )
    task.policy = SCHED_FIFO
    task.rt_priority = IRQ_THREAD_PRIO - 1 if secondary else IRQ_THREAD_PRIO
    task.data = action  # kthread_data()
    action.thread = task
    action.wake_cpu = task.cpu
    desc.threads.append(action)
    kernel._tasks[task.pid] = task
    kernel._kthread_not_run.add(task)
    kernel._spawn(_irq_thread, action, name=comm)
    if kernel._trace_on:
        sched_wakeup(task, new=True)
    return task


async def _irq_thread(action: IrqAction) -> None:
    """``irq_thread()``: wait for ``IRQTF_RUNTHREAD``, run the thread function, account; until
    stopped with no run pending, or killed by an oops in the thread function."""
    task = action.thread
    desc = action.desc
    assert task is not None
    assert desc is not None
    kernel = task.kernel
    _current.set(task)
    claim(task)
    kernel._kthread_not_run.discard(task)
    if kernel._trace_on:
        sched_in(task)
    parker = kernel._parker
    irq = action.irq
    dev = action.dev
    fn = action.thread_fn
    assert fn is not None
    forced = action.forced
    coro_type = CoroutineType
    waiters = kernel._var_waiters  # wait_var_event() sleepers, by id of what they wait on
    try:
        while True:
            # irq_wait_for_interrupt(): a stopped thread still takes a pending run
            while not action.runthread:
                if task.should_stop:
                    return
                task.state = TASK_INTERRUPTIBLE
                action.parked = True
                waiter = parker.wait(task)
                if kernel._trace_on:
                    sched_out(task, SWITCH_STATE_S)
                try:
                    await waiter
                finally:
                    action.parked = False
                    task._wake_event = None
                    task.state = TASK_RUNNING
                    if kernel._trace_on:
                        sched_resume(task)
            action.runthread = False
            task.cpu = action.wake_cpu
            action.running = True
            if forced:
                ret = _forced_thread_fn(kernel, task, action, desc, fn)
            else:
                ret = fn(irq, dev)
                if type(ret) is coro_type or (ret is not None and inspect.isawaitable(ret)):
                    ret = await ret
                if ret == IRQ_HANDLED:
                    desc.threads_handled += 1
                finalize_oneshot(kernel, desc, action)
            action.running = False
            if ret == IRQ_WAKE_THREAD:
                _wake_secondary(task, desc, action)
            # wake_threads_waitq(): the run is over
            desc.threads_active -= 1
            if waiters:  # (someone sleeps in synchronize_irq() or the shutdown)
                if not desc.threads_active:
                    wake_up_var(kernel, desc)
                if not action.runthread:
                    wake_up_var(kernel, kernel.irq_descs)  # the shutdown waits for idle threads
    except KernelPanic:
        raise
    except Exception as exc:
        action.running = False
        action.exiting = True
        record_oops(task, exc, f"irq thread function {symbol_name(fn)} (irq {irq})")
        kernel._after_oops(exc)  # (panics with panic_on_oops: the thread never exits then)
        _irq_thread_dtor(kernel, task, desc, action)
    finally:
        action.exiting = True
        action.parked = False
        if action in desc.threads:
            desc.threads.remove(action)
        task._exited = True
        task.state = TASK_RUNNING
        kernel._tasks.pop(task.pid, None)
        kernel._kthread_not_run.discard(task)
        wake_up_var(kernel, task)
        wake_up_var(kernel, kernel.irq_descs)
        if kernel._trace_on:
            sched_exit(task)


def _forced_thread_fn(
    kernel: Kernel, task: TaskStruct, action: IrqAction, desc: IrqDesc, fn: Any
) -> Any:
    """``irq_forced_thread_fn()``: a force-threaded primary handler, run in its thread with
    bottom halves and local interrupts disabled; softirqs it raised run as BHs are enabled."""
    cpu = kernel.cpus[task.cpu]
    task.preempt_count += SOFTIRQ_DISABLE_OFFSET  # local_bh_disable()
    task.irqs_off = 1  # local_irq_disable()
    saved_curr = cpu.curr
    cpu.curr = task  # interrupts sent to this CPU now wait for local_irq_enable()
    try:
        try:
            ret: Any = fn(action.irq, action.dev)
        except KernelPanic:
            raise
        except Exception as exc:
            # in_interrupt() is true here (BHs are off): an oops here is fatal
            panic_in_interrupt(task, exc, f"irq {action.irq} handler {action.name}")
            raise
        if type(ret) is not int and ret is not None and not isinstance(ret, int):
            run_atomic_result(task, ret, fn)
            ret = None
        if ret == IRQ_HANDLED:
            desc.threads_handled += 1
        finalize_oneshot(kernel, desc, action)
    finally:
        cpu.curr = saved_curr
    task.irqs_off = 0  # local_irq_enable(): what arrived meanwhile is taken now
    if cpu.pending_irqs:
        kernel._deliver_pending_irqs(task)
    local_bh_enable()  # the softirqs the handler raised run here, in this thread
    return ret


def finalize_oneshot(kernel: Kernel, desc: IrqDesc, action: IrqAction) -> None:
    """``irq_finalize_oneshot()``: clear the action's ONESHOT bit (unless a new run is pending)
    and unmask the line once no ONESHOT thread is pending, unless it is disabled."""
    if not desc.oneshot or action.handler is irq_forced_secondary_handler:
        return
    if action.runthread:
        return  # woken again: the bit stays until that run
    desc.threads_oneshot &= ~action.thread_mask
    if not desc.threads_oneshot and not desc.depth and desc.masked:
        if desc.held_cpu is None:
            desc.masked = False  # (unmask_line() with nothing held)
        else:
            unmask_line(kernel, desc)


def _wake_threads_waitq(kernel: Kernel, desc: IrqDesc) -> None:
    """A run is over: ``threads_active`` down; at 0 the ``synchronize_irq`` waiters wake."""
    desc.threads_active -= 1
    if not desc.threads_active:
        wake_up_var(kernel, desc)


def _wake_secondary(task: TaskStruct, desc: IrqDesc, action: IrqAction) -> None:
    """``irq_wake_secondary()``: the thread function returned ``IRQ_WAKE_THREAD``."""
    secondary = action.secondary
    if secondary is None:
        warn_once(("irq_wake_secondary", id(task.kernel)))  # WARN_ON_ONCE(!secondary)
        return
    irq_wake(desc, secondary, task.cpu)


def _irq_thread_dtor(kernel: Kernel, task: TaskStruct, desc: IrqDesc, action: IrqAction) -> None:
    """``irq_thread_dtor()``: an irq thread is exiting without being stopped."""
    log_text(
        kernel,
        3,
        f'genirq: exiting task "{task.comm}" ({task.pid}) is an active IRQ thread '
        f"(irq {action.irq})",
    )
    if action.runthread:
        action.runthread = False
        _wake_threads_waitq(kernel, desc)
    finalize_oneshot(kernel, desc, action)  # no stale bit keeps the line masked


def stop_irq_thread(action: IrqAction) -> None:
    """``kthread_stop()`` of *action*'s thread, without the wait: it exits once it has taken a
    pending run (if any) and its ``thread_fn`` has returned."""
    task = action.thread
    if task is None or task._exited:
        return
    task.should_stop = True
    if action.parked:
        action.parked = False
        token = task._wake_event
        if token is not None:
            if task.kernel._trace_on:
                sched_wakeup(task)
            task._wake_event = None
            task.kernel._parker.unpark(token)


# -- the shutdown -------------------------------------------------------------------------------


def _busy_threads(kernel: Kernel) -> bool:
    """Whether a live irq thread has a run pending or running."""
    return any(
        a.runthread or a.running
        for desc in kernel.irq_descs.values()
        for a in desc.threads
        if not a.exiting
    )


async def irq_threads_quiesce(kernel: Kernel) -> bool:
    """
    The kernel is shutting down: let every woken irq thread finish its runs (within the
    kernel's ``shutdown_timeout``; past it, the shutdown becomes an abort). Returns whether
    anything was waited for.
    """
    if not _busy_threads(kernel):
        return False
    from ._shutdown import begin_abort

    timeout = kernel.shutdown_timeout
    with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
        await wait_var_event(kernel.irq_descs, lambda: not _busy_threads(kernel))
    if scope.cancelled_caught:
        begin_abort(kernel, "timeout", f"irq thread still running after {timeout} s")
    return True


def stop_irq_threads(kernel: Kernel) -> None:
    """The kernel is shutting down: stop every irq thread (the lines stay requested)."""
    for desc in kernel.irq_descs.values():
        for action in list(desc.threads):
            stop_irq_thread(action)


# -- the API ------------------------------------------------------------------------------------


def irq_wake_thread(irq: int, dev: Any) -> None:
    """
    Wake the irq thread of the handler registered on *irq* with cookie *dev*, as if its
    primary handler had returned ``IRQ_WAKE_THREAD``: its ``thread_fn`` runs once more (runs
    coalesce as they do for interrupts). No handler with that *dev*, or one without a thread:
    nothing happens.

    Raises:
        TypeError: *irq* is not an int.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    check_irq(irq, "irq_wake_thread")
    task = _cur()
    for action in task.kernel.irq_actions.get(irq, ()):
        if action.dev is dev:
            if action.thread is not None and action.desc is not None:
                irq_wake(action.desc, action, task.cpu)
            return


def disable_irq_nosync(irq: int) -> None:
    """
    Disable line *irq* (nestable: each call needs its :func:`enable_irq`) and return at once,
    without waiting for handlers or threads that are running.

    While the line is disabled its interrupts run no handler; one of them is held and resent
    when the line is enabled again.

    Raises:
        TypeError: *irq* is not an int.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).
        RuntimeError: called from a thread other than the kernel's event loop's.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    check_irq(irq, "disable_irq_nosync")
    kernel = _cur().kernel
    check_loop_thread(kernel, "disable_irq_nosync")
    irq_to_desc(kernel, irq).depth += 1


def _check_disable_irq(irq: object) -> None:
    check_irq(irq, "disable_irq")


@sleeping_checked(_check_disable_irq)
async def disable_irq(irq: int) -> None:
    """
    Disable line *irq*, as :func:`disable_irq_nosync`, then wait like
    :func:`synchronize_irq` for the handlers and irq threads already running or woken.

    Called from the line's own thread function it waits for itself, forever (the hung-task
    detector reports it after ``hung_task_timeout_secs``); use :func:`disable_irq_nosync`
    there.

    Raises:
        TypeError: *irq* is not an int.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).

    Context:
        Process context; may sleep (uninterruptibly). Always a checkpoint.

    .. versionadded:: 0.2
    """
    kernel = _cur().kernel
    desc = irq_to_desc(kernel, irq)
    desc.depth += 1
    await _synchronize(desc)


def enable_irq(irq: int) -> None:
    """
    Undo one :func:`disable_irq`/:func:`disable_irq_nosync` of line *irq*. The last one
    enables and unmasks the line; an interrupt that arrived while it was disabled is then
    delivered, once.

    Enabling a line that is not disabled is the kernel's WARN ``Unbalanced enable for IRQ
    <irq>``, and nothing changes.

    Raises:
        TypeError: *irq* is not an int.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).
        RuntimeError: called from a thread other than the kernel's event loop's.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    check_irq(irq, "enable_irq")
    task = _cur()
    kernel = task.kernel
    check_loop_thread(kernel, "enable_irq")
    desc = irq_to_desc(kernel, irq)
    if not desc.depth:
        warn("Unbalanced enable for IRQ %d\n", irq, task=task)
        return
    enable_line(kernel, desc)


def _check_synchronize_irq(irq: object) -> None:
    check_irq(irq, "synchronize_irq")


@sleeping_checked(_check_synchronize_irq)
async def synchronize_irq(irq: int) -> None:
    """
    Wait until no handler of line *irq* runs and no irq thread run of it is pending or
    running (``threads_active`` is 0): a thread woken but not yet scheduled runs first.

    It disables nothing: a new interrupt may come right after. With nothing pending or running
    it returns without sleeping.

    Raises:
        TypeError: *irq* is not an int.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).

    Context:
        Process context; may sleep (uninterruptibly). Always a checkpoint.

    .. versionadded:: 0.2
    """
    desc = _cur().kernel.irq_descs.get(irq)
    if desc is None:
        await anyio.lowlevel.checkpoint()
        return
    await _synchronize(desc)


async def _synchronize(desc: IrqDesc) -> None:
    """Sleep until *desc*'s ``threads_active`` is 0 (primary handlers never overlap an await)."""
    await wait_var_event(desc, lambda: not desc.threads_active)
