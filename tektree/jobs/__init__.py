"""Background jobs: a queue (Redis in a cluster, the document store embedded), workers with
concurrency limits, retries with exponential backoff, a dead-letter list, job ids for dedupe,
and cron-like UTC schedules on top of durable reminders.

```python
JOBS = JobRegistry()

@JOBS.job("email.digest", concurrency=2, max_attempts=5)
async def digest(ctx: JobContext) -> None: ...

await queue_of(system.extensions).enqueue("email.digest", {"user_id": "usr_1"},
                                          job_id="digest:2026-01-05:usr_1")
```
"""

from tektree.jobs._backend import JOBS, Enqueued, JobBackend, StoreJobBackend
from tektree.jobs._model import (
    DEAD,
    DONE,
    JOB_STATUSES,
    QUEUED,
    RUNNING,
    Job,
    JobError,
    JobSettings,
    retry_delay_seconds,
)
from tektree.jobs._queue import JOBS_EXTENSION, JobQueue, JobsNotRunning, queue_of
from tektree.jobs._registry import Handler, JobContext, JobRegistry, JobType
from tektree.jobs._schedule import (
    SCHEDULE_KIND,
    WEEKDAYS,
    RunSchedule,
    Schedule,
    ScheduleActor,
    ensure_schedules,
    parse_schedules,
)
from tektree.jobs._service import JobsOptions, jobs_service, load_registries
from tektree.jobs._worker import JobWorkers, WorkerOptions, WorkerStatistics

__all__ = [
    "DEAD",
    "DONE",
    "JOBS",
    "JOBS_EXTENSION",
    "JOB_STATUSES",
    "QUEUED",
    "RUNNING",
    "SCHEDULE_KIND",
    "WEEKDAYS",
    "Enqueued",
    "Handler",
    "Job",
    "JobBackend",
    "JobContext",
    "JobError",
    "JobQueue",
    "JobRegistry",
    "JobSettings",
    "JobType",
    "JobWorkers",
    "JobsNotRunning",
    "JobsOptions",
    "RunSchedule",
    "Schedule",
    "ScheduleActor",
    "StoreJobBackend",
    "WorkerOptions",
    "WorkerStatistics",
    "ensure_schedules",
    "jobs_service",
    "load_registries",
    "parse_schedules",
    "queue_of",
    "retry_delay_seconds",
]
