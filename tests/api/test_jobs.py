"""Async jobs on a real server: POST /jobs, GET and DELETE /jobs/{id}.

One server for the module, with a 2 s result TTL, delete-on-read and room for one job, so
that expiry, delete-on-read and the job limit show within seconds. Its own server: the
shared one is fuzzed (tests/api/test_fuzz.py), which leaves it holding the most jobs it may
for the default TTL.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ANSWERS, RunningServer, start_server
from tests.api.helpers import metric_sample, problem, valid_answer, worker_pids
from tests.api.transcripts import plain

TTL_S = 2.0
TEXT = " ".join(ANSWERS)
FINISHED = {"done", "failed", "cancelled"}


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory) -> Iterator[RunningServer]:
    with start_server(
        tmp_path_factory.mktemp("jobs"), job_ttl_s=str(TTL_S), job_delete_on_read="true", max_jobs="1"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def jobs_client(jobs_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jobs_server.url, timeout=120) as c:
        yield c


@pytest.fixture(autouse=True)
def no_uploads_left(jobs_server: RunningServer) -> Iterator[None]:
    """Every job's private folder is gone once the job has ended (or been deleted)."""
    yield
    assert list(jobs_server.spool_dir.iterdir()) == [], "a job's upload files were left behind"


def _audio(path: Path) -> dict:
    return {"audio": (path.name, path.read_bytes(), "application/octet-stream")}


def _submit(client: httpx.Client, **request) -> str:
    response = client.post("/jobs", **request)
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"job_id", "status", "location", "expires_at"}
    assert body["status"] == "queued" and body["expires_at"] is None
    assert response.headers["location"] == body["location"] == f"/jobs/{body['job_id']}"
    return body["location"]


def _poll(client: httpx.Client, location: str, until: set[str], within_s: float = 90) -> list[dict]:
    """GET the job until its status is in ``until``; every body seen, in order."""
    seen: list[dict] = []
    deadline = time.monotonic() + within_s
    while True:
        response = client.get(location)
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in until:
            return seen
        assert time.monotonic() < deadline, seen[-1]
        time.sleep(0.1)


def _held(client: httpx.Client, status: str) -> float:
    return metric_sample(client.get("/metrics").text, "phq_jobs_held", status=status)


def test_a_job_round_trip_gives_the_answer_predict_gives(jobs_client: httpx.Client, media: dict) -> None:
    posted = jobs_client.post("/jobs", files=_audio(media["wav"]))
    assert posted.status_code == 202, posted.text
    location = posted.headers["location"]
    seen = _poll(jobs_client, location, FINISHED)
    job = seen[-1]
    assert job["status"] == "done" and job["error"] is None, job
    progress = [body["progress"] for body in seen]
    assert progress == sorted(progress) and progress[0] > 0 and progress[-1] == 1.0
    answer = valid_answer(job["result"], used={"audio", "text"})  # text: what speech recognition heard
    assert answer.request_id == posted.headers["x-request-id"]
    assert "queued" in answer.timings_ms and answer.timings_ms["total"] >= answer.timings_ms["upload"]
    created, finished, expires = (datetime.fromisoformat(job[k]) for k in ("created_at", "finished_at", "expires_at"))
    assert created <= finished and (expires - finished).total_seconds() == pytest.approx(TTL_S)
    # delete-on-read: the read that saw it done was its last
    problem(jobs_client.get(location), 404, "job-not-found")
    # the same pipeline as /predict: the same estimate
    direct = jobs_client.post("/predict", files=_audio(media["wav"]))
    assert direct.status_code == 200, direct.text
    assert direct.json()["phq8"] == job["result"]["phq8"]


