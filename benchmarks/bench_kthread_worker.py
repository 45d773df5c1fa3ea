"""kthread_worker: ``kthread_queue_work`` + run of 100k works, against ``queue_work``.

kdefer: the kernel's init task queues 100k distinct, already set-up kthread works
(``KthreadWork(fn)``) on a running kthread_worker with ``kthread_queue_work``, then
``await kthread_flush_worker(worker)``; timing stops when all 100k have run. Baseline: the same
through the workqueue, in a kernel of its own: 100k ``Work(fn)`` queued with ``queue_work`` on
the per-CPU ``system_percpu_wq``, then ``await flush_workqueue(system_percpu_wq)``. ``fn`` is an
``async def`` that never awaits, and (a second pair of rows) a plain function. Before timing,
each side queues and flushes one item, so the worker's thread, the workqueue's pool and its
first kworker exist. Target: kthread_worker per item <= 1.0x queue_work's, for both kinds of
function. The sides alternate round by round (two warm-up rounds dropped).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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
    KthreadWork,
    Work,
    flush_workqueue,
    kthread_destroy_worker,
    kthread_flush_worker,
    kthread_queue_work,
    kthread_run_worker,
    queue_work,
    system_percpu_wq,
)

N = 100_000
HZ = 250


def _noop(work: object) -> None:
    pass


def measure_kthread(is_async: bool, profile: bool = False) -> float:
    """Time (s) for ``kthread_queue_work`` of 100k works from init, then
    ``kthread_flush_worker`` until all have run, in a freshly booted kernel."""

    async def main() -> float:
        hits: list[object] = []
        append = hits.append

        async def afn(work: KthreadWork) -> None:
            append(work)

        def fn(work: KthreadWork) -> None:
            append(work)

        worker = kthread_run_worker(0, "bench")
        kthread_queue_work(worker, KthreadWork(_noop))
        await kthread_flush_worker(worker)
        func: Callable[[KthreadWork], object] = afn if is_async else fn
        works = [KthreadWork(func) for _ in range(N)]
        kind = "async def" if is_async else "def"
        prof = profiled(f"100k kthread_queue_work + run ({kind})") if profile else nullcontext()
        with no_gc(), prof:
            start = now()
            for w in works:
                kthread_queue_work(worker, w)
            await kthread_flush_worker(worker)
            elapsed = now() - start
        assert len(hits) == N, len(hits)
        await kthread_destroy_worker(worker)
        return elapsed

    return kdefer_async.run(main, backend="asyncio", hz=HZ)


def measure_workqueue(is_async: bool) -> float:
    """Time (s) for ``queue_work`` of 100k works on system_percpu_wq from init, then
    ``flush_workqueue`` until all have run, in a freshly booted kernel."""

    async def main() -> float:
        hits: list[object] = []
        append = hits.append

        async def afn(work: Work) -> None:
            append(work)

        def fn(work: Work) -> None:
            append(work)

        queue_work(system_percpu_wq, Work(_noop))
        await flush_workqueue(system_percpu_wq)
        func: Callable[[Work], object] = afn if is_async else fn
        works = [Work(func) for _ in range(N)]
        with no_gc():
            start = now()
            for w in works:
                queue_work(system_percpu_wq, w)
            await flush_workqueue(system_percpu_wq)
            elapsed = now() - start
        assert len(hits) == N, len(hits)
        return elapsed

    return kdefer_async.run(main, backend="asyncio", hz=HZ)


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("kthread_worker: kthread_queue_work + run vs queue_work + run", opts)
    print(
        f"N = {N:,} distinct works queued from init, then a flush (HZ={HZ}, asyncio backend); "
        "baseline: queue_work on system_percpu_wq, then flush_workqueue"
    )
    sys.stdout.flush()
    sides: dict[str, Callable[[], float]] = {
        "queue_work, async def": lambda: measure_workqueue(True),
        "kthread_queue_work, async def": lambda: measure_kthread(True),
        "queue_work, def": lambda: measure_workqueue(False),
        "kthread_queue_work, def": lambda: measure_kthread(False),
    }
    samples = alternate(opts, sides)
    print_samples(samples, 1e9 / N, "ns per item")
    best = {name: min(values) / N * 1e9 for name, values in samples.items()}
    rows = [
        Row(
            "kthread_queue_work+run, async def",
            best["kthread_queue_work, async def"],
            best["queue_work, async def"],
            "ns",
            Target("ratio", "<=", 1.0),
        ),
        Row(
            "kthread_queue_work+run, def",
            best["kthread_queue_work, def"],
            best["queue_work, def"],
            "ns",
            Target("ratio", "<=", 1.0),
        ),
    ]
    print_table(rows, baseline_label="queue_work")
    status = finish(rows)
    if opts.profile:
        measure_kthread(True, profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
