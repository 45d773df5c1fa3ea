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

import contextvars
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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


def module_init(fn: F) -> F:
    """
    Declare *fn* the module's init function (``async def`` or plain); returns *fn*.

    .. versionadded:: 0.1
    """
    if not callable(fn):
        raise TypeError("module_init takes the init function")
    _target().init = fn
    return fn


def module_exit(fn: F) -> F:
    """
    Declare *fn* the module's exit function (``async def`` or plain); returns *fn*.

    .. versionadded:: 0.1
    """
    if not callable(fn):
        raise TypeError("module_exit takes the exit function")
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


def module_param(name: str, type: Any, perm: int) -> None:
    """
    Declare the module-level variable *name* a parameter settable at load time, as
    ``module_param(name, type, perm)``: ``await kernel.insmod(path, "name=value")``.

    *type* is ``int``, ``str``, ``bool`` or a kernel type name (``"int"``, ``"uint"``,
    ``"charp"``, ``"bool"``...).

    Raises:
        ValueError: an unknown *type*.

    .. versionadded:: 0.1
    """
    conv = _PARAM_TYPES.get(type)
    if conv is None:
        raise ValueError(f"module_param {name}: unsupported type {type!r}")
    _target().params[str(name)] = (conv, int(perm))


def MODULE_AUTHOR(s: str) -> None:
    """
    Record the module's author.

    .. versionadded:: 0.1
    """
    _target().author.append(str(s))


def MODULE_LICENSE(s: str) -> None:
    """
    Record the module's license (a non-GPL license taints the kernel with ``P`` when loaded).

    .. versionadded:: 0.1
    """
    _target().license = str(s)


def MODULE_DESCRIPTION(s: str) -> None:
    """
    Record the module's description.

    .. versionadded:: 0.1
    """
    _target().description = str(s)


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
