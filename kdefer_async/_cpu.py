"""Per-CPU data: softirq pending mask, tasklet lists, timer bases, statistics.

Field rules:

* ``I``: set at creation, read-only after.
* ``A``: changed only in synchronous code, so atomic with respect to the other tasks of the loop.
* ``W``: touched only by this CPU's own tasks (ksoftirqd, the tick) or by code running on it.

Kernel invariant modelled: everything here is per CPU. A softirq raised on CPU *n* runs only on
CPU *n*; a tasklet scheduled on CPU *n* is on CPU *n*'s list until it runs.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ._consts import NR_SOFTIRQS
from ._context import TaskStruct

if TYPE_CHECKING:
    from ._kernel import Kernel
    from ._tasklet import Tasklet
    from ._timer import TimerBase


class CPU:
    """One simulated CPU. Internal: reach it through the :class:`~kdefer_async.Kernel`."""

    __slots__ = (
        "_ksoftirqd_event",
        "_tick_scope",
        "busy_wait",
        "call_single_queue",
        "curr",
        "def_base",
        "hrtimer_base",
        "irq_stat",
        "irq_work_lazy",
        "irq_work_raised",
        "kernel",
        "ksoftirqd",
        "last_tick",
        "nr",
        "pending",
        "pending_irqs",
        "progress",
        "softirq_stat",
        "std_base",
        "swapper",
        "task_group",
        "tasklet_hi_vec",
        "tasklet_vec",
    )

    def __init__(self, kernel: Kernel, nr: int) -> None:
        from ._timer import TimerBase

        self.kernel = kernel  # I
        self.nr = nr  # I
        self.pending = 0  # A: local_softirq_pending() bit mask
        self.progress = 0  # A: handlers that did work (ksoftirqd re-poll detection)
        self.softirq_stat = [0] * NR_SOFTIRQS  # A: /proc/softirqs column
        self.irq_stat: dict[int, int] = {}  # A: /proc/interrupts column
        self.pending_irqs: deque[int] = deque()  # A: raised while local IRQs were off
        self.tasklet_vec: deque[Tasklet] = deque()  # A
        self.tasklet_hi_vec: deque[Tasklet] = deque()  # A
        self.swapper = TaskStruct(kernel, f"swapper/{nr}", 0, nr, kthread=True)  # I: idle task
        self.ksoftirqd = TaskStruct(
            kernel, f"ksoftirqd/{nr}", kernel._alloc_pid(), nr, kthread=True
        )  # I
        self._ksoftirqd_event: Any = None  # W: set while ksoftirqd sleeps
        #: A: the task whose atomic code (a softirq pass, an irq handler) this CPU is running
        #: right now, further down the call stack: an interrupt sent here from another CPU
        #: nests inside it rather than in the idle task.
        self.curr: TaskStruct | None = None
        self.std_base: TimerBase = TimerBase(self, deferrable=False)  # W
        self.def_base: TimerBase = TimerBase(self, deferrable=True)  # W
        self._tick_scope: Any = None  # W: the tick task's sleep, while it sleeps
        self.last_tick = 0  # W: the jiffy of this CPU's last local timer interrupt
        self.task_group: Any = None  # I: this CPU's anyio task group
        #: W: this CPU's hrtimers (``_hrtimer.py`` owns the type), ``None`` until one is started
        self.hrtimer_base: Any = None
        #: A: ``irq_work`` items queued here and waiting for the IRQ_WORK self-interrupt
        self.irq_work_raised: list[Any] = []
        #: A: lazy ``irq_work`` items, waiting for this CPU's next tick
        self.irq_work_lazy: list[Any] = []
        #: A: cross-CPU function calls queued for this CPU's CALL_FUNCTION interrupt
        self.call_single_queue: deque[Any] = deque()
        #: A: the busy-wait this CPU is spinning in (``_delay.py`` owns the type), if any
        self.busy_wait: Any = None

    def __repr__(self) -> str:
        return f"<CPU {self.nr} pending={self.pending:#x}>"
