"""An ordered write-back queue: ``alloc_ordered_workqueue()``.

**The kernel primitive.** An *ordered* workqueue runs at most one work item at a time, in the
order the items were queued, even when an item sleeps. (On a normal workqueue a sleeping item
lets the next one start, so items overlap and can finish in any order.) File systems use one
wherever order is the point: ext4's ``ext4-rsv-conversion``, the journal and log workers of
btrfs and XFS. ``queue_work()`` never sleeps, so the producer hands a record over and goes on;
``drain_workqueue()`` waits until the queue is empty (letting items queue follow-up items);
``destroy_workqueue()`` drains and frees it.

**Why an application wants it.** An append-only log, a journal or a replication stream must
reach the disk (or the peer) in the order it was produced, but the producer should not wait
for each write. Give each record its own work item on an ordered queue: writes happen in the
background, one at a time, in order, and shutdown is "stop producing, drain, destroy".

The producer here queues three records every 10 ms; each write sleeps 2 to 4 ms (a stand-in
for the device), so writes and production overlap. It stops after ``--records`` records or at
Ctrl+C (SIGINT, through ``anyio.open_signal_receiver``), drains and destroys the queue, reads
the file back and shows that every record was written exactly once and in order. With
``--unordered`` the same records go through a plain unbound workqueue instead: the writes
overlap and land out of order, and the check fails (exit status 1).

Run it: ``python examples/writeback.py [--records N] [--out PATH] [--virtual-time]
[--backend trio] [--unordered]``
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import anyio
import anyio.abc

import kdefer_async
from kdefer_async import (
    GFP_KERNEL,
    INIT_WORK,
    WQ_UNBOUND,
    Work,
    Workqueue,
    alloc_ordered_workqueue,
    alloc_workqueue,
    container_of,
    current_kernel,
    destroy_workqueue,
    drain_workqueue,
    kfree,
    kmalloc,
    msleep,
    queue_work,
)

#: Records the producer queues per round, and the sleep between rounds.
BATCH = 3
ROUND_MS = 9
#: How long each write "waits for the device", by record number (msleep(n): n + 1 jiffies).
LATENCY_MS = (3, 1, 2)


class Record:
    """One record, with its work item embedded (a work item carries no argument)."""

    def __init__(self) -> None:
        self.work = Work()
        self.seq = 0
        self.text = ""
        self.sink: Sink | None = None


@dataclass
class Sink:
    """Where the records go, and what the writers saw."""

    out: TextIO
    written: int = 0
    running: int = 0
    max_running: int = 0


async def write_record(work: Work) -> None:
    """The work function: write one record, wait for the "device", free the record."""
    rec = container_of(work, Record, "work")
    sink = rec.sink
    assert sink is not None
    sink.running += 1
    sink.max_running = max(sink.max_running, sink.running)
    try:
        await msleep(LATENCY_MS[rec.seq % len(LATENCY_MS)])  # submit, wait for the device
        sink.out.write(rec.text + "\n")
        sink.out.flush()
        sink.written += 1
    finally:
        sink.running -= 1
        kfree(rec)


@dataclass
class Result:
    """What :func:`writeback` did."""

    produced: int = 0
    interrupted: bool = False
    backlog: int = 0
    max_running: int = 0
    wq_name: str = ""
    oopses: int = 0


async def writeback(
    out: TextIO,
    records: int,
    *,
    ordered: bool = True,
    stop: anyio.Event | None = None,
    on_queued: Callable[[int], object] | None = None,
) -> Result:
    """
    Produce up to *records* records onto a write-back queue writing to *out*, until *stop* is
    set; then drain and destroy the queue. Runs inside a booted :class:`kdefer_async.Kernel`;
    *on_queued* is called with each record number as it is queued.
    """
    wq: Workqueue | None
    if ordered:
        wq = alloc_ordered_workqueue("writeback", 0)
    else:
        wq = alloc_workqueue("writeback", WQ_UNBOUND, 0)
    assert wq is not None
    sink = Sink(out)
    result = Result(wq_name=wq.name)
    seq = 0
    while seq < records:
        if stop is not None and stop.is_set():
            result.interrupted = True
            break
        for _ in range(min(BATCH, records - seq)):
            rec = kmalloc(Record, GFP_KERNEL)  # the writer frees it, as in C
            rec.seq = seq
            rec.text = f"record {seq:06d} value={seq * seq % 9973:04d}"
            rec.sink = sink
            INIT_WORK(rec.work, write_record)
            queue_work(wq, rec.work)  # never sleeps: legal in any context
            if on_queued is not None:
                on_queued(seq)
            seq += 1
        if seq < records:
            await msleep(ROUND_MS)
    result.produced = seq
    result.backlog = seq - sink.written
    await drain_workqueue(wq)  # every queued record is written before this returns
    await destroy_workqueue(wq)
    result.max_running = sink.max_running
    result.oopses = len(current_kernel().oopses)
    return result


def check_file(path: str, produced: int) -> tuple[bool, list[str]]:
    """Read *path* back: were records 0..produced-1 each written exactly once, in order?"""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    seqs = [int(line.split()[1]) for line in lines]
    return seqs == list(range(produced)), lines


async def _watch_sigint(stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[bool]) -> None:
    """Set *stop* at the first Ctrl+C; report (through start()) whether SIGINT is watched."""
    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT)
        with receiver as signals:
            task_status.started(True)
            async for _ in signals:
                print("^C: stopping the producer, draining the queue", flush=True)
                stop.set()
                return
    except NotImplementedError:  # Windows: no signal receivers on asyncio
        task_status.started(False)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="An ordered write-back queue.")
    p.add_argument("--records", type=int, default=300, metavar="N", help="records (default 300)")
    p.add_argument(
        "--out",
        default=os.path.join(tempfile.gettempdir(), "kdefer-writeback.log"),
        metavar="PATH",
        help="the file to write (default: kdefer-writeback.log in the temp directory)",
    )
    p.add_argument(
        "--virtual-time", action="store_true", help="run on a virtual clock (no wall time)"
    )
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument(
        "--unordered",
        action="store_true",
        help="use a plain unbound workqueue instead, to see what goes wrong",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the write-back demo; return 0 if every record was written once and in order."""
    args = _parse(argv)
    if args.records < 0:
        print("writeback: --records must be >= 0", file=sys.stderr)
        return 2

    async def run(out: TextIO) -> Result:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            watching = await tg.start(_watch_sigint, stop)
            hint = " (Ctrl+C to stop early)" if watching else ""
            print(f"producing {args.records} records into {args.out}{hint}", flush=True)
            result = await writeback(out, args.records, ordered=not args.unordered, stop=stop)
            tg.cancel_scope.cancel()
        return result

    with open(args.out, "w", encoding="utf-8") as out:
        result = kdefer_async.run(
            run, out, nr_cpus=2, hz=1000, backend=args.backend, virtual_time=args.virtual_time
        )
    why = "interrupted" if result.interrupted else "done"
    print(f"producer stopped ({why}) after {result.produced} records")
    print(
        f"drain_workqueue({result.wq_name}): {result.backlog} records were still queued; "
        "destroy_workqueue() done"
    )
    print(f"writers running at once: at most {result.max_running}")
    ok, lines = check_file(args.out, result.produced)
    if ok:
        print(f"wrote {len(lines)} records, each exactly once, in order")
    else:
        seqs = [int(line.split()[1]) for line in lines]
        late = sum(1 for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1])
        print(f"NOT in order: {len(lines)} records, {late} written after a later one")
    print(f"last record: {lines[-1] if lines else '(none)'}")
    if result.oopses:
        print(f"kernel oopses: {result.oopses}")
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
