"""Fusion outputs + extraction report -> the /predict answer."""

from __future__ import annotations

import numpy as np

from app.answer.schema import (
    Attention,
    BandProbabilities,
    Inputs,
    Interval,
    ItemScore,
    ModalityReport,
    ModalityWeights,
    ModelInfo,
    Phq8,
    PredictResponse,
    SpeakersReport,
    TimelineWindow,
)
from app.contract import MODALITIES, severity_band
from app.fusion.aggregate import aggregate
from app.fusion.calibration import (
    bands_agreeing_with,
    calibrated_interval,
    calibrated_probability,
    evidence_seconds,
    subset_name,
)
from app.fusion.runner import FusionOutput
from app.model_store import FusionModel
from app.windows import WindowBatch

SYNTHETIC_WARNING = "the model was trained on synthetic data only; its output is not clinically meaningful"


def _weights(values: np.ndarray) -> ModalityWeights:
    return ModalityWeights(**{m: round(float(v), 4) for m, v in zip(MODALITIES, values, strict=True)})


def build_answer(
    request_id: str,
    model: FusionModel,
    provider: str,
    windows: WindowBatch,
    reports: dict[str, ModalityReport],
    extraction_warnings: list[str],
    output: FusionOutput,
    include_timeline: bool,
    interval_level: float,
    timings_ms: dict[str, float],
    speakers: SpeakersReport | None = None,
) -> PredictResponse:
    manifest = model.manifest
    semantics = manifest.semantics
    agg = aggregate(output.item_probs, output.modality_weights, windows.coverage, semantics, interval_level)
    total = float(np.clip(agg.total, semantics.total_min, semantics.total_max))
    warnings = list(extraction_warnings)
    evidence = evidence_seconds(windows.inputs(), manifest.features)
    (low, high), method, p_cut = agg.interval, "model", agg.p_at_or_above_cutoff
    bands = agg.band_probabilities
    calibration = manifest.calibration
    if calibration is not None:
        bounds = (semantics.total_min, semantics.total_max)
        subset = subset_name(windows.modality_mask)
        conformal = calibrated_interval(calibration, subset, evidence, interval_level, total, agg.total_sd, bounds)
        if conformal is None:
            warnings.append(f"the {interval_level:g} interval is the model's own spread: no calibration for it")
        else:
            (low, high), method = conformal, "conformal"
        p_cut = calibrated_probability(calibration, p_cut, subset)
        bands = bands_agreeing_with(bands, p_cut, semantics.cutoff)
    items = [
        ItemScore(item=name, score=round(float(score), 3), distribution=[round(float(p), 5) for p in probs])
        for name, score, probs in zip(semantics.items, agg.item_scores, agg.item_probs, strict=True)
    ]
    timeline = None
    if include_timeline:
        timeline = [
            TimelineWindow(
                start_s=float(windows.start_s[k]),
                end_s=float(windows.end_s[k]),
                total=round(float(output.item_scores[k].sum()), 3),
                coverage=round(float(windows.coverage[k]), 4),
                modalities=_weights(output.modality_weights[k].mean(axis=0)),
            )
            for k in range(windows.size)
        ]
    if manifest.provenance.training_data == "synthetic":
        warnings.append(SYNTHETIC_WARNING)
    if not manifest.provenance.clinically_validated:
        warnings.append("the model is not clinically validated")
    return PredictResponse(
        request_id=request_id,
        model=ModelInfo(
            name=manifest.name,
            version=manifest.version,
            training_data=manifest.provenance.training_data,
            clinically_validated=manifest.provenance.clinically_validated,
            provider=provider,
        ),
        phq8=Phq8(
            total=round(total, 3),
            total_rounded=int(np.clip(np.floor(total + 0.5), 0, 24)),
            severity=severity_band(total),
            band_probabilities=BandProbabilities(**{b: round(p, 4) for b, p in bands.items()}),
            interval=Interval(
                level=interval_level,
                low=round(low, 3),
                high=round(high, 3),
                method=method,
                evidence_s=round(evidence, 1),
            ),
            probability_at_or_above_cutoff=round(p_cut, 4),
            cutoff=semantics.cutoff,
            items=items,
            bin_centres=[round(c, 5) for c in semantics.bin_centres],
        ),
        attention=Attention(
            modalities=_weights(agg.overall_modality_weights),
            per_item={name: _weights(w) for name, w in zip(semantics.items, agg.modality_weights, strict=True)},
        ),
        timeline=timeline,
        inputs=Inputs(**reports, **({"speakers": speakers} if speakers is not None else {})),
        timings_ms={k: round(v, 2) for k, v in timings_ms.items()},
        warnings=warnings,
    )
