"""irq_work: callbacks queued from any context (NMI included) and run soon in hardirq context.

Field rules:

* ``I``: set at creation, read-only after.
* ``A``: changed only in synchronous code, so atomic with respect to the other tasks of the loop.

Kernel invariants modelled (kernel/irq_work.c, include/linux/irq_work.h,
include/linux/smp_types.h, arch/x86/kernel/irq_work.c):

* An item is *free* (no bits), *claimed/queued* (``PENDING|BUSY``) or *running* (``BUSY``).
  Claiming ORs in ``IRQ_WORK_CLAIMED`` and fails only if ``PENDING`` was set: a queued item is
  on exactly one list, whichever CPU queued it, and a second queue anywhere returns false.
* ``PENDING`` is cleared just before the callback runs, so the callback (or anyone) can queue
  the item again; ``BUSY`` is cleared just after it, unless the item was claimed again
  meanwhile. ``irq_work_sync()`` waits for ``BUSY`` to clear.
* A local non-lazy item goes on the CPU's *raised* list; the item that finds the list empty
  raises the IRQ_WORK self-interrupt (``IWI`` in /proc/interrupts). The interrupt is taken as
  soon as local interrupts are on: at once from task context with interrupts enabled, else
  when they are enabled again (at the end of a hardirq handler, or, on x86, when the softirq
  processing of that handler's ``irq_exit`` enables them: before its softirq handlers). It
  has an ``irq_exit`` of its own, where softirqs the callbacks raised run.
* A lazy item (``IRQ_WORK_LAZY``) goes on the *lazy* list and raises nothing: the CPU's next
  tick runs it. The IRQ_WORK interrupt runs the raised list, then the lazy list.
* A list is taken off whole and run newest first (a lock-free stack).
* An item for another CPU (``irq_work_queue_on``) goes on that CPU's call-function queue and
  runs in its CALL_FUNCTION interrupt, after the synchronous cross-CPU calls queued there
  (``_smp.py``); a lazy one too (the lazy flag only matters locally).

Model choices:

* The tick of a CPU with lazy items never stops (the tick device is programmed for the next
  jiffy while the lazy list is not empty), so the kernel's "tick stopped: raise the interrupt
  at once" branch never applies: a lazy item always runs at the next tick.
* Non-RT kernel: ``IRQ_WORK_HARD_IRQ`` is recorded and changes nothing; every item runs in
  hardirq context, with ``threadirqs`` too (no ``irq_work/N`` threads).
* ``irq_work_sync()`` sleeps until ``BUSY`` clears (x86 spins; with one event loop only a
  sleeping waiter lets the tick that runs a lazy item come). From the item's own callback it
  would spin forever: reported (``Watchdog detected hard LOCKUP``) and raised as
  :class:`~kdefer_async.KernelBug`, never a hang.

Guarantees:
    * test_queue_runs_before_next_await: an item queued from task context with interrupts on
      has run, in hardirq context on that CPU, when ``irq_work_queue()`` returns.
    * test_queue_twice_while_pending: a pending item is not queued again; it runs once.
    * test_requeue_from_callback: a queue from the callback succeeds and runs it once more.
    * test_lifo_within_one_run: items queued before one interrupt run newest first.
    * test_lazy_waits_for_tick: a lazy item runs at the next tick, not before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._check import bad_value, check_callback, check_cpu, check_instance, check_int
from ._consts import (
    HARDIRQ_MASK,
    IRQ_WORK_BUSY,
    IRQ_WORK_CLAIMED,
    IRQ_WORK_HARD_IRQ,
    IRQ_WORK_LAZY,
    IRQ_WORK_PENDING,
    IRQ_WORK_VECTOR,
    NMI_MASK,
)
from ._context import TaskStruct, _cur, _current
from ._exceptions import KernelBug
from ._hardirq import deliver_irq
from ._printk import report_lines, symbol_name, warn_once
from ._sleeping import might_sleep_report, sleeping_checked
from ._softirq import panic_in_interrupt, run_atomic_result
from ._tick import program_event
from ._wait import wait_var_event, wake_up_var

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = [
    "DEFINE_IRQ_WORK",
    "IRQ_WORK_INIT",
    "IRQ_WORK_INIT_HARD",
    "IRQ_WORK_INIT_LAZY",
    "IrqWork",
    "init_irq_work",
    "irq_work_interrupt",
    "irq_work_is_busy",
    "irq_work_is_pending",
    "irq_work_queue",
    "irq_work_queue_on",
    "irq_work_single",
    "irq_work_sync",
    "irq_work_tick",
]

_PENDING = IRQ_WORK_PENDING
_BUSY = IRQ_WORK_BUSY
_CLAIMED = IRQ_WORK_CLAIMED
_LAZY = IRQ_WORK_LAZY
#: The flags a caller may give an item (the others are its state).
_INIT_FLAGS = IRQ_WORK_LAZY | IRQ_WORK_HARD_IRQ


class IrqWork:
    """
    ``struct irq_work``: a callback, ``func(work)``, to run soon in hardirq context.

    ``IrqWork(func)`` is ``init_irq_work``; ``IrqWork()`` is a zeroed item for
    :func:`init_irq_work`. *flags* may add ``IRQ_WORK_LAZY`` (wait for the next tick) and
    ``IRQ_WORK_HARD_IRQ`` (hardirq even on PREEMPT_RT: no effect in this non-RT model), as
    ``IRQ_WORK_INIT_FLAGS`` does.

    Attributes:
        flags: ``IRQ_WORK_PENDING``, ``IRQ_WORK_BUSY``, ``IRQ_WORK_LAZY`` and
            ``IRQ_WORK_HARD_IRQ`` bits (the kernel's ``node.a_flags``).
        func: The callback, or ``None`` for an item never initialised.

    Guarantees:
        * test_claim_fails_only_when_pending: queueing fails only while ``PENDING`` is set.
        * test_callback_sees_busy_not_pending: inside the callback the item is busy and not
          pending; afterwards neither.

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "_running", "flags", "func")

    def __init__(self, func: Callable[[IrqWork], object] | None = None, flags: int = 0) -> None:
        if func is not None:
            _check_func(func, "IrqWork")
        if type(flags) is not int or flags & ~_INIT_FLAGS:
            _check_flags(flags, "IrqWork")
        self.flags = flags  # A: state bits and the LAZY/HARD_IRQ flags
        self.func: Callable[[IrqWork], object] | None = func  # A
        #: A: the task whose context runs the callback right now (innermost run), else None
        self._running: TaskStruct | None = None

    def __repr__(self) -> str:
        names = (
            ("PENDING", _PENDING),
            ("BUSY", _BUSY),
            ("LAZY", _LAZY),
            ("HARD_IRQ", IRQ_WORK_HARD_IRQ),
        )
        bits = [n for n, b in names if self.flags & b]
        func = symbol_name(self.func) if self.func is not None else None
        return f"<IrqWork {func} flags={'|'.join(bits) or '0'}>"


