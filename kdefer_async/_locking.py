"""Locks shared by deferred work and tasks: spinlocks and mutexes, with lockdep-style reports.

Kernel invariants modelled (include/linux/spinlock.h, kernel/locking/):

* Holding a spinlock is atomic context: ``spin_lock()`` adds one to ``preempt_count``;
  ``spin_lock_bh()`` also disables bottom halves (0x201) and ``spin_unlock_bh()`` runs softirqs
  raised meanwhile, like ``local_bh_enable()``; ``spin_lock_irqsave()`` disables local interrupts,
  ``spin_unlock_irq()`` enables them unconditionally.
* A mutex is a sleeping lock: task context only, released by its owner.
* lockdep (``CONFIG_PROVE_LOCKING``: ``Kernel(prove_locking=True)``, the default): taking a lock
  you already hold is ``possible recursive locking detected``; a lock taken in softirq context
  and also in task context with softirqs enabled is the classic deadlock, ``inconsistent
  {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} usage``; releasing a lock you do not hold is ``bad unlock
  balance detected!``; ``lockdep_assert_held()`` WARNs unless the caller holds the lock.
* CONFIG_DEBUG_SPINLOCK is always on: ``BUG: spinlock recursion``, ``already unlocked``,
  ``wrong owner``..., printed once (``debug_locks_off()``: a lockdep report turns lock
  debugging off too, as in the kernel, so with lockdep on those lines follow no lockdep report).

In one event loop a real spin would hang everything, so where the kernel would spin or sleep
forever on a lock, kdefer_async reports what lockdep (or the debug code) would and raises
:class:`KernelBug`.

Field rules: ``I`` set at creation; ``A`` changed only in synchronous code between checkpoints.
The uncontended ``spin_lock()``/``spin_unlock()`` pair is a fast path: exact-type tests and
two attribute writes, plus, with lockdep on, one comparison with the context of the last
acquisition (lockdep only learns something when the context is new).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import anyio

from ._check import bad_type, check_instance, check_int, check_optional_str
from ._consts import (
    EINTR,
    HARDIRQ_MASK,
    IRQ_MASK,
    PREEMPT_MASK,
    PREEMPT_OFFSET,
    SOFTIRQ_LOCK_OFFSET,
    SOFTIRQ_MASK,
    SOFTIRQ_OFFSET,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
)
from ._context import TaskStruct, _cur, _current
from ._exceptions import KernelBug
from ._printk import UTS_RELEASE, report_lines, taint_string, warn, warn_once
from ._sleeping import sleeping_checked

if TYPE_CHECKING:
    from ._rwlock import RwLock
    from ._semaphore import RwSemaphore
    from ._seqlock import SeqLock

__all__ = [
    "RWLOCK_MAGIC",
    "SPINLOCK_MAGIC",
    "DEFINE_MUTEX",
    "LockClass",
    "DEFINE_SPINLOCK",
    "Mutex",
    "SpinLock",
    "local_irq_restore",
    "local_irq_save",
    "lockdep_assert_held",
    "lockdep_usage",
    "mutex_init",
    "mutex_is_locked",
    "mutex_lock",
    "mutex_lock_interruptible",
    "mutex_trylock",
    "mutex_unlock",
    "print_recursive_locking",
    "report_bad_unlock",
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

# lockdep usage bits of a lock class: the write (W) states, and the read (R) states of rwlocks
_IN_HARDIRQ = 0x01
_HARDIRQ_ON = 0x02
_IN_SOFTIRQ = 0x04
_SOFTIRQ_ON = 0x08
_READ_SHIFT = 4  # the R state of a W bit: bit << 4
_USAGE_NAMES = {
    _IN_HARDIRQ: "IN-HARDIRQ-W",
    _HARDIRQ_ON: "HARDIRQ-ON-W",
    _IN_SOFTIRQ: "IN-SOFTIRQ-W",
    _SOFTIRQ_ON: "SOFTIRQ-ON-W",
    _IN_HARDIRQ << _READ_SHIFT: "IN-HARDIRQ-R",
    _HARDIRQ_ON << _READ_SHIFT: "HARDIRQ-ON-R",
    _IN_SOFTIRQ << _READ_SHIFT: "IN-SOFTIRQ-R",
    _SOFTIRQ_ON << _READ_SHIFT: "SOFTIRQ-ON-R",
}
#: The usages a new usage conflicts with: IN-x-W with x-ON-W and x-ON-R, IN-x-R with x-ON-W,
#: and the reverse; never IN-x-R with x-ON-R (readers in every context are fine).
_CONFLICT = {
    _IN_HARDIRQ: _HARDIRQ_ON | _HARDIRQ_ON << _READ_SHIFT,
    _IN_HARDIRQ << _READ_SHIFT: _HARDIRQ_ON,
    _HARDIRQ_ON: _IN_HARDIRQ | _IN_HARDIRQ << _READ_SHIFT,
    _HARDIRQ_ON << _READ_SHIFT: _IN_HARDIRQ,
    _IN_SOFTIRQ: _SOFTIRQ_ON | _SOFTIRQ_ON << _READ_SHIFT,
    _IN_SOFTIRQ << _READ_SHIFT: _SOFTIRQ_ON,
    _SOFTIRQ_ON: _IN_SOFTIRQ | _IN_SOFTIRQ << _READ_SHIFT,
    _SOFTIRQ_ON << _READ_SHIFT: _IN_SOFTIRQ,
}
#: The order lockdep's mark_usage() marks them in: hardirq states first.
_MARK_ORDER = (
    _IN_HARDIRQ,
    _HARDIRQ_ON,
    _IN_SOFTIRQ,
    _SOFTIRQ_ON,
    _IN_HARDIRQ << _READ_SHIFT,
    _HARDIRQ_ON << _READ_SHIFT,
    _IN_SOFTIRQ << _READ_SHIFT,
    _SOFTIRQ_ON << _READ_SHIFT,
)
#: The key of a kernel's ``debug_locks`` flag in its once-set: present once it went off.
_DEBUG_LOCKS_OFF = "debug_locks_off"
#: ``SPINLOCK_MAGIC`` and ``RWLOCK_MAGIC`` of kernel/locking/spinlock_debug.c.
SPINLOCK_MAGIC = 0xDEAD4EAD
RWLOCK_MAGIC = 0xDEAF1EED


class LockClass:
    """
    What lockdep keeps about a lock (its ``lockdep_map``): the name it prints, the usage
    states seen so far, and whether an inconsistency was reported already.

    .. versionadded:: 0.2
    """

    __slots__ = ("_usage", "_warned", "name")

    def __init__(self, name: str) -> None:
        self.name = name  # I
        self._usage = 0  # A: lockdep usage bits
        self._warned = False  # A


def debug_locks_off(task: TaskStruct) -> bool:
    """``debug_locks_off()``: turn lock debugging off; True if it was on (report once)."""
    once = task.kernel._warned_once
    if _DEBUG_LOCKS_OFF in once:
        return False
    once.add(_DEBUG_LOCKS_OFF)
    return True


def _recursive_lines(task: TaskStruct, lock: str, acquire_at: str, held_at: str) -> list[str]:
    return [
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
    ]


def print_recursive_locking(lock: str, acquire_at: str, held_at: str | None = None) -> None:
    """Print lockdep's ``possible recursive locking detected`` (the kernel goes on)."""
    task = _cur()
    debug_locks_off(task)
    report_lines(
        task, _recursive_lines(task, lock, acquire_at, held_at or acquire_at), level=4, taint="W"
    )


