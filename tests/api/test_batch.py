"""``phq-client batch`` against two real servers: a generated folder of recordings (good and
bad files) is scored across both, one line per recording; a run killed part-way and resumed
answers every recording exactly once; CSV lists and CSV output work the same way."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ANSWERS, ROOT, RunningServer, start_server
from tests.api.helpers import metric_sample

GOOD = 24


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, RunningServer]]:
    with (
        start_server(tmp_path_factory.mktemp("batch-a"), workers="1") as a,
        start_server(tmp_path_factory.mktemp("batch-b"), workers="1") as b,
    ):
        yield a, b


@pytest.fixture()
def study(tmp_path: Path) -> Path:
    """GOOD transcripts of one participant each, plus files that are not evidence."""
    folder = tmp_path / "study"
    (folder / "site-2").mkdir(parents=True)
    for k in range(GOOD):
        lines = ANSWERS[k % len(ANSWERS) :] + ANSWERS[: k % len(ANSWERS)]
        where = folder / "site-2" if k % 3 == 0 else folder
        (where / f"p{k:03d}.txt").write_text(" ".join(lines))
    (folder / "short.txt").write_text("I am fine.")  # too few words: 422
    (folder / "noise.wav").write_bytes(os.urandom(4000))  # not audio: 4xx
    (folder / "notes.docx").write_bytes(b"ignored: not a recording's kind")
    return folder


def _batch(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app.client", "batch", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _entries(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_killed_batch_resumes_and_answers_every_recording_exactly_once(
    two_servers: tuple[RunningServer, RunningServer], study: Path, tmp_path: Path
) -> None:
    a, b = two_servers
    out = tmp_path / "results.jsonl"
    urls = ["--url", a.url, "--url", b.url]
    first = _batch(str(study), "--out", str(out), "--concurrency", "1", *urls)
    deadline = time.monotonic() + 120
    while (not out.exists() or len(out.read_text().splitlines()) < 5) and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # a crash, not a polite stop
    first.wait()
    partial = len(_entries(out)) if out.read_text().endswith("\n") else len(out.read_text().splitlines()) - 1
    assert 5 <= partial < GOOD + 2, partial
    resumed = _batch(str(study), "--out", str(out), "--resume", "--concurrency", "2", *urls)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 1, stderr  # two recordings are not evidence
    entries = _entries(out)
    ids = Counter(e["id"] for e in entries)
    expected = {f"p{k:03d}" if k % 3 else f"site-2/p{k:03d}" for k in range(GOOD)} | {"short", "noise"}
    assert set(ids) == expected and set(ids.values()) == {1}, ids
    for entry in entries:
        if entry["id"] in ("short", "noise"):
            assert entry["problem"]["status"] in (400, 415, 422), entry
        else:
            assert 0 <= entry["answer"]["phq8"]["total"] <= 24
    summary = stdout.splitlines()
    assert f"{partial} already in the output" in summary[0], stdout
    assert any(line.strip().startswith("no-usable-input: ") for line in summary), stdout
    # both servers took their share
    for server in two_servers:
        text = httpx.get(server.url + "/metrics").text
        assert metric_sample(text, "phq_requests_total", route="/predict", method="POST", status="200") > 0


def test_a_csv_list_scores_into_a_csv_of_figures_and_a_down_server_is_passed_over(
    two_servers: tuple[RunningServer, RunningServer], study: Path, tmp_path: Path
) -> None:
    a, _ = two_servers
    table = tmp_path / "list.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "transcript", "audio"])
        writer.writerow(["one", str(study / "p001.txt"), ""])
        writer.writerow(["two", str(study / "p002.txt"), ""])
        writer.writerow(["missing", str(study / "nowhere.txt"), ""])
    out = tmp_path / "figures.csv"
    dead = "http://127.0.0.1:9"  # nothing listens: its recordings go to the other server
    run = _batch(str(table), "--out", str(out), "--url", dead, "--url", a.url, "-q")
    stdout, stderr = run.communicate(timeout=120)
    rows = {row["id"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"one", "two", "missing"}, (stdout, stderr)
    for key in ("one", "two"):
        assert rows[key]["status"] == "ok" and 0 <= float(rows[key]["total"]) <= 24
        assert float(rows[key]["low"]) <= float(rows[key]["total"]) <= float(rows[key]["high"])
    assert rows["missing"]["problem"] == "local-file"
    assert "3 recordings" in stdout and "2 answered, 1 failed" in stdout
