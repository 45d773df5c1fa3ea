"""Jiffies: conversions with the kernel's rounding and wrap-safe comparisons.

Kernel invariants modelled (include/linux/jiffies.h, kernel/time/time.c):

* ``jiffies`` starts at ``INITIAL_JIFFIES = 2**32 - 300*HZ`` so its low 32 bits wrap five
  minutes after boot; on 64 bits the counter itself never wraps.
* Conversions *to* jiffies round up, so a timeout is never shorter than asked; negative inputs
  and values too large saturate to ``MAX_JIFFY_OFFSET``.
* ``time_after(a, b)`` and friends compare through a signed difference and so stay right across
  a wrap, as long as the two values are less than ``LONG_MAX`` apart.

Arguments are checked as their C types: a jiffies value is an ``unsigned long`` (0 to
``2**64 - 1``), so a negative one or one past ``ULONG_MAX`` is a :class:`ValueError` rather than
a silent wrap. The one exception is the kernel's own: ``msecs_to_jiffies()`` and
``usecs_to_jiffies()`` document a negative value (as an ``int``) as "forever", so they take the
``int`` range too.
"""

from __future__ import annotations

from ._check import check_int
from ._consts import MAX_JIFFY_OFFSET, ULONG_MASK
from ._context import _cur

__all__ = [
    "get_jiffies_64",
    "initial_jiffies",
    "jiffies_to_msecs",
    "jiffies_to_usecs",
    "msecs_to_jiffies",
    "time_after",
    "time_after_eq",
    "time_before",
    "time_before_eq",
    "time_in_range",
    "time_in_range_open",
    "usecs_to_jiffies",
]

_SIGN = 1 << 63
_WRAP = 1 << 64


def initial_jiffies(hz: int) -> int:
    """``INITIAL_JIFFIES`` for a kernel built with *hz*: ``(unsigned int)(-300*HZ)``."""
    return (-300 * hz) & 0xFFFFFFFF


def _signed(x: int) -> int:
    x &= ULONG_MASK
    return x - _WRAP if x & _SIGN else x


def _jiffies(value: object, func: str, param: str) -> int:
    """*value* if it is a jiffies value: an ``unsigned long``."""
    if type(value) is int and 0 <= value <= ULONG_MASK:
        return value
    return check_int(
        value, func, param, lo=0, hi=ULONG_MASK, expected=f"a jiffies value from 0 to {ULONG_MASK}"
    )


#: What msecs_to_jiffies() and usecs_to_jiffies() take: an ``unsigned int``, or an ``int``
#: whose negative values the kernel documents as "forever".
_TIMEOUT_LO = -(1 << 31)
_TIMEOUT_HI = (1 << 32) - 1


def _duration(value: object, func: str, param: str) -> int:
    if type(value) is int and _TIMEOUT_LO <= value <= _TIMEOUT_HI:
        return value
    return check_int(
        value,
        func,
        param,
        lo=_TIMEOUT_LO,
        hi=_TIMEOUT_HI,
        expected=f"an int or unsigned int ({_TIMEOUT_LO} to {_TIMEOUT_HI})",
    )


def time_after(a: int, b: int) -> bool:
    """
    ``time_after(a, b)``: true if jiffies value *a* is after *b*, wrap-safe.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    return _signed(_jiffies(b, "time_after", "b") - _jiffies(a, "time_after", "a")) < 0


def time_before(a: int, b: int) -> bool:
    """
    ``time_before(a, b)``: ``time_after(b, a)``.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    return _signed(_jiffies(a, "time_before", "a") - _jiffies(b, "time_before", "b")) < 0


def time_after_eq(a: int, b: int) -> bool:
    """
    ``time_after_eq(a, b)``: *a* is after or equal to *b*, wrap-safe.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    return _signed(_jiffies(a, "time_after_eq", "a") - _jiffies(b, "time_after_eq", "b")) >= 0


def time_before_eq(a: int, b: int) -> bool:
    """
    ``time_before_eq(a, b)``: ``time_after_eq(b, a)``.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    return _signed(_jiffies(b, "time_before_eq", "b") - _jiffies(a, "time_before_eq", "a")) >= 0


