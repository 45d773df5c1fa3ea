"""Tests for `kdefer_async._shutdown`: nothing is lost silently, whatever way the kernel is left.

Every deferred item either ran, was cancelled by a call the test made, or is named in dmesg as
not run and counted in ``Kernel.shutdown_report``; the exception that ended the block reaches
the caller unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import kdefer_async as kd
from kdefer_async import (
    WQ_UNBOUND,
    DelayedWork,
    Kernel,
    KernelPanic,
    ShutdownReport,
    Tasklet,
    TimerList,
    Work,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_work,
    local_bh_disable,
    local_irq_save,
    mod_timer,
    msecs_to_jiffies,
    msleep,
    open_softirq,
    queue_delayed_work,
    queue_work,
    raise_softirq,
    request_irq,
    schedule_work,
    tasklet_schedule,
)
from kdefer_async.testing import settle

ITEM_LINE = "kdefer: shutdown: "


def item_lines(k: Kernel) -> list[str]:
    """The dmesg lines that name one unfinished item each (not the header or the summary)."""
    return [
        line
        for line in k.dmesg()
        if ITEM_LINE in line and (line.endswith(("; dropped", "; cancelled", "; stopped")))
    ]


def report_of(k: Kernel) -> ShutdownReport:
    report = k.shutdown_report
    assert report is not None
    return report


async def cancel_while_running(fn: Callable[[Work], Any], started: anyio.Event) -> Kernel:
    """Boot a one-CPU kernel, queue ``Work(fn)``, and once *fn* has set *started* cancel the
    scope around the kernel; return the kernel, after checking the cancellation was caught."""
    with anyio.CancelScope() as scope:
        async with Kernel(nr_cpus=1, hz=250) as k:
            schedule_work(Work(fn))
            await started.wait()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    return k


def check_report_matches_dmesg(k: Kernel) -> None:
    """Each item of the report has its own dmesg line, naming its function, and the summary
    line gives the same total."""
    report = report_of(k)
    lines = item_lines(k)
    assert len(lines) == len(report.items)
    for item, line in zip(report.items, lines, strict=True):
        assert item.func in line
        assert item.outcome in line
    if report.items:
        summary = [line for line in k.dmesg() if "did not run to completion" in line]
        assert len(summary) == 1
        assert f"{len(report.items)} item" in summary[0]
    assert k.dmesg()[-1].endswith("reboot: System halted")


class Busy:
    """A busy kernel: unbound works (some sleeping), delayed works (some due soon), and a few
    cancelled by the test itself. Records what ran."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ran: set[int] = set()
        self.cancelled_by_test: set[int] = set()
        self.items: dict[int, object] = {}  # id -> Work or DelayedWork

    def _fn(self, i: int, sleep_ms: int) -> Callable[[Work], Any]:
        async def busy_fn(_w: Work) -> None:
            if sleep_ms:
                await msleep(sleep_ms)
            self.ran.add(i)

        return busy_fn

    def start(self, k: Kernel) -> None:
        wqs = [alloc_workqueue(f"busy{n}", WQ_UNBOUND, 4) for n in range(2)]
        wqs.append(alloc_workqueue("busypcpu", 0, 2))
        for i in range(200):
            sleep_ms = self.rng.choice((0, 0, 5, 200))
            work = Work(self._fn(i, sleep_ms))
            self.items[i] = work
            wq = wqs[i % len(wqs)]
            assert wq is not None
            assert queue_work(wq, work)
        for i in range(200, 250):
            dwork = DelayedWork(self._fn(i, self.rng.choice((0, 20))))
            self.items[i] = dwork
            wq = wqs[i % len(wqs)]
            assert wq is not None
            assert queue_delayed_work(
                wq, dwork, msecs_to_jiffies(self.rng.choice((10, 100, 10_000)))
            )
        # some items are cancelled by the test itself, before they could run
        for i in self.rng.sample(range(250), 20):
            item = self.items[i]
            took = cancel_delayed_work(item) if isinstance(item, DelayedWork) else cancel_work(item)  # type: ignore[arg-type]
            if took:
                self.cancelled_by_test.add(i)

    def check(self, k: Kernel) -> None:
        report = report_of(k)
        by_obj = {id(obj): i for i, obj in self.items.items()}
        for i, obj in self.items.items():
            if isinstance(obj, DelayedWork):
                by_obj[id(obj.work)] = i
        named: list[int] = []
        for item in report.items:
            assert id(item.obj) in by_obj, item
            named.append(by_obj[id(item.obj)])
        assert len(named) == len(set(named)), "an item was named twice"
        named_set = set(named)
        assert not (self.ran & named_set)
        assert not (self.ran & self.cancelled_by_test)
        assert not (named_set & self.cancelled_by_test)
        assert len(self.ran) + len(self.cancelled_by_test) + len(named_set) == len(self.items)
        check_report_matches_dmesg(k)


