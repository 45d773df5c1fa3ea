"""Tasks, CPUs of the current context, and the preempt_count predicates.

Field rules (the kernel's legend, for an event loop):

* ``I``: set at creation, read-only after.
* ``A``: changed only in synchronous code between checkpoints, so atomic with respect to every
  other task of the loop.

Kernel invariant modelled: every context question (``in_interrupt()``, ``in_softirq()``...) is
answered from one integer, the running task's ``preempt_count``. Softirqs and hardirqs do not
have tasks of their own: they *borrow* the task that was running (the interrupted task, the task
calling ``local_bh_enable()``, or ``ksoftirqd``), exactly as in the kernel, so ``current()``
inside a tasklet is whoever was borrowed.

Threads. A kernel lives on one event loop, so on one OS thread (the loop's); its state is
changed only there. ``_current`` is a context variable, so it is unset in a thread started
with ``threading.Thread``: every API there ends in :func:`_cur` and a :class:`NoKernelError`
that says, when a kernel runs on another thread of this process, that this is a foreign
thread and names the two ways in (``Kernel.raise_irq_threadsafe()``,
``anyio.from_thread.run_sync(..., token=...)``). A thread started with a *copy* of the loop's
context (``anyio.to_thread.run_sync`` copies it) does see the kernel's task. ``_cur()`` does
not check the thread: it is on the hot paths (``tasklet_schedule``, ``mod_timer``,
``timer_delete``), and ``threading.get_ident()`` plus the comparison took it from 38 to
74 ns, and a ``tasklet_schedule()`` of a scheduled tasklet from 110 to 155 ns. The entry
points that are not hot check instead (:func:`check_loop_thread`: the ``Kernel`` methods,
``request_irq``, ``free_irq``); ``current_kernel()`` works in such a thread on purpose, so
that it can reach ``Kernel.raise_irq_threadsafe()``.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ._consts import (
    HARDIRQ_MASK,
    IRQ_MASK,
    NMI_MASK,
    SOFTIRQ_MASK,
    SOFTIRQ_OFFSET,
    TASK_RUNNING,
)
from ._exceptions import NoKernelError

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "TaskStruct",
    "current",
    "current_kernel",
    "in_atomic",
    "in_hardirq",
    "in_interrupt",
    "in_nmi",
    "in_serving_softirq",
    "in_softirq",
    "in_task",
    "irqs_disabled",
    "num_online_cpus",
    "preempt_count",
    "smp_processor_id",
]


class TaskStruct:
    """
    ``task_struct``: a kernel task (a kthread, ``ksoftirqd/N``, the idle task, or your code).

    Attributes:
        comm: The task's name, as ``ps`` shows it (``ksoftirqd/0``).
        pid: Its process id.
        cpu: The CPU it runs on.
        preempt_count: Its ``preempt_count``: the context it is in right now.
        state: ``TASK_RUNNING``, ``TASK_INTERRUPTIBLE`` or ``TASK_UNINTERRUPTIBLE``.
        policy: Its scheduling policy: ``SCHED_NORMAL`` (0), or ``SCHED_FIFO`` (1) for an
            irq thread.
        rt_priority: Its real-time priority (50 for an irq thread; 0 for ``SCHED_NORMAL``).

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__weakref__",
        "_exit_code",
        "_exit_waiters",
        "_exited",
        "_hung_reported",
        "_parked",
        "_sleep_since",
        "_wake_event",
        "allowed_signals",
        "comm",
        "cpu",
        "data",
        "flags",
        "irqs_off",
        "is_kthread",
        "kernel",
        "migration_disabled",
        "need_resched",
        "owner",
        "pid",
        "policy",
        "preempt_count",
        "rt_priority",
        "should_park",
        "should_stop",
        "sigpending",
        "state",
    )

    def __init__(self, kernel: Kernel, comm: str, pid: int, cpu: int, *, kthread: bool) -> None:
        self.kernel = kernel  # I
        self.comm = comm  # A
        self.pid = pid  # I
        self.cpu = cpu  # A: the CPU it runs on
        self.is_kthread = kthread  # I
        self.preempt_count = 0  # A
        self.irqs_off = 0  # A: local_irq_save() nesting while this task runs
        self.flags = 0  # A: PF_* bits (PF_NO_SETAFFINITY: a per-CPU thread, kthread_bind)
        self.migration_disabled = 0  # A: migrate_disable() nesting
        #: A: TIF_NEED_RESCHED as the trace shows it: 0, or the TRACE_FLAG_* bits a wake-up
        #: that must preempt this running task set (see _sched.sched_wakeup)
        self.need_resched = 0
        self.policy = 0  # A: SCHED_NORMAL, or SCHED_FIFO for irq threads
        self.rt_priority = 0  # A: 1 to 99 for SCHED_FIFO tasks
        self.state = TASK_RUNNING  # A
        self.sigpending = 0  # A: bit mask of pending signals
        self.allowed_signals = 0  # A: kthreads only get the signals they allow
        self.should_stop = False  # A: kthread_stop() was called
        self.should_park = False  # A: kthread_park() was called, kthread_unpark() not yet
        self._parked = False  # A: asleep in kthread_parkme() (the kernel's `parked` completion)
        self.data: Any = None  # I: the kthread's data argument
        self._wake_event: Any = None  # A: what wakes this task while it sleeps (_park.py)
        self._sleep_since = 0  # A: jiffies when an uninterruptible sleep began
        self._hung_reported = False  # A
        self._exited = False  # A
        self._exit_code: int | None = None  # A
        self._exit_waiters: Any = None  # A
        #: A: the event-loop task (asyncio.Task / trio Task) this kernel task is, once known
        self.owner: object = None

    def __repr__(self) -> str:
        return f"<TaskStruct {self.comm}:{self.pid} cpu={self.cpu} preempt_count={self.preempt_count:#x}>"


