"""Valid and junk arguments for every public API, derived from its type annotations.

Imported by the tests as ``apiargs`` (not a test module). It answers two questions about any
parameter of any public function, method or class constructor of ``kdefer_async``:

* :func:`valid_args` builds arguments a call must accept: a set-up ``TimerList`` for a
  ``TimerList`` parameter, a workqueue allocated for the purpose for a ``Workqueue``, a completed
  ``Completion`` (so a wait returns at once), small ints (a cpu 0, a delay of one jiffy), plain
  or ``async def`` callbacks of the right arity, ``"fuzz"`` for a str...
* :func:`junk_for` lists values that are *not* valid for an annotation: ``None`` (unless
  optional), the wrong type, an int out of range, a ``bool`` where an int is expected, NaN, a
  callback of the wrong arity or the wrong kind (``async def`` where a plain function runs in
  atomic context, and the reverse), a ``SpinLock`` where a ``Mutex`` is expected, an object
  never initialised...

All knowledge about a type is in one table, :data:`TYPES`, keyed by the (normalised)
annotation, so a new public name whose parameters use known types is covered with no edit. An
annotation the table does not know raises :class:`UnknownAnnotation`, whose message says to add
it: nothing is skipped silently. What an annotation cannot say (a softirq vector that must not
replace the timer's handler, three arguments of ``container_of`` that must agree, a parameter
annotated ``Any`` that must be callable) is in the short override tables below it.

Callbacks follow the package's annotations, which encode the one rule: a callback whose
result is ``object`` is a plain function (it runs in atomic context, or is a condition that
is evaluated on the spot); one returning a ``Coroutine``/``Awaitable`` is ``async def``; one
returning ``Any`` may be either (work functions).

Everything that needs a kernel (a workqueue, ``current()``) must be built inside a running
one: call :func:`valid_args` there.
"""

from __future__ import annotations

import atexit
import collections.abc
import inspect
import math
import os
import shutil
import sys
import tempfile
import types
import typing
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar, Union

import kdefer_async
from kdefer_async import (
    CLOCK_MONOTONIC,
    DECLARE_BITMAP,
    HRTIMER_MODE_REL,
    NET_RX_SOFTIRQ,
    NR_SOFTIRQS,
    TASK_RUNNING,
    Atomic,
    Atomic64,
    Bitmap,
    Completion,
    DelayedWork,
    ExecuteWork,
    HrTimer,
    IrqWork,
    Kernel,
    KthreadDelayedWork,
    KthreadWork,
    KthreadWorker,
    Mutex,
    PerCpu,
    RcuWork,
    RwLock,
    RwSemaphore,
    Semaphore,
    SeqLock,
    SpinLock,
    Tasklet,
    TaskStruct,
    TimerList,
    WaitQueueHead,
    Work,
    Workqueue,
    alloc_workqueue,
    complete_all,
    current,
    current_kernel,
    hrtimer_setup,
    kthread_create,
    kthread_run_worker,
)
from kdefer_async._cpu import CPU

__all__ = [
    "BUSY_WAIT_UNITS",
    "FUZZ_CPUS",
    "TYPES",
    "CallableSpec",
    "Holder",
    "LiteralSpec",
    "Param",
    "Target",
    "TypeEntry",
    "UnionSpec",
    "UnknownAnnotation",
    "call_args",
    "describe",
    "junk_for",
    "module_path",
    "normalise",
    "params_of",
    "public_targets",
    "target_of",
    "valid_args",
    "valid_value",
    "well_typed",
]

#: CPUs of the kernel the arguments are made for: ``cpu=FUZZ_CPUS`` is out of range there.
FUZZ_CPUS = 2


class UnknownAnnotation(LookupError):
    """A parameter's annotation is not in :data:`TYPES`: add it there."""


# -- what a parameter is ---------------------------------------------------------------------


@dataclass(frozen=True)
class CallableSpec:
    """A normalised ``Callable[[...], R]`` annotation."""

    #: How many positional arguments it is called with (None: ``Callable[..., R]``).
    nargs: int | None
    #: ``"plain"``, ``"async"`` or ``"any"`` (see the module docstring).
    kind: str


