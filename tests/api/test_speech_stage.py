"""The speech stage against a real server (worker processes, real decoding, the bytes on the
wire): a call recording with no transcript is answered from the patient's voice and words,
and none of those words reach the server's log; a call video without transcript scores like
the same video with its true transcript; recordings that are not a two-person interview (one
voice, three, music, silence, the clinician alone) each get a clear reason."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import RunningServer
from tests.api.helpers import valid_answer
from tests.asr_clips import word_error_rate
from tests.dialects import Turn, teams_vtt
from tests.interviews import CLINICIAN, PATIENT, QUESTIONS, SAMPLE_RATE, interview
from tests.media import face_frames, speech_signal, write_audio, write_video

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_leftovers")]


def test_a_call_recording_without_transcript_is_heard_in_a_worker_and_nothing_heard_is_logged(
    running_server: RunningServer, tmp_path: Path
) -> None:
    spoken = interview("en+anika", "en-us", exchanges=6)
    audio = Path(write_audio(spoken.samples, 16000, tmp_path / "call.wav")).read_bytes()
    response = httpx.post(
        running_server.url + "/predict",
        files={"audio": ("call.wav", audio, "audio/wav")},
        data={"include_timeline": "false", "return_transcript": "true"},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    assert answer.inputs.speakers.count == 2 and answer.inputs.speakers.participant == "speaker 1"
    assert answer.inputs.text.source == "speech recognition"
    heard = " ".join(s.text for s in answer.inputs.text.transcript)
    assert word_error_rate(spoken.patient_text, heard) < 0.3
    # the worker's session providers are what /models says
    speech = httpx.get(running_server.url + "/models", timeout=30).json()["speech"]
    assert speech["speech_to_text"]["execution_providers"] == ["CPUExecutionProvider"]
    # privacy: neither the recognised words nor the script reach the log
    log = running_server.log().lower()
    distinctive = {w.strip(".,?").lower() for w in heard.split() if len(w.strip(".,?")) >= 7}
    assert distinctive and not [w for w in distinctive if w in log]


def _post(server: RunningServer, files: dict, **fields: str) -> httpx.Response:
    return httpx.post(server.url + "/predict", files=files, data={"include_timeline": "false", **fields}, timeout=300)


def test_a_two_voice_call_video_without_transcript_scores_like_the_same_video_with_its_transcript(
    running_server: RunningServer, tmp_path: Path
) -> None:
    spoken = interview("en+anika", "en-us", exchanges=6)
    fps = 10
    frames = face_frames(math.ceil(spoken.samples.size / SAMPLE_RATE * fps), motion="pan")
    video = write_video(tmp_path / "call.mp4", frames, fps, audio=spoken.samples).read_bytes()
    bare = _post(running_server, {"video": ("call.mp4", video, "video/mp4")})
    assert bare.status_code == 200, bare.text
    answer = valid_answer(bare.json(), used={"visual", "audio", "text"})
    assert answer.inputs.text.source == "speech recognition"
    speakers = answer.inputs.speakers
    assert speakers.count == 2 and speakers.participant == "speaker 1" and speakers.selection.confident
    # the audio branch heard the patient only: their seconds within 10 % of the truth
    assert answer.inputs.audio.quality["participant_only"] == 1.0
    assert speakers.seconds[0] == pytest.approx(spoken.seconds(PATIENT), rel=0.1)
    # the same video with its true, labelled, timed transcript
    labels = {PATIENT: "Participant", CLINICIAN: "Interviewer"}
    truth = [Turn(a, b, labels[who], text) for (a, b, who), text in zip(spoken.turns, spoken.said, strict=True)]
    told = _post(
        running_server,
        {"video": ("call.mp4", video, "video/mp4"), "transcript": ("call.vtt", teams_vtt(truth).encode(), "text/vtt")},
    )
    assert told.status_code == 200, told.text
    reference = valid_answer(told.json(), used={"visual", "audio", "text"})
    assert reference.inputs.speakers.separated is False  # the transcript already said who spoke when
    assert abs(answer.phq8.total - reference.phq8.total) <= 1.5, (answer.phq8.total, reference.phq8.total)


def _music(seconds: float) -> np.ndarray:
    """Six sustained chords with harmonics: loud, tonal, no voice."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    out = np.zeros_like(t)
    for k, root in enumerate((220, 277, 330, 440, 392, 349)):
        inside = (t >= k * seconds / 6) & (t < (k + 1) * seconds / 6)
        for harmonic in range(1, 5):
            out[inside] += np.sin(2 * np.pi * root * harmonic * t[inside]) / harmonic
    return (0.2 * out / np.abs(out).max()).astype(np.float32)


def _questions_only() -> np.ndarray:
    gap = np.zeros(round(0.7 * SAMPLE_RATE), np.float32)
    return np.concatenate([np.concatenate([speech_signal(q, voice="en-us+m3"), gap]) for q in QUESTIONS * 3])


def _three_voices() -> np.ndarray:
    first = interview("en+anika", "en-us", exchanges=6)
    relative = interview("en+anika", "en+Alicia", exchanges=3, answer_sentences=2)
    return np.concatenate([first.samples, relative.samples])


@pytest.mark.parametrize(
    ("recording", "status", "said"),
    [
        ("one voice", 200, {"speakers": "the only voice in the recording"}),
        ("three voices", 200, {"speakers": "3 voices"}),
        ("music", 422, {"audio": "only 0.0 s of speech", "text": "speaker separation found no voice"}),
        ("silence", 422, {"audio": "only 0.0 s of speech", "text": "speaker separation found no voice"}),
        ("clinician only", 422, {"audio": "sounds like the interviewer", "text": "sounds like the interviewer"}),
    ],
)
def test_recordings_that_are_not_a_two_person_interview_get_a_clear_reason(
    running_server: RunningServer, tmp_path: Path, recording: str, status: int, said: dict[str, str]
) -> None:
    signal = {
        "one voice": lambda: interview("en-us", "en-us", exchanges=6).samples,
        "three voices": _three_voices,
        "music": lambda: _music(40),
        "silence": lambda: np.zeros(40 * SAMPLE_RATE, np.float32),
        "clinician only": _questions_only,
    }[recording]()
    audio = write_audio(signal, SAMPLE_RATE, tmp_path / "call.wav").read_bytes()
    response = _post(running_server, {"audio": ("call.wav", audio, "audio/wav")})
    assert response.status_code == status, response.text
    if status == 422:
        body = response.json()
        assert body["type"].endswith("no-usable-input")
        for modality, reason in said.items():
            assert f"{modality}: " in body["detail"] and reason in body["detail"].split(f"{modality}: ", 1)[1]
        return
    answer = valid_answer(response.json(), used={"audio", "text"})
    speakers = answer.inputs.speakers
    if recording == "one voice":
        assert speakers.count == 1 and speakers.selection.rule == said["speakers"]
        assert answer.inputs.audio.quality["participant_only"] == 0.0  # nobody else to leave out
    else:
        assert speakers.count == 3 and speakers.rule.startswith(said["speakers"])
        assert [c.name for c in speakers.selection.candidates] == ["speaker 1", "speaker 2", "speaker 3"]
        assert speakers.participant == "speaker 1" and answer.inputs.audio.quality["participant_only"] == 1.0
