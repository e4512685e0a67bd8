"""Uploaded transcripts -> utterances (text, times, speaker); pure Python, no web framework.

Formats, detected from the content first (a wrong file extension does not matter); the
filename extension or declared content type only breaks ties (see ``_detect``):

- ``webvtt``: ``WEBVTT`` header, cues ``00:01.000 --> 00:04.000`` (hours optional), cue
  identifiers, multi-line cues, ``<v Speaker>`` voice tags (several voices in one cue become
  several utterances with the cue's times), NOTE / STYLE / REGION blocks skipped.
- ``srt``: numbered cues ``00:00:01,000 --> 00:00:04,000`` (a ``.`` is accepted too), and
  any headerless cue file. A text block without a timing line right after a cue is taken
  as that cue's continuation (real files put blank lines inside cue text).
- ``tsv`` / ``csv``: a header row naming a text column (``value``, ``text``, ...) and
  optionally start / end / speaker columns: DAIC-WOZ ``start_time stop_time speaker
  value`` (tab-separated; a headerless 4-column file with numeric times is read in that
  order), E-DAIC ASR ``Start_Time,End_Time,Text,Confidence`` (no speakers). Times are
  seconds or ``[HH:]MM:SS[.mmm]``.
- ``json``: a list of segments, or an object holding one under ``segments`` (Whisper,
  WhisperX) or ``utterances``; each segment an object with ``text``, optional ``start`` /
  ``end`` in seconds and optional ``speaker``. An object with only ``text`` (Whisper
  without segments) is read as plain text.
- ``text``: one utterance per non-empty line, with optional ``Speaker: text`` prefixes
  (recognised only when at least half the lines carry one; an unprefixed line then
  continues the previous speaker's turn). Text is split into sentences when it is one
  paragraph (a single line, or hard-wrapped prose) or when a turn exceeds
  ``LONG_TURN_WORDS`` words, because the text encoder embeds one utterance of at most
  256 tokens.

Cleaning, the same for every format: markup tags (``<i>``, ``<c.x>``, ``<00:01.000>``,
``{\\an8}``) and bracketed annotations such as ``[laughter]`` are removed (DAIC-WOZ's
``<laughter>`` / ``<sigh>`` are tags too), as are DAIC-WOZ ``scrubbed_entry``
placeholders; an utterance that is only parenthesised annotations (``(laughs)``) is
dropped, while parentheses inside speech are kept (they can be words); HTML entities are
decoded, whitespace collapsed, and utterances left empty are dropped.

Privacy: the transcript's text never reaches a log or an exception message; errors name
the format, a line number (a segment number for JSON) and what was expected.
"""

from __future__ import annotations

import codecs
import csv
import html
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

FORMAT_TEXT = "text"
FORMAT_WEBVTT = "webvtt"
FORMAT_SRT = "srt"
FORMAT_TSV = "tsv"
FORMAT_CSV = "csv"
FORMAT_JSON = "json"
FORMATS = (FORMAT_TEXT, FORMAT_WEBVTT, FORMAT_SRT, FORMAT_TSV, FORMAT_CSV, FORMAT_JSON)

DEFAULT_MAX_BYTES = 2_000_000
# A turn longer than this is split into sentences: ~1.3 tokens a word keeps a sentence
# well inside the encoder's 256 tokens, and DAIC-WOZ turns rarely exceed it.
LONG_TURN_WORDS = 50
# Mean words a line of hard-wrapped prose holds (80 columns hold ~13 words).
WRAPPED_LINE_WORDS = 8

# Speaker labels that name the patient, and ones that name the other side of an interview.
PARTICIPANT_LABELS = frozenset({"participant", "patient", "client"})
INTERVIEWER_LABELS = frozenset(
    {"ellie", "interviewer", "therapist", "clinician", "doctor", "counselor", "counsellor", "psychiatrist"}
)

