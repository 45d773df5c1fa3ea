"""``rwlock_t``: the spinning reader/writer lock (include/linux/rwlock.h, kernel/locking/qrwlock.c).

Kernel invariants modelled:

* Holding either side is atomic context: ``preempt_count`` + 1. The ``_bh`` forms disable
  bottom halves too (0x201) and their unlock runs the softirqs raised meanwhile; ``_irq``
  disables local interrupts and its unlock enables them unconditionally; ``_irqsave`` returns
  the flags its ``_irqrestore`` puts back. The trylocks return 1 (taken, count + 1) or 0.
* Readers share; a writer excludes everyone. A reader may nest inside a reader, also from an
  interrupt on the CPU of a task that holds it for read (LK-01).
* The deadlocks are all same-CPU re-entries (a single event loop cannot spin across CPUs): an
  interrupt that write-locks what its interrupted task holds, or that takes in any way what
  it holds for write. They are reported, then :class:`KernelBug` is raised (the kernel would
  spin forever): with lockdep (``Kernel(prove_locking=True)``, the default) as ``possible
  recursive locking detected`` after any ``inconsistent lock state`` the acquisition makes;
  without it, a writer that re-enters is CONFIG_DEBUG_SPINLOCK's ``BUG: rwlock recursion on
  CPU#n, comm/pid, address`` (``cpu recursion`` for another task on the CPU), once.
* lockdep: a read acquisition outside interrupt context is not recursive (``read_lock(l);
  read_lock(l)`` in a task is reported as possible recursive locking, and goes on); inside an
  interrupt (``in_interrupt()``, BH-disabled sections included) it is. The usage states are
  kept apart for readers (``-R``) and writers (``-W``): ``IN-x-R`` with ``x-ON-R`` is fine.
* Unlocking what the caller does not hold: lockdep's ``bad unlock balance detected!``; the
  write side without lockdep: ``BUG: rwlock wrong owner`` (``wrong CPU``).

Not modelled: the qrwlock's waiting writer holding off new task-context readers. A writer can
only wait by spinning, and in one event loop nothing spins: the policy cannot be observed.

Field rules: ``I`` set at creation; ``A`` changed only in synchronous code between checkpoints.
"""

from __future__ import annotations

from ._check import check_instance, check_int, check_optional_str
from ._consts import IRQ_MASK, PREEMPT_OFFSET, SOFTIRQ_LOCK_OFFSET
from ._context import TaskStruct, _cur
from ._exceptions import KernelBug
from ._locking import (
    LockClass,
    _preempt_enable,
    debug_locks_off,
    get_current,
    local_irq_restore,
    local_irq_save,
    lockdep_usage,
    print_recursive_locking,
    report_bad_unlock,
    report_recursive_locking,
)
from ._printk import report_lines

__all__ = [
    "DEFINE_RWLOCK",
    "RwLock",
    "read_lock",
    "read_lock_bh",
    "read_lock_irq",
    "read_lock_irqsave",
    "read_trylock",
    "read_unlock",
    "read_unlock_bh",
    "read_unlock_irq",
    "read_unlock_irqrestore",
    "rwlock_init",
    "write_lock",
    "write_lock_bh",
    "write_lock_irq",
    "write_lock_irqsave",
    "write_trylock",
    "write_unlock",
    "write_unlock_bh",
    "write_unlock_irq",
    "write_unlock_irqrestore",
]


class RwLock(LockClass):
    """
    ``rwlock_t``: many readers or one writer, spinning. Holding either side is atomic context.

    Args:
        name: The name lockdep and the debug reports print (default ``rwlock#<n>``).

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "_readers", "_seen_irqs", "_seen_pc", "_writer")

    def __init__(self, name: str | None = None) -> None:
        check_optional_str(name, "RwLock", "name")
        super().__init__(name or f"rwlock#{id(self) & 0xFFFF:x}")
        self._writer: TaskStruct | None = None  # A
        #: A: one entry per read acquisition held (a reader nested in a reader is two)
        self._readers: list[TaskStruct] = []
        # A: the preempt_count and irqs_off of the last read acquisition lockdep recorded
        self._seen_pc = -1
        self._seen_irqs = -1

    def __repr__(self) -> str:
        if self._writer is not None:
            state = f" write-held by {self._writer.comm}"
        elif self._readers:
            state = f" read-held x{len(self._readers)}"
        else:
            state = ""
        return f"<RwLock {self.name}{state}>"


def _rwlock(lock: object, func: str) -> RwLock:
    """*lock* if it is an :class:`RwLock` (the cheap exact-type test first)."""
    if type(lock) is RwLock:
        return lock
    return check_instance(lock, RwLock, func, "lock", "an RwLock")


def DEFINE_RWLOCK() -> RwLock:
    """
    Return a new unlocked rwlock.

    .. versionadded:: 0.2
    """
    return RwLock()


def rwlock_init(lock: RwLock) -> None:
    """
    (Re)initialise *lock*, unlocked, with no lockdep history.

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    _rwlock(lock, "rwlock_init")
    lock._writer = None
    lock._readers = []
    lock._usage = 0
    lock._warned = False
    lock._seen_pc = lock._seen_irqs = -1


