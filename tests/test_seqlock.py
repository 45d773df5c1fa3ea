"""Tests for `kdefer_async._seqlock`: seqlock_t (LK-08 to LK-11 of the semantics' §11.8).

Not modelled, so not tested: PREEMPT_RT's readers that take the writer's lock instead of
spinning (the model is a non-RT kernel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from helpers import logged

from kdefer_async import (
    DEFINE_SEQLOCK,
    IRQ_HANDLED,
    Kernel,
    KernelBug,
    SeqLock,
    Tasklet,
    current,
    irqs_disabled,
    msleep,
    preempt_count,
    read_seqbegin,
    read_seqretry,
    request_irq,
    seqlock_init,
    tasklet_schedule,
    write_seqlock,
    write_seqlock_bh,
    write_seqlock_irqsave,
    write_sequnlock,
    write_sequnlock_bh,
    write_sequnlock_irqrestore,
)

pytestmark = pytest.mark.anyio


class TestSequence:
    async def test_arithmetic(self) -> None:
        """LK-08. Fresh: read_seqbegin 0; after one write cycle 2; retry(0) True, retry(2) False."""
        async with Kernel(nr_cpus=2, hz=250):
            sl = DEFINE_SEQLOCK()
            assert isinstance(sl, SeqLock)
            assert read_seqbegin(sl) == 0
            write_seqlock(sl)
            write_sequnlock(sl)
            assert read_seqbegin(sl) == 2
            assert read_seqretry(sl, 0) is True
            assert read_seqretry(sl, 2) is False

    async def test_retry_after_concurrent_write(self) -> None:
        """LK-09. A reader awaits between begin and retry; a writer cycle runs meanwhile →
        retry True; with no writer → False; readers change no preempt_count."""
        async with Kernel(nr_cpus=2, hz=250), anyio.create_task_group() as tg:
            sl = DEFINE_SEQLOCK()
            results: list[bool] = []
            started = anyio.Event()
            go = anyio.Event()

            async def reader() -> None:
                s = read_seqbegin(sl)
                assert preempt_count() == 0
                started.set()
                await go.wait()
                results.append(read_seqretry(sl, s))

            tg.start_soon(reader)
            await started.wait()
            write_seqlock(sl)
            write_sequnlock(sl)
            go.set()
            await msleep(4)
            s = read_seqbegin(sl)
            await msleep(4)
            results.append(read_seqretry(sl, s))
            assert results == [True, False]

    async def test_init_and_wrap(self) -> None:
        """seqlock_init resets to 0; the sequence is an unsigned int and wraps."""
        async with Kernel(nr_cpus=2, hz=250):
            sl = SeqLock("clock")
            write_seqlock(sl)
            write_sequnlock(sl)
            seqlock_init(sl)
            assert read_seqbegin(sl) == 0
            sl._seq = 0xFFFFFFFE
            write_seqlock(sl)
            write_sequnlock(sl)
            assert read_seqbegin(sl) == 0
            assert read_seqretry(sl, 0xFFFFFFFE) is True


class TestWriters:
    async def test_preempt_and_irq_effects(self) -> None:
        """LK-10. write_seqlock → preempt_count 1; _bh → 0x201 and a tasklet raised inside
        runs at the unlock; _irqsave → IRQs off, restored by write_sequnlock_irqrestore."""
        async with Kernel(nr_cpus=2, hz=250):
            sl = DEFINE_SEQLOCK()
            write_seqlock(sl)
            assert preempt_count() == 1
            write_sequnlock(sl)
            assert preempt_count() == 0
            ran: list[int] = []
            write_seqlock_bh(sl)
            assert preempt_count() == 0x201
            tasklet_schedule(Tasklet(lambda _t: ran.append(1)))
            write_sequnlock_bh(sl)
            assert ran == [1]
            assert preempt_count() == 0
            flags = write_seqlock_irqsave(sl)
            assert irqs_disabled()
            write_sequnlock_irqrestore(sl, flags)
            assert not irqs_disabled()
            assert preempt_count() == 0
            assert read_seqbegin(sl) == 6

    async def test_writer_twice_deadlocks(self) -> None:
        """Writers exclude each other through the spinlock: a second write_seqlock on the
        CPU is a self-deadlock (KernelBug), the sequence unchanged."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            sl = DEFINE_SEQLOCK()
            write_seqlock(sl)
            with pytest.raises(KernelBug):
                write_seqlock(sl)
            write_sequnlock(sl)
            assert read_seqbegin(sl) == 2
            assert logged(k, "possible recursive locking detected") == 1

    async def test_reader_interrupting_writer(self) -> None:
        """LK-11. Task inside write_seqlock; an interrupt on its CPU calls read_seqbegin →
        reported deadlock (KernelBug; the kernel spins forever), after lockdep's
        {HARDIRQ-ON-W} -> {IN-HARDIRQ-R}."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            sl = DEFINE_SEQLOCK()
            caught: list[KernelBug] = []

            def handler(_irq: int, _dev: Any) -> int:
                try:
                    read_seqbegin(sl)
                except KernelBug as e:
                    caught.append(e)
                return IRQ_HANDLED

            assert request_irq(12, handler, 0, "seqdev", object()) == 0
            write_seqlock(sl)
            k.raise_irq(12, cpu=current().cpu)
            write_sequnlock(sl)
            assert len(caught) == 1
            assert logged(k, "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-R} usage.") == 1
            assert read_seqbegin(sl) == 2

    async def test_irqsave_writer_is_safe(self) -> None:
        """With write_seqlock_irqsave the interrupt waits for the restore: it reads an even
        sequence, and lockdep has nothing to say."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            sl = DEFINE_SEQLOCK()
            seen: list[int] = []

            def handler(_irq: int, _dev: Any) -> int:
                seen.append(read_seqbegin(sl))
                return IRQ_HANDLED

            assert request_irq(12, handler, 0, "seqdev", object()) == 0
            flags = write_seqlock_irqsave(sl)
            k.raise_irq(12, cpu=current().cpu)
            assert seen == []
            write_sequnlock_irqrestore(sl, flags)
            assert seen == [2]
            assert logged(k, "WARNING") == 0