@dataclass(frozen=True)
class LiteralSpec:
    """A normalised ``Literal[...]`` annotation."""

    values: tuple[object, ...]


@dataclass(frozen=True)
class UnionSpec:
    """A normalised union; ``None`` is one of *members* for an optional parameter."""

    members: tuple[object, ...]


@dataclass(frozen=True)
class Param:
    """One parameter of a public callable, with its annotation resolved and normalised."""

    func: str  # the public name: "queue_work", "Kernel.raise_irq", "Tasklet" (constructor)
    name: str
    kind: inspect._ParameterKind
    required: bool
    annotation: object  # as written (resolved)
    spec: object  # normalised: a type, CallableSpec, LiteralSpec or UnionSpec


@dataclass(frozen=True)
class Target:
    """A public callable: a function of ``kdefer_async.__all__``, a class, or a Kernel method."""

    name: str  # "queue_work", "Kernel.raise_irq", "Tasklet"
    short: str  # the name its messages start with: "queue_work", "raise_irq", "Tasklet"
    obj: Any  # the function, the class, or the Kernel method (unbound)
    is_async: bool
    is_method: bool  # a Kernel method: bind it to the running kernel to call it

    def bind(self, kernel: Kernel) -> Callable[..., Any]:
        """The callable to call in *kernel*."""
        if self.is_method:
            method: Callable[..., Any] = getattr(kernel, self.short)
            return method
        fn: Callable[..., Any] = self.obj
        return fn


def _target_name(fn: Any) -> str:
    if isinstance(fn, type):
        return fn.__name__
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    qual: str = fn.__qualname__
    return qual


def public_targets() -> list[Target]:
    """
    Every public callable: each callable name of ``kdefer_async.__all__`` (classes by their
    constructor; exception classes and instances such as ``system_wq`` excluded) and every
    public method of :class:`~kdefer_async.Kernel`.
    """
    out: list[Target] = []
    for name in kdefer_async.__all__:
        obj = getattr(kdefer_async, name)
        if isinstance(obj, type):
            if issubclass(obj, BaseException):
                continue
            out.append(Target(name, name, obj, False, False))
        elif inspect.isfunction(obj) or inspect.iscoroutinefunction(obj):
            out.append(Target(name, name, obj, inspect.iscoroutinefunction(obj), False))
    for name, member in sorted(vars(Kernel).items()):
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        out.append(
            Target(f"Kernel.{name}", name, member, inspect.iscoroutinefunction(member), True)
        )
    return out


def target_of(fn: Any) -> Target:
    """The :class:`Target` of a public function, class or (bound or unbound) Kernel method."""
    name = _target_name(fn)
    for target in public_targets():
        if target.name == name:
            return target
    raise LookupError(f"{name} is not a public callable of kdefer_async")


# -- annotations -----------------------------------------------------------------------------

#: Names some modules import only for type checking, for resolving their annotations.
_EXTRA_NAMES: dict[str, object] = {
    "Kernel": Kernel,
    "CPU": CPU,
    "Workqueue": Workqueue,
    "TaskStruct": TaskStruct,
    "RwLock": RwLock,
    "SeqLock": SeqLock,
    "RwSemaphore": RwSemaphore,
}


def _kind_of_result(result: object) -> str:
    origin = typing.get_origin(result) or result
    if origin in (collections.abc.Coroutine, collections.abc.Awaitable):
        return "async"
    if result is Any:
        return "any"
    return "plain"


def normalise(annotation: object) -> object:
    """The table key for *annotation*: aliases and TypeVars resolved, generics reduced."""
    if isinstance(annotation, TypeVar):
        bound = annotation.__bound__
        return normalise(bound) if bound is not None else Any
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return UnionSpec(tuple(normalise(a) for a in typing.get_args(annotation)))
    if origin is Literal:
        return LiteralSpec(typing.get_args(annotation))
    if origin is collections.abc.Callable:
        params, result = typing.get_args(annotation)
        nargs = None if params is Ellipsis else len(params)
        return CallableSpec(nargs, _kind_of_result(result))
    if origin is type:
        return type
    if origin is not None:
        return origin  # tuple[str, ...] -> tuple, os.PathLike[str] -> os.PathLike...
    if annotation is type(None):
        return None
    return annotation


