"""The bad-input corpus (tests/corpus.py) against a real server of its own.

Every case must get an RFC 9457 problem+json 4xx, or a 200 with a valid answer where the
input is legitimately usable, and never a 5xx; where the case knows the exact status (or
the modalities a 200 must use) that is checked too. After each case nothing is left in the
spool dir (no file, no open descriptor), no upload escaped it, and the server has as many
live children (workers) as before the corpus and no zombie; after the whole corpus the
server still answers good requests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.contract import MODALITIES
from tests.api.conftest import RunningServer, start_server
from tests.api.helpers import child_processes, process_state, valid_answer
from tests.corpus import ANY_4XX, ESCAPE_NAME, GOOD_TRANSCRIPT, Case, Part, Request, Seeds, cases, form, upload

CASES = cases()
# generous for one request on two shared cores; a case that hangs the server fails here, not in CI's global timeout
CASE_TIMEOUT_S = 90.0
PROBLEM_KEYS = {"type", "title", "status", "detail"}
# the path-traversal filename case points here; a server that used the client's filename would write it
ESCAPED_UPLOAD = Path("/tmp") / ESCAPE_NAME
# a worker that died with its request may be replaced, and a request's folder removed, just after the answer
SETTLE_S = 10.0


# ------------------------------------------------------------------------------ the server's processes


def _children(pid: int) -> dict[int, str]:
    """Child pid -> state letter (R, S, D, Z...) of every direct child of ``pid``."""
    return {child: state for child, state, _ in child_processes(pid)}


def _open_spool_files(pids: list[int], spool_dir: Path) -> list[str]:
    """Descriptors of these processes still pointing into the spool dir (deleted or not)."""
    leaks = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                continue
            if target.startswith(str(spool_dir)):
                leaks.append(f"pid {pid} fd {fd} -> {target}")
    return leaks


@dataclass
class ServerWatch:
    """The server process, its spool dir, and how many children (workers) it had before the corpus ran."""

    pid: int
    spool_dir: Path
    workers_at_start: int

    def problems(self) -> list[str]:
        found = []
        if process_state(self.pid) in (None, "Z"):
            return [f"the server process {self.pid} is gone"]
        children = _children(self.pid)
        zombies = sorted(pid for pid, state in children.items() if state == "Z")
        live = len(children) - len(zombies)
        if zombies:
            found.append(f"zombie worker processes {zombies}")
        if live != self.workers_at_start:
            found.append(f"{live} live worker processes, {self.workers_at_start} at start")
        found += _open_spool_files([self.pid, *children], self.spool_dir)
        if leftovers := sorted(p.name for p in self.spool_dir.iterdir()):
            found.append(f"files left in the spool dir: {leftovers}")
        if ESCAPED_UPLOAD.exists():
            found.append(f"an upload escaped the spool dir to {ESCAPED_UPLOAD}")
        return found

    def settled(self, within_s: float = SETTLE_S) -> list[str]:
        """``problems()`` once they are gone, or as they still are after ``within_s``."""
        deadline = time.monotonic() + within_s
        while (found := self.problems()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of its own (default settings): the corpus's errors stay out of the shared server's log and state."""
    with start_server(tmp_path_factory.mktemp("corpus-server")) as running:
        yield running


@pytest.fixture(scope="module")
def watch(corpus_server: RunningServer) -> ServerWatch:
    ESCAPED_UPLOAD.unlink(missing_ok=True)  # from an earlier run against a server that wrote it
    children = _children(corpus_server.pid)
    assert children and "Z" not in children.values(), f"server workers at start: {children}"
    return ServerWatch(pid=corpus_server.pid, spool_dir=corpus_server.spool_dir, workers_at_start=len(children))


@pytest.fixture(scope="session")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    return Seeds(tmp_path_factory.mktemp("corpus-seeds"))


# ------------------------------------------------------------------------------ the corpus


def send(server: str, request: Request) -> httpx.Response:
    """One request on its own connection: a connection the server drops after one case cannot fail the next."""
    body, headers = request.body_and_headers()
    return httpx.post(server + "/predict", content=body, headers=headers, timeout=CASE_TIMEOUT_S)


def _check_problem(response: httpx.Response) -> None:
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("application/problem+json"), (response.status_code, content_type, response.text)
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS, body
    assert body["status"] == response.status_code, body
    assert all(isinstance(body[key], str) and body[key] for key in ("type", "title", "detail")), body


def _used(body: dict) -> set[str]:
    return {name for name in MODALITIES if body["inputs"][name]["used"]}


def _logged_for(server: RunningServer, response: httpx.Response) -> str:
    """The server's log lines naming this request, and the two after each (an unhandled error's type and frames)."""
    try:
        request_id = response.headers.get("x-request-id") or response.json().get("instance")
    except ValueError:
        return ""
    lines = server.log().splitlines()
    hits = [i for i, line in enumerate(lines) if request_id and request_id in line]
    return "\n".join(line for i in hits for line in lines[i : i + 3])[-3000:]


def check_answer(case: Case, response: httpx.Response, server: RunningServer) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}\nserver log:\n{_logged_for(server, response)}"
    expected = "any 4xx" if case.statuses == ANY_4XX else sorted(case.statuses or [])
    assert case.accepts(status), f"got {status}, expected {expected}: {response.text[:500]}"
    if status == 200:
        body = response.json()
        used = _used(body)
        valid_answer(body, used)
        if case.used is not None:
            assert used == case.used, f"used {sorted(used)}, expected {sorted(case.used)}; warnings {body['warnings']}"
    else:
        assert 400 <= status < 500, status
        _check_problem(response)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_problem_or_a_valid_answer(
    corpus_server: RunningServer, seeds: Seeds, watch: ServerWatch, case: Case
) -> None:
    response = send(corpus_server.url, case.build(seeds))
    after = watch.settled()  # before the answer's checks, so a failing answer does not hide what it left
    check_answer(case, response, corpus_server)
    assert after == [], "after this case"


def test_the_corpus_is_big_and_its_ids_are_unique() -> None:
    assert len(CASES) >= 200
    assert len({case.id for case in CASES}) == len(CASES)


def test_after_the_corpus_the_server_is_whole_and_still_answers(
    corpus_server: RunningServer, seeds: Seeds, watch: ServerWatch
) -> None:
    # runs after the parametrized corpus (file order): nothing left behind, no worker lost
    assert watch.settled() == []
    good = Request(
        (upload("audio", seeds.audio(".wav", long=True), "a.wav", "audio/wav"), *form(include_timeline="true"))
    )
    response = send(corpus_server.url, good)
    assert response.status_code == 200, response.text
    valid_answer(response.json(), used={"audio", "text"})
    response = send(corpus_server.url, Request((Part("transcript_text", GOOD_TRANSCRIPT.encode()),)))
    assert response.status_code == 200, response.text
    valid_answer(response.json(), used={"text"})
    assert watch.settled() == []
