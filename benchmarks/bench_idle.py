"""Idle cost: a 64-CPU kernel idle for 5 s of wall time on a real asyncio loop.

kdefer: ``Kernel(nr_cpus=64)`` (64 ksoftirqd kthreads and 64 tickless ticks) boots and settles,
then the body does ``await anyio.sleep(5)``; the process CPU time (``time.process_time()``)
around that sleep is measured. Baseline: a plain asyncio loop with 64 tasks sleeping 5 s,
measured the same way. Target: kdefer CPU time / 5 s < 0.01 (under 1% of one core).
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import nullcontext

import anyio
from _common import (
    Row,
    Target,
    alternate,
    finish,
    parse_args,
    print_header,
    print_samples,
    print_table,
    profiled,
)

import kdefer_async
from kdefer_async.testing import settle

NR_CPUS = 64
IDLE = 5.0


#: wall seconds of every idle period, per side, to show that each really lasted IDLE
WALL: dict[str, list[float]] = {"asyncio": [], "kdefer": []}


async def _asyncio_idle() -> float:
    tasks = [asyncio.create_task(asyncio.sleep(IDLE)) for _ in range(NR_CPUS)]
    await asyncio.sleep(0)  # every task is now asleep
    c0, w0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(IDLE)
    cpu = time.process_time() - c0
    WALL["asyncio"].append(time.perf_counter() - w0)
    await asyncio.gather(*tasks)
    return cpu


def measure_asyncio() -> float:
    """CPU seconds of one idle period of a fresh plain asyncio loop with 64 sleeping tasks."""
    return asyncio.run(_asyncio_idle())


def measure_kdefer(profile: bool = False) -> float:
    """CPU seconds of one idle period of a freshly booted 64-CPU kernel."""

    async def main() -> float:
        await settle()  # booted: every ksoftirqd asleep, nothing pending
        prof = profiled(f"{NR_CPUS}-CPU kernel idle for {IDLE:g} s") if profile else nullcontext()
        with prof:
            c0, w0 = time.process_time(), time.perf_counter()
            await anyio.sleep(IDLE)
            cpu = time.process_time() - c0
        WALL["kdefer"].append(time.perf_counter() - w0)
        return cpu

    return kdefer_async.run(main, backend="asyncio", nr_cpus=NR_CPUS)


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header(f"{NR_CPUS}-CPU kernel idle for {IDLE:g} s of wall time", opts)
    samples = alternate(opts, {"asyncio": measure_asyncio, "kdefer": measure_kdefer}, warmup=0)
    print_samples(samples, 1e3, "CPU ms per idle period")
    for name, walls in WALL.items():
        print(f"{name} idle periods (wall s): {', '.join(f'{w:.3f}' for w in walls)}")
    base, kdefer = min(samples["asyncio"]), min(samples["kdefer"])
    rows = [
        Row("idle CPU time / 5 s", kdefer / IDLE, base / IDLE, "core", Target("value", "<", 0.01)),
        Row("idle CPU time", kdefer * 1e3, base * 1e3, "ms"),
    ]
    print_table(rows, baseline_label="asyncio")
    status = finish(rows)
    if opts.profile:
        measure_kdefer(profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
