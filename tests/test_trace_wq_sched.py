"""Tracing: the ``workqueue`` and ``sched`` tracepoints, and the softirq raises of RCU and the
BH workqueues.

Exact timestamps are checked on the virtual backends only; elsewhere lines are compared with
their timestamp column masked and work ids replaced by ``ID``.
"""

from __future__ import annotations

import re

import pytest

from kdefer_async import (
    IRQ_HANDLED,
    TASK_UNINTERRUPTIBLE,
    WQ_BH,
    WQ_HIGHPRI,
    WQ_UNBOUND,
    DelayedWork,
    Kernel,
    Work,
    alloc_ordered_workqueue,
    alloc_workqueue,
    call_rcu,
    flush_work,
    flush_workqueue,
    kthread_create_worker,
    kthread_destroy_worker,
    kthread_flush_work,
    kthread_init_work,
    kthread_queue_work,
    kthread_run,
    kthread_should_stop,
    kthread_stop,
    msleep,
    queue_delayed_work,
    queue_work,
    queue_work_on,
    request_irq,
    request_threaded_irq,
    schedule_timeout,
    schedule_work,
    set_current_state,
    synchronize_irq,
    system_bh_wq,
    system_wq,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

#: The timestamp column of a trace line.
TS = re.compile(r"(?<= )\s*\d+\.\d{6}(?=: )")
ID = re.compile(r"\b[0-9a-f]{16}\b")


def lines_of(k: Kernel, *names: str) -> list[str]:
    """The event lines of the trace (header dropped) for the events named (all if none),
    timestamps masked as ``T`` and ids as ``ID``."""
    out = []
    for line in k.tracing.text().splitlines():
        if line.startswith("#"):
            continue
        if names and not any(f" {n}: " in line for n in names):
            continue
        out.append(ID.sub("ID", TS.sub("T", line)))
    return out


def wid(k: Kernel, work: Work) -> str:
    """The ``%p`` id *work* prints as."""
    return "%016x" % k.tracing.trace_id(work)


def fn(work: Work) -> None:
    """A work function that does nothing."""


def fn2(work: Work) -> None:
    """Another work function that does nothing."""


async def sleepy(work: Work) -> None:
    """A work function that sleeps 10 ms."""
    await msleep(10)


class TestWorkqueueGolden:
    """Each workqueue event's line, exactly as the kernel prints it."""

    async def test_queue_activate_execute(self) -> None:
        """queue_work and activate_work under the pool lock (``d..1.``), ``req_cpu`` the
        model's ``WORK_CPU_UNBOUND`` (8192, NR_CPUS of a MAXSMP build) and ``cpu`` the pool's;
        activate_work's text ends in a space; execute_start/end in the kworker (``.....``)."""
        async with Kernel(nr_cpus=1, trace="workqueue") as k:
            w = Work(fn)
            queue_work(system_wq, w)
            await flush_work(w)
            i = wid(k, w)
            lines = lines_of(k)
        kw = lines[2].split("-")[0].strip()
        assert kw.startswith("kworker/0:")
        assert [ID.sub("ID", line) for line in lines] == [
            "            init-1       [000] d..1. T: workqueue_queue_work: work struct=ID "
            "function=fn workqueue=events req_cpu=8192 cpu=0",
            "            init-1       [000] d..1. T: workqueue_activate_work: work struct ID "
            "function=fn ",
            lines[2],
            lines[3],
        ]
        assert re.fullmatch(
            r" +kworker/0:\d+-\d+ +\[000\] \.\.\.\.\. T: workqueue_execute_start: "
            r"work struct ID: function fn",
            lines[2],
        )
        assert lines[3] == lines[2].replace("execute_start", "execute_end")
        text = k.tracing.text()
        assert f"work struct={i} function=fn" in text
        assert f"work struct {i} function=fn \n" in text

    async def test_queue_work_on_and_unbound(self) -> None:
        """``req_cpu`` is the CPU asked for; an unbound pool prints ``cpu=-1``."""
        async with Kernel(nr_cpus=2, trace="workqueue:workqueue_queue_work") as k:
            wq = alloc_workqueue("ub", WQ_UNBOUND, 0)
            assert wq is not None
            a, b = Work(fn), Work(fn2)
            queue_work_on(1, system_wq, a)
            queue_work(wq, b)
            await flush_workqueue(system_wq)
            await flush_workqueue(wq)
            lines = lines_of(k)
        assert lines == [
            "            init-1       [000] d..1. T: workqueue_queue_work: work struct=ID "
            "function=fn workqueue=events req_cpu=1 cpu=1",
            "            init-1       [000] d..1. T: workqueue_queue_work: work struct=ID "
            "function=fn2 workqueue=ub req_cpu=8192 cpu=-1",
        ]

    async def test_from_hardirq(self) -> None:
        """Queued from a hard interrupt handler: ``d.h1.``."""
        w = Work(fn)

        def handler(irq: int, dev: object) -> int:
            schedule_work(w)
            return IRQ_HANDLED

        async with Kernel(nr_cpus=1, trace="workqueue:workqueue_queue_work") as k:
            request_irq(16, handler, 0, "dev", None)
            k.raise_irq(16)
            await flush_work(w)
            lines = lines_of(k)
        assert lines == [
            "            init-1       [000] d.h1. T: workqueue_queue_work: work struct=ID "
            "function=fn workqueue=events req_cpu=8192 cpu=0",
        ]


class TestWorkqueueOrder:
    async def test_max_active_defers_activation(self) -> None:
        """With max_active 1: queue, activate of the first; the next two only queued; each
        activated by the kworker (under the pool lock) as the one before it ends, before it
        runs."""
        async with Kernel(nr_cpus=1, trace="workqueue") as k:
            wq = alloc_workqueue("lim", 0, 1)
            assert wq is not None
            ws = [Work(fn), Work(fn), Work(fn)]
            for w in ws:
                queue_work(wq, w)
            await flush_workqueue(wq)
            ids = [wid(k, w) for w in ws]
            got = []
            for rec in k.tracing.records():
                work_id = "%016x" % k.tracing.trace_id(rec.fields[0])
                got.append((rec.event.name[10:], ids.index(work_id), rec.flag_chars, rec.comm))
        kw = got[-1][3]
        assert kw.startswith("kworker/0:")
        assert got == [
            ("queue_work", 0, "d..1.", "init"),
            ("activate_work", 0, "d..1.", "init"),
            ("queue_work", 1, "d..1.", "init"),
            ("queue_work", 2, "d..1.", "init"),
            ("execute_start", 0, ".....", kw),
            ("execute_end", 0, ".....", kw),
            ("activate_work", 1, "d..1.", kw),
            ("execute_start", 1, ".....", kw),
            ("execute_end", 1, ".....", kw),
            ("activate_work", 2, "d..1.", kw),
            ("execute_start", 2, ".....", kw),
            ("execute_end", 2, ".....", kw),
        ]

    async def test_ordered_queue(self) -> None:
        """An ordered workqueue (max_active 1) activates one item at a time, in queue
        order."""
        async with Kernel(nr_cpus=2, trace="workqueue") as k:
            wq = alloc_ordered_workqueue("ord", 0)
            assert wq is not None
            a, b = Work(fn), Work(fn2)
            queue_work(wq, a)
            queue_work(wq, b)
            await flush_workqueue(wq)
            names = [(rec.event.name[10:], rec.fields[1].__name__) for rec in k.tracing.records()]
        assert names == [
            ("queue_work", "fn"),
            ("activate_work", "fn"),
            ("queue_work", "fn2"),
            ("execute_start", "fn"),
            ("execute_end", "fn"),
            ("activate_work", "fn2"),
            ("execute_start", "fn2"),
            ("execute_end", "fn2"),
        ]

    async def test_delayed_work_queued_at_timer_expiry(self, virtual: bool) -> None:
        """Delayed work: nothing at queue_delayed_work; queue_work fires in the timer's
        softirq (the IRQSAFE callback runs with interrupts off: ``d.s1.``, and ``N`` once a
        wake-up is due to preempt the idle task), with ``req_cpu``
        the CPU asked for, right after the timer's expire_entry."""
        async with Kernel(nr_cpus=1, hz=1000, trace="workqueue,timer:timer_expire_entry") as k:
            dw = DelayedWork(fn)
            j = k.jiffies
            t0 = k.get_ktime()
            queue_delayed_work(system_wq, dw, 5)
            assert lines_of(k) == []
            await flush_workqueue(system_wq)
            await msleep(20)
            lines = lines_of(k)
            recs = k.tracing.records()
        assert " d.s.. T: timer_expire_entry: timer=ID function=delayed_work_timer_fn " in lines[0]
        if virtual:
            assert lines[0].endswith(f"now={j + 6} baseclk={j + 6}")
        # (the pool's first kworker, made just before, is due to preempt the idle task: N)
        assert lines[1:3] == [
            "          <idle>-0       [000] dNs1. T: workqueue_queue_work: work struct=ID "
            "function=fn workqueue=events req_cpu=8192 cpu=0",
            "          <idle>-0       [000] dNs1. T: workqueue_activate_work: work struct ID "
            "function=fn ",
        ]
        assert [line.split(": ")[1] for line in lines[3:5]] == [
            "workqueue_execute_start",
            "workqueue_execute_end",
        ]
        if virtual:
            # the tick of jiffy j + 6 (HZ=1000: 1 ms a jiffy), on the kernel's clock
            assert recs[1].ts - t0 == 6_000_000

    async def test_bh_workqueue(self) -> None:
        """A BH workqueue: queue and activate, the TASKLET softirq raised, then the item
        executes inside that softirq (``..s..``)."""
        async with Kernel(nr_cpus=1, trace="workqueue,irq:softirq_raise,irq:softirq_entry") as k:
            w = Work(fn)
            queue_work(system_bh_wq, w)
            await settle()
            lines = lines_of(k)
        assert [line.split(": ")[1] for line in lines] == [
            "workqueue_queue_work",
            "workqueue_activate_work",
            "softirq_raise",
            "softirq_entry",
            "workqueue_execute_start",
            "workqueue_execute_end",
        ]
        assert "workqueue=events_bh req_cpu=8192 cpu=0" in lines[0]
        assert lines[2].endswith("softirq_raise: vec=6 [action=TASKLET]")
        assert " ..s.. T: workqueue_execute_start: work struct ID: function fn" in lines[4]

    async def test_bh_highpri_raises_hi(self) -> None:
        """A highpri BH workqueue raises HI_SOFTIRQ."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            wq = alloc_workqueue("bhh", WQ_BH | WQ_HIGHPRI, 0)
            assert wq is not None
            queue_work(wq, Work(fn))
            await settle()
            lines = lines_of(k)
        assert lines[0].endswith("softirq_raise: vec=0 [action=HI]")


class TestSoftirqRaises:
    async def test_rcu_raises_rcu_softirq(self) -> None:
        """The end of a grace period raises RCU_SOFTIRQ on the CPU whose callback is due."""
        async with Kernel(nr_cpus=1, trace="irq:softirq_raise") as k:
            call_rcu(object(), lambda head: None)
            await msleep(20)
            lines = lines_of(k)
        assert "softirq_raise: vec=9 [action=RCU]" in "\n".join(lines)

    async def test_rcu_raise_on_other_cpu_recorded_there(self) -> None:
        """A callback queued on CPU 1: its RCU_SOFTIRQ raise is recorded on CPU 1."""
        from kdefer_async._trace import SOFTIRQ_RAISE

        async with Kernel(nr_cpus=2, trace="irq:softirq_raise") as k:
            done = []
            w = Work(lambda work: call_rcu(object(), lambda head: done.append(1)))
            queue_work_on(1, system_wq, w)
            await flush_work(w)
            await msleep(20)
            raises_rcu = [
                r.cpu for r in k.tracing.records() if r.event is SOFTIRQ_RAISE and r.fields[0] == 9
            ]
        assert done == [1]
        assert raises_rcu == [1]


class TestSched:
    async def test_msleep_in_a_kworker(self, virtual: bool) -> None:
        """A kworker's msleep: sched_switch from it (``D``) to the next task or swapper; the
        timer wakes it from softirq (sched_waking then sched_wakeup, which shows the idle task
        due for preemption: ``N``); it is switched in from the idle task, and its item ends."""
        async with Kernel(nr_cpus=1, hz=1000, trace="sched,workqueue") as k:
            w = Work(sleepy)
            schedule_work(w)
            await flush_work(w)
            recs = k.tracing.records()
            lines = lines_of(k)
        start = next(i for i, r in enumerate(recs) if r.event.name == "workqueue_execute_start")
        kw = recs[start].comm
        pid = recs[start].pid
        after = [line for line in lines[start + 1 :] if f"{kw}" in line]
        # goes to sleep uninterruptibly
        out = after[0]
        assert re.fullmatch(
            rf" +{re.escape(kw)}-{pid} +\[000\] d\.\.2\. T: sched_switch: prev_comm={re.escape(kw)} "
            rf"prev_pid={pid} prev_prio=120 prev_state=D ==> next_comm=\S+ next_pid=\d+ "
            r"next_prio=120",
            out,
        )
        # woken by the timer, in softirq on the idle task
        assert after[1:4] == [
            f"          <idle>-0       [000] d.s2. T: sched_waking: comm={kw} pid={pid} "
            "prio=120 target_cpu=000",
            f"          <idle>-0       [000] dNs3. T: sched_wakeup: comm={kw} pid={pid} "
            "prio=120 target_cpu=000",
            "          <idle>-0       [000] d..2. T: sched_switch: prev_comm=swapper/0 "
            f"prev_pid=0 prev_prio=120 prev_state=R ==> next_comm={kw} next_pid={pid} "
            "next_prio=120",
        ]
        assert after[4].endswith("workqueue_execute_end: work struct ID: function sleepy")
        if virtual:
            wake = next(r for r in recs[start:] if r.event.name == "sched_waking")
            sleep = recs[start + 1]
            assert wake.ts - sleep.ts >= 10_000_000

    async def test_idle_kworker_shows_I_and_wakeup_new(self) -> None:
        """A new kworker: sched_wakeup_new; an idle kworker leaves the CPU in ``I``
        (TASK_IDLE); kicked by queue_work it gets sched_waking/sched_wakeup after the
        activate_work."""
        async with Kernel(nr_cpus=1, trace="sched,workqueue") as k:
            w = Work(fn)
            schedule_work(w)
            await flush_work(w)
            await settle()
            k.tracing.clear()
            schedule_work(w)
            await flush_work(w)
            lines = lines_of(k)
        kinds = [line.split(": ")[1] for line in lines]
        i = kinds.index("workqueue_activate_work")
        assert kinds[i + 1 : i + 3] == ["sched_waking", "sched_wakeup"]
        assert any("prev_state=I ==>" in line for line in lines)
        async with Kernel(nr_cpus=1, trace="sched:sched_wakeup_new") as k:
            schedule_work(Work(fn))
            await settle()
            first = lines_of(k)[0]
        assert re.fullmatch(
            r" +init-1 +\[000\] d\.\.3\. T: sched_wakeup_new: comm=kworker/0:0 pid=\d+ "
            r"prio=120 target_cpu=000",
            first,
        )

    async def test_prio_values(self) -> None:
        """prio: 100 for a highpri kworker (nice -20), 49 for an irq thread (SCHED_FIFO 50)."""

        async def thread_fn(irq: int, dev: object) -> int:
            return IRQ_HANDLED

        async with Kernel(nr_cpus=1, trace="sched:sched_wakeup_new") as k:
            wq = alloc_workqueue("hp", WQ_HIGHPRI, 0)
            assert wq is not None
            queue_work(wq, Work(fn))
            await flush_workqueue(wq)
            request_threaded_irq(20, None, thread_fn, 0x2000, "thr", None)
            k.raise_irq(20)
            await synchronize_irq(20)
            lines = lines_of(k)
        assert any(re.search(r"comm=kworker/0:0H pid=\d+ prio=100 ", x) for x in lines)
        assert any(re.search(r"comm=irq/20-thr pid=\d+ prio=49 ", x) for x in lines)

    async def test_sleeping_states(self) -> None:
        """schedule_timeout in TASK_UNINTERRUPTIBLE shows ``D``; a kthread that sleeps
        interruptibly shows ``S``; kthread_run gives sched_wakeup_new, kthread_stop its two
        events, and the thread's end shows ``X``."""

        async def body(data: object) -> int:
            while not kthread_should_stop():
                await msleep(1)
            return 7

        async with Kernel(nr_cpus=1, trace="sched") as k:
            set_current_state(TASK_UNINTERRUPTIBLE)
            await schedule_timeout(2)
            t = kthread_run(body, None, "mythread")
            await msleep(3)
            ret = await kthread_stop(t)
            lines = lines_of(k)
        assert ret == 7
        text = "\n".join(lines)
        assert "prev_comm=init prev_pid=1 prev_prio=120 prev_state=D ==>" in text
        assert re.search(r"sched_wakeup_new: comm=mythread pid=\d+ prio=120 target_cpu=000", text)
        assert re.search(r"sched_kthread_stop: comm=mythread pid=\d+\n", text + "\n")
        assert "sched_kthread_stop_ret: ret=7" in text
        assert re.search(r"prev_comm=mythread prev_pid=\d+ prev_prio=120 prev_state=X ==>", text)

    async def test_switches_chain_per_cpu(self) -> None:
        """Across a busy run on 2 CPUs, each CPU's sched_switch events chain: the next task
        of one is the previous task of the next one (what a CPU track is built from), and
        every switch is recorded on that CPU by its previous task."""
        from kdefer_async._trace import SCHED_SWITCH

        async def body(data: object) -> int:
            while not kthread_should_stop():
                await msleep(2)
            return 0

        async with Kernel(nr_cpus=2, hz=1000, trace="sched") as k:
            wq = alloc_workqueue("lim", WQ_UNBOUND, 2)
            assert wq is not None
            ws = [Work(sleepy) for _ in range(6)]
            for i, w in enumerate(ws):
                if i % 2:
                    queue_work(wq, w)
                else:
                    queue_work_on(i % 4 // 2, system_wq, w)
            t = kthread_run(body, None, "kt")
            await flush_workqueue(wq)
            await flush_workqueue(system_wq)
            await kthread_stop(t)
            recs = [r for r in k.tracing.records() if r.event is SCHED_SWITCH]
        assert len(recs) > 10
        last: dict[int, int] = {}
        for r in recs:
            prev_pid, next_pid = r.fields[1], r.fields[5]
            assert r.pid == prev_pid
            if r.cpu in last:
                assert last[r.cpu] == prev_pid, r
            last[r.cpu] = next_pid


class TestKthreadWorkerEvents:
    async def test_queue_and_execute(self) -> None:
        """sched_kthread_work_queue_work under the worker's lock (``d..1.``), then
        execute_start/end in the worker's thread."""
        from kdefer_async import KthreadWork

        async with Kernel(
            nr_cpus=1,
            trace="sched_kthread_work_queue_work,sched_kthread_work_execute_start,"
            "sched_kthread_work_execute_end",
        ) as k:
            worker = kthread_create_worker(0, "kw")
            work = KthreadWork()
            kthread_init_work(work, fn)
            kthread_queue_work(worker, work)
            await kthread_flush_work(work)
            lines = [x for x in lines_of(k) if "function=fn " in x or x.endswith("function fn")]
            await kthread_destroy_worker(worker)
        assert lines[0] == (
            "            init-1       [000] d..1. T: sched_kthread_work_queue_work: "
            "work struct=ID function=fn worker=ID"
        )
        assert [re.sub(r"^ +\S+ +\[000\] ", "", x) for x in lines[1:]] == [
            "..... T: sched_kthread_work_execute_start: work struct ID: function fn",
            "..... T: sched_kthread_work_execute_end: work struct ID: function fn",
        ]
        assert " kw-" in lines[1]


class TestCost:
    async def test_tracing_off_records_nothing(self) -> None:
        """With no event enabled, a workqueue run and sleeps record nothing."""
        async with Kernel(nr_cpus=1) as k:
            assert k._trace_on is False
            w = Work(sleepy)
            schedule_work(w)
            await flush_work(w)
            assert k.tracing.records() == []
            assert getattr(k, "_sched_trace", None) is None


class TestWakeups:
    async def test_ksoftirqd_and_irq_thread_wakeups(self) -> None:
        """Raising a softirq from task context wakes ksoftirqd/N, and an interrupt wakes its
        irq thread: each wake-up is a sched_waking then sched_wakeup line naming the task,
        with the kernel's prio (120 for ksoftirqd, 49 for a SCHED_FIFO 50 irq thread)."""
        from kdefer_async import IRQF_ONESHOT, NET_RX_SOFTIRQ, open_softirq, raise_softirq

        def fn(irq: int, dev: object) -> int:
            return IRQ_HANDLED

        async with Kernel(nr_cpus=2, hz=250, trace="sched") as k:
            open_softirq(NET_RX_SOFTIRQ, lambda: None)
            await settle()
            assert request_threaded_irq(10, None, fn, IRQF_ONESHOT, "dev", 1) == 0
            await settle()
            k.tracing.clear()
            raise_softirq(NET_RX_SOFTIRQ)
            k.raise_irq(10)
            await settle()
            lines = lines_of(k, "sched_waking", "sched_wakeup")
        cpu = 0
        soft = [ln for ln in lines if f"comm=ksoftirqd/{cpu} " in ln]
        assert [ln.split(": ")[1] for ln in soft] == ["sched_waking", "sched_wakeup"]
        assert all(f"prio=120 target_cpu={cpu:03d}" in ln for ln in soft)
        irq = [ln for ln in lines if "comm=irq/10-dev " in ln]
        assert [ln.split(": ")[1] for ln in irq] == ["sched_waking", "sched_wakeup"]
        assert all("prio=49 " in ln for ln in irq)


class TestNeedResched:
    """The need-resched column: ``N`` from the wake-up that must preempt the running task
    until the switch away from it."""

    async def test_rt_thread_preempts_a_fair_task_and_fair_does_not(self) -> None:
        """An interrupt in init wakes its SCHED_FIFO thread: sched_wakeup shows ``dNh3.``, the
        switch clears it (``d..2.``); a kworker (fair, like init) woken by init sets nothing,
        and neither does a wake-up onto another CPU on the waker's CPU."""

        def fn(irq: int, dev: object) -> int:
            return IRQ_HANDLED

        async def noop(_w: Work) -> None:
            return None

        from kdefer_async import IRQF_ONESHOT

        async with Kernel(nr_cpus=2, hz=250, trace="sched,irq") as k:
            assert request_threaded_irq(10, None, fn, IRQF_ONESHOT, "dev", 1) == 0
            await settle()
            queue_work(system_wq, Work(noop))
            await flush_workqueue(system_wq)
            k.tracing.clear()
            k.raise_irq(10)
            await settle()
            queue_work(system_wq, Work(noop))
            queue_work_on(1, system_wq, Work(noop))
            await settle()
            lines = lines_of(k)
        flags = {ln.split(": ")[1]: ln.split("] ")[1][:5] for ln in lines if "init-1" in ln[:25]}
        irq = [ln for ln in lines if "comm=irq/10-dev " in ln]
        assert irq[0].startswith("            init-1       [000] d.h2. T: sched_waking:")
        assert irq[1].startswith("            init-1       [000] dNh3. T: sched_wakeup:")
        switch = next(ln for ln in lines if "next_comm=irq/10-dev" in ln)
        assert switch.startswith("            init-1       [000] d..2. T: sched_switch:")
        kw = [ln for ln in lines if "comm=kworker/" in ln and "init-1" in ln[:25]]
        assert len(kw) >= 3  # waking, wakeup of kworker/0:N; wakeup_new of kworker/1:0
        assert all("] d..2. " in ln or "] d..3. " in ln for ln in kw)
        assert flags["sched_wakeup_new"] == "d..3."

    async def test_wakeup_on_an_idle_cpu(self) -> None:
        """A task woken while the CPU idles: every line of the idle task from the wake-up on
        shows ``N`` until it switches to the task; the task's own lines do not."""
        async with Kernel(nr_cpus=1, hz=1000, trace="sched,timer:timer_expire_entry") as k:
            await msleep(5)
            lines = lines_of(k)
        i = next(j for j, ln in enumerate(lines) if "sched_wakeup: comm=init" in ln)
        assert lines[i - 1].split("] ")[1].startswith("d.s2. T: sched_waking")
        switch = next(j for j in range(i, len(lines)) if "sched_switch" in lines[j])
        assert all(ln.split("] ")[1][1] == "N" for ln in lines[i:switch])
        assert lines[switch].split("] ")[1].startswith("d..2. T: sched_switch: prev_comm=swapper")
        assert all(ln.split("] ")[1][1] == "." for ln in lines[:i] + lines[switch:])


def rcu_cb(head: object) -> None:
    return None


def calm(lines: list[str]) -> list[str]:
    """*lines* without the need-resched marks a late wake-up of init may add: on a slow
    machine its msleep timer can expire in the tick that ends the grace period, and then the
    idle task running the callbacks is due for preemption (``N``, and ``S`` in idle=)."""
    return [re.sub(r"\] (.)N", r"] \1.", ln).replace("idle=.S", "idle=..") for ln in lines]


class TestRcuEvents:
    async def test_golden_lines(self) -> None:
        """call_rcu records rcu_callback (interrupts saved, the queue length); the grace
        period's RCU_SOFTIRQ, on the idle task, brackets the callback with rcu_batch_start and
        rcu_batch_end (``I``: the idle task ran them); the kernel's formats."""
        async with Kernel(nr_cpus=1, hz=1000, trace="rcu") as k:
            call_rcu(object(), rcu_cb)
            call_rcu(object(), rcu_cb)
            await msleep(20)
            lines = calm(lines_of(k))
        assert lines == [
            "            init-1       [000] d.... T: rcu_callback: rcu_sched rhp=ID func=rcu_cb 1",
            "            init-1       [000] d.... T: rcu_callback: rcu_sched rhp=ID func=rcu_cb 2",
            "          <idle>-0       [000] d.s.. T: rcu_batch_start: rcu_sched CBs=2 bl=10",
            "          <idle>-0       [000] ..s.. T: rcu_invoke_callback: rcu_sched rhp=ID "
            "func=rcu_cb",
            "          <idle>-0       [000] ..s.. T: rcu_invoke_callback: rcu_sched rhp=ID "
            "func=rcu_cb",
            "          <idle>-0       [000] d.s.. T: rcu_batch_end: rcu_sched CBs-invoked=2 "
            "idle=..I.",
        ]

    async def test_batch_limit_outside_the_idle_task(self) -> None:
        """25 callbacks due while init spins (the tick's softirqs borrow it): rcu_do_batch
        stops after its limit of 10 with ready ones left (``C``) and raises RCU_SOFTIRQ again;
        the restarted passes run 10 and 5. On the idle task one batch runs all 25."""
        from kdefer_async import mdelay

        async with Kernel(nr_cpus=1, hz=1000, trace="rcu,irq:softirq_raise") as k:
            ran: list[int] = []
            for i in range(25):
                call_rcu(i, ran.append)
            mdelay(10)  # the tick that ends the grace period interrupts the spin
            assert ran == list(range(25))
            busy = [ln for ln in lines_of(k) if "rcu_batch" in ln or "vec=9" in ln]
            k.tracing.clear()
            for i in range(25):
                call_rcu(i, ran.append)
            await msleep(20)
            idle = [ln for ln in calm(lines_of(k)) if "rcu_batch" in ln]
        tail = [ln.split(": ", 2)[2] for ln in busy]
        assert tail == [
            "vec=9 [action=RCU]",
            "rcu_sched CBs=25 bl=10",
            "rcu_sched CBs-invoked=10 idle=C...",
            "vec=9 [action=RCU]",
            "rcu_sched CBs=15 bl=10",
            "rcu_sched CBs-invoked=10 idle=C...",
            "vec=9 [action=RCU]",
            "rcu_sched CBs=5 bl=10",
            "rcu_sched CBs-invoked=5 idle=....",
        ]
        assert all(" init-1 " in ln for ln in busy)
        assert [ln.split(": ", 2)[2] for ln in idle] == [
            "rcu_sched CBs=25 bl=10",
            "rcu_sched CBs-invoked=25 idle=..I.",
        ]

    async def test_switching_tracing_clears_the_marks(self) -> None:
        """A wake-up marks the idle task; tracing switched off before the switch away from it
        (which it would not see) takes the mark off, so it cannot show on later lines."""
        from kdefer_async import (
            TimerList,
            current,
            mod_timer,
            tracing_off,
            tracing_on,
            wake_up_process,
        )

        async with Kernel(nr_cpus=1, hz=1000, trace="sched") as k:
            me = current()
            marks: list[int] = []

            def wake(t: TimerList) -> None:
                wake_up_process(me)
                marks.append(k.cpus[0].swapper.need_resched)
                tracing_off()
                marks.append(k.cpus[0].swapper.need_resched)

            mod_timer(TimerList(wake), k.jiffies + 2)
            set_current_state(TASK_UNINTERRUPTIBLE)
            await schedule_timeout(10_000)
            tracing_on()
            assert k.cpus[0].swapper.need_resched == 0
        assert marks[0] != 0  # N: the wake-up was traced
        assert marks[1] == 0
