"""The app in this process: the real pipeline, ONNX sessions, batcher, jobs and error path,
with extraction run in a thread (``InProcessExtractor``) instead of worker processes.

Fast (no subprocess, no port, one model load per test session), so route behaviour is
tested here; tests/api/ keeps the real-uvicorn suites for what only a real server shows
(worker isolation, timeouts, shutdown, the bytes on the wire).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import ServicesFactory, create_app
from app.model_store import load_fusion
from app.pipeline.extraction import ExtractionModels
from app.runtime import RuntimeConfig
from app.startup import running_services
from app.workers.extraction import InProcessExtractor
from tests.conftest import MODEL_STORE


@pytest.fixture(scope="session")
def extraction_models() -> ExtractionModels:
    """The workers' models, loaded and warmed once in this process."""
    features = load_fusion(MODEL_STORE).manifest.features
    models = ExtractionModels.load(MODEL_STORE, features, RuntimeConfig())
    models.warm()
    return models


def in_process(models: ExtractionModels) -> ServicesFactory:
    """The composition root's services, extracting in a thread of this process."""
    return partial(running_services, workers=InProcessExtractor(models))


@pytest.fixture(scope="session")
def spool(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spool")


@pytest.fixture(scope="session")
def app_client(spool: Path, extraction_models: ExtractionModels) -> Iterator[TestClient]:
    """One in-process app with its default settings (and a private spool), shared by the route tests."""
    settings = Settings(spool_dir=spool, providers=["cpu"])
    with TestClient(create_app(settings, services=in_process(extraction_models))) as client:
        yield client


@pytest.fixture()
def no_leftovers(spool: Path) -> Iterator[None]:
    """Every request's private folder is gone once its answer is back."""
    yield
    assert list(spool.iterdir()) == [], "upload files were left behind"
