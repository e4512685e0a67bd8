"""Text files: plain text, and the turn-header exports of Otter.ai and Rev.

- Plain text: one utterance per non-empty line, with optional ``Speaker: text`` prefixes
  (recognised when at least half the lines carry one, or when the first does and the
  labels recur; an unprefixed line continues the previous speaker's turn). Text is split
  into sentences when it is one paragraph (a single line, or hard-wrapped prose) or when
  a turn exceeds ``LONG_TURN_WORDS`` words, because the text encoder embeds one utterance
  of at most 256 tokens.
- Otter.ai TXT: a turn header ``Speaker 1  0:03`` (the name, two spaces, ``[H:]MM:SS``) on
  its own line, the turn's text on the lines below, a blank line between turns.
- Rev TXT: ``Speaker 1 (00:03):`` then the text (on the same line or below), or the header
  ``Name  00:00:03`` (two-digit hours) like Otter's.

Turn headers give start times only: a turn ends where the next one starts; the last
turn's end is unknown (its words count, its seconds do not).
"""

from __future__ import annotations

import re

from app.features.transcript.cleaning import (
    WRAPPED_LINE_WORDS,
    check_times,
    clean_speaker,
    clean_text,
    parse_seconds,
    prefixes_are_speakers,
    speaker_prefix,
    split_sentences,
    turn_utterances,
)
from app.features.transcript.speakers import is_phone_number, label_parts
from app.features.transcript.utterance import FORMAT_TEXT, TranscriptError, Utterance, word_count

_TERMINAL = re.compile(r"[.!?…:;\"'”’)\]]$")
_CLOCK = r"(?:\d{1,2}:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?"
# "Speaker 1  0:03" (Otter) or "Jane Doe  00:00:03" (Rev): the header alone on its line
_SPACED_HEADER = re.compile(rf"^(?P<name>\S.*?)[ \t]{{2,}}(?P<time>{_CLOCK})\s*$")
# "Speaker 1 (00:03):" (Rev), the turn's text possibly on the same line
_PARENTHESISED_HEADER = re.compile(rf"^(?P<name>\S.*?)\s*\((?P<time>{_CLOCK})\)\s*:\s*(?P<text>.*)$")
DIALECT_OTTER = "otter txt"
DIALECT_REV = "rev txt"


def plain_utterances(text: str) -> list[str]:
    """Unlabelled text -> utterance strings: lines, or sentences of a paragraph."""
    paragraphs = [block for block in re.split(r"\n\s*\n", text) if block.strip()]
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) <= 1:
        return [s for line in lines for s in split_sentences(clean_text(line))]
    out: list[str] = []
    for paragraph in paragraphs:
        rows = [line.strip() for line in paragraph.split("\n") if line.strip()]
        # Hard-wrapped prose (three or more long lines, most stopping mid-sentence): rejoin
        # and split into sentences. Short unpunctuated lines stay one utterance each.
        inner = rows[:-1]
        if (
            len(rows) >= 3
            and sum(word_count(row) for row in inner) >= WRAPPED_LINE_WORDS * len(inner)
            and sum(not _TERMINAL.search(row) for row in inner) > len(inner) / 2
        ):
            out.extend(split_sentences(clean_text(" ".join(rows))))
            continue
        out.extend(u.text for row in rows for u in turn_utterances(row, None, None, None))
    return out


def parse_plain(text: str) -> tuple[list[Utterance], str]:
    """Plain text, or an Otter / Rev export -> (utterances, dialect)."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    headed = _parse_turn_headers(text)
    if headed is not None:
        return headed
    prefixes = [speaker_prefix(line) for line in lines]
    if not prefixes_are_speakers(prefixes):
        return [Utterance(u, None, None, None) for u in plain_utterances(text)], FORMAT_TEXT
    # Speaker turns; an unprefixed line continues the current turn.
    turns: list[tuple[str | None, list[str]]] = []
    for line, prefix in zip(lines, prefixes, strict=True):
        if prefix is not None:
            turns.append((clean_speaker(prefix[0]), [prefix[1]]))
        elif turns:
            turns[-1][1].append(line)
        else:
            turns.append((None, [line]))
    utterances = [u for speaker, parts in turns for u in turn_utterances(" ".join(parts), None, None, speaker)]
    return utterances, FORMAT_TEXT


def _header(line: str) -> tuple[str, str, str, str] | None:
    """(label, clock, text on the header line, dialect) for an Otter or Rev turn header."""
    match = _PARENTHESISED_HEADER.match(line)
    dialect = DIALECT_REV
    if match is None:
        match = _SPACED_HEADER.match(line)
        if match is None:
            return None
        # Otter writes "0:03" / "1:02:03"; Rev's spaced header has two-digit hours "00:00:03"
        dialect = DIALECT_REV if re.fullmatch(r"\d{2}:\d{2}:\d{2}", match.group("time")) else DIALECT_OTTER
    name = match.group("name").strip()
    if not (is_phone_number(name) or label_parts(name).plausible):
        return None
    text = match.groupdict().get("text") or ""
    return name, match.group("time"), text, dialect


def _parse_turn_headers(text: str) -> tuple[list[Utterance], str] | None:
    """Otter / Rev turns, or None when the text is not such an export (its first line a header, two or more)."""
    numbered = [(n, line.strip()) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    headers = [_header(line) for _, line in numbered]
    if not numbered or headers[0] is None or sum(h is not None for h in headers) < 2:
        return None
    dialect = next(h[3] for h in headers if h is not None)
    turns: list[tuple[int, str | None, float, list[str]]] = []
    for (number, line), header in zip(numbered, headers, strict=True):
        if header is None:
            turns[-1][3].append(line)
            continue
        label, clock, same_line, _ = header
        start = parse_seconds(clock)
        if start is None:
            raise TranscriptError(f"line {number}: malformed turn time (expected [H:]MM:SS)", dialect)
        turns.append((number, clean_speaker(label), start, [same_line] if same_line else []))
    utterances: list[Utterance] = []
    for i, (number, label, start, parts) in enumerate(turns):
        end = turns[i + 1][2] if i + 1 < len(turns) else None
        check_times(start, end, dialect, f"line {number}")
        utterances.extend(turn_utterances(" ".join(parts), start, end, label))
    return utterances, dialect
