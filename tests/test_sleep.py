"""Sleeping: ``schedule_timeout``, the msleep family, ``usleep_range``, signals, hung tasks.

Covers kernel-semantics §5.6 and TM-19 to TM-25 and TM-31 of §6.7.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from helpers import at_tick, logged

import kdefer_async
from kdefer_async import (
    DECLARE_COMPLETION,
    DECLARE_WAIT_QUEUE_HEAD,
    MAX_SCHEDULE_TIMEOUT,
    SIGINT,
    SIGKILL,
    SIGTERM,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    Kernel,
    TaskStruct,
    allow_signal,
    complete,
    current,
    disallow_signal,
    flush_signals,
    kernel_dequeue_signal,
    kthread_run,
    kthread_stop,
    mdelay,
    msleep,
    msleep_interruptible,
    ndelay,
    schedule_timeout,
    schedule_timeout_interruptible,
    schedule_timeout_uninterruptible,
    send_sig,
    set_current_state,
    signal_pending,
    ssleep,
    udelay,
    usleep_range,
    wait_event,
    wait_event_interruptible,
    wait_for_completion,
    wake_up_all,
    wake_up_process,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

#: Float slack when comparing loop-clock times.
EPS = 1e-6


class TestScheduleTimeout:
    async def test_without_state_returns_at_once(self, virtual: bool) -> None:
        """TM-19: schedule_timeout() in TASK_RUNNING does not sleep and returns the timeout left.

        The timeout is 4 s (1000 jiffies at HZ=250): on the real clock the call is still a
        checkpoint, and a busy machine may hold the loop there for several jiffies; only a
        sleep could use up all of it."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            ret = await schedule_timeout(1000)
            assert current().state == TASK_RUNNING
            if virtual:
                assert ret == 1000
                assert k.jiffies == j
            else:
                assert 1 <= ret <= 1000

    async def test_uninterruptible_sleeps_full_timeout(self, virtual: bool) -> None:
        """TM-19: with TASK_UNINTERRUPTIBLE set, schedule_timeout(10) returns 0 after >= 10 ticks."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            set_current_state(TASK_UNINTERRUPTIBLE)
            ret = await schedule_timeout(10)
            assert ret == 0
            assert current().state == TASK_RUNNING
            # the wheel fires on the first tick after the expiry
            assert k.jiffies == j + 11 if virtual else k.jiffies >= j + 10

    async def test_woken_early_returns_jiffies_left(self, virtual: bool) -> None:
        """TM-19: woken by wake_up_process after 3 ticks, schedule_timeout(10) returns 7."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            woke_at: list[int] = []
            j = k.jiffies
            at_tick(k, 3, lambda: woke_at.append(k.jiffies) or wake_up_process(me))
            set_current_state(TASK_UNINTERRUPTIBLE)
            ret = await schedule_timeout(10)
            after = k.jiffies
            assert len(woke_at) == 1
            if virtual:
                assert woke_at == [j + 3]
                assert ret == 7
            else:
                # never more than what is left of the timeout armed at or after j
                assert max(0, j + 10 - after) <= ret <= 10

    async def test_negative_timeout_is_reported(self, virtual: bool) -> None:
        """TM-20: schedule_timeout(-1) reports a wrong timeout value and returns 0 at once."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            set_current_state(TASK_UNINTERRUPTIBLE)
            ret = await schedule_timeout(-1)
            assert ret == 0
            assert current().state == TASK_RUNNING
            assert logged(k, "schedule_timeout: wrong timeout value ffffffffffffffff") == 1
            assert logged(k, "Call Trace:") >= 1
            if virtual:
                assert k.jiffies == j

    async def test_max_schedule_timeout_woken(self, virtual: bool) -> None:
        """TM-21: schedule_timeout(MAX_SCHEDULE_TIMEOUT) woken by wake_up_process returns it."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            j = k.jiffies
            at_tick(k, 2, lambda: wake_up_process(me))
            set_current_state(TASK_UNINTERRUPTIBLE)
            ret = await schedule_timeout(MAX_SCHEDULE_TIMEOUT)
            assert ret == MAX_SCHEDULE_TIMEOUT
            assert k.jiffies == j + 2 if virtual else k.jiffies >= j + 1

    async def test_wake_before_schedule_is_not_lost(self, virtual: bool) -> None:
        """A wake_up_process between set_current_state and schedule_timeout prevents the sleep
        (a 4 s timeout: see test_without_state_returns_at_once)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            j = k.jiffies
            set_current_state(TASK_UNINTERRUPTIBLE)
            assert wake_up_process(me) == 1
            assert me.state == TASK_RUNNING
            ret = await schedule_timeout(1000)
            if virtual:
                assert ret == 1000
                assert k.jiffies == j
            else:
                assert ret >= 1

    async def test_wake_up_process_of_running_task(self) -> None:
        """wake_up_process returns 0 for a task that is already running."""
        async with Kernel(nr_cpus=2, hz=250):
            assert wake_up_process(current()) == 0

    async def test_interruptible_helper_stops_on_signal(self, virtual: bool) -> None:
        """schedule_timeout_interruptible returns the jiffies left when a signal arrives."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            j = k.jiffies
            at_tick(k, 4, lambda: send_sig(SIGINT, me, 0))
            ret = await schedule_timeout_interruptible(20)
            assert signal_pending(me)
            assert ret == 16 if virtual else max(0, j + 20 - k.jiffies) <= ret <= 20

    async def test_uninterruptible_helper_ignores_signal(self, virtual: bool) -> None:
        """schedule_timeout_uninterruptible sleeps through a signal and returns 0."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            j = k.jiffies
            at_tick(k, 2, lambda: send_sig(SIGINT, me, 0))
            ret = await schedule_timeout_uninterruptible(5)
            assert ret == 0
            assert signal_pending(me)
            assert k.jiffies == j + 6 if virtual else k.jiffies >= j + 5

    async def test_timeout_type_checked(self) -> None:
        """A timeout that is not an int is a TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError):
                await schedule_timeout(1.5)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await schedule_timeout(True)
            with pytest.raises(TypeError):
                set_current_state("running")  # type: ignore[arg-type]


