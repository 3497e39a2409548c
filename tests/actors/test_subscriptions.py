"""``SubscriptionActor`` on the embedded defaults (SQLite, one node, the reminders service on a
manual clock): Free from registration, Polar's events, the period end, revocation, replays."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mongomock
import pytest
import trio
from billing_kit import BODY, CLOCK, START, Shop, open_shop, polar_subscription

from actors.accounts import USERS
from actors.quotas import QuotaExceeded
from actors.rules.tiers import tiers_from_mapping
from actors.subscriptions import (
    SUBSCRIPTION_CHANGES,
    SUBSCRIPTION_KIND,
    SUBSCRIPTIONS,
    WEBHOOK_DELIVERIES,
    ApplyPolar,
    GetSubscription,
)
from tektree.reminders import REMINDERS

END = START + dt.timedelta(days=30)
#: Small quotas, so a test reaches them in a few posts.
SMALL = tiers_from_mapping({"free": {"quotas": {"questions": 2}},
                            "pro": {"quotas": {"questions": 4}}})


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    CLOCK.at(START)
    yield


@pytest.fixture(params=["sqlite", "mongomock"])
def mongo(request: pytest.FixtureRequest) -> Any:
    """None (SQLite), or a mongomock client standing in for MongoDB (units without atomicity),
    kept across a test's restarts like a server."""
    return mongomock.MongoClient() if request.param == "mongomock" else None


async def _registered(shop: Shop) -> str:
    """A new user, their registration relayed (so their Free subscription exists)."""
    uid = await shop.user("ann")
    await shop.relay_all()
    return uid


async def _post(shop: Shop, uid: str, n: int) -> None:
    await shop.knowledge.post_question(uid, title=f"Question number {n} here", body=BODY)


async def _user_doc(shop: Shop, uid: str) -> dict[str, object]:
    doc = await shop.store.get(USERS, uid)
    assert doc is not None
    return doc


async def test_every_user_starts_on_free(tmp_path: Path, mongo: Any) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        ann = await _registered(shop)
        doc = await shop.store.get(SUBSCRIPTIONS, ann)
        assert doc is not None and (doc["tier"], doc["status"], doc["rev"]) == (
            "free", "active", 1)
        created = await shop.events("payment.subscription.created")
        assert [e["payload"] for e in created] == [
            {"user_id": ann, "tier": "free", "status": "active"}]
        await shop.relay_all()  # the relay again: already there, nothing new
        assert len(await shop.events("payment.subscription.created")) == 1
        view = await shop.node.system.ref(SUBSCRIPTION_KIND, ann).ask(GetSubscription())
        assert (view["tier"], view["plan_tier"], view["access_until"]) == ("free", "free", None)


