"""Bit operations on ``unsigned long`` arrays: ``DECLARE_BITMAP``, ``set_bit``, ``find_next_bit``.

Kernel invariants modelled (include/asm-generic/bitops/instrumented-atomic.h,
include/linux/bitops.h, include/linux/find.h, lib/find_bit.c, include/linux/bitmap.h):

* A bitmap is an array of ``unsigned long`` words: ``BITS_PER_LONG`` is 64, bit *nr* lives in
  word ``nr / 64`` under the mask ``1UL << (nr % 64)``, and ``DECLARE_BITMAP(name, bits)``
  declares ``BITS_TO_LONGS(bits)`` words (100 bits take 2 words).
* ``set_bit``, ``clear_bit`` and ``change_bit`` are atomic read-modify-writes that return
  nothing; ``test_and_set_bit``, ``test_and_clear_bit`` and ``test_and_change_bit`` are atomic
  too and return the **old** bit (the kernel's ``bool``: ``False``/``True`` equal 0/1);
  ``test_bit`` reads one bit. In one event loop each is atomic as it stands, and all are
  legal in any context.
* ``find_first_bit(addr, size)`` is the lowest set bit below *size*, else *size*;
  ``find_next_bit(addr, size, offset)`` the lowest set bit in ``[offset, size)``, else *size*
  (also when ``offset >= size``). Bits at or above *size* are ignored even when set.
* ``bitmap_zero(dst, nbits)`` clears whole words (``BITS_TO_LONGS(nbits)`` of them, bits above
  *nbits* in the last word included); ``bitmap_weight(src, nbits)`` counts the set bits below
  *nbits* only.

C does no bounds checking: a bit number beyond the array, or a search size past its end,
reads or corrupts the memory after it. The model knows how many words a :class:`Bitmap` has,
and refuses such a call with a :class:`ValueError` instead (a negative bit number too: C would
touch the memory before the array).

The bit operations sit on hot paths (flags, CPU masks, ID allocation): their fast path costs a
type test of the bit number, one slot read (the word list, whose slot name no other type has:
reading it is the type check of *addr*) and the word arithmetic with precomputed masks. Any
failure there goes to the full check, which raises the usual messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final, NoReturn

from ._check import bad_type, bad_value, check_int
from ._consts import ULONG_MASK

__all__ = [
    "BITS_PER_LONG",
    "BITS_TO_LONGS",
    "DECLARE_BITMAP",
    "Bitmap",
    "bitmap_weight",
    "bitmap_zero",
    "change_bit",
    "clear_bit",
    "find_first_bit",
    "find_first_zero_bit",
    "find_last_bit",
    "find_next_bit",
    "find_next_zero_bit",
    "set_bit",
    "test_and_change_bit",
    "test_and_clear_bit",
    "test_and_set_bit",
    "test_bit",
]

#: ``BITS_PER_LONG`` on x86-64.
BITS_PER_LONG: Final = 64
#: The largest bitmap the model makes: 2**24 bits (256 Ki words). Far above the kernel's
#: largest common bitmaps (the PID bitmap: ``PID_MAX_LIMIT`` = 2**22 bits), and small enough
#: that a bitmap of any size it accepts is allocated at once.
MAX_NBITS: Final = 1 << 24

#: ``1UL << n`` and ``~(1UL << n)`` for every bit of a word (a table lookup beats a shift).
_BIT: Final = tuple(1 << n for n in range(64))
_NOT_BIT: Final = tuple(ULONG_MASK ^ (1 << n) for n in range(64))


def BITS_TO_LONGS(nr: int) -> int:
    """
    ``BITS_TO_LONGS(nr)``: how many ``unsigned long`` words hold *nr* bits (rounded up).

    Raises:
        TypeError: *nr* is not an int.
        ValueError: *nr* is negative or past ``ULONG_MAX``.

    .. versionadded:: 0.2
    """
    check_int(nr, "BITS_TO_LONGS", "nr", lo=0, hi=ULONG_MASK)
    return (int(nr) + 63) >> 6


class Bitmap:
    """
    ``unsigned long name[BITS_TO_LONGS(nbits)]``: a bitmap of whole 64-bit words, all clear.

    ``bm[i]`` reads word *i* and ``bm[i] = x`` stores *x* into it (modulo 2**64, as C stores an
    ``unsigned long``); ``len(bm)`` is the number of words and iterating yields them in order.
    The bit operations (:func:`set_bit`, :func:`find_next_bit`...) take it as their *addr*.

    Guarantees:
        * Every word holds a value in ``[0, 2**64 - 1]``.
        * No operation reaches past the last word: such a call is refused with a
          :class:`ValueError` (C would corrupt or read the memory that follows).

    Args:
        nbits: The number of bits it is declared for (``DECLARE_BITMAP(name, nbits)``); the
            storage is ``BITS_TO_LONGS(nbits)`` words, so ``nbits`` 100 gives 2 words and the
            bits 100 to 127 exist too.

    Raises:
        TypeError: *nbits* is not an int.
        ValueError: *nbits* is negative or above ``MAX_NBITS``.

    .. versionadded:: 0.2
    """

    __slots__ = ("_bitmap_words", "_nbits")

    def __init__(self, nbits: int) -> None:
        n = check_int(
            nbits, "Bitmap", "nbits", lo=0, hi=MAX_NBITS, expected=_nbits_expected(MAX_NBITS)
        )
        self._nbits: int = int(n)  # I: the bits it was declared for
        self._bitmap_words: list[int] = [0] * ((self._nbits + 63) >> 6)  # A: the words

    @property
    def nbits(self) -> int:
        """The number of bits it was declared for."""
        return self._nbits

    def __len__(self) -> int:
        return len(self._bitmap_words)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._bitmap_words))

    def __getitem__(self, i: int) -> int:
        words = self._bitmap_words
        if type(i) is int and 0 <= i < len(words):
            return words[i]
        raise self._bad_index(i)

    def __setitem__(self, i: int, value: int) -> None:
        words = self._bitmap_words
        if not (type(i) is int and 0 <= i < len(words)):
            raise self._bad_index(i)
        check_int(value, "Bitmap.__setitem__", "value")
        words[i] = int(value) & ULONG_MASK

    def _bad_index(self, i: object) -> Exception:
        if type(i) is not int and (isinstance(i, bool) or not isinstance(i, int)):
            return TypeError(f"Bitmap word indices must be ints, not {type(i).__name__}")
        n = len(self._bitmap_words)
        return IndexError(f"Bitmap word index {i} out of range: the bitmap has {_words(n)}")

    def __repr__(self) -> str:
        words = getattr(self, "_bitmap_words", None)
        if words is None:
            return "<Bitmap uninitialised>"
        shown = ", ".join(f"{w:#x}" for w in words[:4]) + (", ..." if len(words) > 4 else "")
        return f"<Bitmap nbits={self._nbits} [{shown}]>"


def DECLARE_BITMAP(nbits: int) -> Bitmap:
    """
    ``DECLARE_BITMAP(name, nbits)``: a new :class:`Bitmap` of ``BITS_TO_LONGS(nbits)`` words,
    all clear.

    Raises:
        TypeError: *nbits* is not an int.
        ValueError: *nbits* is negative or above ``MAX_NBITS``.

    .. versionadded:: 0.2
    """
    check_int(
        nbits, "DECLARE_BITMAP", "nbits", lo=0, hi=MAX_NBITS, expected=_nbits_expected(MAX_NBITS)
    )
    return Bitmap(int(nbits))


# -- argument checks (the slow path) ------------------------------------------------------------


def _words(n: int) -> str:
    return "no words" if n == 0 else f"{n} word" + ("s" if n != 1 else "")


def _nbits_expected(limit: int) -> str:
    return f"a number of bits from 0 to {limit}"


def _bitmap(addr: object, func: str, param: str) -> list[int]:
    """The words of *addr*, if it is a :class:`Bitmap`."""
    try:
        return addr._bitmap_words  # type: ignore[attr-defined, no-any-return]
    except AttributeError:
        pass
    return _not_bitmap(addr, func, param)


def _not_bitmap(addr: object, func: str, param: str) -> NoReturn:
    """Raise the error for *addr*, handed to ``func()`` as a Bitmap."""
    if isinstance(addr, Bitmap):  # made without running its constructor
        raise bad_value(func, param, "a Bitmap made by Bitmap() or DECLARE_BITMAP()", addr)
    raise bad_type(func, param, "a Bitmap", addr)


def _bit_nr(nr: object, addr: object, func: str) -> int:
    """*nr* as a plain int, if it is a bit number inside *addr*'s words; raise otherwise."""
    value = int(check_int(nr, func, "nr"))
    n = len(_bitmap(addr, func, "addr"))
    if not 0 <= value < n * 64:
        if n == 0:
            expected = "a bit number inside the Bitmap, which has no words"
        else:
            expected = f"a bit number from 0 to {n * 64 - 1} (the Bitmap holds {_words(n)})"
        raise bad_value(func, "nr", expected, nr)
    return value


