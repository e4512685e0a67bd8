"""Transcript dialects against a real server: the speaker choice on the wire, and no speaker name leaks.

Speaker labels are people's names: they may come back in ``inputs.text.selections`` (the
caller sent them) and nowhere else: not in a problem detail, a warning or a log line.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.conftest import RunningServer
from tests.api.helpers import problem, valid_answer
from tests.dialects import (
    CLINICIAN,
    DIALECTS,
    PATIENT,
    Dialect,
    Turn,
    aws_json,
    interview,
    plain_prefixed,
    truth,
    zoom_vtt,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")

NAME = "Zebulon Quixote-Marchbanks"
NAME_PARTS = (NAME, "Zebulon", "Quixote", "Marchbanks")


def _post(url: str, data: bytes, name: str, **fields: str) -> httpx.Response:
    files = {"transcript": (name, data, "application/octet-stream")}
    return httpx.post(url + "/predict", files=files, data={"include_timeline": "false", **fields}, timeout=120)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"{d.name}-{d.write.__name__}")
def test_every_dialect_on_the_wire_analyses_the_generated_participant(
    running_server: RunningServer, dialect: Dialect
) -> None:
    turns = interview()
    expected = truth(turns, PATIENT if dialect.speakers else None, dialect.pieces_per_turn)
    response = _post(running_server.url, dialect.write(turns).encode(), f"interview.{dialect.extension}")
    assert response.status_code == 200, response.text
    result = valid_answer(response.json(), used={"text"})
    text = result.inputs.text
    assert text.format == dialect.name
    # what the text branch analysed is the participant's speech and nothing else
    assert (text.quality["utterances"], text.quality["words"]) == (expected.utterances, expected.words)
    if not dialect.speakers:
        assert text.selections == [] and any("no speaker labels" in w for w in result.warnings)
        return
    [selection] = text.selections
    assert selection.confident
    [chosen] = [c for c in selection.candidates if c.chosen]
    assert chosen.words == expected.words
    if dialect.timed_ends:
        assert chosen.seconds == pytest.approx(expected.seconds, abs=0.01)


def test_zoom_vtt_picks_the_dial_in_patient_over_the_credentialed_clinician(running_server: RunningServer) -> None:
    turns = interview()
    response = _post(running_server.url, zoom_vtt(turns).encode(), "meeting.vtt")
    assert response.status_code == 200, response.text
    text = valid_answer(response.json(), used={"text"}).inputs.text
    assert text.format == "webvtt (zoom)" and text.encoding == "utf-8"
    [selection] = text.selections
    assert selection.kind == "speaker" and selection.confident
    expected = truth(turns)
    assert [(c.name, c.chosen) for c in selection.candidates] == [(CLINICIAN, False), (PATIENT, True)]
    assert selection.candidates[1].words == expected.words
    assert selection.candidates[1].seconds == pytest.approx(expected.seconds)


def test_a_talkative_clinician_comes_back_as_a_weak_choice_with_a_warning(running_server: RunningServer) -> None:
    question = "Thank you, I would like to hear more about how your sleep, energy and mood have been, if that is ok?"
    answer = "I have been tired, I sleep badly and I feel low most days, and I cannot concentrate."
    turns = []
    for k in range(4):
        turns += [Turn(20 * k, 20 * k + 12, "Speaker 1", question), Turn(20 * k + 12, 20 * k + 20, "Speaker 2", answer)]
    response = _post(running_server.url, plain_prefixed(turns).encode(), "t.txt")
    assert response.status_code == 200, response.text
    result = valid_answer(response.json(), used={"text"})
    [selection] = result.inputs.text.selections
    assert not selection.confident and [c.chosen for c in selection.candidates] == [True, False]
    [weak] = [w for w in result.warnings if "weak rule" in w]
    assert "speaker 1 of 2" in weak and "ask more of the questions" in weak and "participant_speaker" in weak


def test_a_windows_1252_upload_is_read_and_reported(running_server: RunningServer) -> None:
    text = "Therapist: How are you?\nClient: " + "I went to the café, it’s “fine”, I was naïve to think so. " * 4
    response = _post(running_server.url, text.encode("cp1252"), "t.txt")
    assert response.status_code == 200, response.text
    assert valid_answer(response.json(), used={"text"}).inputs.text.encoding == "windows-1252"


def test_speaker_names_appear_in_no_problem_detail_warning_or_log_line(running_server: RunningServer) -> None:
    url = running_server.url
    named = interview(clinician=f"Dr. {NAME}, PsyD", patient=NAME)
    three = [Turn(i, i + 1, label, "I have been feeling low for weeks.") for i, label in enumerate((NAME, "B", "C"))]
    aws = json.loads(aws_json(named))
    aws["results"]["speaker_labels"]["segments"][0]["speaker_label"] = [NAME]  # not a string
    aws["results"]["items"][0]["speaker_label"] = {"name": NAME}
    bad = [
        # a participant_speaker that matches no label
        (zoom_vtt(named).encode(), "t.vtt", {"participant_speaker": "Someone Else"}),
        # a participant_speaker on a transcript without labels
        (b"I have been feeling low.\n" * 10, "t.txt", {"participant_speaker": NAME}),
        # three speakers and none named the participant
        (plain_prefixed(three).encode(), "t.txt", {}),
        # a malformed cue holding the name
        (f"WEBVTT\n\n00:00:01.000 --> 00:00:xx.000\n{NAME}: hello\n".encode(), "t.vtt", {}),
        (f"0:00:01.000,0:00:04.000\n{NAME}: hi\n\n0:00:09.000,0:00:02.000\n{NAME}: x\n".encode(), "t.sbv", {}),
        # AWS output with the name where a label string should be
        (json.dumps(aws).encode(), "t.json", {}),
        # the only speaker is a clinician
        (f"Dr. {NAME}: I have been feeling low.\n".encode() * 10, "t.txt", {}),
    ]
    for data, name, fields in bad:
        response = _post(url, data, name, **fields)
        body = problem(response, 422, "invalid-transcript")
        assert not any(part.lower() in response.text.lower() for part in NAME_PARTS), body["detail"]
    # good requests whose warnings talk about the speakers: by position only
    weak = [
        Turn(0, 10, f"{NAME}", "Thank you, can you tell me more about your sleep, energy and mood, if that is ok?"),
        Turn(10, 16, "Robin Okafor", "I have been tired and I sleep badly most nights, I feel low."),
    ] * 3
    for data, name in ((plain_prefixed(weak).encode(), "t.txt"), (zoom_vtt(named).encode(), "t.vtt")):
        response = _post(url, data, name)
        assert response.status_code == 200, response.text
        answer = valid_answer(response.json(), used={"text"})
        warnings = " ".join(answer.warnings).lower()
        assert not any(part.lower() in warnings for part in NAME_PARTS), answer.warnings
    log = running_server.log().lower()
    assert not any(part.lower() in log for part in NAME_PARTS)
