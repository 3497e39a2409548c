"""Token buckets: the pure rule, in-process buckets, the Redis script, and the app's limits
(exact under 200 concurrent requests, per tier, a tier change applying at once)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import trio
from gwkit import API, bearer, open_app
from hypothesis import given, settings
from hypothesis import strategies as st
from test_api_auth import problem

from actors.rules.tiers import DEFAULT_TIERS
from gateway.ratelimit import (
    Bucket,
    LocalLimiter,
    Quota,
    RateLimiter,
    RedisLimiter,
    headers_for,
    take,
)
from gateway.tiers import RatePolicy
from tektree.cluster import open_redis_link
from tektree.testing.redis import RedisServer

FREE = RatePolicy(catalog=DEFAULT_TIERS, anonymous_requests_per_minute=100).for_tier("free")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_tiers_become_buckets() -> None:
    policy = RatePolicy(catalog=DEFAULT_TIERS, anonymous_requests_per_minute=None)
    assert FREE is not None and FREE.rate == pytest.approx(100 / 60)
    assert FREE.capacity == pytest.approx(100 / 60 * 11)  # 1 s + 2x for 10 s
    pro, team = policy.for_tier("pro"), policy.for_tier("team")
    assert pro is not None and pro.rate == pytest.approx(1000 / 60)
    assert team is not None and team.capacity == pytest.approx(5000 / 60 * 11)
    assert policy.for_tier("enterprise") is None and policy.anonymous() is None
    assert policy.for_tier("mystery") == FREE  # an unknown tier gets the default's limits


def test_a_fresh_bucket_lets_a_burst_through_then_refuses() -> None:
    assert FREE is not None
    bucket: Bucket | None = None
    allowed = 0
    for _ in range(30):
        decision = take(bucket, now=0.0, quota=FREE)
        bucket = decision.bucket
        allowed += decision.allowed
    assert allowed == math.floor(FREE.capacity) == 18
    refused = take(bucket, now=0.0, quota=FREE)
    assert not refused.allowed and refused.remaining == 0
    # 1/3 of a token left: 2/3 more at 5/3 tokens a second = 0.4 s
    assert refused.retry_after_seconds == pytest.approx((1 - (FREE.capacity - 18)) / FREE.rate)
    assert headers_for(refused) == {"RateLimit-Limit": "18", "RateLimit-Remaining": "0",
                                    "RateLimit-Reset": "11", "Retry-After": "1"}
    later = take(refused.bucket, now=0.4 + 1e-9, quota=FREE)
    assert later.allowed


def test_sustained_rate_after_the_burst() -> None:
    """2x the rate for 10 s, then the sustained rate: the seed's burst allowance."""
    assert FREE is not None
    bucket, allowed, t = None, 0, 0.0
    step = 1 / (2 * FREE.rate)  # requests at twice the sustained rate
    while t < 10.0:
        decision = take(bucket, now=t, quota=FREE)
        bucket, allowed = decision.bucket, allowed + decision.allowed
        t += step
    assert allowed == pytest.approx(2 * FREE.rate * 10, abs=2)  # ~33 in the 10 s burst
    passed = 0
    for _ in range(120):  # one more minute at 2x: only the sustained rate passes
        decision = take(bucket, now=t, quota=FREE)
        bucket, passed = decision.bucket, passed + decision.allowed
        t += step
    assert passed == pytest.approx(FREE.rate * 120 * step, abs=2)


def test_time_going_backwards_never_refills() -> None:
    quota = Quota(rate=1.0, capacity=2.0)
    first = take(None, now=100.0, quota=quota)
    second = take(first.bucket, now=100.0, quota=quota)
    earlier = take(second.bucket, now=50.0, quota=quota)  # another node's clock lags
    assert not earlier.allowed and earlier.bucket.updated_at == 100.0
    assert earlier.bucket.tokens == 0.0


def test_quota_is_validated() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        Quota(rate=0.0, capacity=10.0)


@settings(max_examples=200, deadline=None)
@given(rate=st.floats(0.01, 100), capacity=st.floats(1, 500),
       gaps=st.lists(st.floats(0, 5), min_size=1, max_size=60))
def test_never_more_than_capacity_plus_refill(rate: float, capacity: float,
                                              gaps: list[float]) -> None:
    quota = Quota(rate=rate, capacity=capacity)
    bucket, now, allowed = None, 0.0, 0
    for gap in gaps:
        now += gap
        decision = take(bucket, now=now, quota=quota)
        bucket, allowed = decision.bucket, allowed + decision.allowed
        assert -1e-9 <= decision.bucket.tokens <= capacity + 1e-9
        assert decision.remaining <= decision.limit
    assert allowed <= capacity + rate * now + 1e-6


async def concurrent_takes(limiter: RateLimiter, quota: Quota, takers: int = 200
                           ) -> tuple[int, int]:
    """(allowed, refused) of ``takers`` concurrent takes from one bucket."""
    results: list[bool] = []

    async def one() -> None:
        results.append((await limiter.take("user:u1:read", quota)).allowed)

    async with trio.open_nursery() as nursery:
        for _ in range(takers):
            nursery.start_soon(one)
    return results.count(True), results.count(False)


async def test_local_limiter_is_exact_under_200_concurrent_takers() -> None:
    limiter = LocalLimiter(clock=Clock())
    quota = Quota(rate=0.001, capacity=50.0)
    assert await concurrent_takes(limiter, quota) == (50, 150)
    other = await limiter.take("user:u2:read", quota)
    assert other.allowed  # buckets are per key


