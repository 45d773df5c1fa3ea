"""A device read by an OS thread: its interrupts raised with ``Kernel.raise_irq_threadsafe``.

**The kernel primitive.** A device tells the CPU it has data by raising an interrupt. The
driver's hardirq handler does as little as it can, with interrupts off: it takes the data out
of the device's small receive FIFO before it overflows, and defers the rest. A *tasklet*
(softirq context: still atomic, but with interrupts on) parses what arrived, and a *work
item* (a kworker, process context) does what may sleep, such as storing it. Interrupts that
come while the tasklet is scheduled cost nothing more: one run handles everything taken so
far, and a work item queued while pending is not queued twice.

**Why an application wants it.** Blocking I/O often lives in a thread of its own: a serial
port, a GPIO or USB library, a C SDK that calls back from its own thread. That thread must not
touch the kernel (nor any event-loop state). ``Kernel.raise_irq_threadsafe(irq)`` is the one
call it makes: it never blocks, checks its arguments in the calling thread, and queues the
interrupt; the event loop is woken once per batch and delivers each interrupt exactly once,
in order, on its own thread, in hardirq context, as ``raise_irq`` does.

Here a socketpair plays the serial line. A *peer* thread writes ``--lines`` readings
(``reading <seq> <value>``) into one end, as a sensor would; the *device thread*
``uart0-rx`` reads the other end with a blocking ``readline()`` and, for each line, puts it in
the device's receive FIFO (a deque: appending and popping are atomic across threads, as the
hardware's FIFO is) and raises the UART's interrupt (IRQ 4, the PC's COM1 line). At the end of
the stream it raises one last interrupt with the FIFO's end marker. The handler drains the
FIFO, so an interrupt may find it empty: an earlier handler took its line. Each lock is taken
the way its users require, or lockdep says so: the handler's buffer with interrupts off in
the tasklet (``spin_lock_irqsave``), the tasklet's with bottom halves off in the work function
(``spin_lock_bh``). The tasklet parses and checks the sequence numbers; the work function stores
the readings (``await msleep(1)`` per batch stands for a slow disk) and completes a
``Completion`` when the end marker has been stored, which is what ``main()`` waits for.

The summary shows what is exact (every line handled once and in order, one interrupt per line
plus one, all of them on the event loop's thread) and what depends on timing (how many
interrupts found the FIFO drained, how many tasklet and work runs the batching saved), then
``/proc/interrupts``.

Run it: ``python examples/device_thread.py [--backend trio] [--lines 1000]``
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from kdefer_async import (
    IRQ_HANDLED,
    Completion,
    Kernel,
    SpinLock,
    Tasklet,
    Work,
    complete,
    current_kernel,
    free_irq,
    in_hardirq,
    in_serving_softirq,
    in_task,
    msleep,
    request_irq,
    schedule_work,
    spin_lock,
    spin_lock_bh,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irqrestore,
    tasklet_schedule,
    wait_for_completion_interruptible,
)
from kdefer_async.testing import backend_params

#: The UART's interrupt line (COM1 on a PC).
UART_IRQ = 4
#: In the device FIFO, in place of a line: the end of the stream (carrier lost).
EOF = None


@dataclass
class Stats:
    """What each stage saw. ``hardirq_on_loop``/``wrong_context`` are the invariants."""

    lines_sent: int = 0
    irqs_raised: int = 0
    irqs_handled: int = 0
    hardirq_on_loop: int = 0
    wrong_context: int = 0
    fifo_drained: int = 0
    tasklet_runs: int = 0
    parsed: int = 0
    out_of_sequence: int = 0
    work_runs: int = 0
    stored: list[tuple[int, int]] = field(default_factory=list)


class Uart:
    """The device (its FIFO, filled by the device thread) and its driver (everything else)."""

    def __init__(self, loop_thread: int) -> None:
        #: The hardware receive FIFO: filled by the device thread, drained by the handler.
        self.fifo: deque[bytes | None] = deque()
        self.loop_thread = loop_thread
        self.rx_lock = SpinLock("uart_rx_lock")  # guards rx: hardirq vs tasklet
        self.rx: deque[bytes | None] = deque()  # taken from the FIFO, not parsed yet
        self.readings_lock = SpinLock("uart_readings_lock")  # guards readings: tasklet vs work
        self.readings: deque[tuple[int, int]] = deque()  # parsed, not stored yet
        self.eof_parsed = False
        self.next_seq = 0
        self.tasklet = Tasklet(self.rx_tasklet)
        self.work = Work(self.store_work)
        self.done = Completion()
        self.stats = Stats()

    # -- hardirq -------------------------------------------------------------------------

    def interrupt(self, irq: int, dev: object) -> int:
        """The handler: move what is in the FIFO to the driver's buffer, defer the rest."""
        st = self.stats
        st.irqs_handled += 1
        if threading.get_ident() == self.loop_thread:
            st.hardirq_on_loop += 1
        if not in_hardirq():
            st.wrong_context += 1
        if not self.fifo:
            # an earlier interrupt's handler took this one's line: still our device's
            # interrupt, so IRQ_HANDLED (IRQ_NONE would count towards "nobody cared")
            st.fifo_drained += 1
            return IRQ_HANDLED
        spin_lock(self.rx_lock)  # interrupts are off in a handler: the plain lock will do
        while self.fifo:
            self.rx.append(self.fifo.popleft())
        spin_unlock(self.rx_lock)
        tasklet_schedule(self.tasklet)  # one run for everything taken meanwhile
        return IRQ_HANDLED

    # -- softirq -------------------------------------------------------------------------

    def rx_tasklet(self, t: Tasklet) -> None:
        """The tasklet: parse what the handler took, check the sequence, hand it to the work."""
        st = self.stats
        st.tasklet_runs += 1
        if not in_serving_softirq():
            st.wrong_context += 1
        flags = spin_lock_irqsave(self.rx_lock)  # the handler takes it too: interrupts off
        lines = list(self.rx)
        self.rx.clear()
        spin_unlock_irqrestore(self.rx_lock, flags)
        spin_lock(self.readings_lock)  # softirq context: bottom halves are already off
        for line in lines:
            if line is EOF:
                self.eof_parsed = True
                continue
            _word, seq, value = line.split()
            if int(seq) != self.next_seq:
                st.out_of_sequence += 1
            self.next_seq = int(seq) + 1
            self.readings.append((int(seq), int(value)))
            st.parsed += 1
        spin_unlock(self.readings_lock)
        schedule_work(self.work)  # no-op while pending: the batch grows instead

    # -- process context -------------------------------------------------------------------

    async def store_work(self, work: Work) -> None:
        """The work function: store the parsed readings; it may sleep."""
        st = self.stats
        st.work_runs += 1
        if not in_task():
            st.wrong_context += 1
        spin_lock_bh(self.readings_lock)  # keep the tasklet off this CPU meanwhile
        batch = list(self.readings)
        self.readings.clear()
        finished = self.eof_parsed
        spin_unlock_bh(self.readings_lock)
        if batch:
            await msleep(1)  # a slow disk
            st.stored.extend(batch)
        if finished and not self.readings:
            complete(self.done)


