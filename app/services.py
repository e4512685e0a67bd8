"""What a running app holds: settings, metrics, the model, its runner and batcher, the
worker pool, and the admission and rate limits in front of them."""

from __future__ import annotations

from dataclasses import dataclass

from app.admission import Admission, RateLimiter
from app.config import Settings
from app.fusion.batcher import FusionBatcher
from app.fusion.runner import FusionRunner
from app.fusion.store import FusionModel
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
    ready: bool = False
