"""The preprocessing worker pool: CPU-bound decoding and feature extraction run in child
processes, never on the event loop."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from app.errors import ProcessingTimeoutError, ServiceError
from app.features.extract import Extracted, ExtractionJob, extract, face_models, text_encoder

log = logging.getLogger("app.workers")


class WorkerCrashError(ServiceError):
    status, type, title = 500, "worker-crashed", "Preprocessing worker crashed"


def _warm_worker(text_encoder_dir: str, model_store: str, threads: int) -> None:
    """Load the text encoder and face models and compile librosa's numba kernels before the
    first request."""
    import numpy as np

    from app.contract import AudioSpec
    from app.features.audio import audio_features

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    text_encoder(Path(text_encoder_dir), threads).embed(["warm up"])
    face_models(Path(model_store), threads)
    audio_features(np.zeros(AudioSpec().sample_rate, np.float32), AudioSpec())


def _ping() -> int:
    return os.getpid()


class WorkerPool:
    def __init__(self, size: int, model_store: Path, text_encoder_dir: Path, threads: int = 1) -> None:
        self.size = size
        self.model_store = model_store
        self.text_encoder_dir = text_encoder_dir
        self.threads = threads
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter per worker, no inherited ORT threads or locks
        return ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_worker,
            initargs=(str(self.text_encoder_dir), str(self.model_store), self.threads),
        )

    async def start(self) -> None:
        """Start every worker and wait until each has warmed up."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, _ping) for _ in range(self.size)))

    async def run(self, job: ExtractionJob, timeout_s: float) -> Extracted:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, extract, job)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError as exc:
            raise ProcessingTimeoutError(f"preprocessing took longer than {timeout_s:.0f} s") from exc
        except BrokenProcessPool as exc:
            log.error("a preprocessing worker died; replacing the pool")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise WorkerCrashError("a preprocessing worker crashed while handling this request") from exc

    def alive(self) -> bool:
        processes = getattr(self._pool, "_processes", None) or {}
        return len(processes) > 0 and all(p.is_alive() for p in processes.values())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
