"""irq_work: kernel-semantics-2 §3 and the IW behaviours of §11.3, on every backend.

An item queued from the test task (init, task context on CPU 0, interrupts on) runs at once, in
the IRQ_WORK self-interrupt, before ``irq_work_queue()`` returns; inside ``local_irq_disable()``
or a hardirq handler it waits until interrupts are on again. Lazy items wait for the CPU's tick:
exact jiffies are asserted on the virtual backends only.

Every behaviour IW-01 … IW-10 is checked here. Not modelled (§3.5 and the module docstring of
``_irq_work.py``): PREEMPT_RT's ``irq_work/N`` threads (the model is non-RT, so IW-10 checks
that ``IRQ_WORK_INIT_HARD`` and plain items both run in hardirq under ``threadirqs``), and the
"tick stopped" branch of lazy items (a CPU with lazy items always keeps its next tick).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from helpers import logged

from kdefer_async import (
    DEFINE_IRQ_WORK,
    IRQ_HANDLED,
    IRQ_WORK_BUSY,
    IRQ_WORK_HARD_IRQ,
    IRQ_WORK_INIT,
    IRQ_WORK_INIT_HARD,
    IRQ_WORK_INIT_LAZY,
    IRQ_WORK_LAZY,
    IRQ_WORK_PENDING,
    NET_RX_SOFTIRQ,
    IrqWork,
    Kernel,
    KernelBug,
    KernelPanic,
    SpinLock,
    current,
    in_hardirq,
    in_nmi,
    in_serving_softirq,
    init_irq_work,
    irq_work_is_busy,
    irq_work_is_pending,
    irq_work_queue,
    irq_work_queue_on,
    irq_work_sync,
    irqs_disabled,
    local_irq_disable,
    local_irq_enable,
    local_irq_restore,
    local_irq_save,
    open_softirq,
    raise_softirq,
    request_irq,
    smp_processor_id,
    spin_lock,
    spin_unlock,
)
from kdefer_async._consts import CALL_FUNCTION_VECTOR, IRQ_WORK_VECTOR

pytestmark = pytest.mark.anyio

IRQ = 10
#: How long a lazy item may take to run on real time (a few ticks at HZ=250).
WAIT_REAL = 5.0


def iwi(k: Kernel) -> list[int]:
    """The IWI row of /proc/interrupts (IRQ_WORK self-interrupts per CPU)."""
    return [c.irq_stat.get(IRQ_WORK_VECTOR, 0) for c in k.cpus]


def cal(k: Kernel) -> list[int]:
    """The CAL row of /proc/interrupts (function call IPIs per CPU)."""
    return [c.irq_stat.get(CALL_FUNCTION_VECTOR, 0) for c in k.cpus]


def proc_row(k: Kernel, label: str) -> list[int]:
    """One system row of ``k.proc_interrupts()``, as printed."""
    for line in k.proc_interrupts().splitlines():
        if line.startswith(label + ":"):
            return [int(n) for n in line.split()[1 : 1 + k.nr_cpus]]
    raise AssertionError(f"no {label} row")


class Recorder:
    """An irq_work callback that records where and how it ran, then calls *then*."""

    def __init__(self, name: str = "w", then: Callable[[IrqWork], object] | None = None) -> None:
        self.name = name
        self.then = then
        self.runs: list[dict[str, Any]] = []

    def __call__(self, work: IrqWork) -> None:
        self.runs.append(
            {
                "name": self.name,
                "cpu": smp_processor_id(),
                "hardirq": in_hardirq(),
                "nmi": in_nmi(),
                "irqs_disabled": irqs_disabled(),
                "pending": irq_work_is_pending(work),
                "busy": irq_work_is_busy(work),
                "comm": current().comm,
            }
        )
        if self.then is not None:
            self.then(work)


# --- queueing and running: IW-01 .. IW-04 ----------------------------------------------------


class TestQueue:
    async def test_queue_runs_before_next_await(self) -> None:
        """IW-01: from task context with IRQs on: True; run in hardirq on CPU 0, in the
        IRQ_WORK interrupt, before irq_work_queue() returns; no tick."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            w = IrqWork(rec)
            loc = list(k.loc_interrupts)
            assert irq_work_queue(w) is True
            assert len(rec.runs) == 1
            run = rec.runs[0]
            assert (run["cpu"], run["hardirq"], run["irqs_disabled"]) == (0, True, True)
            assert run["comm"] == current().comm  # the interrupted task is borrowed
            assert list(k.loc_interrupts) == loc
            assert iwi(k) == [1, 0]
            assert proc_row(k, "IWI") == [1, 0]
            assert not irq_work_is_busy(w)

    async def test_queue_twice_while_pending(self) -> None:
        """IW-02: IRQs off: True, then False; pending and busy; one run on enable."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            w = IrqWork(rec)
            local_irq_disable()
            assert irq_work_queue(w) is True
            assert irq_work_queue(w) is False
            assert irq_work_is_pending(w)
            assert irq_work_is_busy(w)
            assert w.flags & (IRQ_WORK_PENDING | IRQ_WORK_BUSY) == 3
            assert rec.runs == []
            local_irq_enable()
            assert len(rec.runs) == 1
            assert iwi(k) == [1, 0]
            assert not irq_work_is_pending(w)
            assert not irq_work_is_busy(w)

    async def test_requeue_from_callback(self) -> None:
        """IW-03: inside the callback pending=F busy=T; a queue there succeeds and runs it once
        more (in a second self-interrupt); afterwards both predicates are false."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            queued: list[bool] = []

            def again(work: IrqWork) -> None:
                if len(rec.runs) == 1:
                    queued.append(irq_work_queue(work))

            rec = Recorder(then=again)
            w = IrqWork(rec)
            assert irq_work_queue(w)
            assert queued == [True]
            assert len(rec.runs) == 2
            assert all((r["pending"], r["busy"]) == (False, True) for r in rec.runs)
            assert (irq_work_is_pending(w), irq_work_is_busy(w)) == (False, False)
            assert iwi(k) == [2, 0]

    async def test_lifo_within_one_run(self) -> None:
        """IW-04: IRQs off, queue A, B, C → on enable, one interrupt runs C, B, A."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            order: list[str] = []
            items = [IrqWork(lambda w, n=n: order.append(n)) for n in "ABC"]
            flags = local_irq_save()
            for w in items:
                assert irq_work_queue(w)
            assert order == []
            local_irq_restore(flags)
            assert order == ["C", "B", "A"]
            assert iwi(k) == [1, 0]

    async def test_queue_on_this_cpu_is_local(self) -> None:
        """irq_work_queue_on(w, this CPU) is irq_work_queue(): the self-interrupt, no IPI."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            assert irq_work_queue_on(IrqWork(rec), 0)
            assert [(r["cpu"], r["hardirq"]) for r in rec.runs] == [(0, True)]
            assert (iwi(k), cal(k)) == ([1, 0], [0, 0])

    async def test_initialisers(self) -> None:
        """The INIT forms set the flags; init_irq_work() resets a used item."""
        async with Kernel(nr_cpus=1, hz=250):
            f = Recorder()
            assert IRQ_WORK_INIT_LAZY(f).flags == IRQ_WORK_LAZY
            assert IRQ_WORK_INIT_HARD(f).flags == IRQ_WORK_HARD_IRQ
            assert IRQ_WORK_INIT(f).flags == 0 == DEFINE_IRQ_WORK(f).flags
            assert IrqWork(f, IRQ_WORK_LAZY).flags == IRQ_WORK_LAZY
            w = IrqWork()
            init_irq_work(w, f)
            assert (w.func, w.flags) == (f, 0)
            assert irq_work_queue(w)
            assert len(f.runs) == 1
            assert "IrqWork" in repr(w)

    async def test_exception_in_callback_panics(self) -> None:
        """An exception in an irq_work callback is an oops in interrupt: a panic."""
        k = Kernel(nr_cpus=1, hz=250)

        def boom(_w: IrqWork) -> None:
            raise RuntimeError("boom")

        with pytest.raises(KernelPanic) as info:
            async with k:
                irq_work_queue(IrqWork(boom))
        assert isinstance(info.value.__cause__, RuntimeError)
        assert logged(k, "BUG: unhandled exception in irq_work boom: RuntimeError: boom") == 1
        assert logged(k, "] Kernel panic - not syncing: Fatal exception in interrupt") == 1


