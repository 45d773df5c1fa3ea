"""Delayed work: a work item plus the timer that queues it (kernel-semantics §4.2, §4.3,
§6.5 DW-01..DW-15).

A delayed-work timer follows the jiffies wheel: armed at J for ``delay`` jiffies it fires on the
first tick after ``J + delay`` (J + delay + 1 for short delays), in the TIMER softirq of the CPU
it was armed on, and queues the work there. On virtual backends the tests assert exact jiffies;
on real ones only what cannot race (never early, order). The test task is ``init`` on CPU 0;
a timer is armed on CPU 1 from an interrupt handler raised there with ``k.raise_irq(irq,
cpu=1)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from helpers import logged

import kdefer_async
from kdefer_async import (
    DECLARE_DEFERRABLE_WORK,
    DECLARE_DELAYED_WORK,
    INIT_DEFERRABLE_WORK,
    INIT_DELAYED_WORK,
    IRQ_HANDLED,
    TIMER_DEFERRABLE,
    TIMER_IRQSAFE,
    WORK_BUSY_PENDING,
    WQ_PERCPU,
    WQ_UNBOUND,
    Completion,
    DelayedWork,
    Kernel,
    Work,
    Workqueue,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    complete,
    complete_all,
    current,
    delayed_work_pending,
    destroy_workqueue,
    flush_delayed_work,
    flush_work,
    flush_workqueue,
    in_serving_softirq,
    mdelay,
    mod_delayed_work,
    mod_delayed_work_on,
    mod_timer,
    msleep,
    queue_delayed_work,
    queue_delayed_work_on,
    queue_work,
    request_irq,
    schedule_delayed_work,
    schedule_delayed_work_on,
    smp_processor_id,
    system_bh_wq,
    system_percpu_wq,
    timer_pending,
    to_delayed_work,
    wait_for_completion,
    work_busy,
    work_pending,
)

pytestmark = pytest.mark.anyio

IRQ_ARM = 13
IRQ_WAKE = 14
KWORKER = re.compile(r"kworker/(\d+):\d+$")


class Runs:
    """What a delayed work function saw each time it ran: jiffies, CPU, task."""

    def __init__(self) -> None:
        self.at: list[int] = []
        self.cpu: list[int] = []
        self.comm: list[str] = []
        self.done = Completion()

    def record(self) -> None:
        self.at.append(kdefer_async.jiffies)
        self.cpu.append(smp_processor_id())
        self.comm.append(current().comm)
        complete(self.done)

    def fn(self) -> Callable[[Work], None]:
        def dwork_fn(_work: Work) -> None:
            self.record()

        return dwork_fn


def percpu_wq(name: str, max_active: int = 0) -> Workqueue:
    wq = alloc_workqueue(name, WQ_PERCPU, max_active)
    assert wq is not None
    return wq


def on_irq(fn: Callable[[], object]) -> Callable[[int, object], int]:
    """An interrupt handler that calls ``fn()``."""

    def handler(_irq: int, _dev: object) -> int:
        fn()
        return IRQ_HANDLED

    return handler


async def wait_fired(dw: DelayedWork) -> None:
    """Sleep a jiffy at a time until *dw*'s timer has fired (or was removed)."""
    for _ in range(1000):
        if not timer_pending(dw.timer):
            return
        await msleep(1)
    raise AssertionError("the delayed-work timer never fired")