def params_of(fn: Any) -> tuple[Param, ...]:
    """Every parameter of *fn* (a public function, class or Kernel method), ``self`` left out."""
    if inspect.ismethod(fn):
        fn = fn.__func__  # one entry per method, not per kernel it is bound to
    return _params_of(fn)


@cache
def _params_of(fn: Any) -> tuple[Param, ...]:
    name = _target_name(fn)
    if isinstance(fn, type):  # the constructor, as the class or a base defines it
        func = next(c.__dict__["__init__"] for c in fn.__mro__ if "__init__" in c.__dict__)
        bound = True
    else:
        func, bound = inspect.unwrap(fn), name.startswith("Kernel.")
    module = sys.modules[func.__module__]
    globalns = dict(vars(module))
    for key, value in _EXTRA_NAMES.items():
        globalns.setdefault(key, value)
    hints = typing.get_type_hints(func, globalns=globalns)
    out = []
    parameters = list(inspect.signature(func).parameters.values())
    if bound:
        parameters = parameters[1:]
    for p in parameters:
        if p.name not in hints:
            raise UnknownAnnotation(
                f"parameter {p.name!r} of {name}() has no annotation: annotate it, then add "
                "its type to apiargs.TYPES if it is new"
            )
        ann = ANNOTATION_OVERRIDES.get((name, p.name), hints[p.name])
        required = p.default is inspect.Parameter.empty and p.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        )
        out.append(Param(name, p.name, p.kind, required, ann, normalise(ann)))
    return tuple(out)


# -- per-kernel resources --------------------------------------------------------------------


#: The workqueue made for valid arguments, and the kernel it belongs to (one at a time: a
#: cache keyed by kernel would keep every kernel alive through its workqueue).
_WORKQUEUE: tuple[weakref.ref[Kernel], Workqueue] | None = None


def _workqueue() -> Workqueue:
    """A workqueue of the running kernel, allocated on first use (per-CPU, default limits)."""
    global _WORKQUEUE
    kernel = current_kernel()
    if _WORKQUEUE is None or _WORKQUEUE[0]() is not kernel:
        wq = alloc_workqueue("apiargs", 0, 0)
        assert wq is not None
        _WORKQUEUE = (weakref.ref(kernel), wq)
    return _WORKQUEUE[1]


_MODULE_DIR: str | None = None

_MODULE_SOURCE = '''\
"""A module that loads and unloads cleanly (apiargs' valid insmod path)."""
from kdefer_async import MODULE_LICENSE, module_exit, module_init

MODULE_LICENSE("GPL")


@module_init
def fuzzmod_init():
    return 0


@module_exit
def fuzzmod_exit():
    pass
'''


def module_path() -> str:
    """A module file that ``Kernel.insmod`` loads cleanly (made once, in a temporary dir)."""
    global _MODULE_DIR
    if _MODULE_DIR is None:
        _MODULE_DIR = tempfile.mkdtemp(prefix="kdefer-apiargs-")
        atexit.register(shutil.rmtree, _MODULE_DIR, True)
        with open(os.path.join(_MODULE_DIR, "fuzzmod.py"), "w") as f:
            f.write(_MODULE_SOURCE)
    return os.path.join(_MODULE_DIR, "fuzzmod.py")


class Holder:
    """A structure embedding a work item, a timer and a tasklet, for ``container_of``."""

    def __init__(self) -> None:
        self.work = Work(_plain_callback(1))
        self.timer = TimerList(_plain_callback(1))
        self.tasklet = Tasklet(_plain_callback(1))


# -- callbacks -------------------------------------------------------------------------------


def fuzz_callback_0() -> int:
    return 1


def fuzz_callback_1(a: object) -> int:
    return 1


