"""Flushing, draining, cancelling, disabling and destroying workqueues.

Covers kernel-semantics §4.11 to §4.14 and the FC behaviours of §6.6 (FC-01 to FC-24), plus the flush and cancel halves of the delayed-work
behaviours DW-09 to DW-14 of §6.5.

A work item is made "running" by an ``async def`` function that blocks on a Completion the test
releases (:class:`Blocker`); waiting happens on Completions and ``settle()``, never on the clock.
A waiter in a kthread of its own (:class:`Call`) records when the flush or cancel it runs has
returned, so a test can assert that it is still blocked after ``settle()`` and has returned after
a release; the test body (the ``init`` task) is then "another task".
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from kdefer_async import (
    DEFINE_SPINLOCK,
    WORK_BUSY_PENDING,
    WORK_BUSY_RUNNING,
    WORK_CPU_UNBOUND,
    WQ_MEM_RECLAIM,
    WQ_PERCPU,
    Completion,
    DelayedWork,
    Kernel,
    KernelBug,
    Tasklet,
    TimerList,
    Work,
    Workqueue,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work,
    cancel_work_sync,
    complete,
    complete_all,
    current,
    current_kernel,
    delayed_work_pending,
    destroy_workqueue,
    disable_delayed_work,
    disable_delayed_work_sync,
    disable_work,
    disable_work_sync,
    drain_workqueue,
    enable_and_queue_work,
    enable_delayed_work,
    enable_work,
    flush_delayed_work,
    flush_scheduled_work,
    flush_work,
    flush_workqueue,
    kthread_run,
    local_bh_disable,
    local_bh_enable,
    mod_delayed_work,
    mod_timer,
    msleep,
    queue_delayed_work,
    queue_delayed_work_on,
    queue_work,
    queue_work_on,
    schedule_work,
    smp_processor_id,
    spin_lock,
    spin_unlock,
    system_bh_wq,
    system_percpu_wq,
    system_wq,
    tasklet_schedule,
    tasklet_setup,
    timer_pending,
    wait_for_completion,
    work_busy,
    work_on_cpu,
    work_pending,
)
from kdefer_async._workqueue import wq_state
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

#: Safety net for waits that must end: never reached when the library is right.
SAFETY = 5.0


# --- helpers ---------------------------------------------------------------------------------


class Recorder:
    """A plain work function that records each run (jiffies, CPU) and completes ``done``."""

    def __init__(self, then: Callable[[Work], object] | None = None) -> None:
        self.runs = 0
        self.jiffies: list[int] = []
        self.cpus: list[int] = []
        self.done = Completion()
        self.then = then

    def run(self, work: Work) -> None:
        self.runs += 1
        self.jiffies.append(current_kernel().jiffies)
        self.cpus.append(smp_processor_id())
        if self.then is not None:
            self.then(work)
        complete(self.done)


class Blocker:
    """An ``async def`` work function that records each run and blocks until released.

    ``started`` is completed once per run as it starts; each ``release()`` lets one run end.
    ``first`` (if given) is called at the start of every run, before blocking; ``last`` at the
    end of every run, after the release.
    """

    def __init__(
        self,
        first: Callable[[Work], object] | None = None,
        last: Callable[[Work], object] | None = None,
    ) -> None:
        self.started = Completion()
        self.gate = Completion()
        self.starts = 0
        self.ends = 0
        self.first = first
        self.last = last

    async def run(self, work: Work) -> None:
        self.starts += 1
        if self.first is not None:
            self.first(work)
        complete(self.started)
        await wait_for_completion(self.gate)
        if self.last is not None:
            self.last(work)
        self.ends += 1

    def release(self) -> None:
        complete(self.gate)


class Call:
    """Run ``await fn(*args)`` in a kthread of its own; ``done``/``result`` once it returned."""

    def __init__(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self.done = False
        self.result: Any = None
        self.error: Exception | None = None
        self.finished = Completion()

        async def caller(_data: object) -> int:
            try:
                self.result = await fn(*args)
            except Exception as exc:  # handed to wait(), so the test fails with it
                self.error = exc
            self.done = True
            complete(self.finished)
            return 0

        self.task = kthread_run(caller, None, "caller")

    async def wait(self) -> Any:
        await wait_for_completion(self.finished)
        if self.error is not None:
            raise self.error
        return self.result


def new_wq(name: str, flags: int = 0, max_active: int = 0) -> Workqueue:
    wq = alloc_workqueue(name, flags, max_active)
    assert wq is not None
    return wq


def lines_with(k: Kernel, *parts: str) -> list[str]:
    """The dmesg lines containing every one of *parts*."""
    return [line for line in k.dmesg() if all(p in line for p in parts)]


def at_tick(k: Kernel, ticks: int, done: Completion) -> TimerList:
    """A timer that completes *done* on the tick *ticks* jiffies from now."""
    timer = TimerList(lambda _t: complete(done), 0)
    mod_timer(timer, k.jiffies + ticks - 1)  # the wheel fires on the first tick after expires
    return timer


# --- flush_work: FC-01 to FC-04 --------------------------------------------------------------


class TestFlushWork:
    async def test_never_queued_returns_false(self) -> None:
        """FC-01: flush_work on a never-queued item returns False at once."""
        async with Kernel(nr_cpus=2, hz=250):
            w = Work(Recorder().run)
            assert await flush_work(w) is False
            assert work_busy(w) == 0

    async def test_finished_item_returns_false(self) -> None:
        """FC-01: flush_work on an item whose last instance already ran returns False."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc01")
            rec = Recorder()
            w = Work(rec.run)
            assert queue_work(wq, w)
            assert await flush_work(w) is True
            assert rec.runs == 1
            assert await flush_work(w) is False
            assert rec.runs == 1

    async def test_queued_item_waits_until_it_returns(self) -> None:
        """FC-02: flush_work on a queued item blocks until its function returns, then True."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc02")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                assert work_pending(w)
                flush = Call(flush_work, w)
                await wait_for_completion(b.started)
                await settle()
                assert not flush.done
                assert b.ends == 0
                b.release()
                assert await flush.wait() is True
                assert b.ends == 1
            assert work_busy(w) == 0

    async def test_queued_plain_item_on_other_cpu(self) -> None:
        """FC-02: flushing an item queued for another CPU waits for it there."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc02cpu")
            rec = Recorder()
            w = Work(rec.run)
            assert queue_work_on(1, wq, w)
            with anyio.fail_after(SAFETY):
                assert await flush_work(w) is True
            assert rec.runs == 1
            assert rec.cpus == [1]

    async def test_running_and_requeued_waits_for_second_run(self) -> None:
        """FC-03: running and requeued: the flush returns only after the second run ends."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc03a")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                assert queue_work(wq, w)  # PENDING was cleared before the run
                assert work_busy(w) == WORK_BUSY_PENDING | WORK_BUSY_RUNNING
                flush = Call(flush_work, w)
                await settle()
                assert not flush.done
                b.release()  # first run ends; the requeued instance starts
                await wait_for_completion(b.started)
                await settle()
                assert b.ends == 1
                assert not flush.done
                b.release()
                assert await flush.wait() is True
                assert b.ends == 2
            assert b.starts == 2

    async def test_running_not_requeued_ignores_later_requeue(self) -> None:
        """FC-03: running, not requeued: returns when this run ends, not after a later requeue."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc03b")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                assert work_busy(w) == WORK_BUSY_RUNNING
                flush = Call(flush_work, w)
                await settle()
                assert not flush.done
                assert queue_work(wq, w)  # requeued after the flush started
                b.release()
                assert await flush.wait() is True
                assert b.ends == 1
                # the later instance is still to run (or running, blocked): not waited for
                await wait_for_completion(b.started)
                assert b.starts == 2
                assert b.ends == 1
                b.release()
                assert await flush_work(w) is True
            assert b.ends == 2

    async def test_two_flushers_of_one_item(self) -> None:
        """FC-02: two tasks flushing the same running item both return True when it ends."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc02two")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                one = Call(flush_work, w)
                await wait_for_completion(b.started)
                two = Call(flush_work, w)
                await settle()
                assert not one.done
                assert not two.done
                b.release()
                assert await one.wait() is True
                assert await two.wait() is True

    async def test_flush_bh_item(self) -> None:
        """FC-02: flush_work on an item queued to a BH workqueue waits for its softirq run."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            w = Work(rec.run)
            assert queue_work(system_bh_wq, w)
            with anyio.fail_after(SAFETY):
                assert await flush_work(w) is True
            assert rec.runs == 1
            assert await flush_work(w) is False


