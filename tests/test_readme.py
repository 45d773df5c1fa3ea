"""The README's claims: its tour runs and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour() -> str:
    text = README.read_text()
    match = re.search(r"```python\n(import kdefer_async as kd\n.*?)```", text, re.S)
    assert match is not None, "the README has lost its tour"
    return match.group(1)


def test_tour_runs_and_shows_every_step() -> None:
    """The five-minute tour runs as printed and logs each of its steps in virtual time."""
    out = subprocess.run(
        [sys.executable, "-c", _tour()], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for line in ("tasklet on CPU 0", "work done", "debounced", "timer at "):
        assert line in out
    # the debounced work ran once: the last mod_delayed_work was right after "work done";
    # 50 ms is 13 jiffies at HZ=250, and the timer fires at the tick after: 14 jiffies, 56 ms
    assert out.count("debounced") == 1
    stamps = {
        text: float(stamp)
        for stamp, text in re.findall(r"\[\s*([\d.]+)\] (work done|debounced)", out)
    }
    assert round(stamps["debounced"] - stamps["work done"], 6) == 0.056
    assert "TASKLET:" in out


def test_quick_start_commands_are_the_documented_ones() -> None:
    """The two commands the README gives are the main job and the test command CI runs."""
    text = README.read_text()
    assert "python -m kdefer_async demo" in text
    assert "python3 -m pip install nox && nox" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "nox" in ci