#: ``PF_NO_SETAFFINITY``: userland may not change the task's CPU (a kthread bound to one CPU:
#: ``kthread_bind``, ``ksoftirqd``, per-CPU kworkers); it may use ``smp_processor_id()``
#: while preemptible.
PF_NO_SETAFFINITY = 0x04000000

#: The running kernel task of this context (one per anyio task; inherited by child tasks).
_current: contextvars.ContextVar[TaskStruct | None] = contextvars.ContextVar(
    "kdefer_current_task", default=None
)
current_task_var = _current


def own_task(task: TaskStruct) -> TaskStruct:
    """
    The kernel task of the running event-loop task, made on first need.

    anyio tasks you start inside a kernel inherit their parent's kernel task through the
    context; the first time one of them is about to sleep it becomes a task of its own (same
    ``comm``, a new pid), so that two event-loop tasks never share one sleep and wake-up.
    """
    ident = task.kernel._task_ident()
    owner = task.owner
    if owner is ident:
        return task
    if owner is None:
        task.owner = ident
        return task
    child = TaskStruct(
        task.kernel, task.comm, task.kernel._alloc_pid(), task.cpu, kthread=task.is_kthread
    )
    child.owner = ident
    child.allowed_signals = task.allowed_signals
    _current.set(child)
    return child


def claim(task: TaskStruct) -> None:
    """Record that the running event-loop task is *task* (at the start of kernel tasks)."""
    task.owner = task.kernel._task_ident()


def _cur() -> TaskStruct:
    task = _current.get()
    if task is None:
        return attach()  # a task the kernel has not seen: a user task entering the kernel
    return task


# -- tasks from outside the kernel's context ----------------------------------------------------


def loop_key() -> object:
    """What identifies the event loop of the calling task (``None`` if none runs here)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
    return None


def _task_name() -> str:
    """The name of the running event-loop task (what becomes its ``comm``)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is not None:
            return str(task.get_name())
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return str(trio.lowlevel.current_task().name)
        except RuntimeError:
            pass
    return "task"


def _kernels_here(key: object) -> list[Kernel]:
    """The running kernels whose event loop is *key*."""
    found = []
    for ref in _booted_kernels[:]:
        kernel = ref()
        if kernel is not None and not kernel._halted and kernel._loop_key is key:
            found.append(kernel)
    return found


