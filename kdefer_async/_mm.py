"""Memory: ``kmalloc``/``kzalloc``/``kfree`` and ``container_of``.

Kernel invariants modelled: an allocation with ``GFP_KERNEL`` may sleep, so it is a
``might_sleep()`` report in atomic context (use ``GFP_ATOMIC`` there); the allocator owns the
object until ``kfree()``. ``container_of(ptr, type, member)`` finds the structure that embeds
*ptr* as its *member*, which is how a work function finds its data.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any, TypeVar, overload

from ._consts import __GFP_DIRECT_RECLAIM
from ._context import _cur
from ._printk import warn_once
from ._sleeping import might_sleep_report

__all__ = [
    "container_of",
    "from_tasklet",
    "from_timer",
    "kfree",
    "kmalloc",
    "kzalloc",
    "timer_container_of",
]

T = TypeVar("T")


@overload
def kmalloc(kind: type[T], flags: int) -> T: ...
@overload
def kmalloc(kind: int, flags: int) -> bytearray: ...
def kmalloc(kind: type[T] | int, flags: int) -> T | bytearray:
    """
    Allocate: ``kind()`` for a class (kept alive until :func:`kfree`), or a ``bytearray`` of
    *kind* bytes for a size.

    ``GFP_KERNEL`` may sleep: in atomic context it is reported as a sleeping function called
    from invalid context (and still allocates, as the kernel does). Use ``GFP_ATOMIC`` there.

    Raises:
        TypeError: *kind* is neither a class nor an int, or *flags* is not an int.
        ValueError: a negative size.

    .. versionadded:: 0.1
    """
    task = _cur()
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise TypeError(f"flags must be GFP flags (an int), not {type(flags).__name__}")
    if flags & __GFP_DIRECT_RECLAIM and (task.preempt_count or task.irqs_off):
        might_sleep_report(task)
    obj: Any
    if isinstance(kind, type):
        obj = kind()
    elif isinstance(kind, int) and not isinstance(kind, bool):
        if kind < 0:
            raise ValueError(f"cannot allocate {kind} bytes")
        obj = bytearray(kind)
    else:
        raise TypeError(f"kind must be a class or a size in bytes, not {type(kind).__name__}")
    slab = task.kernel._slab
    slab[id(obj)] = obj
    return obj  # type: ignore[no-any-return]


@overload
def kzalloc(kind: type[T], flags: int) -> T: ...
@overload
def kzalloc(kind: int, flags: int) -> bytearray: ...
def kzalloc(kind: type[T] | int, flags: int) -> T | bytearray:
    """
    :func:`kmalloc`, zeroed (Python objects always start from their ``__init__``).

    .. versionadded:: 0.1
    """
    return kmalloc(kind, flags)


def kfree(obj: object) -> None:
    """
    Free what :func:`kmalloc` returned. ``kfree(None)`` does nothing.

    .. versionadded:: 0.1
    """
    if obj is None:
        return
    from ._debugobjects import check_free, is_freed, poison, report_double_free

    task = _cur()
    slab = task.kernel._slab
    if is_freed(obj):
        report_double_free(task, obj)
    if slab.pop(id(obj), None) is None:
        freed = task.kernel._freed
        if id(obj) in freed and freed[id(obj)] is obj:
            report_double_free(task, obj)
        warn_once(("kfree", id(obj)), "kfree: %s was not allocated by kmalloc\n", repr(obj)[:60])
        return
    check_free(task, obj)
    if not poison(obj):
        task.kernel._freed[id(obj)] = obj  # built-in types: remember it, for a double free


#: ptr -> weak reference to its container: neither is kept alive by the cache (the container
#: holds ptr, so a strong value would make both immortal).
_containers: weakref.WeakKeyDictionary[Any, weakref.ref[Any]] = weakref.WeakKeyDictionary()


def container_of(ptr: object, kind: type[T], member: str) -> T:
    """
    Return the *kind* object whose attribute *member* is *ptr* (``container_of``).

    Raises:
        TypeError: *member* is not a str.
        LookupError: no *kind* object embeds *ptr* as *member*.

    .. versionadded:: 0.1
    """
    if not isinstance(member, str):
        raise TypeError("member must be the attribute name, a str")
    try:
        ref = _containers.get(ptr)
    except TypeError:
        ref = None
    hit = ref() if ref is not None else None
    if hit is not None and isinstance(hit, kind) and getattr(hit, member, None) is ptr:
        return hit
    task = _cur()
    for obj in task.kernel._slab.values():
        if isinstance(obj, kind) and getattr(obj, member, None) is ptr:
            _remember(ptr, obj)
            return obj
    for obj in gc.get_referrers(ptr):
        if isinstance(obj, kind) and getattr(obj, member, None) is ptr:
            _remember(ptr, obj)
            return obj
        if isinstance(obj, dict):
            for owner in gc.get_referrers(obj):
                if isinstance(owner, kind) and getattr(owner, member, None) is ptr:
                    _remember(ptr, owner)
                    return owner
    raise LookupError(f"no {kind.__name__} has {ptr!r} as its .{member}")


def _remember(ptr: object, obj: object) -> None:
    try:
        _containers[ptr] = weakref.ref(obj)
    except TypeError:
        pass


def from_timer(kind: type[T], timer: object, member: str) -> T:
    """
    The *kind* object whose timer field *member* is *timer*, inside a timer callback
    (``from_timer(var, t, field)``: in C the first argument only gives the type).

    .. versionadded:: 0.1
    """
    return container_of(timer, kind, member)


def timer_container_of(kind: type[T], timer: object, member: str) -> T:
    """
    The 6.16 name of :func:`from_timer`.

    .. versionadded:: 0.1
    """
    return container_of(timer, kind, member)


def from_tasklet(kind: type[T], tasklet: object, member: str) -> T:
    """
    The *kind* object whose tasklet field *member* is *tasklet* (``from_tasklet``).

    .. versionadded:: 0.1
    """
    return container_of(tasklet, kind, member)
