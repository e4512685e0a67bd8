"""Uploads -> a private per-request folder (``private_folder``) filled by the streaming
form parser in ``app.upload.form``.

The folder is made with mode 0700 under the configured spool directory and removed
on every path. The client's filename is used for nothing but its extension.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath

_SAFE_SUFFIX = set("abcdefghijklmnopqrstuvwxyz0123456789")
FOLDER_PREFIX = "phq-"


@contextmanager
def private_folder(spool_dir: Path | None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=spool_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def suffix_hint(filename: str | None) -> str:
    """The upload's extension (lower case, letters and digits only) or ''."""
    suffix = PurePath(filename or "").suffix.lower().lstrip(".")
    return suffix if suffix and len(suffix) <= 8 and set(suffix) <= _SAFE_SUFFIX else ""


def sweep_stale_folders(spool_dir: Path | None, older_than_s: float) -> int:
    """Remove request folders left by a process that was killed mid-request; returns how many.

    Only folders older than any request can live are touched, so servers sharing the
    spool directory never lose each other's in-flight uploads.
    """
    root = Path(spool_dir or tempfile.gettempdir())
    cutoff = time.time() - older_than_s
    removed = 0
    for folder in root.glob(FOLDER_PREFIX + "*"):
        try:
            if not folder.is_dir() or folder.is_symlink():
                continue
            # a file still being written keeps its folder fresh
            newest = max([folder.stat().st_mtime, *(entry.stat().st_mtime for entry in folder.iterdir())])
            stale = newest < cutoff
        except OSError:
            continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
