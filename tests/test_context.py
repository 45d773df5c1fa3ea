"""Execution contexts: the preempt_count predicates and the kernel's context-bug reports.

Covers kernel-semantics §6.1 (CTX-01..CTX-12, CTX-05 through ``Kernel.raise_nmi``). Not covered
here: CTX-13 (a workqueue behaviour, tested with workqueues).
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import kdefer_async
from kdefer_async import (
    HI_SOFTIRQ,
    IRQ_HANDLED,
    NET_RX_SOFTIRQ,
    TASK_UNINTERRUPTIBLE,
    Kernel,
    KernelBug,
    KernelPanic,
    NoKernelError,
    SpinLock,
    Tasklet,
    TimerList,
    current,
    current_kernel,
    in_atomic,
    in_hardirq,
    in_interrupt,
    in_nmi,
    in_serving_softirq,
    in_softirq,
    in_task,
    irqs_disabled,
    local_bh_disable,
    local_bh_enable,
    local_irq_restore,
    local_irq_save,
    might_sleep,
    mod_timer,
    num_online_cpus,
    open_softirq,
    preempt_count,
    raise_softirq,
    request_irq,
    set_current_state,
    smp_processor_id,
    spin_lock,
    spin_lock_bh,
    spin_unlock,
    spin_unlock_bh,
    tasklet_schedule,
    tasklet_setup,
    timer_setup,
)
from kdefer_async._context import _current, no_kernel_error
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

SLEEP_BUG = "BUG: sleeping function called from invalid context at "
#: Safety bound for waiting on a timer that is due within a few jiffies: only a broken library
#: reaches it, so it allows for a busy machine that keeps the process off the CPU a while.
TIMER_WAIT = 5.0


def log_lines(k: Kernel) -> list[str]:
    """``k.dmesg()`` without the ``[    1.234567] `` timestamps."""
    return [line.split("] ", 1)[1] for line in k.dmesg()]


def snapshot() -> dict[str, Any]:
    """Every context predicate, evaluated where it is called."""
    return {
        "in_interrupt": in_interrupt(),
        "in_hardirq": in_hardirq(),
        "in_softirq": in_softirq(),
        "in_serving_softirq": in_serving_softirq(),
        "in_task": in_task(),
        "in_atomic": in_atomic(),
        "preempt_count": preempt_count(),
        "cpu": smp_processor_id(),
        "cpus": num_online_cpus(),
        "comm": current().comm,
    }


def expected(
    count: int,
    comm: str,
    *,
    interrupt: bool,
    hardirq: bool = False,
    softirq: bool = False,
    serving: bool = False,
    task: bool,
    cpu: int = 0,
) -> dict[str, Any]:
    return {
        "in_interrupt": interrupt,
        "in_hardirq": hardirq,
        "in_softirq": softirq,
        "in_serving_softirq": serving,
        "in_task": task,
        "in_atomic": count != 0,
        "preempt_count": count,
        "cpu": cpu,
        "cpus": 2,
        "comm": comm,
    }


async def run_tasklet(callback: Callable[[Tasklet], object]) -> None:
    """Schedule a tasklet from task context (ksoftirqd/0 runs it) and wait until it ran."""
    t = Tasklet()
    tasklet_setup(t, callback)
    tasklet_schedule(t)
    await settle()


async def fire_timer(k: Kernel, callback: Callable[[TimerList], object]) -> None:
    """Arm a timer for the next jiffy and wait until its callback has returned."""
    done = anyio.Event()

    def wrapper(timer: TimerList) -> object:
        try:
            return callback(timer)
        finally:
            done.set()

    timer = TimerList()
    timer_setup(timer, wrapper, 0)
    mod_timer(timer, k.jiffies + 1)
    with anyio.fail_after(TIMER_WAIT):
        await done.wait()


# ---------------------------------------------------------------------------------------------
# The predicates in every context
# ---------------------------------------------------------------------------------------------


class TestPredicates:
    async def test_plain_task(self) -> None:
        """CTX-01: plain task code is in_task, not atomic, not in interrupt, count 0."""
        async with Kernel(nr_cpus=2, hz=250):
            assert snapshot() == expected(0, "init", interrupt=False, task=True)
            assert current().pid == 1
            assert current_kernel().nr_cpus == 2

    async def test_bh_disabled(self) -> None:
        """CTX-02: one local_bh_disable gives 0x200, in_softirq and in_interrupt, still a task."""
        async with Kernel(nr_cpus=2, hz=250):
            local_bh_disable()
            inside = snapshot()
            local_bh_enable()
            after = snapshot()
        assert inside == expected(0x200, "init", interrupt=True, softirq=True, task=True)
        assert after == expected(0, "init", interrupt=False, task=True)

    async def test_bh_disable_nests_in_steps_of_0x200(self) -> None:
        """Two nested local_bh_disable() give 0x400; each enable removes 0x200."""
        async with Kernel(nr_cpus=2, hz=250):
            local_bh_disable()
            local_bh_disable()
            two = preempt_count()
            local_bh_enable()
            one = preempt_count()
            local_bh_enable()
            assert (two, one, preempt_count()) == (0x400, 0x200, 0)

    async def test_spinlock_held(self) -> None:
        """Holding a spinlock is atomic (count 1) but neither interrupt nor softirq context."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = SpinLock()
            spin_lock(lock)
            inside = snapshot()
            spin_unlock(lock)
            assert inside == expected(1, "init", interrupt=False, task=True)
            assert preempt_count() == 0

    async def test_spin_lock_bh(self) -> None:
        """CTX-06: spin_lock_bh gives 0x201; spin_unlock_bh brings the count back to 0."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = SpinLock()
            spin_lock_bh(lock)
            inside = snapshot()
            spin_unlock_bh(lock)
            assert inside == expected(0x201, "init", interrupt=True, softirq=True, task=True)
            assert preempt_count() == 0

    async def test_tasklet_in_ksoftirqd(self) -> None:
        """CTX-03: a tasklet run by ksoftirqd/0 is serving a softirq (0x100), not a task."""
        seen: list[dict[str, Any]] = []
        async with Kernel(nr_cpus=2, hz=250):
            await run_tasklet(lambda t: seen.append(snapshot()))
        assert seen == [
            expected(0x100, "ksoftirqd/0", interrupt=True, softirq=True, serving=True, task=False)
        ]

    async def test_softirq_action_from_local_bh_enable(self) -> None:
        """CTX-03: an action run by local_bh_enable borrows the caller; its count is 0x101."""
        seen: list[dict[str, Any]] = []
        async with Kernel(nr_cpus=2, hz=250):
            open_softirq(NET_RX_SOFTIRQ, lambda: seen.append(snapshot()))
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            assert preempt_count() == 0
        assert seen == [
            expected(0x101, "init", interrupt=True, softirq=True, serving=True, task=False)
        ]

    async def test_timer_callback(self, virtual: bool) -> None:
        """CTX-03: a timer callback runs in softirq context (bit 0x100 set), not in a task."""
        seen: list[dict[str, Any]] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            await fire_timer(k, lambda t: seen.append(snapshot()))
        assert len(seen) == 1
        ctx = seen[0]
        assert ctx["preempt_count"] & 0x100
        want = expected(0x100, "", interrupt=True, softirq=True, serving=True, task=False)
        ignore = ("preempt_count", "comm")
        assert {key: v for key, v in ctx.items() if key not in ignore} == {
            key: v for key, v in want.items() if key not in ignore
        }

    async def test_hardirq_handler(self) -> None:
        """CTX-04: a hardirq handler has 0x10000, in_hardirq and in_interrupt, IRQs off, no task."""
        seen: list[tuple[dict[str, Any], bool]] = []

        def handler(irq: int, dev: object) -> int:
            seen.append((snapshot(), irqs_disabled()))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(5, handler, 0, "ctx", None) == 0
            k.raise_irq(5)
            assert preempt_count() == 0
            assert not irqs_disabled()
        assert seen == [(expected(0x10000, "init", interrupt=True, hardirq=True, task=False), True)]

    async def test_hardirq_on_cpu1(self) -> None:
        """CTX-04: an interrupt on CPU 1 runs on CPU 1, borrowing its idle task swapper/1."""
        seen: list[dict[str, Any]] = []

        def handler(irq: int, dev: object) -> int:
            seen.append(snapshot())
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, handler, 0, "ctx", None)
            k.raise_irq(5, cpu=1)
        assert seen == [
            expected(0x10000, "swapper/1", interrupt=True, hardirq=True, task=False, cpu=1)
        ]

    async def test_hardirq_adds_to_the_interrupted_count(self) -> None:
        """An interrupt taken while a spinlock is held and BH is off adds 0x10000 to 0x201."""
        seen: list[int] = []

        def handler(irq: int, dev: object) -> int:
            seen.append(preempt_count())
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, handler, 0, "ctx", None)
            lock = SpinLock()
            spin_lock_bh(lock)
            k.raise_irq(5)
            spin_unlock_bh(lock)
            spin_lock(lock)
            k.raise_irq(5)
            spin_unlock(lock)
        assert seen == [0x10201, 0x10001]

    async def test_softirq_on_irq_exit(self) -> None:
        """A softirq run on irq_exit is no longer in hardirq context: its count is 0x100."""
        seen: list[dict[str, Any]] = []

        def handler(irq: int, dev: object) -> int:
            raise_softirq(NET_RX_SOFTIRQ)
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: seen.append(snapshot()))
            request_irq(5, handler, 0, "ctx", None)
            k.raise_irq(5)
        assert seen == [
            expected(0x100, "init", interrupt=True, softirq=True, serving=True, task=False)
        ]

    async def test_irqs_disabled_is_not_atomic(self) -> None:
        """local_irq_save() sets irqs_disabled() but leaves preempt_count (and in_atomic) alone."""
        async with Kernel(nr_cpus=2, hz=250):
            flags = local_irq_save()
            inside = (irqs_disabled(), preempt_count(), in_atomic(), in_task())
            local_irq_restore(flags)
            assert inside == (True, 0, False, True)
            assert not irqs_disabled()


# ---------------------------------------------------------------------------------------------
# might_sleep(): "sleeping function called from invalid context"
# ---------------------------------------------------------------------------------------------


def report_after(lines: list[str], index: int) -> list[str]:
    """The BUG line at *index* and the two lines that follow it."""
    return lines[index : index + 3]


def sleep_reports(k: Kernel) -> list[int]:
    """Indices of every might_sleep report in the log."""
    return [i for i, line in enumerate(log_lines(k)) if line.startswith(SLEEP_BUG)]


class TestMightSleep:
    async def test_tasklet_calling_msleep(self) -> None:
        """CTX-07: msleep() from a tasklet prints the three might_sleep lines at the call site."""
        where: list[tuple[int, int, str]] = []

        def callback(t: Tasklet) -> None:
            line = sys._getframe().f_lineno + 1
            coro = kdefer_async.msleep(1)
            # the report happened at call time; the coroutine never runs
            assert inspect.iscoroutine(coro)
            coro.close()
            where.append((line, current().pid, current().comm))

        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            await run_tasklet(callback)
        [(line, pid, comm)] = where
        assert comm == "ksoftirqd/0"
        [i] = sleep_reports(k)
        assert report_after(log_lines(k), i) == [
            f"{SLEEP_BUG}test_context.py:{line}",
            f"in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {pid}, name: {comm}",
            "preempt_count: 100, expected: 0",
        ]

    async def test_timer_callback_calling_msleep(self) -> None:
        """CTX-07: msleep() from a timer callback prints the same report (count 100)."""
        where: list[tuple[int, int, str]] = []

        def callback(timer: TimerList) -> None:
            line = sys._getframe().f_lineno + 1
            coro = kdefer_async.msleep(1)
            coro.close()
            where.append((line, current().pid, current().comm))

        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            await fire_timer(k, callback)
        [(line, pid, comm)] = where
        [i] = sleep_reports(k)
        assert report_after(log_lines(k), i) == [
            f"{SLEEP_BUG}test_context.py:{line}",
            f"in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {pid}, name: {comm}",
            "preempt_count: 100, expected: 0",
        ]

    async def test_report_taints_with_warn(self) -> None:
        """CTX-07: a might_sleep report is followed by the CPU line, tainted W."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            local_bh_disable()
            might_sleep()
            local_bh_enable()
        lines = log_lines(k)
        [i] = sleep_reports(k)
        cpu_lines = [line for line in lines[i:] if line.startswith("CPU: 0 ")]
        assert cpu_lines
        assert "Tainted: [W]=WARN" in cpu_lines[0]

    async def test_might_sleep_with_spinlock_held(self) -> None:
        """might_sleep() under a spinlock in task context reports count 1 for init/1."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = SpinLock()
            spin_lock(lock)
            line = sys._getframe().f_lineno + 1
            might_sleep()
            spin_unlock(lock)
        [i] = sleep_reports(k)
        assert report_after(log_lines(k), i) == [
            f"{SLEEP_BUG}test_context.py:{line}",
            "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1, name: init",
            "preempt_count: 1, expected: 0",
        ]

    async def test_might_sleep_with_irqs_disabled(self) -> None:
        """might_sleep() with local IRQs off reports irqs_disabled(): 1 and in_atomic(): 0."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            flags = local_irq_save()
            might_sleep()
            local_irq_restore(flags)
        [i] = sleep_reports(k)
        assert report_after(log_lines(k), i)[1:] == [
            "in_atomic(): 0, irqs_disabled(): 1, non_block: 0, pid: 1, name: init",
            "preempt_count: 0, expected: 0",
        ]

    async def test_no_report_in_task_context(self) -> None:
        """might_sleep() and a real msleep() in plain task context report nothing."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            might_sleep()
            await kdefer_async.msleep(1)
        assert sleep_reports(k) == []
        assert not any(line.startswith("BUG:") for line in log_lines(k))

    async def test_default_policy_raises_kernelbug_at_call_time(self) -> None:
        """With the default policy a sleeping call under a spinlock raises KernelBug at once."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = SpinLock()
            spin_lock(lock)
            with pytest.raises(KernelBug, match="atomic context"):
                kdefer_async.msleep(1)
            spin_unlock(lock)
            assert preempt_count() == 0
        assert len(sleep_reports(k)) == 1

    async def test_default_policy_in_tasklet_panics(self) -> None:
        """A sleeping call in a tasklet (default policy) is a fatal exception in interrupt."""
        with pytest.raises(KernelPanic) as info:
            async with Kernel(nr_cpus=2, hz=250) as k:
                await run_tasklet(lambda t: kdefer_async.msleep(1))
        assert type(info.value) is KernelPanic
        assert isinstance(info.value.__cause__, KernelBug)
        lines = log_lines(k)
        assert len(sleep_reports(k)) == 1
        assert "Kernel panic - not syncing: Fatal exception in interrupt" in lines

    async def test_rate_limited_to_one_report_per_second(self) -> None:
        """CTX-08: two violations within HZ jiffies print only the first report."""
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:

            def callback(t: Tasklet) -> None:
                for _ in range(2):
                    kdefer_async.msleep(1).close()

            await run_tasklet(callback)
            await run_tasklet(callback)
            local_bh_disable()
            might_sleep()
            local_bh_enable()
        assert len(sleep_reports(k)) == 1

    async def test_rate_limit_window_is_hz_jiffies(self, virtual: bool) -> None:
        """CTX-08: a violation HZ-1 jiffies after a report is silent, one HZ jiffies after it prints."""
        if not virtual:
            pytest.skip("needs a second of model time; virtual backends only")
        hz = 250

        def violate() -> None:
            local_bh_disable()
            might_sleep()
            local_bh_enable()

        async with Kernel(nr_cpus=2, hz=hz) as k:
            j0 = k.jiffies
            violate()
            await anyio.sleep((hz - 1) / hz)
            assert k.jiffies == j0 + hz - 1
            violate()
            assert len(sleep_reports(k)) == 1
            await anyio.sleep(1 / hz)
            assert k.jiffies == j0 + hz
            violate()
            assert len(sleep_reports(k)) == 2


