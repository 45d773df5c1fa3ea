"""Kernel modules: ``module_init``/``module_exit``, ``MODULE_*`` tags, and the loader.

A module is a Python file written like a C module::

    @module_init
    async def onload():       # or a plain def; runs in process context (the insmod task)
        ...
        return 0
    @module_exit
    def onunload(): ...
    MODULE_LICENSE("GPL")

``await kernel.insmod(path)`` loads it and runs its init; ``await kernel.rmmod(name)`` runs its
exit. The decorators record into the module being loaded; outside a load (a module file run as
a plain script) they record into a definition keyed by the Python module's name.
"""

from __future__ import annotations

import builtins
import contextvars
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ._check import bad_type, bad_value, check_callback, check_int, check_str

__all__ = [
    "MODULE_AUTHOR",
    "MODULE_DESCRIPTION",
    "MODULE_LICENSE",
    "ModuleDef",
    "definition_for",
    "load_definition",
    "module_exit",
    "module_init",
    "module_param",
]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class ModuleDef:
    """What a module file declares (its ``.modinfo`` and its entry points)."""

    name: str
    init: Callable[[], Any] | None = None
    exit: Callable[[], Any] | None = None
    author: list[str] = field(default_factory=list)
    license: str | None = None
    description: str | None = None
    path: str | None = None
    pymodule: Any = None
    params: dict[str, tuple[Callable[[str], Any], int]] = field(default_factory=dict)


_loading: contextvars.ContextVar[ModuleDef | None] = contextvars.ContextVar(
    "kdefer_loading_module", default=None
)
#: Definitions made outside insmod (a module file run as a script), by Python module name.
_scripts: dict[str, ModuleDef] = {}


def _target(fn: object = None) -> ModuleDef:
    m = _loading.get()
    if m is not None:
        return m
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame and frame.f_back else None
    name = caller.f_globals.get("__name__", "__main__") if caller else "__main__"
    return _scripts.setdefault(name, ModuleDef(name=name))


def definition_for(pymodule_name: str) -> ModuleDef | None:
    """The definition a module file made when run as a script (``__name__``)."""
    return _scripts.get(pymodule_name)


def _check_entry(fn: object, func: str, what: str) -> None:
    """An init or exit function: called with no arguments, ``async def`` or plain."""
    check_callback(fn, func, "fn", shape="fn()", nargs=0, kind="any", what=what)


def module_init(fn: F) -> F:
    """
    Declare *fn* the module's init function (``async def`` or plain); returns *fn*.

    Raises:
        TypeError: *fn* is not callable with no arguments (``int (*initcall_t)(void)``).

    .. versionadded:: 0.1
    """
    _check_entry(fn, "module_init", "the module init function")
    _target().init = fn
    return fn


def module_exit(fn: F) -> F:
    """
    Declare *fn* the module's exit function (``async def`` or plain); returns *fn*.

    Raises:
        TypeError: *fn* is not callable with no arguments (``void (*exitcall_t)(void)``).

    .. versionadded:: 0.1
    """
    _check_entry(fn, "module_exit", "the module exit function")
    _target().exit = fn
    return fn


_PARAM_TYPES: dict[Any, Callable[[str], Any]] = {
    int: int,
    "int": int,
    "uint": int,
    "long": int,
    "ulong": int,
    "short": int,
    "ushort": int,
    str: str,
    "charp": str,
    bool: lambda v: v.strip().lower() in ("1", "y", "yes", "true", "on"),
    "bool": lambda v: v.strip().lower() in ("1", "y", "yes", "true", "on"),
}
_PARAM_TYPE_NAMES = "int, str, bool, or one of " + ", ".join(
    repr(k) for k in _PARAM_TYPES if isinstance(k, str)
)


def _check_perm(perm: object) -> int:
    """``VERIFY_OCTAL_PERMISSIONS``: the build fails unless *perm* is a sane sysfs mode."""
    mode = check_int(
        perm, "module_param", "perm", lo=0, hi=0o777, expected="a mode from 0 to 0o777"
    )
    user, group, other = mode >> 6, (mode >> 3) & 7, mode & 7
    if user & 4 < group & 4 or group & 4 < other & 4:
        rule = "readable by the user if by the group, and by the group if by others"
    elif user & 2 < group & 2:
        rule = "writable by the user if by the group"
    elif other & 2:
        rule = "not writable by others"
    else:
        return mode
    # (the wording of bad_value(), with the mode in octal as it is written)
    raise ValueError(f"module_param() expects a mode {rule} for 'perm', got {mode:#o}")


def module_param(name: str, type: Any, perm: int) -> None:
    """
    Declare the module-level variable *name* a parameter settable at load time, as
    ``module_param(name, type, perm)``: ``await kernel.insmod(path, "name=value")``.

    *type* is ``int``, ``str``, ``bool`` or a kernel type name (``"int"``, ``"uint"``,
    ``"charp"``, ``"bool"``...). *perm* is the parameter's sysfs mode, checked as the kernel's
    ``VERIFY_OCTAL_PERMISSIONS()`` checks it at build time: at most ``0o777``, never writable
    by others, and no group or other bit the user lacks.

    Raises:
        TypeError: *name* is not a str, *type* is neither a class nor a str, or *perm* is not
            an int.
        ValueError: *name* is not an identifier, *type* is not a supported parameter type, or
            *perm* is not a mode the kernel builds.

    .. versionadded:: 0.1
    """
    if not check_str(name, "module_param", "name").isidentifier():
        raise bad_value("module_param", "name", "a C identifier (the variable's name)", name)
    if not isinstance(type, (builtins.type, str)):
        raise bad_type("module_param", "type", _PARAM_TYPE_NAMES, type)
    conv = _PARAM_TYPES.get(type)
    if conv is None:
        raise bad_value("module_param", "type", _PARAM_TYPE_NAMES, type)
    mode = _check_perm(perm)
    _target().params[name] = (conv, mode)


def MODULE_AUTHOR(s: str) -> None:
    """
    Record the module's author.

    Raises:
        TypeError: *s* is not a str (a C string literal).

    .. versionadded:: 0.1
    """
    check_str(s, "MODULE_AUTHOR", "s")
    _target().author.append(s)


def MODULE_LICENSE(s: str) -> None:
    """
    Record the module's license (a non-GPL license taints the kernel with ``P`` when loaded).

    Raises:
        TypeError: *s* is not a str (a C string literal).

    .. versionadded:: 0.1
    """
    check_str(s, "MODULE_LICENSE", "s")
    _target().license = s


def MODULE_DESCRIPTION(s: str) -> None:
    """
    Record the module's description.

    Raises:
        TypeError: *s* is not a str (a C string literal).

    .. versionadded:: 0.1
    """
    check_str(s, "MODULE_DESCRIPTION", "s")
    _target().description = s


def load_definition(path: str | os.PathLike[str]) -> ModuleDef:
    """Execute a module file in a fresh Python module and return what it declared."""
    p = Path(os.fspath(path))
    if p.suffix != ".py":
        raise ValueError(f"{p}: a kdefer_async module is a .py file")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    name = p.stem
    mdef = ModuleDef(name=name, path=str(p))
    spec = importlib.util.spec_from_file_location(f"kdefer_module_{name}_{id(mdef):x}", p)
    if spec is None or spec.loader is None:
        raise ImportError(f"{p}: cannot be loaded")
    pymod = importlib.util.module_from_spec(spec)
    token = _loading.set(mdef)
    try:
        spec.loader.exec_module(pymod)
    finally:
        _loading.reset(token)
    mdef.pymodule = pymod
    sys.modules.pop(spec.name, None)
    return mdef
