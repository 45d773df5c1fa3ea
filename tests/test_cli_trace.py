"""The command line's tracing options: ``--trace``, ``--trace-events``, ``--ftrace``,
``--timeline``, on ``run`` and ``demo``, each run as a subprocess (as ``test_cli.py``)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, subprocess_env

TIMEOUT = 60
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

MODULE = """\
    from kdefer_async import (
        IRQ_HANDLED, MODULE_LICENSE, Tasklet, current_kernel, module_exit, module_init,
        request_irq, free_irq, tasklet_schedule, tasklet_kill,
    )

    def tasklet_fn(t):
        pass

    t = Tasklet(tasklet_fn)

    def handler(irq, dev):
        tasklet_schedule(t)
        return IRQ_HANDLED

    @module_init
    def init():
        request_irq(19, handler, 0, "tracedev", None)
        current_kernel().raise_irq(19)
        return 0

    @module_exit
    async def fini():
        free_irq(19, None)
        await tasklet_kill(t)

    MODULE_LICENSE("GPL")
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kdefer_async", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
        env=subprocess_env(),
        check=False,
    )


def strict(text: str) -> Any:
    def reject(name: str) -> Any:
        raise ValueError(name)

    return json.loads(text, parse_constant=reject)


def module(tmp_path: Path) -> Path:
    path = tmp_path / "tracemod.py"
    path.write_text(textwrap.dedent(MODULE))
    return path


class TestTraceFile:
    @pytest.mark.parametrize("name", ["t.json", "t.json.gz"])
    def test_run_streams_a_perfetto_trace(self, tmp_path: Path, name: str) -> None:
        out = tmp_path / name
        r = cli(
            "run", str(module(tmp_path)), "--virtual-time", "--quiet-stats", "--trace", str(out)
        )
        assert r.returncode == 0, r.stderr
        assert f"perfetto trace: {out}" in r.stdout
        raw = out.read_bytes()
        events = strict((gzip.decompress(raw) if name.endswith(".gz") else raw).decode())
        assert isinstance(events, list)
        slices = {e["name"] for e in events if e["ph"] == "X"}
        assert {"IRQ (tracedev)", "TASKLET", "tasklet_fn"} <= slices
        threads = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
        assert {"hardirq", "softirq"} <= threads

    def test_trace_events_limits_what_is_traced(self, tmp_path: Path) -> None:
        out = tmp_path / "t.json"
        r = cli(
            "run",
            str(module(tmp_path)),
            "--virtual-time",
            "--quiet-stats",
            "--trace",
            str(out),
            "--trace-events",
            "irq:irq_handler_entry,irq:irq_handler_exit",
        )
        assert r.returncode == 0, r.stderr
        events = strict(out.read_text())
        assert {e["name"] for e in events if e["ph"] == "X"} == {"IRQ (tracedev)"}

    def test_a_bad_spec_is_a_usage_error(self, tmp_path: Path) -> None:
        r = cli("run", str(module(tmp_path)), "--trace-events", "irq:nosuch")
        assert r.returncode == 2
        assert "kdefer-async: --trace-events: " in r.stderr
        assert "no such event" in r.stderr
        assert "Traceback" not in r.stderr

    def test_an_unwritable_trace_file_is_an_error(self, tmp_path: Path) -> None:
        r = cli("run", str(module(tmp_path)), "--trace", str(tmp_path / "no" / "t.json"))
        assert r.returncode == 2
        assert "kdefer-async: --trace: " in r.stderr
        assert "Traceback" not in r.stderr


class TestFtrace:
    def test_demo_prints_the_trace_file(self) -> None:
        r = cli("demo", "--quiet-stats", "--ftrace")
        assert r.returncode == 0, r.stderr
        text = r.stdout.split("$ cat /sys/kernel/tracing/trace\n", 1)[1]
        assert text.startswith("# tracer: nop\n")
        assert "tasklet_entry: tasklet=my_tasklet function=tasklet_work" in text

    def test_trace_events_alone_traces(self, tmp_path: Path) -> None:
        r = cli(
            "run",
            str(module(tmp_path)),
            "--virtual-time",
            "--quiet-stats",
            "--ftrace",
            "--trace-events",
            "irq:irq_handler_entry",
        )
        assert r.returncode == 0, r.stderr
        body = [
            line
            for line in r.stdout.split("$ cat /sys/kernel/tracing/trace\n", 1)[1].splitlines()
            if not line.startswith("#")
        ]
        assert body
        assert all(": irq_handler_entry: irq=19 name=tracedev" in line for line in body), body


class TestTimeline:
    @pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib not installed")
    def test_demo_draws_a_timeline(self, tmp_path: Path) -> None:
        out = tmp_path / "demo.svg"
        r = cli("demo", "--quiet-stats", "--timeline", str(out))
        assert r.returncode == 0, r.stderr
        assert f"timeline picture: {out}" in r.stdout
        assert out.read_text().lstrip().startswith("<?xml")

    def test_a_timeline_that_is_not_svg_or_png_is_refused(self, tmp_path: Path) -> None:
        r = cli("demo", "--timeline", str(tmp_path / "t.pdf"))
        assert r.returncode == 2
        assert "not a .svg or .png file" in r.stderr
