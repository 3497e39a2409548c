"""The node program of ``python -m bench cluster``: one cluster node hosting ``Sink`` actors.

Run in its own process by the bench (never ``-m``: the messages must register once, under this
module's name)::

    python -c "from bench._cluster_node import main; main()" --redis URL --name n2

It joins the cluster at ``URL``, prints ``ready <name>`` on stdout once it serves and the other
nodes it was told about (``--peers``) are in its membership view, and stops gracefully when its
stdin closes (the bench exited or is done) or on SIGTERM/SIGINT. Logs (warnings and up) go to
stderr as JSON lines.

The measuring side builds its own node from :func:`node_config` in its own process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import trio

from tektree import Actor, Node, handler, message
from tektree._telemetry import configure_logging
from tektree.cluster import Membership
from tektree.config import Config
from tektree.testing import test_config

__all__ = ["KIND", "READY", "Count", "Echo", "Hit", "Sink", "main", "node_config", "wait_members"]

KIND = "sink"
READY = "ready"

#: The cluster service's options: heartbeats frequent enough to join fast, a TTL long enough
#: that two saturated cores never declare a busy node dead mid-run, no lease restart grace
#: (the bench's Redis is private and fresh: nobody held a lease before).
CLUSTER_OPTIONS: dict[str, Any] = {
    "heartbeat_seconds": 0.25,
    "ttl_seconds": 10.0,
    "lease_restart_grace": False,
}


@message("bench.cluster.hit")
class Hit:
    """Tell: count one."""


@message("bench.cluster.count")
class Count:
    """Ask: how many ``Hit`` this activation handled."""


@message("bench.cluster.echo")
class Echo:
    """Ask: ``n`` back."""

    n: int


class Sink(Actor):
    """Trivial handlers: the bench measures the path between nodes, not the work."""

    hits: int

    async def on_activate(self) -> None:
        self.hits = 0

    @handler
    def hit(self, msg: Hit) -> None:
        self.hits += 1

    @handler
    def count(self, msg: Count) -> int:
        return self.hits

    @handler
    def echo(self, msg: Echo) -> int:
        return msg.n


def node_config(name: str, redis_url: str) -> Config:
    """A cluster node named ``name`` on ``redis_url`` with the ``sink`` pool; messages are not
    round-tripped through the codec locally (``check_serialization`` off) and the collector is
    settled once started (``gc_young_threshold``) and the thread switch interval is 1 ms
    (``switch_interval_ms``), as in the shipped ``supervisor.toml``."""
    return test_config(
        {KIND: Sink},
        services=[{"type": "service", "name": "cluster", "service": "cluster",
                   "options": CLUSTER_OPTIONS}],
        node={"name": name, "check_serialization": False, "gc_young_threshold": 10_000,
              "switch_interval_ms": 1},
        redis_url=redis_url,
    )


async def wait_members(node: Node, names: Sequence[str]) -> None:
    """Until every node of ``names`` is in ``node``'s membership view (callers bound it)."""
    membership = node.system.extensions["cluster.membership"]
    assert isinstance(membership, Membership)
    wanted = set(names)
    while not wanted <= set(membership.view.names):
        await membership.wait_for_change(membership.view.version)


async def _serve(name: str, redis_url: str, peers: Sequence[str], start_seconds: float) -> None:
    node = Node(node_config(name, redis_url), actor_classes={KIND: Sink})
    async with trio.open_nursery() as nursery:

        async def run_node(*, task_status: trio.TaskStatus[Node]) -> None:
            try:
                await node.serve(task_status=task_status, handle_signals=True)
            finally:
                nursery.cancel_scope.cancel()  # stopped by a signal: stop watching stdin

        await nursery.start(run_node)
        with trio.fail_after(start_seconds):
            await wait_members(node, [name, *peers])
        print(f"{READY} {name}", flush=True)
        stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
        while await stdin.receive_some(4096):
            pass
        node.request_stop()  # the graceful stop ends run_node, which ends the nursery


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A bench cluster node hosting Sink actors.")
    parser.add_argument("--redis", required=True, help="the cluster's Redis URL")
    parser.add_argument("--name", required=True, help="this node's name")
    parser.add_argument("--peers", nargs="*", default=[], help="nodes to wait for before ready")
    parser.add_argument("--start-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    configure_logging(level="warning", node=args.name)
    trio.run(_serve, args.name, args.redis, args.peers, args.start_seconds)
