"""Bitmaps and bit operations: words, single bits, searches, whole-bitmap ops (§7.4).

Behaviours checked here: AT-09 to AT-13 (AT-01 to AT-08 are in test_atomic.py, with the test
that uses bit operations in atomic context). Every behaviour of §7.4 is modelled; the one
deliberate difference from C is AT-13's: a bit number or size past the bitmap's words is a
``ValueError`` instead of a memory corruption.

The functions are imported through the package namespace (``kd.test_bit``): names starting
with ``test`` imported into a test module would otherwise look like tests.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings, strategies as st

import kdefer_async as kd
from kdefer_async import (
    BITS_PER_LONG,
    BITS_TO_LONGS,
    DECLARE_BITMAP,
    Atomic,
    Bitmap,
    bitmap_weight,
    bitmap_zero,
    change_bit,
    clear_bit,
    find_first_bit,
    find_first_zero_bit,
    find_last_bit,
    find_next_bit,
    find_next_zero_bit,
    set_bit,
)

ULONG_MAX = 2**64 - 1


def bits_of(bm: Bitmap) -> set[int]:
    """The numbers of the set bits of *bm*, read from its words."""
    return {i * 64 + b for i, w in enumerate(bm) for b in range(64) if w >> b & 1}


class TestBitmap:
    def test_bits_per_long_and_words(self) -> None:
        """AT-09: BITS_PER_LONG is 64; DECLARE_BITMAP(100) has 2 words, all clear."""
        assert BITS_PER_LONG == 64
        b = DECLARE_BITMAP(100)
        assert type(b) is Bitmap
        assert len(b) == 2
        assert list(b) == [0, 0]
        assert b.nbits == 100

    @pytest.mark.parametrize(
        ("nbits", "words"), [(0, 0), (1, 1), (63, 1), (64, 1), (65, 2), (128, 2), (129, 3)]
    )
    def test_bits_to_longs_rounds_up(self, nbits: int, words: int) -> None:
        """AT-09: BITS_TO_LONGS rounds up to whole words; a Bitmap has that many."""
        assert BITS_TO_LONGS(nbits) == words
        assert len(Bitmap(nbits)) == words

    def test_words_read_and_write(self) -> None:
        """bm[i] reads and writes word i; a stored value is taken modulo 2**64."""
        b = DECLARE_BITMAP(128)
        b[1] = 0xF0
        assert b[1] == 0xF0
        b[0] = -1
        assert b[0] == ULONG_MAX
        b[0] = 2**64 + 3
        assert b[0] == 3
        assert list(b) == [3, 0xF0]
        assert kd.test_bit(64 + 4, b)

    def test_word_index_out_of_range(self) -> None:
        """A word index past the last word, or negative, is an IndexError (C has no b[-1])."""
        b = DECLARE_BITMAP(100)
        with pytest.raises(
            IndexError, match=r"^Bitmap word index 2 out of range: the bitmap has 2 words$"
        ):
            b[2]
        with pytest.raises(IndexError, match=r"^Bitmap word index -1 out of range"):
            b[-1]
        with pytest.raises(
            IndexError, match=r"^Bitmap word index 0 out of range: the bitmap has no words$"
        ):
            Bitmap(0)[0] = 1
        with pytest.raises(TypeError, match=r"^Bitmap word indices must be ints, not bool$"):
            b[True]
        with pytest.raises(
            TypeError, match=r"^Bitmap\.__setitem__\(\) expects an int for 'value', got float$"
        ):
            b[0] = 1.5  # type: ignore[assignment]
        assert list(b) == [0, 0]

    def test_iteration_is_a_snapshot(self) -> None:
        """Iterating yields the words as they were when it started."""
        b = DECLARE_BITMAP(128)
        it = iter(b)
        set_bit(0, b)
        assert list(it) == [0, 0]

    def test_repr(self) -> None:
        """The repr shows nbits and the words in hex."""
        b = DECLARE_BITMAP(100)
        set_bit(70, b)
        assert repr(b) == "<Bitmap nbits=100 [0x0, 0x40]>"
        assert repr(Bitmap(64 * 6)).endswith("[0x0, 0x0, 0x0, 0x0, ...]>")


class TestSingleBits:
    def test_set_test_clear(self) -> None:
        """AT-09: set_bit(70, b) -> word 1 = 1 << 6, test_bit(70) True; clear_bit -> False."""
        b = DECLARE_BITMAP(100)
        set_bit(70, b)
        assert b[1] == 1 << 6
        assert b[0] == 0
        assert kd.test_bit(70, b) is True
        clear_bit(70, b)
        assert kd.test_bit(70, b) is False
        assert list(b) == [0, 0]

    def test_bits_beyond_nbits_inside_the_last_word_exist(self) -> None:
        """AT-09: a 100-bit map has 128 bits of storage: bit 127 is a real bit."""
        b = DECLARE_BITMAP(100)
        set_bit(127, b)
        assert b[1] == 1 << 63
        assert kd.test_bit(127, b)

    def test_test_and_set_bit(self) -> None:
        """AT-10: test_and_set_bit(3, b) -> 0 then 1."""
        b = DECLARE_BITMAP(100)
        assert kd.test_and_set_bit(3, b) == 0
        assert kd.test_and_set_bit(3, b) == 1
        assert b[0] == 1 << 3

    def test_test_and_clear_bit(self) -> None:
        """AT-10: test_and_clear_bit(3, b) -> 1 then 0."""
        b = DECLARE_BITMAP(100)
        set_bit(3, b)
        assert kd.test_and_clear_bit(3, b) == 1
        assert kd.test_and_clear_bit(3, b) == 0
        assert b[0] == 0

    def test_test_and_change_bit_and_change_bit(self) -> None:
        """AT-10: test_and_change_bit(3, b) -> 0 (bit now 1); change_bit(3, b) flips it back."""
        b = DECLARE_BITMAP(100)
        assert kd.test_and_change_bit(3, b) == 0
        assert kd.test_bit(3, b)
        change_bit(3, b)
        assert not kd.test_bit(3, b)
        assert kd.test_and_change_bit(3, b) == 0
        assert kd.test_and_change_bit(3, b) == 1
        assert b[0] == 0

    def test_returns_are_the_kernels_types(self) -> None:
        """AT-10: test_bit and the test_and_* ops return bool (0/1); the others nothing."""
        b = DECLARE_BITMAP(64)
        for fn in (kd.test_bit, kd.test_and_set_bit, kd.test_and_clear_bit, kd.test_and_change_bit):
            assert type(fn(5, b)) is bool
        for op in (set_bit, clear_bit, change_bit):
            assert op(5, b) is None  # type: ignore[func-returns-value]

    def test_high_bit_of_a_word(self) -> None:
        """Bit 63 of each word (the sign bit of a C long) is an ordinary bit."""
        b = DECLARE_BITMAP(128)
        assert kd.test_and_set_bit(63, b) == 0
        assert kd.test_and_set_bit(127, b) == 0
        assert list(b) == [1 << 63, 1 << 63]
        assert kd.test_and_clear_bit(63, b) == 1
        assert list(b) == [0, 1 << 63]

    def test_test_functions_are_not_collected_as_tests(self) -> None:
        """test_bit and the test_and_* functions carry __test__ = False for test collectors."""
        for fn in (kd.test_bit, kd.test_and_set_bit, kd.test_and_clear_bit, kd.test_and_change_bit):
            assert getattr(fn, "__test__", True) is False


class TestSearch:
    def test_find_first_and_next_bit(self) -> None:
        """AT-11: the find_first_bit/find_next_bit values of §11.7 on a 100-bit map."""
        b = DECLARE_BITMAP(100)
        assert find_first_bit(b, 100) == 100
        set_bit(70, b)
        assert find_first_bit(b, 100) == 70
        assert find_next_bit(b, 100, 71) == 100
        assert find_next_bit(b, 100, 70) == 70
        assert find_next_bit(b, 100, 150) == 100
        assert find_first_bit(b, 64) == 64

    def test_bits_at_or_above_size_are_ignored(self) -> None:
        """AT-11: a set bit at or above size is not found: the result is size."""
        b = DECLARE_BITMAP(128)
        set_bit(100, b)
        assert find_first_bit(b, 100) == 100
        assert find_first_bit(b, 101) == 100
        assert find_next_bit(b, 70, 0) == 70
        assert find_last_bit(b, 100) == 100
        assert find_last_bit(b, 128) == 100

    def test_offset_past_ulong_max_is_refused_but_any_offset_past_size_is_size(self) -> None:
        """AT-11: offset >= size gives size, however large, up to ULONG_MAX."""
        b = DECLARE_BITMAP(128)
        assert find_next_bit(b, 128, ULONG_MAX) == 128
        assert find_next_zero_bit(b, 0, 0) == 0

    def test_zero_bit_searches(self) -> None:
        """find_first_zero_bit/find_next_zero_bit: the lowest clear bit, else size."""
        b = DECLARE_BITMAP(128)
        b[0] = ULONG_MAX
        assert find_first_zero_bit(b, 128) == 64
        assert find_first_zero_bit(b, 64) == 64
        assert find_first_zero_bit(b, 10) == 10
        assert find_next_zero_bit(b, 128, 70) == 70
        b[1] = ULONG_MAX
        assert find_first_zero_bit(b, 100) == 100

    def test_find_last_bit(self) -> None:
        """find_last_bit: the highest set bit below size, else size."""
        b = DECLARE_BITMAP(192)
        assert find_last_bit(b, 192) == 192
        assert find_last_bit(b, 0) == 0
        set_bit(3, b)
        set_bit(130, b)
        assert find_last_bit(b, 192) == 130
        assert find_last_bit(b, 130) == 3
        assert find_last_bit(b, 4) == 3
        assert find_last_bit(b, 3) == 3  # none below 3: size

    @settings(max_examples=300, deadline=None)
    @given(
        bits=st.sets(st.integers(0, 191), max_size=12),
        size=st.integers(0, 192),
        offset=st.one_of(st.integers(0, 200), st.just(ULONG_MAX)),
    )
    def test_searches_match_brute_force(self, bits: set[int], size: int, offset: int) -> None:
        """AT-11: every search agrees with a scan of the bits, for any map, size and offset."""
        b = DECLARE_BITMAP(192)
        for nr in bits:
            set_bit(nr, b)
        below = sorted(n for n in bits if n < size)
        clear = [n for n in range(size) if n not in bits]
        assert find_first_bit(b, size) == (below[0] if below else size)
        assert find_next_bit(b, size, offset) == next((n for n in below if n >= offset), size)
        assert find_first_zero_bit(b, size) == (clear[0] if clear else size)
        assert find_next_zero_bit(b, size, offset) == next((n for n in clear if n >= offset), size)
        assert find_last_bit(b, size) == (below[-1] if below else size)
        assert bitmap_weight(b, size) == len(below)


class TestWholeBitmap:
    def test_weight_and_zero(self) -> None:
        """AT-12: bits 3, 70, 120 set: bitmap_weight(b, 100) = 2; bitmap_zero(b, 100) clears 128."""
        b = DECLARE_BITMAP(100)
        for nr in (3, 70, 120):
            set_bit(nr, b)
        assert bitmap_weight(b, 100) == 2
        assert bitmap_weight(b, 128) == 3
        assert bitmap_weight(b, 3) == 0
        assert bitmap_weight(b, 4) == 1
        bitmap_zero(b, 100)
        assert list(b) == [0, 0]
        assert bits_of(b) == set()

    def test_zero_clears_whole_words_only_up_to_nbits(self) -> None:
        """AT-12: bitmap_zero(b, 65) clears 2 whole words of 3; bitmap_zero(b, 0) clears none."""
        b = DECLARE_BITMAP(192)
        for w in range(3):
            b[w] = ULONG_MAX
        bitmap_zero(b, 0)
        assert list(b) == [ULONG_MAX] * 3
        bitmap_zero(b, 65)
        assert list(b) == [0, 0, ULONG_MAX]


class TestBounds:
    @pytest.mark.parametrize(
        "op",
        [
            set_bit,
            clear_bit,
            change_bit,
            kd.test_bit,
            kd.test_and_set_bit,
            kd.test_and_clear_bit,
            kd.test_and_change_bit,
        ],
        ids=lambda f: f.__name__,
    )
    @pytest.mark.parametrize("nr", [128, 2**64, -1, -129])
    def test_bit_beyond_the_storage_is_refused(
        self, op: Callable[[int, Bitmap], object], nr: int
    ) -> None:
        """AT-13: set_bit(128, DECLARE_BITMAP(100)) raises (C would corrupt memory); so does
        every bit op on a bit past the words or a negative one, and the bitmap is unchanged."""
        b = DECLARE_BITMAP(100)
        b[1] = 5
        with pytest.raises(
            ValueError,
            match=rf"^{op.__name__}\(\) expects a bit number from 0 to 127 \(the Bitmap holds 2 "
            rf"words\) for 'nr', got {nr}$",
        ):
            op(nr, b)
        assert list(b) == [0, 5]

    def test_empty_bitmap_has_no_bits(self) -> None:
        """AT-13: a 0-bit map has no words: bit 0 is already outside it."""
        b = Bitmap(0)
        assert len(b) == 0
        with pytest.raises(
            ValueError,
            match=r"^set_bit\(\) expects a bit number inside the Bitmap, which has no words "
            r"for 'nr', got 0$",
        ):
            set_bit(0, b)
        assert find_first_bit(b, 0) == 0
        assert bitmap_weight(b, 0) == 0

    @pytest.mark.parametrize(
        ("name", "call", "param"),
        [
            ("find_first_bit", lambda b, n: find_first_bit(b, n), "size"),
            ("find_next_bit", lambda b, n: find_next_bit(b, n, 0), "size"),
            ("find_first_zero_bit", lambda b, n: find_first_zero_bit(b, n), "size"),
            ("find_next_zero_bit", lambda b, n: find_next_zero_bit(b, n, 0), "size"),
            ("find_last_bit", lambda b, n: find_last_bit(b, n), "size"),
            ("bitmap_zero", lambda b, n: bitmap_zero(b, n), "nbits"),
            ("bitmap_weight", lambda b, n: bitmap_weight(b, n), "nbits"),
        ],
    )
    def test_size_past_the_storage_is_refused(
        self, name: str, call: Callable[[Bitmap, int], object], param: str
    ) -> None:
        """AT-13: a size past the words would read (or clear) the memory after them."""
        b = DECLARE_BITMAP(100)
        b[0] = 7
        for bad in (129, -1):
            with pytest.raises(
                ValueError,
                match=rf"^{name}\(\) expects a number of bits from 0 to 128 \(the Bitmap holds 2 "
                rf"words\) for '{param}', got {bad}$",
            ):
                call(b, bad)
        assert list(b) == [7, 0]

    def test_largest_bitmap(self) -> None:
        """The model makes bitmaps of up to MAX_NBITS bits; one more is a ValueError."""
        from kdefer_async._bitops import MAX_NBITS

        assert len(Bitmap(MAX_NBITS)) == MAX_NBITS // 64
        with pytest.raises(
            ValueError,
            match=rf"^DECLARE_BITMAP\(\) expects a number of bits from 0 to {MAX_NBITS} for "
            rf"'nbits', got {MAX_NBITS + 1}$",
        ):
            DECLARE_BITMAP(MAX_NBITS + 1)


class _Bare(Bitmap):
    """A Bitmap subclass whose constructor never made the words."""

    __slots__ = ()

    def __init__(self) -> None:
        pass


class TestArguments:
    @pytest.mark.parametrize(
        "op",
        [
            set_bit,
            clear_bit,
            change_bit,
            kd.test_bit,
            kd.test_and_set_bit,
            kd.test_and_clear_bit,
            kd.test_and_change_bit,
        ],
        ids=lambda f: f.__name__,
    )
    def test_bit_ops(self, op: Callable[[object, object], object]) -> None:
        """nr must be an int (not a bool) and addr a Bitmap; messages name both."""
        b = DECLARE_BITMAP(64)
        name = op.__name__
        for junk, kind in ((True, "bool"), (1.0, "float"), (None, "NoneType")):
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects an int for 'nr', got {kind}$"
            ):
                op(junk, b)
        for junk, kind in ((None, "NoneType"), ([0], "list"), (Atomic(), "Atomic")):
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects a Bitmap for 'addr', got {kind}$"
            ):
                op(1, junk)
        with pytest.raises(
            ValueError,
            match=rf"^{name}\(\) expects a Bitmap made by Bitmap\(\) or DECLARE_BITMAP\(\) for "
            r"'addr', got <Bitmap uninitialised>$",
        ):
            op(1, _Bare())
        assert list(b) == [0]

    @pytest.mark.parametrize(
        ("name", "call"),
        [
            ("find_first_bit", lambda b, n: find_first_bit(b, n)),
            ("find_next_bit", lambda b, n: find_next_bit(b, n, 0)),
            ("find_last_bit", lambda b, n: find_last_bit(b, n)),
            ("bitmap_zero", lambda b, n: bitmap_zero(b, n)),
            ("bitmap_weight", lambda b, n: bitmap_weight(b, n)),
        ],
    )
    def test_searches_and_whole_map_ops(
        self, name: str, call: Callable[[object, object], object]
    ) -> None:
        """addr must be a Bitmap; sizes must be ints."""
        b = DECLARE_BITMAP(64)
        with pytest.raises(
            TypeError, match=rf"^{name}\(\) expects a Bitmap for 'addr', got NoneType$"
        ):
            call(None, 1)
        with pytest.raises(TypeError, match=rf"^{name}\(\) expects an int for '\w+', got bool$"):
            call(b, True)

    def test_find_next_offset(self) -> None:
        """find_next_bit's offset is an unsigned long: negative or past ULONG_MAX is refused."""
        b = DECLARE_BITMAP(64)
        for bad in (-1, 2**64):
            with pytest.raises(
                ValueError,
                match=rf"^find_next_bit\(\) expects an int from 0 to {ULONG_MAX} for 'offset', "
                rf"got {bad}$",
            ):
                find_next_bit(b, 64, bad)
        with pytest.raises(
            TypeError, match=r"^find_next_zero_bit\(\) expects an int for 'offset', got str$"
        ):
            find_next_zero_bit(b, 64, "0")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("name", "make"), [("Bitmap", Bitmap), ("DECLARE_BITMAP", DECLARE_BITMAP)]
    )
    def test_nbits(self, name: str, make: Callable[[object], Bitmap]) -> None:
        """Bitmap(nbits) and DECLARE_BITMAP(nbits): an int from 0 to MAX_NBITS."""
        with pytest.raises(TypeError, match=rf"^{name}\(\) expects an int for 'nbits', got float$"):
            make(64.0)
        with pytest.raises(
            ValueError,
            match=rf"^{name}\(\) expects a number of bits from 0 to \d+ for 'nbits', got -1$",
        ):
            make(-1)

    def test_bits_to_longs(self) -> None:
        """BITS_TO_LONGS(nr): nr an unsigned long."""
        with pytest.raises(
            TypeError, match=r"^BITS_TO_LONGS\(\) expects an int for 'nr', got bool$"
        ):
            BITS_TO_LONGS(True)
        with pytest.raises(
            ValueError, match=r"^BITS_TO_LONGS\(\) expects an int from 0 to \d+ for 'nr', got -1$"
        ):
            BITS_TO_LONGS(-1)

    def test_int_subclass_bit_numbers(self) -> None:
        """An int subclass (an IntEnum flag number) is an int."""
        import enum

        class Flag(enum.IntEnum):
            BUSY = 5

        b = DECLARE_BITMAP(64)
        assert kd.test_and_set_bit(Flag.BUSY, b) is False
        assert kd.test_bit(Flag.BUSY, b) is True
        set_bit(Flag.BUSY, b)
        clear_bit(Flag.BUSY, b)
        change_bit(Flag.BUSY, b)
        assert find_first_bit(b, Flag.BUSY + 1) == 5
