"""The canonical face artifact and the item-driven synthetic face sequences."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from app.contract import PHQ8_ITEMS, VisualSpec
from app.features.visual.ibug68 import MEDIAPIPE_TO_IBUG68
from app.features.visual.space import euler_angles
from training.synth.face import CANONICAL_FACE_PATH, face_session, load_canonical_face

SPEC = VisualSpec()
YAW, PITCH, VALID = SPEC.channel_names.index("yaw"), SPEC.channel_names.index("pitch"), SPEC.dim - 1
PAIRED_SEEDS = range(8)  # one seed is one person; each comparison changes only the item score
ITEM = {name: i for i, name in enumerate(PHQ8_ITEMS)}


def _items(**scores: float) -> np.ndarray:
    items = np.ones(len(PHQ8_ITEMS))
    for name, score in scores.items():
        items[ITEM[name]] = score
    return items


def _xy(frames: np.ndarray, index: int) -> np.ndarray:
    return frames[:, 2 * index : 2 * index + 2]


def _y(frames: np.ndarray, index: int) -> np.ndarray:
    return frames[:, 2 * index + 1]


def _lag_energy(frames: np.ndarray, valid: np.ndarray, columns: slice, lag: int = 5) -> float:
    """Mean squared change over ``lag`` frames (0.5 s) of some channels, valid pairs only."""
    both = valid[lag:] & valid[:-lag]
    change = (frames[lag:, columns] - frames[:-lag, columns])[both]
    return float((change**2).sum(axis=1).mean())


def _eye_aperture(frames: np.ndarray) -> np.ndarray:
    pairs = ((37, 41), (38, 40), (43, 47), (44, 46))
    return np.mean([_y(frames, lower) - _y(frames, upper) for upper, lower in pairs], axis=0)


def _blinks_per_minute(frames: np.ndarray, valid: np.ndarray) -> float:
    aperture = _eye_aperture(frames)
    closed = (aperture < 0.5 * np.median(aperture[valid])) & valid
    onsets = int((closed[1:] & ~closed[:-1]).sum() + closed[0])
    return onsets / (valid.sum() / SPEC.rate_hz / 60.0)


def _paired(item: str, measure, duration_s: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    low, high = [], []
    for seed in PAIRED_SEEDS:
        for score, out in ((0.0, low), (3.0, high)):
            session = face_session(_items(**{item: score}), duration_s, np.random.default_rng(seed), SPEC)
            out.append(measure(session))
    return np.asarray(low), np.asarray(high)


def _cohen_d(low: np.ndarray, high: np.ndarray) -> float:
    return float((high.mean() - low.mean()) / np.sqrt((low.var(ddof=1) + high.var(ddof=1)) / 2.0))


# ---------------------------------------------------------------- the canonical face artifact


def test_canonical_face_sha256_matches_provenance() -> None:
    provenance = json.loads((CANONICAL_FACE_PATH.parent / "provenance.json").read_text())
    digest = hashlib.sha256(Path(CANONICAL_FACE_PATH).read_bytes()).hexdigest()
    assert provenance["files"]["canonical_face.json"] == digest
    assert "Apache License" in (CANONICAL_FACE_PATH.parent / "LICENSE").read_text()


def test_canonical_68_are_the_table_applied_to_the_mesh() -> None:
    data = json.loads(CANONICAL_FACE_PATH.read_text())
    mesh = np.asarray(data["mesh_points"])
    assert mesh.shape == (468, 3)
    assert tuple(data["ibug68_index"]) == MEDIAPIPE_TO_IBUG68
    np.testing.assert_allclose(np.asarray(data["ibug68_points"]), mesh[list(MEDIAPIPE_TO_IBUG68)])


def test_canonical_eyes_lie_above_the_mouth_and_left_is_left() -> None:
    face = load_canonical_face()
    eyes, mouth = face.points[36:48], face.points[48:68]
    assert eyes[:, 1].max() < mouth[:, 1].min()  # y points down
    assert face.points[36, 0] < 0.0 < face.points[45, 0]
    assert face.irises[0, 0] < 0.0 < face.irises[1, 0]
    assert 8.0 < face.eye_distance < 10.0  # centimetres, as MediaPipe's metric model


# ---------------------------------------------------------------- frames


def test_frames_are_the_normalised_space() -> None:
    duration_s = 12.34
    session = face_session(_items(), duration_s, np.random.default_rng(3), SPEC, missing_ratio=0.2)
    n = round(duration_s * SPEC.rate_hz)
    assert session.frames.shape == (n, SPEC.dim) and session.frames.dtype == np.float32
    assert session.valid.shape == (n,) and session.confidence.shape == (n,)
    good = session.frames[session.valid]
    np.testing.assert_allclose(_xy(good, 36), np.tile([-0.5, 0.0], (len(good), 1)), atol=1e-6)
    np.testing.assert_allclose(_xy(good, 45), np.tile([0.5, 0.0], (len(good), 1)), atol=1e-6)
    np.testing.assert_array_equal(session.frames[:, VALID] == 1.0, session.valid)
    assert not session.frames[~session.valid].any()
    assert not session.confidence[~session.valid].any()
    assert 0.9 <= session.confidence[session.valid].mean() <= 1.0
    assert session.confidence[session.valid].min() >= 0.8


def test_more_jitter_means_lower_confidence_and_noisier_landmarks() -> None:
    calm = face_session(_items(), 30.0, np.random.default_rng(4), SPEC)
    shaky = face_session(_items(), 30.0, np.random.default_rng(4), SPEC, jitter_scale=3.0)
    assert shaky.confidence.mean() < calm.confidence.mean()
    assert _lag_energy(shaky.frames, shaky.valid, slice(0, 136), lag=1) > _lag_energy(
        calm.frames, calm.valid, slice(0, 136), lag=1
    )


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.35])
def test_missing_ratio_is_honoured_in_runs(ratio: float) -> None:
    session = face_session(_items(), 120.0, np.random.default_rng(5), SPEC, missing_ratio=ratio)
    n = session.valid.size
    assert (~session.valid).sum() == round(ratio * n)
    if ratio:
        starts = np.flatnonzero(~session.valid[1:] & session.valid[:-1]).size + int(not session.valid[0])
        assert (~session.valid).sum() / starts >= 5  # face lost for runs, not single frames


def test_same_seed_same_session() -> None:
    first = face_session(_items(mood=2), 20.0, np.random.default_rng(7), SPEC, missing_ratio=0.1)
    again = face_session(_items(mood=2), 20.0, np.random.default_rng(7), SPEC, missing_ratio=0.1)
    other = face_session(_items(mood=2), 20.0, np.random.default_rng(8), SPEC, missing_ratio=0.1)
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.valid, again.valid)
    np.testing.assert_array_equal(first.confidence, again.confidence)
    assert not np.array_equal(first.frames, other.frames)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        face_session(np.ones(7), 10.0, np.random.default_rng(0), SPEC)
    with pytest.raises(ValueError):
        face_session(_items(), 10.0, np.random.default_rng(0), SPEC, speaking=np.ones(5, dtype=bool))


def _fitted_yaw_pitch(landmarks: np.ndarray, model: np.ndarray) -> tuple[float, float]:
    """Weak-perspective pose of 2D landmarks against the canonical 3D points (affine fit, orthonormalised)."""
    source = model - model.mean(axis=0)
    target = landmarks - landmarks.mean(axis=0)
    affine = np.linalg.lstsq(source, target, rcond=None)[0].T  # (2, 3)
    u, _, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt
    rotation = np.vstack([rows, np.cross(rows[0], rows[1])])
    yaw, pitch, _ = euler_angles(rotation)
    return yaw, pitch


def test_pose_columns_follow_the_pose_that_shaped_the_landmarks() -> None:
    session = face_session(_items(), 60.0, np.random.default_rng(11), SPEC)
    model = load_canonical_face().points
    fitted = np.array([_fitted_yaw_pitch(frame[:136].reshape(68, 2), model) for frame in session.frames])
    for column, estimate in ((YAW, fitted[:, 0]), (PITCH, fitted[:, 1])):
        reported = session.frames[:, column]
        assert np.corrcoef(reported, estimate)[0, 1] > 0.9
        # the same angle, not just correlated: slope near 1 (shape and expression bias the fit a little)
        slope = np.polyfit(reported, estimate, 1)[0]
        assert 0.7 < slope < 1.3


def test_speaking_opens_the_mouth() -> None:
    n = 600
    speaking = np.zeros(n, dtype=bool)
    speaking[::100] = True
    speaking = np.convolve(speaking, np.ones(50), mode="same") > 0  # 5 s turns
    session = face_session(_items(), n / SPEC.rate_hz, np.random.default_rng(12), SPEC, speaking=speaking)
    gap = _y(session.frames, 66) - _y(session.frames, 62)
    assert gap[speaking].mean() > gap[~speaking].mean() + 0.02


# ---------------------------------------------------------------- item effects (paired over 8 people)


def test_psychomotor_slows_head_and_face() -> None:
    head = _paired("psychomotor", lambda s: _lag_energy(s.frames, s.valid, slice(YAW, PITCH + 1)))
    face = _paired("psychomotor", lambda s: _lag_energy(s.frames, s.valid, slice(0, 136)))
    print(
        f"psychomotor 0 -> 3: head energy {head[0].mean():.2e} -> {head[1].mean():.2e} "
        f"(d {_cohen_d(*head):.2f}); landmark energy {face[0].mean():.4f} -> {face[1].mean():.4f} "
        f"(d {_cohen_d(*face):.2f})"
    )
    assert head[1].mean() < 0.6 * head[0].mean()
    assert face[1].mean() < 0.85 * face[0].mean()
    assert (head[1] < head[0]).mean() >= 0.75


def test_low_mood_lowers_the_mouth_corners() -> None:
    # corner height relative to the upper-lip centre, + is lower (image y down); free of head pitch
    def corner_drop(s) -> float:
        good = s.frames[s.valid]
        return float(((_y(good, 48) + _y(good, 54)) / 2.0 - _y(good, 51)).mean())

    low, high = _paired("mood", corner_drop)
    print(f"mood 0 -> 3: corner drop {low.mean():.4f} -> {high.mean():.4f} (d {_cohen_d(low, high):.2f})")
    assert high.mean() > low.mean() + 0.01
    assert (high > low).mean() >= 0.75


def test_low_energy_raises_the_blink_rate() -> None:
    low, high = _paired("energy", lambda s: _blinks_per_minute(s.frames, s.valid))
    print(f"energy 0 -> 3: blinks/min {low.mean():.1f} -> {high.mean():.1f} (d {_cohen_d(low, high):.2f})")
    assert high.mean() > 1.25 * low.mean()
    assert (high > low).mean() >= 0.75
