"""Wait queues (``wait_event*`` / ``wake_up*``) and completions.

Covers kernel-semantics §5.7 and TM-26 to TM-30 of §6.7.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from helpers import at_tick, logged

from kdefer_async import (
    DECLARE_COMPLETION,
    DECLARE_WAIT_QUEUE_HEAD,
    ERESTARTSYS,
    SIGINT,
    TASK_INTERRUPTIBLE,
    TASK_UNINTERRUPTIBLE,
    Completion,
    Kernel,
    KernelBug,
    KernelPanic,
    Tasklet,
    WaitQueueHead,
    allow_signal,
    complete,
    complete_all,
    completion_done,
    current,
    flush_signals,
    init_completion,
    init_waitqueue_head,
    kthread_run,
    kthread_stop,
    reinit_completion,
    send_sig,
    signal_pending,
    tasklet_schedule,
    tasklet_setup,
    wait_event,
    wait_event_interruptible,
    wait_event_interruptible_timeout,
    wait_event_timeout,
    wait_for_completion,
    wait_for_completion_interruptible,
    wait_for_completion_timeout,
    waitqueue_active,
    wake_up,
    wake_up_all,
    wake_up_interruptible,
    wake_up_interruptible_all,
    wake_up_nr,
)
from kdefer_async._wait import wait_event_common
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio


class Flag:
    """A condition a waiter can poll: counts its evaluations."""

    def __init__(self) -> None:
        self.value = False
        self.checks = 0

    def __call__(self) -> bool:
        self.checks += 1
        return self.value


class TestWaitQueueHead:
    async def test_declare_and_init(self) -> None:
        """DECLARE_WAIT_QUEUE_HEAD and init_waitqueue_head give an empty wait queue."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            assert isinstance(wq, WaitQueueHead)
            assert not waitqueue_active(wq)
            other = WaitQueueHead()
            init_waitqueue_head(other)
            assert not waitqueue_active(other)
            assert wq is not DECLARE_WAIT_QUEUE_HEAD()

    async def test_waitqueue_active_while_waiting(self) -> None:
        """waitqueue_active is true exactly while a task sleeps on the queue."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()

            async def waiter(_: object) -> int:
                await wait_event(wq, cond)
                return 7

            task = kthread_run(waiter, None, "waiter")
            await settle()
            assert waitqueue_active(wq)
            cond.value = True
            wake_up(wq)
            assert await kthread_stop(task) == 7
            assert not waitqueue_active(wq)

    async def test_wake_up_on_empty_queue(self) -> None:
        """Waking an empty queue does nothing and is legal in atomic context."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            wake_up(wq)
            wake_up_all(wq)
            wake_up_nr(wq, 3)
            wake_up_interruptible(wq)
            wake_up_interruptible_all(wq)
            assert not waitqueue_active(wq)


