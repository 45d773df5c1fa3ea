"""Every code block of the documentation (``docs/**/*.md``) and of README.md runs as a test.

Sybil collects them:

* ``python`` blocks run in one namespace per document, in order; a block that starts with
  ``>>>`` is a doctest whose printed output must match (``...`` matches anything).
* A ``python`` block that defines ``test_*`` functions is a pytest test file: it is written to
  a temporary directory and run by pytest in a fresh interpreter, where it must pass.
* ``sh`` blocks are commands: each ``python -m kdefer_async ...`` line runs from the
  repository root and must exit with 0. A block with any other command must be preceded by
  ``<!-- skip: next "why, and what checks it instead" -->``.
* ``<!-- invisible-code-block: python -->`` comments run too, unseen by readers.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sybil import Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import (
    ClearNamespaceParser as MarkdownClearNamespaceParser,
    CodeBlockParser as MarkdownCodeBlockParser,
    PythonCodeBlockParser as MarkdownPythonCodeBlockParser,
    SkipParser as MarkdownSkipParser,
)
from sybil.parsers.myst import (
    ClearNamespaceParser as MystClearNamespaceParser,
    CodeBlockParser as MystCodeBlockParser,
    PythonCodeBlockParser as MystPythonCodeBlockParser,
    SkipParser as MystSkipParser,
)

ROOT = Path(__file__).resolve().parent
_TEST_FUNCTION = re.compile(r"^(async )?def test_\w+\(", re.M)
_OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _environment() -> dict[str, str]:
    """The environment of a child interpreter: this checkout of kdefer_async comes first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


class _PythonOrPytestFile:
    """Run a block in the document's namespace, or as a pytest file when it defines tests."""

    def __init__(self) -> None:
        self._python = PythonEvaluator()

    def __call__(self, example: Example) -> str | None:
        source = str(example.parsed)
        if not _TEST_FUNCTION.search(source):
            return self._python(example)
        tmp = Path(tempfile.mkdtemp(prefix="kdefer-doc-"))
        example.namespace.setdefault("_tmp_dirs", []).append(tmp)
        test_file = tmp / f"test_doc_line{example.line}.py"
        test_file.write_text(source, encoding="utf-8")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-W",
                "error",
                "--rootdir",
                str(tmp),
                str(test_file),
            ],
            cwd=tmp,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            return f"the test file of line {example.line} failed:\n{result.stdout}{result.stderr}"
        return None


def _commands(source: str) -> list[str]:
    """The commands of a shell block: comments dropped, continuation lines joined."""
    commands, current = [], ""
    for raw in source.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            commands.append(current.strip())
        current = ""
    return commands


def _run_shell(example: Example) -> str | None:
    for command in _commands(str(example.parsed)):
        argv = shlex.split(command)
        if argv[:3] != ["python", "-m", "kdefer_async"]:
            return (
                f"line {example.line}: {command!r} is not a `python -m kdefer_async` command; "
                'precede the block with <!-- skip: next "..." --> saying what checks it'
            )
        result = subprocess.run(
            [sys.executable, *argv[1:]],
            cwd=ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            return f"{command!r} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
    return None


class _MystPython(MystPythonCodeBlockParser):
    def __init__(self) -> None:
        super().__init__(doctest_optionflags=_OPTIONS)
        self.codeblock_parser = MystCodeBlockParser("python", _PythonOrPytestFile())


class _MarkdownPython(MarkdownPythonCodeBlockParser):
    def __init__(self) -> None:
        super().__init__(doctest_optionflags=_OPTIONS)
        self.codeblock_parser = MarkdownCodeBlockParser("python", _PythonOrPytestFile())


def _teardown(namespace: dict[str, object]) -> None:
    for path in namespace.get("_tmp_dirs", []):  # type: ignore[union-attr]
        shutil.rmtree(path, ignore_errors=True)


_docs = Sybil(
    parsers=[
        _MystPython(),
        MystCodeBlockParser("sh", _run_shell),
        MystSkipParser(),
        MystClearNamespaceParser(),
    ],
    path="docs",
    patterns=["*.md", "**/*.md"],
    excludes=["_build/**"],
    teardown=_teardown,
    name="docs",
)
_readme = Sybil(
    parsers=[
        _MarkdownPython(),
        MarkdownCodeBlockParser("sh", _run_shell),
        MarkdownSkipParser(),
        MarkdownClearNamespaceParser(),
    ],
    path=".",
    patterns=["README.md"],
    teardown=_teardown,
    name="readme",
)

pytest_collect_file = (_docs + _readme).pytest()
