"""Shared by every dialect: text cleaning, sentence splitting, times, and "Name: text" prefixes.

Cleaning: markup tags (``<i>``, ``<c.x>``, ``<00:01.000>``, ``{\\an8}``) and bracketed
annotations such as ``[laughter]`` are removed (DAIC-WOZ's ``<laughter>`` / ``<sigh>`` are
tags too), as are DAIC-WOZ ``scrubbed_entry`` placeholders; an utterance that is only
parenthesised annotations (``(laughs)``) is dropped, while parentheses inside speech are
kept (they can be words); HTML entities are decoded, whitespace collapsed.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Sequence

from app.features.transcript.speakers import is_phone_number, label_parts
from app.features.transcript.utterance import TranscriptError, Utterance, word_count

# A turn longer than this is split into sentences: ~1.3 tokens a word keeps a sentence
# well inside the encoder's 256 tokens, and DAIC-WOZ turns rarely exceed it.
LONG_TURN_WORDS = 50
# Mean words a line of hard-wrapped prose holds (80 columns hold ~13 words).
WRAPPED_LINE_WORDS = 8
# no interview runs two days: later times are corrupt (and would make millions of windows)
MAX_TIME_S = 48 * 3600.0

TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.,]*>")  # markup and VTT karaoke timestamps
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # SRT positioning such as {\an8}
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_PARENTHESISED_ONLY = re.compile(r"^(?:\([^()]*\)\s*)+$")
_SCRUBBED = re.compile(r"\bscrubbed_entry\b", re.IGNORECASE)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def clean_text(text: str) -> str:
    """Speech only: tags, annotations and placeholders removed, whitespace collapsed."""
    text = TAG.sub(" ", text)
    text = _ASS_OVERRIDE.sub(" ", text)
    text = html.unescape(text)
    text = _BRACKETED.sub(" ", text)
    text = _SCRUBBED.sub(" ", text)
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE)).replace("♪", " ")
    text = " ".join(text.split())
    if _PARENTHESISED_ONLY.match(text):
        return ""
    return text


def clean_speaker(label: str | None) -> str | None:
    """A label as shown: entities decoded, invisible characters dropped, spaces collapsed, no trailing comma."""
    if label is None:
        return None
    label = " ".join(html.unescape(label).translate(_INVISIBLE).split()).rstrip(",").strip()
    return label or None


_ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "mt"})
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*\s+")


def split_sentences(text: str) -> list[str]:
    """Split after . ! ? … followed by a space, except after common abbreviations."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        # Only the few characters before the stop matter; slicing more is quadratic on "Dr. Dr. Dr. ..."
        words_before = text[max(start, match.start() - 8) : match.start()].split()
        last_word = words_before[-1].casefold().rstrip(".") if words_before else ""
        if text[match.start()] == "." and last_word in _ABBREVIATIONS:
            continue
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def turn_utterances(text: str, start: float | None, end: float | None, speaker: str | None) -> list[Utterance]:
    """One cleaned turn; a turn over ``LONG_TURN_WORDS`` is split into sentences that share its
    time in proportion to their words (so a speaker's seconds stay the turn's seconds)."""
    cleaned = clean_text(text)
    pieces = split_sentences(cleaned) if word_count(cleaned) > LONG_TURN_WORDS else [cleaned]
    if len(pieces) <= 1 or start is None:
        return [Utterance(piece, start, end, speaker) for piece in pieces]
    counts = [word_count(piece) for piece in pieces]
    total = sum(counts)
    utterances, done = [], 0
    for piece, count in zip(pieces, counts, strict=True):
        piece_start = start if end is None else start + (end - start) * done / total
        done += count
        piece_end = None if end is None else start + (end - start) * done / total
        utterances.append(Utterance(piece, piece_start, piece_end, speaker))
    return utterances


def parse_seconds(value: str) -> float | None:
    """Seconds from '12.5' or '[HH:]MM:SS[.mmm]' (',' also allowed as decimal mark); None if malformed."""
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = value.replace(",", ".").split(":")
        if not 2 <= len(parts) <= 3 or not all(re.fullmatch(r"\d+", p) for p in parts[:-1]):
            return None
        if not re.fullmatch(r"\d+(?:\.\d+)?", parts[-1]):
            return None
        *clock, last = parts
        if float(last) >= 60 or (len(clock) == 2 and int(clock[1]) >= 60):
            return None
        seconds = float(last)
        for scale, part in zip((60, 3600), reversed(clock), strict=False):
            seconds += scale * int(part)
    return seconds if math.isfinite(seconds) else None


def check_times(start: float | None, end: float | None, fmt: str, where: str) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise TranscriptError(f"{where}: {name} time must be a finite, non-negative number of seconds", fmt)
        if value is not None and value > MAX_TIME_S:
            raise TranscriptError(f"{where}: {name} time is beyond {MAX_TIME_S / 3600:.0f} hours", fmt)
    if start is not None and end is not None and end < start:
        raise TranscriptError(f"{where}: end time is before start time", fmt)


# "Name: text": a label of letters (or a phone number) with the characters real labels use
# (titles "Dr.", credentials after commas, pronouns in parentheses), then a colon and a space
_SPEAKER_PREFIX = re.compile(r"^(?:>>\s*)?([^\W\d_+][^:]{0,79}?|\+?\d[\d\s().-]{5,30}?)\s*:\s+(\S.*)$")


def speaker_prefix(line: str) -> tuple[str, str] | None:
    """(label, text) when the line opens with a plausible speaker label and a colon."""
    match = _SPEAKER_PREFIX.match(line)
    if not match:
        return None
    label = match.group(1)
    if not (is_phone_number(label) or label_parts(label).plausible):
        return None
    return match.group(1), match.group(2)


def prefixes_are_speakers(prefixes: Sequence[tuple[str, str] | None]) -> bool:
    """Whether "Word:" openings are speaker labels: on at least half the lines (or cues), or, as
    in Zoom files that name the speaker only on a turn's first cue, when the first line has one
    and at least two labels recur (each used twice or more on average)."""
    labelled = [p for p in prefixes if p is not None]
    if not prefixes or not labelled:
        return False
    if len(labelled) * 2 >= len(prefixes):
        return True
    distinct = {clean_speaker(label) for label, _ in labelled}
    return prefixes[0] is not None and len(distinct) >= 2 and len(labelled) >= 2 * len(distinct)
