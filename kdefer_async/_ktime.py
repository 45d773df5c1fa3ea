"""ktime_t: signed 64-bit nanoseconds, the clock readers and the arithmetic helpers.

Kernel invariants modelled (include/linux/ktime.h, kernel/time/timekeeping.c,
kernel/time/hrtimer.c ``ktime_add_safe``):

* ``ktime_t`` is an ``s64`` count of nanoseconds. The helpers are the C expressions: plain
  two's-complement arithmetic (the kernel is built with ``-fno-strict-overflow``, so an
  overflow wraps), C division truncating toward zero (``ktime_to_ms(-1500000)`` is -1), and
  ``ktime_set()`` saturating to ``KTIME_MAX`` from ``KTIME_SEC_MAX`` seconds on.
* ``ktime_get()`` is ``CLOCK_MONOTONIC``: nanoseconds since boot on the event loop's clock,
  continuous (never rounded to a tick), so it is the virtual clock in virtual time.
  ``CLOCK_BOOTTIME`` adds the time spent suspended, which a model that never suspends does
  not have: it reads the same.

Arguments are checked as their C types: a ktime is an ``s64`` (``-2**63`` to ``2**63 - 1``),
a count of ms, us or ns handed to a ``*_to_ktime()`` a ``u64``; anything outside is a
:class:`ValueError`, not a silent wrap.
"""

from __future__ import annotations

from ._check import check_int
from ._consts import KTIME_MAX, KTIME_SEC_MAX, NSEC_PER_MSEC, NSEC_PER_SEC, NSEC_PER_USEC
from ._context import _cur

__all__ = [
    "ktime_add",
    "ktime_add_ns",
    "ktime_add_safe",
    "ktime_after",
    "ktime_before",
    "ktime_get",
    "ktime_get_boottime",
    "ktime_get_ns",
    "ktime_set",
    "ktime_sub",
    "ktime_to_ms",
    "ktime_to_ns",
    "ktime_to_us",
    "ms_to_ktime",
    "ns_to_ktime",
    "us_to_ktime",
]

S64_MIN = -(1 << 63)
S64_MAX = (1 << 63) - 1
U64_MAX = (1 << 64) - 1
_SIGN = 1 << 63
_WRAP = 1 << 64
_KTIME = f"a ktime (nanoseconds, an s64: {S64_MIN} to {S64_MAX})"
_U64 = f"a u64 (0 to {U64_MAX})"


def s64(x: int) -> int:
    """*x* wrapped to a signed 64-bit value, as C stores it."""
    x &= U64_MAX
    return x - _WRAP if x & _SIGN else x


def check_ktime(value: object, func: str, param: str) -> int:
    """*value* if it is a ktime: an ``s64`` (the cheap exact-type test first)."""
    if type(value) is int and S64_MIN <= value <= S64_MAX:
        return value
    return check_int(value, func, param, lo=S64_MIN, hi=S64_MAX, expected=_KTIME)


def check_u64(value: object, func: str, param: str, expected: str = _U64) -> int:
    """*value* if it fits the ``u64`` it is in C."""
    if type(value) is int and 0 <= value <= U64_MAX:
        return value
    return check_int(value, func, param, lo=0, hi=U64_MAX, expected=expected)


def _divns(kt: int, div: int) -> int:
    """C's ``s64 / s64``: the quotient truncated toward zero."""
    q = abs(kt) // div
    return -q if kt < 0 else q


def ktime_add_safe(lhs: int, rhs: int) -> int:
    """``ktime_add_safe``: the sum, or ``KTIME_SEC_MAX`` seconds if it overflowed (or is
    negative, or smaller than either operand)."""
    res = s64(lhs + rhs)
    if res < 0 or res < lhs or res < rhs:
        return KTIME_SEC_MAX * NSEC_PER_SEC
    return res


def ktime_get() -> int:
    """
    ``CLOCK_MONOTONIC`` now, in nanoseconds since boot: on the event loop's clock (the virtual
    clock in virtual time), continuous, not rounded to a tick.

    Context:
        Any context.

    .. versionadded:: 0.2
    """
    return _cur().kernel.get_ktime()


def ktime_get_ns() -> int:
    """
    :func:`ktime_get` as a ``u64`` of nanoseconds (the same number).

    .. versionadded:: 0.2
    """
    return _cur().kernel.get_ktime()


def ktime_get_boottime() -> int:
    """
    ``CLOCK_BOOTTIME``: monotonic time plus the time spent suspended. The model never
    suspends, so it reads as :func:`ktime_get`.

    .. versionadded:: 0.2
    """
    return _cur().kernel.get_ktime()


