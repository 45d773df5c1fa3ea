"""Linux kernel work deferral as a faithful, embeddable model in async Python.

Hardirqs, softirqs and ksoftirqd, tasklets, timers on jiffies, wait queues, kthreads (and, on
top of them, workqueues) running inside an anyio event loop: asyncio, uvloop or trio.

The one rule: what may sleep in the kernel is ``async def`` here; what is legal in atomic
context is a plain function.
"""

from __future__ import annotations

from typing import Any

from loguru import logger as _logger

from ._consts import (
    BLOCK_SOFTIRQ as BLOCK_SOFTIRQ,
    EBUSY as EBUSY,
    EINTR as EINTR,
    EINVAL as EINVAL,
    ENOMEM as ENOMEM,
    ERESTARTSYS as ERESTARTSYS,
    GFP_ATOMIC as GFP_ATOMIC,
    GFP_KERNEL as GFP_KERNEL,
    GFP_NOWAIT as GFP_NOWAIT,
    HARDIRQ_OFFSET as HARDIRQ_OFFSET,
    HI_SOFTIRQ as HI_SOFTIRQ,
    HRTIMER_SOFTIRQ as HRTIMER_SOFTIRQ,
    IRQ_HANDLED as IRQ_HANDLED,
    IRQ_NONE as IRQ_NONE,
    IRQ_POLL_SOFTIRQ as IRQ_POLL_SOFTIRQ,
    IRQF_SHARED as IRQF_SHARED,
    KERN_ALERT as KERN_ALERT,
    KERN_CONT as KERN_CONT,
    KERN_CRIT as KERN_CRIT,
    KERN_DEBUG as KERN_DEBUG,
    KERN_EMERG as KERN_EMERG,
    KERN_ERR as KERN_ERR,
    KERN_INFO as KERN_INFO,
    KERN_NOTICE as KERN_NOTICE,
    KERN_WARNING as KERN_WARNING,
    MAX_JIFFY_OFFSET as MAX_JIFFY_OFFSET,
    MAX_SCHEDULE_TIMEOUT as MAX_SCHEDULE_TIMEOUT,
    MAX_SOFTIRQ_RESTART as MAX_SOFTIRQ_RESTART,
    NET_RX_SOFTIRQ as NET_RX_SOFTIRQ,
    NET_TX_SOFTIRQ as NET_TX_SOFTIRQ,
    NMI_OFFSET as NMI_OFFSET,
    NR_SOFTIRQS as NR_SOFTIRQS,
    PREEMPT_OFFSET as PREEMPT_OFFSET,
    RCU_SOFTIRQ as RCU_SOFTIRQ,
    SCHED_SOFTIRQ as SCHED_SOFTIRQ,
    SIGINT as SIGINT,
    SIGKILL as SIGKILL,
    SIGTERM as SIGTERM,
    SIGUSR1 as SIGUSR1,
    SOFTIRQ_DISABLE_OFFSET as SOFTIRQ_DISABLE_OFFSET,
    SOFTIRQ_OFFSET as SOFTIRQ_OFFSET,
    TASK_INTERRUPTIBLE as TASK_INTERRUPTIBLE,
    TASK_RUNNING as TASK_RUNNING,
    TASK_UNINTERRUPTIBLE as TASK_UNINTERRUPTIBLE,
    TASKLET_SOFTIRQ as TASKLET_SOFTIRQ,
    TASKLET_STATE_RUN as TASKLET_STATE_RUN,
    TASKLET_STATE_SCHED as TASKLET_STATE_SCHED,
    TIMER_DEFERRABLE as TIMER_DEFERRABLE,
    TIMER_IRQSAFE as TIMER_IRQSAFE,
    TIMER_PINNED as TIMER_PINNED,
    TIMER_SOFTIRQ as TIMER_SOFTIRQ,
)
from ._context import (
    TaskStruct as TaskStruct,
    current as current,
    current_kernel as current_kernel,
    in_atomic as in_atomic,
    in_hardirq as in_hardirq,
    in_interrupt as in_interrupt,
    in_nmi as in_nmi,
    in_serving_softirq as in_serving_softirq,
    in_softirq as in_softirq,
    in_task as in_task,
    irqs_disabled as irqs_disabled,
    num_online_cpus as num_online_cpus,
    preempt_count as preempt_count,
    smp_processor_id as smp_processor_id,
)
from ._exceptions import (
    KdeferInternalError as KdeferInternalError,
    KernelBug as KernelBug,
    KernelPanic as KernelPanic,
    ModuleLoadError as ModuleLoadError,
    NoKernelError as NoKernelError,
)
from ._flush import (
    cancel_delayed_work as cancel_delayed_work,
    cancel_delayed_work_sync as cancel_delayed_work_sync,
    cancel_work as cancel_work,
    cancel_work_sync as cancel_work_sync,
    destroy_workqueue as destroy_workqueue,
    disable_delayed_work as disable_delayed_work,
    disable_delayed_work_sync as disable_delayed_work_sync,
    disable_work as disable_work,
    disable_work_sync as disable_work_sync,
    drain_workqueue as drain_workqueue,
    enable_delayed_work as enable_delayed_work,
    enable_work as enable_work,
    flush_delayed_work as flush_delayed_work,
    flush_scheduled_work as flush_scheduled_work,
    flush_work as flush_work,
    flush_workqueue as flush_workqueue,
    work_on_cpu as work_on_cpu,
)
from ._hardirq import free_irq as free_irq, request_irq as request_irq
from ._kernel import Kernel as Kernel, run as run
from ._kthread import (
    kthread_bind as kthread_bind,
    kthread_create as kthread_create,
    kthread_run as kthread_run,
    kthread_should_stop as kthread_should_stop,
    kthread_stop as kthread_stop,
)
from ._locking import (
    DEFINE_MUTEX as DEFINE_MUTEX,
    DEFINE_SPINLOCK as DEFINE_SPINLOCK,
    Mutex as Mutex,
    SpinLock as SpinLock,
    local_irq_restore as local_irq_restore,
    local_irq_save as local_irq_save,
    mutex_init as mutex_init,
    mutex_is_locked as mutex_is_locked,
    mutex_lock as mutex_lock,
    mutex_lock_interruptible as mutex_lock_interruptible,
    mutex_trylock as mutex_trylock,
    mutex_unlock as mutex_unlock,
    spin_is_locked as spin_is_locked,
    spin_lock as spin_lock,
    spin_lock_bh as spin_lock_bh,
    spin_lock_init as spin_lock_init,
    spin_lock_irq as spin_lock_irq,
    spin_lock_irqsave as spin_lock_irqsave,
    spin_trylock as spin_trylock,
    spin_unlock as spin_unlock,
    spin_unlock_bh as spin_unlock_bh,
    spin_unlock_irq as spin_unlock_irq,
    spin_unlock_irqrestore as spin_unlock_irqrestore,
)
from ._mm import (
    container_of as container_of,
    from_tasklet as from_tasklet,
    from_timer as from_timer,
    kfree as kfree,
    kmalloc as kmalloc,
    kzalloc as kzalloc,
    timer_container_of as timer_container_of,
)
from ._module import (
    MODULE_AUTHOR as MODULE_AUTHOR,
    MODULE_DESCRIPTION as MODULE_DESCRIPTION,
    MODULE_LICENSE as MODULE_LICENSE,
    module_exit as module_exit,
    module_init as module_init,
    module_param as module_param,
)
from ._printk import (
    BUG_ON as BUG_ON,
    WARN_ON as WARN_ON,
    WARN_ON_ONCE as WARN_ON_ONCE,
    Oops as Oops,
    dump_stack as dump_stack,
    pr_alert as pr_alert,
    pr_crit as pr_crit,
    pr_debug as pr_debug,
    pr_emerg as pr_emerg,
    pr_err as pr_err,
    pr_info as pr_info,
    pr_notice as pr_notice,
    pr_warn as pr_warn,
    printk as printk,
)
from ._rcu import (
    INIT_RCU_WORK as INIT_RCU_WORK,
    RcuWork as RcuWork,
    call_rcu as call_rcu,
    flush_rcu_work as flush_rcu_work,
    queue_rcu_work as queue_rcu_work,
    rcu_barrier as rcu_barrier,
    rcu_read_lock as rcu_read_lock,
    rcu_read_unlock as rcu_read_unlock,
    synchronize_rcu as synchronize_rcu,
    to_rcu_work as to_rcu_work,
)
from ._sched import (
    allow_signal as allow_signal,
    disallow_signal as disallow_signal,
    flush_signals as flush_signals,
    kernel_dequeue_signal as kernel_dequeue_signal,
    mdelay as mdelay,
    msleep as msleep,
    msleep_interruptible as msleep_interruptible,
    ndelay as ndelay,
    schedule_timeout as schedule_timeout,
    schedule_timeout_interruptible as schedule_timeout_interruptible,
    schedule_timeout_uninterruptible as schedule_timeout_uninterruptible,
    send_sig as send_sig,
    set_current_state as set_current_state,
    signal_pending as signal_pending,
    ssleep as ssleep,
    udelay as udelay,
    usleep_range as usleep_range,
    wake_up_process as wake_up_process,
)
from ._shutdown import ShutdownReport as ShutdownReport, UnfinishedItem as UnfinishedItem
from ._sleeping import might_sleep as might_sleep
from ._softirq import (
    local_bh_disable as local_bh_disable,
    local_bh_enable as local_bh_enable,
    local_softirq_pending as local_softirq_pending,
    open_softirq as open_softirq,
    raise_softirq as raise_softirq,
    raise_softirq_irqoff as raise_softirq_irqoff,
)
from ._tasklet import (
    DECLARE_TASKLET as DECLARE_TASKLET,
    DECLARE_TASKLET_DISABLED as DECLARE_TASKLET_DISABLED,
    DECLARE_TASKLET_OLD as DECLARE_TASKLET_OLD,
    Tasklet as Tasklet,
    tasklet_disable as tasklet_disable,
    tasklet_disable_in_atomic as tasklet_disable_in_atomic,
    tasklet_disable_nosync as tasklet_disable_nosync,
    tasklet_enable as tasklet_enable,
    tasklet_hi_schedule as tasklet_hi_schedule,
    tasklet_init as tasklet_init,
    tasklet_kill as tasklet_kill,
    tasklet_schedule as tasklet_schedule,
    tasklet_setup as tasklet_setup,
    tasklet_unlock_spin_wait as tasklet_unlock_spin_wait,
    tasklet_unlock_wait as tasklet_unlock_wait,
)
from ._time import (
    get_jiffies_64 as get_jiffies_64,
    jiffies_to_msecs as jiffies_to_msecs,
    jiffies_to_usecs as jiffies_to_usecs,
    msecs_to_jiffies as msecs_to_jiffies,
    time_after as time_after,
    time_after_eq as time_after_eq,
    time_before as time_before,
    time_before_eq as time_before_eq,
    time_in_range as time_in_range,
    time_in_range_open as time_in_range_open,
    usecs_to_jiffies as usecs_to_jiffies,
)
from ._timer import (
    DEFINE_TIMER as DEFINE_TIMER,
    TimerList as TimerList,
    add_timer as add_timer,
    add_timer_global as add_timer_global,
    add_timer_local as add_timer_local,
    add_timer_on as add_timer_on,
    del_timer as del_timer,
    del_timer_sync as del_timer_sync,
    mod_timer as mod_timer,
    mod_timer_pending as mod_timer_pending,
    timer_delete as timer_delete,
    timer_delete_sync as timer_delete_sync,
    timer_pending as timer_pending,
    timer_reduce as timer_reduce,
    timer_setup as timer_setup,
    timer_shutdown as timer_shutdown,
    timer_shutdown_sync as timer_shutdown_sync,
)
from ._wait import (
    DECLARE_COMPLETION as DECLARE_COMPLETION,
    DECLARE_WAIT_QUEUE_HEAD as DECLARE_WAIT_QUEUE_HEAD,
    Completion as Completion,
    WaitQueueHead as WaitQueueHead,
    complete as complete,
    complete_all as complete_all,
    completion_done as completion_done,
    init_completion as init_completion,
    init_waitqueue_head as init_waitqueue_head,
    reinit_completion as reinit_completion,
    wait_event as wait_event,
    wait_event_interruptible as wait_event_interruptible,
    wait_event_interruptible_timeout as wait_event_interruptible_timeout,
    wait_event_timeout as wait_event_timeout,
    wait_for_completion as wait_for_completion,
    wait_for_completion_interruptible as wait_for_completion_interruptible,
    wait_for_completion_timeout as wait_for_completion_timeout,
    waitqueue_active as waitqueue_active,
    wake_up as wake_up,
    wake_up_all as wake_up_all,
    wake_up_interruptible as wake_up_interruptible,
    wake_up_interruptible_all as wake_up_interruptible_all,
    wake_up_nr as wake_up_nr,
)
from ._work import (
    DECLARE_DEFERRABLE_WORK as DECLARE_DEFERRABLE_WORK,
    DECLARE_DELAYED_WORK as DECLARE_DELAYED_WORK,
    DECLARE_WORK as DECLARE_WORK,
    INIT_DEFERRABLE_WORK as INIT_DEFERRABLE_WORK,
    INIT_DELAYED_WORK as INIT_DELAYED_WORK,
    INIT_WORK as INIT_WORK,
    WORK_BUSY_PENDING as WORK_BUSY_PENDING,
    WORK_BUSY_RUNNING as WORK_BUSY_RUNNING,
    WORK_CPU_UNBOUND as WORK_CPU_UNBOUND,
    DelayedWork as DelayedWork,
    Work as Work,
    to_delayed_work as to_delayed_work,
)
from ._workqueue import (
    WQ_BH as WQ_BH,
    WQ_CPU_INTENSIVE as WQ_CPU_INTENSIVE,
    WQ_DFL_ACTIVE as WQ_DFL_ACTIVE,
    WQ_FREEZABLE as WQ_FREEZABLE,
    WQ_HIGHPRI as WQ_HIGHPRI,
    WQ_MAX_ACTIVE as WQ_MAX_ACTIVE,
    WQ_MEM_RECLAIM as WQ_MEM_RECLAIM,
    WQ_PERCPU as WQ_PERCPU,
    WQ_POWER_EFFICIENT as WQ_POWER_EFFICIENT,
    WQ_SYSFS as WQ_SYSFS,
    WQ_UNBOUND as WQ_UNBOUND,
    ExecuteWork as ExecuteWork,
    Workqueue as Workqueue,
    alloc_ordered_workqueue as alloc_ordered_workqueue,
    alloc_workqueue as alloc_workqueue,
    create_freezable_workqueue as create_freezable_workqueue,
    create_singlethread_workqueue as create_singlethread_workqueue,
    create_workqueue as create_workqueue,
    current_work as current_work,
    delayed_work_pending as delayed_work_pending,
    enable_and_queue_work as enable_and_queue_work,
    execute_in_process_context as execute_in_process_context,
    mod_delayed_work as mod_delayed_work,
    mod_delayed_work_on as mod_delayed_work_on,
    queue_delayed_work as queue_delayed_work,
    queue_delayed_work_on as queue_delayed_work_on,
    queue_work as queue_work,
    queue_work_on as queue_work_on,
    schedule_delayed_work as schedule_delayed_work,
    schedule_delayed_work_on as schedule_delayed_work_on,
    schedule_work as schedule_work,
    schedule_work_on as schedule_work_on,
    system_bh_highpri_wq as system_bh_highpri_wq,
    system_bh_wq as system_bh_wq,
    system_dfl_wq as system_dfl_wq,
    system_freezable_power_efficient_wq as system_freezable_power_efficient_wq,
    system_freezable_wq as system_freezable_wq,
    system_highpri_wq as system_highpri_wq,
    system_long_wq as system_long_wq,
    system_percpu_wq as system_percpu_wq,
    system_power_efficient_wq as system_power_efficient_wq,
    system_unbound_wq as system_unbound_wq,
    system_wq as system_wq,
    work_busy as work_busy,
    work_pending as work_pending,
    workqueue_congested as workqueue_congested,
    workqueue_set_max_active as workqueue_set_max_active,
)

__version__ = "0.1.0"

#: Names read from the running kernel on access (``kdefer_async.jiffies``): not in ``__all__``.
_DYNAMIC = ("HZ", "jiffies", "INITIAL_JIFFIES", "MAX_SOFTIRQ_TIME")


def __getattr__(name: str) -> Any:
    if name in _DYNAMIC:
        kernel = current_kernel()
        if name == "HZ":
            return kernel.hz
        if name == "jiffies":
            return kernel.get_jiffies()
        if name == "MAX_SOFTIRQ_TIME":
            return kernel.max_softirq_time
        return kernel.initial_jiffies
    raise AttributeError(f"module 'kdefer_async' has no attribute {name!r}")


# Library etiquette for loguru: stay silent unless the application enables us.
_logger.disable("kdefer_async")

# Under pytest the package is assertion-rewritten (it ships a pytest plugin), which adds
# `@py_builtins` and `@pytest_ar` to these globals: only identifiers are public names.
__all__ = tuple(
    sorted(
        name
        for name in globals()
        if not name.startswith("_") and name.isidentifier() and name not in ("annotations", "Any")
    )
)
