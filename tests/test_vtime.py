"""Guarantees of the test backends, in particular the virtual-time ones."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import anyio
import pytest
from anyio.abc import SocketStream

from kdefer_async._vtime import (
    BACKEND_NAMES,
    VirtualClock,
    VirtualTimeEventLoop,
    backend_params,
    is_virtual,
    new_virtual_event_loop,
)

pytestmark = pytest.mark.anyio

HOUR = 3600.0
#: Slack for float rounding on virtual time.
VIRTUAL_EPS = 1e-6
#: Slack for real clocks: uvloop reads its clock with millisecond granularity.
REAL_EPS = 2e-3


async def test_sleep_advances_current_time(virtual: bool) -> None:
    """After ``anyio.sleep(d)`` returns, ``anyio.current_time()`` has advanced by at least ``d``."""
    duration, eps = (HOUR, VIRTUAL_EPS) if virtual else (0.05, REAL_EPS)
    start = anyio.current_time()
    await anyio.sleep(duration)
    assert anyio.current_time() - start >= duration - eps


async def test_virtual_hour_sleep_is_fast_in_wall_time(virtual: bool) -> None:
    """On a virtual backend a one-hour sleep takes well under 2 s of wall time."""
    if not virtual:
        pytest.skip("only virtual backends can skip an hour")
    wall_start = time.perf_counter()
    start = anyio.current_time()
    await anyio.sleep(HOUR)
    assert anyio.current_time() - start >= HOUR - VIRTUAL_EPS
    assert time.perf_counter() - wall_start < 2.0


async def test_sleepers_wake_in_deadline_order(virtual: bool) -> None:
    """Sleepers wake in deadline order, not start order, each no earlier than its deadline."""
    long_delay, short_delay = (2.0, 1.0) if virtual else (0.2, 0.05)
    eps = VIRTUAL_EPS if virtual else REAL_EPS
    woke: list[tuple[str, float]] = []
    start = anyio.current_time()

    async def sleeper(label: str, delay: float) -> None:
        await anyio.sleep(delay)
        woke.append((label, anyio.current_time() - start))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "long", long_delay)
        tg.start_soon(sleeper, "short", short_delay)

    assert [label for label, _ in woke] == ["short", "long"]
    assert woke[0][1] >= short_delay - eps
    assert woke[1][1] >= long_delay - eps


async def test_socket_io_wins_over_pending_timer() -> None:
    """Real socket I/O completes without the clock jumping to a pending far-away deadline."""
    left, right = socket.socketpair()
    payload = bytes(range(256)) * 4096  # 1 MiB: forces partial writes and many reads
    async with (
        await SocketStream.from_socket(left) as a,
        await SocketStream.from_socket(right) as b,
    ):
        start = anyio.current_time()
        with anyio.fail_after(HOUR):
            for i in range(20):
                await a.send(b"ping %d" % i)
                assert await b.receive() == b"ping %d" % i

            received = bytearray()

            async def drain() -> None:
                while len(received) < len(payload):
                    received.extend(await b.receive())

            async with anyio.create_task_group() as tg:
                tg.start_soon(drain)
                await a.send(payload)
        assert bytes(received) == payload
        assert anyio.current_time() - start < 1.0


async def test_loop_blocks_for_real_io_when_no_timer_is_pending(virtual: bool) -> None:
    """With no timer pending, waiting for a peer thread's reply blocks for real and time stays put."""
    left, right = socket.socketpair()

    def echo_once() -> None:
        with right:
            right.settimeout(10)
            data = right.recv(64)
            time.sleep(0.05)  # make the loop genuinely wait
            right.sendall(data.upper())

    peer = threading.Thread(target=echo_once, daemon=True)
    peer.start()
    try:
        async with await SocketStream.from_socket(left) as stream:
            start = anyio.current_time()
            await stream.send(b"hello")
            assert await stream.receive() == b"HELLO"
            elapsed = anyio.current_time() - start
    finally:
        peer.join(10)
    if virtual:
        assert elapsed == 0.0
    else:
        assert elapsed >= 0.05 - REAL_EPS


def test_virtual_loop_jumps_past_select_timeout_cap() -> None:
    """A plain asyncio run on the virtual loop sleeps three days (beyond the select cap) at once."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeEventLoop)
        assert loop.time() == loop.clock.now
        await asyncio.sleep(3 * 86400)
        return loop.time()

    wall_start = time.perf_counter()
    loop = new_virtual_event_loop()
    try:
        finished_at = loop.run_until_complete(main())
    finally:
        loop.close()
    assert finished_at >= 3 * 86400 - VIRTUAL_EPS
    assert time.perf_counter() - wall_start < 2.0


def test_virtual_clock_never_goes_backwards() -> None:
    """``VirtualClock`` starts at 0.0, refuses negative steps and ignores earlier deadlines."""
    clock = VirtualClock()
    assert clock.now == 0.0
    assert clock.advance(1.5) == 1.5
    assert clock.advance_to(1.0) == 1.5
    assert clock.advance_to(2.0) == 2.0
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1.0)


def test_backend_params_are_fresh_and_complete() -> None:
    """Every backend name maps to a new tuple on each call; unknown names are rejected."""
    assert set(BACKEND_NAMES) == {
        "asyncio",
        "asyncio+uvloop",
        "trio",
        "asyncio+virtual",
        "trio+virtual",
    }
    for name in BACKEND_NAMES:
        first, second = backend_params(name), backend_params(name)
        assert first == second or name == "trio+virtual"
        assert first[1] is not second[1]
        assert is_virtual(name) == name.endswith("+virtual")
    assert (
        backend_params("trio+virtual")[1]["clock"] is not backend_params("trio+virtual")[1]["clock"]
    )
    with pytest.raises(ValueError, match="unknown backend"):
        backend_params("curio")
