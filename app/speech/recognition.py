"""Speech-to-text: Moonshine tiny (English) in ONNX Runtime, greedy decoding, no torch.

The model directory (``model_store/speech_to_text/<version>/``, written by
``training/build_speech_to_text.py``) holds ``encoder.onnx``, ``decoder.onnx`` (the merged
decoder: one graph for the first step and the cached steps), ``tokenizer.json`` and
``provenance.json`` with the files' sha256.

How a segment is transcribed (``SpeechRecogniser.transcribe``):

1. The encoder reads the raw waveform, float32 16 kHz mono, shape (1, samples), and gives
   one 288-d hidden state per ~41 ms.
2. The decoder starts from token 1 (``<s>``) and adds the most probable token until it
   emits token 2 (``</s>``). The first step gets empty past tensors (length 0) and
   ``use_cache_branch`` false, and returns every layer's self-attention ("decoder") and
   cross-attention ("encoder") keys and values; later steps feed one token, the
   cross-attention K/V of the first step and the self-attention K/V of the step before.
3. Hallucination guard: at most ``ceil(tokens_per_second * seconds)`` tokens (6.5 per audio
   second by default); one more step tells whether the model had finished. When it had not,
   ``Recognised.capped`` is true and text past the cap is lost.

Segment length. The model accepts 0.1 to 64 s per call, but measured on espeak-ng speech
(150 words a minute, sentences 0.4 s apart) it stays faithful only to about 40 s: a 39 s
clip had WER 0.08, a 49 s clip repeated one sentence until the token cap from about 40 s on,
and the cost per audio second grows with the length (attention): 0.032 CPU-s at 4.5 s, 0.042
at 29 s, 0.086 at 49 s. So input longer than ``max_segment_s`` (default 30 s) is cut into
pieces, each cut at the quietest stretch of the last ``SPLIT_SEARCH_S`` seconds before the
limit (``plan_pieces``): the cut goes into the middle of the quietest ``PAUSE_S`` window, so
it falls into a pause between words whenever the search window holds one; only speech
without any pause for 10 s is cut inside its quietest 0.2 s, which may be inside a word.
Input shorter than 0.1 s gives empty text without running the model.

Confidence: ``Recognised.confidence`` is the mean softmax probability of the chosen tokens
(None when there are none). Measured on espeak-ng sentences, fully correct sentences
scored 0.80-0.93 and one heard as gibberish (WER 0.87) 0.42: a proxy for quality gating, not a calibrated
probability. The model gives no word timestamps: times come from the caller's segments
(``transcribe_segments``) and the pieces.

Threads: one intra-op thread per session (``app.runtime.CPU_DEFAULT``); a second thread
doubled the CPU time without making it faster (research note: asr_diarization.md). The
sessions hold no per-call state, so one recogniser may serve several threads at once.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from app.model_store import PROVENANCE_FILE, sha256_file
from app.runtime import CPU_DEFAULT, ModelRuntime, RuntimeConfig, load_model

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
MODEL_FILES = (ENCODER_FILE, DECODER_FILE, TOKENIZER_FILE)

SAMPLE_RATE = 16000
START_TOKEN = 1  # <s>
STOP_TOKEN = 2  # </s>
TOKENS_PER_SECOND = 6.5
MIN_SEGMENT_S = 0.1  # the model's shortest input
MODEL_MAX_SEGMENT_S = 64.0  # the model's longest input
MAX_SEGMENT_S = 30.0  # longer input is cut (see the module docstring for the measurements)
SPLIT_SEARCH_S = 10.0  # a cut falls into the last this many seconds before the limit
PAUSE_S = 0.2  # the quietness of a point: mean energy over a window this long around it
ENERGY_HOP_S = 0.01

_DECODER_INPUTS = ("input_ids", "encoder_hidden_states", "use_cache_branch")
_PAST = re.compile(r"past_key_values\.(\d+)\.(decoder|encoder)\.(key|value)")


class SpeechModelIntegrityError(ValueError):
    """A model file does not match the digest recorded in provenance.json."""


@dataclass(frozen=True)
class Recognised:
    """What the model heard in one stretch of audio.

    ``tokens``: text tokens generated (the stop token not counted), over every piece.
    ``confidence``: mean probability of those tokens (None when there are none).
    ``seconds``: audio seconds given. ``capped``: the token cap stopped at least one piece
    before the model had finished, so text at that piece's end is missing.
    ``pieces``: (start_s, end_s) of each model call, relative to the input; several when the
    input was longer than the recogniser's ``max_segment_s``, none when it was too short.
    """

    text: str
    tokens: int
    confidence: float | None
    seconds: float
    capped: bool
    pieces: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class TimedText:
    """One caller's segment (seconds from the start of the signal) and what was heard in it."""

    start_s: float
    end_s: float
    recognised: Recognised

    @property
    def text(self) -> str:
        return self.recognised.text


