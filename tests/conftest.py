"""Shared fixtures: every anyio test runs once per backend in ``BACKEND_NAMES``.

Backends: plain asyncio, asyncio on uvloop, trio, and the two virtual-time variants
(asyncio on our own auto-jumping loop, trio with an auto-jumping ``MockClock``).
Backends whose library is not installed are skipped, not failed.
"""

from __future__ import annotations

import importlib.util

import pytest

from kdefer_async._vtime import BACKEND_NAMES, backend_params, is_virtual


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _backend_param(name: str) -> object:
    """Wrap ``name`` in a ``pytest.param`` that is skipped when its library is missing."""
    marks = []
    if "uvloop" in name:
        marks.append(pytest.mark.skipif(not _installed("uvloop"), reason="uvloop not installed"))
    if name.startswith("trio"):
        # Deliberately not tagged ``trio_only``: that marker is for tests that only make
        # sense on trio, and ``-m "not trio_only"`` must keep running the trio backends.
        marks.append(pytest.mark.skipif(not _installed("trio"), reason="trio not installed"))
    return pytest.param(name, id=name, marks=marks)


@pytest.fixture(params=[_backend_param(name) for name in BACKEND_NAMES])
def backend_name(request: pytest.FixtureRequest) -> str:
    """The name of the backend this test runs on (one of ``BACKEND_NAMES``)."""
    name: str = request.param
    return name


@pytest.fixture
def anyio_backend(backend_name: str) -> tuple[str, dict[str, object]]:
    """A fresh anyio ``(backend, options)`` tuple for ``backend_name``."""
    return backend_params(backend_name)


@pytest.fixture
def virtual(backend_name: str) -> bool:
    """Whether this backend runs on virtual, auto-jumping time."""
    return is_virtual(backend_name)
