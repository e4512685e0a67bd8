"""Synthetic participants: PHQ-8 item scores and degradation profiles.

Item scores come from one latent severity per person plus item-specific propensities,
so items correlate as they do in real data, and the total follows DAIC-WOZ's shape
roughly (mean about 7, 3 in 10 at 10 or above; ``describe_totals`` reports it): many low
totals, a long tail up to 24.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.contract import PHQ8_ITEMS

# item offsets on the logit scale: sleep, energy and mood are endorsed most often,
# psychomotor and self-worth least (as in PHQ-8 population data)
ITEM_OFFSET = np.array([-0.3, -0.1, 0.3, 0.5, -0.4, -0.6, -0.3, -1.0])


@dataclass(frozen=True)
class Degradation:
    """What goes wrong in one synthetic session (all off for a clean one)."""

    audio_noise_snr_db: float | None = None  # white + babble-like noise at this SNR
    face_missing_ratio: float = 0.0  # fraction of frames with no face, in runs
    landmark_jitter: float = 1.0  # multiplier of the landmark noise
    drop_text_words: float = 0.0  # fraction of words lost (ASR-like damage)


@dataclass(frozen=True)
class Participant:
    pid: int
    items: np.ndarray  # (8,) int, PHQ8_ITEMS order
    duration_s: float
    degradation: Degradation

    @property
    def total(self) -> int:
        return int(self.items.sum())


def draw_items(rng: np.random.Generator) -> np.ndarray:
    """Eight item scores 0-3 from a latent severity (Gamma: many low, a long tail)."""
    severity = rng.gamma(shape=1.1, scale=1.15)
    logits = ITEM_OFFSET + 1.35 * (severity - 1.85) + rng.normal(0.0, 0.8, size=len(PHQ8_ITEMS))
    p = 1.0 / (1.0 + np.exp(-logits))
    return rng.binomial(3, p).astype(np.int64)


def draw_degradation(rng: np.random.Generator, rate: float) -> Degradation:
    """With probability ``rate`` each, independent damage to each modality."""
    return Degradation(
        audio_noise_snr_db=float(rng.uniform(-5.0, 15.0)) if rng.random() < rate else None,
        face_missing_ratio=float(rng.uniform(0.2, 0.9)) if rng.random() < rate else float(rng.uniform(0, 0.05)),
        landmark_jitter=float(rng.uniform(3.0, 8.0)) if rng.random() < rate else 1.0,
        drop_text_words=float(rng.uniform(0.3, 0.7)) if rng.random() < rate else 0.0,
    )


def draw_participants(
    n: int,
    seed: int,
    min_s: float = 45.0,
    max_s: float = 170.0,
    degradation_rate: float = 0.2,
    first_pid: int = 0,
) -> list[Participant]:
    rng = np.random.default_rng(seed)
    people = []
    for k in range(n):
        people.append(
            Participant(
                pid=first_pid + k,
                items=draw_items(rng),
                duration_s=float(rng.uniform(min_s, max_s)),
                degradation=draw_degradation(rng, degradation_rate),
            )
        )
    return people


def describe_totals(people: list[Participant]) -> dict[str, float]:
    totals = np.array([p.total for p in people], dtype=float)
    return {
        "n": float(totals.size),
        "mean": float(totals.mean()),
        "sd": float(totals.std()),
        "share_ge_10": float((totals >= 10).mean()),
        "max": float(totals.max()),
    }
