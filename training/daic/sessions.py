"""Corpus sessions -> the serve-time feature tracks, cached per session.

One function per corpus turns a session's files into ``app.windows`` tracks in the
manifest's spec, with the serve-time functions wherever the quantity is the same:

- audio: the participant's turns (transcript times; turns touching a ``scrubbed_entry``
  are skipped, their audio is zeroed) concatenated by ``keep_segments`` and put through
  ``audio_features``, as the server does when a transcript names the speakers;
- text: the participant's utterances (``Transcript.participant``, placeholders removed)
  through the model store's sentence encoder, timed on the session clock;
- visual: tracker files through ``training.daic.mapping``, resampled to the spec's rate.

``load_corpus`` reads every labelled session of a corpus root, with a process pool and a
cache under ``.build/daic`` keyed by the feature spec and each session's file sizes and
modification times.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from app.contract import FeatureSpec
from app.features import audio as audio_features
from app.features.transcript import Transcript, Utterance, word_count
from app.features.visual.space import producible, profile_frames
from app.windows import AudioTrack, TextTrack, VisualTrack
from training.daic import files as daic_files
from training.daic import mapping
from training.data import LabelledTracks, WindowSet, read_tracks, stack_windows
from training.synth.corpus import text_encoder

log = logging.getLogger(__name__)

CORPUS_DAIC_WOZ = "daic-woz"
CORPUS_EDAIC = "e-daic"
CORPORA = (CORPUS_DAIC_WOZ, CORPUS_EDAIC)
# bump when a change here changes what a cached session holds
LOADER_VERSION = 1


@dataclass(frozen=True)
class SessionTracks:
    participant_id: int
    split: str
    items: np.ndarray | None  # (8,) PHQ-8 item scores, None where the corpus gives only a total
    total: float | None  # PHQ-8 total, None where the split has no labels
    visual: VisualTrack | None
    audio: AudioTrack | None
    text: TextTrack | None

    @classmethod
    def of(
        cls,
        label: daic_files.SessionLabel,
        visual: VisualTrack | None,
        audio: AudioTrack | None,
        text: TextTrack | None,
    ) -> SessionTracks:
        return cls(
            participant_id=label.participant_id,
            split=label.split,
            items=None if label.items is None else np.asarray(label.items, np.float32),
            total=None if label.phq8_score is None else float(label.phq8_score),
            visual=visual,
            audio=audio,
            text=text,
        )

    def labelled(self) -> LabelledTracks:
        """The training set's view: tracks and the label (the total from the items if need be)."""
        total = self.total if self.total is not None else float(np.sum(self.items))
        return LabelledTracks(self.visual, self.audio, self.text, self.items, total, self.participant_id)


class CorpusError(ValueError):
    """The corpus root cannot be used as asked; the message says what to fix."""


# ----------------------------------------------------------------------------- corpus kind


def detect_corpus(root: Path) -> str:
    """``daic-woz`` or ``e-daic`` from the folder layout."""
    from training.daic.edaic import looks_like_edaic

    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: not a directory")
    if looks_like_edaic(root):
        return CORPUS_EDAIC
    if any(root.glob("*_P/*_CLNF_features.txt")):
        return CORPUS_DAIC_WOZ
    raise CorpusError(
        f"{root}: neither DAIC-WOZ (<id>_P/<id>_CLNF_features.txt) nor E-DAIC "
        "(<id>_P/features/<id>_OpenFace2.1.0_Pose_gaze_AUs.csv) session folders found"
    )


def consistent_label(label: daic_files.SessionLabel) -> tuple[daic_files.SessionLabel, str | None]:
    """The label, with its items dropped when they do not sum to its total: the total is the
    figure every metric is reported on, so it wins; the note says what was done."""
    if label.items is None or label.phq8_score is None or sum(label.items) == label.phq8_score:
        return label, None
    note = f"items sum to {sum(label.items)} but PHQ8_Score is {label.phq8_score}; trained on the score only"
    return replace(label, items=None), note


def corpus_labels(root: Path, corpus: str) -> list[daic_files.SessionLabel]:
    """Every session label of the corpus (train, dev and test when present)."""
    root = Path(root)
    if corpus == CORPUS_EDAIC:
        from training.daic.edaic import read_edaic_labels

        return read_edaic_labels(root)
    found: dict[str, Path] = {}
    for path in sorted(root.glob("*.csv")):
        name = path.name.lower()
        if name.startswith("train_split"):
            found.setdefault("train", path)
        elif name.startswith("dev_split"):
            found.setdefault("dev", path)
        elif name.startswith("full_test_split"):
            found["test"] = path  # the labelled release wins over the id-only one
        elif name.startswith("test_split"):
            found.setdefault("test", path)
    for split in ("train", "dev"):
        if split not in found:
            raise CorpusError(f"{root}: no {split}_split*.csv; DAIC-WOZ's split files belong at the corpus root")
    labels: list[daic_files.SessionLabel] = []
    for split, path in found.items():
        labels += daic_files.read_split(path, split)
    return labels