class TestWaitEvent:
    async def test_condition_already_true(self, virtual: bool) -> None:
        """wait_event returns at once, without sleeping, when the condition already holds."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            cond.value = True
            j = k.jiffies
            await wait_event(wq, cond)
            assert cond.checks == 1
            assert not waitqueue_active(wq)
            if virtual:
                assert k.jiffies == j

    async def test_wakes_when_condition_set(self, virtual: bool) -> None:
        """wait_event returns once the condition is set and the queue woken."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()

            def waker() -> None:
                cond.value = True
                wake_up(wq)

            j = k.jiffies
            at_tick(k, 3, waker)
            await wait_event(wq, cond)
            assert cond.value
            assert current().state == 0
            assert k.jiffies == j + 3 if virtual else k.jiffies >= j + 3

    async def test_wake_without_condition_goes_back_to_sleep(self) -> None:
        """TM-29: wake_up without changing the condition: waiters re-check and sleep again."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            returned: list[int] = []

            async def waiter(n: int) -> int:
                await wait_event(wq, cond)
                returned.append(n)
                return 0

            tasks = [kthread_run(waiter, n, "waiter/%d", n) for n in range(2)]
            await settle()
            before = cond.checks
            wake_up_all(wq)
            await settle()
            assert returned == []
            assert cond.checks == before + 2  # each waiter re-checked once
            assert waitqueue_active(wq)
            assert all(t.state == TASK_UNINTERRUPTIBLE for t in tasks)
            cond.value = True
            wake_up_all(wq)
            await settle()
            assert sorted(returned) == [0, 1]
            for t in tasks:
                await kthread_stop(t)

    async def test_wakeup_between_check_and_sleep_not_lost(self, virtual: bool) -> None:
        """A condition that becomes true between the first check and queueing is seen at once."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            checks: list[bool] = []

            def cond() -> bool:
                # false on the first check; a "waker" then sets it without any wake_up
                checks.append(len(checks) >= 1)
                return checks[-1]

            j = k.jiffies
            await wait_event(wq, cond)
            assert checks == [False, True]
            assert not waitqueue_active(wq)
            if virtual:
                assert k.jiffies == j

    async def test_from_softirq_reports_might_sleep(self) -> None:
        """TM-30: wait_event called in a tasklet reports a sleeping function in invalid context."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            caught: list[KernelBug] = []

            def callback(_t: Tasklet) -> None:
                try:
                    wait_event(wq, lambda: False)
                except KernelBug as exc:
                    caught.append(exc)

            t = Tasklet()
            tasklet_setup(t, callback)
            tasklet_schedule(t)
            await settle()
            assert len(caught) == 1
            assert logged(k, "BUG: sleeping function called from invalid context") == 1
            assert logged(k, "in_atomic(): 1") == 1
            assert logged(k, "preempt_count: 100, expected: 0") == 1
            assert not waitqueue_active(wq)
            assert k.oopses == []

    async def test_from_softirq_uncaught_is_panic(self) -> None:
        """TM-30: the KernelBug of wait_event in a tasklet, uncaught, is a fatal exception in interrupt."""
        k = Kernel(nr_cpus=2, hz=250)
        wq = DECLARE_WAIT_QUEUE_HEAD()

        def callback(_t: Tasklet) -> None:
            wait_event(wq, lambda: False)

        async def boot() -> None:
            async with k:
                t = Tasklet()
                tasklet_setup(t, callback)
                tasklet_schedule(t)
                await settle()

        with pytest.raises(KernelPanic) as info:
            await boot()
        assert isinstance(info.value.__cause__, KernelBug)
        assert logged(k, "BUG: sleeping function called from invalid context") == 1
        assert logged(k, "] Kernel panic - not syncing: Fatal exception in interrupt") == 1

    async def test_arguments_checked(self) -> None:
        """A non-callable or async condition and a non-int timeout are TypeErrors."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()

            async def async_cond() -> bool:
                return True

            with pytest.raises(TypeError):
                await wait_event(wq, True)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await wait_event_interruptible(wq, None)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await wait_event(wq, async_cond)
            with pytest.raises(TypeError):
                await wait_event_timeout(wq, lambda: True, 1.0)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await wait_event_interruptible_timeout(wq, lambda: True, "1")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await wait_event_timeout(wq, 1, 1)  # type: ignore[arg-type]
            assert not waitqueue_active(wq)


