"""The model store: version choice, checksum and contract checks that refuse a bad model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.contract import FeatureSpec, FusionManifest, VisualSpec, io_specs
from app.features.visual.space import FULL_CHANNELS, FULL_DIM, profile_frames
from app.model_store import ModelStoreError, fusion_catalogue, load_fusion, versions
from app.startup import check_contract
from tests.conftest import FUSION_DIR, MODEL_STORE


def _add_version(store: Path, version: int) -> Path:
    """The shipped model filed as ``version`` in ``store``."""
    folder = store / "fusion" / str(version)
    shutil.copytree(FUSION_DIR, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _store_copy(tmp_path: Path, version: int = 1) -> Path:
    store = tmp_path / "store"
    _add_version(store, version)
    (store / "text_encoder").symlink_to(MODEL_STORE / "text_encoder")
    return store


def test_the_highest_version_is_served_by_default(tmp_path: Path) -> None:
    store = _store_copy(tmp_path)
    _add_version(store, 3)
    assert versions(store, "fusion") == [1, 3]
    assert load_fusion(store).manifest.version == 3
    assert load_fusion(store, 1).manifest.version == 1


def test_the_catalogue_lists_every_version_and_says_which_cannot_be_read(tmp_path: Path) -> None:
    store = _store_copy(tmp_path)
    _add_version(store, 3)
    broken = store / "fusion" / "4"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ half copied")
    catalogue = fusion_catalogue(store, served=3)
    assert [(e["version"], e["served"]) for e in catalogue] == [(4, False), (3, True), (1, False)]
    assert catalogue[0]["error"] == "manifest not readable (ValidationError)"
    assert catalogue[1]["training_data"] == "synthetic" and "error" not in catalogue[1]


def test_a_missing_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelStoreError, match="version 7 not in the store"):
        load_fusion(_store_copy(tmp_path), 7)


def test_a_model_file_that_does_not_match_its_sha256_is_refused(tmp_path: Path) -> None:
    store = _store_copy(tmp_path)
    model = store / "fusion" / "1" / FusionManifest.load(store / "fusion" / "1" / "manifest.json").model_file
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ModelStoreError, match="sha256"):
        load_fusion(store)


def test_the_shipped_contract_is_met_by_the_extractors() -> None:
    check_contract(FusionManifest.load(FUSION_DIR / "manifest.json").features, MODEL_STORE)


def test_a_contract_the_text_encoder_cannot_meet_is_refused_naming_the_field(fusion_manifest: FusionManifest) -> None:
    features = fusion_manifest.features.model_copy(
        update={"text": fusion_manifest.features.text.model_copy(update={"dim": 512})}
    )
    inputs, _ = io_specs(features, fusion_manifest.semantics)
    assert inputs[4].shape[-1] == 512  # a consistent manifest, just not one our encoder can feed
    with pytest.raises(ModelStoreError, match=r"features\.text\.dim"):
        check_contract(features, MODEL_STORE)


def test_a_contract_naming_a_missing_encoder_is_refused(fusion_manifest: FusionManifest) -> None:
    features = fusion_manifest.features.model_copy(
        update={"text": fusion_manifest.features.text.model_copy(update={"encoder_version": 9})}
    )
    with pytest.raises(ModelStoreError, match=r"features\.text\.encoder"):
        check_contract(features, MODEL_STORE)


def test_a_landmark_free_visual_profile_is_met_by_the_extractor() -> None:
    features = FeatureSpec(visual=VisualSpec(profile="gaze_pose_v1"))
    assert features.visual.dim == 8
    check_contract(features, MODEL_STORE)


def test_a_visual_profile_the_extractor_cannot_produce_is_refused_naming_the_field() -> None:
    features = FeatureSpec(visual=VisualSpec(profile="gaze_pose_aus_v1"))
    with pytest.raises(ModelStoreError, match=r"features\.visual\.profile: 'gaze_pose_aus_v1'.*AU01_r"):
        check_contract(features, MODEL_STORE)


def test_an_unknown_visual_profile_makes_the_manifest_invalid(tmp_path: Path) -> None:
    store = _store_copy(tmp_path)
    path = store / "fusion" / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["features"]["visual"]["profile"] = "openface_hog_v9"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelStoreError, match="unknown visual profile 'openface_hog_v9'"):
        load_fusion(store)


def test_the_extractors_frames_are_cut_to_the_profile_in_its_order() -> None:
    full = np.arange(3 * FULL_DIM, dtype=np.float32).reshape(3, FULL_DIM)
    spec = VisualSpec(profile="gaze_pose_v1")
    cut = profile_frames(full, spec)
    assert cut.shape == (3, 8)
    np.testing.assert_array_equal(cut[:, spec.channel_names.index("yaw")], full[:, FULL_CHANNELS.index("yaw")])
    assert profile_frames(full, VisualSpec()) is full
    with pytest.raises(ValueError, match="AU01_r"):
        profile_frames(full, VisualSpec(profile="gaze_pose_aus_v1"))