_EXTENSION_HINTS = {
    "vtt": FORMAT_WEBVTT,
    "webvtt": FORMAT_WEBVTT,
    "srt": FORMAT_SRT,
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


class TranscriptError(ValueError):
    """An unreadable transcript. The message never quotes the transcript's text."""

    def __init__(self, message: str, format: str | None = None) -> None:
        super().__init__(f"{format}: {message}" if format else message)
        self.format = format


@dataclass(frozen=True)
class Utterance:
    text: str
    start_s: float | None
    end_s: float | None
    speaker: str | None


@dataclass(frozen=True)
class Transcript:
    format: str
    utterances: list[Utterance]  # every speaker's, in file order
    speakers: list[str] = field(default_factory=list)  # distinct labels, in order of first appearance
    has_timestamps: bool = False  # every utterance has a start time

    def participant_labels(self, participant_speaker: str | None = None) -> list[str]:
        """The speaker labels taken as the patient; empty when the transcript has no speakers.

        ``participant_speaker`` given: the labels equal to it, ignoring case; a
        ``TranscriptError`` naming the available speakers when none is (also when the
        transcript has no speaker labels: the request cannot be honoured, and using every
        line could feed an interviewer's words to the model).

        Not given, in order:
        1. labels literally named participant / patient / client (DAIC-WOZ's "Participant");
        2. else, if removing interviewer labels (DAIC-WOZ's "Ellie", interviewer,
           therapist, clinician, ...) leaves exactly one speaker, that one;
        3. else, with exactly two speakers, the one who says more words: in a clinical
           interview the interviewer asks short prompts and the patient answers at
           length (in DAIC-WOZ the participant speaks several times Ellie's words);
        4. else (a tie, or three or more unnamed speakers) a ``TranscriptError`` asking for
           ``participant_speaker``: guessing wrong would score the interviewer.
        """
        if participant_speaker is not None:
            wanted = participant_speaker.strip().casefold()
            chosen = [label for label in self.speakers if label.casefold() == wanted]
            if not chosen:
                available = ", ".join(self.speakers) if self.speakers else "none (the transcript has no speaker labels)"
                raise TranscriptError(f"participant_speaker matches no speaker; speakers: {available}", self.format)
            return chosen
        if not self.speakers:
            return []
        named = [label for label in self.speakers if label.casefold() in PARTICIPANT_LABELS]
        if named:
            return named
        others = [label for label in self.speakers if label.casefold() not in INTERVIEWER_LABELS]
        if len(others) == 1:
            return others
        if len(self.speakers) == 2:
            words = {label: 0 for label in self.speakers}
            for utterance in self.utterances:
                if utterance.speaker in words:
                    words[utterance.speaker] += word_count(utterance.text)
            first, second = self.speakers
            if words[first] != words[second]:
                return [first if words[first] > words[second] else second]
        raise TranscriptError(
            f"cannot tell which speaker is the participant; set participant_speaker (speakers: "
            f"{', '.join(self.speakers)})",
            self.format,
        )

    def participant(self, participant_speaker: str | None = None) -> list[Utterance]:
        """The patient's utterances (see ``participant_labels``); all of them when there are no speakers."""
        if not self.speakers and participant_speaker is None:
            return list(self.utterances)
        labels = set(self.participant_labels(participant_speaker))
        return [u for u in self.utterances if u.speaker in labels]


def word_count(text: str) -> int:
    """Whitespace-separated tokens, as training counts them (training/synth/corpus.py)."""
    return len(re.findall(r"\S+", text))


# ---------------------------------------------------------------- decoding and detection


def parse_transcript(
    data: bytes,
    filename_hint: str | None = None,
    content_type: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Transcript:
    """Parse an uploaded transcript; an empty or whitespace-only one gives no utterances."""
    if len(data) > max_bytes:
        raise TranscriptError(f"transcript is larger than {max_bytes} bytes")
    text = _decode(data)
    hint = _hint(filename_hint, content_type)
    fmt, payload = _detect(text, hint)
    if fmt == FORMAT_JSON:
        utterances = _parse_json(payload)
    elif fmt in (FORMAT_WEBVTT, FORMAT_SRT):
        utterances = _parse_cues(text, fmt)
    elif fmt in (FORMAT_TSV, FORMAT_CSV):
        utterances = _parse_table(text, fmt)
    else:
        utterances = _parse_plain(text)
    return _transcript(fmt, utterances)


# files that are valid ASCII or UTF-8 at their start yet are documents or media, not text
BINARY_SIGNATURES = {
    b"%PDF-": "a PDF document",
    b"PK\x03\x04": "a ZIP archive (e.g. a Word document)",
    b"{\\rtf": "an RTF document",
    b"GIF8": "a GIF image",
    b"ID3": "an MP3 file",
    b"RIFF": "a RIFF (WAV/AVI) file",
    b"OggS": "an Ogg file",
    b"fLaC": "a FLAC file",
    b"\x1aE\xdf\xa3": "a Matroska/WebM file",
}


def _decode(data: bytes) -> str:
    for signature, what in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise TranscriptError(f"transcript is {what}, not text")
    # UTF-32 BOMs start with the UTF-16 LE one, so test them first.
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError:
                # "from None": the decode error holds the raw bytes.
                raise TranscriptError(
                    f"transcript is not valid {encoding.upper()} text despite its byte-order mark"
                ) from None
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise TranscriptError("transcript is not UTF-8 text (UTF-16 needs a byte-order mark)") from None
    # UTF-16 without a BOM often decodes as UTF-8 full of NULs; no text format holds one.
    if "\x00" in text:
        raise TranscriptError("transcript is not text (it contains NUL characters)")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _hint(filename_hint: str | None, content_type: str | None) -> str | None:
    if filename_hint:
        extension = filename_hint.strip().rsplit(".", 1)[-1].casefold()
        if extension in _EXTENSION_HINTS:
            return _EXTENSION_HINTS[extension]
    if content_type:
        media_type = content_type.split(";", 1)[0].strip().casefold()
        return _CONTENT_TYPE_HINTS.get(media_type)
    return None


_TIME = r"(?:\d+:)?\d{1,2}:\d{1,2}(?:[.,]\d{1,3})?"
_TIMING_LINE = re.compile(rf"^\s*({_TIME})\s*-->\s*({_TIME})(?:\s.*)?$")
_WEBVTT_HEADER = re.compile(r"^WEBVTT(?:[ \t].*)?$")


def _detect(text: str, hint: str | None) -> tuple[str, object]:
    """(format, parsed JSON or None). Content decides; the hint settles what content cannot."""
    lines = text.split("\n")
    first = next((line.strip() for line in lines if line.strip()), "")
    if not first:
        return (hint if hint in FORMATS else FORMAT_TEXT), None
    if _WEBVTT_HEADER.match(first):
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
    if _table_columns(first) is not None or _looks_like_headerless_daic(first):
        return (FORMAT_TSV if "\t" in first else FORMAT_CSV), None
    if hint in (FORMAT_TSV, FORMAT_CSV) and ("\t" in first or "," in first):
        raise TranscriptError(
            "the header row names no text column (expected e.g. start_time, stop_time, speaker, value)", hint
        )
    cue_file = hint in (FORMAT_SRT, FORMAT_WEBVTT)
    # in a file named as subtitles, any "-->" line is a cue timing (a malformed one is refused
    # there, not read aloud as words)
    if any(_TIMING_LINE.match(line) or (cue_file and "-->" in line) for line in lines):
        return (FORMAT_WEBVTT if hint == FORMAT_WEBVTT else FORMAT_SRT), None
    return FORMAT_TEXT, None


def _transcript(fmt: str, utterances: Iterable[Utterance]) -> Transcript:
    kept = [u for u in utterances if u.text]
    speakers: list[str] = []
    for utterance in kept:
        if utterance.speaker is not None and utterance.speaker not in speakers:
            speakers.append(utterance.speaker)
    has_timestamps = bool(kept) and all(u.start_s is not None for u in kept)
    return Transcript(format=fmt, utterances=kept, speakers=speakers, has_timestamps=has_timestamps)


# ---------------------------------------------------------------- cleaning


_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d[\d:.,]*>")  # markup and VTT karaoke timestamps
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")  # SRT positioning such as {\an8}
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_PARENTHESISED_ONLY = re.compile(r"^(?:\([^()]*\)\s*)+$")
_SCRUBBED = re.compile(r"\bscrubbed_entry\b", re.IGNORECASE)
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def clean_text(text: str) -> str:
    """Speech only: tags, annotations and placeholders removed, whitespace collapsed."""
    text = _TAG.sub(" ", text)
    text = _ASS_OVERRIDE.sub(" ", text)
    text = html.unescape(text)
    text = _BRACKETED.sub(" ", text)
    text = _SCRUBBED.sub(" ", text)
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE)).replace("♪", " ")
    text = " ".join(text.split())
    if _PARENTHESISED_ONLY.match(text):
        return ""
    return text


