"""How a model reacts when one modality is damaged: does its weight fall, does the answer hold?

    python -m training.robustness [--model model_store/fusion/<version>] [--participants 30] [--json F]

Builds the same held-out synthetic people clean and with each damage and reports, per
damage: the mean modality weights, the damaged modality's weight relative to clean, the
fused MAE, the damaged modality's MAE alone, and the MAE of the fusion of the other
modalities on the clean data (what the fused answer should stay close to). Damages at the
source go through the serve-time extractors (training.synth Degradation); the others are
applied to the clean windows (training.damage), as training applies them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from app.contract import MODALITIES, FeatureSpec, FusionManifest, OutputSemantics
from app.model_store import served_model_dir
from training.damage import apply_damage
from training.data import WindowSet, load_windows
from training.evaluate import RunFn, onnx_runner, predict_participants
from training.synth.corpus import build_corpus
from training.synth.participants import Degradation, Participant, draw_participants

TEXT_ENCODER_DIR = Path("model_store/text_encoder/1")
# damages at the source: (modality, degradation)
SOURCE_DAMAGES: dict[str, tuple[str, Degradation]] = {
    "landmark noise x8": ("visual", Degradation(landmark_jitter=8.0)),
    "face lost in 70 % of frames": ("visual", Degradation(face_missing_ratio=0.7)),
    "audio noise at 5 dB SNR": ("audio", Degradation(audio_noise_snr_db=5.0)),
    "audio noise at -5 dB SNR": ("audio", Degradation(audio_noise_snr_db=-5.0)),
    "60 % of transcript words lost": ("text", Degradation(drop_text_words=0.6)),
}
# damages applied to every window of the clean data: (modality, training.damage kind)
WINDOW_DAMAGES: dict[str, tuple[str, str]] = {
    "frozen face": ("visual", "face_frozen"),
    "noise bursts in the audio": ("audio", "bursts"),
    "audio cut short": ("audio", "short"),
    "another person's text": ("text", "other_person"),
}


def damaged_windows(windows: WindowSet, modality: str, kind: str, seed: int) -> WindowSet:
    """``windows`` with ``kind`` applied to ``modality`` in every window that has it."""
    generator = torch.Generator().manual_seed(seed)
    batch = {k: torch.from_numpy(v.astype(np.float32)) for k, v in windows.inputs.items()}
    m = MODALITIES.index(modality)
    rows = torch.nonzero(batch["modality_mask"][:, m] > 0).flatten()
    apply_damage(batch, batch["quality"], m, kind, rows, generator)
    return replace(windows, inputs={k: v.numpy() for k, v in batch.items()})


def robustness(
    run: RunFn,
    features: FeatureSpec,
    semantics: OutputSemantics,
    mean_total: float,
    people: list[Participant],
    seed: int,
    cache: Path,
    workers: int = 2,
) -> dict:
    """The robustness table (see the module doc) on ``people`` (clean), as a dict."""
    true = np.array([p.total for p in people], dtype=float)

    def answer(windows: WindowSet, keep: tuple[str, ...]) -> tuple[float, np.ndarray]:
        totals, weights, _ = predict_participants(run, windows, keep, semantics, mean_total)
        return float(np.abs(totals - true).mean()), weights.mean(axis=0)

    def build(group: list[Participant]) -> WindowSet:
        return load_windows(build_corpus(group, seed, features, TEXT_ENCODER_DIR, cache, workers), features)

    clean = build(people)
    clean_mae, clean_weights = answer(clean, MODALITIES)
    rows: dict[str, dict] = {
        "none": {"weights": _weights(clean_weights), "mae_all": round(clean_mae, 3)},
    }
    others_mae = {m: answer(clean, tuple(x for x in MODALITIES if x != m))[0] for m in MODALITIES}
    cases: list[tuple[str, str, Callable[[], WindowSet]]] = [
        (name, m, lambda d=damage: build([replace(p, degradation=d) for p in people]))
        for name, (m, damage) in SOURCE_DAMAGES.items()
    ]
    cases += [
        (name, m, lambda m=m, kind=kind: damaged_windows(clean, m, kind, seed))
        for name, (m, kind) in WINDOW_DAMAGES.items()
    ]
    for name, modality, make in cases:
        windows = make()
        mae, weights = answer(windows, MODALITIES)
        k = MODALITIES.index(modality)
        relative = float(weights[k] / clean_weights[k]) if clean_weights[k] > 0 else float("nan")
        rows[name] = {
            "modality": modality,
            "weights": _weights(weights),
            "damaged_weight_vs_clean": round(relative, 3),
            "mae_all": round(mae, 3),
            "mae_damaged_alone": round(answer(windows, (modality,))[0], 3),
            "mae_other_modalities_clean": round(others_mae[modality], 3),
            "weight_falls_30_percent": relative <= 0.7,
            "mae_within_10_percent_of_others": mae <= 1.1 * others_mae[modality],
        }
    return {"participants": len(people), "mean_predictor_mae": round(float(np.abs(mean_total - true).mean()), 3),
            "damages": rows}


def format_table(table: dict) -> str:
    lines = [
        "| damage | weights visual / audio / text | damaged weight vs clean | MAE all | MAE damaged alone "
        "| MAE others (clean) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in table["damages"].items():
        shown = " / ".join(f"{row['weights'][m]:.3f}" for m in MODALITIES)
        if name == "none":
            lines.append(f"| none | {shown} | | {row['mae_all']:.2f} | | |")
            continue
        lines.append(
            f"| {name} | {shown} | {row['damaged_weight_vs_clean']:.2f} | {row['mae_all']:.2f} "
            f"| {row['mae_damaged_alone']:.2f} | {row['mae_other_modalities_clean']:.2f} |"
        )
    return "\n".join(lines)


def held_out_people(n: int, seed: int) -> list[Participant]:
    """Clean held-out synthetic people (ids far from any training draw)."""
    people = draw_participants(n, seed=seed, degradation_rate=0.0, first_pid=2_000_000)
    return [replace(p, degradation=Degradation()) for p in people]


def _weights(values: np.ndarray) -> dict[str, float]:
    return {m: round(float(v), 4) for m, v in zip(MODALITIES, values, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a fusion version folder (default: the highest in model_store)")
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--seed", type=int, default=90210)
    parser.add_argument("--cache", type=Path, default=Path(".build/corpus"))
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    args.model = args.model or served_model_dir()

    manifest = FusionManifest.load(args.model / "manifest.json")
    run = onnx_runner(args.model / manifest.model_file)
    mean_total = float(manifest.provenance.metrics["train_mean_total"])
    table = robustness(
        run, manifest.features, manifest.semantics, mean_total, held_out_people(args.participants, args.seed),
        args.seed, args.cache,
    )
    print(f"mean predictor MAE on these people: {table['mean_predictor_mae']:.2f}")
    print(format_table(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