class TestMsleep:
    async def test_msleep_5_at_hz_250(self, virtual: bool) -> None:
        """TM-22: at HZ=250, msleep(5) takes 8 to 12 ms (2 or 3 ticks)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            start = anyio.current_time()
            await msleep(5)
            elapsed = anyio.current_time() - start
            if virtual:
                assert elapsed == pytest.approx(0.012, abs=EPS)
                assert k.jiffies == j + 3
            else:
                assert elapsed >= 0.008 - EPS
                assert k.jiffies >= j + 3

    async def test_msleep_takes_j_plus_one_ticks(self, virtual: bool) -> None:
        """msleep(ms) sleeps msecs_to_jiffies(ms) jiffies, waking on the tick after."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            j = k.jiffies
            await msleep(7)
            assert k.jiffies == j + 8 if virtual else k.jiffies >= j + 8

    async def test_msleep_0_does_not_sleep(self, virtual: bool) -> None:
        """TM-23: msleep(0) returns without sleeping."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            start = anyio.current_time()
            await msleep(0)
            if virtual:
                assert anyio.current_time() == start
                assert k.jiffies == j
            else:
                assert anyio.current_time() - start < 0.1

    async def test_msleep_ignores_signals(self, virtual: bool) -> None:
        """msleep is uninterruptible: a signal does not cut it short."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            j = k.jiffies
            at_tick(k, 2, lambda: send_sig(SIGINT, me, 0))
            await msleep(20)
            assert signal_pending(me)
            assert k.jiffies == j + 6 if virtual else k.jiffies >= j + 6

    async def test_msleep_interruptible_interrupted(self, virtual: bool) -> None:
        """TM-24: msleep_interruptible(100) interrupted after 40 ms returns 60 (ms left)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            j = k.jiffies
            at_tick(k, 10, lambda: send_sig(SIGINT, me, 0))
            ret = await msleep_interruptible(100)
            assert signal_pending(me)
            if virtual:
                assert ret == 60
                assert k.jiffies == j + 10
            else:
                assert 0 <= ret < 100
                assert ret % 4 == 0

    async def test_msleep_interruptible_full(self, virtual: bool) -> None:
        """msleep_interruptible returns 0 when no signal arrives."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            assert await msleep_interruptible(8) == 0
            assert k.jiffies == j + 3 if virtual else k.jiffies >= j + 3

    async def test_msleep_interruptible_signal_already_pending(self, virtual: bool) -> None:
        """With a signal already pending, msleep_interruptible returns at once with all ms left."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            me = current()
            send_sig(SIGTERM, me, 0)
            j = k.jiffies
            assert await msleep_interruptible(100) == 100
            if virtual:
                assert k.jiffies == j

    async def test_msleep_interruptible_in_kthread_needs_allow_signal(self, virtual: bool) -> None:
        """A kthread's msleep_interruptible is cut short by a signal only after allow_signal."""
        # the sleep is the window the signals must land in: long on a real clock, which a
        # loaded machine may stall for tens of milliseconds
        ms = 40 if virtual else 400
        async with Kernel(nr_cpus=2, hz=250):
            results: dict[str, int] = {}

            async def sleeper(allow: bool) -> int:
                if allow:
                    allow_signal(SIGINT)
                results["allowed" if allow else "ignored"] = await msleep_interruptible(ms)
                return 0

            deaf = kthread_run(sleeper, False, "deaf")
            hearing = kthread_run(sleeper, True, "hearing")
            await settle()
            send_sig(SIGINT, deaf, 0)
            send_sig(SIGINT, hearing, 0)
            assert not signal_pending(deaf)
            assert signal_pending(hearing)
            await settle()
            assert "ignored" not in results
            if virtual:
                assert results == {"allowed": 40}
            else:
                assert 0 < results["allowed"] <= ms
            assert await kthread_stop(deaf) == 0
            assert results["ignored"] == 0
            assert await kthread_stop(hearing) == 0

    async def test_ssleep(self, virtual: bool) -> None:
        """ssleep(2) is msleep(2000): 500 jiffies, rounded up to the wheel's level-1 granularity."""
        if not virtual:
            pytest.skip("a two-second sleep is only affordable on virtual time")
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            await ssleep(2)
            # 500 jiffies is past level 0 (63): the timer fires on the next multiple of 8
            assert k.jiffies == ((j + 500) // 8 + 1) * 8

    async def test_ssleep_0(self, virtual: bool) -> None:
        """ssleep(0) does not sleep."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            j = k.jiffies
            await ssleep(0)
            # on the real clock a busy machine may hold the loop for a good part of a second
            # at the checkpoint: the bound is the shortest sleep ssleep() can do, one second
            assert k.jiffies == j if virtual else k.jiffies - j < k.hz

    async def test_usleep_range_never_early(self, virtual: bool) -> None:
        """TM-25: usleep_range(1000, 2000) never returns before 1000 us."""
        async with Kernel(nr_cpus=2, hz=250):
            for _ in range(3 if virtual else 20):
                start = anyio.current_time()
                await usleep_range(1000, 2000)
                elapsed = anyio.current_time() - start
                assert elapsed >= 0.001 - EPS
                if virtual:
                    assert elapsed <= 0.002

    async def test_usleep_range_not_ended_by_wake_up_process(self, virtual: bool) -> None:
        """usleep_range keeps sleeping through a wake_up_process: it never returns before lo."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            me = current()
            woken: list[int] = []
            at_tick(k, 1, lambda: woken.append(wake_up_process(me)))
            start = anyio.current_time()
            await usleep_range(3000, 4000)
            elapsed = anyio.current_time() - start
            # the task was asleep when woken (on a loaded real loop the wake may come too late,
            # or only after the sleep ended: then it is not counted)
            assert woken == [1] if virtual else len(woken) <= 1
            assert elapsed >= 0.003 - EPS
            if virtual:
                # an hrtimer sleep for [3 ms, 4 ms]: alone on its CPU it ends at the hard end
                assert elapsed == pytest.approx(0.004, abs=EPS)

    async def test_usleep_range_bad_range(self, virtual: bool) -> None:
        """HR-20: usleep_range with hi < lo is the kernel's WARN_ON_ONCE and a sleep of exactly
        lo (no slack, v6.13); negative bounds are a ValueError, non-ints a TypeError."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            start = anyio.current_time()
            await usleep_range(2000, 1000)
            elapsed = anyio.current_time() - start
            assert elapsed >= 0.002 - EPS
            if virtual:
                assert elapsed == pytest.approx(0.002, abs=EPS)
            await usleep_range(2000, 1000)
            assert logged(k, "WARNING: CPU:") == 1  # once
            with pytest.raises(ValueError):
                await usleep_range(-1, 10)
            with pytest.raises(TypeError):
                await usleep_range(1.0, 2)  # type: ignore[arg-type]

    async def test_sleep_arguments_type_checked(self) -> None:
        """msleep, msleep_interruptible and ssleep reject non-int durations with TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError):
                await msleep(1.5)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await msleep_interruptible("10")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await ssleep(0.5)  # type: ignore[arg-type]


