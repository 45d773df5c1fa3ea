"""Tests for ``kdefer_async._delay`` and ``kdefer_async._preempt``: busy-waits that interrupts
enter, preemption control and its debug checks, ``cond_resched()``, the soft-lockup watchdog.

Behaviours checked: BW-01 to BW-10, BW-12, BW-13 (kernel-semantics-2 §11.5); BW-11 (a handler
that enables interrupts) belongs to the threaded-interrupt tests. Nothing of BW-01 to BW-13 but
BW-11 is left out. Exact instants and counts are asserted on the virtual backends; on real time
the tests assert order and lower bounds.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import kdefer_async
from kdefer_async import (
    WQ_UNBOUND,
    Kernel,
    KernelBug,
    Tasklet,
    Work,
    alloc_workqueue,
    cond_resched,
    current,
    destroy_workqueue,
    flush_work,
    flush_workqueue,
    get_cpu,
    in_hardirq,
    irqs_disabled,
    kthread_bind,
    kthread_create,
    kthread_stop,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    mdelay,
    migrate_disable,
    migrate_enable,
    ndelay,
    preempt_count,
    preempt_disable,
    preempt_enable,
    preemptible,
    put_cpu,
    queue_work,
    queue_work_on,
    raw_smp_processor_id,
    request_irq,
    smp_processor_id,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    system_percpu_wq,
    tasklet_schedule,
    udelay,
    wake_up_process,
)
from kdefer_async._locking import SpinLock
from kdefer_async._preempt import is_percpu_thread
from kdefer_async.testing import settle
from tests.helpers import at_tick, logged

pytestmark = pytest.mark.anyio

MS = 1_000_000  # ns


def loc(k: Kernel, cpu: int = 0) -> int:
    """CPU *cpu*'s local timer interrupts so far (the LOC row of /proc/interrupts)."""
    return k.loc_interrupts[cpu]


def lines(k: Kernel, text: str) -> list[str]:
    return [line for line in k.dmesg() if text in line]


