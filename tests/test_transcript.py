"""Transcript parsing: formats, detection, participant selection, validation and privacy of errors."""

from __future__ import annotations

import json

import pytest

from app.features.transcript import (
    TranscriptError,
    Utterance,
    parse_transcript,
    word_count,
)

# A sentence nobody else writes: error messages must never contain it.
SECRET = "my neighbour Bartholomew hides the quince jam"

WEBVTT = """WEBVTT - session 12
Kind: captions

NOTE written by hand,
over two lines

STYLE
::cue { color: yellow }

intro
00:00:01.000 --> 00:00:04.000 align:start
<v Ellie>How are you doing today?</v>

00:05.000 --> 00:09.500
<v.loud Participant>I've been <i>really</i> tired
lately. [laughter]</v>

3
00:00:10.000 --> 00:00:11.000
<v Participant>[sigh]</v>

00:00:12.000 --> 00:00:14.250
<v Ellie>Okay.</v><v Participant>Yeah &amp; not sleeping.</v>
"""

SRT = """1
00:00:01,000 --> 00:00:04,000
Therapist: How have you been sleeping?

2
00:00:05,000 --> 00:00:09,000
Jane: Not well, I wake up at four
and can't get back to sleep.

3
00:00:10,000 --> 00:00:12,000
(laughs)

4
00:01:02,500 --> 00:01:03,000
Jane: <i>Every</i> night.
"""

DAIC_TSV = (
    "start_time\tstop_time\tspeaker\tvalue\n"
    "36.588\t39.668\tEllie\thi i'm ellie thanks for coming in today\n"
    "62.328\t63.178\tParticipant\tgood\n"
    "63.5\t64.0\tParticipant\tscrubbed_entry\n"
    "70\t75.2\tParticipant\ti'm from <laughter> the city\n"
)

EDAIC_CSV = 'Start_Time,End_Time,Text,Confidence\n1.2,3.4,"well, i guess so",0.93\n4,5.5,i feel okay,0.81\n'

WHISPER_JSON = {
    "text": " I feel down. Yes.",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 2.5, "text": " I feel down.", "avg_logprob": -0.2},
        {"id": 1, "seek": 0, "start": 3.0, "end": 4.0, "text": " Yes."},
    ],
    "language": "en",
}


def texts(utterances: list[Utterance]) -> list[str]:
    return [u.text for u in utterances]


# ---------------------------------------------------------------- formats


def test_webvtt_voices_times_and_skipped_blocks() -> None:
    transcript = parse_transcript(WEBVTT.encode(), "session.vtt")
    assert transcript.format == "webvtt"
    assert transcript.has_timestamps
    assert transcript.speakers == ["Ellie", "Participant"]
    # The [sigh]-only cue is dropped; a cue with two voices gives two utterances with its times.
    assert transcript.utterances == [
        Utterance("How are you doing today?", 1.0, 4.0, "Ellie"),
        Utterance("I've been really tired lately.", 5.0, 9.5, "Participant"),
        Utterance("Okay.", 12.0, 14.25, "Ellie"),
        Utterance("Yeah & not sleeping.", 12.0, 14.25, "Participant"),
    ]


def test_webvtt_speaker_prefixes_without_voice_tags() -> None:
    data = b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nDr Lee: Hello there\n\n00:00:03.000 --> 00:00:05.000\nSam: Hi\n"
    transcript = parse_transcript(data)
    assert [(u.speaker, u.text) for u in transcript.utterances] == [("Dr Lee", "Hello there"), ("Sam", "Hi")]


def test_srt_prefixes_multiline_cues_and_annotations() -> None:
    transcript = parse_transcript(SRT.encode(), "session.srt")
    assert transcript.format == "srt"
    assert transcript.speakers == ["Therapist", "Jane"]
    assert transcript.utterances == [
        Utterance("How have you been sleeping?", 1.0, 4.0, "Therapist"),
        Utterance("Not well, I wake up at four and can't get back to sleep.", 5.0, 9.0, "Jane"),
        Utterance("Every night.", 62.5, 63.0, "Jane"),
    ]


