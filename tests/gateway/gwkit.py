"""Gateway test support: a real node (store, game actors, cluster service) and the real app.

``open_app`` gives the Quart test client over a node whose outbox the test relays itself
(``relay_all``: deterministic, no polling); ``open_http`` runs the gateway service on a free
loopback port (real Hypercorn) with the relay service on, for end-to-end tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
from quart_trio import QuartTrio

from actors.wiring import event_router
from gateway.app import create_app
from gateway.context import Gateway, open_gateway
from gateway.options import gateway_options
from gateway.tokens import KEY_FILE, generate_key
from tektree import Config, Node, parse_config
from tektree.persistence import EVENTS, OutboxRelay
from tektree.testing import open_test_node

#: argon2id at its cheapest: hashing is not what these tests are about.
CHEAP_HASH: Mapping[str, Any] = {"argon2_time_cost": 1, "argon2_memory_kib": 1024,
                                 "argon2_parallelism": 1}
PASSWORD = "correct horse battery"
API = "/api/v1"
TIMEOUT = 20


_KEY_PEM: list[bytes] = []


def _install_key(data_dir: Path) -> None:
    """One RSA key for the whole run (generating one per test costs ~0.1 s each)."""
    if not _KEY_PEM:
        _KEY_PEM.append(generate_key().private_pem())
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE
    if not path.exists():
        path.write_bytes(_KEY_PEM[0])
        path.chmod(0o600)


def node_config(
    tmp_path: Path,
    *,
    http: bool = False,
    relay: bool = False,
    redis_url: str = "",
    options: Mapping[str, Any] | None = None,
    name: str = "gw",
) -> Config:
    children: list[dict[str, Any]] = [
        {"type": "service", "name": "store", "service": "store"},
        {"type": "service", "name": "timers", "service": "timers"},
        # A fresh test Redis: no need to wait a lease TTL before granting leases.
        {"type": "service", "name": "cluster", "service": "cluster",
         "options": {"lease_restart_grace": False} if redis_url else {}},
        {"type": "actors", "kind": "user", "actor": "actors.profile:UserProfileActor"},
        {"type": "actors", "kind": "leaderboard", "actor": "actors.leaderboard:LeaderboardActor"},
        {"type": "actors", "kind": "room", "actor": "actors.rooms:RoomActor"},
        {"type": "actors", "kind": "subscription",
         "actor": "actors.subscriptions:SubscriptionActor"},
    ]
    if relay:
        children.append({"type": "service", "name": "gamification",
                         "service": "actors.wiring:gamification_relay_service",
                         "options": {"poll_interval_seconds": 0.02}})
    if http:
        children.append({"type": "service", "name": "gateway", "service": "gateway.service:serve",
                         "options": {**CHEAP_HASH, **(options or {})}})
    _install_key(tmp_path)
    return parse_config({
        "node": {"name": name, "data_dir": str(tmp_path), "drain_timeout_seconds": 5.0,
                 "check_serialization": True},
        "http": {"enabled": http, "host": "127.0.0.1", "port": 0},
        "redis": {"url": redis_url},
        "supervisor": {"children": children},
    }, source="<gateway test>", env={})


@attrs.define
class Harness:
    """A node, its gateway and app, and the test client; helpers for the common steps."""

    node: Node
    gateway: Gateway
    app: QuartTrio
    client: Any

    @property
    def store(self) -> Any:
        assert self.node.store is not None
        return self.node.store

    async def register(self, handle: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new user: (the user, its token pair)."""
        response = await self.client.post(f"{API}/auth/register", json={
            "email": f"{handle}@example.com", "password": PASSWORD, "handle": handle, **extra})
        body = await response.get_json()
        assert response.status_code == 201, body
        return body["user"], body["tokens"]

    async def relay_all(self) -> int:
        """Deliver every pending domain event to the actors; how many were published."""
        relay = OutboxRelay(self.store, event_router(self.node.system, timeout=5))
        with trio.fail_after(TIMEOUT):
            while await relay.relay_once():
                pass
            await self.node.system.wait_quiescent()
        return relay.published

    async def unpublished(self) -> int:
        return int(await self.store.count(EVENTS, {"published": False}))


async def register_http(client: Any, handle: str) -> tuple[str, dict[str, str]]:
    """Register over HTTP (an ``httpx.AsyncClient``): (the user id, its bearer header)."""
    response = await client.post(f"{API}/auth/register", json={
        "email": f"{handle}@example.com", "password": PASSWORD, "handle": handle})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"]["uid"], bearer(body["tokens"])


def bearer(tokens: Mapping[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def open_app(
    tmp_path: Path, *, options: Mapping[str, Any] | None = None, redis_url: str = ""
) -> AsyncIterator[Harness]:
    """The app over a real node, through Quart's test client (the relay is the test's)."""
    with trio.fail_after(TIMEOUT):
        async with open_test_node(node_config(tmp_path, redis_url=redis_url)) as node:
            gateway = await open_gateway(node, gateway_options({**CHEAP_HASH,
                                                                **(options or {})}))
            app = create_app(node, gateway)
            yield Harness(node=node, gateway=gateway, app=app, client=app.test_client())


@asynccontextmanager
async def open_http(
    tmp_path: Path, *, options: Mapping[str, Any] | None = None, redis_url: str = "",
    relay: bool = True, name: str = "gw", timeout: float = TIMEOUT,
) -> AsyncIterator[tuple[Node, str]]:
    """A node serving HTTP on a free loopback port: (the node, its base URL); the whole block
    runs within ``timeout`` seconds."""
    config = node_config(tmp_path, http=True, relay=relay, redis_url=redis_url,
                         options=options, name=name)
    with trio.fail_after(timeout):
        async with open_test_node(config) as node:
            yield node, node.bound["http"][0]