def time_in_range(a: int, b: int, c: int) -> bool:
    """
    ``time_in_range(a, b, c)``: ``b <= a <= c``, wrap-safe.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    _jiffies(a, "time_in_range", "a")
    _jiffies(b, "time_in_range", "b")
    _jiffies(c, "time_in_range", "c")
    return _signed(a - b) >= 0 and _signed(c - a) >= 0


def time_in_range_open(a: int, b: int, c: int) -> bool:
    """
    ``time_in_range_open(a, b, c)``: ``b <= a < c``, wrap-safe.

    Raises:
        TypeError: an argument is not an int.
        ValueError: an argument is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    _jiffies(a, "time_in_range_open", "a")
    _jiffies(b, "time_in_range_open", "b")
    _jiffies(c, "time_in_range_open", "c")
    return _signed(a - b) >= 0 and _signed(a - c) < 0


def _hz() -> int:
    return _cur().kernel.hz


def jiffies_to_msecs(j: int) -> int:
    """
    Convert jiffies to milliseconds (``unsigned int``), as ``jiffies_to_msecs()``.

    Raises:
        TypeError: *j* is not an int.
        ValueError: *j* is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    _jiffies(j, "jiffies_to_msecs", "j")
    return hz_jiffies_to_msecs(_hz(), j)


def hz_jiffies_to_msecs(hz: int, j: int) -> int:
    if 1000 % hz == 0:
        r = (1000 // hz) * j
    elif hz % 1000 == 0:
        r = (j + hz // 1000 - 1) // (hz // 1000)
    else:
        r = (j * 1000) // hz
    return r & 0xFFFFFFFF


def jiffies_to_usecs(j: int) -> int:
    """
    Convert jiffies to microseconds (``unsigned int``), as ``jiffies_to_usecs()``.

    Raises:
        TypeError: *j* is not an int.
        ValueError: *j* is not a jiffies value (an ``unsigned long``).

    .. versionadded:: 0.1
    """
    _jiffies(j, "jiffies_to_usecs", "j")
    hz = _hz()
    r = (1_000_000 // hz) * j if 1_000_000 % hz == 0 else (j * 1_000_000) // hz
    return r & 0xFFFFFFFF


def hz_msecs_to_jiffies(hz: int, m: int) -> int:
    m &= 0xFFFFFFFF  # the argument is an unsigned int
    if m & 0x80000000:  # (int)m < 0
        return MAX_JIFFY_OFFSET
    return -((-m * hz) // 1000)


def msecs_to_jiffies(m: int) -> int:
    """
    Convert milliseconds to jiffies, rounding up (``msecs_to_jiffies()``).

    *m* is an ``unsigned int``; a negative value (as an ``int``, so 2**31 and up as well) means
    "forever", as the kernel documents, and saturates to ``MAX_JIFFY_OFFSET``. At HZ=250: 1→1,
    4→1, 5→2, 10→3.

    Raises:
        TypeError: *m* is not an int.
        ValueError: *m* fits neither an ``int`` nor an ``unsigned int``.

    .. versionadded:: 0.1
    """
    _duration(m, "msecs_to_jiffies", "m")
    return hz_msecs_to_jiffies(_hz(), m)


def usecs_to_jiffies(u: int) -> int:
    """
    Convert microseconds to jiffies, rounding up (``usecs_to_jiffies()``).

    A negative *u* saturates to ``MAX_JIFFY_OFFSET``, as for :func:`msecs_to_jiffies`.

    Raises:
        TypeError: *u* is not an int.
        ValueError: *u* fits neither an ``int`` nor an ``unsigned int``.

    .. versionadded:: 0.1
    """
    _duration(u, "usecs_to_jiffies", "u")
    hz = _hz()
    u &= 0xFFFFFFFF
    if u & 0x80000000:
        return MAX_JIFFY_OFFSET
    return -((-u * hz) // 1_000_000)


def get_jiffies_64() -> int:
    """
    Return the 64-bit jiffies counter of the running kernel.

    .. versionadded:: 0.1
    """
    return _cur().kernel.get_jiffies()
