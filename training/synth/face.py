"""Synthetic face-motion sequences whose dynamics follow the PHQ-8 item scores.

Each frame is built in 3D from MediaPipe's canonical face (``model_store/face_geometry``,
68 iBUG points, centimetres, x right / y down / z away), deformed, rotated, projected
with weak perspective, jittered like a landmark tracker and normalised by
``app.features.visual.space.frame_vector``, the function the serve-time extractor uses.

Layers, in order: a per-person shape (axis scalings, region offsets, per-point noise,
rest lip gap); per-person traits (movement, expressivity, blink rate, gaze style), each a
log-normal factor wide enough that people overlap across severities; expression tracks
(mouth opening while speaking, smiles, brow raises and furrows, blinks and lid droop);
gaze as fixations and saccades; head pose as an Ornstein-Uhlenbeck process per axis;
a face size and position in the image that drift slowly (normalisation removes them);
landmark noise of 0.5-1.5 % of the outer-eye-corner distance times ``jitter_scale``;
pose-estimate noise of ~1 degree; face-lost runs for ``missing_ratio``.

Item effects (item severity s = score / 3 in [0, 1]; every one is a multiplier or
offset on a per-person random baseline, so they are noisy and overlap):

==============  =====================================================================
item            effect on the face (direction as the literature reports)
==============  =====================================================================
psychomotor     head-motion amplitude x (1 - 0.5 s) and slower (time scale x (1 + s));
                expression events x (1 - 0.4 s) as often, x (1 - 0.3 s) as large, and
                slower (durations x (1 + 0.4 s)); mouth opening x (1 - 0.35 s);
                longer gaze fixations (x (1 + 0.3 s))
mood            smiles x (1 - 0.6 s) as often and x (1 - 0.4 s) as large; mouth
                corners 0.25 s cm lower at rest; gaze 5 s degrees lower; head 2 s degrees
                pitched down; brow furrows x (1 + 0.5 s) as often
interest        brow raises x (1 - 0.5 s) as often and x (1 - 0.5 s) as large
energy          blinks x (1 + 0.6 s) as often and x (1 + 0.3 s) as long; upper lid
                droop + 0.15 s of the eye opening
sleep           blinks x (1 + 0.3 s) as often and x (1 + 0.2 s) as long; lid droop + 0.1 s
concentration   gaze shifts x (1 + 0.8 s) as often, fixation spread x (1 + 0.6 s),
                chance that a fixation is an aversion 0.1 + 0.3 s
self_worth      gaze 4 s degrees lower; head 3.5 s degrees pitched down
appetite        none (no visual correlate is planted)
==============  =====================================================================

Looking down also lowers the upper lids (as real lids follow gaze), so droop, gaze and
pitch partly confound each other, as they do in real recordings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from app.contract import PHQ8_ITEMS, VisualSpec
from app.features.visual.space import FULL_DIM, frame_vector, rotation_matrix

REPO_ROOT = Path(__file__).resolve().parents[2]
CANONICAL_FACE_PATH = REPO_ROOT / "model_store" / "face_geometry" / "1" / "canonical_face.json"
# offsets from the canonical face to what the serve-time extractor measures on a real face
# (python -m training.visual_calibration --write)
CALIBRATION_PATH = Path(__file__).resolve().parent / "face_calibration.json"

EYEBALL_RADIUS_CM = 1.2
# upper/lower lid point pairs that meet when the eye closes, per eye (iBUG indices)
LID_PAIRS = (((37, 41), (38, 40)), ((43, 47), (44, 46)))
# where the lids meet, as a fraction of the way from the upper lid to the lower one
LID_MEETING_POINT = 0.75
REGIONS = (range(0, 17), range(17, 27), range(27, 36), range(36, 48), range(48, 68))
_ITEM = {name: i for i, name in enumerate(PHQ8_ITEMS)}


@dataclass(frozen=True)
class FaceSession:
    frames: np.ndarray  # (T, FULL_DIM) float32, landmarks_v1 layout; invalid rows all zero
    valid: np.ndarray  # (T,) bool, a face was found
    confidence: np.ndarray  # (T,) float32, tracker confidence; 0 where invalid


@dataclass(frozen=True)
class CanonicalFace:
    points: np.ndarray  # (68, 3) iBUG points, cm, x right / y down / z away from the camera
    irises: np.ndarray  # (2, 3) iris centres of the eye 36-41, then 42-47
    eye_distance: float  # outer eye corners, cm


@lru_cache(maxsize=4)
def load_canonical_face(path: Path = CANONICAL_FACE_PATH) -> CanonicalFace:
    data = json.loads(Path(path).read_text())
    points = np.asarray(data["ibug68_points"], dtype=np.float64)
    return CanonicalFace(
        points, np.asarray(data["iris_centres"], dtype=np.float64), float(np.linalg.norm(points[45] - points[36]))
    )


def _severity(items: np.ndarray) -> dict[str, float]:
    scores = np.asarray(items, dtype=np.float64).reshape(-1)
    if scores.shape != (len(PHQ8_ITEMS),) or not np.all(np.isfinite(scores)):
        raise ValueError(f"items must be {len(PHQ8_ITEMS)} finite scores in PHQ-8 order")
    return {name: float(np.clip(scores[i] / 3.0, 0.0, 1.0)) for name, i in _ITEM.items()}


def _ou(n: int, tau_frames: float, rng: np.random.Generator) -> np.ndarray:
    """Ornstein-Uhlenbeck (AR(1)) sequence with unit stationary variance: rough, like jitter."""
    if n == 0:
        return np.zeros(0)
    a = float(np.exp(-1.0 / max(tau_frames, 1e-3)))
    drive = rng.standard_normal(n) * np.sqrt(1.0 - a * a)
    drive[0] = rng.standard_normal()  # start in the stationary distribution
    return lfilter([1.0], [1.0, -a], drive)


def _smooth(n: int, tau_frames: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random motion: white noise through two AR(1) stages, unit stationary variance.

    One stage (``_ou``) has steps of the order of sigma * sqrt(2 / tau) each frame, far too
    jerky for a head; two stages make the velocity continuous too.
    """
    if n == 0:
        return np.zeros(0)
    a = float(np.exp(-1.0 / max(tau_frames, 1e-3)))
    burn_in = int(np.ceil(8.0 * max(tau_frames, 1.0)))  # forget the zero start
    out = lfilter([1.0], [1.0, -2.0 * a, a * a], rng.standard_normal(n + burn_in))[burn_in:]
    return out / np.sqrt((1.0 + a * a) / (1.0 - a * a) ** 3)


