"""Kernel lifecycle: boot, per-CPU task groups, the init task, panics and clean shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

import kdefer_async
from kdefer_async import (
    IRQ_HANDLED,
    NR_SOFTIRQS,
    TASKLET_SOFTIRQ,
    Kernel,
    KernelPanic,
    NoKernelError,
    Tasklet,
    TimerList,
    current,
    current_kernel,
    kthread_run,
    kthread_should_stop,
    mod_timer,
    msleep,
    open_softirq,
    pr_info,
    raise_softirq,
    request_irq,
    tasklet_disable_nosync,
    tasklet_schedule,
    timer_setup,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

#: A vector the kernel registers no handler for (SCHED_SOFTIRQ is free in this model).
SPARE_SOFTIRQ = TASKLET_SOFTIRQ + 1
PANIC_IN_INTERRUPT = "Kernel panic - not syncing: Fatal exception in interrupt"


def _has(lines: list[str], text: str) -> bool:
    return any(text in line for line in lines)


async def _boot(k: Kernel, body: Callable[[Kernel], Awaitable[None]]) -> None:
    """Boot *k* and run *body* in it."""
    async with k:
        await body(k)


def _schedule_and_wait(fn: Callable[[Tasklet], None]) -> Callable[[Kernel], Awaitable[None]]:
    """A kernel body that schedules a tasklet running *fn* and waits forever."""

    async def body(k: Kernel) -> None:
        tasklet_schedule(Tasklet(fn))
        await anyio.sleep_forever()

    return body


def _task_names() -> set[str]:
    return {t.name for t in anyio.get_running_tasks() if t.name is not None}


class TestBoot:
    @pytest.mark.parametrize(("nr_cpus", "hz"), [(1, 100), (2, 250), (3, 300), (8, 1000)])
    async def test_geometry(self, nr_cpus: int, hz: int) -> None:
        """nr_cpus and hz are the constructor's, and kdefer_async.HZ reads the running kernel's hz."""
        async with Kernel(nr_cpus=nr_cpus, hz=hz) as k:
            assert k.nr_cpus == nr_cpus
            assert k.hz == hz
            assert hz == kdefer_async.HZ
            assert len(k.cpus) == nr_cpus
            assert kdefer_async.num_online_cpus() == nr_cpus

    @pytest.mark.parametrize("nr_cpus", [1, 2, 4])
    async def test_one_task_group_per_cpu_with_ksoftirqd(self, nr_cpus: int) -> None:
        """Every CPU n is its own anyio task group holding a task named ksoftirqd/n."""
        async with Kernel(nr_cpus=nr_cpus, hz=250) as k:
            names = _task_names()
            groups = {id(cpu.task_group) for cpu in k.cpus}
            assert len(groups) == nr_cpus
            for n, cpu in enumerate(k.cpus):
                assert cpu.nr == n
                assert cpu.ksoftirqd.comm == f"ksoftirqd/{n}"
                assert cpu.ksoftirqd.cpu == n
                assert cpu.task_group is not None
                assert f"ksoftirqd/{n}" in names
        assert not any(name.startswith("ksoftirqd/") for name in _task_names())

    async def test_ksoftirqd_pids_are_distinct(self) -> None:
        """Each ksoftirqd has its own pid, none of them init's pid 1."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            pids = [cpu.ksoftirqd.pid for cpu in k.cpus]
            assert len(set(pids)) == 4
            assert 1 not in pids

    async def test_body_runs_as_init(self) -> None:
        """current() in the body is the init task: comm "init", pid 1, CPU 0, task context."""
        async with Kernel(nr_cpus=2, hz=250):
            task = current()
            assert task.comm == "init"
            assert task.pid == 1
            assert task.cpu == 0
            assert kdefer_async.smp_processor_id() == 0
            assert kdefer_async.in_task()
            assert kdefer_async.preempt_count() == 0

    async def test_current_kernel_inside(self) -> None:
        """current_kernel() in the body is the Kernel of the `async with`."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            assert current_kernel() is k

    async def test_current_kernel_outside(self) -> None:
        """Outside any kernel current_kernel() raises NoKernelError, a RuntimeError, saying why."""
        with pytest.raises(RuntimeError, match="no kdefer_async Kernel is running") as info:
            current_kernel()
        assert isinstance(info.value, NoKernelError)

    async def test_current_kernel_after_exit(self) -> None:
        """After the block exits there is no current kernel any more."""
        async with Kernel(nr_cpus=1, hz=250):
            pass
        with pytest.raises(NoKernelError):
            current_kernel()
        with pytest.raises(NoKernelError):
            current()

    async def test_hz_outside_a_kernel(self) -> None:
        """kdefer_async.HZ and jiffies need a running kernel: RuntimeError outside one."""
        with pytest.raises(RuntimeError):
            _ = kdefer_async.HZ
        with pytest.raises(RuntimeError):
            _ = kdefer_async.jiffies

    async def test_child_tasks_inherit_the_kernel(self) -> None:
        """A task spawned from the body in its own task group still sees the same kernel."""
        seen: list[object] = []

        async def child() -> None:
            seen.append(current_kernel())

        async with Kernel(nr_cpus=1, hz=250) as k, anyio.create_task_group() as tg:
            tg.start_soon(child)
        assert seen == [k]

    async def test_boot_messages(self) -> None:
        """Boot logs the Linux version banner and brings up exactly nr_cpus CPUs."""
        async with Kernel(nr_cpus=3, hz=300) as k:
            lines = k.dmesg()
            assert "Linux version" in lines[0]
            assert _has(lines, "HZ=300")
            assert _has(lines, "smp: Brought up 1 node, 3 CPUs")

    async def test_single_cpu_wording(self) -> None:
        """One CPU is reported in the singular, as the kernel does."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert _has(k.dmesg(), "smp: Brought up 1 node, 1 CPU")
            assert not _has(k.dmesg(), "1 CPUs")

    async def test_cannot_boot_twice(self) -> None:
        """A Kernel object boots once: a second `async with` on it raises RuntimeError."""
        k = Kernel(nr_cpus=1, hz=250)
        async with k:
            pass
        with pytest.raises(RuntimeError, match="already been booted"):
            async with k:
                pass  # pragma: no cover

    async def test_cannot_nest(self) -> None:
        """A kernel inside a running kernel is refused; the outer kernel keeps running."""
        async with Kernel(nr_cpus=1, hz=250) as outer:
            with pytest.raises(RuntimeError, match="do not nest"):
                async with Kernel(nr_cpus=1, hz=250):
                    pass  # pragma: no cover
            assert current_kernel() is outer
            assert current().comm == "init"
            pr_info("still alive")
        assert _has(outer.dmesg(), "still alive")

    async def test_repr(self) -> None:
        """repr() shows the state: not booted, running, halted."""
        k = Kernel(nr_cpus=2, hz=100)
        assert "not booted" in repr(k)
        async with k:
            assert "running" in repr(k)
        assert "halted" in repr(k)
        assert "nr_cpus=2" in repr(k)


