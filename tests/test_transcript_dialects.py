"""Transcript dialects and the participant rule, on interviews the tests generate (tests/dialects.py)."""

from __future__ import annotations

import json

import pytest

from app.features.transcript import TranscriptError, label_parts, parse_transcript
from app.features.transcript.language import MIN_LANGUAGE_WORDS, identify
from tests.dialects import CLINICIAN, DIALECTS, PATIENT, Dialect, Turn, interview, plain_prefixed, truth, zoom_vtt


def participant_figures(data: str, name: str, option: str | None = None):
    transcript = parse_transcript(data.encode(), name)
    selection = transcript.select_participant(option)
    mine = transcript.utterances_of(selection)
    words = sum(len(u.text.split()) for u in mine)
    timed = [u for u in mine if u.start_s is not None and u.end_s is not None]
    seconds = round(sum(u.end_s - u.start_s for u in timed), 3) if len(timed) == len(mine) else None
    return transcript, selection, mine, words, seconds


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: f"{d.name}-{d.write.__name__}")
def test_every_dialect_gives_the_participant_of_the_generated_ground_truth(dialect: Dialect) -> None:
    turns = interview()
    expected = truth(turns, PATIENT if dialect.speakers else None, dialect.pieces_per_turn)
    transcript, selection, mine, words, seconds = participant_figures(
        dialect.write(turns), f"interview.{dialect.extension}"
    )
    assert transcript.dialect == dialect.name
    assert (len(mine), words) == (expected.utterances, expected.words)
    if dialect.timed_ends:
        assert seconds == pytest.approx(expected.seconds, abs=0.01)
    else:
        assert seconds is None
    if not dialect.speakers:
        assert selection is None and "no speaker labels" in transcript.unlabelled_warning()
        return
    assert selection.confident and selection.warning is None
    assert len(selection.chosen) == 1 and len(selection.speakers) == 2
    chosen = next(s for s in selection.speakers if s.label in selection.chosen)
    assert chosen.words == expected.words
    if dialect.timed_ends:
        assert chosen.seconds == pytest.approx(expected.seconds, abs=0.01)
    # the formats that keep names keep them as written; the clinician's title never wins
    if "aws" not in dialect.name and "whisperx" not in dialect.name:
        assert selection.chosen == (PATIENT,)
        assert selection.rule.startswith("the only speaker without an interviewer or clinician label")


def test_zoom_continuation_cues_keep_their_speaker() -> None:
    transcript = parse_transcript(zoom_vtt(interview()).encode(), "zoom.vtt")
    assert transcript.speakers == [CLINICIAN, PATIENT]
    assert all(u.speaker is not None for u in transcript.utterances)
    # every participant answer is two cues, both the patient's
    assert [u.speaker for u in transcript.utterances[2:4]] == [PATIENT, PATIENT]


@pytest.mark.parametrize(
    ("label", "name", "clinician"),
    [
        ("Dr. Ada Quill, PsyD", "ada quill", True),
        ("Ada Quill PhD", "ada quill", True),
        ("Jane Doe, DO", "jane doe", True),
        ("Sam Rivera (he/him)", "sam rivera", False),
        ("Sam  Rivera (they/them),", "sam rivera", False),
        ("Mr. Sam Rivera", "sam rivera", False),
        ("Therapist", "therapist", True),
        ("Interviewer 2", "interviewer 2", True),
        ("+1 (415) 555-0134", "14155550134", False),
        ("Speaker 2", "speaker 2", False),
    ],
)
def test_label_normalisation_and_clinician_markers(label: str, name: str, clinician: bool) -> None:
    parts = label_parts(label)
    assert parts.name == name and bool(parts.clinician_markers) == clinician and parts.plausible


def test_participant_speaker_accepts_the_label_as_written_or_normalised() -> None:
    turns = interview(clinician="Alex Moreno, LCSW", patient="Sam Rivera (he/him)")
    data = zoom_vtt(turns)
    for option in ("Sam Rivera (he/him)", "sam   rivera (HE/HIM)", "Sam Rivera", " SAM RIVERA "):
        _, selection, _, words, _ = participant_figures(data, "a.vtt", option)
        assert selection.chosen == ("Sam Rivera (he/him)",) and selection.rule == "the option participant_speaker"
        assert words == truth(turns, "Sam Rivera (he/him)").words
    # the clinician can be named too (an interview where the roles are the other way round)
    _, selection, *_ = participant_figures(data, "a.vtt", "alex moreno")
    assert selection.chosen == ("Alex Moreno, LCSW",)


def test_otter_speaker_numbers_work_as_participant_speaker() -> None:
    turns = interview(clinician="Speaker 1", patient="Speaker 2")
    from tests.dialects import otter_txt

    _, selection, _, words, _ = participant_figures(otter_txt(turns), "otter.txt", "speaker 2")
    assert selection.chosen == ("Speaker 2",) and words == truth(turns, "Speaker 2").words


def test_a_talkative_clinician_gives_a_weak_choice_and_a_warning_without_names() -> None:
    # unlabelled roles; the clinician explains at length and asks the questions
    turns = [
        Turn(0, 10, "Alex", "Thank you for coming in, I want to go through a few questions about the last weeks."),
        Turn(10, 14, "Sam", "Yes that is fine, I have been feeling very tired."),
        Turn(14, 24, "Alex", "I see, many people notice that, can you tell me more about how you sleep at night?"),
        Turn(24, 30, "Sam", "I wake up at four and I cannot get back to sleep again."),
    ]  # fmt: skip
    _, selection, *_ = participant_figures(plain_prefixed(turns), "t.txt")
    assert selection.chosen == ("Alex",) and not selection.confident
    assert "speaker 1 of 2" in selection.warning and "participant_speaker" in selection.warning
    assert "Alex" not in selection.warning and "Sam" not in selection.warning
    assert "ask more of the questions" in selection.warning


