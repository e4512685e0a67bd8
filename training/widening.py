"""Do the served intervals widen as one interview gets shorter? Counted per person and subset.

    python -m training.widening [--model model_store/fusion/5] [--calibration-of OTHER_VERSION_FOLDER ...]
                                [--participants 300] [--seed 777] [--level 0.9]

Answers each fresh synthetic participant (``--seed``, never the training seed) cut to its first
10 s, its first 60 s and whole, in every modality subset (``training.calibrate.answer_all``), and
counts the (person, subset) triples whose served interval at ``--level`` is narrower for less
evidence, with the model's own calibration and with each ``--calibration-of`` folder's (its
manifest's calibration applied to the same answers: e.g. the same weights calibrated another
way). Widths are counted unclipped (the half-width the calibration gives) and clipped to the
0-24 scale as served (where 0 cuts a low estimate's interval, the visible width can narrow).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.contract import Calibration, FusionManifest
from app.fusion.calibration import calibrated_interval
from app.model_store import served_model_dir, text_encoder_dir
from training.calibrate import Answers, answer_all
from training.evaluate import onnx_runner, synthetic_windows

TRUNCATIONS = (10.0, 60.0, None)


def not_widening(answers: Answers, calibration: Calibration, level: float, bounds: tuple[float, float]) -> dict:
    """How many (person, subset) triples of ``answers`` get a narrower interval for less evidence."""
    widths: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for i, subset in enumerate(answers.subsets):
        interval = calibrated_interval(
            calibration, subset, answers.evidence_s[i], level, answers.predicted[i], answers.predicted_sd[i], bounds
        )
        if interval is not None:
            widths.setdefault((int(answers.participant[i]), subset), []).append(
                (float(answers.evidence_s[i]), interval[1] - interval[0])
            )
    judged = narrower = 0
    for rows in widths.values():
        rows.sort()
        if len(rows) < len(TRUNCATIONS) or len({round(e, 3) for e, _ in rows}) < len(rows):
            continue  # an interview shorter than a cut: two of its answers are the same
        judged += 1
        w = [width for _, width in rows]
        narrower += any(w[k] < w[k + 1] - 1e-9 for k in range(len(w) - 1))
    return {"triples": judged, "narrower_for_less": narrower, "share": round(narrower / judged, 4) if judged else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a fusion version folder (default: the served one)")
    parser.add_argument("--calibration-of", type=Path, nargs="*", default=[])
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--cache", type=Path, default=Path(".build/corpus"))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    model = args.model or served_model_dir()

    manifest = FusionManifest.load(model / "manifest.json")
    encoder = text_encoder_dir(model.parent.parent, manifest.features)
    windows = synthetic_windows(args.participants, args.seed, manifest.features, encoder, args.cache, args.workers)
    answers = answer_all(
        onnx_runner(model / manifest.model_file), windows, manifest.features, manifest.semantics, TRUNCATIONS
    )
    calibrations = {str(model): manifest.calibration}
    for other in args.calibration_of:
        calibrations[str(other)] = FusionManifest.load(other / "manifest.json").calibration
    report = {}
    for name, calibration in calibrations.items():
        if calibration is None:
            continue
        report[name] = {
            "scale": calibration.scale,
            "unclipped": not_widening(answers, calibration, args.level, (-np.inf, np.inf)),
            "clipped_0_24": not_widening(answers, calibration, args.level, (0.0, 24.0)),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
