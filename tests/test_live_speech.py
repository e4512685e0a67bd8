"""Speech recognition of a live session's audio as it comes (issue 18): a call recognises the
stretches a pause has ended and leaves the open one for the next call, so words cut by the
arrival of the audio are never lost or heard twice; the session side keeps the words, drops
the audio done with, and caps what waits."""

from __future__ import annotations

import numpy as np
import pytest

from app.model_store import speech_to_text_dir
from app.runtime import RuntimeConfig
from app.speech.live import LiveWords, hear_new_speech
from app.speech.recognition import SpeechRecogniser
from app.stream.live_speech import LiveSpeech
from tests.asr_clips import SENTENCES, spoken_clip, word_error_rate
from tests.conftest import MODEL_STORE

RATE = 16000


def _pcm(signal: np.ndarray) -> bytes:
    return (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def recogniser() -> SpeechRecogniser:
    return SpeechRecogniser(speech_to_text_dir(MODEL_STORE), RuntimeConfig(intra_op_threads=1))


def test_words_cut_by_the_arrival_of_the_audio_are_heard_once_in_the_next_call(recogniser: SpeechRecogniser) -> None:
    sentences = SENTENCES[:3]
    signal, spans = spoken_clip(sentences, gap_s=1.0)
    pcm = _pcm(signal)
    # the audio so far ends in the middle of the second sentence
    cut = round((spans[1][0] + spans[1][1]) / 2 * RATE) * 2
    first = hear_new_speech(pcm[:cut], 0.0, recogniser)
    assert len(first.utterances) == 1 and word_error_rate(sentences[0], first.utterances[0][2]) <= 0.2
    start, end, _ = first.utterances[0]
    # on the session clock, as the voice activity rule places the stretch (quiet word ends fall off)
    assert start == pytest.approx(spans[0][0], abs=0.3) and end == pytest.approx(spans[0][1], abs=0.6)
    # done with the audio up to the open stretch: it starts the next call
    done_s = first.consumed_samples / RATE
    assert spans[0][1] <= done_s <= spans[1][0] + 0.05
    rest = hear_new_speech(pcm[first.consumed_samples * 2 :], done_s, recogniser, last=True)
    assert rest.consumed_samples * 2 == len(pcm) - first.consumed_samples * 2
    # in two calls, what one call over the whole clip hears: the same stretches, the same words
    whole = hear_new_speech(pcm, 0.0, recogniser, last=True)
    heard = [*first.utterances, *rest.utterances]
    assert [text for _, _, text in heard] == [text for _, _, text in whole.utterances]
    assert np.allclose([(a, b) for a, b, _ in heard], [(a, b) for a, b, _ in whole.utterances], atol=0.02)
    assert word_error_rate(sentences[1], heard[1][2]) <= 0.2


def test_silence_is_done_with_and_holds_no_words(recogniser: SpeechRecogniser) -> None:
    words = hear_new_speech(bytes(2 * RATE * 6), 12.0, recogniser)
    assert words.utterances == () and words.consumed_samples >= RATE * 5


def test_the_session_keeps_the_words_and_drops_the_audio_done_with() -> None:
    speech = LiveSpeech(every_s=1.0, max_waiting_s=3.0)
    speech.add(bytes(2 * RATE))  # 1 s
    assert speech.ready()
    pcm, start = speech.next_call()
    assert (len(pcm), start) == (2 * RATE, 0.0) and not speech.ready()  # one call in flight
    speech.add(bytes(RATE))  # 0.5 s more while it runs
    speech.heard(LiveWords(((0.1, 0.6, "hello"),), consumed_samples=RATE * 3 // 4, confidence=0.9, seconds=0.5))
    assert speech.heard_s == 0.75
    assert speech.segments == [{"speaker": "Participant", "start": 0.1, "end": 0.6, "text": "hello"}]
    pcm, start = speech.next_call()
    assert start == 0.75 and len(pcm) == 2 * RATE + RATE - RATE * 3 // 2  # 0.75 s left
    assert speech.add(bytes(2 * RATE * 3)) == "the live speech recognition fell behind the stream"
    assert not speech.ready(now=True)
