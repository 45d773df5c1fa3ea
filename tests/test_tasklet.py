"""Tasklets: kernel-semantics §3 and the TL behaviours of §6.3, on every backend.

Tasklets run from the HI and TASKLET softirqs. A test reaches them in three ways: scheduling
from the test task (init, plain task context on CPU 0), which wakes ksoftirqd; scheduling inside
a ``local_bh_disable()`` section, which runs them inline at ``local_bh_enable()``; and scheduling
from an interrupt handler raised with ``k.raise_irq(irq, cpu=n)``, which runs them on irq exit
on CPU *n*. A callback runs synchronously, so two CPUs are only ever "concurrent" by nesting:
a callback running on one CPU raises an interrupt on the other.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from helpers import softirqs_done
from hypothesis import given, settings, strategies as st

import kdefer_async
from kdefer_async import (
    DECLARE_TASKLET,
    DECLARE_TASKLET_DISABLED,
    DECLARE_TASKLET_OLD,
    IRQ_HANDLED,
    MAX_SOFTIRQ_RESTART,
    TASKLET_SOFTIRQ,
    TASKLET_STATE_RUN,
    TASKLET_STATE_SCHED,
    Completion,
    Kernel,
    KernelBug,
    KernelPanic,
    Tasklet,
    TimerList,
    complete,
    current,
    current_kernel,
    in_serving_softirq,
    in_task,
    local_bh_disable,
    local_bh_enable,
    local_softirq_pending,
    mod_timer,
    msleep,
    request_irq,
    smp_processor_id,
    tasklet_disable,
    tasklet_disable_in_atomic,
    tasklet_disable_nosync,
    tasklet_enable,
    tasklet_hi_schedule,
    tasklet_init,
    tasklet_kill,
    tasklet_schedule,
    tasklet_setup,
    tasklet_unlock_spin_wait,
    tasklet_unlock_wait,
    wait_for_completion,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

IRQ_A = 10
IRQ_B = 11


# --- helpers --------------------------------------------------------------------------------


def sched_bit(t: Tasklet) -> int:
    """``test_bit(TASKLET_STATE_SCHED, &t->state)``."""
    return t.state >> TASKLET_STATE_SCHED & 1


def run_bit(t: Tasklet) -> int:
    """``test_bit(TASKLET_STATE_RUN, &t->state)``."""
    return t.state >> TASKLET_STATE_RUN & 1


def softirq_row(k: Kernel, name: str) -> list[int]:
    """The per-CPU counts of one vector's row of /proc/softirqs."""
    for line in k.proc_softirqs().splitlines():
        label, _, counts = line.partition(":")
        if label.strip() == name:
            return [int(n) for n in counts.split()]
    raise AssertionError(f"no {name} row in /proc/softirqs")


def find_line(k: Kernel, text: str) -> int:
    """Index of the first dmesg line containing *text* (AssertionError if there is none)."""
    for i, line in enumerate(k.dmesg()):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not in dmesg:\n" + "\n".join(k.dmesg()))


def guard(virtual: bool) -> anyio.CancelScope:
    """A deadline for a wait that must end, so that a regression fails instead of hanging.

    Only a broken library reaches it: the waits it guards end on a completion, not on the
    clock. On the real clock it allows for a busy machine (another process may hold the CPU
    for a good part of a second); in virtual time a second of model time is plenty.
    """
    return anyio.fail_after(1.0 if virtual else 5.0)


def irq_handler(action: Callable[[], object]) -> Callable[[int, object], int]:
    """An interrupt handler that calls *action* and claims the interrupt."""

    def handler(irq: int, dev: object) -> int:
        action()
        return IRQ_HANDLED

    return handler


async def run_tasklet_once(
    k: Kernel, callback: Callable[[Tasklet], object], *, via_ksoftirqd: bool = False
) -> None:
    """Boot *k* and run one tasklet: inline at ``local_bh_enable()``, or in ksoftirqd/0."""
    async with k:
        t = Tasklet(callback)
        if via_ksoftirqd:
            tasklet_schedule(t)
            await settle()
        else:
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()


class Recorder:
    """A tasklet callback that records every run: CPU, borrowed task, context."""

    def __init__(self, body: Callable[[Tasklet], object] | None = None) -> None:
        self.runs: list[tuple[int, str]] = []
        self.args: list[object] = []
        self.depth = 0
        self.max_depth = 0
        self.body = body

    def __call__(self, arg: Any) -> None:
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)
        try:
            assert in_serving_softirq()
            assert not in_task()
            self.runs.append((smp_processor_id(), current().comm))
            self.args.append(arg)
            if self.body is not None:
                self.body(arg)
        finally:
            self.depth -= 1


# --- the guarantees of the Tasklet module docstring -----------------------------------------


