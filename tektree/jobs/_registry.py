"""Job handlers by type, and what a handler is given when it runs.

```python
JOBS = JobRegistry()

@JOBS.job("email.digest", concurrency=2, max_attempts=5, timeout_seconds=60)
async def send_digest(ctx: JobContext) -> dict[str, Any]:
    user = ctx.payload["user_id"]
    ...
    return {"sent": True}          # kept (small JSON) with the finished job
```

A handler runs at least once per job and may run again (a retry after it raised, or after its
worker died mid-run): make its effects idempotent, keyed on ``ctx.job.id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import structlog

from tektree.jobs._model import Job, JobError, JobSettings, check_job_type

if TYPE_CHECKING:
    from tektree._node import Node
    from tektree._system import ActorSystem
    from tektree._wallclock import WallClock
    from tektree.jobs._queue import JobQueue

__all__ = ["Handler", "JobContext", "JobRegistry", "JobType"]

Handler = Callable[["JobContext"], Awaitable[Any]]
Setup = Callable[["Node"], Awaitable[None]]
F = TypeVar("F", bound=Handler)
S = TypeVar("S", bound=Setup)


@attrs.frozen(kw_only=True)
class JobType:
    """One registered job type: its handler and its settings."""

    name: str
    handler: Handler
    settings: JobSettings


@attrs.frozen(kw_only=True)
class JobContext:
    """What a running job sees: the job, the node, the queue (to enqueue follow-ups), the wall
    clock, ``resources`` (what the service provides: ``"mailer"``) and ``settings`` (the
    service's free-form ``settings`` option table)."""

    job: Job
    node: Node
    queue: JobQueue
    clock: WallClock
    resources: Mapping[str, Any] = attrs.Factory(dict)
    settings: Mapping[str, Any] = attrs.Factory(dict)

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry..."""
        return self.job.attempts

    @property
    def system(self) -> ActorSystem:
        return self.node.system

    @property
    def log(self) -> Any:
        return structlog.get_logger("tektree.jobs").bind(job=self.job.id, job_type=self.job.type,
                                                         attempt=self.job.attempts)


class JobRegistry:
    """Job types by name; a node's jobs service runs the types of the registries it is given."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}
        self.setups: list[Setup] = []

    def on_start(self, fn: S) -> S:
        """Decorator: ``await fn(node)`` when a jobs service starts with this registry (declare
        the indexes the jobs read, for example)."""
        self.setups.append(fn)
        return fn

    def register(self, name: str, handler: Handler, **settings: Any) -> JobType:
        """Register ``handler`` for jobs of type ``name``; ``settings`` are
        :class:`JobSettings` fields."""
        check_job_type(name)
        if name in self._types:
            raise JobError("type", name, "is registered twice; each job type has one handler")
        unknown = sorted(set(settings) - {f.name for f in attrs.fields(JobSettings)})
        if unknown:
            raise JobError(unknown[0], settings[unknown[0]],
                           f"is not a job setting; known: "
                           f"{', '.join(f.name for f in attrs.fields(JobSettings))}")
        job_type = JobType(name=name, handler=handler, settings=JobSettings(**settings))
        self._types[name] = job_type
        return job_type

    def job(self, name: str, **settings: Any) -> Callable[[F], F]:
        """Decorator form of :meth:`register`."""

        def decorate(fn: F) -> F:
            self.register(name, fn, **settings)
            return fn

        return decorate

    def merge(self, other: JobRegistry) -> None:
        self.setups.extend(fn for fn in other.setups if fn not in self.setups)
        for job_type in other:
            if job_type.name in self._types:
                raise JobError("type", job_type.name, "is registered by two registries")
            self._types[job_type.name] = job_type

    def with_settings(self, overrides: Mapping[str, Mapping[str, Any]]) -> JobRegistry:
        """A copy with some types' settings changed (``supervisor.toml``'s ``[...types]``)."""
        out = JobRegistry()
        out.setups = list(self.setups)
        for name in overrides:
            if name not in self._types:
                names = ", ".join(t.name for t in self)
                raise JobError("type", name, f"has no handler here; known: {names}")
        for job_type in self:
            changes = dict(overrides.get(job_type.name, {}))
            settings = job_type.settings
            known = {f.name for f in attrs.fields(JobSettings)}
            bad = sorted(set(changes) - known)
            if bad:
                raise JobError(bad[0], changes[bad[0]],
                               f"is not a setting of job type {job_type.name!r}; known: "
                               f"{', '.join(sorted(known))}")
            out._types[job_type.name] = attrs.evolve(
                job_type, settings=attrs.evolve(settings, **changes))
        return out

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def __iter__(self) -> Iterator[JobType]:
        return iter(self._types.values())

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __len__(self) -> int:
        return len(self._types)
