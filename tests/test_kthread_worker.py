"""kthread_worker: a dedicated kthread running kthread_work items one at a time
(kernel-semantics-2 §6.1-§6.4, KW-01..KW-11).

Every behaviour of §11.6 up to KW-11 is modelled; parking and exiting (KW-12..KW-15) are in
test_kthread_park.py. Not modelled: ``KTW_FREEZABLE`` (accepted; this kernel has no freezer for
kthreads) and the ``ERR_PTR(-ENOMEM)``/``ERR_PTR(-EINTR)`` results of creation (creation cannot
fail here). Exact jiffies are asserted on the virtual backends only; on real time, order and
lower bounds.
"""

from __future__ import annotations

import re

import anyio
import pytest
from helpers import logged

from kdefer_async import (
    IRQ_HANDLED,
    Completion,
    Kernel,
    KernelBug,
    KthreadDelayedWork,
    KthreadWork,
    KthreadWorker,
    complete,
    current,
    in_task,
    kthread_cancel_delayed_work_sync,
    kthread_cancel_work_sync,
    kthread_create_worker,
    kthread_create_worker_on_cpu,
    kthread_destroy_worker,
    kthread_flush_work,
    kthread_flush_worker,
    kthread_init_delayed_work,
    kthread_init_work,
    kthread_mod_delayed_work,
    kthread_queue_delayed_work,
    kthread_queue_work,
    kthread_run_worker,
    kthread_run_worker_on_cpu,
    msleep,
    request_irq,
    smp_processor_id,
    timer_pending,
    wait_for_completion,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

WARNING = "WARNING: CPU:"


class TestCreate:
    async def test_create_worker_task_exists_and_runs_items(self) -> None:
        """KW-01. kthread_create_worker(0, "kw%d", 3): a task kw3 exists; a queued item runs in
        it, in task context, and may sleep."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_create_worker(0, "kw%d", 3)
            assert isinstance(wk, KthreadWorker)
            assert wk.task is not None
            assert wk.task.comm == "kw3"
            assert k._tasks[wk.task.pid] is wk.task
            seen: list[object] = []

            async def fn(work: KthreadWork) -> None:
                seen.append((current().comm, current() is wk.task, in_task()))
                await msleep(8)
                seen.append("slept")

            assert kthread_queue_work(wk, KthreadWork(fn))
            await kthread_flush_worker(wk)
            assert seen == [("kw3", True, True), "slept"]
            await kthread_destroy_worker(wk)

    async def test_create_does_not_wake_run_does(self) -> None:
        """KW-01. kthread_create_worker leaves the thread unwoken (6.14); kthread_run_worker
        wakes it; the first queued item wakes a created one."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            created = kthread_create_worker(0, "created")
            started = kthread_run_worker(0, "started")
            assert created.task in k._kthread_starts
            assert started.task not in k._kthread_starts
            ran: list[str] = []
            kthread_queue_work(created, KthreadWork(lambda w: ran.append("created")))
            assert created.task not in k._kthread_starts
            await kthread_flush_worker(created)
            assert ran == ["created"]
            await kthread_destroy_worker(created)
            await kthread_destroy_worker(started)

    async def test_on_cpu_fills_in_the_cpu(self) -> None:
        """The _on_cpu forms bind the thread to the CPU and put its number in the name."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker_on_cpu(1, 0, "helper/%u")
            assert wk.task is not None
            assert wk.task.comm == "helper/1"
            assert wk.task.cpu == 1
            cpus: list[int] = []
            kthread_queue_work(wk, KthreadWork(lambda w: cpus.append(smp_processor_id())))
            await kthread_flush_worker(wk)
            assert cpus == [1]
            other = kthread_create_worker_on_cpu(0, 0, "other/%u")
            assert other.task is not None
            assert other.task.comm == "other/0"
            await kthread_destroy_worker(wk)
            await kthread_destroy_worker(other)

    async def test_name_is_cut_to_15_characters(self) -> None:
        """The thread's name is cut to TASK_COMM_LEN - 1 characters, as every kthread's."""
        async with Kernel(nr_cpus=1, hz=250):
            wk = kthread_run_worker(0, "a_very_long_worker_%d", 12)
            assert wk.task is not None
            assert wk.task.comm == "a_very_long_wor"
            await kthread_destroy_worker(wk)


class TestQueue:
    async def test_queue_while_pending_returns_false(self) -> None:
        """KW-02. Queued → True; again before it runs → False; fn runs once."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            runs: list[int] = []
            w = KthreadWork(lambda w: runs.append(1))
            assert kthread_queue_work(wk, w) is True
            assert kthread_queue_work(wk, w) is False
            await kthread_flush_worker(wk)
            assert runs == [1]
            await kthread_destroy_worker(wk)

    async def test_runs_in_queue_order_one_at_a_time(self) -> None:
        """KW-03. A, B, C run in order, never two at once, even when A sleeps."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            events: list[str] = []
            running = 0

            def make(name: str, sleep: int) -> KthreadWork:
                async def fn(work: KthreadWork) -> None:
                    nonlocal running
                    running += 1
                    assert running == 1
                    events.append(f"{name}+")
                    if sleep:
                        await msleep(sleep)
                    events.append(f"{name}-")
                    running -= 1

                return KthreadWork(fn)

            for name, sleep in (("A", 20), ("B", 0), ("C", 4)):
                assert kthread_queue_work(wk, make(name, sleep))
            await kthread_flush_worker(wk)
            assert events == ["A+", "A-", "B+", "B-", "C+", "C-"]
            await kthread_destroy_worker(wk)

    async def test_requeue_while_running_runs_again(self) -> None:
        """KW-04. Queueing while w executes → True; w runs again after the current run."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            events: list[str] = []
            started = Completion()
            results: list[bool] = []

            async def fn(work: KthreadWork) -> None:
                events.append("start")
                complete(started)
                await msleep(12)
                events.append("end")

            w = KthreadWork(fn)
            kthread_queue_work(wk, w)
            await wait_for_completion(started)
            results.append(kthread_queue_work(wk, w))
            results.append(kthread_queue_work(wk, w))
            await kthread_flush_worker(wk)
            assert results == [True, False]
            assert events == ["start", "end", "start", "end"]
            await kthread_destroy_worker(wk)

    async def test_second_worker_warns_once_and_runs_there(self) -> None:
        """KW-05. w ran on worker 1; queueing it on worker 2 → one WARN; it runs on worker 2."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk1 = kthread_run_worker(0, "kw1")
            wk2 = kthread_run_worker(0, "kw2")
            where: list[str] = []
            w = KthreadWork(lambda w: where.append(current().comm))
            kthread_queue_work(wk1, w)
            await kthread_flush_worker(wk1)
            assert logged(k, WARNING) == 0
            assert kthread_queue_work(wk2, w)
            await kthread_flush_worker(wk2)
            assert where == ["kw1", "kw2"]
            assert logged(k, WARNING) == 1
            kthread_queue_work(wk1, w)  # back on worker 1: WARN_ON_ONCE stays silent
            await kthread_flush_worker(wk1)
            assert logged(k, WARNING) == 1
            await kthread_destroy_worker(wk1)
            await kthread_destroy_worker(wk2)

    async def test_queue_from_hardirq(self) -> None:
        """Queueing works from a hard interrupt handler; the item runs in the worker's thread."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            seen: list[tuple[str, bool]] = []
            w = KthreadWork(lambda w: seen.append((current().comm, in_task())))
            results: list[bool] = []

            def handler(irq: int, dev: object) -> int:
                results.append(kthread_queue_work(wk, w))
                return IRQ_HANDLED

            request_irq(12, handler, 0, "dev", None)
            k.raise_irq(12)
            await kthread_flush_worker(wk)
            assert results == [True]
            assert seen == [("kw", True)]
            await kthread_destroy_worker(wk)

    async def test_plain_and_async_functions_both_run(self) -> None:
        """An item's function may be a plain function or ``async def``; both run in place."""
        async with Kernel(nr_cpus=1, hz=250):
            wk = kthread_run_worker(0, "kw")
            ran: list[str] = []

            async def a(work: KthreadWork) -> None:
                ran.append("async")

            w1 = KthreadWork()
            kthread_init_work(w1, a)
            w2 = KthreadWork(lambda w: ran.append("plain"))
            kthread_queue_work(wk, w1)
            kthread_queue_work(wk, w2)
            await kthread_flush_worker(wk)
            assert ran == ["async", "plain"]
            await kthread_destroy_worker(wk)

    async def test_oops_in_item_is_recorded_and_worker_goes_on(self) -> None:
        """An exception in an item is an oops; the worker runs the next item."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            ran: list[str] = []

            def bad(work: KthreadWork) -> None:
                raise RuntimeError("boom")

            kthread_queue_work(wk, KthreadWork(bad))
            kthread_queue_work(wk, KthreadWork(lambda w: ran.append("next")))
            await kthread_flush_worker(wk)
            assert ran == ["next"]
            assert len(k.oopses) == 1
            assert k.oopses[0].comm == "kw"
            await kthread_destroy_worker(wk)


class TestDelayed:
    async def test_zero_delay_and_timer(self, virtual: bool) -> None:
        """KW-06. delay 0 → True, queued at once, timer not pending; delay 10 at J → runs at
        tick J+11; again while armed → False."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            at: list[int] = []
            ran = Completion()

            def fn(w: KthreadWork) -> None:
                at.append(k.jiffies)
                complete(ran)

            dw = KthreadDelayedWork(fn)
            assert kthread_queue_delayed_work(wk, dw, 0) is True
            assert not timer_pending(dw.timer)
            assert dw.work._pending
            await kthread_flush_worker(wk)
            assert len(at) == 1
            await wait_for_completion(ran)
            j = k.jiffies
            assert kthread_queue_delayed_work(wk, dw, 10) is True
            assert timer_pending(dw.timer)
            assert kthread_queue_delayed_work(wk, dw, 10) is False
            await wait_for_completion(ran)  # (not a sleep: a loaded machine may be late)
            assert len(at) == 2
            assert at[1] == j + 11 if virtual else at[1] >= j + 11
            await kthread_destroy_worker(wk)

    async def test_mod_delayed_work_return_values(self, virtual: bool) -> None:
        """KW-07. mod(100) on idle dw → False and armed for 100; mod(5) → True, runs after 5;
        mod(0) on an armed dw → True, queued at once."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            at: list[int] = []
            ran = Completion()

            def fn(w: KthreadWork) -> None:
                at.append(k.jiffies)
                complete(ran)

            dw = KthreadDelayedWork(fn)
            j = k.jiffies
            assert kthread_mod_delayed_work(wk, dw, 100) is False
            assert timer_pending(dw.timer)
            assert dw.timer.expires == j + 100 if virtual else dw.timer.expires >= j + 100
            j = k.jiffies
            assert kthread_mod_delayed_work(wk, dw, 5) is True
            await wait_for_completion(ran)
            assert len(at) == 1
            assert at[0] == j + 6 if virtual else j + 6 <= at[0] < j + 100
            assert kthread_queue_delayed_work(wk, dw, 50)
            assert kthread_mod_delayed_work(wk, dw, 0) is True
            assert not timer_pending(dw.timer)
            await kthread_flush_worker(wk)
            assert len(at) == 2
            await kthread_destroy_worker(wk)

    async def test_mod_during_cancel_returns_true_and_queues_nothing(self) -> None:
        """kthread_mod_delayed_work while a cancel waits for the running item: True, and
        nothing is queued or armed (the cancel wins)."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            started = Completion()
            runs: list[int] = []
            results: list[bool] = []

            async def fn(work: KthreadWork) -> None:
                runs.append(1)
                complete(started)
                await msleep(20)

            dw = KthreadDelayedWork(fn)
            kthread_queue_delayed_work(wk, dw, 0)
            await wait_for_completion(started)

            async def modder() -> None:
                await msleep(4)
                results.append(kthread_mod_delayed_work(wk, dw, 0))

            async with anyio.create_task_group() as tg:
                tg.start_soon(modder)
                assert await kthread_cancel_delayed_work_sync(dw) is False
            assert results == [True]
            assert not dw.work._pending
            assert not timer_pending(dw.timer)
            await kthread_flush_worker(wk)
            assert runs == [1]
            await kthread_destroy_worker(wk)


class TestFlush:
    async def test_flush_work(self, virtual: bool) -> None:
        """KW-08. flush of a never-queued item returns at once; of a queued one, after its
        function finished."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            events: list[str] = []

            async def fn(work: KthreadWork) -> None:
                await msleep(20)
                events.append("ran")

            w = KthreadWork(fn)
            t0 = k.jiffies
            await kthread_flush_work(w)
            # at once: no time passes (a real clock may cross one jiffy in the checkpoint)
            assert k.jiffies - t0 == 0 if virtual else k.jiffies - t0 <= 1
            assert events == []
            kthread_queue_work(wk, w)
            await kthread_flush_work(w)
            assert events == ["ran"]
            await kthread_destroy_worker(wk)

    async def test_flush_of_running_item_waits_for_it_only(self) -> None:
        """kthread_flush_work of a running item returns once it ends, before the items queued
        behind it (its barrier goes to the head of the list)."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            events: list[str] = []
            started = Completion()

            async def first(work: KthreadWork) -> None:
                complete(started)
                await msleep(12)
                events.append("first")

            async def second(work: KthreadWork) -> None:
                await msleep(12)
                events.append("second")

            a, b = KthreadWork(first), KthreadWork(second)
            kthread_queue_work(wk, a)
            kthread_queue_work(wk, b)
            await wait_for_completion(started)
            await kthread_flush_work(a)
            events.append("flushed")
            await kthread_flush_worker(wk)
            assert events == ["first", "flushed", "second"]
            await kthread_destroy_worker(wk)

    async def test_flush_from_own_function_is_a_reported_deadlock(self) -> None:
        """KW-08. kthread_flush_work of w from w's own function: reported and KernelBug."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            caught: list[BaseException] = []

            async def fn(work: KthreadWork) -> None:
                try:
                    await kthread_flush_work(work)
                except KernelBug as exc:
                    caught.append(exc)

            kthread_queue_work(wk, KthreadWork(fn))
            await kthread_flush_worker(wk)
            assert len(caught) == 1
            assert logged(k, "possible recursive locking detected") == 1
            await kthread_destroy_worker(wk)

    async def test_flush_worker_from_its_item_is_a_reported_deadlock(self) -> None:
        """kthread_flush_worker from an item of that worker would wait for itself: KernelBug."""
        async with Kernel(nr_cpus=1, hz=250):
            wk = kthread_run_worker(0, "kw")
            caught: list[str] = []

            async def fn(work: KthreadWork) -> None:
                try:
                    await kthread_flush_worker(wk)
                except KernelBug:
                    caught.append("bug")

            kthread_queue_work(wk, KthreadWork(fn))
            await kthread_flush_worker(wk)
            assert caught == ["bug"]
            await kthread_destroy_worker(wk)

    async def test_flush_worker_does_not_wait_for_armed(self, virtual: bool) -> None:
        """KW-09. A queued, B armed for 50 jiffies: flush_worker returns after A ran, before
        B's timer fires."""
        # (on a real clock B is armed far later, so that a stalled machine cannot fire it
        # before the flush returns)
        delay = 50 if virtual else 2500
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            events: list[str] = []

            async def fa(work: KthreadWork) -> None:
                await msleep(8)
                events.append("A")

            b = KthreadDelayedWork(lambda w: events.append("B"))
            j = k.jiffies
            kthread_queue_work(wk, KthreadWork(fa))
            kthread_queue_delayed_work(wk, b, delay)
            await kthread_flush_worker(wk)
            assert events == ["A"]
            if virtual:
                assert k.jiffies < j + delay
            assert await kthread_cancel_delayed_work_sync(b) is True
            await kthread_destroy_worker(wk)


class TestCancel:
    async def test_cancel_queued(self) -> None:
        """KW-10. kthread_cancel_work_sync of a queued item → True; fn never runs."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_create_worker(0, "kw")  # not woken: the item stays queued
            runs: list[int] = []
            w = KthreadWork(lambda w: runs.append(1))
            kthread_queue_work(wk, w)
            assert await kthread_cancel_work_sync(w) is True
            await kthread_flush_worker(wk)
            assert runs == []
            assert await kthread_cancel_work_sync(w) is False
            await kthread_destroy_worker(wk)

    async def test_cancel_running_waits(self) -> None:
        """KW-10. On an executing item it waits for it and returns False."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            events: list[str] = []
            started = Completion()

            async def fn(work: KthreadWork) -> None:
                complete(started)
                await msleep(20)
                events.append("end")

            w = KthreadWork(fn)
            kthread_queue_work(wk, w)
            await wait_for_completion(started)
            assert await kthread_cancel_work_sync(w) is False
            assert events == ["end"]
            assert wk.current_work is None
            await kthread_destroy_worker(wk)

    async def test_cancel_sync_stops_self_requeueing(self) -> None:
        """KW-10. A self-requeueing item: afterwards neither pending nor running; a queue
        attempt from another task during the wait → False."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            started = Completion()
            others: list[bool] = []
            runs = 0

            async def fn(work: KthreadWork) -> None:
                nonlocal runs
                runs += 1
                complete(started)
                await msleep(8)
                kthread_queue_work(wk, work)

            w = KthreadWork(fn)
            kthread_queue_work(wk, w)
            await wait_for_completion(started)

            async def other() -> None:
                await msleep(4)
                others.append(kthread_queue_work(wk, w))

            async with anyio.create_task_group() as tg:
                tg.start_soon(other)
                await kthread_cancel_work_sync(w)
            assert others == [False]
            assert not w._pending
            assert wk.current_work is not w
            n = runs
            await msleep(40)
            assert runs == n
            await kthread_destroy_worker(wk)

    async def test_cancel_delayed_armed(self) -> None:
        """KW-10. kthread_cancel_delayed_work_sync of an armed item → True; it never runs."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            runs: list[int] = []
            dw = KthreadDelayedWork(lambda w: runs.append(1))
            kthread_queue_delayed_work(wk, dw, 5)
            assert await kthread_cancel_delayed_work_sync(dw) is True
            assert not timer_pending(dw.timer)
            await msleep(60)
            assert runs == []
            await kthread_destroy_worker(wk)

    async def test_cancel_from_own_function_is_a_reported_deadlock(self) -> None:
        """kthread_cancel_work_sync of w from w's own function waits for itself: KernelBug."""
        async with Kernel(nr_cpus=1, hz=250):
            wk = kthread_run_worker(0, "kw")
            caught: list[str] = []

            async def fn(work: KthreadWork) -> None:
                try:
                    await kthread_cancel_work_sync(work)
                except KernelBug:
                    caught.append("bug")

            kthread_queue_work(wk, KthreadWork(fn))
            await kthread_flush_worker(wk)
            assert caught == ["bug"]
            await kthread_destroy_worker(wk)


class TestDestroy:
    async def test_destroy_runs_queued_items_then_ends_the_thread(self) -> None:
        """KW-11. With 2 queued items: both run, then the worker's task no longer exists."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            task = wk.task
            assert task is not None
            ran: list[str] = []

            async def fn(work: KthreadWork) -> None:
                await msleep(4)
                ran.append("a")

            kthread_queue_work(wk, KthreadWork(fn))
            kthread_queue_work(wk, KthreadWork(lambda w: ran.append("b")))
            await kthread_destroy_worker(wk)
            assert ran == ["a", "b"]
            assert task._exited
            assert task.pid not in k._tasks
            assert wk.task is None
            assert logged(k, WARNING) == 0

    async def test_destroy_with_armed_warns(self) -> None:
        """KW-11. A delayed item still armed → WARN_ON; destroying again → WARN_ON, return."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")
            dw = KthreadDelayedWork(lambda w: None)
            kthread_queue_delayed_work(wk, dw, 100)
            await kthread_destroy_worker(wk)
            assert logged(k, WARNING) == 1
            await kthread_destroy_worker(wk)
            assert logged(k, WARNING) == 2
            with pytest.raises(ValueError, match="not destroyed"):
                kthread_queue_work(wk, KthreadWork(lambda w: None))
        assert k.shutdown_report is not None
        assert k.shutdown_report.counts() == {"kthread delayed work cancelled": 1}

    async def test_destroy_from_own_item_is_a_reported_deadlock(self) -> None:
        """kthread_destroy_worker from one of its items flushes itself: KernelBug."""
        async with Kernel(nr_cpus=1, hz=250):
            wk = kthread_run_worker(0, "kw")
            caught: list[str] = []

            async def fn(work: KthreadWork) -> None:
                try:
                    await kthread_destroy_worker(wk)
                except KernelBug:
                    caught.append("bug")

            kthread_queue_work(wk, KthreadWork(fn))
            await kthread_flush_worker(wk)
            assert caught == ["bug"]
            await kthread_destroy_worker(wk)


