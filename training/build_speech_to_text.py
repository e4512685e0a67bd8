"""Build ``model_store/speech_to_text/1/``: Moonshine tiny (English) speech-to-text for ONNX Runtime.

Run from the repository root, in the project's venv (it needs npm on PATH, pip, and the
``onnx`` package of the ``train`` extra to read the graphs' opsets)::

    python -m training.build_speech_to_text

Nothing is converted: the files are copied as their authors published them.

- ``encoder.onnx``, ``decoder.onnx``: ``dist/model/tiny/quantized/encoder_model.onnx`` and
  ``decoder_model_merged.onnx`` from the npm package ``@moonshine-ai/moonshine-js`` 0.1.29
  (``npm pack``; npm checks the tarball against the registry's sha512).
- ``tokenizer.json``: ``moonshine_onnx/assets/tokenizer.json`` from the PyPI wheel
  ``useful-moonshine-onnx`` 20251121 (``pip download --no-deps``; only unzipped, never
  installed: that package downloads its weights from a hub at run time; this folder takes
  only the tokenizer).

Both archives and the three files are checked against pinned sha256 digests (measured
2026-12; the file digests also start with the prefixes in research/asr_diarization.md), so
the build fails loudly if a registry serves other bytes. Then the serve code
(``app.speech.recognition``) must transcribe the wheel's own sample recording,
``moonshine_onnx/assets/beckett.wav``, word for word as ``CHECK_TEXT``, before the folder
replaces the old one. Writes LICENSE (the packages' MIT texts) and provenance.json (sources,
digests, sizes, the graphs' interface, the check, the tools).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import wave
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.build_support import REPO, sha256_bytes, sha256_file

WORK_DIR = REPO / ".build" / "speech_to_text"
MODEL_STORE = REPO / "model_store"
MODEL_NAME = "speech_to_text"
MODEL_VERSION = 1
BUILD_COMMAND = "python -m training.build_speech_to_text"
RESEARCH_NOTE = "research/asr_diarization.md"

NPM_PACKAGE = "@moonshine-ai/moonshine-js"
NPM_VERSION = "0.1.29"
NPM_TARBALL = "moonshine-ai-moonshine-js-0.1.29.tgz"
NPM_TARBALL_SHA256 = "864e17a00ed494857c71693e835306fa038e0f82002c76e3056d67d574e1c2d8"
NPM_LICENSE = "package/LICENSE"

PYPI_PACKAGE = "useful-moonshine-onnx"
PYPI_VERSION = "20251121"
PYPI_WHEEL = "useful_moonshine_onnx-20251121-py3-none-any.whl"
PYPI_WHEEL_SHA256 = "b4189b0d7dc8064d567fd0b5d5ce78634be290b0a3a3274ab80ad11c46d531a2"
PYPI_LICENSE = "useful_moonshine_onnx-20251121.dist-info/LICENSE"
PYPI_METADATA = "useful_moonshine_onnx-20251121.dist-info/METADATA"
CHECK_WAV = "moonshine_onnx/assets/beckett.wav"
# what Moonshine's own README says the tiny model hears in beckett.wav (and what it heard here)
CHECK_TEXT = "Ever tried, ever failed, no matter try again, fail again, fail better."


@dataclass(frozen=True)
class ShippedFile:
    name: str  # in the model folder
    archive: str  # "npm" or "pypi"
    path_in_archive: str
    sha256: str  # pinned, full
    note_prefix: str  # the prefix research/asr_diarization.md gives


SHIPPED = (
    ShippedFile(
        "encoder.onnx",
        "npm",
        "package/dist/model/tiny/quantized/encoder_model.onnx",
        "c6fc4b7bc5af75c0591fd157a1f3829b533d18e9769a888fd95a62e470dd4f4a",
        "c6fc4b7b",
    ),
    ShippedFile(
        "decoder.onnx",
        "npm",
        "package/dist/model/tiny/quantized/decoder_model_merged.onnx",
        "eed87831c3a6103534aae7d47a5d485025c659a1323901513961c39fe8a1a367",
        "eed87831",
    ),
    ShippedFile(
        "tokenizer.json",
        "pypi",
        "moonshine_onnx/assets/tokenizer.json",
        "b68b995a58b3373db6c4f46864a9db50cd1333d086150ffa2c1096581ede9c10",
        "b68b995a",
    ),
)
RESEARCH_NOTE_DIFFERENCES = (
    "the note abbreviates the encoder digest as 'c6fc4b7b…e4708a0'; the file's digest starts with "
    "c6fc4b7b but ends in 'e470dd4f4a'. The tarball is the registry's (npm checked its sha512; its sha1 "
    "is the registry's shasum), the decoder's and tokenizer's digests match the note at both ends and "
    "the model passes the build check, so the note's shortened ending is taken to be a slip",
    "the npm package's LICENSE has two sections: MIT for the code and the English model (the files here), "
    "and the Moonshine AI Community License for the Spanish model, which this folder does not contain",
)


def run(command: Sequence[str], cwd: Path) -> str:
    result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def fetch_npm(dest: Path) -> tuple[Path, dict[str, Any]]:
    """``npm pack`` of the pinned version into ``dest``; npm's own record of the tarball."""
    (record,) = json.loads(run(["npm", "pack", "--json", f"{NPM_PACKAGE}@{NPM_VERSION}"], cwd=dest))
    tarball = dest / record["filename"]
    if record.get("version") != NPM_VERSION or tarball.name != NPM_TARBALL:
        raise RuntimeError(f"npm pack gave {record.get('name')}@{record.get('version')} as {tarball.name}")
    return tarball, {"integrity": record.get("integrity"), "shasum": record.get("shasum")}