class TestArguments:
    @pytest.mark.parametrize(
        "fn",
        [
            seqlock_init,
            write_seqlock,
            write_sequnlock,
            write_seqlock_bh,
            write_sequnlock_bh,
            write_seqlock_irqsave,
            read_seqbegin,
        ],
    )
    async def test_not_a_seqlock(self, fn: Callable[[Any], object]) -> None:
        """Every seqlock function names itself, 'sl' and the type; nothing changes."""
        async with Kernel(nr_cpus=2, hz=250):
            for junk in (None, object(), "x"):
                with pytest.raises(TypeError) as info:
                    fn(junk)
                assert str(info.value) == (
                    f"{fn.__name__}() expects a SeqLock for 'sl', got {type(junk).__name__}"
                )
            assert preempt_count() == 0
            assert not irqs_disabled()

    async def test_retry_start(self) -> None:
        """read_seqretry's start is an unsigned int."""
        async with Kernel(nr_cpus=2, hz=250):
            sl = DEFINE_SEQLOCK()
            with pytest.raises(ValueError) as info:
                read_seqretry(sl, -1)
            assert str(info.value) == (
                "read_seqretry() expects an int from 0 to 4294967295 for 'start', got -1"
            )
            with pytest.raises(TypeError) as tinfo:
                read_seqretry(None, 0)  # type: ignore[arg-type]
            assert str(tinfo.value) == "read_seqretry() expects a SeqLock for 'sl', got NoneType"

    async def test_restore_flags(self) -> None:
        """write_sequnlock_irqrestore checks its flags before changing anything."""
        async with Kernel(nr_cpus=2, hz=250):
            sl = DEFINE_SEQLOCK()
            with pytest.raises(ValueError) as info:
                write_sequnlock_irqrestore(sl, -1)
            assert str(info.value) == (
                "write_sequnlock_irqrestore() expects flags from write_seqlock_irqsave() for "
                "'flags', got -1"
            )
            assert read_seqbegin(sl) == 0
