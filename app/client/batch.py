"""``phq-client batch``: score a whole study, one line per recording, resumable.

    phq-client batch recordings/ --out results.jsonl [--concurrency 4] [--resume] [--url URL ...]
    phq-client batch study.csv --out results.csv

A folder: every file of a known kind is one recording's part, and the parts that share a
name (``p001.mp4`` and ``p001.vtt``) are one recording, named by its path below the folder
without the suffix. A CSV: one recording per row, columns ``id`` and any of ``video``,
``audio``, ``transcript`` (paths relative to the CSV's folder).

Each recording is sent to the next server URL in turn (``--url`` given several times);
429 and 503 are retried after the server's Retry-After (or a growing pause), an unreachable
server's recordings go to the others; any other refusal is that recording's answer (its
problem). One line per recording is written and flushed as it is answered, so an
interrupted run resumes from its output (``--resume``: recordings already there are not sent
again; a line cut short by a crash is dropped and its recording sent again). The output is
JSON lines (``{"id", "answer"}`` or ``{"id", "problem"}``) or, for a ``.csv`` name, one row
of the main figures. A progress line goes to stderr and a summary at the end: done, failed by
type, time.
"""

from __future__ import annotations

import csv
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from app.client import InputFileError, PhqClient, PhqClientError, ProblemError, ServerUnreachableError

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac"})
TRANSCRIPT_SUFFIXES = frozenset({".txt", ".vtt", ".srt", ".tsv", ".csv", ".json"})
MAX_ATTEMPTS = 6  # per recording, for 429/503 and unreachable servers
FIRST_PAUSE_S, MAX_PAUSE_S = 1.0, 30.0
CSV_FIELDS = ("id", "status", "total", "severity", "low", "high", "p_at_or_above_10", "problem", "detail")


@dataclass(frozen=True)
class Recording:
    id: str
    video: Path | None = None
    audio: Path | None = None
    transcript: Path | None = None


def recordings_in(source: Path) -> list[Recording]:
    """The recordings of a folder (parts grouped by name) or of a CSV list, in a stable order."""
    if source.is_dir():
        return _folder(source)
    if source.suffix.lower() == ".csv":
        return _listed(source)
    raise InputFileError(f"{source.name}: give a folder of recordings or a CSV list")


