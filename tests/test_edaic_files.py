"""E-DAIC readers against a tiny fake corpus written in the official formats (tests/fake_edaic.py)."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fake_edaic import (
    AU_INTENSITY_COLUMNS,
    AU_PRESENCE_COLUMNS,
    FakeEdaicLabel,
    default_timestamps,
    openface_header,
    write_edaic_labels,
    write_edaic_session,
    write_openface_csv,
)
from training.daic.edaic import (
    OPENFACE_SUFFIX,
    edaic_session_files,
    looks_like_edaic,
    read_edaic_labels,
    read_openface,
)
from training.daic.files import DaicFileError

FRAMES = 5
FAILED_FRAME = 2
ACTION_UNITS = (*AU_INTENSITY_COLUMNS, *AU_PRESENCE_COLUMNS)
UTTERANCES = ((1.25, 2.5, "hello there"), (3.0, 7.75, "well, i guess i'm okay"))

SPLITS = {
    "train": [
        FakeEdaicLabel(301, 13, items=(2, 2, 2, 2, 1, 2, 1, 1), gender=0),
        FakeEdaicLabel(302, 3, items=(0, 1, 0, 1, 0, 1, 0, 0), gender="male"),
    ],
    "dev": [FakeEdaicLabel(303, 10, items=(1, 1, 1, 1, 1, 1, 2, 2), gender=1)],
    "test": [FakeEdaicLabel(304, 5, items=None, gender=1)],  # absent from the detailed file
}


def _cell_value(frame: int, column: int) -> float:
    # Distinct per cell, so a column mix-up or a transposition changes some value.
    return frame + column / 100 + 0.001


def _openface_arrays(frames: int = FRAMES, failed: tuple[int, ...] = (FAILED_FRAME,)) -> dict[str, Any]:
    """Keyword arguments of write_openface_csv; each measured column's values follow _cell_value."""
    names = openface_header(ACTION_UNITS, face_id=False)
    first_measured = names.index("success") + 1

    def column(name: str) -> np.ndarray:
        index = names.index(name) - first_measured
        return np.array([_cell_value(frame, index) for frame in range(frames)], dtype=np.float32)

    def block(*names_in_block: str) -> np.ndarray:
        return np.stack([column(name) for name in names_in_block], axis=1)

    return {
        "timestamps": default_timestamps(frames),
        "success": np.array([frame not in failed for frame in range(frames)]),
        "gaze": block(*(f"gaze_{eye}_{axis}" for eye in (0, 1) for axis in "xyz")).reshape(frames, 2, 3),
        "gaze_angle": block("gaze_angle_x", "gaze_angle_y"),
        "pose_translation": block("pose_Tx", "pose_Ty", "pose_Tz"),
        "pose_rotation": block("pose_Rx", "pose_Ry", "pose_Rz"),
        "action_units": {name: column(name) for name in ACTION_UNITS},
    }


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    write_edaic_labels(tmp_path, SPLITS)
    write_edaic_session(tmp_path, 301, openface=_openface_arrays(), utterances=UTTERANCES, audio_bytes=b"RIFF")
    write_edaic_session(
        tmp_path, 303, openface=_openface_arrays(), utterances=UTTERANCES, audio_bytes=b"RIFF", under_data=True
    )
    return tmp_path


# --------------------------------------------------------------------------- labels


def test_labels_of_all_splits_with_items_merged(corpus: Path) -> None:
    labels = {label.participant_id: label for label in read_edaic_labels(corpus)}
    assert [label.split for label in read_edaic_labels(corpus)] == ["train", "train", "dev", "test"]
    first = labels[301]
    assert (first.split, first.phq8_binary, first.phq8_score, first.gender) == ("train", 1, 13, 0)
    assert first.items == (2, 2, 2, 2, 1, 2, 1, 1)
    assert labels[302].gender is None  # "male": kept None rather than guessing a code
    assert (labels[303].split, labels[303].phq8_binary, labels[303].items) == ("dev", 1, (1, 1, 1, 1, 1, 1, 2, 2))
    assert (labels[304].split, labels[304].phq8_score, labels[304].items) == ("test", 5, None)


@pytest.mark.parametrize("item_prefix", ["PHQ_8", "PHQ8_", "PHQ_"])
def test_labels_header_variants_in_root(tmp_path: Path, item_prefix: str) -> None:
    # Labels directly in the root, no PTSD columns, differently prefixed item columns.
    write_edaic_labels(tmp_path, SPLITS, labels_subdir=None, item_prefix=item_prefix, ptsd_columns=False)
    labels = {label.participant_id: label for label in read_edaic_labels(tmp_path)}
    assert labels[303].items == (1, 1, 1, 1, 1, 1, 2, 2)
    assert labels[301].phq8_score == 13


