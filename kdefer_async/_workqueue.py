"""Workqueues: concurrency-managed worker pools, pool_workqueues, queueing and execution.

Field rules (the kernel's legend, for an event loop):

* ``I``: set at creation, read-only after.
* ``A``: changed only in synchronous code, so atomic with respect to the loop's other tasks.
* ``W``: touched only by the owning worker task.

Kernel invariants modelled (kernel/workqueue.c, Documentation/core-api/workqueue.rst):

* Per CPU there are two worker pools (normal, highpri) plus two BH pools that run inside the
  TASKLET and HI softirqs; unbound workqueues share unbound pools. A workqueue reaches a pool
  through a pool_workqueue (pwq) that enforces ``max_active``: items beyond it wait, in order,
  on the pwq's inactive list.
* Workers (``kworker/N:M``, ``kworker/N:MH``, ``kworker/uX:Y``) are reusable tasks that run
  items one after another by awaiting them in place; there is no task per item.
* Concurrency management (per-CPU pools): a pool wakes an idle worker only when it has work
  and no running worker; a worker keeps taking items while it is the only one running. An item
  that never sleeps therefore holds the others back; an item that sleeps (any await that
  suspends it) lets the next one start. ``WQ_CPU_INTENSIVE`` items do not count as running.
* Non-reentrancy: a work item queued again while it runs goes to the pool where it runs and
  runs after the running instance, never overlapping it.
* ``PENDING`` is cleared just before the function runs; ``flush_work()`` waits for the last
  queueing instance; ``flush_workqueue()`` for everything queued before it (flush colors);
  see _flush.py.
* A pool that needs a worker it cannot create (``Kernel.block_worker_creation()``) calls for
  help after ``MAYDAY_INITIAL_TIMEOUT``; the rescuer of each ``WQ_MEM_RECLAIM`` workqueue
  with items waiting there runs them as a worker of that pool.

How kworkers run (the hot paths):

* Per-CPU kworkers are anyio tasks of their CPU's task group. :func:`worker_thread` does
  ``process_one_work`` inline: a plain function is called, a coroutine is awaited right in
  the loop, so an item that does not sleep costs no trip through the event loop.
  :class:`_KWorkerDrive`, the task's coroutine around that loop, sees every suspension inside
  an item: that is the scheduler's ``wq_worker_sleeping``/``wq_worker_running``.
* Unbound kworkers may be thousands (one per sleeping item). On asyncio each is a light task
  (see _lighttask.py) whose coroutine is a :class:`_LightWorker`: the same loop as a small
  state machine that drives the item's coroutine itself, so a sleeping item's kworker has no
  frame of its own. Elsewhere they run :func:`worker_thread` like the per-CPU ones.

Tracepoints (``workqueue:``, formats in _trace.py): ``workqueue_queue_work`` and, if the item
goes straight to the worklist, ``workqueue_activate_work``, both under the pool lock
(``d..1.`` from a task) where ``__queue_work()`` fires them, including a delayed item's queueing
at its timer's expiry and BH items (followed by the softirq raise that runs them); an item held
back by ``max_active`` gets its ``workqueue_activate_work`` when a slot frees, before it runs;
``workqueue_execute_start``/``end`` around the function, in the kworker (or the softirq of a
BH pool). Idle kworkers sleep and are woken with the ``sched`` events of _sched.py.

Guarantees:
    * test_queue_while_pending_returns_false: a pending item is not queued twice.
    * test_requeue_while_running_runs_after: no overlap with itself.
    * test_cpu_bound_items_run_one_after_another: concurrency management.
    * test_max_active_never_exceeded: the inactive list holds the rest, in order.
    * test_ordered_runs_in_queue_order: ordered workqueues run one item at a time, FIFO.
    * test_rescuer_runs_items_when_no_worker_can_be_made: mayday and the rescuer.
    * test_a_run_of_items_lets_the_loop_in: a run of items that never sleep still yields.
"""

from __future__ import annotations

import heapq
import inspect
import sys
import time
import types
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._check import bad_type, bad_value, check_int, check_str
from ._consts import (
    HI_SOFTIRQ,
    IRQ_MASK,
    LONG_MAX,
    SOFTIRQ_OFFSET,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASKLET_SOFTIRQ,
    TIMER_DEFERRABLE,
)
from ._context import TaskStruct, _cur, _current, claim
from ._exceptions import KernelPanic, NoKernelError
from ._printk import format_c, log_text, record_oops, symbol_name, warn, warn_once
from ._sched import sched_exit, sched_in, sched_out, sched_resume, sched_wakeup
from ._shutdown import drop_late_work, work_cancelled
from ._softirq import panic_in_interrupt, run_atomic_result, wakeup_softirqd
from ._timer import TimerList, _detach, _enqueue
from ._trace import (
    SOFTIRQ_RAISE,
    SWITCH_STATE_I,
    TRACE_FLAG_IRQS_OFF,
    WORKQUEUE_ACTIVATE_WORK,
    WORKQUEUE_EXECUTE_END,
    WORKQUEUE_EXECUTE_START,
    WORKQUEUE_QUEUE_WORK,
    emit,
    emit_locked,
    site_task,
    trace_raise_on,
)
from ._wait import wake_up_var
from ._work import (
    WORK_CPU_UNBOUND,
    DelayedWork,
    Work,
    _init_work,
    check_cpu,
    check_delay,
    check_dwork,
    check_work,
    check_work_func,
    is_async_func,
)

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel

__all__ = [
    "WQ_BH",
    "WQ_CPU_INTENSIVE",
    "WQ_DFL_ACTIVE",
    "WQ_FREEZABLE",
    "WQ_HIGHPRI",
    "WQ_MAX_ACTIVE",
    "WQ_MEM_RECLAIM",
    "WQ_PERCPU",
    "WQ_POWER_EFFICIENT",
    "WQ_SYSFS",
    "WQ_UNBOUND",
    "PoolWorkqueue",
    "Worker",
    "WorkerPool",
    "Workqueue",
    "alloc_ordered_workqueue",
    "alloc_workqueue",
    "create_freezable_workqueue",
    "create_singlethread_workqueue",
    "create_workqueue",
    "current_work",
    "ExecuteWork",
    "execute_in_process_context",
    "queue_delayed_work",
    "queue_delayed_work_on",
    "queue_work",
    "queue_work_on",
    "schedule_delayed_work",
    "schedule_delayed_work_on",
    "schedule_work",
    "schedule_work_on",
    "mod_delayed_work",
    "mod_delayed_work_on",
    "work_busy",
    "work_pending",
    "delayed_work_pending",
    "workqueue_congested",
    "workqueue_set_max_active",
    "enable_and_queue_work",
    "system_bh_highpri_wq",
    "system_bh_wq",
    "system_dfl_wq",
    "system_freezable_power_efficient_wq",
    "system_freezable_wq",
    "system_highpri_wq",
    "system_long_wq",
    "system_percpu_wq",
    "system_power_efficient_wq",
    "system_unbound_wq",
    "system_wq",
]

# --- flags (include/linux/workqueue.h) --------------------------------------------------------
WQ_BH = 1 << 0
WQ_UNBOUND = 1 << 1
WQ_FREEZABLE = 1 << 2
WQ_MEM_RECLAIM = 1 << 3
WQ_HIGHPRI = 1 << 4
WQ_CPU_INTENSIVE = 1 << 5
WQ_SYSFS = 1 << 6
WQ_POWER_EFFICIENT = 1 << 7
WQ_PERCPU = 1 << 8
_WQ_DESTROYING = 1 << 15
_WQ_DRAINING = 1 << 16
_WQ_ORDERED = 1 << 17
_WQ_LEGACY = 1 << 18
#: ``__WQ_DEPRECATED`` (7.2): ``system_wq`` and ``system_unbound_wq``; queueing on them prints
#: a one-time warning.
_WQ_DEPRECATED = 1 << 19
_WQ_BH_ALLOWS = WQ_BH | WQ_HIGHPRI | WQ_PERCPU

WQ_MAX_ACTIVE = 2048
#: ``max_active`` is a C ``int`` and ``flags`` an ``unsigned int``: the values that fit.
_INT_MIN = -(1 << 31)
_INT_MAX = (1 << 31) - 1
_UINT_MAX = (1 << 32) - 1
WQ_DFL_ACTIVE = WQ_MAX_ACTIVE // 2
WQ_UNBOUND_MAX_ACTIVE = WQ_MAX_ACTIVE
#: ``WQ_NAME_LEN``: names are truncated to 31 characters.
WQ_NAME_LEN = 32
#: BH pools take at most this many items per softirq activation (``BH_WORKER_RESTARTS``).
BH_WORKER_RESTARTS = 10
#: Surplus idle workers retire after this long (``IDLE_WORKER_TIMEOUT`` = 300 s).
IDLE_WORKER_TIMEOUT_S = 300
#: Keep culling while ``(idle - 2) * MAX_IDLE_WORKERS_RATIO >= busy``.
MAX_IDLE_WORKERS_RATIO = 4
#: A pool that needs a worker it cannot create calls the rescuers after
#: ``MAYDAY_INITIAL_TIMEOUT`` (HZ/100 jiffies, at least 2), then every ``MAYDAY_INTERVAL``
#: (HZ/10) while the need lasts.
MAYDAY_INITIAL_TIMEOUT_DIV = 100
MAYDAY_INTERVAL_DIV = 10
#: ``workqueue.cpu_intensive_thresh_us``: 10 ms without sleeping marks an item CPU-intensive.
CPU_INTENSIVE_THRESH_US = 10_000
#: ``cpu_intensive_warning_thresh``: first report at the 4th violation, then 5, 7, 11, 19...
CPU_INTENSIVE_WARNING_THRESH = 4
#: A kworker running items back to back lets the rest of the event loop run after this many
#: items, or once it has kept the loop this long (s): the kernel's cond_resched() per item.
RESCHED_ITEMS = 256
RESCHED_LOOK = 16
RESCHED_S = 0.002


class _Stats:
    """``pwq->stats[]`` summed per workqueue, as tools/workqueue/wq_monitor.py shows them."""

    __slots__ = (
        "cm_wakeup",
        "cpu_intensive",
        "mayday",
        "repatriated",
        "rescued",
    )

    def __init__(self) -> None:
        self.cpu_intensive = 0
        self.cm_wakeup = 0
        self.repatriated = 0
        self.mayday = 0
        self.rescued = 0


class Worker(TaskStruct):
    """``struct worker`` and its task in one object: a reusable kworker of a pool.

    It is what ``current()`` returns inside a work function (as ``KWorkerTask``).
    """

    __slots__ = (
        "asleep",
        "barriers",
        "counted",
        "cpu_intensive",
        "current_func",
        "current_pwq",
        "current_work",
        "die",
        "handle",
        "id",
        "is_idle",
        "last_active",
        "pool",
        "ran",
        "scheduled",
        "special",
        "started",
        "t0",
    )

    def __init__(self, pool: WorkerPool, wid: int, comm: str, pid: int, cpu: int) -> None:
        super().__init__(pool.kernel, comm, pid, cpu, kthread=True)
        self.pool = pool  # I
        self.id = wid  # I
        self.current_work: Work | None = None  # W
        self.current_func: Callable[..., Any] | None = None  # W
        self.current_pwq: PoolWorkqueue | None = None  # W
        self.handle: Any = None  # I: a light worker's asyncio task (kept alive by this)
        #: A: items that collided with the current one (made on first need: most workers
        #: never have any, and an empty deque costs 700 bytes)
        self.scheduled: deque[Work] | None = None
        self.t0 = 0.0  # W: perf_counter() when the current item last started or woke
        #: A: flushes of the current execution (a list made on first need)
        self.barriers: list[_Barrier] | None = None
        #: A: the current item needs the slow end: barriers to complete, CPU-intensive to
        #: undo, or run time from before a reschedule to add
        self.special = False
        self.counted = False  # W: counted in pool.nr_running
        self.asleep = False  # W: suspended inside a work function
        self.cpu_intensive = False  # W
        self.ran = 0.0  # W: seconds run by the current item since it last slept
        self.die = False  # A: retire when woken
        self.started = False  # A
        self.is_idle = True  # A: on pool.idle
        self.last_active = 0.0  # A

    @property
    def task(self) -> Worker:
        """The worker's task: the worker itself."""
        return self

    @property
    def worker(self) -> Worker:
        """The task's worker: the task itself."""
        return self

    def __repr__(self) -> str:
        cur = f" running {symbol_name(self.current_func)}" if self.current_work else ""
        return f"<Worker {self.comm}{cur}>"


KWorkerTask = Worker


