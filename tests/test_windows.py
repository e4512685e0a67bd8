"""Feature tracks -> masked, fixed-size windows."""

from __future__ import annotations

import numpy as np
import pytest

from app.contract import FeatureSpec
from app.windows import AudioTrack, TextTrack, VisualTrack, build_windows, window_count

FEATURES = FeatureSpec()


def _audio(seconds: float, speech_every: int = 2) -> AudioTrack:
    n = round(seconds * FEATURES.audio.rate_hz)
    frames = np.arange(n, dtype=np.float32)[:, None].repeat(FEATURES.audio.n_mels, axis=1)
    return AudioTrack(frames=frames, speech=np.arange(n) % speech_every == 0, snr_db=20.0)


def _visual(seconds: float, lost: slice | None = None) -> VisualTrack:
    n = round(seconds * FEATURES.visual.rate_hz)
    frames = np.ones((n, FEATURES.visual.dim), np.float32) * np.arange(n, dtype=np.float32)[:, None]
    valid = np.ones(n, bool)
    if lost is not None:
        valid[lost] = False
        frames[lost] = 0.0
    return VisualTrack(frames=frames, valid=valid, confidence=np.full(n, 0.9, np.float32))


@pytest.mark.parametrize(("seconds", "expected"), [(5, 1), (60, 1), (61, 2), (110, 2), (110.5, 3), (600, 12)])
def test_window_count_covers_the_timeline_with_the_manifest_hop(seconds: float, expected: int) -> None:
    assert window_count(seconds, FEATURES) == expected


def test_windows_start_on_the_hop_and_carry_the_right_frames() -> None:
    batch = build_windows(FEATURES, audio=_audio(130.0))
    assert batch.size == 3
    np.testing.assert_allclose(batch.start_s, [0.0, 50.0, 100.0])
    first_frame = batch.audio[1, 0, 0]
    assert first_frame == round(50.0 * FEATURES.audio.rate_hz)
    # the last window is padded: its mask ends where the audio does
    real = round(130.0 * FEATURES.audio.rate_hz) - round(100.0 * FEATURES.audio.rate_hz)
    assert batch.audio_mask[2].sum() == real
    assert batch.audio[2, real:].sum() == 0
    assert batch.coverage[2] == pytest.approx(real / FEATURES.frames_per_window("audio"))


def test_absent_modalities_are_zero_and_masked() -> None:
    batch = build_windows(FEATURES, audio=_audio(30.0))
    np.testing.assert_array_equal(batch.modality_mask, [[0.0, 1.0, 0.0]])
    assert batch.visual.sum() == 0 and batch.text.sum() == 0
    assert batch.quality[0, 0].sum() == 0 and batch.quality[0, 2].sum() == 0
    assert batch.quality[0, 1, 0] == pytest.approx(0.5, abs=0.01)  # every other frame is speech


def test_a_window_without_any_face_marks_visual_absent_there() -> None:
    rate = FEATURES.visual.rate_hz
    track = _visual(120.0, lost=slice(round(45 * rate), None))  # the face leaves after 45 s
    batch = build_windows(FEATURES, visual=track, audio=_audio(120.0))
    assert batch.modality_mask[:, 0].tolist() == [1.0, 0.0, 0.0]
    assert batch.modality_mask[:, 1].tolist() == [1.0, 1.0, 1.0]
    assert batch.quality[0, 0, 0] == pytest.approx(45 / 60)


def test_utterances_go_to_the_windows_they_start_in_at_most_ten_each() -> None:
    starts = np.concatenate([np.linspace(0, 49, 25), [55.0, 70.0]])
    emb = np.eye(len(starts), FEATURES.text.dim, dtype=np.float32)
    text = TextTrack(embeddings=emb, start_s=starts, word_counts=np.full(len(starts), 10))
    batch = build_windows(FEATURES, text=text)
    assert batch.size == 2
    assert batch.text_mask[0].sum() == 10  # 26 candidates spread down to ten
    chosen = np.flatnonzero(batch.text[0].sum(axis=0))
    assert chosen[0] == 0 and chosen[-1] == 25  # first and last kept, order preserved
    assert batch.text_mask[1].sum() == 2  # 55 s (overlap) and 70 s
    assert batch.quality[1, 2].tolist() == pytest.approx([0.2, 0.5])


def test_windows_in_which_no_modality_holds_anything_are_dropped() -> None:
    # two utterances at 10 s and 290 s beside a face lost after 45 s: windows between hold nothing
    rate = FEATURES.visual.rate_hz
    visual = _visual(300.0, lost=slice(round(45 * rate), None))
    emb = np.ones((2, FEATURES.text.dim), np.float32)
    text = TextTrack(embeddings=emb, start_s=np.array([10.0, 290.0]), word_counts=np.array([12, 12]))
    batch = build_windows(FEATURES, visual=visual, text=text)
    assert batch.modality_mask.any(axis=1).all()
    np.testing.assert_allclose(batch.start_s, [0.0, 250.0])  # 50..200 s held neither a face nor words
    assert batch.size == 2 and batch.coverage.shape == (2,) and batch.audio.shape[0] == 2


def test_building_with_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        build_windows(FEATURES)


def test_participant_audio_lands_in_the_windows_of_the_time_it_was_spoken() -> None:
    """Turns at 10-40 s and 155-182 s of the interview: their frames sit in the windows of those
    times (packed inside each window), not end to end from 0 s."""
    from app.features.audio import frame_times, kept_spans

    rate, sample_rate = FEATURES.audio.rate_hz, FEATURES.audio.sample_rate
    turns = [(10.0, 40.0), (155.0, 182.0)]
    spans = kept_spans(round(200 * sample_rate), sample_rate, turns)
    n = round(57.0 * rate)
    track = _audio(57.0)
    times = frame_times(n, rate, spans)
    timed = AudioTrack(frames=track.frames, speech=track.speech, snr_db=20.0, times_s=times)
    batch = build_windows(FEATURES, audio=timed)
    np.testing.assert_allclose(batch.start_s, [0.0, 100.0, 150.0])  # the empty 50-110 s window is dropped
    seconds = batch.audio_mask.sum(axis=1) / rate
    np.testing.assert_allclose(seconds, [30.0, 5.0, 27.0], atol=2 / rate)
    # the 150-210 s window starts with the frame spoken at 155 s: kept frame 30 s into the turns
    assert batch.audio[2, 0, 0] == pytest.approx(round(30.0 * rate), abs=1)
    assert times[0] == pytest.approx(10.0) and times[-1] == pytest.approx(182.0 - 1 / rate, abs=1 / rate)
