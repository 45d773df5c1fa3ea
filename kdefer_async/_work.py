"""Work items: ``work_struct`` and ``delayed_work``, their initialisers and introspection.

Field rules: ``A``: changed only in synchronous code, atomic with respect to the loop.

Kernel invariants modelled (include/linux/workqueue.h, kernel/workqueue.c):

* ``PENDING`` is set by a successful queue attempt (or timer arm, for delayed work) and
  cleared just before the function runs, so a running item can be queued again, and then runs
  again after the current execution.
* A work item carries no argument but itself: embed it and use ``container_of``.
* The disable depth (since 6.10) makes every queue attempt fail while it is above zero.
* Delayed work is a work item plus an IRQ-safe timer that queues it on expiry.
* A work function is called as ``func(work)``: one that cannot take that argument is a
  ``TypeError`` when it is registered, as C's compiler rejects a function pointer of the
  wrong type. Every function of the workqueue API checks its arguments (with the wording of
  _check.py) before it changes anything: a rejected call leaves no item pending, no timer
  armed, no counter bumped and nothing logged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._check import (
    bad_type,
    bad_value,
    check_bool,
    check_callback,
    check_cpu as _check_cpu,
    check_int,
)
from ._consts import LONG_MAX, TIMER_DEFERRABLE, TIMER_IRQSAFE
from ._printk import symbol_name
from ._timer import TimerList, timer_setup

if TYPE_CHECKING:
    from ._kernel import Kernel
    from ._workqueue import PoolWorkqueue, WorkerPool, Workqueue

__all__ = [
    "DECLARE_DEFERRABLE_WORK",
    "DECLARE_DELAYED_WORK",
    "DECLARE_WORK",
    "DelayedWork",
    "INIT_DEFERRABLE_WORK",
    "INIT_DELAYED_WORK",
    "INIT_WORK",
    "WORK_BUSY_PENDING",
    "WORK_BUSY_RUNNING",
    "WORK_CPU_UNBOUND",
    "Work",
    "to_delayed_work",
]

#: ``WORK_CPU_UNBOUND`` (= ``NR_CPUS`` in the kernel): "the local CPU, or any".
WORK_CPU_UNBOUND = 8192
WORK_BUSY_PENDING = 1
WORK_BUSY_RUNNING = 2
#: 16 bits of disable depth (``WORK_OFFQ_DISABLE_BITS``).
WORK_OFFQ_DISABLE_MAX = (1 << 16) - 1

WorkFunc = Callable[[Any], Any]


# --- argument checks (the wording of _check.py) -------------------------------------------------


def check_work_func(func: object, fn: str, param: str = "func") -> None:
    """*func* as a work function handed to ``fn()``: called as ``func(work)`` in a kworker, so
    it may be ``async def`` (it may sleep) or a plain function."""
    check_callback(
        func, fn, param, shape=f"{param}(work)", nargs=1, kind="any", what="a work function"
    )


def _container_hint(got: object) -> str:
    """What to pass instead of *got*, an object that embeds a work item, if it is one."""
    if isinstance(got, DelayedWork):
        return " (use the *_delayed_work API for a DelayedWork, or pass dwork.work)"
    try:
        inner = object.__getattribute__(got, "work")
    except Exception:  # no such attribute (or a property that fails): no hint
        return ""
    return " (pass its .work)" if isinstance(inner, Work) else ""


def check_work(work: object, func: str, param: str = "work", *, initialised: bool = True) -> Work:
    """
    *work* if it is a :class:`Work` (and, with *initialised*, has a function: queueing or
    flushing a work item that ``INIT_WORK`` never set up is a use of garbage in C).
    """
    if not isinstance(work, Work):
        err = bad_type(func, param, "a Work", work)
        raise TypeError(f"{err}{_container_hint(work)}")
    if initialised and work.func is None:
        raise bad_value(func, param, "a Work initialised by INIT_WORK", work)
    return work


def check_dwork(
    dwork: object, func: str, param: str = "dwork", *, initialised: bool = True
) -> DelayedWork:
    """*dwork* if it is a :class:`DelayedWork` (initialised, with *initialised*)."""
    if not isinstance(dwork, DelayedWork):
        err = bad_type(func, param, "a DelayedWork", dwork)
        hint = ""
        if isinstance(dwork, Work) and dwork._dwork is not None:
            hint = " (to_delayed_work(work) is the DelayedWork of this work item)"
        raise TypeError(f"{err}{hint}")
    if initialised and dwork.work.func is None:
        raise bad_value(func, param, "a DelayedWork initialised by INIT_DELAYED_WORK", dwork)
    return dwork


def check_cpu(
    kernel: Kernel, cpu: object, func: str, *, unbound: bool = False, param: str = "cpu"
) -> int:
    """
    *cpu* if it is one of *kernel*'s CPUs (or, with *unbound*, ``WORK_CPU_UNBOUND``, which the
    queueing functions take as "the local CPU").
    """
    also = (WORK_CPU_UNBOUND, "WORK_CPU_UNBOUND") if unbound else None
    return _check_cpu(cpu, kernel.nr_cpus, func, param, also=also)


def check_delay(delay: object, func: str) -> int:
    """
    *delay* if it is a number of jiffies: an ``unsigned long`` in C, and at most ``LONG_MAX``
    (jiffies are compared through a signed difference, so a longer delay is meaningless).
    """
    if type(delay) is int and 0 <= delay <= LONG_MAX:
        return delay
    return check_int(
        delay, func, "delay", lo=0, hi=LONG_MAX, expected="a number of jiffies from 0 to LONG_MAX"
    )


class Work:
    """
    ``struct work_struct``: ``func(work)`` runs in a kworker; it may be ``async def`` (it may
    sleep) or a plain function.

    ``Work()`` is uninitialised (use :func:`INIT_WORK`); ``Work(func)`` is initialised.

    Guarantees:
        * test_queue_while_pending_returns_false: a pending item is not queued twice.
        * test_work_pending_lifecycle: ``PENDING`` is cleared just before the function runs.
        * test_requeue_from_own_function: an item may queue itself from its own function and
          then runs once more, never overlapping itself.

    .. versionadded:: 0.1
    """

    __slots__ = (
        "__weakref__",
        "_barriers",
        "_color",
        "_disable",
        "_dwork",
        "_inactive",
        "_pending",
        "_pool",
        "_pwq",
        "_queue_cpu",
        "_rcu_gp",
        "_rwork",
        "_worker",
        "func",
    )

    def __init__(self, func: WorkFunc | None = None) -> None:
        if func is not None:
            check_work_func(func, "Work")
        self.func: WorkFunc | None = func  # A
        self._pending = False  # A: WORK_STRUCT_PENDING
        self._inactive = False  # A: WORK_STRUCT_INACTIVE (parked by max_active)
        self._pwq: PoolWorkqueue | None = None  # A: while queued
        self._pool: WorkerPool | None = None  # A: the pool it last ran on
        #: A: the worker executing it now (the kernel's busy_hash entry), if any
        self._worker: Any = None
        self._color: Any = None  # A: the flush color it was queued under (while in flight)
        self._queue_cpu = 0  # A: the CPU that queued it (unbound workers run there)
        self._disable = 0  # A: disable depth
        self._barriers: list[Any] | None = None  # A: flush barriers linked behind it
        self._dwork: DelayedWork | None = None  # I
        self._rwork: Any = None  # I: the RcuWork it belongs to, if any
        #: A: while pending and waiting for an RCU grace period, the token of that wait
        self._rcu_gp = 0

    def __repr__(self) -> str:
        state = []
        if self._pending:
            state.append("pending")
        if self._inactive:
            state.append("inactive")
        if self._disable:
            state.append(f"disabled={self._disable}")
        fn = symbol_name(self.func) if self.func is not None else None
        return f"<Work {fn}{' ' + ' '.join(state) if state else ''}>"


def INIT_WORK(work: Work, func: WorkFunc) -> None:
    """
    Initialise *work* to run ``func(work)``: an ``async def`` or plain function.

    Raises:
        TypeError: *work* is not a :class:`Work`; *func* is not callable, or cannot be called
            with the one argument it gets (the work item).

    .. versionadded:: 0.1
    """
    check_work(work, "INIT_WORK", initialised=False)
    check_work_func(func, "INIT_WORK")
    _init_work(work, func)


def _init_work(work: Work, func: WorkFunc) -> None:
    """``INIT_WORK`` of a checked *work* and *func*."""
    work.func = func
    work._pending = False
    work._inactive = False
    work._pwq = None
    work._disable = 0
    work._barriers = None
    work._pending = False
    work._inactive = False
    work._pwq = None
    work._disable = 0
    work._barriers = None


def DECLARE_WORK(func: WorkFunc) -> Work:
    """
    Return a work item initialised with *func*.

    Raises:
        TypeError: *func* is not a function callable as ``func(work)``.

    .. versionadded:: 0.1
    """
    check_work_func(func, "DECLARE_WORK")
    work = Work()
    work.func = func
    return work


class DelayedWork:
    """
    ``struct delayed_work``: a :class:`Work` (``.work``) and the timer (``.timer``) that queues
    it on ``.wq`` for ``.cpu`` when it expires.

    ``DelayedWork()`` is uninitialised (use :func:`INIT_DELAYED_WORK`); ``DelayedWork(func)``
    is initialised; ``DelayedWork(func, deferrable=True)`` is ``INIT_DEFERRABLE_WORK``.

    Guarantees:
        * test_zero_delay_queues_at_once: a delay of 0 queues without arming the timer.
        * test_delay_fires_on_the_tick_after: never before ``delay`` jiffies have passed.
        * test_timer_fired_on_cpu1_runs_work_on_cpu1: the work runs where the timer fired.
        * test_cancel_sync_stops_self_rearming: ``cancel_delayed_work_sync`` wins over an
          item that re-arms itself.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "cpu", "timer", "work", "wq")

    def __init__(self, func: WorkFunc | None = None, *, deferrable: bool = False) -> None:
        if func is not None:
            check_work_func(func, "DelayedWork")
        check_bool(deferrable, "DelayedWork", "deferrable")
        self.work = Work()  # I
        self.work._dwork = self
        self.timer = _DWorkTimer(self)  # I
        self.wq: Workqueue | None = None  # A
        self.cpu = WORK_CPU_UNBOUND  # A
        if func is not None:
            _init_delayed(self, func, TIMER_DEFERRABLE if deferrable else 0)

    def __repr__(self) -> str:
        armed = " armed" if self.timer._bucket is not None else ""
        return f"<DelayedWork {self.work!r}{armed}>"


