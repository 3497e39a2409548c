"""Load generation for the HTTP benches: an open model on a schedule, a closed loop for throughput.

An **operation** is a no-argument coroutine function (one HTTP request, or a few: a write then
the read that sees its effect); a **plan** maps request number ``i`` to ``(name, operation)``,
so a mix of operations is a plan that picks by ``i`` (:class:`WeightedMix`). An operation fails
by raising :class:`Failed` (``kind`` such as ``http 409`` or ``stale``: see :func:`expect`) or
a :class:`~bench._load_client.ClientError` (``connect``, ``closed``, ``protocol``); any other
exception is a bug in the bench and propagates.

- :func:`run_open` (open model): request ``i`` is due at ``start + i / rate``; a scheduler task
  starts each in its own task on time, however many are still in flight (up to
  ``max_in_flight``), and **latency counts from the scheduled time**, so a server that stalls
  cannot hide its worst cases: requests queued behind the stall (waiting for a connection, or
  started late) carry the wait. Bounded in count (``rate * seconds``, ``max_requests``) and in
  time: whatever was not started within ``seconds + timeout_seconds`` is counted ``unsent``.
- :func:`run_closed` (closed loop): ``workers`` tasks each send their next request as soon as
  the previous one is answered, for ``seconds``: the most the server sustains; latency counts
  from the actual send.

The latency histograms (HDR, via :class:`~bench._harness.LatencyRecorder`) hold every request
that succeeded, and every request that timed out at the time it was given up (a lower bound of
its latency, so a stall still shows in the percentiles); requests that failed otherwise are
counted by kind and not timed. A live line (:class:`~bench._harness.Progress`) shows the run.
"""

from __future__ import annotations

import itertools
import math
import random
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Final, Literal

import attrs
import trio

from bench._harness import LatencyRecorder, Progress
from bench._load_client import ClientError, Response

__all__ = [
    "PERCENTILES",
    "Failed",
    "LoadResult",
    "OpStats",
    "Operation",
    "Plan",
    "WeightedMix",
    "best",
    "expect",
    "mark",
    "percentiles_ms",
    "run_closed",
    "run_open",
]

Operation = Callable[[], Awaitable[None]]
Plan = Callable[[int], tuple[str, Operation]]
Model = Literal["open", "closed"]

