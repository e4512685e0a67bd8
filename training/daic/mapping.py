"""DAIC-WOZ (CLNF) and E-DAIC (OpenFace 2.1) visual files -> the manifest's visual channels.

The serve-time extractor measures faces in video; the corpora ship only tracker outputs.
This module turns those outputs into frames with the same channel meanings
(``app.contract.VisualSpec``), through the same functions where the quantity is the
same (``visual_space.normalise_face`` for landmarks and roll) and through the
canonical face of the synthetic corpus where the corpora measure something else (the
gaze proxy and, without landmarks, roll). ``MAPPING`` is the table, rendered into
docs/training.md by ``mapping_markdown``; tests check each row's transform.

Conventions used (sources in docs/training.md):

- OpenFace/CLNF pose: ``R = Rx(pose_Rx) @ Ry(pose_Ry) @ Rz(pose_Rz)``, the standard
  right-handed matrices (OpenFace ``RotationHelpers.h``, "XYZ convention"), camera axes
  x right, y down, z away from the camera: the same axes as ``zyx_radians_v1``, so the
  rotation converts exactly; only the Euler order differs.
- OpenFace gaze: unit vectors from each eye, camera coordinates, eye 0 = the leftmost
  eye in the image (iBUG 36-41, our ``iris1``). DAIC-WOZ adds the same two vectors in
  head coordinates (``x_h0 ..``); for E-DAIC they are ``R.T @ gaze``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from app.contract import ACTION_UNITS, GAZE_CHANNELS, VISUAL_PROFILES, VisualSpec
from app.features.visual.space import FULL_CHANNELS, euler_angles, normalise_face

TRACKER_RATE_HZ = 30.0  # both corpora: "sampled at 30FPS from videos"


# ----------------------------------------------------------------------------- pose


def openface_rotation(euler_xyz: np.ndarray) -> np.ndarray:
    """(..., 3) OpenFace (Rx, Ry, Rz) radians -> (..., 3, 3) rotation ``Rx @ Ry @ Rz``."""
    a = np.asarray(euler_xyz, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones(a.shape[:-1]), np.zeros(a.shape[:-1])
    rx = np.stack([one, zero, zero, zero, c[..., 0], -s[..., 0], zero, s[..., 0], c[..., 0]], -1)
    ry = np.stack([c[..., 1], zero, s[..., 1], zero, one, zero, -s[..., 1], zero, c[..., 1]], -1)
    rz = np.stack([c[..., 2], -s[..., 2], zero, s[..., 2], c[..., 2], zero, zero, zero, one], -1)
    shape = (*a.shape[:-1], 3, 3)
    return rx.reshape(shape) @ ry.reshape(shape) @ rz.reshape(shape)


def serve_pose(euler_xyz: np.ndarray, pitch_offset_rad: float) -> np.ndarray:
    """(T, 3) OpenFace rotations -> (T, 3) (yaw, pitch, roll) of ``zyx_radians_v1``, pitch plus
    the offset the serve-time extractor reads on a real face looking into the camera."""
    rotations = openface_rotation(euler_xyz)
    out = np.array([euler_angles(r) for r in rotations], dtype=np.float64).reshape(-1, 3)
    out[:, 1] += pitch_offset_rad
    return out


# ----------------------------------------------------------------------------- gaze


def head_gaze(world_gaze: np.ndarray, euler_xyz: np.ndarray) -> np.ndarray:
    """(T, 2, 3) camera-space gaze vectors -> head space (``R.T @ g``), unit length."""
    rotations = openface_rotation(euler_xyz)  # (T, 3, 3)
    head = np.einsum("tji,tej->tei", rotations, np.asarray(world_gaze, dtype=np.float64))
    return head / np.maximum(np.linalg.norm(head, axis=-1, keepdims=True), 1e-9)


@dataclass(frozen=True)
class FaceModel:
    """The canonical face the gaze proxy is measured on, as the synthetic corpus builds it."""

    points: np.ndarray  # (68, 3) iBUG points, cm, x right / y down / z away from the camera
    irises: np.ndarray  # (2, 3) iris centres looking into the camera (calibrated rest position)
    eyeball_radius: float  # cm
    pitch_offset_rad: float  # what the extractor adds to a real face's pitch (calibration)


@lru_cache(maxsize=1)
def serve_face_model() -> FaceModel:
    """The synthetic corpus's canonical face with its calibration to the serve-time extractor."""
    from training.synth.face import EYEBALL_RADIUS_CM, load_calibration, load_canonical_face

    face, calibration = load_canonical_face(), load_calibration()
    irises = face.irises.copy()
    irises[:, :2] += calibration.iris_cm
    return FaceModel(
        points=face.points,
        irises=irises,
        eyeball_radius=EYEBALL_RADIUS_CM,
        pitch_offset_rad=float(np.deg2rad(calibration.pitch_deg)),
    )