# --- lazy items: IW-05, IW-06 ----------------------------------------------------------------


class TestLazy:
    async def test_lazy_waits_for_tick(self, virtual: bool) -> None:
        """IW-05: a lazy item raises no interrupt and runs in the next tick's interrupt, at
        jiffies J+1 (exactly, on virtual time)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            at: list[int] = []
            rec = Recorder(then=lambda _w: at.append(k.jiffies))
            w = IRQ_WORK_INIT_LAZY(rec)
            j = k.jiffies
            assert irq_work_queue(w)
            assert rec.runs == []
            assert irq_work_is_pending(w)
            await anyio.lowlevel.checkpoint()
            assert rec.runs == [] or k.jiffies > j
            with anyio.fail_after(WAIT_REAL):
                await irq_work_sync(w)
            assert len(rec.runs) == 1
            assert (rec.runs[0]["cpu"], rec.runs[0]["hardirq"]) == (0, True)
            assert rec.runs[0]["comm"] == "swapper/0"  # the tick, on the idle task
            assert at == [j + 1] if virtual else at[0] > j
            assert iwi(k) == [0, 0]

    async def test_raised_before_lazy_in_one_interrupt(self) -> None:
        """IW-06: lazy L then non-lazy N with IRQs off → one IRQ_WORK interrupt runs N, L."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            order: list[str] = []
            lazy = IRQ_WORK_INIT_LAZY(lambda w: order.append("L"))
            now = IrqWork(lambda w: order.append("N"))
            loc = list(k.loc_interrupts)
            local_irq_disable()
            irq_work_queue(lazy)
            irq_work_queue(now)
            local_irq_enable()
            assert order == ["N", "L"]
            assert iwi(k) == [1, 0]
            assert list(k.loc_interrupts) == loc