class Events:
    """What ran, in order, with where and when."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.log: list[tuple[str, str, int, int]] = []  # (what, comm, ktime, loc)

    def note(self, what: str) -> None:
        self.log.append((what, current().comm, self.k.get_ktime(), loc(self.k)))

    def names(self) -> list[str]:
        return [e[0] for e in self.log]

    def tasklet(self, what: str, also: Callable[[], object] | None = None) -> Tasklet:
        def fn(_t: Tasklet) -> None:
            self.note(what)
            if also is not None:
                also()

        return Tasklet(fn)


# -- busy-waits -----------------------------------------------------------------------------------


class TestDelays:
    async def test_mdelay_takes_the_ticks_and_runs_timers(self, virtual: bool) -> None:
        """BW-01: mdelay(8) with IRQs on: T +8 ms, J +2, two local timer interrupts during it,
        and a timer of CPU 0 due inside the window runs before mdelay returns."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            ev = Events(k)
            at_tick(k, 1, lambda: ev.note("timer"))
            t0, j0, loc0 = k.get_ktime(), k.jiffies, loc(k)
            mdelay(8)
            ev.note("returned")
            assert ev.names() == ["timer", "returned"]
            assert ev.log[0][1] == "init"  # the timer softirq borrowed the spinning task
            if virtual:
                assert k.get_ktime() - t0 == 8 * MS
                assert k.jiffies == j0 + 2
                assert loc(k) - loc0 == 2
                assert ev.log[0][2] - t0 == 4 * MS
            else:
                assert k.get_ktime() - t0 >= 8 * MS
                assert k.jiffies >= j0 + 2
                assert loc(k) - loc0 >= 1  # a late tick stands for every boundary it missed
            assert loc(k, 1) == 0  # the other CPU is idle: tickless

    async def test_tasklet_runs_at_the_first_tick_in_the_busy_task(self, virtual: bool) -> None:
        """BW-02: a tasklet scheduled from task context runs inside the following mdelay(8),
        at the first tick's irq exit (within 4 ms), with current() the busy-waiting task."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            ev = Events(k)
            t0 = k.get_ktime()
            tasklet_schedule(ev.tasklet("tasklet"))
            mdelay(8)
            ev.note("returned")
            assert ev.names() == ["tasklet", "returned"]
            assert ev.log[0][1] == "init"  # not ksoftirqd/0
            if virtual:
                assert ev.log[0][2] - t0 <= 4 * MS
            await settle()
            assert ev.names() == ["tasklet", "returned"]  # once

    async def test_bh_disabled_tasklet_waits_for_local_bh_enable(self, virtual: bool) -> None:
        """BW-03: inside local_bh_disable() the ticks still come, but the tasklet runs only in
        the matching local_bh_enable()."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            ev = Events(k)
            loc0 = loc(k)
            local_bh_disable()
            tasklet_schedule(ev.tasklet("tasklet"))
            mdelay(8)
            ev.note("returned")
            # (on real time a late tick stands for every jiffy boundary it was late for)
            assert loc(k) - loc0 == 2 if virtual else loc(k) - loc0 >= 1
            local_bh_enable()
            ev.note("enabled")
            assert ev.names() == ["returned", "tasklet", "enabled"]
            assert ev.log[1][1] == "init"

    async def test_irqs_off_hold_one_tick(self, virtual: bool) -> None:
        """BW-04: with IRQs disabled no tick and no tasklet during mdelay(8); local_irq_enable()
        takes exactly one tick, the tasklet runs at its exit, and jiffies is J+2."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            ev = Events(k)
            at_tick(k, 1, lambda: ev.note("timer"))
            j0, loc0 = k.jiffies, loc(k)
            local_irq_disable()
            tasklet_schedule(ev.tasklet("tasklet"))
            mdelay(8)
            ev.note("returned")
            assert loc(k) == loc0
            local_irq_enable()
            ev.note("enabled")
            assert loc(k) - loc0 == 1
            assert ev.names() == ["returned", "timer", "tasklet", "enabled"]
            assert ev.log[2][3] == loc0 + 1  # at the exit of that one tick
            assert k.jiffies == j0 + 2 if virtual else k.jiffies >= j0 + 2

    async def test_short_delays(self, virtual: bool) -> None:
        """BW-05: ndelay(500) takes 500 ns and no jiffy; udelay(1000) takes 1 ms."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            t0, j0 = k.get_ktime(), k.jiffies
            ndelay(500)
            if virtual:
                assert k.get_ktime() - t0 == 500
                assert k.jiffies == j0
            else:
                assert k.get_ktime() - t0 >= 500
            t1 = k.get_ktime()
            udelay(1000)
            assert k.get_ktime() - t1 == MS if virtual else k.get_ktime() - t1 >= MS
            t2 = k.get_ktime()
            mdelay(0)
            udelay(0)
            ndelay(0)
            assert k.get_ktime() == t2 if virtual else True

    async def test_nested_delay_in_a_tasklet(self, virtual: bool) -> None:
        """A tasklet that mdelays inside a spin spins on: the tick during it runs no nested
        softirq, the pass is over its time budget (MAX_SOFTIRQ_TIME) so the tasklet it
        scheduled goes to ksoftirqd, which runs only after the delay returns; the outer spin
        returns once the clock is past its end."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            ev = Events(k)
            inner = ev.tasklet("inner")

            def outer_fn() -> None:
                tasklet_schedule(inner)
                mdelay(6)
                ev.note("outer done")

            t0, loc0 = k.get_ktime(), loc(k)
            tasklet_schedule(ev.tasklet("outer", outer_fn))
            mdelay(8)
            ev.note("returned")
            assert ev.names() == ["outer", "outer done", "returned"]
            assert {e[1] for e in ev.log} == {"init"}
            await settle()
            assert ev.names() == ["outer", "outer done", "returned", "inner"]
            assert ev.log[3][1] == "ksoftirqd/0"
            if virtual:
                assert ev.log[0][2] - t0 == 4 * MS
                assert ev.log[1][3] - loc0 == 2  # the 8 ms tick came during the inner spin
                assert ev.log[2][2] - t0 == 10 * MS
                assert ev.log[2][3] - loc0 == 2
            else:
                assert ev.log[2][2] - t0 >= 8 * MS
                assert ev.log[2][2] - ev.log[0][2] >= 6 * MS

    async def test_delay_in_a_hardirq_handler_holds_the_tick(self, virtual: bool) -> None:
        """A handler spinning 8 ms (IRQs off) takes no tick during it; the one held tick comes
        after the handler, at its exit, with the softirqs."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            ev = Events(k)

            def handler(_irq: int, _dev: object) -> int:
                ev.note("handler")
                tasklet_schedule(ev.tasklet("tasklet"))
                mdelay(8)
                ev.note("handler done")
                return kdefer_async.IRQ_HANDLED

            assert request_irq(10, handler, 0, "spinner", None) == 0
            loc0 = loc(k)
            k.raise_irq(10)
            ev.note("returned")
            assert ev.names() == ["handler", "handler done", "tasklet", "returned"]
            assert ev.log[1][3] == loc0
            assert loc(k) - loc0 == 1

    async def test_interrupt_raised_before_the_spin_enters_it(self, virtual: bool) -> None:
        """An interrupt raised from a thread and not delivered yet enters a spin on its CPU,
        nested in the busy task, with its softirqs at its exit."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            ev = Events(k)
            seen: list[tuple[bool, bool]] = []

            def handler(_irq: int, _dev: object) -> int:
                ev.note("handler")
                seen.append((in_hardirq(), irqs_disabled()))
                tasklet_schedule(ev.tasklet("tasklet"))
                return kdefer_async.IRQ_HANDLED

            assert request_irq(11, handler, 0, "dev", None) == 0
            k.raise_irq_threadsafe(11, 0)  # queued: the loop delivers it when it next runs
            mdelay(2)
            ev.note("returned")
            assert ev.names() == ["handler", "tasklet", "returned"]
            assert {e[1] for e in ev.log} == {"init"}
            assert seen == [(True, True)]

    async def test_interrupt_from_a_thread_during_the_spin(self, virtual: bool) -> None:
        """An interrupt a thread raises while the CPU spins (real time) runs in the spin."""
        if virtual:
            pytest.skip("a virtual spin takes no wall time for a thread to raise in")
        async with Kernel(nr_cpus=1, hz=250) as k:
            ev = Events(k)
            assert request_irq(12, lambda _i, _d: ev.note("handler"), 0, "dev", None) == 0
            go = threading.Event()

            def device() -> None:
                go.wait(5)
                time.sleep(0.02)
                k.raise_irq_threadsafe(12, 0)

            thread = threading.Thread(target=device)
            thread.start()
            go.set()
            mdelay(500)
            ev.note("returned")
            thread.join()
            assert ev.names() == ["handler", "returned"]
            assert ev.log[0][1] == "init"

    async def test_spinning_work_item_is_charged_its_spin(self, virtual: bool) -> None:
        """A work item's busy-wait counts as run time (the CPU-hog detection), virtual too."""
        async with Kernel(nr_cpus=1, hz=250, wq_cpu_intensive_thresh_us=5000) as k:
            wq = alloc_workqueue("hogq", 0, 0)
            w = Work(lambda _w: mdelay(6))
            queue_work(wq, w)
            await flush_work(w)
            assert k.wq_stats()["hogq"]["CPUitsv"] == 1
            await destroy_workqueue(wq)


