"""kthread_worker: one dedicated kernel thread running ``kthread_work`` items one at a time.

Field rules (the kernel's legend, for an event loop):

* ``I``: set at creation, read-only after.
* ``A``: changed only in synchronous code, so atomic with respect to the loop's other tasks
  (the kernel's ``worker->lock``, a raw spinlock taken with interrupts off).
* ``W``: touched only by the worker's own thread.

Kernel invariants modelled (kernel/kthread.c, include/linux/kthread.h):

* A worker is a kthread running ``kthread_worker_fn()``: it takes the first item of its list,
  records it as ``current_work``, calls ``fn(work)`` in task context (it may sleep), and only
  then takes the next. Items run strictly one at a time, in the order they were queued, even
  when one sleeps. An item is pending from a successful queueing until it is taken off the
  list, so an item queued again while it runs runs once more afterwards.
* ``kthread_create_worker()`` creates the thread without waking it (6.14);
  ``kthread_run_worker()`` wakes it too. Queueing wakes an idle worker's thread in any case
  (``kthread_insert_work()`` wakes the thread whenever no item is current), so the first
  queued item starts a worker that was only created.
* Queueing works from any context, hardirq included (plain functions, never a checkpoint).
  It fails while the item is pending (queued, or its delayed timer armed) or while a cancel is
  in progress. An item used on a second worker is a WARN_ON_ONCE, and is queued there all
  the same.
* A delayed item's timer is an ``IRQSAFE`` timer on the jiffies wheel of the CPU that armed
  it; its expiry (TIMER softirq) moves the item to the tail of the list. A delay of 0 queues at
  once, without the timer.
* ``kthread_flush_work()`` queues a barrier right behind the item if it is queued, at the head
  of the list if it runs, and returns at once otherwise. ``kthread_flush_worker()`` queues a
  barrier at the tail. A barrier is an ordinary item whose function completes the flush.
* ``kthread_cancel_*_sync()`` delete the timer, take the item off the list and, if it runs,
  wait for it while refusing queue attempts. ``kthread_destroy_worker()`` flushes, stops the
  thread, and WARNs about items still armed or queued.
* Flushing or cancelling an item from its own function, or flushing or destroying a worker from
  one of its items, hangs the kernel; it is reported as a self-deadlock
  (:class:`KernelBug`).

How the worker runs (the hot path): its thread parks with the kernel's low-level parker
(_park.py) when the list is empty; a plain function is called and an ``async def`` one's
coroutine awaited right in the loop, so an item costs no task and no Event, and, unless it
sleeps, no trip through the event loop. Like a kworker it lets the rest of the loop run after
``RESCHED_ITEMS`` items or ``RESCHED_S`` seconds (the kernel's ``cond_resched()``).

Shutdown: on a normal exit of the kernel, armed delayed items are cancelled and named, and
every running worker runs what is queued (for at most ``shutdown_timeout``); then what is left
(the items of a parked or destroyed worker, items queued during an abort) is named in dmesg and
:attr:`Kernel.shutdown_report`, as every other deferred item is.

Guarantees:
    * test_queue_while_pending_returns_false: a pending item is not queued twice.
    * test_runs_in_queue_order_one_at_a_time: FIFO, never two at once, even when one sleeps.
    * test_requeue_while_running_runs_again: no overlap with itself.
    * test_cancel_sync_stops_self_requeueing: afterwards neither pending nor running.
"""

from __future__ import annotations

import inspect
import time
import types
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._check import bad_type, bad_value, check_callback, check_instance, check_int, check_str
from ._consts import LONG_MAX, TASK_INTERRUPTIBLE, TASK_NORMAL, TASK_RUNNING, TIMER_IRQSAFE
from ._context import PF_NO_SETAFFINITY, TaskStruct, _cur, _current
from ._exceptions import KernelPanic
from ._kthread import (
    KthreadExit as KthreadExit,
    kthread_comm,
    kthread_complete_and_exit as kthread_complete_and_exit,
    kthread_park as kthread_park,
    kthread_parkme as kthread_parkme,
    kthread_setup,
    kthread_should_park as kthread_should_park,
    kthread_stop,
    kthread_unpark as kthread_unpark,
)
from ._printk import record_oops, symbol_name, warn, warn_once
from ._sched import sched_out, sched_resume, sched_wakeup, wake_up_process
from ._sleeping import sleeping_checked
from ._timer import TimerList, _detach, _enqueue, timer_setup
from ._trace import (
    SCHED_KTHREAD_WORK_EXECUTE_END,
    SCHED_KTHREAD_WORK_EXECUTE_START,
    SCHED_KTHREAD_WORK_QUEUE_WORK,
    SWITCH_STATE_S,
    emit,
    emit_locked,
    site_task,
)
from ._wait import wait_var_event, wake_up_var
from ._workqueue import RESCHED_ITEMS, RESCHED_LOOK, RESCHED_S

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "KTW_FREEZABLE",
    "KthreadDelayedWork",
    "KthreadWork",
    "KthreadWorker",
    "kthread_cancel_delayed_work_sync",
    "kthread_cancel_work_sync",
    "kthread_create_worker",
    "kthread_create_worker_on_cpu",
    "kthread_destroy_worker",
    "kthread_flush_work",
    "kthread_flush_worker",
    "kthread_init_delayed_work",
    "kthread_init_work",
    "kthread_mod_delayed_work",
    "kthread_queue_delayed_work",
    "kthread_queue_work",
    "kthread_run_worker",
    "kthread_run_worker_on_cpu",
    "kthread_worker_fn",
    "kthread_worker_shutdown",
    "sweep_kthread_workers",
]

