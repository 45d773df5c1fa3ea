"""The kernel side of the embedding recipes: per-key debounce and an ordered journal.

The four ``recipe_*.py`` examples embed one kernel in four kinds of server: Starlette on
uvicorn, aiohttp, a plain asyncio TCP server and a trio TCP server. This module is the part
that stays the same in all four: a :class:`Service` that request handlers call. Each recipe
only shows where its framework lets the kernel boot and how a handler reaches the service.

**The kernel primitives.**

* *Debounce per key*, ``mod_delayed_work()``: every key gets one :class:`DelayedWork`, made
  on its first touch. Each touch pushes the key's deadline back, so ``reindex_key`` runs once,
  ``quiet_ms`` after the last touch of a burst, in a kworker (process context: it may sleep).
  A touch that comes while the key is being reindexed arms it again, for one more run.
* *An ordered journal*, ``alloc_ordered_workqueue()``: each record is a work item of its own
  on an ordered queue, so records are written one at a time and in the order they were
  queued, though every write sleeps (a quick write never passes a slow one before it).
* *Waiting for deferred work*, ``wait_event_timeout()``: a status request may sleep in the
  kernel until the runs and writes it asks for have happened; the work functions
  ``wake_up_all()`` the wait queue when they finish.
* *A clean shutdown*, :meth:`Service.close`: ``flush_delayed_work()`` runs every key that is
  still armed at once, ``destroy_workqueue()`` drains the journal. With ``pending="leave"``
  the armed keys are left to the kernel instead: leaving ``async with Kernel()`` cancels each
  one and names it in dmesg and in ``Kernel.shutdown_report``; nothing is lost silently.

**Where the handlers come from.** A server runs each request or connection in a task of its
own, started outside ``async with Kernel():``. The first kernel call of such a task enters
the one kernel of its event loop as a user task (process context, a pid of its own), so a
handler may call ``mod_delayed_work()`` (which never sleeps) and ``wait_event_timeout()``
(which does) as any process may. Handlers must run on the event loop's thread: a framework's
synchronous handlers run in worker threads, where the kernel is out of reach, so every
handler here is ``async def``.

This module is not run by itself; see the ``recipe_*.py`` scripts next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from dataclasses import dataclass
from typing import Any, Literal

from kdefer_async import (
    GFP_KERNEL,
    INIT_WORK,
    WQ_UNBOUND,
    DelayedWork,
    Kernel,
    SpinLock,
    WaitQueueHead,
    Work,
    Workqueue,
    alloc_ordered_workqueue,
    alloc_workqueue,
    container_of,
    destroy_workqueue,
    flush_delayed_work,
    get_jiffies_64,
    kfree,
    kmalloc,
    mod_delayed_work,
    msecs_to_jiffies,
    msleep,
    queue_work,
    smp_processor_id,
    spin_lock,
    spin_unlock,
    to_delayed_work,
    wait_event_timeout,
    wake_up_all,
)

Pending = Literal["flush", "leave"]

#: How long the reindexing of one key takes (it sleeps, as real work on a disk would).
REINDEX_MS = 1
#: How long each journal write waits for the "device", by record number: a later record is
#: often quicker than the one before it, so only the ordered queue keeps them in order.
WRITE_MS = (3, 1, 2)
#: The longest a status request may ask to wait for deferred work.
MAX_WAIT_MS = 30_000


class ServiceClosed(RuntimeError):
    """The service is shutting down: it takes no more touches or records."""


@dataclass(frozen=True)
class Settings:
    """How a recipe boots its kernel and runs the service."""

    nr_cpus: int = 2
    hz: int = 1000
    #: A key is reindexed once it has been quiet (untouched) this long.
    quiet_ms: int = 200
    #: At shutdown: run the keys still armed (``"flush"``) or leave them to the kernel.
    pending: Pending = "flush"

    def kernel(self) -> Kernel:
        """A kernel to boot with ``async with``."""
        return Kernel(nr_cpus=self.nr_cpus, hz=self.hz)


@dataclass
class Run:
    """One run of the debounced ``reindex_key`` for a key."""

    #: Jiffies when it ran, and how long the key had been quiet by then.
    jiffies: int
    quiet_jiffies: int
    #: The touches it took care of (those since the run before it).
    touches: int
    cpu: int


class Key:
    """A key's debounce state, with its delayed work item embedded (as in C)."""

    def __init__(self, service: Service, name: str) -> None:
        self.service = service
        self.name = name
        self.dwork = DelayedWork(reindex_key)
        self.touches = 0
        self.unseen = 0  # touches since the last run took them
        self.last_touch = 0  # jiffies
        self.runs: list[Run] = []