class TestCancelledScope:
    pytestmark = pytest.mark.anyio

    @pytest.mark.parametrize("seed", range(6))
    async def test_cancel_at_a_random_instant_loses_nothing(self, seed: int, virtual: bool) -> None:
        """Cancelling the scope around a busy kernel at any instant: each item ran, was
        cancelled by the test, or is named in dmesg and counted; the counts add up exactly
        and the cancellation reaches the caller."""
        rng = random.Random(seed)
        busy = Busy(rng)
        delay = rng.choice((0.0, 0.001, 0.01, 0.05, 0.15, 0.3))
        k = Kernel(nr_cpus=2, hz=250)
        with anyio.move_on_after(delay) as scope:
            async with k:
                busy.start(k)
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        busy.check(k)
        assert report_of(k).reason == "cancelled"
        assert k.oopses == []

    async def test_cancellation_stays_a_cancellation(self) -> None:
        """A cancelled block is left by the cancellation itself, caught by its own scope, and
        running work is named as cancelled in its kworker."""
        started = anyio.Event()

        async def slow(_w: Work) -> None:
            started.set()
            await msleep(10_000)

        k = await cancel_while_running(slow, started)
        report = report_of(k)
        assert report.reason == "cancelled"
        assert report.counts() == {"work cancelled": 1}
        (line,) = item_lines(k)
        assert "work slow on events still running in kworker/0:" in line
        assert line.endswith("; cancelled")
        check_report_matches_dmesg(k)

    async def test_work_sees_the_cancellation_at_its_next_await(self) -> None:
        """A running work function sees the cancellation at its next await, runs its cleanup,
        and the kworker reports no oops for it."""
        seen: list[str] = []
        started = anyio.Event()

        async def careful(_w: Work) -> None:
            started.set()
            try:
                await msleep(10_000)
            except anyio.get_cancelled_exc_class():
                seen.append("cancelled")
                raise
            finally:
                seen.append("cleanup")

        k = await cancel_while_running(careful, started)
        assert seen == ["cancelled", "cleanup"]
        assert k.oopses == []
        assert not any("Oops" in line or "BUG" in line for line in k.dmesg())

    async def test_cancellation_turned_into_an_error_is_an_oops(self) -> None:
        """A work function that turns the cancellation into an ordinary exception gets an oops,
        as any exception in a work function does."""
        started = anyio.Event()

        async def converts(_w: Work) -> None:
            started.set()
            try:
                await msleep(10_000)
            except anyio.get_cancelled_exc_class():
                raise RuntimeError("gave up") from None

        k = await cancel_while_running(converts, started)
        assert len(k.oopses) == 1
        assert isinstance(k.oopses[0].exception, RuntimeError)