class TestAcceptance:
    """The issue's acceptance test: a module's tasklet runs inside its init's mdelay."""

    MODULE = (
        "from kdefer_async import *\n"
        "def fn(t):\n"
        "    printk(KERN_INFO + 'tasklet: first line\\n')\n"
        "t = Tasklet(fn)\n"
        "@module_init\n"
        "def onload():\n"
        "    tasklet_schedule(t)\n"
        "    mdelay({ms})\n"
        "    printk(KERN_INFO + 'init: after mdelay\\n')\n"
        "    return 0\n"
        "@module_exit\n"
        "async def onunload():\n"
        "    await tasklet_kill(t)\n"
        "MODULE_LICENSE('GPL')\n"
    )

    async def test_module_tasklet_runs_inside_init_mdelay(self, tmp_path: Path) -> None:
        """Acceptance: insmod of a module whose init schedules a tasklet and then mdelay(200)s
        prints the tasklet's first line before init's next line, on every backend."""
        path = tmp_path / "busy_tasklet.py"
        path.write_text(self.MODULE.format(ms=200))
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert await k.insmod(path) == 0
            text = [line.split("] ", 1)[1] for line in k.dmesg()]
            assert text.index("tasklet: first line") < text.index("init: after mdelay")
            await k.rmmod("busy_tasklet")

    async def test_mdelay_moves_the_dmesg_stamp(self, tmp_path: Path, virtual: bool) -> None:
        """Acceptance: in virtual time an mdelay(5000) moves the dmesg stamp by at least 5 s."""
        if not virtual:
            pytest.skip("a five-second spin is only affordable on virtual time")
        path = tmp_path / "busy_tasklet.py"
        path.write_text(self.MODULE.format(ms=5000))
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert await k.insmod(path) == 0
            stamps = {
                line.split("] ", 1)[1]: float(line[1:].split("]", 1)[0]) for line in k.dmesg()
            }
            assert stamps["init: after mdelay"] - stamps["tasklet: first line"] >= 4.99
            assert stamps["init: after mdelay"] >= 5.0
            await k.rmmod("busy_tasklet")


