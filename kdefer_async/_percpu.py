"""Per-CPU data: ``DEFINE_PER_CPU``, ``alloc_percpu``, ``this_cpu_*``, the CPU iterators.

Kernel invariants modelled (include/linux/percpu-defs.h, include/linux/cpumask.h,
lib/smp_processor_id.c):

* A per-CPU variable has one copy per possible CPU, made when the CPUs come up (``alloc_percpu``
  zero-fills each copy; here each copy is a fresh ``factory()``). Changing one CPU's copy changes
  no other.
* ``this_cpu_ptr()`` (and ``smp_processor_id()`` inside it) is only meaningful while the task
  cannot migrate: with ``CONFIG_DEBUG_PREEMPT`` (``Kernel(debug_preempt=True)``) a use in
  preemptible code is reported. ``get_cpu_var()`` disables preemption and ``put_cpu_var()``
  enables it again. The ``this_cpu_read/write/add/inc/dec`` operations are single instructions
  on x86 (a ``gs:``-relative access), safe in any context and never reported.
* Possible CPUs are online CPUs here: the model has no CPU hotplug.

A copy made from an ``int`` (``DEFINE_PER_CPU(int)``, ``DEFINE_PER_CPU(lambda: 0)``) is kept in a
:class:`PerCpuInt` holder, so that ``per_cpu(v, cpu).value += 1`` changes that CPU's copy, as
``per_cpu(v, cpu)++`` does in C; any other object is the copy itself.

Copies belong to one running kernel: a variable defined at import time (as ``DEFINE_PER_CPU`` is
used at file scope) gets fresh copies in each kernel that uses it, as static per-CPU data is fresh
at each boot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._check import bad_value, check_callback, check_instance, check_int
from ._consts import PREEMPT_OFFSET
from ._context import _cur

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = [
    "DEFINE_PER_CPU",
    "PerCpu",
    "PerCpuInt",
    "alloc_percpu",
    "cpu_online",
    "for_each_online_cpu",
    "for_each_possible_cpu",
    "free_percpu",
    "get_cpu_var",
    "num_possible_cpus",
    "per_cpu",
    "per_cpu_ptr",
    "put_cpu_var",
    "this_cpu_add",
    "this_cpu_dec",
    "this_cpu_inc",
    "this_cpu_ptr",
    "this_cpu_read",
    "this_cpu_write",
]


class PerCpuInt:
    """
    The holder of one CPU's copy of an integer per-CPU variable: read and write ``.value``.

    .. versionadded:: 0.2
    """

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<PerCpuInt {self.value}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PerCpuInt):
            return self.value == other.value
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the C object


class PerCpu:
    """
    A per-CPU variable (``DEFINE_PER_CPU`` / ``alloc_percpu``): one copy per possible CPU.

    Build it with :func:`DEFINE_PER_CPU` or :func:`alloc_percpu`; reach the copies with
    :func:`per_cpu`, :func:`this_cpu_ptr` and the ``this_cpu_*`` operations.

    .. versionadded:: 0.2
    """

    __slots__ = ("__weakref__", "_copies", "_factory", "_freed", "_kernel", "_name")

    def __init__(
        self, factory: Callable[[], Any], name: str = "percpu", *, _func: str = "PerCpu"
    ) -> None:
        check_callback(
            factory,
            _func,
            "factory",
            shape="factory()",
            nargs=0,
            kind="atomic",
            what="a per-CPU factory",
        )
        self._factory = factory  # I
        self._name = name  # I
        self._kernel: Kernel | None = None  # A: the kernel the copies belong to
        self._copies: list[Any] = []  # A: one per CPU of that kernel
        self._freed = False  # A: free_percpu() was called

    def __repr__(self) -> str:
        state = "freed" if self._freed else f"{len(self._copies)} copies"
        return f"<PerCpu {self._name} {state}>"


def _copy(factory: Callable[[], Any]) -> Any:
    value = factory()
    if type(value) is int:
        return PerCpuInt(value)
    return value


def _copies(var: PerCpu, kernel: Kernel, func: str) -> list[Any]:
    """*var*'s copies in *kernel*, made on first use there."""
    if var._kernel is kernel:
        return var._copies
    if var._freed:
        raise _freed(var, func)
    var._copies = [_copy(var._factory) for _ in range(kernel.nr_cpus)]
    var._kernel = kernel
    return var._copies


def _freed(var: PerCpu, func: str) -> ValueError:
    return bad_value(func, "var", "a per-CPU variable that has not been freed", var)


def _var(var: object, func: str) -> PerCpu:
    var = check_instance(var, PerCpu, func, "var")
    if var._freed:
        raise _freed(var, func)
    return var


