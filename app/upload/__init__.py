"""Uploads -> a private per-request folder (``private_folder``) filled by the streaming
form parser in ``app.upload.form``.

The folder is made with mode 0700 under the configured spool directory and removed
on every path. The client's filename is used for nothing but its extension.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath

_SAFE_SUFFIX = set("abcdefghijklmnopqrstuvwxyz0123456789")


@contextmanager
def private_folder(spool_dir: Path | None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="phq-", dir=spool_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def suffix_hint(filename: str | None) -> str:
    """The upload's extension (lower case, letters and digits only) or ''."""
    suffix = PurePath(filename or "").suffix.lower().lstrip(".")
    return suffix if suffix and len(suffix) <= 8 and set(suffix) <= _SAFE_SUFFIX else ""