def fuzz_callback_2(a: object, b: object) -> int:
    return 1


def fuzz_callback_3(a: object, b: object, c: object) -> int:
    return 1


def fuzz_callback_n(*args: object) -> int:
    return 1


async def fuzz_async_0() -> int:
    return 0


async def fuzz_async_1(a: object) -> int:
    return 0


async def fuzz_async_2(a: object, b: object) -> int:
    return 0


async def fuzz_async_3(a: object, b: object, c: object) -> int:
    return 0


async def fuzz_async_n(*args: object) -> int:
    return 0


#: Plain callbacks by the number of arguments they take (None: any); they return 1 (truthy,
#: and IRQ_HANDLED for an interrupt handler).
_PLAIN: dict[int | None, Callable[..., Any]] = {
    0: fuzz_callback_0,
    1: fuzz_callback_1,
    2: fuzz_callback_2,
    3: fuzz_callback_3,
    None: fuzz_callback_n,
}
#: ``async def`` callbacks by the number of arguments they take; they return 0.
_ASYNC: dict[int | None, Callable[..., Any]] = {
    0: fuzz_async_0,
    1: fuzz_async_1,
    2: fuzz_async_2,
    3: fuzz_async_3,
    None: fuzz_async_n,
}


def _plain_callback(nargs: int | None) -> Callable[..., Any]:
    """A plain function taking exactly *nargs* positional arguments."""
    return _PLAIN[nargs if nargs is None or nargs <= 3 else None]


def _async_callback(nargs: int | None) -> Callable[..., Any]:
    """An ``async def`` taking exactly *nargs* positional arguments."""
    return _ASYNC[nargs if nargs is None or nargs <= 3 else None]