class TestWaitEventTimeout:
    async def test_woken_early_returns_jiffies_left(self, virtual: bool) -> None:
        """TM-26: wait_event_timeout(wq, cond, 10) with cond set and wake_up at J+4 returns 6."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()

            def waker() -> None:
                cond.value = True
                wake_up(wq)

            j = k.jiffies
            at_tick(k, 4, waker)
            ret = await wait_event_timeout(wq, cond, 10)
            if virtual:
                assert ret == 6
                assert k.jiffies == j + 4
            else:
                assert 1 <= ret <= 10

    async def test_timeout_returns_0(self, virtual: bool) -> None:
        """TM-26: a condition never set: wait_event_timeout returns 0 on the tick J+11."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            j = k.jiffies
            assert await wait_event_timeout(wq, cond, 10) == 0
            assert k.jiffies == j + 11 if virtual else k.jiffies >= j + 10
            assert not waitqueue_active(wq)

    async def test_true_only_at_timeout_returns_1(self) -> None:
        """TM-26: a condition found true only on the check after the timeout returns 1."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()

            def set_silently() -> None:
                cond.value = True  # no wake_up: only the timeout wakes the waiter

            at_tick(k, 11, set_silently)
            assert await wait_event_timeout(wq, cond, 10) == 1
            assert cond.value

    async def test_condition_true_at_once(self) -> None:
        """A condition already true returns the whole timeout, or 1 for a zero timeout."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            assert await wait_event_timeout(wq, lambda: True, 10) == 10
            assert await wait_event_timeout(wq, lambda: True, 0) == 1
            assert await wait_event_timeout(wq, lambda: False, 0) == 0

    async def test_not_interrupted_by_signal(self, virtual: bool) -> None:
        """wait_event_timeout sleeps uninterruptibly: a signal does not end it."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            me = current()
            j = k.jiffies
            at_tick(k, 2, lambda: send_sig(SIGINT, me, 0))
            assert await wait_event_timeout(wq, lambda: False, 5) == 0
            assert signal_pending(me)
            assert k.jiffies == j + 6 if virtual else k.jiffies >= j + 5


class TestWaitEventInterruptible:
    async def test_signal_returns_erestartsys(self, virtual: bool) -> None:
        """TM-27: wait_event_interruptible interrupted by a signal returns -ERESTARTSYS."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            me = current()
            j = k.jiffies
            at_tick(k, 3, lambda: send_sig(SIGINT, me, 0))
            ret = await wait_event_interruptible(wq, lambda: False)
            assert ERESTARTSYS == 512
            assert ret == -ERESTARTSYS
            assert signal_pending(me)
            assert not waitqueue_active(wq)
            assert k.jiffies == j + 3 if virtual else k.jiffies >= j + 3

    async def test_pending_signal_returns_at_once(self, virtual: bool) -> None:
        """A signal already pending makes wait_event_interruptible return -ERESTARTSYS at once."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            me = current()
            send_sig(SIGINT, me, 0)
            j = k.jiffies
            assert await wait_event_interruptible(wq, lambda: False) == -ERESTARTSYS
            if virtual:
                assert k.jiffies == j
            flush_signals(me)
            assert await wait_event_interruptible(wq, lambda: True) == 0

    async def test_condition_wins_over_signal(self) -> None:
        """A waiter whose condition came true returns 0 even if a signal arrived as well."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            ret: list[int] = []

            async def waiter(_: object) -> int:
                allow_signal(SIGINT)
                ret.append(await wait_event_interruptible(wq, cond))
                return 0

            task = kthread_run(waiter, None, "waiter")
            await settle()
            cond.value = True
            wake_up(wq)
            send_sig(SIGINT, task, 0)
            await settle()
            assert ret == [0]
            assert signal_pending(task)
            await kthread_stop(task)

    async def test_condition_returns_0(self) -> None:
        """wait_event_interruptible returns 0 once the condition holds."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()

            def waker() -> None:
                cond.value = True
                wake_up_interruptible(wq)

            at_tick(k, 2, waker)
            assert await wait_event_interruptible(wq, cond) == 0

    async def test_interruptible_timeout_values(self, virtual: bool) -> None:
        """wait_event_interruptible_timeout: jiffies left, 0 on timeout, -ERESTARTSYS on a signal."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            me = current()
            cond = Flag()

            def waker() -> None:
                cond.value = True
                wake_up(wq)

            at_tick(k, 4, waker)
            ret = await wait_event_interruptible_timeout(wq, cond, 10)
            assert ret == 6 if virtual else 1 <= ret <= 10

            j = k.jiffies
            assert await wait_event_interruptible_timeout(wq, lambda: False, 3) == 0
            assert k.jiffies == j + 4 if virtual else k.jiffies >= j + 3

            at_tick(k, 2, lambda: send_sig(SIGINT, me, 0))
            ret = await wait_event_interruptible_timeout(wq, lambda: False, 10)
            assert ret == -ERESTARTSYS
            assert not waitqueue_active(wq)


