"""Softirqs: raising, the points where they run, the __do_softirq loop, ksoftirqd, /proc/softirqs.

Covers kernel-semantics §6.2 SIRQ-01..SIRQ-13. Not covered: SIRQ-14 (the <6.5 "let ksoftirqd do
its job" compat mode is not modelled) and SIRQ-15 (the NOHZ tick-stop error is not modelled).
Same-handler concurrency on two CPUs (§2.4) cannot be shown in one event loop: handlers are
synchronous critical sections, so two CPUs never run one at the same instant.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
from helpers import softirqs_done

from kdefer_async import (
    HI_SOFTIRQ,
    IRQ_HANDLED,
    IRQF_NO_THREAD,
    MAX_SOFTIRQ_RESTART,
    NET_RX_SOFTIRQ,
    NET_TX_SOFTIRQ,
    NR_SOFTIRQS,
    RCU_SOFTIRQ,
    SCHED_SOFTIRQ,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASKLET_SOFTIRQ,
    TIMER_SOFTIRQ,
    Kernel,
    KernelPanic,
    NoKernelError,
    SpinLock,
    Tasklet,
    TaskStruct,
    current,
    in_serving_softirq,
    in_task,
    local_bh_disable,
    local_bh_enable,
    local_softirq_pending,
    mdelay,
    open_softirq,
    preempt_count,
    raise_softirq,
    raise_softirq_irqoff,
    request_irq,
    smp_processor_id,
    spin_lock_bh,
    spin_unlock_bh,
    tasklet_schedule,
    tasklet_setup,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

NAMES = (
    "HI",
    "TIMER",
    "NET_TX",
    "NET_RX",
    "BLOCK",
    "IRQ_POLL",
    "TASKLET",
    "SCHED",
    "HRTIMER",
    "RCU",
)


def log_lines(k: Kernel) -> list[str]:
    """``k.dmesg()`` without the ``[    1.234567] `` timestamps."""
    return [line.split("] ", 1)[1] for line in k.dmesg()]


def softirq_counts(k: Kernel, name: str) -> list[int]:
    """The per-CPU counters of one /proc/softirqs row."""
    for line in k.proc_softirqs().splitlines()[1:]:
        label, _, counts = line.partition(":")
        if label.strip() == name:
            return [int(c) for c in counts.split()]
    raise AssertionError(f"no {name} row in /proc/softirqs")


def ksoftirqd(k: Kernel, cpu: int = 0) -> TaskStruct:
    """The ``ksoftirqd/<cpu>`` task (to read its state, as ``ps`` would)."""
    task = k.cpus[cpu].ksoftirqd
    assert task.comm == f"ksoftirqd/{cpu}"
    return task


def raise_from_irq(
    k: Kernel, nr: int, irq: int = 5, flags: int = 0
) -> Callable[[int | None], None]:
    """Register a handler (with *flags*) on *irq* that raises softirq *nr*; return
    ``fire(cpu)``."""

    def handler(irq: int, dev: object) -> int:
        raise_softirq(nr)
        return IRQ_HANDLED

    assert request_irq(irq, handler, flags, "raiser", None) == 0

    def fire(cpu: int | None = None) -> None:
        k.raise_irq(irq, cpu)

    return fire


class Recorder:
    """Softirq actions that record (name, comm, cpu, preempt_count) when they run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str, int, int]] = []

    def action(self, name: str, then: Callable[[], object] | None = None) -> Callable[[], None]:
        def act() -> None:
            self.runs.append((name, current().comm, smp_processor_id(), preempt_count()))
            if then is not None:
                then()

        act.__name__ = act.__qualname__ = f"{name.lower()}_action"
        return act

    @property
    def names(self) -> list[str]:
        return [r[0] for r in self.runs]


# ---------------------------------------------------------------------------------------------
# Where a raised softirq runs
# ---------------------------------------------------------------------------------------------