class TestGuarantees:
    async def test_schedule_while_pending_runs_once(self) -> None:
        """TL-01: two schedules before the run coalesce into one run."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = Tasklet(rec)
            tasklet_schedule(t)
            tasklet_schedule(t)
            assert sched_bit(t) == 1
            await settle()
            assert rec.runs == [(0, "ksoftirqd/0")]
            assert t.state == 0

    async def test_reschedule_from_callback_runs_again(self) -> None:
        """TL-02: a schedule from inside the callback runs it exactly once more, afterwards."""
        events: list[str] = []
        bits: list[tuple[int, int]] = []

        def body(t: Tasklet) -> None:
            n = len(rec.runs)
            events.append(f"enter{n}")
            if n == 1:
                tasklet_schedule(t)
                bits.append((sched_bit(t), run_bit(t)))
            events.append(f"exit{n}")

        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder(body)
            t = Tasklet(rec)
            tasklet_schedule(t)
            await settle()
        assert events == ["enter1", "exit1", "enter2", "exit2"]
        assert bits == [(1, 1)]
        assert rec.max_depth == 1
        assert t.state == 0

    async def test_serialized_wrt_itself(self, virtual: bool) -> None:
        """While it runs on CPU 0, a schedule on CPU 1 makes CPU 1 re-poll, never run it nested."""

        def body(t: Tasklet) -> None:
            if len(rec.runs) == 1:
                before = softirq_row(k, "HI")[1]
                k.raise_irq(IRQ_A, cpu=1)  # schedules t on CPU 1's HI list
                polls = softirq_row(k, "HI")[1] - before
                assert polls == MAX_SOFTIRQ_RESTART if virtual else 1 <= polls <= 10
                assert (sched_bit(t), run_bit(t)) == (1, 1)
                assert len(rec.runs) == 1

        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder(body)
            t = Tasklet(rec)
            request_irq(IRQ_A, irq_handler(lambda: tasklet_hi_schedule(t)), 0, "a", None)
            tasklet_schedule(t)
            await settle()
            assert rec.runs == [(0, "ksoftirqd/0"), (1, "ksoftirqd/1")]
            assert rec.max_depth == 1
            assert t.state == 0

    async def test_fifo_per_cpu(self) -> None:
        """TL-10: one CPU runs its tasklets in scheduling order, not creation order."""
        order: list[str] = []
        async with Kernel(nr_cpus=2, hz=250):
            ts = {name: Tasklet(order.append, name) for name in "ABCDE"}
            for name in "ABC":
                tasklet_schedule(ts[name])
            await settle()
            assert order == ["A", "B", "C"]
            for name in "ECADB":
                tasklet_schedule(ts[name])
            await settle()
            assert order == ["A", "B", "C", "E", "C", "A", "D", "B"]

    async def test_disabled_tasklet_does_not_run(self, virtual: bool) -> None:
        """TL-06: a scheduled, disabled tasklet stays scheduled; after enable it runs once."""
        done = Completion()
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder(lambda t: complete(done))
            t = Tasklet(rec)
            tasklet_disable_nosync(t)
            tasklet_schedule(t)
            await msleep(8)
            assert rec.runs == []
            assert sched_bit(t) == 1
            assert local_softirq_pending() >> TASKLET_SOFTIRQ & 1
            j = k.jiffies
            tasklet_enable(t)
            with guard(virtual):
                await wait_for_completion(done)
            assert k.jiffies <= j + 1 if virtual else k.jiffies >= j
            await settle()
            assert rec.runs == [(0, "ksoftirqd/0")]
            assert t.state == 0


# --- initialisation: TL-03, TL-04, TL-05 ----------------------------------------------------


class TestInit:
    async def test_empty_tasklet_then_tasklet_setup(self) -> None:
        """TL-05: Tasklet() is empty; after tasklet_setup the callback receives the tasklet."""
        async with Kernel(nr_cpus=2, hz=250):
            t = Tasklet()
            assert (t.state, t.count, t.func, t.callback) == (0, 0, None, None)
            rec = Recorder()
            tasklet_setup(t, rec)
            assert t.callback is rec
            assert t.count == 0
            tasklet_schedule(t)
            await settle()
            assert rec.args == [t]

    async def test_empty_tasklet_then_tasklet_init(self) -> None:
        """TL-05: tasklet_init(t, f, 42) makes the run call f(42)."""
        async with Kernel(nr_cpus=2, hz=250):
            t = Tasklet()
            rec = Recorder()
            tasklet_init(t, rec, 42)
            assert (t.func, t.data, t.callback) == (rec, 42, None)
            tasklet_schedule(t)
            await settle()
            assert rec.args == [42]

    async def test_tasklet_init_makes_enabled_tasklet_not_disabled_as_seed_notes_say(
        self,
    ) -> None:
        """tasklet_init() leaves the count at 0: the tasklet runs without any tasklet_enable()."""
        async with Kernel(nr_cpus=2, hz=250):
            t = Tasklet()
            rec = Recorder()
            tasklet_init(t, rec, "data")
            assert t.count == 0
            tasklet_schedule(t)
            await settle()
            assert rec.args == ["data"]

    async def test_tasklet_setup_reinitialises_a_disabled_tasklet(self) -> None:
        """tasklet_setup() resets state and count, as the kernel's init functions do."""
        async with Kernel(nr_cpus=2, hz=250):
            t = DECLARE_TASKLET_DISABLED(Recorder())
            rec = Recorder()
            tasklet_setup(t, rec)
            assert (t.count, t.state) == (0, 0)
            tasklet_schedule(t)
            await settle()
            assert rec.args == [t]

    async def test_tasklet_with_callback(self) -> None:
        """Tasklet(cb) is tasklet_setup: enabled, cb(t)."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = Tasklet(rec)
            assert (t.count, t.callback) == (0, rec)
            tasklet_schedule(t)
            await settle()
            assert rec.args == [t]

    async def test_tasklet_with_func_and_data(self) -> None:
        """Tasklet(func, data) is tasklet_init: enabled, func(data), even for data None."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = Tasklet(rec, None)
            assert (t.count, t.callback, t.func) == (0, None, rec)
            tasklet_schedule(t)
            await settle()
            assert rec.args == [None]

    async def test_declare_tasklet_without_data(self) -> None:
        """TL-03: DECLARE_TASKLET(cb) is enabled and calls cb(t)."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = DECLARE_TASKLET(rec)
            assert t.count == 0
            tasklet_schedule(t)
            await settle()
            assert rec.args == [t]

    async def test_declare_tasklet_with_data(self) -> None:
        """TL-03: DECLARE_TASKLET(func, data), the pre-5.9 form, is enabled and calls func(data)."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = DECLARE_TASKLET(rec, "payload")
            assert t.count == 0
            tasklet_schedule(t)
            await settle()
            assert rec.args == ["payload"]

    @pytest.mark.parametrize("with_data", [False, True], ids=["callback", "func-data"])
    async def test_declare_tasklet_disabled_has_count_one(
        self, with_data: bool, virtual: bool
    ) -> None:
        """TL-04: DECLARE_TASKLET_DISABLED: count 1, no run; one enable → one run at the next pass."""
        done = Completion()
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder(lambda arg: complete(done))
            t = DECLARE_TASKLET_DISABLED(rec, 7) if with_data else DECLARE_TASKLET_DISABLED(rec)
            assert (t.count, t.state) == (1, 0)
            tasklet_schedule(t)
            await msleep(8)
            assert rec.runs == []
            assert sched_bit(t) == 1
            j = k.jiffies
            tasklet_enable(t)
            assert t.count == 0
            with guard(virtual):
                await wait_for_completion(done)
            assert k.jiffies <= j + 1 if virtual else k.jiffies >= j
            await settle()
            assert rec.args == ([7] if with_data else [t])

    async def test_declare_tasklet_old(self) -> None:
        """DECLARE_TASKLET_OLD(func) is enabled and calls func(0)."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = DECLARE_TASKLET_OLD(rec)
            assert (t.count, t.data, t.callback) == (0, 0, None)
            tasklet_schedule(t)
            await settle()
            assert rec.args == [0]


# --- state bits and where it runs: TL-02, TL-08, TL-09, TL-11, TL-20 -------------------------


class TestSchedule:
    async def test_state_bits_inside_and_outside_the_callback(self, virtual: bool) -> None:
        """TL-02: SCHED set while queued; inside, SCHED clear and RUN set; both clear after."""
        inside: list[tuple[int, int]] = []

        def body(t: Tasklet) -> None:
            inside.append((sched_bit(t), run_bit(t)))
            if len(inside) == 1:
                tasklet_schedule(t)
                inside.append((sched_bit(t), run_bit(t)))

        async with Kernel(nr_cpus=2, hz=250):
            assert (TASKLET_STATE_SCHED, TASKLET_STATE_RUN) == (0, 1)
            t = Tasklet(Recorder(body))
            assert (sched_bit(t), run_bit(t)) == (0, 0)
            local_bh_disable()
            tasklet_schedule(t)
            assert (sched_bit(t), run_bit(t)) == (1, 0)
            local_bh_enable()
            await softirqs_done(virtual)
            assert inside == [(0, 1), (1, 1), (0, 1)]
            assert (sched_bit(t), run_bit(t)) == (0, 0)

    async def test_schedule_from_task_context_runs_in_ksoftirqd(self) -> None:
        """A schedule from plain task context wakes ksoftirqd, which runs it, not the caller."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = Tasklet(rec)
            tasklet_schedule(t)
            assert rec.runs == []
            await settle()
            assert rec.runs == [(0, "ksoftirqd/0")]

    async def test_schedule_from_hardirq_runs_on_irq_exit_of_that_cpu(self) -> None:
        """A schedule from an interrupt handler on CPU 1 runs on CPU 1's irq exit, inline."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)
            request_irq(IRQ_A, irq_handler(lambda: tasklet_schedule(t)), 0, "a", None)
            k.raise_irq(IRQ_A, cpu=1)
            assert rec.runs == [(1, "swapper/1")]
            assert softirq_row(k, "TASKLET") == [0, 1]

    async def test_tasklet_hi_schedule_runs_from_hi_softirq(self) -> None:
        """tasklet_hi_schedule() runs the tasklet from the HI softirq, not from TASKLET."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)
            tasklet_hi_schedule(t)
            tasklet_hi_schedule(t)
            await settle()
            assert rec.runs == [(0, "ksoftirqd/0")]
            assert softirq_row(k, "HI") == [1, 0]
            assert softirq_row(k, "TASKLET") == [0, 0]

    async def test_running_on_cpu1_scheduled_on_cpu0(self, virtual: bool) -> None:
        """TL-08: while it runs on CPU 1, CPU 0 re-polls it, then runs it once after CPU 1 is done."""
        order: list[tuple[str, int]] = []

        def body(t: Tasklet) -> None:
            cpu = smp_processor_id()
            order.append(("enter", cpu))
            if len(rec.runs) == 1:
                before = softirq_row(k, "TASKLET")[0]
                k.raise_irq(IRQ_B, cpu=0)  # its handler schedules t on CPU 0
                polls = softirq_row(k, "TASKLET")[0] - before
                assert polls == MAX_SOFTIRQ_RESTART if virtual else 1 <= polls <= 10
                assert len(rec.runs) == 1
                assert (sched_bit(t), run_bit(t)) == (1, 1)
            order.append(("exit", cpu))

        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder(body)
            t = Tasklet(rec)
            request_irq(IRQ_A, irq_handler(lambda: tasklet_schedule(t)), 0, "a", None)
            request_irq(IRQ_B, irq_handler(lambda: tasklet_schedule(t)), 0, "b", None)
            k.raise_irq(IRQ_A, cpu=1)
            assert order == [("enter", 1), ("exit", 1)]
            assert sched_bit(t) == 1
            await settle()
            assert order == [("enter", 1), ("exit", 1), ("enter", 0), ("exit", 0)]
            assert rec.runs == [(1, "swapper/1"), (0, "ksoftirqd/0")]
            assert rec.max_depth == 1
            assert t.state == 0

    async def test_scheduled_on_cpu0_then_cpu1_runs_once_on_cpu0(self) -> None:
        """TL-09: scheduled on CPU 0 and then on CPU 1 before it runs → one run, on CPU 0."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)
            request_irq(IRQ_A, irq_handler(lambda: tasklet_schedule(t)), 0, "a", None)
            local_bh_disable()  # CPU 0's irq exit must not run it yet
            k.raise_irq(IRQ_A, cpu=0)
            k.raise_irq(IRQ_A, cpu=1)
            assert rec.runs == []
            local_bh_enable()
            await settle()
            assert rec.runs == [(0, "init")]
            assert softirq_row(k, "TASKLET") == [1, 0]

    async def test_hi_runs_before_normal_in_one_bh_disabled_section(self) -> None:
        """TL-11: normal N then hi H scheduled in one BH-disabled section → H runs before N."""
        order: list[str] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            n = Tasklet(lambda t: order.append("N"))
            h = Tasklet(lambda t: order.append("H"))
            local_bh_disable()
            tasklet_schedule(n)
            tasklet_hi_schedule(h)
            assert order == []
            local_bh_enable()
            assert order == ["H", "N"]
            assert softirq_row(k, "HI")[0] == softirq_row(k, "TASKLET")[0] == 1

    async def test_proc_softirqs_tasklet_row_counts_passes(self) -> None:
        """TL-20: the TASKLET row grows once per handler pass, however many tasklets ran."""
        runs: list[str] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            ts = [Tasklet(runs.append, name) for name in "abc"]
            assert softirq_row(k, "TASKLET") == [0, 0]
            local_bh_disable()
            for t in ts:
                tasklet_schedule(t)
            local_bh_enable()
            assert runs == ["a", "b", "c"]
            assert softirq_row(k, "TASKLET") == [1, 0]
            request_irq(IRQ_A, irq_handler(lambda: tasklet_schedule(ts[0])), 0, "a", None)
            k.raise_irq(IRQ_A, cpu=1)
            assert runs == ["a", "b", "c", "a"]
            assert softirq_row(k, "TASKLET") == [1, 1]
            assert softirq_row(k, "HI") == [0, 0]


# --- disable / enable: TL-06, TL-07, TL-12 ---------------------------------------------------


class TestDisableEnable:
    async def test_disabled_scheduled_tasklet_keeps_ksoftirqd_busy(self, virtual: bool) -> None:
        """TL-06: SCHED stays set, TASKLET re-raised about once a jiffy; enable → exactly one run."""
        done = Completion()
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder(lambda t: complete(done))
            t = Tasklet(rec)
            tasklet_disable_nosync(t)
            assert t.count == 1
            tasklet_schedule(t)
            j0, passes0 = k.jiffies, softirq_row(k, "TASKLET")[0]
            await msleep(40)
            elapsed = k.jiffies - j0
            passes = softirq_row(k, "TASKLET")[0] - passes0
            # time still advances although ksoftirqd/0 never runs out of work
            assert elapsed >= 10
            if virtual:
                assert elapsed <= 12
                # one ksoftirqd batch (MAX_SOFTIRQ_RESTART passes) per jiffy, not a hot loop;
                # the tick that ends the msleep adds its own irq-exit batch, and may wake
                # ksoftirqd for one more
                restart = MAX_SOFTIRQ_RESTART
                assert restart * elapsed <= passes <= restart * (elapsed + 4)
            else:
                assert passes >= 1
            assert rec.runs == []
            assert sched_bit(t) == 1
            assert local_softirq_pending() >> TASKLET_SOFTIRQ & 1
            with pytest.raises(RuntimeError, match="did not settle"):
                await settle(max_rounds=50)
            tasklet_enable(t)
            with guard(virtual):
                await wait_for_completion(done)
            await settle()
            assert rec.runs == [(0, "ksoftirqd/0")]
            assert t.state == 0
            assert not local_softirq_pending()

    async def test_enable_without_disable_makes_count_negative(self) -> None:
        """TL-07: an unmatched enable → count -1, no warning; a scheduled tasklet never runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)
            lines_before = len(k.dmesg())
            tasklet_enable(t)
            assert t.count == -1
            tasklet_schedule(t)
            local_bh_disable()
            local_bh_enable()  # a softirq pass on this CPU: re-polls it
            await msleep(8)
            assert rec.runs == []
            assert sched_bit(t) == 1
            assert not any("WARNING" in line for line in k.dmesg()[lines_before:])
        assert rec.runs == []
        find_line(k, "still scheduled on CPU 0 (disabled?); dropped")

    async def test_nested_disable_needs_as_many_enables(self) -> None:
        """Two disables need two enables before a scheduled tasklet runs."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = Tasklet(rec)
            tasklet_disable_nosync(t)
            tasklet_disable_nosync(t)
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()
            tasklet_enable(t)
            assert t.count == 1
            local_bh_disable()
            local_bh_enable()
            assert rec.runs == []
            tasklet_enable(t)
            local_bh_disable()
            local_bh_enable()
            assert rec.runs == [(0, "init")]

    async def test_disable_nosync_from_running_callback_returns_at_once(self) -> None:
        """TL-12: tasklet_disable_nosync() while the callback runs returns; the callback goes on."""
        seen: list[tuple[int, int, int]] = []

        def body(t: Tasklet) -> None:
            if len(rec.runs) == 1:
                tasklet_disable_nosync(t)
                seen.append((t.count, run_bit(t), sched_bit(t)))
                tasklet_schedule(t)  # queued, but disabled: it does not run again

        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder(body)
            t = Tasklet(rec)
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()
            assert seen == [(1, 1, 0)]
            assert len(rec.runs) == 1
            assert (sched_bit(t), run_bit(t)) == (1, 0)
            tasklet_enable(t)
            local_bh_disable()
            local_bh_enable()
            assert len(rec.runs) == 2

    async def test_disable_returns_at_once_when_not_running(self, virtual: bool) -> None:
        """TL-12: tasklet_disable() of an idle or merely scheduled tasklet: count +1, no wait."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)
            j = k.jiffies
            await tasklet_disable(t)
            assert t.count == 1
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()
            await tasklet_disable(t)  # scheduled but not running: does not wait for a run
            assert t.count == 2
            assert k.jiffies == j if virtual else k.jiffies >= j
            assert rec.runs == []
            assert sched_bit(t) == 1
            tasklet_enable(t)
            tasklet_enable(t)
            local_bh_disable()
            local_bh_enable()
            assert rec.runs == [(0, "init")]

    async def test_disable_in_atomic_of_another_tasklet(self) -> None:
        """tasklet_disable_in_atomic() and tasklet_unlock_spin_wait() work on other tasklets."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            other = Tasklet(Recorder())

            def body(t: Tasklet) -> None:
                tasklet_disable_in_atomic(other)
                tasklet_unlock_spin_wait(other)

            t = Tasklet(Recorder(body))
            local_bh_disable()
            tasklet_disable_in_atomic(other)  # BH-disabled task context
            tasklet_schedule(t)
            local_bh_enable()
            assert other.count == 2
            assert not any("recursive locking" in line for line in k.dmesg())

    async def test_unlock_wait_returns_at_once_when_not_running(self, virtual: bool) -> None:
        """tasklet_unlock_wait() of a tasklet that is not running returns without waiting."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)
            j = k.jiffies
            await tasklet_unlock_wait(t)
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()
            tasklet_disable_nosync(t)
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()
            await tasklet_unlock_wait(t)  # scheduled, not running: no wait for its run
            assert k.jiffies == j if virtual else k.jiffies >= j
            assert len(rec.runs) == 1
            assert (sched_bit(t), run_bit(t)) == (1, 0)
            tasklet_enable(t)

    @pytest.mark.parametrize(
        "self_lock",
        [tasklet_disable_in_atomic, tasklet_unlock_spin_wait],
        ids=["tasklet_disable_in_atomic", "tasklet_unlock_spin_wait"],
    )
    async def test_spin_wait_on_itself_from_its_callback_is_a_deadlock(
        self, self_lock: Callable[[Tasklet], None]
    ) -> None:
        """Spinning on its own RUN bit from its callback: lockdep report, KernelBug, panic."""
        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            await run_tasklet_once(k, self_lock)
        assert isinstance(info.value.__cause__, KernelBug)
        assert find_line(k, "WARNING: possible recursive locking detected") < find_line(
            k, "Kernel panic - not syncing: Fatal exception in interrupt"
        )


