"""Uploaded transcripts -> utterances (text, times, speaker) and the participant; pure Python, no web framework.

- ``decode``: bytes -> text: byte-order marks, UTF-8, BOM-less UTF-16, legacy code pages
  (charset-normalizer); the encoding is reported.
- ``parse``: the format from the content (``detect``), then the dialect's parser:
  ``cues`` (WebVTT from Zoom / Teams / others, SRT, SBV), ``tables`` (DAIC-WOZ TSV,
  E-DAIC CSV), ``json_formats`` (segments, Whisper, WhisperX, AWS Transcribe), ``plain``
  (plain text, Otter.ai and Rev TXT).
- ``cleaning``: the text cleaning, sentence splitting and time parsing all dialects share.
- ``speakers``: label normalisation, clinician markers and the participant rule.
- ``language``: which language the participant's words are in.

Privacy: the transcript's text and speaker labels never reach a log, an exception message
or a warning; errors name the format, a line number (a segment or item number for JSON)
and what was expected, and speakers are referred to by position.
"""

from app.features.transcript.cleaning import (
    LONG_TURN_WORDS,
    MAX_TIME_S,
    WRAPPED_LINE_WORDS,
    clean_text,
    split_sentences,
)
from app.features.transcript.model import Transcript
from app.features.transcript.parse import DEFAULT_MAX_BYTES, detect, parse_transcript
from app.features.transcript.speakers import (
    CLEAR_WORD_RATIO,
    INTERVIEWER_LABELS,
    PARTICIPANT_LABELS,
    SpeakerSelection,
    SpeakerStats,
    is_clinician,
    is_question,
    label_parts,
)
from app.features.transcript.utterance import (
    FORMAT_CSV,
    FORMAT_JSON,
    FORMAT_SBV,
    FORMAT_SRT,
    FORMAT_TEXT,
    FORMAT_TSV,
    FORMAT_WEBVTT,
    FORMATS,
    TranscriptError,
    Utterance,
    word_count,
)

__all__ = [
    "CLEAR_WORD_RATIO",
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "FORMAT_CSV",
    "FORMAT_JSON",
    "FORMAT_SBV",
    "FORMAT_SRT",
    "FORMAT_TEXT",
    "FORMAT_TSV",
    "FORMAT_WEBVTT",
    "INTERVIEWER_LABELS",
    "LONG_TURN_WORDS",
    "MAX_TIME_S",
    "PARTICIPANT_LABELS",
    "WRAPPED_LINE_WORDS",
    "SpeakerSelection",
    "SpeakerStats",
    "Transcript",
    "TranscriptError",
    "Utterance",
    "clean_text",
    "detect",
    "is_clinician",
    "is_question",
    "label_parts",
    "parse_transcript",
    "split_sentences",
    "word_count",
]
