"""Speech-to-text (app.speech.recognition) over the shipped Moonshine tiny files, on generated speech only.

Speech comes from espeak-ng (tests.asr_clips); word error rates are our own word-level
Levenshtein. The bounds come from measurement on this machine with a margin (figures next
to each bound); espeak-ng is a clean synthetic voice, so they say the pipeline works, not
how well real interviews are heard.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.model_store import sha256_file, speech_to_text_dir
from app.runtime import RuntimeConfig
from app.speech.recognition import (
    MIN_SEGMENT_S,
    MODEL_FILES,
    SAMPLE_RATE,
    Recognised,
    SpeechModelIntegrityError,
    SpeechRecogniser,
    plan_pieces,
    token_cap,
)
from tests.asr_clips import SENTENCES, spoken, spoken_clip, word_error_rate, word_errors, words
from tests.conftest import MODEL_STORE

MODEL_DIR = speech_to_text_dir(MODEL_STORE)
pytestmark = pytest.mark.skipif(
    not all((MODEL_DIR / name).is_file() for name in (*MODEL_FILES, "provenance.json")),
    reason=f"speech-to-text model files absent from {MODEL_DIR} (python -m training.build_speech_to_text)",
)

# measured: the three sentences 0.077, 0.0, 0.214, pooled 4/40 = 0.10
MAX_SENTENCE_WER = 0.25
# measured: the first seven sentences as one 33.3 s clip, cut once (at 28.31 s): 1/89 = 0.011
MAX_LONG_CLIP_WER = 0.15
LONG_CLIP_SENTENCES = 7


@pytest.fixture(scope="module")
def recogniser() -> SpeechRecogniser:
    return SpeechRecogniser(MODEL_DIR, RuntimeConfig(intra_op_threads=1))


@pytest.fixture(scope="module")
def long_clip() -> tuple[np.ndarray, list[tuple[float, float]]]:
    return spoken_clip(SENTENCES[:LONG_CLIP_SENTENCES], gap_s=0.5)


# ------------------------------------------------------------------ the shipped files


def test_files_match_the_sha256_the_builder_pins_and_provenance_records(recogniser: SpeechRecogniser) -> None:
    from training.build_speech_to_text import SHIPPED

    provenance = json.loads((MODEL_DIR / "provenance.json").read_text())
    assert recogniser.verify() == provenance["sha256"]
    assert {item.name: item.sha256 for item in SHIPPED} == provenance["sha256"]
    for name in MODEL_FILES:
        assert sha256_file(MODEL_DIR / name) == provenance["sha256"][name] == provenance["files"][name]["sha256"]
        assert (MODEL_DIR / name).stat().st_size == provenance["bytes"][name]


def test_verify_rejects_a_file_that_differs_from_provenance(tmp_path: Path) -> None:
    for name in MODEL_FILES:
        (tmp_path / name).symlink_to(MODEL_DIR / name)
    provenance = json.loads((MODEL_DIR / "provenance.json").read_text())
    provenance["sha256"]["decoder.onnx"] = "0" * 64
    (tmp_path / "provenance.json").write_text(json.dumps(provenance))
    with pytest.raises(SpeechModelIntegrityError, match=r"decoder\.onnx"):
        SpeechRecogniser(tmp_path).verify()


def test_licence_and_provenance_are_shipped(recogniser: SpeechRecogniser) -> None:
    licence = (MODEL_DIR / "LICENSE").read_text()
    assert licence.count("Permission is hereby granted, free of charge") == 2  # npm package and wheel
    assert "COMMUNITY LICENSE" not in licence  # the npm package's Spanish-model licence is not ours to ship
    provenance = json.loads((MODEL_DIR / "provenance.json").read_text())
    assert provenance["licence"] == "MIT"
    assert [s["package"] for s in provenance["sources"]] == ["@moonshine-ai/moonshine-js", "useful-moonshine-onnx"]
    assert provenance["check"]["heard"] == provenance["check"]["expected"]
    interface = provenance["interface"]
    assert [i["name"] for i in interface["encoder"]["inputs"]] == list(recogniser.encoder.input_names)
    assert [i["name"] for i in interface["decoder"]["inputs"]] == list(recogniser.decoder.input_names)
    assert [o["name"] for o in interface["decoder"]["outputs"]] == list(recogniser.decoder.output_names)


def test_sessions_run_on_the_cpu(recogniser: SpeechRecogniser) -> None:
    assert recogniser.providers == ["CPUExecutionProvider"]
    assert recogniser.encoder.providers == ["CPUExecutionProvider"]


# ------------------------------------------------------------------ what it hears


def test_three_sentences_are_heard_within_the_measured_word_error_rate(recogniser: SpeechRecogniser) -> None:
    errors = total = 0
    for sentence in SENTENCES[:3]:
        heard = recogniser.transcribe(spoken(sentence))
        e, n = word_errors(sentence, heard.text)
        errors, total = errors + e, total + n
        assert e / n <= 0.4, (sentence, heard.text)
        assert not heard.capped
        assert heard.tokens <= token_cap(heard.seconds)
        assert heard.confidence is not None and 0.0 < heard.confidence <= 1.0
        assert heard.pieces == ((0.0, heard.seconds),)
    assert errors / total <= MAX_SENTENCE_WER


def test_the_same_audio_gives_the_same_answer(recogniser: SpeechRecogniser) -> None:
    signal = spoken(SENTENCES[1])
    assert recogniser.transcribe(signal) == recogniser.transcribe(signal.astype(np.float64))


def _silence(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.zeros(n)


def _white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return 0.05 * rng.standard_normal(n)


def _rumble(rng: np.random.Generator, n: int) -> np.ndarray:
    walk = np.cumsum(rng.standard_normal(n))  # brown noise: the energy in the lowest frequencies
    walk -= walk.mean()
    return 0.1 * walk / np.abs(walk).max()


def _mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    return 0.1 * np.sin(2 * np.pi * 50 * np.arange(n) / SAMPLE_RATE)


@pytest.mark.parametrize("noise", [_silence, _white_noise, _rumble, _mains_hum])
def test_silence_and_noise_give_little_or_no_text(recogniser: SpeechRecogniser, noise: Callable) -> None:
    rng = np.random.default_rng(16)
    heard = recogniser.transcribe(noise(rng, 3 * SAMPLE_RATE).astype(np.float32))
    # measured: no text at all for every one of them
    assert len(words(heard.text)) <= 1, heard.text
    assert not heard.capped


def test_too_short_input_gives_empty_text_without_running_the_model(recogniser: SpeechRecogniser) -> None:
    heard = recogniser.transcribe(np.zeros(int(0.05 * SAMPLE_RATE), dtype=np.float32))
    assert heard == Recognised(text="", tokens=0, confidence=None, seconds=0.05, capped=False, pieces=())
    shortest = recogniser.transcribe(np.zeros(round(MIN_SEGMENT_S * SAMPLE_RATE), dtype=np.float32))
    assert shortest.pieces == ((0.0, MIN_SEGMENT_S),)


def test_the_token_cap_stops_decoding_and_says_so() -> None:
    signal = spoken(SENTENCES[0])
    seconds = len(signal) / SAMPLE_RATE
    full = SpeechRecogniser(MODEL_DIR).transcribe(signal)
    capped = SpeechRecogniser(MODEL_DIR, tokens_per_second=1.0).transcribe(signal)
    assert token_cap(seconds, 1.0) == 5 < full.tokens
    assert capped.tokens == 5 and capped.capped
    assert not full.capped
    assert full.text.startswith(capped.text)  # greedy: the same first tokens, then cut


def test_token_cap_rate() -> None:
    assert token_cap(1.0) == 7  # 6.5 per second, rounded up
    assert token_cap(0.1) == 1
    assert token_cap(64.0) == 416
    assert token_cap(0.0) == 1


def test_input_longer_than_the_limit_is_cut_in_a_pause_and_still_transcribed(
    recogniser: SpeechRecogniser, long_clip: tuple[np.ndarray, list[tuple[float, float]]]
) -> None:
    signal, spans = long_clip
    heard = recogniser.transcribe(signal)
    assert heard.seconds > recogniser.max_segment_s
    assert len(heard.pieces) == 2
    (_, cut), (start, end) = heard.pieces
    assert cut == start and end == heard.seconds
    assert cut <= recogniser.max_segment_s
    # the cut lies in a pause: the 0.2 s around it are silent (between two sentences, not inside one)
    around = signal[round((cut - 0.1) * SAMPLE_RATE) : round((cut + 0.1) * SAMPLE_RATE)]
    assert np.abs(around).max() == 0.0
    assert any(before[0] < cut < after[0] for before, after in itertools.pairwise(spans))
    assert not heard.capped
    assert heard.tokens <= sum(token_cap(b - a) for a, b in heard.pieces)
    assert word_error_rate(" ".join(SENTENCES[:LONG_CLIP_SENTENCES]), heard.text) <= MAX_LONG_CLIP_WER


def test_segments_are_transcribed_with_their_times(
    recogniser: SpeechRecogniser, long_clip: tuple[np.ndarray, list[tuple[float, float]]]
) -> None:
    signal, spans = long_clip
    duration = len(signal) / SAMPLE_RATE
    chosen = [spans[4], spans[1], (duration - 0.3, duration + 5.0)]
    timed = recogniser.transcribe_segments(signal, chosen)
    assert [(t.start_s, t.end_s) for t in timed[:2]] == [spans[4], spans[1]]
    assert word_error_rate(SENTENCES[4], timed[0].text) <= MAX_SENTENCE_WER
    assert word_error_rate(SENTENCES[1], timed[1].text) <= MAX_SENTENCE_WER
    assert timed[0].recognised.pieces == (pytest.approx(spans[4]),)  # times in the signal, not the segment
    assert timed[2].end_s == duration and timed[2].text == ""  # clipped to the signal; the tail is silence
    with pytest.raises(ValueError, match="end before start"):
        recogniser.transcribe_segments(signal, [(2.0, 1.0)])


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((2, SAMPLE_RATE), dtype=np.float32), "mono"),
        (np.zeros(SAMPLE_RATE, dtype=np.int16), "float"),
        (np.full(SAMPLE_RATE, np.nan, dtype=np.float32), "NaN"),
    ],
    ids=["stereo", "int16", "nan"],
)
def test_bad_samples_are_refused(recogniser: SpeechRecogniser, samples: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        recogniser.transcribe(samples)


def test_the_segment_limit_stays_within_the_models_range() -> None:
    with pytest.raises(ValueError, match="max_segment_s"):
        SpeechRecogniser(MODEL_DIR, max_segment_s=65.0)
    with pytest.raises(ValueError, match="tokens_per_second"):
        SpeechRecogniser(MODEL_DIR, tokens_per_second=0.0)


# ------------------------------------------------------------------ where long input is cut (pure numpy)


def test_a_signal_within_the_limit_is_one_piece() -> None:
    assert plan_pieces(np.zeros(30 * SAMPLE_RATE, dtype=np.float32), 30.0) == [(0, 30 * SAMPLE_RATE)]


def test_cuts_go_to_the_quietest_stretch_before_the_limit() -> None:
    rng = np.random.default_rng(7)
    signal = (0.1 * rng.standard_normal(100 * SAMPLE_RATE)).astype(np.float32)
    dips = (25.0, 52.0, 79.0)
    for dip in dips:  # 0.3 s pauses; a deeper but too short (30 ms) dip next to each must not win
        signal[int((dip - 0.15) * SAMPLE_RATE) : int((dip + 0.15) * SAMPLE_RATE)] *= 0.01
        signal[int((dip - 2.0) * SAMPLE_RATE) : int((dip - 1.97) * SAMPLE_RATE)] = 0.0
    pieces = plan_pieces(signal, max_segment_s=30.0, search_s=10.0)
    cuts = [end / SAMPLE_RATE for _, end in pieces[:-1]]
    assert cuts == pytest.approx(dips, abs=0.06)  # inside the 0.1 s where the window fits the pause
    assert pieces[-1][1] == len(signal)


@pytest.mark.parametrize("seconds", [30.0 + 1 / SAMPLE_RATE, 30.05, 45.0, 61.0, 200.0])
def test_pieces_cover_the_signal_within_the_limits(seconds: float) -> None:
    rng = np.random.default_rng(int(seconds * 1000))
    signal = (0.1 * rng.standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)
    pieces = plan_pieces(signal, max_segment_s=30.0, search_s=10.0)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(signal)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(MIN_SEGMENT_S * SAMPLE_RATE <= end - start <= 30 * SAMPLE_RATE for start, end in pieces)
    assert len(pieces) >= 2


def test_a_long_silence_is_cut_in_its_middle() -> None:
    rng = np.random.default_rng(3)
    signal = (0.1 * rng.standard_normal(40 * SAMPLE_RATE)).astype(np.float32)
    signal[24 * SAMPLE_RATE : 28 * SAMPLE_RATE] = 0.0  # digital silence: every point in it ties
    ((_, cut), _) = plan_pieces(signal, max_segment_s=30.0, search_s=10.0)
    assert cut / SAMPLE_RATE == pytest.approx(26.0, abs=0.02)