# ---------------------------------------------------------------------------------------------
# schedule() in atomic context: "scheduling while atomic"
# ---------------------------------------------------------------------------------------------


async def never_awaited_sleeper(ran: list[str]) -> None:
    """A coroutine function that is not a kernel API: calling it does not run might_sleep."""
    ran.append("body")
    await anyio.lowlevel.checkpoint()


class TestSchedulingWhileAtomic:
    async def test_tasklet_returning_a_coroutine(self) -> None:
        """CTX-09: a tasklet callback returning an awaitable reports scheduling while atomic, 0x00000101."""
        made: list[Any] = []
        ran: list[str] = []
        who: list[tuple[str, int]] = []

        def callback(t: Tasklet) -> object:
            who.append((current().comm, current().pid))
            made.append(never_awaited_sleeper(ran))
            return made[-1]

        async with Kernel(nr_cpus=2, hz=250) as k:
            await run_tasklet(callback)
            # the kernel carried on: ksoftirqd still serves softirqs
            await run_tasklet(lambda t: who.append((current().comm, current().pid)))
        [(comm, pid), again] = who
        assert again == (comm, pid)
        # ksoftirqd serves at 0x100; schedule() itself holds one more level
        assert f"BUG: scheduling while atomic: {comm}/{pid}/0x00000101" in log_lines(k)
        # the coroutine was closed without running (and without a never-awaited warning)
        assert inspect.getcoroutinestate(made[0]) == inspect.CORO_CLOSED
        assert ran == []

    async def test_softirq_action_returning_a_coroutine(self) -> None:
        """CTX-09: an action run from local_bh_enable (0x101) prints 0x00000102."""
        ran: list[str] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: never_awaited_sleeper(ran))
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            assert preempt_count() == 0
        assert "BUG: scheduling while atomic: init/1/0x00000102" in log_lines(k)
        assert ran == []

    async def test_hardirq_handler_returning_a_coroutine(self) -> None:
        """CTX-09: an irq handler that returns an awaitable reports 0x00010001."""
        ran: list[str] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, lambda irq, dev: never_awaited_sleeper(ran), 0, "sleepy", None)
            k.raise_irq(5)
        assert "BUG: scheduling while atomic: init/1/0x00010001" in log_lines(k)
        assert ran == []

    async def test_blocking_with_a_spinlock_held(self) -> None:
        """CTX-09: really sleeping in task context with one spinlock held prints 0x00000002."""
        async with Kernel(nr_cpus=2, hz=1000, sleep_in_atomic="report") as k:
            lock = SpinLock()
            spin_lock(lock)
            set_current_state(TASK_UNINTERRUPTIBLE)
            await kdefer_async.schedule_timeout(1)
            spin_unlock(lock)
        assert "BUG: scheduling while atomic: init/1/0x00000002" in log_lines(k)


