"""Perfetto timelines: ``Tracing.write_perfetto`` and ``Tracing.stream_perfetto``.

Every file is read back with a strict parser (``json.loads`` refusing NaN and the infinities)
and checked structurally: each thread track's slices nest, every incoming flow arrow has its
source, and the CPU, ksoftirqd and kworker tracks are named. The ``workqueue:*`` and
``sched:*`` events are fed as records built here when this build does not define them (the
writer finds events by subsystem and name, and fields by name).
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kdefer_async import (
    CLOCK_MONOTONIC,
    HRTIMER_MODE_REL,
    HRTIMER_NORESTART,
    IRQ_HANDLED,
    NET_RX_SOFTIRQ,
    WQ_UNBOUND,
    DelayedWork,
    HrTimer,
    Kernel,
    Tasklet,
    TimerList,
    Work,
    alloc_ordered_workqueue,
    alloc_workqueue,
    call_rcu,
    destroy_workqueue,
    flush_workqueue,
    free_irq,
    hrtimer_setup,
    hrtimer_start,
    local_bh_disable,
    local_bh_enable,
    mod_timer,
    msleep,
    open_softirq,
    queue_delayed_work,
    queue_work,
    queue_work_on,
    raise_softirq,
    request_irq,
    smp_call_function_single,
    system_percpu_wq,
    system_unbound_wq,
    tasklet_disable_nosync,
    tasklet_enable,
    tasklet_hi_schedule,
    tasklet_schedule,
)
from kdefer_async._perfetto import (
    CPU_PID_BASE,
    CPU_TID_BASE,
    KERNEL_PID,
    Converter,
    PerfettoStream,
)
from kdefer_async._trace import (
    TRACE_FLAG_SOFTIRQ,
    TraceEvent,
    TraceRecord,
    _by_key,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio


# -- reading and checking ----------------------------------------------------------------------


def _reject(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def strict(text: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity."""
    return json.loads(text, parse_constant=_reject)


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The events of a trace file (object or bare-array form, plain or gzip)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    doc = strict(raw.decode("utf-8"))
    return doc["traceEvents"] if isinstance(doc, dict) else doc


def ns(us: float) -> int:
    return round(us * 1000)


