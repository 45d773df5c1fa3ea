"""A NAPI-style TCP line server: hardirq, then the NET_RX softirq with a budget, then a workqueue.

**The kernel primitive.** This is how Linux receives packets. The network card raises an
interrupt; the hardirq handler does almost nothing (it notes the device needs polling and
raises ``NET_RX_SOFTIRQ``); on the way out of the interrupt the NET_RX softirq *polls* the
device's receive ring. A poll handles at most a *budget* of packets (the NAPI weight, 64):
if it used it all and the ring still holds data it leaves the device scheduled and raises
NET_RX again, so one busy device cannot starve everything else. ``__do_softirq`` restarts at
most ``MAX_SOFTIRQ_RESTART`` (10) times; whatever is left then is deferred to the CPU's
``ksoftirqd`` thread, which runs at normal priority (unless a task on that CPU re-enables
bottom halves first: ``local_bh_enable()`` runs pending softirqs on the spot). Softirq code
must never sleep, so work that may sleep (here: writing the reply to the socket, which may
block on a full send buffer) is handed to a work item, which runs in a kworker in process
context.

**Why an application wants it.** The same split serves any server that ingests fast and
replies slowly: keep the receive path short, non-blocking and bounded (it only parses and
queues), batch what arrived while you were busy, and let a sleeping context do the slow
replies, one work item per connection, so replies to one client stay in order and a slow
client holds up no other.

Here an anyio TCP server on 127.0.0.1 (port 0: an ephemeral port) plays the network card:
each chunk it receives goes on the per-CPU receive ring of the connection's CPU (connection
*n* is steered to CPU ``n % nr_cpus``, as RSS would) and raises the card's interrupt on that
CPU with ``Kernel.raise_irq``. The NET_RX action splits the chunks into lines (64 lines per
pass) and queues each connection's reply work; the work function sends ``ok <LINE>`` for every
line. Two clients each send bursts of 10, 100 and 1000 lines and wait for the replies to each
burst: 10 lines fit one pass; 100 need a second, re-raised pass; 1000 need 16 passes, and
after 10 of them on the interrupt's exit the remaining 6 are deferred (to ``ksoftirqd``, or
to the kworker's ``spin_unlock_bh()`` if it gets there first). Interrupts that would arrive
while the device is still being polled are suppressed, as NAPI masks the device's interrupt
until a poll finishes under budget.

``main()`` boots the kernel inside the application's own event loop (``async with
Kernel(...)``), starts the server, runs the clients, shuts down and prints a summary and
``/proc/softirqs``. It runs in virtual time by default, so every count printed is exact;
``--real-time`` runs it on the wall clock (a softirq pass may then be cut short by the 2 ms
``MAX_SOFTIRQ_TIME``, and the counts vary a little).

Run it: ``python examples/napi_server.py [--backend trio] [--bursts 10,100,1000]
[--clients 2] [--real-time]``
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.abc

from kdefer_async import (
    IRQ_HANDLED,
    NET_RX_SOFTIRQ,
    Kernel,
    SpinLock,
    Work,
    Workqueue,
    alloc_workqueue,
    container_of,
    current_kernel,
    destroy_workqueue,
    free_irq,
    open_softirq,
    queue_work,
    raise_softirq_irqoff,
    request_irq,
    smp_processor_id,
    spin_lock,
    spin_lock_bh,
    spin_unlock,
    spin_unlock_bh,
)
from kdefer_async.testing import backend_params

#: The simulated network card's interrupt line.
NIC_IRQ = 42
#: Lines one NET_RX poll may handle (the kernel's NAPI weight, ``NAPI_POLL_WEIGHT``).
BUDGET = 64
#: In place of a chunk: the peer closed its side (it travels the ring behind the data).
FIN = None


class Conn:
    """One TCP connection, as the "driver" sees it."""

    def __init__(self) -> None:
        self.work = Work(reply_work)  # sends the replies; one item per connection
        self.lock = SpinLock()  # guards lines and fin: softirq vs kworker
        self.lines: deque[bytes] = deque()  # complete lines waiting for a reply
        self.fin = False  # the peer closed; reply to what is left, then close
        self.partial = b""  # the start of a line whose end has not arrived (softirq only)
        self.stream: anyio.abc.ByteStream | None = None
        self.cpu = 0
        self.closed = anyio.Event()


@dataclass
class NicStats:
    """Counters of the simulated card and its NET_RX processing."""

    nr_cpus: int
    irqs: list[int] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)
    passes: list[int] = field(default_factory=list)
    squeezed: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("irqs", "suppressed", "passes", "squeezed", "deferred", "lines"):
            setattr(self, name, [0] * self.nr_cpus)


class Nic:
    """The simulated network card: per-CPU receive rings, its hardirq and the NET_RX poll."""

    def __init__(self, nr_cpus: int, wq: Workqueue) -> None:
        self.rings: list[deque[tuple[Conn, bytes | None]]] = [deque() for _ in range(nr_cpus)]
        #: NAPI_STATE_SCHED per CPU: a poll is scheduled, the device interrupt is masked.
        self.polling = [False] * nr_cpus
        #: Inside raise_irq() for that CPU: a NET_RX pass now runs on the interrupt's exit.
        self.in_irq = [False] * nr_cpus
        self.wq = wq
        self.stats = NicStats(nr_cpus)

    def receive(self, conn: Conn, chunk: bytes | None) -> None:
        """The card DMAs *chunk* (or FIN) into the ring of *conn*'s CPU, interrupts that CPU."""
        cpu = conn.cpu
        self.rings[cpu].append((conn, chunk))
        if self.polling[cpu]:
            self.stats.suppressed[cpu] += 1  # masked: the running poll will find it
            return
        self.in_irq[cpu] = True
        try:
            current_kernel().raise_irq(NIC_IRQ, cpu)  # handler, then softirqs on irq exit
        finally:
            self.in_irq[cpu] = False

    def interrupt(self, irq: int, dev: object) -> int:
        """The hardirq handler: mask the device, schedule the poll (``napi_schedule``)."""
        cpu = smp_processor_id()
        self.stats.irqs[cpu] += 1
        self.polling[cpu] = True
        raise_softirq_irqoff(NET_RX_SOFTIRQ)
        return IRQ_HANDLED

    def net_rx_action(self) -> None:
        """The NET_RX softirq: poll this CPU's ring for at most BUDGET lines."""
        cpu = smp_processor_id()
        st = self.stats
        st.passes[cpu] += 1
        if not self.in_irq[cpu]:
            # left over after MAX_SOFTIRQ_RESTART passes: ksoftirqd runs it, unless a task on
            # this CPU re-enables bottom halves first (the kworker's spin_unlock_bh does)
            st.deferred[cpu] += 1
        ring = self.rings[cpu]
        budget = BUDGET
        while ring and budget:
            conn, chunk = ring.popleft()
            if chunk is FIN:
                self._deliver(conn, None)
                continue
            data = conn.partial + chunk
            conn.partial = b""
            start = 0
            while budget:
                end = data.find(b"\n", start)
                if end < 0:
                    break
                self._deliver(conn, data[start:end])
                budget -= 1
                start = end + 1
            rest = data[start:]
            if budget:
                conn.partial = rest  # an incomplete line: wait for the rest of it
            elif rest:
                ring.appendleft((conn, rest))  # out of budget mid-chunk: next poll goes on
        st.lines[cpu] += BUDGET - budget
        if ring:
            # budget spent and more to do: stay scheduled, poll again (time_squeeze)
            st.squeezed[cpu] += 1
            raise_softirq_irqoff(NET_RX_SOFTIRQ)
        else:
            self.polling[cpu] = False  # napi_complete_done(): unmask the device

    def _deliver(self, conn: Conn, line: bytes | None) -> None:
        """Hand a complete line (or, with None, the FIN) to the connection's reply work."""
        spin_lock(conn.lock)  # softirq context: BHs are already off here
        if line is None:
            conn.fin = True
        else:
            conn.lines.append(line)
        spin_unlock(conn.lock)
        queue_work(self.wq, conn.work)  # no-op if already pending: replies get batched


