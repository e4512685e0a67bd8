"""POST /jobs, GET and DELETE /jobs/{id} in process: the same pipeline, answered later."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import valid_answer
from tests.routes.helpers import TRANSCRIPT, problem

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _until_finished(client: TestClient, location: str, within_s: float = 60) -> dict:
    deadline = time.monotonic() + within_s
    while True:
        state = client.get(location).json()
        if state["status"] in ("done", "failed", "cancelled"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.05)


def test_a_job_is_accepted_then_answered_as_predict_answers(app_client: TestClient) -> None:
    response = app_client.post("/jobs", data={"transcript_text": TRANSCRIPT})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["location"] == accepted["location"] == f"/jobs/{accepted['job_id']}"
    state = _until_finished(app_client, accepted["location"])
    assert state["status"] == "done" and state["progress"] == 1.0
    answer = valid_answer(state["result"], used={"text"})
    direct = valid_answer(app_client.post("/predict", data={"transcript_text": TRANSCRIPT}).json(), used={"text"})
    assert answer.phq8.total == direct.phq8.total
    assert answer.request_id == response.headers["x-request-id"]


def test_bad_input_is_refused_during_the_post_and_no_job_is_kept(app_client: TestClient) -> None:
    before = app_client.get("/metrics").text.count('phq_jobs{status="queued"} 0.0')
    problem(app_client.post("/jobs", data={"include_timeline": "true"}), 422, "no-usable-input")
    assert app_client.get("/metrics").text.count('phq_jobs{status="queued"} 0.0') == before


def test_a_deleted_job_is_gone(app_client: TestClient) -> None:
    location = app_client.post("/jobs", data={"transcript_text": TRANSCRIPT}).json()["location"]
    _until_finished(app_client, location)
    assert app_client.delete(location).status_code == 204
    problem(app_client.get(location), 404, "job-not-found")
    problem(app_client.delete(location), 404, "job-not-found")
