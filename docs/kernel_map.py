"""Every public name of kdefer_async, the API page it is documented on, and its kernel counterpart.

The API reference is generated from this module (``docs/_ext/kapi.py``) and
``tests/test_docs_inventory.py`` checks it against the package, so a public name cannot go
undocumented. Most entries are derived, not listed:

* A function or constant whose Python name is the C name (``tasklet_schedule``,
  ``HI_SOFTIRQ``) gets its entry from the private module that defines it (``MODULES``) or, for
  the constants of ``_consts``, from its prefix (``CONSTANT_PREFIXES``).
* A class, a name whose C spelling differs, and a name with no kernel counterpart need an
  explicit line in ``EXPLICIT``; so does every public method of ``Kernel`` (``KERNEL_METHODS``)
  and every name of ``kdefer_async.testing`` (``TESTING``).

A name that fits none of these (a new private module, a new class, a constant with a new
prefix) makes the inventory test fail until it gets its line here.

The context a function is legal in comes from its docstring's ``Context:`` section; for a plain
function whose docstring has none, the first rule of ``CONTEXT_RULES`` that matches its name
states it.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

ELIXIR_IDENT = "https://elixir.bootlin.com/linux/latest/A/ident/{}"
ELIXIR_SOURCE = "https://elixir.bootlin.com/linux/latest/source/{}"
KERNEL_DOCS = "https://docs.kernel.org/{}"


@dataclass(frozen=True)
class Group:
    """One page of the API reference: a kernel mechanism."""

    slug: str
    title: str
    intro: str
    #: The kernel's documentation page for the mechanism (a path under docs.kernel.org).
    docs: str | None
    #: The kernel source files that implement it (paths in the kernel tree).
    sources: tuple[str, ...]


GROUPS: tuple[Group, ...] = (
    Group(
        "kernel",
        "The kernel, running it, and its errors",
        "Booting a simulated kernel, running code in it, and what it raises.",
        None,
        ("init/main.c", "kernel/panic.c"),
    ),
    Group(
        "context",
        "Contexts, preemption and busy-waits",
        "Where the running code is (task, softirq, hardirq, NMI), the preempt count, "
        "interrupts on and off, and the delays that spin.",
        "locking/preempt-locking.html",
        ("include/linux/preempt.h", "include/linux/irqflags.h", "include/linux/delay.h"),
    ),
    Group(
        "irq",
        "Interrupts and threaded interrupts",
        "Requesting interrupt lines, primary handlers in hardirq context and irq threads.",
        "core-api/genericirq.html",
        ("kernel/irq/manage.c", "include/linux/interrupt.h"),
    ),
    Group(
        "softirq",
        "Softirqs",
        "The ten softirq vectors, bottom-half disabling and ksoftirqd.",
        "kernel-hacking/hacking.html",
        ("kernel/softirq.c", "include/linux/interrupt.h"),
    ),
    Group(
        "tasklet",
        "Tasklets",
        "Tasklets: functions run by ``TASKLET_SOFTIRQ`` and ``HI_SOFTIRQ``.",
        "kernel-hacking/hacking.html",
        ("kernel/softirq.c", "include/linux/interrupt.h"),
    ),
    Group(
        "timer",
        "Timers and jiffies",
        "Timers on the jiffy-based timer wheel, and jiffy arithmetic.",
        "driver-api/basics.html",
        ("kernel/time/timer.c", "include/linux/jiffies.h", "include/linux/timer.h"),
    ),
    Group(
        "hrtimer",
        "High-resolution timers and ktime",
        "Nanosecond timers on ``ktime_t`` and the clocks they read.",
        "timers/hrtimers.html",
        ("kernel/time/hrtimer.c", "include/linux/hrtimer.h", "include/linux/ktime.h"),
    ),
    Group(
        "irq_work",
        "irq_work and cross-CPU function calls",
        "Callbacks run in hardirq context from NMI or atomic code, and functions run on other "
        "CPUs by inter-processor interrupts.",
        None,
        ("kernel/irq_work.c", "include/linux/irq_work.h", "kernel/smp.c"),
    ),
    Group(
        "workqueue",
        "Workqueues",
        "Work items, delayed work, workqueues and their flags, and flushing, cancelling and "
        "disabling work.",
        "core-api/workqueue.html",
        ("kernel/workqueue.c", "include/linux/workqueue.h"),
    ),
    Group(
        "kthread",
        "Kernel threads and kthread_worker",
        "Kernel threads, parking, and the kthread_worker queue served by one thread.",
        None,
        ("kernel/kthread.c", "include/linux/kthread.h"),
    ),
    Group(
        "sched",
        "Sleeping, waiting and signals",
        "Sleeping on the clock, wait queues, completions, task states and signals.",
        "scheduler/completion.html",
        ("kernel/sched/wait.c", "kernel/sched/completion.c", "kernel/time/timer.c"),
    ),
    Group(
        "locking",
        "Locking",
        "Spinlocks, mutexes, reader-writer locks, seqlocks and semaphores.",
        "locking/locktypes.html",
        ("kernel/locking/spinlock.c", "kernel/locking/mutex.c", "kernel/locking/rwsem.c"),
    ),
    Group(
        "atomic",
        "Atomics and bit operations",
        "``atomic_t``, ``atomic64_t`` and bitmaps: every operation atomic, legal anywhere.",
        "core-api/wrappers/atomic_t.html",
        ("include/linux/atomic/atomic-instrumented.h", "include/linux/bitmap.h"),
    ),
    Group(
        "percpu",
        "Per-CPU data and CPU masks",
        "Per-CPU variables and the CPU iterators.",
        "core-api/this_cpu_ops.html",
        ("include/linux/percpu-defs.h", "include/linux/cpumask.h"),
    ),
    Group(
        "rcu",
        "RCU",
        "Read-copy-update: read-side sections, grace periods and callbacks.",
        "RCU/whatisRCU.html",
        ("kernel/rcu/tree.c", "include/linux/rcupdate.h"),
    ),
    Group(
        "mm",
        "Memory and containers",
        "Allocating and freeing structures, and finding a structure from its member.",
        "core-api/memory-allocation.html",
        ("mm/slub.c", "include/linux/container_of.h"),
    ),
    Group(
        "printk",
        "printk, WARN and BUG",
        "The kernel log and the kernel's reports.",
        "core-api/printk-basics.html",
        ("kernel/printk/printk.c", "include/asm-generic/bug.h"),
    ),
    Group(
        "module",
        "Modules",
        "Writing a module: its init and exit functions, parameters and metadata.",
        "kbuild/modules.html",
        ("include/linux/module.h", "include/linux/moduleparam.h"),
    ),
    Group(
        "trace",
        "Tracing",
        "The kernel's tracepoints, the tracefs of a kernel (``k.tracing``) and ``trace_printk``.",
        "trace/ftrace.html",
        ("kernel/trace/trace.c", "kernel/trace/trace_output.c", "include/trace/events/irq.h"),
    ),
    Group(
        "errno",
        "Error numbers",
        "The kernel's error numbers, as functions return them negated.",
        None,
        ("include/uapi/asm-generic/errno-base.h", "include/linux/errno.h"),
    ),
)
GROUP = {g.slug: g for g in GROUPS}

#: The private module that defines a name -> the page it is documented on.
MODULES: dict[str, str] = {
    "_kernel": "kernel",
    "_exceptions": "kernel",
    "_shutdown": "kernel",
    "_context": "context",
    "_preempt": "context",
    "_sleeping": "context",
    "_delay": "context",
    "_trace": "trace",
    "_hardirq": "irq",
    "_threadirq": "irq",
    "_softirq": "softirq",
    "_tasklet": "tasklet",
    "_timer": "timer",
    "_time": "timer",
    "_hrtimer": "hrtimer",
    "_irq_work": "irq_work",
    "_smp": "irq_work",
    "_work": "workqueue",
    "_workqueue": "workqueue",
    "_flush": "workqueue",
    "_kthread": "kthread",
    "_kthread_worker": "kthread",
    "_sched": "sched",
    "_wait": "sched",
    "_locking": "locking",
    "_rwlock": "locking",
    "_seqlock": "locking",
    "_semaphore": "locking",
    "_atomic": "atomic",
    "_percpu": "percpu",
    "_rcu": "rcu",
    "_mm": "mm",
    "_printk": "printk",
    "_module": "module",
}

#: Constants of ``_consts`` by prefix (or exact name) -> page; the longest match wins.
CONSTANT_PREFIXES: dict[str, str] = {
    "E": "errno",
    "MAX_ERRNO": "errno",
    "CLOCK_": "hrtimer",
    "HRTIMER_": "hrtimer",
    "KTIME_": "hrtimer",
    "NSEC_PER_": "hrtimer",
    "IRQF_": "irq",
    "IRQ_HANDLED": "irq",
    "IRQ_NONE": "irq",
    "IRQ_WAKE_THREAD": "irq",
    "IRQ_WORK_": "irq_work",
    "HI_SOFTIRQ": "softirq",
    "TIMER_SOFTIRQ": "softirq",
    "NET_TX_SOFTIRQ": "softirq",
    "NET_RX_SOFTIRQ": "softirq",
    "BLOCK_SOFTIRQ": "softirq",
    "IRQ_POLL_SOFTIRQ": "softirq",
    "TASKLET_SOFTIRQ": "softirq",
    "SCHED_SOFTIRQ": "softirq",
    "HRTIMER_SOFTIRQ": "softirq",
    "RCU_SOFTIRQ": "softirq",
    "NR_SOFTIRQS": "softirq",
    "MAX_SOFTIRQ_RESTART": "softirq",
    "TASKLET_STATE_": "tasklet",
    "TIMER_": "timer",
    "MAX_JIFFY_OFFSET": "timer",
    "GFP_": "mm",
    "KERN_": "printk",
    "TASK_": "sched",
    "SCHED_": "sched",
    "MAX_RT_PRIO": "sched",
    "MAX_SCHEDULE_TIMEOUT": "sched",
    "SIG": "sched",
    "HARDIRQ_OFFSET": "context",
    "SOFTIRQ_OFFSET": "context",
    "SOFTIRQ_DISABLE_OFFSET": "context",
    "NMI_OFFSET": "context",
    "PREEMPT_OFFSET": "context",
}

NONE = None  # an explicit "no kernel counterpart"


@dataclass(frozen=True)
class Explicit:
    """A hand-written entry: the C spelling (``None``: no counterpart) and a note."""

    c: str | None
    note: str = ""
    #: The identifier to search for on the source browser, when it differs from ``c``.
    ident: str | None = None
    #: The page, for a name whose module is not in ``MODULES``.
    group: str | None = None


#: Classes, names spelled differently in C, and names with no kernel counterpart.
EXPLICIT: dict[str, Explicit] = {
    # the kernel itself and the model's own names
    "Kernel": Explicit(
        NONE,
        "The simulated machine: a booted kernel with its CPUs, inside an "
        "event loop. It has no single counterpart.",
    ),
    "run": Explicit(
        NONE,
        "Boots a kernel in a new event loop and runs a function as its init "
        "task: the model's entry point.",
    ),
    "current_kernel": Explicit(
        NONE, "The kernel the calling task runs in: there is only one in a real machine."
    ),
    "KernelBug": Explicit(
        "BUG()",
        "Raised where the kernel would print a ``BUG:`` report and stop the offending code.",
        ident="BUG",
    ),
    "KernelPanic": Explicit("panic()", ident="panic"),
    "NoKernelError": Explicit(NONE, "Raised when a kernel API is called where no kernel runs."),
    "KdeferInternalError": Explicit(NONE, "An internal error of the model itself."),
    "ModuleLoadError": Explicit(
        "init_module() / delete_module()",
        "The error ``insmod`` or ``rmmod`` reports.",
        ident="do_init_module",
    ),
    "ShutdownReport": Explicit(NONE, "What the model could not finish when the kernel shut down."),
    "UnfinishedItem": Explicit(NONE, "One item of a :class:`ShutdownReport`."),
    "Oops": Explicit("oops", "The record of one oops (``die()``).", ident="die"),
    "TaskStruct": Explicit("struct task_struct", ident="task_struct"),
    # deferral objects
    "Tasklet": Explicit("struct tasklet_struct", ident="tasklet_struct"),
    "TimerList": Explicit("struct timer_list", ident="timer_list"),
    "HrTimer": Explicit("struct hrtimer", ident="hrtimer"),
    "IrqWork": Explicit("struct irq_work", ident="irq_work"),
    "Work": Explicit("struct work_struct", ident="work_struct"),
    "DelayedWork": Explicit("struct delayed_work", ident="delayed_work"),
    "RcuWork": Explicit("struct rcu_work", ident="rcu_work"),
    "ExecuteWork": Explicit("struct execute_work", ident="execute_work"),
    "Workqueue": Explicit("struct workqueue_struct", ident="workqueue_struct"),
    "KthreadWorker": Explicit("struct kthread_worker", ident="kthread_worker"),
    "KthreadWork": Explicit("struct kthread_work", ident="kthread_work"),
    "KthreadDelayedWork": Explicit("struct kthread_delayed_work", ident="kthread_delayed_work"),
    "KthreadExit": Explicit(
        "kthread_exit()", "Raised to end the calling kthread.", ident="kthread_exit"
    ),
    # waiting and locking objects
    "WaitQueueHead": Explicit("wait_queue_head_t", ident="wait_queue_head"),
    "Completion": Explicit("struct completion", ident="completion"),
    "SpinLock": Explicit("spinlock_t", ident="spinlock_t"),
    "Mutex": Explicit("struct mutex", ident="mutex"),
    "RwLock": Explicit("rwlock_t", ident="rwlock_t"),
    "SeqLock": Explicit("seqlock_t", ident="seqlock_t"),
    "Semaphore": Explicit("struct semaphore", ident="semaphore"),
    "RwSemaphore": Explicit("struct rw_semaphore", ident="rw_semaphore"),
    # data
    "Tracing": Explicit(
        "/sys/kernel/tracing (tracefs)",
        "One kernel's tracing directory: its events, ring buffers and trace files.",
        ident="tracing_init_tracefs",
    ),
    "Atomic": Explicit("atomic_t", ident="atomic_t"),
    "Atomic64": Explicit("atomic64_t", ident="atomic64_t"),
    "Bitmap": Explicit("unsigned long name[BITS_TO_LONGS(nbits)]", ident="DECLARE_BITMAP"),
    "PerCpu": Explicit(
        "a __percpu variable",
        "What ``DEFINE_PER_CPU`` and ``alloc_percpu`` make.",
        ident="DEFINE_PER_CPU",
    ),
    "PerCpuInt": Explicit(
        NONE,
        "The holder of one CPU's copy of an integer per-CPU variable; "
        "C reaches it through a pointer (``per_cpu_ptr``).",
    ),
    # C names spelled differently
    "IRQ_NOTCONNECTED": Explicit("IRQ_NOTCONNECTED"),
}

#: The public methods of ``Kernel``: what each one stands for in the kernel.
KERNEL_METHODS: dict[str, Explicit] = {
    "block_worker_creation": Explicit(
        "create_worker()",
        "Models kthread creation failing, so the mayday timer and the rescuers can be watched.",
        ident="create_worker",
    ),
    "dmesg": Explicit("dmesg (the printk ring buffer)", ident="devkmsg_read"),
    "enter": Explicit(NONE, "Binds an event-loop task to this kernel."),
    "freeze": Explicit("freeze_workqueues_begin()", ident="freeze_workqueues_begin"),
    "thaw": Explicit("thaw_workqueues()", ident="thaw_workqueues"),
    "insmod": Explicit("insmod (init_module)", ident="do_init_module"),
    "rmmod": Explicit("rmmod (delete_module)", ident="free_module"),
    "lsmod": Explicit("lsmod (/proc/modules)", ident="m_show"),
    "irq_effective_cpu": Explicit(
        "/proc/irq/N/effective_affinity", ident="irq_data_get_effective_affinity_mask"
    ),
    "jiffies": Explicit("jiffies", ident="jiffies"),
    "jiffies_to_time": Explicit(NONE, "Maps a jiffy to the event loop's clock."),
    "panic": Explicit("panic()", ident="panic"),
    "proc_interrupts": Explicit("/proc/interrupts", ident="show_interrupts"),
    "proc_softirqs": Explicit("/proc/softirqs", ident="show_softirqs"),
    "raise_irq": Explicit(
        "a device interrupt arriving (generic_handle_irq())", ident="generic_handle_irq"
    ),
    "raise_irq_threadsafe": Explicit(
        "a device interrupt arriving (generic_handle_irq())",
        "From another OS thread.",
        ident="generic_handle_irq",
    ),
    "raise_nmi": Explicit("a non-maskable interrupt (nmi_enter())", ident="nmi_enter"),
    "uptime": Explicit("/proc/uptime", ident="uptime_proc_show"),
    "wq_stats": Explicit("tools/workqueue/wq_monitor.py", "The counters that script reads."),
    "wq_stats_text": Explicit("tools/workqueue/wq_monitor.py", "Its table."),
}

#: The names of ``kdefer_async.testing``: helpers for tests, none of them in the kernel.
TESTING: dict[str, Explicit] = {
    "BACKEND_NAMES": Explicit(NONE, "The backends the test matrix runs on."),
    "VirtualClock": Explicit(NONE, "The clock of the virtual-time asyncio loop."),
    "VirtualTimeEventLoop": Explicit(NONE, "An asyncio event loop on virtual time."),
    "backend_params": Explicit(NONE, "An anyio backend tuple for a backend name."),
    "is_virtual": Explicit(NONE, "Whether a backend runs on virtual time."),
    "new_virtual_event_loop": Explicit(NONE, "Makes a virtual-time asyncio loop."),
    "settle": Explicit(NONE, "Waits until the running kernel is quiet."),
}

#: (name pattern, context) for plain functions whose docstring has no ``Context:`` section.
#: The first match wins. Every text is the kernel's rule, which kdefer_async follows.
CONTEXT_RULES: tuple[tuple[str, str], ...] = (
    (
        r"^(DECLARE|DEFINE)_|^INIT_|_INIT(_HARD|_LAZY)?$|_init$|^init_|^(kthread_)?init_",
        "Any context; never sleeps: it only initialises an object.",
    ),
    (
        r"^MODULE_|^module_(init|exit|param)$",
        "Module scope: called while the module file is loaded, as the C macros are expanded.",
    ),
    (
        r"^(in_|irqs_disabled$|preempt(ible|_count)$|num_|cpu_online$|smp_processor_id$|"
        r"raw_smp_processor_id$|for_each_|current_kernel$)",
        "Any context; never sleeps: it only reads state.",
    ),
    (
        r"^(time_|ktime_|jiffies_|msecs_|usecs_|ms_to|ns_to|us_to|get_jiffies|BITS_TO|"
        r"to_|from_|container_of$|timer_container_of$)",
        "Any context; never sleeps: pure arithmetic or a conversion.",
    ),
    (
        r"(_pending|_is_locked|_is_queued|_active|_running|_done|_busy|_congested)$|"
        r"^(hrtimer_get_|local_softirq_pending|current_work|signal_pending|timer_pending)",
        "Any context; never sleeps: it only reads state.",
    ),
    (r"^mutex_", "Task context (a mutex is never taken in interrupt context); never sleeps."),
    (
        r"^(spin|read|write|local_irq)_|^write_seq|^write_sequnlock|_trylock$",
        "Any context; never sleeps (it spins). The ``_bh`` and ``_irq`` variants also hold off "
        "softirqs or interrupts until the matching unlock.",
    ),
    (
        r"^(this_cpu_|per_cpu|get_cpu|put_cpu|alloc_percpu|free_percpu)",
        "Any context; never sleeps. ``get_cpu`` and ``get_cpu_var`` disable preemption until the "
        "matching put.",
    ),
    (r"^(atomic|ATOMIC)", "Any context; never sleeps."),
    (r"^(rcu_read_)", "Any context; never sleeps: the read-side section must not sleep."),
    (
        r"^(add_timer|mod_timer|del_timer$|timer_delete$|timer_reduce|timer_shutdown$)",
        "Any context; never sleeps.",
    ),
    (
        r"^(del_timer_sync|timer_delete_sync|timer_shutdown_sync)$",
        "Any context except the timer's own callback; never sleeps (it spins while the callback "
        "runs on another CPU). From hardirq context only for ``TIMER_IRQSAFE`` timers.",
    ),
    (
        r"^(schedule_|queue_|mod_delayed_work|enable_|disable_(delayed_)?work$|"
        r"workqueue_set_max_active|hrtimer_|tasklet_unlock_spin_wait|reinit_completion|"
        r"completion_done)",
        "Any context; never sleeps.",
    ),
    (
        r"^(alloc_ordered_workqueue|create_\w*workqueue|kthread_create|kthread_bind)$",
        "Task context; never sleeps in the model (the kernel allocates with ``GFP_KERNEL``).",
    ),
    (
        r"^(kmalloc|kzalloc|kfree)$",
        "``kfree`` in any context; ``kmalloc`` and ``kzalloc`` in any context with ``GFP_ATOMIC`` "
        "or ``GFP_NOWAIT``, in task context with ``GFP_KERNEL``. Never sleeps in the model.",
    ),
    (
        r"^(allow_signal|disallow_signal|flush_signals|kernel_dequeue_signal|set_current_state|"
        r"kthread_should_stop|waitqueue_active)$",
        "Task context (it acts on the calling task); never sleeps.",
    ),
    (r"^(send_sig|dump_stack|WARN_ON_ONCE|BUG_ON)$", "Any context; never sleeps."),
    (r"^run$", "Outside any event loop: it starts one."),
)


@dataclass(frozen=True)
class Entry:
    """What the API reference says about one public name."""

    name: str
    group: str
    c: str | None
    note: str
    ident: str | None

    @property
    def source_url(self) -> str | None:
        """The source browser's search for the C identifier."""
        return ELIXIR_IDENT.format(self.ident) if self.ident else None