def _callback(nargs: int | None, kind: str) -> Callable[..., Any]:
    return _async_callback(nargs) if kind == "async" else _plain_callback(nargs)


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A copy of *fn* called *name* (junk gets names that say what is wrong with it)."""
    assert isinstance(fn, types.FunctionType)
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__)
    copy.__qualname__ = name
    copy.__annotations__ = dict(fn.__annotations__)
    return copy


def _callable_junk(spec: CallableSpec) -> list[object]:
    junk: list[object] = [*_not_objects(), SpinLock()]
    n = spec.nargs
    if n is not None:
        kind = "async" if spec.kind == "async" else "plain"
        more = _named(_callback(n + 1, kind), f"junk_taking_{n + 1}")
        junk.append(more)
        if n > 0:
            junk.append(_named(_callback(n - 1, kind), f"junk_taking_{n - 1}"))
    if spec.kind == "plain":
        junk.append(_named(_async_callback(n), "junk_async_def"))
    elif spec.kind == "async":
        junk.append(_named(_plain_callback(n), "junk_plain_def"))
    return junk


# -- the type table --------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeEntry:
    """What the tests know about one type of parameter."""

    #: A valid value for parameter *p* (called inside a running kernel).
    valid: Callable[[Param], object]
    #: Values that are not valid for it (fresh objects on every call).
    junk: Callable[[Param], list[object]]
    #: Whether a value is of this type at all (used to keep the junk of a union honest).
    accepts: Callable[[object], bool]


def _not_objects() -> list[object]:
    """Values that are no object of the library: for any parameter expecting one."""
    return [None, "x", 1, object(), []]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: Valid ints by parameter name (others get 1: a small delay, timeout, count or line).
INT_BY_NAME: dict[str, int] = {"cpu": 0, "flags": 0, "state": TASK_RUNNING, "perm": 0o644}
#: Further junk ints by parameter name.
INT_JUNK_BY_NAME: dict[str, list[int]] = {
    "cpu": [FUZZ_CPUS, 1024],  # past the last CPU of the kernel the arguments are for
    "sig": [0, 65],  # signals are 1..64
    "state": [0x7FFF],  # not a TASK_* state
}


def _valid_int(p: Param) -> int:
    return INT_BY_NAME.get(p.name, 1)


def _int_junk(p: Param) -> list[object]:
    junk: list[object] = [
        None,
        "x",
        -1,
        2**64,
        -(2**64),
        1.5,
        math.nan,
        object(),
        [],
        True,
    ]
    junk += INT_JUNK_BY_NAME.get(p.name, [])
    junk += EXTRA_JUNK.get((p.func, p.name), [])
    return junk


def _completed() -> Completion:
    c = Completion()
    complete_all(c)
    return c


def _lib(make: Callable[[], object], cls: type, *others: Callable[[], object]) -> TypeEntry:
    """An entry for a library class: junk is what is no object, plus look-alikes *others*."""
    return TypeEntry(
        valid=lambda p: make(),
        junk=lambda p: [*_not_objects(), *(o() for o in others)],
        accepts=lambda v: isinstance(v, cls),
    )


def _hrtimer() -> HrTimer:
    """An hrtimer set up for hardirq expiry on CLOCK_MONOTONIC (so mode 1, REL, fits it)."""
    t = HrTimer()
    hrtimer_setup(t, _plain_callback(1), CLOCK_MONOTONIC, HRTIMER_MODE_REL)
    return t


def _uninitialised(cls: type) -> Callable[[], object]:
    def make() -> object:
        return cls()

    make.__name__ = f"uninitialised {cls.__name__}"
    return make


TYPES: dict[object, TypeEntry] = {
    int: TypeEntry(_valid_int, _int_junk, _is_int),
    float: TypeEntry(
        lambda p: 1.0,
        lambda p: [None, "x", -1.0, math.nan, math.inf, object(), [], True],
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    ),
    bool: TypeEntry(
        lambda p: False,
        lambda p: [None, "x", 2, 1.5, object(), []],
        lambda v: isinstance(v, bool),
    ),
    str: TypeEntry(
        lambda p: "fuzz",
        lambda p: [None, 1, 1.5, b"fuzz", object(), [], *EXTRA_JUNK.get((p.func, p.name), [])],
        lambda v: isinstance(v, str),
    ),
    # accepts everything: there is no junk for an opaque cookie or a WARN_ON condition
    object: TypeEntry(
        lambda p: None,
        lambda p: list(EXTRA_JUNK.get((p.func, p.name), [])),
        lambda v: True,
    ),
    type: TypeEntry(
        lambda p: Holder,
        lambda p: [None, "x", 1, object(), [], Holder()],
        lambda v: isinstance(v, type),
    ),
    tuple: TypeEntry(
        lambda p: ("fuzz",), lambda p: [None, 1, object()], lambda v: isinstance(v, tuple)
    ),
    dict: TypeEntry(lambda p: {}, lambda p: ["x", 1, [], object()], lambda v: isinstance(v, dict)),
    os.PathLike: TypeEntry(
        lambda p: module_path(),
        lambda p: [None, 1, object(), []],
        lambda v: isinstance(v, os.PathLike),
    ),
    BaseException: TypeEntry(
        lambda p: RuntimeError("fuzz"),
        lambda p: [*_not_objects(), RuntimeError],
        lambda v: isinstance(v, BaseException),
    ),
    Kernel: TypeEntry(
        lambda p: current_kernel(),
        lambda p: [None, "x", object(), SpinLock()],
        lambda v: isinstance(v, Kernel),
    ),
    CPU: TypeEntry(
        lambda p: current_kernel().cpus[0],
        lambda p: [*_not_objects(), SpinLock()],
        lambda v: isinstance(v, CPU),
    ),
    TaskStruct: _lib(current, TaskStruct, SpinLock),
    SpinLock: _lib(SpinLock, SpinLock, Mutex),
    Mutex: _lib(Mutex, Mutex, SpinLock),
    RwLock: _lib(RwLock, RwLock, SpinLock, RwSemaphore),
    SeqLock: _lib(SeqLock, SeqLock, SpinLock, RwLock),
    # a fresh rwsem is free: every down returns at once
    RwSemaphore: _lib(RwSemaphore, RwSemaphore, RwLock, Mutex, Semaphore),
    # one free unit: a down returns at once
    Semaphore: _lib(lambda: Semaphore(1), Semaphore, RwSemaphore, Completion),
    Tasklet: _lib(lambda: Tasklet(_plain_callback(1)), Tasklet, _uninitialised(Tasklet), TimerList),
    TimerList: _lib(
        lambda: TimerList(_plain_callback(1)), TimerList, _uninitialised(TimerList), Tasklet
    ),
    Work: _lib(lambda: Work(_plain_callback(1)), Work, _uninitialised(Work), DelayedWork),
    DelayedWork: _lib(
        lambda: DelayedWork(_plain_callback(1)),
        DelayedWork,
        _uninitialised(DelayedWork),
        Work,
    ),
    RcuWork: _lib(lambda: RcuWork(_plain_callback(1)), RcuWork, _uninitialised(RcuWork), Work),
    Workqueue: _lib(_workqueue, Workqueue, _uninitialised(Workqueue), Work),
    ExecuteWork: _lib(ExecuteWork, ExecuteWork, Work),
    Completion: _lib(_completed, Completion, WaitQueueHead),
    HrTimer: _lib(_hrtimer, HrTimer, _uninitialised(HrTimer), TimerList),
    WaitQueueHead: _lib(WaitQueueHead, WaitQueueHead, Completion),
    PerCpu: _lib(lambda: PerCpu(int), PerCpu, SpinLock),
    KthreadWorker: _lib(
        lambda: kthread_run_worker(0, "apiargs"),
        KthreadWorker,
        _uninitialised(KthreadWorker),
        _uninitialised(Workqueue),
    ),
    KthreadWork: _lib(
        lambda: KthreadWork(_plain_callback(1)),
        KthreadWork,
        _uninitialised(KthreadWork),
        lambda: KthreadDelayedWork(_plain_callback(1)),
        lambda: Work(_plain_callback(1)),
    ),
    KthreadDelayedWork: _lib(
        lambda: KthreadDelayedWork(_plain_callback(1)),
        KthreadDelayedWork,
        _uninitialised(KthreadDelayedWork),
        lambda: KthreadWork(_plain_callback(1)),
        lambda: DelayedWork(_plain_callback(1)),
    ),
    Atomic: _lib(Atomic, Atomic, Atomic64),
    Atomic64: _lib(Atomic64, Atomic64, Atomic),
    # 128 bits: a valid bit number, size or offset (1) is inside it
    Bitmap: _lib(lambda: DECLARE_BITMAP(128), Bitmap, Atomic64),
}

# irq_work and cross-CPU calls: an item, and a CPU mask (any iterable of CPU numbers)
TYPES[IrqWork] = _lib(
    lambda: IrqWork(_plain_callback(1)), IrqWork, _uninitialised(IrqWork), Tasklet
)
TYPES[collections.abc.Iterable] = TypeEntry(
    valid=lambda p: [0],
    junk=lambda p: [None, 1, object(), "x", ["x"], [None], [-1], [1.5], [True]],
    accepts=lambda v: isinstance(v, collections.abc.Iterable),
)

# typing.Any means the same as object here: anything goes
TYPES[Any] = TYPES[object]

# -- what the annotations cannot say ---------------------------------------------------------

#: Annotations replaced for the tests, where the real one is looser than what is accepted.
ANNOTATION_OVERRIDES: dict[tuple[str, str], object] = {
    # annotated Any; it is called as fn(arg) in a kworker, and may be either kind
    ("work_on_cpu", "fn"): Callable[[Any], Any],
    # an F bound to Callable[..., Any]; init and exit functions are called with no argument
    ("module_init", "fn"): Callable[[], Any],
    ("module_exit", "fn"): Callable[[], Any],
}

#: Valid values where the type's default would not do.
VALID_OVERRIDES: dict[tuple[str, str], Callable[[], object]] = {
    # a vector the kernel leaves free: the timer and tasklet softirqs keep their handlers
    ("open_softirq", "nr"): lambda: NET_RX_SOFTIRQ,
    # module_param's type is a C type token: int, str, bool or a name such as "uint"
    ("module_param", "type"): lambda: int,
    # a kthread that has not run yet: bind it, or stop it (it then exits at once, -EINTR)
    ("kthread_stop", "task"): lambda: kthread_create(fuzz_async_1, None, "apiargs"),
    ("kthread_bind", "task"): lambda: kthread_create(fuzz_async_1, None, "apiargs"),
    # a kthread that has not run yet: it parks before its function would run
    ("kthread_park", "task"): lambda: kthread_create(fuzz_async_1, None, "apiargs"),
    ("kthread_unpark", "task"): lambda: kthread_create(fuzz_async_1, None, "apiargs"),
    ("Kernel.insmod", "path"): module_path,
    ("Kernel.rmmod", "name"): lambda: "fuzzmod",
}

#: Junk beyond the type's, for parameters whose valid values are narrower than their type.
EXTRA_JUNK: dict[tuple[str, str], list[object]] = {
    ("raise_softirq", "nr"): [NR_SOFTIRQS],
    ("raise_softirq_irqoff", "nr"): [NR_SOFTIRQS],
    ("open_softirq", "nr"): [NR_SOFTIRQS],
    ("module_param", "type"): [None, float, "float", object()],
    ("run", "backend"): ["no-such-backend"],
    # not one of the four hrtimer clocks; modes past HRTIMER_MODE_REL_PINNED_HARD (SOFT|HARD)
    ("hrtimer_setup", "clock_id"): [2, 3, 4, 12],
    ("hrtimer_init", "clock_id"): [2, 12],
    ("hrtimer_setup", "mode"): [12, 16],
    ("hrtimer_init", "mode"): [12],
    ("hrtimer_start", "mode"): [12, 16],
    ("hrtimer_start_range_ns", "mode"): [12],
    ("schedule_hrtimeout", "mode"): [12],
    ("schedule_hrtimeout_range", "mode"): [12],
    # just past the last word of the 128-bit Bitmap the valid arguments are made with
    ("set_bit", "nr"): [128],
    ("clear_bit", "nr"): [128],
    ("change_bit", "nr"): [128],
    ("test_bit", "nr"): [128],
    ("test_and_set_bit", "nr"): [128],
    ("test_and_clear_bit", "nr"): [128],
    ("test_and_change_bit", "nr"): [128],
    ("find_first_bit", "size"): [129],
    ("find_next_bit", "size"): [129],
    ("find_first_zero_bit", "size"): [129],
    ("find_next_zero_bit", "size"): [129],
    ("find_last_bit", "size"): [129],
    ("bitmap_zero", "nbits"): [129],
    ("bitmap_weight", "nbits"): [129],
}


def _holder_args(member: str) -> Callable[[], dict[str, object]]:
    def make() -> dict[str, object]:
        h = Holder()
        return {
            "ptr": getattr(h, member),
            "timer": h.timer,
            "tasklet": h.tasklet,
            "kind": Holder,
            "member": member,
        }

    return make


#: Functions whose arguments must agree with each other: (parameter -> value) builders.
FUNCTION_ARGS: dict[str, Callable[[], dict[str, object]]] = {
    "container_of": _holder_args("work"),
    "from_timer": _holder_args("timer"),
    "timer_container_of": _holder_args("timer"),
    "from_tasklet": _holder_args("tasklet"),
}

#: Busy-waits on the wall clock, with their units per second: a valid but huge value takes
#: that long, so property tests keep their values small.
BUSY_WAIT_UNITS: dict[tuple[str, str], int] = {
    ("mdelay", "ms"): 1_000,
    ("udelay", "us"): 1_000_000,
    ("ndelay", "ns"): 1_000_000_000,
}


# -- the API ---------------------------------------------------------------------------------


def _entry(spec: object, p: Param) -> TypeEntry:
    if isinstance(spec, CallableSpec):
        return TypeEntry(
            valid=lambda q: _callback(spec.nargs, spec.kind),
            junk=lambda q: _callable_junk(spec),
            accepts=callable,
        )
    if isinstance(spec, LiteralSpec):
        return TypeEntry(
            valid=lambda q: spec.values[0],
            junk=lambda q: [v for v in [None, 1, object(), [], "x"] if v not in spec.values],
            accepts=lambda v: v in spec.values,
        )
    try:
        return TYPES[spec]
    except (KeyError, TypeError):
        raise UnknownAnnotation(
            f"apiargs.TYPES has no entry for {p.annotation!r} (parameter {p.name!r} of "
            f"{p.func}()): add the type to the table in tests/apiargs.py, with a valid value "
            "and its junk"
        ) from None


def valid_value(p: Param) -> object:
    """A valid value for parameter *p* (inside a running kernel)."""
    override = VALID_OVERRIDES.get((p.func, p.name))
    if override is not None:
        return override()
    spec = p.spec
    if isinstance(spec, UnionSpec):
        if None in spec.members:
            return None
        spec = spec.members[0]
    return _entry(spec, p).valid(p)


def junk_for(annotation: object, param: Param | None = None) -> list[object]:
    """
    Values that are not valid for *annotation* (fresh objects on every call); with *param*,
    also the junk that parameter's name or function adds (an out-of-range cpu...).
    """
    p = param or Param(
        "?", "?", inspect.Parameter.POSITIONAL_OR_KEYWORD, True, annotation, normalise(annotation)
    )
    spec = normalise(annotation) if param is None else p.spec
    if not isinstance(spec, UnionSpec):
        return _entry(spec, p).junk(p)
    members = [m for m in spec.members if m is not None]
    optional = len(members) < len(spec.members)
    entries = [_entry(m, p) for m in members]
    out: list[object] = []
    seen: set[str] = set()
    for entry in entries:
        for value in entry.junk(p):
            if optional and value is None:
                continue
            if any(other.accepts(value) for other in entries if other is not entry):
                continue
            label = describe(value)
            if label not in seen:
                seen.add(label)
                out.append(value)
    return out


def well_typed(param: Param, value: object) -> bool:
    """Whether *value* is of the type *param* is annotated with (valid or not)."""
    spec = param.spec
    members = spec.members if isinstance(spec, UnionSpec) else (spec,)
    return any(value is None if m is None else _entry(m, param).accepts(value) for m in members)


def valid_args(fn: Any) -> tuple[list[object], dict[str, object]]:
    """
    Valid arguments for every required parameter of *fn* (a public function, class or Kernel
    method), as ``(args, kwargs)``: fresh objects on every call. Call it inside a running
    kernel.
    """
    params = params_of(fn)
    given = FUNCTION_ARGS.get(params[0].func if params else "", dict)()
    args: list[object] = []
    kwargs: dict[str, object] = {}
    for p in params:
        if not p.required:
            continue
        value = given[p.name] if p.name in given else valid_value(p)
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    return args, kwargs


def call_args(fn: Any, param: Param, value: object) -> tuple[list[object], dict[str, object]]:
    """:func:`valid_args` of *fn* with *value* for *param* instead (after the others, for a
    ``*args`` parameter)."""
    args, kwargs = valid_args(fn)
    if param.kind is inspect.Parameter.VAR_POSITIONAL:
        args.append(value)
    elif param.required and param.kind is not inspect.Parameter.KEYWORD_ONLY:
        positional = [
            p for p in params_of(fn) if p.required and p.kind is not inspect.Parameter.KEYWORD_ONLY
        ]
        args[positional.index(param)] = value
    else:
        kwargs[param.name] = value
    return args, kwargs


def describe(value: object) -> str:
    """A short label for a junk value, for reports."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if abs(value) >= 2**32 and bin(abs(value)).count("1") == 1:
            return f"{'-' if value < 0 else ''}2**{abs(value).bit_length() - 1}"
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, type):
        return f"the class {value.__name__}"
    if inspect.isfunction(value):
        prefix = "async def " if inspect.iscoroutinefunction(value) else "def "
        return f"{prefix}{value.__name__}{inspect.signature(value)}"
    if type(value) is object:
        return "object()"
    if type(value).__module__.startswith("kdefer_async"):
        return f"{type(value).__name__}() {value!r}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
