"""Parking a task until another wakes it: the cheapest sleep each backend offers.

``schedule()`` and an idle kworker sleep here. ``wait(task)`` stores a wake token in
``task._wake_event`` and returns what to await; ``unpark(token)`` ends that await. On asyncio
the token and the awaitable are one bare future; on trio the token is the trio task and the
awaitable ``wait_task_rescheduled``. Both are what ``anyio.Event`` is built on, without the
Event's own bookkeeping (a waiter deque per Event, some 700 bytes), which matters when
thousands of work items sleep at once. Cancellation works as for any other await on that
backend; a cancelled wait leaves no token behind for a waker to use.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._context import TaskStruct

__all__ = ["Parker", "make_parker"]


class Parker:
    """``wait(task)``: an awaitable that ends at ``unpark(task._wake_event)``, or raises at
    ``fail(task._wake_event, exc)``."""

    __slots__ = ("fail", "unpark", "wait")

    def __init__(
        self,
        wait: Callable[[TaskStruct], Awaitable[Any]],
        unpark: Callable[[Any], None],
        fail: Callable[[Any, BaseException], None] | None = None,
    ) -> None:
        self.wait = wait
        self.unpark = unpark
        self.fail = fail if fail is not None else (lambda token, _exc: unpark(token))


def _asyncio_parker(loop: Any) -> Parker:
    create_future = loop.create_future

    def wait(task: TaskStruct) -> Awaitable[Any]:
        fut = create_future()
        task._wake_event = fut
        return fut  # type: ignore[no-any-return]

    def unpark(fut: Any) -> None:
        if not fut.done():
            fut.set_result(None)

    def fail(fut: Any, exc: BaseException) -> None:
        if not fut.done():
            fut.set_exception(exc)

    return Parker(wait, unpark, fail)


def _trio_parker(trio: Any) -> Parker:
    lowlevel = trio.lowlevel

    def wait(task: TaskStruct) -> Awaitable[Any]:
        task._wake_event = lowlevel.current_task()

        def abort(_raise_cancel: object) -> object:
            task._wake_event = None  # nobody may reschedule a task that is being cancelled
            return lowlevel.Abort.SUCCEEDED

        return lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    def unpark(trio_task: Any) -> None:
        lowlevel.reschedule(trio_task)

    def fail(trio_task: Any, exc: BaseException) -> None:
        import outcome  # trio's own dependency

        lowlevel.reschedule(trio_task, outcome.Error(exc))

    return Parker(wait, unpark, fail)


def _anyio_parker() -> Parker:
    def wait(task: TaskStruct) -> Awaitable[Any]:
        ev = anyio.Event()
        task._wake_event = ev
        return ev.wait()

    def unpark(ev: Any) -> None:
        ev.set()

    return Parker(wait, unpark)


def make_parker() -> Parker:
    """The parker for the running backend (call inside the event loop)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return _asyncio_parker(loop)
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return _trio_parker(trio)
    return _anyio_parker()
