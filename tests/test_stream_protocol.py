"""The /stream protocol's pure parts and the session's recording (real JPEGs from OpenCV, real
PyAV muxing and decoding): frame layout, JPEG sizes, message validation, close codes, the
machine-readable schema, and the files a session becomes."""

from __future__ import annotations

import json
import struct
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.__main__ import main as app_main
from app.errors import BadRequestError, NoUsableInputError, PayloadTooLargeError, UnsupportedMediaError
from app.features.transcript import parse_transcript
from app.features.visual.sampling import VideoSampler
from app.stream.protocol import (
    ConfigMessage,
    TranscriptMessage,
    close_code,
    jpeg_size,
    message_schemas,
    parse_client_text,
    parse_config,
    split_video_frame,
)
from app.stream.recording import StreamLimits, StreamRecording

ROOT = Path(__file__).resolve().parents[1]
LIMITS = StreamLimits(
    max_seconds=60.0,
    max_frame_bytes=1 << 20,
    max_fps=30.0,
    max_file_bytes=8 << 20,
    max_transcript_bytes=4096,
    max_frame_pixels=640 * 480,
    idle_timeout_s=5.0,
    max_ahead_s=10.0,
)
BOTH = ConfigMessage(type="config", audio={}, video={}, captions=True, participant_speaker="Patient")


