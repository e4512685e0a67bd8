"""The model store: version choice, checksum and contract checks that refuse a bad model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from app.contract import FusionManifest, io_specs
from app.fusion.store import ModelStoreError, check_contract, fusion_catalogue, load_fusion, versions
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