def test_srt_text_after_a_blank_line_continues_the_cue() -> None:
    data = b"1\n00:00:01,000 --> 00:00:02,000\nfirst part\n\nsecond part\n\n2\n00:00:03,000 --> 00:00:04,000\nnext\n"
    assert texts(parse_transcript(data).utterances) == ["first part second part", "next"]


def test_daic_woz_tsv_drops_scrubbed_entries_and_tags() -> None:
    transcript = parse_transcript(DAIC_TSV.encode(), "300_TRANSCRIPT.csv")
    assert transcript.format == "tsv"
    assert transcript.speakers == ["Ellie", "Participant"]
    assert transcript.utterances == [
        Utterance("hi i'm ellie thanks for coming in today", 36.588, 39.668, "Ellie"),
        Utterance("good", 62.328, 63.178, "Participant"),
        Utterance("i'm from the city", 70.0, 75.2, "Participant"),
    ]


def test_daic_woz_tsv_keeps_quotes_and_tabs_inside_values() -> None:
    data = b'start_time\tstop_time\tspeaker\tvalue\n1\t2\tParticipant\tshe said "no\tway"\n'
    assert texts(parse_transcript(data).utterances) == ['she said "no way"']


def test_headerless_daic_woz_rows() -> None:
    data = b"1.5\t2.5\tEllie\thow are you\n3\t4\tParticipant\tfine\n"
    transcript = parse_transcript(data)
    assert transcript.format == "tsv"
    assert transcript.utterances[1] == Utterance("fine", 3.0, 4.0, "Participant")


def test_edaic_csv_without_speakers() -> None:
    transcript = parse_transcript(EDAIC_CSV.encode(), "300_Transcript.csv")
    assert transcript.format == "csv"
    assert transcript.speakers == []
    assert transcript.utterances == [
        Utterance("well, i guess so", 1.2, 3.4, None),
        Utterance("i feel okay", 4.0, 5.5, None),
    ]
    assert transcript.participant(None) == transcript.utterances


def test_json_segment_list_with_speakers() -> None:
    segments = [
        {"start": 0, "end": 1.5, "text": "How are you?", "speaker": "SPEAKER_00"},
        {"start": "2.0", "end": 4, "text": "Tired, mostly.", "speaker": "SPEAKER_01"},
        {"start": 4.5, "end": 5, "text": "  "},
    ]
    transcript = parse_transcript(json.dumps(segments).encode(), "out.json")
    assert transcript.format == "json"
    assert transcript.speakers == ["SPEAKER_00", "SPEAKER_01"]
    assert transcript.utterances == [
        Utterance("How are you?", 0.0, 1.5, "SPEAKER_00"),
        Utterance("Tired, mostly.", 2.0, 4.0, "SPEAKER_01"),
    ]


def test_whisper_output() -> None:
    transcript = parse_transcript(json.dumps(WHISPER_JSON).encode())
    assert transcript.format == "json"
    assert transcript.utterances == [Utterance("I feel down.", 0.0, 2.5, None), Utterance("Yes.", 3.0, 4.0, None)]
    text_only = parse_transcript(json.dumps({"text": "I feel down. Yes."}).encode())
    assert texts(text_only.utterances) == ["I feel down.", "Yes."]
    assert not text_only.has_timestamps


def test_plain_text_lines() -> None:
    transcript = parse_transcript(b"I have not been sleeping\n\n  nothing   feels fun  \n")
    assert transcript.format == "text"
    assert not transcript.has_timestamps
    assert texts(transcript.utterances) == ["I have not been sleeping", "nothing feels fun"]


def test_plain_text_single_paragraph_is_split_into_sentences() -> None:
    data = b"I have been feeling low. I can't sleep at night! Dr. Smith told me to rest. Does it help? not really"
    assert texts(parse_transcript(data).utterances) == [
        "I have been feeling low.",
        "I can't sleep at night!",
        "Dr. Smith told me to rest.",
        "Does it help?",
        "not really",
    ]


