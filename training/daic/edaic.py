"""Pure readers for the E-DAIC corpus files (AVEC 2019; no training, no resampling).

Source: the E-DAIC manual (https://dcapswoz.ict.usc.edu/wwwedaic/E-DAIC%20Manual.pdf) as cited by
secondary sources; shared/research/anchors.md A.3 "E-DAIC (AVEC 2019)" marks these facts
**[secondary]**, so the readers are lenient where the layout is only inferred.

Layout: one folder per session, ``<root>/<id>_P/`` (or ``<root>/data/<id>_P/``), holding

- ``<id>_AUDIO.wav``;
- ``<id>_Transcript.csv``: Google Cloud Speech ASR, comma-separated with header
  ``Start_Time,End_Time,Text,Confidence``, participant speech only, no speaker column (read by
  ``app.features.transcript.parse_transcript``);
- ``features/<id>_OpenFace2.1.0_Pose_gaze_AUs.csv``: OpenFace 2.1.0 per-frame output at 30 fps,
  one header line with names separated by ``", "``: ``frame``, optional ``face_id``,
  ``timestamp``, ``confidence``, ``success``, ``gaze_0_x .. gaze_1_z`` (unit vectors in camera
  coordinates: x right, y down, z away from the camera; eye 0 is the leftmost eye in the image),
  ``gaze_angle_x/y``, ``pose_Tx/Ty/Tz`` (mm), ``pose_Rx/Ry/Rz`` (radians, OpenFace's XYZ Euler
  convention), then ``AU*_r`` intensities and ``AU*_c`` presences. No 68 landmarks. Columns are
  selected by name, so ``face_id`` and extra columns may or may not be present.

Labels live in ``<root>/labels/`` (or directly in ``<root>``): ``train_split.csv``,
``dev_split.csv`` and ``test_split.csv`` with header ``Participant_ID, Gender, PHQ_Binary,
PHQ_Score, PCL-C (PTSD), PTSD Severity`` (PTSD columns ignored; a gender that is not an integer,
e.g. "male", becomes None), and optionally ``Detailed_PHQ8_Labels.csv`` with the eight item
scores. That file's exact header is an inference (``PHQ_8NoInterest`` .. ``PHQ_8Total``), so item
columns are matched after dropping any ``PHQ_8`` / ``PHQ8_`` / ``PHQ_`` prefix, case and
punctuation.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.features.transcript import Transcript, parse_transcript
from training.daic.files import (
    PHQ8_ITEMS,
    DaicFileError,
    SessionLabel,
    _int_or_none,
    _parse_table,
    split_header_keys,
    split_rows,
)

OPENFACE_FPS = 30
OPENFACE_SUFFIX = "_OpenFace2.1.0_Pose_gaze_AUs.csv"
EDAIC_SPLITS = ("train", "dev", "test")
REQUIRED_SPLITS = ("train", "dev")  # the test split's labels were released later; older copies lack it
DETAILED_LABELS_FILE = "Detailed_PHQ8_Labels.csv"
SESSION_FILES = ("audio", "transcript", "openface")

GAZE_COLUMNS = ("gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z")
GAZE_ANGLE_COLUMNS = ("gaze_angle_x", "gaze_angle_y")
POSE_TRANSLATION_COLUMNS = ("pose_Tx", "pose_Ty", "pose_Tz")
POSE_ROTATION_COLUMNS = ("pose_Rx", "pose_Ry", "pose_Rz")
_ACTION_UNIT_COLUMN = re.compile(r"^AU\d+_[rc]$", re.IGNORECASE)
_SUCCESS_ALIASES = ("success", "detection_success")


# --------------------------------------------------------------------------- OpenFace


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays field-wise is ambiguous
class OpenFaceTrack:
    frame: np.ndarray  # (T,) int64, -1 where the cell was not a number
    timestamp: np.ndarray  # (T,) float64 seconds
    confidence: np.ndarray  # (T,) float32
    success: np.ndarray  # (T,) bool, the tracker's own flag
    gaze: np.ndarray  # (T, 2, 3) float32: eye 0, eye 1 unit vectors in camera coordinates
    gaze_angle: np.ndarray  # (T, 2) float32 radians: gaze_angle_x, gaze_angle_y
    pose_translation: np.ndarray  # (T, 3) float32 mm: Tx, Ty, Tz
    pose_rotation: np.ndarray  # (T, 3) float32 radians: Rx, Ry, Rz
    action_units: dict[str, np.ndarray]  # column name -> (T,) float32, in file order

    @property
    def valid(self) -> np.ndarray:
        """Frames usable downstream: tracked and with finite gaze and pose."""
        frames = len(self.frame)
        finite = (
            np.isfinite(self.gaze.reshape(frames, -1)).all(axis=1)
            & np.isfinite(self.gaze_angle).all(axis=1)
            & np.isfinite(self.pose_translation).all(axis=1)
            & np.isfinite(self.pose_rotation).all(axis=1)
        )
        return self.success & finite

    def __len__(self) -> int:
        return len(self.frame)


def read_openface(path: str | Path) -> OpenFaceTrack:
    """Read one ``<id>_OpenFace2.1.0_Pose_gaze_AUs.csv``.

    Frames with ``success`` 0 get NaN gaze, pose and AU values: OpenFace writes zeros there, which
    would otherwise read as a real measurement (a zero gaze vector, no AU activation).
    """
    path = Path(path)
    if not path.is_file():
        raise DaicFileError(f"{path}: OpenFace file not found")
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise DaicFileError(f"{path}: empty file (no header line)")
    header = [name.strip() for name in numbered[0][1].split(",")]
    if len(numbered) == 1:
        raise DaicFileError(f"{path}: empty file (header but no frames)")
    position: dict[str, int] = {}
    for index, name in enumerate(header):
        position.setdefault(name.lower(), index)  # first of any duplicate names

    def column(name: str) -> int:
        for alias in _SUCCESS_ALIASES if name == "success" else (name,):
            if alias.lower() in position:
                return position[alias.lower()]
        raise DaicFileError(f"{path}: missing required column {name!r}")

    required = (
        "frame",
        "timestamp",
        "confidence",
        "success",
        *GAZE_COLUMNS,
        *GAZE_ANGLE_COLUMNS,
        *POSE_TRANSLATION_COLUMNS,
        *POSE_ROTATION_COLUMNS,
    )
    indices = {name: column(name) for name in required}
    action_unit_indices = {name: index for index, name in enumerate(header) if _ACTION_UNIT_COLUMN.match(name)}

    width = len(header)
    rows: list[list[str]] = []
    for number, line in numbered[1:]:
        cells = line.split(",")
        if len(cells) != width:
            raise DaicFileError(f"{path}: line {number}: {len(cells)} fields, header has {width}")
        rows.append(cells)
    table = _parse_table(rows)

    def values(names: Sequence[str]) -> np.ndarray:
        return table[:, [indices[name] for name in names]].astype(np.float32)

    success = np.nan_to_num(table[:, indices["success"]], nan=0.0) > 0.5
    failed = ~success
    gaze = values(GAZE_COLUMNS).reshape(len(table), 2, 3)
    gaze_angle = values(GAZE_ANGLE_COLUMNS)
    pose_translation = values(POSE_TRANSLATION_COLUMNS)
    pose_rotation = values(POSE_ROTATION_COLUMNS)
    action_units = {name: table[:, index].astype(np.float32) for name, index in action_unit_indices.items()}
    for array in (gaze, gaze_angle, pose_translation, pose_rotation, *action_units.values()):
        array[failed] = np.nan
    return OpenFaceTrack(
        frame=np.nan_to_num(table[:, indices["frame"]], nan=-1).astype(np.int64),
        timestamp=table[:, indices["timestamp"]].copy(),
        confidence=table[:, indices["confidence"]].astype(np.float32),
        success=success,
        gaze=gaze,
        gaze_angle=gaze_angle,
        pose_translation=pose_translation,
        pose_rotation=pose_rotation,
        action_units=action_units,
    )


# --------------------------------------------------------------------------- labels


def _labels_dir(root: Path) -> Path:
    labels = root / "labels"
    return labels if labels.is_dir() else root


def _find_file(folder: Path, name: str) -> Path | None:
    """``folder/name``, else a case-insensitive match (copies differ in case); None when absent."""
    exact = folder / name
    if exact.is_file():
        return exact
    if not folder.is_dir():
        return None
    wanted = name.lower()
    return next((p for p in sorted(folder.iterdir()) if p.name.lower() == wanted and p.is_file()), None)


def _read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells)]) of a non-empty CSV; blank lines skipped."""
    reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")))
    rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if not rows:
        raise DaicFileError(f"{path}: empty file")
    header = rows[0][1]
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DaicFileError(f"{path}: line {line}: {len(row)} fields, header has {len(header)}")
    return header, rows[1:]


