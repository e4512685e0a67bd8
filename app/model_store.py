"""The model store: find the fusion version to serve, verify it, check its contract.

Layout (as Triton's model repository): ``<store>/<model>/<version>/<files>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.contract import FeatureSpec, FusionManifest, sha256_file


class ModelStoreError(RuntimeError):
    """The store cannot serve: missing version, bad checksum or a contract the extractors cannot meet."""


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
            provenance = FusionManifest.load(Path(store) / "fusion" / str(version) / "manifest.json").provenance
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
    return Path(store) / "fusion" / str(_fusion_version(store, None))


def load_fusion(store: Path, version: int | None = None) -> FusionModel:
    chosen = _fusion_version(store, version)
    folder = Path(store) / "fusion" / str(chosen)
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


def text_encoder_dir(store: Path, features: FeatureSpec) -> Path:
    return Path(store) / features.text.encoder / str(features.text.encoder_version)


def check_contract(features: FeatureSpec, store: Path) -> None:
    """Run the serve-time extractors once on generated input and compare with the manifest.

    Raises ModelStoreError naming the manifest field the extractors cannot meet.
    """
    from app.features.audio import audio_features
    from app.features.text import TextEncoder

    # audio: one second of a tone through the real log-mel path
    t = np.arange(features.audio.sample_rate, dtype=np.float32) / features.audio.sample_rate
    produced = audio_features(0.1 * np.sin(2 * np.pi * 220.0 * t), features.audio)
    expected_frames = 1 + features.audio.sample_rate // features.audio.hop_length
    if produced.frames.shape != (expected_frames, features.audio.n_mels):
        raise ModelStoreError(
            f"features.audio.n_mels: extractor produced {produced.frames.shape[1]} bands, manifest says "
            f"{features.audio.n_mels}"
        )
    # text: the encoder the manifest names must exist and embed to its dimension
    folder = text_encoder_dir(store, features)
    if not folder.is_dir():
        raise ModelStoreError(
            f"features.text.encoder/encoder_version: {features.text.encoder}/{features.text.encoder_version} "
            "is not in the model store"
        )
    encoder = TextEncoder(folder, max_tokens=features.text.max_tokens)
    encoder.verify()
    dim = encoder.embed(["contract check"]).shape[1]
    if dim != features.text.dim:
        raise ModelStoreError(f"features.text.dim: the encoder gives {dim}, manifest says {features.text.dim}")
    # visual: the extractor must make every channel of the model's profile; the face models must load
    from app.features import visual_space

    if not visual_space.producible(features.visual):
        missing = [c for c in features.visual.channel_names if c not in visual_space.FULL_CHANNELS]
        raise ModelStoreError(
            f"features.visual.profile: {features.visual.profile!r} needs channels this server's extractor "
            f"cannot produce ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); it produces the "
            f"profiles {', '.join(visual_space.producible_profiles())}"
        )
    from app.features.visual import FaceModelError, FaceModels

    try:
        FaceModels(store)
    except (FaceModelError, OSError) as exc:
        raise ModelStoreError(f"features.visual: the face models cannot be loaded ({exc})") from exc