def peer(sock: socket.socket, lines: int) -> None:
    """The far end of the serial line: a sensor sending readings, then hanging up."""
    with sock:
        for seq in range(lines):
            sock.sendall(b"reading %d %d\n" % (seq, seq * 7 % 100))
        sock.shutdown(socket.SHUT_WR)


def device_thread(kernel: Kernel, uart: Uart, sock: socket.socket) -> None:
    """The device: a blocking reader that raises the UART's interrupt for every line."""
    st = uart.stats
    with sock, sock.makefile("rb") as stream:
        for line in stream:
            uart.fifo.append(line)
            kernel.raise_irq_threadsafe(UART_IRQ)  # never blocks; the loop delivers it
            st.irqs_raised += 1
            st.lines_sent += 1
    uart.fifo.append(EOF)
    kernel.raise_irq_threadsafe(UART_IRQ)
    st.irqs_raised += 1


@dataclass
class Report:
    """What :func:`device_demo` saw."""

    stats: Stats
    irq_cpu: int
    proc_interrupts: str
    oopses: int
    #: dmesg lines with a BUG or WARNING (lockdep, sleeping in atomic context...)
    warnings: int


async def device_demo(lines: int = 1000) -> Report:
    """
    Register the UART's handler, start the peer and the device thread, wait until every
    reading is stored, join the threads and free the line. Runs inside a booted
    :class:`kdefer_async.Kernel`.
    """
    k = current_kernel()
    uart = Uart(threading.get_ident())
    ret = request_irq(UART_IRQ, uart.interrupt, 0, "uart0", uart)
    assert ret == 0, ret
    ours, theirs = socket.socketpair()
    threads = [
        threading.Thread(target=peer, args=(theirs, lines), name="sensor"),
        threading.Thread(target=device_thread, args=(k, uart, ours), name="uart0-rx"),
    ]
    for thread in threads:
        thread.start()
    await wait_for_completion_interruptible(uart.done)  # the work stored the end marker
    for thread in threads:
        await anyio.to_thread.run_sync(thread.join)  # they are done, or about to be
    interrupts = k.proc_interrupts()  # while the line is ours
    irq_cpu = k.irq_effective_cpu(UART_IRQ)
    free_irq(UART_IRQ, uart)
    warnings = sum("BUG" in line or "WARNING" in line for line in k.dmesg())
    return Report(uart.stats, irq_cpu, interrupts, len(k.oopses), warnings)


