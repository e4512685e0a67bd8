"""Pure readers for the DAIC-WOZ corpus files (no training, no resampling).

Layout (official distribution, see shared/research/anchors.md A.3): one folder per session,
``<root>/<id>_P/<id>_CLNF_features.txt`` and so on, plus split CSVs at ``<root>``.

- CLNF files are text with one header line and ``", "``-separated values, starting with
  ``frame, timestamp, confidence, success`` (the documentation names the last one
  ``detection_success``; both are accepted). Failed frames keep their row, with
  ``success = 0`` and zero or non-numeric values (``-1.#IND``), which become NaN here.
- Split CSVs: train/dev carry ``Participant_ID, PHQ8_Binary, PHQ8_Score, Gender`` and the
  eight ``PHQ8_<item>`` scores; ``full_test_split.csv`` carries ``PHQ_Binary, PHQ_Score``
  and no items; the original ``test_split`` carries ``participant_ID, Gender`` only.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.features.transcript import Transcript, parse_transcript

LANDMARKS = 68
GAZE_VECTORS = 4  # two world-space, two head-space

KIND_FEATURES = "features"
KIND_FEATURES3D = "features3D"
KIND_GAZE = "gaze"
KIND_POSE = "pose"
CLNF_KINDS = (KIND_FEATURES, KIND_FEATURES3D, KIND_GAZE, KIND_POSE)

# Value shape per frame for each CLNF kind: reshaping happens after the meta columns.
_KIND_SHAPE: dict[str, tuple[int, ...]] = {
    KIND_FEATURES: (2, LANDMARKS),  # stored x0..x67, y0..y67 -> transposed to (68, 2)
    KIND_FEATURES3D: (3, LANDMARKS),  # X0..X67, Y.., Z..
    KIND_GAZE: (GAZE_VECTORS, 3),  # x_0, y_0, z_0, x_1, ..., x_h1, y_h1, z_h1
    KIND_POSE: (6,),  # X, Y, Z (mm), Rx, Ry, Rz (rad)
}
_META_COLUMNS = ("frame", "timestamp", "confidence", "success")
_SUCCESS_ALIASES = frozenset({"success", "detection_success"})

# Sessions absent from the corpus (anchors.md A.3: "189 sessions (300–492). Excluded: ...").
EXCLUDED_SESSIONS: dict[int, str] = {
    342: "excluded from the DAIC-WOZ depression release (no session data)",
    394: "excluded from the DAIC-WOZ depression release (no session data)",
    398: "excluded from the DAIC-WOZ depression release (no session data)",
    460: "excluded from the DAIC-WOZ depression release (no session data)",
}
# PHQ-8 item columns, in questionnaire order.
PHQ8_ITEMS = (
    "NoInterest",
    "Depressed",
    "Sleep",
    "Tired",
    "Appetite",
    "Failure",
    "Concentrating",
    "Moving",
)
PHQ8_BINARY_THRESHOLD = 10


class DaicFileError(ValueError):
    """A DAIC-WOZ file that is missing or malformed; the message names the file."""


class ExcludedSessionError(DaicFileError):
    """A participant id the corpus excludes; ``reason`` says why."""

    def __init__(self, participant_id: int, reason: str) -> None:
        super().__init__(f"session {participant_id} is excluded: {reason}")
        self.participant_id = participant_id
        self.reason = reason


# --------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SessionLabel:
    participant_id: int
    split: str  # "train", "dev" or "test"
    phq8_binary: int | None  # None where the split file has no labels (original test split)
    phq8_score: int | None
    items: tuple[int, ...] | None  # the 8 item scores in PHQ8_ITEMS order; None when absent
    gender: int | None = None


def _normalise_header(name: str) -> str:
    # Headers vary in case (participant_ID), BOMs, spaces and the PHQ_ vs PHQ8_ prefix.
    key = name.strip().lstrip("\ufeff").lower().replace(" ", "_")
    return re.sub(r"^phq_", "phq8_", key)


def split_name_from_path(path: Path) -> str:
    stem = path.name.lower()
    for name in ("train", "dev", "test"):
        if name in stem:
            return name
    raise DaicFileError(f"{path}: cannot tell the split from the file name; pass split=")


def _int_or_none(value: str | None, path: Path, line: int, column: str) -> int | None:
    if value is None or value.strip() in ("", "NA", "nan"):
        return None
    try:
        number = float(value)
    except ValueError:
        raise DaicFileError(f"{path}: line {line}: {column} is not a number") from None
    if not math.isfinite(number) or number != int(number):
        raise DaicFileError(f"{path}: line {line}: {column} is not an integer")
    return int(number)


# The split CSVs of DAIC-WOZ and E-DAIC share their row format: these read it for both readers.


def split_header_keys(path: Path, header: Sequence[str]) -> list[str]:
    """The header's names normalised (``PHQ_Score`` -> ``phq8_score``); a Participant_ID column is required."""
    keys = [_normalise_header(name) for name in header]
    if "participant_id" not in keys:
        raise DaicFileError(f"{path}: no Participant_ID column in header")
    return keys


