"""A worker killed mid-request, a request past its time limit, more requests than the
service admits, and a graceful shutdown: on a real server with one worker."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ANSWERS, RunningServer, start_server
from tests.api.helpers import child_processes, metric_sample, resident_mb, worker_pids

# below the 73-s test video's analysis (about 5.5 s in one pass with LiteRT), well above an audio clip's (< 0.5 s)
TIMEOUT_S = 3.0
TEXT = " ".join(ANSWERS)


@pytest.fixture(scope="module")
def fragile(tmp_path_factory) -> Iterator[RunningServer]:
    # one worker and one waiting slot: capacity 2, easy to overflow
    with start_server(
        tmp_path_factory.mktemp("fragile"),
        workers="1",
        max_waiting_requests="1",
        request_timeout_s=str(TIMEOUT_S),
        shutdown_grace_s="30",
        # the time limit and the overflow waves are sized for audio without the speech stage
        # (about 3 s more per clip); tests/api/test_speech_stage.py runs it on a real server
        speaker_separation="off",
        speech_recognition="off",
        # one pass per video: two parallel segments would bring the clip near the time limit
        visual_split="1",
    ) as running:
        yield running


def _post_file(url: str, path: Path, field: str, timeout: float = 120) -> httpx.Response:
    return httpx.post(url + "/predict", files={field: (path.name, path.read_bytes())}, timeout=timeout)


def _wait_ready(server: RunningServer, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    while httpx.get(server.url + "/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the pool did not recover"
        time.sleep(0.25)


def _no_zombies(server: RunningServer) -> None:
    assert not [c for c in child_processes(server.pid) if c[1] == "Z"], child_processes(server.pid)


def test_a_worker_killed_mid_request_fails_that_request_only(fragile: RunningServer, media: dict) -> None:
    [worker] = worker_pids(fragile.pid)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_post_file, fragile.url, media["mp4"], "video")
        time.sleep(1.0)  # upload done, the worker is decoding
        os.kill(worker, signal.SIGKILL)
        response = pending.result()
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/worker-crashed")
    _wait_ready(fragile)
    assert worker not in worker_pids(fragile.pid) and len(worker_pids(fragile.pid)) == 1
    _no_zombies(fragile)
    assert httpx.post(fragile.url + "/predict", data={"transcript_text": TEXT}, timeout=60).status_code == 200
    assert list(fragile.spool_dir.iterdir()) == []
    metrics = httpx.get(fragile.url + "/metrics").text
    assert metric_sample(metrics, "phq_worker_replacements_total", cause="crash") == 1


def test_a_request_past_its_time_limit_gets_504_and_its_worker_is_replaced(fragile: RunningServer, media: dict) -> None:
    [worker] = worker_pids(fragile.pid)
    started = time.monotonic()
    response = _post_file(fragile.url, media["mp4"], "video")
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json()["type"].endswith("/processing-timeout")
    assert elapsed < TIMEOUT_S + 5, elapsed
    _wait_ready(fragile)
    assert worker not in worker_pids(fragile.pid), "the timed-out worker was left running"
    _no_zombies(fragile)
    assert httpx.post(fragile.url + "/predict", data={"transcript_text": TEXT}, timeout=60).status_code == 200
    assert list(fragile.spool_dir.iterdir()) == []


def test_beyond_capacity_requests_get_503_with_retry_after_and_memory_stays_bounded(
    fragile: RunningServer, media: dict
) -> None:
    audio = media["wav"]
    _post_file(fragile.url, audio, "audio")  # warm: the first answer allocates caches
    rss_before = resident_mb(fragile.pid)
    responses: list[httpx.Response] = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(4):  # four waves of 8 simultaneous requests: 32 in all
            responses += pool.map(lambda _: _post_file(fragile.url, audio, "audio"), range(8))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    # capacity is 2 (one running, one waiting): most of each wave is refused at once
    assert statuses.count(503) >= 4 * 4 and statuses.count(200) >= 4, statuses
    for refused in (r for r in responses if r.status_code == 503):
        assert refused.json()["type"].endswith("/overloaded")
        assert 1 <= int(refused.headers["retry-after"]) <= 120
    growth = resident_mb(fragile.pid) - rss_before
    assert growth < 100, f"server memory grew by {growth:.0f} MB over 32 requests"
    metrics = httpx.get(fragile.url + "/metrics").text
    assert metric_sample(metrics, "phq_rejected_total", reason="overloaded") >= statuses.count(503)
    assert metric_sample(metrics, "phq_requests_in_flight") == 0
    assert list(fragile.spool_dir.iterdir()) == []


def test_sigterm_finishes_the_request_in_flight_and_refuses_new_ones(fragile: RunningServer, media: dict) -> None:
    # last in this module: it stops the server
    workers = worker_pids(fragile.pid)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_post_file, fragile.url, media["wav"], "audio")
        time.sleep(0.5)
        fragile.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.ConnectError):
            httpx.get(fragile.url + "/healthz", timeout=5)
        response = pending.result()
    assert response.status_code == 200, response.text
    # uvicorn re-raises the SIGTERM it handled once it has shut down
    assert fragile.process.wait(timeout=30) in (0, -signal.SIGTERM)
    time.sleep(1.0)
    left = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert not left, f"workers outlived the server: {left}"
    assert list(fragile.spool_dir.iterdir()) == []
