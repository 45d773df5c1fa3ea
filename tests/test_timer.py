"""timer_list and the timer wheel: return values, expiry ticks, context, deferrable, tickless.

Covers kernel-semantics §5.2-5.5 and TM-04..TM-18.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings, strategies as st

import kdefer_async
from kdefer_async import (
    DEFINE_TIMER,
    IRQ_HANDLED,
    TIMER_DEFERRABLE,
    TIMER_IRQSAFE,
    TIMER_PINNED,
    Kernel,
    KernelBug,
    KernelPanic,
    TimerList,
    add_timer,
    add_timer_global,
    add_timer_local,
    add_timer_on,
    current_kernel,
    del_timer,
    del_timer_sync,
    in_hardirq,
    in_interrupt,
    in_serving_softirq,
    in_softirq,
    in_task,
    irqs_disabled,
    mod_timer,
    mod_timer_pending,
    request_irq,
    smp_processor_id,
    timer_delete,
    timer_delete_sync,
    timer_pending,
    timer_reduce,
    timer_setup,
    timer_shutdown,
    timer_shutdown_sync,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

#: How long to wait for something that must happen: virtual seconds cost nothing, real ones
#: are only spent when the test is failing anyway, so they allow for a busy machine.
WAIT_VIRTUAL = 60.0
WAIT_REAL = 5.0
IRQ = 11


class Recorder:
    """A timer callback that records the jiffies and CPU of each run and wakes waiters."""

    def __init__(self, name: str = "t", log: list[tuple[str, int]] | None = None) -> None:
        self.name = name
        self.runs: list[int] = []
        self.cpus: list[int] = []
        self.passes: list[int] = []
        self.timers: list[TimerList] = []
        self.log = log
        self._event: anyio.Event | None = None

    def __call__(self, timer: TimerList) -> None:
        cpu = smp_processor_id()
        self.runs.append(kdefer_async.jiffies)
        self.cpus.append(cpu)
        self.passes.append(timer_passes(current_kernel(), cpu))
        self.timers.append(timer)
        if self.log is not None:
            self.log.append((self.name, kdefer_async.jiffies))
        if self._event is not None:
            self._event.set()

    async def wait(self, virtual: bool, n: int = 1) -> None:
        """Wait until the callback has run *n* times in all."""
        with anyio.fail_after(WAIT_VIRTUAL if virtual else WAIT_REAL):
            while len(self.runs) < n:
                self._event = anyio.Event()
                await self._event.wait()


def timer_passes(k: Kernel, cpu: int) -> int:
    """The TIMER row of /proc/softirqs for *cpu*: how many TIMER_SOFTIRQ passes ran there."""
    for line in k.proc_softirqs().splitlines():
        name, _, counts = line.partition(":")
        if name.strip() == "TIMER":
            return int(counts.split()[cpu])
    raise AssertionError("no TIMER row in /proc/softirqs")


def warnings(k: Kernel) -> list[str]:
    return [line for line in k.dmesg() if "WARNING:" in line]


def wheel_tick(expires: int, clk: int) -> int:
    """The reference wheel (§5.4): the first multiple of 8**level strictly above *expires*."""
    delta = expires - clk
    if delta < 0:
        return clk
    level = 0
    while delta >= 63 * 8**level:
        level += 1
    gran = 8**level
    return (expires // gran + 1) * gran


async def sentinel(virtual: bool, expires: int, cpu: int = 0) -> Recorder:
    """Arm a plain timer for *expires* on *cpu* and wait for it: proof the wheel got there."""
    rec = Recorder("sentinel")
    t = TimerList(rec, 0)
    t.expires = expires
    add_timer_on(t, cpu)
    await rec.wait(virtual)
    return rec


async def arm_and_wait_for_panic(
    k: Kernel, callback: Callable[[TimerList], None], virtual: bool
) -> None:
    """Boot *k*, arm a timer with *callback* two jiffies ahead, and wait for the kernel to die."""
    async with k:
        mod_timer(TimerList(callback, 0), kdefer_async.jiffies + 2)
        with anyio.fail_after(WAIT_VIRTUAL if virtual else WAIT_REAL):
            await anyio.sleep_forever()


class TestTimerSetup:
    async def test_empty_timer_then_timer_setup(self, virtual: bool) -> None:
        """TimerList() is an inactive, unset timer; timer_setup() makes it usable."""
        async with Kernel(nr_cpus=2, hz=1000):
            t = TimerList()
            assert (t.expires, t.function, t.flags) == (0, None, 0)
            assert not timer_pending(t)
            rec = Recorder()
            timer_setup(t, rec, TIMER_PINNED)
            assert t.function is rec
            assert t.flags == TIMER_PINNED
            j = kdefer_async.jiffies
            assert mod_timer(t, j + 2) == 0
            await rec.wait(virtual)
            assert rec.timers == [t]
            assert rec.runs == [j + 3] if virtual else rec.runs[0] >= j + 3

    async def test_timer_list_with_arguments_is_timer_setup(self, virtual: bool) -> None:
        """TimerList(callback, flags) sets the timer up in one step; callback gets the timer."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, TIMER_DEFERRABLE)
            assert t.function is rec
            assert t.flags == TIMER_DEFERRABLE
            assert not timer_pending(t)
            u = TimerList(rec, 0)
            mod_timer(u, kdefer_async.jiffies + 1)
            await rec.wait(virtual)
            assert rec.timers == [u]

    async def test_define_timer(self, virtual: bool) -> None:
        """DEFINE_TIMER(callback) gives a ready timer with no flags."""
        rec = Recorder()
        t = DEFINE_TIMER(rec)  # a static definition: no kernel needed yet
        assert t.function is rec
        assert t.flags == 0
        async with Kernel(nr_cpus=2, hz=1000):
            j = kdefer_async.jiffies
            t.expires = j + 1
            add_timer(t)
            await rec.wait(virtual)
            assert rec.timers == [t]
            assert rec.runs == [j + 2] if virtual else rec.runs[0] >= j + 2

    async def test_invalid_flags_warn_once_and_are_masked(self) -> None:
        """timer_setup() with bits outside DEFERRABLE|PINNED|IRQSAFE WARNs once and drops them."""
        async with Kernel(nr_cpus=2, hz=250) as k:
            t = TimerList()
            timer_setup(t, Recorder(), TIMER_DEFERRABLE | 0x1 | 0x40000000)
            assert t.flags == TIMER_DEFERRABLE
            assert len(warnings(k)) == 1
            assert any("invalid flags" in line for line in k.dmesg())
            timer_setup(t, Recorder(), TIMER_IRQSAFE | 0x2)
            assert t.flags == TIMER_IRQSAFE
            assert len(warnings(k)) == 1  # WARN_ON_ONCE
            timer_setup(t, Recorder(), TIMER_DEFERRABLE | TIMER_PINNED | TIMER_IRQSAFE)
            assert t.flags == TIMER_DEFERRABLE | TIMER_PINNED | TIMER_IRQSAFE
            assert len(warnings(k)) == 1

    async def test_async_callback_is_rejected(self) -> None:
        """An `async def` timer callback is a TypeError: timer callbacks run in atomic context."""

        async def sleeper(timer: TimerList) -> None:
            await anyio.lowlevel.checkpoint()

        with pytest.raises(TypeError, match="async def"):
            TimerList(sleeper, 0)
        with pytest.raises(TypeError, match="async def"):
            DEFINE_TIMER(sleeper)
        async with Kernel(nr_cpus=2, hz=250):
            t = TimerList()
            with pytest.raises(TypeError, match="async def"):
                timer_setup(t, sleeper, 0)
            assert t.function is None
            with pytest.raises(TypeError):
                timer_setup(t, "not callable", 0)  # type: ignore[arg-type]


