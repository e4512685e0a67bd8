"""Writers for a tiny fake E-DAIC corpus in the official file formats (see training/daic/edaic.py).

Generic on purpose: callers pass the arrays / tuples to write, so a larger end-to-end fixture
(with real audio) can reuse them. Nothing here invents data except where a default is documented.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.daic.edaic import OPENFACE_FPS, OPENFACE_SUFFIX
from training.daic.files import PHQ8_ITEMS

# OpenFace 2.x action units: 17 intensities and 18 presences (AU28 has no intensity).
AU_INTENSITY_COLUMNS = tuple(f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45))
AU_PRESENCE_COLUMNS = tuple(f"AU{n:02d}_c" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45))
SPLIT_HEADER = ("Participant_ID", "Gender", "PHQ_Binary", "PHQ_Score", "PCL-C (PTSD)", "PTSD Severity")
TRANSCRIPT_HEADER = ("Start_Time", "End_Time", "Text", "Confidence")


@dataclass(frozen=True)
class FakeEdaicLabel:
    participant_id: int
    phq_score: int
    items: tuple[int, ...] | None = None  # PHQ8_ITEMS order; None: absent from the detailed file
    gender: int | str = 0  # a string ("male") mimics copies that spell gender out
    phq_binary: int | None = None  # None: derived from the score (>= 10)


def write_edaic_labels(
    root: Path,
    splits: Mapping[str, Sequence[FakeEdaicLabel]],
    *,
    labels_subdir: str | None = "labels",
    detailed: bool = True,
    item_prefix: str = "PHQ_8",
    ptsd_columns: bool = True,
) -> Path:
    """Write ``<split>_split.csv`` per split and ``Detailed_PHQ8_Labels.csv``; returns the labels folder.

    ``labels_subdir=None`` writes them directly in ``root``. The detailed file lists every label
    with items, its Total column being the items' sum (so a mismatch with PHQ_Score is the caller's).
    """
    folder = root / labels_subdir if labels_subdir else root
    folder.mkdir(parents=True, exist_ok=True)
    header = SPLIT_HEADER if ptsd_columns else SPLIT_HEADER[:4]
    for split, labels in splits.items():
        rows = []
        for label in labels:
            binary = label.phq_binary if label.phq_binary is not None else int(label.phq_score >= 10)
            row: list[object] = [label.participant_id, label.gender, binary, label.phq_score]
            if ptsd_columns:
                row += [0, 20]  # PTSD values are not read; any numbers do
            rows.append(row)
        _write_csv(folder / f"{split}_split.csv", header, rows)
    if detailed:
        detailed_header = ("Participant_ID", *(f"{item_prefix}{item}" for item in PHQ8_ITEMS), f"{item_prefix}Total")
        detailed_rows = [
            [label.participant_id, *label.items, sum(label.items)]
            for labels in splits.values()
            for label in labels
            if label.items is not None
        ]
        _write_csv(folder / "Detailed_PHQ8_Labels.csv", detailed_header, detailed_rows)
    return folder


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def openface_header(action_units: Sequence[str], *, face_id: bool = True) -> list[str]:
    """OpenFace 2.1.0 Pose_gaze_AUs column names, in the tool's order."""
    return [
        "frame",
        *(["face_id"] if face_id else []),
        "timestamp",
        "confidence",
        "success",
        *(f"gaze_{eye}_{axis}" for eye in (0, 1) for axis in "xyz"),
        "gaze_angle_x",
        "gaze_angle_y",
        "pose_Tx",
        "pose_Ty",
        "pose_Tz",
        "pose_Rx",
        "pose_Ry",
        "pose_Rz",
        *action_units,
    ]


def gaze_angles(gaze: np.ndarray) -> np.ndarray:
    """(T, 2) gaze_angle_x/y from (T, 2, 3) eye vectors, as OpenFace's GazeAnalyser computes them.

    The mean of the two eyes' vectors; x angle atan2(x, -z), y angle atan2(y, -z)
    (``GazeAnalysis::GetGazeAngle``: zero when looking straight at the camera).
    """
    mean = np.asarray(gaze, dtype=np.float64).mean(axis=1)
    return np.stack([np.arctan2(mean[:, 0], -mean[:, 2]), np.arctan2(mean[:, 1], -mean[:, 2])], axis=1)


