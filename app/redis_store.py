"""State shared by replicas in Redis (``PHQ_REDIS_URL``): the job store and the rate limits.

What lives in Redis is only what ``JobRecord`` holds (status, progress, times, the answer or
the problem as JSON, the owner's key digest) and the rate buckets of opaque client digests.
Media, transcripts and features never leave the replica that received them (docs/jobs.md).

Layout, under a prefix (``phq:`` by default):

- ``job:{id}``   a hash, one JSON value per ``JobRecord`` field; Redis expires it itself
  shortly after the record's ``expires_at``
- ``jobs``       a sorted set of the live job ids scored by ``expires_at`` (``+inf`` while
  unfinished): the limit check, ``count`` and ``next_expiry`` read it
- ``lease:{id}`` present while the replica running the job renews it (``PX`` ``lease_s``)
- ``rate:{client}`` a token bucket (tokens, updated), gone after a minute idle

Every step that reads and then writes runs as one Lua script, so replicas never interleave
inside it. Times in records are the replicas' wall clocks (they are shown to clients); the
rate buckets use Redis's own clock, one clock for all replicas.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.admission import RateLimiter
from app.errors import RateLimitedError
from app.job_store import JobRecord, JobStore, JobStoreFull, JobStoreUnavailable

log = logging.getLogger("app.redis")

T = TypeVar("T")
_FIELDS = tuple(f.name for f in fields(JobRecord))
# Redis keeps a finished record this much past its expires_at (the store hides it already):
# a replica whose clock runs a little behind must not find it half deleted
_KEY_GRACE_MS = 60_000

# KEYS: jobs, job, lease; ARGV: now, limit, lease_ms, id, expires_at (or +inf), field, value, ...
_CREATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 6))
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[4])
if ARGV[5] == '+inf' then
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
else
  redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(ARGV[5]) * 1000) + GRACE_MS)
end
return 1
""".replace("GRACE_MS", str(_KEY_GRACE_MS))

# KEYS: jobs, job, lease; ARGV: id, field, value, ...  -> the record's fields, or false when gone or final
_UPDATE = """
local expires = redis.call('HGET', KEYS[2], 'expires_at')
if expires ~= 'null' then return false end  -- gone, or finished: a finished record is final
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
expires = redis.call('HGET', KEYS[2], 'expires_at')
if expires ~= 'null' then
  redis.call('ZADD', KEYS[1], expires, ARGV[1])
  redis.call('PEXPIREAT', KEYS[2], math.ceil(tonumber(expires) * 1000) + GRACE_MS)
  redis.call('DEL', KEYS[3])
end
return redis.call('HGETALL', KEYS[2])
""".replace("GRACE_MS", str(_KEY_GRACE_MS))

# KEYS: jobs, job, lease; ARGV: id  -> the record's fields (empty when there was none)
_DELETE = """
local record = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
return record
"""

# KEYS: jobs; ARGV: now, prefix  -> the purged ids
_PURGE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(ids) do redis.call('DEL', ARGV[2] .. 'job:' .. id, ARGV[2] .. 'lease:' .. id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return ids
"""

# KEYS: job, lease, job, lease, ...; ARGV: lease_ms  -> the ids' positions (1-based) whose record is gone
_RENEW = """
local gone = {}
for i = 1, #KEYS, 2 do
  local expires = redis.call('HGET', KEYS[i], 'expires_at')
  if not expires then
    table.insert(gone, (i + 1) / 2)
  elseif expires == 'null' then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[1])
  end
end
return gone
"""

# KEYS: jobs; ARGV: now, expires_at, error, prefix  -> the ids marked failed
_FAIL_ABANDONED = """
local failed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '+inf', '+inf')) do
  local key = ARGV[4] .. 'job:' .. id
  if redis.call('EXISTS', ARGV[4] .. 'lease:' .. id) == 0 and redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'status', '"failed"', 'finished_at', ARGV[1], 'expires_at', ARGV[2], 'error', ARGV[3])
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    redis.call('PEXPIREAT', key, math.ceil(tonumber(ARGV[2]) * 1000) + GRACE_MS)
    table.insert(failed, id)
  elseif redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', KEYS[1], id)
  end
end
return failed
""".replace("GRACE_MS", str(_KEY_GRACE_MS))

# KEYS: bucket; ARGV: capacity (per minute)  -> {1 taken | 0 refused, seconds until a token}
_TAKE_TOKEN = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local capacity = tonumber(ARGV[1])
local rate = capacity / 60
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(bucket[1]) or capacity
local updated = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], 61000)
return {taken, tostring(math.max(0, (1 - tokens) / rate))}
"""


def connect(url: str, *, timeout_s: float = 2.0) -> aioredis.Redis:
    """A client for ``url`` (redis://, rediss://, unix://) whose calls fail within ``timeout_s``
    when Redis does not answer, so a request never hangs on a store that is down."""
    return aioredis.Redis.from_url(
        url, decode_responses=True, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
    )


async def _answered(call: Awaitable[T]) -> T:
    try:
        return await call
    except (RedisError, OSError) as error:
        raise JobStoreUnavailable(type(error).__name__) from None


def _pairs(values: dict[str, Any]) -> list[str]:
    """HSET's field, value, ... arguments: each value as JSON."""
    return [item for name, value in values.items() for item in (name, json.dumps(value))]


