"""Backpressure: how many predictions may be in the service at once, and how often one
client may ask.

Both are decided before a byte of the upload is read, so a refused request costs the
server nothing but its headers. Single event loop: plain counters need no locks.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from app.errors import OverloadedError, RateLimitedError

MAX_RETRY_AFTER_S = 120


class Admission:
    """At most ``running + waiting`` predictions at once; the rest get 503 + Retry-After.

    ``running`` is the number of preprocessing workers; ``waiting`` requests may queue for
    one. Retry-After is an estimate: the mean recent prediction time times the queue
    ahead, spread over the workers.
    """

    def __init__(self, running: int, waiting: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.running = running
        self.capacity = running + waiting
        self.admitted = 0
        self._clock = clock
        self._mean_s: float | None = None
        self._freed = asyncio.Event()  # set whenever a ticket is given back

    @property
    def waiting(self) -> int:
        return max(0, self.admitted - self.running)

    def retry_after_s(self) -> int:
        mean = self._mean_s if self._mean_s is not None else 5.0
        ahead = self.admitted - self.running + 1
        return int(min(MAX_RETRY_AFTER_S, max(1, math.ceil(mean * max(ahead, 1) / self.running))))

    @contextmanager
    def ticket(self) -> Iterator[None]:
        if self.admitted >= self.capacity:
            raise OverloadedError(
                f"all {self.capacity} prediction slots are taken; retry later", retry_after_s=self.retry_after_s()
            )
        self.admitted += 1
        started = self._clock()
        try:
            yield
        finally:
            self.admitted -= 1
            self._freed.set()
            elapsed = self._clock() - started
            # exponential moving mean: follows load changes within a few requests
            self._mean_s = elapsed if self._mean_s is None else 0.8 * self._mean_s + 0.2 * elapsed

    async def slot_free(self) -> None:
        """Return once ``ticket()`` would be granted (for callers that queue instead of being
        refused); take the ticket without awaiting in between: one event loop, no race."""
        while self.admitted >= self.capacity:
            self._freed.clear()
            await self._freed.wait()


class ClientRateLimit(Protocol):
    """What the transports ask before admitting a client's request (one replica or shared)."""

    async def acquire(self, client: str) -> None: ...


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute, bursts up to ``per_minute``.

    Clients are opaque keys (a hash of the API key or of the address); they live only in
    this process's memory, and at most ``max_clients`` of them (least recent evicted). Several
    replicas share one limit with ``app.redis_store.RedisRateLimiter`` instead.
    """

    def __init__(self, per_minute: int, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    async def acquire(self, client: str) -> None:
        """``check`` behind the interface the shared limiter (``app.redis_store``) also offers."""
        self.check(client)

    def check(self, client: str) -> None:
        """Take one token for ``client``; RateLimitedError (429) when it has none left."""
        if not self.enabled:
            return
        now, rate = self._clock(), self.per_minute / 60.0
        bucket = self._buckets.pop(client, None) or _Bucket(tokens=float(self.per_minute), updated=now)
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._buckets[client] = bucket
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate)
            raise RateLimitedError(f"more than {self.per_minute} requests a minute from this client", wait)
        bucket.tokens -= 1.0