# --- other CPUs: IW-07 -----------------------------------------------------------------------


class TestQueueOn:
    async def test_queue_on_remote(self) -> None:
        """IW-07: irq_work_queue_on(w, 1) from CPU 0 → True; runs on CPU 1 in hardirq, in its
        CALL_FUNCTION IPI (the CAL row), not an IRQ_WORK interrupt."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            w = IrqWork(rec)
            assert irq_work_queue_on(w, 1) is True
            assert [(r["cpu"], r["hardirq"]) for r in rec.runs] == [(1, True)]
            assert rec.runs[0]["comm"] == "swapper/1"
            assert (cal(k), iwi(k)) == ([0, 1], [0, 0])
            assert proc_row(k, "CAL") == [0, 1]

    async def test_pending_locally_blocks_remote_queue(self) -> None:
        """IW-07: IRQs off on CPU 0: queue → True, queue_on(w, 1) → False; one run, on CPU 0."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            w = IrqWork(rec)
            local_irq_disable()
            assert irq_work_queue(w) is True
            assert irq_work_queue_on(w, 1) is False
            local_irq_enable()
            assert [r["cpu"] for r in rec.runs] == [0]
            assert cal(k) == [0, 0]

    async def test_remote_lazy_goes_through_the_ipi(self) -> None:
        """A lazy item queued on another CPU runs in that CPU's IPI, without waiting a tick."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            assert irq_work_queue_on(IRQ_WORK_INIT_LAZY(rec), 1)
            assert [r["cpu"] for r in rec.runs] == [1]
            assert cal(k) == [0, 1]

    async def test_remote_while_target_in_hardirq_waits_for_its_exit(self) -> None:
        """A CPU running a hardirq handler takes the IPI after that handler returns."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            order: list[str] = []
            w = IrqWork(lambda _w: order.append(f"work on {smp_processor_id()}"))

            def on_cpu0(irq: int, dev: object) -> int:
                assert irq_work_queue_on(w, 1)  # CPU 1 is in its handler: held
                order.append("queued")
                return IRQ_HANDLED

            def on_cpu1(irq: int, dev: object) -> int:
                k.raise_irq(IRQ + 1, cpu=0)
                order.append("cpu1 handler returns")
                return IRQ_HANDLED

            request_irq(IRQ, on_cpu1, 0, "one", None)
            request_irq(IRQ + 1, on_cpu0, 0, "zero", None)
            k.raise_irq(IRQ, cpu=1)
            assert order == ["queued", "cpu1 handler returns", "work on 1"]