def read_edaic_split(path: str | Path, split: str) -> list[SessionLabel]:
    """Read one E-DAIC split CSV (``Participant_ID, Gender, PHQ_Binary, PHQ_Score, ...``)."""
    path = Path(path)
    if not path.is_file():
        raise DaicFileError(f"{path}: split file not found")
    header, rows = _read_csv_rows(path)
    keys = split_header_keys(path, header)  # PHQ_Score -> phq8_score
    # lenient gender: some copies spell it out ("male"); the mapping is not documented
    return [row.label(split, None, lenient_gender=True) for row in split_rows(path, keys, rows)]


def _item_key(name: str) -> str:
    # "PHQ_8NoInterest", "PHQ8_NoInterest", "PHQ_NoInterest", "NoInterest" -> "nointerest"
    key = re.sub(r"[^a-z0-9]", "", name.strip().lstrip("\ufeff").lower())
    return re.sub(r"^phq8?", "", key)


def read_detailed_phq8(path: str | Path) -> dict[int, tuple[int, ...] | None]:
    """Participant -> its 8 item scores in PHQ8_ITEMS order (None when a cell is blank).

    A ``Total`` column, when present, must equal the items' sum.
    """
    path = Path(path)
    if not path.is_file():
        raise DaicFileError(f"{path}: detailed PHQ-8 file not found")
    header, rows = _read_csv_rows(path)
    keys = [_item_key(name) for name in header]
    if "participantid" not in keys:
        raise DaicFileError(f"{path}: no Participant_ID column in header")
    item_keys = [item.lower() for item in PHQ8_ITEMS]
    missing = [item for item, key in zip(PHQ8_ITEMS, item_keys, strict=True) if key not in keys]
    if missing:
        raise DaicFileError(f"{path}: missing PHQ-8 item columns {', '.join(missing)}")
    items_by_participant: dict[int, tuple[int, ...] | None] = {}
    for line, row in rows:
        record = dict(zip(keys, row, strict=True))
        participant_id = _int_or_none(record["participantid"], path, line, "Participant_ID")
        if participant_id is None:
            raise DaicFileError(f"{path}: line {line}: empty Participant_ID")
        if participant_id in items_by_participant:
            raise DaicFileError(f"{path}: line {line}: participant {participant_id} listed twice")
        values = [_int_or_none(record[key], path, line, key) for key in item_keys]
        items = tuple(v for v in values if v is not None)
        if len(items) != len(PHQ8_ITEMS):
            items_by_participant[participant_id] = None  # a partial tuple would misalign items
            continue
        total = _int_or_none(record.get("total"), path, line, "Total")
        if total is not None and total != sum(items):
            raise DaicFileError(
                f"{path}: line {line}: participant {participant_id} items sum to {sum(items)}, Total is {total}"
            )
        items_by_participant[participant_id] = items
    return items_by_participant


