"""Speech recognition of a live session's audio as it comes, for its running estimates.

A session without captions sends its new audio (everything after the last complete stretch)
to a worker every few seconds; there the stretches of speech (the speech stage's own voice
activity rule, pauses under ``CUT_PAUSE_S`` bridged) that a pause has ended are recognised,
and the rest waits for the next call: a word is never cut by the arrival of a frame. A
stretch still open after ``MAX_OPEN_S`` of audio is recognised anyway (the recogniser cuts a
long input at its quietest points). The words are timed on the session clock.

No speaker separation runs here: the live audio is one voice's side of the call as the
protocol's config says (``channels: 1``, the patient's side or the room). With the voice
encoder, each stretch of ``VOICE_PRINT_S`` or more also gets its voice print, so the session
can say when another voice speaks (``app.stream.monitor.VoiceMonitor``). The final answer
runs the whole speech stage (separation, the patient's turns, recognition) on the whole call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.runtime import ModelRuntime
from app.speech.recognition import SpeechRecogniser
from app.speech.turns import PIECE_S, voice_activity
from app.speech.voices import FRAME_S, SAMPLE_RATE, embed_segments, encoder_mel

MIN_TURN_S = 0.5  # as the speech stage: a shorter stretch holds no word worth the call
# a pause this long ends a stretch: between sentences, not inside a word (voice activity
# already bridges pauses under 0.3 s); a turn's 1-s gap would leave fluent speech unheard
CUT_PAUSE_S = 0.5
MAX_OPEN_S = 15.0  # an open stretch this long is recognised without waiting for its pause
VOICE_PRINT_S = PIECE_S  # the speech stage's voice prints are of pieces this long


@dataclass(frozen=True)
class LiveWords:
    """What a call heard: timed utterances (start s, end s, text), and where the next call starts."""

    utterances: tuple[tuple[float, float, str], ...]
    consumed_samples: int  # the samples of the call's audio done with: the next call starts after them
    confidence: float | None  # mean token probability over the utterances
    seconds: float  # of speech recognised
    # (start s, end s, unit voice print) of each complete stretch long enough for one
    voices: tuple[tuple[float, float, tuple[float, ...]], ...] = ()


def _stretches(speech: np.ndarray) -> list[tuple[int, int]]:
    """Runs of speech frames, joined across pauses shorter than ``CUT_PAUSE_S``."""
    runs: list[tuple[int, int]] = []
    gap = round(CUT_PAUSE_S / FRAME_S)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], speech.astype(np.int8), [0]))))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if runs and start - runs[-1][1] < gap:
            runs[-1] = (runs[-1][0], int(end))
        else:
            runs.append((int(start), int(end)))
    return runs


def hear_new_speech(
    samples: np.ndarray,
    start_s: float,
    recogniser: SpeechRecogniser,
    last: bool = False,
    voice_encoder: ModelRuntime | None = None,
) -> LiveWords:
    """Recognise the complete stretches of speech in ``samples`` (float32 mono 16 kHz from
    ``start_s`` on the session clock); ``last``: the call is over, so every stretch is complete.
    With ``voice_encoder``, the voice print of each complete stretch of ``VOICE_PRINT_S`` or more."""
    signal = np.asarray(samples, np.float32)
    duration = signal.shape[0] / SAMPLE_RATE
    if duration < MIN_TURN_S:
        return LiveWords((), signal.shape[0] if last else 0, None, 0.0)
    stretches = [(a * FRAME_S, b * FRAME_S) for a, b in _stretches(voice_activity(encoder_mel(signal)))]
    closed_before = duration if last or duration >= MAX_OPEN_S else duration - CUT_PAUSE_S
    complete = [(a, b) for a, b in stretches if b <= closed_before]
    still_open = [a for a, b in stretches if b > closed_before]
    heard_until = still_open[0] if still_open else max(closed_before, 0.0)
    consumed = min(signal.shape[0], round(heard_until * SAMPLE_RATE))
    spans = [(a, b) for a, b in complete if b - a >= MIN_TURN_S]
    timed = recogniser.transcribe_segments(signal, spans) if spans else []
    utterances, tokens, weighted = [], 0, 0.0
    for piece in timed:
        text = piece.text.strip()
        if text:
            utterances.append((round(start_s + piece.start_s, 3), round(start_s + piece.end_s, 3), text))
        if piece.recognised.confidence is not None:
            tokens += piece.recognised.tokens
            weighted += piece.recognised.confidence * piece.recognised.tokens
    voiced = [(a, b) for a, b in complete if b - a >= VOICE_PRINT_S] if voice_encoder is not None else []
    prints = embed_segments(signal, voiced, voice_encoder) if voiced and voice_encoder is not None else []
    voices = tuple(
        (round(start_s + a, 3), round(start_s + b, 3), tuple(float(x) for x in p))
        for (a, b), p in zip(voiced, prints, strict=True)
        if np.any(p)
    )
    return LiveWords(
        voices=voices,
        utterances=tuple(utterances),
        consumed_samples=signal.shape[0] if last else consumed,
        confidence=weighted / tokens if tokens else None,
        seconds=float(sum(b - a for a, b in spans)),
    )
