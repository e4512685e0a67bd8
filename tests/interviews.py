"""Generated spoken interviews for speaker separation: a clinician asks short questions, the
patient answers at length, each in their own espeak-ng voice, with pauses between turns.

Voices were picked by measurement (tests/test_speaker_turns.py records how alike each pair
sounds to the voice encoder): espeak-ng's plain variants (``en-us``, ``+m3``, ``en-gb+f2``)
sound nearly alike to it, so the pairs mix base voices and variants that it tells apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.asr_clips import SENTENCES

SAMPLE_RATE = 16000
QUESTIONS = (
    "How have you been sleeping?",
    "Tell me more about that.",
    "And how is your appetite?",
    "What do you do in the evenings?",
    "How is work going for you?",
    "Do you see your friends often?",
)
# (clinician voice, patient voice): male/female, female/male, male/female across accents
VOICE_PAIRS = (
    ("en-us+m3", "en-us+f4"),
    ("en-gb-x-rp+m7", "en+anika"),
    ("en+Andy", "en+Alicia"),
    ("en-us+f4", "en-us+m3"),
)
PATIENT, CLINICIAN = 0, 1


@dataclass(frozen=True)
class SpokenInterview:
    samples: np.ndarray  # 16 kHz mono float32
    turns: list[tuple[float, float, int]]  # (start_s, end_s, PATIENT or CLINICIAN)
    patient_text: str
    clinician_text: str
    said: list[str]  # each turn's words, in the order of ``turns``

    def spans(self, who: int) -> list[tuple[float, float]]:
        return [(a, b) for a, b, w in self.turns if w == who]

    def seconds(self, who: int) -> float:
        return sum(b - a for a, b in self.spans(who))


def _voice(text: str, voice: str) -> np.ndarray:
    from tests.media import speech_signal

    return speech_signal(text, sample_rate=SAMPLE_RATE, voice=voice, wpm=160)


def interview(
    clinician_voice: str, patient_voice: str, exchanges: int = 5, gap_s: float = 0.7, answer_sentences: int = 2
) -> SpokenInterview:
    """``exchanges`` question-answer pairs; the patient's answers are SENTENCES in order."""
    gap = np.zeros(round(gap_s * SAMPLE_RATE), np.float32)
    parts: list[np.ndarray] = []
    turns: list[tuple[float, float, int]] = []
    position = 0
    asked, answered, said = [], [], []
    for k in range(exchanges):
        question = QUESTIONS[k % len(QUESTIONS)]
        answer = " ".join(SENTENCES[(answer_sentences * k + j) % len(SENTENCES)] for j in range(answer_sentences))
        asked.append(question)
        answered.append(answer)
        for who, text, voice in ((CLINICIAN, question, clinician_voice), (PATIENT, answer, patient_voice)):
            signal = _voice(text, voice)
            turns.append((position / SAMPLE_RATE, (position + signal.size) / SAMPLE_RATE, who))
            said.append(text)
            parts += [signal, gap]
            position += signal.size + gap.size
    return SpokenInterview(np.concatenate(parts), turns, " ".join(answered), " ".join(asked), said)


def frame_purity(frame_labels: np.ndarray, turns: list[tuple[float, float, int]]) -> float:
    """Share of the labelled speech frames inside true turns whose label is their speaker's usual one."""
    right = total = 0
    for who in {w for _, _, w in turns}:
        frames = np.concatenate([np.arange(round(a * 100), round(b * 100)) for a, b, w in turns if w == who])
        labels = frame_labels[frames[frames < frame_labels.size]]
        labels = labels[labels >= 0]
        if labels.size:
            right += int((labels == np.bincount(labels).argmax()).sum())
            total += labels.size
    return right / max(total, 1)
