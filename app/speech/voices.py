"""Voice embeddings: Resemblyzer's GE2E encoder (model_store/voice_encoder/1) over 10-ms mel
frames, one 256-d unit vector per stretch of speech; two stretches of the same voice score a
high cosine similarity, two voices a low one (app.speech.turns clusters them).

The mel is the encoder's own, as its training computed it (``resemblyzer.audio``): librosa's
power mel (not log) with 25-ms windows, 10-ms hops and 40 bands at 16 kHz. Each window is
brought to -30 dBFS first (the package normalises a whole utterance to that level), so an
embedding does not depend on how loud the recording is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.features.audio import mel_power
from app.model_store import MODEL_FILE, PROVENANCE_FILE, sha256_file, voice_encoder_dir
from app.runtime import ModelRuntime, RuntimeConfig, load_model

SAMPLE_RATE = 16000
MEL_BANDS = 40
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms: one mel frame per 10-ms frame of the turn labels
FRAME_S = HOP / SAMPLE_RATE
VOLUME_TARGET_DBFS = -30.0
# windows per encoder run: bounds the batch's memory (about 1 MB of mel per 32 windows)
BATCH = 64
# a window quieter than this is silence: not brought up to the target level (it would be noise)
SILENT_DBFS = -70.0


class VoiceEncoderIntegrityError(RuntimeError):
    """The voice encoder's file is not the one its provenance names."""


def load_voice_encoder(store: Path, config: RuntimeConfig, verify: bool = True) -> ModelRuntime:
    """The voice encoder's session; its sha256 checked against provenance.json first."""
    folder = voice_encoder_dir(store)
    path = folder / MODEL_FILE
    if verify:
        expected = json.loads((folder / PROVENANCE_FILE).read_text())["sha256"].get(MODEL_FILE)
        actual = sha256_file(path)
        if actual != expected:
            raise VoiceEncoderIntegrityError(f"{MODEL_FILE}: sha256 {actual} does not match {PROVENANCE_FILE}")
    return load_model("voice_encoder", path, config)


def encoder_mel(samples16k: np.ndarray) -> np.ndarray:
    """(frames, 40) float32 power mel of a 16-kHz mono signal, 10-ms frames, at its own level."""
    return mel_power(np.asarray(samples16k, np.float32), SAMPLE_RATE, N_FFT, HOP, MEL_BANDS)


def window_gains(samples16k: np.ndarray, windows: Sequence[tuple[int, int]]) -> np.ndarray:
    """Power gain per (first, last) mel-frame window that brings its samples to -30 dBFS."""
    signal = np.asarray(samples16k, np.float32)
    gains = np.ones(len(windows))
    for k, (first, last) in enumerate(windows):
        # window by window: a running sum over an hour in float64 would cost a GB
        piece = signal[first * HOP : min(last * HOP, signal.shape[0])]
        if piece.size == 0:
            continue
        rms = float(np.sqrt(np.mean(np.square(piece, dtype=np.float64))))
        level = 20 * np.log10(rms + 1e-12)
        if level > SILENT_DBFS:
            gains[k] = 10 ** ((VOLUME_TARGET_DBFS - level) / 10)  # power: the square of the amplitude gain
    return gains


def embed_windows(
    mel: np.ndarray, windows: Sequence[tuple[int, int]], gains: np.ndarray, encoder: ModelRuntime
) -> np.ndarray:
    """(len(windows), 256) unit embeddings of (first, last) frame windows of ``mel``; shorter
    windows are padded with silence at the end, as the encoder's own package pads."""
    if not windows:
        return np.zeros((0, 256), np.float32)
    length = max(last - first for first, last in windows)
    out = np.empty((len(windows), 256), np.float32)
    for start in range(0, len(windows), BATCH):
        chunk = windows[start : start + BATCH]
        batch = np.zeros((len(chunk), length, MEL_BANDS), np.float32)
        for row, (first, last) in enumerate(chunk):
            piece = mel[first:last]
            batch[row, : piece.shape[0]] = piece * gains[start + row]
        (embedding,) = encoder.run({"mels": batch})
        out[start : start + len(chunk)] = embedding
    return out


def embed_segments(samples16k: np.ndarray, spans: Sequence[tuple[float, float]], encoder: ModelRuntime) -> np.ndarray:
    """(len(spans), 256) unit embeddings, one per (start_s, end_s) stretch (each run alone)."""
    signal = np.asarray(samples16k, np.float32)
    out = np.zeros((len(spans), 256), np.float32)
    for k, (start_s, end_s) in enumerate(spans):
        piece = signal[round(start_s * SAMPLE_RATE) : round(end_s * SAMPLE_RATE)]
        if piece.size < N_FFT:
            continue
        mel = encoder_mel(piece)
        out[k] = embed_windows(mel, [(0, mel.shape[0])], window_gains(piece, [(0, mel.shape[0])]), encoder)[0]
    return out