class TestRaiseSoftirq:
    async def test_from_task_context_runs_in_ksoftirqd(self) -> None:
        """SIRQ-01: a raise from plain task context wakes ksoftirqd/0, which runs the handler."""
        rec = Recorder()
        seen: list[tuple[bool, bool]] = []

        def then() -> None:
            seen.append((in_serving_softirq(), in_task()))

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX", then))
            await settle()
            raise_softirq(NET_RX_SOFTIRQ)
            # not run synchronously inside raise_softirq
            assert rec.runs == []
            assert local_softirq_pending() == 1 << NET_RX_SOFTIRQ
            assert ksoftirqd(k).state == TASK_RUNNING
            await settle()
            assert local_softirq_pending() == 0
            assert ksoftirqd(k).state == TASK_INTERRUPTIBLE
        assert rec.runs == [("NET_RX", "ksoftirqd/0", 0, 0x100)]
        assert seen == [(True, False)]

    async def test_raise_softirq_irqoff_from_task_context_wakes_ksoftirqd(self) -> None:
        """raise_softirq_irqoff from plain task context wakes ksoftirqd/0 as well."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_TX_SOFTIRQ, rec.action("NET_TX"))
            await settle()
            raise_softirq_irqoff(NET_TX_SOFTIRQ)
            assert ksoftirqd(k).state == TASK_RUNNING
            await settle()
        assert rec.runs == [("NET_TX", "ksoftirqd/0", 0, 0x100)]

    async def test_from_hardirq_runs_on_irq_exit(self) -> None:
        """SIRQ-02: a raise in a hardirq handler runs on irq_exit, before raise_irq returns."""
        order: list[str] = []

        def handler(irq: int, dev: object) -> int:
            raise_softirq(NET_RX_SOFTIRQ)
            order.append("handler returns")
            return IRQ_HANDLED

        def action() -> None:
            order.append(f"softirq in {current().comm} at {preempt_count():#x}")

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, action)
            request_irq(5, handler, 0, "nic", None)
            await settle()
            k.raise_irq(5)
            order.append("raise_irq returned")
            # ksoftirqd was not woken
            assert ksoftirqd(k).state == TASK_INTERRUPTIBLE
            assert local_softirq_pending() == 0
        assert order == ["handler returns", "softirq in init at 0x100", "raise_irq returned"]

    async def test_threadirqs_hands_irq_exit_softirqs_to_ksoftirqd(self) -> None:
        """SIRQ-13: with threadirqs, irq_exit wakes ksoftirqd instead of running softirqs inline
        (the handler is IRQF_NO_THREAD: it runs in hardirq context, not force-threaded)."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250, threadirqs=True) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            fire = raise_from_irq(k, NET_RX_SOFTIRQ, flags=IRQF_NO_THREAD)
            await settle()
            fire(None)
            assert rec.runs == []
            assert local_softirq_pending() == 1 << NET_RX_SOFTIRQ
            assert ksoftirqd(k).state == TASK_RUNNING
            await settle()
        assert rec.runs == [("NET_RX", "ksoftirqd/0", 0, 0x100)]

    async def test_raise_softirq_irqoff_with_bh_disabled(self) -> None:
        """SIRQ-10: raise_softirq_irqoff with BH disabled wakes nobody; local_bh_enable runs it."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            await settle()
            local_bh_disable()
            raise_softirq_irqoff(NET_RX_SOFTIRQ)
            assert ksoftirqd(k).state == TASK_INTERRUPTIBLE
            # let every other task of the loop run: still nothing (ksoftirqd was not woken)
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            assert rec.runs == []
            assert local_softirq_pending() == 1 << NET_RX_SOFTIRQ
            local_bh_enable()
            assert rec.runs == [("NET_RX", "init", 0, 0x101)]
            assert ksoftirqd(k).state == TASK_INTERRUPTIBLE
            assert local_softirq_pending() == 0

    async def test_raise_from_softirq_does_not_wake_ksoftirqd(self, virtual: bool) -> None:
        """A raise inside a running softirq is picked up by the restart pass, not ksoftirqd
        (unless MAX_SOFTIRQ_TIME is over: then ksoftirqd gets it, as in the kernel)."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            open_softirq(
                NET_TX_SOFTIRQ, rec.action("NET_TX", lambda: raise_softirq(NET_RX_SOFTIRQ))
            )
            await settle()
            j = k.jiffies
            local_bh_disable()
            raise_softirq(NET_TX_SOFTIRQ)
            local_bh_enable()
            # MAX_SOFTIRQ_TIME is one jiffy at HZ=250: on the real clock a jiffy boundary can
            # fall between the pass and the restart check (a busy machine makes it likelier),
            # and then the restart is ksoftirqd's; with no jiffy passed it is the restart pass
            # (always so in virtual time, where the clock stands still meanwhile)
            inline = virtual or k.jiffies == j
            if inline:
                assert ksoftirqd(k).state == TASK_INTERRUPTIBLE
        assert rec.runs[0] == ("NET_TX", "init", 0, 0x101)
        if inline:
            assert rec.runs[1:] == [("NET_RX", "init", 0, 0x101)]
        else:
            assert [r[0] for r in rec.runs[1:]] == ["NET_RX"]