def report_recursive_locking(lock: str, acquire_at: str, held_at: str | None = None) -> None:
    """Print lockdep's ``possible recursive locking detected`` and raise :class:`KernelBug`."""
    print_recursive_locking(lock, acquire_at, held_at)
    task = _cur()
    raise KernelBug(
        f"possible recursive locking detected: {acquire_at} of {lock} would wait for itself "
        f"forever ({task.comm}/{task.pid}); see dmesg"
    )


def report_bad_unlock(task: TaskStruct, lock: str, release_at: str) -> None:
    """Print lockdep's ``bad unlock balance detected!``: *task* releases a lock it does not hold."""
    debug_locks_off(task)
    report_lines(
        task,
        [
            "",
            "=====================================",
            "WARNING: bad unlock balance detected!",
            f"{UTS_RELEASE} #1 {taint_string(task.kernel)}",
            "-------------------------------------",
            f"{task.comm}/{task.pid} is trying to release lock ({lock}) at:",
            f"[<0000000000000000>] {release_at}+0x0/0x0",
            "but there are no more locks to release!",
            "",
            "other info that might help us debug this:",
            f"no locks held by {task.comm}/{task.pid}.",
            "",
        ],
        level=4,
        taint="W",
    )


def _usage_of(task: TaskStruct, read: bool) -> int:
    """The usage states an acquisition by *task* right now marks (lockdep's mark_usage)."""
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
    return new << _READ_SHIFT if read else new