class _Barrier:
    """A flush barrier (``struct wq_barrier``): done once what it waits behind has run."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


def worker_add_barrier(worker: Worker, b: _Barrier) -> None:
    """Make *b* wait behind the item *worker* executes now."""
    if worker.barriers is None:
        worker.barriers = []
    worker.barriers.append(b)
    worker.special = True


def complete_barriers(kernel: Kernel, barriers: list[_Barrier]) -> None:
    for b in barriers:
        b.done = True
        wake_up_var(kernel, b)


class WorkerPool:
    """``struct worker_pool``."""

    __slots__ = (
        "bh",
        "cpu",
        "free_ids",
        "highpri",
        "hog_s",
        "id",
        "idle",
        "idle_timer",
        "kernel",
        "mayday_timer",
        "next_id",
        "nr_running",
        "unbound",
        "watchdog_ts",
        "wd_head",
        "workers",
        "worklist",
    )

    def __init__(
        self, kernel: Kernel, pid: int, cpu: int | None, *, highpri: bool, bh: bool
    ) -> None:
        self.kernel = kernel  # I
        self.id = pid  # I
        self.cpu = cpu  # I: None for unbound pools
        self.highpri = highpri  # I
        self.bh = bh  # I
        self.unbound = cpu is None  # I
        self.worklist: deque[Work] = deque()  # A
        self.idle: list[Worker] = []  # A: LIFO
        self.workers: list[Worker] = []  # A
        self.nr_running = 0  # A
        self.free_ids: list[int] = []  # A: a heap of the ids of retired workers
        self.next_id = 0  # A: the next never-used worker id
        self.watchdog_ts = 0  # A: jiffies of the last forward progress
        #: A: the worklist's first item at the watchdog's last look: while the same item
        #: stays first, no worker has taken anything from this pool
        self.wd_head: Work | None = None
        self.idle_timer: TimerList | None = None  # A
        self.mayday_timer: TimerList | None = None  # A
        #: I: workqueue.cpu_intensive_thresh_us, in seconds
        self.hog_s = kernel.wq_cpu_intensive_thresh_us / 1_000_000

    def __repr__(self) -> str:
        where = f"cpus={self.cpu}" if self.cpu is not None else "unbound"
        return (
            f"<WorkerPool {self.id} {where}{' H' if self.highpri else ''}"
            f"{' bh' if self.bh else ''} workers={len(self.workers)} idle={len(self.idle)} "
            f"pending={len(self.worklist)}>"
        )


class PoolWorkqueue:
    """``struct pool_workqueue``: one workqueue's link to one pool, with ``max_active``."""

    __slots__ = ("completed", "cpu_time", "inactive", "nr_active", "pool", "wq")

    def __init__(self, wq: Workqueue, pool: WorkerPool) -> None:
        self.wq = wq  # I
        self.pool = pool  # I
        self.nr_active = 0  # A
        self.inactive: deque[Work] = deque()  # A
        self.completed = 0  # A: instances finished here (wq_stats' ``total`` adds running ones)
        self.cpu_time = 0.0  # A: seconds they ran


class _WQState:
    """Per-kernel workqueue state: pools by CPU, unbound pools, workqueues, system wqs."""

    __slots__ = (
        "bh_pools",
        "cpu_pools",
        "frozen",
        "hog_counts",
        "system",
        "unbound_pools",
        "watchdog",
        "workqueues",
    )

    def __init__(self, kernel: Kernel) -> None:
        n = kernel.nr_cpus
        self.cpu_pools: list[list[WorkerPool | None]] = [[None, None] for _ in range(n)]
        self.bh_pools: list[list[WorkerPool | None]] = [[None, None] for _ in range(n)]
        self.unbound_pools: list[WorkerPool | None] = [None, None]
        self.workqueues: list[Workqueue] = []
        self.system: dict[str, Workqueue] = {}
        self.hog_counts: dict[object, int] = {}
        self.frozen = False
        self.watchdog: TimerList | None = None


def wq_state(kernel: Kernel) -> _WQState:
    st: _WQState | None = getattr(kernel, "_wq_state", None)
    if st is None:
        st = _WQState(kernel)
        kernel._wq_state = st  # type: ignore[attr-defined]
        kernel.bh_pools = bh_pools_action
    return st


def cpu_pool(kernel: Kernel, cpu: int, highpri: bool) -> WorkerPool:
    st = wq_state(kernel)
    pool = st.cpu_pools[cpu][highpri]
    if pool is None:
        pool = WorkerPool(kernel, 4 * cpu + 2 + highpri, cpu, highpri=highpri, bh=False)
        st.cpu_pools[cpu][highpri] = pool
        create_worker(pool, boot=True)
    return pool


def bh_pool(kernel: Kernel, cpu: int, highpri: bool) -> WorkerPool:
    st = wq_state(kernel)
    pool = st.bh_pools[cpu][highpri]
    if pool is None:
        pool = WorkerPool(kernel, 4 * cpu + highpri, cpu, highpri=highpri, bh=True)
        st.bh_pools[cpu][highpri] = pool
    return pool


def unbound_pool(kernel: Kernel, highpri: bool) -> WorkerPool:
    st = wq_state(kernel)
    pool = st.unbound_pools[highpri]
    if pool is None:
        pool = WorkerPool(kernel, 4 * kernel.nr_cpus + highpri, None, highpri=highpri, bh=False)
        st.unbound_pools[highpri] = pool
        create_worker(pool, boot=True)
    return pool


# ---------------------------------------------------------------------------------------------
# Workqueue objects
# ---------------------------------------------------------------------------------------------


class _Color:
    """A flush color (``work_color``/``flush_color``): instances queued under it still in flight.

    ``flush_workqueue`` closes the current color and waits until it and every older one have
    no instance left; instances queued afterwards get a new color and are not waited for.
    """

    __slots__ = ("n", "seq")

    def __init__(self, seq: int) -> None:
        self.seq = seq  # I: colors are numbered in the order they were opened
        self.n = 0  # A: instances queued under this color that have not finished


def wq_set_limit(wq: Workqueue) -> None:
    """Recompute what queueing compares ``nr_active`` with, after a freeze, thaw or change."""
    wq._limit = 0 if wq._frozen else wq._max_active


def wq_slow_queueing(wq: Workqueue) -> None:
    """Send every queueing on *wq* through the checks of ``__queue_work`` (draining starts)."""
    wq._qpwq = [None] * len(wq._qpwq)


def wq_in_flight(wq: Workqueue) -> bool:
    """Whether any instance queued on *wq* is still queued or running."""
    return bool(wq._color.n or wq._old_colors)


def color_done(wq: Workqueue, color: _Color) -> None:
    """An older color's last instance finished: forget it and wake the flushers."""
    wq._old_colors.remove(color)
    if wq._kernel is not None:
        wake_up_var(wq._kernel, wq)


class Workqueue:
    """
    ``struct workqueue_struct``, made by :func:`alloc_workqueue` and friends.

    Attributes:
        name: The formatted name (at most 31 characters).
        flags: The ``WQ_*`` flags.
        max_active: The per-pwq limit of active items (system-wide for unbound workqueues).

    The system workqueues (``system_wq``...) are importable before any kernel exists: they
    stand for the running kernel's queue of that name whenever they are used.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__weakref__",
        "_color",
        "_destroyed",
        "_draining",
        "_flags",
        "_frozen",
        "_kernel",
        "_limit",
        "_max_active",
        "_maydays",
        "_name",
        "_old_colors",
        "_pwqs",
        "_qpwq",
        "_rescuer",
        "_stats",
        "_sys_kernel",
        "_sys_target",
        "_sysname",
    )

    def __init__(self) -> None:
        self._name = ""
        self._flags = 0
        self._max_active = 0
        self._kernel: Kernel | None = None
        self._pwqs: list[PoolWorkqueue | None] = []
        #: A: by CPU, the pwq queue_work() may use straight away; None sends it the long way
        #: (not made yet, a BH workqueue, draining or destroyed)
        self._qpwq: list[PoolWorkqueue | None] = []
        self._draining = 0
        self._destroyed = False
        self._frozen = False
        self._limit = 0  # A: max_active, or 0 while frozen (what queueing compares with)
        #: A: the color new instances are queued under (``wq->work_color``)
        self._color = _Color(0)
        #: A: older colors a flush_workqueue() closed that still have instances in flight,
        #: oldest first
        self._old_colors: list[_Color] = []
        self._sys_kernel: Kernel | None = None  # A: system refs: the kernel resolved for
        self._sys_target: Workqueue | None = None  # A: ... and its queue
        self._stats = _Stats()
        self._rescuer: Worker | None = None
        #: A: pwqs whose items wait for lack of a worker; the rescuer runs them
        self._maydays: deque[PoolWorkqueue] = deque()
        self._sysname: str | None = None

    def _t(self) -> Workqueue:
        if self._sysname is None:
            return self
        return system_workqueue(_cur().kernel, self._sysname)

    @property
    def name(self) -> str:
        """The workqueue's name."""
        return self._t()._name

    @property
    def flags(self) -> int:
        """The ``WQ_*`` flags."""
        return self._t()._flags

    @property
    def max_active(self) -> int:
        """The ``max_active`` limit."""
        return self._t()._max_active

    def __repr__(self) -> str:
        if self._sysname is not None:
            return f"<Workqueue {self._sysname!r}, a system workqueue>"
        state = " destroyed" if self._destroyed else ""
        return f"<Workqueue {self._name!r} flags={self._flags:#x} max_active={self._max_active}{state}>"

    def pwq_for(self, cpu: int) -> PoolWorkqueue:
        pwqs = self._pwqs
        pwq = pwqs[0] if len(pwqs) == 1 else pwqs[cpu]
        if pwq is None:
            pwq = self._make_pwq(cpu)
        return pwq

    def _make_pwq(self, cpu: int) -> PoolWorkqueue:
        kernel = self._kernel
        assert kernel is not None
        highpri = bool(self._flags & WQ_HIGHPRI)
        if self._flags & WQ_BH:
            pool = bh_pool(kernel, cpu, highpri)
        elif self._flags & WQ_UNBOUND:
            pool = unbound_pool(kernel, highpri)
        else:
            pool = cpu_pool(kernel, cpu, highpri)
        pwq = PoolWorkqueue(self, pool)
        if len(self._pwqs) == 1:
            self._pwqs[0] = pwq
        else:
            self._pwqs[cpu] = pwq
        return pwq


def check_wq(wq: object, func: str, param: str = "wq") -> Workqueue:
    """
    *wq* if it is a :class:`Workqueue` made by :func:`alloc_workqueue` and friends, or a
    system workqueue's stand-in: a bare ``Workqueue()`` has no pools (in C, a pointer to
    memory no allocation set up).
    """
    if not isinstance(wq, Workqueue):
        raise bad_type(func, param, "a Workqueue", wq)
    if wq._kernel is None and wq._sysname is None:
        raise bad_value(func, param, "a Workqueue made by alloc_workqueue", wq)
    return wq


def _resolve(wq: object, func: str) -> Workqueue:
    """The workqueue *wq* stands for (a system workqueue: the running kernel's own)."""
    return check_wq(wq, func)._t()


def _arg_error(check: Callable[..., object], *args: object) -> Exception | None:
    """The error ``check(*args)`` raises, if any: for the failure paths of hot paths, which
    re-raise what they caught when every argument turns out fine. (A hot path must not build
    a closure over its arguments for this: that would make every use of them slower.)"""
    try:
        check(*args)
    except (TypeError, ValueError) as err:
        return err
    return None


def _check_work_type(work: object, func: str) -> None:
    check_work(work, func, initialised=False)


def _check_queue_args(func: str, wq: object, work: object) -> None:
    check_wq(wq, func)
    check_work(work, func)


def check_flags(flags: object, func: str) -> int:
    """*flags* if they fit the ``unsigned int`` of ``WQ_*`` flags (unknown bits are kept, as
    the kernel keeps them)."""
    return check_int(
        flags, func, "flags", lo=0, hi=_UINT_MAX, expected="WQ_* flags (an int from 0 to 2**32-1)"
    )


def check_max_active(max_active: object, func: str) -> int:
    """*max_active* if it fits a C ``int``: out-of-range values are the kernel's to clamp."""
    return check_int(max_active, func, "max_active", lo=_INT_MIN, hi=_INT_MAX)


def format_name(func: str, fmt: str, args: tuple[object, ...]) -> str:
    """``vsnprintf`` of a name: arguments that do not match *fmt* are a ``TypeError``."""
    try:
        return format_c(fmt, args)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}(): the arguments do not match the name format: {exc}") from None