# ---------------------------------------------------------------------------------------------
# local_bh_disable() / local_bh_enable()
# ---------------------------------------------------------------------------------------------


class TestLocalBh:
    async def test_raise_inside_bh_disabled_runs_at_enable(self) -> None:
        """SIRQ-03: a raise inside local_bh_disable runs inline at local_bh_enable, at 0x101."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            await settle()
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            # no ksoftirqd wakeup: raise_softirq sees in_interrupt()
            assert ksoftirqd(k).state == TASK_INTERRUPTIBLE
            assert rec.runs == []
            local_bh_enable()
            assert rec.runs == [("NET_RX", "init", 0, 0x101)]
            assert preempt_count() == 0

    async def test_nested_enable_runs_only_at_the_outermost(self) -> None:
        """SIRQ-04: disable twice, raise, enable once: nothing; the second enable runs it."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250):
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            local_bh_disable()
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            assert rec.runs == []
            assert preempt_count() == 0x200
            local_bh_enable()
            assert rec.runs == [("NET_RX", "init", 0, 0x101)]
            assert preempt_count() == 0

    async def test_spin_unlock_bh_runs_pending_softirqs(self) -> None:
        """spin_unlock_bh() runs softirqs raised under spin_lock_bh(), like local_bh_enable."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250):
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            lock = SpinLock()
            spin_lock_bh(lock)
            raise_softirq(NET_RX_SOFTIRQ)
            assert rec.runs == []
            spin_unlock_bh(lock)
            assert rec.runs == [("NET_RX", "init", 0, 0x101)]
            assert preempt_count() == 0

    async def test_interrupt_in_bh_disabled_section_defers_to_enable(self) -> None:
        """An interrupt taken with BH disabled does not run softirqs on irq_exit; the enable does."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            fire = raise_from_irq(k, NET_RX_SOFTIRQ)
            await settle()
            local_bh_disable()
            fire(None)
            assert rec.runs == []
            assert ksoftirqd(k).state == TASK_INTERRUPTIBLE
            local_bh_enable()
        assert rec.runs == [("NET_RX", "init", 0, 0x101)]

    async def test_enable_with_nothing_pending_runs_nothing(self) -> None:
        """local_bh_enable() with nothing pending is only the count going back to 0."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            local_bh_disable()
            local_bh_enable()
            assert preempt_count() == 0
        assert rec.runs == []
        assert softirq_counts(k, "NET_RX") == [0, 0]

    async def test_unbalanced_enable_warns_and_keeps_count(self) -> None:
        """local_bh_enable() without a disable WARNs once and leaves the count at 0."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            local_bh_enable()
            local_bh_enable()
            assert preempt_count() == 0
        assert log_lines(k).count("------------[ cut here ]------------") == 1