def lockdep_usage(task: TaskStruct, lock: LockClass, read: bool, how: str) -> None:
    """
    Record the usage of *lock* by this acquisition; report the first inconsistency
    (``inconsistent {old} -> {new} usage.``) once per lock.
    """
    new = _usage_of(task, read)
    fresh = new & ~lock._usage
    if not fresh:
        return
    if not lock._warned:
        for bit in _MARK_ORDER:
            if fresh & bit and lock._usage & _CONFLICT[bit]:
                old = next(b for b in _MARK_ORDER if lock._usage & _CONFLICT[bit] & b)
                lock._warned = True
                _report_inconsistent(task, lock, _USAGE_NAMES[old], _USAGE_NAMES[bit], how)
                break
    lock._usage |= new


def _report_inconsistent(task: TaskStruct, lock: LockClass, old: str, new: str, how: str) -> None:
    debug_locks_off(task)
    pc = task.preempt_count
    hardirq = int(bool(pc & HARDIRQ_MASK))
    softirq = int(bool(pc & SOFTIRQ_OFFSET))
    hardirqs_on = int(not task.irqs_off and not hardirq)
    softirqs_on = int(not pc & SOFTIRQ_MASK and hardirqs_on)
    report_lines(
        task,
        [
            "",
            "================================",
            "WARNING: inconsistent lock state",
            f"{UTS_RELEASE} #1 {taint_string(task.kernel)}",
            "--------------------------------",
            f"inconsistent {{{old}}} -> {{{new}}} usage.",
            f"{task.comm}/{task.pid} [HC{hardirq}[{hardirq}]:SC{softirq}[{softirq}]:"
            f"HE{hardirqs_on}:SE{softirqs_on}] takes:",
            f"({lock.name}){{+.?.}}-{{2:2}}, at: {how}",
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


#: ``_current.get``, bound once, for the lock fast paths. Typed as never returning ``None``:
#: where it does (a task the kernel has not seen yet), the fast path fails at its first
#: attribute access and the slow path's ``_cur()`` attaches the task.
get_current = cast("Callable[[], TaskStruct]", _current.get)


class SpinLock(LockClass):
    """
    ``spinlock_t``. Holding one is atomic context.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "_holder", "_seen_irqs", "_seen_pc")

    def __init__(self, name: str | None = None) -> None:
        check_optional_str(name, "SpinLock", "name")
        super().__init__(name or f"lock#{id(self) & 0xFFFF:x}")
        self._holder: TaskStruct | None = None  # A
        # A: the preempt_count and irqs_off of the last acquisition lockdep looked at (an
        # acquisition in the same context marks no new usage: the fast path skips lockdep)
        self._seen_pc = -1
        self._seen_irqs = -1

    def __repr__(self) -> str:
        owner = f" held by {self._holder.comm}" if self._holder else ""
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
    lock._holder = None
    lock._usage = 0
    lock._warned = False
    lock._seen_pc = lock._seen_irqs = -1


def spin_dump(task: TaskStruct, lock: SpinLock, msg: str) -> None:
    """``spin_dump()``: ``BUG: spinlock <msg> on CPU#n, comm/pid``, the lock, the stack."""
    owner = lock._holder
    report_lines(
        task,
        [
            f"BUG: spinlock {msg} on CPU#{task.cpu}, {task.comm}/{task.pid}",
            f" lock: {lock.name}, .magic: {SPINLOCK_MAGIC:08x}, .owner: "
            f"{owner.comm if owner else '<none>'}/{owner.pid if owner else -1}, "
            f".owner_cpu: {owner.cpu if owner else -1}",
        ],
        level=0,
    )


def spin_bug(task: TaskStruct, lock: SpinLock, msg: str) -> None:
    """``spin_bug()`` (CONFIG_DEBUG_SPINLOCK): the dump, once; then lock debugging is off."""
    if debug_locks_off(task):
        spin_dump(task, lock, msg)


def _mark(task: TaskStruct, lock: SpinLock, how: str) -> None:
    """lockdep's usage check of a spinlock acquisition, skipped in a context already seen."""
    if task.preempt_count != lock._seen_pc or task.irqs_off != lock._seen_irqs:
        lockdep_usage(task, lock, False, how)
        lock._seen_pc = task.preempt_count
        lock._seen_irqs = task.irqs_off


def _acquire(task: TaskStruct, lock: SpinLock, how: str) -> None:
    """Take *lock* for *task* (its preempt_count already raised), or report the deadlock."""
    prove = task.kernel.prove_locking
    if prove:
        _mark(task, lock, how)  # lockdep marks the usage before it looks for deadlocks
    owner = lock._holder
    if owner is not None:
        if owner is task or owner.cpu == task.cpu:
            if prove:
                report_recursive_locking(f"({lock.name})", how)
            spin_bug(task, lock, "recursion" if owner is task else "cpu recursion")
            raise KernelBug(
                f"{how}({lock.name}) on CPU#{task.cpu} would spin forever: the lock is held "
                f"on this CPU by {owner.comm}/{owner.pid} (a self-deadlock); see dmesg"
            )
        spin_dump(task, lock, "lockup suspected")
        raise KernelBug(
            f"{how}({lock.name}) would spin forever: it is held by {owner.comm}/{owner.pid}, "
            "which went to sleep holding it (a spinlock must never be held across an await)"
        )
    lock._holder = task


def _spin_lock_slow(lock: object, how: str, offset: int) -> None:
    lock = _spinlock(lock, how)
    task = _cur()
    task.preempt_count += offset
    try:
        _acquire(task, lock, how)
    except BaseException:
        task.preempt_count -= offset
        raise


def spin_lock(lock: SpinLock) -> None:
    """
    Take *lock* and disable preemption (``preempt_count`` + 1).

    Raises:
        TypeError: *lock* is not a :class:`SpinLock`.
        KernelBug: the lock is already held on this CPU: a self-deadlock, reported first
            as lockdep's recursive locking (``Kernel(prove_locking=True)``, the default) or
            as ``BUG: spinlock recursion`` (CONFIG_DEBUG_SPINLOCK, without lockdep).

    Context:
        Any context. Taking it where it is also taken in softirq (hardirq) context, with
        softirqs (interrupts) enabled, is lockdep's ``inconsistent lock state``.

    .. versionadded:: 0.1
    """
    task = get_current()
    try:  # the fast path: junk (or no task) fails at its first attribute, changing nothing
        if lock._holder is None:
            pc = task.preempt_count + PREEMPT_OFFSET
            if not task.kernel.prove_locking or (
                pc == lock._seen_pc and task.irqs_off == lock._seen_irqs
            ):
                task.preempt_count = pc
                lock._holder = task
                return
    except AttributeError:
        pass
    _spin_lock_slow(lock, "spin_lock", PREEMPT_OFFSET)


def spin_trylock(lock: SpinLock) -> int:
    """
    Take *lock* if it is free: 1 if taken (``preempt_count`` + 1), 0 if anyone holds it
    (never a deadlock: an interrupt may try a lock its interrupted task holds).

    Raises:
        TypeError: *lock* is not a :class:`SpinLock`.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    _spinlock(lock, "spin_trylock")
    task = _cur()
    if lock._holder is not None:
        return 0
    task.preempt_count += PREEMPT_OFFSET
    if task.kernel.prove_locking:
        _mark(task, lock, "spin_trylock")
    lock._holder = task
    return 1


def _release(lock: object, how: str) -> bool:
    """
    The slow path of the unlocks: release *lock*, reporting an unlock of a lock the caller
    does not hold as lockdep (bad unlock balance) or CONFIG_DEBUG_SPINLOCK (``already
    unlocked``, ``wrong owner``, ``wrong CPU``) does. False when nobody held it: then nothing
    changes (the kernel's count would underflow).
    """
    lock = _spinlock(lock, how)
    task = _cur()
    owner = lock._holder
    if owner is task:
        lock._holder = None
        return True
    if task.kernel.prove_locking:
        report_bad_unlock(task, lock.name, how)
    if owner is None:
        spin_bug(task, lock, "already unlocked")
        return False
    spin_bug(task, lock, "wrong owner" if owner.cpu == task.cpu else "wrong CPU")
    lock._holder = None
    return True


def spin_unlock(lock: SpinLock) -> None:
    """
    Release *lock* and re-enable preemption.

    A lock the caller does not hold is reported (lockdep: ``bad unlock balance detected!``;
    without it, CONFIG_DEBUG_SPINLOCK's ``BUG: spinlock already unlocked``); one nobody
    holds stays unlocked and ``preempt_count`` is left alone.

    Raises:
        TypeError: *lock* is not a :class:`SpinLock`.

    .. versionadded:: 0.1
    """
    task = get_current()
    try:
        if lock._holder is task is not None:
            lock._holder = None
            task.preempt_count -= PREEMPT_OFFSET
            return
    except AttributeError:
        pass
    if _release(lock, "spin_unlock"):
        _preempt_enable(_cur())


def _preempt_enable(task: TaskStruct) -> None:
    """Drop one preemption level (never below zero: a foreign unlock was reported already)."""
    if task.preempt_count & PREEMPT_MASK:
        task.preempt_count -= PREEMPT_OFFSET


def spin_lock_bh(lock: SpinLock) -> None:
    """
    Disable bottom halves on this CPU, then take *lock* (``preempt_count`` 0x201).

    Raises:
        TypeError, KernelBug: as :func:`spin_lock`.

    .. versionadded:: 0.1
    """
    _spin_lock_slow(lock, "spin_lock_bh", SOFTIRQ_LOCK_OFFSET)


def spin_unlock_bh(lock: SpinLock) -> None:
    """
    Release *lock* and re-enable bottom halves, running softirqs raised meanwhile.

    .. versionadded:: 0.1
    """
    from ._softirq import local_bh_enable

    if not _release(lock, "spin_unlock_bh"):
        return
    task = _cur()
    _preempt_enable(task)
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
    return _spinlock(lock, "spin_is_locked")._holder is not None


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
    if lock._owner is task and task.kernel.prove_locking:
        # without lockdep the task just sleeps forever (the hung-task detector reports it)
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


# ---------------------------------------------------------------------------------------------


def _held_by(lock: object, task: TaskStruct, func: str) -> bool:
    """Whether *task* holds *lock* (either side of a reader/writer lock)."""
    from ._rwlock import RwLock
    from ._semaphore import RwSemaphore
    from ._seqlock import SeqLock

    if type(lock) is SpinLock:
        return lock._holder is task
    if type(lock) is Mutex:
        return lock._owner is task
    if isinstance(lock, RwLock):
        return lock._writer is task or task in lock._readers
    if isinstance(lock, RwSemaphore):
        return lock._wowner is task or task in lock._rowners
    if isinstance(lock, SeqLock):
        return lock._lock._holder is task
    if isinstance(lock, SpinLock):
        return lock._holder is task
    if isinstance(lock, Mutex):
        return lock._owner is task
    raise bad_type(func, "lock", "a SpinLock, RwLock, SeqLock, Mutex or RwSemaphore", lock)


def lockdep_assert_held(lock: SpinLock | RwLock | SeqLock | Mutex | RwSemaphore) -> None:
    """
    WARN (the header only, every time) unless the running task holds *lock*: either side of
    a reader/writer lock counts, the write lock of a seqlock; a lock held by another task
    or on another CPU warns too. Without lockdep (``Kernel(prove_locking=False)``) a no-op.

    Raises:
        TypeError: *lock* is no lock.

    Context:
        Any context; an interrupt runs on the task it interrupted, so it "holds" what that
        task holds, as lockdep's per-task held-lock list says.

    .. versionadded:: 0.2
    """
    task = _cur()
    if not _held_by(lock, task, "lockdep_assert_held") and task.kernel.prove_locking:
        warn(task=task)
