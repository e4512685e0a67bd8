"""decode_audio on generated media: every container/codec the service accepts, and bad input."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import correlate

from app.features.audio import AudioDecodeError, DecodeReport, decode_audio
from tests.media import face_frames, speak, speech_signal, talking_head, write_audio, write_video

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt)")

RATE = 16000
TEXT = "Over the last two weeks I have been feeling down, and I have had trouble sleeping."
DURATION_TOLERANCE_S = 0.1  # codec padding, e.g. AAC's last 1024-sample frame
MAX_LAG_S = 0.005  # encoder priming (AAC 1024, MP3 1105 samples) must be trimmed, not left as a shift
ENVELOPE_MIN_CORR = 0.8


@dataclass(frozen=True)
class Case:
    name: str
    suffix: str
    source_rate: int  # rate of the encoded signal; decode_audio resamples it to RATE
    video: bool = False


AUDIO_CASES = [
    Case("wav-16k", ".wav", 16000),
    Case("wav-22k", ".wav", 22050),
    Case("flac-16k", ".flac", 16000),
    Case("flac-44k", ".flac", 44100),
    Case("ogg-opus-48k", ".ogg", 48000),
    Case("opus-16k", ".opus", 16000),
    Case("mp3-22k", ".mp3", 22050),
    Case("mp3-44k", ".mp3", 44100),
    Case("m4a-aac-16k", ".m4a", 16000),
    Case("m4a-aac-44k", ".m4a", 44100),
    Case("webm-opus-16k", ".webm", 16000),
]
VIDEO_CASES = [
    Case("mp4-h264-aac", ".mp4", 16000, video=True),
    Case("webm-vp9-opus", ".webm", 16000, video=True),
    Case("mov-h264-aac", ".mov", 16000, video=True),
]
CASES = AUDIO_CASES + VIDEO_CASES


@pytest.fixture(scope="session")
def reference() -> np.ndarray:
    return speech_signal(TEXT, RATE)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every case's file, written once per session (about 1 s in all)."""
    folder = tmp_path_factory.mktemp("media")
    files: dict[str, Path] = {}
    for case in AUDIO_CASES:
        path = folder / f"{case.name}{case.suffix}"
        files[case.name] = write_audio(speech_signal(TEXT, case.source_rate), case.source_rate, path)
    for case in VIDEO_CASES:
        files[case.name] = talking_head(folder / f"{case.name}{case.suffix}", TEXT, fps=10)
    files["espeak-wav"] = speak(TEXT, folder / "espeak.wav")
    files["silent-mp4"] = write_video(folder / "silent.mp4", face_frames(10), fps=10)
    return files


def _envelope_db(signal: np.ndarray, hop: int = 160, window: int = 400) -> np.ndarray:
    """Frame energy in dB (25 ms windows, 10 ms hop), floored 60 dB under the peak."""
    frames = np.lib.stride_tricks.sliding_window_view(signal.astype(np.float64), window)[::hop]
    energy = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    return np.maximum(energy, energy.max() - 60.0)


def _envelope_corr(decoded: np.ndarray, source: np.ndarray) -> float:
    a, b = _envelope_db(decoded), _envelope_db(source)
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


def _best_lag(decoded: np.ndarray, source: np.ndarray) -> int:
    """Shift (samples) of decoded against source at the cross-correlation peak."""
    n = min(decoded.size, source.size)
    xcorr = correlate(decoded[:n], source[:n], mode="full", method="fft")
    return int(np.argmax(np.abs(xcorr))) - (n - 1)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_decode_gives_the_source_speech_as_mono_float32_16k(
    case: Case, media: dict[str, Path], reference: np.ndarray
) -> None:
    signal = decode_audio(media[case.name], RATE)

    assert signal.dtype == np.float32 and signal.ndim == 1
    assert abs(signal.size - reference.size) / RATE <= DURATION_TOLERANCE_S
    assert _envelope_corr(signal, reference) > ENVELOPE_MIN_CORR
    assert abs(_best_lag(signal, reference)) <= MAX_LAG_S * RATE


def test_espeak_wav_at_22050_decodes_to_the_resampled_reference(media: dict[str, Path], reference: np.ndarray) -> None:
    with av.open(str(media["espeak-wav"])) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.codec_context.name, stream.channels) == (22050, "pcm_s16le", 1)
    signal = decode_audio(media["espeak-wav"], RATE)

    assert abs(signal.size - reference.size) <= 2  # only resampler rounding at the end
    assert _envelope_corr(signal, reference) > 0.99


@pytest.mark.parametrize("name", ["wav-16k", "flac-16k"])
def test_lossless_at_the_target_rate_is_sample_exact(name: str, media: dict[str, Path], reference: np.ndarray) -> None:
    signal = decode_audio(media[name], RATE)

    assert signal.size == reference.size
    np.testing.assert_allclose(signal, reference, rtol=0, atol=1.0 / 32768)  # one s16 quantisation step


