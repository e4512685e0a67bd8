"""The mapping from DAIC-WOZ / E-DAIC tracker files to the serve-time visual channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from app.contract import VISUAL_PROFILES, VisualSpec
from app.features.visual.pose import head_pose
from app.features.visual.space import normalise_face
from training.daic import mapping
from training.synth.face import load_canonical_face

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(11)


def _eulers(n: int) -> np.ndarray:
    return RNG.uniform([-0.4, -0.6, -0.3], [0.4, 0.6, 0.3], size=(n, 3))


def test_openface_rotation_is_rx_ry_rz_as_scipy_builds_it() -> None:
    euler = _eulers(20)
    expected = Rotation.from_euler("XYZ", euler).as_matrix()  # intrinsic XYZ == Rx @ Ry @ Rz
    np.testing.assert_allclose(mapping.openface_rotation(euler), expected, atol=1e-12)


def test_pose_conversion_agrees_with_the_extractors_fit_of_the_turned_face() -> None:
    """A face turned by an OpenFace pose, measured by the serve-time pose fit, reads the
    (yaw, pitch, roll) that the mapping computes from the pose file (offset aside)."""
    face = load_canonical_face().points
    for euler in _eulers(10):
        turned = face @ Rotation.from_euler("XYZ", euler).as_matrix().T
        fitted = head_pose(turned, face)
        np.testing.assert_allclose(mapping.serve_pose(euler[None], 0.0)[0], fitted, atol=1e-9)


def test_the_pitch_offset_is_added_to_pitch_only() -> None:
    euler = _eulers(5)
    plain, shifted = mapping.serve_pose(euler, 0.0), mapping.serve_pose(euler, 0.2)
    np.testing.assert_allclose(shifted[:, 1] - plain[:, 1], 0.2)
    np.testing.assert_allclose(shifted[:, [0, 2]], plain[:, [0, 2]])


def test_head_gaze_undoes_the_head_rotation() -> None:
    euler = _eulers(8)
    head = RNG.normal(size=(8, 2, 3))
    head /= np.linalg.norm(head, axis=-1, keepdims=True)
    world = np.einsum("tij,tej->tei", Rotation.from_euler("XYZ", euler).as_matrix(), head)
    np.testing.assert_allclose(mapping.head_gaze(world, euler), head, atol=1e-12)


def _look(yaw: float, pitch: float) -> np.ndarray:
    vector = [np.sin(yaw) * np.cos(pitch), np.sin(pitch), -np.cos(yaw) * np.cos(pitch)]
    return np.array([[vector, vector]])


def test_looking_into_the_camera_gives_the_calibrated_rest_offsets() -> None:
    face = mapping.serve_face_model()
    offsets, roll = mapping.render_gaze_proxy(_look(0.0, 0.0), np.zeros((1, 3)), face)
    _, expected, _ = normalise_face(face.points[:, :2], face.irises[:, :2])
    np.testing.assert_allclose(offsets[0], expected, atol=1e-12)
    assert roll[0] == pytest.approx(0.0, abs=1e-9)


def test_gaze_moves_the_iris_offset_by_the_eyeball_radius_over_the_eye_width() -> None:
    face = mapping.serve_face_model()
    rest, _ = mapping.render_gaze_proxy(_look(0.0, 0.0), np.zeros((1, 3)), face)
    right, _ = mapping.render_gaze_proxy(_look(0.3, 0.0), np.zeros((1, 3)), face)
    down, _ = mapping.render_gaze_proxy(_look(0.0, 0.2), np.zeros((1, 3)), face)
    points = face.points
    # frontal canonical face: the eye line is level to within a fraction of a degree
    eye_width = np.linalg.norm(points[[39, 45], :2] - points[[36, 42], :2], axis=1)
    np.testing.assert_allclose((right - rest)[0, :, 0], face.eyeball_radius * np.sin(0.3) / eye_width, rtol=0.01)
    np.testing.assert_allclose((down - rest)[0, :, 1], face.eyeball_radius * np.sin(0.2) / eye_width, rtol=0.01)
    assert np.all(np.abs((right - rest)[0, :, 1]) < 2e-3)  # sideways gaze barely moves dy


def test_in_plane_rotation_leaves_the_proxy_unchanged_and_yaw_does_not() -> None:
    """The proxy is measured after removing the eye line's angle, so a pure Rz changes
    nothing; a yaw moves the iris (it lies in front of the eye corners) as it would in video."""
    face = mapping.serve_face_model()
    gaze = np.repeat(_look(0.1, 0.05), 3, axis=0)
    poses = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.3], [0.0, 0.4, 0.0]])
    offsets, _ = mapping.render_gaze_proxy(gaze, poses, face)
    np.testing.assert_allclose(offsets[1], offsets[0], atol=1e-12)
    assert np.abs(offsets[2] - offsets[0]).max() > 0.01


def test_roll_of_the_rendered_face_follows_the_in_plane_rotation() -> None:
    face = mapping.serve_face_model()
    _, roll = mapping.render_gaze_proxy(_look(0, 0), np.array([[0.0, 0.0, 0.25]]), face)
    assert roll[0] == pytest.approx(0.25, abs=0.01)


def test_resampling_picks_the_nearest_frame_and_drops_gaps_and_failures() -> None:
    stamps = np.arange(90) / 30.0
    valid = np.ones(90, bool)
    valid[30] = False  # the frame at 1.0 s failed
    keep = np.ones(90, bool)
    keep[58:63] = False  # 1.93-2.07 s missing from the file
    rows, usable = mapping.resample_index(stamps[keep], valid[keep], 10.0)
    ticks = np.arange(len(rows)) / 10.0
    assert len(rows) == 30  # 0.0 .. 2.9 s
    kept_stamps = stamps[keep]
    ok = usable.copy()
    np.testing.assert_allclose(kept_stamps[rows[ok]], ticks[ok], atol=1e-9)
    assert not usable[10]  # failed frame
    assert not usable[20]  # no row within 1/60 s of 2.0 s
    assert usable.sum() == 28


def test_landmark_free_frames_follow_the_profile_channel_order() -> None:
    n = 4
    offsets = RNG.normal(size=(n, 2, 2))
    pose = RNG.normal(size=(n, 3))
    valid = np.array([True, True, False, True])
    aus = {name: RNG.uniform(0, 5, n) for name in VISUAL_PROFILES["gaze_pose_aus_v1"] if name.startswith("AU")}
    spec = VisualSpec(profile="gaze_pose_aus_v1")
    frames = mapping.landmark_free_frames(offsets, pose, valid, spec, aus)
    names = spec.channel_names
    assert frames.shape == (n, len(names))
    np.testing.assert_allclose(frames[valid, names.index("iris2_dy")], offsets[valid, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(frames[valid, names.index("roll")], pose[valid, 2], rtol=1e-6)
    np.testing.assert_allclose(frames[valid, names.index("AU12_r")], aus["AU12_r"][valid], rtol=1e-6)
    assert np.all(frames[~valid] == 0)
    with pytest.raises(ValueError, match="AU01_r"):
        mapping.landmark_free_frames(offsets, pose, valid, spec, None)


def test_the_table_names_every_channel_of_every_profile_once() -> None:
    covered = [name for row in mapping.MAPPING for name in row.covers]
    assert len(covered) == len(set(covered))
    every = {name for channels in VISUAL_PROFILES.values() for name in channels}
    assert set(covered) == every


def test_the_documented_table_is_the_modules_table() -> None:
    docs = (ROOT / "docs" / "training.md").read_text()
    assert mapping.mapping_markdown() in docs
