"""Wait queues and completions.

Kernel invariants modelled (include/linux/wait.h, kernel/sched/wait.c, kernel/sched/completion.c):

* ``wait_event*(wq, condition)`` checks *condition* first and returns at once if it holds; else
  the task queues itself, sets its state, re-checks, and sleeps; every wake-up of *wq* makes it
  re-check. A wake-up between the check and the sleep is never lost.
* ``wake_up(wq)`` wakes every non-exclusive waiter and one exclusive waiter; ``wake_up_all``
  wakes all; ``wake_up_interruptible*`` only ``TASK_INTERRUPTIBLE`` sleepers. Waking does not make
  the condition true: the waker changes it first.
* ``wait_event_timeout`` returns 0 if the condition is still false when the timeout elapsed, 1 if
  it became true only at the timeout, else the jiffies left; the interruptible forms return
  ``-ERESTARTSYS`` when a signal arrives first.
* A completion counts: a ``complete()`` before the wait is not lost; ``complete()`` wakes one
  waiter, ``complete_all()`` all of them, for good.

anyio cancellation has no kernel equivalent; a waiter cancelled while it sleeps leaves the queue,
and if a ``complete()`` or an exclusive ``wake_up()`` had just picked it, the wake-up is passed to
the next waiter instead of being lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._check import check_callback, check_instance, check_int, is_async_callable
from ._consts import (
    ERESTARTSYS,
    MAX_SCHEDULE_TIMEOUT,
    TASK_INTERRUPTIBLE,
    TASK_NORMAL,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
)
from ._context import TaskStruct, _cur
from ._printk import symbol_name
from ._sched import (
    INT_MAX,
    _check_timeout,
    _deliverable,
    _schedule_timeout,
    schedule,
    try_to_wake_up,
)
from ._sleeping import sleeping_checked

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "Completion",
    "DECLARE_COMPLETION",
    "DECLARE_WAIT_QUEUE_HEAD",
    "WaitQueueHead",
    "complete",
    "complete_all",
    "completion_done",
    "init_completion",
    "init_waitqueue_head",
    "reinit_completion",
    "wait_event",
    "wait_event_interruptible",
    "wait_event_interruptible_timeout",
    "wait_event_timeout",
    "wait_for_completion",
    "wait_for_completion_interruptible",
    "wait_for_completion_timeout",
    "wait_var_event",
    "wake_up",
    "wake_up_all",
    "wake_up_interruptible",
    "wake_up_interruptible_all",
    "wake_up_nr",
    "wake_up_var",
    "waitqueue_active",
]

UINT_MAX = 0xFFFFFFFF


class _WaitEntry:
    __slots__ = ("exclusive", "queued", "task")

    def __init__(self, task: TaskStruct, exclusive: bool) -> None:
        self.task = task
        self.exclusive = exclusive
        self.queued = False


class WaitQueueHead:
    """
    ``wait_queue_head_t``: a list of sleeping tasks, non-exclusive waiters first.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "_entries")

    def __init__(self) -> None:
        self._entries: deque[_WaitEntry] = deque()  # A

    def __repr__(self) -> str:
        return f"<WaitQueueHead waiters={len(self._entries)}>"


def DECLARE_WAIT_QUEUE_HEAD() -> WaitQueueHead:
    """
    Return a new, empty wait queue head.

    .. versionadded:: 0.1
    """
    return WaitQueueHead()


def _wq(wq: object, func: str) -> WaitQueueHead:
    """*wq* if it is a :class:`WaitQueueHead` (the cheap exact-type test first)."""
    if type(wq) is WaitQueueHead:
        return wq
    return check_instance(wq, WaitQueueHead, func, "wq")


def init_waitqueue_head(wq: WaitQueueHead) -> None:
    """
    (Re)initialise *wq* as an empty wait queue.

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`.

    .. versionadded:: 0.1
    """
    _wq(wq, "init_waitqueue_head")._entries = deque()


def waitqueue_active(wq: WaitQueueHead) -> bool:
    """
    True if someone waits on *wq*.

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`.

    .. versionadded:: 0.1
    """
    return bool(_wq(wq, "waitqueue_active")._entries)


def _wake(wq: WaitQueueHead, mode: int, nr_exclusive: int) -> None:
    for entry in list(wq._entries):
        if try_to_wake_up(entry.task, mode) and entry.exclusive:
            nr_exclusive -= 1
            if nr_exclusive == 0:
                break


# The wake_up family is a hot path: the wait queue is used first inside ``try`` (a wrong
# object fails on ``._entries`` before anything is woken) and checked on the failure path only.


