"""Atomic integers: ``atomic_t`` and ``atomic64_t`` with the kernel's wrap-around and returns.

Kernel invariants modelled (Documentation/atomic_t.txt, include/linux/atomic/
atomic-instrumented.h):

* ``atomic_t`` holds a C ``int`` (32 bits), ``atomic64_t`` an ``s64``. The kernel is built
  with ``-fno-strict-overflow``: signed overflow wraps around in two's complement, so
  ``INT_MAX + 1 == INT_MIN``. Every stored value and every returned value wraps; a value
  handed in outside the type's range is taken modulo 2**32 (2**64), as C converts it.
* Every read-modify-write is atomic with respect to every other CPU and to interrupts. In one
  event loop nothing else runs while a plain function runs, so each operation here is atomic
  as it stands, and every one of them is legal in any context (hardirq, softirq, holding a
  spinlock).
* Return conventions: ``atomic_*_return`` returns the **new** value, ``atomic_fetch_*`` the
  **old** one; ``*_and_test`` is true iff the new value is 0, ``atomic_add_negative`` iff it
  is negative; ``atomic_xchg`` returns the old value and ``atomic_cmpxchg`` the value it found
  (equal to *old* iff it stored *new*); ``atomic_add_unless`` is true iff it added.
* Argument order is the kernel's: the value first for ``atomic_add(i, v)`` and its kin, the
  atomic first for ``xchg``, ``cmpxchg`` and ``add_unless``.

What a single event loop cannot show: memory ordering. The ``_relaxed``/``_acquire``/
``_release`` variants and the barriers would all be the same sequentially consistent
operation here, so they are not modelled. Unlike ``refcount_t``, an ``atomic_t`` never warns
on overflow: it wraps silently, as here.

These sit on hot paths of user code, so they touch no kernel state and cost little more than
Python arithmetic on an attribute. The counter lives in a slot whose name no other type has:
reading it is the type check, and an object of any other type fails there with
``AttributeError``, which turns into the usual ``TypeError``. Ints are compared first with
the range of CPython's one-digit ints (|x| < 2**30), which compares fastest; a result outside
it is wrapped to the type's range with masks.

The package imports the bit operations (``_bitops``) and ``IS_ERR_VALUE`` (``_errno``) from
here too, with the atomics: together they are the API's section on atomics, bit operations
and error values.
"""

from __future__ import annotations

from typing import Final

from ._bitops import (
    BITS_PER_LONG as BITS_PER_LONG,
    BITS_TO_LONGS as BITS_TO_LONGS,
    DECLARE_BITMAP as DECLARE_BITMAP,
    Bitmap as Bitmap,
    bitmap_weight as bitmap_weight,
    bitmap_zero as bitmap_zero,
    change_bit as change_bit,
    clear_bit as clear_bit,
    find_first_bit as find_first_bit,
    find_first_zero_bit as find_first_zero_bit,
    find_last_bit as find_last_bit,
    find_next_bit as find_next_bit,
    find_next_zero_bit as find_next_zero_bit,
    set_bit as set_bit,
    test_and_change_bit as test_and_change_bit,
    test_and_clear_bit as test_and_clear_bit,
    test_and_set_bit as test_and_set_bit,
    test_bit as test_bit,
)
from ._check import bad_type, bad_value, check_int
from ._errno import IS_ERR_VALUE as IS_ERR_VALUE

__all__ = [
    "ATOMIC64_INIT",
    "ATOMIC_INIT",
    "BITS_PER_LONG",
    "BITS_TO_LONGS",
    "DECLARE_BITMAP",
    "IS_ERR_VALUE",
    "Atomic",
    "Atomic64",
    "Bitmap",
    "atomic64_add",
    "atomic64_add_negative",
    "atomic64_add_return",
    "atomic64_add_unless",
    "atomic64_cmpxchg",
    "atomic64_dec",
    "atomic64_dec_and_test",
    "atomic64_dec_return",
    "atomic64_fetch_add",
    "atomic64_fetch_dec",
    "atomic64_fetch_inc",
    "atomic64_fetch_sub",
    "atomic64_inc",
    "atomic64_inc_and_test",
    "atomic64_inc_not_zero",
    "atomic64_inc_return",
    "atomic64_read",
    "atomic64_set",
    "atomic64_sub",
    "atomic64_sub_and_test",
    "atomic64_sub_return",
    "atomic64_xchg",
    "atomic_add",
    "atomic_add_negative",
    "atomic_add_return",
    "atomic_add_unless",
    "atomic_cmpxchg",
    "atomic_dec",
    "atomic_dec_and_test",
    "atomic_dec_return",
    "atomic_fetch_add",
    "atomic_fetch_dec",
    "atomic_fetch_inc",
    "atomic_fetch_sub",
    "atomic_inc",
    "atomic_inc_and_test",
    "atomic_inc_not_zero",
    "atomic_inc_return",
    "atomic_read",
    "atomic_set",
    "atomic_sub",
    "atomic_sub_and_test",
    "atomic_sub_return",
    "atomic_xchg",
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
    "wrap32",
    "wrap64",
]

