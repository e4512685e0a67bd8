"""Window outputs -> participant answer: weighting, total distribution, interval."""

from __future__ import annotations

import numpy as np
import pytest

from app.contract import OutputSemantics
from app.fusion.aggregate import aggregate, total_distribution

SEM = OutputSemantics()
CENTRES = np.asarray(SEM.bin_centres)


def _peaked(score: float) -> np.ndarray:
    probs = np.exp(-0.5 * ((CENTRES - score) / 0.05) ** 2)
    return probs / probs.sum()


def test_certain_items_give_their_sum_and_a_tight_interval() -> None:
    items = np.stack([_peaked(s) for s in (3, 2, 1, 0, 3, 2, 1, 0)])[None]
    weights = np.full((1, 8, 3), 1 / 3)
    agg = aggregate(items, weights, np.ones(1), SEM)
    assert agg.total == pytest.approx(12.0, abs=0.05)
    assert agg.interval[0] <= 12.0 <= agg.interval[1]
    assert agg.interval[1] - agg.interval[0] <= 0.5
    assert agg.p_at_or_above_cutoff == pytest.approx(1.0, abs=1e-6)


def test_windows_are_weighted_by_coverage() -> None:
    low = np.stack([_peaked(0)] * 8)
    high = np.stack([_peaked(3)] * 8)
    weights = np.full((2, 8, 3), 1 / 3)
    agg = aggregate(np.stack([low, high]), weights, np.array([0.75, 0.25]), SEM)
    assert agg.total == pytest.approx(0.25 * 24, abs=0.1)


def test_uncertain_items_widen_the_interval_and_split_the_cutoff_probability() -> None:
    flat = np.full((1, 8, SEM.n_bins), 1.0 / SEM.n_bins)
    agg = aggregate(flat, np.full((1, 8, 3), 1 / 3), np.ones(1), SEM)
    assert agg.total == pytest.approx(12.0, abs=1e-6)
    assert agg.interval[1] - agg.interval[0] > 6
    assert 0.5 < agg.p_at_or_above_cutoff < 0.95


def test_total_distribution_is_a_distribution_on_the_total_range() -> None:
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(SEM.n_bins), size=8)
    grid, dist = total_distribution(probs, SEM)
    assert dist.sum() == pytest.approx(1.0)
    assert grid[0] == 0.0 and grid[-1] == pytest.approx(24.0)
    assert float(grid @ dist) == pytest.approx(float((probs @ CENTRES).sum()), abs=0.05)


def test_modality_weights_average_over_windows_and_items() -> None:
    weights = np.zeros((2, 8, 3))
    weights[0, :, 0] = 1.0
    weights[1, :, 2] = 1.0
    agg = aggregate(np.full((2, 8, SEM.n_bins), 1 / SEM.n_bins), weights, np.ones(2), SEM)
    np.testing.assert_allclose(agg.overall_modality_weights, [0.5, 0.0, 0.5])


def test_a_certain_total_puts_its_whole_band_probability_on_its_band() -> None:
    items = np.stack([_peaked(s) for s in (3, 2, 1, 0, 3, 2, 1, 0)])[None]  # total 12: moderate
    agg = aggregate(items, np.full((1, 8, 3), 1 / 3), np.ones(1), SEM)
    assert agg.band_probabilities["moderate"] == pytest.approx(1.0, abs=1e-6)
    assert list(agg.band_probabilities) == ["none", "mild", "moderate", "moderately_severe", "severe"]


def test_a_total_on_a_band_boundary_splits_the_band_probability_and_always_sums_to_1() -> None:
    # items at 0.5625 each: total 4.5 sits where "none" (rounded <= 4) meets "mild"
    rng = np.random.default_rng(3)
    spread = np.exp(-0.5 * ((CENTRES - 0.5625) / 0.3) ** 2)
    items = np.stack([spread / spread.sum()] * 8)[None]
    agg = aggregate(items, np.full((1, 8, 3), 1 / 3), np.ones(1), SEM)
    assert 0.2 < agg.band_probabilities["none"] < 0.8 and 0.2 < agg.band_probabilities["mild"] < 0.8
    for _ in range(20):
        random = rng.dirichlet(np.ones(SEM.n_bins), size=(2, 8))
        bands = aggregate(random, np.full((2, 8, 3), 1 / 3), np.array([1.0, 0.5]), SEM).band_probabilities
        assert sum(bands.values()) == pytest.approx(1.0, abs=1e-9)