class TestModTimer:
    async def test_mod_timer_return_values(self, virtual: bool) -> None:
        """TM-04: mod_timer returns 0 on an inactive timer, 1 on a pending one, 1 for a no-op."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            assert mod_timer(t, j + 10) == 0
            assert timer_pending(t)
            assert mod_timer(t, j + 20) == 1
            assert t.expires == j + 20
            assert mod_timer(t, j + 20) == 1
            assert t.expires == j + 20
            await rec.wait(virtual)
            assert rec.runs == [j + 21] if virtual else rec.runs[0] >= j + 21
            assert not timer_pending(t)
            await sentinel(virtual, j + 30)
            assert len(rec.runs) == 1
            assert mod_timer(t, kdefer_async.jiffies + 5) == 0  # inactive again after firing

    async def test_rearm_into_the_same_bucket_only_updates_expires(self, virtual: bool) -> None:
        """§5.4: re-arming a pending timer into the same level-1 bucket returns 1, keeps the tick."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            first = (j + 100) // 8 * 8 + 8  # level 1: granularity 8
            assert mod_timer(t, first) == 0
            assert mod_timer(t, first + 7) == 1  # same bucket, fires at first + 8
            assert t.expires == first + 7
            await rec.wait(virtual)
            assert rec.runs == [first + 8] if virtual else rec.runs[0] >= first + 8

    async def test_mod_timer_moves_a_pending_timer_later(self, virtual: bool) -> None:
        """mod_timer on a pending timer replaces its expiry: the old one passes without a run."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 2)
            assert mod_timer(t, j + 12) == 1
            await rec.wait(virtual)
            assert rec.runs == [j + 13] if virtual else rec.runs[0] >= j + 13
            await sentinel(virtual, kdefer_async.jiffies + 3)
            assert len(rec.runs) == 1

    async def test_mod_timer_pending_never_starts_a_timer(self, virtual: bool) -> None:
        """TM-05: mod_timer_pending on an inactive timer returns 0 and the timer stays inactive."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            assert mod_timer_pending(t, j + 2) == 0
            assert not timer_pending(t)
            await sentinel(virtual, j + 5)
            assert rec.runs == []

    async def test_mod_timer_pending_modifies_a_pending_timer(self, virtual: bool) -> None:
        """mod_timer_pending on a pending timer moves it and returns 1."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 20)
            assert mod_timer_pending(t, j + 4) == 1
            assert t.expires == j + 4
            await rec.wait(virtual)
            assert rec.runs == [j + 5] if virtual else rec.runs[0] >= j + 5
            assert mod_timer_pending(t, j + 40) == 0  # fired: inactive again
            assert not timer_pending(t)

    async def test_timer_reduce_only_moves_earlier(self, virtual: bool) -> None:
        """timer_reduce starts an inactive timer (0), and only ever moves a pending one earlier."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            assert timer_reduce(t, j + 30) == 0
            assert timer_pending(t)
            assert timer_reduce(t, j + 50) == 1
            assert t.expires == j + 30
            assert timer_reduce(t, j + 6) == 1
            assert t.expires == j + 6
            await rec.wait(virtual)
            assert rec.runs == [j + 7] if virtual else rec.runs[0] >= j + 7
            await sentinel(virtual, j + 35)
            assert len(rec.runs) == 1

    async def test_mod_timer_arms_on_the_calling_cpu(self, virtual: bool) -> None:
        """mod_timer puts a timer on the calling CPU's wheel: armed from CPU 1, it runs on CPU 1."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            rec = Recorder()
            t = TimerList(rec, 0)
            ret: list[int] = []

            def handler(irq: int, dev: object) -> int:
                ret.append(mod_timer(t, kdefer_async.jiffies + 2))
                return IRQ_HANDLED

            assert request_irq(IRQ, handler, 0, "arm", None) == 0
            k.raise_irq(IRQ, cpu=1)
            assert ret == [0]
            await rec.wait(virtual)
            assert rec.cpus == [1]
            mod_timer(t, kdefer_async.jiffies + 2)  # from the init task, on CPU 0
            await rec.wait(virtual, 2)
            assert rec.cpus == [1, 0]


class TestAddTimer:
    async def test_add_timer_starts_at_expires(self, virtual: bool) -> None:
        """add_timer starts an inactive timer at timer.expires; it fires at expires + 1."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            t.expires = j + 5
            add_timer(t)
            assert timer_pending(t)
            await rec.wait(virtual)
            assert rec.runs == [j + 6] if virtual else rec.runs[0] >= j + 6
            assert rec.cpus == [0]

    async def test_add_timer_on_a_pending_timer_warns_once(self, virtual: bool) -> None:
        """TM-06: add_timer on a pending timer WARNs once and leaves its expiry alone."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 10)
            assert warnings(k) == []
            add_timer(t)
            assert len(warnings(k)) == 1
            assert timer_pending(t)
            assert t.expires == j + 10
            t.expires = j + 500  # what a caller would write before a buggy add_timer()
            add_timer(t)
            assert len(warnings(k)) == 1  # WARN_ON_ONCE
            other = TimerList(Recorder(), 0)
            mod_timer(other, j + 600)
            add_timer(other)
            assert len(warnings(k)) == 1  # once per call site, not per timer
            timer_delete(other)
            # still in its old bucket (j + 11): it runs before a sentinel due at j + 31
            await sentinel(virtual, j + 30)
            assert len(rec.runs) == 1
            if virtual:
                assert rec.runs == [j + 11]

    async def test_add_timer_in_the_past_fires_at_the_next_tick(self, virtual: bool) -> None:
        """TM-07: add_timer with expires J-5 (already past) fires at the next tick, J+1."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            t.expires = j - 5
            add_timer(t)
            await rec.wait(virtual)
            assert rec.runs == [j + 1] if virtual else rec.runs[0] >= j + 1

    async def test_add_timer_on_pins_to_that_cpu(self, virtual: bool) -> None:
        """add_timer_on(t, 1) sets TIMER_PINNED and runs the callback on CPU 1."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            t.expires = j + 3
            add_timer_on(t, 1)
            assert t.flags & TIMER_PINNED
            assert timer_pending(t)
            await rec.wait(virtual)
            assert rec.cpus == [1]
            assert rec.runs == [j + 4] if virtual else rec.runs[0] >= j + 4

    async def test_add_timer_on_with_a_pending_timer_warns_once(self) -> None:
        """add_timer_on on a pending timer WARNs once and does not move the timer."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            t = TimerList(Recorder(), 0)
            t.expires = kdefer_async.jiffies + 50
            add_timer_on(t, 0)
            add_timer_on(t, 1)
            add_timer_on(t, 1)
            assert len(warnings(k)) == 1
            assert timer_pending(t)
            assert k.cpus[1].std_base.buckets == {}
            timer_delete(t)

    async def test_add_timer_local_and_global(self, virtual: bool) -> None:
        """add_timer_local sets TIMER_PINNED, add_timer_global clears it; both run locally."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            t.expires = kdefer_async.jiffies + 2
            add_timer_local(t)
            assert t.flags & TIMER_PINNED
            await rec.wait(virtual)
            u = TimerList(rec, TIMER_PINNED)
            u.expires = kdefer_async.jiffies + 2
            add_timer_global(u)
            assert not u.flags & TIMER_PINNED
            await rec.wait(virtual, 2)
            assert rec.timers == [t, u]
            assert rec.cpus == [0, 0]

    async def test_add_timer_local_on_pending_keeps_flags(self) -> None:
        """add_timer_local/global on a pending timer WARN once each and leave the flags alone."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            t = TimerList(Recorder(), 0)
            mod_timer(t, kdefer_async.jiffies + 50)
            add_timer_local(t)
            assert t.flags == 0
            u = TimerList(Recorder(), TIMER_PINNED)
            mod_timer(u, kdefer_async.jiffies + 50)
            add_timer_global(u)
            assert u.flags == TIMER_PINNED
            assert len(warnings(k)) == 2
            timer_delete(t)
            timer_delete(u)


