"""Cross-CPU function calls: kernel-semantics-2 §4 and the IPI behaviours of §11.4, on every
backend.

The test task is init, in task context on CPU 0. Other CPUs are at an await point, so an IPI
sent to one is taken at once: remote calls have run when the call returns (wait=0 included).
A CPU whose interrupts are off can only be one whose code is further down the call stack; the
tests build that with a hardirq handler on that CPU that raises an interrupt on another.

Every behaviour IPI-01 … IPI-11 is checked here. Not modelled (§4.4 and the module docstring
of ``_smp.py``): the per-CPU csd an asynchronous call waits for, idle CPUs that poll instead of
taking the IPI, ``CONFIG_CSD_LOCK_WAIT_DEBUG``; an order between the local and the remote runs
of one call is not asserted (it is genuine concurrency in the kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from helpers import at_tick, logged

from kdefer_async import (
    ENXIO,
    IRQ_HANDLED,
    NET_RX_SOFTIRQ,
    IrqWork,
    Kernel,
    KernelBug,
    KernelPanic,
    Tasklet,
    current,
    get_cpu,
    in_hardirq,
    in_serving_softirq,
    in_task,
    irq_work_queue,
    irq_work_queue_on,
    irqs_disabled,
    local_irq_disable,
    local_irq_enable,
    on_each_cpu,
    on_each_cpu_cond,
    on_each_cpu_mask,
    open_softirq,
    preempt_count,
    preempt_disable,
    preempt_enable,
    put_cpu,
    raise_softirq,
    request_irq,
    smp_call_function,
    smp_call_function_many,
    smp_call_function_single,
    smp_processor_id,
    tasklet_schedule,
)
from kdefer_async._consts import CALL_FUNCTION_VECTOR
from kdefer_async._smp import _Csd

pytestmark = pytest.mark.anyio

IRQ = 10
WAIT_REAL = 5.0


def cal(k: Kernel) -> list[int]:
    """The CAL row of /proc/interrupts (function call IPIs per CPU)."""
    return [c.irq_stat.get(CALL_FUNCTION_VECTOR, 0) for c in k.cpus]


def warnings(k: Kernel) -> int:
    return logged(k, "WARNING: CPU:")


class Calls:
    """A cross-CPU function that records where and how each call ran."""

    def __init__(self, then: Callable[[Any], object] | None = None) -> None:
        self.runs: list[dict[str, Any]] = []
        self.then = then

    def __call__(self, info: Any) -> None:
        self.runs.append(
            {
                "info": info,
                "cpu": smp_processor_id(),
                "hardirq": in_hardirq(),
                "irqs_disabled": irqs_disabled(),
                "in_task": in_task(),
                "preempt_count": preempt_count(),
                "comm": current().comm,
            }
        )
        if self.then is not None:
            self.then(info)

    @property
    def cpus(self) -> list[int]:
        return sorted(r["cpu"] for r in self.runs)


def nested_on_cpu1(k: Kernel, body: Callable[[], object]) -> list[str]:
    """Run *body* in a hardirq handler on CPU 0 while CPU 1 is inside a hardirq handler of
    its own (it raised CPU 0's interrupt): CPU 1 has interrupts off further down the stack.
    Returns the order of the two handlers' ends."""
    order: list[str] = []

    def on_cpu0(irq: int, dev: object) -> int:
        body()
        order.append("cpu0 handler returns")
        return IRQ_HANDLED

    def on_cpu1(irq: int, dev: object) -> int:
        k.raise_irq(IRQ + 1, cpu=0)
        order.append("cpu1 handler returns")
        return IRQ_HANDLED

    request_irq(IRQ, on_cpu1, 0, "one", None)
    request_irq(IRQ + 1, on_cpu0, 0, "zero", None)
    k.raise_irq(IRQ, cpu=1)
    return order


# --- smp_call_function_single: IPI-01 .. IPI-05, IPI-11 --------------------------------------


class TestSingle:
    async def test_single_remote_runs_in_hardirq_on_target(self) -> None:
        """IPI-01: from CPU 0, smp_call_function_single(1, f, x, 1) → 0, after f(x) ran on
        CPU 1 in hardirq context, in its CALL_FUNCTION IPI."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            assert smp_call_function_single(1, f, "x", 1) == 0
            assert [(r["info"], r["cpu"], r["hardirq"]) for r in f.runs] == [("x", 1, True)]
            assert f.runs[0]["comm"] == "swapper/1"
            assert cal(k) == [0, 1, 0, 0]
            assert warnings(k) == 0

    async def test_single_local_runs_irqs_off_not_hardirq(self) -> None:
        """IPI-02: smp_call_function_single(0, f, x, 1) on CPU 0 → f runs before the return,
        IRQs disabled, not hardirq, task context (preemption off); no IPI."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            assert smp_call_function_single(0, f, "x", 1) == 0
            run = f.runs[0]
            assert (run["cpu"], run["irqs_disabled"], run["hardirq"], run["in_task"]) == (
                0,
                True,
                False,
                True,
            )
            assert run["preempt_count"] >= 1
            assert run["comm"] == current().comm
            assert cal(k) == [0, 0, 0, 0]
            assert (irqs_disabled(), preempt_count()) == (False, 0)

    async def test_local_call_takes_held_interrupts_on_restore(self) -> None:
        """An irq_work queued by the local call runs when its interrupts are restored."""
        async with Kernel(nr_cpus=2, hz=250):
            order: list[str] = []
            w = IrqWork(lambda _w: order.append("irq_work"))

            def f(_info: object) -> None:
                irq_work_queue(w)
                order.append("f returns")

            smp_call_function_single(0, f, None, 1)
            order.append("call returns")
            assert order == ["f returns", "irq_work", "call returns"]

    @pytest.mark.parametrize("cpu", [4, -1, 1 << 40])
    async def test_single_offline_cpu_is_enxio(self, cpu: int) -> None:
        """IPI-03: a CPU >= nr_cpus, or -1 → -ENXIO (-6); f not called."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            assert smp_call_function_single(cpu, f, None, 1) == -ENXIO == -6
            assert f.runs == []
            assert cal(k) == [0, 0, 0, 0]

    async def test_irqs_disabled_warns_once(self) -> None:
        """IPI-04: called with local IRQs disabled → one WARN (once per boot); f still runs."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            local_irq_disable()
            try:
                assert smp_call_function_single(1, f, None, 1) == 0
                assert smp_call_function_single(2, f, None, 1) == 0
            finally:
                local_irq_enable()
            assert f.cpus == [1, 2]
            assert warnings(k) == 1

    async def test_from_timer_callback_warns_not_in_task(self, virtual: bool) -> None:
        """IPI-04: from a timer callback (softirq) → one WARN (!in_task()); f still runs."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            done = anyio.Event()

            def in_timer() -> None:
                smp_call_function_single(1, f, None, 1)
                done.set()

            at_tick(k, 1, in_timer)
            with anyio.fail_after(WAIT_REAL):
                await done.wait()
            assert f.cpus == [1]
            assert warnings(k) == 1

    async def test_async_call_has_run_by_next_await(self) -> None:
        """IPI-05: smp_call_function_single(1, f, x, 0) → 0; f ran on CPU 1 by the next await."""
        async with Kernel(nr_cpus=4, hz=250):
            f = Calls()
            assert smp_call_function_single(1, f, "x", 0) == 0
            await anyio.lowlevel.checkpoint()
            assert [(r["cpu"], r["hardirq"]) for r in f.runs] == [(1, True)]

    async def test_order_of_calls_to_one_target(self) -> None:
        """IPI-11: f(a) then g(b), both wait=0, to CPU 1 → f runs before g, also when both wait
        in one IPI (CPU 1 had interrupts off): one CAL interrupt runs both, in order."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            order: list[str] = []
            f = Calls(lambda info: order.append(f"f({info})"))
            g = Calls(lambda info: order.append(f"g({info})"))
            smp_call_function_single(1, f, "a", 0)
            smp_call_function_single(1, g, "b", 0)
            assert order == ["f(a)", "g(b)"]
            assert cal(k)[1] == 2

            def both() -> None:
                smp_call_function_single(1, f, "c", 0)
                smp_call_function_single(1, g, "d", 0)

            ends = nested_on_cpu1(k, both)
            assert order[2:] == ["f(c)", "g(d)"]
            assert ends == ["cpu0 handler returns", "cpu1 handler returns"]
            assert cal(k)[1] == 3  # the second pair shared one IPI
            assert f.runs[1]["cpu"] == g.runs[1]["cpu"] == 1

    async def test_sync_before_async_in_one_ipi(self) -> None:
        """One IPI runs the waited-for entries first, then the asynchronous calls and the
        irq_work items, each in queueing order (entries put on the queue directly: a waiter
        whose target has interrupts off cannot exist on one loop)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            order: list[str] = []
            w = IrqWork(lambda _w: order.append("irq_work"))

            def queue_all() -> None:
                smp_call_function_single(1, lambda _i: order.append("async 1"), None, 0)
                irq_work_queue_on(w, 1)
                k.cpus[1].call_single_queue.append(
                    _Csd(lambda _i: order.append("sync"), None, True)
                )
                smp_call_function_single(1, lambda _i: order.append("async 2"), None, 0)

            nested_on_cpu1(k, queue_all)
            assert order == ["sync", "async 1", "irq_work", "async 2"]

    async def test_call_back_to_waiting_cpu_interrupts_the_caller(self) -> None:
        """A remote f that calls back into the waiting CPU: the IPI interrupts the caller
        (its CPU runs it), in hardirq context; no deadlock while the caller has IRQs on."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            g = Calls()
            smp_call_function_single(1, lambda _i: smp_call_function_single(0, g, "y", 1), None, 1)
            assert [(r["cpu"], r["hardirq"], r["comm"]) for r in g.runs] == [
                (0, True, current().comm)
            ]
            # the nested call is in hardirq context: IRQs disabled, and not in task context
            assert warnings(k) == 2

    async def test_deadlock_is_reported_not_hung(self) -> None:
        """CPU 0 waits with IRQs off for f on CPU 1, and f waits for g on CPU 0: both would
        spin forever. Reported and raised (a panic, from f's hardirq), never a hang."""
        k = Kernel(nr_cpus=2, hz=250)
        ran: list[int] = []

        def g(_info: object) -> None:
            ran.append(smp_processor_id())

        async def boot_and_call() -> None:
            async with k:
                local_irq_disable()
                smp_call_function_single(1, lambda _i: smp_call_function_single(0, g, 0, 1), 0, 1)

        with pytest.raises(KernelPanic) as info:
            await boot_and_call()
        assert isinstance(info.value.__cause__, KernelBug)
        assert ran == []
        assert (
            logged(
                k,
                "kdefer: smp_call_function_single(): CPU 1 waits for CPU 0 to run g(), but "
                "CPU 0 has interrupts disabled further down this call stack",
            )
            == 1
        )
        assert logged(k, "pending on CPU 0; dropped") == 0  # the call was taken back

    async def test_async_call_to_irqs_off_cpu_waits_for_enable(self) -> None:
        """wait=0 to a CPU whose interrupts are off: held until they are enabled there."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            g = Calls()
            order: list[str] = []
            local_irq_disable()
            smp_call_function_single(1, lambda _i: smp_call_function_single(0, g, 0, 0), 0, 1)
            order.append(f"before enable: {len(g.runs)}")
            local_irq_enable()
            order.append(f"after enable: {len(g.runs)}")
            assert order == ["before enable: 0", "after enable: 1"]
            assert (g.runs[0]["cpu"], g.runs[0]["hardirq"]) == (0, True)
            assert cal(k) == [1, 1]

    async def test_exception_in_remote_function_panics(self) -> None:
        """An exception in a remote function is an exception in interrupt: a panic."""
        k = Kernel(nr_cpus=2, hz=250)

        def boom(_info: object) -> None:
            raise RuntimeError("boom")

        with pytest.raises(KernelPanic) as info:
            async with k:
                smp_call_function_single(1, boom, None, 1)
        assert isinstance(info.value.__cause__, RuntimeError)

    async def test_exception_in_local_function_propagates(self) -> None:
        """The local run is the caller's context: its exception propagates; IRQs and
        preemption are as before."""
        async with Kernel(nr_cpus=2, hz=250):

            def boom(_info: object) -> None:
                raise RuntimeError("boom")

            with pytest.raises(RuntimeError, match="boom"):
                smp_call_function_single(0, boom, None, 1)
            assert (irqs_disabled(), preempt_count()) == (False, 0)


# --- many CPUs: IPI-06 .. IPI-10 -------------------------------------------------------------


class TestMany:
    async def test_smp_call_function_other_cpus(self) -> None:
        """IPI-06: smp_call_function(f, x, 1) on CPU 0 → once on 1, 2, 3, not 0; None."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            assert smp_call_function(f, "x", 1) is None  # type: ignore[func-returns-value]
            assert f.cpus == [1, 2, 3]
            assert all(r["hardirq"] for r in f.runs)
            assert cal(k) == [0, 1, 1, 1]
            assert (warnings(k), preempt_count()) == (0, 0)

    async def test_on_each_cpu(self) -> None:
        """IPI-07: on_each_cpu(f, x, 1) → once on each of 0-3; CPU 0's run has
        in_hardirq()=F, irqs_disabled()=T."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            on_each_cpu(f, "x", 1)
            assert f.cpus == [0, 1, 2, 3]
            local = [r for r in f.runs if r["cpu"] == 0]
            assert [(r["hardirq"], r["irqs_disabled"]) for r in local] == [(False, True)]
            assert all(r["hardirq"] for r in f.runs if r["cpu"] != 0)
            assert cal(k) == [0, 1, 1, 1]
            assert warnings(k) == 0

    async def test_masks(self) -> None:
        """IPI-08: on_each_cpu_mask([0, 2]) → 0, 2; smp_call_function_many([0, 1]) → 1 only;
        a 7 in a mask is ignored."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            on_each_cpu_mask([0, 2], f, None, 1)
            assert f.cpus == [0, 2]
            g = Calls()
            cpu = get_cpu()
            smp_call_function_many([cpu, 1], g, None, 1)
            put_cpu()
            assert g.cpus == [1]
            h = Calls()
            preempt_disable()
            smp_call_function_many(iter([7, 3, 3]), h, None, 1)
            preempt_enable()
            on_each_cpu_mask({7, 0}, h, None, 1)
            assert h.cpus == [0, 3]
            assert warnings(k) == 0

    async def test_many_preemptible_warns(self) -> None:
        """smp_call_function_many() with preemption enabled: lockdep's WARN, once; it runs."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            smp_call_function_many([1], f, None, 1)
            smp_call_function_many([2], f, None, 1)
            assert f.cpus == [1, 2]
            assert warnings(k) == 1

    async def test_many_paths_warn_with_irqs_disabled(self) -> None:
        """The many/on_each_cpu paths warn once with IRQs disabled (lockdep's assertion)."""
        async with Kernel(nr_cpus=4, hz=250) as k:
            f = Calls()
            local_irq_disable()
            try:
                on_each_cpu(f, None, 1)
                smp_call_function(f, None, 1)
            finally:
                local_irq_enable()
            assert f.cpus == [0, 1, 1, 2, 2, 3, 3]
            assert warnings(k) == 1

    async def test_cond(self) -> None:
        """IPI-09: cond true only for odd CPUs → f on 1 and 3; cond called once per online CPU
        (this one first), in the caller's context with preempt_count() >= 1, before any f."""
        async with Kernel(nr_cpus=4, hz=250):
            seen: list[tuple[int, str, int, bool, int]] = []
            f = Calls()

            def cond(cpu: int, info: object) -> bool:
                seen.append((cpu, current().comm, preempt_count(), in_hardirq(), len(f.runs)))
                return cpu % 2 == 1

            on_each_cpu_cond(cond, f, "x", 1)
            assert f.cpus == [1, 3]
            me = current().comm
            assert [s[0] for s in seen] == [0, 1, 2, 3]
            assert all(s[1] == me and s[2] >= 1 and not s[3] and s[4] == 0 for s in seen)

    async def test_tasklet_scheduled_by_f_runs_on_target(self) -> None:
        """IPI-10: f schedules a tasklet, called on CPU 1 from CPU 0 → the tasklet runs on
        CPU 1 at the IPI's irq_exit (before the call returns), never on CPU 0."""
        async with Kernel(nr_cpus=4, hz=250):
            ran: list[tuple[int, bool, str]] = []
            t = Tasklet(lambda _t: ran.append((smp_processor_id(), in_serving_softirq(), "t")))
            smp_call_function_single(1, lambda _i: tasklet_schedule(t), None, 1)
            assert ran == [(1, True, "t")]

    async def test_softirq_raised_by_f_runs_at_ipi_exit(self) -> None:
        """A softirq f raises on the target runs there, at the IPI's irq_exit."""
        async with Kernel(nr_cpus=4, hz=250):
            ran: list[tuple[int, str]] = []
            open_softirq(NET_RX_SOFTIRQ, lambda: ran.append((smp_processor_id(), "softirq")))

            def f(_info: object) -> None:
                raise_softirq(NET_RX_SOFTIRQ)
                ran.append((smp_processor_id(), "f"))

            on_each_cpu_mask([2], f, None, 0)
            assert ran == [(2, "f"), (2, "softirq")]


# --- arguments -------------------------------------------------------------------------------


async def _async_fn(_info: object) -> None:
    pass


class TestArguments:
    async def test_cpu_must_be_an_int(self) -> None:
        """smp_call_function_single(cpu="1") is a TypeError; nothing runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            f = Calls()
            with pytest.raises(
                TypeError,
                match=r"^smp_call_function_single\(\) expects an int for 'cpu', got str$",
            ):
                smp_call_function_single("1", f, None, 1)  # type: ignore[arg-type]
            assert f.runs == []
            assert cal(k) == [0, 0]

    @pytest.mark.parametrize(
        ("call", "name"),
        [
            (lambda fn: smp_call_function_single(1, fn, None, 1), "smp_call_function_single"),
            (lambda fn: smp_call_function(fn, None, 1), "smp_call_function"),
            (lambda fn: smp_call_function_many([1], fn, None, 1), "smp_call_function_many"),
            (lambda fn: on_each_cpu(fn, None, 1), "on_each_cpu"),
            (lambda fn: on_each_cpu_mask([1], fn, None, 1), "on_each_cpu_mask"),
            (lambda fn: on_each_cpu_cond(lambda c, i: True, fn, None, 1), "on_each_cpu_cond"),
        ],
        ids=lambda v: v if isinstance(v, str) else "",
    )
    async def test_async_function_is_rejected(
        self, call: Callable[[object], object], name: str
    ) -> None:
        """An async def func is a TypeError (it runs in hardirq or with IRQs off)."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            with pytest.raises(
                TypeError,
                match=rf"^{name}\(\): a cross-CPU function runs in atomic context and must be a "
                r"plain function, but .*_async_fn is `async def`",
            ):
                call(_async_fn)
            with pytest.raises(
                TypeError,
                match=rf"^{name}\(\) expects a function callable as func\(info\) for 'func', "
                r"got NoneType$",
            ):
                call(None)
            assert cal(k) == [0, 0]
            assert warnings(k) == 0

    async def test_wait_must_be_an_int(self) -> None:
        """wait is C's int: an int or a bool; anything else is a TypeError."""
        async with Kernel(nr_cpus=2, hz=250):
            f = Calls()
            with pytest.raises(
                TypeError, match=r"^on_each_cpu\(\) expects an int or a bool for 'wait', got str$"
            ):
                on_each_cpu(f, None, "yes")  # type: ignore[arg-type]
            assert f.runs == []
            on_each_cpu(f, None, True)
            assert f.cpus == [0, 1]

    @pytest.mark.parametrize(
        ("mask", "error", "message"),
        [
            (
                None,
                TypeError,
                r"^on_each_cpu_mask\(\) expects an iterable of CPU numbers \(ints\) for 'mask', "
                r"got NoneType$",
            ),
            (
                "01",
                TypeError,
                r"^on_each_cpu_mask\(\) expects an iterable of CPU numbers \(ints\) for 'mask', "
                r"got str$",
            ),
            (
                [0, "1"],
                TypeError,
                r"^on_each_cpu_mask\(\) expects an iterable of CPU numbers \(ints\) for 'mask', "
                r"got str '1' in it$",
            ),
            (
                [0, True],
                TypeError,
                r"^on_each_cpu_mask\(\) expects an iterable of CPU numbers \(ints\) for 'mask', "
                r"got bool True in it$",
            ),
            (
                [0, -1],
                ValueError,
                r"^on_each_cpu_mask\(\) expects an iterable of CPU numbers \(ints >= 0\) for "
                r"'mask', got -1 in it$",
            ),
        ],
    )
    async def test_bad_mask(self, mask: object, error: type[Exception], message: str) -> None:
        """A mask is an iterable of CPU numbers; nothing runs when it is not."""
        async with Kernel(nr_cpus=2, hz=250):
            f = Calls()
            with pytest.raises(error, match=message):
                on_each_cpu_mask(mask, f, None, 1)  # type: ignore[arg-type]
            assert f.runs == []

    async def test_cond_func_checked(self) -> None:
        """cond_func is called as cond_func(cpu, info), in atomic context: plain, 2 args."""
        async with Kernel(nr_cpus=2, hz=250):
            f = Calls()
            with pytest.raises(
                TypeError,
                match=r"^on_each_cpu_cond\(\) expects a function callable as "
                r"cond_func\(cpu, info\) for 'cond_func', but .*<lambda>\(c\) cannot be called "
                r"with 2 positional arguments$",
            ):
                on_each_cpu_cond(lambda c: True, f, None, 1)  # type: ignore[arg-type,misc]
            assert f.runs == []