class TestSelfDeadlock:
    """FC-04 / FC-05: waiting for yourself hangs the kernel; here lockdep's report plus a
    KernelBug in the work function, which is an oops of that function (the kernel goes on)."""

    @pytest.mark.parametrize(
        "waiter",
        [flush_work, cancel_work_sync, disable_work_sync],
        ids=["flush_work", "cancel_work_sync", "disable_work_sync"],
    )
    async def test_wait_for_own_work(self, waiter: Callable[[Work], Awaitable[Any]]) -> None:
        """FC-04: waiting for its own item from a work function: lockdep report + KernelBug oops."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc04")
            reached: list[bool] = []

            async def selfish(work: Work) -> None:
                await waiter(work)
                reached.append(True)

            w = Work(selfish)
            assert queue_work(wq, w)
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert reached == []
            assert len(k.oopses) == 1
            assert isinstance(k.oopses[-1].exception, KernelBug)
            assert lines_with(k, "WARNING: possible recursive locking detected")
            assert lines_with(k, "(work_completion)", "selfish")
            # the kernel keeps running: more work runs
            rec = Recorder()
            assert queue_work(wq, Work(rec.run))
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert rec.runs == 1

    @pytest.mark.parametrize(
        "waiter",
        [flush_workqueue, drain_workqueue, destroy_workqueue],
        ids=["flush_workqueue", "drain_workqueue", "destroy_workqueue"],
    )
    async def test_wait_for_own_workqueue(
        self, waiter: Callable[[Workqueue], Awaitable[Any]]
    ) -> None:
        """FC-05: flush/drain/destroy of its own wq from an item: (wq_completion) report + oops."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc05")

            async def flush_mine(work: Work) -> None:
                await waiter(wq)

            assert queue_work(wq, Work(flush_mine))
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert len(k.oopses) == 1
            assert isinstance(k.oopses[-1].exception, KernelBug)
            assert lines_with(k, "WARNING: possible recursive locking detected")
            assert lines_with(k, "(wq_completion)fc05")
            rec = Recorder()
            assert queue_work(wq, Work(rec.run))
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert rec.runs == 1

    @pytest.mark.parametrize(
        "waiter",
        [flush_workqueue, drain_workqueue, destroy_workqueue],
        ids=["flush_workqueue", "drain_workqueue", "destroy_workqueue"],
    )
    async def test_reporting_item_that_hogs_the_cpu_leaves_the_pool_working(
        self, waiter: Callable[[Workqueue], Awaitable[Any]]
    ) -> None:
        """FC-05 on a slow machine: printing lockdep's report and the oops can take the item
        past the CPU-hog threshold (10 ms of wall time), found only as it returns. A 1 us
        threshold makes that happen every time: the hog is counted and the pool, whose one
        worker ran it, still runs the next item."""
        async with Kernel(nr_cpus=2, hz=250, wq_cpu_intensive_thresh_us=1) as k:
            wq = new_wq("fc05h")

            async def flush_mine(work: Work) -> None:
                await waiter(wq)

            assert queue_work(wq, Work(flush_mine))
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert len(k.oopses) == 1
            assert k.wq_stats()["fc05h"]["CPUitsv"] == 1
            rec = Recorder()
            assert queue_work(wq, Work(rec.run))
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert rec.runs == 1

    async def test_flush_other_workqueue_from_work_is_fine(self) -> None:
        """FC-05: an item flushing a different workqueue is no self-deadlock: it just waits."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq, other = new_wq("fc05a"), new_wq("fc05b")
            rec = Recorder()
            assert queue_work(other, Work(rec.run))
            flushed: list[int] = []

            async def flush_other(work: Work) -> None:
                await flush_workqueue(other)
                flushed.append(rec.runs)

            assert queue_work(wq, Work(flush_other))
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert flushed == [1]
            assert k.oopses == []


# --- flush_workqueue, drain, flush_scheduled_work: FC-06 to FC-10 ----------------------------


class TestFlushWorkqueue:
    async def test_empty_workqueue_returns(self) -> None:
        """flush_workqueue of an idle workqueue returns at once."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("idle")
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
                await drain_workqueue(wq)

    async def test_waits_for_items_on_every_cpu_and_inactive_ones(self) -> None:
        """flush_workqueue waits for every item queued before it: all CPUs, parked ones too."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fcall", max_active=1)
            b0, b1, parked = Blocker(), Blocker(), Recorder()
            with anyio.fail_after(SAFETY):
                assert queue_work_on(0, wq, Work(b0.run))
                assert queue_work_on(0, wq, Work(parked.run))  # beyond max_active
                assert queue_work_on(1, wq, Work(b1.run))
                flush = Call(flush_workqueue, wq)
                await wait_for_completion(b0.started)
                await wait_for_completion(b1.started)
                await settle()
                assert parked.runs == 0
                b1.release()
                await settle()
                assert not flush.done
                b0.release()
                await flush.wait()
                assert parked.runs == 1

    async def test_does_not_wait_for_chained_work(self) -> None:
        """FC-06: A queued; A queues B during the flush: flush returns after A, not B."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc06")
            b_item = Blocker()
            wb = Work(b_item.run)
            chained: list[bool] = []
            a_item = Blocker(last=lambda _w: chained.append(queue_work(wq, wb)))
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, Work(a_item.run))
                await wait_for_completion(a_item.started)
                flush = Call(flush_workqueue, wq)
                await settle()
                assert not flush.done
                a_item.release()
                await flush.wait()
                assert a_item.ends == 1
                assert chained == [True]
                assert b_item.ends == 0
                assert work_busy(wb) != 0
                b_item.release()
                assert await flush_work(wb) is True

    async def test_items_queued_after_the_flush_are_not_waited_for(self) -> None:
        """FC-06: an item queued by another task after flush_workqueue started is not awaited."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc06late")
            first, late = Blocker(), Blocker()
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, Work(first.run))
                flush = Call(flush_workqueue, wq)
                await wait_for_completion(first.started)
                await settle()
                assert queue_work(wq, Work(late.run))
                first.release()
                await flush.wait()
                assert late.ends == 0
                late.release()
                await flush_workqueue(wq)
                assert late.ends == 1

    async def test_drain_waits_for_chained_work(self) -> None:
        """FC-07: drain_workqueue waits for A and for what A chains (B, then C), until empty."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc07")
            c_item = Blocker()
            b_item = Recorder(then=lambda _w: queue_work(wq, Work(c_item.run)))
            a_item = Blocker(last=lambda _w: queue_work(wq, Work(b_item.run)))
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, Work(a_item.run))
                drain = Call(drain_workqueue, wq)
                await wait_for_completion(a_item.started)
                await settle()
                assert not drain.done
                a_item.release()
                await wait_for_completion(c_item.started)
                await settle()
                assert b_item.runs == 1
                assert not drain.done
                c_item.release()
                await drain.wait()
                assert c_item.ends == 1
            assert not lines_with(k, "cannot queue")

    async def test_queue_from_other_task_during_drain_is_refused(self) -> None:
        """FC-08: queueing by another task during a drain WARNs once, returns True, never runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc08")
            a_item = Blocker()
            other = Recorder()
            wc = Work(other.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, Work(a_item.run))
                drain = Call(drain_workqueue, wq)
                await wait_for_completion(a_item.started)
                await settle()
                assert queue_work(wq, wc) is True
                assert not work_pending(wc)
                assert queue_work_on(1, wq, wc) is True
                assert not work_pending(wc)
                warned = lines_with(k, "workqueue: cannot queue Recorder.run on wq fc08")
                assert len(warned) == 1  # WARN_ONCE
                a_item.release()
                await drain.wait()
                await settle()
                assert other.runs == 0
                # the drain is over: queueing works again
                assert queue_work(wq, wc)
                assert await flush_work(wc) is True
            assert other.runs == 1

    @pytest.mark.parametrize(("requeues", "warned"), [(9, False), (12, True)])
    async def test_drain_not_complete_after_10_tries(self, requeues: int, warned: bool) -> None:
        """FC-09: 10 extra flush rounds in a drain log `isn't complete after 10 tries`; 9 do not."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc09")

            def again(work: Work) -> None:
                if b.starts <= requeues:
                    assert queue_work(wq, work)  # chained: allowed during the drain

            b = Blocker(last=again)
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                drain = Call(drain_workqueue, wq)
                for _ in range(requeues + 1):
                    await wait_for_completion(b.started)
                    await settle()  # the drainer has started its next flush round
                    assert not drain.done
                    b.release()
                await drain.wait()
            assert b.ends == requeues + 1
            msg = "workqueue fc09: drain_workqueue() isn't complete after 10 tries"
            assert len(lines_with(k, msg)) == (1 if warned else 0)
            assert not lines_with(k, "isn't complete after 11 tries")

    async def test_flush_scheduled_work_warns_and_flushes_events(self) -> None:
        """FC-10: flush_scheduled_work warns about system-wide flushes, then flushes `events`."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            b = Blocker()
            with anyio.fail_after(SAFETY):
                assert schedule_work(Work(b.run))
                flush = Call(flush_scheduled_work)
                await wait_for_completion(b.started)
                await settle()
                assert not flush.done
                b.release()
                await flush.wait()
                assert b.ends == 1
            assert lines_with(
                k, "WARNING: Flushing system-wide workqueues will be prohibited in near future."
            )


# --- cancel: FC-11 to FC-15 ------------------------------------------------------------------


class TestCancel:
    async def test_cancel_work_sync_queued(self) -> None:
        """FC-11: cancel_work_sync on a queued item returns True; its function never runs."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc11")
            rec = Recorder()
            w = Work(rec.run)
            assert queue_work(wq, w)
            assert await cancel_work_sync(w) is True
            assert not work_pending(w)
            await flush_workqueue(wq)
            await settle()
            assert rec.runs == 0
            assert await flush_work(w) is False

    async def test_cancel_work_sync_parked_item(self) -> None:
        """FC-11: cancelling an item parked by max_active removes it; the rest still run."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc11p", max_active=1)
            first, parked, after = Blocker(), Recorder(), Recorder()
            wp = Work(parked.run)
            with anyio.fail_after(SAFETY):
                assert queue_work_on(0, wq, Work(first.run))
                assert queue_work_on(0, wq, wp)
                assert queue_work_on(0, wq, Work(after.run))
                await wait_for_completion(first.started)
                assert await cancel_work_sync(wp) is True
                first.release()
                await flush_workqueue(wq)
            assert parked.runs == 0
            assert after.runs == 1

    async def test_cancel_work_sync_idle(self) -> None:
        """FC-11: cancel_work_sync on an idle item returns False at once."""
        async with Kernel(nr_cpus=2, hz=250):
            w = Work(Recorder().run)
            assert await cancel_work_sync(w) is False
            assert await cancel_work_sync(w) is False

    async def test_cancel_work_sync_waits_for_running(self) -> None:
        """FC-12: cancel_work_sync while the item runs waits until it returns; returns False."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc12")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                cancel = Call(cancel_work_sync, w)
                await settle()
                assert not cancel.done
                b.release()
                assert await cancel.wait() is False
                assert b.ends == 1
            assert work_busy(w) == 0

    async def test_cancel_work_sync_self_requeueing_at_end(self) -> None:
        """FC-13: a requeue during cancel_work_sync fails; then it is idle and never runs again."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc13")
            requeued: list[bool] = []
            b = Blocker(last=lambda work: requeued.append(queue_work(wq, work)))
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                cancel = Call(cancel_work_sync, w)
                await settle()
                b.release()
                assert await cancel.wait() is False
            assert requeued == [False]
            assert work_busy(w) == 0
            await settle()
            await flush_workqueue(wq)
            assert b.starts == 1
            # a new queue works again: the cancel's disable is undone
            assert queue_work(wq, w)
            assert await cancel_work_sync(w) is True

    async def test_cancel_work_sync_self_requeueing_at_start(self) -> None:
        """FC-13: cancel_work_sync steals a self-requeued instance (True), waits the running one."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc13s")
            b = Blocker(first=lambda work: queue_work(wq, work))
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                assert work_busy(w) == WORK_BUSY_PENDING | WORK_BUSY_RUNNING
                cancel = Call(cancel_work_sync, w)
                await settle()
                assert not cancel.done
                assert not work_pending(w)
                b.release()
                assert await cancel.wait() is True
            assert work_busy(w) == 0
            await flush_workqueue(wq)
            await settle()
            assert b.starts == 1

    async def test_queue_during_cancel_sync_fails(self) -> None:
        """FC-14: while cancel_work_sync waits, queue_work by another task returns False."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc14")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                cancel = Call(cancel_work_sync, w)
                await settle()
                assert queue_work(wq, w) is False
                assert queue_work_on(1, wq, w) is False
                assert not work_pending(w)
                b.release()
                assert await cancel.wait() is False
            await settle()
            assert b.starts == 1
            assert queue_work(wq, w) is True
            b.release()
            await flush_work(w)
            assert b.starts == 2

    async def test_cancel_work_while_running(self) -> None:
        """FC-15: cancel_work while the item runs returns False at once; the run goes on."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc15")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                assert cancel_work(w) is False
                assert work_busy(w) == WORK_BUSY_RUNNING
                b.release()
                assert await flush_work(w) is True
            assert b.ends == 1

    async def test_cancel_work_queued_and_idle(self) -> None:
        """cancel_work on a queued item returns True and it never runs; on an idle one, False."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("cancel")
            rec = Recorder()
            w = Work(rec.run)
            assert cancel_work(w) is False
            assert queue_work(wq, w)
            assert cancel_work(w) is True
            assert cancel_work(w) is False
            await flush_workqueue(wq)
            await settle()
            assert rec.runs == 0

    async def test_cancel_running_and_requeued(self) -> None:
        """cancel_work on a running, requeued item drops the requeue (True), not the run."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("cancelrq")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                assert queue_work(wq, w)
                assert cancel_work(w) is True
                assert work_busy(w) == WORK_BUSY_RUNNING
                b.release()
                await flush_workqueue(wq)
            await settle()
            assert b.starts == 1

    async def test_cancel_bh_item(self) -> None:
        """cancel_work_sync of an item queued to a BH workqueue steals it before the softirq."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            w = Work(rec.run)
            assert queue_work(system_bh_wq, w)
            assert await cancel_work_sync(w) is True
            await settle()
            assert rec.runs == 0


# --- disable / enable: FC-16 to FC-20 --------------------------------------------------------


class TestDisableEnable:
    async def test_disable_refuses_queueing_until_enabled(self) -> None:
        """FC-16: disabled: queue_work is False, nothing runs; enable_work True; queueing works."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc16")
            rec = Recorder()
            w = Work(rec.run)
            assert disable_work(w) is False  # it was not pending
            assert queue_work(wq, w) is False
            assert queue_work_on(1, wq, w) is False
            assert not work_pending(w)
            await flush_workqueue(wq)
            await settle()
            assert rec.runs == 0
            assert enable_work(w) is True
            assert queue_work(wq, w) is True
            assert await flush_work(w) is True
            assert rec.runs == 1

    async def test_disable_nests(self) -> None:
        """FC-17: two disables and one enable: enable returns False, queueing still refused."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc17")
            rec = Recorder()
            w = Work(rec.run)
            disable_work(w)
            disable_work(w)
            assert enable_work(w) is False
            assert queue_work(wq, w) is False
            assert enable_work(w) is True
            assert queue_work(wq, w) is True
            await flush_work(w)
            assert rec.runs == 1

    async def test_enable_underflow_warns_once(self) -> None:
        """FC-18: enable_work at depth 0 WARNs `underflowed` once, returns True, depth stays 0."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc18")
            rec = Recorder()
            w = Work(rec.run)
            assert enable_work(w) is True
            assert enable_work(w) is True
            assert len(lines_with(k, "workqueue: work disable count underflowed")) == 1
            # still depth 0 (not -1 or -2): queueing works, and one disable needs one enable
            assert queue_work(wq, w) is True
            await flush_work(w)
            disable_work(w)
            assert queue_work(wq, w) is False
            assert enable_work(w) is True
            assert queue_work(wq, w) is True
            await flush_work(w)
            assert rec.runs == 2

    async def test_disable_overflow_warns(self) -> None:
        """Disabling past the 16-bit depth WARNs `work disable count overflowed`; depth kept."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            w = Work(Recorder().run)
            for _ in range(65535):
                disable_work(w)
            assert not lines_with(k, "overflowed")
            disable_work(w)
            assert len(lines_with(k, "workqueue: work disable count overflowed")) == 1
            for _ in range(65534):
                assert enable_work(w) is False
            assert enable_work(w) is True  # the overflowing disable did not count
            assert not lines_with(k, "underflowed")

    async def test_disable_queued_drops_it(self) -> None:
        """FC-19: disable_work on a queued item returns True and the instance is dropped."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc19")
            rec = Recorder()
            w = Work(rec.run)
            assert queue_work(wq, w)
            assert disable_work(w) is True
            assert not work_pending(w)
            await flush_workqueue(wq)
            await settle()
            assert rec.runs == 0
            assert enable_work(w) is True  # enabling does not requeue what was dropped
            await settle()
            assert rec.runs == 0
            assert not work_pending(w)

    async def test_enable_and_queue_work(self) -> None:
        """FC-20: enable_and_queue_work queues after one disable (True); after two, False."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc20")
            rec = Recorder()
            w = Work(rec.run)
            disable_work(w)
            assert enable_and_queue_work(wq, w) is True
            assert work_pending(w)
            assert await flush_work(w) is True
            assert rec.runs == 1
            disable_work(w)
            disable_work(w)
            assert enable_and_queue_work(wq, w) is False
            assert not work_pending(w)
            await flush_workqueue(wq)
            assert rec.runs == 1
            assert enable_and_queue_work(wq, w) is True
            await flush_work(w)
            assert rec.runs == 2

    async def test_disable_work_sync_waits_and_stays_disabled(self) -> None:
        """disable_work_sync while running waits for the run, returns False, stays disabled."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("dws")
            b = Blocker()
            w = Work(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, w)
                await wait_for_completion(b.started)
                call = Call(disable_work_sync, w)
                await settle()
                assert not call.done
                b.release()
                assert await call.wait() is False
            assert queue_work(wq, w) is False
            assert enable_work(w) is True
            assert queue_work(wq, w) is True
            b.release()
            await flush_work(w)
            assert b.ends == 2