# -- preemption and interrupt control -------------------------------------------------------------


class TestPreempt:
    async def test_preempt_count_nests(self) -> None:
        """BW-06: two preempt_disable() make the count 2 and the task not preemptible; two
        preempt_enable() bring it back."""
        async with Kernel(nr_cpus=1, hz=250):
            assert preemptible()
            preempt_disable()
            preempt_disable()
            assert preempt_count() & 0xFF == 2
            assert not preemptible()
            preempt_enable()
            assert not preemptible()
            preempt_enable()
            assert preempt_count() == 0
            assert preemptible()

    async def test_unbalanced_preempt_enable_warns_once(self) -> None:
        """BW-07 (debug): preempt_enable() at count 0 warns DEBUG_LOCKS_WARN_ON(val >
        preempt_count()) and changes nothing; a second one prints nothing."""
        async with Kernel(nr_cpus=1, hz=250, debug_preempt=True) as k:
            preempt_enable()
            assert preempt_count() == 0
            assert logged(k, "DEBUG_LOCKS_WARN_ON(val > preempt_count())") == 1
            assert logged(k, "WARNING: CPU: 0 PID: 1 at ") == 1
            preempt_enable()
            assert logged(k, "DEBUG_LOCKS_WARN_ON") == 1
            assert preempt_count() == 0

    async def test_unbalanced_preempt_enable_in_bh_section(self) -> None:
        """(debug) preempt_enable() with only bottom halves disabled: the second check of
        preempt_count_sub warns, and the count is unchanged."""
        async with Kernel(nr_cpus=1, hz=250, debug_preempt=True) as k:
            local_bh_disable()
            preempt_enable()
            assert preempt_count() == 0x200
            local_bh_enable()
            assert (
                logged(k, "DEBUG_LOCKS_WARN_ON((val < PREEMPT_MASK) && !(preempt_count() & ") == 1
            )

    async def test_unbalanced_preempt_enable_without_debug_is_silent(self) -> None:
        """Without debug_preempt an unbalanced preempt_enable() prints nothing."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            preempt_enable()
            assert preempt_count() == 0
            assert logged(k, "DEBUG_LOCKS_WARN_ON") == 0

    async def test_preempt_count_near_overflow_warns(self) -> None:
        """(debug) nesting preempt_disable() up to PREEMPT_MASK - 10 warns once."""
        async with Kernel(nr_cpus=1, hz=250, debug_preempt=True) as k:
            for _ in range(0xFF - 10):
                preempt_disable()
            assert logged(k, "DEBUG_LOCKS_WARN_ON((preempt_count() & PREEMPT_MASK) >= ") == 1
            for _ in range(0xFF - 10):
                preempt_enable()
            assert preempt_count() == 0

    async def test_get_cpu_is_silent(self) -> None:
        """BW-08: get_cpu() returns smp_processor_id() with the count +1; put_cpu() undoes it;
        no preemptible report in between (debug on)."""
        async with Kernel(nr_cpus=2, hz=250, debug_preempt=True) as k:
            me = raw_smp_processor_id()
            cpu = get_cpu()
            assert preempt_count() == 1
            assert cpu == smp_processor_id() == me
            put_cpu()
            assert preempt_count() == 0
            assert logged(k, "BUG: using smp_processor_id()") == 0

    async def test_local_irq_disable_does_not_nest(self) -> None:
        """BW-10: two local_irq_disable() and one local_irq_enable() leave IRQs on; while they
        are off the task is not preemptible."""
        async with Kernel(nr_cpus=1, hz=250):
            local_irq_disable()
            local_irq_disable()
            assert irqs_disabled()
            assert not preemptible()
            local_irq_enable()
            assert not irqs_disabled()
            assert preemptible()

    async def test_migrate_disable_nests(self) -> None:
        """migrate_disable() nests and keeps the task preemptible; an extra enable warns."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            migrate_disable()
            migrate_disable()
            assert preemptible()
            assert current().migration_disabled == 2
            migrate_enable()
            migrate_enable()
            assert current().migration_disabled == 0
            assert logged(k, "cut here") == 0
            migrate_enable()
            assert logged(k, "cut here") == 1


