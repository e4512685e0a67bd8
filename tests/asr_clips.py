"""Spoken test clips for speech-to-text and the word error rate to score them.

The sentences are spoken by espeak-ng (tests.media.speech_signal, 16 kHz) at 150 words a
minute; the tests and bench/speech_to_text.py share them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from tests.media import speech_signal

SAMPLE_RATE = 16000
WPM = 150
# everyday and interview-like sentences: the first six written for these tests, the other sixteen
# for a first look at the model; every one written is kept, also those the model mishears
SENTENCES = (
    "I have not been sleeping well lately, and most mornings I feel tired.",
    "My sister called me on Sunday and we talked about her new job.",
    "When the weather is nice I like to walk by the river after work.",
    "Lately I find it hard to concentrate when I read the newspaper.",
    "We moved to this city three years ago because of my job.",
    "I usually cook dinner at home and watch television with my husband.",
    "The weather was cold and grey when we left the house this morning.",
    "My brother works at a small bakery near the river, and he starts before dawn.",
    "I have not been sleeping well lately, and most days I feel tired.",
    "We talked about the garden, the new school, and the price of bread.",
    "She told me that the train to the city was late again on Tuesday.",
    "Reading a good book in the evening helps me relax after work.",
    "The doctor asked how often I go for a walk, and I said almost never.",
    "Last summer we drove along the coast and stopped in every little town.",
    "Sometimes I call my mother on Sunday, but we do not talk for long.",
    "The meeting lasted two hours and nobody could agree on anything.",
    "I would like to learn to play the piano one day, if I find the time.",
    "Our neighbours have a large dog that barks whenever someone walks past.",
    "He fixed the broken window himself because the shop was closed.",
    "In the afternoon the children played football in the park until it rained.",
    "I try to cook something simple for dinner, usually rice and vegetables.",
    "Most of my friends moved away after university, so I feel a bit lonely.",
)


def words(text: str) -> list[str]:
    """Lower-case words: letters, digits and apostrophes; punctuation dropped."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words): Levenshtein over words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref_word != hyp_word))
    return row[len(hyp)], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    errors, total = word_errors(reference, hypothesis)
    return errors / max(total, 1)


def spoken(text: str) -> np.ndarray:
    return speech_signal(text, sample_rate=SAMPLE_RATE, wpm=WPM)


def spoken_clip(sentences: Sequence[str], gap_s: float = 0.5) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The sentences one after another, ``gap_s`` of silence after each; each one's (start_s, end_s)."""
    gap = np.zeros(round(gap_s * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    position = 0
    for sentence in sentences:
        signal = spoken(sentence)
        spans.append((position / SAMPLE_RATE, (position + len(signal)) / SAMPLE_RATE))
        parts += [signal, gap]
        position += len(signal) + len(gap)
    return np.concatenate(parts), spans
