"""The feature contract: the shipped manifest validates and names its own file."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.contract import PHQ8_ITEMS, FeatureSpec, FusionManifest, io_specs, severity_band
from app.model_store import sha256_file
from tests.conftest import FUSION_DIR


def test_shipped_manifest_validates_against_the_schema(fusion_manifest: FusionManifest) -> None:
    raw = json.loads((FUSION_DIR / "manifest.json").read_text())
    assert FusionManifest.model_validate(raw) == fusion_manifest
    assert fusion_manifest.semantics.items == PHQ8_ITEMS


def test_manifest_sha256_matches_the_model_file(fusion_manifest: FusionManifest) -> None:
    assert sha256_file(FUSION_DIR / fusion_manifest.model_file) == fusion_manifest.sha256


def test_manifest_is_honest_about_its_training_data(fusion_manifest: FusionManifest) -> None:
    assert fusion_manifest.provenance.training_data == "synthetic"
    assert fusion_manifest.provenance.clinically_validated is False
    metrics = fusion_manifest.provenance.metrics
    # held-out figures: in the manifest (versions 1-2), or summarised there with the full report beside it
    if "report" in metrics:
        report = json.loads((FUSION_DIR / metrics["report"]).read_text())
        assert report["splits"] and all(split["subsets"] for split in report["splits"].values())
        assert metrics["test"]["mae"] >= 0
    else:
        assert metrics["test"]["subsets"]


def test_a_manifest_whose_io_disagrees_with_its_features_is_rejected(fusion_manifest: FusionManifest) -> None:
    raw = fusion_manifest.model_dump(mode="json")
    raw["features"]["audio"]["n_mels"] = 64  # the graph still says 80
    with pytest.raises(ValidationError, match="inputs do not match"):
        FusionManifest.model_validate(raw)


def test_unknown_manifest_fields_are_rejected(fusion_manifest: FusionManifest) -> None:
    raw = fusion_manifest.model_dump(mode="json")
    raw["features"]["visual"]["rate"] = 30
    with pytest.raises(ValidationError):
        FusionManifest.model_validate(raw)


def test_io_specs_follow_the_feature_dimensions() -> None:
    features = FeatureSpec()
    inputs, _ = io_specs(features, FusionManifest.model_fields["semantics"].annotation())
    shapes = {spec.name: spec.shape for spec in inputs}
    assert shapes["visual"][-1] == 68 * 2 + 4 + 3 + 1
    assert shapes["audio"][-1] == features.audio.n_mels
    assert shapes["text"][-1] == features.text.dim
    assert features.frames_per_window("visual") == 600
    assert features.frames_per_window("audio") == round(60 * 16000 / 533)


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "none"),
        (4.4, "none"),
        (4.5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14.2, "moderate"),
        (15, "moderately_severe"),
        (19.4, "moderately_severe"),
        (20, "severe"),
        (24, "severe"),
    ],
)
def test_severity_bands_follow_the_phq8_cut_points(total: float, band: str) -> None:
    assert severity_band(total) == band