# --- delayed work: DW-09 to DW-14, FC-21 -----------------------------------------------------


class TestDelayed:
    async def test_flush_delayed_work_runs_it_now(self, virtual: bool) -> None:
        """DW-09: flush_delayed_work of an armed item queues it now on its CPU and waits: True."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("dw09")
            rec = Recorder()
            dw = DelayedWork(rec.run)
            j = k.jiffies
            assert queue_delayed_work_on(1, wq, dw, 100)
            assert timer_pending(dw.timer)
            with anyio.fail_after(SAFETY):
                assert await flush_delayed_work(dw) is True
            assert rec.runs == 1
            assert rec.cpus == [1]
            assert not timer_pending(dw.timer)
            assert not delayed_work_pending(dw)
            if virtual:
                assert rec.jiffies == [j]
            assert await flush_delayed_work(dw) is False

    async def test_flush_delayed_work_idle(self) -> None:
        """DW-09: flush_delayed_work on an idle item returns False."""
        async with Kernel(nr_cpus=2, hz=250):
            assert await flush_delayed_work(DelayedWork(Recorder().run)) is False

    async def test_flush_work_on_armed_delayed_work(self, virtual: bool) -> None:
        """DW-10: flush_work on a delayed item only armed returns False; it runs at expiry."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("dw10")
            rec = Recorder()
            dw = DelayedWork(rec.run)
            j = k.jiffies
            assert queue_delayed_work(wq, dw, 2)
            assert await flush_work(dw.work) is False
            assert timer_pending(dw.timer)
            assert rec.runs == 0
            with anyio.fail_after(SAFETY):
                await wait_for_completion(rec.done)
            assert rec.runs == 1
            assert rec.jiffies[0] == j + 3 if virtual else rec.jiffies[0] >= j + 3

    async def test_cancel_delayed_work_armed(self) -> None:
        """DW-11: cancel_delayed_work on an armed item returns True; it never runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("dw11")
            rec, later = Recorder(), Recorder()
            dw = DelayedWork(rec.run)
            assert queue_delayed_work_on(0, wq, dw, 2)
            assert cancel_delayed_work(dw) is True
            assert not timer_pending(dw.timer)
            assert not delayed_work_pending(dw)
            assert cancel_delayed_work(dw) is False
            # a later item on the same CPU and wq: once it ran, the cancelled one would have
            assert queue_delayed_work_on(0, wq, DelayedWork(later.run), 3)
            with anyio.fail_after(SAFETY):
                await wait_for_completion(later.done)
            await settle()
            assert rec.runs == 0
            assert not lines_with(k, "still armed")

    async def test_cancel_delayed_work_after_timer_fired(self) -> None:
        """DW-12: cancel_delayed_work after the timer fired, before the run: True, never runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("dw12", max_active=1)
            first, rec = Blocker(), Recorder()
            dw = DelayedWork(rec.run)
            fired = Completion()
            with anyio.fail_after(SAFETY):
                assert queue_work_on(0, wq, Work(first.run))
                await wait_for_completion(first.started)
                assert queue_delayed_work_on(0, wq, dw, 1)
                at_tick(k, 3, fired)  # a tick after the delayed work's timer
                await wait_for_completion(fired)
                assert not timer_pending(dw.timer)
                assert delayed_work_pending(dw)  # queued, parked behind `first`
                assert cancel_delayed_work(dw) is True
                assert not delayed_work_pending(dw)
                first.release()
                await flush_workqueue(wq)
            await settle()
            assert rec.runs == 0

    async def test_cancel_delayed_work_while_running(self) -> None:
        """DW-13: cancel_delayed_work while the function runs returns False immediately."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("dw13")
            b = Blocker()
            dw = DelayedWork(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_delayed_work(wq, dw, 1)
                await wait_for_completion(b.started)
                assert cancel_delayed_work(dw) is False
                assert work_busy(dw.work) == WORK_BUSY_RUNNING
                b.release()
                await flush_workqueue(wq)
            assert b.ends == 1

    async def test_cancel_delayed_work_sync_self_rearming(self) -> None:
        """DW-14: cancel_delayed_work_sync of a self-re-arming item: True, waits, no more runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("dw14")
            armed: list[bool] = []
            # re-armed 25 jiffies ahead, so that on a busy real-time loop the timer is still
            # armed when the test looks
            b = Blocker(first=lambda _w: armed.append(queue_delayed_work(wq, dw, 25)))
            dw = DelayedWork(b.run)
            after = Completion()
            with anyio.fail_after(SAFETY):
                assert queue_delayed_work(wq, dw, 0)
                await wait_for_completion(b.started)
                assert armed == [True]
                assert timer_pending(dw.timer)
                cancel = Call(cancel_delayed_work_sync, dw)
                await settle()
                assert not cancel.done
                assert not timer_pending(dw.timer)
                b.release()
                assert await cancel.wait() is True
                assert b.ends == 1
                at_tick(k, 30, after)  # past the re-armed expiry
                await wait_for_completion(after)
            await settle()
            assert b.starts == 1
            assert not delayed_work_pending(dw)
            assert work_busy(dw.work) == 0

    async def test_cancel_delayed_work_sync_rearm_during_cancel_fails(self) -> None:
        """DW-14: a re-arm attempted while cancel_delayed_work_sync waits returns False."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("dw14b")
            armed: list[bool] = []
            b = Blocker(last=lambda _w: armed.append(queue_delayed_work(wq, dw, 1)))
            dw = DelayedWork(b.run)
            with anyio.fail_after(SAFETY):
                assert queue_delayed_work(wq, dw, 0)
                await wait_for_completion(b.started)
                cancel = Call(cancel_delayed_work_sync, dw)
                await settle()
                b.release()
                assert await cancel.wait() is False
            assert armed == [False]
            assert not timer_pending(dw.timer)
            assert not delayed_work_pending(dw)

    async def test_cancel_delayed_work_sync_armed(self) -> None:
        """cancel_delayed_work_sync on an armed item returns True and it never runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("cdws")
            rec = Recorder()
            dw = DelayedWork(rec.run)
            after = Completion()
            assert queue_delayed_work(wq, dw, 1)
            assert await cancel_delayed_work_sync(dw) is True
            assert not timer_pending(dw.timer)
            with anyio.fail_after(SAFETY):
                at_tick(k, 3, after)
                await wait_for_completion(after)
            await settle()
            assert rec.runs == 0
            assert await cancel_delayed_work_sync(dw) is False

    async def test_cancel_delayed_work_sync_from_itself(self) -> None:
        """DW-14: cancel_delayed_work_sync from its own function: lockdep report + KernelBug."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("dw14self")

            async def selfish(work: Work) -> None:
                await cancel_delayed_work_sync(dw)

            dw = DelayedWork(selfish)
            assert queue_delayed_work(wq, dw, 0)
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert isinstance(k.oopses[-1].exception, KernelBug)
            assert lines_with(k, "(work_completion)", "selfish")

    async def test_disable_delayed_work_sync_armed(self) -> None:
        """FC-21: disable_delayed_work_sync while armed: True; queue and mod then False, unarmed."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc21")
            rec = Recorder()
            dw = DelayedWork(rec.run)
            assert queue_delayed_work(wq, dw, 100)
            assert await disable_delayed_work_sync(dw) is True
            assert not timer_pending(dw.timer)
            assert queue_delayed_work(wq, dw, 5) is False
            assert mod_delayed_work(wq, dw, 5) is False
            assert mod_delayed_work(wq, dw, 0) is False
            assert not timer_pending(dw.timer)
            assert not delayed_work_pending(dw)
            await flush_workqueue(wq)
            assert rec.runs == 0
            assert enable_delayed_work(dw) is True
            assert queue_delayed_work(wq, dw, 0) is True
            assert await flush_delayed_work(dw) is True
            assert rec.runs == 1

    async def test_disable_delayed_work_nosync(self) -> None:
        """disable_delayed_work on an armed item returns True, stops the timer, and nests."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("ddw")
            dw = DelayedWork(Recorder().run)
            assert queue_delayed_work(wq, dw, 50)
            assert disable_delayed_work(dw) is True
            assert disable_delayed_work(dw) is False
            assert not timer_pending(dw.timer)
            assert enable_delayed_work(dw) is False
            assert queue_delayed_work(wq, dw, 1) is False
            assert enable_delayed_work(dw) is True


# --- destroy: FC-22, FC-23 -------------------------------------------------------------------


class TestDestroy:
    async def test_destroy_runs_queued_items_first(self) -> None:
        """FC-22: destroy_workqueue with 3 queued items runs all 3 before returning."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc22")
            recs = [Recorder() for _ in range(3)]
            assert queue_work_on(0, wq, Work(recs[0].run))
            assert queue_work_on(1, wq, Work(recs[1].run))
            assert queue_work_on(0, wq, Work(recs[2].run))
            with anyio.fail_after(SAFETY):
                await destroy_workqueue(wq)
            assert [r.runs for r in recs] == [1, 1, 1]

    async def test_destroy_waits_for_chained_and_running_work(self) -> None:
        """FC-22: destroy drains: it waits for a running item and the work it chains."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc22c")
            chained = Recorder()
            b = Blocker(last=lambda _w: queue_work(wq, Work(chained.run)))
            with anyio.fail_after(SAFETY):
                assert queue_work(wq, Work(b.run))
                destroy = Call(destroy_workqueue, wq)
                await wait_for_completion(b.started)
                await settle()
                assert not destroy.done
                b.release()
                await destroy.wait()
            assert chained.runs == 1

    async def test_destroy_twice_and_system_wq(self) -> None:
        """FC-22: destroying a workqueue twice, or a system workqueue, raises ValueError."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = new_wq("fc22twice")
            await destroy_workqueue(wq)
            with pytest.raises(ValueError, match="not already destroyed"):
                await destroy_workqueue(wq)
            with pytest.raises(ValueError, match="not a system one"):
                await destroy_workqueue(system_wq)
            with pytest.raises(TypeError):
                await destroy_workqueue(Work(Recorder().run))  # type: ignore[arg-type]

    async def test_queue_after_destroy_is_refused(self) -> None:
        """Queueing on a destroyed workqueue WARNs `cannot queue` and drops the item."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("gone")
            await destroy_workqueue(wq)
            rec = Recorder()
            w = Work(rec.run)
            queue_work(wq, w)
            assert not work_pending(w)
            await settle()
            assert rec.runs == 0
            assert lines_with(k, "workqueue: cannot queue Recorder.run on wq gone")

    async def test_destroy_refuses_other_queueing_until_done(self) -> None:
        """FC-22: until destroy_workqueue returns (rescuer stop too), other queueing is refused."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc22q", WQ_MEM_RECLAIM)
            b, rec = Blocker(), Recorder()
            entered: list[bool] = []

            async def destroy() -> None:
                entered.append(True)
                await destroy_workqueue(wq)

            def attempt() -> None:
                w = Work(rec.run)
                queue_work(wq, w)
                assert not work_pending(w)

            with anyio.fail_after(SAFETY):
                assert queue_work(wq, Work(b.run))
                await wait_for_completion(b.started)
                call = Call(destroy)
                while not entered:
                    await anyio.lowlevel.checkpoint()
                attempt()  # while the drain waits for b
                b.release()
                while True:  # then at every scheduling point until destroy returns
                    await anyio.lowlevel.checkpoint()
                    if call.done:
                        break
                    attempt()
                await call.wait()
            await settle()
            assert rec.runs == 0
            assert b.ends == 1
            assert len(lines_with(k, "workqueue: cannot queue Recorder.run on wq fc22q")) == 1
            assert not lines_with(k, "busy pwq")
            with pytest.raises(ValueError, match="already destroyed"):
                await destroy_workqueue(wq)

    async def test_destroy_stops_the_rescuer(self) -> None:
        """FC-22: destroying a WQ_MEM_RECLAIM workqueue stops its rescuer kthread."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc22r", WQ_MEM_RECLAIM)
            await settle()
            await destroy_workqueue(wq)
        # shutdown names every kthread left running; the rescuer is not among them
        assert not lines_with(k, "kworker/R-fc22r")

    async def test_destroy_waits_for_in_flight_item(self, virtual: bool) -> None:
        """FC-23 (model): destroy waits in its drain for an in-flight item; no busy pwq ever."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fc23")
            b = Blocker()
            assert queue_work(wq, Work(b.run))
            with anyio.fail_after(SAFETY):
                await wait_for_completion(b.started)
            with anyio.move_on_after(1.0 if virtual else 0.05) as scope:
                await destroy_workqueue(wq)
            assert scope.cancelled_caught
            assert not lines_with(k, "has the following busy pwq")
            b.release()
            rec = Recorder()
            w = Work(rec.run)
            assert queue_work(wq, w)
            assert not lines_with(k, "cannot queue")
            with anyio.fail_after(SAFETY):
                assert await flush_work(w) is True
                await destroy_workqueue(wq)
            assert rec.runs == 1
            assert b.ends == 1
            assert not lines_with(k, "busy pwq")


