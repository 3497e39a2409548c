"""Scheduled jobs: cron-like UTC schedules on top of durable reminders.

A schedule (``every = "day"`` at ``"00:05"``, ``"week"`` on a weekday at a time, ``"hour"`` at
a minute, or every N seconds) is one periodic reminder of the virtual actor
``schedule/<name>`` (:class:`ScheduleActor`), on a grid every node computes alike. Each
occurrence enqueues the job with the id ``schedule:<name>:<due time>``, so the at-least-once
delivery of reminders enqueues each occurrence's job exactly once; the job's payload carries
``scheduled_for`` (the occurrence's due time, ISO 8601), so a job run late or retried works
on the period it was meant for.

UTC has no daylight saving time: a day is always 86,400 s and a week 604,800 s.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs
import structlog

from tektree._actor import Actor, handler
from tektree._ids import ActorId
from tektree._messages import message
from tektree.jobs._model import JobError, check_job_type, check_payload
from tektree.jobs._queue import queue_of
from tektree.reminders import Reminders, occurrence

__all__ = [
    "SCHEDULE_KIND",
    "WEEKDAYS",
    "RunSchedule",
    "Schedule",
    "ScheduleActor",
    "ensure_schedules",
    "parse_schedules",
]

_log = structlog.get_logger("tektree.jobs")

#: The actor kind whose reminders carry the schedules (add its pool to supervisor.toml).
SCHEDULE_KIND: Final = "schedule"
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_MM = re.compile(r":([0-5]\d)")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_PERIODS: Final = {"hour": 3600, "day": 86400, "week": 604800}
_MONDAY_EPOCH: Final = 4 * 86400  # 1970-01-05, the first Monday after the Unix epoch
_REMINDER: Final = "run"

Every = Literal["hour", "day", "week"]


def _check(condition: bool, field: str, value: object, detail: str) -> None:
    if not condition:
        raise JobError(field, value, detail)


@attrs.frozen(kw_only=True)
class Schedule:
    """Run ``job`` (a job type) with ``payload`` on a UTC schedule.

    ``every = "day"`` at ``at = "HH:MM"``; ``"week"`` on ``weekday`` at ``at``; ``"hour"`` at
    ``at = ":MM"``; or ``every_seconds = N`` (on the grid of multiples of N since the epoch).
    """

    name: str
    job: str
    every: Every | None = None
    at: str = ""
    weekday: str = "monday"
    every_seconds: float | None = None
    payload: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        _check(isinstance(self.name, str) and bool(_NAME.fullmatch(self.name)), "schedule.name",
               self.name, "must be a lowercase slug like 'weekly-rollover'")
        check_job_type(self.job)
        check_payload(self.payload)
        if self.every_seconds is not None:
            _check(self.every is None, "schedule.every", self.every,
                   "give every or every_seconds, not both")
            _check(not isinstance(self.every_seconds, bool)
                   and isinstance(self.every_seconds, int | float) and self.every_seconds >= 1,
                   "schedule.every_seconds", self.every_seconds, "must be a number >= 1")
            return
        _check(self.every in _PERIODS, "schedule.every", self.every,
               "must be 'hour', 'day' or 'week' (or give every_seconds)")
        if self.every == "hour":
            _check(bool(_MM.fullmatch(self.at or ":00")), "schedule.at", self.at,
                   "must be ':MM' (minutes past the hour) for an hourly schedule")
        else:
            _check(bool(_HHMM.fullmatch(self.at or "00:00")), "schedule.at", self.at,
                   "must be 'HH:MM' in UTC, e.g. '00:05'")
        if self.every == "week":
            _check(self.weekday in WEEKDAYS, "schedule.weekday", self.weekday,
                   f"must be one of {', '.join(WEEKDAYS)}")

    @property
    def period_seconds(self) -> float:
        if self.every_seconds is not None:
            return float(self.every_seconds)
        assert self.every is not None
        return float(_PERIODS[self.every])

    def _anchor(self) -> float:
        """One occurrence's Unix time (every other is a whole number of periods away)."""
        if self.every_seconds is not None:
            return 0.0
        if self.every == "hour":
            return 60.0 * int((self.at or ":00")[1:])
        hours, minutes = (int(part) for part in (self.at or "00:00").split(":"))
        offset = 3600.0 * hours + 60.0 * minutes
        if self.every == "week":
            return _MONDAY_EPOCH + 86400.0 * WEEKDAYS.index(self.weekday) + offset
        return offset

    def next_due(self, now: float) -> float:
        """The first occurrence at or after ``now`` (Unix seconds)."""
        period = self.period_seconds
        anchor = self._anchor()
        steps = -(-(now - anchor) // period)  # ceiling
        return anchor + steps * period

    def describe(self) -> str:
        if self.every_seconds is not None:
            return f"every {self.every_seconds:g} s"
        if self.every == "week":
            return f"every {self.weekday} at {self.at or '00:00'} UTC"
        if self.every == "hour":
            return f"every hour at {self.at or ':00'}"
        return f"every day at {self.at or '00:00'} UTC"


def parse_schedules(items: Iterable[Mapping[str, Any]], *, where: str) -> list[Schedule]:
    """Schedules from the jobs service's ``schedules`` option (an array of tables)."""
    known = {f.name for f in attrs.fields(Schedule)}
    out: list[Schedule] = []
    names: set[str] = set()
    for index, item in enumerate(items):
        here = f"{where}.schedules[{index}]"
        if not isinstance(item, Mapping):
            raise JobError(here, item, "must be a table with name, job and every")
        unknown = sorted(set(item) - known)
        if unknown:
            raise JobError(f"{here}.{unknown[0]}", item[unknown[0]],
                           f"is not a schedule key; known: {', '.join(sorted(known))}")
        try:
            schedule = Schedule(**{**item, "payload": dict(item.get("payload", {}))})
        except TypeError as exc:
            raise JobError(here, dict(item), str(exc)) from None
        if schedule.name in names:
            raise JobError(f"{here}.name", schedule.name, "is the name of two schedules")
        names.add(schedule.name)
        out.append(schedule)
    return out


@message("tektree.jobs.run_schedule")
class RunSchedule:
    """A schedule's occurrence: enqueue ``job`` with ``payload``."""

    schedule: str
    job: str
    payload: dict[str, Any] = attrs.Factory(dict)


class ScheduleActor(Actor):
    """Kind ``schedule``, key = the schedule's name: turns each occurrence into one job."""

    @handler
    async def run(self, msg: RunSchedule) -> str:
        occ = occurrence(self.ctx.envelope)
        queue = queue_of(self.ctx.system.extensions)
        due = occ.due if occ is not None else dt.datetime.fromtimestamp(queue.clock.time(), dt.UTC)
        stamp = due.strftime("%Y-%m-%dT%H:%M:%SZ")
        outcome = await queue.enqueue(
            msg.job, {**msg.payload, "scheduled_for": stamp},
            job_id=f"schedule:{msg.schedule}:{stamp}",
        )
        return outcome.job.id


async def ensure_schedules(
    reminders: Reminders, schedules: Sequence[Schedule], *, now: float
) -> list[str]:
    """Register each schedule's reminder unless it already exists unchanged (a restart never
    moves a schedule), and cancel the reminders of schedules no longer configured. Returns the
    names (re)registered."""
    changed: list[str] = []
    wanted = {s.name for s in schedules}
    for schedule in schedules:
        message_ = RunSchedule(schedule=schedule.name, job=schedule.job,
                               payload=dict(schedule.payload))
        _, registered = await reminders.ensure(
            ActorId(SCHEDULE_KIND, schedule.name), _REMINDER, message_,
            due=schedule.next_due(now), period_seconds=schedule.period_seconds,
        )
        if registered:
            changed.append(schedule.name)
            _log.info("schedule registered", schedule=schedule.name, job=schedule.job,
                      when=schedule.describe())
    for reminder in await reminders.of_kind(SCHEDULE_KIND):
        if reminder.actor.key not in wanted:
            await reminders.cancel(reminder.actor, reminder.name)
            _log.info("schedule removed", schedule=reminder.actor.key)
    return changed