#: ``KTW_FREEZABLE``: the worker's thread is freezable (accepted; this kernel has no freezer
#: for kthreads).
KTW_FREEZABLE = 1
#: ``unsigned int flags``.
_UINT_MAX = (1 << 32) - 1

KthreadWorkFunc = Callable[[Any], Any]


# --- the objects -------------------------------------------------------------------------------


class KthreadWork:
    """
    ``struct kthread_work``: ``fn(work)`` runs in a kthread_worker's thread; it may be
    ``async def`` (it may sleep) or a plain function.

    ``KthreadWork()`` is uninitialised (use :func:`kthread_init_work`); ``KthreadWork(fn)`` is
    initialised.

    Attributes:
        func: The function.
        worker: The worker it was last queued on (``None`` if never).

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "_canceling", "_dwork", "_pending", "func", "worker")

    def __init__(self, fn: KthreadWorkFunc | None = None) -> None:
        if fn is not None:
            _check_fn(fn, "KthreadWork")
        self.func: KthreadWorkFunc | None = fn  # A
        self.worker: KthreadWorker | None = None  # A: work->worker
        #: A: on the worker's list or its delayed list (the kernel's !list_empty(&work->node))
        self._pending = False
        self._canceling = 0  # A: cancels in progress: queueing fails meanwhile
        self._dwork: KthreadDelayedWork | None = None  # I

    def __repr__(self) -> str:
        fn = symbol_name(self.func) if self.func is not None else None
        return f"<KthreadWork {fn}{' pending' if self._pending else ''}>"


class KthreadDelayedWork:
    """
    ``struct kthread_delayed_work``: a :class:`KthreadWork` (``.work``) and the ``IRQSAFE``
    timer (``.timer``) that queues it on its worker when it expires.

    ``KthreadDelayedWork()`` is uninitialised (use :func:`kthread_init_delayed_work`);
    ``KthreadDelayedWork(fn)`` is initialised.

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "timer", "work")

    def __init__(self, fn: KthreadWorkFunc | None = None) -> None:
        if fn is not None:
            _check_fn(fn, "KthreadDelayedWork")
        self.work = KthreadWork()  # I
        self.work._dwork = self
        self.timer = _KDWorkTimer(self)  # I
        if fn is not None:
            _init_delayed(self, fn)

    def __repr__(self) -> str:
        armed = " armed" if self.timer._bucket is not None else ""
        return f"<KthreadDelayedWork {self.work!r}{armed}>"


class _KDWorkTimer(TimerList):
    __slots__ = ("kdwork",)

    def __init__(self, kdwork: KthreadDelayedWork) -> None:
        super().__init__()
        self.kdwork = kdwork


class KthreadWorker:
    """
    ``struct kthread_worker``: a kernel thread (``.task``) and its list of items.

    Made by :func:`kthread_create_worker` or :func:`kthread_run_worker` (and their ``_on_cpu``
    forms); a bare ``KthreadWorker()`` has no thread and takes no items.

    Attributes:
        task: The worker's thread (``None`` once it has exited).
        current_work: The item it runs now, if any.
        flags: The creation flags (``KTW_FREEZABLE``).

    .. versionadded:: 0.2
    """

    __slots__ = (
        "__weakref__",
        "_delayed",
        "_destroyed",
        "_kernel",
        "_list",
        "_lost",
        "_name",
        "current_work",
        "flags",
        "task",
    )

    def __init__(self) -> None:
        self.flags = 0  # I
        self.task: TaskStruct | None = None  # A: worker->task; None once the thread exited
        self.current_work: KthreadWork | None = None  # W (read by the queueing side)
        #: A: work_list; None for a worker never set up, or destroyed
        self._list: deque[KthreadWork] | None = None
        #: A: delayed_work_list: the items whose timer is armed (and any barrier that a
        #: flush linked behind one of them: it never runs, as in the kernel)
        self._delayed: dict[KthreadWork, None] = {}
        self._kernel: Kernel | None = None  # I
        self._name = ""  # I: its thread's name
        self._destroyed = False  # A
        #: A: items left on the list of a destroyed worker (named at shutdown)
        self._lost: list[KthreadWork] = []

    def __repr__(self) -> str:
        if self._list is None:
            state = "destroyed" if self._destroyed else "uninitialised"
            return f"<KthreadWorker {self._name or '?'} {state}>"
        cur = f" running {symbol_name(self.current_work.func)}" if self.current_work else ""
        return f"<KthreadWorker {self._name} queued={len(self._list)}{cur}>"


class _Flush(KthreadWork):
    """``struct kthread_flush_work``: a barrier item whose function completes the flush."""

    __slots__ = ("done", "kernel")

    def __init__(self, kernel: Kernel) -> None:
        super().__init__()
        self.func = _flush_fn
        self.done = False
        self.kernel = kernel