def format_report(report: Report, nr_cpus: int, hz: int) -> list[str]:
    """The lines :func:`main` prints."""
    st = report.stats
    seqs = [seq for seq, _value in st.stored]
    in_order = seqs == list(range(st.lines_sent))
    return [
        f"device_thread: {nr_cpus} CPUs, HZ={hz}; IRQ {UART_IRQ} (uart0) bound to "
        f"CPU{report.irq_cpu}",
        f"sensor sent {st.lines_sent} lines; device thread 'uart0-rx' raised {st.irqs_raised} "
        "interrupts (one per line, one at the end of the stream)",
        f"hardirq: {st.irqs_handled} interrupts handled, {st.hardirq_on_loop} of them on the "
        f"event loop's thread; {st.irqs_handled - st.fifo_drained} took lines from the FIFO, "
        f"{st.fifo_drained} found it drained by an earlier one",
        f"tasklet: {st.tasklet_runs} runs in softirq context parsed {st.parsed} lines, "
        f"{st.out_of_sequence} out of sequence",
        f"work: {st.work_runs} runs in process context stored {len(st.stored)} readings"
        + (", each once, in order" if in_order else ", NOT each once in order"),
        f"sum of the readings: {sum(value for _seq, value in st.stored)}",
        f"wrong context: {st.wrong_context}; oopses: {report.oopses}; "
        f"kernel warnings: {report.warnings}",
        "",
        "$ cat /proc/interrupts",
        *report.proc_interrupts.rstrip("\n").split("\n"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return 0 if every reading was handled once, in order, in the right
    contexts."""
    p = argparse.ArgumentParser(description="A device thread raising interrupts.")
    p.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    p.add_argument("--lines", type=int, default=1000, metavar="N", help="readings (1000)")
    args = p.parse_args(argv)
    if args.lines < 0:
        p.error("--lines must be >= 0")
    nr_cpus, hz = 2, 250

    async def app() -> Report:
        async with Kernel(nr_cpus=nr_cpus, hz=hz):
            with anyio.fail_after(60):  # wall clock: a lost interrupt would hang here
                return await device_demo(args.lines)

    backend, options = backend_params(args.backend)
    report = anyio.run(app, backend=backend, backend_options=options)
    for line in format_report(report, nr_cpus, hz):
        print(line)
    st = report.stats
    good = (
        [seq for seq, _value in st.stored] == list(range(args.lines))
        and st.irqs_raised == args.lines + 1
        and st.hardirq_on_loop == st.irqs_handled == st.irqs_raised
        and not st.wrong_context
        and not st.out_of_sequence
        and not report.oopses
        and not report.warnings
    )
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
