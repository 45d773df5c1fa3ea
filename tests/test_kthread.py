"""Kernel threads: ``kthread_create``/``kthread_run``, ``kthread_stop``, ``kthread_bind``, oopses."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers import logged

from kdefer_async import (
    EINTR,
    MAX_SCHEDULE_TIMEOUT,
    TASK_INTERRUPTIBLE,
    Completion,
    Kernel,
    KernelBug,
    KernelPanic,
    TaskStruct,
    complete,
    current,
    kthread_bind,
    kthread_create,
    kthread_run,
    kthread_should_stop,
    kthread_stop,
    msleep,
    schedule_timeout,
    set_current_state,
    smp_processor_id,
    wait_for_completion,
    wake_up_process,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio


async def sleep_until_stopped() -> None:
    """The canonical kthread loop body: sleep until kthread_stop() wakes us."""
    while True:
        set_current_state(TASK_INTERRUPTIBLE)
        if kthread_should_stop():
            break
        await schedule_timeout(MAX_SCHEDULE_TIMEOUT)
    set_current_state(0)


class TestKthreadRun:
    async def test_runs_threadfn_with_data_and_name(self) -> None:
        """kthread_run runs await threadfn(data) as a new task named from namefmt % args."""
        async with Kernel(nr_cpus=2, hz=250):
            seen: dict[str, Any] = {}
            init = current()

            async def threadfn(data: object) -> int:
                me = current()
                seen.update(data=data, comm=me.comm, pid=me.pid, task=me)
                return 0

            payload = object()
            task = kthread_run(threadfn, payload, "mydrv/%d:%s", 3, "rx")
            assert isinstance(task, TaskStruct)
            assert task.comm == "mydrv/3:rx"
            await settle()
            assert seen["data"] is payload
            assert seen["comm"] == "mydrv/3:rx"
            assert seen["task"] is task
            assert seen["pid"] == task.pid != init.pid
            assert await kthread_stop(task) == 0

    async def test_comm_truncated_to_15_chars(self) -> None:
        """The thread name is truncated to TASK_COMM_LEN - 1 = 15 characters."""
        async with Kernel(nr_cpus=2, hz=250):
            names: list[str] = []

            async def threadfn(_: object) -> int:
                names.append(current().comm)
                return 0

            task = kthread_run(threadfn, None, "averyverylongname/%d", 12)
            await settle()
            assert task.comm == "averyverylongna"
            assert names == ["averyverylongna"]
            await kthread_stop(task)

    async def test_pids_are_distinct(self) -> None:
        """Every kthread gets its own pid."""
        async with Kernel(nr_cpus=2, hz=250):

            async def threadfn(_: object) -> int:
                return 0

            tasks = [kthread_run(threadfn, None, "t%d", n) for n in range(4)]
            pids = {t.pid for t in tasks} | {current().pid}
            assert len(pids) == 5
            for t in tasks:
                await kthread_stop(t)

    async def test_plain_threadfn_rejected(self) -> None:
        """A plain (non-async) thread function is a TypeError: a kthread may sleep."""
        async with Kernel(nr_cpus=2, hz=250):

            def plain(_: object) -> int:
                return 0

            with pytest.raises(TypeError):
                kthread_run(plain, None, "plain")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                kthread_create(plain, None, "plain")  # type: ignore[arg-type]

    async def test_without_kernel(self) -> None:
        """kthread_run, kthread_should_stop and kthread_stop need a running kernel."""

        async def threadfn(_: object) -> int:
            return 0

        async with Kernel(nr_cpus=1, hz=250):
            task = kthread_create(threadfn, None, "gone")
            assert await kthread_stop(task) == -EINTR
        with pytest.raises(RuntimeError):
            kthread_run(threadfn, None, "nokernel")
        with pytest.raises(RuntimeError):
            kthread_should_stop()
        with pytest.raises(RuntimeError):
            kthread_stop(task)


class TestKthreadStop:
    async def test_stop_returns_thread_result(self) -> None:
        """kthread_should_stop turns true on kthread_stop, which returns the thread's result."""
        async with Kernel(nr_cpus=2, hz=250):
            loops: list[bool] = []

            async def threadfn(_: object) -> int:
                loops.append(kthread_should_stop())
                await sleep_until_stopped()
                loops.append(kthread_should_stop())
                return 42

            task = kthread_run(threadfn, None, "stopper")
            await settle()
            assert loops == [False]
            assert not kthread_should_stop()  # the caller is not being stopped
            assert await kthread_stop(task) == 42
            assert loops == [False, True]

    async def test_stop_never_run_thread(self) -> None:
        """kthread_stop of a created, never-woken kthread returns -EINTR without running it."""
        async with Kernel(nr_cpus=2, hz=250):
            ran: list[object] = []

            async def threadfn(data: object) -> int:
                ran.append(data)
                return 0

            task = kthread_create(threadfn, None, "lazy")
            await settle()
            assert ran == []
            assert await kthread_stop(task) == -EINTR
            await settle()
            assert ran == []

    async def test_stop_before_first_run_after_wake(self) -> None:
        """kthread_stop right after kthread_run, before the thread ran, returns -EINTR (as kthread())."""
        async with Kernel(nr_cpus=2, hz=250):
            ran: list[object] = []

            async def threadfn(data: object) -> int:
                ran.append(data)
                return 0

            task = kthread_run(threadfn, None, "racy")
            assert await kthread_stop(task) == -EINTR
            assert ran == []

    async def test_created_thread_starts_when_woken(self) -> None:
        """kthread_create makes a stopped thread; wake_up_process starts it."""
        async with Kernel(nr_cpus=2, hz=250):
            ran: list[str] = []

            async def threadfn(_: object) -> int:
                ran.append(current().comm)
                return 5

            task = kthread_create(threadfn, None, "late")
            await settle()
            assert ran == []
            assert wake_up_process(task) == 1
            await settle()
            assert ran == ["late"]
            assert await kthread_stop(task) == 5

    async def test_stop_exited_thread(self) -> None:
        """kthread_stop of a thread that already returned gives its return value at once."""
        async with Kernel(nr_cpus=2, hz=250):

            async def threadfn(_: object) -> int:
                return 9

            task = kthread_run(threadfn, None, "quick")
            await settle()
            assert await kthread_stop(task) == 9

    async def test_stop_self_is_a_bug(self) -> None:
        """kthread_stop of the calling thread itself reports a self-deadlock and raises KernelBug."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            caught: list[KernelBug] = []

            async def threadfn(_: object) -> int:
                try:
                    await kthread_stop(current())
                except KernelBug as exc:
                    caught.append(exc)
                return 1

            task = kthread_run(threadfn, None, "selfstop")
            await settle()
            assert len(caught) == 1
            assert logged(k, "WARNING: possible recursive locking detected") == 1
            assert await kthread_stop(task) == 1
            assert k.oopses == []

    async def test_stop_from_init_wakes_sleeping_thread(self, virtual: bool) -> None:
        """kthread_stop wakes a thread blocked in schedule_timeout so it can see should_stop."""
        async with Kernel(nr_cpus=2, hz=250) as k:

            async def threadfn(_: object) -> int:
                n = 0
                while not kthread_should_stop():
                    set_current_state(TASK_INTERRUPTIBLE)
                    await schedule_timeout(1000)
                    n += 1
                return n

            task = kthread_run(threadfn, None, "poller")
            await settle()
            j = k.jiffies
            assert await kthread_stop(task) == 1
            if virtual:
                assert k.jiffies == j


class TestKthreadBind:
    async def test_bind_before_run(self) -> None:
        """kthread_bind before the first wake-up puts the thread on that CPU."""
        async with Kernel(nr_cpus=2, hz=250):
            cpus: list[int] = []
            gate = Completion()

            async def threadfn(_: object) -> int:
                cpus.append(smp_processor_id())
                # held here until the test has looked: a timed sleep could end during
                # settle() on a busy machine
                await wait_for_completion(gate)
                await msleep(1)
                cpus.append(smp_processor_id())
                return 0

            assert smp_processor_id() == 0
            task = kthread_create(threadfn, None, "bound/1")
            kthread_bind(task, 1)
            assert task.cpu == 1
            wake_up_process(task)
            await settle()
            assert cpus == [1]
            complete(gate)  # woken from CPU 0, it stays on CPU 1
            assert await kthread_stop(task) == 0
            assert cpus == [1, 1]

    async def test_bind_running_thread_warns(self) -> None:
        """kthread_bind of a thread that already runs WARNs and leaves its CPU alone."""
        async with Kernel(nr_cpus=2, hz=250) as k:

            async def threadfn(_: object) -> int:
                await sleep_until_stopped()
                return 0

            task = kthread_run(threadfn, None, "running")
            await settle()
            kthread_bind(task, 1)
            assert task.cpu == 0
            assert logged(k, "WARNING: CPU: 0") == 1
            await kthread_stop(task)

    async def test_bind_bad_cpu(self) -> None:
        """kthread_bind to a CPU the kernel does not have is a ValueError."""
        async with Kernel(nr_cpus=2, hz=250):

            async def threadfn(_: object) -> int:
                return 0

            task = kthread_create(threadfn, None, "nowhere")
            with pytest.raises(ValueError):
                kthread_bind(task, 2)
            with pytest.raises(TypeError):
                kthread_bind(task, "1")  # type: ignore[arg-type]
            assert await kthread_stop(task) == -EINTR


class TestKthreadOops:
    async def test_exception_is_an_oops(self, virtual: bool) -> None:
        """An exception escaping a kthread is an oops: logged, recorded, and the kernel goes on."""
        async with Kernel(nr_cpus=2, hz=250) as k:

            async def broken(_: object) -> int:
                raise ZeroDivisionError("boom")

            task = kthread_run(broken, None, "broken")
            await settle()
            assert len(k.oopses) == 1
            oops = k.oopses[0]
            assert oops.comm == "broken"
            assert oops.pid == task.pid
            assert isinstance(oops.exception, ZeroDivisionError)
            assert logged(k, "Oops") >= 1
            assert logged(k, "ZeroDivisionError: boom") >= 1
            # the kernel keeps running: time passes, other threads run
            j = k.jiffies
            await msleep(4)
            assert k.jiffies == j + 2 if virtual else k.jiffies >= j + 2

            async def fine(_: object) -> int:
                return 3

            other = kthread_run(fine, None, "fine")
            await settle()
            assert await kthread_stop(other) == 3
            await kthread_stop(task)
            assert len(k.oopses) == 1

    async def test_panic_on_oops(self) -> None:
        """With panic_on_oops=True an exception in a kthread panics the kernel."""
        k = Kernel(nr_cpus=2, hz=250, panic_on_oops=True)

        async def broken(_: object) -> int:
            raise KeyError("boom")

        async def boot() -> None:
            async with k:
                kthread_run(broken, None, "broken")
                await settle()

        with pytest.raises(KernelPanic) as info:
            await boot()
        assert isinstance(info.value.__cause__, KeyError)
        assert len(k.oopses) == 1
        assert k.oopses[0].comm == "broken"
        assert logged(k, "] Kernel panic - not syncing: Fatal exception") == 1


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly *message*."""
    return "^" + re.escape(message) + "$"


