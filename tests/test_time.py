"""Jiffies: the boot value and the clock, wrap-safe comparisons, conversions (§5.1, TM-01..03)."""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import pytest
from hypothesis import given, strategies as st

import kdefer_async
from kdefer_async import (
    MAX_JIFFY_OFFSET,
    Kernel,
    get_jiffies_64,
    jiffies_to_msecs,
    jiffies_to_usecs,
    msecs_to_jiffies,
    time_after,
    time_after_eq,
    time_before,
    time_before_eq,
    time_in_range,
    time_in_range_open,
    usecs_to_jiffies,
)

pytestmark = pytest.mark.anyio

ULONG_MAX = 2**64 - 1
LONG_MAX = 2**63 - 1
KERNEL_HZ = (100, 250, 300, 1000)


class TestJiffiesCounter:
    async def test_initial_jiffies_at_hz_250(self, virtual: bool) -> None:
        """TM-01: at HZ=250 INITIAL_JIFFIES is 4294892296 and jiffies start there at boot."""
        async with Kernel(nr_cpus=2, hz=250):
            j = kdefer_async.jiffies
            assert kdefer_async.HZ == 250
            assert kdefer_async.INITIAL_JIFFIES == 4294892296
            if virtual:
                assert j == 4294892296
            else:
                assert 4294892296 <= j < 4294892296 + 250

    @pytest.mark.parametrize("hz", KERNEL_HZ)
    async def test_initial_jiffies_is_300_seconds_before_the_32_bit_wrap(self, hz: int) -> None:
        """TM-01: INITIAL_JIFFIES is (unsigned int)(-300*HZ): 2**32 - 300*HZ on 64 bits."""
        async with Kernel(nr_cpus=1, hz=hz):
            assert hz == kdefer_async.HZ
            assert 2**32 - 300 * hz == kdefer_async.INITIAL_JIFFIES

    async def test_jiffies_advance_with_the_clock(self, virtual: bool) -> None:
        """TM-01: jiffies count clock ticks: one second of sleep is exactly HZ jiffies (virtual)."""
        async with Kernel(nr_cpus=2, hz=1000):
            j0 = kdefer_async.jiffies
            if virtual:
                await anyio.sleep(1)
                assert kdefer_async.jiffies == j0 + 1000
                await anyio.sleep(2.5)
                assert kdefer_async.jiffies == j0 + 3500
            else:
                await anyio.sleep(0.01)
                assert kdefer_async.jiffies >= j0 + 5

    async def test_low_32_bits_wrap_after_300_seconds(self, virtual: bool) -> None:
        """TM-01: the low 32 bits of jiffies wrap 300 s after boot; the 64-bit counter does not."""
        if not virtual:
            pytest.skip("needs 301 s of virtual time")
        async with Kernel(nr_cpus=2, hz=250):
            await anyio.sleep(299)
            before = kdefer_async.jiffies
            assert before < 2**32
            assert before & 0xFFFFFFFF == 2**32 - 250
            await anyio.sleep(2)
            after = kdefer_async.jiffies
            assert after >= 2**32
            assert after & 0xFFFFFFFF == 250
            assert time_after(after, before)

    async def test_get_jiffies_64_is_the_jiffies_counter(self, virtual: bool) -> None:
        """TM-01: get_jiffies_64() returns the running kernel's 64-bit jiffies."""
        async with Kernel(nr_cpus=2, hz=250):
            lo = kdefer_async.jiffies
            j64 = get_jiffies_64()
            hi = kdefer_async.jiffies
            assert lo <= j64 <= hi
            if virtual:
                await anyio.sleep(10)
                assert get_jiffies_64() == lo + 2500

    async def test_module_attributes_read_the_running_kernel(self) -> None:
        """HZ and INITIAL_JIFFIES are read from whichever kernel runs, not frozen at import."""
        async with Kernel(nr_cpus=1, hz=100):
            assert kdefer_async.HZ == 100
            assert kdefer_async.INITIAL_JIFFIES == 2**32 - 30000
        async with Kernel(nr_cpus=1, hz=1000):
            assert kdefer_async.HZ == 1000
            assert kdefer_async.INITIAL_JIFFIES == 2**32 - 300000

    @pytest.mark.parametrize("name", ["HZ", "jiffies", "INITIAL_JIFFIES"])
    async def test_module_attributes_need_a_kernel(self, name: str) -> None:
        """Reading HZ, jiffies or INITIAL_JIFFIES with no kernel running raises RuntimeError."""
        with pytest.raises(RuntimeError, match="Kernel"):
            getattr(kdefer_async, name)
        async with Kernel(nr_cpus=1, hz=250):
            assert isinstance(getattr(kdefer_async, name), int)
        with pytest.raises(RuntimeError):
            getattr(kdefer_async, name)

    async def test_hz_dependent_functions_need_a_kernel(self) -> None:
        """get_jiffies_64() and the conversions raise RuntimeError outside a kernel."""
        with pytest.raises(RuntimeError):
            get_jiffies_64()
        with pytest.raises(RuntimeError):
            msecs_to_jiffies(10)
        with pytest.raises(RuntimeError):
            usecs_to_jiffies(10)
        with pytest.raises(RuntimeError):
            jiffies_to_msecs(10)
        with pytest.raises(RuntimeError):
            jiffies_to_usecs(10)

    def test_unknown_module_attribute_is_an_attribute_error(self) -> None:
        """Only the dynamic names are looked up in the kernel; others are AttributeError."""
        with pytest.raises(AttributeError, match="no_such_name"):
            kdefer_async.no_such_name  # noqa: B018


