"""The command line: ``python -m kdefer_async`` (also installed as ``kdefer-async``).

``run MODULE.py [MODULE.py ...]`` boots a kernel, loads the modules (``insmod``), waits until
they are quiet (or ``--for`` seconds, or Ctrl+C), unloads them (``rmmod``) and shuts down,
streaming the kernel log live; then it prints /proc/softirqs, /proc/interrupts and the
workqueue statistics. ``demo`` runs the three example modules ported from the seed notes, in
virtual time. Ctrl+C delivers SIGINT to the tasks sleeping interruptibly (as a module's
``wait_event_interruptible`` expects) and ends the wait, so the modules are unloaded; a second
Ctrl+C stops the kernel at once.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.abc

from ._consts import SIGINT, TASK_INTERRUPTIBLE
from ._exceptions import KernelPanic, ModuleLoadError
from ._kernel import Kernel
from ._perfetto import PerfettoStream

__all__ = ["main", "run_as_script"]

_COLOURS = {0: "1;31", 1: "1;31", 2: "1;31", 3: "31", 4: "33", 5: "1", 6: "", 7: "2"}
EXAMPLES = ("tasklet_module.py", "global_workqueue_module.py", "dedicated_workqueue_module.py")


def _examples_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples", here.parent / "examples"):
        if (candidate / EXAMPLES[0]).is_file():
            return candidate
    raise FileNotFoundError("the example modules were not found next to the package")


def _int_in(lo: int, hi: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kdefer-async",
        description="Run Python kernel modules on a simulated Linux kernel (softirqs, tasklets, "
        "timers, workqueues) and show their dmesg.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser, *, virtual_default: bool) -> None:
        sp.add_argument(
            "--cpus", type=_int_in(1, 1024), default=4, metavar="N", help="CPUs (default 4)"
        )
        sp.add_argument(
            "--hz",
            type=_int_in(1, 10000),
            default=250,
            metavar="N",
            help="CONFIG_HZ: jiffies per second (default 250)",
        )
        sp.add_argument(
            "--backend",
            choices=("asyncio", "trio"),
            default="asyncio",
            help="event loop (default asyncio)",
        )
        if virtual_default:
            sp.add_argument(
                "--real-time",
                dest="virtual_time",
                action="store_false",
                help="run on the wall clock instead of virtual time",
            )
        else:
            sp.add_argument(
                "--virtual-time",
                action="store_true",
                help="run on a virtual clock: sleeps and timers take no wall time",
            )
        sp.add_argument(
            "--for",
            dest="duration",
            type=_seconds,
            default=None,
            metavar="SECONDS",
            help="keep the modules loaded this long instead of until quiet",
        )
        sp.add_argument(
            "--trace",
            metavar="FILE.json[.gz]",
            default=None,
            help="write a timeline for ui.perfetto.dev to FILE as the run goes (gzip for .gz)",
        )
        sp.add_argument(
            "--trace-events",
            metavar="SPEC",
            default=None,
            help="the events to trace, as written to set_event, comma-separated "
            "(default: all, '*:*'); traces even without --trace",
        )
        sp.add_argument(
            "--ftrace",
            action="store_true",
            help="print the text trace (/sys/kernel/tracing/trace) at the end",
        )
        sp.add_argument(
            "--timeline",
            metavar="FILE.svg",
            default=None,
            help="draw a timeline picture of the trace (.svg or .png; needs matplotlib)",
        )
        sp.add_argument("--no-color", action="store_true", help="never colour the log")
        sp.add_argument(
            "--quiet-stats",
            action="store_true",
            help="do not print /proc/softirqs, /proc/interrupts and wq statistics",
        )

    run = sub.add_parser("run", help="load modules, wait until quiet, unload, show the log")
    run.add_argument("modules", nargs="+", metavar="MODULE.py", help="module files to insmod")
    run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a module parameter (module_param) given to every insmod; repeatable",
    )
    common(run, virtual_default=False)
    demo = sub.add_parser("demo", help="run the three seed examples in virtual time")
    common(demo, virtual_default=True)
    return p


class _Console:
    def __init__(self, out: TextIO, colour: bool) -> None:
        self.out = out
        self.colour = colour

    def __call__(self, line: str, level: int) -> None:
        code = _COLOURS.get(level, "")
        if self.colour and code:
            line = f"\x1b[{code}m{line}\x1b[0m"
        print(line, file=self.out, flush=True)


def _busy(kernel: Kernel) -> bool:
    """Anything left to do: softirqs, scheduled tasklets, queued work, armed timers and
    hrtimers."""
    from ._hrtimer import hrtimer_next_expiry
    from ._workqueue import wq_in_flight

    for cpu in kernel.cpus:
        if cpu.pending or cpu.tasklet_vec or cpu.tasklet_hi_vec:
            return True
        if cpu.hrtimer_base is not None and hrtimer_next_expiry(cpu.hrtimer_base) is not None:
            return True
        for base in (cpu.std_base, cpu.def_base):
            for bucket in base.buckets.values():
                for timer in bucket:
                    if timer is not kernel._hung_timer and not getattr(
                        timer, "_kdefer_internal", False
                    ):
                        return True
    st: Any = getattr(kernel, "_wq_state", None)
    return bool(st is not None and any(wq_in_flight(wq) for wq in st.workqueues))


async def _wait_quiet(kernel: Kernel) -> None:
    from ._sched import msleep
    from .testing import settle

    while True:
        await settle()
        if not _busy(kernel):
            return
        await msleep(10)


async def _hold(kernel: Kernel, duration: float | None, interrupted: anyio.Event) -> None:
    """Keep the modules loaded for *duration* seconds (None: until quiet) or until Ctrl+C."""
    async with anyio.create_task_group() as tg:

        async def stop_at_ctrl_c() -> None:
            await interrupted.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(stop_at_ctrl_c)
        if duration is not None:
            await anyio.sleep(duration)
        else:
            await _wait_quiet(kernel)
        tg.cancel_scope.cancel()


async def _deliver_sigint(
    kernel: Kernel,
    tg: anyio.abc.TaskGroup,
    interrupted: anyio.Event,
    aborted: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """First Ctrl+C: SIGINT to every task sleeping interruptibly, and stop waiting (``--for``
    or for quiet) so that the modules get unloaded; second Ctrl+C: stop the kernel now."""
    from ._sched import send_sig

    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT)
    except NotImplementedError:  # pragma: no cover - platform without signal receivers
        task_status.started()
        return
    with receiver as signals:
        # started only now: a Ctrl+C from here on is ours, never a KeyboardInterrupt
        task_status.started()
        count = 0
        async for _ in signals:
            count += 1
            if count > 1:
                print("^C: stopping the kernel", file=sys.stderr, flush=True)
                aborted.set()
                tg.cancel_scope.cancel()
                return
            print("^C: sending SIGINT to interruptible sleepers", file=sys.stderr, flush=True)
            interrupted.set()
            for task in list(kernel._tasks.values()):
                if not task.is_kthread and task.state & TASK_INTERRUPTIBLE:
                    send_sig(SIGINT, task, 0)


def _insmod_failure(path: str, exc: ModuleLoadError) -> str:
    """One line for stderr: ``could not insert module PATH: REASON``."""
    detail = str(exc.strerror or exc)
    prefix = f"{path}: "
    if detail.startswith(prefix):
        detail = detail[len(prefix) :]
    if detail.startswith("init returned") and exc.errno:
        detail += f" ({os.strerror(exc.errno)})"
    return f"kdefer-async: could not insert module {path}: {detail}"


async def _session(paths: Sequence[str], duration: float | None, params: Sequence[str] = ()) -> int:
    from ._context import current_kernel
    from .testing import settle

    kernel = current_kernel()
    loaded: list[str] = []
    status = 0
    interrupted = anyio.Event()
    aborted = anyio.Event()
    async with anyio.create_task_group() as tg:
        if hasattr(signal, "SIGINT") and os.name != "nt":
            await tg.start(_deliver_sigint, kernel, tg, interrupted, aborted)
        try:
            for path in paths:
                try:
                    await kernel.insmod(path, *params)
                except ModuleLoadError as exc:
                    print(_insmod_failure(path, exc), file=sys.stderr, flush=True)
                    status = 1
                    break
                loaded.append(Path(path).stem)
                await settle()  # the shell runs the next command a moment later
            if status == 0 and not interrupted.is_set():
                await _hold(kernel, duration, interrupted)
            for name in reversed(loaded):
                await kernel.rmmod(name)
        finally:
            tg.cancel_scope.cancel()
    return 130 if aborted.is_set() else status


def _run(args: argparse.Namespace, paths: Sequence[str]) -> int:
    for path in paths:
        if not Path(path).is_file():
            print(f"kdefer-async: {path}: no such module file", file=sys.stderr)
            return 2
    colour = sys.stdout.isatty() and not args.no_color and "NO_COLOR" not in os.environ
    console = _Console(sys.stdout, colour)
    holder: dict[str, Kernel] = {}
    tracing = bool(args.trace or args.ftrace or args.timeline or args.trace_events is not None)
    if args.timeline is not None:
        if not args.timeline.lower().endswith((".svg", ".png")):
            print(
                f"kdefer-async: --timeline {args.timeline}: not a .svg or .png file",
                file=sys.stderr,
            )
            return 2
        if importlib.util.find_spec("matplotlib") is None:
            print(
                "kdefer-async: --timeline needs matplotlib: pip install 'kdefer-async[timeline]'",
                file=sys.stderr,
            )
            return 2
    try:
        kernel = Kernel(
            args.cpus,
            args.hz,
            console=console,
            trace=(True if args.trace_events is None else args.trace_events) if tracing else False,
        )
    except ValueError as exc:
        print(f"kdefer-async: --trace-events: {exc}", file=sys.stderr)
        return 2
    stream = None
    if args.trace is not None:
        try:
            stream = kernel.tracing.stream_perfetto(args.trace)
        except OSError as exc:
            print(f"kdefer-async: --trace: {exc}", file=sys.stderr)
            return 2

    async def boot() -> int:
        async with kernel:
            holder["k"] = kernel
            return await _session(paths, args.duration, getattr(args, "param", []))

    options: dict[str, Any] = {}
    if args.virtual_time:
        from ._vtime import backend_params

        options = backend_params(f"{args.backend}+virtual")[1]
    try:
        status = anyio.run(boot, backend=args.backend, backend_options=options)
    except KernelPanic as exc:
        print(f"kdefer-async: kernel panic: {exc}", file=sys.stderr)
        return _trace_outputs(args, kernel, stream, 3)
    except KeyboardInterrupt:
        return _trace_outputs(args, kernel, stream, 130)
    if holder and not args.quiet_stats:
        print("\n$ cat /proc/softirqs")
        print(kernel.proc_softirqs(), end="")
        print("\n$ cat /proc/interrupts")
        print(kernel.proc_interrupts(), end="")
        stats = getattr(kernel, "wq_stats_text", None)
        if stats is not None:
            print("\n$ wq_monitor.py")
            print(stats(), end="")
    return _trace_outputs(args, kernel, stream, status)


def _trace_outputs(
    args: argparse.Namespace, kernel: Kernel, stream: PerfettoStream | None, status: int
) -> int:
    """``--ftrace``, ``--timeline`` and ``--trace`` at the end of a run (panics included)."""
    if args.ftrace:
        print("\n$ cat /sys/kernel/tracing/trace")
        print(kernel.tracing.text(), end="")
    if args.timeline is not None:
        try:
            kernel.tracing.write_timeline(args.timeline)
        except OSError as exc:
            print(f"kdefer-async: --timeline: {exc}", file=sys.stderr)
            return status or 1
        print(f"\ntimeline picture: {args.timeline}")
    if stream is not None:
        stream.close()  # the kernel closed it when it halted: this covers a failed boot
        if stream.error is not None:
            print(f"kdefer-async: --trace: {stream.error}", file=sys.stderr)
            return status or 1
        print(f"\nperfetto trace: {args.trace} (open it in ui.perfetto.dev)")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m kdefer_async``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        try:
            d = _examples_dir()
        except FileNotFoundError as exc:
            print(f"kdefer-async: {exc}", file=sys.stderr)
            return 2
        return _run(args, [str(d / name) for name in EXAMPLES])
    return _run(args, args.modules)


def run_as_script(name: str) -> None:
    """Run the module file *name* (a module's ``__name__``) under ``run``, then exit."""
    module = sys.modules[name]
    path = getattr(module, "__file__", None)
    if path is None:
        raise RuntimeError(f"{name} has no file to load as a module")
    argv = ["run", path, *sys.argv[1:]]
    raise SystemExit(main(argv))
