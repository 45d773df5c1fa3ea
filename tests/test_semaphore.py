"""Tests for `kdefer_async._semaphore`: rw_semaphore and the counting semaphore (LK-12 to LK-22
of the semantics' §11.8).

Not modelled, so not tested: rwsem optimistic spinning and the lock stealing it allows until
the first waiter has waited ``RWSEM_WAIT_TIMEOUT`` (the model hands the lock to the first
waiter at once, which is what the handoff bit enforces).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from helpers import at_tick, logged

from kdefer_async import (
    DECLARE_COMPLETION,
    DECLARE_RWSEM,
    DEFINE_SEMAPHORE,
    DEFINE_SPINLOCK,
    EINTR,
    ETIME,
    IRQ_HANDLED,
    SIGINT,
    SIGKILL,
    Kernel,
    KernelBug,
    RwSemaphore,
    Semaphore,
    TaskStruct,
    allow_signal,
    complete,
    complete_all,
    down,
    down_interruptible,
    down_killable,
    down_read,
    down_read_interruptible,
    down_read_killable,
    down_read_trylock,
    down_timeout,
    down_trylock,
    down_write,
    down_write_killable,
    down_write_trylock,
    downgrade_write,
    init_rwsem,
    kthread_run,
    kthread_stop,
    msleep,
    request_irq,
    sema_init,
    send_sig,
    spin_lock,
    spin_unlock,
    up,
    up_read,
    up_write,
    wait_for_completion,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio


def spawn(fn: Callable[[], Awaitable[object]], name: str) -> TaskStruct:
    """Start a kthread that awaits ``fn()`` and exits with 0."""

    async def body(_data: object) -> int:
        await fn()
        return 0

    return kthread_run(body, None, name)


class TestRwSemaphore:
    async def test_readers_share_writer_waits(self) -> None:
        """LK-12. A and B down_read: both hold; C's down_write blocks until both up_read."""
        async with Kernel(nr_cpus=2, hz=250):
            sem = DECLARE_RWSEM()
            assert isinstance(sem, RwSemaphore)
            log: list[str] = []
            release = DECLARE_COMPLETION()

            async def reader(name: str) -> None:
                await down_read(sem)
                log.append(f"{name} in")
                await wait_for_completion(release)
                log.append(f"{name} out")
                up_read(sem)

            async def writer() -> None:
                await down_write(sem)
                log.append("C in")
                up_write(sem)

            a = spawn(lambda: reader("A"), "A")
            await settle()
            b = spawn(lambda: reader("B"), "B")
            await settle()
            c = spawn(writer, "C")
            await settle()
            assert log == ["A in", "B in"]
            complete_all(release)
            for t in (a, b, c):
                assert await kthread_stop(t) == 0
            assert log[-1] == "C in"
            assert sorted(log[:4]) == ["A in", "A out", "B in", "B out"]

    async def test_reader_queues_behind_waiting_writer(self) -> None:
        """LK-13. R1 reads; W blocks in down_write; R2's down_read blocks and trylock → 0;
        up_read(R1) → W gets it; up_write(W) → R2 gets it."""
        async with Kernel(nr_cpus=2, hz=250):
            sem = DECLARE_RWSEM()
            log: list[str] = []
            w_go = DECLARE_COMPLETION()

            async def writer() -> None:
                await down_write(sem)
                log.append("W in")
                await wait_for_completion(w_go)
                up_write(sem)

            async def reader2() -> None:
                await down_read(sem)
                log.append("R2 in")
                up_read(sem)

            await down_read(sem)  # R1: this task
            w = spawn(writer, "W")
            await settle()
            r2 = spawn(reader2, "R2")
            await settle()
            assert log == []
            assert down_read_trylock(sem) == 0
            up_read(sem)
            await settle()
            assert log == ["W in"]
            complete(w_go)
            await settle()
            assert log == ["W in", "R2 in"]
            for t in (w, r2):
                assert await kthread_stop(t) == 0

    async def test_release_wakes_all_waiting_readers(self) -> None:
        """LK-14. W1 holds; R2, W3, R4 queue in that order → up_write grants R2 and R4
        together; W3 gets it after both up_read."""
        async with Kernel(nr_cpus=2, hz=250):
            sem = DECLARE_RWSEM()
            log: list[str] = []
            readers_go = DECLARE_COMPLETION()

            async def reader(name: str) -> None:
                await down_read(sem)
                log.append(f"{name} in")
                await wait_for_completion(readers_go)
                up_read(sem)

            async def writer3() -> None:
                await down_write(sem)
                log.append("W3 in")
                up_write(sem)

            await down_write(sem)  # W1
            tasks = []
            for name, fn in (
                ("R2", lambda: reader("R2")),
                ("W3", writer3),
                ("R4", lambda: reader("R4")),
            ):
                tasks.append(spawn(fn, name))
                await settle()
            up_write(sem)
            await settle()
            assert sorted(log) == ["R2 in", "R4 in"]
            complete_all(readers_go)
            await settle()
            assert log[-1] == "W3 in"
            for t in tasks:
                assert await kthread_stop(t) == 0

    async def test_downgrade_write(self) -> None:
        """LK-15. W holds; R2 then W3 queue → downgrade_write: W and R2 hold read, W3 waits.
        With W3 queued first, nobody is woken."""
        async with Kernel(nr_cpus=2, hz=250):
            for order in (("R2", "W3"), ("W3", "R2")):
                sem = DECLARE_RWSEM()
                log: list[str] = []

                async def reader() -> None:
                    await down_read(sem)  # noqa: B023
                    log.append("R2 in")  # noqa: B023
                    up_read(sem)  # noqa: B023

                async def writer() -> None:
                    await down_write(sem)  # noqa: B023
                    log.append("W3 in")  # noqa: B023
                    up_write(sem)  # noqa: B023

                await down_write(sem)
                tasks = []
                for name in order:
                    tasks.append(spawn(reader if name == "R2" else writer, name))
                    await settle()
                downgrade_write(sem)
                await settle()
                assert log == (["R2 in"] if order[0] == "R2" else [])
                assert down_write_trylock(sem) == 0
                up_read(sem)
                await settle()
                for t in tasks:
                    assert await kthread_stop(t) == 0
                assert sorted(log) == ["R2 in", "W3 in"]

    async def test_signals(self) -> None:
        """LK-16. In a kthread that allowed SIGINT and SIGKILL: down_read_interruptible +
        SIGINT → -EINTR; down_write_killable + SIGINT keeps waiting, + SIGKILL → -EINTR."""
        async with Kernel(nr_cpus=2, hz=250):
            sem = DECLARE_RWSEM()
            ret: dict[str, int] = {}

            async def waiter(which: str) -> int:
                allow_signal(SIGINT)
                allow_signal(SIGKILL)
                if which == "read":
                    ret[which] = await down_read_interruptible(sem)
                else:
                    ret[which] = await down_write_killable(sem)
                return 0

            await down_write(sem)
            r = kthread_run(waiter, "read", "reader")
            w = kthread_run(waiter, "write", "writer")
            await settle()
            send_sig(SIGINT, r, 0)
            send_sig(SIGINT, w, 0)
            await settle()
            assert ret == {"read": -EINTR}
            assert -EINTR == -4
            send_sig(SIGKILL, w, 0)
            await settle()
            assert ret == {"read": -EINTR, "write": -EINTR}
            up_write(sem)
            assert down_write_trylock(sem) == 1  # nobody was left waiting
            up_write(sem)
            for t in (r, w):
                assert await kthread_stop(t) == 0

    async def test_read_killable(self) -> None:
        """down_read_killable ends on SIGKILL only."""
        async with Kernel(nr_cpus=2, hz=250):
            sem = DECLARE_RWSEM()
            ret: list[int] = []

            async def waiter(_data: object) -> int:
                allow_signal(SIGINT)
                allow_signal(SIGKILL)
                ret.append(await down_read_killable(sem))
                return 0

            await down_write(sem)
            t = kthread_run(waiter, None, "reader")
            await settle()
            send_sig(SIGINT, t, 0)
            await settle()
            assert ret == []
            send_sig(SIGKILL, t, 0)
            await settle()
            assert ret == [-EINTR]
            up_write(sem)
            assert await kthread_stop(t) == 0

    async def test_atomic_context(self) -> None:
        """LK-17. await down_read under a spinlock → atomic-sleep report (KernelBug at the
        call); down_read_trylock in a timer callback → 1/0 without a report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            sem = DECLARE_RWSEM()
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            try:
                with pytest.raises(KernelBug):
                    down_read(sem)
            finally:
                spin_unlock(lock)
            assert logged(k, "BUG: sleeping function called from invalid context") == 1
            got: list[int] = []

            def in_timer() -> None:
                got.append(down_read_trylock(sem))
                got.append(down_read_trylock(sem))
                up_read(sem)
                up_read(sem)
                got.append(down_write_trylock(sem))
                got.append(down_read_trylock(sem))
                up_write(sem)

            at_tick(k, 1, in_timer)
            await msleep(8)
            assert got == [1, 1, 1, 0]
            assert logged(k, "BUG: sleeping function called from invalid context") == 1

    async def test_up_write_by_other_task(self) -> None:
        """LK-18. (debug) up_write by a task other than the writer → WARN_ONCE whose text
        starts DEBUG_RWSEMS_WARN_ON(; lockdep adds a bad unlock balance."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            sem = DECLARE_RWSEM()

            async def other() -> None:
                up_write(sem)

            await down_write(sem)
            t = spawn(other, "other")
            await settle()
            assert await kthread_stop(t) == 0
            lines = [line for line in k.dmesg() if "DEBUG_RWSEMS_WARN_ON(" in line]
            assert len(lines) == 1
            assert (
                lines[0]
                .split("] ", 1)[-1]
                .startswith(
                    "DEBUG_RWSEMS_WARN_ON((rwsem_owner(sem) != current) && "
                    "!rwsem_test_oflags(sem, RWSEM_NONSPINNABLE)): count = 0x1, magic = 0x"
                )
            )
            assert logged(k, "WARNING: bad unlock balance detected!") == 1
            assert down_write_trylock(sem) == 1  # released all the same
            up_write(sem)

    async def test_up_read_unheld(self) -> None:
        """up_read of an rwsem nobody reads: DEBUG_RWSEMS_WARN_ON(!is_rwsem_reader_owned(sem))."""
        async with Kernel(nr_cpus=2, hz=250, prove_locking=False) as k:
            sem = DECLARE_RWSEM()
            up_read(sem)
            assert logged(k, "DEBUG_RWSEMS_WARN_ON(!is_rwsem_reader_owned(sem)): count = 0x0") == 1
            assert logged(k, "bad unlock balance") == 0
            assert down_write_trylock(sem) == 1

    async def test_recursive_write(self) -> None:
        """lockdep: down_write on an rwsem the task holds → recursive locking, KernelBug."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            sem = DECLARE_RWSEM()
            await down_read(sem)
            with pytest.raises(KernelBug):
                await down_write(sem)
            up_read(sem)
            assert logged(k, "WARNING: possible recursive locking detected") == 1
            assert down_write_trylock(sem) == 1

    async def test_init_rwsem(self) -> None:
        """init_rwsem makes a bare RwSemaphore usable."""
        async with Kernel(nr_cpus=2, hz=250):
            sem = RwSemaphore("mm")
            init_rwsem(sem)
            await down_write(sem)
            assert "mm" in repr(sem)
            up_write(sem)


class TestSemaphore:
    async def test_counting_fifo(self) -> None:
        """LK-19. sema_init(s, 2): two downs at once; a third blocks; X, Y queue; up → the
        first waiter, count still 0; then X, then Y; down_trylock 0 when it takes, 1 when 0."""
        async with Kernel(nr_cpus=2, hz=250):
            s = Semaphore()
            sema_init(s, 2)
            await down(s)
            await down(s)
            assert down_trylock(s) == 1
            order: list[str] = []

            async def taker(name: str) -> None:
                await down(s)
                order.append(name)

            tasks = []
            for name in ("first", "X", "Y"):
                tasks.append(spawn(lambda n=name: taker(n), name))  # type: ignore[misc]
                await settle()
            assert order == []
            up(s)
            await settle()
            assert order == ["first"]
            assert down_trylock(s) == 1  # handed over: the count stayed 0
            up(s)
            await settle()
            assert order == ["first", "X"]
            up(s)
            await settle()
            assert order == ["first", "X", "Y"]
            up(s)
            assert down_trylock(s) == 0
            for t in tasks:
                assert await kthread_stop(t) == 0

    async def test_down_timeout(self, virtual: bool) -> None:
        """LK-20. Count 0: down_timeout(s, 10) at J → -ETIME at tick J+11; with up(s) at
        J+3 → 0 at J+3."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            s = DEFINE_SEMAPHORE(0)
            j = k.jiffies
            assert await down_timeout(s, 10) == -ETIME
            assert -ETIME == -62
            assert k.jiffies == j + 11 if virtual else k.jiffies >= j + 11
            j = k.jiffies
            at_tick(k, 3, lambda: up(s))
            assert await down_timeout(s, 10) == 0
            assert k.jiffies == j + 3 if virtual else k.jiffies >= j + 3
            assert down_trylock(s) == 1
            assert await down_timeout(s, 0) == -ETIME
            assert await down_timeout(s, -5) == -ETIME

    async def test_down_interruptible(self) -> None:
        """LK-20. down_interruptible blocked + an allowed signal → -EINTR, count unchanged."""
        async with Kernel(nr_cpus=2, hz=250):
            s = DEFINE_SEMAPHORE(0)
            ret: list[int] = []

            async def waiter(_data: object) -> int:
                allow_signal(SIGINT)
                ret.append(await down_interruptible(s))
                return 0

            t = kthread_run(waiter, None, "waiter")
            await settle()
            send_sig(SIGINT, t, 0)
            await settle()
            assert ret == [-EINTR]
            assert down_trylock(s) == 1
            up(s)
            assert down_trylock(s) == 0  # the up went to the count: nobody was left waiting
            assert await kthread_stop(t) == 0

    async def test_down_killable(self) -> None:
        """down_killable ignores SIGINT and ends on SIGKILL."""
        async with Kernel(nr_cpus=2, hz=250):
            s = DEFINE_SEMAPHORE(0)
            ret: list[int] = []

            async def waiter(_data: object) -> int:
                allow_signal(SIGINT)
                allow_signal(SIGKILL)
                ret.append(await down_killable(s))
                return 0

            t = kthread_run(waiter, None, "waiter")
            await settle()
            send_sig(SIGINT, t, 0)
            await settle()
            assert ret == []
            send_sig(SIGKILL, t, 0)
            await settle()
            assert ret == [-EINTR]
            assert await kthread_stop(t) == 0

    async def test_up_from_hardirq_and_beyond_count(self) -> None:
        """LK-21. up(s) in a hardirq handler wakes the first waiter; up x3 on sema_init(s, 1)
        → three further downs without blocking."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            s = DEFINE_SEMAPHORE(0)
            got: list[str] = []

            def handler(_irq: int, _dev: Any) -> int:
                up(s)
                return IRQ_HANDLED

            async def waiter() -> None:
                await down(s)
                got.append("woken")

            t = spawn(waiter, "waiter")
            await settle()
            assert request_irq(12, handler, 0, "semdev", object()) == 0
            k.raise_irq(12)
            await settle()
            assert got == ["woken"]
            assert await kthread_stop(t) == 0
            sema_init(s, 1)
            for _ in range(3):
                up(s)
            for _ in range(4):
                assert down_trylock(s) == 0
            assert down_trylock(s) == 1

    async def test_down_under_spinlock_report_policy(self) -> None:
        """LK-22. await down(s) holding a spinlock, count 1 → atomic-sleep report (might_sleep
        even though it does not sleep), and the count becomes 0."""
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            s = DEFINE_SEMAPHORE(1)
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            await down(s)
            spin_unlock(lock)
            assert logged(k, "BUG: sleeping function called from invalid context") == 1
            assert down_trylock(s) == 1

    async def test_down_under_spinlock_raises(self) -> None:
        """LK-22. With the default policy the call raises KernelBug and takes nothing."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            s = DEFINE_SEMAPHORE(1)
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            try:
                with pytest.raises(KernelBug):
                    down(s)
            finally:
                spin_unlock(lock)
            assert logged(k, "BUG: sleeping function called from invalid context") == 1
            assert down_trylock(s) == 0

    async def test_cancelled_waiter_passes_unit_on(self) -> None:
        """A waiter cancelled while it waits leaves the queue; the next waiter gets the up."""
        async with Kernel(nr_cpus=2, hz=250):
            s = DEFINE_SEMAPHORE(0)
            got: list[str] = []

            async def second() -> None:
                await down(s)
                got.append("second")

            with anyio.move_on_after(0.01):
                await down(s)
            t = spawn(second, "second")
            await settle()
            up(s)
            await settle()
            assert got == ["second"]
            assert down_trylock(s) == 1
            assert await kthread_stop(t) == 0


class TestArguments:
    @pytest.mark.parametrize(
        "fn",
        [init_rwsem, down_read_trylock, down_write_trylock, up_read, up_write, downgrade_write],
    )
    async def test_not_a_rwsem(self, fn: Callable[[Any], object]) -> None:
        """The plain rwsem functions name themselves, 'sem' and the type."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError) as info:
                fn(None)
            assert str(info.value) == (
                f"{fn.__name__}() expects an RwSemaphore for 'sem', got NoneType"
            )

    @pytest.mark.parametrize(
        "fn",
        [down_read, down_read_interruptible, down_read_killable, down_write, down_write_killable],
    )
    async def test_sleeping_rwsem_checks_at_call(self, fn: Callable[[Any], object]) -> None:
        """The sleeping rwsem functions reject junk when called, before any coroutine exists."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError) as info:
                fn(Semaphore(1))
            assert str(info.value) == (
                f"{fn.__name__}() expects an RwSemaphore for 'sem', got Semaphore"
            )

    @pytest.mark.parametrize("fn", [down, down_interruptible, down_killable, down_trylock, up])
    async def test_not_a_semaphore(self, fn: Callable[[Any], object]) -> None:
        """The semaphore functions name themselves, 'sem' and the type."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError) as info:
                fn(DECLARE_RWSEM())
            assert str(info.value) == (
                f"{fn.__name__}() expects a Semaphore for 'sem', got RwSemaphore"
            )

    async def test_counts_and_timeouts(self) -> None:
        """Counts are ints from 0 to 2**31 - 1; down_timeout's jiffies fit a long."""
        async with Kernel(nr_cpus=2, hz=250):
            s = DEFINE_SEMAPHORE(1)
            with pytest.raises(ValueError) as info:
                sema_init(s, -1)
            assert str(info.value) == (
                "sema_init() expects an int from 0 to 2147483647 for 'count', got -1"
            )
            with pytest.raises(TypeError) as tinfo:
                DEFINE_SEMAPHORE(1.5)  # type: ignore[arg-type]
            assert str(tinfo.value) == "DEFINE_SEMAPHORE() expects an int for 'count', got float"
            with pytest.raises(ValueError) as vinfo:
                down_timeout(s, 2**63)
            assert str(vinfo.value).startswith("down_timeout() expects a number of jiffies")
            assert down_trylock(s) == 0  # nothing was taken by the rejected calls
