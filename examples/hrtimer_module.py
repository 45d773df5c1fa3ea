"""A 1 kHz periodic hrtimer, written as a kernel module.

``onload`` starts a hard hrtimer with a 1 ms period. Each run steps the expiry with
``hrtimer_forward_now`` (the kernel's idiom for periodic hrtimers) and returns
``HRTIMER_RESTART``; the overruns it returns say how many periods passed since the last run:
1 when on time, more when the timer ran late. Every ``slow_every`` periods the callback is
slow on purpose (``udelay(3500)``: it busy-waits 3.5 ms in hardirq context), so the next run is
late and reports its overruns. After ``periods`` runs it stops by itself; ``onunload`` cancels
it in any case.

Run it as a module (``python -m kdefer_async run examples/hrtimer_module.py``, add
``--param periods=2000`` for two seconds) or as a plain script
(``python examples/hrtimer_module.py``).
"""

from __future__ import annotations

from kdefer_async import (
    CLOCK_MONOTONIC,
    HRTIMER_MODE_REL,
    HRTIMER_NORESTART,
    HRTIMER_RESTART,
    MODULE_DESCRIPTION,
    MODULE_LICENSE,
    HrTimer,
    hrtimer_cancel,
    hrtimer_forward_now,
    hrtimer_setup,
    hrtimer_start,
    ktime_get,
    ktime_to_us,
    module_exit,
    module_init,
    module_param,
    ms_to_ktime,
    pr_info,
    udelay,
)

#: How many periods to run before the timer stops by itself.
periods = 500
module_param("periods", int, 0o444)
#: Every this many periods the callback is slow (0: never).
slow_every = 100
module_param("slow_every", int, 0o444)

PERIOD = ms_to_ktime(1)
tick_timer = HrTimer()
count = 0
missed = 0
started = 0


def tick(timer: HrTimer) -> int:
    """The timer callback, in hardirq context: one period's work."""
    global count, missed
    overruns = hrtimer_forward_now(timer, PERIOD)
    count += 1
    if overruns > 1:
        missed += overruns - 1
        pr_info("hrtimer_module: period %d ran late: %d overruns\n", count, overruns)
    if slow_every and count % slow_every == 0:
        udelay(3500)  # slow now and then: longer than three periods
    if count >= periods:
        pr_info(
            "hrtimer_module: %d periods in %lld us, %d missed\n",
            count,
            ktime_to_us(ktime_get() - started),
            missed,
        )
        return HRTIMER_NORESTART
    return HRTIMER_RESTART


@module_init
def onload() -> int:
    global started
    hrtimer_setup(tick_timer, tick, CLOCK_MONOTONIC, HRTIMER_MODE_REL)
    started = ktime_get()
    hrtimer_start(tick_timer, PERIOD, HRTIMER_MODE_REL)
    pr_info("hrtimer_module: 1 kHz timer started for %d periods\n", periods)
    return 0


@module_exit
def onunload() -> None:
    hrtimer_cancel(tick_timer)
    pr_info("hrtimer_module: unloaded after %d periods\n", count)


MODULE_DESCRIPTION("A 1 kHz periodic hrtimer that reports its overruns")
MODULE_LICENSE("GPL")

if __name__ == "__main__":
    from kdefer_async.cli import run_as_script

    run_as_script(__name__)
