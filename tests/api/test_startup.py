"""The server refuses to start on a model whose feature contract its extractors cannot meet."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from app.contract import FusionManifest, io_specs
from tests.conftest import FUSION_DIR, MODEL_STORE, ROOT


def test_a_contract_mismatch_stops_start_up_naming_the_field(tmp_path: Path) -> None:
    store = tmp_path / "store"
    manifest = FusionManifest.load(FUSION_DIR / "manifest.json")
    folder = store / "fusion" / str(manifest.version)
    shutil.copytree(FUSION_DIR, folder)
    (store / "text_encoder").symlink_to(MODEL_STORE / "text_encoder")
    features = manifest.features.model_copy(update={"text": manifest.features.text.model_copy(update={"dim": 512})})
    inputs, outputs = io_specs(features, manifest.semantics)
    manifest.model_copy(update={"features": features, "inputs": inputs, "outputs": outputs}).dump(
        folder / "manifest.json"
    )
    env = {**os.environ, "PHQ_MODEL_STORE": str(store), "PHQ_WORKERS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "features.text.dim" in result.stderr + result.stdout
