"""Preemption and local interrupt control: ``preempt_disable``, ``get_cpu``, ``local_irq_disable``.

Kernel invariants modelled (include/linux/preempt.h, include/linux/irqflags.h,
include/linux/smp.h):

* ``preempt_disable()``/``preempt_enable()`` add and subtract 1 in the preemption field (bits
  0-7) of the running task's ``preempt_count``; they nest. ``preemptible()`` is a zero
  ``preempt_count`` with local interrupts enabled.
* ``get_cpu()`` is ``preempt_disable()`` plus the CPU number; ``put_cpu()`` is
  ``preempt_enable()``. ``raw_smp_processor_id()`` is the CPU number, never checked.
* ``local_irq_disable()``/``local_irq_enable()`` do not nest: one enable re-enables, whatever
  the number of disables before (``local_irq_save``/``restore`` are the nesting pair).
  Enabling takes the interrupts that arrived for this CPU meanwhile, at once.
"""

from __future__ import annotations

from ._consts import HARDIRQ_MASK, PREEMPT_MASK, PREEMPT_OFFSET
from ._context import _cur

__all__ = [
    "get_cpu",
    "local_irq_disable",
    "local_irq_enable",
    "preempt_disable",
    "preempt_enable",
    "preemptible",
    "put_cpu",
    "raw_smp_processor_id",
]


def preempt_disable() -> None:
    """
    Disable preemption on this CPU (nestable): ``preempt_count() + 1``.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _cur().preempt_count += PREEMPT_OFFSET


def preempt_enable() -> None:
    """
    Undo one :func:`preempt_disable`. Without a matching disable it changes nothing.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    task = _cur()
    if task.preempt_count & PREEMPT_MASK:
        task.preempt_count -= PREEMPT_OFFSET


def preemptible() -> bool:
    """
    ``preemptible()``: ``preempt_count() == 0`` and local interrupts enabled.

    .. versionadded:: 0.2
    """
    task = _cur()
    return not task.preempt_count and not task.irqs_off


def get_cpu() -> int:
    """
    Disable preemption and return this CPU's number (``put_cpu()`` undoes it).

    .. versionadded:: 0.2
    """
    task = _cur()
    task.preempt_count += PREEMPT_OFFSET
    return task.cpu


def put_cpu() -> None:
    """
    ``preempt_enable()``: the end of a :func:`get_cpu` section.

    .. versionadded:: 0.2
    """
    preempt_enable()


def raw_smp_processor_id() -> int:
    """
    This CPU's number, never checked for preemptible context (unlike ``smp_processor_id()``
    with ``Kernel(debug_preempt=True)``).

    .. versionadded:: 0.2
    """
    return _cur().cpu


def local_irq_disable() -> None:
    """
    Disable local interrupts. Does not nest: one :func:`local_irq_enable` re-enables them.

    Interrupts raised for this CPU meanwhile (device lines, its tick, irq_work) wait and are
    taken when interrupts are enabled again.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    task = _cur()
    if not task.irqs_off:
        task.irqs_off = 1


def local_irq_enable() -> None:
    """
    Enable local interrupts (whatever the number of disables before) and take, at once, the
    interrupts that arrived for this CPU meanwhile.

    Context:
        Any context; never sleeps. In a hardirq handler interrupts stay off until it returns.

    .. versionadded:: 0.2
    """
    task = _cur()
    task.irqs_off = 0
    if not task.preempt_count & HARDIRQ_MASK:
        task.kernel._deliver_pending_irqs(task)
