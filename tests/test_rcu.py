"""RCU: call_rcu, synchronize_rcu, rcu_barrier, read-side sections and RCU work (WQ-23).

A grace period in the model ends at the next jiffy after it starts (read-side sections never
sleep, so every CPU is quiescent as soon as the loop runs anything else); callbacks queued
while one runs wait for the next. Callbacks run in RCU_SOFTIRQ on the CPU that queued them.
"""

from __future__ import annotations

import re

import pytest
from helpers import logged

import kdefer_async
from kdefer_async import (
    INIT_RCU_WORK,
    IRQ_HANDLED,
    Completion,
    Kernel,
    KernelBug,
    RcuWork,
    Work,
    call_rcu,
    cancel_work,
    cancel_work_sync,
    complete,
    current,
    current_kernel,
    disable_work,
    enable_work,
    flush_rcu_work,
    in_serving_softirq,
    msleep,
    preempt_count,
    queue_rcu_work,
    rcu_barrier,
    rcu_read_lock,
    rcu_read_unlock,
    request_irq,
    smp_processor_id,
    synchronize_rcu,
    system_percpu_wq,
    to_rcu_work,
    wait_for_completion,
    work_pending,
)
from kdefer_async._rcu import rcu_state

pytestmark = pytest.mark.anyio

IRQ = 9


