"""Sleeping and waking: task states, ``schedule()``, timeouts, the msleep family, signals.

Kernel invariants modelled (kernel/sched/core.c, kernel/time/sleep_timeout.c, kernel/signal.c):

* A task sleeps by setting its state (``TASK_INTERRUPTIBLE`` / ``TASK_UNINTERRUPTIBLE``) and
  calling ``schedule()``; ``wake_up_process()`` puts it back to ``TASK_RUNNING``. A wake-up that
  lands between the state change and ``schedule()`` is not lost: ``schedule()`` then does not
  sleep. In ``TASK_RUNNING``, ``schedule()`` does not sleep at all (so ``schedule_timeout()``
  without a state change returns at once with the whole timeout left).
* ``schedule_timeout()`` arms a timer on the wheel, so timeouts have the wheel's granularity.
* ``msleep(ms)`` sleeps ``msecs_to_jiffies(ms)`` jiffies (no extra jiffy since 6.12);
  ``msleep_interruptible()`` stops early on a signal and returns the milliseconds left.
* A signal interrupts ``TASK_INTERRUPTIBLE`` sleeps. Kernel threads ignore signals unless they
  ``allow_signal()`` them.
* The hung-task detector reports ``TASK_UNINTERRUPTIBLE`` sleepers stuck longer than
  ``hung_task_timeout_secs`` (120 s).

The ``sched`` tracepoints (include/trace/events/sched.h). The model has no scheduler: every
task of every CPU is a task of one event loop, and runs whenever the loop runs it. So the trace
keeps, per CPU, the task it shows running there (the idle task ``swapper/N`` until something
runs; ``init`` on its CPU from boot) and a run queue of the tasks woken or preempted there, and
emits the events at the kernel's own sleep and wake-up sites only:

* ``sched_switch`` when a task goes to sleep in the kernel (``schedule()`` and everything built
  on it: ``schedule_timeout``, the msleep family, hrtimer sleeps, wait queues, completions,
  mutexes, semaphores, ``wait_var_event``; an idle kworker, kthread_worker or irq thread; a
  parked kthread): from it to the oldest task of its CPU's run queue that is still runnable
  there, or to ``swapper/N`` when there is none. ``prev_state`` is ``D`` for an
  uninterruptible (or killable) sleep, ``S`` for an interruptible one, ``I`` for an idle
  kworker (``TASK_IDLE``), ``P`` for a parked kthread. The event is recorded by the task
  leaving, on its CPU, with interrupts off and two preempt levels (``d..2.``).
* ``sched_switch`` when a task starts to run and the trace does not show it running: a sleep
  traced as above ends, or a new task (kthread, kworker, irq thread) runs for the first time.
  The switch is from the task the trace shows on that CPU: from ``swapper/N`` (``R``), or from
  a task, which is then preempted (``R+``) and waits on the run queue until it is picked or
  runs again. A task that runs but was not seen to start (the trace began later, or an
  unbound kworker moved to the CPU of its item) is switched to the same way when it next
  sleeps; on the CPU it left it is switched out as preempted. So on each CPU the events
  chain: the next task of one ``sched_switch`` is the previous task of the next one, which
  is what a CPU track is built from.
* ``sched_waking`` then ``sched_wakeup`` in the waker's context when a sleeping task is woken
  (``try_to_wake_up()`` under ``p->pi_lock``: ``d..2.``; the runqueue lock too: ``d..3.``);
  ``target_cpu`` is the CPU the task runs on. A new kthread, kworker or irq thread gets
  ``sched_wakeup_new`` instead (the kernel's fork by kthreadd and the first wake-up of the
  new thread folded into one event). ``ksoftirqd`` and irq threads woken by a hard interrupt
  are switched in when they run, without a waking event of their own.
* A task that ends (a kthread's function returns, a kworker is retired) leaves with
  ``prev_state=X``: kthreadd ignores SIGCHLD, so its children are reaped at once
  (``EXIT_DEAD``).
* ``prio`` is the kernel's ``p->prio``: 120 for nice 0, 100 for highpri kworkers (nice -20),
  ``99 - rt_priority`` for ``SCHED_FIFO``/``SCHED_RR`` tasks (an irq thread at priority 50
  prints 49).

None of this costs anything with tracing off: each site tests ``Kernel._trace_on`` and the
bookkeeping is only kept while it is true (a trace turned on later starts from the idle
tasks and ``init``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import anyio

from ._check import bad_value, check_instance, check_int
from ._consts import (
    LONG_MAX,
    MAX_RT_PRIO,
    MAX_SCHEDULE_TIMEOUT,
    SCHED_FIFO,
    SCHED_RR,
    SIGKILL,
    TASK_INTERRUPTIBLE,
    TASK_NORMAL,
    TASK_PARKED,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    TASK_WAKEKILL,
)
from ._context import TaskStruct, _cur
from ._exceptions import KernelBug
from ._printk import dump_stack, log_text
from ._sleeping import sleeping_checked
from ._time import hz_jiffies_to_msecs, hz_msecs_to_jiffies
from ._timer import TimerList, _detach, _enqueue
from ._trace import (
    SCHED_SWITCH,
    SCHED_WAKEUP,
    SCHED_WAKEUP_NEW,
    SCHED_WAKING,
    SWITCH_STATE_D,
    SWITCH_STATE_P,
    SWITCH_STATE_RUNNING,
    SWITCH_STATE_S,
    SWITCH_STATE_X,
    TASK_REPORT_MAX,
    TRACE_FLAG_NEED_RESCHED,
    TRACE_FLAG_PREEMPT_RESCHED,
    emit_on,
    site_task,
)

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "allow_signal",
    "disallow_signal",
    "flush_signals",
    "kernel_dequeue_signal",
    "msleep",
    "msleep_interruptible",
    "schedule",
    "schedule_timeout",
    "schedule_timeout_interruptible",
    "schedule_timeout_uninterruptible",
    "send_sig",
    "set_current_state",
    "signal_pending",
    "ssleep",
    "usleep_range",
    "wake_up_process",
]


#: The C types' limits, for the range checks.
INT_MIN = -(1 << 31)
INT_MAX = (1 << 31) - 1
UINT_MAX = (1 << 32) - 1
LONG_MIN = -(1 << 63)
ULONG_MAX = (1 << 64) - 1
#: ``_NSIG``: signals are numbered 1 to 64.
_NSIG = 64
_STATES = (TASK_RUNNING, TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE)
#: ``DEFAULT_PRIO`` (nice 0) and the nice of highpri kworkers (``HIGHPRI_NICE_LEVEL``).
DEFAULT_PRIO = 120
HIGHPRI_NICE_LEVEL = -20


def _task(task: object, func: str, param: str = "task") -> TaskStruct:
    """*task* if it is a :class:`TaskStruct` (the cheap exact-type test first)."""
    if type(task) is TaskStruct:
        return task
    return check_instance(task, TaskStruct, func, param, "a task (from current() or kthread_run)")


def _check_sig(sig: object, func: str) -> int:
    return check_int(
        sig, func, "sig", lo=1, hi=_NSIG, expected=f"a signal number from 1 to {_NSIG}"
    )


def _check_uint(value: object, func: str, param: str) -> int:
    """*value* if it fits the ``unsigned int`` it is in C (no silent wrap of a negative)."""
    if type(value) is int and 0 <= value <= UINT_MAX:
        return value
    return check_int(
        value, func, param, lo=0, hi=UINT_MAX, expected=f"an unsigned int (0 to {UINT_MAX})"
    )


def _check_ulong(value: object, func: str, param: str) -> int:
    """*value* if it fits the ``unsigned long`` it is in C."""
    if type(value) is int and 0 <= value <= ULONG_MAX:
        return value
    return check_int(
        value, func, param, lo=0, hi=ULONG_MAX, expected=f"an unsigned long (0 to {ULONG_MAX})"
    )


def _check_timeout(value: object, func: str, param: str = "timeout") -> int:
    """*value* if it fits the ``signed long`` of a timeout in jiffies (negative: see
    :func:`schedule_timeout`)."""
    if type(value) is int and LONG_MIN <= value <= LONG_MAX:
        return value
    return check_int(
        value,
        func,
        param,
        lo=LONG_MIN,
        hi=LONG_MAX,
        expected=f"a number of jiffies (a long: {LONG_MIN} to {LONG_MAX})",
    )


def set_current_state(state: int) -> None:
    """
    Set the running task's state (``TASK_RUNNING``, ``TASK_INTERRUPTIBLE``,
    ``TASK_UNINTERRUPTIBLE``) before a ``schedule()``/``schedule_timeout()``.

    Raises:
        TypeError: *state* is not an int.
        ValueError: *state* is not one of those three states (the only ones this kernel
            sleeps in).

    .. versionadded:: 0.1
    """
    if state not in _STATES or type(state) is not int:
        check_int(state, "set_current_state", "state")
        raise bad_value(
            "set_current_state",
            "state",
            "TASK_RUNNING, TASK_INTERRUPTIBLE or TASK_UNINTERRUPTIBLE",
            state,
        )
    _cur().state = state


def try_to_wake_up(task: TaskStruct, mask: int) -> int:
    if not task.state & mask:
        return 0
    task.state = TASK_RUNNING
    if task.kernel._trace_on:
        sched_wakeup(task)
    token = task._wake_event
    if token is not None:
        task._wake_event = None
        task.kernel._parker.unpark(token)
    return 1


def wake_up_process(task: TaskStruct) -> int:
    """
    Wake *task* if it sleeps (or start a kthread made by ``kthread_create``).

    Returns:
        1 if it was woken, 0 if it was already running.

    Raises:
        TypeError: *task* is not a task.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _task(task, "wake_up_process")
    start = task.kernel._kthread_starts.pop(task, None)
    if start is not None:
        start()
        if task.kernel._trace_on:
            sched_wakeup(task, new=True)
        return 1
    return try_to_wake_up(task, TASK_NORMAL)