def _rwlock_bug(task: TaskStruct, lock: RwLock, msg: str) -> None:
    """``rwlock_bug()`` (CONFIG_DEBUG_SPINLOCK): once, then lock debugging is off."""
    if debug_locks_off(task):
        report_lines(
            task,
            [f"BUG: rwlock {msg} on CPU#{task.cpu}, {task.comm}/{task.pid}, {id(lock):016x}"],
            level=0,
        )


def _deadlock(task: TaskStruct, lock: RwLock, how: str, holder: TaskStruct, write: bool) -> None:
    """*task* would spin forever on *lock*, held by *holder*: report, raise KernelBug."""
    if holder is task or holder.cpu == task.cpu:
        if task.kernel.prove_locking:
            report_recursive_locking(f"({lock.name})", how)
        if write and holder is lock._writer:
            _rwlock_bug(task, lock, "recursion" if holder is task else "cpu recursion")
        raise KernelBug(
            f"{how}({lock.name}) on CPU#{task.cpu} would spin forever: the lock is "
            f"{'write' if holder is lock._writer else 'read'}-held on this CPU by "
            f"{holder.comm}/{holder.pid} (a self-deadlock); see dmesg"
        )
    raise KernelBug(
        f"{how}({lock.name}) would spin forever: it is held by {holder.comm}/{holder.pid}, "
        "which went to sleep holding it (a spinning lock must never be held across an await)"
    )


def _read_acquire(task: TaskStruct, lock: RwLock, how: str) -> None:
    prove = task.kernel.prove_locking
    if prove:
        lockdep_usage(task, lock, True, how)
        lock._seen_pc = task.preempt_count
        lock._seen_irqs = task.irqs_off
    writer = lock._writer
    if writer is not None:
        _deadlock(task, lock, how, writer, False)
    # lockdep: a read acquisition is recursive only in interrupt context (BH-disabled too)
    if prove and task in lock._readers and not task.preempt_count & IRQ_MASK:
        print_recursive_locking(f"({lock.name})", how)
    lock._readers.append(task)


def _write_acquire(task: TaskStruct, lock: RwLock, how: str) -> None:
    if task.kernel.prove_locking:
        lockdep_usage(task, lock, False, how)
    writer = lock._writer
    if writer is not None:
        _deadlock(task, lock, how, writer, True)
    readers = lock._readers
    if readers:
        here = [r for r in readers if r is task or r.cpu == task.cpu]
        _deadlock(task, lock, how, here[0] if here else readers[0], True)
    lock._writer = task


def _lock_slow(lock: object, how: str, offset: int, write: bool) -> None:
    lock = _rwlock(lock, how)
    task = _cur()
    task.preempt_count += offset
    try:
        (_write_acquire if write else _read_acquire)(task, lock, how)
    except BaseException:
        task.preempt_count -= offset
        raise


def _read_release(lock: object, how: str) -> bool:
    """Drop one read hold of the caller; report an unbalanced one. False if none was held."""
    lock = _rwlock(lock, how)
    task = _cur()
    readers = lock._readers
    if task in readers:
        # the innermost hold of this task
        del readers[len(readers) - 1 - readers[::-1].index(task)]
        return True
    if task.kernel.prove_locking:
        report_bad_unlock(task, lock.name, how)
    if not readers:
        return False
    readers.pop(0)  # another task's hold: the reader count drops all the same
    return True