async def quick(_data: object) -> int:
    return 0


class TestArguments:
    """Bad arguments are a TypeError or ValueError with the wording of _check.py, raised before
    anything changes: no task made, no pid used, no CPU changed."""

    async def test_create_and_run(self) -> None:
        """kthread_create and kthread_run check `async threadfn(data)` and the name format;
        a rejected call makes no task (the next one gets the next pid)."""

        def plain(_data: object) -> int:
            return 0

        async def no_data() -> int:
            return 0

        async with Kernel(nr_cpus=2, hz=250):
            first = kthread_create(quick, None, "first")
            with pytest.raises(
                TypeError,
                match=exactly(
                    "kthread_create() expects a function callable as threadfn(data) for "
                    "'threadfn', got NoneType"
                ),
            ):
                kthread_create(None, None, "x")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "kthread_run(): a kthread function may sleep, so it must be `async def` "
                    "(called as `await threadfn(data)`), but plain is a plain function"
                ),
            ):
                kthread_run(plain, None, "x")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "kthread_run() expects a function callable as threadfn(data) for "
                    "'threadfn', but no_data() cannot be called with 1 positional "
                    "argument"
                ),
            ):
                kthread_run(no_data, None, "x")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly("kthread_create() expects a str for 'namefmt', got NoneType"),
            ):
                kthread_create(quick, None, None)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=exactly(
                    "kthread_run(): the arguments do not match the name format: not enough "
                    "arguments for format string 'worker/%d'"
                ),
            ):
                kthread_run(quick, None, "worker/%d")
            second = kthread_create(quick, None, "second")
            assert second.pid == first.pid + 1
            assert await kthread_stop(first) == -EINTR
            assert await kthread_stop(second) == -EINTR

    async def test_bind(self) -> None:
        """kthread_bind takes a TaskStruct and one of the kernel's CPUs; a rejected bind leaves
        the thread where it was."""
        async with Kernel(nr_cpus=2, hz=250):
            task = kthread_create(quick, None, "bindme")
            with pytest.raises(
                TypeError,
                match=exactly("kthread_bind() expects a TaskStruct for 'task', got NoneType"),
            ):
                kthread_bind(None, None)  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=exactly("kthread_bind() expects an int for 'cpu', got NoneType")
            ):
                kthread_bind(task, None)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=exactly(
                    "kthread_bind() expects a CPU number from 0 to 1 for 'cpu', got 8192"
                ),
            ):
                kthread_bind(task, 8192)
            assert task.cpu == 0
            kthread_bind(task, 1)
            assert task.cpu == 1
            assert await kthread_stop(task) == -EINTR

    async def test_stop(self) -> None:
        """kthread_stop takes a kthread, checked at the call (before any coroutine exists)."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(
                TypeError, match=exactly("kthread_stop() expects a TaskStruct for 'task', got str")
            ):
                kthread_stop("kthread")  # type: ignore[arg-type]
            init = current()
            with pytest.raises(
                ValueError,
                match=exactly(f"kthread_stop() expects a kthread for 'task', got {init!r}"),
            ):
                kthread_stop(init)
            assert not init.should_stop
