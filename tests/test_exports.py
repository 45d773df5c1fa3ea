"""The public namespace: ``__all__``, the API.md contract, and the sleep/atomic split of kinds.

The contract is every section of ``../shared/API.md``, plus the sections of
``../shared/API-next.md`` listed in :data:`IMPLEMENTED_NEXT` (each checked in full, like the
sections of API.md).

Plain synchronous tests: they inspect the package; the few that need a kernel start one with
``kdefer_async.run``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import apiargs
import pytest

import kdefer_async
from kdefer_async import (
    DEFINE_SPINLOCK,
    KernelBug,
    NoKernelError,
    Workqueue,
    spin_lock,
    spin_unlock,
)

#: The contract lives beside the repository (``../shared/``), not in it.
SHARED = Path(__file__).resolve().parents[2] / "shared"
API_MD = SHARED / "API.md"
#: The next mechanisms: only the sections listed in IMPLEMENTED_NEXT are part of the contract.
API_NEXT_MD = SHARED / "API-next.md"
#: The titles of the API-next.md sections this package implements. A section listed
#: here is checked in full, as every section of API.md is; add its title once it is done.
IMPLEMENTED_NEXT: frozenset[str] = frozenset(
    {
        "Threaded interrupts",
        "High-resolution timers",
        "Busy-waiting",
        "Tracing",
        "Atomics and bit operations",
        "Errors and flags",
        "kthread_worker",
        "More locks",
        "Per-CPU data",
        "irq_work and cross-CPU calls",
    }
)
#: Names read from the running kernel on access; not in ``__all__``.
DYNAMIC = frozenset({"HZ", "jiffies", "INITIAL_JIFFIES", "MAX_SOFTIRQ_TIME"})
#: Sleeping APIs the package offers beyond API.md (kernel names, all ``async def``).
EXTRA_ASYNC = frozenset(
    {
        "schedule_timeout_interruptible",
        "schedule_timeout_uninterruptible",
        "wait_for_completion_interruptible",
    }
)

DECL = re.compile(r"(async def|def|class)\s+([A-Za-z_]\w*)")
IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Entry:
    """One name of the API.md contract."""

    kind: str  # "class", "def", "async def" or "name"
    name: str
    section: str


def parse_api(text: str) -> list[Entry]:
    """Every name declared in the fenced code blocks of API.md, with its kind and section."""
    entries: list[Entry] = []
    section = ""
    fenced = False
    for raw in text.splitlines():
        if not fenced and raw.startswith("## "):
            section = raw[3:].strip()
            continue
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            continue
        code = raw.partition("#")[0].strip()
        if not code:
            continue
        decl = DECL.match(code)
        if decl:
            entries.append(Entry(decl.group(1), decl.group(2), section))
            continue
        for part in code.split(","):
            part = part.strip()
            if IDENT.fullmatch(part):
                entries.append(Entry("name", part, section))
    return entries


def section_titles(text: str) -> list[str]:
    """The ``## `` section titles of a contract file, outside fenced blocks."""
    titles = []
    fenced = False
    for raw in text.splitlines():
        if raw.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and raw.startswith("## "):
            titles.append(raw[3:].strip())
    return titles


def contract_entries(api: str, api_next: str | None, implemented: Iterable[str]) -> list[Entry]:
    """Every entry of *api* (API.md), then every entry of the *implemented* sections of
    *api_next* (API-next.md). A listed title that is not a section of *api_next*, or one
    without declarations, is a ``ValueError``: a typo must not check nothing."""
    entries = parse_api(api)
    wanted = set(implemented)
    if not wanted:
        return entries
    if api_next is None:
        raise ValueError(f"API-next.md is needed for its sections {sorted(wanted)}")
    nxt = [e for e in parse_api(api_next) if e.section in wanted]
    empty = sorted(wanted - {e.section for e in nxt})
    if empty:
        raise ValueError(f"not sections of API-next.md with declarations: {empty}")
    return entries + nxt


def missing_names(entries: Iterable[Entry]) -> list[str]:
    """The names of *entries* the package does not export (in ``__all__`` or read from the
    running kernel), in contract order."""
    return [e.name for e in entries if e.name not in kdefer_async.__all__ and e.name not in DYNAMIC]


