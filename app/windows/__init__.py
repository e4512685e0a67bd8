"""Feature tracks -> fixed-size, masked model windows (pure numpy).

Windows follow the manifest: ``length_s`` long, ``overlap_s`` shared with the next.
Every modality is windowed on the interview's clock: video frames by their time, audio
frames by the time they were spoken (``AudioTrack.times_s`` when the audio was cut to the
participant's turns), utterances by their start time. Window k covers [k * hop, k * hop +
length) of that clock; inside it the participant's audio frames are packed one after the
other (the reference model was trained on the participant's speech alone, turns joined),
so the window holds what the participant said in that minute and nothing else. A
modality with nothing in window k is marked absent there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.contract import MODALITIES, FeatureSpec
from app.features import audio as audio_features
from app.features.visual import space as visual_space


@dataclass(frozen=True)
class VisualTrack:
    frames: np.ndarray  # (T, visual dim) at spec.visual.rate_hz
    valid: np.ndarray  # (T,) bool
    confidence: np.ndarray  # (T,) float


@dataclass(frozen=True)
class AudioTrack:
    frames: np.ndarray  # (T, n_mels), normalised
    speech: np.ndarray  # (T,) bool
    snr_db: float
    # (T,) seconds on the interview clock of each frame (rising); None: frame k is at k / rate
    times_s: np.ndarray | None = None

    def frame_times(self, rate_hz: float) -> np.ndarray:
        return self.times_s if self.times_s is not None else np.arange(self.frames.shape[0]) / rate_hz


@dataclass(frozen=True)
class TextTrack:
    embeddings: np.ndarray  # (N, dim)
    start_s: np.ndarray  # (N,) seconds on the session clock
    word_counts: np.ndarray  # (N,) int


@dataclass(frozen=True)
class WindowBatch:
    """Model inputs for W windows, named as the ONNX graph's inputs."""

    visual: np.ndarray
    visual_mask: np.ndarray
    audio: np.ndarray
    audio_mask: np.ndarray
    text: np.ndarray
    text_mask: np.ndarray
    modality_mask: np.ndarray
    quality: np.ndarray
    start_s: np.ndarray  # (W,)
    end_s: np.ndarray  # (W,)
    coverage: np.ndarray  # (W,) share of the window that holds any input, in (0, 1]

    @property
    def size(self) -> int:
        return int(self.start_s.shape[0])

    def inputs(self) -> dict[str, np.ndarray]:
        names = ("visual", "visual_mask", "audio", "audio_mask", "text", "text_mask", "modality_mask", "quality")
        return {name: getattr(self, name) for name in names}


def window_count(duration_s: float, features: FeatureSpec) -> int:
    """Windows needed so every second of a timeline lies in one (at least one window)."""
    spec = features.windows
    if duration_s <= spec.length_s:
        return 1
    return 1 + math.ceil((duration_s - spec.length_s) / spec.hop_s - 1e-9)


def _frame_window(values: np.ndarray, start: int, length: int) -> tuple[np.ndarray, int]:
    """values[start:start+length] zero-padded to length, and how many rows were real."""
    out = np.zeros((length, *values.shape[1:]), dtype=values.dtype)
    part = values[start : start + length]
    out[: part.shape[0]] = part
    return out, part.shape[0]


