"""Flush, drain, cancel, disable, destroy; the freezer; statistics; shutdown.

Kernel invariants modelled (kernel/workqueue.c):

* ``flush_work(w)`` waits for the last queueing instance current at the call: behind the
  queued instance if there is one (even while an earlier one runs), else behind the running
  one; it returns whether it had to wait. An item only armed on its delayed-work timer is idle.
* ``flush_workqueue(wq)`` waits for everything queued before the call, not for work chained
  after it; ``drain_workqueue(wq)`` keeps flushing until the queue is empty and meanwhile
  refuses queueing that is not chained from the queue's own items, with the kernel's warning.
* ``cancel_*`` steal ``PENDING``; the ``_sync`` forms disable the item while they wait for a
  running instance, so queue attempts meanwhile fail, and return with the item neither pending
  nor running. ``disable_work`` nests; ``enable_work`` returns whether the depth reached 0.
* ``destroy_workqueue()`` drains first. Self-flushes and self-cancels, which hang a real
  kernel, are reported as lockdep would and raise :class:`KernelBug`.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._check import bad_value, check_callback, check_int
from ._context import TaskStruct, _cur, _current
from ._printk import log_text, symbol_name, warn, warn_once
from ._sleeping import sleeping, sleeping_checked
from ._timer import _detach
from ._wait import wait_var_event
from ._work import WORK_OFFQ_DISABLE_MAX, DelayedWork, Work, check_cpu, check_dwork, check_work
from ._workqueue import (
    WQ_FREEZABLE,
    WQ_MEM_RECLAIM,
    WQ_UNBOUND,
    KWorkerTask,
    Workqueue,
    _activate_inactive,
    _all_pools,
    _Barrier,
    _Color,
    _resolve,
    check_wq,
    grab_pending,
    queue_work_on,
    system_percpu_wq,
    system_workqueue,
    worker_add_barrier,
    wq_in_flight,
    wq_set_limit,
    wq_slow_queueing,
    wq_state,
)

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "cancel_delayed_work",
    "cancel_delayed_work_sync",
    "cancel_work",
    "cancel_work_sync",
    "destroy_workqueue",
    "disable_delayed_work",
    "disable_delayed_work_sync",
    "disable_work",
    "disable_work_sync",
    "drain_workqueue",
    "enable_delayed_work",
    "enable_work",
    "flush_delayed_work",
    "flush_scheduled_work",
    "flush_work",
    "flush_workqueue",
    "freeze_workqueues",
    "grab_pending",
    "thaw_workqueues",
    "work_on_cpu",
    "workqueue_shutdown",
    "wq_stats",
]


def _running_worker(work: Work) -> Any:
    return work._worker


def _check_self(task: TaskStruct, work: Work, what: str) -> None:
    if isinstance(task, KWorkerTask) and task.worker.current_work is work:
        from ._locking import report_recursive_locking

        report_recursive_locking(
            f"((work_completion)(&{symbol_name(work.func)}))", what, "process_one_work"
        )


async def _wait_barrier(b: _Barrier) -> None:
    await wait_var_event(b, lambda: b.done)


async def _flush_work(work: Work) -> bool:
    task = _cur()
    _check_self(task, work, "__flush_work")
    b = _Barrier()
    if work._pending and work._pwq is not None:
        if work._barriers is None:
            work._barriers = []
        work._barriers.append(b)
    else:
        worker = _running_worker(work)
        if worker is None:
            await anyio.lowlevel.checkpoint()
            return False
        if worker is not None and not hasattr(worker, "barriers"):
            # a BH item is never observed running from task context
            await anyio.lowlevel.checkpoint()
            return False
        worker_add_barrier(worker, b)
    await _wait_barrier(b)
    return True


@sleeping_checked(lambda work: check_work(work, "flush_work"))
async def flush_work(work: Work) -> bool:
    """
    Wait until the last queueing instance of *work* (as of the call) has finished.

    Returns:
        ``True`` if it had to wait; ``False`` if *work* was idle (never queued, done, or only
        armed on a delayed-work timer).

    Raises:
        TypeError: *work* is not a :class:`Work` (at the call, before any coroutine exists).
        ValueError: *work* was never initialised.
        KernelBug: called from *work*'s own function (it would wait for itself forever).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    return await _flush_work(work)


def _requeue_now(task: TaskStruct, dwork: DelayedWork) -> None:
    from ._workqueue import _queue_now as queue_now

    if dwork.timer._bucket is not None:
        _detach(dwork.timer)
        wq = dwork.wq
        assert wq is not None
        queue_now(task, dwork.cpu, wq, dwork.work)