def _size(words: list[int], size: object, func: str, param: str) -> int:
    """*size* as a plain int, if it is a number of bits within *words*; raise otherwise."""
    limit = len(words) << 6
    if type(size) is int and 0 <= size <= limit:
        return size
    expected = f"a number of bits from 0 to {limit} (the Bitmap holds {_words(len(words))})"
    return int(check_int(size, func, param, lo=0, hi=limit, expected=expected))


def _offset(offset: object, func: str) -> int:
    """*offset* as a plain int, if it is an ``unsigned long``."""
    if type(offset) is int and 0 <= offset <= ULONG_MASK:
        return offset
    return int(check_int(offset, func, "offset", lo=0, hi=ULONG_MASK))


# -- single bits ---------------------------------------------------------------------------------


def set_bit(nr: int, addr: Bitmap) -> None:
    """
    ``set_bit(nr, addr)``: atomically set bit *nr* of *addr*.

    Raises:
        TypeError: *nr* is not an int, or *addr* is not a :class:`Bitmap`.
        ValueError: bit *nr* is not inside *addr*'s words (negative, or past the last word).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(nr) is int and nr >= 0:
        try:
            addr._bitmap_words[nr >> 6] |= _BIT[nr & 63]
            return
        except (AttributeError, IndexError):
            pass
    set_bit(_bit_nr(nr, addr, "set_bit"), addr)


def clear_bit(nr: int, addr: Bitmap) -> None:
    """
    ``clear_bit(nr, addr)``: atomically clear bit *nr* of *addr*.

    Raises:
        TypeError: *nr* is not an int, or *addr* is not a :class:`Bitmap`.
        ValueError: bit *nr* is not inside *addr*'s words (negative, or past the last word).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(nr) is int and nr >= 0:
        try:
            addr._bitmap_words[nr >> 6] &= _NOT_BIT[nr & 63]
            return
        except (AttributeError, IndexError):
            pass
    clear_bit(_bit_nr(nr, addr, "clear_bit"), addr)


