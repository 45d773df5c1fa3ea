"""Debug checks on freed memory and unloaded code: ODEBUG, KASAN-style reports, rmmod.

Kernel invariants modelled (lib/debugobjects.c, mm/kasan/, kernel/module/):

* debugobjects: freeing memory that holds an *active* work item, timer or tasklet is reported
  (``ODEBUG: free active ... object type: work_struct hint: <fn>``) and the object is
  deactivated, so it never runs from freed memory.
* KASAN: an access to freed memory is ``BUG: KASAN: use-after-free``; freeing twice is
  ``BUG: KASAN: double-free``. kdefer_async poisons a freed object (it keeps its class's
  behaviour but every attribute access reports), and raises :class:`KernelBug` at the access.
  (Objects of built-in types, such as the ``bytearray`` of a sized ``kmalloc``, cannot be
  poisoned; their double free is still caught.)
* Unloading a module whose work, delayed work, timers or tasklets are still pending leaves
  them pointing at code that is gone: the kernel crashes when they fire. kdefer_async reports
  each one at ``rmmod``, naming the object and the function, and cancels it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._context import TaskStruct, _cur
from ._exceptions import KernelBug
from ._printk import caller_location, log_text, report_lines, symbol_name, warn
from ._tasklet import Tasklet
from ._timer import TimerList, timer_delete
from ._work import DelayedWork, Work

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = ["check_free", "is_freed", "pending_in_module", "poison"]

_SCHED = 1


def _addr(obj: object) -> str:
    return "%016x" % (id(obj) & 0xFFFFFFFFFFFFFFFF)


def _members(obj: object) -> list[object]:
    """The objects *obj* embeds: its attributes (``__dict__`` and ``__slots__``)."""
    out: list[object] = []
    d = getattr(obj, "__dict__", None)
    if isinstance(d, dict):
        out.extend(d.values())
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                out.append(object.__getattribute__(obj, name))
            except AttributeError:
                pass
    return out


def _work_active(work: Work) -> bool:
    return bool(work._pending)


def _deactivate_work(work: Work) -> None:
    from ._workqueue import grab_pending

    grab_pending(work)


def _tasklet_unschedule(kernel: Kernel, t: Tasklet) -> None:
    for cpu in kernel.cpus:
        for lst in (cpu.tasklet_vec, cpu.tasklet_hi_vec):
            if t in lst:
                lst.remove(t)
    t.state &= ~_SCHED


def _active_in(obj: object) -> list[tuple[str, object, object]]:
    """(object type, object, hint) for each active kernel object *obj* embeds."""
    found: list[tuple[str, object, object]] = []
    for m in _members(obj):
        if isinstance(m, DelayedWork):
            if m.timer._bucket is not None:
                found.append(("timer_list", m, m.timer.function))
            elif _work_active(m.work):
                found.append(("work_struct", m, m.work.func))
        elif isinstance(m, Work):
            if _work_active(m):
                found.append(("work_struct", m, m.func))
        elif isinstance(m, TimerList):
            if m._bucket is not None:
                found.append(("timer_list", m, m.function))
        elif isinstance(m, Tasklet) and m.state & _SCHED:
            found.append(("tasklet_struct", m, m.func))
    return found


def _deactivate(kernel: Kernel, obj: object) -> None:
    if isinstance(obj, DelayedWork):
        _deactivate_work(obj.work)
    elif isinstance(obj, Work):
        _deactivate_work(obj)
    elif isinstance(obj, TimerList):
        timer_delete(obj)
    elif isinstance(obj, Tasklet):
        _tasklet_unschedule(kernel, obj)


def check_free(task: TaskStruct, obj: object) -> None:
    """``debug_check_no_obj_freed``: report and deactivate active objects inside *obj*."""
    for kind, inner, hint in _active_in(obj):
        log_text(
            task.kernel,
            3,
            f"ODEBUG: free active (active state 0) object: {_addr(inner)} object type: {kind} "
            f"hint: {symbol_name(hint, offset=True) if hint is not None else '0x0'}",
        )
        warn(task=task)
        _deactivate(task.kernel, inner)


# --- KASAN ------------------------------------------------------------------------------------

_poisoned: dict[type, type] = {}


def _kasan_report(obj: object, what: str, name: str) -> None:
    task = _cur()
    _file, _line, func = caller_location()
    real = type(obj).__mro__[1]
    report_lines(
        task,
        [
            "==================================================================",
            f"BUG: KASAN: use-after-free in {func}",
            f"{what} of size 8 at addr {_addr(obj)} by task {task.comm}/{task.pid}",
            "",
            f"The buggy address belongs to the object at {_addr(obj)}",
            f" which belongs to the cache kmalloc of type {real.__name__} (freed; member .{name})",
        ],
        level=3,
        taint="B",
    )
    log_text(task.kernel, 3, "==================================================================")
    raise KernelBug(f"use-after-free: .{name} of a {real.__name__} that was kfree()d (see dmesg)")


def _poisoned_class(cls: type) -> type:
    made = _poisoned.get(cls)
    if made is None:

        def __getattribute__(self: Any, name: str) -> Any:
            if name in ("__class__",):
                return object.__getattribute__(self, name)
            _kasan_report(self, "Read", name)

        def __setattr__(self: Any, name: str, value: Any) -> None:
            _kasan_report(self, "Write", name)

        made = type(
            cls.__name__,
            (cls,),
            {
                "__slots__": (),
                "__getattribute__": __getattribute__,
                "__setattr__": __setattr__,
                "__module__": cls.__module__,
                "_kdefer_freed": True,
            },
        )
        _poisoned[cls] = made
    return made


def poison(obj: object) -> bool:
    """Make every later attribute access of *obj* a KASAN report; False if not possible."""
    cls = type(obj)
    if cls.__module__ == "builtins":
        return False
    try:
        obj.__class__ = _poisoned_class(cls)
    except TypeError:
        return False
    return True


def is_freed(obj: object) -> bool:
    return bool(getattr(type(obj), "_kdefer_freed", False))


def report_double_free(task: TaskStruct, obj: object) -> None:
    real = type(obj).__mro__[1] if is_freed(obj) else type(obj)
    report_lines(
        task,
        [
            "==================================================================",
            "BUG: KASAN: double-free in kfree",
            f"Free of addr {_addr(obj)} by task {task.comm}/{task.pid}",
            f"The buggy address belongs to the object at {_addr(obj)} of type {real.__name__}",
        ],
        level=3,
        taint="B",
    )
    log_text(task.kernel, 3, "==================================================================")
    raise KernelBug(f"double-free: a {real.__name__} was kfree()d twice (see dmesg)")


# --- rmmod with pending work --------------------------------------------------------------------


def _in_module(fn: object, modname: str) -> bool:
    target = getattr(fn, "__func__", fn)
    return getattr(target, "__module__", None) == modname


def pending_in_module(kernel: Kernel, modname: str) -> list[tuple[str, object, object]]:
    """Every pending work item, delayed work, timer and tasklet whose function is in
    *modname* (a Python module name), as (object type, object, function)."""
    found: list[tuple[str, object, object]] = []
    seen: set[int] = set()
    for cpu in kernel.cpus:
        for base in (cpu.std_base, cpu.def_base):
            for bucket in base.buckets.values():
                for timer in bucket:
                    dwork = getattr(timer, "dwork", None)
                    if dwork is not None:
                        if _in_module(dwork.work.func, modname):
                            found.append(("delayed_work", dwork, dwork.work.func))
                            seen.add(id(dwork.work))
                    elif _in_module(timer.function, modname):
                        found.append(("timer_list", timer, timer.function))
        for lst in (cpu.tasklet_hi_vec, cpu.tasklet_vec):
            found.extend(("tasklet_struct", t, t.func) for t in lst if _in_module(t.func, modname))
    st: Any = getattr(kernel, "_wq_state", None)
    if st is not None:
        pools = [p for pair in st.cpu_pools + st.bh_pools for p in pair if p is not None]
        pools.extend(p for p in st.unbound_pools if p is not None)
        works: list[Work] = []
        for pool in pools:
            works.extend(pool.worklist)
            for worker in pool.workers:
                works.extend(worker.scheduled or ())
        for wq in st.workqueues:
            for pwq in wq._pwqs:
                if pwq is not None:
                    works.extend(pwq.inactive)
        for work in works:
            if id(work) not in seen and _in_module(work.func, modname):
                seen.add(id(work))
                found.append(("work_struct", work, work.func))
    return found


def report_unload_pending(kernel: Kernel, name: str, modname: str) -> int:
    """At rmmod: name and cancel what still points into the module's code; return how many."""
    found = pending_in_module(kernel, modname)
    for kind, obj, fn in found:
        fake = 0xFFFFFFFFC0000000 | (id(fn) & 0xFFFFFF)
        log_text(kernel, 1, f"BUG: unable to handle page fault for address: {fake:016x}")
        log_text(kernel, 1, "#PF: supervisor instruction fetch in kernel mode")
        log_text(kernel, 1, "#PF: error_code(0x0010) - not-present page")
        log_text(
            kernel,
            1,
            f"{name}: {kind} {_addr(obj)} with function {symbol_name(fn)} is still pending "
            f"after the module was unloaded: its code is gone (it would oops when it runs); "
            "cancelled",
        )
        if isinstance(obj, DelayedWork):
            _deactivate_work(obj.work)
        else:
            _deactivate(kernel, obj)
    if found:
        kernel._taint.add("D")
    return len(found)
