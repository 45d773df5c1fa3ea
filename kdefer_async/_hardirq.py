"""Hard interrupts: ``request_threaded_irq``/``request_irq``/``free_irq``, the line's flow
handler (disabled and ONESHOT-masked lines, thread wake-ups, spurious-interrupt accounting), the
simulated interrupt entry and exit, and interrupts raised from other OS threads.

Field rules: ``I``: set at creation (or at boot), read-only after; ``A``: changed only on the
loop's thread, in synchronous code; ``L``: guarded by :attr:`ThreadsafeIrqs.lock`, read and
changed from any thread.

Kernel invariants modelled (kernel/irq/manage.c ``request_threaded_irq``/``__setup_irq``/
``__free_irq``, kernel/irq/handle.c, kernel/irq/chip.c, kernel/irq/spurious.c,
kernel/softirq.c ``irq_enter``/``irq_exit``, arch/x86/kernel/apic/vector.c):

* A primary handler runs in hardirq context (``HARDIRQ_OFFSET`` added to the borrowed task's
  preempt_count) with local interrupts off; every action of the line runs, in registration
  order, and their results are OR-ed. ``IRQ_WAKE_THREAD`` wakes that action's irq thread
  (``_threadirq.py``); without a thread function it is reported once per action. A handler
  that returns with interrupts enabled is a WARN (once), and interrupts are disabled again.
* A line whose depth is not 0 (``disable_irq``) or that is masked (``IRQF_ONESHOT`` while a
  woken thread has not finished) runs no handler and is not counted: the interrupt is held,
  at most one per disabled or masked period, and delivered once when the line is enabled or
  unmasked again (the resend of an edge, the re-fire of a still-asserted level).
* ``note_interrupt()``: a result above 3 is a bogus return value (reported 100 times at
  most); an interrupt that only woke threads is judged at the next one (handled if a thread
  function returned ``IRQ_HANDLED`` in between); 99,900 unhandled of 100,000 is "nobody
  cared", and the line is disabled.
* On ``irq_exit()``, if the CPU is not otherwise in interrupt or BH-disabled context and
  softirqs are pending, they run right there, before the interrupted code resumes (with forced
  IRQ threading they are handed to ksoftirqd instead).
* An interrupt raised on a CPU whose local interrupts are disabled (an irqsave section, or a
  hardirq handler running there: handlers run with interrupts off) is held pending until they
  are enabled again; one raised while a handler runs is delivered after that interrupt's exit.
* A device interrupt goes to one CPU, the line's *effective affinity*. With the default
  affinity (every CPU) the x86 vector allocator binds a line when its first handler is
  requested, to the CPU with the most free vectors: here, the CPU with the fewest lines bound
  to it, the lowest-numbered on a tie. The binding lasts until the last handler is freed.

Interrupts from other OS threads (``Kernel.raise_irq_threadsafe``): the kernel's state belongs
to the event loop's thread, so a device thread never touches it. It appends ``(irq, cpu)`` to
the kernel's :class:`ThreadsafeIrqs` queue and, if no wake-up is pending, wakes the loop once
(``loop.call_soon_threadsafe`` on asyncio and uvloop, ``TrioToken.run_sync_soon`` on trio):
the callback sets the event that the kernel's ``irq/threadsafe`` task sleeps on. That task
takes the whole batch and delivers each interrupt, in the order raised, through the same path
as ``Kernel.raise_irq``: the handlers in hardirq context on the target CPU's idle task,
softirqs on irq exit. (A task, not the callback itself: handlers may queue work, and starting
a kworker needs a running task.) Invariants: every interrupt accepted is delivered
exactly once or, if the kernel stops first, named in dmesg as dropped; one raised once the
kernel has halted (or panicked, or before it boots) is a :class:`NoKernelError` in the raising
thread; the queue's lock is held only to append or take a batch, never while handlers run.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ._check import check_callback, check_cpu, check_int, check_str
from ._consts import (
    EBUSY,
    EINVAL,
    ENOTCONN,
    HARDIRQ_MASK,
    HARDIRQ_OFFSET,
    IRQ_HANDLED,
    IRQ_MASK,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_COND_ONESHOT,
    IRQF_COND_SUSPEND,
    IRQF_NO_AUTOEN,
    IRQF_NO_DEBUG,
    IRQF_NO_SUSPEND,
    IRQF_NO_THREAD,
    IRQF_ONESHOT,
    IRQF_PERCPU,
    IRQF_PROBE_SHARED,
    IRQF_SHARED,
    IRQF_TRIGGER_MASK,
    LOCAL_TIMER_VECTOR,
    NR_IRQS,
    TIMER_SOFTIRQ,
)
from ._context import TaskStruct, _cur, _current, check_loop_thread, register_kernel
from ._exceptions import KernelPanic, NoKernelError
from ._printk import dump_stack, log_text, symbol_name, warn, warn_once
from ._sleeping import atomic_sleep_bug
from ._softirq import (
    VIA_IRQ_EXIT,
    handle_softirqs,
    panic_in_interrupt,
    run_atomic_result,
    wakeup_softirqd,
)
from ._tick import arch_vector
from ._timer import _NO_EXPIRY
from ._trace import IRQ_HANDLER_ENTRY, IRQ_HANDLER_EXIT, SOFTIRQ_RAISE, emit

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel

#: The pending-mask bit of TIMER_SOFTIRQ.
TIMER_SOFTIRQ_BIT = 1 << TIMER_SOFTIRQ

__all__ = [
    "IRQ_NOTCONNECTED",
    "IrqAction",
    "IrqDesc",
    "ThreadsafeIrqs",
    "check_cpu_arg",
    "check_irq",
    "deliver_threadsafe_irqs",
    "do_irq",
    "drop_threadsafe_irqs",
    "effective_cpu",
    "free_irq",
    "irq_default_primary_handler",
    "irq_to_desc",
    "irq_wake",
    "proc_interrupts",
    "raise_irq_threadsafe",
    "request_irq",
    "request_threaded_irq",
    "threadsafe_boot",
    "unmask_line",
]

#: ``IRQ_NOTCONNECTED``: the line number of an interrupt a platform left unconnected;
#: requesting it returns ``-ENOTCONN``.
IRQ_NOTCONNECTED = 1 << 31
#: ``BITS_PER_LONG``: how many ONESHOT actions one line can have (one bit of
#: ``threads_oneshot`` each).
_ONESHOT_BITS = 64
#: Bit 31 of ``threads_handled_last``: the spurious check of a woken thread is deferred.
SPURIOUS_DEFERRED = 0x80000000
#: How many bogus return values are reported, over the kernel's lifetime.
BAD_IRQ_REPORTS = 100


@dataclass(slots=True, eq=False)
class IrqAction:
    """``struct irqaction``: one handler registered on a line (and its irq thread, if any).

    ``runthread`` is ``IRQTF_RUNTHREAD``: set by a wake, cleared by the thread as it picks the
    run up, before ``thread_fn`` starts; ``thread_mask`` is the action's bit in the line's
    ``threads_oneshot``.
    """

    handler: Callable[[int, Any], object]
    flags: int
    name: str
    dev: Any
    thread_fn: Callable[[int, Any], Any] | None = None  # I
    irq: int = 0  # I
    thread: TaskStruct | None = None  # I: the irq thread, once created
    secondary: IrqAction | None = None  # I: forced threading's second thread
    desc: IrqDesc | None = None  # I
    thread_mask: int = 0  # I
    forced: bool = False  # I: IRQTF_FORCED_THREAD: thread_fn is a forced primary
    runthread: bool = False  # A: IRQTF_RUNTHREAD
    running: bool = False  # A: thread_fn is running
    parked: bool = False  # A: the thread sleeps in irq_wait_for_interrupt()
    exiting: bool = False  # A: the thread died (PF_EXITING): wakes are ignored
    warned: bool = False  # A: IRQTF_WARNED: "no thread function" was reported
    wake_cpu: int = 0  # A: the CPU that took the interrupt that woke the thread


class IrqDesc:
    """``struct irq_desc``: the state of one interrupt line that handlers were requested on
    (or that was disabled). Internal: ``Kernel.irq_descs[irq]``."""

    __slots__ = (
        "depth",
        "held_cpu",
        "irq",
        "masked",
        "no_debug",
        "oneshot",
        "spurious_disabled",
        "threads",
        "threads_active",
        "threads_handled",
        "threads_handled_last",
        "threads_oneshot",
        "trigger",
        "trigger_set",
    )

    def __init__(self, irq: int) -> None:
        self.irq = irq  # I
        self.depth = 1  # A: nested disables; a line without handlers is shut down (1)
        self.masked = False  # A: masked at the chip (ONESHOT period, or held while disabled)
        #: A: the CPU of the interrupt held while the line was disabled or masked (one at most)
        self.held_cpu: int | None = None
        self.oneshot = False  # A: IRQS_ONESHOT: the flow handler masks the line
        self.no_debug = False  # A: IRQF_NO_DEBUG: no spurious-interrupt accounting
        self.spurious_disabled = False  # A: IRQS_SPURIOUS_DISABLED ("nobody cared")
        self.threads_oneshot = 0  # A: the thread_mask bits of woken ONESHOT threads
        self.threads_active = 0  # A: thread runs woken and not finished
        self.threads_handled = 0  # A: thread_fn runs that returned IRQ_HANDLED
        self.threads_handled_last = 0  # A: note_interrupt's deferred check
        self.trigger = 0  # A: the trigger type (IRQF_TRIGGER_* bits)
        self.trigger_set = False  # A: a request has set the trigger type
        #: A: the actions of this line whose irq thread is alive (freed ones too, until the
        #: thread has exited)
        self.threads: list[IrqAction] = []

    def __repr__(self) -> str:
        return (
            f"<IrqDesc {self.irq} depth={self.depth}{' masked' if self.masked else ''} "
            f"threads_active={self.threads_active}>"
        )


def irq_to_desc(kernel: Kernel, irq: int) -> IrqDesc:
    """The descriptor of line *irq* (made, shut down, on first use)."""
    desc = kernel.irq_descs.get(irq)
    if desc is None:
        desc = kernel.irq_descs[irq] = IrqDesc(irq)
    return desc


def irq_default_primary_handler(irq: int, dev: Any) -> int:
    """The primary handler of a request without one: wake the thread."""
    return IRQ_WAKE_THREAD


def irq_forced_secondary_handler(irq: int, dev: Any) -> int:
    """The primary of a forced-threading secondary action: never called (it is on no line)."""
    warn("Secondary action handler called for irq %d\n", irq)  # pragma: no cover
    return IRQ_NONE  # pragma: no cover


# -- argument checks ----------------------------------------------------------------------------


def check_irq(irq: object, func: str) -> int:
    """*irq* if it is a line number (an int from 0 to ``NR_IRQS - 1``)."""
    return check_int(irq, func, "irq", lo=0, hi=NR_IRQS - 1)


def check_cpu_arg(kernel: Kernel, cpu: object, func: str) -> int:
    """*cpu* if it is the number of one of *kernel*'s CPUs (``None`` is the caller's to handle)."""
    return check_cpu(cpu, kernel.nr_cpus, func, or_none=True)


# -- request / free -----------------------------------------------------------------------------


def request_threaded_irq(
    irq: int,
    handler: Callable[[int, Any], object] | None,
    thread_fn: Callable[[int, Any], Any] | None,
    flags: int,
    name: str,
    dev: Any,
) -> int:
    """
    Register a threaded interrupt on line *irq*: *handler* runs in hardirq context, and when
    it returns ``IRQ_WAKE_THREAD``, ``thread_fn(irq, dev)`` runs in the kernel thread
    ``irq/<irq>-<name>`` (``SCHED_FIFO`` priority 50), in process context, where it may sleep.

    *handler* ``None`` installs the default primary handler, which only wakes the thread; the
    line must then be ``IRQF_ONESHOT`` (masked until the thread has run, or a level interrupt
    would fire again at once). *thread_fn* may be ``async def`` or plain, like a work function;
    ``None`` makes this ``request_irq``. The thread runs on the CPU that took the interrupt,
    after the primary handler and after that interrupt's ``irq_exit`` softirqs. Wakes coalesce:
    while a run is pending, further wakes add nothing; one that comes while ``thread_fn`` runs
    makes exactly one more run afterwards.

    With ``Kernel(threadirqs=True)`` every request not flagged ``IRQF_NO_THREAD``,
    ``IRQF_PERCPU`` or ``IRQF_ONESHOT`` (and with a primary handler of its own) is
    force-threaded: it becomes ONESHOT, *handler* runs in ``irq/<irq>-<name>`` with bottom
    halves and interrupts disabled, and *thread_fn* moves to ``irq/<irq>-s-<name>``.

    Returns:
        0 on success. ``-ENOTCONN`` for ``IRQ_NOTCONNECTED``. ``-EINVAL`` for ``IRQF_SHARED``
        without a *dev* cookie or with ``IRQF_NO_AUTOEN``, for ``IRQF_COND_SUSPEND`` without
        ``IRQF_SHARED`` or with ``IRQF_NO_SUSPEND``, for no *handler* and no *thread_fn*, and
        for no *handler* without ``IRQF_ONESHOT`` (logged: ``genirq: Threaded irq requested
        with handler=NULL and !ONESHOT for <name> (irq <irq>)``). ``-EBUSY`` if the line is
        taken and the two requests do not agree on ``IRQF_SHARED``, the trigger type,
        ``IRQF_ONESHOT`` or ``IRQF_PERCPU`` (logged: ``genirq: Flags mismatch irq ...``,
        unless ``IRQF_PROBE_SHARED``), or if 64 ONESHOT actions share it already. On failure
        nothing stays registered.

    Raises:
        TypeError: *irq* or *flags* is not an int; *handler* is not ``None`` nor a plain
            function callable as ``handler(irq, dev)`` (``async def`` is refused: it runs in
            atomic context); *thread_fn* is not ``None`` nor callable as
            ``thread_fn(irq, dev)``; *name* is not a str.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``, or
            ``IRQ_NOTCONNECTED``); *flags* is negative.
        KernelBug: called in atomic context (it allocates and takes a mutex in the kernel),
            after the ``BUG: sleeping function called from invalid context`` report, unless
            the kernel only reports (``sleep_in_atomic="report"``).
        RuntimeError: called from a thread other than the kernel's event loop's.

    Context:
        Process context; never sleeps here (the thread starts on its own).

    .. versionadded:: 0.2
    """
    return _request("request_threaded_irq", irq, handler, thread_fn, flags, name, dev)


def request_irq(
    irq: int, handler: Callable[[int, Any], object], flags: int, name: str, dev: Any
) -> int:
    """
    Register *handler* for interrupt line *irq*; ``handler(irq, dev)`` runs in hardirq context
    (``request_threaded_irq`` without a thread function).

    The first handler of a line binds it to one CPU, its effective affinity (see
    :meth:`Kernel.irq_effective_cpu`): where its device interrupts go.

    Returns:
        0 on success; ``-EBUSY`` if the line is taken and either registration lacks
        ``IRQF_SHARED``; ``-EINVAL`` for a shared request without a *dev* cookie; the other
        errors of :func:`request_threaded_irq`.

    Raises:
        TypeError: *irq* or *flags* is not an int; *handler* is not callable as
            ``handler(irq, dev)`` or is ``async def``; *name* is not a str.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``); *flags* is negative.
        KernelBug: called in atomic context (see :func:`request_threaded_irq`).
        RuntimeError: called from a thread other than the kernel's event loop's.

    Context:
        Process context in the kernel; never sleeps here.

    .. versionadded:: 0.1
    """
    return _request("request_irq", irq, handler, None, flags, name, dev)


def _request(
    func: str,
    irq: object,
    handler: Callable[[int, Any], object] | None,
    thread_fn: Callable[[int, Any], Any] | None,
    flags: object,
    name: object,
    dev: Any,
) -> int:
    """``request_threaded_irq()``: the arguments, the early checks, then ``__setup_irq()``."""
    if irq != IRQ_NOTCONNECTED or type(irq) is not int:
        check_irq(irq, func)
    if handler is not None or (thread_fn is None and func == "request_irq"):
        # (request_irq() takes no NULL handler: it has no thread function to fall back on)
        check_callback(
            handler,
            func,
            "handler",
            shape="handler(irq, dev)",
            nargs=2,
            kind="atomic",
            what="an interrupt handler",
        )
    if thread_fn is not None:
        check_callback(
            thread_fn,
            func,
            "thread_fn",
            shape="thread_fn(irq, dev)",
            nargs=2,
            kind="any",
            what="an irq thread function",
        )
    check_int(flags, func, "flags", lo=0, expected="IRQF_* flags (an int >= 0)")
    check_str(name, func, "name")
    task = _cur()
    kernel = task.kernel
    check_loop_thread(kernel, func)
    assert isinstance(irq, int)
    assert isinstance(flags, int)
    assert isinstance(name, str)
    if irq == IRQ_NOTCONNECTED:
        return -ENOTCONN
    shared = flags & IRQF_SHARED
    if (
        (shared and dev is None)
        or (shared and flags & IRQF_NO_AUTOEN)
        or (not shared and flags & IRQF_COND_SUSPEND)
        or (flags & IRQF_NO_SUSPEND and flags & IRQF_COND_SUSPEND)
    ):
        return -EINVAL
    if handler is None:
        if thread_fn is None:
            return -EINVAL
        handler = irq_default_primary_handler
    if task.preempt_count or task.irqs_off or task.pid == 0:
        atomic_sleep_bug(task, func)  # kzalloc(GFP_KERNEL), the line's request mutex
    return _setup_irq(kernel, irq, IrqAction(handler, flags, name, dev, thread_fn, irq))


def _setup_irq(kernel: Kernel, irq: int, new: IrqAction) -> int:
    """``__setup_irq()``: forced threading, the sharing rules, the line's start-up, threads."""
    desc = irq_to_desc(kernel, irq)
    new.desc = desc
    if not new.flags & IRQF_TRIGGER_MASK:
        new.flags |= desc.trigger  # the line's trigger type, as configured before
    if kernel.threadirqs:
        _setup_forced_threading(new)
    actions = kernel.irq_actions.get(irq)
    thread_mask = 0
    if actions:
        old = actions[0]
        if desc.trigger_set:
            oldtype = desc.trigger
        else:
            oldtype = desc.trigger = new.flags & IRQF_TRIGGER_MASK
            desc.trigger_set = True
        mismatch = not (old.flags & new.flags & IRQF_SHARED) or oldtype != (
            new.flags & IRQF_TRIGGER_MASK
        )
        if not mismatch:
            if old.flags & IRQF_ONESHOT and new.flags & IRQF_COND_ONESHOT:
                new.flags |= IRQF_ONESHOT
            elif (old.flags ^ new.flags) & IRQF_ONESHOT:
                mismatch = True
            if (old.flags ^ new.flags) & IRQF_PERCPU:
                mismatch = True
        if mismatch:
            if not new.flags & IRQF_PROBE_SHARED:
                log_text(
                    kernel,
                    3,
                    f"genirq: Flags mismatch irq {irq}. {new.flags:08x} ({new.name}) vs. "
                    f"{old.flags:08x} ({old.name})",
                )
            return -EBUSY
        for a in actions:
            thread_mask |= a.thread_mask
    if new.flags & IRQF_ONESHOT:
        # a bit still held by the thread of an action freed meanwhile (free_irq() does not
        # wait for it here) is not free yet: its run unmasks the line only once it ends, and
        # a new action sharing the bit would be unmasked by it while its own thread runs
        thread_mask |= desc.threads_oneshot
        if thread_mask == (1 << _ONESHOT_BITS) - 1:
            return -EBUSY
        new.thread_mask = ~thread_mask & (thread_mask + 1)  # the lowest free bit
    elif new.handler is irq_default_primary_handler:
        log_text(
            kernel,
            3,
            f"genirq: Threaded irq requested with handler=NULL and !ONESHOT for {new.name} "
            f"(irq {irq})",
        )
        return -EINVAL
    if not actions:
        if new.flags & IRQF_TRIGGER_MASK:
            desc.trigger = new.flags & IRQF_TRIGGER_MASK
            desc.trigger_set = True
        desc.spurious_disabled = False
        desc.oneshot = bool(new.flags & IRQF_ONESHOT)
        desc.no_debug = bool(new.flags & IRQF_NO_DEBUG)
        desc.held_cpu = None
        desc.masked = False
        desc.depth = 1 if new.flags & IRQF_NO_AUTOEN else 0  # irq_startup(), or not yet
        kernel.irqs_disabled_lines.discard(irq)
        _bind_line(kernel, irq)
        actions = kernel.irq_actions[irq] = []
    if new.thread_fn is not None:
        from ._threadirq import create_irq_thread

        create_irq_thread(kernel, new, secondary=False)
        if new.secondary is not None:
            create_irq_thread(kernel, new.secondary, secondary=True)
    shared = bool(actions)
    actions.append(new)
    kernel.irq_names[irq] = ", ".join(a.name for a in actions)
    # a new handler gets a fresh chance: the broken-irq detection starts again
    kernel.irq_count.pop(irq, None)
    kernel.irqs_unhandled.pop(irq, None)
    if shared and desc.spurious_disabled:
        desc.spurious_disabled = False
        enable_line(kernel, desc)
    return 0