def ktime_set(secs: int, nsecs: int) -> int:
    """
    ``secs * NSEC_PER_SEC + nsecs``; from ``KTIME_SEC_MAX`` seconds on, ``KTIME_MAX``.

    Raises:
        TypeError: *secs* or *nsecs* is not an int.
        ValueError: *secs* does not fit an ``s64``, *nsecs* an ``unsigned long``.

    .. versionadded:: 0.2
    """
    secs = check_int(
        secs,
        "ktime_set",
        "secs",
        lo=S64_MIN,
        hi=S64_MAX,
        expected=f"seconds (an s64: {S64_MIN} to {S64_MAX})",
    )
    nsecs = check_u64(
        nsecs, "ktime_set", "nsecs", f"nanoseconds (an unsigned long: 0 to {U64_MAX})"
    )
    if secs >= KTIME_SEC_MAX:
        return KTIME_MAX
    return s64(secs * NSEC_PER_SEC + s64(nsecs))


def ms_to_ktime(ms: int) -> int:
    """
    *ms* milliseconds as a ktime (``ms * NSEC_PER_MSEC``, a ``u64`` product stored in an s64).

    Raises:
        TypeError: *ms* is not an int.
        ValueError: *ms* does not fit a ``u64``.

    .. versionadded:: 0.2
    """
    return s64(check_u64(ms, "ms_to_ktime", "ms") * NSEC_PER_MSEC)


def us_to_ktime(us: int) -> int:
    """
    *us* microseconds as a ktime (``us * NSEC_PER_USEC``).

    Raises:
        TypeError: *us* is not an int.
        ValueError: *us* does not fit a ``u64``.

    .. versionadded:: 0.2
    """
    return s64(check_u64(us, "us_to_ktime", "us") * NSEC_PER_USEC)


def ns_to_ktime(ns: int) -> int:
    """
    *ns* nanoseconds as a ktime.

    Raises:
        TypeError: *ns* is not an int.
        ValueError: *ns* does not fit a ``u64``.

    .. versionadded:: 0.2
    """
    return s64(check_u64(ns, "ns_to_ktime", "ns"))


def ktime_to_ns(kt: int) -> int:
    """
    *kt* in nanoseconds (the same number).

    Raises:
        TypeError: *kt* is not an int.
        ValueError: *kt* is not a ktime (an ``s64``).

    .. versionadded:: 0.2
    """
    return check_ktime(kt, "ktime_to_ns", "kt")


def ktime_to_us(kt: int) -> int:
    """
    *kt* in microseconds, truncated toward zero as C divides (``ktime_to_us(1999)`` is 1).

    Raises:
        TypeError, ValueError: as :func:`ktime_to_ns`.

    .. versionadded:: 0.2
    """
    return _divns(check_ktime(kt, "ktime_to_us", "kt"), NSEC_PER_USEC)


def ktime_to_ms(kt: int) -> int:
    """
    *kt* in milliseconds, truncated toward zero (``ktime_to_ms(-1500000)`` is -1).

    Raises:
        TypeError, ValueError: as :func:`ktime_to_ns`.

    .. versionadded:: 0.2
    """
    return _divns(check_ktime(kt, "ktime_to_ms", "kt"), NSEC_PER_MSEC)


def ktime_add(a: int, b: int) -> int:
    """
    ``a + b``, plain s64 arithmetic: no saturation (an overflow wraps, as the kernel's build).

    Raises:
        TypeError: *a* or *b* is not an int.
        ValueError: *a* or *b* is not a ktime (an ``s64``).

    .. versionadded:: 0.2
    """
    return s64(check_ktime(a, "ktime_add", "a") + check_ktime(b, "ktime_add", "b"))


def ktime_sub(a: int, b: int) -> int:
    """
    ``a - b``, plain s64 arithmetic.

    Raises:
        TypeError, ValueError: as :func:`ktime_add`.

    .. versionadded:: 0.2
    """
    return s64(check_ktime(a, "ktime_sub", "a") - check_ktime(b, "ktime_sub", "b"))


def ktime_add_ns(kt: int, ns: int) -> int:
    """
    ``kt + ns`` (*ns* a ``u64``), stored in an s64.

    Raises:
        TypeError: *kt* or *ns* is not an int.
        ValueError: *kt* is not a ktime, or *ns* does not fit a ``u64``.

    .. versionadded:: 0.2
    """
    return s64(check_ktime(kt, "ktime_add_ns", "kt") + check_u64(ns, "ktime_add_ns", "ns"))


def ktime_after(a: int, b: int) -> bool:
    """
    ``a > b``.

    Raises:
        TypeError, ValueError: as :func:`ktime_add`.

    .. versionadded:: 0.2
    """
    return check_ktime(a, "ktime_after", "a") > check_ktime(b, "ktime_after", "b")


def ktime_before(a: int, b: int) -> bool:
    """
    ``a < b``.

    Raises:
        TypeError, ValueError: as :func:`ktime_add`.

    .. versionadded:: 0.2
    """
    return check_ktime(a, "ktime_before", "a") < check_ktime(b, "ktime_before", "b")