class TestExpiry:
    async def test_timer_never_fires_early(self, virtual: bool) -> None:
        """TM-08: armed at J for J+10, the callback sees jiffies == J+11, never <= J+10."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 10)
            await rec.wait(virtual)
            assert rec.runs == [j + 11] if virtual else rec.runs[0] >= j + 11

    async def test_level_one_granularity(self, virtual: bool) -> None:
        """TM-09: HZ=1000, J+100 (level 1) fires at the first multiple of 8 greater than J+100."""
        async with Kernel(nr_cpus=2, hz=1000):
            if virtual:
                await anyio.sleep(0.003)  # J not a multiple of 8, so the slack shows
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 100)
            want = (j + 100) // 8 * 8 + 8
            assert want > j + 100
            assert want % 8 == 0
            await rec.wait(virtual)
            assert rec.runs == [want] if virtual else rec.runs[0] >= want

    async def test_level_two_granularity(self, virtual: bool) -> None:
        """TM-09: HZ=1000, J+1000 (level 2) fires at the first multiple of 64 above J+1000."""
        if not virtual:
            pytest.skip("a level-2 timer takes over 0.5 s of real time")
        async with Kernel(nr_cpus=2, hz=1000):
            await anyio.sleep(0.005)
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 1000)
            await rec.wait(virtual)
            assert rec.runs == [(j + 1000) // 64 * 64 + 64]

    @pytest.mark.parametrize("delta", [0, 1, 62, 63, 64, 503, 504, 4031, 4032, 40_000])
    async def test_level_boundaries(self, virtual: bool, delta: int) -> None:
        """§5.4: level n holds deltas below 63*8**n; the fire tick rounds up to 8**n jiffies."""
        if not virtual:
            pytest.skip("exact ticks need virtual time")
        async with Kernel(nr_cpus=2, hz=1000):
            await anyio.sleep(0.005)
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + delta)
            await rec.wait(virtual)
            assert rec.runs == [wheel_tick(j + delta, j)]
            assert rec.runs[0] > j + delta

    async def test_rearm_for_now_in_callback_fires_next_tick(self, virtual: bool) -> None:
        """TM-10: timer_pending is False in the callback; mod_timer(t, jiffies) runs next tick."""
        async with Kernel(nr_cpus=2, hz=1000):
            seen: list[tuple[int, bool, int, int, bool]] = []
            done = anyio.Event()

            def callback(t: TimerList) -> None:
                now = kdefer_async.jiffies
                pending_before = timer_pending(t)
                if len(seen) == 0:
                    ret = mod_timer(t, now)
                else:
                    ret = -1
                    done.set()
                seen.append(
                    (now, pending_before, timer_passes(current_kernel(), 0), ret, timer_pending(t))
                )

            t = TimerList(callback, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 3)
            with anyio.fail_after(WAIT_VIRTUAL if virtual else WAIT_REAL):
                await done.wait()
            (j1, pend1, pass1, ret1, after1), (j2, pend2, pass2, _, after2) = seen
            assert not pend1
            assert not pend2
            assert ret1 == 0  # it was not pending when re-armed
            assert after1  # pending again after the re-arm
            assert not after2
            assert pass2 > pass1  # a later TIMER_SOFTIRQ pass, not the same one
            if virtual:
                assert (j1, j2) == (j + 4, j + 5)
            else:
                assert j1 >= j + 4
                assert j2 >= j1 + 1

    async def test_same_tick_timers_run_in_one_pass_in_arm_order(self, virtual: bool) -> None:
        """TM-17: two timers due the same tick run in the same pass, one after the other, in arm order."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            events: list[tuple[str, str, int]] = []

            def make(name: str) -> Callable[[TimerList], None]:
                def callback(t: TimerList) -> None:
                    events.append((name, "enter", timer_passes(k, 0)))
                    events.append((name, "exit", timer_passes(k, 0)))

                return callback

            rec = Recorder()
            a, b = TimerList(make("a"), 0), TimerList(make("b"), 0)
            j = kdefer_async.jiffies
            expires = j + 10
            mod_timer(b, expires)
            mod_timer(a, expires)
            c = TimerList(rec, 0)
            mod_timer(c, expires)  # last armed, runs last: lets the test wait
            await rec.wait(virtual)
            names = [(name, what) for name, what, _ in events]
            assert names == [("b", "enter"), ("b", "exit"), ("a", "enter"), ("a", "exit")]
            assert len({n for _, _, n in events} | set(rec.passes)) == 1
            if virtual:
                assert rec.runs == [j + 11]

    async def test_callback_context(self, virtual: bool) -> None:
        """TM-16: callbacks run in softirq context, IRQs on, and count in the TIMER row."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            ctx: list[tuple[bool, bool, bool, bool, bool, bool]] = []
            before = [timer_passes(k, 0), timer_passes(k, 1)]
            rec = Recorder()

            def callback(t: TimerList) -> None:
                ctx.append(
                    (
                        in_serving_softirq(),
                        in_softirq(),
                        in_interrupt(),
                        in_task(),
                        in_hardirq(),
                        irqs_disabled(),
                    )
                )
                rec(t)

            t = TimerList(callback, 0)
            mod_timer(t, kdefer_async.jiffies + 2)
            await rec.wait(virtual)
            assert ctx == [(True, True, True, False, False, False)]
            assert rec.passes == [before[0] + 1]  # counted in the TIMER row, CPU 0 only
            assert timer_passes(k, 0) == before[0] + 1
            assert timer_passes(k, 1) == before[1]

    async def test_irqsafe_callback_runs_with_irqs_off(self, virtual: bool) -> None:
        """§5.3: a TIMER_IRQSAFE callback runs with local interrupts disabled."""
        async with Kernel(nr_cpus=2, hz=1000):
            seen: list[bool] = []
            rec = Recorder()

            def callback(t: TimerList) -> None:
                seen.append(irqs_disabled())
                rec(t)

            t = TimerList(callback, TIMER_IRQSAFE)
            mod_timer(t, kdefer_async.jiffies + 2)
            await rec.wait(virtual)
            assert seen == [True]
            assert not irqs_disabled()

    async def test_interrupt_in_irqsafe_callback_waits_for_it(self, virtual: bool) -> None:
        """§5.3: an interrupt raised inside a TIMER_IRQSAFE callback is delivered after it returns."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            events: list[str] = []
            rec = Recorder()

            def handler(irq: int, dev: object) -> int:
                events.append("irq")
                return IRQ_HANDLED

            def callback(t: TimerList) -> None:
                events.append("enter")
                k.raise_irq(IRQ)
                events.append("exit")
                rec(t)

            assert request_irq(IRQ, handler, 0, "held", None) == 0
            mod_timer(TimerList(callback, TIMER_IRQSAFE), kdefer_async.jiffies + 2)
            await rec.wait(virtual)
            assert events == ["enter", "exit", "irq"]
            events.clear()
            mod_timer(TimerList(callback, 0), kdefer_async.jiffies + 2)
            await rec.wait(virtual, 2)
            assert events == ["enter", "irq", "exit"]  # a plain callback is interruptible

    async def test_callback_exception_panics(self, virtual: bool) -> None:
        """An exception in a timer callback is a fatal exception in interrupt: KernelPanic."""
        boom = ValueError("boom")

        def callback(t: TimerList) -> None:
            raise boom

        k = Kernel(nr_cpus=2, hz=1000)
        with pytest.raises(KernelPanic) as info:
            await arm_and_wait_for_panic(k, callback, virtual)
        assert info.value.__cause__ is boom
        assert any("Fatal exception in interrupt" in line for line in k.dmesg())


