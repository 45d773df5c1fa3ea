"""Sleeping locks beyond the mutex: ``struct rw_semaphore`` and the counting ``struct semaphore``.

Kernel invariants modelled (kernel/locking/rwsem.c, kernel/locking/semaphore.c):

* Both sleep: their ``down`` variants are ``async def``, task context only, and run
  ``might_sleep()`` when called, even when they would not sleep (a report in atomic context).
  The trylocks and the ups never sleep and are legal in any context.
* Waiters queue in FIFO order and are handed the lock on release (no lock stealing: the
  woken waiter owns it already). ``TASK_UNINTERRUPTIBLE`` waits are watched by the hung-task
  detector; the ``_interruptible`` forms return ``-EINTR`` on any signal, the ``_killable``
  forms on SIGKILL only (kthreads see only the signals they allowed).
* rw_semaphore: readers share, a writer excludes. A reader queues whenever others wait
  (``down_read_trylock`` fails then), so a waiting writer is never starved. On release, a
  writer at the head of the queue is woken alone; a reader at the head wakes every waiting
  reader (up to 256), even those queued behind writers, which keep waiting [v5.3].
  ``downgrade_write`` turns the write hold into a read hold and wakes the leading readers.
* semaphore: a count of free units, no owner: any task or interrupt may ``up()``, as often
  as it likes (no upper bound). ``up()`` with waiters hands the unit to the first one (the
  count stays 0). ``down_trylock`` returns 0 when it *took* a unit (the kernel's inverted
  sense). ``down_timeout`` returns ``-ETIME`` after ``schedule_timeout(jiffies)``; a timeout
  <= 0 with no unit free returns at once.
* CONFIG_DEBUG_RWSEMS (always on): ``up_write`` by a task that is not the writer, or an
  ``up_read`` of an rwsem no reader holds, WARN_ONCE ``DEBUG_RWSEMS_WARN_ON(<condition>):
  count = ..., magic = ..., owner = ..., curr ..., list [not ]empty``. lockdep
  (``Kernel(prove_locking=True)``) adds ``bad unlock balance detected!`` when the releasing
  task does not hold it, and ``possible recursive locking detected`` for a task that takes
  an rwsem it holds (a certain deadlock, unless both are reads: then it goes on).

Not modelled: optimistic spinning and the lock stealing it allows before the handoff bit
(``RWSEM_WAIT_TIMEOUT``): the model hands off at once, which is what the handoff enforces.

Field rules: ``I`` set at creation; ``A`` changed only in synchronous code between checkpoints.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio

from ._check import check_instance, check_int, check_optional_str
from ._consts import (
    EINTR,
    ETIME,
    MAX_SCHEDULE_TIMEOUT,
    SIGKILL,
    TASK_INTERRUPTIBLE,
    TASK_KILLABLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    TASK_WAKEKILL,
)
from ._context import TaskStruct, _cur
from ._locking import print_recursive_locking, report_bad_unlock, report_recursive_locking
from ._printk import warn_once
from ._sched import _check_timeout, _deliverable, _schedule_timeout, wake_up_process
from ._sleeping import sleeping_checked

__all__ = [
    "DECLARE_RWSEM",
    "DEFINE_SEMAPHORE",
    "RwSemaphore",
    "Semaphore",
    "down",
    "down_interruptible",
    "down_killable",
    "down_read",
    "down_read_interruptible",
    "down_read_killable",
    "down_read_trylock",
    "down_timeout",
    "down_trylock",
    "down_write",
    "down_write_killable",
    "down_write_trylock",
    "downgrade_write",
    "init_rwsem",
    "sema_init",
    "up",
    "up_read",
    "up_write",
]

#: ``INT_MAX``: the largest count ``sema_init`` takes here.
_INT_MAX = (1 << 31) - 1
#: ``MAX_READERS_WAKEUP``: the most readers one release wakes.
MAX_READERS_WAKEUP = 0x100
# the rwsem count's fields, for the DEBUG_RWSEMS report
_RWSEM_WRITER_LOCKED = 1 << 0
_RWSEM_FLAG_WAITERS = 1 << 1
_RWSEM_READER_SHIFT = 8


class _Waiter:
    """One task queued on a semaphore: what it waits for, and whether it was handed it."""

    __slots__ = ("granted", "task", "write")

    def __init__(self, task: TaskStruct, write: bool) -> None:
        self.task = task  # I
        self.write = write  # I: a writer (rwsem), else a reader or a semaphore down
        self.granted = False  # A: the releaser handed it the lock


def _signalled(task: TaskStruct, state: int) -> bool:
    """``signal_pending_state()``: a signal that ends a sleep in *state* is pending."""
    if state & TASK_INTERRUPTIBLE:
        return bool(_deliverable(task))
    if state & TASK_WAKEKILL:
        return bool(_deliverable(task) & (1 << SIGKILL))
    return False


async def _wait(
    waiters: deque[_Waiter],
    waiter: _Waiter,
    state: int,
    timeout: int,
    on_leave: Callable[[_Waiter | None], None],
) -> int:
    """
    Sleep in *state* until *waiter* is granted (0), a signal ends the sleep (``-EINTR``) or
    *timeout* jiffies pass (``-ETIME``). Leaving without the grant takes *waiter* off
    *waiters* and calls *on_leave*; a cancellation after the grant passes the grant on.
    """
    task = waiter.task
    try:
        while not waiter.granted:
            if _signalled(task, state):
                waiters.remove(waiter)
                on_leave(None)
                return -EINTR
            if timeout <= 0:
                waiters.remove(waiter)
                on_leave(None)
                return -ETIME
            task.state = state
            timeout = await _schedule_timeout(timeout)
    except BaseException:
        if not waiter.granted:
            if waiter in waiters:
                waiters.remove(waiter)
            on_leave(None)
        else:
            on_leave(waiter)
        raise
    finally:
        task.state = TASK_RUNNING
    return 0


# -- rw_semaphore ----------------------------------------------------------------------------


class RwSemaphore:
    """
    ``struct rw_semaphore``: a sleeping reader/writer lock for task context.

    Args:
        name: The name lockdep prints (default ``rwsem#<n>``).

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "_rowners", "_waiters", "_wowner", "name")

    def __init__(self, name: str | None = None) -> None:
        check_optional_str(name, "RwSemaphore", "name")
        self.name = name or f"rwsem#{id(self) & 0xFFFF:x}"  # I
        self._wowner: TaskStruct | None = None  # A
        #: A: one entry per read hold
        self._rowners: list[TaskStruct] = []
        self._waiters: deque[_Waiter] = deque()  # A: FIFO

    def __repr__(self) -> str:
        if self._wowner is not None:
            state = f" write-held by {self._wowner.comm}"
        elif self._rowners:
            state = f" read-held x{len(self._rowners)}"
        else:
            state = ""
        return f"<RwSemaphore {self.name}{state} waiters={len(self._waiters)}>"


