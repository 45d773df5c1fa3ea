"""``python -m kdefer_async``: see :mod:`kdefer_async.cli`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
