"""Threaded interrupts: an interrupt whose thread function is woken and run, 100k times.

kdefer: ``request_threaded_irq(irq, None, fn, IRQF_ONESHOT, ...)`` (the default primary, the
line masked until the thread has run), then 100k rounds of ``k.raise_irq(irq)`` followed by
one ``await asyncio.sleep(0)``, in which the irq thread runs ``fn`` (an ``async def`` that
records the call) and goes back to sleep; the line is unmasked as the thread finishes. Also
reported, without a target: a primary handler of its own returning ``IRQ_WAKE_THREAD`` on a
line that is not ONESHOT.

Baseline: the same rounds handing an item to a task waiting in ``asyncio.Queue.get()``:
``queue.put_nowait(i)``, then one ``await asyncio.sleep(0)``, in which the task takes the item,
calls the same kind of function and waits again.

Target: kdefer per round <= 1.5x the queue's.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext
from typing import Any

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
    IRQ_WAKE_THREAD,
    IRQF_ONESHOT,
    current_kernel,
    request_threaded_irq,
)

N = 100_000
IRQ = 42


async def _asyncio_once() -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    hits: list[int] = []
    append = hits.append

    async def handle(item: int) -> None:
        append(item)

    async def consumer() -> None:
        get = queue.get
        while True:
            await handle(await get())

    task = asyncio.create_task(consumer())
    await asyncio.sleep(0)  # the consumer waits in get()
    put = queue.put_nowait
    yield_ = asyncio.sleep
    with no_gc():
        start = now()
        for i in range(N):
            put(i)
            await yield_(0)
        elapsed = now() - start
    task.cancel()
    assert len(hits) == N, len(hits)
    return elapsed


def measure_asyncio() -> float:
    """Time (s) for 100k items handed to a waiting task through an ``asyncio.Queue``."""
    return asyncio.run(_asyncio_once())


async def _kdefer_once(oneshot: bool, profile: bool) -> float:
    k = current_kernel()
    hits: list[int] = []
    append = hits.append

    async def fn(irq: int, dev: Any) -> int:
        append(irq)
        return IRQ_HANDLED

    def primary(irq: int, dev: Any) -> int:
        return IRQ_WAKE_THREAD

    if oneshot:
        ret = request_threaded_irq(IRQ, None, fn, IRQF_ONESHOT, "bench", None)
    else:
        ret = request_threaded_irq(IRQ, primary, fn, 0, "bench", None)
    assert ret == 0, ret
    await asyncio.sleep(0)  # the irq thread starts and waits for an interrupt
    raise_irq = k.raise_irq
    yield_ = asyncio.sleep
    prof = profiled("100k threaded interrupts") if profile else nullcontext()
    with no_gc(), prof:
        start = now()
        for _ in range(N):
            raise_irq(IRQ)
            await yield_(0)
        elapsed = now() - start
    assert len(hits) == N, len(hits)
    return elapsed


def measure_kdefer(oneshot: bool = True, profile: bool = False) -> float:
    """Time (s) for 100k interrupts, each running its thread function, in a fresh kernel."""

    async def main() -> float:
        return await _kdefer_once(oneshot, profile)

    return kdefer_async.run(main, backend="asyncio")


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("threaded interrupt woken and run vs asyncio.Queue handoff", opts)
    print(f"N = {N:,} rounds (HZ=250, asyncio backend); one asyncio.sleep(0) per round")
    samples = alternate(
        opts,
        {
            "asyncio": measure_asyncio,
            "kdefer": measure_kdefer,
            "kdefer (own primary)": lambda: measure_kdefer(oneshot=False),
        },
    )
    print_samples(samples, 1e9 / N, "ns per round")
    base = min(samples["asyncio"])
    kdefer = min(samples["kdefer"])
    own = min(samples["kdefer (own primary)"])
    rows = [
        Row(
            "ONESHOT, default primary, per round",
            kdefer / N * 1e9,
            base / N * 1e9,
            "ns",
            Target("ratio", "<=", 1.5),
        ),
        Row("own primary, not ONESHOT, per round", own / N * 1e9, base / N * 1e9, "ns"),
    ]
    print_table(rows, baseline_label="Queue")
    status = finish(rows)
    if opts.profile:
        measure_kdefer(profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