class TestInit:
    async def test_declare_and_init(self) -> None:
        """Delayed work uses an IRQ-safe timer; the DEFERRABLE forms add TIMER_DEFERRABLE."""
        async with Kernel(nr_cpus=2, hz=250):

            def fn(_work: Work) -> None:
                pass

            d = DECLARE_DELAYED_WORK(fn)
            assert isinstance(d, DelayedWork)
            assert isinstance(d.work, Work)
            assert d.work.func is fn
            assert d.timer.flags & TIMER_IRQSAFE
            assert not d.timer.flags & TIMER_DEFERRABLE
            dd = DECLARE_DEFERRABLE_WORK(fn)
            assert dd.timer.flags & (TIMER_IRQSAFE | TIMER_DEFERRABLE) == (
                TIMER_IRQSAFE | TIMER_DEFERRABLE
            )
            e = DelayedWork()
            assert e.work.func is None
            INIT_DELAYED_WORK(e, fn)
            assert e.work.func is fn
            assert not e.timer.flags & TIMER_DEFERRABLE
            f = DelayedWork()
            INIT_DEFERRABLE_WORK(f, fn)
            assert f.timer.flags & TIMER_DEFERRABLE
            assert DelayedWork(fn, deferrable=True).timer.flags & TIMER_DEFERRABLE
            assert not timer_pending(d.timer)
            assert not delayed_work_pending(d)
            with pytest.raises(TypeError):
                INIT_DELAYED_WORK(Work(), fn)  # type: ignore[arg-type]

    async def test_to_delayed_work(self) -> None:
        """to_delayed_work(dw.work) is dw, also inside the work function; else an error."""
        seen: list[DelayedWork] = []
        async with Kernel(nr_cpus=2, hz=250):
            dw = DelayedWork(lambda work: seen.append(to_delayed_work(work)))
            assert to_delayed_work(dw.work) is dw
            with pytest.raises(ValueError):
                to_delayed_work(Work(lambda _w: None))
            with pytest.raises(TypeError):
                to_delayed_work(dw)  # type: ignore[arg-type]
            queue_delayed_work(system_bh_wq, dw, 0)
            await flush_work(dw.work)
            assert seen == [dw]


