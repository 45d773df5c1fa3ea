"""Softirqs: the ten vectors, per-CPU pending masks, ``__do_softirq`` and ksoftirqd.

Kernel invariants modelled (kernel/softirq.c):

* Pending state is a per-CPU bit mask; raising a pending vector again is a no-op, so the
  /proc/softirqs counter counts handler passes, not raises.
* Pending softirqs run only at three points: on ``irq_exit()`` (when not nested in another
  interrupt or BH-disabled section), in ``local_bh_enable()`` when it re-enables bottom halves,
  and in the CPU's ``ksoftirqd/N`` kthread. ``raise_softirq()`` from plain task context wakes
  ksoftirqd; from interrupt context it does not (the bit is noticed on the way out).
* One invocation runs the pending vectors in ascending number order (HI first, RCU last);
  vectors raised meanwhile run in a restart pass, at most ``MAX_SOFTIRQ_RESTART`` passes and
  ``MAX_SOFTIRQ_TIME`` (2 ms in jiffies), after which the rest is handed to ksoftirqd.
* Handlers are plain functions run as await-free critical sections: nothing else runs on the
  loop while a handler runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from ._check import check_callback, check_int
from ._consts import (
    HARDIRQ_MASK,
    HI_SOFTIRQ,
    IRQ_MASK,
    MAX_SOFTIRQ_RESTART,
    NR_SOFTIRQS,
    SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_MASK,
    SOFTIRQ_NAMES,
    SOFTIRQ_OFFSET,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASKLET_SOFTIRQ,
)
from ._context import TaskStruct, _cur, _current, claim
from ._exceptions import KernelPanic
from ._printk import log_text, report_lines, symbol_name, warn_once
from ._trace import SOFTIRQ_ENTRY, SOFTIRQ_EXIT, SOFTIRQ_RAISE, emit

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = [
    "handle_softirqs",
    "local_bh_disable",
    "local_bh_enable",
    "local_softirq_pending",
    "open_softirq",
    "raise_softirq",
    "raise_softirq_irqoff",
    "run_atomic_result",
    "wakeup_softirqd",
]


def run_atomic_result(task: TaskStruct, result: object, fn: object) -> None:
    """An atomic handler returned *result*: an awaitable means it tried to sleep."""
    if result is None:
        return
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()
        report_schedule_bug(task, fn)


def report_schedule_bug(task: TaskStruct, fn: object | None = None) -> None:
    """``BUG: scheduling while atomic``: the count printed includes schedule()'s own level."""
    lines = [
        f"BUG: scheduling while atomic: {task.comm}/{task.pid}/0x{(task.preempt_count + 1):08x}",
        "Modules linked in: " + " ".join(task.kernel._module_names()),
    ]
    if fn is not None:
        lines.append(f"Preemption disabled at:\n {symbol_name(fn, offset=True)}")
    report_lines(task, lines, level=3, taint="W")


def panic_in_interrupt(task: TaskStruct, exc: BaseException, where: str) -> None:
    """An exception in atomic context: an oops in interrupt, i.e. a panic. Raises KernelPanic."""
    k = task.kernel
    from ._printk import record_oops

    record_oops(task, exc, where)
    k.panic("Fatal exception in interrupt", exc)


def open_softirq(nr: int, action: Callable[[], object]) -> None:
    """
    Register *action* as the handler of softirq vector *nr* (the last registration wins).

    *action* takes no arguments (as since Linux 6.12) and runs in softirq context.

    Raises:
        TypeError: *nr* is not an int; *action* is not callable, is ``async def``, or cannot be
            called with no arguments.
        ValueError: *nr* is not a softirq vector (0 to ``NR_SOFTIRQS - 1``).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _check_nr(nr, "open_softirq")
    check_callback(
        action,
        "open_softirq",
        "action",
        shape="action()",
        nargs=0,
        kind="atomic",
        what="a softirq action",
    )
    _cur().kernel.softirq_vec[nr] = action


def _check_nr(nr: object, func: str) -> int:
    """*nr* if it is a softirq vector number: the ``unsigned int nr`` below ``NR_SOFTIRQS``."""
    return check_int(
        nr,
        func,
        "nr",
        lo=0,
        hi=NR_SOFTIRQS - 1,
        expected=f"a softirq number from 0 to {NR_SOFTIRQS - 1}",
    )


def wakeup_softirqd(cpu: CPU) -> None:
    """Wake ``ksoftirqd/N`` of *cpu* if it sleeps."""
    ev = cpu._ksoftirqd_event
    if ev is not None:
        cpu._ksoftirqd_event = None
        if cpu.kernel._trace_on:
            from ._sched import sched_wakeup

            sched_wakeup(cpu.ksoftirqd)
        cpu.ksoftirqd.state = TASK_RUNNING
        ev.set()


def raise_softirq_irqoff(nr: int) -> None:
    """
    Mark softirq *nr* pending on this CPU; wake ksoftirqd unless in interrupt context.

    Raises:
        TypeError: *nr* is not an int.
        ValueError: *nr* is not a softirq vector (0 to ``NR_SOFTIRQS - 1``).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if type(nr) is not int or not 0 <= nr < NR_SOFTIRQS:
        _check_nr(nr, "raise_softirq_irqoff")
    task = _cur()
    kernel = task.kernel
    cpu = kernel.cpus[task.cpu]
    if kernel._trace_on:
        emit(kernel, task, SOFTIRQ_RAISE, nr)
    cpu.pending |= 1 << nr
    if not task.preempt_count & IRQ_MASK:
        wakeup_softirqd(cpu)


