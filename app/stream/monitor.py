"""Conditions worth a live ``warning`` while a session runs: silence and clipping in its
audio, no face in its video.

Pure and cheap: ``AudioMonitor.feed`` takes the PCM blocks as they come, ``FaceMonitor.feed``
the tracked ticks' face flags, and each returns the warnings they start. A condition is
judged over the last ``SPAN_S`` seconds, warned about once when it begins and again only
after it has cleared.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

SAMPLE_RATE = 16000
SPAN_S = 10.0  # a condition must hold this long (the "no face for 10 s" scale)
CHECK_EVERY_S = 1.0
SILENCE_DBFS = -55.0  # below this RMS over the span: nothing is being heard
CLIP_LEVEL = 32700  # samples at or beyond this magnitude are clipped (full scale 32767)
CLIP_SHARE = 0.005  # more than this share of clipped samples over the span

SILENCE = f"no sound for {SPAN_S:.0f} s: is the microphone muted or the patient away?"
CLIPPING = "the audio is clipping (too loud for the microphone): the audio branch will be less reliable"


class AudioMonitor:
    """Silence and clipping over the last ``SPAN_S`` s of a 16-kHz s16le mono stream."""

    def __init__(self) -> None:
        self._blocks: deque[tuple[int, float, int]] = deque()  # samples, sum of squares, clipped
        self._samples = self._since_check = 0
        self._active: set[str] = set()

    def feed(self, pcm: bytes) -> list[str]:
        samples = np.frombuffer(pcm, dtype="<i2")
        if not samples.size:
            return []
        wide = samples.astype(np.float64)
        self._blocks.append(
            (samples.size, float(np.dot(wide, wide)), int(np.count_nonzero(np.abs(wide) >= CLIP_LEVEL)))
        )
        self._samples += samples.size
        self._since_check += samples.size
        span = round(SPAN_S * SAMPLE_RATE)
        while self._blocks and self._samples - self._blocks[0][0] >= span:
            self._samples -= self._blocks.popleft()[0]
        if self._since_check < CHECK_EVERY_S * SAMPLE_RATE or self._samples < span:
            return []
        self._since_check = 0
        energy = sum(b[1] for b in self._blocks)
        clipped = sum(b[2] for b in self._blocks)
        rms = np.sqrt(energy / self._samples) / 32768.0
        level_db = 20.0 * np.log10(max(rms, 1e-12))
        now = {SILENCE} if level_db < SILENCE_DBFS else set()
        if clipped / self._samples > CLIP_SHARE:
            now.add(CLIPPING)
        started = [w for w in (SILENCE, CLIPPING) if w in now and w not in self._active]
        self._active = now
        return started


NO_FACE = f"no face for {SPAN_S:.0f} s: is the camera covered, or the patient out of view?"


def person_changed(at_s: float) -> str:
    """The warning for a change of the person on camera (the tracker's appearance check)."""
    return (
        f"the person on camera changed at {at_s:.0f} s: is someone else in front of the camera? "
        "The estimate is about whoever is on camera, not only the patient"
    )


class FaceMonitor:
    """No face over the last ``SPAN_S`` s of a session's tracked video ticks, once per episode."""

    def __init__(self, rate_hz: float) -> None:
        self._span = round(SPAN_S * rate_hz)
        self._without = 0  # consecutive ticks with no face, up to now
        self._warned = False

    def feed(self, valid: Sequence[bool]) -> list[str]:
        """The next ticks' face-found flags, in order; the warnings they start."""
        started = []
        for found in valid:
            if found:
                self._without, self._warned = 0, False
                continue
            self._without += 1
            if self._without >= self._span and not self._warned:
                self._warned = True
                started.append(NO_FACE)
        return started


# the speech stage's rule for one voice (app.speech.turns): prints this alike are one person
SAME_VOICE = 0.65
REFERENCE_VOICE_S = 10.0  # the first this much printed speech is the session's voice
OTHER_VOICE_S = 5.0  # another voice must speak this long (in a row) to be warned about


def other_voice(at_s: float) -> str:
    return (
        f"another voice has been speaking since {at_s:.0f} s: is the patient still the one talking? "
        "The running estimate hears whoever speaks"
    )


class VoiceMonitor:
    """A voice other than the session's first one, speaking for ``OTHER_VOICE_S`` in a row.

    The first ``REFERENCE_VOICE_S`` of printed speech make the reference (their mean print);
    each later stretch is compared with it as the speech stage compares voices. Warned once
    per episode; the reference voice speaking again ends it."""

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self._reference_s = 0.0
        self._reference: np.ndarray | None = None
        self._other_s = 0.0
        self._other_from: float | None = None
        self._warned = False

    def feed(self, voices: Sequence[tuple[float, float, Sequence[float]]]) -> list[str]:
        started = []
        for start, end, values in voices:
            voice = np.asarray(values, dtype=np.float64)
            if self._reference is None:
                self._sum = voice * (end - start) if self._sum is None else self._sum + voice * (end - start)
                self._reference_s += end - start
                if self._reference_s >= REFERENCE_VOICE_S:
                    self._reference = self._sum / np.linalg.norm(self._sum)
                continue
            if float(voice @ self._reference) / max(float(np.linalg.norm(voice)), 1e-9) >= SAME_VOICE:
                self._other_s, self._other_from, self._warned = 0.0, None, False
                continue
            self._other_from = start if self._other_from is None else self._other_from
            self._other_s += end - start
            if self._other_s >= OTHER_VOICE_S and not self._warned:
                self._warned = True
                started.append(other_voice(self._other_from))
        return started
