"""RCU: grace periods, ``call_rcu`` and RCU work (kernel-semantics §4.1, §4.2; WQ-23).

A grace period ends once every CPU has passed through a quiescent state, so that every RCU
read-side critical section that began before it has ended. Read-side sections here are
``rcu_read_lock()``/``rcu_read_unlock()`` pairs in code that never awaits (taking the lock
disables preemption, as in a kernel without ``CONFIG_PREEMPT_RCU``, so sleeping inside one is
``scheduling while atomic``): a CPU is quiescent as soon as it runs anything else. The grace
period machine (the kernel's ``rcu_gp_kthread``) is modelled by one kernel timer: a grace
period starts when a callback needs one and ends at the next jiffy. A callback queued while
one runs joins it: that grace period ends after the call returned, and no reader can span it.
Callbacks run in ``RCU_SOFTIRQ`` on the CPU that queued them, in the order they were queued,
as plain functions (softirq context); one pass runs at most ``max(10, ready >> 7)`` of them
unless the idle task runs them, and raises ``RCU_SOFTIRQ`` again for the rest
(``rcu_do_batch()``).

Guarantees:
    * test_callback_runs_after_a_grace_period: a ``call_rcu`` callback never runs in the call
      that queued it, nor before the grace period that began after it has ended; it runs in
      ``RCU_SOFTIRQ`` on the queueing CPU.
    * test_queue_rcu_work_runs_after_grace_period: ``queue_rcu_work`` queues the work only
      after a grace period; while it waits (and while it is queued) another call is False.
    * test_synchronize_rcu_and_barrier: ``synchronize_rcu`` returns after a full grace
      period; ``rcu_barrier`` after every callback queued before it has run.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._check import bad_type, bad_value, check_callback
from ._consts import IRQ_MASK, RCU_SOFTIRQ
from ._context import TaskStruct, _cur
from ._printk import symbol_name, warn_once
from ._sleeping import sleeping, sleeping_checked
from ._softirq import panic_in_interrupt, run_atomic_result, wakeup_softirqd
from ._timer import TimerList, _detach, _enqueue
from ._trace import (
    RCU_BATCH_END,
    RCU_BATCH_START,
    RCU_CALLBACK,
    RCU_INVOKE_CALLBACK,
    RCU_NAME,
    emit,
    emit_on,
    site_task,
    trace_raise_on,
)
from ._wait import Completion, complete, wait_for_completion
from ._work import Work, WorkFunc, _init_work, check_work, check_work_func

if TYPE_CHECKING:
    from ._kernel import Kernel
    from ._workqueue import Workqueue

__all__ = [
    "INIT_RCU_WORK",
    "RcuWork",
    "call_rcu",
    "flush_rcu_work",
    "queue_rcu_work",
    "rcu_barrier",
    "rcu_read_lock",
    "rcu_read_unlock",
    "synchronize_rcu",
    "to_rcu_work",
]

RcuCallback = Callable[[Any], object]


class _GpTimer(TimerList):
    """The grace-period timer: the kernel's own, never named at shutdown."""

    __slots__ = ("kernel",)
    _kdefer_internal = True

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(_gp_end, 0)
        self.kernel = kernel


class _RcuState:
    """Per kernel: the grace-period counter and each CPU's callback list."""

    __slots__ = ("cbs", "gp_active", "gp_seq", "timer")

    def __init__(self, kernel: Kernel) -> None:
        self.gp_seq = 0  # A: grace periods completed
        self.gp_active = False  # A: one is running (it ends as gp_seq + 1)
        self.timer = _GpTimer(kernel)  # I
        #: A: per CPU, (grace period it waits for, head, func), in queueing order (the
        #: grace periods are non-decreasing along each list)
        self.cbs: list[deque[tuple[int, Any, RcuCallback]]] = [
            deque() for _ in range(kernel.nr_cpus)
        ]


def rcu_state(kernel: Kernel) -> _RcuState:
    st: _RcuState | None = getattr(kernel, "_rcu_state", None)
    if st is None:
        st = _RcuState(kernel)
        kernel._rcu_state = st  # type: ignore[attr-defined]
    return st


