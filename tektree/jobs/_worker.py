"""``JobWorkers``: one node's workers, claiming and running the job types it has handlers for.

Per job type, at most ``concurrency`` jobs run at once on this node, and at most
``max_concurrency`` in all. A claimed job is leased for ``lease_seconds`` and the lease is
renewed while it runs; a node that dies leaves its leases to expire, and any node's reaper
puts those jobs back in the queue (the run counts as an attempt: a job that keeps killing its
worker ends in the dead-letter list instead of looping).

A run that raises (or exceeds ``timeout_seconds``) is retried after an exponential backoff,
until ``max_attempts`` runs have been made; then the job is dead-lettered with its last error
(``JobQueue.dead_letters()``, ``JobQueue.requeue()``). When the node stops, running jobs are
cancelled and released (not counted as an attempt) for another node to take at once.
"""

from __future__ import annotations

import traceback
from collections import Counter, deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import structlog
import trio

from tektree._options import at_least, positive
from tektree._wallclock import Passes, WallAlarm, WallClock
from tektree.jobs._backend import JobBackend
from tektree.jobs._model import Job, retry_delay_seconds
from tektree.jobs._queue import JobQueue
from tektree.jobs._registry import JobContext, JobRegistry, JobType

if TYPE_CHECKING:
    from tektree._node import Node

__all__ = ["JobWorkers", "WorkerOptions", "WorkerStatistics"]

_log = structlog.get_logger("tektree.jobs")
_ERROR_CHARS: Final = 2000


@attrs.frozen(kw_only=True)
class WorkerOptions:
    """How a node's workers poll, lease and keep finished jobs."""

    #: How often each job type is polled for ready jobs (seconds).
    poll_interval_seconds: float = attrs.field(default=1.0, validator=positive)
    #: A running job's lease (renewed every third of it while it runs).
    lease_seconds: float = attrs.field(default=60.0, validator=at_least(3))
    #: Jobs running at once on this node, all types together.
    max_concurrency: int = attrs.field(default=16, validator=at_least(1))
    #: How long a finished job is kept (its id deduplicates enqueues meanwhile).
    keep_finished_seconds: float = attrs.field(default=7 * 86400.0, validator=positive)
    #: How often expired leases are looked for (seconds).
    reap_interval_seconds: float = attrs.field(default=5.0, validator=positive)


@attrs.frozen(kw_only=True)
class WorkerStatistics:
    """A snapshot of one node's workers."""

    started: int
    succeeded: int
    retried: int
    dead: int
    released: int
    reaped: int
    running: int


@attrs.define(eq=False)
class _Run:
    job: Job
    scope: trio.CancelScope
    lost: bool = False  # its lease was lost: nothing more may be written for it
    released: bool = False  # cancelled to be given back (the node stops)