@sleeping_checked(lambda dwork: check_dwork(dwork, "flush_delayed_work"))
async def flush_delayed_work(dwork: DelayedWork) -> bool:
    """
    If *dwork*'s timer is armed, queue it at once; then :func:`flush_work` it.

    Raises:
        TypeError: *dwork* is not a :class:`DelayedWork`.
        ValueError: *dwork* was never initialised.

    .. versionadded:: 0.1
    """
    _requeue_now(_cur(), dwork)
    return await _flush_work(dwork.work)


async def _flush_wq(wq: Workqueue) -> None:
    color = wq._color
    if color.n:
        # close the current color: what is queued from now on is not waited for
        wq._old_colors.append(color)
        wq._color = _Color(color.seq + 1)
    target = color.seq
    old = wq._old_colors

    def done() -> bool:
        # every color up to ours has finished (color_done() wakes us as each one does)
        return not old or old[0].seq > target

    await wait_var_event(wq, done)


def _check_flush_self(task: TaskStruct, wq: Workqueue, what: str) -> None:
    if isinstance(task, KWorkerTask):
        pwq = task.worker.current_pwq
        if pwq is not None and pwq.wq is wq:
            from ._locking import report_recursive_locking

            report_recursive_locking(f"((wq_completion){wq._name})", what, "process_one_work")


@sleeping_checked(lambda wq: check_wq(wq, "flush_workqueue"))
async def flush_workqueue(wq: Workqueue) -> None:
    """
    Wait until every item queued on *wq* before this call has finished (items queued after,
    including ones chained by the flushed items, are not waited for).

    Raises:
        TypeError: *wq* is not a :class:`Workqueue`.
        KernelBug: called from an item of *wq* (it would wait for itself forever).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    wq = _resolve(wq, "flush_workqueue")
    _check_flush_self(_cur(), wq, "__flush_workqueue")
    await _flush_wq(wq)


async def _drain(wq: Workqueue) -> None:
    kernel = _cur().kernel
    wq._draining += 1
    wq_slow_queueing(wq)
    tries = 0
    try:
        while True:
            await _flush_wq(wq)
            busy = wq_in_flight(wq) or any(
                p is not None and (p.inactive or p.nr_active) for p in wq._pwqs
            )
            if not busy:
                break
            tries += 1
            if tries == 10 or (tries % 100 == 0 and tries <= 1000):
                log_text(
                    kernel,
                    4,
                    f"workqueue {wq._name}: drain_workqueue() isn't complete after {tries} tries",
                )
    finally:
        wq._draining -= 1


@sleeping_checked(lambda wq: check_wq(wq, "drain_workqueue"))
async def drain_workqueue(wq: Workqueue) -> None:
    """
    Flush *wq* until it is empty, letting its items chain more work; meanwhile any other
    queueing on it is refused with ``workqueue: cannot queue ... on wq ...``.

    Raises:
        TypeError: *wq* is not a :class:`Workqueue`.

    .. versionadded:: 0.1
    """
    wq = _resolve(wq, "drain_workqueue")
    _check_flush_self(_cur(), wq, "drain_workqueue")
    await _drain(wq)


def _check_destroy(wq: object) -> None:
    wq = check_wq(wq, "destroy_workqueue")
    if wq._sysname is not None:
        # the system workqueues live as long as the kernel
        raise bad_value("destroy_workqueue", "wq", "a workqueue that is not a system one", wq)
    if wq._destroyed:
        raise bad_value("destroy_workqueue", "wq", "a workqueue not already destroyed", wq)


@sleeping_checked(_check_destroy)
async def destroy_workqueue(wq: Workqueue) -> None:
    """
    Drain *wq* (everything queued runs), stop its rescuer, and free it. Queueing on it
    afterwards is refused with the kernel's ``cannot queue`` warning.

    Raises:
        TypeError: *wq* is not a :class:`Workqueue`.
        ValueError: *wq* is a system workqueue or was already destroyed.

    .. versionadded:: 0.1
    """
    from ._kthread import kthread_stop

    task = _cur()
    _check_flush_self(task, wq, "destroy_workqueue")
    # __WQ_DESTROYING: from here on only chained queueing is accepted, also after the drain
    # (while the rescuer stops), so nothing can slip in between the drain and the free.
    wq._draining += 1
    wq_slow_queueing(wq)
    leaked = False
    try:
        await _drain(wq)
        if wq._rescuer is not None:
            await kthread_stop(wq._rescuer)
            wq._rescuer = None
        busy = [p for p in wq._pwqs if p is not None and (p.nr_active or p.inactive)]
        if busy:
            warn()
            log_text(task.kernel, 4, f"destroy_workqueue: {wq._name} has the following busy pwq")
            for p in busy:
                log_text(
                    task.kernel,
                    4,
                    f"  pwq {p.pool.id}: cpus={p.pool.cpu} active={p.nr_active} "
                    f"inactive={len(p.inactive)}",
                )
            leaked = True  # the kernel leaks the wq, still marked destroying
            return
        wq._destroyed = True
        st = wq_state(task.kernel)
        if wq in st.workqueues:
            st.workqueues.remove(wq)
    finally:
        if not leaked:
            wq._draining -= 1


@sleeping
async def flush_scheduled_work() -> None:
    """
    Deprecated in the kernel: warns that flushing system-wide workqueues will be prohibited,
    then flushes ``events``.

    .. versionadded:: 0.1
    """
    task = _cur()
    log_text(
        task.kernel,
        4,
        "WARNING: Flushing system-wide workqueues will be prohibited in near future.",
    )
    from ._printk import dump_stack

    dump_stack()
    await _flush_wq(system_workqueue(task.kernel, "events"))


# --- cancel / disable / enable -------------------------------------------------------------------


def cancel_work(work: Work) -> bool:
    """
    Take *work* off its queue if pending; does not wait for a running instance.

    Returns:
        ``True`` if it was pending.

    Context:
        Any context; never sleeps.

    Raises:
        TypeError: *work* is not a :class:`Work`.
        ValueError: *work* was never initialised.

    .. versionadded:: 0.1
    """
    _cur()
    return grab_pending(check_work(work, "cancel_work"))


def cancel_delayed_work(dwork: DelayedWork) -> bool:
    """
    Take *dwork* off its timer or queue; does not wait for a running instance.

    Returns:
        ``True`` if it was pending (armed or queued).

    Raises:
        TypeError: *dwork* is not a :class:`DelayedWork`.
        ValueError: *dwork* was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _cur()
    if type(dwork) is not DelayedWork:
        check_dwork(dwork, "cancel_delayed_work")
    work = dwork.work
    if work._pending:
        return grab_pending(work)
    if work.func is None:  # (never pending)
        check_dwork(dwork, "cancel_delayed_work")
    return False


