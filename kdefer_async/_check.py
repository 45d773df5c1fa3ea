"""Argument checks for the public API: one wording for every rejection.

Kernel invariant modelled: in C the compiler rejects a call whose arguments have the wrong
type, and a function pointer whose signature does not match the one it is stored as. Here the
call itself is the first moment this can be seen, so every public function checks its
arguments *before it changes anything*: a rejected call leaves the kernel exactly as it was.

Every rejection names the function, the parameter, what it expects and what it got::

    TypeError: spin_lock() expects a SpinLock for 'lock', got NoneType
    ValueError: msleep() expects a number of milliseconds >= 0 for 'ms', got -1
    TypeError: timer_setup() expects a function callable as callback(timer) for 'callback',
        but tick() takes no arguments

Hot paths (``tasklet_schedule``, ``queue_work``, ``mod_timer``...) do not pay for the check:
they run their fast path inside ``try`` and call the checks on the failure path only (a ``try``
costs nothing until it raises), which works because their first use of each argument fails
before anything is changed. Callbacks are checked once, at registration; the result of the
signature check is cached per code object, so registering many callbacks of one function stays
cheap.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, Literal, NoReturn, TypeVar

__all__ = [
    "bad_type",
    "bad_value",
    "check_bool",
    "check_callback",
    "check_cpu",
    "check_instance",
    "check_int",
    "check_number",
    "check_optional_str",
    "check_str",
    "cpu_range",
    "describe",
    "type_name",
]

T = TypeVar("T")

#: What kind of callable a callback must be (the one rule).
CallbackKind = Literal["atomic", "sleeping", "any"]


def type_name(value: object) -> str:
    """The name a message shows for *value*'s type (``NoneType``, ``str``, ``Work``...)."""
    return type(value).__name__


def describe(value: object) -> str:
    """A short, safe rendering of *value* for a message (never huge, never raising)."""
    try:
        text = repr(value)
    except Exception:
        return f"<{type_name(value)} object>"
    if len(text) > 60:
        text = text[:57] + "..."
    return text


def bad_type(func: str, param: str, expected: str, got: object) -> TypeError:
    """The :class:`TypeError` for *got* of the wrong type as *param* of ``func()``."""
    return TypeError(f"{func}() expects {expected} for '{param}', got {type_name(got)}")


def bad_value(func: str, param: str, expected: str, got: object) -> ValueError:
    """The :class:`ValueError` for *got*, of the right type but out of range."""
    return ValueError(f"{func}() expects {expected} for '{param}', got {describe(got)}")