def _write_release(lock: object, how: str) -> bool:
    """Drop the write hold; report one the caller does not have. False if none was held."""
    lock = _rwlock(lock, how)
    task = _cur()
    writer = lock._writer
    if writer is task:
        lock._writer = None
        return True
    if task.kernel.prove_locking:
        report_bad_unlock(task, lock.name, how)
    foreign_cpu = writer is not None and writer.cpu != task.cpu
    _rwlock_bug(task, lock, "wrong CPU" if foreign_cpu else "wrong owner")
    if writer is None:
        return False
    lock._writer = None
    return True


# -- plain ---------------------------------------------------------------------------------


def read_lock(lock: RwLock) -> None:
    """
    Take *lock* for reading and disable preemption (``preempt_count`` + 1).

    Readers share the lock, and a reader may nest in a reader (in a task lockdep reports the
    nesting as possible recursive locking, and it goes on).

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.
        KernelBug: a writer holds it on this CPU (the interrupted task): a self-deadlock.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    task = get_current()
    try:  # the fast path: junk (or no task) fails at its first attribute, changing nothing
        if lock._writer is None:
            if not task.kernel.prove_locking:
                task.preempt_count += PREEMPT_OFFSET
                lock._readers.append(task)
                return
            # lockdep: no other hold to check for recursion, a context already recorded
            pc = task.preempt_count + PREEMPT_OFFSET
            if not lock._readers and pc == lock._seen_pc and task.irqs_off == lock._seen_irqs:
                task.preempt_count = pc
                lock._readers.append(task)
                return
    except AttributeError:
        pass
    _lock_slow(lock, "read_lock", PREEMPT_OFFSET, False)


def read_unlock(lock: RwLock) -> None:
    """
    Release one read hold of *lock* and re-enable preemption.

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    task = get_current()
    try:  # the fast path: the innermost hold is the caller's (junk, no hold: the slow path)
        readers = lock._readers
        last = readers.pop()
        if last is task:
            task.preempt_count -= PREEMPT_OFFSET
            return
        readers.append(last)
    except (AttributeError, IndexError):
        pass
    if _read_release(lock, "read_unlock"):
        _preempt_enable(_cur())


def write_lock(lock: RwLock) -> None:
    """
    Take *lock* for writing (nobody else holds it then) and disable preemption.

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.
        KernelBug: it is held on this CPU (by the task this interrupt interrupted, for reading
            or writing): a self-deadlock, reported first.

    Context:
        Any context. If the lock is also taken in softirq (hardirq) context, writers
        elsewhere must use :func:`write_lock_bh` (:func:`write_lock_irqsave`).

    .. versionadded:: 0.2
    """
    _lock_slow(lock, "write_lock", PREEMPT_OFFSET, True)


def write_unlock(lock: RwLock) -> None:
    """
    Release the write hold of *lock* and re-enable preemption.

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    if _write_release(lock, "write_unlock"):
        _preempt_enable(_cur())


def read_trylock(lock: RwLock) -> int:
    """
    Take *lock* for reading if no writer holds it: 1 (``preempt_count`` + 1), else 0.

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    lock = _rwlock(lock, "read_trylock")
    task = _cur()
    if lock._writer is not None:
        return 0
    task.preempt_count += PREEMPT_OFFSET
    if task.kernel.prove_locking:
        lockdep_usage(task, lock, True, "read_trylock")
    lock._readers.append(task)
    return 1


def write_trylock(lock: RwLock) -> int:
    """
    Take *lock* for writing if nobody holds it: 1 (``preempt_count`` + 1), else 0.

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    lock = _rwlock(lock, "write_trylock")
    task = _cur()
    if lock._writer is not None or lock._readers:
        return 0
    task.preempt_count += PREEMPT_OFFSET
    if task.kernel.prove_locking:
        lockdep_usage(task, lock, False, "write_trylock")
    lock._writer = task
    return 1


# -- _bh -----------------------------------------------------------------------------------


def read_lock_bh(lock: RwLock) -> None:
    """
    Disable bottom halves, then take *lock* for reading (``preempt_count`` 0x201).

    Raises:
        TypeError, KernelBug: as :func:`read_lock`.

    .. versionadded:: 0.2
    """
    _lock_slow(lock, "read_lock_bh", SOFTIRQ_LOCK_OFFSET, False)


def _unlock_bh(released: bool) -> None:
    from ._softirq import local_bh_enable

    if released:
        _preempt_enable(_cur())
        local_bh_enable()


def read_unlock_bh(lock: RwLock) -> None:
    """
    Release a read hold of *lock*, then enable bottom halves (running softirqs raised meanwhile).

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    _unlock_bh(_read_release(lock, "read_unlock_bh"))


