"""The shipped model on held-out synthetic participants, built fresh through the
serve-time extractors with a seed the training never used."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.contract import MODALITIES, FusionManifest
from tests.conftest import FUSION_DIR, TEXT_ENCODER_DIR
from training.data import WindowSet, load_windows
from training.evaluate import evaluate, onnx_runner, predict_participants
from training.synth.corpus import build_corpus
from training.synth.participants import Degradation, draw_participants

HELD_OUT_SEED = 90210
N_PARTICIPANTS = 60

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def run(fusion_manifest: FusionManifest):
    return onnx_runner(FUSION_DIR / fusion_manifest.model_file)


def _windows(people, manifest: FusionManifest, cache) -> WindowSet:
    paths = build_corpus(people, HELD_OUT_SEED, manifest.features, TEXT_ENCODER_DIR, cache, workers=2)
    return load_windows(paths, manifest.features)


@pytest.fixture(scope="module")
def clean_people():
    people = draw_participants(N_PARTICIPANTS, seed=HELD_OUT_SEED, degradation_rate=0.0, first_pid=2_000_000)
    return [replace(p, degradation=Degradation()) for p in people]


@pytest.fixture(scope="module")
def report(fusion_manifest: FusionManifest, clean_people, cache, run) -> dict:
    windows = _windows(clean_people, fusion_manifest, cache)
    train_mean = float(fusion_manifest.provenance.metrics["train_mean_total"])
    return evaluate(run, windows, fusion_manifest.semantics, train_mean)


def test_all_modalities_beat_the_mean_predictor_by_30_percent_in_mae(report: dict) -> None:
    gain = report["subsets"]["visual+audio+text"]["mae_gain_vs_baseline"]
    assert gain >= 0.30, f"MAE only {gain:.0%} better than the mean predictor"


@pytest.mark.parametrize("modality", MODALITIES)
def test_each_single_modality_beats_the_mean_predictor(report: dict, modality: str) -> None:
    result = report["subsets"][modality]
    assert result["abstained"] == 0
    assert result["mae"] < result["baseline"]["mae"], (
        f"{modality}: {result['mae']:.2f} vs {result['baseline']['mae']:.2f}"
    )


def test_corrupting_the_face_track_with_noise_lowers_the_visual_weight(
    fusion_manifest: FusionManifest, clean_people, cache, run
) -> None:
    """The same 30 people, once clean and once with 8x landmark localisation noise in the
    face track: the visual branch's mean attention weight falls, for most of them."""
    damage = Degradation(landmark_jitter=8.0)
    people = clean_people[:30]
    k = MODALITIES.index("visual")
    weights = []
    for group in (people, [replace(p, degradation=damage) for p in people]):
        windows = _windows(group, fusion_manifest, cache)
        _, w, _ = predict_participants(run, windows, MODALITIES, fusion_manifest.semantics, fallback=0.0)
        weights.append(w[:, k])
    clean_w, noisy_w = weights
    assert noisy_w.mean() < clean_w.mean(), f"visual weight {clean_w.mean():.3f} -> {noisy_w.mean():.3f}"
    assert np.mean(noisy_w < clean_w) >= 0.75