# --- tasklet_kill: TL-13 .. TL-17 ------------------------------------------------------------


class TestKill:
    async def test_kill_idle_returns_at_once_and_schedule_still_works(self, virtual: bool) -> None:
        """TL-13: killing an idle tasklet returns at once; a later schedule runs it normally."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)
            j = k.jiffies
            await tasklet_kill(t)
            assert k.jiffies == j if virtual else k.jiffies >= j
            assert t.state == 0
            tasklet_schedule(t)
            await settle()
            assert rec.runs == [(0, "ksoftirqd/0")]

    async def test_kill_scheduled_tasklet_waits_for_its_run(self, virtual: bool) -> None:
        """TL-14: killing a scheduled, enabled tasklet returns after exactly one run."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = Tasklet(rec)
            tasklet_schedule(t)
            with guard(virtual):
                await tasklet_kill(t)
            assert rec.runs == [(0, "ksoftirqd/0")]
            assert t.state == 0
            await settle()
            assert len(rec.runs) == 1

    async def test_kill_scheduled_disabled_tasklet_never_returns(self, virtual: bool) -> None:
        """TL-15: killing a scheduled, disabled tasklet never returns."""
        done = Completion()
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder(lambda t: complete(done))
            t = Tasklet(rec)
            tasklet_disable_nosync(t)
            tasklet_schedule(t)
            with anyio.move_on_after(1.0 if virtual else 0.05) as scope:
                await tasklet_kill(t)
            assert scope.cancelled_caught
            assert rec.runs == []
            assert sched_bit(t) == 1
            tasklet_enable(t)
            with guard(virtual):
                await wait_for_completion(done)
            await settle()
            assert len(rec.runs) == 1

    async def test_schedule_from_task_while_kill_waits_is_absorbed(self, virtual: bool) -> None:
        """TL-16: a schedule from another task while kill waits adds no run; none after kill."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = Tasklet(rec)
            tasklet_disable_nosync(t)
            tasklet_schedule(t)
            waiting = anyio.Event()
            bits: list[int] = []

            async def scheduler() -> None:
                await waiting.wait()
                bits.append(sched_bit(t))
                tasklet_schedule(t)
                tasklet_enable(t)

            async with anyio.create_task_group() as tg:
                tg.start_soon(scheduler)
                waiting.set()
                with guard(virtual):
                    await tasklet_kill(t)
            assert bits == [1]
            assert rec.runs == [(0, "ksoftirqd/0")]
            assert t.state == 0
            await settle()
            assert len(rec.runs) == 1

    async def test_schedule_from_timer_while_kill_waits_is_absorbed(self, virtual: bool) -> None:
        """TL-16: a schedule from a timer callback while kill waits adds no run; none after kill."""
        bits: list[int] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            t = Tasklet(rec)

            def timer_fn(timer: TimerList) -> None:
                bits.append(sched_bit(t))
                tasklet_schedule(t)
                tasklet_enable(t)

            tasklet_disable_nosync(t)
            tasklet_schedule(t)
            mod_timer(TimerList(timer_fn), k.jiffies + 2)
            with guard(virtual):
                await tasklet_kill(t)
            assert bits == [1]
            assert len(rec.runs) == 1
            assert t.state == 0
            # it ran on the tick's irq exit, not in ksoftirqd/0, which is still in its re-poll
            # sleep until the next jiffy: settle() does not advance time, so pass that first
            await msleep(8)
            await settle()
            assert len(rec.runs) == 1

    async def test_kill_from_timer_callback_reports(self, virtual: bool) -> None:
        """TL-17: kill in softirq context logs the notice, then the might_sleep BUG (report)."""
        done = Completion()
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            t = Tasklet(Recorder())
            coros: list[Any] = []

            def timer_fn(timer: TimerList) -> None:
                coros.append(tasklet_kill(t))
                coros[0].close()
                complete(done)

            mod_timer(TimerList(timer_fn), k.jiffies + 1)
            with guard(virtual):
                await wait_for_completion(done)
            assert inspect.getcoroutinestate(coros[0]) == inspect.CORO_CLOSED
        notice = find_line(k, "Attempt to kill tasklet from interrupt")
        bug = find_line(k, "BUG: sleeping function called from invalid context")
        assert notice < bug
        assert "preempt_count: 100, expected: 0" in k.dmesg()[bug + 2]

    async def test_kill_from_tasklet_callback_panics_by_default(self) -> None:
        """TL-17: kill from a tasklet callback: notice, BUG, then KernelBug → panic."""
        k = Kernel(nr_cpus=2, hz=250)
        victim = Tasklet(Recorder())
        with pytest.raises(KernelPanic) as info:
            await run_tasklet_once(k, lambda t: tasklet_kill(victim))
        assert isinstance(info.value.__cause__, KernelBug)
        notice = find_line(k, "Attempt to kill tasklet from interrupt")
        assert notice < find_line(k, "BUG: sleeping function called from invalid context")
        assert notice < find_line(k, "Kernel panic - not syncing: Fatal exception in interrupt")

    @pytest.mark.parametrize(
        "sleeper",
        [tasklet_disable, tasklet_unlock_wait],
        ids=["tasklet_disable", "tasklet_unlock_wait"],
    )
    async def test_sleeping_api_from_callback_reports_might_sleep(
        self, sleeper: Callable[[Tasklet], Any]
    ) -> None:
        """The sleeping tasklet APIs report might_sleep when called in softirq context."""
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            other = Tasklet(Recorder())
            coros: list[Any] = []

            def body(t: Tasklet) -> None:
                coros.append(sleeper(other))
                coros[0].close()

            t = Tasklet(Recorder(body))
            local_bh_disable()
            tasklet_schedule(t)
            local_bh_enable()
            assert len(coros) == 1
        find_line(k, "BUG: sleeping function called from invalid context")
        assert not any("Attempt to kill" in line for line in k.dmesg())


# --- callbacks that misbehave: TL-18, exceptions ---------------------------------------------


class TestCallbackErrors:
    async def test_callback_that_sleeps_reports_scheduling_while_atomic(self) -> None:
        """TL-18: a callback returning an awaitable tried to sleep: BUG: scheduling while atomic."""
        coros: list[Any] = []

        async def nap() -> None:
            await anyio.lowlevel.checkpoint()  # pragma: no cover - never awaited

        def cb(t: Tasklet) -> object:
            coros.append(nap())
            return coros[-1]

        async with Kernel(nr_cpus=2, hz=250) as k:
            t = Tasklet(cb)
            tasklet_schedule(t)
            await settle()
            assert len(coros) == 1
            assert inspect.getcoroutinestate(coros[0]) == inspect.CORO_CLOSED
            assert t.state == 0
        line = k.dmesg()[find_line(k, "BUG: scheduling while atomic")]
        assert re.search(r"BUG: scheduling while atomic: ksoftirqd/0/\d+/0x00000101$", line)

    async def test_exception_in_callback_panics(self) -> None:
        """An exception in a tasklet is one in interrupt: panic, with the exception chained."""
        k = Kernel(nr_cpus=2, hz=250)
        error = ValueError("broken tasklet")

        def cb(t: Tasklet) -> None:
            raise error

        with pytest.raises(KernelPanic) as info:
            await run_tasklet_once(k, cb, via_ksoftirqd=True)
        assert info.value.__cause__ is error
        assert [oops.exception for oops in k.oopses] == [error]
        find_line(k, "Kernel panic - not syncing: Fatal exception in interrupt")


# --- bad input ----------------------------------------------------------------------------


async def _async_callback(arg: object) -> None:
    """An ``async def`` callback: not allowed in atomic context."""


class _AsyncCallable:
    async def __call__(self, arg: object) -> None:
        """An object whose ``__call__`` is ``async def``."""


_MAKERS: dict[str, Callable[[Any], object]] = {
    "tasklet_setup": lambda f: tasklet_setup(Tasklet(), f),
    "tasklet_init": lambda f: tasklet_init(Tasklet(), f, 1),
    "Tasklet(cb)": lambda f: Tasklet(f),
    "Tasklet(func, data)": lambda f: Tasklet(f, 1),
    "DECLARE_TASKLET": lambda f: DECLARE_TASKLET(f),
    "DECLARE_TASKLET(func, data)": lambda f: DECLARE_TASKLET(f, 1),
    "DECLARE_TASKLET_DISABLED": lambda f: DECLARE_TASKLET_DISABLED(f),
    "DECLARE_TASKLET_OLD": lambda f: DECLARE_TASKLET_OLD(f),
}


class TestBadInput:
    @pytest.mark.parametrize("maker", list(_MAKERS.values()), ids=list(_MAKERS))
    @pytest.mark.parametrize(
        "callback",
        [_async_callback, functools.partial(_async_callback), _AsyncCallable()],
        ids=["async-def", "partial", "async-call"],
    )
    def test_async_callback_is_rejected(
        self, maker: Callable[[Any], object], callback: object
    ) -> None:
        """An ``async def`` tasklet callback is a TypeError when the tasklet is initialised."""
        with pytest.raises(TypeError, match="atomic context"):
            maker(callback)

    @pytest.mark.parametrize("maker", list(_MAKERS.values()), ids=list(_MAKERS))
    def test_non_callable_is_rejected(self, maker: Callable[[Any], object]) -> None:
        """A non-callable tasklet callback is a TypeError."""
        with pytest.raises(TypeError, match="callable"):
            maker(42)

    @pytest.mark.parametrize(
        "schedule", [tasklet_schedule, tasklet_hi_schedule], ids=["normal", "hi"]
    )
    async def test_scheduling_an_uninitialised_tasklet(
        self, schedule: Callable[[Tasklet], None]
    ) -> None:
        """Scheduling a Tasklet() never set up is a ValueError; nothing is queued."""
        async with Kernel(nr_cpus=2, hz=250):
            t = Tasklet()
            with pytest.raises(
                ValueError,
                match=rf"^{schedule.__name__}\(\) expects a Tasklet set up by tasklet_setup\(\) "
                r"or tasklet_init\(\) for 't', got <Tasklet None state=0 count=0>$",
            ):
                schedule(t)
            assert t.state == 0
            assert not local_softirq_pending()

    @pytest.mark.parametrize(
        "call",
        [tasklet_schedule, tasklet_hi_schedule, tasklet_kill, tasklet_disable, tasklet_unlock_wait],
        ids=["schedule", "hi_schedule", "kill", "disable", "unlock_wait"],
    )
    def test_without_a_kernel(self, call: Callable[[Tasklet], object]) -> None:
        """Without a running Kernel, scheduling and the sleeping APIs raise RuntimeError."""
        t = Tasklet(Recorder())
        with pytest.raises(RuntimeError, match="Kernel"):
            call(t)
        assert t.state == 0


# --- argument checks ---------------------------------------------------------------------------


class _Device:
    """A driver structure with a ``state`` of its own: not a tasklet."""

    def __init__(self) -> None:
        self.state = 1
        self.func = print


def _callback(t: Tasklet) -> None:
    """A well-formed tasklet callback."""


class TestArguments:
    @pytest.mark.parametrize(
        "schedule", [tasklet_schedule, tasklet_hi_schedule], ids=["normal", "hi"]
    )
    @pytest.mark.parametrize(
        ("bad", "shown"), [(None, "NoneType"), (42, "int"), (_Device(), "_Device")]
    )
    async def test_schedule_rejects_what_is_not_a_tasklet(
        self, schedule: Callable[[Tasklet], None], bad: object, shown: str
    ) -> None:
        """tasklet_schedule(None) and friends are a TypeError; nothing is raised or changed."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            before = [getattr(bad, "state", None), getattr(bad, "func", None)]
            with pytest.raises(
                TypeError,
                match=rf"^{schedule.__name__}\(\) expects a Tasklet for 't', got {shown}$",
            ):
                schedule(bad)  # type: ignore[arg-type]
            assert local_softirq_pending() == 0
            assert [getattr(bad, "state", None), getattr(bad, "func", None)] == before
            assert not k.cpus[0].tasklet_vec
            assert not k.cpus[0].tasklet_hi_vec

    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (
                lambda: DECLARE_TASKLET(None),  # type: ignore[arg-type]
                r"DECLARE_TASKLET\(\) expects a function callable as func\(t\) for 'func'",
            ),
            (
                lambda: DECLARE_TASKLET_DISABLED(None),  # type: ignore[arg-type]
                r"DECLARE_TASKLET_DISABLED\(\) expects a function callable as func\(t\) "
                r"for 'func'",
            ),
            (
                lambda: DECLARE_TASKLET_OLD(None),  # type: ignore[arg-type]
                r"DECLARE_TASKLET_OLD\(\) expects a function callable as func\(data\) "
                r"for 'func'",
            ),
            (
                lambda: Tasklet(None, 7),
                r"Tasklet\(\) expects a function callable as func\(data\) for 'func'",
            ),
        ],
        ids=["DECLARE_TASKLET", "DECLARE_TASKLET_DISABLED", "DECLARE_TASKLET_OLD", "Tasklet"],
    )
    def test_declare_needs_a_function(self, make: Callable[[], object], message: str) -> None:
        """DECLARE_TASKLET*(None) and Tasklet(None, data) are a TypeError, not a dead tasklet."""
        with pytest.raises(TypeError, match=rf"^{message}, got NoneType$"):
            make()

    def test_constructor_checks_the_callback_arity(self) -> None:
        """Tasklet(lambda: 0) is a TypeError at construction showing the call it will get."""
        with pytest.raises(
            TypeError,
            match=r"^Tasklet\(\) expects a function callable as func\(t\) for 'func', but "
            r"<lambda>\(\) cannot be called with 1 positional argument$",
        ):
            Tasklet(lambda: 0)  # type: ignore[arg-type,misc]
        with pytest.raises(
            TypeError,
            match=r"^Tasklet\(\) expects a function callable as func\(data\) for 'func', but "
            r"<lambda>\(a, b\) cannot be called with 1 positional argument$",
        ):
            Tasklet(lambda a, b: 0, 5)  # type: ignore[arg-type,misc]

    def test_constructor_disabled_must_be_a_bool(self) -> None:
        """Tasklet(fn, disabled=1) is a TypeError: the flag is a bool."""
        with pytest.raises(
            TypeError, match=r"^Tasklet\(\) expects a bool for 'disabled', got int$"
        ):
            Tasklet(_callback, disabled=1)  # type: ignore[arg-type]

    def test_setup_and_init_check_before_changing_the_tasklet(self) -> None:
        """A rejected tasklet_setup/tasklet_init leaves the tasklet as it was."""
        t = Tasklet(_callback)
        t.count = 2
        with pytest.raises(
            TypeError,
            match=r"^tasklet_setup\(\) expects a function callable as callback\(t\) for "
            r"'callback', but <lambda>\(\) cannot be called with 1 positional argument$",
        ):
            tasklet_setup(t, lambda: 0)  # type: ignore[arg-type,misc]
        with pytest.raises(
            TypeError,
            match=r"^tasklet_init\(\) expects a function callable as func\(data\) for 'func', "
            r"got str$",
        ):
            tasklet_init(t, "handler", 1)  # type: ignore[arg-type]
        with pytest.raises(
            TypeError, match=r"^tasklet_setup\(\) expects a Tasklet for 't', got NoneType$"
        ):
            tasklet_setup(None, _callback)  # type: ignore[arg-type]
        with pytest.raises(
            TypeError, match=r"^tasklet_init\(\) expects a Tasklet for 't', got TimerList$"
        ):
            tasklet_init(TimerList(), _callback, 1)  # type: ignore[arg-type]
        assert (t.func, t.use_callback, t.count, t.data) == (_callback, True, 2, None)

    @pytest.mark.parametrize(
        "call",
        [
            tasklet_enable,
            tasklet_disable_nosync,
            tasklet_disable_in_atomic,
            tasklet_unlock_spin_wait,
        ],
    )
    async def test_atomic_apis_need_a_tasklet(self, call: Callable[[Tasklet], None]) -> None:
        """tasklet_enable(None) and the other atomic APIs are a TypeError naming themselves."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(
                TypeError,
                match=rf"^{call.__name__}\(\) expects a Tasklet for 't', got NoneType$",
            ):
                call(None)  # type: ignore[arg-type]
            assert k.oopses == []

    @pytest.mark.parametrize("call", [tasklet_kill, tasklet_disable, tasklet_unlock_wait])
    async def test_sleeping_apis_check_at_call_time(
        self, call: Callable[[Tasklet], object]
    ) -> None:
        """tasklet_kill(None) is a TypeError at the call: no coroutine, no report, no notice."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = k.dmesg()
            local_bh_disable()  # interrupt context: a real call would log and report here
            try:
                with pytest.raises(
                    TypeError,
                    match=rf"^{call.__name__}\(\) expects a Tasklet for 't', got str$",
                ):
                    call("t")  # type: ignore[arg-type]
            finally:
                local_bh_enable()
            assert k.dmesg() == before


