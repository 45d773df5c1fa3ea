"""Workqueues: queueing, execution, pools, concurrency management, max_active, ordered and BH
workqueues, system workqueues and introspection (kernel-semantics §4, §6.4 WQ-01..WQ-28).

The test task is ``init`` on CPU 0, so a plain ``queue_work`` picks CPU 0. Work functions record
their start and end in a :class:`Trace`. An ``async def`` work function "sleeps" whenever an
await suspends it (``msleep``, ``wait_for_completion``); one that never awaits runs to the end
in one go, as a CPU-bound kernel work function does. A work function that must be "running"
while the test looks at it blocks on a :class:`Completion` gate.

WQ-23 (RCU work) is in ``test_rcu.py``. Worker creation failing (WQ-24's mayday) is simulated
with ``Kernel.block_worker_creation()``. Two work functions truly running at the same instant on two CPUs
cannot happen in one event loop: "concurrent" below means "started before the other ended".
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from helpers import logged, softirqs_done

import kdefer_async
from kdefer_async import (
    DECLARE_WORK,
    INIT_WORK,
    IRQ_HANDLED,
    WORK_BUSY_PENDING,
    WORK_BUSY_RUNNING,
    WORK_CPU_UNBOUND,
    WQ_BH,
    WQ_CPU_INTENSIVE,
    WQ_DFL_ACTIVE,
    WQ_FREEZABLE,
    WQ_HIGHPRI,
    WQ_MAX_ACTIVE,
    WQ_MEM_RECLAIM,
    WQ_PERCPU,
    WQ_POWER_EFFICIENT,
    WQ_UNBOUND,
    Completion,
    DelayedWork,
    ExecuteWork,
    Kernel,
    KernelPanic,
    NoKernelError,
    Work,
    Workqueue,
    alloc_ordered_workqueue,
    alloc_workqueue,
    complete,
    complete_all,
    create_freezable_workqueue,
    create_singlethread_workqueue,
    create_workqueue,
    current,
    current_work,
    delayed_work_pending,
    destroy_workqueue,
    disable_work,
    enable_and_queue_work,
    execute_in_process_context,
    flush_work,
    flush_workqueue,
    in_serving_softirq,
    in_task,
    kthread_run,
    kthread_stop,
    local_bh_disable,
    local_bh_enable,
    mdelay,
    msleep,
    msleep_interruptible,
    queue_delayed_work,
    queue_work,
    queue_work_on,
    request_irq,
    schedule_work,
    schedule_work_on,
    smp_processor_id,
    system_bh_highpri_wq,
    system_bh_wq,
    system_dfl_wq,
    system_freezable_power_efficient_wq,
    system_freezable_wq,
    system_highpri_wq,
    system_long_wq,
    system_percpu_wq,
    system_power_efficient_wq,
    system_unbound_wq,
    system_wq,
    udelay,
    wait_for_completion,
    work_busy,
    work_pending,
    workqueue_congested,
    workqueue_set_max_active,
)
from kdefer_async._workqueue import _all_pools, wq_state
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

IRQ_A = 12
KWORKER = re.compile(r"kworker/(\d+):(\d+)(H?)$")
KWORKER_UNBOUND = re.compile(r"kworker/u\d+:\d+$")
#: Safety net for waits that must end: never reached when the library is right.
SAFETY = 5.0


class Trace:
    """Start and end events of work functions, with the CPU and task each start ran on."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.where: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        self.runs: Counter[str] = Counter()
        self.running = 0
        self.peak = 0

    def start(self, name: str) -> None:
        self.events.append(f"s:{name}")
        self.where[name].append((smp_processor_id(), current().comm))
        self.runs[name] += 1
        self.running += 1
        self.peak = max(self.peak, self.running)

    def end(self, name: str) -> None:
        self.events.append(f"e:{name}")
        self.running -= 1

    def index(self, event: str, nth: int = 0) -> int:
        """Position of the *nth* occurrence of *event* (``"s:A"``)."""
        found = [i for i, e in enumerate(self.events) if e == event]
        return found[nth]


def plain_work(tr: Trace, name: str) -> Work:
    """A plain (never sleeping) work function."""

    def fn(_work: Work) -> None:
        tr.start(name)
        tr.end(name)

    return Work(fn)


def async_work(
    tr: Trace,
    name: str,
    *,
    ms: int = 0,
    gate: Completion | None = None,
    started: Completion | None = None,
) -> Work:
    """An ``async def`` work function: signals *started*, waits for *gate*, sleeps *ms*."""

    async def fn(_work: Work) -> None:
        tr.start(name)
        if started is not None:
            complete(started)
        if gate is not None:
            await wait_for_completion(gate)
        if ms:
            await msleep(ms)
        tr.end(name)

    return Work(fn)


async def start_all_before_any_ends(wq: Workqueue, tr: Trace, names: str) -> None:
    """Queue one item per name on *wq*, each held at a gate once started; wait until all of
    them have started, then open the gate and flush. Nothing can end before every item has
    started, so a pool that does not run them at once fails here (at SAFETY) instead of a
    timed sleep deciding the outcome."""
    gate, started = Completion(), Completion()
    for n in names:
        queue_work(wq, async_work(tr, n, gate=gate, started=started))
    with anyio.fail_after(SAFETY):
        for _ in names:
            await wait_for_completion(started)
    complete_all(gate)
    await flush_workqueue(wq)


def percpu_wq(name: str, max_active: int = 0, flags: int = 0) -> Workqueue:
    wq = alloc_workqueue(name, WQ_PERCPU | flags, max_active)
    assert wq is not None
    return wq


def unbound_wq(name: str, max_active: int = 0, flags: int = 0) -> Workqueue:
    wq = alloc_workqueue(name, WQ_UNBOUND | flags, max_active)
    assert wq is not None
    return wq


#: Tests that run on both kinds of pool: per-CPU pools run items inline in the kworker loop
#: with concurrency management; unbound pools have none (and on asyncio their kworkers are
#: light tasks, each one coroutine object driving its item).
KINDS = pytest.mark.parametrize("kind", ["percpu", "unbound"])


def kind_wq(kind: str, name: str, max_active: int = 0, flags: int = 0) -> Workqueue:
    return (percpu_wq if kind == "percpu" else unbound_wq)(name, max_active, flags)


def kworker_re(kind: str) -> re.Pattern[str]:
    return KWORKER if kind == "percpu" else KWORKER_UNBOUND


def warnings(k: Kernel) -> int:
    """How many WARN splats are in the log."""
    return logged(k, "WARNING: CPU:")


def irq_calls(fn: Callable[[], object]) -> Callable[[int, object], int]:
    """An interrupt handler that calls ``fn()``."""

    def handler(_irq: int, _dev: object) -> int:
        fn()
        return IRQ_HANDLED

    return handler


# --- queueing ---------------------------------------------------------------------------------


class TestQueueWork:
    async def test_queue_while_pending_returns_false(self) -> None:
        """WQ-01: queue on an idle item is True, again before it starts False; it runs once."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("wq01")
            w = plain_work(tr, "A")
            assert queue_work(wq, w) is True
            assert queue_work(wq, w) is False
            assert queue_work_on(1, wq, w) is False
            assert await flush_work(w) is True
            await flush_workqueue(wq)
            assert tr.runs["A"] == 1
            await destroy_workqueue(wq)

    async def test_work_pending_lifecycle(self) -> None:
        """WQ-05: work_pending is True after queueing, False inside the function and after."""
        seen: list[bool] = []
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("wq05")

            def fn(work: Work) -> None:
                seen.append(work_pending(work))

            w = Work(fn)
            assert not work_pending(w)
            queue_work(wq, w)
            assert work_pending(w)
            await flush_work(w)
            assert seen == [False]
            assert not work_pending(w)
            await destroy_workqueue(wq)

    @KINDS
    async def test_requeue_while_running_runs_after(self, kind: str) -> None:
        """WQ-02: requeueing a running item is True; it runs again after, in the same worker
        (on an unbound pool another worker takes it first and hands it over)."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = kind_wq(kind, "wq02")
            started, gate = Completion(), Completion()
            w = async_work(tr, "A", gate=gate, started=started)
            assert queue_work(wq, w)
            await wait_for_completion(started)
            assert not work_pending(w)
            assert queue_work(wq, w) is True
            complete_all(gate)
            assert await flush_work(w) is True
            assert tr.events == ["s:A", "e:A", "s:A", "e:A"]
            assert tr.where["A"][0] == tr.where["A"][1]
            await destroy_workqueue(wq)

    @KINDS
    async def test_requeue_from_own_function(self, kind: str) -> None:
        """WQ-02: an item may requeue itself from its function: one more run, no overlap."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = kind_wq(kind, "self")
            results: list[bool] = []

            async def fn(work: Work) -> None:
                tr.start("A")
                if tr.runs["A"] < 3:
                    results.append(queue_work(wq, work))
                await msleep(1)
                tr.end("A")

            w = Work(fn)
            queue_work(wq, w)
            while tr.runs["A"] < 3 or work_busy(w):
                await flush_work(w)
            assert results == [True, True]
            assert tr.events == ["s:A", "e:A"] * 3
            assert tr.peak == 1
            await destroy_workqueue(wq)

    async def test_queue_on_other_cpu_while_running_stays(self) -> None:
        """WQ-03: queue_work_on(1) while the item runs on CPU 0 runs it again on CPU 0, after."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("wq03")
            started, gate = Completion(), Completion()
            w = async_work(tr, "A", gate=gate, started=started)
            assert queue_work_on(0, wq, w)
            await wait_for_completion(started)
            assert queue_work_on(1, wq, w) is True
            complete_all(gate)
            assert await flush_work(w) is True
            assert tr.events == ["s:A", "e:A", "s:A", "e:A"]
            assert [cpu for cpu, _ in tr.where["A"]] == [0, 0]
            assert tr.where["A"][0][1] == tr.where["A"][1][1]
            await destroy_workqueue(wq)

    async def test_other_workqueue_other_pool_may_overlap(self) -> None:
        """WQ-04: queued on a wq of another pool while running, it may start again at once."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            b = percpu_wq("wq04b")
            a = unbound_wq("wq04a")
            started, gate = Completion(), Completion()
            w = async_work(tr, "A", gate=gate, started=started)
            queue_work(b, w)
            await wait_for_completion(started)
            assert queue_work(a, w) is True
            await wait_for_completion(started)
            assert tr.events == ["s:A", "s:A"]
            assert KWORKER.match(tr.where["A"][0][1])
            assert KWORKER_UNBOUND.match(tr.where["A"][1][1])
            complete_all(gate)
            await flush_workqueue(a)
            await flush_workqueue(b)
            assert tr.runs["A"] == 2
            await destroy_workqueue(a)
            await destroy_workqueue(b)

    async def test_other_workqueue_same_pool_serialised(self) -> None:
        """WQ-04: queued on another wq of its pool while running, it runs after, same worker."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            b = percpu_wq("wq04b")
            a = percpu_wq("wq04a")
            started, gate = Completion(), Completion()
            w = async_work(tr, "A", gate=gate, started=started)
            queue_work(b, w)
            await wait_for_completion(started)
            assert queue_work(a, w) is True
            await settle()
            assert tr.runs["A"] == 1
            complete_all(gate)
            await flush_workqueue(a)
            await flush_workqueue(b)
            assert tr.events == ["s:A", "e:A", "s:A", "e:A"]
            assert tr.where["A"][0] == tr.where["A"][1]
            await destroy_workqueue(a)
            await destroy_workqueue(b)

    async def test_queue_from_hardirq(self) -> None:
        """Queueing is legal in hardirq context and picks the interrupted CPU."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("irqq")
            w = async_work(tr, "A")
            results: list[bool] = []
            handler = irq_calls(lambda: results.append(queue_work(wq, w)))
            assert request_irq(IRQ_A, handler, 0, "q", None) == 0
            k.raise_irq(IRQ_A, cpu=1)
            assert results == [True]
            await flush_work(w)
            assert tr.where["A"][0][0] == 1
            await destroy_workqueue(wq)

    async def test_init_and_declare(self) -> None:
        """INIT_WORK initialises an empty Work; DECLARE_WORK returns an initialised one."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            w = Work()
            assert w.func is None

            def fn(_work: Work) -> None:
                tr.start("A")
                tr.end("A")

            INIT_WORK(w, fn)
            assert w.func is fn
            d = DECLARE_WORK(fn)
            assert isinstance(d, Work)
            assert d.func is fn
            assert d is not DECLARE_WORK(fn)
            queue_work(system_wq, w)
            queue_work(system_wq, d)
            await flush_work(w)
            await flush_work(d)
            assert tr.runs["A"] == 2

    async def test_work_function_gets_its_work(self) -> None:
        """The work function receives the Work itself, its only argument."""
        got: list[Work] = []
        async with Kernel(nr_cpus=2, hz=250):
            w = Work(got.append)
            queue_work(system_wq, w)
            await flush_work(w)
            assert got == [w]


