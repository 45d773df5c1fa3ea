"""Error values returned as numbers: ``IS_ERR_VALUE``.

Kernel invariants modelled (include/linux/err.h, include/uapi/asm-generic/errno-base.h,
errno.h, include/linux/errno.h):

* Kernel functions report failure by returning ``-E...``: a negative errno, 1 to
  ``MAX_ERRNO`` (4095). The errno values themselves are in ``_consts`` (x86-64 numbers).
* ``IS_ERR_VALUE(x)`` is ``(unsigned long)x >= (unsigned long)-MAX_ERRNO``: the top 4095
  values of the address space are never valid pointers, so a value there is an error code.
  For a Python int, ``x`` is taken modulo 2**64 as the cast does: -1 to -4095 (and their
  unsigned images, up to ``2**64 - 1``) are errors; -4096, 0 and small positive values are not.
"""

from __future__ import annotations

from ._check import check_int
from ._consts import MAX_ERRNO, ULONG_MASK

__all__ = ["IS_ERR_VALUE"]

#: ``(unsigned long)-MAX_ERRNO``: the lowest value that is an error code.
_FIRST_ERROR = -MAX_ERRNO & ULONG_MASK


def IS_ERR_VALUE(x: int) -> bool:
    """
    ``IS_ERR_VALUE(x)``: whether *x*, cast to ``unsigned long``, is a negative errno
    (``-MAX_ERRNO`` to -1).

    Raises:
        TypeError: *x* is not an int.

    Context:
        Any context; never sleeps.

    .. versionadded:: 0.2
    """
    if type(x) is not int:
        x = int(check_int(x, "IS_ERR_VALUE", "x"))
    return x & ULONG_MASK >= _FIRST_ERROR