def _flush_fn(work: KthreadWork) -> None:
    fwork: _Flush = work  # type: ignore[assignment]
    fwork.done = True
    wake_up_var(fwork.kernel, fwork)


class _KWState:
    """Per-kernel kthread_worker state: the workers made, for the shutdown."""

    __slots__ = ("workers",)

    def __init__(self) -> None:
        self.workers: dict[KthreadWorker, None] = {}  # A: in creation order


def _kw_state(kernel: Kernel) -> _KWState:
    st: _KWState | None = getattr(kernel, "_kw_state", None)
    if st is None:
        st = _KWState()
        kernel._kw_state = st  # type: ignore[attr-defined]
    return st


# --- argument checks (the wording of _check.py) -------------------------------------------------


def _check_fn(fn: object, func: str) -> None:
    check_callback(
        fn, func, "fn", shape="fn(work)", nargs=1, kind="any", what="a kthread work function"
    )


def _check_work(work: object, func: str, *, initialised: bool = True) -> KthreadWork:
    if not isinstance(work, KthreadWork) or isinstance(work, _Flush):
        err = bad_type(func, "work", "a KthreadWork", work)
        if isinstance(work, KthreadDelayedWork):
            raise TypeError(f"{err} (pass its .work, or use the delayed-work function)")
        raise err
    if initialised and work.func is None:
        raise bad_value(func, "work", "a KthreadWork initialised by kthread_init_work", work)
    return work


def _check_dwork(dwork: object, func: str, *, initialised: bool = True) -> KthreadDelayedWork:
    if not isinstance(dwork, KthreadDelayedWork):
        raise bad_type(func, "dwork", "a KthreadDelayedWork", dwork)
    if initialised and dwork.work.func is None:
        raise bad_value(
            func, "dwork", "a KthreadDelayedWork initialised by kthread_init_delayed_work", dwork
        )
    return dwork


def _check_worker(worker: object, func: str) -> KthreadWorker:
    check_instance(worker, KthreadWorker, func, "worker")
    assert isinstance(worker, KthreadWorker)
    if worker._list is None:
        what = (
            "a KthreadWorker not destroyed"
            if worker._destroyed
            else "a KthreadWorker made by kthread_create_worker"
        )
        raise bad_value(func, "worker", what, worker)
    return worker


def _check_delay(delay: object, func: str) -> int:
    if type(delay) is int and 0 <= delay <= LONG_MAX:
        return delay
    return check_int(
        delay, func, "delay", lo=0, hi=LONG_MAX, expected="a number of jiffies from 0 to LONG_MAX"
    )


def _check_flags(flags: object, func: str) -> int:
    return check_int(flags, func, "flags", lo=0, hi=_UINT_MAX)


# --- creating workers -------------------------------------------------------------------------


def _create(func: str, cpu: int | None, flags: int, comm: str) -> KthreadWorker:
    """``__kthread_create_worker_on_node()``: the worker and its thread, not woken."""
    creator = _cur()
    kernel = creator.kernel
    worker = KthreadWorker()
    worker.flags = flags
    worker._list = deque()
    worker._kernel = kernel
    worker._name = comm
    task = TaskStruct(
        kernel, comm, kernel._alloc_pid(), creator.cpu if cpu is None else cpu, kthread=True
    )
    if cpu is not None:
        task.flags |= PF_NO_SETAFFINITY  # kthread_bind(): a per-CPU thread from now on
    kthread_setup(task, kthread_worker_fn, worker)
    worker.task = task
    _kw_state(kernel).workers[worker] = None
    return worker


def _unbound_args(
    func: str, flags: object, namefmt: object, args: tuple[object, ...]
) -> tuple[int, str]:
    nflags = _check_flags(flags, func)
    check_str(namefmt, func, "namefmt")
    assert isinstance(namefmt, str)
    try:
        comm = kthread_comm(namefmt, *args)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}(): the arguments do not match the name format: {exc}") from None
    return nflags, comm


def _cpu_args(func: str, cpu: object, flags: object, namefmt: object) -> tuple[int, int, str]:
    from ._work import check_cpu

    ncpu = check_cpu(_cur().kernel, cpu, func)
    nflags = _check_flags(flags, func)
    check_str(namefmt, func, "namefmt")
    assert isinstance(namefmt, str)
    try:
        comm = kthread_comm(namefmt, ncpu)
    except (TypeError, ValueError):
        raise bad_value(
            func, "namefmt", 'a name format that takes the CPU number, such as "name/%u"', namefmt
        ) from None
    return ncpu, nflags, comm


def kthread_create_worker(flags: int, namefmt: str, *args: object) -> KthreadWorker:
    """
    Create a kthread_worker whose thread is named from *namefmt* % *args*; the thread is not
    woken (6.14): :func:`kthread_run_worker` wakes it, and so does the first queued item.

    Raises:
        TypeError: *flags* is not an ``int``; *namefmt* is not a ``str`` or does not match
            *args*.
        ValueError: *flags* does not fit an ``unsigned int``.

    Context:
        Task context.

    .. versionadded:: 0.2
    """
    nflags, comm = _unbound_args("kthread_create_worker", flags, namefmt, args)
    return _create("kthread_create_worker", None, nflags, comm)


