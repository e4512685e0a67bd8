"""Probe an upload with PyAV before any decoding: container, streams, duration, frame size.

Only containers and codecs on the allow-lists below are decoded (415 otherwise): a
decoder the service never meant to expose is attack surface, not a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import UnsupportedMediaError

# PyAV demuxer names (a name like "mov,mp4,m4a,3gp,3g2,mj2" is split on commas)
CONTAINERS = frozenset({"mov", "mp4", "m4a", "matroska", "webm", "wav", "flac", "ogg", "mp3", "aac"})
# decoder names as PyAV reports them
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "mpeg4"})
AUDIO_CODECS = frozenset(
    {
        "aac",
        "mp3",
        "mp3float",
        "opus",
        "libopus",
        "vorbis",
        "flac",
        "alac",
        "pcm_s16le",
        "pcm_s24le",
        "pcm_s32le",
        "pcm_f32le",
        "pcm_f64le",
        "pcm_u8",
        "pcm_s16be",
        "pcm_mulaw",
        "pcm_alaw",
    }
)


@dataclass(frozen=True)
class MediaInfo:
    container: str
    duration_s: float | None
    audio_codec: str | None
    video_codec: str | None
    width: int | None
    height: int | None
    sample_rate: int | None = None
    streams: int = 0

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    @property
    def has_video(self) -> bool:
        return self.video_codec is not None

    @property
    def frame_pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


def probe(path: Path, field: str, max_streams: int = 16) -> MediaInfo:
    """Container and first audio/video stream of an upload (``field`` names it in errors).

    UnsupportedMediaError (415) when PyAV cannot read it, the container or the first
    stream's codec is not on the allow-list, or it holds more than ``max_streams`` streams.
    """
    import av

    try:
        with av.open(str(path)) as container:
            demuxers = set(container.format.name.split(","))
            if not demuxers & CONTAINERS:
                raise UnsupportedMediaError(
                    f"the {field} upload is a {container.format.name.split(',')[0]} file; "
                    f"accepted containers: {', '.join(sorted(CONTAINERS))}"
                )
            streams = len(container.streams)
            if streams > max_streams:
                raise UnsupportedMediaError(f"the {field} upload has {streams} streams; at most {max_streams}")
            audio = container.streams.audio[0] if container.streams.audio else None
            video = container.streams.video[0] if container.streams.video else None
            audio_codec = _codec(audio, AUDIO_CODECS, field)
            video_codec = _codec(video, VIDEO_CODECS, field)
            duration = container.duration / 1_000_000 if container.duration else None
            return MediaInfo(
                container=container.format.name,
                duration_s=duration,
                audio_codec=audio_codec,
                video_codec=video_codec,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
                sample_rate=audio.codec_context.sample_rate if audio is not None else None,
                streams=streams,
            )
    except (av.error.FFmpegError, ValueError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise UnsupportedMediaError(
            f"the {field} upload is not a media file PyAV can read ({type(exc).__name__})"
        ) from exc


def _codec(stream, allowed: frozenset[str], field: str) -> str | None:
    if stream is None:
        return None
    context = stream.codec_context
    name = context.name if context is not None else None
    if name not in allowed:
        raise UnsupportedMediaError(
            f"the {field} upload's {stream.type} codec {name or 'unknown'} is not accepted; "
            f"accepted: {', '.join(sorted(allowed))}"
        )
    return name
