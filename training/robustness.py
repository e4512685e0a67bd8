"""How the shipped model reacts when one modality is damaged at the source.

    python -m training.robustness [--model model_store/fusion/<version>] [--participants 30]

Builds the same held-out synthetic people clean and with each damage (through the
serve-time extractors) and prints, per damage, the mean modality weights, the MAE with
all modalities and the damaged modality's MAE alone.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.contract import MODALITIES, FusionManifest
from app.model_store import served_model_dir
from training.data import load_windows
from training.evaluate import onnx_runner, predict_participants
from training.synth.corpus import build_corpus
from training.synth.participants import Degradation, draw_participants

DAMAGES: dict[str, tuple[str | None, Degradation]] = {
    "none": (None, Degradation()),
    "landmark noise x8": ("visual", Degradation(landmark_jitter=8.0)),
    "face lost in 70 % of frames": ("visual", Degradation(face_missing_ratio=0.7)),
    "audio noise at 5 dB SNR": ("audio", Degradation(audio_noise_snr_db=5.0)),
    "audio noise at -5 dB SNR": ("audio", Degradation(audio_noise_snr_db=-5.0)),
    "60 % of transcript words lost": ("text", Degradation(drop_text_words=0.6)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a fusion version folder (default: the highest in model_store)")
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--seed", type=int, default=90210)
    parser.add_argument("--cache", type=Path, default=Path(".build/corpus"))
    args = parser.parse_args()
    args.model = args.model or served_model_dir()

    manifest = FusionManifest.load(args.model / "manifest.json")
    run = onnx_runner(args.model / manifest.model_file)
    people = draw_participants(args.participants, seed=args.seed, degradation_rate=0.0, first_pid=2_000_000)
    people = [replace(p, degradation=Degradation()) for p in people]
    true = np.array([p.total for p in people], dtype=float)
    mean_total = float(manifest.provenance.metrics["train_mean_total"])
    print(f"mean predictor MAE on these people: {np.abs(mean_total - true).mean():.2f}")
    print("| damage | weights visual / audio / text | MAE all | MAE of the damaged modality alone |")
    print("|---|---|---|---|")
    for name, (modality, damage) in DAMAGES.items():
        group = [replace(p, degradation=damage) for p in people]
        paths = build_corpus(group, args.seed, manifest.features, Path("model_store/text_encoder/1"), args.cache)
        windows = load_windows(paths, manifest.features)
        totals, weights, _ = predict_participants(run, windows, MODALITIES, manifest.semantics, mean_total)
        alone = [modality] if modality else list(MODALITIES)
        errors = {
            m: np.abs(predict_participants(run, windows, (m,), manifest.semantics, mean_total)[0] - true).mean()
            for m in alone
        }
        singles = ", ".join(f"{m} {e:.2f}" for m, e in errors.items())
        shown = " / ".join(f"{w:.3f}" for w in weights.mean(axis=0))
        print(f"| {name} | {shown} | {np.abs(totals - true).mean():.2f} | {singles} |")


if __name__ == "__main__":
    main()