class TestDelete:
    @pytest.mark.parametrize("delete", [timer_delete, del_timer])
    async def test_timer_delete(self, virtual: bool, delete: Callable[[TimerList], int]) -> None:
        """TM-11: timer_delete (del_timer) on a pending timer returns 1 and it never runs; else 0."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            assert delete(t) == 0
            mod_timer(t, j + 3)
            assert delete(t) == 1
            assert not timer_pending(t)
            assert delete(t) == 0
            await sentinel(virtual, j + 10)
            assert rec.runs == []

    @pytest.mark.parametrize("delete", [timer_delete_sync, del_timer_sync])
    async def test_timer_delete_sync(
        self, virtual: bool, delete: Callable[[TimerList], int]
    ) -> None:
        """TM-12: timer_delete_sync (del_timer_sync) returns 1 if it was pending, else 0."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            assert delete(t) == 0
            mod_timer(t, j + 3)
            assert delete(t) == 1
            assert not timer_pending(t)
            assert delete(t) == 0
            await sentinel(virtual, j + 10)
            assert rec.runs == []
            mod_timer(t, kdefer_async.jiffies + 1)
            await rec.wait(virtual)  # still usable after a delete
            assert delete(t) == 0
            assert warnings(k) == []

    async def test_timer_delete_sync_of_another_timer_from_a_callback(self, virtual: bool) -> None:
        """TM-12: a callback may timer_delete_sync() a different timer: 1, and no lockdep report."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            victim_rec = Recorder()
            victim = TimerList(victim_rec, 0)
            ret: list[int] = []
            rec = Recorder()

            def callback(t: TimerList) -> None:
                ret.append(timer_delete_sync(victim))
                rec(t)

            j = kdefer_async.jiffies
            mod_timer(TimerList(callback, 0), j + 2)  # armed first: never after the victim
            mod_timer(victim, j + 8)
            await rec.wait(virtual)
            assert ret == [1]
            await sentinel(virtual, j + 15)
            assert victim_rec.runs == []
            assert not any("recursive locking" in line for line in k.dmesg())

    @pytest.mark.parametrize("delete", [timer_delete_sync, del_timer_sync, timer_shutdown_sync])
    async def test_delete_sync_from_own_callback_is_a_deadlock(
        self, virtual: bool, delete: Callable[[TimerList], int]
    ) -> None:
        """TM-13: *_sync on a timer from its own callback: lockdep report, KernelBug, panic."""
        bugs: list[KernelBug] = []

        def callback(t: TimerList) -> None:
            try:
                delete(t)
            except KernelBug as exc:
                bugs.append(exc)
                raise

        k = Kernel(nr_cpus=2, hz=1000)
        with pytest.raises(KernelPanic) as info:
            await arm_and_wait_for_panic(k, callback, virtual)
        assert len(bugs) == 1
        assert info.value.__cause__ is bugs[0]
        log = k.dmesg()
        assert any("WARNING: possible recursive locking detected" in line for line in log)
        assert any(f"at: {delete.__name__}" in line for line in log)
        assert any("Kernel panic - not syncing" in line for line in log)

    @pytest.mark.parametrize(("flags", "warns"), [(0, True), (TIMER_IRQSAFE, False)])
    async def test_delete_sync_in_hardirq(self, flags: int, warns: bool) -> None:
        """TM-14: timer_delete_sync in a hardirq handler WARNs unless the timer is TIMER_IRQSAFE."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            t = TimerList(Recorder(), flags)
            ret: list[int] = []

            def handler(irq: int, dev: object) -> int:
                ret.append(timer_delete_sync(t))
                return IRQ_HANDLED

            assert request_irq(IRQ, handler, 0, "tm14", None) == 0
            mod_timer(t, kdefer_async.jiffies + 50)
            k.raise_irq(IRQ)
            assert ret == [1]
            assert not timer_pending(t)
            assert bool(warnings(k)) is warns
            assert not any("recursive locking" in line for line in k.dmesg())