def change_bit(nr: int, addr: Bitmap) -> None:
    """
    ``change_bit(nr, addr)``: atomically flip bit *nr* of *addr*.

    Raises:
        TypeError: *nr* is not an int, or *addr* is not a :class:`Bitmap`.
        ValueError: bit *nr* is not inside *addr*'s words (negative, or past the last word).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(nr) is int and nr >= 0:
        try:
            addr._bitmap_words[nr >> 6] ^= _BIT[nr & 63]
            return
        except (AttributeError, IndexError):
            pass
    change_bit(_bit_nr(nr, addr, "change_bit"), addr)


def test_bit(nr: int, addr: Bitmap) -> bool:
    """
    ``test_bit(nr, addr)``: whether bit *nr* of *addr* is set.

    Raises:
        TypeError: *nr* is not an int, or *addr* is not a :class:`Bitmap`.
        ValueError: bit *nr* is not inside *addr*'s words (negative, or past the last word).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(nr) is int and nr >= 0:
        try:
            return addr._bitmap_words[nr >> 6] & _BIT[nr & 63] != 0
        except (AttributeError, IndexError):
            pass
    return test_bit(_bit_nr(nr, addr, "test_bit"), addr)


def test_and_set_bit(nr: int, addr: Bitmap) -> bool:
    """
    ``test_and_set_bit(nr, addr)``: atomically set bit *nr* of *addr*; its **old** value
    (``False``/``True``, which equal 0/1).

    Raises:
        TypeError: *nr* is not an int, or *addr* is not a :class:`Bitmap`.
        ValueError: bit *nr* is not inside *addr*'s words (negative, or past the last word).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(nr) is int and nr >= 0:
        try:
            words = addr._bitmap_words
            i = nr >> 6
            old = words[i]
        except (AttributeError, IndexError):
            pass
        else:
            mask = _BIT[nr & 63]
            if old & mask:
                return True
            words[i] = old | mask
            return False
    return test_and_set_bit(_bit_nr(nr, addr, "test_and_set_bit"), addr)


def test_and_clear_bit(nr: int, addr: Bitmap) -> bool:
    """
    ``test_and_clear_bit(nr, addr)``: atomically clear bit *nr* of *addr*; its **old** value.

    Raises:
        TypeError: *nr* is not an int, or *addr* is not a :class:`Bitmap`.
        ValueError: bit *nr* is not inside *addr*'s words (negative, or past the last word).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(nr) is int and nr >= 0:
        try:
            words = addr._bitmap_words
            i = nr >> 6
            old = words[i]
        except (AttributeError, IndexError):
            pass
        else:
            mask = _BIT[nr & 63]
            if not old & mask:
                return False
            words[i] = old ^ mask
            return True
    return test_and_clear_bit(_bit_nr(nr, addr, "test_and_clear_bit"), addr)


