"""Kernel constants: preempt_count layout, softirq vectors, task states, errno values.

Every number here is the kernel's own (``include/linux/preempt.h``,
``include/linux/interrupt.h``, ``include/uapi/asm-generic/errno*.h``...), so that
values printed by kdefer_async can be compared with a real kernel's.
"""

from __future__ import annotations

from typing import Final

# --- preempt_count layout (include/linux/preempt.h) -------------------------------------------
PREEMPT_OFFSET: Final = 0x1
SOFTIRQ_OFFSET: Final = 0x100
SOFTIRQ_DISABLE_OFFSET: Final = 2 * SOFTIRQ_OFFSET
HARDIRQ_OFFSET: Final = 0x10000
NMI_OFFSET: Final = 0x100000
PREEMPT_MASK: Final = 0x000000FF
SOFTIRQ_MASK: Final = 0x0000FF00
HARDIRQ_MASK: Final = 0x000F0000
NMI_MASK: Final = 0x00F00000
#: ``irq_count()``: NMI, hardirq and softirq fields together (``in_interrupt()``).
IRQ_MASK: Final = NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK
SOFTIRQ_LOCK_OFFSET: Final = SOFTIRQ_DISABLE_OFFSET + PREEMPT_OFFSET

# --- softirq vectors (include/linux/interrupt.h) ----------------------------------------------
HI_SOFTIRQ: Final = 0
TIMER_SOFTIRQ: Final = 1
NET_TX_SOFTIRQ: Final = 2
NET_RX_SOFTIRQ: Final = 3
BLOCK_SOFTIRQ: Final = 4
IRQ_POLL_SOFTIRQ: Final = 5
TASKLET_SOFTIRQ: Final = 6
SCHED_SOFTIRQ: Final = 7
HRTIMER_SOFTIRQ: Final = 8
RCU_SOFTIRQ: Final = 9
NR_SOFTIRQS: Final = 10
#: ``softirq_to_name[]`` in kernel/softirq.c, as /proc/softirqs prints them.
SOFTIRQ_NAMES: Final = (
    "HI",
    "TIMER",
    "NET_TX",
    "NET_RX",
    "BLOCK",
    "IRQ_POLL",
    "TASKLET",
    "SCHED",
    "HRTIMER",
    "RCU",
)

#: ``__do_softirq`` restarts at most this many times before handing the rest to ksoftirqd.
#: kernel/softirq.c: 10 restarts (and 2 ms) "established via experimentation"; the balance is
#: latency of the softirq work against fairness to the task that was interrupted.
MAX_SOFTIRQ_RESTART: Final = 10
#: The softirq time budget in milliseconds: ``MAX_SOFTIRQ_TIME = msecs_to_jiffies(2)``.
MAX_SOFTIRQ_TIME_MS: Final = 2

# --- hard interrupts --------------------------------------------------------------------------
IRQ_NONE: Final = 0
IRQ_HANDLED: Final = 1
IRQ_WAKE_THREAD: Final = 2
IRQF_SHARED: Final = 0x00000080
NR_IRQS: Final = 4096

# --- tasks and signals ------------------------------------------------------------------------
TASK_RUNNING: Final = 0x0000
TASK_INTERRUPTIBLE: Final = 0x0001
TASK_UNINTERRUPTIBLE: Final = 0x0002
TASK_WAKEKILL: Final = 0x0100
TASK_KILLABLE: Final = TASK_WAKEKILL | TASK_UNINTERRUPTIBLE
TASK_NORMAL: Final = TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE
SIGHUP: Final = 1
SIGINT: Final = 2
SIGQUIT: Final = 3
SIGKILL: Final = 9
SIGUSR1: Final = 10
SIGUSR2: Final = 12
SIGTERM: Final = 15
SIGSTOP: Final = 19

LONG_MAX: Final = (1 << 63) - 1
ULONG_MASK: Final = (1 << 64) - 1
MAX_SCHEDULE_TIMEOUT: Final = LONG_MAX

# --- errno (include/uapi/asm-generic/errno-base.h, include/linux/errno.h) ---------------------
EPERM: Final = 1
ENOENT: Final = 2
EINTR: Final = 4
EIO: Final = 5
EAGAIN: Final = 11
ENOMEM: Final = 12
EFAULT: Final = 14
EBUSY: Final = 16
EEXIST: Final = 17
ENODEV: Final = 19
EINVAL: Final = 22
ENOSYS: Final = 38
ERESTARTSYS: Final = 512

# --- memory allocation flags (include/linux/gfp_types.h) -------------------------------------
__GFP_HIGH: Final = 0x20
__GFP_IO: Final = 0x40
__GFP_FS: Final = 0x80
__GFP_ZERO: Final = 0x100
__GFP_DIRECT_RECLAIM: Final = 0x400
__GFP_KSWAPD_RECLAIM: Final = 0x800
GFP_ATOMIC: Final = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL: Final = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM | __GFP_IO | __GFP_FS
GFP_NOWAIT: Final = __GFP_KSWAPD_RECLAIM

# --- printk levels (include/linux/kern_levels.h): KERN_SOH followed by the level digit ------
KERN_SOH: Final = "\x01"
KERN_EMERG: Final = KERN_SOH + "0"
KERN_ALERT: Final = KERN_SOH + "1"
KERN_CRIT: Final = KERN_SOH + "2"
KERN_ERR: Final = KERN_SOH + "3"
KERN_WARNING: Final = KERN_SOH + "4"
KERN_NOTICE: Final = KERN_SOH + "5"
KERN_INFO: Final = KERN_SOH + "6"
KERN_DEBUG: Final = KERN_SOH + "7"
KERN_DEFAULT: Final = ""
KERN_CONT: Final = KERN_SOH + "c"
#: ``MESSAGE_LOGLEVEL_DEFAULT``: the level of a printk() without a KERN_ prefix.
MESSAGE_LOGLEVEL_DEFAULT: Final = 4

# --- tasklet state bits (include/linux/interrupt.h) -------------------------------------------
TASKLET_STATE_SCHED: Final = 0
TASKLET_STATE_RUN: Final = 1

# --- timer flags (include/linux/timer.h) ------------------------------------------------------
TIMER_CPUMASK: Final = 0x0003FFFF
TIMER_MIGRATING: Final = 0x00040000
TIMER_DEFERRABLE: Final = 0x00080000
TIMER_PINNED: Final = 0x00100000
TIMER_IRQSAFE: Final = 0x00200000
TIMER_INIT_FLAGS: Final = TIMER_DEFERRABLE | TIMER_PINNED | TIMER_IRQSAFE

#: ``MAX_JIFFY_OFFSET``: what the conversions saturate to.
MAX_JIFFY_OFFSET: Final = (LONG_MAX >> 1) - 1
