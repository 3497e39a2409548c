"""``JobQueue``: enqueue jobs and inspect the queue (any node; the workers are elsewhere)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

from tektree._errors import TekTreeError
from tektree._wallclock import SystemWallClock, WallClock
from tektree.jobs._backend import Enqueued, JobBackend
from tektree.jobs._model import (
    QUEUED,
    Job,
    JobError,
    check_job_id,
    check_job_type,
    check_payload,
    new_job_id,
    to_ms,
)

__all__ = ["JOBS_EXTENSION", "JobQueue", "JobsNotRunning"]

#: The key of the node's :class:`JobQueue` in ``ActorSystem.extensions``.
JOBS_EXTENSION: Final = "jobs"


class JobsNotRunning(TekTreeError):
    """A job was enqueued on a node without the jobs service."""

    def __init__(self) -> None:
        super().__init__(
            "this node runs no jobs service; add [[supervisor.children]] type = \"service\", "
            "name = \"jobs\", service = \"jobs\" after the store (and cluster) services"
        )


def queue_of(extensions: Mapping[str, object]) -> JobQueue:
    """The node's queue from ``system.extensions``, or :class:`JobsNotRunning`."""
    queue = extensions.get(JOBS_EXTENSION)
    if not isinstance(queue, JobQueue):
        raise JobsNotRunning()
    return queue


class JobQueue:
    """The queue of one backend. ``on_enqueued`` lets the local workers start at once."""

    def __init__(
        self,
        backend: JobBackend,
        *,
        clock: WallClock | None = None,
        on_enqueued: Callable[[Job], None] | None = None,
    ) -> None:
        self.backend = backend
        self.clock = clock or SystemWallClock()
        self.on_enqueued = on_enqueued

    def now_ms(self) -> int:
        return round(self.clock.time() * 1000)

    async def enqueue(
        self,
        job_type: str,
        payload: Mapping[str, Any] | None = None,
        *,
        job_id: str | None = None,
        run_at: float | dt.datetime | None = None,
        delay_seconds: float | None = None,
    ) -> Enqueued:
        """Queue a job of ``job_type`` with a JSON ``payload``, to run now, at ``run_at`` (Unix
        seconds or aware datetime) or after ``delay_seconds``.

        ``job_id`` deduplicates: while a job with that id exists (queued, running, dead, or
        finished within the retention), enqueueing it again returns it with ``created`` False.
        """
        check_job_type(job_type)
        body = check_payload(payload if payload is not None else {})
        job_id = check_job_id(job_id) if job_id is not None else new_job_id()
        now = self.now_ms()
        if run_at is not None and delay_seconds is not None:
            raise JobError("run_at", run_at, "give run_at or delay_seconds, not both")
        if delay_seconds is not None:
            if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int | float) or (
                    delay_seconds < 0):
                raise JobError("delay_seconds", delay_seconds, "must be a number >= 0")
            run_at_ms = now + round(delay_seconds * 1000)
        else:
            run_at_ms = now if run_at is None else to_ms(run_at, "run_at")
        job = Job(id=job_id, type=job_type, payload=body, status=QUEUED, run_at_ms=run_at_ms,
                  created_ms=now)
        outcome = await self.backend.enqueue(job)
        if outcome.created and self.on_enqueued is not None:
            self.on_enqueued(job)
        return outcome

    async def get(self, job_id: str) -> Job | None:
        return await self.backend.get(check_job_id(job_id))

    async def dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[Job]:
        """Jobs that exhausted their attempts, oldest first (``last_error`` says why)."""
        if type(limit) is not int or not 1 <= limit <= 1000:
            raise JobError("limit", limit, "must be an int in 1..1000")
        if type(offset) is not int or offset < 0:
            raise JobError("offset", offset, "must be an int >= 0")
        return await self.backend.dead(limit=limit, offset=offset)

    async def requeue(self, job_id: str) -> bool:
        """Move a dead job back to the queue, due now, with its attempts reset; False when no
        dead job has that id."""
        done = await self.backend.requeue(check_job_id(job_id), now_ms=self.now_ms())
        if done and self.on_enqueued is not None:
            job = await self.backend.get(job_id)
            if job is not None:
                self.on_enqueued(job)
        return done

    async def counts(self) -> dict[str, int]:
        """Jobs by status (the Redis backend counts running and dead only)."""
        return await self.backend.counts()
