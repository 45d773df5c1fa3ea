"""Debug checks: ODEBUG on freeing active objects, KASAN-style use-after-free and double-free,
and unloading a module whose work, timers or tasklets are still pending."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kdefer_async import (
    GFP_KERNEL,
    DelayedWork,
    Kernel,
    KernelBug,
    Tasklet,
    TimerList,
    Work,
    kfree,
    kmalloc,
    mod_timer,
    msleep,
    queue_delayed_work,
    schedule_work,
    system_wq,
    tasklet_disable_nosync,
    tasklet_schedule,
    timer_pending,
    work_pending,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio


def lines_with(k: Kernel, text: str) -> list[str]:
    return [line.split("] ", 1)[1] for line in k.dmesg() if text in line]


class Holder:
    """A driver structure that embeds kernel objects, as C code embeds them."""

    def __init__(self) -> None:
        self.work = Work()
        self.dwork = DelayedWork()
        self.timer = TimerList()
        self.tasklet = Tasklet()
        self.value = 42


def never_runs(_arg: object) -> None:
    raise AssertionError("ran from freed memory")


class TestOdebug:
    async def test_free_active_work_is_reported_and_deactivated(self) -> None:
        """kfree() of a structure whose work item is queued: `ODEBUG: free active ... object
        type: work_struct hint: <fn>`, a WARN, and the work never runs."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            h = kmalloc(Holder, GFP_KERNEL)
            h.work = Work(never_runs)
            schedule_work(h.work)
            work = h.work
            kfree(h)
            assert not work_pending(work)
            await settle()
        (line,) = lines_with(k, "ODEBUG")
        assert "ODEBUG: free active (active state 0) object: " in line
        assert "object type: work_struct hint: never_runs+0x0/0x" in line
        assert lines_with(k, "------------[ cut here ]------------")

    async def test_free_active_timer_delayed_work_and_tasklet(self) -> None:
        """Armed timers and delayed work, and scheduled tasklets, are reported by their own
        object types and deactivated: none of them runs afterwards."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            h = kmalloc(Holder, GFP_KERNEL)
            h.timer = TimerList(never_runs)
            h.dwork = DelayedWork(never_runs)
            h.tasklet = Tasklet(never_runs)
            mod_timer(h.timer, k.jiffies + 10)
            queue_delayed_work(system_wq, h.dwork, 10)
            tasklet_disable_nosync(h.tasklet)  # keep it scheduled until the free
            tasklet_schedule(h.tasklet)
            timer, dwork = h.timer, h.dwork
            kfree(h)
            assert not timer_pending(timer)
            assert not work_pending(dwork.work)
            await msleep(100)
        kinds = [line.rsplit("object type: ", 1)[1].split()[0] for line in lines_with(k, "ODEBUG")]
        assert sorted(kinds) == ["tasklet_struct", "timer_list", "timer_list"]

    async def test_free_idle_objects_is_silent(self) -> None:
        """Freeing a structure whose objects are idle reports nothing."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            kfree(kmalloc(Holder, GFP_KERNEL))
        assert not lines_with(k, "ODEBUG")


class TestKasan:
    async def test_use_after_free(self) -> None:
        """Reading a kfree()d object: `BUG: KASAN: use-after-free` and KernelBug."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            h = kmalloc(Holder, GFP_KERNEL)
            kfree(h)
            with pytest.raises(KernelBug, match="use-after-free"):
                _ = h.value
            with pytest.raises(KernelBug, match="use-after-free"):
                h.value = 1
        assert lines_with(k, "BUG: KASAN: use-after-free in test_use_after_free")
        assert lines_with(k, "Read of size 8 at addr")
        assert lines_with(k, "Write of size 8 at addr")

    async def test_double_free(self) -> None:
        """kfree() twice: `BUG: KASAN: double-free` and KernelBug, for objects and buffers."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            h = kmalloc(Holder, GFP_KERNEL)
            kfree(h)
            with pytest.raises(KernelBug, match="double-free"):
                kfree(h)
            buf = kmalloc(64, GFP_KERNEL)
            kfree(buf)
            with pytest.raises(KernelBug, match="double-free"):
                kfree(buf)
        assert len(lines_with(k, "BUG: KASAN: double-free in kfree")) == 2


MODULE = """
from kdefer_async import (DelayedWork, Tasklet, TimerList, Work, MODULE_LICENSE, mod_timer,
    module_exit, module_init, printk, queue_delayed_work, schedule_work, system_wq,
    tasklet_disable_nosync, tasklet_schedule)
import kdefer_async

def late_timer(t):
    printk("timer ran\\n")

def late_work(w):
    printk("work ran\\n")

def late_tasklet(t):
    printk("tasklet ran\\n")

timer = TimerList(late_timer)
dwork = DelayedWork(late_work)
tasklet = Tasklet(late_tasklet)

@module_init
def init():
    mod_timer(timer, kdefer_async.jiffies + 50)
    queue_delayed_work(system_wq, dwork, 50)
    tasklet_disable_nosync(tasklet)
    tasklet_schedule(tasklet)
    return 0

@module_exit
def exit():
    printk("forgot to cancel\\n")   # the classic driver bug

MODULE_LICENSE("GPL")
"""


class TestUnloadWithPending:
    async def test_pending_objects_are_named_and_never_run(self, tmp_path: Path) -> None:
        """rmmod while the module's timer, delayed work and tasklet are pending: each is
        reported (page fault: its code is gone), named with its function, and never runs."""
        path = tmp_path / "leaky.py"
        path.write_text(textwrap.dedent(MODULE))
        async with Kernel(nr_cpus=2, hz=250) as k:
            await k.insmod(path)
            await k.rmmod("leaky")
            await msleep(400)
        text = "\n".join(k.dmesg())
        assert "timer ran" not in text
        assert "work ran" not in text
        assert "tasklet ran" not in text
        assert len(lines_with(k, "BUG: unable to handle page fault for address:")) == 3
        named = lines_with(k, "still pending after the module was unloaded")
        assert sorted(line.split(" ")[1] for line in named) == [
            "delayed_work",
            "tasklet_struct",
            "timer_list",
        ]
        assert any("late_timer" in line for line in named)
        assert any("late_work" in line for line in named)
        assert any("late_tasklet" in line for line in named)
