"""``/users``: the signed-in user, public profiles, gamification, XP history, quests, roles."""

from __future__ import annotations

from typing import Any, Final

from actors.profile import (
    USER_KIND,
    GetProfile,
    GetQuests,
    GetXpTransactions,
    SetFeatured,
    SetLeaderboardOptOut,
)
from gateway.api import CURSOR, LIMIT, Call, Reply, RouteTable, path_param
from gateway.problems import Problem
from gateway.routes.views import private_user, public_user

__all__ = ["resolve_user", "routes"]

routes = RouteTable("users", "Profiles and the game state of each user")
_UID: Final = path_param("uid", "a user id, or `me` for the signed-in user")
_MAX_KNOWN: Final = 100_000


async def resolve_user(call: Call, uid: str) -> str:
    """The id of an existing user (``me`` = the caller), else a 404. Users are never deleted,
    so ids seen once are remembered (bounded) and skip the store on the next request."""
    if uid == "me":
        return call.user.user_id
    known = call.gateway.known_users
    if uid in known:
        return uid
    if await call.gateway.accounts.get(uid) is None:
        raise Problem("not-found", f"uid: no user {uid!r}", field="uid", rule="exists")
    known[uid] = None
    if len(known) > _MAX_KNOWN:
        known.popitem(last=False)
    return uid


def _profile(call: Call, uid: str) -> Any:
    return call.gateway.node.system.ref(USER_KIND, uid)


def _refused(reply: dict[str, Any], field: str) -> None:
    if "error" in reply:
        raise Problem("validation-failed", f"{field}: {reply['error']}", field=field,
                      rule="valid")


@routes.get("/users/me", summary="The signed-in user", responses={200: "User"},
            problems=(401,))
async def get_me(call: Call) -> Reply:
    """The caller's own account, with email, preferences, tier and role."""
    user = await call.gateway.accounts.get(call.user.user_id)
    if user is None:
        raise Problem("invalid-token", "the token's user no longer exists", reason="unknown_user")
    return Reply(private_user(user))


@routes.patch("/users/me", summary="Update the signed-in user's profile",
              body="ProfileChanges", responses={200: "User"}, problems=(401, 422))
async def patch_me(call: Call) -> Reply:
    """Changes names, bio, avatar or preferences; ``preferences.leaderboard_opt_out`` also
    hides (or shows again) the user on every leaderboard."""
    uid = call.user.user_id
    user = await call.gateway.accounts.update_profile(uid, call.body,
                                                      correlation_id=call.correlation_id)
    preferences = call.body.get("preferences", {})
    if "leaderboard_opt_out" in preferences:
        await _profile(call, uid).ask(
            SetLeaderboardOptOut(opted_out=bool(preferences["leaderboard_opt_out"])))
    return Reply(private_user(user))


@routes.get("/users/me/quests", summary="The signed-in user's quests",
            responses={200: "QuestList"}, problems=(401,))
async def my_quests(call: Call) -> Reply:
    """Today's and this week's quests with their progress and reset times."""
    items = await _profile(call, call.user.user_id).ask(GetQuests())
    return Reply({"items": items})


@routes.put("/users/me/featured-achievements", summary="Choose featured achievements",
            body="FeaturedRequest", responses={200: "Featured"}, problems=(401, 422))
async def put_featured(call: Call) -> Reply:
    """At most three unlocked achievements, in the order to show them."""
    reply = await _profile(call, call.user.user_id).ask(
        SetFeatured(ids=tuple(call.body["achievement_ids"])))
    if "error" in reply:
        raise Problem("validation-failed", f"achievement_ids: {reply['error']}",
                      field="achievement_ids", rule="featured",
                      achievement_id=reply.get("achievement_id"))
    return Reply(reply)


@routes.get("/users/{user}", summary="A user's public profile", auth="optional",
            params=(path_param("user", "a user id or a handle"),),
            responses={200: "PublicUser"}, problems=(404,))
async def get_user(call: Call) -> Reply:
    """By user id (``usr_...``) or by handle (case-insensitive)."""
    ident = call.path["user"]
    accounts = call.gateway.accounts
    user = await accounts.get(ident)
    if user is None:
        user = await accounts.by_handle(ident)
    if user is None:
        raise Problem("not-found", f"user: no user with id or handle {ident!r}", field="user",
                      rule="exists")
    return Reply(public_user(user))


@routes.get("/users/{uid}/gamification", summary="A user's gamification profile",
            auth="optional", params=(_UID,), responses={200: "Gamification"},
            problems=(404,))
async def get_gamification(call: Call) -> Reply:
    """XP, level, XP to the next level, today's XP against the daily cap, streak and
    achievements (the seed's profile)."""
    uid = await resolve_user(call, call.path["uid"])
    return Reply(await _profile(call, uid).ask(GetProfile()))


@routes.get("/users/{uid}/xp-transactions", summary="A user's XP history",
            params=(_UID, LIMIT, CURSOR), responses={200: "XpTransactionPage"},
            problems=(401, 403, 404, 422))
async def get_xp_transactions(call: Call) -> Reply:
    """Newest first, by cursor. Your own; a moderator or admin may read anyone's."""
    uid = await resolve_user(call, call.path["uid"])
    if uid != call.user.user_id:
        await call.require_role("moderator")
    reply = await _profile(call, uid).ask(GetXpTransactions(
        limit=call.query.get("limit", 20), cursor=call.query.get("cursor")))
    _refused(reply, "cursor")
    return Reply(reply)


@routes.put("/users/{uid}/role", summary="Set a user's role (admin)", role="admin",
            params=(_UID,), body="RoleChange", responses={200: "User"},
            problems=(401, 403, 404, 422))
async def put_role(call: Call) -> Reply:
    """Makes a user a moderator or an admin, or a plain user again."""
    uid = await resolve_user(call, call.path["uid"])
    user = await call.gateway.accounts.set_role(uid, call.body["role"])
    return Reply(private_user(user))


@routes.put("/users/{uid}/tier", summary="Set a user's tier (admin)", role="admin",
            params=(_UID,), body="TierChange", responses={200: "User"},
            problems=(401, 403, 404, 422))
async def put_tier(call: Call) -> Reply:
    """An operator's override of the tier (billing sets it from subscriptions); the user's
    rate limits change with their next request."""
    uid = await resolve_user(call, call.path["uid"])
    user = await call.gateway.accounts.set_tier(uid, call.body["tier"])
    return Reply(private_user(user))
