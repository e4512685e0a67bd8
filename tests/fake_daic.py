"""A tiny fake DAIC-WOZ / E-DAIC corpus with real content, written in the official formats.

Each session is ~20 s: a face (the synthetic corpus's canonical face, cm) turned by a known
head pose and gaze and projected to 640x480 pixels at 30 fps, with a run of failed frames;
an interview transcript (Ellie and the participant, one participant line holding a
``scrubbed_entry``); and 16 kHz audio holding espeak-ng speech exactly at the participant's
turns. Rotations come from scipy (``Rotation.from_euler("XYZ", ...)``, OpenFace's R = Rx Ry Rz),
not from the code under test.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from app.contract import ACTION_UNITS
from tests.fake_edaic import FakeEdaicLabel, write_edaic_labels, write_edaic_session
from tests.media import speech_signal, write_audio
from training.daic.files import PHQ8_ITEMS
from training.synth.face import load_canonical_face

RATE = 30.0
SAMPLE_RATE = 16000
PIXELS_PER_CM = 30.0
CENTRE_PX = np.array([320.0, 240.0])
HEAD_MM = np.array([0.0, 0.0, 600.0])
FAILED = slice(60, 75)  # 0.5 s of failed tracking (frames 60-74)

ELLIE_LINES = ("hi i'm ellie thanks for coming in today", "how have you been feeling lately", "where are you from")
ANSWERS = (
    "i have been feeling pretty down and i cannot sleep at night",
    "i grew up in scrubbed_entry but i moved away years ago",
    "work has been hard and i keep losing focus in meetings",
)
SCRUBBED_ANSWER = 1


@dataclass(frozen=True)
class FakeSession:
    participant_id: int
    split: str
    items: tuple[int, ...] | None  # None: a split that gives only the total
    total: int
    write_folder: bool = True  # False: listed in the split file, folder missing


@dataclass
class Motion:
    """What a session's tracker files say, per 30 fps frame."""

    timestamps: np.ndarray  # (T,)
    success: np.ndarray  # (T,) bool
    euler: np.ndarray  # (T, 3) OpenFace Rx, Ry, Rz
    head_gaze: np.ndarray  # (T, 2, 3) unit vectors in head space, eye 0 = image-left eye
    world_gaze: np.ndarray  # (T, 2, 3)
    points2d: np.ndarray  # (T, 68, 2) pixels
    points3d: np.ndarray  # (T, 68, 3) mm, camera space


@dataclass
class Interview:
    """Transcript rows (start, stop, speaker, text) and the audio that goes with them."""

    rows: list[tuple[float, float, str, str]] = field(default_factory=list)
    signal: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def participant_rows(self) -> list[tuple[float, float, str, str]]:
        return [r for r in self.rows if r[2] == "Participant"]


def items_for(total: int) -> tuple[int, ...]:
    """Eight item scores in 0..3 that sum to ``total``."""
    base, extra = divmod(total, 8)
    return tuple(min(3, base + (1 if k < extra else 0)) for k in range(8))


def motion(seconds: float, seed: int) -> Motion:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    phase = rng.uniform(0, 2 * np.pi, 6)
    euler = np.stack(
        [
            0.08 * np.sin(2 * np.pi * t / 5 + phase[0]),
            0.15 * np.sin(2 * np.pi * t / 7 + phase[1]),
            0.05 * np.sin(2 * np.pi * t / 9 + phase[2]),
        ],
        axis=1,
    )
    gaze_yaw = 0.25 * np.sin(2 * np.pi * t / 3 + phase[3])
    gaze_pitch = 0.12 * np.sin(2 * np.pi * t / 4 + phase[4])
    direction = np.stack(
        [np.sin(gaze_yaw) * np.cos(gaze_pitch), np.sin(gaze_pitch), -np.cos(gaze_yaw) * np.cos(gaze_pitch)], -1
    )
    head_gaze = np.repeat(direction[:, None, :], 2, axis=1)
    rotations = Rotation.from_euler("XYZ", euler).as_matrix()  # intrinsic XYZ == Rx @ Ry @ Rz
    face = load_canonical_face()
    camera = np.einsum("tij,pj->tpi", rotations, face.points)  # cm
    points2d = PIXELS_PER_CM * camera[..., :2] + CENTRE_PX
    success = np.ones(n, bool)
    success[FAILED] = False
    return Motion(
        timestamps=t,
        success=success,
        euler=euler,
        head_gaze=head_gaze,
        world_gaze=np.einsum("tij,tej->tei", rotations, head_gaze),
        points2d=points2d,
        points3d=10.0 * camera + HEAD_MM,
    )