def wake_up(wq: WaitQueueHead) -> None:
    """
    Wake all non-exclusive waiters of *wq* and one exclusive waiter.

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    try:
        _wake(wq, TASK_NORMAL, 1)
    except AttributeError:
        _wq(wq, "wake_up")
        raise


def wake_up_nr(wq: WaitQueueHead, nr: int) -> None:
    """
    Wake all non-exclusive waiters and *nr* exclusive ones; *nr* 0 wakes them all.

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`, or *nr* is not an int.
        ValueError: *nr* is negative or does not fit an ``int``.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _wq(wq, "wake_up_nr")
    check_int(nr, "wake_up_nr", "nr", lo=0, hi=INT_MAX)
    _wake(wq, TASK_NORMAL, nr)


def wake_up_all(wq: WaitQueueHead) -> None:
    """
    Wake every waiter of *wq*.

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    try:
        _wake(wq, TASK_NORMAL, 0)
    except AttributeError:
        _wq(wq, "wake_up_all")
        raise


def wake_up_interruptible(wq: WaitQueueHead) -> None:
    """
    Wake the ``TASK_INTERRUPTIBLE`` waiters of *wq* (one exclusive).

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    try:
        _wake(wq, TASK_INTERRUPTIBLE, 1)
    except AttributeError:
        _wq(wq, "wake_up_interruptible")
        raise


def wake_up_interruptible_all(wq: WaitQueueHead) -> None:
    """
    Wake every ``TASK_INTERRUPTIBLE`` waiter of *wq*.

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    try:
        _wake(wq, TASK_INTERRUPTIBLE, 0)
    except AttributeError:
        _wq(wq, "wake_up_interruptible_all")
        raise


def _check_cond(condition: object, func: str) -> None:
    """A wait condition: a plain function of no arguments, evaluated in the waiting task between
    ``set_current_state()`` and ``schedule()``, where it must not sleep."""
    if callable(condition) and is_async_callable(condition):
        raise TypeError(
            f"{func}(): the condition is evaluated after the task state is set, where it must "
            "not sleep, so it must be a plain function (e.g. `lambda: done`), but "
            f"{symbol_name(condition)} is `async def`"
        )
    check_callback(condition, func, "condition", shape="condition()", nargs=0, kind="any")


def _check_wait(wq: object, condition: object, func: str) -> None:
    _wq(wq, func)
    _check_cond(condition, func)


def _check_wait_timeout(wq: object, condition: object, timeout: object, func: str) -> None:
    _wq(wq, func)
    _check_cond(condition, func)
    _check_timeout(timeout, func)


async def wait_event_common(
    wq: WaitQueueHead,
    condition: Callable[[], object],
    state: int,
    timeout: int | None,
    exclusive: bool = False,
) -> int:
    """``___wait_event``: the loop every wait_event form shares."""
    task = _cur()
    entry = _WaitEntry(task, exclusive)
    ret = timeout if timeout is not None else 0
    try:
        while True:
            # prepare_to_wait_event
            if not entry.queued:
                if exclusive:
                    wq._entries.append(entry)
                else:
                    wq._entries.appendleft(entry)
                entry.queued = True
            task.state = state
            # the condition is checked before the signal: a waiter whose condition came true
            # returns success even if a signal arrived too (___wait_event)
            cond = condition()
            if timeout is not None:
                if cond and not ret:
                    ret = 1
                if cond or not ret:
                    break
            elif cond:
                break
            if state & TASK_INTERRUPTIBLE and _deliverable(task):
                return -ERESTARTSYS
            if timeout is None:
                await schedule()
            else:
                ret = await _schedule_timeout(ret)
    except BaseException:
        # Cancelled by anyio (no kernel equivalent): an exclusive waiter may have been the one
        # a wake_up picked; pass that wake-up on so it is not lost (abort_exclusive_wait).
        if exclusive:
            _remove(wq, entry)
            _wake_one_exclusive(wq, TASK_NORMAL)
        raise
    finally:
        task.state = TASK_RUNNING
        _remove(wq, entry)
    return ret


def _remove(wq: WaitQueueHead, entry: _WaitEntry) -> None:
    if entry.queued:
        entry.queued = False
        try:
            wq._entries.remove(entry)
        except ValueError:
            pass


def _wake_one_exclusive(wq: WaitQueueHead, mode: int) -> None:
    for entry in list(wq._entries):
        if entry.exclusive and try_to_wake_up(entry.task, mode):
            break


async def _checkpoint() -> None:
    import anyio.lowlevel

    await anyio.lowlevel.checkpoint()


@sleeping_checked(lambda wq, condition: _check_wait(wq, condition, "wait_event"))
async def wait_event(wq: WaitQueueHead, condition: Callable[[], object]) -> None:
    """
    Sleep (uninterruptibly) until ``condition()`` is true, re-checking on every wake-up of *wq*.

    Raises:
        TypeError: *wq* is not a :class:`WaitQueueHead`, or *condition* is not a plain function
            of no arguments (checked at the call, before any coroutine exists).

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    if condition():
        await _checkpoint()
        return
    await wait_event_common(wq, condition, TASK_UNINTERRUPTIBLE, None)


@sleeping_checked(lambda wq, condition: _check_wait(wq, condition, "wait_event_interruptible"))
async def wait_event_interruptible(wq: WaitQueueHead, condition: Callable[[], object]) -> int:
    """
    Sleep until ``condition()`` is true or a signal arrives.

    Returns:
        0 when the condition holds, ``-ERESTARTSYS`` if interrupted by a signal.

    Raises:
        TypeError: as :func:`wait_event`.

    .. versionadded:: 0.1
    """
    if condition():
        await _checkpoint()
        return 0
    return await wait_event_common(wq, condition, TASK_INTERRUPTIBLE, None)


@sleeping_checked(
    lambda wq, condition, timeout: _check_wait_timeout(wq, condition, timeout, "wait_event_timeout")
)
async def wait_event_timeout(
    wq: WaitQueueHead, condition: Callable[[], object], timeout: int
) -> int:
    """
    Sleep until ``condition()`` is true or *timeout* jiffies have passed.

    *timeout* is a ``long``: a negative one is what ``schedule_timeout()`` reports as a wrong
    timeout value, and the wait then returns 0 at once (or the timeout itself if the
    condition already holds), as in the kernel.

    Returns:
        0 if the condition is false after the timeout; 1 if it became true only at the timeout;
        otherwise the jiffies left (at least 1).

    Raises:
        TypeError: as :func:`wait_event`, or *timeout* is not an int.
        ValueError: *timeout* does not fit a ``long``.

    .. versionadded:: 0.1
    """
    if condition():
        await _checkpoint()
        return timeout or 1
    return await wait_event_common(wq, condition, TASK_UNINTERRUPTIBLE, timeout)


@sleeping_checked(
    lambda wq, condition, timeout: _check_wait_timeout(
        wq, condition, timeout, "wait_event_interruptible_timeout"
    )
)
async def wait_event_interruptible_timeout(
    wq: WaitQueueHead, condition: Callable[[], object], timeout: int
) -> int:
    """
    :func:`wait_event_timeout`, interruptible: ``-ERESTARTSYS`` if a signal arrives first.

    Raises:
        TypeError, ValueError: as :func:`wait_event_timeout`.

    .. versionadded:: 0.1
    """
    if condition():
        await _checkpoint()
        return timeout or 1
    return await wait_event_common(wq, condition, TASK_INTERRUPTIBLE, timeout)


# --- wait_var_event: waits keyed by an object (used by tasklet_kill, flush...) ------------------


def _var_queue(kernel: Kernel, var: object) -> WaitQueueHead:
    wq = kernel._var_waiters.get(id(var))
    if wq is None:
        wq = kernel._var_waiters[id(var)] = WaitQueueHead()
    return wq


async def wait_var_event(var: object, condition: Callable[[], object]) -> None:
    """Sleep until ``condition()`` holds, woken by :func:`wake_up_var` on *var*."""
    if condition():
        await _checkpoint()
        return
    kernel = _cur().kernel
    wq = _var_queue(kernel, var)
    try:
        await wait_event_common(wq, condition, TASK_UNINTERRUPTIBLE, None)
    finally:
        if not wq._entries and kernel._var_waiters.get(id(var)) is wq:
            del kernel._var_waiters[id(var)]


def wake_up_var(kernel: Kernel, var: object) -> None:
    """Wake whoever waits in :func:`wait_var_event` on *var*."""
    wq = kernel._var_waiters.get(id(var))
    if wq is not None:
        _wake(wq, TASK_NORMAL, 0)


# --- completions ---------------------------------------------------------------------------------


class Completion:
    """
    ``struct completion``: a counted "it happened" signal.

    .. versionadded:: 0.1
    """

    __slots__ = ("__weakref__", "done", "wait")

    def __init__(self) -> None:
        self.done = 0  # A: UINT_MAX after complete_all()
        self.wait = WaitQueueHead()  # A

    def __repr__(self) -> str:
        done = "all" if self.done == UINT_MAX else str(self.done)
        return f"<Completion done={done} waiters={len(self.wait._entries)}>"


def DECLARE_COMPLETION() -> Completion:
    """
    Return a new completion, not done.

    .. versionadded:: 0.1
    """
    return Completion()


def _completion(c: object, func: str) -> Completion:
    """*c* if it is a :class:`Completion` (the cheap exact-type test first)."""
    if type(c) is Completion:
        return c
    return check_instance(c, Completion, func, "c")


def init_completion(c: Completion) -> None:
    """
    (Re)initialise *c*: not done, no waiters.

    Raises:
        TypeError: *c* is not a :class:`Completion`.

    .. versionadded:: 0.1
    """
    _completion(c, "init_completion")
    c.done = 0
    c.wait = WaitQueueHead()


def reinit_completion(c: Completion) -> None:
    """
    Reset *c* to not done (waiters are kept).

    Raises:
        TypeError: *c* is not a :class:`Completion`.

    .. versionadded:: 0.1
    """
    _completion(c, "reinit_completion").done = 0


def complete(c: Completion) -> None:
    """
    Signal *c* once: wakes one waiter; counted if nobody waits yet.

    Raises:
        TypeError: *c* is not a :class:`Completion`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    if type(c) is not Completion:
        _completion(c, "complete")
    if c.done != UINT_MAX:
        c.done += 1
    for entry in c.wait._entries:
        if try_to_wake_up(entry.task, TASK_NORMAL):
            break


def complete_all(c: Completion) -> None:
    """
    Signal *c* for good: wakes every waiter, and every later wait returns at once.

    Raises:
        TypeError: *c* is not a :class:`Completion`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.1
    """
    _completion(c, "complete_all").done = UINT_MAX
    _wake(c.wait, TASK_NORMAL, 0)


def completion_done(c: Completion) -> bool:
    """
    True if a wait on *c* would not sleep.

    Raises:
        TypeError: *c* is not a :class:`Completion`.

    .. versionadded:: 0.1
    """
    return _completion(c, "completion_done").done != 0


async def _wait_for_common(c: Completion, timeout: int, state: int) -> int:
    task = _cur()
    if not c.done:
        entry = _WaitEntry(task, True)
        c.wait._entries.append(entry)
        entry.queued = True
        try:
            while True:
                if state & TASK_INTERRUPTIBLE and _deliverable(task):
                    return -ERESTARTSYS
                task.state = state
                timeout = await _schedule_timeout(timeout)
                if c.done or not timeout:
                    break
        except BaseException:
            # Cancelled by anyio: a complete() may have picked this waiter; hand it to the next
            # one, or the completion would sit there with every other waiter still asleep.
            _remove(c.wait, entry)
            if completion_done(c):  # re-read: c.done changes while we sleep
                _wake_one_exclusive(c.wait, TASK_NORMAL)
            raise
        finally:
            task.state = TASK_RUNNING
            _remove(c.wait, entry)
        if not c.done:
            return timeout
    else:
        await _checkpoint()
    if c.done != UINT_MAX:
        c.done -= 1
    return timeout or 1


@sleeping_checked(lambda c: _completion(c, "wait_for_completion"))
async def wait_for_completion(c: Completion) -> None:
    """
    Sleep (uninterruptibly) until *c* is completed, consuming one completion.

    Raises:
        TypeError: *c* is not a :class:`Completion` (at the call, before any coroutine exists).

    .. versionadded:: 0.1
    """
    await _wait_for_common(c, MAX_SCHEDULE_TIMEOUT, TASK_UNINTERRUPTIBLE)


def _check_completion_timeout(c: object, timeout: object) -> None:
    _completion(c, "wait_for_completion_timeout")
    check_int(
        timeout,
        "wait_for_completion_timeout",
        "timeout",
        lo=0,
        hi=MAX_SCHEDULE_TIMEOUT,
        expected="a number of jiffies from 0 to MAX_SCHEDULE_TIMEOUT",
    )


@sleeping_checked(_check_completion_timeout)
async def wait_for_completion_timeout(c: Completion, timeout: int) -> int:
    """
    Wait for *c* at most *timeout* jiffies.

    *timeout* is an ``unsigned long`` handed to ``schedule_timeout()``, which takes a ``long``:
    only 0 to ``MAX_SCHEDULE_TIMEOUT`` is a timeout there.

    Returns:
        0 on timeout, else the jiffies left (at least 1).

    Raises:
        TypeError: *c* is not a :class:`Completion`, or *timeout* is not an int.
        ValueError: *timeout* is negative or above ``MAX_SCHEDULE_TIMEOUT``.

    .. versionadded:: 0.1
    """
    return await _wait_for_common(c, timeout, TASK_UNINTERRUPTIBLE)


@sleeping_checked(lambda c: _completion(c, "wait_for_completion_interruptible"))
async def wait_for_completion_interruptible(c: Completion) -> int:
    """
    Wait for *c* unless a signal arrives: 0, or ``-ERESTARTSYS``.

    Raises:
        TypeError: *c* is not a :class:`Completion`.

    .. versionadded:: 0.1
    """
    ret = await _wait_for_common(c, MAX_SCHEDULE_TIMEOUT, TASK_INTERRUPTIBLE)
    return ret if ret < 0 else 0
