"""Training-time window damage: one present modality per chosen window, the rest untouched, and
quality figures that move the way the serve-time extractors would move them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


def _batch(n: int = 64, seed: int = 0):
    import torch

    rng = np.random.default_rng(seed)
    batch = {
        "visual": rng.standard_normal((n, 600, 8)),
        "visual_mask": (rng.random((n, 600)) > 0.1).astype(float),
        "audio": rng.standard_normal((n, 1800, 4)),
        "audio_mask": np.ones((n, 1800)),
        "text": rng.standard_normal((n, 10, 6)),
        "text_mask": np.ones((n, 10)),
        "modality_mask": np.ones((n, 3)),
        "quality": rng.uniform(0.5, 1.0, (n, 3, 2)),
    }
    batch["modality_mask"][: n // 4, 1:] = 0.0  # a quarter hold the face only: never damaged
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in batch.items()}


def test_one_present_modality_of_a_chosen_window_is_damaged_and_nothing_else() -> None:
    import torch

    from training.damage import damage_batch

    batch = _batch()
    before = {k: v.clone() for k, v in batch.items()}
    damaged = damage_batch(batch, 1.0, torch.Generator().manual_seed(1))
    assert (damaged[:16] == -1).all() and (damaged[16:] >= 0).all()
    for row in range(64):
        for m, name in enumerate(("visual", "audio", "text")):
            same = torch.equal(batch[name][row], before[name][row]) and torch.equal(
                batch[name + "_mask"][row], before[name + "_mask"][row]
            )
            if m != damaged[row]:
                assert same, (row, name)
    assert torch.equal(batch["modality_mask"], before["modality_mask"])
    assert damage_batch(_batch(), 0.0, torch.Generator().manual_seed(1)).eq(-1).all()


def test_lost_faces_and_utterances_lower_their_quality_figure_in_proportion() -> None:
    import torch

    from training.damage import VISUAL, apply_damage

    batch = _batch()
    rows = torch.arange(16, 64)
    found_before = batch["visual_mask"][rows].sum(dim=1)
    ratio_before = batch["quality"][rows, VISUAL, 0].clone()
    apply_damage(batch, batch["quality"], VISUAL, "face_lost", rows, torch.Generator().manual_seed(2))
    kept = batch["visual_mask"][rows].sum(dim=1)
    assert (kept < found_before).all() and (kept > 0).all()
    expected = ratio_before * kept / found_before
    assert torch.allclose(batch["quality"][rows, VISUAL, 0], expected)
    # frames are zero wherever the face is now lost
    assert torch.all(batch["visual"][rows][batch["visual_mask"][rows] == 0] == 0)


@pytest.mark.parametrize("modality", [0, 1, 2])
def test_a_short_recording_keeps_a_prefix_of_what_was_there(modality: int) -> None:
    import torch

    from training.damage import apply_damage

    name = ("visual", "audio", "text")[modality] + "_mask"
    batch = _batch()
    rows = torch.arange(16, 64)
    before = batch[name][rows].clone()
    apply_damage(batch, batch["quality"], modality, "short", rows, torch.Generator().manual_seed(3))
    after = batch[name][rows]
    assert (after <= before).all() and (after.sum(dim=1) < before.sum(dim=1)).all() and (after.sum(dim=1) > 0).all()
    kept_positions = torch.cumsum(before, dim=1) <= after.sum(dim=1, keepdim=True)
    assert torch.equal(after, before * kept_positions.float())
