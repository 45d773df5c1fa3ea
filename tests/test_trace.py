"""Tracing: the event registry, the tracefs (``k.tracing``), ring buffers, ``trace``/``trace_pipe``.

Exact timestamps are checked on the virtual backends only; elsewhere lines are compared with
their timestamp column masked.
"""

from __future__ import annotations

import re

import pytest

from kdefer_async import (
    NET_RX_SOFTIRQ,
    Kernel,
    local_bh_disable,
    local_bh_enable,
    open_softirq,
    raise_softirq,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

#: The timestamp column of a trace line.
TS = re.compile(r"(?<= )\s*\d+\.\d{6}(?=: )")


def body(k: Kernel) -> list[str]:
    """The event lines of ``k.tracing.text()``, header dropped, timestamps masked."""
    return [TS.sub("T", line) for line in k.tracing.text().splitlines() if not line.startswith("#")]


class TestSoftirqEvents:
    async def test_entry_exit_from_local_bh_enable(self) -> None:
        """softirq_entry/exit around the action, on the task that re-enabled BHs (``..s1.``:
        serving softirq, one preempt level kept by local_bh_enable)."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_entry,irq:softirq_exit") as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            me = k.init_task
            assert me is not None
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            lines = body(k)
        assert lines == [
            "            init-1       [000] ..s1. T: softirq_entry: vec=3 [action=NET_RX]",
            "            init-1       [000] ..s1. T: softirq_exit: vec=3 [action=NET_RX]",
        ]

    async def test_disabled_records_nothing(self) -> None:
        """With no event enabled nothing is recorded, and the site test is false."""
        async with Kernel(nr_cpus=1) as k:
            assert k._trace_on is False
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            raise_softirq(NET_RX_SOFTIRQ)
            await settle()
            assert k.tracing.records() == []


class TestCore:
    async def test_sink_gets_each_record_as_recorded(self) -> None:
        """A sink sees every record at once, with the documented raw fields."""
        from kdefer_async._trace import SOFTIRQ_ENTRY, SOFTIRQ_EXIT, TraceRecord

        got: list[TraceRecord] = []
        async with Kernel(nr_cpus=2, trace="irq") as k:
            k.tracing.sinks.append(got.append)
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            assert [r.event for r in got] == [SOFTIRQ_ENTRY, SOFTIRQ_EXIT]
            rec = got[0]
            assert (rec.cpu, rec.pid, rec.comm, rec.fields) == (0, 1, "init", (NET_RX_SOFTIRQ,))
            assert rec.flag_chars == "..s1."
            assert got[1].seq == rec.seq + 1
            assert k.tracing.records() == got

    async def test_trace_id_is_stable_and_distinct(self) -> None:
        """Each object gets one id for its life, in the 32-bit hashed-pointer shape."""
        from kdefer_async._trace import trace_id

        async with Kernel(nr_cpus=1) as k:
            a, b = object(), [1]
            ia, ib = trace_id(a), trace_id(b)
            assert ia != ib
            assert trace_id(a) == ia == k.tracing.trace_id(a)
            assert trace_id(b) == ib
            assert 0 <= ia < 2**32