def _clean_speaker(label: str | None) -> str | None:
    if label is None:
        return None
    label = " ".join(html.unescape(label).translate(_INVISIBLE).split())
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


def _parse_seconds(value: str) -> float | None:
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


# no interview runs two days: later times are corrupt (and would make millions of windows)
MAX_TIME_S = 48 * 3600.0


def _check_times(start: float | None, end: float | None, fmt: str, where: str) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise TranscriptError(f"{where}: {name} time must be a finite, non-negative number of seconds", fmt)
        if value is not None and value > MAX_TIME_S:
            raise TranscriptError(f"{where}: {name} time is beyond {MAX_TIME_S / 3600:.0f} hours", fmt)
    if start is not None and end is not None and end < start:
        raise TranscriptError(f"{where}: end time is before start time", fmt)


# ---------------------------------------------------------------- WebVTT and SRT


_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:\s+([^>]*))?>", re.IGNORECASE)
_SPEAKER_PREFIX = re.compile(r"^([^\W\d_][\w.'’ -]{0,39}?)\s*:\s+(\S.*)$")
_VTT_SKIPPED_BLOCKS = re.compile(r"^(?:NOTE|STYLE|REGION)(?:\s|$)")


def _blocks(text: str) -> list[list[tuple[int, str]]]:
    """Runs of non-blank lines, each line with its 1-based number."""
    blocks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            current.append((number, line))
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _parse_cues(text: str, fmt: str) -> list[Utterance]:
    blocks = _blocks(text)
    if blocks and _WEBVTT_HEADER.match(blocks[0][0][1].strip()):
        blocks = blocks[1:]
    cues: list[tuple[float, float, list[str]]] = []
    for block in blocks:
        if _VTT_SKIPPED_BLOCKS.match(block[0][1].strip()):
            continue
        timing_at = next((i for i, (_, line) in enumerate(block) if "-->" in line), None)
        if timing_at is None:
            # A bare number is a lone cue identifier; other text continues the previous cue.
            if cues and not (len(block) == 1 and block[0][1].strip().isdigit()):
                cues[-1][2].extend(line for _, line in block)
            continue
        number, line = block[timing_at]
        match = _TIMING_LINE.match(line)
        start = _parse_seconds(match.group(1)) if match else None
        end = _parse_seconds(match.group(2)) if match else None
        if start is None or end is None:
            expected = "HH:MM:SS.mmm --> HH:MM:SS.mmm" if fmt == FORMAT_WEBVTT else "HH:MM:SS,mmm --> HH:MM:SS,mmm"
            raise TranscriptError(f"line {number}: malformed cue timing (expected {expected})", fmt)
        _check_times(start, end, fmt, f"line {number}")
        cues.append((start, end, [payload for _, payload in block[timing_at + 1 :]]))
    voiced = [_cue_voices(lines) for _, _, lines in cues]
    joined = [" ".join(line.strip() for line in lines) for _, _, lines in cues]
    prefixes = [
        None if spans else _speaker_prefix(_TAG.sub("", text).strip())
        for spans, text in zip(voiced, joined, strict=True)
    ]
    # As in plain text: a "Word:" opening is a speaker only where most unvoiced cues have one.
    unvoiced = sum(not spans for spans in voiced)
    use_prefixes = sum(prefix is not None for prefix in prefixes) * 2 >= max(1, unvoiced)
    utterances: list[Utterance] = []
    for (start, end, _), spans, text, prefix in zip(cues, voiced, joined, prefixes, strict=True):
        if not spans:
            spans = [(_clean_speaker(prefix[0]), prefix[1])] if use_prefixes and prefix else [(None, text)]
        utterances.extend(Utterance(clean_text(words), start, end, speaker) for speaker, words in spans)
    return utterances


