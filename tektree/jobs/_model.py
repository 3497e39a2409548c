"""Jobs as data: a job, its statuses, the settings of a job type, and the retry backoff.

Pure: no store, no Redis, no trio. Times are integer Unix milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from tektree._lifecycle import backoff_delay

__all__ = [
    "DEAD",
    "DONE",
    "JOB_STATUSES",
    "QUEUED",
    "RUNNING",
    "Job",
    "JobError",
    "JobSettings",
    "check_job_id",
    "check_job_type",
    "check_payload",
    "new_job_id",
    "retry_delay_seconds",
]

JobStatus = Literal["queued", "running", "done", "dead"]
QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
DEAD: Final = "dead"
JOB_STATUSES: Final = (QUEUED, RUNNING, DONE, DEAD)

_TYPE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_ID = re.compile(r"[A-Za-z0-9_.:@/+=-]{1,200}")
#: Largest payload (as compact JSON) a job may carry: jobs hold references, not data.
MAX_PAYLOAD_BYTES: Final = 64 * 1024


class JobError(ValueError):
    """A job was enqueued or configured with a bad value; ``field`` and ``value`` name it."""

    def __init__(self, field: str, value: object, detail: str) -> None:
        super().__init__(f"job {field} = {value!r:.80}: {detail}")
        self.field = field
        self.value = value
        self.detail = detail


def check_job_type(value: object) -> str:
    if not isinstance(value, str) or not _TYPE.fullmatch(value):
        raise JobError("type", value, "must be dotted lowercase words, e.g. 'email.digest'")
    return value


def check_job_id(value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise JobError(
            "id", value, "must be 1-200 letters, digits or any of '_.:@/+=-' (e.g. "
            "'digest:2026-01-05:usr_1'); the same id enqueued twice is one job"
        )
    return value


def check_payload(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise JobError("payload", value, "must be a JSON object (a dict)")
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JobError("payload", value, f"must hold JSON values only: {exc}") from None
    if len(text) > MAX_PAYLOAD_BYTES:
        raise JobError("payload", f"<{len(text)} bytes>",
                       f"is larger than {MAX_PAYLOAD_BYTES} bytes; store the data and pass its id")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def to_ms(when: float | dt.datetime, field: str) -> int:
    if isinstance(when, dt.datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise JobError(field, when, "must be timezone-aware (e.g. tzinfo=UTC)")
        return round(when.timestamp() * 1000)
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise JobError(field, when, "must be Unix seconds or an aware datetime")
    return round(when * 1000)


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise JobError(attribute.name, value, "must be a number > 0")


def _at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if type(value) is not int or value < 1:
        raise JobError(attribute.name, value, "must be an int >= 1")


def _fraction(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise JobError(attribute.name, value, "must be a number in 0..1")


@attrs.frozen(kw_only=True)
class JobSettings:
    """How jobs of one type run: ``concurrency`` at once per node, ``max_attempts`` runs in
    all (the first one included), exponential backoff between them (from
    ``backoff_initial_seconds`` doubling up to ``backoff_max_seconds``, +/- ``jitter`` of it),
    each run cut after ``timeout_seconds``."""

    concurrency: int = attrs.field(default=4, validator=_at_least_one)
    max_attempts: int = attrs.field(default=5, validator=_at_least_one)
    backoff_initial_seconds: float = attrs.field(default=5.0, validator=_positive)
    backoff_max_seconds: float = attrs.field(default=600.0, validator=_positive)
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    timeout_seconds: float = attrs.field(default=300.0, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise JobError("backoff_max_seconds", self.backoff_max_seconds,
                           f"must be >= backoff_initial_seconds ({self.backoff_initial_seconds})")


def retry_delay_seconds(
    settings: JobSettings, attempt: int, rng: random.Random | None = None
) -> float:
    """The wait before the run after failed attempt ``attempt`` (1-based)."""
    base = backoff_delay(attempt, settings.backoff_initial_seconds, settings.backoff_max_seconds)
    if not settings.jitter:
        return base
    spread = (rng or random).uniform(-settings.jitter, settings.jitter)
    return max(0.0, base * (1 + spread))


@attrs.frozen(kw_only=True)
class Job:
    """A job as the queue holds it. ``attempts`` counts the runs started (the current one
    included while ``running``); ``claim`` proves which run a worker holds."""

    id: str
    type: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int = 0
    run_at_ms: int = 0
    created_ms: int = 0
    owner: str | None = None
    claim: str | None = None
    lease_until_ms: int = 0
    last_error: str | None = None
    finished_ms: int | None = None
    dead_ms: int | None = None
    result: Any = None

    @property
    def run_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.run_at_ms / 1000, dt.UTC)

    def to_dict(self) -> dict[str, Any]:
        """A JSON view for operators and APIs."""
        return {
            "id": self.id, "type": self.type, "payload": self.payload, "status": self.status,
            "attempts": self.attempts, "run_at": self.run_at.isoformat(),
            "last_error": self.last_error, "result": self.result,
            "finished_ms": self.finished_ms, "dead_ms": self.dead_ms,
        }
