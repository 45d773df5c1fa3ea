"""Tracing: what the tracepoints cost, off and on.

1. ``queue_work`` + run of 100k works on ``system_wq`` (an ``async def`` that never awaits),
   then ``await flush_workqueue()``, as ``bench_workqueue.py`` measures it: in a kernel with
   tracing off (``Kernel()``: every tracepoint compiled in, each one attribute test) and in a
   kernel with every event on (``Kernel(trace=True)``: each record goes to the ring buffer of
   its CPU, nothing is formatted). Target: on <= 3.0x off.
2. The README's tasklet, timer and ``queue_work`` ratios, measured with tracing compiled in but
   off, by the very functions of ``bench_tasklet.py``, ``bench_timer.py`` and
   ``bench_workqueue.py`` (the sides alternate round by round, best of each kept). They are
   printed beside the README's numbers, which were measured before the tracepoints existed.
   Target: each within 5% of the README's (ratio <= 1.05x the README's ratio).
"""

from __future__ import annotations

import sys

import bench_tasklet
import bench_timer
import bench_workqueue
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
from kdefer_async import Work, current_kernel, flush_workqueue, queue_work, system_wq

N = 100_000
HZ = 250
#: The README's ratios (the Performance table), before the tracepoints.
README = {"tasklet": 0.56, "timer": 0.86, "queue_work": 1.43}
ON_OFF_LIMIT = 3.0
DRIFT = 1.05


def measure_queue_work(trace: bool, profile: bool = False) -> float:
    """Time (s) for ``queue_work`` of 100k works on system_wq from init, then
    ``flush_workqueue`` until all have run, in a fresh kernel with every event on or none."""

    async def main() -> float:
        hits: list[Work] = []
        append = hits.append

        async def afn(work: Work) -> None:
            append(work)

        queue_work(system_wq, Work(afn))
        await flush_workqueue(system_wq)
        hits.clear()
        works = [Work(afn) for _ in range(N)]
        tracing = current_kernel().tracing
        assert bool(tracing.enabled_events()) is trace
        with no_gc(), profiled("100k queue_work + run, every event on") if profile else _null():
            start = now()
            for w in works:
                queue_work(system_wq, w)
            await flush_workqueue(system_wq)
            elapsed = now() - start
        assert len(hits) == N, len(hits)
        return elapsed

    return kdefer_async.run(main, backend="asyncio", hz=HZ, trace=trace)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("tracepoints: off, every event on; the README ratios with tracing off", opts)
    print(f"N = {N:,} per measurement (HZ={HZ}, asyncio backend)")
    # the README ratios first: the runs with every event on leave a larger heap behind
    deltas = bench_timer._deltas()
    readme = alternate(
        opts,
        {
            "tasklet: call_soon": bench_tasklet.measure_asyncio,
            "tasklet: kdefer": bench_tasklet.measure_kdefer,
            "timer: call_later": lambda: bench_timer.measure_asyncio(deltas),
            "timer: kdefer": lambda: bench_timer.measure_kdefer(deltas),
            "queue_work: asyncio.Queue": lambda: bench_workqueue.measure_queue(True),
            "queue_work: kdefer": lambda: bench_workqueue.measure_kdefer(True),
        },
    )
    samples = alternate(
        opts,
        {
            "queue_work, tracing off": lambda: measure_queue_work(False),
            "queue_work, every event on": lambda: measure_queue_work(True),
        },
    )
    print_samples(samples, 1e9 / N, "ns per item")
    off = min(samples["queue_work, tracing off"]) / N * 1e9
    on = min(samples["queue_work, every event on"]) / N * 1e9
    rows = [
        Row(
            "queue_work+run per item, every event on vs off",
            on,
            off,
            "ns",
            Target("ratio", "<=", ON_OFF_LIMIT),
        )
    ]

    print_samples(readme, 1e9 / N, "ns per item")
    pairs = {
        "tasklet": ("tasklet: kdefer", "tasklet: call_soon"),
        "timer": ("timer: kdefer", "timer: call_later"),
        "queue_work": ("queue_work: kdefer", "queue_work: asyncio.Queue"),
    }
    print("\nthe README's ratios (before the tracepoints) and now, tracing compiled in but off:")
    for name, (mine, base) in pairs.items():
        ratio = min(readme[mine]) / min(readme[base])
        print(
            f"  {name:<11} README {README[name]:.2f}x   now {ratio:.2f}x   "
            f"({ratio / README[name] - 1:+.1%})"
        )
        rows.append(
            Row(
                f"{name} ratio, tracing off (README {README[name]:.2f}x)",
                min(readme[mine]) / N * 1e9,
                min(readme[base]) / N * 1e9,
                "ns",
                Target("ratio", "<=", round(README[name] * DRIFT, 4)),
            )
        )
    print_table(rows, baseline_label="baseline")
    status = finish(rows)
    if opts.profile:
        measure_queue_work(True, profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