def _rwsem(sem: object, func: str) -> RwSemaphore:
    """*sem* if it is an :class:`RwSemaphore`."""
    if type(sem) is RwSemaphore:
        return sem
    return check_instance(sem, RwSemaphore, func, "sem", "an RwSemaphore")


def DECLARE_RWSEM() -> RwSemaphore:
    """
    Return a new, free rw_semaphore.

    .. versionadded:: 0.2
    """
    return RwSemaphore()


def init_rwsem(sem: RwSemaphore) -> None:
    """
    (Re)initialise *sem*: free, nobody waiting.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.

    .. versionadded:: 0.2
    """
    _rwsem(sem, "init_rwsem")
    sem._wowner = None
    sem._rowners = []
    sem._waiters = deque()


def _rwsem_wake(sem: RwSemaphore, leaving: _Waiter | None = None) -> None:
    """
    Hand *sem* to the head of its queue if it can take it: a writer alone, once nobody
    holds it; readers, all waiting ones (up to 256), unless a writer holds it. *leaving* (a
    waiter cancelled after it was granted the lock) gives its grant back first.
    """
    if leaving is not None:
        if leaving.write:
            if sem._wowner is leaving.task:
                sem._wowner = None
        elif leaving.task in sem._rowners:
            sem._rowners.remove(leaving.task)
    waiters = sem._waiters
    if not waiters or sem._wowner is not None:
        return
    if waiters[0].write:
        if not sem._rowners:
            first = waiters.popleft()
            first.granted = True
            sem._wowner = first.task
            wake_up_process(first.task)
        return
    keep: deque[_Waiter] = deque()
    woken = 0
    for w in waiters:
        if w.write or woken >= MAX_READERS_WAKEUP:
            keep.append(w)
            continue
        w.granted = True
        sem._rowners.append(w.task)
        wake_up_process(w.task)
        woken += 1
    sem._waiters = keep