async def _async_console(line: str, level: int) -> None:
    pass  # pragma: no cover


def _console_one(line: str) -> None:
    pass  # pragma: no cover


class TestArguments:
    """Kernel() and the Kernel methods check every argument first, in the _check.py wording."""

    @pytest.mark.parametrize(
        ("kwargs", "exc", "message"),
        [
            (
                {"nr_cpus": 0},
                ValueError,
                "Kernel() expects an int from 1 to 1024 for 'nr_cpus', got 0",
            ),
            (
                {"nr_cpus": -1},
                ValueError,
                "Kernel() expects an int from 1 to 1024 for 'nr_cpus', got -1",
            ),
            (
                {"nr_cpus": 1025},
                ValueError,
                "Kernel() expects an int from 1 to 1024 for 'nr_cpus', got 1025",
            ),
            ({"nr_cpus": "4"}, TypeError, "Kernel() expects an int for 'nr_cpus', got str"),
            ({"nr_cpus": 2.0}, TypeError, "Kernel() expects an int for 'nr_cpus', got float"),
            ({"nr_cpus": True}, TypeError, "Kernel() expects an int for 'nr_cpus', got bool"),
            ({"hz": 0}, ValueError, "Kernel() expects an int from 1 to 10000 for 'hz', got 0"),
            (
                {"hz": -250},
                ValueError,
                "Kernel() expects an int from 1 to 10000 for 'hz', got -250",
            ),
            ({"hz": "250"}, TypeError, "Kernel() expects an int for 'hz', got str"),
            ({"hz": False}, TypeError, "Kernel() expects an int for 'hz', got bool"),
            (
                {"panic_on_oops": 1},
                TypeError,
                "Kernel() expects a bool for 'panic_on_oops', got int",
            ),
            ({"threadirqs": "yes"}, TypeError, "Kernel() expects a bool for 'threadirqs', got str"),
            (
                {"sleep_in_atomic": "x"},
                ValueError,
                "Kernel() expects 'raise' or 'report' for 'sleep_in_atomic', got 'x'",
            ),
            (
                {"sleep_in_atomic": None},
                TypeError,
                "Kernel() expects a str for 'sleep_in_atomic', got NoneType",
            ),
            (
                {"hung_task_timeout_secs": "120"},
                TypeError,
                "Kernel() expects an int for 'hung_task_timeout_secs', got str",
            ),
            (
                {"hung_task_timeout_secs": -1},
                ValueError,
                "Kernel() expects a number of seconds >= 0 (0 disables the detector) for "
                "'hung_task_timeout_secs', got -1",
            ),
            ({"dyndbg": None}, TypeError, "Kernel() expects a bool for 'dyndbg', got NoneType"),
            (
                {"console": 3},
                TypeError,
                "Kernel() expects a function callable as console(line, level) for 'console', "
                "got int",
            ),
            (
                {"shutdown_timeout": -1},
                ValueError,
                "Kernel() expects a number of seconds >= 0, or None to wait forever for "
                "'shutdown_timeout', got -1",
            ),
            (
                {"shutdown_timeout": float("nan")},
                ValueError,
                "Kernel() expects a number of seconds >= 0, or None to wait forever for "
                "'shutdown_timeout', got nan",
            ),
            (
                {"shutdown_timeout": "10"},
                TypeError,
                "Kernel() expects a number of seconds or None for 'shutdown_timeout', got str",
            ),
            (
                {"wq_watchdog_thresh": -0.5},
                ValueError,
                "Kernel() expects a number of seconds >= 0 (0 disables the watchdog) for "
                "'wq_watchdog_thresh', got -0.5",
            ),
            (
                {"wq_watchdog_thresh": None},
                TypeError,
                "Kernel() expects a number for 'wq_watchdog_thresh', got NoneType",
            ),
            (
                {"wq_cpu_intensive_thresh_us": 0},
                ValueError,
                "Kernel() expects an int >= 1 for 'wq_cpu_intensive_thresh_us', got 0",
            ),
            (
                {"wq_cpu_intensive_thresh_us": 1.5},
                TypeError,
                "Kernel() expects an int for 'wq_cpu_intensive_thresh_us', got float",
            ),
        ],
    )
    async def test_constructor(
        self, kwargs: dict[str, object], exc: type[Exception], message: str
    ) -> None:
        """Bad constructor arguments raise ValueError or TypeError, with the exact message."""
        with pytest.raises(exc) as info:
            Kernel(**kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message

    async def test_console_must_be_a_plain_function_of_two_arguments(self) -> None:
        """The console is called synchronously as console(line, level), from any context:
        an `async def` or a one-argument console is refused at construction."""
        with pytest.raises(TypeError) as info:
            Kernel(console=_async_console)
        assert str(info.value).startswith(
            "Kernel(): a console runs in atomic context and must be a plain function"
        )
        with pytest.raises(TypeError) as info:
            Kernel(console=_console_one)  # type: ignore[arg-type]
        assert "cannot be called with 2 positional arguments" in str(info.value)

    async def test_edge_values_are_accepted(self) -> None:
        """0 disables the hung-task detector and the watchdog; None waits forever; float
        seconds are fine."""
        k = Kernel(
            nr_cpus=1024,
            hz=10000,
            hung_task_timeout_secs=0,
            shutdown_timeout=None,
            wq_watchdog_thresh=2.5,
            wq_cpu_intensive_thresh_us=1,
        )
        assert (k.nr_cpus, k.hz, k.shutdown_timeout, k.wq_watchdog_thresh) == (
            1024,
            10000,
            None,
            2.5,
        )
        assert Kernel(shutdown_timeout=0, wq_watchdog_thresh=0).shutdown_timeout == 0

    async def test_defaults(self) -> None:
        """The defaults are 4 CPUs at HZ=250, as API.md states."""
        k = Kernel()
        assert k.nr_cpus == 4
        assert k.hz == 250
        assert k.oopses == []

    async def test_raise_nmi(self) -> None:
        """raise_nmi: the handler must be a plain function taking no arguments; the CPU an int
        naming one of the kernel's CPUs. Nothing runs when refused."""
        ran: list[int] = []

        async def sleepy() -> None:
            pass  # pragma: no cover

        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(TypeError) as info:
                k.raise_nmi("nmi")  # type: ignore[arg-type]
            assert str(info.value) == (
                "Kernel.raise_nmi() expects a function callable as handler() for 'handler', got str"
            )
            with pytest.raises(TypeError) as info:
                k.raise_nmi(sleepy)
            assert str(info.value).startswith(
                "Kernel.raise_nmi(): an NMI handler runs in atomic context and must be a plain "
                "function"
            )
            with pytest.raises(TypeError) as info:
                k.raise_nmi(lambda x: ran.append(x))  # type: ignore[arg-type, misc]
            assert "cannot be called with no arguments" in str(info.value)
            with pytest.raises(TypeError) as info:
                k.raise_nmi(lambda: ran.append(0), cpu="1")  # type: ignore[arg-type]
            assert str(info.value) == (
                "Kernel.raise_nmi() expects an int (a CPU number) or None for 'cpu', got str"
            )
            with pytest.raises(ValueError) as bad_cpu:
                k.raise_nmi(lambda: ran.append(0), cpu=2)
            assert str(bad_cpu.value) == (
                "Kernel.raise_nmi() expects a CPU number from 0 to 1 for 'cpu', got 2"
            )
            assert ran == []
            k.raise_nmi(lambda: ran.append(1), cpu=1)
            assert ran == [1]

    async def test_insmod(self, tmp_path: Path) -> None:
        """insmod takes a str or os.PathLike path and str parameters; anything else is refused
        before the file is read or anything is logged."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = list(k.dmesg())
            with pytest.raises(TypeError) as info:
                await k.insmod(None)  # type: ignore[arg-type]
            assert str(info.value) == (
                "Kernel.insmod() expects a str or an os.PathLike path for 'path', got NoneType"
            )
            with pytest.raises(TypeError) as info:
                await k.insmod(b"mod.py")  # type: ignore[arg-type]
            assert str(info.value) == (
                "Kernel.insmod() expects a str or an os.PathLike path for 'path', got bytes"
            )
            with pytest.raises(TypeError) as info:
                await k.insmod(str(tmp_path / "mod.py"), "count=1", 5)  # type: ignore[arg-type]
            assert str(info.value) == "Kernel.insmod() expects a str for 'params[1]', got int"
            assert k.dmesg() == before
            assert k.lsmod().splitlines()[1:] == []

    async def test_rmmod_block_worker_creation_panic(self) -> None:
        """rmmod's name is a str, block_worker_creation's flag a bool, panic's message a str
        and its cause an exception: refused otherwise, with nothing logged or changed."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = list(k.dmesg())
            with pytest.raises(TypeError) as info:
                await k.rmmod(None)  # type: ignore[arg-type]
            assert str(info.value) == "Kernel.rmmod() expects a str for 'name', got NoneType"
            with pytest.raises(TypeError) as info:
                k.block_worker_creation(1)  # type: ignore[arg-type]
            assert str(info.value) == (
                "Kernel.block_worker_creation() expects a bool for 'blocked', got int"
            )
            with pytest.raises(TypeError) as info:
                k.panic(None)  # type: ignore[arg-type]
            assert str(info.value) == "Kernel.panic() expects a str for 'message', got NoneType"
            with pytest.raises(TypeError) as info:
                k.panic("oops", "cause")  # type: ignore[arg-type]
            assert str(info.value) == (
                "Kernel.panic() expects an exception or None for 'cause', got str"
            )
            with pytest.raises(TypeError) as info:
                k.irq_effective_cpu("5")  # type: ignore[arg-type]
            assert str(info.value) == "Kernel.irq_effective_cpu() expects an int for 'irq', got str"
            assert k.dmesg() == before
            assert repr(k).startswith("<Kernel running")


class TestIsolation:
    async def test_two_kernels_share_nothing(self) -> None:
        """Two kernels in sequence share no softirq handlers, irq lines, log, oopses or pids."""
        ran: list[str] = []
        first_pids: list[int] = []

        def action() -> None:
            ran.append("first")  # pragma: no cover

        def handler(irq: int, dev: object) -> int:
            return IRQ_HANDLED  # pragma: no cover

        def boom(t: Tasklet) -> None:
            raise ValueError("first kernel only")

        async def first_body(k: Kernel) -> None:
            open_softirq(SPARE_SOFTIRQ, action)
            assert request_irq(7, handler, 0, "first-dev", None) == 0
            pr_info("first kernel message")
            first_pids.extend(cpu.ksoftirqd.pid for cpu in k.cpus)
            tasklet_schedule(Tasklet(boom))
            await anyio.sleep_forever()

        first = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic):
            await _boot(first, first_body)
        assert first.oopses
        assert 7 in first.irq_actions

        async with Kernel(nr_cpus=2, hz=250) as second:
            assert second.softirq_vec[SPARE_SOFTIRQ] is None
            assert 7 not in second.irq_actions
            assert second.oopses == []
            assert not _has(second.dmesg(), "first kernel message")
            assert [cpu.ksoftirqd.pid for cpu in second.cpus] == first_pids
            assert current().pid == 1
            second.raise_irq(7)
            assert _has(second.dmesg(), "irq 7: no handler registered")
            raise_softirq(SPARE_SOFTIRQ)
        assert second.oopses == []
        assert ran == []
        assert not _has(first.dmesg(), "irq 7: no handler registered")

    async def test_kthread_pids_restart(self) -> None:
        """Pids are allocated per kernel: the first kthread of each kernel gets the same pid."""
        pids: list[int] = []

        async def fn(data: object) -> int:
            pids.append(current().pid)
            return 0

        for _ in range(2):
            async with Kernel(nr_cpus=1, hz=250):
                kthread_run(fn, None, "worker")
                await settle()
        assert len(pids) == 2
        assert pids[0] == pids[1]


