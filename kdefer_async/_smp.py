"""Cross-CPU function calls: ``smp_call_function_single``, ``on_each_cpu`` and friends.

Field rules:

* ``I``: set at creation, read-only after.
* ``A``: changed only in synchronous code, so atomic with respect to the other tasks of the loop.

Kernel invariants modelled (kernel/smp.c, include/linux/smp.h, arch/x86/kernel/smp.c):

* A call for another CPU is an entry (``call_single_data``) on that CPU's call-function queue;
  the entry that finds the queue empty sends the CALL_FUNCTION IPI (``CAL`` in
  /proc/interrupts). The target runs ``func(info)`` in the IPI's handler: hardirq context,
  interrupts off, with an ``irq_exit`` of its own where the softirqs ``func`` raised run, on the
  target. A target whose interrupts are off takes the IPI when they are enabled.
* One IPI runs the whole queue as it was when the handler took it: first the synchronous
  entries (someone waits for them), in queueing order; then the asynchronous entries and the
  remote ``irq_work`` items, in queueing order.
* A call for the caller's own CPU runs at once, in the caller's context with local interrupts
  disabled (and preemption, by ``get_cpu()``): not hardirq context.
* ``on_each_cpu*`` queue the remote CPUs (evaluating ``cond_func`` on each, in the caller's
  context with preemption disabled), send the IPIs, run the local call, then wait.
* CPUs of a mask that are not online (here: numbers >= ``nr_cpus``) are skipped silently;
  ``smp_call_function_single`` returns ``-ENXIO`` for one, without calling ``func``.
* Misuse the kernel survives is a WARN, once per boot and call site: calling with local
  interrupts disabled (``smp_call_function_single``; lockdep's ``irqs enabled`` assertion on
  the other paths), calling outside task context (``!in_task()``), and
  ``smp_call_function_many`` with preemption enabled (lockdep). The call is made all the same.

Model choices (one event loop, fact 3 of the semantics: another CPU is at an await point):

* The IPI is delivered when it is sent, so remote calls have run when the call returns, for
  ``wait=0`` too. A test must not assert an order between the local and the remote runs.
* While the caller sends and waits, its CPU runs the caller: an IPI sent back to that CPU by a
  remote ``func`` interrupts the caller (and waits if the caller has interrupts off).
* A remote target whose interrupts are off can only exist when that CPU's code is further down
  this call stack (it raised an interrupt or sent an IPI that got us here): it cannot resume,
  nor take the IPI, before this call returns. ``wait=0`` leaves the entry queued (it runs when
  that CPU enables interrupts, as in the kernel). ``wait=1`` could never finish: both CPUs wait
  for each other with interrupts off, the deadlock the WARNs guard against. The model takes
  the entry back, reports it (a ``kdefer:`` line with a call trace) and raises
  :class:`~kdefer_async.KernelBug` instead of hanging.
* Not modelled: the per-CPU ``csd`` an asynchronous call reuses (a second asynchronous call
  waits for the previous one to start; with IPIs delivered at once it always has, except in
  the case above), idle CPUs that poll instead of taking the IPI (every send here is an IPI),
  and ``CONFIG_CSD_LOCK_WAIT_DEBUG``.

Guarantees:
    * test_single_remote_runs_in_hardirq_on_target: ``func`` runs once, on the target, in
      hardirq context, before the call returns.
    * test_single_local_runs_irqs_off_not_hardirq: on the caller's CPU it runs with interrupts
      disabled, in task context.
    * test_sync_before_async_in_one_ipi: one IPI runs the waited-for entries first.
    * test_order_of_calls_to_one_target: calls to one CPU run in the order made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._check import bad_type, check_callback, check_int, describe, type_name
from ._consts import (
    CALL_FUNCTION_VECTOR,
    ENXIO,
    HARDIRQ_MASK,
    NMI_MASK,
    PREEMPT_OFFSET,
    SOFTIRQ_OFFSET,
)
from ._context import TaskStruct, _cur
from ._exceptions import KernelBug
from ._hardirq import deliver_irq
from ._irq_work import IrqWork, irq_work_single
from ._printk import report_lines, symbol_name, warn_once
from ._softirq import panic_in_interrupt, run_atomic_result
from ._trace import CSD_FUNCTION_ENTRY, CSD_FUNCTION_EXIT, CSD_QUEUE_CPU, emit, trace_ipi_send

if TYPE_CHECKING:
    from ._cpu import CPU
    from ._kernel import Kernel

__all__ = [
    "call_function_interrupt",
    "on_each_cpu",
    "on_each_cpu_cond",
    "on_each_cpu_mask",
    "queue_remote",
    "smp_call_function",
    "smp_call_function_many",
    "smp_call_function_single",
]


class _Csd:
    """``call_single_data``: one call of ``func(info)`` queued for one CPU."""

    __slots__ = ("done", "func", "info", "sync")

    def __init__(self, func: Callable[[Any], object], info: Any, sync: bool) -> None:
        self.func = func  # I
        self.info = info  # I
        self.sync = sync  # I: the caller waits (CSD_TYPE_SYNC)
        self.done = False  # A: func has returned (sync) or started (async)


# -- argument checks ----------------------------------------------------------------------------


def _check_func(func: object, name: str) -> None:
    check_callback(
        func,
        name,
        "func",
        shape="func(info)",
        nargs=1,
        kind="atomic",
        what="a cross-CPU function",
    )


def _check_wait(wait: object, name: str) -> bool:
    if isinstance(wait, int):  # bool included: C's int, Python's True/False
        return bool(wait)
    raise bad_type(name, "wait", "an int or a bool", wait)


def _check_mask(mask: object, name: str) -> list[int]:
    """The CPU numbers of *mask* (an iterable of ints >= 0), checked before anything is done."""
    if isinstance(mask, (str, bytes)):
        raise bad_type(name, "mask", "an iterable of CPU numbers (ints)", mask)
    try:
        items: list[object] = list(mask)  # type: ignore[call-overload]
    except TypeError:
        raise bad_type(name, "mask", "an iterable of CPU numbers (ints)", mask) from None
    cpus: list[int] = []
    for cpu in items:
        if type(cpu) is not int and (isinstance(cpu, bool) or not isinstance(cpu, int)):
            raise TypeError(
                f"{name}() expects an iterable of CPU numbers (ints) for 'mask', got "
                f"{type_name(cpu)} {describe(cpu)} in it"
            )
        if cpu < 0:
            raise ValueError(
                f"{name}() expects an iterable of CPU numbers (ints >= 0) for 'mask', got "
                f"{cpu} in it"
            )
        cpus.append(int(cpu))
    return cpus


def _online(cpus: list[int], nr_cpus: int) -> list[int]:
    """The online CPUs of a checked mask, ascending, without repeats (others are skipped)."""
    return sorted({cpu for cpu in cpus if cpu < nr_cpus})


def _check_cond(cond_func: object, name: str) -> None:
    check_callback(
        cond_func,
        name,
        "cond_func",
        shape="cond_func(cpu, info)",
        nargs=2,
        kind="atomic",
        what="a cross-CPU condition",
    )


# -- the target's side ----------------------------------------------------------------------------


def _call(task: TaskStruct, func: Callable[[Any], object], info: Any, csd: _Csd) -> None:
    """``func(info)`` in the IPI handler (``csd_do_func``): an exception there is a panic."""
    kernel = task.kernel
    if kernel._trace_on:
        emit(kernel, task, CSD_FUNCTION_ENTRY, func, csd)
    try:
        result = func(info)
    except Exception as exc:
        panic_in_interrupt(task, exc, f"smp_call_function {symbol_name(func)}")
        raise
    if kernel._trace_on:
        emit(kernel, task, CSD_FUNCTION_EXIT, func, csd)
    if result is not None:
        run_atomic_result(task, result, func)


def call_function_interrupt(cpu: CPU, task: TaskStruct) -> None:
    """
    The CALL_FUNCTION IPI's handler (``__flush_smp_call_function_queue``), in hardirq context
    on *cpu*, borrowing *task*: take the queue whole; run its synchronous entries, then the
    asynchronous ones and the irq_work items, each group in queueing order.
    """
    entries = cpu.call_single_queue
    if not entries:
        return
    cpu.call_single_queue = deque()
    rest: list[Any] = []
    for entry in entries:
        if type(entry) is _Csd and entry.sync:
            _call(task, entry.func, entry.info, entry)
            entry.done = True  # csd_unlock(): the caller stops waiting
        else:
            rest.append(entry)
    for entry in rest:
        if type(entry) is _Csd:
            entry.done = True  # an asynchronous csd is unlocked before its function runs
            _call(task, entry.func, entry.info, entry)
        else:
            irq_work_single(entry, task)


# -- the caller's side ----------------------------------------------------------------------------


def _enqueue(kernel: Kernel, nr: int, entry: _Csd | IrqWork) -> bool:
    """Put *entry* on CPU *nr*'s queue; True if the queue was empty (an IPI is due)."""
    queue = kernel.cpus[nr].call_single_queue
    first = not queue
    queue.append(entry)
    return first


