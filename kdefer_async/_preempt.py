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
* ``migrate_disable()``/``migrate_enable()`` (nesting) pin the task to its CPU while it stays
  preemptible.

``Kernel(debug_preempt=True)`` is ``CONFIG_DEBUG_PREEMPT`` (lib/smp_processor_id.c,
kernel/sched/core.c ``preempt_count_add``/``preempt_count_sub``, include/linux/debug_locks.h):

* ``smp_processor_id()`` in preemptible code (preempt count 0, IRQs on) reports ``BUG: using
  smp_processor_id() in preemptible [%08x] code: %s/%d``, ``caller is %pS`` and a stack dump,
  unless the task is a per-CPU thread (``PF_NO_SETAFFINITY`` and bound to one CPU: ksoftirqd,
  the kworkers of per-CPU pools, ``kthread_bind`` threads; the idle task) or has migration
  disabled. The reports go through ``printk_ratelimit()``: at most 10 per 5 s, then
  ``check_preemption_disabled: N callbacks suppressed`` when the next window opens.
* ``preempt_enable()`` with no preemption level to drop warns
  ``DEBUG_LOCKS_WARN_ON(val > preempt_count())`` (or, inside a softirq or BH-disabled section,
  ``DEBUG_LOCKS_WARN_ON((val < PREEMPT_MASK) && !(preempt_count() & PREEMPT_MASK))``) and
  changes nothing; ``preempt_disable()`` nesting up to ``PREEMPT_MASK - 10`` warns
  ``DEBUG_LOCKS_WARN_ON((preempt_count() & PREEMPT_MASK) >= PREEMPT_MASK - 10)``. A
  DEBUG_LOCKS report turns lock debugging off, so only the first one prints.

With the option off, ``smp_processor_id()`` pays one attribute test and nothing else.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ._consts import HARDIRQ_MASK, PREEMPT_MASK, PREEMPT_OFFSET
from ._context import PF_NO_SETAFFINITY, TaskStruct, _cur
from ._printk import _PKG_DIR, dump_stack, log_text, warn_once

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "check_preemption_disabled",
    "get_cpu",
    "local_irq_disable",
    "local_irq_enable",
    "migrate_disable",
    "migrate_enable",
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
    task = _cur()
    task.preempt_count += PREEMPT_OFFSET
    if task.kernel.debug_preempt and (task.preempt_count & PREEMPT_MASK) >= PREEMPT_MASK - 10:
        _debug_locks_warn("(preempt_count() & PREEMPT_MASK) >= PREEMPT_MASK - 10")


def preempt_enable() -> None:
    """
    Undo one :func:`preempt_disable`. Without a matching disable it changes nothing (with
    ``Kernel(debug_preempt=True)``, the kernel's ``DEBUG_LOCKS_WARN_ON`` warning, once).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    task = _cur()
    if task.preempt_count & PREEMPT_MASK:
        task.preempt_count -= PREEMPT_OFFSET
    elif task.kernel.debug_preempt:
        if task.preempt_count < PREEMPT_OFFSET:
            _debug_locks_warn("val > preempt_count()")
        else:
            _debug_locks_warn("(val < PREEMPT_MASK) && !(preempt_count() & PREEMPT_MASK)")


def _debug_locks_warn(cond: str) -> None:
    """``DEBUG_LOCKS_WARN_ON(cond)``: the first report turns lock debugging off for good."""
    warn_once("debug_locks_off", "DEBUG_LOCKS_WARN_ON(%s)\n", cond)


def migrate_disable() -> None:
    """
    Keep the running task on this CPU while it stays preemptible (nestable): it may then use
    ``smp_processor_id()`` without the ``debug_preempt`` report.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _cur().migration_disabled += 1


def migrate_enable() -> None:
    """
    Undo one :func:`migrate_disable`; without one, a WARN (once) and no change.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    task = _cur()
    if task.migration_disabled:
        task.migration_disabled -= 1
    else:
        warn_once("migrate_enable underflow")


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


def is_percpu_thread(task: TaskStruct) -> bool:
    """``is_percpu_thread()``: *task* is bound to its one CPU for good (``PF_NO_SETAFFINITY``):
    a ``kthread_bind`` thread, ksoftirqd, the idle task, a kworker of a per-CPU pool."""
    if task.flags & PF_NO_SETAFFINITY:
        return True
    cpu = task.kernel.cpus[task.cpu]
    if task is cpu.ksoftirqd or task is cpu.swapper:
        return True
    from ._workqueue import Worker

    return isinstance(task, Worker) and not task.pool.unbound


def check_preemption_disabled(task: TaskStruct, what1: str, what2: str) -> None:
    """
    ``check_preemption_disabled()`` of ``CONFIG_DEBUG_PREEMPT``, for a call made while *task*
    is preemptible (the caller has tested the preempt count and the IRQ state): the report,
    unless the task is a per-CPU thread or has migration disabled, rate-limited.
    """
    if task.migration_disabled or is_percpu_thread(task):
        return
    kernel = task.kernel
    if not printk_ratelimit(kernel, "check_preemption_disabled"):
        return
    log_text(
        kernel,
        3,
        f"BUG: using {what1}{what2}() in preemptible [{task.preempt_count:08x}] code: "
        f"{task.comm}/{task.pid}",
    )
    log_text(kernel, 4, f"caller is {_caller_symbol()}")
    dump_stack()


def _caller_symbol() -> str:
    """``%pS`` of the return address: the first function outside kdefer_async on the stack."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PKG_DIR):
        frame = frame.f_back
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name).rpartition("<locals>.")[2]
    return f"{name}+0x{frame.f_lasti:x}/0x{len(code.co_code):x}"


class _Ratelimit:
    """``struct ratelimit_state``: at most *burst* events per *interval* jiffies."""

    __slots__ = ("begin", "left", "missed")

    def __init__(self, begin: int, burst: int) -> None:
        self.begin = begin  # A: the jiffy the current window began
        self.left = burst  # A: events left in the window
        self.missed = 0  # A: events suppressed in it


#: ``printk_ratelimit_state``: ``DEFINE_RATELIMIT_STATE(..., 5 * HZ, 10)``.
PRINTK_RATELIMIT_SECS = 5
PRINTK_RATELIMIT_BURST = 10


def printk_ratelimit(kernel: Kernel, func: str) -> bool:
    """``printk_ratelimit()``: True if a message may be printed now (10 per 5 s); the first
    call of a new window names how many were suppressed in the last one."""
    now = kernel.get_jiffies()
    rs: _Ratelimit | None = kernel._printk_ratelimit
    if rs is None:
        rs = kernel._printk_ratelimit = _Ratelimit(now, PRINTK_RATELIMIT_BURST)
    if rs.begin + PRINTK_RATELIMIT_SECS * kernel.hz < now:
        rs.begin = now
        rs.left = PRINTK_RATELIMIT_BURST
        if rs.missed:
            log_text(kernel, 4, f"{func}: {rs.missed} callbacks suppressed")
            rs.missed = 0
    if rs.left > 0:
        rs.left -= 1
        return True
    rs.missed += 1
    return False


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