def _changes(changes: dict[str, Any]) -> list[str]:
    unknown = set(changes) - set(_FIELDS) | ({"job_id", "created_at", "owner"} & set(changes))
    if unknown:
        raise ValueError(f"these record fields cannot change: {', '.join(sorted(unknown))}")
    return _pairs(changes)


def _decode(flat: list[str] | dict[str, str] | None) -> JobRecord | None:
    if not flat:
        return None
    items = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
    values = {name: json.loads(value) for name, value in items if name in _FIELDS}
    return JobRecord(**values)


class RedisJobStore(JobStore):
    """Job records in Redis, shared by every replica that names the same URL and prefix."""

    shared = True

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        lease_s: float = 15.0,
        prefix: str = "phq:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lease_s = lease_s
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._jobs = prefix + "jobs"
        self._create = client.register_script(_CREATE)
        self._update = client.register_script(_UPDATE)
        self._delete = client.register_script(_DELETE)
        self._purge = client.register_script(_PURGE)
        self._renew = client.register_script(_RENEW)
        self._fail_abandoned = client.register_script(_FAIL_ABANDONED)

    def _keys(self, job_id: str) -> list[str]:
        return [self._jobs, f"{self._prefix}job:{job_id}", f"{self._prefix}lease:{job_id}"]

    @property
    def _lease_ms(self) -> int:
        return max(1, math.ceil((self.lease_s or 0) * 1000))

    def _live(self, record: JobRecord | None) -> JobRecord | None:
        if record is None or (record.expires_at is not None and record.expires_at <= self._clock()):
            return None
        return record

    async def create(self, record: JobRecord, *, limit: int) -> None:
        outcome = await _answered(
            self._create(
                keys=self._keys(record.job_id),
                args=[
                    self._clock(),
                    limit,
                    self._lease_ms,
                    record.job_id,
                    "+inf" if record.expires_at is None else json.dumps(record.expires_at),
                    *_pairs(asdict(record)),
                ],
            )
        )
        if outcome == -1:
            raise ValueError("a job with this id exists")
        if outcome == 0:
            raise JobStoreFull

    async def get(self, job_id: str) -> JobRecord | None:
        return self._live(_decode(await _answered(self._client.hgetall(self._keys(job_id)[1]))))

    async def update(self, job_id: str, **changes: Any) -> JobRecord | None:
        flat = await _answered(self._update(keys=self._keys(job_id), args=[job_id, *_changes(changes)]))
        return _decode(flat)

    async def delete(self, job_id: str) -> JobRecord | None:
        return self._live(_decode(await _answered(self._delete(keys=self._keys(job_id), args=[job_id]))))

    async def purge_expired(self) -> list[str]:
        return list(await _answered(self._purge(keys=[self._jobs], args=[self._clock(), self._prefix])))

    async def count(self) -> int:
        return int(await _answered(self._client.zcount(self._jobs, f"({self._clock()!r}", "+inf")))

    async def next_expiry(self) -> float | None:
        # the first finite score after now; "(+inf" leaves the unfinished jobs out
        first = await _answered(
            self._client.zrangebyscore(self._jobs, f"({self._clock()!r}", "(+inf", start=0, num=1, withscores=True)
        )
        return float(first[0][1]) if first else None

    async def renew(self, job_ids: list[str]) -> list[str]:
        if not job_ids:
            return []
        keys = [key for job_id in job_ids for key in self._keys(job_id)[1:]]
        gone = await _answered(self._renew(keys=keys, args=[self._lease_ms]))
        return [job_ids[int(position) - 1] for position in gone]

    async def fail_abandoned(self, error: dict[str, Any], ttl_s: float) -> list[str]:
        now = self._clock()
        return list(
            await _answered(
                self._fail_abandoned(
                    keys=[self._jobs], args=[json.dumps(now), json.dumps(now + ttl_s), json.dumps(error), self._prefix]
                )
            )
        )

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._client.aclose()


class RedisRateLimiter:
    """The token buckets of ``RateLimiter``, in Redis: every replica takes from the same bucket.

    When Redis does not answer, each replica limits on its own (``fallback``) rather than
    refusing or waving everyone through: /predict keeps working at a per-replica limit, and
    the outage is logged once and counted.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        per_minute: int,
        *,
        prefix: str = "phq:",
        on_unavailable: Callable[[], None] = lambda: None,
    ) -> None:
        self.per_minute = per_minute
        self.fallback = RateLimiter(per_minute)
        self._prefix = prefix
        self._take = client.register_script(_TAKE_TOKEN)
        self._on_unavailable = on_unavailable
        self._degraded = False

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    async def acquire(self, client: str) -> None:
        """Take one token for ``client``; RateLimitedError (429) when it has none left."""
        if not self.enabled:
            return
        try:
            taken, wait = await self._take(keys=[f"{self._prefix}rate:{client}"], args=[self.per_minute])
        except (RedisError, OSError) as error:
            self._on_unavailable()
            if not self._degraded:
                log.warning(
                    "Redis unavailable (%s): rate limits are per replica until it answers", type(error).__name__
                )
                self._degraded = True
            self.fallback.check(client)
            return
        if self._degraded:
            log.info("Redis answers again: rate limits are shared")
            self._degraded = False
        if not taken:
            detail = f"more than {self.per_minute} requests a minute from this client"
            raise RateLimitedError(detail, max(1, math.ceil(float(wait))))
