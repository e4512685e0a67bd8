"""Refit a shipped synthetic model's calibration, without retraining it.

    python -m training.recalibrate --model model_store/fusion/5

rebuilds the training run's corpus from its manifest (seed and split sizes; cached features
are reused), answers the same calibration participants as training did (the validation split
after the first ``--select`` that chose the epoch) through the exported ONNX model, refits
``manifest.calibration`` with the current ``app.fusion.calibration`` method, re-evaluates the
test split into ``evaluation.json`` (its robustness table, which calibration does not touch,
is kept) and redraws ``reliability.png``. The weights and their sha256 do not change; the
manifest's provenance records the recalibration.

``--extra N --extra-seed S [S ...]`` adds N fresh synthetic participants drawn with each seed S
(which must differ from the training seed and from any evaluation seed) to the calibration
people: split-conformal quantiles need only people exchangeable with those served, and each
subset's and evidence bucket's quantile is noisier the fewer people it rests on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

from app.contract import FusionManifest
from training.calibrate import calibrate, reliability_png
from training.data import load_windows
from training.evaluate import evaluation_report, onnx_runner
from training.synth.corpus import build_corpus
from training.synth.participants import draw_participants

TEXT_ENCODER_DIR = Path("model_store/text_encoder/1")


def recalibrate(
    model_dir: Path,
    select: int,
    cache: Path,
    workers: int,
    extra: int = 0,
    extra_seeds: tuple[int, ...] = (),
) -> FusionManifest:
    manifest = FusionManifest.model_validate_json((model_dir / "manifest.json").read_text())
    provenance = manifest.provenance
    if provenance.training_data != "synthetic":
        raise SystemExit("only synthetic runs can be rebuilt from their manifest; rerun training on the corpus")
    if extra and (not extra_seeds or provenance.seed in extra_seeds or len(set(extra_seeds)) < len(extra_seeds)):
        raise SystemExit("--extra needs --extra-seed values, distinct and other than the training seed")
    sizes = provenance.corpus["participants"]
    n_train, n_val, n_test = sizes["train"], sizes["val"], sizes["test"]
    started = time.monotonic()
    people = draw_participants(n_train + n_val + n_test, seed=provenance.seed)
    paths = build_corpus(people, provenance.seed, manifest.features, TEXT_ENCODER_DIR, cache, workers)
    n_select = min(select, n_val - 1)
    calibration_paths = paths[n_train + n_select : n_train + n_val]
    source = manifest.calibration.source if manifest.calibration else "synthetic validation participants"
    if extra:
        for seed in extra_seeds:
            fresh = draw_participants(extra, seed=seed)
            calibration_paths += build_corpus(fresh, seed, manifest.features, TEXT_ENCODER_DIR, cache, workers)
        seeds = ", ".join(str(seed) for seed in extra_seeds)
        source = (
            f"{n_val - n_select} synthetic validation participants and {extra * len(extra_seeds)} fresh synthetic "
            f"participants ({extra} each of seed {seeds})"
        )
    test = load_windows(paths[n_train + n_val :], manifest.features)
    onnx_path = model_dir / manifest.model_file
    calibration = calibrate(
        onnx_runner(onnx_path),
        load_windows(calibration_paths, manifest.features),
        manifest.features,
        manifest.semantics,
        source=source,
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
    parser.add_argument("--extra", type=int, default=0, help="fresh synthetic participants added to the calibration")
    parser.add_argument(
        "--extra-seed",
        type=int,
        nargs="+",
        default=[],
        help="their seeds, N people each (not the training seed, not an evaluation seed)",
    )
    args = parser.parse_args(argv)
    recalibrate(args.model, args.select, args.cache, args.workers, args.extra, tuple(args.extra_seed))


if __name__ == "__main__":
    main()
