"""Generated spoken interviews for speaker separation: a clinician asks short questions, the
patient answers at length, each in their own espeak-ng voice, with pauses between turns or,
in a conversational variant, questions that cut in and "mm hmm" over the answers.

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


# a listener's back-channel, said over the patient's answer a little quieter than a turn
BACKCHANNEL = "mm hmm"
BACKCHANNEL_GAIN = 0.6


def interview(
    clinician_voice: str,
    patient_voice: str,
    exchanges: int = 5,
    gap_s: float = 0.7,
    answer_sentences: int = 2,
    overlap_s: float = 0.0,
    backchannels: bool = False,
) -> SpokenInterview:
    """``exchanges`` question-answer pairs; the patient's answers are SENTENCES in order.

    ``overlap_s`` > 0: each next question starts that long before the answer ends (the
    clinician cuts in, both voices mixed). ``backchannels``: the clinician says "mm hmm" over
    the middle of every answer. Overlapping speech is in ``turns`` for both speakers."""
    events: list[tuple[int, np.ndarray, int, str]] = []  # (start sample, signal, who, words)
    position = 0
    asked, answered = [], []
    gap = round(gap_s * SAMPLE_RATE)
    for k in range(exchanges):
        question = QUESTIONS[k % len(QUESTIONS)]
        answer = " ".join(SENTENCES[(answer_sentences * k + j) % len(SENTENCES)] for j in range(answer_sentences))
        asked.append(question)
        answered.append(answer)
        spoken_question = _voice(question, clinician_voice)
        events.append((position, spoken_question, CLINICIAN, question))
        position += spoken_question.size + gap
        spoken_answer = _voice(answer, patient_voice)
        events.append((position, spoken_answer, PATIENT, answer))
        if backchannels:
            nod = BACKCHANNEL_GAIN * _voice(BACKCHANNEL, clinician_voice)
            events.append((position + (spoken_answer.size - nod.size) // 2, nod, CLINICIAN, BACKCHANNEL))
        position += spoken_answer.size
        last = k == exchanges - 1
        position += gap if last or overlap_s <= 0 else -min(round(overlap_s * SAMPLE_RATE), spoken_answer.size // 2)
    events.sort(key=lambda event: event[0])
    samples = np.zeros(max(start + signal.size for start, signal, _, _ in events) + gap, np.float32)
    for start, signal, _, _ in events:
        samples[start : start + signal.size] += signal
    turns = [(start / SAMPLE_RATE, (start + signal.size) / SAMPLE_RATE, who) for start, signal, who, _ in events]
    said = [words for _, _, _, words in events]
    return SpokenInterview(samples, turns, " ".join(answered), " ".join(asked), said)


def attribution_accuracy(frame_labels: np.ndarray, turns: list[tuple[float, float, int]]) -> float:
    """Share of the true speech frames given to their own speaker, each true speaker matched to
    a different separated one (the best such matching): two voices merged into one score at
    most the larger one's share. Frames where two people speak at once belong to nobody and are
    left out, and so are frames the separation calls silence (voice activity's business: a
    turn holds the pauses between its words)."""
    from itertools import permutations

    speaking = np.zeros(max(frame_labels.size, round(max((b for _, b, _ in turns), default=0) * 100) + 1), int)
    for a, b, _ in turns:
        speaking[round(a * 100) : round(b * 100)] += 1
    people = sorted({w for _, _, w in turns})
    found = sorted({int(x) for x in frame_labels if x >= 0})
    labels_of: dict[int, np.ndarray] = {}
    for who in people:
        frames = np.concatenate([np.arange(round(a * 100), round(b * 100)) for a, b, w in turns if w == who])
        frames = frames[speaking[frames] == 1]
        labels = frame_labels[frames[frames < frame_labels.size]]
        labels_of[who] = labels[labels >= 0]
    total = sum(x.size for x in labels_of.values())
    slots = found + [-2] * len(people)  # -2: a true speaker matched to no separated one
    best = max(
        sum(int((labels_of[who] == label).sum()) for who, label in zip(people, choice, strict=True))
        for choice in permutations(slots, len(people))
    )
    return best / max(total, 1)