def _send_ipis(task: TaskStruct, targets: list[int], callsite: object) -> None:
    """Send the CALL_FUNCTION IPI to each of *targets*, the caller's CPU running *task*
    (*callsite*: the function that sends them, for the ``ipi`` tracepoints)."""
    kernel = task.kernel
    if kernel._trace_on:
        trace_ipi_send(kernel, task, targets, callsite)
    cpu = kernel.cpus[task.cpu]
    saved = cpu.curr
    cpu.curr = task  # the caller spins here: what interrupts this CPU now interrupts it
    try:
        for nr in targets:
            deliver_irq(kernel, task, CALL_FUNCTION_VECTOR, nr)
    finally:
        cpu.curr = saved


def queue_remote(task: TaskStruct, nr: int, work: IrqWork) -> None:
    """``irq_work_queue_on`` for another CPU: queue claimed *work* there, IPI if first."""
    kernel = task.kernel
    if kernel._trace_on:
        emit(kernel, task, CSD_QUEUE_CPU, nr, queue_remote, work.func, work)
    if _enqueue(kernel, nr, work):
        _send_ipis(task, [nr], queue_remote)


def _wait(task: TaskStruct, name: str, pending: list[tuple[int, _Csd]]) -> None:
    """``csd_lock_wait`` on each: with IPIs delivered at once, one not done never will be."""
    for nr, csd in pending:
        if csd.done:
            continue
        target = task.kernel.cpus[nr]
        queue = target.call_single_queue
        if csd in queue:
            queue.remove(csd)  # the caller gives up: it will not run behind its back
            if not queue and CALL_FUNCTION_VECTOR in target.pending_irqs:
                target.pending_irqs.remove(CALL_FUNCTION_VECTOR)  # nothing left to send for
        report_lines(
            task,
            [
                f"kdefer: {name}(): CPU {task.cpu} waits for CPU {nr} to run "
                f"{symbol_name(csd.func)}(), but CPU {nr} has interrupts disabled further "
                "down this call stack and cannot take the IPI before this call returns: a "
                "cross-CPU call deadlock (the kernel would spin here forever)"
            ],
            level=0,
        )
        raise KernelBug(
            f"{name}(): CPU {task.cpu} would wait forever for CPU {nr}, whose interrupts "
            f"are disabled further down this call stack ({task.comm}/{task.pid}); see dmesg"
        )


