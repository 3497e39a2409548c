"""``gamification.streak_at_risk`` (daily, late in the UTC day): a nudge to every user who was
active yesterday and not yet today, whose streak ends at midnight UTC unless they act.

Candidates are the users who earned XP yesterday and none since today's midnight (the event
log); each is confirmed by their profile (its streak's last active day is yesterday and the
streak is running). Each nudge is the domain event ``gamification.streak.at_risk`` (event id
``evt_streak_at_risk:<user>:<day>``: written once however often the job runs), pushed to the
user's notification topic, and emailed unless the user turned email notifications off.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from actors.accounts import USERS
from actors.jobs._common import (
    JOBS,
    day_window,
    events_between,
    iter_docs,
    scheduled_time,
    store_of,
)
from actors.jobs.emails import send_once, wants_email
from actors.profile import USER_KIND, GetProfile, notifications_topic
from actors.rules import next_utc_midnight
from tektree.jobs import JobContext
from tektree.mail import Email
from tektree.persistence import EVENTS, DomainEvent, DuplicateKeyError, format_timestamp

__all__ = ["STREAK_AT_RISK"]

STREAK_AT_RISK: Final = "gamification.streak.at_risk"
XP_EARNED: Final = "gamification.xp.earned"


async def _earners(ctx: JobContext, start: str, end: str) -> set[str]:
    users: set[str] = set()
    async for doc in iter_docs(store_of(ctx), EVENTS, events_between(XP_EARNED, start, end),
                               page_size=1000):
        user = (doc.get("payload") or {}).get("user_id")
        if isinstance(user, str):
            users.add(user)
    return users


@JOBS.job("gamification.streak_at_risk", concurrency=1, max_attempts=3,
          backoff_initial_seconds=60.0, timeout_seconds=1800.0)
async def streak_at_risk(ctx: JobContext) -> dict[str, Any]:
    at = scheduled_time(ctx)
    today = at.date()
    yesterday = today - dt.timedelta(days=1)
    y_start, y_end = day_window(yesterday)
    candidates = await _earners(ctx, y_start, y_end) - await _earners(
        ctx, y_end, format_timestamp(at))
    store = store_of(ctx)
    pubsub: Any = ctx.system.extensions.get("pubsub")
    ends_at = format_timestamp(next_utc_midnight(at))
    nudged: list[str] = []
    for user_id in sorted(candidates):
        profile = await ctx.system.ref(USER_KIND, user_id).ask(GetProfile(), timeout=30)
        streak = profile["streak"]
        last = streak.get("last_activity_at")
        if not streak.get("current") or not last or not last.startswith(yesterday.isoformat()):
            continue  # acted today after all, or no streak to lose
        payload = {"user_id": user_id, "streak_days": streak["current"], "ends_at": ends_at}
        event = DomainEvent(event_type=STREAK_AT_RISK,
                            event_id=f"evt_streak_at_risk:{user_id}:{today.isoformat()}",
                            payload=payload, timestamp=format_timestamp(at),
                            producer_id=ctx.node.name, source_service="tektree-jobs",
                            metadata={"user_id": user_id})
        try:
            async with store.unit() as unit:  # the outbox: relayed like every domain event
                unit.add_event(event)
        except DuplicateKeyError:
            continue  # nudged already today
        nudged.append(user_id)
        if pubsub is not None:
            try:
                await pubsub.publish(notifications_topic(user_id), event.to_dict())
            except Exception as exc:  # fire-and-forget: the event is stored
                ctx.log.warning("streak nudge publish failed", user=user_id, error=repr(exc))
        user = await store.get(USERS, user_id)
        if user is not None and wants_email(user):
            days = streak["current"]
            await send_once(ctx, Email(
                id=f"streak:{today.isoformat()}:{user_id}", to=user["email"],
                subject=f"Your {days}-day TekTree streak ends at midnight UTC",
                text=(f"Hello {user.get('first_name') or user.get('handle') or 'there'},\n\n"
                      f"you have been active {days} day{'s' if days != 1 else ''} in a row. "
                      "Answer, ask or share something before midnight UTC to keep it.\n")),
                user_id=user_id, kind="streak_at_risk")
    ctx.log.info("streaks at risk nudged", day=today.isoformat(), candidates=len(candidates),
                 nudged=len(nudged))
    return {"day": today.isoformat(), "candidates": len(candidates), "nudged": nudged}