class TestWatchdog:
    async def test_lockup_report(self, virtual: bool) -> None:
        """FC-24: a per-CPU pool whose running item never sleeps (it spins on bare
        checkpoints) holds back the next item; once no progress was made for longer than the
        threshold the watchdog reports `BUG: workqueue lockup` and the busy workqueues.

        The automatic CPU-intensive detection (10 ms) would let the next item start, so it
        is turned off (a huge ``cpu_intensive_thresh_us``, like a pre-6.5 kernel). Real time
        only: while an item spins the loop is never idle, so a virtual clock (which only jumps
        when everything waits) would not move. The threshold is 50 ms here, not 30 s."""
        if virtual:
            pytest.skip("a spinning item keeps the loop busy: virtual time cannot advance")
        stop = [False]

        async def spin(w: Work) -> None:
            while not stop[0]:
                await anyio.lowlevel.checkpoint()

        def starved(w: Work) -> None:
            pass

        async with Kernel(
            nr_cpus=1, hz=1000, wq_watchdog_thresh=0.05, wq_cpu_intensive_thresh_us=10**9
        ) as k:
            wq = alloc_workqueue("wdq", WQ_PERCPU, 0)
            assert wq is not None
            queue_work(wq, Work(spin))
            queue_work(wq, Work(starved))
            with anyio.fail_after(5):
                while not lines_with(k, "BUG: workqueue lockup"):
                    await msleep(10)
            stop[0] = True
            await flush_workqueue(wq)
        (line,) = lines_with(k, "BUG: workqueue lockup")
        assert "pool cpus=0 node=0 flags=0x0 nice=0 stuck for" in line
        assert lines_with(k, "Showing busy workqueues and worker pools:")
        assert lines_with(k, "workqueue wdq: flags=0x100")
        assert any("pending: starved" in x for x in lines_with(k, "pending:"))

    async def test_no_report_while_items_progress(self, virtual: bool) -> None:
        """FC-24: items that sleep let the pool progress: no lockup is reported, and with
        nothing waiting the watchdog stops (the kernel stays tickless)."""

        async def nap(w: Work) -> None:
            await msleep(20)

        async with Kernel(nr_cpus=1, hz=1000, wq_watchdog_thresh=0.05) as k:
            wq = alloc_workqueue("wdok", WQ_PERCPU, 0)
            assert wq is not None
            for _ in range(5):
                queue_work(wq, Work(nap))
            await flush_workqueue(wq)
            await settle()
            timer = wq_state(k).watchdog
            for _ in range(10):
                await msleep(60)
                if timer is None or timer._bucket is None:
                    break
        assert not lines_with(k, "workqueue lockup")
        assert timer is not None
        assert timer._bucket is None