def write_openface_csv(
    path: Path,
    *,
    timestamps: np.ndarray,
    success: np.ndarray,
    gaze: np.ndarray,
    pose_translation: np.ndarray,
    pose_rotation: np.ndarray,
    action_units: Mapping[str, np.ndarray],
    frames: np.ndarray | None = None,
    confidence: np.ndarray | None = None,
    gaze_angle: np.ndarray | None = None,
    face_id: bool = True,
    extra_columns: Mapping[str, np.ndarray] | None = None,
    failed_cell: str | None = "0",
) -> Path:
    """Write an OpenFace 2.1.0 ``Pose_gaze_AUs`` CSV (``", "``-separated) from per-frame arrays.

    Shapes: timestamps/success (T,), gaze (T, 2, 3) eye 0 then eye 1, pose_translation and
    pose_rotation (T, 3), each action unit (T,). Defaults: frames 1..T, confidence 0.98 on tracked
    frames and 0 on failed ones, gaze_angle from ``gaze_angles``. ``extra_columns`` are placed
    right after ``success`` so every later column shifts (readers must select by name).
    ``failed_cell``: the text written in every gaze/pose/AU cell of a failed frame (OpenFace
    writes 0; "-nan(ind)" mimics a non-numeric cell); None writes the arrays as given.
    Float values are written with float32's shortest round-trip form, so they read back exactly.
    """
    success = np.asarray(success, dtype=bool)
    count = len(success)
    frames = np.arange(1, count + 1) if frames is None else np.asarray(frames)
    confidence = np.where(success, 0.98, 0.0) if confidence is None else np.asarray(confidence)
    gaze = np.asarray(gaze, dtype=np.float32).reshape(count, 6)
    gaze_angle = gaze_angles(gaze.reshape(count, 2, 3)) if gaze_angle is None else np.asarray(gaze_angle)
    extra_columns = extra_columns or {}
    measured = np.concatenate(
        [
            gaze,
            np.asarray(gaze_angle, dtype=np.float32).reshape(count, 2),
            np.asarray(pose_translation, dtype=np.float32).reshape(count, 3),
            np.asarray(pose_rotation, dtype=np.float32).reshape(count, 3),
            *(np.asarray(values, dtype=np.float32).reshape(count, 1) for values in action_units.values()),
        ],
        axis=1,
    )
    header = openface_header(list(action_units), face_id=face_id)
    success_at = header.index("success") + 1
    header[success_at:success_at] = list(extra_columns)

    lines = [", ".join(header)]
    for index in range(count):
        meta = [str(int(frames[index])), *(["0"] if face_id else [])]
        meta += [repr(float(timestamps[index])), str(np.float32(confidence[index])), str(int(success[index]))]
        extra = [str(np.float32(values[index])) for values in extra_columns.values()]
        if failed_cell is not None and not success[index]:
            cells = [failed_cell] * measured.shape[1]
        else:
            cells = [str(value) for value in measured[index]]  # np.float32's str: shortest round trip
        lines.append(", ".join(meta + extra + cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def default_timestamps(frames: int) -> np.ndarray:
    """OpenFace's timestamps at 30 fps, rounded to ms as the tool writes them."""
    return np.round(np.arange(frames) / OPENFACE_FPS, 3)


def write_edaic_transcript(
    path: Path, utterances: Sequence[tuple[float, float, str]], *, confidence: float = 0.9
) -> Path:
    """Write an ASR transcript ``Start_Time,End_Time,Text,Confidence`` (text quoted when needed)."""
    rows = [[repr(float(start)), repr(float(end)), text, confidence] for start, end, text in utterances]
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(path, TRANSCRIPT_HEADER, rows)
    return path


def edaic_session_folder(root: Path, participant_id: int, *, under_data: bool = False) -> Path:
    return (root / "data" if under_data else root) / f"{participant_id}_P"


def write_edaic_session(
    root: Path,
    participant_id: int,
    *,
    openface: Mapping[str, Any] | None = None,
    utterances: Sequence[tuple[float, float, str]] | None = None,
    audio_bytes: bytes | None = None,
    under_data: bool = False,
) -> Path:
    """Write a session folder ``<root>[/data]/<id>_P``; returns it.

    ``openface``: keyword arguments of ``write_openface_csv`` (the path excepted), written to
    ``features/<id>_OpenFace2.1.0_Pose_gaze_AUs.csv``; ``utterances`` to ``<id>_Transcript.csv``;
    ``audio_bytes`` verbatim to ``<id>_AUDIO.wav``. Each is skipped when None.
    """
    folder = edaic_session_folder(root, participant_id, under_data=under_data)
    folder.mkdir(parents=True, exist_ok=True)
    if openface is not None:
        write_openface_csv(folder / "features" / f"{participant_id}{OPENFACE_SUFFIX}", **openface)
    if utterances is not None:
        write_edaic_transcript(folder / f"{participant_id}_Transcript.csv", utterances)
    if audio_bytes is not None:
        (folder / f"{participant_id}_AUDIO.wav").write_bytes(audio_bytes)
    return folder