def raise_softirq(nr: int) -> None:
    """
    Mark softirq *nr* pending on this CPU (``raise_softirq_irqoff`` with IRQs saved).

    From plain task context this wakes ``ksoftirqd/N``, which runs the handler; from a hardirq
    handler the handler runs on ``irq_exit``; inside a BH-disabled section it runs at the
    matching ``local_bh_enable()``.

    Raises:
        TypeError: *nr* is not an int.
        ValueError: *nr* is not a softirq vector (0 to ``NR_SOFTIRQS - 1``).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if type(nr) is not int or not 0 <= nr < NR_SOFTIRQS:
        _check_nr(nr, "raise_softirq")
    task = _cur()
    kernel = task.kernel
    cpu = kernel.cpus[task.cpu]
    if kernel._trace_on:
        emit(kernel, task, SOFTIRQ_RAISE, nr)
    cpu.pending |= 1 << nr
    if not task.preempt_count & IRQ_MASK:
        wakeup_softirqd(cpu)


def local_softirq_pending() -> int:
    """
    Return this CPU's pending softirq bit mask.

    .. versionadded:: 0.1
    """
    task = _cur()
    return task.kernel.cpus[task.cpu].pending


#: How a softirq pass was entered: what the model adds to each softirq_entry record after the
#: vector (the kernel does not record it; a timeline shows it)
VIA_IRQ_EXIT = "irq_exit"
VIA_BH_ENABLE = "local_bh_enable"
VIA_KSOFTIRQD = "ksoftirqd"
VIA_DO_SOFTIRQ = "do_softirq"


def handle_softirqs(cpu: CPU, task: TaskStruct, via: str) -> None:
    """
    ``__do_softirq``: run *cpu*'s pending vectors, borrowing *task*, entered *via* one of the
    ``VIA_*`` paths.

    Runs passes in ascending vector order until nothing is pending, the restart budget is spent
    or the time budget (``MAX_SOFTIRQ_TIME`` in jiffies) is over; leftover work wakes ksoftirqd.
    """
    kernel = cpu.kernel
    vec = kernel.softirq_vec
    stat = cpu.softirq_stat
    end = kernel.get_jiffies() + kernel.max_softirq_time
    restart = MAX_SOFTIRQ_RESTART
    task.preempt_count += SOFTIRQ_OFFSET
    saved_curr = cpu.curr
    cpu.curr = task
    try:
        pending = cpu.pending
        while True:
            if cpu.pending_irqs and not task.irqs_off:
                # __do_softirq enables interrupts for each pass: what was held off while the
                # interrupt that got us here ran is taken now, nested in softirq context (its
                # irq_exit runs no softirqs); x86 takes the irq_work self-interrupt here too
                kernel._deliver_pending_irqs(task)
                pending |= cpu.pending
            cpu.pending = 0
            while pending:
                low = pending & -pending
                pending ^= low
                nr = low.bit_length() - 1
                stat[nr] += 1
                action = vec[nr]
                if action is None:
                    warn_once(
                        ("softirq", nr),
                        "softirq %u (%s) raised with no handler\n",
                        nr,
                        SOFTIRQ_NAMES[nr],
                    )
                    continue
                if nr != HI_SOFTIRQ and nr != TASKLET_SOFTIRQ:
                    cpu.progress += 1
                prev = task.preempt_count
                if kernel._trace_on:
                    emit(kernel, task, SOFTIRQ_ENTRY, nr, via)
                try:
                    result = action()
                except BaseException as exc:
                    if isinstance(exc, Exception) and not isinstance(exc, KernelPanic):
                        panic_in_interrupt(task, exc, f"softirq {SOFTIRQ_NAMES[nr]}")
                    raise
                if kernel._trace_on:
                    emit(kernel, task, SOFTIRQ_EXIT, nr)
                if result is not None:
                    run_atomic_result(task, result, action)
                if task.preempt_count != prev:
                    log_text(
                        kernel,
                        3,
                        "huh, entered softirq %d %s %s with preempt_count %08x, exited with %08x?"
                        % (nr, SOFTIRQ_NAMES[nr], symbol_name(action), prev, task.preempt_count),
                    )
                    task.preempt_count = prev
            pending = cpu.pending
            if not pending:
                break
            restart -= 1
            if restart and kernel.get_jiffies() < end:
                continue
            wakeup_softirqd(cpu)
            break
    finally:
        cpu.curr = saved_curr
        task.preempt_count -= SOFTIRQ_OFFSET


def local_bh_disable() -> None:
    """
    Disable bottom halves on this CPU (nestable): adds ``SOFTIRQ_DISABLE_OFFSET`` (0x200).

    Softirqs raised meanwhile run at the matching :func:`local_bh_enable`. Inside, the task is
    ``in_softirq()`` and ``in_interrupt()`` (the kernel's definitions).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _cur().preempt_count += SOFTIRQ_DISABLE_OFFSET


def local_bh_enable() -> None:
    """
    Re-enable bottom halves; at the outermost level, run pending softirqs before returning.

    A call from hardirq context is a bug the kernel warns about once.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    task = _cur()
    if task.preempt_count & HARDIRQ_MASK:
        warn_once("local_bh_enable in hardirq")
    if (task.preempt_count & SOFTIRQ_MASK) < SOFTIRQ_DISABLE_OFFSET:
        warn_once("local_bh_enable underflow", "local_bh_enable() without local_bh_disable()\n")
        return
    # keep one preempt level while softirqs run, as __local_bh_enable_ip does
    task.preempt_count -= SOFTIRQ_DISABLE_OFFSET - 1
    try:
        if not task.preempt_count & IRQ_MASK:
            cpu = task.kernel.cpus[task.cpu]
            if cpu.pending:
                handle_softirqs(cpu, task, VIA_BH_ENABLE)
    finally:
        task.preempt_count -= 1


async def ksoftirqd(cpu: CPU) -> None:
    """
    The ``ksoftirqd/N`` kthread: run pending softirqs whenever woken, yielding between batches.

    A batch that did nothing but re-poll disabled or busy tasklets keeps the CPU busy until
    the next jiffy, as a real spinning ksoftirqd would; this also lets virtual time advance.
    """
    task = cpu.ksoftirqd
    _current.set(task)
    claim(task)
    kernel = cpu.kernel
    while True:
        if not cpu.pending:
            ev = anyio.Event()
            cpu._ksoftirqd_event = ev
            task.state = TASK_INTERRUPTIBLE
            await ev.wait()
            task.state = TASK_RUNNING
            continue
        before = cpu.progress
        handle_softirqs(cpu, task, VIA_KSOFTIRQD)
        if cpu.pending and cpu.progress == before:
            # only re-polls (disabled or busy tasklets): spin until the next jiffy, unless
            # woken earlier (tasklet_enable, a new raise)
            ev = anyio.Event()
            cpu._ksoftirqd_event = ev
            with anyio.move_on_after(
                kernel.jiffies_to_time(kernel.get_jiffies() + 1) - kernel._clock()
            ):
                await ev.wait()
            cpu._ksoftirqd_event = None
        else:
            await anyio.lowlevel.checkpoint()


def proc_softirqs(kernel_cpus: list[CPU]) -> str:
    """Render /proc/softirqs exactly as fs/proc/softirqs.c lays it out."""
    lines = [" " * 20 + "".join("CPU%-8d" % c.nr for c in kernel_cpus)]
    for nr, name in enumerate(SOFTIRQ_NAMES):
        lines.append("%12s:" % name + "".join(" %10u" % c.softirq_stat[nr] for c in kernel_cpus))
    return "\n".join(lines) + "\n"
