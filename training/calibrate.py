"""Calibrate an exported model's uncertainty on held-out participants (the validation split).

Every participant is answered for every modality subset and for shorter copies of its
interview (the first 10, 20, 30, 60 and 90 s, and all of it), through the exported ONNX
model and the server's own aggregation, so the calibration sees the amounts of evidence
clients send. ``app.fusion.calibration.fit_calibration`` then fits the conformal interval
quantiles and the P(total >= cut-off) curve that the manifest carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.contract import MODALITIES, Calibration, FeatureSpec, OutputSemantics
from app.fusion.aggregate import aggregate
from app.fusion.calibration import evidence_seconds, fit_calibration
from training.data import WindowSet, modality_subsets, restrict
from training.evaluate import RunFn

# the interview lengths every calibration participant is also answered at (None: all of it)
TRUNCATIONS_S: tuple[float | None, ...] = (10.0, 20.0, 30.0, 60.0, 90.0, None)
# the levels whose coverage and width the evaluation reports
REPORTED_LEVELS = (0.8, 0.9)
_TIME_AXES = {"visual": "visual_mask", "audio": "audio_mask"}


@dataclass(frozen=True)
class Answers:
    """One row per (participant, subset, length) that had input."""

    predicted: np.ndarray
    predicted_sd: np.ndarray
    p_raw: np.ndarray
    true: np.ndarray
    evidence_s: np.ndarray
    subsets: list[str]
    participant: np.ndarray
    full_length: np.ndarray  # bool: the whole interview (not a shortened copy)
    model_intervals: dict[float, np.ndarray]  # level -> (N, 2) the model's own interval

def truncate(inputs: dict[str, np.ndarray], coverage: np.ndarray, seconds: float, features: FeatureSpec):
    """One participant's windows (in time order) as if the interview had ended after ``seconds``:
    later steps and utterances removed, window coverage and utterance fill cut to match."""
    spec = features.windows
    out = {k: v.copy() for k, v in inputs.items()}
    cov = coverage.copy()
    for k in range(cov.size):
        share = float(np.clip((seconds - k * spec.hop_s) / spec.length_s, 0.0, 1.0))
        for modality, mask_name in _TIME_AXES.items():
            mask = out[mask_name]
            mask[k, round(share * mask.shape[1]) :] = 0.0
            out[modality][k, round(share * mask.shape[1]) :] = 0.0
        text_mask = out["text_mask"]
        before = text_mask[k].sum()
        keep = int(np.ceil(before * share)) if share > 0 else 0
        text_mask[k, keep:] = 0.0
        out["text"][k, keep:] = 0.0
        if before:
            out["quality"][k, 2, 0] *= keep / before
        for m, mask_name in enumerate(("visual_mask", "audio_mask", "text_mask")):
            if out[mask_name][k].sum() == 0:
                out["modality_mask"][k, m] = 0.0
                out["quality"][k, m] = 0.0
        cov[k] = min(cov[k], share) if share > 0 else 0.0
    keep_windows = out["modality_mask"].any(axis=1)
    return {k: v[keep_windows] for k, v in out.items()}, np.maximum(cov[keep_windows], 1e-3)


def answer_all(
    run: RunFn,
    windows: WindowSet,
    features: FeatureSpec,
    semantics: OutputSemantics,
    truncations: tuple[float | None, ...] = TRUNCATIONS_S,
    batch_size: int = 128,
) -> Answers:
    """Every participant x modality subset x interview length, answered as the server would."""
    names = ("predicted", "sd", "p", "true", "evidence", "subset", "participant", "full")
    rows: dict[str, list] = {k: [] for k in names}
    own: dict[float, list] = {level: [] for level in REPORTED_LEVELS}
    for owner in range(windows.totals.size):
        index = np.flatnonzero(windows.owner == owner)
        full = windows.batch(index)
        for keep in modality_subsets():
            restricted = restrict(full, keep)
            present = restricted["modality_mask"].any(axis=1)
            if not present.any():
                continue
            base = {k: v[present] for k, v in restricted.items()}
            coverage = windows.coverage[index][present]
            for seconds in truncations:
                inputs, cov = (base, coverage) if seconds is None else truncate(base, coverage, seconds, features)
                if inputs["modality_mask"].shape[0] == 0:
                    continue
                probs, weights = [], []
                for start in range(0, inputs["modality_mask"].shape[0], batch_size):
                    p, w = run({k: v[start : start + batch_size] for k, v in inputs.items()})
                    probs.append(p)
                    weights.append(w)
                agg = aggregate(np.concatenate(probs), np.concatenate(weights), cov, semantics)
                used = [m for m, on in zip(MODALITIES, inputs["modality_mask"].any(axis=0), strict=True) if on]
                rows["predicted"].append(float(np.clip(agg.total, semantics.total_min, semantics.total_max)))
                rows["sd"].append(agg.total_sd)
                rows["p"].append(agg.p_at_or_above_cutoff)
                rows["true"].append(float(windows.totals[owner]))
                rows["evidence"].append(evidence_seconds(inputs, features))
                rows["subset"].append("+".join(used))
                rows["participant"].append(owner)
                rows["full"].append(seconds is None)
                for level in REPORTED_LEVELS:
                    at = aggregate(np.concatenate(probs), np.concatenate(weights), cov, semantics, level)
                    own[level].append(at.interval)
    return Answers(
        predicted=np.asarray(rows["predicted"]),
        predicted_sd=np.asarray(rows["sd"]),
        p_raw=np.asarray(rows["p"]),
        true=np.asarray(rows["true"]),
        evidence_s=np.asarray(rows["evidence"]),
        subsets=rows["subset"],
        participant=np.asarray(rows["participant"]),
        full_length=np.asarray(rows["full"], dtype=bool),
        model_intervals={level: np.asarray(v, dtype=np.float64).reshape(-1, 2) for level, v in own.items()},
    )


def calibrate(
    run: RunFn, windows: WindowSet, features: FeatureSpec, semantics: OutputSemantics, source: str
) -> Calibration:
    answers = answer_all(run, windows, features, semantics)
    return fit_calibration(
        answers.predicted,
        answers.predicted_sd,
        answers.true,
        answers.evidence_s,
        answers.subsets,
        answers.p_raw,
        semantics.cutoff,
        participants=int(windows.totals.size),
        source=source,
        whole=answers.full_length,
    )


def expected_calibration_error(p: np.ndarray, outcome: np.ndarray, bins: int = 10) -> tuple[float, list[dict]]:
    """ECE over equal-width bins, and the reliability diagram's points (mean p, frequency, count)."""
    p, outcome = np.asarray(p, np.float64), np.asarray(outcome, np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece, points = 0.0, []
    for b in range(bins):
        mine = which == b
        if not mine.any():
            continue
        mean_p, frequency = float(p[mine].mean()), float(outcome[mine].mean())
        ece += abs(mean_p - frequency) * float(mine.mean())
        points.append({"bin": b, "mean_p": round(mean_p, 4), "frequency": round(frequency, 4), "n": int(mine.sum())})
    return ece, points


def uncertainty_report(answers: Answers, calibration: Calibration | None, cutoff: float) -> dict:
    """Per subset (whole interviews, and every length): coverage and mean width of the served
    interval at each reported level next to the model's own, and the ECE of P(total >= cutoff)."""
    from app.fusion.calibration import calibrated_interval, calibrated_probability

    report: dict = {}
    for scope, rows in (("whole interviews", answers.full_length), ("every length", np.ones_like(answers.full_length))):
        per_subset: dict = {}
        for subset in dict.fromkeys(answers.subsets):
            mine = rows & (np.asarray(answers.subsets) == subset)
            if not mine.any():
                continue
            true = answers.true[mine]
            entry: dict = {"n": int(mine.sum())}
            for level in REPORTED_LEVELS:
                own = answers.model_intervals[level][mine]
                cell = {
                    "model_coverage": round(float(np.mean((own[:, 0] <= true) & (true <= own[:, 1]))), 4),
                    "model_mean_width": round(float(np.mean(own[:, 1] - own[:, 0])), 3),
                }
                if calibration is not None:
                    served = np.array([
                        calibrated_interval(calibration, subset, e, level, t, sd, (0.0, 24.0)) or (np.nan, np.nan)
                        for e, t, sd in zip(
                            answers.evidence_s[mine], answers.predicted[mine], answers.predicted_sd[mine], strict=True
                        )
                    ])
                    cell["coverage"] = round(float(np.mean((served[:, 0] <= true) & (true <= served[:, 1]))), 4)
                    cell["mean_width"] = round(float(np.nanmean(served[:, 1] - served[:, 0])), 3)
                entry[f"{level:g}"] = cell
            outcome = true >= cutoff
            entry["ece_model"] = round(expected_calibration_error(answers.p_raw[mine], outcome)[0], 4)
            if calibration is not None:
                mapped = np.array([calibrated_probability(calibration, p, subset) for p in answers.p_raw[mine]])
                entry["ece"] = round(expected_calibration_error(mapped, outcome)[0], 4)
            per_subset[subset] = entry
        report[scope] = per_subset
    outcome = answers.true >= cutoff
    pooled = answers.p_raw
    if calibration is not None:
        rows = zip(answers.p_raw, answers.subsets, strict=True)
        pooled = np.array([calibrated_probability(calibration, p, subset) for p, subset in rows])
    ece, points = expected_calibration_error(pooled[answers.full_length], outcome[answers.full_length])
    report["cutoff_probability"] = {"ece": round(ece, 4), "reliability": points}
    return report


def reliability_png(report: dict, path) -> bool:
    """The reliability diagram of P(total >= cutoff) as a PNG (matplotlib, the train extra); False without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    points = report["cutoff_probability"]["reliability"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
    ax.plot([p["mean_p"] for p in points], [p["frequency"] for p in points], marker="o", label="served")
    ax.set_xlabel("stated P(total >= 10)")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"whole interviews, ECE {report['cutoff_probability']['ece']:.3f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