def user_task(kernel: Kernel) -> TaskStruct:
    """
    A task struct for the running event-loop task, entering *kernel* as a user task making a
    system call: process context (``preempt_count`` 0), a pid of its own, ``comm`` from the
    event-loop task's name (at most 15 characters, ``TASK_COMM_LEN``), on the CPU the
    scheduler gives a new task (round-robin here, as new tasks spread over idle CPUs).
    """
    comm = _task_name()[:15]
    cpu = kernel._next_user_cpu
    kernel._next_user_cpu = (cpu + 1) % kernel.nr_cpus
    task = TaskStruct(kernel, comm, kernel._alloc_pid(), cpu, kthread=False)
    task.owner = kernel._task_ident()
    kernel._user_tasks.add(task)
    return task


def attach() -> TaskStruct:
    """
    The calling task has no kernel task in its context: if exactly one kernel runs on this
    event loop, enter it as a user task (bound to this event-loop task from now on);
    otherwise a :class:`NoKernelError` that says why.
    """
    key = loop_key()
    if key is not None:
        kernels = _kernels_here(key)
        if len(kernels) == 1:
            task = user_task(kernels[0])
            _current.set(task)
            return task
        if kernels:
            raise NoKernelError(
                f"{len(kernels)} Kernels run on this event loop, and this task belongs to "
                "none of them: bind it to one with `with kernel.enter():` (or call the kernel "
                "from a task started inside its `async with Kernel():`)"
            )
    raise no_kernel_error()


#: A: the kernels booted in this process (weakly held; the halted ones are pruned at boot),
#: for the foreign-thread hint of :func:`no_kernel_error`
_booted_kernels: list[weakref.ref[Kernel]] = []


def register_kernel(kernel: Kernel) -> None:
    """At boot, on the loop's thread: remember *kernel* (for :func:`foreign_thread_hint`, and
    for :func:`attach`, which finds the kernel of a task's event loop)."""
    kernel._loop_key = loop_key()
    live = [ref for ref in _booted_kernels if (k := ref()) is not None and not k._halted]
    live.append(weakref.ref(kernel))
    _booted_kernels[:] = live  # one slice assignment: a reader in another thread sees either


def thread_name(ident: int | None) -> str:
    """The name of the thread *ident*, for messages."""
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return f"thread {ident}"


def foreign_thread_hint() -> str | None:
    """
    The explanation for a call made on a thread other than the loop's of a running kernel,
    or ``None`` if no kernel of this process runs on another thread.
    """
    me = threading.get_ident()
    for ref in _booted_kernels[:]:  # a copy: another thread may replace the list
        kernel = ref()
        if kernel is None or kernel._halted or kernel._loop_thread in (None, me):
            continue
        where = (
            "this task runs on another event loop"
            if loop_key() is not None
            else "this thread runs no event loop"
        )
        return (
            f"this is a foreign thread ({thread_name(me)!r}; {where}), and the running Kernel "
            f"lives on the event loop of thread {thread_name(kernel._loop_thread)!r}, where every "
            "kernel API must be called. From this thread, raise interrupts with "
            "Kernel.raise_irq_threadsafe(irq), or run a function on the loop with "
            "anyio.from_thread.run_sync(fn, *args, token=token) (token = "
            "anyio.lowlevel.current_token(), taken on the loop)"
        )
    return None


def no_kernel_error(api: str | None = None) -> NoKernelError:
    """
    The :class:`NoKernelError` for a call with no kernel task in its context; *api* names
    the function (``"msleep()"``) where the message should.
    """
    head = (
        f"{api} needs a running kdefer_async Kernel, and none is running in this context"
        if api is not None
        else "no kdefer_async Kernel is running in this context"
    )
    hint = foreign_thread_hint()
    if hint is not None:
        return NoKernelError(f"{head}: {hint}")
    return NoKernelError(
        f"{head}: call kernel APIs inside `async with Kernel():` or from kdefer_async.run()"
    )