class TestBodyRaises:
    pytestmark = pytest.mark.anyio

    async def test_exception_propagates_unchanged_and_items_are_named(self) -> None:
        """The body's exception leaves the block as itself; queued, inactive and armed items
        are named as not run, and none of them runs."""
        ran: list[str] = []

        def queued_fn(_w: Work) -> None:
            ran.append("queued")  # pragma: no cover

        def delayed_fn(_w: Work) -> None:
            ran.append("delayed")  # pragma: no cover

        err = LookupError("mine")
        k = Kernel(nr_cpus=1, hz=250)

        async def body() -> None:
            async with k:
                wq = alloc_workqueue("one", WQ_UNBOUND, 1)
                assert wq is not None
                queue_work(wq, Work(queued_fn))  # active: on the worklist
                queue_work(wq, Work(queued_fn))  # inactive: beyond max_active
                queue_delayed_work(wq, DelayedWork(delayed_fn), 100)
                raise err

        with pytest.raises(LookupError) as info:
            await body()
        assert info.value is err
        assert ran == []
        report = report_of(k)
        assert report.reason == "exception"
        assert report.counts() == {"work dropped": 2, "delayed work cancelled": 1}
        states = sorted(item.state for item in report.items)
        assert states == ["armed", "inactive", "queued"]
        check_report_matches_dmesg(k)
        assert any("raised LookupError" in line for line in k.dmesg())

    async def test_atomic_items_are_named(self) -> None:
        """Pending tasklets, softirqs, interrupts, timers and RCU callbacks are named as not run
        when the block raises, and none of them runs."""
        ran: list[str] = []

        def tasklet_fn(_t: Tasklet) -> None:
            ran.append("tasklet")  # pragma: no cover

        def timer_fn(_t: TimerList) -> None:
            ran.append("timer")  # pragma: no cover

        def softirq_fn() -> None:
            ran.append("softirq")  # pragma: no cover

        def rcu_fn(_head: object) -> None:
            ran.append("rcu")  # pragma: no cover

        def irq_fn(irq: int, dev: object) -> int:
            ran.append("irq")  # pragma: no cover
            return kd.IRQ_HANDLED  # pragma: no cover

        k = Kernel(nr_cpus=1, hz=250)

        async def body() -> None:
            async with k:
                mod_timer(TimerList(timer_fn), k.jiffies + 1000)
                kd.call_rcu(object(), rcu_fn)
                request_irq(9, irq_fn, 0, "dev9", None)
                open_softirq(kd.NET_RX_SOFTIRQ, softirq_fn)
                local_bh_disable()  # what is raised now waits for local_bh_enable()
                tasklet_schedule(Tasklet(tasklet_fn))
                raise_softirq(kd.NET_RX_SOFTIRQ)
                local_irq_save()
                k.raise_irq(9)  # waits for interrupts to be enabled again
                raise ValueError("stop")

        with pytest.raises(ValueError, match="stop"):
            await body()
        assert ran == []
        report = report_of(k)
        assert report.counts() == {
            "tasklet dropped": 1,
            "timer cancelled": 1,
            "irq dropped": 1,
            "softirq dropped": 1,
            "rcu callback dropped": 1,
        }
        check_report_matches_dmesg(k)


class TestLateItems:
    pytestmark = pytest.mark.anyio

    async def test_work_queued_by_cleanup_code_is_named(self) -> None:
        """Work queued while the kernel goes down (by a cancelled work function's cleanup) is
        named as dropped, not left behind silently."""
        started = anyio.Event()
        late = Work(lambda w: None)

        async def cleanup_queues(_w: Work) -> None:
            started.set()
            try:
                await msleep(10_000)
            finally:
                schedule_work(late)

        k = await cancel_while_running(cleanup_queues, started)
        report = report_of(k)
        assert report.counts() == {"work cancelled": 1, "work dropped": 1}
        assert {item.outcome: item.obj for item in report.items}["dropped"] is late
        assert any("after shutdown began; dropped" in line for line in item_lines(k))
        check_report_matches_dmesg(k)


class TestPanic:
    pytestmark = pytest.mark.anyio

    async def test_panic_names_what_did_not_run(self) -> None:
        """A panic stays a KernelPanic; what was queued is named, counted, reason "panic"."""

        def boom(_t: Tasklet) -> None:
            raise ZeroDivisionError

        k = Kernel(nr_cpus=1, hz=250)

        async def body() -> None:
            async with k:
                kd.schedule_delayed_work(DelayedWork(lambda w: None), 1000)
                tasklet_schedule(Tasklet(boom))
                await anyio.sleep_forever()

        with pytest.raises(KernelPanic):
            await body()
        report = report_of(k)
        assert report.reason == "panic"
        assert report.counts() == {"delayed work cancelled": 1}
        check_report_matches_dmesg(k)


