"""Does the synthetic face generator write what the extractor measures on a real face?

    python -m training.visual_calibration

Runs the serve-time extractor on scikit-image's astronaut (still, panned, rotated,
zoomed; tests.media builds the frames) and the generator (training/synth/face.py) for
people at item scores 0 and 3, and prints, per feature group, the extractor's mean and
spread next to the generator's. Large gaps in the means are train/serve skew for the
visual branch. One real face is a sanity check, not a calibration set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from app.contract import VisualSpec
from app.features.visual.models import FaceModels
from app.features.visual.tracking import VisualExtractor
from training.synth.face import face_session

CALIBRATION_PATH = Path(__file__).resolve().parent / "synth" / "face_calibration.json"

GROUPS = {
    "landmarks (136)": slice(0, 136),
    "iris dx": [136, 138],
    "iris dy": [137, 139],
    "yaw (deg)": [140],
    "pitch (deg)": [141],
    "roll (deg)": [142],
}
DEGREES = {"yaw (deg)", "pitch (deg)", "roll (deg)"}


def _summary(frames: np.ndarray, group: str) -> tuple[float, float]:
    values = frames[:, GROUPS[group]]
    if group in DEGREES:
        values = np.degrees(values)
    return float(values.mean()), float(values.std(axis=0).mean())


def calibration(real: np.ndarray, generated: np.ndarray) -> dict:
    """Offsets that move the generator's neutral person onto what the extractor measures.

    The mouth (48-67) is left out of the shape offset: the astronaut smiles, and a smile
    is an expression the generator plants by item, not anatomy.
    """
    shape = (real[:, :136].mean(axis=0) - generated[:, :136].mean(axis=0)).reshape(68, 2)
    shape[48:68] = 0.0
    return {
        "shape_offset": shape.round(5).tolist(),
        "iris_offset": (real[:, 136:140].mean(axis=0) - generated[:, 136:140].mean(axis=0))
        .reshape(2, 2)
        .round(5)
        .tolist(),
        "pitch_offset_deg": round(float(np.degrees(real[:, 141].mean() - generated[:, 141].mean())), 3),
        "units": "shape: eye-corner distances (x, y) per iBUG point; iris: eye widths (dx, dy) per eye",
        "source": "app.features.visual on scikit-image's astronaut (still, pan, zoom; tests.media), minus the "
        "uncalibrated generator at item scores 0 (5 people)",
        "command": "python -m training.visual_calibration --write",
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    from tests.media import face_frames

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write the offsets to {CALIBRATION_PATH.name}")
    args = parser.parse_args()
    spec = VisualSpec()
    extractor = VisualExtractor(FaceModels(Path("model_store")), spec)
    measured = {}
    for motion in ("still", "pan", "rotate", "zoom"):
        result = extractor.extract_frames(face_frames(60, (640, 480), motion=motion), duration_s=6.0)
        measured[f"astronaut, {motion}"] = result.frames[result.valid]
    if args.write:
        # the offsets are measured against the generator without them
        uncalibrated = np.concatenate(
            [
                face_session(np.zeros(8), 60.0, np.random.default_rng(seed), spec, calibrated=False).frames
                for seed in range(5)
            ]
        )
        real = np.concatenate([measured[f"astronaut, {m}"] for m in ("still", "pan", "zoom")])
        CALIBRATION_PATH.write_text(json.dumps(calibration(real, uncalibrated), indent=1) + "\n")
        print(f"wrote {CALIBRATION_PATH}")
    for score in (0, 3):
        frames = np.concatenate(
            [face_session(np.full(8, score), 60.0, np.random.default_rng(seed), spec).frames for seed in range(5)]
        )
        measured[f"generator, items {score}"] = frames
    still = measured["astronaut, still"][:, GROUPS["landmarks (136)"]].mean(axis=0)
    generated = measured["generator, items 0"][:, GROUPS["landmarks (136)"]].mean(axis=0)
    gap = np.abs(still - generated).reshape(68, 2).sum(axis=1)
    print("| source | " + " | ".join(f"{g} mean (sd)" for g in GROUPS) + " |")
    print("|---" * (len(GROUPS) + 1) + "|")
    for name, frames in measured.items():
        cells = [f"{m:.3f} ({s:.3f})" for m, s in (_summary(frames, g) for g in GROUPS)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    worst = np.argsort(gap)[::-1][:6]
    print(f"\nmean-shape gap, astronaut still vs generator (mouth included): {np.abs(still - generated).mean():.3f}")
    print("largest (iBUG index: |dx|+|dy|): " + ", ".join(f"{i}: {gap[i]:.3f}" for i in worst))


if __name__ == "__main__":
    main()
