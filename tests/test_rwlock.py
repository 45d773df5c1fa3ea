"""Tests for `kdefer_async._rwlock`: rwlock_t (LK-01 to LK-07 of the semantics' §11.8).

Not modelled, so not tested: the qrwlock's rule that a *waiting* writer holds off new
task-context readers. A writer can only wait by spinning, and in one event loop nothing
spins (the contention a loop can produce is same-CPU re-entry, which is a deadlock).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from helpers import at_tick, logged

from kdefer_async import (
    DEFINE_RWLOCK,
    IRQ_HANDLED,
    Kernel,
    KernelBug,
    RwLock,
    Tasklet,
    current,
    in_interrupt,
    irqs_disabled,
    msleep,
    preempt_count,
    read_lock,
    read_lock_bh,
    read_lock_irq,
    read_lock_irqsave,
    read_trylock,
    read_unlock,
    read_unlock_bh,
    read_unlock_irq,
    read_unlock_irqrestore,
    request_irq,
    rwlock_init,
    tasklet_schedule,
    write_lock,
    write_lock_bh,
    write_lock_irq,
    write_lock_irqsave,
    write_trylock,
    write_unlock,
    write_unlock_bh,
    write_unlock_irq,
    write_unlock_irqrestore,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

IRQ = 12


def irq_line(k: Kernel) -> Callable[[Callable[[], object]], None]:
    """Request a line (process context: before any lock is taken) and return ``fire(fn)``,
    which raises an interrupt on the calling task's CPU whose handler calls ``fn()``."""
    slot: list[Callable[[], object]] = []

    def handler(_irq: int, _dev: Any) -> int:
        slot[0]()
        return IRQ_HANDLED

    assert request_irq(IRQ, handler, 0, "rwdev", object()) == 0

    def fire(fn: Callable[[], object]) -> None:
        slot[:] = [fn]
        k.raise_irq(IRQ, cpu=current().cpu)

    return fire


class TestReaders:
    async def test_readers_share(self) -> None:
        """Two read holds at once; each adds one to preempt_count; write_trylock fails."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()
            assert isinstance(lock, RwLock)
            read_lock(lock)
            assert preempt_count() == 1
            assert read_trylock(lock) == 1
            assert preempt_count() == 2
            assert write_trylock(lock) == 0
            read_unlock(lock)
            read_unlock(lock)
            assert preempt_count() == 0
            assert write_trylock(lock) == 1
            write_unlock(lock)
            assert preempt_count() == 0
            assert logged(k, "WARNING") == 0

    async def test_interrupt_reader_nests(self) -> None:
        """LK-01. A task holds read_lock; an interrupt on its CPU takes read_lock too: no
        deadlock, no report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            fire = irq_line(k)
            lock = DEFINE_RWLOCK()
            me = current()
            seen: list[tuple[bool, bool]] = []

            def reader() -> None:
                read_lock(lock)
                seen.append((current() is me, in_interrupt()))
                read_unlock(lock)

            read_lock(lock)
            fire(reader)
            read_unlock(lock)
            assert seen == [(True, True)]
            assert preempt_count() == 0
            assert logged(k, "WARNING") == 0
            assert logged(k, "BUG") == 0

    async def test_rwlock_init(self) -> None:
        """rwlock_init makes a bare RwLock() usable and forgets its lockdep history."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = RwLock("mine")
            rwlock_init(lock)
            write_lock(lock)
            assert "mine" in repr(lock)
            write_unlock(lock)


class TestDeadlocks:
    async def test_interrupt_writer_over_reader(self) -> None:
        """LK-02. Task holds read_lock; an interrupt on its CPU calls write_lock: KernelBug
        (the kernel spins forever); lockdep reports {HARDIRQ-ON-R} -> {IN-HARDIRQ-W} first."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            fire = irq_line(k)
            lock = DEFINE_RWLOCK()
            caught: list[KernelBug] = []

            def writer() -> None:
                before = preempt_count()
                try:
                    write_lock(lock)
                except KernelBug as e:
                    caught.append(e)
                assert preempt_count() == before

            read_lock(lock)
            fire(writer)
            read_unlock(lock)
            assert len(caught) == 1
            lines = k.dmesg()
            inconsistent = [
                i for i, line in enumerate(lines) if "inconsistent {HARDIRQ-ON-R} -> " in line
            ]
            recursive = [i for i, line in enumerate(lines) if "possible recursive locking" in line]
            assert logged(k, "inconsistent {HARDIRQ-ON-R} -> {IN-HARDIRQ-W} usage.") == 1
            assert inconsistent
            assert recursive
            assert inconsistent[0] < recursive[0]
            assert preempt_count() == 0

    async def test_interrupt_writer_over_writer_debug(self) -> None:
        """LK-03. (debug) Task holds write_lock; an interrupt on its CPU calls write_lock:
        BUG: rwlock recursion on CPU#n, comm/pid, address; then KernelBug."""
        async with Kernel(nr_cpus=2, hz=250, prove_locking=False) as k:
            fire = irq_line(k)
            lock = DEFINE_RWLOCK()
            me = current()
            caught: list[KernelBug] = []

            def writer() -> None:
                try:
                    write_lock(lock)
                except KernelBug as e:
                    caught.append(e)

            flags = write_lock_irqsave(lock)
            write_unlock_irqrestore(lock, flags)
            write_lock(lock)
            fire(writer)
            write_unlock(lock)
            assert len(caught) == 1
            assert logged(k, f"BUG: rwlock recursion on CPU#{me.cpu}, {me.comm}/{me.pid}, ") == 1
            assert logged(k, "possible recursive locking") == 0
            assert logged(k, "inconsistent") == 0

    async def test_reader_over_writer(self) -> None:
        """A reader in an interrupt of the write holder deadlocks: KernelBug, count restored."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            fire = irq_line(k)
            lock = DEFINE_RWLOCK()
            caught: list[KernelBug] = []

            def reader() -> None:
                try:
                    read_lock(lock)
                except KernelBug as e:
                    caught.append(e)

            write_lock(lock)
            fire(reader)
            write_unlock(lock)
            assert len(caught) == 1
            assert preempt_count() == 0
            assert not irqs_disabled()

    async def test_write_twice_in_task(self) -> None:
        """write_lock twice in one task: lockdep's recursive locking, KernelBug, no change."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()
            write_lock(lock)
            with pytest.raises(KernelBug):
                write_lock(lock)
            assert preempt_count() == 1
            write_unlock(lock)
            assert logged(k, "WARNING: possible recursive locking detected") == 1


