"""``seqlock_t``: a sequence counter plus a spinlock (include/linux/seqlock.h).

Kernel invariants modelled:

* Writers take the spinlock and bump the sequence (odd while a write is in progress);
  ``write_sequnlock`` bumps it again (even) and releases the spinlock. Writers exclude each
  other through the spinlock, with its ``preempt_count``, bottom-half and interrupt effects
  (``_bh``: 0x201, ``_irqsave``: interrupts off until the restore). The sequence is an
  ``unsigned int``: it wraps at 2**32.
* Readers take nothing and change no ``preempt_count``: ``read_seqbegin`` returns the (even)
  sequence, ``read_seqretry(sl, start)`` is true when it changed since (a writer ran or runs):
  the reader copies again.
* ``read_seqbegin`` while a write is in progress spins until it ends. In one event loop the
  writer can only be the code this reader interrupted on its CPU (writers cannot sleep
  holding the spinlock): the kernel spins forever; the model reports it and raises
  :class:`KernelBug` (LK-11). Writers whose data is read from interrupts must use the
  ``_irqsave``/``_bh`` forms.
* lockdep (``Kernel(prove_locking=True)``): the sequence counter is a lock class of its own,
  write-acquired by writers and (recursively) read-acquired by readers, so a reader in an
  interrupt after a writer with interrupts on is ``inconsistent {HARDIRQ-ON-W} ->
  {IN-HARDIRQ-R} usage.`` even when they did not overlap, as the kernel reports it.

Not modelled: PREEMPT_RT's readers that take the writer's lock instead of spinning.

Field rules: ``I`` set at creation; ``A`` changed only in synchronous code between checkpoints.
"""

from __future__ import annotations

from ._check import check_instance, check_int, check_optional_str
from ._context import TaskStruct, _cur
from ._exceptions import KernelBug
from ._locking import (
    LockClass,
    SpinLock,
    get_current,
    lockdep_usage,
    report_recursive_locking,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irqrestore,
)

__all__ = [
    "DEFINE_SEQLOCK",
    "SeqLock",
    "read_seqbegin",
    "read_seqretry",
    "seqlock_init",
    "write_seqlock",
    "write_seqlock_bh",
    "write_seqlock_irqsave",
    "write_sequnlock",
    "write_sequnlock_bh",
    "write_sequnlock_irqrestore",
]

_UINT_MAX = 0xFFFFFFFF


