"""High-resolution timers (placeholder: the clock-event interface the tick calls)."""

from __future__ import annotations

from typing import Any

from ._context import TaskStruct

__all__ = ["hrtimer_interrupt", "hrtimer_next_expiry"]


def hrtimer_next_expiry(base: Any) -> int | None:
    """The earliest hard expiry (ktime) of *base*'s queued timers, ``None`` if none."""
    return None


def hrtimer_interrupt(base: Any, task: TaskStruct) -> None:
    """Expire *base*'s due timers, borrowing *task*, in hardirq context."""