def _start_gp(kernel: Kernel, st: _RcuState, cpu: int) -> None:
    st.gp_active = True
    now = kernel.get_jiffies()
    _enqueue(kernel.cpus[cpu].std_base, st.timer, now + 1, now)


def _enqueue_cb(task: TaskStruct, head: object, func: RcuCallback) -> None:
    kernel = task.kernel
    st = rcu_state(kernel)
    cbs = st.cbs[task.cpu]
    cbs.append((st.gp_seq + 1, head, func))
    if kernel._trace_on:  # (with interrupts saved: __call_rcu_common())
        emit_on(kernel, task, task.cpu, RCU_CALLBACK, 0, RCU_NAME, head, func, len(cbs))
    if not st.gp_active:
        _start_gp(kernel, st, task.cpu)


def _gp_end(timer: TimerList) -> None:
    """The grace period ends: the CPUs with callbacks now due run them in RCU_SOFTIRQ."""
    kernel: Kernel = timer.kernel  # type: ignore[attr-defined]
    task = _cur()
    st = rcu_state(kernel)
    st.gp_seq += 1
    st.gp_active = False
    more = False
    for cpu in kernel.cpus:
        cbs = st.cbs[cpu.nr]
        if not cbs:
            continue
        if cbs[0][0] <= st.gp_seq:
            if kernel._trace_on:
                trace_raise_on(kernel, task, cpu, RCU_SOFTIRQ)
            cpu.pending |= 1 << RCU_SOFTIRQ
            if cpu.nr != task.cpu or not task.preempt_count & IRQ_MASK:
                wakeup_softirqd(cpu)
        if cbs[-1][0] > st.gp_seq:
            more = True
    if more:
        _start_gp(kernel, st, task.cpu)


#: ``DEFAULT_RCU_BLIMIT``: callbacks one RCU_SOFTIRQ runs at least before it may stop
RCU_BLIMIT = 10
#: ``rcu_divisor``: a backlog of ready callbacks raises the limit to ``ready >> 7``
RCU_DIVISOR = 7


def rcu_core() -> None:
    """
    The ``RCU_SOFTIRQ`` handler (``rcu_do_batch()``): run this CPU's callbacks whose grace
    period is over, in queueing order. Once ``max(10, ready >> 7)`` have run it stops unless
    the idle task is the one running them, and raises ``RCU_SOFTIRQ`` again for the rest (the
    softirq loop restarts, or hands them to ksoftirqd). ``need_resched()``, which would also
    stop an idle CPU's batch, is not modelled.
    """
    task = _cur()
    kernel = task.kernel
    st = rcu_state(kernel)
    cbs = st.cbs[task.cpu]
    gp = st.gp_seq
    ready = 0
    for entry in cbs:  # (the done segment: the ready ones are at the front)
        if entry[0] > gp:
            break
        ready += 1
    if not ready:
        return
    limit = max(RCU_BLIMIT, ready >> RCU_DIVISOR)
    idle = task.pid == 0
    if kernel._trace_on:
        emit_on(kernel, task, task.cpu, RCU_BATCH_START, 0, RCU_NAME, len(cbs), limit)
    count = 0
    while count < ready:
        _, head, func = cbs.popleft()
        if kernel._trace_on:
            emit(kernel, task, RCU_INVOKE_CALLBACK, RCU_NAME, head, func)
        count += 1
        try:
            result = func(head)
        except Exception as exc:
            panic_in_interrupt(task, exc, f"RCU callback {symbol_name(func)}")
            raise
        if result is not None:
            run_atomic_result(task, result, func)
        if count >= limit and not idle:
            break
    if kernel._trace_on:
        emit_on(
            kernel,
            task,
            task.cpu,
            RCU_BATCH_END,
            0,
            RCU_NAME,
            count,
            count < ready,
            bool(task.need_resched),
            idle,
            False,
        )
    if count < ready:  # invoke_rcu_core(): the rest in another pass
        cpu = kernel.cpus[task.cpu]
        if kernel._trace_on:
            trace_raise_on(kernel, task, cpu, RCU_SOFTIRQ)
        cpu.pending |= 1 << RCU_SOFTIRQ