def kthread_run_worker(flags: int, namefmt: str, *args: object) -> KthreadWorker:
    """
    Create a kthread_worker and wake its thread (``kthread_run_worker()``, 6.14).

    Raises:
        TypeError, ValueError: as :func:`kthread_create_worker`.

    Context:
        Task context.

    .. versionadded:: 0.2
    """
    nflags, comm = _unbound_args("kthread_run_worker", flags, namefmt, args)
    worker = _create("kthread_run_worker", None, nflags, comm)
    assert worker.task is not None
    wake_up_process(worker.task)
    return worker


def kthread_create_worker_on_cpu(cpu: int, flags: int, namefmt: str) -> KthreadWorker:
    """
    Create a kthread_worker bound to CPU *cpu*; its thread's name is *namefmt* with the CPU
    number filled in (``"name/%u"``, 6.14). The thread is not woken (see
    :func:`kthread_create_worker`).

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: *cpu* is not one of the kernel's CPUs; *flags* does not fit an
            ``unsigned int``; *namefmt* does not take exactly the CPU number.

    Context:
        Task context.

    .. versionadded:: 0.2
    """
    ncpu, nflags, comm = _cpu_args("kthread_create_worker_on_cpu", cpu, flags, namefmt)
    return _create("kthread_create_worker_on_cpu", ncpu, nflags, comm)


def kthread_run_worker_on_cpu(cpu: int, flags: int, namefmt: str) -> KthreadWorker:
    """
    :func:`kthread_create_worker_on_cpu`, and wake the thread.

    Raises:
        TypeError, ValueError: as :func:`kthread_create_worker_on_cpu`.

    Context:
        Task context.

    .. versionadded:: 0.2
    """
    ncpu, nflags, comm = _cpu_args("kthread_run_worker_on_cpu", cpu, flags, namefmt)
    worker = _create("kthread_run_worker_on_cpu", ncpu, nflags, comm)
    assert worker.task is not None
    wake_up_process(worker.task)
    return worker


# --- initialising items ----------------------------------------------------------------------


def _init_work(work: KthreadWork, fn: KthreadWorkFunc, func: str) -> None:
    if work._pending:
        # the kernel's memset() of a queued item corrupts the worker's list
        raise bad_value(func, "work", "a KthreadWork that is not pending", work)
    work.func = fn
    work.worker = None
    work._canceling = 0


def _init_delayed(dwork: KthreadDelayedWork, fn: KthreadWorkFunc) -> None:
    work = dwork.work
    work.func = fn
    work.worker = None
    work._canceling = 0
    timer_setup(dwork.timer, kthread_delayed_work_timer_fn, TIMER_IRQSAFE)


def kthread_init_work(work: KthreadWork, fn: KthreadWorkFunc) -> None:
    """
    Initialise *work* to run ``fn(work)``: an ``async def`` or plain function.

    Raises:
        TypeError: *work* is not a :class:`KthreadWork`; *fn* is not a function callable as
            ``fn(work)``.
        ValueError: *work* is pending or running (re-initialising it would corrupt the list).

    .. versionadded:: 0.2
    """
    _check_work(work, "kthread_init_work", initialised=False)
    _check_fn(fn, "kthread_init_work")
    _init_work(work, fn, "kthread_init_work")


def kthread_init_delayed_work(dwork: KthreadDelayedWork, fn: KthreadWorkFunc) -> None:
    """
    Initialise *dwork* to run ``fn(work)`` after a delay; its timer is ``TIMER_IRQSAFE``.

    Raises:
        TypeError: *dwork* is not a :class:`KthreadDelayedWork`; *fn* is not a function
            callable as ``fn(work)``.
        ValueError: *dwork* is pending or running.

    .. versionadded:: 0.2
    """
    _check_dwork(dwork, "kthread_init_delayed_work", initialised=False)
    _check_fn(fn, "kthread_init_delayed_work")
    if dwork.work._pending:
        raise bad_value(
            "kthread_init_delayed_work", "dwork", "a KthreadDelayedWork that is not pending", dwork
        )
    _init_delayed(dwork, fn)


# --- queueing ----------------------------------------------------------------------------------


def _wake(worker: KthreadWorker) -> None:
    """``wake_up_process(worker->task)`` from ``kthread_insert_work()``."""
    task = worker.task
    if task is None:
        return
    token = task._wake_event
    if token is not None:
        if task.state & TASK_NORMAL:
            if task.kernel._trace_on:
                sched_wakeup(task)
            task.state = TASK_RUNNING
            task._wake_event = None
            task.kernel._parker.unpark(token)
    elif task in task.kernel._kthread_starts:
        wake_up_process(task)  # created, never woken: it starts now


def _sanity(worker: KthreadWorker, work: KthreadWork) -> None:
    """``kthread_insert_work_sanity_check()``: an item belongs to one worker."""
    other = work.worker
    if other is not None and other is not worker:
        warn_once(("kthread_insert_work_sanity_check", "worker"))


def _insert(worker: KthreadWorker, work: KthreadWork, dq: deque[KthreadWork]) -> None:
    """``kthread_insert_work()`` at the tail of *dq*, the worker's list."""
    _sanity(worker, work)
    work._pending = True
    work.worker = worker
    dq.append(work)
    kernel = worker._kernel
    if kernel is not None and kernel._trace_on:
        trace_queue(kernel, worker, work)
    if worker.current_work is None:
        _wake(worker)