def build_windows(
    features: FeatureSpec,
    visual: VisualTrack | None = None,
    audio: AudioTrack | None = None,
    text: TextTrack | None = None,
) -> WindowBatch:
    """Cut the tracks that exist into the manifest's windows."""
    spec = features.windows
    durations = []
    if visual is not None:
        durations.append(visual.frames.shape[0] / features.visual.rate_hz)
    audio_times = audio.frame_times(features.audio.rate_hz) if audio is not None else None
    if audio is not None and audio_times is not None and audio_times.size:
        durations.append(float(audio_times[-1]) + 1.0 / features.audio.rate_hz)
    if text is not None and text.embeddings.shape[0]:
        durations.append(float(np.max(text.start_s)) + 1e-3)
    if not durations:
        raise ValueError("no modality to window")
    n = max(window_count(d, features) for d in durations)
    tv, ta, tt = (features.frames_per_window(m) for m in MODALITIES)
    nq = features.n_quality()

    batch = {
        "visual": np.zeros((n, tv, features.visual.dim), np.float32),
        "visual_mask": np.zeros((n, tv), np.float32),
        "audio": np.zeros((n, ta, features.audio.dim), np.float32),
        "audio_mask": np.zeros((n, ta), np.float32),
        "text": np.zeros((n, tt, features.text.dim), np.float32),
        "text_mask": np.zeros((n, tt), np.float32),
        "modality_mask": np.zeros((n, len(MODALITIES)), np.float32),
        "quality": np.zeros((n, len(MODALITIES), nq), np.float32),
    }
    starts = np.arange(n) * spec.hop_s
    coverage = np.zeros(n, np.float32)
    for k, start_s in enumerate(starts):
        if visual is not None:
            first = round(start_s * features.visual.rate_hz)
            frames, real = _frame_window(visual.frames, first, tv)
            valid, _ = _frame_window(visual.valid.astype(bool), first, tv)
            conf, _ = _frame_window(visual.confidence.astype(np.float32), first, tv)
            if valid.any():
                batch["visual"][k] = frames
                batch["visual_mask"][k] = valid
                batch["modality_mask"][k, 0] = 1.0
                batch["quality"][k, 0] = visual_space.window_quality(valid[:real], conf[:real])
            coverage[k] = max(coverage[k], real / tv)
        if audio is not None and audio_times is not None:
            # the frames spoken in this window; contiguous ones when times are the frame index
            first, stop = np.searchsorted(audio_times, [start_s, start_s + spec.length_s - 1e-9])
            stop = min(int(stop), int(first) + ta)
            real = int(stop - first)
            if real > 0:
                batch["audio"][k, :real] = audio.frames[first:stop]
                batch["audio_mask"][k, :real] = 1.0
                batch["modality_mask"][k, 1] = 1.0
                speech = audio.speech[first:stop]
                batch["quality"][k, 1] = audio_features.window_quality(speech, audio.snr_db, features.audio)
            coverage[k] = max(coverage[k], real / ta)
        if text is not None and text.embeddings.shape[0]:
            inside = np.flatnonzero((text.start_s >= start_s) & (text.start_s < start_s + spec.length_s))
            chosen = _spread(inside, tt)
            if chosen.size:
                batch["text"][k, : chosen.size] = text.embeddings[chosen]
                batch["text_mask"][k, : chosen.size] = 1.0
                batch["modality_mask"][k, 2] = 1.0
                batch["quality"][k, 2] = text_window_quality(text.word_counts[chosen], features)
                coverage[k] = max(coverage[k], min(1.0, chosen.size / tt))
    # a window in which no modality holds anything says nothing: it would only dilute the
    # mean (e.g. untimed text spread over a long recording whose audio is unusable)
    keep = batch["modality_mask"].any(axis=1)
    return WindowBatch(
        **{name: values[keep] for name, values in batch.items()},
        start_s=starts[keep].astype(np.float32),
        end_s=(starts[keep] + spec.length_s).astype(np.float32),
        coverage=np.maximum(coverage[keep], 1e-3),
    )


def _spread(indices: np.ndarray, limit: int) -> np.ndarray:
    """At most ``limit`` of the indices, evenly spread over the window, in order."""
    if indices.size <= limit:
        return indices
    picks = np.linspace(0, indices.size - 1, limit).round().astype(int)
    return indices[picks]


def text_window_quality(word_counts: np.ndarray, features: FeatureSpec) -> np.ndarray:
    """[utterance_fill, mean_words] of a window's utterances, each in [0, 1]."""
    spec = features.text
    if word_counts.size == 0:
        return np.zeros(2, np.float32)
    fill = min(1.0, word_counts.size / spec.max_utterances_per_window)
    words = min(1.0, float(np.mean(word_counts)) / spec.mean_words_full_scale)
    return np.array([fill, words], np.float32)