class TestShutdown:
    async def test_normal_exit_runs_queued_items(self) -> None:
        """Leaving the kernel normally runs what is queued on a worker; armed items are
        cancelled and named; the undestroyed thread is named too."""
        ran: list[str] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            wk = kthread_run_worker(0, "kw")

            async def fn(work: KthreadWork) -> None:
                await msleep(20)
                ran.append("a")

            kthread_queue_work(wk, KthreadWork(fn))
            kthread_queue_work(wk, KthreadWork(lambda w: ran.append("b")))
            kthread_queue_delayed_work(wk, KthreadDelayedWork(lambda w: ran.append("c")), 500)
        assert ran == ["a", "b"]
        report = k.shutdown_report
        assert report is not None
        assert report.reason == "normal"
        assert report.counts() == {"kthread delayed work cancelled": 1, "kthread stopped": 1}
        assert logged(k, "kthread delayed work <lambda> for kw still armed; cancelled") == 1

    async def test_abort_names_queued_and_running(self) -> None:
        """Leaving by an exception: the running item is cancelled and the queued ones dropped,
        each named in dmesg and the report."""
        k = Kernel(nr_cpus=2, hz=250)

        async def body() -> None:
            async with k:
                wk = kthread_run_worker(0, "kw")
                started = Completion()

                async def slow(work: KthreadWork) -> None:
                    complete(started)
                    await msleep(100_000)

                kthread_queue_work(wk, KthreadWork(slow))
                kthread_queue_work(wk, KthreadWork(lambda w: None))
                await wait_for_completion(started)
                raise RuntimeError("leave")

        with pytest.raises(RuntimeError, match="leave"):
            await body()
        report = k.shutdown_report
        assert report is not None
        assert report.reason == "exception"
        assert report.counts() == {
            "kthread work dropped": 1,
            "kthread work cancelled": 1,
            "kthread stopped": 1,
        }
        assert logged(k, "kthread work slow still running in kw; cancelled") == 1
        assert logged(k, "kthread work <lambda> on kw never ran (queued); dropped") == 1