def _read(path: Path) -> str:
    if not path.is_file():
        pytest.skip(f"{path.name} not found in ../shared beside the repository ({path})")
    return path.read_text()


@pytest.fixture(scope="module")
def api_text() -> str:
    """The text of ``../shared/API.md``."""
    return _read(API_MD)


@pytest.fixture(scope="module")
def api_next_text() -> str:
    """The text of ``../shared/API-next.md``."""
    return _read(API_NEXT_MD)


@pytest.fixture(scope="module")
def api_entries(api_text: str) -> list[Entry]:
    """The contract: every section of API.md and the implemented sections of API-next.md."""
    api_next = _read(API_NEXT_MD) if IMPLEMENTED_NEXT else None
    entries = contract_entries(api_text, api_next, IMPLEMENTED_NEXT)
    assert entries, "API.md has no fenced declarations"
    return entries


def _public_callables() -> dict[str, object]:
    return {
        name: getattr(kdefer_async, name)
        for name in kdefer_async.__all__
        if callable(getattr(kdefer_async, name))
        and not inspect.isclass(getattr(kdefer_async, name))
    }


def _async_names() -> list[str]:
    return sorted(n for n, obj in _public_callables().items() if inspect.iscoroutinefunction(obj))


class TestParser:
    def test_parses_declarations_and_names(self) -> None:
        """The API.md parser reads kinds, comma-separated names and sections, ignoring comments."""
        text = "\n".join(
            [
                "## One",
                "prose with `def not_this()`",
                "```",
                "class Thing                 # a comment, with, commas",
                "def plain(a, b)",
                "async def sleeper(x)        # -> int",
                "A_CONST, B_CONST,",
                "C_CONST",
                "```",
                "## Two",
                "```",
                "def other()",
                "```",
            ]
        )
        assert parse_api(text) == [
            Entry("class", "Thing", "One"),
            Entry("def", "plain", "One"),
            Entry("async def", "sleeper", "One"),
            Entry("name", "A_CONST", "One"),
            Entry("name", "B_CONST", "One"),
            Entry("name", "C_CONST", "One"),
            Entry("def", "other", "Two"),
        ]


class TestAll:
    def test_is_a_sorted_tuple(self) -> None:
        """__all__ is a tuple, sorted, without duplicates."""
        assert isinstance(kdefer_async.__all__, tuple)
        assert list(kdefer_async.__all__) == sorted(kdefer_async.__all__)
        assert len(set(kdefer_async.__all__)) == len(kdefer_async.__all__)

    def test_every_name_exists(self) -> None:
        """Every name in __all__ is an attribute of the package, readable without a kernel."""
        missing = [n for n in kdefer_async.__all__ if not hasattr(kdefer_async, n)]
        assert missing == []

    def test_no_private_or_helper_names(self) -> None:
        """__all__ holds no underscore names, imported modules or typing helpers."""
        for name in kdefer_async.__all__:
            assert not name.startswith("_")
            assert not inspect.ismodule(getattr(kdefer_async, name)), name
        assert "annotations" not in kdefer_async.__all__
        assert "Any" not in kdefer_async.__all__

    def test_star_import(self) -> None:
        """`from kdefer_async import *` binds exactly the names of __all__."""
        namespace: dict[str, object] = {}
        exec("from kdefer_async import *", namespace)
        namespace.pop("__builtins__", None)
        assert set(namespace) == set(kdefer_async.__all__)

    def test_dynamic_names_outside_all(self) -> None:
        """HZ and jiffies are read from the running kernel: not in __all__, RuntimeError outside."""
        for name in DYNAMIC:
            assert name not in kdefer_async.__all__
            with pytest.raises(NoKernelError):
                getattr(kdefer_async, name)

    def test_unknown_attribute(self) -> None:
        """An unknown attribute raises AttributeError, as for any module."""
        with pytest.raises(AttributeError, match="no_such_name"):
            _ = kdefer_async.no_such_name  # type: ignore[attr-defined]


