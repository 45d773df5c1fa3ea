"""hrtimers: ``hrtimer_start`` + ``hrtimer_cancel`` of 100k distinct timers.

kdefer: 100k set-up hrtimers are started with ``hrtimer_start`` (``HRTIMER_MODE_REL``) at
pseudo-random expiries 1 us .. 40 ms ahead, then all cancelled with ``hrtimer_cancel``.
Baseline: ``loop.call_later`` with the same delays in seconds, then ``handle.cancel()`` for
each. Both sides then yield to the loop once, so lazy clean-up (asyncio purges cancelled
handles from its heap in the next loop iteration) is inside the timing. Target: kdefer
per-timer cost <= 1.0x asyncio's. The asyncio side without that yield is reported too,
without a target, and so is re-starting one timer 1M times (the queue must stay small).
"""

from __future__ import annotations

import asyncio
import random
import sys
from contextlib import nullcontext

import anyio.lowlevel
from _common import (
    Row,
    Target,
    alternate,
    finish,
    no_gc,
    now,
    parse_args,
    print_header,
    print_samples,
    print_table,
    profiled,
)

import kdefer_async
from kdefer_async import (
    CLOCK_MONOTONIC,
    HRTIMER_MODE_REL,
    HRTIMER_NORESTART,
    HrTimer,
    current_kernel,
    hrtimer_cancel,
    hrtimer_is_queued,
    hrtimer_setup,
    hrtimer_start,
)

N = 100_000
RESTART = 1_000_000
SEED = 20240502


def _deltas() -> list[int]:
    rng = random.Random(SEED)
    return [rng.randint(1_000, 40_000_000) for _ in range(N)]


def _noop(*args: object) -> int:
    return HRTIMER_NORESTART


def measure_asyncio(deltas: list[int], yield_to_loop: bool = True) -> float:
    """Time (s) for 100k ``call_later`` + ``cancel`` (plus one loop iteration unless
    *yield_to_loop* is false), on a fresh loop."""
    delays = [d / 1e9 for d in deltas]

    async def main() -> float:
        loop = asyncio.get_running_loop()
        call_later = loop.call_later
        handles: list[asyncio.TimerHandle] = []
        append = handles.append
        with no_gc():
            start = now()
            for delay in delays:
                append(call_later(delay, _noop))
            for h in handles:
                h.cancel()
            if yield_to_loop:
                await asyncio.sleep(0)
            elapsed = now() - start
        assert all(h.cancelled() for h in handles)
        return elapsed

    return asyncio.run(main())


def measure_kdefer(deltas: list[int], profile: bool = False) -> float:
    """Time (s) for 100k ``hrtimer_start`` + ``hrtimer_cancel`` (plus one loop iteration),
    fresh kernel."""

    async def main() -> float:
        timers = []
        for _ in deltas:
            t = HrTimer()
            hrtimer_setup(t, _noop, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
            timers.append(t)
        pairs = list(zip(timers, deltas, strict=True))
        checkpoint = anyio.lowlevel.checkpoint
        prof = profiled("100k hrtimer_start + hrtimer_cancel") if profile else nullcontext()
        with no_gc(), prof:
            start = now()
            for t, d in pairs:
                hrtimer_start(t, d, HRTIMER_MODE_REL)
            for t in timers:
                hrtimer_cancel(t)
            await checkpoint()
            elapsed = now() - start
        assert not any(hrtimer_is_queued(t) for t in timers)
        return elapsed

    return kdefer_async.run(main, backend="asyncio")


def measure_restart() -> tuple[float, int]:
    """Re-start one timer RESTART times: the time, and the largest queue ever held."""
    result: list[float | int] = []

    async def main() -> None:
        base = current_kernel().cpus[0]
        t = HrTimer()
        hrtimer_setup(t, _noop, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
        biggest = 0
        start = now()
        for chunk in range(0, RESTART, 100_000):
            for i in range(chunk, chunk + 100_000):
                hrtimer_start(t, 1_000_000_000 + i, HRTIMER_MODE_REL)
            heap = base.hrtimer_base.clock_base[0].heap
            biggest = max(biggest, len(heap))
        result.extend((now() - start, biggest))
        hrtimer_cancel(t)

    kdefer_async.run(main, backend="asyncio")
    return float(result[0]), int(result[1])


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("hrtimer_start + hrtimer_cancel vs loop.call_later + cancel", opts)
    print(f"N = {N:,} distinct hrtimers, expiries 1 us .. 40 ms ahead")
    deltas = _deltas()
    samples = alternate(
        opts,
        {
            "asyncio": lambda: measure_asyncio(deltas),
            "asyncio, no yield": lambda: measure_asyncio(deltas, yield_to_loop=False),
            "kdefer": lambda: measure_kdefer(deltas),
        },
    )
    print_samples(samples, 1e9 / N, "ns per timer")
    base, kdefer = min(samples["asyncio"]), min(samples["kdefer"])
    seconds, biggest = measure_restart()
    rows = [
        Row(
            "hrtimer_start+hrtimer_cancel per timer",
            kdefer / N * 1e9,
            base / N * 1e9,
            "ns",
            Target("ratio", "<=", 1.0),
        ),
        Row(
            "  same, asyncio side without the yield",
            kdefer / N * 1e9,
            min(samples["asyncio, no yield"]) / N * 1e9,
            "ns",
        ),
        Row("re-start one timer: per hrtimer_start", seconds / RESTART * 1e9, None, "ns"),
        Row("re-start one timer: largest queue", biggest, None, "entries"),
    ]
    print_table(rows, baseline_label="call_later")
    status = finish(rows)
    if opts.profile:
        measure_kdefer(deltas, profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