def test_plain_text_hard_wrapped_prose_is_rejoined() -> None:
    data = (
        b"I have been feeling very low for the past few\n"
        b"weeks and I do not really know why it started but\n"
        b"it is getting harder to get up in the morning. And\n"
        b"I stopped seeing friends."
    )
    assert texts(parse_transcript(data).utterances) == [
        "I have been feeling very low for the past few weeks and I do not really know why it started but "
        "it is getting harder to get up in the morning.",
        "And I stopped seeing friends.",
    ]


def test_plain_text_speaker_prefixes_and_continuation_lines() -> None:
    data = b"Doctor: How is your appetite?\nPatient: Not great.\nI skip meals.\nDoctor: Since when?\n"
    transcript = parse_transcript(data)
    assert transcript.speakers == ["Doctor", "Patient"]
    assert transcript.utterances[1] == Utterance("Not great. I skip meals.", None, None, "Patient")


def test_plain_text_colon_in_one_line_of_many_is_not_a_speaker() -> None:
    data = b"I made a list of things\nReason: none really\nit just happens\nand I go to bed early\n"
    transcript = parse_transcript(data)
    assert transcript.speakers == []
    assert "Reason: none really" in texts(transcript.utterances)


def test_word_count() -> None:
    assert word_count("  I   can't\tsleep \n at all ") == 5
    assert word_count("") == 0


# ---------------------------------------------------------------- participant selection


def test_explicit_participant_is_case_insensitive() -> None:
    transcript = parse_transcript(WEBVTT.encode())
    assert texts(transcript.participant("ellie")) == ["How are you doing today?", "Okay."]
    assert transcript.participant_labels(" PARTICIPANT ") == ["Participant"]


def test_unknown_participant_says_how_many_speakers_never_which() -> None:
    transcript = parse_transcript(WEBVTT.encode())
    with pytest.raises(TranscriptError) as caught:
        transcript.participant("Bob")
    message = str(caught.value)
    assert "Ellie" not in message and "Participant" not in message
    assert "2 speaker labels" in message and "participant_speaker" in message
    assert caught.value.format == "webvtt (teams)"


def test_explicit_participant_on_a_transcript_without_speakers_is_an_error() -> None:
    with pytest.raises(TranscriptError, match="no speaker labels"):
        parse_transcript(b"just some words").participant("Participant")


def test_daic_default_picks_participant() -> None:
    transcript = parse_transcript(DAIC_TSV.encode())
    assert transcript.participant_labels() == ["Participant"]
    assert texts(transcript.participant(None)) == ["good", "i'm from the city"]


def test_interviewer_label_leaves_the_other_speaker() -> None:
    # Ellie says more words here, but she is the DAIC-WOZ interviewer.
    data = b"Ellie: tell me about the last time you felt really happy\nSam: hmm\n"
    assert parse_transcript(data).participant_labels() == ["Sam"]


def test_two_unnamed_speakers_pick_the_one_with_more_words() -> None:
    data = b"A: How are you?\nB: I have been exhausted all week and nothing helps\nA: Why?\nB: I do not know\n"
    transcript = parse_transcript(data)
    assert transcript.participant_labels() == ["B"]
    assert texts(transcript.participant()) == ["I have been exhausted all week and nothing helps", "I do not know"]


def test_undecidable_speakers_ask_for_participant_speaker() -> None:
    tie = parse_transcript(b"A: one two\nB: three four\n")
    three = parse_transcript(b"A: one\nB: two words\nC: three more words\n")
    for transcript in (tie, three):
        with pytest.raises(TranscriptError, match="participant_speaker"):
            transcript.participant()


