"""Timelines for ui.perfetto.dev: a kernel's trace records as Chrome/Perfetto JSON.

Field rules:

* ``I``: set at creation, read-only after.
* ``A``: changed only in synchronous code, so atomic with respect to the loop's other tasks.

What it models: Perfetto's own import of a kernel trace (per-CPU "Irq"/"SoftIrq" tracks, workqueue
slices on the kworker's thread), in the JSON trace format, since that format needs no library.
The records are the ring buffers' (:meth:`Tracing.records`, in emission order); nothing here
touches the tracepoints: a :class:`Converter` reads records and emits trace events, the writers
put them in a file. Layout (ids chosen so that no two tracks share one):

* one process per simulated CPU, ``"CPU N"``, pid ``100000 + N``, sort index ``N``, with the
  threads ``hardirq`` (tid ``1000000 + 4N``), ``softirq`` (``+1``), ``swapper/N`` (``+2``: task
  context of the idle task) and ``running`` (``+3``: the task ``sched_switch`` put on the CPU);
* process 2, ``"kernel"``, with one thread per kernel task (``kworker/N:M``, ``ksoftirqd/N``,
  kthreads, irq threads) and process 1, ``"init"``, with the init task and the user tasks; a
  task's tid is its pid (a pid of 100000 or more is shifted to ``2000000 + pid`` so that it
  cannot meet a CPU's ids); names come from ``M`` events, and change when a comm changes;
* a slice per entry/exit pair (``X``), on the track of the context the entry was recorded in:
  hardirq (``IRQ (name)``, the vector handlers, IPI functions, hard hrtimers), softirq (the
  action, with the tasklets, timer callbacks, soft hrtimers and BH work it ran nested inside),
  or the task (work items on their kworker; while ksoftirqd runs a softirq, a ``run_ksoftirqd``
  slice on its thread too). A slice still open when the file is written is a ``B`` without
  ``E``. An exit whose entry is not in the buffers is dropped; an exit that finds slices opened
  after its own entry still open closes them first, so slices always nest;
* flow arrows (v2: ``bind_id`` with ``flow_out``/``flow_in``), one flow id per queueing
  instance: ``queue_work`` -> ``activate_work`` (only when ``max_active`` held the item back)
  -> the work's slice; ``timer_start``/``hrtimer_start`` -> the callback; a delayed work's whole
  path (``timer_start`` -> ``delayed_work_timer_fn`` -> ``queue_work`` -> ... -> the work);
  ``softirq_raise`` -> the softirq that ran it (the first raise of a pending vector: later ones
  coalesce); ``csd_queue_cpu`` -> the function on its CPU; ``sched_waking`` -> the task's next
  ``sched_switch`` in;
* tasklets: the kernel has no tracepoint in ``tasklet_schedule()``; its ``softirq_raise`` of
  ``HI``/``TASKLET`` is the record of scheduling (it is fired once per tasklet added to the
  CPU's list: a tasklet already scheduled does not raise). Each CPU's list is a FIFO, so the
  writer keeps one queue of flow ids per CPU and vector: a raise in task, hardirq or nested
  context appends, a raise by the tasklet action itself (the vector's softirq slice on top of
  the softirq track) is a busy or disabled tasklet put back at the tail, and ``tasklet_entry``
  takes the head. This is exact when the records cover the tasklets' scheduling; a CPU whose
  ring buffer overwrote records gets no tasklet arrows (:meth:`Converter.drop_tasklet_flows`),
  and a stream started while tasklets are scheduled counts them first (:meth:`Converter.seed`);
* counters (``C``, written on change): ``CPU N softirq_pending`` (how many vectors are pending)
  on each CPU process, and ``wq NAME active``/``inactive`` (items counted from their
  ``queue_work`` to their execute end, and those held back by ``max_active``) on process 2;
* instants (``i``, thread-scoped) for the other events (timer_init/cancel, IPIs, coalesced
  raises, ``trace_printk`` lines named by their text, events this writer does not know, with
  their ``TP_printk`` text in ``args``).

Timestamps: ``ts`` in microseconds, to the nanosecond, from the records' clock; a record that
is not later than the one before it (virtual time: many events in one instant) is placed 1 ns
after it, so every record has its own instant and zero-length slices keep their order.
Points that carry an arrow are ``X`` slices of 1 ns.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO

from ._check import bad_type
from ._consts import HI_SOFTIRQ, SOFTIRQ_NAMES, TASKLET_SOFTIRQ
from ._context import _current
from ._trace import (
    BPRINT,
    TRACE_FLAG_HARDIRQ,
    TRACE_FLAG_NMI,
    TRACE_FLAG_SOFTIRQ,
    TraceRecord,
    _symbol,
)

if TYPE_CHECKING:
    from ._trace import Tracing

__all__ = [
    "CPU_PID_BASE",
    "CPU_TID_BASE",
    "HIGH_TID_BASE",
    "INIT_PID",
    "KERNEL_PID",
    "Converter",
    "PerfettoStream",
    "check_path",
    "convert",
    "write_perfetto",
]

#: The pid of CPU N's process is ``CPU_PID_BASE + N``.
CPU_PID_BASE = 100_000
#: CPU N's threads: ``CPU_TID_BASE + 4 * N`` + one of the offsets below.
CPU_TID_BASE = 1_000_000
HARDIRQ_TRACK, SOFTIRQ_TRACK, IDLE_TRACK, RUNNING_TRACK = range(4)
_TRACK_NAMES = ("hardirq", "softirq", "swapper/%d", "running")
#: The grouping processes of the tasks.
INIT_PID = 1
KERNEL_PID = 2
_KERNEL_SORT = 1_000_000
#: Task pids from here on are shifted to ``HIGH_TID_BASE + pid``.
_HIGH_PID = 100_000
HIGH_TID_BASE = 2_000_000
#: Comms of tasks that are kernel threads whether or not they still exist.
_KTHREAD_PREFIXES = (
    "kworker/",
    "ksoftirqd/",
    "irq/",
    "kthreadd",
    "rcu",
    "migration/",
    "cpuhp/",
    "watchdog",
    "khungtaskd",
    "swapper/",
)
#: Flow directions of a slice.
_IN, _OUT, _STEP = 1, 2, 3
#: Arrows from call_rcu() waiting for their callback's slice, at most (the oldest go first)
_RCU_FLOWS_MAX = 65536
_CTX_HARD = TRACE_FLAG_HARDIRQ | TRACE_FLAG_NMI
_TASKLET_VECS = (HI_SOFTIRQ, TASKLET_SOFTIRQ)


def check_path(path: object, func: str) -> str:
    """*path* as a str: a ``str`` or an ``os.PathLike`` of one, else the usual TypeError."""
    if isinstance(path, str):
        return path
    if isinstance(path, os.PathLike):
        fs = os.fspath(path)
        if isinstance(fs, str):
            return fs
    raise bad_type(func, "path", "a path (str or os.PathLike)", path)


def _us(ns: int) -> float:
    return ns / 1000


class _Frame:
    """One open slice on a track."""

    __slots__ = ("args", "cat", "flow", "key", "name", "start")

    def __init__(
        self,
        key: tuple[Any, ...],
        name: str,
        cat: str,
        start: int,
        args: dict[str, Any],
        flow: tuple[int, int] | None,
    ) -> None:
        self.key = key  # I: what the exit names (("softirq", 6), ("work", id)...)
        self.name = name  # I
        self.cat = cat  # I
        self.start = start  # I: ns
        self.args = args  # A: the exit adds its own
        self.flow = flow  # I: (flow id, _IN/_OUT/_STEP)


class _Work:
    """A queued work item between its ``queue_work`` and its execution."""

    __slots__ = ("active", "flow", "wq")

    def __init__(self, flow: int, wq: str) -> None:
        self.flow = flow  # I
        self.wq = wq  # I
        self.active = False  # A: activated (counted active, not inactive)


class Converter:
    """
    Trace records in, Chrome/Perfetto trace events out (the layout of the module docstring).

    Feed it every record in emission order (:meth:`feed`), then :meth:`finish`; each event is
    handed to *emit* as a dict ready for :func:`json.dumps`. Its state is what is open or
    pending (slices, flows, queued items), never the events already emitted, so it runs in
    constant memory over a trace of any length.

    .. versionadded:: 0.2
    """

    def __init__(self, tracing: Tracing, emit: Callable[[dict[str, Any]], None]) -> None:
        self._tracing = tracing  # I
        self._emit = emit  # I
        self._last = -1  # A: the last timestamp given (ns)
        self._next_flow = 0  # A
        self._stacks: dict[int, list[_Frame]] = {}  # A: open slices per tid
        self._names: dict[int, str] = {}  # A: thread names written, per tid
        self._processes: set[int] = set()  # A: process names written
        self._groups: dict[int, int] = {}  # A: task pid -> INIT_PID or KERNEL_PID
        self._pending: dict[int, int] = {}  # A: CPU -> pending softirq mask
        self._raised: dict[tuple[int, int], int] = {}  # A: (cpu, vec) -> flow of first raise
        self._tasklets: dict[tuple[int, int], deque[int | None]] = {}  # A: per-CPU list flows
        self._no_tasklet_flows: set[int] = set()  # A: CPUs without tasklet arrows
        self._timers: dict[tuple[str, int], int] = {}  # A: armed (kind, timer id) -> flow
        self._cancelled: tuple[str, int] | None = None  # A: the timer just cancelled
        self._dwork: dict[int, int] = {}  # A: CPU -> flow of a running delayed_work_timer_fn
        self._works: dict[int, _Work] = {}  # A: work id -> queued item
        self._running: dict[int, str] = {}  # A: work id -> its workqueue, while it runs
        self._wq_counts: dict[str, list[int]] = {}  # A: wq -> [active, inactive]
        self._wq_dirty: dict[str, int] = {}  # A: wq -> ns of a change not written yet
        self._just_queued: int | None = None  # A: the work the last record queued
        self._csd: dict[int, int] = {}  # A: csd id -> flow
        self._wakes: dict[int, int] = {}  # A: pid -> flow of its wake-up
        self._rcu: dict[tuple[int, int], deque[int]] = {}  # A: (cpu, rhp id) -> call_rcu flows
        self._field_pos: dict[tuple[int, str], int] = {}  # A: (event id, field) -> position
        #: A: when a set, the ids of the point events (1 ns arrow ends) emitted, for a reader
        #: that tells them from real slices (a slice may last 1 ns too)
        self.point_ids: set[int] | None = None
        self._handlers: dict[str, Callable[[TraceRecord, int, int], None]] = {
            "irq:irq_handler_entry": self._irq_entry,
            "irq:irq_handler_exit": self._irq_exit,
            "irq:softirq_raise": self._softirq_raise,
            "irq:softirq_entry": self._softirq_entry,
            "irq:softirq_exit": self._softirq_exit,
            "irq:tasklet_entry": self._tasklet_entry,
            "irq:tasklet_exit": self._tasklet_exit,
            "timer:timer_start": self._timer_start,
            "timer:timer_cancel": self._timer_cancel,
            "timer:timer_expire_entry": self._timer_entry,
            "timer:timer_expire_exit": self._timer_exit,
            "timer:hrtimer_start": self._timer_start,
            "timer:hrtimer_cancel": self._timer_cancel,
            "timer:hrtimer_expire_entry": self._timer_entry,
            "timer:hrtimer_expire_exit": self._timer_exit,
            "csd:csd_queue_cpu": self._csd_queue,
            "csd:csd_function_entry": self._csd_entry,
            "csd:csd_function_exit": self._csd_exit,
            "workqueue:workqueue_queue_work": self._queue_work,
            "workqueue:workqueue_activate_work": self._activate_work,
            "workqueue:workqueue_execute_start": self._execute_start,
            "workqueue:workqueue_execute_end": self._execute_end,
            "rcu:rcu_callback": self._rcu_callback,
            "rcu:rcu_batch_start": self._rcu_batch_start,
            "rcu:rcu_invoke_callback": self._rcu_invoke,
            "rcu:rcu_batch_end": self._rcu_batch_end,
            "sched:sched_switch": self._sched_switch,
            "sched:sched_waking": self._sched_wake,
            "sched:sched_wakeup": self._sched_wake,
            "sched:sched_wakeup_new": self._sched_wake,
        }

    # -- set-up ---------------------------------------------------------------------------------

    def seed(self) -> None:
        """Take the kernel's state now as the state before the first record (a stream started
        mid-run): the tasklets already on each CPU's lists, the softirqs already pending."""
        for cpu in getattr(self._tracing._kernel, "cpus", ()):
            n = cpu.nr
            self._tasklets[(n, HI_SOFTIRQ)] = deque([None] * len(cpu.tasklet_hi_vec))
            self._tasklets[(n, TASKLET_SOFTIRQ)] = deque([None] * len(cpu.tasklet_vec))
            self._pending[n] = cpu.pending

    def drop_tasklet_flows(self, cpus: Iterable[int]) -> None:
        """Draw no tasklet arrows for *cpus* (their buffers lost records: the list order is
        not known)."""
        self._no_tasklet_flows.update(cpus)

    # -- tracks ---------------------------------------------------------------------------------

    def _process(self, pid: int, name: str, sort: int) -> None:
        if pid in self._processes:
            return
        self._processes.add(pid)
        emit = self._emit
        emit({"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": name}})
        emit(
            {
                "ph": "M",
                "name": "process_sort_index",
                "pid": pid,
                "tid": pid,
                "args": {"sort_index": sort},
            }
        )

    def cpu_track(self, cpu: int, which: int) -> int:
        """The tid of CPU *cpu*'s track *which* (naming it the first time)."""
        tid = CPU_TID_BASE + 4 * cpu + which
        if tid not in self._names:
            pid = CPU_PID_BASE + cpu
            self._process(pid, f"CPU {cpu}", cpu)
            name = _TRACK_NAMES[which] % cpu if which == IDLE_TRACK else _TRACK_NAMES[which]
            self._names[tid] = name
            self._emit(
                {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}
            )
            self._emit(
                {
                    "ph": "M",
                    "name": "thread_sort_index",
                    "pid": pid,
                    "tid": tid,
                    "args": {"sort_index": which + 1},
                }
            )
        return tid

    def task_track(self, pid: int, comm: str) -> int:
        """The tid of task *pid*'s track (naming it, or renaming it when *comm* changed)."""
        tid = pid if pid < _HIGH_PID else HIGH_TID_BASE + pid
        if self._names.get(tid) != comm:
            group = self._groups.get(pid)
            if group is None:
                group = self._groups[pid] = self._group(pid, comm)
            if group == KERNEL_PID:
                self._process(KERNEL_PID, "kernel", _KERNEL_SORT)
            else:
                self._process(INIT_PID, "init", _KERNEL_SORT + 1)
            self._names[tid] = comm
            self._emit(
                {"ph": "M", "name": "thread_name", "pid": group, "tid": tid, "args": {"name": comm}}
            )
        return tid

    def _group(self, pid: int, comm: str) -> int:
        """The process a task goes in: ``kernel`` for kernel threads, ``init`` otherwise."""
        if pid == 1:
            return INIT_PID
        kernel = self._tracing._kernel
        task = _current.get()
        if task is not None and task.pid == pid and task.kernel is kernel:
            return KERNEL_PID if task.is_kthread else INIT_PID
        live = kernel._tasks.get(pid)
        if live is not None:
            return KERNEL_PID if live.is_kthread else INIT_PID
        if pid == 0 or comm.startswith(_KTHREAD_PREFIXES):
            return KERNEL_PID
        return INIT_PID

    def _ctx(self, rec: TraceRecord) -> int:
        """The track of the context *rec* was recorded in."""
        flags = rec.flags
        if flags & _CTX_HARD:
            return self.cpu_track(rec.cpu, HARDIRQ_TRACK)
        if flags & TRACE_FLAG_SOFTIRQ:
            return self.cpu_track(rec.cpu, SOFTIRQ_TRACK)
        if rec.pid == 0:
            return self.cpu_track(rec.cpu, IDLE_TRACK)
        return self.task_track(rec.pid, rec.comm)

    # -- events ---------------------------------------------------------------------------------

    def _new_flow(self) -> int:
        self._next_flow += 1
        return self._next_flow

    def _open(
        self,
        tid: int,
        key: tuple[Any, ...],
        name: str,
        cat: str,
        t: int,
        args: dict[str, Any],
        flow: tuple[int, int] | None = None,
    ) -> None:
        self._stacks.setdefault(tid, []).append(_Frame(key, name, cat, t, args, flow))

    def _close(self, tid: int, key: tuple[Any, ...], t: int, args: dict[str, Any] | None) -> None:
        stack = self._stacks.get(tid)
        if not stack:
            return
        for i in range(len(stack) - 1, -1, -1):
            if stack[i].key == key:
                break
        else:
            return  # its entry is not in the records
        while len(stack) > i:
            frame = stack.pop()
            if args is not None and len(stack) == i:
                frame.args.update(args)
            self._slice("X", tid, frame, t)

    def _slice(self, ph: str, tid: int, frame: _Frame, end: int) -> None:
        pid = self._pid_of(tid)
        ev: dict[str, Any] = {
            "ph": ph,
            "name": frame.name,
            "cat": frame.cat,
            "ts": _us(frame.start),
        }
        if ph == "X":
            ev["dur"] = _us(end - frame.start)
        ev["pid"] = pid
        ev["tid"] = tid
        ev["args"] = frame.args
        if frame.flow is not None:
            _add_flow(ev, frame.flow)
        self._emit(ev)

    def _pid_of(self, tid: int) -> int:
        if tid >= CPU_TID_BASE and tid < HIGH_TID_BASE:
            return CPU_PID_BASE + (tid - CPU_TID_BASE) // 4
        pid = tid - HIGH_TID_BASE if tid >= HIGH_TID_BASE else tid
        return self._groups.get(pid, INIT_PID)

    def _point(
        self,
        tid: int,
        name: str,
        cat: str,
        t: int,
        args: dict[str, Any],
        flow: tuple[int, int],
    ) -> None:
        """A 1 ns slice: the end of an arrow (a point in time has no slice to bind to)."""
        ev: dict[str, Any] = {
            "ph": "X",
            "name": name,
            "cat": cat,
            "ts": _us(t),
            "dur": 0.001,
            "pid": self._pid_of(tid),
            "tid": tid,
            "args": args,
        }
        _add_flow(ev, flow)
        if self.point_ids is not None:
            self.point_ids.add(id(ev))
        self._emit(ev)

    def _instant(self, tid: int, name: str, cat: str, t: int, args: dict[str, Any]) -> None:
        self._emit(
            {
                "ph": "i",
                "name": name,
                "cat": cat,
                "ts": _us(t),
                "pid": self._pid_of(tid),
                "tid": tid,
                "s": "t",
                "args": args,
            }
        )

    def _counter(self, pid: int, tid: int, name: str, t: int, args: dict[str, int]) -> None:
        self._emit({"ph": "C", "name": name, "ts": _us(t), "pid": pid, "tid": tid, "args": args})

    # -- feeding --------------------------------------------------------------------------------

    def feed(self, rec: TraceRecord) -> None:
        """Take the next record (records come in emission order)."""
        t = rec.ts
        if t <= self._last:
            t = self._last + 1
        self._last = t
        ev = rec.event
        cancelled = self._cancelled
        if cancelled is not None:
            # the timer_cancel an expiry prints right before its entry keeps the arm's flow;
            # any other cancel ends it
            self._cancelled = None
            if not (ev.name.endswith("expire_entry") and self._timer_key(rec) == cancelled):
                self._timers.pop(cancelled, None)
        queued = self._just_queued
        self._just_queued = None
        handler = self._handlers.get(f"{ev.system}:{ev.name}")
        if handler is not None:
            handler(rec, t, queued if queued is not None else -1)
        elif ev is BPRINT:
            self._printk(rec, t)
        elif ev.name.endswith(("_entry", "_exit")) and ev.system == "irq_vectors":
            self._vector(rec, t)
        else:
            self._other(rec, t)
        if self._wq_dirty and self._just_queued is None:
            self._flush_wq()

    def finish(self) -> None:
        """Write what is still open: slices as ``B`` (begun, not ended), pending counters."""
        for tid, stack in self._stacks.items():
            for frame in stack:
                self._slice("B", tid, frame, frame.start)
            stack.clear()
        if self._wq_dirty:
            self._flush_wq()

    def _field(self, rec: TraceRecord, name: str, pos: int) -> Any:
        """The field *name* of *rec* (by the event's field names; *pos* when it has none)."""
        key = (rec.event.id, name)
        i = self._field_pos.get(key)
        if i is None:
            fields = rec.event.fields
            i = self._field_pos[key] = fields.index(name) if name in fields else pos
        return rec.fields[i] if i < len(rec.fields) else None

    def _sym(self, value: object) -> str:
        return _symbol(value, self._tracing, False)

    def _id(self, obj: object) -> int:
        return self._tracing.trace_id(obj) if obj is not None else 0

    # irq ----------------------------------------------------------------------------------------

    def _irq_entry(self, rec: TraceRecord, t: int, _q: int) -> None:
        irq, name = rec.fields[0], rec.fields[1]
        self._open(
            self._ctx(rec), ("irq", irq), f"IRQ ({name})", "irq", t, {"irq": irq, "name": name}
        )

    def _irq_exit(self, rec: TraceRecord, t: int, _q: int) -> None:
        irq, ret = rec.fields[0], rec.fields[1]
        self._close(self._ctx(rec), ("irq", irq), t, {"ret": "handled" if ret else "unhandled"})

    def _set_pending(self, cpu: int, mask: int, t: int) -> None:
        if self._pending.get(cpu, 0) != mask:
            self._pending[cpu] = mask
            self._counter(
                CPU_PID_BASE + cpu,
                self.cpu_track(cpu, SOFTIRQ_TRACK),
                f"CPU {cpu}",
                t,
                {"softirq_pending": bin(mask).count("1")},
            )

    def _softirq_raise(self, rec: TraceRecord, t: int, _q: int) -> None:
        vec = rec.fields[0]
        cpu = rec.cpu
        tid = self._ctx(rec)
        self._set_pending(cpu, self._pending.get(cpu, 0) | 1 << vec, t)
        action = _vec_name(vec)
        args = {"vec": vec, "action": action}
        if vec in _TASKLET_VECS:
            q = self._tasklets.setdefault((cpu, vec), deque())
            stack = self._stacks.get(tid)
            if (
                rec.flags & TRACE_FLAG_SOFTIRQ
                and not rec.flags & _CTX_HARD
                and stack
                and stack[-1].key == ("softirq", vec)
            ):
                # tasklet_action_common() put a busy or disabled tasklet back at the tail
                if q:
                    q.rotate(-1)
                args["requeued"] = True
                self._instant(tid, f"raise {action}", "irq", t, args)
                return
            if cpu in self._no_tasklet_flows:
                self._instant(tid, f"raise {action}", "irq", t, args)
                return
            flow = self._new_flow()
            q.append(flow)
            self._point(tid, f"raise {action}", "irq", t, args, (flow, _OUT))
            return
        key = (cpu, vec)
        if key in self._raised:
            args["coalesced"] = True
            self._instant(tid, f"raise {action}", "irq", t, args)
            return
        flow = self._raised[key] = self._new_flow()
        self._point(tid, f"raise {action}", "irq", t, args, (flow, _OUT))

    def _softirq_entry(self, rec: TraceRecord, t: int, _q: int) -> None:
        vec = rec.fields[0]
        cpu = rec.cpu
        args = {"vec": vec, "task": rec.comm}
        if len(rec.fields) > 1:  # how the model entered the pass (the kernel records only vec)
            args["via"] = rec.fields[1]
        self._set_pending(cpu, self._pending.get(cpu, 0) & ~(1 << vec), t)
        flow = self._raised.pop((cpu, vec), None)
        self._open(
            self._ctx(rec),
            ("softirq", vec),
            _vec_name(vec),
            "irq",
            t,
            args,
            (flow, _IN) if flow is not None else None,
        )
        if rec.comm.startswith("ksoftirqd/") and rec.pid:
            self._open(
                self.task_track(rec.pid, rec.comm),
                ("ksoftirqd", vec),
                "run_ksoftirqd",
                "irq",
                t,
                {"vec": vec, "action": _vec_name(vec)},
            )

    def _softirq_exit(self, rec: TraceRecord, t: int, _q: int) -> None:
        vec = rec.fields[0]
        self._close(self._ctx(rec), ("softirq", vec), t, None)
        if rec.comm.startswith("ksoftirqd/") and rec.pid:
            self._close(self.task_track(rec.pid, rec.comm), ("ksoftirqd", vec), t, None)

    def _tasklet_entry(self, rec: TraceRecord, t: int, _q: int) -> None:
        tasklet, func = rec.fields[0], rec.fields[1]
        tid = self._ctx(rec)
        vec = TASKLET_SOFTIRQ
        for frame in reversed(self._stacks.get(tid, ())):
            if frame.key[0] == "softirq":
                vec = frame.key[1]
                break
        flow = None
        q = self._tasklets.get((rec.cpu, vec))
        if q:
            flow = q.popleft()
        self._open(
            tid,
            ("tasklet", self._id(tasklet)),
            self._sym(func),
            "tasklet",
            t,
            {"tasklet": self._sym(tasklet)},
            (flow, _IN) if flow is not None else None,
        )

    def _tasklet_exit(self, rec: TraceRecord, t: int, _q: int) -> None:
        self._close(self._ctx(rec), ("tasklet", self._id(rec.fields[0])), t, None)

    # rcu ----------------------------------------------------------------------------------------

    def _rcu_callback(self, rec: TraceRecord, t: int, _q: int) -> None:
        """call_rcu(): an arrow from here to the callback's slice (it runs on this CPU)."""
        head, func = self._field(rec, "rhp", 1), self._field(rec, "func", 2)
        flow = self._new_flow()
        if len(self._rcu) >= _RCU_FLOWS_MAX:  # (no invoke records to end them: bounded)
            del self._rcu[next(iter(self._rcu))]
        q = self._rcu.setdefault((rec.cpu, self._id(head)), deque(maxlen=_RCU_FLOWS_MAX))
        q.append(flow)
        args = {"func": self._sym(func), "rhp": "%016x" % self._id(head)}
        self._point(self._ctx(rec), "call_rcu", "rcu", t, args, (flow, _OUT))

    def _rcu_batch_start(self, rec: TraceRecord, t: int, _q: int) -> None:
        args = {"qlen": self._field(rec, "qlen", 1), "blimit": self._field(rec, "blimit", 2)}
        self._open(self._ctx(rec), ("rcu_batch",), "rcu_do_batch", "rcu", t, args)

    def _rcu_invoke(self, rec: TraceRecord, t: int, _q: int) -> None:
        """A callback's slice, nested in the batch: it lasts until the next one starts or the
        batch ends (the kernel traces no end of a callback)."""
        tid = self._ctx(rec)
        self._close(tid, ("rcu_cb",), t, None)
        head, func = self._field(rec, "rhp", 1), self._field(rec, "func", 2)
        q = self._rcu.get((rec.cpu, self._id(head)))
        flow = q.popleft() if q else None
        if q is not None and not q:
            del self._rcu[(rec.cpu, self._id(head))]
        args = {"rhp": "%016x" % self._id(head)}
        flow_in = (flow, _IN) if flow is not None else None
        self._open(tid, ("rcu_cb",), self._sym(func), "rcu", t, args, flow_in)

    def _rcu_batch_end(self, rec: TraceRecord, t: int, _q: int) -> None:
        args = {"invoked": self._field(rec, "callbacks_invoked", 1)}
        self._close(self._ctx(rec), ("rcu_batch",), t, args)

    def _vector(self, rec: TraceRecord, t: int) -> None:
        name = rec.event.name
        tid = self._ctx(rec)
        if name.endswith("_entry"):
            base = name[: -len("_entry")]
            self._open(tid, ("vector", base), base, "irq_vectors", t, {"vector": rec.fields[0]})
        else:
            self._close(tid, ("vector", name[: -len("_exit")]), t, None)

    # timers -------------------------------------------------------------------------------------

    def _timer_key(self, rec: TraceRecord) -> tuple[str, int]:
        kind = "hrtimer" if rec.event.name.startswith("hrtimer") else "timer"
        return (kind, self._id(rec.fields[0]))

    def _timer_start(self, rec: TraceRecord, t: int, _q: int) -> None:
        key = self._timer_key(rec)
        flow = self._timers[key] = self._new_flow()
        f = rec.fields
        args: dict[str, Any] = {key[0]: "%016x" % key[1], "function": self._sym(f[1])}
        if key[0] == "timer":
            args["expires"] = f[2]
            args["timeout"] = f[2] - f[4]
        else:
            args["expires_ns"] = f[2]
        self._point(self._ctx(rec), rec.event.name, "timer", t, args, (flow, _OUT))

    def _timer_cancel(self, rec: TraceRecord, t: int, _q: int) -> None:
        key = self._timer_key(rec)
        self._cancelled = key
        self._instant(self._ctx(rec), rec.event.name, "timer", t, {key[0]: "%016x" % key[1]})

    def _timer_entry(self, rec: TraceRecord, t: int, _q: int) -> None:
        key = self._timer_key(rec)
        func = rec.fields[2]
        name = self._sym(func)
        flow: tuple[int, int] | None = None
        fid = self._timers.pop(key, None)
        if getattr(func, "__name__", None) == "delayed_work_timer_fn":
            # the middle of a delayed work's path: on to the queue_work its callback does
            if fid is None:
                fid = self._new_flow()
                flow = (fid, _OUT)
            else:
                flow = (fid, _STEP)
            self._dwork[rec.cpu] = fid
        elif fid is not None:
            flow = (fid, _IN)
        args: dict[str, Any] = {key[0]: "%016x" % key[1], "now": rec.fields[1]}
        self._open(self._ctx(rec), key, name, key[0], t, args, flow)

    def _timer_exit(self, rec: TraceRecord, t: int, _q: int) -> None:
        self._close(self._ctx(rec), self._timer_key(rec), t, None)
        self._dwork.pop(rec.cpu, None)

    # csd ----------------------------------------------------------------------------------------

    def _csd_queue(self, rec: TraceRecord, t: int, _q: int) -> None:
        cpu, func, csd = rec.fields[0], rec.fields[2], rec.fields[3]
        flow = self._csd[self._id(csd)] = self._new_flow()
        self._point(
            self._ctx(rec),
            "csd_queue_cpu",
            "csd",
            t,
            {"cpu": cpu, "func": self._sym(func)},
            (flow, _OUT),
        )

    def _csd_entry(self, rec: TraceRecord, t: int, _q: int) -> None:
        func, csd = rec.fields[0], rec.fields[1]
        key = self._id(csd)
        flow = self._csd.pop(key, None)
        self._open(
            self._ctx(rec),
            ("csd", key),
            self._sym(func),
            "csd",
            t,
            {"csd": "%016x" % key},
            (flow, _IN) if flow is not None else None,
        )

    def _csd_exit(self, rec: TraceRecord, t: int, _q: int) -> None:
        self._close(self._ctx(rec), ("csd", self._id(rec.fields[1])), t, None)

    # workqueue ----------------------------------------------------------------------------------

    def _wq_change(self, wq: str, active: int, inactive: int, t: int) -> None:
        counts = self._wq_counts.setdefault(wq, [0, 0])
        counts[0] = max(0, counts[0] + active)
        counts[1] = max(0, counts[1] + inactive)
        self._wq_dirty.setdefault(wq, t)

    def _flush_wq(self) -> None:
        self._process(KERNEL_PID, "kernel", _KERNEL_SORT)
        for wq, t in self._wq_dirty.items():
            active, inactive = self._wq_counts[wq]
            self._counter(
                KERNEL_PID, KERNEL_PID, f"wq {wq}", t, {"active": active, "inactive": inactive}
            )
        self._wq_dirty.clear()

    def _queue_work(self, rec: TraceRecord, t: int, _q: int) -> None:
        work = self._field(rec, "work", 0)
        function = self._field(rec, "function", 1)
        wq = self._field(rec, "workqueue", 2)
        wq_name = wq if isinstance(wq, str) else str(getattr(wq, "name", wq))
        wkey = self._id(work)
        tid = self._ctx(rec)
        fid = self._dwork.pop(rec.cpu, None) if rec.flags & TRACE_FLAG_SOFTIRQ else None
        if fid is not None:
            flow = (fid, _STEP)
        else:
            fid = self._new_flow()
            flow = (fid, _OUT)
        args = {
            "work": "%016x" % wkey,
            "function": self._sym(function),
            "workqueue": wq_name,
            "req_cpu": self._field(rec, "req_cpu", 3),
            "cpu": self._field(rec, "cpu", 4),
        }
        self._point(tid, "queue_work", "workqueue", t, args, flow)
        old = self._works.get(wkey)
        if old is not None:  # its queue_work seen, its execution not: count it gone
            self._wq_change(old.wq, -1 if old.active else 0, 0 if old.active else -1, t)
        self._works[wkey] = _Work(fid, wq_name)
        self._wq_change(wq_name, 0, 1, t)
        self._just_queued = wkey

    def _activate_work(self, rec: TraceRecord, t: int, queued: int) -> None:
        wkey = self._id(self._field(rec, "work", 0))
        item = self._works.get(wkey)
        if item is None or item.active:
            return
        item.active = True
        self._wq_change(item.wq, 1, -1, t)
        if queued != wkey:  # max_active held it back until now
            self._point(
                self._ctx(rec),
                "activate_work",
                "workqueue",
                t,
                {"work": "%016x" % wkey, "workqueue": item.wq},
                (item.flow, _STEP),
            )

    def _execute_start(self, rec: TraceRecord, t: int, _q: int) -> None:
        wkey = self._id(self._field(rec, "work", 0))
        function = self._field(rec, "function", 1)
        item = self._works.pop(wkey, None)
        args: dict[str, Any] = {"work": "%016x" % wkey}
        flow = None
        if item is not None:
            if not item.active:
                self._wq_change(item.wq, 1, -1, t)
            self._running[wkey] = item.wq
            args["workqueue"] = item.wq
            flow = (item.flow, _IN)
        self._open(self._ctx(rec), ("work", wkey), self._sym(function), "workqueue", t, args, flow)

    def _execute_end(self, rec: TraceRecord, t: int, _q: int) -> None:
        wkey = self._id(self._field(rec, "work", 0))
        self._close(self._ctx(rec), ("work", wkey), t, None)
        wq = self._running.pop(wkey, None)
        if wq is not None:
            self._wq_change(wq, -1, 0, t)

    # sched --------------------------------------------------------------------------------------

    def _sched_switch(self, rec: TraceRecord, t: int, _q: int) -> None:
        tid = self.cpu_track(rec.cpu, RUNNING_TRACK)
        self._close(tid, ("run",), t, None)
        prev_comm = self._field(rec, "prev_comm", 0)
        prev_pid = self._field(rec, "prev_pid", 1)
        next_comm = self._field(rec, "next_comm", 4)
        next_pid = self._field(rec, "next_pid", 5)
        if isinstance(prev_pid, int) and prev_pid > 0 and isinstance(prev_comm, str):
            self.task_track(prev_pid, prev_comm)
        if isinstance(next_pid, int) and next_pid > 0 and isinstance(next_comm, str):
            self.task_track(next_pid, next_comm)
            flow = self._wakes.pop(next_pid, None)
            self._open(
                tid,
                ("run",),
                next_comm,
                "sched",
                t,
                {"pid": next_pid, "prio": self._field(rec, "next_prio", 6)},
                (flow, _IN) if flow is not None else None,
            )

    def _sched_wake(self, rec: TraceRecord, t: int, _q: int) -> None:
        comm = self._field(rec, "comm", 0)
        pid = self._field(rec, "pid", 1)
        args = {
            "comm": comm,
            "pid": pid,
            "prio": self._field(rec, "prio", 2),
            "target_cpu": self._field(rec, "target_cpu", 3),
        }
        tid = self._ctx(rec)
        switch = any(e.name == "sched_switch" for e in self._tracing._enabled)
        if not switch or not isinstance(pid, int) or pid in self._wakes:
            self._instant(tid, rec.event.name, "sched", t, args)
            return
        flow = self._wakes[pid] = self._new_flow()
        self._point(tid, rec.event.name, "sched", t, args, (flow, _OUT))

    # the rest -----------------------------------------------------------------------------------

    def _printk(self, rec: TraceRecord, t: int) -> None:
        ip, fmt, _args = rec.fields
        try:
            text = self._tracing.format_record(rec).split(": ", 2)[-1]
        except Exception:
            text = str(fmt)
        name = text if len(text) <= 80 else text[:77] + "..."
        self._instant(self._ctx(rec), name, "ftrace", t, {"caller": str(ip), "text": text})

    def _other(self, rec: TraceRecord, t: int) -> None:
        ev = rec.event
        try:
            text = ev.render(rec.fields, self._tracing)
        except Exception:
            text = repr(rec.fields)
        self._instant(self._ctx(rec), ev.name, ev.system, t, {"text": text})


