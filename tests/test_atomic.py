"""Atomic integers: ``atomic_t`` and ``atomic64_t`` wrap-around and return conventions (§7.2-7.3).

Behaviours checked here: AT-01 to AT-08 (the bit operations, AT-09 to AT-13, are in
test_bitops.py), and that every operation is legal in atomic context. Not modelled, with no
behaviour ID: memory ordering (``_relaxed``/``_acquire``/``_release`` variants, barriers), which
one event loop cannot show (§7.5): every operation here is sequentially consistent.

Most tests are plain: atomics need no kernel. One anyio test uses them from a hardirq handler,
a tasklet and a timer.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import at_tick
from hypothesis import given, settings, strategies as st

import kdefer_async
from kdefer_async import (
    ATOMIC64_INIT,
    ATOMIC_INIT,
    IRQ_HANDLED,
    Atomic,
    Atomic64,
    Kernel,
    Tasklet,
    atomic64_add,
    atomic64_add_return,
    atomic64_cmpxchg,
    atomic64_dec,
    atomic64_dec_and_test,
    atomic64_inc,
    atomic64_inc_return,
    atomic64_read,
    atomic64_set,
    atomic64_sub,
    atomic64_xchg,
    atomic_add,
    atomic_add_negative,
    atomic_add_return,
    atomic_add_unless,
    atomic_cmpxchg,
    atomic_dec,
    atomic_dec_and_test,
    atomic_dec_return,
    atomic_fetch_add,
    atomic_fetch_dec,
    atomic_fetch_inc,
    atomic_fetch_sub,
    atomic_inc,
    atomic_inc_and_test,
    atomic_inc_not_zero,
    atomic_inc_return,
    atomic_read,
    atomic_set,
    atomic_sub,
    atomic_sub_and_test,
    atomic_sub_return,
    atomic_xchg,
    clear_bit,
    in_hardirq,
    in_serving_softirq,
    request_irq,
    set_bit,
    tasklet_schedule,
)
from kdefer_async.testing import settle

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
S64_MIN, S64_MAX = -(2**63), 2**63 - 1


class TestAtomicT:
    def test_inc_past_int_max_wraps_to_int_min(self) -> None:
        """AT-01: ATOMIC_INIT(INT_MAX), atomic_inc -> INT_MIN."""
        v = ATOMIC_INIT(2147483647)
        atomic_inc(v)
        assert atomic_read(v) == -2147483648

    def test_dec_past_int_min_wraps_to_int_max(self) -> None:
        """AT-01: atomic_dec from INT_MIN -> INT_MAX."""
        v = ATOMIC_INIT(-2147483648)
        atomic_dec(v)
        assert atomic_read(v) == 2147483647

    def test_add_return_wraps(self) -> None:
        """AT-01: atomic_add_return(1, v) at INT_MAX returns INT_MIN, and v holds it."""
        v = ATOMIC_INIT(INT_MAX)
        assert atomic_add_return(1, v) == INT_MIN
        assert atomic_read(v) == INT_MIN

    @pytest.mark.parametrize(
        ("start", "op", "expected"),
        [
            (INT_MAX, lambda v: atomic_inc_return(v), INT_MIN),
            (INT_MIN, lambda v: atomic_dec_return(v), INT_MAX),
            (INT_MAX, lambda v: atomic_inc_and_test(v), INT_MIN),
            (INT_MIN, lambda v: atomic_dec_and_test(v), INT_MAX),
            (INT_MAX, lambda v: atomic_fetch_inc(v), INT_MIN),
            (INT_MIN, lambda v: atomic_fetch_dec(v), INT_MAX),
            (INT_MAX, lambda v: atomic_inc_not_zero(v), INT_MIN),
            (INT_MIN, lambda v: atomic_sub(1, v), INT_MAX),
            (INT_MIN, lambda v: atomic_add(-1, v), INT_MAX),
            (INT_MAX, lambda v: atomic_sub_return(-1, v), INT_MIN),
            (INT_MAX, lambda v: atomic_fetch_add(2**32 + 1, v), INT_MIN),
            (INT_MIN, lambda v: atomic_fetch_sub(1, v), INT_MAX),
            (INT_MIN, lambda v: atomic_sub_and_test(1, v), INT_MAX),
            (INT_MAX, lambda v: atomic_add_negative(1, v), INT_MIN),
            (INT_MAX, lambda v: atomic_add_unless(v, 1, 0), INT_MIN),
            (0, lambda v: atomic_add(2**40 + 7, v), 7),
        ],
    )
    def test_every_read_modify_write_wraps(
        self, start: int, op: Callable[[Atomic], object], expected: int
    ) -> None:
        """AT-01: every arithmetic op wraps at INT_MAX/INT_MIN, as a C int does."""
        v = ATOMIC_INIT(start)
        op(v)
        assert atomic_read(v) == expected

    def test_values_around_the_fast_range_do_not_wrap(self) -> None:
        """AT-01: values near 2**30 (where the fast path's bound lies) are stored as they are."""
        v = ATOMIC_INIT(2**30 - 1)
        atomic_inc(v)
        assert atomic_read(v) == 2**30
        atomic_dec(v)
        assert atomic_read(v) == 2**30 - 1
        atomic_set(v, -(2**30))
        atomic_dec(v)
        assert atomic_read(v) == -(2**30) - 1
        assert atomic_add_return(2**30 + 1, v) == 0
        assert atomic_sub_return(INT_MAX, v) == -INT_MAX

    def test_set_takes_the_value_modulo_2_32(self) -> None:
        """AT-02: atomic_set(v, 2**32 + 5) reads 5; atomic_set(v, 2**31) reads INT_MIN."""
        v = ATOMIC_INIT(0)
        atomic_set(v, 2**32 + 5)
        assert atomic_read(v) == 5
        atomic_set(v, 2**31)
        assert atomic_read(v) == -2147483648
        atomic_set(v, -(2**31) - 1)
        assert atomic_read(v) == INT_MAX
        atomic_set(v, 2**100 - 1)
        assert atomic_read(v) == -1

    def test_init_takes_the_value_modulo_2_32(self) -> None:
        """AT-02: ATOMIC_INIT and Atomic() store out-of-range values as C does; the default is 0."""
        assert atomic_read(ATOMIC_INIT(2**32 + 5)) == 5
        assert atomic_read(Atomic(2**31)) == INT_MIN
        assert atomic_read(Atomic()) == 0
        assert type(ATOMIC_INIT(3)) is Atomic

    def test_add_and_sub_return_the_new_value(self) -> None:
        """AT-03: v=1: atomic_add_return(5, v) -> 6; atomic_sub_return(2, v) -> the new value."""
        v = ATOMIC_INIT(1)
        assert atomic_add_return(5, v) == 6
        assert atomic_read(v) == 6
        assert atomic_sub_return(2, v) == 4
        assert atomic_read(v) == 4

    def test_fetch_ops_return_the_old_value(self) -> None:
        """AT-03: v=1: atomic_fetch_add(5, v) -> 1 (v 6); fetch_sub/inc/dec -> the old value."""
        v = ATOMIC_INIT(1)
        assert atomic_fetch_add(5, v) == 1
        assert atomic_read(v) == 6
        assert atomic_fetch_sub(2, v) == 6
        assert atomic_read(v) == 4
        assert atomic_fetch_inc(v) == 4
        assert atomic_read(v) == 5
        assert atomic_fetch_dec(v) == 5
        assert atomic_read(v) == 4

    def test_inc_and_dec_return_the_new_value(self) -> None:
        """AT-03: atomic_inc_return/atomic_dec_return return the new value."""
        v = ATOMIC_INIT(1)
        assert atomic_inc_return(v) == 2
        assert atomic_dec_return(v) == 1
        assert atomic_dec_return(v) == 0
        assert atomic_read(v) == 0

    def test_void_ops_return_none(self) -> None:
        """AT-03: atomic_set/add/sub/inc/dec return nothing."""
        v = ATOMIC_INIT(0)
        assert atomic_set(v, 1) is None  # type: ignore[func-returns-value]
        assert atomic_add(1, v) is None  # type: ignore[func-returns-value]
        assert atomic_sub(1, v) is None  # type: ignore[func-returns-value]
        assert atomic_inc(v) is None  # type: ignore[func-returns-value]
        assert atomic_dec(v) is None  # type: ignore[func-returns-value]
        assert atomic_read(v) == 1

    def test_dec_and_test(self) -> None:
        """AT-04: atomic_dec_and_test: v=1 -> True (v 0), v=2 -> False."""
        v = ATOMIC_INIT(1)
        assert atomic_dec_and_test(v) is True
        assert atomic_read(v) == 0
        v = ATOMIC_INIT(2)
        assert atomic_dec_and_test(v) is False
        assert atomic_read(v) == 1

    def test_inc_and_sub_and_test(self) -> None:
        """AT-04: atomic_inc_and_test at -1 -> True; atomic_sub_and_test(3, v) at 3 -> True."""
        v = ATOMIC_INIT(-1)
        assert atomic_inc_and_test(v) is True
        assert atomic_inc_and_test(v) is False
        assert atomic_read(v) == 1
        v = ATOMIC_INIT(3)
        assert atomic_sub_and_test(3, v) is True
        assert atomic_sub_and_test(3, v) is False
        assert atomic_read(v) == -3

    def test_and_test_sees_zero_after_wrapping(self) -> None:
        """AT-04: the test is on the wrapped value: 2**32 subtracted from 0 leaves 0."""
        v = ATOMIC_INIT(0)
        assert atomic_sub_and_test(2**32, v) is True

    def test_add_negative(self) -> None:
        """AT-05: atomic_add_negative(-5, v) at 3 -> True (v -2); at 5 -> False (result 0)."""
        v = ATOMIC_INIT(3)
        assert atomic_add_negative(-5, v) is True
        assert atomic_read(v) == -2
        v = ATOMIC_INIT(5)
        assert atomic_add_negative(-5, v) is False
        assert atomic_read(v) == 0

    def test_add_negative_after_overflow(self) -> None:
        """AT-05: INT_MAX + 1 is negative once wrapped, as on the machine."""
        assert atomic_add_negative(1, ATOMIC_INIT(INT_MAX)) is True

    def test_xchg_and_cmpxchg(self) -> None:
        """AT-06: xchg(v, 9) at 4 -> 4, v 9; cmpxchg(v, 9, 1) -> 9, v 1; cmpxchg(v, 7, 2) -> 1, v 1."""
        v = ATOMIC_INIT(4)
        assert atomic_xchg(v, 9) == 4
        assert atomic_read(v) == 9
        assert atomic_cmpxchg(v, 9, 1) == 9
        assert atomic_read(v) == 1
        assert atomic_cmpxchg(v, 7, 2) == 1
        assert atomic_read(v) == 1

    def test_cmpxchg_compares_and_stores_as_ints(self) -> None:
        """AT-06: cmpxchg's old and new are C ints: 2**32 + 1 compares equal to 1; new wraps."""
        v = ATOMIC_INIT(1)
        assert atomic_cmpxchg(v, 2**32 + 1, 2**31) == 1
        assert atomic_read(v) == INT_MIN
        assert atomic_xchg(v, 2**32 + 3) == INT_MIN
        assert atomic_read(v) == 3

    def test_add_unless(self) -> None:
        """AT-07: atomic_add_unless(v, 1, 0) at 0 -> False, v 0; at 5 -> True, v 6."""
        v = ATOMIC_INIT(0)
        assert atomic_add_unless(v, 1, 0) is False
        assert atomic_read(v) == 0
        v = ATOMIC_INIT(5)
        assert atomic_add_unless(v, 1, 0) is True
        assert atomic_read(v) == 6
        assert atomic_add_unless(v, 10, 6) is False
        assert atomic_add_unless(v, -10, 2**32 + 6) is False  # u is an int: 6
        assert atomic_read(v) == 6

    def test_inc_not_zero(self) -> None:
        """AT-07: atomic_inc_not_zero at 0 -> False; at 3 -> True (v 4)."""
        v = ATOMIC_INIT(0)
        assert atomic_inc_not_zero(v) is False
        assert atomic_read(v) == 0
        v = ATOMIC_INIT(3)
        assert atomic_inc_not_zero(v) is True
        assert atomic_read(v) == 4

    def test_atomics_are_independent(self) -> None:
        """Each Atomic holds its own counter."""
        a, b = ATOMIC_INIT(1), ATOMIC_INIT(1)
        atomic_inc(a)
        assert (atomic_read(a), atomic_read(b)) == (2, 1)

    def test_repr(self) -> None:
        """The repr shows the value."""
        assert repr(ATOMIC_INIT(-7)) == "<Atomic -7>"
        assert repr(ATOMIC64_INIT(2**40)) == f"<Atomic64 {2**40}>"

    def test_subclass_and_int_subclass_arguments(self) -> None:
        """An Atomic subclass is an Atomic; an int subclass (IntEnum) is an int."""

        class Counter(Atomic):
            __slots__ = ()

        class Step(enum.IntEnum):
            TWO = 2

        v = Counter(1)
        atomic_add(Step.TWO, v)
        atomic_inc(v)
        assert atomic_read(v) == 4
        assert type(atomic_add_return(Step.TWO, v)) is int
        assert atomic_cmpxchg(v, Step.TWO + 4, Step.TWO) == 6
        assert atomic_read(v) == 2
        assert type(atomic_read(ATOMIC_INIT(Step.TWO))) is int


class TestAtomic64:
    def test_inc_past_s64_max_wraps(self) -> None:
        """AT-08: ATOMIC64_INIT(2**63 - 1), atomic64_inc -> -2**63."""
        v = ATOMIC64_INIT(2**63 - 1)
        atomic64_inc(v)
        assert atomic64_read(v) == -(2**63)
        atomic64_dec(v)
        assert atomic64_read(v) == S64_MAX

    def test_add_return(self) -> None:
        """AT-08: atomic64_add_return(2, v) at 1 -> 3."""
        v = ATOMIC64_INIT(1)
        assert atomic64_add_return(2, v) == 3
        assert atomic64_read(v) == 3

    def test_dec_and_test(self) -> None:
        """AT-08: atomic64_dec_and_test at 1 -> True."""
        v = ATOMIC64_INIT(1)
        assert atomic64_dec_and_test(v) is True
        assert atomic64_read(v) == 0
        assert atomic64_dec_and_test(v) is False

    def test_cmpxchg_and_xchg_return_the_old_value(self) -> None:
        """AT-08: atomic64_cmpxchg and atomic64_xchg return the old value."""
        v = ATOMIC64_INIT(2**40)
        assert atomic64_xchg(v, 5) == 2**40
        assert atomic64_cmpxchg(v, 5, -(2**50)) == 5
        assert atomic64_read(v) == -(2**50)
        assert atomic64_cmpxchg(v, 5, 0) == -(2**50)
        assert atomic64_read(v) == -(2**50)

    def test_holds_more_than_32_bits(self) -> None:
        """AT-08: values past the int range are kept; the wrap is at 64 bits."""
        v = ATOMIC64_INIT(2**31 - 1)
        atomic64_inc(v)
        assert atomic64_read(v) == 2**31
        atomic64_set(v, 2**64 + 5)
        assert atomic64_read(v) == 5
        atomic64_set(v, 2**63)
        assert atomic64_read(v) == S64_MIN
        atomic64_add(-1, v)
        assert atomic64_read(v) == S64_MAX
        atomic64_sub(-1, v)
        assert atomic64_read(v) == S64_MIN
        assert atomic64_inc_return(ATOMIC64_INIT(S64_MAX)) == S64_MIN
        assert atomic64_read(Atomic64(2**64 - 1)) == -1


# -- every operation of both widths against a model on Python ints ----------------------------


@dataclass(frozen=True)
class Op:
    """One atomic operation: how it is called and what it does, on Python ints."""

    name: str  # without the atomic_/atomic64_ prefix
    shape: str  # "v": op(v); "iv": op(i, v); "vx": op(v, *args)
    nargs: int
    # (old value, args, wrap) -> (new value, result)
    model: Callable[[int, tuple[int, ...], Callable[[int], int]], tuple[int, object]]


def _unless(old: int, a: int, u: int, w: Callable[[int], int]) -> tuple[int, object]:
    return (old, False) if old == w(u) else (w(old + a), True)


OPS = [
    Op("read", "v", 0, lambda o, a, w: (o, o)),
    Op("set", "vx", 1, lambda o, a, w: (w(a[0]), None)),
    Op("add", "iv", 1, lambda o, a, w: (w(o + a[0]), None)),
    Op("sub", "iv", 1, lambda o, a, w: (w(o - a[0]), None)),
    Op("inc", "v", 0, lambda o, a, w: (w(o + 1), None)),
    Op("dec", "v", 0, lambda o, a, w: (w(o - 1), None)),
    Op("add_return", "iv", 1, lambda o, a, w: (w(o + a[0]), w(o + a[0]))),
    Op("sub_return", "iv", 1, lambda o, a, w: (w(o - a[0]), w(o - a[0]))),
    Op("inc_return", "v", 0, lambda o, a, w: (w(o + 1), w(o + 1))),
    Op("dec_return", "v", 0, lambda o, a, w: (w(o - 1), w(o - 1))),
    Op("fetch_add", "iv", 1, lambda o, a, w: (w(o + a[0]), o)),
    Op("fetch_sub", "iv", 1, lambda o, a, w: (w(o - a[0]), o)),
    Op("fetch_inc", "v", 0, lambda o, a, w: (w(o + 1), o)),
    Op("fetch_dec", "v", 0, lambda o, a, w: (w(o - 1), o)),
    Op("inc_and_test", "v", 0, lambda o, a, w: (w(o + 1), w(o + 1) == 0)),
    Op("dec_and_test", "v", 0, lambda o, a, w: (w(o - 1), w(o - 1) == 0)),
    Op("sub_and_test", "iv", 1, lambda o, a, w: (w(o - a[0]), w(o - a[0]) == 0)),
    Op("add_negative", "iv", 1, lambda o, a, w: (w(o + a[0]), w(o + a[0]) < 0)),
    Op("xchg", "vx", 1, lambda o, a, w: (w(a[0]), o)),
    Op("cmpxchg", "vx", 2, lambda o, a, w: ((w(a[1]) if o == w(a[0]) else o), o)),
    Op("add_unless", "vx", 2, lambda o, a, w: _unless(o, a[0], a[1], w)),
    Op("inc_not_zero", "v", 0, lambda o, a, w: _unless(o, 1, 0, w)),
]


@dataclass(frozen=True)
class Width:
    prefix: str
    cls: type[Any]
    bits: int

    def wrap(self, x: int) -> int:
        half = 1 << (self.bits - 1)
        return ((x + half) % (1 << self.bits)) - half


WIDTHS = [Width("atomic_", Atomic, 32), Width("atomic64_", Atomic64, 64)]


def _call(width: Width, op: Op, v: object, args: tuple[int, ...]) -> object:
    fn = getattr(kdefer_async, width.prefix + op.name)
    if op.shape == "iv":
        return fn(args[0], v)
    return fn(v, *args)


def _interesting(bits: int) -> st.SearchStrategy[int]:
    """Ints around every boundary of a *bits*-wide counter and of the fast path, and any."""
    edges = [0, 1, 2**30, 2**31, 2**32, 2**63, 2**64]
    near = [s * e + d for e in edges for s in (1, -1) for d in (-2, -1, 0, 1)]
    return st.one_of(st.sampled_from(near), st.integers(-(2**70), 2**70))


def test_every_operation_is_listed() -> None:
    """The model below covers every atomic_* and atomic64_* function the package exports."""
    exported = {n for n in kdefer_async.__all__ if n.startswith(("atomic_", "atomic64_"))}
    modelled = {w.prefix + op.name for w in WIDTHS for op in OPS}
    assert exported == modelled


@pytest.mark.parametrize("width", WIDTHS, ids=lambda w: w.prefix.rstrip("_"))
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_matches_the_model_at_every_boundary(width: Width, op: Op) -> None:
    """AT-01..AT-08: every op of both widths, from every value next to a wrap or to the fast
    path's bound, with arguments next to them too, gives the value and result of C."""
    half = 2 ** (width.bits - 1)
    starts = [-half, -half + 1, -(2**30) - 1, -(2**30), -1, 0, 1, 2**30 - 1, 2**30, half - 2]
    starts.append(half - 1)
    values = [0, 1, -1, half - 1, -half, 2**30, 2**width.bits + 1]
    read = getattr(kdefer_async, width.prefix + "read")
    for start in starts:
        for args in itertools.product(values, repeat=op.nargs):
            v = width.cls(start)
            expected = op.model(start, args, width.wrap)
            result = _call(width, op, v, args)
            assert (read(v), result) == expected, (start, args)
            assert type(result) is type(expected[1])


@pytest.mark.parametrize("width", WIDTHS, ids=lambda w: w.prefix.rstrip("_"))
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matches_the_twos_complement_model(width: Width, op: Op, data: st.DataObject) -> None:
    """AT-01..AT-08: every op of both widths gives the value and result of C arithmetic."""
    ints = _interesting(width.bits)
    start = data.draw(ints)
    args = tuple(data.draw(ints) for _ in range(op.nargs))
    v = width.cls(start)
    old = width.wrap(start)
    expected_value, expected_result = op.model(old, args, width.wrap)
    result = _call(width, op, v, args)
    read = getattr(kdefer_async, width.prefix + "read")
    assert read(v) == expected_value
    assert result == expected_result
    assert type(result) is type(expected_result)
    assert -(2 ** (width.bits - 1)) <= read(v) < 2 ** (width.bits - 1)


# -- atomic context ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_legal_in_hardirq_softirq_and_timer_context() -> None:
    """Atomics and bit operations work from a hardirq handler, a tasklet and a timer callback:
    plain functions, legal in atomic context, with no report."""
    async with Kernel(nr_cpus=2, hz=250) as k:
        count = ATOMIC_INIT(0)
        refs = ATOMIC64_INIT(2)
        flags = kdefer_async.DECLARE_BITMAP(8)
        seen: list[str] = []

        def tasklet_fn(_t: Tasklet) -> None:
            assert in_serving_softirq()
            assert not kdefer_async.test_and_set_bit(0, flags)
            clear_bit(9 & 7, flags)  # the interrupt's bit, handled
            seen.append(f"tasklet {atomic_inc_return(count)}")

        tasklet = Tasklet(tasklet_fn)

        def handler(irq: int, dev: object) -> int:
            assert in_hardirq()
            atomic_add(10, count)
            set_bit(irq & 7, flags)
            seen.append(f"hardirq {atomic_read(count)}")
            tasklet_schedule(tasklet)
            return IRQ_HANDLED

        assert request_irq(9, handler, 0, "atomics", None) == 0
        k.raise_irq(9)

        def on_tick() -> None:
            seen.append(f"timer {atomic64_dec_and_test(refs)} {atomic_fetch_add(100, count)}")

        at_tick(k, 2, on_tick)
        at_tick(k, 3, on_tick)
        await settle()
        await kdefer_async.msleep(20)
        assert seen == ["hardirq 10", "tasklet 11", "timer False 11", "timer True 111"]
        assert atomic_read(count) == 211
        assert flags[0] == 1  # the tasklet cleared irq 9's bit and set bit 0
        assert not any("BUG" in line for line in k.dmesg())


# -- argument checks -----------------------------------------------------------------------------


class _Bare(Atomic):
    """An Atomic subclass whose constructor never set the counter."""

    __slots__ = ()

    def __init__(self) -> None:
        pass


class TestArguments:
    @pytest.mark.parametrize(
        ("name", "call"),
        [
            ("atomic_read", lambda v: atomic_read(v)),
            ("atomic_set", lambda v: atomic_set(v, 1)),
            ("atomic_inc", lambda v: atomic_inc(v)),
            ("atomic_dec", lambda v: atomic_dec(v)),
            ("atomic_add", lambda v: atomic_add(1, v)),
            ("atomic_fetch_inc", lambda v: atomic_fetch_inc(v)),
            ("atomic_cmpxchg", lambda v: atomic_cmpxchg(v, 0, 1)),
            ("atomic_add_unless", lambda v: atomic_add_unless(v, 1, 0)),
            ("atomic_inc_not_zero", lambda v: atomic_inc_not_zero(v)),
        ],
    )
    def test_v_must_be_an_atomic(self, name: str, call: Callable[[object], object]) -> None:
        """atomic_*(None) and atomic_*(an Atomic64) are TypeErrors naming the function and 'v'."""
        with pytest.raises(
            TypeError, match=rf"^{name}\(\) expects an Atomic for 'v', got NoneType$"
        ):
            call(None)
        v64 = ATOMIC64_INIT(5)
        with pytest.raises(
            TypeError, match=rf"^{name}\(\) expects an Atomic for 'v', got Atomic64$"
        ):
            call(v64)
        assert atomic64_read(v64) == 5

    @pytest.mark.parametrize(
        ("name", "call"),
        [
            ("atomic64_read", lambda v: atomic64_read(v)),
            ("atomic64_set", lambda v: atomic64_set(v, 1)),
            ("atomic64_inc", lambda v: atomic64_inc(v)),
            ("atomic64_add_return", lambda v: atomic64_add_return(1, v)),
            ("atomic64_xchg", lambda v: atomic64_xchg(v, 1)),
        ],
    )
    def test_v_must_be_an_atomic64(self, name: str, call: Callable[[object], object]) -> None:
        """atomic64_*(an Atomic) is a TypeError; the Atomic is left as it was."""
        v = ATOMIC_INIT(5)
        with pytest.raises(
            TypeError, match=rf"^{name}\(\) expects an Atomic64 for 'v', got Atomic$"
        ):
            call(v)
        assert atomic_read(v) == 5

    @pytest.mark.parametrize("junk", [1.5, True, "1", None])
    @pytest.mark.parametrize(
        ("name", "param", "call"),
        [
            ("atomic_add", "i", lambda v, x: atomic_add(x, v)),
            ("atomic_sub_return", "i", lambda v, x: atomic_sub_return(x, v)),
            ("atomic_set", "i", lambda v, x: atomic_set(v, x)),
            ("atomic_xchg", "new", lambda v, x: atomic_xchg(v, x)),
            ("atomic_cmpxchg", "old", lambda v, x: atomic_cmpxchg(v, x, 0)),
            ("atomic_cmpxchg", "new", lambda v, x: atomic_cmpxchg(v, 5, x)),
            ("atomic_add_unless", "a", lambda v, x: atomic_add_unless(v, x, 0)),
            ("atomic_add_unless", "u", lambda v, x: atomic_add_unless(v, 1, x)),
        ],
    )
    def test_values_must_be_ints(
        self, name: str, param: str, call: Callable[[Atomic, object], object], junk: object
    ) -> None:
        """A non-int value (a bool too) is a TypeError naming the parameter; v is unchanged."""
        v = ATOMIC_INIT(5)
        with pytest.raises(
            TypeError,
            match=rf"^{name}\(\) expects an int for '{param}', got {type(junk).__name__}$",
        ):
            call(v, junk)
        assert atomic_read(v) == 5

    def test_64_bit_values_must_be_ints(self) -> None:
        """atomic64_add(1.0, v) is a TypeError naming 'i'."""
        v = ATOMIC64_INIT(5)
        with pytest.raises(
            TypeError, match=r"^atomic64_add\(\) expects an int for 'i', got float$"
        ):
            atomic64_add(1.0, v)  # type: ignore[arg-type]
        assert atomic64_read(v) == 5

    @pytest.mark.parametrize(
        ("name", "make"),
        [
            ("Atomic", Atomic),
            ("Atomic64", Atomic64),
            ("ATOMIC_INIT", ATOMIC_INIT),
            ("ATOMIC64_INIT", ATOMIC64_INIT),
        ],
    )
    def test_initial_value_must_be_an_int(
        self, name: str, make: Callable[[object], object]
    ) -> None:
        """Atomic(True) and ATOMIC_INIT("1") are TypeErrors naming 'i'."""
        with pytest.raises(TypeError, match=rf"^{name}\(\) expects an int for 'i', got bool$"):
            make(True)
        with pytest.raises(TypeError, match=rf"^{name}\(\) expects an int for 'i', got str$"):
            make("1")

    def test_an_atomic_without_a_counter_is_refused(self) -> None:
        """An Atomic whose constructor did not run is a ValueError, not an AttributeError."""
        with pytest.raises(
            ValueError,
            match=r"^atomic_inc\(\) expects an Atomic made by Atomic\(\) or ATOMIC_INIT\(\) "
            r"for 'v', got <Atomic uninitialised>$",
        ):
            atomic_inc(_Bare())