# -- argument checks ----------------------------------------------------------------------------


def _work(work: object, func: str) -> IrqWork:
    """*work* if it is an :class:`IrqWork` (the cheap exact-type test first)."""
    if type(work) is IrqWork:
        return work
    return check_instance(work, IrqWork, func, "work")


def _check_func(fn: object, func: str) -> None:
    check_callback(
        fn,
        func,
        "func",
        shape="func(work)",
        nargs=1,
        kind="atomic",
        what="an irq_work callback",
    )


def _check_flags(flags: object, func: str) -> int:
    value = check_int(flags, func, "flags", lo=0, expected="IRQ_WORK_LAZY | IRQ_WORK_HARD_IRQ")
    if value & ~_INIT_FLAGS:
        raise bad_value(func, "flags", "IRQ_WORK_LAZY | IRQ_WORK_HARD_IRQ", value)
    return value


def _uninitialised(work: IrqWork, func: str) -> ValueError:
    return bad_value(func, "work", "an IrqWork set up by init_irq_work() or IrqWork(func)", work)


# -- initialisation -----------------------------------------------------------------------------


def init_irq_work(work: IrqWork, func: Callable[[IrqWork], object]) -> None:
    """
    Initialise *work*: ``func(work)`` will run in hardirq context; no flags, free.

    Like the kernel's, it does not check whether *work* is queued: re-initialising a queued
    item is a bug of the caller.

    Raises:
        TypeError: *work* is not an :class:`IrqWork`; *func* is not callable, is ``async def``,
            or cannot be called as ``func(work)``.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _work(work, "init_irq_work")
    _check_func(func, "init_irq_work")
    work.flags = 0
    work.func = func


def _init(func: Callable[[IrqWork], object], flags: int, name: str) -> IrqWork:
    _check_func(func, name)
    work = IrqWork()
    work.func = func
    work.flags = flags
    return work


def DEFINE_IRQ_WORK(func: Callable[[IrqWork], object]) -> IrqWork:
    """
    Return a free item whose callback is ``func(work)`` (the kernel's ``DEFINE_IRQ_WORK(name,
    func)`` defines a variable; here the item is returned).

    Raises:
        TypeError: *func* is not a function callable as ``func(work)`` in hardirq context.

    .. versionadded:: 0.2
    """
    return _init(func, 0, "DEFINE_IRQ_WORK")


def IRQ_WORK_INIT(func: Callable[[IrqWork], object]) -> IrqWork:
    """
    Return a free item whose callback is ``func(work)``, as :func:`DEFINE_IRQ_WORK`.

    Raises:
        TypeError: as :func:`DEFINE_IRQ_WORK`.

    .. versionadded:: 0.2
    """
    return _init(func, 0, "IRQ_WORK_INIT")


def IRQ_WORK_INIT_LAZY(func: Callable[[IrqWork], object]) -> IrqWork:
    """
    Return a lazy item: queued locally it raises no interrupt and runs at the CPU's next tick.

    Raises:
        TypeError: as :func:`DEFINE_IRQ_WORK`.

    .. versionadded:: 0.2
    """
    return _init(func, _LAZY, "IRQ_WORK_INIT_LAZY")


def IRQ_WORK_INIT_HARD(func: Callable[[IrqWork], object]) -> IrqWork:
    """
    Return an item flagged ``IRQ_WORK_HARD_IRQ``: it runs in hardirq context even on
    PREEMPT_RT. On this non-RT model every item does, with ``threadirqs`` too, so the flag
    changes nothing but :attr:`IrqWork.flags`.

    Raises:
        TypeError: as :func:`DEFINE_IRQ_WORK`.

    .. versionadded:: 0.2
    """
    return _init(func, IRQ_WORK_HARD_IRQ, "IRQ_WORK_INIT_HARD")


# -- queueing -----------------------------------------------------------------------------------


def irq_work_queue(work: IrqWork) -> bool:
    """
    Queue *work* on this CPU, unless it is already pending (on any CPU).

    A non-lazy item raises the IRQ_WORK self-interrupt if it is the first on the list: from
    task context with interrupts on it has run when this returns; with interrupts off (an
    irqsave section, a hardirq handler, an NMI) it runs as soon as they are on again. A lazy
    item runs at this CPU's next tick.

    Returns:
        ``True`` if queued; ``False`` if it was pending already (it still runs once).

    Raises:
        TypeError: *work* is not an :class:`IrqWork`.
        ValueError: *work* was never initialised.

    Context:
        Any context, NMI included; never sleeps.

    .. versionadded:: 0.2
    """
    if type(work) is not IrqWork:
        _work(work, "irq_work_queue")
    flags = work.flags
    if flags & _PENDING:
        return False
    if work.func is None:
        raise _uninitialised(work, "irq_work_queue")
    task = _cur()
    work.flags = flags | _CLAIMED
    queue_local(task, work, flags)
    return True


def queue_local(task: TaskStruct, work: IrqWork, flags: int) -> None:
    """``__irq_work_queue_local``: put claimed *work* on *task*'s CPU's raised or lazy list."""
    cpu = task.kernel.cpus[task.cpu]
    if flags & _LAZY:
        lazy = cpu.irq_work_lazy
        lazy.append(work)
        if len(lazy) == 1:
            _arm_tick(cpu)
        return
    raised = cpu.irq_work_raised
    raised.append(work)
    if len(raised) == 1:
        # the list was empty: raise the self-interrupt (arch_irq_work_raise)
        deliver_irq(task.kernel, task, IRQ_WORK_VECTOR, task.cpu)


def _arm_tick(cpu: CPU) -> None:
    """Program *cpu*'s clock event for its next jiffy: its lazy list is no longer empty."""
    kernel = cpu.kernel
    program_event(cpu, kernel.jiffies_to_time(kernel.get_jiffies() + 1))