class Log:
    """What each callback saw: name, jiffies, CPU, in softirq, comm, and the number of grace
    periods completed (the kernel's ``gp_seq``: the grace period it waited for)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, int, bool, str, int]] = []

    def cb(self, name: str, done: Completion | None = None) -> object:
        def fn(_head: object) -> None:
            self.seen.append(
                (
                    name,
                    kdefer_async.jiffies,
                    smp_processor_id(),
                    in_serving_softirq(),
                    current().comm,
                    rcu_state(current_kernel()).gp_seq,
                )
            )
            if done is not None:
                complete(done)

        return fn


class TestCallRcu:
    async def test_callback_runs_after_a_grace_period(self, virtual: bool) -> None:
        """A call_rcu callback runs neither in the call nor before the next jiffy, in
        RCU_SOFTIRQ on the queueing CPU (a hardirq on CPU 1 here), in queueing order; one
        queued while a grace period runs (C) ends with it; one queued by a callback needs a
        grace period of its own."""
        log = Log()
        a_done, c_done = Completion(), Completion()
        async with Kernel(nr_cpus=2, hz=250) as k:
            t0 = kdefer_async.jiffies
            call_rcu("a", log.cb("A", a_done))
            call_rcu("b", log.cb("B"))  # same grace period as A (it started with A)
            assert log.seen == []

            def handler(_irq: int, _dev: object) -> int:
                call_rcu("c", log.cb("C", c_done))
                return IRQ_HANDLED

            d_done = Completion()
            chained = log.cb("D", d_done)

            def requeue(_head: object) -> None:
                log.cb("R")(None)
                call_rcu("d", chained)

            request_irq(IRQ, handler, 0, "rcutest", None)
            k.raise_irq(IRQ, cpu=1)
            call_rcu("r", requeue)
            assert log.seen == []
            await wait_for_completion(a_done)
            await wait_for_completion(c_done)
            await wait_for_completion(d_done)
            names = [s[0] for s in log.seen]
            assert names.index("A") < names.index("B") < names.index("R")
            a, b, c, r, d = (next(s for s in log.seen if s[0] == n) for n in "ABCRD")
            assert a[1] > t0
            assert a[2] == b[2] == r[2] == d[2] == 0
            assert c[2] == 1
            assert all(s[3] for s in log.seen)  # in softirq context
            # A, B and R run as the first grace period ends (R starts D's), D after a second
            assert a[5] == b[5] == r[5] == 1
            assert d[5] == 2
            assert d[1] > r[1]
            if virtual:
                # the clock stands still while they run, and CPU 1 runs C at once
                assert c[5] == 1
                assert a[1] == b[1] == c[1] == r[1]
            else:
                # on the real clock a jiffy may pass between two callbacks, and CPU 1's
                # ksoftirqd may get to C only after D's grace period has ended too
                assert c[5] >= 1
                assert a[1] <= b[1] <= r[1]
            assert "RCU" in k.proc_softirqs()

    async def test_async_or_bad_callback_is_type_error(self) -> None:
        """call_rcu's callback runs in softirq context: `async def` or not callable is a
        TypeError at the call."""

        async def sleeper(_head: object) -> None:
            await msleep(1)

        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(TypeError, match="must be a plain function"):
                call_rcu("head", sleeper)
            with pytest.raises(TypeError, match="callable as func\\(head\\)"):
                call_rcu("head", 42)  # type: ignore[arg-type]

    async def test_synchronize_rcu_and_barrier(self) -> None:
        """synchronize_rcu returns after a grace period (a later jiffy); rcu_barrier returns
        once every callback queued before it (on every CPU) has run."""
        log = Log()

        def handler(_irq: int, _dev: object) -> int:
            call_rcu("irq head", log.cb("irq"))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            t0 = kdefer_async.jiffies
            await synchronize_rcu()
            assert kdefer_async.jiffies > t0
            request_irq(IRQ, handler, 0, "rcutest", None)
            for i in range(3):
                call_rcu(i, log.cb(f"t{i}"))
            k.raise_irq(IRQ, cpu=1)
            assert log.seen == []
            await rcu_barrier()
            assert sorted(s[0] for s in log.seen) == ["irq", "t0", "t1", "t2"]
            await rcu_barrier()  # nothing queued: returns after a grace period

    async def test_read_side_section(self) -> None:
        """rcu_read_lock() disables preemption until rcu_read_unlock(): sleeping inside is a
        bug; an unlock without a lock is a WARN and changes nothing."""
        async with Kernel(nr_cpus=1, hz=250, sleep_in_atomic="raise") as k:
            rcu_read_lock()
            rcu_read_lock()
            assert preempt_count() == 2
            with pytest.raises(KernelBug):
                await msleep(1)
            rcu_read_unlock()
            rcu_read_unlock()
            assert preempt_count() == 0
            rcu_read_unlock()
            assert preempt_count() == 0
            assert logged(k, "WARNING: CPU:") == 1

    async def test_callback_errors_are_interrupt_errors(self) -> None:
        """A callback runs in softirq context: one returning an awaitable (it tried to sleep)
        is `BUG: scheduling while atomic`; one raising is a fatal exception in interrupt,
        a KernelPanic out of the kernel."""
        import anyio.lowlevel

        from kdefer_async import KernelPanic

        error = ValueError("bad callback")
        done = Completion()

        def sleepy(_head: object) -> object:
            complete(done)
            return anyio.lowlevel.checkpoint()

        def broken(_head: object) -> None:
            raise error

        k = Kernel(nr_cpus=1, hz=250)

        async def boot() -> None:
            async with k:
                call_rcu("head", sleepy)
                await wait_for_completion(done)
                assert logged(k, "BUG: scheduling while atomic") == 1
                call_rcu("head", broken)
                await synchronize_rcu()

        with pytest.raises(KernelPanic) as info:
            await boot()
        assert info.value.__cause__ is error
        assert logged(k, "---[ end Kernel panic - not syncing: Fatal exception in interrupt") == 1

    async def test_pending_callbacks_run_at_shutdown(self) -> None:
        """Leaving the kernel runs the callbacks still waiting for a grace period, and RCU
        work they queue: nothing is lost."""
        log = Log()
        ran: list[str] = []

        async def fn(_w: Work) -> None:
            ran.append(current().comm)

        async with Kernel(nr_cpus=1, hz=250):
            call_rcu("head", log.cb("late"))
            assert queue_rcu_work(system_percpu_wq, RcuWork(fn))
        assert [s[0] for s in log.seen] == ["late"]
        assert len(ran) == 1
        assert ran[0].startswith("kworker/0:")


class TestRcuWork:
    async def test_queue_rcu_work_runs_after_grace_period(self) -> None:
        """WQ-23: queue_rcu_work queues the work only after a grace period: it runs in a
        kworker at a later jiffy; a second call while it is pending is False; once it ran
        it can be queued again."""
        runs: list[tuple[int, str]] = []

        async def fn(w: Work) -> None:
            assert to_rcu_work(w) is rw
            runs.append((kdefer_async.jiffies, current().comm))

        rw = RcuWork()
        INIT_RCU_WORK(rw, fn)
        async with Kernel(nr_cpus=1, hz=250):
            t0 = kdefer_async.jiffies
            assert queue_rcu_work(system_percpu_wq, rw) is True
            assert work_pending(rw.work)
            assert queue_rcu_work(system_percpu_wq, rw) is False
            assert await flush_rcu_work(rw) is True
            assert len(runs) == 1
            assert runs[0][0] > t0
            assert runs[0][1].startswith("kworker/0:")
            assert not work_pending(rw.work)
            assert queue_rcu_work(system_percpu_wq, rw) is True
            assert await flush_rcu_work(rw) is True
            assert len(runs) == 2
            assert await flush_rcu_work(rw) is False  # idle: nothing to wait for

    async def test_disabled_and_cancelled(self) -> None:
        """WQ-23: queue_rcu_work on a disabled item is a WARN_ON_ONCE and False. A cancel
        during its grace period takes it (True) and it never runs; queued again meanwhile,
        it runs once, after a grace period of its own."""
        runs: list[int] = []

        def fn(_w: Work) -> None:
            runs.append(1)

        async with Kernel(nr_cpus=1, hz=250) as k:
            rw = RcuWork(fn)
            disable_work(rw.work)
            assert queue_rcu_work(system_percpu_wq, rw) is False
            assert queue_rcu_work(system_percpu_wq, rw) is False
            assert logged(k, "WARNING: CPU:") == 1
            enable_work(rw.work)
            assert queue_rcu_work(system_percpu_wq, rw) is True
            assert cancel_work(rw.work) is True
            assert not work_pending(rw.work)
            assert queue_rcu_work(system_percpu_wq, rw) is True  # a wait of its own
            await flush_rcu_work(rw)
            assert runs == [1]
            assert queue_rcu_work(system_percpu_wq, rw) is True
            assert await cancel_work_sync(rw.work) is True
            await rcu_barrier()
            await synchronize_rcu()
            assert runs == [1]
            assert not work_pending(rw.work)

    async def test_bad_arguments(self) -> None:
        """Clear errors: not an RcuWork, a Work that is not one's, an uninitialised one."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(TypeError):
                queue_rcu_work(system_percpu_wq, Work(lambda w: None))  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                to_rcu_work(Work(lambda w: None))
            with pytest.raises(ValueError):
                queue_rcu_work(system_percpu_wq, RcuWork())
            with pytest.raises(TypeError):
                INIT_RCU_WORK(Work(), lambda w: None)  # type: ignore[arg-type]


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly *message*."""
    return "^" + re.escape(message) + "$"


def noop(_work: Work) -> None:
    pass


class TestArguments:
    """Bad arguments are a TypeError or ValueError with the wording of _check.py, raised at the
    call and before anything is queued."""

    async def test_call_rcu(self) -> None:
        """call_rcu checks the head and `func(head)` at the call: the kernel would only find a
        callback that cannot take the head in RCU_SOFTIRQ, with a panic."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(
                TypeError,
                match=exactly(
                    "call_rcu() expects a function callable as func(head) for 'func', but "
                    "<lambda>() cannot be called with 1 positional argument"
                ),
            ):
                call_rcu("head", lambda: None)  # type: ignore[arg-type,misc]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "call_rcu() expects an rcu_head (any object but None) for 'head', got NoneType"
                ),
            ):
                call_rcu(None, noop)
            await synchronize_rcu()
            await rcu_barrier()
            assert k.oopses == []
        assert logged(k, "Fatal exception in interrupt") == 0

    async def test_rcu_work_initialisers(self) -> None:
        """RcuWork and INIT_RCU_WORK check the item and `func(work)`; to_rcu_work its Work."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError,
                match=exactly(
                    "RcuWork() expects a function callable as func(work) for 'func', got int"
                ),
            ):
                RcuWork(1)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=exactly("INIT_RCU_WORK() expects an RcuWork for 'rwork', got Work")
            ):
                INIT_RCU_WORK(Work(), noop)  # type: ignore[arg-type]
            rw = RcuWork(noop)
            with pytest.raises(TypeError, match=r"^INIT_RCU_WORK\(\) expects a function"):
                INIT_RCU_WORK(rw, None)  # type: ignore[arg-type]
            assert rw.work.func is noop
            with pytest.raises(
                TypeError,
                match=exactly(
                    "to_rcu_work() expects a Work for 'work', got RcuWork (pass its .work)"
                ),
            ):
                to_rcu_work(rw)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "to_rcu_work() expects the .work of an RcuWork for 'work', got <Work noop>"
                ),
            ):
                to_rcu_work(Work(noop))
            assert to_rcu_work(rw.work) is rw

    async def test_queue_and_flush_rcu_work(self) -> None:
        """queue_rcu_work and flush_rcu_work take an initialised RcuWork (and a Workqueue);
        a rejected call leaves it idle."""
        async with Kernel(nr_cpus=1, hz=250):
            rw = RcuWork(noop)
            with pytest.raises(
                TypeError,
                match=exactly("queue_rcu_work() expects a Workqueue for 'wq', got NoneType"),
            ):
                queue_rcu_work(None, rw)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly("queue_rcu_work() expects an RcuWork for 'rwork', got Work"),
            ):
                queue_rcu_work(system_percpu_wq, rw.work)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "queue_rcu_work() expects an RcuWork initialised by INIT_RCU_WORK for "
                    "'rwork', got <RcuWork <Work None>>"
                ),
            ):
                queue_rcu_work(system_percpu_wq, RcuWork())
            with pytest.raises(
                TypeError, match=exactly("flush_rcu_work() expects an RcuWork for 'rwork', got str")
            ):
                flush_rcu_work("rw")  # type: ignore[arg-type]
            assert not work_pending(rw.work)
            assert await flush_rcu_work(rw) is False