def _run_local(
    task: TaskStruct, func: Callable[[Any], object], info: Any, csd: _Csd | None
) -> None:
    """The caller's own CPU: ``func(info)`` right here, local interrupts disabled (*csd*: the
    one ``csd_do_func`` traces, ``None`` for the local call of the mask variants)."""
    flags = task.irqs_off
    task.irqs_off = flags + 1  # local_irq_save()
    kernel = task.kernel
    if kernel._trace_on:
        emit(kernel, task, CSD_FUNCTION_ENTRY, func, csd)
    try:
        result = func(info)
        if kernel._trace_on:
            emit(kernel, task, CSD_FUNCTION_EXIT, func, csd)
    finally:
        task.irqs_off = flags
    if not flags and not task.preempt_count & HARDIRQ_MASK:
        task.kernel._deliver_pending_irqs(task)  # local_irq_restore(): what arrived meanwhile
    if result is not None:
        run_atomic_result(task, result, func)


def _irqs_disabled(task: TaskStruct) -> bool:
    return bool(task.irqs_off or task.preempt_count & HARDIRQ_MASK)


def _in_task(task: TaskStruct) -> bool:
    return not task.preempt_count & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET)


def smp_call_function_single(
    cpu: int, func: Callable[[Any], object], info: Any, wait: int | bool
) -> int:
    """
    Run ``func(info)`` on CPU *cpu*; with *wait*, return once it has returned.

    On another CPU it runs in that CPU's CALL_FUNCTION IPI handler: hardirq context, after the
    calls queued there before it (those someone waits for first). On the caller's own CPU it
    runs at once with local interrupts disabled, in the caller's (task) context.

    Called with local interrupts disabled, or outside task context (a handler, a softirq), it
    WARNs once (each case) and makes the call anyway: two CPUs doing that to each other
    deadlock in the kernel. A wait that cannot end, because the target's interrupts are held
    off further down this call stack, is reported and raised instead of hanging.

    Returns:
        0; ``-ENXIO`` if *cpu* is not an online CPU (then *func* is not called).

    Raises:
        TypeError: *cpu* is not an int; *func* is not callable as ``func(info)`` or is
            ``async def``; *wait* is not an int or a bool.
        KernelBug: *wait* and the target cannot take the IPI before this call returns.

    Context:
        Task context, interrupts enabled; never sleeps (the caller spins).

    .. versionadded:: 0.2
    """
    name = "smp_call_function_single"
    check_int(cpu, name, "cpu")
    _check_func(func, name)
    sync = _check_wait(wait, name)
    task = _cur()
    kernel = task.kernel
    task.preempt_count += PREEMPT_OFFSET  # get_cpu()
    try:
        if _irqs_disabled(task):
            warn_once((name, "irqs disabled"))  # WARN_ON_ONCE(cpu_online && irqs_disabled())
        if not _in_task(task):
            warn_once((name, "!in_task"))  # WARN_ON_ONCE(!in_task())
        if cpu == task.cpu:
            # generic_exec_single() traces its csd (one on the stack) for a local call too
            _run_local(task, func, info, _Csd(func, info, sync) if kernel._trace_on else None)
            return 0
        if not 0 <= cpu < kernel.nr_cpus:
            return -ENXIO
        csd = _Csd(func, info, sync)
        if kernel._trace_on:
            emit(kernel, task, CSD_QUEUE_CPU, cpu, smp_call_function_single, func, csd)
        if _enqueue(kernel, cpu, csd):
            _send_ipis(task, [cpu], smp_call_function_single)
        if sync:
            _wait(task, name, [(cpu, csd)])
        return 0
    finally:
        task.preempt_count -= PREEMPT_OFFSET  # put_cpu()


