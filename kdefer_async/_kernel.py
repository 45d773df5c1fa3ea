"""The simulated kernel: boot, per-CPU task groups, the clock, panic, shutdown.

Field rules:

* ``I``: set in ``__init__`` or at boot, read-only after.
* ``A``: changed only in synchronous code, atomic with respect to the loop's other tasks.

Kernel invariants modelled: every CPU is an anyio task group holding that CPU's kthreads
(``ksoftirqd/N``, its tick); everything else (the softirq table, interrupt lines, the log) is
per kernel, so two kernels in sequence share nothing. ``jiffies`` is derived from the event
loop's clock (``INITIAL_JIFFIES`` at boot), so it is virtual under a virtual clock. A panic stops
everything and leaves ``async with Kernel()`` as :class:`KernelPanic`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from ._check import (
    bad_type,
    bad_value,
    check_bool,
    check_callback,
    check_int,
    check_number,
    check_str,
)
from ._consts import (
    CALL_FUNCTION_VECTOR,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOENT,
    HARDIRQ_MASK,
    HARDIRQ_OFFSET,
    HI_SOFTIRQ,
    HRTIMER_SOFTIRQ,
    IRQ_WORK_VECTOR,
    MAX_SOFTIRQ_TIME_MS,
    NMI_VECTOR,
    NR_SOFTIRQS,
    RCU_SOFTIRQ,
    TASK_UNINTERRUPTIBLE,
    TASKLET_SOFTIRQ,
    TIMER_SOFTIRQ,
)
from ._context import TaskStruct, _current, check_loop_thread, user_task
from ._cpu import CPU
from ._exceptions import KernelPanic, ModuleLoadError, NoKernelError
from ._hardirq import (
    IrqAction,
    IrqDesc,
    ThreadsafeIrqs,
    check_cpu_arg,
    check_irq,
    deliver_irq,
    deliver_threadsafe_irqs,
    do_irq,
    drop_threadsafe_irqs,
    effective_cpu,
    irq_entry,
    proc_interrupts,
    raise_irq_threadsafe,
    threadsafe_boot,
)
from ._hrtimer import hrtimer_run_softirq
from ._lighttask import LightTasks, light_tasks
from ._module import ModuleDef, load_definition
from ._park import Parker, make_parker
from ._printk import (
    UTS_RELEASE,
    Oops,
    format_record,
    log_text,
    record_oops,
    report_lines,
    taint_string,
)
from ._rcu import rcu_core, rcu_expedite
from ._shutdown import ShutdownReport, begin_abort, exit_reason, finish, sweep
from ._softirq import VIA_DO_SOFTIRQ, handle_softirqs, ksoftirqd, proc_softirqs
from ._tasklet import tasklet_action, tasklet_hi_action
from ._tick import ktime_reader, tick_task
from ._time import hz_msecs_to_jiffies, initial_jiffies
from ._timer import TimerList, _enqueue, _Wheel, run_timer_softirq
from ._trace import Tracing

__all__ = ["Kernel", "run"]

T = TypeVar("T")
_VALID_POLICIES = ("raise", "report")
#: The most CPUs a Kernel has (``NR_CPUS`` of this model), and the highest HZ it takes.
_MAX_CPUS = 1024
_MAX_HZ = 10_000
ENOEXEC = 8
#: license_is_gpl_compatible() in include/linux/license.h
_GPL_COMPATIBLE = frozenset(
    {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"}
)


def _loop_clock() -> Callable[[], float]:
    """The running backend's clock, read directly (``anyio.current_time()`` costs ~1 us)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if type(loop).time is asyncio.BaseEventLoop.time:
                # the stdlib loop's clock *is* time.monotonic(): call it without the method
                return time.monotonic
            return loop.time  # type: ignore[no-any-return]
    trio = sys.modules.get("trio")
    if trio is not None:
        return trio.lowlevel.current_clock().current_time  # type: ignore[no-any-return]
    return anyio.current_time