def interview(seed: int) -> Interview:
    """Ellie asks, the participant answers; audio holds speech only in the participant's turns."""
    rows: list[tuple[float, float, str, str]] = []
    parts: list[np.ndarray] = []
    cursor = 0.5
    for question, answer in zip(ELLIE_LINES, ANSWERS, strict=True):
        rows.append((round(cursor, 3), round(cursor + 1.5, 3), "Ellie", question))
        parts.append(np.zeros(round((cursor + 2.0) * SAMPLE_RATE) - sum(len(p) for p in parts), np.float32))
        cursor += 2.0
        speech = speech_signal(answer, SAMPLE_RATE, wpm=170 + 10 * (seed % 3))
        if answer is ANSWERS[SCRUBBED_ANSWER]:
            speech = np.zeros_like(speech)  # the corpus zeroes a scrubbed turn's audio
        rows.append((round(cursor, 3), round(cursor + len(speech) / SAMPLE_RATE, 3), "Participant", answer))
        parts.append(speech.astype(np.float32))
        cursor += len(speech) / SAMPLE_RATE + 0.5
    parts.append(np.zeros(SAMPLE_RATE, np.float32))
    signal = np.concatenate(parts)
    # a quiet room: the recorder's own noise floor
    signal = signal + np.random.default_rng(seed).normal(0, 1e-3, signal.shape).astype(np.float32)
    return Interview(rows=rows, signal=signal)


