"""The reminders node service: a :class:`ReminderService` for the node, wired to its store,
its cluster membership (which buckets this node claims) and its metrics.

See :mod:`tektree.reminders._service` for how claims, leases and buckets work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tektree._options import read_options
from tektree._wallclock import SystemWallClock, WallClock
from tektree.persistence import StoreNotRunning
from tektree.reminders._model import BUCKETS
from tektree.reminders._service import ReminderOptions, ReminderService
from tektree.reminders._table import REMINDERS_EXTENSION, Reminders

if TYPE_CHECKING:
    from tektree._node import Node
    from tektree.config import ServiceSpec

__all__ = ["ReminderCollector", "owned_buckets", "reminders_service"]

_log = structlog.get_logger("tektree.reminders")


def owned_buckets(node: str, members: Sequence[Any], role: str = "") -> frozenset[int]:
    """The buckets whose home among ``members`` (with ``role``, when given) is ``node``."""
    from tektree.cluster.placement import home

    eligible = [m for m in members if not role or role in m.roles]
    if not any(m.name == node for m in eligible):
        return frozenset()
    return frozenset(
        b for b in range(BUCKETS) if home(f"reminders/{b}", eligible).name == node
    )


class ReminderCollector(Collector):
    """Prometheus metrics of the node's reminder service, read at scrape time."""

    def __init__(self, service: ReminderService) -> None:
        self._service = service

    def collect(self) -> Iterable[Metric]:
        s = self._service.statistics()
        counters = {
            "tektree_reminders_claimed": ("Reminders claimed by this node", s.claimed),
            "tektree_reminders_fired": ("Reminder occurrences delivered", s.fired),
            "tektree_reminders_retried": ("Failed deliveries scheduled again", s.retried),
            "tektree_reminders_failed": ("Occurrences given up after max_attempts", s.failed),
            "tektree_reminders_superseded": (
                "Claims dropped before firing (cancelled, replaced, lease too short)",
                s.superseded),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily("tektree_reminders_held", "Claimed reminders waiting to fire",
                                value=s.held)
        yield GaugeMetricFamily("tektree_reminders_owned_buckets",
                                f"Buckets (of {BUCKETS}) this node claims from",
                                value=s.owned_buckets)


def _cluster_owner(node: Node, role: str) -> Callable[[], frozenset[int] | None]:
    """Buckets owned now, from the cluster membership (None in embedded mode: all)."""
    cache: dict[str, Any] = {"version": None, "owned": frozenset()}

    def owned() -> frozenset[int] | None:
        membership: Any = node.system.extensions.get("cluster.membership")
        if membership is None:
            return None if node.config.redis.embedded else frozenset()
        view = membership.view
        if cache["version"] != view.version:
            owned_now = owned_buckets(node.name, view.members, role)
            if owned_now != cache["owned"]:
                _log.info("reminder buckets owned", node=node.name, buckets=len(owned_now),
                          of=BUCKETS, members=len(view.members))
            cache["owned"] = owned_now
            cache["version"] = view.version
        result: frozenset[int] = cache["owned"]
        return result

    return owned


async def reminders_service(
    node: Node,
    spec: ServiceSpec,
    *,
    task_status: trio.TaskStatus[Any],
    clock: WallClock | None = None,
) -> None:
    """The builtin service ``"reminders"`` (see the module docstring). ``clock`` injects a
    wall clock (tests: ``functools.partial(reminders_service, clock=ManualWallClock())``)."""
    options = read_options(ReminderOptions, spec.options, where=f"service {spec.name!r}")
    store = node.store
    if store is None:
        raise StoreNotRunning(f"service {spec.name}")
    table = Reminders(store, clock=clock or SystemWallClock(), system=node.system)
    await table.ensure_indexes()
    service = ReminderService(table=table, system=node.system, node=node.name,
                              options=options, owned=_cluster_owner(node, options.role))
    table.on_registered = service.registered
    collector = ReminderCollector(service)
    node.metrics.register(collector)
    node.system.extensions[REMINDERS_EXTENSION] = table
    node.system.extensions["reminders.service"] = service
    try:
        await service.run(stopping=node.stopping, task_status=task_status)
    finally:
        for key, value in ((REMINDERS_EXTENSION, table), ("reminders.service", service)):
            if node.system.extensions.get(key) is value:
                del node.system.extensions[key]
        node.metrics.unregister(collector)
