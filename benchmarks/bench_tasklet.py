"""Tasklets: ``tasklet_schedule`` + run of 100k distinct tasklets from one hardirq.

kdefer: a handler registered with ``request_irq`` schedules 100k distinct, already set-up
tasklets; ``k.raise_irq(irq)`` is called once and the tasklets run on irq exit (whatever the
``MAX_SOFTIRQ_TIME`` budget hands to ksoftirqd is waited for too: timing stops when the 100k-th
callback has run). Baseline: ``loop.call_soon(cb)`` for 100k callbacks on a plain asyncio loop,
then await a future set by the last one. Target: kdefer per-item cost <= 1.0x asyncio's.
"""

from __future__ import annotations

import asyncio
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
from kdefer_async import IRQ_HANDLED, Tasklet, current_kernel, request_irq, tasklet_schedule

N = 100_000
IRQ = 42


async def _asyncio_once() -> float:
    loop = asyncio.get_running_loop()
    hits: list[None] = []
    append = hits.append
    done: asyncio.Future[None] = loop.create_future()

    def cb() -> None:
        append(None)

    def last() -> None:
        append(None)
        done.set_result(None)

    call_soon = loop.call_soon
    with no_gc():
        start = now()
        for _ in range(N - 1):
            call_soon(cb)
        call_soon(last)
        await done
        elapsed = now() - start
    assert len(hits) == N, len(hits)
    return elapsed


def measure_asyncio() -> float:
    """Time (s) for 100k ``call_soon`` callbacks run to completion on a fresh plain loop."""
    return asyncio.run(_asyncio_once())


class _TaskletBench:
    """One irq line whose handler schedules every tasklet of the current batch."""

    def __init__(self) -> None:
        self.hits: list[Tasklet] = []
        self.batch: list[Tasklet] = []
        self.in_irq = 0  # how many had run when raise_irq returned

    def handler(self, irq: int, dev: object) -> int:
        schedule = tasklet_schedule
        for t in self.batch:
            schedule(t)
        return IRQ_HANDLED

    async def once(self, profile: bool = False) -> float:
        k = current_kernel()
        hits = self.hits
        hits.clear()
        append = hits.append

        def cb(t: Tasklet) -> None:
            append(t)

        self.batch = [Tasklet(cb) for _ in range(N)]
        checkpoint = anyio.lowlevel.checkpoint
        prof = profiled("100k tasklets from one hardirq") if profile else nullcontext()
        with no_gc(), prof:
            start = now()
            k.raise_irq(IRQ)
            self.in_irq = len(hits)
            while len(hits) < N:
                await checkpoint()
            elapsed = now() - start
        assert len(hits) == N, len(hits)
        assert all(t.state == 0 for t in self.batch)
        return elapsed


_last_in_irq = 0


def measure_kdefer(profile: bool = False) -> float:
    """Time (s) for 100k tasklets scheduled from one hardirq and run, in a fresh kernel."""

    async def main() -> float:
        global _last_in_irq
        bench = _TaskletBench()
        ret = request_irq(IRQ, bench.handler, 0, "bench", bench)
        assert ret == 0, ret
        elapsed = await bench.once(profile)
        _last_in_irq = bench.in_irq
        return elapsed

    return kdefer_async.run(main, backend="asyncio")


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("tasklet_schedule + run vs loop.call_soon", opts)
    print(f"N = {N:,} distinct tasklets scheduled from one hardirq (HZ=250, asyncio backend)")
    samples = alternate(opts, {"asyncio": measure_asyncio, "kdefer": measure_kdefer})
    print_samples(samples, 1e9 / N, "ns per item")
    base, kdefer = min(samples["asyncio"]), min(samples["kdefer"])
    print(
        f"kdefer: {_last_in_irq:,} of {N:,} tasklets had run when raise_irq() returned (the "
        f"rest run later in ksoftirqd); best totals: asyncio {base * 1e3:.1f} ms, "
        f"kdefer {kdefer * 1e3:.1f} ms"
    )
    rows = [
        Row(
            "tasklet_schedule+run per item",
            kdefer / N * 1e9,
            base / N * 1e9,
            "ns",
            Target("ratio", "<=", 1.0),
        )
    ]
    print_table(rows, baseline_label="call_soon")
    status = finish(rows)
    if opts.profile:
        measure_kdefer(profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
