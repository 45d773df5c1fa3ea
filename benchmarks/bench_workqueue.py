"""Workqueues: ``queue_work`` + execution of 100k works, 10k sleeping works, 1M re-arms.

1. Throughput. kdefer: the kernel's init task queues 100k distinct, already set-up works
   (``Work(fn)``) on ``system_wq`` with ``queue_work``, then ``await flush_workqueue(system_wq)``;
   timing stops when all 100k have run. ``fn`` is measured as an ``async def`` that never awaits
   and as a plain function. Baseline: an ``asyncio.Queue`` drained by four worker tasks (started
   and parked on ``queue.get()`` before timing) that call the same kind of function;
   ``put_nowait`` of 100k items, then ``await queue.join()``. Target (the ``async def`` one):
   kdefer per item <= 1.5x asyncio's (the goal is 1.0x; both are printed). The pool, its worker
   and the workqueue exist before timing (one work is queued and flushed first), as the
   baseline's worker tasks do.
2. Against anyio: the same kdefer per-item cost must be at least 20x cheaper than
   ``TaskGroup.start_soon`` (100k trivial ``async def`` tasks started in one task group on a
   plain asyncio loop, timing until the group has exited): ratio <= 0.05.
3. Memory of sleeping works. 10k works, each ``started += 1; await msleep(...)``, queued over five
   unbound workqueues of ``max_active`` ``WQ_MAX_ACTIVE`` (2048; a larger value is clamped, so
   one queue cannot hold 10k active items). tracemalloc counts the bytes from before the first
   ``queue_work`` to the moment all 10k are asleep (each on its own kworker of the unbound pool:
   those are counted). Baseline: 10k coroutines of an equivalent ``async def``, each driven with
   ``send(None)`` to an ``await`` of a future that never completes. Target: the bytes per work
   beyond its coroutine <= 2048. The top allocation sites are printed.
4. Re-arming. 10k delayed works, each re-armed 100 times in turn (1M ``mod_delayed_work`` with
   random delays of 100..10000 jiffies, HZ=250); tracemalloc after every 100k. Target: the
   growth from the first sample to the last is under 1% of the first sample or under 64 KiB,
   whichever is larger. The time per re-arm (an untraced pass) is reported without a target.
"""

from __future__ import annotations

import array
import asyncio
import gc
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import anyio
import anyio.lowlevel
from _common import (
    Options,
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
    WQ_MAX_ACTIVE,
    WQ_UNBOUND,
    DelayedWork,
    Work,
    Workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    current_kernel,
    flush_workqueue,
    mod_delayed_work,
    msleep,
    queue_work,
    system_wq,
)

N = 100_000
NR_WORKERS = 4  # the asyncio.Queue baseline's worker tasks
#: Wall-time budget (s) of the throughput rounds; fewer repetitions are run if they are slow.
TIME_BUDGET_S = 30.0

N_SLEEP = 10_000
NR_MEM_WQS = 5  # 5 x WQ_MAX_ACTIVE (2048) >= 10k active items
#: Long enough that no work wakes before the last one has started (that takes seconds under
#: tracemalloc); the kernel is then left with the works still asleep.
SLEEP_MS = 600_000
SLEEP_LIMIT = 2048.0
TOP_SITES = 12

HZ = 250
N_DWORK = 10_000
REARM = 1_000_000
SAMPLE_EVERY = 100_000
SEED = 20240501
FLAT_FLOOR = 64 * 1024


# ---------------------------------------------------------------------------------------------
# 1 and 2: throughput
# ---------------------------------------------------------------------------------------------


