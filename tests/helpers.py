"""Helpers shared by the test modules (imported as ``helpers``; not a test module)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from kdefer_async import Kernel, TimerList, mod_timer
from kdefer_async.testing import settle

ROOT = Path(__file__).resolve().parent.parent
#: One dmesg line as printed: ``[    1.234567] text``.
LOG_LINE = re.compile(r"^\[\s*(\d+\.\d{6})\] (.*)$")


def logged(k: Kernel, text: str) -> int:
    """How many dmesg lines contain *text*."""
    return sum(text in line for line in k.dmesg())


def at_tick(k: Kernel, ticks: int, fn: Callable[[], object]) -> TimerList:
    """Arm a timer whose callback calls ``fn()`` on the tick *ticks* jiffies from now."""
    timer = TimerList(lambda _t: fn(), 0)
    # the wheel fires a timer on the first tick after ``expires``
    mod_timer(timer, k.jiffies + ticks - 1)
    return timer


def subprocess_env() -> dict[str, str]:
    """The environment for running the package or an example in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    return env


def kernel_log(stdout: str) -> list[tuple[float, str]]:
    """The kernel log lines of *stdout* as (timestamp, message)."""
    out = []
    for line in stdout.splitlines():
        m = LOG_LINE.match(line)
        if m:
            out.append((float(m.group(1)), m.group(2)))
    return out


async def softirqs_done(virtual: bool) -> None:
    """Wait for softirq work that a pass may have left to ksoftirqd.

    ``__do_softirq`` stops once its time budget (``MAX_SOFTIRQ_TIME``, a jiffy at HZ=250) is
    spent and hands the rest to ksoftirqd, as the kernel does. On the real clock a jiffy can
    end during a pass (a busy machine), so a test waits for ksoftirqd before it looks; on a
    virtual clock no time passes while atomic code runs, so nothing is left and this returns
    at once: the assertion that follows then checks that the work ran right there.
    """
    if not virtual:
        await settle()
