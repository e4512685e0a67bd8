"""The fusion network, after Wei et al. (ECCV-W 2022), sub-attentional ConvBiLSTM.

Three branches (visual, audio, text): Conv1d -> BatchNorm -> ReLU -> max-pool ->
BiLSTM -> masked temporal attention pooling -> one embedding per modality. Eight PHQ-8
item heads, each with its own attention over the modalities present (a masked softmax
whose score sees the embedding and the modality's quality figures, plus a gate that
multiplies a modality's weight by quality ** exponent with exponent >= 0.5, so weight
always moves away from a degraded modality), each giving a distribution over score
bins. Expected item scores sum to the total; item order is kept (the reference's scoring
sorted the items before summing, losing it).

From version 3 (NetworkConfig.evidence_attention, quality_floor, quality_in_keys): the
gate also weighs how much of the window each modality fills (face frames found, audio
frames, utterances: the masks' means), its smallest exponent is 1, and the learned score
sees only the embedding and the modality's id, so it cannot learn to undo the gate: with
everything else equal, lower quality or less evidence always means less weight.

From version 4 (NetworkConfig.score_bound): the learned score is a per-item, per-modality
constant plus bound * tanh(input-dependent score / bound). Version 3 showed why: its learned
score rose on a damaged embedding (noisy audio, a face lost in 70 % of frames) by about as
much as the gate took away, so those weights hardly moved. Bounded, a damaged input can raise
its modality's weight by at most exp(2 * bound), and the gate's cut stands.

Also from version 4 (NetworkConfig.liveliness_scale): a visual liveliness figure, the masked
temporal SD of the visual features in the window as sd / (sd + scale), joins the gate, so a
frozen video (a stalled call, a looped picture) loses its weight whatever its quality says.
The audio and text columns of that figure are 1.

From version 5 (NetworkConfig.steadiness_centre, consensus_scale), two more gate figures.
Steadiness: the face track's roughness (``masked_roughness``, about 1 for a track that jitters
from frame to frame, 0.3-0.7 for the synthetic faces' real motion) as sigmoid((centre -
roughness) / width); version 4 kept three quarters of the visual weight on a track with 8x the
landmark jitter, whose confidence figure falls only from 0.94 to 0.66. Consensus: each
modality's own estimate of the total (its embedding through the item heads alone), its gap to
the mean of the other present modalities' estimates weighted by what the other gate figures
give them, as 1 / (1 + (gap / scale) ** 2); a
transcript of someone else has the quality figures of the patient's own, and only its
disagreement with the face and the voice tells it apart. The figure is a fixed function of the
estimates (no gradient flows through it), so the branches cannot learn to agree to keep weight.

Everything here exports to ONNX: masks are inputs, no packed sequences, no Python
control flow that depends on data.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from app.contract import MODALITIES, FeatureSpec, NetworkConfig, OutputSemantics

# large enough to zero a softmax term in float32, small enough not to overflow
_MASK_NEG = 1e4
# the attention score of a modality gains exponent * log(quality + eps) per quality figure,
# exponent >= NetworkConfig.quality_floor
QUALITY_EPS = 0.05


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over ``dim`` where mask is 1; exactly 0 elsewhere and all-zero if nothing is on."""
    weights = torch.softmax(scores + (mask - 1.0) * _MASK_NEG, dim=dim) * mask
    return weights / (weights.sum(dim=dim, keepdim=True) + 1e-6)


def masked_variance(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B, D): each feature's variance over the present time steps."""
    m = mask.unsqueeze(-1)
    n = mask.sum(dim=1).clamp(min=1.0).view(-1, 1)
    mean = (x * m).sum(dim=1) / n
    return (((x - mean.unsqueeze(1)) * m) ** 2).sum(dim=1) / n


