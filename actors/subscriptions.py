"""``SubscriptionActor`` (one per user, key = user id), the Polar webhook entry and tier reads.

State: the seed's ``subscriptions`` document (``_id`` = user id; see
:class:`actors.rules.billing.Subscription`), loaded on activation. Every change is one store unit:

1. the webhook delivery (``webhook_deliveries``, ``_id`` = ``webhook-id``) when a webhook caused
   it: first in the unit, so a replayed delivery collides there and changes nothing (even on a
   store without atomic units), and the dedupe survives restarts;
2. a ``subscription_changes`` row ``<user>:<rev>`` (the audit trail, and a compare-and-set: two
   activations computing from the same revision cannot both commit);
3. the subscription document;
4. the user's ``tier`` and ``tier_until`` on the accounts' ``users`` document: what the rate
   limits and the quotas read (:class:`CurrentTiers`), so a change applies to the next request;
5. the ``payment.*`` events (outbox).

Time rules are read, not scheduled: ``tier_until`` is when a canceled (or past-due) paid tier
lapses on its own, and :func:`tier_now` applies it on every read, so the tier drops at the
period end exactly, with no cache or timer to wait for. A durable reminder at that moment
(when the node runs the reminders service) then rewrites the documents to Free and emits
``payment.subscription.downgraded``; it is idempotent, and nothing depends on its timing.

Every user starts on Free: ``user.registered`` → :class:`EnsureSubscription` (the wiring).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs
import structlog

from actors import events
from actors.accounts import USERS
from actors.rules.billing import (
    ACCESS_STATUSES,
    POLAR_EVENTS,
    BillingError,
    Subscription,
    access_ends_at,
    apply_polar,
    effective_tier,
    free_subscription,
    polar_user_id,
    tier_rank,
)
from actors.rules.clock import Clock, SystemClock
from actors.rules.tiers import TIER_NAMES
from tektree import Actor, ActorSystem, handler, message
from tektree.persistence import (
    DocumentStore,
    DomainEvent,
    DuplicateKeyError,
    IndexSpec,
    StoreNotRunning,
    format_timestamp,
)

__all__ = [
    "SUBSCRIPTIONS",
    "SUBSCRIPTION_CHANGES",
    "SUBSCRIPTION_KIND",
    "WEBHOOK_DELIVERIES",
    "ApplyPolar",
    "Billing",
    "CurrentTiers",
    "EnsureSubscription",
    "ExpireAccess",
    "GetSubscription",
    "SubscriptionActor",
    "subscription_view",
    "tier_now",
    "validate_products",
]

SUBSCRIPTION_KIND: Final = "subscription"
SUBSCRIPTIONS: Final = "subscriptions"
SUBSCRIPTION_CHANGES: Final = "subscription_changes"
WEBHOOK_DELIVERIES: Final = "webhook_deliveries"
_REMINDER: Final = "access-end"
_ATTEMPTS: Final = 3
INDEXES: Final = (
    (SUBSCRIPTIONS, IndexSpec(fields=(("status", 1),), name="subscriptions_status")),
    (SUBSCRIPTIONS, IndexSpec(fields=(("polar_subscription_id", 1),),
                              name="subscriptions_polar_id")),
    (SUBSCRIPTION_CHANGES, IndexSpec(fields=(("user_id", 1), ("rev", -1)),
                                     name="subscription_changes_user")),
    (WEBHOOK_DELIVERIES, IndexSpec(fields=(("received_at", -1),),
                                   name="webhook_deliveries_time")),
)

_log = structlog.get_logger("actors.subscriptions")


# -- messages ------------------------------------------------------------------------------------
@message("subscription.ensure")
class EnsureSubscription:
    """Create the user's Free subscription unless there is one (``user.registered``)."""

    cause_id: str = ""


@message("subscription.get")
class GetSubscription:
    pass