class TestShutdown:
    async def test_timer_shutdown_sync(self, virtual: bool) -> None:
        """TM-15: after timer_shutdown_sync, mod_timer returns 0, add_timer is ignored, no run."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 3)
            assert timer_shutdown_sync(t) == 1
            assert not timer_pending(t)
            assert t.function is None
            assert mod_timer(t, j + 1) == 0
            assert not timer_pending(t)
            t.expires = j + 2
            add_timer(t)
            add_timer_on(t, 1)
            assert not timer_pending(t)
            assert mod_timer_pending(t, j + 2) == 0
            assert timer_reduce(t, j + 2) == 0
            assert not timer_pending(t)
            await sentinel(virtual, j + 10)
            assert rec.runs == []
            assert warnings(k) == []  # ignored silently
            assert timer_shutdown_sync(t) == 0

    async def test_timer_setup_revives_a_shut_down_timer(self, virtual: bool) -> None:
        """TM-15: a shut-down timer needs timer_setup() again; then it works as new."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            assert timer_shutdown(t) == 0
            assert mod_timer(t, kdefer_async.jiffies + 2) == 0
            assert not timer_pending(t)
            timer_setup(t, rec, 0)
            assert mod_timer(t, kdefer_async.jiffies + 2) == 0
            assert timer_pending(t)
            await rec.wait(virtual)
            assert len(rec.runs) == 1

    async def test_timer_shutdown_returns_whether_pending(self, virtual: bool) -> None:
        """timer_shutdown (no wait) returns 1 for a pending timer, which then never runs."""
        async with Kernel(nr_cpus=2, hz=1000):
            rec = Recorder()
            t = TimerList(rec, 0)
            j = kdefer_async.jiffies
            mod_timer(t, j + 3)
            assert timer_shutdown(t) == 1
            assert mod_timer(t, j + 4) == 0
            await sentinel(virtual, j + 10)
            assert rec.runs == []


