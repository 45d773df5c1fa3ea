"""Locks: an uncontended lock + unlock pair against an uncontended ``asyncio.Lock``.

kdefer: ``spin_lock(l); spin_unlock(l)`` and ``read_lock(l); read_unlock(l)`` 200k times in
the init task of a fresh kernel, once with lockdep off (``Kernel(prove_locking=False)``) and
once with it on (the default). Baseline: ``await lock.acquire(); lock.release()`` on an
``asyncio.Lock`` nobody else holds, 200k times on a plain asyncio loop. Targets: per pair
<= 1.0x asyncio's with lockdep off, <= 3.0x with it on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from contextlib import nullcontext

from _common import (
    Row,
    Target,
    alternate,
    finish,
    no_gc,
    now,
    parse_args,
    print_header,
    print_samples,
    print_table,
    profiled,
)

import kdefer_async
from kdefer_async import RwLock, SpinLock, read_lock, read_unlock, spin_lock, spin_unlock

N = 200_000


async def _asyncio_once() -> float:
    lock = asyncio.Lock()
    acquire = lock.acquire
    release = lock.release
    with no_gc():
        start = now()
        for _ in range(N):
            await acquire()
            release()
        elapsed = now() - start
    assert not lock.locked()
    return elapsed


def measure_asyncio() -> float:
    """Time (s) for 200k uncontended ``asyncio.Lock`` acquire + release pairs."""
    return asyncio.run(_asyncio_once())


def _kdefer(
    kind: str, prove: bool, profile: bool = False
) -> Callable[[], float]:  # a side of the table
    lock_fn, unlock_fn, cls = (
        (spin_lock, spin_unlock, SpinLock) if kind == "spin" else (read_lock, read_unlock, RwLock)
    )

    def measure() -> float:
        async def main() -> float:
            lock = cls()
            lock_fn(lock)  # the first acquisition in this context: lockdep records it
            unlock_fn(lock)
            prof = profiled(f"{kind} lock+unlock, lockdep {prove}") if profile else nullcontext()
            with no_gc(), prof:
                start = now()
                for _ in range(N):
                    lock_fn(lock)
                    unlock_fn(lock)
                elapsed = now() - start
            return elapsed

        result: float = kdefer_async.run(main, backend="asyncio", prove_locking=prove)
        return result

    return measure


SIDES = {
    "asyncio": measure_asyncio,
    "spin (lockdep off)": _kdefer("spin", False),
    "read (lockdep off)": _kdefer("read", False),
    "spin (lockdep on)": _kdefer("spin", True),
    "read (lockdep on)": _kdefer("read", True),
}


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("uncontended lock + unlock vs asyncio.Lock", opts)
    print(f"N = {N:,} pairs per round in one task (asyncio backend)")
    samples = alternate(opts, SIDES)
    print_samples(samples, 1e9 / N, "ns per pair")
    base = min(samples["asyncio"])
    rows = []
    for name in SIDES:
        if name == "asyncio":
            continue
        limit = 1.0 if "off" in name else 3.0
        pair = name.split(" ")[0]
        rows.append(
            Row(
                f"{pair}_lock+unlock, {name.split('(')[1].rstrip(')')}",
                min(samples[name]) / N * 1e9,
                base / N * 1e9,
                "ns",
                Target("ratio", "<=", limit),
            )
        )
    print_table(rows, baseline_label="asyncio.Lock")
    status = finish(rows)
    if opts.profile:
        _kdefer("spin", True, profile=True)()
        _kdefer("read", True, profile=True)()
    return status


if __name__ == "__main__":
    sys.exit(main())