class TestRepr:
    async def test_reprs(self) -> None:
        """Workers and items say what they are."""
        async with Kernel(nr_cpus=1, hz=250):
            assert "uninitialised" in repr(KthreadWorker())
            wk = kthread_create_worker(0, "kw")
            w = KthreadWork(lambda w: None)
            kthread_queue_work(wk, w)
            assert re.search(r"<KthreadWorker kw queued=1>", repr(wk))
            assert "pending" in repr(w)
            dw = KthreadDelayedWork()
            kthread_init_delayed_work(dw, lambda w: None)
            kthread_queue_delayed_work(wk, dw, 10)
            assert "armed" in repr(dw)
            await kthread_cancel_delayed_work_sync(dw)
            await kthread_destroy_worker(wk)
            assert "destroyed" in repr(wk)
            await settle()


class TestArguments:
    async def test_messages(self) -> None:
        """Bad arguments are rejected with the project's wording, before anything changes."""
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_create_worker(0, "kw")
            w = KthreadWork(lambda w: None)
            dw = KthreadDelayedWork(lambda w: None)
            cases: list[tuple[object, type[Exception], str]] = [
                (
                    lambda: kthread_queue_work(None, w),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_queue_work() expects a KthreadWorker for 'worker', got NoneType",
                ),
                (
                    lambda: kthread_queue_work(wk, dw),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_queue_work() expects a KthreadWork for 'work', got "
                    "KthreadDelayedWork (pass its .work",
                ),
                (
                    lambda: kthread_queue_work(wk, KthreadWork()),
                    ValueError,
                    "kthread_queue_work() expects a KthreadWork initialised by "
                    "kthread_init_work for 'work'",
                ),
                (
                    lambda: kthread_queue_work(KthreadWorker(), w),
                    ValueError,
                    "kthread_queue_work() expects a KthreadWorker made by "
                    "kthread_create_worker for 'worker'",
                ),
                (
                    lambda: kthread_queue_delayed_work(wk, dw, -1),
                    ValueError,
                    "kthread_queue_delayed_work() expects a number of jiffies from 0 to "
                    "LONG_MAX for 'delay', got -1",
                ),
                (
                    lambda: kthread_mod_delayed_work(wk, w, 1),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_mod_delayed_work() expects a KthreadDelayedWork for 'dwork', "
                    "got KthreadWork",
                ),
                (
                    lambda: kthread_create_worker(-1, "x"),
                    ValueError,
                    "kthread_create_worker() expects an int from 0 to 4294967295 for 'flags'",
                ),
                (
                    lambda: kthread_run_worker(0, "x%d"),
                    TypeError,
                    "kthread_run_worker(): the arguments do not match the name format",
                ),
                (
                    lambda: kthread_run_worker_on_cpu(2, 0, "x/%u"),
                    ValueError,
                    "kthread_run_worker_on_cpu() expects a CPU number from 0 to 1 for 'cpu'",
                ),
                (
                    lambda: kthread_create_worker_on_cpu(0, 0, "x"),
                    ValueError,
                    "kthread_create_worker_on_cpu() expects a name format that takes the CPU "
                    "number",
                ),
                (
                    lambda: KthreadWork(lambda: None),  # type: ignore[arg-type]
                    TypeError,
                    "KthreadWork()",
                ),
                (
                    lambda: kthread_init_work(w, 1),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_init_work()",
                ),
                (
                    lambda: kthread_flush_work(dw),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_flush_work() expects a KthreadWork for 'work'",
                ),
                (
                    lambda: kthread_cancel_delayed_work_sync(w),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_cancel_delayed_work_sync() expects a KthreadDelayedWork for "
                    "'dwork', got KthreadWork",
                ),
                (
                    lambda: kthread_destroy_worker(KthreadWorker()),
                    ValueError,
                    "kthread_destroy_worker() expects a KthreadWorker made by "
                    "kthread_create_worker for 'worker'",
                ),
                (
                    lambda: kthread_flush_worker("wk"),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_flush_worker() expects a KthreadWorker for 'worker', got str",
                ),
            ]
            for call, exc, text in cases:
                with pytest.raises(exc) as info:
                    call()  # type: ignore[operator]
                assert str(info.value).startswith(text), str(info.value)
            assert not w._pending
            assert not dw.work._pending
            assert not wk._list
            kthread_queue_work(wk, w)
            with pytest.raises(ValueError, match="not pending"):
                kthread_init_work(w, lambda w: None)
            await kthread_destroy_worker(wk)


