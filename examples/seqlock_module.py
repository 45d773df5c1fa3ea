"""A seqlock shared by a kthread_worker (the writer) and a timer (the reader), as a module.

Run it as a module (``python -m kdefer_async run examples/seqlock_module.py``) or as a plain
script (``python examples/seqlock_module.py --virtual-time``); ``--param samples=N`` sets how
many samples the timer takes.

The state is a pair of values that must always agree: a generation number and its square. The
writer is a delayed item on the worker ``seqwriter``, which every 30 ms takes the seqlock's
write side (``write_seqlock_bh``: the reader runs in softirq context on the same CPUs, so the
writer keeps bottom halves off, or a reader interrupting it would spin for ever) and stores a
new pair, until the reader is done. The reader is a timer, every 100 ms: it loops ``read_seqbegin`` / copy /
``read_seqretry`` until it got a copy no writer touched, and checks that the pair agrees.
Readers take no lock and never block the writer; the sequence number says whether to retry.

On unload the timer is deleted, the worker is flushed and destroyed.
"""

from __future__ import annotations

import kdefer_async as kd
from kdefer_async import (
    DEFINE_SEQLOCK,
    MODULE_DESCRIPTION,
    MODULE_LICENSE,
    KthreadDelayedWork,
    KthreadWork,
    TimerList,
    jiffies_to_msecs,
    kthread_cancel_delayed_work_sync,
    kthread_destroy_worker,
    kthread_init_delayed_work,
    kthread_queue_delayed_work,
    kthread_run_worker,
    mod_timer,
    module_exit,
    module_init,
    module_param,
    msecs_to_jiffies,
    pr_err,
    pr_info,
    read_seqbegin,
    read_seqretry,
    timer_delete_sync,
    timer_setup,
    write_seqlock_bh,
    write_sequnlock_bh,
)

#: How many samples the reader takes before the module stops sampling.
samples = 5
module_param("samples", int, 0o444)

lock = DEFINE_SEQLOCK()
generation = 0
square = 0
updater = KthreadDelayedWork()
sampler = TimerList()
taken = 0
worker = None


def update(work: KthreadWork) -> None:
    """The writer, in the worker's thread: store the next pair under the write side."""
    global generation, square
    write_seqlock_bh(lock)
    generation += 1
    square = generation * generation
    write_sequnlock_bh(lock)
    if taken < samples:  # the writer stops with the reader
        kthread_queue_delayed_work(worker, updater, msecs_to_jiffies(30))


def sample(timer: TimerList) -> None:
    """The reader, in softirq context: retry until a copy no writer touched, then check it."""
    global taken
    while True:
        seq = read_seqbegin(lock)
        g, sq = generation, square
        if not read_seqretry(lock, seq):
            break
    taken += 1
    if sq != g * g:
        pr_err("seqlock_module: torn read: %d, %d\n", g, sq)
    pr_info(
        "seqlock_module: sample %d at %u ms: generation %d, square %d (sequence %u)\n",
        taken,
        jiffies_to_msecs(kd.jiffies - kd.INITIAL_JIFFIES),
        g,
        sq,
        seq,
    )
    if taken < samples:
        mod_timer(timer, kd.jiffies + msecs_to_jiffies(100))


@module_init
def onload() -> int:
    global worker
    worker = kthread_run_worker(0, "seqwriter")
    kthread_init_delayed_work(updater, update)
    kthread_queue_delayed_work(worker, updater, 0)
    timer_setup(sampler, sample, 0)
    mod_timer(sampler, kd.jiffies + msecs_to_jiffies(100))
    pr_info("seqlock_module: writer seqwriter started, %d samples to take\n", samples)
    return 0


@module_exit
async def onunload() -> None:
    timer_delete_sync(sampler)
    await kthread_cancel_delayed_work_sync(updater)
    assert worker is not None
    await kthread_destroy_worker(worker)
    pr_info("seqlock_module: %d samples, last generation %d\n", taken, generation)


MODULE_DESCRIPTION("A seqlock written by a kthread_worker and read by a timer")
MODULE_LICENSE("GPL")

if __name__ == "__main__":
    from kdefer_async.cli import run_as_script

    run_as_script(__name__)