# --- work_on_cpu -----------------------------------------------------------------------------


class TestWorkOnCpu:
    async def test_plain_fn(self) -> None:
        """work_on_cpu runs a plain fn(arg) in a kworker on that CPU and returns its result."""
        async with Kernel(nr_cpus=2, hz=250):

            def fn(arg: int) -> tuple[int, int, str]:
                return arg * 2, smp_processor_id(), current().comm

            with anyio.fail_after(SAFETY):
                value, cpu, comm = await work_on_cpu(1, fn, 21)
            assert value == 42
            assert cpu == 1
            assert comm.startswith("kworker/1:")

    async def test_async_fn(self) -> None:
        """work_on_cpu awaits an async fn(arg) in a kworker on that CPU; returns its result."""
        async with Kernel(nr_cpus=2, hz=250):
            gate = Completion()
            complete_all(gate)

            async def fn(arg: str) -> tuple[str, int]:
                await wait_for_completion(gate)  # it may sleep
                return arg.upper(), smp_processor_id()

            with anyio.fail_after(SAFETY):
                assert await work_on_cpu(0, fn, "abc") == ("ABC", 0)
                assert await work_on_cpu(1, fn, "x") == ("X", 1)

    async def test_bad_cpu(self) -> None:
        """work_on_cpu with a CPU out of range raises ValueError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(ValueError):
                await work_on_cpu(2, lambda a: a, 1)


# --- might_sleep and bad input ---------------------------------------------------------------


def _sleepers() -> list[Any]:
    """(id, call) pairs: each call makes one of the sleeping APIs' coroutines."""
    calls: dict[str, Callable[[Workqueue, Work, DelayedWork], Any]] = {
        "flush_work": lambda wq, w, dw: flush_work(w),
        "flush_delayed_work": lambda wq, w, dw: flush_delayed_work(dw),
        "flush_workqueue": lambda wq, w, dw: flush_workqueue(wq),
        "drain_workqueue": lambda wq, w, dw: drain_workqueue(wq),
        "flush_scheduled_work": lambda wq, w, dw: flush_scheduled_work(),
        "cancel_work_sync": lambda wq, w, dw: cancel_work_sync(w),
        "cancel_delayed_work_sync": lambda wq, w, dw: cancel_delayed_work_sync(dw),
        "disable_work_sync": lambda wq, w, dw: disable_work_sync(w),
        "disable_delayed_work_sync": lambda wq, w, dw: disable_delayed_work_sync(dw),
        "destroy_workqueue": lambda wq, w, dw: destroy_workqueue(wq),
        "work_on_cpu": lambda wq, w, dw: work_on_cpu(0, abs, -1),
    }
    return [pytest.param(call, id=name) for name, call in calls.items()]


