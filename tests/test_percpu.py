"""Per-CPU data: one copy per CPU, this_cpu_* on the running CPU, get_cpu_var counting
preemption, the CPU iterators (kernel-semantics-2 §9, behaviours PC-01 … PC-06).

PC-02 needs ``Kernel(debug_preempt=True)`` (``CONFIG_DEBUG_PREEMPT``), as in the kernel.
"""

from __future__ import annotations

import pytest

from kdefer_async import (
    DEFINE_PER_CPU,
    HI_SOFTIRQ,
    Kernel,
    PerCpu,
    PerCpuInt,
    SpinLock,
    alloc_percpu,
    cpu_online,
    current,
    for_each_online_cpu,
    for_each_possible_cpu,
    free_percpu,
    get_cpu_var,
    local_irq_disable,
    local_irq_enable,
    num_possible_cpus,
    open_softirq,
    per_cpu,
    per_cpu_ptr,
    preempt_count,
    preempt_disable,
    preempt_enable,
    put_cpu_var,
    raise_softirq,
    request_irq,
    smp_processor_id,
    spin_lock,
    spin_unlock,
    this_cpu_add,
    this_cpu_dec,
    this_cpu_inc,
    this_cpu_ptr,
    this_cpu_read,
    this_cpu_write,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio


class TestCopies:
    async def test_each_cpu_has_its_own_copy(self) -> None:
        """PC-01. Four CPUs, four independent copies: changing CPU 2's changes no other, and
        per_cpu_ptr() is the same object as per_cpu()."""
        counter = DEFINE_PER_CPU(lambda: 0)
        async with Kernel(nr_cpus=4):
            per_cpu(counter, 2).value = 7
            assert [per_cpu(counter, c).value for c in range(4)] == [0, 0, 7, 0]
            assert per_cpu_ptr(counter, 2) is per_cpu(counter, 2)
            assert len({id(per_cpu(counter, c)) for c in range(4)}) == 4

    async def test_object_copies_are_fresh_factory_results(self) -> None:
        """PC-06. alloc_percpu(f): each copy is a fresh f(); an object copy is the object."""
        made: list[list[int]] = []

        def factory() -> list[int]:
            made.append([])
            return made[-1]

        lists = alloc_percpu(factory)
        async with Kernel(nr_cpus=3):
            copies = [per_cpu(lists, c) for c in range(3)]
            assert copies == made
            assert len(made) == 3
            per_cpu(lists, 1).append(5)
            assert [per_cpu(lists, c) for c in range(3)] == [[], [5], []]

    async def test_int_copies_live_in_holders(self) -> None:
        """An int copy is a PerCpuInt holder whose .value is the CPU's value."""
        v = DEFINE_PER_CPU(int)
        async with Kernel(nr_cpus=2):
            holder = per_cpu(v, 0)
            assert type(holder) is PerCpuInt
            assert holder.value == 0
            holder.value += 3
            assert per_cpu(v, 0).value == 3

    async def test_each_kernel_gets_fresh_copies(self) -> None:
        """A variable defined at import time starts from its factory in every kernel, as static
        per-CPU data is fresh at each boot."""
        v = DEFINE_PER_CPU(lambda: 1)
        async with Kernel(nr_cpus=2):
            per_cpu(v, 1).value = 9
        async with Kernel(nr_cpus=3):
            assert [per_cpu(v, c).value for c in range(3)] == [1, 1, 1]

    async def test_out_of_range_cpu_and_freed_variable(self) -> None:
        """PC-06. per_cpu(v, 4) on 4 CPUs is an error; any use after free_percpu() is an
        error, and so is a second free_percpu()."""
        v = alloc_percpu(int)
        async with Kernel(nr_cpus=4):
            with pytest.raises(ValueError, match=r"^per_cpu\(\) expects a CPU number from 0 to 3"):
                per_cpu(v, 4)
            free_percpu(v)
            with pytest.raises(ValueError, match=r"^per_cpu\(\) expects a per-CPU variable"):
                per_cpu(v, 0)
            with pytest.raises(ValueError, match=r"^this_cpu_inc\(\) expects a per-CPU"):
                this_cpu_inc(v)
            with pytest.raises(ValueError, match=r"^free_percpu\(\) expects a per-CPU"):
                free_percpu(v)


class TestThisCpu:
    async def test_this_cpu_ops_act_on_the_running_cpu(self) -> None:
        """PC-04. this_cpu_inc/add/dec/write/read in a task act on the task's CPU's copy and
        change nothing else; preempt_count() is untouched."""
        v = DEFINE_PER_CPU(int)
        async with Kernel(nr_cpus=4):
            cpu = smp_processor_id()
            this_cpu_inc(v)
            this_cpu_add(v, 5)
            this_cpu_dec(v)
            assert this_cpu_read(v) == 5
            this_cpu_write(v, 11)
            assert this_cpu_read(v) == 11
            assert [per_cpu(v, c).value for c in range(4)] == [
                11 if c == cpu else 0 for c in range(4)
            ]
            assert preempt_count() == 0
            assert this_cpu_ptr(v) is per_cpu(v, cpu)

    async def test_this_cpu_inc_in_an_interrupt_counts_on_that_cpu(self) -> None:
        """PC-04. this_cpu_inc() in a hardirq handler on CPU 1 changes CPU 1's copy; a reader
        sums the copies."""
        hits = DEFINE_PER_CPU(int)

        def handler(irq: int, dev: object) -> int:
            this_cpu_inc(hits)
            return 1

        async with Kernel(nr_cpus=4) as k:
            request_irq(9, handler, 0, "counter", None)
            k.raise_irq(9, cpu=1)
            k.raise_irq(9, cpu=1)
            k.raise_irq(9, cpu=3)
            assert [per_cpu(hits, c).value for c in range(4)] == [0, 2, 0, 1]
            assert sum(per_cpu(hits, c).value for c in for_each_online_cpu()) == 3

    async def test_this_cpu_in_a_softirq(self) -> None:
        """A softirq counting with this_cpu_inc() counts on the CPU it runs on."""
        seen = DEFINE_PER_CPU(int)
        ran: list[int] = []

        def action() -> None:
            this_cpu_inc(seen)
            ran.append(smp_processor_id())

        async with Kernel(nr_cpus=2):
            open_softirq(HI_SOFTIRQ, action)
            raise_softirq(HI_SOFTIRQ)
            await settle()
            assert ran
            assert per_cpu(seen, ran[0]).value == len(ran)

    async def test_this_cpu_write_replaces_an_object_copy(self) -> None:
        """this_cpu_write() on an object variable replaces this CPU's copy."""
        v = DEFINE_PER_CPU(lambda: "a")
        async with Kernel(nr_cpus=2):
            this_cpu_write(v, "b")
            cpu = smp_processor_id()
            assert this_cpu_read(v) == "b"
            assert per_cpu(v, 1 - cpu) == "a"

    async def test_get_cpu_var_counts_preemption(self) -> None:
        """PC-03. get_cpu_var(v) adds 1 to preempt_count() and returns this CPU's copy;
        put_cpu_var(v) takes it back."""
        v = DEFINE_PER_CPU(int)
        async with Kernel(nr_cpus=2):
            before = preempt_count()
            copy = get_cpu_var(v)
            assert copy is per_cpu(v, smp_processor_id())
            assert preempt_count() == before + 1
            put_cpu_var(v)
            assert preempt_count() == before


class TestCpuIterators:
    async def test_online_and_possible(self) -> None:
        """PC-05. for_each_online_cpu() = for_each_possible_cpu() = [0, 1, 2, 3];
        num_possible_cpus() = 4; cpu_online(4) and cpu_online(-1) are False."""
        async with Kernel(nr_cpus=4):
            assert list(for_each_online_cpu()) == [0, 1, 2, 3]
            assert list(for_each_possible_cpu()) == [0, 1, 2, 3]
            assert num_possible_cpus() == 4
            assert [cpu_online(c) for c in (-1, 0, 3, 4)] == [False, True, True, False]


class TestArguments:
    async def test_bad_factory(self) -> None:
        """An async def factory, or one that needs arguments, is a TypeError naming the call."""

        async def afactory() -> int:
            return 0

        with pytest.raises(
            TypeError, match=r"^DEFINE_PER_CPU\(\): a per-CPU factory .* must be a plain"
        ):
            DEFINE_PER_CPU(afactory)
        with pytest.raises(TypeError, match=r"^alloc_percpu\(\) expects a .*'factory'"):
            alloc_percpu(lambda x: x)  # type: ignore[arg-type,misc]

    async def test_bad_var_and_values(self) -> None:
        """A non-PerCpu var, a non-int cpu or n, a str into an int copy: exact messages, and
        nothing changed."""
        v = DEFINE_PER_CPU(int)
        async with Kernel(nr_cpus=2):
            with pytest.raises(TypeError) as info:
                this_cpu_inc(None)  # type: ignore[arg-type]
            assert str(info.value) == "this_cpu_inc() expects a PerCpu for 'var', got NoneType"
            with pytest.raises(TypeError) as info:
                per_cpu(v, "0")  # type: ignore[arg-type]
            assert str(info.value) == "per_cpu() expects an int for 'cpu', got str"
            with pytest.raises(TypeError) as info:
                this_cpu_add(v, 1.5)  # type: ignore[arg-type]
            assert str(info.value) == "this_cpu_add() expects an int for 'n', got float"
            with pytest.raises(TypeError):
                this_cpu_write(v, "x")
            with pytest.raises(ValueError, match=r"^this_cpu_inc\(\) expects a per-CPU "):
                this_cpu_inc(DEFINE_PER_CPU(list))
            with pytest.raises(TypeError):
                cpu_online("1")  # type: ignore[arg-type]
            assert [per_cpu(v, c).value for c in range(2)] == [0, 0]
            assert isinstance(v, PerCpu)


class TestDebugPreempt:
    async def test_this_cpu_ptr_in_preemptible_code_is_reported(self) -> None:
        """PC-02. With debug_preempt, this_cpu_ptr() in a preemptible task prints the
        smp_processor_id() report and its caller line, and still returns this CPU's copy."""
        v = DEFINE_PER_CPU(int)
        async with Kernel(nr_cpus=2, debug_preempt=True) as k:
            me = current()
            copy = this_cpu_ptr(v)
            assert copy is per_cpu(v, me.cpu)
        lines = k.dmesg()
        bug = [ln for ln in lines if "BUG: using smp_processor_id() in preemptible" in ln]
        assert len(bug) == 1
        assert bug[0].endswith(f"in preemptible [00000000] code: {me.comm}/{me.pid}")
        caller = [ln for ln in lines if "caller is " in ln]
        assert len(caller) == 1
        assert "test_this_cpu_ptr_in_preemptible_code_is_reported+" in caller[0]

    async def test_no_report_where_the_task_cannot_migrate(self) -> None:
        """PC-02. No report under get_cpu_var()/preempt_disable(), a spinlock, IRQs off, in a
        hardirq handler, in ksoftirqd (a per-CPU thread), nor without debug_preempt."""
        v = DEFINE_PER_CPU(int)
        lock = SpinLock()
        async with Kernel(nr_cpus=2, debug_preempt=True) as k:
            get_cpu_var(v)
            this_cpu_ptr(v)
            put_cpu_var(v)
            preempt_disable()
            this_cpu_ptr(v)
            preempt_enable()
            spin_lock(lock)
            this_cpu_ptr(v)
            spin_unlock(lock)
            local_irq_disable()
            this_cpu_ptr(v)
            local_irq_enable()
            request_irq(9, lambda irq, dev: this_cpu_ptr(v) and 1, 0, "pc", None)
            k.raise_irq(9)
            seen: list[str] = []

            def action() -> None:
                seen.append(current().comm)
                this_cpu_ptr(v)

            open_softirq(HI_SOFTIRQ, action)
            raise_softirq(HI_SOFTIRQ)  # from task context: ksoftirqd runs it
            await settle()
            assert seen
            assert seen[0].startswith("ksoftirqd/")
        async with Kernel(nr_cpus=2) as k2:
            this_cpu_ptr(v)
        assert not any("BUG" in ln for ln in k.dmesg() + k2.dmesg())
