"""Billing across two real ``tektree node`` processes on one Redis: one Polar delivery posted to
both nodes at once applies once, a forged one changes nothing, the tier applies on both nodes'
next request, and a quota counted in Redis holds under posts to both nodes at once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from billing_kit import PRODUCTS, SECRET, polar_subscription
from gwkit import API, register_http
from test_ws_cluster import two_gateways

from gateway.problems import PROBLEM_BASE
from tektree.testing.redis import RedisServer
from tektree.webhooks import signed_headers

SUBSCRIPTIONS = ({"type": "actors", "kind": "subscription",
                  "actor": "actors.subscriptions:SubscriptionActor"},)
BODY = "Some detailed body text that is long enough to pass."


def _signed(data: dict[str, Any], webhook_id: str,
            secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"type": "subscription.active", "data": data},
                      separators=(",", ":")).encode()
    stamp = int(dt.datetime.now(dt.UTC).timestamp())
    return {**signed_headers(secret, webhook_id, stamp, body),
            "Content-Type": "application/json"}, body


@pytest.mark.slow
async def test_one_delivery_to_two_nodes_applies_once_and_quotas_hold_across_them(
        tmp_path: Path, redis_server: RedisServer) -> None:
    tiers = tmp_path / "tiers.toml"
    tiers.write_text("[free.quotas]\nquestions = 3\n[pro.quotas]\nquestions = 6\n")
    options = {"tiers_file": str(tiers), "rate_limits": False,
               "billing": {"webhook_secret": SECRET, "products": PRODUCTS}}
    async with two_gateways(tmp_path, redis_server.url, gateway_options=options,
                            kinds=SUBSCRIPTIONS) as (base1, base2), \
            httpx.AsyncClient(base_url=base1, timeout=20) as one, \
            httpx.AsyncClient(base_url=base2, timeout=20) as two:
        uid, auth = await register_http(one, "ann")
        clients = (one, two)

        async def flood(n: int, label: str) -> list[int]:
            statuses: list[int] = []

            async def post(i: int) -> None:
                response = await clients[i % 2].post(f"{API}/questions", headers=auth, json={
                    "title": f"{label} question number {i}", "body": BODY})
                statuses.append(response.status_code)

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for i in range(n):
                        nursery.start_soon(post, i)
            return statuses

        free = await flood(12, "Free")
        assert (free.count(201), free.count(429)) == (3, 9)

        headers, body = _signed(polar_subscription(uid, start=dt.datetime.now(dt.UTC)),
                                "msg_two_nodes")
        forged, _ = _signed({}, "msg_two_nodes", secret="whsec_Zm9yZ2Vk")
        refused = await two.post(f"{API}/webhooks/polar", content=body, headers=forged)
        assert refused.status_code == 401
        assert refused.json()["type"] == PROBLEM_BASE + "invalid-signature"
        assert (await two.get(f"{API}/subscriptions/me", headers=auth)).json()["tier"] == "free"

        outcomes: list[str] = []

        async def deliver(client: httpx.AsyncClient) -> None:
            response = await client.post(f"{API}/webhooks/polar", content=body, headers=headers)
            assert response.status_code in (200, 202), response.text
            outcomes.append(response.json()["outcome"])

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(deliver, client)
        assert sorted(outcomes) == ["applied", "duplicate"]
        for client in clients:  # the tier applies on both nodes' next request
            me = (await client.get(f"{API}/subscriptions/me", headers=auth)).json()
            assert (me["tier"], me["quotas"]["questions"]["limit"],
                    me["quotas"]["questions"]["used"]) == ("pro", 6, 3)
        pro = await flood(10, "Pro")
        assert (pro.count(201), pro.count(429)) == (3, 7)
