"""Participant-level evaluation of an exported model (the protocol of docs/training.md).

    python -m training.evaluate [--model model_store/fusion/<version>]         # synthetic draw
    python -m training.evaluate --model model_store/fusion/3 --data /corpora/daic-woz

runs the exported model in ONNX Runtime (what the server runs) on held-out participants
(a fresh synthetic draw, or a licensed corpus's dev and labelled test splits) and prints
MAE, RMSE, CCC, F1 and accuracy at the cut-off for every modality subset, each next to
the train-mean predictor; ``--json`` writes the report in the format of the
``evaluation.json`` that training leaves next to the model.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.contract import MODALITIES, Calibration, FeatureSpec, FusionManifest, OutputSemantics
from app.fusion.aggregate import aggregate
from app.model_store import served_model_dir, text_encoder_dir
from training.data import WindowSet, modality_subsets, regression_metrics, restrict

RunFn = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]

REPORT_FILE = "evaluation.json"
HEADLINE = ("mae", "rmse", "ccc", "f1", "accuracy")
PROTOCOL = {
    "selection": "the epoch with the best dev (validation) MAE, averaged over all modalities and each one alone; "
    "the test split is never used for selection",
    "aggregation": "participant level: window predictions combined by app.fusion.aggregate, as the server answers",
    "metrics": "MAE, RMSE, CCC of the PHQ-8 total; F1 and accuracy of total >= cutoff, per modality subset, "
    "each beside the train-mean predictor",
    "cutoff": 10,
}


def predict_participants(
    run: RunFn,
    windows: WindowSet,
    keep: tuple[str, ...],
    semantics: OutputSemantics,
    fallback: float,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Predicted totals (P,), mean modality weights (P, M), and how many participants had
    no usable window for this subset (they get ``fallback``, as an abstain would)."""
    probs, weights = [], []
    for start in range(0, windows.size, batch_size):
        index = np.arange(start, min(start + batch_size, windows.size))
        p, w = run(restrict(windows.batch(index), keep))
        probs.append(p)
        weights.append(w)
    item_probs, modality_weights = np.concatenate(probs), np.concatenate(weights)
    present = restrict(windows.batch(np.arange(windows.size)), keep)["modality_mask"].sum(axis=1) > 0
    n = windows.totals.shape[0]
    totals = np.full(n, fallback)
    mean_weights = np.zeros((n, len(MODALITIES)))
    abstained = 0
    for row in range(n):
        mine = np.flatnonzero((windows.owner == row) & present)
        if mine.size == 0:
            abstained += 1
            continue
        agg = aggregate(item_probs[mine], modality_weights[mine], windows.coverage[mine], semantics)
        totals[row] = agg.total
        mean_weights[row] = agg.overall_modality_weights
    return totals, mean_weights, abstained


def evaluate(run: RunFn, windows: WindowSet, semantics: OutputSemantics, train_mean: float) -> dict:
    """Metrics for every modality subset next to the mean predictor's."""
    true = windows.totals.astype(float)
    baseline = regression_metrics(np.full_like(true, train_mean), true, semantics.cutoff)
    report: dict = {"n_participants": int(true.size), "train_mean_total": float(train_mean), "subsets": {}}
    for keep in modality_subsets():
        totals, weights, abstained = predict_participants(run, windows, keep, semantics, train_mean)
        metrics = regression_metrics(totals, true, semantics.cutoff)
        report["subsets"]["+".join(keep)] = {
            **metrics,
            "baseline": baseline,
            "mae_gain_vs_baseline": 1.0 - metrics["mae"] / baseline["mae"],
            "abstained": abstained,
            "mean_modality_weights": dict(zip(MODALITIES, weights.mean(axis=0).round(4).tolist(), strict=True)),
        }
    return report


def format_report(report: dict) -> str:
    lines = [
        f"held-out participants: {report['n_participants']}  (mean predictor: {report['train_mean_total']:.2f})",
        f"{'modalities':<20} {'MAE':>6} {'base':>6} {'gain':>6} {'RMSE':>6} {'base':>6} "
        f"{'CCC':>6} {'F1':>6} {'base':>5} {'acc':>5} {'base':>5}",
    ]
    for name, m in report["subsets"].items():
        b = m["baseline"]
        lines.append(
            f"{name:<20} {m['mae']:6.2f} {b['mae']:6.2f} {m['mae_gain_vs_baseline']:6.0%} {m['rmse']:6.2f} "
            f"{b['rmse']:6.2f} {m['ccc']:6.3f} {m['f1']:6.3f} {b['f1']:5.2f} {m['accuracy']:5.2f} {b['accuracy']:5.2f}"
        )
    return "\n".join(lines)


