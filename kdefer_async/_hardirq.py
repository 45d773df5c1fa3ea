"""Hard interrupts: ``request_irq``/``free_irq`` and the simulated interrupt entry and exit.

Kernel invariants modelled (kernel/irq/, kernel/softirq.c ``irq_enter``/``irq_exit``):

* A handler runs in hardirq context (``HARDIRQ_OFFSET`` added to the borrowed task's
  preempt_count) with local interrupts off; it returns ``IRQ_HANDLED`` or ``IRQ_NONE``.
* On ``irq_exit()``, if the CPU is not otherwise in interrupt or BH-disabled context and
  softirqs are pending, they run right there, before the interrupted code resumes (with forced
  IRQ threading they are handed to ksoftirqd instead).
* An interrupt raised on a CPU whose local interrupts are disabled (an irqsave section, or a
  hardirq handler running there: handlers run with interrupts off) is held pending until they
  are enabled again; one raised while a handler runs is delivered after that interrupt's exit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from ._context import TaskStruct, _cur, _current
from ._exceptions import KernelPanic
from ._printk import log_text, warn
from ._softirq import (
    check_atomic_callable,
    handle_softirqs,
    panic_in_interrupt,
    run_atomic_result,
    wakeup_softirqd,
)

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel

__all__ = ["IrqAction", "do_irq", "free_irq", "proc_interrupts", "request_irq"]


@dataclass(slots=True)
class IrqAction:
    """``struct irqaction``: one handler registered on a line."""

    handler: Callable[[int, Any], object]
    flags: int
    name: str
    dev: Any


def request_irq(
    irq: int, handler: Callable[[int, Any], object], flags: int, name: str, dev: Any
) -> int:
    """
    Register *handler* for interrupt line *irq*; ``handler(irq, dev)`` runs in hardirq context.

    Returns:
        0 on success; ``-EBUSY`` if the line is taken and either registration lacks
        ``IRQF_SHARED``; ``-EINVAL`` for a shared request without a *dev* cookie.

    Raises:
        TypeError: *handler* is not callable or is ``async def``; *irq* is not an int.
        ValueError: *irq* is out of range.

    Context:
        Process context in the kernel; never sleeps here.

    .. versionadded:: 0.1
    """
    if not isinstance(irq, int):
        raise TypeError(f"irq must be an int, not {type(irq).__name__}")
    if not 0 <= irq < NR_IRQS:
        raise ValueError(f"irq {irq} out of range 0..{NR_IRQS - 1}")
    check_atomic_callable(handler, "an interrupt handler")
    kernel = _cur().kernel
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
    actions.append(IrqAction(handler, flags, str(name), dev))
    kernel.irq_names[irq] = ", ".join(a.name for a in actions)
    return 0


def free_irq(irq: int, dev: Any) -> str | None:
    """
    Remove the handler registered on *irq* with cookie *dev*.

    Returns:
        The name it was registered with, or ``None`` (after the kernel's warning) if no such
        handler exists.

    Context:
        Process context.

    .. versionadded:: 0.1
    """
    kernel = _cur().kernel
    actions = kernel.irq_actions.get(irq, [])
    for i, action in enumerate(actions):
        if action.dev is dev:
            del actions[i]
            if not actions:
                del kernel.irq_actions[irq]
                kernel.irq_names.pop(irq, None)
            else:
                kernel.irq_names[irq] = ", ".join(a.name for a in actions)
            return action.name
    warn("Trying to free already-free IRQ %d\n", irq)
    return None


def do_irq(kernel: Kernel, irq: int, cpu_nr: int | None) -> None:
    """Deliver interrupt *irq* on CPU *cpu_nr*: irq_enter, handlers, irq_exit (see raise_irq)."""
    if not isinstance(irq, int):
        raise TypeError(f"irq must be an int, not {type(irq).__name__}")
    if not 0 <= irq < NR_IRQS:
        raise ValueError(f"irq {irq} out of range 0..{NR_IRQS - 1}")
    cur = _current.get()
    if cur is not None and cur.kernel is not kernel:
        cur = None
    if cpu_nr is None:
        cpu_nr = cur.cpu if cur is not None else 0
    elif not isinstance(cpu_nr, int):
        raise TypeError(f"cpu must be an int, not {type(cpu_nr).__name__}")
    elif not 0 <= cpu_nr < kernel.nr_cpus:
        raise ValueError(f"CPU {cpu_nr} out of range: this kernel has CPUs 0..{kernel.nr_cpus - 1}")
    kernel._check_alive()
    cpu = kernel.cpus[cpu_nr]
    if cur is not None and cur.cpu == cpu_nr:
        task = cur
        token = None
    else:
        # the interrupt lands on another CPU: it interrupts what that CPU runs, which is its
        # idle task unless atomic code of that CPU is further down this call stack
        task = cpu.curr or cpu.swapper
        token = _current.set(task)
    try:
        if task.irqs_off or task.preempt_count & HARDIRQ_MASK:
            # local interrupts are off on that CPU: the line stays pending until they are on
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
    """irq_enter(); the line's handlers; irq_exit()."""
    kernel = cpu.kernel
    task.preempt_count += HARDIRQ_OFFSET
    saved_curr = cpu.curr
    cpu.curr = task
    try:
        kernel.tick_irq_enter(cpu)
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
        kernel.note_interrupt(irq, bool(handled & IRQ_HANDLED))
    finally:
        cpu.curr = saved_curr
        task.preempt_count -= HARDIRQ_OFFSET
    irq_exit(cpu, task)


def irq_exit(cpu: CPU, task: TaskStruct) -> None:
    """Run pending softirqs if this is the outermost interrupt (or hand them to ksoftirqd)."""
    if not task.preempt_count & IRQ_MASK and cpu.pending:
        if cpu.kernel.threadirqs:
            wakeup_softirqd(cpu)
        else:
            handle_softirqs(cpu, task)


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