def test_labels_without_detailed_file_have_no_items(tmp_path: Path) -> None:
    write_edaic_labels(tmp_path, SPLITS, detailed=False)
    assert all(label.items is None for label in read_edaic_labels(tmp_path))


def test_items_that_do_not_sum_to_the_score_are_kept_as_read(tmp_path: Path) -> None:
    splits = {**SPLITS, "dev": [FakeEdaicLabel(303, 11, items=(1, 1, 1, 1, 1, 1, 2, 2))]}
    write_edaic_labels(tmp_path, splits)
    (label,) = [x for x in read_edaic_labels(tmp_path) if x.participant_id == 303]
    assert label.items == (1, 1, 1, 1, 1, 1, 2, 2) and label.phq8_score == 11


def test_detailed_total_column_must_match_items(corpus: Path) -> None:
    path = corpus / "labels" / "Detailed_PHQ8_Labels.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",14"  # participant 301: items sum to 13
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DaicFileError, match=r"Detailed_PHQ8_Labels\.csv: line 2: participant 301 .*Total is 14"):
        read_edaic_labels(corpus)


def test_missing_split_files(corpus: Path) -> None:
    (corpus / "labels" / "test_split.csv").unlink()  # optional
    assert {label.split for label in read_edaic_labels(corpus)} == {"train", "dev"}
    (corpus / "labels" / "train_split.csv").unlink()
    with pytest.raises(DaicFileError, match=r"train_split\.csv: split file not found"):
        read_edaic_labels(corpus)


def test_participant_in_two_splits_is_an_error(tmp_path: Path) -> None:
    write_edaic_labels(tmp_path, {**SPLITS, "test": [FakeEdaicLabel(301, 13)]})
    with pytest.raises(DaicFileError, match="participant 301 is in both the train and the test split"):
        read_edaic_labels(tmp_path)


# --------------------------------------------------------------------------- OpenFace


def _file_columns(path: Path) -> dict[str, list[str]]:
    """The file's cells by column name, read independently of the reader under test."""
    with path.open() as handle:
        rows = list(csv.reader(handle, skipinitialspace=True))
    return {name: [row[index] for row in rows[1:]] for index, name in enumerate(rows[0])}


@pytest.mark.parametrize("face_id", [True, False])
@pytest.mark.parametrize("extra", [False, True])
def test_openface_columns_selected_by_name(tmp_path: Path, face_id: bool, extra: bool) -> None:
    arrays = _openface_arrays(failed=())
    extra_columns = {"unknown_feature": np.arange(FRAMES) + 0.25} if extra else None
    path = write_openface_csv(tmp_path / "x.csv", **arrays, face_id=face_id, extra_columns=extra_columns)
    track = read_openface(path)
    columns = _file_columns(path)
    assert ("face_id" in columns) == face_id and ("unknown_feature" in columns) == extra

    def expected(name: str) -> np.ndarray:
        return np.array([float(cell) for cell in columns[name]]).astype(np.float32)

    assert len(track) == FRAMES
    np.testing.assert_array_equal(track.frame, np.arange(1, FRAMES + 1))
    np.testing.assert_array_equal(track.timestamp, default_timestamps(FRAMES))
    for eye in (0, 1):
        for axis_index, axis in enumerate("xyz"):
            np.testing.assert_array_equal(track.gaze[:, eye, axis_index], expected(f"gaze_{eye}_{axis}"))
    for axis_index, axis in enumerate("xy"):
        np.testing.assert_array_equal(track.gaze_angle[:, axis_index], expected(f"gaze_angle_{axis}"))
    for axis_index, axis in enumerate("xyz"):
        np.testing.assert_array_equal(track.pose_translation[:, axis_index], expected(f"pose_T{axis}"))
        np.testing.assert_array_equal(track.pose_rotation[:, axis_index], expected(f"pose_R{axis}"))
    assert list(track.action_units) == list(ACTION_UNITS)  # file order
    for name in ACTION_UNITS:
        np.testing.assert_array_equal(track.action_units[name], expected(name))
    # The values are exactly what was written (not just self-consistent with the file).
    np.testing.assert_array_equal(track.gaze, arrays["gaze"])
    np.testing.assert_array_equal(track.pose_rotation, arrays["pose_rotation"])
    np.testing.assert_array_equal(track.action_units["AU45_c"], arrays["action_units"]["AU45_c"])
    assert track.gaze.dtype == np.float32 and track.frame.dtype == np.int64 and track.success.all()