class TestPanic:
    async def test_tasklet_exception_from_irq_exit(self) -> None:
        """An exception in a tasklet run at irq_exit panics: KernelPanic (not a group) with the cause."""
        err = ValueError("tasklet bug")

        def boom(t: Tasklet) -> None:
            raise err

        t = Tasklet(boom)

        def handler(irq: int, dev: object) -> int:
            tasklet_schedule(t)
            return IRQ_HANDLED

        async def body(k: Kernel) -> None:
            request_irq(3, handler, 0, "dev", None)
            k.raise_irq(3)

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            await _boot(k, body)
        assert type(info.value) is KernelPanic
        assert info.value.__cause__ is err
        lines = k.dmesg()
        assert _has(lines, PANIC_IN_INTERRUPT)
        assert _has(lines, "BUG: unhandled exception in tasklet boom: ValueError: tasklet bug")
        assert _has(lines, "Oops: ValueError [#1]")
        assert len(k.oopses) == 1
        assert k.oopses[0].exception is err
        assert lines[-1].endswith("reboot: System halted")

    async def test_panic_in_ksoftirqd_cancels_the_body(self) -> None:
        """A panic in ksoftirqd cancels the body at its next checkpoint; `async with` raises KernelPanic."""
        err = RuntimeError("ksoftirqd bug")
        runners: list[str] = []
        cancelled: list[bool] = []
        after: list[bool] = []

        def boom(t: Tasklet) -> None:
            runners.append(current().comm)
            raise err

        async def body(k: Kernel) -> None:
            tasklet_schedule(Tasklet(boom))
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                cancelled.append(True)
                raise
            after.append(True)  # pragma: no cover

        k = Kernel(nr_cpus=2, hz=250)
        with anyio.fail_after(5), pytest.raises(KernelPanic) as info:
            await _boot(k, body)
        assert runners == ["ksoftirqd/0"]
        assert cancelled == [True]
        assert after == []
        assert type(info.value) is KernelPanic
        assert info.value.__cause__ is err
        assert _has(k.dmesg(), PANIC_IN_INTERRUPT)
        assert len(k.oopses) == 1

    async def test_one_oops_per_panic(self) -> None:
        """The panic unwinding through the softirq loop is not logged as a second oops."""

        def boom(t: Tasklet) -> None:
            raise ValueError("once")

        k = Kernel(nr_cpus=1, hz=250)
        with pytest.raises(KernelPanic):
            await _boot(k, _schedule_and_wait(boom))
        assert sum("BUG: unhandled exception" in line for line in k.dmesg()) == 1
        assert sum(line.endswith(PANIC_IN_INTERRUPT) for line in k.dmesg()) == 1
        assert not _has(k.dmesg(), "KernelPanic")
        assert len(k.oopses) == 1

    async def test_softirq_action_exception(self) -> None:
        """An exception in a softirq action is a fatal exception in interrupt too."""
        err = KeyError("action")

        def action() -> None:
            raise err

        async def body(k: Kernel) -> None:
            open_softirq(SPARE_SOFTIRQ, action)
            raise_softirq(SPARE_SOFTIRQ)
            await anyio.sleep_forever()

        k = Kernel(nr_cpus=1, hz=250)
        with pytest.raises(KernelPanic) as info:
            await _boot(k, body)
        assert info.value.__cause__ is err
        assert _has(k.dmesg(), PANIC_IN_INTERRUPT)
        assert len(k.oopses) == 1

    async def test_timer_exception(self) -> None:
        """An exception in a timer callback is a fatal exception in interrupt."""
        err = ArithmeticError("timer")

        def fn(timer: TimerList) -> None:
            raise err

        async def body(k: Kernel) -> None:
            timer = TimerList()
            timer_setup(timer, fn, 0)
            mod_timer(timer, k.jiffies + 2)
            await anyio.sleep_forever()

        k = Kernel(nr_cpus=1, hz=1000)
        with anyio.fail_after(5), pytest.raises(KernelPanic) as info:
            await _boot(k, body)
        assert info.value.__cause__ is err
        assert _has(k.dmesg(), PANIC_IN_INTERRUPT)

    async def test_raise_irq_after_panic(self) -> None:
        """After a panic, raise_irq() raises the same KernelPanic and runs no handler."""
        panics: list[KernelPanic] = []

        def bad_handler(irq: int, dev: object) -> int:
            raise ZeroDivisionError

        def good_handler(irq: int, dev: object) -> int:
            return IRQ_HANDLED  # pragma: no cover

        async def body(k: Kernel) -> None:
            request_irq(4, bad_handler, 0, "bad", None)
            request_irq(5, good_handler, 0, "good", None)
            for irq, cpu in ((4, 0), (5, 0), (5, 1)):
                with pytest.raises(KernelPanic) as info:
                    k.raise_irq(irq, cpu=cpu)
                panics.append(info.value)

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as outer:
            await _boot(k, body)
        assert len(panics) == 3
        assert all(p is outer.value for p in panics)
        assert isinstance(outer.value.__cause__, ZeroDivisionError)
        assert k.cpus[0].irq_stat.get(5, 0) == 0
        assert k.cpus[1].irq_stat.get(5, 0) == 0

    async def test_panic_message_in_dmesg_after_exit(self) -> None:
        """dmesg stays readable after a panic and ends with "reboot: System halted"."""

        def boom(t: Tasklet) -> None:
            raise ValueError

        k = Kernel(nr_cpus=1, hz=250)
        with pytest.raises(KernelPanic):
            await _boot(k, _schedule_and_wait(boom))
        lines = k.dmesg()
        panic_at = next(i for i, line in enumerate(lines) if PANIC_IN_INTERRUPT in line)
        assert "---[ end Kernel panic - not syncing" in lines[panic_at + 1]
        assert lines[-1].endswith("reboot: System halted")

    async def test_panic_on_oops(self) -> None:
        """With panic_on_oops=True an oops in a kthread panics ("Fatal exception"), unwrapped."""
        err = OSError("kthread bug")

        async def fn(data: object) -> int:
            raise err

        async def body(k: Kernel) -> None:
            kthread_run(fn, None, "oopser")
            await anyio.sleep_forever()

        k = Kernel(nr_cpus=1, hz=250, panic_on_oops=True)
        with pytest.raises(KernelPanic) as info:
            await _boot(k, body)
        assert type(info.value) is KernelPanic
        assert info.value.__cause__ is err
        assert _has(k.dmesg(), "Kernel panic - not syncing: Fatal exception")

    async def test_kthread_oops_without_panic_on_oops(self) -> None:
        """Without panic_on_oops an oops in a kthread is logged and the kernel keeps running."""

        async def fn(data: object) -> int:
            raise OSError("kthread bug")

        async with Kernel(nr_cpus=1, hz=250) as k:
            kthread_run(fn, None, "oopser")
            await settle()
            assert len(k.oopses) == 1
            assert k.oopses[0].comm == "oopser"
            pr_info("survived")
        assert _has(k.dmesg(), "survived")
        assert not _has(k.dmesg(), "Kernel panic")


