"""Nodes in one process joined through a real Redis: routing, single activation, failover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio
from prometheus_client import generate_latest

from kit import Add, Counter, Get
from tektree import Node
from tektree.cluster import Membership
from tektree.testing import open_test_node, test_config
from tektree.testing.redis import RedisServer

FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
        "lease_renew_seconds": 0.5}


def _config(name: str, url: str) -> Any:
    return test_config(
        {"counter": Counter},
        services=[{"type": "service", "name": "cluster", "service": "cluster", "options": FAST}],
        node={"name": name},
        redis_url=url,
    )


async def _wait_members(nodes: list[Node], count: int) -> None:
    with trio.fail_after(10):
        for node in nodes:
            membership = node.system.extensions["cluster.membership"]
            assert isinstance(membership, Membership)
            while len(membership.view.members) != count:
                await membership.wait_for_change(membership.view.version)


@asynccontextmanager
async def cluster(url: str, names: list[str]) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(
                open_test_node(_config(name, url), actors={"counter": Counter})
            )
            for name in names
        ]
        await _wait_members(nodes, len(names))
        yield nodes


async def test_asks_from_any_node_reach_the_single_activation_at_its_home(
    redis_server: RedisServer,
) -> None:
    async with cluster(redis_server.url, ["n1", "n2"]) as (n1, n2):
        keys = [f"k{i}" for i in range(200)]
        with trio.fail_after(30):
            for key in keys:
                assert await n1.system.ref("counter", key).ask(Add(amount=1)) == 1
                assert await n2.system.ref("counter", key).ask(Add(amount=1)) == 2
            for key in keys:
                assert await n1.system.ref("counter", key).ask(Get()) == 2
        on1 = set(n1.system.pools["counter"].cells)
        on2 = set(n2.system.pools["counter"].cells)
        assert on1 | on2 == set(keys)
        assert not on1 & on2  # one activation per key in the whole cluster
        assert 50 < len(on1) < 150  # placement spreads them
        router = n1.system.router
        assert router is not None
        for key in keys:
            expected_home = "n1" if key in on1 else "n2"
            assert (router.remote_home(n1.system.ref("counter", key).id) or "n1") == \
                expected_home


async def test_tells_cross_nodes_and_arrive_in_order(redis_server: RedisServer) -> None:
    async with cluster(redis_server.url, ["n1", "n2"]) as (n1, n2):
        remote = next(k for k in (f"k{i}" for i in range(100))
                      if n1.system.router is not None
                      and n1.system.router.remote_home(n1.system.ref("counter", k).id) == "n2")
        ref = n1.system.ref("counter", remote)
        for _ in range(1000):
            await ref.tell(Add(amount=1))
        with trio.fail_after(20):
            assert await ref.ask(Get()) == 1000
        assert remote in n2.system.pools["counter"].cells
        metrics = generate_latest(n1.metrics).decode()
        assert "tektree_cluster_members 2.0" in metrics
        assert "tektree_cluster_redis_ready 1.0" in metrics
        forwarded = next(line for line in metrics.splitlines()
                         if line.startswith("tektree_cluster_forwarded_total"))
        assert float(forwarded.split()[1]) >= 1001  # 1,000 tells + the ask