@dataclass(frozen=True)
class _Piece:
    token_ids: tuple[int, ...]
    probabilities: tuple[float, ...]
    capped: bool


def token_cap(seconds: float, tokens_per_second: float = TOKENS_PER_SECOND) -> int:
    """The most text tokens generated for ``seconds`` of audio (at least 1)."""
    return max(1, math.ceil(tokens_per_second * seconds))


def _window_energy(samples: np.ndarray, hop: int, window: int) -> np.ndarray:
    """Mean squared sample over ``window`` samples centred on every ``hop``-th sample."""
    squared = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    centres = np.arange(0, len(samples), hop)
    low = np.clip(centres - window // 2, 0, len(samples))
    high = np.clip(centres + window // 2, 0, len(samples))
    return (squared[high] - squared[low]) / np.maximum(high - low, 1)


def plan_pieces(
    samples: np.ndarray,
    max_segment_s: float = MAX_SEGMENT_S,
    search_s: float = SPLIT_SEARCH_S,
    sample_rate: int = SAMPLE_RATE,
) -> list[tuple[int, int]]:
    """Cut a signal into pieces of at most ``max_segment_s``: (start, end) sample indices.

    A signal within the limit is one piece. Otherwise each cut lies in the last ``search_s``
    seconds before the limit, at the point whose surrounding ``PAUSE_S`` window has the least
    energy; when several points tie (digital silence), the middle of the longest tied run,
    the latest on a tie. Every piece but a too-short whole signal is at least
    ``MIN_SEGMENT_S`` long.
    """
    total = len(samples)
    limit = int(max_segment_s * sample_rate)
    if total <= limit:
        return [(0, total)]
    hop = max(1, int(ENERGY_HOP_S * sample_rate))
    energy = _window_energy(samples, hop, max(1, int(PAUSE_S * sample_rate)))
    shortest = math.ceil(MIN_SEGMENT_S * sample_rate)
    search = max(1, int(search_s * sample_rate))
    pieces: list[tuple[int, int]] = []
    start = 0
    while total - start > limit:
        # candidate cut points: hop indices inside [start + limit - search, start + limit]
        # that leave both sides at least MIN_SEGMENT_S long
        low = max(start + limit - search, start + shortest)
        high = min(start + limit, total - shortest)
        first, last = -(-low // hop), high // hop
        if last < first:  # no hop point in range (tiny limits): cut at the limit
            cut = start + limit
        else:
            values = energy[first : last + 1]
            quiet = values <= values.min() * (1 + 1e-9) + 1e-20
            cut = (first + _middle_of_longest_run(quiet)) * hop
        pieces.append((start, cut))
        start = cut
    pieces.append((start, total))
    return pieces


def _middle_of_longest_run(flags: np.ndarray) -> int:
    """Index in the middle of the longest run of True (the latest such run on a tie)."""
    best_start, best_length, run_start = 0, 0, None
    for index, flag in enumerate([*flags.tolist(), False]):
        if flag and run_start is None:
            run_start = index
        elif not flag and run_start is not None:
            if index - run_start >= best_length:
                best_start, best_length = run_start, index - run_start
            run_start = None
    return best_start + best_length // 2


class SpeechRecogniser:
    """English speech to text with Moonshine tiny: ``transcribe`` and ``transcribe_segments``.

    ``model_dir``: the version folder (``app.model_store.speech_to_text_dir``). ``config``:
    how the two sessions are made; one intra-op thread is the measured best on CPU.
    ``max_segment_s``: longer input is cut (0.1-64 s, the model's range; 30 s by default).
    ``tokens_per_second``: the token cap's rate.
    """

    def __init__(
        self,
        model_dir: Path,
        config: RuntimeConfig = CPU_DEFAULT,
        *,
        max_segment_s: float = MAX_SEGMENT_S,
        tokens_per_second: float = TOKENS_PER_SECOND,
    ) -> None:
        if not MIN_SEGMENT_S < max_segment_s <= MODEL_MAX_SEGMENT_S:
            raise ValueError(f"max_segment_s must be in ({MIN_SEGMENT_S}, {MODEL_MAX_SEGMENT_S}] seconds")
        if tokens_per_second <= 0:
            raise ValueError("tokens_per_second must be positive")
        self.model_dir = Path(model_dir)
        self.max_segment_s = float(max_segment_s)
        self.tokens_per_second = float(tokens_per_second)
        self._tokenizer = Tokenizer.from_file(str(self.model_dir / TOKENIZER_FILE))
        self.encoder: ModelRuntime = load_model("speech_to_text.encoder", self.model_dir / ENCODER_FILE, config)
        self.decoder: ModelRuntime = load_model("speech_to_text.decoder", self.model_dir / DECODER_FILE, config)
        self._encoder_input = self.encoder.input_names[0]
        self._encoder_output = self.encoder.output_names[0]

        past = [name for name in self.decoder.input_names if _PAST.fullmatch(name)]
        missing = set(_DECODER_INPUTS) - set(self.decoder.input_names)
        if not past or missing or "logits" not in self.decoder.output_names:
            raise ValueError(f"{DECODER_FILE} is not a merged decoder with past_key_values (lacks {sorted(missing)})")
        self._past_names = tuple(past)
        # the self-attention K/V change every step; the cross-attention K/V are the first step's
        self._self_attention = tuple(name for name in past if ".decoder." in name)
        self._present = {name: name.replace("past_key_values.", "present.", 1) for name in past}
        self._step_outputs = ("logits", *(self._present[name] for name in self._self_attention))
        self._first_outputs = ("logits", *(self._present[name] for name in past))
        # empty past tensors (batch 1, length 0) of the graph's heads and head size
        self._empty_past = {name: self._empty(name) for name in past}

    def _empty(self, name: str) -> np.ndarray:
        _, heads, _, head_size = self.decoder.input_shape(name)
        if not isinstance(heads, int) or not isinstance(head_size, int):
            raise ValueError(f"{DECODER_FILE}: {name} has no fixed head count and size")
        return np.zeros((1, heads, 0, head_size), dtype=np.float32)

    @property
    def providers(self) -> list[str]:
        """What really runs (the encoder's and the decoder's providers are asked for alike)."""
        return self.decoder.providers

    def transcribe(self, samples: np.ndarray) -> Recognised:
        """Text of a float32 16 kHz mono signal; longer than ``max_segment_s``: cut (``plan_pieces``)."""
        signal = _mono_float32(samples)
        seconds = len(signal) / SAMPLE_RATE
        pieces = [
            (start, end)
            for start, end in plan_pieces(signal, self.max_segment_s)
            if end - start >= MIN_SEGMENT_S * SAMPLE_RATE
        ]
        decoded = [self._decode(signal[start:end]) for start, end in pieces]
        probabilities = [p for piece in decoded for p in piece.probabilities]
        texts = (self._tokenizer.decode(list(piece.token_ids), skip_special_tokens=True).strip() for piece in decoded)
        return Recognised(
            text=" ".join(text for text in texts if text),
            tokens=len(probabilities),
            confidence=float(np.mean(probabilities)) if probabilities else None,
            seconds=seconds,
            capped=any(piece.capped for piece in decoded),
            pieces=tuple((start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in pieces),
        )

    def transcribe_segments(self, samples: np.ndarray, segments: Sequence[tuple[float, float]]) -> list[TimedText]:
        """Text of each (start_s, end_s) stretch of ``samples``, in the order given.

        Segments are clipped to the signal; one that ends before it starts is refused
        (ValueError); one that ends up shorter than 0.1 s gets empty text.
        """
        signal = _mono_float32(samples)
        duration = len(signal) / SAMPLE_RATE
        timed: list[TimedText] = []
        for start_s, end_s in segments:
            if not (math.isfinite(start_s) and math.isfinite(end_s)) or end_s < start_s:
                raise ValueError(f"segment ({start_s}, {end_s}): end before start, or not a number")
            start_s, end_s = min(max(start_s, 0.0), duration), min(max(end_s, 0.0), duration)
            first, last = round(start_s * SAMPLE_RATE), round(end_s * SAMPLE_RATE)
            recognised = self.transcribe(signal[first:last])
            pieces = tuple((start_s + a, start_s + b) for a, b in recognised.pieces)
            timed.append(TimedText(start_s, end_s, dataclasses.replace(recognised, pieces=pieces)))
        return timed

    def _decode(self, signal: np.ndarray) -> _Piece:
        (hidden,) = self.encoder.run({self._encoder_input: signal[None]}, [self._encoder_output])
        cap = token_cap(len(signal) / SAMPLE_RATE, self.tokens_per_second)
        past = dict(self._empty_past)
        token, tokens, probabilities = START_TOKEN, [], []
        capped = True
        # cap + 1 steps: the last may only say whether the model had finished
        for step in range(cap + 1):
            feeds = {
                "input_ids": np.array([[token]], dtype=np.int64),
                "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([step > 0]),
                **past,
            }
            names = self._step_outputs if step else self._first_outputs
            outputs = dict(zip(names, self.decoder.run(feeds, names), strict=True))
            for name in self._past_names if step == 0 else self._self_attention:
                past[name] = outputs[self._present[name]]
            logits = outputs["logits"][0, -1].astype(np.float64)
            token = int(np.argmax(logits))
            if token == STOP_TOKEN:
                capped = False
                break
            if step == cap:
                break
            # softmax probability of the chosen (largest) logit: 1 / sum(exp(logits - max))
            probabilities.append(float(1.0 / np.exp(logits - logits[token]).sum()))
            tokens.append(token)
        return _Piece(tuple(tokens), tuple(probabilities), capped)

    def warm(self) -> None:
        """One call on a second of silence: first-run allocations happen before a request."""
        self.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32))

    def verify(self) -> dict[str, str]:
        """Check the model files against provenance.json's sha256; return the digests."""
        expected: dict[str, str] = json.loads((self.model_dir / PROVENANCE_FILE).read_text())["sha256"]
        verified: dict[str, str] = {}
        for name in MODEL_FILES:
            if name not in expected:
                raise SpeechModelIntegrityError(f"{PROVENANCE_FILE} records no sha256 for {name}")
            actual = sha256_file(self.model_dir / name)
            if actual != expected[name]:
                raise SpeechModelIntegrityError(f"{name}: sha256 {actual} does not match {PROVENANCE_FILE}")
            verified[name] = actual
        return verified


def _mono_float32(samples: np.ndarray) -> np.ndarray:
    signal = np.asarray(samples)
    if signal.ndim != 1:
        raise ValueError(f"expected mono samples, shape (n,); got shape {signal.shape}")
    if not np.issubdtype(signal.dtype, np.floating):
        raise ValueError(f"expected float samples in [-1, 1]; got {signal.dtype}")
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    if not np.isfinite(signal).all():
        raise ValueError("samples hold NaN or infinity")
    return signal
