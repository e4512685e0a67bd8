"""What a running app holds: settings, metrics, the model, its runner, the worker pool."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
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
    workers: WorkerPool
    ready: bool = False
