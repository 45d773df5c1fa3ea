"""Parking and exiting kthreads: ``kthread_park``/``kthread_parkme``/``kthread_unpark``,
``kthread_stop`` of a parked thread, ``kthread_complete_and_exit`` (kernel-semantics-2 §6.5,
KW-12..KW-15).

Every behaviour of these IDs is modelled. Not modelled: re-binding a per-CPU thread on unpark
(CPU hotplug does not exist here, so the binding is never lost).
"""

from __future__ import annotations

import pytest
from helpers import logged

from kdefer_async import (
    EBUSY,
    Completion,
    Kernel,
    KernelBug,
    TaskStruct,
    complete,
    current,
    kthread_complete_and_exit,
    kthread_create,
    kthread_park,
    kthread_parkme,
    kthread_run,
    kthread_should_park,
    kthread_should_stop,
    kthread_stop,
    kthread_unpark,
    msleep,
    wait_for_completion,
)
from kdefer_async._consts import ENOSYS, TASK_PARKED
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

WARNING = "WARNING: CPU:"


def parking_thread(log: list[str]):  # type: ignore[no-untyped-def]
    """A thread function that loops, parks when asked, and returns 7 when stopped."""

    async def threadfn(data: object) -> int:
        while not kthread_should_stop():
            if kthread_should_park():
                log.append("parking")
                await kthread_parkme()
                log.append(f"unparked should_park={kthread_should_park()}")
                continue
            log.append("work")
            await msleep(4)
        log.append("stopping")
        return 7

    return threadfn


class TestPark:
    async def test_park_and_unpark(self) -> None:
        """KW-12. kthread_park from another task → 0 once the thread has parked, before any
        further work; kthread_unpark → it returns from kthread_parkme, should_park False."""
        async with Kernel(nr_cpus=2, hz=250):
            log: list[str] = []
            task = kthread_run(parking_thread(log), None, "parky")
            await msleep(10)
            assert await kthread_park(task) == 0
            assert log[-1] == "parking"
            assert task.state == TASK_PARKED
            n = len(log)
            await msleep(40)
            assert len(log) == n  # parked: no further work
            kthread_unpark(task)
            assert len(log) == n  # unpark does not wait
            await msleep(10)
            assert log[n] == "unparked should_park=False"
            assert log[n + 1] == "work"
            assert await kthread_stop(task) == 7

    async def test_park_before_first_run(self) -> None:
        """A thread created but never woken parks before its function runs; unparked, it
        starts."""
        async with Kernel(nr_cpus=1, hz=250):
            log: list[str] = []
            task = kthread_create(parking_thread(log), None, "fresh")
            assert await kthread_park(task) == 0
            assert log == []
            kthread_unpark(task)
            await msleep(2)
            assert log[:1] == ["work"]
            assert await kthread_stop(task) == 7

    async def test_park_self_only_sets_the_flag(self) -> None:
        """Called by the thread itself, kthread_park only sets the flag: 0, no sleep."""
        async with Kernel(nr_cpus=1, hz=250):
            seen: list[object] = []

            async def threadfn(data: object) -> int:
                seen.append(await kthread_park(current()))
                seen.append(kthread_should_park())
                while not kthread_should_stop():
                    await msleep(4)
                return 0

            task = kthread_run(threadfn, None, "selfpark")
            await msleep(2)
            assert seen == [0, True]
            await kthread_stop(task)

    async def test_second_park_is_ebusy(self) -> None:
        """KW-13. A second kthread_park before unpark → WARN_ON_ONCE and -EBUSY."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            task = kthread_run(parking_thread([]), None, "parky")
            assert await kthread_park(task) == 0
            assert await kthread_park(task) == -EBUSY == -16
            assert logged(k, WARNING) == 1
            assert await kthread_park(task) == -EBUSY
            assert logged(k, WARNING) == 1  # _ONCE
            await kthread_stop(task)

    async def test_park_of_exited_thread_is_enosys(self) -> None:
        """KW-13. kthread_park of a thread that has exited → WARN and -ENOSYS."""
        async with Kernel(nr_cpus=2, hz=250) as k:

            async def quick(data: object) -> int:
                return 0

            task = kthread_run(quick, None, "quick")
            await settle()
            assert task._exited
            assert await kthread_park(task) == -ENOSYS == -38
            assert logged(k, WARNING) == 1
            assert not task.should_park
            await kthread_stop(task)

    async def test_wake_up_process_does_not_unpark(self) -> None:
        """Only kthread_unpark wakes a parked thread (TASK_PARKED is no TASK_NORMAL state)."""
        from kdefer_async import wake_up_process

        async with Kernel(nr_cpus=1, hz=250):
            log: list[str] = []
            task = kthread_run(parking_thread(log), None, "parky")
            await msleep(10)
            await kthread_park(task)
            assert wake_up_process(task) == 0
            await msleep(10)
            assert log[-1] == "parking"
            await kthread_stop(task)

    async def test_parkme_without_request_returns(self, virtual: bool) -> None:
        """kthread_parkme with no park asked for returns at once."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            j = k.jiffies
            await kthread_parkme()
            assert not kthread_should_park()
            # at once: no time passes (a real clock may cross one jiffy in the checkpoint)
            assert k.jiffies - j == 0 if virtual else k.jiffies - j <= 1