def _deliverable(task: TaskStruct) -> int:
    return task.sigpending if not task.is_kthread else task.sigpending & task.allowed_signals


def signal_pending(task: TaskStruct) -> bool:
    """
    True if *task* has a signal pending (one it does not ignore).

    Raises:
        TypeError: *task* is not a task.

    .. versionadded:: 0.1
    """
    return bool(_deliverable(_task(task, "signal_pending")))


def send_sig(sig: int, task: TaskStruct, priv: int) -> int:
    """
    Send signal *sig* to *task*: it interrupts the task's interruptible sleeps.

    Kernel threads ignore signals they have not ``allow_signal()``-ed, as in the kernel.

    Returns:
        0 (the kernel's success value).

    Raises:
        TypeError: *sig* or *priv* is not an int, or *task* is not a task.
        ValueError: *sig* is not a signal number (1 to 64), or *priv* does not fit an ``int``.

    .. versionadded:: 0.1
    """
    _check_sig(sig, "send_sig")
    _task(task, "send_sig")
    check_int(priv, "send_sig", "priv", lo=INT_MIN, hi=INT_MAX)
    bit = 1 << sig
    if task.is_kthread and not task.allowed_signals & bit:
        return 0
    task.sigpending |= bit
    mask = TASK_INTERRUPTIBLE | (TASK_WAKEKILL if sig == SIGKILL else 0)
    if task.state & mask:
        try_to_wake_up(task, task.state)
    return 0