def render_gaze_proxy(
    head_gaze_vectors: np.ndarray, euler_xyz: np.ndarray, face: FaceModel
) -> tuple[np.ndarray, np.ndarray]:
    """What ``iris_offset_v1`` (and the eye-line roll) would read on the canonical face turned
    to the tracked pose with its eyes turned to the tracked gaze.

    The iris sits on an eyeball of ``face.eyeball_radius``; looking into the camera
    (head gaze (0, 0, -1)) it is at ``face.irises``. Face and irises are rotated by the
    pose and projected orthographically, then measured by ``normalise_face`` exactly as
    the extractor measures a video frame, so a head turn changes the proxy as it does in
    video (the iris lies in front of the eye corners). Returns (T, 2, 2) offsets and (T,) roll in radians.
    """
    gaze = np.asarray(head_gaze_vectors, dtype=np.float64)
    eyeballs = face.irises + np.array([0.0, 0.0, face.eyeball_radius])
    irises = eyeballs[None] + face.eyeball_radius * gaze  # (T, 2, 3)
    rotations = openface_rotation(euler_xyz)
    points = np.einsum("tij,pj->tpi", rotations, face.points)[..., :2]
    iris_points = np.einsum("tij,tpj->tpi", rotations, irises)[..., :2]
    offsets = np.empty((len(gaze), 2, 2))
    roll = np.empty(len(gaze))
    for t in range(len(gaze)):
        _, offsets[t], roll[t] = normalise_face(points[t], iris_points[t])
    return offsets, roll


# ----------------------------------------------------------------------------- frames