def trace_queue(kernel: Kernel, worker: KthreadWorker, work: KthreadWork) -> None:
    """``sched_kthread_work_queue_work`` in ``kthread_insert_work()``, under the worker's raw
    spinlock with interrupts saved."""
    task = site_task(kernel, 0)
    emit_locked(kernel, task, SCHED_KTHREAD_WORK_QUEUE_WORK, work, work.func, worker)


def _queue_args(worker: object, work: object, func: str) -> tuple[KthreadWorker, KthreadWork]:
    _cur()
    return _check_worker(worker, func), _check_work(work, func)


def kthread_queue_work(worker: KthreadWorker, work: KthreadWork) -> bool:
    """
    Queue *work* at the tail of *worker*'s list; wake the worker's thread if it is idle.

    Returns:
        ``False`` if *work* is already pending (queued, or its delayed timer armed) or being
        cancelled; ``True`` otherwise (also while it runs: it then runs again afterwards).

    Raises:
        TypeError: *worker* is not a :class:`KthreadWorker`, *work* not a
            :class:`KthreadWork`.
        ValueError: *worker* was not made by ``kthread_create_worker`` or was destroyed;
            *work* was never initialised.

    Context:
        Any context (hardirq included); never sleeps.

    .. versionadded:: 0.2
    """
    if (
        type(worker) is not KthreadWorker
        or type(work) is not KthreadWork
        or _current.get() is None
        or work.func is None
    ):
        _queue_args(worker, work, "kthread_queue_work")
    dq = worker._list
    if dq is None:
        _check_worker(worker, "kthread_queue_work")
        raise AssertionError  # pragma: no cover - the check raises
    if work._pending or work._canceling:
        return False
    other = work.worker
    if other is not worker:
        if other is not None:
            warn_once(("kthread_insert_work_sanity_check", "worker"))
        work.worker = worker
    work._pending = True
    dq.append(work)
    kernel = worker._kernel
    if kernel is not None and kernel._trace_on:
        trace_queue(kernel, worker, work)
    if worker.current_work is None:
        _wake(worker)
    return True


def kthread_delayed_work_timer_fn(timer: TimerList) -> None:
    """
    The timer function of a :class:`KthreadDelayedWork`: move the item to the tail of its
    worker's list (unless a cancel is in progress). Runs in the TIMER softirq.

    .. versionadded:: 0.2
    """
    if not isinstance(timer, _KDWorkTimer):
        raise bad_type(
            "kthread_delayed_work_timer_fn", "timer", "a KthreadDelayedWork's timer", timer
        )
    work = timer.kdwork.work
    worker = work.worker
    if worker is None:
        warn_once(("kthread_delayed_work_timer_fn", "worker"))  # re-initialised while armed
        return
    if work in worker._delayed:
        del worker._delayed[work]
    else:
        warn_once(("kthread_delayed_work_timer_fn", "node"))  # cancelled the wrong way
    work._pending = False
    if work._canceling:
        return
    dq = worker._list
    if dq is None:
        work._pending = True
        worker._lost.append(work)  # its worker was destroyed (the kernel: freed memory)
        return
    _insert(worker, work, dq)


def _queue_delayed(worker: KthreadWorker, dwork: KthreadDelayedWork, delay: int) -> None:
    """``__kthread_queue_delayed_work()``."""
    work = dwork.work
    dq = worker._list
    assert dq is not None
    if not delay:
        _insert(worker, work, dq)
        return
    _sanity(worker, work)
    work._pending = True
    work.worker = worker
    worker._delayed[work] = None
    task = _cur()
    kernel = task.kernel
    now = kernel.get_jiffies()
    _enqueue(kernel.cpus[task.cpu].std_base, dwork.timer, now + delay, now)


def _delayed_args(
    worker: object, dwork: object, delay: object, func: str
) -> tuple[KthreadWorker, KthreadDelayedWork, int]:
    _cur()
    return (
        _check_worker(worker, func),
        _check_dwork(dwork, func),
        _check_delay(delay, func),
    )


def kthread_queue_delayed_work(
    worker: KthreadWorker, dwork: KthreadDelayedWork, delay: int
) -> bool:
    """
    Queue *dwork* on *worker* after *delay* jiffies (0: at once, without the timer).

    Returns:
        ``False`` if it is already pending (the armed timer is left alone) or being
        cancelled; ``True`` otherwise.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: *worker* was not made by ``kthread_create_worker`` or was destroyed;
            *dwork* was never initialised; *delay* is negative or above ``LONG_MAX``.

    Context:
        Any context (hardirq included); never sleeps.

    .. versionadded:: 0.2
    """
    w, dw, d = _delayed_args(worker, dwork, delay, "kthread_queue_delayed_work")
    work = dw.work
    if work._pending or work._canceling:
        return False
    _queue_delayed(w, dw, d)
    return True