@pytest.mark.parametrize("failed_cell", ["0", "-nan(ind)"])
def test_failed_frames_are_nan_and_invalid(tmp_path: Path, failed_cell: str) -> None:
    path = write_openface_csv(tmp_path / "x.csv", **_openface_arrays(), failed_cell=failed_cell)
    track = read_openface(path)
    expected_mask = np.arange(FRAMES) != FAILED_FRAME
    np.testing.assert_array_equal(track.success, expected_mask)
    np.testing.assert_array_equal(track.valid, expected_mask)
    assert np.isnan(track.gaze[FAILED_FRAME]).all() and np.isnan(track.pose_translation[FAILED_FRAME]).all()
    assert np.isnan(track.action_units["AU12_r"][FAILED_FRAME])
    assert track.confidence[FAILED_FRAME] == 0 and track.confidence[0] == pytest.approx(0.98)
    assert np.isfinite(track.gaze[FAILED_FRAME + 1]).all()


def test_valid_drops_non_finite_gaze_despite_success(tmp_path: Path) -> None:
    arrays = _openface_arrays(failed=())
    arrays["gaze"][1, 1, 2] = np.nan
    track = read_openface(write_openface_csv(tmp_path / "x.csv", **arrays))
    assert track.success[1] and not track.valid[1] and track.valid[0]


def test_openface_format_errors(tmp_path: Path) -> None:
    path = write_openface_csv(tmp_path / "x.csv", **_openface_arrays())
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], lines[3] + ", 7", *lines[4:]]) + "\n")
    with pytest.raises(DaicFileError, match=r"x\.csv: line 4: \d+ fields, header has \d+"):
        read_openface(path)
    path.write_text("\n".join([lines[0].replace("pose_Ry", "pose_Qy"), *lines[1:]]) + "\n")
    with pytest.raises(DaicFileError, match=r"x\.csv: missing required column 'pose_Ry'"):
        read_openface(path)
    path.write_text("")
    with pytest.raises(DaicFileError, match=r"x\.csv: empty file"):
        read_openface(path)
    path.write_text(lines[0] + "\n")
    with pytest.raises(DaicFileError, match=r"x\.csv: empty file \(header but no frames\)"):
        read_openface(path)
    with pytest.raises(DaicFileError, match=r"nope\.csv: OpenFace file not found"):
        read_openface(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- sessions


@pytest.mark.parametrize(("participant_id", "folder"), [(301, "301_P"), (303, "data/303_P")])
def test_session_files_in_both_layouts(corpus: Path, participant_id: int, folder: str) -> None:
    files = edaic_session_files(corpus, participant_id)
    assert files.folder == corpus / folder
    assert files.audio.name == f"{participant_id}_AUDIO.wav"
    assert files.openface == corpus / folder / "features" / f"{participant_id}{OPENFACE_SUFFIX}"
    assert len(files.read_openface()) == FRAMES


def test_transcript_read_through_parse_transcript(corpus: Path) -> None:
    transcript = edaic_session_files(corpus, 301).read_transcript()
    assert [(u.start_s, u.end_s, u.text) for u in transcript.utterances] == list(UTTERANCES)
    assert transcript.speakers == [] and transcript.has_timestamps
    assert transcript.participant() == transcript.utterances  # participant speech only


def test_missing_session_file_is_named(corpus: Path) -> None:
    (corpus / "301_P" / "features" / f"301{OPENFACE_SUFFIX}").unlink()
    with pytest.raises(DaicFileError, match=re.escape(f"301{OPENFACE_SUFFIX}: missing file of session 301")):
        edaic_session_files(corpus, 301)
    files = edaic_session_files(corpus, 301, required=("audio", "transcript"))  # only what the caller needs
    with pytest.raises(DaicFileError, match="OpenFace"):
        files.read_openface()
    (corpus / "301_P" / "301_AUDIO.wav").unlink()
    with pytest.raises(DaicFileError, match=r"301_AUDIO\.wav"):
        edaic_session_files(corpus, 301, required=("audio", "transcript"))
    with pytest.raises(DaicFileError, match=r"999_P: session folder not found"):
        edaic_session_files(corpus, 999)
    with pytest.raises(ValueError, match="unknown session file 'video'"):
        edaic_session_files(corpus, 303, required=("video",))


def test_looks_like_edaic(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert looks_like_edaic(corpus)
    nested = tmp_path_factory.mktemp("nested")
    write_edaic_session(nested, 310, openface=_openface_arrays(), under_data=True)
    assert looks_like_edaic(nested)
    daic_like = tmp_path_factory.mktemp("daic")
    (daic_like / "300_P").mkdir()
    (daic_like / "300_P" / "300_CLNF_pose.txt").write_text("frame, timestamp, confidence, success\n")
    write_edaic_session(daic_like, 301, utterances=UTTERANCES)  # a session folder without OpenFace
    assert not looks_like_edaic(daic_like)
    assert not looks_like_edaic(daic_like / "does-not-exist")
