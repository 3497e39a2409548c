"""Token-bucket rate limits: the arithmetic (pure), in-process buckets, and Redis buckets.

A bucket holds up to ``capacity`` tokens and refills at ``rate`` tokens a second; a request
takes ``cost`` tokens or is refused. :func:`take` is the whole rule, sans-IO: state and time in,
decision and new state out. The tier catalog gives ``rate`` and ``capacity``
(:attr:`~actors.rules.tiers.TierPolicy.refill_per_second`, ``bucket_capacity``: Free refills
100 a minute and holds 11 seconds' worth, so a fresh client gets 2x the rate for 10 s).

- :class:`LocalLimiter` keeps buckets in a dict: embedded mode, one node. A decision runs
  without a checkpoint, so concurrent requests in the trio process are served exactly in turn.
- :class:`RedisLimiter` runs the same arithmetic in one Lua script (:data:`TAKE_SCRIPT`), atomic
  in Redis: every gateway node of a cluster shares the buckets. Time comes from the calling node
  (its clock is an argument, so tests control it); a node whose clock lags another's never
  refills backwards (``max(updated, now)``). Keys expire once their bucket would be full again,
  since a full bucket and no bucket are the same.

Headers (IETF ``draft-ietf-httpapi-ratelimit-headers``): ``RateLimit-Limit`` (the burst
capacity), ``RateLimit-Remaining`` (whole tokens left), ``RateLimit-Reset`` (seconds until the
bucket is full again), and on 429 ``Retry-After`` (seconds until one request would pass).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs
import structlog
import trio

__all__ = [
    "TAKE_SCRIPT",
    "Bucket",
    "Decision",
    "LocalLimiter",
    "Quota",
    "RateLimiter",
    "RedisLimiter",
    "add_headers",
    "decide",
    "headers_for",
    "take",
]

_log = structlog.get_logger("tektree.gateway.ratelimit")


@attrs.frozen(kw_only=True)
class Quota:
    """A bucket's shape: ``rate`` tokens a second, at most ``capacity`` tokens (both > 0)."""

    rate: float
    capacity: float

    def __attrs_post_init__(self) -> None:
        if not (self.rate > 0 and self.capacity >= 1):
            raise ValueError(f"a quota needs rate > 0 and capacity >= 1, got {self!r}")


@attrs.frozen(kw_only=True)
class Bucket:
    """A bucket's state: ``tokens`` left as of ``updated_at`` (seconds)."""

    tokens: float
    updated_at: float


