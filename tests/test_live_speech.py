"""Speech recognition of a live session's audio as it comes (issue 18): a call recognises the
stretches a pause has ended and leaves the open one for the next call, so words cut by the
arrival of the audio are never lost or heard twice; the session side keeps the words, drops
the audio done with, and caps what waits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.model_store import speech_to_text_dir
from app.pipeline.extraction import LiveSpeechJob, hear_live_speech
from app.runtime import RuntimeConfig
from app.speech.hearing import SpeechModels
from app.speech.live import LiveWords, hear_new_speech
from app.speech.recognition import SpeechRecogniser
from app.stream.live_speech import LiveSpeech
from app.stream.protocol import ConfigMessage
from app.stream.recording import StreamRecording
from tests.asr_clips import SENTENCES, spoken_clip, word_error_rate
from tests.conftest import MODEL_STORE
from tests.test_live_video import LIMITS

RATE = 16000


def _pcm(signal: np.ndarray) -> bytes:
    return (np.clip(signal, -1, 1) * 32767).astype("<i2").tobytes()


def _as_streamed(signal: np.ndarray) -> np.ndarray:
    """The signal as a session's 16-bit PCM brings it."""
    return np.frombuffer(_pcm(signal), dtype="<i2").astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def recogniser() -> SpeechRecogniser:
    return SpeechRecogniser(speech_to_text_dir(MODEL_STORE), RuntimeConfig(intra_op_threads=1))


def test_words_cut_by_the_arrival_of_the_audio_are_heard_once_in_the_next_call(recogniser: SpeechRecogniser) -> None:
    sentences = SENTENCES[:3]
    clip, spans = spoken_clip(sentences, gap_s=1.0)
    signal = _as_streamed(clip)
    # the audio so far ends in the middle of the second sentence
    cut = round((spans[1][0] + spans[1][1]) / 2 * RATE)
    first = hear_new_speech(signal[:cut], 0.0, recogniser)
    assert len(first.utterances) == 1 and word_error_rate(sentences[0], first.utterances[0][2]) <= 0.2
    start, end, _ = first.utterances[0]
    # on the session clock, as the voice activity rule places the stretch (quiet word ends fall off)
    assert start == pytest.approx(spans[0][0], abs=0.3) and end == pytest.approx(spans[0][1], abs=0.6)
    # done with the audio up to the open stretch: it starts the next call
    done_s = first.consumed_samples / RATE
    assert spans[0][1] <= done_s <= spans[1][0] + 0.05
    rest = hear_new_speech(signal[first.consumed_samples :], done_s, recogniser, last=True)
    assert rest.consumed_samples == len(signal) - first.consumed_samples
    # in two calls, what one call over the whole clip hears: the same stretches, the same words
    whole = hear_new_speech(signal, 0.0, recogniser, last=True)
    heard = [*first.utterances, *rest.utterances]
    assert [text for _, _, text in heard] == [text for _, _, text in whole.utterances]
    assert np.allclose([(a, b) for a, b, _ in heard], [(a, b) for a, b, _ in whole.utterances], atol=0.02)
    assert word_error_rate(sentences[1], heard[1][2]) <= 0.2


def test_silence_is_done_with_and_holds_no_words(recogniser: SpeechRecogniser) -> None:
    words = hear_new_speech(np.zeros(RATE * 6, np.float32), 12.0, recogniser)
    assert words.utterances == () and words.consumed_samples >= RATE * 5


def test_the_worker_reads_its_samples_from_the_sessions_growing_wav(
    recogniser: SpeechRecogniser, tmp_path: Path
) -> None:
    clip, spans = spoken_clip(SENTENCES[:2], gap_s=1.0)
    recording = StreamRecording(tmp_path, ConfigMessage(type="config", audio={}), LIMITS)
    pcm = _pcm(clip)
    for k in range(0, len(pcm), 3200):  # 100-ms frames; the file stays open, as during a call
        recording.add_audio(pcm[k : k + 3200])
    first = round(spans[1][0] * RATE) - RATE // 4  # from just before the second sentence
    job = LiveSpeechJob(recording.audio_path, first, len(pcm) // 2, last=True)
    heard = hear_live_speech(job, SpeechModels(None, recogniser))
    direct = hear_new_speech(_as_streamed(clip)[first:], first / RATE, recogniser, last=True)
    recording.close()
    assert heard == direct and len(heard.utterances) == 1
    assert heard.utterances[0][0] == pytest.approx(spans[1][0], abs=0.3)


def test_the_session_counts_the_audio_and_keeps_the_words() -> None:
    speech = LiveSpeech(every_s=1.0, max_waiting_s=3.0)
    speech.add(RATE)  # 1 s
    assert speech.ready()
    assert speech.next_call() == (0, RATE) and not speech.ready()  # one call in flight
    speech.add(RATE // 2)  # 0.5 s more while it runs
    speech.heard(LiveWords(((0.1, 0.6, "hello"),), consumed_samples=RATE * 3 // 4, confidence=0.9, seconds=0.5))
    assert speech.heard_s == 0.75
    assert speech.segments == [{"speaker": "Participant", "start": 0.1, "end": 0.6, "text": "hello"}]
    assert speech.ready(now=True) and not speech.ready()  # 0.75 s waits: less than a call's 1 s
    assert speech.next_call() == (RATE * 3 // 4, RATE * 3 // 2)
    speech.heard(LiveWords((), consumed_samples=0, confidence=None, seconds=0.0))
    assert speech.add(RATE * 3) == "the live speech recognition fell behind the stream"
    assert not speech.ready(now=True)


def test_another_voice_is_told_from_the_sessions_own_by_its_voice_prints(recogniser: SpeechRecogniser) -> None:
    from app.speech.voices import load_voice_encoder
    from app.stream.monitor import VoiceMonitor
    from tests.media import speech_signal

    encoder = load_voice_encoder(MODEL_STORE, RuntimeConfig(intra_op_threads=1))
    gap = np.zeros(RATE, np.float32)
    patient = [speech_signal(sentence, RATE, voice="en-us+m3") for sentence in SENTENCES[:4]]
    other = [speech_signal(sentence, RATE, voice="en+anika") for sentence in SENTENCES[4:6]]
    signal = _as_streamed(np.concatenate([part for voice in (*patient, *other) for part in (voice, gap)]))
    other_from = sum(len(v) + len(gap) for v in patient) / RATE
    monitor, warnings, done = VoiceMonitor(), [], 0
    for end in range(5 * RATE, len(signal) + 5 * RATE, 5 * RATE):  # a call every 5 s, as a session makes
        last = end >= len(signal)
        words = hear_new_speech(signal[done:end], done / RATE, recogniser, last=last, voice_encoder=encoder)
        done += words.consumed_samples
        warnings += monitor.feed(words.voices)
    assert len(warnings) == 1, warnings
    since = float(warnings[0].split("since ")[1].split(" s")[0])
    assert abs(since - other_from) <= 1.5, (warnings, other_from)
