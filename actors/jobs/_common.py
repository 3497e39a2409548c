"""What the domain jobs share: the registry, their collections and indexes, time windows."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from actors.rules import day_bounds, iso_week, iso_week_monday, week_bounds
from tektree.jobs import JobContext, JobRegistry
from tektree.persistence import (
    EVENTS,
    DocumentStore,
    Filter,
    IndexSpec,
    SortSpec,
    StoreNotRunning,
    format_timestamp,
)

if TYPE_CHECKING:
    from tektree import Node

#: Every domain job type; the jobs service runs it with ``registries = ["actors.jobs:JOBS"]``.
JOBS = JobRegistry()

#: Collections the jobs write.
LEADERBOARD_ARCHIVES: Final = "leaderboard_archives"
ARCHIVE_ENTRIES: Final = "leaderboard_archive_entries"
ANALYTICS: Final = "analytics"
MAIL_LOG: Final = "mail_log"
DATA_EXPORTS: Final = "data_exports"

INDEXES: Final = (
    # The seed's index for a user's events (digest, streaks, data export).
    (EVENTS, IndexSpec(fields=(("payload.user_id", 1), ("timestamp", -1)),
                       name="events_user_time")),
    (ARCHIVE_ENTRIES, IndexSpec(fields=(("board", 1), ("chunk", 1)), name="archive_chunks")),
    (MAIL_LOG, IndexSpec(fields=(("user_id", 1), ("sent_at", -1)), name="mail_log_user")),
    (DATA_EXPORTS, IndexSpec(fields=(("user_id", 1), ("created_at", -1)),
                             name="data_exports_user")),
)


@JOBS.on_start
async def ensure_indexes(node: Node) -> None:
    store = node.store
    if store is None:
        raise StoreNotRunning("the domain jobs")
    for collection, spec in INDEXES:
        await store.ensure_index(collection, spec)


def store_of(ctx: JobContext) -> DocumentStore:
    store = ctx.node.store
    if store is None:
        raise StoreNotRunning(f"job {ctx.job.id}")
    return store


def parse_time(value: object, field: str) -> dt.datetime:
    """An aware datetime from an ISO 8601 string (``Z`` allowed)."""
    if not isinstance(value, str):
        raise ValueError(f"payload.{field} must be an ISO 8601 time, got {value!r}")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"payload.{field} = {value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ValueError(f"payload.{field} = {value!r} needs a timezone (e.g. Z)")
    return when.astimezone(dt.UTC)


def scheduled_time(ctx: JobContext) -> dt.datetime:
    """When the job was meant to run: its schedule's occurrence (``scheduled_for``), or now."""
    value = ctx.payload.get("scheduled_for")
    if value is None:
        return dt.datetime.fromtimestamp(ctx.clock.time(), dt.UTC)
    return parse_time(value, "scheduled_for")


def finished_day(ctx: JobContext) -> dt.date:
    """``payload.day`` (``YYYY-MM-DD``), else the UTC day before the scheduled time."""
    value = ctx.payload.get("day")
    if value is not None:
        if not isinstance(value, str):
            raise ValueError(f"payload.day must be 'YYYY-MM-DD', got {value!r}")
        return dt.date.fromisoformat(value)
    return scheduled_time(ctx).date() - dt.timedelta(days=1)


def finished_week(ctx: JobContext) -> str:
    """``payload.week`` (``YYYY-Www``), else the last ISO week that ended by the scheduled
    time."""
    value = ctx.payload.get("week")
    if value is not None:
        iso_week_monday(str(value))  # ValueError names a malformed week
        return str(value)
    monday, _ = week_bounds(scheduled_time(ctx))
    return iso_week(monday - dt.timedelta(days=1))


def day_window(day: dt.date) -> tuple[str, str]:
    """``[start, end)`` of a UTC day as the store's timestamp strings."""
    start, end = day_bounds(day)
    return format_timestamp(start), format_timestamp(end)


def week_window(week: str) -> tuple[str, str]:
    monday = iso_week_monday(week)
    start, end = week_bounds(monday)
    return format_timestamp(start), format_timestamp(end)


async def iter_docs(
    store: DocumentStore, collection: str, filter: Filter | None = None, *,
    sort: SortSpec = (), page_size: int = 500,
) -> AsyncIterator[dict[str, Any]]:
    """Every matching document, page by page (bounded memory)."""
    cursor: str | None = None
    while True:
        page = await store.find(collection, filter, sort=sort, limit=page_size, after=cursor)
        for doc in page.items:
            yield doc
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def events_between(event_type: str, start: str, end: str) -> Mapping[str, Any]:
    return {"event_type": event_type, "timestamp": {"$gte": start, "$lt": end}}