class TestExit:
    async def test_body_exception_propagates_unwrapped(self) -> None:
        """The body's own exception leaves `async with` as itself, not wrapped or turned into a panic."""
        err = KeyError("mine")
        with pytest.raises(KeyError) as info:
            async with Kernel(nr_cpus=2, hz=250) as k:
                raise err
        assert info.value is err
        assert not _has(k.dmesg(), "Kernel panic")
        assert k.dmesg()[-1].endswith("reboot: System halted")

    async def test_outer_cancel_scope_exits_cleanly(self) -> None:
        """Cancelling a scope around the kernel shuts it down cleanly: no panic, no error."""
        with anyio.CancelScope() as scope:
            async with Kernel(nr_cpus=2, hz=250) as k:
                scope.cancel()
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert k.dmesg()[-1].endswith("reboot: System halted")
        assert not _has(k.dmesg(), "Kernel panic")
        with pytest.raises(NoKernelError):
            current_kernel()

    async def test_move_on_after_around_kernel(self, virtual: bool) -> None:
        """move_on_after() around `async with Kernel()` ends the body at its deadline, cleanly."""
        k = Kernel(nr_cpus=2, hz=1000)
        with anyio.move_on_after(5 if virtual else 0.2) as scope:
            async with k:
                await anyio.sleep_forever()
        assert scope.cancelled_caught
        assert k.dmesg()[-1].endswith("reboot: System halted")
        assert k.oopses == []

    async def test_kernel_apis_refused_after_exit(self) -> None:
        """After exit insmod and friends refuse: the kernel is not running."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            pass
        with pytest.raises(NoKernelError):
            await k.insmod("nothing.py")

    async def test_dmesg_after_exit(self) -> None:
        """dmesg() works after exit and its last line is "reboot: System halted"."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            pr_info("hello")
        lines = k.dmesg()
        assert _has(lines, "hello")
        assert lines[-1].endswith("reboot: System halted")
        assert sum("reboot: System halted" in line for line in lines) == 1


