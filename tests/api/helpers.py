"""Checks shared by the API tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.answer.schema import PredictResponse
from app.contract import MODALITIES


def valid_answer(body: dict, used: set[str]) -> PredictResponse:
    """Parse an answer and check the invariants every /predict answer must hold."""
    answer = PredictResponse.model_validate(body)
    weights = answer.attention.modalities.model_dump()
    assert abs(sum(weights.values()) - 1.0) < 2e-3, weights
    for name in MODALITIES:
        report = getattr(answer.inputs, name)
        assert report.used == (name in used), (name, report)
        if name not in used:
            assert weights[name] == 0.0
            assert all(getattr(w, name) == 0.0 for w in answer.attention.per_item.values())
        else:
            assert weights[name] > 0.0
    assert len(answer.phq8.items) == 8
    assert abs(sum(i.score for i in answer.phq8.items) - answer.phq8.total) < 0.01
    assert answer.phq8.interval.low <= answer.phq8.total <= answer.phq8.interval.high + 0.125
    bands = answer.phq8.band_probabilities.model_dump()
    assert abs(sum(bands.values()) - 1.0) < 2e-3, bands
    # the bands from "moderate" (10) up say what P(total >= 10) says
    if answer.phq8.cutoff == 10.0:
        above = bands["moderate"] + bands["moderately_severe"] + bands["severe"]
        assert abs(above - answer.phq8.probability_at_or_above_cutoff) < 2e-3, (bands, answer.phq8)
    assert answer.model.training_data == "synthetic" and answer.model.clinically_validated is False
    assert any("synthetic" in w for w in answer.warnings)
    assert "Research use only" in answer.notice
    return answer


def problem(response: Any, status: int, slug: str) -> dict:
    """An RFC 9457 answer (httpx or TestClient response) with this status and problem type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["type"].endswith("/" + slug)
    assert body["detail"]
    return body


def metric_sample(metrics: str, name: str, **labels: str) -> float:
    """Value of the sample ``name`` whose label set is exactly ``labels`` (0 when absent)."""
    for line in metrics.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or "")) == labels:
            return float(match.group(2))
    return 0.0


def _stat(pid: int | str) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name in parentheses may hold spaces and ')': split after the last one
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return state, int(ppid)


def process_state(pid: int) -> str | None:
    """The state letter (R, S, D, Z...) of a process, None once it is gone."""
    stat = _stat(pid)
    return stat[0] if stat else None


def child_processes(pid: int) -> list[tuple[int, str, str]]:
    """(pid, state letter, command line) of every process whose parent is ``pid``."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or (stat := _stat(entry.name)) is None or stat[1] != pid:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited while we looked
        children.append((int(entry.name), stat[0], cmdline))
    return children


def worker_pids(server_pid: int) -> list[int]:
    """The server's preprocessing workers (spawned interpreters), zombies excluded."""
    return sorted(p for p, state, cmd in child_processes(server_pid) if "spawn_main" in cmd and state != "Z")


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")
