"""Interrupts raised from other OS threads: ``Kernel.raise_irq_threadsafe``.

A device thread (a socket reader, a serial poller, a callback from C) never touches the kernel:
it queues the interrupt and wakes the loop, and the loop delivers it in hardirq context, as
``raise_irq`` would. Every test waits for delivery deterministically: the handler completes a
``Completion`` once it has seen what the test expects, and the test waits for that; nothing
sleeps on the clock. The virtual-time backends take part: with no timer armed their loop
blocks for the threads' wake-ups like any other loop.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import pytest

from kdefer_async import (
    IRQ_HANDLED,
    Completion,
    Kernel,
    KernelPanic,
    NoKernelError,
    Tasklet,
    complete,
    current,
    current_kernel,
    in_hardirq,
    in_serving_softirq,
    request_irq,
    smp_processor_id,
    tasklet_schedule,
    wait_for_completion,
)

pytestmark = pytest.mark.anyio

#: Producer threads and interrupts in the stress test.
THREADS = 4
TOTAL = 100_000
#: Lines each producer cycles through: a swap of two of its interrupts changes the sequence.
LINES_PER_THREAD = 32


async def boot(k: Kernel, body: Callable[[Kernel], Awaitable[None]]) -> None:
    """Boot *k* and run *body* in it."""
    async with k:
        await body(k)


def log_lines(k: Kernel) -> list[str]:
    """``k.dmesg()`` without the ``[    1.234567] `` timestamps."""
    return [line.split("] ", 1)[1] for line in k.dmesg()]


def safety_timeout(virtual: bool) -> contextlib.AbstractContextManager[Any]:
    """A wall-clock guard against a hang (a lost interrupt). On virtual time any armed timer
    would fire as soon as the loop waits for a thread, so there the guard is left out."""
    return contextlib.nullcontext() if virtual else anyio.fail_after(60)


def in_thread(fn: Callable[[], object], name: str = "device") -> BaseException | None:
    """Run *fn* in a plain OS thread (no copy of the loop's context) and join it; return what
    it raised, if anything. For calls that return at once (they never wait for the loop)."""
    raised: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=body, name=name)
    thread.start()
    thread.join()
    return raised[0] if raised else None


class Seen:
    """What handlers saw: per line, (thread ident, in_hardirq, CPU, comm)."""

    def __init__(self, expected: int) -> None:
        self.calls: list[tuple[int, int, bool, int, str]] = []
        self.expected = expected
        self.done = Completion()

    def handler(self, irq: int, dev: object) -> int:
        self.calls.append(
            (irq, threading.get_ident(), in_hardirq(), smp_processor_id(), current().comm)
        )
        if len(self.calls) == self.expected:
            complete(self.done)
        return IRQ_HANDLED


@contextlib.contextmanager
def producers(targets: list[Callable[[], None]]) -> Iterator[list[BaseException]]:
    """Start one plain thread per target; join them all on the way out; collect failures."""
    failures: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                failures.append(exc)

        return run

    threads = [
        threading.Thread(target=guarded(fn), name=f"producer-{i}") for i, fn in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    try:
        yield failures
    finally:
        for thread in threads:
            thread.join()


class TestDelivery:
    async def test_four_threads_100k_interrupts(self, virtual: bool) -> None:
        """4 threads raise 100,000 interrupts: each handled exactly once, in hardirq context,
        on the loop's thread, in the order its thread raised it."""
        loop_thread = threading.get_ident()
        per_thread = TOTAL // THREADS
        handled = [0] * THREADS
        out_of_order: list[tuple[int, int, int]] = []
        wrong_context: list[tuple[int, bool]] = []
        done = Completion()
        total = [0]

        def handler(irq: int, dev: tuple[int, int]) -> int:
            t, line = dev
            if not in_hardirq() or threading.get_ident() != loop_thread:
                wrong_context.append((threading.get_ident(), in_hardirq()))
            if line != handled[t] % LINES_PER_THREAD:
                out_of_order.append((t, handled[t], line))
            handled[t] += 1
            total[0] += 1
            if total[0] == TOTAL:
                complete(done)
            return IRQ_HANDLED

        def producer(k: Kernel, t: int) -> Callable[[], None]:
            base = 100 + t * LINES_PER_THREAD

            def run() -> None:
                for n in range(per_thread):
                    k.raise_irq_threadsafe(base + n % LINES_PER_THREAD)

            return run

        async with Kernel(nr_cpus=2, hz=250, hung_task_timeout_secs=0) as k:
            for t in range(THREADS):
                for line in range(LINES_PER_THREAD):
                    irq = 100 + t * LINES_PER_THREAD + line
                    assert request_irq(irq, handler, 0, f"dev{t}", (t, line)) == 0
            with safety_timeout(virtual), producers([producer(k, t) for t in range(THREADS)]) as f:
                await wait_for_completion(done)
            await anyio.lowlevel.checkpoint()  # a late extra delivery would show here
            assert f == []
            assert k._ts_irqs.delivered == TOTAL
        assert handled == [per_thread] * THREADS
        assert total == [TOTAL]
        assert out_of_order == []
        assert wrong_context == []
        assert k._ts_irqs.dropped == 0
        assert not any("BUG" in line or "WARNING" in line for line in log_lines(k))

    async def test_handler_on_the_target_cpu_softirqs_on_exit(self) -> None:
        """With cpu=1 the handler interrupts CPU 1's idle task, and the tasklet it schedules
        runs on that interrupt's exit, in softirq context on CPU 1."""
        seen = Seen(1)
        ran: list[tuple[bool, bool, int, str]] = []
        done = Completion()

        def tasklet_fn(t: Tasklet) -> None:
            ran.append((in_serving_softirq(), in_hardirq(), smp_processor_id(), current().comm))
            complete(done)

        tasklet = Tasklet(tasklet_fn)

        def handler(irq: int, dev: object) -> int:
            seen.handler(irq, dev)
            tasklet_schedule(tasklet)
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250, hung_task_timeout_secs=0) as k:
            request_irq(5, handler, 0, "mydev", None)
            assert in_thread(lambda: k.raise_irq_threadsafe(5, 1)) is None
            await wait_for_completion(done)
        loop_thread = threading.get_ident()
        assert seen.calls == [(5, loop_thread, True, 1, "swapper/1")]
        assert ran == [(True, False, 1, "swapper/1")]

    async def test_default_cpu_is_the_line_effective_affinity(self) -> None:
        """Without a cpu, each line's interrupts go to the CPU it was bound to when its handler
        was requested (lines spread over the CPUs); a line without a handler goes to CPU 0."""
        seen = Seen(4)
        async with Kernel(nr_cpus=2, hz=250, hung_task_timeout_secs=0) as k:
            for irq in (20, 21, 22):
                request_irq(irq, seen.handler, 0, f"dev{irq}", None)
            assert [k.irq_effective_cpu(irq) for irq in (20, 21, 22, 99)] == [0, 1, 0, 0]

            def raise_all() -> None:
                for irq in (21, 20, 22, 21):
                    k.raise_irq_threadsafe(irq)

            assert in_thread(raise_all) is None
            await wait_for_completion(seen.done)
        assert [(irq, cpu, comm) for irq, _t, _h, cpu, comm in seen.calls] == [
            (21, 1, "swapper/1"),
            (20, 0, "swapper/0"),
            (22, 0, "swapper/0"),
            (21, 1, "swapper/1"),
        ]

    async def test_from_the_loop_thread_it_is_queued_too(self) -> None:
        """Called on the loop's thread it still only queues: the handler runs later, on the
        line's CPU as a device interrupt (swapper/0), not inside the caller (init)."""
        seen = Seen(2)
        async with Kernel(nr_cpus=2, hz=250, hung_task_timeout_secs=0) as k:
            request_irq(5, seen.handler, 0, "mydev", None)
            k.raise_irq_threadsafe(5)
            k.raise_irq_threadsafe(5, 1)
            assert seen.calls == []
            await wait_for_completion(seen.done)
        assert [(cpu, comm) for _i, _t, _h, cpu, comm in seen.calls] == [
            (0, "swapper/0"),
            (1, "swapper/1"),
        ]

    async def test_thread_with_a_copy_of_the_loop_context(self) -> None:
        """anyio.to_thread.run_sync copies the loop's context: current_kernel() works there
        and reaches raise_irq_threadsafe; the interrupt borrows no task from that copy."""
        seen = Seen(1)
        async with Kernel(nr_cpus=2, hz=250, hung_task_timeout_secs=0) as k:
            request_irq(5, seen.handler, 0, "mydev", None)

            def worker() -> Kernel:
                kernel = current_kernel()
                kernel.raise_irq_threadsafe(5)
                return kernel

            assert await anyio.to_thread.run_sync(worker) is k
            await wait_for_completion(seen.done)
        assert [(cpu, comm) for _i, _t, _h, cpu, comm in seen.calls] == [(0, "swapper/0")]


