"""Admission slots and per-client rate limits, on a clock the test drives."""

from __future__ import annotations

import asyncio

import pytest

from app.admission import MAX_RETRY_AFTER_S, Admission, RateLimiter
from app.errors import OverloadedError, RateLimitedError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_admission_refuses_beyond_running_plus_waiting_and_frees_slots() -> None:
    admission = Admission(running=2, waiting=1)
    with admission.ticket(), admission.ticket(), admission.ticket():
        assert admission.waiting == 1
        with pytest.raises(OverloadedError) as refused, admission.ticket():
            pass
        assert refused.value.status == 503 and int(refused.value.headers["Retry-After"]) >= 1
    assert admission.admitted == 0
    with admission.ticket():  # free again
        pass


def test_a_failing_request_gives_its_slot_back() -> None:
    admission = Admission(running=1, waiting=0)
    with pytest.raises(ValueError), admission.ticket():
        raise ValueError("the request failed")
    with admission.ticket():
        pass


def test_retry_after_follows_recent_request_times() -> None:
    clock = Clock()
    admission = Admission(running=1, waiting=3, clock=clock)
    for _ in range(10):
        with admission.ticket():
            clock.now += 8.0  # each request takes 8 s
    with admission.ticket(), admission.ticket():
        # two ahead on one worker: about two requests' time
        assert 14 <= admission.retry_after_s() <= 18
    for _ in range(30):
        with admission.ticket():
            clock.now += 1000.0
    with admission.ticket():
        assert admission.retry_after_s() == MAX_RETRY_AFTER_S


def test_each_client_has_its_own_bucket_that_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(RateLimitedError) as limited:
        limiter.check("a")
    assert limited.value.status == 429 and limited.value.headers["Retry-After"] == "20"
    limiter.check("b")  # another client is not affected
    clock.now += 20.0  # one token back after 60/3 s
    limiter.check("a")
    with pytest.raises(RateLimitedError):
        limiter.check("a")


def test_a_limiter_set_to_zero_is_off_and_keeps_no_state() -> None:
    limiter = RateLimiter(per_minute=0)
    for _ in range(1000):
        limiter.check("a")
    assert not limiter.enabled and not limiter._buckets


def test_the_limiter_remembers_a_bounded_number_of_clients() -> None:
    limiter = RateLimiter(per_minute=5, max_clients=100)
    for n in range(1000):
        limiter.check(f"client-{n}")
    assert len(limiter._buckets) == 100


def test_a_queued_caller_is_woken_when_a_slot_is_given_back() -> None:
    async def scenario() -> list[str]:
        admission = Admission(running=1, waiting=0)
        events: list[str] = []

        async def queued() -> None:
            await admission.slot_free()
            with admission.ticket():
                events.append("queued caller admitted")

        with admission.ticket():
            waiter = asyncio.create_task(queued())
            await asyncio.sleep(0.05)
            assert not waiter.done()  # still waiting while the slot is taken
            events.append("slot given back")
        await asyncio.wait_for(waiter, 1.0)
        return events

    assert asyncio.run(scenario()) == ["slot given back", "queued caller admitted"]