def _setup_forced_threading(new: IrqAction) -> None:
    """``irq_setup_forced_threading()``: under ``threadirqs``, the primary handler becomes the
    thread function of a ONESHOT action; a thread function given too moves to a secondary."""
    if new.flags & (IRQF_NO_THREAD | IRQF_PERCPU | IRQF_ONESHOT):
        return
    if new.handler is irq_default_primary_handler:
        return
    new.flags |= IRQF_ONESHOT
    if new.thread_fn is not None:
        new.secondary = IrqAction(
            irq_forced_secondary_handler, 0, new.name, new.dev, new.thread_fn, new.irq
        )
        new.secondary.desc = new.desc
    new.forced = True
    new.thread_fn = new.handler
    new.handler = irq_default_primary_handler


def _bind_line(kernel: Kernel, irq: int) -> None:
    """Give *irq* its effective affinity: the CPU with the fewest lines bound, lowest first."""
    load = [0] * kernel.nr_cpus
    for cpu in kernel.irq_affinity.values():
        load[cpu] += 1
    kernel.irq_affinity[irq] = load.index(min(load))


def effective_cpu(kernel: Kernel, irq: int) -> int:
    """The CPU a device interrupt on *irq* goes to (CPU 0 for a line with no handler)."""
    return kernel.irq_affinity.get(irq, 0)


