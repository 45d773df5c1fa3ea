"""Threaded interrupts: request_threaded_irq, the irq threads, ONESHOT, disable/enable, forced
threading (kernel-semantics-2 §1, behaviours TI-01 to TI-21, and BW-11).

Every TI behaviour is modelled and checked here. What a single event loop cannot show is left
out on purpose (§1.10): a woken irq thread preempting the interrupted task (it runs at that
task's next scheduling point: the tests wait for it with events or ``settle()``, never on
which comes first), a primary handler on one CPU overlapping the thread on another, and the
electrical difference between level and edge lines (a raise is one event). Not modelled:
chips that are ``IRQCHIP_ONESHOT_SAFE`` (the model's chip is not), a failing trigger setup,
per-CPU-devid lines, suspend (``IRQF_NO_SUSPEND``, ``IRQF_COND_SUSPEND`` are only checked),
and the ``irqpoll`` polling of other lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from kdefer_async import (
    EBUSY,
    EINVAL,
    IRQ_HANDLED,
    IRQ_NONE,
    IRQ_NOTCONNECTED,
    IRQ_WAKE_THREAD,
    IRQF_NO_AUTOEN,
    IRQF_NO_THREAD,
    IRQF_ONESHOT,
    IRQF_SHARED,
    IRQF_TRIGGER_RISING,
    SCHED_FIFO,
    Kernel,
    Tasklet,
    TaskStruct,
    TimerList,
    current,
    disable_irq,
    disable_irq_nosync,
    enable_irq,
    free_irq,
    in_hardirq,
    in_interrupt,
    in_task,
    irq_wake_thread,
    irqs_disabled,
    local_irq_enable,
    mod_timer,
    msleep,
    preempt_count,
    preemptible,
    raise_softirq,
    request_irq,
    request_threaded_irq,
    smp_processor_id,
    synchronize_irq,
    tasklet_schedule,
)
from kdefer_async._consts import ENOTCONN
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

NET_RX = 3


def log_lines(k: Kernel) -> list[str]:
    """``k.dmesg()`` without the timestamps, one record's lines each on their own."""
    out: list[str] = []
    for line in k.dmesg():
        out.extend(line.split("] ", 1)[1].split("\n"))
    return out


def thread_named(k: Kernel, comm: str) -> TaskStruct | None:
    """The live kthread *comm* of *k*, if any."""
    found = [t for t in k._tasks.values() if t.comm == comm]
    assert len(found) <= 1
    return found[0] if found else None


def interrupt_counts(k: Kernel, irq: int) -> list[int]:
    """The per-CPU counts of line *irq* in /proc/interrupts."""
    for line in k.proc_interrupts().splitlines()[1:]:
        label, _, rest = line.partition(":")
        if label.strip() == str(irq):
            return [int(c) for c in rest.split()[: k.nr_cpus]]
    raise AssertionError(f"irq {irq} is not listed in /proc/interrupts")


class Recorder:
    """A primary handler and a thread function that record what they saw."""

    def __init__(self, primary_ret: int = IRQ_WAKE_THREAD, thread_ret: int = IRQ_HANDLED) -> None:
        self.events: list[tuple[str, str, int]] = []  # (what, comm, cpu)
        self.primary_ret = primary_ret
        self.thread_ret = thread_ret
        self.runs = 0
        self.ran = anyio.Event()
        self.started = anyio.Event()  # set when a run starts
        self.sleep_ms = 0

    def primary(self, irq: int, dev: Any) -> int:
        self.events.append(("primary", current().comm, smp_processor_id()))
        return self.primary_ret

    async def thread_fn(self, irq: int, dev: Any) -> int:
        self.events.append(("thread", current().comm, smp_processor_id()))
        self.started.set()
        if self.sleep_ms:
            await msleep(self.sleep_ms)
        self.runs += 1
        self.events.append(("thread done", current().comm, smp_processor_id()))
        self.ran.set()
        return self.thread_ret

    async def wait_runs(self, n: int) -> None:
        """Wait until the thread function has finished *n* runs."""
        with anyio.fail_after(10):
            while self.runs < n:
                self.ran = anyio.Event()
                if self.runs >= n:
                    break
                await self.ran.wait()

    @property
    def names(self) -> list[str]:
        return [e[0] for e in self.events]


# ---------------------------------------------------------------------------------------------
# requesting
# ---------------------------------------------------------------------------------------------


