"""Transcript bytes -> ``Transcript``: decode, detect the format from the content, parse.

Content decides the format (a wrong file extension does not matter); the filename
extension or declared content type only breaks ties (see ``detect``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from app.features.transcript.cues import SBV_TIMING, TIMING_LINE, WEBVTT_HEADER, parse_cue_file, parse_sbv
from app.features.transcript.decode import decode
from app.features.transcript.json_formats import parse_json
from app.features.transcript.model import Transcript
from app.features.transcript.plain import parse_plain, plain_utterances
from app.features.transcript.tables import looks_like_headerless_daic, parse_table, table_columns
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
)

DEFAULT_MAX_BYTES = 2_000_000

_EXTENSION_HINTS = {
    "vtt": FORMAT_WEBVTT,
    "webvtt": FORMAT_WEBVTT,
    "srt": FORMAT_SRT,
    "sbv": FORMAT_SBV,
    "tsv": FORMAT_TSV,
    "tab": FORMAT_TSV,
    "csv": FORMAT_CSV,
    "json": FORMAT_JSON,
    "txt": FORMAT_TEXT,
    "text": FORMAT_TEXT,
}
_CONTENT_TYPE_HINTS = {
    "text/vtt": FORMAT_WEBVTT,
    "application/x-subrip": FORMAT_SRT,
    "application/srt": FORMAT_SRT,
    "text/srt": FORMAT_SRT,
    "text/tab-separated-values": FORMAT_TSV,
    "text/csv": FORMAT_CSV,
    "application/csv": FORMAT_CSV,
    "application/json": FORMAT_JSON,
    "text/json": FORMAT_JSON,
}


def parse_transcript(
    data: bytes,
    filename_hint: str | None = None,
    content_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Transcript:
    """Parse an uploaded transcript; an empty or whitespace-only one gives no utterances."""
    if len(data) > max_bytes:
        raise TranscriptError(f"transcript is larger than {max_bytes} bytes")
    text, encoding = decode(data)
    hint = _hint(filename_hint, content_type)
    fmt, payload = detect(text, hint)
    if fmt == FORMAT_JSON:
        utterances, dialect = parse_json(payload, plain_utterances)
    elif fmt in (FORMAT_WEBVTT, FORMAT_SRT):
        utterances, dialect = parse_cue_file(text, fmt)
    elif fmt == FORMAT_SBV:
        utterances, dialect = parse_sbv(text)
    elif fmt in (FORMAT_TSV, FORMAT_CSV):
        utterances, dialect = parse_table(text, fmt), fmt
    else:
        utterances, dialect = parse_plain(text)
    return _transcript(fmt, dialect, encoding, utterances)


def _hint(filename_hint: str | None, content_type: str | None) -> str | None:
    if filename_hint:
        extension = filename_hint.strip().rsplit(".", 1)[-1].casefold()
        if extension in _EXTENSION_HINTS:
            return _EXTENSION_HINTS[extension]
    if content_type:
        media_type = content_type.split(";", 1)[0].strip().casefold()
        return _CONTENT_TYPE_HINTS.get(media_type)
    return None


def detect(text: str, hint: str | None) -> tuple[str, object]:
    """(format, parsed JSON or None). Content decides; the hint settles what content cannot."""
    lines = text.split("\n")
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first:
        return (hint if hint in FORMATS else FORMAT_TEXT), None
    if WEBVTT_HEADER.match(first):
        return FORMAT_WEBVTT, None
    if first[0] in "[{":
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            # Plain text may start with "[laughter]"; only a JSON hint makes it a broken JSON file.
            if hint == FORMAT_JSON:
                # exc.msg is the parser's wording ("Expecting value"); exc.doc, the text, stays out.
                message = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
                raise TranscriptError(message, FORMAT_JSON) from None
        except (ValueError, RecursionError):
            # valid syntax the parser still refuses: integers over 4300 digits, deep nesting
            if hint == FORMAT_JSON:
                raise TranscriptError("JSON nested too deeply or with numbers too long", FORMAT_JSON) from None
        else:
            if isinstance(parsed, (list, dict)):
                return FORMAT_JSON, parsed
    if SBV_TIMING.match(first):
        return FORMAT_SBV, None
    if table_columns(first) is not None or looks_like_headerless_daic(first):
        return (FORMAT_TSV if "\t" in first else FORMAT_CSV), None
    if hint in (FORMAT_TSV, FORMAT_CSV) and ("\t" in first or "," in first):
        raise TranscriptError(
            "the header row names no text column (expected e.g. start_time, stop_time, speaker, value)", hint
        )
    cue_file = hint in (FORMAT_SRT, FORMAT_WEBVTT)
    # in a file named as subtitles, any "-->" line is a cue timing (a malformed one is refused
    # there, not read aloud as words)
    if any(TIMING_LINE.match(line) or (cue_file and "-->" in line) for line in lines):
        return (FORMAT_WEBVTT if hint == FORMAT_WEBVTT else FORMAT_SRT), None
    return FORMAT_TEXT, None


def _transcript(fmt: str, dialect: str, encoding: str, utterances: Iterable[Utterance]) -> Transcript:
    kept = [u for u in utterances if u.text]
    speakers: list[str] = []
    for utterance in kept:
        if utterance.speaker is not None and utterance.speaker not in speakers:
            speakers.append(utterance.speaker)
    has_timestamps = bool(kept) and all(u.start_s is not None for u in kept)
    return Transcript(
        format=fmt,
        utterances=kept,
        speakers=speakers,
        has_timestamps=has_timestamps,
        dialect=dialect,
        encoding=encoding,
    )