def _many_cond(
    task: TaskStruct,
    cpus: list[int],
    func: Callable[[Any], object],
    info: Any,
    sync: bool,
    run_local: bool,
    cond_func: Callable[[int, Any], object] | None,
    name: str,
) -> None:
    """``smp_call_function_many_cond``: *cpus* are online, ascending; preemption is off."""
    if _irqs_disabled(task):
        warn_once(("smp_call_function_many_cond", "irqs disabled"))  # lockdep assertion
    if not _in_task(task):
        warn_once(("smp_call_function_many_cond", "!in_task"))  # WARN_ON_ONCE(!in_task())
    this = task.cpu
    local = run_local and this in cpus and (cond_func is None or bool(cond_func(this, info)))
    kernel = task.kernel
    queued: list[tuple[int, _Csd]] = []
    ipi: list[int] = []
    for nr in cpus:
        if nr == this or (cond_func is not None and not cond_func(nr, info)):
            continue
        csd = _Csd(func, info, sync)
        queued.append((nr, csd))
        if kernel._trace_on:
            emit(kernel, task, CSD_QUEUE_CPU, nr, _many_cond, func, csd)
        if _enqueue(kernel, nr, csd):
            ipi.append(nr)
    if ipi:
        _send_ipis(task, ipi, _many_cond)
    if local:
        _run_local(task, func, info, None)
    if sync:
        _wait(task, name, queued)


def smp_call_function_many(
    mask: Iterable[int], func: Callable[[Any], object], info: Any, wait: int | bool
) -> None:
    """
    Run ``func(info)`` on the online CPUs of *mask* except the caller's, in their IPI
    handlers (hardirq context); with *wait*, return once every one has returned.

    The caller must have preemption disabled (``get_cpu()``, ``preempt_disable()``): without,
    lockdep WARNs once. CPU numbers of *mask* that are not online (>= ``nr_cpus``) are skipped.

    Raises:
        TypeError: *mask* is not an iterable of ints; *func* is not callable as
            ``func(info)`` or is ``async def``; *wait* is not an int or a bool.
        ValueError: *mask* holds a negative number.
        KernelBug: as :func:`smp_call_function_single`.

    Context:
        Task context, interrupts enabled, preemption disabled; never sleeps.

    .. versionadded:: 0.2
    """
    name = "smp_call_function_many"
    cpus = _check_mask(mask, name)
    _check_func(func, name)
    sync = _check_wait(wait, name)
    task = _cur()
    cpus = _online(cpus, task.kernel.nr_cpus)
    if not task.preempt_count and not task.irqs_off:
        warn_once((name, "preemptible"))  # lockdep_assert_preemption_disabled()
    _many_cond(task, cpus, func, info, sync, False, None, name)


