"""Virtual time for tests and simulations.

This module provides an asyncio event loop whose clock is *virtual*: it starts at
``0.0`` and only moves when the loop has nothing else to do.  Whenever every task is
blocked and the only thing that could wake the loop is a timer, the clock jumps
straight to that timer's deadline ("autojump" with a threshold of zero, the same
policy as ``trio.testing.MockClock(autojump_threshold=0)``).  A one-hour
``asyncio.sleep`` therefore finishes in microseconds of wall time while every timer
still fires in deadline order.

Real I/O keeps working: before the clock is allowed to move, the selector is polled
without blocking, and ready file descriptors always win over a time jump.  When no
timer is pending at all, the loop blocks in a real ``select()`` until I/O or a
thread wake-up (``call_soon_threadsafe``) arrives, exactly like a normal loop.

Caveat: because time jumps as soon as nothing is *immediately* runnable, a timer
races against work that completes later in real time (a worker thread, a
subprocess, a remote peer).  Such a timer wins: for example ``fail_after(5)`` around
``to_thread.run_sync(...)`` times out at once on this loop.  Only use virtual time
with work that is driven by the loop itself or by already-pending I/O.

The module also maps the backend names used by the test-suite to anyio backend
tuples (see :func:`backend_params`).
"""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = [
    "BACKEND_NAMES",
    "VirtualClock",
    "VirtualTimeEventLoop",
    "backend_params",
    "is_virtual",
    "new_virtual_event_loop",
    "virtual_loop_factory",
]


class VirtualClock:
    """A clock that only moves when told to.

    :ivar now: the current virtual time in seconds; starts at ``start`` (``0.0`` by
        default) and never decreases.
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        """Create a clock reading ``start`` seconds."""
        self.now: float = float(start)

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (must be >= 0); return the new time."""
        if seconds < 0:
            raise ValueError(f"cannot move a clock backwards (advance by {seconds!r})")
        self.now += seconds
        return self.now

    def advance_to(self, deadline: float) -> float:
        """Move the clock forward to ``deadline`` if it is later than now; return the new time."""
        if deadline > self.now:
            self.now = deadline
        return self.now

    def __repr__(self) -> str:
        """Return a debugging representation showing the current time."""
        return f"{type(self).__name__}(now={self.now!r})"