@attrs.frozen(kw_only=True)
class Decision:
    """The outcome of one :func:`take`, with everything the response headers need."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after_seconds: float
    bucket: Bucket


def decide(tokens: float, allowed: bool, now: float, quota: Quota, cost: float) -> Decision:
    """The decision for a bucket left with ``tokens`` after the take (shared by both stores)."""
    return Decision(
        allowed=allowed,
        limit=int(quota.capacity),
        remaining=max(0, math.floor(tokens + 1e-9)),
        reset_seconds=max(0.0, (quota.capacity - tokens) / quota.rate),
        retry_after_seconds=0.0 if allowed else max(0.0, (cost - tokens) / quota.rate),
        bucket=Bucket(tokens=tokens, updated_at=now),
    )


def take(bucket: Bucket | None, *, now: float, quota: Quota, cost: float = 1.0) -> Decision:
    """Refill ``bucket`` (a missing one is full) to ``now``, then take ``cost`` tokens if there
    are enough. Pure; :data:`TAKE_SCRIPT` is the same rule in Lua."""
    if bucket is None:
        tokens, updated = quota.capacity, now
    else:
        tokens, updated = bucket.tokens, bucket.updated_at
    if now > updated:
        tokens = min(quota.capacity, tokens + (now - updated) * quota.rate)
        updated = now
    allowed = tokens >= cost
    if allowed:
        tokens -= cost
    return decide(tokens, allowed, updated, quota, cost)


def headers_for(decision: Decision) -> dict[str, str]:
    """The ``RateLimit-*`` headers of a decision (plus ``Retry-After`` when refused)."""
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_seconds)),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after_seconds)))
    return headers


def add_headers(headers: Any, decision: Decision) -> None:
    """Add :func:`headers_for`'s ``RateLimit-*`` headers to a response's fresh ``headers``
    (none of them set yet: ``add``, without the look-up and replace of ``update``)."""
    for name, value in headers_for(decision).items():
        headers.add(name, value)


class RateLimiter(Protocol):
    """Where buckets live: ``await limiter.take(key, quota)``."""

    async def take(self, key: str, quota: Quota, cost: float = 1.0) -> Decision: ...


class LocalLimiter:
    """Buckets in this process (embedded mode). At most ``max_buckets`` are kept: the least
    recently used goes first (a client evicted that way gets a fresh, full bucket)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = 100_000) -> None:
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take_nowait(self, key: str, quota: Quota, cost: float = 1.0) -> Decision:
        decision = take(self._buckets.get(key), now=self.clock(), quota=quota, cost=cost)
        self._buckets[key] = decision.bucket
        self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return decision

    async def take(self, key: str, quota: Quota, cost: float = 1.0) -> Decision:
        decision = self.take_nowait(key, quota, cost)
        await trio.lowlevel.checkpoint()
        return decision

    def __len__(self) -> int:
        return len(self._buckets)


#: :func:`take` in Lua. KEYS[1] = the bucket (a hash: t = tokens, u = updated at);
#: ARGV = now (s), rate (tokens/s), capacity, cost. Returns {allowed (0|1), tokens (string)}.
TAKE_SCRIPT: Final = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = capacity
  updated = now
end
if now > updated then
  tokens = math.min(capacity, tokens + (now - updated) * rate)
  updated = now
end
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
local t = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 't', t, 'u', string.format('%.17g', updated))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, t, string.format('%.17g', updated)}
"""


class RedisLimiter:
    """Buckets in Redis, shared by every node: one ``EVALSHA`` of :data:`TAKE_SCRIPT` per
    request (the script is loaded again by coredis after a Redis restart). ``link`` is the
    node's :class:`~tektree.cluster.RedisLink`; its keys are ``<prefix>:ratelimit:<key>``.

    While Redis is unreachable, requests are limited by this node's own buckets (``fallback``)
    rather than waiting for Redis or passing unlimited; the switch is logged once each way.
    """

    def __init__(self, link: Any, *, clock: Callable[[], float] = time.time,
                 fallback: LocalLimiter | None = None) -> None:
        self.link = link
        self.clock = clock
        self.fallback = fallback or LocalLimiter(clock=clock)
        self.degraded = False
        self._script: Any = None
        # Here, not at module level: an embedded node never loads the cluster code (coredis).
        from tektree.cluster import TRANSIENT_ERRORS

        self._transient = TRANSIENT_ERRORS

    async def take(self, key: str, quota: Quota, cost: float = 1.0) -> Decision:
        if self._script is None:
            self._script = self.link.client.register_script(TAKE_SCRIPT)
        script = self._script
        redis_key = self.link.key("ratelimit", key)
        args = (repr(self.clock()), repr(quota.rate), repr(quota.capacity), repr(cost))
        try:
            reply = await self.link.call(
                lambda client: script(keys=[redis_key], args=args, client=client), retry=False)
        except self._transient as exc:
            if not self.degraded:
                self.degraded = True
                _log.warning("rate limits fall back to this node's buckets: Redis unreachable",
                             error=repr(exc))
            return await self.fallback.take(key, quota, cost)
        if self.degraded:
            self.degraded = False
            _log.info("rate limits back in Redis")
        allowed, tokens, updated = int(reply[0]), float(reply[1]), float(reply[2])
        return decide(tokens, bool(allowed), updated, quota, cost)
