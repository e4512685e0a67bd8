"""``python -m app.client`` and the ``phq-client`` console script (``app.client.__main__:main``)."""

from __future__ import annotations

import sys

from app.client.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