class TestSettle:
    async def test_settle_waits_for_queued_items(self) -> None:
        """testing.settle() returns only once a worker has started its queued items: plain
        items have run by then, in order."""
        ran: list[str] = []
        async with Kernel(nr_cpus=2, hz=250):
            wk = kthread_run_worker(0, "kw")
            for name in ("a", "b", "c"):
                kthread_queue_work(wk, KthreadWork(lambda w, name=name: ran.append(name)))
            await settle()
            assert ran == ["a", "b", "c"]
            await kthread_destroy_worker(wk)


class TestDebugPreempt:
    async def test_on_cpu_worker_is_a_per_cpu_thread(self) -> None:
        """A worker made with kthread_create_worker_on_cpu is bound to its CPU (kthread_bind):
        with debug_preempt, smp_processor_id() in its items is not reported; in an unbound
        worker's items it is."""
        comms: list[str] = []

        def item(w: KthreadWork) -> None:
            smp_processor_id()
            comms.append(current().comm)

        async with Kernel(nr_cpus=2, hz=250, debug_preempt=True) as k:
            bound = kthread_run_worker_on_cpu(1, 0, "bound/%u")
            free = kthread_run_worker(0, "free")
            kthread_queue_work(bound, KthreadWork(item))
            await kthread_flush_worker(bound)
            assert not any("BUG: using smp_processor_id()" in ln for ln in k.dmesg())
            kthread_queue_work(free, KthreadWork(item))
            await kthread_flush_worker(free)
            reports = [ln for ln in k.dmesg() if "BUG: using smp_processor_id()" in ln]
            assert len(reports) == 1
            assert "code: free/" in reports[0]
            await kthread_destroy_worker(bound)
            await kthread_destroy_worker(free)
        assert comms == ["bound/1", "free"]
