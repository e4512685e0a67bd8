"""Every model the service runs goes through here: session options, provider order and the
providers really used, thread budget, warm-up, and what /models and the provider metric report.

A model is used through one small interface (``ModelRuntime``: load, warm, run, describe).
``load_model`` is the one place that picks a runtime for a model, so giving one model
another backend (a faster CPU runtime for the face mesh, say) is one class and one line here.

onnxruntime-gpu lists CUDA as available even where no GPU works, so what really runs is
read back from ``session.get_providers()`` after creation and reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from app.config import Settings

GraphLevel = Literal["disable", "basic", "extended", "all"]
_GRAPH_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# a provider as ONNX Runtime takes it: a name, or a name with its options
Provider = str | tuple[str, dict[str, object]]


def provider_list(settings: Settings) -> list[Provider]:
    """Requested providers that this onnxruntime build has, with their options; CPU always last resort."""
    available = set(ort.get_available_providers())
    chosen: list[Provider] = []
    for name in settings.provider_names:
        if name not in available:
            continue
        if name == CUDA:
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
    if not any(provider_name(p) == CPU for p in chosen):
        chosen.append(CPU)  # always a way to run
    return chosen


def provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


@dataclass(frozen=True)
class RuntimeConfig:
    """How a model's sessions are made: providers in order of preference, threads, graph level.

    Plain data, so it crosses into worker processes as it is.
    """

    providers: tuple[Provider, ...] = (CPU,)
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: GraphLevel = "all"

    @classmethod
    def for_fusion(cls, settings: Settings) -> RuntimeConfig:
        """The fusion session in the server process: the ORT settings as configured."""
        return cls(
            providers=tuple(provider_list(settings)),
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            graph_optimization=settings.graph_optimization,
        )

    @classmethod
    def for_workers(cls, settings: Settings) -> RuntimeConfig:
        """The face models and the text encoder inside a worker: the worker's thread budget."""
        return cls(providers=tuple(provider_list(settings)), intra_op_threads=settings.worker_threads)

    def session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = _GRAPH_LEVELS[self.graph_optimization]
        return options


# one thread on the CPU: for checks and tools; the service's sessions take their config from settings
CPU_DEFAULT = RuntimeConfig()


class ModelRuntime(Protocol):
    """What every model offers the stages that use it."""

    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    @property
    def providers(self) -> list[str]: ...

    def input_shape(self, name: str) -> list[Any]: ...

    def output_shape(self, name: str) -> list[Any]: ...

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]: ...

    def warm(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class OnnxModel:
    """One ONNX Runtime session over one model file."""

    def __init__(self, name: str, path: Path, config: RuntimeConfig, *, io_binding: bool | None = None) -> None:
        self.name = name
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), config.session_options(), providers=list(config.providers))
        self.input_names = tuple(node.name for node in self.session.get_inputs())
        self.output_names = tuple(node.name for node in self.session.get_outputs())
        self._providers: list[str] = list(self.session.get_providers())
        # on a GPU, IO binding hands ORT the host arrays and host output buffers directly
        # (no per-run output allocation on the Python side); on CPU it gains nothing
        self.io_binding = self.provider == CUDA if io_binding is None else io_binding

    @property
    def providers(self) -> list[str]:
        """The providers this session really runs on, preferred first."""
        return self._providers

    @property
    def provider(self) -> str:
        return self._providers[0]

    def input_shape(self, name: str) -> list[Any]:
        """The graph's shape of input ``name``: ints, and dim names (str) or None for free axes."""
        return next(node.shape for node in self.session.get_inputs() if node.name == name)

    def output_shape(self, name: str) -> list[Any]:
        return next(node.shape for node in self.session.get_outputs() if node.name == name)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        names = list(outputs) if outputs is not None else list(self.output_names)
        if not self.io_binding:
            return self.session.run(names, dict(feeds))
        binding = self.session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        for name in names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def warm(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
        """Run each feed once: CUDA picks kernels (and cuDNN searches) per shape on first use."""
        for feed in feeds:
            self.session.run(None, dict(feed))

    def describe(self) -> dict[str, Any]:
        return {"execution_providers": self.providers, "provider": self.provider}


def load_model(name: str, path: Path, config: RuntimeConfig, **options: Any) -> ModelRuntime:
    """The runtime of model ``name``: the one place where a model could get another backend."""
    return OnnxModel(name, path, config, **options)
