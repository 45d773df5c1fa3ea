"""Tracing: the event registry, the tracefs (``k.tracing``), ring buffers, ``trace``/``trace_pipe``.

Exact timestamps are checked on the virtual backends only; elsewhere lines are compared with
their timestamp column masked.
"""

from __future__ import annotations

import re

import anyio
import pytest

from kdefer_async import (
    CLOCK_MONOTONIC,
    HRTIMER_MODE_REL,
    HRTIMER_NORESTART,
    IRQ_HANDLED,
    IRQ_NONE,
    NET_RX_SOFTIRQ,
    NET_TX_SOFTIRQ,
    TIMER_DEFERRABLE,
    TIMER_IRQSAFE,
    HrTimer,
    IrqWork,
    Kernel,
    Tasklet,
    TimerList,
    Tracing,
    Work,
    add_timer_local,
    flush_workqueue,
    hrtimer_setup,
    hrtimer_start,
    irq_work_queue,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    migrate_disable,
    migrate_enable,
    mod_timer,
    msleep,
    on_each_cpu,
    open_softirq,
    preempt_disable,
    preempt_enable,
    queue_work,
    raise_softirq,
    request_irq,
    smp_call_function_single,
    system_wq,
    tasklet_schedule,
    trace_printk,
    tracing_is_on,
    tracing_off,
    tracing_on,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

#: The timestamp column of a trace line.
TS = re.compile(r"(?<= )\s*\d+\.\d{6}(?=: )")


def body(k: Kernel) -> list[str]:
    """The event lines of ``k.tracing.text()``, header dropped, timestamps masked."""
    return [TS.sub("T", line) for line in k.tracing.text().splitlines() if not line.startswith("#")]


class TestSoftirqEvents:
    async def test_entry_exit_from_local_bh_enable(self) -> None:
        """softirq_entry/exit around the action, on the task that re-enabled BHs (``..s1.``:
        serving softirq, one preempt level kept by local_bh_enable)."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_entry,irq:softirq_exit") as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            me = k.init_task
            assert me is not None
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            lines = body(k)
        assert lines == [
            "            init-1       [000] ..s1. T: softirq_entry: vec=3 [action=NET_RX]",
            "            init-1       [000] ..s1. T: softirq_exit: vec=3 [action=NET_RX]",
        ]

    async def test_disabled_records_nothing(self) -> None:
        """With no event enabled nothing is recorded, and the site test is false."""
        async with Kernel(nr_cpus=1) as k:
            assert k._trace_on is False
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            raise_softirq(NET_RX_SOFTIRQ)
            await settle()
            assert k.tracing.records() == []


class TestCore:
    async def test_sink_gets_each_record_as_recorded(self) -> None:
        """A sink sees every record at once, with the documented raw fields."""
        from kdefer_async._trace import SOFTIRQ_ENTRY, SOFTIRQ_EXIT, TraceRecord

        got: list[TraceRecord] = []
        async with Kernel(nr_cpus=2, trace="irq:softirq_entry,irq:softirq_exit") as k:
            k.tracing.sinks.append(got.append)
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            assert [r.event for r in got] == [SOFTIRQ_ENTRY, SOFTIRQ_EXIT]
            rec = got[0]
            assert (rec.cpu, rec.pid, rec.comm) == (0, 1, "init")
            # the vector, and how the pass was entered (the model's, for timelines)
            assert rec.fields == (NET_RX_SOFTIRQ, "local_bh_enable")
            assert got[1].fields == (NET_RX_SOFTIRQ,)
            assert rec.flag_chars == "..s1."
            assert got[1].seq == rec.seq + 1
            assert k.tracing.records() == got

    async def test_sinks_see_every_record_of_the_hot_paths(self) -> None:
        """queue_work and the worker record through their own fast paths: a sink added by
        append, extend or assignment sees each of their records as it is made, in the order
        records() returns them, and a removed sink sees no more."""
        from kdefer_async._trace import TraceRecord

        async def noop(_w: Work) -> None:
            return None

        first: list[TraceRecord] = []
        second: list[TraceRecord] = []
        async with Kernel(nr_cpus=1, trace="workqueue") as k:
            k.tracing.sinks.append(first.append)
            k.tracing.sinks += [second.append]
            for _ in range(3):
                queue_work(system_wq, Work(noop))
            await flush_workqueue(system_wq)
            names = [r.event.name for r in first]
            assert names.count("workqueue_queue_work") == 3
            assert names.count("workqueue_activate_work") == 3
            assert names.count("workqueue_execute_start") == 3
            assert names.count("workqueue_execute_end") == 3
            assert first == second == k.tracing.records()
            k.tracing.sinks.remove(first.append)
            k.tracing.sinks = [second.append]
            queue_work(system_wq, Work(noop))
            assert len(first) == 12
            assert len(second) == 14

    async def test_trace_id_is_stable_and_distinct(self) -> None:
        """Each object gets one id for its life, in the 32-bit hashed-pointer shape."""
        from kdefer_async._trace import trace_id

        async with Kernel(nr_cpus=1) as k:
            a, b = object(), [1]
            ia, ib = trace_id(a), trace_id(b)
            assert ia != ib
            assert trace_id(a) == ia == k.tracing.trace_id(a)
            assert trace_id(b) == ib
            assert 0 <= ia < 2**32


def my_tasklet_fn(t: Tasklet) -> None:
    """A tasklet callback that writes a trace_printk line."""
    trace_printk("tasklet ran %d\n", 5)


#: A static tasklet: ``tasklet=%ps`` prints its variable's name, as kallsyms would.
my_tasklet = Tasklet(my_tasklet_fn)


def tcb(t: TimerList) -> None:
    """A timer callback that does nothing."""


def site_test(k: Kernel) -> bool:
    """What a tracepoint site tests."""
    return k._trace_on


def events(k: Kernel, *names: str) -> list[str]:
    """The masked lines of the events named (all if none)."""
    return [line for line in body(k) if not names or any(f" {n}: " in line for n in names)]


class TestGolden:
    """Each event's line, exactly as the kernel prints it (timestamps masked)."""

    async def test_irq_and_tasklet_events(self) -> None:
        """irq_handler_entry/exit in hardirq (d.h..), the TASKLET raise, the softirq and the
        tasklet at irq exit (..s..), and trace_printk's own line (the caller's name)."""

        def handler(irq: int, dev: object) -> int:
            tasklet_schedule(my_tasklet)
            return IRQ_HANDLED

        async with Kernel(nr_cpus=1, trace="irq") as k:
            request_irq(16, handler, 0, "mydev", None)
            k.raise_irq(16)
            lines = events(k)
        assert lines == [
            "            init-1       [000] d.h.. T: irq_handler_entry: irq=16 name=mydev",
            "            init-1       [000] d.h.. T: softirq_raise: vec=6 [action=TASKLET]",
            "            init-1       [000] d.h.. T: irq_handler_exit: irq=16 ret=handled",
            "            init-1       [000] ..s.. T: softirq_entry: vec=6 [action=TASKLET]",
            "            init-1       [000] ..s.. T: tasklet_entry: tasklet=my_tasklet function=my_tasklet_fn",
            "            init-1       [000] ..s.. T: my_tasklet_fn: tasklet ran 5",
            "            init-1       [000] ..s.. T: tasklet_exit: tasklet=my_tasklet function=my_tasklet_fn",
            "            init-1       [000] ..s.. T: softirq_exit: vec=6 [action=TASKLET]",
        ]

    async def test_unhandled_irq(self) -> None:
        """A handler returning IRQ_NONE prints ``ret=unhandled``."""
        async with Kernel(nr_cpus=1, trace="irq:irq_handler_exit") as k:
            request_irq(17, lambda irq, dev: IRQ_NONE, 0, "other", None)
            k.raise_irq(17)
            assert events(k) == [
                "            init-1       [000] d.h.. T: irq_handler_exit: irq=17 ret=unhandled"
            ]

    async def test_timer_events_and_ordering(self, virtual: bool) -> None:
        """timer_init; timer_start (d..1.: the base lock); no event when mod_timer keeps the
        expiry; timer_cancel then timer_start on a move; at expiry timer_cancel right before
        timer_expire_entry, then timer_expire_exit."""
        if not virtual:
            pytest.skip("exact jiffies need virtual time")
        async with Kernel(nr_cpus=1, hz=250, trace="timer") as k:
            tm = TimerList(tcb)
            j = k.jiffies
            mod_timer(tm, j + 2)
            mod_timer(tm, j + 2)  # same expiry: nothing
            mod_timer(tm, j + 5)
            await msleep(40)
            tid = "%016x" % k.tracing.trace_id(tm)
            lines = [x for x in events(k) if tid in x]
        assert lines == [
            f"            init-1       [000] ..... T: timer_init: timer={tid}",
            f"            init-1       [000] d..1. T: timer_start: timer={tid} function=tcb "
            f"expires={j + 2} [timeout=2] bucket_expiry={j + 3} cpu=0 idx={(j + 3) % 64} flags=",
            f"            init-1       [000] d..1. T: timer_cancel: timer={tid}",
            f"            init-1       [000] d..1. T: timer_start: timer={tid} function=tcb "
            f"expires={j + 5} [timeout=5] bucket_expiry={j + 6} cpu=0 idx={(j + 6) % 64} flags=",
            f"          <idle>-0       [000] d.s1. T: timer_cancel: timer={tid}",
            f"          <idle>-0       [000] ..s.. T: timer_expire_entry: timer={tid} function=tcb "
            f"now={j + 6} baseclk={j + 6}",
            f"          <idle>-0       [000] ..s.. T: timer_expire_exit: timer={tid}",
        ]

    async def test_timer_flags_decoded(self, virtual: bool) -> None:
        """``flags=`` decodes D|P|I; an IRQSAFE callback runs with interrupts off (dNs..)."""
        if not virtual:
            pytest.skip("exact jiffies need virtual time")
        async with Kernel(nr_cpus=1, trace="timer:timer_start,timer:timer_expire_entry") as k:
            tm = TimerList(tcb, TIMER_DEFERRABLE | TIMER_IRQSAFE)
            add_timer_local_at(tm, k.jiffies + 1)
            await msleep(20)
            k.raise_irq(20)  # a deferrable timer runs when the CPU is awake anyway
            tid = "%016x" % k.tracing.trace_id(tm)
            lines = [x for x in events(k) if tid in x]
        assert lines[0].endswith("flags=D|P|I")
        # init, woken by its msleep timer earlier in the same pass, is due to preempt the idle
        # task (``N``); the IRQSAFE callback runs with interrupts off (``d``)
        assert " dNs.. T: timer_expire_entry: " in lines[1]

    async def test_hrtimer_events(self, virtual: bool) -> None:
        """hrtimer_init, hrtimer_start (mode=REL), and at expiry hrtimer_cancel right before
        hrtimer_expire_entry (hardirq), then hrtimer_expire_exit."""
        if not virtual:
            pytest.skip("exact ktime needs virtual time")
        async with (
            Kernel(nr_cpus=1, trace="timer:hrtimer_*")
            if False
            else Kernel(
                nr_cpus=1,
                trace="hrtimer_init,hrtimer_start,hrtimer_expire_entry,hrtimer_expire_exit,"
                "hrtimer_cancel",
            ) as k
        ):
            hr = HrTimer()
            hrtimer_setup(hr, hrcb, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
            hrtimer_start(hr, 1_000_000, HRTIMER_MODE_REL)
            await msleep(10)
            lines = events(k)
            hid = "%016x" % k.tracing.trace_id(hr)
        assert lines == [
            f"            init-1       [000] ..... T: hrtimer_init: hrtimer={hid} "
            "clockid=CLOCK_MONOTONIC mode=REL",
            f"            init-1       [000] d..1. T: hrtimer_start: hrtimer={hid} function=hrcb "
            "expires=1000000 softexpires=1000000 mode=REL",
            f"          <idle>-0       [000] d.h1. T: hrtimer_cancel: hrtimer={hid}",
            f"          <idle>-0       [000] d.h.. T: hrtimer_expire_entry: hrtimer={hid} "
            "function=hrcb now=1000000",
            f"          <idle>-0       [000] d.h.. T: hrtimer_expire_exit: hrtimer={hid}",
        ]

    async def test_cross_cpu_call_events(self) -> None:
        """csd_queue_cpu and ipi_send_cpu on the caller (preempt depth 1: get_cpu); the
        target runs call_function_single_entry, csd_function_entry/exit in hardirq."""
        async with Kernel(nr_cpus=2, trace="csd,ipi,irq_vectors") as k:
            smp_call_function_single(1, xfn, None, 1)
            lines = events(k)
            lines = [re.sub(r"[0-9a-f]{16}", "ID", x) for x in lines]
            lines = [re.sub(r"\+0x0/0x[0-9a-f]+", "+OFF", x) for x in lines]
        assert lines == [
            "            init-1       [000] ...1. T: csd_queue_cpu: cpu=1 "
            "callsite=smp_call_function_single+OFF func=xfn csd=ID",
            "            init-1       [000] ...1. T: ipi_send_cpu: cpu=1 "
            "callsite=smp_call_function_single+OFF callback=call_function_interrupt+OFF",
            "          <idle>-0       [001] d.h.. T: call_function_single_entry: vector=251",
            "          <idle>-0       [001] d.h.. T: csd_function_entry: func=xfn, csd=ID",
            "          <idle>-0       [001] d.h.. T: csd_function_exit: func=xfn, csd=ID",
            "          <idle>-0       [001] d.h.. T: call_function_single_exit: vector=251",
        ]

    async def test_ipi_send_cpumask_and_irq_work(self) -> None:
        """Two targets: one ipi_send_cpumask (``%*pb``) and call_function_entry; a local
        irq_work runs in irq_work_entry/exit."""
        async with Kernel(nr_cpus=3, trace="ipi,irq_vectors") as k:
            on_each_cpu(xfn, None, 1)
            irq_work_queue(IrqWork(lambda w: None))
            lines = [re.sub(r"\+0x0/0x[0-9a-f]+", "+OFF", x) for x in events(k)]
        assert lines[0] == (
            "            init-1       [000] ...1. T: ipi_send_cpumask: cpumask=6 "
            "callsite=_many_cond+OFF callback=call_function_interrupt+OFF"
        )
        assert "[001] d.h.. T: call_function_entry: vector=252" in lines[1]
        exits = [x for x in lines if " call_function_exit: " in x]
        assert [x.split("] ")[1] for x in exits] == ["d.h.. T: call_function_exit: vector=252"] * 2
        assert {x.split("[")[1][:3] for x in exits} == {"001", "002"}
        assert lines[-2:] == [
            "            init-1       [000] d.h.. T: irq_work_entry: vector=246",
            "            init-1       [000] d.h.. T: irq_work_exit: vector=246",
        ]

    async def test_local_timer_vector(self) -> None:
        """The tick is the local APIC timer interrupt: local_timer_entry/exit around it, in
        hardirq on the task it interrupted (the idle task while init sleeps)."""
        async with Kernel(nr_cpus=1, hz=1000, trace="irq_vectors:local_timer_entry") as k:
            k.tracing.set_event("irq_vectors:local_timer_exit")
            await msleep(3)
            lines = events(k)
        assert lines[-2:] == [  # the tick that ended the sleep
            "          <idle>-0       [000] d.h.. T: local_timer_entry: vector=236",
            "          <idle>-0       [000] d.h.. T: local_timer_exit: vector=236",
        ]
        assert len(lines) % 2 == 0

    async def test_exact_timestamps(self, virtual: bool) -> None:
        """On virtual time the timestamp column is ktime in secs.usecs (msleep(20) wakes at
        the tick after its 20 jiffies)."""
        if not virtual:
            pytest.skip("exact stamps need virtual time")
        async with Kernel(nr_cpus=1, hz=1000, trace="irq:softirq_raise") as k:
            await msleep(20)
            raise_softirq(NET_RX_SOFTIRQ)
            line = k.tracing.text().splitlines()[-1]
        assert line.endswith("     0.021000: softirq_raise: vec=3 [action=NET_RX]")


def hrcb(t: HrTimer) -> int:
    """An hrtimer callback that does not restart."""
    return HRTIMER_NORESTART


def xfn(info: object) -> None:
    """A cross-CPU function that does nothing."""


def add_timer_local_at(tm: TimerList, expires: int) -> None:
    """Arm *tm* pinned on this CPU at *expires*."""
    tm.expires = expires
    add_timer_local(tm)


class TestFlags:
    """The five context characters, computed from the context."""

    async def test_bh_disabled_is_b(self) -> None:
        """In a local_bh_disable() section: ``b...``; with IRQs off too: ``D``."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            local_bh_disable()
            raise_softirq(NET_TX_SOFTIRQ)
            flags = [k.tracing.records()[-1].flag_chars]
            local_irq_disable()
            raise_softirq(NET_TX_SOFTIRQ)
            local_irq_enable()
            flags.append(k.tracing.records()[-1].flag_chars)
            local_bh_enable()
        assert flags == ["b....", "D...."]

    async def test_irqs_off_preempt_and_migrate_depth(self) -> None:
        """IRQs off: ``d``; preempt depth and migrate-disable depth in hex."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            preempt_disable()
            preempt_disable()
            migrate_disable()
            local_irq_disable()
            raise_softirq(NET_TX_SOFTIRQ)
            local_irq_enable()
            migrate_enable()
            preempt_enable()
            preempt_enable()
            await settle()
            assert k.tracing.records()[0].flag_chars == "d..21"


class TestSetEvent:
    async def test_specs(self) -> None:
        """subsystem, subsystem:event, subsystem:*, bare event names, *:*, and ``!``."""
        async with Kernel(nr_cpus=1) as k:
            tr = k.tracing
            assert "irq:softirq_entry" in tr.available_events()
            tr.set_event("timer")
            assert all(e.startswith("timer:") for e in tr.enabled_events())
            assert "timer:hrtimer_start" in tr.enabled_events()
            tr.set_event("!timer:timer_start")
            assert "timer:timer_start" not in tr.enabled_events()
            tr.clear_events()
            assert tr.enabled_events() == []
            assert not site_test(k)
            tr.set_event("softirq_entry")
            assert tr.enabled_events() == ["irq:softirq_entry"]
            assert site_test(k)
            tr.set_event("irq:*")
            assert set(tr.enabled_events()) >= {"irq:tasklet_entry", "irq:softirq_raise"}
            tr.set_event("*:*")
            assert tr.enabled_events() == tr.available_events()
            tr.set_event("!*:*")
            assert tr.enabled_events() == []

    async def test_unknown_names_close_matches_and_changes_nothing(self) -> None:
        """A spec naming nothing is a ValueError with close matches; nothing is enabled."""
        async with Kernel(nr_cpus=1) as k:
            with pytest.raises(ValueError, match="did you mean irq:softirq_entry"):
                k.tracing.set_event("irq:softirq_entyr")
            with pytest.raises(ValueError, match="no such event or subsystem"):
                k.tracing.set_event("nosuchthing")
            assert k.tracing.enabled_events() == []

    async def test_tracing_off_stops_recording(self) -> None:
        """tracing_off(): nothing recorded, the buffers stay; tracing_on() resumes."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            raise_softirq(NET_TX_SOFTIRQ)
            tracing_off()
            assert not tracing_is_on()
            assert k._trace_on is False
            raise_softirq(NET_TX_SOFTIRQ)
            assert trace_printk("x\n") == 0
            tracing_on()
            raise_softirq(NET_TX_SOFTIRQ)
            assert tracing_is_on()
            assert len(k.tracing.records()) == 2

    async def test_switched_on_inside_a_tasklet_from_the_next_pass(self) -> None:
        """A pass of tasklets entered with tracing off has no tracepoints (a static key read
        once): a tasklet that switches tracing on makes the next pass traced, not the rest of
        its own; switched off inside a traced tasklet, it records nothing more, not even that
        tasklet's exit."""
        async with Kernel(nr_cpus=1, trace="irq:tasklet_entry,irq:tasklet_exit") as k:
            names: list[str] = []

            def switch_on(t: Tasklet) -> None:
                tracing_on()

            def after(t: Tasklet) -> None:
                names.append("after")

            def switch_off(t: Tasklet) -> None:
                tracing_off()

            tracing_off()
            first, second = Tasklet(switch_on), Tasklet(after)
            local_bh_disable()
            tasklet_schedule(first)
            tasklet_schedule(second)
            local_bh_enable()
            assert names == ["after"]
            assert k.tracing.records() == []
            third = Tasklet(switch_off)
            local_bh_disable()
            tasklet_schedule(third)
            local_bh_enable()
            recs = k.tracing.records()
        assert [(r.event.name, r.fields[1]) for r in recs] == [("tasklet_entry", switch_off)]


class TestRingBuffer:
    async def test_overwrite_counts_and_header(self) -> None:
        """A full buffer overwrites its oldest events: the header shows in-buffer/written."""
        async with Kernel(nr_cpus=2, trace="irq:softirq_raise") as k:
            k.tracing.buffer_size_kb = 1
            for _ in range(200):
                raise_softirq(NET_TX_SOFTIRQ)
            recs = k.tracing.records()
            per = recs[0].event.size
            assert len(recs) == 1024 // per
            header = k.tracing.text().splitlines()[2]
            assert header == (f"# entries-in-buffer/entries-written: {len(recs)}/200   #P:2")
            k.tracing.clear()
            assert k.tracing.records() == []
            assert "entries-written: 0/0 " in k.tracing.text()

    async def test_pipe_reports_lost_events(self) -> None:
        """trace_pipe prints ``CPU:N [LOST M EVENTS]`` before the first surviving event."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            k.tracing.buffer_size_kb = 1
            for _ in range(100):
                raise_softirq(NET_TX_SOFTIRQ)
            kept = len(k.tracing.records())
            pipe = k.tracing.pipe()
            first = await pipe.__anext__()
            second = await pipe.__anext__()
        assert first == f"CPU:0 [LOST {100 - kept} EVENTS]"
        assert second.endswith("softirq_raise: vec=2 [action=NET_TX]")

    async def test_mixed_sizes_keep_the_newest_that_fit(self) -> None:
        """Records of different sizes, written in bursts larger and smaller than the buffer,
        on two CPUs: after each burst the buffer holds exactly the newest records whose sizes
        fit in buffer_size_kb, and every older one is counted as overwritten."""
        async with Kernel(nr_cpus=2, trace="irq:softirq_raise,workqueue") as k:
            k.tracing.buffer_size_kb = 2
            limit = 2 * 1024
            written: list[str] = []  # this CPU's events, oldest first

            async def noop(_w: Work) -> None:
                return None

            for burst in (10, 300, 7, 1000, 1, 50):
                for i in range(burst):
                    if i % 3:
                        raise_softirq(NET_TX_SOFTIRQ)
                        written.append("softirq_raise")
                    else:
                        queue_work(system_wq, Work(noop))  # queue + activate: larger ones
                        written.extend(["workqueue_queue_work", "workqueue_activate_work"])
                recs = [r for r in k.tracing.records() if r.cpu == 0]
                sizes = {r.event.name: r.event.size for r in recs}
                kept, total = 0, 0
                for name in reversed(written):
                    if name not in sizes or total + sizes[name] > limit:
                        break
                    total += sizes[name]
                    kept += 1
                assert [r.event.name for r in recs] == written[len(written) - kept :]
                header = k.tracing.text().splitlines()[2]
                assert f": {kept}/{len(written)} " in header
                await flush_workqueue(system_wq)
                k.tracing.clear()
                written.clear()

    async def test_reads_between_writes_see_the_same_buffer(self) -> None:
        """Reading (records, text, a resize) between writes changes nothing about which
        records are kept: the same writes read once or after every record give one trace."""

        async def run(read_each: bool) -> tuple[list[tuple[str, int]], str]:
            async with Kernel(nr_cpus=1, trace="irq:softirq_raise,irq:softirq_entry") as k:
                k.tracing.buffer_size_kb = 1
                for i in range(400):
                    raise_softirq(NET_TX_SOFTIRQ if i % 2 else NET_RX_SOFTIRQ)
                    if read_each:
                        k.tracing.records()
                recs = [(r.event.name, r.fields[0]) for r in k.tracing.records()]
                return recs, k.tracing.text().splitlines()[2]

        assert await run(False) == await run(True)

    async def test_growing_the_buffer_brings_nothing_back(self) -> None:
        """Records overwritten under the old size stay overwritten when the buffer grows, and
        the pipe reports them lost."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            k.tracing.buffer_size_kb = 1
            for _ in range(200):
                raise_softirq(NET_TX_SOFTIRQ)
            k.tracing.buffer_size_kb = 64
            kept = len(k.tracing.records())
            assert kept == 1024 // k.tracing.records()[0].event.size
            assert f": {kept}/200 " in k.tracing.text().splitlines()[2]
            first = await k.tracing.pipe().__anext__()
        assert first == f"CPU:0 [LOST {200 - kept} EVENTS]"

    async def test_shrinking_the_buffer_overwrites_the_oldest(self) -> None:
        """A smaller buffer_size_kb drops the oldest records and counts them."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            for _ in range(300):
                raise_softirq(NET_TX_SOFTIRQ)
            assert len(k.tracing.records()) == 300
            k.tracing.buffer_size_kb = 1
            kept = len(k.tracing.records())
            assert kept == 1024 // k.tracing.records()[0].event.size
            assert f": {kept}/300 " in k.tracing.text().splitlines()[2]


class TestPipe:
    async def test_consumes_and_waits(self) -> None:
        """pipe() consumes what it returns, waits while empty, and a reader that stops early
        leaves the rest in the buffer."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            raise_softirq(NET_TX_SOFTIRQ)
            raise_softirq(NET_RX_SOFTIRQ)
            got: list[str] = []
            async for line in k.tracing.pipe():
                got.append(line)
                break
            assert len(got) == 1
            assert "NET_TX" in got[0]
            assert len(k.tracing.records()) == 1

            async def later() -> None:
                await msleep(10)
                k.tracing.set_event("irq:irq_handler_entry")
                k.raise_irq(30)

            pipe = k.tracing.pipe()
            assert "NET_RX" in await pipe.__anext__()
            k.tracing.clear_events()
            request_irq(30, lambda irq, dev: IRQ_HANDLED, 0, "later", None)
            async with anyio.create_task_group() as tg:
                tg.start_soon(later)
                line = await pipe.__anext__()
            assert line.endswith("irq_handler_entry: irq=30 name=later")
            tracing_off()
            with pytest.raises(StopAsyncIteration):
                await pipe.__anext__()

    async def test_ends_when_kernel_halts(self) -> None:
        """A reader waiting when the kernel halts sees the end."""
        got: list[str] = []

        async def reader(k: Kernel) -> None:
            got.extend([line async for line in k.tracing.pipe()])

        async with (
            anyio.create_task_group() as tg,
            Kernel(nr_cpus=1, trace="irq:softirq_raise") as k,
        ):
            tg.start_soon(reader, k)
            await settle()
            raise_softirq(NET_TX_SOFTIRQ)
            await settle()
        assert len(got) == 1


class TestArguments:
    async def test_set_event(self) -> None:
        """set_event() takes a str spec."""
        async with Kernel(nr_cpus=1) as k:
            with pytest.raises(
                TypeError, match=r"^Tracing.set_event\(\) expects a str for 'spec', got int$"
            ):
                k.tracing.set_event(1)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=r"^Tracing.set_event\(\) expects an event spec"):
                k.tracing.set_event("")

    async def test_buffer_size_kb(self) -> None:
        """buffer_size_kb must be an int >= 1."""
        async with Kernel(nr_cpus=1) as k:
            for bad in (0, -1):
                with pytest.raises(
                    ValueError,
                    match=rf"^Tracing.buffer_size_kb\(\) expects a size in KiB >= 1 for 'kb', got {bad}$",
                ):
                    k.tracing.buffer_size_kb = bad
            with pytest.raises(TypeError, match=r"expects an int for 'kb', got str"):
                k.tracing.buffer_size_kb = "1"  # type: ignore[assignment]
            assert k.tracing.buffer_size_kb == 1408

    async def test_trace_printk(self) -> None:
        """trace_printk() checks its format and its arguments."""
        async with Kernel(nr_cpus=1):
            with pytest.raises(TypeError, match=r"^trace_printk\(\) expects a str for 'fmt'"):
                trace_printk(None)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"^trace_printk\(\) expects 1 argument"):
                trace_printk("%d\n")

    def test_kernel_trace_option(self) -> None:
        """Kernel(trace=...) is a bool or a spec; an unknown one is rejected at once."""
        with pytest.raises(TypeError, match=r"^Kernel\(\) expects a bool or an event spec str"):
            Kernel(trace=1)  # type: ignore[arg-type]
        with pytest.raises(
            ValueError, match=r"^Kernel\(\) expects an event spec naming an event for 'trace'"
        ):
            Kernel(trace="irq,bogus")
        k = Kernel(trace="irq,!irq:softirq_raise")
        assert "irq:softirq_raise" not in k.tracing.enabled_events()
        assert "irq:softirq_entry" in k.tracing.enabled_events()
        assert Kernel(trace=True).tracing.enabled_events() == k.tracing.available_events()

    def test_tracing_constructor(self) -> None:
        """Tracing() takes a Kernel."""
        with pytest.raises(
            TypeError, match=r"^Tracing\(\) expects a Kernel for 'kernel', got NoneType$"
        ):
            Tracing(None)  # type: ignore[arg-type]
