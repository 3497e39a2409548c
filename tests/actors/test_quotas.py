"""Monthly quotas (``actors.quotas``): never exceeded under concurrent posts, in the store
(embedded) and in Redis (cluster mode); given back when the write fails; per kind and tier."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import mongomock
import pytest
import trio
from billing_kit import BODY, CLOCK, START, Shop, open_shop, polar_subscription, race

from actors.content import Content
from actors.knowledge import QUESTIONS
from actors.quotas import (
    QUOTA_COUNTERS,
    QuotaExceeded,
    QuotaUnavailable,
    RedisQuotaCounter,
    StoreQuotaCounter,
    quota_key,
    spending,
)
from actors.rules.tiers import tiers_from_mapping
from tektree.testing.redis import RedisServer, open_redis_server, require_redis_server

SMALL = tiers_from_mapping({
    "free": {"quotas": {"questions": 5, "insights": 1, "resource_uploads": 2}},
    "pro": {"quotas": {"questions": 8}},
})
FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
        "lease_renew_seconds": 0.5, "lease_restart_grace": False}


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    CLOCK.at(START)
    yield


@pytest.fixture(params=["store", "mongomock", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """"" (embedded: the SQLite store counts), "mongomock" (the MongoDB adapter counts) or the
    URL of a private redis-server."""
    if request.param in ("store", "mongomock"):
        yield "" if request.param == "store" else "mongomock"
        return
    require_redis_server()
    async with open_redis_server() as server:
        yield server.url


@asynccontextmanager
async def _shop(tmp_path: Path, backend: str) -> AsyncIterator[Shop]:
    mongo = mongomock.MongoClient() if backend == "mongomock" else None
    url = backend if backend.startswith("redis") else ""
    async with open_shop(tmp_path, redis_url=url, cluster_options=FAST if url else None,
                         mongo_client=mongo) as s:
        s.quotas.catalog = SMALL
        expected = RedisQuotaCounter if url else StoreQuotaCounter
        assert isinstance(s.quotas.counter, expected)
        yield s


async def test_concurrent_posts_never_pass_the_quota(
    tmp_path: Path, backend: str
) -> None:
    async with _shop(tmp_path, backend) as shop:
        ann, bob = await shop.user("ann"), await shop.user("bob")
        await shop.relay_all()

        async def post(i: int) -> None:
            author = ann if i % 2 else bob
            await shop.knowledge.post_question(author, title=f"Concurrent question {i}",
                                               body=BODY, correlation_id=f"req-{i}")

        outcomes = await race(80, post)
        assert outcomes.count("posted") == 10 and outcomes.count("refused") == 70
        for uid in (ann, bob):
            assert await shop.store.count(QUESTIONS, {"created_by": uid}) == 5
            usage = {u.kind: u for u in await shop.quotas.usage(uid)}
            assert (usage["questions"].used, usage["questions"].limit) == (5, 5)
        exceeded = await shop.events("payment.quota.exceeded")
        assert sorted(e["payload"]["user_id"] for e in exceeded) == sorted([ann, bob])
        assert exceeded[0]["payload"]["resets_at"] == "2026-02-01T00:00:00.000000Z"
        # an upgrade raises the limit for the very next post
        await shop.webhook("subscription.active", polar_subscription(ann))
        outcomes = await race(10, lambda i: shop.knowledge.post_question(
            ann, title=f"After the upgrade {i}", body=BODY))
        assert outcomes.count("posted") == 3
        assert await shop.store.count(QUESTIONS, {"created_by": ann}) == 8


async def test_a_failed_write_gives_its_quota_back(
    tmp_path: Path, backend: str
) -> None:
    async with _shop(tmp_path, backend) as shop:
        ann = await shop.user("ann")
        with pytest.raises(RuntimeError):
            async with spending(shop.quotas, ann, "questions"):
                raise RuntimeError("the store refused the write")
        with trio.move_on_after(0):  # cancelled mid-write: given back too
            async with spending(shop.quotas, ann, "questions"):
                await trio.sleep_forever()
        used = await shop.quotas.counter.used(quota_key(ann, "questions", "2026-01"))
        assert used == 0
        outcomes = await race(7, lambda i: shop.knowledge.post_question(
            ann, title=f"Question number {i} ok", body=BODY))
        assert outcomes.count("posted") == 5


async def test_insights_and_resources_have_their_own_quotas(
    tmp_path: Path, backend: str
) -> None:
    async with _shop(tmp_path, backend) as shop:
        content = Content(shop.store, quotas=shop.quotas)
        await content.ensure_indexes()
        ann = await shop.user("ann")
        await content.create_insight(ann, title="My only insight", body=BODY * 3)
        with pytest.raises(QuotaExceeded) as info:
            await content.create_insight(ann, title="One insight too many", body=BODY * 3)
        assert info.value.quota == "insights" and info.value.limit == 1
        outcomes = await race(6, lambda i: content.share_resource(
            ann, title=f"A useful link {i}", resource_type="link",
            url=f"https://example.com/{i}"))
        assert outcomes.count("posted") == 2
        await shop.knowledge.post_question(ann, title="Questions are separate", body=BODY)


async def test_a_month_later_the_counts_start_again(
    tmp_path: Path, backend: str
) -> None:
    async with _shop(tmp_path, backend) as shop:
        ann = await shop.user("ann")
        assert (await race(6, lambda i: shop.knowledge.post_question(
            ann, title=f"January question {i}", body=BODY))).count("posted") == 5
        CLOCK.at(dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
        assert (await race(6, lambda i: shop.knowledge.post_question(
            ann, title=f"February question {i}", body=BODY))).count("posted") == 5
        if backend.startswith("redis"):
            counter = shop.quotas.counter
            assert isinstance(counter, RedisQuotaCounter)
            key = counter.redis_key(quota_key(ann, "questions", "2026-02"))
            ttl = await counter.link.call(lambda client: client.ttl(key))
            keep = dt.datetime(2026, 3, 2, tzinfo=dt.UTC) - CLOCK.now()  # a day past the month
            assert keep.total_seconds() - 60 < ttl <= keep.total_seconds()
        else:
            doc = await shop.store.get(QUOTA_COUNTERS, quota_key(ann, "questions", "2026-02"))
            assert doc is not None and doc["count"] == 5


async def test_an_unlimited_tier_counts_nothing(tmp_path: Path) -> None:
    async with open_shop(tmp_path) as shop:
        ann = await shop.user("ann")
        await shop.relay_all()
        await shop.webhook("subscription.active", polar_subscription(ann, product="prod_ent"))
        for _ in range(3):
            use = await shop.quotas.consume(ann, "questions")
            assert use.limit is None and use.tier == "enterprise"
        assert await shop.store.count(QUOTA_COUNTERS) == 0
        with pytest.raises(ValueError, match="unknown quota kind"):
            await shop.quotas.consume(ann, "answers")


async def test_with_redis_down_a_post_is_refused_not_counted_nowhere(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with _shop(tmp_path, redis_server.url) as shop:
        ann = await shop.user("ann")
        await shop.knowledge.post_question(ann, title="Before Redis goes", body=BODY)
        await redis_server.kill()
        with trio.fail_after(20), pytest.raises(QuotaUnavailable):
            await shop.knowledge.post_question(ann, title="While Redis is down", body=BODY)
        assert await shop.store.count(QUESTIONS, {"created_by": ann}) == 1