def free_irq(irq: int, dev: Any) -> str | None:
    """
    Remove the handler registered on *irq* with cookie *dev*, and stop its irq thread.

    The action is removed at once: later interrupts do not reach it, and nothing wakes its
    thread any more. A thread run already woken still happens (the kernel's irq thread gives a
    pending wake one last run when it is stopped), and a ``thread_fn`` that is running
    finishes; then the thread exits. The kernel's ``free_irq`` also waits for both; here
    ``await synchronize_irq(irq)`` before ``free_irq`` is how a caller waits for them. The
    last handler of a line shuts it down.

    Returns:
        The name it was registered with, or ``None`` (after the kernel's WARN ``Trying to free
        already-free IRQ <irq>``) if no such handler exists.

    Raises:
        TypeError: *irq* is not an int.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).
        KernelBug: called in atomic context (it takes a mutex in the kernel), after the report
            (and, from interrupt context, the WARN ``Trying to free IRQ <irq> from IRQ
            context!``), unless the kernel only reports (``sleep_in_atomic="report"``).
        RuntimeError: called from a thread other than the kernel's event loop's.

    Context:
        Process context.

    .. versionadded:: 0.1
    """
    check_irq(irq, "free_irq")
    task = _cur()
    kernel = task.kernel
    check_loop_thread(kernel, "free_irq")
    if task.preempt_count & IRQ_MASK:
        warn("Trying to free IRQ %d from IRQ context!\n", irq, task=task)
    if task.preempt_count or task.irqs_off or task.pid == 0:
        atomic_sleep_bug(task, "free_irq")  # mutex_lock(&desc->request_mutex)
    actions = kernel.irq_actions.get(irq, [])
    for i, action in enumerate(actions):
        if action.dev is dev:
            del actions[i]
            if not actions:
                del kernel.irq_actions[irq]
                kernel.irq_names.pop(irq, None)
                kernel.irq_affinity.pop(irq, None)  # the vector is released
                desc = kernel.irq_descs.get(irq)
                if desc is not None:  # irq_shutdown(): nothing is held for the next request
                    desc.depth = 1
                    desc.masked = False
                    desc.held_cpu = None
            else:
                kernel.irq_names[irq] = ", ".join(a.name for a in actions)
            if action.thread is not None:
                from ._threadirq import stop_irq_thread

                stop_irq_thread(action)
                if action.secondary is not None and action.secondary.thread is not None:
                    stop_irq_thread(action.secondary)
            return action.name
    warn("Trying to free already-free IRQ %d\n", irq, task=task)
    return None