def allow_signal(sig: int) -> None:
    """
    Let the running kernel thread receive *sig* (kthreads ignore signals by default).

    Raises:
        TypeError: *sig* is not an int.
        ValueError: *sig* is not a signal number (1 to 64).

    .. versionadded:: 0.1
    """
    _check_sig(sig, "allow_signal")
    _cur().allowed_signals |= 1 << sig


def disallow_signal(sig: int) -> None:
    """
    Ignore *sig* again in the running kernel thread (a pending *sig* is discarded).

    Raises:
        TypeError: *sig* is not an int.
        ValueError: *sig* is not a signal number (1 to 64).

    .. versionadded:: 0.1
    """
    _check_sig(sig, "disallow_signal")
    task = _cur()
    task.allowed_signals &= ~(1 << sig)
    task.sigpending &= ~(1 << sig)


def flush_signals(task: TaskStruct) -> None:
    """
    Discard *task*'s pending signals.

    Raises:
        TypeError: *task* is not a task.

    .. versionadded:: 0.1
    """
    _task(task, "flush_signals").sigpending = 0


def kernel_dequeue_signal() -> int:
    """
    Dequeue and return the running task's lowest pending signal (0 if none).

    .. versionadded:: 0.1
    """
    task = _cur()
    pending = _deliverable(task)
    if not pending:
        return 0
    low = pending & -pending
    task.sigpending &= ~low
    return low.bit_length() - 1


