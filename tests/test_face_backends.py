"""The face models' two runtimes (app/runtime.py): LiteRT on the tflite originals, the
faster CPU backend, and ONNX Runtime on their ONNX conversions. Which one runs (setting
face_backend), that both give the same model outputs, and that the visual features and the
answer do not depend on the choice beyond a stated tolerance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from app.contract import VisualSpec
from app.features.visual.models import FaceModels
from app.features.visual.tracking import VisualExtractor
from app.runtime import CPU, CUDA, LITERT, RuntimeConfig, litert_available, load_model, tflite_backend
from tests.conftest import MODEL_STORE
from tests.media import face_frames, write_video
from training.build_face_models import MAX_PARITY_DIFF

pytestmark = pytest.mark.skipif(not litert_available(), reason="ai-edge-litert is not installed (gpu extra)")

MESH = MODEL_STORE / "face_landmarks" / "1" / "model.onnx"
TEXT_ENCODER = next((MODEL_STORE / "text_encoder").glob("*/model.onnx"))
# through the tracker any fp32 rounding change drifts the landmarks (research note face_speed.md:
# 0.24 px over 600 real frames); features are in eye-corner units (about 60 px apart here)
FEATURE_TOLERANCE = 0.02
POSE_TOLERANCE_DEG = 0.5


@pytest.fixture(scope="module")
def backends() -> dict[str, FaceModels]:
    return {name: FaceModels(MODEL_STORE, RuntimeConfig(tflite_backend=name)) for name in ("litert", "onnxruntime")}


def test_auto_takes_litert_on_a_cpu_host_and_onnxruntime_where_a_gpu_is_configured() -> None:
    assert tflite_backend(MESH, RuntimeConfig()) == "litert"
    assert tflite_backend(MESH, RuntimeConfig(providers=(CUDA, CPU))) == "onnxruntime"
    assert tflite_backend(MESH, RuntimeConfig(tflite_backend="onnxruntime")) == "onnxruntime"
    assert tflite_backend(MESH, RuntimeConfig(providers=(CUDA, CPU), tflite_backend="litert")) == "litert"
    # a model without a tflite original is ONNX Runtime's whatever the setting
    assert tflite_backend(TEXT_ENCODER, RuntimeConfig(tflite_backend="litert")) == "onnxruntime"
    assert load_model("text_encoder", TEXT_ENCODER, RuntimeConfig(tflite_backend="litert")).providers == [CPU]


def test_each_model_reports_the_runtime_it_really_runs_on(backends: dict[str, FaceModels]) -> None:
    for name, report in backends["litert"].describe().items():
        assert report == {"execution_providers": [LITERT], "provider": LITERT, "backend": "litert"}, name
    for name, report in backends["onnxruntime"].describe().items():
        assert report["backend"] == "onnxruntime" and report["provider"] == CPU, name


@pytest.mark.parametrize("model", ["detector", "mesh", "iris"])
@pytest.mark.parametrize("batch", [1, 2, 5, 1])  # back to 1 after other sizes: each size keeps its own plan
def test_litert_gives_the_onnx_conversions_outputs_at_any_batch(
    backends: dict[str, FaceModels], model: str, batch: int
) -> None:
    lite, onnx = getattr(backends["litert"], model), getattr(backends["onnxruntime"], model)
    shape = [int(d) for d in onnx.runtime.input_shape(onnx.io.inputs[0])[1:]]
    images = np.random.default_rng(batch).random((batch, *shape), dtype=np.float32)
    for ours, theirs in zip(lite.run(images), onnx.run(images), strict=True):
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= MAX_PARITY_DIFF


def test_an_empty_batch_gives_empty_outputs(backends: dict[str, FaceModels]) -> None:
    mesh = backends["litert"].mesh
    outputs = mesh.run(np.zeros((0, 192, 192, 3), np.float32))
    assert [o.shape for o in outputs] == [(0, 1, 1, 1404), (0, 1, 1, 1)]


def test_the_visual_features_agree_between_backends(backends: dict[str, FaceModels], tmp_path: Path) -> None:
    spec = VisualSpec()
    frames = 80
    video = write_video(tmp_path / "pan.mp4", face_frames(frames, (320, 240), "pan"), spec.rate_hz)
    lite = VisualExtractor(backends["litert"], spec).extract(video)
    onnx = VisualExtractor(backends["onnxruntime"], spec).extract(video)
    assert lite.valid.all() and (lite.valid == onnx.valid).all()
    pose = [spec.channel_names.index(n) for n in ("yaw", "pitch", "roll")]
    others = [k for k in range(spec.dim) if k not in pose]
    assert np.abs(lite.frames[:, others] - onnx.frames[:, others]).max() <= FEATURE_TOLERANCE
    # pose channels are radians (pose_convention zyx_radians_v1)
    assert np.abs(lite.frames[:, pose] - onnx.frames[:, pose]).max() <= math.radians(POSE_TOLERANCE_DEG)