class Kernel:
    """
    A simulated SMP Linux kernel inside the running event loop.

    ``async with Kernel(nr_cpus=4, hz=250) as k:`` boots it (one anyio task group per CPU,
    each holding ``ksoftirqd/N`` and the CPU's tick) and makes every kernel API usable in the
    block; leaving the block shuts it down.

    Args:
        nr_cpus: Number of CPUs (1 to 1024).
        hz: ``CONFIG_HZ``: jiffies per second (100, 250, 300 and 1000 are the kernel's choices).
        panic_on_oops: Turn every oops (an exception in a work function or kthread) into a panic.
        threadirqs: Forced interrupt threading (the ``threadirqs`` boot option): every
            interrupt handler not flagged ``IRQF_NO_THREAD``, ``IRQF_PERCPU`` or
            ``IRQF_ONESHOT`` runs in its irq thread (see ``request_threaded_irq``), and
            ``irq_exit`` wakes ksoftirqd instead of running softirqs itself.
        sleep_in_atomic: ``"raise"`` (default): after reporting a sleep in atomic context,
            raise :class:`KernelBug` in the offending code; ``"report"``: only report.
        hung_task_timeout_secs: The hung-task detector's threshold (120; 0 disables it).
        dyndbg: Record ``pr_debug()`` messages (the kernel compiles them out by default).
        console: A callable receiving each log line as it is printed (``line, level``).
        shutdown_timeout: How long leaving the block waits for queued work items to finish
            (seconds of the loop's clock, default 10); items still running then are named in
            dmesg and cancelled. ``None`` waits forever, as the kernel would.
        wq_watchdog_thresh: The workqueue watchdog's threshold (``workqueue.watchdog_thresh``,
            30 s): a pool with work waiting and no progress for longer is reported as
            ``BUG: workqueue lockup``. 0 disables it.
        wq_cpu_intensive_thresh_us: ``workqueue.cpu_intensive_thresh_us`` (10 ms): a work
            item that runs this long without sleeping stops holding back its per-CPU pool.
        prove_locking: ``CONFIG_PROVE_LOCKING`` (default on): lockdep's reports on every lock
            (``possible recursive locking detected``, ``inconsistent lock state``, ``bad
            unlock balance detected!``, ``lockdep_assert_held()``). Off, only the
            CONFIG_DEBUG_SPINLOCK / DEBUG_RWSEMS reports remain (``BUG: spinlock
            recursion``...), and an uncontended lock and unlock costs less. A self-deadlock
            on a spinning lock raises :class:`KernelBug` either way.
        watchdog_thresh: The lockup watchdog's threshold (``kernel.watchdog_thresh``, 10 s,
            at most 60): a CPU busy-waiting in non-preemptible context for more than twice
            as long is reported as ``BUG: soft lockup``. 0 disables it.
        debug_preempt: ``CONFIG_DEBUG_PREEMPT``: ``smp_processor_id()`` in preemptible code
            reports ``BUG: using smp_processor_id() in preemptible``, and an unbalanced
            ``preempt_enable()`` warns. Off by default.
        trace: Events to trace from boot (the ``trace_event=`` boot option): ``True`` for
            every event, or a spec as :meth:`Tracing.set_event` takes, several separated by
            commas (``"irq,timer:timer_start"``). Off (``False``) by default.

    Attributes:
        nr_cpus: The number of CPUs.
        hz: Jiffies per second.
        oopses: Every oops so far (:class:`~kdefer_async.Oops`).
        tracing: The tracefs of this kernel (:class:`~kdefer_async.Tracing`).
        shutdown_report: Once the kernel has begun to shut down, a
            :class:`~kdefer_async.ShutdownReport`: every deferred item that did not run to
            completion (each also named in dmesg), and how the kernel was left.

    Leaving the block normally runs what is queued (see *shutdown_timeout*). Leaving it
    by an exception or a cancellation (a timeout, Ctrl+C, a failing sibling task), or by a
    panic, aborts at once: nothing queued starts any more, running work functions are cancelled
    at their next ``await``, and every item that does not run is named in dmesg and counted in
    :attr:`shutdown_report`; the exception that ended the block propagates unchanged.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        nr_cpus: int = 4,
        hz: int = 250,
        panic_on_oops: bool = False,
        *,
        threadirqs: bool = False,
        sleep_in_atomic: Literal["raise", "report"] = "raise",
        hung_task_timeout_secs: int = 120,
        dyndbg: bool = False,
        console: Callable[[str, int], object] | None = None,
        shutdown_timeout: float | None = 10.0,
        wq_watchdog_thresh: float = 30,
        wq_cpu_intensive_thresh_us: int = 10_000,
        prove_locking: bool = True,
        watchdog_thresh: int = 10,
        debug_preempt: bool = False,
        trace: bool | str = False,
    ) -> None:
        _check_options(
            nr_cpus,
            hz,
            panic_on_oops,
            threadirqs,
            sleep_in_atomic,
            hung_task_timeout_secs,
            dyndbg,
            console,
            shutdown_timeout,
            wq_watchdog_thresh,
            wq_cpu_intensive_thresh_us,
            watchdog_thresh,
            debug_preempt,
        )
        check_bool(prove_locking, "Kernel", "prove_locking")
        #: A: true only while tracing is on and an event is enabled: the one test each
        #: tracepoint site makes (see _trace.py)
        self._trace_on = False
        #: I: the tracefs (``/sys/kernel/tracing``) of this kernel
        self.tracing = Tracing(self)
        self.tracing._boot_events(trace)
        #: I: CONFIG_PROVE_LOCKING: lockdep's reports (see the class docstring)
        self.prove_locking = prove_locking
        self.nr_cpus = nr_cpus  # I
        self.hz = hz  # I
        self.panic_on_oops = panic_on_oops  # I
        self.threadirqs = threadirqs  # I
        self.sleep_in_atomic = sleep_in_atomic  # I
        self.hung_task_timeout_secs = hung_task_timeout_secs  # I
        self.dyndbg = dyndbg  # I
        #: I: how long leaving the kernel waits for queued work before cancelling it
        self.shutdown_timeout = shutdown_timeout
        #: I: ``workqueue.watchdog_thresh``: seconds without progress that make a lockup
        self.wq_watchdog_thresh = wq_watchdog_thresh
        #: I: ``workqueue.cpu_intensive_thresh_us``: running this long without sleeping marks
        #: a work item CPU-intensive
        self.wq_cpu_intensive_thresh_us = wq_cpu_intensive_thresh_us
        #: I: ``kernel.watchdog_thresh``: a soft lockup is twice this long (0: no watchdog)
        self.watchdog_thresh = watchdog_thresh
        #: I: ``CONFIG_DEBUG_PREEMPT``: the preemptible-use and preempt-count checks
        self.debug_preempt = debug_preempt
        self._softlockup: Any = None  # W: each CPU's soft-lockup state (_delay.py)
        self._printk_ratelimit: Any = None  # A: printk_ratelimit()'s state (_preempt.py)
        self.oopses: list[Oops] = []  # A
        self.initial_jiffies = initial_jiffies(hz)  # I
        #: ``MAX_SOFTIRQ_TIME``: 2 ms in jiffies (1 at HZ <= 500).
        self.max_softirq_time = hz_msecs_to_jiffies(hz, MAX_SOFTIRQ_TIME_MS)  # I
        self._wheel = _Wheel(hz)  # I
        self._log: list[tuple[float, int, str]] = []  # A
        self._console = console  # I
        self._taint: set[str] = set()  # A
        self._warned_once: set[object] = set()  # A
        self._var_waiters: dict[int, Any] = {}  # A: wait_var_event queues by id(var)
        self._kthread_starts: dict[TaskStruct, Callable[[], None]] = {}  # A
        self._kthread_not_run: set[TaskStruct] = set()  # A
        self._tasks: dict[int, TaskStruct] = {}  # A: live kthreads by pid
        self._might_sleep_prev = 0  # A
        self._next_pid = 1  # A
        self._clock: Callable[[], float] = anyio.current_time  # I after boot
        #: The 64-bit jiffies counter now (a closure set at boot: it is on every hot path).
        self.get_jiffies: Callable[[], int] = self._jiffies_slow
        #: ``ktime_get()`` now: nanoseconds since boot (a closure set at boot).
        self.get_ktime: Callable[[], int] = lambda: 0
        #: Which event-loop task runs now (set at boot for the running backend).
        self._task_ident: Callable[[], object] = lambda: anyio.get_current_task().id
        self._parker: Parker = Parker(_no_park, _no_unpark)  # the real one is made at boot
        self._epoch = 0.0  # I after boot
        self._booted = False  # A
        self._halted = False  # A
        #: A: leaving abnormally (exception, cancellation, panic, shutdown timeout): nothing
        #: queued starts any more (see _shutdown.py)
        self._aborting = False
        #: A: what did not run to completion, once shutdown has begun
        self.shutdown_report: ShutdownReport | None = None
        self._panic: KernelPanic | None = None  # A
        #: I after boot: the task group holding every kernel task (CPUs, kworkers, kthreads),
        #: inside a shielded scope: a cancellation around ``async with`` reaches the body, not
        #: the kernel's tasks, which the kernel then cancels itself, in order (_shutdown.py)
        self._root: anyio.abc.TaskGroup | None = None
        #: I after boot: the host's task group around the body, holding the kernel's main task
        self._outer: anyio.abc.TaskGroup | None = None
        self._light: LightTasks | None = None  # I after boot: on asyncio only
        self._worker_creation_blocked = False  # A: see block_worker_creation()
        self._token: Any = None  # I after boot
        self._hung: dict[TaskStruct, None] = {}  # A: tasks in uninterruptible sleep
        self._hung_timer: TimerList | None = None  # A
        self._modules: dict[str, ModuleDef] = {}  # A: loaded modules by name
        self._slab: dict[int, Any] = {}  # A: kmalloc'd objects by id
        self._freed: dict[int, Any] = {}  # A: freed objects that could not be poisoned
        self.softirq_vec: list[Callable[[], object] | None] = [None] * NR_SOFTIRQS  # A
        self.irq_actions: dict[int, list[IrqAction]] = {}  # A
        self.irq_names: dict[int, str] = {}  # A
        self.irqs_unhandled: dict[int, int] = {}  # A: desc->irqs_unhandled
        self.irqs_last_unhandled: dict[int, int] = {}  # A: jiffies of the last unhandled one
        self.irq_count: dict[int, int] = {}  # A: desc->irq_count (wraps at 100,000)
        self.irqs_disabled_lines: set[int] = set()  # A: lines disabled by "nobody cared"
        #: A: the state of each line requested (or disabled) so far (see _hardirq.py)
        self.irq_descs: dict[int, IrqDesc] = {}
        self.bad_irq_reports = 100  # A: bogus irq return values still to be reported
        #: A: each line's effective affinity: the CPU its device interrupts go to
        self.irq_affinity: dict[int, int] = {}
        #: I after boot: the OS thread of the event loop this kernel runs on
        self._loop_thread: int | None = None
        #: I after boot: the event loop it runs on (``_context.loop_key()``)
        self._loop_key: object = None
        #: A: tasks from outside the kernel's context that entered it (``_context.attach``)
        self._user_tasks: weakref.WeakSet[TaskStruct] = weakref.WeakSet()
        self._next_user_cpu = 0  # A: the CPU the next such task starts on
        #: interrupts raised from other OS threads, not delivered yet (see _hardirq.py)
        self._ts_irqs = ThreadsafeIrqs()
        self.loc_interrupts = [0] * nr_cpus  # A
        #: Hook for BH workqueues: ``bh_pools(cpu, highpri)`` runs before the tasklets.
        self.bh_pools: Callable[[CPU, bool], None] | None = None  # I
        self.cpus: list[CPU] = []  # I after boot
        self.init_task: TaskStruct | None = None  # I after boot

    # -- clock --------------------------------------------------------------------------------

    def _jiffies_slow(self) -> int:
        return self.initial_jiffies + int((self._clock() - self._epoch) * self.hz + 1e-6)

    @property
    def jiffies(self) -> int:
        """``jiffies`` now (``INITIAL_JIFFIES`` at boot)."""
        return self.get_jiffies()

    def jiffies_to_time(self, j: int) -> float:
        """
        The event-loop time at which jiffy *j* begins.

        Raises:
            TypeError: *j* is not an int.

        .. versionadded:: 0.1
        """
        try:
            return self._epoch + (j - self.initial_jiffies) / self.hz
        except TypeError:
            check_int(j, "Kernel.jiffies_to_time", "j")
            raise

    def uptime(self) -> float:
        """Seconds since boot, on the event loop's clock (what dmesg timestamps show)."""
        if not self._booted:
            return 0.0
        return max(0.0, self._clock() - self._epoch)

    # -- lifecycle ----------------------------------------------------------------------------

    def _alloc_pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    async def __aenter__(self) -> Kernel:
        if self._booted:
            raise RuntimeError("this Kernel has already been booted; create a new one")
        outer = _current.get()
        if outer is not None and not outer.kernel._halted:
            raise RuntimeError("a Kernel is already running in this context; kernels do not nest")
        self._clock = _loop_clock()
        self._epoch = self._clock()
        self.get_jiffies = _jiffies_reader(self._clock, self._epoch, self.hz, self.initial_jiffies)
        self.get_ktime = ktime_reader(self._clock, self._epoch)
        self.tracing._booted(self._clock, self._epoch)
        self._booted = True
        self.softirq_vec[HI_SOFTIRQ] = tasklet_hi_action
        self.softirq_vec[TIMER_SOFTIRQ] = run_timer_softirq
        self.softirq_vec[HRTIMER_SOFTIRQ] = hrtimer_run_softirq
        self.softirq_vec[TASKLET_SOFTIRQ] = tasklet_action
        self.softirq_vec[RCU_SOFTIRQ] = rcu_core
        self.init_task = TaskStruct(self, "init", 1, 0, kthread=False)
        self._task_ident = _task_identity()
        self._parker = make_parker()
        self.init_task.owner = self._task_ident()
        self._token = _current.set(self.init_task)
        self.cpus = [CPU(self, n) for n in range(self.nr_cpus)]
        for cpu in self.cpus:
            cpu.std_base.clk = cpu.def_base.clk = self.initial_jiffies
        log_text(self, 5, f"Linux version {UTS_RELEASE} (kdefer_async) #1 SMP PREEMPT_DYNAMIC")
        log_text(self, 6, f"smp: Bringing up secondary CPUs ... HZ={self.hz}")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._outer = group
        try:
            ready = anyio.Event()
            group.start_soon(self._kernel_main, ready, name="kernel")
            await ready.wait()
            assert self._root is not None
            self._light = light_tasks(self)
            if self._light is not None:
                self._root.start_soon(self._light.reap, name="kworker reaper")
            for cpu in self.cpus:
                await self._root.start(self._cpu_main, cpu, name=f"cpu{cpu.nr}")
        except BaseException as exc:
            # boot itself was cancelled (or failed): nothing was handed to the kernel yet
            self.shutdown_report = ShutdownReport(exit_reason(exc, self)[0])
            self._halted = True
            self.tracing._halt()
            if self._root is not None:
                self._root.cancel_scope.cancel()
            group.cancel_scope.cancel()
            try:
                await group.__aexit__(None, None, None)
            finally:
                finish(self)
                log_text(self, 5, "reboot: System halted")
                _current.reset(self._token)
            raise
        threadsafe_boot(self)  # from here on other threads may raise interrupts
        n = self.nr_cpus
        log_text(self, 6, f"smp: Brought up 1 node, {n} CPU{'s' if n != 1 else ''}")
        return self

    async def _kernel_main(self, ready: anyio.Event) -> None:
        """The kernel's own task: holds the group of every kernel task, shielded from
        cancellations around the kernel (the kernel cancels that group itself).

        Started with ``start_soon``, not ``start``: a boot cancelled while waiting in
        ``start`` would wait for this shielded task forever.
        """
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                self._root = tg
                if self._halted:
                    tg.cancel_scope.cancel()  # the boot was cancelled before this task ran
                ready.set()
                await anyio.sleep_forever()

    async def _cpu_main(self, cpu: CPU, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            async with anyio.create_task_group() as tg:
                cpu.task_group = tg
                tg.start_soon(self._guard, ksoftirqd, cpu, name=cpu.ksoftirqd.comm)
                tg.start_soon(self._guard, tick_task, cpu, name=f"tick/{cpu.nr}")
                task_status.started()
        except KernelPanic:  # pragma: no cover - tasks below catch it
            pass

    async def _guard(self, fn: Callable[[CPU], Awaitable[None]], cpu: CPU) -> None:
        try:
            await fn(cpu)
        except KernelPanic:
            return

    def _spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any, name: str) -> None:
        if self._root is None or self._halted:
            raise NoKernelError("the kernel is not running")
        self._root.start_soon(self._absorb_panic, fn, args, name=name)

    async def _absorb_panic(
        self, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]
    ) -> None:
        """Run a spawned task; the kernel's own panic ends it quietly (``async with`` raises it
        once, unwrapped), so it never reaches the task group as an ``ExceptionGroup``."""
        try:
            await fn(*args)
        except KernelPanic as exc:
            if exc is not self._panic:
                raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        root = self._root
        assert root is not None
        reason, detail = exit_reason(exc, self)
        if self.shutdown_report is None:
            self.shutdown_report = ShutdownReport(reason)
        try:
            if self._panic is not None:
                begin_abort(self, "panic", detail)
            elif exc is None:
                try:
                    await self._shutdown()
                except BaseException as err:
                    # cancelled (or failed) while shutting down: leave at once, nothing lost
                    begin_abort(self, *exit_reason(err, self))
                    raise
            else:
                begin_abort(self, reason, detail)
        except KernelPanic:
            begin_abort(self, "panic", "the kernel panicked")
        finally:
            self._halted = True
            self.tracing._halt()  # a trace_pipe reader sees the end; streams are closed
            root.cancel_scope.cancel()  # every kernel task: running work sees a cancellation
            outer = self._outer
            assert outer is not None
            try:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    # our own cancellation (a panic) must be absorbed by the scope that made it
                    await outer.__aexit__(exc_type, exc, tb)
                else:
                    await outer.__aexit__(None, None, None)
            finally:
                finish(self)
                log_text(self, 5, "reboot: System halted")
                _current.reset(self._token)
                self._fail_user_sleepers()
        if self._panic is not None:
            raise self._panic
        if self._light is not None and self._light.failed:
            raise self._light.failed[0]  # a kworker failed (not a work item: that is an oops)

    async def _shutdown(self) -> None:
        """
        Quiesce, then name what is left behind: run pending softirqs and tasklets, cancel
        armed delayed work (named), run every queued work item to completion, stop the
        rescuers; then name scheduled-but-disabled tasklets, armed timers, running kthreads.
        """
        from ._flush import workqueue_shutdown
        from ._threadirq import irq_threads_quiesce, stop_irq_threads

        for _ in range(64):
            busy = self._deliver_threadsafe_irqs() > 0  # raised by other threads: delivered
            busy = rcu_expedite(self) or busy  # the callbacks waiting for a grace period run now
            busy = self._run_pending_softirqs() or busy
            busy = await irq_threads_quiesce(self) or busy  # woken irq threads run
            if getattr(self, "_wq_state", None) is not None:
                await workqueue_shutdown(self)
                busy = self._run_pending_softirqs() or busy
            if getattr(self, "_kw_state", None) is not None:
                from ._kthread_worker import kthread_worker_shutdown

                await kthread_worker_shutdown(self)
            if not busy:
                break
            await anyio.lowlevel.checkpoint()
        stop_irq_threads(self)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()  # let stopped kthreads (rescuers) exit
        sweep(self)  # what is left: disabled tasklets, armed timers, running kthreads...

    def _run_pending_softirqs(self) -> bool:
        busy = False
        for cpu in self.cpus:
            if cpu.pending_irqs or cpu.irq_work_lazy or cpu.irq_work_raised:
                # interrupts held off when their task left with interrupts disabled, lazy
                # irq_work waiting for a tick: an IRQ_WORK interrupt on the idle task runs
                # both lists, then what is held (a cross-CPU call, a line) follows it
                busy = True
                swapper = cpu.swapper
                self._run_on(
                    cpu, functools.partial(deliver_irq, self, swapper, IRQ_WORK_VECTOR, cpu.nr)
                )
                if cpu.pending_irqs:
                    self._run_on(cpu, functools.partial(self._deliver_pending_irqs, swapper))
            if cpu.pending:
                busy = True
                self._run_on(
                    cpu, functools.partial(handle_softirqs, cpu, cpu.swapper, VIA_DO_SOFTIRQ)
                )
        return busy

    def _run_on(self, cpu: CPU, fn: Callable[[], None]) -> None:
        token = _current.set(cpu.swapper)
        try:
            fn()
        finally:
            _current.reset(token)

    # -- panic and oops -----------------------------------------------------------------------

    def panic(self, message: str, cause: BaseException | None = None) -> None:
        """
        ``panic()``: log it, stop every CPU, raise :class:`KernelPanic` here and at exit.

        A second panic raises the first one again: the machine stopped at the first.

        Raises:
            KernelPanic: always.
            TypeError: *message* is not a str; *cause* is not an exception or ``None``.
            RuntimeError: called from a thread other than the kernel's event loop's.

        .. versionadded:: 0.1
        """
        check_str(message, "Kernel.panic", "message")
        if cause is not None and not isinstance(cause, BaseException):
            raise bad_type("Kernel.panic", "cause", "an exception or None", cause)
        check_loop_thread(self, "Kernel.panic")
        if self._panic is None:
            log_text(self, 0, f"Kernel panic - not syncing: {message}")
            log_text(self, 0, f"---[ end Kernel panic - not syncing: {message} ]---")
            p = KernelPanic(message)
            p.__cause__ = cause
            self._panic = p
            if self._root is not None:
                self._root.cancel_scope.cancel()
            if self._outer is not None:
                self._outer.cancel_scope.cancel()  # the body too: `async with` raises the panic
        raise self._panic

    def _after_oops(self, exc: BaseException) -> None:
        if self.panic_on_oops:
            self.panic("Fatal exception", exc)

    def _fail_user_sleepers(self) -> None:
        """Tasks from outside the kernel asleep in it when it halts would sleep forever (no
        tick, no waker is left): each gets a :class:`NoKernelError` where it sleeps."""
        parker = self._parker
        for task in list(self._user_tasks):
            token = task._wake_event
            if token is not None:
                task._wake_event = None
                parker.fail(
                    token,
                    NoKernelError(
                        f"the kernel halted while task {task.comm}/{task.pid} slept in it"
                    ),
                )

    @contextlib.contextmanager
    def enter(self) -> Iterator[TaskStruct]:
        """
        Bind the running event-loop task to this kernel for the ``with`` block.

        A task started outside the kernel's ``async with Kernel():`` (by a web server, a queue
        consumer, another library) enters the kernel on its first kernel call when exactly
        one kernel runs on its event loop. With several kernels on one loop, say which one:
        ``with k.enter():``. Inside, the task is a user task of *k* making system calls:
        process context (never atomic), a pid of its own, ``comm`` from its name, on a CPU
        the kernel chose; it may sleep in the kernel.

        Yields:
            The task's :class:`TaskStruct` (``current()``).

        Raises:
            NoKernelError: the kernel is not running (not booted yet, halted or panicked).
            RuntimeError: called from a thread other than the kernel's event loop's.

        .. versionadded:: 0.1
        """
        if self._panic is not None or self._halted or not self._booted:
            state = (
                "panicked"
                if self._panic is not None
                else "halted"
                if self._halted
                else ("not booted yet")
            )
            raise NoKernelError(f"Kernel.enter(): this kernel is not running ({state})")
        check_loop_thread(self, "Kernel.enter")
        cur = _current.get()
        if cur is not None and cur.kernel is self and cur.owner is self._task_ident():
            yield cur  # already this kernel's task
            return
        task = user_task(self)
        token = _current.set(task)
        try:
            yield task
        finally:
            _current.reset(token)

    def _check_alive(self) -> None:
        if self._panic is not None:
            raise self._panic
        if self._halted or not self._booted:
            raise NoKernelError("the kernel is not running")

    def _module_names(self) -> list[str]:
        return list(self._modules)

    # -- interrupts ---------------------------------------------------------------------------

    def raise_irq(self, irq: int, cpu: int | None = None) -> None:
        """
        Simulate device interrupt *irq* on CPU *cpu* (default: the CPU the caller runs on; with
        no kernel task in the caller's context, the line's effective affinity, see
        :meth:`irq_effective_cpu`).

        The handlers run in hardirq context, then pending softirqs run on irq exit (within the
        ``MAX_SOFTIRQ_RESTART``/``MAX_SOFTIRQ_TIME`` budget, the rest going to ksoftirqd), all
        before this returns. It runs on the event loop's thread only: from another OS thread
        (a device thread, a C callback) use :meth:`raise_irq_threadsafe`.

        Raises:
            TypeError: *irq* or *cpu* is not an int.
            ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``); *cpu* is not one
                of this kernel's CPUs.
            NoKernelError: the kernel is not running (not booted yet, or halted).
            KernelPanic: a handler raised (a fatal exception in interrupt), or the kernel has
                panicked.
            RuntimeError: called from a thread other than the kernel's event loop's.

        Context:
            Any context; never sleeps.

        .. versionadded:: 0.1
        """
        do_irq(self, irq, cpu)

    def raise_irq_threadsafe(self, irq: int, cpu: int | None = None) -> None:
        """
        Raise device interrupt *irq* from any OS thread: a socket reader, a serial or GPIO
        poller, a callback from C.

        It never blocks and never runs a handler itself, even on the loop's thread: the
        interrupt is queued and the event loop is woken (once for every batch that arrives
        while it is busy). On the loop's thread each interrupt is then delivered exactly once,
        in the order this thread raised it, as :meth:`raise_irq` delivers it: the handlers in
        hardirq context on CPU *cpu*, interrupting what that CPU runs (its idle task,
        ``swapper/N``), then pending softirqs on irq exit.

        By default (*cpu* ``None``) the interrupt goes where the kernel sends a device
        interrupt with the default affinity: to the line's effective affinity, one CPU chosen
        when its first handler was requested (the CPU with the fewest lines, as the x86 vector
        allocator spreads them; see :meth:`irq_effective_cpu`). Every interrupt of a line then
        lands on one CPU, in order. A line without a handler goes to CPU 0.

        Arguments are checked in the calling thread, before anything is queued.

        Raises:
            TypeError: *irq* or *cpu* is not an int.
            ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``); *cpu* is not one
                of this kernel's CPUs.
            NoKernelError: the kernel does not take interrupts: it has not booted, has
                halted (or is shutting down), or has panicked. Nothing was queued.

        Context:
            Any thread, any context; never blocks, never sleeps.

        .. versionadded:: 0.1
        """
        raise_irq_threadsafe(self, irq, cpu)

    def irq_effective_cpu(self, irq: int) -> int:
        """
        The CPU device interrupts on line *irq* go to (``/proc/irq/<irq>/effective_affinity``).

        A line is bound when its first handler is requested, to the CPU with the fewest lines
        bound (the lowest-numbered on a tie), and keeps that CPU until its last handler is
        freed; a line without a handler answers CPU 0.

        Raises:
            TypeError: *irq* is not an int.
            ValueError: *irq* is not a line number (0 to ``NR_IRQS - 1``).

        .. versionadded:: 0.1
        """
        check_irq(irq, "Kernel.irq_effective_cpu")
        return effective_cpu(self, irq)

    def _deliver_threadsafe_irqs(self) -> int:
        """
        Deliver now every interrupt :meth:`raise_irq_threadsafe` has queued, in the order
        raised, and return how many were delivered (0 if none were queued).

        For the shutdown: call it on the loop's thread while the kernel still runs (before
        the last pass over pending softirqs, tasklets and work, since handlers raise and queue
        more). Interrupts are delivered as a device's are, to the idle task of their CPU,
        whatever task calls this. The queue stays open. If a handler panics, the
        :class:`KernelPanic` propagates and the interrupts after it stay queued for
        :meth:`_drop_threadsafe_irqs`. After a panic, or once the kernel has halted, it
        delivers nothing and returns 0.
        """
        return deliver_threadsafe_irqs(self)

    def _drop_threadsafe_irqs(
        self, name: Callable[[int, int, int], object] | None = None
    ) -> list[tuple[int, int]]:
        """
        Close the queue of :meth:`raise_irq_threadsafe` and take off every interrupt still in
        it, undelivered. From now on raising from a thread is a :class:`NoKernelError` there.

        Returns:
            ``(irq, cpu)`` for each interrupt dropped, in the order raised (``[]`` if none;
            calling it again is harmless). ``self._ts_irqs.dropped`` counts them all.

        *name* is called as ``name(irq, cpu, count)`` for every run of interrupts of one line
        for one CPU; without it each run gets a dmesg line
        ``kdefer: shutdown: interrupt 5 (mydev) raised from another thread for CPU 0
        (3 times), never delivered; dropped``.
        """
        return drop_threadsafe_irqs(self, name)

    def raise_nmi(self, handler: Callable[[], object], cpu: int | None = None) -> None:
        """
        Simulate a non-maskable interrupt on CPU *cpu*: ``handler()`` runs in NMI context
        (``in_nmi()`` and ``in_hardirq()`` true, ``NMI_OFFSET + HARDIRQ_OFFSET`` added), even
        with local interrupts disabled; no softirqs run on its exit.

        Raises:
            TypeError: *handler* is not callable with no arguments or is ``async def``; *cpu*
                is not an int.
            ValueError: *cpu* is not one of this kernel's CPUs.
            NoKernelError: the kernel is not running.
            KernelPanic: *handler* raised.
            RuntimeError: called from a thread other than the kernel's event loop's.

        .. versionadded:: 0.1
        """
        from ._consts import NMI_OFFSET
        from ._softirq import panic_in_interrupt, run_atomic_result

        check_callback(
            handler,
            "Kernel.raise_nmi",
            "handler",
            shape="handler()",
            nargs=0,
            kind="atomic",
            what="an NMI handler",
        )
        if cpu is not None:
            check_cpu_arg(self, cpu, "Kernel.raise_nmi")
        self._check_alive()
        check_loop_thread(self, "Kernel.raise_nmi")
        cur = _current.get()
        if cur is not None and cur.kernel is not self:
            cur = None
        nr = (cur.cpu if cur is not None else 0) if cpu is None else cpu
        target = self.cpus[nr]
        task = cur if cur is not None and cur.cpu == nr else (target.curr or target.swapper)
        token = _current.set(task)
        target.irq_stat[NMI_VECTOR] = target.irq_stat.get(NMI_VECTOR, 0) + 1
        task.preempt_count += NMI_OFFSET + HARDIRQ_OFFSET
        try:
            try:
                result = handler()
            except KernelPanic:
                raise
            except Exception as exc:
                panic_in_interrupt(task, exc, "NMI handler")
                raise
            if result is not None:
                run_atomic_result(task, result, handler)
        finally:
            task.preempt_count -= NMI_OFFSET + HARDIRQ_OFFSET
            _current.reset(token)
        # what the handler raised for this CPU (an irq_work self-interrupt) is taken now
        self._deliver_pending_irqs(task)

    def _deliver_pending_irqs(self, task: TaskStruct) -> None:
        if task.preempt_count & HARDIRQ_MASK:
            return  # still inside a handler: the outer interrupt delivers them on its exit
        cpu = self.cpus[task.cpu]
        while cpu.pending_irqs and not task.irqs_off:
            irq_entry(cpu, task, cpu.pending_irqs.popleft())

    # -- hung tasks ---------------------------------------------------------------------------

    def _hung_watch(self, task: TaskStruct) -> None:
        if not self.hung_task_timeout_secs:
            return
        self._hung[task] = None
        self._arm_hung_timer()

    def _hung_unwatch(self, task: TaskStruct) -> None:
        self._hung.pop(task, None)

    def _arm_hung_timer(self) -> None:
        timer = self._hung_timer
        if timer is not None and timer._bucket is not None:
            return  # armed for an older sleeper, whose deadline comes first
        limit = self.hung_task_timeout_secs * self.hz
        pending = [t._sleep_since + limit for t in self._hung if not t._hung_reported]
        if not pending:
            return
        when = min(pending)
        timer = self._hung_timer
        if timer is None:
            timer = self._hung_timer = _KernelTimer(self._khungtaskd, 0)
        elif timer._bucket is not None:
            if timer.expires <= when:
                return
            from ._timer import _detach

            _detach(timer)
        _enqueue(self.cpus[0].std_base, timer, when, self.get_jiffies())

    def _khungtaskd(self, _timer: TimerList) -> None:
        limit = self.hung_task_timeout_secs * self.hz
        now = self.get_jiffies()
        for task in list(self._hung):
            if task._hung_reported or task.state != TASK_UNINTERRUPTIBLE:
                continue
            if now - task._sleep_since >= limit:
                task._hung_reported = True
                report_lines(
                    task,
                    [
                        f"INFO: task {task.comm}:{task.pid} blocked for more than "
                        f"{self.hung_task_timeout_secs} seconds.",
                        f"      {taint_string(self, verbose=False)} {UTS_RELEASE} #1",
                        '"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.',
                        f"task:{task.comm:<15} state:D stack:0     pid:{task.pid:<5} "
                        f"tgid:{task.pid:<5} ppid:2      flags:0x00004000",
                    ],
                    level=3,
                    stack=False,
                )
        self._arm_hung_timer()

    # -- modules ------------------------------------------------------------------------------

    async def _call_in_task(
        self, comm: str, fn: Callable[[], Any], oops_where: str | None = None
    ) -> Any:
        """Run *fn* in a new process-context task *comm*; with *oops_where*, an exception
        is an oops of that task (recorded, then re-raised)."""
        me = _current.get()
        cpu = me.cpu if me is not None and me.kernel is self else 0
        task = TaskStruct(self, comm, self._alloc_pid(), cpu, kthread=False)
        token = _current.set(task)
        self._tasks[task.pid] = task
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await result
            return result
        except KernelPanic:
            raise
        except Exception as exc:
            if oops_where is not None:
                record_oops(task, exc, oops_where)
            raise
        finally:
            task._exited = True
            self._tasks.pop(task.pid, None)
            _current.reset(token)

    async def insmod(self, path: str | os.PathLike[str], *params: str) -> int:
        """
        Load the module file *path* and run its ``module_init`` function in an ``insmod`` task.

        *params* are ``"name=value"`` strings for the module's ``module_param`` variables, as
        on the insmod command line; an unknown name is ignored with the kernel's message.

        Returns:
            0 once the module is loaded.

        Raises:
            ModuleLoadError: (an `OSError` with the kernel's errno) the file is missing or not
                a module, a module of that name is loaded, or init returned a negative errno or
                raised (an oops). The log has ``insmod: ERROR: could not insert module ...``.
            TypeError: *path* is not a str or a path; a parameter is not a str.
            NoKernelError: the kernel is not running.
            RuntimeError: called from a thread other than the kernel's event loop's.

        .. versionadded:: 0.1
        """
        shown = _check_module_path(path)
        for i, param in enumerate(params):
            check_str(param, "Kernel.insmod", f"params[{i}]")
        self._check_alive()
        check_loop_thread(self, "Kernel.insmod")
        stem = self._loaded_stem(shown)
        if stem is not None:
            # refuse before executing the file again: its top level must not run twice
            self._insmod_error(shown, EEXIST)
            raise ModuleLoadError(EEXIST, f"{shown}: module {stem} is already loaded")
        try:
            mdef = load_definition(path)
        except FileNotFoundError as exc:
            self._insmod_error(shown, ENOENT)
            raise ModuleLoadError(ENOENT, f"{shown}: {os.strerror(ENOENT)}") from exc
        except (ValueError, ImportError, SyntaxError) as exc:
            self._insmod_error(shown, ENOEXEC)
            raise ModuleLoadError(ENOEXEC, f"{shown}: {exc}") from exc
        if mdef.name in self._modules:
            self._insmod_error(shown, EEXIST)
            raise ModuleLoadError(EEXIST, f"{shown}: module {mdef.name} is already loaded")
        if mdef.license is None or mdef.license not in _GPL_COMPATIBLE:
            log_text(
                self,
                4,
                f"{mdef.name}: module license '{mdef.license or 'unspecified'}' taints kernel.",
            )
            self._taint.add("P")
        if "O" not in self._taint:
            log_text(self, 4, f"{mdef.name}: loading out-of-tree module taints kernel.")
            self._taint.add("O")
        for param in params:
            key, sep, value = param.partition("=")
            spec = mdef.params.get(key)
            if spec is None:
                log_text(self, 4, f"{mdef.name}: unknown parameter '{key}' ignored")
                continue
            conv, _perm = spec
            try:
                setattr(mdef.pymodule, key, conv(value) if sep else conv("1"))
            except ValueError as exc:
                log_text(self, 3, f"{mdef.name}: '{value}' invalid for parameter '{key}'")
                self._insmod_error(shown, EINVAL)
                raise ModuleLoadError(EINVAL, f"{shown}: bad value for {key}: {value!r}") from exc
        ret: Any = 0
        if mdef.init is not None:
            try:
                ret = await self._call_in_task("insmod", mdef.init, f"module init {mdef.name}")
            except KernelPanic:
                raise
            except Exception as exc:
                self._after_oops(exc)
                raise ModuleLoadError(EFAULT, f"{shown}: init raised {exc!r}") from exc
        if isinstance(ret, int) and ret < 0:
            self._insmod_error(shown, -ret)
            raise ModuleLoadError(-ret, f"{shown}: init returned {ret}")
        self._modules[mdef.name] = mdef
        return 0

    def _loaded_stem(self, shown: str) -> str | None:
        """The module name of file *shown* if it exists and a module of that name is loaded."""
        stem, ext = os.path.splitext(os.path.basename(shown))
        if ext == ".py" and stem in self._modules and os.path.isfile(shown):
            return stem
        return None

    def _insmod_error(self, shown: str, errno: int) -> None:
        try:
            reason = os.strerror(errno)
        except ValueError:  # pragma: no cover
            reason = f"errno {errno}"
        log_text(self, 3, f"insmod: ERROR: could not insert module {shown}: {reason}")

    async def rmmod(self, name: str) -> int:
        """
        Run module *name*'s ``module_exit`` function in an ``rmmod`` task and unload it.

        Work items, delayed work, timers and tasklets of the module that are still pending
        afterwards point at code that is gone, the classic driver bug: each is reported
        (``BUG: unable to handle page fault``, naming the object and its function) and
        cancelled, so it never runs.

        Raises:
            ModuleLoadError: (``ENOENT``) no such module is loaded.
            TypeError: *name* is not a str.
            NoKernelError: the kernel is not running.
            RuntimeError: called from a thread other than the kernel's event loop's.

        .. versionadded:: 0.1
        """
        check_str(name, "Kernel.rmmod", "name")
        self._check_alive()
        check_loop_thread(self, "Kernel.rmmod")
        if name.endswith(".py"):
            name = os.path.splitext(os.path.basename(name))[0]
        mdef = self._modules.get(name)
        if mdef is None:
            log_text(self, 3, f"rmmod: ERROR: Module {name} is not currently loaded")
            raise ModuleLoadError(ENOENT, f"module {name} is not currently loaded")
        try:
            if mdef.exit is not None:
                await self._call_in_task("rmmod", mdef.exit)
        finally:
            del self._modules[name]
            if mdef.pymodule is not None:
                from ._debugobjects import report_unload_pending

                # work, timers and tasklets still pointing into the unloaded code
                report_unload_pending(self, name, mdef.pymodule.__name__)
        return 0

    def lsmod(self) -> str:
        """
        The loaded modules, laid out as ``lsmod`` prints them.

        .. versionadded:: 0.1
        """
        lines = ["Module                  Size  Used by"]
        for name, mdef in self._modules.items():
            size = os.path.getsize(mdef.path) if mdef.path and os.path.exists(mdef.path) else 0
            lines.append(f"{name:<19} {size:>8}  0")
        return "\n".join(lines) + "\n"

    # -- /proc and the log --------------------------------------------------------------------

    # -- workqueues -------------------------------------------------------------------------

    def wq_stats(self) -> dict[str, dict[str, Any]]:
        """
        The counters ``tools/workqueue/wq_monitor.py`` shows, per workqueue name: ``total``,
        ``infl``, ``CPUtime`` (seconds), ``CPUitsv``, ``CMW/RPR``, ``mayday``, ``rescued``
        (``None`` where the tool prints ``-``).

        .. versionadded:: 0.1
        """
        from ._flush import wq_stats

        return wq_stats(self)

    def wq_stats_text(self) -> str:
        """
        :meth:`wq_stats` laid out as wq_monitor.py's table.

        .. versionadded:: 0.1
        """
        from ._flush import format_wq_stats

        return format_wq_stats(self)

    def block_worker_creation(self, blocked: bool = True) -> None:
        """
        Make creating new kworkers fail (``blocked``) or work again: what happens in the
        kernel when creating a kthread fails under memory pressure.

        Pools go on with the workers they have. When items wait in a pool where nothing runs
        and no worker is idle, the pool calls for help after ``MAYDAY_INITIAL_TIMEOUT``
        (HZ/100 jiffies, at least 2) and then every HZ/10: the rescuer (``kworker/R-<name>``)
        of each ``WQ_MEM_RECLAIM`` workqueue with items waiting there runs them
        (``wq_stats()``' ``mayday`` and ``rescued`` count this). Items of other workqueues
        wait. Unblocking creates the workers the pools need at once.

        Raises:
            TypeError: *blocked* is not a bool.
            NoKernelError: the kernel is not running.
            RuntimeError: called from a thread other than the kernel's event loop's.

        .. versionadded:: 0.1
        """
        from ._workqueue import set_worker_creation

        check_bool(blocked, "Kernel.block_worker_creation", "blocked")
        self._check_alive()
        check_loop_thread(self, "Kernel.block_worker_creation")
        set_worker_creation(self, blocked)

    async def freeze(self) -> None:
        """
        The freezer (suspend): ``WQ_FREEZABLE`` workqueues stop starting new items; returns
        once their active items have finished. New items wait until :meth:`thaw`.

        .. versionadded:: 0.1
        """
        from ._flush import freezable_busy, freeze_workqueues
        from ._wait import wait_var_event

        self._check_alive()
        from ._context import _cur, own_task

        own_task(_cur())  # this event-loop task sleeps below: it needs a kernel task of its own
        log_text(self, 6, "Freezing remaining freezable tasks")
        freeze_workqueues(self)
        start = self.uptime()
        while freezable_busy(self):
            await wait_var_event(self, lambda: not freezable_busy(self))
        await anyio.lowlevel.checkpoint()
        log_text(
            self,
            6,
            "Freezing remaining freezable tasks completed "
            f"(elapsed {self.uptime() - start:.3f} seconds)",
        )

    async def thaw(self) -> None:
        """
        Thaw: freezable workqueues start their waiting items again.

        .. versionadded:: 0.1
        """
        from ._flush import thaw_workqueues

        self._check_alive()
        thaw_workqueues(self)
        log_text(self, 6, "Restarting tasks ... done.")
        await anyio.lowlevel.checkpoint()

    def dmesg(self) -> list[str]:
        """
        The kernel log, one ``[    1.234567] text`` line per record (readable after exit).

        .. versionadded:: 0.1
        """
        return [format_record(ts, line) for ts, _lvl, line in self._log]

    def proc_softirqs(self) -> str:
        """
        ``/proc/softirqs``, laid out exactly as the kernel does.

        .. versionadded:: 0.1
        """
        return proc_softirqs(self.cpus)

    def proc_interrupts(self) -> str:
        """
        ``/proc/interrupts``: per-line, per-CPU counts, then the x86 system rows the model
        has, in the kernel's order: non-maskable interrupts (NMI), local timer interrupts
        (LOC), IRQ work interrupts (IWI, the irq_work self-interrupt) and function call
        interrupts (CAL, cross-CPU calls).

        .. versionadded:: 0.1
        """
        text = proc_interrupts(self)
        rows = (
            ("NMI", [c.irq_stat.get(NMI_VECTOR, 0) for c in self.cpus], "Non-maskable interrupts"),
            ("LOC", self.loc_interrupts, "Local timer interrupts"),
            ("IWI", [c.irq_stat.get(IRQ_WORK_VECTOR, 0) for c in self.cpus], "IRQ work interrupts"),
            (
                "CAL",
                [c.irq_stat.get(CALL_FUNCTION_VECTOR, 0) for c in self.cpus],
                "Function call interrupts",
            ),
        )
        for label, counts, title in rows:
            text += "%s:%s   %s\n" % (label, "".join(" %10u" % n for n in counts), title)
        return text

    def __repr__(self) -> str:
        state = (
            "panicked"
            if self._panic
            else "halted"
            if self._halted
            else ("running" if self._booted else "not booted")
        )
        return f"<Kernel {state} nr_cpus={self.nr_cpus} hz={self.hz}>"