class _DWorkTimer(TimerList):
    __slots__ = ("dwork",)

    def __init__(self, dwork: DelayedWork) -> None:
        super().__init__()
        self.dwork = dwork


def _init_delayed(dwork: DelayedWork, func: WorkFunc, flags: int) -> None:
    """Set up a checked *dwork* with a checked *func*."""
    from ._workqueue import delayed_work_timer_fn

    _init_work(dwork.work, func)
    timer_setup(dwork.timer, delayed_work_timer_fn, TIMER_IRQSAFE | flags)


def _init_delayed_checked(fn: str, dwork: DelayedWork, func: WorkFunc, flags: int) -> None:
    check_dwork(dwork, fn, initialised=False)
    check_work_func(func, fn)
    _init_delayed(dwork, func, flags)


def INIT_DELAYED_WORK(dwork: DelayedWork, func: WorkFunc) -> None:
    """
    Initialise *dwork* to run ``func(work)`` after a delay.

    Raises:
        TypeError: *dwork* is not a :class:`DelayedWork`; *func* is not a function callable
            as ``func(work)``.

    .. versionadded:: 0.1
    """
    _init_delayed_checked("INIT_DELAYED_WORK", dwork, func, 0)


def INIT_DEFERRABLE_WORK(dwork: DelayedWork, func: WorkFunc) -> None:
    """
    Initialise *dwork* with a deferrable timer: an idle CPU does not wake up for it.

    Raises:
        TypeError: as :func:`INIT_DELAYED_WORK`.

    .. versionadded:: 0.1
    """
    _init_delayed_checked("INIT_DEFERRABLE_WORK", dwork, func, TIMER_DEFERRABLE)


