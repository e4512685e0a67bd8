"""Access and limits on a real server: API keys, per-client rate, CORS, upload caps that
stop a body mid-stream, and logs that hold no request content."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.conftest import ANSWERS, RunningServer, start_server
from tests.api.helpers import metric_sample, problem

KEY, OTHER_KEY = "k-0f7a9c1e-clinic", "k-5d2b8e44-research"
UPLOAD_KEY = "k-77c3a0d2-uploads"  # its own rate bucket: the cap tests never meet the rate limit
UPLOAD_CAP = 1 << 20
RATE = 4  # per minute, per key
ORIGIN = "https://clinic.example"
TEXT = " ".join(ANSWERS)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def secured(tmp_path_factory) -> Iterator[RunningServer]:
    with start_server(
        tmp_path_factory.mktemp("secured"),
        api_key_hashes=",".join(_digest(key) for key in (KEY, OTHER_KEY, UPLOAD_KEY)),
        open_metrics="false",
        rate_limit_per_minute=str(RATE),
        cors_origins=ORIGIN,
        max_upload_bytes=str(UPLOAD_CAP),
        workers="1",
    ) as running:
        yield running


# ------------------------------------------------------------------------------------ API keys


def test_predict_without_a_key_is_401_with_a_bearer_challenge(secured: RunningServer) -> None:
    response = httpx.post(secured.url + "/predict", data={"transcript_text": TEXT})
    problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer not-a-key"}, {"X-API-Key": KEY + "x"}, {"Authorization": f"Basic {KEY}"}],
    ids=["wrong-bearer", "wrong-x-api-key", "not-bearer-scheme"],
)
def test_a_wrong_key_is_401(secured: RunningServer, headers: dict) -> None:
    response = httpx.post(secured.url + "/predict", data={"transcript_text": TEXT}, headers=headers)
    problem(response, 401, "unauthorized")


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_a_valid_key_is_accepted_in_either_header(secured: RunningServer, header: str) -> None:
    value = f"Bearer {KEY}" if header == "Authorization" else KEY
    response = httpx.post(secured.url + "/predict", data={"transcript_text": TEXT}, headers={header: value}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["inputs"]["text"]["used"] is True


def test_health_stays_open_and_metrics_need_a_key_when_so_configured(secured: RunningServer) -> None:
    assert httpx.get(secured.url + "/healthz").status_code == 200
    assert httpx.get(secured.url + "/readyz").status_code == 200
    problem(httpx.get(secured.url + "/metrics"), 401, "unauthorized")
    metrics = httpx.get(secured.url + "/metrics", headers={"X-API-Key": KEY})
    assert metrics.status_code == 200
    assert metric_sample(metrics.text, "phq_rejected_total", reason="unauthorized") >= 2


def test_the_openapi_schema_declares_both_key_schemes(secured: RunningServer) -> None:
    spec = httpx.get(secured.url + "/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert spec["paths"]["/predict"]["post"]["security"]


# ---------------------------------------------------------------------------------- rate limit


def test_a_client_past_its_rate_gets_429_and_others_are_unaffected(secured: RunningServer) -> None:
    statuses, retry_after = [], None
    for _ in range(RATE + 1):
        response = httpx.post(
            secured.url + "/predict", data={"transcript_text": TEXT}, headers={"X-API-Key": OTHER_KEY}, timeout=60
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            retry_after = response.headers.get("retry-after")
            problem(response, 429, "rate-limited")
    # the other key's test requests took at most two of its own tokens
    assert statuses[:RATE] == [200] * RATE and statuses[RATE] == 429, statuses
    assert retry_after is not None and 1 <= int(retry_after) <= 60 // RATE + 1
    other = httpx.post(secured.url + "/predict", data={"transcript_text": TEXT}, headers={"X-API-Key": KEY}, timeout=60)
    assert other.status_code == 200


# ---------------------------------------------------------------------------------------- CORS


def test_cors_allows_the_configured_origin_only(secured: RunningServer) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    allowed = httpx.options(secured.url + "/predict", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    refused = httpx.options(secured.url + "/predict", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in refused.headers


def test_cors_is_off_by_default(client: httpx.Client) -> None:
    response = client.get("/healthz", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


# --------------------------------------------------------------------------------- upload caps


def _raw_exchange(url: str, head: bytes, body: Iterator[bytes]) -> bytes:
    """Send ``head`` and then ``body`` chunks on a raw socket while a reader thread collects
    the answer, so an answer sent before the body is complete is seen."""
    parts = urlsplit(url)
    received = bytearray()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    received.extend(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        sock.sendall(head)
        for chunk in body:
            if received:
                break  # answered already: stop sending
            try:
                sock.sendall(chunk)
            except OSError:
                break
        reader.join(timeout=30)
    return bytes(received)


def _head(url: str, extra: str) -> bytes:
    host = urlsplit(url).netloc
    return (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {UPLOAD_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary=XyZ\r\n{extra}\r\n"
    ).encode()


def test_a_declared_body_over_the_cap_is_refused_before_any_of_it_is_sent(secured: RunningServer) -> None:
    answer = _raw_exchange(secured.url, _head(secured.url, "Content-Length: 1000000000\r\n"), iter(()))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload-too-large" in answer


def test_a_streamed_upload_over_the_cap_is_cut_off_mid_stream(secured: RunningServer) -> None:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        part = b'--XyZ\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
        chunk = b"\0" * (64 << 10)
        # up to 8x the cap, never the closing boundary: the server must answer first
        for _ in range(8 * UPLOAD_CAP // len(chunk)):
            sent += len(chunk)
            yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            time.sleep(0.005)

    answer = _raw_exchange(secured.url, _head(secured.url, "Transfer-Encoding: chunked\r\n"), body())
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 4 * UPLOAD_CAP, f"the server read {sent} bytes before refusing"
    time.sleep(0.5)
    assert list(secured.spool_dir.iterdir()) == [], "the cut-off upload was left on disk"


# ------------------------------------------------------------------------------------- privacy

SECRET_SENTENCE = "The violet harmonica whispers quietly to Bartholomew"
SECRET_NAME = "maria-gonzalez-session-0412"


def test_logs_hold_no_transcript_text_filename_or_client_address(running_server: RunningServer, media: dict) -> None:
    url = running_server.url
    text = (SECRET_SENTENCE + ". " + TEXT).encode()
    vtt = ("WEBVTT\n\n00:00:01.000 --> 00:00:00.500\n" + SECRET_SENTENCE + "\n").encode()  # ends before it starts
    requests = [
        {"files": {"transcript": (f"{SECRET_NAME}.txt", text, "text/plain")}},
        {"files": {"audio": (f"{SECRET_NAME}.wav", media["wav"].read_bytes(), "audio/wav")}},
        {"files": {"transcript": (f"{SECRET_NAME}.vtt", vtt, "text/vtt")}},
        {"files": {"video": (f"{SECRET_NAME}.mp4", b"not a video " + text, "video/mp4")}},
        {"data": {"transcript_text": SECRET_SENTENCE, "participant_speaker": SECRET_NAME}},
        {"data": {"transcript_text": SECRET_SENTENCE, "model_version": SECRET_NAME}},
    ]
    statuses = [httpx.post(url + "/predict", timeout=120, **r).status_code for r in requests]
    assert statuses[:2] == [200, 200] and all(400 <= s < 500 for s in statuses[2:4]), statuses
    metrics = httpx.get(url + "/metrics").text
    log = running_server.log()
    for secret in (SECRET_SENTENCE, "Bartholomew", SECRET_NAME, "gonzalez"):
        assert secret.lower() not in log.lower(), secret
        assert secret.lower() not in metrics.lower(), secret
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    request_lines = [line for line in lines if "request_id" in line]
    assert len(request_lines) >= len(requests)
    assert all(set(line) <= {"level", "logger", "message", "request_id", "exception", "frames"} for line in lines)
    assert not [line for line in request_lines if re.search(r"\d+\.\d+\.\d+\.\d+", line["message"])]


def test_a_key_is_never_logged(secured: RunningServer) -> None:
    httpx.post(secured.url + "/predict", data={"transcript_text": "x"}, headers={"X-API-Key": "leaky-" + KEY})
    assert KEY not in secured.log() and _digest(KEY) not in secured.log()