async def test_upgrade_then_cancel_then_the_period_end_back_to_free(
    tmp_path: Path, mongo: Any
) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        shop.quotas.catalog = SMALL
        ann = await _registered(shop)
        for n in range(2):
            await _post(shop, ann, n)
        with pytest.raises(QuotaExceeded) as info:
            await _post(shop, ann, 2)
        assert (info.value.limit, info.value.tier, info.value.period) == (2, "free", "2026-01")
        assert "resets at 2026-02-01T00:00:00" in str(info.value)

        # upgrade: the limits follow on the next call
        reply = await shop.webhook("subscription.created", polar_subscription(ann))
        assert (reply["outcome"], reply["tier"], reply["status"]) == ("applied", "pro", "active")
        assert await shop.tiers.tier_of(ann) == "pro"
        assert (await _user_doc(shop, ann))["tier"] == "pro"
        for n in range(2, 4):
            await _post(shop, ann, n)
        with pytest.raises(QuotaExceeded) as info:
            await _post(shop, ann, 4)
        assert (info.value.limit, info.value.used) == (4, 4)
        upgraded = await shop.events("payment.subscription.upgraded")
        assert [(e["payload"]["old_tier"], e["payload"]["new_tier"]) for e in upgraded] == [
            ("free", "pro")]

        # cancel: access until the period end, a reminder there
        CLOCK.at(START + dt.timedelta(days=3))
        reply = await shop.webhook("subscription.canceled",
                                   polar_subscription(ann, cancel_at_period_end=True))
        assert (reply["tier"], reply["status"], reply["access_until"]) == (
            "pro", "canceled", "2026-02-09T12:00:00.000000Z")
        cancelled = await shop.events("payment.subscription.cancelled")
        assert cancelled[0]["payload"]["access_until"] == "2026-02-09T12:00:00.000000Z"
        assert await shop.store.count(REMINDERS) == 1
        CLOCK.at(END - dt.timedelta(seconds=1))
        assert await shop.tiers.tier_of(ann) == "pro"

        # the period ends: Free on the very next read, before any reminder ran
        CLOCK.at(END)
        assert await shop.tiers.tier_of(ann) == "free"
        # then the reminder rewrites the documents and says so
        await shop.settle_reminders()
        with trio.fail_after(10):
            while not await shop.events("payment.subscription.downgraded"):
                await shop.settle_reminders()
        doc = await shop.store.get(SUBSCRIPTIONS, ann)
        assert doc is not None and (doc["tier"], doc["status"]) == ("free", "active")
        user = await _user_doc(shop, ann)
        assert (user["tier"], user["tier_until"]) == ("free", None)
        downgraded = await shop.events("payment.subscription.downgraded")
        assert [(e["payload"]["old_tier"], e["payload"]["new_tier"]) for e in downgraded] == [
            ("pro", "free")]
        # a new month, Free's limits: 2 again
        usage = {u.kind: u for u in await shop.quotas.usage(ann)}
        assert (usage["questions"].limit, usage["questions"].used,
                usage["questions"].period) == (2, 0, "2026-02")


async def test_uncanceled_before_the_end_keeps_the_tier(tmp_path: Path, mongo: Any) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        ann = await _registered(shop)
        await shop.webhook("subscription.active", polar_subscription(ann, product="prod_team"))
        await shop.webhook("subscription.canceled",
                           polar_subscription(ann, product="prod_team",
                                              cancel_at_period_end=True))
        reply = await shop.webhook("subscription.uncanceled",
                                   polar_subscription(ann, product="prod_team"))
        assert (reply["tier"], reply["status"], reply["access_until"]) == (
            "team", "active", None)
        assert await shop.store.count(REMINDERS) == 0
        assert len(await shop.events("payment.subscription.reactivated")) == 1
        CLOCK.at(END + dt.timedelta(days=1))
        assert await shop.tiers.tier_of(ann) == "team"


async def test_revoked_removes_access_at_once(tmp_path: Path, mongo: Any) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        ann = await _registered(shop)
        await shop.webhook("subscription.active", polar_subscription(ann))
        await shop.webhook("subscription.canceled",
                           polar_subscription(ann, cancel_at_period_end=True))
        assert await shop.tiers.tier_of(ann) == "pro"
        reply = await shop.webhook("subscription.revoked",
                                   polar_subscription(ann, status="canceled"))
        assert (reply["outcome"], reply["tier"], reply["plan_tier"]) == (
            "applied", "free", "free")
        assert await shop.tiers.tier_of(ann) == "free"  # no clock moved
        assert await shop.store.count(REMINDERS) == 0  # nothing left to expire
        downgraded = await shop.events("payment.subscription.downgraded")
        assert [e["payload"]["new_tier"] for e in downgraded] == ["free"]


async def test_past_due_keeps_the_tier_until_the_grace_ends(tmp_path: Path, mongo: Any) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        ann = await _registered(shop)
        await shop.webhook("subscription.active", polar_subscription(ann))
        reply = await shop.webhook("subscription.past_due", polar_subscription(ann))
        assert (reply["tier"], reply["status"], reply["access_until"]) == (
            "pro", "past_due", "2026-02-16T12:00:00.000000Z")
        assert len(await shop.events("payment.subscription.past_due")) == 1
        CLOCK.at(END + dt.timedelta(days=7))
        assert await shop.tiers.tier_of(ann) == "free"