# -- interrupt entry and exit ---------------------------------------------------------------


def do_irq(kernel: Kernel, irq: int, cpu_nr: int | None) -> None:
    """``Kernel.raise_irq``: check, then deliver *irq* on *cpu_nr* (irq_enter, handlers, irq_exit)."""
    if type(irq) is not int or not 0 <= irq < NR_IRQS:
        check_irq(irq, "Kernel.raise_irq")  # raises, unless an int subclass in range
    cur = _current.get()
    if cur is not None and cur.kernel is not kernel:
        cur = None
    if cpu_nr is None:
        cpu_nr = cur.cpu if cur is not None else effective_cpu(kernel, irq)
    elif type(cpu_nr) is not int or not 0 <= cpu_nr < kernel.nr_cpus:
        cpu_nr = check_cpu_arg(kernel, cpu_nr, "Kernel.raise_irq")
    if kernel._halted or kernel._panic is not None or not kernel._booted:
        kernel._check_alive()
    if kernel._loop_thread != threading.get_ident():
        check_loop_thread(kernel, "Kernel.raise_irq", "Kernel.raise_irq_threadsafe(irq, cpu)")
    deliver_irq(kernel, cur, irq, cpu_nr)


def deliver_irq(kernel: Kernel, cur: TaskStruct | None, irq: int, cpu_nr: int) -> None:
    """
    Deliver *irq* on CPU *cpu_nr*, interrupting *cur* if it runs there, else what that CPU
    runs (its idle task unless atomic code of that CPU is further down this call stack).
    """
    cpu = kernel.cpus[cpu_nr]
    if cur is not None and cur.cpu == cpu_nr:
        task = cur
        token = None
    else:
        task = cpu.curr or cpu.swapper
        token = _current.set(task)
    try:
        if task.irqs_off or task.preempt_count & HARDIRQ_MASK:
            # local interrupts are off on that CPU: the line stays pending until they are on
            # (a system vector is one bit in the APIC's IRR: pending at most once)
            if irq >= 0 or irq not in cpu.pending_irqs:
                cpu.pending_irqs.append(irq)
            return
        irq_entry(cpu, task, irq)
        # interrupts raised on this CPU while its handlers ran with interrupts off
        while cpu.pending_irqs and not task.irqs_off and not task.preempt_count & HARDIRQ_MASK:
            irq_entry(cpu, task, cpu.pending_irqs.popleft())
    finally:
        if token is not None:
            _current.reset(token)


