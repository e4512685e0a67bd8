"""Uploads -> files in a private per-request folder, size-capped while copying.

The folder is made with mode 0700 under the configured spool directory and removed
on every path (``private_folder`` is a context manager). The client's filename is used
for nothing but its extension.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePath

from fastapi import UploadFile

from app.errors import PayloadTooLargeError

CHUNK = 1 << 20
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


async def spool(upload: UploadFile, folder: Path, field: str, max_bytes: int) -> Path:
    """Copy one upload into the folder as ``<field>.<ext>``; 413 past ``max_bytes``."""
    hint = suffix_hint(upload.filename)
    target = folder / (f"{field}.{hint}" if hint else field)
    written = 0
    with open(target, "wb") as out:
        while chunk := await upload.read(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise PayloadTooLargeError(f"the {field} upload is larger than {max_bytes} bytes")
            out.write(chunk)
    return target


async def read_small(upload: UploadFile, field: str, max_bytes: int) -> bytes:
    """Read a small upload (a transcript) into memory; 413 past ``max_bytes``."""
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLargeError(f"the {field} upload is larger than {max_bytes} bytes")
    return data