@pytest.mark.parametrize("name", ["wav-22k", "m4a-aac-44k", "mp3-22k", "webm-vp9-opus", "mp4-h264-aac"])
def test_max_seconds_truncates_to_a_prefix_of_the_full_decode(name: str, media: dict[str, Path]) -> None:
    full = decode_audio(media[name], RATE)
    head = decode_audio(media[name], RATE, max_seconds=1.0)

    assert head.size == RATE
    # the stream is decoded from the same start, so the prefix is the same samples
    np.testing.assert_allclose(head, full[:RATE], atol=1e-5)


def test_max_seconds_beyond_the_end_returns_everything(media: dict[str, Path]) -> None:
    full = decode_audio(media["flac-16k"], RATE)

    assert decode_audio(media["flac-16k"], RATE, max_seconds=60.0).size == full.size


def test_stereo_is_mixed_down_to_mono(tmp_path: Path, reference: np.ndarray) -> None:
    # speech on the left only: the mono mix must still hold it
    stereo = np.stack([reference, np.zeros_like(reference)], axis=1)
    signal = decode_audio(write_audio(stereo, RATE, tmp_path / "left.wav"), RATE)

    assert signal.ndim == 1 and signal.size == reference.size
    assert _envelope_corr(signal, reference) > 0.99


def test_dual_mono_stereo_keeps_the_level(tmp_path: Path, reference: np.ndarray) -> None:
    stereo = np.stack([reference, reference], axis=1)
    signal = decode_audio(write_audio(stereo, RATE, tmp_path / "dual.wav"), RATE)

    gain = float(np.dot(signal, reference) / np.dot(reference, reference))
    assert gain == pytest.approx(1.0, abs=0.01)


def test_talking_head_video_covers_the_audio(media: dict[str, Path], reference: np.ndarray) -> None:
    with av.open(str(media["mp4-h264-aac"])) as container:
        video_frames = sum(1 for _ in container.decode(video=0))
    assert abs(video_frames / 10 - reference.size / RATE) <= 0.1


def test_video_without_audio_stream_raises(media: dict[str, Path]) -> None:
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        decode_audio(media["silent-mp4"], RATE)


def _zero_bytes(folder: Path, media: dict[str, Path]) -> Path:
    path = folder / "empty.wav"
    path.write_bytes(b"")
    return path


def _random_bytes(suffix: str):
    def make(folder: Path, media: dict[str, Path]) -> Path:
        path = folder / f"random{suffix}"
        path.write_bytes(np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
        return path

    return make


def _truncated_mp4(folder: Path, media: dict[str, Path]) -> Path:
    data = media["mp4-h264-aac"].read_bytes()
    path = folder / "truncated.mp4"
    path.write_bytes(data[: int(0.4 * len(data))])  # the moov atom (index) is at the end and is lost
    return path


BAD_INPUTS = {
    "zero-byte": _zero_bytes,
    "random.wav": _random_bytes(".wav"),
    "random.mp3": _random_bytes(".mp3"),
    "random.mp4": _random_bytes(".mp4"),
    "random.ogg": _random_bytes(".ogg"),
    "truncated-mp4": _truncated_mp4,
}


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_unreadable_input_raises_audio_decode_error(kind: str, tmp_path: Path, media: dict[str, Path]) -> None:
    path = BAD_INPUTS[kind](tmp_path, media)

    # any other exception type (av.error.*, OSError, EOFError) escapes pytest.raises and fails the test
    with pytest.raises(AudioDecodeError):
        decode_audio(path, RATE)


def test_missing_file_raises_audio_decode_error(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError):
        decode_audio(tmp_path / "absent.wav", RATE)


def test_damaged_packets_are_skipped_and_counted_not_fatal(media: dict[str, Path], tmp_path: Path) -> None:
    clean = decode_audio(media["mp3-22k"], RATE)
    data = bytearray(media["mp3-22k"].read_bytes())
    rng = np.random.default_rng(3)
    for offset in rng.integers(len(data) // 4, 3 * len(data) // 4, 40):
        data[offset] ^= 0xFF  # 40 damaged bytes in the middle
    junk = rng.integers(0, 256, 65536, dtype=np.uint8).tobytes()  # and garbage appended
    path = tmp_path / "damaged.mp3"
    path.write_bytes(bytes(data) + junk)
    report = DecodeReport()
    signal = decode_audio(path, RATE, report=report)
    assert report.skipped_packets > 0 and report.packets > 10 * report.skipped_packets
    assert signal.size >= 0.95 * clean.size


def test_a_mostly_damaged_recording_is_refused(media: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(media["mp3-22k"].read_bytes())
    rng = np.random.default_rng(5)
    for offset in range(1000, len(data), 20):
        data[offset : offset + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    path = tmp_path / "ruined.mp3"
    path.write_bytes(bytes(data))
    report = DecodeReport()
    with pytest.raises(AudioDecodeError):
        decode_audio(path, RATE, report=report)