async def _wait_running(work: Work) -> None:
    worker = _running_worker(work)
    if worker is None or not hasattr(worker, "barriers"):
        await anyio.lowlevel.checkpoint()
        return
    b = _Barrier()
    worker_add_barrier(worker, b)
    await _wait_barrier(b)


def _disable(work: Work) -> None:
    if work._disable >= WORK_OFFQ_DISABLE_MAX:
        warn_once(("disable overflow", id(work)), "workqueue: work disable count overflowed\n")
        return
    work._disable += 1


async def _cancel_sync(work: Work, *, keep_disabled: bool, what: str) -> bool:
    task = _cur()
    _check_self(task, work, what)
    ret = grab_pending(work)
    _disable(work)
    try:
        await _wait_running(work)
    finally:
        if not keep_disabled:
            work._disable -= 1
    return ret


@sleeping_checked(lambda work: check_work(work, "cancel_work_sync"))
async def cancel_work_sync(work: Work) -> bool:
    """
    Cancel *work* and wait for a running instance; on return it is neither pending nor
    running, even if it re-queues itself. Queue attempts meanwhile return ``False``.

    Returns:
        ``True`` if it was pending.

    Raises:
        TypeError: *work* is not a :class:`Work`.
        ValueError: *work* was never initialised.
        KernelBug: called from *work*'s own function.

    .. versionadded:: 0.1
    """
    return await _cancel_sync(work, keep_disabled=False, what="__cancel_work_sync")


@sleeping_checked(lambda dwork: check_dwork(dwork, "cancel_delayed_work_sync"))
async def cancel_delayed_work_sync(dwork: DelayedWork) -> bool:
    """
    Cancel *dwork* (timer or queue) and wait for a running instance.

    Raises:
        TypeError: *dwork* is not a :class:`DelayedWork`.
        ValueError: *dwork* was never initialised.

    .. versionadded:: 0.1
    """
    return await _cancel_sync(dwork.work, keep_disabled=False, what="__cancel_work_sync")


