"""Calibrated uncertainty (pure numpy): how much evidence an answer rests on, split-conformal
intervals of the total, and a recalibrated P(total >= cut-off).

The fit (``fit_calibration``, run by training on held-out participants) and its use at
serve time (``calibrated_interval``, ``calibrated_probability``) live side by side, so the
two can never disagree on what a score or a bucket is.

Why conformal: the model's own total distribution convolves the eight item distributions
as if items were independent, and its spread does not follow the amount of evidence, so its
90 % interval covered 60-78 % of held-out totals. Split-conformal needs only that the served
participants are exchangeable with the calibration ones (same population, same kinds of
input); it then covers at least the nominal level on average, per modality subset and
evidence bucket, whatever the model got wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from app.contract import CALIBRATION_METHODS, MODALITIES, SEVERITY_BANDS, Calibration, CalibrationScale, FeatureSpec

# the predicted SD never counts as less than this in the score (total points): a model sure of
# a wrong answer must still get a usable interval
MIN_SD = 0.25
# a (subset, evidence bucket) group with fewer calibration answers joins its neighbour
MIN_GROUP = 25
# a bucket with at least this many whole interviews is calibrated on them alone: served requests
# are whole interviews, and shortened copies stand in only where whole ones are too few
MIN_WHOLE = 50
# a subset gets its own P(total >= cut-off) curve when its calibration answers hold at least this
# many on each side of the cut-off; others use the pooled curve
MIN_CURVE_CLASS = 30
DEFAULT_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# seconds of evidence: under 20 s, to 45 s, to 1.5 min, to 2.5 min, longer
DEFAULT_EVIDENCE_EDGES_S = (20.0, 45.0, 90.0, 150.0)


def subset_name(modality_mask: np.ndarray) -> str:
    """The modality subset windows use, e.g. 'visual+text' (MODALITIES order)."""
    present = np.asarray(modality_mask).reshape(-1, len(MODALITIES)).any(axis=0)
    return "+".join(m for m, on in zip(MODALITIES, present, strict=True) if on)


def window_evidence_s(inputs: Mapping[str, np.ndarray], features: FeatureSpec) -> np.ndarray:
    """Seconds of evidence in each window (W,): the most any present modality holds, as face
    frames found, speech (the window's frames x its speech ratio) or utterances (each worth
    a window's share: a full window of utterances counts as a full window)."""
    present = np.asarray(inputs["modality_mask"], dtype=np.float64)
    visual = np.asarray(inputs["visual_mask"], dtype=np.float64).sum(axis=1) / features.visual.rate_hz
    speech_ratio = np.asarray(inputs["quality"], dtype=np.float64)[:, 1, 0]
    audio = np.asarray(inputs["audio_mask"], dtype=np.float64).sum(axis=1) / features.audio.rate_hz * speech_ratio
    per_utterance = features.windows.length_s / features.text.max_utterances_per_window
    text = np.asarray(inputs["text_mask"], dtype=np.float64).sum(axis=1) * per_utterance
    return (np.stack([visual, audio, text], axis=1) * present).max(axis=1)


def evidence_seconds(inputs: Mapping[str, np.ndarray], features: FeatureSpec) -> float:
    """Seconds of evidence of one participant's windows: the richest window whole, every other
    one less the share it overlaps its neighbour with (order-free, so training and serving agree)."""
    per_window = window_evidence_s(inputs, features)
    if per_window.size == 0:
        return 0.0
    spec = features.windows
    best = float(per_window.max())
    return best + (float(per_window.sum()) - best) * spec.hop_s / spec.length_s


def bucket(evidence_s: float | np.ndarray, edges: Sequence[float]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges, dtype=np.float64), evidence_s, side="right")


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) level)-th smallest score (the largest
    when that rank passes n), so a new exchangeable score falls below it with P >= level."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    rank = math.ceil((ordered.size + 1) * level)
    return float(ordered[min(rank, ordered.size) - 1])


