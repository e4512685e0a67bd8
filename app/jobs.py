"""Async jobs: a prediction accepted now (202) and answered later (GET /jobs/{id}).

The route receives and validates the upload during its POST (``app.pipeline.service``), then
hands the work here. Each job is an asyncio task in this process: it waits its turn for a
prediction admission slot, runs the same pipeline as /predict (worker pool with its time
limit, batcher), and leaves its answer or its problem in the ``JobStore`` for ``job_ttl_s``.
The task owns the job's upload folder and removes it when processing ends, whichever way it
ends (done, failed, cancelled by DELETE, shutdown).

With a shared store (Redis, several replicas) any replica answers GET and DELETE, but a job
runs on the replica that received its upload: the media never leaves it. That replica renews
the job's lease while it holds the job; a job whose lease lapsed (its replica died) is marked
failed (``job-abandoned``) by the first replica that reads it or sweeps, within one lease.
A job deleted on another replica is cancelled here at the next renewal. When the store does
not answer, creating and reading jobs answer 503 ``job-store-unavailable``; a running job
goes on, and its record catches up (or lapses) when the store is back.

Why jobs wait for an admission slot instead of failing: a job was accepted with its upload
already on disk, so refusing it later would waste the upload and make the client start over;
``max_jobs`` already bounds how many can wait. Jobs take slots one at a time in arrival
order, and at most ``job_slots`` (the worker count) at once, so the slots for waiting
requests stay free for /predict: a burst of jobs queues up behind the workers instead of
turning every interactive request away with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Protocol

from app.admission import MAX_RETRY_AFTER_S, Admission
from app.errors import (
    InternalError,
    JobAbandonedError,
    JobNotFoundError,
    JobStoreUnavailableError,
    OverloadedError,
    ServiceError,
    TooManyJobsError,
)
from app.job_store import JobRecord, JobStatus, JobStore, JobStoreFull, JobStoreUnavailable
from app.metrics import JOB_STATUSES, Metrics

log = logging.getLogger("app.jobs")

# coarse progress: received and queued, holding a slot, features extracted, answered
PROGRESS_RECEIVED = 0.1
PROGRESS_RUNNING = 0.2
PROGRESS_FEATURES = 0.9

Progress = Callable[[float], Awaitable[None]]


class Answer(Protocol):
    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


# the job's processing, given a way to report progress; returns the answer or raises ServiceError
JobWork = Callable[[Progress], Awaitable[Answer]]


class JobManager:
    """The jobs of this process: reserve, launch, read, cancel; expiry and shutdown."""

    def __init__(
        self,
        store: JobStore,
        metrics: Metrics,
        admission: Admission,
        *,
        ttl_s: float,
        max_jobs: int,
        delete_on_read: bool,
        job_slots: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.admission = admission
        self.ttl_s = ttl_s
        self.max_jobs = max_jobs
        self.delete_on_read = delete_on_read
        self._clock = clock
        self._slots = asyncio.Semaphore(job_slots)  # first come, first served
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._statuses: dict[str, JobStatus] = {}  # this process's live jobs, for the gauge
        self._sweeper: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def sweep_interval_s(self) -> float:
        # expired records are already invisible; the sweep only frees their memory
        return min(max(self.ttl_s / 4, 0.5), 30.0)

    @property
    def renew_interval_s(self) -> float | None:
        # three renewals a lease: one lost call or a slow event loop does not lapse it
        return None if self.store.lease_s is None else self.store.lease_s / 3

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep(), name="job-sweeper")
        if self.renew_interval_s is not None:
            self._renewer = loop.create_task(self._renew(self.renew_interval_s), name="job-lease-renewer")

    async def stop(self) -> None:
        """Refuse new jobs, cancel queued and running ones (their workers are killed and replaced,
        their folders removed) and wait until each has ended."""
        self._closing = True
        for background in (self._sweeper, self._renewer):
            if background is not None:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if tasks:
            log.info("cancelled %d unfinished jobs at shutdown", len(tasks))

    # -- the POST: reserve before reading the upload, launch once it is in and valid ------

    async def reserve(self, owner: str | None) -> str:
        """A new job's id, counted against ``max_jobs`` before a byte of its upload is read:
        TooManyJobsError (503 + Retry-After) when full. The id is not given out until launch."""
        if self._closing:
            raise OverloadedError("the service is stopping")
        record = JobRecord(job_id=secrets.token_urlsafe(16), created_at=self._clock(), owner=owner)
        try:
            with self._answered():
                await self._purge()
                await self.store.create(record, limit=self.max_jobs)
        except JobStoreFull:
            self.metrics.rejected_total.labels(reason="jobs_full").inc()
            raise TooManyJobsError(
                f"{self.max_jobs} jobs are queued, running or finished and not yet expired; retry later",
                retry_after_s=await self._retry_after_s(),
            ) from None
        self._track(record.job_id, "queued")
        return record.job_id

    async def discard(self, job_id: str) -> None:
        """Drop a reserved job whose upload was refused or never completed. Never raises: the
        upload's own error is the answer; a record the store could not delete is unknown to
        everyone and lapses (abandoned) once this process stops renewing it."""
        self._untrack(job_id)
        try:
            await self.store.delete(job_id)
        except JobStoreUnavailable:
            log.warning("a discarded job's record could not be deleted: the job store does not answer")

    async def launch(self, job_id: str, work: JobWork, *, cleanup: Callable[[], None], request_id: str) -> JobRecord:
        """Queue ``work`` for a reserved job. From here on the job owns ``cleanup`` (removing its
        upload folder; must be idempotent) and calls it when processing ends, however it ends.
        ``request_id`` becomes the ``instance`` of a failed job's problem."""
        try:
            with self._answered():
                record = None if self._closing else await self.store.update(job_id, progress=PROGRESS_RECEIVED)
        except ServiceError:
            cleanup()
            await self.discard(job_id)
            raise
        if record is None:  # shutdown began while the upload came in, or the job was deleted meanwhile
            cleanup()
            await self.discard(job_id)
            raise OverloadedError("the service is stopping" if self._closing else "the job was deleted")
        task = asyncio.get_running_loop().create_task(self._run(job_id, work, cleanup, request_id), name="job")
        self._tasks[job_id] = task
        # a task cancelled before its first step never enters _run's finally: remove the folder here too
        task.add_done_callback(lambda _: cleanup())
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))
        return record

    # -- GET and DELETE ---------------------------------------------------------------------

    async def read(self, job_id: str, caller: str) -> JobRecord:
        """The job as it is now; JobNotFoundError for an unknown, expired or someone else's job.
        With ``delete_on_read`` a finished job is handed out once, then gone."""
        record = await self._visible(job_id, caller)
        if self.delete_on_read and record.finished:
            with self._answered():
                taken = await self.store.delete(job_id)
            if taken is None:  # a concurrent read took it first
                raise _not_found()
            self._untrack(job_id)
            return taken
        return record

    async def cancel(self, job_id: str, caller: str) -> None:
        """Delete the job; a queued or running one is cancelled first (its worker killed and
        replaced) and its folder is gone when this returns."""
        await self._visible(job_id, caller)
        with self._answered():
            await self.store.delete(job_id)
        self._untrack(job_id)
        task = self._tasks.get(job_id)  # on another replica its renewal finds the record gone
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _visible(self, job_id: str, caller: str) -> JobRecord:
        with self._answered():
            await self._purge()
            record = await self.store.get(job_id)
            # another replica's job: if that replica is gone, say so now rather than at the next sweep
            elsewhere = record is not None and not record.finished and job_id not in self._statuses
            if elsewhere and job_id in await self._fail_abandoned():
                record = await self.store.get(job_id)
        # another key's job reads as unknown: its id may have leaked, its result must not
        if record is None or (record.owner is not None and record.owner != caller):
            raise _not_found()
        return record

    # -- the job's task ---------------------------------------------------------------------

    async def _run(self, job_id: str, work: JobWork, cleanup: Callable[[], None], request_id: str) -> None:
        try:
            try:
                async with self._prediction_slot():
                    await self._set(job_id, status="running", progress=PROGRESS_RUNNING)
                    answer = await work(partial(self._progress, job_id))
            finally:
                cleanup()  # before the job reads as finished: a finished job holds no upload
        except asyncio.CancelledError:
            await self._finish(job_id, "cancelled")  # a no-op after DELETE: the record is gone
            raise
        except ServiceError as error:
            await self._finish(job_id, "failed", error=error.problem_body(request_id))
        except Exception as error:
            # logged by type and frames only (app.main.JsonLogFormatter): messages may hold content
            log.error("a job failed with an unexpected %s", type(error).__name__, exc_info=error)
            await self._finish(job_id, "failed", error=InternalError().problem_body(request_id))
        else:
            await self._finish(job_id, "done", progress=1.0, result=answer.model_dump(mode="json"))

    @asynccontextmanager
    async def _prediction_slot(self) -> AsyncIterator[None]:
        """Wait (queued) until this job may hold an admission ticket, then hold it (running)."""
        async with self._slots:
            await self.admission.slot_free()
            with self.admission.ticket():
                yield

    async def _progress(self, job_id: str, value: float) -> None:
        try:
            await self.store.update(job_id, progress=value)
        except JobStoreUnavailable:
            log.warning("a job's progress was not recorded: the job store does not answer")
            self.metrics.shared_store_errors_total.labels(part="jobs").inc()

    async def _set(self, job_id: str, status: JobStatus, **changes: Any) -> None:
        try:
            updated = await self.store.update(job_id, status=status, **changes)
        except JobStoreUnavailable:
            # the job goes on; unrecorded, its record lapses (abandoned) once it stops being renewed
            log.warning("a job's status %s was not recorded: the job store does not answer", status)
            self.metrics.shared_store_errors_total.labels(part="jobs").inc()
            return
        if updated is not None:
            self._track(job_id, status)

    async def _finish(self, job_id: str, status: JobStatus, **changes: Any) -> None:
        now = self._clock()
        self.metrics.jobs_total.labels(outcome=status).inc()
        await self._set(job_id, status, finished_at=now, expires_at=now + self.ttl_s, **changes)

    # -- expiry and bookkeeping -------------------------------------------------------------

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self._fail_abandoned()
                await self._purge()
            except Exception as error:  # a store hiccup must not end the sweeping
                log.error("purging expired jobs failed with %s", type(error).__name__)

    async def _renew(self, interval_s: float) -> None:
        """Keep the leases of this process's jobs; cancel those deleted elsewhere (DELETE on
        another replica) and forget those expired or read elsewhere."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                gone = await self.store.renew(list(self._statuses))
            except Exception as error:  # Redis down: the leases may lapse; the jobs go on
                self.metrics.shared_store_errors_total.labels(part="jobs").inc()
                log.warning("renewing job leases failed with %s", type(error).__name__)
                continue
            for job_id in gone:
                self._untrack(job_id)
                task = self._tasks.get(job_id)
                if task is not None and not task.done():
                    task.cancel()

    async def _fail_abandoned(self) -> list[str]:
        if not self.store.lease_s:
            return []
        failed = await self.store.fail_abandoned(_ABANDONED, self.ttl_s)
        for _ in failed:
            self.metrics.jobs_total.labels(outcome="failed").inc()
        if failed:
            log.warning("%d jobs were abandoned by a replica that stopped and are marked failed", len(failed))
        return failed

    async def _purge(self) -> None:
        for job_id in await self.store.purge_expired():
            self._untrack(job_id)

    @contextlib.contextmanager
    def _answered(self) -> Iterator[None]:
        """A store that does not answer becomes 503 job-store-unavailable for the caller."""
        try:
            yield
        except JobStoreUnavailable:
            self.metrics.shared_store_errors_total.labels(part="jobs").inc()
            raise JobStoreUnavailableError(
                "the job store does not answer; retry later (/predict answers without it)", retry_after_s=5
            ) from None

    async def _retry_after_s(self) -> int:
        next_expiry = await self.store.next_expiry()
        if next_expiry is not None:
            wait = next_expiry - self._clock()
        else:  # every job is queued or running: one must finish, then expire or be read
            wait = self.admission.retry_after_s() + (0 if self.delete_on_read else self.ttl_s)
        return int(min(MAX_RETRY_AFTER_S, max(1, math.ceil(wait))))

    def _track(self, job_id: str, status: JobStatus) -> None:
        self._statuses[job_id] = status
        self._publish()

    def _untrack(self, job_id: str) -> None:
        if self._statuses.pop(job_id, None) is not None:
            self._publish()

    def _publish(self) -> None:
        counts = Counter(self._statuses.values())
        for status in JOB_STATUSES:
            self.metrics.jobs.labels(status=status).set(counts[status])


# what an abandoned job's record says (no request id: the request that made it is long over)
_ABANDONED = JobAbandonedError(
    "the server process that held this job's upload stopped (or lost the job store) before the job finished; "
    "submit it again"
).problem_body(None)


def _not_found() -> JobNotFoundError:
    return JobNotFoundError("no such job: unknown, expired, deleted or already read")