def disable_work(work: Work) -> bool:
    """
    Cancel *work* and raise its disable depth: queueing fails until :func:`enable_work`.

    Returns:
        ``True`` if it was pending.

    Raises:
        TypeError: *work* is not a :class:`Work`.
        ValueError: *work* was never initialised.

    .. versionadded:: 0.1
    """
    _cur()
    work = check_work(work, "disable_work")
    ret = grab_pending(work)
    _disable(work)
    return ret


@sleeping_checked(lambda work: check_work(work, "disable_work_sync"))
async def disable_work_sync(work: Work) -> bool:
    """
    :func:`disable_work` and wait for a running instance.

    Raises:
        TypeError, ValueError: as :func:`disable_work`.

    .. versionadded:: 0.1
    """
    return await _cancel_sync(work, keep_disabled=True, what="disable_work_sync")


def enable_work(work: Work) -> bool:
    """
    Lower *work*'s disable depth. Does not queue anything dropped meanwhile.

    Returns:
        ``True`` iff the depth is now 0. At depth 0 already: the kernel's underflow WARN.

    Raises:
        TypeError: *work* is not a :class:`Work`.
        ValueError: *work* was never initialised.

    .. versionadded:: 0.1
    """
    _cur()
    work = check_work(work, "enable_work")
    if work._disable == 0:
        warn_once(("enable underflow", id(work)), "workqueue: work disable count underflowed\n")
        return True
    work._disable -= 1
    return work._disable == 0


def disable_delayed_work(dwork: DelayedWork) -> bool:
    """
    :func:`disable_work` for delayed work (the timer is cancelled too).

    Raises:
        TypeError: *dwork* is not a :class:`DelayedWork`.
        ValueError: *dwork* was never initialised.

    .. versionadded:: 0.1
    """
    _cur()
    check_dwork(dwork, "disable_delayed_work")
    ret = grab_pending(dwork.work)
    _disable(dwork.work)
    return ret


@sleeping_checked(lambda dwork: check_dwork(dwork, "disable_delayed_work_sync"))
async def disable_delayed_work_sync(dwork: DelayedWork) -> bool:
    """
    :func:`disable_delayed_work` and wait for a running instance.

    Raises:
        TypeError, ValueError: as :func:`disable_delayed_work`.

    .. versionadded:: 0.1
    """
    return await _cancel_sync(dwork.work, keep_disabled=True, what="disable_work_sync")


def enable_delayed_work(dwork: DelayedWork) -> bool:
    """
    :func:`enable_work` for delayed work.

    Raises:
        TypeError: *dwork* is not a :class:`DelayedWork`.
        ValueError: *dwork* was never initialised.

    .. versionadded:: 0.1
    """
    check_dwork(dwork, "enable_delayed_work")
    return enable_work(dwork.work)


# --- work_on_cpu ------------------------------------------------------------------------------


def _check_work_on_cpu(cpu: object, fn: object, arg: object) -> None:
    task = _current.get()
    if task is None:
        check_int(cpu, "work_on_cpu", "cpu", lo=0)  # no kernel: its CPUs are not known
    else:
        check_cpu(task.kernel, cpu, "work_on_cpu")
    check_callback(
        fn, "work_on_cpu", "fn", shape="fn(arg)", nargs=1, kind="any", what="a work_on_cpu function"
    )


@sleeping_checked(_check_work_on_cpu)
async def work_on_cpu(cpu: int, fn: Any, arg: Any) -> Any:
    """
    Run ``fn(arg)`` in a kworker bound to CPU *cpu*, wait for it, and return its result.

    *fn* may be ``async def`` or plain. *arg* is passed on as it is (the kernel's ``void *``).

    Raises:
        TypeError: *cpu* is not an ``int``; *fn* is not a function callable as ``fn(arg)``.
        ValueError: *cpu* is not one of the kernel's CPUs.

    .. versionadded:: 0.1
    """
    box: dict[str, Any] = {}

    async def run(_work: Work) -> None:
        result = fn(arg)
        if inspect.isawaitable(result):
            result = await result
        box["result"] = result

    work = Work(run)
    queue_work_on(cpu, system_percpu_wq, work)
    await _flush_work(work)
    return box.get("result")


# --- freezer -----------------------------------------------------------------------------------


def freeze_workqueues(kernel: Kernel) -> None:
    """``freeze_workqueues_begin``: freezable workqueues stop activating new items."""
    st = wq_state(kernel)
    st.frozen = True
    for wq in st.workqueues:
        if wq._flags & WQ_FREEZABLE:
            wq._frozen = True
            wq_set_limit(wq)