class Record:
    """A journal record, with its work item embedded: ``kmalloc``'d when queued, freed by
    its writer (nothing else holds it meanwhile, as in C)."""

    def __init__(self) -> None:
        self.work = Work()
        self.service: Service | None = None
        self.seq = 0
        self.text = ""


async def reindex_key(work: Work) -> None:
    """The debounced work function: take the key's new touches and reindex it (may sleep)."""
    key = container_of(to_delayed_work(work), Key, "dwork")
    svc = key.service
    spin_lock(svc.lock)
    now = get_jiffies_64()
    run = Run(now, now - key.last_touch, key.unseen, smp_processor_id())
    key.unseen = 0
    spin_unlock(svc.lock)
    await msleep(REINDEX_MS)  # rebuild the key's index
    key.runs.append(run)
    wake_up_all(svc.waiters)


async def write_record(work: Work) -> None:
    """The journal's work function: write one record (it sleeps for the device)."""
    rec = container_of(work, Record, "work")
    svc = rec.service
    assert svc is not None
    svc.writing += 1
    svc.max_writing = max(svc.max_writing, svc.writing)
    try:
        await msleep(WRITE_MS[rec.seq % len(WRITE_MS)])
        svc.journal.append((rec.seq, rec.text))
    finally:
        svc.writing -= 1
        kfree(rec)
    wake_up_all(svc.waiters)


