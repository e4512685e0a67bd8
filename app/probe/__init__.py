"""Probe an upload with PyAV before any decoding: container, streams, duration, frame size.

Only containers and codecs on the allow-lists below are decoded (415 otherwise): a
decoder the service never meant to expose is attack surface, not a feature. The lists
hold what telehealth tools and phones really write; each entry is extended deliberately
and tested (tests/test_probe_formats.py). Attached pictures (an MP3's or M4A's cover art)
are not video: they are skipped, whatever their codec. Every audio track is listed, so
the speech stage can choose among them and say which it took.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.errors import UnsupportedMediaError

# PyAV demuxer names (a name like "mov,mp4,m4a,3gp,3g2,mj2" is split on commas)
# (3GP and 3G2 are read by the "mov" demuxer; "mpeg" is MPEG-PS, as DVD camcorders write it)
CONTAINERS = frozenset(
    {
        "mov", "mp4", "m4a", "matroska", "webm", "wav", "flac", "ogg", "mp3", "aac",
        "avi", "asf", "mpegts", "mpeg", "flv", "amr", "aiff", "caf", "w64",
    }
)  # fmt: skip
# decoder names as PyAV reports them
VIDEO_CODECS = frozenset(
    {
        "h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "mpeg4",
        "mjpeg", "mpeg1video", "mpeg2video", "msmpeg4", "msmpeg4v2", "wmv1", "wmv2", "wmv3", "vc1",
        "flv", "h263", "theora",
    }
)  # fmt: skip
AUDIO_CODECS = frozenset(
    {
        "aac", "mp3", "mp3float", "opus", "libopus", "vorbis", "flac", "alac",
        "ac3", "ac3_fixed", "eac3", "mp2", "mp2float", "wmav1", "wmav2",
        "amrnb", "amrwb", "libopencore_amrnb", "libopencore_amrwb",
        "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le", "pcm_u8", "pcm_s8",
        "pcm_s16be", "pcm_s24be", "pcm_s32be", "pcm_f32be", "pcm_f64be", "pcm_mulaw", "pcm_alaw",
    }
)  # fmt: skip


@dataclass(frozen=True)
class AudioTrackInfo:
    """One audio stream: ``index`` is its position among the file's audio streams (0-based)."""

    index: int
    codec: str | None  # None: its codec is not on the allow-list (then it is listed, never decoded)
    channels: int
    sample_rate: int | None
    duration_s: float | None
    language: str | None  # the container's language tag ("eng"), when it has one

    @property
    def name(self) -> str:
        return f"track {self.index + 1}"


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
    audio_tracks: tuple[AudioTrackInfo, ...] = ()

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
    """Container, every audio track and the first video stream of an upload (``field`` names it in errors).

    UnsupportedMediaError (415) when PyAV cannot read it, the container or the video
    stream's codec is not on the allow-list, no audio track's codec is (when it has audio
    and no usable video), or it holds more than ``max_streams`` streams.
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
            video = video_stream(container)
            video_codec = _codec(video, VIDEO_CODECS, field)
            tracks = tuple(_track(k, stream) for k, stream in enumerate(container.streams.audio))
            usable = [t for t in tracks if t.codec is not None]
            if tracks and not usable and video is None:
                _codec(container.streams.audio[0], AUDIO_CODECS, field)  # raises, naming the codec
            audio = container.streams.audio[usable[0].index] if usable else None
            duration = container.duration / 1_000_000 if container.duration else None
            return MediaInfo(
                container=container.format.name,
                duration_s=duration,
                audio_codec=usable[0].codec if usable else None,
                video_codec=video_codec,
                width=video.codec_context.width if video is not None else None,
                height=video.codec_context.height if video is not None else None,
                sample_rate=audio.codec_context.sample_rate if audio is not None else None,
                streams=streams,
                audio_tracks=tracks,
            )
    except (av.error.FFmpegError, ValueError, IndexError, OSError, UnicodeDecodeError) as exc:
        raise UnsupportedMediaError(
            f"the {field} upload is not a media file PyAV can read ({type(exc).__name__})"
        ) from exc


def video_stream(container):
    """The first video stream that is a picture sequence, not an attached picture (cover art)."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _track(index: int, stream) -> AudioTrackInfo:
    context = stream.codec_context
    name = context.name if context is not None else None
    duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    language = stream.metadata.get("language")
    # a language tag is a short code; anything else in that slot is not reported
    language = language if language and len(language) <= 8 and language.isalpha() and language != "und" else None
    return AudioTrackInfo(
        index=index,
        codec=name if name in AUDIO_CODECS else None,
        channels=int(context.channels or 1) if context is not None else 1,
        sample_rate=context.sample_rate if context is not None else None,
        duration_s=duration,
        language=language,
    )


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
