"""The ``jobs`` node service: the queue, this node's workers, the schedules.

```toml
[[supervisor.children]]
type = "service"
name = "jobs"
service = "jobs"                      # after store, cluster and reminders
[supervisor.children.options]
registries = ["actors.jobs:JOBS"]     # JobRegistry objects, "package.module:attr"
max_concurrency = 8
[[supervisor.children.options.schedules]]
name = "weekly-rollover"
job = "leaderboard.weekly_rollover"
every = "week"
weekday = "monday"
at = "00:05"
```

Backend: Redis in cluster mode (the cluster service's link), the document store in embedded
mode (``backend = "store"`` forces the store in a cluster too). The queue is offered to
actors and other services as ``system.extensions["jobs"]`` (a :class:`JobQueue`), the mailer
of ``[mail]`` as ``system.extensions["mailer"]`` and to every job as
``ctx.resources["mailer"]``. Schedules need the ``reminders`` service and the ``schedule``
actor pool (``actor = "tektree.jobs:ScheduleActor"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import structlog
import trio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tektree._errors import ConfigError
from tektree._node import _import as import_path
from tektree._options import at_least, positive, read_options
from tektree._wallclock import SystemWallClock, WallAlarm, WallClock
from tektree.jobs._backend import JobBackend, StoreJobBackend
from tektree.jobs._model import JobError
from tektree.jobs._queue import JOBS_EXTENSION, JobQueue
from tektree.jobs._registry import JobRegistry
from tektree.jobs._schedule import SCHEDULE_KIND, ensure_schedules, parse_schedules
from tektree.jobs._worker import JobWorkers, WorkerOptions
from tektree.persistence import StoreNotRunning

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tektree._node import Node
    from tektree.config import ServiceSpec

__all__ = ["JobsOptions", "jobs_service", "load_registries"]

_log = structlog.get_logger("tektree.jobs")
MAILER_EXTENSION: Final = "mailer"
_PURGE_EVERY_SECONDS: Final = 3600.0


@attrs.frozen(kw_only=True)
class JobsOptions:
    """``options`` of the jobs service (see the module docstring and :class:`WorkerOptions`)."""

    registries: tuple[str, ...] = ()
    backend: str = attrs.field(default="auto",
                               validator=attrs.validators.in_(("auto", "store", "redis")))
    workers: bool = True
    poll_interval_seconds: float = attrs.field(default=1.0, validator=positive)
    lease_seconds: float = attrs.field(default=60.0, validator=at_least(3))
    max_concurrency: int = attrs.field(default=16, validator=at_least(1))
    keep_finished_seconds: float = attrs.field(default=7 * 86400.0, validator=positive)
    reap_interval_seconds: float = attrs.field(default=5.0, validator=positive)
    #: Per job type settings, e.g. ``types = { "email.digest" = { concurrency = 2 } }``.
    types: Mapping[str, Any] = attrs.field(factory=dict)
    schedules: tuple[Any, ...] = ()
    #: Free-form table handed to every job as ``ctx.settings`` (e.g. ``public_url``).
    settings: Mapping[str, Any] = attrs.field(factory=dict)

    def worker_options(self) -> WorkerOptions:
        return WorkerOptions(
            poll_interval_seconds=self.poll_interval_seconds, lease_seconds=self.lease_seconds,
            max_concurrency=self.max_concurrency,
            keep_finished_seconds=self.keep_finished_seconds,
            reap_interval_seconds=self.reap_interval_seconds,
        )


def load_registries(paths: Iterable[str], *, where: str) -> JobRegistry:
    """One registry merging the :class:`JobRegistry` objects at ``paths``."""
    merged = JobRegistry()
    for index, path in enumerate(paths):
        here = f"{where}.options.registries[{index}]"
        if ":" not in str(path):
            raise ConfigError(here, f"{path!r} is not an import path 'package.module:attr'")
        obj = import_path(str(path), here)
        if not isinstance(obj, JobRegistry):
            raise ConfigError(here, f"{path!r} is a {type(obj).__name__}, not a JobRegistry")
        merged.merge(obj)
    return merged


def _backend(node: Node, choice: str, where: str) -> JobBackend:
    if choice == "store" or (choice == "auto" and node.config.redis.embedded):
        if node.store is None:
            raise StoreNotRunning(where)
        return StoreJobBackend(node.store)
    link = node.system.extensions.get("redis")
    if link is None:
        raise ConfigError(f"{where}.options.backend",
                          "the Redis job queue needs the cluster service (with redis.url set) "
                          "started before the jobs service")
    from tektree.jobs._redis import RedisJobBackend

    return RedisJobBackend(link)  # type: ignore[arg-type]


class JobsCollector(Collector):
    """Prometheus metrics of the node's workers, read at scrape time."""

    def __init__(self, workers: JobWorkers) -> None:
        self._workers = workers

    def collect(self) -> Iterable[Metric]:
        s = self._workers.statistics()
        counters = {
            "tektree_jobs_started": ("Job runs started on this node", s.started),
            "tektree_jobs_succeeded": ("Job runs that succeeded", s.succeeded),
            "tektree_jobs_retried": ("Failed runs scheduled again", s.retried),
            "tektree_jobs_dead": ("Jobs dead-lettered after max_attempts", s.dead),
            "tektree_jobs_reaped": ("Jobs of vanished workers put back", s.reaped),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)
        yield GaugeMetricFamily("tektree_jobs_running", "Jobs running on this node",
                                value=s.running)