def wav_bytes(signal: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return write_audio(signal, SAMPLE_RATE, Path(folder) / "audio.wav").read_bytes()


def _cells(values: np.ndarray, failed: np.ndarray) -> list[list[str]]:
    return [
        ["-1.#IND"] * values.shape[1] if bad else [f"{v:.4f}" for v in row]
        for row, bad in zip(values, failed, strict=True)
    ]


def _write_clnf(path: Path, names: list[str], motion_: Motion, values: np.ndarray) -> None:
    failed = ~motion_.success
    lines = [", ".join(["frame", "timestamp", "confidence", "success", *names])]
    for k, cells in enumerate(_cells(values, failed)):
        meta = [str(k + 1), f"{motion_.timestamps[k]:.6f}", "-0.2" if failed[k] else "0.93", "0" if failed[k] else "1"]
        lines.append(", ".join(meta + cells))
    path.write_text("\n".join(lines) + "\n")


def write_daic_woz_session(root: Path, participant_id: int, seconds: float = 20.0) -> tuple[Motion, Interview]:
    folder = root / f"{participant_id}_P"
    folder.mkdir(parents=True)
    talk = interview(participant_id)
    seconds = max(seconds, len(talk.signal) / SAMPLE_RATE)
    move = motion(seconds, participant_id)
    prefix = folder / f"{participant_id}_"
    _write_clnf(
        Path(f"{prefix}CLNF_features.txt"),
        [f"{a}{i}" for a in "xy" for i in range(68)],
        move,
        np.concatenate([move.points2d[..., 0], move.points2d[..., 1]], axis=1),
    )
    _write_clnf(
        Path(f"{prefix}CLNF_features3D.txt"),
        [f"{a}{i}" for a in "XYZ" for i in range(68)],
        move,
        np.concatenate([move.points3d[..., k] for k in range(3)], axis=1),
    )
    _write_clnf(
        Path(f"{prefix}CLNF_gaze.txt"),
        [f"{a}_{e}" for e in ("0", "1", "h0", "h1") for a in "xyz"],
        move,
        np.concatenate([move.world_gaze.reshape(-1, 6), move.head_gaze.reshape(-1, 6)], axis=1),
    )
    _write_clnf(
        Path(f"{prefix}CLNF_pose.txt"),
        ["X", "Y", "Z", "Rx", "Ry", "Rz"],
        move,
        np.concatenate([np.tile(HEAD_MM, (len(move.euler), 1)), move.euler], axis=1),
    )
    transcript = ["start_time\tstop_time\tspeaker\tvalue"]
    transcript += [f"{a}\t{b}\t{who}\t{text}" for a, b, who, text in talk.rows]
    Path(f"{prefix}TRANSCRIPT.csv").write_text("\n".join(transcript) + "\n")
    Path(f"{prefix}AUDIO.wav").write_bytes(wav_bytes(talk.signal))
    return move, talk


DAIC_WOZ_SESSIONS = (
    FakeSession(301, "train", items_for(3), 3),
    FakeSession(302, "train", items_for(14), 14),
    FakeSession(303, "train", items_for(8), 8),
    FakeSession(342, "train", items_for(5), 5, write_folder=False),  # excluded by the corpus
    FakeSession(305, "train", items_for(9), 9, write_folder=False),  # folder missing
    FakeSession(306, "dev", items_for(2), 2),
    FakeSession(307, "dev", items_for(17), 17),
    FakeSession(308, "test", None, 11),
)


def write_daic_woz_corpus(root: Path, sessions: tuple[FakeSession, ...] = DAIC_WOZ_SESSIONS) -> Path:
    """Session folders, split CSVs as the corpus ships them (train/dev with items, the full
    test split with totals only)."""
    root.mkdir(parents=True, exist_ok=True)
    for session in sessions:
        if session.write_folder:
            write_daic_woz_session(root, session.participant_id)
    header = "Participant_ID,PHQ8_Binary,PHQ8_Score,Gender," + ",".join(f"PHQ8_{i}" for i in PHQ8_ITEMS)
    for split, name in (("train", "train_split_Depression_AVEC2017.csv"), ("dev", "dev_split_Depression_AVEC2017.csv")):
        rows = [
            f"{s.participant_id},{int(s.total >= 10)},{s.total},0," + ",".join(map(str, s.items))
            for s in sessions
            if s.split == split
        ]
        (root / name).write_text("\n".join([header, *rows]) + "\n")
    test = [f"{s.participant_id},{int(s.total >= 10)},{s.total},1" for s in sessions if s.split == "test"]
    (root / "full_test_split.csv").write_text("\n".join(["Participant_ID,PHQ_Binary,PHQ_Score,Gender", *test]) + "\n")
    return root


EDAIC_SESSIONS = (
    FakeSession(600, "train", items_for(4), 4),
    FakeSession(601, "train", items_for(15), 15),
    FakeSession(602, "train", items_for(7), 7),
    FakeSession(603, "dev", items_for(12), 12),
    FakeSession(604, "dev", None, 6),  # absent from the detailed labels: total only
    FakeSession(605, "test", items_for(10), 10),
)


def write_edaic_corpus(root: Path, sessions: tuple[FakeSession, ...] = EDAIC_SESSIONS) -> Path:
    """Session folders (OpenFace 2.1 CSV, ASR transcript of the participant, audio) and labels."""
    root.mkdir(parents=True, exist_ok=True)
    for session in sessions:
        talk = interview(session.participant_id)
        seconds = len(talk.signal) / SAMPLE_RATE
        move = motion(seconds, session.participant_id)
        au_rng = np.random.default_rng(session.participant_id)
        write_edaic_session(
            root,
            session.participant_id,
            openface={
                "timestamps": move.timestamps,
                "success": move.success,
                "gaze": move.world_gaze,
                "pose_translation": np.tile(HEAD_MM, (len(move.euler), 1)),
                "pose_rotation": move.euler,
                "action_units": {name: au_rng.uniform(0, 2, len(move.euler)) for name in ACTION_UNITS},
            },
            # ASR: the participant's speech only (a scrubbed turn is silence, so ASR has nothing)
            utterances=[
                (a, b, text) for k, (a, b, _, text) in enumerate(talk.participant_rows()) if k != SCRUBBED_ANSWER
            ],
            audio_bytes=wav_bytes(talk.signal),
        )
    splits: dict[str, list[FakeEdaicLabel]] = {}
    for session in sessions:
        splits.setdefault(session.split, []).append(
            FakeEdaicLabel(session.participant_id, session.total, session.items)
        )
    write_edaic_labels(root, splits)
    return root