class TestDeferrable:
    async def test_deferrable_timer_waits_for_a_normal_timer(self, virtual: bool) -> None:
        """TM-18: a deferrable timer on an idle CPU does not fire until a normal timer wakes it."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            log: list[tuple[str, int]] = []
            drec = Recorder("deferrable", log)
            d = TimerList(drec, TIMER_DEFERRABLE)
            j = kdefer_async.jiffies
            d.expires = j + 3
            add_timer_on(d, 1)
            await settle()
            assert k.cpus[1]._tick_scope.deadline == math.inf  # it does not wake CPU 1
            if virtual:
                await anyio.sleep(1)  # CPU 0's task only: CPU 1 stays idle
            else:
                await sentinel(virtual, j + 15)  # on CPU 0
            assert drec.runs == []
            assert timer_pending(d)
            nrec = Recorder("normal", log)
            n = TimerList(nrec, 0)
            wake = kdefer_async.jiffies + 2
            n.expires = wake
            add_timer_on(n, 1)
            await nrec.wait(virtual)
            assert [name for name, _ in log] == ["normal", "deferrable"]
            assert drec.cpus == [1]
            assert drec.passes == nrec.passes  # the same TIMER_SOFTIRQ pass on CPU 1
            if virtual:
                assert drec.runs == nrec.runs == [wake + 1]
            else:
                assert drec.runs[0] >= wake + 1

    async def test_deferrable_timer_runs_when_an_interrupt_wakes_the_cpu(
        self, virtual: bool
    ) -> None:
        """TM-18: an interrupt on the idle CPU runs its overdue deferrable timer on irq exit."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            drec = Recorder("deferrable")
            d = TimerList(drec, TIMER_DEFERRABLE)
            j = kdefer_async.jiffies
            d.expires = j + 3
            add_timer_on(d, 1)
            if virtual:
                await anyio.sleep(1)
            else:
                await sentinel(virtual, j + 15)
            assert drec.runs == []
            handled: list[int] = []

            def handler(irq: int, dev: object) -> int:
                handled.append(smp_processor_id())
                return IRQ_HANDLED

            assert request_irq(IRQ, handler, 0, "wake", None) == 0
            now = kdefer_async.jiffies
            k.raise_irq(IRQ, cpu=1)
            assert handled == [1]
            assert len(drec.runs) == 1  # ran on irq exit, before raise_irq returned
            assert drec.cpus == [1]
            assert drec.runs[0] >= j + 4
            if virtual:
                assert drec.runs == [now]
            assert not timer_pending(d)

    async def test_deferrable_timer_on_a_busy_cpu_fires_on_time(self, virtual: bool) -> None:
        """A deferrable timer on a CPU that is awake for a normal timer anyway runs on time."""
        async with Kernel(nr_cpus=2, hz=1000):
            log: list[tuple[str, int]] = []
            drec = Recorder("deferrable", log)
            nrec = Recorder("normal", log)
            d = TimerList(drec, TIMER_DEFERRABLE)
            n = TimerList(nrec, 0)
            j = kdefer_async.jiffies
            mod_timer(d, j + 5)
            mod_timer(n, j + 5)
            await nrec.wait(virtual)
            assert [name for name, _ in log] == ["normal", "deferrable"]
            if virtual:
                assert drec.runs == [j + 6]


class TestTickless:
    async def test_idle_kernel_has_no_tick(self) -> None:
        """NO_HZ: with nothing armed, every CPU's tick sleeps with no deadline."""
        async with Kernel(nr_cpus=4, hz=1000) as k:
            await settle()
            assert [c._tick_scope.deadline for c in k.cpus] == [math.inf] * 4

    async def test_tick_follows_the_earliest_timer_then_stops(self, virtual: bool) -> None:
        """NO_HZ: an armed timer gives its CPU a finite tick deadline; after it fires, none."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            rec = Recorder()
            t = TimerList(rec, 0)
            await settle()
            mod_timer(t, kdefer_async.jiffies + 5)
            assert k.cpus[0]._tick_scope.deadline < math.inf  # reprogrammed at once
            assert k.cpus[1]._tick_scope.deadline == math.inf
            await rec.wait(virtual)
            await settle()
            assert [c._tick_scope.deadline for c in k.cpus] == [math.inf, math.inf]
            assert [c.std_base.buckets for c in k.cpus] == [{}, {}]

    async def test_rearming_leaves_no_buckets_behind(self) -> None:
        """Re-arming one timer 10k times keeps at most one bucket; timer_delete leaves none."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            base = k.cpus[0].std_base
            t = TimerList(Recorder(), 0)
            j = kdefer_async.jiffies
            sizes = set()
            for i in range(1, 10_001):
                mod_timer(t, j + 100 + i)
                sizes.add(len(base.buckets))
            assert sizes == {1}
            assert timer_delete(t) == 1
            assert base.buckets == {}
            for i in range(1000):
                mod_timer(t, j + 100 + i)
                timer_delete(t)
            assert base.buckets == {}
            assert k.cpus[0].def_base.buckets == {}


class TestBadInput:
    async def test_non_int_expires(self) -> None:
        """expires must be an int of jiffies: a float, str or bool is a TypeError, nothing armed."""
        async with Kernel(nr_cpus=2, hz=1000) as k:
            t = TimerList(Recorder(), 0)
            j = kdefer_async.jiffies
            for bad in (j + 1.0, str(j + 1), True, None):
                with pytest.raises(TypeError):
                    mod_timer(t, bad)  # type: ignore[arg-type]
                with pytest.raises(TypeError):
                    mod_timer_pending(t, bad)  # type: ignore[arg-type]
                with pytest.raises(TypeError):
                    timer_reduce(t, bad)  # type: ignore[arg-type]
                t.expires = bad  # type: ignore[assignment]
                with pytest.raises(TypeError):
                    add_timer(t)
                with pytest.raises(TypeError):
                    add_timer_on(t, 1)
            assert not timer_pending(t)
            assert t.flags == 0
            assert all(c.std_base.buckets == {} for c in k.cpus)

    async def test_add_timer_on_bad_cpu(self) -> None:
        """add_timer_on with a CPU that does not exist is a ValueError (a non-int: TypeError)."""
        async with Kernel(nr_cpus=2, hz=1000):
            t = TimerList(Recorder(), 0)
            t.expires = kdefer_async.jiffies + 5
            for cpu in (2, -1, 1024):
                with pytest.raises(ValueError, match="CPU"):
                    add_timer_on(t, cpu)
            with pytest.raises(TypeError):
                add_timer_on(t, "1")  # type: ignore[arg-type]
            assert not timer_pending(t)
            assert t.flags == 0

    async def test_timer_never_set_up(self) -> None:
        """Arming a TimerList() that was never set up is a ValueError."""
        async with Kernel(nr_cpus=2, hz=1000):
            t = TimerList()
            with pytest.raises(ValueError, match="timer_setup"):
                mod_timer(t, kdefer_async.jiffies + 5)
            t.expires = kdefer_async.jiffies + 5
            with pytest.raises(ValueError, match="timer_setup"):
                add_timer(t)
            with pytest.raises(ValueError, match="timer_setup"):
                add_timer_on(t, 1)
            assert not timer_pending(t)
            assert timer_delete(t) == 0

    async def test_not_a_timer(self) -> None:
        """Passing something that is not a TimerList is a TypeError."""
        async with Kernel(nr_cpus=2, hz=1000):
            for fn in (mod_timer, mod_timer_pending, timer_reduce):
                with pytest.raises(TypeError, match="TimerList"):
                    fn(object(), 5)  # type: ignore[arg-type]
            for fn1 in (add_timer, timer_pending, timer_delete, timer_delete_sync):
                with pytest.raises(TypeError, match="TimerList"):
                    fn1(object())  # type: ignore[arg-type]

    async def test_no_kernel(self) -> None:
        """Arming a timer with no kernel running raises RuntimeError; defining one does not."""
        t = TimerList(Recorder(), 0)
        t.expires = 100
        with pytest.raises(RuntimeError, match="Kernel"):
            mod_timer(t, 100)
        with pytest.raises(RuntimeError):
            mod_timer_pending(t, 100)
        with pytest.raises(RuntimeError):
            add_timer(t)
        with pytest.raises(RuntimeError):
            add_timer_on(t, 0)
        assert not timer_pending(t)


