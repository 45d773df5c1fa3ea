"""Each CPU's clock-event device: the tick, hrtimer expiry, lazy irq_work, and the system
vectors (local timer, IRQ work, function call) an interrupt entry dispatches.

Kernel invariants modelled (kernel/time/tick-sched.c, kernel/time/hrtimer.c
``hrtimer_interrupt``, kernel/irq_work.c ``irq_work_tick``, arch/x86/kernel/apic):

* One local timer interrupt (``LOC`` in /proc/interrupts) serves everything due on the CPU at
  that instant: the jiffies tick (it raises ``TIMER_SOFTIRQ`` when a wheel timer is due), the
  lazy ``irq_work`` list, and every expired hrtimer (hard ones run right there, in hardirq
  context; soft ones raise ``HRTIMER_SOFTIRQ``). Its ``irq_exit()`` then runs softirqs.
* The device is programmed for the earliest event: an idle CPU sleeps until its first
  non-deferrable wheel timer or its first hrtimer, whichever comes first (``NO_HZ_IDLE``); a CPU
  with lazy irq_work pending keeps its tick, so the work runs at the next jiffy.
* The clock: ``ktime_get()`` is nanoseconds since boot on the event loop's clock, continuous (not
  rounded to ticks); jiffy *j* begins at ``Kernel.jiffies_to_time(j)``; a ktime *t* is loop time
  ``epoch + t / 1e9``.

Busy-waits (``_delay.py``) take these same interrupts while they spin, through
:func:`local_timer_interrupt`; an idle CPU takes them from its ``tick/N`` task.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from ._consts import (
    CALL_FUNCTION_VECTOR,
    IRQ_WORK_VECTOR,
    LOCAL_TIMER_VECTOR,
    TIMER_SOFTIRQ,
)
from ._context import TaskStruct, _current
from ._trace import SOFTIRQ_RAISE, emit, trace_vector

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel

__all__ = [
    "arch_vector",
    "event_due",
    "ktime_reader",
    "ktime_to_time",
    "local_timer_interrupt",
    "next_event_time",
    "program_event",
    "tick_task",
]

#: Names of the system vectors, as /proc/interrupts labels their rows.
VECTOR_NAMES = {
    LOCAL_TIMER_VECTOR: "LOC",
    IRQ_WORK_VECTOR: "IWI",
    CALL_FUNCTION_VECTOR: "CAL",
}


def ktime_reader(clock: Callable[[], float], epoch: float) -> Callable[[], int]:
    """``ktime_get()`` for a kernel booted at loop time *epoch*: nanoseconds since boot."""

    def ktime_get() -> int:
        return int((clock() - epoch) * 1e9 + 0.5)

    return ktime_get


def ktime_to_time(kernel: Kernel, ns: int) -> float:
    """The event-loop time at which ktime *ns* is reached."""
    return kernel._epoch + ns / 1e9


def _hrtimer_next(cpu: CPU) -> int | None:
    base = cpu.hrtimer_base
    if base is None:
        return None
    from ._hrtimer import hrtimer_next_expiry

    return hrtimer_next_expiry(base)


def next_event_time(cpu: CPU) -> float:
    """
    The loop time of *cpu*'s next clock event when it is idle: its first non-deferrable wheel
    timer (at a jiffy boundary, never the current jiffy's), its first hrtimer, or the next
    jiffy if lazy irq_work waits; ``inf`` if none.
    """
    from ._timer import _NO_EXPIRY

    kernel = cpu.kernel
    when = math.inf
    nxt = cpu.std_base.next_expiry
    if nxt != _NO_EXPIRY or cpu.irq_work_lazy:
        now = kernel.get_jiffies()
        # the tick of jiffy ``now`` has happened: the earliest tick left is now + 1
        when = kernel.jiffies_to_time(now + 1 if cpu.irq_work_lazy else max(nxt, now + 1))
    hr = _hrtimer_next(cpu)
    if hr is not None:
        when = min(when, ktime_to_time(kernel, hr))
    return when


def event_due(cpu: CPU, tick_jiffy: int) -> bool:
    """Whether a local timer interrupt now has anything to do on *cpu*.

    *tick_jiffy* is the jiffy of the CPU's last tick: lazy irq_work waits for a later one.
    """
    kernel = cpu.kernel
    now = kernel.get_jiffies()
    if cpu.std_base.next_expiry <= now:
        return True
    if cpu.irq_work_lazy and now > tick_jiffy:
        return True
    hr = _hrtimer_next(cpu)
    return hr is not None and hr <= kernel.get_ktime()


def program_event(cpu: CPU, when: float) -> None:
    """Reprogram *cpu*'s idle clock event for loop time *when* if that is earlier."""
    scope = cpu._tick_scope
    if scope is not None and when < scope.deadline:
        scope.deadline = when


def tick_body(cpu: CPU, task: TaskStruct) -> None:
    """
    The local timer interrupt's handler, in hardirq context: the jiffies tick, the lazy
    irq_work list, the expired hrtimers. (``irq_enter``/``irq_exit`` are the caller's.)
    """
    kernel = cpu.kernel
    if kernel._trace_on:
        trace_vector(kernel, task, LOCAL_TIMER_VECTOR, True)
    kernel.loc_interrupts[cpu.nr] += 1
    now = kernel.get_jiffies()
    cpu.last_tick = now
    if cpu.std_base.next_expiry <= now or cpu.def_base.next_expiry <= now:
        if kernel._trace_on:
            emit(kernel, task, SOFTIRQ_RAISE, TIMER_SOFTIRQ)
        cpu.pending |= 1 << TIMER_SOFTIRQ
    if cpu.irq_work_lazy:
        from ._irq_work import irq_work_tick

        irq_work_tick(cpu, task)
    if cpu.hrtimer_base is not None:
        from ._hrtimer import hrtimer_interrupt

        hrtimer_interrupt(cpu.hrtimer_base, task)
    if cpu.busy_wait is not None:
        from ._delay import watchdog_sample

        watchdog_sample(cpu, task)
    if kernel._trace_on:
        trace_vector(kernel, task, LOCAL_TIMER_VECTOR, False)


def local_timer_interrupt(cpu: CPU, task: TaskStruct) -> None:
    """
    A local timer interrupt on *cpu*, interrupting *task* (its idle task, or the task that
    busy-waits there): ``irq_entry`` of ``LOCAL_TIMER_VECTOR`` (irq_enter, :func:`tick_body`,
    irq_exit with softirq processing), then what its handlers raised for this CPU.
    """
    from ._hardirq import irq_entry

    irq_entry(cpu, task, LOCAL_TIMER_VECTOR)
    if cpu.pending_irqs:
        cpu.kernel._deliver_pending_irqs(task)  # raised by the handlers (an irq_work, a line)


def arch_vector(cpu: CPU, task: TaskStruct, vector: int) -> None:
    """The handler of system *vector*, in hardirq context (called by ``irq_entry``)."""
    stat = cpu.irq_stat
    if vector == LOCAL_TIMER_VECTOR:
        tick_body(cpu, task)
    elif vector in (IRQ_WORK_VECTOR, CALL_FUNCTION_VECTOR):
        kernel = cpu.kernel
        if kernel._trace_on:
            trace_vector(kernel, task, vector, True)
        stat[vector] = stat.get(vector, 0) + 1
        (_handlers or _bind_handlers())[vector == CALL_FUNCTION_VECTOR](cpu, task)
        if kernel._trace_on:
            trace_vector(kernel, task, vector, False)
    else:  # pragma: no cover - the vectors above are the only ones raised
        raise AssertionError(f"unknown system vector {vector}")


#: The IRQ_WORK and CALL_FUNCTION handlers, bound on first use (their modules import this one).
_handlers: list[Callable[[CPU, TaskStruct], None]] = []


def _bind_handlers() -> list[Callable[[CPU, TaskStruct], None]]:
    from ._irq_work import irq_work_interrupt
    from ._smp import call_function_interrupt

    _handlers[:] = [irq_work_interrupt, call_function_interrupt]
    return _handlers


async def tick_task(cpu: CPU) -> None:
    """
    The CPU's clock-event device while the CPU is idle: sleep until the next event
    (:func:`next_event_time`), then take a local timer interrupt on the idle task. Tickless:
    with nothing armed it sleeps for good and costs nothing.
    """
    task = cpu.swapper
    _current.set(task)
    cpu.last_tick = cpu.kernel.get_jiffies()
    while True:
        with anyio.CancelScope(deadline=next_event_time(cpu)) as scope:
            cpu._tick_scope = scope
            await anyio.sleep_forever()
        cpu._tick_scope = None
        if not event_due(cpu, cpu.last_tick):
            continue  # woke early (clock granularity) or the event went away
        local_timer_interrupt(cpu, task)
