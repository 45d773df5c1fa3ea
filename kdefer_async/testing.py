"""Helpers for testing code that runs on a kdefer_async kernel.

* :func:`backend_params` gives a fresh anyio backend tuple for a backend name, including the
  virtual-time ones, for an ``anyio_backend`` pytest fixture::

      @pytest.fixture(params=kdefer_async.testing.BACKEND_NAMES)
      def anyio_backend(request):
          return kdefer_async.testing.backend_params(request.param)

  With ``"asyncio+virtual"`` or ``"trio+virtual"`` a test of ``msleep(2000)`` takes
  milliseconds: the clock jumps to the next timer whenever every task is blocked.
* :func:`settle` waits until every CPU of the running kernel is quiet: no softirq pending,
  every ksoftirqd asleep, no irq thread woken and not yet running its thread function, no
  kthread_worker item queued and not yet started. It never sleeps on the clock, so it is
  deterministic.

The library never imports this module itself.
"""

from __future__ import annotations

import anyio.lowlevel

from ._context import _cur
from ._kernel import Kernel
from ._vtime import (
    BACKEND_NAMES as BACKEND_NAMES,
    VirtualClock as VirtualClock,
    VirtualTimeEventLoop as VirtualTimeEventLoop,
    backend_params as backend_params,
    is_virtual as is_virtual,
    new_virtual_event_loop as new_virtual_event_loop,
)

__all__ = (
    "BACKEND_NAMES",
    "VirtualClock",
    "VirtualTimeEventLoop",
    "backend_params",
    "is_virtual",
    "new_virtual_event_loop",
    "settle",
)


async def settle(max_rounds: int = 10_000) -> None:
    """
    Yield until the running kernel is quiet: nothing pending, every ksoftirqd asleep, every
    irq thread that was woken has started its thread function, every kthread_worker has
    started its queued items.

    Quiet must hold for several scheduling rounds in a row, so that work woken by work
    (a softirq raising another, a tasklet re-scheduling itself) has run too. Timers that are
    armed but not due do not count: settle() does not advance time.

    Raises:
        RuntimeError: the kernel did not settle in *max_rounds* rounds (something re-raises
            itself forever, such as a scheduled tasklet that is disabled).

    .. versionadded:: 0.1
    """
    kernel = _cur().kernel
    quiet = 0
    for _ in range(max_rounds):
        await anyio.lowlevel.checkpoint()
        busy = any(c.pending or c._ksoftirqd_event is None for c in kernel.cpus)
        busy = busy or bool(kernel._kthread_not_run) or _threads_woken(kernel)
        quiet = 0 if busy else quiet + 1
        if quiet >= 3:
            return
    raise RuntimeError(f"the kernel did not settle in {max_rounds} scheduling rounds")


def _threads_woken(kernel: Kernel) -> bool:
    """An irq thread with a wake it has not picked up, or a kthread_worker with queued items
    and none started (a thread function or an item that sleeps does not count: settle() does
    not advance time)."""
    for actions in kernel.irq_actions.values():
        for action in actions:
            if action.runthread and not action.running:
                return True
    st = getattr(kernel, "_kw_state", None)
    if st is not None:
        for worker in st.workers:
            if worker._list and worker.current_work is None:
                return True
    return False