async def reply_work(work: Work) -> None:
    """The work function: reply to every line received so far; it may sleep."""
    conn = container_of(work, Conn, "work")
    assert conn.stream is not None
    while True:
        spin_lock_bh(conn.lock)  # process context: keep NET_RX off this CPU meanwhile
        batch = list(conn.lines)
        conn.lines.clear()
        fin = conn.fin
        spin_unlock_bh(conn.lock)
        if not batch:
            break
        reply = b"".join(b"ok " + line.upper() + b"\n" for line in batch)
        try:
            await conn.stream.send(reply)  # may block on a full send buffer: a sleep
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            fin = True
            break
    if fin:
        conn.closed.set()


@dataclass
class ClientResult:
    """What one client sent and got back."""

    index: int
    sent: int
    replies: int
    in_order: bool
    closed_by_server: bool


def _lines_for(client: int, count: int, first: int) -> list[bytes]:
    return [b"client %d line %05d" % (client, first + i) for i in range(count)]


async def _client(index: int, bursts: Sequence[int], stream: anyio.abc.ByteStream) -> ClientResult:
    """Send each burst in one write, then read its replies; finally close and see EOF."""
    sent = replies = 0
    ok = True
    buf = b""
    async with stream:
        for size in bursts:
            lines = _lines_for(index, size, sent)
            await stream.send(b"".join(line + b"\n" for line in lines))
            sent += size
            got: list[bytes] = []
            while len(got) < size:
                buf += await stream.receive()
                *complete, buf = buf.split(b"\n")
                got.extend(complete)
            replies += len(got)
            ok = ok and got == [b"ok " + line.upper() for line in lines]
        await stream.send_eof()
        try:
            extra = await stream.receive()
        except anyio.EndOfStream:
            closed = True
        else:
            closed = False
            ok = ok and not extra
    return ClientResult(index, sent, replies, ok, closed)