def irq_work_queue_on(work: IrqWork, cpu: int) -> bool:
    """
    Queue *work* on CPU *cpu*, unless it is already pending (on any CPU).

    For this CPU it is :func:`irq_work_queue`. For another CPU the item goes on that CPU's
    call-function queue and the CALL_FUNCTION IPI is sent (``CAL`` in /proc/interrupts): it
    runs there in hardirq context, after the synchronous cross-CPU calls queued before it;
    lazy or not. From an NMI a remote queue is a WARN (the IPI backend is not NMI-safe), and
    the item is queued all the same.

    Returns:
        ``True`` if queued; ``False`` if it was pending already.

    Raises:
        TypeError: *work* is not an :class:`IrqWork`; *cpu* is not an int.
        ValueError: *work* was never initialised; *cpu* is not one of the kernel's CPUs.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(work) is not IrqWork:
        _work(work, "irq_work_queue_on")
    task = _cur()
    kernel = task.kernel
    if type(cpu) is not int or not 0 <= cpu < kernel.nr_cpus:
        cpu = check_cpu(cpu, kernel.nr_cpus, "irq_work_queue_on")
    flags = work.flags
    if flags & _PENDING:
        return False
    if work.func is None:
        raise _uninitialised(work, "irq_work_queue_on")
    work.flags = flags | _CLAIMED
    if cpu == task.cpu:
        queue_local(task, work, flags)
        return True
    if task.preempt_count & NMI_MASK:
        warn_once(("irq_work_queue_on", "in_nmi"))  # WARN_ON_ONCE(in_nmi())
    from ._smp import queue_remote

    queue_remote(task, cpu, work)
    return True


# -- running ------------------------------------------------------------------------------------


def irq_work_single(work: IrqWork, task: TaskStruct) -> None:
    """
    ``irq_work_single``: run claimed *work* in the hardirq context *task* is in: clear
    ``PENDING``, call it, clear ``BUSY`` unless it was claimed again meanwhile.
    """
    flags = work.flags & ~_PENDING
    work.flags = flags
    func = work.func
    prev = work._running
    work._running = task
    try:
        result = func(work)  # type: ignore[misc]  # a queued item always has one
    except Exception as exc:
        work._running = prev
        panic_in_interrupt(task, exc, f"irq_work {symbol_name(func)}")
        raise
    work._running = prev
    if work.flags == flags:
        work.flags = flags & ~_BUSY
    if result is not None:
        run_atomic_result(task, result, func)
    kernel = task.kernel
    if kernel._var_waiters:
        wake_up_var(kernel, work)


def _run_list(task: TaskStruct, items: list[IrqWork]) -> None:
    """``irq_work_run_list``: run *items*, taken off a list whole, newest first."""
    kernel = task.kernel
    for work in reversed(items):
        # irq_work_single, inlined: this is the path every item takes
        flags = work.flags & ~_PENDING
        work.flags = flags
        func = work.func
        prev = work._running
        work._running = task
        try:
            result = func(work)  # type: ignore[misc]  # a queued item always has one
        except Exception as exc:
            work._running = prev
            panic_in_interrupt(task, exc, f"irq_work {symbol_name(func)}")
            raise
        work._running = prev
        if work.flags == flags:
            work.flags = flags & ~_BUSY
        if result is not None:
            run_atomic_result(task, result, func)
        if kernel._var_waiters:
            wake_up_var(kernel, work)


def irq_work_interrupt(cpu: CPU, task: TaskStruct) -> None:
    """
    The IRQ_WORK self-interrupt's handler (``irq_work_run``), in hardirq context on *cpu*,
    borrowing *task*: run the raised list, then the lazy one.
    """
    raised = cpu.irq_work_raised
    if raised:
        cpu.irq_work_raised = []
        _run_list(task, raised)
    lazy = cpu.irq_work_lazy
    if lazy:
        cpu.irq_work_lazy = []
        _run_list(task, lazy)


def irq_work_tick(cpu: CPU, task: TaskStruct) -> None:
    """
    From the tick, in hardirq context: run the lazy list. (The raised list is the self-
    interrupt's: x86 has one, so the tick leaves it alone.)
    """
    lazy = cpu.irq_work_lazy
    if lazy:
        cpu.irq_work_lazy = []
        _run_list(task, lazy)


# -- predicates and sync --------------------------------------------------------------------------


def irq_work_is_pending(work: IrqWork) -> bool:
    """
    Whether *work* is queued and its callback has not started (``IRQ_WORK_PENDING``).

    Raises:
        TypeError: *work* is not an :class:`IrqWork`.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    return bool(_work(work, "irq_work_is_pending").flags & _PENDING)


def irq_work_is_busy(work: IrqWork) -> bool:
    """
    Whether *work* is queued or its callback is running (``IRQ_WORK_BUSY``).

    Raises:
        TypeError: *work* is not an :class:`IrqWork`.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    return bool(_work(work, "irq_work_is_busy").flags & _BUSY)


def _sync_check(work: IrqWork) -> None:
    """``irq_work_sync``'s checks at the call: the argument, then what the kernel asserts."""
    _work(work, "irq_work_sync")
    task = _current.get()
    if task is None:
        return  # the sleeping wrapper says there is no kernel here
    irqs_off = task.irqs_off or task.preempt_count & HARDIRQ_MASK
    if irqs_off:
        warn_once(("irq_work_sync", "irqs disabled"))  # lockdep_assert_irqs_enabled()
    if work._running is task and work.flags & _BUSY:
        # called from the item's own callback: BUSY clears only when the callback returns
        might_sleep_report(task)
        report_lines(task, [f"Watchdog detected hard LOCKUP on cpu {task.cpu}"], level=0)
        raise KernelBug(
            f"irq_work_sync() called from the callback of the irq_work it waits for "
            f"({symbol_name(work.func)}, {task.comm}/{task.pid}): it would wait for itself "
            "forever; see dmesg"
        )


@sleeping_checked(_sync_check)
async def irq_work_sync(work: IrqWork) -> None:
    """
    Wait until *work*'s callback is not running and it is not queued (``BUSY`` clear).

    A lazy item waits for its CPU's tick; any other item, queued in task context, has run
    already. From *work*'s own callback this would never return: it reports the lockup and
    raises :class:`~kdefer_async.KernelBug` instead.

    Raises:
        TypeError: *work* is not an :class:`IrqWork` (at the call, before any coroutine exists).
        KernelBug: called in atomic context (after the might-sleep report), or from *work*'s
            own callback.

    Context:
        Process context with interrupts enabled; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    await wait_var_event(work, lambda: not work.flags & _BUSY)
