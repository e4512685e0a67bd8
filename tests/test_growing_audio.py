"""The acoustic features of a growing recording: the same frames as decoding the whole WAV, with
only the new samples read at each update."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.contract import AudioSpec
from app.features import audio, growing_audio
from tests.media import GrowingWav, speech_signal

SPEC = AudioSpec()
ROW_BYTES = 4 * (SPEC.n_mels + 1)


@pytest.fixture(scope="module")
def call() -> np.ndarray:
    """About 25 s of speech and pauses at 16 kHz."""
    words = speech_signal("I have not been sleeping well and I feel tired most days of the week.", voice="en-us")
    pause = np.zeros(SPEC.sample_rate // 2, dtype=np.float32)
    rng = np.random.default_rng(7)
    parts = [np.concatenate([words, pause]) for _ in range(5)]
    signal = np.concatenate(parts)[: 30 * SPEC.sample_rate]
    return (signal + 0.002 * rng.standard_normal(signal.shape[0])).astype(np.float32)


def test_a_tail_gives_the_frames_the_whole_signal_gives_from_its_first_frame(call: np.ndarray) -> None:
    args = (SPEC.sample_rate, SPEC.n_fft, SPEC.hop_length, SPEC.n_mels, SPEC.fmin, SPEC.fmax)
    whole = audio.mel_power(call, *args)
    for first in (0, 1, 2, 57, whole.shape[0] - 1):
        origin = max(0, first * SPEC.hop_length - SPEC.n_fft // 2)
        # equal up to the float rounding of a matrix product over fewer columns
        np.testing.assert_allclose(
            audio.mel_power_from(call[origin:], origin, first, *args), whole[first:], rtol=1e-5, atol=1e-12
        )
    with pytest.raises(ValueError):
        audio.mel_power_from(call[5000:], 5000, 1, *args)  # frame 1 reads samples before 5000


def test_final_frames_are_those_later_samples_cannot_change(call: np.ndarray) -> None:
    n = 7 * SPEC.sample_rate + 123
    args = (SPEC.sample_rate, SPEC.n_fft, SPEC.hop_length, SPEC.n_mels, SPEC.fmin, SPEC.fmax)
    early, later = audio.mel_power(call[:n], *args), audio.mel_power(call, *args)
    final = audio.final_frames(n, SPEC.n_fft, SPEC.hop_length)
    np.testing.assert_allclose(early[:final], later[:final], rtol=1e-5, atol=1e-12)
    assert not np.allclose(early[final], later[final], rtol=1e-3)  # the next one still changes
    assert audio.final_frames(SPEC.n_fft // 2 - 1, SPEC.n_fft, SPEC.hop_length) == 0


def test_features_grown_in_uneven_steps_equal_those_of_the_whole_decoded_wav(tmp_path: Path, call: np.ndarray) -> None:
    wav, cache = GrowingWav(tmp_path / "call.wav"), tmp_path / "call.mel"
    cut = 0
    for step in (100, 4000, 3 * SPEC.sample_rate + 11, 7, 10 * SPEC.sample_rate, call.shape[0]):
        wav.append(call[cut : cut + step])
        cut = min(call.shape[0], cut + step)
        grown = growing_audio.update(wav.path, cache, SPEC)
        whole = audio.decode_audio(wav.path, SPEC.sample_rate)
        expected = audio.audio_features(whole, SPEC)
        got, times = growing_audio.grown_features(grown, SPEC)
        assert times is None and grown.n_samples == whole.shape[0] == cut
        assert got.frames.shape == expected.frames.shape
        np.testing.assert_allclose(got.frames, expected.frames, atol=1e-4)
        assert np.array_equal(got.speech, expected.speech)
        assert got.snr_db == pytest.approx(expected.snr_db, abs=1e-4)
        assert got.level_dbfs == pytest.approx(expected.level_dbfs, abs=1e-4)
        assert got.duration_s == pytest.approx(expected.duration_s)
        # the cache holds the final frames only: the last ones are computed again next time
        rows = (cache.stat().st_size if cache.exists() else 0) // ROW_BYTES
        assert rows == growing_audio.cached_rows(cut, SPEC) < expected.frames.shape[0] or rows == 0
    wav.close()


def test_an_update_reads_only_the_new_samples(tmp_path: Path, call: np.ndarray) -> None:
    wav, cache = GrowingWav(tmp_path / "call.wav"), tmp_path / "call.mel"
    half = call.shape[0] // 2
    wav.append(call[:half])
    before = growing_audio.update(wav.path, cache, SPEC)
    wav.append(call[half:])
    wav.close()
    # the first half is silenced on disk: an update that read it again would see the change
    with wav.path.open("r+b") as handle:
        handle.seek(44)
        handle.write(bytes(2 * (half - SPEC.n_fft)))
    after = growing_audio.update(wav.path, cache, SPEC)
    rows = growing_audio.cached_rows(half, SPEC)
    assert np.array_equal(after.mel_db[:rows], before.mel_db[:rows])
    assert np.array_equal(after.hop_energy[:rows], before.hop_energy[:rows])
    fresh = growing_audio.update(wav.path, tmp_path / "fresh.mel", SPEC)  # no cache: the silence is seen
    assert fresh.mel_db[: rows // 2].max() < before.mel_db[: rows // 2].max() - 40


def test_a_cache_that_does_not_fit_the_recording_is_cut_back(tmp_path: Path, call: np.ndarray) -> None:
    wav, cache = GrowingWav(tmp_path / "call.wav"), tmp_path / "call.mel"
    wav.append(call)
    wav.close()
    expected = growing_audio.update(wav.path, tmp_path / "clean.mel", SPEC)
    growing_audio.update(wav.path, cache, SPEC)
    size = cache.stat().st_size
    with cache.open("r+b") as handle:  # a worker killed while it appended
        handle.truncate(size - ROW_BYTES // 2)
    got = growing_audio.update(wav.path, cache, SPEC)
    assert cache.stat().st_size == size
    np.testing.assert_allclose(got.mel_db, expected.mel_db, atol=1e-4)
    cache.write_bytes(bytes(size + 50 * ROW_BYTES))  # more rows than this recording can have
    got = growing_audio.update(wav.path, cache, SPEC)
    assert cache.stat().st_size == size
    np.testing.assert_allclose(got.mel_db, expected.mel_db, atol=1e-4)


def test_turns_keep_the_frames_spoken_within_them_on_the_recording_clock(tmp_path: Path, call: np.ndarray) -> None:
    wav = GrowingWav(tmp_path / "call.wav")
    wav.append(call)
    wav.close()
    grown = growing_audio.update(wav.path, tmp_path / "call.mel", SPEC)
    turns = [(2.0, 6.0), (12.5, 20.0)]
    got, times = growing_audio.grown_features(grown, SPEC, turns)
    assert times is not None and got.frames.shape[0] == times.shape[0]
    assert all(any(start <= t < end for start, end in turns) for t in times)
    assert times.shape[0] == pytest.approx(11.5 * SPEC.rate_hz, abs=2)
    assert got.duration_s == pytest.approx(11.5, abs=0.05)
    # the turns' share of the recording, as keep_segments would give it
    kept = audio.keep_segments(audio.decode_audio(wav.path, SPEC.sample_rate), SPEC.sample_rate, turns)
    assert got.level_dbfs == pytest.approx(audio.audio_features(kept, SPEC).level_dbfs, abs=0.1)
    # turns that miss the audio: all of it, no times (the branch says so)
    everything, none = growing_audio.grown_features(grown, SPEC, [(40.0, 45.0)])
    assert none is None and everything.frames.shape[0] == grown.mel_db.shape[0]


def test_the_bandwidth_is_measured_on_the_newest_samples(tmp_path: Path, call: np.ndarray) -> None:
    wav = GrowingWav(tmp_path / "call.wav")
    long = np.tile(call, 8)  # over 3 minutes
    wav.append(long)
    wav.close()
    grown = growing_audio.update(wav.path, tmp_path / "call.mel", SPEC)
    newest = round(growing_audio.BANDWIDTH_TAIL_S * SPEC.sample_rate)
    assert grown.tail.shape[0] == newest
    np.testing.assert_allclose(grown.tail, long[-newest:], atol=2**-15)
