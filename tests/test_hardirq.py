"""Hard interrupts: request_irq/free_irq, simulated interrupts, irqs-off sections, panics.

The kernel-semantics cases for hardirq context are CTX-04 (in tests/test_context.py) and SIRQ-02,
SIRQ-13 (in tests/test_softirq.py); this module covers the API around them.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from kdefer_async import (
    EBUSY,
    EINVAL,
    IRQ_HANDLED,
    IRQ_NONE,
    IRQF_SHARED,
    NET_RX_SOFTIRQ,
    Kernel,
    KernelPanic,
    NoKernelError,
    SpinLock,
    Tasklet,
    current,
    free_irq,
    in_hardirq,
    irqs_disabled,
    local_bh_disable,
    local_bh_enable,
    local_irq_restore,
    local_irq_save,
    open_softirq,
    preempt_count,
    raise_softirq,
    request_irq,
    smp_processor_id,
    spin_lock_irqsave,
    spin_unlock_irqrestore,
    tasklet_schedule,
)
from kdefer_async._context import _current

pytestmark = pytest.mark.anyio


def log_lines(k: Kernel) -> list[str]:
    """``k.dmesg()`` without the ``[    1.234567] `` timestamps."""
    return [line.split("] ", 1)[1] for line in k.dmesg()]


def interrupt_counts(k: Kernel, irq: int) -> list[int]:
    """The per-CPU counts of line *irq* in /proc/interrupts."""
    for line in k.proc_interrupts().splitlines()[1:]:
        label, _, rest = line.partition(":")
        if label.strip() == str(irq):
            return [int(c) for c in rest.split()[: k.nr_cpus]]
    raise AssertionError(f"irq {irq} is not listed in /proc/interrupts")


class Calls:
    """Handlers that record what they saw; each returns its configured value."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int, Any, str, int]] = []

    def handler(self, name: str, ret: object = IRQ_HANDLED) -> Callable[[int, Any], Any]:
        def handle(irq: int, dev: Any) -> Any:
            self.log.append((name, irq, dev, current().comm, smp_processor_id()))
            return ret

        return handle

    @property
    def names(self) -> list[str]:
        return [c[0] for c in self.log]


# ---------------------------------------------------------------------------------------------
# request_irq / free_irq
# ---------------------------------------------------------------------------------------------


class TestRequestIrq:
    async def test_handler_gets_irq_and_dev(self) -> None:
        """request_irq returns 0 and the handler runs with (irq, dev) before raise_irq returns."""
        calls = Calls()
        cookie = object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(5, calls.handler("a"), 0, "mydev", cookie) == 0
            k.raise_irq(5)
            assert calls.log == [("a", 5, cookie, "init", 0)]

    async def test_second_unshared_request_is_busy(self) -> None:
        """A second request without IRQF_SHARED on a taken line returns -EBUSY and is not added."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(5, calls.handler("a"), 0, "first", None) == 0
            assert request_irq(5, calls.handler("b"), 0, "second", None) == -EBUSY
            assert request_irq(5, calls.handler("c"), IRQF_SHARED, "third", object()) == -EBUSY
            k.raise_irq(5)
        assert calls.names == ["a"]
        assert "genirq: Flags mismatch irq 5. 00000000 (second) vs. 00000000 (first)" in (
            log_lines(k)
        )

    async def test_shared_then_unshared_is_busy(self) -> None:
        """A shared line refuses a later request that lacks IRQF_SHARED."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(5, calls.handler("a"), IRQF_SHARED, "first", object()) == 0
            assert request_irq(5, calls.handler("b"), 0, "second", None) == -EBUSY
            k.raise_irq(5)
        assert calls.names == ["a"]

    async def test_shared_line_runs_every_handler(self) -> None:
        """Two IRQF_SHARED requests both succeed; one interrupt runs both, in order, with their dev."""
        calls = Calls()
        dev_a, dev_b = object(), object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(5, calls.handler("a", IRQ_NONE), IRQF_SHARED, "a", dev_a) == 0
            assert request_irq(5, calls.handler("b"), IRQF_SHARED, "b", dev_b) == 0
            k.raise_irq(5)
            assert interrupt_counts(k, 5) == [1, 0]
            assert "a, b" in k.proc_interrupts().splitlines()[1]
        assert calls.log == [("a", 5, dev_a, "init", 0), ("b", 5, dev_b, "init", 0)]

    async def test_shared_without_dev_is_invalid(self) -> None:
        """IRQF_SHARED with a None dev cookie returns -EINVAL (free_irq could not tell them apart)."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(5, calls.handler("a"), IRQF_SHARED, "a", None) == -EINVAL
            k.raise_irq(5)
        assert calls.log == []

    async def test_lines_are_independent(self) -> None:
        """Handlers on different lines run only for their own line."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("five"), 0, "five", None)
            request_irq(6, calls.handler("six"), 0, "six", None)
            k.raise_irq(6)
            k.raise_irq(5)
        assert calls.names == ["six", "five"]