def check_loop_thread(kernel: Kernel, func: str, instead: str | None = None) -> None:
    """
    Raise :class:`RuntimeError` unless called on the thread of *kernel*'s event loop (or
    before it boots). *instead* names the thread-safe way, if there is one.
    """
    loop = kernel._loop_thread
    if loop is None or loop == threading.get_ident():
        return
    alternative = (
        f"use {instead} from other threads"
        if instead is not None
        else "run it there with anyio.from_thread.run_sync(fn, *args, token=token) "
        "(token = anyio.lowlevel.current_token(), taken on the loop)"
    )
    raise RuntimeError(
        f"{func}() called from thread {thread_name(threading.get_ident())!r}, but this Kernel "
        f"runs on the event loop of thread {thread_name(loop)!r} and its state may only be "
        f"changed there: {alternative}"
    )


def current() -> TaskStruct:
    """
    Return the running kernel task (``current``).

    Inside a softirq or hardirq this is the borrowed task, as in the kernel.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    return _cur()


def current_kernel() -> Kernel:
    """
    Return the :class:`~kdefer_async.Kernel` of the running context.

    Raises:
        NoKernelError: (a `RuntimeError`) if no Kernel runs in this context.

    .. versionadded:: 0.1
    """
    return _cur().kernel


def smp_processor_id() -> int:
    """
    Return the number of the CPU this code runs on.

    With ``Kernel(debug_preempt=True)`` (``CONFIG_DEBUG_PREEMPT``) a call in preemptible code,
    where the task could move to another CPU right after, reports ``BUG: using
    smp_processor_id() in preemptible [00000000] code: comm/pid``, the caller and a stack dump
    (rate-limited: 10 per 5 s), except in per-CPU threads (``ksoftirqd``, bound kworkers,
    ``kthread_bind`` threads) and with migration disabled. ``get_cpu()`` and
    ``raw_smp_processor_id()`` never check.

    .. versionadded:: 0.1
    """
    task = _cur()
    if task.kernel.debug_preempt and not (task.preempt_count or task.irqs_off):
        from ._preempt import check_preemption_disabled

        check_preemption_disabled(task, "smp_processor_id", "")
    return task.cpu


def num_online_cpus() -> int:
    """
    Return the number of CPUs of the running kernel.

    .. versionadded:: 0.1
    """
    return _cur().kernel.nr_cpus


def preempt_count() -> int:
    """
    Return the running task's ``preempt_count`` (see kernel-semantics §1.2 for its layout).

    .. versionadded:: 0.1
    """
    return _cur().preempt_count


def in_nmi() -> bool:
    """``in_nmi()``: the NMI field of preempt_count is non-zero."""
    return bool(_cur().preempt_count & NMI_MASK)


def in_hardirq() -> bool:
    """``in_hardirq()``: inside a hard interrupt handler (true inside NMIs too)."""
    return bool(_cur().preempt_count & HARDIRQ_MASK)


def in_serving_softirq() -> bool:
    """``in_serving_softirq()``: a softirq handler (tasklet, timer, BH work) is running."""
    return bool(_cur().preempt_count & SOFTIRQ_OFFSET)


def in_softirq() -> bool:
    """``in_softirq()``: serving a softirq *or* bottom halves are disabled."""
    return bool(_cur().preempt_count & SOFTIRQ_MASK)


def in_interrupt() -> bool:
    """
    ``in_interrupt()``: NMI, hardirq or softirq context, **including BH-disabled sections**.

    That last part surprises people; it is the kernel's definition.
    """
    return bool(_cur().preempt_count & IRQ_MASK)


def in_task() -> bool:
    """``in_task()``: not NMI, not hardirq, not serving a softirq (BH-disabled is still a task)."""
    return not (_cur().preempt_count & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET))


def in_atomic() -> bool:
    """``in_atomic()``: ``preempt_count() != 0``."""
    return _cur().preempt_count != 0


def irqs_disabled() -> bool:
    """``irqs_disabled()``: local interrupts are off (inside hardirq or irqsave sections)."""
    task = _cur()
    return bool(task.irqs_off or task.preempt_count & HARDIRQ_MASK)
