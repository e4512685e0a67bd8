"""The normalised face space of the visual features (pure numpy).

Both the serve-time extractor and the synthetic corpus go through these functions,
so a frame means the same thing in training and in serving. Conventions are named in
``app.contract.VisualSpec``.
"""

from __future__ import annotations

import numpy as np

from app.contract import FULL_VISUAL_PROFILE, VISUAL_PROFILES, VisualSpec

FULL_CHANNELS = VISUAL_PROFILES[FULL_VISUAL_PROFILE]
FULL_DIM = len(FULL_CHANNELS)  # what the serve-time extractor writes per frame
OUTER_EYE_CORNERS = (36, 45)
EYE_CORNERS = ((36, 39), (42, 45))


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """R = Rz(roll) @ Ry(yaw) @ Rx(pitch) (zyx_radians_v1)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return rz @ ry @ rx


def euler_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) such that ``rotation_matrix(yaw, pitch, roll) == rotation``."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = float(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)))
    pitch = float(np.arctan2(r[2, 1], r[2, 2]))
    roll = float(np.arctan2(r[1, 0], r[0, 0]))
    return yaw, pitch, roll


def normalise_face(points: np.ndarray, irises: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Landmarks and irises from image coordinates to the eye_corners_v1 frame.

    points: (68, 2) image coordinates (x right, y down), iBUG order.
    irises: (2, 2) iris centres of the eye 36-41 and of the eye 42-47.
    Returns (landmarks (68, 2), gaze offsets (2, 2), in-plane angle in radians).
    """
    pts = np.asarray(points, dtype=np.float64)
    iris = np.asarray(irises, dtype=np.float64)
    left, right = pts[OUTER_EYE_CORNERS[0]], pts[OUTER_EYE_CORNERS[1]]
    axis = right - left
    scale = float(np.hypot(axis[0], axis[1]))
    if scale <= 1e-9:
        raise ValueError("degenerate face: outer eye corners coincide")
    angle = float(np.arctan2(axis[1], axis[0]))
    c, s = np.cos(-angle), np.sin(-angle)
    unrotate = np.array([[c, -s], [s, c]])
    origin = (left + right) / 2.0
    landmarks = (pts - origin) @ unrotate.T / scale
    iris_norm = (iris - origin) @ unrotate.T / scale
    gaze = np.empty((2, 2))
    for eye, (a, b) in enumerate(EYE_CORNERS):
        centre = (landmarks[a] + landmarks[b]) / 2.0
        width = max(float(np.hypot(*(landmarks[b] - landmarks[a]))), 1e-6)
        gaze[eye] = (iris_norm[eye] - centre) / width
    return landmarks, gaze, angle


def frame_vector(
    points: np.ndarray,
    irises: np.ndarray,
    yaw: float,
    pitch: float,
    spec: VisualSpec,
) -> np.ndarray:
    """One valid visual frame in the full (``landmarks_v1``) channel layout.

    Roll is the in-plane angle measured from the eye corners, so it always agrees
    with the landmark normalisation.
    """
    landmarks, gaze, roll = normalise_face(points, irises)
    vec = np.concatenate([landmarks.reshape(-1), gaze.reshape(-1), [yaw, pitch, roll, 1.0]])
    if vec.shape[0] != FULL_DIM:
        raise AssertionError("visual frame layout drifted from the landmarks_v1 channel names")
    return vec.astype(np.float32)


_LANDMARK_COLUMNS = [i for i, name in enumerate(FULL_CHANNELS) if name.startswith("lm")]
_POSE_COLUMNS = [FULL_CHANNELS.index(name) for name in ("yaw", "pitch", "roll")]


def face_motion(frames: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """How much a tracked face moves over the frames where it was found (full-layout frames).

    Returns (landmark motion, pose motion): the 90th percentile over the normalised landmark
    coordinates of their robust standard deviation (1.4826 x the median absolute deviation,
    in eye-corner distances; a face that talks or blinks moves some of them), and the largest
    robust standard deviation of yaw, pitch and roll, in degrees. Robust, so a few tracking
    glitches on a still picture do not pass for motion. Zero with fewer than two frames.
    """
    found = np.asarray(frames, dtype=np.float64)[np.asarray(valid, dtype=bool)]
    if found.shape[0] < 2:
        return 0.0, 0.0

    def robust_sd(values: np.ndarray) -> np.ndarray:
        return 1.4826 * np.median(np.abs(values - np.median(values, axis=0)), axis=0)

    landmarks = float(np.percentile(robust_sd(found[:, _LANDMARK_COLUMNS]), 90))
    pose = float(np.degrees(robust_sd(found[:, _POSE_COLUMNS]).max()))
    return landmarks, pose


def producible(spec: VisualSpec) -> bool:
    """Whether frames of the full layout carry every channel of the spec's profile."""
    return spec.profile in producible_profiles()


def producible_profiles() -> tuple[str, ...]:
    return tuple(name for name, channels in VISUAL_PROFILES.items() if set(channels) <= set(FULL_CHANNELS))


def profile_frames(frames: np.ndarray, spec: VisualSpec) -> np.ndarray:
    """Full-layout frames (T, FULL_DIM) -> the columns of the spec's profile, in its order."""
    if not producible(spec):
        missing = sorted(set(spec.channel_names) - set(FULL_CHANNELS))
        raise ValueError(f"visual profile {spec.profile!r} needs channels the extractor does not make: {missing}")
    if spec.channel_names == FULL_CHANNELS:
        return frames
    columns = [FULL_CHANNELS.index(name) for name in spec.channel_names]
    return np.ascontiguousarray(frames[:, columns])


def window_quality(valid: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """[face_found_ratio, face_confidence] of a window's frames, each in [0, 1]."""
    valid = np.asarray(valid, dtype=bool)
    if valid.size == 0:
        return np.zeros(2, dtype=np.float32)
    found = float(valid.mean())
    conf = float(np.asarray(confidence, dtype=np.float64)[valid].mean()) if valid.any() else 0.0
    return np.array([found, np.clip(conf, 0.0, 1.0)], dtype=np.float32)