class _VirtualTimeSelector(selectors.BaseSelector):
    """A selector wrapper that turns "wait for a timer" into a virtual time jump.

    Registration calls are delegated unchanged to the wrapped selector.  Only
    :meth:`select` differs; see its docstring.
    """

    def __init__(
        self,
        inner: selectors.BaseSelector,
        clock: VirtualClock,
        next_deadline: Callable[[], float | None],
        threads_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        """Wrap ``inner``; ``next_deadline`` reports the earliest scheduled timer, if any;
        ``threads_busy`` whether executor threads are still working for the loop."""
        self._inner = inner
        self._clock = clock
        self._next_deadline = next_deadline
        self._threads_busy = threads_busy

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        """Register ``fileobj`` with the wrapped selector."""
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        """Unregister ``fileobj`` from the wrapped selector."""
        return self._inner.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        """Change the events or data registered for ``fileobj``."""
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Poll for I/O, jumping virtual time instead of sleeping.

        1. Poll the real selector without blocking; ready events are returned as-is.
        2. If ``timeout`` is ``None`` (no timer is scheduled) block in the real
           selector: only I/O or a thread wake-up can make progress.
        3. Otherwise, if ``timeout`` is positive, advance the virtual clock by
           ``timeout`` -- and at least to the earliest scheduled deadline, so float
           rounding can never leave that timer just short of due -- and return no
           events.
        """
        ready = self._inner.select(0)
        if ready:
            return ready
        if timeout is None:
            return self._inner.select(None)
        if self._threads_busy():
            # an executor thread is working for the loop: its result is real work that must
            # come before any timer, so wait for it (in short real slices) instead of jumping
            return self._inner.select(min(timeout, 0.01))
        if timeout > 0 and self._next_deadline() in (None, math.inf):
            # only sleepers "forever" (anyio.sleep_forever schedules at infinity): nothing
            # but I/O or a thread can make progress, so block for real
            return self._inner.select(None)
        if timeout > 0:
            self._clock.advance(timeout)
            deadline = self._next_deadline()
            if deadline is not None:
                self._clock.advance_to(deadline)
        return []

    def close(self) -> None:
        """Close the wrapped selector."""
        self._inner.close()

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        """Return the key registered for ``fileobj`` in the wrapped selector."""
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        """Return the wrapped selector's file-object-to-key mapping."""
        return self._inner.get_map()


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop running on a :class:`VirtualClock`.

    ``time()`` returns the virtual clock, so ``call_later``, ``asyncio.sleep``,
    ``asyncio.timeout`` and ``anyio.current_time()`` all use virtual time.  The
    clock jumps to the next timer whenever the loop would otherwise wait for it.
    """

    def __init__(
        self,
        selector: selectors.BaseSelector | None = None,
        *,
        clock: VirtualClock | None = None,
    ) -> None:
        """Create the loop, optionally around a given real ``selector`` and ``clock``."""
        self._virtual_clock = clock if clock is not None else VirtualClock()
        inner = selector if selector is not None else selectors.DefaultSelector()
        self._threads_pending = 0
        super().__init__(
            _VirtualTimeSelector(
                inner, self._virtual_clock, self._next_deadline, lambda: self._threads_pending > 0
            )
        )

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:  # type: ignore[override]
        """As the base loop, but virtual time stands still until the thread has finished."""
        future: asyncio.Future[Any] = super().run_in_executor(executor, func, *args)
        self._threads_pending += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _future: asyncio.Future[Any]) -> None:
        self._threads_pending -= 1

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Shut the default executor down without a (virtual, instantly expiring) timeout."""
        executor: Any = getattr(self, "_default_executor", None)
        self._executor_shutdown_called = True
        if executor is None:
            return
        executor.shutdown(wait=True)  # every job has finished by now: this returns at once
        self._default_executor = None

    @property
    def clock(self) -> VirtualClock:
        """The virtual clock driving this loop."""
        return self._virtual_clock

    def time(self) -> float:
        """Return the current virtual time in seconds."""
        return self._virtual_clock.now

    def _next_deadline(self) -> float | None:
        """Return the deadline at the top of the timer heap, or ``None`` if it is empty.

        The top entry may be a cancelled handle; jumping to its deadline is harmless
        because the loop only ever asks us to advance towards the earliest timer.
        """
        scheduled: list[asyncio.TimerHandle] = getattr(self, "_scheduled", [])
        if not scheduled:
            return None
        return scheduled[0].when()


def new_virtual_event_loop() -> asyncio.AbstractEventLoop:
    """Return a new :class:`VirtualTimeEventLoop` whose clock reads ``0.0``."""
    return VirtualTimeEventLoop()


#: A zero-argument loop factory for anyio's asyncio backend, e.g.
#: ``anyio.run(main, backend="asyncio", backend_options={"loop_factory": virtual_loop_factory})``.
virtual_loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_virtual_event_loop


#: Backend names understood by :func:`backend_params`.
BACKEND_NAMES: tuple[str, ...] = (
    "asyncio",
    "asyncio+uvloop",
    "trio",
    "asyncio+virtual",
    "trio+virtual",
)


def is_virtual(name: str) -> bool:
    """Return whether the backend called ``name`` runs on virtual (auto-jumping) time."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKEND_NAMES}")
    return name.endswith("+virtual")


def backend_params(name: str) -> tuple[str, dict[str, object]]:
    """Return a fresh anyio ``(backend, options)`` tuple for the backend called ``name``.

    Each call builds new objects (a virtual trio run gets its own ``MockClock``), so
    the result can be handed to exactly one ``anyio.run`` or test.
    """
    if name == "asyncio":
        return ("asyncio", {})
    if name == "asyncio+uvloop":
        return ("asyncio", {"use_uvloop": True})
    if name == "trio":
        return ("trio", {})
    if name == "asyncio+virtual":
        return ("asyncio", {"loop_factory": new_virtual_event_loop})
    if name == "trio+virtual":
        import trio.testing

        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    raise ValueError(f"unknown backend {name!r}; expected one of {BACKEND_NAMES}")