class TestBadInput:
    async def test_non_work_is_type_error(self) -> None:
        """Queueing something that is not a Work raises TypeError, as do bad wq arguments."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("bad")
            with pytest.raises(TypeError):
                queue_work(wq, object())  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                queue_work_on(0, wq, "work")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="DelayedWork"):
                queue_work(wq, DelayedWork(lambda _w: None))  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                queue_work(object(), Work(lambda _w: None))  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                Work(42)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                INIT_WORK(object(), lambda _w: None)  # type: ignore[arg-type]
            await destroy_workqueue(wq)

    async def test_uninitialised_work_is_value_error(self) -> None:
        """A Work() never initialised cannot be queued: ValueError."""
        async with Kernel(nr_cpus=2, hz=250):
            w = Work()
            with pytest.raises(ValueError, match="expects a Work initialised by INIT_WORK"):
                queue_work(system_wq, w)
            with pytest.raises(ValueError, match="expects a Work initialised by INIT_WORK"):
                queue_work_on(0, system_wq, w)
            assert not work_pending(w)

    async def test_bad_cpu(self) -> None:
        """queue_work_on with a CPU out of range is ValueError, a non-int CPU TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            w = Work(lambda _w: None)
            with pytest.raises(ValueError, match=r"CPU number from 0 to 1 .* got 2$"):
                queue_work_on(2, system_wq, w)
            with pytest.raises(ValueError):
                queue_work_on(-1, system_wq, w)
            with pytest.raises(TypeError):
                queue_work_on("0", system_wq, w)  # type: ignore[arg-type]
            assert not work_pending(w)

    async def test_queue_on_destroyed_wq(self) -> None:
        """Queueing on a destroyed wq returns True, warns "cannot queue" once per boot, and
        the item never runs."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("gone")
            await destroy_workqueue(wq)

            def late_fn(_work: Work) -> None:
                tr.start("late")

            w = Work(late_fn)
            assert queue_work(wq, w) is True
            assert not work_pending(w)
            assert queue_work(wq, w) is True
            assert await flush_work(w) is False
            await settle()
            assert tr.runs["late"] == 0
            assert logged(k, "workqueue: cannot queue late_fn on wq gone") == 1
            # WARN_ONCE: one warning per boot, whatever the item and the workqueue; every
            # such item is dropped all the same
            other = percpu_wq("gone2")
            await destroy_workqueue(other)
            w2 = plain_work(tr, "other")
            assert queue_work(other, w2) is True
            assert not work_pending(w2)
            await settle()
            assert tr.runs["other"] == 0
            assert logged(k, "workqueue: cannot queue") == 1


# --- concurrency management -------------------------------------------------------------------


class TestConcurrencyManagement:
    async def test_cpu_bound_items_run_one_after_another(self) -> None:
        """WQ-06: three plain items on one CPU's pool run strictly one after another."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("wq06", 16)
            works = [plain_work(tr, n) for n in "ABC"]
            for w in works:
                assert queue_work(wq, w)
            await flush_workqueue(wq)
            assert tr.events == ["s:A", "e:A", "s:B", "e:B", "s:C", "e:C"]
            assert tr.peak == 1
            await destroy_workqueue(wq)

    async def test_async_items_that_never_await_run_one_after_another(self) -> None:
        """WQ-06: three async items that never await hold the pool like CPU-bound ones."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("wq06a", 16)
            for n in "ABC":
                assert queue_work(wq, async_work(tr, n))
            await flush_workqueue(wq)
            assert tr.events == ["s:A", "e:A", "s:B", "e:B", "s:C", "e:C"]
            assert k.wq_stats()["wq06a"]["CMW/RPR"] == 0
            await destroy_workqueue(wq)

    async def test_items_that_only_yield_hold_the_pool(self) -> None:
        """WQ-06: an item that only yields (cond_resched) does not sleep: the next one waits."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("resched", 16)

            async def yielder(_work: Work) -> None:
                tr.start("A")
                for _ in range(5):
                    await anyio.lowlevel.checkpoint()
                tr.end("A")

            queue_work(wq, Work(yielder))
            queue_work(wq, plain_work(tr, "B"))
            await flush_workqueue(wq)
            assert tr.events == ["s:A", "e:A", "s:B", "e:B"]
            assert k.wq_stats()["resched"]["CMW/RPR"] == 0
            await destroy_workqueue(wq)

    async def test_sleeping_item_lets_the_next_start(self) -> None:
        """WQ-07: when item 1 sleeps, item 2 starts before item 1 ends; CMW counts it."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("wq07", 16)
            gate = Completion()
            queue_work(wq, async_work(tr, "A", gate=gate))
            b, c = async_work(tr, "B"), async_work(tr, "C")
            queue_work(wq, b)
            queue_work(wq, c)
            # A sleeps until the gate opens, after B and C are done: only another worker,
            # woken because A sleeps, can run them (no timed sleep that may end first)
            with anyio.fail_after(SAFETY):
                await flush_work(b)
                await flush_work(c)
            complete_all(gate)
            await flush_workqueue(wq)
            assert tr.index("s:B") < tr.index("e:A")
            assert tr.index("s:C") < tr.index("e:A")
            assert tr.where["A"][0][1] != tr.where["B"][0][1]
            assert {cpu for n in "ABC" for cpu, _ in tr.where[n]} == {0}
            stats = k.wq_stats()["wq07"]
            assert stats["CMW/RPR"] == 1
            assert stats["total"] == 3
            assert stats["infl"] == 0
            await destroy_workqueue(wq)

    async def test_nr_running_counts_the_running_worker(self) -> None:
        """A running item on a per-CPU pool counts in nr_running; a CPU_INTENSIVE one does not."""
        seen: dict[str, int] = {}
        async with Kernel(nr_cpus=2, hz=250):
            normal = percpu_wq("normal")
            heavy = percpu_wq("heavy", 0, WQ_CPU_INTENSIVE)
            pool = normal.pwq_for(0).pool
            assert heavy.pwq_for(0).pool is pool

            def probe(work: Work) -> None:
                seen["heavy" if work is hw else "normal"] = pool.nr_running

            nw, hw = Work(probe), Work(probe)
            queue_work(normal, nw)
            await flush_work(nw)
            queue_work(heavy, hw)
            await flush_work(hw)
            assert seen == {"normal": 1, "heavy": 0}
            await destroy_workqueue(normal)
            await destroy_workqueue(heavy)

    async def test_cpu_intensive_items_start_without_cm_wakeups(self) -> None:
        """WQ-08: WQ_CPU_INTENSIVE items all start before any ends, with no CM wakeup."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("wq08", 16, WQ_CPU_INTENSIVE)
            await start_all_before_any_ends(wq, tr, "ABC")
            last_start = max(tr.index(f"s:{n}") for n in "ABC")
            first_end = min(tr.index(f"e:{n}") for n in "ABC")
            assert last_start < first_end
            assert tr.peak == 3
            assert len({tr.where[n][0][1] for n in "ABC"}) == 3
            assert k.wq_stats()["wq08"]["CMW/RPR"] == 0
            await destroy_workqueue(wq)

    async def test_unbound_items_start_concurrently(self) -> None:
        """WQ-09: on an unbound wq three items start on separate workers before any ends."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = unbound_wq("wq09")
            await start_all_before_any_ends(wq, tr, "ABC")
            last_start = max(tr.index(f"s:{n}") for n in "ABC")
            first_end = min(tr.index(f"e:{n}") for n in "ABC")
            assert last_start < first_end
            comms = {tr.where[n][0][1] for n in "ABC"}
            assert len(comms) == 3
            assert all(KWORKER_UNBOUND.match(c) for c in comms)
            stats = k.wq_stats()["wq09"]
            assert stats["CMW/RPR"] == 0
            assert stats["CPUitsv"] is None
            await destroy_workqueue(wq)

    async def test_cpu_hog_is_flagged_and_lets_the_next_start(self) -> None:
        """WQ-12: a 12 ms hog is flagged CPU-intensive (CPUitsv +1); the next item starts."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("wq12")

            async def hog_fn(_work: Work) -> None:
                tr.start("hog")
                mdelay(6)
                await anyio.lowlevel.checkpoint()  # not a sleep: the 10 ms keep adding up
                mdelay(6)
                for _ in range(100):
                    await anyio.lowlevel.checkpoint()  # cond_resched(): yields, not a sleep
                    if tr.runs["B"]:
                        break
                tr.end("hog")

            queue_work(wq, Work(hog_fn))
            queue_work(wq, plain_work(tr, "B"))
            await flush_workqueue(wq)
            assert tr.index("s:B") < tr.index("e:hog")
            assert k.wq_stats()["wq12"]["CPUitsv"] == 1
            await destroy_workqueue(wq)

    async def test_hog_found_at_the_end_of_a_run_leaves_the_pool_working(self) -> None:
        """WQ-12: a plain item found over the threshold only when it returns is counted as a
        CPU hog, but the flag ends with the item (process_one_work clears it), so the pool
        still counts its kworker as running once, not twice, and the next item runs."""
        tr = Trace()
        # a threshold of 100 us and a 300 us busy-wait: the item is a hog on any machine
        async with Kernel(nr_cpus=1, hz=250, wq_cpu_intensive_thresh_us=100) as k:
            wq = percpu_wq("wq12b")

            def hog_fn(_work: Work) -> None:
                tr.start("hog")
                udelay(300)
                tr.end("hog")

            # flush_workqueue waits on flush colors, not on the item: nothing else marks the
            # run as special, so the hog is only seen once the function has returned
            assert queue_work(wq, Work(hog_fn))
            with anyio.fail_after(5):
                await flush_workqueue(wq)
            assert k.wq_stats()["wq12b"]["CPUitsv"] == 1
            assert queue_work(wq, plain_work(tr, "next"))
            with anyio.fail_after(5):
                await flush_workqueue(wq)
            assert tr.runs == {"hog": 1, "next": 1}
            await destroy_workqueue(wq)


