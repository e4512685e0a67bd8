"""The speech stage through POST /predict in process: a recording without a transcript gets
the patient's voice for the audio branch and the patient's recognised words for the text
branch; a timed transcript without speakers is labelled from the voices; each step can be off.
Real models throughout (voice encoder, Moonshine, text encoder, fusion) on espeak-ng speech."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.pipeline.extraction import ExtractionModels
from app.speech.agreement import normalised_words
from tests.api.helpers import valid_answer
from tests.asr_clips import SENTENCES, word_error_rate
from tests.dialects import Turn, daic_tsv, whisper_json
from tests.interviews import PATIENT, SpokenInterview, interview
from tests.media import write_audio
from tests.routes.conftest import in_process
from tests.routes.helpers import problem

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[SpokenInterview, bytes]:
    # the patient in espeak-ng's plain voice, which speech recognition hears best (tests/asr_clips.py)
    spoken = interview("en+anika", "en-us", exchanges=6, answer_sentences=2)
    path = write_audio(spoken.samples, 16000, tmp_path_factory.mktemp("speech") / "call.wav")
    return spoken, Path(path).read_bytes()


def _post(client: TestClient, audio: bytes, transcript: tuple[str, bytes] | None = None, **fields: str):
    files = {"audio": ("call.wav", audio, "audio/wav")}
    if transcript is not None:
        files["transcript"] = transcript
    return client.post("/predict", files=files, data={"include_timeline": "false", **fields})


def test_a_bare_recording_gets_the_patients_voice_and_words(
    app_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    spoken, audio = recording
    response = _post(app_client, audio, return_transcript="true")
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    speakers = answer.inputs.speakers
    assert speakers.separated and speakers.count == 2 and speakers.participant == "speaker 1"
    assert speakers.seconds[0] == pytest.approx(spoken.seconds(PATIENT), rel=0.15)
    assert speakers.selection is not None and speakers.selection.confident
    # the audio branch kept the patient's turns only, and says which speaker that was
    audio_report = answer.inputs.audio
    assert audio_report.quality["participant_only"] == 1.0
    assert [s.kind for s in audio_report.selections] == ["speaker"]
    # the text branch read what the patient said, not the clinician's questions
    text = answer.inputs.text
    assert text.source == "speech recognition" and text.format.startswith("speech recognition")
    assert text.transcript is not None and {s.speaker for s in text.transcript} == {"speaker 1"}
    heard = " ".join(s.text for s in text.transcript)
    assert word_error_rate(spoken.patient_text, heard) < 0.3
    assert word_error_rate(spoken.clinician_text, heard) > 0.9
    assert text.quality["recognised_segments"] == len(text.transcript) == len(spoken.spans(PATIENT))
    assert text.quality["recognition_confidence"] >= 0.55
    assert text.quality["words"] == sum(len(s.text.split()) for s in text.transcript)
    for stage in ("separation", "recognition", "speech"):
        assert answer.timings_ms[stage] > 0
    # the words go back only when asked for
    again = _post(app_client, audio).json()
    assert again["inputs"]["text"]["transcript"] is None
    assert again["inputs"]["text"]["quality"]["words"] == text.quality["words"]


def test_naming_the_other_voice_analyses_that_voice_and_refuses_its_too_short_audio(
    app_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    spoken, audio = recording
    response = _post(app_client, audio, participant_speaker="speaker 2", return_transcript="true")
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"text"})
    assert answer.inputs.speakers.participant == "speaker 2"
    assert answer.inputs.speakers.selection.rule == "the option participant_speaker"
    heard = " ".join(s.text for s in answer.inputs.text.transcript)
    assert word_error_rate(spoken.clinician_text, heard) < 0.6 < word_error_rate(spoken.patient_text, heard)
    # the clinician's questions are seconds of speech: the audio branch says so and stays out
    assert answer.inputs.audio.reason.startswith("only") and "at least 30 s" in answer.inputs.audio.reason


def test_an_option_naming_no_separated_voice_is_a_422_that_quotes_nothing(
    app_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    _, audio = recording
    body = problem(_post(app_client, audio, participant_speaker="Dr Quillfeather"), 422, "conflicting-input")
    assert "speaker 1 to speaker 2" in body["detail"] and "Quillfeather" not in body["detail"]


def test_a_timed_transcript_without_speakers_is_labelled_from_the_voices(
    app_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    spoken, audio = recording
    turns = [Turn(start, end, "x", text) for (start, end, _), text in zip(spoken.turns, spoken.said, strict=True)]
    response = _post(app_client, audio, ("whisper.json", whisper_json(turns).encode()))
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    text = answer.inputs.text
    assert text.source is None and text.format == "whisper json"
    [selection] = text.selections
    assert selection.kind == "speaker" and [c.name for c in selection.candidates if c.chosen] == ["speaker 1"]
    # only the patient's lines: as many utterances as the patient had turns
    assert text.quality["utterances"] == len(spoken.spans(PATIENT))
    assert not any("no speaker labels" in w for w in answer.warnings)
    assert answer.inputs.audio.quality["participant_only"] == 1.0


@pytest.fixture(scope="module")
def speech_off_client(tmp_path_factory, extraction_models: ExtractionModels) -> Iterator[TestClient]:
    spool = tmp_path_factory.mktemp("spool-off")
    settings = Settings(spool_dir=spool, providers=["cpu"], speaker_separation="off", speech_recognition="off")
    with TestClient(create_app(settings, services=in_process(extraction_models))) as client:
        yield client


def test_each_step_turned_off_says_so_and_the_whole_track_is_analysed(
    speech_off_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    _, audio = recording
    response = _post(speech_off_client, audio)
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio"})
    assert answer.inputs.speakers.separated is False
    assert answer.inputs.speakers.reason == "speaker separation is off (setting speaker_separation)"
    off = "no transcript given, and speech recognition is off (setting speech_recognition)"
    assert answer.inputs.text.reason == off
    assert answer.inputs.audio.quality["participant_only"] == 0.0


def test_models_lists_the_speech_models_and_what_they_run_on(app_client: TestClient) -> None:
    speech = app_client.get("/models").json()["speech"]
    assert speech["voice_encoder"]["path"] == "voice_encoder/1"
    assert speech["speech_to_text"]["path"] == "speech_to_text/1"
    for name in ("voice_encoder", "speech_to_text"):
        assert speech[name]["execution_providers"] == ["CPUExecutionProvider"]
        assert speech[name]["setting"] == "auto"


def test_one_voice_is_analysed_whole_and_named(app_client: TestClient, tmp_path: Path) -> None:
    spoken = interview("en+anika", "en+anika", exchanges=6)
    audio = Path(write_audio(spoken.samples, 16000, tmp_path / "one.wav")).read_bytes()
    response = _post(app_client, audio)
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    assert answer.inputs.speakers.count == 1 and answer.inputs.speakers.selection.rule.startswith("the only voice")
    assert answer.inputs.audio.quality["participant_only"] == 0.0
    # with one voice everything said is the patient's: questions and answers alike
    words = len(spoken.patient_text.split()) + len(spoken.clinician_text.split())
    assert answer.inputs.text.quality["words"] == pytest.approx(words, rel=0.2)


def test_an_untimed_transcript_without_speakers_cannot_be_aligned_and_says_why(
    app_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    spoken, audio = recording
    plain = "\n".join(spoken.said).encode()
    response = _post(app_client, audio, ("notes.txt", plain))
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    assert answer.inputs.text.quality["utterances"] == len(spoken.said)  # every line, as sent
    [why] = [w for w in answer.warnings if "no times" in w]
    assert "every line was taken as the participant's" in why
    # the audio still kept the patient's voice only
    assert answer.inputs.speakers.count == 2 and answer.inputs.audio.quality["participant_only"] == 1.0


def _labelled_transcript(spoken: SpokenInterview, answers: list[str] | None = None) -> tuple[str, bytes]:
    """The interview as a timed, speaker-labelled transcript; ``answers`` replace the patient's lines."""
    answers = iter(answers) if answers is not None else None
    turns = []
    for (start, end, who), text in zip(spoken.turns, spoken.said, strict=True):
        if who == PATIENT and answers is not None:
            text = next(answers)
        turns.append(Turn(start, end, "Participant" if who == PATIENT else "Ellie", text))
    return "session.tsv", daic_tsv(turns).encode()


