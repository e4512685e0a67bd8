"""The fusion runner's CUDA-path options, exercised on the CPU: IO binding and the warm-up."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from app.config import Settings
from app.fusion.runner import FusionRunner
from app.model_store import load_fusion
from app.runtime import RuntimeConfig, provider_list
from tests.conftest import FUSION_VERSION, MODEL_STORE
from tests.test_batcher import random_windows

SETTINGS = RuntimeConfig.for_fusion(Settings(providers=["cpu"], intra_op_threads=1))


def test_io_binding_gives_the_same_outputs_as_a_plain_run() -> None:
    model = load_fusion(MODEL_STORE, FUSION_VERSION)
    plain, bound = FusionRunner(model, SETTINGS), FusionRunner(model, SETTINGS, io_binding=True)
    assert not plain.runtime.io_binding and bound.runtime.io_binding  # on by default only on CUDA
    for count in (1, 5):
        windows = random_windows(model, count, seed=count)
        a, b = plain.run(windows), bound.run(windows)
        for name in ("item_probs", "item_scores", "modality_weights"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_the_warm_up_runs_every_batch_shape_up_to_the_maximum() -> None:
    runner = FusionRunner(load_fusion(MODEL_STORE, FUSION_VERSION), SETTINGS)
    shapes: list[int] = []
    run = runner.runtime.session.run

    class Recording:  # the real session, with the batch sizes it was given written down
        def run(self, outputs, feed):
            shapes.append(feed["modality_mask"].shape[0])
            return run(outputs, feed)

    runner.runtime.session = Recording()  # type: ignore[assignment]
    runner.warm_up(max_batch=4)
    assert shapes == [1, 2, 3, 4]


def test_cuda_options_come_from_the_settings_when_cuda_is_requested(monkeypatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    settings = Settings(providers=["cuda", "cpu"], cudnn_conv_algo_search="EXHAUSTIVE", cuda_mem_limit_bytes=1 << 30)
    (cuda, options), cpu = provider_list(settings)
    assert cuda == "CUDAExecutionProvider" and cpu == "CPUExecutionProvider"
    assert options["cudnn_conv_algo_search"] == "EXHAUSTIVE" and options["gpu_mem_limit"] == 1 << 30