def test_and_change_bit(nr: int, addr: Bitmap) -> bool:
    """
    ``test_and_change_bit(nr, addr)``: atomically flip bit *nr* of *addr*; its **old** value.

    Raises:
        TypeError: *nr* is not an int, or *addr* is not a :class:`Bitmap`.
        ValueError: bit *nr* is not inside *addr*'s words (negative, or past the last word).

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(nr) is int and nr >= 0:
        try:
            words = addr._bitmap_words
            i = nr >> 6
            old = words[i]
        except (AttributeError, IndexError):
            pass
        else:
            mask = _BIT[nr & 63]
            words[i] = old ^ mask
            return old & mask != 0
    return test_and_change_bit(_bit_nr(nr, addr, "test_and_change_bit"), addr)


# -- searching -----------------------------------------------------------------------------------


def _next_set(words: list[int], size: int, offset: int, invert: bool) -> int:
    """The lowest bit in ``[offset, size)`` that is set (clear with *invert*), else *size*."""
    if offset >= size:
        return size
    i = offset >> 6
    last = (size - 1) >> 6
    w = words[i] ^ ULONG_MASK if invert else words[i]
    w &= ULONG_MASK << (offset & 63)
    while not w:
        i += 1
        if i > last:
            return size
        w = words[i] ^ ULONG_MASK if invert else words[i]
    bit = (i << 6) + (w & -w).bit_length() - 1
    return bit if bit < size else size


def find_first_bit(addr: Bitmap, size: int) -> int:
    """
    ``find_first_bit(addr, size)``: the number of the lowest set bit below *size*, or *size*
    if there is none.

    Raises:
        TypeError: *addr* is not a :class:`Bitmap`, or *size* is not an int.
        ValueError: *size* is negative or past the end of *addr*'s words.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    words = _bitmap(addr, "find_first_bit", "addr")
    return _next_set(words, _size(words, size, "find_first_bit", "size"), 0, False)


