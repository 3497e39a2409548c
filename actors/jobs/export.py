"""A user's data export: every document about them, as one JSON file.

``users.data_export`` (payload ``user_id``) gathers, by the fields that name the user: the
account (``users``, without the password hash), the gamification journal and snapshot, their
questions, answers, votes and other content, the events about them, their subscription (with
its changes and their quota counters), the mail sent to them, their reminders, their current
global rank, and earlier exports; it writes
``<data_dir>/exports/<user>/<job id>.json`` (atomically) and records it in ``data_exports``.
:func:`export_user_data` returns the same document without writing it (for an API that
streams it back).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import trio

from actors.jobs._common import DATA_EXPORTS, JOBS, MAIL_LOG, iter_docs, store_of
from actors.leaderboard import LEADERBOARD_KIND, RankOf
from actors.profile import USER_KIND
from actors.quotas import QUOTA_COUNTERS
from actors.subscriptions import SUBSCRIPTION_CHANGES
from tektree import TekTreeError
from tektree.jobs import JobContext
from tektree.persistence import EVENTS, JOURNAL, SNAPSHOTS, DocumentStore, format_timestamp
from tektree.reminders import REMINDERS

__all__ = ["EXPORT_SOURCES", "SECRET_FIELDS", "export_user_data"]

#: Fields never exported (credentials, and the lowercase copies kept for unique indexes).
SECRET_FIELDS: Final = frozenset({"password_hash", "email_lower", "handle_lower"})

#: (collection, filter for a user id): where documents about a user live. A collection that
#: does not exist (yet) contributes nothing.
EXPORT_SOURCES: Final[tuple[tuple[str, Callable[[str], dict[str, Any]]], ...]] = (
    ("users", lambda uid: {"_id": uid}),
    (SNAPSHOTS, lambda uid: {"_id": f"{USER_KIND}/{uid}"}),
    (JOURNAL, lambda uid: {"actor_id": f"{USER_KIND}/{uid}"}),
    ("questions", lambda uid: {"created_by": uid}),
    ("answers", lambda uid: {"created_by": uid}),
    ("votes", lambda uid: {"voter_id": uid}),
    ("areas", lambda uid: {"created_by": uid}),
    ("insights", lambda uid: {"created_by": uid}),
    ("discussions", lambda uid: {"created_by": uid}),
    ("resources", lambda uid: {"created_by": uid}),
    ("comments", lambda uid: {"created_by": uid}),
    ("likes", lambda uid: {"user_id": uid}),
    ("subscriptions", lambda uid: {"user_id": uid}),
    (SUBSCRIPTION_CHANGES, lambda uid: {"user_id": uid}),
    (QUOTA_COUNTERS, lambda uid: {"user_id": uid}),
    (MAIL_LOG, lambda uid: {"user_id": uid}),
    (DATA_EXPORTS, lambda uid: {"user_id": uid}),
    (REMINDERS, lambda uid: {"actor": f"{USER_KIND}/{uid}"}),
)
_USER_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Payload fields of domain events that name a user.
EVENT_USER_FIELDS: Final = ("user_id", "author_id", "voter_id", "liker_id", "created_by",
                            "question_author_id", "answer_author_id")


def _clean(doc: dict[str, Any], collection: str) -> dict[str, Any]:
    hidden = SECRET_FIELDS | {"payload"} if collection == REMINDERS else SECRET_FIELDS
    return {k: v for k, v in doc.items() if k not in hidden}  # a reminder's payload: bytes


async def export_user_data(store: DocumentStore, user_id: str) -> dict[str, Any]:
    """Every document about ``user_id``, by collection."""
    out: dict[str, list[dict[str, Any]]] = {}
    for collection, filter_of in EXPORT_SOURCES:
        docs = [_clean(doc, collection)
                async for doc in iter_docs(store, collection, filter_of(user_id))]
        if docs:
            out.setdefault(collection, []).extend(docs)
    events: dict[str, dict[str, Any]] = {}
    for field in EVENT_USER_FIELDS:
        async for doc in iter_docs(store, EVENTS, {f"payload.{field}": user_id},
                                   sort=[("timestamp", 1)]):
            events[doc["_id"]] = _clean(doc, EVENTS)
    if events:
        out[EVENTS] = sorted(events.values(), key=lambda e: (e.get("timestamp", ""), e["_id"]))
    return {"user_id": user_id, "collections": out,
            "counts": {name: len(docs) for name, docs in out.items()}}


def _write_json(path: Path, document: dict[str, Any]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(f".tmp{os.getpid()}")
    data = json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()
    temp.write_bytes(data)
    os.replace(temp, path)
    return len(data)


@JOBS.job("users.data_export", concurrency=2, max_attempts=4, backoff_initial_seconds=30.0,
          timeout_seconds=1800.0)
async def data_export(ctx: JobContext) -> dict[str, Any]:
    user_id = str(ctx.payload["user_id"])
    if not _USER_ID.fullmatch(user_id):  # it names a directory
        raise ValueError(f"user_id {user_id!r:.80} is not a user id (letters, digits, _ and -)")
    store = store_of(ctx)
    if await store.get("users", user_id) is None and not await store.count(
            JOURNAL, {"actor_id": f"{USER_KIND}/{user_id}"}):
        raise ValueError(f"user_id {user_id!r}: no such user (no account, no profile)")
    document = await export_user_data(store, user_id)
    try:
        document["leaderboard"] = await ctx.system.ref(LEADERBOARD_KIND, "global").ask(
            RankOf(user_id=user_id), timeout=30)
    except TekTreeError as exc:  # derived data: the export is complete without it
        ctx.log.warning("rank left out of the export", user=user_id, error=str(exc))
    now = dt.datetime.fromtimestamp(ctx.clock.time(), dt.UTC)
    document["exported_at"] = format_timestamp(now)
    safe_job = "".join(c if c.isalnum() or c in "-_." else "_" for c in ctx.job.id)
    path = ctx.node.config.node.resolved_data_dir() / "exports" / user_id / f"{safe_job}.json"
    size = await trio.to_thread.run_sync(_write_json, path, document)
    await store.update(DATA_EXPORTS, ctx.job.id, {"$set": {
        "user_id": user_id, "path": str(path), "bytes": size, "counts": document["counts"],
        "created_at": document["exported_at"]}}, upsert=True)
    ctx.log.info("user data exported", user=user_id, path=str(path), bytes=size)
    return {"user_id": user_id, "path": str(path), "bytes": size, "counts": document["counts"]}