def _no_park(_task: Any) -> Any:  # pragma: no cover
    raise RuntimeError("the kernel is not running")


def _no_unpark(_token: Any) -> None:  # pragma: no cover
    raise RuntimeError("the kernel is not running")


def _task_identity() -> Callable[[], object]:
    """A cheap "which event-loop task is running" for the running backend."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return asyncio.current_task  # type: ignore[no-any-return]
    trio = sys.modules.get("trio")
    if trio is not None:
        return trio.lowlevel.current_task  # type: ignore[no-any-return]
    return lambda: anyio.get_current_task().id


def _jiffies_reader(
    clock: Callable[[], float], epoch: float, hz: int, initial: int
) -> Callable[[], int]:
    """A closure reading jiffies with no attribute lookups (it is on every hot path)."""

    def get_jiffies() -> int:
        return initial + int((clock() - epoch) * hz + 1e-6)

    return get_jiffies


def _check_options(
    nr_cpus: object,
    hz: object,
    panic_on_oops: object,
    threadirqs: object,
    sleep_in_atomic: object,
    hung_task_timeout_secs: object,
    dyndbg: object,
    console: object,
    shutdown_timeout: object,
    wq_watchdog_thresh: object,
    wq_cpu_intensive_thresh_us: object,
    watchdog_thresh: object,
    debug_preempt: object,
) -> None:
    """``Kernel()``'s options, checked before anything is built (the _check.py wording)."""
    func = "Kernel"
    check_int(nr_cpus, func, "nr_cpus", lo=1, hi=_MAX_CPUS)
    check_int(hz, func, "hz", lo=1, hi=_MAX_HZ)
    check_bool(panic_on_oops, func, "panic_on_oops")
    check_bool(threadirqs, func, "threadirqs")
    check_str(sleep_in_atomic, func, "sleep_in_atomic")
    if sleep_in_atomic not in _VALID_POLICIES:
        raise bad_value(func, "sleep_in_atomic", "'raise' or 'report'", sleep_in_atomic)
    check_int(
        hung_task_timeout_secs,
        func,
        "hung_task_timeout_secs",
        lo=0,
        expected="a number of seconds >= 0 (0 disables the detector)",
    )
    check_bool(dyndbg, func, "dyndbg")
    if console is not None:
        check_callback(
            console,
            func,
            "console",
            shape="console(line, level)",
            nargs=2,
            kind="atomic",
            what="a console",
        )
    if shutdown_timeout is not None:
        if isinstance(shutdown_timeout, bool) or not isinstance(shutdown_timeout, (int, float)):
            raise bad_type(
                func, "shutdown_timeout", "a number of seconds or None", shutdown_timeout
            )
        check_number(
            shutdown_timeout,
            func,
            "shutdown_timeout",
            lo=0,
            expected="a number of seconds >= 0, or None to wait forever",
        )
    check_number(
        wq_watchdog_thresh,
        func,
        "wq_watchdog_thresh",
        lo=0,
        expected="a number of seconds >= 0 (0 disables the watchdog)",
    )
    check_int(wq_cpu_intensive_thresh_us, func, "wq_cpu_intensive_thresh_us", lo=1)
    check_int(
        watchdog_thresh,
        func,
        "watchdog_thresh",
        lo=0,
        hi=60,
        expected="a number of seconds from 0 to 60 (0 disables the watchdog)",
    )
    check_bool(debug_preempt, func, "debug_preempt")