def _vec_name(vec: int) -> str:
    return SOFTIRQ_NAMES[vec] if 0 <= vec < len(SOFTIRQ_NAMES) else "softirq %d" % vec


def _add_flow(ev: dict[str, Any], flow: tuple[int, int]) -> None:
    fid, how = flow
    ev["bind_id"] = fid
    if how & _IN:
        ev["flow_in"] = True
    if how & _OUT:
        ev["flow_out"] = True


def _dumps(ev: dict[str, Any]) -> str:
    return json.dumps(ev, separators=(",", ":"), allow_nan=False)


def convert(tracing: Tracing, point_ids: set[int] | None = None) -> list[dict[str, Any]]:
    """The trace events of every record in *tracing*'s ring buffers, open slices included
    (the ids of the point events added to *point_ids* if given)."""
    events: list[dict[str, Any]] = []
    conv = Converter(tracing, events.append)
    conv.point_ids = point_ids
    conv.drop_tasklet_flows(cpu for cpu, lost in enumerate(tracing._overruns()) if lost)
    for rec in tracing.records():
        conv.feed(rec)
    conv.finish()
    return events


def _open_text(path: str) -> TextIO:
    """*path* opened for writing text; gzip-compressed (with no timestamp) for ``.gz``."""
    if path.endswith(".gz"):
        raw = open(path, "wb")  # noqa: SIM115 - handed to the wrapper, closed with it
        try:
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
        except BaseException:
            raw.close()
            raise
        return _GzipText(gz, raw)
    return open(path, "w", encoding="utf-8")


