"""Nodes in one process joined through a real Redis: routing, single activation, failover."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
from prometheus_client import generate_latest

from kit import Add, Counter, Get
from tektree import Actor, ActorFailed, Node, handler, message
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


@message("test.cluster.where")
class Where:
    """Ask: the name of the task that handles this message."""


@message("test.cluster.boom")
class Boom:
    """Ask: the handler raises."""


class Probe(Actor):
    activations: int = 0

    async def on_activate(self) -> None:
        Probe.activations += 1

    @handler
    def where(self, msg: Where) -> str:
        return trio.lowlevel.current_task().name

    @handler
    def boom(self, msg: Boom) -> None:
        raise ValueError("boom")


async def test_an_ask_for_an_idle_remote_activation_is_handled_by_the_inbox_reader(
    redis_server: RedisServer,
) -> None:
    def config(name: str) -> Any:
        return test_config(
            {"probe": Probe},
            services=[{"type": "service", "name": "cluster", "service": "cluster",
                       "options": FAST}],
            node={"name": name}, redis_url=redis_server.url,
        )

    async with AsyncExitStack() as stack:
        n1, n2 = [await stack.enter_async_context(open_test_node(config(name),
                                                                 actors={"probe": Probe}))
                  for name in ("n1", "n2")]
        await _wait_members([n1, n2], 2)
        router = n1.system.router
        assert router is not None
        key = next(k for k in (f"p{i}" for i in range(100))
                   if router.remote_home(n1.system.ref("probe", k).id) == "n2")
        ref = n1.system.ref("probe", key)
        with trio.fail_after(20):
            first = await ref.ask(Where())  # activates it: the pool's worker handles it
            assert "_receive_loop" not in first
            # Active and idle now: handled where it arrived, without waking the pool's task.
            assert "_receive_loop" in await ref.ask(Where())
            with pytest.raises(ActorFailed, match="boom"):
                await ref.ask(Boom())  # a crash there is the pool's as ever: restarted
            assert Probe.activations == 1
            assert await ref.ask(Where())  # served again, by a fresh activation
            assert Probe.activations == 2
        assert n2.system.pools["probe"].statistics().handled >= 4


async def test_remote_tells_beyond_the_transport_bound_wait_for_room_not_fail(
    redis_server: RedisServer,
) -> None:
    """A tell loop faster than Redis fills the transport's buffer: the tell waits for room
    (backpressure, as a full mailbox makes a local tell wait) instead of raising
    TransportBackpressure, and every tell arrives once, in order."""
    async with cluster(redis_server.url, ["n1", "n2"]) as (n1, _n2):
        router = n1.system.router
        assert router is not None
        remote = next(k for k in (f"k{i}" for i in range(100))
                      if router.remote_home(n1.system.ref("counter", k).id) == "n2")
        sink = router.sink  # type: ignore[attr-defined]
        sink.max_buffered_frames = 4  # tiny: the loop below outruns it at once
        ref = n1.system.ref("counter", remote)
        waited = 0
        with trio.fail_after(30):
            for _ in range(2_000):
                waited += router.full()
                await ref.tell(Add(amount=1))
            assert await ref.ask(Get()) == 2_000
        assert waited > 0  # the bound was hit, and the tells waited through it