def test_cpu_hog_reports_with_exponential_backoff() -> None:
    """WQ-12, WQ-13: a 12 ms hog is flagged each time, reported at the 4th, 5th, 7th only."""

    # a plain test run once, on one backend: mdelay() burns wall time
    async def main() -> tuple[list[str], dict[str, Any]]:
        k = kdefer_async.current_kernel()
        wq = percpu_wq("hogs")

        def hog_fn(_work: Work) -> None:
            mdelay(12)

        w = Work(hog_fn)
        for _ in range(7):
            queue_work(wq, w)
            await flush_work(w)
        stats = k.wq_stats()
        await destroy_workqueue(wq)
        return k.dmesg(), stats

    log, stats = kdefer_async.run(main, nr_cpus=2, hz=250, backend="asyncio")
    reports = [line for line in log if "hogged CPU" in line]
    assert [re.search(r"for >10000us (\d+) times", line)[1] for line in reports] == [  # type: ignore[index]
        "4",
        "5",
        "7",
    ]
    assert reports[0].endswith(
        "workqueue: hog_fn hogged CPU for >10000us 4 times, consider switching to WQ_UNBOUND"
    )
    assert stats["hogs"]["CPUitsv"] == 7


# --- max_active, ordered ----------------------------------------------------------------------


class TestMaxActive:
    async def test_max_active_one_parks_and_congests(self) -> None:
        """WQ-10: max_active=1: B waits inactive, the wq is congested until A completes."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("wq10", 1)
            started, gate = Completion(), Completion()
            a = async_work(tr, "A", gate=gate, started=started)
            b = async_work(tr, "B")
            assert not workqueue_congested(0, wq)
            queue_work(wq, a)
            queue_work(wq, b)
            await wait_for_completion(started)
            await settle()
            assert tr.runs["B"] == 0
            assert work_busy(b) == WORK_BUSY_PENDING
            assert workqueue_congested(0, wq)
            assert workqueue_congested(WORK_CPU_UNBOUND, wq)
            assert not workqueue_congested(1, wq)
            complete_all(gate)
            await flush_work(b)
            assert not workqueue_congested(0, wq)
            assert tr.events == ["s:A", "e:A", "s:B", "e:B"]
            await destroy_workqueue(wq)

    async def test_max_active_is_per_cpu_on_percpu_wq(self) -> None:
        """max_active=1 on a per-CPU wq limits each CPU: items on CPU 0 and 1 overlap."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("percpu1", 1)
            gate, started = Completion(), Completion()
            queue_work_on(0, wq, async_work(tr, "A", gate=gate, started=started))
            queue_work_on(1, wq, async_work(tr, "B", gate=gate, started=started))
            queue_work_on(1, wq, async_work(tr, "C", gate=gate, started=started))
            # A and B both start while neither can end; C waits for B's slot on CPU 1
            with anyio.fail_after(SAFETY):
                await wait_for_completion(started)
                await wait_for_completion(started)
            await settle()
            assert tr.runs == Counter({"A": 1, "B": 1})
            complete_all(gate)
            await flush_workqueue(wq)
            assert tr.peak == 2
            assert tr.where["A"][0][0] == 0
            assert tr.where["B"][0][0] == tr.where["C"][0][0] == 1
            assert tr.index("e:B") < tr.index("s:C")
            await destroy_workqueue(wq)

    async def test_max_active_never_exceeded(self) -> None:
        """An unbound wq with max_active=2 runs at most 2 items at once, the rest in order."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = unbound_wq("ub2", 2)
            gate, started = Completion(), Completion()
            for i, n in enumerate("ABCDE"):
                queue_work_on(i % 2, wq, async_work(tr, n, gate=gate, started=started))
            assert workqueue_congested(0, wq)
            assert workqueue_congested(1, wq)
            # two start while none can end; the other three wait for a slot
            with anyio.fail_after(SAFETY):
                await wait_for_completion(started)
                await wait_for_completion(started)
            await settle()
            assert tr.runs == Counter({"A": 1, "B": 1})
            complete_all(gate)
            await flush_workqueue(wq)
            assert tr.peak == 2
            starts = [e for e in tr.events if e.startswith("s:")]
            assert starts[2:] == ["s:C", "s:D", "s:E"]
            await destroy_workqueue(wq)

    async def test_raising_max_active_activates_parked_items(self) -> None:
        """workqueue_set_max_active() raising the limit starts parked items at once."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("raise", 1)
            gate = Completion()
            started = Completion()
            for n in "ABC":
                queue_work(wq, async_work(tr, n, gate=gate, started=started))
            await wait_for_completion(started)
            await settle()
            assert tr.runs == Counter({"A": 1})
            workqueue_set_max_active(wq, 3)
            assert wq.max_active == 3
            await wait_for_completion(started)
            await wait_for_completion(started)
            assert tr.runs == Counter({"A": 1, "B": 1, "C": 1})
            assert tr.peak == 3
            complete_all(gate)
            await flush_workqueue(wq)
            await destroy_workqueue(wq)

    async def test_set_max_active_clamps(self) -> None:
        """workqueue_set_max_active() out of range is clamped with the kernel's message."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("clampme", 4)
            workqueue_set_max_active(wq, 0)
            assert wq.max_active == 1
            workqueue_set_max_active(wq, 9999)
            assert wq.max_active == WQ_MAX_ACTIVE
            assert logged(
                k,
                "workqueue: max_active 9999 requested for clampme is out of range, "
                "clamping between 1 and 2048",
            )
            with pytest.raises(TypeError):
                workqueue_set_max_active(wq, 2.0)  # type: ignore[arg-type]
            await destroy_workqueue(wq)

    async def test_ordered_runs_in_queue_order(self) -> None:
        """WQ-11: an ordered wq (one pwq) runs items from CPUs 1, 0, 1 one by one, in order."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            wq = alloc_ordered_workqueue("ord%d", 0, 11)
            assert wq is not None
            assert wq.name == "ord11"
            assert wq.flags & WQ_UNBOUND
            assert wq.max_active == 1
            assert wq.pwq_for(0) is wq.pwq_for(1)
            queue_work_on(1, wq, async_work(tr, "A", ms=1))
            queue_work_on(0, wq, plain_work(tr, "B"))
            queue_work_on(1, wq, async_work(tr, "C", ms=1))
            queue_work(wq, async_work(tr, "D"))
            await flush_workqueue(wq)
            assert tr.events == ["s:A", "e:A", "s:B", "e:B", "s:C", "e:C", "s:D", "e:D"]
            await destroy_workqueue(wq)

    async def test_ordered_refuses_set_max_active(self) -> None:
        """WQ-11: workqueue_set_max_active() on an ordered wq WARNs and changes nothing."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = alloc_ordered_workqueue("ordm", 0)
            assert wq is not None
            workqueue_set_max_active(wq, 8)
            assert wq.max_active == 1
            assert warnings(k) == 1
            workqueue_set_max_active(system_bh_wq, 8)
            assert warnings(k) == 2
            await destroy_workqueue(wq)


# --- allocation -----------------------------------------------------------------------------


class TestAllocWorkqueue:
    async def test_default_max_active(self) -> None:
        """WQ-14: max_active 0 means WQ_DFL_ACTIVE (1024)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("x")
            assert wq.max_active == WQ_DFL_ACTIVE == 1024
            assert wq.name == "x"
            assert wq.flags == WQ_PERCPU
            assert not logged(k, "max_active")
            await destroy_workqueue(wq)

    async def test_max_active_clamped(self) -> None:
        """WQ-15: max_active 5000 is clamped to 2048 with the kernel's message; -1 to 1."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("x", 5000)
            assert wq.max_active == WQ_MAX_ACTIVE == 2048
            assert logged(
                k,
                "workqueue: max_active 5000 requested for x is out of range, "
                "clamping between 1 and 2048",
            )
            low = percpu_wq("y", -1)
            assert low.max_active == 1
            assert logged(k, "workqueue: max_active -1 requested for y is out of range")
            await destroy_workqueue(wq)
            await destroy_workqueue(low)

    async def test_bh_misuse_returns_none_with_warn(self) -> None:
        """WQ-16: WQ_BH with a max_active, or with WQ_UNBOUND, WARNs once and returns None."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert alloc_workqueue("x", WQ_BH, 4) is None
            assert warnings(k) == 1
            assert alloc_workqueue("x2", WQ_BH, 1) is None
            assert warnings(k) == 1  # WARN_ON_ONCE
            assert alloc_workqueue("y", WQ_BH | WQ_UNBOUND, 0) is None
            assert warnings(k) == 2  # the other WARN_ON_ONCE
            assert alloc_workqueue("y2", WQ_BH | WQ_FREEZABLE, 0) is None
            assert warnings(k) == 2
            ok = alloc_workqueue("z", WQ_BH | WQ_HIGHPRI, 0)
            assert ok is not None
            assert ok.max_active == 0
            await destroy_workqueue(ok)

    async def test_long_name_truncated_with_one_warning(self) -> None:
        """WQ-17: a 40-character name is cut to 31 with the kernel's warning, printed once."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            long = "n" * 30 + "0123456789"
            wq = percpu_wq(long)
            assert wq.name == long[:31]
            assert len(wq.name) == 31
            assert (
                logged(k, f"workqueue: name exceeds WQ_NAME_LEN. Truncating to: {long[:31]}") == 1
            )
            other = percpu_wq("m" * 40)
            assert other.name == "m" * 31
            assert logged(k, "name exceeds WQ_NAME_LEN") == 1
            ok = percpu_wq("k" * 31)
            assert ok.name == "k" * 31
            for q in (wq, other, ok):
                await destroy_workqueue(q)

    async def test_name_is_printf_formatted(self) -> None:
        """alloc_workqueue formats the name from fmt and args."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = alloc_workqueue("drv%d-%s", WQ_UNBOUND, 0, 3, "rx")
            assert wq is not None
            assert wq.name == "drv3-rx"
            await destroy_workqueue(wq)

    async def test_percpu_and_unbound_drops_percpu(self) -> None:
        """WQ_PERCPU together with WQ_UNBOUND keeps WQ_UNBOUND, with the kernel's message."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = alloc_workqueue("both", WQ_PERCPU | WQ_UNBOUND, 0)
            assert wq is not None
            assert wq.flags & WQ_UNBOUND
            assert not wq.flags & WQ_PERCPU
            assert logged(
                k, "workqueue: both uses both WQ_PERCPU and WQ_UNBOUND. Dropped WQ_PERCPU"
            )
            await destroy_workqueue(wq)

    async def test_bad_arguments(self) -> None:
        """Non-int flags or max_active are TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError):
                alloc_workqueue("x", "0", 0)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                alloc_workqueue("x", 0, 1.5)  # type: ignore[arg-type]

    async def test_legacy_helpers(self) -> None:
        """The legacy create_*workqueue helpers make the kernel's kinds of workqueue."""
        async with Kernel(nr_cpus=2, hz=250):
            legacy = create_workqueue("legacy")
            single = create_singlethread_workqueue("single")
            frz = create_freezable_workqueue("frz")
            assert legacy is not None
            assert single is not None
            assert frz is not None
            assert legacy.max_active == 1
            assert not legacy.flags & WQ_UNBOUND
            assert legacy.flags & WQ_MEM_RECLAIM
            assert single.flags & WQ_UNBOUND
            assert single.flags & WQ_MEM_RECLAIM
            assert single.max_active == 1
            assert single.pwq_for(0) is single.pwq_for(1)
            assert frz.flags & (WQ_FREEZABLE | WQ_UNBOUND) == WQ_FREEZABLE | WQ_UNBOUND
            assert frz.max_active == 1
            for q in (legacy, single, frz):
                await destroy_workqueue(q)