def check_nesting(events: list[dict[str, Any]]) -> int:
    """Every thread track's slices (X, and B left open) nest; returns how many slices."""
    end_of_trace = max(ns(e["ts"]) + ns(e.get("dur", 0)) for e in events if "ts" in e)
    tracks: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
    for e in events:
        if e["ph"] == "X":
            assert e["dur"] > 0, e
            tracks.setdefault((e["pid"], e["tid"]), []).append(
                (ns(e["ts"]), ns(e["ts"]) + ns(e["dur"]), e["name"])
            )
        elif e["ph"] == "B":
            tracks.setdefault((e["pid"], e["tid"]), []).append(
                (ns(e["ts"]), end_of_trace + 1, e["name"])
            )
        else:
            assert e["ph"] in ("M", "C", "i"), e
    n = 0
    for key, slices in tracks.items():
        stack: list[tuple[int, int, str]] = []
        for start, end, name in sorted(slices, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack:
                assert end <= stack[-1][1], f"{name} overlaps {stack[-1][2]} on {key}"
            stack.append((start, end, name))
            n += 1
    return n


def check_flows(events: list[dict[str, Any]]) -> tuple[int, int]:
    """Every event with ``flow_in`` has a source (``flow_out``, same id) no later than it.
    Returns (arrow ends in, arrow starts)."""
    out: dict[int, list[int]] = {}
    ins: list[tuple[int, int, str]] = []
    for e in events:
        if "bind_id" not in e:
            continue
        assert e["ph"] in ("X", "B"), e
        assert e.get("flow_in") or e.get("flow_out"), e
        if e.get("flow_out"):
            out.setdefault(e["bind_id"], []).append(ns(e["ts"]))
        if e.get("flow_in"):
            ins.append((e["bind_id"], ns(e["ts"]), e["name"]))
    for fid, ts, name in ins:
        assert fid in out, f"the arrow into {name} has no source"
        assert min(out[fid]) <= ts, name
    return len(ins), len(out)


def names(events: list[dict[str, Any]]) -> tuple[dict[int, str], dict[int, str]]:
    """(process names by pid, thread names by tid)."""
    procs = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    threads = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    return procs, threads


def check_named(events: list[dict[str, Any]]) -> None:
    """Every track with events has a thread name and a process name."""
    procs, threads = names(events)
    for e in events:
        if e["ph"] in ("X", "B", "i"):
            assert e["tid"] in threads, e
            assert e["pid"] in procs, e


# -- the workload ------------------------------------------------------------------------------


async def workload(k: Kernel) -> dict[str, Any]:
    """Interrupts, tasklets (one of them held back while disabled), timers, an hrtimer, a
    softirq from task context (ksoftirqd), an IPI, and per-CPU, unbound, ordered,
    max_active-limited and delayed work, some of which sleep."""
    ran: list[str] = []

    def first(t: Tasklet) -> None:
        ran.append("first")

    def second(t: Tasklet) -> None:
        ran.append("second")

    def urgent(t: Tasklet) -> None:
        ran.append("urgent")

    t1, t2, t3 = Tasklet(first), Tasklet(second), Tasklet(urgent)
    tasklet_disable_nosync(t1)

    def handler(irq: int, dev: object) -> int:
        tasklet_schedule(t1)  # disabled: put back at the tail until enabled
        tasklet_schedule(t2)
        tasklet_hi_schedule(t3)
        return IRQ_HANDLED

    assert request_irq(16, handler, 0, "mydev", None) == 0
    k.raise_irq(16)
    open_softirq(NET_RX_SOFTIRQ, lambda: ran.append("net_rx"))
    raise_softirq(NET_RX_SOFTIRQ)  # task context: ksoftirqd runs it
    await msleep(1)
    local_bh_disable()
    raise_softirq(NET_RX_SOFTIRQ)
    local_bh_enable()  # runs it here

    def rcu_cb(head: object) -> None:
        ran.append("rcu")

    call_rcu(object(), rcu_cb)
    timer = TimerList(lambda t: ran.append("timer"))
    mod_timer(timer, k.jiffies + 2)
    hr = HrTimer()

    def hr_fn(t: HrTimer) -> int:
        ran.append("hrtimer")
        return HRTIMER_NORESTART

    hrtimer_setup(hr, hr_fn, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
    hrtimer_start(hr, 3_000_000, HRTIMER_MODE_REL)
    if k.nr_cpus > 1:
        assert smp_call_function_single(1, lambda info: ran.append("ipi"), None, 1) == 0

    async def sleepy(w: Work) -> None:
        await msleep(2)
        ran.append("sleepy")

    def quick(w: Work) -> None:
        ran.append("quick")

    queue_work(system_percpu_wq, Work(sleepy))
    queue_work_on(0, system_percpu_wq, Work(quick))
    queue_work(system_unbound_wq, Work(sleepy))
    ordered = alloc_ordered_workqueue("ordered", 0)
    limited = alloc_workqueue("limited", WQ_UNBOUND, 1)
    assert ordered is not None
    assert limited is not None
    for _ in range(3):
        queue_work(ordered, Work(quick))
        queue_work(limited, Work(sleepy))
    dw = DelayedWork(quick)
    queue_delayed_work(system_percpu_wq, dw, 3)
    await msleep(20)
    tasklet_enable(t1)
    await msleep(20)
    await flush_workqueue(ordered)
    await flush_workqueue(limited)
    await settle()
    await destroy_workqueue(ordered)
    await destroy_workqueue(limited)
    free_irq(16, None)
    return {"ran": ran}


class TestWritePerfetto:
    async def test_plain_and_gzip_files_parse_strictly_and_hold_the_same_events(
        self, tmp_path: Path
    ) -> None:
        """The object form, plain and ``.gz``: strict JSON, the same events in both."""
        async with Kernel(nr_cpus=2, trace=True) as k:
            await workload(k)
            k.tracing.write_perfetto(tmp_path / "t.json")
            k.tracing.write_perfetto(str(tmp_path / "t.json.gz"))
        plain = read_trace(tmp_path / "t.json")
        packed = read_trace(tmp_path / "t.json.gz")
        assert plain == packed
        assert (tmp_path / "t.json.gz").read_bytes()[:2] == b"\x1f\x8b"
        doc = strict((tmp_path / "t.json").read_text())
        assert doc["displayTimeUnit"] == "ns"
        assert doc["metadata"]["nr_cpus"] == 2

    async def test_slices_nest_flows_have_sources_tracks_are_named(self, tmp_path: Path) -> None:
        """The whole workload: nesting, arrows, names, counters."""
        async with Kernel(nr_cpus=2, trace=True) as k:
            result = await workload(k)
            k.tracing.write_perfetto(tmp_path / "t.json")
        assert {"first", "second", "urgent", "timer", "hrtimer", "net_rx", "ipi"} <= set(
            result["ran"]
        )
        events = read_trace(tmp_path / "t.json")
        assert check_nesting(events) > 20
        arrows_in, _arrows_out = check_flows(events)
        assert arrows_in >= 8
        check_named(events)
        procs, threads = names(events)
        assert procs[CPU_PID_BASE] == "CPU 0"
        assert procs[CPU_PID_BASE + 1] == "CPU 1"
        assert procs[KERNEL_PID] == "kernel"
        assert threads[CPU_TID_BASE] == "hardirq"
        assert threads[CPU_TID_BASE + 1] == "softirq"
        assert "ksoftirqd/0" in threads.values()
        assert any(name.startswith("kworker/u") for name in threads.values())
        assert any(name.startswith("kworker/0:") for name in threads.values())
        sort = {
            e["pid"]: e["args"]["sort_index"] for e in events if e["name"] == "process_sort_index"
        }
        assert sort[CPU_PID_BASE] == 0
        assert sort[CPU_PID_BASE + 1] == 1
        by_name = Counter(e["name"] for e in events if e["ph"] == "X")
        for name in ("IRQ (mydev)", "TASKLET", "HI", "TIMER", "hr_fn", "NET_RX", "first"):
            assert by_name[name] >= 1, name
        # the tasklets and timer callbacks sit inside the softirq slice that ran them
        softirq = [e for e in events if e["ph"] == "X" and e["tid"] == CPU_TID_BASE + 1]
        for cb in ("first", "second", "urgent"):
            (inner,) = [e for e in softirq if e["name"] == cb]
            assert any(
                e["name"] in ("TASKLET", "HI")
                and ns(e["ts"]) <= ns(inner["ts"])
                and ns(inner["ts"]) + ns(inner["dur"]) <= ns(e["ts"]) + ns(e["dur"])
                for e in softirq
            ), cb
        counters = [e for e in events if e["ph"] == "C"]
        assert any("softirq_pending" in e["args"] for e in counters)
        # ksoftirqd shows as busy on its own thread while it runs a softirq
        assert by_name["run_ksoftirqd"] >= 1
        # each softirq slice says how its pass was entered
        vias = {e["args"]["via"] for e in softirq if "task" in e["args"]}  # (not the arrow ends)
        assert vias == {"irq_exit", "ksoftirqd", "local_bh_enable"}
        slices = [e for e in softirq if "task" in e["args"]]
        assert all(
            (e["args"]["via"] == "ksoftirqd") == e["args"]["task"].startswith("ksoftirqd/")
            for e in slices
        )
        # the RCU callback sits in its batch, inside the RCU softirq, at the end of the
        # arrow from its call_rcu
        (cb,) = [e for e in events if e["ph"] == "X" and e["name"] == "rcu_cb"]
        (batch,) = [
            e
            for e in events
            if e["name"] == "rcu_do_batch"
            and e["tid"] == cb["tid"]
            and ns(e["ts"]) <= ns(cb["ts"]) <= ns(e["ts"]) + ns(e["dur"])
        ]
        assert batch["args"]["invoked"] == 1
        assert any(
            e["name"] == "RCU"
            and e["tid"] == cb["tid"]
            and ns(e["ts"]) <= ns(batch["ts"])
            and ns(batch["ts"]) + ns(batch["dur"]) <= ns(e["ts"]) + ns(e["dur"])
            for e in events
            if e["ph"] == "X"
        )
        (queued,) = [e for e in events if e["name"] == "call_rcu"]
        assert queued["flow_out"]
        assert cb["flow_in"]
        assert queued["bind_id"] == cb["bind_id"]

    async def test_tasklet_arrows_follow_each_cpu_list(self, tmp_path: Path) -> None:
        """A disabled tasklet goes back to the tail of the list; the arrow into each tasklet
        starts at the raise that put it on the list."""
        async with Kernel(nr_cpus=1, trace="irq") as k:
            await workload(k)
            k.tracing.write_perfetto(tmp_path / "t.json")
        events = read_trace(tmp_path / "t.json")
        sources = {
            e["bind_id"]: e for e in events if e.get("flow_out") and e["name"] == "raise TASKLET"
        }
        raises = sorted(sources.values(), key=lambda e: e["ts"])
        # the first two raises are the handler's: tasklet_schedule(t1), tasklet_schedule(t2)
        first = next(e for e in events if e["ph"] == "X" and e["name"] == "first")
        second = next(e for e in events if e["ph"] == "X" and e["name"] == "second")
        assert sources[second["bind_id"]] is raises[1]
        assert sources[first["bind_id"]] is raises[0]
        assert ns(first["ts"]) > ns(second["ts"])  # it ran once enabled
        requeued = [e for e in events if e["ph"] == "i" and e["args"].get("requeued")]
        assert requeued

    async def test_open_slices_are_begun_not_ended(self, tmp_path: Path) -> None:
        """Written from inside a tasklet: its slice and its softirq's are ``B`` events."""
        path = tmp_path / "open.json"

        def snap(t: Tasklet) -> None:
            k.tracing.write_perfetto(path)

        async with Kernel(nr_cpus=1, trace=True) as k:
            tasklet_schedule(Tasklet(snap))
            await settle()
        events = read_trace(path)
        begun = [e["name"] for e in events if e["ph"] == "B"]
        assert "snap" in begun
        assert "TASKLET" in begun
        assert not [e for e in events if e["ph"] == "E"]
        check_nesting(events)
        check_flows(events)

    async def test_nothing_traced_is_an_empty_valid_trace(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1) as k:
            k.tracing.write_perfetto(tmp_path / "e.json")
        assert read_trace(tmp_path / "e.json") == []

    async def test_a_trace_may_be_written_after_the_kernel_halted(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1, trace="timer") as k:
            mod_timer(TimerList(lambda t: None), k.jiffies + 1)
            await msleep(10)
        k.tracing.write_perfetto(tmp_path / "after.json")
        events = read_trace(tmp_path / "after.json")
        assert check_flows(events)[0] >= 1


class TestStream:
    async def test_stream_from_boot_matches_the_buffers(self, tmp_path: Path) -> None:
        """A stream opened before boot sees every record: its slices and arrows are those of
        write_perfetto; it is closed (strict JSON) when the kernel halts."""
        k = Kernel(nr_cpus=2, trace=True)
        stream = k.tracing.stream_perfetto(tmp_path / "s.json")
        assert isinstance(stream, PerfettoStream)
        assert not stream.closed
        async with k:
            await workload(k)
            assert stream in k.tracing.sinks
            k.tracing.write_perfetto(tmp_path / "w.json")
            seq = k.tracing.records()[-1].seq
        assert stream.closed
        assert stream not in k.tracing.sinks
        streamed = read_trace(tmp_path / "s.json")
        written = read_trace(tmp_path / "w.json")
        assert isinstance(strict((tmp_path / "s.json").read_text()), list)
        check_nesting(streamed)
        check_flows(streamed)
        check_named(streamed)

        def key(e: dict[str, Any]) -> tuple[Any, ...]:
            return (e["ph"], e["name"], e["tid"], e["ts"], e.get("dur"), e.get("bind_id"))

        # every slice write_perfetto closed is in the stream, arrows included (the stream
        # also has what happened after, and closes what write_perfetto saw open)
        closed = [e for e in written if e["ph"] == "X"]
        xs = [e for e in streamed if e["ph"] == "X"]
        assert Counter(map(key, closed)) - Counter(map(key, xs)) == Counter()
        # what write_perfetto saw open ended later (an X in the stream), or was still open when
        # the kernel halted (a B there too: the task on a CPU's sched track at the end)
        begun = {(e["name"], e["tid"], e["ts"]) for e in written if e["ph"] == "B"}
        ended_or_open = {(e["name"], e["tid"], e["ts"]) for e in streamed if e["ph"] in "XB"}
        assert begun <= ended_or_open
        assert seq > 0

    async def test_stream_state_stays_bounded(self, tmp_path: Path) -> None:
        """Over many rounds the stream keeps only what is open or pending, not the events."""
        async with Kernel(nr_cpus=2, trace=True) as k:
            stream = k.tracing.stream_perfetto(tmp_path / "long.json")
            sizes = []
            for _ in range(4):
                for _ in range(200):
                    tasklet_schedule(Tasklet(lambda t: None))
                    mod_timer(TimerList(lambda t: None), k.jiffies + 1)
                    await msleep(1)
                await settle()
                conv = stream._conv
                sizes.append(
                    len(stream._lines)
                    + len(conv._timers)
                    + sum(len(q) for q in conv._tasklets.values())
                    + sum(len(st) for st in conv._stacks.values())
                    + len(conv._raised)
                )
            assert stream.events > 3000
        assert max(sizes) < PerfettoStream.BATCH + 50, sizes
        check_nesting(read_trace(tmp_path / "long.json"))

    async def test_gzip_stream(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1, trace=True) as k:
            with k.tracing.stream_perfetto(str(tmp_path / "s.json.gz")) as stream:
                await workload(k)
            assert stream.closed
        events = read_trace(tmp_path / "s.json.gz")
        check_nesting(events)
        check_flows(events)

    @pytest.mark.parametrize("suffix", [".json", ".json.gz"])
    async def test_a_file_cut_mid_run_is_an_array_of_whole_lines(
        self, tmp_path: Path, suffix: str
    ) -> None:
        """While the kernel runs, what is on disk is ``[`` and whole event lines (the file
        of a program that died); truncated anywhere, its complete lines still parse."""
        path = tmp_path / f"s{suffix}"
        async with Kernel(nr_cpus=2, trace=True) as k:
            stream = k.tracing.stream_perfetto(path)
            for _ in range(3):
                await workload(k)
            stream.flush()
            raw = path.read_bytes()
            assert not stream.closed
        if suffix.endswith(".gz"):
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
        text = raw.decode("utf-8")
        assert text.startswith("[\n")
        assert text.endswith(",\n")
        events = strict("[" + text[2:].rstrip().rstrip(",") + "]")
        assert len(events) == len(text.splitlines()) - 1 > 100
        check_flows(events)
        for cut in (len(text) // 3, len(text) // 2, len(text) - 7):
            lines = text[:cut].split("\n")[1:-1]  # the last piece may be a partial line
            assert [strict(line.rstrip(",")) for line in lines] == events[: len(lines)]

    async def test_stream_opened_with_tasklets_already_scheduled(self, tmp_path: Path) -> None:
        """A stream started mid-run counts the tasklets already on the lists, so the arrows
        of the ones scheduled after them are right."""
        path = tmp_path / "mid.json"
        async with Kernel(nr_cpus=1, trace=True) as k:
            order: list[str] = []

            def early(t: Tasklet) -> None:
                order.append("early")

            def late(t: Tasklet) -> None:
                order.append("late")

            def handler(irq: int, dev: object) -> int:
                tasklet_schedule(Tasklet(early))
                k.tracing.stream_perfetto(path)
                tasklet_schedule(Tasklet(late))
                return IRQ_HANDLED

            request_irq(17, handler, 0, "dev", None)
            k.raise_irq(17)
            await settle()
        assert order == ["early", "late"]
        events = read_trace(path)
        check_flows(events)
        (early_s,) = [e for e in events if e["ph"] == "X" and e["name"] == "early"]
        (late_s,) = [e for e in events if e["ph"] == "X" and e["name"] == "late"]
        assert "bind_id" not in early_s  # its raise came before the stream
        assert late_s.get("flow_in")

    async def test_close_twice_and_after_halt(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1, trace=True) as k:
            stream = k.tracing.stream_perfetto(tmp_path / "c.json")
            stream.close()
            stream.close()
            assert stream.closed
            assert stream not in k.tracing.sinks
            assert "closed" in repr(stream)
        assert strict((tmp_path / "c.json").read_text()) == []

    async def test_a_failing_write_closes_the_stream_and_tracing_goes_on(
        self, tmp_path: Path
    ) -> None:
        class Full(io.StringIO):
            def write(self, s: str) -> int:
                raise OSError(28, "No space left on device")

        async with Kernel(nr_cpus=1, trace=True) as k:
            stream = k.tracing.stream_perfetto(tmp_path / "full.json")
            assert stream._file is not None
            stream._file.close()
            stream._file = Full()
            await workload(k)
            assert stream.closed
            assert isinstance(stream.error, OSError)
            assert stream not in k.tracing.sinks
            assert k.tracing.records()


# -- records built by hand: the workqueue and sched events -------------------------------------

WQ_FIELDS = {
    "workqueue_queue_work": (
        "void * work",
        "void * function",
        "__string workqueue",
        "int req_cpu",
        "int cpu",
    ),
    "workqueue_activate_work": ("void * work", "void * function"),
    "workqueue_execute_start": ("void * work", "void * function"),
    "workqueue_execute_end": ("void * work", "void * function"),
}
SCHED_FIELDS = {
    "sched_switch": (
        "char prev_comm[16]",
        "pid_t prev_pid",
        "int prev_prio",
        "long prev_state",
        "char next_comm[16]",
        "pid_t next_pid",
        "int next_prio",
    ),
    "sched_waking": ("char comm[16]", "pid_t pid", "int prio", "int target_cpu"),
}


def event(system: str, name: str) -> TraceEvent:
    """The event ``system:name`` if this build defines it, else a stand-in with the kernel's
    fields (not registered)."""
    real = _by_key.get(f"{system}:{name}")
    if real is not None:
        return real
    decls = (WQ_FIELDS | SCHED_FIELDS)[name]
    fields = tuple(d.replace("[16]", "").split()[-1] for d in decls)
    return TraceEvent(system, name, fields, "", None, 32, 10_000 + len(name))


class Feeder:
    """Builds records and feeds them to a Converter, collecting its events."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.events: list[dict[str, Any]] = []
        self.conv = Converter(k.tracing, self.events.append)
        self.seq = 0
        self.ts = 1_000_000

    def rec(
        self,
        ev: TraceEvent,
        on_cpu: int,
        pid: int,
        comm: str,
        flags: int = 0,
        /,
        **fields: Any,
    ) -> None:
        self.seq += 1
        self.ts += 1000
        values = tuple(fields[name] for name in ev.fields)
        self.conv.feed(TraceRecord(self.ts, self.seq, on_cpu, pid, comm, flags, 0, ev, values))

    def queue(
        self, work: object, fn: object, wq: str, pid: int = 1, comm: str = "init", flags: int = 0
    ) -> None:
        self.rec(
            event("workqueue", "workqueue_queue_work"),
            0,
            pid,
            comm,
            flags,
            work=work,
            function=fn,
            workqueue=wq,
            req_cpu=8192,
            cpu=0,
        )

    def activate(self, work: object, fn: object, pid: int = 1, comm: str = "init") -> None:
        self.rec(
            event("workqueue", "workqueue_activate_work"), 0, pid, comm, work=work, function=fn
        )

    def start(self, work: object, fn: object, pid: int, comm: str) -> None:
        self.rec(
            event("workqueue", "workqueue_execute_start"), 0, pid, comm, work=work, function=fn
        )

    def end(self, work: object, fn: object, pid: int, comm: str) -> None:
        self.rec(event("workqueue", "workqueue_execute_end"), 0, pid, comm, work=work, function=fn)


def wq_counters(events: list[dict[str, Any]], wq: str) -> list[tuple[int, int]]:
    return [
        (e["args"]["active"], e["args"]["inactive"])
        for e in events
        if e["ph"] == "C" and e["name"] == f"wq {wq}"
    ]


class TestWorkqueueEvents:
    async def test_queue_activate_execute(self) -> None:
        """queue_work -> execute: one arrow; max_active holds the second back: queue_work ->
        activate_work (a step) -> execute; counters follow active and inactive items."""
        async with Kernel(nr_cpus=1) as k:
            f = Feeder(k)
            w1, w2 = Work(lambda w: None), Work(lambda w: None)

            def fn(w: Work) -> None:
                pass

            f.queue(w1, fn, "limited")
            f.activate(w1, fn)  # right away: not a step
            f.queue(w2, fn, "limited")  # held back
            f.start(w1, fn, 9, "kworker/u4:0")
            f.end(w1, fn, 9, "kworker/u4:0")
            f.activate(w2, fn, 9, "kworker/u4:0")  # the slot freed
            f.start(w2, fn, 9, "kworker/u4:0")
            f.end(w2, fn, 9, "kworker/u4:0")
            f.conv.finish()
        ev = f.events
        check_nesting(ev)
        assert check_flows(ev) == (3, 2)
        works = [e for e in ev if e["ph"] == "X" and e["name"] == "fn"]
        assert len(works) == 2
        assert all(e["tid"] == 9 for e in works)
        assert all(e["args"]["workqueue"] == "limited" for e in works)
        steps = [e for e in ev if e["name"] == "activate_work"]
        assert len(steps) == 1
        assert steps[0]["flow_in"]
        assert steps[0]["flow_out"]
        assert steps[0]["bind_id"] == works[1]["bind_id"]
        assert wq_counters(ev, "limited") == [(1, 0), (1, 1), (0, 1), (1, 0), (0, 0)]
        _, threads = names(ev)
        assert threads[9] == "kworker/u4:0"
        kworker_pid = {e["pid"] for e in ev if e.get("tid") == 9 and e["ph"] == "X"}
        assert kworker_pid == {KERNEL_PID}

    async def test_delayed_work_path_is_one_arrow_chain(self) -> None:
        """timer_start of the delayed work's timer -> delayed_work_timer_fn (softirq) ->
        queue_work inside it -> the work: one flow id throughout."""
        async with Kernel(nr_cpus=1, trace="timer") as k:
            dw = DelayedWork(lambda w: None)
            queue_delayed_work(system_percpu_wq, dw, 2)
            await msleep(20)
            f = Feeder(k)
            records = k.tracing.records()
            fn = dw.work.func
            for rec in records:
                f.conv.feed(rec)
                if rec.event.name == "timer_expire_entry" and rec.fields[0] is dw.timer:
                    f.ts = rec.ts
                    f.seq = rec.seq
                    f.queue(dw.work, fn, "events", 0, "swapper/0", TRACE_FLAG_SOFTIRQ)
                    f.activate(dw.work, fn, 0, "swapper/0")
            f.start(dw.work, fn, 9, "kworker/0:1")
            f.end(dw.work, fn, 9, "kworker/0:1")
            f.conv.finish()
        ev = f.events
        check_nesting(ev)
        check_flows(ev)
        (arm,) = [
            e
            for e in ev
            if e["name"] == "timer_start" and e["args"]["function"] == "delayed_work_timer_fn"
        ]
        chain = [e for e in ev if e.get("bind_id") == arm["bind_id"]]
        assert [e["name"] for e in sorted(chain, key=lambda e: e["ts"])] == [
            "timer_start",
            "delayed_work_timer_fn",
            "queue_work",
            "<lambda>",
        ]

    async def test_work_queued_before_the_trace_has_no_arrow(self) -> None:
        async with Kernel(nr_cpus=1) as k:
            f = Feeder(k)
            w = Work(lambda w: None)
            f.start(w, w.func, 9, "kworker/0:0")
            f.end(w, w.func, 9, "kworker/0:0")
            f.activate(w, w.func)
            f.conv.finish()
        check_flows(f.events)
        (x,) = [e for e in f.events if e["ph"] == "X"]
        assert "bind_id" not in x
        assert not [e for e in f.events if e["ph"] == "C"]


class TestSchedEvents:
    async def test_switch_and_waking(self) -> None:
        """sched_switch puts the next task on the CPU's ``running`` track; sched_waking
        starts an arrow to the woken task's next switch in."""
        async with Kernel(nr_cpus=1) as k:
            f = Feeder(k)
            sw = event("sched", "sched_switch")
            k.tracing._enabled.add(sw)  # a stand-in when this build has no sched events
            wk = event("sched", "sched_waking")
            f.rec(
                sw,
                0,
                1,
                "init",
                prev_comm="init",
                prev_pid=1,
                prev_prio=120,
                prev_state=1,
                next_comm="kworker/0:1",
                next_pid=5,
                next_prio=120,
            )
            f.rec(wk, 0, 5, "kworker/0:1", comm="mythread", pid=7, prio=120, target_cpu=0)
            f.rec(
                sw,
                0,
                5,
                "kworker/0:1",
                prev_comm="kworker/0:1",
                prev_pid=5,
                prev_prio=120,
                prev_state=1,
                next_comm="mythread",
                next_pid=7,
                next_prio=120,
            )
            f.rec(
                sw,
                0,
                7,
                "mythread",
                prev_comm="mythread",
                prev_pid=7,
                prev_prio=120,
                prev_state=0,
                next_comm="swapper/0",
                next_pid=0,
                next_prio=120,
            )
            f.conv.finish()
        ev = f.events
        check_nesting(ev)
        assert check_flows(ev) == (1, 1)
        running = [e for e in ev if e["ph"] == "X" and e["tid"] == CPU_TID_BASE + 3]
        assert [e["name"] for e in running] == ["kworker/0:1", "mythread"]
        assert running[1].get("flow_in")
        _, threads = names(ev)
        assert threads[CPU_TID_BASE + 3] == "running"
        assert threads[7] == "mythread"
        assert threads[5] == "kworker/0:1"


class TestUnknownEvents:
    async def test_an_event_the_writer_does_not_know_is_an_instant_with_its_text(self) -> None:
        async with Kernel(nr_cpus=1) as k:
            f = Feeder(k)
            ev = TraceEvent("demo", "thing", ("x",), "x=%d", None, 16, 20_000)
            f.rec(ev, 0, 1, "init", x=5)
            f.conv.finish()
        (inst,) = [e for e in f.events if e["ph"] == "i"]
        assert inst["name"] == "thing"
        assert inst["args"]["text"] == "x=5"


class TestArguments:
    async def test_path_types(self) -> None:
        async with Kernel(nr_cpus=1) as k:
            with pytest.raises(TypeError) as exc:
                k.tracing.write_perfetto(123)  # type: ignore[arg-type]
            assert str(exc.value) == (
                "Tracing.write_perfetto() expects a path (str or os.PathLike) for 'path', got int"
            )
            with pytest.raises(TypeError) as exc:
                k.tracing.stream_perfetto(None)  # type: ignore[arg-type]
            assert str(exc.value) == (
                "Tracing.stream_perfetto() expects a path (str or os.PathLike) for 'path', "
                "got NoneType"
            )
            assert k.tracing.sinks == []

    async def test_unwritable_path_is_an_oserror_naming_it(self, tmp_path: Path) -> None:
        bad = tmp_path / "no" / "such" / "dir" / "t.json"
        async with Kernel(nr_cpus=1, trace=True) as k:
            with pytest.raises(OSError, match=r"t\.json"):
                k.tracing.write_perfetto(bad)
            with pytest.raises(OSError, match=r"t\.json"):
                k.tracing.stream_perfetto(bad)
            assert k.tracing.sinks == []
