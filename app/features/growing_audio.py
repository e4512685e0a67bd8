"""The acoustic features of a recording that only grows: a live session's WAV, estimated again
every few seconds while the call goes on.

Decoding the whole call and computing its log-mel again at every estimate costs time linear in
the call (about 5 s of a core per estimate at one hour). A frame of the log-mel depends only on
its own ``n_fft`` samples, so once those came it is final: ``update`` keeps the final frames
in a cache file next to the WAV (in the session's private folder, removed with it) and computes
only the frames the new samples complete, reading only the WAV's new samples. The
recording-wide steps (voice activity, SNR, normalisation) still run on all frames, but they are
cheap arithmetic on them.

The frames are those ``mel_power_db`` gives for the whole recording (tested equal). The
participant's turns select frames by their time instead of re-framing the joined turns as
``keep_segments`` does, and the bandwidth is measured on the newest ``BANDWIDTH_TAIL_S``: both
are the running estimates' approximations; the final answer decodes the recording as /predict does.
"""

from __future__ import annotations

import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.contract import AudioSpec
from app.features.audio import (
    AudioFeatures,
    final_frames,
    mel_power_from,
    normalise_frames,
    power_to_db,
    speech_frames,
)

# the speech bandwidth of a running estimate: over the newest two minutes (the whole call's
# would read it all again)
BANDWIDTH_TAIL_S = 120.0
PCM_SCALE = 32768.0  # s16 -> float, as FFmpeg converts it


@dataclass(frozen=True)
class GrownAudio:
    """A growing recording's frames so far: the cached final ones and the few after them."""

    mel_db: np.ndarray  # (T, n_mels) float32, as ``mel_power_db`` of the whole recording
    hop_energy: np.ndarray  # (T,) float64: sum of squares of the samples [i*hop, (i+1)*hop)
    n_samples: int
    tail: np.ndarray  # the newest samples (up to BANDWIDTH_TAIL_S), float32


def read_pcm(wav: Path, start: int, stop: int) -> np.ndarray:
    """Samples [start, stop) of a 16-bit mono WAV as float32 in [-1, 1)."""
    with wave.open(str(wav), "rb") as reader:
        if reader.getsampwidth() != 2 or reader.getnchannels() != 1:
            raise ValueError("a growing recording is 16-bit mono PCM")
        reader.setpos(start)
        data = reader.readframes(max(0, stop - start))
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / PCM_SCALE


def wav_samples(wav: Path) -> int:
    """How many samples the WAV's header says it holds (the writer updates it after the data)."""
    with wave.open(str(wav), "rb") as reader:
        return reader.getnframes()


def cached_rows(n_samples: int, spec: AudioSpec) -> int:
    """Frames of a recording of ``n_samples`` that are final, with their hop's samples all come."""
    return min(final_frames(n_samples, spec.n_fft, spec.hop_length), n_samples // spec.hop_length)


def update(wav: Path, cache: Path, spec: AudioSpec, max_samples: int | None = None) -> GrownAudio:
    """The frames of the WAV so far (its first ``max_samples``), extending ``cache`` by the ones
    its new samples made final. A cache that does not fit the WAV (a partial row from a worker
    killed while writing, more rows than the WAV can have) is cut back, never trusted."""
    row_floats = spec.n_mels + 1  # the frame's dB, then its hop's energy
    row_bytes = 4 * row_floats
    n = wav_samples(wav)
    if max_samples is not None:
        n = min(n, max_samples)
    size = cache.stat().st_size if cache.exists() else 0
    rows = size // row_bytes
    if rows > cached_rows(n, spec):
        rows = 0  # not this recording's frames
    if rows * row_bytes != size:
        with cache.open("r+b") as handle:
            handle.truncate(rows * row_bytes)
    origin = max(0, rows * spec.hop_length - spec.n_fft // 2)
    tail_start = max(0, n - round(BANDWIDTH_TAIL_S * spec.sample_rate))
    read_from = min(origin, tail_start)
    samples = read_pcm(wav, read_from, n)
    n = read_from + samples.shape[0]  # what the file really held
    new = samples[origin - read_from :]
    power = mel_power_from(
        new, origin, rows, spec.sample_rate, spec.n_fft, spec.hop_length, spec.n_mels, spec.fmin, spec.fmax
    )
    fresh_db = power_to_db(power, spec)
    # each new frame's hop: samples [i*hop, (i+1)*hop) of the recording, the last one partial
    edges = np.minimum(np.arange(rows, rows + fresh_db.shape[0] + 1) * spec.hop_length, n) - origin
    squares = np.concatenate([[0.0], np.cumsum(np.square(new, dtype=np.float64))])
    fresh_energy = squares[edges[1:]] - squares[edges[:-1]]
    cached = (
        np.fromfile(cache, dtype=np.float32, count=rows * row_floats).reshape(rows, row_floats)
        if rows
        else np.zeros((0, row_floats), dtype=np.float32)
    )
    final = max(0, cached_rows(n, spec) - rows)
    if final:
        block = np.empty((final, row_floats), dtype=np.float32)
        block[:, :-1] = fresh_db[:final]
        block[:, -1] = fresh_energy[:final]
        with cache.open("ab") as handle:
            handle.write(block.tobytes())
    # the new final rows as stored (float32 energies), then the frames later samples still change
    stored_energy = np.concatenate([cached[:, -1], fresh_energy[:final].astype(np.float32)]).astype(np.float64)
    return GrownAudio(
        mel_db=np.concatenate([cached[:, :-1], fresh_db]),
        hop_energy=np.concatenate([stored_energy, fresh_energy[final:]]),
        n_samples=n,
        tail=samples[tail_start - read_from :],
    )


def grown_features(
    grown: GrownAudio, spec: AudioSpec, turns: Sequence[tuple[float, float]] = ()
) -> tuple[AudioFeatures, np.ndarray | None]:
    """``audio_features`` of the recording so far, from its frames; with ``turns``, of the frames
    within them (at least a second of them, else of all: the times are None then) and each
    kept frame's time on the recording's clock."""
    frames = grown.mel_db.shape[0]
    times = None
    keep = np.ones(frames, dtype=bool)
    if turns and frames:
        at = np.arange(frames) * (spec.hop_length / spec.sample_rate)
        inside = np.zeros(frames, dtype=bool)
        for start, end in turns:
            inside |= (at >= start) & (at < end)
        if inside.sum() >= spec.rate_hz:
            keep, times = inside, at[inside]
    mel_db = grown.mel_db[keep]
    speech, snr = speech_frames(mel_db)
    hop_samples = np.full(frames, spec.hop_length, dtype=np.int64)  # the last hop holds what came
    if frames:
        hop_samples[-1] = grown.n_samples - (frames - 1) * spec.hop_length
    samples = int(hop_samples[keep].sum())
    energy = float(grown.hop_energy[keep].sum())
    rms = float(np.sqrt(energy / samples)) if samples else 0.0
    features = AudioFeatures(
        frames=normalise_frames(mel_db),
        speech=speech,
        snr_db=snr,
        duration_s=samples / spec.sample_rate,
        level_dbfs=20.0 * np.log10(rms + 1e-10),
    )
    return features, times
