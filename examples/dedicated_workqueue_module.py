"""The seed notes' dedicated workqueue example, ported line by line.

``create_singlethread_workqueue`` is an ordered workqueue on current kernels (one item at a
time, in queueing order), with a rescuer thread ``kworker/R-<name>``.

Differences from the C: ``__FUNCTION__`` and ``__LINE__`` are spelled out; flushing and
destroying may sleep, so ``onunload`` is ``async def``.
"""

from __future__ import annotations

from kdefer_async import (
    GFP_KERNEL,
    INIT_WORK,
    MODULE_AUTHOR,
    MODULE_LICENSE,
    Work,
    Workqueue,
    container_of,
    create_singlethread_workqueue,
    destroy_workqueue,
    flush_workqueue,
    kfree,
    kmalloc,
    module_exit,
    module_init,
    printk,
    queue_work,
)

wq: Workqueue | None = None


class WorkData:
    def __init__(self) -> None:
        self.my_work = Work()
        self.data = 0


def do_work(work: Work) -> None:
    data = container_of(work, WorkData, "my_work")
    printk("Work queue module handler %s, data is %d\n", "do_work", data.data)
    kfree(data)


@module_init
def onload() -> int:
    global wq
    printk("Work queue module init %s %d\n", "onload", 49)
    wq = create_singlethread_workqueue("my single thread workqueue")
    data = kmalloc(WorkData, GFP_KERNEL)
    data.data = 42
    INIT_WORK(data.my_work, do_work)
    queue_work(wq, data.my_work)
    return 0


@module_exit
async def onunload() -> None:
    assert wq is not None
    await flush_workqueue(wq)
    await destroy_workqueue(wq)
    printk("Work queue module exit %s %d\n", "onunload", 63)


MODULE_AUTHOR("Liam Ryan <liamryandev@gmail.com>")
MODULE_LICENSE("GPL")

if __name__ == "__main__":
    from kdefer_async.cli import run_as_script

    run_as_script(__name__)