def _cancel(work: KthreadWork, *, is_dwork: bool) -> bool:
    """``__kthread_cancel_work()``: delete the timer (with *is_dwork*), take the item off
    the worker's lists; True if it was on one."""
    dwork = work._dwork
    if is_dwork and dwork is not None and dwork.timer._bucket is not None:
        _detach(dwork.timer)  # (a timer callback never runs while task code does)
    if not work._pending:
        return False
    worker = work.worker
    assert worker is not None
    if work in worker._delayed:
        del worker._delayed[work]
    else:
        dq = worker._list
        if dq is not None:
            dq.remove(work)
        else:
            worker._lost.remove(work)
    work._pending = False
    return True


def kthread_mod_delayed_work(worker: KthreadWorker, dwork: KthreadDelayedWork, delay: int) -> bool:
    """
    (Re)arm *dwork* for *delay* jiffies from now on *worker*, whatever its state; a *delay*
    of 0 queues it at once.

    Returns:
        ``True`` if it was pending (armed or queued) and was modified; ``False`` if it was
        idle (it is now armed or queued). If a cancel is in progress it is left to win:
        ``True``, and nothing is queued.

    Raises:
        TypeError, ValueError: as :func:`kthread_queue_delayed_work`.

    Context:
        Any context (hardirq included); never sleeps.

    .. versionadded:: 0.2
    """
    w, dw, d = _delayed_args(worker, dwork, delay, "kthread_mod_delayed_work")
    work = dw.work
    ret = False
    if work.worker is not None:
        if work.worker is not w:
            warn_once(("kthread_mod_delayed_work", "worker"))
        timer = dw.timer
        if timer._bucket is not None:
            _detach(timer)
        if work._canceling:
            return True  # the number of items on the list does not change
        ret = _cancel(work, is_dwork=False)
    _queue_delayed(w, dw, d)
    return ret


# --- the worker's thread -----------------------------------------------------------------------

_CoroutineType = types.CoroutineType


async def kthread_worker_fn(worker: KthreadWorker) -> int:
    """
    ``kthread_worker_fn()``: the thread of a kthread_worker. It runs the items of *worker*'s
    list one at a time, in order, and sleeps while the list is empty, until
    ``kthread_stop()``.

    .. versionadded:: 0.2
    """
    task = _cur()
    kernel = task.kernel
    dq = worker._list
    if dq is None:  # pragma: no cover - only made for set-up workers
        return 0
    parker = kernel._parker
    perf = time.perf_counter
    checkpoint = anyio.lowlevel.checkpoint
    coro_type = _CoroutineType
    work: KthreadWork | None = None
    try:
        while True:
            task.state = TASK_INTERRUPTIBLE
            if task.should_stop:
                task.state = TASK_RUNNING
                return 0
            if not dq or kernel._aborting:
                # idle: sleep until an item is queued (or kthread_stop() wakes us)
                waiter = parker.wait(task)
                if kernel._trace_on:
                    sched_out(task, SWITCH_STATE_S)
                try:
                    await waiter
                finally:
                    task._wake_event = None
                    task.state = TASK_RUNNING
                    if kernel._trace_on:
                        sched_resume(task)
                continue
            task.state = TASK_RUNNING
            yield_at = perf()
            since_yield = 0
            look = RESCHED_LOOK
            while dq:
                work = dq.popleft()
                work._pending = False
                worker.current_work = work
                func = work.func
                assert func is not None
                if kernel._trace_on:
                    emit(kernel, task, SCHED_KTHREAD_WORK_EXECUTE_START, work, func)
                try:
                    result = func(work)
                    if type(result) is coro_type or (
                        result is not None and inspect.isawaitable(result)
                    ):
                        await result
                except (KernelPanic, KthreadExit):
                    raise
                except Exception as exc:
                    record_oops(
                        task, exc, f"kthread work function {symbol_name(func)} ({worker._name})"
                    )
                    kernel._after_oops(exc)  # (may panic: panic_on_oops)
                finally:
                    worker.current_work = None
                    if kernel._trace_on:
                        emit(kernel, task, SCHED_KTHREAD_WORK_EXECUTE_END, work, func)
                work = None
                if _leave(task):
                    break  # kthread_stop(), or the kernel going down: stop taking items
                # cond_resched(): let the rest of the loop run every RESCHED_ITEMS items, or
                # once a run of items has kept the CPU for RESCHED_S
                look -= 1
                if not look:
                    look = RESCHED_LOOK
                    since_yield += RESCHED_LOOK
                    now = perf()
                    if since_yield >= RESCHED_ITEMS or now - yield_at >= RESCHED_S:
                        await checkpoint()
                        since_yield = 0
                        yield_at = perf()
    except BaseException as exc:
        if work is not None and not isinstance(exc, (Exception, KthreadExit)):
            _running_cancelled(kernel, worker, work)  # the kernel is going down
        raise
    finally:
        worker.task = None  # (the kernel clears worker->task as the thread exits)
        worker.current_work = None


def _leave(task: TaskStruct) -> bool:
    """Whether the worker's thread should stop taking items (read anew after every item)."""
    return task.should_stop or task.kernel._aborting


# --- flushing, cancelling, destroying ----------------------------------------------------------


def _check_self_work(task: TaskStruct, work: KthreadWork, what: str) -> None:
    worker = work.worker
    if worker is not None and worker.task is task and worker.current_work is work:
        from ._locking import report_recursive_locking

        report_recursive_locking(
            f"((kthread_work)(&{symbol_name(work.func)}))", what, "kthread_worker_fn"
        )