def fetch_pypi(dest: Path) -> Path:
    """``pip download --no-deps`` of the pinned wheel into ``dest`` (never installed)."""
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            f"{PYPI_PACKAGE}=={PYPI_VERSION}",
            "-d",
            str(dest),
        ],
        cwd=dest,
    )
    wheel = dest / PYPI_WHEEL
    if not wheel.is_file():
        raise RuntimeError(f"pip download wrote {sorted(p.name for p in dest.iterdir())}, not {PYPI_WHEEL}")
    return wheel


def check_digest(label: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{label}: sha256 {actual}, expected {expected}: the registry serves other bytes")


def read_npm(tarball: Path, path: str) -> bytes:
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.getmember(path)  # KeyError: the package no longer has the file
        handle = archive.extractfile(member)
        if not member.isfile() or handle is None:
            raise RuntimeError(f"{tarball.name}: {path} is not a regular file")
        return handle.read()


def read_wheel(wheel: Path, path: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(path)


def mit_section(text: str, source: str) -> str:
    """The MIT licence in ``text``, from its 'MIT License' title to its warranty disclaimer."""
    match = re.search(r"MIT License\s.*?OTHER DEALINGS IN THE\s+SOFTWARE\.", text, flags=re.DOTALL)
    if match is None or "Permission is hereby granted, free of charge" not in match.group(0):
        raise RuntimeError(f"{source} holds no complete MIT licence text")
    return match.group(0).strip() + "\n"


def licence_text(npm_licence: str, pypi_licence: str, pypi_metadata: str) -> str:
    if "English-language Moonshine speech to text model it uses are released" not in npm_licence:
        raise RuntimeError(f"{NPM_LICENSE} no longer says the English model is MIT-licensed")
    if "License: MIT" not in pypi_metadata:
        raise RuntimeError(f"{PYPI_METADATA} no longer declares 'License: MIT'")
    header = (
        "encoder.onnx and decoder.onnx in this folder are the quantized Moonshine tiny English model\n"
        f"(dist/model/tiny/quantized/) of the npm package {NPM_PACKAGE} {NPM_VERSION}, by Useful\n"
        "Sensors / Moonshine AI, whose LICENSE says: 'The code in this repo and the English-language\n"
        "Moonshine speech to text model it uses are released under the MIT license.' Only that MIT\n"
        "section is copied below: the package's second section (the Moonshine AI Community License)\n"
        "covers its Spanish model, which this folder does not contain.\n\n"
        f"tokenizer.json is copied from the PyPI wheel {PYPI_WHEEL}\n"
        "(moonshine_onnx/assets/tokenizer.json), whose metadata says 'License: MIT'; its licence\n"
        "text follows the first. Neither file was modified; sha256 digests are in provenance.json.\n\n"
    )
    return (
        header
        + f"==== {NPM_PACKAGE} {NPM_VERSION}: {NPM_LICENSE}, section 1 ====\n\n"
        + mit_section(npm_licence, NPM_LICENSE)
        + f"\n==== {PYPI_PACKAGE} {PYPI_VERSION}: {PYPI_LICENSE} ====\n\n"
        + mit_section(pypi_licence, PYPI_LICENSE)
    )


def graph_interface(path: Path) -> dict[str, Any]:
    """Inputs and outputs as ONNX Runtime reads them, plus opsets, producer and op counts."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def describe(nodes: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"name": node.name, "shape": list(node.shape), "type": node.type} for node in nodes]

    proto = onnx.load(str(path))
    ops: dict[str, int] = {}

    def count(graph: Any) -> None:
        for node in graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    count(attribute.g)

    count(proto.graph)
    return {
        "inputs": describe(session.get_inputs()),
        "outputs": describe(session.get_outputs()),
        "opsets": {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import},
        "ir_version": proto.ir_version,
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "ops_including_subgraphs": dict(sorted(ops.items())),
    }


def tokenizer_summary(data: bytes) -> dict[str, Any]:
    spec = json.loads(data)
    special = {token["content"]: token["id"] for token in spec["added_tokens"] if token["id"] < 3}
    if special != {"<unk>": 0, "<s>": 1, "</s>": 2}:
        raise RuntimeError(f"tokenizer.json's first special tokens are {special}, not <unk> 0, <s> 1, </s> 2")
    return {
        "model": spec["model"]["type"],
        "vocabulary": len(spec["model"]["vocab"]),
        "added_tokens": len(spec["added_tokens"]),
        "special_tokens": special,
        "library": "tokenizers (Tokenizer.from_file); decode(ids, skip_special_tokens=True)",
    }


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def check_transcription(folder: Path, wav_bytes: bytes) -> dict[str, Any]:
    """The serve code on the built folder must hear CHECK_TEXT in the wheel's sample recording."""
    import time

    import numpy as np

    from app.speech.recognition import SAMPLE_RATE, SpeechRecogniser

    with wave.open(io.BytesIO(wav_bytes)) as recording:
        shape = (recording.getframerate(), recording.getnchannels(), recording.getsampwidth())
        if shape != (SAMPLE_RATE, 1, 2):
            raise RuntimeError(f"{CHECK_WAV}: rate, channels, sample width {shape}; expected 16 kHz mono s16")
        samples = np.frombuffer(recording.readframes(recording.getnframes()), dtype="<i2").astype(np.float32) / 32768
    recogniser = SpeechRecogniser(folder)
    started = time.process_time()
    heard = recogniser.transcribe(samples)
    cpu = time.process_time() - started
    if words(heard.text) != words(CHECK_TEXT) or heard.capped:
        raise RuntimeError(f"{CHECK_WAV}: heard {heard.text!r} (capped {heard.capped}), expected {CHECK_TEXT!r}")
    return {
        "recording": f"{PYPI_WHEEL}: {CHECK_WAV} (sha256 {sha256_bytes(wav_bytes)})",
        "expected": CHECK_TEXT,
        "heard": heard.text,
        "tokens": heard.tokens,
        "mean_token_probability": round(heard.confidence or 0.0, 4),
        "seconds": round(heard.seconds, 3),
        "cpu_seconds_one_thread": round(cpu, 3),
        "by": "app.speech.recognition.SpeechRecogniser (greedy, KV cache, 1 intra-op thread)",
    }


def tool_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {name: metadata.version(name) for name in ("onnxruntime", "onnx", "tokenizers", "numpy", "pip")}
    versions["npm"] = run(["npm", "--version"], cwd=REPO).strip()
    versions["python"] = platform.python_version()
    return versions


def build() -> None:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    MODEL_STORE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=WORK_DIR) as fetch:
        fetched = Path(fetch)
        tarball, npm_record = fetch_npm(fetched)
        wheel = fetch_pypi(fetched)
        check_digest(tarball.name, sha256_file(tarball), NPM_TARBALL_SHA256)
        check_digest(wheel.name, sha256_file(wheel), PYPI_WHEEL_SHA256)
        archives = {"npm": tarball, "pypi": wheel}
        readers = {"npm": read_npm, "pypi": read_wheel}
        contents = {item.name: readers[item.archive](archives[item.archive], item.path_in_archive) for item in SHIPPED}
        for item in SHIPPED:
            digest = sha256_bytes(contents[item.name])
            if not digest.startswith(item.note_prefix):
                note = f"{RESEARCH_NOTE}'s {item.note_prefix}"
                raise RuntimeError(f"{item.name}: sha256 {digest} does not start with {note}")
            check_digest(f"{item.archive}:{item.path_in_archive}", digest, item.sha256)
        licence = licence_text(
            read_npm(tarball, NPM_LICENSE).decode(),
            read_wheel(wheel, PYPI_LICENSE).decode(),
            read_wheel(wheel, PYPI_METADATA).decode(),
        )
        check_wav = read_wheel(wheel, CHECK_WAV)
        sources = [
            {
                "package": NPM_PACKAGE,
                "version": NPM_VERSION,
                "registry": "npm (registry.npmjs.org)",
                "fetched_by": f"npm pack {NPM_PACKAGE}@{NPM_VERSION}",
                "archive": tarball.name,
                "archive_sha256": sha256_file(tarball),
                "archive_bytes": tarball.stat().st_size,
                "npm_integrity": npm_record["integrity"],
                "npm_shasum": npm_record["shasum"],
                "licence": "MIT (code and English model; its Spanish model, not used, has another licence)",
            },
            {
                "package": PYPI_PACKAGE,
                "version": PYPI_VERSION,
                "registry": "PyPI",
                "fetched_by": f"pip download --no-deps --only-binary=:all: {PYPI_PACKAGE}=={PYPI_VERSION}",
                "archive": wheel.name,
                "archive_sha256": sha256_file(wheel),
                "archive_bytes": wheel.stat().st_size,
                "licence": "MIT",
                "note": "only tokenizer.json (and, for the build check, beckett.wav) is taken; the package's "
                "code downloads weights from a hub and is not used",
            },
        ]

    staging = Path(tempfile.mkdtemp(prefix=".staging-speech-", dir=MODEL_STORE))
    try:
        for item in SHIPPED:
            (staging / item.name).write_bytes(contents[item.name])
        (staging / "LICENSE").write_text(licence)
        check = check_transcription(staging, check_wav)
        print(f"check: heard {check['heard']!r}", flush=True)
        provenance = {
            "name": MODEL_NAME,
            "version": MODEL_VERSION,
            "description": "Moonshine tiny (English) speech-to-text, 8-bit quantized ONNX as published in "
            f"{NPM_PACKAGE} {NPM_VERSION}: an encoder over the raw 16 kHz waveform and a merged decoder with "
            "a key/value cache, decoded greedily by app.speech.recognition",
            "licence": "MIT",
            "licence_text_from": f"{NPM_PACKAGE} {NPM_VERSION}: {NPM_LICENSE} (section 1, MIT); "
            f"{PYPI_WHEEL}: {PYPI_LICENSE}",
            "sources": sources,
            "files": {
                item.name: {
                    "from": f"{sources[0 if item.archive == 'npm' else 1]['archive']}: {item.path_in_archive}",
                    "sha256": sha256_file(staging / item.name),
                    "bytes": (staging / item.name).stat().st_size,
                    "modified": False,
                }
                for item in SHIPPED
            },
            "interface": {
                "encoder": graph_interface(staging / "encoder.onnx"),
                "decoder": graph_interface(staging / "decoder.onnx"),
                "tokenizer": tokenizer_summary(contents["tokenizer.json"]),
                "audio": "float32 mono at 16 kHz, samples in [-1, 1], batch 1: encoder input_values (1, samples); "
                "the model takes 0.1-64 s per call (app.speech.recognition cuts input longer than 30 s)",
                "decoding": {
                    "start_token_id": 1,
                    "stop_token_id": 2,
                    "greedy": True,
                    "first_step": "input_ids [[1]], use_cache_branch [False], every past_key_values.* empty "
                    "(batch 1, heads 8, length 0, head size 36); keep every present.*",
                    "later_steps": "input_ids [[last token]], use_cache_branch [True], past_key_values.*.encoder.* "
                    "from the first step, past_key_values.*.decoder.* from the step before",
                    "token_cap": "ceil(6.5 x audio seconds) text tokens (hallucination guard)",
                },
            },
            "check": check,
            "research_note": {"file": RESEARCH_NOTE, "differences": list(RESEARCH_NOTE_DIFFERENCES)},
            "tools": tool_versions(),
            "build_command": BUILD_COMMAND,
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sha256": {item.name: sha256_file(staging / item.name) for item in SHIPPED},
            "bytes": {item.name: (staging / item.name).stat().st_size for item in SHIPPED},
            "reproducibility": "the files are the packages' bytes: a rebuild gives the same sha256",
        }
        (staging / "provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
        target = MODEL_STORE / MODEL_NAME / str(MODEL_VERSION)
        target.parent.mkdir(parents=True, exist_ok=True)
        # swap only once everything passed, so a failed build never leaves a half folder
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        target.chmod(0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for name, digest in provenance["sha256"].items():
        print(f"wrote {target / name}: sha256 {digest}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