# ---------------------------------------------------------------------------------------------
# The __do_softirq loop
# ---------------------------------------------------------------------------------------------


class TestDoSoftirq:
    async def test_one_pass_runs_in_vector_order(self) -> None:
        """SIRQ-05: HI, NET_RX and TIMER pending together run as HI, TIMER, NET_RX in one pass."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250):
            for nr in (HI_SOFTIRQ, TIMER_SOFTIRQ, NET_RX_SOFTIRQ):
                open_softirq(nr, rec.action(NAMES[nr]))
            local_bh_disable()
            for nr in (NET_RX_SOFTIRQ, TIMER_SOFTIRQ, HI_SOFTIRQ):
                raise_softirq(nr)
            assert local_softirq_pending() == 0b1011
            local_bh_enable()
        assert rec.runs == [
            ("HI", "init", 0, 0x101),
            ("TIMER", "init", 0, 0x101),
            ("NET_RX", "init", 0, 0x101),
        ]

    async def test_raises_coalesce_into_one_invocation(self) -> None:
        """SIRQ-06: TIMER raised 5 times before it runs: one invocation, /proc/softirqs +1."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(TIMER_SOFTIRQ, rec.action("TIMER"))
            before = softirq_counts(k, "TIMER")
            local_bh_disable()
            for _ in range(5):
                raise_softirq(TIMER_SOFTIRQ)
            local_bh_enable()
            after = softirq_counts(k, "TIMER")
        assert rec.names == ["TIMER"]
        assert after[0] == before[0] + 1
        assert after[1] == before[1]

    async def test_raise_during_a_pass_runs_in_the_next_pass(self) -> None:
        """SIRQ-07: HI raised by the TASKLET handler runs after it returns, in the next pass."""
        rec = Recorder()

        def tasklet_handler() -> None:
            raise_softirq(RCU_SOFTIRQ)
            raise_softirq(HI_SOFTIRQ)
            rec.runs.append(("TASKLET returns", current().comm, 0, preempt_count()))

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(HI_SOFTIRQ, rec.action("HI"))
            open_softirq(RCU_SOFTIRQ, rec.action("RCU"))
            open_softirq(TASKLET_SOFTIRQ, rec.action("TASKLET", tasklet_handler))
            open_softirq(SCHED_SOFTIRQ, rec.action("SCHED"))
            local_bh_disable()
            raise_softirq(TASKLET_SOFTIRQ)
            raise_softirq(SCHED_SOFTIRQ)
            local_bh_enable()
            # pass 1 (TASKLET, SCHED), then pass 2 (HI, RCU): RCU, though higher-numbered than
            # TASKLET, was raised after the pass started and so waited for the next one too.
            # (On the real clock a jiffy may end during pass 1: MAX_SOFTIRQ_TIME is then spent
            # and ksoftirqd runs pass 2, in the same order; settle() waits for either.)
            await settle()
            assert rec.names == ["TASKLET", "TASKLET returns", "SCHED", "HI", "RCU"]
            assert [softirq_counts(k, n)[0] for n in ("HI", "TASKLET", "SCHED", "RCU")] == [1] * 4

    async def test_handler_reraising_itself_runs_again_next_pass(self, virtual: bool) -> None:
        """A handler that raises its own vector once runs twice, counted twice in /proc/softirqs
        (the second time in the restart pass, or in ksoftirqd/0 if a jiffy ended meanwhile on
        the real clock)."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:

            def again() -> None:
                if len(rec.runs) == 1:
                    raise_softirq(NET_RX_SOFTIRQ)

            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX", again))
            j = k.jiffies
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            inline = virtual or k.jiffies == j
            await softirqs_done(virtual)
            assert softirq_counts(k, "NET_RX") == [2, 0]
        assert rec.runs[0] == ("NET_RX", "init", 0, 0x101)
        if inline:
            assert rec.runs[1:] == [("NET_RX", "init", 0, 0x101)]
        else:
            assert [r[0] for r in rec.runs[1:]] == ["NET_RX"]

    async def test_restart_budget_then_ksoftirqd(self, virtual: bool) -> None:
        """SIRQ-08: a self-raising handler gets at most 10 passes on irq_exit; ksoftirqd/0 goes on."""
        total = 25
        rec = Recorder()

        def again() -> None:
            if len(rec.runs) < total:
                raise_softirq(NET_RX_SOFTIRQ)

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX", again))
            fire = raise_from_irq(k, NET_RX_SOFTIRQ)
            await settle()
            fire(None)
            inline = list(rec.names)
            # the rest was handed over: still pending, and ksoftirqd is awake
            assert local_softirq_pending() == 1 << NET_RX_SOFTIRQ
            assert ksoftirqd(k).state == TASK_RUNNING
            await settle()
            assert softirq_counts(k, "NET_RX") == [total, 0]
        assert MAX_SOFTIRQ_RESTART == 10
        # on wall time a jiffy may pass during the passes (MAX_SOFTIRQ_TIME), ending them early
        assert len(inline) == 10 if virtual else 1 <= len(inline) <= 10
        comms = [r[1] for r in rec.runs]
        assert comms[: len(inline)] == ["init"] * len(inline)
        assert comms[len(inline) :] == ["ksoftirqd/0"] * (total - len(inline))
        assert {r[3] for r in rec.runs} == {0x100}

    async def test_time_budget_ends_the_passes(self) -> None:
        """SIRQ-08: once a jiffy has passed (MAX_SOFTIRQ_TIME at HZ=250) no restart happens
        (the handler's mdelay(5) moves a virtual clock too)."""
        rec = Recorder()

        def slow_then_again() -> None:
            if len(rec.runs) == 1:
                mdelay(5)  # more than one 4 ms jiffy
            if len(rec.runs) < 5:
                raise_softirq(NET_RX_SOFTIRQ)

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert k.max_softirq_time == 1
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX", slow_then_again))
            fire = raise_from_irq(k, NET_RX_SOFTIRQ)
            await settle()
            fire(None)
            inline = len(rec.runs)
            await settle()
        assert inline == 1
        assert [r[1] for r in rec.runs] == ["init"] + ["ksoftirqd/0"] * 4

    async def test_pending_masks_are_per_cpu(self) -> None:
        """SIRQ-09: a raise in an interrupt on CPU 1 runs on CPU 1 only; CPU 0's mask is untouched."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            fire = raise_from_irq(k, NET_RX_SOFTIRQ)
            fire(1)
            assert rec.runs == [("NET_RX", "swapper/1", 1, 0x100)]
            assert local_softirq_pending() == 0
            assert softirq_counts(k, "NET_RX") == [0, 1]

    async def test_cpu0_pending_never_runs_on_cpu1(self) -> None:
        """SIRQ-09: with NET_RX pending on CPU 0, CPU 1's irq_exit does not run it; CPU 0 does."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, rec.action("NET_RX"))
            request_irq(6, lambda irq, dev: IRQ_HANDLED, 0, "other", None)
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            k.raise_irq(6, cpu=1)
            assert rec.runs == []
            local_bh_enable()
            assert softirq_counts(k, "NET_RX") == [1, 0]
        assert rec.runs == [("NET_RX", "init", 0, 0x101)]

    async def test_last_open_softirq_wins(self) -> None:
        """SIRQ-11: open_softirq(nr, a) then open_softirq(nr, b): only b runs."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250):
            open_softirq(NET_RX_SOFTIRQ, rec.action("a"))
            open_softirq(NET_RX_SOFTIRQ, rec.action("b"))
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
        assert rec.names == ["b"]

    async def test_exception_in_action_panics(self) -> None:
        """An exception in a softirq action is fatal in interrupt: KernelPanic, cause chained."""
        boom = ValueError("bad packet")
        after: list[str] = []

        def action() -> None:
            raise boom

        async def body() -> None:
            open_softirq(NET_RX_SOFTIRQ, action)
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            after.append("local_bh_enable returned")

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            async with k:
                await body()
        assert type(info.value) is KernelPanic
        assert info.value.__cause__ is boom
        assert after == []
        assert "Kernel panic - not syncing: Fatal exception in interrupt" in log_lines(k)

    async def test_exception_in_ksoftirqd_panics(self) -> None:
        """An exception in a tasklet run by ksoftirqd also panics the kernel, ending the block."""
        boom = RuntimeError("tasklet bug")
        after: list[str] = []

        def callback(t: Tasklet) -> None:
            raise boom

        async def body() -> None:
            t = Tasklet()
            tasklet_setup(t, callback)
            tasklet_schedule(t)
            await settle()
            after.append("settle returned")

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            async with k:
                await body()
        assert type(info.value) is KernelPanic
        assert info.value.__cause__ is boom
        assert after == []
        assert "Kernel panic - not syncing: Fatal exception in interrupt" in log_lines(k)


# ---------------------------------------------------------------------------------------------
# /proc/softirqs
# ---------------------------------------------------------------------------------------------


class TestProcSoftirqs:
    async def test_rendering(self) -> None:
        """SIRQ-12: /proc/softirqs of a 2-CPU kernel, character for character."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            fire = raise_from_irq(k, NET_RX_SOFTIRQ)
            fire(0)
            fire(0)
            fire(1)
            open_softirq(SCHED_SOFTIRQ, lambda: None)
            local_bh_disable()
            raise_softirq(SCHED_SOFTIRQ)
            local_bh_enable()
            text = k.proc_softirqs()
        header = " " * 20 + "CPU0       " + "CPU1       "
        assert text == (
            f"{header}\n"
            "          HI:          0          0\n"
            "       TIMER:          0          0\n"
            "      NET_TX:          0          0\n"
            "      NET_RX:          2          1\n"
            "       BLOCK:          0          0\n"
            "    IRQ_POLL:          0          0\n"
            "     TASKLET:          0          0\n"
            "       SCHED:          1          0\n"
            "     HRTIMER:          0          0\n"
            "         RCU:          0          0\n"
        )

    async def test_counts_a_tasklet_pass_once(self) -> None:
        """Three tasklets run in one TASKLET pass add 1 to the TASKLET row, not 3."""
        ran: list[int] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            tasklets = []
            for i in range(3):
                t = Tasklet()
                tasklet_setup(t, lambda t, i=i: ran.append(i))
                tasklets.append(t)
            local_bh_disable()
            for t in tasklets:
                tasklet_schedule(t)
            local_bh_enable()
            assert softirq_counts(k, "TASKLET") == [1, 0]
        assert ran == [0, 1, 2]

    async def test_readable_after_exit(self) -> None:
        """/proc/softirqs still reads after the kernel has shut down."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_TX_SOFTIRQ, lambda: None)
            local_bh_disable()
            raise_softirq(NET_TX_SOFTIRQ)
            local_bh_enable()
        assert softirq_counts(k, "NET_TX") == [1, 0]
        assert len(k.proc_softirqs().splitlines()) == 1 + NR_SOFTIRQS


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


async def sleepy_action() -> None:
    await anyio.lowlevel.checkpoint()


class TestBadInput:
    async def test_async_action_rejected(self) -> None:
        """open_softirq with an `async def` action is a TypeError that mentions atomic context."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError, match="atomic context"):
                open_softirq(NET_RX_SOFTIRQ, sleepy_action)

    async def test_non_callable_rejected(self) -> None:
        """open_softirq with a non-callable action is a TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError, match="callable"):
                open_softirq(NET_RX_SOFTIRQ, 42)  # type: ignore[arg-type]

    @pytest.mark.parametrize("nr", [NR_SOFTIRQS, -1])
    async def test_bad_vector_number(self, nr: int) -> None:
        """Vector numbers outside 0..9 are a ValueError for open_softirq and both raises."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(ValueError, match="softirq"):
                open_softirq(nr, lambda: None)
            with pytest.raises(ValueError, match="softirq"):
                raise_softirq(nr)
            with pytest.raises(ValueError, match="softirq"):
                raise_softirq_irqoff(nr)
            assert local_softirq_pending() == 0

    async def test_vector_number_must_be_an_int(self) -> None:
        """A vector number that is not an int is a TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError):
                raise_softirq("NET_RX")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(lambda: open_softirq(NET_RX_SOFTIRQ, lambda: None), id="open_softirq"),
            pytest.param(lambda: raise_softirq(NET_RX_SOFTIRQ), id="raise_softirq"),
            pytest.param(lambda: raise_softirq_irqoff(NET_RX_SOFTIRQ), id="raise_softirq_irqoff"),
            pytest.param(local_softirq_pending, id="local_softirq_pending"),
            pytest.param(local_bh_disable, id="local_bh_disable"),
            pytest.param(local_bh_enable, id="local_bh_enable"),
        ],
    )
    async def test_no_kernel(self, call: Callable[[], object]) -> None:
        """Softirq APIs with no kernel running raise NoKernelError (a RuntimeError)."""
        with pytest.raises(RuntimeError, match="no kdefer_async Kernel is running") as info:
            call()
        assert isinstance(info.value, NoKernelError)


class TestArguments:
    async def test_open_softirq_checks_the_action(self) -> None:
        """open_softirq's action() takes no arguments: a TypeError at registration otherwise."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = list(k.softirq_vec)
            with pytest.raises(
                TypeError,
                match=r"^open_softirq\(\) expects a function callable as action\(\) for "
                r"'action', but <lambda>\(h\) cannot be called with no arguments$",
            ):
                open_softirq(NET_RX_SOFTIRQ, lambda h: None)  # type: ignore[arg-type,misc]
            with pytest.raises(
                TypeError,
                match=r"^open_softirq\(\) expects a function callable as action\(\) for "
                r"'action', got NoneType$",
            ):
                open_softirq(NET_RX_SOFTIRQ, None)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=r"^open_softirq\(\): a softirq action runs in atomic context"
            ):
                open_softirq(NET_RX_SOFTIRQ, sleepy_action)
            assert k.softirq_vec == before

    @pytest.mark.parametrize(
        ("nr", "exc", "shown"),
        [
            (NR_SOFTIRQS, ValueError, str(NR_SOFTIRQS)),
            (-1, ValueError, "-1"),
            (True, TypeError, "bool"),
            (None, TypeError, "NoneType"),
        ],
    )
    async def test_softirq_number(self, nr: object, exc: type[Exception], shown: str) -> None:
        """A softirq number is an int from 0 to NR_SOFTIRQS - 1; each API names itself."""
        expected = (
            f"a softirq number from 0 to {NR_SOFTIRQS - 1}" if exc is ValueError else "an int"
        )
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = list(k.softirq_vec)
            calls: list[tuple[str, Callable[[], object]]] = [
                ("open_softirq", lambda: open_softirq(nr, lambda: None)),  # type: ignore[arg-type]
                ("raise_softirq", lambda: raise_softirq(nr)),  # type: ignore[arg-type]
                ("raise_softirq_irqoff", lambda: raise_softirq_irqoff(nr)),  # type: ignore[arg-type]
            ]
            for name, call in calls:
                with pytest.raises(
                    exc, match=rf"^{name}\(\) expects {expected} for 'nr', got {shown}$"
                ):
                    call()
            assert local_softirq_pending() == 0
            assert k.softirq_vec == before
