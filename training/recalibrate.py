"""Refit a shipped synthetic model's calibration, without retraining it.

    python -m training.recalibrate --model model_store/fusion/4

rebuilds the training run's corpus from its manifest (seed and split sizes; cached features
are reused), answers the same calibration participants as training did (the validation split
after the first ``--select`` that chose the epoch) through the exported ONNX model, refits
``manifest.calibration`` with the current ``app.fusion.calibration`` method, re-evaluates the
test split into ``evaluation.json`` (its robustness table, which calibration does not touch,
is kept) and redraws ``reliability.png``. The weights and their sha256 do not change; the
manifest's provenance records the recalibration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from app.contract import FusionManifest
from training.calibrate import calibrate, reliability_png
from training.data import load_windows, participants
from training.evaluate import evaluation_report, onnx_runner
from training.synth.corpus import build_corpus
from training.synth.participants import draw_participants

TEXT_ENCODER_DIR = Path("model_store/text_encoder/1")


def recalibrate(model_dir: Path, select: int, cache: Path, workers: int) -> FusionManifest:
    manifest = FusionManifest.model_validate_json((model_dir / "manifest.json").read_text())
    provenance = manifest.provenance
    if provenance.training_data != "synthetic":
        raise SystemExit("only synthetic runs can be rebuilt from their manifest; rerun training on the corpus")
    sizes = provenance.corpus["participants"]
    n_train, n_val, n_test = sizes["train"], sizes["val"], sizes["test"]
    started = time.monotonic()
    people = draw_participants(n_train + n_val + n_test, seed=provenance.seed)
    paths = build_corpus(people, provenance.seed, manifest.features, TEXT_ENCODER_DIR, cache, workers)
    val = load_windows(paths[n_train : n_train + n_val], manifest.features)
    test = load_windows(paths[n_train + n_val :], manifest.features)
    n_select = min(select, n_val - 1)
    onnx_path = model_dir / manifest.model_file
    calibration = calibrate(
        onnx_runner(onnx_path), participants(val, n_select, n_val), manifest.features, manifest.semantics,
        source=manifest.calibration.source if manifest.calibration else "synthetic validation participants",
    )
    train_mean = float(provenance.metrics["train_mean_total"])
    evaluation = evaluation_report(
        onnx_path, {"test": test}, manifest.features, manifest.semantics, train_mean, calibration
    )
    report_path = model_dir / "evaluation.json"
    if report_path.exists():
        old = json.loads(report_path.read_text())
        if "robustness" in old:
            evaluation["robustness"] = old["robustness"]
    report_path.write_text(json.dumps(evaluation, indent=2) + "\n")
    reliability_png(evaluation["splits"]["test"]["uncertainty"], model_dir / "reliability.png")
    when = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    notes = f"{provenance.notes} Calibration refitted {when} by `python -m training.recalibrate` (weights unchanged)."
    updated = manifest.model_copy(
        update={"calibration": calibration, "provenance": provenance.model_copy(update={"notes": notes})}
    )
    FusionManifest.model_validate(updated.model_dump())  # the manifest still checks
    updated.dump(model_dir / "manifest.json")
    print(f"recalibrated {model_dir} in {time.monotonic() - started:.0f}s", flush=True)
    return updated


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a synthetic fusion version folder")
    parser.add_argument("--select", type=int, default=100, help="validation participants that chose the epoch")
    parser.add_argument("--cache", type=Path, default=Path(".build/corpus"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    recalibrate(args.model, args.select, args.cache, args.workers)


if __name__ == "__main__":
    main()