# --- pools and workers ------------------------------------------------------------------------


class TestPools:
    async def test_pool_selection(self) -> None:
        """Per-CPU wqs share per-CPU pools, unbound wqs unbound pools, BH wqs the BH pools."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            a, b = percpu_wq("a"), percpu_wq("b")
            hi = percpu_wq("hi", 0, WQ_HIGHPRI)
            u1, u2 = unbound_wq("u1"), unbound_wq("u2")
            uhi = unbound_wq("uhi", 0, WQ_HIGHPRI)
            bh = alloc_workqueue("bh", WQ_BH, 0)
            assert bh is not None
            st = wq_state(k)
            for cpu in (0, 1):
                assert a.pwq_for(cpu).pool is b.pwq_for(cpu).pool is st.cpu_pools[cpu][0]
                assert hi.pwq_for(cpu).pool is st.cpu_pools[cpu][1]
                assert bh.pwq_for(cpu).pool is st.bh_pools[cpu][0]
                assert st.cpu_pools[cpu][0].cpu == cpu
            assert a.pwq_for(0).pool is not a.pwq_for(1).pool
            assert a.pwq_for(0) is not b.pwq_for(0)  # one pwq per (wq, pool)
            assert u1.pwq_for(0).pool is u2.pwq_for(1).pool is st.unbound_pools[0]
            assert u1.pwq_for(0) is u1.pwq_for(1)
            assert uhi.pwq_for(0).pool is st.unbound_pools[1]
            for q in (a, b, hi, u1, u2, uhi, bh):
                await destroy_workqueue(q)

    async def test_worker_names(self) -> None:
        """Workers are kworker/<cpu>:<id>, kworker/<cpu>:<id>H (highpri), kworker/u<pool>:<id>."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250):
            hi = percpu_wq("hi", 0, WQ_HIGHPRI)
            ub = unbound_wq("ub")
            works = {
                "n0": (0, system_wq),
                "n1": (1, system_wq),
                "h1": (1, hi),
                "u": (0, ub),
            }
            for name, (cpu, wq) in works.items():
                queue_work_on(cpu, wq, async_work(tr, name))
            await flush_workqueue(system_wq)
            await flush_workqueue(hi)
            await flush_workqueue(ub)
            m = KWORKER.match(tr.where["n0"][0][1])
            assert m is not None
            assert (m[1], m[3]) == ("0", "")
            m = KWORKER.match(tr.where["n1"][0][1])
            assert m is not None
            assert (m[1], m[3]) == ("1", "")
            m = KWORKER.match(tr.where["h1"][0][1])
            assert m is not None
            assert (m[1], m[3]) == ("1", "H")
            assert KWORKER_UNBOUND.match(tr.where["u"][0][1])
            await destroy_workqueue(hi)
            await destroy_workqueue(ub)

    async def test_worker_context(self) -> None:
        """A work function runs in task context in a kthread on its CPU (unbound: the queuer's)."""
        seen: list[tuple[bool, bool, int, bool]] = []
        async with Kernel(nr_cpus=2, hz=250):
            ub = unbound_wq("ubctx")

            async def fn(_work: Work) -> None:
                await msleep(1)
                task = current()
                seen.append((in_task(), in_serving_softirq(), smp_processor_id(), task.is_kthread))

            w1, w2 = Work(fn), Work(fn)
            queue_work_on(1, system_wq, w1)
            await flush_work(w1)
            queue_work_on(1, ub, w2)
            await flush_work(w2)
            assert seen == [(True, False, 1, True), (True, False, 1, True)]
            await destroy_workqueue(ub)

    async def test_pool_keeps_an_idle_worker_in_reserve(self) -> None:
        """A pool that starts work keeps one idle worker in reserve."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("reserve")
            started, gate = Completion(), Completion()
            queue_work_on(1, wq, async_work(tr, "A", gate=gate, started=started))
            await wait_for_completion(started)
            pool = wq_state(k).cpu_pools[1][0]
            assert pool is not None
            assert len(pool.idle) >= 1
            assert len(pool.workers) >= 2
            complete_all(gate)
            await flush_workqueue(wq)
            await destroy_workqueue(wq)

    async def test_idle_workers_culled_after_300s(self, virtual: bool) -> None:
        """WQ-28: surplus idle workers of an idle pool are culled after 300 s, keeping two."""
        if not virtual:
            pytest.skip("waits 300 s: virtual time only")
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = unbound_wq("cull")
            for n in "ABCDE":
                queue_work(wq, async_work(tr, n, ms=4))
            await flush_workqueue(wq)
            await settle()
            assert tr.peak == 5
            pool = wq_state(k).unbound_pools[0]
            assert pool is not None
            assert len(pool.workers) >= 5
            assert len(pool.idle) == len(pool.workers)
            # interruptible sleeps: the hung-task detector ignores them; the wheel's level-4
            # granularity (4096 jiffies) lets a 300 s timer fire up to ~16 s late
            await msleep_interruptible(250_000)
            assert len(pool.workers) >= 5
            await msleep_interruptible(80_000)
            await settle()
            assert len(pool.workers) == 2
            assert len(pool.idle) == 2
            # the survivors still work
            queue_work(wq, async_work(tr, "F", ms=1))
            await flush_workqueue(wq)
            assert tr.runs["F"] == 1
            await destroy_workqueue(wq)

    async def test_per_cpu_pool_culls_too(self, virtual: bool) -> None:
        """WQ-28: a per-CPU pool grown by a CPU_INTENSIVE wq shrinks to two idle workers."""
        if not virtual:
            pytest.skip("waits 300 s: virtual time only")
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("cullpc", 0, WQ_CPU_INTENSIVE)
            for n in "ABCDE":
                queue_work_on(1, wq, async_work(tr, n, ms=4))
            await flush_workqueue(wq)
            await settle()
            pool = wq_state(k).cpu_pools[1][0]
            assert pool is not None
            assert len(pool.workers) >= 5
            await msleep_interruptible(330_000)
            await settle()
            assert len(pool.workers) == len(pool.idle) == 2
            await destroy_workqueue(wq)


# --- errors in work functions ---------------------------------------------------------------


class TestOops:
    @KINDS
    async def test_exception_is_an_oops_and_the_pool_goes_on(self, kind: str) -> None:
        """An exception in a work function is an oops of the kworker; other items still run."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = kind_wq(kind, "oopsq")

            def broken_fn(_work: Work) -> None:
                raise ValueError("broken work")

            bad = Work(broken_fn)
            good = plain_work(tr, "good")
            queue_work(wq, bad)
            queue_work(wq, good)
            assert await flush_work(bad) is True
            await flush_workqueue(wq)
            assert tr.runs["good"] == 1
            assert len(k.oopses) == 1
            oops = k.oopses[0]
            assert isinstance(oops.exception, ValueError)
            assert kworker_re(kind).match(oops.comm)
            log = k.dmesg()
            bug = [line for line in log if "BUG: unhandled exception" in line]
            assert len(bug) == 1
            assert "broken_fn" in bug[0]
            assert "ValueError: broken work" in bug[0]
            assert logged(k, "Oops: ValueError [#1]") == 1
            assert logged(k, f"Comm: {oops.comm}") >= 1
            # the work item can be used again
            assert queue_work(wq, bad)
            await flush_work(bad)
            assert len(k.oopses) == 2
            await destroy_workqueue(wq)

    async def test_exception_after_sleeping(self) -> None:
        """An async work function that raises after sleeping is an oops too."""
        async with Kernel(nr_cpus=2, hz=250) as k:

            async def late_fn(_work: Work) -> None:
                await msleep(1)
                raise RuntimeError("late")

            w = Work(late_fn)
            schedule_work(w)
            await flush_work(w)
            assert [type(o.exception) for o in k.oopses] == [RuntimeError]
            assert k.oopses[0].comm.startswith("kworker/")

    async def test_panic_on_oops(self) -> None:
        """With panic_on_oops, an exception in a work function panics the kernel."""
        k = Kernel(nr_cpus=2, hz=250, panic_on_oops=True)
        error = KeyError("fatal")

        def fatal_fn(_work: Work) -> None:
            raise error

        async def boot() -> None:
            async with k:
                schedule_work(Work(fatal_fn))
                await msleep(40)

        with pytest.raises(KernelPanic) as info:
            await boot()
        assert info.value.__cause__ is error
        assert logged(k, "Kernel panic - not syncing")
        assert len(k.oopses) == 1


