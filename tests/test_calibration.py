"""Calibrated uncertainty: conformal intervals that cover what they say, per subset and amount of
evidence, widen with less evidence, and a P(total >= 10) whose stated probability is the frequency."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.contract import Calibration, FeatureSpec, OutputSemantics
from app.fusion.calibration import (
    DEFAULT_EVIDENCE_EDGES_S,
    MIN_CURVE_CLASS,
    bands_agreeing_with,
    calibrated_interval,
    calibrated_probability,
    conformal_quantile,
    evidence_seconds,
    fit_calibration,
    interval_quantile,
    isotonic_curve,
)
from app.windows import AudioTrack, TextTrack, VisualTrack, build_windows

FEATURES = FeatureSpec()
SUBSETS = ("visual+audio+text", "audio", "text")
BOUNDS = (0.0, 24.0)


def _population(n: int, seed: int) -> dict[str, np.ndarray]:
    """Answers whose error grows as evidence shrinks and differs by subset, while the model's own
    SD is the same for all of them: the miscalibration the conformal layer must undo."""
    rng = np.random.default_rng(seed)
    subsets = rng.choice(SUBSETS, n)
    evidence = np.exp(rng.uniform(np.log(10.0), np.log(900.0), n))
    true = rng.uniform(0.0, 24.0, n)
    spread = (1.0 + 40.0 / np.sqrt(evidence)) * np.where(subsets == "text", 1.6, 1.0)
    predicted = true + rng.normal(0.0, spread)
    return {"subsets": subsets, "evidence": evidence, "true": true, "predicted": predicted, "sd": np.full(n, 2.0)}


def _fit(data: dict[str, np.ndarray]) -> Calibration:
    return fit_calibration(
        data["predicted"],
        data["sd"],
        data["true"],
        data["evidence"],
        list(data["subsets"]),
        np.full(data["true"].size, 0.5),
        10.0,
        participants=data["true"].size,
        source="test",
    )


def _covered(calibration: Calibration, data: dict[str, np.ndarray], level: float) -> np.ndarray:
    hits = []
    for subset, evidence, total, sd, true in zip(
        data["subsets"], data["evidence"], data["predicted"], data["sd"], data["true"], strict=True
    ):
        low, high = calibrated_interval(calibration, subset, evidence, level, total, sd, (-1e9, 1e9))
        hits.append(low <= true <= high)
    return np.asarray(hits)


@pytest.mark.parametrize("level", [0.8, 0.9])
def test_a_fresh_draw_is_covered_at_the_stated_level_in_every_subset_and_bucket(level: float) -> None:
    calibration = _fit(_population(12000, seed=1))
    fresh = _population(12000, seed=2)
    covered = _covered(calibration, fresh, level)
    buckets = np.searchsorted(DEFAULT_EVIDENCE_EDGES_S, fresh["evidence"], side="right")
    for subset in SUBSETS:
        mine = fresh["subsets"] == subset
        assert abs(covered[mine].mean() - level) < 0.03, subset
        for b in range(len(DEFAULT_EVIDENCE_EDGES_S) + 1):
            group = mine & (buckets == b)
            assert abs(covered[group].mean() - level) < 0.06, (subset, b)
    # the model's own +- 1.645 SD "90 %" interval would not have been
    naive = np.abs(fresh["true"] - fresh["predicted"]) <= 1.645 * fresh["sd"]
    assert naive.mean() < 0.75


def test_intervals_widen_as_evidence_shrinks_and_are_clipped_to_the_scale() -> None:
    calibration = _fit(_population(6000, seed=3))
    widths = []
    for evidence in (10.0, 60.0, 300.0, 900.0):
        low, high = calibrated_interval(calibration, "audio", evidence, 0.9, 12.0, 2.0, BOUNDS)
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True) and widths[0] > 1.5 * widths[-1]
    low, high = calibrated_interval(calibration, "text", 10.0, 0.9, 1.0, 2.0, BOUNDS)
    assert low == 0.0 and high > 1.0


def test_less_evidence_is_never_narrower_whatever_the_predicted_sd_of_each_answer() -> None:
    """The same interview cut shorter has fewer windows, so its predicted SD (their spread) is
    often smaller: the width must follow the evidence alone, as a scale-free calibration makes it."""
    data = _population(6000, seed=7)
    data["sd"] = np.random.default_rng(8).uniform(0.5, 4.0, data["true"].size)
    free, scaled = _fit(data), fit_calibration(
        data["predicted"], data["sd"], data["true"], data["evidence"], list(data["subsets"]),
        np.full(data["true"].size, 0.5), 10.0, participants=data["true"].size, source="test", scale="predicted_sd",
    )  # fmt: skip
    assert free.scale == "none" and "absolute error" in free.method and scaled.scale == "predicted_sd"
    short_sd, long_sd = 0.5, 4.0  # a short input answered more surely than its whole
    unbounded = (-1e9, 1e9)

    def widths(calibration: Calibration) -> tuple[float, float]:
        short = calibrated_interval(calibration, "audio", 10.0, 0.9, 12.0, short_sd, unbounded)
        whole = calibrated_interval(calibration, "audio", 300.0, 0.9, 12.0, long_sd, unbounded)
        return short[1] - short[0], whole[1] - whole[0]

    short, whole = widths(free)
    assert short > whole
    # scaled by the SD, the same two answers come out the wrong way round
    short, whole = widths(scaled)
    assert short < whole
    # a manifest written before the field existed keeps its SD scaling
    stored = json.loads(scaled.model_dump_json())
    del stored["scale"]
    assert Calibration.model_validate(stored).scale == "predicted_sd"


def test_an_uncalibrated_subset_or_level_gives_none() -> None:
    calibration = _fit(_population(600, seed=4))
    assert interval_quantile(calibration, "visual", 100.0, 0.9) is None
    assert interval_quantile(calibration, "audio", 100.0, 0.99) is None
    assert interval_quantile(calibration, "audio", 100.0, 0.85) is not None  # between stored levels


def test_the_conformal_quantile_is_the_finite_sample_one() -> None:
    scores = np.arange(1.0, 20.0)  # n = 19: level 0.9 -> rank ceil(20 * 0.9) = 18
    assert conformal_quantile(scores, 0.9) == 18.0
    assert conformal_quantile(scores, 0.99) == 19.0


def test_isotonic_recalibration_turns_an_overconfident_probability_into_a_frequency() -> None:
    rng = np.random.default_rng(5)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        truth = rng.uniform(0.0, 1.0, n)
        outcome = rng.uniform(0.0, 1.0, n) < truth
        logit = np.log(truth / (1 - truth))
        return 1.0 / (1.0 + np.exp(-3.0 * logit)), outcome  # far too sure of itself

    def ece(p: np.ndarray, outcome: np.ndarray) -> float:
        bins = np.minimum((p * 10).astype(int), 9)
        return float(sum(abs(p[bins == b].mean() - outcome[bins == b].mean()) * np.mean(bins == b)
                         for b in range(10) if np.any(bins == b)))

    raw, outcome = draw(5000)
    curve = isotonic_curve(raw, outcome)
    calibration = _fit(_population(100, seed=6)).model_copy(update={"cutoff_curve": curve})
    fresh, fresh_outcome = draw(5000)
    mapped = np.array([calibrated_probability(calibration, p) for p in fresh])
    assert ece(fresh, fresh_outcome) > 0.1
    assert ece(mapped, fresh_outcome) < 0.03
    assert np.all(np.diff(mapped[np.argsort(fresh)]) >= -1e-12)  # monotone


def _ece(p: np.ndarray, outcome: np.ndarray) -> float:
    bins = np.minimum((p * 10).astype(int), 9)
    return float(sum(abs(p[bins == b].mean() - outcome[bins == b].mean()) * np.mean(bins == b)
                     for b in range(10) if np.any(bins == b)))


def test_each_subset_gets_its_own_probability_curve_where_it_has_the_people_for_one() -> None:
    # audio is too sure of itself, text too timid: one pooled curve cannot undo both
    rng = np.random.default_rng(11)

    def draw(n: int) -> dict[str, np.ndarray]:
        data = _population(n, seed=int(rng.integers(1 << 30)))
        truth = rng.uniform(0.02, 0.98, n)
        data["true"] = np.where(rng.uniform(0.0, 1.0, n) < truth, 15.0, 3.0)
        logit = np.log(truth / (1 - truth)) * np.where(data["subsets"] == "audio", 3.0, 0.3)
        data["p"] = 1.0 / (1.0 + np.exp(-logit))
        return data

    calib, fresh = draw(6000), draw(6000)
    calibration = fit_calibration(
        calib["predicted"], calib["sd"], calib["true"], calib["evidence"], list(calib["subsets"]), calib["p"],
        10.0, participants=6000, source="test",
    )
    assert set(calibration.subset_cutoff_curves) == set(SUBSETS)
    for subset in ("audio", "text"):
        mine = fresh["subsets"] == subset
        outcome = fresh["true"][mine] >= 10.0
        pooled = np.array([calibrated_probability(calibration, p) for p in fresh["p"][mine]])
        own = np.array([calibrated_probability(calibration, p, subset) for p in fresh["p"][mine]])
        assert _ece(pooled, outcome) > 0.06, subset
        assert _ece(own, outcome) < 0.4 * _ece(pooled, outcome), subset
        assert _ece(own, outcome) < 0.05, subset


def test_a_subset_with_too_few_people_on_one_side_uses_the_pooled_curve() -> None:
    data = _population(600, seed=12)
    rare = data["subsets"] == "text"
    data["true"] = np.where(rare, 2.0, data["true"])  # no text participant at or above 10
    calibration = fit_calibration(
        data["predicted"], data["sd"], data["true"], data["evidence"], list(data["subsets"]),
        np.linspace(0.0, 1.0, 600), 10.0, participants=600, source="test",
    )
    assert "text" not in calibration.subset_cutoff_curves and MIN_CURVE_CLASS > 0
    assert calibrated_probability(calibration, 0.7, "text") == calibrated_probability(calibration, 0.7)


def test_band_probabilities_are_rescaled_to_agree_with_the_calibrated_cutoff_probability() -> None:
    bands = {"none": 0.1, "mild": 0.3, "moderate": 0.4, "moderately_severe": 0.15, "severe": 0.05}
    agreed = bands_agreeing_with(bands, 0.2, 10.0)
    assert sum(agreed.values()) == pytest.approx(1.0)
    assert agreed["moderate"] + agreed["moderately_severe"] + agreed["severe"] == pytest.approx(0.2)
    assert agreed["moderate"] / agreed["severe"] == pytest.approx(8.0)  # each side keeps its shape
    assert agreed["mild"] / agreed["none"] == pytest.approx(3.0)
    # nothing above the cut-off in the model's own distribution: the calibrated mass is spread there
    spread = bands_agreeing_with({**bands, "moderate": 0.0, "moderately_severe": 0.0, "severe": 0.0}, 0.3, 10.0)
    assert spread["severe"] == pytest.approx(0.1) and spread["mild"] + spread["none"] == pytest.approx(0.7)
    assert bands_agreeing_with(bands, 0.2, 12.0) == bands  # not a band boundary: left alone


def test_evidence_counts_seconds_of_speech_once_across_overlapping_windows() -> None:
    def speech_windows(seconds: float):
        n = round(seconds * FEATURES.audio.rate_hz)
        track = AudioTrack(frames=np.zeros((n, FEATURES.audio.dim), np.float32), speech=np.ones(n, bool), snr_db=30.0)
        return build_windows(FEATURES, audio=track)

    for seconds in (10.0, 60.0, 300.0):
        windows = speech_windows(seconds)
        assert evidence_seconds(windows.inputs(), FEATURES) == pytest.approx(seconds, rel=0.03)


def test_evidence_is_what_the_richest_modality_holds() -> None:
    rate = FEATURES.visual.rate_hz
    n = round(40 * rate)
    face = VisualTrack(
        frames=np.zeros((n, FEATURES.visual.dim), np.float32), valid=np.arange(n) % 2 == 0, confidence=np.ones(n)
    )
    text = TextTrack(embeddings=np.zeros((3, FEATURES.text.dim), np.float32), start_s=np.array([0.0, 5.0, 9.0]),
                     word_counts=np.array([12, 15, 9]))
    visual_only = build_windows(FEATURES, visual=face)
    assert evidence_seconds(visual_only.inputs(), FEATURES) == pytest.approx(20.0, abs=0.2)  # half the frames
    both = build_windows(FEATURES, visual=face, text=text)
    assert evidence_seconds(both.inputs(), FEATURES) == pytest.approx(20.0, abs=0.2)  # 3 utterances: 18 s


def test_a_malformed_calibration_is_refused_by_the_manifest_schema() -> None:
    good = _fit(_population(300, seed=7)).model_dump()
    with pytest.raises(ValueError, match="levels"):
        Calibration.model_validate({**good, "levels": [0.9, 0.8, 0.5, 0.6, 0.7, 0.95]})
    with pytest.raises(ValueError, match="buckets"):
        Calibration.model_validate({**good, "quantiles": {"audio": [[1.0] * 6]}})
    with pytest.raises(ValueError, match="cutoff_curve"):
        Calibration.model_validate({**good, "cutoff_curve": [[0.0, 0.5], [1.0, 0.2]]})
    with pytest.raises(ValueError, match=r"subset_cutoff_curves\[audio\]"):
        Calibration.model_validate({**good, "subset_cutoff_curves": {"audio": [[0.0, 0.5], [1.0, 0.2]]}})
    assert OutputSemantics().cutoff == 10.0


def test_a_noisy_long_bucket_is_pooled_with_its_neighbour_not_spread_to_every_shorter_one() -> None:
    from app.fusion.calibration import monotone_quantiles

    rng = np.random.default_rng(8)
    spreads = (3.0, 2.0, 1.5, 1.4, 2.2)  # the longest bucket, 40 answers, happens to run wide
    groups = [np.abs(rng.normal(0.0, s, n)) for s, n in zip(spreads, (300, 500, 400, 300, 40), strict=True)]
    table = np.array(monotone_quantiles(groups, (0.9,)))[:, 0]
    assert np.all(np.diff(table) <= 1e-12)  # never narrower for less evidence
    assert table[0] > 1.5 * table[-1]  # the short buckets keep their own, wider quantiles
    own = [conformal_quantile(g, 0.9) for g in groups]
    assert table[1] == pytest.approx(own[1]) and table[0] == pytest.approx(own[0])


def test_where_whole_interviews_are_enough_they_alone_calibrate_their_bucket() -> None:
    # shortened copies that err less than whole interviews of the same evidence must not narrow
    # the whole interviews' interval (served requests are whole interviews)
    rng = np.random.default_rng(9)
    n = 4000
    whole = rng.random(n) < 0.5
    evidence = np.full(n, 60.0)
    true = rng.uniform(0, 24, n)
    predicted = true + rng.normal(0.0, np.where(whole, 3.0, 1.0))
    args = (predicted, np.full(n, 1.0), true, evidence, ["audio"] * n, np.full(n, 0.5), 10.0)
    fitted = fit_calibration(*args, participants=n, source="test", whole=whole)
    pooled = fit_calibration(*args, participants=n, source="test")
    scores = np.abs(true - predicted)[whole]
    q_whole = interval_quantile(fitted, "audio", 60.0, 0.9)
    assert np.mean(scores <= q_whole) == pytest.approx(0.9, abs=0.02)
    assert np.mean(scores <= interval_quantile(pooled, "audio", 60.0, 0.9)) < 0.85


def test_recalibration_refuses_extra_people_drawn_with_the_training_seed(tmp_path) -> None:
    """Extra calibration people must be fresh: the training seed draws the training people again
    (refused before any corpus is built, so the model folder is untouched)."""
    import shutil

    from tests.conftest import MODEL_STORE
    from training.recalibrate import recalibrate

    model = shutil.copytree(MODEL_STORE / "fusion" / "4", tmp_path / "4")
    before = (model / "manifest.json").read_bytes()
    seed = json.loads(before)["provenance"]["seed"]
    for extra_seeds in ((), (seed,), (4242, seed), (4242, 4242)):
        with pytest.raises(SystemExit, match="extra-seed"):
            recalibrate(model, 100, tmp_path / "cache", 1, extra=10, extra_seeds=extra_seeds)
    assert (model / "manifest.json").read_bytes() == before and not (tmp_path / "cache").exists()
