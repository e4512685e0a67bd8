"""WebSocket /stream in process (the app's own route, a real ONNX Runtime pipeline behind it):
each protocol error gets its problem and its close code, keys and rate limits hold as on
/predict, and no session leaves a file behind."""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.pipeline.extraction import ExtractionModels
from tests.routes.conftest import in_process
from tests.routes.helpers import TRANSCRIPT

KEY = "k-3c1d-stream"
CONFIG = {"type": "config", "pace": "replay", "audio": {}, "video": {}, "captions": True}


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    return cv2.imencode(".jpg", np.full((height, width, 3), 90, np.uint8))[1].tobytes()


def _video(at: float, jpeg: bytes | None = None) -> bytes:
    return b"\x02" + struct.pack("<d", at) + (jpeg if jpeg is not None else _jpeg())


def _session(client: TestClient, *messages: dict | bytes | str, headers: dict | None = None) -> tuple[list, int]:
    """Send ``messages`` (dicts as JSON text), then read until the server closes: (its messages, close code)."""
    received = []
    with client.websocket_connect("/stream", headers=headers or {}) as websocket:
        for message in messages:
            if isinstance(message, bytes):
                websocket.send_bytes(message)
            else:
                websocket.send_text(message if isinstance(message, str) else json.dumps(message))
        while True:
            event = websocket.receive()
            if event["type"] == "websocket.close":
                return received, event["code"]
            received.append(json.loads(event["text"]))


def _refused(received: list, code: int, slug: str) -> dict:
    assert received[-1]["type"] == "error", received
    problem = received[-1]["problem"]
    assert problem["status"] == code - 4000 and problem["type"].endswith("/" + slug)
    assert problem["instance"]
    return problem


@pytest.fixture()
def no_leftovers(spool: Path) -> Iterator[None]:
    yield
    assert list(spool.iterdir()) == [], "a session left files behind"


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize(
    ("messages", "code", "slug"),
    [
        ((b"\x02" + b"\x00" * 20,), 4400, "bad-request"),  # media before any config
        (("not json",), 4400, "bad-request"),
        (({"type": "config", "video": {"format": "png"}},), 4400, "bad-request"),
        ((CONFIG, {"type": "caption", "text": "x"}), 4400, "bad-request"),
        ((CONFIG, b"\x07abc"), 4400, "bad-request"),
        ((CONFIG, _video(1.0), _video(0.5)), 4400, "bad-request"),  # out of order
        ((CONFIG, b"\x01" + b"\x00" * (1 << 20)), 4413, "payload-too-large"),  # over the frame cap
        ((CONFIG, _video(0.0, b"GIF89a" + b"\x00" * 40)), 4415, "unsupported-media"),
        ((CONFIG, {"type": "end"}), 4422, "no-usable-input"),  # nothing was sent
    ],
    ids=[
        "binary-first",
        "not-json",
        "bad-config",
        "unknown-type",
        "unknown-frame-kind",
        "timestamps-go-back",
        "oversize-frame",
        "not-jpeg",
        "nothing-sent",
    ],
)
def test_each_protocol_error_gets_its_problem_and_close_code(
    app_client: TestClient, messages: tuple, code: int, slug: str
) -> None:
    received, closed = _session(app_client, *messages)
    assert closed == code
    _refused(received, code, slug)