class TestSignals:
    async def test_send_sig_sets_pending_for_init(self) -> None:
        """send_sig to the init task makes signal_pending true; flush_signals clears it."""
        async with Kernel(nr_cpus=2, hz=250):
            me = current()
            assert not signal_pending(me)
            assert send_sig(SIGINT, me, 0) == 0
            assert signal_pending(me)
            flush_signals(me)
            assert not signal_pending(me)

    async def test_kernel_dequeue_signal_lowest_first(self) -> None:
        """kernel_dequeue_signal returns pending signals lowest number first, then 0."""
        async with Kernel(nr_cpus=2, hz=250):
            me = current()
            send_sig(SIGTERM, me, 0)
            send_sig(SIGINT, me, 0)
            assert kernel_dequeue_signal() == SIGINT
            assert signal_pending(me)
            assert kernel_dequeue_signal() == SIGTERM
            assert not signal_pending(me)
            assert kernel_dequeue_signal() == 0

    @pytest.mark.parametrize("sig", [0, 65, -2])
    async def test_send_sig_invalid_signal(self, sig: int) -> None:
        """send_sig with an int that is not a signal number 1..64 is a ValueError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                ValueError,
                match=rf"^send_sig\(\) expects a signal number from 1 to 64 for 'sig', got {sig}$",
            ):
                send_sig(sig, current(), 0)
            assert not signal_pending(current())

    @pytest.mark.parametrize(("sig", "kind"), [(True, "bool"), (2.0, "float"), ("SIGINT", "str")])
    async def test_send_sig_signal_not_an_int(self, sig: object, kind: str) -> None:
        """send_sig with a signal that is not an int (bools included) is a TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                TypeError, match=rf"^send_sig\(\) expects an int for 'sig', got {kind}$"
            ):
                send_sig(sig, current(), 0)  # type: ignore[arg-type]
            assert not signal_pending(current())

    async def test_disallow_signal(self) -> None:
        """disallow_signal makes a kthread ignore a signal again and drops it if pending."""
        async with Kernel(nr_cpus=2, hz=250):
            pending: list[bool] = []
            gate = DECLARE_COMPLETION()

            async def threadfn(_: object) -> int:
                me = current()
                allow_signal(SIGINT)
                send_sig(SIGINT, me, 0)
                pending.append(signal_pending(me))
                disallow_signal(SIGINT)
                pending.append(signal_pending(me))
                send_sig(SIGINT, me, 0)
                pending.append(signal_pending(me))
                await wait_for_completion(gate)
                return 0

            task = kthread_run(threadfn, None, "fickle")
            await settle()
            assert pending == [True, False, False]
            complete(gate)
            assert await kthread_stop(task) == 0

    @pytest.mark.parametrize("sig", [0, 65])
    async def test_allow_signal_invalid(self, sig: int) -> None:
        """allow_signal and disallow_signal reject invalid signal numbers with ValueError."""
        async with Kernel(nr_cpus=2, hz=250):
            for call in (allow_signal, disallow_signal):
                with pytest.raises(
                    ValueError,
                    match=rf"^{call.__name__}\(\) expects a signal number from 1 to 64 "
                    rf"for 'sig', got {sig}$",
                ):
                    call(sig)
            assert current().allowed_signals == 0

    async def test_kthread_ignores_signals_unless_allowed(self) -> None:
        """send_sig to a kthread is ignored unless it allow_signal()-ed that signal."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            ret: dict[str, int] = {}
            state = {"go": False}

            async def waiter(allow: bool) -> int:
                if allow:
                    allow_signal(SIGTERM)
                ret["allowed" if allow else "ignored"] = await wait_event_interruptible(
                    wq, lambda: state["go"]
                )
                return 0

            deaf = kthread_run(waiter, False, "deaf")
            hearing = kthread_run(waiter, True, "hearing")
            await settle()
            send_sig(SIGTERM, deaf, 0)
            send_sig(SIGINT, hearing, 0)  # allowed SIGTERM only
            await settle()
            assert not signal_pending(deaf)
            assert not signal_pending(hearing)
            assert ret == {}
            send_sig(SIGTERM, hearing, 0)
            await settle()
            assert signal_pending(hearing)
            assert ret == {"allowed": -kdefer_async.ERESTARTSYS}
            state["go"] = True
            wake_up_all(wq)
            await settle()
            assert ret == {"allowed": -kdefer_async.ERESTARTSYS, "ignored": 0}
            await kthread_stop(deaf)
            await kthread_stop(hearing)

    async def test_signal_does_not_wake_uninterruptible_sleep(self) -> None:
        """A signal leaves a TASK_UNINTERRUPTIBLE sleeper asleep (wait_event)."""
        async with Kernel(nr_cpus=2, hz=250):
            wq = DECLARE_WAIT_QUEUE_HEAD()
            state = {"go": False}
            done: list[str] = []

            async def waiter(_: object) -> int:
                allow_signal(SIGKILL)
                await wait_event(wq, lambda: state["go"])
                done.append("woke")
                return 0

            task = kthread_run(waiter, None, "dsleeper")
            await settle()
            assert task.state == TASK_UNINTERRUPTIBLE
            send_sig(SIGINT, task, 0)
            await settle()
            assert done == []
            state["go"] = True
            wake_up_all(wq)
            await settle()
            assert done == ["woke"]
            await kthread_stop(task)


class TestHungTask:
    async def test_hung_task_reported(self, virtual: bool) -> None:
        """TM-31: a task blocked uninterruptibly for over 120 s is reported; interruptible ones are not."""
        if not virtual:
            pytest.skip("needs two minutes of virtual time")
        async with Kernel(nr_cpus=2, hz=250) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            state = {"go": False}

            async def stuck_d(_: object) -> int:
                await wait_event(wq, lambda: state["go"])
                return 0

            async def stuck_s(_: object) -> int:
                await wait_event_interruptible(wq, lambda: state["go"])
                return 0

            d = kthread_run(stuck_d, None, "stuck_d")
            s = kthread_run(stuck_s, None, "stuck_s")
            await settle()
            d_msg = f"INFO: task {d.comm}:{d.pid} blocked for more than 120 seconds."
            # the test body sleeps interruptibly, so it is never reported either
            assert await msleep_interruptible(119_000) == 0
            assert logged(k, "INFO: task") == 0
            assert await msleep_interruptible(6_000) == 0
            assert logged(k, d_msg) == 1
            assert logged(k, "INFO: task") == 1
            assert logged(k, s.comm) == 0
            # reported once only
            assert await msleep_interruptible(200_000) == 0
            assert logged(k, "INFO: task") == 1
            state["go"] = True
            wake_up_all(wq)
            assert await kthread_stop(d) == 0
            assert await kthread_stop(s) == 0

    async def test_hung_task_detector_disabled(self, virtual: bool) -> None:
        """hung_task_timeout_secs=0 disables the hung-task report."""
        if not virtual:
            pytest.skip("needs two minutes of virtual time")
        async with Kernel(nr_cpus=2, hz=250, hung_task_timeout_secs=0) as k:
            wq = DECLARE_WAIT_QUEUE_HEAD()
            state = {"go": False}

            async def stuck(_: object) -> int:
                await wait_event(wq, lambda: state["go"])
                return 0

            task = kthread_run(stuck, None, "stuck")
            await settle()
            assert await msleep_interruptible(300_000) == 0
            assert logged(k, "INFO: task") == 0
            state["go"] = True
            wake_up_all(wq)
            assert await kthread_stop(task) == 0


class TestNoKernel:
    @pytest.mark.parametrize(
        "call",
        [
            lambda: msleep(1),
            lambda: msleep_interruptible(1),
            lambda: ssleep(1),
            lambda: usleep_range(1, 2),
            lambda: schedule_timeout(1),
        ],
    )
    async def test_async_api_without_kernel(self, call: Callable[[], object]) -> None:
        """A sleeping API called with no kernel running raises RuntimeError at call time."""
        with pytest.raises(RuntimeError):
            call()

    async def test_plain_api_without_kernel(self) -> None:
        """set_current_state and kernel_dequeue_signal need a kernel too."""
        with pytest.raises(RuntimeError):
            set_current_state(TASK_INTERRUPTIBLE)
        with pytest.raises(RuntimeError):
            kernel_dequeue_signal()


UINT_MAX = 2**32 - 1
ULONG_MAX = 2**64 - 1


class TestArguments:
    @pytest.mark.parametrize(
        ("state", "exc", "message"),
        [
            (
                -1,
                ValueError,
                "TASK_RUNNING, TASK_INTERRUPTIBLE or TASK_UNINTERRUPTIBLE for 'state', got -1",
            ),
            (
                0x100,
                ValueError,
                "TASK_RUNNING, TASK_INTERRUPTIBLE or TASK_UNINTERRUPTIBLE for 'state', got 256",
            ),
            (True, TypeError, "an int for 'state', got bool"),
            ("1", TypeError, "an int for 'state', got str"),
        ],
    )
    async def test_set_current_state(
        self, state: object, exc: type[Exception], message: str
    ) -> None:
        """set_current_state(-1) is a ValueError; the task stays TASK_RUNNING."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(exc, match=rf"^set_current_state\(\) expects {message}$"):
                set_current_state(state)  # type: ignore[arg-type]
            assert current().state == TASK_RUNNING

    @pytest.mark.parametrize(
        ("name", "call"),
        [
            ("signal_pending", signal_pending),
            ("flush_signals", flush_signals),
            ("wake_up_process", wake_up_process),
            ("send_sig", lambda task: send_sig(SIGINT, task, 0)),
        ],
        ids=["signal_pending", "flush_signals", "wake_up_process", "send_sig"],
    )
    async def test_task_apis_need_a_task(self, name: str, call: Callable[[object], object]) -> None:
        """signal_pending(None) and friends are a TypeError, not an AttributeError inside."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError,
                match=rf"^{name}\(\) expects a task \(from current\(\) or kthread_run\) for "
                r"'task', got NoneType$",
            ):
                call(None)
            assert isinstance(current(), TaskStruct)

    async def test_send_sig_checks_priv_before_sending(self) -> None:
        """send_sig's priv is a C int: checked before the signal is queued."""
        async with Kernel(nr_cpus=1, hz=250):
            me = current()
            with pytest.raises(
                TypeError, match=r"^send_sig\(\) expects an int for 'priv', got NoneType$"
            ):
                send_sig(SIGINT, me, None)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=rf"^send_sig\(\) expects an int from {-(2**31)} to {2**31 - 1} for 'priv', "
                rf"got {2**31}$",
            ):
                send_sig(SIGINT, me, 2**31)
            assert not signal_pending(me)

    @pytest.mark.parametrize(
        ("call", "name", "param"),
        [
            (msleep, "msleep", "ms"),
            (msleep_interruptible, "msleep_interruptible", "ms"),
            (ssleep, "ssleep", "seconds"),
        ],
        ids=["msleep", "msleep_interruptible", "ssleep"],
    )
    async def test_msleep_family_takes_an_unsigned_int(
        self, call: Callable[[object], object], name: str, param: str, virtual: bool
    ) -> None:
        """msleep(-1) is a ValueError at the call (no silent wrap to a 49-day sleep)."""
        unsigned = rf"an unsigned int \(0 to {UINT_MAX}\) for '{param}'"
        async with Kernel(nr_cpus=1, hz=250) as k:
            j = k.get_jiffies()
            for bad, exc, message in (
                (-1, ValueError, rf"{unsigned}, got -1"),
                (UINT_MAX + 1, ValueError, rf"{unsigned}, got {UINT_MAX + 1}"),
                (1.5, TypeError, rf"an int for '{param}', got float"),
            ):
                with pytest.raises(exc, match=rf"^{name}\(\) expects {message}$"):
                    call(bad)
            if virtual:  # (on the real clock jiffies run on while the test's code runs)
                assert k.get_jiffies() == j  # nothing slept: model time did not move
            assert current().state == TASK_RUNNING

    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (schedule_timeout, "schedule_timeout"),
            (schedule_timeout_interruptible, "schedule_timeout_interruptible"),
            (schedule_timeout_uninterruptible, "schedule_timeout_uninterruptible"),
        ],
        ids=["plain", "interruptible", "uninterruptible"],
    )
    async def test_schedule_timeout_takes_a_long(
        self, call: Callable[[object], object], name: str
    ) -> None:
        """schedule_timeout's timeout is a long: a float or 2**63 is rejected before the state
        changes (a negative long is the kernel's reported 'wrong timeout value', see TM-20)."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(
                ValueError,
                match=rf"^{name}\(\) expects a number of jiffies \(a long: {-(2**63)} to "
                rf"{2**63 - 1}\) for 'timeout', got {2**63}$",
            ):
                call(2**63)
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects an int for 'timeout', got str$"
            ):
                call("10")
            assert current().state == TASK_RUNNING
            assert logged(k, "wrong timeout value") == 0

    async def test_usleep_range(self) -> None:
        """usleep_range takes unsigned longs (hi < lo is the kernel's WARN, not an error)."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                ValueError,
                match=rf"^usleep_range\(\) expects an unsigned long \(0 to {ULONG_MAX}\) for "
                r"'lo', got -1$",
            ):
                usleep_range(-1, 3)
            with pytest.raises(
                TypeError, match=r"^usleep_range\(\) expects an int for 'hi', got NoneType$"
            ):
                usleep_range(1, None)  # type: ignore[arg-type]
            assert current().state == TASK_RUNNING

    @pytest.mark.parametrize(
        ("call", "param"), [(mdelay, "ms"), (udelay, "us"), (ndelay, "ns")], ids=["m", "u", "n"]
    )
    async def test_busy_delays_take_an_unsigned_long(
        self, call: Callable[[object], None], param: str
    ) -> None:
        """mdelay(-1) and friends are a ValueError, udelay(1.0) a TypeError."""
        async with Kernel(nr_cpus=1, hz=250):
            name = call.__name__
            with pytest.raises(
                ValueError,
                match=rf"^{name}\(\) expects an unsigned long \(0 to {ULONG_MAX}\) for "
                rf"'{param}', got -1$",
            ):
                call(-1)
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects an int for '{param}', got float$"
            ):
                call(1.0)

    async def test_missing_arguments_are_worded_for_the_api(self) -> None:
        """msleep() is Python's TypeError for msleep itself, raised at the call."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError, match=r"^msleep\(\) missing 1 required positional argument: 'ms'$"
            ):
                msleep()  # type: ignore[call-arg]
            with pytest.raises(
                TypeError, match=r"^usleep_range\(\) got an unexpected keyword argument 'max'$"
            ):
                usleep_range(1, max=2)  # type: ignore[call-arg]
            await msleep(ms=0)