async def schedule() -> None:
    """``schedule()``: sleep in the state set beforehand; in TASK_RUNNING just yield."""
    task = _cur()
    state = task.state
    waiter = _sleep_begin(task)
    if waiter is None:
        await anyio.lowlevel.checkpoint()
        return
    try:
        await waiter
    finally:
        _sleep_end(task, state)


def _sleep_begin(task: TaskStruct) -> Awaitable[Any] | None:
    """What ``schedule()`` does before it sleeps; returns what to await, or None if the task
    does not sleep (it is ``TASK_RUNNING``, or a signal is pending for an interruptible sleep)
    and only yields."""
    if task.preempt_count or task.irqs_off:
        from ._softirq import report_schedule_bug

        report_schedule_bug(task)
        if task.kernel.sleep_in_atomic == "raise":
            task.state = TASK_RUNNING
            raise KernelBug(
                f"scheduling while atomic: {task.comm}/{task.pid}/"
                f"0x{task.preempt_count + 1:08x}; see dmesg"
            )
    state = task.state
    if state == TASK_RUNNING:
        return None
    if state & TASK_INTERRUPTIBLE and _deliverable(task):
        task.state = TASK_RUNNING
        return None
    kernel = task.kernel
    if state & TASK_UNINTERRUPTIBLE:
        task._sleep_since = kernel.get_jiffies()
        task._hung_reported = False
        kernel._hung_watch(task)
    waiter = kernel._parker.wait(task)
    if kernel._trace_on:
        sched_out(task, switch_state(state))
    return waiter


def _sleep_end(task: TaskStruct, state: int) -> None:
    """What ``schedule()`` does once a sleep begun in *state* has ended (or was cancelled)."""
    task._wake_event = None
    task.state = TASK_RUNNING
    kernel = task.kernel
    if state & TASK_UNINTERRUPTIBLE:
        kernel._hung_unwatch(task)
    if kernel._trace_on:
        sched_resume(task)


class _SleepTimer(TimerList):
    __slots__ = ("task",)

    def __init__(self, task: TaskStruct) -> None:
        super().__init__()
        self.function = _process_timeout  # the kernel's own callback: no registration check
        self.task = task


def _process_timeout(timer: _SleepTimer) -> None:
    wake_up_process(timer.task)


async def _schedule_timeout(timeout: int) -> int:
    task = _cur()
    kernel = task.kernel
    if timeout == MAX_SCHEDULE_TIMEOUT:
        await schedule()
        return timeout
    if timeout < 0:
        log_text(
            kernel, 3, "schedule_timeout: wrong timeout value %x" % (timeout & ((1 << 64) - 1))
        )
        dump_stack()
        task.state = TASK_RUNNING
        await anyio.lowlevel.checkpoint()
        return 0
    timer = _arm_sleep(task, timeout)
    state = task.state
    try:
        waiter = _sleep_begin(task)  # (schedule(), without a coroutine of its own)
        await (waiter if waiter is not None else anyio.lowlevel.checkpoint())
    finally:
        _sleep_end(task, state)
    return _disarm_sleep(timer)