class TestBadInput:
    async def test_bad_arguments(self) -> None:
        """Bad CPUs, delays, items and queues are ValueError or TypeError; nothing is armed."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("bad")
            dw = DelayedWork(lambda _w: None)
            with pytest.raises(ValueError):
                queue_delayed_work_on(2, wq, dw, 1)
            with pytest.raises(ValueError):
                queue_delayed_work_on(-1, wq, dw, 1)
            with pytest.raises(ValueError):
                queue_delayed_work(wq, dw, -1)
            with pytest.raises(ValueError):
                mod_delayed_work(wq, dw, -5)
            with pytest.raises(ValueError):
                mod_delayed_work_on(7, wq, dw, 1)
            for delay in (1.5, "3", None, True):
                with pytest.raises(TypeError):
                    queue_delayed_work(wq, dw, delay)  # type: ignore[arg-type]
                with pytest.raises(TypeError):
                    mod_delayed_work(wq, dw, delay)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                queue_delayed_work(wq, Work(lambda _w: None), 1)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                queue_delayed_work(object(), dw, 1)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="initialised by INIT_DELAYED_WORK"):
                queue_delayed_work(wq, DelayedWork(), 1)
            assert not delayed_work_pending(dw)
            assert not timer_pending(dw.timer)
            await destroy_workqueue(wq)


class TestQueueDelayedWork:
    async def test_zero_delay_queues_at_once(self, virtual: bool) -> None:
        """DW-01: delay 0 queues immediately without arming the timer; returns True."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("dw01")
            dw = DelayedWork(runs.fn())
            j = kdefer_async.jiffies
            assert queue_delayed_work(wq, dw, 0) is True
            assert not timer_pending(dw.timer)
            assert delayed_work_pending(dw)
            assert work_busy(dw.work) == WORK_BUSY_PENDING
            assert await flush_work(dw.work) is True
            assert runs.at == [j] if virtual else runs.at[0] >= j
            await destroy_workqueue(wq)

    async def test_delay_fires_on_the_tick_after(self, virtual: bool) -> None:
        """DW-02: delay 10 armed at J runs at J+11, never before, pending meanwhile."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("dw02")
            dw = DelayedWork(runs.fn())
            j = kdefer_async.jiffies
            assert queue_delayed_work(wq, dw, 10) is True
            assert timer_pending(dw.timer)
            if virtual:
                assert dw.timer.expires == j + 10
            else:
                assert j + 10 <= dw.timer.expires <= kdefer_async.jiffies + 10
            await msleep(5)
            if virtual:
                assert kdefer_async.jiffies == j + 6
            if kdefer_async.jiffies < j + 10:  # always on virtual time
                assert delayed_work_pending(dw)
                assert runs.at == []
            await wait_for_completion(runs.done)
            assert runs.at == [j + 11] if virtual else runs.at[0] >= j + 11
            assert not delayed_work_pending(dw)
            assert not timer_pending(dw.timer)
            await destroy_workqueue(wq)

    async def test_queue_while_armed_is_false(self, virtual: bool) -> None:
        """DW-03: queue_delayed_work on an armed item returns False and leaves the expiry."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("dw03")
            dw = DelayedWork(runs.fn())
            j = kdefer_async.jiffies
            assert queue_delayed_work(wq, dw, 6)
            expires = dw.timer.expires
            assert queue_delayed_work(wq, dw, 2) is False
            assert queue_delayed_work(wq, dw, 0) is False
            assert queue_delayed_work_on(1, wq, dw, 20) is False
            assert dw.timer.expires == expires
            await wait_for_completion(runs.done)
            await flush_workqueue(wq)
            assert len(runs.at) == 1
            assert runs.at == [j + 7] if virtual else runs.at[0] >= j + 7
            await destroy_workqueue(wq)

    async def test_queue_delayed_work_on_cpu(self) -> None:
        """queue_delayed_work_on(1) arms the timer on CPU 1 and runs the work there."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("on1")
            dw = DelayedWork(runs.fn())
            assert queue_delayed_work_on(1, wq, dw, 2)
            await wait_for_completion(runs.done)
            assert runs.cpu == [1]
            m = KWORKER.match(runs.comm[0])
            assert m is not None
            assert m[1] == "1"
            await destroy_workqueue(wq)

    async def test_schedule_delayed_work(self, virtual: bool) -> None:
        """schedule_delayed_work(_on) queue on the system `events` wq after the delay."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000) as k:
            dw = DelayedWork(runs.fn())
            j = kdefer_async.jiffies
            assert schedule_delayed_work(dw, 3) is True
            assert schedule_delayed_work(dw, 3) is False
            await wait_for_completion(runs.done)
            await flush_work(dw.work)
            assert schedule_delayed_work_on(1, dw, 1) is True
            await wait_for_completion(runs.done)
            await flush_work(dw.work)
            assert runs.at[0] == j + 4 if virtual else runs.at[0] >= j + 4
            assert runs.cpu == [0, 1]
            assert k.wq_stats()["events"]["total"] == 2

    async def test_delayed_bh_work_runs_in_softirq(self, virtual: bool) -> None:
        """Delayed work on a BH wq runs in softirq on the tick the timer fires."""
        seen: list[tuple[int, bool]] = []
        async with Kernel(nr_cpus=2, hz=1000):
            dw = DelayedWork(lambda _w: seen.append((kdefer_async.jiffies, in_serving_softirq())))
            j = kdefer_async.jiffies
            queue_delayed_work(system_bh_wq, dw, 3)
            await wait_fired(dw)
            await flush_work(dw.work)
            assert len(seen) == 1
            assert seen[0][1] is True
            assert seen[0][0] == j + 4 if virtual else seen[0][0] >= j + 4

    async def test_ordered_wq_runs_in_expiry_order(self, virtual: bool) -> None:
        """On an ordered wq, delayed items run in timer-expiry order, not arming order."""
        order: list[str] = []
        async with Kernel(nr_cpus=2, hz=1000):
            wq = alloc_ordered_workqueue("dword", 0)
            assert wq is not None
            late = DelayedWork(lambda _w: order.append("late"))
            early = DelayedWork(lambda _w: order.append("early"))
            # both timers on this CPU (0): one timer base runs its expired timers in expiry
            # order even when its tick comes late; the ticks of two CPUs would race on a busy
            # machine, where both timers can be overdue when the loop gets to them
            queue_delayed_work(wq, late, 20)
            queue_delayed_work_on(0, wq, early, 2)
            expires = {"late": late.timer.expires, "early": early.timer.expires}
            await wait_fired(late)
            await wait_fired(early)
            await flush_workqueue(wq)
            assert sorted(order) == ["early", "late"]
            if virtual:
                assert expires["early"] < expires["late"]
            # on the real clock jiffies run on while the test's own code runs, and a busy
            # machine may stall it between the two calls: the expiries the timers actually
            # got are what decides the order (a tie has none)
            if expires["early"] != expires["late"]:
                assert order == sorted(expires, key=expires.__getitem__)
            await destroy_workqueue(wq)