async def test_a_replayed_delivery_changes_nothing_even_after_a_restart(
    tmp_path: Path, mongo: Any
) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        ann = await _registered(shop)
        first = await shop.webhook("subscription.active", polar_subscription(ann),
                                   webhook_id="msg_once")
        assert first["outcome"] == "applied"
        changes = await shop.store.count(SUBSCRIPTION_CHANGES)
        events = await shop.store.count("events")
        # the same delivery, concurrently and again
        replies: list[str] = []

        async def again() -> None:
            reply = await shop.webhook("subscription.revoked", polar_subscription(ann),
                                       webhook_id="msg_once")
            replies.append(reply["outcome"])

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(again)
        assert replies == ["duplicate"] * 5
        assert await shop.tiers.tier_of(ann) == "pro"
    # a restart: the ids are in the store
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        reply = await shop.webhook("subscription.revoked", polar_subscription(ann),
                                   webhook_id="msg_once")
        assert reply["outcome"] == "duplicate"
        # the actor itself refuses it too (a race past the gateway's pre-check)
        reply = await shop.node.system.ref(SUBSCRIPTION_KIND, ann).ask(ApplyPolar(
            webhook_id="msg_once", event_type="subscription.revoked",
            data=polar_subscription(ann), products={"prod_pro": "pro"}))
        assert reply["outcome"] == "duplicate"
        assert await shop.store.count(SUBSCRIPTION_CHANGES) == changes
        assert await shop.store.count("events") == events
        assert await shop.tiers.tier_of(ann) == "pro"


async def test_deliveries_that_concern_nobody_are_recorded_and_ignored(
    tmp_path: Path, mongo: Any
) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        ann = await _registered(shop)
        cases = [
            ("checkout.created", {"id": "chk_1"}, "not handled"),
            ("subscription.active", {**polar_subscription(ann), "customer": {}}, "no TekTree"),
            ("subscription.active", polar_subscription("usr_nobody"), "no user"),
            ("subscription.active", polar_subscription(ann, product="prod_gone"), "prod_gone"),
        ]
        for n, (event_type, data, why) in enumerate(cases):
            reply = await shop.webhook(event_type, data, webhook_id=f"msg_ignored_{n}")
            assert reply["outcome"] == "ignored" and why in reply["reason"], reply
            again = await shop.webhook(event_type, data, webhook_id=f"msg_ignored_{n}")
            assert again["outcome"] == "duplicate"
        assert await shop.store.count(WEBHOOK_DELIVERIES, {"outcome": "ignored"}) == 4
        assert await shop.tiers.tier_of(ann) == "free"
        # an order pays an invoice, whatever it renews
        reply = await shop.webhook("order.paid", {"id": "ord_9", "total_amount": 1200,
                                                  "currency": "usd",
                                                  "customer": {"external_id": ann}})
        assert reply["outcome"] == "ignored"
        paid = await shop.events("payment.invoice.paid")
        assert [e["payload"] for e in paid] == [{"user_id": ann, "order_id": "ord_9",
                                                 "amount_cents": 1200, "currency": "USD"}]


async def test_an_operators_tier_does_not_lapse_with_a_canceled_plan(
    tmp_path: Path, mongo: Any
) -> None:
    async with open_shop(tmp_path, mongo_client=mongo) as shop:
        ann = await _registered(shop)
        await shop.webhook("subscription.active", polar_subscription(ann))
        await shop.webhook("subscription.canceled",
                           polar_subscription(ann, cancel_at_period_end=True))
        await shop.accounts.set_tier(ann, "enterprise")
        CLOCK.at(END + dt.timedelta(seconds=1))
        assert await shop.tiers.tier_of(ann) == "enterprise"
        # The access-end reminder lapses the plan, not the operator's tier (it used to write
        # Free over it, whenever it fired: this test failed when it fired before the read).
        with trio.fail_after(10):
            while not await shop.events("payment.subscription.downgraded"):
                await shop.settle_reminders()
        doc = await shop.store.get(SUBSCRIPTIONS, ann)
        assert doc is not None and doc["tier"] == "free"
        assert await shop.tiers.tier_of(ann) == "enterprise"
        user = await _user_doc(shop, ann)
        assert (user["tier"], user["tier_until"]) == ("enterprise", None)
