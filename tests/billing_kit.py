"""Billing test support: a clock both the actors and the reminders read, Polar payloads, signed
deliveries, and a node with the accounts, profiles and subscriptions on one real store."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.accounts import Accounts, hasher_for_tests
from actors.knowledge import Knowledge
from actors.leaderboard import LeaderboardActor
from actors.profile import UserProfileActor
from actors.quotas import QuotaExceeded, Quotas, counter_for
from actors.rooms import RoomActor
from actors.subscriptions import Billing, CurrentTiers, SubscriptionActor
from actors.wiring import event_router
from tektree import Node
from tektree.config import StoreConfig
from tektree.persistence import EVENTS, DocumentStore, OutboxRelay, store_service
from tektree.reminders import ReminderService, reminders_service
from tektree.testing import ManualWallClock, open_test_node, test_config
from tektree.webhooks import signed_headers

SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="  # base64("secret-key-for-tests-only")
PRODUCTS = {"prod_pro": "pro", "prod_team": "team", "prod_ent": "enterprise"}
START = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.UTC)
BODY = "A body long enough to pass the twenty character rule."
_ids = itertools.count(1)


class BillingClock(ManualWallClock):
    """A manual wall clock (for the reminders service) that also answers ``now()`` as an aware
    datetime (for the actors' rules, the tier reads and the quotas)."""

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time(), dt.UTC)

    def at(self, when: dt.datetime) -> None:
        self.set(when.timestamp())


CLOCK = BillingClock(START.timestamp())


class ClockedSubscriptions(SubscriptionActor):
    """The actor on the shared test clock."""

    clock = CLOCK


def iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def polar_subscription(
    user_id: str, *, product: str = "prod_pro", status: str = "active",
    start: dt.datetime = START, days: int = 30, cancel_at_period_end: bool = False,
    sub_id: str = "sub_polar_1", modified: dt.datetime | None = None,
) -> dict[str, Any]:
    """Polar's subscription object (the fields the rules read)."""
    return {
        "id": sub_id, "status": status, "product_id": product, "recurring_interval": "month",
        "current_period_start": iso(start), "current_period_end": iso(start + dt.timedelta(
            days=days)), "cancel_at_period_end": cancel_at_period_end, "canceled_at": None,
        "ends_at": None, "customer": {"id": "cus_1", "external_id": user_id,
                                      "email": "x@example.com", "metadata": {}},
        "metadata": {}, "modified_at": iso(modified or CLOCK.now()),
        "created_at": iso(start),
    }


def delivery(event_type: str, data: Mapping[str, Any], *, webhook_id: str | None = None,
             at: float | None = None, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    """A signed Polar delivery: (its headers, its body)."""
    body = json.dumps({"type": event_type, "timestamp": iso(CLOCK.now()),
                       "data": dict(data)}).encode()
    webhook_id = webhook_id or f"msg_{next(_ids)}"
    stamp = int(CLOCK.time() if at is None else at)
    return signed_headers(secret, webhook_id, stamp, body), body


def polar_body(event_type: str, data: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "data": dict(data)}).encode()


async def race(n: int, post: Callable[[int], Awaitable[object]]) -> list[str]:
    """``post(0..n-1)`` all at once: each ``"posted"`` or ``"refused"`` (quota exceeded)."""
    outcomes: list[str] = []

    async def one(i: int) -> None:
        try:
            await post(i)
            outcomes.append("posted")
        except QuotaExceeded:
            outcomes.append("refused")

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
    return outcomes


@attrs.define
class Shop:
    """One node's billing parts."""

    node: Node
    store: DocumentStore
    accounts: Accounts
    billing: Billing
    quotas: Quotas
    knowledge: Knowledge
    tiers: CurrentTiers

    async def user(self, handle: str) -> str:
        user = await self.accounts.register(email=f"{handle}@example.com",
                                            password="correct horse battery", handle=handle)
        return user.uid

    async def relay_all(self) -> None:
        relay = OutboxRelay(self.store, event_router(self.node.system, timeout=10))
        with trio.fail_after(30):
            while await relay.relay_once():
                pass

    async def webhook(self, event_type: str, data: Mapping[str, Any],
                      webhook_id: str | None = None) -> dict[str, Any]:
        webhook_id = webhook_id or f"msg_{next(_ids)}"
        return await self.billing.polar_webhook(webhook_id, polar_body(event_type, data))

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        page = await self.store.find(EVENTS, {"event_type": event_type},
                                     sort=[("timestamp", 1)], limit=1000)
        return list(page.items)

    async def settle_reminders(self) -> None:
        service = self.node.system.extensions["reminders.service"]
        assert isinstance(service, ReminderService)
        with trio.fail_after(10):
            await service.settle()


ACTORS: dict[str, Any] = {"user": UserProfileActor, "leaderboard": LeaderboardActor,
                          "room": RoomActor, "subscription": ClockedSubscriptions}
REMINDERS = {"type": "service", "name": "reminders", "service": "reminders",
             "options": {"poll_interval_seconds": 1.0, "lookahead_seconds": 0.0,
                         "lease_seconds": 30.0, "fire_timeout_seconds": 5.0}}


async def build_shop(node: Node) -> Shop:
    store = node.store
    assert store is not None
    tiers = CurrentTiers(store, now=CLOCK.now)
    quotas = Quotas(store, counter_for(store, node.system.extensions.get("redis")),
                    tiers=tiers, now=CLOCK.now)
    shop = Shop(node=node, store=store, accounts=Accounts(store, hasher=hasher_for_tests()),
                billing=Billing(node.system, store, products=PRODUCTS, timeout=10),
                quotas=quotas, knowledge=Knowledge(store, quotas=quotas), tiers=tiers)
    for part in (shop.accounts, shop.billing, shop.quotas, shop.knowledge):
        await part.ensure_indexes()
    return shop


def node_config(data_dir: Path, *, name: str = "test", redis_url: str = "",
                cluster_options: Mapping[str, Any] | None = None, mongo: bool = False) -> Any:
    services: list[Mapping[str, Any]] = [
        {"type": "service", "name": "store", "service": "store"},
        {"type": "service", "name": "cluster", "service": "cluster",
         "options": dict(cluster_options or {})},
        REMINDERS]
    config = test_config(ACTORS, services=services,
                         node={"name": name, "data_dir": str(data_dir)}, redis_url=redis_url)
    if mongo:
        config = attrs.evolve(config, store=StoreConfig(backend="mongodb",
                                                        mongo_url="mongodb://mongomock"))
    return config


@asynccontextmanager
async def open_shop(data_dir: Path, *, name: str = "test", redis_url: str = "",
                    cluster_options: Mapping[str, Any] | None = None,
                    mongo_client: Any = None) -> AsyncIterator[Shop]:
    """A node (store, cluster, reminders on :data:`CLOCK`, the game and subscription actors)
    and its billing parts; ``mongo_client`` (a ``mongomock.MongoClient``): on the MongoDB
    adapter instead of SQLite."""
    services: dict[str, Any] = {"reminders": functools.partial(reminders_service, clock=CLOCK)}
    if mongo_client is not None:
        services["store"] = functools.partial(store_service, mongo_client=mongo_client)
    config = node_config(data_dir, name=name, redis_url=redis_url,
                         cluster_options=cluster_options, mongo=mongo_client is not None)
    async with open_test_node(config, actors=ACTORS, services=services) as node:
        yield await build_shop(node)