class TestSmpProcessorIdCheck:
    async def test_report_in_a_preemptible_task(self) -> None:
        """BW-09 (debug): smp_processor_id() in a plain preemptible task reports the BUG line
        with the count, comm and pid, then the caller and a stack dump."""
        async with Kernel(nr_cpus=2, hz=250, debug_preempt=True) as k:
            assert smp_processor_id() == 0
            log = [line.split("] ", 1)[1] for line in k.dmesg()]
            i = log.index("BUG: using smp_processor_id() in preemptible [00000000] code: init/1")
            assert re.fullmatch(
                r"caller is (TestSmpProcessorIdCheck\.)?test_report_in_a_preemptible_task\+0x[0-9a-f]+/0x[0-9a-f]+",
                log[i + 1],
            )
            assert log[i + 2].startswith("CPU: 0 UID: 0 PID: 1 Comm: init")
            assert "Call Trace:" in log[i + 2 :]

    async def test_no_report_when_off(self) -> None:
        """Without debug_preempt smp_processor_id() never reports."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            smp_processor_id()
            assert logged(k, "BUG: using") == 0

    async def test_exempt_contexts(self) -> None:
        """BW-09 (debug): no report under preempt_disable(), spin_lock, local_irq_disable(),
        with migration disabled, in a hardirq handler or a softirq."""
        async with Kernel(nr_cpus=1, hz=250, debug_preempt=True) as k:
            preempt_disable()
            smp_processor_id()
            preempt_enable()
            lock = SpinLock()
            spin_lock_init(lock)
            spin_lock(lock)
            smp_processor_id()
            spin_unlock(lock)
            local_irq_disable()
            smp_processor_id()
            local_irq_enable()
            migrate_disable()
            smp_processor_id()
            migrate_enable()
            request_irq(13, lambda _i, _d: smp_processor_id(), 0, "dev", None)
            k.raise_irq(13)
            ran: list[str] = []
            tasklet_schedule(Tasklet(lambda _t: ran.append(str(smp_processor_id()))))
            await settle()
            assert ran == ["0"]
            assert logged(k, "BUG: using") == 0

    async def test_per_cpu_threads_are_exempt(self) -> None:
        """BW-09 (debug): ksoftirqd and per-CPU kworkers are per-CPU threads; an item on a
        per-CPU wq and a kthread after kthread_bind() do not report; an unbound kworker and a
        kthread never bound do."""
        async with Kernel(nr_cpus=2, hz=250, debug_preempt=True) as k:
            assert is_percpu_thread(k.cpus[1].ksoftirqd)
            assert is_percpu_thread(k.cpus[0].swapper)
            comms: list[str] = []

            def fn(_w: Work) -> None:
                comms.append(current().comm)
                smp_processor_id()

            w = Work(fn)
            queue_work_on(1, system_percpu_wq, w)
            await flush_work(w)
            assert logged(k, "BUG: using") == 0

            async def thread(_data: object) -> int:
                comms.append(current().comm)
                smp_processor_id()
                return 0

            bound = kthread_create(thread, None, "bound/%d", 1)
            kthread_bind(bound, 1)
            wake_up_process(bound)
            await settle()  # it has run
            await kthread_stop(bound)
            assert logged(k, "BUG: using") == 0

            wq = alloc_workqueue("unb", WQ_UNBOUND, 0)
            queue_work(wq, Work(fn))
            await flush_workqueue(wq)
            await destroy_workqueue(wq)
            free = kthread_create(thread, None, "free")
            wake_up_process(free)
            await settle()
            await kthread_stop(free)
            reports = lines(k, "BUG: using smp_processor_id() in preemptible")
            assert len(reports) == 2
            assert re.search(r"code: kworker/u\d+:\d+/\d+$", reports[0])
            assert reports[1].endswith(f"code: free/{free.pid}")
            assert re.fullmatch(r"kworker/1:\d+", comms[0])
            assert comms[1:] == ["bound/1", comms[2], "free"]

    async def test_reports_are_rate_limited(self, virtual: bool) -> None:
        """BW-09 (debug): 20 violations within a second give 10 reports (printk_ratelimit);
        once 5 s have passed the next one names the 10 suppressed first."""
        async with Kernel(nr_cpus=1, hz=250, debug_preempt=True) as k:
            for _ in range(20):
                smp_processor_id()
            assert logged(k, "BUG: using smp_processor_id()") == 10
            if not virtual:
                return
            await anyio.sleep(5.1)
            smp_processor_id()
            assert logged(k, "BUG: using smp_processor_id()") == 11
            log = [line.split("] ", 1)[1] for line in k.dmesg()]
            i = log.index("check_preemption_disabled: 10 callbacks suppressed")
            assert log[i + 1].startswith("BUG: using smp_processor_id()")


# -- cond_resched ---------------------------------------------------------------------------------


class TestCondResched:
    async def test_lets_a_queued_work_item_run(self) -> None:
        """BW-12: cond_resched() in a loop on CPU 0 while an item is queued on CPU 0's per-CPU
        workqueue: the item completes during the loop, and cond_resched() returned 1."""
        async with Kernel(nr_cpus=2, hz=250):
            done: list[int] = []
            queue_work_on(0, system_percpu_wq, Work(lambda _w: done.append(1)))
            results = []
            for _ in range(500):
                results.append(await cond_resched())
                if done:
                    break
            assert done == [1]
            assert 1 in results

    async def test_returns_0_when_nothing_waits(self) -> None:
        """cond_resched() in a quiet kernel lets nobody run: 0."""
        async with Kernel(nr_cpus=1, hz=250):
            await settle()
            assert await cond_resched() == 0

    async def test_returns_1_when_another_task_is_ready(self) -> None:
        """A task made ready just before cond_resched() runs in it: 1."""
        async with Kernel(nr_cpus=1, hz=250):
            await settle()
            ran: list[int] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _append(ran))
                assert await cond_resched() == 1
                assert ran == [1]

    async def test_under_a_spinlock_is_a_bug(self) -> None:
        """BW-12: cond_resched() under spin_lock is "sleeping function called from invalid
        context" (KernelBug by default, at the call)."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            lock = SpinLock()
            spin_lock_init(lock)
            spin_lock(lock)
            with pytest.raises(KernelBug, match=r"^cond_resched\(\) called in atomic context"):
                cond_resched()
            spin_unlock(lock)
            assert logged(k, "BUG: sleeping function called from invalid context at ") == 1

    async def test_under_a_spinlock_reports_and_returns_0(self) -> None:
        """With sleep_in_atomic="report", cond_resched() under a spinlock reports, does not
        schedule and returns 0."""
        async with Kernel(nr_cpus=1, hz=250, sleep_in_atomic="report") as k:
            lock = SpinLock()
            spin_lock_init(lock)
            spin_lock(lock)
            assert await cond_resched() == 0
            spin_unlock(lock)
            assert logged(k, "BUG: sleeping function called from invalid context at ") == 1
            assert logged(k, "preempt_count: 1, expected: 0") == 1


