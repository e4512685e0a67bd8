"""Sentence embeddings for transcript utterances: ONNX Runtime + `tokenizers`, no torch.

The model directory (``model_store/text_encoder/<version>/``) holds ``model.onnx``
(all-MiniLM-L6-v2 with mean pooling and L2 normalisation inside the graph, int8),
``tokenizer.json`` and ``provenance.json``; ``training/build_text_encoder.py`` writes it.

Batch independence: the int8 model is dynamically quantised, so every MatMul computes
its activation scale from the whole input tensor at run time. In a padded batch a
sentence's embedding depends on its neighbours and on the padding (up to 0.055 per
component on the build's 30 sentences; fp32: 6e-8). ``embed`` therefore runs each
sentence on its own, unpadded: an utterance's vector is a function of that utterance
alone, bit for bit. It costs nothing on CPU: for 100 interview-like sentences (mean 16.5
tokens, one of 108), int8, 2 shared cores, two builds measured one-by-one at 125-203 ms,
length-sorted chunks of 10 at 140-195 ms, of 25 at 225-264 ms and one padded batch at
694-709 ms (1 thread: 195 / 263 / 450 / 1353 ms), because no compute goes to padding.
Figures per build are in provenance.json (``latency``). On a GPU one-by-one would be
launch-bound; batching there would need fp32 (or per-row activation scales), since
even equal-length sentences share one scale in a batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from app.model_store import MODEL_FILE, PROVENANCE_FILE, sha256_file
from app.runtime import CPU_DEFAULT, ModelRuntime, RuntimeConfig, load_model

TOKENIZER_FILE = "tokenizer.json"
EMBEDDING_DIM = 384
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2; app.contract.TextSpec.max_tokens
DEFAULT_MAX_TOKENS = 256


class TextEncoderIntegrityError(ValueError):
    """A model file does not match the digest recorded in provenance.json."""


class TextEncoder:
    """Embeds sentences into L2-normalised 384-d vectors, one ONNX run per sentence."""

    def __init__(
        self,
        model_dir: Path,
        config: RuntimeConfig = CPU_DEFAULT,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if max_tokens < 2:
            raise ValueError("max_tokens must leave room for [CLS] and [SEP]")
        self.model_dir = Path(model_dir)
        self.max_tokens = max_tokens

        # tokenizer.json ships with Fixed(128) padding and 128-token truncation (the
        # original tokenizer's settings); sentence-transformers truncates at 256 and
        # pads to the longest, and a single unpadded sentence needs no padding at all.
        self._tokenizer = Tokenizer.from_file(str(self.model_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)

        self.runtime: ModelRuntime = load_model("text_encoder", self.model_dir / MODEL_FILE, config)
        self._output_name = self.runtime.output_names[0]
        output_shape = self.runtime.output_shape(self._output_name)
        self.dim = int(output_shape[-1]) if isinstance(output_shape[-1], int) else EMBEDDING_DIM

    @property
    def providers(self) -> list[str]:
        """What really runs: onnxruntime-gpu lists CUDA even where no GPU exists."""
        return self.runtime.providers

    def embed(self, sentences: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, each row L2-normalised; independent of the other sentences."""
        if isinstance(sentences, str):
            raise TypeError("embed takes a sequence of sentences, not one string")
        embeddings = np.empty((len(sentences), self.dim), dtype=np.float32)
        for row, sentence in enumerate(sentences):
            embeddings[row] = self._embed_one(sentence)
        return embeddings

    def _embed_one(self, sentence: str) -> np.ndarray:
        # encode() rather than encode_batch(): no rayon thread pool, which keeps the
        # encoder safe to use in forked worker processes
        encoding = self._tokenizer.encode(sentence)
        feeds = {
            "input_ids": np.asarray([encoding.ids], dtype=np.int64),
            "attention_mask": np.asarray([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.asarray([encoding.type_ids], dtype=np.int64),
        }
        feeds = {name: value for name, value in feeds.items() if name in self.runtime.input_names}
        (output,) = self.runtime.run(feeds, [self._output_name])
        return output[0]

    def verify(self) -> dict[str, str]:
        """Check model.onnx and tokenizer.json against provenance.json's sha256; return the digests."""
        provenance = json.loads((self.model_dir / PROVENANCE_FILE).read_text())
        expected: dict[str, str] = provenance["sha256"]
        verified: dict[str, str] = {}
        for name in (MODEL_FILE, TOKENIZER_FILE):
            if name not in expected:
                raise TextEncoderIntegrityError(f"{PROVENANCE_FILE} records no sha256 for {name}")
            actual = sha256_file(self.model_dir / name)
            if actual != expected[name]:
                raise TextEncoderIntegrityError(
                    f"{name}: sha256 {actual} does not match {PROVENANCE_FILE} ({expected[name]})"
                )
            verified[name] = actual
        return verified
