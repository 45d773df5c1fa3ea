"""Random operation sequences on a workqueue, checked against a small reference model.

Each example builds one workqueue of a drawn kind (per-CPU with max_active 2, unbound with
max_active 2, or ordered) on a 2-CPU kernel at HZ=1000, three work items and one delayed work
item whose ``async def`` functions record their start and end and sleep a drawn 0..3 jiffies,
then applies a drawn list of operations: queue, queue_on(cpu), mod_delayed(0..20), cancel,
cancel_sync, flush, flush_wq, disable, enable, advance(n jiffies). It runs on virtual time, on
trio and on asyncio.

The model tracks, per item, whether an instance is pending (set by a successful queue, cleared
by the function starting or by a successful cancel/disable) and the disable depth. Checked:

* every queue/cancel/disable/enable return value is the model's;
* every successful queueing runs exactly once unless a successful cancel removed it;
* a work item never runs concurrently with itself;
* max_active is never exceeded per pool_workqueue (per CPU for the per-CPU wq), and an ordered
  wq runs one item at a time, in queueing order;
* a flush returns only after everything it had to wait for has finished; cancel_sync only
  once the item is neither pending nor running.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

import kdefer_async
from kdefer_async import (
    WQ_PERCPU,
    WQ_UNBOUND,
    DelayedWork,
    Work,
    Workqueue,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work,
    cancel_work_sync,
    destroy_workqueue,
    disable_delayed_work,
    disable_work,
    enable_delayed_work,
    enable_work,
    flush_delayed_work,
    flush_work,
    flush_workqueue,
    mod_delayed_work,
    msleep,
    queue_work,
    queue_work_on,
    smp_processor_id,
    timer_pending,
    work_pending,
)

pytestmark = pytest.mark.anyio

NWORKS = 3
DW = NWORKS  # index of the delayed work item
ITEMS = range(NWORKS + 1)
MAX_DELAY = 20

_OP = st.one_of(
    st.tuples(st.just("queue"), st.integers(0, NWORKS - 1)),
    st.tuples(st.just("queue_on"), st.integers(0, NWORKS - 1), st.integers(0, 1)),
    st.tuples(st.just("mod_delayed"), st.integers(0, MAX_DELAY)),
    st.tuples(st.just("cancel"), st.sampled_from(ITEMS)),
    st.tuples(st.just("cancel_sync"), st.sampled_from(ITEMS)),
    st.tuples(st.just("flush"), st.sampled_from(ITEMS)),
    st.tuples(st.just("flush_wq")),
    st.tuples(st.just("disable"), st.sampled_from(ITEMS)),
    st.tuples(st.just("enable"), st.sampled_from(ITEMS)),
    st.tuples(st.just("advance"), st.integers(1, 8)),
)


class Model:
    """The reference model and the trace of executions."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pending = [False] * len(ITEMS)
        self.depth = [0] * len(ITEMS)
        self.expected = [0] * len(ITEMS)  # successful queueings minus successful cancels
        self.events: list[tuple[str, int, int]] = []  # (start|end, item, cpu)
        self.seen = 0  # events already folded into ``pending``
        self.started = [0] * len(ITEMS)
        self.ended = [0] * len(ITEMS)
        self.arrivals: list[int] = []  # queueing order of the plain works (ordered check)

    def record(self, what: str, item: int) -> None:
        self.events.append((what, item, smp_processor_id()))
        if what == "start":
            self.started[item] += 1
        else:
            self.ended[item] += 1

    def sync(self) -> None:
        """A start means the pending instance began: it is no longer pending."""
        for what, item, _cpu in self.events[self.seen :]:
            if what == "start":
                self.pending[item] = False
        self.seen = len(self.events)

    def queued(self, item: int) -> bool:
        self.pending[item] = True
        self.expected[item] += 1
        if item != DW:
            self.arrivals.append(item)
        return True

    def dropped(self, item: int) -> None:
        """The pending instance of *item* was cancelled."""
        self.pending[item] = False
        self.expected[item] -= 1
        if item != DW:
            last = len(self.arrivals) - 1 - self.arrivals[::-1].index(item)
            del self.arrivals[last]

    def running(self, item: int) -> bool:
        return self.started[item] > self.ended[item]

    def check_trace(self, max_active: int) -> None:
        running: dict[tuple[int, int], int] = {}  # (pwq key, item) -> executing instances
        per_pwq: dict[int, int] = {}
        for what, item, cpu in self.events:
            pwq = cpu if self.kind == "percpu" else 0
            if what == "start":
                assert not running.get((pwq, item)), "a work item ran concurrently with itself"
                assert all(not running.get((p, item)) for p in (0, 1))
                running[pwq, item] = 1
                per_pwq[pwq] = per_pwq.get(pwq, 0) + 1
                assert per_pwq[pwq] <= max_active, "max_active exceeded"
            else:
                # an execution ends on the CPU it started on (per-CPU pools are bound)
                assert running.get((pwq, item)) == 1
                running[pwq, item] = 0
                per_pwq[pwq] -= 1