# --- system workqueues ---------------------------------------------------------------------


class TestSystemWorkqueues:
    async def test_names_and_flags(self) -> None:
        """The system workqueues have the kernel's names, flags and limits."""
        async with Kernel(nr_cpus=2, hz=250):
            # 7.2: the deprecated names are workqueues of their own, named as their
            # replacements
            assert system_percpu_wq is not system_wq
            assert system_dfl_wq is not system_unbound_wq
            table = [
                (system_wq, "events", 0),
                (system_percpu_wq, "events", 0),
                (system_dfl_wq, "events_unbound", WQ_UNBOUND),
                (system_highpri_wq, "events_highpri", WQ_HIGHPRI),
                (system_long_wq, "events_long", 0),
                (system_unbound_wq, "events_unbound", WQ_UNBOUND),
                (system_freezable_wq, "events_freezable", WQ_FREEZABLE),
                (system_power_efficient_wq, "events_power_efficient", WQ_POWER_EFFICIENT),
                (
                    system_freezable_power_efficient_wq,
                    "events_freezable_pwr_efficient",
                    WQ_FREEZABLE | WQ_POWER_EFFICIENT,
                ),
                (system_bh_wq, "events_bh", WQ_BH),
                (system_bh_highpri_wq, "events_bh_highpri", WQ_BH | WQ_HIGHPRI),
            ]
            for wq, name, flags in table:
                assert wq.name == name
                assert wq.flags & flags == flags
                if not flags & WQ_UNBOUND:
                    assert not wq.flags & WQ_UNBOUND
            assert system_wq.max_active == system_percpu_wq.max_active == WQ_DFL_ACTIVE
            assert system_unbound_wq.max_active == system_dfl_wq.max_active == WQ_MAX_ACTIVE

    async def test_deprecated_system_workqueues_warn_once(self) -> None:
        """WQ-19 (7.2): queueing on system_wq prints `workqueue: work func <fn> enqueued on
        deprecated workqueue. Use system_{percpu|dfl}_wq instead.` once per boot (whichever
        deprecated queue, system_unbound_wq too), and the work still runs; its replacement
        shares its name and pool but is a workqueue of its own (its flush does not wait for
        system_wq's items); system_percpu_wq never warns."""
        line = "enqueued on deprecated workqueue. Use system_{percpu|dfl}_wq instead."
        ran: list[str] = []

        def old_fn(_w: Work) -> None:
            ran.append(current().comm)

        def dfl_fn(_w: Work) -> None:
            ran.append("dfl")

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert queue_work(system_percpu_wq, Work(lambda _w: None))
            await flush_workqueue(system_percpu_wq)
            assert logged(k, line) == 0
            assert queue_work(system_wq, Work(old_fn))
            await flush_workqueue(system_wq)
            assert queue_work(system_unbound_wq, Work(dfl_fn))
            assert queue_work(system_wq, Work(old_fn))
            await flush_workqueue(system_unbound_wq)
            await flush_workqueue(system_wq)
            assert ran[0].startswith("kworker/0:")
            assert ran.count("dfl") == 1
            assert len(ran) == 3
            warned = [x for x in k.dmesg() if line in x]
            assert len(warned) == 1
            assert "workqueue: work func old_fn enqueued on deprecated workqueue." in warned[0]
            # separate workqueues: a flush of system_percpu_wq does not wait for system_wq
            gate = Completion()

            async def blocked(_w: Work) -> None:
                await wait_for_completion(gate)

            b = Work(blocked)
            queue_work(system_wq, b)
            await settle()
            await flush_workqueue(system_percpu_wq)  # returns although b still runs
            assert work_busy(b) & WORK_BUSY_RUNNING
            complete_all(gate)
            await flush_work(b)

    async def test_schedule_work_uses_events(self) -> None:
        """WQ-18: schedule_work queues on the per-CPU `events` wq: a kworker of the local CPU."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            w = async_work(tr, "A")
            assert schedule_work(w) is True
            assert schedule_work(w) is False
            await flush_work(w)
            w1 = async_work(tr, "B")
            assert schedule_work_on(1, w1) is True
            await flush_workqueue(system_percpu_wq)
            assert k.wq_stats()["events"]["total"] == 2
            cpu, comm = tr.where["A"][0]
            m = KWORKER.match(comm)
            assert cpu == 0
            assert m is not None
            assert (m[1], m[3]) == ("0", "")
            assert tr.where["B"][0][0] == 1

    async def test_each_system_wq_runs_work(self) -> None:
        """Every system workqueue runs work: task-context ones in kworkers, BH ones in softirq."""
        ctx: dict[str, tuple[str, bool]] = {}
        async with Kernel(nr_cpus=2, hz=250):
            queues = [
                system_wq,
                system_highpri_wq,
                system_long_wq,
                system_unbound_wq,
                system_freezable_wq,
                system_power_efficient_wq,
                system_freezable_power_efficient_wq,
                system_bh_wq,
                system_bh_highpri_wq,
            ]
            works = []
            for wq in queues:

                def fn(_work: Work, name: str = wq.name) -> None:
                    ctx[name] = (current().comm, in_serving_softirq())

                w = Work(fn)
                works.append(w)
                assert queue_work(wq, w)
            for w in works:
                await flush_work(w)
            await settle()
            assert set(ctx) == {wq.name for wq in queues}
            for name, (comm, softirq) in ctx.items():
                if name.startswith("events_bh"):
                    assert softirq
                else:
                    assert comm.startswith("kworker/")
                    assert not softirq
            assert ctx["events_highpri"][0].endswith("H")
            assert KWORKER_UNBOUND.match(ctx["events_unbound"][0])

    async def test_system_wqs_are_per_kernel(self) -> None:
        """The system wq names act on the running kernel: a new kernel starts afresh."""
        for _ in range(2):
            async with Kernel(nr_cpus=2, hz=250) as k:
                w = Work(lambda _w: None)
                schedule_work(w)
                await flush_work(w)
                assert k.wq_stats()["events"]["total"] == 1

    async def test_system_wq_cannot_be_destroyed(self) -> None:
        """destroy_workqueue refuses a system workqueue, and a second destroy."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(ValueError, match="system"):
                await destroy_workqueue(system_wq)
            wq = percpu_wq("twice")
            await destroy_workqueue(wq)
            with pytest.raises(ValueError, match="already destroyed"):
                await destroy_workqueue(wq)


# --- introspection -------------------------------------------------------------------------------


def test_system_wq_names_need_a_kernel() -> None:
    """The system wq names exist before any kernel, but using one needs a running kernel."""
    assert "events" in repr(system_wq)
    with pytest.raises(NoKernelError):
        _ = system_wq.name
    with pytest.raises(NoKernelError):
        queue_work(system_wq, Work(lambda _w: None))


class TestIntrospection:
    async def test_current_work(self) -> None:
        """WQ-20: current_work() is the item in a kworker; None in tasks, kthreads and BH work."""
        seen: dict[str, Any] = {}
        async with Kernel(nr_cpus=2, hz=250):
            assert current_work() is None

            async def fn(work: Work) -> None:
                seen["kworker"] = current_work() is work
                await msleep(1)
                seen["after sleep"] = current_work() is work

            def bh_fn(_work: Work) -> None:
                seen["bh"] = current_work()

            async def thread(_data: object) -> int:
                seen["kthread"] = current_work()
                return 0

            w = Work(fn)
            schedule_work(w)
            await flush_work(w)
            b = Work(bh_fn)
            queue_work(system_bh_wq, b)
            await flush_work(b)
            t = kthread_run(thread, None, "plain")
            await settle()
            await kthread_stop(t)
            assert seen == {"kworker": True, "after sleep": True, "bh": None, "kthread": None}

    async def test_work_busy(self) -> None:
        """WQ-21: work_busy is PENDING while queued, RUNNING while executing, both, then 0."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("busy")
            started, gate = Completion(), Completion()
            seen: list[int] = []

            async def fn(work: Work) -> None:
                seen.append(work_busy(work))
                complete(started)
                await wait_for_completion(gate)

            w = Work(fn)
            assert work_busy(w) == 0
            queue_work(wq, w)
            assert work_busy(w) == WORK_BUSY_PENDING
            await wait_for_completion(started)
            assert work_busy(w) == WORK_BUSY_RUNNING
            queue_work(wq, w)
            assert work_busy(w) == WORK_BUSY_PENDING | WORK_BUSY_RUNNING
            complete_all(gate)
            await flush_work(w)
            assert work_busy(w) == 0
            assert seen == [WORK_BUSY_RUNNING, WORK_BUSY_RUNNING]
            await destroy_workqueue(wq)

    async def test_workqueue_attributes(self) -> None:
        """A Workqueue exposes name, flags and max_active."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = alloc_workqueue("attrs", WQ_UNBOUND | WQ_HIGHPRI, 7)
            assert isinstance(wq, Workqueue)
            assert (wq.name, wq.flags, wq.max_active) == ("attrs", WQ_UNBOUND | WQ_HIGHPRI, 7)
            assert "attrs" in repr(wq)
            await destroy_workqueue(wq)

    async def test_stats_count_started_and_in_flight(self) -> None:
        """The statistics count started items and those in flight."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("stats")
            started, gate = Completion(), Completion()
            queue_work(wq, async_work(Trace(), "A", gate=gate, started=started))
            await wait_for_completion(started)
            row = k.wq_stats()["stats"]
            assert (row["total"], row["infl"]) == (1, 1)
            assert row["mayday"] is None
            complete_all(gate)
            await flush_workqueue(wq)
            row = k.wq_stats()["stats"]
            assert (row["total"], row["infl"]) == (1, 0)
            await destroy_workqueue(wq)


# --- rescuer and freezer -----------------------------------------------------------------------


class TestRescuer:
    async def test_mem_reclaim_has_rescuer(self) -> None:
        """WQ-24: a WQ_MEM_RECLAIM wq has a rescuer kworker/R-<name>, stopped by destroy."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = alloc_workqueue("rcl", WQ_MEM_RECLAIM | WQ_PERCPU, 0)
            plain = percpu_wq("noreclaim")
            legacy = create_workqueue("legacy_driver")
            assert wq is not None
            assert legacy is not None
            rescuer = wq._rescuer
            assert rescuer is not None
            assert rescuer.comm == "kworker/R-rcl"
            assert rescuer.is_kthread
            assert legacy._rescuer is not None
            # comm holds TASK_COMM_LEN - 1 = 15 characters
            assert legacy._rescuer.comm == "kworker/R-legac"
            assert plain._rescuer is None
            stats = k.wq_stats()
            assert (stats["rcl"]["mayday"], stats["rcl"]["rescued"]) == (0, 0)
            assert (stats["noreclaim"]["mayday"], stats["noreclaim"]["rescued"]) == (None, None)
            w = Work(lambda _w: None)
            queue_work(wq, w)
            await flush_work(w)
            await destroy_workqueue(wq)
            assert wq._rescuer is None
            assert rescuer._exited
            await destroy_workqueue(plain)
            await destroy_workqueue(legacy)


