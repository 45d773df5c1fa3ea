"""High-resolution timers: expiry at exact ktimes, hard and soft context, RESTART and forwarding,
cancelling, queries, ktime helpers, the hrtimer sleeps.

Covers kernel-semantics-2 §2 and HR-01..HR-21.


* Not modelled (§2.9): hardware latency (callbacks run exactly at their expiry, so real-time
  runs assert ``>=``), the migration of non-pinned timers to a busy CPU (timers stay on the
  CPU that starts them), a cancel racing a callback on another CPU (-1 is seen only from the
  callback itself), PREEMPT_RT's soft expiry of unmarked timers, and low-resolution mode.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from helpers import logged

import kdefer_async
from kdefer_async import (
    CLOCK_BOOTTIME,
    CLOCK_MONOTONIC,
    CLOCK_REALTIME,
    EINTR,
    HRTIMER_MODE_ABS,
    HRTIMER_MODE_REL,
    HRTIMER_MODE_REL_SOFT,
    HRTIMER_NORESTART,
    HRTIMER_RESTART,
    KTIME_MAX,
    SIGUSR1,
    TASK_INTERRUPTIBLE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    HrTimer,
    Kernel,
    KernelBug,
    KernelPanic,
    TimerList,
    current,
    current_kernel,
    fsleep,
    hrtimer_active,
    hrtimer_callback_running,
    hrtimer_cancel,
    hrtimer_forward,
    hrtimer_forward_now,
    hrtimer_get_expires,
    hrtimer_get_remaining,
    hrtimer_init,
    hrtimer_is_queued,
    hrtimer_setup,
    hrtimer_start,
    hrtimer_start_range_ns,
    hrtimer_try_to_cancel,
    in_hardirq,
    in_serving_softirq,
    irqs_disabled,
    ktime_add,
    ktime_add_ns,
    ktime_after,
    ktime_before,
    ktime_get,
    ktime_get_boottime,
    ktime_get_ns,
    ktime_set,
    ktime_sub,
    ktime_to_ms,
    ktime_to_ns,
    ktime_to_us,
    local_irq_disable,
    local_irq_enable,
    mod_timer,
    ms_to_ktime,
    ns_to_ktime,
    schedule_hrtimeout,
    schedule_hrtimeout_range,
    send_sig,
    set_current_state,
    smp_processor_id,
    udelay,
    us_to_ktime,
    usleep_range,
    wake_up_process,
)

pytestmark = pytest.mark.anyio

WAIT_VIRTUAL = 60.0
WAIT_REAL = 5.0
MS = 1_000_000
US = 1_000


class Rec:
    """An hrtimer callback recording, at each run, ktime, jiffies, context and the LOC count."""

    def __init__(self, result: Callable[[HrTimer], int] | None = None) -> None:
        self.result = result
        self.times: list[int] = []
        self.jiffies: list[int] = []
        self.ctx: list[tuple[bool, bool, bool]] = []
        self.loc: list[int] = []
        self.states: list[tuple[bool, bool, bool]] = []
        self._event: anyio.Event | None = None

    def __call__(self, t: HrTimer) -> int:
        k = current_kernel()
        self.times.append(ktime_get())
        self.jiffies.append(kdefer_async.jiffies)
        self.ctx.append((in_hardirq(), in_serving_softirq(), irqs_disabled()))
        self.loc.append(k.loc_interrupts[smp_processor_id()])
        self.states.append((hrtimer_is_queued(t), hrtimer_active(t), hrtimer_callback_running(t)))
        if self._event is not None:
            self._event.set()
        return self.result(t) if self.result is not None else HRTIMER_NORESTART

    async def wait(self, virtual: bool, n: int = 1) -> None:
        """Wait until the callback has run *n* times in all (no kernel timer involved)."""
        with anyio.fail_after(WAIT_VIRTUAL if virtual else WAIT_REAL):
            while len(self.times) < n:
                self._event = anyio.Event()
                await self._event.wait()


def hrtimer(fn: Callable[[HrTimer], object], mode: int = HRTIMER_MODE_REL) -> HrTimer:
    t = HrTimer()
    hrtimer_setup(t, fn, CLOCK_MONOTONIC, mode)
    return t


def warnings(k: Kernel) -> int:
    return logged(k, "WARNING: CPU:")


class Count:
    """A counter that callbacks bump; a task waits until it reaches a number."""

    def __init__(self) -> None:
        self.n = 0
        self._want = 0
        self._event = anyio.Event()

    def hit(self) -> None:
        self.n += 1
        if self.n >= self._want:
            self._event.set()

    async def wait(self, virtual: bool, n: int) -> None:
        with anyio.fail_after(WAIT_VIRTUAL if virtual else WAIT_REAL):
            while self.n < n:
                self._want = n
                self._event = anyio.Event()
                await self._event.wait()


async def quiet(virtual: bool, seconds: float) -> None:
    """Let *seconds* pass (on the loop's clock, no kernel timer armed)."""
    await anyio.sleep(seconds)


class TestExpiry:
    async def test_hr01_expires_at_exact_ns(self, virtual: bool) -> None:
        """HR-01: a REL 3 ms timer runs once at T + 3 000 000 ns exactly (not rounded to a
        tick: jiffies moved by at most 1), in hardirq context with interrupts off."""
        async with Kernel(nr_cpus=2, hz=250):
            rec = Rec()
            t = hrtimer(rec)
            j = kdefer_async.jiffies
            start = ktime_get()
            hrtimer_start(t, ms_to_ktime(3), HRTIMER_MODE_REL)
            await rec.wait(virtual)
            await quiet(virtual, 0.01)
            assert len(rec.times) == 1
            assert rec.ctx == [(True, False, True)]
            if virtual:
                assert rec.times == [start + 3 * MS]
                assert rec.jiffies[0] - j <= 1
            else:
                assert rec.times[0] >= start + 3 * MS

    async def test_hr02_soft_runs_in_hrtimer_softirq(self, virtual: bool) -> None:
        """HR-02: a *_SOFT timer runs in softirq context with interrupts on; the HRTIMER row
        of /proc/softirqs grows by one."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            rec = Rec()
            t = hrtimer(rec, HRTIMER_MODE_REL_SOFT)
            before = k.cpus[0].softirq_stat[kdefer_async.HRTIMER_SOFTIRQ]
            start = ktime_get()
            hrtimer_start(t, ms_to_ktime(3), HRTIMER_MODE_REL_SOFT)
            await rec.wait(virtual)
            assert rec.ctx == [(False, True, False)]
            assert k.cpus[0].softirq_stat[kdefer_async.HRTIMER_SOFTIRQ] == before + 1
            assert (rec.times[0] == start + 3 * MS) if virtual else rec.times[0] >= start + 3 * MS
            row = [line for line in k.proc_softirqs().splitlines() if "HRTIMER:" in line]
            assert row[0].split()[1] == str(before + 1)

    async def test_hr03_soft_bit_mismatch_warns_once(self, virtual: bool) -> None:
        """HR-03: set up SOFT, started REL: one WARN (once), and it still runs as a softirq."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            rec = Rec()
            t = hrtimer(rec, HRTIMER_MODE_REL_SOFT)
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            await rec.wait(virtual)
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            await rec.wait(virtual, 2)
            assert warnings(k) == 1
            assert rec.ctx == [(False, True, False)] * 2

    async def test_hr04_no_function_and_legacy_init(self, virtual: bool) -> None:
        """HR-04: hrtimer_setup(t, None) WARNs once and starting it runs nothing visible;
        hrtimer_init + t.function = cb behaves like HR-01."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            t = HrTimer()
            hrtimer_setup(t, None, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
            assert warnings(k) == 1
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            assert hrtimer_is_queued(t)
            sentinel = Rec()  # later on the same CPU: when it has run, t has too
            hrtimer_start(hrtimer(sentinel), ms_to_ktime(2), HRTIMER_MODE_REL)
            await sentinel.wait(virtual)
            assert not hrtimer_active(t)
            assert warnings(k) == 1
            assert k.oopses == []

            rec = Rec()
            legacy = HrTimer()
            hrtimer_init(legacy, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
            legacy.function = rec
            start = ktime_get()
            hrtimer_start(legacy, ms_to_ktime(3), HRTIMER_MODE_REL)
            await rec.wait(virtual)
            assert rec.ctx == [(True, False, True)]
            assert (rec.times[0] == start + 3 * MS) if virtual else rec.times[0] >= start + 3 * MS

    async def test_hr05_absolute_expiry(self, virtual: bool) -> None:
        """HR-05: ABS at now + 5 ms is REL 5 ms; an ABS expiry in the past does not run inside
        hrtimer_start, but runs before the next tick."""
        async with Kernel(nr_cpus=1, hz=250):
            await quiet(virtual, 0.02)  # so that "now - 1 ms" is a positive ktime
            rec = Rec()
            t = hrtimer(rec, HRTIMER_MODE_ABS)
            start = ktime_get()
            hrtimer_start(t, start + ms_to_ktime(5), HRTIMER_MODE_ABS)
            await rec.wait(virtual)
            assert (rec.times[0] == start + 5 * MS) if virtual else rec.times[0] >= start + 5 * MS
            j = kdefer_async.jiffies
            past = ktime_get()
            hrtimer_start(t, past - MS, HRTIMER_MODE_ABS)
            assert len(rec.times) == 1  # not run synchronously
            await rec.wait(virtual, 2)
            if virtual:
                assert rec.times[1] == past
                assert rec.jiffies[1] == j

    async def test_hr06_states(self, virtual: bool) -> None:
        """HR-06: queued/active/running: T/T/F after start, F/T/T in the callback, F/F/F after
        a NORESTART return."""
        async with Kernel(nr_cpus=1, hz=250):
            rec = Rec()
            t = hrtimer(rec)
            assert (hrtimer_is_queued(t), hrtimer_active(t), hrtimer_callback_running(t)) == (
                False,
                False,
                False,
            )
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            assert (hrtimer_is_queued(t), hrtimer_active(t), hrtimer_callback_running(t)) == (
                True,
                True,
                False,
            )
            await rec.wait(virtual)
            assert rec.states == [(False, True, True)]
            assert (hrtimer_is_queued(t), hrtimer_active(t), hrtimer_callback_running(t)) == (
                False,
                False,
                False,
            )

    async def test_hr16_equal_expiries_run_in_start_order(self, virtual: bool) -> None:
        """HR-16: A and B started in that order for the same absolute expiry run A then B,
        in one interrupt; so do many more."""
        async with Kernel(nr_cpus=1, hz=250):
            order: list[str] = []
            loc: list[int] = []
            count = Count()

            def make(name: str) -> HrTimer:
                def cb(t: HrTimer) -> int:
                    order.append(name)
                    loc.append(current_kernel().loc_interrupts[0])
                    count.hit()
                    return HRTIMER_NORESTART

                return hrtimer(cb, HRTIMER_MODE_ABS)

            names = ["A", "B", *(f"t{i}" for i in range(20))]
            timers = [make(n) for n in names]
            when = ktime_get() + 2 * MS
            for t in timers:
                hrtimer_start(t, when, HRTIMER_MODE_ABS)
            await count.wait(virtual, len(names))
            assert order == names
            assert len(set(loc)) == 1

    async def test_same_instant_as_the_tick_runs_in_its_interrupt(self, virtual: bool) -> None:
        """A timer due at the instant a wheel timer's tick fires runs in that same local timer
        interrupt (exact instants: virtual time)."""
        if not virtual:
            pytest.skip("exact instants need virtual time")
        async with Kernel(nr_cpus=1, hz=250) as k:
            wheel_loc: list[int] = []
            wheel = TimerList(lambda _t: wheel_loc.append(k.loc_interrupts[0]))
            j = k.jiffies
            mod_timer(wheel, j + 1)  # runs at the tick of jiffy j + 2
            when = (j + 2 - k.initial_jiffies) * (1_000_000_000 // k.hz)
            rec = Rec()
            hrtimer_start(hrtimer(rec, HRTIMER_MODE_ABS), when, HRTIMER_MODE_ABS)
            await rec.wait(virtual)
            await quiet(virtual, 0.01)
            assert rec.times == [when]
            assert wheel_loc == rec.loc

    async def test_reprograms_a_sleeping_cpu(self, virtual: bool) -> None:
        """A CPU asleep until a far wheel timer is woken for a nearer hrtimer."""
        async with Kernel(nr_cpus=1, hz=250):
            far = TimerList(lambda _t: None)
            mod_timer(far, kdefer_async.jiffies + 250)
            await quiet(virtual, 0.001)  # the tick now sleeps until the far timer
            rec = Rec()
            start = ktime_get()
            hrtimer_start(hrtimer(rec), ms_to_ktime(2), HRTIMER_MODE_REL)
            await rec.wait(virtual)
            assert (rec.times[0] == start + 2 * MS) if virtual else rec.times[0] >= start + 2 * MS

    async def test_exception_in_callback_panics(self, virtual: bool) -> None:
        """An exception in a hard callback is an oops in interrupt: the kernel panics."""
        k = Kernel(nr_cpus=1, hz=250)

        def bad(t: HrTimer) -> int:
            raise RuntimeError("boom")

        async def boot_and_wait() -> None:
            async with k:
                hrtimer_start(hrtimer(bad), ms_to_ktime(1), HRTIMER_MODE_REL)
                with anyio.fail_after(WAIT_VIRTUAL if virtual else WAIT_REAL):
                    await anyio.sleep_forever()

        with pytest.raises(KernelPanic):
            await boot_and_wait()
        assert any("Fatal exception in interrupt" in line for line in k.dmesg())


class TestRestart:
    async def test_hr09_periodic_forward_now(self, virtual: bool) -> None:
        """HR-09: forward_now(1 ms) + RESTART from T: runs at T+1, T+2, T+3 ms...; each forward
        returns 1 (virtual time: on time)."""
        async with Kernel(nr_cpus=1, hz=250):
            overruns: list[int] = []

            def step(t: HrTimer) -> int:
                overruns.append(hrtimer_forward_now(t, ms_to_ktime(1)))
                return HRTIMER_RESTART if len(overruns) < 5 else HRTIMER_NORESTART

            rec = Rec(step)
            t = hrtimer(rec)
            start = ktime_get()
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            await rec.wait(virtual, 5)
            assert not hrtimer_active(t)
            if virtual:
                assert rec.times == [start + i * MS for i in range(1, 6)]
                assert overruns == [1] * 5
            else:
                assert all(b > a for a, b in zip(rec.times, rec.times[1:], strict=False))
                assert all(n >= 1 for n in overruns)

    async def test_hr10_late_run_after_irqs_off_busy_wait(self, virtual: bool) -> None:
        """HR-10: a periodic 1 ms timer on CPU 0; right after its run at E the task on CPU 0
        busy-waits 3.5 ms with interrupts off: one late run at E+3.5 ms (for the expiry E+1),
        whose forward_now returns 3, then the next run at E+4 ms."""
        async with Kernel(nr_cpus=1, hz=250):
            overruns: list[int] = []

            def step(t: HrTimer) -> int:
                overruns.append(hrtimer_forward_now(t, ms_to_ktime(1)))
                return HRTIMER_RESTART if len(overruns) < 8 else HRTIMER_NORESTART

            rec = Rec(step)
            t = hrtimer(rec)
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            await rec.wait(virtual, 1)
            local_irq_disable()
            # (a loaded machine may have run it again before this task resumed: count from
            # the last run before interrupts went off)
            n = len(rec.times)
            e = rec.times[-1]
            udelay(3500)
            assert len(rec.times) == n  # nothing entered the busy-wait
            local_irq_enable()  # the held tick: the late run, here
            assert len(rec.times) == n + 1
            await rec.wait(virtual, n + 2)
            hrtimer_cancel(t)
            assert rec.times[n] >= e + 3500 * US
            assert overruns[n] >= 3
            if virtual:
                assert n == 1
                assert rec.times[:3] == [e, e + 3500 * US, e + 4 * MS]
                assert overruns[:3] == [1, 3, 1]

    async def test_hr11_forward_arithmetic(self) -> None:
        """HR-11: expiry E, forward(now=E+10, interval=3) -> 4 and expiry E+12; exactly three
        intervals late -> 4; now before the expiry -> 0 and unchanged; on a queued timer ->
        WARN and 0; an interval below 1 ns counts as 1 ns."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            t = hrtimer(Rec(), HRTIMER_MODE_ABS)
            e = ktime_get() + 10_000 * MS  # far ahead: it never fires in this test
            hrtimer_start(t, e, HRTIMER_MODE_ABS)
            assert hrtimer_try_to_cancel(t) == 1
            assert hrtimer_forward(t, e + 10, 3) == 4
            assert hrtimer_get_expires(t) == e + 12
            assert hrtimer_forward(t, e + 12 + 9, 3) == 4  # exactly 3 intervals late
            assert hrtimer_get_expires(t) == e + 24
            assert hrtimer_forward(t, e + 24, 3) == 1  # on time
            assert hrtimer_forward(t, e + 10, 3) == 0  # before the expiry
            assert hrtimer_get_expires(t) == e + 27
            assert hrtimer_forward(t, e + 30, 0) == 4  # 0 -> 1 ns: e+28, e+29, e+30, e+31
            assert hrtimer_get_expires(t) == e + 31
            hrtimer_start(t, e, HRTIMER_MODE_ABS)
            assert hrtimer_forward(t, e + 10, 3) == 0
            assert warnings(k) == 1
            assert hrtimer_get_expires(t) == e

    async def test_forward_keeps_the_slack(self) -> None:
        """hrtimer_forward moves the soft and the hard expiry alike (the range is kept)."""
        async with Kernel(nr_cpus=1, hz=250):
            t = hrtimer(Rec(), HRTIMER_MODE_ABS)
            e = ktime_get() + 10_000 * MS
            hrtimer_start_range_ns(t, e, 500, HRTIMER_MODE_ABS)
            hrtimer_cancel(t)
            assert hrtimer_get_expires(t) == e + 500
            assert hrtimer_forward(t, e + 600, 1000) == 1
            assert hrtimer_get_expires(t) == e + 1500
            assert t._softexpires == e + 1000

    async def test_hr12_restart_without_forward_is_a_hard_lockup(self, virtual: bool) -> None:
        """HR-12: RESTART without moving the expiry: the hard lockup is reported (CPU 0), the
        callback ran once, the timer is left inactive; nothing loops."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            rec = Rec(lambda t: HRTIMER_RESTART)
            t = hrtimer(rec)
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            await rec.wait(virtual)
            await quiet(virtual, 0.01)
            assert len(rec.times) == 1
            assert logged(k, "Watchdog detected hard LOCKUP on cpu 0") == 1
            assert not hrtimer_active(t)
            assert k.oopses == []

    async def test_hr13_start_inside_callback(self, virtual: bool) -> None:
        """HR-13: hrtimer_start(t, 2 ms) inside the callback, then NORESTART: t stays queued
        and runs again 2 ms later."""
        async with Kernel(nr_cpus=1, hz=250):
            queued: list[bool] = []

            def again(t: HrTimer) -> int:
                if len(rec.times) == 1:
                    hrtimer_start(t, ms_to_ktime(2), HRTIMER_MODE_REL)
                    queued.append(hrtimer_is_queued(t) and hrtimer_callback_running(t))
                return HRTIMER_NORESTART

            rec = Rec(again)
            hrtimer_start(hrtimer(rec), ms_to_ktime(1), HRTIMER_MODE_REL)
            await rec.wait(virtual, 2)
            assert queued == [True]
            if virtual:
                assert rec.times[1] - rec.times[0] == 2 * MS
            else:
                assert rec.times[1] - rec.times[0] >= 2 * MS

    async def test_hr14_restart_moves_a_queued_timer(self, virtual: bool) -> None:
        """HR-14: started for 10 ms, re-started at T+1 ms for 2 ms: one run, at T+3 ms."""
        async with Kernel(nr_cpus=1, hz=250):
            rec = Rec()
            t = hrtimer(rec)
            start = ktime_get()
            hrtimer_start(t, ms_to_ktime(10), HRTIMER_MODE_REL)
            mover = hrtimer(lambda _m: hrtimer_start(t, ms_to_ktime(2), HRTIMER_MODE_REL) or 0)
            hrtimer_start(mover, ms_to_ktime(1), HRTIMER_MODE_REL)
            await rec.wait(virtual)
            await quiet(virtual, 0.02)
            assert len(rec.times) == 1
            if virtual:
                assert rec.times == [start + 3 * MS]

    async def test_hr15_range_timer(self, virtual: bool) -> None:
        """HR-15: start_range_ns(1 ms, 500 us) alone on an idle CPU runs at the hard expiry,
        T+1.5 ms; always within [T+1 ms, T+1.5 ms] on virtual time; another hrtimer event in
        the range expires it early, at that event."""
        async with Kernel(nr_cpus=1, hz=250):
            rec = Rec()
            start = ktime_get()
            hrtimer_start_range_ns(hrtimer(rec), ms_to_ktime(1), 500_000, HRTIMER_MODE_REL)
            await rec.wait(virtual)
            if virtual:
                assert rec.times == [start + 1_500_000]
            else:
                assert rec.times[0] >= start + MS
            rec2 = Rec()
            other = Rec()
            start = ktime_get()
            hrtimer_start_range_ns(hrtimer(rec2), ms_to_ktime(1), 500_000, HRTIMER_MODE_REL)
            hrtimer_start(hrtimer(other), 1_200_000, HRTIMER_MODE_REL)
            await rec2.wait(virtual)
            if virtual:
                assert rec2.times == [start + 1_200_000] == other.times
            else:
                assert rec2.times[0] >= start + MS


class TestCancel:
    async def test_hr07_try_to_cancel(self, virtual: bool) -> None:
        """HR-07: try_to_cancel: queued -> 1 and the callback never runs; inactive -> 0; from
        inside the callback -> -1."""
        async with Kernel(nr_cpus=1, hz=250):
            rec = Rec()
            t = hrtimer(rec)
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            assert hrtimer_try_to_cancel(t) == 1
            assert hrtimer_try_to_cancel(t) == 0
            inside: list[int] = []
            probe = Rec(lambda p: inside.append(hrtimer_try_to_cancel(p)) or HRTIMER_NORESTART)
            hrtimer_start(hrtimer(probe), ms_to_ktime(2), HRTIMER_MODE_REL)
            await probe.wait(virtual)
            await quiet(virtual, 0.005)
            assert rec.times == []
            assert inside == [-1]

    async def test_hr08_cancel(self, virtual: bool) -> None:
        """HR-08: cancel: queued -> 1, never runs; inactive -> 0; from inside the callback the
        self-deadlock is reported and KernelBug raised (no hang)."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            rec = Rec()
            t = hrtimer(rec)
            hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
            assert hrtimer_cancel(t) == 1
            assert hrtimer_cancel(t) == 0
            bugs: list[KernelBug] = []

            def self_cancel(p: HrTimer) -> int:
                try:
                    hrtimer_cancel(p)
                except KernelBug as exc:
                    bugs.append(exc)
                return HRTIMER_NORESTART

            probe = Rec(self_cancel)
            hrtimer_start(hrtimer(probe), ms_to_ktime(2), HRTIMER_MODE_REL)
            await probe.wait(virtual)
            await quiet(virtual, 0.005)
            assert rec.times == []
            assert len(bugs) == 1
            assert logged(k, "WARNING: possible recursive locking detected") == 1
            assert logged(k, "at: hrtimer_cancel") == 1
            assert k.oopses == []

    async def test_cancel_many_and_restart(self, virtual: bool) -> None:
        """Cancelled entries never run, however many are cancelled and re-started (the queue
        drops dead entries); the survivors run in expiry order."""
        async with Kernel(nr_cpus=1, hz=250):
            ran: list[int] = []
            count = Count()

            def make(i: int) -> HrTimer:
                def cb(t: HrTimer) -> int:
                    ran.append(i)
                    count.hit()
                    return HRTIMER_NORESTART

                return hrtimer(cb)

            timers = [make(i) for i in range(200)]
            base = ktime_get()  # absolute expiries: a slow loop cannot reorder them
            for i, t in enumerate(timers):
                hrtimer_start(t, base + (i + 1) * 10 * US, HRTIMER_MODE_ABS)
            for i, t in enumerate(timers):
                if i % 3:
                    assert hrtimer_cancel(t) == 1
            for i in range(0, 200, 6):
                hrtimer_start(timers[i], base + 5 * MS - i * US, HRTIMER_MODE_ABS)
            await count.wait(virtual, 67)
            await quiet(virtual, 0.01)
            kept = [i for i in range(200) if not i % 3 and i % 6]
            moved = sorted(range(0, 200, 6), reverse=True)
            assert ran == kept + moved


class TestQueries:
    async def test_hr17_remaining_and_expires(self, virtual: bool) -> None:
        """HR-17: started at T for 10 ms: remaining at T+4 ms is 6 000 000, expires T+10 ms,
        and inside the callback remaining <= 0."""
        async with Kernel(nr_cpus=1, hz=250):
            left: list[int] = []
            rec = Rec(lambda t: left.append(hrtimer_get_remaining(t)) or 0)
            t = hrtimer(rec)
            start = ktime_get()
            hrtimer_start(t, ms_to_ktime(10), HRTIMER_MODE_REL)
            await anyio.sleep(0.004)
            if virtual:
                assert hrtimer_get_remaining(t) == 6 * MS
            else:
                assert hrtimer_get_remaining(t) <= 6 * MS
            expires = hrtimer_get_expires(t)
            assert expires == start + 10 * MS if virtual else expires >= start + 10 * MS
            await rec.wait(virtual)
            assert left[0] <= 0

    async def test_clocks(self, virtual: bool) -> None:
        """Every clock reads CLOCK_MONOTONIC in the model; a REALTIME/BOOTTIME timer expires
        like a MONOTONIC one; ktime_get_ns/boottime equal ktime_get."""
        async with Kernel(nr_cpus=1, hz=250):
            now = ktime_get()
            assert ktime_get_ns() >= now
            assert ktime_get_boottime() >= now
            for clock in (CLOCK_REALTIME, CLOCK_BOOTTIME):
                rec = Rec()
                t = HrTimer()
                hrtimer_setup(t, rec, clock, HRTIMER_MODE_REL)
                start = ktime_get()
                hrtimer_start(t, ms_to_ktime(1), HRTIMER_MODE_REL)
                await rec.wait(virtual)
                assert (rec.times[0] == start + MS) if virtual else rec.times[0] >= start + MS


class TestKtime:
    def test_hr18_helpers(self) -> None:
        """HR-18: ktime_set, the conversions (C truncation), the arithmetic, the comparisons."""
        assert ktime_set(1, 500) == 1_000_000_500
        assert ktime_set(9223372036, 0) == 2**63 - 1 == KTIME_MAX
        assert ms_to_ktime(3) == 3_000_000
        assert us_to_ktime(7) == 7_000
        assert ns_to_ktime(9) == 9
        assert ktime_to_us(1999) == 1
        assert ktime_to_ms(-1_500_000) == -1
        assert ktime_to_us(-1999) == -1
        assert ktime_to_ns(-5) == -5
        assert ktime_add_ns(5, 7) == 12
        assert ktime_add(3, 4) == 7
        assert ktime_sub(3, 4) == -1
        assert ktime_add(KTIME_MAX, 1) == -(2**63)  # s64 arithmetic wraps: no saturation
        assert ktime_after(2, 1) is True
        assert ktime_before(1, 1) is False
        assert ktime_set(-1, 0) == -1_000_000_000

    async def test_relative_expiry_saturates(self) -> None:
        """A REL expiry that overflows, or a negative one, saturates to KTIME_SEC_MAX s."""
        async with Kernel(nr_cpus=1, hz=250):
            await anyio.sleep(0.001)  # now > 0: KTIME_MAX past now overflows
            t = hrtimer(Rec())
            hrtimer_start(t, KTIME_MAX, HRTIMER_MODE_REL)
            assert hrtimer_get_expires(t) == 9_223_372_036 * 1_000_000_000
            hrtimer_start(t, -1, HRTIMER_MODE_REL)
            assert hrtimer_get_expires(t) == 9_223_372_036 * 1_000_000_000
            hrtimer_cancel(t)


class TestSleep:
    async def test_hr19_schedule_hrtimeout(self, virtual: bool) -> None:
        """HR-19: UNINTERRUPTIBLE 2 ms -> 0 after 2 ms; TASK_RUNNING -> -EINTR at once;
        INTERRUPTIBLE with a signal after 1 ms -> -EINTR at T+1 ms; wake_up_process after 1 ms
        -> -EINTR; expires 0 -> 0 at once; None in INTERRUPTIBLE -> sleeps until woken,
        -EINTR. Always back in TASK_RUNNING."""
        async with Kernel(nr_cpus=1, hz=250):
            me = current()

            def at(ns: int, fn: Callable[[], object]) -> None:
                hrtimer_start(hrtimer(lambda _t: fn() and 0), ns, HRTIMER_MODE_REL)

            def check(elapsed: int, exact: int) -> None:
                assert elapsed == exact if virtual else elapsed >= exact
                assert me.state == TASK_RUNNING

            # the sleeps a wake-up must cut short: long on a real clock, so that a busy
            # machine cannot run their timer in the same interrupt as the wake-up's
            long = ms_to_ktime(5) if virtual else ms_to_ktime(2000)
            start = ktime_get()
            set_current_state(TASK_UNINTERRUPTIBLE)
            assert await schedule_hrtimeout(ms_to_ktime(2), HRTIMER_MODE_REL) == 0
            check(ktime_get() - start, 2 * MS)

            start = ktime_get()
            assert await schedule_hrtimeout(ms_to_ktime(2), HRTIMER_MODE_REL) == -EINTR
            check(ktime_get() - start, 0) if virtual else None

            start = ktime_get()  # before the timer is armed: it fires >= start + MS
            at(MS, lambda: send_sig(SIGUSR1, me, 0))
            set_current_state(TASK_INTERRUPTIBLE)
            assert await schedule_hrtimeout(long, HRTIMER_MODE_REL) == -EINTR
            check(ktime_get() - start, MS)
            kdefer_async.flush_signals(me)

            start = ktime_get()
            at(MS, lambda: wake_up_process(me))
            set_current_state(TASK_UNINTERRUPTIBLE)
            assert await schedule_hrtimeout(long, HRTIMER_MODE_REL) == -EINTR
            check(ktime_get() - start, MS)

            set_current_state(TASK_UNINTERRUPTIBLE)
            start = ktime_get()
            assert await schedule_hrtimeout(0, HRTIMER_MODE_REL) == 0
            check(ktime_get() - start, 0) if virtual else None

            start = ktime_get()
            at(3 * MS, lambda: wake_up_process(me))
            set_current_state(TASK_INTERRUPTIBLE)
            assert await schedule_hrtimeout(None, HRTIMER_MODE_REL) == -EINTR
            check(ktime_get() - start, 3 * MS)

    async def test_range_and_rt_tasks(self, virtual: bool) -> None:
        """schedule_hrtimeout_range sleeps to the hard end of a lone range; a SCHED_FIFO task
        gets no slack."""
        async with Kernel(nr_cpus=1, hz=250):
            me = current()
            start = ktime_get()
            set_current_state(TASK_UNINTERRUPTIBLE)
            assert await schedule_hrtimeout_range(MS, 500_000, HRTIMER_MODE_REL) == 0
            elapsed = ktime_get() - start
            assert elapsed == 1_500_000 if virtual else elapsed >= MS
            me.policy = kdefer_async.SCHED_FIFO
            try:
                start = ktime_get()
                set_current_state(TASK_UNINTERRUPTIBLE)
                assert await schedule_hrtimeout_range(MS, 500_000, HRTIMER_MODE_REL) == 0
                elapsed = ktime_get() - start
                assert elapsed == MS if virtual else elapsed >= MS
            finally:
                me.policy = 0

    async def test_hr20_usleep_range(self, virtual: bool) -> None:
        """HR-20: usleep_range(100, 200) returns within [100, 200] us; usleep_range(200, 100)
        WARNs once and sleeps exactly 200 us."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            start = ktime_get()
            await usleep_range(100, 200)
            elapsed = ktime_get() - start
            assert 100 * US <= elapsed <= 200 * US if virtual else elapsed >= 100 * US
            start = ktime_get()
            await usleep_range(200, 100)
            elapsed = ktime_get() - start
            assert elapsed == 200 * US if virtual else elapsed >= 200 * US
            assert warnings(k) == 1

    async def test_hr21_fsleep(self, virtual: bool, monkeypatch: pytest.MonkeyPatch) -> None:
        """HR-21 (HZ=250): fsleep(10) is udelay(10); fsleep(11) wakes within [11, 13] us,
        fsleep(15999) within [15999, 19998] us; fsleep(16000) is msleep(16): 16-20 ms."""
        async with Kernel(nr_cpus=1, hz=250):
            delays: list[int] = []
            monkeypatch.setattr(kdefer_async, "udelay", delays.append)
            await fsleep(10)
            await fsleep(0)
            assert delays == [10, 0]
            for usecs, lo, hi in ((11, 11, 13), (15999, 15999, 19998), (16000, 16000, 20000)):
                start = ktime_get()
                await fsleep(usecs)
                elapsed = ktime_get() - start
                assert elapsed >= lo * US
                if virtual:
                    assert elapsed <= hi * US
            assert delays == [10, 0]


# -- arguments -------------------------------------------------------------------------------------


async def _cb(t: HrTimer) -> int:
    return 0


class TestArguments:
    def test_setup_rejects_bad_callbacks_and_clocks(self) -> None:
        """hrtimer_setup: async def, wrong arity, unknown clock or mode; nothing changes."""
        t = HrTimer()
        cases: list[tuple[type[Exception], str, Callable[[], object]]] = [
            (
                TypeError,
                r"^hrtimer_setup\(\): an hrtimer callback runs in atomic context and must be a "
                r"plain function, but _cb is `async def`",
                lambda: hrtimer_setup(t, _cb, CLOCK_MONOTONIC, HRTIMER_MODE_REL),
            ),
            (
                TypeError,
                r"^hrtimer_setup\(\) expects a function callable as function\(timer\) for "
                r"'function', but <lambda>\(\) cannot be called with 1 positional argument$",
                lambda: hrtimer_setup(t, lambda: 0, CLOCK_MONOTONIC, HRTIMER_MODE_REL),  # type: ignore[arg-type,misc]
            ),
            (
                ValueError,
                r"^hrtimer_setup\(\) expects CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME "
                r"or CLOCK_TAI for 'clock_id', got 2$",
                lambda: hrtimer_setup(t, Rec(), 2, HRTIMER_MODE_REL),
            ),
            (
                ValueError,
                r"^hrtimer_setup\(\) expects an hrtimer mode \(HRTIMER_MODE_\*: 0 to 11\) for "
                r"'mode', got 12$",
                lambda: hrtimer_setup(t, Rec(), CLOCK_MONOTONIC, 12),
            ),
            (
                TypeError,
                r"^hrtimer_setup\(\) expects an HrTimer for 'timer', got TimerList$",
                lambda: hrtimer_setup(TimerList(), Rec(), CLOCK_MONOTONIC, 0),  # type: ignore[arg-type]
            ),
            (
                TypeError,
                r"^hrtimer_init\(\) expects an int for 'clock_id', got bool$",
                lambda: hrtimer_init(t, True, 0),
            ),
        ]
        for exc, pattern, call in cases:
            with pytest.raises(exc, match=pattern):
                call()
            assert t.function is None
            assert t._index == -1

    async def test_start_checks(self) -> None:
        """hrtimer_start: types and ranges first; a timer never set up is debugobjects'
        report and KernelBug, nothing armed; a legacy timer without a function is a
        ValueError."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            t = hrtimer(Rec())
            with pytest.raises(
                ValueError,
                match=r"^hrtimer_start\(\) expects a ktime \(nanoseconds, an s64: "
                rf"{-(2**63)} to {2**63 - 1}\) for 'tim', got {2**63}$",
            ):
                hrtimer_start(t, 2**63, HRTIMER_MODE_REL)
            with pytest.raises(TypeError, match=r"^hrtimer_start\(\) expects an int for 'tim'"):
                hrtimer_start(t, 1.5, HRTIMER_MODE_REL)  # type: ignore[arg-type]
            with pytest.raises(
                ValueError, match=r"^hrtimer_start_range_ns\(\) expects a u64 .* 'delta_ns'"
            ):
                hrtimer_start_range_ns(t, 1, -1, HRTIMER_MODE_REL)
            assert not hrtimer_is_queued(t)
            raw = HrTimer()
            with pytest.raises(KernelBug, match=r"^hrtimer_start\(\): the hrtimer was never set"):
                hrtimer_start(raw, MS, HRTIMER_MODE_REL)
            assert logged(k, "ODEBUG: activate not available (active state 0) object: ") == 1
            assert logged(k, "object type: hrtimer hint: 0x0") == 1
            assert not hrtimer_active(raw)
            assert k.cpus[0].hrtimer_base is None or all(
                not b.heap for b in k.cpus[0].hrtimer_base.clock_base
            )
            legacy = HrTimer()
            hrtimer_init(legacy, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
            with pytest.raises(ValueError, match=r"^hrtimer_start\(\) expects an HrTimer whose"):
                hrtimer_start(legacy, MS, HRTIMER_MODE_REL)

    async def test_setup_of_a_queued_timer(self, virtual: bool) -> None:
        """Setting up a queued timer again is debugobjects' init-active report; the old
        arming is cancelled."""
        async with Kernel(nr_cpus=1, hz=250) as k:
            rec = Rec()
            t = hrtimer(rec)
            hrtimer_start(t, MS, HRTIMER_MODE_REL)
            hrtimer_setup(t, rec, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
            assert logged(k, "ODEBUG: init active (active state 0)") == 1
            assert not hrtimer_is_queued(t)
            await quiet(virtual, 0.005)
            assert rec.times == []

    def test_ktime_checks(self) -> None:
        """The ktime helpers take s64 ktimes and u64 counts: outside is a ValueError."""
        with pytest.raises(ValueError, match=r"^ms_to_ktime\(\) expects a u64 .* 'ms', got -1$"):
            ms_to_ktime(-1)
        with pytest.raises(ValueError, match=r"^ktime_add\(\) expects a ktime .* 'b', got"):
            ktime_add(1, 2**63)
        with pytest.raises(TypeError, match=r"^ktime_set\(\) expects an int for 'nsecs', got"):
            ktime_set(1, None)  # type: ignore[arg-type]

    async def test_sleep_checks(self) -> None:
        """The sleeps check their arguments at the call, before any state changes."""
        async with Kernel(nr_cpus=1, hz=250):
            with pytest.raises(
                TypeError, match=r"^schedule_hrtimeout\(\) expects an int for 'expires', got str$"
            ):
                schedule_hrtimeout("1", HRTIMER_MODE_REL)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=r"^schedule_hrtimeout_range\(\) expects a u64"):
                schedule_hrtimeout_range(1, -1, HRTIMER_MODE_REL)
            with pytest.raises(ValueError, match=r"^fsleep\(\) expects an unsigned long"):
                fsleep(-1)
            assert current().state == TASK_RUNNING