# --- property test against a reference model --------------------------------------------------

N_TASKLETS = 3
IRQ_OP = 20


class _Model:
    """The kernel's tasklet rules (§3), for N tasklets on two CPUs."""

    def __init__(self) -> None:
        self.sched = [False] * N_TASKLETS
        self.count = [0] * N_TASKLETS
        self.running = [False] * N_TASKLETS
        self.successes = [0] * N_TASKLETS
        self.runs: list[Counter[int]] = [Counter() for _ in range(N_TASKLETS)]
        # per CPU: (HI list, normal list)
        self.lists = [(deque[int](), deque[int]()) for _ in range(2)]

    def schedule(self, i: int, cpu: int, hi: bool) -> None:
        if self.sched[i]:
            return
        self.sched[i] = True
        self.successes[i] += 1
        self.lists[cpu][0 if hi else 1].append(i)

    def softirqs(self, cpu: int) -> None:
        """One softirq invocation on *cpu*: every enabled, not running tasklet on its lists runs."""
        for lst in self.lists[cpu]:
            for _ in range(len(lst)):
                i = lst.popleft()
                if self.count[i] or self.running[i]:
                    lst.append(i)
                    continue
                self.sched[i] = False
                self.runs[i][cpu] += 1

    def runnable(self, cpu: int) -> bool:
        return any(not self.count[i] for lst in self.lists[cpu] for i in lst)

    def settle(self) -> None:
        while self.runnable(0) or self.runnable(1):
            for cpu in (0, 1):
                self.softirqs(cpu)