def DEFINE_PER_CPU(factory: Callable[[], Any]) -> PerCpu:
    """
    ``DEFINE_PER_CPU(type, name)``: a per-CPU variable whose copies are ``factory()`` (pass
    ``int`` or ``lambda: 0`` for a counter; an int copy is held in a :class:`PerCpuInt`).

    Raises:
        TypeError: *factory* is not callable with no arguments, or is ``async def``.

    .. versionadded:: 0.2
    """
    return PerCpu(factory, getattr(factory, "__name__", "percpu"), _func="DEFINE_PER_CPU")


def alloc_percpu(factory: Callable[[], Any]) -> PerCpu:
    """
    ``alloc_percpu(type)``: a dynamically allocated per-CPU variable; each copy is a fresh
    ``factory()``. Release it with :func:`free_percpu`.

    Raises:
        TypeError: *factory* is not callable with no arguments, or is ``async def``.

    .. versionadded:: 0.2
    """
    return PerCpu(factory, getattr(factory, "__name__", "percpu"), _func="alloc_percpu")


def free_percpu(var: PerCpu) -> None:
    """
    Free a variable from :func:`alloc_percpu`: any later use of it is an error.

    Raises:
        TypeError: *var* is not a :class:`PerCpu`.
        ValueError: *var* was already freed (a double free).

    .. versionadded:: 0.2
    """
    var = _var(var, "free_percpu")
    var._freed = True
    var._copies = []
    var._kernel = None


def per_cpu(var: PerCpu, cpu: int) -> Any:
    """
    ``per_cpu(var, cpu)``: CPU *cpu*'s copy of *var* (a :class:`PerCpuInt` for an int).

    Raises:
        TypeError: *var* is not a :class:`PerCpu`; *cpu* is not an int.
        ValueError: *cpu* is not a CPU of the running kernel; *var* was freed.

    .. versionadded:: 0.2
    """
    var = _var(var, "per_cpu")
    kernel = _cur().kernel
    if type(cpu) is not int or not 0 <= cpu < kernel.nr_cpus:
        check_int(cpu, "per_cpu", "cpu", lo=0, hi=kernel.nr_cpus - 1, expected=_cpu_range(kernel))
    return _copies(var, kernel, "per_cpu")[cpu]


def per_cpu_ptr(var: PerCpu, cpu: int) -> Any:
    """
    ``per_cpu_ptr(var, cpu)``: the same object as :func:`per_cpu` (Python has no pointers).

    Raises:
        TypeError, ValueError: as :func:`per_cpu`.

    .. versionadded:: 0.2
    """
    var = _var(var, "per_cpu_ptr")
    kernel = _cur().kernel
    if type(cpu) is not int or not 0 <= cpu < kernel.nr_cpus:
        check_int(
            cpu, "per_cpu_ptr", "cpu", lo=0, hi=kernel.nr_cpus - 1, expected=_cpu_range(kernel)
        )
    return _copies(var, kernel, "per_cpu_ptr")[cpu]


def _cpu_range(kernel: Kernel) -> str:
    return f"a CPU number from 0 to {kernel.nr_cpus - 1}"


def this_cpu_ptr(var: PerCpu) -> Any:
    """
    ``this_cpu_ptr(var)``: this CPU's copy. Meant for code that cannot migrate (preemption or
    interrupts disabled, a hardirq or softirq, a per-CPU thread); with
    ``Kernel(debug_preempt=True)`` a use in preemptible code prints the kernel's
    ``BUG: using smp_processor_id() in preemptible`` report.

    Raises:
        TypeError: *var* is not a :class:`PerCpu`.
        ValueError: *var* was freed.

    .. versionadded:: 0.2
    """
    var = _var(var, "this_cpu_ptr")
    task = _cur()
    copies = _copies(var, task.kernel, "this_cpu_ptr")
    if task.kernel.debug_preempt and not (task.preempt_count or task.irqs_off):
        # my_cpu_offset under CONFIG_DEBUG_PREEMPT is per_cpu_offset(smp_processor_id())
        from ._preempt import check_preemption_disabled

        check_preemption_disabled(task, "smp_processor_id", "")
    return copies[task.cpu]


def get_cpu_var(var: PerCpu) -> Any:
    """
    ``get_cpu_var(var)``: disable preemption and return this CPU's copy; end the section with
    :func:`put_cpu_var`.

    Raises:
        TypeError: *var* is not a :class:`PerCpu`.
        ValueError: *var* was freed.

    .. versionadded:: 0.2
    """
    var = _var(var, "get_cpu_var")
    task = _cur()
    copies = _copies(var, task.kernel, "get_cpu_var")
    task.preempt_count += PREEMPT_OFFSET
    return copies[task.cpu]