# ----------------------------------------------------------------------------- shared pieces


def participant_audio(signal: np.ndarray, turns: list[tuple[float, float]], features: FeatureSpec) -> AudioTrack | None:
    """The participant's turns, concatenated, as the server's audio branch computes them."""
    spec = features.audio
    kept = audio_features.keep_segments(signal, spec.sample_rate, turns) if turns else signal
    if kept.size < spec.sample_rate:  # under a second: nothing a window can use
        return None
    acoustic = audio_features.audio_features(kept, spec)
    return AudioTrack(frames=acoustic.frames, speech=acoustic.speech, snr_db=acoustic.snr_db)


def without_spans(turns: list[tuple[float, float]], spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Turns that overlap none of the spans."""
    return [(a, b) for a, b in turns if not any(a < e and s < b for s, e in spans)]


def participant_text(utterances: list[Utterance], encoder) -> TextTrack | None:
    timed = [u for u in utterances if u.start_s is not None]
    if not timed:
        return None
    texts = [u.text for u in timed]
    return TextTrack(
        embeddings=encoder.embed(texts),
        start_s=np.array([u.start_s for u in timed], dtype=np.float64),
        word_counts=np.array([word_count(t) for t in texts], dtype=np.int64),
    )


# a transcript whose participant turns lie this much outside the audio belongs to another
# recording or is out of sync: its audio and text would not describe the same speech
MAX_TURN_TIME_OUTSIDE_AUDIO = 0.1


def check_turns_inside(turns: list[tuple[float, float]], audio_seconds: float, transcript: Path) -> None:
    total = sum(b - a for a, b in turns)
    outside = sum(b - max(a, audio_seconds) for a, b in turns if b > audio_seconds)
    if total > 0 and outside > MAX_TURN_TIME_OUTSIDE_AUDIO * total:
        raise daic_files.DaicFileError(
            f"{transcript}: {outside:.0f} s of the participant's {total:.0f} s of turns lie past the end of the "
            f"{audio_seconds:.0f}-s audio (transcript and audio out of sync)"
        )


def _turns(utterances: list[Utterance]) -> list[tuple[float, float]]:
    return [(u.start_s, u.end_s) for u in utterances if u.start_s is not None and u.end_s is not None]


# ----------------------------------------------------------------------------- DAIC-WOZ


def daic_woz_visual(files: daic_files.SessionFiles, features: FeatureSpec) -> VisualTrack | None:
    spec = features.visual
    if not producible(spec):  # the CLNF files hold what the serve-time extractor makes, no more
        raise CorpusError(f"DAIC-WOZ's CLNF files cannot fill the visual profile {spec.profile!r}")
    landmarks = files.read_clnf(daic_files.KIND_FEATURES)
    gaze = files.read_clnf(daic_files.KIND_GAZE)
    pose = files.read_clnf(daic_files.KIND_POSE)
    if not len(landmarks) == len(gaze) == len(pose):
        raise daic_files.DaicFileError(
            f"session {files.participant_id}: CLNF files disagree on the frame count "
            f"(features {len(landmarks)}, gaze {len(gaze)}, pose {len(pose)})"
        )
    valid = landmarks.valid & gaze.valid & pose.valid
    rows, usable = mapping.resample_index(landmarks.timestamp, valid, spec.rate_hz)
    if not usable.any():
        return None
    face = mapping.serve_face_model()
    euler = np.zeros((len(rows), 3))
    head = np.tile(np.array([0.0, 0.0, -1.0]), (len(rows), 2, 1))
    euler[usable] = pose.values[rows[usable], 3:6]
    head[usable] = gaze.values[rows[usable], 2:4]  # the head-space vectors x_h0.., x_h1..
    head /= np.maximum(np.linalg.norm(head, axis=-1, keepdims=True), 1e-9)
    offsets, _ = mapping.render_gaze_proxy(head, euler, face)
    angles = mapping.serve_pose(euler, face.pitch_offset_rad)
    full = mapping.landmark_frames(landmarks.values[rows].astype(np.float64), offsets, angles, usable)
    frames = profile_frames(full, spec)
    confidence = np.where(usable, np.clip(landmarks.confidence[rows], 0.0, 1.0), 0.0).astype(np.float32)
    return VisualTrack(frames=frames, valid=usable, confidence=confidence)


def scrubbed_spans(path: Path) -> list[tuple[float, float]]:
    """(start, stop) of DAIC-WOZ transcript rows that contain ``scrubbed_entry``."""
    spans = []
    for line in Path(path).read_text(encoding="utf-8-sig", errors="replace").splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) >= 4 and "scrubbed_entry" in cells[3].lower():
            try:
                spans.append((float(cells[0]), float(cells[1])))
            except ValueError:
                continue
    return spans


def daic_woz_session(root: Path, label: daic_files.SessionLabel, features: FeatureSpec, encoder) -> SessionTracks:
    files = daic_files.session_files(
        root,
        label.participant_id,
        required=("audio", "transcript", daic_files.KIND_FEATURES, daic_files.KIND_GAZE, daic_files.KIND_POSE),
    )
    transcript: Transcript = files.read_transcript()
    utterances = transcript.participant(None)
    turns = without_spans(_turns(utterances), scrubbed_spans(files.transcript))
    signal = audio_features.decode_audio(files.audio, features.audio.sample_rate)
    check_turns_inside(turns, signal.shape[0] / features.audio.sample_rate, files.transcript)
    return SessionTracks.of(
        label,
        visual=daic_woz_visual(files, features),
        audio=participant_audio(signal, turns, features),
        text=participant_text(utterances, encoder),
    )


# ----------------------------------------------------------------------------- E-DAIC


def edaic_visual(openface, features: FeatureSpec) -> VisualTrack | None:
    spec = features.visual
    if "lm0_x" in spec.channel_names:
        raise CorpusError(
            f"E-DAIC ships no facial landmarks, so it cannot fill the visual profile {spec.profile!r}; "
            f"train with --visual-profile {' or '.join(mapping.landmark_free_profiles())}"
        )
    rows, usable = mapping.resample_index(openface.timestamp, openface.valid, spec.rate_hz)
    if not usable.any():
        return None
    face = mapping.serve_face_model()
    euler = np.zeros((len(rows), 3))
    world = np.tile(np.array([0.0, 0.0, -1.0]), (len(rows), 2, 1))
    euler[usable] = openface.pose_rotation[rows[usable]]
    world[usable] = openface.gaze[rows[usable]]
    head = mapping.head_gaze(world, euler)
    offsets, roll = mapping.render_gaze_proxy(head, euler, face)
    angles = mapping.serve_pose(euler, face.pitch_offset_rad)
    angles[:, 2] = roll  # eye-line roll of the turned canonical face, as the extractor measures roll
    action_units = {name: values[rows] for name, values in openface.action_units.items()}
    frames = mapping.landmark_free_frames(offsets, angles, usable, spec, action_units)
    confidence = np.where(usable, np.clip(openface.confidence[rows], 0.0, 1.0), 0.0).astype(np.float32)
    return VisualTrack(frames=frames, valid=usable, confidence=confidence)


def edaic_session(root: Path, label: daic_files.SessionLabel, features: FeatureSpec, encoder) -> SessionTracks:
    from training.daic.edaic import edaic_session_files

    files = edaic_session_files(root, label.participant_id)
    utterances = files.read_transcript().participant(None)  # ASR of the participant only
    turns = _turns(utterances)
    signal = audio_features.decode_audio(files.audio, features.audio.sample_rate)
    check_turns_inside(turns, signal.shape[0] / features.audio.sample_rate, files.transcript)
    return SessionTracks.of(
        label,
        visual=edaic_visual(files.read_openface(), features),
        audio=participant_audio(signal, turns, features),
        text=participant_text(utterances, encoder),
    )


# ----------------------------------------------------------------------------- cache + pool


def _session_stamp(folder: Path) -> str:
    """Sizes and modification times of a session's files: a changed file rebuilds it."""
    entries = sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def cache_key(corpus: str, features: FeatureSpec) -> str:
    blob = json.dumps(
        {"loader": LOADER_VERSION, "corpus": corpus, "features": features.model_dump(mode="json")}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _save(path: Path, session: SessionTracks) -> None:
    arrays: dict[str, np.ndarray] = {}
    if session.visual is not None:
        arrays.update(
            visual_frames=session.visual.frames.astype(np.float32),
            visual_valid=session.visual.valid,
            visual_confidence=session.visual.confidence,
        )
    if session.audio is not None:
        arrays.update(
            audio_frames=session.audio.frames.astype(np.float16),
            audio_speech=session.audio.speech,
            audio_snr_db=np.float32(session.audio.snr_db),
        )
    if session.text is not None:
        arrays.update(
            text_embeddings=session.text.embeddings.astype(np.float16),
            text_start_s=session.text.start_s,
            text_word_counts=session.text.word_counts,
        )
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _load(path: Path, label: daic_files.SessionLabel) -> SessionTracks:
    with np.load(path) as data:
        return SessionTracks.of(label, *read_tracks({k: data[k] for k in data.files}))


@dataclass(frozen=True)
class _Job:
    root: Path
    corpus: str
    label: daic_files.SessionLabel
    features: FeatureSpec
    text_encoder_dir: Path
    path: Path


def _build(job: _Job) -> tuple[int, str | None]:
    """Build one session into the cache; (participant, error message or None)."""
    if job.path.exists():
        return job.label.participant_id, None
    encoder = text_encoder(job.text_encoder_dir)  # loaded once per process, as the server's workers do
    build = daic_woz_session if job.corpus == CORPUS_DAIC_WOZ else edaic_session
    try:
        session = build(job.root, job.label, job.features, encoder)
    except (daic_files.DaicFileError, audio_features.AudioDecodeError, CorpusError) as exc:
        return job.label.participant_id, str(exc)
    _save(job.path, session)
    return job.label.participant_id, None


@dataclass(frozen=True)
class Corpus:
    kind: str
    sessions: list[SessionTracks]
    skipped: dict[int, str]  # participant -> why it was left out
    label_notes: dict[int, str] = field(default_factory=dict)  # participant -> how its label was read

    def split(self, name: str) -> list[SessionTracks]:
        return [s for s in self.sessions if s.split == name]

    def window_sets(
        self, features: FeatureSpec, splits: tuple[str, ...] = ("train", "dev", "test")
    ) -> dict[str, WindowSet]:
        """Each of ``splits`` that holds a session, as stacked windows."""
        return {
            name: stack_windows([s.labelled() for s in self.split(name)], features)
            for name in splits
            if self.split(name)
        }

    def notes(self) -> list[str]:
        """One line per session left out or whose label was changed, for the run's log."""
        lines = [f"session {p} left out: {reason}" for p, reason in sorted(self.skipped.items())]
        return lines + [f"session {p}: {note}" for p, note in sorted(self.label_notes.items())]


def load_corpus(
    root: Path,
    features: FeatureSpec,
    text_encoder_dir: Path,
    cache_root: Path = Path(".build/daic"),
    corpus: str | None = None,
    workers: int = 2,
) -> Corpus:
    """Every labelled, usable session of the corpus at ``root`` as feature tracks.

    Sessions the corpus excludes, sessions without a label and sessions whose files are
    missing or broken are left out and named in ``Corpus.skipped`` with the reason.
    """
    root = Path(root)
    corpus = corpus or detect_corpus(root)
    if corpus not in CORPORA:
        raise CorpusError(f"unknown corpus {corpus!r}; expected one of {CORPORA}")
    folder = Path(cache_root) / cache_key(corpus, features)
    folder.mkdir(parents=True, exist_ok=True)
    skipped: dict[int, str] = {}
    jobs: list[_Job] = []
    label_notes: dict[int, str] = {}
    for label in corpus_labels(root, corpus):
        label, note = consistent_label(label)
        if note is not None:
            label_notes[label.participant_id] = note
            log.warning("session %s: %s", label.participant_id, note)
        reason = daic_files.excluded_reason(label.participant_id) if corpus == CORPUS_DAIC_WOZ else None
        if reason is not None:
            skipped[label.participant_id] = reason
            continue
        if label.phq8_score is None and label.items is None:
            skipped[label.participant_id] = f"no PHQ-8 label in the {label.split} split file"
            continue
        session_folder = _session_folder(root, label.participant_id)
        if session_folder is None:
            skipped[label.participant_id] = "session folder not found"
            continue
        stamp = _session_stamp(session_folder)
        path = folder / f"{label.participant_id}-{stamp}.npz"
        jobs.append(_Job(root, corpus, label, features, Path(text_encoder_dir), path))
    if workers <= 1 or len(jobs) <= 1:
        results = [_build(job) for job in jobs]
    else:
        # spawn, not fork: the caller may already hold ONNX Runtime thread pools
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_build, jobs))
    sessions: list[SessionTracks] = []
    for job, (participant, error) in zip(jobs, results, strict=True):
        if error is not None:
            skipped[participant] = error
            log.warning("session %s left out: %s", participant, error)
            continue
        sessions.append(_load(job.path, job.label))
    return Corpus(kind=corpus, sessions=sessions, skipped=skipped, label_notes=label_notes)


def _session_folder(root: Path, participant_id: int) -> Path | None:
    for candidate in (root / f"{participant_id}_P", root / "data" / f"{participant_id}_P"):
        if candidate.is_dir():
            return candidate
    return None