def _bump(u: np.ndarray, rise: float) -> np.ndarray:
    """Smooth 0 -> 1 -> 0 over u in [0, 1], rising over the first and falling over the last ``rise``."""
    up = np.clip(u / rise, 0.0, 1.0)
    down = np.clip((1.0 - u) / rise, 0.0, 1.0)
    return np.sin(0.5 * np.pi * np.minimum(up, down)) ** 2


def _events(
    times: np.ndarray,
    rate_per_s: np.ndarray | float,
    duration_s: tuple[float, float],
    amplitude: Callable[[], float],
    rise: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A track of Poisson-timed bumps (rate may vary per frame), sampled at the frame times."""
    n = times.size
    track = np.zeros(n)
    if n == 0:
        return track
    step = times[1] - times[0] if n > 1 else 1.0
    rate = np.broadcast_to(np.asarray(rate_per_s, dtype=np.float64), (n,))
    starts = np.flatnonzero(rng.random(n) < np.clip(rate * step, 0.0, 1.0))
    for start in starts:
        onset = times[start] + rng.uniform(0.0, step)  # events fall between frames too
        length = rng.uniform(*duration_s)
        hit = slice(start, min(n, start + int(np.ceil(length / step)) + 2))
        u = (times[hit] - onset) / length
        inside = (u >= 0.0) & (u <= 1.0)
        track[hit] = np.maximum(track[hit], amplitude() * _bump(u, rise) * inside)
    return track


def _speaking_turns(n: int, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Alternating speaking / listening turns when the caller gives no speech mask."""
    speaking = np.zeros(n, dtype=bool)
    pos, talking = 0, bool(rng.random() < 0.5)
    while pos < n:
        length = max(1, int(rng.exponential(6.0 if talking else 4.0) * rate_hz))
        speaking[pos : pos + length] = talking
        pos, talking = pos + length, not talking
    return speaking


def _missing_runs(n: int, missing_ratio: float, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Validity mask with round(missing_ratio * n) invalid frames in contiguous runs (~2 s each)."""
    valid = np.ones(n, dtype=bool)
    n_missing = round(float(np.clip(missing_ratio, 0.0, 1.0)) * n)
    if n_missing == 0:
        return valid
    n_valid = n - n_missing
    n_runs = int(np.clip(round(n_missing / (2.0 * rate_hz)), 1, min(n_missing, n_valid + 1)))
    # split the missing frames into n_runs positive runs, the valid ones into the gaps around them
    run_lengths = 1 + rng.multinomial(n_missing - n_runs, np.full(n_runs, 1.0 / n_runs))
    inner_gaps = n_runs - 1
    gaps = rng.multinomial(n_valid - inner_gaps, np.full(n_runs + 1, 1.0 / (n_runs + 1)))
    gaps[1:-1] += 1  # runs stay apart
    pos = 0
    for run in range(n_runs):
        pos += gaps[run]
        valid[pos : pos + run_lengths[run]] = False
        pos += run_lengths[run]
    return valid


@dataclass(frozen=True)
class Calibration:
    shape_cm: np.ndarray  # (68, 2) x, y offsets of the neutral face, cm
    iris_cm: np.ndarray  # (2, 2) x, y offsets of the iris centres, cm
    pitch_deg: float


@lru_cache(maxsize=1)
def load_calibration(path: Path = CALIBRATION_PATH) -> Calibration:
    face = load_canonical_face()
    data = json.loads(Path(path).read_text())
    eye_width = np.linalg.norm(face.points[[39, 45], :2] - face.points[[36, 42], :2], axis=1)  # per eye, cm
    return Calibration(
        shape_cm=np.asarray(data["shape_offset"]) * face.eye_distance,
        iris_cm=np.asarray(data["iris_offset"]) * eye_width[:, None],
        pitch_deg=float(data["pitch_offset_deg"]),
    )


NO_CALIBRATION = Calibration(np.zeros((68, 2)), np.zeros((2, 2)), 0.0)


def _person_shape(face: CanonicalFace, rng: np.random.Generator, calibration: Calibration) -> np.ndarray:
    """A plausible individual face: the canonical one moved towards a measured real face (by
    a random share per person), scaled, with region offsets and point noise."""
    shape = face.points.copy()
    shape[:, :2] += rng.uniform(0.5, 1.2) * calibration.shape_cm
    shape *= 1.0 + rng.normal(0.0, 0.04, size=3)
    for region in REGIONS[1:]:  # jaw stays anchored to the skull scaling
        shape[list(region), 1] += rng.normal(0.0, 0.12)
    shape += rng.normal(0.0, 0.06, size=shape.shape)
    # the canonical mouth rests half open; most people rest with the lips (nearly) closed
    gap = (shape[[65, 66, 67], 1] - shape[[63, 62, 61], 1]) * rng.uniform(0.6, 1.0)
    shape[[65, 66, 67], 1] -= 0.7 * gap
    shape[[63, 62, 61], 1] += 0.3 * gap
    return shape


def _deformation_bases(shape: np.ndarray) -> dict[str, np.ndarray]:
    """Displacements (68, 3) in cm per unit of each expression parameter."""

    def basis(moves: dict[int, tuple[float, float]]) -> np.ndarray:
        out = np.zeros((68, 3))
        for index, (dx_outward, dy) in moves.items():
            side = np.sign(shape[index, 0]) if abs(shape[index, 0]) > 0.2 else 0.0
            out[index, :2] = (side * dx_outward, dy)
        return out

    jaw = {
        8: 1.0,
        7: 0.95,
        9: 0.95,
        6: 0.8,
        10: 0.8,
        5: 0.6,
        11: 0.6,
        4: 0.4,
        12: 0.4,
        3: 0.2,
        13: 0.2,
        2: 0.08,
        14: 0.08,
    }
    mouth_open = {i: (0.0, w) for i, w in jaw.items()}
    mouth_open |= {i: (0.0, 1.0) for i in (56, 57, 58, 65, 66, 67)}
    mouth_open |= {i: (0.0, 0.8) for i in (55, 59)}
    mouth_open |= {i: (0.0, 0.45) for i in (48, 54, 60, 64)}
    mouth_open |= {i: (0.0, -0.1) for i in (49, 50, 51, 52, 53, 61, 62, 63)}
    smile = {i: (0.45, -0.5) for i in (48, 54)} | {i: (0.4, -0.45) for i in (60, 64)}
    smile |= {i: (0.15, -0.2) for i in (49, 53, 55, 59)} | {i: (0.1, -0.15) for i in (61, 63, 65, 67)}
    smile |= {i: (0.0, -0.05) for i in (50, 52)} | {i: (0.0, -0.08) for i in (40, 41, 46, 47)}
    corners_down = {i: (0.0, 1.0) for i in (48, 54, 60, 64)} | {i: (0.0, 0.3) for i in (49, 53, 55, 59)}
    brow_raise = {i: (0.0, -1.0) for i in (18, 19, 20, 23, 24, 25)} | {i: (0.0, -0.7) for i in (17, 26)}
    brow_raise |= {i: (0.0, -0.9) for i in (21, 22)} | {i: (0.0, -0.15) for i in (37, 38, 43, 44)}
    furrow = {i: (-0.5, 0.6) for i in (21, 22)} | {i: (-0.3, 0.4) for i in (20, 23)}
    furrow |= {i: (0.0, 0.2) for i in (19, 24)}
    bases = {
        name: basis(moves)
        for name, moves in (
            ("mouth_open", mouth_open),
            ("smile", smile),
            ("corners_down", corners_down),
            ("brow_raise", brow_raise),
            ("furrow", furrow),
        )
    }
    for eye, pairs in enumerate(LID_PAIRS):
        lid = np.zeros((68, 3))
        for upper, lower in pairs:
            span = shape[lower] - shape[upper]
            lid[upper] = LID_MEETING_POINT * span
            lid[lower] = -(1.0 - LID_MEETING_POINT) * span
        bases[f"lid{eye}"] = lid
    return bases


def _log_factor(rng: np.random.Generator, sigma: float) -> float:
    return float(np.exp(rng.normal(0.0, sigma)))


@dataclass(frozen=True)
class _Person:
    """Who the participant is, apart from their symptoms: drawn before any item effect.

    Drawing these first (and every time series from its own child generator) means one
    seed is one person, whatever the item scores; scores then change only the symptoms.
    """

    shape: np.ndarray  # (68, 3) cm
    corner_offset_cm: float  # rest mouth-corner height, + is lower
    movement: float  # head-motion amplitude factor
    slowness: float  # head-motion time-scale factor
    expr_rate: float
    expr_size: float
    mouth_size: float
    blink_rate: float
    droop: float  # rest lid closure, fraction of the eye opening
    pose_mean_deg: np.ndarray  # (3,) yaw, pitch, roll
    gaze_mean_deg: np.ndarray  # (2,) yaw, pitch
    gaze_spread: float
    fixation: float
    eye_px: float  # outer-eye-corner distance in the image, pixels
    centre_px: np.ndarray  # (2,)
    noise_fraction: float  # landmark noise sd / outer-eye-corner distance


def _draw_person(face: CanonicalFace, rng: np.random.Generator, calibration: Calibration) -> _Person:
    return _Person(
        shape=_person_shape(face, rng, calibration),
        corner_offset_cm=float(rng.normal(0.0, 0.08)),
        movement=_log_factor(rng, 0.3),
        slowness=_log_factor(rng, 0.25),
        expr_rate=_log_factor(rng, 0.3),
        expr_size=_log_factor(rng, 0.25),
        mouth_size=_log_factor(rng, 0.25),
        blink_rate=_log_factor(rng, 0.35),
        droop=float(rng.normal(0.05, 0.05)),
        # pitch: camera height relative to the eyes varies a lot between set-ups
        pose_mean_deg=rng.normal([0.0, calibration.pitch_deg, 0.0], [4.0, 5.0, 2.0]),
        gaze_mean_deg=rng.normal(0.0, [3.0, 2.5]),
        gaze_spread=_log_factor(rng, 0.25),
        fixation=_log_factor(rng, 0.3),
        eye_px=float(rng.uniform(70.0, 220.0)),
        centre_px=np.array([320.0, 240.0]) + rng.normal(0.0, 40.0, 2),
        noise_fraction=float(rng.uniform(0.005, 0.015)),
    )


def _gaze_track(
    n: int, rate_hz: float, person: _Person, sev: dict[str, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Eye-in-head gaze (yaw, pitch) in radians: fixations joined by instant saccades; pitch > 0 is down."""
    deg = np.pi / 180.0
    mean_yaw = person.gaze_mean_deg[0] * deg
    mean_pitch = (person.gaze_mean_deg[1] + 5.0 * sev["mood"] + 4.0 * sev["self_worth"]) * deg
    spread = 6.0 * person.gaze_spread * (1.0 + 0.6 * sev["concentration"]) * deg
    fixation_s = 2.0 * person.fixation * (1.0 + 0.3 * sev["psychomotor"]) / (1.0 + 0.8 * sev["concentration"])
    aversion_chance = 0.1 + 0.3 * sev["concentration"]
    yaw, pitch = np.empty(n), np.empty(n)
    pos = 0
    while pos < n:
        length = max(1, round(rng.exponential(fixation_s) * rate_hz))
        if rng.random() < aversion_chance:  # looks away: sideways and down
            target = (rng.choice([-1.0, 1.0]) * rng.uniform(12.0, 25.0) * deg, rng.uniform(0.0, 15.0) * deg)
        else:
            target = (rng.normal(0.0, spread), rng.normal(0.0, 0.7 * spread))
        yaw[pos : pos + length] = mean_yaw + target[0]
        pitch[pos : pos + length] = mean_pitch + target[1]
        pos += length
    tremor = 0.6 * deg  # fixational eye movement
    return yaw + rng.normal(0.0, tremor, n), pitch + rng.normal(0.0, tremor, n)


def face_session(
    items: np.ndarray,
    duration_s: float,
    rng: np.random.Generator,
    spec: VisualSpec,
    speaking: np.ndarray | None = None,
    missing_ratio: float = 0.0,
    jitter_scale: float = 1.0,
    calibrated: bool = True,
) -> FaceSession:
    """One participant's face track: ``round(duration_s * spec.rate_hz)`` frames in ``spec``'s layout.

    items: the 8 PHQ-8 item scores (0-3, PHQ8_ITEMS order) that shape the motion (module doc).
    speaking: optional bool per frame; the mouth moves with speech (made up when absent).
    missing_ratio: fraction of frames where the face is lost, in contiguous runs.
    jitter_scale: multiplies the landmark and pose noise (and lowers the confidence).
    calibrated: apply the offsets measured from the extractor on a real face (face_calibration.json).
    The generator first draws the person (shape, traits), then each time series from its
    own child generator, so one seed with other item scores is the same person.
    """
    sev = _severity(items)
    rate = float(spec.rate_hz)
    n = round(max(duration_s, 0.0) * rate)
    if speaking is not None:
        speaking = np.asarray(speaking, dtype=bool).reshape(-1)
        if speaking.shape != (n,):
            raise ValueError(f"speaking must hold one flag per visual frame ({n})")
    if jitter_scale <= 0:
        raise ValueError("jitter_scale must be positive")
    face = load_canonical_face()
    calibration = load_calibration() if calibrated else NO_CALIBRATION
    person = _draw_person(face, rng, calibration)
    (
        turns_rng,
        mouth_rng,
        smile_rng,
        brow_rng,
        furrow_rng,
        blink_rng,
        gaze_rng,
        pose_rng,
        camera_rng,
        missing_rng,
        noise_rng,
    ) = rng.spawn(11)
    times = np.arange(n) / rate
    deg = np.pi / 180.0
    psy = sev["psychomotor"]

    bases = _deformation_bases(person.shape)
    corner_drop_cm = 0.25 * sev["mood"] + person.corner_offset_cm
    shape = person.shape + corner_drop_cm * bases["corners_down"]
    expr_rate = person.expr_rate * (1.0 - 0.4 * psy)
    expr_size = person.expr_size * (1.0 - 0.3 * psy)
    expr_slow = 1.0 + 0.4 * psy
    if speaking is None:
        speaking = _speaking_turns(n, rate, turns_rng)
    talk = speaking.astype(np.float64)

    # expression tracks (cm, or fractions of the eye opening for the lids)
    mouth_amp = 0.9 * person.mouth_size * (1.0 - 0.35 * psy)
    syllables = np.clip(0.45 + 0.4 * _ou(n, 0.15 * rate * expr_slow, mouth_rng), 0.0, 1.0)
    idle_mouth = 0.06 * np.abs(_ou(n, 3.0 * rate, mouth_rng))
    mouth_open = talk * mouth_amp * syllables + idle_mouth
    smile_rate = 4.0 / 60.0 * expr_rate * (1.0 - 0.6 * sev["mood"])
    smile_size = 0.6 * expr_size * (1.0 - 0.4 * sev["mood"])
    smile = _events(
        times,
        smile_rate,
        (1.0 * expr_slow, 4.0 * expr_slow),
        lambda: smile_size * smile_rng.uniform(0.4, 1.0),
        0.25,
        smile_rng,
    )
    brow_rate = 8.0 / 60.0 * expr_rate * (1.0 - 0.5 * sev["interest"]) * (0.6 + 0.8 * talk)
    brow_size = 0.5 * expr_size * (1.0 - 0.5 * sev["interest"])
    brow_raise = _events(
        times,
        brow_rate,
        (0.4 * expr_slow, 1.5 * expr_slow),
        lambda: brow_size * brow_rng.uniform(0.4, 1.0),
        0.3,
        brow_rng,
    )
    furrow = _events(
        times,
        2.0 / 60.0 * expr_rate * (1.0 + 0.5 * sev["mood"]),
        (1.0, 3.0),
        lambda: 0.3 * expr_size * furrow_rng.uniform(0.4, 1.0),
        0.3,
        furrow_rng,
    )
    blink_rate = 17.0 / 60.0 * person.blink_rate * (1.0 + 0.6 * sev["energy"] + 0.3 * sev["sleep"])
    blink_length = 1.0 + 0.3 * sev["energy"] + 0.2 * sev["sleep"]
    blinks = _events(
        times,
        blink_rate,
        (0.2 * blink_length, 0.4 * blink_length),
        lambda: blink_rng.uniform(0.85, 1.0),
        0.5,
        blink_rng,
    )
    droop = float(np.clip(person.droop + 0.15 * sev["energy"] + 0.10 * sev["sleep"], 0.0, 0.5))
    gaze_yaw, gaze_pitch = _gaze_track(n, rate, person, sev, gaze_rng)
    closure = np.clip(droop + (1.0 - droop) * blinks + 0.8 * np.maximum(gaze_pitch, 0.0), 0.0, 1.0)

    deformed = (
        shape[None]
        + mouth_open[:, None, None] * bases["mouth_open"]
        + smile[:, None, None] * bases["smile"]
        + brow_raise[:, None, None] * bases["brow_raise"]
        + furrow[:, None, None] * bases["furrow"]
        + closure[:, None, None] * (bases["lid0"] + bases["lid1"])
    )

    # irises: eyeball centres move with the person's eye shape; gaze turns the iris on the eyeball
    eye_shift = np.stack(
        [(shape[36:42] - face.points[36:42]).mean(axis=0), (shape[42:48] - face.points[42:48]).mean(axis=0)]
    )
    eyeball = face.irises + eye_shift + np.array([0.0, 0.0, EYEBALL_RADIUS_CM])
    eyeball[:, :2] += calibration.iris_cm
    direction = np.stack(
        [np.sin(gaze_yaw) * np.cos(gaze_pitch), np.sin(gaze_pitch), -np.cos(gaze_yaw) * np.cos(gaze_pitch)], axis=-1
    )
    irises = eyeball[None] + EYEBALL_RADIUS_CM * direction[:, None, :]

    # head pose: per-person mean plus a smooth random motion per axis (radians; pitch > 0 is head down)
    pitch_down_deg = 2.0 * sev["mood"] + 3.5 * sev["self_worth"]
    pose_mean = (person.pose_mean_deg + np.array([0.0, pitch_down_deg, 0.0])) * deg
    pose_sd = np.array([6.0, 4.5, 2.5]) * deg * person.movement * (1.0 - 0.5 * psy)
    pose_tau = 0.8 * person.slowness * (1.0 + psy) * rate
    pose = pose_mean + pose_sd * np.stack([_smooth(n, pose_tau, pose_rng) for _ in range(3)], axis=-1)
    pose = np.clip(pose, -45.0 * deg, 45.0 * deg)

    # weak perspective: face size and position in the image drift; the normalisation removes both
    scale = person.eye_px / face.eye_distance * np.exp(0.05 * _ou(n, 10.0 * rate, camera_rng))
    drift = person.centre_px + 10.0 * np.stack(
        [_ou(n, 8.0 * rate, camera_rng), _ou(n, 8.0 * rate, camera_rng)], axis=-1
    )
    pivot = shape.mean(axis=0) + np.array([0.0, 0.0, 8.0])  # roughly the head's centre
    noise_px = person.noise_fraction * jitter_scale * person.eye_px

    valid = _missing_runs(n, missing_ratio, rate, missing_rng)
    frames = np.zeros((n, FULL_DIM), dtype=np.float32)
    confidence = np.zeros(n, dtype=np.float32)
    landmark_noise = noise_rng.normal(0.0, noise_px, size=(n, 68, 2))
    iris_noise = noise_rng.normal(0.0, noise_px, size=(n, 2, 2))
    pose_estimate = pose[:, :2] + noise_rng.normal(0.0, 0.6 * deg * jitter_scale, size=(n, 2))
    confidence_noise = noise_rng.normal(0.0, 0.01, n)
    for t in np.flatnonzero(valid):
        rotation = rotation_matrix(*pose[t])
        camera = (deformed[t] - pivot) @ rotation.T
        iris_camera = (irises[t] - pivot) @ rotation.T
        points = scale[t] * camera[:, :2] + drift[t] + landmark_noise[t]
        iris_points = scale[t] * iris_camera[:, :2] + drift[t] + iris_noise[t]
        frames[t] = frame_vector(points, iris_points, pose_estimate[t, 0], pose_estimate[t, 1], spec)
        turned = abs(pose[t, 0]) + abs(pose[t, 1])
        confidence[t] = np.clip(0.975 - 0.1 * turned - 0.04 * (jitter_scale - 1.0) + confidence_noise[t], 0.5, 1.0)
    return FaceSession(frames=frames, valid=valid, confidence=confidence)
