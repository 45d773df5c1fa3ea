"""Spinlocks and mutexes, with lockdep-style reports (LK-23 to LK-26 of the semantics' §11.8).

Kernel(prove_locking=...) chooses the lockdep profile; CONFIG_DEBUG_SPINLOCK's reports are
always on. The rwlock, seqlock and semaphore behaviours are in test_rwlock.py,
test_seqlock.py and test_semaphore.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from helpers import at_tick, logged

from kdefer_async import (
    DECLARE_COMPLETION,
    DEFINE_MUTEX,
    DEFINE_RWLOCK,
    DEFINE_SPINLOCK,
    EINTR,
    IRQ_HANDLED,
    SIGINT,
    Kernel,
    KernelBug,
    Mutex,
    SpinLock,
    Tasklet,
    allow_signal,
    complete,
    current,
    flush_signals,
    in_atomic,
    in_interrupt,
    in_serving_softirq,
    in_softirq,
    in_task,
    irqs_disabled,
    kthread_run,
    kthread_stop,
    local_irq_save,
    lockdep_assert_held,
    msleep,
    mutex_init,
    mutex_is_locked,
    mutex_lock,
    mutex_lock_interruptible,
    mutex_trylock,
    mutex_unlock,
    preempt_count,
    read_lock,
    read_unlock,
    request_irq,
    send_sig,
    signal_pending,
    spin_is_locked,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irq,
    spin_unlock_irqrestore,
    tasklet_schedule,
    tasklet_setup,
    wait_for_completion,
    write_lock,
    write_unlock,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

SOFTIRQ_ON_TO_IN = "inconsistent {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W} usage."
IN_TO_SOFTIRQ_ON = "inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage."


def make_tasklet(fn: Callable[[], object]) -> Tasklet:
    """A tasklet whose callback calls ``fn()``."""
    t = Tasklet()
    tasklet_setup(t, lambda _t: fn())
    return t


class TestSpinLock:
    async def test_spin_lock_is_atomic(self) -> None:
        """spin_lock adds one to preempt_count (in_atomic); spin_unlock takes it back."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_SPINLOCK()
            assert isinstance(lock, SpinLock)
            assert preempt_count() == 0
            spin_lock(lock)
            assert preempt_count() == 1
            assert in_atomic()
            assert in_task()
            assert not in_interrupt()
            assert spin_is_locked(lock)
            spin_unlock(lock)
            assert preempt_count() == 0
            assert not in_atomic()
            assert not spin_is_locked(lock)

    async def test_spin_lock_init(self) -> None:
        """spin_lock_init makes an empty SpinLock() usable and unlocked."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = SpinLock()
            spin_lock_init(lock)
            assert not spin_is_locked(lock)
            spin_lock(lock)
            assert spin_is_locked(lock)
            spin_unlock(lock)

    async def test_spin_trylock(self) -> None:
        """spin_trylock takes a free lock (1) and fails on a held one (0) without a report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            assert spin_trylock(lock) == 1
            assert preempt_count() == 1
            assert spin_trylock(lock) == 0
            assert preempt_count() == 1
            spin_unlock(lock)
            assert preempt_count() == 0
            assert logged(k, "possible recursive locking") == 0

    async def test_spin_lock_bh(self) -> None:
        """spin_lock_bh disables BHs too: preempt_count 0x201, in_softirq and in_interrupt."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_SPINLOCK()
            spin_lock_bh(lock)
            assert preempt_count() == 0x201
            assert in_softirq()
            assert in_interrupt()
            assert not in_serving_softirq()
            assert in_task()
            spin_unlock_bh(lock)
            assert preempt_count() == 0

    async def test_spin_unlock_bh_runs_pending_softirqs(self) -> None:
        """A tasklet scheduled under spin_lock_bh runs inside spin_unlock_bh, borrowing the caller."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_SPINLOCK()
            ran: list[tuple[str, int, bool]] = []
            t = make_tasklet(
                lambda: ran.append((current().comm, preempt_count(), in_serving_softirq()))
            )
            spin_lock_bh(lock)
            tasklet_schedule(t)
            assert ran == []  # BHs are off: nothing runs, ksoftirqd is not woken
            spin_unlock_bh(lock)
            # ran before spin_unlock_bh returned, as local_bh_enable() does (count 0x101)
            assert ran == [("init", 0x101, True)]
            assert preempt_count() == 0

    async def test_spin_lock_irqsave(self) -> None:
        """spin_lock_irqsave disables local interrupts; spin_unlock_irqrestore restores them."""
        async with Kernel(nr_cpus=2, hz=250):
            outer = DEFINE_SPINLOCK()
            inner = DEFINE_SPINLOCK()
            assert not irqs_disabled()
            flags = spin_lock_irqsave(outer)
            assert irqs_disabled()
            assert preempt_count() == 1
            nested = spin_lock_irqsave(inner)
            assert preempt_count() == 2
            spin_unlock_irqrestore(inner, nested)
            assert irqs_disabled()  # restored to the outer state: still off
            spin_unlock_irqrestore(outer, flags)
            assert not irqs_disabled()
            assert preempt_count() == 0

    async def test_interrupt_deferred_until_irqrestore(self) -> None:
        """An interrupt raised on this CPU under spin_lock_irqsave runs at spin_unlock_irqrestore."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            seen: list[int] = []

            def handler(irq: int, _dev: Any) -> int:
                seen.append(irq)
                return IRQ_HANDLED

            assert request_irq(11, handler, 0, "mydev", object()) == 0
            flags = spin_lock_irqsave(lock)
            k.raise_irq(11)
            assert seen == []
            spin_unlock_irqrestore(lock, flags)
            assert seen == [11]

    async def test_spin_lock_irq(self) -> None:
        """spin_lock_irq / spin_unlock_irq disable and re-enable local interrupts."""
        async with Kernel(nr_cpus=2, hz=250):
            lock = DEFINE_SPINLOCK()
            spin_lock_irq(lock)
            assert irqs_disabled()
            assert preempt_count() == 1
            spin_unlock_irq(lock)
            assert not irqs_disabled()
            assert preempt_count() == 0

    async def test_recursive_spin_lock(self) -> None:
        """Taking a spinlock the task already holds reports recursive locking and raises KernelBug."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            with pytest.raises(KernelBug):
                spin_lock(lock)
            assert preempt_count() == 1  # the failed attempt left no trace
            assert spin_is_locked(lock)
            spin_unlock(lock)
            assert preempt_count() == 0
            assert logged(k, "WARNING: possible recursive locking detected") == 1
            assert logged(k, "*** DEADLOCK ***") == 1

    async def test_recursive_spin_lock_bh(self) -> None:
        """spin_lock_bh on a held lock is reported too and restores preempt_count."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            spin_lock_bh(lock)
            with pytest.raises(KernelBug):
                spin_lock_bh(lock)
            assert preempt_count() == 0x201
            spin_unlock_bh(lock)
            assert preempt_count() == 0
            assert logged(k, "WARNING: possible recursive locking detected") == 1

    async def test_unlock_unlocked_lockdep(self) -> None:
        """LK-26. (lockdep) spin_unlock of a lock nobody holds: bad unlock balance; lockdep
        turned lock debugging off, so the spinlock debug line follows no more (as in the
        kernel); preempt_count is left alone."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            spin_unlock(lock)
            assert preempt_count() == 0
            assert logged(k, "WARNING: bad unlock balance detected!") == 1
            assert logged(k, "but there are no more locks to release!") == 1
            assert logged(k, "is trying to release lock (") == 1
            assert logged(k, "BUG: spinlock already unlocked") == 0

    async def test_unlock_unlocked_debug(self) -> None:
        """LK-26. (debug) Without lockdep: BUG: spinlock already unlocked on CPU#0, comm/pid,
        then the lock line, once (lock debugging is off after it)."""
        async with Kernel(nr_cpus=2, hz=250, prove_locking=False) as k:
            lock = DEFINE_SPINLOCK()
            me = current()
            spin_unlock(lock)
            assert preempt_count() == 0
            assert (
                logged(k, f"BUG: spinlock already unlocked on CPU#{me.cpu}, {me.comm}/{me.pid}")
                == 1
            )
            assert logged(k, ".magic: dead4ead, .owner: <none>/-1, .owner_cpu: -1") == 1
            assert logged(k, "bad unlock balance") == 0
            spin_unlock(lock)
            assert logged(k, "BUG: spinlock already unlocked") == 1

    async def test_recursive_spin_lock_debug(self) -> None:
        """Without lockdep a recursive spin_lock is CONFIG_DEBUG_SPINLOCK's BUG: spinlock
        recursion, then KernelBug; no lockdep report."""
        async with Kernel(nr_cpus=2, hz=250, prove_locking=False) as k:
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            with pytest.raises(KernelBug):
                spin_lock(lock)
            assert preempt_count() == 1
            spin_unlock(lock)
            assert logged(k, "BUG: spinlock recursion on CPU#") == 1
            assert logged(k, "possible recursive locking") == 0

    async def test_trylock_in_interrupt_of_holder(self) -> None:
        """LK-23. spin_trylock in an irq handler on the CPU of the task holding the lock → 0,
        no deadlock, no report; spin_is_locked is True while it is held."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            got: list[int] = []

            def handler(_irq: int, _dev: Any) -> int:
                got.append(spin_trylock(lock))
                got.append(int(spin_is_locked(lock)))
                return IRQ_HANDLED

            assert request_irq(12, handler, 0, "mydev", object()) == 0
            spin_lock(lock)
            k.raise_irq(12, cpu=current().cpu)
            spin_unlock(lock)
            assert got == [0, 1]
            assert not spin_is_locked(lock)
            assert logged(k, "recursive") == 0
            assert logged(k, "BUG:") == 0

    async def test_spin_lock_irq_enables_unconditionally(self) -> None:
        """LK-24. local_irq_disable(); spin_lock_irq(l); spin_unlock_irq(l) leaves interrupts
        on, with no warning (the classic bug the _irqsave form avoids)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            flags = local_irq_save()
            spin_lock_irq(lock)
            spin_unlock_irq(lock)
            assert not irqs_disabled()
            assert flags == 0
            assert logged(k, "WARNING") == 0