# --- interaction with hardirq handlers and softirqs: IW-08 -----------------------------------


class TestSoftirqOrder:
    async def test_irq_work_before_the_handlers_softirq(self) -> None:
        """IW-08: a hardirq handler queues w and raises a softirq → w runs first (x86 takes the
        self-interrupt when softirq processing enables interrupts), then the softirq."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            order: list[str] = []
            w = IrqWork(lambda _w: order.append("irq_work"))
            open_softirq(NET_RX_SOFTIRQ, lambda: order.append("softirq"))

            def handler(irq: int, dev: object) -> int:
                irq_work_queue(w)
                raise_softirq(NET_RX_SOFTIRQ)
                order.append("handler")
                return IRQ_HANDLED

            request_irq(IRQ, handler, 0, "dev", None)
            k.raise_irq(IRQ, cpu=0)
            assert order == ["handler", "irq_work", "softirq"]

    async def test_softirq_raised_by_callback_runs_at_its_exit(self) -> None:
        """IW-08: a softirq the callback raises runs at the irq_work interrupt's irq_exit,
        before irq_work_queue() returns, in the borrowed task."""
        async with Kernel(nr_cpus=2, hz=250):
            order: list[tuple[str, bool, str]] = []
            me = current().comm
            open_softirq(
                NET_RX_SOFTIRQ,
                lambda: order.append(("softirq", in_serving_softirq(), current().comm)),
            )

            def cb(_w: IrqWork) -> None:
                raise_softirq(NET_RX_SOFTIRQ)
                order.append(("irq_work", in_hardirq(), current().comm))

            irq_work_queue(IrqWork(cb))
            order.append(("returned", False, me))
            assert order == [("irq_work", True, me), ("softirq", True, me), ("returned", False, me)]


# --- irq_work_sync: IW-09 --------------------------------------------------------------------


class TestSync:
    async def test_sync_waits_for_the_callback(self, virtual: bool) -> None:
        """IW-09: await irq_work_sync(w) after queueing returns once the callback finished."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            w = IRQ_WORK_INIT_LAZY(rec)
            j = k.jiffies
            irq_work_queue(w)
            with anyio.fail_after(WAIT_REAL):
                await irq_work_sync(w)
            assert len(rec.runs) == 1
            assert not irq_work_is_busy(w)
            assert k.jiffies == j + 1 if virtual else k.jiffies > j
            await irq_work_sync(w)  # idle: returns at once (a checkpoint)
            assert k.jiffies == j + 1 if virtual else k.jiffies > j

    async def test_sync_under_spinlock_is_atomic_sleep(self) -> None:
        """IW-09: awaited while holding a spinlock → the atomic-sleep report (and KernelBug)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = SpinLock()
            w = IrqWork(Recorder())
            spin_lock(lock)
            try:
                with pytest.raises(KernelBug):
                    await irq_work_sync(w)
            finally:
                spin_unlock(lock)
            assert logged(k, "BUG: sleeping function called from invalid context") == 1

    async def test_sync_with_irqs_disabled_warns(self) -> None:
        """With interrupts off: lockdep's WARN, then the atomic-sleep report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            w = IrqWork(Recorder())
            local_irq_disable()
            try:
                with pytest.raises(KernelBug):
                    irq_work_sync(w)
            finally:
                local_irq_enable()
            lines = k.dmesg()
            warning = next(i for i, x in enumerate(lines) if "WARNING: CPU: 0" in x)
            bug = next(i for i, x in enumerate(lines) if "BUG: sleeping function" in x)
            assert warning < bug

    async def test_sync_from_own_callback_is_reported(self) -> None:
        """irq_work_sync(w) in w's callback: the lockup is reported and raised (KernelBug,
        then the panic of an exception in interrupt), never a hang."""
        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            async with k:
                irq_work_queue(IrqWork(lambda w: irq_work_sync(w)))
        assert isinstance(info.value.__cause__, KernelBug)
        assert "would wait for itself forever" in str(info.value.__cause__)
        assert logged(k, "Watchdog detected hard LOCKUP on cpu 0") == 1
        assert logged(k, "BUG: sleeping function called from invalid context") == 1

    async def test_sync_of_other_item_in_callback_is_atomic_sleep(self) -> None:
        """From another item's callback: the atomic-sleep report only, no lockup report."""
        k = Kernel(nr_cpus=2, hz=250)
        other = IrqWork(Recorder())
        with pytest.raises(KernelPanic) as info:
            async with k:
                irq_work_queue(IrqWork(lambda _w: irq_work_sync(other)))
        assert isinstance(info.value.__cause__, KernelBug)
        assert logged(k, "hard LOCKUP") == 0
        assert logged(k, "BUG: sleeping function called from invalid context") == 1


