"""A live session's audio waiting for speech recognition, and the words heard so far.

Without captions the running estimates get their words from the audio: every ``EVERY_S`` of
new audio, everything after the last complete turn goes to a worker
(``app.speech.live.hear_new_speech``), which recognises the turns a pause has ended and says
how much of the audio it is done with; the rest waits for the next call. The words become
timed segments of the session's one voice, read by the running estimates as captions would
be. Audio waiting is capped: past ``MAX_WAITING_S`` (a worker far behind, or a client far
faster than real time) live recognition stops for the session, said in a warning and in the
estimates; the final answer's speech stage still hears the whole call.
"""

from __future__ import annotations

from app.speech.live import LiveWords
from app.stream.protocol import SAMPLE_BYTES, SAMPLE_RATE

EVERY_S = 5.0
MAX_WAITING_S = 90.0
SPEAKER = "Participant"  # the session's one voice (config: the patient's side of the call)


class LiveSpeech:
    def __init__(self, every_s: float = EVERY_S, max_waiting_s: float = MAX_WAITING_S) -> None:
        self.every_bytes = round(every_s * SAMPLE_RATE) * SAMPLE_BYTES
        self.max_waiting_bytes = round(max_waiting_s * SAMPLE_RATE) * SAMPLE_BYTES
        self.segments: list[dict[str, object]] = []  # the words heard so far, as caption segments
        self.stopped: str | None = None
        self._waiting = bytearray()  # the audio after the last complete turn
        self._start_samples = 0  # where ``_waiting`` starts on the session clock
        self._sent = 0  # bytes of ``_waiting`` in the call being made (0: none)

    @property
    def heard_s(self) -> float:
        """The audio done with, in seconds from the session's start."""
        return self._start_samples / SAMPLE_RATE

    def add(self, pcm: bytes) -> str | None:
        """The next audio; the reason live recognition stopped, when it stops now."""
        if self.stopped is not None:
            return None
        self._waiting += pcm
        if len(self._waiting) > self.max_waiting_bytes:
            self.stop("the live speech recognition fell behind the stream")
            return self.stopped
        return None

    def ready(self, now: bool = False) -> bool:
        """A call is due: enough new audio (``now``: any) and none in flight."""
        if self.stopped is not None or self._sent:
            return False
        return len(self._waiting) >= (SAMPLE_BYTES * SAMPLE_RATE // 2 if now else self.every_bytes)

    def next_call(self) -> tuple[bytes, float]:
        """(the audio waiting, its start on the session clock) for the call now made."""
        self._sent = len(self._waiting)
        return bytes(self._waiting), self.heard_s

    def heard(self, words: LiveWords) -> None:
        """The call's answer: its words kept, the audio it is done with dropped."""
        consumed = min(words.consumed_samples * SAMPLE_BYTES, self._sent)
        del self._waiting[:consumed]
        self._start_samples += consumed // SAMPLE_BYTES
        self._sent = 0
        self.segments += [{"speaker": SPEAKER, "start": a, "end": b, "text": text} for a, b, text in words.utterances]

    def failed(self) -> None:
        self._sent = 0

    def stop(self, reason: str) -> None:
        self.stopped = reason
        self._waiting = bytearray()
        self._sent = 0
