"""Several replicas on one Redis (issue 19): two real servers, A and B, share a real
redis-server (tests/redis_server.py) for their jobs and rate limits; a third, killed with
SIGKILL mid-job, shows what a replica that dies leaves behind.

Each test has its own API key: keys have their own rate buckets, so one test's requests
never spend another's.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ANSWERS, RunningServer, start_server
from tests.api.helpers import metric_sample, problem, valid_answer, worker_pids
from tests.redis_server import RedisServer, needs_redis, running_redis

pytestmark = needs_redis

KEYS = {name: f"k-{name}-{n:04d}" for n, name in enumerate(("jobs", "delete", "killed", "limit", "down"))}
RATE = 3  # per minute and key, across all replicas
LEASE_S = 2.0
TEXT = " ".join(ANSWERS)
FINISHED = {"done", "failed", "cancelled"}


def _settings(redis: RedisServer) -> dict[str, str]:
    return {
        "redis_url": redis.url,
        "job_lease_s": str(LEASE_S),
        "api_key_hashes": ",".join(hashlib.sha256(key.encode()).hexdigest() for key in KEYS.values()),
        "rate_limit_per_minute": str(RATE),
        "workers": "1",
    }


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, redis: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    with (
        start_server(tmp_path_factory.mktemp("replica-a"), **_settings(redis)) as a,
        start_server(tmp_path_factory.mktemp("replica-b"), **_settings(redis)) as b,
    ):
        yield a, b


def _video(media: dict) -> dict:
    return {"video": ("v.mp4", media["mp4"].read_bytes(), "video/mp4")}


def _submit(url: str, key: str, **request) -> str:
    response = httpx.post(url + "/jobs", headers=_auth(key), timeout=120, **request)
    assert response.status_code == 202, response.text
    return response.headers["location"]


def _status(url: str, location: str, key: str) -> dict:
    response = httpx.get(url + location, headers=_auth(key), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _poll(url: str, location: str, key: str, until: set[str], within_s: float = 120) -> dict:
    deadline = time.monotonic() + within_s
    while (job := _status(url, location, key))["status"] not in until:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


def test_a_job_submitted_on_one_replica_is_read_and_deleted_on_the_other(
    replicas: tuple[RunningServer, RunningServer], media: dict
) -> None:
    a, b = replicas
    location = _submit(a.url, "jobs", files={"audio": ("s.wav", media["wav"].read_bytes(), "audio/wav")})
    job = _poll(b.url, location, "jobs", FINISHED)
    assert job["status"] == "done", job
    valid_answer(job["result"], used={"audio", "text"})
    assert _status(a.url, location, "jobs") == job
    # another key does not see it on either replica
    for server in replicas:
        problem(httpx.get(server.url + location, headers=_auth("limit")), 404, "job-not-found")
    assert httpx.delete(b.url + location, headers=_auth("jobs")).status_code == 204
    problem(httpx.get(a.url + location, headers=_auth("jobs")), 404, "job-not-found")
    ready = httpx.get(a.url + "/readyz").json()
    assert ready["ready"] is True and ready["shared_store"] == "reachable"


def test_delete_on_one_replica_stops_the_job_running_on_the_other(
    replicas: tuple[RunningServer, RunningServer], media: dict
) -> None:
    a, b = replicas
    location = _submit(a.url, "delete", files=_video(media))
    assert _poll(b.url, location, "delete", {"running"} | FINISHED)["status"] == "running"
    workers = worker_pids(a.pid)
    assert httpx.delete(b.url + location, headers=_auth("delete")).status_code == 204
    # A finds the record gone at its next renewal (a third of the lease): it kills and replaces
    # the worker and removes the upload
    deadline = time.monotonic() + LEASE_S * 2
    while list(a.spool_dir.iterdir()) or worker_pids(a.pid) == workers:
        assert time.monotonic() < deadline, "the deleted job still runs on its replica"
        time.sleep(0.05)
    metrics = httpx.get(a.url + "/metrics").text
    assert metric_sample(metrics, "phq_jobs_held", status="running") == 0


def test_a_replica_killed_mid_job_leaves_it_failed_within_the_lease(
    tmp_path: Path, redis: RedisServer, replicas: tuple[RunningServer, RunningServer], media: dict
) -> None:
    _, b = replicas
    with start_server(tmp_path, **_settings(redis)) as doomed:
        location = _submit(doomed.url, "killed", files=_video(media))
        assert _poll(b.url, location, "killed", {"running"} | FINISHED)["status"] == "running"
        for pid in [doomed.pid, *worker_pids(doomed.pid)]:  # the machine goes: nothing runs a finally
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        doomed.process.wait()
        assert _status(b.url, location, "killed")["status"] == "running", "its lease still holds"
        job = _poll(b.url, location, "killed", FINISHED, within_s=LEASE_S + 2)
        seconds = time.monotonic() - killed
    assert job["status"] == "failed" and seconds <= LEASE_S + 0.5, (job, seconds)
    assert job["error"]["status"] == 503 and job["error"]["type"].endswith("/job-abandoned")
    assert job["expires_at"] is not None


def test_the_rate_limit_is_one_for_all_replicas(replicas: tuple[RunningServer, RunningServer]) -> None:
    a, b = replicas
    for server in (a, b, a):
        answered = httpx.post(server.url + "/predict", data={"transcript_text": TEXT}, headers=_auth("limit"))
        assert answered.status_code == 200, answered.text
    for server in (b, a):
        refused = httpx.post(server.url + "/predict", data={"transcript_text": TEXT}, headers=_auth("limit"))
        problem(refused, 429, "rate-limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60 // RATE


def test_with_redis_down_jobs_answer_503_and_predict_still_works(
    redis: RedisServer, replicas: tuple[RunningServer, RunningServer]
) -> None:
    a, b = replicas
    redis.stop()
    try:
        refused = httpx.post(a.url + "/jobs", data={"transcript_text": TEXT}, headers=_auth("down"), timeout=30)
        problem(refused, 503, "job-store-unavailable")
        assert int(refused.headers["retry-after"]) >= 1
        problem(httpx.get(b.url + "/jobs/some-job", headers=_auth("down"), timeout=30), 503, "job-store-unavailable")
        answered = httpx.post(a.url + "/predict", data={"transcript_text": TEXT}, headers=_auth("down"), timeout=60)
        assert answered.status_code == 200, answered.text
        ready = httpx.get(b.url + "/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["shared_store"] == "unreachable"
        metrics = httpx.get(a.url + "/metrics").text
        assert metric_sample(metrics, "phq_shared_store_errors_total", part="jobs") >= 1
        assert metric_sample(metrics, "phq_shared_store_errors_total", part="rate_limits") >= 2
    finally:
        redis.start()
    # Redis is back (empty: nothing was saved): jobs work again on both replicas
    location = _submit(a.url, "down", data={"transcript_text": TEXT})
    assert _poll(b.url, location, "down", FINISHED)["status"] == "done"
