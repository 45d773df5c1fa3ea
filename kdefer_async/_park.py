"""Parking a task until another wakes it: the cheapest sleep each backend offers.

``schedule()`` sleeps here. On asyncio a task waits on a bare future; on trio it uses
``wait_task_rescheduled``. Both are what ``anyio.Event`` is built on, without the Event's own
bookkeeping (a waiter set per Event), which matters when thousands of work items sleep at once.
Cancellation works as for any other await on that backend.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

__all__ = ["Parker", "make_parker"]


class Parker:
    """``park(set_token)`` sleeps until ``unpark(token)``; *set_token* receives the token."""

    __slots__ = ("park", "unpark")

    def __init__(
        self,
        park: Callable[[Callable[[Any], None]], Awaitable[None]],
        unpark: Callable[[Any], None],
    ) -> None:
        self.park = park
        self.unpark = unpark


def _asyncio_parker(loop: Any) -> Parker:
    async def park(set_token: Callable[[Any], None]) -> None:
        fut = loop.create_future()
        set_token(fut)
        await fut

    def unpark(fut: Any) -> None:
        if not fut.done():
            fut.set_result(None)

    return Parker(park, unpark)


def _trio_parker(trio: Any) -> Parker:
    lowlevel = trio.lowlevel

    async def park(set_token: Callable[[Any], None]) -> None:
        set_token(lowlevel.current_task())

        def abort(_raise_cancel: object) -> object:
            set_token(None)  # nobody may reschedule a task that is being cancelled
            return lowlevel.Abort.SUCCEEDED

        await lowlevel.wait_task_rescheduled(abort)

    def unpark(task: Any) -> None:
        lowlevel.reschedule(task)

    return Parker(park, unpark)


def _anyio_parker() -> Parker:
    async def park(set_token: Callable[[Any], None]) -> None:
        ev = anyio.Event()
        set_token(ev)
        await ev.wait()

    def unpark(ev: Any) -> None:
        ev.set()

    return Parker(park, unpark)


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