def test_no_speakers_gives_every_utterance() -> None:
    transcript = parse_transcript(b"first line\nsecond line\n")
    assert transcript.participant() == transcript.utterances
    assert transcript.participant_labels() == []


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("content", "wrong_name", "expected"),
    [
        (WEBVTT, "notes.txt", "webvtt"),
        (SRT, "captions.vtt.json", "srt"),
        (DAIC_TSV, "transcript.json", "tsv"),
        (EDAIC_CSV, "transcript.srt", "csv"),
        (json.dumps(WHISPER_JSON), "transcript.csv", "json"),
        ("I feel fine today", "transcript.json", "text"),
    ],
)
def test_content_wins_over_a_wrong_extension(content: str, wrong_name: str, expected: str) -> None:
    transcript = parse_transcript(content.encode(), wrong_name, "text/plain")
    assert transcript.format == expected
    assert transcript.utterances


def test_hint_breaks_ties() -> None:
    headerless_cues = b"00:00:01.000 --> 00:00:02.000\nhello\n"
    assert parse_transcript(headerless_cues).format == "srt"
    assert parse_transcript(headerless_cues, "a.vtt").format == "webvtt"
    assert parse_transcript(headerless_cues, None, "text/vtt; charset=utf-8").format == "webvtt"


def test_bracketed_plain_text_is_not_json_unless_hinted() -> None:
    data = b"[laughter] I guess I am fine"
    assert texts(parse_transcript(data, "a.txt").utterances) == ["I guess I am fine"]
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(data, "a.json")
    assert caught.value.format == "json"


def test_csv_hint_with_an_unknown_header_is_an_error() -> None:
    with pytest.raises(TranscriptError, match="text column"):
        parse_transcript(b"when,who,said\n1,A,hello\n", "a.csv")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("data", "fmt", "line"),
    [
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:0x.000\nhello\n", "webvtt", "line 3"),
        (b"WEBVTT\n\nNOTE x\n\n00:00:01.000 --> 00:00:99.000\nhello\n", "webvtt", "line 5"),
        (b"1\n00:00:05,000 --> 00:00:01,000\nhello\n", "srt", "line 2"),
        (b"start_time\tstop_time\tspeaker\tvalue\n1\t2\tA\tok\n3\tnan\tA\tbad\n", "tsv", "line 3"),
        (b"start_time\tstop_time\tspeaker\tvalue\n-1\t2\tA\tbad\n", "tsv", "line 2"),
        (b"Start_Time,End_Time,Text\n1,,x\n", "csv", "line 2"),
        (b'[{"start": 0, "end": 1, "text": "a"}, {"start": 2, "end": 1, "text": "b"}]', "json", "segment 2"),
        (b'[{"start": true, "text": "a"}]', "json", "segment 1"),
        (b'{"segments": [{"start": 1e999, "text": "a"}]}', "json", "segment 1"),
    ],
)
def test_malformed_timings_name_format_and_place(data: bytes, fmt: str, line: str) -> None:
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(data)
    assert caught.value.format == fmt
    assert line in str(caught.value)


def test_legacy_encodings_are_decoded_and_reported() -> None:
    transcript = parse_transcript("Ich fühle mich müde und schlafe schlecht.".encode("latin-1"))
    assert texts(transcript.utterances) == ["Ich fühle mich müde und schlafe schlecht."]
    assert transcript.encoding == "windows-1252"
    bomless = parse_transcript("no byte-order mark, still UTF-16".encode("utf-16-le"))
    assert texts(bomless.utterances) == ["no byte-order mark, still UTF-16"]
    assert bomless.encoding == "utf-16-le"


def test_binary_that_is_no_text_in_any_encoding_is_refused() -> None:
    with pytest.raises(TranscriptError, match="not text"):
        parse_transcript(bytes(range(1, 32)) * 20 + b"I feel tired")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_byte_order_marks(encoding: str) -> None:
    data = WEBVTT.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    transcript = parse_transcript(data)
    assert transcript.format == "webvtt"
    assert transcript.utterances[0].text == "How are you doing today?"