@message("subscription.apply_polar")
class ApplyPolar:
    """One verified Polar delivery: ``products`` maps Polar product ids to tiers."""

    webhook_id: str
    event_type: str
    data: dict[str, Any]
    products: dict[str, str]


@message("subscription.expire_access")
class ExpireAccess:
    """The moment a canceled or past-due paid tier lapses (a durable reminder)."""


# -- tier reads (the rate limits' and the quotas' source) ------------------------------------------
def tier_now(user_doc: Mapping[str, Any] | None, now: dt.datetime) -> str:
    """The tier the ``users`` document gives at ``now``: ``tier``, or Free once ``tier_until``
    has passed."""
    if user_doc is None:
        return "free"
    tier = user_doc.get("tier")
    if not isinstance(tier, str) or tier not in TIER_NAMES:
        return "free"
    until = user_doc.get("tier_until")
    if isinstance(until, str) and until and until <= format_timestamp(now):
        return "free"
    return tier


@attrs.define
class CurrentTiers:
    """``await tier_of(user_id)``: one point read of the ``users`` document, no cache."""

    store: DocumentStore
    now: Callable[[], dt.datetime] = attrs.field(default=lambda: dt.datetime.now(dt.UTC))

    async def tier_of(self, user_id: str) -> str:
        return tier_now(await self.store.get(USERS, user_id), self.now())


def validate_products(products: Mapping[str, Any]) -> dict[str, str]:
    """The Polar product id → tier table, every tier checked by name."""
    out: dict[str, str] = {}
    for product, tier in products.items():
        if not isinstance(tier, str) or tier not in TIER_NAMES or tier == "free":
            raise BillingError(f"billing.products.{product}", "enum",
                               f"{tier!r} is not a paid tier; expected one of "
                               f"{', '.join(TIER_NAMES[1:])}")
        out[str(product)] = tier
    return out


def subscription_view(sub: Subscription, now: dt.datetime) -> dict[str, Any]:
    """What a reply says about ``sub`` at ``now``."""
    doc = sub.as_document()
    ends = access_ends_at(sub)
    tier = effective_tier(sub, now)
    return {
        "user_id": sub.user_id, "tier": tier, "plan_tier": sub.tier, "status": sub.status,
        "billing_cycle": sub.billing_cycle, "polar_subscription_id": sub.polar_subscription_id,
        "current_period_start": doc["current_period_start"],
        "current_period_end": doc["current_period_end"], "cancel_at": doc["cancel_at"],
        "canceled_at": doc["canceled_at"],
        "access_until": format_timestamp(ends) if ends is not None and tier != "free" else None,
        "updated_at": doc["updated_at"],
    }


def _events_for(old: Subscription | None, new: Subscription, now: dt.datetime) -> list[object]:
    uid = new.user_id
    old_tier, new_tier = effective_tier(old, now), effective_tier(new, now)
    out: list[object] = []
    if old is None or (new.polar_subscription_id and new.tier != "free"
                       and new.polar_subscription_id != old.polar_subscription_id):
        out.append(events.SubscriptionCreated(user_id=uid, tier=new.tier, status=new.status))
    if old is not None and tier_rank(new_tier) > tier_rank(old_tier):
        out.append(events.SubscriptionUpgraded(user_id=uid, old_tier=old_tier,
                                               new_tier=new_tier))
    elif old is not None and tier_rank(new_tier) < tier_rank(old_tier):
        out.append(events.SubscriptionDowngraded(user_id=uid, old_tier=old_tier,
                                                 new_tier=new_tier))
    ends = access_ends_at(new)
    until = None if ends is None else format_timestamp(ends)
    if new.status == "canceled" and (old is None or old.status != "canceled"):
        out.append(events.SubscriptionCancelled(user_id=uid, tier=new.tier, access_until=until))
    if (old is not None and old.status == "canceled" and new.status in ACCESS_STATUSES
            and new.tier == old.tier and new.tier != "free"):
        out.append(events.SubscriptionReactivated(user_id=uid, tier=new.tier))
    if new.status == "past_due" and (old is None or old.status != "past_due"):
        out.append(events.SubscriptionPastDue(user_id=uid, tier=new.tier, access_until=until))
    return out


