"""Plumbing the artifact builders share: build-only venvs, checksums, the MediaPipe wheel.

Standard library only: this module runs inside build venvs that lack the project's
own dependencies.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MEDIAPIPE_VERSION = "0.10.21"
MEDIAPIPE_WHEEL = f"mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"


def sha256_file(path: Path) -> str:
    # the standard library's file hashing, not app.model_store.sha256_file: importing app needs
    # pydantic, which the build venvs lack (same digest either way)
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BuildVenv:
    """A build-only venv under .build/ with pinned requirements, and a way to re-run a
    builder module inside it."""

    def __init__(self, path: Path, requirements: Sequence[str], size_note: str) -> None:
        self.path = path
        self.requirements = tuple(requirements)
        self.size_note = size_note

    @property
    def active(self) -> bool:
        return Path(sys.prefix).resolve() == self.path.resolve()

    def ensure(self) -> Path:
        """Create the venv if needed and install the requirements when they changed."""
        python = self.path / "bin" / "python"
        stamp = self.path / ".requirements"
        wanted = "\n".join(self.requirements) + "\n"
        if not python.exists():
            print(f"creating {self.path}", flush=True)
            # the base interpreter, not this venv's: the build venv must not inherit its packages
            subprocess.run([sys._base_executable, "-m", "venv", str(self.path)], check=True)
        if not stamp.exists() or stamp.read_text() != wanted:
            print(f"installing build requirements ({self.size_note})", flush=True)
            subprocess.run([str(python), "-m", "pip", "install", "--no-cache-dir", *self.requirements], check=True)
            stamp.write_text(wanted)
        return python

    def relaunch(self, module: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        python = self.ensure()
        environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        return subprocess.run([str(python), "-m", module, *argv], check=False, cwd=REPO, env=environment).returncode


def download_mediapipe_wheel(dest: Path, expected_sha256: str | None = None) -> Path:
    """``pip download --no-deps`` of the mediapipe wheel (never installed: only unzipped)."""
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / MEDIAPIPE_WHEEL
    if not wheel.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux_2_28_x86_64",
                f"mediapipe=={MEDIAPIPE_VERSION}",
                "-d",
                str(dest),
            ],
            check=True,
        )
    if expected_sha256 is not None and (digest := sha256_file(wheel)) != expected_sha256:
        raise RuntimeError(f"{wheel.name} has sha256 {digest}, expected {expected_sha256}")
    return wheel