@pytest.mark.parametrize("data", [b"", b"  \n\t\n ", "\ufeff\n".encode(), b"WEBVTT\n\nNOTE nothing said\n"])
def test_empty_transcripts_have_no_utterances(data: bytes) -> None:
    transcript = parse_transcript(data)
    assert transcript.utterances == []
    assert transcript.speakers == []
    assert not transcript.has_timestamps
    assert transcript.participant() == []


def test_size_cap() -> None:
    data = b"I feel tired."
    assert parse_transcript(data, max_bytes=len(data)).utterances
    with pytest.raises(TranscriptError, match="larger than"):
        parse_transcript(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (f"WEBVTT\n\n00:00:01.000 --> 00:00:xx.000\n{SECRET}\n".encode(), None),
        (f"1\n00:00:09,000 --> 00:00:01,000\n{SECRET}\n".encode(), None),
        (f"start_time\tstop_time\tspeaker\tvalue\n1\t{SECRET}\tA\t{SECRET}\n".encode(), None),
        (json.dumps([{"start": SECRET, "text": SECRET}]).encode(), None),
        (json.dumps([{"start": 1, "speaker": [SECRET], "text": SECRET}]).encode(), None),
        (f'[{{"text": "{SECRET}'.encode(), "a.json"),
        (SECRET.encode() + bytes(range(1, 9)) * 10, None),
        (f"{SECRET}".encode() + b"\x00", None),
        (SECRET.encode() * 10, None),
    ],
    ids=["vtt-timing", "srt-order", "tsv-time", "json-time", "json-speaker", "json-syntax", "controls", "nul", "size"],
)
def test_errors_never_quote_the_transcript(data: bytes, hint: str | None) -> None:
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(data, hint, max_bytes=200)
    message = str(caught.value)
    assert SECRET not in message
    assert not any(word in message for word in ("Bartholomew", "quince"))
    # No chained exception (a UnicodeDecodeError or JSONDecodeError holds the whole input) reaches a traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("t.vtt", "WEBVTT\n\n99999:00:00.000 --> 99999:00:05.000\nI have been feeling low.\n"),
        ("t.tsv", "start_time\tstop_time\tspeaker\tvalue\n1e308\t1e308\tParticipant\tI feel low.\n"),
        ("t.json", '[{"start": 1e300, "end": 1e301, "text": "I feel low."}]'),
    ],
)
def test_times_beyond_two_days_are_refused(name: str, content: str) -> None:
    with pytest.raises(TranscriptError, match="beyond 48 hours"):
        parse_transcript(content.encode(), name)


@pytest.mark.parametrize(
    "content",
    ["[" * 100_000 + "]" * 100_000, '[{"start": ' + "9" * 5000 + ', "text": "x"}]'],
    ids=["deep-nesting", "5000-digit-number"],
)
def test_json_the_parser_refuses_is_an_invalid_transcript_not_a_crash(content: str) -> None:
    with pytest.raises(TranscriptError, match="nested too deeply or with numbers too long"):
        parse_transcript(content.encode(), "t.json")
    parse_transcript(content.encode(), "t.txt")  # without the hint: not JSON, read as text


@pytest.mark.parametrize("timing", ["00:00:01,xyz --> 00:00:04,000", "-00:00:01,000 --> 00:00:04,000"])
def test_a_subtitle_file_with_a_malformed_timing_is_refused_not_read_as_words(timing: str) -> None:
    content = f"1\n{timing}\nI have not been sleeping well at all lately.\n"
    with pytest.raises(TranscriptError, match="malformed cue timing"):
        parse_transcript(content.encode(), "t.srt")


@pytest.mark.parametrize(
    ("head", "what"), [(b"%PDF-1.4\n", "PDF"), (b"{\\rtf1\\ansi ", "RTF"), (b"RIFF\x24\x00\x00\x00WAVE", "RIFF")]
)
def test_documents_and_media_that_start_as_ascii_are_not_transcripts(head: bytes, what: str) -> None:
    words = b" I have been feeling low and tired for weeks now and I sleep badly." * 5
    with pytest.raises(TranscriptError, match=what):
        parse_transcript(head + words, "t.txt")