def _cue_voices(lines: list[str]) -> list[tuple[str | None, str]]:
    """(speaker, raw text) spans of a cue split at its <v> voice tags; empty when it has none."""
    payload = "\n".join(lines)
    voices = list(_VOICE.finditer(payload))
    if not voices:
        return []
    spans = [(None, payload[: voices[0].start()])]
    for i, voice in enumerate(voices):
        stop = voices[i + 1].start() if i + 1 < len(voices) else len(payload)
        spans.append((_clean_speaker(voice.group(1)), payload[voice.end() : stop]))
    return [(speaker, words) for speaker, words in spans if _TAG.sub("", words).strip()]


# ---------------------------------------------------------------- TSV / CSV


_COLUMN_NAMES = {
    "start": {"start_time", "start", "starttime", "start_s", "begin", "begin_time"},
    "end": {"stop_time", "end_time", "end", "stop", "stoptime", "endtime", "end_s"},
    "speaker": {"speaker", "speaker_label", "speaker_name", "role"},
    "text": {"value", "text", "transcript", "utterance", "sentence", "content"},
}


def _table_columns(header_line: str) -> tuple[dict[str, int], int] | None:
    """(column positions, column count) when the line is a header naming a text column and one more."""
    delimiter = "\t" if "\t" in header_line else ","
    if delimiter not in header_line:
        return None
    cells = next(csv.reader([header_line], delimiter=delimiter))
    names = [re.sub(r"[\s-]+", "_", cell.strip().strip("\"'").casefold()) for cell in cells]
    columns: dict[str, int] = {}
    for role, accepted in _COLUMN_NAMES.items():
        found = [i for i, name in enumerate(names) if name in accepted]
        if found:
            columns[role] = found[0]
    if "text" not in columns or len(columns) < 2:
        return None
    return columns, len(names)


