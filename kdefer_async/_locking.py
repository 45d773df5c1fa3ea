"""Locks shared by deferred work and tasks: spinlocks and mutexes, with lockdep-style reports.

Kernel invariants modelled (include/linux/spinlock.h, kernel/locking/):

* Holding a spinlock is atomic context: ``spin_lock()`` adds one to ``preempt_count``;
  ``spin_lock_bh()`` also disables bottom halves (0x201) and ``spin_unlock_bh()`` runs softirqs
  raised meanwhile, like ``local_bh_enable()``; ``spin_lock_irqsave()`` disables local interrupts.
* A mutex is a sleeping lock: task context only, released by its owner.
* lockdep: taking a lock you already hold is ``possible recursive locking detected``; a lock
  taken in softirq context and also in task context with softirqs enabled is the classic
  deadlock, ``inconsistent {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} usage``.

In one event loop a real spin would hang everything, so where the kernel would spin or sleep
forever on a lock, kdefer_async reports what lockdep would and raises :class:`KernelBug`.
"""

from __future__ import annotations

from collections import deque

import anyio

from ._check import check_instance, check_int, check_optional_str
from ._consts import (
    EINTR,
    HARDIRQ_MASK,
    IRQ_MASK,
    PREEMPT_OFFSET,
    SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_MASK,
    SOFTIRQ_OFFSET,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
)
from ._context import TaskStruct, _cur
from ._exceptions import KernelBug
from ._printk import UTS_RELEASE, log_text, report_lines, taint_string, warn_once
from ._sleeping import sleeping_checked

__all__ = [
    "DEFINE_MUTEX",
    "DEFINE_SPINLOCK",
    "Mutex",
    "SpinLock",
    "local_irq_restore",
    "local_irq_save",
    "mutex_init",
    "mutex_is_locked",
    "mutex_lock",
    "mutex_lock_interruptible",
    "mutex_trylock",
    "mutex_unlock",
    "report_recursive_locking",
    "spin_is_locked",
    "spin_lock",
    "spin_lock_bh",
    "spin_lock_init",
    "spin_lock_irq",
    "spin_lock_irqsave",
    "spin_trylock",
    "spin_unlock",
    "spin_unlock_bh",
    "spin_unlock_irq",
    "spin_unlock_irqrestore",
]

_IN_HARDIRQ = 1
_HARDIRQ_ON = 2
_IN_SOFTIRQ = 4
_SOFTIRQ_ON = 8
_USAGE_NAMES = {
    _IN_HARDIRQ: "IN-HARDIRQ-W",
    _HARDIRQ_ON: "HARDIRQ-ON-W",
    _IN_SOFTIRQ: "IN-SOFTIRQ-W",
    _SOFTIRQ_ON: "SOFTIRQ-ON-W",
}
_CONFLICT = {
    _IN_HARDIRQ: _HARDIRQ_ON,
    _HARDIRQ_ON: _IN_HARDIRQ,
    _IN_SOFTIRQ: _SOFTIRQ_ON,
    _SOFTIRQ_ON: _IN_SOFTIRQ,
}


def report_recursive_locking(lock: str, acquire_at: str, held_at: str | None = None) -> None:
    """Print lockdep's ``possible recursive locking detected`` and raise :class:`KernelBug`."""
    task = _cur()
    held_at = held_at or acquire_at
    report_lines(
        task,
        [
            "",
            "============================================",
            "WARNING: possible recursive locking detected",
            f"{UTS_RELEASE} #1 {taint_string(task.kernel)}",
            "--------------------------------------------",
            f"{task.comm}/{task.pid} is trying to acquire lock:",
            f"{lock}, at: {acquire_at}",
            "",
            "but task is already holding lock:",
            f"{lock}, at: {held_at}",
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "",
            "       CPU0",
            "       ----",
            f"  lock({lock});",
            f"  lock({lock});",
            "",
            " *** DEADLOCK ***",
            "",
            " May be due to missing lock nesting notation",
            "",
        ],
        level=4,
        taint="W",
    )
    raise KernelBug(
        f"possible recursive locking detected: {acquire_at} of {lock} would wait for itself "
        f"forever ({task.comm}/{task.pid}); see dmesg"
    )


