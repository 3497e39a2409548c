"""Subscriptions: what tier a user has at a moment, and what a Polar event changes. Pure, no I/O.

A :class:`Subscription` is the seed's ``subscriptions`` document (``tier``, ``status``,
``billing_cycle``, ``polar_subscription_id``, ``current_period_start/end``, ``trial_ends_at``,
``cancel_at``, ``canceled_at``) plus what the rules need (``polar_product_id``,
``polar_modified_at``, ``ended_at``, ``rev``).

**Access** (:func:`effective_tier`): ``tier`` while ``status`` is ``active`` or ``trialing``;
``canceled`` keeps it until ``current_period_end`` (the customer paid for the period), then Free;
``past_due`` (a renewal payment failed, Polar is retrying it) keeps it until
``current_period_end`` plus the grace (:data:`PAST_DUE_GRACE`, 7 days): Polar sends
``subscription.revoked`` when its retries are exhausted, which ends access at once; the grace
only bounds how long a lost revoke could keep a paid tier. Anything else is Free.

**Polar events** (:func:`apply_polar`): the payload's ``data`` is Polar's subscription object
(for ``order.paid``: an order, whose ``subscription`` is applied when it carries one). The user
is ``data.customer.external_id`` (the TekTree user id given to Polar at checkout), else
``data.metadata.user_id`` or ``data.customer.metadata.user_id``. The product is mapped to a tier
by the configured ``products`` table. ``data.modified_at`` orders the updates: an event older
than the last one applied changes nothing (Polar does not promise order).

- ``subscription.created`` / ``.active`` / ``.updated`` / ``.uncanceled``: the subscription as
  Polar describes it (its ``status``; ``cancel_at_period_end`` means canceled, access until the
  period end);
- ``subscription.canceled``: canceled, access until ``current_period_end``;
- ``subscription.past_due``: past due (see above);
- ``subscription.revoked``: access ends now: back to Free.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import attrs

from actors.rules.tiers import TIER_NAMES

__all__ = [
    "ACCESS_STATUSES",
    "PAST_DUE_GRACE",
    "POLAR_EVENTS",
    "STATUSES",
    "BillingError",
    "PolarChange",
    "Subscription",
    "access_ends_at",
    "apply_polar",
    "effective_tier",
    "free_subscription",
    "parse_time",
    "polar_user_id",
    "tier_rank",
]

STATUSES: Final[tuple[str, ...]] = ("active", "trialing", "past_due", "canceled")
ACCESS_STATUSES: Final[tuple[str, ...]] = ("active", "trialing")
PAST_DUE_GRACE: Final = dt.timedelta(days=7)
POLAR_EVENTS: Final[tuple[str, ...]] = (
    "subscription.created", "subscription.active", "subscription.updated",
    "subscription.canceled", "subscription.uncanceled", "subscription.past_due",
    "subscription.revoked", "order.paid",
)  # fmt: skip
_POLAR_STATUS: Final = {"active": "active", "trialing": "trialing", "past_due": "past_due",
                        "canceled": "canceled"}
_CYCLES: Final = {"month": "monthly", "year": "annual"}


class BillingError(ValueError):
    """A Polar payload the rules cannot use: ``field`` names where, ``rule`` what."""

    def __init__(self, field: str, rule: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.rule = rule
        self.detail = detail


def parse_time(value: object, field: str = "time") -> dt.datetime | None:
    """An ISO 8601 instant (``Z`` or an offset) as an aware UTC datetime; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BillingError(field, "format", f"{value!r} is not an ISO 8601 time") from None
    else:
        raise BillingError(field, "format", f"expected an ISO 8601 time, got {value!r}")
    if parsed.tzinfo is None:
        raise BillingError(field, "format", f"{value!r} has no time zone")
    return parsed.astimezone(dt.UTC)


