"""The service's worker pool: ``extract`` in workers that hold the face models, the text
encoder and librosa's compiled kernels, warm before the first request.

The worker side keeps its models in ``_models``, set once by ``warm_worker`` in each worker
process (the pool's initializer); the parent never touches it. ``InProcessExtractor`` runs the
same ``extract`` in a thread of the calling process instead (in-process tests, one-off tools).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.config import Settings
from app.contract import FeatureSpec
from app.errors import PreprocessingError, ProcessingTimeoutError, ResourceLimitError, ServiceError
from app.model_store import FACE_MODELS
from app.pipeline.extraction import ExtractionModels, WorkerJob, WorkerResult, perform
from app.runtime import RuntimeConfig
from app.workers.pool import DEFAULT_START_TIMEOUT_S, DEFAULT_STOP_TIMEOUT_S, ProcessPool

# the settings' default (measured there), for pools made without settings
DEFAULT_WORKER_MEMORY_LIMIT_BYTES: int = Settings.model_fields["worker_memory_bytes"].default
# BLAS/OpenMP/numba pools read these once, when numpy (or numba) loads: a worker holds one
# core's share, so each pool gets the worker's thread budget instead of one thread per core
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
WORKER_MODELS = ("text_encoder", *FACE_MODELS)
# the speech stage's models, listed with their providers when the store holds them
SPEECH_MODELS = ("voice_encoder", "speech_to_text")

# -- the worker side ---------------------------------------------------------------------

_models: ExtractionModels | None = None


def warm_worker(model_store: str, features: dict[str, Any], config: dict[str, Any]) -> dict[str, list[str]]:
    """Load and warm this worker's models; returns the providers their sessions really run on.

    Arguments arrive as plain data: the pool imports this module by name once the worker's
    thread environment is set, so nothing here may arrive pickled as a numpy-backed object.
    """
    global _models
    runtime = RuntimeConfig(**config)
    _models = ExtractionModels.load(Path(model_store), FeatureSpec.model_validate(features), runtime)
    _models.warm()
    return _models.providers()


def run_job(job: WorkerJob) -> WorkerResult:
    if _models is None:
        raise RuntimeError("the worker was not warmed up")
    return perform(job, _models)


# -- the parent side ---------------------------------------------------------------------


def providers_by_model(families: dict[str, list[str]]) -> dict[str, list[str]]:
    """``ExtractionModels.providers()`` (by model family) -> the providers of each worker model."""
    faces = families.get("face_models", ["CPUExecutionProvider"])
    text = families.get("text_encoder", ["CPUExecutionProvider"])
    speech = {name: families[name] for name in SPEECH_MODELS if name in families}
    return {"text_encoder": text, **dict.fromkeys(WORKER_MODELS[1:], faces), **speech}


class ExtractionPool(ProcessPool[WorkerJob, WorkerResult]):
    """``extract`` (and live video tracking) in ``size`` worker processes, each with
    ``config.intra_op_threads`` threads."""

    def __init__(
        self,
        size: int,
        model_store: Path,
        features: FeatureSpec,
        config: RuntimeConfig,
        memory_limit_bytes: int = DEFAULT_WORKER_MEMORY_LIMIT_BYTES,
        *,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
        on_replace: Callable[[str], None] | None = None,
    ) -> None:
        threads = str(config.intra_op_threads)
        super().__init__(
            size,
            f"{__name__}:run_job",
            f"{__name__}:warm_worker",
            (str(model_store), features.model_dump(mode="json"), asdict(config)),
            env={name: threads for name in THREAD_ENV},
            memory_limit_bytes=memory_limit_bytes,
            start_timeout_s=start_timeout_s,
            stop_timeout_s=stop_timeout_s,
            on_replace=on_replace,
        )
        self.model_store = model_store

    def session_providers(self) -> dict[str, list[str]]:
        """Execution providers each worker model's sessions really run on, as the warm-up reported."""
        return providers_by_model(next((i for i in self.warm_info() if i), {}))

    async def run(self, job: WorkerJob, timeout_s: float) -> WorkerResult:
        """One interview's uploads -> windows and reports (or live pictures -> a tracked
        segment), in a worker (see ProcessPool.run)."""
        return await super().run(job, timeout_s)


class InProcessExtractor:
    """``extract`` in a thread of this process under the pool's time limit and error mapping.

    For in-process tests and single-process tools only: no crash isolation, no memory cap, and
    a job past its time limit is abandoned (its thread runs on), where the pool kills it.
    """

    def __init__(self, models: ExtractionModels) -> None:
        self.models = models

    async def run(self, job: WorkerJob, timeout_s: float) -> WorkerResult:
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.to_thread(perform, job, self.models)
        except TimeoutError:
            raise ProcessingTimeoutError(f"preprocessing took longer than {timeout_s:.0f} s") from None
        except ServiceError:
            raise
        except MemoryError:
            raise ResourceLimitError("preprocessing this input needs more memory than a worker may use") from None
        except Exception as error:
            raise PreprocessingError(f"preprocessing failed with an unexpected {type(error).__name__}") from None

    def alive(self) -> bool:
        return True

    def session_providers(self) -> dict[str, list[str]]:
        return providers_by_model(self.models.providers())

    async def start(self) -> None:
        """Nothing to start: the models are loaded."""

    def close(self) -> None:
        """Nothing to stop."""