def _check_module_path(path: object) -> str:
    """``insmod``'s *path*: a str or an ``os.PathLike`` naming a str path; returned as a str."""
    if isinstance(path, str):
        return path
    if isinstance(path, os.PathLike):
        shown = os.fspath(path)
        if isinstance(shown, str):
            return shown
    raise bad_type("Kernel.insmod", "path", "a str or an os.PathLike path", path)


class _KernelTimer(TimerList):
    """A timer the kernel itself uses (khungtaskd): never named at shutdown."""

    __slots__ = ()
    _kdefer_internal = True


def run(
    main: Callable[..., Awaitable[T]],
    *args: Any,
    nr_cpus: int = 4,
    hz: int = 250,
    backend: str = "asyncio",
    backend_options: dict[str, Any] | None = None,
    virtual_time: bool = False,
    **options: Any,
) -> T:
    """
    Boot a :class:`Kernel` in a new event loop, run ``await main(*args)`` in it, shut down.

    Args:
        main: An ``async def`` function; it runs as the kernel's ``init`` task.
        nr_cpus, hz: As for :class:`Kernel`; further keyword *options* go to it too.
        backend: ``"asyncio"`` or ``"trio"``.
        backend_options: Passed to :func:`anyio.run` (``{"use_uvloop": True}``...).
        virtual_time: Run on a virtual clock (trio's MockClock, or kdefer_async's own
            virtual-time asyncio loop): sleeps and timers take no wall time.

    Returns:
        What *main* returned.

    Raises:
        KernelPanic: the kernel panicked.
        TypeError: *main* is not an ``async def`` function callable with *args*; *nr_cpus*,
            *hz* or another option has the wrong type; *backend* is not a str,
            *backend_options* not a dict, *virtual_time* not a bool.
        ValueError: *nr_cpus*, *hz* or another option is out of range; *backend* is not
            ``"asyncio"`` or ``"trio"``.

    All of it is checked before an event loop starts.

    .. versionadded:: 0.1
    """
    check_callback(
        main,
        "run",
        "main",
        shape="main(*args)",
        nargs=len(args),
        kind="sleeping",
        what="main",
    )
    check_int(nr_cpus, "run", "nr_cpus", lo=1, hi=_MAX_CPUS)
    check_int(hz, "run", "hz", lo=1, hi=_MAX_HZ)
    check_str(backend, "run", "backend")
    if backend not in ("asyncio", "trio"):
        raise bad_value("run", "backend", "'asyncio' or 'trio'", backend)
    if backend_options is not None and not isinstance(backend_options, dict):
        raise bad_type("run", "backend_options", "a dict or None", backend_options)
    check_bool(virtual_time, "run", "virtual_time")
    kernel = Kernel(nr_cpus, hz, **options)  # the other options, checked before any loop
    opts: dict[str, Any] = {}
    if virtual_time:
        from ._vtime import backend_params

        opts.update(backend_params(f"{backend}+virtual")[1])
    opts.update(backend_options or {})

    async def _boot() -> T:
        async with kernel:
            return await main(*args)

    return anyio.run(_boot, backend=backend, backend_options=opts)