def rcu_expedite(kernel: Kernel) -> bool:
    """At shutdown: end the grace periods now, so every callback runs; True if any waited."""
    st: _RcuState | None = getattr(kernel, "_rcu_state", None)
    if st is None or not any(st.cbs):
        return False
    st.gp_seq = max(cbs[-1][0] for cbs in st.cbs if cbs)
    if st.timer._bucket is not None:
        _detach(st.timer)
    st.gp_active = False
    for cpu in kernel.cpus:
        if st.cbs[cpu.nr]:
            if kernel._trace_on:
                trace_raise_on(kernel, site_task(kernel, cpu.nr), cpu, RCU_SOFTIRQ)
            cpu.pending |= 1 << RCU_SOFTIRQ
    return True


# --- the API ------------------------------------------------------------------------------------


def call_rcu(head: object, func: RcuCallback) -> None:
    """
    Call ``func(head)`` after a grace period, in ``RCU_SOFTIRQ`` on this CPU.

    *head* stands for the ``struct rcu_head`` embedded in the object to free: any object but
    ``None`` (a NULL head is dereferenced at once in the kernel).

    Raises:
        TypeError: *head* is ``None``; *func* is not callable, is ``async def`` (it runs in
            softirq context), or cannot be called as ``func(head)``. The kernel would only
            find out in ``RCU_SOFTIRQ``, a grace period later, with a panic.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if head is None:
        raise bad_type("call_rcu", "head", "an rcu_head (any object but None)", head)
    check_callback(
        func, "call_rcu", "func", shape="func(head)", nargs=1, kind="atomic", what="an RCU callback"
    )
    _enqueue_cb(_cur(), head, func)


@sleeping
async def synchronize_rcu() -> None:
    """
    Wait for a full grace period: every RCU read-side section begun before has ended.

    Context:
        Task context; may sleep.

    .. versionadded:: 0.1
    """
    done = Completion()
    _enqueue_cb(_cur(), done, complete)
    await wait_for_completion(done)


@sleeping
async def rcu_barrier() -> None:
    """
    Wait until every callback queued by ``call_rcu`` (and ``queue_rcu_work``) before this
    call has run.

    Context:
        Task context; may sleep.

    .. versionadded:: 0.1
    """
    task = _cur()
    st = rcu_state(task.kernel)
    waiting = [0]
    done = Completion()

    def arrived(_head: object) -> None:
        waiting[0] -= 1
        if not waiting[0]:
            complete(done)

    for cbs in st.cbs:
        if cbs:
            # entrained behind the CPU's last callback: it runs right after it
            cbs.append((cbs[-1][0], None, arrived))
            waiting[0] += 1
    if waiting[0]:
        await wait_for_completion(done)
    else:
        await synchronize_rcu()


def rcu_read_lock() -> None:
    """
    Enter an RCU read-side critical section (it disables preemption: do not sleep inside).

    .. versionadded:: 0.1
    """
    _cur().preempt_count += 1


def rcu_read_unlock() -> None:
    """
    Leave an RCU read-side critical section.

    .. versionadded:: 0.1
    """
    task = _cur()
    if task.preempt_count <= 0:
        warn_once(("rcu_read_unlock",), "rcu_read_unlock() without rcu_read_lock()\n")
        return
    task.preempt_count -= 1


# --- RCU work -------------------------------------------------------------------------------------


class RcuWork:
    """
    ``struct rcu_work``: a work item queued on its workqueue after a grace period.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "work", "wq")

    def __init__(self, func: WorkFunc | None = None) -> None:
        if func is not None:
            check_work_func(func, "RcuWork")
        self.work = Work()
        self.work._rwork = self
        self.wq: Workqueue | None = None
        if func is not None:
            _init_work(self.work, func)

    def __repr__(self) -> str:
        return f"<RcuWork {self.work!r}>"