class TestRequest:
    async def test_thread_function_runs_in_its_kthread(self) -> None:
        """TI-01. irq/10-dev exists (SCHED_FIFO 50); one raise runs fn once there, in process
        context (in_task, not in_interrupt, preemptible), where msleep reports nothing."""
        seen: list[tuple[object, ...]] = []
        done = anyio.Event()
        d = object()

        async def fn(irq: int, dev: Any) -> int:
            seen.append((irq, dev, current().comm, in_task(), in_interrupt(), preemptible()))
            await msleep(1)
            done.set()
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, fn, IRQF_ONESHOT, "dev", d) == 0
            t = thread_named(k, "irq/10-dev")
            assert t is not None
            assert (t.policy, t.rt_priority, t.is_kthread) == (SCHED_FIFO, 50, True)
            k.raise_irq(10)
            with anyio.fail_after(5):
                await done.wait()
            await settle()
        assert seen == [(10, d, "irq/10-dev", True, False, True)]
        assert not any("BUG" in line for line in log_lines(k))

    async def test_null_handler_without_oneshot(self) -> None:
        """TI-02. handler=None without IRQF_ONESHOT: -EINVAL and the genirq message; no thread
        exists; a raise calls nothing."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, rec.thread_fn, 0, "dev", 1) == -EINVAL
            assert thread_named(k, "irq/10-dev") is None
            k.raise_irq(10)
            await settle()
        assert rec.events == []
        assert (
            "genirq: Threaded irq requested with handler=NULL and !ONESHOT for dev (irq 10)"
            in log_lines(k)
        )

    async def test_invalid_requests(self) -> None:
        """TI-03. No handler and no thread_fn: -EINVAL, nothing logged; IRQF_SHARED with no dev
        cookie: -EINVAL; IRQF_SHARED with IRQF_NO_AUTOEN: -EINVAL; IRQ_NOTCONNECTED: -ENOTCONN."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            before = len(k.dmesg())
            assert request_threaded_irq(10, None, None, 0, "dev", 1) == -EINVAL
            assert len(k.dmesg()) == before
            assert (
                request_threaded_irq(10, rec.primary, rec.thread_fn, IRQF_SHARED, "dev", None)
                == -EINVAL
            )
            flags = IRQF_SHARED | IRQF_NO_AUTOEN
            assert request_threaded_irq(10, rec.primary, None, flags, "dev", 1) == -EINVAL
            assert request_threaded_irq(IRQ_NOTCONNECTED, rec.primary, None, 0, "x", 1) == (
                -ENOTCONN
            )
            assert k.irq_actions == {}
            assert thread_named(k, "irq/10-dev") is None

    async def test_flags_mismatch_and_shared_oneshot(self) -> None:
        """TI-04. A second ONESHOT request without IRQF_SHARED: -EBUSY and the Flags mismatch
        line; two ONESHOT|SHARED requests share the line, each with its thread."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, rec.thread_fn, IRQF_ONESHOT, "a", 1) == 0
            assert request_threaded_irq(10, None, rec.thread_fn, IRQF_ONESHOT, "b", 2) == -EBUSY
            assert thread_named(k, "irq/10-b") is None
            flags = IRQF_ONESHOT | IRQF_SHARED
            assert request_threaded_irq(11, None, rec.thread_fn, flags, "a", 1) == 0
            assert request_threaded_irq(11, None, rec.thread_fn, flags, "b", 2) == 0
            assert thread_named(k, "irq/11-a") is not None
            assert thread_named(k, "irq/11-b") is not None
            # the line's actions must agree on ONESHOT
            assert request_threaded_irq(11, rec.primary, None, IRQF_SHARED, "c", 3) == -EBUSY
            # and on the trigger type
            flags |= IRQF_TRIGGER_RISING
            assert request_threaded_irq(11, None, rec.thread_fn, flags, "d", 4) == -EBUSY
            k.raise_irq(11)
            await rec.wait_runs(2)
            await settle()
        lines = log_lines(k)
        assert "genirq: Flags mismatch irq 10. 00002000 (b) vs. 00002000 (a)" in lines
        assert "genirq: Flags mismatch irq 11. 00000080 (c) vs. 00002080 (a)" in lines
        assert "genirq: Flags mismatch irq 11. 00002081 (d) vs. 00002080 (a)" in lines
        assert sorted(e[1] for e in rec.events if e[0] == "thread") == ["irq/11-a", "irq/11-b"]

    async def test_comm_is_cut_to_15_characters(self) -> None:
        """The thread's comm is ``irq/<irq>-<name>`` cut to TASK_COMM_LEN - 1 characters."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            name = "a-very-long-device-name"
            assert request_threaded_irq(100, None, rec.thread_fn, IRQF_ONESHOT, name, 1) == 0
            assert thread_named(k, "irq/100-a-very-") is not None

    async def test_plain_thread_function(self) -> None:
        """A thread function may be a plain function, like a work function."""
        seen: list[str] = []

        def fn(irq: int, dev: Any) -> int:
            seen.append(current().comm)
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(12, None, fn, IRQF_ONESHOT, "plain", 1) == 0
            k.raise_irq(12)
            await settle()
        assert seen == ["irq/12-plain"]

    async def test_no_autoen(self) -> None:
        """IRQF_NO_AUTOEN: the line starts disabled; its first interrupt waits for enable_irq."""
        rec = Recorder(primary_ret=IRQ_HANDLED)
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(10, rec.primary, IRQF_NO_AUTOEN, "dev", 1) == 0
            k.raise_irq(10)
            assert rec.events == []
            assert interrupt_counts(k, 10) == [0, 0]
            enable_irq(10)
            assert rec.names == ["primary"]
            assert interrupt_counts(k, 10) == [1, 0]