def test_a_clear_word_ratio_is_a_confident_choice() -> None:
    turns = [Turn(0, 2, "A", "How are you?"), Turn(2, 9, "B", "I have been exhausted all week and nothing helps")]
    _, selection, *_ = participant_figures(plain_prefixed(turns), "t.txt")
    assert selection.chosen == ("B",) and selection.confident and selection.warning is None
    assert [(s.label, s.words) for s in selection.speakers] == [("A", 3), ("B", 9)]


def test_three_unnamed_speakers_ask_for_participant_speaker_and_quote_no_label() -> None:
    names = ("Zebulon", "Quixote", "Marcy")
    turns = [Turn(i, i + 1, name, "a few words") for i, name in enumerate(names)]
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(plain_prefixed(turns).encode()).select_participant()
    message = str(caught.value)
    assert "3 speakers" in message and "participant_speaker" in message
    assert not any(name in message for name in names)


def test_a_clinician_with_two_others_uses_the_two_speaker_rule_on_the_others() -> None:
    turns = [
        Turn(0, 2, "Dr. Lee", "How have things been?"),
        Turn(2, 9, "Robin", "Hard, I have not been sleeping and I feel low most of the day."),
        Turn(9, 10, "Casey", "It is true."),
    ]
    _, selection, *_ = participant_figures(plain_prefixed(turns), "t.txt")
    assert selection.chosen == ("Robin",) and "leaving out the interviewer" in selection.rule


def test_phone_number_prefixes_are_speakers_in_plain_text_too() -> None:
    transcript = parse_transcript(b"Dr. Lee, MD: How are you?\n+1 415 555 0134: Tired, mostly.\n")
    assert transcript.speakers == ["Dr. Lee, MD", "+1 415 555 0134"]
    assert transcript.participant_labels() == ["+1 415 555 0134"]


def test_prose_with_a_colon_is_not_a_speaker_label() -> None:
    transcript = parse_transcript(b"Well, honestly: I do not know.\nIt has been hard.\nMost days.\n")
    assert transcript.speakers == []


def test_windows_1252_transcript_is_decoded_and_reported() -> None:
    text = "Doctor: How are you?\nPatient: I went to the café, it’s “fine”, I was naïve about it.\n"
    transcript = parse_transcript(text.encode("cp1252"), "t.txt")
    assert transcript.encoding == "windows-1252"
    assert transcript.utterances[1].text == "I went to the café, it’s “fine”, I was naïve about it."


@pytest.mark.parametrize(
    "broken",
    [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf0\x80\x80\xaf"],
    ids=["overlong-2", "overlong-3", "encoded-surrogate", "overlong-4"],
)
def test_utf8_with_forbidden_forms_is_refused_not_read_as_a_code_page(broken: bytes) -> None:
    good = "Patient: I feel tired and I do not sleep well, and that is café talk.\n".encode()
    with pytest.raises(TranscriptError, match="not valid UTF-8"):
        parse_transcript(good[:20] + broken + good[20:], "t.txt")


def test_a_code_page_byte_pair_that_looks_like_an_overlong_form_is_still_that_code_page() -> None:
    # "Á" (C1) then "©" (A9) in Windows-1252 is an overlong pair in UTF-8 terms; the file
    # also holds "é" (E9) alone, which no UTF-8 writer produces, so it is a code page
    text = "Patient: ÁLVARO© said the café was fine.\n"
    transcript = parse_transcript(text.encode("cp1252"), "t.txt")
    assert transcript.encoding == "windows-1252"
    assert transcript.utterances[0].text.startswith("ÁLVARO©")


def test_aws_output_without_diarisation_is_one_unlabelled_stream() -> None:
    turns = interview()
    parsed = json.loads(DIALECTS[7].write(turns))
    del parsed["results"]["speaker_labels"]
    transcript = parse_transcript(json.dumps(parsed).encode())
    assert transcript.dialect == "aws transcribe json" and transcript.speakers == []
    assert sum(len(u.text.split()) for u in transcript.utterances) == truth(turns, None).words
    assert transcript.unlabelled_warning() is not None


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        ('{"results": {"items": [{"type": "pronunciation", "start_time": "x", "alternatives": [{"content": "a"}]}]}}',
         "aws transcribe json"),
        ('{"results": {"items": [{"type": "pronunciation", "alternatives": []}]}}', "aws transcribe json"),
        ("0:00:01.000,0:00:04.000\nhello\n\n0:00:09.000,0:00:05.000\nthere\n", "sbv"),
        ("Speaker 1  0:05\nhello\n\nSpeaker 2  0:03\nthere\n", "otter txt"),
    ],
)  # fmt: skip
def test_malformed_dialects_name_format_and_place(data: str, fmt: str) -> None:
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(data.encode())
    assert caught.value.format == fmt


def test_language_needs_enough_words_and_tells_english_from_french() -> None:
    assert identify(["yeah", "okay I guess"]).code is None
    disfluent = [
        "um yeah i have been so tired lately uh",
        "work is stressful you know",
        "and i sleep badly at night",
    ]
    english = identify(disfluent)
    assert english.code == "en" and not english.clearly_not_english
    french = identify(
        [
            "Je me sens très fatigué depuis quelques semaines.",
            "Je ne dors plus et je n'ai plus du tout envie de sortir.",
        ]
    )
    assert french.words >= MIN_LANGUAGE_WORDS and french.clearly_not_english and french.name == "French"
