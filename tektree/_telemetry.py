"""Logs and metrics that cost nothing on the hot path.

Counters are plain integers on the pools; handler latency goes into :class:`LatencyHistogram`
(a bisect into fixed buckets, ~0.1 µs); a Prometheus collector reads them at scrape time. Log
lines are structlog JSON carrying the node, the actor being run and the correlation id, taken
from context variables the runtime sets once per turn batch, not per message.
"""

from __future__ import annotations

import bisect
import contextvars
import logging
import sys
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tektree._context import ActorContext
    from tektree._system import ActorSystem

#: The activation whose turn is running in this task (set per turn batch).
current_cell: contextvars.ContextVar[ActorContext | None] = contextvars.ContextVar(
    "tektree_current_cell", default=None
)
#: The correlation id of the request being served outside actors (set by the gateway).
correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tektree_correlation_id", default=None
)

#: The node whose task this is (set by ``Node.serve``; tasks inherit it when spawned).
node_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tektree_node_name", default=None
)

_node_name = "-"  # the process default, from configure_logging

LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)


class LatencyHistogram:
    """Cumulative-at-scrape histogram with fixed upper bounds (seconds)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_SECONDS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        """Prometheus-style cumulative buckets, ending with ``+Inf``."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(bound), float(running)))
        out.append(("+Inf", float(running + self.counts[-1])))
        return out


def _add_runtime_context(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    cell = current_cell.get()
    if cell is not None:
        event.setdefault("node", cell.pool.system.node_name)
        event.setdefault("actor", str(cell.id))
        env = cell.current
        if env is not None and env.correlation_id is not None:
            event.setdefault("correlation_id", env.correlation_id)
    else:
        event.setdefault("node", node_name.get() or _node_name)
        corr = correlation_id.get()
        if corr is not None:
            event.setdefault("correlation_id", corr)
    return event


def runtime_processors() -> list[Any]:
    """The processors every TekTree log line goes through before rendering."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_runtime_context,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]


def configure_logging(*, level: str = "info", fmt: str = "json", node: str = "-") -> None:
    """Configure structlog for this process: JSON (or console) lines on stderr."""
    global _node_name
    _node_name = node
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*runtime_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


@contextmanager
def capture_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Capture log entries as dicts (with node, actor and correlation id) instead of printing."""
    captured: list[MutableMapping[str, Any]] = []

    def capture(logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        captured.append(dict(event))
        raise structlog.DropEvent

    old = structlog.get_config()
    structlog.configure(
        processors=[*runtime_processors(), capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        cache_logger_on_first_use=False,
    )
    try:
        yield captured
    finally:
        structlog.configure(**old)


class RuntimeCollector(Collector):
    """Prometheus metrics of one actor system, read from its pools at scrape time."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system

    def collect(self) -> Iterable[Metric]:
        pools = list(self._system.pools.values())
        handled = CounterMetricFamily(
            "tektree_messages_handled", "Messages handled by actors", labels=["kind"])
        failures = CounterMetricFamily(
            "tektree_actor_failures", "Handler and hook failures", labels=["kind"])
        restarts = CounterMetricFamily(
            "tektree_actor_restarts", "Activation restarts after a crash", labels=["kind"])
        activated = CounterMetricFamily(
            "tektree_activations", "Activations started", labels=["kind"])
        passivated = CounterMetricFamily(
            "tektree_passivations", "Activations passivated", labels=["kind"])
        dead = CounterMetricFamily(
            "tektree_dead_letters", "Messages that could not be delivered", labels=["kind"])
        active = GaugeMetricFamily(
            "tektree_active_activations", "Activations in memory", labels=["kind"])
        depth = GaugeMetricFamily(
            "tektree_mailbox_depth", "Messages waiting in mailboxes", labels=["kind"])
        latency = HistogramMetricFamily(
            "tektree_handler_seconds", "Handler latency", labels=["kind"])
        for pool in pools:
            k = [pool.kind]
            handled.add_metric(k, pool.handled)
            failures.add_metric(k, pool.failures)
            restarts.add_metric(k, pool.restarts_total)
            activated.add_metric(k, pool.activations)
            passivated.add_metric(k, pool.passivations)
            dead.add_metric(k, pool.dead_letters)
            active.add_metric(k, len(pool.cells))
            depth.add_metric(k, pool.queued)
            latency.add_metric(k, pool.latency.buckets(), pool.latency.total)
        supervisor_restarts = CounterMetricFamily(
            "tektree_supervisor_restarts", "Child restarts by supervisors", labels=["supervisor"])
        for name, count in self._system.supervisor_restarts.items():
            supervisor_restarts.add_metric([name], count)
        yield from (handled, failures, restarts, activated, passivated, dead, active, depth,
                    latency, supervisor_restarts)
