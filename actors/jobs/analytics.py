"""Analytics aggregates: one document per finished UTC day and ISO week in ``analytics``.

``analytics.daily`` (payload ``day``, default the day before ``scheduled_for``) and
``analytics.weekly`` (``week``, default the last finished week) count, over the period and in
total: users (the ``users`` collection's ``created_at``), questions and answers (their
collections), and from the event log (``events``, by type and time): registrations, questions
posted, answers submitted and accepted, votes, insights, comments, level-ups, achievements;
plus the XP earned (the sum of ``gamification.xp.earned`` amounts) and the active users (who
earned XP). The document ``daily:YYYY-MM-DD`` / ``weekly:YYYY-Www`` is written whole, so a
rerun replaces it with the same figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from actors.accounts import USERS
from actors.jobs._common import (
    ANALYTICS,
    JOBS,
    day_window,
    events_between,
    finished_day,
    finished_week,
    iter_docs,
    store_of,
    week_window,
)
from actors.knowledge import ANSWERS, QUESTIONS
from tektree.jobs import JobContext
from tektree.persistence import EVENTS, DocumentStore, format_timestamp

__all__ = ["COUNTED_EVENTS", "aggregate"]

#: Event types counted per period, by the name of their figure.
COUNTED_EVENTS: Final = {
    "registrations": "user.registered",
    "questions_posted": "knowledge.question.posted",
    "answers_submitted": "knowledge.answer.submitted",
    "answers_accepted": "knowledge.answer.accepted",
    "votes": "knowledge.content.voted",
    "insights_shared": "knowledge.insight.shared",
    "comments_added": "knowledge.comment.added",
    "level_ups": "gamification.level.up",
    "achievements_unlocked": "gamification.achievement.unlocked",
}
XP_EARNED: Final = "gamification.xp.earned"


async def aggregate(store: DocumentStore, start: str, end: str) -> dict[str, Any]:
    """The figures of ``[start, end)`` (store timestamp strings)."""
    figures: dict[str, Any] = {}
    for name, collection in (("users", USERS), ("questions", QUESTIONS), ("answers", ANSWERS)):
        figures[f"{name}_total"] = await store.count(collection, {"created_at": {"$lt": end}})
        figures[f"{name}_new"] = await store.count(
            collection, {"created_at": {"$gte": start, "$lt": end}})
    for name, event_type in COUNTED_EVENTS.items():
        figures[name] = await store.count(EVENTS, events_between(event_type, start, end))
    xp, active = 0, set()
    async for doc in iter_docs(store, EVENTS, events_between(XP_EARNED, start, end),
                               sort=[("timestamp", 1)], page_size=1000):
        payload = doc.get("payload") or {}
        xp += int(payload.get("amount", 0))
        active.add(payload.get("user_id"))
    figures["xp_earned"] = xp
    figures["active_users"] = len(active - {None})
    return figures


async def _write(ctx: JobContext, key: str, kind: str, period: str, start: str,
                 end: str) -> dict[str, Any]:
    store = store_of(ctx)
    figures = await aggregate(store, start, end)
    now = format_timestamp(dt.datetime.fromtimestamp(ctx.clock.time(), dt.UTC))
    await store.update(ANALYTICS, key, {"$set": {
        "kind": kind, "period": period, "start": start, "end": end, "computed_at": now,
        "figures": figures}}, upsert=True)
    ctx.log.info("analytics aggregated", period=key, **figures)
    return {"id": key, **figures}


@JOBS.job("analytics.daily", concurrency=1, max_attempts=5, backoff_initial_seconds=60.0,
          timeout_seconds=1800.0)
async def daily(ctx: JobContext) -> dict[str, Any]:
    day = finished_day(ctx)
    start, end = day_window(day)
    return await _write(ctx, f"daily:{day.isoformat()}", "daily", day.isoformat(), start, end)


@JOBS.job("analytics.weekly", concurrency=1, max_attempts=5, backoff_initial_seconds=60.0,
          timeout_seconds=3600.0)
async def weekly(ctx: JobContext) -> dict[str, Any]:
    week = finished_week(ctx)
    start, end = week_window(week)
    return await _write(ctx, f"weekly:{week}", "weekly", week, start, end)