class TestWakeUp:
    async def test_wake_up_one_exclusive(self) -> None:
        """TM-28: wake_up wakes 3 non-exclusive + 1 exclusive waiter; wake_up_all wakes the rest."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            returned: list[str] = []

            async def plain(name: str) -> int:
                await wait_event(wq, cond)
                returned.append(name)
                return 0

            async def exclusive(name: str) -> int:
                await wait_event_common(wq, cond, TASK_UNINTERRUPTIBLE, None, exclusive=True)
                returned.append(name)
                return 0

            tasks = [kthread_run(plain, f"n{i}", "plain/%d", i) for i in range(3)]
            tasks += [kthread_run(exclusive, f"x{i}", "excl/%d", i) for i in range(2)]
            await settle()
            cond.value = True
            wake_up(wq)
            await settle()
            assert sorted(r for r in returned if r.startswith("n")) == ["n0", "n1", "n2"]
            assert len([r for r in returned if r.startswith("x")]) == 1
            assert waitqueue_active(wq)
            wake_up_all(wq)
            await settle()
            assert sorted(returned) == ["n0", "n1", "n2", "x0", "x1"]
            assert not waitqueue_active(wq)
            for t in tasks:
                await kthread_stop(t)

    async def test_cancelled_exclusive_waiter_passes_wake_up_on(self) -> None:
        """An exclusive waiter cancelled (anyio) as wake_up picks it hands the wake-up on."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            scopes: list[anyio.CancelScope] = []
            returned: list[int] = []

            async def exclusive(n: int) -> int:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await wait_event_common(wq, cond, TASK_UNINTERRUPTIBLE, None, exclusive=True)
                    returned.append(n)
                return 0

            first = kthread_run(exclusive, 1, "excl/1")
            await settle()
            second = kthread_run(exclusive, 2, "excl/2")
            await settle()
            cond.value = True
            scopes[0].cancel()
            wake_up(wq)  # picks the first waiter, which is on its way out
            await settle()
            assert scopes[0].cancelled_caught
            assert returned == [2]
            assert not waitqueue_active(wq)
            await kthread_stop(first)
            await kthread_stop(second)

    async def test_wake_up_nr(self) -> None:
        """wake_up_nr(wq, 2) wakes two of three exclusive waiters."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            returned: list[int] = []

            async def exclusive(n: int) -> int:
                await wait_event_common(wq, cond, TASK_UNINTERRUPTIBLE, None, exclusive=True)
                returned.append(n)
                return 0

            tasks = [kthread_run(exclusive, i, "excl/%d", i) for i in range(3)]
            await settle()
            cond.value = True
            wake_up_nr(wq, 2)
            await settle()
            assert len(returned) == 2
            wake_up(wq)
            await settle()
            assert sorted(returned) == [0, 1, 2]
            for t in tasks:
                await kthread_stop(t)

    async def test_wake_up_interruptible_only_wakes_interruptible(self) -> None:
        """wake_up_interruptible wakes TASK_INTERRUPTIBLE sleepers only; wake_up wakes both kinds."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            cond = Flag()
            returned: list[str] = []

            async def d_sleeper(_: object) -> int:
                await wait_event(wq, cond)
                returned.append("D")
                return 0

            async def s_sleeper(_: object) -> int:
                assert await wait_event_interruptible(wq, cond) == 0
                returned.append("S")
                return 0

            d = kthread_run(d_sleeper, None, "dsleep")
            s = kthread_run(s_sleeper, None, "ssleep")
            await settle()
            assert d.state == TASK_UNINTERRUPTIBLE
            assert s.state == TASK_INTERRUPTIBLE
            cond.value = True
            wake_up_interruptible(wq)
            await settle()
            assert returned == ["S"]
            wake_up_interruptible_all(wq)
            await settle()
            assert returned == ["S"]
            wake_up(wq)
            await settle()
            assert returned == ["S", "D"]
            await kthread_stop(d)
            await kthread_stop(s)


