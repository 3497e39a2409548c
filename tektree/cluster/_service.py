"""The ``cluster`` node service: joins the cluster named by ``redis.url`` and routes through it.

In embedded mode (no ``redis.url``) it only reports started. Otherwise it opens the node's
Redis link, its stream transport, its lease manager and its membership, installs a
:class:`ClusterRouter` on the actor system, and then:

- on every membership change passivates the activations whose home moved (state saved, lease
  released; their mail follows them) and, for each node that died, lets exactly one survivor
  (chosen by placement on the dead node's name) claim the dead node's unacknowledged messages
  and re-route them to their new homes;
- on a lost lease stops that activation at once, without saving;
- offers topics (``system.extensions["pubsub"]``): Redis pub/sub across nodes, or in-process
  in embedded mode;
- when the node stops, leaves the membership first, so that the other nodes route to the new
  homes while this node drains, passivates (releasing its leases) and exits.

``options`` of the service in ``supervisor.toml``: ``heartbeat_seconds`` (1.0), ``ttl_seconds``
(3.0), ``lease_ttl_seconds`` (10.0), ``lease_renew_seconds`` (3.0), ``weight`` (1.0),
``roles`` (a list; the CLI's ``--role`` adds to it).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tektree._ids import ActorId
from tektree.cluster._redis import open_redis_link
from tektree.cluster._router import ClusterRouter
from tektree.cluster.leases import Lease, Leases
from tektree.cluster.membership import Membership, MembershipView
from tektree.cluster.placement import Member, home
from tektree.cluster.pubsub import LocalPubSub, RedisPubSub
from tektree.cluster.transport import Inbound, StreamTransport

if TYPE_CHECKING:
    from tektree._node import Node
    from tektree.config import ServiceSpec

__all__ = ["cluster_service"]

_log = structlog.get_logger("tektree.cluster")


class _LeaseAdapter:
    """The router's view of the lease manager: release without waiting for Redis."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self._send, self._receive = trio.open_memory_channel[Lease](math.inf)

    async def acquire(self, actor_key: str) -> Lease | None:
        return await self.leases.acquire(actor_key)

    async def holder(self, actor_key: str) -> tuple[str, int] | None:
        return await self.leases.holder(actor_key)

    def release_soon(self, actor_key: str) -> None:
        lease = self.leases.held(actor_key)
        if lease is not None:
            self._send.send_nowait(lease)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for lease in self._receive:
            try:
                await self.leases.release(lease)
            except Exception as exc:  # it expires on its own within its TTL
                _log.warning("lease release failed", actor=lease.actor, error=repr(exc))


def _option(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"cluster service option {name} must be a number > 0, got {value!r}")
    return float(value)


def _role_of(node: Node) -> Any:
    roles = {kind: pool.spec.options.get("role") for kind, pool in node.system.pools.items()}
    return lambda kind: roles.get(kind)


async def cluster_service(
    node: Node, spec: ServiceSpec, *, task_status: trio.TaskStatus[Any]
) -> None:
    config = node.config
    system = node.system
    if config.redis.embedded:
        system.extensions["pubsub"] = LocalPubSub(node=node.name)
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            system.extensions.pop("pubsub", None)
    options = spec.options
    roles = tuple(options.get("roles", ())) + tuple(node.roles)
    async with open_redis_link(config.redis.url) as link:
        router_box: list[ClusterRouter] = []

        def on_frames(batch: list[Inbound]) -> Awaitable[None] | None:
            router = router_box[0]
            for i, inbound in enumerate(batch):
                inline = router.on_frame(inbound.stream, inbound.entry_id, inbound.frame,
                                         inline=True)
                if inline is not None:  # an ask handled right here: before the next frame
                    return _on_frames_from(router, inline, batch, i + 1)
            return None  # no coroutine for a batch handled synchronously (replies, tells)

        transport = StreamTransport(link, node=node.name, on_frames=on_frames)

        def lost(lease: Lease) -> None:
            _log.warning("lease lost; stopping the activation without saving",
                         actor=lease.actor)
            system.lease_lost(ActorId.parse(lease.actor))

        leases = Leases(
            link, node=node.name, on_lost=lost,
            ttl_seconds=_option(options, "lease_ttl_seconds", 10.0),
            renew_every_seconds=_option(options, "lease_renew_seconds", 3.0),
            # A fresh (or restarted, non-persistent) Redis has forgotten every lease while
            # their old holders still run: it grants none for one lease TTL. Turn it off only
            # when Redis persists its data.
            restart_grace=bool(options.get("lease_restart_grace", True)),
        )
        adapter = _LeaseAdapter(leases)
        membership = Membership(
            link, name=node.name, roles=roles, weight=_option(options, "weight", 1.0),
            heartbeat_seconds=_option(options, "heartbeat_seconds", 1.0),
            ttl_seconds=_option(options, "ttl_seconds", 3.0),
        )
        left = False

        def members() -> tuple[int, Sequence[Member]]:
            view = membership.view
            if left:  # after leaving, this node homes nothing
                return view.version * 2 + 1, [m for m in view.members if m.name != node.name]
            return view.version * 2, view.members

        router = ClusterRouter(system, node=node.name, sink=transport, leases=adapter,
                               members=members, roles=_role_of(node))
        router_box.append(router)
        pubsub = RedisPubSub(link, node=node.name)
        async with trio.open_nursery() as nursery:
            await nursery.start(pubsub.run)
            system.extensions["pubsub"] = pubsub
            system.extensions["redis"] = link  # for actors keeping data in Redis (leaderboards)
            await nursery.start(transport.run)
            await nursery.start(leases.run)
            await nursery.start(adapter.run)
            await nursery.start(membership.run)
            system.router = router
            system.extensions["cluster.membership"] = membership
            collector = ClusterCollector(membership, transport, leases, router, link)
            node.metrics.register(collector)
            try:
                node.readiness["redis"] = link.ping
                node.readiness["membership"] = _flag(lambda: membership.ready)
                nursery.start_soon(_watch, node, membership, transport, router)
                nursery.start_soon(_publish_stats, node, membership)
                _log.info("cluster joined", node=node.name, roles=sorted(roles),
                          members=[m.name for m in membership.view.members])
                task_status.started()
                await node.stopping.wait()
                # Leave first: the others route to the new homes while this node drains.
                with trio.move_on_after(5):
                    await membership.leave()
                left = True
                system.evacuate()
                _log.info("cluster left; handing activations over", node=node.name)
                await trio.sleep_forever()  # serves routing until the node cancels it, last
            finally:
                node.metrics.unregister(collector)
                node.readiness.pop("redis", None)
                node.readiness.pop("membership", None)


