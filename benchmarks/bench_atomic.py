"""Atomics and bit operations against the same operations written as plain Python functions.

kdefer: ``atomic_inc(v)`` + ``atomic_read(v)`` on an ``Atomic``, and ``test_and_set_bit(70, b)``
+ ``clear_bit(70, b)`` on a 128-bit ``Bitmap``, 1M pairs each. Baseline: the same two
operations as plain Python functions on an ordinary object's attributes, with no argument
checks and no wrap-around: one that increments ``obj.value`` and one that reads it; one that
tests and sets bit *nr* in ``obj.words[nr >> 6]`` and one that clears it. Both sides run the
same loop. Target: each pair <= 1.2x the plain functions (the price of the type checks and the
32-bit wrap-around on the fast path).

Reported without a target: ``atomic64_inc`` + ``atomic64_read``, and single calls of a few
more operations, in ns per call.

No event loop is involved: these functions touch no kernel state, so none is booted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

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

from kdefer_async import (
    ATOMIC64_INIT,
    ATOMIC_INIT,
    DECLARE_BITMAP,
    atomic64_inc,
    atomic64_read,
    atomic_add_return,
    atomic_cmpxchg,
    atomic_inc,
    atomic_read,
    clear_bit,
    find_next_bit,
    set_bit,
    test_and_set_bit,
    test_bit,
)

N = 1_000_000
NR = 70  # a bit of the second word


class Plain:
    """An ordinary object: a counter and two words of bits."""

    def __init__(self) -> None:
        self.value = 0
        self.words = [0, 0]


def plain_inc(obj: Plain) -> None:
    obj.value += 1


def plain_read(obj: Plain) -> int:
    return obj.value


def plain_test_and_set_bit(nr: int, obj: Plain) -> bool:
    words = obj.words
    i = nr >> 6
    mask = 1 << (nr & 63)
    old = words[i]
    words[i] = old | mask
    return old & mask != 0


def plain_clear_bit(nr: int, obj: Plain) -> None:
    obj.words[nr >> 6] &= ~(1 << (nr & 63))


def time_pairs(first: Callable[..., object], second: Callable[..., object], v: object) -> float:
    """Seconds for N calls of ``first(v); second(v)``."""
    with no_gc():
        start = now()
        for _ in range(N):
            first(v)
            second(v)
        return now() - start


def time_bit_pairs(first: Callable[..., object], second: Callable[..., object], b: object) -> float:
    """Seconds for N calls of ``first(NR, b); second(NR, b)``."""
    nr = NR
    with no_gc():
        start = now()
        for _ in range(N):
            first(nr, b)
            second(nr, b)
        return now() - start


def time_calls(call: Callable[[], object]) -> float:
    """Seconds for N calls of *call* (a closure: its own call is included, on both sides)."""
    with no_gc():
        start = now()
        for _ in range(N):
            call()
        return now() - start


def main() -> int:
    opts = parse_args(__doc__ or "")
    print_header("atomics and bit operations vs plain Python functions", opts)
    print(f"N = {N:,} pairs of calls per measurement")
    v, v64, plain = ATOMIC_INIT(0), ATOMIC64_INIT(0), Plain()
    b, plain_bits = DECLARE_BITMAP(128), Plain()
    samples = alternate(
        opts,
        {
            "plain inc+read": lambda: time_pairs(plain_inc, plain_read, plain),
            "atomic_inc+atomic_read": lambda: time_pairs(atomic_inc, atomic_read, v),
            "atomic64_inc+atomic64_read": lambda: time_pairs(atomic64_inc, atomic64_read, v64),
            "plain test_and_set+clear": lambda: time_bit_pairs(
                plain_test_and_set_bit,
                plain_clear_bit,
                plain_bits,
            ),
            "test_and_set_bit+clear_bit": lambda: time_bit_pairs(
                test_and_set_bit,
                clear_bit,
                b,
            ),
        },
    )
    print_samples(samples, 1e9 / N, "ns per pair")
    # both sides did the same work
    assert atomic_read(v) == plain.value == atomic64_read(v64)
    assert plain_bits.words == list(b) == [0, 0]
    singles = {
        "atomic_add_return(3, v)": lambda: atomic_add_return(3, v),
        "atomic_cmpxchg(v, 0, 1)": lambda: atomic_cmpxchg(v, 0, 1),
        "set_bit(70, b)": lambda: set_bit(NR, b),
        "test_bit(70, b)": lambda: test_bit(NR, b),
        "find_next_bit(b, 128, 0)": lambda: find_next_bit(b, 128, 0),
        "empty closure (the call's own cost)": lambda: None,
    }
    single = {
        name: min(time_calls(call) for _ in range(opts.repeat)) for name, call in singles.items()
    }

    def best(name: str) -> float:
        return min(samples[name]) / N * 1e9

    rows = [
        Row(
            "atomic_inc + atomic_read",
            best("atomic_inc+atomic_read"),
            best("plain inc+read"),
            "ns",
            Target("ratio", "<=", 1.2),
        ),
        Row(
            "test_and_set_bit + clear_bit",
            best("test_and_set_bit+clear_bit"),
            best("plain test_and_set+clear"),
            "ns",
            Target("ratio", "<=", 1.2),
        ),
        Row(
            "atomic64_inc + atomic64_read",
            best("atomic64_inc+atomic64_read"),
            best("plain inc+read"),
            "ns",
        ),
    ]
    rows += [
        Row(f"  one call: {name}", secs / N * 1e9, None, "ns") for name, secs in single.items()
    ]
    print_table(rows, baseline_label="plain")
    status = finish(rows)
    if opts.profile:
        with profiled("1M atomic_inc + atomic_read, 1M test_and_set_bit + clear_bit"):
            time_pairs(atomic_inc, atomic_read, v)
            time_bit_pairs(test_and_set_bit, clear_bit, b)
    return status


if __name__ == "__main__":
    sys.exit(main())
