"""Store health and metrics: cheap in-process counters, a frozen snapshot, a Prometheus view.

Counting costs a dict lookup and a ``bisect`` per operation; nothing is exported until a scrape
calls ``StoreCollector.collect``, which reads ``store.statistics()``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Final, Protocol

import attrs
import trio
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

LATENCY_BUCKETS_SECONDS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip


@attrs.frozen(kw_only=True)
class OperationStats:
    """Counts for one operation kind; ``buckets[i]`` counts latencies <= LATENCY_BUCKETS[i]
    (not cumulative), the last slot counts the rest."""

    count: int
    errors: int
    sum_seconds: float
    buckets: tuple[int, ...]


@attrs.frozen(kw_only=True)
class StoreStatistics:
    """A snapshot of a store's counters (``store.statistics()``)."""

    backend: str
    operations: Mapping[str, OperationStats]
    errors_by_kind: Mapping[str, int]
    threads_busy: int
    threads_total: int
    write_batches: int
    batched_writes: int
    largest_batch: int
    pending_writes: int


class _Op:
    __slots__ = ("buckets", "count", "errors", "sum_seconds")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.sum_seconds = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS_SECONDS) + 1)


class _Timed:
    __slots__ = ("_metrics", "_op", "_start")

    def __init__(self, metrics: StoreMetrics, op: str) -> None:
        self._metrics = metrics
        self._op = op
        self._start = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and not issubclass(exc_type, trio.Cancelled):
            self._metrics.error(self._op, exc_type.__name__)
        self._metrics.observe(self._op, time.perf_counter() - self._start)


class StoreMetrics:
    """The mutable counters a store updates; read them through ``statistics()``."""

    def __init__(self, backend: str, limiter: trio.CapacityLimiter) -> None:
        self.backend = backend
        self.limiter = limiter
        self._ops: dict[str, _Op] = {}
        self._errors: dict[str, int] = {}
        self.write_batches = 0
        self.batched_writes = 0
        self.largest_batch = 0
        self.pending_writes = 0

    def timed(self, op: str) -> _Timed:
        """``with metrics.timed("find"): ...`` counts the call, its latency and its error."""
        return _Timed(self, op)

    def observe(self, op: str, seconds: float) -> None:
        stats = self._ops.get(op)
        if stats is None:
            stats = self._ops[op] = _Op()
        stats.count += 1
        stats.sum_seconds += seconds
        stats.buckets[bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1

    def error(self, op: str, kind: str) -> None:
        stats = self._ops.get(op)
        if stats is None:
            stats = self._ops[op] = _Op()
        stats.errors += 1
        self._errors[kind] = self._errors.get(kind, 0) + 1

    def batch(self, size: int) -> None:
        self.write_batches += 1
        self.batched_writes += size
        self.largest_batch = max(self.largest_batch, size)

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            backend=self.backend,
            operations={
                name: OperationStats(
                    count=s.count,
                    errors=s.errors,
                    sum_seconds=s.sum_seconds,
                    buckets=tuple(s.buckets),
                )
                for name, s in self._ops.items()
            },
            errors_by_kind=dict(self._errors),
            threads_busy=self.limiter.borrowed_tokens,
            threads_total=int(self.limiter.total_tokens),
            write_batches=self.write_batches,
            batched_writes=self.batched_writes,
            largest_batch=self.largest_batch,
            pending_writes=self.pending_writes,
        )


class _HasStatistics(Protocol):
    def statistics(self) -> StoreStatistics: ...


class StoreCollector:
    """A ``prometheus_client`` collector reading a store's statistics at scrape time.

    Not registered anywhere: the node does ``REGISTRY.register(StoreCollector(store))``.
    """

    def __init__(self, store: _HasStatistics, *, prefix: str = "tektree_store") -> None:
        self._store = store
        self._prefix = prefix

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        stats = self._store.statistics()
        p = self._prefix
        latency = HistogramMetricFamily(
            f"{p}_operation_seconds", "Store operation latency", labels=["backend", "operation"]
        )
        errors = CounterMetricFamily(
            f"{p}_operation_errors", "Store operations that raised", labels=["backend", "operation"]
        )
        for name, op in sorted(stats.operations.items()):
            cumulative, running = [], 0
            for bound, n in zip((*LATENCY_BUCKETS_SECONDS, float("inf")), op.buckets, strict=True):
                running += n
                cumulative.append((_bound(bound), running))
            latency.add_metric([stats.backend, name], cumulative, op.sum_seconds)
            errors.add_metric([stats.backend, name], op.errors)
        by_kind = CounterMetricFamily(
            f"{p}_errors_by_kind", "Store errors by exception type", labels=["backend", "kind"]
        )
        for kind, n in sorted(stats.errors_by_kind.items()):
            by_kind.add_metric([stats.backend, kind], n)
        busy = GaugeMetricFamily(f"{p}_threads_busy", "Worker threads in use", labels=["backend"])
        busy.add_metric([stats.backend], stats.threads_busy)
        total = GaugeMetricFamily(f"{p}_threads_total", "Worker thread limit", labels=["backend"])
        total.add_metric([stats.backend], stats.threads_total)
        batches = CounterMetricFamily(
            f"{p}_write_batches", "Group-commit transactions", labels=["backend"]
        )
        batches.add_metric([stats.backend], stats.write_batches)
        batched = CounterMetricFamily(
            f"{p}_batched_writes", "Writes committed in group-commit batches", labels=["backend"]
        )
        batched.add_metric([stats.backend], stats.batched_writes)
        yield from (latency, errors, by_kind, busy, total, batches, batched)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)