def alloc_workqueue(fmt: str, flags: int, max_active: int, *args: object) -> Workqueue | None:
    """
    Allocate a workqueue named ``fmt % args`` with ``WQ_*`` *flags*.

    *max_active* 0 means ``WQ_DFL_ACTIVE`` (1024); values outside 1..``WQ_MAX_ACTIVE`` (2048)
    are clamped with the kernel's message. Names longer than 31 characters are truncated
    (with the kernel's warning). ``WQ_BH`` takes only ``WQ_HIGHPRI`` (and ``WQ_PERCPU``) and a
    *max_active* of 0; anything else is the kernel's WARN and returns ``None``.

    Returns:
        The workqueue, or ``None`` (the kernel's NULL).

    Raises:
        TypeError: *fmt* is not a ``str`` or does not match *args*; *flags* or *max_active*
            is not an ``int``.
        ValueError: *flags* does not fit an ``unsigned int``, *max_active* an ``int``.

    Context:
        Task context.

    .. versionadded:: 0.1
    """
    check_str(fmt, "alloc_workqueue", "fmt")
    check_flags(flags, "alloc_workqueue")
    return _alloc_workqueue("alloc_workqueue", fmt, flags, max_active, args)


def _alloc_workqueue(
    func: str, fmt: str, flags: int, max_active: int, args: tuple[object, ...]
) -> Workqueue | None:
    """``alloc_workqueue`` for *func*, which checked *fmt* and its own flags."""
    check_max_active(max_active, func)
    task = _cur()
    kernel = task.kernel
    name = format_name(func, fmt, args)
    # the two WARN_ON_ONCE() sites of WQ_BH (bad flags, then a max_active) come before the
    # workqueue is allocated and named: a refused call logs nothing else
    if flags & WQ_BH:
        if flags & ~_WQ_BH_ALLOWS:
            warn_once("alloc_workqueue: WQ_BH with other flags")
            return None
        if max_active:
            warn_once("alloc_workqueue: WQ_BH with max_active")
            return None
    if len(name) >= WQ_NAME_LEN:
        name = name[: WQ_NAME_LEN - 1]
        if "wq name too long" not in kernel._warned_once:  # pr_warn_once()
            kernel._warned_once.add("wq name too long")
            log_text(kernel, 4, f"workqueue: name exceeds WQ_NAME_LEN. Truncating to: {name}")
    if flags & WQ_BH:
        max_active = 0
    else:
        if flags & WQ_PERCPU and flags & WQ_UNBOUND:
            log_text(
                kernel,
                4,
                f"workqueue: {name} uses both WQ_PERCPU and WQ_UNBOUND. "
                "Dropped WQ_PERCPU, keeping WQ_UNBOUND.",
            )
            flags &= ~WQ_PERCPU
        if flags & _WQ_ORDERED:
            max_active = 1
        elif max_active == 0:
            max_active = WQ_DFL_ACTIVE
        elif not 1 <= max_active <= WQ_MAX_ACTIVE:
            clamped = min(max(max_active, 1), WQ_MAX_ACTIVE)
            log_text(
                kernel,
                4,
                f"workqueue: max_active {max_active} requested for {name} is out "
                f"of range, clamping between 1 and {WQ_MAX_ACTIVE}",
            )
            max_active = clamped
    wq = Workqueue()
    wq._name = name
    wq._flags = flags
    wq._max_active = max_active
    wq._kernel = kernel
    per_cpu = not flags & WQ_UNBOUND
    wq._pwqs = [None] * kernel.nr_cpus if per_cpu else [None]
    wq._qpwq = [None] * kernel.nr_cpus
    st = wq_state(kernel)
    st.workqueues.append(wq)
    if flags & WQ_FREEZABLE and st.frozen:
        wq._frozen = True
    wq_set_limit(wq)
    if flags & WQ_MEM_RECLAIM:
        _start_rescuer(wq)
    return wq


def alloc_ordered_workqueue(fmt: str, flags: int, *args: object) -> Workqueue | None:
    """
    Allocate an ordered workqueue: unbound, one item at a time, in queueing order.

    Raises:
        TypeError, ValueError: as :func:`alloc_workqueue`.

    .. versionadded:: 0.1
    """
    check_str(fmt, "alloc_ordered_workqueue", "fmt")
    check_flags(flags, "alloc_ordered_workqueue")
    return _alloc_workqueue(
        "alloc_ordered_workqueue", fmt, WQ_UNBOUND | _WQ_ORDERED | flags, 1, args
    )


def _create_legacy(func: str, name: object, flags: int) -> Workqueue | None:
    check_str(name, func, "name")
    return _alloc_workqueue(func, "%s", _WQ_LEGACY | WQ_MEM_RECLAIM | flags, 1, (name,))


def create_workqueue(name: str) -> Workqueue | None:
    """
    Legacy: a per-CPU workqueue with one active item per CPU and a rescuer.

    Raises:
        TypeError: *name* is not a ``str``.

    .. versionadded:: 0.1
    """
    return _create_legacy("create_workqueue", name, WQ_PERCPU)


def create_freezable_workqueue(name: str) -> Workqueue | None:
    """
    Legacy: an unbound, freezable workqueue with one active item and a rescuer.

    Raises:
        TypeError: *name* is not a ``str``.

    .. versionadded:: 0.1
    """
    return _create_legacy("create_freezable_workqueue", name, WQ_FREEZABLE | WQ_UNBOUND)


def create_singlethread_workqueue(name: str) -> Workqueue | None:
    """
    Legacy: an ordered workqueue (the "single thread" of old kernels) with a rescuer.

    Raises:
        TypeError: *name* is not a ``str``.

    .. versionadded:: 0.1
    """
    return _create_legacy("create_singlethread_workqueue", name, WQ_UNBOUND | _WQ_ORDERED)


# --- system workqueues --------------------------------------------------------------------------

_SYSTEM_WQS: dict[str, tuple[str, int, int]] = {
    "events": ("events", WQ_PERCPU, 0),
    "events_highpri": ("events_highpri", WQ_PERCPU | WQ_HIGHPRI, 0),
    "events_long": ("events_long", WQ_PERCPU, 0),
    "events_unbound": ("events_unbound", WQ_UNBOUND, WQ_MAX_ACTIVE),
    "events_freezable": ("events_freezable", WQ_PERCPU | WQ_FREEZABLE, 0),
    "events_power_efficient": ("events_power_efficient", WQ_PERCPU | WQ_POWER_EFFICIENT, 0),
    "events_freezable_pwr_efficient": (
        "events_freezable_pwr_efficient",
        WQ_PERCPU | WQ_FREEZABLE | WQ_POWER_EFFICIENT,
        0,
    ),
    "events_bh": ("events_bh", WQ_BH, 0),
    "events_bh_highpri": ("events_bh_highpri", WQ_BH | WQ_HIGHPRI, 0),
    # system_wq and system_unbound_wq: workqueues of their own since 7.2, deprecated, with
    # the names (and so the pools) of their replacements system_percpu_wq and system_dfl_wq
    "events (system_wq)": ("events", WQ_PERCPU | _WQ_DEPRECATED, 0),
    "events_unbound (system_unbound_wq)": (
        "events_unbound",
        WQ_UNBOUND | _WQ_DEPRECATED,
        WQ_MAX_ACTIVE,
    ),
}


def system_workqueue(kernel: Kernel, name: str) -> Workqueue:
    st = wq_state(kernel)
    wq = st.system.get(name)
    if wq is None:
        fmt, flags, max_active = _SYSTEM_WQS[name]
        token = _current.set(kernel.cpus[0].swapper)
        try:
            made = alloc_workqueue(fmt, flags & ~_WQ_DEPRECATED, max_active)
        finally:
            _current.reset(token)
        assert made is not None
        made._flags |= flags & _WQ_DEPRECATED
        st.system[name] = wq = made
    return wq


def _system_ref(name: str) -> Workqueue:
    wq = Workqueue()
    wq._sysname = name
    return wq


system_percpu_wq = _system_ref("events")
system_wq = _system_ref("events (system_wq)")
system_highpri_wq = _system_ref("events_highpri")
system_long_wq = _system_ref("events_long")
system_dfl_wq = _system_ref("events_unbound")
system_unbound_wq = _system_ref("events_unbound (system_unbound_wq)")
system_freezable_wq = _system_ref("events_freezable")
system_power_efficient_wq = _system_ref("events_power_efficient")
system_freezable_power_efficient_wq = _system_ref("events_freezable_pwr_efficient")
system_bh_wq = _system_ref("events_bh")
system_bh_highpri_wq = _system_ref("events_bh_highpri")


# ---------------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------------


def create_worker(pool: WorkerPool, *, boot: bool = False) -> Worker | None:
    """``create_worker``: a new idle worker task in *pool*, or None if worker creation is
    blocked (:meth:`Kernel.block_worker_creation`; a pool's first worker, made at boot in the
    kernel, is always made)."""
    kernel = pool.kernel
    if kernel._halted:
        raise NoKernelError("the kernel is not running")
    if kernel._worker_creation_blocked and not boot:
        _need_worker(pool)
        return None
    # the lowest free id, as the kernel's ida does
    wid = heapq.heappop(pool.free_ids) if pool.free_ids else pool.next_id
    if wid == pool.next_id:
        pool.next_id += 1
    if pool.unbound:
        comm = f"kworker/u{pool.id}:{wid}"
        cpu = 0
    else:
        comm = f"kworker/{pool.cpu}:{wid}{'H' if pool.highpri else ''}"
        cpu = pool.cpu or 0
    worker = Worker(pool, wid, comm, kernel._alloc_pid(), cpu)
    pool.workers.append(worker)
    pool.idle.append(worker)
    worker.last_active = kernel.uptime()
    if kernel._trace_on:
        sched_wakeup(worker, new=True)
    if pool.unbound:
        light = kernel._light
        if light is not None:
            # the cheapest task the loop offers; the worker holds it
            worker.handle = light.start(_LightWorker(worker), comm)
        else:
            kernel._spawn(kworker_main, worker, name=comm)
    else:
        tg = kernel.cpus[cpu].task_group
        tg.start_soon(kworker_main, worker, name=comm)
    return worker


def _wake_worker(worker: Worker) -> None:
    task = worker.task
    if task.kernel._trace_on and task.state != TASK_RUNNING:
        sched_wakeup(task)
    task.state = TASK_RUNNING
    token = task._wake_event
    if token is not None:
        task._wake_event = None
        task.kernel._parker.unpark(token)


def kick_pool(pool: WorkerPool) -> bool:
    """Wake an idle worker if the pool has work and (per-CPU pools) nothing is running."""
    if pool.worklist and (pool.unbound or not pool.nr_running):
        if pool.idle:
            worker = pool.idle.pop()
            worker.is_idle = False
            _wake_worker(worker)
            return True
        if pool.kernel._worker_creation_blocked:
            _need_worker(pool)
    return False


# --- worker creation failing: mayday and the rescuers -----------------------------------------


def _need_to_create_worker(pool: WorkerPool) -> bool:
    """Items wait, nothing runs them, and no worker is idle (``need_to_create_worker``)."""
    return bool(pool.worklist) and (pool.unbound or not pool.nr_running) and not pool.idle