def _find_detailed_labels(folder: Path) -> Path | None:
    exact = _find_file(folder, DETAILED_LABELS_FILE)
    if exact is not None:
        return exact
    # The file name is an inference too: accept e.g. "detailed_phq8_labels.csv" spelled differently.
    candidates = sorted(
        p for p in folder.glob("*.csv") if p.name.lower().startswith("detailed") and "phq" in p.name.lower()
    )
    return candidates[0] if candidates else None


def read_edaic_labels(root: str | Path) -> list[SessionLabel]:
    """Labels of every split, train then dev then test, with items from the detailed file merged in."""
    folder = _labels_dir(Path(root))
    labels: list[SessionLabel] = []
    for split in EDAIC_SPLITS:
        path = _find_file(folder, f"{split}_split.csv")
        if path is None:
            if split in REQUIRED_SPLITS:
                raise DaicFileError(f"{folder / f'{split}_split.csv'}: split file not found")
            continue
        labels.extend(read_edaic_split(path, split))

    seen: dict[int, str] = {}
    for label in labels:
        if label.participant_id in seen:
            raise DaicFileError(
                f"{folder}: participant {label.participant_id} is in both the {seen[label.participant_id]} "
                f"and the {label.split} split"
            )
        seen[label.participant_id] = label.split

    detailed_path = _find_detailed_labels(folder)
    if detailed_path is None:
        return labels
    detailed = read_detailed_phq8(detailed_path)
    merged: list[SessionLabel] = []
    for label in labels:
        # items that disagree with the split's score are kept as read: which figure wins is the
        # training loader's call (training.daic.sessions.consistent_label), as for DAIC-WOZ
        items = detailed.get(label.participant_id)
        merged.append(
            SessionLabel(
                participant_id=label.participant_id,
                split=label.split,
                phq8_binary=label.phq8_binary,
                phq8_score=label.phq8_score,
                items=items,
                gender=label.gender,
            )
        )
    return merged


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class EdaicSessionFiles:
    participant_id: int
    folder: Path
    audio: Path
    transcript: Path
    openface: Path

    def require(self, path: Path) -> Path:
        if not path.is_file():
            raise DaicFileError(f"{path}: missing file of session {self.participant_id}")
        return path

    def read_openface(self) -> OpenFaceTrack:
        return read_openface(self.require(self.openface))

    def read_transcript(self) -> Transcript:
        path = self.require(self.transcript)
        return parse_transcript(path.read_bytes(), filename_hint=path.name, max_bytes=50_000_000)


