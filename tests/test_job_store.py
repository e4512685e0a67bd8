"""The job store's contract, for the in-memory store and the Redis one (a real redis-server;
expiry on an injected clock), and the job manager on top of the in-memory store, with stand-in
work instead of the prediction pipeline. The manager on Redis: tests/test_redis_store.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from app.admission import Admission
from app.errors import JobNotFoundError, OverloadedError, TooManyJobsError, UnsupportedMediaError
from app.job_store import InMemoryJobStore, JobRecord, JobStore, JobStoreFull
from app.jobs import PROGRESS_RUNNING, JobManager, Progress
from app.metrics import Metrics

T = TypeVar("T")


class Clock:
    # starts at the real time: Redis expires a finished record's key itself, on its own clock
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# ------------------------------------------------------------------------------------ the store

StoreFactory = Callable[[Clock], JobStore]


@pytest.fixture(params=["memory", "redis"])
def new_store(request: pytest.FixtureRequest) -> StoreFactory:
    if request.param == "memory":
        return InMemoryJobStore
    from app.redis_store import RedisJobStore, connect

    server = request.getfixturevalue("redis_server")
    return lambda clock: RedisJobStore(connect(server.url), clock=clock)


def test_a_record_is_gone_once_its_expiry_passes_even_before_a_purge(new_store: StoreFactory) -> None:
    clock = Clock()
    store = new_store(clock)

    async def scenario() -> None:
        await store.create(JobRecord("a", created_at=clock.now), limit=4)
        await store.update("a", status="done", finished_at=clock.now, expires_at=clock.now + 10)
        clock.now += 9.9
        assert (await store.get("a")).status == "done"
        assert await store.count() == 1 and await store.next_expiry() == pytest.approx(clock.now + 0.1)
        clock.now += 0.1
        assert await store.get("a") is None
        assert await store.update("a", progress=1.0) is None
        assert await store.count() == 0 and await store.next_expiry() is None
        assert await store.purge_expired() == ["a"]
        assert await store.purge_expired() == []

    run(scenario())


def test_unfinished_records_never_expire(new_store: StoreFactory) -> None:
    clock = Clock()
    store = new_store(clock)

    async def scenario() -> None:
        await store.create(JobRecord("a", created_at=clock.now), limit=1)
        clock.now += 1e9
        assert await store.purge_expired() == []
        assert (await store.get("a")).status == "queued"

    run(scenario())


def test_create_refuses_past_the_limit_and_expired_records_do_not_count(new_store: StoreFactory) -> None:
    clock = Clock()
    store = new_store(clock)

    async def scenario() -> None:
        await store.create(JobRecord("a", created_at=clock.now), limit=2)
        await store.create(JobRecord("b", created_at=clock.now, expires_at=clock.now + 5), limit=2)
        with pytest.raises(JobStoreFull):
            await store.create(JobRecord("c", created_at=clock.now), limit=2)
        clock.now += 5
        await store.create(JobRecord("c", created_at=clock.now), limit=2)
        with pytest.raises(ValueError):
            await store.create(JobRecord("c", created_at=clock.now), limit=9)
        assert await store.count() == 2

    run(scenario())


def test_delete_hands_a_record_to_one_caller_only(new_store: StoreFactory) -> None:
    store = new_store(Clock())

    async def scenario() -> None:
        await store.create(JobRecord("a", created_at=0), limit=1)
        first, second = await store.delete("a"), await store.delete("a")
        assert first is not None and first.job_id == "a" and second is None
        assert await store.get("a") is None and await store.delete("unknown") is None

    run(scenario())


# ---------------------------------------------------------------------------------- the manager


class Answer:
    def model_dump(self, *, mode: str) -> dict[str, Any]:
        return {"total": 7}


def manager(clock: Clock, **options: Any) -> JobManager:
    settings: dict[str, Any] = {"ttl_s": 10.0, "max_jobs": 2, "delete_on_read": False, "job_slots": 1}
    settings.update(options)
    admission = settings.pop("admission", Admission(running=1, waiting=1))
    return JobManager(InMemoryJobStore(clock), Metrics(), admission, clock=clock, **settings)


class Cleanup:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def submit(jobs: JobManager, work: Any, owner: str | None = None) -> tuple[str, Cleanup]:
    job_id = await jobs.reserve(owner)
    cleanup = Cleanup()
    await jobs.launch(job_id, work, cleanup=cleanup, request_id="req-1")
    return job_id, cleanup


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_job_runs_to_done_and_its_result_expires_after_the_ttl() -> None:
    clock = Clock()

    async def scenario() -> None:
        jobs = manager(clock)
        seen: list[float] = []

        async def work(progress: Progress) -> Answer:
            await progress(0.9)
            seen.append((await jobs.read(job_id, "me")).progress)
            return Answer()

        job_id, cleanup = await submit(jobs, work)
        await settle()
        record = await jobs.read(job_id, "me")
        assert record.status == "done" and record.progress == 1.0 and record.result == {"total": 7}
        assert record.expires_at == record.finished_at + 10 and cleanup.calls >= 1
        assert seen == [0.9]
        assert jobs.metrics.jobs.labels(status="done")._value.get() == 1
        clock.now += 10
        with pytest.raises(JobNotFoundError):
            await jobs.read(job_id, "me")
        assert jobs.metrics.jobs.labels(status="done")._value.get() == 0
        assert jobs.metrics.jobs_total.labels(outcome="done")._value.get() == 1

    run(scenario())


def test_a_failed_job_keeps_the_problem_and_delete_on_read_hands_it_out_once() -> None:
    async def scenario() -> None:
        jobs = manager(Clock(), delete_on_read=True)

        async def work(progress: Progress) -> Answer:
            raise UnsupportedMediaError("the audio upload is not media the service reads")

        job_id, cleanup = await submit(jobs, work)
        await settle()
        record = await jobs.read(job_id, "me")
        assert record.status == "failed" and cleanup.calls >= 1
        assert record.error is not None
        assert record.error["status"] == 415 and record.error["type"].endswith("/unsupported-media")
        assert record.error["instance"] == "req-1"
        with pytest.raises(JobNotFoundError):
            await jobs.read(job_id, "me")
        assert await jobs.store.count() == 0

    run(scenario())


def test_past_max_jobs_a_reservation_is_refused_with_retry_after() -> None:
    clock = Clock()

    async def scenario() -> None:
        jobs = manager(clock, max_jobs=1)
        await jobs.reserve(None)
        with pytest.raises(TooManyJobsError) as refused:
            await jobs.reserve(None)
        assert refused.value.status == 503 and 1 <= int(refused.value.headers["Retry-After"]) <= 120

    run(scenario())


def test_a_job_waits_queued_for_an_admission_slot_then_runs() -> None:
    async def scenario() -> None:
        admission = Admission(running=1, waiting=0)
        jobs = manager(Clock(), admission=admission)
        started = asyncio.Event()

        async def work(progress: Progress) -> Answer:
            started.set()
            return Answer()

        with admission.ticket():  # a /predict request holds the only slot
            job_id, _ = await submit(jobs, work)
            await asyncio.sleep(0.3)
            assert (await jobs.read(job_id, "me")).status == "queued" and not started.is_set()
            with pytest.raises(OverloadedError), admission.ticket():  # the queued job holds no slot meanwhile
                pass
        await asyncio.wait_for(started.wait(), 2)
        await settle()
        assert (await jobs.read(job_id, "me")).status == "done"
        assert admission.admitted == 0

    run(scenario())


def test_delete_cancels_a_running_job_removes_its_folder_and_forgets_it() -> None:
    async def scenario() -> None:
        jobs = manager(Clock())
        running = asyncio.Event()

        async def work(progress: Progress) -> Answer:
            running.set()
            await asyncio.sleep(60)
            return Answer()

        job_id, cleanup = await submit(jobs, work)
        await running.wait()
        assert (await jobs.read(job_id, "me")).progress == PROGRESS_RUNNING
        await jobs.cancel(job_id, "me")
        assert cleanup.calls >= 1 and jobs.admission.admitted == 0
        with pytest.raises(JobNotFoundError):
            await jobs.read(job_id, "me")
        with pytest.raises(JobNotFoundError):
            await jobs.cancel(job_id, "me")
        assert jobs.metrics.jobs_total.labels(outcome="cancelled")._value.get() == 1
        assert await jobs.store.count() == 0

    run(scenario())


def test_stop_cancels_every_unfinished_job_and_removes_their_folders() -> None:
    async def scenario() -> None:
        jobs = manager(Clock(), max_jobs=3)
        await jobs.start()

        async def work(progress: Progress) -> Answer:
            await asyncio.sleep(60)
            return Answer()

        submitted = [await submit(jobs, work) for _ in range(2)]  # one running, one queued
        await settle()
        await jobs.stop()
        assert all(cleanup.calls >= 1 for _, cleanup in submitted)
        assert [(await jobs.store.get(job_id)).status for job_id, _ in submitted] == ["cancelled"] * 2
        with pytest.raises(OverloadedError):
            await jobs.reserve(None)

    run(scenario())


def test_with_api_keys_a_job_is_visible_to_its_own_key_only() -> None:
    async def scenario() -> None:
        jobs = manager(Clock())

        async def work(progress: Progress) -> Answer:
            return Answer()

        job_id, _ = await submit(jobs, work, owner="key:mine")
        await settle()
        for action in (jobs.read, jobs.cancel):
            with pytest.raises(JobNotFoundError):
                await action(job_id, "key:theirs")
        assert (await jobs.read(job_id, "key:mine")).status == "done"

    run(scenario())
