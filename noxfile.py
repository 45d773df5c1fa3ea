"""Developer task automation.

``nox`` with no arguments runs the default sessions: lint, typecheck and tests.
``nox -s bench`` runs the benchmarks; it is not part of the default run.
``nox -s docs`` builds the documentation site (warnings are errors) into ``docs/_build/html``.
``nox -s build`` builds the sdist and wheel, checks them, and runs the demo from the wheel
installed in a fresh virtual environment.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = False

PYTHON_VERSIONS = ["3.10", "3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install_project(session: nox.Session, *groups: str) -> None:
    """Install the project (editable, with the trio extra) plus the given dependency groups."""
    session.install("-e", ".[trio]", *nox.project.dependency_groups(PYPROJECT, *groups))


@nox.session(python=PYTHON_VERSIONS)
def tests(session: nox.Session) -> None:
    """Run the test suite on every supported interpreter that is installed."""
    _install_project(session, "test")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the library with mypy in strict mode."""
    _install_project(session, "typecheck")
    # mypy checks the code as Python 3.10, so the 3.10-only backport must be importable
    # even when the session interpreter is newer.
    session.install("exceptiongroup >= 1.0.2")
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Run every ``benchmarks/bench_*.py`` script in name order."""
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if not scripts:
        session.log("No benchmarks found (benchmarks/bench_*.py); nothing to run.")
        return
    _install_project(session, "bench")
    for script in scripts:
        session.run("python", str(script.relative_to(ROOT)), *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with every warning an error, then check it needs no network."""
    _install_project(session, "docs")
    out = ROOT / "docs" / "_build" / "html"
    shutil.rmtree(out, ignore_errors=True)
    session.run(
        "sphinx-build", "-W", "--keep-going", "-n", "-b", "html", "docs", str(out), *session.posargs
    )
    session.run("python", "docs/_tools/check_offline.py", str(out))


@nox.session
def build(session: nox.Session) -> None:
    """Build the sdist and wheel, check them with twine, run the demo from the installed wheel."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "build"))
    dist = Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist), ".")
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        session.error(f"expected one sdist and one wheel in {dist}, found {sorted(dist.iterdir())}")
    session.run("twine", "check", "--strict", str(sdists[0]), str(wheels[0]))
    # A fresh virtual environment with nothing but the wheel and its dependencies, run from a
    # directory outside the source tree so that only the installed package can be imported.
    venv = dist.parent / "wheel-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    bindir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = str(bindir / "python")
    session.run(python, "-m", "pip", "install", "--quiet", str(wheels[0]), external=True)
    with session.chdir(dist):
        session.run(python, "-m", "kdefer_async", "demo", external=True)
        session.run(str(bindir / "kdefer-async"), "demo", "--cpus", "2", external=True)
