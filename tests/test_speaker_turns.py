"""Speaker turns (app/speech/turns.py) with the real voice encoder on generated espeak-ng
interviews: who speaks when, how many people speak, and what the count rests on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.model_store import sha256_file, voice_encoder_dir
from app.runtime import CPU_DEFAULT, ModelRuntime
from app.speech.turns import SAME_VOICE_MIN_SIMILARITY, speaker_turns, voice_activity
from app.speech.voices import embed_segments, encoder_mel, load_voice_encoder
from tests.interviews import CLINICIAN, PATIENT, VOICE_PAIRS, attribution_accuracy, interview
from tests.media import speech_signal

pytestmark = pytest.mark.slow
STORE = Path("model_store")


@pytest.fixture(scope="module")
def encoder() -> ModelRuntime:
    return load_voice_encoder(STORE, CPU_DEFAULT)


def test_the_shipped_encoder_is_the_one_its_provenance_names() -> None:
    folder = voice_encoder_dir(STORE)
    provenance = json.loads((folder / "provenance.json").read_text())
    assert sha256_file(folder / "model.onnx") == provenance["sha256"]["model.onnx"]
    assert provenance["conversion"]["parity_max_abs_diff"] <= provenance["conversion"]["parity_limit"]
    assert provenance["licence"] == "Apache-2.0" and (folder / "LICENSE").read_text().startswith(" " * 5)


@pytest.mark.parametrize(("clinician", "patient"), VOICE_PAIRS, ids=lambda v: v)
def test_two_voices_are_told_apart_and_the_patient_speaks_most(
    encoder: ModelRuntime, clinician: str, patient: str
) -> None:
    spoken = interview(clinician, patient)
    found = speaker_turns(spoken.samples, encoder)
    assert found.count.speakers == 2, found.count
    assert attribution_accuracy(found.frame_labels, spoken.turns) >= 0.95
    # speaker 0 speaks most, and it is the patient
    assert found.speech_s[0] > found.speech_s[1]
    assert found.speech_s[0] == pytest.approx(spoken.seconds(PATIENT), rel=0.15)
    patient_frames = np.concatenate([np.arange(round(a * 100), round(b * 100)) for a, b in spoken.spans(PATIENT)])
    labels = found.frame_labels[patient_frames]
    assert np.mean(labels[labels >= 0] == 0) >= 0.95
    # turns are ordered, do not overlap, and each clinician question is its own turn
    starts = [t.start_s for t in found.turns]
    assert starts == sorted(starts)
    assert all(a.end_s <= b.start_s for a, b in zip(found.turns, found.turns[1:], strict=False))
    assert len(found.spans(1)) == len(spoken.spans(CLINICIAN))
    assert all(0.0 <= t.confidence <= 1.0 for t in found.turns)


# the pairs with different base voices; en-us+m3 / en-us+f4 (two variants of one voice) merge
# into one speaker when the questions cut in (bench/speech_stage.py --quality, README)
@pytest.mark.parametrize(("clinician", "patient"), VOICE_PAIRS[1:], ids=lambda v: v)
def test_questions_cutting_in_and_back_channels_still_give_two_voices(
    encoder: ModelRuntime, clinician: str, patient: str
) -> None:
    spoken = interview(clinician, patient, exchanges=6, overlap_s=0.4, backchannels=True)
    found = speaker_turns(spoken.samples, encoder)
    assert found.count.speakers == 2, found.count
    # no pause between an answer and the next question: the voice prints of 1.5-s pieces keep them apart
    assert attribution_accuracy(found.frame_labels, spoken.turns) >= 0.9
    assert found.speech_s[0] == pytest.approx(spoken.seconds(PATIENT), rel=0.1)


def test_merged_voices_score_no_better_than_the_larger_share() -> None:
    spoken = interview("en-us+m3", "en-us+f4", exchanges=2)
    one_voice = np.zeros(round(spoken.samples.size / 160), int)
    patient_share = spoken.seconds(PATIENT) / (spoken.seconds(PATIENT) + spoken.seconds(CLINICIAN))
    assert attribution_accuracy(one_voice, spoken.turns) == pytest.approx(patient_share, abs=0.02)


@pytest.mark.parametrize("voice", ["en-us+m3", "en-us+f4", "en+Alicia"])
def test_one_voice_asking_and_answering_is_one_speaker(encoder: ModelRuntime, voice: str) -> None:
    found = speaker_turns(interview(voice, voice).samples, encoder)
    assert found.count.speakers == 1 and found.count.confidence > 0.5
    assert "one voice" in found.count.rule
    assert len(found.speech_s) == 1 and {t.speaker for t in found.turns} == {0}


def test_three_voices_are_three_speakers(encoder: ModelRuntime) -> None:
    first = interview("en-us+m3", "en-us+f4", exchanges=3)
    third = speech_signal(" ".join(["My brother works at a small bakery near the river."] * 4), voice="en+anika")
    signal = np.concatenate([first.samples, third, np.zeros(8000, np.float32)])
    found = speaker_turns(signal, encoder)
    assert found.count.speakers == 3, found.count
    tail = found.frame_labels[round(first.samples.size / 160) :]
    assert np.bincount(tail[tail >= 0]).argmax() not in set(found.frame_labels[: round(first.samples.size / 160)])


def test_a_forced_count_is_honoured(encoder: ModelRuntime) -> None:
    spoken = interview("en-us+m3", "en-us+f4", exchanges=3)
    found = speaker_turns(spoken.samples, encoder, speakers=1)
    assert found.count.speakers == 1 and found.count.rule == "the count asked for (1)"
    assert speaker_turns(spoken.samples, encoder, speakers=2).count.speakers == 2


@pytest.mark.parametrize("kind", ["silence", "noise", "empty"])
def test_no_speech_is_no_speaker_and_no_turn(encoder: ModelRuntime, kind: str) -> None:
    rng = np.random.default_rng(1)
    signal = {
        "silence": np.zeros(5 * 16000, np.float32),
        "noise": (0.05 * rng.standard_normal(5 * 16000)).astype(np.float32),
        "empty": np.zeros(0, np.float32),
    }[kind]
    found = speaker_turns(signal, encoder)
    assert found.count.speakers == 0 and found.turns == [] and found.speech_s == []


def test_the_level_of_the_recording_does_not_change_the_turns(encoder: ModelRuntime) -> None:
    spoken = interview("en-gb-x-rp+m7", "en+anika", exchanges=3)
    loud = speaker_turns(spoken.samples, encoder)
    quiet = speaker_turns(spoken.samples * 0.1, encoder)  # 20 dB down
    assert quiet.count.speakers == loud.count.speakers == 2
    assert np.mean(quiet.frame_labels == loud.frame_labels) >= 0.99


def test_voice_activity_finds_the_spoken_stretches() -> None:
    spoken = interview("en-us+m3", "en-us+f4", exchanges=2)
    speech = voice_activity(encoder_mel(spoken.samples))
    inside = np.concatenate([np.arange(round(a * 100), round(b * 100)) for a, b, _ in spoken.turns])
    outside = np.setdiff1d(np.arange(speech.size), inside)
    assert speech[inside].mean() > 0.85 and speech[outside].mean() < 0.05


def test_same_voice_scores_above_the_line_and_different_voices_below(encoder: ModelRuntime) -> None:
    """The measurement behind SAME_VOICE_MIN_SIMILARITY, on whole sentences of each voice."""
    sentences = ["I have not been sleeping well lately.", "We moved to this city three years ago."]
    prints = {}
    for voice in ("en-us+m3", "en-us+f4", "en+anika"):
        signals = [speech_signal(s, voice=voice) for s in sentences]
        prints[voice] = np.stack([embed_segments(x, [(0.0, x.size / 16000)], encoder)[0] for x in signals])
    for voice, p in prints.items():
        assert float(p[0] @ p[1]) > SAME_VOICE_MIN_SIMILARITY, voice
    assert float(np.mean(prints["en-us+m3"] @ prints["en-us+f4"].T)) < SAME_VOICE_MIN_SIMILARITY
    assert float(np.mean(prints["en-us+m3"] @ prints["en+anika"].T)) < SAME_VOICE_MIN_SIMILARITY
