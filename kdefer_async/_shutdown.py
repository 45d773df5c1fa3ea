"""Leaving the kernel: what did not run is named in dmesg and counted, whatever the exit.

Field rules: ``A``: changed only in synchronous code, atomic with respect to the loop.

Invariant kept (the project's, not the kernel's: a real kernel does not stop half-way): every
deferred item handed to the kernel either runs, is cancelled by a call the application made,
or is named in dmesg as not run and counted in :attr:`Kernel.shutdown_report`.

Two ways out of ``async with Kernel()``:

* **Normal exit** (the block ends): pending softirqs and tasklets run, armed delayed work is
  cancelled, every queued work item runs to completion (for at most ``shutdown_timeout``), then
  what is left (a disabled tasklet, an armed timer, a running kthread) is named.
* **Abort** (the block is left by an exception or a cancellation, the kernel panicked, or the
  normal exit ran out of ``shutdown_timeout``): at once and without awaiting anything, every
  queued, inactive or armed item is taken off its list and named, so nothing new starts; then
  every kernel task is cancelled. A work function that is running sees the cancellation at its
  next ``await``, as anyio code expects; its kworker names it (``still running in kworker/...;
  cancelled``) and ends quietly: a cancellation is not an oops. A work function that turns
  the cancellation into an ordinary exception gets an oops, as any exception does.

Items queued while the tasks unwind (say, by a work function's cleanup code) are named by a
last sweep, once every kernel task has ended. The dmesg lines all start with
``kdefer: shutdown:``; a last line sums them up before ``reboot: System halted``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._consts import (
    HI_SOFTIRQ,
    IRQ_WORK_CLAIMED,
    RCU_SOFTIRQ,
    SOFTIRQ_NAMES,
    TASKLET_SOFTIRQ,
    TASKLET_STATE_SCHED,
    TIMER_SOFTIRQ,
)
from ._printk import log_text, symbol_name

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel
    from ._work import Work
    from ._workqueue import Worker, Workqueue

__all__ = [
    "ShutdownReport",
    "UnfinishedItem",
    "begin_abort",
    "exit_reason",
    "finish",
    "sweep",
    "sweep_delayed_work",
    "drop_late_work",
    "work_cancelled",
]

Reason = Literal["normal", "exception", "cancelled", "panic", "timeout"]

#: Softirq vectors whose items are named one by one (tasklets, timers, RCU callbacks), so
#: their pending bit is not named again.
_ITEM_VECTORS = (
    (1 << HI_SOFTIRQ) | (1 << TASKLET_SOFTIRQ) | (1 << TIMER_SOFTIRQ) | (1 << RCU_SOFTIRQ)
)


@dataclass(frozen=True)
class UnfinishedItem:
    """
    One deferred item that did not run to completion because the kernel shut down.

    Attributes:
        kind: ``"work"``, ``"delayed work"``, ``"rcu work"``, ``"tasklet"``, ``"timer"``,
            ``"softirq"``, ``"rcu callback"``, ``"irq"``, ``"irq_work"``,
            ``"smp_call_function"`` (a cross-CPU call) or ``"kthread"``.
        func: The name of its function (the kthread's ``comm/pid``, the softirq's name).
        where: Its workqueue's name, or ``CPU n``.
        state: What it was doing: ``"running"``, ``"queued"``, ``"inactive"``, ``"armed"``,
            ``"scheduled"``, ``"waiting for a grace period"`` or ``"pending"``.
        outcome: ``"cancelled"`` (it was running or armed), ``"dropped"`` (it never started)
            or ``"stopped"`` (a kthread).
        obj: The object itself (the :class:`~kdefer_async.Work`, timer, tasklet, task...).

    .. versionadded:: 0.1
    """

    kind: str
    func: str
    where: str
    state: str
    outcome: str
    obj: object = field(default=None, repr=False, compare=False)


class ShutdownReport:
    """
    What the kernel could not finish when it shut down: :attr:`Kernel.shutdown_report`.

    Attributes:
        reason: How the kernel was left: ``"normal"`` (the block ended), ``"exception"`` (the
            block raised), ``"cancelled"`` (a cancel scope around it, or the kernel's tasks,
            were cancelled), ``"panic"``, or ``"timeout"`` (a normal exit that ran out of
            ``shutdown_timeout``).
        items: Every item named in dmesg, in the order it was named.

    ``len(report)`` is the number of items; :meth:`counts` sorts them by kind and outcome.

    .. versionadded:: 0.1
    """

    __slots__ = ("_finished", "_tasks_named", "items", "reason")

    def __init__(self, reason: Reason = "normal") -> None:
        self.reason: Reason = reason  # A
        self.items: list[UnfinishedItem] = []  # A
        self._finished = False  # A: the summary line is out: nothing more is logged
        self._tasks_named: set[int] = set()  # A: pids of the kthreads named already

    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        """How many items of each ``"kind outcome"`` (``{"work cancelled": 3, ...}``)."""
        return dict(Counter(f"{i.kind} {i.outcome}" for i in self.items))

    def __repr__(self) -> str:
        return f"<ShutdownReport {self.reason} items={len(self.items)} {self.counts()}>"


def _report(kernel: Kernel) -> ShutdownReport:
    report: ShutdownReport | None = kernel.shutdown_report
    if report is None:
        report = kernel.shutdown_report = ShutdownReport()
    return report


def name_item(kernel: Kernel, item: UnfinishedItem, text: str) -> None:
    """Record *item* and print its dmesg line (``kdefer: shutdown: <text>``)."""
    report = _report(kernel)
    report.items.append(item)
    if not report._finished:
        log_text(kernel, 4, f"kdefer: shutdown: {text}")


# -- the items ---------------------------------------------------------------------------------


def _wq_name(wq: Workqueue | None) -> str:
    return "?" if wq is None else wq._name


def _drop_queued_work(kernel: Kernel, work: Work, wq: Workqueue | None, state: str) -> None:
    """Take a queued or inactive *work* off its lists for good, and name it."""
    from ._workqueue import complete_barriers, pwq_dec_nr_in_flight

    pwq = work._pwq
    color = work._color
    work._pwq = None
    work._pending = False
    work._inactive = False
    barriers = work._barriers
    work._barriers = None
    if pwq is not None and color is not None:
        if state == "queued" and not pwq.pool.bh:
            pwq.nr_active -= 1  # (its slot is not handed on: nothing is activated)
        pwq_dec_nr_in_flight(pwq, color, active=False)  # flushes waiting for it end
    if barriers:
        complete_barriers(kernel, barriers)  # a flush of it must not wait forever
    rwork = work._rwork
    kind = "rcu work" if rwork is not None else "work"
    if work._dwork is not None:
        kind = "delayed work"
    func = symbol_name(work.func)
    name = _wq_name(wq)
    name_item(
        kernel,
        UnfinishedItem(kind, func, name, state, "dropped", work),
        f"{kind} {func} on {name} never ran ({state}); dropped",
    )


def sweep_delayed_work(kernel: Kernel) -> None:
    """Cancel and name every armed delayed work item: its timer never fires."""
    from ._timer import _detach

    for cpu in kernel.cpus:
        for base in (cpu.std_base, cpu.def_base):
            for bucket in list(base.buckets.values()):
                for timer in list(bucket):
                    dwork = getattr(timer, "dwork", None)
                    if dwork is None:
                        continue
                    _detach(timer)
                    work = dwork.work
                    work._pending = False
                    func = symbol_name(work.func)
                    wq = _wq_name(dwork.wq)
                    name_item(
                        kernel,
                        UnfinishedItem("delayed work", func, wq, "armed", "cancelled", dwork),
                        f"delayed work {func} for {wq} on CPU {cpu.nr} still armed; cancelled",
                    )


def _sweep_workqueues(kernel: Kernel) -> None:
    st: Any = getattr(kernel, "_wq_state", None)
    if st is None:
        return
    sweep_delayed_work(kernel)
    # inactive items first: taking an active one would activate the next inactive one
    for wq in st.workqueues:
        for pwq in wq._pwqs:
            if pwq is None:
                continue
            while pwq.inactive:
                _drop_queued_work(kernel, pwq.inactive.popleft(), wq, "inactive")
    pools = [p for row in (*st.cpu_pools, *st.bh_pools) for p in row if p is not None]
    pools += [p for p in st.unbound_pools if p is not None]
    for pool in pools:
        while pool.worklist:
            work = pool.worklist.popleft()
            pwq = work._pwq
            _drop_queued_work(kernel, work, pwq.wq if pwq is not None else None, "queued")
        for worker in pool.workers:
            scheduled = worker.scheduled
            while scheduled:
                work = scheduled.popleft()
                pwq = work._pwq
                _drop_queued_work(kernel, work, pwq.wq if pwq is not None else None, "queued")


def _sweep_irq_work(kernel: Kernel, cpu: CPU) -> None:
    """Name the irq_work items and cross-CPU calls still queued for *cpu*: dropped."""
    for lazy, items in ((False, cpu.irq_work_raised), (True, cpu.irq_work_lazy)):
        for work in items:
            work.flags &= ~IRQ_WORK_CLAIMED
            func = symbol_name(work.func)
            name_item(
                kernel,
                UnfinishedItem("irq_work", func, f"CPU {cpu.nr}", "queued", "dropped", work),
                f"{'lazy ' if lazy else ''}irq_work {func} still queued on CPU {cpu.nr}; dropped",
            )
    cpu.irq_work_raised = []
    cpu.irq_work_lazy = []
    while cpu.call_single_queue:
        entry = cpu.call_single_queue.popleft()
        func = symbol_name(entry.func)
        if hasattr(entry, "info"):
            what, text = "smp_call_function", f"cross-CPU call of {func}"
        else:
            entry.flags &= ~IRQ_WORK_CLAIMED
            what, text = "irq_work", f"irq_work {func}"
        name_item(
            kernel,
            UnfinishedItem(what, func, f"CPU {cpu.nr}", "queued", "dropped", entry),
            f"{text} still queued for CPU {cpu.nr}; dropped",
        )


def _sweep_cpus(kernel: Kernel) -> None:
    from ._rcu import RcuWork
    from ._timer import _detach

    for cpu in kernel.cpus:
        for hi, lst in ((True, cpu.tasklet_hi_vec), (False, cpu.tasklet_vec)):
            while lst:
                t = lst.popleft()
                t.state &= ~(1 << TASKLET_STATE_SCHED)
                func = symbol_name(t.func)
                why = " (disabled?)" if t.count else ""
                name_item(
                    kernel,
                    UnfinishedItem("tasklet", func, f"CPU {cpu.nr}", "scheduled", "dropped", t),
                    f"{'hi ' if hi else ''}tasklet {func} still scheduled on CPU {cpu.nr}{why}; "
                    "dropped",
                )
        for base in (cpu.std_base, cpu.def_base):
            for bucket in list(base.buckets.values()):
                for timer in list(bucket):
                    if getattr(timer, "_kdefer_internal", False):
                        continue
                    if type(timer).__name__ == "_SleepTimer":
                        continue  # a task's own sleep: it ends with its task
                    _detach(timer)
                    func = symbol_name(timer.function)
                    name_item(
                        kernel,
                        UnfinishedItem("timer", func, f"CPU {cpu.nr}", "armed", "cancelled", timer),
                        f"timer {func} (expires {timer.expires}) on CPU {cpu.nr} still armed; "
                        "cancelled",
                    )
        while cpu.pending_irqs:
            irq = cpu.pending_irqs.popleft()
            if irq < 0:
                continue  # a system vector: what it would have run is named below
            name = kernel.irq_names.get(irq, "?")
            name_item(
                kernel,
                UnfinishedItem("irq", name, f"CPU {cpu.nr}", "pending", "dropped", irq),
                f"interrupt {irq} ({name}) pending on CPU {cpu.nr}; dropped",
            )
        _sweep_irq_work(kernel, cpu)
        pending = cpu.pending & ~_ITEM_VECTORS
        cpu.pending &= _ITEM_VECTORS
        while pending:
            low = pending & -pending
            pending ^= low
            nr = low.bit_length() - 1
            action = kernel.softirq_vec[nr]
            name = SOFTIRQ_NAMES[nr]
            name_item(
                kernel,
                UnfinishedItem("softirq", name, f"CPU {cpu.nr}", "pending", "dropped", action),
                f"softirq {name} ({symbol_name(action)}) pending on CPU {cpu.nr}; dropped",
            )
    st: Any = getattr(kernel, "_rcu_state", None)
    if st is not None:
        for nr, cbs in enumerate(st.cbs):
            while cbs:
                _gp, head, func = cbs.popleft()
                rwork = head[0] if isinstance(head, tuple) and head else None
                if isinstance(rwork, RcuWork):
                    work = rwork.work
                    if work._rcu_gp != head[1]:
                        continue  # a stale callback of a cancelled RCU work: it does nothing
                    work._rcu_gp = 0
                    work._pending = False
                    fname = symbol_name(work.func)
                    wq = _wq_name(rwork.wq)
                    name_item(
                        kernel,
                        UnfinishedItem(
                            "rcu work", fname, wq, "waiting for a grace period", "dropped", rwork
                        ),
                        f"rcu work {fname} for {wq} never ran (waiting for a grace period); "
                        "dropped",
                    )
                    continue
                fname = symbol_name(func)
                name_item(
                    kernel,
                    UnfinishedItem("rcu callback", fname, f"CPU {nr}", "pending", "dropped", head),
                    f"rcu callback {fname} on CPU {nr} never ran; dropped",
                )
        if st.timer._bucket is not None:
            _detach(st.timer)
        st.gp_active = False
    cpu_pending_rcu = 1 << RCU_SOFTIRQ
    for cpu in kernel.cpus:
        cpu.pending &= ~cpu_pending_rcu


def _sweep_kthreads(kernel: Kernel) -> None:
    report = _report(kernel)
    for task in list(kernel._tasks.values()):
        if task._exited or task.pid in report._tasks_named:
            continue
        report._tasks_named.add(task.pid)
        name = f"{task.comm}/{task.pid}"
        name_item(
            kernel,
            UnfinishedItem("kthread", name, f"CPU {task.cpu}", "running", "stopped", task),
            f"kthread {name} still running; stopped",
        )


def sweep(kernel: Kernel) -> None:
    """Take every queued, armed or scheduled item off its list and name it. Synchronous."""
    _sweep_workqueues(kernel)
    if getattr(kernel, "_kw_state", None) is not None:
        from ._kthread_worker import sweep_kthread_workers

        sweep_kthread_workers(kernel)  # before _sweep_cpus: their timers are named as items
    _sweep_cpus(kernel)
    _sweep_kthreads(kernel)
    kernel._drop_threadsafe_irqs(lambda irq, cpu, n: _irq_from_thread(kernel, irq, cpu, n))


def _irq_from_thread(kernel: Kernel, irq: int, cpu: int, count: int) -> None:
    """Interrupts another thread raised that were never delivered: one item each."""
    name = kernel.irq_names.get(irq, "?")
    for _ in range(count):
        name_item(
            kernel,
            UnfinishedItem("irq", name, f"CPU {cpu}", "raised from another thread", "dropped", irq),
            f"interrupt {irq} ({name}) raised from another thread for CPU {cpu}, never "
            "delivered; dropped",
        )


def begin_abort(kernel: Kernel, reason: Reason, detail: str) -> None:
    """
    Leave the kernel at once: nothing new starts, what is queued is named as not run.

    Idempotent. Synchronous: it runs between two checkpoints, so no kworker can take an item
    while it works. The caller then cancels the kernel's tasks.
    """
    if kernel._aborting:
        return
    kernel._aborting = True
    st: Any = getattr(kernel, "_wq_state", None)
    if st is not None:
        for wq in st.workqueues:
            wq._qpwq = [None] * len(wq._qpwq)  # every queueing takes the long way, and stops
    report = _report(kernel)
    if report.reason == "normal":
        report.reason = reason
    log_text(
        kernel,
        4,
        f"kdefer: shutdown: {detail}: running work is cancelled, nothing queued will run",
    )
    sweep(kernel)


def work_cancelled(worker: Worker, work: Work, func: object, wq: Workqueue) -> None:
    """
    A work function was ended by a cancellation (the kernel's tasks are being cancelled):
    name it once, as its kworker reports it, and make sure nothing else starts.
    """
    kernel = worker.kernel
    if not kernel._aborting:
        if kernel._panic is not None:
            begin_abort(kernel, "panic", "the kernel panicked")
        else:
            begin_abort(kernel, "cancelled", "the kernel's tasks were cancelled")
    fname = symbol_name(func)
    name_item(
        kernel,
        UnfinishedItem("work", fname, wq._name, "running", "cancelled", work),
        f"work {fname} on {wq._name} still running in {worker.comm}; cancelled",
    )


def drop_late_work(kernel: Kernel, work: Work, wq: Workqueue) -> None:
    """*work* (PENDING) was queued on *wq* after the kernel began to abort: it never runs."""
    work._pending = False
    func = symbol_name(work.func)
    name_item(
        kernel,
        UnfinishedItem("work", func, wq._name, "queued", "dropped", work),
        f"work {func} queued on {wq._name} after shutdown began; dropped",
    )


def finish(kernel: Kernel) -> None:
    """The last sweep (every kernel task has ended) and the summary line."""
    report = _report(kernel)
    if kernel._aborting:
        sweep(kernel)  # what cleanup code queued while the tasks unwound
    if report.items:
        kinds = Counter(item.kind for item in report.items)
        counts = ", ".join(f"{kind}: {n}" for kind, n in kinds.items())
        log_text(
            kernel,
            4,
            f"kdefer: shutdown: {len(report.items)} item{'s' if len(report.items) != 1 else ''} "
            f"did not run to completion ({counts})",
        )
    report._finished = True


def exit_reason(exc: BaseException | None, kernel: Kernel) -> tuple[Reason, str]:
    """The report's reason and the header's wording for leaving with *exc*."""
    if kernel._panic is not None:
        return "panic", "the kernel panicked"
    if exc is None:
        return "normal", "normal exit"
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled", "the block around the kernel was cancelled"
    return "exception", f"the block around the kernel raised {type(exc).__name__}"
