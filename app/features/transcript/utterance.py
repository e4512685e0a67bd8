"""The transcript's units: an utterance, the parse error, word counting and the format names."""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMAT_TEXT = "text"
FORMAT_WEBVTT = "webvtt"
FORMAT_SRT = "srt"
FORMAT_SBV = "sbv"
FORMAT_TSV = "tsv"
FORMAT_CSV = "csv"
FORMAT_JSON = "json"
FORMATS = (FORMAT_TEXT, FORMAT_WEBVTT, FORMAT_SRT, FORMAT_SBV, FORMAT_TSV, FORMAT_CSV, FORMAT_JSON)


class TranscriptError(ValueError):
    """An unreadable transcript. The message never quotes the transcript (no words, no speaker labels)."""

    def __init__(self, message: str, format: str | None = None) -> None:
        super().__init__(f"{format}: {message}" if format else message)
        self.format = format


@dataclass(frozen=True)
class Utterance:
    text: str
    start_s: float | None
    end_s: float | None
    speaker: str | None


def word_count(text: str) -> int:
    """Whitespace-separated tokens, as training counts them (training/synth/corpus.py)."""
    return len(re.findall(r"\S+", text))