def onnx_runner(model_path: Path, threads: int = 2) -> RunFn:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def run(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        probs, weights = session.run(["item_probs", "modality_weights"], inputs)
        return probs, weights

    return run


def evaluation_report(
    onnx_path: Path,
    splits: dict[str, WindowSet],
    features: FeatureSpec,
    semantics: OutputSemantics,
    train_mean: float,
    calibration: Calibration | None,
) -> dict:
    """The exported model (what the server runs) on each held-out split, printed and returned:
    point metrics per subset, and the uncertainty the server would state (interval coverage
    and width next to the model's own, ECE of P(total >= cutoff), the reliability diagram)."""
    from training.calibrate import answer_all, uncertainty_report

    run = onnx_runner(onnx_path)
    out = {"protocol": PROTOCOL, "splits": {}}
    for name, windows in splits.items():
        out["splits"][name] = evaluate(run, windows, semantics, train_mean)
        answers = answer_all(run, windows, features, semantics)
        out["splits"][name]["uncertainty"] = uncertainty_report(answers, calibration, semantics.cutoff)
        print(f"--- {name}", flush=True)
        print(format_report(out["splits"][name]), flush=True)
        print(format_uncertainty(out["splits"][name]["uncertainty"]), flush=True)
    return out


def format_uncertainty(report: dict) -> str:
    lines = [f"{'whole interviews':<20} {'cov 0.8':>8} {'model':>6} {'width':>6} {'cov 0.9':>8} {'model':>6} "
             f"{'width':>6} {'ECE':>6} {'model':>6}"]
    for subset, row in report["whole interviews"].items():
        a, b = row["0.8"], row["0.9"]
        lines.append(
            f"{subset:<20} {a.get('coverage', float('nan')):8.3f} {a['model_coverage']:6.3f} "
            f"{a.get('mean_width', float('nan')):6.2f} {b.get('coverage', float('nan')):8.3f} "
            f"{b['model_coverage']:6.3f} {b.get('mean_width', float('nan')):6.2f} "
            f"{row.get('ece', float('nan')):6.3f} {row['ece_model']:6.3f}"
        )
    lines.append(f"P(total >= cutoff), pooled: ECE {report['cutoff_probability']['ece']:.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a fusion version folder (default: the highest in model_store)")
    parser.add_argument("--data", type=Path, help="a DAIC-WOZ / E-DAIC root: its dev and (labelled) test splits")
    parser.add_argument("--participants", type=int, default=120, help="synthetic: held-out participants")
    parser.add_argument("--seed", type=int, default=2024, help="synthetic: a seed other than the training seed")
    parser.add_argument("--cache", type=Path, help="feature cache (default: .build/corpus or .build/daic)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--robustness-participants", type=int, default=30, help="synthetic: people of the robustness table (0: none)"
    )
    args = parser.parse_args()
    args.model = args.model or served_model_dir()

    manifest = FusionManifest.load(args.model / "manifest.json")
    train_mean = float(manifest.provenance.metrics["train_mean_total"])
    encoder_dir = text_encoder_dir(args.model.parent.parent, manifest.features)
    if args.data is not None:
        splits = corpus_splits(
            args.data, manifest.features, encoder_dir, args.cache or Path(".build/daic"), args.workers
        )
    else:
        cache = args.cache or Path(".build/corpus")
        windows = synthetic_windows(args.participants, args.seed, manifest.features, encoder_dir, cache, args.workers)
        splits = {"synthetic": windows}
    report = evaluation_report(
        args.model / manifest.model_file, splits, manifest.features, manifest.semantics, train_mean,
        manifest.calibration,
    )
    if args.data is None and args.robustness_participants:
        from training.robustness import format_table, held_out_people, robustness

        people = held_out_people(args.robustness_participants, seed=90210)
        report["robustness"] = robustness(
            onnx_runner(args.model / manifest.model_file), manifest.features, manifest.semantics, train_mean,
            people, 90210, args.cache or Path(".build/corpus"), args.workers,
        )
        print(format_table(report["robustness"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def synthetic_windows(
    participants: int, seed: int, features: FeatureSpec, encoder_dir: Path, cache: Path, workers: int
) -> WindowSet:
    """A fresh synthetic draw of ``participants`` held-out people (``seed``: never the training
    seed) as windows, its features cached under ``cache``."""
    from training.data import load_windows
    from training.synth.corpus import build_corpus
    from training.synth.participants import draw_participants

    people = draw_participants(participants, seed=seed, first_pid=1_000_000)
    return load_windows(build_corpus(people, seed, features, encoder_dir, cache, workers), features)


def corpus_splits(
    root: Path, features: FeatureSpec, encoder_dir: Path, cache: Path, workers: int
) -> dict[str, WindowSet]:
    """The held-out (dev, labelled test) splits of a licensed corpus as windows."""
    from training.daic.sessions import load_corpus

    corpus = load_corpus(root, features, encoder_dir, cache, workers=workers)
    for line in corpus.notes():
        print(line, flush=True)
    return corpus.window_sets(features, ("dev", "test"))


if __name__ == "__main__":
    main()
