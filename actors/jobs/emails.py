"""Email jobs: the daily digest and the transactional emails (email verification).

Each email has a stable id (``digest:<day>:<user>``, ``verification:<user>:<job>``): it is the
``Message-ID`` seed and the key of its ``mail_log`` record, written once it is sent, so a rerun
of the job does not send it again (an email sent in the instant between sending and recording
can go twice: SMTP has no transactions; its Message-ID lets mail clients fold the pair).

- ``email.daily_digest`` (daily): fans out one ``email.digest`` job per user who has something
  to report for the finished day (XP earned, answers to their questions), job id
  ``digest:<day>:<user>``.
- ``email.digest``: yesterday's XP, answers received and up-votes, the level and the streak,
  unless the user turned ``preferences.digest`` or ``preferences.email_notifications`` off.
- ``email.verification``: a fresh token (``Accounts.issue_email_token``) and its link; nothing
  for an already verified address. :func:`request_email_verification` enqueues it (the
  gateway calls it after registration); ``email.verification_sweep`` (every 10 minutes) does
  it for every unverified account of the last 24 hours that has none yet.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from actors.accounts import USERS, Accounts
from actors.jobs._common import (
    JOBS,
    MAIL_LOG,
    day_window,
    events_between,
    finished_day,
    iter_docs,
    store_of,
)
from actors.profile import USER_KIND, GetProfile
from tektree.jobs import Enqueued, JobContext, JobQueue
from tektree.mail import Email, Mailer
from tektree.persistence import EVENTS, DocumentStore, DuplicateKeyError, format_timestamp

__all__ = ["DEFAULT_PUBLIC_URL", "digest_text", "request_email_verification", "send_once"]

DEFAULT_PUBLIC_URL: Final = "http://127.0.0.1:8080"
VERIFY_PATH: Final = "/api/v1/auth/verify-email"
SWEEP_WINDOW: Final = dt.timedelta(hours=24)


def mailer_of(ctx: JobContext) -> Mailer:
    mailer = ctx.resources.get("mailer")
    if not isinstance(mailer, Mailer):
        raise RuntimeError("the jobs service gave no mailer (resources['mailer'])")
    return mailer


def wants_email(user: dict[str, Any], preference: str | None = None) -> bool:
    prefs = user.get("preferences") or {}
    if not user.get("email") or prefs.get("email_notifications") is False:
        return False
    return preference is None or prefs.get(preference) is not False


async def send_once(ctx: JobContext, mail: Email, *, user_id: str, kind: str) -> str:
    """Send ``mail`` unless ``mail_log`` says it went; record it after sending."""
    store = store_of(ctx)
    if await store.get(MAIL_LOG, mail.id) is not None:
        return "already sent"
    where = await mailer_of(ctx).send(mail)
    now = format_timestamp(dt.datetime.fromtimestamp(ctx.clock.time(), dt.UTC))
    try:
        await store.insert(MAIL_LOG, {"_id": mail.id, "user_id": user_id, "kind": kind,
                                      "to": mail.to, "sent_at": now, "via": where})
    except DuplicateKeyError:
        return "already sent"  # a concurrent run sent it too: the Message-ID is the same
    return "sent"


# -- the digest ----------------------------------------------------------------------------------
@JOBS.job("email.daily_digest", concurrency=1, max_attempts=5, backoff_initial_seconds=60.0,
          timeout_seconds=1800.0)
async def daily_digest(ctx: JobContext) -> dict[str, Any]:
    day = finished_day(ctx)
    start, end = day_window(day)
    store = store_of(ctx)
    users: set[str] = set()
    for event_type, field in (("gamification.xp.earned", "user_id"),
                              ("knowledge.answer.submitted", "question_author_id")):
        async for doc in iter_docs(store, EVENTS, events_between(event_type, start, end),
                                   page_size=1000):
            user = (doc.get("payload") or {}).get(field)
            if isinstance(user, str) and user:
                users.add(user)
    created = 0
    for user in sorted(users):
        outcome = await ctx.queue.enqueue("email.digest", {"user_id": user,
                                                           "day": day.isoformat()},
                                          job_id=f"digest:{day.isoformat()}:{user}")
        created += outcome.created
    return {"day": day.isoformat(), "users": len(users), "enqueued": created}


async def _day_facts(store: DocumentStore, user: str, start: str, end: str) -> dict[str, int]:
    xp = 0
    async for doc in iter_docs(store, EVENTS, {"payload.user_id": user,
                                               **events_between("gamification.xp.earned",
                                                                start, end)}):
        xp += int(doc["payload"].get("amount", 0))
    answers = await store.count(EVENTS, {
        "payload.question_author_id": user,
        **events_between("knowledge.answer.submitted", start, end)})
    upvotes = await store.count(EVENTS, {
        "payload.author_id": user, "payload.value": 1,
        **events_between("knowledge.content.voted", start, end)})
    return {"xp": xp, "answers_received": answers, "upvotes_received": upvotes}


def digest_text(name: str, day: dt.date, facts: dict[str, int], profile: dict[str, Any]) -> str:
    """The digest's plain text (pure)."""
    streak = profile.get("streak", {}).get("current", 0)
    lines = [
        f"Hello {name},", "",
        f"Your TekTree day ({day.isoformat()}):",
        f"- XP earned: {facts['xp']}",
        f"- answers to your questions: {facts['answers_received']}",
        f"- up-votes received: {facts['upvotes_received']}",
        f"- level {profile.get('current_level', 1)}, {profile.get('total_xp', 0)} XP in all",
        f"- streak: {streak} day{'s' if streak != 1 else ''}",
        "", "Keep it going today!", "",
        "You get this digest because it is on in your preferences (digest).",
    ]
    return "\n".join(lines) + "\n"


