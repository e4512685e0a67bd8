"""The synthetic participant's voice: espeak-ng speech whose prosody follows the PHQ-8 items.

``speak_session`` voices a participant's sentences until the session lasts about
``target_s`` seconds: one espeak-ng call (``--stdout``, SSML with ``-m``) per batch of
sentences, the sentences separated by a long SSML break that is found again in the
waveform and cut, so every utterance's start and end are exact sample positions. The
utterances are then laid out with the participant's own pauses between them, resampled
from espeak's 22050 Hz to the requested rate, and a low noise floor is added (there is
never digital silence).

Effects, with s = item score / 3 in [0, 1], on top of per-person baselines:

=============  =====================================  =========  =========================
item           acoustic parameter                     direction  size at item = 3
=============  =====================================  =========  =========================
psychomotor    speaking rate (espeak ``-s`` wpm)      slower     -15 %
energy         speaking rate                          slower     -8 %
psychomotor    word gap (``-g``, 10 ms units)         longer     +3 (30 ms per word)
concentration  word gap                               longer     +2 (20 ms per word)
psychomotor    pause between utterances (median)      longer     +80 %
concentration  pause between utterances               longer     +50 %
concentration  mid-sentence hesitation (SSML break)   more       P 0.05 -> 0.35 per sentence
psychomotor    mid-sentence hesitation                more       P +0.15 per sentence
mood           base pitch (``-p``, 0-99)              lower      -8
interest       base pitch                             lower      -4
mood           pitch range (SSML prosody range %)     flatter    -35 % of the baseline
interest       pitch range                            flatter    -25 % of the baseline
energy         amplitude (``-a``)                     quieter    -20 % (about -2 dB)
sleep          amplitude                              quieter    -10 % (about -1 dB)
=============  =====================================  =========  =========================

Per person: voice (en-us, en, en-gb-x-rp, en-gb-scotland, en-029, en-us-nyc with one of
the +m1..m7 / +f1..f4 variants), baseline rate N(170, 14) wpm, pitch N(50, 8), range
N(100 %, 12 %), amplitude N(110, 10), word gap 0-1, median pause 0.45-0.9 s, recording
gain -8..0 dB and a noise floor of -65..-50 dBFS (RMS) with a random spectral tilt.
Per sentence (SSML prosody): jitter of rate +-5 %, pitch +-4 %, range +-10 %, volume
+-8 % (standard deviations); pauses log-normal (sigma 0.35) around the median.

espeak-ng ``-p`` moves the whole contour, and SSML ``<prosody range="N%">`` scales the
contour's excursion (measured with pyin on one sentence: 1.2 semitones standard
deviation at 100 %, 0.2 at 10 %, 2.2 at 200 %); ``rate="N%"`` multiplies ``-s``;
``<break>`` is not scaled by the rate.

Cost: about 0.1 s of CPU per minute of speech (espeak-ng, cutting, soxr resampling and
noise; 60 minutes of 5-minute sessions in 6.2 CPU seconds on this machine), so 1000
minutes take under two minutes on one core.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from app.contract import PHQ8_ITEMS

ESPEAK_RATE = 22050
# the separator between sentences of one espeak call; no pause inside a sentence comes near
SEPARATOR_MS = 2500
SEPARATOR_MIN_S = 1.8
SENTENCES_PER_CALL = 12
FRAME = 110  # 5 ms at 22050 Hz, for silence detection
SILENCE_BELOW_PEAK_DB = 45.0

_LANGUAGES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
_MALE = tuple(f"m{i}" for i in range(1, 8))
_FEMALE = tuple(f"f{i}" for i in range(1, 5))


@dataclass(frozen=True)
class Utterance:
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SpokenSession:
    signal: np.ndarray  # float32 mono at sample_rate, peak < 1, never digitally silent
    utterances: list[Utterance]
    sample_rate: int = 16000


@dataclass(frozen=True)
class VoiceProfile:
    """One participant's voice: per-person baselines with the item effects applied."""

    voice: str  # espeak-ng -v, language+variant
    wpm: int  # -s
    pitch: int  # -p, 0-99
    range_pct: float  # SSML prosody range
    amplitude: int  # -a, 0-200
    word_gap: int  # -g, units of 10 ms
    pause_s: float  # median pause between utterances
    hesitation_p: float  # chance of a mid-sentence break per sentence
    gain_db: float  # recording level
    noise_dbfs: float  # RMS of the noise floor
    noise_tilt: float  # 0 white .. 0.95 strongly low-passed


def _score(items: np.ndarray, name: str) -> float:
    return float(items[PHQ8_ITEMS.index(name)]) / 3.0


def _check_items(items: np.ndarray) -> np.ndarray:
    scores = np.asarray(items).reshape(-1)
    if scores.shape != (len(PHQ8_ITEMS),) or not np.all((scores >= 0) & (scores <= 3)):
        raise ValueError(f"items must be {len(PHQ8_ITEMS)} scores in 0..3, got {items!r}")
    return scores.astype(np.int64)