class TestLockdepAssertHeld:
    async def test_not_held_warns_each_call(self) -> None:
        """LK-25. lockdep_assert_held of a lock nobody holds: one WARN (header only) per call."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            lockdep_assert_held(lock)
            lockdep_assert_held(lock)
            assert logged(k, "------------[ cut here ]------------") == 2
            assert logged(k, "WARNING: CPU: ") == 2

    async def test_held_by_caller_is_silent(self) -> None:
        """LK-25. Held by the caller (a spinlock, a mutex, either side of an RwLock): silent."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            lockdep_assert_held(lock)
            spin_unlock(lock)
            m = DEFINE_MUTEX()
            await mutex_lock(m)
            lockdep_assert_held(m)
            mutex_unlock(m)
            rw = DEFINE_RWLOCK()
            read_lock(rw)
            lockdep_assert_held(rw)
            read_unlock(rw)
            write_lock(rw)
            lockdep_assert_held(rw)
            write_unlock(rw)
            assert logged(k, "WARNING") == 0

    async def test_held_by_another_task_warns(self) -> None:
        """LK-25. A mutex held by another task: the caller does not hold it, WARN."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            m = DEFINE_MUTEX()
            locked = DECLARE_COMPLETION()
            release = DECLARE_COMPLETION()

            async def holder(_data: object) -> int:
                await mutex_lock(m)
                complete(locked)
                await wait_for_completion(release)
                mutex_unlock(m)
                return 0

            kthread_run(holder, None, "holder")
            await wait_for_completion(locked)
            lockdep_assert_held(m)
            assert logged(k, "WARNING: CPU: ") == 1
            complete(release)
            await settle()

    async def test_without_lockdep_a_no_op(self) -> None:
        """Without lockdep lockdep_assert_held checks its argument and does nothing more."""
        async with Kernel(nr_cpus=2, hz=250, prove_locking=False) as k:
            lockdep_assert_held(DEFINE_SPINLOCK())
            assert logged(k, "WARNING") == 0
            with pytest.raises(TypeError, match="lockdep_assert_held"):
                lockdep_assert_held(object())  # type: ignore[arg-type]


class TestLockdepUsage:
    async def test_task_then_softirq(self) -> None:
        """A lock taken with BHs on in a task, then in a tasklet: {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W}."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()

            def take() -> None:
                spin_lock(lock)
                spin_unlock(lock)

            take()
            assert logged(k, "inconsistent") == 0
            tasklet_schedule(make_tasklet(take))
            await settle()
            assert logged(k, "WARNING: inconsistent lock state") == 1
            assert logged(k, SOFTIRQ_ON_TO_IN) == 1
            assert k.oopses == []

    async def test_softirq_then_task(self) -> None:
        """A lock taken in a tasklet, then in a task with BHs on: {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W}."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()

            def take() -> None:
                spin_lock(lock)
                spin_unlock(lock)

            tasklet_schedule(make_tasklet(take))
            await settle()
            assert logged(k, "inconsistent") == 0
            take()
            assert logged(k, IN_TO_SOFTIRQ_ON) == 1
            assert logged(k, SOFTIRQ_ON_TO_IN) == 0

    async def test_reported_once(self) -> None:
        """The inconsistent-usage report is printed once per lock."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()

            def take() -> None:
                spin_lock(lock)
                spin_unlock(lock)

            for _ in range(3):
                take()
                tasklet_schedule(make_tasklet(take))
                await settle()
            assert logged(k, "WARNING: inconsistent lock state") == 1

    async def test_bh_safe_usage_not_reported(self) -> None:
        """spin_lock_bh in the task and spin_lock in the tasklet is the correct pattern: no report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()

            def take_in_softirq() -> None:
                spin_lock(lock)
                spin_unlock(lock)

            spin_lock_bh(lock)
            spin_unlock_bh(lock)
            tasklet_schedule(make_tasklet(take_in_softirq))
            await settle()
            spin_lock_bh(lock)
            spin_unlock_bh(lock)
            assert logged(k, "inconsistent") == 0

    @pytest.mark.parametrize("how", ["irqsave", "irq"])
    async def test_irq_disabled_usage_is_softirq_safe(self, how: str) -> None:
        """A lock taken in a tasklet and in a task with local irqs off is consistent: no report."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()

            def take_in_softirq() -> None:
                spin_lock(lock)
                spin_unlock(lock)

            def take_in_task() -> None:
                if how == "irqsave":
                    flags = spin_lock_irqsave(lock)
                    spin_unlock_irqrestore(lock, flags)
                else:
                    spin_lock_irq(lock)
                    spin_unlock_irq(lock)

            take_in_task()
            tasklet_schedule(make_tasklet(take_in_softirq))
            await settle()
            take_in_task()
            assert logged(k, "inconsistent") == 0

    async def test_timer_callback_is_softirq_too(self) -> None:
        """A lock taken in a timer callback (softirq) and in a task without _bh is reported."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            done: list[bool] = []

            def take() -> None:
                spin_lock(lock)
                spin_unlock(lock)
                done.append(True)

            at_tick(k, 1, take)
            await msleep(8)
            assert done == [True]
            take()
            assert logged(k, IN_TO_SOFTIRQ_ON) == 1

    async def test_hardirq_then_task(self) -> None:
        """A lock taken in an irq handler and then in a task with irqs on is reported (HARDIRQ)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()

            def handler(_irq: int, _dev: Any) -> int:
                spin_lock(lock)
                spin_unlock(lock)
                return IRQ_HANDLED

            assert request_irq(12, handler, 0, "mydev", object()) == 0
            k.raise_irq(12)
            assert logged(k, "inconsistent") == 0
            flags = spin_lock_irqsave(lock)
            spin_unlock_irqrestore(lock, flags)
            assert logged(k, "inconsistent") == 0
            spin_lock(lock)
            spin_unlock(lock)
            assert logged(k, "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage.") == 1