def irq_entry(cpu: CPU, task: TaskStruct, irq: int) -> None:
    """irq_enter(); the line's handlers (or the system vector's); irq_exit()."""
    kernel = cpu.kernel
    task.preempt_count += HARDIRQ_OFFSET
    saved_curr = cpu.curr
    cpu.curr = task
    try:
        # irq_enter() on an idle CPU: a wheel timer (even a deferrable one) that is due now
        # raises TIMER_SOFTIRQ (the clock is read only when some timer is armed on the CPU;
        # the tick's own handler does this itself)
        nxt = cpu.std_base.next_expiry
        dnxt = cpu.def_base.next_expiry
        if dnxt < nxt:
            nxt = dnxt
        if nxt < _NO_EXPIRY and irq != LOCAL_TIMER_VECTOR and nxt <= kernel.get_jiffies():
            cpu.pending |= TIMER_SOFTIRQ_BIT
            if kernel._trace_on:
                emit(kernel, task, SOFTIRQ_RAISE, TIMER_SOFTIRQ)
        if irq < 0:
            arch_vector(cpu, task, irq)  # a system vector: the tick, irq_work, an IPI
        else:
            handle_irq(kernel, cpu, task, irq)
    finally:
        cpu.curr = saved_curr
        task.preempt_count -= HARDIRQ_OFFSET
    irq_exit(cpu, task)


