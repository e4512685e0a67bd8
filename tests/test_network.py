"""The PyTorch fusion network (build-only; skipped without torch)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


def test_masked_softmax_is_zero_where_masked_and_sums_to_one_elsewhere() -> None:
    import torch

    from training.network import masked_softmax

    scores = torch.tensor([[5.0, -2.0, 40.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    w = masked_softmax(scores, mask, dim=1)
    assert w[0, 2] == 0.0 and w[1, 0] == 0.0 and w[1, 2] == 0.0
    assert float(w[0].sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(w[1, 1]) == pytest.approx(1.0, abs=1e-5)
    assert float(w[2].sum()) == 0.0  # nothing present: no weight anywhere, no NaN


def test_soft_labels_peak_at_the_true_score() -> None:
    import torch

    from app.contract import OutputSemantics
    from training.network import soft_labels

    sem = OutputSemantics()
    centres = torch.tensor(sem.bin_centres)
    labels = soft_labels(torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]]), sem, centres)
    assert torch.allclose(labels.sum(-1), torch.ones(1, 8))
    peaks = centres[labels.argmax(-1)]
    assert torch.allclose(peaks[0], torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]).float(), atol=3 / 31 / 2)


def test_a_fresh_network_exports_with_parity_on_every_subset(tmp_path) -> None:
    from app.contract import FeatureSpec, NetworkConfig, OutputSemantics
    from training.export import PARITY_TOLERANCE, export_onnx, parity
    from training.network import FusionNet

    features = FeatureSpec()
    net = FusionNet(features, NetworkConfig(conv_channels=16, lstm_hidden=16, embed_dim=32), OutputSemantics())
    path = tmp_path / "model.onnx"
    export_onnx(net, features, path)
    assert parity(net, path, features, trials=1, seed=5) <= PARITY_TOLERANCE


def test_modality_dropout_keeps_at_least_one_present_modality() -> None:
    import torch

    from training.train import modality_dropout

    batch = {
        "visual": torch.ones(64, 4, 2),
        "visual_mask": torch.ones(64, 4),
        "audio": torch.ones(64, 4, 2),
        "audio_mask": torch.ones(64, 4),
        "text": torch.ones(64, 4, 2),
        "text_mask": torch.ones(64, 4),
        "modality_mask": torch.ones(64, 3),
        "quality": torch.ones(64, 3, 2),
    }
    batch["modality_mask"][:, 0] = 0.0  # visual missing everywhere
    modality_dropout(batch, 0.9, torch.Generator().manual_seed(0))
    kept = batch["modality_mask"]
    assert torch.all(kept.sum(1) >= 1) and torch.all(kept[:, 0] == 0)
    for k, name in enumerate(("visual", "audio", "text")):
        off = kept[:, k] == 0
        assert torch.all(batch[name][off] == 0) and torch.all(batch[name + "_mask"][off] == 0)
    assert np.isclose(float(kept[:, 1:].mean()), 0.55, atol=0.25)  # dropout really dropped some


def _loss_inputs(batch: int = 4):
    import torch

    from app.contract import FeatureSpec, NetworkConfig, OutputSemantics
    from training.export import random_inputs
    from training.network import FusionNet

    features, semantics = FeatureSpec(), OutputSemantics()
    torch.manual_seed(0)
    net = FusionNet(features, NetworkConfig(), semantics)
    lengths = {"visual": 30, "audio": 40, "text": 5}
    inputs = random_inputs(features, batch, lengths, np.random.default_rng(0))
    return net, {k: torch.from_numpy(v) for k, v in inputs.items()}, semantics


def test_rows_with_only_a_total_train_on_the_total_and_leave_the_rest_alone() -> None:
    import torch

    from training.train import fusion_loss

    net, batch, semantics = _loss_inputs()
    items = torch.tensor([[1.0] * 8, [2.0] * 8, [0.0] * 8, [3.0] * 8])
    totals = items.sum(dim=1)
    full = fusion_loss(net, batch, items, totals, semantics)

    partial = items.clone()
    partial[1] = float("nan")  # participant 1: the corpus gives only the total
    loss = fusion_loss(net, batch, partial, totals, semantics)
    assert torch.isfinite(loss) and not torch.isclose(loss, full)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    # a total-only row pulls the expected total towards its label: a wrong total costs more
    wrong = totals.clone()
    wrong[1] = 0.0
    with torch.no_grad():
        right_loss = fusion_loss(net.eval(), batch, partial, totals, semantics)
        wrong_loss = fusion_loss(net, batch, partial, wrong, semantics)
    assert wrong_loss > right_loss


def test_with_every_item_known_the_total_argument_does_not_matter() -> None:
    import torch

    from training.train import fusion_loss

    net, batch, semantics = _loss_inputs()
    net.eval()
    items = torch.tensor([[1.0] * 8, [2.0] * 8, [0.0] * 8, [3.0] * 8])
    with torch.no_grad():
        a = fusion_loss(net, batch, items, items.sum(dim=1), semantics)
        b = fusion_loss(net, batch, items, torch.zeros(4), semantics)
    assert torch.isclose(a, b)


def test_the_damage_penalty_charges_the_weight_a_damaged_modality_keeps() -> None:
    import torch

    from training.network import INPUT_NAMES
    from training.train import fusion_loss

    net, batch, semantics = _loss_inputs()
    net.eval()
    items = torch.tensor([[1.0] * 8, [2.0] * 8, [0.0] * 8, [3.0] * 8])
    damaged = torch.tensor([0, -1, 2, -1])  # window 0: its face; window 2: its text
    with torch.no_grad():
        plain = fusion_loss(net, batch, items, items.sum(dim=1), semantics)
        charged = fusion_loss(net, batch, items, items.sum(dim=1), semantics, damaged=damaged, damage_penalty=2.0)
        weights = net.forward_logits(*(batch[name] for name in INPUT_NAMES))[2]
    kept = torch.stack([weights[0, :, 0], weights[2, :, 2]]).mean()
    assert torch.isclose(charged - plain, 2.0 * kept, atol=1e-5)


def test_evidence_attention_moves_weight_away_from_a_modality_that_fills_less_of_its_window() -> None:
    import torch

    from app.contract import FeatureSpec, NetworkConfig, OutputSemantics
    from training.export import random_inputs
    from training.network import INPUT_NAMES, FusionNet

    features, semantics = FeatureSpec(), OutputSemantics()
    torch.manual_seed(0)
    net = FusionNet(features, NetworkConfig(evidence_attention=True, quality_floor=1.0), semantics).eval()
    lengths = {"visual": 30, "audio": 40, "text": 5}
    arrays = random_inputs(features, 4, lengths, np.random.default_rng(0))
    inputs = {k: torch.from_numpy(v) for k, v in arrays.items()}
    inputs["modality_mask"][:] = 1.0
    inputs["audio_mask"][:] = 1.0
    sparse = dict(inputs)
    sparse["audio_mask"] = inputs["audio_mask"].clone()
    sparse["audio_mask"][:, 4:] = 0.0  # a tenth of the window
    with torch.no_grad():
        full = net.forward_logits(*(inputs[name] for name in INPUT_NAMES))[2][..., 1].mean()
        short = net.forward_logits(*(sparse[name] for name in INPUT_NAMES))[2][..., 1].mean()
    assert short < 0.7 * full


def test_roughness_is_about_one_for_jitter_low_for_movement_and_zero_for_a_frozen_track() -> None:
    import torch

    from training.network import masked_roughness

    t = torch.arange(300, dtype=torch.float32).view(1, -1, 1)
    smooth = torch.sin(2 * torch.pi * t / 60.0).expand(1, 300, 4)  # one movement every 60 steps
    jitter = torch.randn(1, 300, 4, generator=torch.Generator().manual_seed(3))
    frozen = torch.ones(1, 300, 4)
    mask = torch.ones(1, 300)
    values = masked_roughness(torch.cat([smooth, jitter, frozen]), mask.expand(3, -1))
    assert float(values[0]) < 0.02
    assert 0.85 < float(values[1]) < 1.15
    assert float(values[2]) == 0.0
    # only neighbours that are both present count: a gap is not a jump
    gappy = smooth.clone()
    gappy[:, 100:200] = 5.0
    gap_mask = mask.clone()
    gap_mask[:, 100:200] = 0.0
    assert float(masked_roughness(gappy, gap_mask)[0]) < 0.02


def _gated_net(**gate):
    import torch

    from app.contract import FeatureSpec, NetworkConfig, OutputSemantics
    from training.network import FusionNet

    torch.manual_seed(0)
    cfg = NetworkConfig(evidence_attention=True, quality_floor=1.0, score_bound=0.75, **gate)
    return FusionNet(FeatureSpec(), cfg, OutputSemantics()).eval()


def _smooth_inputs():
    import torch

    from app.contract import FeatureSpec
    from training.export import random_inputs

    features = FeatureSpec()
    arrays = random_inputs(features, 4, {"visual": 120, "audio": 40, "text": 5}, np.random.default_rng(0))
    inputs = {k: torch.from_numpy(v) for k, v in arrays.items()}
    for name in ("modality_mask", "visual_mask", "audio_mask", "text_mask"):
        inputs[name][:] = 1.0
    t = torch.arange(120, dtype=torch.float32).view(1, -1, 1)
    phase = torch.rand(1, 1, features.visual.dim, generator=torch.Generator().manual_seed(1)) * 6.3
    inputs["visual"] = (0.05 * torch.sin(2 * torch.pi * t / 40.0 + phase)).expand(4, -1, -1).contiguous()
    return inputs


def test_steadiness_moves_weight_away_from_a_face_track_that_jitters() -> None:
    import torch

    from training.network import INPUT_NAMES

    net = _gated_net(liveliness_scale=0.005, steadiness_centre=0.8)
    smooth = _smooth_inputs()
    shaky = dict(smooth)
    noise = torch.randn(smooth["visual"].shape, generator=torch.Generator().manual_seed(2)) * 0.1
    shaky["visual"] = smooth["visual"] + noise
    with torch.no_grad():
        steady_weight = net.forward_logits(*(smooth[name] for name in INPUT_NAMES))[2][..., 0].mean()
        shaky_weight = net.forward_logits(*(shaky[name] for name in INPUT_NAMES))[2][..., 0].mean()
    assert shaky_weight < 0.3 * steady_weight


def test_consensus_marks_the_modality_whose_own_estimate_disagrees_with_the_others() -> None:
    import torch

    net = _gated_net(consensus_scale=4.0)
    emb = torch.rand(5, 3, net.head_w1.shape[1], generator=torch.Generator().manual_seed(4))
    even = torch.full((5, 3), 1 / 3)
    with torch.no_grad():
        own = (torch.softmax(net.unimodal_logits(emb), dim=-1) @ net.bin_centres).sum(dim=-1)
        everything = net.consensus(emb, torch.ones(5, 3), even)
        pair = net.consensus(emb, torch.tensor([[1.0, 0.0, 1.0]] * 5), even)
        alone = net.consensus(emb, torch.tensor([[0.0, 1.0, 0.0]] * 5), even)
    gaps = (own - (own.sum(dim=1, keepdim=True) - own) / 2).abs()
    assert torch.allclose(everything, 1 / (1 + (gaps / 4.0) ** 2), atol=1e-6)
    assert torch.equal(everything.argmin(dim=1), gaps.argmax(dim=1))
    assert torch.allclose(pair[:, 0], pair[:, 2]) and bool((pair[:, 1] == 0).all())  # two: no side taken
    assert torch.equal(alone, torch.tensor([[0.0, 1.0, 0.0]] * 5))


def test_a_modality_the_gate_set_aside_is_no_reference_for_the_consensus() -> None:
    import torch

    net = _gated_net(consensus_scale=4.0)
    emb = torch.rand(5, 3, net.head_w1.shape[1], generator=torch.Generator().manual_seed(4))
    audio_set_aside = torch.tensor([[0.5, 1e-4, 0.5]] * 5)
    with torch.no_grad():
        own = (torch.softmax(net.unimodal_logits(emb), dim=-1) @ net.bin_centres).sum(dim=-1)
        agree = net.consensus(emb, torch.ones(5, 3), audio_set_aside)
    # visual and text are compared with each other only, so they agree equally, whatever audio says
    expected = 1 / (1 + ((own[:, 0] - own[:, 2]).abs() / 4.0) ** 2)
    assert torch.allclose(agree[:, 0], expected, atol=1e-3) and torch.allclose(agree[:, 2], expected, atol=1e-3)


def test_a_network_with_every_gate_figure_exports_with_parity(tmp_path) -> None:
    from app.contract import FeatureSpec, NetworkConfig, OutputSemantics
    from training.export import PARITY_TOLERANCE, export_onnx, parity
    from training.network import FusionNet

    features = FeatureSpec()
    cfg = NetworkConfig(
        conv_channels=16,
        lstm_hidden=16,
        embed_dim=32,
        evidence_attention=True,
        quality_floor=1.0,
        score_bound=0.75,
        liveliness_scale=0.005,
        steadiness_centre=0.8,
        consensus_scale=4.0,
    )
    net = FusionNet(features, cfg, OutputSemantics())
    path = tmp_path / "model.onnx"
    export_onnx(net, features, path)
    assert parity(net, path, features, trials=1, seed=5) <= PARITY_TOLERANCE