class TestMayday:
    @KINDS
    async def test_rescuer_runs_items_when_no_worker_can_be_made(self, kind: str) -> None:
        """WQ-24: with worker creation blocked and the pool's only worker asleep in an item,
        items wait; after MAYDAY_INITIAL_TIMEOUT the pool calls the rescuers: the
        WQ_MEM_RECLAIM workqueue's item runs in kworker/R-<name> (mayday and rescued count
        it); the other workqueue's item waits until a worker can be made again."""
        tr = Trace()
        async with Kernel(nr_cpus=1, hz=250) as k:
            rcl = kind_wq(kind, "rcl", 0, WQ_MEM_RECLAIM)
            plain = kind_wq(kind, "plain")
            k.block_worker_creation()
            started, gate = Completion(), Completion()
            queue_work(plain, async_work(tr, "hog", gate=gate, started=started))
            await wait_for_completion(started)  # the pool's one worker sleeps in it
            t0 = kdefer_async.jiffies
            waiting = async_work(tr, "plain")
            rescued = async_work(tr, "rcl", ms=1)
            queue_work(plain, waiting)
            queue_work(rcl, rescued)
            with anyio.fail_after(5):  # without a rescue this would wait for ever
                assert await flush_work(rescued) is True
            assert kdefer_async.jiffies - t0 >= 2  # MAYDAY_INITIAL_TIMEOUT at HZ=250
            assert tr.where["rcl"][0][1] == "kworker/R-rcl"
            assert tr.runs["plain"] == 0
            stats = k.wq_stats()
            assert stats["rcl"]["mayday"] >= 1
            assert stats["rcl"]["rescued"] == 1
            assert stats["plain"]["mayday"] is None
            k.block_worker_creation(False)  # the pool makes the worker it needs
            assert await flush_work(waiting) is True
            assert tr.runs["plain"] == 1
            assert tr.where["plain"][0][1] != tr.where["hog"][0][1]
            complete_all(gate)
            await flush_workqueue(plain)
            await destroy_workqueue(rcl)
            await destroy_workqueue(plain)

    async def test_rescuer_oops_and_requeue(self) -> None:
        """WQ-24: in the rescuer, an item that raises is an oops of kworker/R-<name> and the
        rescuer goes on; an item that queues itself again runs again, after itself."""
        runs: list[str] = []

        def broken(_w: Work) -> None:
            raise ValueError("rescued but broken")

        async def again(w: Work) -> None:
            runs.append(current().comm)
            if len(runs) == 1:
                assert queue_work(rcl, w)
            await msleep(1)

        async with Kernel(nr_cpus=1, hz=250) as k:
            rcl = percpu_wq("rcl", 0, WQ_MEM_RECLAIM)
            plain = percpu_wq("plain")
            k.block_worker_creation()
            started, gate = Completion(), Completion()
            queue_work(plain, async_work(Trace(), "hog", gate=gate, started=started))
            await wait_for_completion(started)
            bad, good = Work(broken), Work(again)
            queue_work(rcl, bad)
            queue_work(rcl, good)
            with anyio.fail_after(5):
                await flush_work(bad)
                while len(runs) < 2 or work_busy(good):
                    await flush_work(good)
            assert [o.comm for o in k.oopses] == ["kworker/R-rcl"]
            assert runs == ["kworker/R-rcl", "kworker/R-rcl"]
            assert k.wq_stats()["rcl"]["rescued"] == 3
            k.block_worker_creation(False)
            complete_all(gate)
            await flush_workqueue(plain)

    async def test_block_worker_creation_checks_its_argument(self) -> None:
        """block_worker_creation takes a bool."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(TypeError):
                k.block_worker_creation("yes")  # type: ignore[arg-type]


class TestFreezer:
    @KINDS
    async def test_freezable_wq_holds_new_items_until_thaw(self, kind: str) -> None:
        """WQ-25: a freeze lets the running item finish and starts no new one until thaw."""
        tr = Trace()
        frozen_at: list[int] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            frz = kind_wq(kind, "frz", 0, WQ_FREEZABLE)
            normal = percpu_wq("normal")
            started, gate = Completion(), Completion()
            queue_work(frz, async_work(tr, "running", gate=gate, started=started))
            await wait_for_completion(started)

            async def freezer(_data: object) -> int:
                await k.freeze()
                frozen_at.append(tr.events.count("e:running"))
                return 0

            task = kthread_run(freezer, None, "freezer")
            await settle()
            b = async_work(tr, "new")
            assert queue_work(frz, b)
            s = async_work(tr, "sys")
            assert queue_work(system_freezable_wq, s)
            n = async_work(tr, "normal")
            queue_work(normal, n)
            await flush_work(n)
            assert frozen_at == []  # still waiting for the running item
            complete_all(gate)
            assert await kthread_stop(task) == 0
            assert frozen_at == [1]
            await settle()
            assert tr.runs["new"] == tr.runs["sys"] == 0
            assert work_busy(b) == work_busy(s) == WORK_BUSY_PENDING
            assert workqueue_congested(0, frz)
            await k.thaw()
            await flush_workqueue(frz)
            await flush_workqueue(system_freezable_wq)
            assert tr.runs == Counter({"running": 1, "new": 1, "sys": 1, "normal": 1})
            await destroy_workqueue(frz)
            await destroy_workqueue(normal)
        assert logged(k, "Freezing remaining freezable tasks completed")

    async def test_wq_allocated_while_frozen_is_frozen(self) -> None:
        """WQ-25: a freezable wq allocated during a freeze is frozen too."""
        tr = Trace()
        async with Kernel(nr_cpus=2, hz=250) as k:
            await k.freeze()
            frz = alloc_workqueue("late", WQ_FREEZABLE | WQ_UNBOUND, 0)
            assert frz is not None
            w = async_work(tr, "A")
            queue_work(frz, w)
            await settle()
            assert tr.runs["A"] == 0
            await k.thaw()
            await flush_work(w)
            assert tr.runs["A"] == 1
            await destroy_workqueue(frz)


# --- BH workqueues ---------------------------------------------------------------------------------


class TestBHWorkqueue:
    async def test_bh_items_run_in_softirq_in_order(self) -> None:
        """WQ-26: BH items queued from a task run in ksoftirqd of that CPU, in order."""
        seen: list[tuple[str, bool, int, str]] = []
        async with Kernel(nr_cpus=2, hz=250):

            def mk(name: str) -> Work:
                def fn(_work: Work) -> None:
                    seen.append((name, in_serving_softirq(), smp_processor_id(), current().comm))

                return Work(fn)

            a, b = mk("A"), mk("B")
            assert queue_work(system_bh_wq, a)
            assert queue_work(system_bh_wq, b)
            assert queue_work(system_bh_wq, b) is False
            assert work_pending(a)
            await settle()
            assert seen == [("A", True, 0, "ksoftirqd/0"), ("B", True, 0, "ksoftirqd/0")]
            assert not work_pending(a)
            assert await flush_work(a) is False

    async def test_bh_items_run_at_irq_exit_on_that_cpu(self, virtual: bool) -> None:
        """WQ-26: BH items queued in a hardirq on CPU 1 run at its irq exit, in order (on the
        real clock the softirq time budget may hand the last ones to ksoftirqd/1)."""
        seen: list[tuple[str, int]] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            works = [Work(lambda _w, n=n: seen.append((n, smp_processor_id()))) for n in "ABC"]

            def queue_all() -> None:
                for w in works:
                    queue_work(system_bh_wq, w)

            request_irq(IRQ_A, irq_calls(queue_all), 0, "bh", None)
            k.raise_irq(IRQ_A, cpu=1)
            await softirqs_done(virtual)
            assert seen == [("A", 1), ("B", 1), ("C", 1)]

    async def test_highpri_bh_runs_first(self) -> None:
        """BH work on system_bh_highpri_wq runs in HI, before normal BH work queued earlier."""
        seen: list[str] = []
        async with Kernel(nr_cpus=2, hz=250):
            local_bh_disable()
            queue_work(system_bh_wq, Work(lambda _w: seen.append("normal")))
            queue_work(system_bh_highpri_wq, Work(lambda _w: seen.append("hi")))
            assert seen == []
            local_bh_enable()
            assert seen == ["hi", "normal"]

    async def test_many_bh_items_all_run_in_order(self) -> None:
        """More BH items than one activation takes (10) all run, in queueing order."""
        seen: list[int] = []
        async with Kernel(nr_cpus=2, hz=250):
            works = [Work(lambda _w, i=i: seen.append(i)) for i in range(25)]
            local_bh_disable()
            for w in works:
                queue_work(system_bh_wq, w)
            local_bh_enable()
            await settle()
            assert seen == list(range(25))

    async def test_bh_on_other_cpu(self) -> None:
        """WQ-27: queue_work_on(1, system_bh_wq, w) from CPU 0 runs w in CPU 1's softirq."""
        seen: list[tuple[int, bool]] = []
        async with Kernel(nr_cpus=2, hz=250):
            w = Work(lambda _w: seen.append((smp_processor_id(), in_serving_softirq())))
            assert smp_processor_id() == 0
            assert queue_work_on(1, system_bh_wq, w)
            await settle()
            assert seen == [(1, True)]

    async def test_own_bh_workqueue(self) -> None:
        """An alloc_workqueue(WQ_BH) queue runs its items in softirq context too."""
        seen: list[bool] = []
        async with Kernel(nr_cpus=2, hz=250):
            bh = alloc_workqueue("mybh", WQ_BH, 0)
            assert bh is not None
            w = Work(lambda _w: seen.append(in_serving_softirq()))
            queue_work(bh, w)
            await settle()
            assert seen == [True]
            await destroy_workqueue(bh)

    async def test_async_function_on_bh_is_type_error(self) -> None:
        """WQ-26: an async def work function on a BH wq is a TypeError at queue time."""
        async with Kernel(nr_cpus=2, hz=250):

            async def sleepy_fn(_work: Work) -> None:
                await msleep(1)  # pragma: no cover - never runs

            w = Work(sleepy_fn)
            with pytest.raises(TypeError, match="BH"):
                queue_work(system_bh_wq, w)
            with pytest.raises(TypeError, match="BH"):
                queue_work_on(1, system_bh_highpri_wq, w)
            with pytest.raises(TypeError, match="BH"):
                queue_delayed_work(system_bh_wq, DelayedWork(sleepy_fn), 1)
            assert not work_pending(w)

    async def test_sleeping_in_bh_is_scheduling_while_atomic(self) -> None:
        """WQ-26: a BH work function that tries to sleep reports BUG: scheduling while atomic."""
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:

            def napper(_work: Work) -> object:
                return msleep(1)  # a plain function handing back a sleep: it tried to sleep

            queue_work(system_bh_wq, Work(napper))
            await settle()
        assert logged(k, "BUG: sleeping function called from invalid context")
        line = next(x for x in k.dmesg() if "BUG: scheduling while atomic" in x)
        assert re.search(r"BUG: scheduling while atomic: ksoftirqd/0/\d+/0x00000101$", line)

    async def test_exception_in_bh_work_panics(self) -> None:
        """An exception in BH work is one in interrupt: a panic."""
        k = Kernel(nr_cpus=2, hz=250)

        def broken_fn(_work: Work) -> None:
            raise ValueError("bh")

        async def boot() -> None:
            async with k:
                queue_work(system_bh_wq, Work(broken_fn))
                await msleep(40)

        with pytest.raises(KernelPanic):
            await boot()
        assert logged(k, "Fatal exception in interrupt")


