"""Light tasks: kernel threads started straight on the asyncio loop, reaped at shutdown.

An unbound pool may need one kworker per sleeping item, so thousands of them. An anyio task
costs about 2 KB of bookkeeping on top of the asyncio task itself (a task handle with an
Event, a cancel scope, task state, a wrapper coroutine), which would dwarf the item it runs.
On asyncio, the kernel therefore starts those kworkers with ``loop.create_task``. The caller
keeps the strong reference to the task (asyncio itself keeps only a weak one); a light
task's coroutine names its kernel in ``light_of``. Structured concurrency is kept by hand:

* a reaper task inside the kernel's root task group cancels every light task, and waits for
  them, when the root group is cancelled (shutdown, panic);
* a light task that fails (anything but its own cancellation) cancels the root group; the
  kernel raises the first such error when ``async with Kernel()`` exits, so nothing is lost.

On the other backends there is no such cost to avoid and kworkers are ordinary anyio tasks.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = ["LightTasks"]


class LightTasks:
    """The light tasks of one kernel, on its asyncio loop."""

    __slots__ = ("_done_cb", "_done_ctx", "failed", "kernel", "loop")

    def __init__(self, kernel: Kernel, loop: asyncio.AbstractEventLoop) -> None:
        self.kernel = kernel  # I
        self.loop = loop  # I
        self.failed: list[BaseException] = []  # A: what light tasks raised, in order
        self._done_cb = self._done  # I: one bound method for every task
        #: I: ... and one context to run it in (else each task would copy one)
        self._done_ctx = contextvars.Context()

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start *coro* (whose ``light_of`` is this kernel) as a light task named *name*; the
        caller keeps the task."""
        task = self.loop.create_task(coro, name=name)
        task.add_done_callback(self._done_cb, context=self._done_ctx)
        return task

    def live(self) -> list[asyncio.Task[Any]]:
        """This kernel's light tasks that have not finished."""
        kernel = self.kernel
        return [
            t
            for t in asyncio.all_tasks(self.loop)
            if getattr(t.get_coro(), "light_of", None) is kernel
        ]

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and exc is not self.kernel._panic:  # (the panic is raised once)
            self.failed.append(exc)
            kernel = self.kernel
            for group in (kernel._root, kernel._outer):
                if group is not None:
                    group.cancel_scope.cancel()  # as an anyio task group does for a failed child

    async def reap(self) -> None:
        """Run in the root task group: at its cancellation, end every light task."""
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                while pending := self.live():
                    for task in pending:
                        task.cancel()
                    await asyncio.wait(pending)


def light_tasks(kernel: Kernel) -> LightTasks | None:
    """A :class:`LightTasks` for *kernel* if it runs on asyncio (call at boot), else None."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return LightTasks(kernel, loop)
