"""A static timeline picture of a kernel's trace (SVG or PNG), drawn with matplotlib.

Field rules: none kept; one call draws one picture from the ring buffers' records.

What it shows is what :mod:`kdefer_async._perfetto` writes for ui.perfetto.dev, drawn without a
browser: the same events (:func:`kdefer_async._perfetto.convert`), one lane per track that has
slices (each CPU's ``hardirq`` and ``softirq`` first, then ``running`` when ``sched_switch``
is traced, then the kernel's tasks, then the user tasks), each slice coloured by what ran
(a device interrupt, a softirq, a tasklet, a timer callback, a work item...), the points that
start an arrow (a raise, a timer arm, a ``queue_work``) as ticks, and arrows for an evenly
spaced sample of the flows. In virtual time whole bursts of events share one instant, and a
run's events are clustered between long idle gaps, so the time axis is compressed by default:
each step between two consecutive slice boundaries takes one unit plus ``log(1 + step/1 us)``;
the ticks are labelled with the real times, and gaps of a millisecond or more are marked
with their length. ``linear=True`` draws time to scale instead.

matplotlib is an optional dependency (the ``timeline`` extra); only this module imports it,
when a picture is drawn.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from typing import Any

from ._perfetto import (
    CPU_PID_BASE,
    CPU_TID_BASE,
    HARDIRQ_TRACK,
    HIGH_TID_BASE,
    KERNEL_PID,
    RUNNING_TRACK,
    SOFTIRQ_TRACK,
    convert,
)
from ._trace import Tracing

__all__ = ["MAX_ARROWS", "write_timeline"]

#: How many flows get an arrow (an even sample of them).
MAX_ARROWS = 40
#: Gaps at least this long (ns) are marked on a compressed axis.
_GAP_MARK_NS = 1_000_000

#: (label, colour) of each kind of slice, in legend order.
_KINDS = {
    "hardirq": ("device interrupt", "#d62728"),
    "vector": ("system vector (tick, IPI, irq_work)", "#ff9896"),
    "csd": ("cross-CPU call", "#e377c2"),
    "softirq": ("softirq", "#1f77b4"),
    "tasklet": ("tasklet", "#17becf"),
    "timer": ("timer callback", "#2ca02c"),
    "hrtimer": ("hrtimer callback", "#98df8a"),
    "work": ("work item", "#ff7f0e"),
    "ksoftirqd": ("ksoftirqd running softirqs", "#aec7e8"),
    "running": ("task on CPU (sched_switch)", "#c7c7c7"),
    "other": ("other", "#7f7f7f"),
}
_POINT_COLOUR = "#333333"
_ARROW_COLOUR = "#9467bd"


def _kind(ev: dict[str, Any]) -> str:
    cat = ev.get("cat")
    name = str(ev.get("name", ""))
    if cat == "irq":
        if name.startswith("IRQ ("):
            return "hardirq"
        if name == "run_ksoftirqd":
            return "ksoftirqd"
        return "softirq"
    if cat == "irq_vectors":
        return "vector"
    if cat == "workqueue":
        return "work"
    if cat == "sched":
        return "running"
    if cat in ("csd", "tasklet", "timer", "hrtimer"):
        return str(cat)
    return "other"


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class _TimeMap:
    """Real time (ns) to the x axis: to scale, or compressed (module docstring)."""

    def __init__(self, bounds: list[int], linear: bool) -> None:
        self.bounds = bounds
        self.linear = linear
        pos = [0.0]
        for a, b in itertools.pairwise(bounds):
            pos.append(pos[-1] + 1.0 + math.log1p((b - a) / 1000))
        self.pos = pos

    def __call__(self, t: float) -> float:
        b = self.bounds
        if self.linear:
            return (t - b[0]) / 1e6  # ms from the first event
        i = bisect.bisect_right(b, t) - 1
        if i < 0:
            return self.pos[0]
        if i >= len(b) - 1:
            return self.pos[-1]
        span = b[i + 1] - b[i]
        return self.pos[i] + (self.pos[i + 1] - self.pos[i]) * (t - b[i]) / span

    def nearest(self, x: float) -> int:
        """The index of the boundary drawn nearest to axis position *x*."""
        pos = self.pos
        i = bisect.bisect_left(pos, x)
        if i >= len(pos):
            return len(pos) - 1
        if i > 0 and x - pos[i - 1] < pos[i] - x:
            return i - 1
        return i

    def real(self, x: float) -> float:
        """The real time (ns) at axis position *x* (compressed axis)."""
        pos = self.pos
        i = bisect.bisect_right(pos, x) - 1
        i = max(0, min(i, len(pos) - 2))
        if len(pos) < 2:
            return float(self.bounds[0])
        frac = (x - pos[i]) / (pos[i + 1] - pos[i])
        return self.bounds[i] + frac * (self.bounds[i + 1] - self.bounds[i])


def _ns(us: Any) -> int:
    return round(float(us) * 1000)


def write_timeline(tracing: Tracing, path: str, *, linear: bool = False) -> None:
    """Draw *tracing*'s records into *path* (see :meth:`Tracing.write_timeline`)."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.patches import FancyArrowPatch, Patch
    except ImportError as exc:
        raise ImportError(
            "Tracing.write_timeline() needs matplotlib, which is not installed: "
            "pip install 'kdefer-async[timeline]'"
        ) from exc

    point_ids: set[int] = set()
    events = convert(tracing, point_ids)
    names: dict[int, str] = {}
    groups: dict[int, int] = {}
    slices: dict[int, list[tuple[int, int, str, str]]] = {}
    points: dict[int, list[int]] = {}
    flow_src: dict[int, tuple[int, int]] = {}
    flow_dst: dict[int, list[tuple[int, int]]] = {}
    last = 0
    for ev in events:
        ph = ev["ph"]
        if ph == "M":
            if ev["name"] == "thread_name":
                names[ev["tid"]] = ev["args"]["name"]
                groups[ev["tid"]] = ev["pid"]
            continue
        if "ts" in ev:
            last = max(last, _ns(ev["ts"]) + _ns(ev.get("dur", 0)))
    for ev in events:
        ph = ev["ph"]
        if ph not in ("X", "B"):
            continue
        tid = ev["tid"]
        start = _ns(ev["ts"])
        end = start + _ns(ev["dur"]) if ph == "X" else last
        if id(ev) in point_ids:
            points.setdefault(tid, []).append(start)
        else:
            slices.setdefault(tid, []).append((start, end, str(ev["name"]), _kind(ev)))
        fid = ev.get("bind_id")
        if fid is not None:
            if ev.get("flow_in"):
                flow_dst.setdefault(fid, []).append((tid, start))
            if ev.get("flow_out"):
                flow_src[fid] = (tid, start)

    # lanes: CPUs (hardirq, softirq, running), kernel tasks, user tasks
    used = set(slices) | set(points)
    cpu_lanes: list[tuple[int, int]] = []
    task_lanes: list[tuple[int, str, int]] = []
    for tid in used:
        if CPU_TID_BASE <= tid < CPU_TID_BASE + 4 * 100_000 and groups.get(tid, 0) >= CPU_PID_BASE:
            cpu_lanes.append(((tid - CPU_TID_BASE) // 4, (tid - CPU_TID_BASE) % 4))
        else:
            task_lanes.append((0 if groups.get(tid) == KERNEL_PID else 1, names.get(tid, ""), tid))
    cpus = sorted({cpu for cpu, _ in cpu_lanes})
    lanes: list[tuple[int, str]] = []
    for cpu in cpus:
        for which in (HARDIRQ_TRACK, SOFTIRQ_TRACK, RUNNING_TRACK, 2):
            tid = CPU_TID_BASE + 4 * cpu + which
            if which in (HARDIRQ_TRACK, SOFTIRQ_TRACK) or tid in used:
                lanes.append(
                    (tid, f"CPU {cpu} {names.get(tid, 'hardirq' if which == 0 else 'softirq')}")
                )
    task_lanes.sort(key=lambda lane: (lane[0], _natural(lane[1]), lane[2]))
    lanes.extend((tid, f"{name}-{_task_pid(tid)}") for _, name, tid in task_lanes)
    row = {tid: i for i, (tid, _) in enumerate(lanes)}

    bounds = sorted(
        {b for lst in slices.values() for s in lst for b in s[:2]}
        | {p for lst in points.values() for p in lst}
    )
    if not bounds:
        bounds = [0, 1]
    elif len(bounds) == 1:
        bounds.append(bounds[0] + 1)
    tmap = _TimeMap(bounds, linear)
    x_end = tmap(bounds[-1])
    min_w = x_end / 1500

    height = 1.6 + 0.34 * max(len(lanes), 1)
    with matplotlib.rc_context(
        {"svg.hashsalt": "kdefer_async", "svg.fonttype": "none", "font.size": 8}
    ):
        fig = Figure(figsize=(14, height), layout="constrained")
        ax = fig.add_subplot()
        kinds_seen: list[str] = []
        for tid, lst in slices.items():
            y = row[tid]
            # nested slices (a tasklet in its softirq) are drawn on top, thinner
            bars: dict[tuple[int, str], list[tuple[float, float]]] = {}
            stack: list[int] = []
            for start, end, name, kind in sorted(lst, key=lambda s: (s[0], -s[1])):
                while stack and stack[-1] <= start:
                    stack.pop()
                depth = min(len(stack), 3)
                stack.append(end)
                x0, x1 = tmap(start), tmap(end)
                bars.setdefault((depth, kind), []).append((x0, max(x1 - x0, min_w)))
                if depth == 0 and x1 - x0 > x_end / 25:
                    label = name if len(name) <= 28 else name[:25] + "..."
                    ax.text(
                        x0 + (x1 - x0) / 2,
                        y + 0.22,
                        label,
                        ha="center",
                        va="center",
                        fontsize=6,
                        clip_on=True,
                    )
            for (depth, kind), spans in sorted(bars.items()):
                if kind not in kinds_seen:
                    kinds_seen.append(kind)
                h = 0.7 - 0.17 * depth
                ax.broken_barh(spans, (y - 0.35, h), facecolors=_KINDS[kind][1], edgecolor="none")
        for tid, at in points.items():
            y = row[tid]
            ax.vlines([tmap(p) for p in at], y - 0.42, y + 0.42, colors=_POINT_COLOUR, lw=0.6)

        # arrows: an even sample of the flows with both ends drawn
        flows = sorted(fid for fid in flow_src if fid in flow_dst)
        if len(flows) > MAX_ARROWS:
            step = len(flows) / MAX_ARROWS
            flows = [flows[int(i * step)] for i in range(MAX_ARROWS)]
        for fid in flows:
            path_pts = [flow_src[fid], *sorted(flow_dst[fid], key=lambda d: d[1])]
            for (t0, s0), (t1, s1) in itertools.pairwise(path_pts):
                ax.add_patch(
                    FancyArrowPatch(
                        (tmap(s0), row[t0]),
                        (tmap(s1), row[t1]),
                        arrowstyle="-|>",
                        mutation_scale=7,
                        color=_ARROW_COLOUR,
                        lw=0.7,
                        alpha=0.8,
                        shrinkA=0,
                        shrinkB=0,
                        connectionstyle="arc3,rad=0.15",
                    )
                )

        ax.set_yticks(range(len(lanes)), [name for _, name in lanes])
        ax.set_ylim(len(lanes) - 0.4, -0.6)
        ax.set_xlim(-x_end * 0.01, x_end * 1.01 + 1e-9)
        ax.grid(axis="x", color="#e5e5e5", lw=0.5)
        ax.set_axisbelow(True)
        if linear:
            ax.set_xlabel("time since the first event (ms)")
        else:
            # ticks where the clusters of events start (after each long gap), and the ends
            starts = [bounds[0]]
            for a, b in itertools.pairwise(bounds):
                if b - a >= _GAP_MARK_NS:
                    starts.append(b)
                    x = tmap(a) + (tmap(b) - tmap(a)) / 2
                    ax.axvline(x, color="#bbbbbb", lw=0.6, ls=":")
                    ax.text(
                        x,
                        -0.55,
                        _duration(b - a),
                        ha="center",
                        va="bottom",
                        fontsize=6,
                        color="#666666",
                    )
            starts.append(bounds[-1])
            if len(starts) < 4:  # few clusters: the event times nearest to even spacing
                starts = [bounds[tmap.nearest(x_end * i / 6)] for i in range(7)]
            ticks: list[float] = []
            for t in starts:
                x = tmap(t)
                if not ticks or x - ticks[-1] >= x_end / 14:
                    ticks.append(x)
            ax.set_xticks(ticks, [_ms(tmap.real(x)) for x in ticks])
            ax.set_xlabel(
                "time (ms): compressed, each step between events one unit plus log(1 + step/1 us)"
            )
        handles: list[Any] = [
            Patch(facecolor=_KINDS[k][1], label=_KINDS[k][0]) for k in _KINDS if k in kinds_seen
        ]
        handles.append(
            Line2D(
                [],
                [],
                color=_POINT_COLOUR,
                lw=0,
                marker="|",
                markersize=8,
                label="raise / arm / queue_work",
            )
        )
        handles.append(Line2D([], [], color=_ARROW_COLOUR, lw=1, label="flow (sample)"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1), frameon=False)
        kernel = tracing._kernel
        n_rec = sum(len(buf.raw) for buf in tracing._sync_all())
        ax.set_title(
            f"kdefer_async trace: {n_rec} records, {kernel.nr_cpus} CPUs, HZ={kernel.hz}",
            loc="left",
        )
        fig.savefig(path, metadata={"Date": None} if path.lower().endswith(".svg") else None)


def _duration(ns: int) -> str:
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:.3g} s"
    if ns >= 1_000_000:
        return f"{ns / 1e6:.3g} ms"
    return f"{ns / 1e3:.3g} us"


def _ms(ns: float) -> str:
    text = f"{ns / 1e6:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _task_pid(tid: int) -> int:
    return tid - HIGH_TID_BASE if tid >= HIGH_TID_BASE else tid
