"""Leaderboard jobs: the weekly rollover (archive + top-10 achievement) and the rebuild.

``leaderboard.weekly_rollover`` (Mondays, just after 00:00 UTC): the ISO week that just ended
is final (profiles send a closed week no more updates), so its board's standings are read page
by page and archived in the store -- ``leaderboard_archives/weekly:YYYY-Www`` (summary and top
100) and ``leaderboard_archive_entries`` (every entry, in chunks of 1,000) -- and the week's
top 10 are granted ``ach_top_contributor`` through their profiles (``GrantAchievement``, cause
``weekly_top10:YYYY-Www``: a rerun grants nothing twice). The new week's board needs nothing:
profiles address ``weekly:<week of the event>`` on their own.

``leaderboard.rebuild`` (on demand, ``{"board": "global" | "weekly:YYYY-Www"}``): the boards
are derived data, fed by best-effort tells from the profiles; this replays the profiles'
journals (the source of truth) into the board as ``SetScore`` updates versioned by each
profile's journal ``seq``, so the board's own rules apply: unchanged scores write nothing,
a stale replay never overwrites a newer update, and a lost update is repaired. The board
keeps its Redis index in step as it applies them (cluster mode).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from actors.jobs._common import (
    ARCHIVE_ENTRIES,
    JOBS,
    LEADERBOARD_ARCHIVES,
    finished_week,
    iter_docs,
    store_of,
)
from actors.leaderboard import LEADERBOARD_KIND, MAX_TOP, SetScore, Top
from actors.profile import APPLIED, OPTED_OUT, USER_KIND, GrantAchievement
from actors.rules import iso_week_monday, parse_board, week_bounds
from tektree.jobs import JobContext
from tektree.persistence import JOURNAL, SNAPSHOTS, format_timestamp

__all__ = ["TOP_CONTRIBUTOR", "TOP_CONTRIBUTORS", "profile_scores"]

#: The achievement of a finished week's top ``TOP_CONTRIBUTORS``.
TOP_CONTRIBUTOR: Final = "ach_top_contributor"
TOP_CONTRIBUTORS: Final = 10
ARCHIVE_CHUNK: Final = 1000
ARCHIVE_TOP: Final = 100


async def read_standings(ctx: JobContext, board: str) -> list[dict[str, Any]]:
    """Every ranked entry of ``board``, in rank order (asked ``MAX_TOP`` at a time)."""
    ref = ctx.system.ref(LEADERBOARD_KIND, board)
    entries: list[dict[str, Any]] = []
    while True:
        page = await ref.ask(Top(limit=MAX_TOP, offset=len(entries)), timeout=30)
        entries.extend(page)
        if len(page) < MAX_TOP:
            return entries


@JOBS.job("leaderboard.weekly_rollover", concurrency=1, max_attempts=8,
          backoff_initial_seconds=30.0, timeout_seconds=1800.0)
async def weekly_rollover(ctx: JobContext) -> dict[str, Any]:
    week = finished_week(ctx)
    start, end = week_bounds(iso_week_monday(week))
    now = dt.datetime.fromtimestamp(ctx.clock.time(), dt.UTC)
    if now < end:
        raise ValueError(f"week {week} ends at {end.isoformat()}: it is not finished yet")
    board = f"weekly:{week}"
    entries = await read_standings(ctx, board)
    store = store_of(ctx)
    chunks = [entries[i:i + ARCHIVE_CHUNK] for i in range(0, len(entries), ARCHIVE_CHUNK)]
    async with store.unit() as unit:
        for index, chunk in enumerate(chunks):
            unit.update(ARCHIVE_ENTRIES, f"{board}#{index:05d}", {"$set": {
                "board": board, "chunk": index, "entries": chunk}}, upsert=True)
        unit.update(LEADERBOARD_ARCHIVES, board, {"$set": {
            "board": board, "week": week, "period_start": format_timestamp(start),
            "period_end": format_timestamp(end), "ranked": len(entries), "chunks": len(chunks),
            "top": entries[:ARCHIVE_TOP], "finalized_at": format_timestamp(now),
        }}, upsert=True)
    granted = []
    cause = f"weekly_top10:{week}"
    for entry in entries[:TOP_CONTRIBUTORS]:
        reply = await ctx.system.ref(USER_KIND, entry["user_id"]).ask(
            GrantAchievement(achievement_id=TOP_CONTRIBUTOR, cause_id=cause, at=now),
            timeout=30)  # its XP counts in the week it is granted, not the closed one
        if reply.get("status") == "invalid":
            raise ValueError(f"granting {TOP_CONTRIBUTOR} to {entry['user_id']}: "
                             f"{reply.get('error')}")
        if reply.get("status") == "applied":
            granted.append(entry["user_id"])
    ctx.log.info("weekly board archived", board=board, ranked=len(entries), granted=granted)
    return {"board": board, "ranked": len(entries), "granted": granted}


# -- the rebuild ---------------------------------------------------------------------------------
def profile_scores(
    state: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]], week: str | None
) -> dict[str, Any]:
    """A profile's board facts from its snapshot ``state`` and its journal ``events`` after
    it (documents with ``seq`` and ``data``): total XP, XP in ``week`` (None: not known),
    opt-out, the last ``seq`` and the time of the last credit. Pure."""
    total = int(state["total_xp"]) if state else 0
    weekly = dict(state["weekly"]) if state and state.get("weekly") else None
    week_xp = weekly["xp"] if weekly and weekly.get("week") == week else None
    opted_out = bool(state.get("leaderboard_opt_out")) if state else False
    seq, at = 0, None
    for doc in events:
        data, seq = doc["data"], doc["seq"]
        if data.get("type") == APPLIED:
            total += sum(int(t["amount"]) for t in data.get("transactions", ()))
            at = data.get("at", at)
            held = data.get("weekly")
            if held is not None and held.get("week") == week:
                week_xp = held["xp"]
        elif data.get("type") == OPTED_OUT:
            opted_out = bool(data.get("opted_out"))
    return {"total_xp": total, "week_xp": week_xp, "opted_out": opted_out, "seq": seq, "at": at}


async def _profiles(ctx: JobContext, week: str | None) -> list[tuple[str, dict[str, Any]]]:
    """Every profile's facts, folded from one ordered pass over the users' journals."""
    store = store_of(ctx)
    prefix = f"{USER_KIND}/"
    out: list[tuple[str, dict[str, Any]]] = []
    current: str | None = None
    events: list[dict[str, Any]] = []

    async def flush() -> None:
        if current is None:
            return
        state = None
        if week is None:  # the global board: the snapshot folds everything before it
            snap = await store.get(SNAPSHOTS, current)
            if snap is not None:
                state = snap["state"]
                tail = [e for e in events if e["seq"] > snap["seq"]]
                facts = profile_scores(state, tail, week)
                facts["seq"] = max(facts["seq"], snap["seq"])
                out.append((current[len(prefix):], facts))
                return
        out.append((current[len(prefix):], profile_scores(None, events, week)))

    async for doc in iter_docs(store, JOURNAL,
                               {"actor_id": {"$gte": prefix, "$lt": f"{USER_KIND}0"}},
                               sort=[("actor_id", 1), ("seq", 1)], page_size=1000):
        if doc["actor_id"] != current:
            await flush()
            current, events = doc["actor_id"], []
        events.append({"seq": doc["seq"], "data": doc["data"]})
    await flush()
    return out


@JOBS.job("leaderboard.rebuild", concurrency=1, max_attempts=3, timeout_seconds=3600.0)
async def rebuild(ctx: JobContext) -> dict[str, Any]:
    board = str(ctx.payload.get("board", "global"))
    parsed = parse_board(board)  # BoardNameError names a bad board
    if parsed.kind not in ("global", "weekly"):
        raise ValueError(f"board {board!r}: only the global and weekly boards are rebuilt "
                         "from the profiles' journals")
    week = parsed.week if parsed.kind == "weekly" else None
    ref = ctx.system.ref(LEADERBOARD_KIND, board)
    outcome: dict[str, int] = {}
    for user, facts in await _profiles(ctx, week):
        score = facts["total_xp"] if week is None else facts["week_xp"]
        if not score or not facts["seq"]:
            continue
        at = None if facts["at"] is None else dt.datetime.fromisoformat(
            facts["at"].replace("Z", "+00:00"))
        reply = await ref.ask(SetScore(
            user_id=user, score=int(score), event_id=f"rebuild:{board}:{user}:{facts['seq']}",
            at=at, version=int(facts["seq"]), opted_out=facts["opted_out"]), timeout=30)
        status = str(reply.get("status"))
        outcome[status] = outcome.get(status, 0) + 1
    ctx.log.info("leaderboard rebuilt from the journals", board=board, **outcome)
    return {"board": board, **outcome}
