"""A real uvicorn server on loopback, started once per test session, and the media it eats."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT

# a participant's answers; spoken twice they pass the 30 s speech minimum
ANSWERS = [
    "I have been feeling pretty down over the last couple of weeks.",
    "Most nights I lie awake and I cannot get back to sleep.",
    "I used to love going hiking with my friends but lately I do not enjoy it.",
    "Work has been hard because I keep losing focus in meetings.",
    "I am tired all the time, even after a long weekend.",
    "My appetite is not what it was, I skip lunch most days.",
    "Sometimes I feel like I have let my family down.",
    "I moved slowly this morning and everything felt heavy.",
    "On a good day I still cook dinner and call my sister.",
    "I would like to feel more like myself again.",
]


API_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # real servers take seconds to start and minutes in all: out of the fast loop (-m "not slow"),
    # whose route tests run the same app in process (tests/routes/)
    for item in items:
        if item.path.is_relative_to(API_TESTS):
            item.add_marker(pytest.mark.slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    """A ``python -m app`` process on loopback, its log file and its upload spool."""

    url: str
    process: subprocess.Popen
    log_path: Path
    spool_dir: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def start_server(folder: Path, headers: dict[str, str] | None = None, **settings: str) -> Iterator[RunningServer]:
    """Start the service with ``PHQ_<NAME>`` settings, wait until /readyz (sent with
    ``headers``), stop it after."""
    port = _free_port()
    spool = folder / "spool"
    spool.mkdir()
    log_path = folder / "server.log"
    env = {
        **os.environ,
        "PHQ_HOST": "127.0.0.1",
        "PHQ_PORT": str(port),
        "PHQ_SPOOL_DIR": str(spool),
        "PHQ_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
        **{f"PHQ_{name.upper()}": value for name, value in settings.items()},
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    running = RunningServer(f"http://127.0.0.1:{port}", process, log_path, spool)
    deadline = time.monotonic() + 240  # a cold numba cache compiles librosa's kernels once
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("server exited during start-up:\n" + running.log()[-4000:])
            try:
                if httpx.get(running.url + "/readyz", timeout=2, headers=headers).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server not ready in time:\n" + running.log()[-4000:])
            time.sleep(0.5)
        yield running
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def running_server(tmp_path_factory) -> Iterator[RunningServer]:
    """The service with its default settings, shared by the API tests."""
    with start_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="session")
def spool_dir(running_server: RunningServer) -> Path:
    return running_server.spool_dir


@pytest.fixture(scope="session")
def server(running_server: RunningServer) -> str:
    return running_server.url


@pytest.fixture(scope="session")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=180) as c:
        yield c


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """Speech of the answers as audio files and talking-face videos."""
    from tests.media import face_frames, speech_signal, talking_head, write_audio, write_video

    folder = tmp_path_factory.mktemp("media")
    text = " ".join(ANSWERS * 2)  # about 70 s: two windows
    signal = speech_signal(text, 16000)
    out = {
        "wav": write_audio(signal, 16000, folder / "speech.wav"),
        "flac": write_audio(signal, 16000, folder / "speech.flac"),
        "mp3": write_audio(signal, 16000, folder / "speech.mp3"),
        "mp4": talking_head(folder / "interview.mp4", text, fps=10),
        "webm": talking_head(folder / "interview.webm", text, fps=10),
        "short_wav": write_audio(speech_signal(ANSWERS[0]), 16000, folder / "short.wav"),
        "faceless_mp4": write_video(
            folder / "faceless.mp4", face_frames(round(signal.size / 16000 * 10), face=False), 10, audio=signal
        ),
        "faceless_silent_mp4": write_video(folder / "faceless_silent.mp4", face_frames(50, face=False), 10),
    }
    out["seconds"] = signal.shape[0] / 16000  # type: ignore[assignment]
    return out


@pytest.fixture(scope="session")
def interview(tmp_path_factory) -> tuple[Path, list[tuple[float, float, str, str]]]:
    """A two-voice interview (questions, then answers) and its true speaker turns."""
    import numpy as np

    from tests.api.transcripts import QUESTION
    from tests.media import speech_signal, write_audio

    rate, parts, turns, t = 16000, [], [], 0.0
    for answer in ANSWERS * 2:
        for speaker, text, voice, gap in (("Ellie", QUESTION, "en-gb", 0.3), ("Participant", answer, "en-us", 0.5)):
            speech = speech_signal(text, rate, voice=voice)
            turns.append((t, t + speech.size / rate, speaker, text))
            parts += [speech, np.zeros(round(gap * rate), np.float32)]
            t += speech.size / rate + gap
    path = write_audio(np.concatenate(parts), rate, tmp_path_factory.mktemp("interview") / "interview.wav")
    return path, turns


@pytest.fixture()
def no_leftovers(spool_dir: Path) -> Iterator[None]:
    """Every request's private folder is gone once its answer is back."""
    yield
    assert list(spool_dir.iterdir()) == [], "upload files were left behind"
