"""WebSocket /stream against a real server (uvicorn, the worker pool, a real WebSocket client):
the final answer equals /predict's for the same media, a dropped connection frees everything,
protocol errors and a wrong key get their problem and close code, a fast client holds server
memory bounded, and ``phq-client stream`` replays a recording as a live session."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from app.client.stream import config_message, replay_frames, run_session
from tests.api.conftest import ANSWERS, RunningServer, start_server
from tests.api.helpers import metric_sample
from tests.media import face_frames, write_media

FPS = 10


@pytest.fixture(scope="module")
def session_media(media: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An MJPEG video (its JPEG pictures are what a live client sends), the speech as WAV, captions."""
    folder = tmp_path_factory.mktemp("stream-media")
    seconds = float(media["seconds"])
    video = write_media(
        folder / "call.mkv",
        face_frames(round(seconds * FPS), (320, 240), "pan"),
        FPS,
        [],
        video_codec="mjpeg",
        container_format="matroska",
    )
    lines = ANSWERS * 2
    step = seconds / len(lines)
    captions = [
        {"speaker": "Participant", "start": round(k * step, 3), "end": round((k + 1) * step, 3), "text": text}
        for k, text in enumerate(lines)
    ]
    (folder / "captions.json").write_text(json.dumps(captions))
    return {"video": video, "audio": media["wav"], "captions": folder / "captions.json"}


def _ws(server: str) -> str:
    return server.replace("http://", "ws://") + "/stream"


@pytest.mark.usefixtures("no_leftovers")
def test_the_final_answer_equals_predict_for_the_same_media(
    server: str, client: httpx.Client, session_media: dict[str, Path]
) -> None:
    video, audio, captions = session_media["video"], session_media["audio"], session_media["captions"]
    result = run_session(_ws(server), config_message(video, True, True), replay_frames(video, audio, captions))
    assert result.close_code == 1000, result.messages[-1:]
    kinds = [m["type"] for m in result.messages]
    assert kinds[0] == "ready" and kinds[-1] == "final" and set(kinds[1:-1]) <= {"estimate", "window"}
    streamed = result.messages[-1]["answer"]
    with video.open("rb") as v, audio.open("rb") as a, captions.open("rb") as c:
        files = {
            "video": ("call.mkv", v, "video/x-matroska"),
            "audio": ("speech.wav", a, "audio/wav"),
            "transcript": ("captions.json", c, "application/json"),
        }
        response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    posted = response.json()
    for name in ("visual", "audio", "text"):
        assert streamed["inputs"][name]["used"], name
    assert abs(streamed["phq8"]["total"] - posted["phq8"]["total"]) <= 1e-3
    scores = [[item["score"] for item in answer["phq8"]["items"]] for answer in (streamed, posted)]
    assert scores[0] == pytest.approx(scores[1], abs=1e-3)
    assert streamed["attention"]["modalities"] == pytest.approx(posted["attention"]["modalities"], abs=1e-3)
    assert streamed["phq8"]["interval"] == pytest.approx(posted["phq8"]["interval"], abs=1e-3)
    assert streamed["warnings"] == posted["warnings"]


