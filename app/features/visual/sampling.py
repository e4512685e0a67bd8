"""Video sampling: the first video stream of a file decoded with PyAV, turned upright as its
display matrix says, and sampled at a fixed rate."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from app.probe import video_stream

# a later segment seeks this far before its first tick (a frame or two of slack for rounding)
SEEK_MARGIN_S = 0.1


class VisualDecodeError(ValueError):
    """The file holds no decodable video stream."""


def quarter_turns(rotation_deg: float) -> int:
    """Counter-clockwise quarter turns (0-3) nearest a display rotation in degrees.

    FFmpeg's convention (``VideoFrame.rotation``, ``av_display_rotation_get``): the angle by
    which the display matrix turns the coded picture counter-clockwise to show it. A phone
    held upright typically stores a landscape picture with -90 (or 90 for the other hand).
    Odd angles are rounded to the nearest quarter turn, as FFmpeg's own autorotate does.
    """
    if not math.isfinite(rotation_deg):
        return 0
    return round(rotation_deg / 90.0) % 4


def upright(rgb: np.ndarray, rotation_deg: float) -> np.ndarray:
    """The decoded picture as it is meant to be seen: turned counter-clockwise by ``rotation_deg``."""
    turns = quarter_turns(rotation_deg)
    # np.rot90 turns counter-clockwise for positive k (rows down, columns right); contiguous for cv2
    return rgb if turns == 0 else np.ascontiguousarray(np.rot90(rgb, turns))


def _stated_rotation(frame, stream) -> float:
    """The frame's display-matrix rotation; else a legacy ``rotate`` tag on the stream (clockwise degrees).

    FFmpeg turns an mp4/mov track matrix into display-matrix side data (``VideoFrame.rotation``);
    a ``rotate`` tag survives only as a plain tag (e.g. Matroska's ROTATE), which FFmpeg no
    longer applies, but a tool wrote it meaning the same turn.
    """
    rotation = frame.rotation  # 0 when the frame carries no display matrix
    if rotation:
        return float(rotation)
    tag = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), None)
    try:
        return -float(tag) if tag is not None else 0.0
    except ValueError:
        return 0.0


class VideoSampler:
    """The first video stream, sampled at ``rate_hz``: for tick k, the frame whose time is nearest k / rate.

    Iterating yields one RGB uint8 array per tick (the same object when a frame serves
    several ticks; None for ticks past the last frame). Every frame is decoded (codecs are
    sequential; a later segment from the keyframe before it) but only sampled frames are
    converted to RGB and turned upright (the display matrix, or a legacy ``rotate`` tag; before
    any face detection, which expects upright faces). After iteration: ``duration_s`` (of the
    video stream, or of the part kept under ``max_seconds``), ``ticks``, ``cut`` (True when
    max_seconds shortened the video) and ``rotation_deg`` (the counter-clockwise turn applied,
    a multiple of 90 in (-180, 180]).
    """

    def __init__(
        self,
        path: Path,
        rate_hz: float,
        max_seconds: float | None = None,
        first_tick: int = 0,
        end_tick: int | None = None,
    ) -> None:
        """``first_tick``/``end_tick``: yield only ticks in [first_tick, end_tick) (one segment of
        a video analysed in parts; decoding starts at the keyframe before ``first_tick``). ``duration_s``
        and ``ticks`` are then only known to the segment that reaches the end."""
        self.path, self.rate_hz, self.max_seconds = Path(path), float(rate_hz), max_seconds
        self.first_tick, self.end_tick = int(first_tick), end_tick
        self.duration_s = 0.0
        self.ticks = 0
        self.cut = False
        self.decoded_frames = 0
        self.seeked_to_s: float | None = None  # where a later segment's decoding began (None: the start)
        self.rotation_deg = 0

    def __iter__(self) -> Iterator[np.ndarray | None]:
        import av  # local: keeps the module importable for the pure geometry

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise VisualDecodeError(f"cannot open the video: {exc}") from exc
        with container:
            stream = video_stream(container)  # never an attached picture (cover art)
            if stream is None:
                raise VisualDecodeError("no video stream")
            stream.thread_type = "AUTO"
            stated = _stated_duration(container, stream)
            limit = self.max_seconds if self.max_seconds is not None else math.inf
            # no ticks past the stated duration either: T = round(duration * rate)
            tick_limit = min(limit, stated) if stated else limit
            max_ticks = round(tick_limit * self.rate_hz) if math.isfinite(tick_limit) else math.inf
            previous: tuple[float, av.VideoFrame] | None = None
            rgb_cache: tuple[av.VideoFrame, np.ndarray] | None = None  # the last converted frame and its RGB
            frame_step = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / self.rate_hz
            last_time = 0.0

            def rgb_of(frame: av.VideoFrame) -> np.ndarray:
                nonlocal rgb_cache
                if rgb_cache is None or rgb_cache[0] is not frame:
                    turns = quarter_turns(_stated_rotation(frame, stream))
                    self.rotation_deg = (0, 90, 180, -90)[turns]
                    rgb_cache = (frame, upright(frame.to_ndarray(format="rgb24"), 90 * turns))
                return rgb_cache[1]

            try:
                # inside the try: a seek or a first frame that fails is a decode error like any other
                frames, origin, tick = self._frames(container, stream)
                for frame in frames:
                    self.decoded_frames += 1
                    time = frame.time if frame.time is not None else self.decoded_frames * frame_step
                    if origin is None:
                        origin = time
                    time -= origin
                    if previous is not None:
                        step = time - previous[0]
                        if step > 0:
                            frame_step = step
                        # ticks nearer the previous frame than this one belong to it
                        midpoint = (previous[0] + time) / 2.0
                        while tick / self.rate_hz < midpoint and tick < max_ticks:
                            if self.end_tick is not None and tick >= self.end_tick:
                                return  # this segment's ticks are all out
                            if tick >= self.first_tick:
                                yield rgb_of(previous[1])
                            tick += 1
                    if time >= limit:
                        self.cut = True
                        break
                    previous, last_time = (time, frame), time
            except av.error.FFmpegError as exc:
                if previous is None:
                    raise VisualDecodeError(f"the video could not be decoded: {exc}") from exc
                # a damaged tail: keep what decoded
            if previous is None:
                raise VisualDecodeError("the video stream holds no frames")
            end = last_time + frame_step
            duration = stated if stated is not None and stated > 0 else end
            duration = min(duration, limit)
            self.cut = self.cut or (self.max_seconds is not None and stated is not None and stated > limit)
            total = round(duration * self.rate_hz)
            while tick < total and (self.end_tick is None or tick < self.end_tick):
                # the last frame covers its own display time (half a tick of slack); later ticks have none
                if tick >= self.first_tick:
                    yield rgb_of(previous[1]) if tick / self.rate_hz < end + 0.5 / self.rate_hz else None
                tick += 1
            self.ticks, self.duration_s = tick, duration

    def _frames(self, container, stream) -> tuple[Iterator, float | None, int]:
        """The decoded frames to walk, the stream's time origin (None: the first frame's time) and
        the first tick to count from.

        A later segment (``first_tick`` > 0) seeks to the keyframe before its first tick, so it
        does not decode the earlier part of the video at all. The frames from that keyframe on
        are the frames one pass decodes, so every tick from ``first_tick`` on gets the same
        picture; when the seek cannot be trusted (no timestamps, an error, or it lands past the
        target) the segment decodes from the start instead.
        """
        import av

        frames = container.decode(stream)
        ahead_s = self.first_tick / self.rate_hz - SEEK_MARGIN_S  # where to seek, after the origin
        if ahead_s <= 0:
            return frames, None, 0
        first = next(frames, None)
        if first is None or first.time is None or stream.time_base is None:
            return itertools.chain([first] if first is not None else [], frames), None, 0
        origin = float(first.time)
        target = origin + ahead_s
        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            resumed = container.decode(stream)
            landed = next(resumed, None)
        except av.error.FFmpegError:
            landed = None
        if landed is None or landed.time is None or not origin <= landed.time <= target:
            container.seek(0, stream=stream, backward=True, any_frame=False)
            return container.decode(stream), None, 0
        self.seeked_to_s = float(landed.time) - origin
        # count from the first tick at or after the keyframe: later ticks go to the same
        # frames as in one pass (the nearest one), earlier ones belong to frames not decoded
        return itertools.chain([landed], resumed), origin, math.ceil(self.seeked_to_s * self.rate_hz)


def stated_ticks(path: Path, rate_hz: float, max_seconds: float | None = None) -> int | None:
    """The ticks a ``VideoSampler`` will yield for ``path`` as its container states them (None:
    no stated duration, or it cannot be read): what splitting a video into segments needs."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = video_stream(container)
            stated = _stated_duration(container, stream) if stream is not None else None
    except (av.error.FFmpegError, OSError):
        return None
    if not stated:
        return None
    limit = min(stated, max_seconds) if max_seconds is not None else stated
    return round(limit * rate_hz)


# MPEG program and transport streams have no index: FFmpeg estimates their stream durations
# (a DVD camcorder's 10.04 s of frames is stated as 9.66 s), so the decoded frames decide
_INDEXLESS_CONTAINERS = frozenset({"mpeg", "mpegts", "mpegvideo"})


def _stated_duration(container, stream) -> float | None:
    """The video stream's duration from the container (not the audio's), or None when unstated."""
    if set(container.format.name.split(",")) & _INDEXLESS_CONTAINERS:
        return None
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    # webm/mkv often state only the container duration (which may include a longer audio track)
    return None