def test_a_sent_transcript_is_checked_against_what_the_recording_says(
    app_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    spoken, audio = recording
    response = _post(app_client, audio, _labelled_transcript(spoken))
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio", "text"})
    check = answer.inputs.text.check
    assert check is not None and check.ran and check.matches is True and check.reason is None
    assert check.agreement >= 0.5 and check.words_heard >= 20 and 0 < check.seconds_heard <= 30.0
    assert check.min_agreement == 0.25 and answer.timings_ms["transcript_check"] > 0
    # the transcript's own participant turns were heard: no separation ran
    assert answer.inputs.speakers.separated is False


def test_another_sessions_transcript_is_left_out_and_said_why_without_quoting_it(
    app_client: TestClient, recording: tuple[SpokenInterview, bytes]
) -> None:
    spoken, audio = recording
    # same questions, same times, another patient's answers (sentences the recording never says)
    others = [
        f"{SENTENCES[12 + (2 * k) % 10]} {SENTENCES[13 + (2 * k) % 10]}" for k in range(len(spoken.spans(PATIENT)))
    ]
    response = _post(app_client, audio, _labelled_transcript(spoken, others))
    assert response.status_code == 200, response.text
    answer = valid_answer(response.json(), used={"audio"})
    text = answer.inputs.text
    assert not text.used and text.reason.startswith("the transcript does not say what the recording says")
    assert text.check.ran and text.check.matches is False and text.check.agreement < 0.25
    assert any(w.startswith("the transcript was not used: the transcript does not say") for w in answer.warnings)
    # its turns were not trusted either: the audio branch heard the whole recording
    assert answer.inputs.audio.quality["participant_only"] == 0.0
    # no three words of either the transcript or the recording in a row anywhere in the answer
    body = " ".join(normalised_words([response.text]))
    for line in [*others, *spoken.said]:
        words = normalised_words([line])
        assert not [run for run in zip(words, words[1:], words[2:], strict=False) if " ".join(run) in body]
    # the caller who knows better turns the check off for the request
    trusted = _post(app_client, audio, _labelled_transcript(spoken, others), check_transcript="false")
    assert trusted.status_code == 200, trusted.text
    answer = valid_answer(trusted.json(), used={"audio", "text"})
    assert answer.inputs.text.check.ran is False
    assert answer.inputs.text.check.reason == "check_transcript=false was sent"