class SpinLock:
    """
    ``spinlock_t``. Holding one is atomic context.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "_bh", "_owner", "_usage", "_warned", "name")

    def __init__(self, name: str | None = None) -> None:
        check_optional_str(name, "SpinLock", "name")
        self.name = name or f"lock#{id(self) & 0xFFFF:x}"  # I
        self._owner: TaskStruct | None = None  # A
        self._bh = False  # A
        self._usage = 0  # A: lockdep usage bits
        self._warned = False  # A

    def __repr__(self) -> str:
        owner = f" held by {self._owner.comm}" if self._owner else ""
        return f"<SpinLock {self.name}{owner}>"


def _spinlock(lock: object, func: str) -> SpinLock:
    """*lock* if it is a :class:`SpinLock` (the cheap exact-type test first)."""
    if type(lock) is SpinLock:
        return lock
    return check_instance(lock, SpinLock, func, "lock")


def DEFINE_SPINLOCK() -> SpinLock:
    """
    Return a new unlocked spinlock.

    .. versionadded:: 0.1
    """
    return SpinLock()


def spin_lock_init(lock: SpinLock) -> None:
    """
    (Re)initialise *lock*, unlocked.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_lock_init")
    lock._owner = None
    lock._bh = False
    lock._usage = 0
    lock._warned = False


def _lockdep_usage(task: TaskStruct, lock: SpinLock) -> None:
    pc = task.preempt_count
    new = 0
    if pc & HARDIRQ_MASK:
        new |= _IN_HARDIRQ
    elif not task.irqs_off:
        new |= _HARDIRQ_ON
    if pc & SOFTIRQ_OFFSET:
        new |= _IN_SOFTIRQ
    elif not pc & SOFTIRQ_MASK and not pc & HARDIRQ_MASK and not task.irqs_off:
        # lockdep marks ENABLED_SOFTIRQ only with hardirqs on too (mark_usage): with local
        # interrupts off no softirq can run here, so spin_lock_irqsave is softirq-safe
        new |= _SOFTIRQ_ON
    fresh = new & ~lock._usage
    if not fresh:
        return
    for bit in (_IN_SOFTIRQ, _SOFTIRQ_ON, _IN_HARDIRQ, _HARDIRQ_ON):
        if fresh & bit and lock._usage & _CONFLICT[bit] and not lock._warned:
            lock._warned = True
            old = _USAGE_NAMES[_CONFLICT[bit]]
            report_lines(
                task,
                [
                    "",
                    "================================",
                    "WARNING: inconsistent lock state",
                    f"{UTS_RELEASE} #1 {taint_string(task.kernel)}",
                    "--------------------------------",
                    f"inconsistent {{{old}}} -> {{{_USAGE_NAMES[bit]}}} usage.",
                    f"{task.comm}/{task.pid} takes:",
                    f"({lock.name}){{+.?.}}-{{2:2}}, at: spin_lock",
                    "",
                    " Possible unsafe locking scenario:",
                    "",
                    "       CPU0",
                    "       ----",
                    f"  lock({lock.name});",
                    "  <Interrupt>",
                    f"    lock({lock.name});",
                    "",
                    " *** DEADLOCK ***",
                    "",
                ],
                level=4,
                taint="W",
            )
            break
    lock._usage |= new


def _acquire(task: TaskStruct, lock: SpinLock, how: str) -> None:
    owner = lock._owner
    if owner is not None:
        if owner is task or owner.cpu == task.cpu:
            report_recursive_locking(f"({lock.name})", how)
        log_text(
            task.kernel,
            0,
            f"BUG: spinlock lockup suspected on CPU#{task.cpu}, {task.comm}/{task.pid}",
        )
        raise KernelBug(
            f"{how}({lock.name}) would spin forever: it is held by {owner.comm}/{owner.pid}, "
            "which went to sleep holding it (a spinlock must never be held across an await)"
        )
    _lockdep_usage(task, lock)
    lock._owner = task


def spin_lock(lock: SpinLock) -> None:
    """
    Take *lock* and disable preemption (``preempt_count`` + 1).

    Raises:
        KernelBug: the lock is already held on this CPU (lockdep's recursive locking).

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_lock")
    task = _cur()
    task.preempt_count += PREEMPT_OFFSET
    try:
        _acquire(task, lock, "spin_lock")
    except BaseException:
        task.preempt_count -= PREEMPT_OFFSET
        raise


def spin_trylock(lock: SpinLock) -> int:
    """
    Take *lock* if it is free: 1 if taken, 0 otherwise.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_trylock")
    task = _cur()
    if lock._owner is not None:
        return 0
    task.preempt_count += PREEMPT_OFFSET
    _lockdep_usage(task, lock)
    lock._owner = task
    return 1


