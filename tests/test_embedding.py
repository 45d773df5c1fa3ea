"""Tasks from outside the kernel's context (`kdefer_async._context.attach`, `Kernel.enter`).

A web server, a queue consumer or another library starts tasks the kernel never saw: they
do not inherit the context of ``async with Kernel():``. When exactly one kernel runs on their
event loop, their first kernel call enters it as a user task making a system call; with
several, ``with k.enter():`` says which.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import kdefer_async as kd
from kdefer_async import Kernel, NoKernelError

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def kernel_elsewhere(**options: Any) -> AsyncIterator[Kernel]:
    """A kernel booted in a task of its own, as an app's lifespan does: the caller's task
    stays outside its context."""
    booted = anyio.Event()
    stop = anyio.Event()
    box: list[Kernel] = []

    async def lifespan() -> None:
        async with Kernel(**options) as k:
            box.append(k)
            booted.set()
            await stop.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lifespan, name="lifespan")
        await booted.wait()
        try:
            yield box[0]
        finally:
            stop.set()


async def in_task(fn: Callable[[], Awaitable[Any]], name: str) -> Any:
    """Run ``await fn()`` in a new task named *name*, started outside any kernel context."""
    result: list[Any] = []

    async def runner() -> None:
        result.append(await fn())

    async with anyio.create_task_group() as tg:
        tg.start_soon(runner, name=name)
    return result[0]


class TestForeignTask:
    async def test_kernel_calls_from_a_task_the_kernel_never_saw(self, virtual: bool) -> None:
        """mod_delayed_work, queue_work, msleep, flush_work and wait_for_completion work from
        a task started outside the kernel's context (as a server starts its handlers)."""
        async with kernel_elsewhere(nr_cpus=2, hz=250) as k:

            async def handler() -> list[str]:
                ran: list[str] = []

                async def fn(_w: kd.Work) -> None:
                    await kd.msleep(2)
                    ran.append("work")

                work = kd.Work(fn)
                assert kd.queue_work(kd.system_percpu_wq, work)
                assert await kd.flush_work(work)
                dwork = kd.DelayedWork(lambda _w: ran.append("debounced"))
                for _ in range(5):  # debounced: runs once, after the last push
                    kd.mod_delayed_work(kd.system_percpu_wq, dwork, 2)
                await kd.msleep(40)
                done = kd.Completion()
                kd.schedule_work(kd.Work(lambda _w: kd.complete(done)))
                await kd.wait_for_completion(done)
                ran.append("completed")
                return ran

            assert await in_task(handler, "request-7") == ["work", "debounced", "completed"]
            assert not any("BUG" in line for line in k.dmesg())

    async def test_it_enters_as_a_user_task(self) -> None:
        """The task enters as a user task: process context, a pid of its own, its name as
        comm (at most 15 characters), on a CPU of the kernel; the same task struct on every
        later call of that task; another task gets another one."""
        async with kernel_elsewhere(nr_cpus=2, hz=250) as k:

            async def whoami() -> tuple[kd.TaskStruct, kd.TaskStruct, bool, bool, int]:
                me = kd.current()
                await kd.msleep(1)
                return me, kd.current(), kd.in_task(), kd.in_atomic(), kd.preempt_count()

            me, again, task_ctx, atomic, count = await in_task(whoami, "uvicorn-request-handler")
            other = (await in_task(whoami, "consumer"))[0]
        assert me is again
        assert me.comm == "uvicorn-request"
        assert me.kernel is k
        assert (task_ctx, atomic, count) == (True, False, 0)
        assert not me.is_kthread
        assert other.comm == "consumer"
        assert other.pid != me.pid
        assert {me.cpu, other.cpu} == {0, 1}  # new tasks spread over the CPUs

    async def test_the_kernels_own_tasks_keep_their_task(self) -> None:
        """A task started inside `async with Kernel()` keeps the task it inherits: the
        fallback is only for tasks with none."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert kd.current() is k.init_task
            seen: list[kd.TaskStruct] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _append_current(seen))
            assert seen[0].comm == "init"
        assert k.init_task is not None

    async def test_sleeping_in_the_kernel_when_it_halts(self) -> None:
        """A foreign task asleep in the kernel when the kernel exits gets NoKernelError where
        it sleeps, instead of sleeping forever."""
        errors: list[BaseException] = []
        asleep = anyio.Event()

        async def sleeper() -> None:
            try:
                kd.current()
                asleep.set()
                await kd.msleep(1_000_000)
            except NoKernelError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg, kernel_elsewhere(nr_cpus=1, hz=250):
            tg.start_soon(sleeper, name="sleeper")
            await asleep.wait()
        assert len(errors) == 1
        assert "the kernel halted while task sleeper/" in str(errors[0])


class TestSeveralKernels:
    async def test_two_kernels_on_one_loop_need_enter(self) -> None:
        """With two kernels on the loop a task of neither is told to use `k.enter()`; inside
        `with k.enter():` its calls go to k, and the binding ends with the block."""
        async with (
            kernel_elsewhere(nr_cpus=1, hz=250) as k1,
            kernel_elsewhere(nr_cpus=2, hz=250) as k2,
        ):

            async def ambiguous() -> str:
                with pytest.raises(NoKernelError) as info:
                    kd.current()
                return str(info.value)

            message = await in_task(ambiguous, "ambiguous")
            assert "2 Kernels run on this event loop" in message
            assert "with kernel.enter():" in message

            async def bound() -> tuple[Kernel, Kernel, bool]:
                with k2.enter() as task:
                    assert kd.current() is task
                    first = kd.current_kernel()
                    await kd.msleep(1)
                    with k1.enter():
                        second = kd.current_kernel()
                    assert kd.current_kernel() is k2
                with pytest.raises(NoKernelError):
                    kd.current()
                return first, second, True

            assert await in_task(bound, "bound") == (k2, k1, True)

    async def test_enter_a_kernel_that_is_not_running(self) -> None:
        """k.enter() before boot or after exit is a NoKernelError that says so."""
        k = Kernel(nr_cpus=1, hz=250)
        with pytest.raises(NoKernelError, match=r"not running \(not booted yet\)"), k.enter():
            pass  # pragma: no cover
        async with k:
            with k.enter() as task:
                assert task is k.init_task  # already its task: nothing changes
        with pytest.raises(NoKernelError, match=r"not running \(halted\)"), k.enter():
            pass  # pragma: no cover


class TestOtherThreads:
    async def test_thread_without_a_loop_and_task_of_another_loop(self) -> None:
        """A call from a thread with no event loop, and from a task of another event loop
        (another thread's), is a NoKernelError that says which."""
        async with kernel_elsewhere(nr_cpus=1, hz=250):
            errors: dict[str, BaseException] = {}

            def plain() -> None:
                try:
                    kd.current()
                except NoKernelError as exc:
                    errors["plain"] = exc

            async def other_loop() -> None:
                try:
                    kd.current()
                except NoKernelError as exc:
                    errors["loop"] = exc

            threads = [
                threading.Thread(target=plain, name="plain"),
                threading.Thread(target=lambda: anyio.run(other_loop), name="other-loop"),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert "('plain'; this thread runs no event loop)" in str(errors["plain"])
        assert "('other-loop'; this task runs on another event loop)" in str(errors["loop"])


async def _append_current(seen: list[kd.TaskStruct]) -> None:
    seen.append(kd.current())
