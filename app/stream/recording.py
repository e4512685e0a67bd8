"""A live session's media as it arrives, written into the request's private folder in the
forms /predict reads: the JPEG frames remuxed, untouched, into a Matroska MJPEG video on
their own timestamps, the PCM into a WAV file, the caption segments into a JSON segment
transcript. At the end it is a ``ReceivedForm`` like an upload's, so the session's final
answer is the pipeline's answer for the media as streamed, by construction.

Every check a frame fails raises the ServiceError the session closes with; the folder is
the pipeline's and is removed on every path.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from app.config import Settings
from app.errors import BadRequestError, PayloadTooLargeError
from app.stream.protocol import SAMPLE_BYTES, SAMPLE_RATE, ConfigMessage, TranscriptMessage, jpeg_size, too_large
from app.upload.form import ReceivedFile, ReceivedForm

# the video file's clock: milliseconds are finer than any camera's frame step
VIDEO_TIME_BASE = Fraction(1, 1000)


@dataclass(frozen=True)
class StreamLimits:
    """What one session may send; made from the settings, the one source."""

    max_seconds: float  # of media on the session clock
    max_frame_bytes: int  # one binary frame
    max_fps: float  # video frames closer than 1 / max_fps are refused
    max_file_bytes: int  # the video file, the audio file (the /predict upload cap)
    max_transcript_bytes: int
    max_frame_pixels: int
    idle_timeout_s: float  # no message for this long ends the session
    max_ahead_s: float  # a live session's media may run this far ahead of the wall clock

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        return cls(
            max_seconds=settings.stream_max_seconds,
            max_frame_bytes=settings.stream_max_frame_bytes,
            max_fps=settings.stream_max_fps,
            max_file_bytes=settings.max_upload_bytes,
            max_transcript_bytes=settings.max_transcript_bytes,
            max_frame_pixels=settings.max_frame_pixels,
            idle_timeout_s=settings.stream_idle_timeout_s,
            max_ahead_s=settings.stream_max_ahead_s,
        )

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


class StreamRecording:
    """The session's media so far, in ``folder``; ``form()`` once the client sent ``end``."""

    def __init__(self, folder: Path, config: ConfigMessage, limits: StreamLimits) -> None:
        self.folder, self.config, self.limits = folder, config, limits
        self._video = None  # the open container and its stream, from the first frame on
        self._video_stream = None
        self._video_bytes = 0
        self._video_size: tuple[int, int] | None = None
        self._last_timestamp: float | None = None
        self._step_ms = 100
        self._wav: wave.Wave_write | None = None
        self._audio_bytes = 0
        self._segments: list[dict[str, object]] = []
        self._transcript_bytes = 0

    # -- media in ----------------------------------------------------------------------------

    @property
    def audio_seconds(self) -> float:
        return self._audio_bytes / (SAMPLE_BYTES * SAMPLE_RATE)

    @property
    def audio_path(self) -> Path:
        """The session's WAV (valid at every frame: its header follows the data)."""
        return self.folder / "stream-audio.wav"

    @property
    def video_seconds(self) -> float:
        return self._last_timestamp or 0.0

    def add_audio(self, pcm: bytes) -> None:
        if self.config.audio is None:
            raise BadRequestError("an audio frame came, but the config announced no audio")
        if len(pcm) % SAMPLE_BYTES:
            raise BadRequestError("an audio frame must hold whole 16-bit samples")
        if self._audio_bytes + len(pcm) > self.limits.max_file_bytes:
            raise too_large("the session's audio", self.limits.max_file_bytes)
        if (self._audio_bytes + len(pcm)) / (SAMPLE_BYTES * SAMPLE_RATE) > self.limits.max_seconds:
            raise self._too_long()
        if self._wav is None:
            self._wav = wave.open(str(self.folder / "stream-audio.wav"), "wb")  # noqa: SIM115 (closed in close())
            self._wav.setnchannels(1)
            self._wav.setsampwidth(SAMPLE_BYTES)
            self._wav.setframerate(SAMPLE_RATE)
        self._wav.writeframes(pcm)  # the header follows: the file so far is a valid WAV (``snapshot``)
        self._audio_bytes += len(pcm)

    def add_video(self, timestamp: float, jpeg: bytes) -> float:
        """Record one picture; the time the video file holds for it (whole milliseconds)."""
        import av

        if self.config.video is None:
            raise BadRequestError("a video frame came, but the config announced no video")
        size = jpeg_size(jpeg)
        if size[0] * size[1] > self.limits.max_frame_pixels:
            raise PayloadTooLargeError(f"a video frame has more than {self.limits.max_frame_pixels} pixels")
        if self._video_size is not None and size != self._video_size:
            raise BadRequestError("the video frames changed size during the session")
        if timestamp > self.limits.max_seconds:
            raise self._too_long()
        if self._last_timestamp is not None:
            step = timestamp - self._last_timestamp
            if step <= 0:
                raise BadRequestError("video frame timestamps must increase")
            if step < 1.0 / self.limits.max_fps - 1e-3:
                raise BadRequestError(f"video frames came more often than {self.limits.max_fps:g} per second")
            self._step_ms = max(1, round(1000 * step))
        if self._video_bytes + len(jpeg) > self.limits.max_file_bytes:
            raise too_large("the session's video", self.limits.max_file_bytes)
        if self._video is None:
            self._video = av.open(str(self.folder / "stream-video.mkv"), "w", format="matroska")
            stream = self._video.add_stream("mjpeg", rate=10)
            stream.width, stream.height = size
            stream.pix_fmt = "yuvj420p"
            stream.time_base = VIDEO_TIME_BASE
            self._video_stream, self._video_size = stream, size
        packet = av.Packet(jpeg)
        packet.stream = self._video_stream
        packet.time_base = VIDEO_TIME_BASE
        pts = round(timestamp / VIDEO_TIME_BASE)
        packet.pts = packet.dts = pts
        packet.duration = self._step_ms
        self._video.mux(packet)
        self._video_bytes += len(jpeg)
        self._last_timestamp = timestamp
        return float(pts * VIDEO_TIME_BASE)

    def add_segment(self, segment: TranscriptMessage) -> None:
        if not self.config.captions:
            raise BadRequestError("a transcript segment came, but the config announced no captions")
        if segment.end < segment.start:
            raise BadRequestError("a transcript segment ends before it starts")
        if segment.start > self.limits.max_seconds:
            raise self._too_long()
        if self._segments and segment.start < float(self._segments[-1]["start"]):  # type: ignore[arg-type]
            raise BadRequestError("transcript segments must come in the order they start")
        entry = {"speaker": segment.speaker, "start": segment.start, "end": segment.end, "text": segment.text}
        self._transcript_bytes += len(json.dumps(entry).encode("utf-8")) + 2
        if self._transcript_bytes > self.limits.max_transcript_bytes:
            raise too_large("the session's transcript", self.limits.max_transcript_bytes)
        self._segments.append(entry)

    # -- the end -----------------------------------------------------------------------------

    def form(self) -> ReceivedForm:
        """The session as /predict's form: files in the folder, options as fields."""
        self.close()
        form = ReceivedForm()
        video, audio = self.folder / "stream-video.mkv", self.folder / "stream-audio.wav"
        if self._video_bytes:
            form.files["video"] = ReceivedFile(video.stat().st_size, "mkv", "video/x-matroska", path=video)
        if self._audio_bytes:
            form.files["audio"] = ReceivedFile(audio.stat().st_size, "wav", "audio/wav", path=audio)
        if self._segments:
            data = json.dumps(self._segments).encode("utf-8")
            form.files["transcript"] = ReceivedFile(len(data), "json", "application/json", data=data)
        if self.config.participant_speaker is not None:
            form.fields["participant_speaker"] = self.config.participant_speaker
        form.fields["include_timeline"] = "true" if self.config.include_timeline else "false"
        return form

    @property
    def covered_seconds(self) -> float:
        """How far the media reach on the session clock: the audio and captions ``snapshot`` holds,
        and the pictures (tracked as they come for the estimates)."""
        captions = float(self._segments[-1]["end"]) if self._segments else 0.0  # type: ignore[arg-type]
        return max(self.audio_seconds, captions, self.video_seconds)

    def snapshot(self, heard: list[dict[str, object]] | None = None) -> ReceivedForm:
        """The audio and captions so far as a form (the video is tracked as it comes, apart);
        ``heard``: segments recognised live from the audio, in the captions' place."""
        form = ReceivedForm()
        audio = self.folder / "stream-audio.wav"
        if self._audio_bytes:
            form.files["audio"] = ReceivedFile(audio.stat().st_size, "wav", "audio/wav", path=audio)
        segments = self._segments or heard or []
        if segments:
            data = json.dumps(segments).encode("utf-8")
            form.files["transcript"] = ReceivedFile(len(data), "json", "application/json", data=data)
        if self.config.participant_speaker is not None:
            form.fields["participant_speaker"] = self.config.participant_speaker
        form.fields["include_timeline"] = "true"
        form.audio_cache = self.folder / "stream-audio.mel"  # in the private folder, removed with it
        return form

    def close(self) -> None:
        """Close the open files (the folder itself is removed by its owner)."""
        if self._video is not None:
            self._video.close()
            self._video = None
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def _too_long(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(f"the session is longer than its cap of {self.limits.max_seconds:g} s")
