"""Transcript dialects through POST /predict in process: what inputs.text says and which warnings come back."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import valid_answer
from tests.dialects import CLINICIAN, PATIENT, Turn, interview, plain_prefixed, truth, whisper_json, zoom_vtt
from tests.routes.helpers import problem

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _post(client: TestClient, data: bytes, name: str, **fields: str):
    return client.post("/predict", files={"transcript": (name, data)}, data={"include_timeline": "false", **fields})


def test_zoom_vtt_with_a_credentialed_clinician_and_a_dial_in_patient(app_client: TestClient) -> None:
    turns = interview()
    response = _post(app_client, zoom_vtt(turns).encode(), "t.vtt")
    assert response.status_code == 200, response.text
    text = valid_answer(response.json(), used={"text"}).inputs.text
    assert (text.format, text.encoding) == ("webvtt (zoom)", "utf-8")
    [selection] = text.selections
    assert selection.kind == "speaker" and selection.confident
    assert selection.rule.startswith("the only speaker without an interviewer or clinician label")
    expected = truth(turns)
    assert [(c.name, c.chosen) for c in selection.candidates] == [(CLINICIAN, False), (PATIENT, True)]
    patient = selection.candidates[1]
    assert patient.words == expected.words and patient.seconds == pytest.approx(expected.seconds)
    assert text.quality["words"] == expected.words and text.quality["utterances"] == 2 * len(turns[1::2])


def test_a_talkative_clinician_is_a_weak_choice_said_in_a_warning(app_client: TestClient) -> None:
    question = "Thank you for coming, I want to ask you about sleep, energy, appetite and mood over the weeks."
    answer = "I have been tired, I sleep badly and I feel low most days."
    turns = []
    for k in range(4):
        turns += [Turn(20 * k, 20 * k + 12, "Alex", question), Turn(20 * k + 12, 20 * k + 20, "Sam", answer)]
    response = _post(app_client, plain_prefixed(turns).encode(), "t.txt")
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"text"})
    [selection] = answer.inputs.text.selections
    assert not selection.confident
    weak = [w for w in answer.warnings if "weak rule" in w]
    assert len(weak) == 1 and "speaker 1 of 2" in weak[0] and "participant_speaker" in weak[0]
    assert not any("Alex" in w or "Sam" in w for w in answer.warnings)
    # naming the patient settles it
    response = _post(app_client, plain_prefixed(turns).encode(), "t.txt", participant_speaker="sam")
    answer = valid_answer(response.json(), used={"text"})
    assert answer.inputs.text.selections[0].confident and not any("weak rule" in w for w in answer.warnings)


def test_a_windows_1252_transcript_is_read_and_its_encoding_reported(app_client: TestClient) -> None:
    text = "Doctor: How have you been?\nPatient: " + " ".join(
        ["I went to the café again, it’s “fine” they say, but I was naïve to think it would help."] * 3
    )
    response = _post(app_client, text.encode("cp1252"), "t.txt")
    assert response.status_code == 200, response.text
    report = valid_answer(response.json(), used={"text"}).inputs.text
    assert report.encoding == "windows-1252" and report.format == "text"


def test_whisper_json_without_speakers_is_used_whole_with_a_warning(app_client: TestClient) -> None:
    response = _post(app_client, whisper_json(interview()).encode(), "t.json")
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"text"})
    assert answer.inputs.text.format == "whisper json" and answer.inputs.text.selections == []
    assert any("no speaker labels" in w for w in answer.warnings)


def test_a_french_transcript_is_not_used_and_says_why(app_client: TestClient) -> None:
    french = (
        "Je me sens très fatigué depuis quelques semaines. Je ne dors plus la nuit et je n'ai plus envie de voir "
        "mes amis. Le travail est difficile, je perds ma concentration pendant les réunions et je mange peu."
    )
    body = problem(_post(app_client, french.encode(), "t.txt"), 422, "no-usable-input")
    assert "the transcript is in French, the text model reads English" in body["detail"]
