"""The ``might_sleep()`` check that every ``async def`` API runs first, at call time.

Kernel invariant modelled: anything that can block starts with ``might_sleep()``, which reports
``BUG: sleeping function called from invalid context`` when called in atomic context (a held
spinlock, BH disabled, a handler, IRQs off), rate-limited to one report per HZ jiffies.

An ``async def`` in Python runs nothing until it is awaited, so a sleeping API called from a
plain handler (which cannot await) would silently create a coroutine that never runs. The
:func:`sleeping` decorator closes that gap: the check runs *when the function is called*, before
the coroutine object is created. The decorated object still reports itself as a coroutine
function (``inspect.iscoroutinefunction`` is true), so the sync/async contract is unchanged.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from ._consts import HARDIRQ_MASK
from ._context import TaskStruct, _cur, _current, no_kernel_error, own_task
from ._exceptions import KernelBug
from ._printk import caller_location, report_lines

__all__ = [
    "atomic_sleep_bug",
    "might_sleep",
    "might_sleep_report",
    "sleeping",
    "sleeping_checked",
]

P = ParamSpec("P")
R = TypeVar("R")


def might_sleep_report(task: TaskStruct) -> bool:
    """Report a sleep in atomic context (rate-limited); True if *task* is in atomic context."""
    pc = task.preempt_count
    irqs = bool(task.irqs_off or pc & HARDIRQ_MASK)
    if not pc and not irqs and task.pid != 0:
        return False
    k = task.kernel
    j = k.get_jiffies()
    if k._might_sleep_prev and j - k._might_sleep_prev < k.hz:
        return True
    k._might_sleep_prev = j
    file, line, _func = caller_location()
    report_lines(
        task,
        [
            f"BUG: sleeping function called from invalid context at {file}:{line}",
            f"in_atomic(): {int(pc != 0)}, irqs_disabled(): {int(irqs)}, non_block: 0, "
            f"pid: {task.pid}, name: {task.comm}",
            f"preempt_count: {pc:x}, expected: 0",
            "RCU nest depth: 0, expected: 0",
        ],
        level=3,
        taint="W",
    )
    return True


def atomic_sleep_bug(task: TaskStruct, what: str) -> None:
    """Report, then raise :class:`KernelBug` unless the kernel was built to only report."""
    if might_sleep_report(task) and task.kernel.sleep_in_atomic == "raise":
        raise KernelBug(
            f"{what}() called in atomic context (preempt_count {task.preempt_count:#x}, "
            f"{task.comm}/{task.pid}): sleeping is illegal here; see dmesg"
        )


def might_sleep() -> None:
    """
    Report ``BUG: sleeping function called from invalid context`` if in atomic context.

    Like the kernel's, it only reports (once per second at most) and returns.

    Context:
        Any context.

    .. versionadded:: 0.1
    """
    might_sleep_report(_cur())


class _SleepingFunction:
    # No docstring on purpose: instances take the wrapped function's __doc__.

    def __init__(
        self,
        fn: Callable[..., Coroutine[Any, Any, Any]],
        check: Callable[..., object] | None = None,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.__code__ = fn.__code__
        self.__defaults__ = fn.__defaults__
        self.__kwdefaults__ = fn.__kwdefaults__
        self._fn = fn
        self._name = fn.__name__
        self._check = check

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        if self._check is not None:
            # the arguments first: a rejected call reports nothing and changes nothing
            self._check(*args, **kwargs)
        task = _current.get()
        if task is None:
            raise no_kernel_error(f"{self._name}()")  # (says so in a foreign thread)
        if task.owner is not task.kernel._task_ident():
            task = own_task(task)
        if task.preempt_count or task.irqs_off or task.pid == 0:
            atomic_sleep_bug(task, self._name)
        return self._fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<sleeping function {self._name}>"


def sleeping(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Mark *fn* as a sleeping API: ``might_sleep()`` runs when it is called, not awaited."""
    return cast("Callable[P, Coroutine[Any, Any, R]]", _SleepingFunction(fn))


def sleeping_checked(
    check: Callable[..., object],
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """
    :func:`sleeping`, with *check* (called with the same arguments) run first, at call time:
    bad arguments are a ``TypeError``/``ValueError`` at the call, before the ``might_sleep()``
    check and before any coroutine exists.
    """

    def deco(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        return cast("Callable[P, Coroutine[Any, Any, R]]", _SleepingFunction(fn, _named(check, fn)))

    return deco


def _named(check: Callable[..., object], fn: Callable[..., object]) -> Callable[..., object]:
    """A copy of *check* that carries *fn*'s name, so that a call with missing or unexpected
    arguments reads as Python words it for *fn* itself: ``msleep() missing 1 required
    positional argument: 'ms'`` (not ``<lambda>()``)."""
    if not isinstance(check, types.FunctionType):
        return check
    named = types.FunctionType(
        check.__code__, check.__globals__, fn.__name__, check.__defaults__, check.__closure__
    )
    named.__kwdefaults__ = check.__kwdefaults__
    named.__qualname__ = fn.__qualname__
    return named
