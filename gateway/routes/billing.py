"""Billing: ``GET /subscriptions/me`` and the Polar webhook (``actors.subscriptions``).

The webhook is verified on the raw body as received (Standard Webhooks, :mod:`tektree.webhooks`)
before anything reads it as JSON: a forged, stale or future-stamped delivery is a 401
``invalid-signature``, missing or malformed headers a 400 ``invalid-webhook``; either changes
nothing. A verified delivery answers 202 with what was done (``applied`` or ``ignored``, recorded
under its ``webhook-id``); one already recorded answers 200 ``duplicate`` without effect.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from quart import request

from actors.quotas import usage_json
from actors.rules.billing import BillingError
from actors.rules.tiers import QUOTA_KINDS, quota_period, quota_resets_at
from gateway.api import Call, Reply, RouteTable
from gateway.problems import Problem
from tektree.persistence import format_timestamp
from tektree.webhooks import WebhookVerificationError, verify

__all__ = ["routes"]

routes = RouteTable("billing", "Subscriptions, quotas and the Polar webhook")

_HEADER_REASONS = frozenset({"missing_header", "bad_header"})


def _billing(call: Call) -> Any:
    billing = call.gateway.billing
    if billing is None:
        raise Problem("not-available", "billing is not configured on this server",
                      headers={"Retry-After": "3600"}, rule="feature")
    return billing


@routes.get("/subscriptions/me", summary="The signed-in user's subscription and quotas",
            responses={200: "Subscription"}, problems=(401, 503))
async def my_subscription(call: Call) -> Reply:
    """The tier in force now, the plan and its status, when the period ends (and when a
    canceled plan's access lapses), and this month's quotas: used, limit and reset time."""
    user_id = call.user.user_id
    view = await _billing(call).subscription_of(user_id)
    quotas = call.gateway.quotas
    if quotas is not None:
        usage = usage_json(await quotas.usage(user_id))
    else:  # quotas off: nothing counted, nothing limited
        now = dt.datetime.now(dt.UTC)
        usage = {kind: {"used": 0, "limit": None, "period": quota_period(now),
                        "resets_at": format_timestamp(quota_resets_at(now))}
                 for kind in QUOTA_KINDS}
    return Reply({**view, "user_id": user_id, "quotas": usage})


@routes.post("/webhooks/polar", summary="Polar webhook (Standard Webhooks signature)",
             auth="none", rate=None, responses={200: "WebhookReceipt", 202: "WebhookReceipt"},
             problems=(400, 401, 503))
async def polar_webhook(call: Call) -> Reply:
    """Polar's subscription and order events, signed per Standard Webhooks (``webhook-id``,
    ``webhook-timestamp`` within 5 minutes, ``webhook-signature``); deduplicated on
    ``webhook-id`` (a delivery seen before answers 200 ``duplicate`` and changes nothing)."""
    gateway = call.gateway
    billing = _billing(call)
    if not gateway.webhook_secret:
        raise Problem("not-available", "the Polar webhook has no secret configured "
                      "(gateway options billing.webhook_secret or "
                      "$TEKTREE_POLAR_WEBHOOK_SECRET)", rule="feature")
    raw = await request.get_data(as_text=False)
    body = raw if isinstance(raw, bytes) else raw.encode()
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        delivery = verify(gateway.webhook_secret, headers, body,
                          now=gateway.wall_clock(),
                          tolerance_seconds=gateway.options.billing.webhook_tolerance_seconds)
    except WebhookVerificationError as exc:
        slug = "invalid-webhook" if exc.reason in _HEADER_REASONS else "invalid-signature"
        raise Problem(slug, exc.detail, rule=exc.reason) from None
    try:
        outcome = await billing.polar_webhook(delivery.webhook_id, body)
    except BillingError as exc:
        raise Problem("invalid-webhook", f"{exc.field}: {exc.detail}", field=exc.field,
                      rule=exc.rule) from None
    receipt = {"webhook_id": delivery.webhook_id, "outcome": outcome["outcome"]}
    if outcome.get("reason"):
        receipt["reason"] = outcome["reason"]
    return Reply(receipt, status=200 if outcome["outcome"] == "duplicate" else 202)