def test_a_transcript_only_session_is_answered_as_predict_answers_it(app_client: TestClient, spool: Path) -> None:
    captions = [
        {"type": "transcript", "speaker": "Participant", "start": 4.0 * k, "end": 4.0 * k + 3.5, "text": sentence}
        for k, sentence in enumerate(TRANSCRIPT.split(". "))
    ]
    # paced as a call is: after each 10 s of captions the client waits for the estimate they started
    received: list[dict] = []
    with app_client.websocket_connect("/stream") as websocket:
        websocket.send_json({"type": "config", "pace": "replay", "captions": True})
        received.append(websocket.receive_json())
        due = 10.0
        for caption in captions:
            websocket.send_json(caption)
            if caption["end"] >= due:
                due = caption["end"] + 10.0
                while True:
                    received.append(websocket.receive_json())
                    if received[-1]["type"] == "estimate":
                        break
        websocket.send_json({"type": "end"})
        received.append(websocket.receive_json())
    kinds = [m["type"] for m in received]
    assert kinds[0] == "ready" and kinds[-1] == "final" and set(kinds[1:-1]) <= {"estimate", "window"}
    assert received[0]["session"] == received[-1]["answer"]["request_id"]
    streamed = received[-1]["answer"]
    segments = [{k: c[k] for k in ("speaker", "start", "end", "text")} for c in captions]
    posted = app_client.post(
        "/predict", files={"transcript": ("t.json", json.dumps(segments).encode(), "application/json")}
    ).json()
    assert streamed["inputs"]["text"]["used"] and not streamed["inputs"]["audio"]["used"]
    assert abs(streamed["phq8"]["total"] - posted["phq8"]["total"]) <= 1e-3
    assert list(spool.iterdir()) == []


@pytest.fixture(scope="module")
def keyed_client(tmp_path_factory: pytest.TempPathFactory, extraction_models: ExtractionModels) -> Iterator[TestClient]:
    settings = Settings(
        spool_dir=tmp_path_factory.mktemp("keyed-spool"),
        providers=["cpu"],
        api_key_hashes=[hashlib.sha256(KEY.encode()).hexdigest()],
        stream_idle_timeout_s=0.5,
        rate_limit_per_minute=4,
    )
    with TestClient(create_app(settings, services=in_process(extraction_models))) as client:
        yield client


def test_a_session_needs_a_key_in_a_header_or_its_config(keyed_client: TestClient) -> None:
    received, closed = _session(keyed_client, CONFIG)
    assert closed == 4401
    _refused(received, closed, "unauthorized")
    received, closed = _session(keyed_client, {**CONFIG, "api_key": KEY + "x"})
    assert closed == 4401
    # a right key (either way) gets the session going; then it idles out
    for headers, config in (({"X-API-Key": KEY}, CONFIG), ({}, {**CONFIG, "api_key": KEY})):
        received, closed = _session(keyed_client, config, headers=headers)
        assert received[0]["type"] == "ready"
        assert closed == 4408
        _refused(received, closed, "idle-timeout")


def test_a_client_over_its_rate_is_refused_before_its_session_starts(keyed_client: TestClient) -> None:
    codes = [_session(keyed_client, {**CONFIG, "api_key": KEY}, {"type": "end"})[1] for _ in range(6)]
    assert 4429 in codes
    assert set(codes) <= {4422, 4429}  # an empty session is refused; over the rate, not even begun