class TestFreeIrq:
    async def test_returns_the_name_and_stops_the_handler(self) -> None:
        """free_irq returns the registered name; later interrupts no longer reach the handler."""
        calls = Calls()
        dev = object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), 0, "mydev", dev)
            k.raise_irq(5)
            assert free_irq(5, dev) == "mydev"
            k.raise_irq(5)
            # the line is free again
            assert request_irq(5, calls.handler("b"), 0, "other", None) == 0
            k.raise_irq(5)
        assert calls.names == ["a", "b"]

    async def test_shared_free_keeps_the_other_handler(self) -> None:
        """Freeing one handler of a shared line (by its dev) leaves the other one working."""
        calls = Calls()
        dev_a, dev_b = object(), object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), IRQF_SHARED, "a", dev_a)
            request_irq(5, calls.handler("b"), IRQF_SHARED, "b", dev_b)
            assert free_irq(5, dev_b) == "b"
            k.raise_irq(5)
        assert calls.names == ["a"]

    async def test_unknown_dev_warns(self) -> None:
        """free_irq of a handler that is not there WARNs "Trying to free already-free IRQ"."""
        dev = object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, lambda irq, d: IRQ_HANDLED, 0, "mydev", dev)
            assert free_irq(5, object()) is None
            assert free_irq(5, dev) == "mydev"
            assert free_irq(5, dev) is None
            assert free_irq(9, None) is None
        lines = log_lines(k)
        assert lines.count("Trying to free already-free IRQ 5") == 2
        assert lines.count("Trying to free already-free IRQ 9") == 1
        assert lines.count("------------[ cut here ]------------") == 3


# ---------------------------------------------------------------------------------------------
# IRQ_NONE, /proc/interrupts
# ---------------------------------------------------------------------------------------------


class TestIrqNone:
    async def test_unhandled_interrupts_are_counted(self) -> None:
        """Interrupts nobody handles (IRQ_NONE) are counted per line; a handled one in between
        does not reset the count (note_interrupt), only HZ/10 quiet jiffies do."""
        results = [IRQ_NONE, IRQ_NONE, IRQ_NONE, IRQ_HANDLED, IRQ_NONE]
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, lambda irq, dev: results.pop(0), 0, "flaky", None)
            seen = []
            for _ in range(5):
                k.raise_irq(5)
                seen.append(k.irqs_unhandled.get(5, 0))
            # every interrupt still shows in /proc/interrupts
            assert interrupt_counts(k, 5) == [5, 0]
        assert seen == [1, 2, 3, 3, 4]

    async def test_shared_line_handled_by_one_handler(self) -> None:
        """On a shared line one IRQ_HANDLED is enough: the interrupt is not unhandled."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, lambda irq, dev: IRQ_NONE, IRQF_SHARED, "a", object())
            request_irq(5, lambda irq, dev: IRQ_HANDLED, IRQF_SHARED, "b", object())
            k.raise_irq(5)
            assert k.irqs_unhandled.get(5, 0) == 0

    async def test_spurious_interrupt_on_a_free_line(self) -> None:
        """An interrupt on a line without handlers is logged once as spurious, counted each time."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            k.raise_irq(9)
            k.raise_irq(9)
            assert k.irqs_unhandled[9] == 2
            # /proc/interrupts lists only lines that have a handler
            assert " 9:" not in k.proc_interrupts()
        assert log_lines(k).count("irq 9: no handler registered (spurious interrupt)") == 1

    @pytest.mark.slow
    async def test_nobody_cared(self, backend_name: str) -> None:
        """100000 unhandled interrupts in a row: "irq N: nobody cared" is printed once and the
        line is disabled: its handler is not called again."""
        if backend_name != "asyncio":
            pytest.skip("backend-independent bookkeeping; run once (100000 interrupts)")
        calls = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(7, lambda irq, dev: calls.append(1) or IRQ_NONE, 0, "stuck", None)
            for _ in range(100_001):
                k.raise_irq(7)
        assert len(calls) == 100_000
        assert "Disabling IRQ #7" in log_lines(k)
        message = 'irq 7: nobody cared (try booting with the "irqpoll" option)'
        assert log_lines(k).count(message) == 1