def _init_sources(package_dir: Path) -> dict[str, str]:
    """Public name -> the private module ``__init__`` imports it from (``"_tasklet"``)."""
    tree = ast.parse((package_dir / "__init__.py").read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                found[alias.asname or alias.name] = node.module
    return found


def _constant_group(name: str) -> str | None:
    """The page of constant *name* of ``_consts``: an exact entry, else the longest prefix."""
    if name in CONSTANT_PREFIXES:
        return CONSTANT_PREFIXES[name]
    if re.fullmatch(r"E[A-Z]+", name):
        return CONSTANT_PREFIXES["E"]
    if re.fullmatch(r"SIG[A-Z0-9]+", name):
        return CONSTANT_PREFIXES["SIG"]
    prefixes = [p for p in CONSTANT_PREFIXES if p.endswith("_") and name.startswith(p)]
    return CONSTANT_PREFIXES[max(prefixes, key=len)] if prefixes else None


_C_NAME = re.compile(r"[a-z_][a-z0-9_]*|[A-Z][A-Z0-9_]*")


def entry_for(name: str, obj: object, module: str | None) -> Entry | None:
    """The entry of public name *name* defined in private module *module*, or ``None``."""
    explicit = EXPLICIT.get(name)
    if explicit is not None:
        group = explicit.group or (MODULES.get(module) if module else None)
        if module == "_consts":
            group = group or _constant_group(name)
        if group is None:
            return None
        ident = explicit.ident or explicit.c
        return Entry(name, group, explicit.c, explicit.note, ident)
    if inspect.isclass(obj) or not _C_NAME.fullmatch(name):
        return None  # a class or a CapWords name: its C spelling must be written down
    group = _constant_group(name) if module == "_consts" else MODULES.get(module or "")
    if group is None:
        return None
    return Entry(name, group, name, "", name)


def entries(package: object, package_dir: Path) -> tuple[dict[str, Entry], list[str]]:
    """Every name of ``package.__all__`` -> its entry; and the names that have none."""
    sources = _init_sources(package_dir)
    found: dict[str, Entry] = {}
    missing: list[str] = []
    for name in package.__all__:  # type: ignore[attr-defined]
        entry = entry_for(name, getattr(package, name), sources.get(name))
        if entry is None:
            missing.append(name)
        else:
            found[name] = entry
    return found, missing


def context_of(name: str, obj: object) -> str | None:
    """The context *obj* is legal in: its docstring's, or a rule's; ``None`` if neither."""
    doc = inspect.getdoc(obj) or ""
    if re.search(r"^Context:\s*$", doc, re.M):
        return None  # the docstring says it; autodoc renders that section itself
    if inspect.iscoroutinefunction(obj):
        return "Task context; may sleep (``async def``)."
    for pattern, text in CONTEXT_RULES:
        if re.search(pattern, name):
            return text
    return None


def has_context(name: str, obj: object) -> bool:
    """Whether the API entry of *obj* states a context (its docstring's or a rule's)."""
    doc = inspect.getdoc(obj) or ""
    return bool(re.search(r"^Context:\s*$", doc, re.M)) or context_of(name, obj) is not None