@JOBS.job("email.digest", concurrency=4, max_attempts=5, backoff_initial_seconds=30.0,
          timeout_seconds=120.0)
async def digest(ctx: JobContext) -> dict[str, Any]:
    user_id, day = str(ctx.payload["user_id"]), dt.date.fromisoformat(ctx.payload["day"])
    store = store_of(ctx)
    user = await store.get(USERS, user_id)
    if user is None or not wants_email(user, "digest"):
        return {"user_id": user_id, "status": "skipped"}
    start, end = day_window(day)
    facts = await _day_facts(store, user_id, start, end)
    if not any(facts.values()):
        return {"user_id": user_id, "status": "nothing to report"}
    profile = await ctx.system.ref(USER_KIND, user_id).ask(GetProfile(), timeout=30)
    name = user.get("first_name") or user.get("handle") or "there"
    mail = Email(id=f"digest:{day.isoformat()}:{user_id}", to=user["email"],
                 subject=f"Your TekTree day: +{facts['xp']} XP",
                 text=digest_text(name, day, facts, profile))
    status = await send_once(ctx, mail, user_id=user_id, kind="digest")
    return {"user_id": user_id, "status": status, **facts}


# -- email verification --------------------------------------------------------------------------
async def request_email_verification(
    queue: JobQueue, user_id: str, *, request_id: str | None = None
) -> Enqueued:
    """Enqueue the verification email of ``user_id`` (once per ``request_id``: a "send it
    again" request passes a new one)."""
    suffix = f":{request_id}" if request_id else ""
    return await queue.enqueue("email.verification", {"user_id": user_id},
                               job_id=f"verify:{user_id}{suffix}")


@JOBS.job("email.verification", concurrency=4, max_attempts=6, backoff_initial_seconds=10.0,
          timeout_seconds=60.0)
async def verification(ctx: JobContext) -> dict[str, Any]:
    user_id = str(ctx.payload["user_id"])
    store = store_of(ctx)
    user = await store.get(USERS, user_id)
    if user is None or user.get("email_verified"):
        return {"user_id": user_id, "status": "skipped"}
    mail_id = f"verification:{user_id}:{ctx.job.id}"
    if await store.get(MAIL_LOG, mail_id) is not None:
        return {"user_id": user_id, "status": "already sent"}
    now = dt.datetime.fromtimestamp(ctx.clock.time(), dt.UTC)
    token = await Accounts(store).issue_email_token(user_id, now=now)
    base = str(ctx.settings.get("public_url", DEFAULT_PUBLIC_URL)).rstrip("/")
    link = f"{base}{VERIFY_PATH}?token={token}"
    name = user.get("first_name") or user.get("handle") or "there"
    mail = Email(id=mail_id, to=user["email"], subject="Confirm your TekTree email address",
                 text=(f"Hello {name},\n\nconfirm that this address is yours by opening:\n\n"
                       f"{link}\n\nThe link is valid for 24 hours. If you did not sign up for "
                       "TekTree, ignore this email.\n"))
    status = await send_once(ctx, mail, user_id=user_id, kind="verification")
    return {"user_id": user_id, "status": status}


@JOBS.job("email.verification_sweep", concurrency=1, max_attempts=3, timeout_seconds=600.0)
async def verification_sweep(ctx: JobContext) -> dict[str, Any]:
    now = dt.datetime.fromtimestamp(ctx.clock.time(), dt.UTC)
    since = format_timestamp(now - SWEEP_WINDOW)
    created = 0
    async for user in iter_docs(store_of(ctx), USERS, {"created_at": {"$gte": since},
                                                        "email_verified": False}):
        created += (await request_email_verification(ctx.queue, user["_id"])).created
    return {"enqueued": created}
