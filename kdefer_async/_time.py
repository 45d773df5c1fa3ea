"""Jiffies: conversions with the kernel's rounding and wrap-safe comparisons.

Kernel invariants modelled (include/linux/jiffies.h, kernel/time/time.c):

* ``jiffies`` starts at ``INITIAL_JIFFIES = 2**32 - 300*HZ`` so its low 32 bits wrap five
  minutes after boot; on 64 bits the counter itself never wraps.
* Conversions *to* jiffies round up, so a timeout is never shorter than asked; negative inputs
  and values too large saturate to ``MAX_JIFFY_OFFSET``.
* ``time_after(a, b)`` and friends compare through a signed difference and so stay right across
  a wrap, as long as the two values are less than ``LONG_MAX`` apart.
"""

from __future__ import annotations

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


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


def time_after(a: int, b: int) -> bool:
    """
    ``time_after(a, b)``: true if jiffies value *a* is after *b*, wrap-safe.

    .. versionadded:: 0.1
    """
    return _signed(_int("b", b) - _int("a", a)) < 0


def time_before(a: int, b: int) -> bool:
    """
    ``time_before(a, b)``: ``time_after(b, a)``.

    .. versionadded:: 0.1
    """
    return time_after(b, a)


def time_after_eq(a: int, b: int) -> bool:
    """
    ``time_after_eq(a, b)``: *a* is after or equal to *b*, wrap-safe.

    .. versionadded:: 0.1
    """
    return _signed(_int("a", a) - _int("b", b)) >= 0


def time_before_eq(a: int, b: int) -> bool:
    """
    ``time_before_eq(a, b)``: ``time_after_eq(b, a)``.

    .. versionadded:: 0.1
    """
    return time_after_eq(b, a)


def time_in_range(a: int, b: int, c: int) -> bool:
    """
    ``time_in_range(a, b, c)``: ``b <= a <= c``, wrap-safe.

    .. versionadded:: 0.1
    """
    return time_after_eq(a, b) and time_before_eq(a, c)


def time_in_range_open(a: int, b: int, c: int) -> bool:
    """
    ``time_in_range_open(a, b, c)``: ``b <= a < c``, wrap-safe.

    .. versionadded:: 0.1
    """
    return time_after_eq(a, b) and time_before(a, c)


def _hz() -> int:
    return _cur().kernel.hz


def jiffies_to_msecs(j: int) -> int:
    """
    Convert jiffies to milliseconds (``unsigned int``), as ``jiffies_to_msecs()``.

    .. versionadded:: 0.1
    """
    return hz_jiffies_to_msecs(_hz(), _int("j", j))


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

    .. versionadded:: 0.1
    """
    hz = _hz()
    j = _int("j", j)
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

    Negative values saturate to ``MAX_JIFFY_OFFSET``. At HZ=250: 1→1, 4→1, 5→2, 10→3.

    .. versionadded:: 0.1
    """
    return hz_msecs_to_jiffies(_hz(), _int("m", m))


def usecs_to_jiffies(u: int) -> int:
    """
    Convert microseconds to jiffies, rounding up (``usecs_to_jiffies()``).

    .. versionadded:: 0.1
    """
    hz = _hz()
    u = _int("u", u) & 0xFFFFFFFF
    if u & 0x80000000:
        return MAX_JIFFY_OFFSET
    return -((-u * hz) // 1_000_000)


def get_jiffies_64() -> int:
    """
    Return the 64-bit jiffies counter of the running kernel.

    .. versionadded:: 0.1
    """
    return _cur().kernel.get_jiffies()
