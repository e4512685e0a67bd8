"""What a running app holds: settings, metrics, the model, its runner and batcher, the
worker pool, the admission and rate limits in front of them, and the async jobs."""

from __future__ import annotations

from dataclasses import dataclass

from app.admission import Admission, RateLimiter
from app.config import Settings
from app.fusion.batcher import FusionBatcher
from app.fusion.runner import FusionRunner
from app.fusion.store import FusionModel
from app.jobs import JobManager
from app.metrics import Metrics
from app.workers import WorkerPool


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    model: FusionModel
    runner: FusionRunner
    batcher: FusionBatcher  # every /predict inference goes through it
    workers: WorkerPool
    admission: Admission
    rate_limiter: RateLimiter
    jobs: JobManager  # POST /jobs: processed in this process, records in its store
    ready: bool = False