def _folder(folder: Path) -> list[Recording]:
    parts: dict[str, dict[str, Path]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        kind = (
            "video"
            if suffix in VIDEO_SUFFIXES
            else "audio"
            if suffix in AUDIO_SUFFIXES
            else "transcript"
            if suffix in TRANSCRIPT_SUFFIXES
            else None
        )
        if kind is None:
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        if kind in parts.setdefault(key, {}):
            raise InputFileError(f"{key}: two {kind} files share this name")
        parts[key][kind] = path
    return [Recording(key, **found) for key, found in sorted(parts.items())]


def _listed(table: Path) -> list[Recording]:
    base = table.parent
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    recordings, seen = [], set()
    for number, row in enumerate(rows, start=2):
        key = (row.get("id") or "").strip()
        if not key or key in seen:
            raise InputFileError(f"{table.name} line {number}: every row needs an id of its own")
        seen.add(key)
        paths = {
            kind: base / row[kind].strip() for kind in ("video", "audio", "transcript") if (row.get(kind) or "").strip()
        }
        recordings.append(Recording(key, **paths))
    return recordings


def answered_ids(out: Path) -> set[str]:
    """The recordings an earlier run's output holds (a line cut short is not an answer)."""
    if not out.exists():
        return set()
    done = set()
    if out.suffix.lower() == ".csv":
        with out.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("id") and row.get("status"):
                    done.add(row["id"])
        return done
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and ("answer" in entry or "problem" in entry):
            done.add(entry["id"])
    return done


@dataclass
class BatchSummary:
    done: int = 0
    failed: Counter[str] = field(default_factory=Counter)  # problem type (or kind of failure) -> count
    skipped: int = 0  # already in the output (--resume)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        failed = sum(self.failed.values())
        text = [f"{self.done + failed} recordings in {self.seconds:.1f} s: {self.done} answered, {failed} failed"]
        if self.skipped:
            text[0] += f", {self.skipped} already in the output"
        text += [f"  {kind}: {count}" for kind, count in sorted(self.failed.items())]
        return text


class _Output:
    """One line per recording, flushed at once: what an interrupted run leaves is resumable."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.csv = path.suffix.lower() == ".csv"
        exists = resume and path.exists() and path.stat().st_size > 0
        if exists and not self.csv:
            self._drop_broken_tail(path)
        self.handle: TextIO = path.open("a" if exists else "w", newline="" if self.csv else None, encoding="utf-8")
        self.writer = csv.DictWriter(self.handle, CSV_FIELDS) if self.csv else None
        if self.writer is not None and not exists:
            self.writer.writeheader()
        self.lock = threading.Lock()

    @staticmethod
    def _drop_broken_tail(path: Path) -> None:
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # a crash mid-line: that recording is sent again
            path.write_bytes(data[: data.rfind(b"\n") + 1])

    def write(self, key: str, answer: dict[str, Any] | None, problem: dict[str, Any] | None) -> None:
        with self.lock:
            if self.writer is not None:
                self.writer.writerow(_csv_row(key, answer, problem))
            else:
                entry = {"id": key, "answer": answer} if answer is not None else {"id": key, "problem": problem}
                self.handle.write(json.dumps(entry) + "\n")
            self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _csv_row(key: str, answer: dict[str, Any] | None, problem: dict[str, Any] | None) -> dict[str, Any]:
    if answer is not None:
        phq8 = answer["phq8"]
        return {
            "id": key,
            "status": "ok",
            "total": phq8["total"],
            "severity": phq8["severity"],
            "low": phq8["interval"]["low"],
            "high": phq8["interval"]["high"],
            "p_at_or_above_10": phq8.get("probability_at_or_above_cutoff"),
        }
    assert problem is not None
    return {"id": key, "status": problem.get("status"), "problem": problem.get("type"), "detail": problem.get("detail")}


def _problem_kind(problem: dict[str, Any]) -> str:
    kind = str(problem.get("type") or "").rstrip("/").rsplit("/", 1)[-1]
    return kind or f"status {problem.get('status')}"


class _Servers:
    """The servers in turn; one that cannot be reached is left out for a while."""

    def __init__(self, clients: Sequence[PhqClient]) -> None:
        self.clients = list(clients)
        self._turn = itertools.cycle(range(len(self.clients)))
        self._down_until = [0.0] * len(self.clients)
        self._lock = threading.Lock()

    def next(self) -> PhqClient:
        with self._lock:
            now = time.monotonic()
            for _ in range(len(self.clients)):
                k = next(self._turn)
                if self._down_until[k] <= now:
                    return self.clients[k]
            return self.clients[min(range(len(self.clients)), key=self._down_until.__getitem__)]

    def down(self, client: PhqClient, for_s: float) -> None:
        with self._lock:
            self._down_until[self.clients.index(client)] = time.monotonic() + for_s


def _score(
    recording: Recording, servers: _Servers, sleep: Callable[[float], None]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(answer, None) or (None, problem) for one recording, after the retries it deserves."""
    pause = FIRST_PAUSE_S
    for attempt in range(1, MAX_ATTEMPTS + 1):
        client = servers.next()
        try:
            answer = client.predict(video=recording.video, audio=recording.audio, transcript=recording.transcript)
            return answer, None
        except InputFileError as exc:
            return None, {"type": "local-file", "status": None, "detail": str(exc)}
        except ProblemError as problem:
            if not problem.retryable or attempt == MAX_ATTEMPTS:
                return None, {
                    "type": problem.type,
                    "status": problem.status,
                    "title": problem.title,
                    "detail": problem.detail,
                }
            sleep(problem.retry_after_s if problem.retry_after_s is not None else pause)
        except ServerUnreachableError as exc:
            servers.down(client, pause)
            if attempt == MAX_ATTEMPTS:
                return None, {"type": "unreachable", "status": None, "detail": str(exc)}
            sleep(pause if len(servers.clients) == 1 else 0.1)
        except PhqClientError as exc:
            return None, {"type": "client-error", "status": None, "detail": str(exc)}
        pause = min(2 * pause, MAX_PAUSE_S)
    raise AssertionError("unreachable")


def run_batch(
    recordings: Sequence[Recording],
    clients: Sequence[PhqClient],
    out: Path,
    concurrency: int = 2,
    resume: bool = False,
    on_progress: Callable[[int, int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchSummary:
    """Score ``recordings`` on ``clients`` (in turn), ``concurrency`` at a time, into ``out``.
    ``on_progress(answered, failed, total)`` after each recording."""
    started = time.monotonic()
    summary = BatchSummary()
    done = answered_ids(out) if resume else set()
    todo = [r for r in recordings if r.id not in done]
    summary.skipped = len(recordings) - len(todo)
    output = _Output(out, resume)
    servers = _Servers(clients)
    lock = threading.Lock()

    def one(recording: Recording) -> None:
        answer, problem = _score(recording, servers, sleep)
        output.write(recording.id, answer, problem)
        with lock:
            if answer is not None:
                summary.done += 1
            else:
                assert problem is not None
                summary.failed[_problem_kind(problem)] += 1
            if on_progress is not None:
                on_progress(summary.done, sum(summary.failed.values()), len(todo))

    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="phq-batch")
    try:
        for future in [pool.submit(one, r) for r in todo]:
            future.result()
    except BaseException:  # Ctrl-C: the recordings in flight finish and are written, no new one starts
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown()
        output.close()
    summary.seconds = time.monotonic() - started
    return summary


def iter_lines(out: Path) -> Iterator[dict[str, Any]]:
    """The entries of a JSON-lines output (for tools and tests)."""
    for line in out.read_text(encoding="utf-8").splitlines():
        yield json.loads(line)
