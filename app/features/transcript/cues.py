"""Cue files: WebVTT (Zoom, Teams and generic), SRT, and SBV (Google Meet / YouTube).

- WebVTT: ``WEBVTT`` header, cues ``00:01.000 --> 00:04.000`` (hours optional), cue
  identifiers, multi-line cues, NOTE / STYLE / REGION blocks skipped. Speakers as
  ``<v Name>`` voice tags (Teams writes these; several voices in one cue become several
  utterances with the cue's times) or as ``Name: text`` prefixes (Zoom writes these,
  naming the speaker only on a turn's first cue: an unprefixed cue continues the previous
  speaker).
- SRT: numbered cues ``00:00:01,000 --> 00:00:04,000`` (a ``.`` is accepted too), and any
  headerless cue file. A text block without a timing line right after a cue is taken as
  that cue's continuation (real files put blank lines inside cue text).
- SBV: blocks ``0:00:01.000,0:00:04.000`` then the text; speakers as ``Name:`` or
  ``>> Name:`` prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.features.transcript.cleaning import (
    TAG,
    check_times,
    clean_speaker,
    clean_text,
    parse_seconds,
    prefixes_are_speakers,
    speaker_prefix,
)
from app.features.transcript.utterance import FORMAT_SBV, FORMAT_WEBVTT, TranscriptError, Utterance

_TIME = r"(?:\d+:)?\d{1,2}:\d{1,2}(?:[.,]\d{1,3})?"
TIMING_LINE = re.compile(rf"^\s*({_TIME})\s*-->\s*({_TIME})(?:\s.*)?$")
WEBVTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")
SBV_TIMING = re.compile(r"^\s*(\d+:\d{1,2}:\d{1,2}(?:\.\d{1,3})?)\s*,\s*(\d+:\d{1,2}:\d{1,2}(?:\.\d{1,3})?)\s*$")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:\s+([^>]*))?>", re.IGNORECASE)
_VTT_SKIPPED_BLOCKS = re.compile(r"^(?:NOTE|STYLE|REGION)(?:\s|$)")
_SBV_SPEAKER_CHANGE = re.compile(r"^\s*>>\s*")


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]


def blocks(text: str) -> list[list[tuple[int, str]]]:
    """Runs of non-blank lines, each line with its 1-based number."""
    found: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            current.append((number, line))
        elif current:
            found.append(current)
            current = []
    if current:
        found.append(current)
    return found


def parse_cue_file(text: str, fmt: str) -> tuple[list[Utterance], str]:
    """WebVTT or SRT -> (utterances, dialect)."""
    found = blocks(text)
    if found and WEBVTT_HEADER.match(found[0][0][1].strip()):
        found = found[1:]
    cues: list[Cue] = []
    for block in found:
        if _VTT_SKIPPED_BLOCKS.match(block[0][1].strip()):
            continue
        timing_at = next((i for i, (_, line) in enumerate(block) if "-->" in line), None)
        if timing_at is None:
            # A bare number is a lone cue identifier; other text continues the previous cue.
            if cues and not (len(block) == 1 and block[0][1].strip().isdigit()):
                cues[-1].lines.extend(line for _, line in block)
            continue
        number, line = block[timing_at]
        match = TIMING_LINE.match(line)
        start = parse_seconds(match.group(1)) if match else None
        end = parse_seconds(match.group(2)) if match else None
        if start is None or end is None:
            expected = "HH:MM:SS.mmm --> HH:MM:SS.mmm" if fmt == FORMAT_WEBVTT else "HH:MM:SS,mmm --> HH:MM:SS,mmm"
            raise TranscriptError(f"line {number}: malformed cue timing (expected {expected})", fmt)
        check_times(start, end, fmt, f"line {number}")
        cues.append(Cue(start, end, [payload for _, payload in block[timing_at + 1 :]]))
    return cue_utterances(cues, fmt)


def parse_sbv(text: str) -> tuple[list[Utterance], str]:
    cues: list[Cue] = []
    for block in blocks(text):
        number, first = block[0]
        match = SBV_TIMING.match(first)
        if match is None:
            if cues:  # a blank line inside a cue's text
                cues[-1].lines.extend(line for _, line in block)
                continue
            raise TranscriptError(f"line {number}: malformed cue timing (expected H:MM:SS.mmm,H:MM:SS.mmm)", FORMAT_SBV)
        start, end = parse_seconds(match.group(1)), parse_seconds(match.group(2))
        if start is None or end is None:
            raise TranscriptError(f"line {number}: malformed cue timing (expected H:MM:SS.mmm,H:MM:SS.mmm)", FORMAT_SBV)
        check_times(start, end, FORMAT_SBV, f"line {number}")
        cues.append(Cue(start, end, [_SBV_SPEAKER_CHANGE.sub("", line) for _, line in block[1:]]))
    return cue_utterances(cues, FORMAT_SBV)


def cue_utterances(cues: list[Cue], fmt: str) -> tuple[list[Utterance], str]:
    """Cues -> utterances with speakers from voice tags or ``Name:`` prefixes, and the dialect."""
    voiced = [_cue_voices(cue.lines) for cue in cues]
    joined = [" ".join(line.strip() for line in cue.lines) for cue in cues]
    unvoiced_at = [i for i, spans in enumerate(voiced) if not spans]
    prefixes = {i: speaker_prefix(TAG.sub("", joined[i]).strip()) for i in unvoiced_at}
    use_prefixes = prefixes_are_speakers([prefixes[i] for i in unvoiced_at])
    utterances: list[Utterance] = []
    current: str | None = None  # the speaker of the turn under way (Zoom names it on its first cue only)
    for i, cue in enumerate(cues):
        spans = voiced[i]
        if not spans:
            prefix = prefixes[i] if use_prefixes else None
            if prefix is not None:
                current = clean_speaker(prefix[0])
                spans = [(current, prefix[1])]
            else:
                spans = [(current if use_prefixes else None, joined[i])]
        utterances.extend(Utterance(clean_text(words), cue.start, cue.end, speaker) for speaker, words in spans)
    dialect = fmt
    if fmt == FORMAT_WEBVTT and any(voiced):
        dialect = "webvtt (teams)"
    elif fmt == FORMAT_WEBVTT and use_prefixes:
        dialect = "webvtt (zoom)"
    return utterances, dialect


def _cue_voices(lines: list[str]) -> list[tuple[str | None, str]]:
    """(speaker, raw text) spans of a cue split at its <v> voice tags; empty when it has none."""
    payload = "\n".join(lines)
    voices = list(_VOICE.finditer(payload))
    if not voices:
        return []
    spans = [(None, payload[: voices[0].start()])]
    for i, voice in enumerate(voices):
        stop = voices[i + 1].start() if i + 1 < len(voices) else len(payload)
        spans.append((clean_speaker(voice.group(1)), payload[voice.end() : stop]))
    return [(speaker, words) for speaker, words in spans if TAG.sub("", words).strip()]
