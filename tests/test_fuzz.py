"""Junk arguments for every public API: rejected cleanly, or accepted harmlessly.

Every callable name of ``kdefer_async.__all__`` (functions, sleeping functions, class
constructors) and every public method of ``Kernel`` is called, one parameter at a time, with
each junk value :func:`apiargs.junk_for` lists for that parameter's annotation, the other
arguments valid (:func:`apiargs.valid_args`). A new public name is covered with no edit here.

A call passes when it returns, or raises ``TypeError``/``ValueError``/``OverflowError``/
``KernelBug`` with a message (for ``TypeError``/``ValueError`` one that names the function, as
``name() expects ... for 'param', got ...``); and

* it never hangs (sleeping APIs are awaited with a bound; plain ones get a wall-clock alarm),
  never panics the kernel, emits no Python warning;
* when it raised, it changed nothing: a snapshot of the kernel (the caller's preempt count,
  interrupts, state and signals; each CPU's pending softirqs, tasklet lists, armed timers and
  pending interrupts; the log, oopses, taint, irq actions, softirq vectors, modules, kmalloc'd
  objects, kthreads, workqueues' queued and inactive items and counters, RCU callbacks) and
  of the valid arguments it was handed is the same before and after (a ``KernelBug`` may log
  its report and taint the kernel: that is what it is for);
* the kernel still runs work afterwards: a work item, a tasklet and a timer all run.

The calls run in the init task of ``async with Kernel()``; many share one boot. A call that
returned may have changed the kernel legitimately, so the next one gets a new kernel; a call
that raised must have changed nothing, so the next one runs in the same kernel.

Every problem is collected, and the test fails once at the end with one line per problem.
A Hypothesis property adds what a fixed list would not find: any int (up to 2**70 either way)
and any text, for every int and str parameter.
"""

from __future__ import annotations

import inspect
import re
import signal
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import anyio
import apiargs
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

import kdefer_async
from kdefer_async import (
    TASK_RUNNING,
    Kernel,
    KernelBug,
    KernelPanic,
    ModuleLoadError,
    SpinLock,
    Tasklet,
    TimerList,
    WaitQueueHead,
    Work,
    current,
    flush_work,
    kmalloc,
    mod_timer,
    msleep,
    pr_info,
    queue_work,
    raise_softirq,
    request_irq,
    spin_lock,
    system_percpu_wq,
    tasklet_schedule,
    wait_event_timeout,
    wake_up,
)
from kdefer_async._vtime import backend_params

pytestmark = pytest.mark.anyio

#: Public callables not fuzzed here, each with its reason.
EXCLUDED: dict[str, str] = {
    "Kernel.panic": "its purpose is to stop the kernel: every call, junk or not, ends it",
    "run": (
        "it starts an event loop of its own, which cannot run inside the test's loop: "
        "test_run_rejects_junk fuzzes it outside any loop"
    ),
}

#: What a rejected call may raise.
ALLOWED = (TypeError, ValueError, OverflowError, KernelBug)
#: What these raise for arguments of the right type, as their docstrings say: a module name
#: nobody loaded is ENOENT, a timer embedded in nothing is a LookupError. Allowed (with what
#: they log) for the property test's ints and text, and for junk of the right type.
DOCUMENTED_ERRORS: dict[str, tuple[type[BaseException], ...]] = {
    "Kernel.insmod": (ModuleLoadError,),
    "Kernel.rmmod": (ModuleLoadError,),
    "container_of": (LookupError,),
    "from_timer": (LookupError,),
    "timer_container_of": (LookupError,),
    "from_tasklet": (LookupError,),
}

#: The model's largest HZ: a jiffy is 0.1 ms, so valid delays and timeouts of a jiffy, and the
#: timer of the check that the kernel still runs work, cost next to nothing on a real clock.
HZ = 10_000
#: How long a plain call may run before it counts as hung (seconds of wall time).
SYNC_LIMIT = 1.0
#: How long an awaited call may sleep before it counts as hung. Virtual time is free, so a
#: virtual-time run waits a minute (junk accepted by mistake sleeps a second at most, as
#: ``ssleep(True)``; the hung-task detector would speak at two minutes). A real clock cannot
#: tell a long sleep from a hang in the time a test has: there the call is cut short.
ASYNC_LIMIT_VIRTUAL = 60.0
ASYNC_LIMIT_REAL = 0.02
#: The property test judges how a call starts, never how long it sleeps: cut sooner.
PROPERTY_ASYNC_LIMIT_REAL = 0.005
#: Wall time an awaited call may take: more, and it keeps the event loop from running.
AWAIT_WALL_LIMIT = 5.0
#: How long the check that the kernel still runs work waits (it needs a few jiffies).
ALIVE_LIMIT = 2.0
#: Timers the kernel arms for itself (hung-task detector, RCU grace periods, workqueue pools
#: and watchdog): they come and go as time passes, whatever the calls do.
BACKGROUND_TIMERS = frozenset(
    {"_KernelTimer", "_GpTimer", "_PoolTimer", "_MaydayTimer", "_WatchdogTimer"}
)