class TestLeakedAtomic:
    @KINDS
    async def test_work_returning_with_a_spinlock_held(self, kind: str) -> None:
        """CTX-13: a work function that returns holding a spinlock is reported as
        `BUG: workqueue leaked atomic, lock or RCU: kworker/...[pid]` with preempt=0x00000001
        and workfn=<fn>; the worker's count is restored and it goes on with other items."""
        from kdefer_async import SpinLock, preempt_count, spin_lock

        lock = SpinLock()
        after: list[int] = []

        def leaky(w: Work) -> None:
            spin_lock(lock)

        def next_item(w: Work) -> None:
            after.append(preempt_count())

        async with Kernel(nr_cpus=1, hz=250) as k:
            wq = kind_wq(kind, "leak", 1)
            queue_work(wq, Work(leaky))
            queue_work(wq, Work(next_item))
            await flush_workqueue(wq)
        lines = [line.split("] ", 1)[1] for line in k.dmesg()]
        (i,) = [n for n, line in enumerate(lines) if "BUG: workqueue leaked atomic" in line]
        where = "kworker/0:" if kind == "percpu" else "kworker/u"
        assert lines[i].startswith(f"BUG: workqueue leaked atomic, lock or RCU: {where}")
        assert "preempt=0x00000001" in lines[i + 1]
        assert lines[i + 1].strip().endswith("workfn=leaky")
        assert after == [0]


# --- the worker loop itself ----------------------------------------------------------------------


def _find(exc: BaseException, target: BaseException) -> bool:
    """Whether *target* is *exc* or inside it (exception groups, causes)."""
    if exc is target:
        return True
    subs = getattr(exc, "exceptions", ())
    return any(_find(e, target) for e in subs) or (
        exc.__cause__ is not None and _find(exc.__cause__, target)
    )