async def _purge(backend: JobBackend, clock: WallClock, keep_seconds: float) -> None:
    alarm = WallAlarm(clock)
    while True:
        purged = await backend.purge(finished_before_ms=round((clock.time() - keep_seconds)
                                                              * 1000))
        if purged:
            _log.info("finished jobs purged", jobs=purged)
        await alarm.sleep_until(clock.time() + _PURGE_EVERY_SECONDS)


async def jobs_service(
    node: Node,
    spec: ServiceSpec,
    *,
    task_status: trio.TaskStatus[Any],
    clock: WallClock | None = None,
    resources: Mapping[str, Any] | None = None,
) -> None:
    """The builtin service ``"jobs"`` (see the module docstring). ``clock`` injects a wall
    clock and ``resources`` extra job resources (tests)."""
    where = f"service {spec.name!r}"
    options = read_options(JobsOptions, spec.options, where=where)
    clock = clock or SystemWallClock()
    try:
        registry = load_registries(options.registries, where=where).with_settings(
            {name: dict(value) for name, value in options.types.items()})
        schedules = parse_schedules(options.schedules, where=f"{where}.options")
    except JobError as exc:
        raise ConfigError(f"{where}.options", str(exc)) from None
    backend = _backend(node, options.backend, where)
    await backend.setup()
    for setup in registry.setups:
        await setup(node)
    from tektree.mail import open_mailer

    mailer = open_mailer(node.config)
    queue = JobQueue(backend, clock=clock)
    workers = JobWorkers(
        backend=backend, queue=queue, registry=registry, node=node, clock=clock,
        options=options.worker_options(),
        resources={MAILER_EXTENSION: mailer, **(resources or {})},
        settings=options.settings,
    )
    if options.workers:
        queue.on_enqueued = workers.enqueued
    extensions = node.system.extensions
    if schedules:
        reminders: Any = extensions.get("reminders")
        if reminders is None or SCHEDULE_KIND not in node.system.pools:
            raise ConfigError(f"{where}.options.schedules",
                              "schedules need the reminders service (before the jobs service) "
                              f"and an actor pool of kind {SCHEDULE_KIND!r} with actor = "
                              "\"tektree.jobs:ScheduleActor\"")
        await ensure_schedules(reminders, schedules, now=clock.time())
    collector = JobsCollector(workers)
    node.metrics.register(collector)
    added = {JOBS_EXTENSION: queue, MAILER_EXTENSION: mailer, "jobs.workers": workers}
    extensions.update(added)
    _log.info("jobs ready", node=node.name, backend=type(backend).__name__,
              types=sorted(t.name for t in registry), workers=options.workers,
              schedules=[s.name for s in schedules])
    try:
        async with trio.open_nursery() as nursery:
            if options.workers:
                await nursery.start(lambda task_status: workers.run(stopping=node.stopping,
                                                                    task_status=task_status))
                nursery.start_soon(_purge, backend, clock, options.keep_finished_seconds)
            task_status.started(queue)
            await trio.sleep_forever()
    finally:
        for key, value in added.items():
            if extensions.get(key) is value:
                del extensions[key]
        node.metrics.unregister(collector)
