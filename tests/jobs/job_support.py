"""Job types for the job tests (embedded and multi-process: worker processes import this
module by its path, ``registries = ["job_support:JOBS"]``). Every run is recorded in the
node's store, so the tests count runs and effects across processes."""

from __future__ import annotations

import time
from typing import Any

import trio

from tektree.jobs import JobContext, JobRegistry
from tektree.persistence import DocumentStore, DuplicateKeyError

JOBS = JobRegistry()
#: One document per run (attempt), and one per job whose effect was applied.
RUNS = "test_job_runs"
EFFECTS = "test_job_effects"


class Gate:
    """An in-process gate for ``test.gate`` jobs (embedded tests only)."""

    event = trio.Event()
    two_running = trio.Event()
    running = 0
    most = 0

    @classmethod
    def reset(cls) -> None:
        cls.event = trio.Event()
        cls.two_running = trio.Event()
        cls.running = cls.most = 0


def _store(ctx: JobContext) -> DocumentStore:
    store = ctx.node.store
    assert store is not None
    return store


async def record(ctx: JobContext) -> None:
    await _store(ctx).insert(RUNS, {"job": ctx.job.id, "attempt": ctx.attempt,
                                    "node": ctx.node.name, "at": time.time()})


async def apply_once(ctx: JobContext) -> str:
    try:
        await _store(ctx).insert(EFFECTS, {"_id": ctx.job.id, "node": ctx.node.name})
    except DuplicateKeyError:
        return "duplicate"
    return "applied"


@JOBS.job("test.flaky", max_attempts=4, backoff_initial_seconds=1.0, backoff_max_seconds=8.0,
          jitter=0.0)
async def flaky(ctx: JobContext) -> dict[str, Any]:
    """Fails its first ``fail_times`` runs, then applies its effect once."""
    await record(ctx)
    if ctx.attempt <= int(ctx.payload.get("fail_times", 0)):
        raise RuntimeError(f"failing attempt {ctx.attempt} of {ctx.job.id} on purpose")
    return {"attempt": ctx.attempt, "effect": await apply_once(ctx)}


@JOBS.job("test.gate", concurrency=2, max_attempts=1)
async def gate(ctx: JobContext) -> None:
    """Holds its run until the test opens ``Gate.event`` (concurrency tests)."""
    await record(ctx)
    Gate.running += 1
    Gate.most = max(Gate.most, Gate.running)
    if Gate.running >= 2:
        Gate.two_running.set()
    try:
        await Gate.event.wait()
    finally:
        Gate.running -= 1


@JOBS.job("test.slow", max_attempts=3, backoff_initial_seconds=0.2, jitter=0.0)
async def slow(ctx: JobContext) -> str:
    """Takes ``seconds`` of real time on its first run (a worker can be killed in the middle
    of it), ``retry_seconds`` on the next ones."""
    await record(ctx)
    seconds = ctx.payload.get("seconds", 0) if ctx.attempt == 1 else ctx.payload.get(
        "retry_seconds", 0)
    await trio.sleep(float(seconds))
    return await apply_once(ctx)


@JOBS.job("test.noop", concurrency=64, max_attempts=3, backoff_initial_seconds=0.2)
async def noop(ctx: JobContext) -> str:
    return await apply_once(ctx)


@JOBS.job("test.hang", timeout_seconds=0.2, max_attempts=2, backoff_initial_seconds=1.0,
          jitter=0.0)
async def hang(ctx: JobContext) -> None:
    """Never ends on its own: cut by its timeout."""
    await record(ctx)
    await trio.sleep_forever()