class TestTrylock:
    async def test_trylock_matrix(self) -> None:
        """LK-04. Write-held: both trylocks 0; read-held: read_trylock 1, write_trylock 0;
        free: write_trylock 1 with preempt_count + 1."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()
            write_lock(lock)
            assert read_trylock(lock) == 0
            assert write_trylock(lock) == 0
            assert preempt_count() == 1
            write_unlock(lock)
            read_lock(lock)
            assert read_trylock(lock) == 1
            assert write_trylock(lock) == 0
            read_unlock(lock)
            read_unlock(lock)
            assert preempt_count() == 0
            assert write_trylock(lock) == 1
            assert preempt_count() == 1
            write_unlock(lock)
            assert preempt_count() == 0
            assert logged(k, "WARNING") == 0


class TestVariants:
    async def test_bh_forms(self) -> None:
        """LK-05. write_lock_bh → preempt_count 0x201; a tasklet scheduled inside runs at
        write_unlock_bh; read_lock_bh likewise."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_RWLOCK()
            ran: list[int] = []
            t = Tasklet(lambda _t: ran.append(1))
            write_lock_bh(lock)
            assert preempt_count() == 0x201
            tasklet_schedule(t)
            assert ran == []
            write_unlock_bh(lock)
            assert ran == [1]
            assert preempt_count() == 0
            read_lock_bh(lock)
            assert preempt_count() == 0x201
            tasklet_schedule(t)
            read_unlock_bh(lock)
            assert ran == [1, 1]
            assert preempt_count() == 0

    async def test_irqsave_forms(self) -> None:
        """LK-05. read_lock_irqsave → irqs_disabled; the restore brings back the previous
        state (off when nested in another irqsave)."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_RWLOCK()
            other = DEFINE_RWLOCK()
            flags = read_lock_irqsave(lock)
            assert irqs_disabled()
            assert preempt_count() == 1
            inner = write_lock_irqsave(other)
            write_unlock_irqrestore(other, inner)
            assert irqs_disabled()
            read_unlock_irqrestore(lock, flags)
            assert not irqs_disabled()
            assert preempt_count() == 0

    async def test_irq_forms_enable_unconditionally(self) -> None:
        """read/write_unlock_irq enable interrupts whatever they were before."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_RWLOCK()
            read_lock_irq(lock)
            assert irqs_disabled()
            read_unlock_irq(lock)
            assert not irqs_disabled()
            write_lock_irq(lock)
            assert irqs_disabled()
            assert preempt_count() == 1
            write_unlock_irq(lock)
            assert not irqs_disabled()
            assert preempt_count() == 0


