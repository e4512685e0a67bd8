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
            # HEURISTIC avoids the exhaustive cuDNN search on first use of each shape
            cuda: dict[str, object] = {
                "cudnn_conv_algo_search": "HEURISTIC",
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


@dataclass(frozen=True)
class FusionOutput:
    item_probs: np.ndarray  # (W, 8, K)
    item_scores: np.ndarray  # (W, 8)
    modality_weights: np.ndarray  # (W, 8, M)


class FusionRunner:
    """Runs windows through the fusion model; thread-safe (ORT sessions are)."""

    def __init__(self, model: FusionModel, settings: Settings) -> None:
        self.model = model
        self.session = create_session(model.model_path, settings)
        self.providers: list[str] = list(self.session.get_providers())

    @property
    def provider(self) -> str:
        return self.providers[0]

    def run(self, windows: WindowBatch) -> FusionOutput:
        probs, scores, weights = self.session.run(["item_probs", "item_scores", "modality_weights"], windows.inputs())
        return FusionOutput(item_probs=probs, item_scores=scores, modality_weights=weights)

    def warm_up(self) -> None:
        """One run with the full window shapes (CUDA tunes per shape on first use)."""
        features = self.model.manifest.features
        zeros = {}
        for spec in self.model.manifest.inputs:
            shape = []
            for dim in spec.shape:
                if dim == "batch":
                    shape.append(1)
                elif isinstance(dim, str):
                    shape.append(features.frames_per_window(dim.removeprefix("t_")))
                else:
                    shape.append(dim)
            zeros[spec.name] = np.zeros(shape, np.float32)
        zeros["modality_mask"][:] = 1.0
        self.session.run(None, zeros)