def _parse_table(text: str, fmt: str) -> list[Utterance]:
    delimiter = "\t" if fmt == FORMAT_TSV else ","
    lines = text.split("\n")
    header_at = next(i for i, line in enumerate(lines) if line.strip())
    header = _table_columns(lines[header_at])
    if header is None:  # only reached for a headerless DAIC-WOZ file
        header = {"start": 0, "end": 1, "speaker": 2, "text": 3}, 4
        header_at -= 1
    columns, width = header
    # DAIC-WOZ values are unquoted and may hold quote characters; E-DAIC CSVs quote text with commas.
    quoting = csv.QUOTE_NONE if fmt == FORMAT_TSV else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO("\n".join(lines[header_at + 1 :])), delimiter=delimiter, quoting=quoting)
    utterances: list[Utterance] = []
    row_end_line = header_at + 1  # csv's line_num counts from our slice
    for row in reader:
        first_line = row_end_line + 1
        row_end_line = header_at + 1 + reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {first_line}"
        text_at = columns["text"]
        # A tab inside a DAIC-WOZ value splits it; put the pieces back together.
        words = delimiter.join(row[text_at:]) if text_at == width - 1 else _cell(row, text_at)
        times: dict[str, float | None] = {}
        for role in ("start", "end"):
            if role not in columns:
                times[role] = None
                continue
            cell = _cell(row, columns[role])
            if not cell.strip():
                raise TranscriptError(f"{where}: missing {role} time", fmt)
            times[role] = _parse_seconds(cell)
            if times[role] is None:
                raise TranscriptError(f"{where}: {role} time is not a number of seconds or HH:MM:SS", fmt)
        _check_times(times["start"], times["end"], fmt, where)
        speaker = _clean_speaker(_cell(row, columns["speaker"])) if "speaker" in columns else None
        utterances.append(Utterance(clean_text(words), times["start"], times["end"], speaker))
    return utterances


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def _looks_like_headerless_daic(line: str) -> bool:
    cells = line.split("\t")
    return len(cells) >= 4 and all(_parse_seconds(cell) is not None for cell in cells[:2])