def voice_profile(items: np.ndarray, rng: np.random.Generator) -> VoiceProfile:
    """Draw a person's voice baselines and apply the item effects of the module table."""
    items = _check_items(items)
    psychomotor, energy = _score(items, "psychomotor"), _score(items, "energy")
    concentration, mood = _score(items, "concentration"), _score(items, "mood")
    interest, sleep = _score(items, "interest"), _score(items, "sleep")
    variants = _FEMALE if rng.random() < 0.5 else _MALE
    voice = f"{_LANGUAGES[int(rng.integers(len(_LANGUAGES)))]}+{variants[int(rng.integers(len(variants)))]}"
    wpm = rng.normal(170.0, 14.0) * (1.0 - 0.15 * psychomotor - 0.08 * energy)
    pitch = rng.normal(50.0, 8.0) - 8.0 * mood - 4.0 * interest
    range_pct = max(rng.normal(100.0, 12.0), 60.0) * (1.0 - 0.35 * mood - 0.25 * interest)
    amplitude = rng.normal(110.0, 10.0) * (1.0 - 0.2 * energy - 0.1 * sleep)
    word_gap = int(rng.integers(0, 2)) + round(3 * psychomotor + 2 * concentration)
    pause_s = rng.uniform(0.45, 0.9) * (1.0 + 0.8 * psychomotor + 0.5 * concentration)
    return VoiceProfile(
        voice=voice,
        wpm=int(np.clip(round(wpm), 90, 230)),
        pitch=int(np.clip(round(pitch), 5, 95)),
        range_pct=float(np.clip(range_pct, 15.0, 160.0)),
        amplitude=int(np.clip(round(amplitude), 40, 180)),
        word_gap=word_gap,
        pause_s=float(pause_s),
        hesitation_p=float(np.clip(0.05 + 0.3 * concentration + 0.15 * psychomotor, 0.0, 0.6)),
        gain_db=float(rng.uniform(-8.0, 0.0)),
        noise_dbfs=float(rng.uniform(-65.0, -50.0)),
        noise_tilt=float(rng.uniform(0.0, 0.95)),
    )


def _sentence_ssml(text: str, profile: VoiceProfile, rng: np.random.Generator) -> str:
    """One sentence in a prosody element with per-sentence jitter, maybe a hesitation break."""
    words = escape(text).split()
    if len(words) >= 6 and rng.random() < profile.hesitation_p:
        at = int(rng.integers(2, len(words) - 2))
        words.insert(at, f'<break time="{int(rng.uniform(250, 700))}ms"/>')
    rate = 100.0 * np.exp(rng.normal(0.0, 0.05))
    pitch = 100.0 * np.exp(rng.normal(0.0, 0.04))
    pitch_range = profile.range_pct * np.exp(rng.normal(0.0, 0.10))
    volume = 100.0 * np.exp(rng.normal(0.0, 0.08))
    return (
        f'<prosody rate="{rate:.0f}%" pitch="{pitch:.0f}%" range="{pitch_range:.0f}%" volume="{volume:.0f}%">'
        + " ".join(words)
        + "</prosody>"
    )


