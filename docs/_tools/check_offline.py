"""Check that a built HTML site opens from disk with no network.

Every ``<script src>``, ``<link href>`` (stylesheets, fonts, icons), ``<img src>`` and CSS
``url(...)`` must point into the site itself: a relative path, a ``data:`` URI or a fragment.
Ordinary ``<a href>`` links to other sites are fine (following one needs a network, viewing the
page does not). Exits 1 naming every offending reference.

Usage: ``python docs/_tools/check_offline.py docs/_build/html``
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

_REMOTE = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)", re.I)
_LOADED = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "object": ("data",),
    "embed": ("src",),
}


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and name in _LOADED.get(tag, ()):
                self.refs.append((tag, value))
            if value and name == "style":
                self.refs.extend(("style", url) for url in _CSS_URL.findall(value))


def remote_references(site: Path) -> list[str]:
    """Every reference in *site* that a browser would fetch from another host."""
    bad = []
    for page in sorted(site.rglob("*.html")):
        parser = _Refs()
        parser.feed(page.read_text(encoding="utf-8"))
        bad += [
            f"{page.relative_to(site)}: <{tag}> {ref}"
            for tag, ref in parser.refs
            if _REMOTE.match(ref)
        ]
    for sheet in sorted(site.rglob("*.css")):
        for ref in _CSS_URL.findall(sheet.read_text(encoding="utf-8")):
            if _REMOTE.match(ref):
                bad.append(f"{sheet.relative_to(site)}: url({ref})")
    return bad


def main(argv: list[str]) -> int:
    site = Path(argv[1]) if len(argv) > 1 else Path("docs/_build/html")
    if not (site / "index.html").is_file():
        print(f"{site}: no index.html; build the site first", file=sys.stderr)
        return 1
    bad = remote_references(site)
    for line in bad:
        print(f"fetched from the network: {line}", file=sys.stderr)
    pages = len(list(site.rglob("*.html")))
    if not bad:
        print(f"{site}: {pages} pages, nothing fetched from another host")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
