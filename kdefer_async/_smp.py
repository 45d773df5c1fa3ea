"""Cross-CPU function calls (placeholder: the interface the CALL_FUNCTION vector calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._context import TaskStruct

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = ["call_function_interrupt"]


def call_function_interrupt(cpu: CPU, task: TaskStruct) -> None:
    """The CALL_FUNCTION IPI's handler: run what other CPUs queued for *cpu*."""