def test_a_dropped_connection_frees_the_session(server: str, client: httpx.Client, spool_dir: Path) -> None:
    with connect(_ws(server)) as websocket:
        websocket.send(json.dumps({"type": "config", "audio": {}}))
        assert json.loads(websocket.recv(timeout=30))["type"] == "ready"
        for _ in range(50):
            websocket.send(b"\x01" + b"\x10\x00" * 1600)
        deadline = time.monotonic() + 10
        while not list(spool_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(spool_dir.iterdir()), "the session's folder should exist while it runs"
        websocket.socket.close()  # gone without a close frame, as a dropped call is
    deadline = time.monotonic() + 10
    while list(spool_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(spool_dir.iterdir()) == []
    metrics = client.get("/metrics").text
    assert metric_sample(metrics, "phq_stream_sessions_active") == 0
    assert metric_sample(metrics, "phq_stream_frames_total", kind="audio") >= 50
    assert client.post("/predict", data={"transcript_text": " ".join(ANSWERS)}).status_code == 200


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.client", *args], capture_output=True, text=True, timeout=timeout)


def test_phq_client_stream_prints_the_session_and_its_final_estimate(
    server: str, client: httpx.Client, session_media: dict[str, Path]
) -> None:
    video, audio, captions = session_media["video"], session_media["audio"], session_media["captions"]
    done = _cli("stream", str(video), "--audio", str(audio), "--captions", str(captions), "--url", server, "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["inputs"]["visual"]["used"] and answer["inputs"]["text"]["used"]
    summary = _cli("stream", str(video), "--audio", str(audio), "--captions", str(captions), "--url", server)
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.startswith("session ") and " ready\n" in summary.stdout
    assert f"{answer['phq8']['total']:.1f} / 24" in summary.stdout  # the same final answer, summarised


def test_phq_client_stream_realtime_keeps_the_recordings_pace_and_reports_a_refusal(
    server: str, tmp_path: Path
) -> None:
    from tests.media import speech_signal, write_audio

    clip = write_audio(speech_signal(ANSWERS[0]), 16000, tmp_path / "short.wav")
    seconds = float(speech_signal(ANSWERS[0]).size / 16000)
    started = time.monotonic()
    done = _cli("stream", str(clip), "--realtime", "--url", server)
    elapsed = time.monotonic() - started
    assert elapsed >= seconds - 0.2  # paced to the clip's own length
    assert done.returncode == 1
    assert "422" in done.stderr and "no modality is usable" in done.stderr


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_client_sending_far_faster_than_real_time_holds_server_memory_bounded(
    running_server: RunningServer, spool_dir: Path
) -> None:
    block = b"\x01" + b"\x11\x00" * (128 << 10)  # 256 KiB of PCM, about 8 s of audio
    before = _rss_mib(running_server.pid)
    peak = before
    with connect(_ws(running_server.url)) as websocket:
        # a replay may run at any speed (a live session this fast is closed: 4429 below)
        websocket.send(json.dumps({"type": "config", "audio": {}, "pace": "replay"}))
        assert json.loads(websocket.recv(timeout=30))["type"] == "ready"
        for k in range(400):  # 100 MiB (about 55 minutes of audio) as fast as the socket takes it
            websocket.send(block)
            if k % 50 == 0:
                peak = max(peak, _rss_mib(running_server.pid))
        peak = max(peak, _rss_mib(running_server.pid))
        websocket.socket.close()
    # the media went to the private folder as they came: the server never held them. What it
    # holds is a running estimate of the call so far: its audio windows alone are about 38 MB
    # for 55 minutes (66 windows of 1800 x 80 float32), so the bound is that, not the 100 MiB sent
    assert peak - before < 64, f"server RSS grew by {peak - before:.0f} MiB"
    deadline = time.monotonic() + 20
    while list(spool_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(spool_dir.iterdir()) == []


def _refusal(url: str, *messages: str | bytes, headers: dict[str, str] | None = None) -> tuple[int | None, dict]:
    """Send ``messages`` on a real WebSocket, read until the server closes: (close code, last message)."""
    from websockets.exceptions import ConnectionClosed

    last: dict = {}
    with connect(url, additional_headers=headers or {}, max_size=None) as websocket:
        try:
            for message in messages:
                websocket.send(message)
            while True:
                last = json.loads(websocket.recv(timeout=30))
        except ConnectionClosed:
            pass
        return websocket.close_code, last


CONFIG = json.dumps({"type": "config", "audio": {}, "video": {}})


def _picture() -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))[1].tobytes()


@pytest.mark.parametrize(
    ("messages", "code", "slug"),
    [
        ((b"\x01" + bytes(3200),), 4400, "bad-request"),  # media before the config
        (("not json",), 4400, "bad-request"),
        ((CONFIG, b"\x01" + bytes(1 << 20)), 4413, "payload-too-large"),  # over the 1-MiB frame cap
        ((CONFIG, "V1.0", "V0.5"), 4400, "bad-request"),  # timestamps going back
        # a live session 20 s of audio ahead of real time (more than PHQ_STREAM_MAX_AHEAD_S, 10 s)
        ((CONFIG, *[b"\x01" + bytes(32000)] * 20), 4429, "stream-too-fast"),
    ],
    ids=["binary-first", "not-json", "oversize-frame", "timestamps-go-back", "faster-than-real-time"],
)
def test_protocol_errors_get_their_problem_and_close_code_from_a_real_server(
    server: str, messages: tuple, code: int, slug: str
) -> None:
    frames = [
        b"\x02" + struct.pack("<d", float(m[1:])) + _picture() if isinstance(m, str) and m.startswith("V") else m
        for m in messages
    ]
    closed, last = _refusal(_ws(server), *frames)
    assert closed == code and last["type"] == "error", (closed, last)
    assert last["problem"]["status"] == code - 4000 and last["problem"]["type"].endswith("/" + slug)


def test_a_wrong_key_gets_4401_from_a_real_server(tmp_path: Path) -> None:
    import hashlib

    digest = hashlib.sha256(b"k-live-right").hexdigest()
    with start_server(tmp_path, api_key_hashes=digest, workers="1") as keyed:
        url = _ws(keyed.url)
        closed, last = _refusal(url, CONFIG, headers={"Authorization": "Bearer k-live-wrong"})
        assert closed == 4401 and last["problem"]["status"] == 401
        # the right key, in the config as a browser sends it: the session starts
        with connect(url) as websocket:
            websocket.send(json.dumps({"type": "config", "audio": {}, "api_key": "k-live-right"}))
            assert json.loads(websocket.recv(timeout=30))["type"] == "ready"