class TestProcInterrupts:
    async def test_rendering(self) -> None:
        """/proc/interrupts of a 2-CPU kernel, laid out as kernel/irq/proc.c does, with the
        system rows NMI, LOC, IWI and CAL in the kernel's order."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, lambda irq, dev: IRQ_HANDLED, IRQF_SHARED, "eth0", "a")
            request_irq(5, lambda irq, dev: IRQ_HANDLED, IRQF_SHARED, "eth1", "b")
            request_irq(11, lambda irq, dev: IRQ_HANDLED, 0, "ahci", None)
            k.raise_irq(5)
            k.raise_irq(5, cpu=0)
            k.raise_irq(5, cpu=1)
            k.raise_irq(11, cpu=1)
            text = k.proc_interrupts()
        assert text == (
            " " * 11 + "CPU0       " + "CPU1       " + "\n"
            "  5:          2          1   kdefer   5-edge      eth0, eth1\n"
            " 11:          0          1   kdefer  11-edge      ahci\n"
            "NMI:          0          0   Non-maskable interrupts\n"
            "LOC:          0          0   Local timer interrupts\n"
            "IWI:          0          0   IRQ work interrupts\n"
            "CAL:          0          0   Function call interrupts\n"
        )

    async def test_per_cpu_counts(self) -> None:
        """Each line is counted on the CPU that took the interrupt."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, lambda irq, dev: IRQ_HANDLED, 0, "eth0", None)
            for cpu in (0, 1, 1, None, 1):
                k.raise_irq(5, cpu)
            assert interrupt_counts(k, 5) == [2, 3]

    async def test_registered_line_shows_before_any_interrupt(self) -> None:
        """A requested line is listed with zero counts before it ever fires; freed, it goes."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, lambda irq, dev: IRQ_HANDLED, 0, "eth0", None)
            assert interrupt_counts(k, 5) == [0, 0]
            assert any(line.endswith("  eth0") for line in k.proc_interrupts().splitlines())
            free_irq(5, None)
            assert "eth0" not in k.proc_interrupts()


class TestEffectiveAffinity:
    async def test_lines_spread_over_the_cpus_as_requested(self) -> None:
        """Each line is bound when its first handler is requested, to the CPU with the fewest
        lines (the lowest on a tie); a freed line gives its CPU back; a line without a handler
        answers CPU 0."""
        async with Kernel(nr_cpus=3, hz=250) as k:
            for irq in (40, 41, 42, 43):
                request_irq(irq, lambda i, d: IRQ_HANDLED, 0, f"dev{irq}", None)
            assert [k.irq_effective_cpu(irq) for irq in (40, 41, 42, 43)] == [0, 1, 2, 0]
            free_irq(41, None)
            assert k.irq_effective_cpu(41) == 0  # no handler any more
            request_irq(44, lambda i, d: IRQ_HANDLED, 0, "dev44", None)
            assert k.irq_effective_cpu(44) == 1  # CPU 1 had the fewest lines again
            assert k.irq_effective_cpu(4000) == 0

    async def test_a_shared_line_keeps_its_cpu(self) -> None:
        """Adding or removing a handler of a shared line does not move it; only the last
        free_irq releases it."""
        a, b = object(), object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(30, lambda i, d: IRQ_HANDLED, 0, "first", None)
            assert request_irq(31, lambda i, d: IRQ_HANDLED, IRQF_SHARED, "a", a) == 0
            assert k.irq_effective_cpu(31) == 1
            assert request_irq(31, lambda i, d: IRQ_HANDLED, IRQF_SHARED, "b", b) == 0
            free_irq(31, a)
            assert k.irq_effective_cpu(31) == 1
            free_irq(31, b)
            assert 31 not in k.irq_affinity
            # a refused request binds nothing
            assert request_irq(30, lambda i, d: IRQ_HANDLED, 0, "again", None) == -EBUSY
            assert k.irq_affinity == {30: 0}

    async def test_raise_irq_without_a_task_uses_it(self) -> None:
        """raise_irq from code with no kernel task in its context (a plain callback on the
        loop) delivers to the line's CPU, as a device would."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), 0, "a", None)
            request_irq(6, calls.handler("b"), 0, "b", None)
            token = _current.set(None)
            try:
                k.raise_irq(6)
            finally:
                _current.reset(token)
            k.raise_irq(6)  # from init on CPU 0: the current CPU
        assert [(c[0], c[3], c[4]) for c in calls.log] == [("b", "swapper/1", 1), ("b", "init", 0)]