def handle_irq(kernel: Kernel, cpu: CPU, task: TaskStruct, irq: int) -> None:
    """
    The flow handler of line *irq*, in hardirq context: a disabled or masked line holds the
    interrupt; otherwise every action's primary handler, thread wake-ups, accounting, and
    the ONESHOT mask kept while a woken thread has not finished.
    """
    stat = cpu.irq_stat
    actions = kernel.irq_actions.get(irq)
    if not actions:
        stat[irq] = stat.get(irq, 0) + 1
        note_interrupt(kernel, None, irq, IRQ_NONE)  # spurious: nobody requested the line
        return
    desc = kernel.irq_descs[irq]
    if desc.depth or desc.masked:
        # disabled (IRQS_PENDING) or masked: no handler, not counted; held for the
        # enable_irq()/unmask, once however many arrive
        if desc.held_cpu is None:
            desc.held_cpu = cpu.nr
        desc.masked = True
        return
    stat[irq] = stat.get(irq, 0) + 1
    oneshot = desc.oneshot
    if oneshot:
        desc.masked = True
    retval = 0
    saved_irqs_off = task.irqs_off
    task.irqs_off = 1  # a handler that enables interrupts is caught below
    for action in actions if len(actions) == 1 else tuple(actions):
        prev = task.preempt_count
        if kernel._trace_on:
            emit(kernel, task, IRQ_HANDLER_ENTRY, irq, action.name)
        try:
            ret: Any = action.handler(irq, action.dev)
        except KernelPanic:
            raise
        except Exception as exc:
            task.irqs_off = saved_irqs_off
            panic_in_interrupt(task, exc, f"irq {irq} handler {action.name}")
            raise
        if not task.irqs_off:
            warn_once(
                "irq handler enabled interrupts",
                "irq %u handler %s enabled interrupts\n",
                irq,
                symbol_name(action.handler, offset=True),
            )
            task.irqs_off = 1
        if type(ret) is not int:
            if ret is None:
                ret = IRQ_NONE
            elif isinstance(ret, int):
                ret = int(ret)
            else:
                run_atomic_result(task, ret, action.handler)
                ret = IRQ_NONE
        if kernel._trace_on:
            emit(kernel, task, IRQ_HANDLER_EXIT, irq, ret)
        if ret == IRQ_WAKE_THREAD:
            if action.thread is not None:
                if not action.runthread:
                    irq_wake(desc, action, cpu.nr)
            elif action.thread_fn is None:
                _warn_no_thread(kernel, irq, action)
        retval |= ret & 0xFFFFFFFF
        if task.preempt_count != prev:
            log_text(
                kernel,
                3,
                f"irq {irq} handler {action.name} leaked preempt_count "
                f"{prev:08x} -> {task.preempt_count:08x}",
            )
            task.preempt_count = prev
    task.irqs_off = saved_irqs_off
    if not desc.no_debug:
        note_interrupt(kernel, desc, irq, retval)
    if oneshot and not desc.depth and not desc.threads_oneshot and desc.masked:
        unmask_line(kernel, desc)  # cond_unmask_irq(): no thread woken, line enabled


def _warn_no_thread(kernel: Kernel, irq: int, action: IrqAction) -> None:
    """``warn_no_thread()``: once per action."""
    if action.warned:
        return
    action.warned = True
    log_text(
        kernel,
        4,
        f"IRQ {irq} device {action.name} returned IRQ_WAKE_THREAD but no thread function "
        "available.",
    )


def irq_wake(desc: IrqDesc, action: IrqAction, cpu_nr: int) -> None:
    """
    ``__irq_wake_thread()``: ask *action*'s thread for a run on CPU *cpu_nr*. A dead thread
    is ignored; a run already pending absorbs this one (``IRQTF_RUNTHREAD``). Otherwise the
    line's ONESHOT mask gets the action's bit, ``threads_active`` counts the run, and the
    thread is woken if it sleeps waiting for one (a run asked while ``thread_fn`` runs is
    found when it returns).
    """
    thread = action.thread
    if thread is None or action.exiting or action.runthread:
        return
    action.runthread = True
    action.wake_cpu = cpu_nr
    desc.threads_oneshot |= action.thread_mask
    desc.threads_active += 1
    if action.parked:
        action.parked = False
        token = thread._wake_event
        if token is not None:
            thread._wake_event = None
            if thread.kernel._trace_on:
                from ._sched import sched_wakeup

                sched_wakeup(thread)
            thread.kernel._parker.unpark(token)


def unmask_line(kernel: Kernel, desc: IrqDesc) -> None:
    """Unmask *desc*'s line: the interrupt held while it was masked or disabled (if any) is
    delivered now, once, to the CPU it was raised for (the controller's resend)."""
    desc.masked = False
    cpu_nr = desc.held_cpu
    if cpu_nr is None:
        return
    desc.held_cpu = None
    if desc.irq not in kernel.irq_actions:
        return  # shut down meanwhile
    cur = _current.get()
    if cur is not None and cur.kernel is not kernel:
        cur = None
    deliver_irq(kernel, cur, desc.irq, cpu_nr)


def enable_line(kernel: Kernel, desc: IrqDesc) -> None:
    """``__enable_irq()`` with the depth above 0: one disable undone; at 0 the line is enabled
    and unmasked, and a held interrupt resent."""
    if desc.depth > 1:
        desc.depth -= 1
        return
    desc.depth = 0
    kernel.irqs_disabled_lines.discard(desc.irq)
    unmask_line(kernel, desc)


# -- spurious and unhandled interrupts ----------------------------------------------------------


