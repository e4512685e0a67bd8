"""DAIC-WOZ readers against a tiny fake corpus written in the official formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.daic import (
    CLNF_KINDS,
    EXCLUDED_SESSIONS,
    PHQ8_ITEMS,
    DaicFileError,
    ExcludedSessionError,
    excluded_reason,
    read_clnf,
    read_split,
    session_files,
)

SESSIONS = (301, 302)
FRAMES = 4
FAILED_FRAME = 2  # written with success 0 and "-1.#IND" values, as the tracker does

TRAIN_HEADER = "Participant_ID,PHQ8_Binary,PHQ8_Score,Gender," + ",".join(f"PHQ8_{i}" for i in PHQ8_ITEMS)
TRAIN_ROWS = ["301,1,13,0,2,2,2,2,1,2,1,1"]
DEV_ROWS = ["302,0,3,1,0,1,0,1,0,1,0,0"]


def _value_header(kind: str) -> list[str]:
    if kind == "features":
        return [f"{axis}{i}" for axis in "xy" for i in range(68)]
    if kind == "features3D":
        return [f"{axis}{i}" for axis in "XYZ" for i in range(68)]
    if kind == "gaze":
        return [f"{axis}_{eye}" for eye in ("0", "1", "h0", "h1") for axis in "xyz"]
    return ["X", "Y", "Z", "Rx", "Ry", "Rz"]


def _value(session: int, frame: int, column: int) -> float:
    # Deterministic and distinct per cell, so reshapes/transposes are checked exactly.
    return session + frame * 0.5 + column * 0.001


def _write_clnf(path: Path, session: int, kind: str, success_name: str = "success") -> None:
    names = _value_header(kind)
    lines = [", ".join(["frame", "timestamp", "confidence", success_name, *names])]
    for frame in range(FRAMES):
        failed = frame == FAILED_FRAME
        meta = [str(frame + 1), f"{frame / 30:.6f}", "0" if failed else "0.95", "0" if failed else "1"]
        cells = ["-1.#IND" if failed else f"{_value(session, frame, c):.3f}" for c in range(len(names))]
        lines.append(", ".join(meta + cells))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for session in SESSIONS:
        folder = tmp_path / f"{session}_P"
        folder.mkdir()
        for kind in CLNF_KINDS:
            # Session 302 uses the documentation's "detection_success" header spelling.
            success_name = "detection_success" if session == 302 else "success"
            _write_clnf(folder / f"{session}_CLNF_{kind}.txt", session, kind, success_name)
        (folder / f"{session}_AUDIO.wav").write_bytes(b"RIFF")  # existence only: not decoded here
        (folder / f"{session}_TRANSCRIPT.csv").write_text(
            "start_time\tstop_time\tspeaker\tvalue\n"
            "36.588\t39.668\tEllie\thi i'm ellie\n"
            "40.100\t41.500\tParticipant\tgood <laughter>\n"
        )
    (tmp_path / "train_split_Depression_AVEC2017.csv").write_text("\n".join([TRAIN_HEADER, *TRAIN_ROWS]) + "\n")
    (tmp_path / "dev_split_Depression_AVEC2017.csv").write_text("\n".join([TRAIN_HEADER, *DEV_ROWS]) + "\n")
    (tmp_path / "full_test_split.csv").write_text("Participant_ID,PHQ_Binary,PHQ_Score,Gender\n303,1,15,1\n")
    (tmp_path / "test_split_Depression_AVEC2017.csv").write_text("\ufeffparticipant_ID,Gender\n304,0\n")
    return tmp_path


def test_read_train_and_dev_splits_with_items(corpus: Path) -> None:
    (train,) = read_split(corpus / "train_split_Depression_AVEC2017.csv")
    assert (train.participant_id, train.split, train.phq8_binary, train.phq8_score) == (301, "train", 1, 13)
    assert train.items == (2, 2, 2, 2, 1, 2, 1, 1)
    assert sum(train.items) == train.phq8_score
    (dev,) = read_split(corpus / "dev_split_Depression_AVEC2017.csv")
    assert (dev.split, dev.gender, dev.items) == ("dev", 1, (0, 1, 0, 1, 0, 1, 0, 0))


def test_read_test_split_header_variants(corpus: Path) -> None:
    (full,) = read_split(corpus / "full_test_split.csv")  # PHQ_ prefix, no items
    assert (full.participant_id, full.split, full.phq8_binary, full.phq8_score, full.items) == (
        303,
        "test",
        1,
        15,
        None,
    )
    (bare,) = read_split(corpus / "test_split_Depression_AVEC2017.csv")  # BOM, lower-case id, no labels
    assert (bare.participant_id, bare.phq8_score, bare.phq8_binary, bare.gender) == (304, None, None, 0)


def test_split_errors_name_the_file(corpus: Path) -> None:
    with pytest.raises(DaicFileError, match=r"nope_split\.csv"):
        read_split(corpus / "nope_split.csv")
    bad = corpus / "train_bad.csv"
    bad.write_text("Participant_ID,PHQ8_Score\n301,abc\n")
    with pytest.raises(DaicFileError, match=r"train_bad\.csv: line 2: phq8_score"):
        read_split(bad)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [("features", (68, 2)), ("features3D", (68, 3)), ("gaze", (4, 3)), ("pose", (6,))],
)
@pytest.mark.parametrize("session", SESSIONS)
def test_read_clnf_values_shapes_and_masks(corpus: Path, session: int, kind: str, shape: tuple[int, ...]) -> None:
    track = read_clnf(corpus / f"{session}_P" / f"{session}_CLNF_{kind}.txt", kind)
    assert track.values.shape == (FRAMES, *shape)
    assert track.values.dtype == np.float32
    np.testing.assert_array_equal(track.frame, np.arange(1, FRAMES + 1))
    np.testing.assert_allclose(track.timestamp, np.arange(FRAMES) / 30, atol=1e-6)
    expected_mask = np.arange(FRAMES) != FAILED_FRAME
    np.testing.assert_array_equal(track.success, expected_mask)
    np.testing.assert_array_equal(track.valid, expected_mask)
    assert np.isnan(track.values[FAILED_FRAME]).all()
    assert track.confidence[0] == pytest.approx(0.95)
    # Column c of the file lands where the documented layout says it should.
    flat = track.values[1].transpose(1, 0).ravel() if kind.startswith("features") else track.values[1].ravel()
    np.testing.assert_allclose(flat, [_value(session, 1, c) for c in range(flat.size)], atol=1e-3)


def test_features_landmark_points(corpus: Path) -> None:
    track = read_clnf(corpus / "301_P" / "301_CLNF_features.txt", "features")
    assert track.columns[:2] == ("x0", "x1") and track.columns[68] == "y0"
    # Landmark 5 of frame 0 is (x5, y5) = (column 5, column 68 + 5).
    np.testing.assert_allclose(track.values[0, 5], [_value(301, 0, 5), _value(301, 0, 73)], atol=1e-3)


def test_valid_mask_drops_non_finite_values_despite_success(corpus: Path) -> None:
    path = corpus / "301_P" / "301_CLNF_pose.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ", nan"  # frame 1: success 1 but a NaN value
    path.write_text("\n".join(lines) + "\n")
    track = read_clnf(path, "pose")
    assert track.success[0] and not track.valid[0]


def test_clnf_format_errors(corpus: Path) -> None:
    path = corpus / "301_P" / "301_CLNF_pose.txt"
    with pytest.raises(DaicFileError, match="6 value columns, a gaze file has 12"):
        read_clnf(path, "gaze")
    with pytest.raises(ValueError, match="unknown CLNF kind"):
        read_clnf(path, "hog")
    path.write_text("a, b, c\n1, 2, 3\n")
    with pytest.raises(DaicFileError, match="header must start with frame"):
        read_clnf(path, "pose")


def test_session_files_locates_and_reads(corpus: Path) -> None:
    files = session_files(corpus, 301)
    assert files.folder == corpus / "301_P"
    assert files.audio.name == "301_AUDIO.wav"
    assert files.clnf["features3D"].name == "301_CLNF_features3D.txt"
    assert files.read_clnf("gaze").values.shape == (FRAMES, 4, 3)
    transcript = files.read_transcript()  # delegated to app.features.transcript.parse_transcript
    assert [u.speaker for u in transcript.utterances] == ["Ellie", "Participant"]
    assert transcript.utterances[1].text == "good"
    assert transcript.utterances[0].start_s == pytest.approx(36.588)


def test_missing_file_error_names_the_file(corpus: Path) -> None:
    (corpus / "302_P" / "302_CLNF_gaze.txt").unlink()
    with pytest.raises(DaicFileError, match=r"302_CLNF_gaze\.txt"):
        session_files(corpus, 302)
    files = session_files(corpus, 302, required=("transcript",))  # only what the caller needs
    with pytest.raises(DaicFileError, match=r"302_CLNF_gaze\.txt"):
        files.read_clnf("gaze")
    with pytest.raises(DaicFileError, match="999_P"):
        session_files(corpus, 999)


def test_excluded_session_is_reported(corpus: Path) -> None:
    assert set(EXCLUDED_SESSIONS) == {342, 394, 398, 460}
    assert excluded_reason(342) and excluded_reason(301) is None
    with pytest.raises(ExcludedSessionError, match="session 342 is excluded") as info:
        session_files(corpus, 342)
    assert info.value.participant_id == 342 and info.value.reason == EXCLUDED_SESSIONS[342]
