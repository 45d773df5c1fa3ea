"""The seed notes' global (shared) workqueue example, ported line by line.

``onload`` queues a work item on the system workqueue and sleeps on a wait queue until the
work handler, after ``msleep(2000)``, sets ``sleep`` and wakes it. Set ``WAIT_FOREVER`` to
keep it sleeping until Ctrl+C, which the command line delivers as SIGINT to interruptible
sleepers, as the C example expects.

Differences from the C: the handler sleeps, so it is ``async def``; ``container_of`` takes the
member's name; ``__FUNCTION__`` is spelled out. Note the C original frees the structure that
holds the wait queue while the woken task may still be leaving it: a use-after-free the kernel
would only notice with KASAN.
"""

from __future__ import annotations

from kdefer_async import (
    GFP_KERNEL,
    INIT_WORK,
    MODULE_AUTHOR,
    MODULE_LICENSE,
    WaitQueueHead,
    Work,
    container_of,
    init_waitqueue_head,
    kfree,
    kmalloc,
    module_exit,
    module_init,
    msleep,
    printk,
    schedule_work,
    wait_event_interruptible,
    wake_up_interruptible,
)

WAIT_FOREVER = False
sleep = 0


class WorkData:
    def __init__(self) -> None:
        self.my_work = Work()
        self.my_waitqueue = WaitQueueHead()
        self.struct_data = 0


async def work_handler(work: Work) -> None:
    global sleep
    this_data = container_of(work, WorkData, "my_work")
    printk("Work queue module handler %s, data is %d\n", "work_handler", this_data.struct_data)
    await msleep(2000)
    if not WAIT_FOREVER:
        sleep = 1
    wake_up_interruptible(this_data.my_waitqueue)
    kfree(this_data)


@module_init
async def onload() -> int:
    my_data = kmalloc(WorkData, GFP_KERNEL)
    my_data.struct_data = 42

    INIT_WORK(my_data.my_work, work_handler)
    init_waitqueue_head(my_data.my_waitqueue)

    schedule_work(my_data.my_work)
    printk("Going to sleep...\n")
    await wait_event_interruptible(my_data.my_waitqueue, lambda: sleep != 0)
    printk("I have awoken...\n")
    return 0


@module_exit
def onunload() -> None:
    printk("Work queue module exit: %s %d\n", "onunload", 75)


MODULE_AUTHOR("Liam Ryan <liamryandev@gmail.com>")
MODULE_LICENSE("GPL")

if __name__ == "__main__":
    from kdefer_async.cli import run_as_script

    run_as_script(__name__)
