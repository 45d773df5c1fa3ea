"""Memory: the size of a Tasklet and of a TimerList, next to asyncio's Handle and TimerHandle.

Deep size: ``sys.getsizeof`` of the object plus that of what its slots own: containers, numbers,
strings and ``contextvars.Context`` objects that belong to this instance alone. Shared things
(functions, the loop, the timer base, a bucket shared with other timers, cached small ints,
``None``, the empty tuple) are not counted; "owned" means a second instance built the same way
does not hold the very same object. Targets: <= 200 bytes for a set-up Tasklet and TimerList
and for an armed TimerList.

Traced size: ``tracemalloc`` bytes per object while allocating 100k of them (into a list
allocated beforehand). Targets: <= 200 bytes per Tasklet and per TimerList. Reported without a
target: 100k TimerLists armed with ``mod_timer`` (their wheel bucket entries included) against
100k ``loop.call_later`` handles (their heap entries included).

Baselines: ``asyncio.Handle`` (what ``call_soon`` allocates) for the Tasklet and
``asyncio.TimerHandle`` (what ``call_later`` allocates) for the TimerList.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import random
import sys
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator

from _common import Options, Row, Target, finish, parse_args, print_header, print_table

import kdefer_async
from kdefer_async import Tasklet, TimerList, current_kernel, mod_timer, timer_delete

N = 100_000
HZ = 250
LIMIT = 200.0
_OWNABLE = (int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset, deque)
_OWNABLE_TYPES = (*_OWNABLE, contextvars.Context)


def _noop(*args: object) -> None:
    pass


def _slot_names(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__weakref__", "__dict__"):
                yield name


def deep_size(obj: object, twin: object) -> int:
    """``getsizeof(obj)`` plus the objects its slots own (not shared with *twin*)."""
    size = sys.getsizeof(obj)
    for name in _slot_names(type(obj)):
        value = getattr(obj, name, None)
        if value is None or value is getattr(twin, name, None):
            continue
        if isinstance(value, bool) or not isinstance(value, _OWNABLE_TYPES):
            continue
        size += sys.getsizeof(value)
    return size


def traced_per_object(factory: Callable[[], object], n: int = N) -> float:
    """tracemalloc bytes per object while *factory* builds *n* objects kept alive in a list."""
    objs: list[object] = [None] * n
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            objs[i] = factory()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del objs
    return (after - before) / n


def _traced_armed_timers(now: int, deltas: list[int]) -> float:
    """Traced bytes per TimerList set up and armed with ``mod_timer`` (then deleted again)."""
    it = iter(deltas)
    armed: list[TimerList] = []

    def arm() -> TimerList:
        t = TimerList(_noop)
        mod_timer(t, now + next(it))
        armed.append(t)
        return t

    # the list of armed timers kept for clean-up is counted too: take it out
    size = traced_per_object(arm, len(deltas)) - sys.getsizeof(armed) / len(deltas)
    for t in armed:
        timer_delete(t)
    return size


def _traced_call_later(loop: asyncio.AbstractEventLoop, delays: list[float]) -> float:
    """Traced bytes per ``loop.call_later`` handle (then cancelled again)."""
    it = iter(delays)
    handles: list[asyncio.TimerHandle] = []

    def arm() -> asyncio.TimerHandle:
        h = loop.call_later(next(it), _noop)
        handles.append(h)
        return h

    # the list of handles kept for clean-up is counted too: take it out
    size = traced_per_object(arm, len(delays)) - sys.getsizeof(handles) / len(delays)
    for h in handles:
        h.cancel()
    return size


class Sizes:
    """The numbers for one side (kdefer or asyncio)."""

    def __init__(self) -> None:
        self.deep_small = 0  # Tasklet / Handle
        self.deep_timer = 0  # set-up TimerList / unscheduled TimerHandle
        self.deep_armed = 0  # armed TimerList / scheduled TimerHandle
        self.traced_small = float("inf")
        self.traced_timer = float("inf")
        self.traced_armed = float("inf")


def measure_kdefer(opts: Options) -> Sizes:
    """Sizes of Tasklet and TimerList (armed ones inside a kernel)."""
    sizes = Sizes()
    sizes.deep_small = deep_size(Tasklet(_noop), Tasklet(_noop))
    sizes.deep_timer = deep_size(TimerList(_noop), TimerList(_noop))
    deltas = [random.Random(1).randint(1, 10_000) for _ in range(N)]

    async def main() -> None:
        k = current_kernel()
        a, b = TimerList(_noop), TimerList(_noop)
        mod_timer(a, k.jiffies + 500)
        mod_timer(b, k.jiffies + 500)
        sizes.deep_armed = deep_size(a, b)
        timer_delete(a)
        timer_delete(b)
        for _ in range(opts.repeat):
            sizes.traced_small = min(sizes.traced_small, traced_per_object(lambda: Tasklet(_noop)))
            sizes.traced_timer = min(
                sizes.traced_timer, traced_per_object(lambda: TimerList(_noop))
            )
            sizes.traced_armed = min(sizes.traced_armed, _traced_armed_timers(k.jiffies, deltas))

    kdefer_async.run(main, backend="asyncio", hz=HZ)
    return sizes


def measure_asyncio(opts: Options) -> Sizes:
    """Sizes of asyncio.Handle and asyncio.TimerHandle (scheduled ones on a running loop)."""
    sizes = Sizes()
    loop = asyncio.new_event_loop()
    try:
        sizes.deep_small = deep_size(
            asyncio.Handle(_noop, (), loop), asyncio.Handle(_noop, (), loop)
        )
        sizes.deep_timer = deep_size(
            asyncio.TimerHandle(loop.time() + 2.0, _noop, (), loop),
            asyncio.TimerHandle(loop.time() + 2.0, _noop, (), loop),
        )
    finally:
        loop.close()
    delays = [random.Random(1).randint(1, 10_000) / HZ for _ in range(N)]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = loop.call_later(2.0, _noop), loop.call_later(2.0, _noop)
        sizes.deep_armed = deep_size(a, b)
        a.cancel()
        b.cancel()
        for _ in range(opts.repeat):
            sizes.traced_small = min(
                sizes.traced_small, traced_per_object(lambda: asyncio.Handle(_noop, (), loop))
            )
            sizes.traced_timer = min(
                sizes.traced_timer,
                traced_per_object(lambda: asyncio.TimerHandle(loop.time() + 2.0, _noop, (), loop)),
            )
            armed = _traced_call_later(loop, delays)
            sizes.traced_armed = min(sizes.traced_armed, armed)
            await asyncio.sleep(0)  # the loop drops the cancelled handles from its heap

    asyncio.run(main())
    return sizes


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("Tasklet and TimerList sizes vs asyncio.Handle and asyncio.TimerHandle", opts)
    print(
        f"deep size: getsizeof plus owned slot values; traced: tracemalloc bytes per object "
        f"over {N:,} allocations. Baselines: asyncio.Handle for the Tasklet, "
        f"asyncio.TimerHandle for the TimerList"
    )
    if opts.profile:
        print("--profile: nothing to profile here (sizes are measured, not times)")
    k = measure_kdefer(opts)
    a = measure_asyncio(opts)
    target = Target("value", "<=", LIMIT)
    rows = [
        Row("Tasklet deep size", k.deep_small, a.deep_small, "bytes", target),
        Row("TimerList deep size (set up)", k.deep_timer, a.deep_timer, "bytes", target),
        Row("TimerList deep size (armed)", k.deep_armed, a.deep_armed, "bytes", target),
        Row("Tasklet traced per object", k.traced_small, a.traced_small, "bytes", target),
        Row("TimerList traced per object", k.traced_timer, a.traced_timer, "bytes", target),
        Row("TimerList traced per armed timer", k.traced_armed, a.traced_armed, "bytes"),
    ]
    print_table(rows, baseline_label="asyncio")
    return finish(rows)


if __name__ == "__main__":
    sys.exit(main())