def test_local_limiter_keeps_a_bounded_number_of_buckets() -> None:
    limiter = LocalLimiter(clock=Clock(), max_buckets=3)
    quota = Quota(rate=1.0, capacity=1.0)
    for key in "abcd":
        limiter.take_nowait(key, quota)
    assert len(limiter) == 3
    assert limiter.take_nowait("a", quota).allowed  # evicted first: a fresh bucket


async def test_redis_script_agrees_with_the_pure_rule(redis_server: RedisServer) -> None:
    clock = Clock(5000.0)
    quota = Quota(rate=100 / 60, capacity=100 / 60 * 11)
    async with open_redis_link(redis_server.url) as link:
        limiter = RedisLimiter(link, clock=clock)
        bucket: Bucket | None = None
        for gap in [0, 0, 0.1, 0, 0.7, 0, 0, 3.0, 0, 0, 0, 0.05] * 4:
            clock.now += gap
            expected = take(bucket, now=clock.now, quota=quota)
            got = await limiter.take("user:u1:free:read", quota)
            assert (got.allowed, got.remaining) == (expected.allowed, expected.remaining)
            assert got.bucket.tokens == pytest.approx(expected.bucket.tokens, abs=1e-9)
            bucket = expected.bucket
        ttl = await link.client.pttl(link.key("ratelimit", "user:u1:free:read"))
        assert 0 < ttl <= math.ceil(quota.capacity / quota.rate * 1000) + 1000


async def test_redis_limiter_is_exact_under_200_concurrent_takers(
        redis_server: RedisServer) -> None:
    async with open_redis_link(redis_server.url) as link:
        limiter = RedisLimiter(link, clock=Clock())
        assert await concurrent_takes(limiter, Quota(rate=0.001, capacity=50.0)) == (50, 150)


async def test_redis_down_falls_back_to_local_buckets(redis_server: RedisServer) -> None:
    async with open_redis_link(redis_server.url) as link:
        limiter = RedisLimiter(link, clock=Clock())
        quota = Quota(rate=0.001, capacity=2.0)
        assert (await limiter.take("k", quota)).allowed
        await redis_server.stop()
        with trio.fail_after(10):
            decisions = [await limiter.take("k", quota) for _ in range(3)]
        assert limiter.degraded
        assert [d.allowed for d in decisions] == [True, True, False]


# -- through the app ---------------------------------------------------------------------------
async def test_200_concurrent_requests_exactly_the_tiers_burst(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        h.gateway.limiter.clock = Clock()  # type: ignore[attr-defined]
        statuses: list[int] = []
        refused: list[Any] = []

        async def one() -> None:
            response = await h.client.get(f"{API}/users/me", headers=bearer(tokens))
            statuses.append(response.status_code)
            if response.status_code == 429:
                refused.append(response)

        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)
        assert (statuses.count(200), statuses.count(429)) == (18, 182)
        body = await problem(refused[0], 429, "rate-limited")
        assert body["route_class"] == "read"
        assert refused[0].headers["Retry-After"] == "1"
        assert refused[0].headers["RateLimit-Remaining"] == "0"
        # writes have their own bucket: a flood of reads does not block them
        write = await h.client.patch(f"{API}/users/me", headers=bearer(tokens),
                                     json={"bio": "still here"})
        assert write.status_code == 200


async def test_a_tier_change_applies_to_the_next_request(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, tokens = await h.register("ann")
        h.gateway.limiter.clock = Clock()  # type: ignore[attr-defined]
        for _ in range(18):
            assert (await h.client.get(f"{API}/achievements", headers=bearer(tokens))
                    ).status_code == 200
        limited = await h.client.get(f"{API}/achievements", headers=bearer(tokens))
        assert limited.status_code == 429
        await h.gateway.accounts.set_tier(ann["uid"], "pro")
        upgraded = await h.client.get(f"{API}/achievements", headers=bearer(tokens))
        assert upgraded.status_code == 200
        assert upgraded.headers["RateLimit-Limit"] == str(math.floor(1000 / 60 * 11))
        await h.gateway.accounts.set_tier(ann["uid"], "enterprise")
        unlimited = await h.client.get(f"{API}/achievements", headers=bearer(tokens))
        assert unlimited.status_code == 200 and "RateLimit-Limit" not in unlimited.headers


async def test_anonymous_clients_are_limited_by_ip(tmp_path: Path) -> None:
    async with open_app(tmp_path, options={"anonymous_requests_per_minute": 60,
                                           "trusted_proxy_hops": 1}) as h:
        h.gateway.limiter.clock = Clock()  # type: ignore[attr-defined]
        first = [await h.client.get(f"{API}/achievements",
                                    headers={"X-Forwarded-For": "203.0.113.7"})
                 for _ in range(12)]
        assert [r.status_code for r in first].count(200) == 11  # 1 a second, 11 s of burst
        other = await h.client.get(f"{API}/achievements",
                                   headers={"X-Forwarded-For": "203.0.113.8"})
        assert other.status_code == 200


async def test_rate_limits_can_be_turned_off(tmp_path: Path) -> None:
    async with open_app(tmp_path, options={"rate_limits": False}) as h:
        h.gateway.limiter.clock = Clock()  # type: ignore[attr-defined]
        for _ in range(30):
            response = await h.client.get(f"{API}/achievements")
            assert response.status_code == 200 and "RateLimit-Limit" not in response.headers
