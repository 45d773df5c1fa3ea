"""The README's claims that are not code: its commands and its links.

Its code blocks (the tour, the embedding example, the command line) run through Sybil, with
the documentation's (``conftest.py`` at the repository root).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_quick_start_commands_are_the_documented_ones() -> None:
    """The two commands the README gives are the main job and the test command CI runs."""
    text = README.read_text()
    assert "python -m kdefer_async demo" in text
    assert "python3 -m pip install nox && nox" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "nox" in ci


def test_the_tour_is_still_there() -> None:
    """The five-minute tour is a Python block that boots a kernel in virtual time."""
    match = re.search(r"```python\n(import kdefer_async as kd\n.*?)```", README.read_text(), re.S)
    assert match is not None, "the README has lost its tour"
    assert "kd.run(main, virtual_time=True)" in match.group(1)


def test_links_into_the_repository_resolve() -> None:
    """Every relative link of the README names a file of the repository."""
    links = re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", README.read_text())
    assert links, "the README links into the documentation"
    missing = [link for link in links if not (ROOT / link.split("#", 1)[0]).exists()]
    assert missing == []


def test_the_same_claims_as_the_site() -> None:
    """The figures the README and the performance page both give agree."""
    readme = README.read_text()
    page = (ROOT / "docs" / "guide" / "performance.md").read_text()
    table = readme[readme.index("## Performance") :]
    table = table[: table.index("\n## ")]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows
    assert all(row in page for row in rows)