def _check_recursion(task: TaskStruct, sem: RwSemaphore, how: str, write: bool) -> None:
    """lockdep: taking an rwsem the task holds. A certain deadlock raises; read-in-read goes on."""
    if not task.kernel.prove_locking:
        return  # without lockdep the task just sleeps forever (the hung-task detector says so)
    if sem._wowner is task or (write and task in sem._rowners):
        report_recursive_locking(f"({sem.name}){{++++}}-{{4:4}}", how)
    if task in sem._rowners:
        print_recursive_locking(f"({sem.name}){{++++}}-{{4:4}}", how)


async def _down_read(sem: RwSemaphore, state: int, how: str) -> int:
    task = _cur()
    _check_recursion(task, sem, how, False)
    if sem._wowner is None and not sem._waiters:
        sem._rowners.append(task)
        await anyio.lowlevel.checkpoint()
        return 0
    waiter = _Waiter(task, False)
    sem._waiters.append(waiter)
    return await _wait(
        sem._waiters, waiter, state, MAX_SCHEDULE_TIMEOUT, lambda w: _rwsem_wake(sem, w)
    )


async def _down_write(sem: RwSemaphore, state: int, how: str) -> int:
    task = _cur()
    _check_recursion(task, sem, how, True)
    if sem._wowner is None and not sem._rowners and not sem._waiters:
        sem._wowner = task
        await anyio.lowlevel.checkpoint()
        return 0
    waiter = _Waiter(task, True)
    sem._waiters.append(waiter)
    return await _wait(
        sem._waiters, waiter, state, MAX_SCHEDULE_TIMEOUT, lambda w: _rwsem_wake(sem, w)
    )


@sleeping_checked(lambda sem: _rwsem(sem, "down_read"))
async def down_read(sem: RwSemaphore) -> None:
    """
    Take *sem* for reading, sleeping uninterruptibly while a writer holds it or others wait.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.
        KernelBug: the caller holds it for writing (lockdep: possible recursive locking).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    await _down_read(sem, TASK_UNINTERRUPTIBLE, "down_read")


@sleeping_checked(lambda sem: _rwsem(sem, "down_read_interruptible"))
async def down_read_interruptible(sem: RwSemaphore) -> int:
    """
    :func:`down_read`, or give up when a signal arrives.

    Returns:
        0 when taken, ``-EINTR`` if a signal ended the wait (nothing taken).

    .. versionadded:: 0.2
    """
    return await _down_read(sem, TASK_INTERRUPTIBLE, "down_read_interruptible")


@sleeping_checked(lambda sem: _rwsem(sem, "down_read_killable"))
async def down_read_killable(sem: RwSemaphore) -> int:
    """
    :func:`down_read`, or give up on a fatal signal (SIGKILL) only.

    Returns:
        0 when taken, ``-EINTR`` if SIGKILL ended the wait.

    .. versionadded:: 0.2
    """
    return await _down_read(sem, TASK_KILLABLE, "down_read_killable")


def down_read_trylock(sem: RwSemaphore) -> int:
    """
    Take *sem* for reading if no writer holds it and nobody waits: 1, else 0. Never sleeps.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    _rwsem(sem, "down_read_trylock")
    task = _cur()
    if sem._wowner is not None or sem._waiters:
        return 0
    sem._rowners.append(task)
    return 1


def _rwsem_warn(task: TaskStruct, sem: RwSemaphore, cond: str, key: str) -> None:
    """``DEBUG_RWSEMS_WARN_ON(cond)``: a WARN_ONCE with the rwsem's state."""
    writer = sem._wowner
    count = (
        (len(sem._rowners) << _RWSEM_READER_SHIFT)
        | (_RWSEM_WRITER_LOCKED if writer is not None else 0)
        | (_RWSEM_FLAG_WAITERS if sem._waiters else 0)
    )
    owner = id(writer) if writer is not None else 0
    warn_once(
        key,
        "DEBUG_RWSEMS_WARN_ON(%s): count = 0x%lx, magic = 0x%lx, owner = 0x%lx, curr 0x%lx, "
        "list %sempty\n",
        cond,
        count,
        id(sem),
        owner,
        id(task),
        "not " if sem._waiters else "",
    )


