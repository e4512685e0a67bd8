"""The one error path: every refusal is a catalogued problem, and a bug is a bare 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from app.errors import InternalError, NoUsableInputError, ServiceError
from app.main import create_app
from app.metrics import Metrics
from app.pipeline.extraction import ExtractionModels
from app.services import Services
from app.windows import WindowBatch
from tests.routes.conftest import in_process
from tests.routes.helpers import TRANSCRIPT, problem

SECRET = "the patient's own words, never to be echoed"


class BrokenFusion:
    """Fusion that fails as a bug would: an exception that is no ServiceError, with user content in it."""

    async def run(self, windows: WindowBatch):
        raise RuntimeError(SECRET)


def test_a_bug_is_a_500_internal_error_without_its_message(tmp_path: Path, extraction_models: ExtractionModels) -> None:
    real = in_process(extraction_models)

    @asynccontextmanager
    async def with_broken_fusion(settings: Settings, metrics: Metrics) -> AsyncIterator[Services]:
        async with real(settings, metrics) as services:
            services.pipeline.fusion = BrokenFusion()
            yield services

    settings = Settings(spool_dir=tmp_path, providers=["cpu"])
    with TestClient(create_app(settings, services=with_broken_fusion), raise_server_exceptions=False) as client:
        response = client.post("/predict", data={"transcript_text": TRANSCRIPT})
        body = problem(response, 500, "internal-error")
        assert body == InternalError().problem_body(response.headers["x-request-id"])
        assert SECRET not in response.text
        assert list(tmp_path.iterdir()) == []  # the upload folder went with the failure


def test_a_refusal_answers_the_body_its_error_builds(app_client: TestClient) -> None:
    response = app_client.post("/predict", data={"include_timeline": "true"})
    body = problem(response, 422, "no-usable-input")
    expected = NoUsableInputError(body["detail"]).problem_body(response.headers["x-request-id"])
    assert body == expected


def test_every_catalogued_error_survives_the_worker_pipe() -> None:
    import pickle

    import app.errors as catalogue

    errors = [
        cls
        for cls in vars(catalogue).values()
        if isinstance(cls, type) and issubclass(cls, ServiceError) and cls is not ServiceError
    ]
    assert len({cls.type for cls in errors}) == len(errors), "two errors share a problem type"
    for cls in errors:
        error = cls.__new__(cls)
        ServiceError.__init__(error, "what was wrong with which field", headers={"Retry-After": "3"}, errors=[])
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls and copy.problem_body("r") == error.problem_body("r")


def test_nothing_usable_names_each_modalitys_reason_as_a_member(app_client: TestClient) -> None:
    response = app_client.post("/predict", data={"transcript_text": "Only a few words here."})
    body = problem(response, 422, "no-usable-input")
    assert set(body["reasons"]) == {"visual", "audio", "text"}
    assert body["reasons"]["visual"] == "no video given"
    assert "words from the participant" in body["reasons"]["text"]
    assert "Only a few words" not in response.text  # never the content