class _Stale(Exception):
    """Another activation committed a revision first."""


class _Duplicate(Exception):
    """The webhook delivery was recorded before."""


# -- the actor -------------------------------------------------------------------------------------
class SubscriptionActor(Actor):
    """One user's subscription (see the module docstring)."""

    #: Tests subclass with a ``FixedClock``.
    clock: ClassVar[Clock] = SystemClock()
    sub: Subscription | None

    @property
    def store(self) -> DocumentStore:
        store = self.ctx.system.extensions.get("store")
        if store is None:
            raise StoreNotRunning(f"actor {self.ctx.id}")
        return store  # type: ignore[return-value]

    async def on_activate(self) -> None:
        await self._load()

    async def _load(self) -> None:
        doc = await self.store.get(SUBSCRIPTIONS, self.ctx.id.key)
        self.sub = None if doc is None else Subscription.from_document(doc)

    @property
    def user_id(self) -> str:
        return self.ctx.id.key

    def _view(self) -> dict[str, Any]:
        now = self.clock.now()
        return subscription_view(self.sub or free_subscription(self.user_id, now), now)

    @handler
    async def get(self, msg: GetSubscription) -> dict[str, Any]:
        return self._view()

    @handler
    async def ensure(self, msg: EnsureSubscription) -> dict[str, Any]:
        for _ in range(_ATTEMPTS):
            if self.sub is not None:
                break
            now = self.clock.now()
            try:
                await self._commit(free_subscription(self.user_id, now), cause="registered",
                                   now=now)
            except _Stale:
                await self._load()
        return self._view()

    @handler
    async def apply(self, msg: ApplyPolar) -> dict[str, Any]:
        for _ in range(_ATTEMPTS):
            now = self.clock.now()
            current = self.sub or free_subscription(self.user_id, now)
            delivery = {"_id": msg.webhook_id, "source": "polar", "event_type": msg.event_type,
                        "user_id": self.user_id, "received_at": format_timestamp(now)}
            try:
                change = apply_polar(current, msg.event_type, msg.data, msg.products, now)
            except BillingError as exc:
                return await self._ignore(delivery, str(exc))
            extra: list[object] = []
            if change.order_id is not None:
                extra.append(events.InvoicePaid(user_id=self.user_id, order_id=change.order_id,
                                                amount_cents=change.amount_cents,
                                                currency=change.currency))
            try:
                if change.subscription is None:
                    await self._record(delivery | {"outcome": "ignored",
                                                   "reason": change.ignored}, extra, now)
                    return {"outcome": "ignored", "reason": change.ignored, **self._view()}
                await self._commit(change.subscription, cause=f"polar {msg.event_type}",
                                   now=now, delivery=delivery | {"outcome": "applied"},
                                   extra=extra)
            except _Duplicate:
                return {"outcome": "duplicate", **self._view()}
            except _Stale:
                await self._load()
                continue
            return {"outcome": "applied", **self._view()}
        raise RuntimeError(f"subscription {self.user_id!r}: {_ATTEMPTS} stale revisions in a row")

    @handler
    async def expire(self, msg: ExpireAccess) -> dict[str, Any]:
        for _ in range(_ATTEMPTS):
            now = self.clock.now()
            sub = self.sub
            if sub is None or sub.tier == "free" or effective_tier(sub, now) != "free":
                break  # nothing lapsed (uncanceled, renewed, or the reminder is early)
            lapsed = attrs.evolve(sub, tier="free", status="active", polar_product_id=None,
                                  current_period_start=None, current_period_end=None,
                                  cancel_at=None, ended_at=sub.current_period_end,
                                  updated_at=now)
            # An operator who set the user's tier since (``set_tier`` clears ``tier_until``)
            # overrides the lapse: the plan ends, the user's tier stays theirs.
            user = await self.store.get(USERS, self.user_id)
            overridden = user is not None and user.get("tier_until") is None
            try:
                await self._commit(lapsed, cause="access ended", now=now, previous_tier=sub.tier,
                                   user_tier=not overridden)
            except _Stale:
                await self._load()
                continue
            break
        return self._view()

    async def _ignore(self, delivery: dict[str, Any], reason: str) -> dict[str, Any]:
        _log.warning("polar webhook ignored", webhook_id=delivery["_id"], reason=reason)
        try:
            await self._record(delivery | {"outcome": "ignored", "reason": reason}, [],
                               self.clock.now())
        except _Duplicate:
            return {"outcome": "duplicate", **self._view()}
        return {"outcome": "ignored", "reason": reason, **self._view()}

    def _envelopes(self, evts: list[object], key: str, now: dt.datetime) -> list[DomainEvent]:
        cid = getattr(self.ctx.envelope, "correlation_id", None)
        return [events.to_envelope(e, event_id=f"evt_sub_{self.user_id}_{key}_{i}",
                                   producer_id=f"subscription:{self.user_id}",
                                   correlation_id=cid, timestamp=format_timestamp(now))
                for i, e in enumerate(evts)]

    async def _record(self, delivery: dict[str, Any], extra: list[object],
                      now: dt.datetime) -> None:
        try:
            async with self.store.unit() as unit:
                unit.insert(WEBHOOK_DELIVERIES, delivery)
                for env in self._envelopes(extra, f"w{delivery['_id']}", now):
                    unit.add_event(env)
        except DuplicateKeyError as exc:
            if exc.collection == WEBHOOK_DELIVERIES:
                raise _Duplicate() from None
            raise

    async def _commit(self, new: Subscription, *, cause: str, now: dt.datetime,
                      delivery: dict[str, Any] | None = None, extra: Sequence[object] = (),
                      previous_tier: str | None = None, user_tier: bool = True) -> None:
        """Commit ``new`` (see the module docstring for what one commit writes); ``user_tier``
        False leaves the user's ``tier`` and ``tier_until`` as they are."""
        old = self.sub
        rev = (old.rev if old is not None else 0) + 1
        new = attrs.evolve(new, rev=rev, updated_at=now)
        tier = effective_tier(new, now)
        ends = access_ends_at(new) if tier != "free" else None
        found = _events_for(old, new, now)
        if previous_tier is not None and not any(
                isinstance(e, events.SubscriptionDowngraded) for e in found):
            found.append(events.SubscriptionDowngraded(user_id=self.user_id,
                                                       old_tier=previous_tier, new_tier=tier))
        doc = new.as_document()
        try:
            async with self.store.unit() as unit:
                if delivery is not None:
                    unit.insert(WEBHOOK_DELIVERIES, delivery)
                unit.insert(SUBSCRIPTION_CHANGES, {
                    "_id": f"{self.user_id}:{rev}", "user_id": self.user_id, "rev": rev,
                    "at": format_timestamp(now), "cause": cause, "tier": new.tier,
                    "status": new.status, "effective_tier": tier,
                    "webhook_id": None if delivery is None else delivery["_id"]})
                if old is None:
                    unit.insert(SUBSCRIPTIONS, doc)
                else:
                    unit.update(SUBSCRIPTIONS, self.user_id, {"$set": {
                        k: v for k, v in doc.items() if k != "_id"}})
                if user_tier:
                    unit.update(USERS, self.user_id, {"$set": {
                        "tier": tier,
                        "tier_until": None if ends is None else format_timestamp(ends),
                        "updated_at": format_timestamp(now)}})
                for env in self._envelopes([*extra, *found], f"r{rev}", now):
                    unit.add_event(env)
        except DuplicateKeyError as exc:
            if exc.collection == WEBHOOK_DELIVERIES:
                raise _Duplicate() from None
            if exc.collection in (SUBSCRIPTION_CHANGES, SUBSCRIPTIONS):
                raise _Stale() from None
            raise
        self.sub = new
        await self._schedule(ends)

    async def _schedule(self, ends: dt.datetime | None) -> None:
        from tektree.reminders import RemindersNotRunning

        try:
            if ends is None:
                await self.ctx.reminders.cancel(_REMINDER)
            else:
                await self.ctx.reminders.register(_REMINDER, ExpireAccess(), due_at=ends)
        except RemindersNotRunning:
            pass  # the tier still lapses on time: tier_now() reads tier_until
        except Exception as exc:  # committed already: the reminder only tidies up after
            _log.warning("access-end reminder not set", user_id=self.user_id,
                         ends=None if ends is None else format_timestamp(ends), error=repr(exc))


