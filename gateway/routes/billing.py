"""Billing: ``GET /subscriptions/me`` and the Polar webhook.

The billing branch (``actors/subscriptions.py``: ``effective_tier``, Polar webhooks with
Standard Webhooks signatures, quotas) is not on main yet: these routes answer a clear 503
``not-available`` until it lands, and are then served from it in this module.
"""

from __future__ import annotations

from gateway.api import Call, Reply, RouteTable
from gateway.problems import Problem

__all__ = ["routes"]

routes = RouteTable("billing", "Subscriptions and the Polar webhook")


def _not_available(what: str) -> Problem:
    return Problem("not-available", f"{what} is not available on this server yet (billing is "
                   "not installed)", headers={"Retry-After": "3600"}, rule="feature")


@routes.get("/subscriptions/me", summary="The signed-in user's subscription",
            responses={}, problems=(401, 503))
async def my_subscription(call: Call) -> Reply:
    """The user's tier, subscription status and quotas."""
    raise _not_available("GET /api/v1/subscriptions/me")


@routes.post("/webhooks/polar", summary="Polar webhook", auth="none", rate=None,
             responses={}, problems=(503,))
async def polar_webhook(call: Call) -> Reply:
    """Polar's subscription events (Standard Webhooks signature, deduplicated by id)."""
    raise _not_available("POST /api/v1/webhooks/polar")