class TestSleepUnderSpinLock:
    async def test_msleep_holding_spinlock_raises(self) -> None:
        """msleep under a spinlock reports a sleep in invalid context and raises KernelBug at call."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            try:
                with pytest.raises(KernelBug):
                    msleep(1)
            finally:
                spin_unlock(lock)
            assert logged(k, "BUG: sleeping function called from invalid context") == 1
            assert logged(k, "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1") == 1
            assert logged(k, "preempt_count: 1, expected: 0") == 1
            assert logged(k, "BUG: scheduling while atomic") == 0

    async def test_msleep_holding_spinlock_report_policy(self, virtual: bool) -> None:
        """With sleep_in_atomic="report" the sleep proceeds and scheduling while atomic is reported."""
        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            lock = DEFINE_SPINLOCK()
            j = k.jiffies
            spin_lock(lock)
            await msleep(4)
            spin_unlock(lock)
            assert k.jiffies == j + 2 if virtual else k.jiffies >= j + 2
            assert logged(k, "BUG: sleeping function called from invalid context") == 1
            assert logged(k, "BUG: scheduling while atomic: init/1/0x00000002") == 1
            assert preempt_count() == 0

    async def test_mutex_lock_holding_spinlock_raises(self) -> None:
        """mutex_lock under a spinlock is a sleep in atomic context: KernelBug, mutex untouched."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            lock = DEFINE_SPINLOCK()
            m = DEFINE_MUTEX()
            spin_lock(lock)
            try:
                with pytest.raises(KernelBug):
                    mutex_lock(m)
            finally:
                spin_unlock(lock)
            assert not mutex_is_locked(m)
            assert logged(k, "BUG: sleeping function called from invalid context") == 1


