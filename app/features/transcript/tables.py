"""Tables: DAIC-WOZ TSV and E-DAIC CSV.

A header row naming a text column (``value``, ``text``, ...) and optionally start / end /
speaker columns: DAIC-WOZ ``start_time stop_time speaker value`` (tab-separated; a
headerless 4-column file with numeric times is read in that order), E-DAIC ASR
``Start_Time,End_Time,Text,Confidence`` (no speakers). Times are seconds or
``[HH:]MM:SS[.mmm]``.
"""

from __future__ import annotations

import csv
import io
import re

from app.features.transcript.cleaning import check_times, clean_speaker, clean_text, parse_seconds
from app.features.transcript.utterance import FORMAT_TSV, TranscriptError, Utterance

_COLUMN_NAMES = {
    "start": {"start_time", "start", "starttime", "start_s", "begin", "begin_time"},
    "end": {"stop_time", "end_time", "end", "stop", "stoptime", "endtime", "end_s"},
    "speaker": {"speaker", "speaker_label", "speaker_name", "role"},
    "text": {"value", "text", "transcript", "utterance", "sentence", "content"},
}


def table_columns(header_line: str) -> tuple[dict[str, int], int] | None:
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


def parse_table(text: str, fmt: str) -> list[Utterance]:
    delimiter = "\t" if fmt == FORMAT_TSV else ","
    lines = text.split("\n")
    header_at = next(i for i, line in enumerate(lines) if line.strip())
    header = table_columns(lines[header_at])
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
            times[role] = parse_seconds(cell)
            if times[role] is None:
                raise TranscriptError(f"{where}: {role} time is not a number of seconds or HH:MM:SS", fmt)
        check_times(times["start"], times["end"], fmt, where)
        speaker = clean_speaker(_cell(row, columns["speaker"])) if "speaker" in columns else None
        utterances.append(Utterance(clean_text(words), times["start"], times["end"], speaker))
    return utterances


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def looks_like_headerless_daic(line: str) -> bool:
    cells = line.split("\t")
    return len(cells) >= 4 and all(parse_seconds(cell) is not None for cell in cells[:2])