class TestContextAndInput:
    @pytest.mark.parametrize("call", _sleepers())
    async def test_sleeping_api_in_tasklet_reports(
        self, call: Callable[[Workqueue, Work, DelayedWork], Any]
    ) -> None:
        """Each sleeping API runs might_sleep at call time: BUG report from a tasklet callback."""
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            wq = new_wq("atomic")
            w, dw = Work(Recorder().run), DelayedWork(Recorder().run)
            coros: list[Any] = []

            def body(_t: Tasklet) -> None:
                coros.append(call(wq, w, dw))
                coros[0].close()

            t = Tasklet()
            tasklet_setup(t, body)
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()
            assert len(coros) == 1
            assert inspect.getcoroutinestate(coros[0]) == inspect.CORO_CLOSED
            assert lines_with(k, "BUG: sleeping function called from invalid context")
            assert k.oopses == []

    async def test_sleeping_apis_are_coroutine_functions(self) -> None:
        """The waiting APIs are `async def`; the non-waiting cancel/disable/enable are not."""
        sleeping: tuple[object, ...] = (
            flush_work,
            flush_delayed_work,
            flush_workqueue,
            drain_workqueue,
            flush_scheduled_work,
            cancel_work_sync,
            cancel_delayed_work_sync,
            disable_work_sync,
            disable_delayed_work_sync,
            destroy_workqueue,
            work_on_cpu,
        )
        atomic: tuple[object, ...] = (
            cancel_work,
            cancel_delayed_work,
            disable_work,
            disable_delayed_work,
            enable_work,
            enable_delayed_work,
            enable_and_queue_work,
        )
        for fn in sleeping:
            assert inspect.iscoroutinefunction(fn), fn
        for fn in atomic:
            assert not inspect.iscoroutinefunction(fn), fn

    async def test_bad_arguments(self) -> None:
        """A DelayedWork or a non-Work passed where a Work is expected raises TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            dw = DelayedWork(Recorder().run)
            w = Work(Recorder().run)
            with pytest.raises(TypeError, match="DelayedWork"):
                await flush_work(dw)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await flush_work(object())  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await cancel_work_sync(dw)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                cancel_work(dw)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                disable_work("work")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="DelayedWork"):
                enable_work(dw)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await flush_delayed_work(w)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                cancel_delayed_work(w)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await cancel_delayed_work_sync(w)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await flush_workqueue(w)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await drain_workqueue(None)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="initialised by INIT_WORK"):
                await flush_work(Work())

    async def test_ordered_workqueue_flush(self) -> None:
        """flush_workqueue on an ordered workqueue waits for its items, run in order."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = alloc_ordered_workqueue("ordered", 0)
            assert wq is not None
            order: list[int] = []

            def item(n: int) -> Work:
                return Work(lambda _w: order.append(n))

            for i in range(3):
                assert queue_work(wq, item(i))
            with anyio.fail_after(SAFETY):
                await flush_workqueue(wq)
            assert order == [0, 1, 2]