# ---------------------------------------------------------------------------------------------
# local_bh_enable() in hardirq context, preempt_count leaks
# ---------------------------------------------------------------------------------------------


class TestContextBugs:
    async def test_local_bh_enable_in_hardirq_warns_once(self) -> None:
        """CTX-10: local_bh_enable() in a hardirq handler WARNs once, later calls are silent."""
        inside: list[tuple[int, int]] = []
        ran: list[int] = []

        def handler(irq: int, dev: object) -> int:
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            # still a hardirq, and the enable did not run the softirq inside the handler
            inside.append((preempt_count(), len(ran)))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: ran.append(preempt_count()))
            request_irq(5, handler, 0, "bh", None)
            k.raise_irq(5)
            first = log_lines(k)
            k.raise_irq(5)
            k.raise_irq(5)
            later = log_lines(k)[len(first) :]
        assert inside == [(0x10000, 0), (0x10000, 1), (0x10000, 2)]
        # each raised softirq ran on irq_exit, after its handler
        assert ran == [0x100] * 3
        assert first.count("------------[ cut here ]------------") == 1
        assert [x for x in first if x.startswith("WARNING: CPU: 0 PID: 1 at ")] != []
        # later calls are silent
        assert later == []

    async def test_softirq_leaking_preempt_count_from_irq_exit(self) -> None:
        """CTX-11: an action leaving count 0x101 is reported ("huh, entered softirq") and fixed."""
        seen: list[int] = []

        def leaky() -> None:
            seen.append(preempt_count())
            spin_lock(SpinLock())  # never unlocked

        def handler(irq: int, dev: object) -> int:
            raise_softirq(NET_RX_SOFTIRQ)
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, leaky)
            request_irq(5, handler, 0, "leak", None)
            k.raise_irq(5)
            after = preempt_count()
            k.raise_irq(5)
        assert after == 0
        # the second run started from the restored count
        assert seen == [0x100, 0x100]
        huh = [x for x in log_lines(k) if x.startswith("huh, entered softirq")]
        assert len(huh) == 2
        assert huh[0].startswith("huh, entered softirq 3 NET_RX ")
        assert huh[0].endswith(" with preempt_count 00000100, exited with 00000101?")

    async def test_softirq_leaking_preempt_count_from_ksoftirqd(self) -> None:
        """CTX-11: the same leak in ksoftirqd is reported and ksoftirqd's count is restored."""
        seen: list[int] = []

        def leaky() -> None:
            seen.append(preempt_count())
            current().preempt_count += 1  # an unbalanced preempt_disable()

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(HI_SOFTIRQ, leaky)
            raise_softirq(HI_SOFTIRQ)
            await settle()
            raise_softirq(HI_SOFTIRQ)
            await settle()
        assert seen == [0x100, 0x100]
        huh = [x for x in log_lines(k) if x.startswith("huh, entered softirq 0 HI ")]
        assert len(huh) == 2
        assert all(x.endswith("with preempt_count 00000100, exited with 00000101?") for x in huh)

    async def test_softirq_leak_from_local_bh_enable(self) -> None:
        """CTX-11: from local_bh_enable the report shows 00000101 -> 00000102; the caller ends at 0."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: spin_lock(SpinLock()))
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            assert preempt_count() == 0
            assert not in_atomic()
        [huh] = [x for x in log_lines(k) if x.startswith("huh, entered softirq 3 NET_RX ")]
        assert huh.endswith(" with preempt_count 00000101, exited with 00000102?")

    async def test_timer_callback_leaking_preempt_count(self) -> None:
        """CTX-12: a timer callback leaking a level WARNs once (00000100 -> 00000101); restored."""
        seen: list[int] = []
        done = anyio.Event()

        def leaky(timer: TimerList) -> None:
            seen.append(preempt_count())
            spin_lock(SpinLock())
            done.set()

        async with Kernel(nr_cpus=2, hz=250) as k:
            timer = TimerList()
            timer_setup(timer, leaky, 0)
            for _ in range(2):
                done = anyio.Event()
                mod_timer(timer, k.jiffies + 1)
                with anyio.fail_after(TIMER_WAIT):
                    await done.wait()
        # the second run started from the restored count
        assert seen == [0x100, 0x100]
        leaks = [x for x in log_lines(k) if x.startswith("timer: ") and "preempt leak" in x]
        assert len(leaks) == 1
        assert "leaky+0x0/0x" in leaks[0]
        assert leaks[0].endswith(" preempt leak: 00000100 -> 00000101")
        assert log_lines(k).count("------------[ cut here ]------------") == 1


# ---------------------------------------------------------------------------------------------
# No kernel running
# ---------------------------------------------------------------------------------------------

PREDICATES: list[Callable[[], object]] = [
    in_interrupt,
    in_hardirq,
    in_softirq,
    in_serving_softirq,
    in_task,
    in_atomic,
    irqs_disabled,
    preempt_count,
    smp_processor_id,
    num_online_cpus,
    current,
    current_kernel,
    might_sleep,
    local_bh_disable,
    local_bh_enable,
]


class TestNoKernel:
    @pytest.mark.parametrize("fn", PREDICATES, ids=lambda fn: fn.__name__)
    async def test_outside_any_kernel(self, fn: Callable[[], object]) -> None:
        """Every context API called with no kernel raises NoKernelError (a RuntimeError)."""
        with pytest.raises(RuntimeError, match="no kdefer_async Kernel is running") as info:
            fn()
        assert isinstance(info.value, NoKernelError)

    async def test_after_the_kernel_exits(self) -> None:
        """After `async with Kernel()` ends, the context is gone again."""
        async with Kernel(nr_cpus=2, hz=250):
            assert in_task()
        with pytest.raises(NoKernelError):
            in_task()

    async def test_sleeping_api_without_kernel_creates_no_coroutine(self) -> None:
        """msleep() with no kernel raises NoKernelError at call time, naming the function."""
        with pytest.raises(NoKernelError, match=r"msleep\(\) needs a running kdefer_async Kernel"):
            kdefer_async.msleep(1)


class TestForeignThread:
    async def test_every_context_api_says_foreign_thread(self) -> None:
        """In a plain OS thread, while a kernel runs on the loop's thread, every context API
        raises a NoKernelError saying the thread is a foreign one; on the loop's thread,
        outside the kernel's context, the task enters the kernel instead (its only one)."""
        failures: dict[str, BaseException] = {}

        def call(fn: Callable[[], object]) -> None:
            try:
                fn()
            except BaseException as exc:
                failures[fn.__name__] = exc

        def in_thread() -> None:
            for fn in PREDICATES:
                call(fn)

        async with Kernel(nr_cpus=2, hz=250):
            thread = threading.Thread(target=in_thread, name="poller")
            thread.start()
            thread.join()  # the predicates never wait for the loop
            token = _current.set(None)
            try:
                assert in_task()  # entered as a user task of the one kernel on this loop
                entered = _current.get()
            finally:
                _current.reset(token)
            assert entered is not None
            assert not entered.is_kthread
        assert sorted(failures) == sorted(fn.__name__ for fn in PREDICATES)
        for exc in failures.values():
            assert isinstance(exc, NoKernelError)
            assert "this is a foreign thread ('poller'; this thread runs no event loop)" in str(exc)
            assert "Kernel.raise_irq_threadsafe(irq)" in str(exc)

    async def test_named_api_wording(self) -> None:
        """no_kernel_error(api) names the API first, then gives the same explanation."""
        async with Kernel(nr_cpus=2, hz=250):
            result: list[NoKernelError] = []
            thread = threading.Thread(target=lambda: result.append(no_kernel_error("msleep()")))
            thread.start()
            thread.join()
        assert str(result[0]).startswith(
            "msleep() needs a running kdefer_async Kernel, and none is running in this context: "
            "this is a foreign thread ("
        )
        assert str(no_kernel_error("msleep()")) == (
            "msleep() needs a running kdefer_async Kernel, and none is running in this context: "
            "call kernel APIs inside `async with Kernel():` or from kdefer_async.run()"
        )