class SeqLock(LockClass):
    """
    ``seqlock_t``: readers never block writers; they retry when a write overlapped.

    Args:
        name: The name lockdep prints for the sequence counter (default ``seqlock#<n>``);
            the writers' spinlock is ``<name>.lock``.

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "_lock", "_seq")

    def __init__(self, name: str | None = None) -> None:
        check_optional_str(name, "SeqLock", "name")
        super().__init__(name or f"seqlock#{id(self) & 0xFFFF:x}")
        self._seq = 0  # A: the sequence (odd while a writer is inside)
        self._lock = SpinLock(f"{self.name}.lock")  # I: the writers' spinlock

    def __repr__(self) -> str:
        return f"<SeqLock {self.name} sequence={self._seq}>"


def _seqlock(sl: object, func: str) -> SeqLock:
    """*sl* if it is a :class:`SeqLock`."""
    if type(sl) is SeqLock:
        return sl
    return check_instance(sl, SeqLock, func, "sl")


def DEFINE_SEQLOCK() -> SeqLock:
    """
    Return a new seqlock: sequence 0, unlocked.

    .. versionadded:: 0.2
    """
    return SeqLock()


def seqlock_init(sl: SeqLock) -> None:
    """
    (Re)initialise *sl*: sequence 0, its spinlock unlocked, no lockdep history.

    Raises:
        TypeError: *sl* is not a :class:`SeqLock`.

    .. versionadded:: 0.2
    """
    _seqlock(sl, "seqlock_init")
    sl._seq = 0
    sl._usage = 0
    sl._warned = False
    spin_lock_init(sl._lock)


def _write_begin(task: TaskStruct, sl: SeqLock, how: str) -> None:
    if task.kernel.prove_locking:
        lockdep_usage(task, sl, False, how)
    sl._seq = (sl._seq + 1) & _UINT_MAX


def _write_end(sl: SeqLock) -> None:
    sl._seq = (sl._seq + 1) & _UINT_MAX


def write_seqlock(sl: SeqLock) -> None:
    """
    Take the writers' spinlock (``preempt_count`` + 1) and make the sequence odd.

    Raises:
        TypeError: *sl* is not a :class:`SeqLock`.
        KernelBug: a writer holds it on this CPU (as :func:`~kdefer_async.spin_lock`).

    Context:
        Any context; if readers run in interrupts, use the ``_bh``/``_irqsave`` forms.

    .. versionadded:: 0.2
    """
    _seqlock(sl, "write_seqlock")
    spin_lock(sl._lock)
    _write_begin(_cur(), sl, "write_seqlock")


def write_sequnlock(sl: SeqLock) -> None:
    """
    Make the sequence even again and release the writers' spinlock.

    Raises:
        TypeError: *sl* is not a :class:`SeqLock`.

    .. versionadded:: 0.2
    """
    _seqlock(sl, "write_sequnlock")
    _write_end(sl)
    spin_unlock(sl._lock)


def write_seqlock_bh(sl: SeqLock) -> None:
    """
    :func:`write_seqlock` with bottom halves disabled (``preempt_count`` 0x201).

    Raises:
        TypeError, KernelBug: as :func:`write_seqlock`.

    .. versionadded:: 0.2
    """
    _seqlock(sl, "write_seqlock_bh")
    spin_lock_bh(sl._lock)
    _write_begin(_cur(), sl, "write_seqlock_bh")


def write_sequnlock_bh(sl: SeqLock) -> None:
    """
    :func:`write_sequnlock`, then enable bottom halves (running softirqs raised meanwhile).

    Raises:
        TypeError: *sl* is not a :class:`SeqLock`.

    .. versionadded:: 0.2
    """
    _seqlock(sl, "write_sequnlock_bh")
    _write_end(sl)
    spin_unlock_bh(sl._lock)


def write_seqlock_irqsave(sl: SeqLock) -> int:
    """
    :func:`write_seqlock` with local interrupts disabled.

    Returns:
        The flags for :func:`write_sequnlock_irqrestore`.

    Raises:
        TypeError, KernelBug: as :func:`write_seqlock` (interrupts are then as they were).

    .. versionadded:: 0.2
    """
    _seqlock(sl, "write_seqlock_irqsave")
    flags = spin_lock_irqsave(sl._lock)
    _write_begin(_cur(), sl, "write_seqlock_irqsave")
    return flags


def write_sequnlock_irqrestore(sl: SeqLock, flags: int) -> None:
    """
    :func:`write_sequnlock`, then restore the interrupt state *flags*.

    Raises:
        TypeError, ValueError: *sl* is not a :class:`SeqLock`, or *flags* is not what
            :func:`write_seqlock_irqsave` returns (an ``int >= 0``).

    .. versionadded:: 0.2
    """
    _seqlock(sl, "write_sequnlock_irqrestore")
    check_int(
        flags,
        "write_sequnlock_irqrestore",
        "flags",
        lo=0,
        expected="flags from write_seqlock_irqsave()",
    )
    _write_end(sl)
    spin_unlock_irqrestore(sl._lock, flags)


def _read_begin_slow(sl: object) -> int:
    sl = _seqlock(sl, "read_seqbegin")
    task = _cur()
    if task.kernel.prove_locking:
        lockdep_usage(task, sl, True, "read_seqbegin")
    seq = sl._seq
    if not seq & 1:
        return seq
    writer = sl._lock._holder
    if writer is not None and (writer is task or writer.cpu == task.cpu):
        if task.kernel.prove_locking:
            report_recursive_locking(f"({sl.name})", "read_seqbegin")
        raise KernelBug(
            f"read_seqbegin({sl.name}) on CPU#{task.cpu} would spin forever: the write it waits "
            f"for was interrupted on this CPU ({writer.comm}/{writer.pid}); writers whose data "
            "interrupts read must use write_seqlock_irqsave()/write_seqlock_bh(); see dmesg"
        )
    raise KernelBug(
        f"read_seqbegin({sl.name}) would spin forever: the sequence is odd and no writer "
        "holds the lock (write_sequnlock() without write_seqlock()?)"
        if writer is None
        else f"read_seqbegin({sl.name}) would spin forever: its writer {writer.comm}/"
        f"{writer.pid} went to sleep inside the write section"
    )


def read_seqbegin(sl: SeqLock) -> int:
    """
    Begin a read section: the sequence now (even). Takes nothing; no ``preempt_count`` change.

    Returns:
        The sequence for :func:`read_seqretry`.

    Raises:
        TypeError: *sl* is not a :class:`SeqLock`.
        KernelBug: a write is in progress on this CPU (this code interrupted the writer):
            the kernel would spin forever.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    task = get_current()
    try:  # the fast path: junk (or no task) fails at its first attribute
        seq: int = sl._seq
        if not seq & 1 and not task.kernel.prove_locking:
            return seq
    except AttributeError:
        pass
    return _read_begin_slow(sl)


def read_seqretry(sl: SeqLock, start: int) -> bool:
    """
    End a read section: True if the data may have changed since :func:`read_seqbegin`
    returned *start* (copy again), False if the copy is consistent.

    Raises:
        TypeError, ValueError: *sl* is not a :class:`SeqLock`, or *start* is not a sequence
            (an ``unsigned int``).

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    if type(sl) is not SeqLock or type(start) is not int or not 0 <= start <= _UINT_MAX:
        _seqlock(sl, "read_seqretry")
        check_int(start, "read_seqretry", "start", lo=0, hi=_UINT_MAX)
    return sl._seq != start