# ---------------------------------------------------------------------------------------------
# the primary handler and the thread
# ---------------------------------------------------------------------------------------------


class TestWakeAndRun:
    async def test_order_primary_softirq_thread(self) -> None:
        """TI-05. The primary runs in hardirq, the softirq it raised at that irq exit, then the
        thread; the thread never starts before the primary returns. A primary returning
        IRQ_HANDLED or IRQ_NONE wakes nothing."""
        order: list[str] = []
        results = [IRQ_WAKE_THREAD, IRQ_HANDLED, IRQ_NONE]

        def primary(irq: int, dev: Any) -> int:
            order.append(f"primary hardirq={in_hardirq()}")
            raise_softirq(NET_RX)
            order.append("primary returns")
            return results.pop(0)

        def softirq() -> None:
            order.append(f"softirq in {current().comm}")

        async def fn(irq: int, dev: Any) -> int:
            order.append(f"thread in {current().comm}")
            return IRQ_HANDLED

        from kdefer_async import open_softirq

        async with Kernel(nr_cpus=2, hz=250) as k:
            open_softirq(NET_RX, softirq)
            assert request_threaded_irq(10, primary, fn, 0, "dev", 1) == 0
            await settle()
            k.raise_irq(10)
            order.append("raise_irq returned")
            await settle()
            k.raise_irq(10)
            k.raise_irq(10)
            await settle()
        assert order[:5] == [
            "primary hardirq=True",
            "primary returns",
            "softirq in init",
            "raise_irq returned",
            "thread in irq/10-dev",
        ]
        assert order.count("thread in irq/10-dev") == 1
        assert order.count("primary returns") == 3

    async def test_wakes_before_the_thread_runs_coalesce(self) -> None:
        """TI-06. A non-ONESHOT line: three interrupts before the thread is scheduled run the
        primary three times and the thread once."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, rec.primary, rec.thread_fn, 0, "dev", 1) == 0
            await settle()
            for _ in range(3):
                k.raise_irq(10)
            await rec.wait_runs(1)
            await settle()
            assert interrupt_counts(k, 10) == [3, 0]
        assert rec.names == ["primary"] * 3 + ["thread", "thread done"]

    async def test_wake_while_running_runs_once_more(self) -> None:
        """TI-07. Two irq_wake_thread() calls while fn sleeps: exactly one more run after it
        returns; an unknown dev cookie wakes nothing."""
        rec = Recorder()
        rec.sleep_ms = 10
        d = object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, rec.thread_fn, IRQF_ONESHOT, "dev", d) == 0
            k.raise_irq(10)
            with anyio.fail_after(5):
                await rec.started.wait()
            assert rec.runs == 0  # asleep in msleep
            irq_wake_thread(10, d)
            irq_wake_thread(10, d)
            irq_wake_thread(10, object())
            await rec.wait_runs(2)
            await msleep(50)
            await settle()
        assert rec.runs == 2

    async def test_oneshot_holds_the_second_interrupt(self) -> None:
        """TI-08. ONESHOT, handler=None: a second interrupt before fn runs is held (the line is
        masked) and delivered when fn returns: fn runs twice, not three times."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, rec.thread_fn, IRQF_ONESHOT, "dev", 1) == 0
            await settle()
            k.raise_irq(10)
            k.raise_irq(10)
            assert interrupt_counts(k, 10) == [1, 0]  # the held one is not taken yet
            k.raise_irq(10)  # still masked: one held event at most
            await rec.wait_runs(2)
            await msleep(20)
            await settle()
            assert interrupt_counts(k, 10) == [2, 0]
        assert rec.runs == 2

    async def test_wake_thread_without_thread_function(self) -> None:
        """TI-09. A hardirq-only handler returning IRQ_WAKE_THREAD: the kernel's warning once,
        however many interrupts follow."""
        rec = Recorder(primary_ret=IRQ_WAKE_THREAD)
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(10, rec.primary, 0, "dev", 1) == 0
            for _ in range(5):
                k.raise_irq(10)
        message = "IRQ 10 device dev returned IRQ_WAKE_THREAD but no thread function available."
        assert log_lines(k).count(message) == 1
        assert rec.names == ["primary"] * 5

    async def test_thread_runs_on_the_cpu_that_took_the_interrupt(self) -> None:
        """The thread runs where the interrupt was taken."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, rec.primary, rec.thread_fn, 0, "dev", 1) == 0
            k.raise_irq(10, cpu=1)
            await rec.wait_runs(1)
            k.raise_irq(10, cpu=0)
            await rec.wait_runs(2)
            assert interrupt_counts(k, 10) == [1, 1]
        assert [(e[0], e[2]) for e in rec.events if e[0] != "thread done"] == [
            ("primary", 1),
            ("thread", 1),
            ("primary", 0),
            ("thread", 0),
        ]

    async def test_shutdown_runs_a_pending_thread(self) -> None:
        """Leaving the kernel normally lets a woken thread run; nothing is reported."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, rec.thread_fn, IRQF_ONESHOT, "dev", 1) == 0
            k.raise_irq(10)
        assert rec.runs == 1
        assert k.shutdown_report is not None
        assert len(k.shutdown_report) == 0


