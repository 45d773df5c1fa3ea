"""Hard interrupts: ``request_irq``/``free_irq``, the simulated interrupt entry and exit, and
interrupts raised from other OS threads.

Field rules: ``I``: set at creation (or at boot), read-only after; ``A``: changed only on the
loop's thread, in synchronous code; ``L``: guarded by :attr:`ThreadsafeIrqs.lock`, read and
changed from any thread.

Kernel invariants modelled (kernel/irq/, kernel/softirq.c ``irq_enter``/``irq_exit``,
arch/x86/kernel/apic/vector.c):

* A handler runs in hardirq context (``HARDIRQ_OFFSET`` added to the borrowed task's
  preempt_count) with local interrupts off; it returns ``IRQ_HANDLED`` or ``IRQ_NONE``.
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
    HARDIRQ_MASK,
    HARDIRQ_OFFSET,
    IRQ_HANDLED,
    IRQ_MASK,
    IRQ_NONE,
    IRQF_SHARED,
    NR_IRQS,
)
from ._context import TaskStruct, _cur, _current, check_loop_thread, register_kernel
from ._exceptions import KernelPanic, NoKernelError
from ._printk import log_text, warn
from ._softirq import (
    handle_softirqs,
    panic_in_interrupt,
    run_atomic_result,
    wakeup_softirqd,
)
from ._tick import arch_vector

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel

__all__ = [
    "IrqAction",
    "ThreadsafeIrqs",
    "check_cpu_arg",
    "check_irq",
    "deliver_threadsafe_irqs",
    "do_irq",
    "drop_threadsafe_irqs",
    "effective_cpu",
    "free_irq",
    "proc_interrupts",
    "raise_irq_threadsafe",
    "request_irq",
    "threadsafe_boot",
]


@dataclass(slots=True)
class IrqAction:
    """``struct irqaction``: one handler registered on a line."""

    handler: Callable[[int, Any], object]
    flags: int
    name: str
    dev: Any


# -- argument checks ----------------------------------------------------------------------------


def check_irq(irq: object, func: str) -> int:
    """*irq* if it is a line number (an int from 0 to ``NR_IRQS - 1``)."""
    return check_int(irq, func, "irq", lo=0, hi=NR_IRQS - 1)


def check_cpu_arg(kernel: Kernel, cpu: object, func: str) -> int:
    """*cpu* if it is the number of one of *kernel*'s CPUs (``None`` is the caller's to handle)."""
    return check_cpu(cpu, kernel.nr_cpus, func, or_none=True)


# -- request_irq / free_irq -------------------------------------------------------------------


def request_irq(
    irq: int, handler: Callable[[int, Any], object], flags: int, name: str, dev: Any
) -> int:
    """
    Register *handler* for interrupt line *irq*; ``handler(irq, dev)`` runs in hardirq context.

    The first handler of a line binds it to one CPU, its effective affinity (see
    :meth:`Kernel.irq_effective_cpu`): where its device interrupts go.

    Returns:
        0 on success; ``-EBUSY`` if the line is taken and either registration lacks
        ``IRQF_SHARED``; ``-EINVAL`` for a shared request without a *dev* cookie.

    Raises:
        TypeError: *irq* or *flags* is not an int; *handler* is not callable as
            ``handler(irq, dev)`` or is ``async def``; *name* is not a str.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``); *flags* is negative.
        RuntimeError: called from a thread other than the kernel's event loop's.

    Context:
        Process context in the kernel; never sleeps here.

    .. versionadded:: 0.1
    """
    check_irq(irq, "request_irq")
    check_callback(
        handler,
        "request_irq",
        "handler",
        shape="handler(irq, dev)",
        nargs=2,
        kind="atomic",
        what="an interrupt handler",
    )
    check_int(flags, "request_irq", "flags", lo=0, expected="IRQF_* flags (an int >= 0)")
    check_str(name, "request_irq", "name")
    kernel = _cur().kernel
    check_loop_thread(kernel, "request_irq")
    if flags & IRQF_SHARED and dev is None:
        return -EINVAL
    actions = kernel.irq_actions.setdefault(irq, [])
    if actions and not (flags & IRQF_SHARED and all(a.flags & IRQF_SHARED for a in actions)):
        log_text(
            kernel,
            3,
            f"genirq: Flags mismatch irq {irq}. {flags:08x} ({name}) vs. "
            f"{actions[0].flags:08x} ({actions[0].name})",
        )
        return -EBUSY
    if not actions:
        _bind_line(kernel, irq)
    actions.append(IrqAction(handler, flags, name, dev))
    kernel.irq_names[irq] = ", ".join(a.name for a in actions)
    return 0


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
    Remove the handler registered on *irq* with cookie *dev*.

    Returns:
        The name it was registered with, or ``None`` (after the kernel's warning) if no such
        handler exists.

    Raises:
        TypeError: *irq* is not an int.
        ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).
        RuntimeError: called from a thread other than the kernel's event loop's.

    Context:
        Process context.

    .. versionadded:: 0.1
    """
    check_irq(irq, "free_irq")
    kernel = _cur().kernel
    check_loop_thread(kernel, "free_irq")
    actions = kernel.irq_actions.get(irq, [])
    for i, action in enumerate(actions):
        if action.dev is dev:
            del actions[i]
            if not actions:
                del kernel.irq_actions[irq]
                kernel.irq_names.pop(irq, None)
                kernel.irq_affinity.pop(irq, None)  # the vector is released
            else:
                kernel.irq_names[irq] = ", ".join(a.name for a in actions)
            return action.name
    warn("Trying to free already-free IRQ %d\n", irq)
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
        kernel._tick_irq_enter(cpu)
        if irq < 0:
            arch_vector(cpu, task, irq)  # a system vector: the tick, irq_work, an IPI
        else:
            handle_irq(kernel, cpu, task, irq)
    finally:
        cpu.curr = saved_curr
        task.preempt_count -= HARDIRQ_OFFSET
    irq_exit(cpu, task)


def handle_irq(kernel: Kernel, cpu: CPU, task: TaskStruct, irq: int) -> None:
    """The flow handler of line *irq*, in hardirq context: every action, then accounting."""
    cpu.irq_stat[irq] = cpu.irq_stat.get(irq, 0) + 1
    actions = kernel.irq_actions.get(irq)
    if irq in kernel.irqs_disabled_lines:
        actions = None  # disabled after "nobody cared"
    handled = IRQ_NONE
    if actions:
        for action in list(actions):
            prev = task.preempt_count
            try:
                ret = action.handler(irq, action.dev)
            except KernelPanic:
                raise
            except Exception as exc:
                panic_in_interrupt(task, exc, f"irq {irq} handler {action.name}")
                raise
            if ret is not None and not isinstance(ret, int):
                run_atomic_result(task, ret, action.handler)
                ret = IRQ_NONE
            handled |= ret or 0
            if task.preempt_count != prev:
                log_text(
                    kernel,
                    3,
                    f"irq {irq} handler {action.name} leaked preempt_count "
                    f"{prev:08x} -> {task.preempt_count:08x}",
                )
                task.preempt_count = prev
    kernel._note_interrupt(irq, bool(handled & IRQ_HANDLED))


def irq_exit(cpu: CPU, task: TaskStruct) -> None:
    """Run pending softirqs if this is the outermost interrupt (or hand them to ksoftirqd)."""
    if not task.preempt_count & IRQ_MASK and cpu.pending:
        if cpu.kernel.threadirqs:
            wakeup_softirqd(cpu)
        else:
            handle_softirqs(cpu, task)


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
