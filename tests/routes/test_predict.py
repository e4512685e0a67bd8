"""POST /predict in process: the route hands the form to the pipeline and maps its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import metric_sample, valid_answer
from tests.routes.helpers import TRANSCRIPT, problem

pytestmark = pytest.mark.usefixtures("no_leftovers")


def test_a_transcript_as_text_is_answered_from_the_text_branch(app_client: TestClient) -> None:
    response = app_client.post("/predict", data={"transcript_text": TRANSCRIPT, "include_timeline": "false"})
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"text"})
    assert answer.request_id == response.headers["x-request-id"]
    assert answer.timeline is None
    # the served version ships its calibration: the interval is the conformal one
    assert answer.phq8.interval.method == "conformal" and answer.phq8.interval.evidence_s > 0
    assert answer.inputs.text.quality["words"] == len(TRANSCRIPT.split())
    assert answer.inputs.audio.reason == "no audio given" and answer.inputs.visual.reason == "no video given"
    assert {"upload", "text", "windows", "inference", "total"} <= set(answer.timings_ms)


def test_short_speech_is_reported_unused_with_its_reason_beside_the_used_transcript(
    app_client: TestClient, tmp_path: Path
) -> None:
    from tests.media import speech_signal, write_audio

    wav = write_audio(speech_signal("I have been feeling pretty down lately."), 16000, tmp_path / "short.wav")
    files = {"audio": ("a.wav", wav.read_bytes(), "audio/wav"), "transcript": ("t.txt", TRANSCRIPT.encode())}
    response = app_client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"text"})
    audio = answer.inputs.audio
    assert audio.source == "audio upload" and audio.reason.startswith("only ") and "s of speech" in audio.reason
    assert 0 < audio.quality["speech_seconds"] < 30 and audio.duration_s > 1
    assert any(w.startswith("audio was not used") for w in answer.warnings)


def test_a_success_is_counted_by_outcome_and_modality(app_client: TestClient) -> None:
    def counts() -> tuple[float, float]:
        text = app_client.get("/metrics").text
        return (
            metric_sample(text, "phq_predictions_total", outcome="ok"),
            metric_sample(text, "phq_modality_used_total", modality="text"),
        )

    before = counts()
    assert app_client.post("/predict", data={"transcript_text": TRANSCRIPT}).status_code == 200
    assert counts() == (before[0] + 1, before[1] + 1)


def test_both_transcript_fields_conflict(app_client: TestClient) -> None:
    response = app_client.post(
        "/predict", data={"transcript_text": TRANSCRIPT}, files={"transcript": ("t.txt", TRANSCRIPT.encode())}
    )
    problem(response, 422, "conflicting-input")


def test_no_input_at_all_is_422_naming_what_to_send(app_client: TestClient) -> None:
    body = problem(app_client.post("/predict", data={"include_timeline": "true"}), 422, "no-usable-input")
    assert "send a video, an audio file or a transcript" in body["detail"]


def test_a_model_version_not_served_is_422(app_client: TestClient) -> None:
    response = app_client.post("/predict", data={"transcript_text": TRANSCRIPT, "model_version": "9999"})
    assert "not served here" in problem(response, 422, "no-usable-input")["detail"]


def test_an_unknown_field_is_400_and_its_value_is_not_echoed(app_client: TestClient) -> None:
    response = app_client.post("/predict", data={"transcript_text": TRANSCRIPT, "patient_name": "Jane Roe"})
    body = problem(response, 400, "bad-request")
    assert "patient_name" in body["detail"] and "Jane Roe" not in response.text


def test_an_invalid_option_names_its_field_only(app_client: TestClient) -> None:
    response = app_client.post("/predict", data={"transcript_text": TRANSCRIPT, "include_timeline": "maybe"})
    body = problem(response, 400, "bad-request")
    assert [e["loc"] for e in body["errors"]] == [["body", "include_timeline"]]
    assert "maybe" not in response.text


def test_a_body_that_is_not_a_form_is_415(app_client: TestClient) -> None:
    response = app_client.post("/predict", content=b"{}", headers={"content-type": "application/json"})
    problem(response, 415, "unsupported-media")


def test_an_upload_that_is_not_media_is_415_from_the_probe(app_client: TestClient) -> None:
    response = app_client.post("/predict", files={"audio": ("a.wav", b"not a wave file at all" * 50, "audio/wav")})
    problem(response, 415, "unsupported-media")