def up_read(sem: RwSemaphore) -> None:
    """
    Release one read hold of *sem*; the last reader out wakes the head of the queue.

    An rwsem no reader holds is reported (``DEBUG_RWSEMS_WARN_ON(...)``, and lockdep's bad
    unlock balance) and left as it is.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _rwsem(sem, "up_read")
    task = _cur()
    readers = sem._rowners
    if task not in readers and task.kernel.prove_locking:
        report_bad_unlock(task, sem.name, "up_read")
    if not readers:
        _rwsem_warn(task, sem, "!is_rwsem_reader_owned(sem)", "up_read")
        return
    readers.remove(task if task in readers else readers[0])
    if not readers:
        _rwsem_wake(sem)


@sleeping_checked(lambda sem: _rwsem(sem, "down_write"))
async def down_write(sem: RwSemaphore) -> None:
    """
    Take *sem* for writing, sleeping uninterruptibly until nobody holds it and the waiters
    queued before have had their turn.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.
        KernelBug: the caller holds it already (lockdep: possible recursive locking).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    await _down_write(sem, TASK_UNINTERRUPTIBLE, "down_write")


@sleeping_checked(lambda sem: _rwsem(sem, "down_write_killable"))
async def down_write_killable(sem: RwSemaphore) -> int:
    """
    :func:`down_write`, or give up on a fatal signal (SIGKILL) only: other signals do not
    end the wait.

    Returns:
        0 when taken, ``-EINTR`` if SIGKILL ended the wait.

    .. versionadded:: 0.2
    """
    return await _down_write(sem, TASK_KILLABLE, "down_write_killable")


def down_write_trylock(sem: RwSemaphore) -> int:
    """
    Take *sem* for writing if nobody holds it or waits for it: 1, else 0. Never sleeps.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    _rwsem(sem, "down_write_trylock")
    task = _cur()
    if sem._wowner is not None or sem._rowners or sem._waiters:
        return 0
    sem._wowner = task
    return 1


def up_write(sem: RwSemaphore) -> None:
    """
    Release the write hold of *sem* and wake the head of the queue.

    Released by a task that is not the writer: ``DEBUG_RWSEMS_WARN_ON(...)`` (and lockdep's
    bad unlock balance); it is released all the same, as in the kernel.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _rwsem(sem, "up_write")
    task = _cur()
    if sem._wowner is not task:
        if task.kernel.prove_locking:
            report_bad_unlock(task, sem.name, "up_write")
        _rwsem_warn(
            task,
            sem,
            "(rwsem_owner(sem) != current) && !rwsem_test_oflags(sem, RWSEM_NONSPINNABLE)",
            "up_write",
        )
        if sem._wowner is None:
            return
    sem._wowner = None
    _rwsem_wake(sem)


def downgrade_write(sem: RwSemaphore) -> None:
    """
    Turn the caller's write hold of *sem* into a read hold, atomically: no writer can get in
    between. Readers at the head of the queue are woken (all waiting readers); a writer at
    the head keeps waiting.

    Raises:
        TypeError: *sem* is not an :class:`RwSemaphore`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _rwsem(sem, "downgrade_write")
    task = _cur()
    if sem._wowner is not task:
        _rwsem_warn(task, sem, "rwsem_owner(sem) != current", "downgrade_write")
        if sem._wowner is None:
            return
    writer = sem._wowner
    sem._wowner = None
    sem._rowners.append(writer)
    _rwsem_wake(sem)


# -- counting semaphore ----------------------------------------------------------------------


class Semaphore:
    """
    ``struct semaphore``: a count of free units; ``down`` sleeps while it is 0.

    Args:
        count: The units free at the start (0 if not given: a zeroed ``struct semaphore``;
            use :func:`sema_init` or :func:`DEFINE_SEMAPHORE`).

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "_count", "_waiters")

    def __init__(self, count: int = 0) -> None:
        _check_count(count, "Semaphore")
        self._count = count  # A
        self._waiters: deque[_Waiter] = deque()  # A: FIFO

    def __repr__(self) -> str:
        return f"<Semaphore count={self._count} waiters={len(self._waiters)}>"


def _check_count(count: object, func: str) -> None:
    if type(count) is not int or not 0 <= count <= _INT_MAX:
        check_int(count, func, "count", lo=0, hi=_INT_MAX)


def _sem(sem: object, func: str) -> Semaphore:
    """*sem* if it is a :class:`Semaphore`."""
    if type(sem) is Semaphore:
        return sem
    return check_instance(sem, Semaphore, func, "sem")


def DEFINE_SEMAPHORE(count: int) -> Semaphore:
    """
    Return a new semaphore with *count* free units (v6.4's ``DEFINE_SEMAPHORE(name, n)``).

    Raises:
        TypeError, ValueError: *count* is not an int from 0 to 2**31 - 1.

    .. versionadded:: 0.2
    """
    _check_count(count, "DEFINE_SEMAPHORE")
    return Semaphore(count)