def isotonic_curve(raw: np.ndarray, outcome: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Pool-adjacent-violators fit of P(outcome | raw probability), as knots from 0 to 1."""
    x = np.asarray(raw, np.float64)
    y = np.asarray(outcome, np.float64)
    values, where = np.unique(x, return_inverse=True)  # ties pool first: one raw value, one estimate
    blocks = [[float(v), float(y[where == k].sum()), float(np.sum(where == k))] for k, v in enumerate(values)]
    merged: list[list[float]] = []  # [raw value (weighted mean), outcomes, count]
    for block in blocks:
        merged.append([block[0] * block[2], block[1], block[2]])
        while len(merged) > 1 and merged[-2][1] / merged[-2][2] >= merged[-1][1] / merged[-1][2]:
            last = merged.pop()
            for k in range(3):
                merged[-1][k] += last[k]
    knots = [(round(sx / n, 6), round(sy / n, 6)) for sx, sy, n in merged]
    return ((0.0, knots[0][1]), *knots, (1.0, knots[-1][1]))


def monotone_quantiles(groups: list[np.ndarray], levels: Sequence[float]) -> list[list[float]]:
    """Conformal quantiles per evidence bucket (least evidence first) that never fall as evidence
    shrinks: a bucket with fewer than MIN_GROUP scores joins its neighbour, and adjacent buckets
    whose quantiles run the wrong way are pooled (their scores merged, the quantile taken anew)
    until none do, as pool-adjacent-violators does for a monotone fit."""
    blocks: list[tuple[list[int], np.ndarray]] = []  # (buckets, their pooled scores)
    for index, group in enumerate(groups):
        if blocks and (group.size < MIN_GROUP or blocks[-1][1].size < MIN_GROUP):
            members, pooled = blocks.pop()
            blocks.append(([*members, index], np.concatenate([pooled, group])))
        else:
            blocks.append(([index], group))

    def quantiles(pooled: np.ndarray) -> np.ndarray:
        if pooled.size == 0:
            return np.zeros(len(levels))
        return np.array([conformal_quantile(pooled, level) for level in levels])

    merged = True
    while merged and len(blocks) > 1:
        merged = False
        for k in range(len(blocks) - 1):
            # block k holds less evidence than block k + 1: its quantiles must not be lower
            if np.any(quantiles(blocks[k][1]) < quantiles(blocks[k + 1][1]) - 1e-12):
                (a, pa), (b, pb) = blocks[k], blocks[k + 1]
                blocks[k : k + 2] = [([*a, *b], np.concatenate([pa, pb]))]
                merged = True
                break
    table: list[list[float]] = [[] for _ in groups]
    for members, pooled in blocks:
        for index in members:
            table[index] = quantiles(pooled).tolist()
    return table


def score_scale(scale: CalibrationScale, predicted_sd: np.ndarray) -> np.ndarray:
    """What a conformal score divides the absolute error by (and the interval multiplies back)."""
    if scale == "none":
        return np.ones_like(predicted_sd)
    return np.maximum(predicted_sd, MIN_SD)


def fit_calibration(
    predicted: np.ndarray,
    predicted_sd: np.ndarray,
    true: np.ndarray,
    evidence_s: np.ndarray,
    subsets: Sequence[str],
    p_raw: np.ndarray,
    cutoff: float,
    participants: int,
    source: str,
    levels: Sequence[float] = DEFAULT_LEVELS,
    edges: Sequence[float] = DEFAULT_EVIDENCE_EDGES_S,
    whole: np.ndarray | None = None,
    scale: CalibrationScale = "none",
) -> Calibration:
    """The calibration of held-out answers: one row per (participant, subset, input length), from
    ``participants`` distinct people. ``whole`` marks the rows that are whole interviews (the
    others: shortened copies); a bucket with MIN_WHOLE of them is calibrated on them alone.
    ``scale``: what each score is divided by (``Calibration.scale``)."""
    predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    scores = np.abs(true - predicted) / score_scale(scale, np.asarray(predicted_sd, np.float64))
    buckets = bucket(np.asarray(evidence_s, np.float64), edges)
    names = np.asarray(subsets)
    quantiles: dict[str, tuple[tuple[float, ...], ...]] = {}
    counts: dict[str, tuple[int, ...]] = {}
    for subset in dict.fromkeys(subsets):
        mine = names == subset
        groups = []
        for b in range(len(edges) + 1):
            here = mine & (buckets == b)
            if whole is not None and np.count_nonzero(here & whole) >= MIN_WHOLE:
                here = here & whole
            groups.append(scores[here])
        table = monotone_quantiles(groups, levels)
        quantiles[subset] = tuple(tuple(round(q, 5) for q in row) for row in table)
        counts[subset] = tuple(int(group.size) for group in groups)
    p_raw, positive = np.asarray(p_raw, np.float64), true >= cutoff
    subset_curves = {}
    for subset in dict.fromkeys(subsets):
        mine = names == subset
        if min(np.count_nonzero(positive[mine]), np.count_nonzero(~positive[mine])) >= MIN_CURVE_CLASS:
            subset_curves[subset] = isotonic_curve(p_raw[mine], positive[mine])
    return Calibration(
        method=CALIBRATION_METHODS[scale],
        scale=scale,
        levels=tuple(levels),
        evidence_edges_s=tuple(edges),
        quantiles=quantiles,
        counts=counts,
        cutoff_curve=isotonic_curve(p_raw, positive),
        subset_cutoff_curves=subset_curves,
        participants=participants,
        source=source,
    )


def interval_quantile(calibration: Calibration, subset: str, evidence_s: float, level: float) -> float | None:
    """The score quantile for this subset, evidence and level (interpolated between stored
    levels); None when the subset was not calibrated or the level lies outside the stored ones."""
    table = calibration.quantiles.get(subset)
    levels = calibration.levels
    if table is None or not levels[0] - 1e-9 <= level <= levels[-1] + 1e-9:
        return None
    row = table[int(bucket(evidence_s, calibration.evidence_edges_s))]
    return float(np.interp(level, levels, row))


def calibrated_interval(
    calibration: Calibration,
    subset: str,
    evidence_s: float,
    level: float,
    total: float,
    total_sd: float,
    bounds: tuple[float, float],
) -> tuple[float, float] | None:
    """The conformal interval of the total, clipped to ``bounds``; None when not calibrated for it."""
    q = interval_quantile(calibration, subset, evidence_s, level)
    if q is None:
        return None
    half = q * float(score_scale(calibration.scale, np.float64(total_sd)))
    return max(bounds[0], total - half), min(bounds[1], total + half)


def calibrated_probability(calibration: Calibration, p_raw: float, subset: str | None = None) -> float:
    """P(total >= cut-off) through the subset's own curve where it has one, else the pooled one."""
    curve = calibration.subset_cutoff_curves.get(subset or "", calibration.cutoff_curve)
    raw, mapped = zip(*curve, strict=True)
    return float(np.clip(np.interp(p_raw, raw, mapped), 0.0, 1.0))


def bands_agreeing_with(bands: Mapping[str, float], p_at_or_above: float, cutoff: float) -> dict[str, float]:
    """Severity band probabilities rescaled so that the bands at or above the cut-off sum to the
    calibrated P(total >= cut-off) and the others to the rest (each side keeps its shape), so
    an answer never says P(>= 10) = 0.83 while its bands from "moderate" up add to 0.97.
    Unchanged when the cut-off is not a band boundary."""
    highest = [h for _, h in SEVERITY_BANDS]
    lowest = {band: previous + 1 for (band, _), previous in zip(SEVERITY_BANDS, [-1, *highest[:-1]], strict=True)}
    if cutoff not in lowest.values():
        return dict(bands)
    above = [band for band in bands if lowest[band] >= cutoff]
    mass_above = sum(bands[band] for band in above)
    mass_below = sum(bands.values()) - mass_above
    out = {}
    for band, p in bands.items():
        side_mass, target = (mass_above, p_at_or_above) if band in above else (mass_below, 1.0 - p_at_or_above)
        if side_mass > 0:
            out[band] = p * target / side_mass
        else:  # the model put nothing on this side: spread the calibrated mass evenly over it
            side = [b for b in bands if (b in above) == (band in above)]
            out[band] = target / len(side)
    return out