def find_next_bit(addr: Bitmap, size: int, offset: int) -> int:
    """
    ``find_next_bit(addr, size, offset)``: the number of the lowest set bit in
    ``[offset, size)``, or *size* if there is none (also when ``offset >= size``).

    Raises:
        TypeError: *addr* is not a :class:`Bitmap`, or *size* or *offset* is not an int.
        ValueError: *size* is negative or past the end of *addr*'s words, or *offset* is not
            an ``unsigned long``.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    words = _bitmap(addr, "find_next_bit", "addr")
    size = _size(words, size, "find_next_bit", "size")
    return _next_set(words, size, _offset(offset, "find_next_bit"), False)


def find_first_zero_bit(addr: Bitmap, size: int) -> int:
    """
    ``find_first_zero_bit(addr, size)``: the number of the lowest clear bit below *size*, or
    *size* if every one is set.

    Raises:
        TypeError: *addr* is not a :class:`Bitmap`, or *size* is not an int.
        ValueError: *size* is negative or past the end of *addr*'s words.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    words = _bitmap(addr, "find_first_zero_bit", "addr")
    return _next_set(words, _size(words, size, "find_first_zero_bit", "size"), 0, True)


def find_next_zero_bit(addr: Bitmap, size: int, offset: int) -> int:
    """
    ``find_next_zero_bit(addr, size, offset)``: the number of the lowest clear bit in
    ``[offset, size)``, or *size* if there is none (also when ``offset >= size``).

    Raises:
        TypeError: *addr* is not a :class:`Bitmap`, or *size* or *offset* is not an int.
        ValueError: *size* is negative or past the end of *addr*'s words, or *offset* is not
            an ``unsigned long``.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    words = _bitmap(addr, "find_next_zero_bit", "addr")
    size = _size(words, size, "find_next_zero_bit", "size")
    return _next_set(words, size, _offset(offset, "find_next_zero_bit"), True)


def find_last_bit(addr: Bitmap, size: int) -> int:
    """
    ``find_last_bit(addr, size)``: the number of the highest set bit below *size*, or *size*
    if there is none.

    Raises:
        TypeError: *addr* is not a :class:`Bitmap`, or *size* is not an int.
        ValueError: *size* is negative or past the end of *addr*'s words.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    words = _bitmap(addr, "find_last_bit", "addr")
    size = _size(words, size, "find_last_bit", "size")
    if size == 0:
        return 0
    i = (size - 1) >> 6
    w = words[i]
    if size & 63:
        w &= (1 << (size & 63)) - 1
    while not w:
        i -= 1
        if i < 0:
            return size
        w = words[i]
    return (i << 6) + w.bit_length() - 1


# -- whole bitmaps -------------------------------------------------------------------------------


def bitmap_zero(addr: Bitmap, nbits: int) -> None:
    """
    ``bitmap_zero(dst, nbits)``: clear the first ``BITS_TO_LONGS(nbits)`` words of *addr*,
    whole (the bits above *nbits* in the last of them too).

    Raises:
        TypeError: *addr* is not a :class:`Bitmap`, or *nbits* is not an int.
        ValueError: *nbits* is negative or past the end of *addr*'s words.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    words = _bitmap(addr, "bitmap_zero", "addr")
    n = (_size(words, nbits, "bitmap_zero", "nbits") + 63) >> 6
    words[:n] = [0] * n


def bitmap_weight(addr: Bitmap, nbits: int) -> int:
    """
    ``bitmap_weight(src, nbits)``: how many of the bits below *nbits* of *addr* are set.

    Raises:
        TypeError: *addr* is not a :class:`Bitmap`, or *nbits* is not an int.
        ValueError: *nbits* is negative or past the end of *addr*'s words.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    words = _bitmap(addr, "bitmap_weight", "addr")
    nbits = _size(words, nbits, "bitmap_weight", "nbits")
    full, tail = nbits >> 6, nbits & 63
    count = sum(w.bit_count() for w in words[:full])
    if tail:
        count += (words[full] & ((1 << tail) - 1)).bit_count()
    return count


# Their names start with "test": a test module that imports them must not have them collected
# as tests (pytest skips any object whose ``__test__`` is false).
for _fn in (test_bit, test_and_set_bit, test_and_clear_bit, test_and_change_bit):
    setattr(_fn, "__test__", False)
del _fn
