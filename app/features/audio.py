"""Acoustic features: PyAV decoding, log-mel frames, quality figures (pure functions).

The synthetic training corpus and the server both call ``audio_features``; the
parameters come from ``app.contract.AudioSpec`` (the manifest), never from here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.contract import AudioSpec

SILENCE_DB = -100.0
# frames this far above the recording's noise floor count as speech
SPEECH_MARGIN_DB = 12.0
# and never quieter than this far below the loudest frames
SPEECH_RANGE_DB = 45.0


class AudioDecodeError(ValueError):
    """The file holds no decodable audio stream."""


@dataclass(frozen=True)
class AudioFeatures:
    frames: np.ndarray  # (T, n_mels) float32, normalised per the spec
    speech: np.ndarray  # (T,) bool, frame judged to hold speech
    snr_db: float  # median speech-frame level over the noise floor
    duration_s: float
    level_dbfs: float  # RMS level of the kept signal

    @property
    def speech_ratio(self) -> float:
        return float(self.speech.mean()) if self.speech.size else 0.0


@dataclass
class DecodeReport:
    """What decoding met on the way: packets decoded and damaged ones skipped."""

    packets: int = 0
    skipped_packets: int = 0
    truncated: bool = False  # the container ended in damage; what came before was kept


# a recording with more damaged packets than this share is refused rather than patched
MAX_DAMAGED_SHARE = 0.5


def decode_audio(
    path: str | Path,
    sample_rate: int,
    max_seconds: float | None = None,
    report: DecodeReport | None = None,
    track: int = 0,
    mix: bool = True,
) -> np.ndarray:
    """Audio stream ``track`` (0-based among the file's audio streams) of any container PyAV
    reads, as float32 at ``sample_rate``: mono (the channels' mean) with ``mix``, else
    (channels, samples).

    A damaged packet is skipped (one bad frame must not lose a whole interview) and a
    container that breaks off keeps what came before; ``report`` counts both. More than
    half the packets damaged, or nothing decodable, is an AudioDecodeError.
    """
    import av  # local: keeps the module importable for pure feature maths

    report = report if report is not None else DecodeReport()
    chunks: list[np.ndarray] = []
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    got = 0
    try:
        with av.open(str(path)) as container:
            if len(container.streams.audio) <= track:
                raise AudioDecodeError("no audio stream" if track == 0 else f"no audio track {track + 1}")
            stream = container.streams.audio[track]
            # keep the channels and average them ourselves: FFmpeg's own downmix adds
            # L and R at 0.707 each, making dual-mono recordings 3 dB louder (and clip)
            resampler = av.AudioResampler(format="fltp", rate=sample_rate)
            packets = container.demux(stream)
            while limit is None or got < limit:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError:
                    report.truncated = True
                    break
                try:
                    frames = packet.decode()
                except (av.error.FFmpegError, ValueError):
                    report.skipped_packets += 1
                    continue
                report.packets += packet.size > 0
                for frame in frames:
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray())
                        got += chunks[-1].shape[1]
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except AudioDecodeError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioDecodeError(f"audio could not be decoded ({type(exc).__name__})") from exc
    damaged = report.skipped_packets
    if damaged and damaged > MAX_DAMAGED_SHARE * (damaged + report.packets):
        raise AudioDecodeError(f"{damaged} of {damaged + report.packets} audio packets are damaged")
    if not chunks:
        raise AudioDecodeError("the audio stream holds no samples")
    channels = min(chunk.shape[0] for chunk in chunks)  # a layout change mid-stream keeps the common ones
    signal = np.concatenate([chunk[:channels] for chunk in chunks], axis=1).astype(np.float32, copy=False)
    if limit is not None:
        signal = signal[:, :limit]
    if mix:
        signal = signal.mean(axis=0)
    if not np.isfinite(signal).all():
        raise AudioDecodeError("the audio stream decodes to non-finite samples")
    return signal


def keep_segments(signal: np.ndarray, sample_rate: int, segments: Sequence[tuple[float, float]]) -> np.ndarray:
    """Concatenate the (start_s, end_s) spans of a signal, e.g. the participant's turns
    (``kept_spans`` says where each span came from)."""
    parts = []
    for start, end in sorted(segments):
        a = max(0, round(start * sample_rate))
        b = min(signal.shape[0], round(end * sample_rate))
        if b > a:
            parts.append(signal[a:b])
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(parts)


def kept_spans(
    signal_samples: int, sample_rate: int, segments: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """(seconds into the kept signal, seconds on the original clock) where each span of
    ``keep_segments`` starts, in order: so a frame of the kept signal maps back to when it
    was spoken."""
    spans, kept = [], 0
    for start, end in sorted(segments):
        a = max(0, round(start * sample_rate))
        b = min(signal_samples, round(end * sample_rate))
        if b > a:
            spans.append((kept / sample_rate, a / sample_rate))
            kept += b - a
    return spans


def frame_times(n_frames: int, rate_hz: float, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """(n_frames,) original-clock seconds of the frames of a signal kept by ``keep_segments``."""
    kept = np.arange(n_frames) / rate_hz
    if not spans:
        return kept
    starts = np.array([s[0] for s in spans])
    origins = np.array([s[1] for s in spans])
    which = np.clip(np.searchsorted(starts, kept, side="right") - 1, 0, len(spans) - 1)
    return origins[which] + (kept - starts[which])


# frames per block of the log-mel computation: bounds its memory (a whole hour at once
# would need about 1 GB of complex spectrum) without changing any frame
MEL_BLOCK_FRAMES = 4096


def mel_power(
    signal: np.ndarray,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """(T, n_mels) mel power spectrogram (float32), equal to librosa's
    ``melspectrogram(center=True, pad_mode="constant")`` on the whole signal, computed block by
    block (each frame depends only on its own ``n_fft`` samples), so memory stays bounded."""
    return mel_power_from(signal, 0, 0, sample_rate, n_fft, hop_length, n_mels, fmin, fmax)


def final_frames(n_samples: int, n_fft: int, hop_length: int) -> int:
    """How many of the (centred) frames of a signal of ``n_samples`` later samples cannot change:
    frame i reads samples [i*hop - n_fft/2, i*hop + n_fft/2), so it is final once they all came."""
    half = n_fft // 2
    return 0 if n_samples < half else (n_samples - half) // hop_length + 1


def mel_power_from(
    tail: np.ndarray,
    origin: int,
    first_frame: int,
    sample_rate: int,
    n_fft: int,
    hop_length: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Frames ``first_frame`` to the end of ``mel_power`` of a signal of which ``tail`` holds the
    samples from index ``origin`` to its end: what a growing recording needs past the frames it
    already has. ``origin`` must be at most the first sample those frames read
    (``first_frame * hop_length - n_fft // 2``, or 0)."""
    import librosa  # local: its first use pulls numba; only workers pay for it

    tail = np.asarray(tail, dtype=np.float32)
    half = n_fft // 2
    n_samples = origin + tail.shape[0]
    frames = 1 + n_samples // hop_length - first_frame
    if origin > max(0, first_frame * hop_length - half):
        raise ValueError("the tail starts after the first sample its frames read")
    if frames <= 0:
        return np.zeros((0, n_mels), dtype=np.float32)
    # the samples frames first_frame.. read, on librosa's centred clock: zeros before the
    # signal's start and after its end
    start = first_frame * hop_length - half
    stop = (first_frame + frames - 1) * hop_length + half
    padded = np.zeros(stop - start, dtype=np.float32)
    a, b = max(start, origin), min(stop, n_samples)
    padded[a - start : b - start] = tail[a - origin : b - origin]
    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    out = np.empty((frames, n_mels), dtype=np.float32)
    for first in range(0, frames, MEL_BLOCK_FRAMES):
        count = min(MEL_BLOCK_FRAMES, frames - first)
        offset = first * hop_length
        block = padded[offset : offset + (count - 1) * hop_length + n_fft]
        power = np.abs(librosa.stft(block, n_fft=n_fft, hop_length=hop_length, center=False)) ** 2
        out[first : first + count] = (basis @ power).T
    return out


def power_to_db(power: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """Mel power -> dB (10 log10, amin from the spec), float32."""
    return (10.0 * np.log10(np.maximum(power, spec.power_to_db_amin))).astype(np.float32)


def mel_power_db(signal: np.ndarray, spec: AudioSpec) -> np.ndarray:
    """(T, n_mels) log-mel power in dB (10 log10, amin from the spec), before normalisation."""
    power = mel_power(signal, spec.sample_rate, spec.n_fft, spec.hop_length, spec.n_mels, spec.fmin, spec.fmax)
    return power_to_db(power, spec)


def speech_frames(mel_db: np.ndarray) -> tuple[np.ndarray, float]:
    """Energy voice activity per frame and the SNR estimate (dB) of the recording."""
    if mel_db.shape[0] == 0:
        return np.zeros(0, dtype=bool), 0.0
    # frame level: mean mel power, back in dB
    level = 10.0 * np.log10(np.mean(10.0 ** (mel_db.astype(np.float64) / 10.0), axis=1) + 1e-12)
    floor = float(np.percentile(level, 10))
    peak = float(np.percentile(level, 99))
    threshold = max(floor + SPEECH_MARGIN_DB, peak - SPEECH_RANGE_DB)
    speech = level > threshold
    snr = float(np.median(level[speech]) - floor) if speech.any() else 0.0
    return speech, snr


def normalise_frames(mel_db: np.ndarray) -> np.ndarray:
    """recording_band_zscore_v1."""
    if mel_db.shape[0] == 0:
        return mel_db.astype(np.float32)
    mean = mel_db.mean(axis=0, keepdims=True)
    std = mel_db.std(axis=0, keepdims=True)
    return ((mel_db - mean) / (std + 1e-5)).astype(np.float32)


def audio_features(signal: np.ndarray, spec: AudioSpec) -> AudioFeatures:
    """Mono float signal at ``spec.sample_rate`` -> normalised frames + quality."""
    signal = np.asarray(signal, dtype=np.float32)
    mel_db = mel_power_db(signal, spec)
    speech, snr = speech_frames(mel_db)
    rms = float(np.sqrt(np.mean(np.square(signal, dtype=np.float64)))) if signal.size else 0.0
    return AudioFeatures(
        frames=normalise_frames(mel_db),
        speech=speech,
        snr_db=snr,
        duration_s=signal.shape[0] / spec.sample_rate,
        level_dbfs=20.0 * np.log10(rms + 1e-10),
    )


def window_quality(speech: np.ndarray, snr_db: float, spec: AudioSpec) -> np.ndarray:
    """[speech_ratio, snr] of a window's frames, each in [0, 1]."""
    speech = np.asarray(speech, dtype=bool)
    ratio = float(speech.mean()) if speech.size else 0.0
    return np.array([ratio, np.clip(snr_db / spec.snr_full_scale_db, 0.0, 1.0)], dtype=np.float32)


# a band of the speech spectrum counts as carried when its level is within this much of the
# telephone band's (300-3400 Hz) mean level
BANDWIDTH_FLOOR_DB = 45.0
BANDWIDTH_FRAME = 512
BANDWIDTH_BAND_HZ = 250.0
# under this, the recording went through a narrowband (telephone) channel
NARROWBAND_MAX_HZ = 5000.0


def speech_bandwidth_hz(signal: np.ndarray, sample_rate: int) -> float:
    """The upper edge of the highest 250-Hz band whose level is within ``BANDWIDTH_FLOOR_DB``
    of the 300-3400 Hz mean, over the loudest third of the frames (the speech, not the pauses).

    Telephone-band audio (AMR-NB, G.711, anything once sampled at 8 kHz) carries nothing above
    4 kHz however it was resampled since; wideband speech carries fricatives up to 7-8 kHz.
    Measured on espeak-ng speech at 16 kHz: 8000 Hz as made, 4500-4750 Hz once passed through 8 kHz.
    0 for a signal too short or silent to tell.
    """
    n = signal.shape[0] // BANDWIDTH_FRAME
    if n < 3:
        return 0.0
    frames = signal[: n * BANDWIDTH_FRAME].astype(np.float64).reshape(n, BANDWIDTH_FRAME)
    energy = np.square(frames).sum(axis=1)
    loud = frames[energy >= np.quantile(energy, 2 / 3)]
    power = np.square(np.abs(np.fft.rfft(loud * np.hanning(BANDWIDTH_FRAME), axis=1))).mean(axis=0)
    freqs = np.fft.rfftfreq(BANDWIDTH_FRAME, 1.0 / sample_rate)
    voice = power[(freqs >= 300) & (freqs <= 3400)].mean()
    if voice <= 0:
        return 0.0
    edges = np.arange(0.0, sample_rate / 2 + 1e-9, BANDWIDTH_BAND_HZ)
    carried = 0.0
    for low, high in itertools.pairwise(edges):
        band = power[(freqs >= low) & (freqs < high)]
        if band.size and 10.0 * np.log10(band.mean() / voice + 1e-30) >= -BANDWIDTH_FLOOR_DB:
            carried = float(high)
    return carried