@dataclass
class Report:
    """What :func:`napi_demo` saw."""

    clients: list[ClientResult]
    stats: NicStats
    proc_softirqs: str
    proc_interrupts: str
    oopses: int


async def napi_demo(bursts: Sequence[int] = (10, 100, 1000), clients: int = 2) -> Report:
    """
    Start the server on 127.0.0.1 (ephemeral port), run *clients* clients that each send
    *bursts* and check their replies, shut everything down, return what happened. Runs inside
    a booted :class:`kdefer_async.Kernel`.
    """
    k = current_kernel()
    wq = alloc_workqueue("napi_reply", 0, 0)
    assert wq is not None
    nic = Nic(k.nr_cpus, wq)
    open_softirq(NET_RX_SOFTIRQ, nic.net_rx_action)
    ret = request_irq(NIC_IRQ, nic.interrupt, 0, "kdefer-nic", nic)
    assert ret == 0, ret

    async def handle(stream: anyio.abc.ByteStream, n: int) -> None:
        conn = Conn()
        conn.stream = stream
        conn.cpu = n % k.nr_cpus  # receive-side scaling: a connection sticks to a CPU
        async with stream:
            while True:
                try:
                    chunk = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
                nic.receive(conn, chunk)
            nic.receive(conn, FIN)
            await conn.closed.wait()  # the reply work has answered everything

    async def serve(listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup) -> None:
        n = 0
        while True:
            stream = await listener.accept()
            tg.start_soon(handle, stream, n)  # accept order decides the CPU
            n += 1

    results: list[ClientResult] = []
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0) as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as server_tg:
            tcp = listener.listeners[0]  # 127.0.0.1 only: one socket
            assert isinstance(tcp, anyio.abc.SocketListener)
            server_tg.start_soon(serve, tcp, server_tg)
            # connect one after the other, so that client i is accepted as connection i
            streams = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(clients)]
            async with anyio.create_task_group() as client_tg:

                async def run_client(i: int) -> None:
                    results.append(await _client(i, bursts, streams[i]))

                for i in range(clients):
                    client_tg.start_soon(run_client, i)
            server_tg.cancel_scope.cancel()  # every client is done: stop accepting
    await destroy_workqueue(wq)  # nothing is left to reply to: this drains and frees it
    softirqs, interrupts = k.proc_softirqs(), k.proc_interrupts()  # while the line is ours
    free_irq(NIC_IRQ, nic)
    results.sort(key=lambda r: r.index)
    return Report(results, nic.stats, softirqs, interrupts, len(k.oopses))