# -- cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One call: *target* with *value* for *param*, every other argument valid."""

    target: apiargs.Target
    param: apiargs.Param
    value: object

    def __str__(self) -> str:
        return f"{self.target.name}({self.param.name}={apiargs.describe(self.value)})"


@dataclass(frozen=True)
class Problem:
    """What went wrong in *case* (or, with *after*, in the kernel after it returned)."""

    case: Case | None
    what: str
    after: bool = False

    def __str__(self) -> str:
        if self.case is None:
            return f"at boot: {self.what}"
        return f"{'after ' if self.after else ''}{self.case}: {self.what}"

    @property
    def kind(self) -> tuple[str, str, str]:
        """The callable, the parameter and what happened, whatever the value."""
        if self.case is None:
            return ("", "", self.what)
        return (self.case.target.name, self.case.param.name, self.what.split(":")[0])


def fuzzed_targets() -> list[apiargs.Target]:
    """Every public callable but the excluded ones."""
    return [t for t in apiargs.public_targets() if t.name not in EXCLUDED]


def junk_cases() -> list[Case]:
    """Every (callable, parameter, junk value), in the order of ``__all__``."""
    cases = []
    for target in fuzzed_targets():
        for param in apiargs.params_of(target.obj):
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                continue
            cases += [Case(target, param, v) for v in apiargs.junk_for(param.annotation, param)]
    return cases


# -- hang guard ------------------------------------------------------------------------------