BAD_REQUESTS = {
    "no input": ({"data": {"include_timeline": "true"}}, 422, "no-usable-input"),
    "both transcripts": (
        {"data": {"transcript_text": TEXT}, "files": {"transcript": ("t.txt", b"hi", "text/plain")}},
        422,
        "conflicting-input",
    ),
    "model not served": ({"data": {"transcript_text": TEXT, "model_version": "999"}}, 422, "no-usable-input"),
    "unknown field": ({"data": {"transcript_text": TEXT, "colour": "red"}}, 400, "bad-request"),
    "invalid option": ({"data": {"transcript_text": TEXT, "include_timeline": "maybe"}}, 400, "bad-request"),
    "empty upload": ({"files": {"audio": ("a.wav", b"", "audio/wav")}}, 415, "unsupported-media"),
    "not a form": ({"json": {"transcript_text": TEXT}}, 415, "unsupported-media"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_input_gets_the_same_4xx_as_predict_at_once(jobs_client: httpx.Client, case: str) -> None:
    request, status, slug = BAD_REQUESTS[case]
    predicted = problem(jobs_client.post("/predict", **request), status, slug)
    refused = problem(jobs_client.post("/jobs", **request), status, slug)
    assert refused["detail"] == predicted["detail"]
    assert refused.get("errors") == predicted.get("errors")
    # nothing is held for a refused job: the one job slot is free
    assert _held(jobs_client, "queued") == 0


def test_a_job_whose_upload_is_not_media_fails_with_the_problem_predict_answers(jobs_client: httpx.Client) -> None:
    junk = {"audio": ("notes.wav", bytes(range(256)) * 64, "audio/wav")}
    job = _poll(jobs_client, _submit(jobs_client, files=junk), FINISHED)[-1]
    assert job["status"] == "failed" and job["result"] is None and job["finished_at"] is not None
    direct = problem(jobs_client.post("/predict", files=junk), 415, "unsupported-media")
    assert {k: job["error"][k] for k in ("type", "title", "status", "detail")} == {
        k: direct[k] for k in ("type", "title", "status", "detail")
    }
    assert job["error"]["instance"]  # the POST's request id


def test_a_running_job_holds_the_only_slot_and_delete_cancels_it(
    jobs_server: RunningServer, jobs_client: httpx.Client, media: dict
) -> None:
    before = metric_sample(jobs_client.get("/metrics").text, "phq_jobs_total", outcome="cancelled")
    location = _submit(jobs_client, files={"video": ("v.mp4", media["mp4"].read_bytes(), "video/mp4")})
    assert _poll(jobs_client, location, {"running"} | FINISHED)[-1]["status"] == "running"
    assert list(jobs_server.spool_dir.iterdir()), "a running job keeps its upload"
    # max_jobs=1: the next job is refused before its upload is read
    refused = jobs_client.post("/jobs", data={"transcript_text": TEXT})
    problem(refused, 503, "too-many-jobs")
    assert 1 <= int(refused.headers["retry-after"]) <= 120
    assert jobs_client.delete(location).status_code == 204
    assert list(jobs_server.spool_dir.iterdir()) == [], "the cancelled job's upload is still there"
    problem(jobs_client.get(location), 404, "job-not-found")
    problem(jobs_client.delete(location), 404, "job-not-found")
    metrics = jobs_client.get("/metrics").text
    assert metric_sample(metrics, "phq_jobs_total", outcome="cancelled") == before + 1
    assert metric_sample(metrics, "phq_jobs_held", status="running") == 0
    # the slot is free again
    job = _poll(jobs_client, _submit(jobs_client, data={"transcript_text": plain()}), FINISHED)[-1]
    assert job["status"] == "done", job


def test_an_unread_result_is_gone_after_its_ttl(jobs_client: httpx.Client) -> None:
    location = _submit(jobs_client, data={"transcript_text": plain()})
    deadline = time.monotonic() + 60
    while _held(jobs_client, "done") == 0:  # watched on /metrics: a GET would consume it
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)
    time.sleep(TTL_S + 0.5)
    problem(jobs_client.get(location), 404, "job-not-found")
    assert _held(jobs_client, "done") == 0


def test_an_unknown_job_is_404(jobs_client: httpx.Client) -> None:
    problem(jobs_client.get("/jobs/not-a-job"), 404, "job-not-found")
    problem(jobs_client.delete("/jobs/not-a-job"), 404, "job-not-found")


def test_shutdown_cancels_a_running_job_and_removes_its_upload(jobs_server: RunningServer, media: dict) -> None:
    # last in this module: it stops the server
    client = httpx.Client(base_url=jobs_server.url, timeout=60)
    secret = "The violet harmonica whispers quietly to Bartholomew"
    files = {
        "video": ("v.mp4", media["mp4"].read_bytes(), "video/mp4"),
        "transcript": ("t.txt", (secret + ". " + TEXT).encode(), "text/plain"),
    }
    location = _submit(client, files=files)
    assert _poll(client, location, {"running"} | FINISHED)[-1]["status"] == "running"
    workers = worker_pids(jobs_server.pid)
    jobs_server.process.send_signal(signal.SIGTERM)
    assert jobs_server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert list(jobs_server.spool_dir.iterdir()) == []
    time.sleep(1.0)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "workers outlived the server"
    log = jobs_server.log()
    assert "cancelled 1 unfinished jobs at shutdown" in log
    assert secret not in log and "Bartholomew" not in log
