"""Memory: kmalloc/kzalloc/kfree (with the GFP_KERNEL sleep check) and container_of."""

from __future__ import annotations

import gc
import re
import weakref

import pytest

from kdefer_async import (
    DEFINE_SPINLOCK,
    GFP_ATOMIC,
    GFP_KERNEL,
    IRQ_HANDLED,
    Kernel,
    KernelBug,
    NoKernelError,
    Tasklet,
    TimerList,
    container_of,
    from_tasklet,
    from_timer,
    kfree,
    kmalloc,
    kzalloc,
    local_bh_disable,
    local_bh_enable,
    mod_timer,
    msleep,
    request_irq,
    spin_lock,
    spin_unlock,
    tasklet_schedule,
    timer_container_of,
    timer_setup,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

SLEEP_BUG = "BUG: sleeping function called from invalid context"
CUT_HERE = "------------[ cut here ]------------"


class Device:
    """A driver structure embedding a tasklet and a timer, as C drivers do."""

    def __init__(self) -> None:
        self.tasklet = Tasklet()
        self.timer = TimerList()
        self.buf = bytearray(4)
        self.count = 0


class Plain:
    """A structure made without kmalloc."""

    def __init__(self, member: object) -> None:
        self.member = member


class Slotted:
    """A structure with __slots__ (no instance __dict__)."""

    __slots__ = ("__weakref__", "member")

    def __init__(self) -> None:
        self.member = [0]


def _count(k: Kernel, text: str) -> int:
    return sum(text in line for line in k.dmesg())


class TestKmalloc:
    async def test_class_gives_instance(self) -> None:
        """kmalloc(Class, GFP_KERNEL) returns a new, initialised instance of Class."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            a = kmalloc(Device, GFP_KERNEL)
            b = kmalloc(Device, GFP_KERNEL)
            assert type(a) is Device
            assert a is not b
            assert a.count == 0
            assert isinstance(a.tasklet, Tasklet)
        assert _count(k, SLEEP_BUG) == 0

    async def test_size_gives_zeroed_bytearray(self) -> None:
        """kmalloc(64, GFP_ATOMIC) returns a bytearray of 64 zero bytes."""
        async with Kernel(nr_cpus=1, hz=250):
            buf = kmalloc(64, GFP_ATOMIC)
            assert type(buf) is bytearray
            assert buf == bytes(64)
            other = kmalloc(64, GFP_ATOMIC)
            assert other is not buf
            assert kmalloc(0, GFP_KERNEL) == bytearray()

    async def test_kzalloc(self) -> None:
        """kzalloc() gives the same as kmalloc(): a fresh instance or a zeroed bytearray."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kzalloc(Device, GFP_KERNEL)
            assert type(dev) is Device
            assert dev.count == 0
            buf = kzalloc(16, GFP_KERNEL)
            assert buf == bytes(16)

    async def test_kept_alive_until_kfree(self) -> None:
        """The allocator owns the object until kfree(), even with no other reference."""
        async with Kernel(nr_cpus=1, hz=250):
            ref = weakref.ref(kmalloc(Device, GFP_KERNEL))
            gc.collect(0)
            dev = ref()
            assert dev is not None
            kfree(dev)
            del dev
            gc.collect(0)
            assert ref() is None

    async def test_container_of_does_not_pin(self) -> None:
        """After container_of() and kfree(), neither the container nor its member stays alive."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            assert container_of(dev.tasklet, Device, "tasklet") is dev
            ref = weakref.ref(dev)
            member_ref = weakref.ref(dev.tasklet)
            kfree(dev)
            del dev
            gc.collect(0)
            assert ref() is None
            assert member_ref() is None

    @pytest.mark.parametrize(
        ("kind", "flags", "exc"),
        [
            ("Device", GFP_KERNEL, TypeError),
            (1.5, GFP_KERNEL, TypeError),
            (True, GFP_KERNEL, TypeError),
            (None, GFP_KERNEL, TypeError),
            (-1, GFP_KERNEL, ValueError),
            (8, "GFP_KERNEL", TypeError),
            (8, None, TypeError),
            (8, True, TypeError),
        ],
    )
    async def test_bad_arguments(self, kind: object, flags: object, exc: type[Exception]) -> None:
        """kmalloc of something neither a class nor a size, bad flags, or a negative size raise."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(exc):
                kmalloc(kind, flags)  # type: ignore[call-overload]
            with pytest.raises(exc):
                kzalloc(kind, flags)  # type: ignore[call-overload]

    async def test_outside_a_kernel(self) -> None:
        """kmalloc() needs a running kernel."""
        with pytest.raises(NoKernelError):
            kmalloc(8, GFP_KERNEL)


class TestAtomicContext:
    async def test_gfp_kernel_in_tasklet_reports(self) -> None:
        """GFP_KERNEL in a tasklet reports a sleep in invalid context, yet allocates."""
        got: list[object] = []

        def cb(t: Tasklet) -> None:
            got.append(kmalloc(Device, GFP_KERNEL))

        async with Kernel(nr_cpus=1, hz=250) as k:
            tasklet_schedule(Tasklet(cb))
            await settle()
            pid = k.cpus[0].ksoftirqd.pid
        assert len(got) == 1
        assert type(got[0]) is Device
        lines = k.dmesg()
        at = next(i for i, line in enumerate(lines) if SLEEP_BUG in line)
        assert "test_mm.py:" in lines[at]
        assert lines[at + 1].endswith(
            f"in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: {pid}, name: ksoftirqd/0"
        )
        assert lines[at + 2].endswith("preempt_count: 100, expected: 0")
        assert k.oopses == []

    async def test_gfp_kernel_in_timer_callback_reports(self) -> None:
        """CTX-07: GFP_KERNEL (a might_sleep() allocation) in a timer callback reports, three lines."""
        got: list[object] = []

        def fn(timer: TimerList) -> None:
            got.append(kmalloc(Device, GFP_KERNEL))

        async with Kernel(nr_cpus=1, hz=1000) as k:
            timer = TimerList()
            timer_setup(timer, fn, 0)
            mod_timer(timer, k.jiffies + 2)
            await msleep(5)
        assert len(got) == 1
        lines = k.dmesg()
        at = next(i for i, line in enumerate(lines) if SLEEP_BUG in line)
        assert re.search(
            r"BUG: sleeping function called from invalid context at test_mm\.py:\d+$", lines[at]
        )
        assert re.search(
            r"in_atomic\(\): 1, irqs_disabled\(\): 0, non_block: 0, pid: \d+, name: \S+$",
            lines[at + 1],
        )
        assert lines[at + 2].endswith("preempt_count: 100, expected: 0")

    async def test_gfp_kernel_in_tasklet_does_not_raise(self) -> None:
        """The GFP_KERNEL report does not raise even with sleep_in_atomic="raise" (no panic)."""
        got: list[object] = []

        def cb(t: Tasklet) -> None:
            got.append(kmalloc(32, GFP_KERNEL))

        async with Kernel(nr_cpus=1, hz=250, sleep_in_atomic="raise") as k:
            tasklet_schedule(Tasklet(cb))
            await settle()
        assert got == [bytearray(32)]
        assert _count(k, SLEEP_BUG) == 1
        assert _count(k, "Kernel panic") == 0

    async def test_gfp_kernel_under_spinlock_reports(self) -> None:
        """GFP_KERNEL with a spinlock held reports (preempt_count 1) and returns the object."""
        lock = DEFINE_SPINLOCK()
        async with Kernel(nr_cpus=1, hz=250) as k:
            spin_lock(lock)
            try:
                dev = kmalloc(Device, GFP_KERNEL)
            finally:
                spin_unlock(lock)
            assert type(dev) is Device
        lines = k.dmesg()
        at = next(i for i, line in enumerate(lines) if SLEEP_BUG in line)
        assert lines[at + 1].endswith(
            "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1, name: init"
        )
        assert lines[at + 2].endswith("preempt_count: 1, expected: 0")

    async def test_gfp_kernel_with_bh_disabled_reports(self) -> None:
        """GFP_KERNEL inside local_bh_disable() reports too (preempt_count 200)."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            local_bh_disable()
            try:
                kmalloc(8, GFP_KERNEL)
            finally:
                local_bh_enable()
        assert any(line.endswith("preempt_count: 200, expected: 0") for line in k.dmesg())

    async def test_gfp_kernel_in_hardirq_reports(self) -> None:
        """GFP_KERNEL in a hardirq handler reports with irqs_disabled(): 1."""
        got: list[object] = []

        def handler(irq: int, dev: object) -> int:
            got.append(kmalloc(8, GFP_KERNEL))
            return IRQ_HANDLED

        async with Kernel(nr_cpus=1, hz=250) as k:
            request_irq(9, handler, 0, "dev", None)
            k.raise_irq(9)
        assert got == [bytearray(8)]
        assert any(
            "in_atomic(): 1, irqs_disabled(): 1, non_block: 0, pid: 1, name: init" in line
            for line in k.dmesg()
        )

    async def test_gfp_atomic_in_tasklet_is_silent(self) -> None:
        """GFP_ATOMIC in a tasklet allocates without any report."""
        got: list[object] = []

        def cb(t: Tasklet) -> None:
            got.append(kmalloc(Device, GFP_ATOMIC))
            got.append(kzalloc(16, GFP_ATOMIC))

        async with Kernel(nr_cpus=1, hz=250) as k:
            tasklet_schedule(Tasklet(cb))
            await settle()
        assert len(got) == 2
        assert type(got[0]) is Device
        assert _count(k, SLEEP_BUG) == 0

    async def test_gfp_atomic_under_spinlock_is_silent(self) -> None:
        """GFP_ATOMIC with a spinlock held allocates without any report."""
        lock = DEFINE_SPINLOCK()
        async with Kernel(nr_cpus=1, hz=250) as k:
            spin_lock(lock)
            try:
                buf = kmalloc(8, GFP_ATOMIC)
            finally:
                spin_unlock(lock)
            assert buf == bytes(8)
        assert _count(k, SLEEP_BUG) == 0

    async def test_gfp_kernel_in_task_context_is_silent(self) -> None:
        """GFP_KERNEL in plain task context is fine: no report."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            kmalloc(Device, GFP_KERNEL)
            kzalloc(64, GFP_KERNEL)
        assert _count(k, SLEEP_BUG) == 0


class TestKfree:
    async def test_kfree_none(self) -> None:
        """kfree(None) does nothing."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            before = k.dmesg()
            assert kfree(None) is None
            assert k.dmesg() == before

    async def test_kfree_allocated(self) -> None:
        """kfree() of what kmalloc returned is silent, for objects and buffers."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            kfree(kmalloc(Device, GFP_KERNEL))
            kfree(kmalloc(8, GFP_ATOMIC))
        assert _count(k, CUT_HERE) == 0

    async def test_kfree_foreign_object_warns(self) -> None:
        """kfree() of an object kmalloc never returned WARNs, naming kfree."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            kfree(Device())
        assert _count(k, CUT_HERE) == 1
        assert _count(k, "kfree: ") == 1
        assert _count(k, "was not allocated by kmalloc") == 1

    async def test_double_kfree_is_a_kasan_report(self) -> None:
        """A second kfree() of the same object is KASAN's double-free: reported, KernelBug."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            dev = kmalloc(Device, GFP_KERNEL)
            kfree(dev)
            with pytest.raises(KernelBug, match="double-free"):
                kfree(dev)
        assert _count(k, "BUG: KASAN: double-free in kfree") == 1

    async def test_kfree_in_atomic_context(self) -> None:
        """kfree() is legal in atomic context: no sleep report from a tasklet."""
        dev_box: list[Device] = []

        def cb(t: Tasklet) -> None:
            kfree(dev_box.pop())

        async with Kernel(nr_cpus=1, hz=250) as k:
            dev_box.append(kmalloc(Device, GFP_KERNEL))
            tasklet_schedule(Tasklet(cb))
            await settle()
        assert dev_box == []
        assert _count(k, SLEEP_BUG) == 0
        assert _count(k, CUT_HERE) == 0

    async def test_allocations_are_per_kernel(self) -> None:
        """An object kmalloc'd by one kernel is unknown to the next: kfree there WARNs."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
        async with Kernel(nr_cpus=1, hz=250) as k2:
            kfree(dev)
        assert _count(k2, CUT_HERE) == 1


class TestContainerOf:
    async def test_kmalloced_object(self) -> None:
        """container_of(obj.member, Class, "member") finds a kmalloc'd object."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            other = kmalloc(Device, GFP_KERNEL)
            assert container_of(dev.tasklet, Device, "tasklet") is dev
            assert container_of(dev.timer, Device, "timer") is dev
            assert container_of(other.buf, Device, "buf") is other

    async def test_plain_object(self) -> None:
        """container_of() finds an ordinary object that was never kmalloc'd."""
        async with Kernel(nr_cpus=1, hz=250):
            member = ["payload"]
            holder = Plain(member)
            assert container_of(member, Plain, "member") is holder

    async def test_slotted_object(self) -> None:
        """container_of() finds an object whose class uses __slots__."""
        async with Kernel(nr_cpus=1, hz=250):
            holder = Slotted()
            assert container_of(holder.member, Slotted, "member") is holder

    async def test_repeated_lookup(self) -> None:
        """Repeated container_of() calls keep returning the same container."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            assert all(container_of(dev.tasklet, Device, "tasklet") is dev for _ in range(3))

    async def test_from_a_tasklet_callback(self) -> None:
        """A modern tasklet callback finds its device with container_of(t, Device, "tasklet")."""
        found: list[Device] = []

        def cb(t: Tasklet) -> None:
            dev = container_of(t, Device, "tasklet")
            dev.count += 1
            found.append(dev)

        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            dev.tasklet = Tasklet(cb)
            tasklet_schedule(dev.tasklet)
            await settle()
        assert found == [dev]
        assert dev.count == 1

    async def test_from_a_timer_callback(self) -> None:
        """A timer callback finds its device with container_of(timer, Device, "timer")."""
        found: list[Device] = []

        def fn(timer: TimerList) -> None:
            found.append(container_of(timer, Device, "timer"))

        async with Kernel(nr_cpus=1, hz=1000) as k:
            dev = kmalloc(Device, GFP_KERNEL)
            timer_setup(dev.timer, fn, 0)
            mod_timer(dev.timer, k.jiffies + 2)
            await msleep(5)
        assert found == [dev]

    async def test_unknown_pointer(self) -> None:
        """A pointer no object embeds raises LookupError."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(LookupError):
                container_of(object(), Device, "tasklet")

    async def test_wrong_member(self) -> None:
        """The right object but the wrong member name raises LookupError."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            with pytest.raises(LookupError):
                container_of(dev.tasklet, Device, "timer")
            with pytest.raises(LookupError):
                container_of(dev.tasklet, Device, "no_such_member")

    async def test_wrong_kind(self) -> None:
        """A member of a Device is not found in a Plain: LookupError."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            with pytest.raises(LookupError):
                container_of(dev.tasklet, Plain, "tasklet")

    async def test_member_must_be_a_name(self) -> None:
        """The member argument is the attribute's name: anything else is a TypeError."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            with pytest.raises(TypeError):
                container_of(dev.tasklet, Device, 0)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                container_of(dev.tasklet, Device, None)  # type: ignore[arg-type]


async def test_kernelbug_not_raised_by_allocation() -> None:
    """GFP_KERNEL in atomic context reports but never raises KernelBug (the kernel carries on)."""
    lock = DEFINE_SPINLOCK()
    async with Kernel(nr_cpus=1, hz=250, sleep_in_atomic="raise") as k:
        spin_lock(lock)
        try:
            buf = kmalloc(8, GFP_KERNEL)
        finally:
            spin_unlock(lock)
    assert buf == bytes(8)
    assert _count(k, SLEEP_BUG) == 1


class TestFromTimer:
    async def test_from_timer_in_a_callback(self) -> None:
        """from_timer / timer_container_of / from_tasklet find the structure that embeds the
        timer or tasklet a callback receives (the seed's container_of pattern)."""
        from kdefer_async import (
            Tasklet,
            TimerList,
            from_tasklet,
            from_timer,
            mod_timer,
            msleep,
            tasklet_schedule,
            timer_container_of,
        )
        from kdefer_async.testing import settle

        class Dev:
            def __init__(self) -> None:
                self.timer = TimerList()
                self.tasklet = Tasklet()
                self.name = "eth0"

        seen: list[str] = []
        async with Kernel(nr_cpus=1, hz=250) as k:
            dev = kmalloc(Dev, GFP_KERNEL)

            def on_timer(t: TimerList) -> None:
                seen.append(from_timer(Dev, t, "timer").name)
                seen.append(timer_container_of(Dev, t, "timer").name)

            def on_tasklet(t: Tasklet) -> None:
                seen.append(from_tasklet(Dev, t, "tasklet").name)

            dev.timer = TimerList(on_timer)
            dev.tasklet = Tasklet(on_tasklet)
            mod_timer(dev.timer, k.jiffies + 1)
            tasklet_schedule(dev.tasklet)
            await settle()
            await msleep(20)
        assert seen == ["eth0", "eth0", "eth0"]


ULONG_MAX = 2**64 - 1


class TestArguments:
    @pytest.mark.parametrize("alloc", [kmalloc, kzalloc])
    @pytest.mark.parametrize(
        ("kind", "flags", "exc", "message"),
        [
            ("Device", GFP_KERNEL, TypeError, "a class or a size in bytes for 'kind', got str"),
            (
                -1,
                GFP_KERNEL,
                ValueError,
                rf"a size in bytes from 0 to {ULONG_MAX} for 'kind', got -1",
            ),
            (8, None, TypeError, "an int for 'flags', got NoneType"),
            (8, -1, ValueError, r"GFP flags \(an unsigned int\) for 'flags', got -1"),
            (8, 2**32, ValueError, rf"GFP flags \(an unsigned int\) for 'flags', got {2**32}"),
        ],
    )
    async def test_allocation_checks_before_the_sleep_report(
        self, alloc: object, kind: object, flags: object, exc: type[Exception], message: str
    ) -> None:
        """A rejected kmalloc under a spinlock reports nothing and allocates nothing."""
        name = getattr(alloc, "__name__", "")
        async with Kernel(nr_cpus=1, hz=250) as k:
            slab = dict(k._slab)
            lock = DEFINE_SPINLOCK()
            spin_lock(lock)
            try:
                with pytest.raises(exc, match=rf"^{name}\(\) expects {message}$"):
                    alloc(kind, flags)  # type: ignore[operator]
            finally:
                spin_unlock(lock)
            assert _count(k, SLEEP_BUG) == 0
            assert k._slab == slab

    async def test_container_of_checks_kind_and_member(self) -> None:
        """container_of(ptr, "Device", m) is a TypeError: kind is a class, member a str."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            with pytest.raises(
                TypeError, match=r"^container_of\(\) expects a class for 'kind', got str$"
            ):
                container_of(dev.timer, "Device", "timer")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=r"^container_of\(\) expects a str for 'member', got NoneType$"
            ):
                container_of(dev.timer, Device, None)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError,
                match=r"^container_of\(\) expects a non-empty str for 'member', got ''$",
            ):
                container_of(dev.timer, Device, "")
            assert container_of(dev.timer, Device, "timer") is dev

    async def test_from_timer_and_from_tasklet_need_their_types(self) -> None:
        """from_timer(kind, None, m) is a TypeError: the pointer is a timer_list (or tasklet)."""
        async with Kernel(nr_cpus=1, hz=250):
            dev = kmalloc(Device, GFP_KERNEL)
            for fn in (from_timer, timer_container_of):
                with pytest.raises(
                    TypeError,
                    match=rf"^{fn.__name__}\(\) expects a TimerList for 'timer', got Tasklet$",
                ):
                    fn(Device, dev.tasklet, "tasklet")  # type: ignore[arg-type]
                with pytest.raises(
                    TypeError,
                    match=rf"^{fn.__name__}\(\) expects a class for 'kind', got NoneType$",
                ):
                    fn(None, dev.timer, "timer")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError,
                match=r"^from_tasklet\(\) expects a Tasklet for 'tasklet', got TimerList$",
            ):
                from_tasklet(Device, dev.timer, "timer")  # type: ignore[arg-type]
            with pytest.raises(
                TypeError, match=r"^from_tasklet\(\) expects a str for 'member', got int$"
            ):
                from_tasklet(Device, dev.tasklet, 0)  # type: ignore[arg-type]
            assert from_tasklet(Device, dev.tasklet, "tasklet") is dev
            assert from_timer(Device, dev.timer, "timer") is dev