def masked_temporal_sd(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B,): the SD over present time steps, averaged over the features."""
    return torch.sqrt(masked_variance(x, mask) + 1e-12).mean(dim=1)


def masked_roughness(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B,): the variance of the changes between present neighbouring steps
    over twice the variance of the steps, averaged over the features: about 1 for white noise
    (independent steps), near 0 for a smooth movement, 0 for a frozen track."""
    both = mask[:, 1:] * mask[:, :-1]
    steps = (x[:, 1:] - x[:, :-1]) * both.unsqueeze(-1)
    step_var = (steps**2).sum(dim=1) / both.sum(dim=1).clamp(min=1.0).view(-1, 1)
    return (step_var / (2.0 * masked_variance(x, mask) + 1e-6)).mean(dim=1)


class Branch(nn.Module):
    def __init__(self, in_dim: int, cfg: NetworkConfig, pool: int, input_scale: float = 1.0) -> None:
        super().__init__()
        self.input_scale = input_scale
        self.pool = pool
        self.conv = nn.Conv1d(in_dim, cfg.conv_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm1d(cfg.conv_channels)
        self.lstm = nn.LSTM(
            cfg.conv_channels,
            cfg.lstm_hidden,
            num_layers=cfg.lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,
        )
        self.attn = nn.Sequential(nn.Linear(2 * cfg.lstm_hidden, 64), nn.Tanh(), nn.Linear(64, 1))
        self.out = nn.Sequential(nn.Linear(2 * cfg.lstm_hidden, cfg.embed_dim), nn.ReLU())

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, T, D), mask: (B, T) -> embedding (B, E), temporal weights (B, T // pool)
        h = self.conv((x * mask.unsqueeze(-1) * self.input_scale).transpose(1, 2))
        h = torch.relu(self.norm(h))
        m = mask.unsqueeze(1)
        if self.pool > 1:
            h = nn.functional.max_pool1d(h, self.pool)
            m = nn.functional.max_pool1d(m, self.pool)
        m = m.squeeze(1)
        h, _ = self.lstm(h.transpose(1, 2))
        weights = masked_softmax(self.attn(h).squeeze(-1), m, dim=1)
        pooled = torch.bmm(weights.unsqueeze(1), h).squeeze(1)
        return self.out(pooled), weights


class FusionNet(nn.Module):
    def __init__(self, features: FeatureSpec, cfg: NetworkConfig, semantics: OutputSemantics) -> None:
        super().__init__()
        self.n_items = len(semantics.items)
        self.n_modalities = len(MODALITIES)
        n_quality = features.n_quality()
        self.branches = nn.ModuleList(
            [
                Branch(features.visual.dim, cfg, cfg.pool_visual),
                Branch(features.audio.dim, cfg, cfg.pool_audio),
                # unit-norm sentence vectors have tiny components; bring them to unit scale
                Branch(features.text.dim, cfg, cfg.pool_text, input_scale=math.sqrt(features.text.dim)),
            ]
        )
        self.evidence_attention = cfg.evidence_attention
        self.quality_floor = cfg.quality_floor
        n_evidence = sum(
            1
            for on in (
                cfg.evidence_attention,
                cfg.liveliness_scale is not None,
                cfg.steadiness_centre is not None,
                cfg.consensus_scale is not None,
            )
            if on
        )
        self.liveliness_scale = cfg.liveliness_scale
        self.steadiness_centre = cfg.steadiness_centre
        self.steadiness_width = cfg.steadiness_width
        self.consensus_scale = cfg.consensus_scale
        self.quality_in_keys = cfg.quality_in_keys
        # the consensus figure comes after the other figures' weights, so the keys never see it
        n_key_figures = n_quality + n_evidence - (1 if cfg.consensus_scale is not None else 0)
        key_dim = cfg.embed_dim + (n_key_figures if cfg.quality_in_keys else 0) + self.n_modalities
        # one modality-attention per item head: score = v_h . tanh(W_h [e_m; q_m; id_m] + b_h)
        self.attn_w = nn.Parameter(torch.randn(self.n_items, key_dim, cfg.head_hidden) / math.sqrt(key_dim))
        self.attn_b = nn.Parameter(torch.zeros(self.n_items, 1, cfg.head_hidden))
        self.attn_v = nn.Parameter(torch.randn(self.n_items, cfg.head_hidden) / math.sqrt(cfg.head_hidden))
        # quality gate: per item and quality field, weight ~ quality ** (quality_floor + softplus(g))
        self.quality_gain = nn.Parameter(torch.zeros(self.n_items, n_quality + n_evidence))
        self.score_bound = cfg.score_bound
        if cfg.score_bound is not None:
            self.attn_prior = nn.Parameter(torch.zeros(self.n_items, self.n_modalities))
        self.head_w1 = nn.Parameter(
            torch.randn(self.n_items, cfg.embed_dim, cfg.head_hidden) / math.sqrt(cfg.embed_dim)
        )
        self.head_b1 = nn.Parameter(torch.zeros(self.n_items, cfg.head_hidden))
        self.head_w2 = nn.Parameter(torch.randn(self.n_items, cfg.head_hidden, semantics.n_bins) * 0.01)
        self.head_b2 = nn.Parameter(torch.zeros(self.n_items, semantics.n_bins))
        self.dropout = nn.Dropout(cfg.dropout)
        self.register_buffer("bin_centres", torch.tensor(semantics.bin_centres, dtype=torch.float32))
        self.register_buffer("modality_ids", torch.eye(self.n_modalities))

    def forward(
        self,
        visual: torch.Tensor,
        visual_mask: torch.Tensor,
        audio: torch.Tensor,
        audio_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        modality_mask: torch.Tensor,
        quality: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        logits, time_weights, modality_weights, _ = self.forward_logits(
            visual, visual_mask, audio, audio_mask, text, text_mask, modality_mask, quality
        )
        probs = torch.softmax(logits, dim=-1)
        scores = probs @ self.bin_centres
        return (probs, scores, modality_weights, *time_weights)

    def forward_logits(
        self,
        visual: torch.Tensor,
        visual_mask: torch.Tensor,
        audio: torch.Tensor,
        audio_mask: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        modality_mask: torch.Tensor,
        quality: torch.Tensor,
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Item logits (B, H, K), temporal weights, modality weights (B, H, M), embeddings (B, M, E)."""
        embeddings, time_weights = [], []
        for k, (branch, x, m) in enumerate(
            zip(self.branches, (visual, audio, text), (visual_mask, audio_mask, text_mask), strict=True)
        ):
            e, w = branch(x, m * modality_mask[:, k : k + 1])
            embeddings.append(e)
            time_weights.append(w)
        emb = torch.stack(embeddings, dim=1)  # (B, M, E)
        batch = emb.shape[0]
        ids = self.modality_ids.unsqueeze(0).expand(batch, -1, -1)
        if self.evidence_attention:
            # the share of the window each modality fills: a short or sparse input is less evidence
            evidence = (
                torch.stack([m.mean(dim=1) for m in (visual_mask, audio_mask, text_mask)], dim=1) * modality_mask
            )  # (B, M)
            quality = torch.cat([quality, evidence.unsqueeze(-1)], dim=-1)
        if self.liveliness_scale is not None:
            sd = masked_temporal_sd(visual, visual_mask)  # (B,)
            lively = sd / (sd + self.liveliness_scale)
            others = torch.ones_like(modality_mask[:, 1:])
            column = torch.cat([lively.unsqueeze(1), others], dim=1) * modality_mask  # (B, M)
            quality = torch.cat([quality, column.unsqueeze(-1)], dim=-1)
        if self.steadiness_centre is not None:
            rough = masked_roughness(visual, visual_mask)  # (B,)
            steady = torch.sigmoid((self.steadiness_centre - rough) / self.steadiness_width)
            column = torch.cat([steady.unsqueeze(1), torch.ones_like(modality_mask[:, 1:])], dim=1) * modality_mask
            quality = torch.cat([quality, column.unsqueeze(-1)], dim=-1)
        keys = torch.cat([emb, quality, ids] if self.quality_in_keys else [emb, ids], dim=-1)  # (B, M, K)
        hidden = torch.tanh(torch.einsum("bmk,hka->bhma", keys, self.attn_w) + self.attn_b.unsqueeze(0))
        scores = torch.einsum("bhma,ha->bhm", hidden, self.attn_v)  # (B, H, M)
        if self.score_bound is not None:
            scores = self.attn_prior.unsqueeze(0) + self.score_bound * torch.tanh(scores / self.score_bound)
        # a structural guarantee, not only a learned one: lower quality always means less weight
        exponents = self.quality_floor + nn.functional.softplus(self.quality_gain)  # (H, Q)
        n_figures = quality.shape[-1]
        scores = scores + torch.einsum("bmq,hq->bhm", torch.log(quality + QUALITY_EPS), exponents[:, :n_figures])
        if self.consensus_scale is not None:
            # the weights every other figure gives say whose estimates to compare with
            reliability = masked_softmax(scores, modality_mask.unsqueeze(1), dim=-1).mean(dim=1)  # (B, M)
            agree = self.consensus(emb, modality_mask, reliability)
            scores = scores + torch.log(agree + QUALITY_EPS).unsqueeze(1) * exponents[:, n_figures].view(1, -1, 1)
        weights = masked_softmax(scores, modality_mask.unsqueeze(1), dim=-1)
        fused = torch.einsum("bhm,bme->bhe", weights, emb)  # (B, H, E)
        return self.heads(fused), time_weights, weights, emb

    def consensus(self, emb: torch.Tensor, modality_mask: torch.Tensor, reliability: torch.Tensor) -> torch.Tensor:
        """(B, M, E), (B, M), (B, M) -> (B, M): how well each present modality's own estimate of the
        total agrees with the other present ones', each of those counted by its ``reliability``
        (its weight before this figure; 1: no others). Counted by weight, a modality the gate has
        already set aside (noise, a frozen face) is no reference: its estimate of a damaged input
        sits near the population mean and would otherwise favour whichever other estimate is
        nearer the mean."""
        own = (torch.softmax(self.unimodal_logits(emb), dim=-1) @ self.bin_centres).sum(dim=-1)  # (B, M)
        r = reliability * modality_mask
        others_weight = r.sum(dim=1, keepdim=True) - r
        others = ((own * r).sum(dim=1, keepdim=True) - own * r) / others_weight.clamp(min=1e-6)
        has_others = (modality_mask.sum(dim=1, keepdim=True) - modality_mask > 0).float()
        gap = (own - others).abs() * has_others
        return (modality_mask / (1.0 + (gap / self.consensus_scale) ** 2)).detach()

    def heads(self, fused: torch.Tensor) -> torch.Tensor:
        """Per-item MLPs: (B, H, E) -> logits (B, H, K)."""
        h = torch.relu(torch.einsum("bhe,hea->bha", self.dropout(fused), self.head_w1) + self.head_b1)
        return torch.einsum("bha,hak->bhk", self.dropout(h), self.head_w2) + self.head_b2

    def unimodal_logits(self, emb: torch.Tensor) -> torch.Tensor:
        """Each modality's embedding alone through the same heads: (B, M, E) -> (B, M, H, K).

        Training only: it keeps every embedding predictive on its own and tells the
        attention which modality predicted each item best.
        """
        batch, n_mod, dim = emb.shape
        per_item = emb.unsqueeze(2).expand(batch, n_mod, self.n_items, dim).reshape(batch * n_mod, self.n_items, dim)
        return self.heads(per_item).reshape(batch, n_mod, self.n_items, -1)


INPUT_NAMES = ("visual", "visual_mask", "audio", "audio_mask", "text", "text_mask", "modality_mask", "quality")
OUTPUT_NAMES = (
    "item_probs",
    "item_scores",
    "modality_weights",
    "visual_time_weights",
    "audio_time_weights",
    "text_time_weights",
)


def soft_labels(items: torch.Tensor, semantics: OutputSemantics, centres: torch.Tensor) -> torch.Tensor:
    """Gaussian soft labels over the bins around each true item score: (B, 8) -> (B, 8, K)."""
    d = centres.view(1, 1, -1) - items.unsqueeze(-1).float()
    p = torch.exp(-0.5 * (d / semantics.label_sigma) ** 2)
    return p / p.sum(dim=-1, keepdim=True)