async def _append(out: list[int]) -> None:
    out.append(1)


# -- soft lockup ----------------------------------------------------------------------------------


class TestSoftLockup:
    async def test_non_preemptible_spin_is_reported_once(self, virtual: bool) -> None:
        """BW-13: preempt_disable(); mdelay(25000) with IRQs on: one soft-lockup report during
        the delay, stuck for more than 20 s, naming the task; taint L."""
        if not virtual:
            pytest.skip("a 25 s spin is only affordable on virtual time")
        async with Kernel(nr_cpus=2, hz=250) as k:
            ev = Events(k)
            preempt_disable()
            mdelay(25000)
            preempt_enable()
            ev.note("returned")
            reports = lines(k, "watchdog: BUG: soft lockup")
            assert len(reports) == 1
            m = re.search(
                r"watchdog: BUG: soft lockup - CPU#0 stuck for (\d+)s! \[init:1\]$", reports[0]
            )
            assert m is not None
            assert int(m[1]) > 20
            stamp = float(reports[0][1:].split("]", 1)[0])
            assert 20 < stamp < 25.0
            assert logged(k, "Tainted: [L]=SOFTLOCKUP") == 0  # added after the report
            assert "L" in k._taint

    async def test_reported_again_each_period(self, virtual: bool) -> None:
        """A CPU stuck for 50 s is reported twice, one lockup period apart, the second time
        with the longer duration."""
        if not virtual:
            pytest.skip("a 50 s spin is only affordable on virtual time")
        async with Kernel(nr_cpus=1, hz=100) as k:
            local_bh_disable()
            mdelay(50000)
            local_bh_enable()
            got = [
                int(m[1])
                for line in lines(k, "soft lockup")
                if (m := re.search(r"stuck for (\d+)s!", line))
            ]
            assert len(got) == 2
            assert 20 < got[0] < got[1]

    async def test_preemptible_spin_and_disabled_watchdog_are_silent(self, virtual: bool) -> None:
        """A preemptible spin lets the stopper run; watchdog_thresh=0 disables the watchdog."""
        if not virtual:
            pytest.skip("a 25 s spin is only affordable on virtual time")
        async with Kernel(nr_cpus=1, hz=250) as k:
            mdelay(25000)
            assert logged(k, "soft lockup") == 0
        async with Kernel(nr_cpus=1, hz=250, watchdog_thresh=0) as k:
            preempt_disable()
            mdelay(25000)
            preempt_enable()
            assert logged(k, "soft lockup") == 0

    async def test_short_threshold_and_spins_that_add_up(self, virtual: bool) -> None:
        """Non-preemptible spins with no scheduling point between them add up to a lockup; an
        await between them lets the stopper run (watchdog_thresh=1: more than 2 s)."""
        if not virtual:
            pytest.skip("seconds of spinning are only affordable on virtual time")
        async with Kernel(nr_cpus=1, hz=250, watchdog_thresh=1) as k:
            for _ in range(8):
                preempt_disable()
                mdelay(500)
                preempt_enable()
                await anyio.lowlevel.checkpoint()
            assert logged(k, "soft lockup") == 0
            for _ in range(8):
                preempt_disable()
                mdelay(500)
                preempt_enable()
            assert logged(k, "watchdog: BUG: soft lockup - CPU#0 stuck for ") == 1