def _arm_sleep(task: TaskStruct, timeout: int) -> _SleepTimer:
    """The timer of ``schedule_timeout(timeout)``: it wakes *task* in *timeout* jiffies."""
    kernel = task.kernel
    now = kernel.get_jiffies()
    timer = _SleepTimer(task)
    _enqueue(kernel.cpus[task.cpu].std_base, timer, now + timeout, now)
    return timer


def _disarm_sleep(timer: _SleepTimer) -> int:
    """Take the sleep's timer off the wheel if it did not fire; the jiffies left (0 if none)."""
    if timer._bucket is not None:
        _detach(timer)
    left = timer.expires - timer.task.kernel.get_jiffies()
    return left if left > 0 else 0


@sleeping_checked(lambda timeout: _check_timeout(timeout, "schedule_timeout"))
async def schedule_timeout(timeout: int) -> int:
    """
    Sleep until *timeout* jiffies have passed or the task is woken, in the state set before.

    Without a prior :func:`set_current_state` the task is ``TASK_RUNNING`` and this returns at
    once with (about) the whole timeout left, as in the kernel: a classic driver bug.
    ``MAX_SCHEDULE_TIMEOUT`` sleeps with no timer. A negative timeout (it is a ``signed long``)
    is reported (``schedule_timeout: wrong timeout value``) and returns 0, as in the kernel.

    Returns:
        0 if the timeout elapsed, else the jiffies left.

    Raises:
        TypeError: *timeout* is not an int.
        ValueError: *timeout* does not fit a ``long``.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    return await _schedule_timeout(timeout)


@sleeping_checked(lambda timeout: _check_timeout(timeout, "schedule_timeout_interruptible"))
async def schedule_timeout_interruptible(timeout: int) -> int:
    """
    :func:`schedule_timeout` in ``TASK_INTERRUPTIBLE``.

    Raises:
        TypeError, ValueError: as :func:`schedule_timeout`, before the state changes.

    .. versionadded:: 0.1
    """
    _cur().state = TASK_INTERRUPTIBLE
    return await _schedule_timeout(timeout)


@sleeping_checked(lambda timeout: _check_timeout(timeout, "schedule_timeout_uninterruptible"))
async def schedule_timeout_uninterruptible(timeout: int) -> int:
    """
    :func:`schedule_timeout` in ``TASK_UNINTERRUPTIBLE``.

    Raises:
        TypeError, ValueError: as :func:`schedule_timeout`, before the state changes.

    .. versionadded:: 0.1
    """
    _cur().state = TASK_UNINTERRUPTIBLE
    return await _schedule_timeout(timeout)


async def _msleep(ms: int) -> None:
    task = _cur()
    timeout = hz_msecs_to_jiffies(task.kernel.hz, ms)
    if not timeout:
        await anyio.lowlevel.checkpoint()
        return
    while timeout:
        task.state = TASK_UNINTERRUPTIBLE
        timeout = await _schedule_timeout(timeout)


@sleeping_checked(lambda ms: _check_uint(ms, "msleep", "ms"))
async def msleep(ms: int) -> None:
    """
    Sleep at least *ms* milliseconds, uninterruptibly: ``msecs_to_jiffies(ms)`` jiffies on the
    wheel (so at HZ=250, ``msleep(5)`` takes 8 to 12 ms). ``msleep(0)`` does not sleep.

    *ms* is an ``unsigned int``: from 2**31 up it is what ``msecs_to_jiffies()`` takes for a
    negative ``int``, an "infinite" ``MAX_JIFFY_OFFSET`` sleep, as in the kernel.

    Raises:
        TypeError: *ms* is not an int.
        ValueError: *ms* is negative or above ``UINT_MAX``.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    # (_msleep() and schedule_timeout() inline: no coroutine but this one per sleeping item)
    task = _cur()
    timeout = hz_msecs_to_jiffies(task.kernel.hz, ms)
    if not timeout:
        await anyio.lowlevel.checkpoint()
        return
    while timeout:
        task.state = TASK_UNINTERRUPTIBLE
        timer = _arm_sleep(task, timeout)
        try:
            waiter = _sleep_begin(task)
            await (waiter if waiter is not None else anyio.lowlevel.checkpoint())
        finally:
            _sleep_end(task, TASK_UNINTERRUPTIBLE)
            timeout = _disarm_sleep(timer)


