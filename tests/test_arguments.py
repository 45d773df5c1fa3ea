"""The argument checks of `kdefer_async._check`, through the calls users reported.

Each call below used to fail deep inside the library (an ``AttributeError`` on ``None``), or
was accepted silently, or left the kernel changed after raising. Now each is a ``TypeError``
or ``ValueError`` at the call, naming the function, the parameter, what it expects and what it
got, and nothing is changed: no interrupts left disabled, nothing logged, no preempt count
left raised. The locks (whose own test module predates the checks) are covered here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

import kdefer_async as kd
from kdefer_async import Kernel, KernelBug

pytestmark = pytest.mark.anyio


def exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _state(k: Kernel) -> tuple[object, ...]:
    task = kd.current()
    return (task.preempt_count, task.irqs_off, task.state, len(k.dmesg()), len(k.oopses))


#: (the call, the exception type, its exact message)
REPORTED: list[tuple[str, Callable[[], Any], type[Exception], str]] = [
    (
        "spin_lock(None)",
        lambda: kd.spin_lock(None),  # type: ignore[arg-type]
        TypeError,
        "spin_lock() expects a SpinLock for 'lock', got NoneType",
    ),
    (
        "tasklet_schedule(None)",
        lambda: kd.tasklet_schedule(None),  # type: ignore[arg-type]
        TypeError,
        "tasklet_schedule() expects a Tasklet for 't', got NoneType",
    ),
    (
        "wait_event(None, cond)",
        lambda: kd.wait_event(None, lambda: True),  # type: ignore[arg-type]
        TypeError,
        "wait_event() expects a WaitQueueHead for 'wq', got NoneType",
    ),
    (
        "complete(None)",
        lambda: kd.complete(None),  # type: ignore[arg-type]
        TypeError,
        "complete() expects a Completion for 'c', got NoneType",
    ),
    (
        "mutex_lock(None)",
        lambda: kd.mutex_lock(None),  # type: ignore[arg-type]
        TypeError,
        "mutex_lock() expects a Mutex for 'lock', got NoneType",
    ),
    (
        "work_pending(None)",
        lambda: kd.work_pending(None),  # type: ignore[arg-type]
        TypeError,
        "work_pending() expects a Work for 'work', got NoneType",
    ),
    (
        "kthread_bind(None, None)",
        lambda: kd.kthread_bind(None, None),  # type: ignore[arg-type]
        TypeError,
        "kthread_bind() expects a TaskStruct for 'task', got NoneType",
    ),
    (
        "signal_pending(None)",
        lambda: kd.signal_pending(None),  # type: ignore[arg-type]
        TypeError,
        "signal_pending() expects a task (from current() or kthread_run) for 'task', got NoneType",
    ),
    (
        "printk([...])",
        lambda: kd.printk(["hello"]),  # type: ignore[arg-type]
        TypeError,
        "printk() expects a str for 'fmt', got list",
    ),
    (
        "call_rcu(head, fn) with fn taking no argument",
        lambda: kd.call_rcu(object(), lambda: None),  # type: ignore[arg-type]
        TypeError,
        "call_rcu() expects a function callable as func(head) for 'func', but <lambda>() "
        "cannot be called with 1 positional argument",
    ),
    (
        "DECLARE_WORK(None)",
        lambda: kd.DECLARE_WORK(None),  # type: ignore[arg-type]
        TypeError,
        "DECLARE_WORK() expects a function callable as func(work) for 'func', got NoneType",
    ),
    (
        "DEFINE_TIMER(None)",
        lambda: kd.DEFINE_TIMER(None),  # type: ignore[arg-type]
        TypeError,
        "DEFINE_TIMER() expects a function callable as callback(timer) for 'callback', "
        "got NoneType",
    ),
    (
        "DECLARE_TASKLET(None)",
        lambda: kd.DECLARE_TASKLET(None),  # type: ignore[arg-type]
        TypeError,
        "DECLARE_TASKLET() expects a function callable as func(t) for 'func', got NoneType",
    ),
    (
        "alloc_workqueue(None, 0, 0)",
        lambda: kd.alloc_workqueue(None, 0, 0),  # type: ignore[arg-type]
        TypeError,
        "alloc_workqueue() expects a str for 'fmt', got NoneType",
    ),
    (
        "create_workqueue(None)",
        lambda: kd.create_workqueue(None),  # type: ignore[arg-type]
        TypeError,
        "create_workqueue() expects a str for 'name', got NoneType",
    ),
    (
        "MODULE_LICENSE(None)",
        lambda: kd.MODULE_LICENSE(None),  # type: ignore[arg-type]
        TypeError,
        "MODULE_LICENSE() expects a str for 's', got NoneType",
    ),
    (
        "set_current_state(-1)",
        lambda: kd.set_current_state(-1),
        ValueError,
        "set_current_state() expects TASK_RUNNING, TASK_INTERRUPTIBLE or "
        "TASK_UNINTERRUPTIBLE for 'state', got -1",
    ),
    (
        'spin_lock_irq("x")',
        lambda: kd.spin_lock_irq("x"),  # type: ignore[arg-type]
        TypeError,
        "spin_lock_irq() expects a SpinLock for 'lock', got str",
    ),
]


class TestReportedCalls:
    @pytest.mark.parametrize(
        ("call", "exc_type", "message"),
        [pytest.param(c, e, m, id=name) for name, c, e, m in REPORTED],
    )
    async def test_rejected_at_the_call_and_nothing_changes(
        self, call: Callable[[], Any], exc_type: type[Exception], message: str
    ) -> None:
        """Each reported call raises at the call with the convention's message (an `async def`
        API too: before any coroutine exists), and leaves the kernel as it was."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = _state(k)
            with pytest.raises(exc_type, match=exactly(message)):
                call()
            assert _state(k) == before

    async def test_spin_lock_irq_x_leaves_interrupts_enabled(self) -> None:
        """After the rejected spin_lock_irq("x") interrupts are on: the next msleep is not
        reported as a sleep in atomic context."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(TypeError):
                kd.spin_lock_irq("x")  # type: ignore[arg-type]
            assert not kd.irqs_disabled()
            await kd.msleep(1)
        assert not any("sleeping function called from invalid context" in x for x in k.dmesg())

    async def test_spin_lock_irq_self_deadlock_leaves_interrupts_as_they_were(self) -> None:
        """A spin_lock_irq that raises for another reason (lockdep's self-deadlock) also
        restores the interrupt state it found."""
        async with Kernel(nr_cpus=1, hz=250):
            lock = kd.DEFINE_SPINLOCK()
            kd.spin_lock(lock)
            with pytest.raises(KernelBug):
                kd.spin_lock_irq(lock)
            assert not kd.irqs_disabled()
            assert kd.preempt_count() == 1  # only the first spin_lock's
            kd.spin_unlock(lock)


SPIN_FUNCS = [
    "spin_lock",
    "spin_lock_bh",
    "spin_lock_irq",
    "spin_lock_irqsave",
    "spin_trylock",
    "spin_unlock",
    "spin_unlock_bh",
    "spin_unlock_irq",
    "spin_is_locked",
    "spin_lock_init",
]
MUTEX_FUNCS = [
    "mutex_init",
    "mutex_trylock",
    "mutex_unlock",
    "mutex_is_locked",
    "mutex_lock",  # sleeping: rejected at the call, before any coroutine exists
    "mutex_lock_interruptible",
]
#: (function, the lock type it expects), for every lock function
LOCK_FUNCS = [(name, "SpinLock") for name in SPIN_FUNCS] + [(name, "Mutex") for name in MUTEX_FUNCS]


#: what is not a lock, or the other kind of lock
LOCK_JUNK: list[tuple[str, object]] = [
    ("None", None),
    ("str", "x"),
    ("int", 0),
    ("Mutex", kd.Mutex()),
    ("SpinLock", kd.SpinLock()),
]


class TestLocks:
    @pytest.mark.parametrize(
        ("name", "lock_type", "junk"),
        [
            pytest.param(name, lock_type, junk, id=f"{name}-{junk_id}")
            for name, lock_type in LOCK_FUNCS
            for junk_id, junk in LOCK_JUNK
            if junk_id != lock_type
        ],
    )
    async def test_lock_functions(self, name: str, lock_type: str, junk: object) -> None:
        """Every spinlock and mutex function rejects what is not its kind of lock, before it
        changes anything."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = _state(k)
            with pytest.raises(
                TypeError,
                match=exactly(
                    f"{name}() expects a {lock_type} for 'lock', got {type(junk).__name__}"
                ),
            ):
                getattr(kd, name)(junk)
            assert _state(k) == before

    @pytest.mark.parametrize("cls", [kd.SpinLock, kd.Mutex])
    def test_lock_names_are_strings(self, cls: type) -> None:
        """A lock's name is a str or None."""
        with pytest.raises(
            TypeError,
            match=exactly(f"{cls.__name__}() expects a str or None for 'name', got int"),
        ):
            cls(5)

    @pytest.mark.parametrize(
        ("flags", "exc_type", "got"),
        [("x", TypeError, "got str"), (True, TypeError, "got bool"), (-1, ValueError, "got -1")],
    )
    async def test_irq_restore_flags(
        self, flags: object, exc_type: type[Exception], got: str
    ) -> None:
        """local_irq_restore and spin_unlock_irqrestore take only what local_irq_save gave:
        a bad value leaves interrupts off, as they were, and the lock held."""
        async with Kernel(nr_cpus=1, hz=250):
            lock = kd.DEFINE_SPINLOCK()
            saved = kd.spin_lock_irqsave(lock)
            with pytest.raises(exc_type, match=re.escape(got) + "$"):
                kd.spin_unlock_irqrestore(lock, flags)  # type: ignore[arg-type]
            with pytest.raises(exc_type, match=re.escape(got) + "$"):
                kd.local_irq_restore(flags)  # type: ignore[arg-type]
            assert kd.irqs_disabled()
            assert kd.spin_is_locked(lock)
            kd.spin_unlock_irqrestore(lock, saved)
            assert not kd.irqs_disabled()