def _check_self_worker(task: TaskStruct, worker: KthreadWorker, what: str) -> None:
    if worker.task is task and worker.current_work is not None:
        from ._locking import report_recursive_locking

        report_recursive_locking(f"((kthread_worker){worker._name})", what, "kthread_worker_fn")


async def _wait_flush(fwork: _Flush) -> None:
    await wait_var_event(fwork, lambda: fwork.done)


async def _flush_work(work: KthreadWork) -> None:
    """``kthread_flush_work()`` once checked."""
    worker = work.worker
    if worker is None:
        await anyio.lowlevel.checkpoint()
        return
    fwork = _Flush(_cur().kernel)
    dq = worker._list
    if work._pending:
        if work in worker._delayed:
            # linked behind it on the delayed list, where the thread never looks: the kernel
            # waits here for good
            fwork._pending = True
            fwork.worker = worker
            worker._delayed[fwork] = None
        elif dq is not None:
            dq.insert(dq.index(work) + 1, fwork)
            fwork._pending = True
            fwork.worker = worker
            if worker.current_work is None:
                _wake(worker)
        else:
            worker._lost.insert(worker._lost.index(work) + 1, fwork)
    elif worker.current_work is work and dq is not None:
        dq.appendleft(fwork)
        fwork._pending = True
        fwork.worker = worker
    else:
        await anyio.lowlevel.checkpoint()
        return
    await _wait_flush(fwork)


@sleeping_checked(lambda work: _check_work(work, "kthread_flush_work"))
async def kthread_flush_work(work: KthreadWork) -> None:
    """
    Wait until *work* has finished, if it is queued or running: a barrier is queued right
    behind it (or at the head of the list, if it runs). Returns at once otherwise.

    An item whose delayed timer is armed has its barrier linked behind it on the worker's
    delayed list, which the thread never runs: the kernel waits there for good (and so does
    this, until the hung-task detector reports it).

    Raises:
        TypeError: *work* is not a :class:`KthreadWork`.
        ValueError: *work* was never initialised.
        KernelBug: called from *work*'s own function (it would wait for itself forever).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    _check_self_work(_cur(), work, "kthread_flush_work")
    await _flush_work(work)


async def _flush_worker(worker: KthreadWorker) -> None:
    dq = worker._list
    assert dq is not None
    fwork = _Flush(_cur().kernel)
    _insert(worker, fwork, dq)
    await _wait_flush(fwork)


@sleeping_checked(lambda worker: _check_worker(worker, "kthread_flush_worker"))
async def kthread_flush_worker(worker: KthreadWorker) -> None:
    """
    Wait until everything queued on *worker* before the call has run: a barrier is queued at
    the tail. Armed delayed items are not waited for.

    Raises:
        TypeError: *worker* is not a :class:`KthreadWorker`.
        ValueError: *worker* was not made by ``kthread_create_worker`` or was destroyed.
        KernelBug: called from an item of *worker* (it would wait for itself forever).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    _check_self_worker(_cur(), worker, "kthread_flush_worker")
    await _flush_worker(worker)


async def _cancel_sync(work: KthreadWork, *, is_dwork: bool, what: str) -> bool:
    """``__kthread_cancel_work_sync()``."""
    _check_self_work(_cur(), work, what)
    worker = work.worker
    if worker is None:
        await anyio.lowlevel.checkpoint()
        return False
    if is_dwork:
        work._canceling += 1  # (queueing is refused while the timer is deleted)
        try:
            ret = _cancel(work, is_dwork=True)
        finally:
            work._canceling -= 1
    else:
        ret = _cancel(work, is_dwork=False)
    if worker.current_work is not work:
        await anyio.lowlevel.checkpoint()
        return ret
    work._canceling += 1
    try:
        await _flush_work(work)
    finally:
        work._canceling -= 1
    return ret


@sleeping_checked(lambda work: _check_work(work, "kthread_cancel_work_sync"))
async def kthread_cancel_work_sync(work: KthreadWork) -> bool:
    """
    Take *work* off its worker's list and, if it runs, wait for it while refusing queue
    attempts: on return it is neither pending nor running, even if it re-queues itself.

    Not for the ``.work`` of a :class:`KthreadDelayedWork`: its timer stays armed (use
    :func:`kthread_cancel_delayed_work_sync`).

    Returns:
        ``True`` if *work* was pending.

    Raises:
        TypeError: *work* is not a :class:`KthreadWork`.
        ValueError: *work* was never initialised.
        KernelBug: called from *work*'s own function.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    return await _cancel_sync(work, is_dwork=False, what="kthread_cancel_work_sync")


@sleeping_checked(lambda dwork: _check_dwork(dwork, "kthread_cancel_delayed_work_sync"))
async def kthread_cancel_delayed_work_sync(dwork: KthreadDelayedWork) -> bool:
    """
    Delete *dwork*'s timer, take it off its worker's list and, if it runs, wait for it.

    Returns:
        ``True`` if *dwork* was pending (armed or queued).

    Raises:
        TypeError: *dwork* is not a :class:`KthreadDelayedWork`.
        ValueError: *dwork* was never initialised.
        KernelBug: called from its own function.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    return await _cancel_sync(dwork.work, is_dwork=True, what="kthread_cancel_delayed_work_sync")