def put_cpu_var(var: PerCpu) -> None:
    """
    ``put_cpu_var(var)``: the end of a :func:`get_cpu_var` section (``preempt_enable()``).

    Raises:
        TypeError: *var* is not a :class:`PerCpu`.
        ValueError: *var* was freed.

    .. versionadded:: 0.2
    """
    _var(var, "put_cpu_var")
    from ._preempt import preempt_enable

    preempt_enable()


def _this(var: object, func: str) -> Any:
    """This CPU's copy of *var*, for the this_cpu_* operations (never reported)."""
    if type(var) is PerCpu and not var._freed:
        task = _cur()
        if var._kernel is task.kernel:
            return var._copies[task.cpu]
        return _copies(var, task.kernel, func)[task.cpu]
    var = _var(var, func)
    task = _cur()
    return _copies(var, task.kernel, func)[task.cpu]


def _holder(var: object, func: str) -> PerCpuInt:
    copy = _this(var, func)
    if type(copy) is not PerCpuInt:
        raise bad_value(func, "var", "a per-CPU variable of int copies", var)
    return copy


def _number(n: object, func: str) -> int:
    if type(n) is int:
        return n
    return check_int(n, func, "n")


def this_cpu_read(var: PerCpu) -> Any:
    """
    ``this_cpu_read(var)``: this CPU's value (the ``.value`` of an int copy, else the copy).

    Raises:
        TypeError: *var* is not a :class:`PerCpu`.
        ValueError: *var* was freed.

    Context:
        Any context; never reported, as the kernel's single-instruction access is not.

    .. versionadded:: 0.2
    """
    copy = _this(var, "this_cpu_read")
    return copy.value if type(copy) is PerCpuInt else copy


def this_cpu_write(var: PerCpu, value: Any) -> None:
    """
    ``this_cpu_write(var, value)``: set this CPU's value (the ``.value`` of an int copy, or
    replace the copy).

    Raises:
        TypeError: *var* is not a :class:`PerCpu`; *value* is not an int for an int variable.
        ValueError: *var* was freed.

    .. versionadded:: 0.2
    """
    copy = _this(var, "this_cpu_write")
    if type(copy) is PerCpuInt:
        if type(value) is not int:
            check_int(value, "this_cpu_write", "value")
        copy.value = value
        return
    task = _cur()
    assert isinstance(var, PerCpu)
    var._copies[task.cpu] = value


def this_cpu_add(var: PerCpu, n: int) -> None:
    """
    ``this_cpu_add(var, n)``: add *n* to this CPU's int copy.

    Raises:
        TypeError: *var* is not a :class:`PerCpu`; *n* is not an int.
        ValueError: *var* was freed or does not hold ints.

    .. versionadded:: 0.2
    """
    n = _number(n, "this_cpu_add")
    _holder(var, "this_cpu_add").value += n


def this_cpu_inc(var: PerCpu) -> None:
    """
    ``this_cpu_inc(var)``: add 1 to this CPU's int copy.

    Raises:
        TypeError: *var* is not a :class:`PerCpu`.
        ValueError: *var* was freed or does not hold ints.

    .. versionadded:: 0.2
    """
    _holder(var, "this_cpu_inc").value += 1


def this_cpu_dec(var: PerCpu) -> None:
    """
    ``this_cpu_dec(var)``: subtract 1 from this CPU's int copy.

    Raises:
        TypeError: *var* is not a :class:`PerCpu`.
        ValueError: *var* was freed or does not hold ints.

    .. versionadded:: 0.2
    """
    _holder(var, "this_cpu_dec").value -= 1


def for_each_online_cpu() -> Iterator[int]:
    """
    ``for_each_online_cpu(cpu)``: the numbers of the running kernel's online CPUs, ascending.

    .. versionadded:: 0.2
    """
    return iter(range(_cur().kernel.nr_cpus))


def for_each_possible_cpu() -> Iterator[int]:
    """
    ``for_each_possible_cpu(cpu)``: the possible CPUs (the online ones: no CPU hotplug here).

    .. versionadded:: 0.2
    """
    return iter(range(_cur().kernel.nr_cpus))


def cpu_online(cpu: int) -> bool:
    """
    ``cpu_online(cpu)``: whether *cpu* is an online CPU of the running kernel.

    Raises:
        TypeError: *cpu* is not an int.

    .. versionadded:: 0.2
    """
    if type(cpu) is not int:
        check_int(cpu, "cpu_online", "cpu")
    return 0 <= cpu < _cur().kernel.nr_cpus


def num_possible_cpus() -> int:
    """
    ``num_possible_cpus()``: the number of possible CPUs (= online CPUs here).

    .. versionadded:: 0.2
    """
    return _cur().kernel.nr_cpus
