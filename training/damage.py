"""Window-space damage for training: one modality of some windows made unreliable, as real
inputs arrive (a face lost or frozen, noise bursts, a short recording, text from someone
else), with the quality figures moved the way the serve-time extractors would move them.

The corpus already holds sessions damaged at the source (training.synth.participants
Degradation: landmark noise, faces missing, noisy audio, lost words); these add damages per
window and per batch, so every epoch sees fresh ones. The fused answer's loss on a damaged
window is what teaches the attention to move weight away from the damaged modality.
"""

from __future__ import annotations

import torch

VISUAL, AUDIO, TEXT = 0, 1, 2
DAMAGES = {
    VISUAL: ("face_lost", "face_frozen", "landmark_noise", "short"),
    AUDIO: ("noise", "bursts", "short"),
    TEXT: ("utterances_lost", "words_lost", "other_person", "short"),
}


def _runs(n: int, length: int, share: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(n, length) bool: True over runs covering about ``share`` (n,) of each row (3-s-ish runs)."""
    blocks = max(1, length // 30)
    per_block = torch.rand(n, blocks, generator=generator) < share.unsqueeze(1)
    return per_block.repeat_interleave(-(-length // blocks), dim=1)[:, :length]


def _shorten(mask: torch.Tensor, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Keep only the first 5-40 % of each row's present steps (a recording that ends early)."""
    keep = 0.05 + 0.35 * torch.rand(rows.numel(), generator=generator)
    present = mask[rows].sum(dim=1)
    limit = torch.clamp((present * keep).ceil(), min=1.0)
    order = torch.cumsum(mask[rows], dim=1)
    return mask[rows] * (order <= limit.unsqueeze(1)).float()


def damage_batch(batch: dict[str, torch.Tensor], rate: float, generator: torch.Generator) -> torch.Tensor:
    """Damage one present modality in about ``rate`` of the windows that have two or more, in
    place; returns (B,) the damaged modality per window (-1: none)."""
    present = batch["modality_mask"]
    n = present.shape[0]
    damaged = torch.full((n,), -1, dtype=torch.long)
    eligible = (present.sum(dim=1) >= 2) & (torch.rand(n, generator=generator) < rate)
    rows = torch.nonzero(eligible).flatten()
    if rows.numel() == 0:
        return damaged
    choice = torch.multinomial(present[rows], 1, generator=generator).squeeze(1)
    damaged[rows] = choice
    quality = batch["quality"]
    for modality, kinds in DAMAGES.items():
        mine = rows[choice == modality]
        if mine.numel() == 0:
            continue
        kind = torch.randint(len(kinds), (mine.numel(),), generator=generator)
        for k, name in enumerate(kinds):
            sel = mine[kind == k]
            if sel.numel():
                apply_damage(batch, quality, modality, name, sel, generator)
    return damaged


def apply_damage(
    batch: dict[str, torch.Tensor],
    quality: torch.Tensor,
    modality: int,
    kind: str,
    rows: torch.Tensor,
    generator: torch.Generator,
) -> None:
    """Damage ``modality`` of the windows ``rows`` with ``kind`` (one of DAMAGES[modality]), in place."""
    if modality == VISUAL:
        frames, mask = batch["visual"], batch["visual_mask"]
        if kind in ("face_lost", "short"):
            before = mask[rows].sum(dim=1).clamp(min=1.0)
            if kind == "face_lost":
                share = 0.5 + 0.4 * torch.rand(rows.numel(), generator=generator)
                lost = _runs(rows.numel(), mask.shape[1], share, generator)
                kept = mask[rows] * (~lost).float()
            else:
                kept = _shorten(mask, rows, generator)
            # a window with no face left would be an absent modality, not a damaged one: keep its last tenth
            tail = mask[rows] * (torch.arange(mask.shape[1]) >= 0.9 * mask.shape[1]).float()
            kept = torch.where(kept.sum(dim=1, keepdim=True) == 0, tail, kept)
            kept = torch.where(kept.sum(dim=1, keepdim=True) == 0, mask[rows], kept)
            mask[rows] = kept
            frames[rows] = frames[rows] * kept.unsqueeze(-1)
            if kind == "face_lost":  # the extractor's face_found_ratio falls with the frames lost
                quality[rows, VISUAL, 0] = quality[rows, VISUAL, 0] * kept.sum(dim=1) / before
        elif kind == "face_frozen":
            first = torch.argmax(mask[rows], dim=1)
            still = frames[rows, first].unsqueeze(1).expand(-1, frames.shape[1], -1)
            frames[rows] = still * mask[rows].unsqueeze(-1)
        else:  # landmark noise: a shaky, low-resolution track
            scale = 0.02 + 0.08 * torch.rand(1, generator=generator)
            noise = torch.randn(frames[rows].shape, generator=generator) * scale
            frames[rows] = (frames[rows] + noise) * mask[rows].unsqueeze(-1)
            # the tracker's confidence falls on such a track (0.94 -> 0.66 at 8x jitter at the source)
            quality[rows, VISUAL, 1] = quality[rows, VISUAL, 1] * (1.0 - 3.0 * scale)
    elif modality == AUDIO:
        frames, mask = batch["audio"], batch["audio_mask"]
        if kind == "noise":
            level = 0.5 + 0.5 * torch.rand(rows.numel(), 1, 1, generator=generator)
            noise = torch.randn(frames[rows].shape, generator=generator)
            frames[rows] = ((1 - level) * frames[rows] + level * noise) * mask[rows].unsqueeze(-1)
            quality[rows, AUDIO, 1] = quality[rows, AUDIO, 1] * (1 - level.view(-1))  # the SNR figure falls
        elif kind == "bursts":
            share = 0.2 + 0.3 * torch.rand(rows.numel(), generator=generator)
            burst = _runs(rows.numel(), mask.shape[1], share, generator)
            loud = 2.0 + torch.randn(frames[rows].shape, generator=generator)
            frames[rows] = torch.where(burst.unsqueeze(-1), loud, frames[rows]) * mask[rows].unsqueeze(-1)
        else:
            kept = _shorten(mask, rows, generator)
            mask[rows] = kept
            frames[rows] = frames[rows] * kept.unsqueeze(-1)
    else:
        emb, mask = batch["text"], batch["text_mask"]
        if kind == "other_person":
            # utterances of another window of the batch (most likely another person)
            donors = torch.randint(emb.shape[0], (rows.numel(),), generator=generator)
            emb[rows] = emb[donors] * mask[rows].unsqueeze(-1)
        elif kind == "words_lost":
            # ASR-like loss of words: each sentence vector drifts towards an unrelated direction
            # and the mean words per utterance falls with the share lost
            lost = 0.3 + 0.4 * torch.rand(rows.numel(), 1, 1, generator=generator)
            drift = torch.randn(emb[rows].shape, generator=generator)
            drift = drift / drift.norm(dim=-1, keepdim=True) * emb[rows].norm(dim=-1, keepdim=True)
            emb[rows] = ((1 - lost) * emb[rows] + lost * drift) * mask[rows].unsqueeze(-1)
            quality[rows, TEXT, 1] = quality[rows, TEXT, 1] * (1 - lost.view(-1))
        else:
            before = mask[rows].sum(dim=1).clamp(min=1.0)
            if kind == "utterances_lost":
                lost = torch.rand(mask[rows].shape, generator=generator) < 0.7
                kept = mask[rows] * (~lost).float()
            else:
                kept = _shorten(mask, rows, generator)
            kept = torch.where(kept.sum(dim=1, keepdim=True) == 0, mask[rows], kept)
            mask[rows] = kept
            emb[rows] = emb[rows] * kept.unsqueeze(-1)
            quality[rows, TEXT, 0] = quality[rows, TEXT, 0] * kept.sum(dim=1) / before  # utterance_fill