def _check_destroy(worker: object) -> None:
    check_instance(worker, KthreadWorker, "kthread_destroy_worker", "worker")
    assert isinstance(worker, KthreadWorker)
    if worker._list is None and not worker._destroyed:
        raise bad_value(
            "kthread_destroy_worker",
            "worker",
            "a KthreadWorker made by kthread_create_worker",
            worker,
        )


@sleeping_checked(_check_destroy)
async def kthread_destroy_worker(worker: KthreadWorker) -> None:
    """
    Flush *worker*, stop its thread, and free it. Delayed items must be cancelled first: one
    still armed is a WARN, and so is an item still queued.

    A worker without a thread (destroyed already, or its thread exited) is a WARN, and
    nothing happens (the kernel would touch freed memory).

    Raises:
        TypeError: *worker* is not a :class:`KthreadWorker`.
        ValueError: *worker* was never set up by ``kthread_create_worker``.
        KernelBug: called from an item of *worker*.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    me = _cur()
    task = worker.task
    if task is None:
        warn()
        await anyio.lowlevel.checkpoint()
        return
    _check_self_worker(me, worker, "kthread_destroy_worker")
    await _flush_worker(worker)
    await kthread_stop(task)
    if worker._delayed:
        warn()
    dq = worker._list
    if dq:
        warn()
        worker._lost.extend(dq)
        dq.clear()
    worker._list = None
    worker._destroyed = True
    worker.task = None
    if not worker._delayed and not worker._lost:
        st: _KWState | None = getattr(me.kernel, "_kw_state", None)
        if st is not None:
            st.workers.pop(worker, None)


# --- shutdown ----------------------------------------------------------------------------------


def _name(
    kernel: Kernel,
    kind: str,
    work: KthreadWork,
    worker: KthreadWorker,
    state: str,
    outcome: str,
    text: str,
) -> None:
    from ._shutdown import UnfinishedItem, name_item

    func = symbol_name(work.func)
    name_item(
        kernel,
        UnfinishedItem(kind, func, worker._name, state, outcome, work),
        text.format(kind=kind, func=func, name=worker._name),
    )


def _running_cancelled(kernel: Kernel, worker: KthreadWorker, work: KthreadWork) -> None:
    """An item was ended by a cancellation (the kernel's tasks are being cancelled)."""
    from ._shutdown import begin_abort

    if isinstance(work, _Flush):
        return
    if not kernel._aborting and not kernel._halted:
        # (a normal exit cancels what still runs once it has waited for it: no abort)
        if kernel._panic is not None:
            begin_abort(kernel, "panic", "the kernel panicked")
        else:
            begin_abort(kernel, "cancelled", "the kernel's tasks were cancelled")
    _name(
        kernel,
        "kthread work",
        work,
        worker,
        "running",
        "cancelled",
        "{kind} {func} still running in {name}; cancelled",
    )


def _sweep_armed(kernel: Kernel, worker: KthreadWorker) -> None:
    for work in list(worker._delayed):
        del worker._delayed[work]
        work._pending = False
        dwork = work._dwork
        if isinstance(work, _Flush) or dwork is None:
            continue
        if dwork.timer._bucket is not None:
            _detach(dwork.timer)
        _name(
            kernel,
            "kthread delayed work",
            work,
            worker,
            "armed",
            "cancelled",
            "{kind} {func} for {name} still armed; cancelled",
        )


def sweep_kthread_workers(kernel: Kernel) -> None:
    """Take every armed or queued kthread work item off its worker and name it. Synchronous."""
    st: _KWState | None = getattr(kernel, "_kw_state", None)
    if st is None:
        return
    for worker in list(st.workers):
        _sweep_armed(kernel, worker)
        queued: list[KthreadWork] = []
        if worker._list:
            queued.extend(worker._list)
            worker._list.clear()
        queued.extend(worker._lost)
        worker._lost.clear()
        for work in queued:
            work._pending = False
            if isinstance(work, _Flush):
                work.done = True  # a flush must not wait for good
                wake_up_var(kernel, work)
                continue
            kind = "kthread delayed work" if work._dwork is not None else "kthread work"
            _name(
                kernel,
                kind,
                work,
                worker,
                "queued",
                "dropped",
                "{kind} {func} on {name} never ran (queued); dropped",
            )


async def kthread_worker_shutdown(kernel: Kernel) -> None:
    """
    Leaving the kernel normally: cancel (and name) armed delayed items, then let every worker
    whose thread can run do what is queued, for at most ``shutdown_timeout``; running out of it
    makes it an abort (see _shutdown.py).
    """
    import math

    from ._shutdown import begin_abort

    st: _KWState | None = getattr(kernel, "_kw_state", None)
    if st is None:
        return
    for worker in list(st.workers):
        _sweep_armed(kernel, worker)
    timeout = kernel.shutdown_timeout
    with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
        for worker in list(st.workers):
            task = worker.task
            busy = worker._list or worker.current_work is not None
            if busy and task is not None and not task.should_park and not task._exited:
                await _flush_worker(worker)
    if scope.cancelled_caught:
        begin_abort(kernel, "timeout", f"kthread work still running after {timeout} s")
