"""The subscription rules (``actors.rules.billing``): access at a moment, Polar events mapped."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from billing_kit import PRODUCTS, START, polar_subscription

from actors.rules.billing import (
    PAST_DUE_GRACE,
    BillingError,
    Subscription,
    access_ends_at,
    apply_polar,
    effective_tier,
    free_subscription,
    parse_time,
    polar_user_id,
)

END = START + dt.timedelta(days=30)
DAY = dt.timedelta(days=1)


def _apply(current: Subscription, event_type: str, data: dict[str, object],
           now: dt.datetime = START) -> Subscription:
    change = apply_polar(current, event_type, data, PRODUCTS, now)
    assert change.subscription is not None, change.ignored
    return change.subscription


def test_every_status_and_moment() -> None:
    pro = Subscription(user_id="u", tier="pro", status="active", current_period_end=END)
    assert effective_tier(None, START) == "free"
    assert effective_tier(free_subscription("u", START), START) == "free"
    assert effective_tier(pro, END + 365 * DAY) == "pro"  # active: Polar renews or revokes
    trial = attrs.evolve(pro, status="trialing")
    assert effective_tier(trial, START) == "pro"
    canceled = attrs.evolve(pro, status="canceled")
    assert access_ends_at(canceled) == END
    assert effective_tier(canceled, END - dt.timedelta(seconds=1)) == "pro"
    assert effective_tier(canceled, END) == "free"
    past_due = attrs.evolve(pro, status="past_due")
    assert access_ends_at(past_due) == END + PAST_DUE_GRACE
    assert effective_tier(past_due, END + PAST_DUE_GRACE - DAY) == "pro"
    assert effective_tier(past_due, END + PAST_DUE_GRACE) == "free"
    assert effective_tier(attrs.evolve(pro, status="incomplete"), START) == "free"
    assert access_ends_at(pro) is None and access_ends_at(free_subscription("u", START)) is None


def test_the_document_round_trips() -> None:
    sub = _apply(free_subscription("u", START), "subscription.active",
                 polar_subscription("u"))
    doc = sub.as_document()
    assert doc["_id"] == "u" and doc["current_period_end"] == "2026-02-09T12:00:00.000000Z"
    assert Subscription.from_document(doc) == sub


def test_upgrade_cancel_uncancel_past_due_revoke() -> None:
    free = free_subscription("u", START)
    created = _apply(free, "subscription.created", polar_subscription("u"))
    assert (created.tier, created.status, created.current_period_end) == ("pro", "active", END)
    assert created.polar_subscription_id == "sub_polar_1" and created.billing_cycle == "monthly"
    canceled = _apply(created, "subscription.canceled",
                      polar_subscription("u", cancel_at_period_end=True))
    assert (canceled.status, canceled.cancel_at, canceled.canceled_at) == (
        "canceled", END, START)
    back = _apply(canceled, "subscription.uncanceled", polar_subscription("u"))
    assert (back.status, back.cancel_at, back.canceled_at) == ("active", None, None)
    late = _apply(back, "subscription.past_due", polar_subscription("u"))
    assert late.status == "past_due"
    revoked = _apply(late, "subscription.revoked",
                     polar_subscription("u", status="canceled"), now=START + DAY)
    assert (revoked.tier, revoked.status, revoked.ended_at) == ("free", "active", START + DAY)
    assert effective_tier(revoked, START + DAY) == "free"


def test_updated_is_read_from_the_subscription_itself() -> None:
    free = free_subscription("u", START)
    team = _apply(free, "subscription.updated", polar_subscription("u", product="prod_team"))
    assert team.tier == "team"
    ending = _apply(team, "subscription.updated",
                    polar_subscription("u", product="prod_team", cancel_at_period_end=True))
    assert ending.status == "canceled"
    unpaid = _apply(team, "subscription.updated", polar_subscription("u", status="unpaid"))
    assert unpaid.tier == "free"
    incomplete = _apply(free, "subscription.created",
                        polar_subscription("u", status="incomplete"))
    assert effective_tier(incomplete, START) == "free"


def test_an_older_update_changes_nothing() -> None:
    later = START + DAY
    current = _apply(free_subscription("u", START), "subscription.updated",
                     polar_subscription("u", product="prod_team", modified=later))
    change = apply_polar(current, "subscription.updated",
                         polar_subscription("u", modified=START), PRODUCTS, later)
    assert change.subscription is None and "older" in change.ignored


def test_orders_pay_invoices_and_renew() -> None:
    free = free_subscription("u", START)
    order = {"id": "ord_1", "total_amount": 1900, "currency": "eur",
             "customer": {"external_id": "u"}}
    bare = apply_polar(free, "order.paid", order, PRODUCTS, START)
    assert bare.subscription is None and (bare.order_id, bare.amount_cents, bare.currency) == (
        "ord_1", 1900, "EUR")
    renewed = apply_polar(free, "order.paid", {**order, "subscription": polar_subscription("u")},
                          PRODUCTS, START)
    assert renewed.subscription is not None and renewed.subscription.tier == "pro"


def test_payloads_the_rules_cannot_use_say_why() -> None:
    free = free_subscription("u", START)
    with pytest.raises(BillingError) as info:
        apply_polar(free, "subscription.active", polar_subscription("u", product="prod_x"),
                    PRODUCTS, START)
    assert info.value.rule == "unknown" and "prod_x" in str(info.value)
    with pytest.raises(BillingError):
        apply_polar(free, "subscription.active", {**polar_subscription("u"),
                                                  "current_period_end": "soon"}, PRODUCTS, START)
    assert apply_polar(free, "checkout.created", {}, PRODUCTS, START).ignored
    assert polar_user_id({"customer": {"external_id": None}, "metadata": {"user_id": "m"}}) == "m"
    assert polar_user_id({}) is None
    assert parse_time("2026-01-10T12:00:00Z") == START
    with pytest.raises(BillingError):
        parse_time("2026-01-10T12:00:00")  # no zone
