"""What a running app holds: settings, metrics, the model, its runner and batcher, the
extraction workers, the admission and rate limits in front of them, the async jobs, and the
pipeline every entry point calls. Built by the composition root (``app.startup``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.admission import Admission, ClientRateLimit
from app.config import Settings
from app.fusion.batcher import FusionBatcher
from app.fusion.runner import FusionRunner
from app.jobs import JobManager
from app.metrics import Metrics
from app.model_store import FusionModel
from app.pipeline.extraction import WorkerJob, WorkerResult
from app.pipeline.service import Pipeline


class Workers(Protocol):
    """Where extraction runs: the worker pool (``ExtractionPool``), or a thread in tests."""

    async def run(self, job: WorkerJob, timeout_s: float) -> WorkerResult: ...

    async def start(self) -> None: ...

    def alive(self) -> bool: ...

    def session_providers(self) -> dict[str, list[str]]: ...

    def close(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    model: FusionModel
    runner: FusionRunner
    batcher: FusionBatcher  # every inference goes through it
    workers: Workers
    admission: Admission
    rate_limiter: ClientRateLimit
    jobs: JobManager  # POST /jobs: processed in this process, records in its store
    pipeline: Pipeline  # what every entry point calls
    ready: bool = False