def _stamp(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def tier_rank(tier: str) -> int:
    """Free 0 < Pro 1 < Team 2 < Enterprise 3."""
    return TIER_NAMES.index(tier)


_TIME_FIELDS: Final = ("current_period_start", "current_period_end", "trial_ends_at",
                       "cancel_at", "canceled_at", "ended_at", "polar_modified_at",
                       "created_at", "updated_at")


@attrs.frozen(kw_only=True)
class Subscription:
    """One user's subscription (see the module docstring)."""

    user_id: str
    tier: str = "free"
    status: str = "active"
    billing_cycle: str = "monthly"
    polar_subscription_id: str | None = None
    polar_product_id: str | None = None
    current_period_start: dt.datetime | None = None
    current_period_end: dt.datetime | None = None
    trial_ends_at: dt.datetime | None = None
    cancel_at: dt.datetime | None = None
    canceled_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    polar_modified_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    rev: int = 0

    def as_document(self) -> dict[str, Any]:
        """The ``subscriptions`` document (``_id`` = ``user_id``; times as ISO 8601 text)."""
        doc: dict[str, Any] = {"_id": self.user_id}
        for field in attrs.fields(Subscription):
            value = getattr(self, field.name)
            doc[field.name] = _stamp(value) if field.name in _TIME_FIELDS else value
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Subscription:
        values = {f.name: doc[f.name] for f in attrs.fields(cls) if f.name in doc}
        for name in _TIME_FIELDS:
            if name in values:
                values[name] = parse_time(values[name], name)
        return cls(**values)


def free_subscription(user_id: str, now: dt.datetime) -> Subscription:
    """Where every user starts: Free, active, no period."""
    return Subscription(user_id=user_id, created_at=now, updated_at=now)


def access_ends_at(sub: Subscription) -> dt.datetime | None:
    """When the paid tier stops applying on its own (None: it does not, or it is Free)."""
    if sub.tier == "free" or sub.current_period_end is None:
        return None
    if sub.status == "canceled":
        return sub.current_period_end
    if sub.status == "past_due":
        return sub.current_period_end + PAST_DUE_GRACE
    return None


def effective_tier(sub: Subscription | None, now: dt.datetime) -> str:
    """The tier ``sub`` gives at ``now`` (no subscription: Free)."""
    if sub is None or sub.tier == "free":
        return "free"
    if sub.status in ACCESS_STATUSES:
        return sub.tier
    if sub.status in ("canceled", "past_due"):
        ends = access_ends_at(sub)
        return sub.tier if ends is not None and now < ends else "free"
    return "free"


@attrs.frozen(kw_only=True)
class PolarChange:
    """What one Polar event does to a subscription: the new state (``None``: nothing, with
    ``ignored`` saying why), and for ``order.paid`` the order's amount."""

    subscription: Subscription | None
    ignored: str = ""
    order_id: str | None = None
    amount_cents: int = 0
    currency: str = "USD"


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def polar_user_id(data: Mapping[str, Any]) -> str | None:
    """The TekTree user a Polar subscription or order belongs to (None: it does not say)."""
    customer = _mapping(data.get("customer"))
    for candidate in (customer.get("external_id"), _mapping(data.get("metadata")).get("user_id"),
                      _mapping(customer.get("metadata")).get("user_id")):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _product_tier(data: Mapping[str, Any], products: Mapping[str, str]) -> tuple[str, str]:
    product = data.get("product_id") or _mapping(data.get("product")).get("id")
    if not isinstance(product, str) or not product:
        raise BillingError("data.product_id", "required", "the subscription names no product")
    tier = products.get(product)
    if tier is None:
        known = ", ".join(sorted(products)) or "none configured"
        raise BillingError("data.product_id", "unknown",
                           f"product {product!r} maps to no tier (billing.products: {known})")
    return product, tier


def _from_polar(current: Subscription, event_type: str, data: Mapping[str, Any],
                products: Mapping[str, str], now: dt.datetime) -> Subscription:
    product, tier = _product_tier(data, products)
    polar_status = str(data.get("status", "active"))
    if event_type == "subscription.revoked" or polar_status == "unpaid":
        return attrs.evolve(
            current, tier="free", status="active", polar_product_id=None,
            current_period_start=None, current_period_end=None, cancel_at=None,
            canceled_at=parse_time(data.get("canceled_at"), "data.canceled_at") or now,
            ended_at=parse_time(data.get("ended_at"), "data.ended_at") or now,
            polar_subscription_id=str(data.get("id") or current.polar_subscription_id))
    if event_type == "subscription.past_due":
        polar_status = "past_due"
    status = _POLAR_STATUS.get(polar_status)
    period_end = parse_time(data.get("current_period_end"), "data.current_period_end")
    cancel_at_end = bool(data.get("cancel_at_period_end"))
    if event_type == "subscription.canceled" or (cancel_at_end and status == "active"):
        status = "canceled"
    if event_type in ("subscription.uncanceled", "subscription.active") and status == "canceled":
        status = "active"
    if status is None:  # incomplete, incomplete_expired: nothing paid yet
        return attrs.evolve(current, tier="free", status="active", polar_product_id=None,
                            polar_subscription_id=str(data.get("id") or "") or None)
    canceled = status == "canceled"
    return attrs.evolve(
        current, tier=tier, status=status, polar_product_id=product,
        polar_subscription_id=str(data.get("id") or current.polar_subscription_id or "") or None,
        billing_cycle=_CYCLES.get(str(data.get("recurring_interval")), current.billing_cycle),
        current_period_start=parse_time(data.get("current_period_start"),
                                        "data.current_period_start"),
        current_period_end=period_end,
        trial_ends_at=parse_time(data.get("trial_end"), "data.trial_end"),
        cancel_at=(parse_time(data.get("ends_at"), "data.ends_at") or period_end)
        if canceled else None,
        canceled_at=(parse_time(data.get("canceled_at"), "data.canceled_at") or now)
        if canceled else None,
        ended_at=None)


def apply_polar(current: Subscription, event_type: str, data: Mapping[str, Any],
                products: Mapping[str, str], now: dt.datetime) -> PolarChange:
    """The change Polar's ``event_type`` with payload ``data`` makes to ``current`` at
    ``now``. Raises :class:`BillingError` for a payload it cannot use."""
    if event_type not in POLAR_EVENTS:
        return PolarChange(subscription=None, ignored=f"event type {event_type!r} is not handled")
    order: dict[str, Any] = {}
    if event_type == "order.paid":
        amount = data.get("total_amount", data.get("amount", 0))
        order = {"order_id": str(data.get("id", "")),
                 "amount_cents": amount if isinstance(amount, int) else 0,
                 "currency": str(data.get("currency") or "usd").upper()}
        nested = data.get("subscription")
        if not isinstance(nested, Mapping):
            return PolarChange(subscription=None, ignored="the order carries no subscription",
                               **order)
        data, event_type = nested, "subscription.active"
    modified = parse_time(data.get("modified_at") or data.get("created_at"), "data.modified_at")
    if (modified is not None and current.polar_modified_at is not None
            and modified < current.polar_modified_at
            and data.get("id") == current.polar_subscription_id):
        return PolarChange(subscription=None, ignored="older than the last update applied",
                           **order)
    new = _from_polar(current, event_type, data, products, now)
    new = attrs.evolve(new, polar_modified_at=modified or current.polar_modified_at,
                       updated_at=now, created_at=current.created_at or now)
    return PolarChange(subscription=new, **order)