async def _on_frames_from(
    router: ClusterRouter, inline: Awaitable[None], batch: list[Inbound], start: int
) -> None:
    """The rest of a batch from ``batch[start]`` on, once ``inline`` (the ask before it, handled
    in this task) is done; the asks among them are handled inline too, in order."""
    await inline
    for inbound in batch[start:]:
        more = router.on_frame(inbound.stream, inbound.entry_id, inbound.frame, inline=True)
        if more is not None:
            await more


class ClusterCollector(Collector):
    """Prometheus metrics of this node's cluster parts, read at scrape time."""

    def __init__(self, membership: Membership, transport: StreamTransport, leases: Leases,
                 router: ClusterRouter, link: Any) -> None:
        self._membership = membership
        self._transport = transport
        self._leases = leases
        self._router = router
        self._link = link

    def collect(self) -> Iterable[Metric]:
        t = self._transport.statistics()
        leases = self._leases.statistics()
        yield GaugeMetricFamily("tektree_cluster_members", "Live members in this node's view",
                                value=len(self._membership.view.members))
        yield GaugeMetricFamily("tektree_cluster_redis_ready", "1 while Redis answers",
                                value=1.0 if self._link.ready else 0.0)
        yield GaugeMetricFamily("tektree_cluster_leases_held", "Activation leases held",
                                value=leases.held)
        counters = {
            "tektree_cluster_frames_sent": ("Frames written to other nodes' inboxes", t.sent),
            "tektree_cluster_frames_received": ("Frames read from this inbox", t.received),
            "tektree_cluster_frames_acked": ("Frames acknowledged after handling", t.acked),
            "tektree_cluster_frames_claimed": ("Frames claimed from gone nodes", t.claimed),
            "tektree_cluster_malformed_frames": (
                "Malformed frames logged and skipped", self._router.malformed + t.malformed),
            "tektree_cluster_forwarded": ("Messages sent to other nodes", self._router.forwarded),
            "tektree_cluster_leases_lost": (
                "Leases lost (expired or taken)", leases.lost_stolen + leases.lost_expired),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)


def _flag(read: Any) -> Any:
    async def check() -> bool:
        return bool(read())

    return check


async def _watch(
    node: Node, membership: Membership, transport: StreamTransport, router: ClusterRouter
) -> None:
    previous: MembershipView = membership.view
    async with trio.open_nursery() as claims:
        async for view in membership.changes():
            node.system.evacuate()
            gone = set(previous.names) - set(view.names)
            previous = view
            for dead in sorted(gone):
                if view.members and home(f"claim:{dead}", view.members).name == node.name:
                    claims.start_soon(_claim, dead, membership, transport, router)


async def _claim(
    dead: str, membership: Membership, transport: StreamTransport, router: ClusterRouter
) -> None:
    """Re-route the unacknowledged messages a gone node left in its inbox.

    A node that left gracefully is still draining its own inbox, so only entries idle for
    longer than a membership TTL are taken, and the inbox is deleted once it is empty and
    the node is still gone; a node killed outright leaves its entries idle: they are taken on
    the first pass after one TTL.
    """
    ttl = membership.ttl_seconds
    total = 0
    while True:
        await trio.sleep(ttl)
        if dead in membership.view.names:
            return  # it came back: its own reader serves its inbox
        batch = await transport.claim_dead(dead, min_idle_ms=int(ttl * 1000))
        for inbound in batch:
            router.on_frame(inbound.stream, inbound.entry_id, inbound.frame)
        total += len(batch)
        await transport.flush()
        if not batch and await transport.drop_stream(dead):
            break
    if total:
        _log.info("gone node's messages re-routed", dead=dead, messages=total)


async def _publish_stats(node: Node, membership: Membership) -> None:
    while True:
        stats = node.system.statistics()
        membership.set_info({
            "actors": {kind: s.activations for kind, s in stats.items()},
            "queued": {kind: s.queued for kind, s in stats.items()},
        })
        await trio.sleep(membership.heartbeat_seconds)
