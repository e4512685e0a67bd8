"""Window outputs -> one participant-level answer (pure numpy).

Windows are combined by the coverage-weighted mean of their item distributions (a
40-second tail window counts less than a full one). The total's distribution is the
convolution of the eight item distributions (items treated as independent given the
windows), which gives the interval, P(total >= cut-off) and the probability of each
severity band (the band of the rounded total, as ``severity_band`` names it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.contract import SEVERITY_BANDS, OutputSemantics

# resolution of the total's distribution, in score units
TOTAL_STEP = 0.125


@dataclass(frozen=True)
class Aggregate:
    item_probs: np.ndarray  # (8, K)
    item_scores: np.ndarray  # (8,)
    total: float
    total_sd: float  # SD of the total's distribution
    interval: tuple[float, float]
    p_at_or_above_cutoff: float
    band_probabilities: dict[str, float]  # severity band -> P(the rounded total falls in it); sums to 1
    modality_weights: np.ndarray  # (8, M) per item
    overall_modality_weights: np.ndarray  # (M,)


def window_weights(coverage: np.ndarray) -> np.ndarray:
    w = np.asarray(coverage, dtype=np.float64)
    return w / w.sum()


def total_distribution(item_probs: np.ndarray, semantics: OutputSemantics) -> tuple[np.ndarray, np.ndarray]:
    """Grid of totals and their probabilities, from independent item distributions."""
    centres = np.asarray(semantics.bin_centres)
    steps = np.rint(centres / TOTAL_STEP).astype(int)
    dist = np.ones(1)
    for probs in item_probs:
        item = np.zeros(steps.max() + 1)
        np.add.at(item, steps, probs)
        dist = np.convolve(dist, item)
    grid = np.arange(dist.size) * TOTAL_STEP
    return grid, dist / dist.sum()


def aggregate(
    item_probs: np.ndarray,
    modality_weights: np.ndarray,
    coverage: np.ndarray,
    semantics: OutputSemantics,
    interval: float = 0.9,
) -> Aggregate:
    """item_probs (W, 8, K), modality_weights (W, 8, M), coverage (W,) -> Aggregate."""
    w = window_weights(coverage)
    probs = np.einsum("w,wik->ik", w, item_probs.astype(np.float64))
    probs /= probs.sum(axis=-1, keepdims=True)
    scores = probs @ np.asarray(semantics.bin_centres)
    per_item = np.einsum("w,wim->im", w, modality_weights.astype(np.float64))
    grid, dist = total_distribution(probs, semantics)
    cdf = np.cumsum(dist)
    tail = (1.0 - interval) / 2.0
    low = float(grid[np.searchsorted(cdf, tail)])
    high = float(grid[min(np.searchsorted(cdf, 1.0 - tail), grid.size - 1)])
    p_cut = float(dist[grid >= semantics.cutoff - 1e-9].sum())
    rounded = np.floor(grid + 0.5)
    bands, lowest = {}, -np.inf
    for band, highest in SEVERITY_BANDS:
        bands[band] = float(dist[(rounded > lowest) & (rounded <= highest)].sum())
        lowest = highest
    return Aggregate(
        item_probs=probs,
        item_scores=scores,
        total=float(scores.sum()),
        total_sd=float(np.sqrt(np.sum(dist * (grid - np.sum(dist * grid)) ** 2))),
        interval=(low, high),
        p_at_or_above_cutoff=p_cut,
        band_probabilities=bands,
        modality_weights=per_item,
        overall_modality_weights=per_item.mean(axis=0),
    )
