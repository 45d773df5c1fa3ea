"""Per-CPU event counters bumped from a softirq and summed by a reader, as a module.

Run it as a module (``python -m kdefer_async run examples/percpu_counter_module.py``) or as a
plain script (``python examples/percpu_counter_module.py --virtual-time``); ``--param
events=N`` sets how many device events arrive.

A device (simulated by a timer, one burst every 10 ms) raises IRQ 43 on each CPU in turn. The
primary handler only schedules the tasklet ``count_events`` on the CPU that took the interrupt.
The tasklet runs in softirq context on that CPU and adds one to that CPU's copy of the per-CPU
counter ``events_seen`` with ``this_cpu_inc``: no lock, no shared cache line, the reason per-CPU
counters exist. A reader (the module's exit here; ``/proc``-style code in a driver) sums the
copies with ``for_each_online_cpu``; the sum is exact once the counting has stopped.
"""

from __future__ import annotations

from typing import Any

import kdefer_async as kd
from kdefer_async import (
    DEFINE_PER_CPU,
    IRQ_HANDLED,
    MODULE_DESCRIPTION,
    MODULE_LICENSE,
    Tasklet,
    TimerList,
    current_kernel,
    for_each_online_cpu,
    free_irq,
    mod_timer,
    module_exit,
    module_init,
    module_param,
    msecs_to_jiffies,
    num_online_cpus,
    per_cpu,
    pr_info,
    request_irq,
    tasklet_kill,
    tasklet_schedule,
    tasklet_setup,
    this_cpu_inc,
    timer_delete_sync,
    timer_setup,
)

COUNTER_IRQ = 43
#: How many device events arrive (``--param events=N``).
events = 40
module_param("events", int, 0o444)

events_seen = DEFINE_PER_CPU(int)
counter = Tasklet()
device = TimerList()
raised = 0


def count_events(t: Tasklet) -> None:
    """The tasklet, in softirq context on the CPU that took the interrupt."""
    this_cpu_inc(events_seen)


def counter_irq(irq: int, dev: Any) -> int:
    """The primary handler: defer the counting to this CPU's tasklet list."""
    tasklet_schedule(counter)
    return IRQ_HANDLED


def device_fires(timer: TimerList) -> None:
    """The device: one event, delivered to the next CPU in turn."""
    global raised
    current_kernel().raise_irq(COUNTER_IRQ, cpu=raised % num_online_cpus())
    raised += 1
    if raised < events:
        mod_timer(timer, kd.jiffies + msecs_to_jiffies(10))


def total() -> int:
    """The reader: sum every CPU's copy."""
    return sum(per_cpu(events_seen, cpu).value for cpu in for_each_online_cpu())


@module_init
def onload() -> int:
    tasklet_setup(counter, count_events)
    if request_irq(COUNTER_IRQ, counter_irq, 0, "evcount", counter) != 0:
        return -kd.EBUSY
    timer_setup(device, device_fires, 0)
    mod_timer(device, kd.jiffies + msecs_to_jiffies(10))
    pr_info("percpu_counter: counting %d events across %d CPUs\n", events, num_online_cpus())
    return 0


@module_exit
async def onunload() -> None:
    timer_delete_sync(device)
    free_irq(COUNTER_IRQ, counter)
    await tasklet_kill(counter)
    for cpu in for_each_online_cpu():
        pr_info("percpu_counter: CPU %d saw %d events\n", cpu, per_cpu(events_seen, cpu).value)
    pr_info("percpu_counter: %d events raised, %d counted\n", raised, total())


MODULE_DESCRIPTION("Per-CPU counters bumped from a tasklet and summed by a reader")
MODULE_LICENSE("GPL")

if __name__ == "__main__":
    from kdefer_async.cli import run_as_script

    run_as_script(__name__)
