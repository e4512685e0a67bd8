"""The speech stage's decisions (app/speech/hearing.py): which voice is the patient, what the
client's option may name, how an unlabelled timed transcript is labelled, and what happens
when a model or a step is missing. Real models where a step runs (tests/test_speaker_turns.py
and tests/test_speech_recognition.py test the models themselves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.errors import ConflictingInputError
from app.features.transcript import Utterance, is_question
from app.runtime import CPU_DEFAULT
from app.speech import hearing
from app.speech.hearing import Heard, SpeechModels, choose_participant, label_utterances, option_index
from tests.asr_clips import SENTENCES, spoken_clip, word_error_rate
from tests.interviews import QUESTIONS
from tests.media import speech_signal

STORE = Path("model_store")


@pytest.fixture(scope="module")
def models() -> SpeechModels:
    return SpeechModels.load(STORE, CPU_DEFAULT)


# -- the client's option ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "index"), [("speaker 1", 0), ("Speaker 2", 1), ("  SPEAKER 3 ", 2), ("speaker3", 2)]
)
def test_option_names_a_separated_speaker_by_the_answers_label(option: str, index: int) -> None:
    assert option_index(option, 3) == index


@pytest.mark.parametrize("option", ["speaker 4", "speaker 0", "Dr Quillfeather", "2", "speaker two"])
def test_option_naming_no_separated_speaker_is_a_422_that_quotes_nothing(option: str) -> None:
    with pytest.raises(ConflictingInputError) as raised:
        option_index(option, 3)
    detail = str(raised.value)
    assert "speaker 1 to speaker 3" in detail
    assert "Quillfeather" not in detail and "two" not in detail


def test_no_option_names_nobody() -> None:
    assert option_index(None, 2) is None


# -- which voice is the patient ------------------------------------------------------------------


def test_the_only_voice_is_the_patient_confidently() -> None:
    chosen, selection, warning = choose_participant([42.0], None)
    assert chosen == 0 and selection.confident and warning is None
    assert [c.name for c in selection.candidates] == ["speaker 1"]


def test_a_clear_lead_in_speech_chooses_confidently() -> None:
    chosen, selection, warning = choose_participant([30.0, 90.0], None)
    assert chosen == 1 and selection.confident and warning is None
    assert [c.chosen for c in selection.candidates] == [False, True]
    assert [c.seconds for c in selection.candidates] == [30.0, 90.0]


def test_a_narrow_lead_chooses_but_warns_and_names_the_option() -> None:
    chosen, selection, warning = choose_participant([60.0, 50.0], None)
    assert chosen == 0 and not selection.confident
    assert warning is not None and "participant_speaker" in warning and "weak rule" in warning


def test_the_option_overrides_the_rule() -> None:
    chosen, selection, warning = choose_participant([100.0, 10.0], 1)
    assert chosen == 1 and selection.confident and warning is None
    assert selection.rule == "the option participant_speaker"


# -- an unlabelled timed transcript, labelled from the turns ------------------------------------------


def test_each_timed_line_goes_to_the_speaker_talking_most_inside_its_times() -> None:
    heard = Heard(speakers=2, labelled_turns=[(0.0, 4.0, 1), (4.5, 20.0, 0), (20.5, 22.0, 1)])
    lines = [
        Utterance("how are you", 0.2, 3.9, None),
        Utterance("not so well lately", 4.6, 19.0, None),
        Utterance("straddles mostly the first", 3.0, 10.0, None),
        Utterance("in silence", 30.0, 31.0, None),
        Utterance("untimed", None, None, None),
    ]
    labelled = label_utterances(lines, heard)
    assert [u.speaker for u in labelled] == ["speaker 2", "speaker 1", "speaker 1", None, None]
    assert [u.text for u in labelled] == [u.text for u in lines]


# -- steps that do not run say why ---------------------------------------------------------------


def test_without_models_neither_step_runs_and_each_says_why() -> None:
    signal = np.zeros(16000, np.float32)
    heard = hearing.hear(
        signal, SpeechModels(None, None), separation_skipped=None, recognition_skipped=None, participant_speaker=None
    )
    assert heard.separation_skipped == "the model store has no voice encoder"
    assert heard.recognition_skipped == "the model store has no speech-to-text model"
    assert not heard.separated and not heard.recognised and heard.utterances == []


def test_a_step_turned_off_keeps_the_callers_reason(models: SpeechModels) -> None:
    signal = np.zeros(16000, np.float32)
    heard = hearing.hear(
        signal, models, separation_skipped="off by setting", recognition_skipped="a transcript was sent",
        participant_speaker=None,
    )
    assert (heard.separation_skipped, heard.recognition_skipped) == ("off by setting", "a transcript was sent")
    assert heard.timings_ms == {}


# -- recognition of the patient's turns ----------------------------------------------------------------


def test_recognition_without_separation_hears_everything_and_warns(models: SpeechModels) -> None:
    sentences = SENTENCES[:3]
    signal, _ = spoken_clip(sentences)
    heard = hearing.hear(
        signal, models, separation_skipped="off", recognition_skipped=None, participant_speaker=None
    )
    assert heard.recognised and len(heard.utterances) == 1
    assert word_error_rate(" ".join(sentences), heard.utterances[0].text) < 0.3
    assert heard.utterances[0].speaker is None
    assert any("every voice" in w for w in heard.warnings)
    assert heard.recognition["confidence"] >= hearing.MIN_RECOGNITION_CONFIDENCE
    assert heard.recognition["words"] == len(heard.utterances[0].text.split())


def test_recognition_makes_one_timed_labelled_utterance_per_turn_of_the_patient(models: SpeechModels) -> None:
    sentences = SENTENCES[3:6]
    signal, spans = spoken_clip(sentences, gap_s=1.0)
    end = signal.shape[0] / 16000
    heard = Heard(participant=0, speakers=1, turns=[*spans, (end - 0.2, end)])
    hearing.recognise(signal, heard, models.recogniser)
    # the last, too-short turn is not sent to the recogniser
    times = [t for u in heard.utterances for t in (u.start_s, u.end_s)]
    assert times == pytest.approx([t for span in spans for t in span])
    assert all(u.speaker == "speaker 1" for u in heard.utterances)
    for sentence, utterance in zip(sentences, heard.utterances, strict=True):
        assert word_error_rate(sentence, utterance.text) < 0.35
    assert heard.recognition["segments"] == 3
    assert heard.recognition["seconds"] == pytest.approx(sum(e - s for s, e in spans), abs=0.01)
    assert "recognition" in heard.timings_ms


# -- a voice that asks the questions is not the patient -----------------------------------------


def _questions_only() -> np.ndarray:
    gap = np.zeros(round(0.7 * 16000), np.float32)
    return np.concatenate([np.concatenate([speech_signal(q, voice="en-us+m3"), gap]) for q in QUESTIONS * 2])


def _taciturn_patient() -> np.ndarray:
    """The clinician asks three questions a turn and speaks more; the patient answers in a sentence."""
    gap = np.zeros(round(0.7 * 16000), np.float32)
    parts = []
    for k in range(6):
        asked = " ".join(QUESTIONS[(k + j) % len(QUESTIONS)] for j in range(3))
        parts += [speech_signal(asked, voice="en-us+m3"), gap, speech_signal(SENTENCES[k], voice="en+anika"), gap]
    return np.concatenate(parts)


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("How have you been sleeping?", True),
        ("How have you been sleeping", True),  # speech recognition dropped the mark
        ("And is your appetite good", True),
        ("Tell me more about that.", True),
        ("When the weather is nice I like to walk by the river.", False),
        ("I have not been sleeping well lately.", False),
        ("", False),
    ],
)
def test_a_question_reads_as_one_with_or_without_its_mark(text: str, question: bool) -> None:
    assert is_question(text) is question


def test_the_only_voice_asking_questions_is_not_scored_as_the_patient(models: SpeechModels) -> None:
    heard = hearing.hear(
        _questions_only(), models, separation_skipped=None, recognition_skipped=None, participant_speaker=None
    )
    assert heard.speakers == 1 and heard.interviewer is not None
    assert "the only voice heard sounds like the interviewer" in heard.interviewer
    assert "participant_speaker to speaker 1" in heard.interviewer
    # named by the client, the same voice is analysed
    named = hearing.hear(
        _questions_only(), models, separation_skipped=None, recognition_skipped=None, participant_speaker="speaker 1"
    )
    assert named.interviewer is None and named.utterances


def test_when_the_interviewer_speaks_most_the_speaker_who_answers_is_the_patient(models: SpeechModels) -> None:
    heard = hearing.hear(
        _taciturn_patient(), models, separation_skipped=None, recognition_skipped=None, participant_speaker=None
    )
    assert heard.speakers == 2 and heard.speaker_seconds[0] > heard.speaker_seconds[1]
    assert heard.participant == 1 and heard.interviewer is None
    assert heard.selection is not None and not heard.selection.confident
    assert heard.selection.rule.startswith("the speaker who answers")
    assert [c.chosen for c in heard.selection.candidates] == [False, True]
    # the patient's words, not the questions, and one warning about the choice (the weak-rule one is gone)
    assert word_error_rate(" ".join(SENTENCES[:6]), " ".join(u.text for u in heard.utterances)) < 0.5
    assert {u.speaker for u in heard.utterances} == {"speaker 2"}
    assert sum(w.startswith("the patient was taken to be") for w in heard.warnings) == 1
    assert heard.turns and all((a, b) not in heard.other_turns for a, b in heard.turns)