def write_lock_bh(lock: RwLock) -> None:
    """
    Disable bottom halves, then take *lock* for writing (``preempt_count`` 0x201).

    Raises:
        TypeError, KernelBug: as :func:`write_lock`.

    .. versionadded:: 0.2
    """
    _lock_slow(lock, "write_lock_bh", SOFTIRQ_LOCK_OFFSET, True)


def write_unlock_bh(lock: RwLock) -> None:
    """
    Release the write hold of *lock*, then enable bottom halves (running pending softirqs).

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    _unlock_bh(_write_release(lock, "write_unlock_bh"))


# -- _irq and _irqsave -----------------------------------------------------------------------


def _lock_irq(lock: object, how: str, write: bool) -> int:
    lock = _rwlock(lock, how)
    flags = local_irq_save()
    try:
        _lock_slow(lock, how, PREEMPT_OFFSET, write)
    except BaseException:
        _cur().irqs_off = flags
        raise
    return flags


def read_lock_irq(lock: RwLock) -> None:
    """
    Disable local interrupts, then take *lock* for reading.

    Raises:
        TypeError, KernelBug: as :func:`read_lock` (interrupts are then as they were).

    .. versionadded:: 0.2
    """
    _lock_irq(lock, "read_lock_irq", False)


def read_unlock_irq(lock: RwLock) -> None:
    """
    Release a read hold of *lock* and enable local interrupts (unconditionally).

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    if _read_release(lock, "read_unlock_irq"):
        _preempt_enable(_cur())
    local_irq_restore(0)


def write_lock_irq(lock: RwLock) -> None:
    """
    Disable local interrupts, then take *lock* for writing.

    Raises:
        TypeError, KernelBug: as :func:`write_lock` (interrupts are then as they were).

    .. versionadded:: 0.2
    """
    _lock_irq(lock, "write_lock_irq", True)


def write_unlock_irq(lock: RwLock) -> None:
    """
    Release the write hold of *lock* and enable local interrupts (unconditionally).

    Raises:
        TypeError: *lock* is not an :class:`RwLock`.

    .. versionadded:: 0.2
    """
    if _write_release(lock, "write_unlock_irq"):
        _preempt_enable(_cur())
    local_irq_restore(0)


def read_lock_irqsave(lock: RwLock) -> int:
    """
    Disable local interrupts and take *lock* for reading.

    Returns:
        The flags for :func:`read_unlock_irqrestore`.

    Raises:
        TypeError, KernelBug: as :func:`read_lock` (interrupts are then as they were).

    .. versionadded:: 0.2
    """
    return _lock_irq(lock, "read_lock_irqsave", False)


def _check_flags(lock: object, flags: object, func: str, saver: str) -> None:
    _rwlock(lock, func)
    check_int(flags, func, "flags", lo=0, expected=f"flags from {saver}()")


def read_unlock_irqrestore(lock: RwLock, flags: int) -> None:
    """
    Release a read hold of *lock* and restore the interrupt state *flags*.

    Raises:
        TypeError, ValueError: *lock* is not an :class:`RwLock`, or *flags* is not what
            :func:`read_lock_irqsave` returns (an ``int >= 0``).

    .. versionadded:: 0.2
    """
    _check_flags(lock, flags, "read_unlock_irqrestore", "read_lock_irqsave")
    if _read_release(lock, "read_unlock_irqrestore"):
        _preempt_enable(_cur())
    local_irq_restore(flags)


def write_lock_irqsave(lock: RwLock) -> int:
    """
    Disable local interrupts and take *lock* for writing.

    Returns:
        The flags for :func:`write_unlock_irqrestore`.

    Raises:
        TypeError, KernelBug: as :func:`write_lock` (interrupts are then as they were).

    .. versionadded:: 0.2
    """
    return _lock_irq(lock, "write_lock_irqsave", True)


def write_unlock_irqrestore(lock: RwLock, flags: int) -> None:
    """
    Release the write hold of *lock* and restore the interrupt state *flags*.

    Raises:
        TypeError, ValueError: *lock* is not an :class:`RwLock`, or *flags* is not what
            :func:`write_lock_irqsave` returns (an ``int >= 0``).

    .. versionadded:: 0.2
    """
    _check_flags(lock, flags, "write_unlock_irqrestore", "write_lock_irqsave")
    if _write_release(lock, "write_unlock_irqrestore"):
        _preempt_enable(_cur())
    local_irq_restore(flags)