class TestModDelayedWork:
    async def test_mod_on_idle_arms(self, virtual: bool) -> None:
        """DW-04: mod_delayed_work on an idle item returns False and arms it for the delay."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("dw04")
            dw = DelayedWork(runs.fn())
            j = kdefer_async.jiffies
            assert mod_delayed_work(wq, dw, 100) is False
            assert timer_pending(dw.timer)
            assert delayed_work_pending(dw)
            assert dw.timer.expires == j + 100 if virtual else dw.timer.expires >= j + 100
            assert cancel_delayed_work(dw) is True
            assert runs.at == []
            await destroy_workqueue(wq)

    async def test_mod_shortens(self, virtual: bool) -> None:
        """DW-05: mod_delayed_work(5) on an item armed for 1000 returns True; it fires after 5.

        (1000 jiffies is 4 s: on the real clock, where only "after 5, well before 1000" can be
        checked, a busy machine stalling the loop cannot make a shortened timer look late.)"""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("dw05")
            dw = DelayedWork(runs.fn())
            assert queue_delayed_work(wq, dw, 1000)
            j = kdefer_async.jiffies
            assert mod_delayed_work(wq, dw, 5) is True
            await wait_for_completion(runs.done)
            await flush_workqueue(wq)
            assert runs.at == [j + 6] if virtual else j + 6 <= runs.at[0] < j + 1000
            assert not timer_pending(dw.timer)
            await destroy_workqueue(wq)

    async def test_mod_lengthens(self, virtual: bool) -> None:
        """mod_delayed_work also pushes a deadline later."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("longer")
            dw = DelayedWork(runs.fn())
            assert queue_delayed_work(wq, dw, 2)
            j = kdefer_async.jiffies
            assert mod_delayed_work(wq, dw, 9) is True
            await wait_for_completion(runs.done)
            assert runs.at == [j + 10] if virtual else runs.at[0] >= j + 10
            await destroy_workqueue(wq)

    async def test_mod_zero_queues_at_once(self, virtual: bool) -> None:
        """DW-06: mod_delayed_work(0) on an armed item returns True and queues it at once."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("dw06")
            dw = DelayedWork(runs.fn())
            assert queue_delayed_work(wq, dw, 1000)  # 4 s: see test_mod_shortens
            j = kdefer_async.jiffies
            assert mod_delayed_work(wq, dw, 0) is True
            assert not timer_pending(dw.timer)
            assert work_pending(dw.work)
            assert await flush_work(dw.work) is True
            assert runs.at == [j] if virtual else j <= runs.at[0] < j + 1000
            await destroy_workqueue(wq)

    async def test_mod_steals_a_queued_item_back_onto_the_timer(self, virtual: bool) -> None:
        """mod_delayed_work on an item already queued takes it off the queue and re-arms it."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("steal")
            dw = DelayedWork(runs.fn())
            assert queue_delayed_work(wq, dw, 0)
            j = kdefer_async.jiffies
            assert mod_delayed_work(wq, dw, 4) is True
            assert timer_pending(dw.timer)
            assert await flush_work(dw.work) is False  # only armed: idle for flush_work
            await wait_for_completion(runs.done)
            await flush_workqueue(wq)
            assert runs.at == [j + 5] if virtual else runs.at[0] >= j + 5
            await destroy_workqueue(wq)

    async def test_mod_while_running_queues_again(self) -> None:
        """mod_delayed_work on a running item is False; it runs again afterwards."""
        order: list[str] = []
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("modrun")
            started, gate = Completion(), Completion()

            async def fn(_work: Work) -> None:
                order.append("start")
                complete(started)
                await wait_for_completion(gate)
                order.append("end")

            dw = DelayedWork(fn)
            queue_delayed_work(wq, dw, 0)
            await wait_for_completion(started)
            assert mod_delayed_work(wq, dw, 1) is False
            complete_all(gate)
            await wait_fired(dw)
            await flush_work(dw.work)
            assert order == ["start", "end", "start", "end"]
            await destroy_workqueue(wq)

    async def test_debounce(self, virtual: bool) -> None:
        """mod_delayed_work debounce: 10 pushes, one run, the tick after the last deadline."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("debounce")
            dw = DelayedWork(runs.fn())
            results = []
            last = 0
            for _ in range(10):
                last = kdefer_async.jiffies
                results.append(mod_delayed_work(wq, dw, 40))
                if virtual:
                    await msleep(2)
                else:
                    # on the real clock the pushes come from one stretch of code: a busy
                    # machine may stall it for longer than the 40 ms window, but no tick and
                    # no kworker can run in between, so the window cannot close early
                    mdelay(2)
            assert results == [False] + [True] * 9
            assert runs.at == []
            await wait_for_completion(runs.done)
            await flush_workqueue(wq)
            assert len(runs.at) == 1
            assert runs.at == [last + 41] if virtual else runs.at[0] >= last + 41
            await destroy_workqueue(wq)


class TestWhichCPU:
    async def test_timer_fired_on_cpu1_runs_work_on_cpu1(self) -> None:
        """DW-07: delayed work whose timer fires on CPU 1 executes on CPU 1."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000) as k:
            wq = percpu_wq("dw07")
            dw = DelayedWork(runs.fn())
            armed: list[bool] = []
            request_irq(
                IRQ_ARM, on_irq(lambda: armed.append(queue_delayed_work(wq, dw, 2))), 0, "arm", None
            )
            k.raise_irq(IRQ_ARM, cpu=1)
            assert armed == [True]
            await wait_for_completion(runs.done)
            assert runs.cpu == [1]
            m = KWORKER.match(runs.comm[0])
            assert m is not None
            assert m[1] == "1"
            await destroy_workqueue(wq)

    async def test_deferrable_waits_for_idle_cpu_to_wake(self) -> None:
        """DW-08: deferrable work on an idle CPU runs only once the CPU wakes."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000) as k:
            wq = percpu_wq("dw08")
            dw = DelayedWork()
            INIT_DEFERRABLE_WORK(dw, runs.fn())
            request_irq(IRQ_ARM, on_irq(lambda: queue_delayed_work(wq, dw, 2)), 0, "arm", None)
            request_irq(IRQ_WAKE, on_irq(lambda: None), 0, "wake", None)
            k.raise_irq(IRQ_ARM, cpu=1)
            j = kdefer_async.jiffies
            await msleep(10)
            assert kdefer_async.jiffies > j + 3
            assert runs.at == []
            assert delayed_work_pending(dw)
            woke = kdefer_async.jiffies
            k.raise_irq(IRQ_WAKE, cpu=1)
            assert not timer_pending(dw.timer)
            await wait_for_completion(runs.done)
            assert runs.cpu == [1]
            assert runs.at[0] >= woke
            await destroy_workqueue(wq)


class TestFlushDelayed:
    async def test_flush_delayed_work_runs_it_now(self, virtual: bool) -> None:
        """DW-09: flush_delayed_work on an armed item runs it at once and waits; True."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=250):
            wq = percpu_wq("dw09")
            dw = DelayedWork(runs.fn())
            queue_delayed_work(wq, dw, 1000)  # 4 s: see test_mod_shortens
            j = kdefer_async.jiffies
            assert await flush_delayed_work(dw) is True
            assert runs.at == [j] if virtual else j <= runs.at[0] < j + 1000
            assert not timer_pending(dw.timer)
            assert not delayed_work_pending(dw)
            assert await flush_delayed_work(dw) is False
            await destroy_workqueue(wq)

    async def test_flush_work_on_armed_is_false(self, virtual: bool) -> None:
        """DW-10: flush_work on an armed item is False at once; the work runs later."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("dw10")
            dw = DelayedWork(runs.fn())
            j = kdefer_async.jiffies
            queue_delayed_work(wq, dw, 20)
            assert await flush_work(dw.work) is False
            assert runs.at == []
            assert timer_pending(dw.timer)
            if virtual:
                assert kdefer_async.jiffies == j
            await wait_for_completion(runs.done)
            assert runs.at == [j + 21] if virtual else runs.at[0] >= j + 21
            await destroy_workqueue(wq)


class TestCancelDelayed:
    async def test_cancel_armed(self) -> None:
        """DW-11: cancel_delayed_work on an armed item is True; the function never runs."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("dw11")
            dw = DelayedWork(runs.fn())
            queue_delayed_work(wq, dw, 2)
            assert cancel_delayed_work(dw) is True
            assert not timer_pending(dw.timer)
            assert not delayed_work_pending(dw)
            assert cancel_delayed_work(dw) is False
            await msleep(5)
            await flush_workqueue(wq)
            assert runs.at == []
            await destroy_workqueue(wq)

    async def test_cancel_after_fire_before_run(self) -> None:
        """DW-12: cancel after the timer fired but before the run is True; it never runs."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("dw12", 1)
            started, gate = Completion(), Completion()

            async def blocker(_work: Work) -> None:
                complete(started)
                await wait_for_completion(gate)

            queue_work(wq, Work(blocker))
            await wait_for_completion(started)
            dw = DelayedWork(runs.fn())
            queue_delayed_work(wq, dw, 1)
            await wait_fired(dw)
            assert delayed_work_pending(dw)  # queued, parked behind the blocker
            assert work_busy(dw.work) == WORK_BUSY_PENDING
            assert cancel_delayed_work(dw) is True
            assert not delayed_work_pending(dw)
            complete_all(gate)
            await flush_workqueue(wq)
            assert runs.at == []
            await destroy_workqueue(wq)

    async def test_cancel_while_running(self) -> None:
        """DW-13: cancel_delayed_work while the function runs is False and does not wait."""
        order: list[str] = []
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("dw13")
            started, gate = Completion(), Completion()

            async def fn(_work: Work) -> None:
                order.append("start")
                complete(started)
                await wait_for_completion(gate)
                order.append("end")

            dw = DelayedWork(fn)
            queue_delayed_work(wq, dw, 1)
            await wait_for_completion(started)
            assert cancel_delayed_work(dw) is False
            assert order == ["start"]
            complete_all(gate)
            await flush_work(dw.work)
            assert order == ["start", "end"]
            await destroy_workqueue(wq)

    async def test_cancel_sync_stops_self_rearming(self) -> None:
        """DW-14: cancel_delayed_work_sync stops a self-re-arming item after its run."""
        order: list[str] = []
        rearmed: list[bool] = []
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("dw14")
            started = Completion()
            dw = DelayedWork()

            async def fn(_work: Work) -> None:
                order.append("start")
                complete(started)
                await msleep(2)
                rearmed.append(queue_delayed_work(wq, dw, 1))
                order.append("end")

            INIT_DELAYED_WORK(dw, fn)
            queue_delayed_work(wq, dw, 1)
            await wait_for_completion(started)
            await wait_for_completion(started)  # the second, self-armed run is executing
            assert order == ["start", "end", "start"]
            assert await cancel_delayed_work_sync(dw) is False
            assert order == ["start", "end", "start", "end"]
            assert rearmed == [True, False]
            assert not delayed_work_pending(dw)
            assert not timer_pending(dw.timer)
            await msleep(5)
            await flush_workqueue(wq)
            assert order.count("start") == 2
            # not left disabled
            assert queue_delayed_work(wq, dw, 0) is True
            await flush_work(dw.work)
            assert order.count("start") == 3
            await cancel_delayed_work_sync(dw)
            await destroy_workqueue(wq)

    async def test_cancel_sync_armed(self) -> None:
        """cancel_delayed_work_sync on an armed item is True; the function never runs."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000):
            wq = percpu_wq("csync")
            dw = DelayedWork(runs.fn())
            queue_delayed_work(wq, dw, 2)
            assert await cancel_delayed_work_sync(dw) is True
            assert not timer_pending(dw.timer)
            await msleep(5)
            await flush_workqueue(wq)
            assert runs.at == []
            await destroy_workqueue(wq)