# ---------------------------------------------------------------- JSON


_JSON_KEYS = {
    "text": ("text", "transcript", "utterance", "value"),
    "start": ("start", "start_time", "start_s"),
    "end": ("end", "end_time", "stop", "stop_time", "end_s"),
    "speaker": ("speaker", "speaker_label", "role"),
}


def _parse_json(parsed: object) -> list[Utterance]:
    segments: object = parsed
    if isinstance(parsed, dict):
        container = next((key for key in ("segments", "utterances") if key in parsed), None)
        if container is not None:
            segments = parsed[container]
        elif isinstance(parsed.get("text"), str):
            return [Utterance(text, None, None, None) for text in _plain_utterances(parsed["text"])]
        else:
            raise TranscriptError("expected a list of segments or an object with 'segments'", FORMAT_JSON)
    if not isinstance(segments, list):
        raise TranscriptError("'segments' must be a list", FORMAT_JSON)
    utterances: list[Utterance] = []
    for number, segment in enumerate(segments, start=1):
        where = f"segment {number}"
        if not isinstance(segment, dict):
            raise TranscriptError(f"{where} is not an object", FORMAT_JSON)
        values = {role: next((segment[k] for k in keys if k in segment), None) for role, keys in _JSON_KEYS.items()}
        if values["text"] is None:
            words = ""
        elif isinstance(values["text"], str):
            words = values["text"]
        else:
            raise TranscriptError(f"{where}: 'text' must be a string", FORMAT_JSON)
        times = {role: _json_seconds(values[role], role, where) for role in ("start", "end")}
        _check_times(times["start"], times["end"], FORMAT_JSON, where)
        speaker = values["speaker"]
        # Diarisers label speakers "SPEAKER_00" or 0; both are labels.
        if isinstance(speaker, bool) or not isinstance(speaker, (str, int, type(None))):
            raise TranscriptError(f"{where}: 'speaker' must be a string", FORMAT_JSON)
        label = _clean_speaker(str(speaker)) if speaker is not None else None
        utterances.append(Utterance(clean_text(words), times["start"], times["end"], label))
    return utterances


def _json_seconds(value: object, role: str, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    seconds: float | None = None
    if isinstance(value, str):
        seconds = _parse_seconds(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    if seconds is None:
        raise TranscriptError(f"{where}: '{role}' must be a number of seconds", FORMAT_JSON)
    return seconds


# ---------------------------------------------------------------- plain text


_TERMINAL = re.compile(r"[.!?…:;\"'”’)\]]$")


def _speaker_prefix(line: str) -> tuple[str, str] | None:
    match = _SPEAKER_PREFIX.match(line)
    if not match or len(match.group(1).split()) > 4:
        return None
    return match.group(1), match.group(2)


def _plain_utterances(text: str) -> list[str]:
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
        for row in rows:
            cleaned = clean_text(row)
            out.extend(split_sentences(cleaned) if word_count(cleaned) > LONG_TURN_WORDS else [cleaned])
    return out


def _parse_plain(text: str) -> list[Utterance]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    prefixes = [_speaker_prefix(line) for line in lines]
    if not lines or sum(p is not None for p in prefixes) * 2 < len(lines):
        return [Utterance(u, None, None, None) for u in _plain_utterances(text)]
    # Speaker turns; an unprefixed line continues the current turn.
    turns: list[tuple[str | None, list[str]]] = []
    for line, prefix in zip(lines, prefixes, strict=True):
        if prefix is not None:
            turns.append((_clean_speaker(prefix[0]), [prefix[1]]))
        elif turns:
            turns[-1][1].append(line)
        else:
            turns.append((None, [line]))
    utterances: list[Utterance] = []
    for speaker, parts in turns:
        cleaned = clean_text(" ".join(parts))
        pieces = split_sentences(cleaned) if word_count(cleaned) > LONG_TURN_WORDS else [cleaned]
        utterances.extend(Utterance(piece, None, None, speaker) for piece in pieces)
    return utterances
