"""The synthetic voice: item effects seen through the serve-time audio features, timing, determinism."""

from __future__ import annotations

import itertools
import shutil
from functools import cache

import numpy as np
import pytest

from app.contract import PHQ8_ITEMS, AudioSpec
from app.features.audio import mel_power_db, speech_frames
from training.synth.language import participant_sentences
from training.synth.speech import SpokenSession, speak_session, voice_profile

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SEEDS = (0, 1, 2)
SPEC = AudioSpec()


def _items(**scores: int) -> tuple[int, ...]:
    return tuple(scores.get(name, 0) for name in PHQ8_ITEMS)


@cache
def _session(items: tuple[int, ...], seed: int, target_s: float = 30.0) -> SpokenSession:
    rng = np.random.default_rng(seed)
    scores = np.array(items)
    return speak_session(participant_sentences(scores, rng), scores, target_s, rng)


def _words_per_second(session: SpokenSession) -> float:
    words = sum(len(u.text.split()) for u in session.utterances)
    return words / (session.signal.shape[0] / session.sample_rate)


def _speech_ratio(session: SpokenSession) -> float:
    speech, _ = speech_frames(mel_power_db(session.signal, SPEC))
    return float(speech.mean())


def _pitch_sd_semitones(session: SpokenSession) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(
        session.signal, fmin=60, fmax=400, sr=session.sample_rate, frame_length=1024, hop_length=320
    )
    f0 = f0[voiced & np.isfinite(f0)]
    return float(np.std(12.0 * np.log2(f0 / np.median(f0))))


def _speech_level_db(session: SpokenSession) -> float:
    """Median RMS level (dBFS) of the utterances."""
    rate = session.sample_rate
    levels = [
        10 * np.log10(np.mean(np.square(session.signal[int(u.start_s * rate) : int(u.end_s * rate)])))
        for u in session.utterances
    ]
    return float(np.median(levels))


LOW = _items()
SLOW = _items(psychomotor=3)
FLAT = _items(mood=3, interest=3)
TIRED = _items(energy=3, sleep=3)


def test_psychomotor_slows_speech_and_lowers_speech_ratio() -> None:
    # the same seeds draw the same person baselines, so each pair differs only by the item effects
    low_wps = np.mean([_words_per_second(_session(LOW, s)) for s in SEEDS])
    high_wps = np.mean([_words_per_second(_session(SLOW, s)) for s in SEEDS])
    low_ratio = np.mean([_speech_ratio(_session(LOW, s)) for s in SEEDS])
    high_ratio = np.mean([_speech_ratio(_session(SLOW, s)) for s in SEEDS])
    assert high_wps < 0.85 * low_wps
    assert high_ratio < low_ratio - 0.05


def test_low_mood_and_interest_flatten_pitch() -> None:
    low_sd = np.mean([_pitch_sd_semitones(_session(LOW, s, 15.0)) for s in SEEDS])
    flat_sd = np.mean([_pitch_sd_semitones(_session(FLAT, s, 15.0)) for s in SEEDS])
    assert flat_sd < 0.8 * low_sd


def test_low_energy_and_sleep_lower_the_speech_level() -> None:
    differences = [_speech_level_db(_session(TIRED, s)) - _speech_level_db(_session(LOW, s)) for s in SEEDS]
    assert np.mean(differences) < -1.5


def test_utterance_timestamps_line_up_with_speech_energy() -> None:
    for seed in SEEDS:
        session = _session(LOW, seed)
        speech, _ = speech_frames(mel_power_db(session.signal, SPEC))
        times = (np.arange(speech.shape[0]) * SPEC.hop_length + SPEC.n_fft / 2) / SPEC.sample_rate
        inside = np.zeros(speech.shape[0], dtype=bool)
        near = np.zeros(speech.shape[0], dtype=bool)
        for u in session.utterances:
            inside |= (times >= u.start_s + 0.1) & (times <= u.end_s - 0.1)
            near |= (times >= u.start_s - 0.1) & (times <= u.end_s + 0.1)
        assert speech[inside].mean() > 0.7  # word gaps inside utterances are short
        assert speech[~near].mean() < 0.02  # only the noise floor between utterances
        starts = [u.start_s for u in session.utterances]
        assert starts == sorted(starts)
        assert all(a.end_s < b.start_s for a, b in itertools.pairwise(session.utterances))


def test_session_signal_is_sane() -> None:
    session = _session(LOW, 0)
    rate = session.sample_rate
    assert rate == 16000 and session.signal.dtype == np.float32 and session.signal.ndim == 1
    assert np.abs(session.signal).max() < 1.0
    duration = session.signal.shape[0] / rate
    assert 30.0 <= duration < 40.0
    assert session.utterances[-1].end_s <= duration
    # a noise floor everywhere: no 10 ms block is digitally silent, and the gaps sit at -65..-50 dBFS
    blocks = session.signal[: session.signal.shape[0] // 160 * 160].reshape(-1, 160)
    assert np.all(np.abs(blocks).max(axis=1) > 0)
    lead = session.signal[: int(session.utterances[0].start_s * rate) - 800]
    lead_dbfs = 10 * np.log10(np.mean(np.square(lead, dtype=np.float64)))
    assert -66.0 < lead_dbfs < -49.0


def test_same_seed_same_session_and_other_seed_differs() -> None:
    first = _session(SLOW, 5, 12.0)
    rng = np.random.default_rng(5)
    again = speak_session(participant_sentences(np.array(SLOW), rng), np.array(SLOW), 12.0, rng)
    assert np.array_equal(first.signal, again.signal)
    assert first.utterances == again.utterances
    other = _session(SLOW, 6, 12.0)
    assert [u.text for u in other.utterances] != [u.text for u in first.utterances]


def test_other_sample_rate_and_profile_bounds() -> None:
    rng = np.random.default_rng(3)
    scores = np.array(LOW)
    session = speak_session(participant_sentences(scores, rng), scores, 5.0, rng, sample_rate=22050)
    assert session.sample_rate == 22050
    assert session.signal.shape[0] / 22050 >= 5.0
    profile = voice_profile(np.full(8, 3), np.random.default_rng(0))
    assert 90 <= profile.wpm <= 230 and 0 <= profile.pitch <= 99 and 0 < profile.amplitude <= 200
    with pytest.raises(ValueError):
        voice_profile(np.array([4, 0, 0, 0, 0, 0, 0, 0]), np.random.default_rng(0))