@sleeping_checked(lambda ms: _check_uint(ms, "msleep_interruptible", "ms"))
async def msleep_interruptible(ms: int) -> int:
    """
    Sleep *ms* milliseconds unless a signal arrives first.

    Returns:
        The milliseconds left (``jiffies_to_msecs`` of the remainder), 0 if it slept fully.

    Raises:
        TypeError, ValueError: as :func:`msleep`.

    .. versionadded:: 0.1
    """
    task = _cur()
    hz = task.kernel.hz
    timeout = hz_msecs_to_jiffies(hz, ms)
    if not timeout:
        await anyio.lowlevel.checkpoint()
        return 0
    while timeout and not _deliverable(task):
        task.state = TASK_INTERRUPTIBLE
        timeout = await _schedule_timeout(timeout)
    if not timeout:
        await anyio.lowlevel.checkpoint()
    return hz_jiffies_to_msecs(hz, timeout)


@sleeping_checked(lambda seconds: _check_uint(seconds, "ssleep", "seconds"))
async def ssleep(seconds: int) -> None:
    """
    ``msleep(seconds * 1000)``.

    *seconds* is an ``unsigned int``, and so is the product, as in the kernel's inline: past
    4294967 seconds it wraps modulo 2**32.

    Raises:
        TypeError: *seconds* is not an int.
        ValueError: *seconds* is negative or above ``UINT_MAX``.

    .. versionadded:: 0.1
    """
    await _msleep(seconds * 1000)


def _check_usleep_range(lo: object, hi: object) -> None:
    _check_ulong(lo, "usleep_range", "lo")
    _check_ulong(hi, "usleep_range", "hi")