class TestDestroyWhileArmed:
    async def test_timer_after_destroy_cannot_queue(self) -> None:
        """DW-15: a timer firing after destroy_workqueue warns `cannot queue`; no run."""
        runs = Runs()
        async with Kernel(nr_cpus=2, hz=1000) as k:
            wq = alloc_workqueue("doomed", WQ_UNBOUND, 0)
            assert wq is not None

            def stale_fn(_work: Work) -> None:
                runs.record()

            dw = DelayedWork(stale_fn)
            # armed for a second, far longer than destroy_workqueue() takes even on a busy
            # machine (2 ms could expire during it); then moved to the next tick
            queue_delayed_work(wq, dw, 1000)
            await destroy_workqueue(wq)
            assert timer_pending(dw.timer)
            mod_timer(dw.timer, k.jiffies)
            await wait_fired(dw)
            assert logged(k, "workqueue: cannot queue stale_fn on wq doomed") == 1
            assert not delayed_work_pending(dw)
            assert runs.at == []


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly *message*."""
    return "^" + re.escape(message) + "$"


def noop(_work: Work) -> None:
    pass


class TestArguments:
    """Bad arguments are a TypeError or ValueError with the wording of _check.py, raised before
    anything changes: no timer armed, no item pending."""

    async def test_initialisers(self) -> None:
        """DelayedWork, INIT_DELAYED_WORK, INIT_DEFERRABLE_WORK and the DECLARE_* forms check
        the item, the function `func(work)` and the deferrable flag."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                TypeError,
                match=exactly(
                    "DelayedWork() expects a function callable as func(work) for 'func', got str"
                ),
            ):
                DelayedWork("fn")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=exactly("DelayedWork() expects a bool for 'deferrable', got int")
            ):
                DelayedWork(noop, deferrable=1)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly("INIT_DELAYED_WORK() expects a DelayedWork for 'dwork', got Work"),
            ):
                INIT_DELAYED_WORK(Work(), noop)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "DECLARE_DELAYED_WORK() expects a function callable as func(work) for "
                    "'func', got NoneType"
                ),
            ):
                DECLARE_DELAYED_WORK(None)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "DECLARE_DEFERRABLE_WORK() expects a function callable as func(work) for "
                    "'func', but <lambda>() cannot be called with 1 positional argument"
                ),
            ):
                DECLARE_DEFERRABLE_WORK(lambda: None)  # type: ignore[arg-type,misc]
            dw = DelayedWork(noop)
            with pytest.raises(TypeError, match=r"^INIT_DEFERRABLE_WORK\(\) expects a function"):
                INIT_DEFERRABLE_WORK(dw, 3)  # type: ignore[arg-type]
            assert dw.work.func is noop  # the rejected call left it as it was
            assert not dw.timer.flags & TIMER_DEFERRABLE

    async def test_to_delayed_work(self) -> None:
        """to_delayed_work takes the .work of a DelayedWork, nothing else."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                TypeError,
                match=exactly("to_delayed_work() expects a Work for 'work', got NoneType"),
            ):
                to_delayed_work(None)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "to_delayed_work() expects the .work of a DelayedWork for 'work', got <Work noop>"
                ),
            ):
                to_delayed_work(Work(noop))

    async def test_queueing_names_the_function_called(self) -> None:
        """Each queueing function names itself and the bad parameter; nothing is armed."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = percpu_wq("dargs")
            dw = DelayedWork(noop)
            cases: list[tuple[type[Exception], str, Callable[[], object]]] = [
                (
                    ValueError,
                    "queue_delayed_work() expects a number of jiffies from 0 to LONG_MAX for "
                    "'delay', got -1",
                    lambda: queue_delayed_work(wq, dw, -1),
                ),
                (
                    ValueError,
                    "mod_delayed_work() expects a number of jiffies from 0 to LONG_MAX for "
                    "'delay', got 9223372036854775808",
                    lambda: mod_delayed_work(wq, dw, 1 << 63),
                ),
                (
                    TypeError,
                    "schedule_delayed_work() expects an int for 'delay', got float",
                    lambda: schedule_delayed_work(dw, 1.0),  # type: ignore[arg-type]
                ),
                (
                    TypeError,
                    "queue_delayed_work_on() expects an int for 'cpu', got str",
                    lambda: queue_delayed_work_on("0", wq, dw, 1),  # type: ignore[arg-type]
                ),
                (
                    ValueError,
                    "mod_delayed_work_on() expects a CPU number from 0 to 1 or "
                    "WORK_CPU_UNBOUND for 'cpu', got 2",
                    lambda: mod_delayed_work_on(2, wq, dw, 1),
                ),
                (
                    ValueError,
                    "schedule_delayed_work_on() expects a CPU number from 0 to 1 or "
                    "WORK_CPU_UNBOUND for 'cpu', got 8191",
                    lambda: schedule_delayed_work_on(8191, dw, 1),
                ),
                (
                    TypeError,
                    "mod_delayed_work() expects a Workqueue for 'wq', got NoneType",
                    lambda: mod_delayed_work(None, dw, 1),  # type: ignore[arg-type]
                ),
                (
                    TypeError,
                    "queue_delayed_work() expects a DelayedWork for 'dwork', got Work "
                    "(to_delayed_work(work) is the DelayedWork of this work item)",
                    lambda: queue_delayed_work(wq, dw.work, 1),  # type: ignore[arg-type]
                ),
                (
                    ValueError,
                    "queue_delayed_work_on() expects a DelayedWork initialised by "
                    "INIT_DELAYED_WORK for 'dwork', got <DelayedWork <Work None>>",
                    lambda: queue_delayed_work_on(0, wq, DelayedWork(), 1),
                ),
            ]
            for exc, message, call in cases:
                with pytest.raises(exc, match=exactly(message)):
                    call()
            assert not delayed_work_pending(dw)
            assert not timer_pending(dw.timer)
            assert k.wq_stats()["dargs"]["total"] == 0
            await destroy_workqueue(wq)

    async def test_rejected_mod_leaves_the_timer_armed(self) -> None:
        """A rejected mod_delayed_work leaves an armed item armed, for the same expiry."""
        async with Kernel(nr_cpus=2, hz=250):
            dw = DelayedWork(noop)
            assert queue_delayed_work(system_percpu_wq, dw, 100) is True
            expires = dw.timer.expires
            with pytest.raises(
                ValueError,
                match=exactly(
                    "mod_delayed_work() expects a number of jiffies from 0 to LONG_MAX for "
                    "'delay', got -5"
                ),
            ):
                mod_delayed_work(system_percpu_wq, dw, -5)
            with pytest.raises(
                TypeError,
                match=exactly("mod_delayed_work() expects a Workqueue for 'wq', got Work"),
            ):
                mod_delayed_work(dw.work, dw, 5)  # type: ignore[arg-type]
            assert timer_pending(dw.timer)
            assert dw.timer.expires == expires
            assert cancel_delayed_work(dw) is True