# ---------------------------------------------------------------------------------------------
# disable / enable / synchronize
# ---------------------------------------------------------------------------------------------


class TestDisableEnable:
    async def test_disabled_line_resends_once(self) -> None:
        """TI-10. Disabled twice, three interrupts: nothing on the first enable; the second
        runs the primary exactly once (the resend), then the thread."""
        rec = Recorder()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, rec.primary, rec.thread_fn, 0, "dev", 1) == 0
            disable_irq_nosync(10)
            disable_irq_nosync(10)
            for _ in range(3):
                k.raise_irq(10)
            enable_irq(10)
            await settle()
            assert rec.events == []
            assert interrupt_counts(k, 10) == [0, 0]
            enable_irq(10)
            assert rec.names == ["primary"]
            await rec.wait_runs(1)
            await settle()
        assert rec.names == ["primary", "thread", "thread done"]

    async def test_unbalanced_enable(self) -> None:
        """TI-11. enable_irq on an enabled line WARNs and changes nothing; one
        disable_irq_nosync then disables it."""
        rec = Recorder(primary_ret=IRQ_HANDLED)
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(10, rec.primary, 0, "dev", 1) == 0
            enable_irq(10)
            k.raise_irq(10)
            assert rec.names == ["primary"]
            disable_irq_nosync(10)
            k.raise_irq(10)
            assert rec.names == ["primary"]
        lines = log_lines(k)
        assert lines.count("Unbalanced enable for IRQ 10") == 1
        assert lines.count("------------[ cut here ]------------") == 1

    async def test_disable_irq_waits_for_the_woken_thread(self, virtual: bool) -> None:
        """TI-12. disable_irq right after an interrupt (thread woken, not run): fn still runs,
        and disable_irq returns only once fn has returned, >= 10 ms later; then raises call
        nothing."""
        rec = Recorder()
        rec.sleep_ms = 10
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, rec.primary, rec.thread_fn, 0, "dev", 1) == 0
            await settle()
            k.raise_irq(10)
            t0 = k.get_ktime()
            await disable_irq(10)
            elapsed = k.get_ktime() - t0
            assert rec.runs == 1
            assert elapsed >= 10_000_000
            if virtual:
                assert elapsed <= 16_000_000  # msleep(10) is 3 jiffies at HZ=250, plus one
            k.raise_irq(10)
            await settle()
            assert rec.names == ["primary", "thread", "thread done"]

    async def test_disable_irq_in_own_thread_never_returns(self, virtual: bool) -> None:
        """TI-13. disable_irq from the line's own thread function waits for itself: the
        hung-task report after 120 s; disable_irq_nosync there returns at once."""
        if not virtual:
            pytest.skip("needs two minutes of virtual time")
        returned: list[str] = []

        async def stuck(irq: int, dev: Any) -> int:
            disable_irq_nosync(irq)
            returned.append("nosync")
            enable_irq(irq)
            await disable_irq(irq)
            returned.append("disable_irq")  # pragma: no cover - never reached
            return IRQ_HANDLED  # pragma: no cover

        async with Kernel(nr_cpus=2, hz=250, shutdown_timeout=1) as k:
            assert request_threaded_irq(10, None, stuck, IRQF_ONESHOT, "dev", 1) == 0
            k.raise_irq(10)
            await settle()
            t = thread_named(k, "irq/10-dev")
            assert t is not None
            with anyio.move_on_after(125):
                await anyio.sleep_forever()
            assert returned == ["nosync"]
            message = f"INFO: task irq/10-dev:{t.pid} blocked for more than 120 seconds."
            assert message in log_lines(k)

    async def test_synchronize_irq(self, virtual: bool) -> None:
        """TI-14. With a wake pending, synchronize_irq returns after fn ran once; with nothing
        pending or running it returns without sleeping."""
        rec = Recorder()
        rec.sleep_ms = 5
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, rec.thread_fn, IRQF_ONESHOT, "dev", 1) == 0
            await settle()
            k.raise_irq(10)
            await synchronize_irq(10)
            assert rec.runs == 1
            t0 = k.get_ktime()
            await synchronize_irq(10)
            await synchronize_irq(200)  # a line nobody requested
            if virtual:
                assert k.get_ktime() == t0
            assert current().state == 0