class TestNormalExit:
    pytestmark = pytest.mark.anyio

    async def test_quiet_kernel_reports_nothing(self) -> None:
        """A normal exit of a quiet kernel: an empty report, reason "normal", no summary line."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            schedule_work(Work(lambda w: None))
            await settle()
        report = report_of(k)
        assert report.reason == "normal"
        assert len(report) == 0
        assert not any("did not run to completion" in line for line in k.dmesg())

    async def test_normal_exit_counts_armed_delayed_work(self) -> None:
        """A normal exit runs what is queued, and counts the armed delayed work it cancels."""
        ran: list[int] = []
        async with Kernel(nr_cpus=1, hz=250) as k:
            schedule_work(Work(lambda w: ran.append(1)))
            kd.schedule_delayed_work(DelayedWork(lambda w: ran.append(2)), 1000)
        assert ran == [1]
        report = report_of(k)
        assert report.reason == "normal"
        assert report.counts() == {"delayed work cancelled": 1}
        check_report_matches_dmesg(k)

    async def test_shutdown_timeout_names_running_and_waiting(self, virtual: bool) -> None:
        """A normal exit that runs out of shutdown_timeout: the running item is cancelled and
        named, what waited behind it is named as dropped; reason "timeout"."""
        if not virtual:
            pytest.skip("waits shutdown_timeout of model time")

        async def stuck(_w: Work) -> None:
            await msleep(1_000_000)

        async with Kernel(nr_cpus=1, hz=250, shutdown_timeout=2) as k:
            wq = kd.alloc_ordered_workqueue("stuckq", 0)
            assert wq is not None
            queue_work(wq, Work(stuck))
            queue_work(wq, Work(lambda w: None))
            await settle()
        report = report_of(k)
        assert report.reason == "timeout"
        assert report.counts() == {"work dropped": 1, "work cancelled": 1}
        check_report_matches_dmesg(k)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
class TestRun:
    """kd.run() starts its own event loop: plain tests, once per backend."""

    def test_run_main_raising(self, backend: str) -> None:
        """kd.run(): main's exception propagates unchanged; what was queued is still named."""
        seen: dict[str, Kernel] = {}

        async def main() -> None:
            seen["k"] = kd.current_kernel()
            kd.schedule_delayed_work(DelayedWork(lambda w: None), 1000)
            raise KeyError("from main")

        with pytest.raises(KeyError, match="from main"):
            kd.run(main, nr_cpus=1, backend=backend)
        report = report_of(seen["k"])
        assert report.reason == "exception"
        assert report.counts() == {"delayed work cancelled": 1}


class TestThreadsafeInterrupts:
    pytestmark = pytest.mark.anyio

    async def test_normal_exit_delivers_what_other_threads_raised(self) -> None:
        """Interrupts raised with raise_irq_threadsafe and not yet delivered when the block
        ends are delivered during the normal shutdown, not lost."""
        seen: list[int] = []

        def handler(irq: int, dev: object) -> int:
            seen.append(irq)
            return kd.IRQ_HANDLED

        async with Kernel(nr_cpus=1, hz=250) as k:
            request_irq(11, handler, 0, "dev11", None)
            for _ in range(3):
                k.raise_irq_threadsafe(11)  # queued: delivered by the kernel's own task
        assert seen == [11, 11, 11]
        assert len(report_of(k)) == 0

    async def test_abort_names_and_counts_them(self) -> None:
        """Leaving by an exception: interrupts still queued from other threads are named
        in dmesg and counted, one item each, and never delivered."""
        seen: list[int] = []

        def handler(irq: int, dev: object) -> int:
            seen.append(irq)  # pragma: no cover
            return kd.IRQ_HANDLED  # pragma: no cover

        k = Kernel(nr_cpus=1, hz=250)

        async def body() -> None:
            async with k:
                request_irq(12, handler, 0, "dev12", None)
                k.raise_irq_threadsafe(12)
                k.raise_irq_threadsafe(12)
                raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):
            await body()
        assert seen == []
        report = report_of(k)
        assert report.counts() == {"irq dropped": 2}
        assert all(item.func == "dev12" for item in report.items)
        check_report_matches_dmesg(k)