ULONG_MAX = 2**64 - 1


def _tick(timer: TimerList) -> None:
    """A well-formed timer callback."""


class TestArguments:
    def test_define_timer_needs_a_callback(self) -> None:
        """DEFINE_TIMER(None) is a TypeError: the timer is defined to run something."""
        with pytest.raises(
            TypeError,
            match=r"^DEFINE_TIMER\(\) expects a function callable as callback\(timer\) for "
            r"'callback', got NoneType$",
        ):
            DEFINE_TIMER(None)  # type: ignore[arg-type]

    def test_callback_arity_is_checked_at_construction(self) -> None:
        """TimerList(lambda: 0) is a TypeError at construction showing callback(timer)."""
        with pytest.raises(
            TypeError,
            match=r"^TimerList\(\) expects a function callable as callback\(timer\) for "
            r"'callback', but <lambda>\(\) cannot be called with 1 positional argument$",
        ):
            TimerList(lambda: 0)  # type: ignore[arg-type,misc]
        with pytest.raises(
            TypeError,
            match=r"^TimerList\(\) expects a function callable as callback\(timer\) for "
            r"'callback', got NoneType$",
        ):
            TimerList(None, TIMER_DEFERRABLE)

    async def test_timer_setup_checks_before_changing_the_timer(self) -> None:
        """A rejected timer_setup leaves a pending timer armed, with its function and flags."""
        async with Kernel(nr_cpus=1, hz=250):
            t = TimerList(_tick, TIMER_DEFERRABLE)
            mod_timer(t, kdefer_async.jiffies + 10)
            expires = t.expires
            cases: list[tuple[type[Exception], str, Callable[[], object]]] = [
                (
                    TypeError,
                    r"^timer_setup\(\) expects a function callable as callback\(timer\) for "
                    r"'callback', but <lambda>\(a, b\) cannot be called with 1 positional "
                    r"argument$",
                    lambda: timer_setup(t, lambda a, b: 0, 0),  # type: ignore[arg-type,misc]
                ),
                (
                    ValueError,
                    r"^timer_setup\(\) expects timer flags \(an unsigned int\) for 'flags', "
                    r"got -1$",
                    lambda: timer_setup(t, _tick, -1),
                ),
                (
                    ValueError,
                    r"^timer_setup\(\) expects timer flags \(an unsigned int\) for 'flags', "
                    rf"got {2**32}$",
                    lambda: timer_setup(t, _tick, 2**32),
                ),
                (
                    TypeError,
                    r"^timer_setup\(\) expects an int for 'flags', got bool$",
                    lambda: timer_setup(t, _tick, True),
                ),
                (
                    TypeError,
                    r"^timer_setup\(\) expects a TimerList for 'timer', got NoneType$",
                    lambda: timer_setup(None, _tick, 0),  # type: ignore[arg-type]
                ),
            ]
            for exc, message, call in cases:
                with pytest.raises(exc, match=message):
                    call()
            assert (t.function, t.flags, t.expires) == (_tick, TIMER_DEFERRABLE, expires)
            assert timer_pending(t)
            assert warnings(current_kernel()) == []

    @pytest.mark.parametrize(
        "name",
        [
            "mod_timer",
            "mod_timer_pending",
            "timer_reduce",
            "add_timer",
            "add_timer_local",
            "add_timer_global",
            "add_timer_on",
            "timer_pending",
            "timer_delete",
            "del_timer",
            "timer_delete_sync",
            "del_timer_sync",
            "timer_shutdown",
            "timer_shutdown_sync",
        ],
    )
    async def test_every_timer_api_names_itself(self, name: str) -> None:
        """Each timer API rejects None with a TypeError naming itself and 'timer'."""
        extra = {"mod_timer": (5,), "mod_timer_pending": (5,), "timer_reduce": (5,)}
        extra["add_timer_on"] = (0,)
        call = getattr(kdefer_async, name)
        async with Kernel(nr_cpus=1, hz=250) as k:
            with pytest.raises(
                TypeError, match=rf"^{name}\(\) expects a TimerList for 'timer', got NoneType$"
            ):
                call(None, *extra.get(name, ()))
            assert warnings(k) == []

    @pytest.mark.parametrize(
        ("expires", "exc", "shown"),
        [
            (-1, ValueError, "-1"),
            (2**64, ValueError, str(2**64)),
            (1.5, TypeError, "float"),
            (True, TypeError, "bool"),
        ],
    )
    async def test_expires_is_a_jiffies_value(
        self, expires: object, exc: type[Exception], shown: str
    ) -> None:
        """mod_timer(t, -1) is a ValueError (an unsigned long), not a timer that fires now."""
        expected = rf"a jiffies value from 0 to {ULONG_MAX}" if exc is ValueError else "an int"
        async with Kernel(nr_cpus=1, hz=250):
            idle = TimerList(_tick)
            armed = TimerList(_tick)
            mod_timer(armed, kdefer_async.jiffies + 100)
            due = armed.expires
            for fn, t in (
                (mod_timer, idle),
                (mod_timer, armed),
                (mod_timer_pending, armed),
                (timer_reduce, armed),
            ):
                with pytest.raises(
                    exc, match=rf"^{fn.__name__}\(\) expects {expected} for 'expires', got {shown}$"
                ):
                    fn(t, expires)  # type: ignore[arg-type]
            assert not timer_pending(idle)
            assert timer_pending(armed)
            assert armed.expires == due

    async def test_add_timer_checks_before_changing_the_flags(self) -> None:
        """add_timer_local/global reject a bad timer.expires or an unset timer, flags untouched."""
        async with Kernel(nr_cpus=2, hz=250):
            t = TimerList(_tick)
            t.expires = "soon"  # type: ignore[assignment]
            for fn in (add_timer_local, add_timer_global, add_timer):
                with pytest.raises(
                    TypeError,
                    match=rf"^{fn.__name__}\(\) expects an int for 'timer.expires', got str$",
                ):
                    fn(t)
            bare = TimerList()
            bare.flags = TIMER_PINNED
            bare.expires = kdefer_async.jiffies + 5
            with pytest.raises(
                ValueError,
                match=r"^add_timer_global\(\) expects a TimerList set up by timer_setup\(\) "
                r"for 'timer', got <TimerList None expires=\d+ inactive>$",
            ):
                add_timer_global(bare)
            assert (t.flags, bare.flags) == (0, TIMER_PINNED)
            assert not timer_pending(t)
            assert not timer_pending(bare)

    async def test_add_timer_on_checks_the_cpu(self) -> None:
        """add_timer_on(t, 2) on a two-CPU kernel is a ValueError naming the CPU range."""
        async with Kernel(nr_cpus=2, hz=250):
            t = TimerList(_tick)
            t.expires = kdefer_async.jiffies + 5
            with pytest.raises(
                ValueError,
                match=r"^add_timer_on\(\) expects a CPU number from 0 to 1 for 'cpu', got 2$",
            ):
                add_timer_on(t, 2)
            with pytest.raises(
                TypeError, match=r"^add_timer_on\(\) expects an int for 'cpu', got bool$"
            ):
                add_timer_on(t, False)
            assert not timer_pending(t)
            assert t.flags == 0