@dataclass(frozen=True)
class SplitRow:
    """One data row of a split CSV: its cells by normalised header key, and its participant."""

    path: Path
    line: int
    participant_id: int
    cells: dict[str, str]

    def integer(self, key: str) -> int | None:
        """The cell as an integer; None when blank or absent, DaicFileError naming the line when not an integer."""
        return _int_or_none(self.cells.get(key), self.path, self.line, key)

    def label(self, split: str, items: tuple[int, ...] | None, *, lenient_gender: bool = False) -> SessionLabel:
        """This row as a SessionLabel. ``lenient_gender``: a gender that is not an integer becomes None."""
        phq8_binary = self.integer("phq8_binary")
        phq8_score = self.integer("phq8_score")
        try:
            gender = self.integer("gender")
        except DaicFileError:
            if not lenient_gender:
                raise
            gender = None
        return SessionLabel(
            participant_id=self.participant_id,
            split=split,
            phq8_binary=phq8_binary,
            phq8_score=phq8_score,
            items=items,
            gender=gender,
        )


def split_rows(path: Path, keys: Sequence[str], rows: Iterable[tuple[int, Sequence[str]]]) -> Iterator[SplitRow]:
    """Each (line number, cells) row as a SplitRow; a row must have a field per key and a Participant_ID.

    Lazy, so each row is checked only when the caller has taken the ones before it: the first bad
    cell in file order is the one reported.
    """
    for line, cells in rows:
        if len(cells) != len(keys):
            raise DaicFileError(f"{path}: line {line}: {len(cells)} fields, header has {len(keys)}")
        record = dict(zip(keys, cells, strict=True))
        participant_id = _int_or_none(record.get("participant_id"), path, line, "participant_id")
        if participant_id is None:
            raise DaicFileError(f"{path}: line {line}: empty Participant_ID")
        yield SplitRow(path, line, participant_id, record)


