"""Shared helpers for the ``bench_*.py`` scripts: header, timing, targets, the result table.

Every script measures kdefer_async and a raw-asyncio baseline in the same process and the
same run, repeats each measurement and keeps the best, prints one table row per measurement
(kdefer number, baseline number, ratio, target, PASS/FAIL) and exits with status 1 if any
target was missed, after printing everything.

Command line (shared by every script, passed through by ``nox -s bench -- ARGS``):

* ``--repeat N``: repetitions per measurement (default 5; the best is kept).
* ``--profile``: also run one kdefer repetition under cProfile and print the top functions.
* ``--clock process_time``: time with this process's CPU time instead of wall time
  (``time.perf_counter``); steadier when other work shares the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "Options",
    "Row",
    "Target",
    "alternate",
    "finish",
    "no_gc",
    "now",
    "parse_args",
    "print_header",
    "print_samples",
    "print_table",
    "profiled",
]

DEFAULT_REPEAT = 5


CLOCKS: dict[str, Callable[[], float]] = {
    "perf_counter": time.perf_counter,
    "process_time": time.process_time,
}
_clock: list[Callable[[], float]] = [time.perf_counter]


def now() -> float:
    """The benchmark clock: ``time.perf_counter()`` unless ``--clock process_time`` was given."""
    return _clock[0]()


@dataclass(frozen=True)
class Options:
    """The parsed command line."""

    repeat: int
    profile: bool
    clock: str


def parse_args(description: str) -> Options:
    """Parse the shared command line (``--repeat``, ``--profile``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help=f"repetitions per measurement; the best is kept (default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run one kdefer repetition under cProfile and print the top functions",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="perf_counter",
        help="clock for the timing benchmarks: wall time (perf_counter, the default) or this "
        "process's CPU time (process_time: steadier on a machine busy with other work)",
    )
    ns = parser.parse_args()
    if ns.repeat < 1:
        parser.error("--repeat must be at least 1")
    _clock[0] = CLOCKS[ns.clock]
    return Options(repeat=ns.repeat, profile=ns.profile, clock=ns.clock)


def print_header(title: str, opts: Options) -> None:
    """Print the Python version and platform, then the benchmark's title."""
    impl = platform.python_implementation()
    print(f"Python {platform.python_version()} ({impl}) on {platform.platform()}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count() or 1} CPUs; executable: {sys.executable}"
    )
    if hasattr(os, "getloadavg"):
        # other work on the machine makes timings noisy: show how busy it was at the start
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average at start: {load}")
    print(f"== {title} (best of {opts.repeat}; clock: time.{opts.clock}) ==")
    sys.stdout.flush()


def alternate(
    opts: Options, sides: dict[str, Callable[[], float]], warmup: int = 2
) -> dict[str, list[float]]:
    """Run each side's *measure* in turn, round after round, and return the samples per side.

    Alternating the sides (rather than running all of one, then all of the other) spreads
    drift over both: CPU frequency, a noisy neighbour, the allocator growing its arenas.
    The first *warmup* rounds are run and dropped.
    """
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(warmup + opts.repeat):
        for name, measure in sides.items():
            value = measure()
            if i >= warmup:
                samples[name].append(value)
    return samples


def print_samples(samples: dict[str, list[float]], scale: float, unit: str) -> None:
    """Print every sample of every side (scaled), so that the noise can be judged."""
    for name, values in samples.items():
        shown = ", ".join(_fmt(v * scale) for v in values)
        print(f"{name} samples ({unit}): {shown}")


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect, then keep the cyclic GC off inside the block (as :mod:`timeit` does)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Target:
    """
    A target for one measurement.

    *kind* ``"ratio"`` compares kdefer / baseline with *limit*; ``"value"`` compares the kdefer
    number itself. *op* is ``"<="`` or ``"<"``.
    """

    kind: str
    op: str
    limit: float

    def check(self, value: float, ratio: float | None) -> bool:
        """Whether the measured *value* (or *ratio*) meets the target."""
        x = ratio if self.kind == "ratio" else value
        if x is None:
            return False
        return x <= self.limit if self.op == "<=" else x < self.limit

    def describe(self, unit: str) -> str:
        """The target as printed in the table (``ratio <= 1.00``, ``< 0.01 core``...)."""
        if self.kind == "ratio":
            return f"ratio {self.op} {self.limit:.2f}"
        return f"{self.op} {_fmt(self.limit)} {unit}".rstrip()


@dataclass(frozen=True)
class Row:
    """One measurement: the kdefer number, the baseline number and an optional target."""

    name: str
    kdefer: float
    baseline: float | None
    unit: str
    target: Target | None = None

    @property
    def ratio(self) -> float | None:
        """kdefer / baseline, or None without a (non-zero) baseline."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.kdefer / self.baseline

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL``, or ``info`` for a reported number without a target."""
        if self.target is None:
            return "info"
        return "PASS" if self.target.check(self.kdefer, self.ratio) else "FAIL"


def _fmt(x: float) -> str:
    if isinstance(x, int):
        return f"{x:,}"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 0.1:
        return f"{x:.3f}"
    return f"{x:.4g}"


def print_table(rows: list[Row], baseline_label: str = "asyncio") -> None:
    """Print the result table: one line per measurement."""
    headers = ["measurement", "kdefer", baseline_label, "unit", "ratio", "target", "result"]
    cells = [
        [
            r.name,
            _fmt(r.kdefer),
            "-" if r.baseline is None else _fmt(r.baseline),
            r.unit,
            "-" if r.ratio is None else f"{r.ratio:.3f}x" if r.ratio < 0.1 else f"{r.ratio:.2f}x",
            "-" if r.target is None else r.target.describe(r.unit),
            r.status,
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    right = {1, 2, 4}

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(widths[i]) if i in right else v.ljust(widths[i]) for i, v in enumerate(values)
        ).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(line(c))
    sys.stdout.flush()


def finish(rows: list[Row]) -> int:
    """Print the verdict; return the exit status (1 if any target was missed)."""
    failed = [r.name for r in rows if r.status == "FAIL"]
    checked = sum(1 for r in rows if r.target is not None)
    if failed:
        print(f"FAIL: {len(failed)} of {checked} targets missed: {', '.join(failed)}")
        return 1
    print(f"PASS: all {checked} targets met")
    return 0


@contextmanager
def profiled(title: str, top: int = 25) -> Iterator[None]:
    """Profile the block with cProfile and print the *top* functions by own time.

    Usable around code that awaits: everything the thread runs meanwhile (other tasks of the
    event loop included) is profiled too.
    """
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
    elapsed = time.perf_counter() - start
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats(pstats.SortKey.TIME).print_stats(top)
    print(f"\n-- cProfile: {title} ({elapsed:.3f} s under the profiler) --")
    print(out.getvalue().strip())
    sys.stdout.flush()