# ---------------------------------------------------------------------------------------------
# free_irq
# ---------------------------------------------------------------------------------------------


class TestFree:
    async def test_pending_wake_gets_its_last_run(self) -> None:
        """TI-15. free_irq with a wake pending returns "dev" at once; fn runs once, then the
        thread exits; later raises call nothing; a second free_irq WARNs and returns None."""
        rec = Recorder()
        d = object()
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, rec.primary, rec.thread_fn, 0, "dev", d) == 0
            await settle()
            t = thread_named(k, "irq/10-dev")
            assert t is not None
            k.raise_irq(10)
            assert free_irq(10, d) == "dev"
            assert rec.runs == 0  # the thread has not been scheduled yet
            await synchronize_irq(10)  # waits for that last run
            assert rec.runs == 1
            await settle()
            assert t.pid not in k._tasks
            k.raise_irq(10)
            await settle()
            assert free_irq(10, d) is None
        assert rec.names == ["primary", "thread", "thread done"]
        assert log_lines(k).count("Trying to free already-free IRQ 10") == 1

    async def test_free_irq_from_a_timer(self) -> None:
        """TI-16. free_irq in a timer callback (softirq context): the WARN, then the
        atomic-sleep report; the handler is still removed (the kernel only reports)."""
        rec = Recorder(primary_ret=IRQ_HANDLED)
        names: list[str | None] = []
        fired = anyio.Event()

        def cb(t: TimerList) -> None:
            names.append(free_irq(10, 1))
            fired.set()

        async with Kernel(nr_cpus=2, hz=250, sleep_in_atomic="report") as k:
            assert request_irq(10, rec.primary, 0, "dev", 1) == 0
            timer = TimerList(cb)
            mod_timer(timer, k.jiffies + 1)
            with anyio.fail_after(5):
                await fired.wait()
        lines = log_lines(k)
        warn_at = lines.index("Trying to free IRQ 10 from IRQ context!")
        bug_at = next(i for i, x in enumerate(lines) if "BUG: sleeping function called" in x)
        assert warn_at < bug_at
        assert names == ["dev"]

    async def test_freed_thread_finishes_its_running_function(self) -> None:
        """A thread function running when free_irq is called finishes; the thread exits then."""
        rec = Recorder()
        rec.sleep_ms = 10
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, rec.thread_fn, IRQF_ONESHOT, "dev", 1) == 0
            k.raise_irq(10)
            with anyio.fail_after(5):
                await rec.started.wait()
            t = thread_named(k, "irq/10-dev")
            assert t is not None
            assert free_irq(10, 1) == "dev"
            assert t.pid in k._tasks
            await synchronize_irq(10)
            await settle()
            assert t.pid not in k._tasks
        assert rec.runs == 1


# ---------------------------------------------------------------------------------------------
# forced threading
# ---------------------------------------------------------------------------------------------