class TestContractSections:
    def test_every_section_of_api_md_is_checked(
        self, api_text: str, api_entries: list[Entry]
    ) -> None:
        """No section of API.md is skipped: each has declarations, all of them in the contract."""
        own = parse_api(api_text)
        assert {e.section for e in own} == set(section_titles(api_text))
        assert "Workqueues" in {e.section for e in own}
        assert set(own) <= set(api_entries)

    def test_implemented_next_sections_exist(self, api_next_text: str) -> None:
        """Every title listed in IMPLEMENTED_NEXT is a section of API-next.md."""
        assert set(IMPLEMENTED_NEXT) <= set(section_titles(api_next_text))

    def test_implemented_next_sections_are_checked_in_full(
        self, api_next_text: str, api_entries: list[Entry]
    ) -> None:
        """Every declaration of a listed API-next.md section is in the contract."""
        listed = {e for e in parse_api(api_next_text) if e.section in IMPLEMENTED_NEXT}
        assert listed <= set(api_entries)

    def test_missing_name_in_an_implemented_next_section_fails(self) -> None:
        """A name missing from a section listed as implemented is reported; the same section
        unlisted is not checked."""
        api = "## Now\n```\ndef msleep(ms)\n```\n"
        api_next = "\n".join(
            [
                "## Done",
                "```",
                "def ndelay(ns)",
                "async def no_such_sleeper_api(x)",
                "NO_SUCH_CONSTANT",
                "```",
                "## Later",
                "```",
                "def not_yet_api()",
                "```",
            ]
        )
        listed = contract_entries(api, api_next, {"Done"})
        assert missing_names(listed) == ["no_such_sleeper_api", "NO_SUCH_CONSTANT"]
        assert missing_names(contract_entries(api, api_next, set())) == []
        assert missing_names(contract_entries(api, api_next, {"Done", "Later"}))[-1] == (
            "not_yet_api"
        )

    def test_listed_title_that_is_no_section_is_rejected(self) -> None:
        """A title in the implemented list that API-next.md does not have is an error."""
        api = "## Now\n```\ndef msleep(ms)\n```\n"
        api_next = "## Done\n```\ndef ndelay(ns)\n```\n"
        with pytest.raises(ValueError, match="Dnoe"):
            contract_entries(api, api_next, {"Dnoe"})
        with pytest.raises(ValueError, match="Done"):
            contract_entries(api, None, {"Done"})


class TestContract:
    def test_every_name_exported(self, api_entries: list[Entry]) -> None:
        """Every name of the contract is in __all__ (or read from the running kernel)."""
        assert missing_names(api_entries) == []

    def test_classes(self, api_entries: list[Entry]) -> None:
        """Every `class` of API.md is a class."""
        wrong = [
            e.name
            for e in api_entries
            if e.kind == "class" and not inspect.isclass(getattr(kdefer_async, e.name))
        ]
        assert wrong == []

    def test_plain_functions(self, api_entries: list[Entry]) -> None:
        """Every `def` of API.md is a plain callable, not a coroutine function."""
        wrong = []
        for e in api_entries:
            if e.kind != "def":
                continue
            obj = getattr(kdefer_async, e.name)
            if not callable(obj) or inspect.iscoroutinefunction(obj):
                wrong.append(e.name)
        assert wrong == []

    def test_async_functions(self, api_entries: list[Entry]) -> None:
        """Every `async def` of API.md is a coroutine function."""
        wrong = [
            e.name
            for e in api_entries
            if e.kind == "async def"
            and not inspect.iscoroutinefunction(getattr(kdefer_async, e.name))
        ]
        assert wrong == []

    def test_constants(self, api_entries: list[Entry]) -> None:
        """Every other contract name is a plain value: a KERN_* level string, a system
        workqueue (a Workqueue, usable before any kernel exists), else an int."""
        wrong = []
        for e in api_entries:
            if e.kind != "name" or e.name in DYNAMIC:
                continue
            obj = getattr(kdefer_async, e.name)
            if e.name.startswith("KERN_"):
                ok = type(obj) is str
            elif e.name.startswith("system_"):
                ok = isinstance(obj, Workqueue)
            else:
                ok = isinstance(obj, int) and not isinstance(obj, bool)
            if not ok:
                wrong.append(e.name)
        assert wrong == []

    def test_dynamic_names_inside_a_kernel(self, api_entries: list[Entry]) -> None:
        """The names read from the running kernel (HZ, jiffies...) are ints inside one."""
        dynamic = sorted({e.name for e in api_entries if e.name in DYNAMIC})
        assert "HZ" in dynamic
        assert "jiffies" in dynamic

        async def main() -> dict[str, object]:
            return {name: getattr(kdefer_async, name) for name in dynamic}

        values = kdefer_async.run(main, hz=300)
        assert values["HZ"] == 300
        assert all(type(v) is int for v in values.values())

    def test_no_async_api_documented_as_plain(self, api_entries: list[Entry]) -> None:
        """No coroutine function of the package is documented as a `def` or `class` in API.md."""
        documented = {e.name: e.kind for e in api_entries}
        wrong = [n for n in _async_names() if documented.get(n, "async def") != "async def"]
        assert wrong == []


