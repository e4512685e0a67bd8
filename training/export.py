"""Export the fusion network to ONNX and check it against PyTorch.

Dynamic batch and time axes; masks are graph inputs. ``parity`` runs random inputs of
random lengths through both, for every modality subset, and returns the largest
absolute difference over all outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from app.contract import MODALITIES, FeatureSpec
from training.data import modality_subsets, restrict
from training.network import INPUT_NAMES, OUTPUT_NAMES, FusionNet

OPSET = 17
PARITY_TOLERANCE = 1e-4


def random_inputs(
    features: FeatureSpec, batch: int, lengths: dict[str, int], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Plausible random inputs: padded tails masked, quality in [0, 1], all modalities on."""
    inputs: dict[str, np.ndarray] = {}
    for name in MODALITIES:
        t = lengths[name]
        values = rng.standard_normal((batch, t, features.dim(name))).astype(np.float32)
        if name == "text":
            values /= np.linalg.norm(values, axis=-1, keepdims=True)
        mask = np.zeros((batch, t), np.float32)
        for b in range(batch):
            mask[b, : rng.integers(1, t + 1)] = 1.0
        inputs[name] = values * mask[..., None]
        inputs[name + "_mask"] = mask
    inputs["modality_mask"] = np.ones((batch, len(MODALITIES)), np.float32)
    inputs["quality"] = rng.random((batch, len(MODALITIES), features.n_quality())).astype(np.float32)
    return inputs


def export_onnx(net: FusionNet, features: FeatureSpec, path: Path) -> None:
    net = net.eval()
    rng = np.random.default_rng(0)
    lengths = {m: features.frames_per_window(m) for m in MODALITIES}
    example = random_inputs(features, 2, lengths, rng)
    dynamic: dict[str, dict[int, str]] = {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES}
    for name in MODALITIES:
        dynamic[name] = {0: "batch", 1: f"t_{name}"}
        dynamic[name + "_mask"] = {0: "batch", 1: f"t_{name}"}
        dynamic[f"{name}_time_weights"] = {0: "batch", 1: f"t_{name}_pooled"}
    with torch.no_grad():
        torch.onnx.export(
            net,
            tuple(torch.from_numpy(example[name]) for name in INPUT_NAMES),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )


def parity(net: FusionNet, onnx_path: Path, features: FeatureSpec, trials: int = 3, seed: int = 0) -> float:
    """Largest |ORT - PyTorch| over random shapes and every modality subset."""
    import onnxruntime as ort

    net = net.eval()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(trials):
        batch = int(rng.integers(1, 5))
        # any length from one pooling step up to a full window
        lengths = {m: int(rng.integers(4, features.frames_per_window(m) + 1)) for m in MODALITIES}
        base = random_inputs(features, batch, lengths, rng)
        for keep in modality_subsets():
            inputs = restrict(base, keep)
            ours = session.run(list(OUTPUT_NAMES), inputs)
            with torch.no_grad():
                theirs = net(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
            for a, b in zip(ours, theirs, strict=True):
                worst = max(worst, float(np.max(np.abs(a - b.numpy()))))
    return worst