def _espeak(ssml: str, profile: VoiceProfile) -> np.ndarray:
    """espeak-ng's float32 waveform at 22050 Hz (stdout, no files)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    command = [
        exe,
        "--stdout",
        "-m",
        "-z",
        "-v",
        profile.voice,
        "-s",
        str(profile.wpm),
        "-p",
        str(profile.pitch),
        "-a",
        str(profile.amplitude),
        "-g",
        str(profile.word_gap),
        f"<speak>{ssml}</speak>",
    ]
    wav = subprocess.run(command, capture_output=True, check=True, timeout=120).stdout
    return _wav_samples(wav)


def _wav_samples(wav: bytes) -> np.ndarray:
    """16-bit mono PCM from espeak's streamed WAV (whose size fields may be placeholders)."""
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not return a WAV stream")
    rate = int.from_bytes(wav[24:28], "little")
    if rate != ESPEAK_RATE or int.from_bytes(wav[22:24], "little") != 1:
        raise RuntimeError(f"unexpected espeak-ng output: {rate} Hz")
    data = wav.find(b"data", 12)
    pcm = wav[data + 8 :]
    pcm = pcm[: len(pcm) // 2 * 2]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _frame_silence(audio: np.ndarray) -> np.ndarray:
    """Per 5 ms frame: True where the level is far below the call's loudest frames."""
    n = audio.shape[0] // FRAME
    if n == 0:
        return np.ones(0, dtype=bool)
    power = np.mean(np.square(audio[: n * FRAME].reshape(n, FRAME), dtype=np.float64), axis=1)
    level = 10.0 * np.log10(power + 1e-12)
    return level < np.percentile(level, 99) - SILENCE_BELOW_PEAK_DB


def _trim(audio: np.ndarray) -> np.ndarray:
    """Cut leading and trailing silence, keeping 10 ms around the speech."""
    voiced = np.flatnonzero(~_frame_silence(audio))
    if voiced.size == 0:
        return audio[:0]
    start = max(0, (voiced[0] - 2) * FRAME)
    end = min(audio.shape[0], (voiced[-1] + 3) * FRAME)
    return audio[start:end]


def _split(audio: np.ndarray, n: int) -> list[np.ndarray] | None:
    """Cut one call's waveform at the n - 1 separator breaks; None when they are not clear."""
    silent = _frame_silence(audio)
    edges = np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    inner = (starts > 0) & (ends < silent.shape[0])
    long_runs = inner & ((ends - starts) * FRAME / ESPEAK_RATE >= SEPARATOR_MIN_S)
    if int(long_runs.sum()) != n - 1:
        return None
    cuts = [0] + [int((a + b) // 2) * FRAME for a, b in zip(starts[long_runs], ends[long_runs], strict=True)]
    cuts.append(audio.shape[0])
    pieces = [_trim(audio[a:b]) for a, b in itertools.pairwise(cuts)]
    return pieces if all(p.size for p in pieces) else None


def _voice_batch(texts: list[str], profile: VoiceProfile, rng: np.random.Generator) -> list[np.ndarray]:
    """Each sentence's trimmed waveform; one espeak call for the batch, one each if cutting fails."""
    parts = [_sentence_ssml(t, profile, rng) for t in texts]
    separator = f'<break time="{SEPARATOR_MS}ms"/>'
    pieces = _split(_espeak(separator.join(parts), profile), len(texts))
    if pieces is None:
        pieces = [_trim(_espeak(part, profile)) for part in parts]
    return pieces


def _noise(n: int, profile: VoiceProfile, rng: np.random.Generator) -> np.ndarray:
    """Room-like noise floor: white noise through a one-pole low-pass, at the profile's RMS."""
    from scipy.signal import lfilter

    white = rng.standard_normal(n)
    coloured = lfilter([1.0 - profile.noise_tilt], [1.0, -profile.noise_tilt], white)
    rms = float(np.sqrt(np.mean(np.square(coloured)))) or 1.0
    return (coloured * (10.0 ** (profile.noise_dbfs / 20.0) / rms)).astype(np.float32)


def _resample(signal: np.ndarray, rate: int) -> np.ndarray:
    if rate == ESPEAK_RATE:
        return signal
    try:
        import soxr  # librosa's own resampler; several times faster than resample_poly

        return soxr.resample(signal, ESPEAK_RATE, rate).astype(np.float32)
    except ImportError:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate, ESPEAK_RATE)
        return resample_poly(signal, rate // g, ESPEAK_RATE // g).astype(np.float32)


def speak_session(
    sentences: Iterator[str],
    items: np.ndarray,
    target_s: float,
    rng: np.random.Generator,
    sample_rate: int = 16000,
) -> SpokenSession:
    """Voice sentences until the session lasts about ``target_s`` seconds (at least one utterance)."""
    profile = voice_profile(items, rng)
    sentences = iter(sentences)
    lead_s = float(rng.uniform(0.3, 1.0))
    cursor = int(lead_s * ESPEAK_RATE)
    placed: list[tuple[str, int, np.ndarray]] = []
    seconds_per_word = 60.0 / profile.wpm
    done = False
    while not done:
        remaining = target_s - cursor / ESPEAK_RATE
        # a guess at the sentences still needed (about 11 words each), so little is voiced in vain
        guess = remaining / (11.0 * seconds_per_word + profile.pause_s)
        texts = list(itertools.islice(sentences, int(np.clip(np.ceil(guess), 1, SENTENCES_PER_CALL))))
        if not texts:
            break
        for text, audio in zip(texts, _voice_batch(texts, profile, rng), strict=True):
            placed.append((text, cursor, audio))
            pause = float(np.clip(profile.pause_s * np.exp(rng.normal(0.0, 0.35)), 0.15, 5.0))
            cursor += audio.shape[0] + int(pause * ESPEAK_RATE)
            if cursor / ESPEAK_RATE >= target_s:
                done = True
                break

    speech = np.zeros(cursor, dtype=np.float32)
    utterances = []
    gain = 10.0 ** (profile.gain_db / 20.0)
    for text, start, audio in placed:
        speech[start : start + audio.shape[0]] = audio * gain
        utterances.append(Utterance(text, start / ESPEAK_RATE, (start + audio.shape[0]) / ESPEAK_RATE))
    signal = _resample(speech, sample_rate)
    signal = signal + _noise(signal.shape[0], profile, rng)
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak >= 0.98:  # scale speech and noise together, keeping the SNR
        signal *= 0.95 / peak
    return SpokenSession(signal=signal.astype(np.float32), utterances=utterances, sample_rate=sample_rate)
