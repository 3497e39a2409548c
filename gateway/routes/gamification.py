"""Achievements and leaderboards (``global``, ``weekly``, ``weekly:2025-W50``, ``area:<id>``)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

from quart import Response

from actors.accounts import USERS
from actors.leaderboard import LEADERBOARD_KIND, MAX_RADIUS, MAX_TOP, RankOf, Top
from actors.rules import ACHIEVEMENTS, iso_week, parse_board
from gateway.api import Call, Param, Reply, RouteTable, path_param
from gateway.routes.users import resolve_user

__all__ = ["board_name", "routes"]

routes = RouteTable("gamification", "Achievements and leaderboards")

_BOARD: Final = path_param(
    "board", "`global`, `weekly` (the current ISO week), `weekly:2025-W50` or `area:<id>`")
_ACHIEVEMENTS: Final = [
    {"id": a.id, "name": a.name, "description": a.description, "category": a.category,
     "xp_reward": a.xp_reward,
     "criteria": {"counter": a.criteria.counter, "comparison": a.criteria.comparison,
                  "threshold": a.criteria.threshold}}
    for a in ACHIEVEMENTS
]
#: The catalog never changes while the process runs: encoded once.
_ACHIEVEMENTS_JSON: Final = json.dumps({"items": _ACHIEVEMENTS}, separators=(",", ":")).encode()


def board_name(board: str, now: dt.datetime | None = None) -> str:
    """The board a path names: ``weekly`` is the current ISO week's; anything else is checked
    (``BoardNameError``, a 404, names the allowed forms)."""
    if board == "weekly":
        return f"weekly:{iso_week(now or dt.datetime.now(dt.UTC))}"
    return parse_board(board).name


async def _with_handles(call: Call, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [e["user_id"] for e in entries]
    if not ids:
        return entries
    page = await call.gateway.store.find(USERS, {"_id": {"$in": ids}}, limit=len(ids))
    handles = {doc["_id"]: doc.get("handle") for doc in page.items}
    return [{**e, "handle": handles.get(e["user_id"])} for e in entries]


@routes.get("/achievements", summary="The achievement catalog", auth="optional",
            responses={200: "AchievementList"})
async def list_achievements(call: Call) -> Reply:
    """Every achievement with its criterion and XP reward."""
    return Reply(Response(_ACHIEVEMENTS_JSON, mimetype="application/json"))


@routes.get("/leaderboards/{board}", summary="A leaderboard page", auth="optional", params=(
    _BOARD,
    Param(name="limit", schema={"type": "integer", "minimum": 1, "maximum": MAX_TOP,
                                "default": 10}, description=f"entries (at most {MAX_TOP})"),
    Param(name="offset", schema={"type": "integer", "minimum": 0, "maximum": 1_000_000,
                                 "default": 0}, description="entries to skip"),
), responses={200: "LeaderboardPage"}, problems=(404,))
async def get_leaderboard(call: Call) -> Reply:
    """Ranks by score, ties by who reached the score first; opted-out users are hidden."""
    board = board_name(call.path["board"])
    limit, offset = call.query.get("limit", 10), call.query.get("offset", 0)
    entries = await call.gateway.node.system.ref(LEADERBOARD_KIND, board).ask(
        Top(limit=limit, offset=offset))
    return Reply({"board": board, "limit": limit, "offset": offset,
                  "items": await _with_handles(call, entries),
                  "next_offset": offset + limit if len(entries) == limit else None})


@routes.get("/leaderboards/{board}/users/{uid}", summary="A user's rank on a leaderboard",
            auth="optional", params=(
                _BOARD, path_param("uid", "a user id, or `me`"),
                Param(name="radius", schema={"type": "integer", "minimum": 0,
                                             "maximum": MAX_RADIUS, "default": 2},
                      description="users shown above and below")),
            responses={200: "LeaderboardRank"}, problems=(404,))
async def get_rank(call: Call) -> Reply:
    """Rank and score (null when unranked or opted out) and the users around."""
    board = board_name(call.path["board"])
    uid = await resolve_user(call, call.path["uid"])
    reply = await call.gateway.node.system.ref(LEADERBOARD_KIND, board).ask(
        RankOf(user_id=uid, radius=call.query.get("radius", 2)))
    return Reply({**reply, "board": board, "around": await _with_handles(call, reply["around"])})
