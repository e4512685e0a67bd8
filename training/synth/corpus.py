"""The synthetic corpus: participants -> words, voice, face -> serve-time features.

Each participant's sentences (language.py) are spoken by espeak-ng (speech.py) and go
through the serve-time audio extractor (app.features.audio); the same sentences are
embedded by the serve-time text encoder (app.features.text); a face moves in time with
the speech (face.py) and is written in the serve-time normalised space. Degradations
(participants.py) damage the raw signals before extraction, so quality figures reflect
them exactly as they would at serve time.

Sessions are cached as .npz under a folder keyed by the corpus parameters; the cache
is a build product, never committed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import re
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from app.contract import FeatureSpec
from app.features import audio as audio_features
from app.features.text import TextEncoder
from training.synth.participants import Participant

CORPUS_VERSION = 3


@functools.cache
def text_encoder(model_dir: Path) -> TextEncoder:
    """One encoder per process and model folder, reused across sessions (as a server worker does)."""
    return TextEncoder(model_dir)


def add_noise(
    signal: np.ndarray, snr_db: float, rng: np.random.Generator, speech: np.ndarray | None = None
) -> np.ndarray:
    """Broadband plus low-frequency rumble at ``snr_db`` below the speech power.

    ``speech`` marks the samples inside utterances; the background floor is excluded
    from the speech power so the SNR is the one asked for.
    """
    voiced = signal[speech] if speech is not None and speech.any() else signal
    speech_power = float(np.mean(np.square(voiced, dtype=np.float64))) if voiced.size else 0.0
    if speech_power <= 0:
        return signal
    white = rng.standard_normal(signal.shape[0])
    brown = np.cumsum(rng.standard_normal(signal.shape[0]))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # drop the drift, keep the rumble
    noise = white / white.std() + 0.7 * brown / (brown.std() + 1e-9)
    noise *= np.sqrt(speech_power / 10 ** (snr_db / 10) / np.mean(noise**2))
    mixed = signal + noise.astype(np.float32)
    peak = float(np.max(np.abs(mixed)))
    return (mixed / peak * 0.9).astype(np.float32) if peak > 0.99 else mixed.astype(np.float32)


def utterance_samples(utterances, n_samples: int, sample_rate: int) -> np.ndarray:
    inside = np.zeros(n_samples, dtype=bool)
    for u in utterances:
        inside[max(round(u.start_s * sample_rate), 0) : min(round(u.end_s * sample_rate), n_samples)] = True
    return inside


def drop_words(sentence: str, ratio: float, rng: np.random.Generator) -> str:
    """ASR-like damage: lose a share of the words (at least one survives)."""
    words = sentence.split()
    keep = [w for w in words if rng.random() >= ratio]
    return " ".join(keep or words[:1])


def speaking_frames(utterances, n_frames: int, rate_hz: float) -> np.ndarray:
    speaking = np.zeros(n_frames, dtype=bool)
    for u in utterances:
        a, b = int(u.start_s * rate_hz), int(np.ceil(u.end_s * rate_hz))
        speaking[max(a, 0) : min(b, n_frames)] = True
    return speaking


def synthesize(participant: Participant, seed: int, features: FeatureSpec, text_model_dir: Path) -> dict:
    """One participant's session as feature tracks (plain arrays, ready for np.savez)."""
    from training.synth.face import face_session
    from training.synth.language import participant_sentences
    from training.synth.speech import speak_session

    # one stream per stage: damaging one modality leaves the others' draws unchanged
    words_rng, voice_rng, noise_rng, face_rng, asr_rng = np.random.default_rng([seed, participant.pid]).spawn(5)
    deg = participant.degradation
    sentences: Iterator[str] = participant_sentences(participant.items, words_rng)
    spoken = speak_session(sentences, participant.items, participant.duration_s, voice_rng, features.audio.sample_rate)
    signal = spoken.signal
    if deg.audio_noise_snr_db is not None:
        inside = utterance_samples(spoken.utterances, signal.shape[0], features.audio.sample_rate)
        signal = add_noise(signal, deg.audio_noise_snr_db, noise_rng, inside)
    acoustic = audio_features.audio_features(signal, features.audio)

    duration = signal.shape[0] / features.audio.sample_rate
    n_visual = round(duration * features.visual.rate_hz)
    face = face_session(
        participant.items,
        duration,
        face_rng,
        features.visual,
        speaking=speaking_frames(spoken.utterances, n_visual, features.visual.rate_hz),
        missing_ratio=deg.face_missing_ratio,
        jitter_scale=deg.landmark_jitter,
    )
    texts = [
        drop_words(u.text, deg.drop_text_words, asr_rng) if deg.drop_text_words else u.text for u in spoken.utterances
    ]
    embeddings = text_encoder(text_model_dir).embed(texts)
    return {
        "items": participant.items.astype(np.int64),
        "visual_frames": face.frames.astype(np.float16),
        "visual_valid": face.valid,
        "visual_confidence": face.confidence.astype(np.float16),
        "audio_frames": acoustic.frames.astype(np.float16),
        "audio_speech": acoustic.speech,
        "audio_snr_db": np.float32(acoustic.snr_db),
        "text_embeddings": embeddings.astype(np.float16),
        "text_start_s": np.array([u.start_s for u in spoken.utterances], np.float32),
        "text_word_counts": np.array([len(re.findall(r"\S+", t)) for t in texts], np.int64),
        "duration_s": np.float32(duration),
    }


def _job(args: tuple) -> tuple[int, str]:
    participant, seed, features, text_model_dir, path = args
    if not Path(path).exists():
        session = synthesize(participant, seed, features, text_model_dir)
        tmp = Path(str(path) + ".tmp.npz")
        np.savez(tmp, **session)
        os.replace(tmp, path)
    return participant.pid, str(path)


def corpus_key(people: list[Participant], seed: int, features: FeatureSpec) -> str:
    blob = json.dumps(
        {
            "version": CORPUS_VERSION,
            "seed": seed,
            # sessions hold full-layout frames, whatever profile a model takes from them
            "features": features.model_dump(mode="json", exclude={"visual": {"profile"}}),
            "people": [
                {"pid": p.pid, "items": p.items.tolist(), "duration": p.duration_s, "deg": asdict(p.degradation)}
                for p in people
            ],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_corpus(
    people: list[Participant],
    seed: int,
    features: FeatureSpec,
    text_model_dir: Path,
    cache_root: Path,
    workers: int = 2,
) -> list[Path]:
    """Synthesize (or reuse from the cache) every participant's session; paths in pid order."""
    folder = Path(cache_root) / corpus_key(people, seed, features)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(p, seed, features, text_model_dir, folder / f"p{p.pid:05d}.npz") for p in people]
    if workers <= 1:
        done = dict(map(_job, jobs))
    else:
        # spawn, not fork: the caller may already hold ONNX Runtime thread pools
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = dict(pool.map(_job, jobs, chunksize=4))
    return [Path(done[p.pid]) for p in people]


def load_session(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