# -- the webhook entry -------------------------------------------------------------------------
class Billing:
    """What the gateway calls: a verified Polar delivery in, its outcome out; a user's
    subscription. ``products`` maps Polar product ids to tiers (:func:`validate_products`)."""

    def __init__(self, system: ActorSystem, store: DocumentStore, *,
                 products: Mapping[str, str], timeout: float | None = None) -> None:
        self.system = system
        self.store = store
        self.products = validate_products(products)
        self.timeout = timeout

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    async def polar_webhook(self, webhook_id: str, body: bytes) -> dict[str, Any]:
        """Apply one verified delivery (``body`` as signed). ``outcome``: ``applied``,
        ``duplicate`` (seen before: nothing done) or ``ignored`` (recorded, with ``reason``).
        A body that is not a Polar event raises :class:`BillingError`."""
        if await self.store.get(WEBHOOK_DELIVERIES, webhook_id) is not None:
            return {"outcome": "duplicate"}
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BillingError("body", "json", f"not JSON: {exc}") from None
        if not isinstance(payload, Mapping) or not isinstance(payload.get("type"), str) \
                or not isinstance(payload.get("data"), Mapping):
            raise BillingError("body", "shape", "a Polar event is an object with a string "
                                                "'type' and an object 'data'")
        event_type, data = payload["type"], dict(payload["data"])
        user_id = polar_user_id(data)
        reason = None
        if event_type not in POLAR_EVENTS:
            reason = f"event type {event_type!r} is not handled"
        elif user_id is None:
            reason = "the payload names no TekTree user (customer.external_id)"
        elif await self.store.get(USERS, user_id) is None:
            reason = f"no user {user_id!r}"
        if reason is not None or user_id is None:
            return await self._ignored(webhook_id, event_type, reason or "")
        reply: dict[str, Any] = await self.system.ref(SUBSCRIPTION_KIND, user_id).ask(
            ApplyPolar(webhook_id=webhook_id, event_type=event_type, data=data,
                       products=dict(self.products)), timeout=self.timeout)
        return reply

    async def _ignored(self, webhook_id: str, event_type: str, reason: str) -> dict[str, Any]:
        _log.info("polar webhook ignored", webhook_id=webhook_id, event_type=event_type,
                  reason=reason)
        try:
            await self.store.insert(WEBHOOK_DELIVERIES, {
                "_id": webhook_id, "source": "polar", "event_type": event_type,
                "user_id": None, "outcome": "ignored", "reason": reason,
                "received_at": format_timestamp(dt.datetime.now(dt.UTC))})
        except DuplicateKeyError:
            return {"outcome": "duplicate"}
        return {"outcome": "ignored", "reason": reason}

    async def subscription_of(self, user_id: str) -> dict[str, Any]:
        reply: dict[str, Any] = await self.system.ref(SUBSCRIPTION_KIND, user_id).ask(
            GetSubscription(), timeout=self.timeout)
        return reply
