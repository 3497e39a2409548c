"""Billing on a two-node cluster (one SQLite file shared, Redis between the nodes): webhooks
arriving at either node, the same delivery at both at once, tier reads and quotas agreeing on
both nodes, the period end's reminder fired once by whichever node holds it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio
from billing_kit import BODY, CLOCK, START, Shop, open_shop, polar_subscription, race

from actors.knowledge import QUESTIONS
from actors.quotas import RedisQuotaCounter
from actors.rules.tiers import tiers_from_mapping
from actors.subscriptions import SUBSCRIPTION_CHANGES, SUBSCRIPTION_KIND
from tektree.cluster import Membership
from tektree.testing.redis import RedisServer

FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
        "lease_renew_seconds": 0.5, "lease_restart_grace": False}
SMALL = tiers_from_mapping({"free": {"quotas": {"questions": 6}},
                            "pro": {"quotas": {"questions": 10}}})
END = START + dt.timedelta(days=30)


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    CLOCK.at(START)
    yield


@asynccontextmanager
async def two_shops(url: str, data_dir: Path) -> AsyncIterator[list[Shop]]:
    async with AsyncExitStack() as stack:
        shops = [await stack.enter_async_context(
            open_shop(data_dir, name=name, redis_url=url, cluster_options=FAST))
            for name in ("n1", "n2")]
        with trio.fail_after(10):
            for shop in shops:
                membership = shop.node.system.extensions["cluster.membership"]
                assert isinstance(membership, Membership)
                while len(membership.view.members) != 2:
                    await membership.wait_for_change(membership.view.version)
        for shop in shops:
            shop.quotas.catalog = SMALL
            assert isinstance(shop.quotas.counter, RedisQuotaCounter)
        yield shops


async def _user_homed_on_n2(s1: Shop) -> str:
    router = s1.node.system.router
    assert router is not None
    for n in range(64):
        uid = await s1.user(f"user{n}")
        if router.remote_home(s1.node.system.ref(SUBSCRIPTION_KIND, uid).id) is not None:
            return uid
    raise AssertionError("64 subscriptions, all homed on n1")


async def _race(shops: list[Shop], uid: str, n: int, label: str) -> int:
    """``n`` posts by ``uid`` at once, alternating between the nodes: how many passed."""
    outcomes = await race(n, lambda i: shops[i % 2].knowledge.post_question(
        uid, title=f"{label} question {i}", body=BODY))
    return outcomes.count("posted")


async def test_the_subscription_flow_across_two_nodes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with two_shops(redis_server.url, tmp_path) as (s1, s2):
        ann = await _user_homed_on_n2(s1)
        await s1.relay_all()
        assert ann in s2.node.system.pools[SUBSCRIPTION_KIND].cells
        # quotas on Free from both nodes at once: never past the limit
        assert await _race([s1, s2], ann, 20, "Free") == 6
        # the upgrade arrives at n1, the cancel at n2; both nodes read the tier at once
        reply = await s1.webhook("subscription.created", polar_subscription(ann),
                                 webhook_id="msg_up")
        assert reply["outcome"] == "applied"
        for shop in (s1, s2):
            assert await shop.tiers.tier_of(ann) == "pro"
        assert await _race([s1, s2], ann, 20, "Pro") == 4
        assert await s2.store.count(QUESTIONS, {"created_by": ann}) == 10
        reply = await s2.webhook("subscription.canceled",
                                 polar_subscription(ann, cancel_at_period_end=True),
                                 webhook_id="msg_cancel")
        assert (reply["outcome"], reply["status"]) == ("applied", "canceled")
        # replays at the other node: nothing
        assert (await s2.webhook("subscription.revoked", polar_subscription(ann),
                                 webhook_id="msg_up"))["outcome"] == "duplicate"
        assert (await s1.webhook("subscription.revoked", polar_subscription(ann),
                                 webhook_id="msg_cancel"))["outcome"] == "duplicate"
        for shop in (s1, s2):
            assert await shop.tiers.tier_of(ann) == "pro"
        # the period ends: Free on both at once; the reminder fires on one node, once
        CLOCK.at(END)
        for shop in (s1, s2):
            assert await shop.tiers.tier_of(ann) == "free"
        with trio.fail_after(20):
            while not await s1.events("payment.subscription.downgraded"):
                for shop in (s1, s2):
                    await shop.settle_reminders()
        for shop in (s1, s2):
            await shop.settle_reminders()
        downgraded = await s2.events("payment.subscription.downgraded")
        assert [(e["payload"]["old_tier"], e["payload"]["new_tier"]) for e in downgraded] == [
            ("pro", "free")]
        view = await s1.billing.subscription_of(ann)
        assert (view["tier"], view["plan_tier"], view["status"]) == ("free", "free", "active")


async def test_one_delivery_at_both_nodes_at_once_applies_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with two_shops(redis_server.url, tmp_path) as (s1, s2):
        ann = await _user_homed_on_n2(s1)
        await s1.relay_all()
        before = await s1.store.count(SUBSCRIPTION_CHANGES)
        outcomes: list[str] = []

        async def deliver(shop: Shop) -> None:
            reply = await shop.webhook("subscription.active",
                                       polar_subscription(ann, product="prod_team"),
                                       webhook_id="msg_twice")
            outcomes.append(reply["outcome"])

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for shop in (s1, s2, s1, s2):
                    nursery.start_soon(deliver, shop)
        assert sorted(outcomes) == ["applied", "duplicate", "duplicate", "duplicate"]
        assert await s1.store.count(SUBSCRIPTION_CHANGES) == before + 1
        assert len(await s2.events("payment.subscription.upgraded")) == 1
        for shop in (s1, s2):
            assert await shop.tiers.tier_of(ann) == "team"
