"""End to end: real Hypercorn on a free loopback port, a real HTTP client (httpx on trio), the
relay service on; in cluster mode, two nodes sharing rate limits through a real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from gwkit import API, PASSWORD, open_http, register_http

from actors.profile import notifications_topic
from gateway.problems import PROBLEM_BASE, PROBLEM_CONTENT_TYPE
from tektree.testing.redis import RedisServer

BODY = "Some detailed body text that is long enough to pass."
#: Free users get a bucket of exactly 50 that refills one token a minute: a flood that ends
#: within a minute sees exactly 50 requests pass (a 10 s refill was once too fast for a loaded
#: machine: 51 passed).
TIERS = "[free]\nrequests_per_minute = 1\nburst_multiplier = 300.9\n"


async def test_a_user_journey_over_http(tmp_path: Path) -> None:
    async with open_http(tmp_path) as (node, base), httpx.AsyncClient(base_url=base) as client:
        ann, ann_h = await register_http(client, "ann")
        # what a notifications socket would see: the profile's events, published as they land
        notes = node.system.extensions["pubsub"].subscribe(notifications_topic(ann))
        bob, bob_h = await register_http(client, "bob")
        question = (await client.post(f"{API}/questions", headers=bob_h, json={
            "title": "How do I cancel a trio task?", "body": BODY, "tags": ["trio"]})).json()
        answer = (await client.post(f"{API}/questions/{question['id']}/answers",
                                    headers=ann_h, json={"body": BODY})).json()
        accepted = await client.post(f"{API}/answers/{answer['id']}/accept", headers=bob_h)
        assert accepted.status_code == 200 and accepted.json()["is_accepted"]
        voted = await client.post(f"{API}/votes", headers=bob_h, json={
            "target_type": "answer", "target_id": answer["id"], "value": 1})
        assert voted.json()["value"] == 1

        with notes, trio.fail_after(10):
            async for event in notes:  # the relay delivers in the background
                if event["event_type"] == "gamification.xp.earned" and \
                        event["payload"]["total_xp"] == 140:
                    break
        profile = (await client.get(f"{API}/users/{ann}/gamification")).json()
        assert (profile["total_xp"], profile["current_level"]) == (140, 2)
        board = (await client.get(f"{API}/leaderboards/global")).json()
        assert [e["handle"] for e in board["items"]] == ["ann", "bob"]
        rank = (await client.get(f"{API}/leaderboards/weekly/users/{bob}")).json()
        assert rank["rank"] == 2
        login = await client.post(f"{API}/auth/login", json={"email": "ann@example.com",
                                                             "password": PASSWORD})
        assert login.status_code == 200 and login.headers["X-Correlation-ID"]
        ready = (await client.get("/readyz")).json()
        assert ready["checks"]["store"] is True


async def test_problems_over_http(tmp_path: Path) -> None:
    async with open_http(tmp_path, options={"max_body_bytes": 2048}) as (_, base), \
            httpx.AsyncClient(base_url=base) as client:
        missing = await client.get("/nowhere", headers={"X-Correlation-ID": "e2e-1"})
        assert missing.status_code == 404
        assert missing.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
        assert missing.json()["correlation_id"] == "e2e-1" == missing.headers["X-Correlation-ID"]
        big = await client.post(f"{API}/auth/login", content=b"{" + b" " * 5000 + b"}",
                                headers={"Content-Type": "application/json"})
        assert big.status_code == 413 and big.json()["type"] == PROBLEM_BASE + "payload-too-large"

        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 500

        streamed = await client.post(f"{API}/auth/login", content=chunks(),
                                     headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413  # no Content-Length: cut while reading
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "<script>" in docs.text


async def _response(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    """One HTTP/1.1 response read from ``stream`` (by its Content-Length): its status line."""
    while b"\r\n\r\n" not in buffer:
        buffer += await stream.receive_some()
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += await stream.receive_some()
    buffer[:] = rest[length:]
    return head.split(b"\r\n")[0]


@pytest.mark.parametrize("headers", [
    b"PATCH /api/v1/users/me HTTP/1.1\r\nContent-Type: application/json\r\n",  # 401
    b"POST /api/v1/auth/login HTTP/1.1\r\nContent-Type: application/json\r\n"
    b"X-Correlation-ID: bad id\r\n",  # 400
    b"POST /api/v1/auth/login HTTP/1.1\r\nContent-Type: text/plain\r\n",  # 415
])
async def test_an_early_error_does_not_stall_the_keepalive_connection(
        tmp_path: Path, headers: bytes) -> None:
    """Regression: a problem answered before the body arrived (a client sends its headers,
    then its body) left Hypercorn's connection waiting, and the next request on it hung."""
    body = b'{"bio": "late body"}'
    async with open_http(tmp_path) as (_, base):
        host, port = base.removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            buffer = bytearray()
            await stream.send_all(headers + b"Host: t\r\nContent-Length: %d\r\n\r\n"
                                  % len(body))
            await trio.sleep(0.2)  # the client is slow to send its body
            await stream.send_all(body)
            status = await _response(stream, buffer)
            assert status.split()[1] in (b"400", b"401", b"415")
            await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            with trio.fail_after(3):
                assert await _response(stream, buffer) == b"HTTP/1.1 200 "


async def _flood(clients: list[httpx.AsyncClient], headers: dict[str, str],
                 count: int) -> list[int]:
    statuses: list[int] = []

    async def one(client: httpx.AsyncClient) -> None:
        response = await client.get(f"{API}/users/me/quests", headers=headers)
        statuses.append(response.status_code)

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, clients[index % len(clients)])
    return statuses


def _client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=30,
                             limits=httpx.Limits(max_connections=50))


async def test_rate_limit_exact_under_200_concurrent_http_requests(tmp_path: Path) -> None:
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(TIERS)
    async with open_http(tmp_path, options={"tiers_file": str(tiers)}) as (_, base), \
            _client(base) as client:
        _, headers = await register_http(client, "ann")
        statuses = await _flood([client], headers, 200)
        assert (statuses.count(200), statuses.count(429)) == (50, 150)
        refused = await client.get(f"{API}/users/me/quests", headers=headers)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


@pytest.mark.slow
async def test_two_cluster_nodes_share_one_bucket_in_redis(
        tmp_path: Path, redis_server: RedisServer) -> None:
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(TIERS)
    options = {"tiers_file": str(tiers)}
    async with open_http(tmp_path / "n1", options=options, redis_url=redis_server.url,
                         name="n1", relay=False) as (n1, base1), \
            open_http(tmp_path / "n2", options=options, redis_url=redis_server.url,
                      name="n2", relay=False) as (_, base2), \
            _client(base1) as one, _client(base2) as two:
        ready = (await one.get("/readyz")).json()["checks"]
        assert ready["redis"] is True and ready["membership"] is True
        _, headers = await register_http(one, "ann")  # the same signing key on both nodes
        statuses = await _flood([one, two], headers, 200)
        assert (statuses.count(200), statuses.count(429)) == (50, 150)
        assert "redis" in n1.system.extensions