class TestForcedThreading:
    async def test_primary_runs_in_its_thread(self) -> None:
        """TI-17. threadirqs: the handler runs in irq/10-dev, not in hardirq, in_interrupt,
        irqs disabled, preempt_count 0x200; a tasklet it schedules runs in that task right
        after it returns."""
        seen: list[tuple[object, ...]] = []

        def tasklet_fn(t: Tasklet) -> None:
            seen.append(("tasklet", current().comm))

        tasklet = Tasklet(tasklet_fn)

        def h(irq: int, dev: Any) -> int:
            seen.append(
                (
                    "h",
                    current().comm,
                    in_hardirq(),
                    in_interrupt(),
                    irqs_disabled(),
                    preempt_count(),
                )
            )
            tasklet_schedule(tasklet)
            seen.append(("h returns",))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250, threadirqs=True) as k:
            assert request_irq(10, h, 0, "dev", 1) == 0
            t = thread_named(k, "irq/10-dev")
            assert t is not None
            assert t.rt_priority == 50
            await settle()
            k.raise_irq(10)
            assert seen == []  # only the default primary ran in hardirq
            await settle()
        assert seen == [
            ("h", "irq/10-dev", False, True, True, 0x200),
            ("h returns",),
            ("tasklet", "irq/10-dev"),
        ]

    async def test_what_is_and_is_not_forced(self) -> None:
        """TI-18. threadirqs: an IRQF_NO_THREAD handler runs in hardirq with no thread; a
        handler with a thread_fn gets irq/10-dev (the handler) and irq/10-s-dev (thread_fn,
        priority 49) woken when the handler returns IRQ_WAKE_THREAD; a ONESHOT request with no
        handler keeps its one thread, unchanged."""
        seen: list[tuple[str, str, int]] = []

        def hard(irq: int, dev: Any) -> int:
            seen.append(("hard", current().comm, preempt_count()))
            return IRQ_HANDLED

        def h(irq: int, dev: Any) -> int:
            seen.append(("h", current().comm, preempt_count()))
            return IRQ_WAKE_THREAD

        async def fn(irq: int, dev: Any) -> int:
            seen.append((f"fn{irq}", current().comm, preempt_count()))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250, threadirqs=True) as k:
            assert request_irq(9, hard, IRQF_NO_THREAD, "hard", 1) == 0
            assert thread_named(k, "irq/9-hard") is None
            assert request_threaded_irq(10, h, fn, 0, "dev", 1) == 0
            primary, secondary = thread_named(k, "irq/10-dev"), thread_named(k, "irq/10-s-dev")
            assert primary is not None
            assert secondary is not None
            assert (primary.rt_priority, secondary.rt_priority) == (50, 49)
            assert request_threaded_irq(11, None, fn, IRQF_ONESHOT, "one", 1) == 0
            assert thread_named(k, "irq/11-one") is not None
            assert thread_named(k, "irq/11-s-one") is None
            await settle()
            k.raise_irq(9)
            assert seen == [("hard", "init", 0x10000)]
            k.raise_irq(10)
            await settle()
            k.raise_irq(11)
            await settle()
        assert seen[1:] == [
            ("h", "irq/10-dev", 0x200),
            ("fn10", "irq/10-s-dev", 0),
            ("fn11", "irq/11-one", 0),
        ]


# ---------------------------------------------------------------------------------------------
# spurious interrupts, bogus results, oopses, handlers enabling interrupts
# ---------------------------------------------------------------------------------------------


