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

from ._check import bad_type, bad_value, check_instance, check_int, check_str
from ._consts import __GFP_DIRECT_RECLAIM, ULONG_MASK
from ._context import _cur
from ._printk import warn_once
from ._sleeping import might_sleep_report
from ._tasklet import Tasklet
from ._timer import TimerList

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


#: ``gfp_t`` is an ``unsigned int``.
_GFP_MAX = 0xFFFFFFFF


def _check_alloc(kind: object, flags: object, func: str) -> None:
    """A class or a ``size_t`` size, and ``gfp_t`` flags."""
    if not isinstance(kind, type):
        if isinstance(kind, bool) or not isinstance(kind, int):
            raise bad_type(func, "kind", "a class or a size in bytes", kind)
        if not 0 <= kind <= ULONG_MASK:
            raise bad_value(func, "kind", f"a size in bytes from 0 to {ULONG_MASK}", kind)
    check_int(flags, func, "flags", lo=0, hi=_GFP_MAX, expected="GFP flags (an unsigned int)")


def _kmalloc(kind: type[T] | int, flags: int, func: str) -> T | bytearray:
    _check_alloc(kind, flags, func)
    task = _cur()
    if flags & __GFP_DIRECT_RECLAIM and (task.preempt_count or task.irqs_off):
        might_sleep_report(task)
    obj: Any = kind() if isinstance(kind, type) else bytearray(kind)
    slab = task.kernel._slab
    slab[id(obj)] = obj
    return obj  # type: ignore[no-any-return]


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
        ValueError: a negative size, or *flags* that do not fit ``gfp_t`` (an unsigned int).

    .. versionadded:: 0.1
    """
    return _kmalloc(kind, flags, "kmalloc")


@overload
def kzalloc(kind: type[T], flags: int) -> T: ...
@overload
def kzalloc(kind: int, flags: int) -> bytearray: ...
def kzalloc(kind: type[T] | int, flags: int) -> T | bytearray:
    """
    :func:`kmalloc`, zeroed (Python objects always start from their ``__init__``).

    Raises:
        TypeError, ValueError: as :func:`kmalloc`.

    .. versionadded:: 0.1
    """
    return _kmalloc(kind, flags, "kzalloc")


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
        TypeError: *kind* is not a class, or *member* is not a str.
        LookupError: no *kind* object embeds *ptr* as *member*.

    .. versionadded:: 0.1
    """
    return _container_of(ptr, kind, member, "container_of")


def _check_container(kind: object, member: object, func: str) -> None:
    check_instance(kind, type, func, "kind", "a class")
    check_str(member, func, "member", empty_ok=False)


def _container_of(ptr: object, kind: type[T], member: str, func: str) -> T:
    _check_container(kind, member, func)
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


def from_timer(kind: type[T], timer: TimerList, member: str) -> T:
    """
    The *kind* object whose timer field *member* is *timer*, inside a timer callback
    (``from_timer(var, t, field)``: in C the first argument only gives the type).

    Raises:
        TypeError: *kind* is not a class, *timer* is not a :class:`TimerList`, or *member* is
            not a str.
        LookupError: no *kind* object embeds *timer* as *member*.

    .. versionadded:: 0.1
    """
    _check_container(kind, member, "from_timer")
    check_instance(timer, TimerList, "from_timer", "timer")
    return _container_of(timer, kind, member, "from_timer")


def timer_container_of(kind: type[T], timer: TimerList, member: str) -> T:
    """
    The 6.16 name of :func:`from_timer`.

    Raises:
        TypeError, LookupError: as :func:`from_timer`.

    .. versionadded:: 0.1
    """
    _check_container(kind, member, "timer_container_of")
    check_instance(timer, TimerList, "timer_container_of", "timer")
    return _container_of(timer, kind, member, "timer_container_of")


def from_tasklet(kind: type[T], tasklet: Tasklet, member: str) -> T:
    """
    The *kind* object whose tasklet field *member* is *tasklet* (``from_tasklet``).

    Raises:
        TypeError: *kind* is not a class, *tasklet* is not a :class:`Tasklet`, or *member* is
            not a str.
        LookupError: no *kind* object embeds *tasklet* as *member*.

    .. versionadded:: 0.1
    """
    _check_container(kind, member, "from_tasklet")
    check_instance(tasklet, Tasklet, "from_tasklet", "tasklet")
    return _container_of(tasklet, kind, member, "from_tasklet")