def DECLARE_DELAYED_WORK(func: WorkFunc) -> DelayedWork:
    """
    Return a delayed work item initialised with *func*.

    Raises:
        TypeError: *func* is not a function callable as ``func(work)``.

    .. versionadded:: 0.1
    """
    check_work_func(func, "DECLARE_DELAYED_WORK")
    dwork = DelayedWork()
    _init_delayed(dwork, func, 0)
    return dwork


def DECLARE_DEFERRABLE_WORK(func: WorkFunc) -> DelayedWork:
    """
    Return a deferrable delayed work item initialised with *func*.

    Raises:
        TypeError: *func* is not a function callable as ``func(work)``.

    .. versionadded:: 0.1
    """
    check_work_func(func, "DECLARE_DEFERRABLE_WORK")
    dwork = DelayedWork()
    _init_delayed(dwork, func, TIMER_DEFERRABLE)
    return dwork


def to_delayed_work(work: Work) -> DelayedWork:
    """
    Return the :class:`DelayedWork` that embeds *work* (``to_delayed_work``).

    Raises:
        TypeError: *work* is not a :class:`Work`.
        ValueError: *work* is not the ``.work`` of a delayed work item.

    .. versionadded:: 0.1
    """
    dwork = check_work(work, "to_delayed_work", initialised=False)._dwork
    if dwork is None:
        raise bad_value("to_delayed_work", "work", "the .work of a DelayedWork", work)
    return dwork


def is_async_func(func: object) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)
    )