class TestAccounting:
    @pytest.mark.slow
    @pytest.mark.parametrize("every", [0, 500])
    async def test_nobody_cared(self, backend_name: str, every: int) -> None:
        """TI-19. IRQ_NONE 100 000 times: at the 100 000th the nobody-cared report, the
        handler line, "Disabling IRQ #10"; the next raise calls nothing. With IRQ_HANDLED every
        500th call: no report."""
        if backend_name != "asyncio":
            pytest.skip("backend-independent bookkeeping; run once (100000 interrupts)")
        calls = [0]

        def h(irq: int, dev: Any) -> int:
            calls[0] += 1
            return IRQ_HANDLED if every and calls[0] % every == 0 else IRQ_NONE

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(10, h, 0, "dev", 1) == 0
            for _ in range(100_001):
                k.raise_irq(10)
        lines = log_lines(k)
        message = 'irq 10: nobody cared (try booting with the "irqpoll" option)'
        if every:
            assert calls[0] == 100_001
            assert message not in lines
            return
        assert calls[0] == 100_000
        at = lines.index(message)
        assert lines[at:].index("handlers:") > 0
        assert "[<00000000>] h" in lines[at:]
        assert "Disabling IRQ #10" in lines[at:]

    async def test_woken_thread_decides_at_the_next_interrupt(self) -> None:
        """An interrupt that only woke the thread is judged at the next one: unhandled unless
        the thread function returned IRQ_HANDLED in between."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            none = Recorder(thread_ret=IRQ_NONE)
            assert request_threaded_irq(10, None, none.thread_fn, IRQF_ONESHOT, "n", 1) == 0
            handled = Recorder(thread_ret=IRQ_HANDLED)
            assert request_threaded_irq(11, None, handled.thread_fn, IRQF_ONESHOT, "h", 1) == 0
            for rec, irq in ((none, 10), (handled, 11)):
                for n in (1, 2, 3):
                    k.raise_irq(irq)
                    await rec.wait_runs(n)
            await settle()
            assert k.irqs_unhandled.get(10, 0) == 2  # the 2nd and 3rd judged the 1st and 2nd
            assert k.irqs_unhandled.get(11, 0) == 0

    async def test_bogus_return_values(self) -> None:
        """TI-20. A handler returning 5, then 0x12: "irq event 10: bogus return value 5", then
        "... 12", each with the handlers; at most 100 such reports."""
        results = [5, 0x12] + [7] * 120

        def h(irq: int, dev: Any) -> int:
            return results.pop(0)

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(10, h, 0, "dev", 1) == 0
            for _ in range(122):
                k.raise_irq(10)
            assert k.irqs_unhandled.get(10, 0) == 0  # not counted as unhandled
        lines = log_lines(k)
        assert lines[lines.index("irq event 10: bogus return value 5") :].index("handlers:") > 0
        assert "irq event 10: bogus return value 12" in lines
        assert sum(x.startswith("irq event 10: bogus return value") for x in lines) == 100

    async def test_oops_in_thread_function(self) -> None:
        """TI-21. thread_fn raises: an oops, then ``exiting task "irq/10-dev" (<pid>) is an
        active IRQ thread (irq 10)``; later interrupts run the primary, never fn again."""
        rec = Recorder()

        async def fn(irq: int, dev: Any) -> int:
            rec.runs += 1
            raise RuntimeError("device fell off the bus")

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, rec.primary, fn, 0, "dev", 1) == 0
            t = thread_named(k, "irq/10-dev")
            assert t is not None
            k.raise_irq(10)
            await settle()
            k.raise_irq(10)
            k.raise_irq(10)
            await settle()
            assert t.pid not in k._tasks
        assert rec.runs == 1
        assert rec.names == ["primary"] * 3
        assert len(k.oopses) == 1
        lines = log_lines(k)
        oops_at = next(i for i, x in enumerate(lines) if x.startswith("BUG: unhandled exception"))
        dtor = f'genirq: exiting task "irq/10-dev" ({t.pid}) is an active IRQ thread (irq 10)'
        assert lines.index(dtor) > oops_at

    async def test_handler_that_enables_interrupts(self) -> None:
        """BW-11. A hardirq handler calling local_irq_enable(): after it returns, one WARN
        ``irq 10 handler <handler+off> enabled interrupts``; interrupts stay off inside; more
        interrupts print nothing more."""
        inside: list[bool] = []

        def enabler(irq: int, dev: Any) -> int:
            local_irq_enable()
            inside.append(irqs_disabled())
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_irq(10, enabler, 0, "dev", 1) == 0
            k.raise_irq(10)
            k.raise_irq(10)
            assert not irqs_disabled()
        assert inside == [True, True]
        lines = log_lines(k)
        warned = [x for x in lines if x.startswith("irq 10 handler enabler+0x0/0x")]
        assert len(warned) == 1
        assert warned[0].endswith(" enabled interrupts")


# ---------------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------------


async def sleepy(irq: int, dev: Any) -> int:
    return IRQ_HANDLED  # pragma: no cover


def one_arg(irq: int) -> int:
    return IRQ_HANDLED  # pragma: no cover


class TestArguments:
    @pytest.mark.parametrize(
        ("call", "exc", "message"),
        [
            pytest.param(
                lambda: request_threaded_irq("5", None, sleepy, IRQF_ONESHOT, "x", 1),  # type: ignore[arg-type]
                TypeError,
                "request_threaded_irq() expects an int for 'irq', got str",
                id="irq-str",
            ),
            pytest.param(
                lambda: request_threaded_irq(4096, None, sleepy, IRQF_ONESHOT, "x", 1),
                ValueError,
                "request_threaded_irq() expects an int from 0 to 4095 for 'irq', got 4096",
                id="irq-too-big",
            ),
            pytest.param(
                lambda: request_threaded_irq(5, None, "fn", IRQF_ONESHOT, "x", 1),  # type: ignore[arg-type]
                TypeError,
                "request_threaded_irq() expects a function callable as thread_fn(irq, dev) for "
                "'thread_fn', got str",
                id="thread_fn-str",
            ),
            pytest.param(
                lambda: request_threaded_irq(5, None, one_arg, IRQF_ONESHOT, "x", 1),  # type: ignore[arg-type]
                TypeError,
                "request_threaded_irq() expects a function callable as thread_fn(irq, dev) for "
                "'thread_fn', but one_arg(irq: 'int') cannot be called with 2 positional "
                "arguments",
                id="thread_fn-arity",
            ),
            pytest.param(
                lambda: request_threaded_irq(5, None, sleepy, -1, "x", 1),
                ValueError,
                "request_threaded_irq() expects IRQF_* flags (an int >= 0) for 'flags', got -1",
                id="flags-negative",
            ),
            pytest.param(
                lambda: request_threaded_irq(5, None, sleepy, IRQF_ONESHOT, None, 1),  # type: ignore[arg-type]
                TypeError,
                "request_threaded_irq() expects a str for 'name', got NoneType",
                id="name-none",
            ),
            pytest.param(
                lambda: disable_irq_nosync(True),
                TypeError,
                "disable_irq_nosync() expects an int for 'irq', got bool",
                id="disable_irq_nosync",
            ),
            pytest.param(
                lambda: disable_irq("10"),  # type: ignore[arg-type]
                TypeError,
                "disable_irq() expects an int for 'irq', got str",
                id="disable_irq",
            ),
            pytest.param(
                lambda: enable_irq(-1),
                ValueError,
                "enable_irq() expects an int from 0 to 4095 for 'irq', got -1",
                id="enable_irq",
            ),
            pytest.param(
                lambda: synchronize_irq(None),  # type: ignore[arg-type]
                TypeError,
                "synchronize_irq() expects an int for 'irq', got NoneType",
                id="synchronize_irq",
            ),
            pytest.param(
                lambda: irq_wake_thread(IRQ_NOTCONNECTED, 1),
                ValueError,
                "irq_wake_thread() expects an int from 0 to 4095 for 'irq', got 2147483648",
                id="irq_wake_thread",
            ),
        ],
    )
    async def test_bad_arguments(
        self, call: Callable[[], object], exc: type[Exception], message: str
    ) -> None:
        """Bad arguments are refused with the exact message, at the call (sleeping APIs
        before any coroutine exists), and nothing changes."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            before = len(k.dmesg())
            with pytest.raises(exc) as info:
                call()
            assert str(info.value) == message
            assert k.irq_actions == {}
            assert k.irq_descs == {}
            assert len(k.dmesg()) == before

    async def test_async_primary_handler_rejected(self) -> None:
        """An `async def` primary handler is the one-rule TypeError."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(TypeError) as info:
                request_threaded_irq(5, sleepy, sleepy, 0, "x", 1)
            assert str(info.value).startswith(
                "request_threaded_irq(): an interrupt handler runs in atomic context and must "
                "be a plain function, but sleepy is `async def`"
            )
            assert k.irq_actions == {}

    async def test_request_in_atomic_context(self) -> None:
        """request_threaded_irq in atomic context is a sleep in atomic context (it allocates
        and takes a mutex in the kernel): the report, then KernelBug; nothing registered."""
        from kdefer_async import KernelBug, SpinLock, spin_lock, spin_unlock

        lock = SpinLock()
        async with Kernel(nr_cpus=2, hz=250) as k:
            spin_lock(lock)
            with pytest.raises(KernelBug):
                request_threaded_irq(5, None, sleepy, IRQF_ONESHOT, "x", 1)
            spin_unlock(lock)
            assert k.irq_actions == {}
        assert any("BUG: sleeping function called from invalid context" in x for x in log_lines(k))


class TestSettle:
    async def test_settle_waits_for_a_woken_irq_thread(self) -> None:
        """testing.settle() returns only once a woken irq thread has run its thread function:
        a plain thread function has run by then, with no other wait."""
        ran: list[int] = []

        def fn(irq: int, dev: object) -> int:
            ran.append(irq)
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250) as k:
            assert request_threaded_irq(10, None, fn, IRQF_ONESHOT, "dev", 1) == 0
            k.raise_irq(10)
            await settle()
            assert ran == [10]


class TestOneshotBits:
    async def test_a_freed_actions_running_thread_keeps_its_oneshot_bit(self) -> None:
        """TI-08 across free_irq(): an action freed while its thread still runs keeps its
        ONESHOT bit until the run ends, so a new action requested meanwhile gets another bit;
        the old thread's end does not unmask the line while the new one's thread runs, and an
        interrupt arriving then is held until it returns."""
        from kdefer_async import IRQ_WAKE_THREAD, IRQF_ONESHOT

        gates = {"A": anyio.Event(), "B": anyio.Event()}
        started: list[str] = []

        async def fn(irq: int, dev: Any) -> int:
            started.append(dev)
            await gates[dev].wait()
            return IRQ_HANDLED

        def primary(irq: int, dev: Any) -> int:
            return IRQ_WAKE_THREAD

        flags = IRQF_ONESHOT | IRQF_SHARED
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert request_threaded_irq(40, primary, fn, flags, "a", "A") == 0
            k.raise_irq(40)
            await settle()
            free_irq(40, "A")  # A's thread function still runs
            assert request_threaded_irq(40, primary, fn, flags, "b", "B") == 0
            desc = k.irq_descs[40]
            assert k.irq_actions[40][0].thread_mask != 1  # A's bit is still held
            k.raise_irq(40)  # held: A's run keeps the line masked
            gates["A"].set()
            await settle()
            assert started == ["A", "B"]  # the held interrupt was delivered at A's end
            assert desc.masked  # B's thread runs: still masked
            calls = k.cpus[0].irq_stat[40]
            k.raise_irq(40)
            assert k.cpus[0].irq_stat[40] == calls  # held, not handled
            gates["B"].set()
            await settle()
            assert k.cpus[0].irq_stat[40] == calls + 1  # delivered once B returned
            gates["B"] = anyio.Event()
            gates["B"].set()
            await settle()
            await synchronize_irq(40)