def _article(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def check_instance(
    value: object, cls: type[T], func: str, param: str, expected: str | None = None
) -> T:
    """*value* if it is a *cls* (subclasses included), else the :func:`bad_type` error."""
    if isinstance(value, cls):
        return value
    raise bad_type(func, param, expected or _article(cls.__name__), value)


def check_int(
    value: object,
    func: str,
    param: str,
    *,
    lo: int | None = None,
    hi: int | None = None,
    expected: str | None = None,
) -> int:
    """
    *value* if it is an ``int`` (``bool`` is not: C has no implicit bool for these) within
    ``lo <= value <= hi``; a :class:`TypeError` or :class:`ValueError` otherwise.
    """
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise bad_type(func, param, "an int", value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if expected is None:
            if lo is not None and hi is not None:
                expected = f"an int from {lo} to {hi}"
            elif lo is not None:
                expected = f"an int >= {lo}"
            else:
                expected = f"an int <= {hi}"
        raise bad_value(func, param, expected, value)
    return value


def check_number(
    value: object, func: str, param: str, *, lo: float | None = None, expected: str | None = None
) -> float:
    """*value* if it is a real number (``int`` or ``float``, not ``bool``, not NaN) >= *lo*."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_type(func, param, "a number", value)
    if value != value or (lo is not None and value < lo):
        raise bad_value(func, param, expected or f"a number >= {lo}", value)
    return value


def check_bool(value: object, func: str, param: str) -> bool:
    """*value* if it is a ``bool``."""
    if value is True or value is False:
        return value
    raise bad_type(func, param, "a bool", value)


def check_str(value: object, func: str, param: str, *, empty_ok: bool = True) -> str:
    """*value* if it is a ``str`` (a C string: never ``None``)."""
    if not isinstance(value, str):
        raise bad_type(func, param, "a str", value)
    if not empty_ok and not value:
        raise bad_value(func, param, "a non-empty str", value)
    return value


def check_optional_str(value: object, func: str, param: str) -> str | None:
    """*value* if it is a ``str`` or ``None``."""
    if value is None or isinstance(value, str):
        return value
    raise bad_type(func, param, "a str or None", value)


def cpu_range(nr_cpus: int) -> str:
    """How a message says which CPU numbers a kernel of *nr_cpus* CPUs has."""
    return "CPU 0 (the only one)" if nr_cpus == 1 else f"a CPU number from 0 to {nr_cpus - 1}"


def check_cpu(
    cpu: object,
    nr_cpus: int,
    func: str,
    param: str = "cpu",
    *,
    also: tuple[int, str] | None = None,
    or_none: bool = False,
) -> int:
    """
    *cpu* if it is one of the CPU numbers of a kernel with *nr_cpus* CPUs, or the special
    value ``also[0]`` (shown as ``also[1]``, e.g. ``WORK_CPU_UNBOUND``) where one is taken.
    With *or_none* the message says that ``None`` is taken too (the caller handles it).
    """
    if type(cpu) is int and (0 <= cpu < nr_cpus or (also is not None and cpu == also[0])):
        return cpu
    if type(cpu) is not int and (isinstance(cpu, bool) or not isinstance(cpu, int)):
        raise bad_type(func, param, "an int (a CPU number) or None" if or_none else "an int", cpu)
    value: int = cpu
    if 0 <= value < nr_cpus or (also is not None and value == also[0]):
        return value  # an int subclass
    expected = cpu_range(nr_cpus) + (f" or {also[1]}" if also is not None else "")
    raise bad_value(func, param, expected, value)


# -- callbacks -----------------------------------------------------------------------------


def _unwrap(fn: Any) -> Any:
    """The function behind partials (for the async check)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def is_async_callable(fn: object) -> bool:
    """True for ``async def`` functions and async generators, and objects whose ``__call__`` is."""
    target = _unwrap(fn)
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        return True
    if inspect.isfunction(target) or inspect.ismethod(target) or isinstance(target, type):
        return False
    return inspect.iscoroutinefunction(getattr(target, "__call__", None))


@functools.lru_cache(maxsize=4096)
def _code_accepts(code: types.CodeType, ndefaults: int, kwonly_missing: bool, n: int) -> bool:
    if kwonly_missing:
        return False
    if code.co_flags & inspect.CO_VARARGS:
        return n >= code.co_argcount - ndefaults
    return code.co_argcount - ndefaults <= n <= code.co_argcount


def _accepts(fn: Any, n: int) -> bool | None:
    """Whether ``fn(*n args)`` binds: True, False, or None when the signature is unknown."""
    if isinstance(fn, types.FunctionType):
        kwd = fn.__kwdefaults__ or {}
        code = fn.__code__
        kwonly = code.co_varnames[code.co_argcount : code.co_argcount + code.co_kwonlyargcount]
        missing = any(name not in kwd for name in kwonly)
        return _code_accepts(code, len(fn.__defaults__ or ()), missing, n)
    if isinstance(fn, types.MethodType) and isinstance(fn.__func__, types.FunctionType):
        return _accepts(fn.__func__, n + 1)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # a builtin or extension callable without a signature: trust it
    try:
        sig.bind(*range(n))
    except TypeError:
        return False
    return True


def _shown_signature(fn: object) -> str:
    """``(a, b=1)``: the parameters only (a return annotation says nothing about the call)."""
    try:
        sig = inspect.signature(fn)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"
    return str(sig.replace(return_annotation=inspect.Signature.empty))


def check_callback(
    fn: object,
    func: str,
    param: str,
    *,
    shape: str,
    nargs: int,
    kind: CallbackKind,
    what: str | None = None,
) -> None:
    """
    Check a callback at registration, as C's compiler checks a function pointer's type.

    Args:
        fn: The callback handed in.
        func: The public function it was handed to (for the message).
        param: The parameter it was handed as.
        shape: How it will be called, for the message: ``"callback(timer)"``.
        nargs: How many positional arguments it will be called with.
        kind: ``"atomic"``: it runs in atomic context, so it must be a plain function (the
            one rule); ``"sleeping"``: it may sleep, so it must be ``async def``; ``"any"``:
            either.
        what: What the callback is, for the one-rule message (``"a timer callback"``).

    Raises:
        TypeError: *fn* is not callable, is of the wrong kind, or cannot take *nargs*
            positional arguments. The message shows the expected call.
    """
    if type(fn) is types.FunctionType and fn.__kwdefaults__ is None and not fn.__dict__:
        # a plain function: its code object decides, and a code object seen before with the
        # same defaults passed already (registering many callbacks of one function is cheap)
        defaults = fn.__defaults__
        key = (fn.__code__, len(defaults) if defaults else 0, nargs, kind)
        if key in _PASSED:
            return
        _check_callback(fn, func, param, shape, nargs, kind, what)
        _PASSED.add(key)
        return
    _check_callback(fn, func, param, shape, nargs, kind, what)


#: (code, number of defaults, nargs, kind) of plain functions that passed check_callback.
_PASSED: set[tuple[types.CodeType, int, int, str]] = set()


def _check_callback(
    fn: object,
    func: str,
    param: str,
    shape: str,
    nargs: int,
    kind: CallbackKind,
    what: str | None,
) -> None:
    if not callable(fn):
        raise bad_type(func, param, f"a function callable as {shape}", fn)
    if kind != "any":
        is_async = is_async_callable(fn)
        if kind == "atomic" and is_async:
            from ._printk import symbol_name

            raise TypeError(
                f"{func}(): {what or 'the callback'} runs in atomic context and must be a plain "
                f"function, but {symbol_name(fn)} is `async def`: in the kernel, what may sleep "
                "is `async` here and what runs in atomic context is a plain `def` (use a "
                "workqueue for work that sleeps)"
            )
        if kind == "sleeping" and not is_async:
            from ._printk import symbol_name

            raise TypeError(
                f"{func}(): {what or 'the callback'} may sleep, so it must be `async def` "
                f"(called as `await {shape}`), but {symbol_name(fn)} is a plain function"
            )
    if _accepts(fn, nargs) is False:
        from ._printk import symbol_name

        taken = (
            "no arguments"
            if nargs == 0
            else f"{nargs} positional argument" + ("s" if nargs != 1 else "")
        )
        raise TypeError(
            f"{func}() expects a function callable as {shape} for '{param}', but "
            f"{symbol_name(fn)}{_shown_signature(fn)} cannot be called with {taken}"
        )


def fail(exc: BaseException) -> NoReturn:
    """Raise *exc* (a helper for expressions)."""
    raise exc


def check_any_callable(fn: object, func: str, param: str) -> Callable[..., Any]:
    """*fn* if it is callable."""
    if callable(fn):
        return fn
    raise bad_type(func, param, "a callable", fn)