class TestWorkerLoop:
    @KINDS
    async def test_a_run_of_items_lets_the_loop_in(self, kind: str) -> None:
        """Items that never sleep still let other tasks run now and then (the kernel's
        cond_resched() after each item): a task woken by the first of 1000 such items runs
        before the last one has."""
        n = 1000
        done: list[Work] = []
        seen: list[int] = []
        first = Completion()

        def fn(w: Work) -> None:
            done.append(w)
            if len(done) == 1:
                complete(first)

        async def watcher(_data: object) -> int:
            await wait_for_completion(first)
            seen.append(len(done))
            return 0

        async with Kernel(nr_cpus=1, hz=250):
            wq = kind_wq(kind, "burst", WQ_MAX_ACTIVE)
            task = kthread_run(watcher, None, "watcher")
            await settle()  # the watcher waits on `first`
            for _ in range(n):
                queue_work(wq, Work(fn))
            await flush_workqueue(wq)
            assert await kthread_stop(task) == 0
        assert len(done) == n
        assert len(seen) == 1
        assert 0 < seen[0] < n

    @KINDS
    async def test_plain_function_returning_an_awaitable(self, kind: str) -> None:
        """A plain work function that returns an awaitable (not a coroutine) has it awaited
        in the kworker, as part of the item: flush_work() returns after it finished."""
        log: list[str] = []

        class Later:
            def __await__(self) -> Any:
                yield from anyio.lowlevel.checkpoint().__await__()
                log.append(current().comm)

        def fn(_w: Work) -> Later:
            log.append("called")
            return Later()

        async with Kernel(nr_cpus=1, hz=250):
            wq = kind_wq(kind, "later")
            w = Work(fn)
            queue_work(wq, w)
            assert await flush_work(w) is True
            assert log[0] == "called"
            assert kworker_re(kind).match(log[1])

    @KINDS
    async def test_kworkers_end_with_the_kernel(self, kind: str) -> None:
        """Leaving the kernel ends every kworker, also one stuck in an item (cancelled after
        shutdown_timeout, and named): none is left running behind it."""
        never = Completion()

        async def stuck(_w: Work) -> None:
            await wait_for_completion(never)

        async with Kernel(nr_cpus=1, hz=250, shutdown_timeout=0) as k:
            wq = kind_wq(kind, "reap")
            queue_work(wq, Work(stuck))
            await settle()
            pools = [p for p in _all_pools(wq_state(k)) if p.workers]
            assert any(w.current_work is not None for p in pools for w in p.workers)
        assert all(not p.workers for p in pools)
        assert any("work stuck on reap still running in kworker/" in x for x in k.dmesg())
        try:
            import asyncio

            tasks = asyncio.all_tasks()
        except RuntimeError:  # not on asyncio
            tasks = set()
        assert not [t for t in tasks if "kworker" in t.get_name()]

    @KINDS
    async def test_a_failing_kworker_is_not_lost(
        self, kind: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """If a kworker itself fails (a bug in the model, not an oops of a work function),
        leaving the kernel raises that error: it is not lost with the task."""
        import kdefer_async._workqueue as wqmod

        boom = RuntimeError("kworker bug")

        def broken(_worker: object) -> None:
            raise boom

        async def boot() -> None:
            async with Kernel(nr_cpus=1, hz=250):
                wq = kind_wq(kind, "bug")
                monkeypatch.setattr(wqmod, "_enter_idle", broken)
                queue_work(wq, Work(lambda _w: None))
                await settle()

        with pytest.raises(BaseException) as info:
            await boot()
        assert _find(info.value, boom)


class TestExecuteInProcessContext:
    async def test_from_task_runs_now(self) -> None:
        """WQ-22: from task context fn(ew.work) is called synchronously and it returns 0."""
        calls: list[tuple[Work, str]] = []
        ew = ExecuteWork()

        def fn(w: Work) -> None:
            calls.append((w, current().comm))

        async with Kernel(nr_cpus=1, hz=250):
            assert execute_in_process_context(fn, ew) == 0
            assert calls == [(ew.work, "init")]

    async def test_from_hardirq_or_bh_disabled_runs_in_a_kworker(self) -> None:
        """WQ-22: from a hardirq, or with bottom halves disabled, it returns 1 and fn runs
        later in a kworker (async def allowed there); in process context an async def fn
        is a TypeError."""
        comms: list[str] = []
        rets: list[int] = []
        ew_irq, ew_bh = ExecuteWork(), ExecuteWork()

        async def fn(_w: Work) -> None:
            await msleep(1)
            comms.append(current().comm)

        def handler(_irq: int, _dev: object) -> int:
            rets.append(execute_in_process_context(fn, ew_irq))
            assert comms == []
            return IRQ_HANDLED

        async with Kernel(nr_cpus=1, hz=250) as k:
            request_irq(IRQ_A, handler, 0, "eipc", None)
            k.raise_irq(IRQ_A)
            local_bh_disable()
            rets.append(execute_in_process_context(fn, ew_bh))
            local_bh_enable()
            assert rets == [1, 1]
            await flush_work(ew_irq.work)
            await flush_work(ew_bh.work)
            assert len(comms) == 2
            assert all(KWORKER.match(c) for c in comms)
            with pytest.raises(TypeError, match="cannot await"):
                execute_in_process_context(fn, ExecuteWork())
            with pytest.raises(TypeError):
                execute_in_process_context(fn, Work())  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                execute_in_process_context(42, ExecuteWork())  # type: ignore[arg-type]


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly *message*."""
    return "^" + re.escape(message) + "$"


def noop(_work: Work) -> None:
    pass


def no_args() -> None:
    pass


class TestArguments:
    """Bad arguments are a TypeError or ValueError with the wording of _check.py, raised before
    anything changes: no item pending, no workqueue made, nothing logged."""

    async def test_work_initialisers(self) -> None:
        """Work, INIT_WORK and DECLARE_WORK check the item and the function `func(work)`."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                TypeError,
                match=exactly(
                    "Work() expects a function callable as func(work) for 'func', got int"
                ),
            ):
                Work(42)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "DECLARE_WORK() expects a function callable as func(work) for 'func', "
                    "got NoneType"
                ),
            ):
                DECLARE_WORK(None)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "INIT_WORK() expects a function callable as func(work) for 'func', but "
                    "no_args() cannot be called with 1 positional argument"
                ),
            ):
                INIT_WORK(Work(), no_args)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=exactly("INIT_WORK() expects a Work for 'work', got NoneType")
            ):
                INIT_WORK(None, noop)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "INIT_WORK() expects a Work for 'work', got DelayedWork (use the "
                    "*_delayed_work API for a DelayedWork, or pass dwork.work)"
                ),
            ):
                INIT_WORK(DelayedWork(noop), noop)  # type: ignore[arg-type]
            w = Work(noop)
            with pytest.raises(TypeError):
                INIT_WORK(w, None)  # type: ignore[arg-type]
            assert w.func is noop  # a rejected INIT_WORK leaves the item as it was

    async def test_introspection(self) -> None:
        """work_pending, work_busy and delayed_work_pending take only their own types."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                TypeError, match=exactly("work_pending() expects a Work for 'work', got NoneType")
            ):
                work_pending(None)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=exactly("work_busy() expects a Work for 'work', got str")
            ):
                work_busy("work")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly("delayed_work_pending() expects a DelayedWork for 'dwork', got Work"),
            ):
                delayed_work_pending(Work(noop))  # type: ignore[arg-type]
            assert work_pending(Work()) is False  # introspection of an idle item is fine

    async def test_alloc_workqueue(self) -> None:
        """alloc_workqueue checks the name format, the flags and max_active first: nothing is
        made and nothing logged; in-range max_active values are still clamped as the kernel does."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            before = (set(k.wq_stats()), len(k.dmesg()))
            cases: list[tuple[type[Exception], str, tuple[Any, ...]]] = [
                (
                    TypeError,
                    "alloc_workqueue() expects a str for 'fmt', got NoneType",
                    (None, 0, 0),
                ),
                (TypeError, "alloc_workqueue() expects an int for 'flags', got str", ("q", "0", 0)),
                (
                    TypeError,
                    "alloc_workqueue() expects an int for 'flags', got bool",
                    ("q", True, 0),
                ),
                (
                    ValueError,
                    "alloc_workqueue() expects WQ_* flags (an int from 0 to 2**32-1) for 'flags', got -1",
                    ("q", -1, 0),
                ),
                (
                    TypeError,
                    "alloc_workqueue() expects an int for 'max_active', got float",
                    ("q", 0, 1.0),
                ),
                (
                    ValueError,
                    "alloc_workqueue() expects an int from -2147483648 to 2147483647 for "
                    "'max_active', got 2147483648",
                    ("q", 0, 1 << 31),
                ),
                (
                    TypeError,
                    "alloc_workqueue(): the arguments do not match the name format: not enough "
                    "arguments for format string 'q%d'",
                    ("q%d", 0, 0),
                ),
            ]
            for exc, message, args in cases:
                with pytest.raises(exc, match=exactly(message)):
                    alloc_workqueue(*args)
            assert (set(k.wq_stats()), len(k.dmesg())) == before
            wq = alloc_workqueue("clamped", 0, -7)  # an int the kernel takes and clamps
            assert wq is not None
            assert wq.max_active == 1
            assert logged(k, "max_active -7 requested for clamped is out of range") == 1

    async def test_ordered_and_legacy_workqueues(self) -> None:
        """alloc_ordered_workqueue and the create_*workqueue() names check their own arguments."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            before = set(k.wq_stats())
            with pytest.raises(
                TypeError,
                match=exactly("alloc_ordered_workqueue() expects a str for 'fmt', got NoneType"),
            ):
                alloc_ordered_workqueue(None, 0)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly("alloc_ordered_workqueue() expects an int for 'flags', got bool"),
            ):
                alloc_ordered_workqueue("o", False)
            for create in (
                create_workqueue,
                create_freezable_workqueue,
                create_singlethread_workqueue,
            ):
                with pytest.raises(
                    TypeError,
                    match=exactly(f"{create.__name__}() expects a str for 'name', got NoneType"),
                ):
                    create(None)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=exactly("create_workqueue() expects a str for 'name', got bytes")
            ):
                create_workqueue(b"legacy")  # type: ignore[arg-type]
            assert set(k.wq_stats()) == before

    async def test_wq_bh_refused_before_the_name_warning(self) -> None:
        """A WQ_BH workqueue with other flags is refused (WARN, None) before it is named: the
        name-too-long warning is not printed for it."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert alloc_workqueue("b" * 40, WQ_BH | WQ_UNBOUND, 0) is None
            assert warnings(k) == 1
            assert logged(k, "name exceeds WQ_NAME_LEN") == 0

    async def test_queue_work(self) -> None:
        """queue_work and schedule_work name themselves, and a rejected call queues nothing."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("qargs")
            w = Work(noop)
            with pytest.raises(
                TypeError, match=exactly("queue_work() expects a Workqueue for 'wq', got NoneType")
            ):
                queue_work(None, w)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=exactly("queue_work() expects a Work for 'work', got NoneType")
            ):
                queue_work(wq, None)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "queue_work() expects a Work initialised by INIT_WORK for 'work', got <Work None>"
                ),
            ):
                queue_work(wq, Work())
            with pytest.raises(
                TypeError, match=exactly("schedule_work() expects a Work for 'work', got int")
            ):
                schedule_work(7)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError, match=r"^schedule_work\(\) expects a Work initialised by INIT_WORK"
            ):
                schedule_work(Work())
            assert not work_pending(w)
            assert k.wq_stats()["qargs"]["total"] == 0
            await destroy_workqueue(wq)

    async def test_queue_work_on_cpu(self) -> None:
        """The CPU of queue_work_on and schedule_work_on is an int: one of the kernel's CPUs or
        WORK_CPU_UNBOUND; a rejected call does not even make the system workqueue."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            w = Work(noop)
            with pytest.raises(
                TypeError, match=exactly("queue_work_on() expects an int for 'cpu', got bool")
            ):
                queue_work_on(True, system_highpri_wq, w)
            with pytest.raises(
                ValueError,
                match=exactly(
                    "queue_work_on() expects a CPU number from 0 to 1 or WORK_CPU_UNBOUND for 'cpu', got -1"
                ),
            ):
                queue_work_on(-1, system_highpri_wq, w)
            with pytest.raises(
                TypeError, match=exactly("queue_work_on() expects a Work for 'work', got NoneType")
            ):
                queue_work_on(0, system_highpri_wq, None)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "schedule_work_on() expects a CPU number from 0 to 1 or WORK_CPU_UNBOUND for 'cpu', got 2"
                ),
            ):
                schedule_work_on(2, w)
            assert not work_pending(w)
            assert "events_highpri" not in k.wq_stats()
            assert queue_work_on(WORK_CPU_UNBOUND, system_highpri_wq, w)
            await flush_work(w)

    async def test_bh_workqueue_refuses_async_items(self) -> None:
        """An `async def` item on a BH workqueue is a TypeError naming the function called."""
        async with Kernel(nr_cpus=2, hz=250):

            async def sleeper(_w: Work) -> None:
                await msleep(1)

            w = Work(sleeper)
            with pytest.raises(
                TypeError,
                match=exactly(
                    "queue_work_on(): events_bh is a BH workqueue: its items run in softirq "
                    "context and must be plain functions, but sleeper is `async def` (use a "
                    "normal workqueue for work that sleeps)"
                ),
            ):
                queue_work_on(0, system_bh_wq, w)
            assert not work_pending(w)

    async def test_enable_and_queue_work(self) -> None:
        """enable_and_queue_work checks both arguments before it lowers the disable depth."""
        async with Kernel(nr_cpus=2, hz=250):
            w = Work(noop)
            disable_work(w)
            with pytest.raises(
                TypeError,
                match=exactly("enable_and_queue_work() expects a Workqueue for 'wq', got str"),
            ):
                enable_and_queue_work("events", w)  # type: ignore[arg-type]
            assert queue_work(system_percpu_wq, w) is False  # still disabled
            assert enable_and_queue_work(system_percpu_wq, w) is True
            await flush_work(w)

    async def test_execute_in_process_context(self) -> None:
        """execute_in_process_context checks `fn(work)` and the ExecuteWork before calling."""
        calls: list[object] = []
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                TypeError,
                match=exactly(
                    "execute_in_process_context() expects a function callable as fn(work) for "
                    "'fn', but <lambda>() cannot be called with 1 positional argument"
                ),
            ):
                execute_in_process_context(lambda: calls.append(1), ExecuteWork())  # type: ignore[arg-type,misc]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "execute_in_process_context() expects an ExecuteWork for 'ew', got Work"
                ),
            ):
                execute_in_process_context(calls.append, Work())  # type: ignore[arg-type]
            assert calls == []

    async def test_congested_and_set_max_active(self) -> None:
        """workqueue_congested and workqueue_set_max_active check their ints and the workqueue;
        a rejected change leaves max_active as it was."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("limits", 4)
            with pytest.raises(
                ValueError,
                match=exactly(
                    "workqueue_congested() expects a CPU number from 0 to 1 or WORK_CPU_UNBOUND for 'cpu', got 9"
                ),
            ):
                workqueue_congested(9, wq)
            with pytest.raises(
                TypeError,
                match=exactly("workqueue_congested() expects a Workqueue for 'wq', got NoneType"),
            ):
                workqueue_congested(0, None)  # type: ignore[arg-type]
            assert workqueue_congested(WORK_CPU_UNBOUND, wq) is False
            with pytest.raises(
                TypeError,
                match=exactly(
                    "workqueue_set_max_active() expects an int for 'max_active', got str"
                ),
            ):
                workqueue_set_max_active(wq, "8")  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "workqueue_set_max_active() expects an int from -2147483648 to 2147483647 "
                    "for 'max_active', got -2147483649"
                ),
            ):
                workqueue_set_max_active(wq, -(1 << 31) - 1)
            with pytest.raises(
                TypeError,
                match=exactly("workqueue_set_max_active() expects a Workqueue for 'wq', got int"),
            ):
                workqueue_set_max_active(8, 8)  # type: ignore[arg-type]
            assert wq.max_active == 4
            assert logged(k, "out of range") == 0
            await destroy_workqueue(wq)

    async def test_workqueue_never_allocated(self) -> None:
        """A bare Workqueue() (no alloc_workqueue) is a ValueError at the call, before the item
        is pending or its timer armed: it would fail later, in a kworker or the timer softirq."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            bare = Workqueue()
            w = Work(noop)
            dw = DelayedWork(noop)
            for call, name in [
                (lambda: queue_work(bare, w), "queue_work"),
                (lambda: queue_work_on(1, bare, w), "queue_work_on"),
                (lambda: queue_delayed_work(bare, dw, 5), "queue_delayed_work"),
                (lambda: workqueue_congested(0, bare), "workqueue_congested"),
                (lambda: enable_and_queue_work(bare, w), "enable_and_queue_work"),
            ]:
                with pytest.raises(
                    ValueError,
                    match=exactly(
                        f"{name}() expects a Workqueue made by alloc_workqueue for 'wq', "
                        "got <Workqueue '' flags=0x0 max_active=0>"
                    ),
                ):
                    call()
            assert not work_pending(w)
            assert not delayed_work_pending(dw)
            assert logged(k, "underflowed") == 0
