"""ONNX Runtime sessions: provider choice from settings, and the fusion model runner.

onnxruntime-gpu lists CUDA as available even where no GPU works, so what really runs
is read back from ``session.get_providers()`` after creation and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from app.config import Settings
from app.fusion.store import FusionModel
from app.windows import WindowBatch

_GRAPH_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def session_options(settings: Settings) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = _GRAPH_LEVELS[settings.graph_optimization]
    return options


def provider_list(settings: Settings) -> list[str | tuple[str, dict[str, object]]]:
    """Requested providers that this onnxruntime build has, with their options."""
    available = set(ort.get_available_providers())
    chosen: list[str | tuple[str, dict[str, object]]] = []
    for name in settings.provider_names:
        if name not in available:
            continue
        if name == "CUDAExecutionProvider":
            # the cuDNN search runs on the first use of each shape: the warm-up covers every
            # batch shape the batcher can produce, so even EXHAUSTIVE is paid at start-up only
            cuda: dict[str, object] = {
                "cudnn_conv_algo_search": settings.cudnn_conv_algo_search,
                "arena_extend_strategy": "kSameAsRequested",
            }
            if settings.cuda_mem_limit_bytes:
                cuda["gpu_mem_limit"] = settings.cuda_mem_limit_bytes
            chosen.append((name, cuda))
        else:
            chosen.append(name)
    if not any((p if isinstance(p, str) else p[0]) == "CPUExecutionProvider" for p in chosen):
        chosen.append("CPUExecutionProvider")  # always a way to run
    return chosen


def create_session(path: Path, settings: Settings) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(settings), providers=provider_list(settings))


OUTPUTS = ["item_probs", "item_scores", "modality_weights"]


@dataclass(frozen=True)
class FusionOutput:
    item_probs: np.ndarray  # (W, 8, K)
    item_scores: np.ndarray  # (W, 8)
    modality_weights: np.ndarray  # (W, 8, M)


class FusionRunner:
    """Runs windows through the fusion model; thread-safe (ORT sessions are)."""

    def __init__(self, model: FusionModel, settings: Settings, io_binding: bool | None = None) -> None:
        self.model = model
        self.session = create_session(model.model_path, settings)
        self.providers: list[str] = list(self.session.get_providers())
        # on a GPU, IO binding hands ORT the host arrays and host output buffers directly
        # (no per-run output allocation on the Python side); on CPU it gains nothing
        self.io_binding = self.provider == "CUDAExecutionProvider" if io_binding is None else io_binding

    @property
    def provider(self) -> str:
        return self.providers[0]

    def run(self, windows: WindowBatch) -> FusionOutput:
        if self.io_binding:
            return self._run_bound(windows)
        probs, scores, weights = self.session.run(OUTPUTS, windows.inputs())
        return FusionOutput(item_probs=probs, item_scores=scores, modality_weights=weights)

    def _run_bound(self, windows: WindowBatch) -> FusionOutput:
        binding = self.session.io_binding()
        for name, array in windows.inputs().items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in OUTPUTS:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        probs, scores, weights = binding.copy_outputs_to_cpu()
        return FusionOutput(item_probs=probs, item_scores=scores, modality_weights=weights)

    def warm_up(self, max_batch: int = 1) -> None:
        """One run per batch shape from 1 to ``max_batch`` windows, all modalities present:
        CUDA picks kernels (and cuDNN searches) per shape on first use, so no request pays it."""
        features = self.model.manifest.features
        for batch in range(1, max_batch + 1):
            zeros = {}
            for spec in self.model.manifest.inputs:
                shape = []
                for dim in spec.shape:
                    if dim == "batch":
                        shape.append(batch)
                    elif isinstance(dim, str):
                        shape.append(features.frames_per_window(dim.removeprefix("t_")))
                    else:
                        shape.append(dim)
                zeros[spec.name] = np.zeros(shape, np.float32)
            zeros["modality_mask"][:] = 1.0
            self.session.run(None, zeros)