_OP = st.one_of(
    st.tuples(st.just("sched"), st.integers(0, N_TASKLETS - 1), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("hi"), st.integers(0, N_TASKLETS - 1), st.integers(0, 1), st.booleans()),
    st.tuples(st.just("disable"), st.integers(0, N_TASKLETS - 1)),
    st.tuples(st.just("enable"), st.integers(0, N_TASKLETS - 1)),
    st.tuples(st.just("settle")),
)


async def _drive(ops: list[tuple[Any, ...]]) -> None:
    k = current_kernel()
    model = _Model()
    runs: list[Counter[int]] = [Counter() for _ in range(N_TASKLETS)]
    depth = [0] * N_TASKLETS
    max_depth = [0] * N_TASKLETS
    actions: list[Callable[[], None]] = []

    def on_irq() -> None:
        actions.pop()()

    def in_irq(cpu: int, action: Callable[[], None]) -> None:
        actions.append(action)
        k.raise_irq(IRQ_OP, cpu=cpu)

    def make_cb(i: int) -> Callable[[Tasklet], None]:
        def cb(t: Tasklet) -> None:
            depth[i] += 1
            max_depth[i] = max(max_depth[i], depth[i])
            cpu = smp_processor_id()
            runs[i][cpu] += 1
            depth[i] -= 1

        return cb

    ts = [Tasklet(make_cb(i)) for i in range(N_TASKLETS)]
    request_irq(IRQ_OP, irq_handler(on_irq), 0, "op", None)

    async def quiesce() -> None:
        await msleep(8)  # ksoftirqd re-polls disabled tasklets once per jiffy
        if not any(model.sched[i] and model.count[i] for i in range(N_TASKLETS)):
            await settle()
        model.settle()

    def check() -> None:
        for i, t in enumerate(ts):
            assert sched_bit(t) == model.sched[i], (i, t)
            assert run_bit(t) == 0
            assert runs[i] == model.runs[i], (i, runs[i], model.runs[i])
            # coalescing: never more runs than schedules that found SCHED clear
            assert sum(runs[i].values()) <= model.successes[i]
            assert max_depth[i] <= 1

    for op in ops:
        kind = op[0]
        if kind in ("sched", "hi"):
            _, i, cpu, via_irq = op
            hi = kind == "hi"
            schedule = tasklet_hi_schedule if hi else tasklet_schedule
            model.schedule(i, cpu, hi)
            if cpu == 0 and not via_irq:
                schedule(ts[i])  # task context: runs later, in ksoftirqd/0
            else:
                in_irq(cpu, functools.partial(schedule, ts[i]))
                model.softirqs(cpu)
        elif kind == "disable":
            i = op[1]
            if model.count[i] < 2:
                model.count[i] += 1
                tasklet_disable_nosync(ts[i])
        elif kind == "enable":
            i = op[1]
            if model.count[i]:
                model.count[i] -= 1
                tasklet_enable(ts[i])
        else:
            await quiesce()
        check()

    # no lost schedule: once every tasklet is enabled, every successful schedule has run
    for i, t in enumerate(ts):
        while model.count[i]:
            model.count[i] -= 1
            tasklet_enable(t)
    await quiesce()
    check()
    for i, t in enumerate(ts):
        assert t.state == 0
        assert sum(runs[i].values()) == model.successes[i]