def INIT_RCU_WORK(rwork: RcuWork, func: WorkFunc) -> None:
    """
    Initialise *rwork* with *func* (``async def`` or plain; it runs in a kworker).

    Raises:
        TypeError: *rwork* is not an :class:`RcuWork`; *func* is not a function callable as
            ``func(work)``.

    .. versionadded:: 0.1
    """
    check_rwork(rwork, "INIT_RCU_WORK", initialised=False)
    check_work_func(func, "INIT_RCU_WORK")
    _init_work(rwork.work, func)


def check_rwork(rwork: object, func: str, *, initialised: bool = True) -> RcuWork:
    """*rwork* if it is an :class:`RcuWork` (initialised, with *initialised*)."""
    if not isinstance(rwork, RcuWork):
        raise bad_type(func, "rwork", "an RcuWork", rwork)
    if initialised and rwork.work.func is None:
        raise bad_value(func, "rwork", "an RcuWork initialised by INIT_RCU_WORK", rwork)
    return rwork


def to_rcu_work(work: Work) -> RcuWork:
    """
    The :class:`RcuWork` that *work* belongs to (``container_of``).

    Raises:
        TypeError: *work* is not a :class:`Work`.
        ValueError: *work* is not the ``.work`` of an :class:`RcuWork`.

    .. versionadded:: 0.1
    """
    rwork: RcuWork | None = check_work(work, "to_rcu_work", initialised=False)._rwork
    if rwork is None:
        raise bad_value("to_rcu_work", "work", "the .work of an RcuWork", work)
    return rwork


_rcu_tokens = itertools.count(1)


def _rcu_work_rcufn(head: tuple[RcuWork, int]) -> None:
    """The grace period is over: queue the work (``rcu_work_rcufn``), on this CPU, unless a
    cancel took it meanwhile."""
    from ._work import WORK_CPU_UNBOUND
    from ._workqueue import _queue_now

    rwork, token = head
    work = rwork.work
    if work._rcu_gp != token:
        return  # cancelled (and maybe queued again, with a wait of its own)
    work._rcu_gp = 0
    wq = rwork.wq
    assert wq is not None
    _queue_now(_cur(), WORK_CPU_UNBOUND, wq, work)


def queue_rcu_work(wq: Workqueue, rwork: RcuWork) -> bool:
    """
    Queue *rwork* on *wq* once a full RCU grace period has passed.

    Returns:
        ``True`` if it was idle and is now pending; ``False`` if it was already pending
        (waiting for its grace period or queued), or disabled (with a ``WARN_ON_ONCE``:
        an RCU work cannot be disabled).

    Raises:
        TypeError: *wq* is not a :class:`Workqueue`, *rwork* not an :class:`RcuWork`; its
            function is ``async def`` and *wq* is a BH workqueue.
        ValueError: *rwork* was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    from ._workqueue import _queue_checks, check_wq

    task = _cur()
    check_wq(wq, "queue_rcu_work")
    work = check_rwork(rwork, "queue_rcu_work").work
    wq = wq._t()
    if work._disable:
        warn_once(("queue_rcu_work", "disabled"))
        return False
    if work._pending:
        return False
    _queue_checks(wq, work, "queue_rcu_work")
    work._pending = True
    work._pwq = None
    token = work._rcu_gp = next(_rcu_tokens)
    rwork.wq = wq
    _enqueue_cb(task, (rwork, token), _rcu_work_rcufn)
    return True


@sleeping_checked(lambda rwork: check_rwork(rwork, "flush_rcu_work"))
async def flush_rcu_work(rwork: RcuWork) -> bool:
    """
    Wait for *rwork*: if it is pending, for its grace period (``rcu_barrier``) and then its
    execution; otherwise as :func:`flush_work`.

    Returns:
        ``True`` if it waited for something.

    Raises:
        TypeError: *rwork* is not an :class:`RcuWork`.
        ValueError: *rwork* was never initialised.

    .. versionadded:: 0.1
    """
    from ._flush import flush_work

    work = rwork.work
    if work._pending:
        await rcu_barrier()
        await flush_work(work)
        return True
    return await flush_work(work)