def test_running_estimates_and_windows_follow_the_stream(app_client: TestClient) -> None:
    sentences = [s.strip() for s in TRANSCRIPT.split(".") if s.strip()]
    captions = [
        {"type": "transcript", "speaker": "Participant", "start": 4.0 * k, "end": 4.0 * k + 3.8, "text": text}
        for k, text in enumerate((sentences * 5)[:30])  # 120 s of captions
    ]
    # paced as a call is: after each 10 s of captions the client waits for the estimate they started
    received: list[dict] = []
    with app_client.websocket_connect("/stream") as websocket:
        websocket.send_json({"type": "config", "pace": "replay", "captions": True})
        received.append(websocket.receive_json())
        due = 10.0
        for caption in captions:
            websocket.send_json(caption)
            if caption["end"] >= due:
                due = caption["end"] + 10.0
                while True:
                    received.append(websocket.receive_json())
                    if received[-1]["type"] == "estimate":
                        break
        websocket.send_json({"type": "end"})
        received.append(websocket.receive_json())
    estimates = [m for m in received if m["type"] == "estimate"]
    covered = [m["stream_s"] for m in estimates]
    assert covered == sorted(covered) and all(b - a >= 10.0 for a, b in itertools.pairwise(covered))
    scored = [m for m in estimates if m["total"] is not None]
    assert len(scored) >= 2, estimates
    for message in scored:
        assert 0 <= message["interval"]["low"] <= message["total"] <= message["interval"]["high"] <= 24
        assert sum(message["band_probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert message["modalities"]["text"]["used"] and not message["modalities"]["audio"]["used"]
    # a window is sent once it is complete, before the estimate that covers it, in order
    for position, message in enumerate(received):
        if message["type"] == "window":
            following = next(m for m in received[position:] if m["type"] == "estimate")
            assert message["end_s"] <= following["stream_s"]
    indices = [m["index"] for m in received if m["type"] == "window"]
    assert indices == list(range(len(indices))) and len(indices) >= 1
    assert received[-1]["type"] == "final"


def test_silence_during_the_call_is_warned_about_as_it_happens(app_client: TestClient) -> None:
    silence = b"\x01" + b"\x00\x00" * 1600  # 100 ms
    received, closed = _session(
        app_client, {"type": "config", "pace": "replay", "audio": {}}, *[silence] * 120, {"type": "end"}
    )
    warnings = [m["message"] for m in received if m["type"] == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith("no sound for 10 s")
    assert closed == 4422  # twelve seconds of silence are not evidence


def test_an_estimate_without_captions_says_live_recognition_heard_no_turn_yet(app_client: TestClient) -> None:
    # a steady tone is not speech: the live recognition hears no turn, and the estimates say so
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 220 * np.arange(1600) / 16000)).astype("<i2").tobytes()
    received, _ = _session(
        app_client, {"type": "config", "pace": "replay", "audio": {}}, *[b"\x01" + tone] * 110, {"type": "end"}
    )
    estimates = [m for m in received if m["type"] == "estimate"]
    assert estimates, received
    for message in estimates:
        text = message["modalities"]["text"]
        assert not text["used"]
        assert text["reason"] == "no captions, and live speech recognition has heard no complete turn yet"


def test_without_captions_the_running_estimates_hear_the_words_as_they_are_spoken(app_client: TestClient) -> None:
    from tests.media import speech_signal

    signal = speech_signal(" ".join([TRANSCRIPT] * 2), 16000)
    pcm = (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()
    blocks = [pcm[k : k + 3200] for k in range(0, len(pcm), 3200)]  # 100 ms each
    received: list[dict] = []
    with app_client.websocket_connect("/stream") as websocket:
        websocket.send_json({"type": "config", "pace": "replay", "audio": {}})
        received.append(websocket.receive_json())
        due = 10.0
        for k, block in enumerate(blocks):
            websocket.send_bytes(b"\x01" + block)
            if (k + 1) / 10 >= due:  # paced as a call is: each estimate before the next 10 s
                while received[-1]["type"] != "estimate":
                    received.append(websocket.receive_json())
                due = received[-1]["stream_s"] + 10.0
                received.append({"type": "sent"})
        websocket.send_json({"type": "end"})
        while received[-1]["type"] != "final":
            received.append(websocket.receive_json())
    estimates = [m for m in received if m["type"] == "estimate"]
    heard = [m for m in estimates if m["modalities"]["text"]["used"]]
    assert heard, [m["modalities"]["text"] for m in estimates]
    assert all(m["weights"]["text"] > 0 for m in heard)
    # once the words are heard they stay heard: later estimates have more of them, never none
    first = estimates.index(heard[0])
    assert all(m["modalities"]["text"]["used"] for m in estimates[first:])
    final = received[-1]["answer"]
    assert final["inputs"]["text"]["used"] and final["inputs"]["text"]["source"] == "speech recognition"


def _paced_session(client: TestClient, pictures: list[bytes], captions: list[dict], fps: int = 10) -> list[dict]:
    """A video session paced as a call is: each running estimate is awaited before the next 10 s
    of media (the server would be that far ahead at real time); every message until ``final``."""
    captions = list(captions)
    received: list[dict] = []
    with client.websocket_connect("/stream") as websocket:
        websocket.send_json({"type": "config", "pace": "replay", "video": {}, "captions": bool(captions)})
        received.append(websocket.receive_json())
        due, covered = 10.0, 0.0
        for k, picture in enumerate(pictures):
            now = k / fps
            while captions and captions[0]["start"] <= now:
                covered = max(covered, captions[0]["end"])
                websocket.send_json(captions.pop(0))
            websocket.send_bytes(_video(now, picture))
            covered = max(covered, now)
            if covered >= due:
                while received[-1]["type"] != "estimate":
                    received.append(websocket.receive_json())
                due = received[-1]["stream_s"] + 10.0
                received.append({"type": "sent", "at": now})
        websocket.send_json({"type": "end"})
        while received[-1]["type"] not in ("final", "error"):
            received.append(websocket.receive_json())
    return received


def _posted_as_recorded(client: TestClient, folder: Path, pictures: list[bytes], captions: list[dict]) -> dict:
    """/predict's answer for the session's media: its pictures as the session records them, its captions."""
    from app.stream.protocol import ConfigMessage
    from app.stream.recording import StreamLimits, StreamRecording

    recording = StreamRecording(folder, ConfigMessage(type="config", video={}), StreamLimits.from_settings(Settings()))
    for k, picture in enumerate(pictures):
        recording.add_video(k / 10, picture)
    recording.close()
    with (folder / "stream-video.mkv").open("rb") as video:
        files = {
            "video": ("call.mkv", video, "video/x-matroska"),
            "transcript": ("captions.json", json.dumps(captions).encode(), "application/json"),
        }
        response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    return response.json()


def _jpegs(frames: Iterable[np.ndarray]) -> list[bytes]:
    return [cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes() for rgb in frames]


@pytest.fixture(scope="module")
def lenient_client(
    tmp_path_factory: pytest.TempPathFactory, extraction_models: ExtractionModels
) -> Iterator[TestClient]:
    """The default service but for 5 s of face being evidence enough (a short test call)."""
    settings = Settings(spool_dir=tmp_path_factory.mktemp("lenient-spool"), providers=["cpu"], min_face_seconds=5)
    with TestClient(create_app(settings, services=in_process(extraction_models))) as client:
        yield client


def test_running_estimates_see_the_face_tracked_so_far_and_its_absence_is_warned_about(
    lenient_client: TestClient, tmp_path: Path
) -> None:
    from tests.media import face_frames

    fps, face_s, call_s = 10, 25, 48
    pictures = _jpegs(
        itertools.chain(face_frames(face_s * fps, (320, 240), "pan"), face_frames((call_s - face_s) * fps, face=False))
    )
    sentences = [s.strip() for s in TRANSCRIPT.split(".") if s.strip()]
    captions = [
        {"type": "transcript", "speaker": "Participant", "start": 4.0 * k, "end": 4.0 * k + 3.8, "text": text}
        for k, text in enumerate((sentences * 3)[: call_s // 4])
    ]
    sent_captions = [{k: c[k] for k in ("speaker", "start", "end", "text")} for c in captions]
    received = _paced_session(lenient_client, pictures, captions)
    estimates = [m for m in received if m["type"] == "estimate"]
    with_video = [m for m in estimates if m["video_s"] > 0]
    assert with_video, estimates
    for message in with_video:
        assert message["modalities"]["visual"]["used"], message
        assert message["weights"]["visual"] > 0 and message["video_s"] <= message["stream_s"] + 0.1
    # each estimate waited for the pictures that had come when it fell due: none lags a part behind
    assert [round(m["video_s"]) for m in estimates] == [8, 20, 32, 44], estimates
    for message in estimates:
        if message["video_s"] == 0:
            assert message["modalities"]["visual"]["reason"] == "the video is analysed for the final answer"
    warnings = [m["message"] for m in received if m["type"] == "warning"]
    assert warnings == ["no face for 10 s: is the camera covered, or the patient out of view?"], warnings
    final = received[-1]["answer"]
    assert final["inputs"]["visual"]["used"] and final["inputs"]["visual"]["format"] == "matroska (mjpeg)"
    # the final answer tracked only the pictures after the live parts: still /predict's answer
    # for the media as streamed
    posted = _posted_as_recorded(lenient_client, tmp_path, pictures, sent_captions)
    assert abs(final["phq8"]["total"] - posted["phq8"]["total"]) <= 1e-3
    assert final["inputs"]["visual"]["quality"] == posted["inputs"]["visual"]["quality"]
    assert final["attention"]["modalities"] == pytest.approx(posted["attention"]["modalities"], abs=1e-3)


def test_a_change_of_the_person_on_camera_is_warned_about_as_it_is_tracked(lenient_client: TestClient) -> None:
    from tests.media import face_frames

    half = 120  # 12 s each
    pictures = _jpegs(
        itertools.chain(
            face_frames(half, (320, 240), "pan"), face_frames(half, (320, 240), "pan", seed=3, person="hopper")
        )
    )
    received = _paced_session(lenient_client, pictures, [])
    warnings = [m["message"] for m in received if m["type"] == "warning"]
    changed = [w for w in warnings if w.startswith("the person on camera changed at ")]
    assert len(changed) == 1, warnings
    assert abs(float(changed[0].split(" at ")[1].split(" s")[0]) - half / 10) <= 1.0
    # said before the end: the estimate at 20 s waited for the pictures the change is in
    end = next(k for k, m in enumerate(received) if m["type"] == "sent" and m["at"] >= 20)
    assert any(m["type"] == "warning" and m["message"] in changed for m in received[:end])
    assert received[-1]["type"] == "final"


@pytest.fixture(scope="module")
def paced_client(tmp_path_factory: pytest.TempPathFactory, extraction_models: ExtractionModels) -> Iterator[TestClient]:
    settings = Settings(spool_dir=tmp_path_factory.mktemp("paced-spool"), providers=["cpu"], stream_max_ahead_s=2.0)
    with TestClient(create_app(settings, services=in_process(extraction_models))) as client:
        yield client


def _audio_seconds(seconds: float) -> list[bytes]:
    """``seconds`` of a quiet tone as 100-ms audio frames."""
    t = np.arange(1600) / 16000
    block = b"\x01" + (1000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
    return [block] * round(seconds * 10)


def test_a_live_session_faster_than_real_time_is_closed_with_its_reason(paced_client: TestClient) -> None:
    # 3 s of audio at once: more than the 2 s a live session may run ahead of the time since ready
    received, closed = _session(paced_client, {"type": "config", "audio": {}}, *_audio_seconds(3.0), {"type": "end"})
    assert closed == 4429
    problem = _refused(received, closed, "stream-too-fast")
    assert "ahead" in problem["detail"] and '"pace": "replay"' in problem["detail"]
    assert received[0]["type"] == "ready" and received[0]["limits"]["max_ahead_s"] == 2.0


def test_within_its_lead_a_live_session_and_at_any_speed_a_replay_are_not_closed(paced_client: TestClient) -> None:
    for config, seconds in (
        ({"type": "config", "audio": {}}, 1.5),
        ({"type": "config", "audio": {}, "pace": "replay"}, 6),
    ):
        received, closed = _session(paced_client, config, *_audio_seconds(seconds), {"type": "end"})
        # too little speech to score, but not refused for its pace: the final problem is about evidence
        assert closed == 4422, (config, received[-1])
        _refused(received, closed, "no-usable-input")
