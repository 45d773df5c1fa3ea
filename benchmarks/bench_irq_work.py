"""irq_work: ``irq_work_queue`` + run of 100k distinct items from one hardirq.

kdefer: a handler registered with ``request_irq`` queues 100k distinct, already initialised
items; ``k.raise_irq(irq)`` is called once, the first item raises the IRQ_WORK self-interrupt,
which is taken when the handler's interrupt ends and runs all 100k callbacks (timing stops
when the 100k-th has run). Baseline: ``loop.call_soon(cb)`` for 100k callbacks on a plain
asyncio loop, then await a future set by the last one. Target: kdefer per-item cost <= 1.0x
asyncio's.

Also reported, without a target: 100k ``irq_work_queue`` calls from task context with
interrupts on, where each item runs at once in a self-interrupt of its own (interrupt entry,
the callback, interrupt exit: the cost of one interrupt per item), and 100k
``smp_call_function_single(1, f, info, 1)`` calls from CPU 0 (one IPI each).
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext

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
    IRQ_HANDLED,
    IrqWork,
    current_kernel,
    irq_work_queue,
    request_irq,
    smp_call_function_single,
)

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


class _Bench:
    """One irq line whose handler queues every item of the current batch."""

    def __init__(self) -> None:
        self.hits: list[IrqWork] = []
        self.batch: list[IrqWork] = []

    def handler(self, irq: int, dev: object) -> int:
        queue = irq_work_queue
        for w in self.batch:
            queue(w)
        return IRQ_HANDLED

    def make_batch(self) -> None:
        append = self.hits.append

        def cb(w: IrqWork) -> None:
            append(w)

        self.hits.clear()
        self.batch = [IrqWork(cb) for _ in range(N)]

    def from_hardirq(self, profile: bool) -> float:
        k = current_kernel()
        self.make_batch()
        prof = profiled("100k irq_work items from one hardirq") if profile else nullcontext()
        with no_gc(), prof:
            start = now()
            k.raise_irq(IRQ)
            elapsed = now() - start
        assert len(self.hits) == N, len(self.hits)
        assert all(w.flags == 0 for w in self.batch)
        return elapsed

    def from_task(self) -> float:
        self.make_batch()
        queue = irq_work_queue
        with no_gc():
            start = now()
            for w in self.batch:
                queue(w)
            elapsed = now() - start
        assert len(self.hits) == N, len(self.hits)
        return elapsed


def measure_kdefer(profile: bool = False) -> float:
    """Time (s) for 100k items queued from one hardirq and run, in a fresh kernel."""

    async def main() -> float:
        bench = _Bench()
        ret = request_irq(IRQ, bench.handler, 0, "bench", bench)
        assert ret == 0, ret
        return bench.from_hardirq(profile)

    return kdefer_async.run(main, backend="asyncio")


def measure_from_task() -> float:
    """Time (s) for 100k items queued from task context, each run in its own interrupt."""

    async def main() -> float:
        return _Bench().from_task()

    return kdefer_async.run(main, backend="asyncio")


def measure_ipi() -> float:
    """Time (s) for 100k ``smp_call_function_single`` calls to CPU 1 with wait=1."""

    async def main() -> float:
        hits: list[object] = []
        append = hits.append

        def f(info: object) -> None:
            append(info)

        call = smp_call_function_single
        with no_gc():
            start = now()
            for i in range(N):
                call(1, f, i, 1)
            elapsed = now() - start
        assert len(hits) == N, len(hits)
        return elapsed

    return kdefer_async.run(main, backend="asyncio", nr_cpus=2)


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("irq_work_queue + run vs loop.call_soon", opts)
    print(f"N = {N:,} distinct irq_work items queued from one hardirq (HZ=250, asyncio backend)")
    samples = alternate(
        opts,
        {
            "asyncio": measure_asyncio,
            "kdefer": measure_kdefer,
            "kdefer, from task": measure_from_task,
            "kdefer, IPI": measure_ipi,
        },
    )
    print_samples(samples, 1e9 / N, "ns per item")
    base = min(samples["asyncio"])
    rows = [
        Row(
            "irq_work_queue+run per item",
            min(samples["kdefer"]) / N * 1e9,
            base / N * 1e9,
            "ns",
            Target("ratio", "<=", 1.0),
        ),
        Row(
            "  from task: one interrupt per item",
            min(samples["kdefer, from task"]) / N * 1e9,
            base / N * 1e9,
            "ns",
        ),
        Row(
            "smp_call_function_single wait=1",
            min(samples["kdefer, IPI"]) / N * 1e9,
            base / N * 1e9,
            "ns",
        ),
    ]
    print_table(rows, baseline_label="call_soon")
    status = finish(rows)
    if opts.profile:
        measure_kdefer(profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