class Service:
    """
    Per-key debounce and an ordered journal, for request handlers to call.

    Made inside the kernel (it allocates workqueues); its methods may be called from any
    task of the kernel's event loop, a server's handlers included.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.delay = msecs_to_jiffies(settings.quiet_ms)
        keys_wq = alloc_workqueue("keys", WQ_UNBOUND, 0)
        journal_wq = alloc_ordered_workqueue("journal", 0)
        assert keys_wq is not None
        assert journal_wq is not None
        self.keys_wq: Workqueue = keys_wq
        self.journal_wq: Workqueue = journal_wq
        self.lock = SpinLock()  # the keys' counters: touched by handlers and by the runs
        self.waiters = WaitQueueHead()  # status requests waiting for runs and writes
        self.keys: dict[str, Key] = {}
        self.queued = 0
        self.journal: list[tuple[int, str]] = []  # (place in the queue, text), as written
        self.writing = 0
        self.max_writing = 0
        self.closing = False
        #: How many armed keys :meth:`close` ran at once (``pending="flush"``).
        self.flushed_at_exit = 0

    def touch(self, name: str) -> int:
        """Note a change of key *name* and push its reindexing back; return its touches so
        far. Never sleeps."""
        if self.closing:
            raise ServiceClosed("shutting down")
        spin_lock(self.lock)
        key = self.keys.get(name)
        if key is None:
            key = self.keys[name] = Key(self, name)
        key.touches += 1
        key.unseen += 1
        key.last_touch = get_jiffies_64()
        touches = key.touches
        spin_unlock(self.lock)
        mod_delayed_work(self.keys_wq, key.dwork, self.delay)
        return touches

    def write(self, text: str) -> int:
        """Queue *text* for the journal; return its place in the queue (0, 1, ...). Never
        sleeps."""
        if self.closing:
            raise ServiceClosed("shutting down")
        rec = kmalloc(Record, GFP_KERNEL)  # its writer frees it
        rec.service = self
        rec.seq = seq = self.queued
        rec.text = text
        INIT_WORK(rec.work, write_record)
        self.queued += 1
        queue_work(self.journal_wq, rec.work)
        return seq

    def in_order(self) -> bool:
        """Whether the journal holds the records in the order they were queued, each once."""
        return [seq for seq, _ in self.journal] == list(range(len(self.journal)))

    def runs(self) -> int:
        """Debounced runs finished so far, all keys together."""
        return sum(len(key.runs) for key in self.keys.values())

    async def wait(self, runs: int, written: int, timeout_ms: int) -> bool:
        """Sleep until at least *runs* debounced runs have finished and *written* records
        are in the journal, for at most *timeout_ms* (or until the service shuts down);
        return whether they have."""

        def done() -> bool:
            return self.runs() >= runs and len(self.journal) >= written

        if not done() and not self.closing:
            timeout = msecs_to_jiffies(min(max(timeout_ms, 0), MAX_WAIT_MS))
            # the shutdown wakes every waiter, as kthread_should_stop() ends a kthread's wait
            await wait_event_timeout(self.waiters, lambda: done() or self.closing, timeout)
        return done()

    def status(self) -> dict[str, Any]:
        """What was touched and what ran, as JSON-ready data."""
        return {
            "quiet_jiffies": self.delay,
            "keys": {
                name: {
                    "touches": key.touches,
                    "runs": [
                        {
                            "jiffies": r.jiffies,
                            "quiet_jiffies": r.quiet_jiffies,
                            "touches": r.touches,
                            "cpu": r.cpu,
                        }
                        for r in key.runs
                    ],
                }
                for name, key in sorted(self.keys.items())
            },
            "queued": self.queued,
            "journal": [{"seq": seq, "record": text} for seq, text in self.journal],
            "max_writers": self.max_writing,
        }

    async def status_after(self, runs: int, written: int, timeout_ms: int) -> dict[str, Any]:
        """:meth:`status` once :meth:`wait` returns, with ``"ready"``: whether it was met."""
        ready = await self.wait(runs, written, timeout_ms)
        return {"ready": ready, **self.status()}

    def shut_down(self) -> None:
        """Take no more touches or records, and wake every status request that waits (each
        answers at once with what ran so far). Never sleeps."""
        self.closing = True
        wake_up_all(self.waiters)

    async def close(self) -> None:
        """
        Shut down: :meth:`shut_down`, then run the keys still armed now
        (``pending="flush"``) or leave them to the kernel's exit; write out the journal.
        """
        self.shut_down()
        if self.settings.pending == "flush":
            for key in list(self.keys.values()):
                if await flush_delayed_work(key.dwork):
                    self.flushed_at_exit += 1
            await destroy_workqueue(self.keys_wq)
        # ``"leave"``: armed keys stay armed, so the queue stays too (a timer must not queue
        # onto a destroyed workqueue); the kernel cancels them and names each one
        await destroy_workqueue(self.journal_wq)  # drains: every queued record is written


# -- the line protocol of the two TCP recipes ---------------------------------------------------

HELP = "commands: touch KEY | write TEXT | status [RUNS [RECORDS [TIMEOUT_MS]]] | quit"


async def line_command(service: Service, line: str) -> str | None:
    """
    Answer one command line of the TCP recipes; ``None`` means: close the connection.

    ``touch KEY`` -> ``touched KEY N``; ``write TEXT`` -> ``queued SEQ``;
    ``status [RUNS [RECORDS [TIMEOUT_MS]]]`` -> the status as one line of JSON, once RUNS
    debounced runs have finished and RECORDS records are written (or the timeout, 5 s by
    default, passed); ``quit`` -> ``bye``, then the server closes the connection.
    """
    cmd, _, arg = line.strip().partition(" ")
    try:
        if cmd == "touch" and arg:
            return f"touched {arg} {service.touch(arg)}"
        if cmd == "write" and arg:
            return f"queued {service.write(arg)}"
    except ServiceClosed as exc:
        return f"error: {exc}"
    if cmd == "status":
        try:
            given = [int(word) for word in arg.split()]
        except ValueError:
            return "error: status takes numbers"
        runs, written, timeout_ms = [*given, *(0, 0, 5000)[len(given) :]][:3]
        return json.dumps(await service.status_after(runs, written, timeout_ms))
    if cmd == "quit":
        return None
    return f"error: {HELP}"


# -- what every recipe shares: its options, its socket, its report at exit ----------------------


def add_arguments(p: argparse.ArgumentParser, default_port: int) -> None:
    """The command-line options every recipe takes."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"port to listen on ({default_port}; 0 picks a free one)",
    )
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the kernel (2)")
    p.add_argument("--hz", type=int, default=1000, help="its HZ (1000)")
    p.add_argument(
        "--quiet-ms", type=int, default=200, help="reindex a key once untouched this long (200)"
    )
    p.add_argument(
        "--pending",
        choices=("flush", "leave"),
        default="flush",
        help="at exit, run the keys still armed (flush) or leave them to the kernel (leave)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` the parsed options ask for."""
    pending: Pending = "leave" if args.pending == "leave" else "flush"
    return Settings(nr_cpus=args.cpus, hz=args.hz, quiet_ms=args.quiet_ms, pending=pending)


def listening_socket(host: str, port: int) -> socket.socket:
    """
    A TCP socket listening on *host*:*port* (port 0: any free port), for a server to accept
    on; its port is known before the server starts.

    It is made with ``IPPROTO_TCP`` as its protocol, as ``loop.create_server()`` makes its
    own: asyncio sets ``TCP_NODELAY`` only on such sockets, and without it (a
    ``socket.create_server()`` socket has protocol 0) every response on a keep-alive
    connection waits some 40 ms for the client's delayed ACK.
    """
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock


def announce(url: str) -> None:
    """The first line a recipe prints, once it listens."""
    print(f"listening on {url} (Ctrl+C to stop)", flush=True)


@dataclass
class Running:
    """A TCP recipe's running parts: its kernel, its service and its port (still readable
    once it has stopped)."""

    kernel: Kernel | None = None
    service: Service | None = None
    port: int = 0


def exit_report(kernel: Kernel | None, service: Service | None) -> list[str]:
    """The lines a recipe prints once its kernel has halted."""
    if kernel is None or service is None:
        return ["the kernel never booted"]
    touches = sum(key.touches for key in service.keys.values())
    lines = [
        f"keys: {_n(len(service.keys), 'key')}, {_n(touches, 'touch')}, "
        f"{_n(service.runs(), 'debounced run')} ({service.flushed_at_exit} at shutdown)",
        f"journal: {len(service.journal)} of {_n(service.queued, 'record')} written, "
        f"{'in order' if service.in_order() else 'NOT in order'}, "
        f"at most {service.max_writing} at once",
    ]
    if kernel.oopses:
        lines.append(f"kernel: {_n(len(kernel.oopses), 'oops')} (see dmesg)")
    report = kernel.shutdown_report
    if report is None or not report.items:
        lines.append("kernel: clean shutdown, nothing left behind")
    else:
        counts = ", ".join(f"{what}: {n}" for what, n in sorted(report.counts().items()))
        lines.append(
            f"kernel: shutdown ({report.reason}) left {_n(len(report), 'item')} behind: {counts}"
        )
    lines.extend(line for line in kernel.dmesg() if "shutdown:" in line)
    lines.append(kernel.dmesg()[-1])
    return lines


def _n(count: int, word: str) -> str:
    """``"1 key"``, ``"2 keys"``, ``"3 touches"``."""
    if count == 1:
        return f"1 {word}"
    return f"{count} {word}{'es' if word.endswith(('ch', 'sh', 's', 'x')) else 's'}"