class CallHung(BaseException):
    """A call ran past its wall-clock allowance (a BaseException: nothing may swallow it)."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise CallHung("no return in time")


@contextmanager
def wall_clock_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CallHung` in the code running after *seconds* of wall time (where
    ``SIGALRM`` exists and this is the main thread; elsewhere no limit)."""
    if (
        not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- state snapshot --------------------------------------------------------------------------

_PRIMITIVE = (bool, int, str, bytes, type(None))


def _fields(obj: object) -> list[str]:
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    names += list(getattr(obj, "__dict__", {}))
    return [n for n in dict.fromkeys(names) if n not in ("__weakref__", "__dict__")]


def freeze(value: object, depth: int = 2) -> object:
    """
    A comparable picture of *value*: primitives as themselves, containers by the identity of
    their items, and the library's objects (not the Kernel or a CPU, pictured elsewhere)
    attribute by attribute, *depth* levels down.
    """
    if isinstance(value, _PRIMITIVE):
        return value
    if isinstance(value, float):
        return repr(value)  # NaN != NaN
    if isinstance(value, (list, tuple, deque)):
        return (type(value).__name__, tuple(freeze(x, 0) for x in value))
    if isinstance(value, dict):
        return ("dict", tuple((freeze(k, 0), freeze(v, 0)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(id(x) for x in value))
    module = type(value).__module__ or ""
    if (
        depth > 0
        and module.startswith("kdefer_async")
        and not isinstance(value, Kernel)
        and type(value).__name__ != "CPU"
    ):
        return (
            type(value).__name__,
            tuple((n, freeze(getattr(value, n, "<unset>"), depth - 1)) for n in _fields(value)),
        )
    return ("id", id(value))


def _ids(items: Any) -> tuple[int, ...]:
    return tuple(id(x) for x in items)


def _timers(base: Any) -> tuple[tuple[int, tuple[int, ...]], ...]:
    out = []
    for key, bucket in sorted(base.buckets.items()):
        ids = tuple(
            id(t)
            for t in bucket
            if not getattr(t, "_kdefer_internal", False)
            and type(t).__name__ not in BACKGROUND_TIMERS
        )
        if ids:
            out.append((key, ids))
    return tuple(out)


def _pools(st: Any) -> list[Any]:
    pools = [p for row in st.cpu_pools + st.bh_pools for p in row] + list(st.unbound_pools)
    return [p for p in pools if p is not None]


def _workqueues(k: Kernel) -> object:
    st = getattr(k, "_wq_state", None)
    if st is None:
        return ((), (), False)  # made on first use, like the system workqueues: as if empty
    # a system workqueue is made on first use: one that has never been used is no change
    unused = {
        id(wq) for wq in st.system.values() if not wq._color.n and all(p is None for p in wq._pwqs)
    }
    wqs = tuple(
        (
            id(wq),
            wq._name,
            wq._flags,
            wq._max_active,
            wq._draining,
            wq._destroyed,
            wq._frozen,
            wq._color.n,
            len(wq._old_colors),
            tuple(
                None if p is None else (p.nr_active, _ids(p.inactive), p.completed)
                for p in wq._pwqs
            ),
            tuple(getattr(wq._stats, n) for n in _fields(wq._stats)),
        )
        for wq in st.workqueues
        if id(wq) not in unused
    )
    worklists = tuple(sorted((p.id, _ids(p.worklist)) for p in _pools(st) if p.worklist))
    return (wqs, worklists, st.frozen)


def _rcu_callbacks(k: Kernel) -> object:
    st = getattr(k, "_rcu_state", None)
    if st is None:
        return tuple(() for _ in k.cpus)  # made on first use: as if empty
    return tuple(tuple(id(head) for _gp, head, _fn in q) for q in st.cbs)


def _module_definitions() -> object:
    from kdefer_async._module import _scripts

    return tuple(
        (name, id(m.init), id(m.exit), tuple(m.author), m.license, m.description, tuple(m.params))
        for name, m in _scripts.items()
    )


#: Each part of the snapshot: name -> reader. A KernelBug may change the ``LOGGED`` parts.
PARTS: dict[str, Callable[[Kernel], object]] = {
    "caller context": lambda k: (
        (t := current()).preempt_count,
        t.irqs_off,
        t.state,
        t.sigpending,
        t.allowed_signals,
        t.should_stop,
        t.cpu,
    ),
    "pending softirqs": lambda k: tuple(c.pending for c in k.cpus),
    "tasklet lists": lambda k: tuple((_ids(c.tasklet_vec), _ids(c.tasklet_hi_vec)) for c in k.cpus),
    "armed timers": lambda k: tuple((_timers(c.std_base), _timers(c.def_base)) for c in k.cpus),
    "pending hardirqs": lambda k: tuple(tuple(c.pending_irqs) for c in k.cpus),
    "dmesg": lambda k: len(k._log),
    "oopses": lambda k: len(k.oopses),
    "taint": lambda k: tuple(sorted(k._taint)),
    "warned once": lambda k: len(k._warned_once),
    "irq actions": lambda k: tuple(
        (irq, tuple((id(a.handler), a.flags, a.name, id(a.dev)) for a in actions))
        for irq, actions in sorted(k.irq_actions.items())
    ),
    "irq lines": lambda k: (
        tuple(sorted(k.irq_names.items())),
        tuple(sorted(k.irq_count.items())),
        tuple(sorted(k.irqs_unhandled.items())),
        tuple(sorted(k.irqs_disabled_lines)),
    ),
    "softirq vectors": lambda k: _ids(k.softirq_vec),
    "modules": lambda k: k.lsmod(),
    "module definitions": lambda k: _module_definitions(),
    "kmalloc": lambda k: (frozenset(k._slab), frozenset(k._freed)),
    "kthreads": lambda k: (
        tuple(sorted(k._tasks)),
        _ids(k._kthread_starts),
        frozenset(_ids(k._kthread_not_run)),
    ),
    "hung-task watch": lambda k: len(k._hung),
    "workqueues": _workqueues,
    "rcu callbacks": _rcu_callbacks,
}
LOGGED = frozenset({"dmesg", "taint", "warned once"})


def _read(read: Callable[[Kernel], object], k: Kernel) -> object:
    """One part of the snapshot; if the kernel's internals moved, say so (a test checks)."""
    try:
        return read(k)
    except (AttributeError, KeyError, TypeError) as exc:
        return f"<unreadable: {exc!r}>"


def snapshot(k: Kernel, objects: list[object]) -> dict[str, object]:
    """The kernel's observable state, and that of *objects* (the valid arguments of a call)."""
    out = {name: _read(read, k) for name, read in PARTS.items()}
    for i, obj in enumerate(objects):
        out[f"argument {i + 1} ({type(obj).__name__})"] = freeze(obj)
    return out


def changes(
    k: Kernel, before: dict[str, object], after: dict[str, object], *, logged_ok: bool
) -> list[str]:
    """What differs between two snapshots (the new dmesg lines quoted)."""
    out = []
    for name in before:
        if before[name] == after[name] or (logged_ok and name in LOGGED):
            continue
        if name == "dmesg":
            n = int(after[name]) - int(before[name])  # type: ignore[call-overload]
            lines = "; ".join(line for line in k.dmesg()[-n:][:2])
            out.append(f"logged {n} line{'s' if n != 1 else ''} ({lines[:160]})")
        else:
            out.append(name)
    return out


# -- one call --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a call did: a problem (or None), and whether the kernel may have changed."""

    problem: str | None
    dirty: bool


@dataclass
class Mode:
    """How calls are judged: the fixed junk list, or the property test's well-typed values."""

    #: How long an awaited call may sleep.
    async_limit: float
    #: Whether a call still sleeping then is a problem (on virtual time), or is cut short.
    judge_hangs: bool
    #: The property test's values are well-typed: documented errors are fine, and the kernel
    #: is checked once at the end rather than after every boot.
    property_test: bool = False


def _names_function(target: apiargs.Target, message: str) -> bool:
    return re.search(rf"\b{re.escape(target.short)}\(", message) is not None


def judge(target: apiargs.Target, exc: BaseException, documented_ok: bool) -> str | None:
    """What is wrong with *exc* as the outcome of a rejected call (None: nothing)."""
    allowed = ALLOWED + (DOCUMENTED_ERRORS.get(target.name, ()) if documented_ok else ())
    kind = type(exc).__name__
    if not isinstance(exc, allowed):
        return f"raised {kind}: {str(exc)[:160]}"
    message = str(exc)
    if not message.strip():
        return f"raised {kind} with an empty message"
    if isinstance(exc, (TypeError, ValueError)) and not _names_function(target, message):
        return f"raised {kind} whose message does not name {target.short}(): {message[:160]}"
    return None


async def run_case(k: Kernel, case: Case, mode: Mode) -> Outcome:
    """Call *case* in *k*'s init task and judge what it did."""
    fn = case.target.bind(k)
    args, kwargs = apiargs.call_args(case.target.obj, case.param, case.value)
    objects = [a for a in [*args, *kwargs.values()] if a is not case.value]
    before = snapshot(k, objects)
    exc: BaseException | None = None
    result: object = None
    try:
        with wall_clock_limit(SYNC_LIMIT):
            result = fn(*args, **kwargs)
    except CallHung:
        return Outcome(f"did not return within {SYNC_LIMIT} s of wall time", True)
    except Exception as e:
        exc = e
    if exc is None and inspect.isawaitable(result):
        try:
            with (
                wall_clock_limit(AWAIT_WALL_LIMIT),
                anyio.move_on_after(mode.async_limit) as scope,
            ):
                await result
        except CallHung:
            return Outcome("blocked the event loop", True)
        except Exception as e:
            exc = e
        else:
            if scope.cancelled_caught:
                if not mode.judge_hangs:
                    return Outcome(None, True)  # cut short
                return Outcome(f"still sleeping after {mode.async_limit:g} s", True)
    if _panic(k) is not None:
        return Outcome(f"panicked the kernel: {_panic(k)}", True)
    if exc is None:
        return Outcome(None, True)
    problems = []
    documented_ok = mode.property_test or apiargs.well_typed(case.param, case.value)
    verdict = judge(case.target, exc, documented_ok)
    if verdict:
        problems.append(verdict)
    # a KernelBug is reported in dmesg before it is raised; so are the documented errors
    documented = isinstance(exc, DOCUMENTED_ERRORS.get(case.target.name, ())) and documented_ok
    logged_ok = isinstance(exc, KernelBug) or documented
    changed = changes(k, before, snapshot(k, objects), logged_ok=logged_ok)
    if changed:
        problems.append(f"raised {type(exc).__name__} but changed: {', '.join(changed)}")
    return Outcome("; ".join(problems) or None, bool(changed))


# -- the kernel still works ------------------------------------------------------------------


def _panic(k: Kernel) -> KernelPanic | None:
    """The kernel's panic, if it panicked (read afresh: calls in between may change it)."""
    return k._panic


def reset_caller(k: Kernel) -> None:
    """
    Give the init task its boot-time context back. A call that returned may legitimately have
    left its caller holding a lock, with interrupts off or a signal pending: the check after
    it is about the kernel's machinery, not about the caller.
    """
    task = current()
    task.preempt_count = 0
    task.irqs_off = 0
    task.state = TASK_RUNNING
    task.sigpending = 0


async def check_alive(k: Kernel, limit: float) -> str | None:
    """None if a work item, a tasklet and a timer all still run; else what went wrong."""
    if _panic(k) is not None:
        return f"the kernel panicked: {_panic(k)}"
    reset_caller(k)
    ran: set[str] = set()
    head = WaitQueueHead()

    def mark(what: str) -> None:
        ran.add(what)
        wake_up(head)

    work = Work(lambda _w: mark("a work item"))
    tasklet = Tasklet(lambda _t: mark("a tasklet"))
    timer = TimerList(lambda _t: mark("a timer"))
    expected = {"a work item", "a tasklet", "a timer"}
    try:
        with anyio.move_on_after(limit):
            queue_work(system_percpu_wq, work)
            tasklet_schedule(tasklet)
            mod_timer(timer, k.jiffies + 1)
            await flush_work(work)
            await wait_event_timeout(head, lambda: ran >= expected, int(limit * k.hz))
    except Exception as exc:
        return f"the kernel no longer runs work: {type(exc).__name__}: {exc}"
    if _panic(k) is not None:
        return f"the kernel panicked: {_panic(k)}"
    if ran != expected:
        return f"the kernel no longer runs work: {', '.join(sorted(expected - ran))} never ran"
    return None


# -- many calls, few boots -------------------------------------------------------------------


async def fuzz(cases: list[Case], mode: Mode) -> list[Problem]:
    """Run *cases* in as few kernels as the calls allow; return every problem."""
    problems: list[Problem] = []
    queue = deque(cases)
    unraisable: list[str] = []
    old_hook = sys.unraisablehook

    def hook(info: Any) -> None:
        unraisable.append(f"an unraisable {type(info.exc_value).__name__}: {info.exc_value}")

    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            while queue:
                await _one_boot(queue, mode, problems, unraisable, seen)
    finally:
        sys.unraisablehook = old_hook
    return problems


async def _one_boot(
    queue: deque[Case],
    mode: Mode,
    problems: list[Problem],
    unraisable: list[str],
    seen: list[warnings.WarningMessage],
) -> None:
    """Boot a kernel and run cases from *queue* in it until one may have changed it."""
    last: Case | None = None
    panicked = False
    oopses = 0
    try:
        async with Kernel(nr_cpus=apiargs.FUZZ_CPUS, hz=HZ, shutdown_timeout=1.0) as k:
            while queue:
                last = queue.popleft()
                del seen[:], unraisable[:]
                oopses = len(k.oopses)
                outcome = await run_case(k, last, mode)
                emitted = [f"{w.category.__name__}: {w.message}" for w in seen] + unraisable
                found = [outcome.problem] if outcome.problem else []
                found += [f"emitted {w}" for w in emitted]
                if found:
                    problems.append(Problem(last, "; ".join(found)))
                if outcome.dirty or emitted:
                    break
            # the property test checks once, at the end: its calls are many and well-typed
            if _panic(k) is None and (not mode.property_test or not queue):
                trouble = await check_alive(k, ALIVE_LIMIT)
                if trouble:
                    problems.append(Problem(last, trouble, after=True))
            if len(k.oopses) > oopses and _panic(k) is None:
                # what it was handed failed later, in the kernel: it should have been refused
                oops = k.oopses[oopses]
                what = f"the kernel oopsed ({oops.where}: {oops.exception!r})"
                problems.append(Problem(last, what[:200], after=True))
            panicked = _panic(k) is not None
            reset_caller(k)
    except Exception as exc:
        if not (panicked and isinstance(exc, KernelPanic)):  # reported already
            what = f"leaving the kernel raised {type(exc).__name__}: {exc}"
            problems.append(Problem(last, what, after=True))


# -- the tests -------------------------------------------------------------------------------


def _report(problems: list[Problem] | list[str]) -> str:
    return f"{len(problems)} problem(s):\n" + "\n".join(map(str, problems))


async def test_junk_is_rejected_or_harmless(virtual: bool) -> None:
    """Every junk argument of every public API: rejected cleanly or harmless; kernel intact."""
    mode = Mode(ASYNC_LIMIT_VIRTUAL if virtual else ASYNC_LIMIT_REAL, judge_hangs=virtual)
    problems = await fuzz(junk_cases(), mode)
    assert not problems, _report(problems)


def _unknown_annotation(target: apiargs.Target) -> str | None:
    """The message of apiargs' UnknownAnnotation for *target*, if one of its types is new."""
    try:
        apiargs.valid_args(target.obj)
        for param in apiargs.params_of(target.obj):
            apiargs.junk_for(param.annotation, param)
    except apiargs.UnknownAnnotation as exc:
        return str(exc)
    return None


def test_every_parameter_has_a_known_type() -> None:
    """apiargs knows every annotation of the public API: a valid value and junk for each."""

    async def main() -> list[str]:
        return [m for m in map(_unknown_annotation, apiargs.public_targets()) if m is not None]

    assert kdefer_async.run(main, nr_cpus=apiargs.FUZZ_CPUS) == []


def test_every_public_name_is_fuzzed() -> None:
    """Every public callable is a fuzz target unless excluded, and every exclusion exists."""
    names = {t.name for t in apiargs.public_targets()}
    assert set(EXCLUDED) <= names
    fuzzed = {c.target.name for c in junk_cases()}
    # callables without parameters, or whose only parameters accept anything, have no junk
    no_junk = {
        t.name
        for t in apiargs.public_targets()
        if not any(
            apiargs.junk_for(p.annotation, p)
            for p in apiargs.params_of(t.obj)
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        )
    }
    assert names - set(EXCLUDED) - no_junk == fuzzed
    for name in ("queue_work", "Kernel.raise_irq", "Tasklet", "msleep", "Kernel.insmod"):
        assert name in fuzzed


async def test_snapshot_sees_every_kind_of_change() -> None:
    """The snapshot the fuzz compares notices each kind of change a call could leave behind,
    and time passing (ticks, sleeps that ended) is no change."""
    async with Kernel(nr_cpus=apiargs.FUZZ_CPUS, hz=HZ) as k:
        unreadable = {n: v for n, v in snapshot(k, []).items() if str(v).startswith("<unread")}
        assert unreadable == {}
        quiet = snapshot(k, [])
        await msleep(2)
        assert changes(k, quiet, snapshot(k, []), logged_ok=False) == []

        wq = kdefer_async.alloc_workqueue("snap", 0, 1)
        assert wq is not None
        queue_work(wq, Work(lambda _w: None))  # max_active 1: the next item on wq waits
        lock = SpinLock()
        timer = TimerList(lambda _t: None)
        tasklet = Tasklet(lambda _t: None)
        kdefer_async.tasklet_disable_nosync(tasklet)  # so it stays on the list

        async def thread(_data: object) -> int:
            return 0

        def irq_while_irqs_off() -> None:
            kdefer_async.local_irq_save()
            k.raise_irq(5)

        action: list[tuple[str, Callable[[], object]]] = [
            # (request_irq before the locks and irqs-off sections: it may sleep)
            ("irq actions", lambda: request_irq(5, lambda i, d: 1, 0, "snap", None)),
            ("caller context", lambda: spin_lock(lock)),
            ("pending softirqs", lambda: raise_softirq(kdefer_async.NET_TX_SOFTIRQ)),
            ("tasklet lists", lambda: tasklet_schedule(tasklet)),
            ("armed timers", lambda: mod_timer(timer, k.jiffies + 100)),
            ("dmesg", lambda: pr_info("snapshot\n")),
            ("taint", lambda: kdefer_async.WARN_ON(True)),
            ("pending hardirqs", irq_while_irqs_off),
            ("softirq vectors", lambda: kdefer_async.open_softirq(4, lambda: None)),
            ("module definitions", lambda: kdefer_async.MODULE_AUTHOR("snap")),
            ("kmalloc", lambda: kmalloc(8, kdefer_async.GFP_ATOMIC)),
            ("kthreads", lambda: kdefer_async.kthread_create(thread, None, "snap")),
            ("workqueues", lambda: queue_work(wq, Work(lambda _w: None))),
            ("rcu callbacks", lambda: kdefer_async.call_rcu(object(), lambda _h: None)),
            ("argument 1 (TimerList)", lambda: mod_timer(timer, k.jiffies + 200)),
        ]
        for part, act in action:
            before = snapshot(k, [timer])
            act()
            changed = changes(k, before, snapshot(k, [timer]), logged_ok=False)
            assert any(
                c.startswith(part) or (c.startswith("logged") and part == "dmesg") for c in changed
            ), (part, changed)
        kdefer_async.local_irq_restore(0)
        kdefer_async.spin_unlock(lock)
        kdefer_async.tasklet_enable(tasklet)


def test_run_rejects_junk() -> None:
    """run() (which starts its own event loop) rejects junk before booting anything."""
    target = apiargs.target_of(kdefer_async.run)
    problems = []
    for param in apiargs.params_of(kdefer_async.run):
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        for value in apiargs.junk_for(param.annotation, param):
            args, kwargs = apiargs.call_args(kdefer_async.run, param, value)
            try:
                kdefer_async.run(*args, **kwargs)  # type: ignore[arg-type]
            except Exception as exc:
                # run() hands its kernel options to Kernel(): a message naming Kernel() is right
                verdict = judge(target, exc, documented_ok=False)
                if verdict and "Kernel(" in str(exc):
                    verdict = None
                if verdict:
                    problems.append(f"run({param.name}={apiargs.describe(value)}): {verdict}")
    assert not problems, _report(problems)


# -- Hypothesis: any int, any text -----------------------------------------------------------


def _typed_params(kind: type) -> list[tuple[apiargs.Target, apiargs.Param]]:
    """Every parameter annotated *kind* (or *kind* | None), of every fuzzed callable."""
    out = []
    for target in fuzzed_targets():
        for p in apiargs.params_of(target.obj):
            spec = p.spec
            members = spec.members if isinstance(spec, apiargs.UnionSpec) else (spec,)
            if kind in members and all(m in (kind, None) for m in members):
                out.append((target, p))
    return out


#: printf conversions, which text drawn at random seldom spells.
FORMATS = ["%s", "%d", "%u", "%lu", "%x", "%*d", "%.*s", "%p", "%ps", "%pS", "%c", "%%", "%"]
#: Any text, and text around a printf conversion.
TEXT = st.one_of(
    st.text(max_size=12),
    st.builds(
        lambda a, f, b: a + f + b,
        st.text(max_size=3),
        st.sampled_from(FORMATS),
        st.text(alphabet="%sdlux*.-0123456789 ", max_size=4),
    ),
)


def property_cases(number: int, text: str) -> list[Case]:
    """*number* for every int parameter, *text* for every str one."""
    cases = []
    for target, p in _typed_params(int):
        units = apiargs.BUSY_WAIT_UNITS.get((target.name, p.name))
        if units is not None and number > units // 100:
            continue  # a busy-wait of more than 10 ms of wall time: valid, and just slow
        cases.append(Case(target, p, number))
    cases += [Case(target, p, text) for target, p in _typed_params(str)]
    return cases


def test_any_int_and_any_text(backend_name: str) -> None:
    """Any int (|n| <= 2**70) and any text in every int/str parameter: returns, or raises an
    allowed exception with a proper message and no state change."""
    found: dict[tuple[str, str, str], list[Problem]] = {}
    name, _ = backend_params(backend_name)
    virtual = backend_name.endswith("+virtual")
    mode = Mode(
        ASYNC_LIMIT_VIRTUAL if virtual else PROPERTY_ASYNC_LIMIT_REAL,
        judge_hangs=False,
        property_test=True,
    )

    @settings(
        max_examples=6,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(number=st.integers(-(2**70), 2**70), text=TEXT)
    def example(number: int, text: str) -> None:
        problems = anyio.run(
            fuzz,
            property_cases(number, text),
            mode,
            backend=name,
            backend_options=backend_params(backend_name)[1],
        )
        for problem in problems:
            found.setdefault(problem.kind, []).append(problem)

    example()
    # one line per callable, parameter and kind of problem, with the first value that showed it
    lines = [
        f"{same[0]}" + (f" (and {len(same) - 1} more values)" if len(same) > 1 else "")
        for same in found.values()
    ]
    assert not lines, _report(lines)