def note_interrupt(kernel: Kernel, desc: IrqDesc | None, irq: int, ret: int) -> None:
    """
    ``note_interrupt()``: the accounting after each interrupt of a line.

    A result above 3 is reported as a bogus return value, and nothing else is counted. An
    interrupt that only woke threads is judged at the next interrupt (handled if a thread
    function returned ``IRQ_HANDLED`` in between). An unhandled one counts (the count
    restarts after HZ/10 quiet jiffies); at every 100,000th interrupt of a line, more than
    99,900 unhandled is "nobody cared", and the line is disabled.
    """
    if ret > IRQ_HANDLED | IRQ_WAKE_THREAD:
        _report_bad_irq(kernel, irq, ret)
        return
    counts = kernel.irq_count
    if ret & IRQ_WAKE_THREAD and desc is not None:
        if ret == IRQ_WAKE_THREAD:
            if not desc.threads_handled_last & SPURIOUS_DEFERRED:
                desc.threads_handled_last |= SPURIOUS_DEFERRED
                return
            handled = (desc.threads_handled & 0x7FFFFFFF) | SPURIOUS_DEFERRED
            if handled != desc.threads_handled_last:
                ret = IRQ_HANDLED
                desc.threads_handled_last = handled
            else:
                ret = IRQ_NONE
        else:
            desc.threads_handled_last &= ~SPURIOUS_DEFERRED
    if ret == IRQ_NONE:
        now = kernel.get_jiffies()
        last = kernel.irqs_last_unhandled.get(irq)
        if last is None or now - last > kernel.hz // 10:
            kernel.irqs_unhandled[irq] = 1
        else:
            kernel.irqs_unhandled[irq] = kernel.irqs_unhandled.get(irq, 0) + 1
        kernel.irqs_last_unhandled[irq] = now
        if desc is None and kernel.irqs_unhandled[irq] == 1 and last is None:
            log_text(kernel, 4, f"irq {irq}: no handler registered (spurious interrupt)")
    count = counts.get(irq, 0) + 1
    if count < 100_000:
        counts[irq] = count
        return
    counts[irq] = 0
    if kernel.irqs_unhandled.get(irq, 0) > 99_900:
        _print_bad_irq(
            kernel, irq, f'irq {irq}: nobody cared (try booting with the "irqpoll" option)'
        )
        log_text(kernel, 0, f"Disabling IRQ #{irq}")
        kernel.irqs_disabled_lines.add(irq)
        if desc is not None:
            desc.spurious_disabled = True
            desc.depth += 1
    kernel.irqs_unhandled[irq] = 0


def _report_bad_irq(kernel: Kernel, irq: int, ret: int) -> None:
    """``report_bad_irq()``: a bogus return value, reported 100 times at most."""
    if kernel.bad_irq_reports <= 0:
        return
    kernel.bad_irq_reports -= 1
    _print_bad_irq(kernel, irq, f"irq event {irq}: bogus return value {ret:x}")


def _print_bad_irq(kernel: Kernel, irq: int, first: str) -> None:
    """``__report_bad_irq()``: the message, a stack dump, then the line's handlers."""
    log_text(kernel, 3, first)
    dump_stack()
    log_text(kernel, 3, "handlers:")
    for action in kernel.irq_actions.get(irq, []):
        line = f"[<00000000>] {symbol_name(action.handler)}"
        if action.thread_fn is not None:
            line += f" threaded [<00000000>] {symbol_name(action.thread_fn)}"
        log_text(kernel, 3, line)


def irq_exit(cpu: CPU, task: TaskStruct) -> None:
    """Run pending softirqs if this is the outermost interrupt (or hand them to ksoftirqd)."""
    if not task.preempt_count & IRQ_MASK and cpu.pending:
        if cpu.kernel.threadirqs:
            wakeup_softirqd(cpu)
        else:
            handle_softirqs(cpu, task, VIA_IRQ_EXIT)


# -- interrupts from other OS threads ---------------------------------------------------------


