"""Timers: ``mod_timer`` + ``timer_delete`` of 100k distinct timers, and re-arming one timer.

kdefer: 100k set-up timers are armed with ``mod_timer`` at pseudo-random expiries 1..10000
jiffies ahead (HZ=250), then all deleted with ``timer_delete``. Baseline: ``loop.call_later``
with the same delays in seconds, then ``handle.cancel()`` for each. Both sides then yield to the
loop once, so lazy clean-up (asyncio purges cancelled handles from its heap in the next loop
iteration) is inside the timing. Target: kdefer per-timer cost <= 1.0x asyncio's. The asyncio
side without that yield (its cancel cost left unpaid) is reported too, without a target.

Reported without a target: re-arming one timer 1M times to increasing expiries; the number of
wheel buckets (``k.cpus[0].std_base.buckets``) must stay bounded and the traced memory flat.
"""

from __future__ import annotations

import array
import asyncio
import random
import sys
import tracemalloc
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
from kdefer_async import TimerList, current_kernel, mod_timer, timer_delete, timer_pending

N = 100_000
HZ = 250
REARM = 1_000_000
SAMPLE_EVERY = 100_000
SEED = 20240501


def _deltas() -> list[int]:
    rng = random.Random(SEED)
    return [rng.randint(1, 10_000) for _ in range(N)]


def _noop(*args: object) -> None:
    pass


def measure_asyncio(deltas: list[int], yield_to_loop: bool = True) -> float:
    """Time (s) for 100k ``call_later`` + ``cancel`` (plus one loop iteration, in which the
    loop purges the cancelled handles from its heap, unless *yield_to_loop* is false), on a
    fresh loop."""
    delays = [d / HZ for d in deltas]

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
    """Time (s) for 100k ``mod_timer`` + ``timer_delete`` (plus one loop iteration), fresh
    kernel."""

    async def main() -> float:
        k = current_kernel()
        timers = [TimerList(_noop) for _ in deltas]
        pairs = list(zip(timers, deltas, strict=True))
        checkpoint = anyio.lowlevel.checkpoint
        prof = profiled("100k mod_timer + timer_delete") if profile else nullcontext()
        with no_gc(), prof:
            start = now()
            j0 = k.jiffies
            for t, d in pairs:
                mod_timer(t, j0 + d)
            for t in timers:
                timer_delete(t)
            await checkpoint()
            elapsed = now() - start
        assert not any(timer_pending(t) for t in timers)
        assert not k.cpus[0].std_base.buckets
        return elapsed

    return kdefer_async.run(main, backend="asyncio", hz=HZ)


class RearmReport:
    """What re-arming one timer REARM times showed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.max_buckets = 0
        # traced bytes after each SAMPLE_EVERY re-arms; an array, so that storing a sample
        # allocates nothing that tracemalloc would count
        self.mem_samples = array.array("q", [0] * (REARM // SAMPLE_EVERY))
        self.mem_peak = 0


def _rearm(t: TimerList, first: int, count: int) -> None:
    for e in range(first, first + count):
        mod_timer(t, e)


def measure_rearm() -> RearmReport:
    """Re-arm one timer REARM times to increasing expiries: time, wheel buckets, memory."""
    report = RearmReport()

    async def main() -> None:
        k = current_kernel()
        base = k.cpus[0].std_base
        t = TimerList(_noop)
        first = k.jiffies + 100
        # 1) timing, sampling the bucket count between chunks
        start = now()
        for chunk in range(0, REARM, SAMPLE_EVERY):
            _rearm(t, first + chunk, SAMPLE_EVERY)
            report.max_buckets = max(report.max_buckets, len(base.buckets))
        report.seconds = now() - start
        timer_delete(t)
        await anyio.lowlevel.checkpoint()
        # 2) memory: the same again under tracemalloc, sampled every SAMPLE_EVERY re-arms
        first = k.jiffies + 100
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            baseline = tracemalloc.get_traced_memory()[0]
            for i, chunk in enumerate(range(0, REARM, SAMPLE_EVERY)):
                _rearm(t, first + chunk, SAMPLE_EVERY)
                report.mem_samples[i] = tracemalloc.get_traced_memory()[0] - baseline
                report.max_buckets = max(report.max_buckets, len(base.buckets))
            report.mem_peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
        timer_delete(t)

    kdefer_async.run(main, backend="asyncio", hz=HZ)
    return report


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("mod_timer + timer_delete vs loop.call_later + cancel", opts)
    print(f"N = {N:,} distinct timers, expiries 1..10000 jiffies ahead at HZ={HZ}")
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
    rearm = measure_rearm()
    mem_text = ", ".join(f"{b:+,}" for b in rearm.mem_samples)
    print(
        f"re-arm one timer {REARM:,} times: {rearm.seconds:.2f} s; at most "
        f"{rearm.max_buckets} wheel bucket(s) in use; traced memory (bytes vs start, every "
        f"{SAMPLE_EVERY:,}): {mem_text}; peak {rearm.mem_peak:+,}"
    )
    rows = [
        Row(
            "mod_timer+timer_delete per timer",
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
        Row("re-arm one timer: per mod_timer", rearm.seconds / REARM * 1e9, None, "ns"),
        Row("re-arm one timer: max wheel buckets", rearm.max_buckets, None, "buckets"),
        Row("re-arm one timer: traced memory after 1M", rearm.mem_samples[-1], None, "bytes"),
        Row(
            "re-arm one timer: growth 100k -> 1M",
            rearm.mem_samples[-1] - rearm.mem_samples[0],
            None,
            "bytes",
        ),
    ]
    print_table(rows, baseline_label="call_later")
    status = finish(rows)
    if opts.profile:
        measure_kdefer(deltas, profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
