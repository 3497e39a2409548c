"""The jobs benchmark: durable reminders and the job queue on the embedded defaults (SQLite).

Figures, each beside a baseline measured in the same run on the same kind of store:

- ``reminders_fired_throughput``: 100,000 reminders (10,000 with ``--quick``) due in the same
  minute -- a minute that has just passed, so they are all due at once: the backlog a node
  finds after an outage -- drained by the reminders service of one node (claim with a lease,
  pre-fire check, ask of the target actor, conditional delete). Baseline: a naive poll loop
  over the same store (read the due ones in pages, ask each target, delete the page in one
  unit; no claim, no lease, no retry: correct only alone). Target: >= 0.5x the naive loop.
- ``reminder_lateness_p50_ms`` / ``reminder_lateness_p99_ms``: reminders due at 1,000 per
  second for 20 s (5 s with ``--quick``), registered ahead; lateness = the time the target's
  handler ran minus the due time, in an HDR histogram. Baseline: the naive loop polling every
  second. Target: p99 <= 1,000 ms (absolute).
- ``reminders_fired_twice``: occurrences delivered more than once over all the runs above
  (each delivery is counted by its occurrence id at the target). Target: 0.
- ``jobs_throughput``: 20,000 queued no-op jobs (4,000 with ``--quick``) drained by one
  node's workers (store backend, up to 256 at once, claimed ahead). Baseline: a naive queue
  over the same store (one consumer: read queued jobs in pages of 500, run each, mark the page
  done in one unit; no claim, no lease, no retry). Target: >= 0.5x the naive queue.
- ``jobs_enqueue_throughput``: the enqueues of those jobs from 16 tasks (checked payload,
  dedupe by id), beside raw store inserts of the same documents. Target: >= 0.5x.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import attrs
import trio

from bench._harness import Deadline, Figure, LatencyRecorder, Progress, measure_rate
from bench.cluster import AbsoluteFigure
from tektree import Actor, ActorId, Node, configure_logging, handler, message
from tektree.config import parse_config
from tektree.jobs import JOBS, QUEUED, JobContext, JobQueue, JobRegistry, JobWorkers, queue_of
from tektree.persistence import DocumentStore
from tektree.reminders import (
    REMINDERS,
    Reminder,
    Reminders,
    ReminderService,
    ReminderSpec,
    parse_occurrence,
)
from tektree.testing import open_test_node

__all__ = ["DEFAULT", "QUICK", "Counts", "measure", "run"]

NAIVE_REMINDERS = "naive poll loop over the same store (no claim, no lease)"
NAIVE_JOBS = "naive one-consumer queue over the same store (no claim, no lease)"
KIND = "bench_target"


@attrs.frozen(kw_only=True)
class Counts:
    backlog: int  # reminders due in the same (past) minute, drained by the service
    naive_backlog: int  # the same, drained by the naive loop (its rate is the baseline)
    rate: float  # reminders due per second in the lateness runs
    lateness_seconds: float  # how long the service's lateness run lasts
    naive_lateness_seconds: float
    jobs: int
    naive_jobs: int
    seconds: float  # the time bound of each drain


DEFAULT = Counts(backlog=100_000, naive_backlog=100_000, rate=1000.0, lateness_seconds=20.0,
                 naive_lateness_seconds=8.0, jobs=20_000, naive_jobs=20_000, seconds=60.0)
QUICK = Counts(backlog=10_000, naive_backlog=10_000, rate=1000.0, lateness_seconds=5.0,
               naive_lateness_seconds=3.0, jobs=4_000, naive_jobs=4_000, seconds=20.0)


# --------------------------------------------------------------------------- the target


@message("bench.jobs.ping")
class Ping:
    pass


class Tally:
    """What the target saw: deliveries by occurrence id, and lateness when recording."""

    fired: ClassVar[Counter[str]] = Counter()
    lateness: ClassVar[LatencyRecorder | None] = None
    expected: ClassVar[int] = 0
    done: ClassVar[trio.Event | None] = None

    @classmethod
    def expect(cls, count: int, *, lateness: LatencyRecorder | None = None) -> trio.Event:
        cls.expected = len(cls.fired) + count
        cls.lateness = lateness
        cls.done = trio.Event()
        if len(cls.fired) >= cls.expected:
            cls.done.set()
        return cls.done

    @classmethod
    def record(cls, message_id: str) -> None:
        cls.fired[message_id] += 1
        if cls.lateness is not None:
            occurrence = parse_occurrence(message_id)
            if occurrence is not None:
                cls.lateness.record_us(max(0.0, time.time() * 1e6 - occurrence.due_ms * 1e3))
        if cls.done is not None and len(cls.fired) >= cls.expected:
            cls.done.set()


class Target(Actor):
    """Records each reminder delivery (a ``def`` handler: the inline fast path)."""

    @handler
    def ping(self, msg: Ping) -> None:
        envelope = self.ctx.envelope
        assert envelope is not None
        Tally.record(envelope.message_id)


# --------------------------------------------------------------------------- the node

BENCH_JOBS = JobRegistry()


@BENCH_JOBS.job("bench.noop", concurrency=256, max_attempts=3)
async def _noop(ctx: JobContext) -> None:
    await trio.lowlevel.checkpoint()


def _config(data_dir: str, *, reminders: dict[str, Any] | None, jobs: bool) -> Any:
    children: list[dict[str, Any]] = [
        {"type": "service", "name": "store", "service": "store"},
        {"type": "service", "name": "timers", "service": "timers"},
        {"type": "service", "name": "cluster", "service": "cluster"},
        {"type": "actors", "kind": KIND, "actor": f"{__name__}:Target"},
    ]
    if reminders is not None:
        children.append({"type": "service", "name": "reminders", "service": "reminders",
                         "options": {"stats_log_seconds": 3600.0, **reminders}})
    if jobs:
        children.append({"type": "service", "name": "jobs", "service": "jobs",
                         "options": {"registries": [f"{__name__}:BENCH_JOBS"],
                                     "max_concurrency": 256,
                                     "poll_interval_seconds": 3600.0}})
    data = {"node": {"name": "bench", "data_dir": data_dir}, "http": {"enabled": False},
            "redis": {"url": ""},
            "supervisor": {"children": children}}
    return parse_config(data, source="<bench jobs>", env={})


@asynccontextmanager
async def _node(
    *, reminders: dict[str, Any] | None = None, jobs: bool = False
) -> AsyncIterator[Node]:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as data_dir:
        config = _config(data_dir, reminders=reminders, jobs=jobs)
        async with open_test_node(config, actors={KIND: Target}) as node:
            yield node


def _store(node: Node) -> DocumentStore:
    assert node.store is not None
    return node.store


async def _register(table: Reminders, dues: list[float], prefix: str,
                    progress: Progress, chunk: int = 10_000) -> None:
    """Bulk-load the reminders (``Reminders.insert_many``: setup, not what is measured)."""
    for start in range(0, len(dues), chunk):
        await table.insert_many([
            ReminderSpec(actor=ActorId(KIND, f"{prefix}{i % 1000}"), name=f"{prefix}{i}",
                         message=Ping(), due=due)
            for i, due in enumerate(dues[start:start + chunk], start=start)])
        progress.step(f"registered {min(start + chunk, len(dues)):,}/{len(dues):,} ({prefix})")


# --------------------------------------------------------------------------- the naive loop


async def naive_poll_loop(node: Node, stop: trio.Event, *, poll_seconds: float,
                          page: int = 1000) -> None:
    """The baseline: read the due reminders, ask each target, delete them, sleep, repeat."""
    store = _store(node)
    while not stop.is_set():
        now_ms = math.floor(time.time() * 1000)
        batch = await store.find(REMINDERS, {"due_ms": {"$lte": now_ms}},
                                 sort=[("due_ms", 1)], limit=page)
        for doc in batch.items:
            reminder = Reminder.from_document(doc)
            await node.system.ref(reminder.actor).ask(reminder.message(),
                                                      message_id=reminder.occurrence_id)
        if batch.items:
            async with store.unit() as unit:
                for doc in batch.items:
                    unit.delete(REMINDERS, {"_id": doc["_id"], "version": doc["version"]})
        if len(batch.items) < page:
            with trio.move_on_after(poll_seconds):
                await stop.wait()


async def _naive(node: Node, run: Callable[[trio.Event], Any], done: trio.Event,
                 seconds: float) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, stop)
        with trio.move_on_after(seconds):
            await done.wait()
        stop.set()


# --------------------------------------------------------------------------- reminders


async def backlog_rate(counts: Counts, progress: Progress, *, naive: bool) -> float:
    """Reminders/s draining ``backlog`` reminders all due in the past minute."""
    count = counts.naive_backlog if naive else counts.backlog
    label = "naive" if naive else "service"
    # The service polls once an hour here: it claims nothing while they are registered (this
    # table is not the service's, so registering does not wake it); service.wake() starts the
    # drain, and a backlog keeps it claiming without waiting for a poll.
    async with _node(reminders=None if naive else {"poll_interval_seconds": 3600.0}) as node:
        table = Reminders(_store(node))
        await table.ensure_indexes()
        minute = time.time() - 60.0
        dues = [minute + 60.0 * i / count for i in range(count)]
        await _register(table, dues, f"b{label[0]}", progress)
        done = Tally.expect(count)
        progress.step(f"{label}: draining {count:,} due reminders")
        start = time.perf_counter()
        if naive:
            await _naive(node, functools.partial(naive_poll_loop, node, poll_seconds=1.0),
                         done, counts.seconds)
        else:
            service = node.system.extensions["reminders.service"]
            assert isinstance(service, ReminderService)
            service.wake()
            with trio.move_on_after(counts.seconds):
                await done.wait()
        elapsed = time.perf_counter() - start
        fired = count - (Tally.expected - len(Tally.fired))
        return measure_rate(fired, elapsed)


async def lateness(counts: Counts, progress: Progress, *, naive: bool) -> LatencyRecorder:
    """Lateness of reminders due at ``rate`` per second, registered ahead."""
    seconds = counts.naive_lateness_seconds if naive else counts.lateness_seconds
    count = int(counts.rate * seconds)
    label = "naive" if naive else "service"
    recorder = LatencyRecorder()
    async with _node(reminders=None if naive else {}) as node:
        table = Reminders(_store(node))
        await table.ensure_indexes()
        lead = 1.0 + count / 20_000  # bulk-loading them takes ~count / 60,000 s here
        first = time.time() + lead
        dues = [first + i / counts.rate for i in range(count)]
        await _register(table, dues, f"l{label[0]}", progress)
        done = Tally.expect(count, lateness=recorder)
        progress.step(f"{label}: {count:,} reminders due at {counts.rate:,.0f}/s")
        bound = max(0.0, first - time.time()) + seconds + 10.0
        if naive:
            await _naive(node, functools.partial(naive_poll_loop, node, poll_seconds=1.0),
                         done, bound)
        else:
            with trio.move_on_after(bound):
                await done.wait()
        Tally.lateness = None
    return recorder


# --------------------------------------------------------------------------- jobs


async def _enqueue_all(count: int, enqueue: Callable[[int], Any], lanes: int = 16) -> float:
    """Seconds to run ``enqueue(i)`` for every i, from ``lanes`` tasks."""
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        async def lane(first: int) -> None:
            for i in range(first, count, lanes):
                await enqueue(i)

        for first in range(lanes):
            nursery.start_soon(lane, first)
    return time.perf_counter() - start


async def jobs_rates(counts: Counts, progress: Progress) -> tuple[float, float]:
    """Enqueues/s, then jobs/s drained by the workers (they poll once an hour here, and this
    queue does not wake them: the drain starts with ``workers.wake()``)."""
    async with _node(jobs=True) as node:
        workers = node.system.extensions["jobs.workers"]
        assert isinstance(workers, JobWorkers)
        queue = JobQueue(queue_of(node.system.extensions).backend)  # no on_enqueued wake-up
        progress.step(f"jobs: enqueueing {counts.jobs:,}")
        enqueue_seconds = await _enqueue_all(
            counts.jobs, lambda i: queue.enqueue("bench.noop", job_id=f"j{i}"))
        progress.step(f"jobs: draining {counts.jobs:,}")
        start = time.perf_counter()
        workers.wake()
        with trio.move_on_after(counts.seconds):
            await workers.settle()
        elapsed = time.perf_counter() - start
        return (measure_rate(counts.jobs, enqueue_seconds),
                measure_rate(workers.statistics().succeeded, elapsed))


async def naive_jobs_rates(counts: Counts, progress: Progress) -> tuple[float, float]:
    """The baseline queue: raw inserts, then one consumer drains them page by page."""
    async with _node() as node:
        store = _store(node)
        progress.step(f"naive jobs: enqueueing {counts.naive_jobs:,}")
        enqueue_seconds = await _enqueue_all(counts.naive_jobs, lambda i: store.insert(
            JOBS, {"_id": f"n{i}", "type": "bench.noop", "status": QUEUED, "run_at_ms": 0,
                   "payload": {}}))
        progress.step(f"naive jobs: draining {counts.naive_jobs:,}")
        done, deadline, start = 0, Deadline(counts.seconds), time.perf_counter()
        while done < counts.naive_jobs and not deadline.expired():
            page = await store.find(JOBS, {"status": QUEUED}, sort=[("run_at_ms", 1)],
                                    limit=500)
            for _ in page.items:
                await _noop(None)  # type: ignore[arg-type]  # the handler ignores its context
            async with store.unit() as unit:
                for doc in page.items:
                    unit.update(JOBS, doc["_id"], {"$set": {"status": "done"}})
            done += len(page.items)
        return (measure_rate(counts.naive_jobs, enqueue_seconds),
                measure_rate(done, time.perf_counter() - start))


# --------------------------------------------------------------------------- the run


async def measure(counts: Counts, progress: Progress) -> list[Figure]:
    Tally.fired.clear()
    naive_backlog = await backlog_rate(counts, progress, naive=True)
    backlog = await backlog_rate(counts, progress, naive=False)
    naive_late = await lateness(counts, progress, naive=True)
    late = await lateness(counts, progress, naive=False)
    twice = sum(1 for n in Tally.fired.values() if n > 1)
    naive_enqueue, naive_jobs = await naive_jobs_rates(counts, progress)
    enqueue, jobs = await jobs_rates(counts, progress)
    ms = 1000.0
    return [
        Figure(name="reminders_fired_throughput", value=backlog, unit="reminders/s",
               better="higher", baseline=naive_backlog, baseline_name=NAIVE_REMINDERS,
               target_ratio=0.5, target=">= 0.5x baseline"),
        AbsoluteFigure(name="reminder_lateness_p50_ms", value=late.percentile_us(50) / ms,
                       unit="ms", better="lower", baseline=naive_late.percentile_us(50) / ms,
                       baseline_name=NAIVE_REMINDERS + ", polling every 1 s",
                       threshold=1000.0, target="<= 1,000 ms"),
        AbsoluteFigure(name="reminder_lateness_p99_ms", value=late.percentile_us(99) / ms,
                       unit="ms", better="lower", baseline=naive_late.percentile_us(99) / ms,
                       baseline_name=NAIVE_REMINDERS + ", polling every 1 s",
                       threshold=1000.0, target="<= 1,000 ms at 1,000 due/s"),
        AbsoluteFigure(name="reminders_fired_twice", value=float(twice), unit="occurrences",
                       better="lower", threshold=0.0, target="0"),
        Figure(name="jobs_throughput", value=jobs, unit="jobs/s", better="higher",
               baseline=naive_jobs, baseline_name=NAIVE_JOBS, target_ratio=0.5,
               target=">= 0.5x baseline"),
        Figure(name="jobs_enqueue_throughput", value=enqueue, unit="jobs/s", better="higher",
               baseline=naive_enqueue, baseline_name="raw store inserts, same 16 tasks",
               target_ratio=0.5, target=">= 0.5x baseline"),
    ]


async def run(quick: bool, progress: Progress) -> list[Figure]:
    configure_logging(level="warning", node="bench")  # the node's info lines would fill stdout
    return await measure(QUICK if quick else DEFAULT, progress)