def smp_call_function(func: Callable[[Any], object], info: Any, wait: int | bool) -> None:
    """
    Run ``func(info)`` on every other online CPU, in their IPI handlers (hardirq context);
    with *wait*, return once every one has returned.

    Raises:
        TypeError: *func* is not callable as ``func(info)`` or is ``async def``; *wait* is
            not an int or a bool.
        KernelBug: as :func:`smp_call_function_single`.

    Context:
        Task context, interrupts enabled; never sleeps.

    .. versionadded:: 0.2
    """
    name = "smp_call_function"
    _check_func(func, name)
    sync = _check_wait(wait, name)
    task = _cur()
    task.preempt_count += PREEMPT_OFFSET  # preempt_disable()
    try:
        _many_cond(task, list(range(task.kernel.nr_cpus)), func, info, sync, False, None, name)
    finally:
        task.preempt_count -= PREEMPT_OFFSET


def _on_each_cpu(
    name: str,
    mask: list[int] | None,
    cond_func: Callable[[int, Any], object] | None,
    func: Callable[[Any], object],
    info: Any,
    wait: object,
    task: TaskStruct,
) -> None:
    """``on_each_cpu_cond_mask`` (arguments checked): preemption off around it all."""
    sync = bool(wait)
    cpus = list(range(task.kernel.nr_cpus)) if mask is None else mask
    task.preempt_count += PREEMPT_OFFSET
    try:
        _many_cond(task, cpus, func, info, sync, True, cond_func, name)
    finally:
        task.preempt_count -= PREEMPT_OFFSET


def on_each_cpu(func: Callable[[Any], object], info: Any, wait: int | bool) -> None:
    """
    Run ``func(info)`` on every online CPU: the others in their IPI handlers (hardirq
    context), this one directly with local interrupts disabled (not hardirq); with *wait*,
    return once every one has returned.

    Raises:
        TypeError: *func* is not callable as ``func(info)`` or is ``async def``; *wait* is
            not an int or a bool.
        KernelBug: as :func:`smp_call_function_single`.

    Context:
        Task context, interrupts enabled; never sleeps.

    .. versionadded:: 0.2
    """
    _check_func(func, "on_each_cpu")
    _check_wait(wait, "on_each_cpu")
    _on_each_cpu("on_each_cpu", None, None, func, info, wait, _cur())


def on_each_cpu_mask(
    mask: Iterable[int], func: Callable[[Any], object], info: Any, wait: int | bool
) -> None:
    """
    Run ``func(info)`` on the online CPUs of *mask*, this one included if it is in *mask*
    (directly, local interrupts disabled); others in their IPI handlers. CPU numbers that are
    not online are skipped.

    Raises:
        TypeError: *mask* is not an iterable of ints; *func* is not callable as
            ``func(info)`` or is ``async def``; *wait* is not an int or a bool.
        ValueError: *mask* holds a negative number.
        KernelBug: as :func:`smp_call_function_single`.

    Context:
        Task context, interrupts enabled; never sleeps.

    .. versionadded:: 0.2
    """
    cpus = _check_mask(mask, "on_each_cpu_mask")
    _check_func(func, "on_each_cpu_mask")
    _check_wait(wait, "on_each_cpu_mask")
    task = _cur()
    _on_each_cpu(
        "on_each_cpu_mask", _online(cpus, task.kernel.nr_cpus), None, func, info, wait, task
    )


def on_each_cpu_cond(
    cond_func: Callable[[int, Any], object],
    func: Callable[[Any], object],
    info: Any,
    wait: int | bool,
) -> None:
    """
    Run ``func(info)`` on every online CPU for which ``cond_func(cpu, info)`` is true, as
    :func:`on_each_cpu`. *cond_func* is called once per online CPU (this one first), in the
    caller's context with preemption disabled, before any IPI is sent.

    Raises:
        TypeError: *cond_func* is not callable as ``cond_func(cpu, info)`` or is
            ``async def``; *func* is not callable as ``func(info)`` or is ``async def``;
            *wait* is not an int or a bool.
        KernelBug: as :func:`smp_call_function_single`.

    Context:
        Task context, interrupts enabled; never sleeps.

    .. versionadded:: 0.2
    """
    _check_cond(cond_func, "on_each_cpu_cond")
    _check_func(func, "on_each_cpu_cond")
    _check_wait(wait, "on_each_cpu_cond")
    _on_each_cpu("on_each_cpu_cond", None, cond_func, func, info, wait, _cur())
