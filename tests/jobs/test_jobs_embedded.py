"""Background jobs on the embedded defaults (the store backend), with a manual wall clock: the
tests move time and wait for the workers to settle, never sleeping."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from job_support import EFFECTS, JOBS, RUNS, Gate

from tektree import ConfigError, Node
from tektree._options import read_options
from tektree.jobs import (
    DEAD,
    DONE,
    QUEUED,
    JobError,
    JobQueue,
    JobRegistry,
    JobsOptions,
    JobWorkers,
    ScheduleActor,
    jobs_service,
    queue_of,
)
from tektree.persistence import DocumentStore
from tektree.reminders import ReminderService, reminders_service
from tektree.testing import ManualWallClock, open_test_node, test_config

REMINDERS = {"poll_interval_seconds": 1.0, "lookahead_seconds": 1.0, "lease_seconds": 30.0,
             "fire_timeout_seconds": 5.0}


def _config(data_dir: Path, jobs_options: dict[str, Any]) -> Any:
    return test_config(
        {"schedule": ScheduleActor},
        services=[
            {"type": "service", "name": "store", "service": "store"},
            {"type": "service", "name": "reminders", "service": "reminders",
             "options": REMINDERS},
            {"type": "service", "name": "jobs", "service": "jobs",
             "options": {"registries": ["job_support:JOBS"], **jobs_options}},
        ],
        node={"data_dir": str(data_dir)},
    )


@asynccontextmanager
async def jobs_node(
    data_dir: Path, clock: ManualWallClock, **jobs_options: Any
) -> AsyncIterator[Node]:
    services = {"reminders": functools.partial(reminders_service, clock=clock),
                "jobs": functools.partial(jobs_service, clock=clock)}
    async with open_test_node(_config(data_dir, jobs_options),
                              actors={"schedule": ScheduleActor}, services=services) as node:
        yield node


def _queue(node: Node) -> JobQueue:
    return queue_of(node.system.extensions)


def _store(node: Node) -> DocumentStore:
    assert node.store is not None
    return node.store


async def settle(node: Node) -> None:
    """Until no job is running or ready (reminders too, for schedules)."""
    workers = node.system.extensions["jobs.workers"]
    reminders = node.system.extensions.get("reminders.service")
    assert isinstance(workers, JobWorkers)
    with trio.fail_after(10):
        if isinstance(reminders, ReminderService):
            await reminders.settle()
        await workers.settle()


async def _runs(node: Node, job_id: str) -> list[int]:
    page = await _store(node).find(RUNS, {"job": job_id}, sort=[("at", 1)])
    return [doc["attempt"] for doc in page.items]


async def test_a_job_that_fails_twice_then_succeeds(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        queue = _queue(node)
        await queue.enqueue("test.flaky", {"fail_times": 2}, job_id="flaky-1")
        await settle(node)
        job = await queue.get("flaky-1")
        assert job is not None and job.status == QUEUED and job.attempts == 1
        assert "failing attempt 1" in (job.last_error or "")
        assert job.run_at_ms == round(clock.time() * 1000) + 1000  # backoff 1 s

        clock.advance(0.5)
        await settle(node)
        assert await _runs(node, "flaky-1") == [1]  # not before its backoff
        clock.advance(0.5)
        await settle(node)
        assert await _runs(node, "flaky-1") == [1, 2]  # then 2 s more
        clock.advance(2)
        await settle(node)

        job = await queue.get("flaky-1")
        assert job is not None and job.status == DONE
        assert job.result == {"attempt": 3, "effect": "applied"}
        assert await _runs(node, "flaky-1") == [1, 2, 3]
        assert await _store(node).count(EFFECTS) == 1


async def test_a_job_exhausting_its_retries_is_dead_lettered_and_can_be_requeued(
    tmp_path: Path,
) -> None:
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        queue = _queue(node)
        await queue.enqueue("test.flaky", {"fail_times": 99}, job_id="poison")
        for wait in (0, 1, 2, 4):  # max_attempts = 4, backoff 1, 2, 4 s
            clock.advance(wait)
            await settle(node)
        [dead] = await queue.dead_letters()
        assert (dead.id, dead.status, dead.attempts) == ("poison", DEAD, 4)
        assert "failing attempt 4" in (dead.last_error or "")
        assert await _runs(node, "poison") == [1, 2, 3, 4]
        clock.advance(3600)
        await settle(node)
        assert await _runs(node, "poison") == [1, 2, 3, 4]  # dead stays dead

        assert await queue.requeue("poison")  # an operator puts it back
        assert not await queue.requeue("poison")  # (once)
        await settle(node)
        assert await _runs(node, "poison") == [1, 2, 3, 4, 1]
        assert (await queue.counts())[QUEUED] == 1


async def test_a_job_id_deduplicates(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        queue = _queue(node)
        first = await queue.enqueue("test.flaky", job_id="once")
        again = await queue.enqueue("test.flaky", {"fail_times": 5}, job_id="once")
        assert first.created and not again.created
        assert again.job.payload == {}
        await settle(node)
        done = await queue.enqueue("test.flaky", job_id="once")  # finished: still deduped
        assert not done.created and done.job.status == DONE
        await settle(node)
        assert await _runs(node, "once") == [1]


async def test_concurrency_limit_per_type(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        queue = _queue(node)
        for i in range(6):
            await queue.enqueue("test.gate", job_id=f"g{i}")
        workers = node.system.extensions["jobs.workers"]
        assert isinstance(workers, JobWorkers)
        with trio.fail_after(10):
            await Gate.two_running.wait()
            await workers.poll()  # one more claim pass: no third run starts
        assert workers.statistics().running == 2  # the type's concurrency is 2
        Gate.event.set()
        await settle(node)
        assert Gate.most == 2
        assert (await queue.counts())[DONE] == 6


async def test_delayed_jobs_wait_for_their_time(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        queue = _queue(node)
        await queue.enqueue("test.flaky", job_id="later", delay_seconds=30)
        await settle(node)
        assert await _runs(node, "later") == []
        clock.advance(30)
        await settle(node)
        assert await _runs(node, "later") == [1]


async def test_a_schedule_enqueues_one_job_per_occurrence(tmp_path: Path) -> None:
    clock = ManualWallClock(start=1_767_225_600.0)  # Thursday 2026-01-01 00:00 UTC
    schedules = [{"name": "nightly", "job": "test.flaky", "every": "day", "at": "00:05",
                  "payload": {"fail_times": 0}}]
    async with jobs_node(tmp_path, clock, schedules=schedules) as node:
        clock.advance(5 * 60)
        await settle(node)
        clock.advance(86400)
        await settle(node)
    async with jobs_node(tmp_path, clock, schedules=schedules) as node:  # a restart
        clock.advance(86400)
        await settle(node)
        page = await _store(node).find(RUNS, sort=[("job", 1)])
    assert [doc["job"] for doc in page.items] == [
        "schedule:nightly:2026-01-01T00:05:00Z",
        "schedule:nightly:2026-01-02T00:05:00Z",
        "schedule:nightly:2026-01-03T00:05:00Z",
    ]


async def test_bad_enqueues_name_the_value(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        queue = _queue(node)
        with pytest.raises(JobError, match="type = 'Bad Type'"):
            await queue.enqueue("Bad Type")
        with pytest.raises(JobError, match="payload"):
            await queue.enqueue("test.flaky", {"when": object()})
        with pytest.raises(JobError, match="id = 'has space'"):
            await queue.enqueue("test.flaky", job_id="has space")
        assert sum((await queue.counts()).values()) == 0


def test_unknown_options_and_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"options\.poll_intervall_seconds: unknown option; "
                                          r"known: .*poll_interval_seconds"):
        read_options(JobsOptions, {"poll_intervall_seconds": 1}, where="service 'jobs'")
    with pytest.raises(ConfigError, match="max_concurrency: expected an integer, got '8'"):
        read_options(JobsOptions, {"max_concurrency": "8"}, where="service 'jobs'")
    with pytest.raises(JobError, match="concurency = 2: is not a setting of job type"):
        JOBS.with_settings({"test.flaky": {"concurency": 2}})
    with pytest.raises(JobError, match=r"type = 'test\.nope': has no handler here"):
        JOBS.with_settings({"test.nope": {"concurrency": 2}})


def test_registry_refuses_a_type_twice() -> None:
    registry = JobRegistry()
    registry.merge(JOBS)
    with pytest.raises(JobError, match="registered by two registries"):
        registry.merge(JOBS)


async def test_a_run_past_its_timeout_is_cut_and_counts_as_a_failure(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        queue = _queue(node)
        await queue.enqueue("test.hang", job_id="hang")
        await settle(node)  # cut after 0.2 s (trio time): retried after 1 s
        job = await queue.get("hang")
        assert job is not None and job.status == QUEUED
        assert job.last_error == "timed out after 0.2 s"
        clock.advance(1)
        await settle(node)
        [dead] = await queue.dead_letters()
        assert (dead.id, dead.attempts) == ("hang", 2)
        assert await _runs(node, "hang") == [1, 2]


async def test_a_job_enqueued_while_a_claim_of_its_type_is_in_flight_is_not_missed(
        tmp_path: Path) -> None:
    """A claim that read the table just before a job of its type was enqueued (and announced)
    returns empty: the worker must not take that as "drained". settle() waits for the job,
    and the job runs without waiting for the next poll interval."""
    clock = ManualWallClock()
    async with jobs_node(tmp_path, clock) as node:
        workers = node.system.extensions["jobs.workers"]
        assert isinstance(workers, JobWorkers)
        await settle(node)
        backend = workers.backend
        claim = backend.claim
        raced = trio.Event()

        async def racing_claim(job_type: str, *args: Any, **kwargs: Any) -> Any:
            jobs = await claim(job_type, *args, **kwargs)
            if job_type == "test.noop" and not raced.is_set():
                raced.set()  # what this claim read is stale: a job lands now
                await _queue(node).enqueue("test.noop", {}, job_id="late-noop")
            return jobs

        backend.claim = racing_claim  # type: ignore[method-assign]
        await settle(node)  # its pass races; no clock advance: no later poll comes on its own
        assert raced.is_set()
        job = await _queue(node).get("late-noop")
        assert job is not None and job.status == DONE
        assert await _store(node).get(EFFECTS, "late-noop") is not None