def measure_queue(is_async: bool) -> float:
    """Time (s) for 100k items through an asyncio.Queue and four worker tasks, fresh loop."""

    async def main() -> float:
        hits: list[object] = []
        append = hits.append
        queue: asyncio.Queue[object] = asyncio.Queue()
        get, task_done = queue.get, queue.task_done

        async def afn(item: object) -> None:
            append(item)

        def fn(item: object) -> None:
            append(item)

        async def worker_async() -> None:
            while True:
                item = await get()
                await afn(item)
                task_done()

        async def worker_plain() -> None:
            while True:
                item = await get()
                fn(item)
                task_done()

        worker = worker_async if is_async else worker_plain
        workers = [asyncio.create_task(worker()) for _ in range(NR_WORKERS)]
        items = [object() for _ in range(N)]
        await asyncio.sleep(0)  # every worker is parked on queue.get()
        put = queue.put_nowait
        with no_gc():
            start = now()
            for item in items:
                put(item)
            await queue.join()
            elapsed = now() - start
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        assert len(hits) == N, len(hits)
        return elapsed

    return asyncio.run(main())


def measure_task_group() -> float:
    """Time (s) for 100k ``start_soon`` of a trivial async function in one anyio task group,
    until the group has exited, on a fresh plain asyncio loop."""

    async def main() -> float:
        hits: list[object] = []
        append = hits.append

        async def afn(item: object) -> None:
            append(item)

        items = [object() for _ in range(N)]
        with no_gc():
            start = now()
            async with anyio.create_task_group() as tg:
                start_soon = tg.start_soon
                for item in items:
                    start_soon(afn, item)
            elapsed = now() - start
        assert len(hits) == N, len(hits)
        return elapsed

    return anyio.run(main, backend="asyncio")


def _noop_work(work: Work) -> None:
    pass


def measure_kdefer(is_async: bool, profile: bool = False) -> float:
    """Time (s) for ``queue_work`` of 100k works on system_wq from init, then
    ``flush_workqueue`` until all have run, in a freshly booted kernel."""

    async def main() -> float:
        hits: list[Work] = []
        append = hits.append

        async def afn(work: Work) -> None:
            append(work)

        def fn(work: Work) -> None:
            append(work)

        # the workqueue, its pool and the pool's first worker exist before timing
        queue_work(system_wq, Work(_noop_work))
        await flush_workqueue(system_wq)
        func: Callable[[Work], object] = afn if is_async else fn
        works = [Work(func) for _ in range(N)]
        kind = "async def" if is_async else "def"
        prof = (
            profiled(f"100k queue_work + run ({kind}) on system_wq") if profile else nullcontext()
        )
        with no_gc(), prof:
            start = now()
            for w in works:
                queue_work(system_wq, w)
            await flush_workqueue(system_wq)
            elapsed = now() - start
        assert len(hits) == N, len(hits)
        return elapsed

    return kdefer_async.run(main, backend="asyncio", hz=HZ)


def run_throughput(opts: Options) -> dict[str, list[float]]:
    """Alternate the five sides round by round; fewer rounds if one takes long."""
    sides: dict[str, Callable[[], float]] = {
        "asyncio.Queue, def": lambda: measure_queue(False),
        "kdefer, def": lambda: measure_kdefer(False),
        "asyncio.Queue, async def": lambda: measure_queue(True),
        "kdefer, async def": lambda: measure_kdefer(True),
        "anyio start_soon": measure_task_group,
    }
    # a first warm-up round, dropped; it also tells how many rounds fit in the budget
    t0 = time.perf_counter()
    first = alternate(replace(opts, repeat=1), sides, warmup=0)
    per_round = time.perf_counter() - t0
    if 2 * per_round > TIME_BUDGET_S:
        print(
            f"note: one round takes {per_round:.1f} s: that first round is the only one "
            f"(not dropped as a warm-up), to stay within the {TIME_BUDGET_S:.0f} s budget"
        )
        return first
    fit = int((TIME_BUDGET_S - per_round) / per_round)
    warmup = 1 if fit >= opts.repeat + 1 else 0
    repeat = max(1, min(opts.repeat, fit - warmup))
    if repeat < opts.repeat:
        print(
            f"note: one round takes {per_round:.1f} s: {repeat} repetition(s) instead of "
            f"{opts.repeat}, to stay within the {TIME_BUDGET_S:.0f} s budget"
        )
    return alternate(replace(opts, repeat=repeat), sides, warmup=warmup)


