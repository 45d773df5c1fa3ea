"""The seed notes' tasklet sample, ported line by line.

Run it as a module (``python -m kdefer_async run examples/tasklet_module.py``) or as a plain
script (``python examples/tasklet_module.py``).

Differences from the C: ``DECLARE_TASKLET(name, func, data)`` becomes an assignment; the
legacy ``func(data)`` form is kept, and, as in the kernel (not as the seed notes say), the
tasklet starts enabled. ``tasklet_kill`` may sleep, so ``onunload`` is ``async def``.
"""

from __future__ import annotations

from kdefer_async import (
    DECLARE_TASKLET,
    MODULE_AUTHOR,
    MODULE_LICENSE,
    module_exit,
    module_init,
    printk,
    tasklet_kill,
    tasklet_schedule,
)

tasklet_data = "Using a string but it could easily be struct pointer"


# Tasklet handler, just prints data held in the tasklet
def tasklet_work(data: str) -> None:
    printk("%s\n", data)


my_tasklet = DECLARE_TASKLET(tasklet_work, tasklet_data)


@module_init
def onload() -> int:
    tasklet_schedule(my_tasklet)
    return 0


@module_exit
async def onunload() -> None:
    await tasklet_kill(my_tasklet)


MODULE_AUTHOR("Liam Ryan <liamryandev@gmail.com>")
MODULE_LICENSE("GPL")

if __name__ == "__main__":
    from kdefer_async.cli import run_as_script

    run_as_script(__name__)
