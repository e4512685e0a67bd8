"""A live session's audio waiting for speech recognition, and the words heard so far.

Without captions the running estimates get their words from the audio: every ``EVERY_S`` of
new audio, everything after the last complete stretch of speech goes to a worker
(``app.speech.live.hear_new_speech``), which recognises the stretches a pause has ended and
says how much of the audio it is done with; the rest waits for the next call. The worker
reads those samples from the session's own WAV file in its private folder, so no audio is
held here: this only counts samples. The words become timed segments of the session's one
voice, read by the running estimates as captions would be. Past ``MAX_WAITING_S`` of audio
waiting (a worker far behind, or a client far faster than real time) live recognition stops
for the session, said in a warning and in the estimates; the final answer's speech stage
still hears the whole call.
"""

from __future__ import annotations

from app.speech.live import LiveWords
from app.stream.protocol import SAMPLE_RATE

EVERY_S = 5.0
MAX_WAITING_S = 90.0
SPEAKER = "Participant"  # the session's one voice (config: the patient's side of the call)


class LiveSpeech:
    def __init__(self, every_s: float = EVERY_S, max_waiting_s: float = MAX_WAITING_S) -> None:
        self.every_samples = round(every_s * SAMPLE_RATE)
        self.max_waiting_samples = round(max_waiting_s * SAMPLE_RATE)
        self.segments: list[dict[str, object]] = []  # the words heard so far, as caption segments
        self.stopped: str | None = None
        self._done = 0  # samples done with (before the last open stretch)
        self._received = 0  # samples of the session's audio so far
        self._sent_until: int | None = None  # the end of the call in flight (None: none)

    @property
    def heard_s(self) -> float:
        """The audio done with, in seconds from the session's start."""
        return self._done / SAMPLE_RATE

    def add(self, samples: int) -> str | None:
        """``samples`` more of the session's audio were recorded; the reason live recognition
        stopped, when it stops now."""
        if self.stopped is not None:
            return None
        self._received += samples
        if self._received - self._done > self.max_waiting_samples:
            self.stop("the live speech recognition fell behind the stream")
            return self.stopped
        return None

    def ready(self, now: bool = False) -> bool:
        """A call is due: enough new audio (``now``: half a second) and none in flight."""
        if self.stopped is not None or self._sent_until is not None:
            return False
        return self._received - self._done >= (SAMPLE_RATE // 2 if now else self.every_samples)

    def next_call(self) -> tuple[int, int]:
        """(first sample, end sample) of the audio waiting, for the call now made."""
        self._sent_until = self._received
        return self._done, self._received

    def heard(self, words: LiveWords) -> None:
        """The call's answer: its words kept, the audio it is done with passed."""
        if self._sent_until is not None:
            self._done = min(self._done + words.consumed_samples, self._sent_until)
        self._sent_until = None
        self.segments += [{"speaker": SPEAKER, "start": a, "end": b, "text": text} for a, b, text in words.utterances]

    def stop(self, reason: str) -> None:
        self.stopped = reason
        self._sent_until = None