class TestNmi:
    async def test_nmi_context(self) -> None:
        """CTX-05: a simulated NMI is in_nmi() and in_hardirq(), count >= 0x110000, even with
        local interrupts off; no softirqs run on its exit."""
        seen: list[tuple[bool, bool, bool, int]] = []

        def nmi() -> None:
            seen.append((in_nmi(), in_hardirq(), in_interrupt(), preempt_count()))
            raise_softirq(NET_RX_SOFTIRQ)

        ran: list[str] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: ran.append(current().comm))
            flags = local_irq_save()
            k.raise_nmi(nmi)
            local_irq_restore(flags)
            assert ran == []  # raised from NMI: left for ksoftirqd / the next irq exit
            k.raise_nmi(nmi, cpu=1)
            assert (in_nmi(), preempt_count()) == (False, 0)
        assert seen[0][:3] == (True, True, True)
        assert seen[0][3] >= 0x110000
        assert seen[1][3] == 0x110000

    async def test_nmi_handler_must_be_plain(self) -> None:
        """An async def NMI handler is refused at the call, a bad CPU too."""

        async def handler() -> None:
            pass

        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(TypeError, match="atomic"):
                k.raise_nmi(handler)
            with pytest.raises(ValueError, match="CPU"):
                k.raise_nmi(lambda: None, cpu=5)