class ThreadsafeIrqs:
    """
    The interrupts raised from other OS threads that the loop has not delivered yet (one per
    kernel). Internal: see ``Kernel.raise_irq_threadsafe``.

    Invariant: whenever :attr:`queue` is not empty, a wake-up of the loop is pending
    (:attr:`wake_pending`), so every accepted interrupt reaches the loop.
    """

    __slots__ = (
        "closed",
        "delivered",
        "dropped",
        "event",
        "kick",
        "lock",
        "queue",
        "wake",
        "wake_pending",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()  # I
        #: L: ``(irq, cpu)`` in the order raised; ``cpu`` is ``None`` for the line's own CPU
        self.queue: deque[tuple[int, int | None]] = deque()
        self.wake_pending = False  # L: a drain of the queue is scheduled on the loop
        self.closed = False  # L: the kernel stopped taking interrupts from threads
        #: I after boot: schedules a callable on the loop's thread, from any thread
        self.wake: Callable[[Callable[[], object]], object] | None = None
        #: I after boot: what the wake-up runs on the loop (it wakes the delivering task)
        self.kick: Callable[[], object] = _no_kick
        self.event: Any = None  # A: what the delivering task sleeps on (an anyio.Event)
        self.delivered = 0  # A: interrupts delivered from the queue
        self.dropped = 0  # A: interrupts taken off the queue undelivered (named in dmesg)

    def __repr__(self) -> str:
        return (
            f"<ThreadsafeIrqs queued={len(self.queue)} delivered={self.delivered} "
            f"dropped={self.dropped}{' closed' if self.closed else ''}>"
        )


def _no_kick() -> None:  # pragma: no cover - never woken before boot
    pass


def _loop_waker() -> Callable[[Callable[[], object]], object]:
    """The running backend's "run this on the loop's thread soon", callable from any thread."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return loop.call_soon_threadsafe  # type: ignore[no-any-return]
    import trio  # anyio runs on asyncio or trio: this is trio

    return trio.lowlevel.current_trio_token().run_sync_soon


def threadsafe_boot(kernel: Kernel) -> None:
    """
    At boot, on the loop's thread, once the CPUs are up: record the thread, start the task
    that delivers, open the queue to other threads.
    """
    kernel._loop_thread = threading.get_ident()
    ts = kernel._ts_irqs
    ts.kick = lambda: _kick(kernel)
    kernel._spawn(_irq_threadsafe_task, kernel, name="irq/threadsafe")
    ts.wake = _loop_waker()
    register_kernel(kernel)


async def _irq_threadsafe_task(kernel: Kernel) -> None:
    """The kernel task delivering what other threads raise: one batch per wake-up."""
    _current.set(None)  # it runs no kernel code of its own: interrupts borrow idle tasks
    ts = kernel._ts_irqs
    while True:
        event = anyio.Event()
        ts.event = event  # set before the batch is taken: a later raise wakes this one
        deliver_threadsafe_irqs(kernel)  # a panic ends the task (the kernel is dead)
        await event.wait()


def _kick(kernel: Kernel) -> None:
    """The wake-up, run on the loop's thread: wake the delivering task."""
    if kernel._halted:
        drop_threadsafe_irqs(kernel)  # nothing delivers any more: name what came too late
        return
    event = kernel._ts_irqs.event
    if event is not None:
        event.set()


def _not_running(kernel: Kernel, ts: ThreadsafeIrqs) -> NoKernelError:
    if kernel._panic is not None:
        why = f"it panicked ({kernel._panic})"
    elif ts.wake is None:
        why = "it has not booted yet"
    elif kernel._halted:
        why = "it has halted"
    else:
        why = "it is shutting down"
    return NoKernelError(
        f"Kernel.raise_irq_threadsafe(): the kernel is not running ({why}); the interrupt "
        "was not raised"
    )


def raise_irq_threadsafe(kernel: Kernel, irq: int, cpu: int | None) -> None:
    """``Kernel.raise_irq_threadsafe``: check in the calling thread, queue, wake the loop once."""
    if type(irq) is not int or not 0 <= irq < NR_IRQS:
        check_irq(irq, "Kernel.raise_irq_threadsafe")
    if cpu is not None and (type(cpu) is not int or not 0 <= cpu < kernel.nr_cpus):
        cpu = check_cpu_arg(kernel, cpu, "Kernel.raise_irq_threadsafe")
    ts = kernel._ts_irqs
    with ts.lock:
        wake = ts.wake
        if ts.closed or wake is None or kernel._halted or kernel._panic is not None:
            raise _not_running(kernel, ts)
        ts.queue.append((irq, cpu))
        if ts.wake_pending:
            return  # the pending drain takes this one too
        try:
            wake(ts.kick)
        except RuntimeError as exc:
            # the event loop has ended (asyncio: closed; trio: RunFinishedError) without the
            # kernel closing the queue: nothing can deliver this interrupt
            ts.queue.pop()
            ts.closed = True
            raise NoKernelError(
                "Kernel.raise_irq_threadsafe(): the kernel's event loop has ended; the "
                "interrupt was not raised"
            ) from exc
        ts.wake_pending = True


def deliver_threadsafe_irqs(kernel: Kernel) -> int:
    """``Kernel._deliver_threadsafe_irqs``: deliver what is queued now; return how many."""
    ts = kernel._ts_irqs
    with ts.lock:
        batch = ts.queue
        if not batch:
            ts.wake_pending = False
            return 0
        ts.queue = deque()
        ts.wake_pending = False
    if kernel._halted or kernel._panic is not None or not kernel._booted:
        _requeue(ts, batch)
        if kernel._halted:
            drop_threadsafe_irqs(kernel)  # halted without closing the queue: name them now
        return 0
    n = 0
    token = _current.set(None)  # a device interrupt: it borrows no task of the caller's
    try:
        while batch:
            irq, cpu = batch.popleft()
            n += 1
            deliver_irq(kernel, None, irq, effective_cpu(kernel, irq) if cpu is None else cpu)
    finally:
        _current.reset(token)
        ts.delivered += n
        if batch:
            # a handler panicked: what follows it stays queued, first, for the shutdown to name
            _requeue(ts, batch)
    return n


def _requeue(ts: ThreadsafeIrqs, batch: deque[tuple[int, int | None]]) -> None:
    """Put *batch* back at the head of the queue, ahead of what was raised since."""
    with ts.lock:
        batch.extend(ts.queue)
        ts.queue = batch
        if batch:
            ts.wake_pending = True  # nobody needs waking: the shutdown takes them


def drop_threadsafe_irqs(
    kernel: Kernel, name: Callable[[int, int, int], object] | None = None
) -> list[tuple[int, int]]:
    """
    ``Kernel._drop_threadsafe_irqs``: close the queue; take off, name and return what is left.

    *name* is called as ``name(irq, cpu, count)`` for each run of one line's interrupts for one
    CPU (in the order raised); by default each run gets a dmesg line.
    """
    ts = kernel._ts_irqs
    with ts.lock:
        ts.closed = True
        left = ts.queue
        ts.queue = deque()
        ts.wake_pending = False
    dropped = [(irq, effective_cpu(kernel, irq) if cpu is None else cpu) for irq, cpu in left]
    ts.dropped += len(dropped)
    i = 0
    while i < len(dropped):
        j = i + 1
        while j < len(dropped) and dropped[j] == dropped[i]:
            j += 1
        irq, cpu = dropped[i]
        if name is not None:
            name(irq, cpu, j - i)
        else:
            times = "" if j - i == 1 else f" ({j - i} times)"
            log_text(
                kernel,
                4,
                f"kdefer: shutdown: interrupt {irq} ({kernel.irq_names.get(irq, 'no handler')}) "
                f"raised from another thread for CPU {cpu}{times}, never delivered; dropped",
            )
        i = j
    return dropped


# -- /proc/interrupts ---------------------------------------------------------------------------


def proc_interrupts(kernel: Kernel) -> str:
    """
    Render /proc/interrupts as kernel/irq/proc.c ``show_interrupts`` lays it out.

    A header of ``prec + 8`` spaces and ``CPU%-8d`` per CPU, then one row per line that has a
    handler: ``%*d:``, `` %10u`` per CPU, the chip (``%8s``), the hardware irq number, the flow
    name and the handler names. Lines without a handler are not listed (their interrupts are
    spurious). ``prec`` is 3, the first column width for fewer than 1000 lines, so that the
    rows align with the arch part (``LOC:``) the kernel appends.
    """
    prec = 3
    cpus = kernel.cpus
    lines = [" " * (prec + 8) + "".join("CPU%-8d" % c.nr for c in cpus)]
    for irq in sorted(kernel.irq_actions):
        counts = "".join(" %10u" % c.irq_stat.get(irq, 0) for c in cpus)
        names = kernel.irq_names.get(irq, "")
        lines.append(
            "%*d:%s %8s %*d-%-8s  %s" % (prec, irq, counts, "kdefer", prec, irq, "edge", names)
        )
    return "\n".join(lines) + "\n"
