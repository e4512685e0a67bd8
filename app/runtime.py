"""Every model the service runs goes through here: session options, provider order and the
providers really used, thread budget, warm-up, and what /models and the provider metric report.

A model is used through one small interface (``ModelRuntime``: load, warm, run, describe).
``load_model`` is the one place that picks a runtime for a model, so giving one model
another backend (a faster CPU runtime for the face mesh, say) is one class and one line here.

onnxruntime-gpu lists CUDA as available even where no GPU works, so what really runs is
read back from ``session.get_providers()`` after creation and reported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort

from app.config import Settings

GraphLevel = Literal["disable", "basic", "extended", "all"]
TfliteBackend = Literal["auto", "onnxruntime", "litert"]
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
    # models that ship a tflite original (the face models): which runtime runs them (see load_model)
    tflite_backend: TfliteBackend = "auto"
    # sets of the face models a worker loads: one per segment of a video analysed in parallel
    face_model_sets: int = 1

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
        return cls(
            providers=tuple(provider_list(settings)),
            intra_op_threads=settings.worker_threads,
            tflite_backend=settings.face_backend,
            face_model_sets=settings.visual_split,
        )

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
        return {"execution_providers": self.providers, "provider": self.provider, "backend": "onnxruntime"}


# what a LiteRT model reports as its provider (the XNNPACK delegate LiteRT applies by default)
LITERT = "LiteRT XNNPACK (CPU)"
TFLITE_SUFFIX = ".tflite"
# LiteRT gives wrong outputs when the detector's input is resized to a batch (research note
# face_speed.md); the mesh and iris models batch exactly
LITERT_ONE_IMAGE_PER_CALL = frozenset({"face_detector"})


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """LiteRT's C++ writes "INFO: Created TensorFlow Lite XNNPACK delegate" straight to file
    descriptor 2 (no setting turns it off); the service's log is JSON lines, so fd 2 goes to
    /dev/null while an interpreter is made (at model load, before any request runs)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LiteRTModel:
    """One tflite original in LiteRT (``ai-edge-litert``, XNNPACK on the CPU): the face models'
    faster CPU backend (1.7x ONNX Runtime per analysed frame on this machine, research note
    face_speed.md), with the interface and output shapes of their ONNX conversions.

    One interpreter per batch size seen (resizing one back and forth re-plans it every call)."""

    def __init__(self, name: str, path: Path, config: RuntimeConfig) -> None:
        self.name = name
        self.path = Path(path)
        self._threads = max(1, config.intra_op_threads)
        self._by_batch: dict[int, Any] = {}
        first = self._interpreter(1)
        inputs, outputs = first.get_input_details(), first.get_output_details()
        self.input_names = tuple(d["name"] for d in inputs)
        self.output_names = tuple(d["name"] for d in outputs)
        self._inputs = {d["name"]: (d["index"], tuple(int(x) for x in d["shape"])) for d in inputs}
        self._outputs = {d["name"]: (d["index"], tuple(int(x) for x in d["shape"])) for d in outputs}
        self._one_image = name in LITERT_ONE_IMAGE_PER_CALL or len(inputs) != 1

    def _interpreter(self, batch: int) -> Any:
        interpreter = self._by_batch.get(batch)
        if interpreter is None:
            from ai_edge_litert.interpreter import Interpreter

            with _native_stderr_silenced():
                interpreter = Interpreter(model_path=str(self.path), num_threads=self._threads)
                if batch != 1:
                    detail = interpreter.get_input_details()[0]
                    interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
                interpreter.allocate_tensors()
            self._by_batch[batch] = interpreter
        return interpreter

    @property
    def providers(self) -> list[str]:
        return [LITERT]

    @property
    def provider(self) -> str:
        return LITERT

    def input_shape(self, name: str) -> list[Any]:
        return ["N", *self._inputs[name][1][1:]]

    def output_shape(self, name: str) -> list[Any]:
        return ["N", *self._outputs[name][1][1:]]

    def _invoke(self, feeds: Mapping[str, np.ndarray], names: Sequence[str], batch: int) -> list[np.ndarray]:
        interpreter = self._interpreter(batch)
        for name, array in feeds.items():
            interpreter.set_tensor(self._inputs[name][0], np.ascontiguousarray(array, dtype=np.float32))
        interpreter.invoke()
        # a resized model may return its outputs flattened over the batch (iris: (1, N*213))
        return [interpreter.get_tensor(self._outputs[n][0]).reshape(batch, *self._outputs[n][1][1:]) for n in names]

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        names = list(outputs) if outputs is not None else list(self.output_names)
        batch = int(next(iter(feeds.values())).shape[0])
        if batch == 0:
            return [np.zeros((0, *self._outputs[n][1][1:]), np.float32) for n in names]
        if not self._one_image:
            return self._invoke(feeds, names, batch)
        parts = [self._invoke({k: v[i : i + 1] for k, v in feeds.items()}, names, 1) for i in range(batch)]
        return [np.concatenate([part[j] for part in parts]) for j in range(len(names))]

    def warm(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
        for feed in feeds:
            self.run(feed)

    def describe(self) -> dict[str, Any]:
        return {"execution_providers": self.providers, "provider": self.provider, "backend": "litert"}


def backend_of(providers: Sequence[str]) -> Literal["onnxruntime", "litert"]:
    """The runtime behind a model's reported providers."""
    return "litert" if LITERT in providers else "onnxruntime"


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def tflite_backend(path: Path, config: RuntimeConfig) -> Literal["onnxruntime", "litert"]:
    """Which runtime runs a model that may ship a tflite original next to ``path``.

    ``auto``: LiteRT when the original is there, LiteRT is installed and no GPU provider is
    configured (on CUDA hosts ONNX Runtime batches on the GPU); otherwise ONNX Runtime."""
    original = Path(path).with_suffix(TFLITE_SUFFIX)
    if config.tflite_backend == "onnxruntime" or not original.is_file():
        return "onnxruntime"
    if config.tflite_backend == "litert":
        return "litert"
    on_gpu = any(provider_name(p) != CPU for p in config.providers)
    return "litert" if not on_gpu and litert_available() else "onnxruntime"


def load_model(name: str, path: Path, config: RuntimeConfig, **options: Any) -> ModelRuntime:
    """The runtime of model ``name``: the one place where a model gets its backend."""
    if tflite_backend(path, config) == "litert":
        return LiteRTModel(name, Path(path).with_suffix(TFLITE_SUFFIX), config)
    return OnnxModel(name, path, config, **options)
