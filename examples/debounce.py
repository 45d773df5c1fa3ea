"""Debounce a burst of events with ``mod_delayed_work()``.

**The kernel primitive.** A *delayed work item* is a work item plus a timer that queues it when
it expires. ``mod_delayed_work(wq, dwork, delay)`` (re)arms that timer for *delay* jiffies
from now, whatever state the item is in: idle, armed, or queued and not yet started. Calling
it on every event therefore pushes the handler back each time, and the handler runs once,
``delay`` after the *last* event of a burst. Drivers debounce this way: ``gpio_keys`` re-arms
its work item on every edge of a bouncing key and reads the key once it has been quiet.

**Why an application wants it.** A file watcher reports a storm of change notifications when
an editor saves or ``git checkout`` rewrites a tree; rebuilding (or reloading, re-indexing,
re-syncing) on each one is wasteful. Here the watcher calls :meth:`Debouncer.notify` for every
notification. ``notify`` is a plain function (it never sleeps, so a callback, a signal handler
or a softirq may call it) and costs one timer re-arm. The handler runs in a kworker, in
process context, so it may sleep: it is ``async def`` and does the slow rebuild there.

The script sends two bursts of 100 notifications, each within 50 ms, 200 ms apart, and prints
when the events came and when the handler ran: once per burst, 30 ms after the last event of
the burst. At HZ=1000 that is 30 jiffies; the timer fires at the first tick *after* its expiry
(timers are never early), so the handler runs 31 jiffies after the jiffy of the last event.
At shutdown a debouncer flushes (or cancels) its armed handler before freeing the queue:
``destroy_workqueue()`` drains queued work but knows nothing about armed timers.

It runs in virtual time (``kdefer_async.run(main, virtual_time=True)``), so the output is exact
and the script takes no wall time; ``--real-time`` runs it on the wall clock instead.

Run it: ``python examples/debounce.py [--backend trio] [--real-time]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

import kdefer_async
from kdefer_async import (
    DelayedWork,
    SpinLock,
    Work,
    Workqueue,
    alloc_workqueue,
    container_of,
    current_kernel,
    destroy_workqueue,
    flush_delayed_work,
    mod_delayed_work,
    msecs_to_jiffies,
    msleep,
    spin_lock,
    spin_unlock,
    to_delayed_work,
)

#: The handler runs this long after the last event of a burst.
QUIET_MS = 30
#: Files an editor touches when it saves (the notifications cycle through them).
FILES = ("main.c", "main.c.swp", "main.c~", "4913")


@dataclass
class HandlerRun:
    """One run of the debounced handler."""

    jiffies: int
    ms: float
    files: list[str]


@dataclass
class Event:
    """One change notification, as the watcher delivered it."""

    burst: int
    jiffies: int
    ms: float
    path: str


class Debouncer:
    """
    Collects change notifications and runs :meth:`rebuild` once a burst has been quiet for
    ``quiet_ms``: the ``mod_delayed_work()`` debounce.

    The changed paths are shared between the notifier and the handler, so a spinlock guards
    them (both run in process context here; a notifier in softirq context would need the
    handler to take it with ``spin_lock_bh``).
    """

    def __init__(self, wq: Workqueue, quiet_ms: int, t0: float) -> None:
        self.wq = wq
        self.delay = msecs_to_jiffies(quiet_ms)
        self.dwork = DelayedWork(_debounced_handler)
        self.lock = SpinLock()
        self.changed: set[str] = set()
        self.t0 = t0
        self.runs: list[HandlerRun] = []

    def notify(self, path: str) -> None:
        """Note a change of *path* and push the handler back; any context, never sleeps."""
        spin_lock(self.lock)
        self.changed.add(path)
        spin_unlock(self.lock)
        mod_delayed_work(self.wq, self.dwork, self.delay)

    async def rebuild(self) -> None:
        """The slow part: take the batch of changed paths and act on it (it may sleep)."""
        spin_lock(self.lock)
        batch, self.changed = sorted(self.changed), set()
        spin_unlock(self.lock)
        k = current_kernel()
        self.runs.append(HandlerRun(k.jiffies, _ms_since(self.t0), batch))
        await msleep(5)  # compile, reload, re-index...


async def _debounced_handler(work: Work) -> None:
    """The work function: find the Debouncer around the item, as C code would."""
    d = container_of(to_delayed_work(work), Debouncer, "dwork")
    await d.rebuild()


def _ms_since(t0: float) -> float:
    return (anyio.current_time() - t0) * 1000.0


@dataclass
class Report:
    """What :func:`debounce_bursts` saw."""

    hz: int
    quiet_ms: int
    events: list[Event] = field(default_factory=list)
    runs: list[HandlerRun] = field(default_factory=list)
    #: What the final ``flush_delayed_work()`` returned (False: nothing was pending).
    flushed: bool = False


async def debounce_bursts(
    bursts: int = 2,
    events_per_burst: int = 100,
    burst_ms: float = 50.0,
    gap_ms: float = 200.0,
    quiet_ms: int = QUIET_MS,
) -> Report:
    """
    Deliver *bursts* bursts of *events_per_burst* notifications, each spread evenly over
    *burst_ms* (the last one at *burst_ms*), bursts *gap_ms* apart, to a :class:`Debouncer`;
    return the events and the handler runs. Runs inside a booted :class:`kdefer_async.Kernel`.
    """
    k = current_kernel()
    wq = alloc_workqueue("debounce", 0, 0)
    assert wq is not None
    t0 = anyio.current_time()
    d = Debouncer(wq, quiet_ms, t0)
    report = Report(k.hz, quiet_ms)
    step = burst_ms / events_per_burst / 1000.0
    for b in range(bursts):
        start = t0 + b * (burst_ms + gap_ms) / 1000.0
        for i in range(events_per_burst):
            # the watcher wakes at each notification (a stand-in for inotify readiness)
            await anyio.sleep_until(start + (i + 1) * step)
            path = FILES[i % len(FILES)]
            report.events.append(Event(b, k.jiffies, _ms_since(t0), path))
            d.notify(path)
    # the watcher stays quiet for gap_ms after the last burst too, then the app shuts down
    await anyio.sleep_until(t0 + bursts * (burst_ms + gap_ms) / 1000.0)
    # the shutdown order: run (or cancel) a still-armed handler first, then free the queue;
    # destroy_workqueue() does not know about armed timers (one firing later would queue on
    # freed memory in C)
    report.flushed = await flush_delayed_work(d.dwork)
    await destroy_workqueue(wq)
    report.runs = d.runs
    return report


def format_report(report: Report) -> list[str]:
    """The lines :func:`main` prints."""
    delay = report.quiet_ms * report.hz // 1000
    lines = [
        f"debounce: HZ={report.hz}; every event calls mod_delayed_work(wq, dwork, "
        f"msecs_to_jiffies({report.quiet_ms}) = {delay})"
    ]
    nr_bursts = max((e.burst for e in report.events), default=-1) + 1
    for b in range(nr_bursts):
        events = [e for e in report.events if e.burst == b]
        first, last = events[0], events[-1]
        later = [e.ms for e in report.events if e.burst > b]
        end_ms = later[0] if later else float("inf")
        runs = [r for r in report.runs if first.ms <= r.ms < end_ms]
        lines.append(
            f"burst {b + 1}: {len(events)} events in {last.ms - first.ms:.1f} ms: "
            f"jiffies {first.jiffies} ({first.ms:.1f} ms) .. {last.jiffies} ({last.ms:.1f} ms)"
        )
        lines.extend(
            f"  handler ran at jiffies {run.jiffies} ({run.ms:.1f} ms), "
            f"{run.jiffies - last.jiffies} jiffies after the last event; "
            f"{len(run.files)} files changed: {', '.join(run.files)}"
            for run in runs
        )
        lines.append(f"  handler runs for this burst: {len(runs)}")
    left = "ran the pending handler" if report.flushed else "nothing was pending"
    lines.append(
        f"shutdown: flush_delayed_work() -> {report.flushed} ({left}), destroy_workqueue()"
    )
    lines.append(
        f"{len(report.events)} events, {len(report.runs)} handler runs "
        f"({len(report.events) - len(report.runs)} rebuilds saved)"
    )
    return lines


async def _main() -> None:
    report = await debounce_bursts()
    for line in format_report(report):
        print(line)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the demo in a fresh kernel."""
    p = argparse.ArgumentParser(description="Debounce a burst of events with mod_delayed_work().")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument(
        "--real-time",
        dest="virtual_time",
        action="store_false",
        help="run on the wall clock (the timings then vary a little)",
    )
    args = p.parse_args(argv)
    kdefer_async.run(
        _main, nr_cpus=2, hz=1000, backend=args.backend, virtual_time=args.virtual_time
    )


if __name__ == "__main__":
    main()