@settings(max_examples=40, deadline=None, database=None)
@given(ops=st.lists(_OP, max_size=30))
def test_random_operations_match_reference_model(ops: list[tuple[Any, ...]]) -> None:
    """Random schedule/hi/disable/enable/settle sequences on 2 CPUs match the reference model.

    Cross-CPU nesting (a running callback scheduling itself on the other CPU) is left to
    TL-08's own test: which CPU's ksoftirqd runs first then decides the outcome, and on real
    hardware the two CPUs race too, so a fixed reference model cannot predict it.
    """
    kdefer_async.run(_drive, ops, nr_cpus=2, hz=250, backend="asyncio", virtual_time=True)


class TestBhWorkBeforeTasklets:
    async def test_bh_work_runs_before_tasklets(self) -> None:
        """TL-19: a BH work item and a tasklet pending in the same TASKLET softirq: the BH
        work item runs first, even though the tasklet was scheduled first."""
        from kdefer_async import Work, queue_work, system_bh_wq

        order: list[str] = []
        async with Kernel(nr_cpus=2, hz=250):
            t = Tasklet(lambda t: order.append("tasklet"))
            w = Work(lambda w: order.append("bh work"))
            local_bh_disable()
            tasklet_schedule(t)
            queue_work(system_bh_wq, w)
            local_bh_enable()
        assert order == ["bh work", "tasklet"]
