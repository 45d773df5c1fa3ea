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
   Target: each within 5% of the README's (ratio <= 1.05x the README's ratio), unless 3)
   runs: then these rows are reported without a target.
3. With ``--before DIR`` (a source tree of kdefer_async from before the tracepoints, such as
   ``git worktree add DIR <commit>``): the same three ratios for that tree and this one, each
   measured in a process of its own, the trees alternating for ``--rounds`` rounds (default 3)
   in the same run; the medians are compared. Target: this tree's <= 1.05x the other's. This
   is the comparison that holds when the machine's speed has drifted since the README's
   numbers were taken.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

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


#: Run in a process of its own against one source tree: the three README ratios as JSON.
_RATIOS = """
import json, sys
sys.argv = [sys.argv[0], "--repeat", sys.argv[1], "--clock", sys.argv[2]]
import _common, bench_tasklet, bench_timer, bench_workqueue
opts = _common.parse_args("")
deltas = bench_timer._deltas()
s = _common.alternate(opts, {
    "tasklet_a": bench_tasklet.measure_asyncio,
    "tasklet_k": bench_tasklet.measure_kdefer,
    "timer_a": lambda: bench_timer.measure_asyncio(deltas),
    "timer_k": lambda: bench_timer.measure_kdefer(deltas),
    "queue_work_a": lambda: bench_workqueue.measure_queue(True),
    "queue_work_k": lambda: bench_workqueue.measure_kdefer(True),
})
print(json.dumps({n: min(s[n + "_k"]) / min(s[n + "_a"]) for n in ("tasklet", "timer", "queue_work")}))
"""


def _pop_option(name: str, default: str | None = None) -> str | None:
    """Take ``name VALUE`` out of sys.argv (the shared parser knows only the common options)."""
    if name in sys.argv:
        i = sys.argv.index(name)
        if i + 1 >= len(sys.argv):
            sys.exit(f"{name} needs a value")
        value = sys.argv[i + 1]
        del sys.argv[i : i + 2]
        return value
    return default


def _tree_ratios(tree: Path, opts_repeat: int, clock: str) -> dict[str, float]:
    """The three ratios measured with the kdefer_async of *tree*, in a new process."""
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(here)]))
    out = subprocess.run(
        [sys.executable, "-c", _RATIOS, str(opts_repeat), clock],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ratios: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return ratios


def compare_before(before: Path, rounds: int, repeat: int, clock: str) -> list[Row]:
    """3): the README ratios of the tree *before* and of this one, alternating by round."""
    this = Path(__file__).resolve().parent.parent
    for tree in (before, this):
        if not (tree / "kdefer_async" / "__init__.py").is_file():
            sys.exit(f"--before: no kdefer_async package in {tree}")
    got: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
    for r in range(rounds):
        for side, tree in (("before", before), ("now", this)):
            got[side].append(_tree_ratios(tree, repeat, clock))
            print(f"round {r + 1} {side}: " + json.dumps(got[side][-1]))
            sys.stdout.flush()
    rows = []
    print("\nthe same ratios before the tracepoints and now (median of the rounds):")
    for name in ("tasklet", "timer", "queue_work"):
        old = statistics.median(x[name] for x in got["before"])
        new = statistics.median(x[name] for x in got["now"])
        print(f"  {name:<11} before {old:.3f}x   now {new:.3f}x   ({new / old - 1:+.1%})")
        rows.append(
            Row(
                f"{name} ratio now vs before the tracepoints (medians)",
                new,
                old,
                "x",
                Target("ratio", "<=", DRIFT),
            )
        )
    return rows


def main() -> int:
    before = _pop_option("--before")
    rounds = int(_pop_option("--rounds", "3") or "3")
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
                # against numbers of another day unless the same run measures the old code
                None
                if before is not None
                else Target("ratio", "<=", round(README[name] * DRIFT, 4)),
            )
        )
    if before is not None:
        rows += compare_before(Path(before).resolve(), rounds, opts.repeat, opts.clock)
    print_table(rows, baseline_label="baseline")
    status = finish(rows)
    if opts.profile:
        measure_queue_work(True, profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