def format_report(report: Report, bursts: Sequence[int]) -> list[str]:
    """The lines :func:`main` prints."""
    st = report.stats
    lines = [
        f"napi_server: listening on 127.0.0.1 (port 0: ephemeral), {st.nr_cpus} CPUs, "
        f"budget {BUDGET} lines per NET_RX poll"
    ]
    for r in report.clients:
        verdict = "all in order" if r.in_order else "WRONG"
        lines.append(
            f"client {r.index} (CPU{r.index % st.nr_cpus}): sent {r.sent} lines in bursts of "
            f"{', '.join(map(str, bursts))}; {r.replies} replies, {verdict}; "
            f"{'closed by the server' if r.closed_by_server else 'NOT closed'}"
        )
    lines.extend(
        f"CPU{cpu}: {st.irqs[cpu]} NIC interrupts ({st.suppressed[cpu]} suppressed while "
        f"polling), {st.passes[cpu]} NET_RX polls for {st.lines[cpu]} lines, "
        f"{st.squeezed[cpu]} out of budget (re-raised), {st.deferred[cpu]} deferred to ksoftirqd"
        for cpu in range(st.nr_cpus)
    )
    lines.append(f"oopses: {report.oopses}")
    lines.append("")
    lines.append("$ cat /proc/softirqs")
    lines.extend(report.proc_softirqs.rstrip("\n").split("\n"))
    lines.append("")
    lines.append("$ cat /proc/interrupts")
    lines.extend(report.proc_interrupts.rstrip("\n").split("\n"))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return 0 if every client got every reply, in order."""
    p = argparse.ArgumentParser(description="A NAPI-style TCP line server.")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--clients", type=int, default=2, metavar="N", help="clients (default 2)")
    p.add_argument(
        "--bursts",
        default="10,100,1000",
        metavar="A,B,...",
        help="lines per burst, each client (default 10,100,1000)",
    )
    p.add_argument("--real-time", dest="virtual_time", action="store_false", help="wall clock")
    args = p.parse_args(argv)
    try:
        bursts = [int(b) for b in args.bursts.split(",")]
    except ValueError:
        p.error("--bursts takes comma-separated line counts")
    if args.clients < 1 or any(b < 1 for b in bursts):
        p.error("--clients and every burst must be at least 1")

    async def app() -> Report:
        async with Kernel(nr_cpus=2, hz=250):
            return await napi_demo(bursts, args.clients)

    name = args.backend + ("+virtual" if args.virtual_time else "")
    backend, options = backend_params(name)  # ("asyncio", {}), or a virtual clock
    report = anyio.run(app, backend=backend, backend_options=options)
    for line in format_report(report, bursts):
        print(line)
    good = all(r.in_order and r.closed_by_server and r.replies == r.sent for r in report.clients)
    return 0 if good and not report.oopses else 1


if __name__ == "__main__":
    sys.exit(main())