def spin_unlock(lock: SpinLock) -> None:
    """
    Release *lock* and re-enable preemption.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_unlock")
    task = _cur()
    if lock._owner is None:
        warn_once(("spin_unlock", id(lock)), "BUG: spinlock already unlocked on CPU#%d\n", task.cpu)
        return
    lock._owner = None
    task.preempt_count -= PREEMPT_OFFSET


def spin_lock_bh(lock: SpinLock) -> None:
    """
    Disable bottom halves on this CPU, then take *lock* (``preempt_count`` 0x201).

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_lock_bh")
    task = _cur()
    task.preempt_count += SOFTIRQ_DISABLE_OFFSET + PREEMPT_OFFSET
    try:
        _acquire(task, lock, "spin_lock_bh")
    except BaseException:
        task.preempt_count -= SOFTIRQ_DISABLE_OFFSET + PREEMPT_OFFSET
        raise


def spin_unlock_bh(lock: SpinLock) -> None:
    """
    Release *lock* and re-enable bottom halves, running softirqs raised meanwhile.

    .. versionadded:: 0.1
    """
    from ._softirq import local_bh_enable

    _spinlock(lock, "spin_unlock_bh")
    task = _cur()
    if lock._owner is None:
        warn_once(("spin_unlock", id(lock)), "BUG: spinlock already unlocked on CPU#%d\n", task.cpu)
        return
    lock._owner = None
    task.preempt_count -= PREEMPT_OFFSET
    local_bh_enable()


def local_irq_save() -> int:
    """
    Disable local interrupts; return the previous state for :func:`local_irq_restore`.

    Interrupts raised on this CPU meanwhile are delivered when they are enabled again.

    .. versionadded:: 0.1
    """
    task = _cur()
    flags = task.irqs_off
    task.irqs_off += 1
    return flags


def local_irq_restore(flags: int) -> None:
    """
    Restore the interrupt state saved by :func:`local_irq_save`.

    Raises:
        TypeError, ValueError: *flags* is not what :func:`local_irq_save` returns (an
            ``int >= 0``).

    .. versionadded:: 0.1
    """
    check_int(flags, "local_irq_restore", "flags", lo=0, expected="flags from local_irq_save()")
    task = _cur()
    task.irqs_off = flags
    if not flags:
        task.kernel._deliver_pending_irqs(task)


def spin_lock_irqsave(lock: SpinLock) -> int:
    """
    Disable local interrupts and take *lock*; return the flags for the restore.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_lock_irqsave")
    flags = local_irq_save()
    try:
        spin_lock(lock)
    except BaseException:
        local_irq_restore(flags)
        raise
    return flags


def spin_unlock_irqrestore(lock: SpinLock, flags: int) -> None:
    """
    Release *lock* and restore the interrupt state.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_unlock_irqrestore")
    check_int(
        flags, "spin_unlock_irqrestore", "flags", lo=0, expected="flags from spin_lock_irqsave()"
    )
    spin_unlock(lock)
    local_irq_restore(flags)


def spin_lock_irq(lock: SpinLock) -> None:
    """
    Disable local interrupts and take *lock*.

    A call that raises (a bad argument, a self-deadlock report) leaves interrupts as they were.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_lock_irq")
    flags = local_irq_save()
    try:
        spin_lock(lock)
    except BaseException:
        _cur().irqs_off = flags
        raise


def spin_unlock_irq(lock: SpinLock) -> None:
    """
    Release *lock* and enable local interrupts.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_unlock_irq")
    spin_unlock(lock)
    local_irq_restore(0)


def spin_is_locked(lock: SpinLock) -> bool:
    """
    True while *lock* is held.

    .. versionadded:: 0.1
    """
    return _spinlock(lock, "spin_is_locked")._owner is not None


# ---------------------------------------------------------------------------------------------