class TestForeignThreads:
    async def test_raise_irq_from_another_thread_names_the_threadsafe_way(self) -> None:
        """Kernel.raise_irq from a plain thread, or from one with a copy of the loop's context,
        is a RuntimeError that names raise_irq_threadsafe; nothing is delivered."""
        seen = Seen(1)
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, seen.handler, 0, "mydev", None)
            loop_name = threading.current_thread().name
            exc = in_thread(lambda: k.raise_irq(5), name="gpio-poller")
            assert isinstance(exc, RuntimeError)
            assert str(exc) == (
                "Kernel.raise_irq() called from thread 'gpio-poller', but this Kernel runs on "
                f"the event loop of thread {loop_name!r} and its state may only be changed "
                "there: use Kernel.raise_irq_threadsafe(irq, cpu) from other threads"
            )
            with pytest.raises(RuntimeError, match=r"use Kernel\.raise_irq_threadsafe"):
                await anyio.to_thread.run_sync(k.raise_irq, 5)
            await anyio.lowlevel.checkpoint()
        assert seen.calls == []

    async def test_no_kernel_error_in_a_plain_thread_says_why(self) -> None:
        """A kernel API called in a plain thread while a kernel runs on the loop's thread
        raises NoKernelError saying this is a foreign thread and naming the two ways in."""
        async with Kernel(nr_cpus=2, hz=250):
            loop_name = threading.current_thread().name
            tasklet = Tasklet(lambda t: None)
            exc = in_thread(lambda: tasklet_schedule(tasklet), name="serial-reader")
            assert isinstance(exc, NoKernelError)
            assert str(exc) == (
                "no kdefer_async Kernel is running in this context: this is a foreign thread "
                "('serial-reader'; this thread runs no event loop), and the running Kernel lives "
                f"on the event loop of thread {loop_name!r}, where every kernel API must be "
                "called. From this thread, raise "
                "interrupts with Kernel.raise_irq_threadsafe(irq), or run a function on the loop "
                "with anyio.from_thread.run_sync(fn, *args, token=token) (token = "
                "anyio.lowlevel.current_token(), taken on the loop)"
            )
            assert isinstance(in_thread(current_kernel), NoKernelError)
        # no kernel runs any more: the plain message
        exc = in_thread(current_kernel)
        assert isinstance(exc, NoKernelError)
        assert "foreign thread" not in str(exc)
        assert str(exc).startswith("no kdefer_async Kernel is running in this context: call")

    async def test_the_way_in_it_names_works(self) -> None:
        """What the message suggests works: anyio.from_thread.run_sync with the loop's token
        runs a kernel call on the loop's thread, from a plain thread."""
        seen = Seen(1)
        async with Kernel(nr_cpus=2, hz=250, hung_task_timeout_secs=0) as k:
            request_irq(5, seen.handler, 0, "mydev", None)
            token = anyio.lowlevel.current_token()
            with producers([lambda: anyio.from_thread.run_sync(k.raise_irq, 5, token=token)]) as f:
                await wait_for_completion(seen.done)  # the thread waits for the loop: no join yet
            assert f == []
        # raised with no kernel task in its context: a device interrupt, on the line's CPU
        assert [(cpu, comm) for _i, _t, _h, cpu, comm in seen.calls] == [(0, "swapper/0")]

    async def test_state_changing_calls_from_a_context_copy_are_refused(self) -> None:
        """A thread holding a copy of the loop's context passes the context check, so the
        entry points that are not hot check the thread: request_irq, free_irq and the Kernel
        methods refuse there, naming anyio.from_thread.run_sync; nothing changes."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            calls: dict[str, Callable[[], object]] = {
                "request_irq": lambda: request_irq(7, lambda i, d: IRQ_HANDLED, 0, "x", None),
                "Kernel.block_worker_creation": lambda: k.block_worker_creation(True),
                "Kernel.raise_nmi": lambda: k.raise_nmi(lambda: None),
                "Kernel.panic": lambda: k.panic("from a thread"),
            }
            for func, call in calls.items():
                with pytest.raises(RuntimeError) as info:
                    await anyio.to_thread.run_sync(call)
                assert str(info.value).startswith(f"{func}() called from thread ")
                assert str(info.value).endswith(
                    "run it there with anyio.from_thread.run_sync(fn, *args, token=token) "
                    "(token = anyio.lowlevel.current_token(), taken on the loop)"
                )
            assert k.irq_actions == {}
            assert k._panic is None
        assert not any("panic" in line for line in log_lines(k))


class TestKernelState:
    async def test_before_boot_and_after_halt(self) -> None:
        """Raising on a kernel that has not booted, or has halted, is a NoKernelError in the
        raising thread; nothing is queued."""
        k = Kernel(nr_cpus=2, hz=250)
        exc = in_thread(lambda: k.raise_irq_threadsafe(5))
        assert isinstance(exc, NoKernelError)
        assert str(exc) == (
            "Kernel.raise_irq_threadsafe(): the kernel is not running (it has not booted yet); "
            "the interrupt was not raised"
        )
        async with k:
            pass
        exc = in_thread(lambda: k.raise_irq_threadsafe(5))
        assert isinstance(exc, NoKernelError)
        assert str(exc) == (
            "Kernel.raise_irq_threadsafe(): the kernel is not running (it has halted); "
            "the interrupt was not raised"
        )
        assert list(k._ts_irqs.queue) == []

    async def test_panic_in_a_handler(self) -> None:
        """A handler raising while a batch is delivered panics the kernel (KernelPanic out of
        the block); the interrupts after it are never delivered but dropped and named, and
        raising afterwards is a NoKernelError that says the kernel panicked."""
        calls: list[int] = []

        def handler(irq: int, dev: object) -> int:
            calls.append(irq)
            if len(calls) == 3:
                raise ZeroDivisionError("bad device")
            return IRQ_HANDLED

        async def body(k: Kernel) -> None:
            request_irq(5, handler, 0, "flaky", None)
            for _ in range(10):
                k.raise_irq_threadsafe(5)
            await anyio.sleep_forever()

        k = Kernel(nr_cpus=2, hz=250)
        with pytest.raises(KernelPanic) as info:
            await boot(k, body)
        assert isinstance(info.value.__cause__, ZeroDivisionError)
        assert calls == [5, 5, 5]
        k._drop_threadsafe_irqs()  # what the shutdown does (harmless if it did already)
        assert (k._ts_irqs.delivered, k._ts_irqs.dropped) == (3, 7)
        line = (
            "kdefer: shutdown: interrupt 5 (flaky) raised from another thread for CPU 0, "
            "never delivered; dropped"
        )
        assert log_lines(k).count(line) == 7  # one line, and one report item, each
        assert k.shutdown_report is not None
        assert k.shutdown_report.counts() == {"irq dropped": 7}
        exc = in_thread(lambda: k.raise_irq_threadsafe(5))
        assert isinstance(exc, NoKernelError)
        assert "(it panicked (Fatal exception in interrupt))" in str(exc)


class TestShutdownHooks:
    async def test_deliver_delivers_what_is_queued_now(self) -> None:
        """_deliver_threadsafe_irqs() delivers the queue at once, in order, as device
        interrupts (not inside the calling task), and says how many; the wake-up that was
        pending then finds nothing."""
        seen = Seen(3)
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, seen.handler, 0, "five", None)
            request_irq(6, seen.handler, 0, "six", None)
            for irq in (5, 6, 6):
                k.raise_irq_threadsafe(irq)
            assert k._deliver_threadsafe_irqs() == 3
            assert [(irq, cpu, comm) for irq, _t, _h, cpu, comm in seen.calls] == [
                (5, 0, "swapper/0"),
                (6, 1, "swapper/1"),
                (6, 1, "swapper/1"),
            ]
            assert k._deliver_threadsafe_irqs() == 0
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            assert len(seen.calls) == 3
            k.raise_irq_threadsafe(6)  # the queue stays open
            assert k._deliver_threadsafe_irqs() == 1
        assert len(seen.calls) == 4

    async def test_drop_closes_and_names(self) -> None:
        """_drop_threadsafe_irqs() closes the queue and returns what was left, named in dmesg
        by runs of one line and CPU; nothing of it is delivered, and raising is refused."""
        seen = Seen(1)
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, seen.handler, 0, "five", None)
            for irq, cpu in ((5, None), (5, 0), (6, 1), (5, None)):
                k.raise_irq_threadsafe(irq, cpu)
            assert k._drop_threadsafe_irqs() == [(5, 0), (5, 0), (6, 1), (5, 0)]
            assert k._drop_threadsafe_irqs() == []
            with pytest.raises(NoKernelError, match=r"\(it is shutting down\)"):
                k.raise_irq_threadsafe(5)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            assert seen.calls == []
            lines = log_lines(k)
        assert seen.calls == []
        assert k._ts_irqs.dropped == 4
        assert (
            "kdefer: shutdown: interrupt 5 (five) raised from another thread for CPU 0 "
            "(2 times), never delivered; dropped"
        ) in lines
        assert (
            "kdefer: shutdown: interrupt 6 (no handler) raised from another thread for CPU 1, "
            "never delivered; dropped"
        ) in lines

    async def test_drop_with_a_namer(self) -> None:
        """With *name*, each run is handed to it as (irq, cpu, count) instead of logged."""
        named: list[tuple[int, int, int]] = []
        async with Kernel(nr_cpus=2, hz=250) as k:
            for irq in (7, 7, 7, 8):
                k.raise_irq_threadsafe(irq)
            before = len(k.dmesg())
            k._drop_threadsafe_irqs(lambda irq, cpu, n: named.append((irq, cpu, n)))
            assert len(k.dmesg()) == before
        assert named == [(7, 0, 3), (8, 0, 1)]


class TestArguments:
    @pytest.mark.parametrize(
        ("irq", "cpu", "exc", "message"),
        [
            (None, None, TypeError, "expects an int for 'irq', got NoneType"),
            ("5", None, TypeError, "expects an int for 'irq', got str"),
            (True, None, TypeError, "expects an int for 'irq', got bool"),
            (-1, None, ValueError, "expects an int from 0 to 4095 for 'irq', got -1"),
            (4096, None, ValueError, "expects an int from 0 to 4095 for 'irq', got 4096"),
            (5, 1.0, TypeError, "expects an int (a CPU number) or None for 'cpu', got float"),
            (5, False, TypeError, "expects an int (a CPU number) or None for 'cpu', got bool"),
            (5, -1, ValueError, "expects a CPU number from 0 to 1 for 'cpu', got -1"),
            (5, 2, ValueError, "expects a CPU number from 0 to 1 for 'cpu', got 2"),
        ],
    )
    async def test_checked_in_the_calling_thread(
        self, irq: object, cpu: object, exc: type[Exception], message: str
    ) -> None:
        """Bad arguments are a TypeError/ValueError in the raising thread (and on the loop's),
        in the _check.py wording, and nothing is queued."""
        seen = Seen(1)
        async with Kernel(nr_cpus=2, hz=250) as k:
            request_irq(5, seen.handler, 0, "mydev", None)
            raised = in_thread(lambda: k.raise_irq_threadsafe(irq, cpu))  # type: ignore[arg-type]
            assert isinstance(raised, exc)
            assert str(raised) == f"Kernel.raise_irq_threadsafe() {message}"
            with pytest.raises(exc) as info:
                k.raise_irq_threadsafe(irq, cpu)  # type: ignore[arg-type]
            assert str(info.value) == str(raised)
            assert list(k._ts_irqs.queue) == []
            assert k._deliver_threadsafe_irqs() == 0
        assert seen.calls == []

    async def test_checked_even_when_the_kernel_is_not_running(self) -> None:
        """Arguments come first: a bad one is a TypeError even on a halted kernel."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            pass
        with pytest.raises(TypeError):
            k.raise_irq_threadsafe("5")  # type: ignore[arg-type]
        with pytest.raises(NoKernelError):
            k.raise_irq_threadsafe(5)