# -- the wheel against a reference model ------------------------------------------------------

N_TIMERS = 3
#: Delays at the level boundaries (HZ=1000: level 0 below 63, level 1 below 504).
BOUNDARIES = [0, 1, 62, 63, 64, 65, 503, 504, 505, 2000]
#: (wait before, "arm" | "delete", timer index, delay, delay of one re-arm from the callback)
Op = tuple[int, str, int, int, int | None]


def reference_fires(ops: list[Op], start: int) -> list[tuple[int, int]]:
    """Predict (timer, tick) of every run: §5.4's wheel, one CPU base, arm order within a tick."""
    now = clk = start
    seq = 0
    pending: dict[int, tuple[int, int, int]] = {}  # index -> (expires, fire tick, arm sequence)
    again: dict[int, int | None] = {}  # index -> delay the callback re-arms with, once
    fired: list[tuple[int, int]] = []

    def arm(i: int, expires: int, at: int) -> None:
        nonlocal seq
        tick = wheel_tick(expires, clk)
        assert tick > at  # never early, never in the pass that armed it
        old = pending.get(i)
        if old is not None and old[0] == expires:
            return  # mod_timer() to the same expiry: a no-op
        if old is not None and old[1] == tick:
            pending[i] = (expires, tick, old[2])  # same bucket: only expires changes
            return
        seq += 1
        pending[i] = (expires, tick, seq)

    def run_until(t: int) -> None:
        nonlocal clk
        while pending:
            f, _, i = min((f, s, i) for i, (_, f, s) in pending.items())
            if f > t:
                return
            del pending[i]
            clk = max(clk, f + 1)  # the base clock moves past the bucket before callbacks
            fired.append((i, f))
            d = again.pop(i, None)
            if d is not None:
                arm(i, f + d, f)

    for wait, kind, idx, delay, rearm in ops:
        now += wait
        run_until(now)  # the tick of `now` has been taken before the op runs
        if kind == "delete":
            pending.pop(idx, None)
            continue
        clk = max(clk, now)  # forward_timer_base()
        again[idx] = rearm
        arm(idx, now + delay, now)
    run_until(now + 10_000)
    return fired


async def _drive(ops: list[Op]) -> tuple[int, list[tuple[int, int]]]:
    k = current_kernel()
    fired: list[tuple[int, int]] = []
    again: dict[int, int | None] = {}
    timers = [TimerList() for _ in range(N_TIMERS)]

    def callback(t: TimerList) -> None:
        i = timers.index(t)
        now = kdefer_async.jiffies
        fired.append((i, now))
        d = again.pop(i, None)
        if d is not None:
            assert mod_timer(t, now + d) == 0

    for t in timers:
        timer_setup(t, callback, 0)
    start = now = kdefer_async.jiffies
    for wait, kind, idx, delay, rearm in ops:
        now += wait
        await anyio.sleep_until(k.jiffies_to_time(now))
        await settle()
        assert kdefer_async.jiffies == now
        if kind == "arm":
            again[idx] = rearm
            mod_timer(timers[idx], now + delay)
        else:
            timer_delete(timers[idx])
    await anyio.sleep_until(k.jiffies_to_time(now + 10_000))
    await settle()
    assert not any(timer_pending(t) for t in timers)
    return start, fired


DELAYS = st.one_of(st.sampled_from(BOUNDARIES), st.integers(min_value=0, max_value=2000))


@settings(max_examples=40, deadline=None)
@given(
    ops=st.lists(
        st.tuples(
            st.one_of(st.just(0), st.integers(min_value=0, max_value=600)),
            st.sampled_from(["arm", "arm", "delete"]),
            st.integers(min_value=0, max_value=N_TIMERS - 1),
            DELAYS,
            st.one_of(st.none(), DELAYS),
        ),
        min_size=1,
        max_size=12,
    ),
    skew=st.integers(min_value=0, max_value=63),
)
def test_wheel_matches_reference_model(ops: list[Op], skew: int) -> None:
    """§5.4: random arm/re-arm/delete sequences fire exactly at the reference wheel's ticks."""
    ops = [(ops[0][0] + skew, *ops[0][1:]), *ops[1:]]
    start, fired = kdefer_async.run(
        _drive, ops, backend="trio", virtual_time=True, hz=1000, nr_cpus=1
    )
    assert fired == reference_fires(ops, start)