# ---------------------------------------------------------------------------------------------
# 3: memory of 10k sleeping works
# ---------------------------------------------------------------------------------------------


class _LeaveKernel(Exception):
    """Raised by the init task to leave the kernel at once, its works still asleep."""


class SleepReport:
    """What 10k sleeping works cost."""

    def __init__(self) -> None:
        self.per_work = 0.0  # traced bytes per work, everything included
        self.coroutine = 0.0  # traced bytes per suspended coroutine, measured alone
        self.seconds = 0.0  # wall time until all were asleep, under tracemalloc
        self.workers = -1  # kworkers in the unbound pool when all were asleep
        self.sites: list[tuple[str, int, int]] = []  # (file:line, bytes, blocks)
        self.groups: dict[str, int] = {}  # bytes by package / module


def _group(filename: str) -> str:
    name = filename.replace("\\", "/")
    if "/kdefer_async/" in name:
        return "kdefer_async/" + name.rsplit("/", 1)[-1]
    if "/anyio/" in name:
        return "anyio"
    if "/asyncio/" in name:
        return "asyncio"
    return name.rsplit("/", 1)[-1]


def _where(filename: str, lineno: int) -> str:
    name = filename.replace("\\", "/")
    for pkg in ("kdefer_async/", "anyio/", "asyncio/"):
        i = name.rfind("/" + pkg)
        if i >= 0:
            return f"{name[i + 1 :]}:{lineno}"
    return f"{name.rsplit('/', 1)[-1]}:{lineno}"


def _unbound_workers(kernel: object) -> int:
    st: Any = getattr(kernel, "_wq_state", None)
    if st is None:
        return -1
    return sum(len(p.workers) for p in st.unbound_pools if p is not None)


def measure_sleeping(report: SleepReport) -> None:
    """Traced bytes from before queueing 10k sleeping works to all of them asleep."""

    async def main() -> None:
        started = [0]

        async def sleeper(work: Work) -> None:
            started[0] += 1
            await msleep(SLEEP_MS)

        wqs: list[Workqueue] = []
        for i in range(NR_MEM_WQS):
            wq = alloc_workqueue("bench_mem%d", WQ_UNBOUND, WQ_MAX_ACTIVE, i)
            assert wq is not None
            wqs.append(wq)
        plan = [(wqs[i % NR_MEM_WQS], Work(sleeper)) for i in range(N_SLEEP)]
        checkpoint = anyio.lowlevel.checkpoint
        gc.collect()
        tracemalloc.start()
        try:
            first = tracemalloc.take_snapshot()
            before = tracemalloc.get_traced_memory()[0]
            start = time.perf_counter()
            gc.disable()
            try:
                for wq, work in plan:
                    queue_work(wq, work)
                while started[0] < N_SLEEP:
                    await checkpoint()
            finally:
                gc.enable()
            report.seconds = time.perf_counter() - start
            gc.collect()  # count what is alive, not garbage left while the GC was off
            after = tracemalloc.get_traced_memory()[0]
            last = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        report.per_work = (after - before) / N_SLEEP
        report.workers = _unbound_workers(current_kernel())
        for stat in last.compare_to(first, "lineno")[:TOP_SITES]:
            frame = stat.traceback[0]
            report.sites.append(
                (_where(frame.filename, frame.lineno), stat.size_diff, stat.count_diff)
            )
        for stat in last.compare_to(first, "filename"):
            group = _group(stat.traceback[0].filename)
            report.groups[group] = report.groups.get(group, 0) + stat.size_diff
        del first, last
        # leave without waiting SLEEP_MS for the sleepers (the kernel's shutdown would)
        raise _LeaveKernel

    try:
        # khungtaskd off: with it, every uninterruptible sleep rescans all sleeping tasks
        # (Kernel._arm_hung_timer), which makes getting 10k asleep quadratic in time
        kdefer_async.run(main, backend="asyncio", hz=HZ, hung_task_timeout_secs=0)
    except _LeaveKernel:
        pass