def _jpeg(width: int, height: int, seed: int = 0, progressive: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    picture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(("width", "height", "progressive"), [(320, 240, False), (641, 17, True), (8, 1000, False)])
def test_jpeg_size_reads_the_frame_header(width: int, height: int, progressive: bool) -> None:
    assert jpeg_size(_jpeg(width, height, progressive=progressive)) == (width, height)


def test_what_is_not_a_jpeg_picture_is_refused() -> None:
    _, png = cv2.imencode(".png", np.zeros((10, 10, 3), np.uint8))
    jpeg = _jpeg(32, 32)
    for data in (png.tobytes(), jpeg[:20], b"\xff\xd8", b"hello world"):
        with pytest.raises(UnsupportedMediaError):
            jpeg_size(data)


def test_a_video_frame_is_a_timestamp_and_a_picture() -> None:
    jpeg = _jpeg(16, 16)
    assert split_video_frame(struct.pack("<d", 1.25) + jpeg) == (1.25, jpeg)
    for bad in (struct.pack("<d", -1.0) + jpeg, struct.pack("<d", float("nan")) + jpeg, b"\x00" * 8):
        with pytest.raises(BadRequestError):
            split_video_frame(bad)


def test_messages_are_validated_without_echoing_what_was_sent() -> None:
    secret = "Patient Jane Doe said something private"
    for text in (
        json.dumps({"type": "config", "participant_speaker": 3, "extra": secret}),
        json.dumps({"type": "video", "who": secret}),
        "not json " + secret,
    ):
        with pytest.raises(BadRequestError) as caught:
            parse_config(text)
        assert secret not in json.dumps(caught.value.problem_body("r"))
    with pytest.raises(BadRequestError):
        parse_client_text(json.dumps({"type": "transcript", "speaker": "P", "start": 1, "end": "soon", "text": "x"}))
    assert parse_client_text('{"type": "end"}').type == "end"
    assert parse_config('{"type": "config"}').audio is None


def test_the_close_code_is_4000_plus_the_problems_status() -> None:
    assert close_code(BadRequestError("x")) == 4400
    assert close_code(PayloadTooLargeError("x")) == 4413
    assert close_code(NoUsableInputError("x")) == 4422


def test_the_documented_schema_is_the_protocols(capsys: pytest.CaptureFixture[str]) -> None:
    assert app_main(["stream-protocol"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((ROOT / "docs" / "stream-protocol.json").read_text())
    assert printed == json.loads(json.dumps(message_schemas()))
    assert set(printed["client"]) == {"config", "transcript", "end"}


# -- the recording ----------------------------------------------------------------------------


def test_a_session_becomes_the_files_predict_reads(tmp_path: Path) -> None:
    recording = StreamRecording(tmp_path, BOTH, LIMITS)
    levels = [10 + 12 * k for k in range(20)]  # each picture told apart by its grey level
    jpegs = [cv2.imencode(".jpg", np.full((48, 64, 3), level, np.uint8))[1].tobytes() for level in levels]
    times = [0.1 * k + (0.03 if k % 3 == 0 else 0.0) for k in range(20)]  # an uneven camera clock
    for at, jpeg in zip(times, jpegs, strict=True):
        recording.add_video(at, jpeg)
    pcm = (np.sin(np.arange(32000) / 7.0) * 9000).astype("<i2").tobytes()
    for start in range(0, len(pcm), 3200):
        recording.add_audio(pcm[start : start + 3200])
    for k in range(3):
        start = 0.5 * k
        recording.add_segment(
            TranscriptMessage(type="transcript", speaker="Patient", start=start, end=start + 0.4, text=f"words {k}")
        )
    # a running estimate's snapshot: the WAV so far, and where its final frames are kept, in the folder
    snapshot = recording.snapshot()
    assert snapshot.files["audio"].path == recording.audio_path
    assert snapshot.audio_cache is not None and snapshot.audio_cache.parent == tmp_path
    form = recording.form()

    assert form.audio_cache is None  # the final answer decodes the recording, as /predict does
    assert form.fields == {"participant_speaker": "Patient", "include_timeline": "true"}
    with wave.open(str(form.files["audio"].path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.readframes(wav.getnframes()) == pcm
    transcript = parse_transcript(form.files["transcript"].data, "json", "application/json", 4096)
    assert [(u.speaker, u.start_s, u.text) for u in transcript.utterances] == [
        ("Patient", 0.5 * k, f"words {k}") for k in range(3)
    ]
    # the video holds the very pictures at their times: each tick gets the nearest one's decode
    sampler = VideoSampler(form.files["video"].path, 10.0)
    ticks = list(sampler)
    assert abs(len(ticks) / 10 - (times[-1] - times[0] + 0.1)) <= 0.1  # the recorded span, in ticks
    for tick, picture in enumerate(ticks):
        nearest = int(np.argmin([abs(t - (times[0] + tick / 10.0)) for t in times]))
        assert picture is not None
        assert abs(float(picture.mean()) - levels[nearest]) <= 2


@pytest.mark.parametrize(
    ("feed", "error"),
    [
        (lambda r: (r.add_video(1.0, _jpeg(32, 32)), r.add_video(0.5, _jpeg(32, 32))), BadRequestError),
        (lambda r: (r.add_video(1.0, _jpeg(32, 32)), r.add_video(1.001, _jpeg(32, 32))), BadRequestError),
        (lambda r: (r.add_video(0.0, _jpeg(32, 32)), r.add_video(0.1, _jpeg(48, 32))), BadRequestError),
        (lambda r: r.add_video(0.0, _jpeg(800, 600)), PayloadTooLargeError),
        (lambda r: r.add_video(61.0, _jpeg(32, 32)), PayloadTooLargeError),
        (lambda r: r.add_audio(b"\x00" * 3), BadRequestError),
        (lambda r: r.add_audio(b"\x00" * (2 * 16000 * 61)), PayloadTooLargeError),
        (
            lambda r: r.add_segment(TranscriptMessage(type="transcript", speaker="P", start=2, end=1, text="x")),
            BadRequestError,
        ),
        (
            lambda r: r.add_segment(TranscriptMessage(type="transcript", speaker="P", start=0, end=1, text="x" * 5000)),
            PayloadTooLargeError,
        ),
    ],
    ids=[
        "timestamps-go-back",
        "faster-than-30-fps",
        "size-changes",
        "too-many-pixels",
        "past-the-session-cap",
        "half-a-sample",
        "audio-past-the-cap",
        "segment-ends-first",
        "transcript-too-large",
    ],
)
def test_each_bad_frame_is_refused_with_its_error(tmp_path: Path, feed, error: type[Exception]) -> None:
    recording = StreamRecording(tmp_path, BOTH, LIMITS)
    try:
        with pytest.raises(error):
            feed(recording)
    finally:
        recording.close()


def test_media_the_config_did_not_announce_is_refused(tmp_path: Path) -> None:
    recording = StreamRecording(tmp_path, ConfigMessage(type="config"), LIMITS)
    for feed in (
        lambda: recording.add_audio(b"\x00\x00"),
        lambda: recording.add_video(0.0, _jpeg(16, 16)),
        lambda: recording.add_segment(TranscriptMessage(type="transcript", speaker="P", start=0, end=1, text="x")),
    ):
        with pytest.raises(BadRequestError, match="announced no"):
            feed()
    assert recording.form().files == {}