#: The percentiles every report shows, with their JSON keys.
PERCENTILES: Final[tuple[tuple[str, float], ...]] = (
    ("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("p99.9", 99.9), ("max", 100.0))
#: Latency points kept per run for the plots (the histograms keep every request).
MAX_SERIES_POINTS: Final = 200_000


class Failed(Exception):
    """An operation that got a wrong answer: ``kind`` is what the report counts it as."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


def expect(response: Response, *statuses: int) -> Response:
    """``response`` if its status is one of ``statuses``, else :class:`Failed` ``http N``."""
    if response.status not in statuses:
        raise Failed(f"http {response.status}", response.body[:300].decode(errors="replace"))
    return response


def percentiles_ms(recorder: LatencyRecorder) -> dict[str, float]:
    """p50, p95, p99, p99.9 and max of ``recorder``, in milliseconds (0.0 when empty)."""
    return {key: round(recorder.percentile_us(p) / 1000, 3) for key, p in PERCENTILES}


@attrs.define
class WeightedMix:
    """A plan drawing operation names by weight, deterministically from the request number.

    ``operations`` maps a name to a factory ``(i) -> Operation``; ``weights`` to its share.
    Request ``i`` gets the name at position ``i`` of a fixed shuffled cycle of 1,000 slots laid
    out by the weights (largest remainder), so any window of 1,000 requests has the exact mix.
    """

    weights: Mapping[str, float]
    operations: Mapping[str, Callable[[int], Operation]]
    slots: int = 1000
    seed: int = 7
    _cycle: list[str] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        if set(self.weights) != set(self.operations):
            raise ValueError(f"weights name {sorted(self.weights)} but operations name "
                             f"{sorted(self.operations)}: name the same operations")
        total = sum(self.weights.values())
        if total <= 0 or any(w < 0 or not math.isfinite(w) for w in self.weights.values()):
            raise ValueError(f"weights must be finite, >= 0 and sum > 0, got {self.weights!r}")
        exact = {name: w / total * self.slots for name, w in self.weights.items()}
        counts = {name: math.floor(v) for name, v in exact.items()}
        by_remainder = sorted(exact, key=lambda n: exact[n] - counts[n], reverse=True)
        for name in by_remainder[: self.slots - sum(counts.values())]:
            counts[name] += 1
        cycle = [name for name, n in counts.items() for _ in range(n)]
        random.Random(self.seed).shuffle(cycle)
        self._cycle = cycle

    def share(self, name: str) -> float:
        """The fraction of requests that are ``name``."""
        return self._cycle.count(name) / len(self._cycle)

    def __call__(self, i: int) -> tuple[str, Operation]:
        name = self._cycle[i % len(self._cycle)]
        return name, self.operations[name](i)


@attrs.define
class OpStats:
    """One operation's outcomes: successes timed in ``latency``, failures by kind."""

    name: str
    latency: LatencyRecorder = attrs.field(factory=LatencyRecorder)
    ok: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "failed": self.failed,
                "errors": dict(sorted(self.errors.items())),
                "latency_ms": percentiles_ms(self.latency)}


@attrs.define
class Series:
    """Each timed request's start offset (s, scheduled or sent) and latency (ms), for plots."""

    names: list[str] = attrs.field(factory=list)
    op: array[int] = attrs.field(factory=lambda: array("H"))
    at_s: array[float] = attrs.field(factory=lambda: array("d"))
    latency_ms: array[float] = attrs.field(factory=lambda: array("d"))

    def add(self, name: str, at_s: float, latency_ms: float) -> None:
        if len(self.at_s) >= MAX_SERIES_POINTS:
            return
        try:
            index = self.names.index(name)
        except ValueError:
            index = len(self.names)
            self.names.append(name)
        self.op.append(index)
        self.at_s.append(at_s)
        self.latency_ms.append(latency_ms)

    def points(self, name: str) -> tuple[list[float], list[float]]:
        """(offsets, latencies) of ``name``'s requests."""
        if name not in self.names:
            return [], []
        index = self.names.index(name)
        picked = [k for k, op in enumerate(self.op) if op == index]
        return [self.at_s[k] for k in picked], [self.latency_ms[k] for k in picked]


@attrs.define
class LoadResult:
    """What one load run did: counts, rates, latencies per operation and overall, errors."""

    name: str
    model: Model
    target_rate: float | None
    connections: int
    origin: float = 0.0  # trio time of the run's t = 0 (the first scheduled send)
    seconds: float = 0.0  # from t = 0 to the last request's end
    window_seconds: float = 0.0  # the span the load was offered over (the schedule's)
    ok_in_window: int = 0  # successes that ended within the window
    scheduled: int = 0
    started: int = 0
    max_start_lag_ms: float = 0.0
    ops: dict[str, OpStats] = attrs.field(factory=dict)
    phases: dict[str, OpStats] = attrs.field(factory=dict)
    total: LatencyRecorder = attrs.field(factory=LatencyRecorder)
    series: Series = attrs.field(factory=Series)
    notes: list[str] = attrs.field(factory=list)

    def stats(self, name: str) -> OpStats:
        stats = self.ops.get(name)
        if stats is None:
            stats = self.ops[name] = OpStats(name)
        return stats

    @property
    def ok(self) -> int:
        return sum(s.ok for s in self.ops.values())

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.ops.values())

    @property
    def unsent(self) -> int:
        """Scheduled requests never started: the run's time bound passed first."""
        return self.scheduled - self.started

    @property
    def errors(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for stats in self.ops.values():
            out.update(stats.errors)
        if self.unsent:
            out["unsent"] += self.unsent
        return out

    @property
    def achieved_rate(self) -> float:
        """Successful responses a second while the load was offered: those that ended within
        the window, over the window (a server falling behind shows; the drain after it does
        not dilute the rate)."""
        return self.ok_in_window / self.window_seconds if self.window_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The run for the results' ``details`` (no per-request series)."""
        return {
            "name": self.name, "model": self.model, "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 2), "connections": self.connections,
            "seconds": round(self.seconds, 3),
            "window_seconds": round(self.window_seconds, 3), "scheduled": self.scheduled,
            "started": self.started, "ok": self.ok, "failed": self.failed,
            "unsent": self.unsent, "max_start_lag_ms": round(self.max_start_lag_ms, 3),
            "errors": dict(sorted(self.errors.items())),
            "latency_ms": percentiles_ms(self.total),
            "operations": [s.to_json() for s in self.ops.values()],
            "phases": [s.to_json() for s in self.phases.values()],
            "notes": list(self.notes),
        }


_current: ContextVar[tuple[LoadResult, str, float]] = ContextVar("bench_load_current")


def mark(phase: str) -> None:
    """Time the running operation so far as ``phase`` (from the same start as the operation).

    For an operation of several steps (a write, then the read that sees it): ``mark("POST
    answered")`` after the first records how long the request took to get that far, as the
    phase ``"<operation>: POST answered"`` of the run. Only phases reached are recorded.
    """
    result, name, t0 = _current.get()
    key = f"{name}: {phase}"
    stats = result.phases.get(key)
    if stats is None:
        stats = result.phases[key] = OpStats(key)
    stats.ok += 1
    stats.latency.record_us((trio.current_time() - t0) * 1e6)


async def _attempt(result: LoadResult, name: str, operation: Operation, *, origin: float,
                   t0: float, deadline: float) -> None:
    """Run one operation until ``deadline``; record it against ``t0`` (its start time)."""
    stats = result.stats(name)
    kind: str | None = None
    token = _current.set((result, name, t0))
    try:
        with trio.move_on_at(deadline) as scope:
            try:
                await operation()
            except (Failed, ClientError) as exc:
                kind = exc.kind
    finally:
        _current.reset(token)
    end = trio.current_time()
    if scope.cancelled_caught:
        stats.errors["timeout"] += 1
    elif kind is not None:
        stats.errors[kind] += 1
        return
    else:
        stats.ok += 1
        if end <= origin + result.window_seconds:
            result.ok_in_window += 1
    latency_us = (end - t0) * 1e6
    stats.latency.record_us(latency_us)
    result.total.record_us(latency_us)
    result.series.add(name, t0 - origin, latency_us / 1000)


async def _report(result: LoadResult, progress: Progress | None, interval: float,
                  in_flight: Callable[[], int], headline: str) -> None:
    if progress is None:
        return
    progress.step(f"{result.name}: {headline}")
    origin = trio.current_time()
    while True:
        await trio.sleep(interval)
        elapsed = trio.current_time() - origin
        target = f" of {result.target_rate:,.0f}/s offered" if result.target_rate else ""
        rate = result.ok / elapsed if elapsed > 0 else 0.0
        progress.step(
            f"{result.name}: {result.ok + result.failed:,}/{result.scheduled or '?'} done, "
            f"{rate:,.0f}/s{target}, p99 {result.total.percentile_us(99) / 1000:,.1f} ms, "
            f"errors {result.failed}, in flight {in_flight()}")


async def run_open(
    plan: Plan,
    *,
    name: str,
    rate: float,
    seconds: float,
    max_requests: int | None = None,
    timeout_seconds: float = 10.0,
    max_in_flight: int = 10_000,
    connections: int = 0,
    progress: Progress | None = None,
    progress_seconds: float = 1.0,
) -> LoadResult:
    """Offer ``rate`` requests a second for ``seconds`` (open model; see the module).

    ``connections`` is only recorded (the pool the operations use bounds them). Every request
    ends by ``timeout_seconds`` after its scheduled time; the schedule itself stops after
    ``seconds + timeout_seconds`` whatever is left (``unsent``).
    """
    if rate <= 0 or seconds <= 0:
        raise ValueError(f"rate and seconds must be > 0, got rate={rate!r}, seconds={seconds!r}")
    total = math.floor(rate * seconds)
    if max_requests is not None:
        total = min(total, max_requests)
    result = LoadResult(name=name, model="open", target_rate=rate, connections=connections,
                        scheduled=total, window_seconds=total / rate)
    room = trio.Semaphore(max_in_flight)
    in_flight = 0

    async def one(op_name: str, operation: Operation, scheduled: float) -> None:
        nonlocal in_flight
        try:
            await _attempt(result, op_name, operation, origin=start, t0=scheduled,
                           deadline=scheduled + timeout_seconds)
        finally:
            in_flight -= 1
            room.release()

    start = result.origin = trio.current_time() + 0.01
    stop_at = start + seconds + timeout_seconds
    async with trio.open_nursery() as outer:
        outer.start_soon(_report, result, progress, progress_seconds, lambda: in_flight,
                         f"{total:,} requests at {rate:,g}/s offered (open model)")
        async with trio.open_nursery() as nursery:
            for i in range(total):
                scheduled = start + i / rate
                await trio.sleep_until(scheduled)
                await room.acquire()
                now = trio.current_time()
                if now >= stop_at:
                    room.release()
                    break
                result.max_start_lag_ms = max(result.max_start_lag_ms, (now - scheduled) * 1e3)
                op_name, operation = plan(i)
                result.started += 1
                in_flight += 1
                nursery.start_soon(one, op_name, operation, scheduled)
        result.seconds = trio.current_time() - start
        outer.cancel_scope.cancel()
    return result


async def run_closed(
    plan: Plan,
    *,
    name: str,
    workers: int,
    seconds: float,
    max_requests: int = 10_000_000,
    timeout_seconds: float = 10.0,
    progress: Progress | None = None,
    progress_seconds: float = 1.0,
) -> LoadResult:
    """``workers`` tasks each sending back to back for ``seconds`` (at most ``max_requests``
    in all); the rate is the most the server sustains at that concurrency."""
    if workers < 1 or seconds <= 0:
        raise ValueError(f"need workers >= 1 and seconds > 0, got {workers!r}, {seconds!r}")
    result = LoadResult(name=name, model="closed", target_rate=None, connections=workers,
                        window_seconds=seconds)
    numbers = itertools.count()
    start = result.origin = trio.current_time()
    stop_at = start + seconds

    async def worker() -> None:
        while trio.current_time() < stop_at:
            i = next(numbers)
            if i >= max_requests:
                return
            op_name, operation = plan(i)
            result.started += 1
            result.scheduled += 1
            t0 = trio.current_time()
            await _attempt(result, op_name, operation, origin=start, t0=t0,
                           deadline=t0 + timeout_seconds)

    async with trio.open_nursery() as outer:
        outer.start_soon(_report, result, progress, progress_seconds,
                         lambda: result.started - result.ok - result.failed,
                         f"{workers} connections back to back for {seconds:g} s (closed loop)")
        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker)
        result.seconds = trio.current_time() - start
        if result.started >= max_requests:  # ran out of requests before the time was up
            result.window_seconds = min(seconds, result.seconds)
        outer.cancel_scope.cancel()
    return result


def best(results: Sequence[LoadResult]) -> LoadResult:
    """The run with the highest achieved rate (the most repeatable throughput figure)."""
    if not results:
        raise ValueError("best() of no runs")
    return max(results, key=lambda r: r.achieved_rate)