class TestSleepingApis:
    def test_extra_sleeping_apis_are_async(self) -> None:
        """The sleeping APIs beyond the contract (interruptible variants) are coroutine functions."""
        for name in EXTRA_ASYNC:
            assert inspect.iscoroutinefunction(getattr(kdefer_async, name)), name

    def test_atomic_apis_are_plain(self) -> None:
        """The APIs legal in atomic context are plain functions, never coroutine functions."""
        for name in (
            "tasklet_schedule",
            "tasklet_disable_nosync",
            "tasklet_unlock_spin_wait",
            "raise_softirq",
            "mod_timer",
            "timer_delete_sync",
            "wake_up",
            "complete",
            "spin_lock",
            "mutex_trylock",
            "mutex_unlock",
            "kmalloc",
            "kfree",
            "printk",
            "mdelay",
            "udelay",
            "might_sleep",
            "kthread_run",
            "module_init",
        ):
            obj = getattr(kdefer_async, name)
            assert callable(obj), name
            assert not inspect.iscoroutinefunction(obj), name

    def test_metadata_kept(self) -> None:
        """Sleeping APIs keep their __name__, a docstring and an inspectable signature."""
        names = _async_names()
        assert "msleep" in names
        for name in names:
            obj = getattr(kdefer_async, name)
            assert obj.__name__ == name
            assert obj.__doc__
            assert obj.__doc__.strip()
            sig = inspect.signature(obj)
            wrapped = inspect.unwrap(obj)
            assert sig == inspect.signature(wrapped), name

    def test_signatures_match_the_kernel(self) -> None:
        """A few signatures, as in the kernel: msleep(ms), schedule_timeout(timeout), ..."""
        expected = {
            "msleep": ["ms"],
            "ssleep": ["seconds"],
            "usleep_range": ["lo", "hi"],
            "schedule_timeout": ["timeout"],
            "wait_event": ["wq", "condition"],
            "wait_event_timeout": ["wq", "condition", "timeout"],
            "wait_for_completion": ["c"],
            "mutex_lock": ["lock"],
            "tasklet_kill": ["t"],
            "kthread_stop": ["task"],
        }
        for name, params in expected.items():
            assert list(inspect.signature(getattr(kdefer_async, name)).parameters) == params, name

    def test_every_sleeping_api_checks_context_at_call_time(self) -> None:
        """Calling any coroutine-function API with valid arguments under a spinlock raises
        KernelBug before it is awaited (arguments are checked first, so they must be valid)."""
        names = _async_names()

        async def main() -> list[str]:
            lock = DEFINE_SPINLOCK()
            unchecked = []
            for name in names:
                fn = getattr(kdefer_async, name)
                args, kwargs = apiargs.valid_args(fn)
                spin_lock(lock)
                try:
                    coro = fn(*args, **kwargs)
                except KernelBug:
                    continue
                except TypeError:
                    unchecked.append(name)
                else:  # pragma: no cover - a coroutine was made unchecked: close it
                    coro.close()
                    unchecked.append(name)
                finally:
                    spin_unlock(lock)
            return unchecked

        assert kdefer_async.run(main, nr_cpus=1, sleep_in_atomic="raise") == []

    def test_sleeping_api_outside_a_kernel(self) -> None:
        """A sleeping API called with no kernel raises NoKernelError at call time."""
        with pytest.raises(NoKernelError):
            kdefer_async.msleep(1)

    def test_sleeping_api_repr(self) -> None:
        """A sleeping API's repr names it."""
        assert "msleep" in repr(kdefer_async.msleep)
