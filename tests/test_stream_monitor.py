"""Live audio warnings (pure): silence and clipping over the last 10 s, and another voice than
the session's first one, each once per episode."""

from __future__ import annotations

import numpy as np

from app.stream.monitor import CLIPPING, SILENCE, AudioMonitor, VoiceMonitor, other_voice

RATE = 16000


def _pcm(signal: np.ndarray) -> list[bytes]:
    """As 100-ms blocks of s16le, as a live client sends them."""
    samples = np.clip(np.round(signal * 32767), -32768, 32767).astype("<i2")
    return [samples[i : i + 1600].tobytes() for i in range(0, samples.size, 1600)]


def _speech_like(seconds: float, level: float = 0.1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    return level * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.normal(
        size=t.size
    )


def _warnings(monitor: AudioMonitor, signal: np.ndarray) -> list[str]:
    return [w for block in _pcm(signal) for w in monitor.feed(block)]


def test_sound_at_a_normal_level_raises_nothing() -> None:
    assert _warnings(AudioMonitor(), _speech_like(40)) == []


def test_ten_seconds_of_silence_are_warned_about_once_per_episode() -> None:
    monitor = AudioMonitor()
    assert _warnings(monitor, _speech_like(12)) == []
    assert _warnings(monitor, np.zeros(9 * RATE)) == []  # under 10 s: not yet
    assert _warnings(monitor, np.zeros(20 * RATE)) == [SILENCE]  # once, however long it lasts
    assert _warnings(monitor, _speech_like(12, seed=1)) == []  # cleared
    assert _warnings(monitor, np.full(12 * RATE, 1e-5)) == [SILENCE]  # a second episode


def test_clipped_audio_is_warned_about() -> None:
    monitor = AudioMonitor()
    loud = np.clip(_speech_like(15, level=3.0), -1.0, 1.0)
    assert _warnings(monitor, loud) == [CLIPPING]
    assert _warnings(AudioMonitor(), np.clip(_speech_like(15, level=0.9), -1, 1)) == []


def _print(direction: int) -> tuple[float, ...]:
    voice = np.zeros(256)
    voice[direction] = 1.0
    return tuple(voice)


def test_another_voice_speaking_for_five_seconds_is_warned_about_once_per_episode() -> None:
    monitor = VoiceMonitor()
    # the first 10 s of printed speech are the session's voice
    assert monitor.feed([(0.0, 4.0, _print(0)), (5.0, 11.0, _print(0))]) == []
    assert monitor.feed([(12.0, 15.0, _print(1))]) == []  # 3 s of another voice: not yet
    assert monitor.feed([(16.0, 18.5, _print(1))]) == [other_voice(12.0)]
    assert monitor.feed([(19.0, 30.0, _print(1))]) == []  # the same episode
    assert monitor.feed([(31.0, 33.0, _print(0)), (34.0, 40.0, _print(2))]) == [other_voice(34.0)]
