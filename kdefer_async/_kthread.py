"""Kernel threads: ``kthread_create``/``kthread_run``, ``kthread_stop``, ``kthread_should_stop``.

Kernel invariants modelled (kernel/kthread.c):

* A kthread is created stopped and starts when woken (``kthread_run`` = create + wake).
* ``kthread_stop(k)`` sets the should-stop flag, wakes the thread and waits for it to exit,
  returning its exit code; a thread stopped before it ever ran never calls its function and
  exits with ``-EINTR``.
* A kthread ignores signals unless it ``allow_signal()``-s them.
* Parking (``kthread_park``/``kthread_parkme``/``kthread_unpark``) and
  ``kthread_complete_and_exit``: see the section at the end of this module.
* An exception escaping a thread function is an oops: reported, recorded in
  ``Kernel.oopses``; the thread dies and the kernel goes on (unless ``panic_on_oops``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import anyio

from ._check import bad_value, check_callback, check_instance, check_int, check_str
from ._consts import (
    EBUSY,
    EINTR,
    ENOSYS,
    LONG_MAX,
    TASK_PARKED,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
)
from ._context import PF_NO_SETAFFINITY, TaskStruct, _cur, _current, claim
from ._exceptions import KernelBug, KernelPanic
from ._printk import format_c, record_oops, warn, warn_once
from ._sched import (
    LONG_MIN,
    sched_exit,
    sched_in,
    sched_out,
    sched_resume,
    try_to_wake_up,
    wake_up_process,
)
from ._sleeping import sleeping, sleeping_checked
from ._trace import SCHED_KTHREAD_STOP, SCHED_KTHREAD_STOP_RET, SWITCH_STATE_P, emit
from ._wait import Completion, complete, wait_var_event, wake_up_var

__all__ = ["kthread_bind", "kthread_create", "kthread_run", "kthread_should_stop", "kthread_stop"]

TASK_COMM_LEN = 16
ThreadFn = Callable[[Any], Coroutine[Any, Any, Any]]


def kthread_create(threadfn: ThreadFn, data: Any, namefmt: str, *args: object) -> TaskStruct:
    """
    Create a kernel thread running ``await threadfn(data)``; it starts when woken.

    *data* is passed on as it is (the kernel's ``void *``).

    Raises:
        TypeError: *threadfn* is not an ``async def`` function (a kthread may sleep) callable
            as ``threadfn(data)``; *namefmt* is not a ``str`` or does not match *args*.

    .. versionadded:: 0.1
    """
    return _kthread_create("kthread_create", threadfn, data, namefmt, args)


def _kthread_create(
    func: str, threadfn: ThreadFn, data: Any, namefmt: str, args: tuple[object, ...]
) -> TaskStruct:
    check_callback(
        threadfn,
        func,
        "threadfn",
        shape="threadfn(data)",
        nargs=1,
        kind="sleeping",
        what="a kthread function",
    )
    check_str(namefmt, func, "namefmt")
    creator = _cur()
    kernel = creator.kernel
    try:
        comm = kthread_comm(namefmt, *args)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}(): the arguments do not match the name format: {exc}") from None
    task = TaskStruct(kernel, comm, kernel._alloc_pid(), creator.cpu, kthread=True)
    kthread_setup(task, threadfn, data)
    return task


def kthread_comm(namefmt: str, *args: object) -> str:
    """A kthread's name: *namefmt* formatted, cut to ``TASK_COMM_LEN - 1`` characters."""
    return format_c(namefmt, args)[: TASK_COMM_LEN - 1]


def kthread_setup(task: TaskStruct, threadfn: ThreadFn, data: Any) -> None:
    """Make *task* (new, not started) a kthread running ``await threadfn(data)`` once woken."""
    kernel = task.kernel
    comm = task.comm
    task.state = TASK_UNINTERRUPTIBLE
    task.data = data

    def start() -> None:
        task.state = TASK_RUNNING
        kernel._kthread_not_run.add(task)
        kernel._spawn(_kthread_main, task, threadfn, data, name=comm)

    kernel._kthread_starts[task] = start
    kernel._tasks[task.pid] = task


def kthread_run(threadfn: ThreadFn, data: Any, namefmt: str, *args: object) -> TaskStruct:
    """
    Create and start a kernel thread running ``await threadfn(data)``, named by *namefmt*.

    Returns:
        The new task (``.comm``, ``.pid``, ``.cpu``).

    Raises:
        TypeError: as :func:`kthread_create`.

    Context:
        Task context.

    .. versionadded:: 0.1
    """
    task = _kthread_create("kthread_run", threadfn, data, namefmt, args)
    wake_up_process(task)
    return task


async def _kthread_main(task: TaskStruct, threadfn: ThreadFn, data: Any) -> None:
    _current.set(task)
    claim(task)
    kernel = task.kernel
    kernel._kthread_not_run.discard(task)
    if kernel._trace_on:
        sched_in(task)
    ret: int = 0
    try:
        if task.should_stop:
            ret = -EINTR
        else:
            if task.should_park:
                await _parkme(task)  # parked before it ever ran: parks first, as kthread() does
            result = await threadfn(data)
            ret = result if isinstance(result, int) else 0
    except KthreadExit as exc:
        ret = exc.code
    except KernelPanic:
        ret = -EINTR
    except Exception as exc:
        record_oops(task, exc, f"kthread {task.comm}")
        ret = -EINTR
        kernel._after_oops(exc)
    finally:
        task._exited = True
        task._exit_code = ret
        task.state = TASK_RUNNING
        kernel._tasks.pop(task.pid, None)
        wake_up_var(kernel, task)
        if kernel._trace_on:
            sched_exit(task)


def kthread_should_stop() -> bool:
    """
    True once :func:`kthread_stop` was called on the running thread.

    .. versionadded:: 0.1
    """
    return _cur().should_stop


def kthread_bind(task: TaskStruct, cpu: int) -> None:
    """
    Bind a kthread that has not started running to CPU *cpu*.

    Binding a thread that already runs is a WARN in the kernel, and nothing changes.

    Raises:
        TypeError: *task* is not a :class:`TaskStruct`, *cpu* not an ``int``.
        ValueError: *cpu* is not one of the kernel's CPUs.

    .. versionadded:: 0.1
    """
    from ._work import check_cpu

    check_instance(task, TaskStruct, "kthread_bind", "task")
    kernel = task.kernel
    nr = check_cpu(kernel, cpu, "kthread_bind")
    if task in kernel._kthread_starts or task in kernel._kthread_not_run:
        task.cpu = nr
        task.flags |= PF_NO_SETAFFINITY  # a per-CPU thread now
    else:
        warn()


def _check_stop(task: object) -> None:
    if not check_instance(task, TaskStruct, "kthread_stop", "task").is_kthread:
        # to_kthread() of a task that is no kthread: a WARN, then a NULL dereference
        raise bad_value("kthread_stop", "task", "a kthread", task)


@sleeping_checked(_check_stop)
async def kthread_stop(task: TaskStruct) -> int:
    """
    Ask *task* to stop, wake it, and wait until it exits.

    Returns:
        The thread function's return value (``-EINTR`` if it never ran).

    Raises:
        TypeError: *task* is not a :class:`TaskStruct`.
        ValueError: *task* is not a kthread.
        KernelBug: a thread stopping itself would wait forever.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.1
    """
    me = _cur()
    if task is me:
        from ._locking import report_recursive_locking

        report_recursive_locking(f"(kthread {task.comm})", "kthread_stop", "kthread")
    kernel = task.kernel
    if kernel._trace_on:
        emit(kernel, _cur(), SCHED_KTHREAD_STOP, task.comm, task.pid)
    task.should_stop = True
    _unpark(task)  # a parked thread resumes, and then sees kthread_should_stop()
    wake_up_process(task)
    await wait_var_event(task, lambda: task._exited)
    await anyio.lowlevel.checkpoint()
    ret = task._exit_code if task._exit_code is not None else 0
    if kernel._trace_on:
        emit(kernel, _cur(), SCHED_KTHREAD_STOP_RET, ret)
    return ret


# ---------------------------------------------------------------------------------------------
# Parking and exiting (kernel/kthread.c)
#
# * ``kthread_park(k)`` sets SHOULD_PARK, wakes *k* and sleeps until *k* is asleep in
#   ``kthread_parkme()`` (TASK_PARKED): a thread that never calls it makes the caller wait
#   forever. Parking a thread that exits is a WARN and ``-ENOSYS``; parking it twice a
#   WARN_ON_ONCE and ``-EBUSY``. A thread parked before it ever ran parks before its function.
# * ``kthread_unpark(k)`` clears SHOULD_PARK and wakes *k* from TASK_PARKED (only it does:
#   ``wake_up_process()`` does not); it does not wait. ``kthread_stop()`` unparks first.
# * ``kthread_complete_and_exit(comp, code)`` (5.17) completes *comp*, then the thread ends as
#   if its function had returned *code*: ``kthread_stop()`` returns it.
# ---------------------------------------------------------------------------------------------

__all__ += [
    "KthreadExit",
    "kthread_complete_and_exit",
    "kthread_park",
    "kthread_parkme",
    "kthread_should_park",
    "kthread_unpark",
]


class KthreadExit(BaseException):
    """
    Raised by :func:`kthread_complete_and_exit` to end the calling kthread with ``code``.

    A ``BaseException``, as ``SystemExit`` is: ``except Exception`` in the thread function does
    not stop the thread from exiting. The kthread machinery catches it; it never reaches the
    caller of ``kthread_stop()``, which gets ``code`` instead.

    .. versionadded:: 0.2
    """

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _check_kthread(task: object, func: str) -> TaskStruct:
    if not check_instance(task, TaskStruct, func, "task").is_kthread:
        # to_kthread() of a task that is no kthread: a WARN, then a NULL dereference
        raise bad_value(func, "task", "a kthread", task)
    return task  # type: ignore[return-value]


def kthread_should_park() -> bool:
    """
    True once :func:`kthread_park` was called on the running thread (and it was not unparked
    since): the thread should then call :func:`kthread_parkme`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    return _cur().should_park


async def _parkme(task: TaskStruct) -> None:
    """``__kthread_parkme()``: sleep in TASK_PARKED while SHOULD_PARK is set."""
    kernel = task.kernel
    while True:
        task.state = TASK_PARKED
        if not task.should_park:
            break
        task._parked = True
        wake_up_var(kernel, task)  # complete(&self->parked): kthread_park() may return
        waiter = kernel._parker.wait(task)
        if kernel._trace_on:
            sched_out(task, SWITCH_STATE_P)
        try:
            await waiter
        finally:
            task._wake_event = None
            task._parked = False
            if kernel._trace_on:
                sched_resume(task)
    task.state = TASK_RUNNING


@sleeping
async def kthread_parkme() -> None:
    """
    Park the running kthread while :func:`kthread_should_park` holds: sleep in ``TASK_PARKED``
    until :func:`kthread_unpark` (or ``kthread_stop``). Returns at once if no park was asked for.

    Context:
        Task context; may sleep. Always a checkpoint.

    .. versionadded:: 0.2
    """
    task = _cur()
    if not task.should_park:
        await anyio.lowlevel.checkpoint()
        return
    await _parkme(task)


@sleeping_checked(lambda task: _check_kthread(task, "kthread_park"))
async def kthread_park(task: TaskStruct) -> int:
    """
    Ask the kthread *task* to park, wake it, and sleep until it has parked.

    A thread that was created but never woken starts and parks before its function runs.
    Called by *task* itself, it only sets the flag: the thread parks at its next
    :func:`kthread_parkme`.

    Returns:
        0 once *task* has parked; ``-ENOSYS`` (with a WARN) if it has exited; ``-EBUSY``
        (WARN_ON_ONCE) if a park was already asked for.

    Raises:
        TypeError: *task* is not a :class:`TaskStruct`.
        ValueError: *task* is not a kthread.

    Context:
        Task context; may sleep (for as long as *task* takes to call ``kthread_parkme()``:
        forever if it never does, as in the kernel). Always a checkpoint.

    .. versionadded:: 0.2
    """
    if task._exited:
        warn()
        await anyio.lowlevel.checkpoint()
        return -ENOSYS
    if task.should_park:
        warn_once(("kthread_park", "EBUSY"))
        await anyio.lowlevel.checkpoint()
        return -EBUSY
    task.should_park = True
    if task is _cur():
        await anyio.lowlevel.checkpoint()
        return 0
    wake_up_process(task)  # (starts it if it was never woken)
    await wait_var_event(task, lambda: task._parked)
    return 0


def _unpark(task: TaskStruct) -> None:
    if task.should_park:
        task.should_park = False
        try_to_wake_up(task, TASK_PARKED)


def kthread_unpark(task: TaskStruct) -> None:
    """
    Clear *task*'s park request and wake it from ``TASK_PARKED``; does not wait for it.

    Raises:
        TypeError: *task* is not a :class:`TaskStruct`.
        ValueError: *task* is not a kthread.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    _unpark(_check_kthread(task, "kthread_unpark"))


def _check_exit(comp: object, code: object) -> None:
    if comp is not None and type(comp) is not Completion:
        check_instance(
            comp, Completion, "kthread_complete_and_exit", "comp", "a Completion or None"
        )
    check_int(code, "kthread_complete_and_exit", "code", lo=LONG_MIN, hi=LONG_MAX)


@sleeping_checked(_check_exit)
async def kthread_complete_and_exit(comp: Completion | None, code: int) -> NoReturn:
    """
    Complete *comp* (if not ``None``) and end the calling kthread with exit code *code*:
    :func:`kthread_stop` on it returns *code*. Never returns.

    Raises:
        TypeError: *comp* is not a :class:`Completion` or ``None``; *code* not an ``int``.
        ValueError: *code* does not fit a ``long``.
        KernelBug: the caller is not a kthread made by ``kthread_create``/``kthread_run``
            (nor a kthread_worker's thread): the kernel would dereference a NULL kthread.
        KthreadExit: always, in a kthread: it unwinds the thread function, which must let it
            pass.

    Context:
        Task context, in a kthread.

    .. versionadded:: 0.2
    """
    task = _cur()
    if not task.is_kthread or task.kernel._tasks.get(task.pid) is not task:
        raise KernelBug(
            f"kthread_complete_and_exit() called from {task.comm}/{task.pid}, which is not a "
            "kthread made by kthread_create() or kthread_run(): there is no kthread to end"
        )
    if comp is not None:
        complete(comp)
    raise KthreadExit(code)