# --- contexts: IW-10, NMI ----------------------------------------------------------------------


class TestContexts:
    async def test_threadirqs_hard_and_plain_run_in_hardirq(self) -> None:
        """IW-10: Kernel(threadirqs=True): a HARD item and a plain one both run in hardirq."""
        async with Kernel(nr_cpus=2, hz=250, threadirqs=True) as k:
            hard, plain = Recorder("hard"), Recorder("plain")
            irq_work_queue(IRQ_WORK_INIT_HARD(hard))
            irq_work_queue(IrqWork(plain))
            assert [r["hardirq"] for r in hard.runs + plain.runs] == [True, True]
            # in the self-interrupt, on the task it interrupted: no irq_work/N thread
            assert [r["comm"] for r in hard.runs + plain.runs] == [current().comm] * 2
            assert iwi(k) == [2, 0]

    async def test_queue_from_nmi_runs_after_it(self) -> None:
        """Legal in NMI: queued (True), not run inside the NMI, run when the NMI returns, in
        plain hardirq context."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            w = IrqWork(rec)
            seen: list[object] = []

            def nmi() -> None:
                seen.append(irq_work_queue(w))
                seen.append(len(rec.runs))

            k.raise_nmi(nmi)
            assert seen == [True, 0]
            assert [(r["hardirq"], r["nmi"]) for r in rec.runs] == [(True, False)]
            assert logged(k, "WARNING") == 0

    async def test_queue_on_remote_from_nmi_warns(self) -> None:
        """irq_work_queue_on() for another CPU from an NMI: WARN_ON_ONCE(in_nmi()); queued."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            rec = Recorder()
            k.raise_nmi(lambda: irq_work_queue_on(IrqWork(rec), 1))
            k.raise_nmi(lambda: irq_work_queue_on(IrqWork(rec), 1))
            assert [r["cpu"] for r in rec.runs] == [1, 1]
            assert logged(k, "WARNING: CPU: 0") == 1

    async def test_callback_returning_awaitable_reports(self) -> None:
        """A callback that returns an awaitable tried to sleep: scheduling while atomic."""
        async with Kernel(nr_cpus=1, hz=250) as k:

            async def later() -> None:
                pass

            def cb(_w: IrqWork) -> object:
                return later()

            irq_work_queue(IrqWork(cb))
            assert logged(k, "BUG: scheduling while atomic") == 1


# --- arguments -------------------------------------------------------------------------------


