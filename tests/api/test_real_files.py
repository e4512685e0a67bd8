"""Files real telehealth tools write, against a real server: every accepted container and codec
answers 200, cover art is ignored, several audio tracks and one-side-per-channel calls analyse
the patient's side and say so, and uploads that cannot be one session are warned about or
refused.

The server runs with low evidence minimums (2 s of face and speech) so that short generated
clips exercise decoding rather than the guardrails, which have their own tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import start_server
from tests.api.helpers import problem
from tests.media import face_frames, speech_signal, write_media

RATE = 16000
FPS = 10
LINES = [
    "I have been feeling pretty down over the last couple of weeks and nothing really helps.",
    "Most nights I lie awake and I cannot get back to sleep until the morning comes.",
]
QUESTION = "How have you been?"


@pytest.fixture(scope="module")
def lenient(tmp_path_factory) -> Iterator[httpx.Client]:
    with start_server(
        tmp_path_factory.mktemp("real-files"), min_face_seconds="2", min_speech_seconds="2"
    ) as running, httpx.Client(base_url=running.url, timeout=180) as client:
        yield client


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speech_signal(" ".join(LINES), RATE)


@pytest.fixture(scope="module")
def call() -> tuple[np.ndarray, np.ndarray]:
    """(patient, clinician): the two sides of a call, each silent while the other talks."""
    patient, clinician = [], []
    for line in LINES:
        q, a = speech_signal(QUESTION, RATE, voice="en-gb"), speech_signal(line, RATE, voice="en-us")
        clinician += [q, np.zeros_like(a)]
        patient += [np.zeros_like(q), a]
    return np.concatenate(patient), np.concatenate(clinician)


def _frames(seconds: float, size: tuple[int, int] = (320, 240), fps: float = FPS) -> list[np.ndarray]:
    return list(face_frames(round(seconds * fps), size, motion="pan"))


def _resample(signal: np.ndarray, rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    return resample_poly(signal, rate, RATE).astype(np.float32) if rate != RATE else signal


# name, muxer (None: from the suffix), video encoder, audio encoder, frame rate, audio rate, frame size,
# and the decoders the answer names
VIDEO_CASES = [
    ("webcam.avi", None, "mpeg4", "libmp3lame", FPS, RATE, (320, 240), "avi (mpeg4, mp3float)"),
    ("capture.avi", None, "mjpeg", "pcm_s16le", FPS, RATE, (320, 240), "avi (mjpeg, pcm_s16le)"),
    ("legacy.avi", None, "msmpeg4", "ac3", FPS, RATE, (320, 240), "avi (msmpeg4, ac3)"),
    ("meeting.wmv", "asf", "wmv2", "wmav2", FPS, RATE, (320, 240), "asf (wmv2, wmav2)"),
    ("broadcast.ts", "mpegts", "mpeg2video", "mp2", FPS, RATE, (320, 240), "mpegts (mpeg2video, mp2)"),
    ("camcorder.mpg", "mpeg", "mpeg1video", "mp2", 25, RATE, (320, 240), "mpeg (mpeg1video, mp2)"),
    ("stream.flv", "flv", "flv", "aac", FPS, RATE, (320, 240), "flv (flv, aac)"),
    ("phone.3gp", "3gp", "h263", "libopencore_amrnb", FPS, 8000, (176, 144), "mov (h263, amrnb)"),
    ("tv.mp4", None, "libx264", "ac3", FPS, RATE, (320, 240), "mov (h264, ac3)"),
    ("dolby.mkv", None, "libx264", "eac3", FPS, RATE, (320, 240), "matroska (h264, eac3)"),
    ("radio.mkv", None, "libx264", "mp2", FPS, RATE, (320, 240), "matroska (h264, mp2)"),
    ("editor.mov", None, "mjpeg", "pcm_s16le", FPS, RATE, (320, 240), "mov (mjpeg, pcm_s16le)"),
]


@pytest.mark.parametrize(
    ("name", "muxer", "video_codec", "audio_codec", "fps", "rate", "size", "decoded"),
    VIDEO_CASES,
    ids=[case[0] for case in VIDEO_CASES],
)
def test_every_accepted_video_container_and_codec_answers(
    lenient: httpx.Client, tmp_path: Path, speech: np.ndarray, name, muxer, video_codec, audio_codec, fps, rate,
    size, decoded,
) -> None:
    seconds = speech.size / RATE
    path = write_media(
        tmp_path / name, _frames(seconds, size, fps), fps, [_resample(speech, rate)], rate,
        video_codec=video_codec, audio_codec=audio_codec, container_format=muxer,
    )
    response = lenient.post("/predict", files={"video": (name, path.read_bytes(), "application/octet-stream")})
    assert response.status_code == 200, response.text
    body = response.json()
    visual, audio = body["inputs"]["visual"], body["inputs"]["audio"]
    assert visual["format"] == decoded and audio["format"] == decoded
    assert visual["used"] and audio["used"], (visual, audio)
    assert visual["duration_s"] == pytest.approx(seconds, abs=0.3)
    assert audio["duration_s"] == pytest.approx(seconds, abs=0.3)
    telephone = any("telephone-band" in w for w in body["warnings"])
    assert telephone == (rate == 8000), body["warnings"]  # AMR-NB is narrowband


AUDIO_CASES = [
    ("tagged.mp3", None, "libmp3lame", True, "mp3 (mp3float)"),
    ("voice-memo.m4a", "mp4", "aac", True, "mov (aac)"),
    ("studio.aiff", None, "pcm_s16be", False, "aiff (pcm_s16be)"),
    ("apple.caf", None, "alac", False, "caf (alac)"),
    ("dictaphone.amr", None, "libopencore_amrnb", False, "amr (amrnb)"),
    ("archive.wav", None, "pcm_s24le", False, "wav (pcm_s24le)"),
    ("big.w64", None, "pcm_f32le", False, "w64 (pcm_f32le)"),
]


@pytest.mark.parametrize(("name", "muxer", "codec", "cover", "decoded"), AUDIO_CASES, ids=[c[0] for c in AUDIO_CASES])
def test_every_accepted_audio_container_and_codec_answers_and_cover_art_is_ignored(
    lenient: httpx.Client, tmp_path: Path, speech: np.ndarray, name, muxer, codec, cover, decoded
) -> None:
    rate = 8000 if "amr" in codec else RATE
    art = np.full((96, 96, 3), 200, np.uint8) if cover else None
    path = write_media(
        tmp_path / name, None, FPS, [_resample(speech, rate)], rate, audio_codec=codec, container_format=muxer,
        cover_art=art,
    )
    response = lenient.post("/predict", files={"audio": (name, path.read_bytes(), "application/octet-stream")})
    assert response.status_code == 200, response.text
    audio = response.json()["inputs"]["audio"]
    assert audio["used"] and audio["format"] == decoded
    assert audio["duration_s"] == pytest.approx(speech.size / RATE, abs=0.3)


def test_a_video_upload_whose_only_picture_is_cover_art_is_analysed_as_audio(
    lenient: httpx.Client, tmp_path: Path, speech: np.ndarray
) -> None:
    path = write_media(
        tmp_path / "song.mp3", None, FPS, [speech], RATE, audio_codec="libmp3lame",
        cover_art=np.full((96, 96, 3), 90, np.uint8),
    )
    body = lenient.post("/predict", files={"video": ("song.mp3", path.read_bytes(), "audio/mpeg")}).json()
    visual = body["inputs"]["visual"]
    assert not visual["used"] and visual["reason"] == "the video holds no video stream"
    assert body["inputs"]["audio"]["used"]


def _track_total(client: httpx.Client, path: Path, **fields: str) -> dict:
    response = client.post("/predict", files={"video": (path.name, path.read_bytes(), "video/x-matroska")}, data=fields)
    assert response.status_code == 200, response.text
    return response.json()


def test_two_audio_tracks_in_either_order_analyse_the_patient_and_report_both(
    lenient: httpx.Client, tmp_path: Path, call
) -> None:
    patient, clinician = call
    frames = _frames(patient.size / RATE)
    first = write_media(tmp_path / "a.mkv", frames, FPS, [patient, clinician], RATE, audio_codec="aac")
    second = write_media(tmp_path / "b.mkv", frames, FPS, [clinician, patient], RATE, audio_codec="aac")
    a, b = _track_total(lenient, first), _track_total(lenient, second)
    assert a["phq8"]["total"] == pytest.approx(b["phq8"]["total"], abs=1e-3)
    for body, chosen in ((a, "track 1"), (b, "track 2")):
        audio = body["inputs"]["audio"]
        assert audio["source"] == f"video audio track, {chosen}"
        [selection] = audio["selections"]
        assert selection["kind"] == "audio_track" and selection["confident"]
        assert [c["name"] for c in selection["candidates"] if c["chosen"]] == [chosen]
        assert len(selection["candidates"]) == 2
    # the option overrides the rule, and a track that does not exist is refused with the count
    forced = _track_total(lenient, first, participant_track="2")
    assert forced["inputs"]["audio"]["selections"][0]["rule"] == "the option participant_track"
    assert forced["phq8"]["total"] != pytest.approx(a["phq8"]["total"], abs=1e-3)
    refused = lenient.post(
        "/predict", files={"video": ("a.mkv", first.read_bytes(), "video/x-matroska")}, data={"participant_track": "3"}
    )
    assert "2 audio tracks" in problem(refused, 422, "conflicting-input")["detail"]


def test_one_side_per_stereo_channel_is_split_and_the_patient_side_analysed(
    lenient: httpx.Client, tmp_path: Path, call
) -> None:
    patient, clinician = call
    stereo = np.stack([clinician, patient], axis=1)
    path = write_media(tmp_path / "call.wav", None, FPS, [stereo], RATE, audio_codec="pcm_s16le")
    mono = write_media(tmp_path / "patient.wav", None, FPS, [patient], RATE, audio_codec="pcm_s16le")
    split = lenient.post("/predict", files={"audio": ("call.wav", path.read_bytes(), "audio/wav")}).json()
    alone = lenient.post("/predict", files={"audio": ("patient.wav", mono.read_bytes(), "audio/wav")}).json()
    [selection] = split["inputs"]["audio"]["selections"]
    assert selection["kind"] == "audio_channel"
    assert [c["name"] for c in selection["candidates"] if c["chosen"]] == ["right channel"]
    assert split["phq8"]["total"] == pytest.approx(alone["phq8"]["total"], abs=1e-3)
    left = lenient.post(
        "/predict", files={"audio": ("call.wav", path.read_bytes(), "audio/wav")}, data={"participant_channel": "left"}
    ).json()
    assert [c["name"] for c in left["inputs"]["audio"]["selections"][0]["candidates"] if c["chosen"]] == [
        "left channel"
    ]


def test_video_and_audio_of_different_lengths_are_warned_about_or_refused(
    lenient: httpx.Client, tmp_path: Path, speech: np.ndarray
) -> None:
    seconds = speech.size / RATE
    video = write_media(tmp_path / "v.mp4", _frames(seconds), FPS, [], RATE)
    longer = write_media(tmp_path / "long.wav", None, FPS, [np.concatenate([speech, speech[: speech.size // 3]])],
                         RATE, audio_codec="pcm_s16le")
    far = write_media(tmp_path / "far.wav", None, FPS, [np.concatenate([speech] * 3)], RATE, audio_codec="pcm_s16le")
    files = {"video": ("v.mp4", video.read_bytes(), "video/mp4")}
    warned = lenient.post("/predict", files={**files, "audio": ("long.wav", longer.read_bytes(), "audio/wav")})
    assert warned.status_code == 200
    assert any("differ in length" in w for w in warned.json()["warnings"])
    refused = lenient.post("/predict", files={**files, "audio": ("far.wav", far.read_bytes(), "audio/wav")})
    assert "not recordings of the same interview" in problem(refused, 422, "conflicting-input")["detail"]


def _vtt(cues: list[tuple[float, float, str, str]]) -> str:
    def stamp(t: float) -> str:
        return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"

    return "WEBVTT\n\n" + "\n\n".join(f"{stamp(a)} --> {stamp(b)}\n<v {who}>{text}" for a, b, who, text in cues) + "\n"


def test_a_transcript_running_past_the_media_is_warned_about_or_left_out(
    lenient: httpx.Client, tmp_path: Path, speech: np.ndarray
) -> None:
    seconds = speech.size / RATE
    audio = write_media(tmp_path / "s.wav", None, FPS, [speech], RATE, audio_codec="pcm_s16le")
    words = " ".join(LINES * 2)

    def send(end: float) -> dict:
        cues = [(0.0, seconds / 2, "Participant", words), (seconds / 2, end, "Participant", words)]
        response = lenient.post(
            "/predict",
            files={
                "audio": ("s.wav", audio.read_bytes(), "audio/wav"),
                "transcript": ("t.vtt", _vtt(cues), "text/vtt"),
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    fits, past, beyond = send(seconds), send(seconds * 1.3), send(seconds * 3)
    assert fits["inputs"]["text"]["used"] and not any("transcript runs" in w for w in fits["warnings"])
    assert past["inputs"]["text"]["used"] and any("past the media" in w for w in past["warnings"])
    assert not beyond["inputs"]["text"]["used"]
    assert "not this recording's" in beyond["inputs"]["text"]["reason"]
    assert not beyond["inputs"]["audio"]["quality"]["participant_only"]
