"""The static timeline picture: ``Tracing.write_timeline`` (SVG or PNG, drawn with matplotlib).

The drawing tests are skipped only when matplotlib is not installed (the ``test`` dependency
group installs it); the argument checks and the missing-extra message run everywhere.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from kdefer_async import (
    IRQ_HANDLED,
    Kernel,
    Tasklet,
    TimerList,
    Work,
    mod_timer,
    msleep,
    queue_work,
    request_irq,
    system_percpu_wq,
    tasklet_schedule,
)
from kdefer_async.testing import settle

pytestmark = pytest.mark.anyio

HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib not installed")
SVG = "{http://www.w3.org/2000/svg}"


async def small_run(k: Kernel) -> None:
    """An interrupt whose handler schedules a tasklet, a timer, and a work item that sleeps
    (its kworker then has a lane)."""

    def tasklet_fn(t: Tasklet) -> None:
        pass

    t = Tasklet(tasklet_fn)

    def handler(irq: int, dev: object) -> int:
        tasklet_schedule(t)
        return IRQ_HANDLED

    request_irq(16, handler, 0, "mydev", None)
    k.raise_irq(16)
    mod_timer(TimerList(lambda tm: None), k.jiffies + 2)

    async def sleepy(w: Work) -> None:
        await msleep(3)

    queue_work(system_percpu_wq, Work(sleepy))
    await msleep(30)
    await settle()


def svg_texts(path: Path) -> list[str]:
    """The text of every ``<text>`` element of a well-formed SVG file."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return ["".join(el.itertext()).strip() for el in root.iter(f"{SVG}text")]


@needs_matplotlib
class TestPicture:
    async def test_svg_is_well_formed_with_the_lanes_and_legend(self, tmp_path: Path) -> None:
        path = tmp_path / "timeline.svg"
        async with Kernel(nr_cpus=2, trace=True) as k:
            await small_run(k)
        k.tracing.write_timeline(path)
        texts = svg_texts(path)
        for lane in ("CPU 0 hardirq", "CPU 0 softirq", "init-1"):
            assert lane in texts, lane
        assert any(t.startswith("kworker/0:") for t in texts)
        for label in ("device interrupt", "softirq", "tasklet", "timer callback", "flow (sample)"):
            assert label in texts, label
        assert any(t.startswith("kdefer_async trace:") for t in texts)

    async def test_the_same_trace_draws_the_same_svg(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1, trace=True) as k:
            await small_run(k)
        k.tracing.write_timeline(tmp_path / "a.svg")
        k.tracing.write_timeline(str(tmp_path / "b.svg"))
        assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()

    async def test_png_and_linear_time(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1, trace=True) as k:
            await small_run(k)
            k.tracing.write_timeline(tmp_path / "t.PNG", linear=True)
        assert (tmp_path / "t.PNG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        k.tracing.write_timeline(tmp_path / "lin.svg", linear=True)
        assert "time since the first event (ms)" in svg_texts(tmp_path / "lin.svg")

    async def test_an_empty_trace_is_still_a_picture(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1) as k:
            k.tracing.write_timeline(tmp_path / "empty.svg")
        assert any(
            t.startswith("kdefer_async trace: 0 records") for t in svg_texts(tmp_path / "empty.svg")
        )

    async def test_an_unwritable_path_is_an_oserror(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1, trace=True) as k:
            await small_run(k)
            with pytest.raises(OSError):
                k.tracing.write_timeline(tmp_path / "no" / "dir" / "t.svg")


class TestMissingExtra:
    async def test_the_error_names_the_extra(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real_import = builtins.__import__

        def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "matplotlib" or name.startswith("matplotlib."):
                raise ImportError(f"No module named {name!r}")
            return real_import(name, *args, **kwargs)

        async with Kernel(nr_cpus=1, trace=True) as k:
            monkeypatch.setattr(builtins, "__import__", no_matplotlib)
            with pytest.raises(ImportError) as exc:
                k.tracing.write_timeline(tmp_path / "t.svg")
            monkeypatch.undo()
        assert "pip install 'kdefer-async[timeline]'" in str(exc.value)
        assert not (tmp_path / "t.svg").exists()


class TestArguments:
    async def test_bad_arguments(self, tmp_path: Path) -> None:
        async with Kernel(nr_cpus=1) as k:
            with pytest.raises(TypeError) as exc:
                k.tracing.write_timeline(3)  # type: ignore[arg-type]
            assert str(exc.value) == (
                "Tracing.write_timeline() expects a path (str or os.PathLike) for 'path', got int"
            )
            with pytest.raises(ValueError) as verr:
                k.tracing.write_timeline(tmp_path / "t.pdf")
            assert str(verr.value).startswith(
                "Tracing.write_timeline() expects a path ending in .svg or .png for 'path', got "
            )
            with pytest.raises(TypeError) as exc:
                k.tracing.write_timeline(tmp_path / "t.svg", linear=1)  # type: ignore[arg-type]
            assert str(exc.value) == (
                "Tracing.write_timeline() expects a bool for 'linear', got int"
            )
        assert not os.listdir(tmp_path)
