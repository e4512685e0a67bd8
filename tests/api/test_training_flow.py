"""Licensed-corpus replacement flow, end to end on fake corpora in the official formats:
files -> ``python -m training.train --data`` -> model store -> the real server answers with it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.contract import MODALITIES, FusionManifest
from tests.api.conftest import ANSWERS, start_server
from tests.conftest import FUSION_DIR, MODEL_STORE, ROOT
from tests.fake_daic import write_daic_woz_corpus, write_edaic_corpus
from training.data import modality_subsets

SHIPPED = int(FUSION_DIR.name)
SUPPORT_MODELS = ("face_detector", "face_geometry", "face_landmarks", "iris_landmarks", "text_encoder")


def _store(folder: Path) -> Path:
    """A model store holding the shipped synthetic fusion version and the support models."""
    store = folder / "store"
    shutil.copytree(FUSION_DIR, store / "fusion" / str(SHIPPED))
    for name in SUPPORT_MODELS:
        (store / name).symlink_to(MODEL_STORE / name)
    return store


def _folder(parent: Path, name: str) -> Path:
    (parent / name).mkdir()
    return parent / name


def _train(corpus: Path, store: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "training.train", "--data", str(corpus), "--store", str(store / "fusion")]
    command += ["--epochs", "1", "--cache", str(cache), "--workers", "1", "--threads", "1", *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _interview_files(media: dict) -> dict:
    transcript = " ".join(ANSWERS * 2).encode()
    return {
        "video": ("interview.mp4", media["mp4"].read_bytes(), "video/mp4"),
        "transcript": ("interview.txt", transcript, "text/plain"),
    }


def _check_report(folder: Path, manifest: FusionManifest, splits: dict[str, int]) -> None:
    report = json.loads((folder / "evaluation.json").read_text())
    assert "dev" in report["protocol"]["selection"]
    assert {name: r["n_participants"] for name, r in report["splits"].items()} == splits
    for split_report in report["splits"].values():
        assert set(split_report["subsets"]) == {"+".join(keep) for keep in modality_subsets()}
        for figures in split_report["subsets"].values():
            assert {"mae", "rmse", "ccc", "f1", "accuracy", "baseline"} <= set(figures)
    summary = manifest.provenance.metrics
    assert summary["report"] == "evaluation.json"
    everything = report["splits"]["dev"]["subsets"]["+".join(MODALITIES)]
    assert summary["dev"]["mae"] == pytest.approx(everything["mae"], abs=1e-4)


def test_a_daic_woz_corpus_goes_from_its_files_to_a_served_answer(tmp_path: Path, media: dict) -> None:
    corpus = write_daic_woz_corpus(tmp_path / "daic-woz")
    store = _store(tmp_path)
    run = _train(corpus, store, tmp_path / "cache")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "session 342 left out: excluded" in run.stdout
    assert "session 305 left out: session folder not found" in run.stdout

    folder = store / "fusion" / str(SHIPPED + 1)
    manifest = FusionManifest.load(folder / "manifest.json")
    assert manifest.provenance.training_data == "DAIC-WOZ"
    assert manifest.features.visual.profile == "landmarks_v1"
    assert manifest.provenance.corpus["participants"] == {"train": 3, "dev": 2, "test": 1}
    assert set(manifest.provenance.corpus["skipped"]) == {"305", "342"}
    _check_report(folder, manifest, {"dev": 2, "test": 1})

    # the stored model re-evaluated from the corpus gives the report training wrote
    again = tmp_path / "again.json"
    command = [sys.executable, "-m", "training.evaluate", "--model", str(folder), "--data", str(corpus)]
    command += ["--cache", str(tmp_path / "cache"), "--workers", "1", "--json", str(again)]
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    written = json.loads((folder / "evaluation.json").read_text())
    assert json.loads(again.read_text())["splits"] == written["splits"]

    with start_server(_folder(tmp_path, "server"), model_store=str(store)) as server:
        catalogue = httpx.get(server.url + "/models", timeout=30).json()["fusion_versions"]
        assert [(v["version"], v["served"], v["training_data"]) for v in catalogue] == [
            (SHIPPED + 1, True, "DAIC-WOZ"),
            (SHIPPED, False, "synthetic"),
        ]
        response = httpx.post(server.url + "/predict", files=_interview_files(media), timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == SHIPPED + 1
    assert body["model"]["training_data"] == "DAIC-WOZ"
    assert all(body["inputs"][m]["used"] for m in MODALITIES)
    assert "model weights are synthetic" not in " ".join(body["warnings"])


def test_an_edaic_corpus_trains_a_landmark_free_model_the_server_feeds_from_video(tmp_path: Path, media: dict) -> None:
    corpus = write_edaic_corpus(tmp_path / "e-daic")
    store = _store(tmp_path)
    run = _train(corpus, store, tmp_path / "cache")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = store / "fusion" / str(SHIPPED + 1)
    manifest = FusionManifest.load(folder / "manifest.json")
    assert manifest.provenance.training_data == "E-DAIC"
    assert manifest.features.visual.profile == "gaze_pose_v1"
    assert manifest.inputs[0].shape == ("batch", "t_visual", 8)
    _check_report(folder, manifest, {"dev": 2, "test": 1})

    # the shipped version stays servable by name next to the new one
    with start_server(_folder(tmp_path, "server"), model_store=str(store)) as server:
        response = httpx.post(server.url + "/predict", files=_interview_files(media), timeout=300)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["version"] == SHIPPED + 1
    assert body["inputs"]["visual"]["used"] and body["attention"]["modalities"]["visual"] > 0


def test_a_model_whose_visual_profile_no_extractor_produces_is_refused_at_start(tmp_path: Path) -> None:
    corpus = write_edaic_corpus(tmp_path / "e-daic")
    store = _store(tmp_path)
    run = _train(corpus, store, tmp_path / "cache", "--visual-profile", "gaze_pose_aus_v1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "the server will refuse to serve this model" in run.stdout

    refusal = pytest.raises(RuntimeError, match=r"features\.visual\.profile: 'gaze_pose_aus_v1'")
    with refusal, start_server(_folder(tmp_path, "refused"), model_store=str(store)):
        pass
    # named explicitly, the shipped version still serves from the same store
    with start_server(_folder(tmp_path, "older"), model_store=str(store), fusion_version=str(SHIPPED)) as server:
        assert httpx.get(server.url + "/models", timeout=30).json()["fusion"]["version"] == SHIPPED