class TestArguments:
    async def test_async_callback_is_rejected(self) -> None:
        """An async def callback is a TypeError at registration (the one rule)."""

        async def cb(_w: IrqWork) -> None:
            pass

        async with Kernel(nr_cpus=1, hz=250):
            for make, name in [
                (IrqWork, "IrqWork"),
                (DEFINE_IRQ_WORK, "DEFINE_IRQ_WORK"),
                (IRQ_WORK_INIT_LAZY, "IRQ_WORK_INIT_LAZY"),
                (IRQ_WORK_INIT_HARD, "IRQ_WORK_INIT_HARD"),
            ]:
                with pytest.raises(
                    TypeError,
                    match=rf"^{name}\(\): an irq_work callback runs in atomic context and "
                    r"must be a plain function, but .*cb is `async def`",
                ):
                    make(cb)  # type: ignore[operator]

    async def test_callback_arity(self) -> None:
        """A callback that cannot take the work is a TypeError naming the expected call."""
        async with Kernel(nr_cpus=1, hz=250):
            w = IrqWork()
            with pytest.raises(
                TypeError,
                match=r"^init_irq_work\(\) expects a function callable as func\(work\) for "
                r"'func', but .*<lambda>\(\) cannot be called with 1 positional argument$",
            ):
                init_irq_work(w, lambda: None)  # type: ignore[arg-type,misc]
            assert w.func is None

    @pytest.mark.parametrize(
        "fn",
        [irq_work_queue, irq_work_is_pending, irq_work_is_busy],
        ids=lambda f: f.__name__,
    )
    async def test_not_an_irq_work(self, fn: Callable[[IrqWork], object]) -> None:
        """None or a look-alike is a TypeError with the standard wording."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError, match=rf"^{fn.__name__}\(\) expects an IrqWork for 'work', got NoneType$"
            ):
                fn(None)  # type: ignore[arg-type]

    async def test_uninitialised_is_a_value_error_and_changes_nothing(self) -> None:
        """Queueing an item never initialised: ValueError, and the item stays free."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            w = IrqWork()
            for call in (lambda: irq_work_queue(w), lambda: irq_work_queue_on(w, 1)):
                with pytest.raises(
                    ValueError,
                    match=r"expects an IrqWork set up by init_irq_work\(\) or IrqWork\(func\) "
                    r"for 'work'",
                ):
                    call()
            assert w.flags == 0
            assert (iwi(k), cal(k)) == ([0, 0], [0, 0])

    async def test_queue_on_bad_cpu(self) -> None:
        """irq_work_queue_on() with a CPU the kernel does not have: ValueError, not queued."""
        async with Kernel(nr_cpus=2, hz=250):
            w = IrqWork(Recorder())
            with pytest.raises(
                ValueError,
                match=r"^irq_work_queue_on\(\) expects a CPU number from 0 to 1 for 'cpu', got 2$",
            ):
                irq_work_queue_on(w, 2)
            with pytest.raises(
                TypeError, match=r"^irq_work_queue_on\(\) expects an int for 'cpu', got str$"
            ):
                irq_work_queue_on(w, "1")  # type: ignore[arg-type]
            assert w.flags == 0

    async def test_bad_flags(self) -> None:
        """IrqWork(flags=...) takes IRQ_WORK_LAZY and IRQ_WORK_HARD_IRQ only."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                ValueError,
                match=r"^IrqWork\(\) expects IRQ_WORK_LAZY \| IRQ_WORK_HARD_IRQ for 'flags', "
                r"got 1$",
            ):
                IrqWork(Recorder(), IRQ_WORK_PENDING)

    async def test_sync_checks_at_the_call(self) -> None:
        """irq_work_sync(None) is a TypeError when called, before any coroutine exists."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError, match=r"^irq_work_sync\(\) expects an IrqWork for 'work', got int$"
            ):
                irq_work_sync(1)  # type: ignore[arg-type]


class TestShutdown:
    async def test_items_held_off_at_exit_run(self) -> None:
        """Nothing is lost: an item queued while interrupts are off, and a lazy one waiting for
        a tick, both run when the kernel shuts down normally; nothing is named as dropped."""
        ran: list[str] = []
        held = IrqWork(lambda w: ran.append("held"))
        lazy = IRQ_WORK_INIT_LAZY(lambda w: ran.append("lazy"))
        async with Kernel(nr_cpus=2) as k:
            assert irq_work_queue(lazy)
            local_irq_disable()
            assert irq_work_queue(held)
            assert ran == []
        assert sorted(ran) == ["held", "lazy"]
        assert k.shutdown_report is not None
        assert k.shutdown_report.items == []
        assert not irq_work_is_pending(held)

    async def test_items_named_when_aborted(self) -> None:
        """Leaving by an exception aborts: an item held off by disabled interrupts never runs
        and is named in dmesg and in the shutdown report, as dropped."""
        held = IrqWork(lambda w: None)
        k = Kernel(nr_cpus=2)

        async def body() -> None:
            async with k:
                local_irq_disable()
                assert irq_work_queue(held)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await body()
        assert k.shutdown_report is not None
        kinds = [(i.kind, i.state, i.outcome) for i in k.shutdown_report.items]
        assert ("irq_work", "queued", "dropped") in kinds
        assert any("irq_work <lambda> still queued on CPU 0; dropped" in line for line in k.dmesg())
        assert not irq_work_is_pending(held)