class TestMutex:
    async def test_lock_unlock(self) -> None:
        """mutex_lock takes a free mutex at once; mutex_unlock releases it."""
        async with Kernel(nr_cpus=2, hz=250):
            m = DEFINE_MUTEX()
            assert isinstance(m, Mutex)
            assert not mutex_is_locked(m)
            await mutex_lock(m)
            assert mutex_is_locked(m)
            assert preempt_count() == 0  # a mutex is not atomic context
            mutex_unlock(m)
            assert not mutex_is_locked(m)

    async def test_mutex_init(self) -> None:
        """mutex_init makes an empty Mutex() usable and unlocked."""
        async with Kernel(nr_cpus=2, hz=250):
            m = Mutex()
            mutex_init(m)
            assert not mutex_is_locked(m)
            assert mutex_trylock(m) == 1
            mutex_unlock(m)

    async def test_trylock(self) -> None:
        """mutex_trylock returns 1 on a free mutex and 0 on a held one (even by the caller)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            m = DEFINE_MUTEX()
            assert mutex_trylock(m) == 1
            assert mutex_trylock(m) == 0
            mutex_unlock(m)
            assert not mutex_is_locked(m)
            assert logged(k, "possible recursive locking") == 0

    async def test_fifo_handoff(self) -> None:
        """Waiters get the mutex in the order they queued, one at a time."""
        async with Kernel(nr_cpus=2, hz=250):
            m = DEFINE_MUTEX()
            order: list[str] = []
            inside: list[int] = []

            async def locker(name: str) -> int:
                await mutex_lock(m)
                inside.append(1)
                order.append(name)
                assert len(inside) == 1  # mutual exclusion
                await msleep(1)
                inside.pop()
                mutex_unlock(m)
                return 0

            await mutex_lock(m)
            tasks = []
            for name in ("A", "B", "C"):
                tasks.append(kthread_run(locker, name, "locker%s", name))
                await settle()  # queue them in a known order
            assert order == []
            mutex_unlock(m)
            for t in tasks:
                assert await kthread_stop(t) == 0
            assert order == ["A", "B", "C"]
            assert not mutex_is_locked(m)

    async def test_unlock_hands_over_before_new_lockers(self) -> None:
        """After unlock the mutex belongs to the first waiter: a trylock in between fails."""
        async with Kernel(nr_cpus=2, hz=250):
            m = DEFINE_MUTEX()
            got: list[str] = []

            async def locker(_: object) -> int:
                await mutex_lock(m)
                got.append("waiter")
                mutex_unlock(m)
                return 0

            await mutex_lock(m)
            task = kthread_run(locker, None, "waiter")
            await settle()
            mutex_unlock(m)
            assert mutex_trylock(m) == 0  # handed to the waiter, not up for grabs
            assert await kthread_stop(task) == 0
            assert got == ["waiter"]
            assert not mutex_is_locked(m)

    async def test_lock_interruptible_signal(self, virtual: bool) -> None:
        """mutex_lock_interruptible returns -EINTR when a signal arrives while it waits."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            m = DEFINE_MUTEX()
            me = current()

            release = DECLARE_COMPLETION()

            async def holder(_: object) -> int:
                await mutex_lock(m)
                await wait_for_completion(release)
                mutex_unlock(m)
                return 0

            task = kthread_run(holder, None, "holder")
            await settle()
            j = k.jiffies
            at_tick(k, 2, lambda: send_sig(SIGINT, me, 0))
            assert await mutex_lock_interruptible(m) == -EINTR
            assert -EINTR == -4
            assert k.jiffies == j + 2 if virtual else k.jiffies >= j + 2
            assert signal_pending(me)
            assert mutex_is_locked(m)
            flush_signals(me)
            at_tick(k, 2, lambda: complete(release))
            assert await mutex_lock_interruptible(m) == 0  # waits for the holder this time
            assert await kthread_stop(task) == 0
            mutex_unlock(m)
            assert not mutex_is_locked(m)

    async def test_lock_interruptible_kthread_needs_allow_signal(self) -> None:
        """A kthread in mutex_lock_interruptible is interrupted only by a signal it allowed."""
        async with Kernel(nr_cpus=2, hz=250):
            m = DEFINE_MUTEX()
            ret: dict[str, int] = {}

            async def waiter(allow: bool) -> int:
                if allow:
                    allow_signal(SIGINT)
                r = await mutex_lock_interruptible(m)
                ret["allowed" if allow else "ignored"] = r
                if r == 0:
                    mutex_unlock(m)
                return 0

            await mutex_lock(m)
            deaf = kthread_run(waiter, False, "deaf")
            hearing = kthread_run(waiter, True, "hearing")
            await settle()
            send_sig(SIGINT, deaf, 0)
            send_sig(SIGINT, hearing, 0)
            await settle()
            assert ret == {"allowed": -EINTR}
            mutex_unlock(m)
            await kthread_stop(deaf)
            await kthread_stop(hearing)
            assert ret == {"allowed": -EINTR, "ignored": 0}
            assert not mutex_is_locked(m)

    async def test_recursive_lock(self) -> None:
        """mutex_lock on a mutex the caller holds reports recursive locking and raises KernelBug."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            m = DEFINE_MUTEX()
            await mutex_lock(m)
            with pytest.raises(KernelBug):
                await mutex_lock(m)
            assert logged(k, "WARNING: possible recursive locking detected") == 1
            assert mutex_is_locked(m)
            mutex_unlock(m)
            assert not mutex_is_locked(m)

    async def test_unlock_by_non_owner_warns(self) -> None:
        """Unlocking a mutex held by another task WARNs (and releases it, as the kernel does)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            m = DEFINE_MUTEX()

            async def owner(_: object) -> int:
                await mutex_lock(m)
                return 0

            task = kthread_run(owner, None, "owner")
            await settle()
            assert mutex_is_locked(m)
            mutex_unlock(m)
            assert not mutex_is_locked(m)
            assert logged(k, "DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current)") == 1
            assert logged(k, "------------[ cut here ]------------") == 1
            await kthread_stop(task)

    async def test_unlock_unlocked_warns(self) -> None:
        """Unlocking a free mutex WARNs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            m = DEFINE_MUTEX()
            mutex_unlock(m)
            assert not mutex_is_locked(m)
            assert logged(k, "DEBUG_LOCKS_WARN_ON(!mutex_is_locked(lock))") == 1

    async def test_cancelled_waiter_leaves_queue(self) -> None:
        """A waiter cancelled by anyio leaves the queue; the mutex goes to the next waiter."""
        async with Kernel(nr_cpus=2, hz=250):
            m = DEFINE_MUTEX()
            scopes: list[anyio.CancelScope] = []
            got: list[str] = []

            async def cancellable(_: object) -> int:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await mutex_lock(m)
                    got.append("cancelled one")
                    mutex_unlock(m)
                return 0

            async def patient(_: object) -> int:
                await mutex_lock(m)
                got.append("patient")
                mutex_unlock(m)
                return 0

            await mutex_lock(m)
            first = kthread_run(cancellable, None, "first")
            await settle()
            second = kthread_run(patient, None, "second")
            await settle()
            scopes[0].cancel()
            await settle()
            assert scopes[0].cancelled_caught
            mutex_unlock(m)
            assert await kthread_stop(second) == 0
            assert await kthread_stop(first) == 0
            assert got == ["patient"]
            assert not mutex_is_locked(m)

    async def test_cancelled_while_handed_over(self) -> None:
        """A waiter cancelled just as the mutex is handed to it passes the mutex on."""
        async with Kernel(nr_cpus=2, hz=250):
            m = DEFINE_MUTEX()
            scopes: list[anyio.CancelScope] = []
            got: list[str] = []

            async def cancellable(_: object) -> int:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await mutex_lock(m)
                    got.append("cancelled one")
                    mutex_unlock(m)
                return 0

            async def patient(_: object) -> int:
                await mutex_lock(m)
                got.append("patient")
                mutex_unlock(m)
                return 0

            await mutex_lock(m)
            first = kthread_run(cancellable, None, "first")
            await settle()
            second = kthread_run(patient, None, "second")
            await settle()
            scopes[0].cancel()  # the cancellation is delivered first...
            mutex_unlock(m)  # ...then the unlock picks the same waiter
            assert await kthread_stop(second) == 0
            assert await kthread_stop(first) == 0
            assert got == ["patient"]
            assert not mutex_is_locked(m)


class TestNoKernel:
    @pytest.mark.parametrize(
        "call",
        [
            lambda: mutex_lock(Mutex()),
            lambda: mutex_lock_interruptible(Mutex()),
            lambda: spin_lock(SpinLock()),
            lambda: mutex_trylock(Mutex()),
        ],
    )
    async def test_without_kernel(self, call: Callable[[], object]) -> None:
        """Lock APIs called with no kernel running raise RuntimeError at call time."""
        with pytest.raises(RuntimeError):
            call()