def _need_worker(pool: WorkerPool) -> None:
    """The pool needs a worker it cannot create: the mayday timer starts (once)."""
    timer = pool.mayday_timer
    if timer is None:
        timer = pool.mayday_timer = _MaydayTimer(pool)
    if timer._bucket is None:
        kernel = pool.kernel
        now = kernel.get_jiffies()
        delay = max(kernel.hz // MAYDAY_INITIAL_TIMEOUT_DIV, 2)
        _enqueue(kernel.cpus[pool.cpu or 0].std_base, timer, now + delay, now)


class _MaydayTimer(TimerList):
    __slots__ = ("pool",)
    _kdefer_internal = True  # the kernel's own timer: not named at shutdown, not "busy"

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__(_pool_mayday_timeout, 0)
        self.pool = pool


def _pool_mayday_timeout(timer: _MaydayTimer) -> None:
    """``pool_mayday_timeout``: still no worker for waiting items? Call every rescuer of a
    workqueue with items waiting here, and look again after MAYDAY_INTERVAL."""
    pool = timer.pool
    kernel = pool.kernel
    if not _need_to_create_worker(pool):
        return
    if not kernel._worker_creation_blocked:
        create_worker(pool)
        kick_pool(pool)
        return
    seen: set[int] = set()
    for work in pool.worklist:
        pwq = work._pwq
        if pwq is not None and id(pwq) not in seen:
            seen.add(id(pwq))
            _send_mayday(pwq)
    now = kernel.get_jiffies()
    _enqueue(
        kernel.cpus[pool.cpu or 0].std_base,
        timer,
        now + max(kernel.hz // MAYDAY_INTERVAL_DIV, 1),
        now,
    )


def _send_mayday(pwq: PoolWorkqueue) -> None:
    """``send_mayday``: hand *pwq*'s waiting items to its workqueue's rescuer, if it has one."""
    from ._sched import wake_up_process

    wq = pwq.wq
    rescuer = wq._rescuer
    if rescuer is None or rescuer._exited:
        return  # (a workqueue without WQ_MEM_RECLAIM just waits)
    if pwq not in wq._maydays:
        wq._maydays.append(pwq)
        wq._stats.mayday += 1
        wake_up_process(rescuer)


def set_worker_creation(kernel: Kernel, blocked: bool) -> None:
    """Block or unblock worker creation; unblocking makes the workers the pools need now."""
    kernel._worker_creation_blocked = blocked
    if blocked:
        return
    st: _WQState | None = getattr(kernel, "_wq_state", None)
    if st is None:
        return
    for pool in _all_pools(st):
        if not pool.bh and _need_to_create_worker(pool):
            create_worker(pool)
            kick_pool(pool)


async def worker_thread(worker: Worker) -> None:
    """The kworker loop: idle until kicked, then run items while the pool lets it.

    Items run in place: a plain function is called, an ``async def`` one's coroutine is awaited
    right here, so an item costs no task and, unless it sleeps, no trip through the event loop.
    :class:`_KWorkerDrive` around this coroutine sees every suspension inside an item and does
    what the scheduler's ``wq_worker_sleeping``/``wq_worker_running`` hooks do.
    """
    pool = worker.pool
    task = worker.task
    _current.set(task)
    claim(task)
    worker.started = True
    kernel = pool.kernel
    if kernel._trace_on:
        sched_in(task)
    unbound = pool.unbound
    worklist = pool.worklist
    perf = time.perf_counter
    checkpoint = anyio.lowlevel.checkpoint
    hog_s = pool.hog_s
    parker = kernel._parker
    percpu = not unbound
    coro_type = _CoroutineType
    # the tracepoints' fast path (inline below): objects that live as long as the kernel
    tracing = kernel.tracing
    t_enabled = tracing._enabled
    t_raws = tracing._raw
    t_clock = tracing._clock
    t_seq = tracing._seq
    try:
        while True:
            if worker.is_idle:
                # sleep until kick_pool() takes us off the idle list (or the cull retires us)
                task.state = TASK_INTERRUPTIBLE
                waiter = parker.wait(task)
                if kernel._trace_on:
                    sched_out(task, SWITCH_STATE_I)  # TASK_IDLE
                try:
                    await waiter
                finally:
                    task._wake_event = None
                    task.state = TASK_RUNNING
                    if kernel._trace_on:
                        sched_resume(task)
                if worker.die:
                    return
                continue
            # kicked: the waker took us off the idle list
            if not worklist or (not unbound and pool.nr_running):
                _enter_idle(worker)
                continue
            if not pool.idle:
                create_worker(pool)  # keep one idle worker in reserve
            if not unbound:
                pool.nr_running += 1
                worker.counted = True
            try:
                worker.t0 = yield_at = perf()
                since_yield = 0
                look = RESCHED_LOOK
                while worklist:
                    work = worklist.popleft()
                    other = work._worker
                    if other is not None and other.pool is pool:
                        if other.scheduled is None:
                            other.scheduled = deque()
                        other.scheduled.append(work)  # runs right after, in that worker
                        continue
                    while True:
                        # process_one_work(): the bookkeeping before the function runs
                        pwq = work._pwq
                        assert pwq is not None
                        wq = pwq.wq
                        func = work.func
                        assert func is not None
                        color = work._color
                        work._worker = worker
                        worker.current_work = work
                        worker.current_func = func
                        worker.current_pwq = pwq
                        barriers = work._barriers
                        if barriers is not None:
                            work._barriers = None
                            if worker.barriers is None:
                                worker.barriers = barriers
                            else:
                                worker.barriers.extend(barriers)
                            worker.special = True
                        work._pending = False  # may be queued again by its own function
                        work._pwq = None
                        work._pool = pool
                        if unbound:
                            task.cpu = work._queue_cpu
                        if wq._flags & WQ_CPU_INTENSIVE and worker.counted:
                            worker.cpu_intensive = True
                            worker.special = True
                            pool.nr_running -= 1
                        if (unbound or not pool.nr_running) and worklist and pool.idle:
                            kick_pool(pool)  # chain execution for workers not counted running
                        # the function, in place
                        # (a suspension from here until current_work is cleared is the item
                        # sleeping: _KWorkerDrive watches for it)
                        traced = kernel._trace_on  # (the end is traced only if the start was)
                        if traced:  # (emit(), inline: the hot path)
                            if WORKQUEUE_EXECUTE_START not in t_enabled:
                                pass
                            elif (
                                task.preempt_count
                                or task.irqs_off
                                or task.migration_disabled
                                or task.need_resched
                            ):
                                emit(kernel, task, WORKQUEUE_EXECUTE_START, work, func)
                            else:
                                raw = t_raws[task.cpu]
                                raw.append(
                                    (
                                        t_clock(),
                                        t_seq(),
                                        task,
                                        0,
                                        WORKQUEUE_EXECUTE_START,
                                        work,
                                        func,
                                    )
                                )
                                if len(raw) > tracing._check:
                                    tracing._after(task.cpu)
                        try:
                            result = func(work)
                            if type(result) is coro_type or (
                                result is not None and inspect.isawaitable(result)
                            ):
                                await result
                        except KernelPanic:
                            raise
                        except Exception as exc:
                            _work_oops(worker, func, wq, exc)  # (may panic: panic_on_oops)
                        except BaseException:
                            work_cancelled(worker, work, func, wq)  # the kernel is going down
                            raise
                        finally:
                            # ... and the bookkeeping after it (also when cancelled)
                            if (
                                traced and kernel._trace_on and WORKQUEUE_EXECUTE_END in t_enabled
                            ):  # (emit(), inline: only if the start was traced)
                                if (
                                    task.preempt_count
                                    or task.irqs_off
                                    or task.migration_disabled
                                    or task.need_resched
                                ):
                                    emit(kernel, task, WORKQUEUE_EXECUTE_END, work, func)
                                else:
                                    raw = t_raws[task.cpu]
                                    raw.append(
                                        (
                                            t_clock(),
                                            t_seq(),
                                            task,
                                            0,
                                            WORKQUEUE_EXECUTE_END,
                                            work,
                                            func,
                                        )
                                    )
                                    if len(raw) > tracing._check:
                                        tracing._after(task.cpu)
                            now = perf()
                            ran = now - worker.t0
                            worker.t0 = now
                            pwq.cpu_time += ran
                            if worker.special:
                                _finish_special(worker, wq, ran)
                            elif ran >= hog_s and percpu:
                                # a hog seen only as it returns: counted and reported as
                                # wq_worker_tick() would, not flagged (process_one_work()
                                # clears the flag as the item ends; left set, it would take
                                # this worker off nr_running a second time when it goes idle)
                                wq._stats.cpu_intensive += 1
                                _report_hog(pool.kernel, func)
                            if task.preempt_count:
                                _leaked_atomic(worker)
                            if work._worker is worker:
                                work._worker = None
                            worker.current_work = None  # (current_func only means something
                            worker.current_pwq = None  # while current_work is set)
                            pwq.completed += 1
                            # pwq_dec_nr_in_flight(): free the slot, activate the next inactive
                            # item (onto this pool's worklist, where this loop finds it)
                            inactive = pwq.inactive
                            if inactive and pwq.nr_active <= wq._limit:
                                # the slot passes straight to the first inactive item
                                nxt = inactive.popleft()
                                nxt._inactive = False
                                if not kernel._trace_on or WORKQUEUE_ACTIVATE_WORK not in t_enabled:
                                    pass
                                elif (
                                    task.preempt_count
                                    or task.irqs_off
                                    or task.migration_disabled
                                    or task.need_resched
                                ):
                                    emit_locked(
                                        kernel, task, WORKQUEUE_ACTIVATE_WORK, nxt, nxt.func
                                    )
                                else:  # (emit_locked(), inline: the hot path)
                                    raw = t_raws[task.cpu]
                                    ev = WORKQUEUE_ACTIVATE_WORK
                                    raw.append(
                                        (t_clock(), t_seq(), task, _LOCKED, ev, nxt, nxt.func)
                                    )
                                    if len(raw) > tracing._check:
                                        tracing._after(task.cpu)
                                if not worklist:
                                    worklist_busy(pool)
                                worklist.append(nxt)
                            else:
                                pwq.nr_active -= 1
                            color.n -= 1
                            if not color.n and color is not wq._color:
                                color_done(wq, color)
                            if wq._frozen and wq._kernel is not None:
                                wake_up_var(wq._kernel, wq._kernel)  # the freezer waits
                        if not worker.scheduled:
                            break
                        work = worker.scheduled.popleft()  # collided with us: runs behind
                    # cond_resched(): let the rest of the loop run every RESCHED_ITEMS items,
                    # or once a run of items has kept the CPU for RESCHED_S (looked at every
                    # RESCHED_LOOK items)
                    look -= 1
                    if not look:
                        look = RESCHED_LOOK
                        since_yield += RESCHED_LOOK
                        if since_yield >= RESCHED_ITEMS or worker.t0 - yield_at >= RESCHED_S:
                            await checkpoint()
                            since_yield = 0
                            worker.t0 = yield_at = perf()
                    if percpu and pool.nr_running > 1:
                        break  # keep_working(): only while we are the only one running
            finally:
                if worker.counted:
                    pool.nr_running -= 1
                    worker.counted = False
            _enter_idle(worker)
            kick_pool(pool)
    finally:
        if worker in pool.workers:
            pool.workers.remove(worker)
        if worker.is_idle and worker in pool.idle:
            pool.idle.remove(worker)
        heapq.heappush(pool.free_ids, worker.id)
        if kernel._trace_on:
            sched_exit(task)


def _enter_idle(worker: Worker) -> None:
    pool = worker.pool
    worker.is_idle = True
    worker.last_active = pool.kernel.uptime()
    pool.idle.append(worker)
    if _too_many_workers(pool):
        _arm_idle_timer(pool)


def _too_many_workers(pool: WorkerPool) -> bool:
    nr_idle = len(pool.idle)
    nr_busy = len(pool.workers) - nr_idle
    return nr_idle > 2 and (nr_idle - 2) * MAX_IDLE_WORKERS_RATIO >= nr_busy


def _arm_idle_timer(pool: WorkerPool) -> None:
    kernel = pool.kernel
    timer = pool.idle_timer
    if timer is None:
        timer = pool.idle_timer = _PoolTimer(pool)
    if timer._bucket is not None:
        return
    oldest = pool.idle[0].last_active
    expires = kernel.get_jiffies() + max(
        1, int((oldest + IDLE_WORKER_TIMEOUT_S - kernel.uptime()) * kernel.hz) + 1
    )
    _enqueue(kernel.cpus[pool.cpu or 0].std_base, timer, expires, kernel.get_jiffies())


class _PoolTimer(TimerList):
    __slots__ = ("pool",)
    _kdefer_internal = True  # the kernel's own timer: not named at shutdown, not "busy"

    def __init__(self, pool: WorkerPool) -> None:
        super().__init__(_idle_cull, 0)
        self.pool = pool


def _idle_cull(timer: _PoolTimer) -> None:
    """``idle_cull_fn``: retire idle workers that have been idle for IDLE_WORKER_TIMEOUT."""
    pool = timer.pool
    now = pool.kernel.uptime()
    while _too_many_workers(pool):
        worker = pool.idle[0]  # the one idle the longest
        if now - worker.last_active < IDLE_WORKER_TIMEOUT_S:
            _arm_idle_timer(pool)
            return
        pool.idle.pop(0)
        worker.is_idle = False
        pool.workers.remove(worker)
        worker.die = True
        _wake_worker(worker)


# ---------------------------------------------------------------------------------------------
# Executing one item
# ---------------------------------------------------------------------------------------------


class _KWorkerDrive(Coroutine[Any, Any, None]):
    """A kworker's task coroutine: drives :func:`worker_thread`, watching it suspend.

    A suspension while the worker is inside an item is the item sleeping. Unless it is a bare
    reschedule (``cond_resched()``), that is ``wq_worker_sleeping()``: a per-CPU pool's running
    count drops and, if that leaves the pool idle with items waiting, another worker is woken;
    on resumption the count rises again (``wq_worker_running()``). The time an item spends
    suspended is not counted as CPU time.

    It is a coroutine object in its own right (``send``/``throw``/``close``), so an asyncio
    task can run it directly, and an awaitable (it is its own ``__await__`` iterator), so an
    ``async def`` can await it: no generator frame and no wrapper coroutine per kworker.
    """

    __slots__ = ("coro", "in_func", "worker")

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.coro = worker_thread(worker)
        self.in_func = False  # the last suspension was inside an item

    def send(self, value: Any) -> Any:
        self._resumed()
        return self._suspending(self.coro.send(value))

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._resumed()
        if val is None and tb is None:
            return self._suspending(self.coro.throw(typ))
        return self._suspending(self.coro.throw(typ, val, tb))  # pragma: no cover

    def close(self) -> None:
        self.coro.close()

    def __next__(self) -> Any:
        return self.send(None)

    def __await__(self) -> Generator[Any, Any, None]:
        return self  # type: ignore[return-value]

    def _resumed(self) -> None:
        worker = self.worker
        if worker.asleep:
            worker.asleep = False
            worker.pool.nr_running += 1  # wq_worker_running()
        if self.in_func:
            worker.t0 = time.perf_counter()

    def _suspending(self, yielded: Any) -> Any:
        worker = self.worker
        in_func = self.in_func = worker.current_work is not None
        if in_func:
            worker.special = True
            _account_run(worker, time.perf_counter() - worker.t0)
            if not _is_resched(yielded):
                worker.ran = 0.0  # the next stretch starts a new CPU-hog measurement
                if worker.counted and not worker.cpu_intensive:
                    # wq_worker_sleeping(): a running worker blocks; let another start
                    pool = worker.pool
                    worker.asleep = True
                    pool.nr_running -= 1
                    if worklist_waits(pool) and kick_pool(pool):
                        pwq = worker.current_pwq
                        if pwq is not None:
                            pwq.wq._stats.cm_wakeup += 1
        return yielded


class _LightWorker(Coroutine[Any, Any, None]):
    """An unbound kworker on asyncio: its whole loop as one coroutine object, no frame.

    Thousands of unbound kworkers may be asleep at once (one per sleeping item), so each is
    kept as small as it can be: this object is the asyncio task's coroutine and drives the
    item's coroutine itself; between items it runs :func:`worker_thread`'s logic for an
    unbound pool (which has no concurrency management) as plain method calls, and its
    ``process_one_work`` bookkeeping is the inline code of that loop, step for step. While
    the worker is idle it waits on the parker's future; a due reschedule is a bare yield.
    """

    __slots__ = (
        "bare",
        "batch",
        "color",
        "exited",
        "item",
        "since",
        "sub",
        "work",
        "worker",
        "yield_at",
    )

    def __init__(self, worker: Worker) -> None:
        self.worker = worker  # I
        self.item: Any = None  # the current item's coroutine (or awaitable iterator)
        self.work: Work | None = None  # ... and its work
        self.color: _Color | None = None  # ... and its flush color
        self.sub: Any = None  # the iterator of the idle wait
        self.batch = False  # running the worklist (worker_thread's inner loop)
        self.bare = False  # the last yield was a bare reschedule
        self.since = 0  # items run since the last reschedule
        self.yield_at = 0.0  # perf_counter() at the last reschedule
        self.exited = False

    # -- the coroutine protocol (what an asyncio task calls) ----------------------------------

    def send(self, value: Any) -> Any:
        return self._run(value, None)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        exc = typ if isinstance(typ, BaseException) else (val if val is not None else typ())
        return self._run(None, exc)

    def close(self) -> None:
        item, sub = self.item, self.sub
        self.item = self.sub = None
        try:
            if item is not None:
                item.close()
            if sub is not None and hasattr(sub, "close"):
                sub.close()
        finally:
            self._exit()

    def __await__(self) -> Generator[Any, Any, None]:  # pragma: no cover - run as a task
        raise TypeError("a light kworker runs as its own task; it is not awaited")

    @property
    def light_of(self) -> Kernel:
        """The kernel whose light task this is (see ``_lighttask``)."""
        return self.worker.kernel

    # -- the loop --------------------------------------------------------------------------

    def _run(self, value: Any, exc: BaseException | None) -> Any:
        worker = self.worker
        try:
            if not worker.started:
                _current.set(worker)
                claim(worker)
                worker.started = True
                if worker.kernel._trace_on:
                    sched_in(worker)
            worker.t0 = now = time.perf_counter()  # (a new run: sleep time is not CPU time)
            if self.bare:
                self.bare = False
                self.yield_at = now
            while True:
                item = self.item
                if item is not None:
                    try:
                        yielded = item.send(value) if exc is None else item.throw(exc)
                    except StopIteration:
                        err: BaseException | None = None
                    except BaseException as e:  # handled by item_finish, once the item is done
                        err = e
                    else:
                        self._suspends(yielded)
                        return yielded
                    value = exc = None
                    self.item = None
                else:
                    sub = self.sub
                    if sub is not None:
                        try:
                            yielded = sub.send(value) if exc is None else sub.throw(exc)
                        except StopIteration:
                            self.sub = None
                            value = None
                            worker._wake_event = None
                            worker.state = TASK_RUNNING
                            if worker.kernel._trace_on:
                                sched_resume(worker)
                            if worker.die:
                                raise StopIteration from None
                            continue
                        return yielded
                    if exc is not None:
                        raise exc  # thrown at a bare reschedule: a cancellation
                    work = self._next_work()
                    if work is None:
                        # idle until kick_pool() takes us off the idle list (or the cull
                        # retires us)
                        worker.state = TASK_INTERRUPTIBLE
                        self.sub = worker.kernel._parker.wait(worker).__await__()
                        if worker.kernel._trace_on:
                            sched_out(worker, SWITCH_STATE_I)  # TASK_IDLE
                        continue
                    # process_one_work()
                    func, self.color = item_start(worker, work)
                    self.work = work
                    try:
                        result = func(work)
                    except BaseException as e:
                        err = e
                    else:
                        if type(result) is _CoroutineType:
                            self.item = result  # its first step: at the top of the loop
                            continue
                        if result is not None and inspect.isawaitable(result):
                            self.item = result.__await__()
                            continue
                        err = None
                # the item returned or raised
                self._end(err)
                # cond_resched(): after RESCHED_ITEMS items, or RESCHED_S of running, yield
                if self.batch:
                    self.since += 1
                    if self.since >= RESCHED_ITEMS or worker.t0 - self.yield_at >= RESCHED_S:
                        self.since = 0
                        self.bare = True
                        return None
        except BaseException:
            self._exit()
            raise

    def _next_work(self) -> Work | None:
        """The next item for this worker, or None to go idle (worker_thread's loop)."""
        worker = self.worker
        pool = worker.pool
        worklist = pool.worklist
        scheduled = worker.scheduled
        if scheduled:
            return scheduled.popleft()  # collided with the last one: runs right behind it
        while True:
            if not self.batch:
                if worker.is_idle:
                    return None
                # kicked: the waker took us off the idle list
                if not worklist:
                    _enter_idle(worker)
                    return None
                if not pool.idle:
                    create_worker(pool)  # keep one idle worker in reserve
                self.batch = True
                self.since = 0
                self.yield_at = worker.t0
            if not worklist:
                self.batch = False
                _enter_idle(worker)
                kick_pool(pool)
                return None
            work = worklist.popleft()
            other = work._worker
            if other is not None and other.pool is pool:
                if other.scheduled is None:
                    other.scheduled = deque()
                other.scheduled.append(work)  # runs right after, in that worker
                continue
            return work

    def _suspends(self, yielded: Any) -> None:
        """The item suspended: charge its run so far; a real sleep restarts the clock."""
        worker = self.worker
        worker.special = True
        _account_run(worker, time.perf_counter() - worker.t0)
        if not _is_resched(yielded):
            worker.ran = 0.0

    def _end(self, err: BaseException | None) -> None:
        """The bookkeeping after the function returned or raised (``process_one_work``)."""
        work, color = self.work, self.color
        assert work is not None
        assert color is not None
        self.work = None
        self.color = None
        item_finish(self.worker, work, color, err)

    def _exit(self) -> None:
        """The worker's task ends: off the pool's lists, its id free again."""
        if self.exited:
            return
        self.exited = True
        worker = self.worker
        pool = worker.pool
        if worker in pool.workers:
            pool.workers.remove(worker)
        if worker.is_idle and worker in pool.idle:
            pool.idle.remove(worker)
        heapq.heappush(pool.free_ids, worker.id)
        if worker.kernel._trace_on:
            sched_exit(worker)


def item_start(worker: Worker, work: Work) -> tuple[Callable[..., Any], _Color]:
    """``process_one_work`` up to the call: *worker* (a light or rescuer worker) takes *work*.

    The same steps as :func:`worker_thread`'s inline code, which is kept inline for speed.
    Returns the function to call and the item's flush color.
    """
    pool = worker.pool
    pwq = work._pwq
    assert pwq is not None
    func = work.func
    assert func is not None
    color = work._color
    work._worker = worker
    worker.current_work = work
    worker.current_func = func
    worker.current_pwq = pwq
    barriers = work._barriers
    if barriers is not None:
        work._barriers = None
        if worker.barriers is None:
            worker.barriers = barriers
        else:
            worker.barriers.extend(barriers)
        worker.special = True
    work._pending = False  # may be queued again by its own function
    work._pwq = None
    work._pool = pool
    if pool.unbound:
        worker.cpu = work._queue_cpu
    if pool.worklist and pool.idle and (pool.unbound or not pool.nr_running):
        kick_pool(pool)  # chain execution for workers that do not count as running
    if pool.kernel._trace_on:
        emit(pool.kernel, worker, WORKQUEUE_EXECUTE_START, work, func)
    return func, color


def item_finish(worker: Worker, work: Work, color: _Color, err: BaseException | None) -> None:
    """``process_one_work`` after the call: the bookkeeping once the function returned (or
    raised *err*: an oops, or re-raised if it is a cancellation or the kernel's panic)."""
    pool = worker.pool
    pwq = worker.current_pwq
    func = worker.current_func
    assert pwq is not None
    assert func is not None
    kernel = pool.kernel
    if kernel._trace_on:
        emit(kernel, worker, WORKQUEUE_EXECUTE_END, work, func)
    wq = pwq.wq
    now = time.perf_counter()
    ran = now - worker.t0
    worker.t0 = now
    pwq.cpu_time += ran
    if worker.special:
        _finish_special(worker, wq, ran)
    if worker.preempt_count:
        _leaked_atomic(worker)
    if work._worker is worker:
        work._worker = None
    worker.current_work = None
    worker.current_pwq = None
    pwq.completed += 1
    inactive = pwq.inactive
    if inactive and pwq.nr_active <= wq._limit:
        nxt = inactive.popleft()
        nxt._inactive = False
        if kernel._trace_on:
            emit_locked(kernel, worker, WORKQUEUE_ACTIVATE_WORK, nxt, nxt.func)
        if not pool.worklist:
            worklist_busy(pool)
        pool.worklist.append(nxt)
    else:
        pwq.nr_active -= 1
    color.n -= 1
    if not color.n and color is not wq._color:
        color_done(wq, color)
    if wq._frozen and wq._kernel is not None:
        wake_up_var(wq._kernel, wq._kernel)
    if err is not None:
        _work_failed(worker, work, func, wq, err)


def worklist_waits(pool: WorkerPool) -> bool:
    return bool(pool.worklist) and not pool.nr_running


async def kworker_main(worker: Worker) -> None:
    """A kworker's body as an anyio task. The kernel's own panic (``panic_on_oops``) ends it
    quietly: the kernel raises that panic once, from ``async with``."""
    try:
        await _KWorkerDrive(worker)
    except KernelPanic as exc:
        if exc is not worker.pool.kernel._panic:
            raise


_CoroutineType = types.CoroutineType

_RESCHED_TRAPS: tuple[object, ...] | None = None


def _is_resched(yielded: object) -> bool:
    """Whether a work function's coroutine yielded a plain reschedule, not a sleep.

    asyncio's ``sleep(0)`` (anyio's checkpoint) yields ``None``; trio's checkpoint yields its
    ``CancelShieldedCheckpoint`` trap. Everything else waits for something: a sleep.
    """
    global _RESCHED_TRAPS
    if yielded is None:
        return True
    traps = _RESCHED_TRAPS
    if traps is None:
        mod = sys.modules.get("trio._core._traps")
        if mod is None:
            return False
        traps = _RESCHED_TRAPS = (mod.CancelShieldedCheckpoint,)
    return any(yielded is trap for trap in traps)


def _account_run(worker: Worker, seconds: float) -> None:
    """Charge *seconds* of CPU to the worker's current item (it is about to suspend)."""
    pwq = worker.current_pwq
    if pwq is None:
        return
    wq = pwq.wq
    pwq.cpu_time += seconds
    worker.ran += seconds
    if worker.ran >= worker.pool.hog_s and not worker.cpu_intensive and not worker.pool.unbound:
        _hogged(worker, wq)


def _hogged(worker: Worker, wq: Workqueue) -> None:
    """``wq_worker_tick()``: the item ran too long without sleeping; flag it CPU-intensive."""
    pool = worker.pool
    worker.cpu_intensive = True
    worker.special = True
    if worker.counted:
        pool.nr_running -= 1
    wq._stats.cpu_intensive += 1
    _report_hog(pool.kernel, worker.current_func)
    kick_pool(pool)


def _report_hog(kernel: Kernel, func: object) -> None:
    st = wq_state(kernel)
    cnt = st.hog_counts.get(func, 0) + 1
    st.hog_counts[func] = cnt
    over = cnt + 1 - CPU_INTENSIVE_WARNING_THRESH
    if cnt >= CPU_INTENSIVE_WARNING_THRESH and over & (over - 1) == 0:
        log_text(
            kernel,
            4,
            f"workqueue: {symbol_name(func)} hogged CPU for "
            f">{kernel.wq_cpu_intensive_thresh_us}us {cnt} times, consider switching to "
            "WQ_UNBOUND",
        )


def _work_failed(
    worker: Worker, work: Work, func: Callable[..., Any], wq: Workqueue, err: BaseException
) -> None:
    """A work function raised *err*: an oops (the pool goes on), or re-raised if it is not an
    ordinary exception (a cancellation, the kernel's panic)."""
    if not isinstance(err, Exception) or isinstance(err, KernelPanic):
        if not isinstance(err, KernelPanic):
            work_cancelled(worker, work, func, wq)  # the kernel is going down
        raise err
    _work_oops(worker, func, wq, err)


def _work_oops(worker: Worker, func: Callable[..., Any], wq: Workqueue, err: Exception) -> None:
    """A work function raised *err*: an oops of the kworker; the pool goes on (unless the
    kernel panics on oops: then this raises the panic)."""
    record_oops(worker, err, f"work function {symbol_name(func)} (workqueue {wq._name})")
    worker.pool.kernel._after_oops(err)


def worklist_busy(pool: WorkerPool) -> None:
    """The pool's worklist is about to become busy: that is forward progress, and something
    for the watchdog to watch."""
    kernel = pool.kernel
    pool.watchdog_ts = kernel.get_jiffies()
    if kernel.wq_watchdog_thresh:
        wq_watchdog_arm(kernel)


def _finish_special(worker: Worker, wq: Workqueue, ran: float) -> None:
    """The end of an item that rescheduled, turned CPU-intensive or has flushers waiting."""
    worker.special = False
    if worker.ran:
        # it rescheduled on the way: that run continues from before
        ran += worker.ran
        worker.ran = 0.0
    pool = worker.pool
    if ran >= pool.hog_s and not pool.unbound and not worker.cpu_intensive:
        _hogged(worker, wq)
    if worker.cpu_intensive:
        worker.cpu_intensive = False
        if worker.counted:
            pool.nr_running += 1
    done = worker.barriers
    if done:
        worker.barriers = None
        complete_barriers(pool.kernel, done)


def _leaked_atomic(worker: Worker) -> None:
    task = worker.task
    kernel = worker.pool.kernel
    log_text(
        kernel,
        3,
        f"BUG: workqueue leaked atomic, lock or RCU: {task.comm}[{task.pid}]\n"
        f"     preempt=0x{task.preempt_count:08x} lock=0->0 RCU=0->0 "
        f"workfn={symbol_name(worker.current_func)}",
    )
    task.preempt_count = 0


def pwq_dec_nr_in_flight(pwq: PoolWorkqueue, color: _Color, *, active: bool) -> None:
    """An instance finished (or was stolen): free its slot, activate the next, wake flushers."""
    wq = pwq.wq
    if active and not pwq.pool.bh:
        pwq.nr_active -= 1
        if pwq.inactive:
            _activate_inactive(pwq)
    color.n -= 1
    if not color.n and color is not wq._color:
        color_done(wq, color)
    if wq._frozen and wq._kernel is not None:
        wake_up_var(wq._kernel, wq._kernel)  # the freezer waits for active items


def _activate_inactive(pwq: PoolWorkqueue) -> None:
    limit = pwq.wq._limit
    pool = pwq.pool
    worklist = pool.worklist
    inactive = pwq.inactive
    was_idle = not worklist
    woke = False
    while inactive and pwq.nr_active < limit:
        work = inactive.popleft()
        work._inactive = False
        kernel = pool.kernel
        if kernel._trace_on:
            emit_locked(
                kernel, site_task(kernel, pool.cpu or 0), WORKQUEUE_ACTIVATE_WORK, work, work.func
            )
        pwq.nr_active += 1
        worklist.append(work)
        woke = True
    if woke:
        kick_pool(pool)
        if was_idle:
            worklist_busy(pool)


# ---------------------------------------------------------------------------------------------
# The watchdog (CONFIG_WQ_WATCHDOG)
# ---------------------------------------------------------------------------------------------


class _WatchdogTimer(TimerList):
    __slots__ = ("kernel",)
    _kdefer_internal = True  # the kernel's own timer: not named at shutdown, not "busy"

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(_wq_watchdog_timer_fn, 0)
        self.kernel = kernel


def _all_pools(st: _WQState) -> list[WorkerPool]:
    pools = [p for pair in st.cpu_pools for p in pair if p is not None]
    pools.extend(p for p in st.unbound_pools if p is not None)
    return pools


def wq_watchdog_arm(kernel: Kernel) -> None:
    """Arm the watchdog's check, ``wq_watchdog_thresh`` from now, unless it is armed.

    It only runs while some pool has work waiting, so an idle kernel stays tickless.
    """
    st = wq_state(kernel)
    timer = st.watchdog
    if timer is None:
        timer = st.watchdog = _WatchdogTimer(kernel)
    if timer._bucket is not None:
        return
    now = kernel.get_jiffies()
    thresh = max(1, round(kernel.wq_watchdog_thresh * kernel.hz))
    _enqueue(kernel.cpus[0].std_base, timer, now + thresh, now)


def _pool_desc(pool: WorkerPool) -> str:
    if pool.unbound:
        n = pool.kernel.nr_cpus
        cpus = f"0-{n - 1}" if n > 1 else "0"
        return f"cpus={cpus} flags=0x4 nice={-20 if pool.highpri else 0}"
    return f"cpus={pool.cpu} node=0 flags=0x0 nice={-20 if pool.highpri else 0}"


def _wq_watchdog_timer_fn(timer: _WatchdogTimer) -> None:
    """``wq_watchdog_timer_fn``: a pool with work waiting and no progress for longer than
    the threshold is a lockup."""
    kernel = timer.kernel
    st = wq_state(kernel)
    now = kernel.get_jiffies()
    thresh = max(1, round(kernel.wq_watchdog_thresh * kernel.hz))
    stalled: list[WorkerPool] = []
    waiting = False
    for pool in _all_pools(st):
        worklist = pool.worklist
        head = worklist[0] if worklist else None
        if head is not pool.wd_head:
            pool.wd_head = head
            pool.watchdog_ts = now  # a worker took items since the last look
        if not worklist:
            continue
        waiting = True
        if now - pool.watchdog_ts > thresh:
            stalled.append(pool)
            pool.watchdog_ts = now  # report a stuck pool once per threshold
    for pool in stalled:
        stuck = (now - pool.watchdog_ts + thresh + 1) // kernel.hz
        log_text(
            kernel,
            0,
            f"BUG: workqueue lockup - pool {_pool_desc(pool)} stuck for {max(stuck, 1)}s!",
        )
    if stalled:
        _show_busy(kernel, st)
    if waiting:
        wq_watchdog_arm(kernel)


def _show_busy(kernel: Kernel, st: _WQState) -> None:
    """``show_all_workqueues``: the busy workqueues and pools, as the kernel prints them."""
    log_text(kernel, 6, "Showing busy workqueues and worker pools:")
    for wq in st.workqueues:
        pwqs = [p for p in wq._pwqs if p is not None and (p.nr_active or p.inactive)]
        if not pwqs:
            continue
        log_text(kernel, 6, f"workqueue {wq._name}: flags=0x{wq._flags:x}")
        for pwq in pwqs:
            pool = pwq.pool
            log_text(
                kernel,
                6,
                f"  pwq {pool.id}: {_pool_desc(pool)} active={pwq.nr_active} "
                f"refcnt={pwq.nr_active + len(pwq.inactive) + 1}",
            )
            running = [w for w in pool.workers if w.current_pwq is pwq]
            if running:
                log_text(
                    kernel,
                    6,
                    "    in-flight: "
                    + " ".join(f"{w.task.pid}:{symbol_name(w.current_func)}" for w in running),
                )
            pending = [w for w in pool.worklist if w._pwq is pwq]
            if pending:
                log_text(
                    kernel, 6, "    pending: " + " ".join(symbol_name(w.func) for w in pending)
                )
            if pwq.inactive:
                log_text(
                    kernel,
                    6,
                    "    inactive: " + " ".join(symbol_name(w.func) for w in pwq.inactive),
                )
    for pool in _all_pools(st):
        if pool.worklist or len(pool.idle) != len(pool.workers):
            idle = " ".join(str(w.task.pid) for w in pool.idle)
            log_text(
                kernel,
                6,
                f"pool {pool.id}: {_pool_desc(pool)} hung="
                f"{(kernel.get_jiffies() - pool.watchdog_ts) // kernel.hz}s workers="
                f"{len(pool.workers)} idle: {idle}",
            )


# ---------------------------------------------------------------------------------------------
# BH pools: run from the TASKLET / HI softirqs, before the tasklets
# ---------------------------------------------------------------------------------------------


def bh_pools_action(cpu: CPU, highpri: bool) -> None:
    """``workqueue_softirq_action``: run this CPU's BH items (up to 10 per activation)."""
    kernel = cpu.kernel
    st: _WQState = kernel._wq_state  # type: ignore[attr-defined]
    pool = st.bh_pools[cpu.nr][highpri]
    if pool is None or not pool.worklist:
        return
    task = _cur()
    restarts = BH_WORKER_RESTARTS
    end = kernel.get_jiffies() + kernel.max_softirq_time
    nr = HI_SOFTIRQ if highpri else TASKLET_SOFTIRQ
    while pool.worklist:
        work = pool.worklist.popleft()
        pwq = work._pwq
        assert pwq is not None
        func = work.func
        color = work._color
        barriers = work._barriers
        work._barriers = None
        work._pending = False
        work._pwq = None
        work._pool = pool
        work._worker = _BH_WORKER
        prev = task.preempt_count
        assert func is not None
        if kernel._trace_on:
            emit(kernel, task, WORKQUEUE_EXECUTE_START, work, func)
        try:
            result = func(work)
        except Exception as exc:
            work._worker = None
            panic_in_interrupt(task, exc, f"BH work {symbol_name(func)}")
            raise
        if kernel._trace_on:
            emit(kernel, task, WORKQUEUE_EXECUTE_END, work, func)
        work._worker = None
        cpu.progress += 1
        if result is not None:
            run_atomic_result(task, result, func)
        if task.preempt_count != prev:
            task.preempt_count = prev
        pwq.completed += 1
        if barriers:
            complete_barriers(kernel, barriers)
        pwq_dec_nr_in_flight(pwq, color, active=False)
        restarts -= 1
        if pool.worklist and (not restarts or kernel.get_jiffies() >= end):
            if kernel._trace_on:
                emit(kernel, task, SOFTIRQ_RAISE, nr)
            cpu.pending |= 1 << nr
            break


class _BHWorker:
    """Stands in ``work._worker`` for a BH item while it runs (in softirq, no kworker)."""

    __slots__ = ()
    pool = None


_BH_WORKER: Any = _BHWorker()


# ---------------------------------------------------------------------------------------------
# Queueing
# ---------------------------------------------------------------------------------------------


def _is_chained(task: TaskStruct, wq: Workqueue) -> bool:
    if isinstance(task, KWorkerTask):
        pwq = task.worker.current_pwq
        return pwq is not None and pwq.wq is wq
    return bool(task.preempt_count & SOFTIRQ_OFFSET and wq._flags & WQ_BH)


def _queue_now(task: TaskStruct, cpu: int, wq: Workqueue, work: Work) -> None:
    """Put a PENDING *work* on *wq* for *cpu* (``__queue_work``)."""
    req_cpu = cpu
    if task.kernel._aborting:
        drop_late_work(task.kernel, work, wq)  # the kernel is going down: named, not queued
        return
    if wq._flags & _WQ_DEPRECATED:
        _warn_deprecated(task.kernel, work)
    if (wq._draining or wq._destroyed) and (wq._destroyed or not _is_chained(task, wq)):
        warn_once(
            ("cannot queue",),  # WARN_ONCE: one per boot, whatever the item and workqueue
            "workqueue: cannot queue %ps on wq %s\n",
            work.func,
            wq._name,
        )
        work._pending = False
        return
    if cpu == WORK_CPU_UNBOUND:
        cpu = task.cpu
    pwq = wq.pwq_for(cpu)
    pool = pwq.pool
    if not (pool.bh or wq._draining or wq._destroyed):
        wq._qpwq[cpu] = pwq  # the next queueing here may take queue_work()'s short way
    last = work._pool
    if last is not None and last is not pool and not pool.bh:
        running = work._worker
        if running is not None and running is not _BH_WORKER and running.pool is last:
            cur = running.current_pwq
            if cur is not None and cur.wq is wq:
                pwq = cur
                pool = last
    work._pwq = pwq
    work._queue_cpu = cpu
    color = wq._color
    work._color = color
    color.n += 1
    kernel = task.kernel
    if kernel._trace_on:
        trace_queue(
            task,
            req_cpu,
            wq,
            work,
            pwq,
            pool.bh or (not pwq.inactive and pwq.nr_active < wq._limit),
        )
    if pool.bh:
        pool.worklist.append(work)
        target = kernel.cpus[pool.cpu or 0]
        nr = HI_SOFTIRQ if pool.highpri else TASKLET_SOFTIRQ
        if kernel._trace_on:
            trace_raise_on(kernel, task, target, nr)
        target.pending |= 1 << nr
        if target.nr != task.cpu or not task.preempt_count & IRQ_MASK:
            wakeup_softirqd(target)
        return
    if not pwq.inactive and pwq.nr_active < wq._limit:
        pwq.nr_active += 1
        if not pool.worklist:
            worklist_busy(pool)
        pool.worklist.append(work)
        if pool.idle and (pool.unbound or not pool.nr_running):
            kick_pool(pool)
    else:
        work._inactive = True
        pwq.inactive.append(work)


def _warn_deprecated(kernel: Kernel, work: Work) -> None:
    """``pr_warn_once`` in ``__queue_work`` (7.2): one line per boot, whichever deprecated
    workqueue it was. (queue_work()'s short way is only taken once this has run.)"""
    if "deprecated wq" not in kernel._warned_once:
        kernel._warned_once.add("deprecated wq")
        log_text(
            kernel,
            4,
            f"workqueue: work func {symbol_name(work.func)} enqueued on deprecated workqueue. "
            "Use system_{percpu|dfl}_wq instead.",
        )


def _queue_checks(wq: Workqueue, work: Work, func: str) -> None:
    """The items of a BH workqueue run in softirq context: an ``async def`` one cannot."""
    if wq._flags & WQ_BH and is_async_func(work.func):
        raise TypeError(
            f"{func}(): {wq._name} is a BH workqueue: its items run in softirq context and must "
            f"be plain functions, but {symbol_name(work.func)} is `async def` (use a normal "
            "workqueue for work that sleeps)"
        )


def queue_work_on(cpu: int, wq: Workqueue, work: Work) -> bool:
    """
    Queue *work* on *wq* for CPU *cpu* (``WORK_CPU_UNBOUND``: the local CPU).

    A work item running elsewhere is queued where it runs (non-reentrancy).

    Returns:
        ``False`` if *work* was already pending or is disabled, ``True`` otherwise.

    Raises:
        TypeError: *cpu* is not an ``int``, *wq* not a :class:`Workqueue`, *work* not a
            :class:`Work`; an ``async def`` function queued on a BH workqueue.
        ValueError: *cpu* is not one of the kernel's CPUs (nor ``WORK_CPU_UNBOUND``); *work*
            was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    return _queue_work_on("queue_work_on", cpu, wq, work)


def _queue_work_on(func: str, cpu: int, wq: Workqueue, work: Work) -> bool:
    task = _cur()
    check_wq(wq, func)
    check_work(work, func)
    check_cpu(task.kernel, cpu, func, unbound=True)
    wq = wq._t()
    if work._pending or work._disable:
        return False
    _queue_checks(wq, work, func)
    work._pending = True
    _queue_now(task, cpu, wq, work)
    return True


def queue_work(wq: Workqueue, work: Work) -> bool:
    """
    Queue *work* on *wq* on the local CPU.

    Returns:
        ``False`` if *work* was already pending (or is disabled), ``True`` otherwise.

    Raises:
        TypeError: *wq* is not a :class:`Workqueue`, *work* not a :class:`Work`; an
            ``async def`` function queued on a BH workqueue.
        ValueError: *work* was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    task = _current.get()
    if task is None:
        task = _cur()  # raises the no-kernel error
    try:
        # argument checks by attribute access: only a Workqueue has _sysname and only a Work
        # has _pending; anything else fails here, before anything changed
        sysname = wq._sysname
        pending = work._pending
    except AttributeError:
        err = _arg_error(_check_queue_args, "queue_work", wq, work)
        if err is None:
            raise
        raise err from None
    if sysname is not None:
        if wq._sys_kernel is task.kernel and wq._sys_target is not None:
            wq = wq._sys_target
        else:
            target = system_workqueue(task.kernel, sysname)
            wq._sys_kernel = task.kernel
            wq._sys_target = target
            wq = target
    if pending or work._disable or work.func is None:
        if work.func is None:
            check_work(work, "queue_work")
        return False
    cpu = task.cpu
    try:
        pwq = wq._qpwq[cpu]
    except IndexError:
        # a Workqueue() that alloc_workqueue never set up has no per-CPU list
        err = _arg_error(_check_queue_args, "queue_work", wq, work)
        if err is None:
            raise
        raise err from None
    if pwq is None or (work._pool is not None and work._pool is not pwq.pool):
        # the long way: first use, BH, draining or destroyed, or last run on another pool
        if wq._flags & WQ_BH:
            _queue_checks(wq, work, "queue_work")
        work._pending = True
        _queue_now(task, WORK_CPU_UNBOUND, wq, work)
        return True
    # __queue_work(), short: the pwq of this CPU, where the item ran last (if it ran)
    work._pending = True
    work._pwq = pwq
    work._queue_cpu = cpu
    color = wq._color
    work._color = color
    color.n += 1
    if pwq.inactive or pwq.nr_active >= wq._limit:
        # over max_active: waits on the pwq's inactive list
        work._inactive = True
        pwq.inactive.append(work)
        if task.kernel._trace_on:  # (trace_queue(), inline: the hot path)
            tracing = task.kernel.tracing
            if WORKQUEUE_QUEUE_WORK not in tracing._enabled:
                pass
            elif (
                task.preempt_count or task.irqs_off or task.migration_disabled or task.need_resched
            ):
                trace_queue(task, WORK_CPU_UNBOUND, wq, work, pwq, False)
            else:
                raw = tracing._raw[cpu]
                pool = pwq.pool
                pcpu = -1 if pool.unbound else pool.cpu
                ev, func, name, req = WORKQUEUE_QUEUE_WORK, work.func, wq._name, WORK_CPU_UNBOUND
                now = tracing._clock()
                raw.append((now, tracing._seq(), task, _LOCKED, ev, work, func, name, req, pcpu))
                if len(raw) > tracing._check:
                    tracing._after(cpu)
        return True
    pwq.nr_active += 1
    pool = pwq.pool
    if not pool.worklist:
        worklist_busy(pool)
    pool.worklist.append(work)
    if task.kernel._trace_on:  # (trace_queue(), inline: the hot path)
        tracing = task.kernel.tracing
        if task.preempt_count or task.irqs_off or task.migration_disabled or task.need_resched:
            trace_queue(task, WORK_CPU_UNBOUND, wq, work, pwq, True)
        else:
            # under the pool's raw spinlock, interrupts saved ("d..1."), in one instant
            enabled = tracing._enabled
            raw = tracing._raw[cpu]
            func = work.func
            now = tracing._clock()
            if WORKQUEUE_QUEUE_WORK in enabled:
                pcpu = -1 if pool.unbound else pool.cpu
                ev = WORKQUEUE_QUEUE_WORK
                name = wq._name
                req = WORK_CPU_UNBOUND
                raw.append((now, tracing._seq(), task, _LOCKED, ev, work, func, name, req, pcpu))
                if len(raw) > tracing._check:  # (sinks see each record)
                    tracing._after(cpu)
            if WORKQUEUE_ACTIVATE_WORK in enabled:
                ev = WORKQUEUE_ACTIVATE_WORK
                raw.append((now, tracing._seq(), task, _LOCKED, ev, work, func))
                if len(raw) > tracing._check:
                    tracing._after(cpu)
    if pool.idle and (pool.unbound or not pool.nr_running):
        kick_pool(pool)
    return True


#: The context word of a record a plain task makes under a raw spinlock with interrupts saved:
#: irqs-off, preempt depth 1 (``d..1.``)
_LOCKED = TRACE_FLAG_IRQS_OFF | 1 << 8


def trace_queue(
    task: TaskStruct, req_cpu: int, wq: Workqueue, work: Work, pwq: PoolWorkqueue, active: bool
) -> None:
    """``workqueue_queue_work`` once ``__queue_work()`` has chosen the pwq, then
    ``workqueue_activate_work`` if *work* went straight to the pool's worklist; both under the
    pool's raw spinlock with interrupts saved. ``cpu`` is ``pool->cpu``: -1 for an unbound
    pool."""
    kernel = task.kernel
    pool = pwq.pool
    func = work.func
    cpu = -1 if pool.unbound else pool.cpu
    emit_locked(kernel, task, WORKQUEUE_QUEUE_WORK, work, func, wq._name, req_cpu, cpu)
    if active:
        emit_locked(kernel, task, WORKQUEUE_ACTIVATE_WORK, work, func)


def enable_and_queue_work(wq: Workqueue, work: Work) -> bool:
    """
    :func:`enable_work`; if that brought the disable depth to 0, queue *work*.

    Returns:
        ``True`` iff the depth reached 0 (and the work was queued).

    Raises:
        TypeError, ValueError: as :func:`queue_work`, before the depth changes.

    .. versionadded:: 0.1
    """
    from ._flush import enable_work

    target = _resolve(wq, "enable_and_queue_work")
    check_work(work, "enable_and_queue_work")
    _queue_checks(target, work, "enable_and_queue_work")
    if enable_work(work):
        queue_work(wq, work)
        return True
    return False


def schedule_work(work: Work) -> bool:
    """
    Queue *work* on the system per-CPU workqueue (``events``).

    Raises:
        TypeError, ValueError: as :func:`queue_work`.

    .. versionadded:: 0.1
    """
    try:
        return queue_work(system_percpu_wq, work)
    except (TypeError, ValueError):
        # the failure path only: name this function in the message
        err = _arg_error(check_work, work, "schedule_work")
        if err is None:
            raise
        raise err from None


def schedule_work_on(cpu: int, work: Work) -> bool:
    """
    Queue *work* on the system per-CPU workqueue for CPU *cpu*.

    Raises:
        TypeError, ValueError: as :func:`queue_work_on`.

    .. versionadded:: 0.1
    """
    return _queue_work_on("schedule_work_on", cpu, system_percpu_wq, work)


def grab_pending(work: Work) -> bool:
    """``try_to_grab_pending``: take *work* off its timer or queue; True if it was pending."""
    if not work._pending:
        return False
    if work._rcu_gp:
        # waiting for its grace period. The kernel's try_to_grab_pending() busy-retries until
        # the RCU callback has queued it, then takes it off the queue; here PENDING is taken
        # at once and that callback (its token no longer current) queues nothing: the same
        # outcome, without the spin
        work._rcu_gp = 0
        work._pending = False
        return True
    dwork = work._dwork
    if dwork is not None and dwork.timer._bucket is not None:
        _detach(dwork.timer)
        work._pending = False
        return True
    pwq = work._pwq
    if pwq is not None:
        pool = pwq.pool
        if work._inactive:
            pwq.inactive.remove(work)
            work._inactive = False
            active = False
        else:
            try:
                pool.worklist.remove(work)
            except ValueError:
                # collided with a running instance: parked on that worker's scheduled list
                for worker in pool.workers:
                    if worker.scheduled and work in worker.scheduled:
                        worker.scheduled.remove(work)
                        break
            active = True
        work._pwq = None
        barriers = work._barriers
        work._barriers = None
        pwq_dec_nr_in_flight(pwq, work._color, active=active)  # activates the next inactive
        if barriers:
            complete_barriers(pool.kernel, barriers)
    work._pending = False
    return True


# --- delayed work ---------------------------------------------------------------------------------


def delayed_work_timer_fn(timer: TimerList) -> None:
    """The delayed-work timer: queue the item on its workqueue, in softirq context."""
    dwork: DelayedWork = timer.dwork  # type: ignore[attr-defined]
    wq = dwork.wq
    assert wq is not None
    _queue_now(_cur(), dwork.cpu, wq, dwork.work)


def _queue_delayed(
    task: TaskStruct, cpu: int, wq: Workqueue, dwork: DelayedWork, delay: int
) -> None:
    work = dwork.work
    if not delay:
        _queue_now(task, cpu, wq, work)
        return
    dwork.wq = wq
    dwork.cpu = cpu
    kernel = task.kernel
    timer = dwork.timer
    target = kernel.cpus[task.cpu if cpu == WORK_CPU_UNBOUND else cpu]
    base = target.def_base if timer.flags & TIMER_DEFERRABLE else target.std_base
    now = kernel.get_jiffies()
    _enqueue(base, timer, now + delay, now)


def _delayed_args(
    func: str, cpu: int, wq: Workqueue, dwork: DelayedWork, delay: int
) -> tuple[TaskStruct, Workqueue]:
    """The checks every delayed-work queueing call makes: (task, resolved wq)."""
    task = _cur()
    # the cheap exact-type tests first; anything else (a subclass, or junk) takes the full
    # checks, which name *func* in the message
    if (
        type(wq) is not Workqueue
        or type(dwork) is not DelayedWork
        or dwork.work.func is None
        or type(delay) is not int
        or not 0 <= delay <= LONG_MAX
        or type(cpu) is not int
        or (cpu != WORK_CPU_UNBOUND and not 0 <= cpu < task.kernel.nr_cpus)
    ):
        check_wq(wq, func)
        check_dwork(dwork, func)
        check_delay(delay, func)
        check_cpu(task.kernel, cpu, func, unbound=True)
    if wq._sysname is not None:
        wq = wq._t()
    elif wq._kernel is None:
        check_wq(wq, func)  # a Workqueue() never set up by alloc_workqueue: raises
    if wq._flags & WQ_BH:
        _queue_checks(wq, dwork.work, func)
    return task, wq


def queue_delayed_work_on(cpu: int, wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """
    Queue *dwork* on *wq* for CPU *cpu* after *delay* jiffies (0: at once, no timer).

    Returns:
        ``False`` if it was already pending (the armed timer is left alone) or is disabled.

    Raises:
        TypeError: an argument of the wrong type; an ``async def`` function queued on a BH
            workqueue.
        ValueError: *cpu* is not one of the kernel's CPUs (nor ``WORK_CPU_UNBOUND``);
            *delay* is negative or above ``LONG_MAX``; *dwork* was never initialised.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    return _queue_delayed_work_on("queue_delayed_work_on", cpu, wq, dwork, delay)


def _queue_delayed_work_on(
    func: str, cpu: int, wq: Workqueue, dwork: DelayedWork, delay: int
) -> bool:
    task, wq = _delayed_args(func, cpu, wq, dwork, delay)
    work = dwork.work
    if work._pending or work._disable:
        return False
    work._pending = True
    _queue_delayed(task, cpu, wq, dwork, delay)
    return True


def queue_delayed_work(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """
    Queue *dwork* on *wq* after *delay* jiffies, on the CPU its timer fires on.

    Raises:
        TypeError, ValueError: as :func:`queue_delayed_work_on`.

    .. versionadded:: 0.1
    """
    return _queue_delayed_work_on("queue_delayed_work", WORK_CPU_UNBOUND, wq, dwork, delay)


def mod_delayed_work_on(cpu: int, wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """
    (Re)arm *dwork* for *delay* jiffies from now, whatever its state: the debounce primitive.

    Shortening and lengthening both work; a *delay* of 0 queues it at once. A disabled item is
    only cancelled.

    Returns:
        ``True`` if it was pending (armed or queued) and got modified; ``False`` if it was idle
        and is now queued.

    Raises:
        TypeError, ValueError: as :func:`queue_delayed_work_on`; the armed timer is left as
            it was.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    return _mod_delayed_work_on("mod_delayed_work_on", cpu, wq, dwork, delay)


def _mod_delayed_work_on(
    func: str, cpu: int, wq: Workqueue, dwork: DelayedWork, delay: int
) -> bool:
    task, wq = _delayed_args(func, cpu, wq, dwork, delay)
    work = dwork.work
    ret = grab_pending(work)
    if work._disable:
        return ret
    work._pending = True
    _queue_delayed(task, cpu, wq, dwork, delay)
    return ret


def mod_delayed_work(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """
    :func:`mod_delayed_work_on` for the local CPU.

    .. versionadded:: 0.1
    """
    return _mod_delayed_work_on("mod_delayed_work", WORK_CPU_UNBOUND, wq, dwork, delay)


def schedule_delayed_work(dwork: DelayedWork, delay: int) -> bool:
    """
    Queue *dwork* on the system per-CPU workqueue after *delay* jiffies.

    Raises:
        TypeError, ValueError: as :func:`queue_delayed_work_on`.

    .. versionadded:: 0.1
    """
    return _queue_delayed_work_on(
        "schedule_delayed_work", WORK_CPU_UNBOUND, system_percpu_wq, dwork, delay
    )


def schedule_delayed_work_on(cpu: int, dwork: DelayedWork, delay: int) -> bool:
    """
    Queue *dwork* on the system per-CPU workqueue for CPU *cpu* after *delay* jiffies.

    Raises:
        TypeError, ValueError: as :func:`queue_delayed_work_on`.

    .. versionadded:: 0.1
    """
    return _queue_delayed_work_on("schedule_delayed_work_on", cpu, system_percpu_wq, dwork, delay)


# --- introspection ------------------------------------------------------------------------------


def work_pending(work: Work) -> bool:
    """
    True from a successful queue (or timer arm) until the function starts or it is cancelled.

    Raises:
        TypeError: *work* is not a :class:`Work`.

    .. versionadded:: 0.1
    """
    try:
        return work._pending  # only a Work has it
    except AttributeError:
        err = _arg_error(_check_work_type, work, "work_pending")
        if err is None:
            raise
        raise err from None


def delayed_work_pending(dwork: DelayedWork) -> bool:
    """
    ``work_pending(&dwork->work)``: true during the delay and while queued.

    Raises:
        TypeError: *dwork* is not a :class:`DelayedWork`.

    .. versionadded:: 0.1
    """
    if type(dwork) is not DelayedWork:
        check_dwork(dwork, "delayed_work_pending", initialised=False)
    return dwork.work._pending


def work_busy(work: Work) -> int:
    """
    ``WORK_BUSY_PENDING`` and/or ``WORK_BUSY_RUNNING`` (advisory).

    Raises:
        TypeError: *work* is not a :class:`Work`.

    .. versionadded:: 0.1
    """
    from ._work import WORK_BUSY_PENDING, WORK_BUSY_RUNNING

    check_work(work, "work_busy", initialised=False)
    ret = WORK_BUSY_PENDING if work._pending else 0
    if work._worker is not None:
        ret |= WORK_BUSY_RUNNING
    return ret


class ExecuteWork:
    """
    ``struct execute_work``: the work item :func:`execute_in_process_context` falls back on.

    .. versionadded:: 0.1
    """

    __slots__ = ("work",)

    def __init__(self) -> None:
        self.work = Work()

    def __repr__(self) -> str:
        return f"<ExecuteWork {self.work!r}>"


def execute_in_process_context(fn: Callable[[Work], Any], ew: ExecuteWork) -> int:
    """
    Run ``fn(ew.work)`` now if the caller is in process context; otherwise (hardirq, softirq,
    bottom halves disabled: ``in_interrupt()``) queue it on ``system_percpu_wq`` to run in a
    kworker.

    A work function may sleep, so in the kernel the direct call sleeps in the caller. Here a
    plain call cannot await: in process context *fn* must be a plain function. An
    ``async def`` *fn* is accepted from interrupt context (it will run in a kworker); in
    process context it is a ``TypeError``: await ``fn(ew.work)`` there instead.

    Returns:
        0 if *fn* ran now, 1 if it was queued.

    Raises:
        TypeError: *fn* is not a function callable as ``fn(work)``, *ew* is not an
            :class:`ExecuteWork`, or *fn* is ``async def`` and the caller is in process context.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    check_work_func(fn, "execute_in_process_context", "fn")
    if not isinstance(ew, ExecuteWork):
        raise bad_type("execute_in_process_context", "ew", "an ExecuteWork", ew)
    task = _cur()
    if not task.preempt_count & IRQ_MASK:
        if is_async_func(fn):
            raise TypeError(
                f"execute_in_process_context() calls {symbol_name(fn)} right here in process "
                "context, and a plain call cannot await an `async def` function: "
                f"`await {symbol_name(fn)}(ew.work)` instead"
            )
        fn(ew.work)
        return 0
    _init_work(ew.work, fn)
    schedule_work(ew.work)
    return 1


def current_work() -> Work | None:
    """
    The work item the current kworker executes; ``None`` elsewhere (and in BH work).

    .. versionadded:: 0.1
    """
    task = _cur()
    if isinstance(task, KWorkerTask) and not task.preempt_count & SOFTIRQ_OFFSET:
        return task.worker.current_work
    return None


def workqueue_congested(cpu: int, wq: Workqueue) -> bool:
    """
    True if *wq*'s pwq for *cpu* (``WORK_CPU_UNBOUND``: local) holds inactive items.

    Raises:
        TypeError: *cpu* is not an ``int``, *wq* not a :class:`Workqueue`.
        ValueError: *cpu* is not one of the kernel's CPUs (nor ``WORK_CPU_UNBOUND``).

    .. versionadded:: 0.1
    """
    task = _cur()
    check_cpu(task.kernel, cpu, "workqueue_congested", unbound=True)
    wq = _resolve(wq, "workqueue_congested")
    if cpu == WORK_CPU_UNBOUND:
        cpu = task.cpu
    return bool(wq.pwq_for(cpu).inactive)


def workqueue_set_max_active(wq: Workqueue, max_active: int) -> None:
    """
    Change *wq*'s ``max_active`` (clamped); raising it activates parked items at once.
    BH and ordered workqueues refuse with a WARN.

    Raises:
        TypeError: *wq* is not a :class:`Workqueue`, *max_active* not an ``int``.
        ValueError: *max_active* does not fit a C ``int``.

    .. versionadded:: 0.1
    """
    check_wq(wq, "workqueue_set_max_active")
    check_max_active(max_active, "workqueue_set_max_active")
    wq = wq._t()
    if wq._flags & (WQ_BH | _WQ_ORDERED):
        warn()
        return
    if not 1 <= max_active <= WQ_MAX_ACTIVE:
        log_text(
            _cur().kernel,
            4,
            f"workqueue: max_active {max_active} requested for "
            f"{wq._name} is out of range, clamping between 1 and {WQ_MAX_ACTIVE}",
        )
        max_active = min(max(max_active, 1), WQ_MAX_ACTIVE)
    wq._max_active = max_active
    wq_set_limit(wq)
    for pwq in wq._pwqs:
        if pwq is not None:
            _activate_inactive(pwq)


# --- rescuer ----------------------------------------------------------------------------------


def _start_rescuer(wq: Workqueue) -> None:
    """The rescuer of a ``WQ_MEM_RECLAIM`` workqueue: a kworker ``kworker/R-<name>`` of its
    own, asleep until a pool that cannot create a worker calls it (``send_mayday``)."""
    from ._kthread import kthread_comm, kthread_setup
    from ._sched import wake_up_process

    kernel = wq._kernel
    assert kernel is not None
    task = _cur()
    highpri = bool(wq._flags & WQ_HIGHPRI)
    home = unbound_pool(kernel, highpri) if wq._flags & WQ_UNBOUND else cpu_pool(kernel, 0, highpri)
    rescuer = Worker(
        home, -1, kthread_comm("kworker/R-%s", wq._name), kernel._alloc_pid(), task.cpu
    )
    rescuer.is_idle = False
    kthread_setup(rescuer, _rescuer_thread, wq)
    wq._rescuer = rescuer
    wake_up_process(rescuer)


async def _rescuer_thread(wq: Workqueue) -> int:
    """``rescuer_thread``: for each pool that called, take this workqueue's items waiting
    there and run them, one after the other, as a worker of that pool."""
    from ._kthread import kthread_should_stop
    from ._sched import schedule, set_current_state

    rescuer = wq._rescuer
    assert rescuer is not None
    while True:
        set_current_state(TASK_INTERRUPTIBLE)
        if not wq._maydays:
            if kthread_should_stop():
                set_current_state(TASK_RUNNING)
                return 0
            await schedule()
            continue
        set_current_state(TASK_RUNNING)
        pwq = wq._maydays.popleft()
        pool = pwq.pool
        rescuer.pool = pool  # worker_attach_to_pool()
        mine = [w for w in pool.worklist if w._pwq is pwq]
        for work in mine:
            pool.worklist.remove(work)
        for work in mine:
            other = work._worker
            if other is not None and other.pool is pool:
                if other.scheduled is None:
                    other.scheduled = deque()
                other.scheduled.append(work)  # it runs behind itself, in that worker
                continue
            while True:
                await _rescue_one(rescuer, work)
                wq._stats.rescued += 1
                if not rescuer.scheduled:
                    break
                work = rescuer.scheduled.popleft()


async def _rescue_one(rescuer: Worker, work: Work) -> None:
    """``process_one_work`` in the rescuer."""
    rescuer.t0 = time.perf_counter()
    func, color = item_start(rescuer, work)
    err: BaseException | None = None
    try:
        result = func(work)
        if type(result) is _CoroutineType or (result is not None and inspect.isawaitable(result)):
            await result
    except BaseException as exc:  # handled by item_finish, once the item is done
        err = exc
    item_finish(rescuer, work, color, err)