def make_wq(kind: str) -> tuple[Workqueue, int]:
    if kind == "percpu":
        wq = alloc_workqueue("prop_percpu", WQ_PERCPU, 2)
        limit = 2
    elif kind == "unbound":
        wq = alloc_workqueue("prop_unbound", WQ_UNBOUND, 2)
        limit = 2
    else:
        wq = alloc_ordered_workqueue("prop_ordered", 0)
        limit = 1
    assert wq is not None
    return wq, limit


async def _drive(kind: str, sleeps: list[int], ops: list[tuple[Any, ...]]) -> None:
    model = Model(kind)
    wq, limit = make_wq(kind)

    def make_fn(item: int) -> Any:
        async def fn(_work: Work) -> None:
            model.record("start", item)
            await msleep(sleeps[item])
            model.record("end", item)

        return fn

    works = [Work(make_fn(i)) for i in range(NWORKS)]
    dwork = DelayedWork(make_fn(DW))

    def work_of(item: int) -> Work:
        return dwork.work if item == DW else works[item]

    def queued_now(item: int) -> bool:
        """Pending on the queue, as opposed to merely armed on the delayed-work timer."""
        return model.pending[item] and not (item == DW and timer_pending(dwork.timer))

    async def flush_check(item: int | None) -> None:
        items = list(ITEMS) if item is None else [item]
        need = {i: model.started[i] + queued_now(i) for i in items}
        if item == DW:
            need[DW] = model.started[DW] + model.pending[DW]  # flush_delayed_work queues it
        busy = {i: model.running(i) or need[i] > model.started[i] for i in items}
        if item is None:
            await flush_workqueue(wq)
        elif item == DW:
            assert await flush_delayed_work(dwork) is busy[DW]
        else:
            assert await flush_work(works[item]) is busy[item]
        for i in items:
            assert model.ended[i] >= need[i], f"flush returned before item {i} finished"

    for op in ops:
        model.sync()
        name = op[0]
        if name in ("queue", "queue_on"):
            i = op[1]
            expect = not model.pending[i] and not model.depth[i]
            got = (
                queue_work(wq, works[i]) if name == "queue" else queue_work_on(op[2], wq, works[i])
            )
            assert got is expect
            if got:
                model.queued(i)
        elif name == "mod_delayed":
            was = model.pending[DW]
            assert mod_delayed_work(wq, dwork, op[1]) is was
            if was:
                model.dropped(DW)
            if not model.depth[DW]:
                model.queued(DW)
        elif name in ("cancel", "disable"):
            i = op[1]
            was = model.pending[i]
            if name == "cancel":
                got = cancel_delayed_work(dwork) if i == DW else cancel_work(works[i])
            else:
                got = disable_delayed_work(dwork) if i == DW else disable_work(works[i])
                model.depth[i] += 1
            assert got is was
            if was:
                model.dropped(i)
        elif name == "cancel_sync":
            i = op[1]
            was = model.pending[i]
            if i == DW:
                got = await cancel_delayed_work_sync(dwork)
            else:
                got = await cancel_work_sync(works[i])
            assert got is was
            if was:
                model.dropped(i)
            model.sync()
            assert not model.running(i), "cancel_sync returned while the item ran"
            assert not work_pending(work_of(i))
        elif name == "enable":
            i = op[1]
            model.depth[i] = max(0, model.depth[i] - 1)
            got = enable_delayed_work(dwork) if i == DW else enable_work(works[i])
            assert got is (model.depth[i] == 0)
        elif name == "flush":
            await flush_check(op[1])
        elif name == "flush_wq":
            await flush_check(None)
        else:
            await msleep(op[1])
        model.sync()
        for i in ITEMS:
            assert work_pending(work_of(i)) is model.pending[i]

    # wind down: enable everything, let any armed timer fire, run everything queued
    for i in ITEMS:
        while model.depth[i]:
            model.depth[i] -= 1
            enable_delayed_work(dwork) if i == DW else enable_work(works[i])
    await msleep(MAX_DELAY + 2)
    await flush_workqueue(wq)
    model.sync()
    assert not any(model.pending)
    assert model.started == model.ended == model.expected, "a queueing was lost or doubled"
    model.check_trace(limit)
    if kind == "ordered":
        starts = [item for what, item, _cpu in model.events if what == "start" and item != DW]
        assert starts == model.arrivals, "ordered wq ran out of queueing order"
    await destroy_workqueue(wq)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
@settings(max_examples=30, deadline=None, database=None)
@given(
    kind=st.sampled_from(["percpu", "unbound", "ordered"]),
    sleeps=st.lists(st.integers(0, 3), min_size=len(ITEMS), max_size=len(ITEMS)),
    ops=st.lists(_OP, max_size=40),
)
def test_random_operations_match_reference_model(
    backend: str, kind: str, sleeps: list[int], ops: list[tuple[Any, ...]]
) -> None:
    """Random operation sequences keep every workqueue guarantee of the model."""
    kdefer_async.run(
        _drive, kind, sleeps, ops, nr_cpus=2, hz=1000, backend=backend, virtual_time=True
    )
