"""Probe an upload with PyAV before any decoding: what streams it has, how long it is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import UnsupportedMediaError


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration_s: float | None
    audio_codec: str | None
    video_codec: str | None
    width: int | None
    height: int | None

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None


def probe(path: Path) -> MediaInfo:
    """Container and first audio/video stream; UnsupportedMediaError when it is not media."""
    import av

    try:
        with av.open(str(path)) as container:
            audio = container.streams.audio[0] if container.streams.audio else None
            video = container.streams.video[0] if container.streams.video else None
            duration = container.duration / 1_000_000 if container.duration else None
            return MediaInfo(
                container=container.format.name,
                duration_s=duration,
                audio_codec=audio.codec_context.name if audio is not None else None,
                video_codec=video.codec_context.name if video is not None else None,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
            )
    except (av.error.FFmpegError, ValueError, IndexError) as exc:
        raise UnsupportedMediaError(f"not a media container PyAV can read ({type(exc).__name__})") from exc
