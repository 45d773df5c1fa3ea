"""Sphinx configuration of the kdefer_async documentation site (``nox -s docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path[:0] = [str(DOCS.parent), str(DOCS), str(DOCS / "_ext")]

import kdefer_async  # noqa: E402

project = "kdefer_async"
author = "The kdefer_async maintainers"
copyright = "2026, The kdefer_async maintainers"
release = version = kdefer_async.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "kapi",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_tools", "Thumbs.db", ".DS_Store"]

# --- the strict build: every reference must resolve -------------------------------------
nitpicky = True
default_role = "obj"
suppress_warnings: list[str] = []

# --- autodoc and the Google-style docstrings with their Context: section -----------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = [("Context", "notes_style"), ("Guarantees", "notes_style")]
napoleon_use_rtype = False

# --- MyST -------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# --- names from outside the package ------------------------------------------------------
# The build needs no network, so there is no intersphinx: types of the standard library,
# anyio and trio that signatures mention are shown as plain text (kapi.py lists them).

# --- the theme: furo ships its CSS, JavaScript and fonts with the site ---------------------
html_theme = "furo"
html_title = f"kdefer_async {release}"
html_static_path = ["_static"]
html_css_files = ["kdefer.css"]
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {
    "navigation_with_keys": True,
}
pygments_style = "friendly"
pygments_dark_style = "monokai"
