"""Busy-waits (placeholder: the interface the tick calls while a CPU spins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._context import TaskStruct

if TYPE_CHECKING:
    from ._cpu import CPU

__all__ = ["watchdog_sample"]


def watchdog_sample(cpu: CPU, task: TaskStruct) -> None:
    """The soft-lockup watchdog's sample, from a tick taken while *cpu* busy-waits."""
