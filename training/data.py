"""Corpus sessions -> stacked model windows, plus the metrics both train and evaluate use."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np

from app.contract import MODALITIES, FeatureSpec
from app.features.visual.space import profile_frames
from app.windows import AudioTrack, TextTrack, VisualTrack, build_windows
from training.synth.corpus import load_session

# the large inputs stay float16 in memory; the model gets float32
_HALF = ("visual", "audio", "text")


@dataclass
class WindowSet:
    inputs: dict[str, np.ndarray]  # stacked, graph input names
    coverage: np.ndarray  # (N,)
    owner: np.ndarray  # (N,) participant row in ``items``
    items: np.ndarray  # (P, 8) float32 item scores; NaN rows where only the total is known
    totals: np.ndarray  # (P,) float64 PHQ-8 totals

    @property
    def size(self) -> int:
        return int(self.coverage.shape[0])

    @property
    def has_items(self) -> np.ndarray:
        return np.isfinite(self.items).all(axis=1)

    def batch(self, index: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[index].astype(np.float32) for k, v in self.inputs.items()}


@dataclass(frozen=True)
class LabelledTracks:
    """One participant's feature tracks and PHQ-8 label, from any corpus."""

    visual: VisualTrack | None
    audio: AudioTrack | None
    text: TextTrack | None
    items: np.ndarray | None  # (8,), None when only the total is known
    total: float
    participant: int | None = None


def stack_windows(sessions: Iterable[LabelledTracks], features: FeatureSpec) -> WindowSet:
    """Cut every participant's tracks into the manifest's windows and stack them."""
    parts: dict[str, list[np.ndarray]] = {}
    coverage, owner, items, totals = [], [], [], []
    for row, session in enumerate(sessions):
        if session.visual is None and session.audio is None and session.text is None:
            raise ValueError(f"participant {session.participant}: no modality to window")
        windows = build_windows(features, visual=session.visual, audio=session.audio, text=session.text)
        for name, value in windows.inputs().items():
            parts.setdefault(name, []).append(value.astype(np.float16) if name in _HALF else value)
        coverage.append(windows.coverage)
        owner.append(np.full(windows.size, row))
        items.append(np.full(8, np.nan, np.float32) if session.items is None else np.asarray(session.items, np.float32))
        totals.append(float(session.total))
    if not coverage:
        raise ValueError("no participants to window")
    return WindowSet(
        inputs={k: np.concatenate(v) for k, v in parts.items()},
        coverage=np.concatenate(coverage),
        owner=np.concatenate(owner),
        items=np.stack(items),
        totals=np.asarray(totals, dtype=np.float64),
    )


def read_tracks(arrays: dict[str, np.ndarray]) -> tuple[VisualTrack | None, AudioTrack | None, TextTrack | None]:
    """A cached session's tracks (the synthetic and the licensed corpora's caches share the
    array names); a modality whose arrays are absent is None."""
    visual = audio = text = None
    if "visual_frames" in arrays:
        visual = VisualTrack(
            frames=arrays["visual_frames"].astype(np.float32),
            valid=arrays["visual_valid"],
            confidence=arrays["visual_confidence"].astype(np.float32),
        )
    if "audio_frames" in arrays:
        audio = AudioTrack(
            frames=arrays["audio_frames"].astype(np.float32),
            speech=arrays["audio_speech"],
            snr_db=float(arrays["audio_snr_db"]),
        )
    if "text_embeddings" in arrays:
        text = TextTrack(
            embeddings=arrays["text_embeddings"].astype(np.float32),
            start_s=arrays["text_start_s"],
            word_counts=arrays["text_word_counts"],
        )
    return visual, audio, text


def load_windows(paths: list[Path], features: FeatureSpec) -> WindowSet:
    """Windows of cached synthetic sessions (training.synth.corpus): full-layout visual
    frames, cut here to the spec's profile."""

    def sessions() -> Iterator[LabelledTracks]:
        for path in paths:
            session = load_session(path)
            visual, audio, text = read_tracks(session)
            visual = replace(visual, frames=profile_frames(visual.frames, features.visual))
            items = np.asarray(session["items"], np.float32)
            yield LabelledTracks(visual, audio, text, items, float(items.sum()))

    return stack_windows(sessions(), features)


def participants(windows: WindowSet, start: int, stop: int) -> WindowSet:
    """The windows of participants ``start`` to ``stop - 1`` only, renumbered from 0."""
    keep = (windows.owner >= start) & (windows.owner < stop)
    return WindowSet(
        inputs={k: v[keep] for k, v in windows.inputs.items()},
        coverage=windows.coverage[keep],
        owner=windows.owner[keep] - start,
        items=windows.items[start:stop],
        totals=windows.totals[start:stop],
    )


def modality_subsets() -> list[tuple[str, ...]]:
    """Every non-empty subset of the modalities, largest first."""
    subsets: list[tuple[str, ...]] = []
    for size in range(len(MODALITIES), 0, -1):
        subsets += list(combinations(MODALITIES, size))
    return subsets


def restrict(inputs: dict[str, np.ndarray], keep: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Inputs with the modalities outside ``keep`` removed, as the server sends an absent one."""
    out = dict(inputs)
    mask = out["modality_mask"].copy()
    quality = out["quality"].copy()
    for k, name in enumerate(MODALITIES):
        if name not in keep:
            out[name] = np.zeros_like(out[name])
            out[name + "_mask"] = np.zeros_like(out[name + "_mask"])
            mask[:, k] = 0.0
            quality[:, k] = 0.0
    out["modality_mask"] = mask
    out["quality"] = quality
    return out


def regression_metrics(pred: np.ndarray, true: np.ndarray, cutoff: float) -> dict[str, float]:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    err = pred - true
    cov = np.mean((pred - pred.mean()) * (true - true.mean()))
    ccc = 2 * cov / (pred.var() + true.var() + (pred.mean() - true.mean()) ** 2 + 1e-12)
    p, t = pred >= cutoff, true >= cutoff
    tp = float(np.sum(p & t))
    precision = tp / max(float(p.sum()), 1.0)
    recall = tp / max(float(t.sum()), 1.0)
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "ccc": float(ccc),
        "f1": float(f1),
        "accuracy": float(np.mean(p == t)),
    }