# ---------------------------------------------------------------------------------------------
# raise_irq: which CPU, which thread
# ---------------------------------------------------------------------------------------------


class TestRaiseIrq:
    async def test_on_another_cpu_interrupts_its_idle_task(self) -> None:
        """raise_irq(irq, cpu=1) runs the handler on CPU 1 in hardirq context as swapper/1."""
        seen: list[tuple[int, str, int, bool]] = []

        def handler(irq: int, dev: object) -> int:
            seen.append((smp_processor_id(), current().comm, current().pid, in_hardirq()))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, handler, 0, "mydev", None)
            k.raise_irq(5, cpu=1)
            k.raise_irq(5, cpu=0)
            # the raising task was not disturbed
            assert (smp_processor_id(), current().comm, preempt_count()) == (0, "init", 0)
        assert seen == [(1, "swapper/1", 0, True), (0, "init", 1, True)]

    async def test_from_another_os_thread(self) -> None:
        """raise_irq through anyio.from_thread.run_sync runs the handler in the loop thread."""
        seen: list[tuple[int, int, bool]] = []

        def handler(irq: int, dev: object) -> int:
            seen.append((threading.get_ident(), smp_processor_id(), in_hardirq()))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, handler, 0, "mydev", None)
            loop_thread = threading.get_ident()
            worker: list[int] = []

            def in_worker() -> None:
                worker.append(threading.get_ident())
                anyio.from_thread.run_sync(k.raise_irq, 5)

            await anyio.to_thread.run_sync(in_worker)
        assert worker != [loop_thread]
        assert seen == [(loop_thread, 0, True)]

    async def test_from_another_os_thread_on_cpu1(self) -> None:
        """From a worker thread an interrupt can target CPU 1 too."""
        seen: list[tuple[int, str]] = []

        def handler(irq: int, dev: object) -> int:
            seen.append((smp_processor_id(), current().comm))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, handler, 0, "mydev", None)
            await anyio.to_thread.run_sync(lambda: anyio.from_thread.run_sync(k.raise_irq, 5, 1))
        assert seen == [(1, "swapper/1")]

    async def test_interrupt_raised_by_a_handler_waits_for_it(self) -> None:
        """An interrupt raised on the same CPU inside a handler (IRQs off) runs after it returns."""
        order: list[str] = []

        def first(irq: int, dev: object) -> int:
            order.append("first starts")
            k.raise_irq(6)
            order.append("first returns")
            return IRQ_HANDLED

        def second(irq: int, dev: object) -> int:
            order.append(f"second at {preempt_count():#x}")
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, first, 0, "first", None)
            request_irq(6, second, 0, "second", None)
            k.raise_irq(5)
            order.append("raise_irq returned")
        assert order == ["first starts", "first returns", "second at 0x10000", "raise_irq returned"]

    async def test_interrupt_from_a_softirq_nests(self) -> None:
        """Softirqs run with IRQs on: an interrupt raised in one is taken at once (0x10000 added)."""
        order: list[str] = []

        def action() -> None:
            order.append(f"softirq at {preempt_count():#x}")
            k.raise_irq(6)
            order.append("softirq returns")

        def handler(irq: int, dev: object) -> int:
            order.append(f"handler at {preempt_count():#x}")
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, action)
            request_irq(6, handler, 0, "nic", None)
            request_irq(
                5, lambda irq, dev: raise_softirq(NET_RX_SOFTIRQ) or IRQ_HANDLED, 0, "x", None
            )
            k.raise_irq(5)
        assert order == ["softirq at 0x100", "handler at 0x10100", "softirq returns"]


