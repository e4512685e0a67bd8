"""A live session's video as it comes: which picture each analysis tick gets, and the parts
the worker pool tracks while the call runs, so running estimates see the face too.

The tick rule is the video sampler's (``VideoSampler``, app/features/visual/sampling.py):
tick k, at k / rate after the first picture, gets the picture nearest it, so a picture's
ticks are known once the next picture came (they end at the midpoint between the two). The
times are the ones the recording writes (milliseconds), so every tick gets the same picture
here as in the final answer's decoding of the recorded file. Only pictures that own a tick
are kept, and only until their part is handed to a worker.

Parts: once ``part_ticks`` ticks are decided and no part is being tracked, they all go to a
worker as one ``LiveVideoJob`` that resumes the tracker where the previous part left it
(``TrackerState``: the crop it follows, the person it analyses), so the joined segments are
the rows one pass over the recorded video gives. Pictures waiting for a worker are capped in
bytes: past the cap the live tracking stops for the session (said in a warning and in every
later estimate) and the final answer still analyses the whole recorded video.
"""

from __future__ import annotations

from app.features.visual.tracking import TrackedSegment, TrackerState

# a part of this much video goes to a worker: short, so an estimate waits little for the
# part in flight; a worker that falls behind gets the longer part that waited meanwhile
PART_S = 1.0
MAX_WAITING_BYTES = 32 << 20  # pictures waiting for a worker, per session


class TickClock:
    """The sampler's nearest-picture rule, one picture at a time (times in increasing order)."""

    def __init__(self, rate_hz: float) -> None:
        self.rate_hz = float(rate_hz)
        self.next_tick = 0  # the first tick not yet given to a picture
        self._origin: float | None = None
        self._previous: float | None = None

    def add(self, time_s: float) -> int:
        """A picture at ``time_s``: how many ticks the picture before it owns (now decided)."""
        if self._origin is None:
            self._origin = time_s
        time_s -= self._origin
        owned = 0
        if self._previous is not None:
            midpoint = (self._previous + time_s) / 2.0
            while self.next_tick / self.rate_hz < midpoint:
                self.next_tick += 1
                owned += 1
        self._previous = time_s
        return owned


class LiveVideo:
    """The session's pictures -> parts to track -> the tracked segments so far."""

    def __init__(
        self,
        rate_hz: float,
        part_s: float = PART_S,
        max_waiting_bytes: int = MAX_WAITING_BYTES,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.part_ticks = max(1, round(part_s * rate_hz))
        self.max_waiting_bytes = max_waiting_bytes
        self.segments: list[TrackedSegment] = []
        self.stopped: str | None = None  # why live tracking stopped for this session
        self._clock = TickClock(rate_hz)
        self._last_picture: bytes | None = None
        self._waiting: list[bytes] = []  # one entry per decided tick not yet handed out
        self._waiting_bytes = 0
        self._first_waiting_tick = 0
        self._tracked_ticks = 0

    @property
    def decided_ticks(self) -> int:
        """Ticks whose picture is known (tracked, being tracked or waiting)."""
        return self._first_waiting_tick + len(self._waiting)

    @property
    def tracked_ticks(self) -> int:
        return self._tracked_ticks

    @property
    def tracked_s(self) -> float:
        """How far the tracked segments reach, in seconds from the first picture."""
        return self._tracked_ticks / self.rate_hz

    def add(self, time_s: float, jpeg: bytes) -> None:
        """The next picture, at its recorded time."""
        owned = self._clock.add(time_s)
        if self.stopped is None and self._last_picture is not None and owned:
            self._waiting += [self._last_picture] * owned  # one object for all its ticks
            self._waiting_bytes += len(self._last_picture)
            if self._waiting_bytes > self.max_waiting_bytes:
                self.stop("the live video analysis fell behind the stream")
        self._last_picture = jpeg

    def ready(self, now: bool = False) -> bool:
        """A part is due (``now``: any decided tick waits)."""
        return self.stopped is None and len(self._waiting) >= (1 if now else self.part_ticks)

    def next_part(self) -> tuple[int, tuple[bytes | None, ...], TrackerState | None]:
        """(first tick, a picture per tick, where to resume the tracker) of every decided tick not
        yet handed out; the part's segment must come back (``tracked``) before the next part."""
        part = (self._first_waiting_tick, tuple(self._waiting), self.segments[-1].end_state if self.segments else None)
        self._first_waiting_tick += len(self._waiting)
        self._waiting, self._waiting_bytes = [], 0
        return part

    def tracked(self, segment: TrackedSegment) -> None:
        """A part's segment came back (parts are tracked one at a time, in order)."""
        self.segments.append(segment)
        self._tracked_ticks = segment.first_tick + len(segment.valid)

    def stop(self, reason: str) -> None:
        self.stopped = reason
        self._waiting, self._waiting_bytes = [], 0