class TestCompletion:
    async def test_declare_and_init(self) -> None:
        """DECLARE_COMPLETION, Completion() and init_completion give a not-done completion."""
        async with Kernel(nr_cpus=2, hz=250):
            c = DECLARE_COMPLETION()
            assert isinstance(c, Completion)
            assert not completion_done(c)
            d = Completion()
            complete_all(d)
            assert completion_done(d)
            init_completion(d)
            assert not completion_done(d)

    async def test_complete_before_wait_is_counted(self, virtual: bool) -> None:
        """Completions before the wait are not lost: two completes satisfy two waits."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            c = DECLARE_COMPLETION()
            complete(c)
            complete(c)
            assert completion_done(c)
            j = k.jiffies
            await wait_for_completion(c)
            await wait_for_completion(c)
            if virtual:
                assert k.jiffies == j
            assert not completion_done(c)
            assert await wait_for_completion_timeout(c, 2) == 0

    async def test_complete_wakes_one_waiter(self) -> None:
        """complete() wakes one of two waiters; a second complete() wakes the other."""
        async with Kernel(nr_cpus=2, hz=250):
            c = DECLARE_COMPLETION()
            returned: list[int] = []

            async def waiter(n: int) -> int:
                await wait_for_completion(c)
                returned.append(n)
                return 0

            tasks = [kthread_run(waiter, n, "cwait/%d", n) for n in range(2)]
            await settle()
            complete(c)
            await settle()
            assert len(returned) == 1
            assert not completion_done(c)  # the one completion was consumed
            complete(c)
            await settle()
            assert sorted(returned) == [0, 1]
            for t in tasks:
                await kthread_stop(t)

    async def test_two_completes_before_waiters_run(self) -> None:
        """Two complete() calls in a row wake both waiters, not the same one twice."""
        async with Kernel(nr_cpus=2, hz=250):
            c = DECLARE_COMPLETION()
            returned: list[int] = []

            async def waiter(n: int) -> int:
                await wait_for_completion(c)
                returned.append(n)
                return 0

            tasks = [kthread_run(waiter, n, "cwait/%d", n) for n in range(2)]
            await settle()
            complete(c)
            complete(c)
            await settle()
            assert sorted(returned) == [0, 1]
            assert not completion_done(c)
            for t in tasks:
                await kthread_stop(t)

    async def test_cancelled_waiter_passes_completion_on(self) -> None:
        """A waiter cancelled (anyio) as complete() picks it hands the completion to the next."""
        async with Kernel(nr_cpus=2, hz=250):
            c = DECLARE_COMPLETION()
            scopes: list[anyio.CancelScope] = []
            returned: list[int] = []

            async def waiter(n: int) -> int:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await wait_for_completion(c)
                    returned.append(n)
                return 0

            first = kthread_run(waiter, 1, "cwait/1")
            await settle()
            second = kthread_run(waiter, 2, "cwait/2")
            await settle()
            scopes[0].cancel()
            complete(c)  # picks the first waiter, which is on its way out
            await settle()
            assert scopes[0].cancelled_caught
            assert returned == [2]
            assert not completion_done(c)
            await kthread_stop(first)
            await kthread_stop(second)

    async def test_complete_all(self, virtual: bool) -> None:
        """complete_all wakes every waiter and later waits return at once until reinit."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            c = DECLARE_COMPLETION()
            returned: list[int] = []

            async def waiter(n: int) -> int:
                await wait_for_completion(c)
                returned.append(n)
                return 0

            tasks = [kthread_run(waiter, n, "cwait/%d", n) for n in range(3)]
            await settle()
            complete_all(c)
            await settle()
            assert sorted(returned) == [0, 1, 2]
            j = k.jiffies
            await wait_for_completion(c)
            assert await wait_for_completion_timeout(c, 5) == 5
            assert await wait_for_completion_interruptible(c) == 0
            if virtual:
                assert k.jiffies == j
            assert completion_done(c)
            reinit_completion(c)
            assert not completion_done(c)
            assert await wait_for_completion_timeout(c, 1) == 0
            for t in tasks:
                await kthread_stop(t)

    async def test_timeout_values(self, virtual: bool) -> None:
        """wait_for_completion_timeout returns the jiffies left, or 0 on timeout."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            c = DECLARE_COMPLETION()
            at_tick(k, 4, lambda: complete(c))
            ret = await wait_for_completion_timeout(c, 10)
            assert ret == 6 if virtual else 1 <= ret <= 10
            assert not completion_done(c)
            j = k.jiffies
            assert await wait_for_completion_timeout(c, 10) == 0
            assert k.jiffies == j + 11 if virtual else k.jiffies >= j + 10

    async def test_interruptible_signal(self, virtual: bool) -> None:
        """wait_for_completion_interruptible returns -ERESTARTSYS on a signal, 0 when completed."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            c = DECLARE_COMPLETION()
            me = current()
            j = k.jiffies
            at_tick(k, 3, lambda: send_sig(SIGINT, me, 0))
            assert await wait_for_completion_interruptible(c) == -ERESTARTSYS
            assert k.jiffies == j + 3 if virtual else k.jiffies >= j + 3
            assert not completion_done(c)
            flush_signals(me)
            at_tick(k, 2, lambda: complete(c))
            assert await wait_for_completion_interruptible(c) == 0
            assert not completion_done(c)

    async def test_timeout_type_checked(self) -> None:
        """wait_for_completion_timeout with a non-int timeout is a TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            c = DECLARE_COMPLETION()
            with pytest.raises(TypeError):
                await wait_for_completion_timeout(c, 0.5)  # type: ignore[arg-type]


class TestArguments:
    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda wq: wait_event(wq, lambda: True), "wait_event"),
            (lambda wq: wait_event_interruptible(wq, lambda: True), "wait_event_interruptible"),
            (lambda wq: wait_event_timeout(wq, lambda: True, 5), "wait_event_timeout"),
            (
                lambda wq: wait_event_interruptible_timeout(wq, lambda: True, 5),
                "wait_event_interruptible_timeout",
            ),
        ],
        ids=["plain", "interruptible", "timeout", "interruptible_timeout"],
    )
    async def test_wait_event_needs_a_wait_queue(
        self, call: Callable[[object], object], name: str
    ) -> None:
        """wait_event(None, cond) is a TypeError at the call, before the condition is run."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects a WaitQueueHead for 'wq', got NoneType$"
            ):
                call(None)

    async def test_condition_is_a_plain_function_of_no_arguments(self) -> None:
        """The condition is checked at the call: callable as condition(), and not async def."""

        async def ready() -> bool:
            return True

        async with Kernel(nr_cpus=1, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            with pytest.raises(
                TypeError,
                match=r"^wait_event\(\) expects a function callable as condition\(\) for "
                r"'condition', but <lambda>\(x\) cannot be called with no arguments$",
            ):
                wait_event(wq, lambda x: x)  # type: ignore[arg-type,misc]
            with pytest.raises(
                TypeError,
                match=r"^wait_event_interruptible\(\) expects a function callable as "
                r"condition\(\) for 'condition', got bool$",
            ):
                wait_event_interruptible(wq, True)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=r"^wait_event_timeout\(\): the condition is evaluated after the task "
                r"state is set, where it must not sleep, so it must be a plain function "
                r"\(e\.g\. `lambda: done`\), but ready is `async def`$",
            ):
                wait_event_timeout(wq, ready, 5)
            assert not waitqueue_active(wq)

    @pytest.mark.parametrize(
        ("timeout", "exc", "message"),
        [
            (1.0, TypeError, "an int for 'timeout', got float"),
            (
                2**63,
                ValueError,
                rf"a number of jiffies \(a long: {-(2**63)} to {2**63 - 1}\) for 'timeout', "
                rf"got {2**63}",
            ),
        ],
    )
    async def test_wait_event_timeout_is_a_long(
        self, timeout: object, exc: type[Exception], message: str
    ) -> None:
        """wait_event_timeout's timeout is a long of jiffies: a float or an overflow is rejected."""
        async with Kernel(nr_cpus=1, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            flag = Flag()
            for fn in (wait_event_timeout, wait_event_interruptible_timeout):
                with pytest.raises(exc, match=rf"^{fn.__name__}\(\) expects {message}$"):
                    fn(wq, flag, timeout)  # type: ignore[arg-type]
            assert flag.checks == 0

    @pytest.mark.parametrize(
        "call",
        [
            wake_up,
            wake_up_all,
            wake_up_interruptible,
            wake_up_interruptible_all,
            init_waitqueue_head,
            waitqueue_active,
        ],
    )
    async def test_wait_queue_apis_need_a_wait_queue(
        self, call: Callable[[WaitQueueHead], object]
    ) -> None:
        """wake_up(None) and friends are a TypeError naming themselves."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError,
                match=rf"^{call.__name__}\(\) expects a WaitQueueHead for 'wq', got Completion$",
            ):
                call(Completion())  # type: ignore[arg-type]

    async def test_wake_up_nr_checks_nr_before_waking(self) -> None:
        """wake_up_nr's nr is an int >= 0: a bad one wakes nobody (the condition is not re-run)."""
        async with Kernel(nr_cpus=1, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            flag = Flag()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait_event, wq, flag)
                    await settle()
                    checks = flag.checks
                    with pytest.raises(
                        ValueError,
                        match=r"^wake_up_nr\(\) expects an int from 0 to 2147483647 for 'nr', "
                        r"got -1$",
                    ):
                        wake_up_nr(wq, -1)
                    with pytest.raises(
                        TypeError, match=r"^wake_up_nr\(\) expects an int for 'nr', got NoneType$"
                    ):
                        wake_up_nr(wq, None)  # type: ignore[arg-type]
                    with pytest.raises(
                        TypeError,
                        match=r"^wake_up_nr\(\) expects a WaitQueueHead for 'wq', got NoneType$",
                    ):
                        wake_up_nr(None, 1)  # type: ignore[arg-type]
                    await settle()
                    assert flag.checks == checks
                    assert waitqueue_active(wq)
                    flag.value = True
                    wake_up_nr(wq, 0)

    @pytest.mark.parametrize(
        "call",
        [complete, complete_all, completion_done, init_completion, reinit_completion],
    )
    async def test_completion_apis_need_a_completion(
        self, call: Callable[[Completion], object]
    ) -> None:
        """complete(None) and friends are a TypeError naming themselves."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError,
                match=rf"^{call.__name__}\(\) expects a Completion for 'c', got NoneType$",
            ):
                call(None)  # type: ignore[arg-type]

    async def test_waits_for_completion_check_at_call_time(self) -> None:
        """wait_for_completion* reject a bad argument at the call; the count is untouched."""
        async with Kernel(nr_cpus=1, hz=250):
            c = DECLARE_COMPLETION()
            complete(c)
            for fn in (wait_for_completion, wait_for_completion_interruptible):
                with pytest.raises(
                    TypeError,
                    match=rf"^{fn.__name__}\(\) expects a Completion for 'c', got WaitQueueHead$",
                ):
                    fn(WaitQueueHead())  # type: ignore[arg-type]
            for timeout in (-1, 2**63):
                with pytest.raises(
                    ValueError,
                    match=r"^wait_for_completion_timeout\(\) expects a number of jiffies from 0 "
                    rf"to MAX_SCHEDULE_TIMEOUT for 'timeout', got {timeout}$",
                ):
                    wait_for_completion_timeout(c, timeout)
            assert c.done == 1
            assert await wait_for_completion_timeout(c, 0) == 1


class TestNoKernel:
    @pytest.mark.parametrize(
        "call",
        [
            lambda: wait_event(WaitQueueHead(), lambda: True),
            lambda: wait_event_interruptible(WaitQueueHead(), lambda: True),
            lambda: wait_event_timeout(WaitQueueHead(), lambda: True, 1),
            lambda: wait_event_interruptible_timeout(WaitQueueHead(), lambda: True, 1),
            lambda: wait_for_completion(Completion()),
            lambda: wait_for_completion_timeout(Completion(), 1),
            lambda: wait_for_completion_interruptible(Completion()),
        ],
    )
    async def test_async_api_without_kernel(self, call: Callable[[], object]) -> None:
        """A waiting API called with no kernel running raises RuntimeError at call time."""
        with pytest.raises(RuntimeError):
            call()


class TestAnyioTasksInsideTheKernel:
    async def test_child_tasks_sleep_and_wake_independently(self) -> None:
        """anyio tasks started in the kernel become kernel tasks of their own when they sleep:
        two of them waiting on two completions are each woken by their own complete()."""
        from kdefer_async import Completion, complete, current, wait_for_completion

        woke: list[str] = []
        pids: dict[str, int] = {}
        async with Kernel(nr_cpus=2, hz=250):
            a, b = Completion(), Completion()

            async def waiter(name: str, c: Completion) -> None:
                await wait_for_completion(c)
                pids[name] = current().pid
                woke.append(name)

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waiter, "a", a)
                    tg.start_soon(waiter, "b", b)
                    await settle()
                    complete(b)
                    await settle()
                    assert woke == ["b"]
                    complete(a)
            assert current().comm == "init"
            assert current().pid == 1
        assert woke == ["b", "a"]
        assert len({pids["a"], pids["b"], 1}) == 3
