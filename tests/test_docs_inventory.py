"""The API reference's inventory (``docs/kernel_map.py``) against the package itself.

Every public name (``kdefer_async.__all__``, the public methods of ``Kernel``, and
``kdefer_async.testing``) must have an entry with its kernel counterpart, or an explicit line
saying it has none; and the guide must have a runnable example on every page.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

import kdefer_async
import kdefer_async.testing

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load_map() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kernel_map", DOCS / "kernel_map.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("kernel_map", module)
    spec.loader.exec_module(module)
    return module


km = _load_map()
PACKAGE_DIR = Path(kdefer_async.__file__).resolve().parent
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _kernel_methods() -> list[str]:
    """The public methods (and properties) of ``Kernel``."""
    return [name for name in dir(kdefer_async.Kernel) if not name.startswith("_")]


class TestInventory:
    def test_every_public_name_has_an_entry(self) -> None:
        """A name of ``__all__`` with no derived or explicit entry fails here."""
        found, missing = km.entries(kdefer_async, PACKAGE_DIR)
        assert missing == [], (
            "add these names to docs/kernel_map.py (EXPLICIT, MODULES or CONSTANT_PREFIXES)"
        )
        assert set(found) == set(kdefer_async.__all__)

    def test_every_kernel_method_has_an_entry(self) -> None:
        """Each public method of ``Kernel`` says what it stands for in the kernel."""
        assert sorted(km.KERNEL_METHODS) == sorted(_kernel_methods())

    def test_every_testing_name_has_an_entry(self) -> None:
        """Each name of ``kdefer_async.testing`` is listed, with no kernel counterpart."""
        assert sorted(km.TESTING) == sorted(kdefer_async.testing.__all__)
        assert all(entry.c is None and entry.note for entry in km.TESTING.values())

    def test_no_stale_explicit_entries(self) -> None:
        """An explicit line for a name that is no longer public is removed with the name."""
        assert sorted(set(km.EXPLICIT) - set(kdefer_async.__all__)) == []

    def test_no_counterpart_is_said_in_words(self) -> None:
        """A name without a kernel counterpart says why (what it is instead)."""
        silent = [
            name
            for table in (km.EXPLICIT, km.KERNEL_METHODS, km.TESTING)
            for name, entry in table.items()
            if entry.c is None and not entry.note
        ]
        assert silent == []

    def test_every_function_states_its_context(self) -> None:
        """A public function either has a ``Context:`` section or a rule in the map gives one."""
        unstated = [
            name
            for name in kdefer_async.__all__
            if inspect.isfunction(getattr(kdefer_async, name))
            and not km.has_context(name, getattr(kdefer_async, name))
        ]
        assert unstated == []

    def test_links_are_identifier_searches_and_pages(self) -> None:
        """Every counterpart link searches the source browser for a C identifier."""
        found, _ = km.entries(kdefer_async, PACKAGE_DIR)
        for entry in found.values():
            if entry.c is None:
                continue
            assert entry.ident is not None, entry
            assert _IDENT.fullmatch(entry.ident), entry
            assert entry.source_url == km.ELIXIR_IDENT.format(entry.ident)
        for group in km.GROUPS:
            assert group.docs is None or re.fullmatch(r"[\w/.-]+\.html", group.docs)
            assert all(re.fullmatch(r"[\w/.-]+\.[ch]", src) for src in group.sources)

    def test_modules_and_prefixes_name_existing_pages(self) -> None:
        """The module and prefix tables only point at pages that exist."""
        pages = {group.slug for group in km.GROUPS}
        assert set(km.MODULES.values()) <= pages
        assert set(km.CONSTANT_PREFIXES.values()) <= pages
        assert {e.group for e in km.EXPLICIT.values() if e.group} <= pages


class TestDerivation:
    """Entries are derived only where the C name is the Python name, never guessed."""

    def test_same_name_function_is_derived(self) -> None:
        """``tasklet_schedule`` is ``tasklet_schedule()`` in the kernel, on the tasklet page."""
        entry = km.entry_for("tasklet_schedule", kdefer_async.tasklet_schedule, "_tasklet")
        assert entry is not None
        assert (entry.c, entry.group, entry.ident) == (
            "tasklet_schedule",
            "tasklet",
            "tasklet_schedule",
        )

    def test_constant_is_placed_by_prefix(self) -> None:
        """Constants of ``_consts`` go to their mechanism's page by prefix."""
        assert km.entry_for("IRQF_SHARED", 0x80, "_consts").group == "irq"
        assert km.entry_for("EINVAL", 22, "_consts").group == "errno"
        assert km.entry_for("TASKLET_SOFTIRQ", 6, "_consts").group == "softirq"

    @pytest.mark.parametrize(
        ("name", "obj", "module"),
        [
            ("NewThing", type("NewThing", (), {}), "_tasklet"),  # a class: spelled differently in C
            ("brand_new_call", len, "_a_new_mechanism"),  # a module with no page yet
            ("FROB_FLAG", 1, "_consts"),  # a constant with a prefix no page claims
            ("CamelCaseHelper", len, "_tasklet"),  # not a C identifier
        ],
    )
    def test_unknown_names_need_a_line(self, name: str, obj: object, module: str) -> None:
        """What cannot be derived has no entry until someone writes its line."""
        assert km.entry_for(name, obj, module) is None


def _runnable_blocks(text: str) -> int:
    """The number of code blocks Sybil runs on a page: python and sh blocks not skipped."""
    count = 0
    skip_next = False
    for line in text.splitlines():
        if line.startswith("<!-- skip: next"):
            skip_next = True
        elif re.match(r"```(python|sh)\s*$", line):
            count += 0 if skip_next else 1
            skip_next = False
        elif line.startswith("<!-- invisible-code-block: python"):
            count += 1
    return count


@pytest.mark.parametrize("page", sorted((DOCS / "guide").glob("*.md")), ids=lambda p: p.stem)
def test_every_guide_page_has_a_runnable_example(page: Path) -> None:
    """Each page of the guide shows at least one example that the test suite runs."""
    assert _runnable_blocks(page.read_text(encoding="utf-8")) >= 1


def test_every_guide_page_is_in_the_table_of_contents() -> None:
    """The index lists every guide page, and nothing that is not there."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^guide/([\w-]+)$", index, re.M))
    assert listed == {page.stem for page in (DOCS / "guide").glob("*.md")}
