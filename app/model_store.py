"""The model store's layout, and nothing else: versions, folders, manifests, checksums.

Layout (as Triton's model repository): ``<store>/<model>/<version>/<files>``. This module
reads files only; it loads no model and imports no extractor, so every stage (training,
the start-up checks, the workers) can ask it where things are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from app.contract import FeatureSpec, FusionManifest

MODEL_FILE = "model.onnx"
PROVENANCE_FILE = "provenance.json"
# the face models the visual extractor runs, each at the one version it was built for
FACE_MODELS = {"face_detector": 1, "face_landmarks": 1, "iris_landmarks": 1}
FACE_GEOMETRY = ("face_geometry", 1, "canonical_face.json")
# Moonshine tiny (English) speech-to-text: encoder.onnx, decoder.onnx, tokenizer.json
SPEECH_TO_TEXT = ("speech_to_text", 1)
VOICE_ENCODER = ("voice_encoder", 1)


class ModelStoreError(RuntimeError):
    """The store cannot serve: missing version, bad checksum or a contract the extractors cannot meet."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FusionModel:
    path: Path  # the version folder
    manifest: FusionManifest

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file


def versions(store: Path, model: str) -> list[int]:
    folder = Path(store) / model
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def model_dir(store: Path, model: str, version: int) -> Path:
    return Path(store) / model / str(version)


def face_model_dirs(store: Path) -> dict[str, Path]:
    """Each face model's version folder, by model name."""
    return {name: model_dir(store, name, version) for name, version in FACE_MODELS.items()}


def face_geometry_file(store: Path) -> Path:
    name, version, file = FACE_GEOMETRY
    return model_dir(store, name, version) / file


def speech_to_text_dir(store: Path) -> Path:
    """The speech-to-text model's version folder (app.speech.recognition reads it)."""
    name, version = SPEECH_TO_TEXT
    return model_dir(store, name, version)


def voice_encoder_dir(store: Path) -> Path:
    """The voice encoder's version folder (app.speech.voices reads it)."""
    name, version = VOICE_ENCODER
    return model_dir(store, name, version)


def text_encoder_dir(store: Path, features: FeatureSpec) -> Path:
    return model_dir(store, features.text.encoder, features.text.encoder_version)


def _fusion_version(store: Path, version: int | None) -> int:
    """The version asked for, or the highest; ModelStoreError when the store lacks it."""
    available = versions(store, "fusion")
    if not available:
        raise ModelStoreError(f"no fusion model versions under {Path(store) / 'fusion'}")
    chosen = max(available) if version is None else version
    if chosen not in available:
        raise ModelStoreError(f"fusion version {chosen} not in the store (have {available})")
    return chosen


def fusion_catalogue(store: Path, served: int) -> list[dict[str, object]]:
    """Every fusion version in the store, newest first: what it was trained on and its
    validation figures, or why its manifest cannot be read (a replacement being copied in)."""
    entries: list[dict[str, object]] = []
    for version in sorted(versions(store, "fusion"), reverse=True):
        entry: dict[str, object] = {"version": version, "path": f"fusion/{version}", "served": version == served}
        try:
            provenance = FusionManifest.load(model_dir(store, "fusion", version) / "manifest.json").provenance
        except (OSError, ValueError) as exc:
            entry["error"] = f"manifest not readable ({type(exc).__name__})"
        else:
            entry.update(
                training_data=provenance.training_data,
                clinically_validated=provenance.clinically_validated,
                trained_at=provenance.trained_at,
                metrics=provenance.metrics,
            )
        entries.append(entry)
    return entries


def served_model_dir(store: Path = Path("model_store")) -> Path:
    """The folder of the fusion version served by default (the highest)."""
    return model_dir(store, "fusion", _fusion_version(store, None))


def load_fusion(store: Path, version: int | None = None) -> FusionModel:
    """The fusion version asked for (the highest when None), its manifest read and its
    weights checked against the manifest's sha256."""
    chosen = _fusion_version(store, version)
    folder = model_dir(store, "fusion", chosen)
    try:
        manifest = FusionManifest.load(folder / "manifest.json")
    except (OSError, ValueError) as exc:
        raise ModelStoreError(f"fusion/{chosen}/manifest.json is invalid: {exc}") from exc
    if manifest.version != chosen:
        raise ModelStoreError(f"fusion/{chosen}/manifest.json says version {manifest.version}")
    model = FusionModel(path=folder, manifest=manifest)
    if not model.model_path.is_file():
        raise ModelStoreError(f"fusion/{chosen}/{manifest.model_file} is missing")
    if sha256_file(model.model_path) != manifest.sha256:
        raise ModelStoreError(f"fusion/{chosen}/{manifest.model_file} does not match the manifest's sha256")
    return model
