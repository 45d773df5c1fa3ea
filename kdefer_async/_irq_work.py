"""irq_work (placeholder: the interface the tick and the IRQ_WORK vector call)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._context import TaskStruct

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = ["irq_work_interrupt", "irq_work_tick"]


def irq_work_interrupt(cpu: CPU, task: TaskStruct) -> None:
    """The IRQ_WORK self-interrupt's handler: run the raised list, then the lazy one."""


def irq_work_tick(cpu: CPU, task: TaskStruct) -> None:
    """From the tick: run the lazy list."""