#: ``INT_MIN``/``INT_MAX`` and ``S64_MIN``/``S64_MAX``: the ranges of the two counters.
INT_MIN: Final = -(1 << 31)
INT_MAX: Final = (1 << 31) - 1
S64_MIN: Final = -(1 << 63)
S64_MAX: Final = (1 << 63) - 1


def wrap32(x: int) -> int:
    """*x* as a C ``int`` stores it: modulo 2**32, in ``[INT_MIN, INT_MAX]``."""
    return ((x + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def wrap64(x: int) -> int:
    """*x* as an ``s64`` stores it: modulo 2**64, in ``[S64_MIN, S64_MAX]``."""
    return ((x + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000


def _int(value: object, func: str, param: str) -> int:
    """*value* as a plain int, if it is an int (not a ``bool``); the TypeError otherwise."""
    return int(check_int(value, func, param))


class Atomic:
    """
    ``atomic_t``: a 32-bit signed counter updated only through the ``atomic_*`` functions.

    Guarantees:
        * It always holds a value in ``[-2**31, 2**31 - 1]``; arithmetic wraps around.
        * Each ``atomic_*`` operation is one indivisible step, legal in any context.

    Args:
        i: The initial value (``ATOMIC_INIT(i)``), taken modulo 2**32.

    Raises:
        TypeError: *i* is not an int.

    .. versionadded:: 0.2
    """

    __slots__ = ("_atomic_counter",)

    def __init__(self, i: int = 0) -> None:
        if type(i) is not int:
            i = _int(i, "Atomic", "i")
        self._atomic_counter: int = wrap32(i)  # the counter; read it with atomic_read()

    def __repr__(self) -> str:
        return f"<Atomic {getattr(self, '_atomic_counter', 'uninitialised')}>"


class Atomic64:
    """
    ``atomic64_t``: a 64-bit signed counter updated only through the ``atomic64_*`` functions.

    Guarantees:
        * It always holds a value in ``[-2**63, 2**63 - 1]``; arithmetic wraps around.
        * Each ``atomic64_*`` operation is one indivisible step, legal in any context.

    Args:
        i: The initial value (``ATOMIC64_INIT(i)``), taken modulo 2**64.

    Raises:
        TypeError: *i* is not an int.

    .. versionadded:: 0.2
    """

    __slots__ = ("_atomic64_counter",)

    def __init__(self, i: int = 0) -> None:
        if type(i) is not int:
            i = _int(i, "Atomic64", "i")
        self._atomic64_counter: int = wrap64(i)  # the counter; read it with atomic64_read()

    def __repr__(self) -> str:
        return f"<Atomic64 {getattr(self, '_atomic64_counter', 'uninitialised')}>"


def ATOMIC_INIT(i: int) -> Atomic:
    """
    ``ATOMIC_INIT(i)``: a new :class:`Atomic` holding *i* (modulo 2**32).

    Raises:
        TypeError: *i* is not an int.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "ATOMIC_INIT", "i")
    return Atomic(i)


def ATOMIC64_INIT(i: int) -> Atomic64:
    """
    ``ATOMIC64_INIT(i)``: a new :class:`Atomic64` holding *i* (modulo 2**64).

    Raises:
        TypeError: *i* is not an int.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "ATOMIC64_INIT", "i")
    return Atomic64(i)


def _bad(v: object, func: str) -> Exception:
    """The error for *v*, handed to ``func()`` as an :class:`Atomic` but without a counter."""
    if isinstance(v, Atomic):  # made without running its constructor
        return bad_value(func, "v", "an Atomic made by Atomic() or ATOMIC_INIT()", v)
    return bad_type(func, "v", "an Atomic", v)


def _bad64(v: object, func: str) -> Exception:
    """The error for *v*, handed to ``func()`` as an :class:`Atomic64` but without a counter."""
    if isinstance(v, Atomic64):
        return bad_value(func, "v", "an Atomic64 made by Atomic64() or ATOMIC64_INIT()", v)
    return bad_type(func, "v", "an Atomic64", v)


# -- atomic_t ----------------------------------------------------------------------------------


def atomic_read(v: Atomic) -> int:
    """
    ``atomic_read(v)``: the value of *v*.

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        return v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_read") from None


def atomic_set(v: Atomic, i: int) -> None:
    """
    ``atomic_set(v, i)``: store *i* in *v*, modulo 2**32 (``2**31`` reads back as ``-2**31``).

    Raises:
        TypeError: *v* is not an :class:`Atomic`, or *i* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        v._atomic_counter  # noqa: B018 (the type check: only an Atomic has this slot)
    except AttributeError:
        raise _bad(v, "atomic_set") from None
    if type(i) is not int:
        i = _int(i, "atomic_set", "i")
    if not -0x40000000 <= i < 0x40000000:
        i = ((i + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = i


def atomic_add(i: int, v: Atomic) -> None:
    """
    ``atomic_add(i, v)``: add *i* to *v*, wrapping around.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_add", "i")
    try:
        c = v._atomic_counter + i
    except AttributeError:
        raise _bad(v, "atomic_add") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c


def atomic_sub(i: int, v: Atomic) -> None:
    """
    ``atomic_sub(i, v)``: subtract *i* from *v*, wrapping around.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_sub", "i")
    try:
        c = v._atomic_counter - i
    except AttributeError:
        raise _bad(v, "atomic_sub") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c


def atomic_inc(v: Atomic) -> None:
    """
    ``atomic_inc(v)``: add 1 to *v* (``INT_MAX`` becomes ``INT_MIN``).

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        v._atomic_counter += 1
    except AttributeError:
        raise _bad(v, "atomic_inc") from None
    if v._atomic_counter > 0x3FFFFFFF and v._atomic_counter == 0x80000000:
        v._atomic_counter = -0x80000000


def atomic_dec(v: Atomic) -> None:
    """
    ``atomic_dec(v)``: subtract 1 from *v* (``INT_MIN`` becomes ``INT_MAX``).

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        v._atomic_counter -= 1
    except AttributeError:
        raise _bad(v, "atomic_dec") from None
    if v._atomic_counter < -0x40000000 and v._atomic_counter == -0x80000001:
        v._atomic_counter = 0x7FFFFFFF


def atomic_add_return(i: int, v: Atomic) -> int:
    """
    ``atomic_add_return(i, v)``: add *i* to *v*; the **new** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_add_return", "i")
    try:
        c = v._atomic_counter + i
    except AttributeError:
        raise _bad(v, "atomic_add_return") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c
    return c


def atomic_sub_return(i: int, v: Atomic) -> int:
    """
    ``atomic_sub_return(i, v)``: subtract *i* from *v*; the **new** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_sub_return", "i")
    try:
        c = v._atomic_counter - i
    except AttributeError:
        raise _bad(v, "atomic_sub_return") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c
    return c


def atomic_inc_return(v: Atomic) -> int:
    """
    ``atomic_inc_return(v)``: add 1 to *v*; the **new** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic_counter + 1
    except AttributeError:
        raise _bad(v, "atomic_inc_return") from None
    if c > 0x3FFFFFFF and c == 0x80000000:
        c = -0x80000000
    v._atomic_counter = c
    return c


def atomic_dec_return(v: Atomic) -> int:
    """
    ``atomic_dec_return(v)``: subtract 1 from *v*; the **new** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic_counter - 1
    except AttributeError:
        raise _bad(v, "atomic_dec_return") from None
    if c < -0x40000000 and c == -0x80000001:
        c = 0x7FFFFFFF
    v._atomic_counter = c
    return c


def atomic_fetch_add(i: int, v: Atomic) -> int:
    """
    ``atomic_fetch_add(i, v)``: add *i* to *v*; the **old** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_fetch_add", "i")
    try:
        old = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_fetch_add") from None
    c = old + i
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c
    return old


def atomic_fetch_sub(i: int, v: Atomic) -> int:
    """
    ``atomic_fetch_sub(i, v)``: subtract *i* from *v*; the **old** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_fetch_sub", "i")
    try:
        old = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_fetch_sub") from None
    c = old - i
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c
    return old


def atomic_fetch_inc(v: Atomic) -> int:
    """
    ``atomic_fetch_inc(v)``: add 1 to *v*; the **old** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        old = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_fetch_inc") from None
    v._atomic_counter = old + 1 if old != 0x7FFFFFFF else -0x80000000
    return old


def atomic_fetch_dec(v: Atomic) -> int:
    """
    ``atomic_fetch_dec(v)``: subtract 1 from *v*; the **old** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        old = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_fetch_dec") from None
    v._atomic_counter = old - 1 if old != -0x80000000 else 0x7FFFFFFF
    return old


def atomic_inc_and_test(v: Atomic) -> bool:
    """
    ``atomic_inc_and_test(v)``: add 1 to *v*; true iff the new value is 0.

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic_counter + 1
    except AttributeError:
        raise _bad(v, "atomic_inc_and_test") from None
    if c > 0x3FFFFFFF and c == 0x80000000:
        c = -0x80000000
    v._atomic_counter = c
    return c == 0


def atomic_dec_and_test(v: Atomic) -> bool:
    """
    ``atomic_dec_and_test(v)``: subtract 1 from *v*; true iff the new value is 0 (the last
    reference dropped).

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic_counter - 1
    except AttributeError:
        raise _bad(v, "atomic_dec_and_test") from None
    if c < -0x40000000 and c == -0x80000001:
        c = 0x7FFFFFFF
    v._atomic_counter = c
    return c == 0


def atomic_sub_and_test(i: int, v: Atomic) -> bool:
    """
    ``atomic_sub_and_test(i, v)``: subtract *i* from *v*; true iff the new value is 0.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_sub_and_test", "i")
    try:
        c = v._atomic_counter - i
    except AttributeError:
        raise _bad(v, "atomic_sub_and_test") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c
    return c == 0


def atomic_add_negative(i: int, v: Atomic) -> bool:
    """
    ``atomic_add_negative(i, v)``: add *i* to *v*; true iff the new value is negative.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic_add_negative", "i")
    try:
        c = v._atomic_counter + i
    except AttributeError:
        raise _bad(v, "atomic_add_negative") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c
    return c < 0


def atomic_xchg(v: Atomic, new: int) -> int:
    """
    ``atomic_xchg(v, new)``: store *new* (modulo 2**32) in *v*; the **old** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic`, or *new* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        old = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_xchg") from None
    if type(new) is not int:
        new = _int(new, "atomic_xchg", "new")
    if not -0x40000000 <= new < 0x40000000:
        new = ((new + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = new
    return old


def atomic_cmpxchg(v: Atomic, old: int, new: int) -> int:
    """
    ``atomic_cmpxchg(v, old, new)``: if *v* holds *old*, store *new*; either way the value
    found, which equals *old* (as an ``int``: modulo 2**32) iff *new* was stored.

    Raises:
        TypeError: *v* is not an :class:`Atomic`, or *old* or *new* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_cmpxchg") from None
    if type(old) is not int:
        old = _int(old, "atomic_cmpxchg", "old")
    if type(new) is not int:
        new = _int(new, "atomic_cmpxchg", "new")
    if not -0x40000000 <= old < 0x40000000:
        old = ((old + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    if c == old:
        if not -0x40000000 <= new < 0x40000000:
            new = ((new + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        v._atomic_counter = new
    return c


def atomic_add_unless(v: Atomic, a: int, u: int) -> bool:
    """
    ``atomic_add_unless(v, a, u)``: add *a* to *v* unless *v* holds *u*; true iff it added.

    Raises:
        TypeError: *v* is not an :class:`Atomic`, or *a* or *u* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_add_unless") from None
    if type(a) is not int:
        a = _int(a, "atomic_add_unless", "a")
    if type(u) is not int:
        u = _int(u, "atomic_add_unless", "u")
    if not -0x40000000 <= u < 0x40000000:
        u = ((u + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    if c == u:
        return False
    c += a
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x80000000) & 0xFFFFFFFF) - 0x80000000
    v._atomic_counter = c
    return True


def atomic_inc_not_zero(v: Atomic) -> bool:
    """
    ``atomic_inc_not_zero(v)``: ``atomic_add_unless(v, 1, 0)``: take a reference unless the
    count already dropped to 0; true iff it added.

    Raises:
        TypeError: *v* is not an :class:`Atomic`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic_counter
    except AttributeError:
        raise _bad(v, "atomic_inc_not_zero") from None
    if c == 0:
        return False
    v._atomic_counter = c + 1 if c != 0x7FFFFFFF else -0x80000000
    return True


# -- atomic64_t --------------------------------------------------------------------------------


def atomic64_read(v: Atomic64) -> int:
    """
    ``atomic64_read(v)``: the value of *v*.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        return v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_read") from None


def atomic64_set(v: Atomic64, i: int) -> None:
    """
    ``atomic64_set(v, i)``: store *i* in *v*, modulo 2**64.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`, or *i* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        v._atomic64_counter  # noqa: B018 (the type check: only an Atomic64 has it)
    except AttributeError:
        raise _bad64(v, "atomic64_set") from None
    if type(i) is not int:
        i = _int(i, "atomic64_set", "i")
    if not -0x40000000 <= i < 0x40000000:
        i = ((i + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = i


def atomic64_add(i: int, v: Atomic64) -> None:
    """
    ``atomic64_add(i, v)``: add *i* to *v*, wrapping around.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_add", "i")
    try:
        c = v._atomic64_counter + i
    except AttributeError:
        raise _bad64(v, "atomic64_add") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c


def atomic64_sub(i: int, v: Atomic64) -> None:
    """
    ``atomic64_sub(i, v)``: subtract *i* from *v*, wrapping around.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_sub", "i")
    try:
        c = v._atomic64_counter - i
    except AttributeError:
        raise _bad64(v, "atomic64_sub") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c


def atomic64_inc(v: Atomic64) -> None:
    """
    ``atomic64_inc(v)``: add 1 to *v* (``S64_MAX`` becomes ``S64_MIN``).

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        v._atomic64_counter += 1
    except AttributeError:
        raise _bad64(v, "atomic64_inc") from None
    if v._atomic64_counter > 0x3FFFFFFF and v._atomic64_counter == 0x8000000000000000:
        v._atomic64_counter = -0x8000000000000000


def atomic64_dec(v: Atomic64) -> None:
    """
    ``atomic64_dec(v)``: subtract 1 from *v* (``S64_MIN`` becomes ``S64_MAX``).

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        v._atomic64_counter -= 1
    except AttributeError:
        raise _bad64(v, "atomic64_dec") from None
    if v._atomic64_counter < -0x40000000 and v._atomic64_counter == -0x8000000000000001:
        v._atomic64_counter = 0x7FFFFFFFFFFFFFFF


def atomic64_add_return(i: int, v: Atomic64) -> int:
    """
    ``atomic64_add_return(i, v)``: add *i* to *v*; the **new** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_add_return", "i")
    try:
        c = v._atomic64_counter + i
    except AttributeError:
        raise _bad64(v, "atomic64_add_return") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c
    return c


def atomic64_sub_return(i: int, v: Atomic64) -> int:
    """
    ``atomic64_sub_return(i, v)``: subtract *i* from *v*; the **new** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_sub_return", "i")
    try:
        c = v._atomic64_counter - i
    except AttributeError:
        raise _bad64(v, "atomic64_sub_return") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c
    return c


def atomic64_inc_return(v: Atomic64) -> int:
    """
    ``atomic64_inc_return(v)``: add 1 to *v*; the **new** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic64_counter + 1
    except AttributeError:
        raise _bad64(v, "atomic64_inc_return") from None
    if c > 0x3FFFFFFF and c == 0x8000000000000000:
        c = -0x8000000000000000
    v._atomic64_counter = c
    return c


def atomic64_dec_return(v: Atomic64) -> int:
    """
    ``atomic64_dec_return(v)``: subtract 1 from *v*; the **new** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic64_counter - 1
    except AttributeError:
        raise _bad64(v, "atomic64_dec_return") from None
    if c < -0x40000000 and c == -0x8000000000000001:
        c = 0x7FFFFFFFFFFFFFFF
    v._atomic64_counter = c
    return c


def atomic64_fetch_add(i: int, v: Atomic64) -> int:
    """
    ``atomic64_fetch_add(i, v)``: add *i* to *v*; the **old** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_fetch_add", "i")
    try:
        old = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_fetch_add") from None
    c = old + i
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c
    return old


def atomic64_fetch_sub(i: int, v: Atomic64) -> int:
    """
    ``atomic64_fetch_sub(i, v)``: subtract *i* from *v*; the **old** value.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_fetch_sub", "i")
    try:
        old = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_fetch_sub") from None
    c = old - i
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c
    return old


def atomic64_fetch_inc(v: Atomic64) -> int:
    """
    ``atomic64_fetch_inc(v)``: add 1 to *v*; the **old** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        old = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_fetch_inc") from None
    v._atomic64_counter = old + 1 if old != 0x7FFFFFFFFFFFFFFF else -0x8000000000000000
    return old


def atomic64_fetch_dec(v: Atomic64) -> int:
    """
    ``atomic64_fetch_dec(v)``: subtract 1 from *v*; the **old** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        old = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_fetch_dec") from None
    v._atomic64_counter = old - 1 if old != -0x8000000000000000 else 0x7FFFFFFFFFFFFFFF
    return old


def atomic64_inc_and_test(v: Atomic64) -> bool:
    """
    ``atomic64_inc_and_test(v)``: add 1 to *v*; true iff the new value is 0.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic64_counter + 1
    except AttributeError:
        raise _bad64(v, "atomic64_inc_and_test") from None
    if c > 0x3FFFFFFF and c == 0x8000000000000000:
        c = -0x8000000000000000
    v._atomic64_counter = c
    return c == 0


def atomic64_dec_and_test(v: Atomic64) -> bool:
    """
    ``atomic64_dec_and_test(v)``: subtract 1 from *v*; true iff the new value is 0.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic64_counter - 1
    except AttributeError:
        raise _bad64(v, "atomic64_dec_and_test") from None
    if c < -0x40000000 and c == -0x8000000000000001:
        c = 0x7FFFFFFFFFFFFFFF
    v._atomic64_counter = c
    return c == 0


def atomic64_sub_and_test(i: int, v: Atomic64) -> bool:
    """
    ``atomic64_sub_and_test(i, v)``: subtract *i* from *v*; true iff the new value is 0.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_sub_and_test", "i")
    try:
        c = v._atomic64_counter - i
    except AttributeError:
        raise _bad64(v, "atomic64_sub_and_test") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c
    return c == 0


def atomic64_add_negative(i: int, v: Atomic64) -> bool:
    """
    ``atomic64_add_negative(i, v)``: add *i* to *v*; true iff the new value is negative.

    Raises:
        TypeError: *i* is not an int, or *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(i) is not int:
        i = _int(i, "atomic64_add_negative", "i")
    try:
        c = v._atomic64_counter + i
    except AttributeError:
        raise _bad64(v, "atomic64_add_negative") from None
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c
    return c < 0


def atomic64_xchg(v: Atomic64, new: int) -> int:
    """
    ``atomic64_xchg(v, new)``: store *new* (modulo 2**64) in *v*; the **old** value.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`, or *new* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        old = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_xchg") from None
    if type(new) is not int:
        new = _int(new, "atomic64_xchg", "new")
    if not -0x40000000 <= new < 0x40000000:
        new = ((new + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = new
    return old


def atomic64_cmpxchg(v: Atomic64, old: int, new: int) -> int:
    """
    ``atomic64_cmpxchg(v, old, new)``: if *v* holds *old*, store *new*; either way the value
    found, which equals *old* (as an ``s64``) iff *new* was stored.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`, or *old* or *new* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_cmpxchg") from None
    if type(old) is not int:
        old = _int(old, "atomic64_cmpxchg", "old")
    if type(new) is not int:
        new = _int(new, "atomic64_cmpxchg", "new")
    if not -0x40000000 <= old < 0x40000000:
        old = ((old + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    if c == old:
        if not -0x40000000 <= new < 0x40000000:
            new = ((new + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
        v._atomic64_counter = new
    return c


def atomic64_add_unless(v: Atomic64, a: int, u: int) -> bool:
    """
    ``atomic64_add_unless(v, a, u)``: add *a* to *v* unless *v* holds *u*; true iff it added.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`, or *a* or *u* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_add_unless") from None
    if type(a) is not int:
        a = _int(a, "atomic64_add_unless", "a")
    if type(u) is not int:
        u = _int(u, "atomic64_add_unless", "u")
    if not -0x40000000 <= u < 0x40000000:
        u = ((u + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    if c == u:
        return False
    c += a
    if not -0x40000000 <= c < 0x40000000:
        c = ((c + 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF) - 0x8000000000000000
    v._atomic64_counter = c
    return True


def atomic64_inc_not_zero(v: Atomic64) -> bool:
    """
    ``atomic64_inc_not_zero(v)``: ``atomic64_add_unless(v, 1, 0)``; true iff it added.

    Raises:
        TypeError: *v* is not an :class:`Atomic64`.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    try:
        c = v._atomic64_counter
    except AttributeError:
        raise _bad64(v, "atomic64_inc_not_zero") from None
    if c == 0:
        return False
    v._atomic64_counter = c + 1 if c != 0x7FFFFFFFFFFFFFFF else -0x8000000000000000
    return True
