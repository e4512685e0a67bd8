"""The fusion model's runner: windows in, item distributions and modality weights out.

The session itself comes from ``app.runtime`` (providers, threads, IO binding on CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.model_store import FusionModel
from app.runtime import ModelRuntime, RuntimeConfig, load_model
from app.windows import WindowBatch

OUTPUTS = ("item_probs", "item_scores", "modality_weights")


@dataclass(frozen=True)
class FusionOutput:
    item_probs: np.ndarray  # (W, 8, K)
    item_scores: np.ndarray  # (W, 8)
    modality_weights: np.ndarray  # (W, 8, M)


class FusionRunner:
    """Runs windows through the fusion model; thread-safe (ORT sessions are)."""

    def __init__(self, model: FusionModel, config: RuntimeConfig, io_binding: bool | None = None) -> None:
        self.model = model
        self.runtime: ModelRuntime = load_model("fusion", model.model_path, config, io_binding=io_binding)

    @property
    def providers(self) -> list[str]:
        return self.runtime.providers

    @property
    def provider(self) -> str:
        return self.providers[0]

    def run(self, windows: WindowBatch) -> FusionOutput:
        probs, scores, weights = self.runtime.run(windows.inputs(), OUTPUTS)
        return FusionOutput(item_probs=probs, item_scores=scores, modality_weights=weights)

    def warm_up(self, max_batch: int = 1) -> None:
        """One run per batch shape from 1 to ``max_batch`` windows, all modalities present, so
        no request pays for a shape's first use."""
        self.runtime.warm(self._zeros(batch) for batch in range(1, max_batch + 1))

    def _zeros(self, batch: int) -> dict[str, np.ndarray]:
        features = self.model.manifest.features
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
        return zeros