class TestShutdown:
    async def test_leaving_the_kernel_runs_queued_work(self) -> None:
        """Leaving the kernel runs every queued work item to completion first."""
        ran: list[int] = []
        async with Kernel(nr_cpus=2, hz=250):
            for i in range(3):

                async def fn(w: Work, i: int = i) -> None:
                    await msleep(10)
                    ran.append(i)

                schedule_work(Work(fn))
        assert sorted(ran) == [0, 1, 2]

    async def test_work_that_never_ends_is_named_and_cancelled(self, virtual: bool) -> None:
        """A work item that never finishes does not hang the exit: after shutdown_timeout it
        is named in dmesg and cancelled, and what waited behind it is named as dropped."""
        if not virtual:
            pytest.skip("waits shutdown_timeout of model time")
        never = Completion()

        async def stuck(w: Work) -> None:
            await wait_for_completion(never)

        wq_name = "stuckq"
        async with Kernel(nr_cpus=2, hz=250, shutdown_timeout=5) as k:
            wq = alloc_ordered_workqueue(wq_name, 0)
            assert wq is not None
            queue_work(wq, Work(stuck))
            queue_work(wq, Work(lambda w: None))
            await settle()
        lines = k.dmesg()
        assert any("work stuck on stuckq still running in kworker/" in line for line in lines)
        assert any("never ran (inactive); dropped" in line for line in lines)


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly *message*."""
    return "^" + re.escape(message) + "$"


def noop(_work: Work) -> None:
    pass


class TestArguments:
    """Bad arguments are a TypeError or ValueError with the wording of _check.py, raised at the
    call (for the sleeping ones too, before any coroutine exists) and before anything changes."""

    async def test_work_arguments(self) -> None:
        """flush/cancel/disable/enable of a Work name themselves; a rejected call leaves the
        item as it was (still pending, not disabled)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = new_wq("fargs")
            w = Work(noop)
            dw = DelayedWork(noop)
            with pytest.raises(
                TypeError, match=exactly("flush_work() expects a Work for 'work', got NoneType")
            ):
                flush_work(None)  # type: ignore[arg-type]  # raises at the call: no await
            with pytest.raises(
                TypeError,
                match=exactly(
                    "cancel_work_sync() expects a Work for 'work', got DelayedWork (use the "
                    "*_delayed_work API for a DelayedWork, or pass dwork.work)"
                ),
            ):
                cancel_work_sync(dw)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "disable_work_sync() expects a Work initialised by INIT_WORK for 'work', "
                    "got <Work None>"
                ),
            ):
                disable_work_sync(Work())
            assert queue_work(wq, w)
            for fn in (cancel_work, disable_work, enable_work):
                with pytest.raises(
                    TypeError, match=exactly(f"{fn.__name__}() expects a Work for 'work', got str")
                ):
                    fn("work")  # type: ignore[arg-type]
            assert work_pending(w)
            assert work_busy(w) == WORK_BUSY_PENDING
            await flush_workqueue(wq)
            assert k.wq_stats()["fargs"]["total"] == 1
            await destroy_workqueue(wq)

    async def test_delayed_work_arguments(self) -> None:
        """The *_delayed_work functions take a DelayedWork; a rejected call leaves its timer
        armed."""
        async with Kernel(nr_cpus=2, hz=250):
            dw = DelayedWork(noop)
            assert queue_delayed_work(system_wq, dw, 50)
            for fn in (cancel_delayed_work, disable_delayed_work, enable_delayed_work):
                with pytest.raises(
                    TypeError,
                    match=exactly(f"{fn.__name__}() expects a DelayedWork for 'dwork', got Work"),
                ):
                    fn(Work(noop))  # type: ignore[arg-type]
            for afn in (flush_delayed_work, cancel_delayed_work_sync, disable_delayed_work_sync):
                with pytest.raises(
                    TypeError,
                    match=exactly(
                        f"{afn.__name__}() expects a DelayedWork for 'dwork', got NoneType"
                    ),
                ):
                    afn(None)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "cancel_delayed_work() expects a DelayedWork initialised by "
                    "INIT_DELAYED_WORK for 'dwork', got <DelayedWork <Work None>>"
                ),
            ):
                cancel_delayed_work(DelayedWork())
            assert timer_pending(dw.timer)
            assert cancel_delayed_work(dw) is True

    async def test_workqueue_arguments(self) -> None:
        """flush/drain/destroy_workqueue take a Workqueue, checked at the call; destroy refuses
        a system workqueue and a second destroy before it waits for anything."""
        async with Kernel(nr_cpus=2, hz=250):
            for afn in (flush_workqueue, drain_workqueue, destroy_workqueue):
                with pytest.raises(
                    TypeError,
                    match=exactly(f"{afn.__name__}() expects a Workqueue for 'wq', got Work"),
                ):
                    afn(Work(noop))  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "destroy_workqueue() expects a workqueue that is not a system one for 'wq', "
                    "got <Workqueue 'events', a system workqueue>"
                ),
            ):
                destroy_workqueue(system_percpu_wq)
            wq = new_wq("gone")
            await destroy_workqueue(wq)
            with pytest.raises(
                ValueError,
                match=exactly(
                    "destroy_workqueue() expects a workqueue not already destroyed for 'wq', "
                    "got <Workqueue 'gone' flags=0x0 max_active=1024 destroyed>"
                ),
            ):
                destroy_workqueue(wq)

    async def test_checked_before_might_sleep(self) -> None:
        """Under a spinlock, a sleeping call with a bad argument is the argument's TypeError:
        nothing is reported as a sleep in atomic context."""
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="raise") as k:
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            try:
                with pytest.raises(TypeError, match=r"^cancel_work_sync\(\) expects a Work"):
                    cancel_work_sync(42)  # type: ignore[arg-type]
            finally:
                spin_unlock(lock)
            assert not [line for line in k.dmesg() if "sleeping function called" in line]

    async def test_work_on_cpu(self) -> None:
        """work_on_cpu takes one of the kernel's CPUs (not WORK_CPU_UNBOUND) and `fn(arg)`."""
        ran: list[object] = []
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                ValueError,
                match=exactly("work_on_cpu() expects a CPU number from 0 to 1 for 'cpu', got 8192"),
            ):
                work_on_cpu(WORK_CPU_UNBOUND, ran.append, 1)
            with pytest.raises(
                TypeError, match=exactly("work_on_cpu() expects an int for 'cpu', got str")
            ):
                work_on_cpu("1", ran.append, 1)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "work_on_cpu() expects a function callable as fn(arg) for 'fn', but "
                    "<lambda>() cannot be called with 1 positional argument"
                ),
            ):
                work_on_cpu(1, lambda: ran.append(0), 1)
            assert ran == []

            def record(arg: int) -> int:
                ran.append(arg)
                return arg

            assert await work_on_cpu(1, record, 7) == 7
            assert ran == [7]
