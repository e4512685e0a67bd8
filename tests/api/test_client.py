"""The ``phq-client`` CLI and ``PhqClient``: as a subprocess against the session's real server
with generated media, and unit tests (summary, body, progress, the job loop) on real answers
or a mock transport."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.client import InputFileError, PhqClient, ProblemError, UnexpectedAnswerError, build_form
from app.client import cli as cli_module
from app.client.cli import build_parser, progress_bar, run_predict
from app.client.summary import format_summary
from tests.api.conftest import ANSWERS, start_server
from tests.api.helpers import valid_answer
from tests.conftest import ROOT

TEXT = " ".join(ANSWERS * 2)
KEY = "k-3c9e51aa-client-cli"
CLI_TIMEOUT_S = 300
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, so any request fails to connect


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m app.client`` as a user runs it (stdin/stdout/stderr are pipes: no progress bar)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PHQ_URL", "PHQ_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "app.client", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def transcript_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("client") / "answers.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture(scope="module")
def answer(server: str, media: dict[str, Path], transcript_file: Path) -> dict[str, Any]:
    """A real answer through ``--json``: audio and a transcript."""
    run = run_cli(
        "predict", "--url", server, "--audio", str(media["wav"]), "--transcript", str(transcript_file), "--json"
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


# --------------------------------------------------------------------- the CLI on a real server


def test_summary_names_total_band_items_and_weights(server: str, media: dict[str, Path], transcript_file: Path) -> None:
    run = run_cli("predict", "--url", server, "--audio", str(media["wav"]), "--transcript", str(transcript_file))
    assert run.returncode == 0, run.stderr
    out = run.stdout
    total = re.search(r"total\s+(\d+\.\d) / 24\s+90% interval (\d+\.\d) - (\d+\.\d)", out)
    assert total, out
    assert float(total[2]) <= float(total[1]) <= float(total[3]) + 0.15
    assert re.search(r"severity band\s+(none|mild|moderate|moderately severe|severe) \(", out), out
    assert re.search(r"P\(total >= 10\)\s+\d+%", out), out
    for item in ("interest", "mood", "sleep", "energy", "appetite", "self_worth", "concentration", "psychomotor"):
        assert re.search(rf"^\s+{item}\s+\d\.\d\s+\[", out, re.MULTILINE), item
    weights = dict(re.findall(r"^\s+(visual|audio|text)\s+(\d\.\d\d) ", out, re.MULTILINE))
    assert set(weights) == {"visual", "audio", "text"}, out
    assert float(weights["visual"]) == 0.0 and abs(sum(map(float, weights.values())) - 1.0) < 0.015
    assert re.search(r"visual\s+0\.00\s+not used: no video given", out), out
    assert re.search(r"audio\s+\d\.\d\d\s+\[[#.]+\]\s+used: audio upload", out), out
    assert "synthetic" in out and "Research use only." in out
    assert re.search(r"request id\s+[0-9a-f]{16}$", out, re.MULTILINE), out
    assert run.stderr == ""  # no TTY: no progress bar, and nothing went wrong


def test_json_output_is_a_valid_answer(answer: dict[str, Any]) -> None:
    parsed = valid_answer(answer, {"audio", "text"})
    assert parsed.timeline  # asked for by default


def test_video_json_without_timeline(server: str, media: dict[str, Path], transcript_file: Path) -> None:
    run = run_cli(
        "predict",
        "--url",
        server,
        "--video",
        str(media["mp4"]),
        "--transcript",
        str(transcript_file),
        "--json",
        "--no-timeline",
    )
    assert run.returncode == 0, run.stderr
    parsed = valid_answer(json.loads(run.stdout), {"visual", "audio", "text"})
    assert parsed.timeline is None
    assert parsed.inputs.audio.source == "video audio track"


def test_progress_bar_on_a_terminal(server: str, media: dict[str, Path]) -> None:
    """With stderr on a pseudo-terminal the upload bar is drawn there, and the line is cleared
    before the summary; stdout stays clean."""
    main_fd, terminal_fd = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.client", "predict", "--url", server, "--audio", str(media["wav"])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=terminal_fd,
            text=True,
        )
        os.close(terminal_fd)
        stdout, _ = process.communicate(timeout=CLI_TIMEOUT_S)
        drawn = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # EIO: the terminal's last writer is gone and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(main_fd)
    assert process.returncode == 0, drawn
    text = drawn.decode()
    assert "uploading [" in text and "100%" in text and "MB" in text, text
    assert text.endswith("\r"), text  # the line is blanked out, the cursor back at column 0
    assert "PHQ-8 estimate" in stdout and "uploading" not in stdout


def test_a_missing_file_is_refused_before_any_request(tmp_path: Path) -> None:
    # the URL has no server: a request would end in "cannot connect", not in the file message
    missing = tmp_path / "nowhere.wav"
    run = run_cli("predict", "--url", DEAD_URL, "--audio", str(missing))
    assert run.returncode == 2
    assert run.stderr.strip() == f"phq-client: --audio {missing}: no such file"
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a directory, not a file"),
        (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    ],
    ids=["directory", "empty"],
)
def test_files_that_cannot_be_sent_exit_2(tmp_path: Path, make: Callable[[Path], object], message: str) -> None:
    path = tmp_path / "interview.mp4"
    make(path)
    run = run_cli("predict", "--url", DEAD_URL, "--video", str(path))
    assert run.returncode == 2 and message in run.stderr, run.stderr


def test_usage_errors_exit_2() -> None:
    nothing = run_cli("predict", "--url", DEAD_URL)
    assert nothing.returncode == 2 and "nothing to send" in nothing.stderr
    both = run_cli("predict", "--url", DEAD_URL, "--transcript", "a.txt", "--transcript-text", "hello")
    assert both.returncode == 2 and "not both" in both.stderr
    bad_url = run_cli("predict", "--url", "ftp://example.org", "--transcript-text", "hello")
    assert bad_url.returncode == 2 and "not an http(s) URL" in bad_url.stderr


def test_garbage_audio_shows_the_servers_problem(server: str, tmp_path: Path) -> None:
    garbage = tmp_path / "x.wav"
    garbage.write_bytes(os.urandom(8192))
    run = run_cli("predict", "--url", server, "--audio", str(garbage))
    assert run.returncode == 1, run.stderr
    assert re.fullmatch(r"phq-client: 415 [^:]+: .*audio.* \(request id [0-9a-f]{16}\)\n", run.stderr), run.stderr
    assert run.stdout == ""


def test_unusable_input_is_a_problem_too(server: str) -> None:
    run = run_cli("predict", "--url", server, "--transcript-text", "only a few words")
    assert run.returncode == 1
    assert run.stderr.startswith("phq-client: 422 "), run.stderr


def test_no_server_is_a_clear_message() -> None:
    run = run_cli("predict", "--url", DEAD_URL, "--transcript-text", TEXT)
    assert run.returncode == 1
    assert "cannot connect to http://127.0.0.1:9: connection refused" in run.stderr, run.stderr


def test_keyed_server_401_then_key_from_the_environment(tmp_path: Path) -> None:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    with start_server(tmp_path, api_key_hashes=digest, workers="1") as keyed:
        refused = run_cli("predict", "--url", keyed.url, "--transcript-text", TEXT)
        assert refused.returncode == 1
        assert refused.stderr.startswith("phq-client: 401 "), refused.stderr
        assert "--api-key or PHQ_API_KEY" in refused.stderr
        accepted = run_cli("predict", "--url", keyed.url, "--transcript-text", TEXT, env={"PHQ_API_KEY": KEY})
        assert accepted.returncode == 0, accepted.stderr
        assert "text " in accepted.stdout
        assert KEY not in accepted.stdout + accepted.stderr + refused.stdout + refused.stderr


def _require_jobs(client: httpx.Client) -> None:
    if "/jobs" not in client.get("/openapi.json").json()["paths"]:
        pytest.skip("this server has no job API yet (no /jobs in /openapi.json); the client side is ready")


def test_async_through_the_job_api(server: str, client: httpx.Client, media: dict[str, Path]) -> None:
    _require_jobs(client)
    run = run_cli(
        "predict", "--url", server, "--audio", str(media["wav"]), "--transcript-text", TEXT, "--async", "--json"
    )
    assert run.returncode == 0, run.stderr
    valid_answer(json.loads(run.stdout), {"audio", "text"})
    # without a TTY: one line per state the client saw, ending in done
    states = re.findall(r"^phq-client: job (\S+) (\w+)$", run.stderr, re.MULTILINE)
    assert states and states[-1][1] == "done", run.stderr
    summary = run_cli("predict", "--url", server, "--transcript-text", TEXT, "--async")
    assert summary.returncode == 0 and "PHQ-8 estimate" in summary.stdout, summary.stderr


def test_async_ctrl_c_deletes_the_job_on_the_server(server: str, client: httpx.Client, media: dict[str, Path]) -> None:
    _require_jobs(client)
    process = subprocess.Popen(
        [sys.executable, "-m", "app.client", "predict", "--url", server, "--video", str(media["mp4"]), "--async"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:  # "phq-client: job <id> <state>", one per state change
            lines.append(line)
            if line.rstrip().endswith((" running", " done")):
                break
        job_id = lines[-1].split()[2]
        if lines[-1].rstrip().endswith(" done"):
            pytest.skip("the job finished before the client could be interrupted")
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, "".join(lines) + rest
    assert f"cancelled job {job_id}" in rest
    assert client.get(f"/jobs/{job_id}").status_code == 404  # deleted, not just abandoned


def test_the_client_imports_nothing_heavy() -> None:
    code = (
        "import sys, app.client, app.client.cli, app.client.summary, app.client.__main__;"
        "print(sorted(m for m in ('numpy', 'onnxruntime', 'librosa', 'av', 'cv2', 'fastapi', 'tokenizers')"
        " if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


# ------------------------------------------------------------------ the summary of a real answer


def test_summary_shows_what_the_answer_says(answer: dict[str, Any]) -> None:
    text = format_summary(answer)
    phq8, weights = answer["phq8"], answer["attention"]["modalities"]
    interval = phq8["interval"]
    assert f"{phq8['total']:.1f} / 24" in text
    assert f"{interval['level']:.0%} interval {interval['low']:.1f} - {interval['high']:.1f}" in text
    assert f"{phq8['severity'].replace('_', ' ')} (" in text
    assert f"P(total >= {phq8['cutoff']:g})  {phq8['probability_at_or_above_cutoff']:.0%}" in text
    for item in phq8["items"]:
        assert re.search(rf"^\s+{item['item']}\s+{item['score']:.1f}\s", text, re.MULTILINE), item
    for name, weight in weights.items():
        assert re.search(rf"^\s+{name}\s+{weight:.2f}\s", text, re.MULTILINE), name
    flat = _flat(text)
    for warning in answer["warnings"]:
        assert _flat(warning) in flat
    assert _flat(answer["notice"]) in flat
    assert answer["request_id"] in text
    assert f"{answer['model']['name']} v{answer['model']['version']} on {answer['model']['provider']}" in text


def test_summary_says_why_a_modality_was_not_used(answer: dict[str, Any]) -> None:
    changed = json.loads(json.dumps(answer))
    changed["inputs"]["text"] = {"used": False, "reason": "only 3 words from the participant", "windows": 0}
    changed["attention"]["modalities"] = {"visual": 0.0, "audio": 1.0, "text": 0.0}
    text = format_summary(changed)
    assert re.search(r"text\s+0\.00\s+not used: only 3 words from the participant", text), text
    assert re.search(r"audio\s+1\.00\s+\[#{12}\]\s+used:", text), text


def test_summary_refuses_an_answer_of_another_shape(answer: dict[str, Any]) -> None:
    broken = {k: v for k, v in answer.items() if k != "phq8"}
    with pytest.raises(UnexpectedAnswerError, match="phq8"):
        format_summary(broken)


# --------------------------------------------------------------------- body, progress, job loop


def test_the_streamed_body_has_its_declared_length(tmp_path: Path) -> None:
    audio = tmp_path / "Jane Doe's session.WAV"
    audio.write_bytes(os.urandom(300_000))
    form = build_form(audio=audio, transcript_text="hello", participant_speaker="P", include_timeline=False)
    seen: list[tuple[int, int]] = []
    body = b"".join(form.chunks(lambda sent, total: seen.append((sent, total))))
    assert len(body) == form.length and seen[-1] == (form.length, form.length)
    assert [s for s, _ in seen] == sorted(s for s, _ in seen)
    # the local name stays local: only the field name and the extension go out
    assert b'name="audio"; filename="audio.wav"' in body and b"Jane" not in body
    assert b'name="include_timeline"\r\n\r\nfalse\r\n' in body
    assert body.endswith(f"--{form.boundary}--\r\n".encode())


def test_check_transcript_false_is_sent_only_when_the_transcript_is_trusted(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x" * 1000)
    trusted = b"".join(build_form(audio=audio, transcript_text="hello", trust_transcript=True).chunks())
    assert b'name="check_transcript"\r\n\r\nfalse\r\n' in trusted
    assert b"check_transcript" not in b"".join(build_form(audio=audio, transcript_text="hello").chunks())


def test_return_transcript_is_sent_only_when_asked_for(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"x" * 1000)
    asked = b"".join(build_form(audio=audio, return_transcript=True).chunks())
    assert b'name="return_transcript"\r\n\r\ntrue\r\n' in asked
    assert b"return_transcript" not in b"".join(build_form(audio=audio).chunks())


def test_a_file_that_shrinks_mid_upload_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"x" * 200_000)
    form = build_form(audio=path)
    chunks = form.chunks()
    next(chunks)
    path.write_bytes(b"x" * 10)
    with pytest.raises(InputFileError, match="shrank"):
        b"".join(chunks)


def test_progress_display() -> None:
    assert progress_bar(0.0, 10) == "[>         ]"
    assert progress_bar(0.5, 10) == "[=====>    ]"
    assert progress_bar(1.0, 10) == "[==========]"
    stream = io.StringIO()
    status = cli_module.StatusLine(stream, enabled=True)
    status.upload(500, 1000)
    status.upload(1000, 1000)
    status.finish()
    drawn = stream.getvalue()
    assert "uploading [" in drawn and " 50%" in drawn and "100%" in drawn and drawn.endswith("\r")
    silent = io.StringIO()
    cli_module.StatusLine(silent, enabled=False).upload(1000, 1000)
    assert silent.getvalue() == ""


class FakeJobs:
    """The /jobs contract on a mock transport: queued, running, then ``outcome``."""

    def __init__(self, answer: dict[str, Any], outcome: str = "done", interrupt_on_poll: int | None = None) -> None:
        self.answer, self.outcome, self.interrupt_on_poll = answer, outcome, interrupt_on_poll
        self.polls, self.deleted, self.form = 0, [], b""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/jobs":
            self.form = request.read()
            body = {"job_id": "j1", "status": "queued", "location": "/jobs/j1", "progress": 0.0}
            return httpx.Response(202, json=body, headers={"Location": "/jobs/j1"})
        if request.method == "DELETE" and request.url.path == "/jobs/j1":
            self.deleted.append(request.url.path)
            return httpx.Response(204)
        if request.method == "GET" and request.url.path == "/jobs/j1":
            self.polls += 1
            if self.polls == self.interrupt_on_poll:
                raise KeyboardInterrupt
            body: dict[str, Any] = {"job_id": "j1", "status": "running", "progress": min(1.0, 0.3 * self.polls)}
            if self.polls >= 3:
                body["status"] = self.outcome
                if self.outcome == "done":
                    body["result"] = self.answer
                elif self.outcome == "failed":
                    body["error"] = {
                        "type": "https://phq-fusion.example/problems/processing-timeout",
                        "title": "Processing timeout",
                        "status": 504,
                        "detail": "preprocessing took longer than 600 s",
                        "instance": "abc123",
                    }
            return httpx.Response(200, json=body)
        return httpx.Response(404, json={"title": "Not Found", "status": 404, "detail": "no route"})


@pytest.fixture()
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "POLL_INTERVAL_S", 0.01)
    monkeypatch.setattr(cli_module, "MAX_POLL_INTERVAL_S", 0.01)


def _run_async(fake: FakeJobs, *extra: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(
        ["predict", "--url", "http://phq.test", "--transcript-text", TEXT, "--async", *extra]
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    with PhqClient(args.url, transport=httpx.MockTransport(fake)) as client:
        code = run_predict(args, client, stdout, stderr)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture()
def offline_answer() -> dict[str, Any]:
    """A schema-valid answer without a server: the summary needs only its shape here."""
    from app.answer.schema import PredictResponse

    weights = {"visual": 0.0, "audio": 0.4, "text": 0.6}
    items = [{"item": f"item{i}", "score": 1.0, "distribution": [0.25] * 4} for i in range(8)]
    report = {"used": True, "windows": 1}
    return PredictResponse.model_validate(
        {
            "request_id": "0123456789abcdef",
            "model": {
                "name": "fusion",
                "version": 2,
                "training_data": "synthetic",
                "clinically_validated": False,
                "provider": "CPUExecutionProvider",
            },
            "phq8": {
                "total": 8.0,
                "total_rounded": 8,
                "severity": "mild",
                "band_probabilities": {
                    "none": 0.2, "mild": 0.6, "moderate": 0.2, "moderately_severe": 0.0, "severe": 0.0
                },
                "interval": {"level": 0.9, "low": 5.0, "high": 11.0, "method": "conformal", "evidence_s": 60.0},
                "probability_at_or_above_cutoff": 0.2,
                "cutoff": 10.0,
                "items": items,
                "bin_centres": [0.0, 1.0, 2.0, 3.0],
            },
            "attention": {"modalities": weights, "per_item": {f"item{i}": weights for i in range(8)}},
            "inputs": {"visual": {"used": False, "reason": "no video given"}, "audio": report, "text": report},
            "timings_ms": {"total": 1.0},
            "warnings": ["the model was trained on synthetic data only"],
        }
    ).model_dump(mode="json")


def test_async_polls_until_done(offline_answer: dict[str, Any], fast_polls: None) -> None:
    fake = FakeJobs(offline_answer)
    code, out, err = _run_async(fake, "--json")
    assert code == 0, err
    assert json.loads(out) == offline_answer
    assert fake.polls == 3 and not fake.deleted
    assert b'name="transcript_text"' in fake.form
    assert re.findall(r"job j1 (\w+)", err) == ["queued", "running", "done"]


def test_async_failed_job_prints_its_problem(offline_answer: dict[str, Any], fast_polls: None) -> None:
    code, out, err = _run_async(FakeJobs(offline_answer, outcome="failed"))
    assert code == 1 and out == ""
    assert "phq-client: 504 Processing timeout: preprocessing took longer than 600 s (request id abc123)" in err


def test_async_ctrl_c_cancels_the_job(offline_answer: dict[str, Any], fast_polls: None) -> None:
    fake = FakeJobs(offline_answer, interrupt_on_poll=2)
    code, out, err = _run_async(fake, "--quiet")
    assert code == 130 and out == ""
    assert fake.deleted == ["/jobs/j1"]
    assert "cancelled job j1" in err and "interrupted" in err


def test_async_gives_up_after_timeout_and_cancels(offline_answer: dict[str, Any], fast_polls: None) -> None:
    fake = FakeJobs(offline_answer, outcome="running")  # never finishes
    code, out, err = _run_async(fake, "--timeout", "0.2", "--quiet")
    assert code == 1 and out == ""
    assert fake.deleted == ["/jobs/j1"]
    assert "did not finish within 0.2 s" in err


def test_a_busy_server_exits_3_with_the_retry_hint(offline_answer: dict[str, Any]) -> None:
    def busy(request: httpx.Request) -> httpx.Response:
        problem = {
            "type": "x/overloaded",
            "title": "Overloaded",
            "status": 503,
            "detail": "all slots taken",
            "instance": "feedc0de",
        }
        return httpx.Response(503, json=problem, headers={"Retry-After": "7"})

    args = build_parser().parse_args(["predict", "--url", "http://phq.test", "--transcript-text", TEXT])
    stderr = io.StringIO()
    with PhqClient(args.url, transport=httpx.MockTransport(busy)) as client:
        code = run_predict(args, client, io.StringIO(), stderr)
    assert code == 3
    assert "503 Overloaded: all slots taken (request id feedc0de)" in stderr.getvalue()
    assert "retry after 7 s" in stderr.getvalue()


def test_problem_from_a_non_json_error_page() -> None:
    response = httpx.Response(
        502, text="<html><body>Bad gateway from the proxy</body></html>", headers={"X-Request-ID": "r1"}
    )
    problem = ProblemError.from_response(response)
    assert str(problem).startswith("502 Bad Gateway: <html>") and problem.request_id == "r1"


def test_client_sends_the_key_as_a_bearer_token() -> None:
    seen: list[str | None] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(401, json={"title": "Unauthorized", "status": 401, "detail": "API key missing"})

    transport = httpx.MockTransport(capture)
    with (
        PhqClient("http://phq.test", api_key=KEY, transport=transport) as client,
        pytest.raises(ProblemError) as caught,
    ):
        client.predict(transcript_text=TEXT)
    assert seen == [f"Bearer {KEY}"] and KEY not in str(caught.value)