class Mutex:
    """
    ``struct mutex``: a sleeping lock with an owner, waiters served in FIFO order.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "_owner", "_waiters", "name")

    def __init__(self, name: str | None = None) -> None:
        check_optional_str(name, "Mutex", "name")
        self.name = name or f"mutex#{id(self) & 0xFFFF:x}"  # I
        self._owner: TaskStruct | None = None  # A
        self._waiters: deque[TaskStruct] = deque()  # A

    def __repr__(self) -> str:
        owner = f" held by {self._owner.comm}" if self._owner else ""
        return f"<Mutex {self.name}{owner} waiters={len(self._waiters)}>"


def _mutex(lock: object, func: str) -> Mutex:
    """*lock* if it is a :class:`Mutex`."""
    if type(lock) is Mutex:
        return lock
    return check_instance(lock, Mutex, func, "lock")


def DEFINE_MUTEX() -> Mutex:
    """
    Return a new unlocked mutex.

    .. versionadded:: 0.1
    """
    return Mutex()


def mutex_init(lock: Mutex) -> None:
    """
    (Re)initialise *lock*, unlocked.

    .. versionadded:: 0.1
    """
    _mutex(lock, "mutex_init")
    lock._owner = None
    lock._waiters = deque()


async def _mutex_lock(lock: Mutex, interruptible: bool) -> int:
    from ._sched import schedule, signal_pending

    task = _cur()
    if lock._owner is task:
        report_recursive_locking(f"({lock.name}){{+.+.}}-{{4:4}}", "mutex_lock")
    if lock._owner is None and not lock._waiters:
        lock._owner = task
        await anyio.lowlevel.checkpoint()
        return 0
    lock._waiters.append(task)
    try:
        while lock._owner is not task:
            if interruptible and signal_pending(task):
                lock._waiters.remove(task)
                return -EINTR
            task.state = TASK_INTERRUPTIBLE if interruptible else TASK_UNINTERRUPTIBLE
            if lock._owner is task:
                break
            await schedule()
    except BaseException:
        # cancelled while waiting: leave the queue, or pass on a lock handed to us meanwhile
        if lock._owner is task:
            _hand_over(lock)
        elif task in lock._waiters:
            lock._waiters.remove(task)
        raise
    finally:
        task.state = TASK_RUNNING
    return 0


def _hand_over(lock: Mutex) -> None:
    from ._sched import wake_up_process

    if lock._waiters:
        nxt = lock._waiters.popleft()
        lock._owner = nxt
        wake_up_process(nxt)
    else:
        lock._owner = None


@sleeping_checked(lambda lock: _mutex(lock, "mutex_lock"))
async def mutex_lock(lock: Mutex) -> None:
    """
    Take *lock*, sleeping (uninterruptibly) until it is free.

    Raises:
        KernelBug: the caller already holds it (lockdep: possible recursive locking).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    await _mutex_lock(lock, False)


@sleeping_checked(lambda lock: _mutex(lock, "mutex_lock_interruptible"))
async def mutex_lock_interruptible(lock: Mutex) -> int:
    """
    Take *lock*, or give up when a signal arrives.

    Returns:
        0 when taken, ``-EINTR`` if interrupted by a signal.

    .. versionadded:: 0.1
    """
    return await _mutex_lock(lock, True)


def mutex_trylock(lock: Mutex) -> int:
    """
    Take *lock* if it is free: 1 if taken, 0 otherwise. Not for interrupt context (WARN).

    .. versionadded:: 0.1
    """
    _mutex(lock, "mutex_trylock")
    task = _cur()
    if task.preempt_count & IRQ_MASK:
        warn_once("mutex_trylock in interrupt", "DEBUG_LOCKS_WARN_ON(in_interrupt())\n")
    if lock._owner is None and not lock._waiters:
        lock._owner = task
        return 1
    return 0


def mutex_unlock(lock: Mutex) -> None:
    """
    Release *lock*, handing it to the first waiter.

    Releasing a mutex you do not own is a bug lockdep warns about (the mutex is still released,
    as in the kernel).

    .. versionadded:: 0.1
    """
    _mutex(lock, "mutex_unlock")
    task = _cur()
    if lock._owner is None:
        warn_once(("mutex_unlock free", id(lock)), "DEBUG_LOCKS_WARN_ON(!mutex_is_locked(lock))\n")
        return
    if lock._owner is not task:
        warn_once(
            ("mutex_unlock owner", id(lock)),
            "DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current)\n",
        )
    _hand_over(lock)


def mutex_is_locked(lock: Mutex) -> bool:
    """
    True while *lock* is held.

    .. versionadded:: 0.1
    """
    return _mutex(lock, "mutex_is_locked")._owner is not None