class TestComparisons:
    def test_time_after_across_the_wrap(self) -> None:
        """TM-02: time_after(5, ULONG_MAX - 5) is true: 5 comes 11 ticks after the wrap."""
        assert time_after(5, ULONG_MAX - 5)
        assert not time_after(ULONG_MAX - 5, 5)
        assert time_before(ULONG_MAX - 5, 5)
        assert not time_before(5, ULONG_MAX - 5)
        assert time_after_eq(5, ULONG_MAX - 5)
        assert time_before_eq(ULONG_MAX - 5, 5)
        assert not time_after_eq(ULONG_MAX - 5, 5)
        assert not time_before_eq(5, ULONG_MAX - 5)

    @pytest.mark.parametrize("a", [0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**63, ULONG_MAX])
    def test_equal_values(self, a: int) -> None:
        """TM-02: time_after_eq(a, a) and time_before_eq(a, a) are true; strict forms false."""
        assert time_after_eq(a, a)
        assert time_before_eq(a, a)
        assert not time_after(a, a)
        assert not time_before(a, a)

    def test_across_the_32_bit_boundary_of_initial_jiffies(self) -> None:
        """TM-02: values on both sides of 2**32 compare by distance, as jiffies do after 300 s."""
        initial = 2**32 - 300 * 250
        later = initial + 75_001
        assert later > 2**32
        assert time_after(later, initial)
        assert time_before(initial, later)
        assert time_in_range(2**32, initial, later)

    def test_signed_difference_limit(self) -> None:
        """TM-02: comparisons hold only within LONG_MAX: further apart the order flips."""
        a = 12345
        assert time_after(a + LONG_MAX, a)
        assert time_before(a, a + LONG_MAX)
        far = (a + LONG_MAX + 2) & ULONG_MAX
        assert not time_after(far, a)
        assert time_before(far, a)

    def test_inputs_must_be_unsigned_long(self) -> None:
        """TM-02: values are unsigned long: one past 2**64 - 1 or negative is a ValueError,
        not a silent wrap."""
        expected = rf"a jiffies value from 0 to {ULONG_MAX}"
        with pytest.raises(
            ValueError, match=rf"^time_after\(\) expects {expected} for 'a', got {2**64 + 5}$"
        ):
            time_after(2**64 + 5, ULONG_MAX - 5)
        with pytest.raises(
            ValueError, match=rf"^time_after_eq\(\) expects {expected} for 'a', got -1$"
        ):
            time_after_eq(-1, ULONG_MAX)
        with pytest.raises(
            ValueError, match=rf"^time_before_eq\(\) expects {expected} for 'b', got -1$"
        ):
            time_before_eq(ULONG_MAX, -1)
        with pytest.raises(
            ValueError, match=rf"^time_after\(\) expects {expected} for 'b', got -1$"
        ):
            time_after(0, -1)

    def test_time_in_range_across_the_wrap(self) -> None:
        """TM-02: time_in_range(a, b, c) is b <= a <= c, inclusive, even when [b, c] wraps."""
        b, c = ULONG_MAX - 10, 10
        for a in (b, ULONG_MAX - 1, ULONG_MAX, 0, 1, 9, c):
            assert time_in_range(a, b, c), a
        for a in (b - 1, c + 1, 2**63):
            assert not time_in_range(a, b, c), a

    def test_time_in_range_open_excludes_the_end(self) -> None:
        """TM-02: time_in_range_open(a, b, c) is b <= a < c, wrap-safe."""
        b, c = ULONG_MAX - 10, 10
        assert time_in_range_open(b, b, c)
        assert time_in_range_open(ULONG_MAX, b, c)
        assert time_in_range_open(9, b, c)
        assert not time_in_range_open(c, b, c)
        assert not time_in_range_open(b - 1, b, c)
        assert time_in_range(c, b, c)

    def test_non_int_arguments_are_type_errors(self) -> None:
        """Comparisons take jiffies (ints): floats, strings and bools are TypeError."""
        with pytest.raises(TypeError):
            time_after(1.5, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            time_before(1, "2")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            time_after_eq(True, 0)
        with pytest.raises(TypeError):
            time_in_range(1, 0, None)  # type: ignore[arg-type]

    @given(
        a=st.integers(min_value=0, max_value=ULONG_MAX),
        d=st.integers(min_value=0, max_value=LONG_MAX),
    )
    def test_comparisons_follow_the_distance(self, a: int, d: int) -> None:
        """TM-02: for b = a + d (mod 2**64) with 0 <= d <= LONG_MAX, b is after a iff d > 0."""
        b = (a + d) & ULONG_MAX
        assert time_after(b, a) == (d > 0)
        assert time_before(a, b) == (d > 0)
        assert time_after_eq(b, a)
        assert time_before_eq(a, b)
        assert time_after_eq(a, b) == (d == 0)
        assert time_in_range(b, a, b)
        assert time_in_range(a, a, b)
        assert time_in_range_open(a, a, b) == (d > 0)
        assert not time_in_range_open(b, a, b)


#: (hz, msecs -> jiffies, jiffies -> msecs, usecs -> jiffies, jiffies -> usecs) samples
CONVERSIONS: dict[int, tuple[dict[int, int], dict[int, int], dict[int, int], dict[int, int]]] = {
    100: (
        {0: 0, 1: 1, 5: 1, 10: 1, 11: 2, 20: 2, 21: 3, 1000: 100},
        {0: 0, 1: 10, 100: 1000},
        {0: 0, 1: 1, 10_000: 1, 10_001: 2, 1_000_000: 100},
        {0: 0, 1: 10_000, 100: 1_000_000},
    ),
    250: (
        {0: 0, 1: 1, 4: 1, 5: 2, 8: 2, 9: 3, 10: 3, 1000: 250},
        {0: 0, 1: 4, 3: 12, 250: 1000},
        {0: 0, 1: 1, 4000: 1, 4001: 2, 1_000_000: 250},
        {0: 0, 1: 4000, 250: 1_000_000},
    ),
    300: (
        {0: 0, 1: 1, 3: 1, 4: 2, 10: 3, 11: 4, 1000: 300},
        {0: 0, 1: 3, 3: 10, 300: 1000},
        {0: 0, 1: 1, 3333: 1, 3334: 2, 1_000_000: 300},
        {0: 0, 1: 3333, 3: 10_000, 300: 1_000_000},
    ),
    1000: (
        {0: 0, 1: 1, 7: 7, 1000: 1000},
        {0: 0, 1: 1, 7: 7, 1000: 1000},
        {0: 0, 1: 1, 1000: 1, 1001: 2, 1_000_000: 1000},
        {0: 0, 1: 1000, 1000: 1_000_000},
    ),
}


class TestConversions:
    @pytest.mark.parametrize("hz", KERNEL_HZ)
    async def test_conversion_table(self, hz: int) -> None:
        """TM-03: msecs/usecs <-> jiffies give the kernel's values at HZ 100, 250, 300, 1000."""
        ms_to_j, j_to_ms, us_to_j, j_to_us = CONVERSIONS[hz]
        async with Kernel(nr_cpus=1, hz=hz):
            assert {m: msecs_to_jiffies(m) for m in ms_to_j} == ms_to_j
            assert {j: jiffies_to_msecs(j) for j in j_to_ms} == j_to_ms
            assert {u: usecs_to_jiffies(u) for u in us_to_j} == us_to_j
            assert {j: jiffies_to_usecs(j) for j in j_to_us} == j_to_us

    @pytest.mark.parametrize("hz", KERNEL_HZ)
    async def test_conversions_to_jiffies_round_up(self, hz: int) -> None:
        """TM-03: msecs/usecs_to_jiffies are the exact ceiling: never shorter than asked."""
        async with Kernel(nr_cpus=1, hz=hz):
            for m in range(3000):
                j = msecs_to_jiffies(m)
                assert j == math.ceil(m * hz / 1000) == -(-m * hz // 1000), m
                assert jiffies_to_msecs(j) >= m, m
            for u in range(0, 3_000_000, 997):
                assert usecs_to_jiffies(u) == -(-u * hz // 1_000_000), u

    @pytest.mark.parametrize("hz", KERNEL_HZ)
    async def test_negative_saturates_to_max_jiffy_offset(self, hz: int) -> None:
        """TM-03: a negative timeout means "forever": the conversions give MAX_JIFFY_OFFSET."""
        assert MAX_JIFFY_OFFSET == (LONG_MAX >> 1) - 1
        async with Kernel(nr_cpus=1, hz=hz):
            assert msecs_to_jiffies(-1) == MAX_JIFFY_OFFSET
            assert msecs_to_jiffies(-1000) == MAX_JIFFY_OFFSET
            assert msecs_to_jiffies(-(2**31)) == MAX_JIFFY_OFFSET
            assert usecs_to_jiffies(-1) == MAX_JIFFY_OFFSET

    async def test_msecs_argument_is_an_unsigned_int(self) -> None:
        """TM-03: msecs_to_jiffies takes an unsigned int: 2**31 is negative as int; 2**32 does
        not fit, a ValueError rather than a silent wrap to 0."""
        async with Kernel(nr_cpus=1, hz=250):
            assert msecs_to_jiffies(2**31 - 1) == -(-(2**31 - 1) // 4)
            assert msecs_to_jiffies(2**31) == MAX_JIFFY_OFFSET
            assert msecs_to_jiffies(2**32 - 1) == MAX_JIFFY_OFFSET
            with pytest.raises(
                ValueError,
                match=r"^msecs_to_jiffies\(\) expects an int or unsigned int "
                rf"\(-2147483648 to 4294967295\) for 'm', got {2**32}$",
            ):
                msecs_to_jiffies(2**32)

    async def test_jiffies_to_msecs_returns_an_unsigned_int(self) -> None:
        """TM-03: jiffies_to_msecs returns unsigned int: at HZ=250, 2**30 jiffies wrap to 0 ms."""
        async with Kernel(nr_cpus=1, hz=250):
            assert jiffies_to_msecs(2**30 - 1) == 2**32 - 4
            assert jiffies_to_msecs(2**30) == 0

    async def test_conversions_reject_non_ints(self) -> None:
        """Conversions take ints: a float is a TypeError, not a silent truncation."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(TypeError):
                msecs_to_jiffies(1.5)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                usecs_to_jiffies(1.5)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                jiffies_to_msecs(1.5)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                jiffies_to_usecs(None)  # type: ignore[arg-type]


class TestArguments:
    @pytest.mark.parametrize(
        ("name", "call", "param"),
        [
            ("time_after", lambda v: time_after(v, 0), "a"),
            ("time_before", lambda v: time_before(0, v), "b"),
            ("time_after_eq", lambda v: time_after_eq(0, v), "b"),
            ("time_before_eq", lambda v: time_before_eq(v, 0), "a"),
            ("time_in_range", lambda v: time_in_range(0, 0, v), "c"),
            ("time_in_range_open", lambda v: time_in_range_open(0, v, 0), "b"),
        ],
    )
    def test_comparisons_name_themselves_and_the_argument(
        self, name: str, call: Callable[[object], bool], param: str
    ) -> None:
        """time_after(None, 0) is a TypeError naming time_after and 'a'; -5 a ValueError."""
        with pytest.raises(
            TypeError, match=rf"^{name}\(\) expects an int for '{param}', got NoneType$"
        ):
            call(None)
        with pytest.raises(
            ValueError,
            match=rf"^{name}\(\) expects a jiffies value from 0 to {ULONG_MAX} for '{param}', "
            r"got -5$",
        ):
            call(-5)

    async def test_jiffies_to_msecs_and_usecs(self) -> None:
        """jiffies_to_msecs(-1) is a ValueError (a jiffies value is an unsigned long)."""
        async with Kernel(nr_cpus=1, hz=250):
            for fn in (jiffies_to_msecs, jiffies_to_usecs):
                with pytest.raises(
                    ValueError,
                    match=rf"^{fn.__name__}\(\) expects a jiffies value from 0 to {ULONG_MAX} "
                    r"for 'j', got -1$",
                ):
                    fn(-1)
                with pytest.raises(
                    TypeError, match=rf"^{fn.__name__}\(\) expects an int for 'j', got bool$"
                ):
                    fn(True)

    async def test_msecs_and_usecs_to_jiffies_take_an_int_or_unsigned_int(self) -> None:
        """Below INT_MIN or above UINT_MAX is a ValueError; negatives in range mean forever."""
        async with Kernel(nr_cpus=1, hz=250):
            for fn, param in ((msecs_to_jiffies, "m"), (usecs_to_jiffies, "u")):
                assert fn(-(2**31)) == MAX_JIFFY_OFFSET
                for bad in (-(2**31) - 1, 2**32):
                    with pytest.raises(
                        ValueError,
                        match=rf"^{fn.__name__}\(\) expects an int or unsigned int "
                        rf"\(-2147483648 to 4294967295\) for '{param}', got {bad}$",
                    ):
                        fn(bad)
                with pytest.raises(
                    TypeError,
                    match=rf"^{fn.__name__}\(\) expects an int for '{param}', got str$",
                ):
                    fn("10")  # type: ignore[arg-type]