def _session_folder(root: Path, participant_id: int) -> Path | None:
    for base in (root, root / "data"):
        folder = base / f"{participant_id}_P"
        if folder.is_dir():
            return folder
    return None


def edaic_session_files(
    root: str | Path, participant_id: int, required: tuple[str, ...] = SESSION_FILES
) -> EdaicSessionFiles:
    """Locate ``<root>[/data]/<id>_P`` files; raise naming the first missing required one.

    ``required`` names entries that must exist: "audio", "transcript", "openface".
    """
    unknown = [name for name in required if name not in SESSION_FILES]
    if unknown:
        raise ValueError(f"unknown session file {unknown[0]!r}; expected some of {SESSION_FILES}")
    root = Path(root)
    folder = _session_folder(root, participant_id)
    if folder is None:
        raise DaicFileError(f"{root / f'{participant_id}_P'}: session folder not found (nor under {root / 'data'})")

    # Missing files keep their expected path, so the error names what was looked for.
    audio_name = f"{participant_id}_AUDIO.wav"
    transcript_name = f"{participant_id}_Transcript.csv"
    openface_name = f"{participant_id}{OPENFACE_SUFFIX}"
    openface = _find_file(folder / "features", openface_name) or _find_file(folder, openface_name)  # flat copies
    files = EdaicSessionFiles(
        participant_id=participant_id,
        folder=folder,
        audio=_find_file(folder, audio_name) or folder / audio_name,
        transcript=_find_file(folder, transcript_name) or folder / transcript_name,
        openface=openface or folder / "features" / openface_name,
    )
    paths = {"audio": files.audio, "transcript": files.transcript, "openface": files.openface}
    for name in required:
        files.require(paths[name])
    return files


def looks_like_edaic(root: str | Path) -> bool:
    """Whether some ``<id>_P/features/<id>_OpenFace2.1.0_Pose_gaze_AUs.csv`` exists under root or root/data."""
    root = Path(root)
    for base in (root, root / "data"):
        if not base.is_dir():
            continue
        for folder in base.glob("*_P"):
            participant = folder.name[: -len("_P")]
            if participant.isdigit() and (folder / "features" / f"{participant}{OPENFACE_SUFFIX}").is_file():
                return True
    return False