class TestStopParked:
    async def test_stop_of_parked_thread(self) -> None:
        """KW-14. kthread_stop of a parked thread: it is unparked, sees kthread_should_stop(),
        and kthread_stop returns its result."""
        async with Kernel(nr_cpus=2, hz=250):
            log: list[str] = []
            task = kthread_run(parking_thread(log), None, "parky")
            await msleep(10)
            assert await kthread_park(task) == 0
            assert await kthread_stop(task) == 7
            assert log[-3:] == ["parking", "unparked should_park=False", "stopping"]

    async def test_stop_of_thread_parked_before_it_ran(self) -> None:
        """KW-14. A thread parked before its first run, then stopped: its function runs (as
        kthread() does after parking) and sees kthread_should_stop() at once."""
        async with Kernel(nr_cpus=1, hz=250):
            log: list[str] = []
            task = kthread_create(parking_thread(log), None, "fresh")
            assert await kthread_park(task) == 0
            assert await kthread_stop(task) == 7
            assert log == ["stopping"]


class TestCompleteAndExit:
    async def test_complete_and_exit(self) -> None:
        """KW-15. A kthread calls kthread_complete_and_exit(c, 5): c is completed, the thread
        ends (nothing after the call runs); kthread_stop after waiting on c → 5."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            c = Completion()
            after: list[str] = []

            async def threadfn(data: object) -> int:
                try:
                    await kthread_complete_and_exit(c, 5)
                except Exception:  # an ordinary handler does not stop the exit
                    after.append("caught")
                after.append("after")
                return 0

            task = kthread_run(threadfn, None, "exiter")
            await wait_for_completion(c)
            assert await kthread_stop(task) == 5
            assert after == []
            assert task._exited
            assert task.pid not in k._tasks
            assert not k.oopses

    async def test_complete_and_exit_without_completion(self) -> None:
        """kthread_complete_and_exit(None, code) just exits with code."""
        async with Kernel(nr_cpus=1, hz=250):

            async def threadfn(data: object) -> int:
                await kthread_complete_and_exit(None, -5)
                return 0  # pragma: no cover - never reached

            task = kthread_run(threadfn, None, "exiter")
            await settle()
            assert await kthread_stop(task) == -5

    async def test_outside_a_kthread_is_a_bug(self) -> None:
        """Called from a task that is no kthread: KernelBug, and the completion is untouched."""
        async with Kernel(nr_cpus=1, hz=250):
            c = Completion()
            with pytest.raises(KernelBug, match="not a kthread"):
                await kthread_complete_and_exit(c, 1)
            assert c.done == 0

    async def test_exit_from_kthread_worker_item_ends_the_worker(self) -> None:
        """An item that exits its worker's thread ends that thread; the worker has no task."""
        from kdefer_async import KthreadWork, kthread_queue_work, kthread_run_worker

        async with Kernel(nr_cpus=1, hz=250):
            wk = kthread_run_worker(0, "kw")
            thread = wk.task
            assert thread is not None
            c = Completion()

            async def fn(work: KthreadWork) -> None:
                await kthread_complete_and_exit(c, 3)

            kthread_queue_work(wk, KthreadWork(fn))
            await wait_for_completion(c)
            await settle()
            assert wk.task is None
            assert await kthread_stop(thread) == 3


class TestArguments:
    async def test_messages(self) -> None:
        """Bad arguments are rejected with the project's wording, before anything changes."""
        async with Kernel(nr_cpus=1, hz=250):
            me = current()
            cases: list[tuple[object, type[Exception], str]] = [
                (
                    lambda: kthread_park(None),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_park() expects a TaskStruct for 'task', got NoneType",
                ),
                (
                    lambda: kthread_park(me),
                    ValueError,
                    "kthread_park() expects a kthread for 'task'",
                ),
                (
                    lambda: kthread_unpark("t"),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_unpark() expects a TaskStruct for 'task', got str",
                ),
                (
                    lambda: kthread_unpark(me),
                    ValueError,
                    "kthread_unpark() expects a kthread for 'task'",
                ),
                (
                    lambda: kthread_complete_and_exit(object(), 0),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_complete_and_exit() expects a Completion or None for 'comp', "
                    "got object",
                ),
                (
                    lambda: kthread_complete_and_exit(None, 2**63),
                    ValueError,
                    "kthread_complete_and_exit() expects an int from",
                ),
                (
                    lambda: kthread_complete_and_exit(None, "0"),  # type: ignore[arg-type]
                    TypeError,
                    "kthread_complete_and_exit() expects an int for 'code', got str",
                ),
            ]
            for call, exc, text in cases:
                with pytest.raises(exc) as info:
                    call()  # type: ignore[operator]
                assert str(info.value).startswith(text), str(info.value)
            assert isinstance(me, TaskStruct)
            assert not me.should_park
            complete(Completion())