# -- arguments ------------------------------------------------------------------------------------


class TestArguments:
    @pytest.mark.parametrize(
        ("call", "param"), [(mdelay, "ms"), (udelay, "us"), (ndelay, "ns")], ids=["m", "u", "n"]
    )
    async def test_delays(self, call: Callable[[object], None], param: str) -> None:
        """The delays take an unsigned long; nothing spins on a bad one."""
        async with Kernel(nr_cpus=1, hz=250):
            name = call.__name__
            with pytest.raises(
                ValueError,
                match=rf"^{name}\(\) expects an unsigned long \(0 to {2**64 - 1}\) for "
                rf"'{param}', got {2**64}$",
            ):
                call(2**64)
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects an int for '{param}', got bool$"
            ):
                call(True)

    async def test_cond_resched_takes_no_arguments(self) -> None:
        """cond_resched(1) is a TypeError at the call."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError, match=r"^cond_resched\(\) takes 0 positional arguments but 1 was given$"
            ):
                cond_resched(1)  # type: ignore[call-arg]

    def test_kernel_options(self) -> None:
        """Kernel(watchdog_thresh=...) is an int from 0 to 60; debug_preempt a bool."""
        with pytest.raises(
            ValueError,
            match=r"^Kernel\(\) expects a number of seconds from 0 to 60 \(0 disables the "
            r"watchdog\) for 'watchdog_thresh', got 61$",
        ):
            Kernel(watchdog_thresh=61)
        with pytest.raises(
            TypeError, match=r"^Kernel\(\) expects an int for 'watchdog_thresh', got float$"
        ):
            Kernel(watchdog_thresh=1.5)  # type: ignore[arg-type]
        with pytest.raises(
            TypeError, match=r"^Kernel\(\) expects a bool for 'debug_preempt', got int$"
        ):
            Kernel(debug_preempt=1)  # type: ignore[arg-type]


class TestWallTime:
    async def test_a_delay_never_returns_early_on_the_real_clock(self, virtual: bool) -> None:
        """BW-05 on the real clock: udelay(300) lasts at least 300 us of wall time, every time,
        whatever the resolution of the loop's clock (uvloop's counts whole milliseconds)."""
        if virtual:
            pytest.skip("a virtual clock moves by the delay and takes no wall time")
        async with Kernel(nr_cpus=1, hz=250):
            took = []
            for _ in range(500):
                t = time.perf_counter()
                kdefer_async.udelay(300)
                took.append(time.perf_counter() - t)
            assert min(took) >= 300e-6
