"""Kernel threads: ``kthread_create``/``kthread_run``, ``kthread_stop``, ``kthread_should_stop``.

Kernel invariants modelled (kernel/kthread.c):

* A kthread is created stopped and starts when woken (``kthread_run`` = create + wake).
* ``kthread_stop(k)`` sets the should-stop flag, wakes the thread and waits for it to exit,
  returning its exit code; a thread stopped before it ever ran never calls its function and
  exits with ``-EINTR``.
* A kthread ignores signals unless it ``allow_signal()``-s them.
* An exception escaping a thread function is an oops: reported, recorded in
  ``Kernel.oopses``; the thread dies and the kernel goes on (unless ``panic_on_oops``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from ._check import bad_value, check_callback, check_instance, check_str
from ._consts import EINTR, TASK_RUNNING, TASK_UNINTERRUPTIBLE
from ._context import PF_NO_SETAFFINITY, TaskStruct, _cur, _current, claim
from ._exceptions import KernelPanic
from ._printk import format_c, record_oops, warn
from ._sched import wake_up_process
from ._sleeping import sleeping_checked
from ._wait import wait_var_event, wake_up_var

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
    ret: int = 0
    try:
        if task.should_stop:
            ret = -EINTR
        else:
            result = await threadfn(data)
            ret = result if isinstance(result, int) else 0
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
    task.should_stop = True
    wake_up_process(task)
    await wait_var_event(task, lambda: task._exited)
    await anyio.lowlevel.checkpoint()
    return task._exit_code if task._exit_code is not None else 0