class JobWorkers:
    """Runs the registry's job types from ``backend`` (see the module docstring)."""

    def __init__(
        self,
        *,
        backend: JobBackend,
        queue: JobQueue,
        registry: JobRegistry,
        node: Node,
        clock: WallClock,
        options: WorkerOptions | None = None,
        resources: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.queue = queue
        self.registry = registry
        self.node = node
        self.owner = node.name
        self.clock = clock
        self.options = options or WorkerOptions()
        self.resources = dict(resources or {})
        self.settings = dict(settings or {})
        self._runs: dict[str, _Run] = {}
        self._running: Counter[str] = Counter()
        #: Claimed ahead, waiting for a free slot (at most ``concurrency`` per type): the next
        #: run starts the moment one ends, without waiting for a claim round trip.
        self._waiting: dict[str, deque[Job]] = {}
        self._backlog: set[str] = set()
        #: Per job type, how many enqueues this node announced (``enqueued``): a claim that
        #: was in flight meanwhile may have read the table before that job was there, so it
        #: cannot say the type is drained.
        self._announced: dict[str, int] = {}
        self._alarm = WallAlarm(clock)
        self._succeeded: list[tuple[Job, Any]] = []  # completions waiting for their write
        self._completing = False
        self._completer_alarm = WallAlarm(clock)
        self._passes = Passes()
        self._nursery: trio.Nursery | None = None
        self.stopping = False
        self.started = self.succeeded = self.retried = self.dead = 0
        self.released = self.reaped = 0
        self._next_reap = 0.0

    def _ms(self) -> int:
        return round(self.clock.time() * 1000)

    # -- the outside ---------------------------------------------------------------------------
    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(started=self.started, succeeded=self.succeeded,
                                retried=self.retried, dead=self.dead, released=self.released,
                                reaped=self.reaped, running=len(self._runs))

    def enqueued(self, job: Job) -> None:
        """A job was enqueued through this node: start it now if it is ours and ready."""
        if job.type in self.registry and job.run_at_ms <= self._ms() and not self.stopping:
            self._backlog.add(job.type)  # until a claim begun after this finds the type drained
            self._announced[job.type] = self._announced.get(job.type, 0) + 1
            self._alarm.poke()

    def wake(self) -> None:
        self._alarm.poke()

    async def poll(self) -> None:
        """Return once a claim pass that began after this call has finished."""
        await self._passes.settle(self._alarm, lambda: True)

    async def settle(self) -> None:
        """Return once a poll that began after this call has run and no job is running or
        left ready behind a full claim (tests; under ``trio.fail_after``)."""
        await self._passes.settle(self._alarm, lambda: not (
            self._runs or self._backlog or self._succeeded or self._completing
            or any(self._waiting.values())))

    # -- running -------------------------------------------------------------------------------
    async def run(
        self,
        *,
        stopping: trio.Event | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._completer)
            async with trio.open_nursery() as work:
                work.start_soon(self._claimer)
                work.start_soon(self._renewer)
                task_status.started()
                if stopping is None:
                    await trio.sleep_forever()
                else:
                    await stopping.wait()
                self.stopping = True
                work.cancel_scope.cancel()
            for run in list(self._runs.values()):
                run.released = True
                run.scope.cancel()  # each releases its job as it unwinds
            for waiting in self._waiting.values():
                while waiting:
                    await self._release(waiting.popleft())
            with trio.move_on_after(10):  # the runs unwind, the last completions are written
                await self._passes.wait_until(
                    lambda: not (self._runs or self._succeeded or self._completing))
            nursery.cancel_scope.cancel()

    async def _claimer(self) -> None:
        options = self.options
        lease_ms = round(options.lease_seconds * 1000)
        while True:
            next_poll = self.clock.time() + options.poll_interval_seconds
            self._passes.begin()
            more = False
            for job_type in self.registry:
                name, limit = job_type.name, job_type.settings.concurrency
                waiting = self._waiting.setdefault(name, deque())
                want = 2 * limit - self._running[name] - len(waiting)
                if want <= 0:
                    continue
                announced = self._announced.get(name, 0)
                jobs = await self.backend.claim(name, want, owner=self.owner,
                                                now_ms=self._ms(), lease_ms=lease_ms)
                waiting.extend(jobs)
                self._start_waiting(job_type)
                if len(jobs) == want:
                    self._backlog.add(name)
                    more = more or (len(self._runs) < options.max_concurrency
                                    and self._running[name] < limit)
                elif self._announced.get(name, 0) != announced:
                    more = True  # enqueued while this claim ran: it may not have seen it
                else:
                    self._backlog.discard(name)
            if self.clock.time() >= self._next_reap:
                self._next_reap = self.clock.time() + options.reap_interval_seconds
                reaped = await self.backend.reap(now_ms=self._ms(), limit=100)
                if reaped:
                    self.reaped += reaped
                    _log.warning("jobs of vanished workers put back", jobs=reaped)
                    more = True
            self._passes.end()
            if more:
                await trio.lowlevel.checkpoint()
                continue
            await self._alarm.sleep_until(next_poll)

    def _start_waiting(self, job_type: JobType) -> None:
        """Start the waiting jobs of ``job_type`` that the limits allow."""
        assert self._nursery is not None
        name, waiting = job_type.name, self._waiting.get(job_type.name)
        while (waiting and not self.stopping
               and self._running[name] < job_type.settings.concurrency
               and len(self._runs) < self.options.max_concurrency):
            job = waiting.popleft()
            run = _Run(job=job, scope=trio.CancelScope())
            self._runs[job.id] = run
            self._running[name] += 1
            self.started += 1
            self._nursery.start_soon(self._run, job_type, run)
        if name in self._backlog and len(waiting or ()) < job_type.settings.concurrency:
            self._alarm.poke()  # claim the next ones ahead

    async def _completer(self) -> None:
        """Writes successful runs in batches (one unit, or one Redis pipeline, per batch)."""
        keep = round(self.options.keep_finished_seconds * 1000)
        while True:
            if not self._succeeded:
                await self._completer_alarm.sleep_until(None)
                continue
            batch, self._succeeded = self._succeeded, []
            self._completing = True
            try:
                with trio.CancelScope(shield=True):
                    self.succeeded += await self.backend.complete_many(
                        batch, now_ms=self._ms(), keep_ms=keep)
            finally:
                self._completing = False
                self._passes.progress()

    async def _renewer(self) -> None:
        lease = self.options.lease_seconds
        while True:
            await trio.sleep(lease / 3)
            held = [r.job for r in self._runs.values()]
            held += [job for waiting in self._waiting.values() for job in waiting]
            lost = await self.backend.renew(
                held, lease_until_ms=self._ms() + round(lease * 1000))
            for job_id in lost:
                for waiting in self._waiting.values():
                    for job in [j for j in waiting if j.id == job_id]:
                        waiting.remove(job)
                run = self._runs.get(job_id)
                if run is not None:
                    _log.error("job lease lost; cancelling its run", job=job_id)
                    run.lost = True
                    run.scope.cancel()

    async def _run(self, job_type: JobType, run: _Run) -> None:
        job, settings = run.job, job_type.settings
        try:
            if job.attempts > settings.max_attempts:
                await self._bury(job, job.last_error or "its workers vanished while running it")
                return
            ctx = JobContext(job=job, node=self.node, queue=self.queue, clock=self.clock,
                             resources=self.resources, settings=self.settings)
            error: str | None = None
            result: Any = None
            # One scope: its deadline is the timeout; stop() and a lost lease cancel it too.
            run.scope.deadline = trio.current_time() + settings.timeout_seconds
            with run.scope:
                try:
                    result = await job_type.handler(ctx)
                except Exception as exc:
                    error = "".join(traceback.format_exception_only(exc)).strip()
                    tail = "".join(traceback.format_tb(exc.__traceback__)[-3:])
                    error = f"{error}\n{tail}"[:_ERROR_CHARS]
            if run.scope.cancelled_caught:
                if run.lost:
                    return
                if self.stopping or run.released:
                    await self._release(job)
                    return
                error = f"timed out after {settings.timeout_seconds:g} s"
            if error is None:
                self._succeeded.append((job, result))  # its lease holds until the write
                self._completer_alarm.poke()
            else:
                with trio.CancelScope(shield=True):
                    await self._failed(job, settings, error)
        finally:
            del self._runs[job.id]
            self._running[job_type.name] -= 1
            self._start_waiting(job_type)
            if job_type.name in self._backlog and not self.stopping:
                self._alarm.poke()
            self._passes.progress()

    async def _failed(self, job: Job, settings: Any, error: str) -> None:
        if job.attempts < settings.max_attempts:
            delay = retry_delay_seconds(settings, job.attempts)
            _log.warning("job failed; retrying", job=job.id, job_type=job.type,
                         attempt=job.attempts, retry_in_seconds=round(delay, 3),
                         error=error.splitlines()[0])
            run_at = self._ms() + round(delay * 1000)
            if await self.backend.retry(job, run_at_ms=run_at, error=error):
                self.retried += 1
            return
        await self._bury(job, error)

    async def _bury(self, job: Job, error: str) -> None:
        with trio.CancelScope(shield=True):
            buried = await self.backend.bury(job, now_ms=self._ms(), error=error)
        if buried:
            self.dead += 1
            _log.error("job dead-lettered", job=job.id, job_type=job.type,
                       attempts=job.attempts, error=error.splitlines()[0] if error else "")

    async def _release(self, job: Job) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            if await self.backend.release(job, now_ms=self._ms()):
                self.released += 1