class TestShutdown:
    async def test_scheduled_tasklet_still_runs(self) -> None:
        """A tasklet scheduled just before leaving the block still runs during shutdown."""
        ran: list[int] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            tasklet_schedule(Tasklet(lambda t: ran.append(1)))
        assert ran == [1]
        assert not _has(k.dmesg(), "dropped")

    async def test_raised_softirq_still_runs(self) -> None:
        """A softirq raised just before leaving the block still runs during shutdown."""
        ran: list[int] = []
        async with Kernel(nr_cpus=1, hz=250):
            open_softirq(TASKLET_SOFTIRQ + 1, lambda: ran.append(1))
            raise_softirq(TASKLET_SOFTIRQ + 1)
        assert ran == [1]

    async def test_armed_timer_is_named(self) -> None:
        """A timer still armed at exit is named in dmesg as cancelled, and never fires."""
        fired: list[int] = []

        def my_timer_fn(timer: TimerList) -> None:
            fired.append(1)  # pragma: no cover

        async with Kernel(nr_cpus=2, hz=250) as k:
            timer = TimerList()
            timer_setup(timer, my_timer_fn, 0)
            mod_timer(timer, k.jiffies + 10 * k.hz)
        lines = [line for line in k.dmesg() if "still armed; cancelled" in line]
        assert len(lines) == 1
        assert "my_timer_fn" in lines[0]
        assert fired == []

    async def test_disabled_tasklet_is_named(self) -> None:
        """A scheduled but disabled tasklet at exit is named in dmesg as dropped, and never runs."""
        ran: list[int] = []

        def my_tasklet_fn(t: Tasklet) -> None:
            ran.append(1)  # pragma: no cover

        async with Kernel(nr_cpus=2, hz=250) as k:
            t = Tasklet(my_tasklet_fn)
            tasklet_disable_nosync(t)
            tasklet_schedule(t)
        lines = [line for line in k.dmesg() if "dropped" in line]
        assert len(lines) == 1
        assert "my_tasklet_fn" in lines[0]
        assert "still scheduled" in lines[0]
        assert ran == []

    async def test_running_kthread_is_named(self) -> None:
        """A kthread still running at exit is named (comm/pid) in dmesg as stopped."""

        async def loop(data: object) -> int:
            while not kthread_should_stop():
                await msleep(10)
            return 0  # pragma: no cover

        async with Kernel(nr_cpus=1, hz=250) as k:
            task = kthread_run(loop, None, "looper/%d", 7)
            await settle()
        lines = [line for line in k.dmesg() if "still running; stopped" in line]
        assert len(lines) == 1
        assert f"looper/7/{task.pid}" in lines[0]

    async def test_quiet_kernel_names_nothing(self) -> None:
        """A kernel left with nothing pending reports nothing at shutdown."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            tasklet_schedule(Tasklet(lambda t: None))
            await settle()
        assert not _has(k.dmesg(), "kdefer: shutdown")

    async def test_every_cpu_stops(self) -> None:
        """After exit no kernel task is left running in the event loop."""
        async with Kernel(nr_cpus=3, hz=250):
            assert {"ksoftirqd/0", "ksoftirqd/1", "ksoftirqd/2"} <= _task_names()
        assert not any(name.startswith(("ksoftirqd/", "tick/")) for name in _task_names())

    async def test_softirq_vector_bounds(self) -> None:
        """The softirq table has NR_SOFTIRQS entries, fresh for every kernel."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            assert len(k.softirq_vec) == NR_SOFTIRQS