# ---------------------------------------------------------------------------------------------
# Interrupts disabled
# ---------------------------------------------------------------------------------------------


class TestIrqsOff:
    async def test_local_irq_save_defers_until_restore(self) -> None:
        """An interrupt raised under local_irq_save() runs at local_irq_restore(), not before."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), 0, "mydev", None)
            flags = local_irq_save()
            assert irqs_disabled()
            k.raise_irq(5)
            k.raise_irq(5)
            assert calls.log == []
            local_irq_restore(flags)
            assert calls.names == ["a", "a"]
            assert not irqs_disabled()

    async def test_nested_save_restores_only_at_the_outermost(self) -> None:
        """With nested local_irq_save(), only the outermost restore delivers the interrupt."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), 0, "mydev", None)
            outer = local_irq_save()
            inner = local_irq_save()
            k.raise_irq(5)
            local_irq_restore(inner)
            assert calls.log == []
            assert irqs_disabled()
            local_irq_restore(outer)
            assert calls.names == ["a"]

    async def test_spin_lock_irqsave_defers_until_unlock(self) -> None:
        """An interrupt raised under spin_lock_irqsave() runs at spin_unlock_irqrestore()."""
        seen: list[int] = []

        def handler(irq: int, dev: object) -> int:
            seen.append(preempt_count())
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, handler, 0, "mydev", None)
            lock = SpinLock()
            flags = spin_lock_irqsave(lock)
            k.raise_irq(5)
            assert seen == []
            spin_unlock_irqrestore(lock, flags)
            # delivered after the lock was dropped: only the hardirq offset is set
            assert seen == [0x10000]

    async def test_irqs_off_on_cpu0_does_not_hold_cpu1(self) -> None:
        """Disabling interrupts on CPU 0 does not delay an interrupt raised on CPU 1."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), 0, "mydev", None)
            flags = local_irq_save()
            k.raise_irq(5, cpu=1)
            assert calls.log == [("a", 5, None, "swapper/1", 1)]
            local_irq_restore(flags)
            assert len(calls.log) == 1

    async def test_deferred_interrupt_runs_its_softirqs_on_exit(self) -> None:
        """An interrupt delivered at local_irq_restore() still runs its softirqs on irq exit."""
        ran: list[str] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: ran.append(current().comm))
            request_irq(
                5, lambda irq, dev: raise_softirq(NET_RX_SOFTIRQ) or IRQ_HANDLED, 0, "x", None
            )
            flags = local_irq_save()
            k.raise_irq(5)
            local_irq_restore(flags)
            assert ran == ["init"]


# ---------------------------------------------------------------------------------------------
# Exceptions in handlers
# ---------------------------------------------------------------------------------------------


class TestHandlerException:
    async def test_exception_panics_with_cause(self) -> None:
        """An exception in a handler panics: KernelPanic (no group) out of `async with`, cause kept."""
        boom = ZeroDivisionError("division by zero in the driver")
        after: list[str] = []

        def handler(irq: int, dev: object) -> int:
            raise boom

        async def body(k: Kernel) -> None:
            request_irq(5, handler, 0, "buggy", None)
            k.raise_irq(5)
            after.append("raise_irq returned")

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            async with k:
                await body(k)
        assert type(info.value) is KernelPanic
        assert info.value.__cause__ is boom
        assert after == []
        lines = log_lines(k)
        assert "Kernel panic - not syncing: Fatal exception in interrupt" in lines
        # the oops names the exception and the line
        assert any("ZeroDivisionError" in line and "irq 5" in line for line in lines)
        assert len(k.oopses) == 1
        assert k.oopses[0].exception is boom

    async def test_exception_on_another_cpu_panics(self) -> None:
        """A handler failing on CPU 1 panics the kernel the same way."""
        boom = LookupError("no such register")

        def handler(irq: int, dev: object) -> int:
            raise boom

        async def body(k: Kernel) -> None:
            request_irq(5, handler, 0, "buggy", None)
            k.raise_irq(5, cpu=1)

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            async with k:
                await body(k)
        assert info.value.__cause__ is boom
        assert k.oopses[0].cpu == 1

    async def test_raise_irq_on_a_stopped_kernel(self) -> None:
        """raise_irq on a kernel not booted yet, or shut down, raises NoKernelError."""
        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(NoKernelError, match="not running"):
            k.raise_irq(5)
        async with k:
            request_irq(5, lambda irq, dev: IRQ_HANDLED, 0, "mydev", None)
        with pytest.raises(NoKernelError, match="not running"):
            k.raise_irq(5)

    async def test_raise_irq_after_a_panic(self) -> None:
        """After a panic the machine is dead: raise_irq raises the same KernelPanic again."""
        calls = Calls()

        async def body(k: Kernel) -> None:
            request_irq(5, calls.handler("a"), 0, "mydev", None)
            request_irq(6, lambda irq, dev: 1 // 0, 0, "buggy", None)
            k.raise_irq(6)

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            async with k:
                await body(k)
        with pytest.raises(KernelPanic) as again:
            k.raise_irq(5)
        assert again.value is info.value
        assert calls.log == []


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


async def sleepy_handler(irq: int, dev: object) -> int:
    await anyio.lowlevel.checkpoint()
    return IRQ_HANDLED


class Line(enum.IntEnum):
    """Line numbers as a driver might name them: an int subclass is an int."""

    MYDEV = 5


class TestArguments:
    """Every rejection is a TypeError or ValueError in the _check.py wording, made before
    anything changes: nothing is registered, counted or delivered."""

    @pytest.mark.parametrize(
        ("args", "exc", "message"),
        [
            pytest.param(
                ("5", IRQ_HANDLED, 0, "x"),
                TypeError,
                "request_irq() expects an int for 'irq', got str",
                id="irq-str",
            ),
            pytest.param(
                (True, IRQ_HANDLED, 0, "x"),
                TypeError,
                "request_irq() expects an int for 'irq', got bool",
                id="irq-bool",
            ),
            pytest.param(
                (-1, IRQ_HANDLED, 0, "x"),
                ValueError,
                "request_irq() expects an int from 0 to 4095 for 'irq', got -1",
                id="irq-negative",
            ),
            pytest.param(
                (4096, IRQ_HANDLED, 0, "x"),
                ValueError,
                "request_irq() expects an int from 0 to 4095 for 'irq', got 4096",
                id="irq-too-big",
            ),
            pytest.param(
                (5, IRQ_HANDLED, None, "x"),
                TypeError,
                "request_irq() expects an int for 'flags', got NoneType",
                id="flags-none",
            ),
            pytest.param(
                (5, IRQ_HANDLED, -1, "x"),
                ValueError,
                "request_irq() expects IRQF_* flags (an int >= 0) for 'flags', got -1",
                id="flags-negative",
            ),
            pytest.param(
                (5, IRQ_HANDLED, 0, None),
                TypeError,
                "request_irq() expects a str for 'name', got NoneType",
                id="name-none",
            ),
            pytest.param(
                (5, IRQ_HANDLED, 0, b"mydev"),
                TypeError,
                "request_irq() expects a str for 'name', got bytes",
                id="name-bytes",
            ),
        ],
    )
    async def test_request_irq_bad_values(
        self, args: tuple[object, int, object, object], exc: type[Exception], message: str
    ) -> None:
        """A bad line number, flags or name is refused with the exact message; the line stays
        free and unbound."""
        irq, ret, flags, name = args
        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(exc) as info:
                request_irq(irq, lambda i, d: ret, flags, name, None)  # type: ignore[arg-type]
            assert str(info.value) == message
            assert k.irq_actions == {}
            assert k.irq_affinity == {}
            assert [row[:4] for row in k.proc_interrupts().splitlines()[1:]] == [
                "NMI:",
                "LOC:",
                "IWI:",
                "CAL:",
            ]

    async def test_async_handler_rejected(self) -> None:
        """An `async def` handler is a TypeError naming the one rule; nothing is registered,
        so a plain handler can take the line afterwards."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(TypeError) as info:
                request_irq(5, sleepy_handler, 0, "sleepy", None)
            assert str(info.value).startswith(
                "request_irq(): an interrupt handler runs in atomic context and must be a plain "
                "function, but "
            )
            assert "sleepy_handler is `async def`" in str(info.value)
            assert request_irq(5, lambda irq, dev: IRQ_HANDLED, 0, "ok", None) == 0
            k.raise_irq(5)
            assert interrupt_counts(k, 5) == [1, 0]

    async def test_non_callable_rejected(self) -> None:
        """A handler that is not callable is a TypeError showing the call it must take."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(TypeError) as info:
                request_irq(5, "handler", 0, "bad", None)  # type: ignore[arg-type]
            assert str(info.value) == (
                "request_irq() expects a function callable as handler(irq, dev) for 'handler', "
                "got str"
            )
            assert k.irq_actions == {}

    async def test_handler_that_cannot_take_irq_and_dev(self) -> None:
        """A handler taking one argument would fail at the first interrupt: refused now."""

        def one(irq: int) -> int:
            return IRQ_HANDLED  # pragma: no cover

        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(TypeError) as info:
                request_irq(5, one, 0, "one", None)  # type: ignore[arg-type]
            assert str(info.value).startswith(
                "request_irq() expects a function callable as handler(irq, dev) for 'handler', but "
            )
            assert str(info.value).endswith(
                "one(irq: 'int') cannot be called with 2 positional arguments"
            )
            assert k.irq_actions == {}

    async def test_any_dev_cookie_and_int_subclass_line(self) -> None:
        """*dev* is an opaque cookie (anything goes, as a void *); an IntEnum line is an int."""
        calls = Calls()
        cookie = ["any", "object"]
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(Line.MYDEV, calls.handler("a"), 0, "mydev", cookie) == 0
            k.raise_irq(Line.MYDEV)
            assert free_irq(Line.MYDEV, cookie) == "mydev"
        assert calls.log == [("a", 5, cookie, "init", 0)]

    @pytest.mark.parametrize(
        ("irq", "exc", "message"),
        [
            ("5", TypeError, "free_irq() expects an int for 'irq', got str"),
            (None, TypeError, "free_irq() expects an int for 'irq', got NoneType"),
            (4096, ValueError, "free_irq() expects an int from 0 to 4095 for 'irq', got 4096"),
        ],
    )
    async def test_free_irq_bad_line(self, irq: object, exc: type[Exception], message: str) -> None:
        """free_irq of a bad line number is refused before anything is looked up or warned."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), 0, "mydev", None)
            with pytest.raises(exc) as info:
                free_irq(irq, None)  # type: ignore[arg-type]
            assert str(info.value) == message
            k.raise_irq(5)
        assert calls.names == ["a"]
        assert not any("WARNING" in line for line in log_lines(k))

    @pytest.mark.parametrize(
        ("irq", "cpu", "exc", "message"),
        [
            ("5", None, TypeError, "Kernel.raise_irq() expects an int for 'irq', got str"),
            (5.0, None, TypeError, "Kernel.raise_irq() expects an int for 'irq', got float"),
            (
                -1,
                None,
                ValueError,
                "Kernel.raise_irq() expects an int from 0 to 4095 for 'irq', got -1",
            ),
            (
                4096,
                0,
                ValueError,
                "Kernel.raise_irq() expects an int from 0 to 4095 for 'irq', got 4096",
            ),
            (
                5,
                "1",
                TypeError,
                "Kernel.raise_irq() expects an int (a CPU number) or None for 'cpu', got str",
            ),
            (
                5,
                True,
                TypeError,
                "Kernel.raise_irq() expects an int (a CPU number) or None for 'cpu', got bool",
            ),
            (
                5,
                -1,
                ValueError,
                "Kernel.raise_irq() expects a CPU number from 0 to 1 for 'cpu', got -1",
            ),
            (
                5,
                2,
                ValueError,
                "Kernel.raise_irq() expects a CPU number from 0 to 1 for 'cpu', got 2",
            ),
        ],
    )
    async def test_raise_irq_bad_arguments(
        self, irq: object, cpu: object, exc: type[Exception], message: str
    ) -> None:
        """A bad line or CPU is refused with the exact message; no handler runs, nothing is
        counted."""
        calls = Calls()
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, calls.handler("a"), 0, "mydev", None)
            with pytest.raises(exc) as info:
                k.raise_irq(irq, cpu)  # type: ignore[arg-type]
            assert str(info.value) == message
            assert interrupt_counts(k, 5) == [0, 0]
        assert calls.log == []

    async def test_single_cpu_wording(self) -> None:
        """On a one-CPU kernel the only valid CPU is named as such."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(ValueError) as info:
                k.raise_irq(5, 1)
        assert str(info.value) == "Kernel.raise_irq() expects CPU 0 (the only one) for 'cpu', got 1"

    async def test_arguments_are_checked_before_the_kernel_state(self) -> None:
        """On a kernel that is not running, a bad argument is still a TypeError (arguments
        first), and good arguments get the NoKernelError."""
        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(TypeError):
            k.raise_irq("5")  # type: ignore[arg-type]
        with pytest.raises(NoKernelError, match="the kernel is not running"):
            k.raise_irq(5)

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(
                lambda: request_irq(5, lambda i, d: IRQ_HANDLED, 0, "x", None), id="request_irq"
            ),
            pytest.param(lambda: free_irq(5, None), id="free_irq"),
            pytest.param(local_irq_save, id="local_irq_save"),
            pytest.param(lambda: local_irq_restore(0), id="local_irq_restore"),
            pytest.param(irqs_disabled, id="irqs_disabled"),
        ],
    )
    async def test_no_kernel(self, call: Callable[[], object]) -> None:
        """Interrupt APIs with no kernel running raise NoKernelError (a RuntimeError)."""
        with pytest.raises(RuntimeError, match="no kdefer_async Kernel is running") as info:
            call()
        assert isinstance(info.value, NoKernelError)


class TestNestedAcrossCpus:
    async def test_interrupt_to_a_cpu_busy_in_softirq_nests_inside_it(self) -> None:
        """An interrupt sent to a CPU that is serving softirqs further down the stack borrows
        that context: its irq exit does not run the CPU's softirqs re-entrantly."""
        events: list[str] = []

        async with Kernel(nr_cpus=2, hz=250) as k:

            def z_cb(t: Tasklet) -> None:
                events.append(f"Z cpu{smp_processor_id()}")

            z = Tasklet(z_cb)

            def on_cpu0(irq: int, dev: object) -> int:
                tasklet_schedule(z)
                return IRQ_HANDLED

            def y_cb(t: Tasklet) -> None:
                events.append("Y start")
                k.raise_irq(6, cpu=0)
                events.append("Y end")

            y = Tasklet(y_cb)

            def on_cpu1(irq: int, dev: object) -> int:
                tasklet_schedule(y)
                return IRQ_HANDLED

            def x_cb(t: Tasklet) -> None:
                events.append("X start")
                k.raise_irq(5, cpu=1)
                events.append("X end")

            x = Tasklet(x_cb)
            request_irq(5, on_cpu1, 0, "to-cpu1", None)
            request_irq(6, on_cpu0, 0, "to-cpu0", None)
            local_bh_disable()
            tasklet_schedule(x)
            local_bh_enable()
        assert events == ["X start", "Y start", "Y end", "X end", "Z cpu0"]