class TestLockdep:
    async def test_reader_in_task_writer_in_timer(self) -> None:
        """LK-06. read_lock with BH on in a task, later write_lock in a timer callback:
        inconsistent lock state, {SOFTIRQ-ON-R} -> {IN-SOFTIRQ-W}."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()
            done: list[int] = []

            def writer() -> None:
                write_lock(lock)
                write_unlock(lock)
                done.append(1)

            read_lock(lock)
            read_unlock(lock)
            at_tick(k, 1, writer)
            await msleep(8)
            assert done == [1]
            assert logged(k, "WARNING: inconsistent lock state") == 1
            assert logged(k, "inconsistent {SOFTIRQ-ON-R} -> {IN-SOFTIRQ-W} usage.") == 1

    async def test_readers_everywhere_is_fine(self) -> None:
        """LK-06. Read-only use in a task and in a timer callback: no report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()
            done: list[int] = []

            def reader() -> None:
                read_lock(lock)
                read_unlock(lock)
                done.append(1)

            read_lock(lock)
            read_unlock(lock)
            at_tick(k, 1, reader)
            await msleep(8)
            read_lock(lock)
            read_unlock(lock)
            assert done == [1]
            assert logged(k, "inconsistent") == 0

    async def test_recursive_read_in_task(self) -> None:
        """LK-07. read_lock(l); read_lock(l) in task context: possible recursive locking
        detected, and the kernel goes on (both holds taken)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()
            read_lock(lock)
            read_lock(lock)
            assert preempt_count() == 2
            read_unlock(lock)
            read_unlock(lock)
            assert preempt_count() == 0
            assert logged(k, "WARNING: possible recursive locking detected") == 1

    async def test_recursive_read_in_softirq(self) -> None:
        """LK-07. The same nesting inside a softirq (a tasklet) is recursive-read: no report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()

            def nest(_t: Tasklet) -> None:
                read_lock(lock)
                read_lock(lock)
                read_unlock(lock)
                read_unlock(lock)

            tasklet_schedule(Tasklet(nest))
            await settle()
            assert logged(k, "recursive locking") == 0

    async def test_without_lockdep_no_report(self) -> None:
        """Kernel(prove_locking=False): neither the recursion nor the usage is reported."""
        async with Kernel(nr_cpus=2, hz=250, prove_locking=False) as k:
            lock = DEFINE_RWLOCK()
            read_lock(lock)
            read_lock(lock)
            read_unlock(lock)
            read_unlock(lock)
            at_tick(k, 1, lambda: (write_lock(lock), write_unlock(lock)))
            await msleep(8)
            assert logged(k, "WARNING") == 0

    async def test_bad_unlock_balance(self) -> None:
        """read_unlock and write_unlock of an unheld rwlock: lockdep's bad unlock balance."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_RWLOCK()
            read_unlock(lock)
            write_unlock(lock)
            assert preempt_count() == 0
            assert logged(k, "WARNING: bad unlock balance detected!") == 2
            assert logged(k, "but there are no more locks to release!") == 2


class TestArguments:
    @pytest.mark.parametrize(
        "fn",
        [
            rwlock_init,
            read_lock,
            read_unlock,
            write_lock,
            write_unlock,
            read_lock_bh,
            read_unlock_bh,
            write_lock_bh,
            write_unlock_bh,
            read_lock_irq,
            read_unlock_irq,
            write_lock_irq,
            write_unlock_irq,
            read_lock_irqsave,
            write_lock_irqsave,
            read_trylock,
            write_trylock,
        ],
    )
    async def test_not_a_rwlock(self, fn: Callable[[Any], object]) -> None:
        """Every rwlock function names itself, 'lock' and the type; nothing changes."""
        async with Kernel(nr_cpus=2, hz=250):
            for junk in (None, object(), "x"):
                with pytest.raises(TypeError) as info:
                    fn(junk)
                assert str(info.value) == (
                    f"{fn.__name__}() expects an RwLock for 'lock', got {type(junk).__name__}"
                )
            assert preempt_count() == 0
            assert not irqs_disabled()

    async def test_restore_flags(self) -> None:
        """The irqrestore forms check the flags: a negative one is a ValueError."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_RWLOCK()
            with pytest.raises(ValueError) as info:
                read_unlock_irqrestore(lock, -1)
            assert str(info.value) == (
                "read_unlock_irqrestore() expects flags from read_lock_irqsave() for 'flags', "
                "got -1"
            )
            with pytest.raises(TypeError) as tinfo:
                write_unlock_irqrestore(lock, None)  # type: ignore[arg-type]
            assert str(tinfo.value) == (
                "write_unlock_irqrestore() expects an int for 'flags', got NoneType"
            )

    async def test_name(self) -> None:
        """RwLock(name) takes a str or None."""
        async with Kernel(nr_cpus=2, hz=250):
            with pytest.raises(TypeError) as info:
                RwLock(1)  # type: ignore[arg-type]
            assert str(info.value) == "RwLock() expects a str or None for 'name', got int"