def measure_coroutines() -> float:
    """Traced bytes per coroutine of an equivalent ``async def``, suspended at an ``await``."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[None] = loop.create_future()
        started = [0]

        async def sleeper(work: object) -> None:
            started[0] += 1
            await never

        args = [object() for _ in range(N_SLEEP)]
        coros: list[Coroutine[Any, Any, None] | None] = [None] * N_SLEEP
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i, arg in enumerate(args):
                coro = sleeper(arg)
                coro.send(None)  # runs up to `await never`, which yields the future
                never._asyncio_future_blocking = False  # what a Task would do with it
                coros[i] = coro
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert started[0] == N_SLEEP, started[0]
        for c in coros:
            if c is not None:
                c.close()
        never.cancel()
        return (after - before) / N_SLEEP

    return asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# 4: 1M mod_delayed_work re-arms
# ---------------------------------------------------------------------------------------------


class RearmReport:
    """What 1M ``mod_delayed_work`` re-arms over 10k delayed works showed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.max_buckets = 0
        # an array, so that storing a sample allocates nothing that tracemalloc would count
        self.mem_samples = array.array("q", [0] * (REARM // SAMPLE_EVERY))
        self.mem_peak = 0
        self.ran = 0


def _rearm(chunk: list[tuple[DelayedWork, int]]) -> None:
    mod = mod_delayed_work
    wq = system_wq
    for dwork, delay in chunk:
        mod(wq, dwork, delay)


def measure_rearm(profile: bool = False) -> RearmReport:
    """Re-arm 10k delayed works 100 times each: time (untraced), then traced memory.

    With *profile*, only profile the first 100k calls (and measure nothing).
    """
    report = RearmReport()
    rng = random.Random(SEED)
    delays = [rng.randint(100, 10_000) for _ in range(REARM)]

    async def main() -> None:
        k = current_kernel()
        base = k.cpus[0].std_base

        def fn(work: Work) -> None:
            report.ran += 1

        dworks = [DelayedWork(fn) for _ in range(N_DWORK)]
        order = dworks * (REARM // N_DWORK)
        chunks = [
            list(zip(order[i : i + SAMPLE_EVERY], delays[i : i + SAMPLE_EVERY], strict=True))
            for i in range(0, REARM, SAMPLE_EVERY)
        ]
        del order
        if profile:
            with profiled(f"{SAMPLE_EVERY:,} mod_delayed_work over {N_DWORK:,} delayed works"):
                _rearm(chunks[0])
            for dwork in dworks:
                cancel_delayed_work(dwork)
            return
        # 1) timing (the first pass arms them; every call after that is a re-arm)
        with no_gc():
            start = now()
            for chunk in chunks:
                _rearm(chunk)
                report.max_buckets = max(report.max_buckets, len(base.buckets))
            report.seconds = now() - start
        # 2) memory: the same again under tracemalloc, sampled every SAMPLE_EVERY re-arms
        gc.collect()
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            baseline = tracemalloc.get_traced_memory()[0]
            for i, chunk in enumerate(chunks):
                _rearm(chunk)
                report.mem_samples[i] = tracemalloc.get_traced_memory()[0] - baseline
                report.max_buckets = max(report.max_buckets, len(base.buckets))
            report.mem_peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
        for dwork in dworks:
            cancel_delayed_work(dwork)

    kdefer_async.run(main, backend="asyncio", hz=HZ)
    return report


# ---------------------------------------------------------------------------------------------


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("workqueues: queue_work + run, sleeping works, mod_delayed_work", opts)
    print(
        f"1-2: N = {N:,} distinct works queued on system_wq from init, then flush_workqueue "
        f"(HZ={HZ}, asyncio backend); baselines: asyncio.Queue + {NR_WORKERS} worker tasks, "
        "anyio TaskGroup.start_soon"
    )
    samples = run_throughput(opts)
    print_samples(samples, 1e9 / N, "ns per item")
    best = {name: min(values) / N * 1e9 for name, values in samples.items()}
    k_async, q_async = best["kdefer, async def"], best["asyncio.Queue, async def"]
    k_plain, q_plain = best["kdefer, def"], best["asyncio.Queue, def"]
    tg = best["anyio start_soon"]

    print(
        f"3: {N_SLEEP:,} works asleep in msleep() over {NR_MEM_WQS} unbound workqueues of "
        f"max_active {WQ_MAX_ACTIVE} (tracemalloc; khungtaskd off)"
    )
    sys.stdout.flush()
    sleep = SleepReport()
    measure_sleeping(sleep)
    sleep.coroutine = measure_coroutines()
    print(
        f"   {sleep.workers:,} kworkers in the unbound pool when all were asleep; "
        f"{sleep.seconds:.1f} s to get there (under tracemalloc)"
    )
    print(f"   traced bytes per sleeping work by package / module (of {sleep.per_work:,.0f}):")
    for group, size in sorted(sleep.groups.items(), key=lambda kv: -kv[1])[:8]:
        print(f"     {size / N_SLEEP:8,.0f}  {group}")
    print(f"   top {TOP_SITES} allocation sites, per sleeping work (bytes, blocks):")
    for where, size, count in sleep.sites:
        print(f"     {size / N_SLEEP:8,.0f} {count / N_SLEEP:6.2f}  {where}")

    print(
        f"4: {REARM:,} mod_delayed_work over {N_DWORK:,} delayed works, delays 100..10000 "
        f"jiffies at HZ={HZ}"
    )
    sys.stdout.flush()
    rearm = measure_rearm()
    mem_text = ", ".join(f"{b:+,}" for b in rearm.mem_samples)
    print(
        f"   traced memory (bytes vs start, every {SAMPLE_EVERY:,}): {mem_text}; "
        f"peak {rearm.mem_peak:+,}; at most {rearm.max_buckets} wheel bucket(s) in use on CPU 0"
    )
    assert rearm.ran == 0, rearm.ran
    first = rearm.mem_samples[0]
    growth = rearm.mem_samples[-1] - first
    flat_limit = max(0.01 * abs(first), float(FLAT_FLOOR))

    rows = [
        Row(
            "queue_work+run, async def, vs asyncio.Queue",
            k_async,
            q_async,
            "ns",
            Target("ratio", "<=", 1.5),
        ),
        Row("queue_work+run, def, vs asyncio.Queue", k_plain, q_plain, "ns"),
        Row(
            "queue_work+run, async def, vs anyio start_soon",
            k_async,
            tg,
            "ns",
            Target("ratio", "<=", 0.05),
        ),
        Row("10k asleep: bytes per work (total)", sleep.per_work, None, "bytes"),
        Row("10k asleep: suspended coroutine alone", sleep.coroutine, None, "bytes"),
        Row(
            "10k asleep: bytes per work beyond its coroutine",
            sleep.per_work - sleep.coroutine,
            None,
            "bytes",
            Target("value", "<=", SLEEP_LIMIT),
        ),
        Row("mod_delayed_work: per re-arm (untraced)", rearm.seconds / REARM * 1e9, None, "ns"),
        Row("mod_delayed_work: traced memory after 100k", first, None, "bytes"),
        Row(
            "mod_delayed_work: growth 100k -> 1M",
            growth,
            None,
            "bytes",
            Target("value", "<", flat_limit),
        ),
    ]
    print_table(rows, baseline_label="baseline")
    goal = k_async / q_async
    print(
        f"goal (not enforced): queue_work+run, async def, ratio <= 1.00 vs asyncio.Queue: "
        f"{'met' if goal <= 1.0 else 'missed'} ({goal:.2f}x)"
    )
    status = finish(rows)
    if opts.profile:
        measure_kdefer(True, profile=True)
        measure_rearm(profile=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
