"""Generated test media: espeak-ng speech, a moving astronaut face, and PyAV-written containers.

Tests build the files they need instead of committing binaries. Needs espeak-ng on PATH
(apt) and the dev extra (scikit-image, soundfile) next to PyAV.
"""

from __future__ import annotations

import functools
import itertools
import math
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ESPEAK_RATE = 22050  # espeak-ng always writes 22050 Hz mono s16

# suffix -> default audio codec; PyAV picks the muxer from the suffix
AUDIO_CODECS = {
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".ogg": "libopus",  # the PyAV wheel has no libvorbis
    ".opus": "libopus",
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".webm": "libopus",
}
# suffix -> (video codec, audio codec)
VIDEO_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
}
# fast settings: test clips only need to be valid, not good-looking
VIDEO_OPTIONS = {
    "libx264": {"preset": "ultrafast", "crf": "23"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8"},
}
# encoders that refuse to open without a bit rate
AUDIO_BIT_RATES = {"wmav1": 64_000, "wmav2": 64_000}
AUDIO_CHUNK = 1024  # samples per frame handed to the encoder (PyAV re-frames for the codec)

# astronaut() rows/cols holding the head (hair to chin) in the 512x512 image
FACE_CROP = (slice(10, 220), slice(140, 310))
# matplotlib's sample grace_hopper.jpg (512 wide, 600 high): her head, cap to chin; a second,
# clearly different person for identity tests (matplotlib comes with the train extra)
HOPPER_CROP = (slice(40, 410), slice(110, 420))
PEOPLE = ("astronaut", "hopper")
MOTIONS = ("pan", "zoom", "rotate", "still")


def speak(text: str, path: Path, voice: str = "en-us", wpm: int = 160) -> Path:
    """espeak-ng ``text`` to a WAV (22050 Hz mono s16) at ``path``."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    path = Path(path)
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True, capture_output=True)
    return path


@functools.lru_cache(maxsize=32)
def _espeak_samples(text: str, voice: str, wpm: int) -> np.ndarray:
    import soundfile

    with tempfile.TemporaryDirectory() as tmp:
        wav = speak(text, Path(tmp) / "speech.wav", voice=voice, wpm=wpm)
        samples, rate = soundfile.read(wav, dtype="float32")
    if rate != ESPEAK_RATE or samples.ndim != 1:
        raise RuntimeError(f"espeak-ng wrote {rate} Hz, shape {samples.shape}; expected {ESPEAK_RATE} Hz mono")
    samples.flags.writeable = False  # shared by the cache
    return samples


def speech_signal(text: str, sample_rate: int = 16000, voice: str = "en-us", wpm: int = 160) -> np.ndarray:
    """espeak-ng speech as float32 mono at ``sample_rate`` (polyphase resampling, independent of FFmpeg's)."""
    from scipy.signal import resample_poly

    samples = _espeak_samples(text, voice, wpm)
    if sample_rate == ESPEAK_RATE:
        return samples.copy()
    g = math.gcd(sample_rate, ESPEAK_RATE)
    return resample_poly(samples, sample_rate // g, ESPEAK_RATE // g).astype(np.float32)


def _codec_rate(codec: av.codec.Codec, sample_rate: int) -> int:
    """The signal's rate if the encoder takes it, else the nearest higher one it does (opus: 8/12/16/24/48 kHz)."""
    rates = codec.audio_rates
    if not rates or sample_rate in rates:
        return sample_rate
    higher = [r for r in rates if r >= sample_rate]
    return min(higher) if higher else max(rates)


def _as_channels(signal: np.ndarray) -> np.ndarray:
    """(n,) or (n, channels) float -> (n, channels) float32 in [-1, 1]."""
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim == 1:
        signal = signal[:, None]
    if signal.ndim != 2 or signal.shape[1] not in (1, 2):
        raise ValueError(f"expected (n,) mono or (n, 2) stereo samples, got shape {signal.shape}")
    return np.clip(signal, -1.0, 1.0)


class _AudioWriter:
    """Feeds a float signal to an audio stream in chunks with sample-count pts."""

    def __init__(self, container: av.container.OutputContainer, codec_name: str, signal: np.ndarray, rate: int):
        self.samples = _as_channels(signal)
        self.rate = rate
        self.layout = "mono" if self.samples.shape[1] == 1 else "stereo"
        codec = av.codec.Codec(codec_name, "w")
        self.stream = container.add_stream(codec_name, rate=_codec_rate(codec, rate), layout=self.layout)
        if codec_name in AUDIO_BIT_RATES:
            self.stream.bit_rate = AUDIO_BIT_RATES[codec_name]
        self.container = container
        self.written = 0

    def write_until(self, seconds: float | None = None) -> None:
        """Encode the samples up to ``seconds`` into the signal (all of them with None)."""
        total = self.samples.shape[0]
        end = total if seconds is None else min(total, round(seconds * self.rate))
        while self.written < end:
            chunk = self.samples[self.written : min(end, self.written + AUDIO_CHUNK)]
            # packed float: one row of interleaved samples
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts = self.written
            frame.time_base = Fraction(1, self.rate)
            self.container.mux(self.stream.encode(frame))
            self.written += chunk.shape[0]

    def finish(self) -> None:
        self.write_until()
        self.container.mux(self.stream.encode(None))


def write_audio(signal: np.ndarray, sample_rate: int, path: Path, codec: str | None = None) -> Path:
    """Encode float samples ((n,) mono or (n, 2) stereo, in [-1, 1]) into the container the suffix names."""
    path = Path(path)
    codec_name = codec or AUDIO_CODECS.get(path.suffix.lower())
    if codec_name is None:
        raise ValueError(f"no default audio codec for {path.suffix!r}; known: {sorted(AUDIO_CODECS)}")
    with av.open(str(path), "w") as container:
        writer = _AudioWriter(container, codec_name, signal, sample_rate)
        writer.finish()
    return path


def head_image(person: str = "astronaut") -> np.ndarray:
    """RGB uint8 head crop of one of ``PEOPLE`` (both public-domain photographs shipped in packages)."""
    if person == "astronaut":
        from skimage import data

        return data.astronaut()[FACE_CROP]
    if person == "hopper":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as file:
            return np.asarray(Image.open(file).convert("RGB"))[HOPPER_CROP]
    raise ValueError(f"unknown person {person!r}; one of {PEOPLE}")


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    width, height = size
    colour = rng.integers(60, 200, size=3)
    return np.broadcast_to(colour.astype(np.uint8), (height, width, 3)).copy()


def _no_face_frame(size: tuple[int, int], rng: np.random.Generator, shift: int) -> np.ndarray:
    """A diagonal colour gradient with mild noise: image content, but nothing face-like."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    ramp = ((x + y + shift) % (width + height)) / (width + height)
    frame = np.stack([ramp, 1.0 - ramp, 0.5 * np.ones_like(ramp)], axis=-1) * 220.0
    frame += rng.normal(0.0, 8.0, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _pose(motion: str, t: float, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(centre x, centre y, face height px, rotation deg) at progress t in [0, 1]."""
    width, height = size
    cx, cy, face_h, angle = 0.5 * width, 0.5 * height, 0.6 * height, 0.0
    if motion == "pan":
        cx = (0.35 + 0.3 * t) * width
        cy = (0.5 + 0.05 * math.sin(2 * math.pi * t)) * height
    elif motion == "zoom":
        face_h *= 0.7 + 0.6 * t
    elif motion == "rotate":
        angle = -20.0 + 40.0 * t
    elif motion != "still":
        raise ValueError(f"unknown motion {motion!r}; one of {MOTIONS}")
    return cx, cy, face_h, angle


def face_frames(
    n: int,
    size: tuple[int, int] = (320, 240),
    motion: str = "pan",
    seed: int = 0,
    face: bool = True,
    person: str = "astronaut",
) -> Iterator[np.ndarray]:
    """``n`` RGB uint8 frames of (height, width) = (size[1], size[0]).

    With ``face`` the head of ``person`` (the astronaut, or Grace Hopper) sits on a plain
    background (colour from ``seed``) and moves across the clip: "pan" (left to right with a
    slight bob), "zoom" (0.7x to 1.3x), "rotate" (-20 to +20 degrees in plane) or "still".
    Without it: a drifting gradient plus noise.
    """
    from skimage.transform import SimilarityTransform, warp

    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; one of {MOTIONS}")
    rng = np.random.default_rng(seed)
    width, height = size
    if not face:
        for i in range(n):
            yield _no_face_frame(size, rng, shift=3 * i)
        return
    head = head_image(person).astype(np.float32) / 255.0
    head_h, head_w = head.shape[:2]
    opaque = np.ones((head_h, head_w), dtype=np.float32)
    background = _background(size, rng).astype(np.float32) / 255.0
    for i in range(n):
        cx, cy, face_h, angle = _pose(motion, i / max(n - 1, 1), size)
        # head-crop coordinates (x, y) -> canvas: centre on the origin, scale, rotate, move
        to_canvas = (
            SimilarityTransform(translation=(-head_w / 2, -head_h / 2))
            + SimilarityTransform(scale=face_h / head_h, rotation=math.radians(angle))
            + SimilarityTransform(translation=(cx, cy))
        )
        inverse = to_canvas.inverse
        placed = warp(head, inverse, output_shape=(height, width), order=1, mode="constant", cval=0.0)
        alpha = warp(opaque, inverse, output_shape=(height, width), order=1, mode="constant", cval=0.0)[..., None]
        frame = placed * alpha + background * (1.0 - alpha)
        yield np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    display_rotation: float | None = None,
    rotate_tag: str | None = None,
) -> Path:
    """Mux RGB uint8 frames (and optional float audio) into .mp4/.mov/.mkv (H.264 + AAC) or .webm (VP9 + Opus).

    Odd frame sizes lose their last row/column (yuv420p needs even ones). Audio is interleaved
    with the video by timestamp, as a recorder would write it. ``display_rotation`` writes a
    display matrix (degrees counter-clockwise, FFmpeg's convention, as a phone does: the
    stored picture is then meant to be shown turned); ``rotate_tag`` a plain ``rotate`` tag.
    """
    path = Path(path)
    if path.suffix.lower() not in VIDEO_CODECS:
        raise ValueError(f"no video codecs for {path.suffix!r}; known: {sorted(VIDEO_CODECS)}")
    video_codec, audio_codec = VIDEO_CODECS[path.suffix.lower()]
    return write_media(
        path, frames, fps, [] if audio is None else [audio], sample_rate, video_codec=video_codec,
        audio_codec=audio_codec, display_rotation=display_rotation, rotate_tag=rotate_tag,
    )


# pixel formats the encoders below take (the default is yuv420p)
PIXEL_FORMATS = {"mjpeg": "yuvj420p"}


def write_media(
    path: Path,
    frames: Iterable[np.ndarray] | None,
    fps: float,
    audio_tracks: list[np.ndarray],
    sample_rate: int = 16000,
    *,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    container_format: str | None = None,
    cover_art: np.ndarray | None = None,
    display_rotation: float | None = None,
    rotate_tag: str | None = None,
    video_options: dict[str, str] | None = None,
) -> Path:
    """Any container PyAV writes: RGB frames through ``video_codec`` (none: audio only), each of
    ``audio_tracks`` ((n,) mono or (n, 2) stereo floats) as its own stream through ``audio_codec``,
    and optionally ``cover_art`` (an RGB picture) as an attached-picture MJPEG stream, the way
    tagged MP3 and M4A files carry album art. ``container_format`` overrides the suffix's muxer.
    ``display_rotation`` writes a display matrix (degrees counter-clockwise, FFmpeg's
    convention, as a phone does: the stored picture is meant to be shown turned);
    ``rotate_tag`` a plain ``rotate`` tag. ``video_options`` go to the encoder over the defaults
    (e.g. ``{"g": "20"}``: a keyframe every 20 frames).
    """
    path = Path(path)
    frames = iter(frames) if frames is not None else None
    first = next(frames, None) if frames is not None else None
    if frames is not None and first is None:
        raise ValueError("no frames to write")
    with av.open(str(path), "w", format=container_format) as container:
        video = None
        if first is not None:
            height, width = (first.shape[0] // 2) * 2, (first.shape[1] // 2) * 2
            video = container.add_stream(video_codec or "libx264", rate=Fraction(fps).limit_denominator(1001))
            video.width, video.height = width, height
            video.pix_fmt = PIXEL_FORMATS.get(video.codec_context.name, "yuv420p")
            video.options = {**VIDEO_OPTIONS.get(video_codec or "libx264", {}), **(video_options or {})}
            if display_rotation is not None:
                video.set_display_rotation(display_rotation)
            if rotate_tag is not None:
                video.metadata["rotate"] = rotate_tag
        art = None
        if cover_art is not None:
            art = container.add_stream("mjpeg", rate=1)
            art.height, art.width = (cover_art.shape[0] // 2) * 2, (cover_art.shape[1] // 2) * 2
            art.pix_fmt = "yuvj420p"
            art.disposition = av.stream.Disposition.attached_pic
        writers = [_AudioWriter(container, audio_codec or "aac", track, sample_rate) for track in audio_tracks]
        if art is not None:
            picture = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(cover_art[: art.height, : art.width, :3]), format="rgb24"
            )
            container.mux(art.encode(picture))
            container.mux(art.encode(None))
        if video is not None:
            assert first is not None and frames is not None
            for index, rgb in enumerate(itertools.chain([first], frames)):
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(rgb[: video.height, : video.width, :3]), format="rgb24"
                )
                frame.pts = index
                container.mux(video.encode(frame))
                for writer in writers:
                    writer.write_until((index + 1) / fps)
            container.mux(video.encode(None))
        for writer in writers:
            writer.finish()
    return path


def talking_head(
    path: Path,
    text: str,
    fps: float = 10,
    size: tuple[int, int] = (320, 240),
    motion: str = "pan",
    sample_rate: int = 16000,
) -> Path:
    """espeak-ng speech of ``text`` muxed with moving-face frames covering the same duration."""
    speech = speech_signal(text, sample_rate)
    n_frames = max(1, math.ceil(speech.shape[0] / sample_rate * fps))
    return write_video(path, face_frames(n_frames, size, motion=motion), fps, audio=speech, sample_rate=sample_rate)


class GrowingWav:
    """A WAV written the way a live session writes its audio: appended, header after the data."""

    def __init__(self, path: Path, sample_rate: int = 16000) -> None:
        self.path = path
        self._writer = wave.open(str(path), "wb")  # noqa: SIM115 (closed in close())
        self._writer.setnchannels(1)
        self._writer.setsampwidth(2)
        self._writer.setframerate(sample_rate)

    def append(self, samples: np.ndarray) -> None:
        self._writer.writeframes((np.clip(samples, -1, 1 - 2**-15) * 32768).astype("<i2").tobytes())
        self._writer._file.flush()  # the first write alone leaves the header unpatched in the buffer

    def close(self) -> None:
        self._writer.close()
