"""The answer builder: a calibrated manifest answers a conformal interval and a recalibrated
P(total >= 10); an uncalibrated one says its interval is the model's own spread."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.answer.build import build_answer
from app.answer.schema import ModalityReport
from app.contract import MODALITIES, Calibration
from app.fusion.aggregate import aggregate
from app.fusion.calibration import evidence_seconds
from app.fusion.runner import FusionRunner
from app.model_store import load_fusion
from app.runtime import RuntimeConfig
from app.windows import AudioTrack, build_windows
from tests.conftest import FUSION_VERSION, MODEL_STORE

MODEL = load_fusion(MODEL_STORE, FUSION_VERSION)
FEATURES = MODEL.manifest.features
REPORTS = {m: ModalityReport(used=m == "audio", reason=None if m == "audio" else "not given") for m in MODALITIES}


def _answer(model, seconds: float, level: float = 0.9):
    rng = np.random.default_rng(0)
    n = round(seconds * FEATURES.audio.rate_hz)
    track = AudioTrack(
        frames=rng.standard_normal((n, FEATURES.audio.dim)).astype(np.float32), speech=np.ones(n, bool), snr_db=30.0
    )
    windows = build_windows(FEATURES, audio=track)
    output = FusionRunner(model, RuntimeConfig()).run(windows)
    answer = build_answer("r", model, "CPUExecutionProvider", windows, REPORTS, [], output, False, level, {})
    return answer, windows, output


def _calibrated(quantiles: tuple[float, ...], curve: tuple[tuple[float, float], ...]):
    calibration = Calibration(
        levels=(0.8, 0.9),
        evidence_edges_s=(45.0, 150.0, 390.0),
        quantiles={"audio": (quantiles, quantiles, (1.0, 1.5), (1.0, 1.5))},
        counts={"audio": (100, 100, 100, 100)},
        cutoff_curve=curve,
        participants=400,
        source="test",
    )
    return replace(MODEL, manifest=MODEL.manifest.model_copy(update={"calibration": calibration}))


def test_without_a_calibration_the_interval_is_the_models_own_and_says_so() -> None:
    uncalibrated = replace(MODEL, manifest=MODEL.manifest.model_copy(update={"calibration": None}))
    answer, windows, output = _answer(uncalibrated, 90.0)
    agg = aggregate(output.item_probs, output.modality_weights, windows.coverage, MODEL.manifest.semantics, 0.9)
    assert answer.phq8.interval.method == "model"
    assert (answer.phq8.interval.low, answer.phq8.interval.high) == pytest.approx(agg.interval)
    assert answer.phq8.interval.evidence_s == pytest.approx(evidence_seconds(windows.inputs(), FEATURES), abs=0.05)


def test_a_calibrated_model_answers_the_conformal_interval_for_its_subset_and_evidence() -> None:
    model = _calibrated((3.0, 4.0), ((0.0, 0.1), (1.0, 0.9)))
    answer, windows, output = _answer(model, 90.0)  # 90 s of speech: the second bucket
    agg = aggregate(output.item_probs, output.modality_weights, windows.coverage, MODEL.manifest.semantics, 0.9)
    phq8 = answer.phq8
    assert phq8.interval.method == "conformal"
    half = 4.0 * max(agg.total_sd, 0.25)
    assert phq8.interval.low == pytest.approx(max(0.0, agg.total - half), abs=2e-3)
    assert phq8.interval.high == pytest.approx(min(24.0, agg.total + half), abs=2e-3)
    assert phq8.probability_at_or_above_cutoff == pytest.approx(0.1 + 0.8 * agg.p_at_or_above_cutoff, abs=1e-4)
    at_80 = _answer(model, 90.0, level=0.8)[0].phq8.interval
    assert at_80.high - at_80.low < phq8.interval.high - phq8.interval.low


def test_a_level_outside_the_calibration_falls_back_with_a_warning() -> None:
    answer = _answer(_calibrated((3.0, 4.0), ((0.0, 0.0), (1.0, 1.0))), 90.0, level=0.95)[0]
    assert answer.phq8.interval.method == "model"
    assert any("no calibration" in w for w in answer.warnings)