class _GzipText(io.TextIOWrapper):
    """Text into a gzip stream over a file that is closed with it."""

    def __init__(self, gz: gzip.GzipFile, raw: io.BufferedWriter) -> None:
        super().__init__(gz, encoding="utf-8")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def write_perfetto(tracing: Tracing, path: str) -> None:
    """Write *tracing*'s records as a JSON object trace (see :meth:`Tracing.write_perfetto`)."""
    events = convert(tracing)
    kernel = tracing._kernel
    meta = {
        "source": "kdefer_async",
        "nr_cpus": kernel.nr_cpus,
        "hz": kernel.hz,
        "events_lost": sum(tracing._overruns()),
    }
    with _open_text(path) as f:
        f.write('{"traceEvents":[\n')
        f.write(",\n".join(_dumps(ev) for ev in events))
        f.write('\n],\n"displayTimeUnit":"ns",\n"metadata":')
        f.write(_dumps(meta))
        f.write("}\n")


class PerfettoStream:
    """
    A timeline written as the records come: what :meth:`Tracing.stream_perfetto` returns.

    The file is a JSON array of trace events, one per line (``[``, then ``{...},`` lines), in
    the layout of :meth:`Tracing.write_perfetto`. Lines are written in batches of
    :attr:`BATCH` events, each batch flushed to the file (through gzip's sync flush for
    ``.gz``), so a program that dies leaves a file of whole lines that Perfetto loads (an
    unterminated array is accepted). :meth:`close` (called when the kernel halts, if not
    before) writes the slices still open as begun-not-ended ones and ends the array, making
    the file strict JSON. Memory stays constant: only what is open or pending is kept.

    The stream is one of the kernel's :attr:`Tracing.sinks` while it is open. A write that
    fails (a full disk) closes it; the error is kept in :attr:`error`, and tracing goes on.

    Attributes:
        path: The file written.
        events: Trace events written so far (metadata included).
        error: The ``OSError`` that closed the stream, if one did.

    .. versionadded:: 0.2
    """

    #: Events per write: a program that dies loses at most this many.
    BATCH = 256

    __slots__ = ("_conv", "_file", "_lines", "_tracing", "error", "events", "path")

    def __init__(self, tracing: Tracing, path: str) -> None:
        self.path = path  # I
        self._tracing = tracing  # I
        self._lines: list[str] = []  # A: events converted, not written yet
        self.events = 0  # A
        self.error: OSError | None = None  # A
        self._file: TextIO | None = _open_text(path)  # A: None once closed
        try:
            self._file.write("[\n")
            self._file.flush()
        except BaseException:
            self._file.close()
            raise
        self._conv = Converter(tracing, self._add)  # I
        self._conv.seed()
        tracing.sinks.append(self)
        tracing._streams.append(self)

    def __repr__(self) -> str:
        state = "closed" if self._file is None else "open"
        return f"<PerfettoStream {self.path!r} {state} events={self.events}>"

    @property
    def closed(self) -> bool:
        """Whether the stream is closed (by :meth:`close`, the kernel's halt or an error)."""
        return self._file is None

    def _add(self, ev: dict[str, Any]) -> None:
        self._lines.append(_dumps(ev))
        self.events += 1

    def __call__(self, rec: TraceRecord) -> None:
        """The sink: convert *rec*; write a batch when one is ready."""
        if self._file is None:
            return
        self._conv.feed(rec)
        if len(self._lines) > self.BATCH:
            self._write(final=False)

    def _write(self, final: bool) -> None:
        f = self._file
        if f is None:
            return
        lines = self._lines
        try:
            if final:
                f.write(",\n".join(lines) + ("\n]\n" if lines else "]\n"))
            elif len(lines) > 1:
                # the last line stays: the array's end needs an element without a comma
                f.write("".join(line + ",\n" for line in lines[:-1]))
                del lines[:-1]
            f.flush()
        except OSError as exc:
            self.error = exc
            self._shut()

    def flush(self) -> None:
        """Write every converted event but the last one now."""
        self._write(final=False)

    def close(self) -> None:
        """
        End the stream: write the slices still open (``B``), end the array, close the file.
        Closing twice does nothing.

        .. versionadded:: 0.2
        """
        if self._file is None:
            return
        self._conv.finish()
        self._write(final=True)
        self._shut()

    def _shut(self) -> None:
        f = self._file
        self._file = None
        tracing = self._tracing
        if self in tracing.sinks:
            tracing.sinks.remove(self)
        if self in tracing._streams:
            tracing._streams.remove(self)
        self._lines = []
        if f is not None:
            try:
                f.close()
            except OSError as exc:
                if self.error is None:
                    self.error = exc

    def __enter__(self) -> PerfettoStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
