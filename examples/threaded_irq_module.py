"""A sensor driver with a threaded interrupt: the primary handler acknowledges the device, the
irq thread reads it over a slow bus.

Run it as a module (``python -m kdefer_async run examples/threaded_irq_module.py``) or as a
plain script (``python examples/threaded_irq_module.py --virtual-time``); ``--param
samples=N`` sets how many samples the sensor produces.

The sensor (simulated by a timer, one sample every 50 ms) latches a temperature, sets its
DATA_READY status bit and raises IRQ 42. The driver requests the line with
``request_threaded_irq``:

* ``sensor_hardirq`` runs in hardirq context: it checks that the interrupt is its device's
  (``IRQ_NONE`` if not: the line could be shared), acknowledges it by clearing DATA_READY, and
  returns ``IRQ_WAKE_THREAD``. It must not sleep.
* ``sensor_thread`` runs in the kernel thread ``irq/42-sensor`` (``SCHED_FIFO``, process
  context): reading the sample takes a bus transfer, which sleeps (``msleep``), as an I2C read
  does. ``IRQF_ONESHOT`` keeps the line masked until the thread has returned, so the next
  sample's interrupt is held until this one has been read.

On unload, ``synchronize_irq`` waits for a read still in progress before ``free_irq``.
"""

from __future__ import annotations

from typing import Any

import kdefer_async as kd
from kdefer_async import (
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_WAKE_THREAD,
    IRQF_ONESHOT,
    MODULE_AUTHOR,
    MODULE_DESCRIPTION,
    MODULE_LICENSE,
    TimerList,
    current,
    current_kernel,
    free_irq,
    mod_timer,
    module_exit,
    module_init,
    module_param,
    msecs_to_jiffies,
    msleep,
    pr_err,
    pr_info,
    request_threaded_irq,
    synchronize_irq,
    timer_delete_sync,
)

SENSOR_IRQ = 42
DATA_READY = 0x1
#: How many samples the sensor produces (``--param samples=N``).
samples = 5
module_param("samples", int, 0o444)


class Sensor:
    """The device's registers, and the driver's counters."""

    def __init__(self) -> None:
        self.status = 0  # the status register: DATA_READY
        self.data = 0  # the data register: millidegrees Celsius
        self.produced = 0  # samples the sensor latched
        self.interrupts = 0  # interrupts the primary handler acknowledged
        self.readings: list[int] = []  # samples the thread read


def sensor_sample(timer: TimerList) -> None:
    """The sensor itself: latch a sample, set DATA_READY, assert the interrupt line."""
    sensor.produced += 1
    sensor.data = 21_000 + 250 * sensor.produced
    sensor.status |= DATA_READY
    current_kernel().raise_irq(SENSOR_IRQ)
    if sensor.produced < samples:
        mod_timer(timer, kd.jiffies + msecs_to_jiffies(50))


sensor = Sensor()
sample_timer = TimerList(sensor_sample)


def sensor_hardirq(irq: int, dev: Any) -> int:
    """Hardirq context: is it ours? Acknowledge it, and leave the slow part to the thread."""
    if not dev.status & DATA_READY:
        return IRQ_NONE
    dev.status &= ~DATA_READY
    dev.interrupts += 1
    return IRQ_WAKE_THREAD


async def sensor_thread(irq: int, dev: Any) -> int:
    """The irq thread: read the sample over the (slow, sleeping) bus."""
    await msleep(10)  # the bus transfer
    dev.readings.append(dev.data)
    pr_info("sensor: reading %d: %d mC (in %s)\n", len(dev.readings), dev.data, current().comm)
    return IRQ_HANDLED


@module_init
def sensor_init() -> int:
    ret = request_threaded_irq(
        SENSOR_IRQ, sensor_hardirq, sensor_thread, IRQF_ONESHOT, "sensor", sensor
    )
    if ret:
        pr_err("sensor: cannot get IRQ %d: %d\n", SENSOR_IRQ, ret)
        return ret
    pr_info("sensor: IRQ %d requested, %d samples to read\n", SENSOR_IRQ, samples)
    if samples > 0:
        mod_timer(sample_timer, kd.jiffies + msecs_to_jiffies(50))
    return 0


@module_exit
async def sensor_exit() -> None:
    timer_delete_sync(sample_timer)  # the sensor stops sampling
    await synchronize_irq(SENSOR_IRQ)  # a read still in progress finishes
    name = free_irq(SENSOR_IRQ, sensor)
    pr_info(
        "sensor: %d samples, %d interrupts, %d readings; freed IRQ %d (%s)\n",
        sensor.produced,
        sensor.interrupts,
        len(sensor.readings),
        SENSOR_IRQ,
        name,
    )


MODULE_AUTHOR("kdefer_async examples")
MODULE_DESCRIPTION("A sensor driver with a threaded interrupt")
MODULE_LICENSE("GPL")

if __name__ == "__main__":
    from kdefer_async.cli import run_as_script

    run_as_script(__name__)
