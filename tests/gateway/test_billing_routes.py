"""The billing routes through the real app: ``GET /subscriptions/me`` and ``POST
/webhooks/polar`` (forged, stale, future, malformed and replayed deliveries refused or ignored,
changing nothing); tier changes reaching the rate limits and the quotas at once."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from billing_kit import PRODUCTS, SECRET, polar_subscription
from gwkit import API, Harness, bearer, open_app
from test_api_auth import problem
from test_ratelimit import Clock

from actors.subscriptions import SUBSCRIPTION_CHANGES, SUBSCRIPTIONS
from gateway.context import WEBHOOK_SECRET_ENV
from tektree.persistence import EVENTS
from tektree.webhooks import signed_headers

HOOK = f"{API}/webhooks/polar"
OPTIONS = {"billing": {"webhook_secret": SECRET, "products": PRODUCTS}}
QUESTION = {"title": "How do quotas work here?", "body": "A body long enough to pass the rule."}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _delivery(event_type: str, data: dict[str, Any], webhook_id: str, *,
              stamp: float | None = None, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"type": event_type, "data": data}).encode()
    when = int(_now().timestamp() if stamp is None else stamp)
    headers = signed_headers(secret, webhook_id, when, body)
    return {**headers, "Content-Type": "application/json"}, body


async def _post_hook(h: Harness, headers: dict[str, str], body: bytes) -> Any:
    return await h.client.post(HOOK, data=body, headers=headers)


async def _me(h: Harness, tokens: dict[str, Any]) -> dict[str, Any]:
    response = await h.client.get(f"{API}/subscriptions/me", headers=bearer(tokens))
    body: dict[str, Any] = await response.get_json()
    assert response.status_code == 200, body
    return body


async def _state(h: Harness) -> tuple[int, int, list[Any]]:
    subs = await h.store.find(SUBSCRIPTIONS, limit=100)
    return (await h.store.count(SUBSCRIPTION_CHANGES), await h.store.count(EVENTS),
            sorted((d["_id"], d["tier"], d["status"], d["rev"]) for d in subs.items))


async def test_a_new_user_is_on_free_with_this_months_quotas(tmp_path: Path) -> None:
    async with open_app(tmp_path, options=OPTIONS) as h:
        ann, tokens = await h.register("ann")
        await h.relay_all()
        me = await _me(h, tokens)
        assert (me["user_id"], me["tier"], me["plan_tier"], me["status"]) == (
            ann["uid"], "free", "free", "active")
        questions = me["quotas"]["questions"]
        assert (questions["used"], questions["limit"]) == (0, 30)
        assert questions["period"] == _now().strftime("%Y-%m")
        posted = await h.client.post(f"{API}/questions", json=QUESTION, headers=bearer(tokens))
        assert posted.status_code == 201
        assert (await _me(h, tokens))["quotas"]["questions"]["used"] == 1
        await problem(await h.client.get(f"{API}/subscriptions/me"), 401, "unauthorized")


async def test_forged_stale_future_and_replayed_deliveries_change_nothing(
    tmp_path: Path
) -> None:
    async with open_app(tmp_path, options=OPTIONS) as h:
        ann, tokens = await h.register("ann")
        await h.relay_all()
        uid = ann["uid"]
        headers, body = _delivery("subscription.active", polar_subscription(
            uid, start=_now()), "msg_upgrade")
        accepted = await _post_hook(h, headers, body)
        assert accepted.status_code == 202, await accepted.get_json()
        assert await accepted.get_json() == {"webhook_id": "msg_upgrade", "outcome": "applied"}
        assert (await _me(h, tokens))["tier"] == "pro"
        before = await _state(h)

        revoke = polar_subscription(uid, start=_now())
        forged_headers, forged = _delivery("subscription.revoked", revoke, "msg_forged",
                                           secret="whsec_Zm9yZ2Vk")
        refused = await problem(await _post_hook(h, forged_headers, forged), 401,
                                "invalid-signature")
        assert refused["rule"] == "bad_signature"
        real_headers, real = _delivery("subscription.revoked", revoke, "msg_tampered")
        tampered = real.replace(b"revoked", b"canceled")
        await problem(await _post_hook(h, real_headers, tampered), 401, "invalid-signature")
        stale_headers, stale = _delivery("subscription.revoked", revoke, "msg_stale",
                                         stamp=_now().timestamp() - 301)
        assert (await problem(await _post_hook(h, stale_headers, stale), 401,
                              "invalid-signature"))["rule"] == "stale"
        future_headers, future = _delivery("subscription.revoked", revoke, "msg_future",
                                           stamp=_now().timestamp() + 301)
        assert (await problem(await _post_hook(h, future_headers, future), 401,
                              "invalid-signature"))["rule"] == "future"
        bare = {k: v for k, v in real_headers.items() if k != "webhook-signature"}
        missing = await problem(await _post_hook(h, bare, real), 400, "invalid-webhook")
        assert "webhook-signature" in missing["detail"]
        # the accepted delivery again: answered, without effect
        replayed = await _post_hook(h, headers, body)
        assert replayed.status_code == 200
        assert (await replayed.get_json())["outcome"] == "duplicate"
        # signed but not a Polar event
        junk_headers = {**signed_headers(SECRET, "msg_junk", int(_now().timestamp()), b"[1]"),
                        "Content-Type": "application/json"}
        await problem(await _post_hook(h, junk_headers, b"[1]"), 400, "invalid-webhook")
        assert await _state(h) == before
        assert (await _me(h, tokens))["tier"] == "pro"


async def test_without_a_secret_the_webhook_is_not_available(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.delenv(WEBHOOK_SECRET_ENV, raising=False)
    async with open_app(tmp_path) as h:
        headers, body = _delivery("subscription.active", {}, "msg_1")
        await problem(await _post_hook(h, headers, body), 503, "not-available")
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, SECRET)
    async with open_app(tmp_path / "env", options={"billing": {"products": PRODUCTS}}) as h:
        ann, _ = await h.register("ann")
        headers, body = _delivery("subscription.active", polar_subscription(
            ann["uid"], start=_now()), "msg_2")
        assert (await _post_hook(h, headers, body)).status_code == 202


async def test_upgrade_cancel_period_end_and_revoke_reach_the_rate_limits(
    tmp_path: Path
) -> None:
    async with open_app(tmp_path, options=OPTIONS) as h:
        h.gateway.limiter.clock = Clock()  # type: ignore[attr-defined]
        ann, tokens = await h.register("ann")
        await h.relay_all()
        uid, start = ann["uid"], _now()

        async def limit() -> str:
            response = await h.client.get(f"{API}/achievements", headers=bearer(tokens))
            assert response.status_code == 200
            return str(response.headers["RateLimit-Limit"])

        free, pro = str(math.floor(100 / 60 * 11)), str(math.floor(1000 / 60 * 11))
        assert await limit() == free
        for n, (event_type, extra) in enumerate([("subscription.created", {}),
                                                 ("subscription.canceled",
                                                  {"cancel_at_period_end": True})]):
            headers, body = _delivery(event_type, polar_subscription(
                uid, start=start, **extra), f"msg_{n}")
            assert (await _post_hook(h, headers, body)).status_code == 202
            assert await limit() == pro
        me = await _me(h, tokens)
        assert (me["tier"], me["status"]) == ("pro", "canceled")
        assert me["access_until"] == me["current_period_end"]
        # the period ends: the next request is on Free's limits
        h.gateway.tiers.now = lambda: start + dt.timedelta(days=30)  # type: ignore[attr-defined]
        assert await limit() == free
        h.gateway.tiers.now = _now  # type: ignore[attr-defined]
        # a new plan, then revoked: Free at once
        headers, body = _delivery("subscription.active", polar_subscription(
            uid, start=start, product="prod_team", sub_id="sub_polar_2"), "msg_team")
        assert (await _post_hook(h, headers, body)).status_code == 202
        assert await limit() == str(math.floor(5000 / 60 * 11))
        headers, body = _delivery("subscription.revoked", polar_subscription(
            uid, start=start, product="prod_team", sub_id="sub_polar_2"), "msg_revoke")
        assert (await _post_hook(h, headers, body)).status_code == 202
        assert await limit() == free
        assert (await _me(h, tokens))["tier"] == "free"


async def test_a_quota_reached_is_a_429_naming_it(tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.toml"
    tiers.write_text("[free.quotas]\nquestions = 2\n")
    async with open_app(tmp_path, options={**OPTIONS, "tiers_file": str(tiers)}) as h:
        ann, tokens = await h.register("ann")
        await h.relay_all()
        for _ in range(2):
            posted = await h.client.post(f"{API}/questions", json=QUESTION,
                                         headers=bearer(tokens))
            assert posted.status_code == 201
        refused = await h.client.post(f"{API}/questions", json=QUESTION, headers=bearer(tokens))
        body = await problem(refused, 429, "quota-exceeded")
        assert (body["quota"], body["limit"], body["used"], body["tier"]) == (
            "questions", 2, 2, "free")
        assert body["resets_at"].endswith("-01T00:00:00.000000Z")
        assert "resets at" in body["detail"] and "2 questions a month" in body["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
        exceeded = await h.store.find(EVENTS, {"event_type": "payment.quota.exceeded"})
        assert [e["payload"]["user_id"] for e in exceeded.items] == [ann["uid"]]
        me = await _me(h, tokens)
        assert (me["quotas"]["questions"]["used"], me["quotas"]["questions"]["limit"]) == (2, 2)
