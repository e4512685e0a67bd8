"""Which track or channel is the participant's (app.speech.sources), on generated two-voice calls
written by PyAV and decoded by the service's own decoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.contract import AudioSpec
from app.errors import ConflictingInputError
from app.features.audio import decode_audio
from app.speech.sources import channels_are_independent, participant_source
from tests.media import speech_signal, write_media

RATE = 16000
SPEC = AudioSpec()
PATIENT_LINES = [
    "I have been feeling pretty down over the last couple of weeks and nothing helps.",
    "Most nights I lie awake and I cannot get back to sleep until the morning.",
    "I used to love going hiking with my friends but lately I do not enjoy it at all.",
]
CLINICIAN_LINE = "How have you been?"


Spans = list[tuple[float, float]]


def _call(clinician_talks: float = 1.0) -> tuple[np.ndarray, np.ndarray, Spans, Spans]:
    """Two sides of a call, each silent while the other speaks: (patient, clinician) signals and
    their true turns. ``clinician_talks`` repeats the clinician's line to make them talk more."""
    patient, clinician = [], []
    patient_turns, clinician_turns, t = [], [], 0.0
    for line in PATIENT_LINES:
        question = speech_signal(" ".join([CLINICIAN_LINE] * max(1, round(clinician_talks))), RATE, voice="en-gb")
        answer = speech_signal(line, RATE, voice="en-us")
        gap = np.zeros(RATE // 4, np.float32)
        clinician += [question, gap, np.zeros_like(answer), gap]
        patient += [np.zeros_like(question), gap, answer, gap]
        clinician_turns.append((t, t + question.size / RATE))
        t += (question.size + gap.size) / RATE
        patient_turns.append((t, t + answer.size / RATE))
        t += (answer.size + gap.size) / RATE
    return np.concatenate(patient), np.concatenate(clinician), patient_turns, clinician_turns


@pytest.fixture(scope="module")
def call() -> tuple[np.ndarray, np.ndarray, Spans, Spans]:
    return _call()


def _tracks(path: Path) -> list[tuple[str, np.ndarray]]:
    import av

    with av.open(str(path)) as container:
        count = len(container.streams.audio)
    return [(f"track {k + 1}", decode_audio(path, RATE, track=k, mix=False)) for k in range(count)]


def test_two_tracks_choose_the_patient_whatever_their_order(tmp_path: Path, call) -> None:
    patient, clinician, _, _ = call
    first = write_media(tmp_path / "a.mkv", None, 10, [patient, clinician], RATE, audio_codec="aac")
    second = write_media(tmp_path / "b.mkv", None, 10, [clinician, patient], RATE, audio_codec="aac")
    a = participant_source(_tracks(first), SPEC)
    b = participant_source(_tracks(second), SPEC)
    assert a.source.name == "track 1" and b.source.name == "track 2"
    np.testing.assert_allclose(a.source.signal, b.source.signal, atol=1e-6)
    [selection] = a.selections
    assert selection.kind == "audio_track" and selection.confident and not a.warnings
    assert [c.chosen for c in selection.candidates] == [True, False]
    assert selection.candidates[0].seconds > 1.5 * selection.candidates[1].seconds


def test_the_transcript_turns_pick_the_track_when_the_clinician_talks_more(tmp_path: Path) -> None:
    patient, clinician, patient_turns, clinician_turns = _call(clinician_talks=8)
    path = write_media(tmp_path / "c.mkv", None, 10, [patient, clinician], RATE, audio_codec="flac")
    by_amount = participant_source(_tracks(path), SPEC)
    assert by_amount.source.name == "track 2", "the premise: the clinician has more speech"
    by_turns = participant_source(
        _tracks(path), SPEC, participant_turns=patient_turns, other_turns=clinician_turns
    )
    assert by_turns.source.name == "track 1"
    assert by_turns.selections[0].confident and "turns" in by_turns.selections[0].rule


def test_the_track_option_wins_and_an_impossible_one_is_refused(tmp_path: Path, call) -> None:
    patient, clinician, _, _ = call
    path = write_media(tmp_path / "d.mkv", None, 10, [patient, clinician], RATE, audio_codec="aac")
    chosen = participant_source(_tracks(path), SPEC, track_option=1)
    assert chosen.source.name == "track 2" and chosen.selections[0].rule == "the option participant_track"
    with pytest.raises(ConflictingInputError, match="2 audio tracks"):
        participant_source(_tracks(path), SPEC, track_option=2)


def test_similar_tracks_give_a_weak_choice_and_a_warning(tmp_path: Path, call) -> None:
    patient, _, _, _ = call
    path = write_media(tmp_path / "e.mkv", None, 10, [patient, patient * 0.9], RATE, audio_codec="flac")
    choice = participant_source(_tracks(path), SPEC)
    assert not choice.selections[0].confident
    assert any("participant_track" in w for w in choice.warnings)


def test_one_side_per_channel_is_split_and_dual_mono_is_not(tmp_path: Path, call) -> None:
    patient, clinician, _, _ = call
    split = write_media(tmp_path / "f.wav", None, 10, [np.stack([clinician, patient], axis=1)], RATE,
                        audio_codec="pcm_s16le")
    mono = write_media(tmp_path / "g.wav", None, 10, [np.stack([patient, patient], axis=1)], RATE,
                       audio_codec="pcm_s16le")
    [(_, channels)] = _tracks(split)
    assert channels_are_independent(channels)
    choice = participant_source(_tracks(split), SPEC)
    assert choice.source.name == "right channel"
    assert [s.kind for s in choice.selections] == ["audio_channel"]
    np.testing.assert_allclose(choice.source.signal, patient, atol=2e-4)  # 16-bit rounding
    forced = participant_source(_tracks(split), SPEC, channel_option=0)
    assert forced.source.name == "left channel"

    [(_, same)] = _tracks(mono)
    assert not channels_are_independent(same)
    plain = participant_source(_tracks(mono), SPEC)
    assert plain.selections == [] and plain.source.name == "track 1"
    with pytest.raises(ConflictingInputError, match="participant_channel"):
        participant_source(_tracks(mono), SPEC, channel_option=1)


def test_a_voice_panned_across_both_channels_is_one_scene(call) -> None:
    patient, _, _, _ = call
    delayed = np.concatenate([np.zeros(8, np.float32), patient[:-8]])  # 0.5 ms: two microphones apart
    assert not channels_are_independent(np.stack([0.8 * patient, 0.5 * delayed]))


def test_the_envelope_measure_matches_its_documented_figures(call) -> None:
    from app.speech.sources import envelope_correlation

    patient, clinician, _, _ = call
    delayed = np.concatenate([np.zeros(8, np.float32), patient[:-8]])
    assert envelope_correlation(np.stack([patient, patient])) == pytest.approx(1.0)
    assert envelope_correlation(np.stack([patient, delayed])) > 0.95
    assert envelope_correlation(np.stack([clinician, patient])) < 0.0