def read_split(path: str | Path, split: str | None = None) -> list[SessionLabel]:
    """Read a split CSV; the split name comes from the file name unless given."""
    path = Path(path)
    if not path.is_file():
        raise DaicFileError(f"{path}: split file not found")
    split = split or split_name_from_path(path)
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    rows = [row for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        raise DaicFileError(f"{path}: empty split file")
    keys = split_header_keys(path, rows[0])
    item_keys = [f"phq8_{item.lower()}" for item in PHQ8_ITEMS]
    has_items = all(key in keys for key in item_keys)
    labels: list[SessionLabel] = []
    # line numbers count the non-blank rows, header first
    for row in split_rows(path, keys, enumerate(rows[1:], start=2)):
        item_values = [row.integer(key) for key in item_keys] if has_items else []
        # A row with any blank item gets no items rather than a partial tuple.
        items = tuple(v for v in item_values if v is not None) if has_items else None
        labels.append(row.label(split, items if items is not None and len(items) == len(PHQ8_ITEMS) else None))
    return labels


# --------------------------------------------------------------------------- CLNF


@dataclass(frozen=True)
class ClnfTrack:
    kind: str
    frame: np.ndarray  # (T,) int64
    timestamp: np.ndarray  # (T,) float64 seconds
    confidence: np.ndarray  # (T,) float32
    success: np.ndarray  # (T,) bool, the tracker's own flag
    values: np.ndarray  # float32: features (T,68,2), features3D (T,68,3), gaze (T,4,3), pose (T,6)
    columns: tuple[str, ...]  # value column names as in the file header

    @property
    def valid(self) -> np.ndarray:
        """Frames usable downstream: tracked and with every value finite."""
        finite = np.isfinite(self.values.reshape(len(self.values), -1)).all(axis=1)
        return self.success & finite

    def __len__(self) -> int:
        return len(self.frame)


def _parse_float(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        return math.nan  # "-1.#IND", "-nan(ind)" and the like, written for failed frames


def _parse_table(rows: list[list[str]]) -> np.ndarray:
    """Cells -> float64 table; numpy parses the usual all-numeric file in one call."""
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        pass  # some cell is not a number ("-nan(ind)" on failed frames): parse row by row
    table = np.empty((len(rows), len(rows[0])), dtype=np.float64)
    for index, row in enumerate(rows):
        try:
            table[index] = np.array(row, dtype=np.float64)
        except ValueError:
            table[index] = [_parse_float(cell) for cell in row]
    return table


def read_clnf(path: str | Path, kind: str) -> ClnfTrack:
    """Read one ``XXX_CLNF_<kind>.txt`` file."""
    if kind not in _KIND_SHAPE:
        raise ValueError(f"unknown CLNF kind {kind!r}; expected one of {CLNF_KINDS}")
    path = Path(path)
    if not path.is_file():
        raise DaicFileError(f"{path}: CLNF {kind} file not found")
    lines = [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not lines:
        raise DaicFileError(f"{path}: empty file (no header line)")
    header = [name.strip() for name in lines[0].split(",")]
    meta = [name.lower() for name in header[: len(_META_COLUMNS)]]
    if meta[:3] != list(_META_COLUMNS[:3]) or len(meta) < 4 or meta[3] not in _SUCCESS_ALIASES:
        raise DaicFileError(f"{path}: header must start with frame, timestamp, confidence, success")
    columns = tuple(header[len(_META_COLUMNS) :])
    shape = _KIND_SHAPE[kind]
    expected = math.prod(shape)
    if len(columns) != expected:
        raise DaicFileError(f"{path}: {len(columns)} value columns, a {kind} file has {expected}")

    width = len(header)
    rows = [line.split(",") for line in lines[1:]]
    for row_index, cells in enumerate(rows):
        if len(cells) != width:
            raise DaicFileError(f"{path}: line {row_index + 2}: {len(cells)} fields, header has {width}")
    table = _parse_table(rows) if rows else np.empty((0, width), dtype=np.float64)

    frames = len(table)
    values = table[:, len(_META_COLUMNS) :].astype(np.float32).reshape((frames, *shape))
    if kind in (KIND_FEATURES, KIND_FEATURES3D):
        values = values.transpose(0, 2, 1)  # coordinate blocks -> per-landmark points
    return ClnfTrack(
        kind=kind,
        frame=np.nan_to_num(table[:, 0], nan=-1).astype(np.int64),
        timestamp=table[:, 1],
        confidence=table[:, 2].astype(np.float32),
        success=np.nan_to_num(table[:, 3], nan=0.0) > 0.5,
        values=np.ascontiguousarray(values),
        columns=columns,
    )


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionFiles:
    participant_id: int
    folder: Path
    audio: Path
    transcript: Path
    clnf: dict[str, Path]  # kind -> path

    def require(self, path: Path) -> Path:
        if not path.is_file():
            raise DaicFileError(f"{path}: missing file of session {self.participant_id}")
        return path

    def read_clnf(self, kind: str) -> ClnfTrack:
        return read_clnf(self.require(self.clnf[kind]), kind)

    def read_transcript(self) -> Transcript:
        path = self.require(self.transcript)
        return parse_transcript(path.read_bytes(), filename_hint=path.name, max_bytes=50_000_000)


def excluded_reason(participant_id: int) -> str | None:
    return EXCLUDED_SESSIONS.get(participant_id)


def session_files(
    root: str | Path, participant_id: int, required: tuple[str, ...] = ("audio", "transcript", *CLNF_KINDS)
) -> SessionFiles:
    """Locate ``<root>/<id>_P/<id>_*`` files; raise naming the first missing required one.

    ``required`` names entries that must exist: "audio", "transcript" and CLNF kinds.
    """
    reason = excluded_reason(participant_id)
    if reason is not None:
        raise ExcludedSessionError(participant_id, reason)
    folder = Path(root) / f"{participant_id}_P"
    if not folder.is_dir():
        raise DaicFileError(f"{folder}: session folder not found")
    prefix = f"{participant_id}_"
    files = SessionFiles(
        participant_id=participant_id,
        folder=folder,
        audio=folder / f"{prefix}AUDIO.wav",
        transcript=folder / f"{prefix}TRANSCRIPT.csv",
        clnf={kind: folder / f"{prefix}CLNF_{kind}.txt" for kind in CLNF_KINDS},
    )
    for name in required:
        if name == "audio":
            files.require(files.audio)
        elif name == "transcript":
            files.require(files.transcript)
        elif name in files.clnf:
            files.require(files.clnf[name])
        else:
            raise ValueError(f"unknown session file {name!r}")
    return files
