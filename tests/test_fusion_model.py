"""The shipped fusion model in ONNX Runtime: I/O as declared, weights over modalities,
and parity with its PyTorch checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from app.contract import MODALITIES, FusionManifest
from tests.conftest import FUSION_DIR, needs_torch

SUBSETS = [tuple(m for k, m in enumerate(MODALITIES) if bits >> k & 1) for bits in range(1, 2 ** len(MODALITIES))]


def _inputs(manifest: FusionManifest, batch: int, keep: tuple[str, ...], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = manifest.features
    out: dict[str, np.ndarray] = {}
    for name in MODALITIES:
        t = features.frames_per_window(name)
        on = name in keep
        out[name] = (rng.standard_normal((batch, t, features.dim(name))) * on).astype(np.float32)
        out[name + "_mask"] = np.full((batch, t), float(on), np.float32)
    out["modality_mask"] = np.array([[float(m in keep) for m in MODALITIES]] * batch, np.float32)
    out["quality"] = rng.random((batch, len(MODALITIES), features.n_quality())) * out["modality_mask"][..., None]
    out["quality"] = out["quality"].astype(np.float32)
    return out


def test_graph_io_matches_the_manifest(fusion_manifest: FusionManifest, fusion_session) -> None:
    declared_in = [(s.name, s.shape) for s in fusion_manifest.inputs]
    declared_out = [s.name for s in fusion_manifest.outputs]
    graph_in = [(i.name, tuple(i.shape)) for i in fusion_session.get_inputs()]
    assert [n for n, _ in graph_in] == [n for n, _ in declared_in]
    for (_, shape), (_, want) in zip(graph_in, declared_in, strict=True):
        assert shape[-1] == want[-1]  # feature dimension fixed, batch/time dynamic
        assert isinstance(shape[0], str)
    assert [o.name for o in fusion_session.get_outputs()] == declared_out


@pytest.mark.parametrize("keep", SUBSETS, ids=["+".join(s) for s in SUBSETS])
def test_modality_weights_sum_to_one_over_present_and_are_zero_for_absent(
    fusion_manifest: FusionManifest, fusion_session, keep: tuple[str, ...]
) -> None:
    probs, scores, weights = fusion_session.run(
        ["item_probs", "item_scores", "modality_weights"], _inputs(fusion_manifest, 3, keep)
    )
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    for k, name in enumerate(MODALITIES):
        if name not in keep:
            assert np.all(weights[..., k] == 0.0), f"{name} absent but weighted"
        else:
            assert np.all(weights[..., k] > 0.0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    centres = np.asarray(fusion_manifest.semantics.bin_centres, np.float32)
    np.testing.assert_allclose(scores, probs @ centres, atol=1e-5)
    assert np.all((scores >= 0) & (scores <= 3))


def test_time_axes_are_dynamic(fusion_manifest: FusionManifest, fusion_session) -> None:
    inputs = _inputs(fusion_manifest, 2, MODALITIES)
    short = {k: (v[:, :90] if v.ndim >= 2 and k not in ("modality_mask", "quality") else v) for k, v in inputs.items()}
    short["text"], short["text_mask"] = inputs["text"][:, :3], inputs["text_mask"][:, :3]
    out = fusion_session.run(None, short)
    assert out[0].shape == (2, 8, fusion_manifest.semantics.n_bins)
    assert out[5].shape == (2, 3)


@needs_torch
def test_onnx_matches_the_pytorch_checkpoint_within_1e4(fusion_manifest: FusionManifest) -> None:
    import torch

    from training.export import PARITY_TOLERANCE, parity
    from training.network import FusionNet

    net = FusionNet(fusion_manifest.features, fusion_manifest.network, fusion_manifest.semantics)
    net.load_state_dict(torch.load(FUSION_DIR / "checkpoint.pt", weights_only=True))
    worst = parity(net, FUSION_DIR / fusion_manifest.model_file, fusion_manifest.features, trials=2, seed=11)
    assert worst <= PARITY_TOLERANCE
