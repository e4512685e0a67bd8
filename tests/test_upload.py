"""The private per-request folder, the extension hint and the sweep of orphaned folders."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from app.upload import FOLDER_PREFIX, private_folder, suffix_hint, sweep_stale_folders


def test_the_request_folder_is_private_and_gone_after_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), private_folder(tmp_path) as folder:
        (folder / "video.mp4").write_bytes(b"x")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        raise RuntimeError("a failing request")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("filename", "hint"),
    [
        ("Interview.MP4", "mp4"),
        ("../../etc/passwd", ""),
        ("a.tar.gz", "gz"),
        ("weird.m p4", ""),
        ("x.verylongsuffix", ""),
        (None, ""),
        ("noext", ""),
    ],
)
def test_only_a_safe_extension_is_taken_from_the_filename(filename: str | None, hint: str) -> None:
    assert suffix_hint(filename) == hint


def _aged(folder: Path, seconds: float) -> Path:
    past = time.time() - seconds
    for entry in [*folder.iterdir(), folder]:
        os.utime(entry, (past, past))
    return folder


def test_the_sweep_removes_only_folders_older_than_any_request(tmp_path: Path) -> None:
    orphan = tmp_path / (FOLDER_PREFIX + "orphan")
    orphan.mkdir()
    (orphan / "audio.wav").write_bytes(b"left by a killed process")
    _aged(orphan, 7200)
    uploading = tmp_path / (FOLDER_PREFIX + "uploading")
    uploading.mkdir()
    (uploading / "video.mp4").write_bytes(b"still streaming")
    os.utime(uploading, (time.time() - 7200, time.time() - 7200))  # old folder, fresh file
    fresh = tmp_path / (FOLDER_PREFIX + "fresh")
    fresh.mkdir()
    unrelated = tmp_path / "someone-else"
    unrelated.mkdir()
    _aged(unrelated, 7200)

    assert sweep_stale_folders(tmp_path, older_than_s=3600) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([uploading.name, fresh.name, unrelated.name])