def resample_index(timestamps: np.ndarray, valid: np.ndarray, rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """For each tick k / rate_hz from 0 to the last timestamp: the nearest tracker row and
    whether it is usable (a valid row within half a tracker frame of the tick)."""
    stamps = np.asarray(timestamps, dtype=np.float64)
    usable = np.isfinite(stamps)
    if not usable.any():
        return np.zeros(0, np.int64), np.zeros(0, bool)
    order = np.flatnonzero(usable)[np.argsort(stamps[usable], kind="stable")]
    sorted_stamps = stamps[order]
    ticks = np.arange(int(np.floor(sorted_stamps[-1] * rate_hz + 1e-9)) + 1) / rate_hz
    right = np.clip(np.searchsorted(sorted_stamps, ticks), 1, len(order) - 1) if len(order) > 1 else None
    if right is None:
        nearest = np.zeros(len(ticks), np.int64)
    else:
        left = right - 1
        nearest = np.where(ticks - sorted_stamps[left] <= sorted_stamps[right] - ticks, left, right)
    rows = order[nearest]
    close = np.abs(stamps[rows] - ticks) <= 0.5 / TRACKER_RATE_HZ + 1e-6
    return rows, close & np.asarray(valid, dtype=bool)[rows]


def landmark_frames(points: np.ndarray, gaze_offsets: np.ndarray, pose: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Full-layout (``landmarks_v1``) frames from 2D landmarks in pixels (T, 68, 2), gaze
    proxy (T, 2, 2) and (yaw, pitch) in ``pose[:, :2]``; roll is the landmarks' eye line, as
    in video. Invalid rows stay zero."""
    frames = np.zeros((len(points), len(FULL_CHANNELS)), np.float32)
    dummy_irises = np.zeros((2, 2))
    for t in np.flatnonzero(valid):
        try:
            landmarks, _, roll = normalise_face(points[t], dummy_irises)
        except ValueError:  # coinciding eye corners: no usable face
            valid[t] = False
            continue
        frames[t] = np.concatenate([landmarks.reshape(-1), gaze_offsets[t].reshape(-1), pose[t, :2], [roll, 1.0]])
    return frames


def landmark_free_frames(
    gaze_offsets: np.ndarray,
    pose: np.ndarray,
    valid: np.ndarray,
    spec: VisualSpec,
    action_units: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Frames of a profile without landmarks: gaze proxy, (yaw, pitch, roll), valid, and for
    ``gaze_pose_aus_v1`` the action-unit intensities. Invalid rows stay zero."""
    columns: list[np.ndarray] = []
    for name in spec.channel_names:
        if name in GAZE_CHANNELS:
            k = GAZE_CHANNELS.index(name)
            columns.append(gaze_offsets[:, k // 2, k % 2])
        elif name in ("yaw", "pitch", "roll"):
            columns.append(pose[:, ("yaw", "pitch", "roll").index(name)])
        elif name == "valid":
            columns.append(np.ones(len(pose)))
        elif action_units is not None and name in action_units:
            columns.append(np.nan_to_num(np.asarray(action_units[name], dtype=np.float64)))
        else:
            raise ValueError(f"profile {spec.profile!r} needs {name!r}, which these files do not provide")
    frames = np.stack(columns, axis=1).astype(np.float32)
    frames[~np.asarray(valid, dtype=bool)] = 0.0
    return frames


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class ChannelMapping:
    covers: tuple[str, ...]  # the manifest channel names of this row
    channels: str
    serve: str  # what the extractor computes from video
    daic_woz: str
    e_daic: str
    mismatch: str  # known difference between the two


_LANDMARKS = tuple(name for name in FULL_CHANNELS if name.startswith("lm"))
MAPPING: tuple[ChannelMapping, ...] = (
    ChannelMapping(
        _LANDMARKS,
        "lm0_x .. lm67_y",
        "MediaPipe mesh -> 68 iBUG points (LatentSync table), `eye_corners_v1`",
        "`CLNF_features.txt` x0..x67, y0..y67 (pixels) through the same `normalise_face`",
        "not available: profile `gaze_pose_v1` / `gaze_pose_aus_v1` drops these channels",
        "the 468->68 table sits 3.9 % of the eye-corner distance from dlib's iBUG points on "
        "average, 7.5 % on the jaw (one face, shared/research/face_pipeline.md section 5)",
    ),
    ChannelMapping(
        GAZE_CHANNELS,
        "iris1_dx, iris1_dy, iris2_dx, iris2_dy",
        "iris centre minus eye-corner midpoint over eye width (`iris_offset_v1`); eye 1 = iBUG 36-41",
        "`CLNF_gaze.txt` head-space vectors x_h0.. (eye 0 -> iris1), rendered on the canonical face "
        "turned to the tracked pose (`render_gaze_proxy`)",
        "OpenFace gaze_0_*, gaze_1_* (camera space) turned into head space by R.T, then as DAIC-WOZ",
        "the proxy of a real eye depends on its shape and on lid occlusion; the rendering uses the "
        "canonical eye (eyeball radius 1.2 cm, rest position calibrated on one real face)",
    ),
    ChannelMapping(
        ("yaw", "pitch"),
        "yaw, pitch",
        "similarity fit of the mesh to the canonical face, `zyx_radians_v1`",
        "`CLNF_pose.txt` Rx, Ry, Rz: R = Rx Ry Rz decomposed as Rz(roll) Ry(yaw) Rx(pitch); "
        "pitch plus the calibrated offset",
        "OpenFace pose_Rx, pose_Ry, pose_Rz, as DAIC-WOZ",
        "our canonical face reads a real face looking into the camera as pitched down by the "
        "calibration's `pitch_offset_deg` (11.5 deg, one face); the pose file's X, Y, Z (mm) have no "
        "counterpart",
    ),
    ChannelMapping(
        ("roll",),
        "roll",
        "in-plane angle of the outer eye corners (iBUG 36 -> 45)",
        "the same angle from `CLNF_features.txt`",
        "eye-line angle of the canonical face at the tracked pose (no landmarks)",
        "E-DAIC's roll comes from the 3D pose, so it ignores the person's own eye-line tilt",
    ),
    ChannelMapping(
        ("valid",),
        "valid",
        "1 when a face was found in the sampled frame",
        "1 when `success` is 1, every value is finite and a row lies within half a tracker frame "
        "(1/60 s) of the 10 Hz tick",
        "the same, from the OpenFace CSV",
        "the tracker's own failure modes differ from the extractor's",
    ),
    ChannelMapping(
        ACTION_UNITS,
        "AU01_r .. AU45_r (`gaze_pose_aus_v1` only)",
        "not produced: a server refuses a model with this profile",
        "not used (`CLNF_AUs.csv` is OpenFace's older AU set)",
        "OpenFace AU intensities, as distributed",
        "no serve-time counterpart; for research use on the corpus only",
    ),
    ChannelMapping(
        (),
        "(not used)",
        "-",
        "`CLNF_features3D.txt` (mm, camera space) and the pose's X, Y, Z: metric 3D has no "
        "counterpart in a video of unknown camera; read and validated, not mapped",
        "pose_Tx, pose_Ty, pose_Tz, gaze_angle_x/y (the latter duplicate the vectors)",
        "-",
    ),
)


def mapping_markdown() -> str:
    """The table as Markdown, for docs/training.md (a test keeps the two identical)."""
    lines = [
        "| manifest channels | serve time (video) | DAIC-WOZ | E-DAIC | known mismatch |",
        "|---|---|---|---|---|",
    ]
    for row in MAPPING:
        lines.append(f"| {row.channels} | {row.serve} | {row.daic_woz} | {row.e_daic} | {row.mismatch} |")
    return "\n".join(lines) + "\n"


def landmark_free_profiles() -> tuple[str, ...]:
    return tuple(name for name, channels in VISUAL_PROFILES.items() if "lm0_x" not in channels)


if __name__ == "__main__":
    import sys

    sys.stdout.write(mapping_markdown())
