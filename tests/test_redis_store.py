"""Jobs and rate limits shared in a real redis-server (tests/redis_server.py) by two "replicas":
two clients, stores and job managers in one process. Leases are shortened to tenths of a
second so that an abandoned job shows at once. Real server processes: tests/api/test_shared_jobs.py."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from app.admission import Admission
from app.errors import JobNotFoundError, JobStoreUnavailableError, RateLimitedError
from app.job_store import JobRecord, JobStoreFull, JobStoreUnavailable
from app.jobs import JobManager, Progress
from app.metrics import Metrics
from app.redis_store import RedisJobStore, RedisRateLimiter, connect
from tests.redis_server import RedisServer, needs_redis, running_redis

pytestmark = needs_redis
T = TypeVar("T")
LEASE_S = 0.3


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def store(server: RedisServer, **options: Any) -> RedisJobStore:
    return RedisJobStore(connect(server.url, timeout_s=0.5), **options)


async def until(condition, within_s: float = 5.0) -> None:
    """Poll an async ``condition`` until it holds (or fail after ``within_s``)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------ the store


def test_two_replicas_see_the_same_records_and_share_one_limit(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        a, b = store(redis_server), store(redis_server)
        outcomes = await asyncio.gather(
            *((a if n % 2 else b).create(JobRecord(f"job-{n}", created_at=0.0), limit=5) for n in range(20)),
            return_exceptions=True,
        )
        assert sum(o is None for o in outcomes) == 5
        assert all(isinstance(o, JobStoreFull) for o in outcomes if o is not None)
        created = [f"job-{n}" for n, o in enumerate(outcomes) if o is None]
        on_b = await b.update(created[0], status="running", progress=0.2)
        on_a = await a.get(created[0])
        assert on_a == on_b and on_a.status == "running" and on_a.progress == 0.2
        assert await a.count() == await b.count() == 5
        await a.close()
        await b.close()

    run(scenario())


def test_a_finished_record_is_final_and_expires_in_redis_too(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        jobs = store(redis_server)
        await jobs.create(JobRecord("a", created_at=0.0), limit=1)
        assert redis_server.client().exists("phq:lease:a") == 1
        done = await jobs.update("a", status="done", finished_at=1.0, expires_at=10**10, result={"items": []})
        assert done.result == {"items": []}  # an empty list stays a list
        assert await jobs.update("a", status="running") is None
        assert (await jobs.get("a")).status == "done"
        client = redis_server.client()
        assert client.exists("phq:lease:a") == 0, "a finished job holds no lease"
        assert client.pttl("phq:job:a") > 0, "Redis expires the finished record's key itself"
        await jobs.close()

    run(scenario())


def test_a_job_whose_lease_lapses_is_failed_once_and_renewal_keeps_one_alive(redis_server: RedisServer) -> None:
    problem = {"type": "x/job-abandoned", "status": 503}

    async def scenario() -> None:
        jobs = store(redis_server, lease_s=LEASE_S)
        for job_id in ("renewed", "lapsed", "finished"):
            await jobs.create(JobRecord(job_id, created_at=0.0), limit=9)
        await jobs.update("finished", status="done", finished_at=1.0, expires_at=10**10)
        for _ in range(6):  # twice the lease, renewed every sixth of it
            await asyncio.sleep(LEASE_S / 3)
            assert await jobs.renew(["renewed", "finished"]) == []
        assert await jobs.fail_abandoned(problem, ttl_s=60) == ["lapsed"]
        assert await jobs.fail_abandoned(problem, ttl_s=60) == []
        lapsed = await jobs.get("lapsed")
        assert lapsed.status == "failed" and lapsed.error == problem
        assert lapsed.expires_at == pytest.approx(lapsed.finished_at + 60)
        assert (await jobs.get("renewed")).status == "queued"
        assert (await jobs.get("finished")).status == "done"
        await jobs.delete("renewed")
        assert await jobs.renew(["renewed", "finished"]) == ["renewed"]
        await jobs.close()

    run(scenario())


def test_redis_down_is_job_store_unavailable_not_a_hang() -> None:
    with running_redis() as server:
        jobs = store(server)
        server.stop()

        async def scenario() -> None:
            for call in (jobs.get("a"), jobs.create(JobRecord("a", created_at=0.0), limit=1), jobs.count()):
                with pytest.raises(JobStoreUnavailable):
                    await asyncio.wait_for(call, timeout=5)
            assert await jobs.ping() is False

        run(scenario())


# ------------------------------------------------------------------------------ two job managers


class Answer:
    def model_dump(self, *, mode: str) -> dict[str, Any]:
        return {"total": 7}


def replica(server: RedisServer, **options: Any) -> JobManager:
    settings: dict[str, Any] = {"ttl_s": 60.0, "max_jobs": 4, "delete_on_read": False, "job_slots": 1}
    settings.update(options)
    return JobManager(store(server, lease_s=LEASE_S), Metrics(), Admission(running=1, waiting=1), **settings)


class Blocked:
    """Stand-in work that runs until released; records whether it was cancelled."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = False

    async def __call__(self, progress: Progress) -> Answer:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return Answer()


async def submit(jobs: JobManager, work: Any) -> tuple[str, list[int]]:
    job_id = await jobs.reserve(None)
    cleanups: list[int] = []
    await jobs.launch(job_id, work, cleanup=lambda: cleanups.append(1), request_id="req-1")
    return job_id, cleanups


def test_submitted_on_one_replica_read_on_the_other(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        a, b = replica(redis_server), replica(redis_server)
        await a.start()
        await b.start()
        work = Blocked()
        job_id, _ = await submit(a, work)
        await work.started.wait()
        assert (await b.read(job_id, "me")).status == "running"
        work.release.set()

        async def done() -> bool:
            return (await b.read(job_id, "me")).status == "done"

        await until(done)
        assert (await b.read(job_id, "me")).result == {"total": 7}
        await a.stop()
        await b.stop()

    run(scenario())


def test_delete_on_another_replica_cancels_the_running_job_within_a_renewal(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        a, b = replica(redis_server), replica(redis_server)
        await a.start()
        work = Blocked()
        job_id, cleanups = await submit(a, work)
        await work.started.wait()
        await b.cancel(job_id, "me")

        async def cancelled() -> bool:
            return work.cancelled and bool(cleanups)

        await until(cancelled, within_s=LEASE_S * 2)
        with pytest.raises(JobNotFoundError):
            await a.read(job_id, "me")
        await a.stop()

    run(scenario())


def test_a_job_whose_replica_stops_renewing_reads_failed_within_the_lease(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        a, b = replica(redis_server), replica(redis_server)
        await a.start()
        work = Blocked()
        job_id, _ = await submit(a, work)
        await work.started.wait()
        a._renewer.cancel()  # the replica "dies": its event loop no longer renews, the job never ends
        await asyncio.sleep(LEASE_S * 1.5)
        record = await b.read(job_id, "me")
        assert record.status == "failed"
        assert record.error["type"].endswith("/job-abandoned") and record.error["status"] == 503
        assert b.metrics.jobs_total.labels(outcome="failed")._value.get() == 1
        work.release.set()  # a replica that was only slow cannot turn it back
        await asyncio.sleep(0.1)
        assert (await b.read(job_id, "me")).status == "failed"
        await a.stop()

    run(scenario())


def test_redis_down_answers_503_with_retry_after_and_a_running_job_goes_on() -> None:
    with running_redis() as server:

        async def scenario() -> None:
            a = replica(server)
            await a.start()
            work = Blocked()
            job_id, cleanups = await submit(a, work)
            await work.started.wait()
            server.stop()
            for call in (a.reserve(None), a.read(job_id, "me")):
                with pytest.raises(JobStoreUnavailableError) as refused:
                    await call
                assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "5"
            work.release.set()
            await asyncio.sleep(LEASE_S)  # renewals fail meanwhile: logged, counted, not fatal
            assert cleanups, "the job ran to its end and removed its upload"
            assert a.metrics.shared_store_errors_total.labels(part="jobs")._value.get() >= 2
            await a.stop()

        run(scenario())


# ------------------------------------------------------------------------------ rate limits


def test_the_rate_limit_is_shared_by_replicas(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        a = RedisRateLimiter(connect(redis_server.url), per_minute=3)
        b = RedisRateLimiter(connect(redis_server.url), per_minute=3)
        await a.acquire("key:one")
        await b.acquire("key:one")
        await a.acquire("key:one")
        for limiter in (a, b):
            with pytest.raises(RateLimitedError) as limited:
                await limiter.acquire("key:one")
            assert limited.value.status == 429 and 19 <= int(limited.value.headers["Retry-After"]) <= 20
        await b.acquire("key:two")  # another client has its own bucket
        assert redis_server.client().pttl("phq:rate:key:one") > 0, "an idle client's bucket goes away"

    run(scenario())


def test_with_redis_down_each_replica_limits_on_its_own() -> None:
    with running_redis() as server:
        lapses: list[int] = []
        limiter = RedisRateLimiter(
            connect(server.url, timeout_s=0.5), per_minute=2, on_unavailable=lambda: lapses.append(1)
        )
        server.stop()

        async def scenario() -> None:
            await limiter.acquire("key:one")
            await limiter.acquire("key:one")
            with pytest.raises(RateLimitedError):
                await limiter.acquire("key:one")

        run(scenario())
        assert len(lapses) == 3
