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
IRQF_TRIGGER_NONE: Final = 0x00000000
IRQF_TRIGGER_RISING: Final = 0x00000001
IRQF_TRIGGER_FALLING: Final = 0x00000002
IRQF_TRIGGER_HIGH: Final = 0x00000004
IRQF_TRIGGER_LOW: Final = 0x00000008
IRQF_TRIGGER_MASK: Final = 0x0000000F
IRQF_SHARED: Final = 0x00000080
IRQF_PROBE_SHARED: Final = 0x00000100
__IRQF_TIMER: Final = 0x00000200
IRQF_PERCPU: Final = 0x00000400
IRQF_NOBALANCING: Final = 0x00000800
IRQF_IRQPOLL: Final = 0x00001000
IRQF_ONESHOT: Final = 0x00002000
IRQF_NO_SUSPEND: Final = 0x00004000
IRQF_FORCE_RESUME: Final = 0x00008000
IRQF_NO_THREAD: Final = 0x00010000
IRQF_EARLY_RESUME: Final = 0x00020000
IRQF_COND_SUSPEND: Final = 0x00040000
IRQF_NO_AUTOEN: Final = 0x00080000
IRQF_NO_DEBUG: Final = 0x00100000
IRQF_COND_ONESHOT: Final = 0x00200000
IRQF_TIMER: Final = __IRQF_TIMER | IRQF_NO_SUSPEND | IRQF_NO_THREAD
NR_IRQS: Final = 4096
#: Arch (x86 system) vectors, kept apart from device lines by being negative: what a CPU has
#: pending while its local interrupts are off is a line number or one of these.
LOCAL_TIMER_VECTOR: Final = -1
IRQ_WORK_VECTOR: Final = -2
CALL_FUNCTION_VECTOR: Final = -3
#: (never pending: an NMI cannot be masked) the key of the NMI count in ``CPU.irq_stat``
NMI_VECTOR: Final = -4

# --- scheduling policies (include/uapi/linux/sched.h) -----------------------------------------
SCHED_NORMAL: Final = 0
SCHED_FIFO: Final = 1
SCHED_RR: Final = 2
#: ``MAX_RT_PRIO``: an irq thread runs at ``MAX_RT_PRIO / 2`` (``sched_set_fifo``).
MAX_RT_PRIO: Final = 100

# --- high-resolution timers (include/linux/hrtimer*.h, include/uapi/linux/time.h) ------------
CLOCK_REALTIME: Final = 0
CLOCK_MONOTONIC: Final = 1
CLOCK_BOOTTIME: Final = 7
CLOCK_TAI: Final = 11
HRTIMER_MODE_ABS: Final = 0x00
HRTIMER_MODE_REL: Final = 0x01
HRTIMER_MODE_PINNED: Final = 0x02
HRTIMER_MODE_SOFT: Final = 0x04
HRTIMER_MODE_HARD: Final = 0x08
HRTIMER_MODE_ABS_PINNED: Final = HRTIMER_MODE_ABS | HRTIMER_MODE_PINNED
HRTIMER_MODE_REL_PINNED: Final = HRTIMER_MODE_REL | HRTIMER_MODE_PINNED
HRTIMER_MODE_ABS_SOFT: Final = HRTIMER_MODE_ABS | HRTIMER_MODE_SOFT
HRTIMER_MODE_REL_SOFT: Final = HRTIMER_MODE_REL | HRTIMER_MODE_SOFT
HRTIMER_MODE_ABS_PINNED_SOFT: Final = HRTIMER_MODE_ABS_PINNED | HRTIMER_MODE_SOFT
HRTIMER_MODE_REL_PINNED_SOFT: Final = HRTIMER_MODE_REL_PINNED | HRTIMER_MODE_SOFT
HRTIMER_MODE_ABS_HARD: Final = HRTIMER_MODE_ABS | HRTIMER_MODE_HARD
HRTIMER_MODE_REL_HARD: Final = HRTIMER_MODE_REL | HRTIMER_MODE_HARD
HRTIMER_MODE_ABS_PINNED_HARD: Final = HRTIMER_MODE_ABS_PINNED | HRTIMER_MODE_HARD
HRTIMER_MODE_REL_PINNED_HARD: Final = HRTIMER_MODE_REL_PINNED | HRTIMER_MODE_HARD
HRTIMER_NORESTART: Final = 0
HRTIMER_RESTART: Final = 1
NSEC_PER_USEC: Final = 1_000
NSEC_PER_MSEC: Final = 1_000_000
NSEC_PER_SEC: Final = 1_000_000_000
#: ``KTIME_MAX``: the largest ktime (``s64``); ``KTIME_SEC_MAX`` seconds and up saturate to it.
KTIME_MAX: Final = (1 << 63) - 1
KTIME_SEC_MAX: Final = KTIME_MAX // NSEC_PER_SEC

# --- irq_work flags (include/linux/smp_types.h) -----------------------------------------------
IRQ_WORK_PENDING: Final = 0x01
IRQ_WORK_BUSY: Final = 0x02
IRQ_WORK_LAZY: Final = 0x04
IRQ_WORK_HARD_IRQ: Final = 0x08
IRQ_WORK_CLAIMED: Final = IRQ_WORK_PENDING | IRQ_WORK_BUSY

# --- tasks and signals ------------------------------------------------------------------------
TASK_RUNNING: Final = 0x0000
TASK_INTERRUPTIBLE: Final = 0x0001
TASK_UNINTERRUPTIBLE: Final = 0x0002
TASK_WAKEKILL: Final = 0x0100
TASK_KILLABLE: Final = TASK_WAKEKILL | TASK_UNINTERRUPTIBLE
TASK_NORMAL: Final = TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE
#: ``TASK_PARKED``: a kthread parked by ``kthread_park()``; only ``kthread_unpark()`` wakes it.
TASK_PARKED: Final = 0x0040
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
ENXIO: Final = 6
EAGAIN: Final = 11
#: ``EWOULDBLOCK`` is ``EAGAIN`` on Linux.
EWOULDBLOCK: Final = EAGAIN
ENOMEM: Final = 12
EFAULT: Final = 14
EBUSY: Final = 16
EEXIST: Final = 17
ENODEV: Final = 19
EINVAL: Final = 22
ENOSPC: Final = 28
ENOSYS: Final = 38
ETIME: Final = 62
ENOTCONN: Final = 107
ETIMEDOUT: Final = 110
EALREADY: Final = 114
EINPROGRESS: Final = 115
ECANCELED: Final = 125
ERESTARTSYS: Final = 512
#: ``MAX_ERRNO``: error codes are 1..4095, so ``-4095..-1`` never collide with a valid pointer
#: (include/linux/err.h).
MAX_ERRNO: Final = 4095

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