@sleeping_checked(_check_usleep_range)
async def usleep_range(lo: int, hi: int) -> None:
    """
    Sleep between *lo* and *hi* microseconds, uninterruptibly, on an hrtimer (not the wheel):
    the soft expiry is ``now + lo``, the hard one *hi* - *lo* later, so the sleep ends at the
    hard expiry, or earlier if another hrtimer event of the CPU falls in the range. Never
    less than *lo*: a wake-up (``wake_up_process``) sleeps again until then.

    ``hi < lo`` is the kernel's ``WARN_ON_ONCE`` and a sleep of exactly *lo* (no slack), as
    since v6.13.

    Raises:
        TypeError: *lo* or *hi* is not an int.
        ValueError: *lo* or *hi* does not fit an ``unsigned long``.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    from ._hrtimer import usleep_range_state

    await usleep_range_state(lo, hi, TASK_UNINTERRUPTIBLE)


# --- sched tracepoints --------------------------------------------------------------------------


class _SchedTrace:
    """What the ``sched`` tracepoints need to know of a kernel with no scheduler of its own:
    per CPU, the task the trace shows running (``curr``) and the tasks woken or preempted
    there that wait to run (``rq``, oldest first); and the tasks the trace shows asleep."""

    __slots__ = ("asleep", "curr", "rq")

    def __init__(self, kernel: Kernel) -> None:
        self.curr: list[TaskStruct] = [cpu.swapper for cpu in kernel.cpus]  # A
        init = kernel.init_task
        if init is not None and not init._exited:
            self.curr[init.cpu] = init  # the task that runs from boot
        self.rq: list[deque[TaskStruct]] = [deque() for _ in kernel.cpus]  # A
        self.asleep: set[TaskStruct] = set()  # A


def _sched_trace(kernel: Kernel) -> _SchedTrace:
    st: _SchedTrace | None = getattr(kernel, "_sched_trace", None)
    if st is None:
        st = _SchedTrace(kernel)
        kernel._sched_trace = st  # type: ignore[attr-defined]
    return st


def task_prio(task: TaskStruct) -> int:
    """``p->prio`` as the sched events print it: ``MAX_RT_PRIO - 1 - rt_priority`` for a
    real-time task (an irq thread at 50 prints 49), ``120 + nice`` otherwise (a highpri
    kworker, nice -20, prints 100)."""
    if task.policy == SCHED_FIFO or task.policy == SCHED_RR:
        return MAX_RT_PRIO - 1 - task.rt_priority
    pool = getattr(task, "pool", None)  # a kworker (a rescuer has id -1 and nice 0)
    if pool is not None and pool.highpri and getattr(task, "id", -1) >= 0:
        return DEFAULT_PRIO + HIGHPRI_NICE_LEVEL
    return DEFAULT_PRIO


def switch_state(state: int) -> int:
    """The ``prev_state`` a task sleeping in *state* shows (``__task_state_index``)."""
    if state & TASK_UNINTERRUPTIBLE:
        return SWITCH_STATE_D
    if state & TASK_INTERRUPTIBLE:
        return SWITCH_STATE_S
    if state & TASK_PARKED:
        return SWITCH_STATE_P
    return SWITCH_STATE_RUNNING


def _switch(kernel: Kernel, cpu: int, prev: TaskStruct, state: int, nxt: TaskStruct) -> None:
    """``sched_switch`` on *cpu*, recorded by *prev* in ``__schedule()`` (interrupts off, the
    preempt guard and the runqueue lock: ``d..2.``), after ``__schedule()`` cleared *prev*'s
    need-resched flag."""
    prev.need_resched = 0
    emit_on(
        kernel,
        prev,
        cpu,
        SCHED_SWITCH,
        2,
        prev.comm,
        prev.pid,
        task_prio(prev),
        state,
        nxt.comm,
        nxt.pid,
        task_prio(nxt),
    )


def _pick_next(st: _SchedTrace, kernel: Kernel, cpu: int, prev: TaskStruct) -> TaskStruct:
    """The next task of *cpu*: the oldest waiting there that is still runnable on it, else
    the idle task."""
    rq = st.rq[cpu]
    while rq:
        task = rq.popleft()
        if task is not prev and task.cpu == cpu and task.state == TASK_RUNNING:
            return task
    return kernel.cpus[cpu].swapper


def _leave_cpu(st: _SchedTrace, kernel: Kernel, task: TaskStruct, keep: int) -> None:
    """*task* runs on *keep* now: off any other CPU the trace shows it on (it migrated)."""
    for cpu, cur in enumerate(st.curr):
        if cur is task and cpu != keep:
            nxt = _pick_next(st, kernel, cpu, task)
            _switch(kernel, cpu, task, TASK_REPORT_MAX, nxt)
            st.curr[cpu] = nxt


def _switch_in(st: _SchedTrace, kernel: Kernel, task: TaskStruct) -> None:
    """*task* runs now: unless the trace shows it running already, switch to it from the task
    the trace shows on its CPU (the idle task, ``R``; a task, preempted: ``R+``, and back to
    waiting)."""
    cpu = task.cpu
    cur = st.curr[cpu]
    if cur is task:
        return
    _leave_cpu(st, kernel, task, cpu)
    rq = st.rq[cpu]
    if task in rq:
        rq.remove(task)
    if cur.pid:
        _switch(kernel, cpu, cur, TASK_REPORT_MAX, task)
        rq.append(cur)
    else:
        _switch(kernel, cpu, cur, SWITCH_STATE_RUNNING, task)
    st.curr[cpu] = task


def sched_in(task: TaskStruct) -> None:
    """Trace *task* starting to run: a new task's first run, or a sleep traced by
    :func:`sched_out` ending (call only when tracing is on)."""
    kernel = task.kernel
    st = _sched_trace(kernel)
    st.asleep.discard(task)
    _switch_in(st, kernel, task)


def sched_resume(task: TaskStruct) -> None:
    """Trace the end of a sleep: :func:`sched_in` if the trace showed *task* asleep."""
    st = _sched_trace(task.kernel)
    if task in st.asleep:
        st.asleep.discard(task)
        _switch_in(st, task.kernel, task)


def sched_out(task: TaskStruct, state: int) -> None:
    """Trace *task* going to sleep, showing *state* (``SWITCH_STATE_*``): ``sched_switch``
    from it to the next task of its CPU (call only when tracing is on)."""
    kernel = task.kernel
    st = _sched_trace(kernel)
    _switch_in(st, kernel, task)  # (it runs: the trace may not have seen it start)
    cpu = task.cpu
    nxt = _pick_next(st, kernel, cpu, task)
    _switch(kernel, cpu, task, state, nxt)
    st.curr[cpu] = nxt
    st.asleep.add(task)


def sched_exit(task: TaskStruct) -> None:
    """Trace *task* ending: its last ``sched_switch`` (``prev_state=X``: a kthread is reaped
    at once, its parent ignoring SIGCHLD), if the trace shows it running."""
    kernel = task.kernel
    st = _sched_trace(kernel)
    st.asleep.discard(task)
    for cpu, cur in enumerate(st.curr):
        if cur is task:
            nxt = _pick_next(st, kernel, cpu, task)
            _switch(kernel, cpu, task, SWITCH_STATE_X, nxt)
            st.curr[cpu] = nxt
    for rq in st.rq:
        if task in rq:
            rq.remove(task)


def _is_rt(task: TaskStruct) -> bool:
    return task.policy == SCHED_FIFO or task.policy == SCHED_RR


def _wakeup_preempt(st: _SchedTrace, waker: TaskStruct, task: TaskStruct) -> None:
    """``wakeup_preempt()``: *task*, woken onto its CPU, preempts the task the trace shows
    running there if that is the idle task, or a task of a lower class or real-time priority;
    ``resched_curr()`` then sets its ``TIF_NEED_RESCHED``, and, when the waker runs on that
    CPU, folds it into the preempt count at once (``N``); a remote CPU shows ``n`` (its
    reschedule IPI is not modelled). Between two fair tasks the EEVDF eligibility test is
    not modelled: a woken fair task waits until the running one sleeps."""
    curr = st.curr[task.cpu]
    if curr is task or curr.need_resched & TRACE_FLAG_PREEMPT_RESCHED:
        return
    if curr.pid == 0:
        preempt = True  # the idle class is below every other
    elif _is_rt(task):
        preempt = not _is_rt(curr) or task.rt_priority > curr.rt_priority
    else:
        preempt = False
    if preempt:
        if waker.cpu == task.cpu:
            curr.need_resched = TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_PREEMPT_RESCHED
        else:
            curr.need_resched = TRACE_FLAG_NEED_RESCHED


def sched_wakeup(task: TaskStruct, new: bool = False) -> None:
    """Trace the wake-up of *task* in the waker's context: ``sched_waking`` (``p->pi_lock``
    held: ``d..2.``) then ``sched_wakeup`` (the runqueue lock too: ``d..3.``); for a new task
    ``sched_wakeup_new`` alone. A task the trace shows asleep waits on its CPU's runqueue
    until it runs (call only when tracing is on)."""
    kernel = task.kernel
    st = _sched_trace(kernel)
    waker = site_task(kernel, task.cpu)
    prio = task_prio(task)
    if new:
        emit_on(kernel, waker, waker.cpu, SCHED_WAKEUP_NEW, 3, task.comm, task.pid, prio, task.cpu)
        _wakeup_preempt(st, waker, task)
    else:
        emit_on(kernel, waker, waker.cpu, SCHED_WAKING, 2, task.comm, task.pid, prio, task.cpu)
        _wakeup_preempt(st, waker, task)
        emit_on(kernel, waker, waker.cpu, SCHED_WAKEUP, 3, task.comm, task.pid, prio, task.cpu)
    if new or task in st.asleep:
        rq = st.rq[task.cpu]
        if task not in rq and st.curr[task.cpu] is not task:
            rq.append(task)
