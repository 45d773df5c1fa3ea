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
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import anyio

from ._check import bad_value, check_instance, check_int
from ._consts import (
    LONG_MAX,
    MAX_SCHEDULE_TIMEOUT,
    SIGKILL,
    TASK_INTERRUPTIBLE,
    TASK_NORMAL,
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
    return kernel._parker.wait(task)


def _sleep_end(task: TaskStruct, state: int) -> None:
    """What ``schedule()`` does once a sleep begun in *state* has ended (or was cancelled)."""
    task._wake_event = None
    task.state = TASK_RUNNING
    if state & TASK_UNINTERRUPTIBLE:
        task.kernel._hung_unwatch(task)


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