def sema_init(sem: Semaphore, count: int) -> None:
    """
    (Re)initialise *sem* with *count* free units and nobody waiting.

    Raises:
        TypeError, ValueError: *sem* is not a :class:`Semaphore`, or *count* is not an int
            from 0 to 2**31 - 1.

    .. versionadded:: 0.2
    """
    _sem(sem, "sema_init")
    _check_count(count, "sema_init")
    sem._count = count
    sem._waiters = deque()


def _sem_leave(sem: Semaphore, waiter: _Waiter | None = None) -> None:
    """A waiter left the queue; one cancelled after it was handed a unit passes it on."""
    if waiter is not None:
        _up(sem)


def _up(sem: Semaphore) -> None:
    waiters = sem._waiters
    if waiters:
        first = waiters.popleft()
        first.granted = True
        wake_up_process(first.task)
    else:
        sem._count += 1


async def _down(sem: Semaphore, state: int, timeout: int) -> int:
    task = _cur()
    if sem._count > 0:
        sem._count -= 1
        await anyio.lowlevel.checkpoint()
        return 0
    waiter = _Waiter(task, False)
    sem._waiters.append(waiter)
    return await _wait(sem._waiters, waiter, state, timeout, lambda w: _sem_leave(sem, w))


@sleeping_checked(lambda sem: _sem(sem, "down"))
async def down(sem: Semaphore) -> None:
    """
    Take a unit of *sem*, sleeping uninterruptibly (FIFO) while none is free.

    Raises:
        TypeError: *sem* is not a :class:`Semaphore`.

    Context:
        Task context; may sleep (``might_sleep()`` even when a unit is free). Always a
        checkpoint.

    .. versionadded:: 0.2
    """
    await _down(sem, TASK_UNINTERRUPTIBLE, MAX_SCHEDULE_TIMEOUT)


@sleeping_checked(lambda sem: _sem(sem, "down_interruptible"))
async def down_interruptible(sem: Semaphore) -> int:
    """
    :func:`down`, or give up when a signal arrives.

    Returns:
        0 when a unit was taken, ``-EINTR`` if a signal ended the wait (the count unchanged).

    .. versionadded:: 0.2
    """
    return await _down(sem, TASK_INTERRUPTIBLE, MAX_SCHEDULE_TIMEOUT)


@sleeping_checked(lambda sem: _sem(sem, "down_killable"))
async def down_killable(sem: Semaphore) -> int:
    """
    :func:`down`, or give up on a fatal signal (SIGKILL) only.

    Returns:
        0 when a unit was taken, ``-EINTR`` if SIGKILL ended the wait.

    .. versionadded:: 0.2
    """
    return await _down(sem, TASK_KILLABLE, MAX_SCHEDULE_TIMEOUT)


def _check_down_timeout(sem: object, jiffies: object) -> None:
    _sem(sem, "down_timeout")
    _check_timeout(jiffies, "down_timeout", "jiffies")


@sleeping_checked(_check_down_timeout)
async def down_timeout(sem: Semaphore, jiffies: int) -> int:
    """
    :func:`down`, giving up after *jiffies* (a ``schedule_timeout()``, so the wait ends at
    the tick after the timer's expiry); with no unit free and *jiffies* <= 0, at once.

    Returns:
        0 when a unit was taken, ``-ETIME`` when the time ran out.

    Raises:
        TypeError, ValueError: *sem* is not a :class:`Semaphore`, or *jiffies* does not fit
            a ``long``.

    .. versionadded:: 0.2
    """
    return await _down(sem, TASK_UNINTERRUPTIBLE, jiffies)


def down_trylock(sem: Semaphore) -> int:
    """
    Take a unit of *sem* if one is free. Never sleeps.

    Returns:
        **0 when a unit was taken, 1 when none was free** (the inverse of
        ``spin_trylock``/``mutex_trylock``, as in the kernel).

    Raises:
        TypeError: *sem* is not a :class:`Semaphore`.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    _sem(sem, "down_trylock")
    if sem._count > 0:
        sem._count -= 1
        return 0
    return 1


def up(sem: Semaphore) -> None:
    """
    Release a unit of *sem*: the first waiter gets it (the count stays 0), else the count
    goes up, with no upper bound (more ``up`` than ``down`` is legal).

    Raises:
        TypeError: *sem* is not a :class:`Semaphore`.

    Context:
        Any context (an interrupt handler too); never sleeps.

    .. versionadded:: 0.2
    """
    _up(_sem(sem, "up"))
