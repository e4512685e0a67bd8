"""Where async jobs' records live: the ``JobStore`` interface and its in-memory implementation.

A record is plain data (status, progress, times, the answer or the problem as JSON), so a
shared store can hold it as it is. What cannot leave the process (the task running the job,
its upload folder) stays in the job manager (``app.jobs``). See docs/jobs.md for what a
multi-replica deployment needs.

Times are wall-clock seconds (epoch): they are shown to clients and compared across
processes. A record with ``expires_at`` in the past is gone for every method, whether or
not ``purge_expired`` has run yet.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    created_at: float
    status: JobStatus = "queued"
    progress: float = 0.0
    finished_at: float | None = None
    expires_at: float | None = None  # set when the job finishes: finished_at + the TTL
    result: dict[str, Any] | None = None  # the PredictResponse as JSON, when done
    error: dict[str, Any] | None = None  # the problem+json body, when failed
    owner: str | None = None  # the creator's API key digest when keys are configured; never the key

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class JobStoreFull(Exception):
    """``create`` found ``limit`` live records already."""


class JobStoreUnavailable(Exception):
    """The store did not answer (a shared store that is down or unreachable)."""


class JobStore(abc.ABC):
    """Job records by id. Implementations must make ``create``'s limit check and insert one
    atomic step (several requests, or replicas, may create at once) and must never return a
    record past its ``expires_at``.

    A shared store gives each unfinished record a lease of ``lease_s`` from ``create`` on: the
    replica running the job renews it (``renew``); a job whose lease lapsed is one whose replica
    died, and ``fail_abandoned`` marks it failed. A store of one process has no leases
    (``lease_s`` None): the process that would renew them is the one holding the records."""

    lease_s: float | None = None
    shared: bool = False  # records visible to other processes (replicas)

    @abc.abstractmethod
    async def create(self, record: JobRecord, *, limit: int) -> None:
        """Insert ``record``; JobStoreFull when ``limit`` live records exist already."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> JobRecord | None:
        """The live record, or None when unknown or expired."""

    @abc.abstractmethod
    async def update(self, job_id: str, **changes: Any) -> JobRecord | None:
        """Apply ``changes`` to the live, unfinished record and return it; None (and no change) when it
        is gone or finished: a finished record is final (a replica that was only slow cannot turn a
        job another replica marked abandoned back into a running one)."""

    @abc.abstractmethod
    async def delete(self, job_id: str) -> JobRecord | None:
        """Remove the record; it is returned only if it was live, so of two callers only one gets it."""

    @abc.abstractmethod
    async def purge_expired(self) -> list[str]:
        """Remove every expired record; their ids."""

    @abc.abstractmethod
    async def count(self) -> int:
        """Live records (queued, running, and finished but unexpired)."""

    @abc.abstractmethod
    async def next_expiry(self) -> float | None:
        """When the next live record expires (for Retry-After), None when none is finished."""

    async def renew(self, job_ids: list[str]) -> list[str]:
        """Extend the leases of these unfinished jobs; the ids whose record is gone (deleted or
        expired, perhaps by another replica). Only called when ``lease_s`` is set."""
        return []

    async def fail_abandoned(self, error: dict[str, Any], ttl_s: float) -> list[str]:
        """Mark every unfinished job whose lease lapsed ``failed`` with ``error``, expiring after
        ``ttl_s``; their ids. Without leases nothing is ever abandoned."""
        return []

    async def ping(self) -> bool:
        """Whether the store answers now (for /readyz)."""
        return True

    async def close(self) -> None:  # noqa: B027 (optional: only a store with connections has work here)
        """Release connections."""


class InMemoryJobStore(JobStore):
    """Records in this process's memory: one replica only, gone on restart. Single event
    loop and no awaits inside a method, so each method is atomic. Records are immutable:
    callers get snapshots, never the stored object."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[str, JobRecord] = {}

    def _live(self, record: JobRecord | None) -> bool:
        return record is not None and (record.expires_at is None or record.expires_at > self._clock())

    async def create(self, record: JobRecord, *, limit: int) -> None:
        if record.job_id in self._records:
            raise ValueError("a job with this id exists")
        if sum(self._live(r) for r in self._records.values()) >= limit:
            raise JobStoreFull
        self._records[record.job_id] = record

    async def get(self, job_id: str) -> JobRecord | None:
        record = self._records.get(job_id)
        return record if self._live(record) else None

    async def update(self, job_id: str, **changes: Any) -> JobRecord | None:
        record = self._records.get(job_id)
        if record is None or record.expires_at is not None:  # gone, or finished (expired or not)
            return None
        updated = replace(record, **changes)
        self._records[job_id] = updated
        return updated

    async def delete(self, job_id: str) -> JobRecord | None:
        record = self._records.pop(job_id, None)
        return record if self._live(record) else None

    async def purge_expired(self) -> list[str]:
        expired = [job_id for job_id, record in self._records.items() if not self._live(record)]
        for job_id in expired:
            del self._records[job_id]
        return expired

    async def count(self) -> int:
        return sum(self._live(r) for r in self._records.values())

    async def next_expiry(self) -> float | None:
        times = [r.expires_at for r in self._records.values() if r.expires_at is not None and self._live(r)]
        return min(times, default=None)
