"""POST /predict against a real uvicorn server: every input path, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.helpers import problem, valid_answer
from tests.api.transcripts import FORMATS, webvtt

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _file(path: Path, field: str, content_type: str = "application/octet-stream") -> dict:
    return {field: (path.name, path.read_bytes(), content_type)}


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_a_talking_face_video_feeds_every_branch_its_words_heard_from_its_audio(
    client: httpx.Client, media: dict, container: str
) -> None:
    response = client.post("/predict", files=_file(media[container], "video", f"video/{container}"))
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"visual", "audio", "text"})
    assert answer.inputs.audio.source == "video audio track"
    assert answer.inputs.text.source == "speech recognition" and answer.inputs.speakers.count == 1
    assert answer.inputs.audio.duration_s == pytest.approx(media["seconds"], abs=0.5)
    visual = answer.inputs.visual
    assert visual.duration_s == pytest.approx(media["seconds"], abs=0.5)
    assert visual.quality["face_found_ratio"] > 0.9


def test_a_talking_face_video_with_its_transcript_uses_all_three_modalities(client: httpx.Client, media: dict) -> None:
    files = {
        **_file(media["mp4"], "video", "video/mp4"),
        "transcript": ("t.txt", (FORMATS["transcript.txt"]() * 2).encode(), "text/plain"),
    }
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"visual", "audio", "text"})
    for item, weights in answer.attention.per_item.items():
        assert abs(weights.visual + weights.audio + weights.text - 1.0) < 2e-3, item
    assert all(w.modalities.visual > 0 and w.modalities.text > 0 for w in answer.timeline or [])


def test_a_video_without_a_face_still_answers_from_its_audio(client: httpx.Client, media: dict) -> None:
    response = client.post("/predict", files=_file(media["faceless_mp4"], "video", "video/mp4"))
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    assert answer.inputs.visual.reason == "no face was found in the video"
    assert any("no face" in w for w in answer.warnings)


def test_a_video_without_a_face_or_anything_else_is_422(client: httpx.Client, media: dict) -> None:
    response = client.post("/predict", files=_file(media["faceless_silent_mp4"], "video", "video/mp4"))
    problem(response, 422, "no-usable-input")


@pytest.mark.parametrize("kind", ["wav", "flac", "mp3"])
def test_audio_only(client: httpx.Client, media: dict, kind: str) -> None:
    response = client.post("/predict", files=_file(media[kind], "audio"))
    assert response.status_code == 200, response.text
    # the audio branch, and the text branch from the words speech recognition heard
    answer = valid_answer(response.json(), used={"audio", "text"})
    assert answer.inputs.audio.quality["speech_seconds"] >= 30
    assert answer.inputs.text.source == "speech recognition"
    assert answer.timeline and answer.timeline[0].modalities.visual == 0.0
    assert answer.timeline[0].modalities.audio > 0


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_text_only_in_every_transcript_format(client: httpx.Client, name: str) -> None:
    body = FORMATS[name]().encode()
    response = client.post("/predict", files={"transcript": (name, body, "text/plain")})
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"text"})
    # only the participant's ten answers, never the interviewer's questions
    assert answer.inputs.text.quality["utterances"] == 10


def test_transcript_text_field_works_like_a_file(client: httpx.Client) -> None:
    response = client.post(
        "/predict", data={"transcript_text": FORMATS["transcript.txt"](), "include_timeline": "false"}
    )
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"text"})
    assert answer.timeline is None


def test_audio_and_text_share_the_weight(client: httpx.Client, interview: tuple) -> None:
    path, turns = interview
    files = {**_file(path, "audio"), "transcript": ("t.vtt", webvtt(turns).encode(), "text/vtt")}
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    for item, weights in answer.attention.per_item.items():
        assert abs(weights.audio + weights.text - 1.0) < 2e-3, item
    # the speaker turns cut the audio down to the participant's answers
    participant_s = sum(b - a for a, b, who, _ in turns if who == "Participant")
    assert answer.inputs.audio.quality["participant_only"] == 1.0
    assert answer.inputs.audio.duration_s == pytest.approx(participant_s, abs=0.1)
    assert answer.inputs.text.quality["utterances"] == 20
    # ... and both branches say whose turns those are, and why
    [selection] = answer.inputs.text.selections
    assert answer.inputs.audio.selections == [selection]
    assert [(c.name, c.chosen) for c in selection.candidates] == [("Ellie", False), ("Participant", True)]
    assert selection.candidates[1].seconds == pytest.approx(participant_s, abs=0.01)


def test_the_same_interview_gives_the_same_answer(client: httpx.Client, media: dict) -> None:
    files = _file(media["wav"], "audio")
    first = client.post("/predict", files=files).json()
    second = client.post("/predict", files=files).json()
    assert first["phq8"] == second["phq8"]
    assert first["request_id"] != second["request_id"]


def test_no_modality_at_all_is_422(client: httpx.Client) -> None:
    problem(client.post("/predict", data={"include_timeline": "true"}), 422, "no-usable-input")


def test_unknown_format_is_415(client: httpx.Client) -> None:
    junk = bytes(range(256)) * 64
    problem(client.post("/predict", files={"audio": ("notes.wav", junk, "audio/wav")}), 415, "unsupported-media")


def test_corrupt_audio_is_422(client: httpx.Client, media: dict) -> None:
    data = media["flac"].read_bytes()
    noise = np.random.default_rng(11).integers(0, 256, len(data) - 8192, dtype=np.uint8).tobytes()
    corrupt = data[:8192] + noise  # a valid header and first frames, then nothing decodable
    response = client.post("/predict", files={"audio": ("speech.flac", corrupt, "audio/flac")})
    problem(response, 422, "corrupt-media")


def test_a_recording_that_breaks_off_is_used_up_to_the_break(client: httpx.Client, media: dict) -> None:
    data = media["flac"].read_bytes()
    truncated = data[: len(data) * 3 // 4]  # the upload stopped mid-frame
    response = client.post("/predict", files={"audio": ("speech.flac", truncated, "audio/flac")})
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    assert answer.inputs.audio.duration_s == pytest.approx(0.75 * media["seconds"], rel=0.1)


def test_empty_transcript_is_absent_with_a_warning(client: httpx.Client, media: dict) -> None:
    files = {**_file(media["wav"], "audio"), "transcript": ("t.txt", b"  \n\n ", "text/plain")}
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio"})
    assert any("transcript is empty" in w for w in answer.warnings)


def test_empty_transcript_alone_is_422(client: httpx.Client) -> None:
    problem(client.post("/predict", files={"transcript": ("t.txt", b"\n", "text/plain")}), 422, "no-usable-input")


def test_too_little_speech_alone_is_422(client: httpx.Client, media: dict) -> None:
    body = problem(client.post("/predict", files=_file(media["short_wav"], "audio")), 422, "no-usable-input")
    assert "speech" in body["detail"]


def test_a_windows_1252_transcript_is_read_and_its_encoding_reported(client: httpx.Client) -> None:
    text = "I said “I’m fine” – but I’m not sleeping, and I’m tired all day… really.\n" * 8
    files = {"transcript": ("t.txt", text.encode("cp1252"), "text/plain")}
    body = client.post("/predict", files=files).json()
    valid_answer(body, used={"text"})
    assert body["inputs"]["text"]["encoding"] == "windows-1252"


def test_bytes_that_are_no_text_encoding_are_422(client: httpx.Client) -> None:
    data = bytes(np.random.default_rng(3).integers(0, 256, 2048, dtype=np.uint8))
    files = {"transcript": ("t.txt", data, "text/plain")}
    problem(client.post("/predict", files=files), 422, "invalid-transcript")


def test_both_transcript_file_and_text_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/predict", data={"transcript_text": "hello there"}, files={"transcript": ("t.txt", b"hi", "text/plain")}
    )
    problem(response, 422, "conflicting-input")


def test_a_transcript_of_a_few_words_is_not_used(client: httpx.Client) -> None:
    body = problem(client.post("/predict", data={"transcript_text": "I feel fine today."}), 422, "no-usable-input")
    assert "only 4 words" in body["detail"]


def test_an_unknown_speaker_is_422_counting_the_speakers_without_quoting_them(client: httpx.Client) -> None:
    files = {"transcript": ("t.vtt", webvtt().encode(), "text/vtt")}
    body = problem(
        client.post("/predict", files=files, data={"participant_speaker": "Bob"}), 422, "invalid-transcript"
    )
    # speaker labels are upload content (often names): counted, never quoted
    assert "2 speaker labels" in body["detail"]
    assert "Participant" not in body["detail"] and "Bob" not in body["detail"]
