"""Billing end to end: real Hypercorn on a free loopback port, httpx posting the webhook's raw
bytes, 40 concurrent posts against a quota, the relay service on."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import trio
from billing_kit import PRODUCTS, SECRET, polar_subscription
from gwkit import API, open_http, register_http

from gateway.problems import PROBLEM_BASE
from tektree.webhooks import signed_headers

TIERS = "[free.quotas]\nquestions = 3\n[pro.quotas]\nquestions = 5\n"
BODY = "Some detailed body text that is long enough to pass."


def _signed(event_type: str, data: dict[str, Any], webhook_id: str,
            secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"type": event_type, "data": data}, separators=(",", ":")).encode()
    stamp = int(dt.datetime.now(dt.UTC).timestamp())
    return {**signed_headers(secret, webhook_id, stamp, body),
            "Content-Type": "application/json"}, body


async def _flood(client: httpx.AsyncClient, headers: dict[str, str], n: int,
                 label: str) -> list[tuple[int, str]]:
    results: list[tuple[int, str]] = []

    async def one(i: int) -> None:
        response = await client.post(f"{API}/questions", headers=headers, json={
            "title": f"{label} question number {i}", "body": BODY})
        results.append((response.status_code, response.json().get("type", "")))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)
    return results


async def test_quotas_and_the_webhook_over_real_http(tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(TIERS)
    options = {"tiers_file": str(tiers), "rate_limits": False,
               "billing": {"webhook_secret": SECRET, "products": PRODUCTS}}
    async with open_http(tmp_path, options=options) as (_, base), \
            httpx.AsyncClient(base_url=base, timeout=30,
                              limits=httpx.Limits(max_connections=40)) as client:
        uid, auth = await register_http(client, "ann")
        results = await _flood(client, auth, 40, "Free")
        quota = PROBLEM_BASE + "quota-exceeded"
        assert sorted(results).count((201, "")) == 3
        assert [r for r in results if r[0] != 201] == [(429, quota)] * 37

        headers, body = _signed("subscription.active", polar_subscription(
            uid, start=dt.datetime.now(dt.UTC)), "msg_e2e")
        forged, _ = _signed("subscription.active", {}, "msg_e2e", secret="whsec_Zm9yZ2Vk")
        refused = await client.post(f"{API}/webhooks/polar", content=body, headers=forged)
        assert refused.status_code == 401
        assert refused.json()["type"] == PROBLEM_BASE + "invalid-signature"
        accepted = await client.post(f"{API}/webhooks/polar", content=body, headers=headers)
        assert accepted.status_code == 202 and accepted.json()["outcome"] == "applied"
        again = await client.post(f"{API}/webhooks/polar", content=body, headers=headers)
        assert again.status_code == 200 and again.json()["outcome"] == "duplicate"

        me = (await client.get(f"{API}/subscriptions/me", headers=auth)).json()
        assert (me["tier"], me["quotas"]["questions"]["limit"],
                me["quotas"]["questions"]["used"]) == ("pro", 5, 3)
        results = await _flood(client, auth, 10, "Pro")
        assert sorted(results).count((201, "")) == 2