def freezable_busy(kernel: Kernel) -> bool:
    st = wq_state(kernel)
    return any(
        p is not None and p.nr_active
        for wq in st.workqueues
        if wq._flags & WQ_FREEZABLE
        for p in wq._pwqs
    )


def thaw_workqueues(kernel: Kernel) -> None:
    """``thaw_workqueues``: restore max_active and activate what waited."""
    st = wq_state(kernel)
    st.frozen = False
    for wq in st.workqueues:
        if wq._frozen:
            wq._frozen = False
            wq_set_limit(wq)
            for p in wq._pwqs:
                if p is not None:
                    _activate_inactive(p)


# --- statistics ------------------------------------------------------------------------------


def wq_stats(kernel: Kernel) -> dict[str, dict[str, Any]]:
    """wq_monitor.py's counters per workqueue name."""
    st = wq_state(kernel)
    out: dict[str, dict[str, Any]] = {}
    for wq in st.workqueues:
        s = wq._stats
        pwqs = [p for p in wq._pwqs if p is not None]
        # instances executing now: the kworkers inside one of wq's items
        running = sum(
            1
            for pool in _all_pools(st)
            for w in pool.workers
            if w.current_work is not None and w.current_pwq is not None and w.current_pwq.wq is wq
        )
        rescuer = wq._rescuer
        if rescuer is not None and rescuer.current_work is not None:
            running += 1
        unbound = bool(wq._flags & WQ_UNBOUND)
        reclaim = bool(wq._flags & WQ_MEM_RECLAIM)
        row: dict[str, Any] = {
            "total": sum(p.completed for p in pwqs) + running,
            "infl": running,
            "CPUtime": sum(p.cpu_time for p in pwqs),
            "CPUitsv": None if unbound else s.cpu_intensive,
            "CMW/RPR": s.repatriated if unbound else s.cm_wakeup,
            "mayday": s.mayday if reclaim else None,
            "rescued": s.rescued if reclaim else None,
        }
        same = out.get(wq._name)
        if same is not None:
            # two workqueues of one name (system_wq and system_percpu_wq are both "events"):
            # one row, as their shared name is all wq_monitor could tell them apart by
            row = {
                key: value if same[key] is None else same[key] + value for key, value in row.items()
            }
        out[wq._name] = row
    for row in out.values():
        row["CPUtime"] = round(row["CPUtime"], 6)
    return out


def format_wq_stats(kernel: Kernel) -> str:
    """The table wq_monitor.py prints."""
    lines = [
        "%-24s %8s %5s %8s %7s %7s %7s %7s"
        % ("", "total", "infl", "CPUtime", "CPUitsv", "CMW/RPR", "mayday", "rescued")
    ]
    for name, row in wq_stats(kernel).items():

        def f(v: Any) -> str:
            return "-" if v is None else str(v)

        lines.append(
            "%-24s %8d %5d %8.1f %7s %7s %7s %7s"
            % (
                name[-24:],
                row["total"],
                row["infl"],
                row["CPUtime"],
                f(row["CPUitsv"]),
                f(row["CMW/RPR"]),
                f(row["mayday"]),
                f(row["rescued"]),
            )
        )
    return "\n".join(lines) + "\n"


# --- shutdown ----------------------------------------------------------------------------------


async def workqueue_shutdown(kernel: Kernel) -> None:
    """Leaving the kernel: cancel armed delayed work (naming it), then run every queued item.

    Items still running after ``shutdown_timeout`` make it an abort (see _shutdown.py): what
    still waits is named as dropped, and the running items are cancelled and named by their
    kworkers.
    """
    from ._shutdown import begin_abort, sweep_delayed_work

    st: Any = getattr(kernel, "_wq_state", None)
    if st is None:
        return
    sweep_delayed_work(kernel)
    timeout = kernel.shutdown_timeout
    with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
        for _ in range(100):
            busy = [wq for wq in st.workqueues if wq_in_flight(wq)]
            if not busy:
                break
            for wq in busy:
                await _drain(wq)
    if scope.cancelled_caught:
        begin_abort(kernel, "timeout", f"work still running after {timeout} s")
    for wq in st.workqueues:
        if wq._rescuer is not None and not wq._rescuer._exited:
            wq._rescuer.should_stop = True
            from ._sched import wake_up_process

            wake_up_process(wq._rescuer)
