"""Reports (any signed-in user) and moderation (moderators and admins: the routes' ``role``,
re-checked by the domain from the store): the queue of reported content, closing, hiding and
deleting content with a reason, suspending and reinstating users, the audit log
(``actors.moderation``). Every action is an event naming who (the caller) and why (the
``reason``), with a row in the audit log.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from actors.moderation import CASE_STATUSES
from gateway.api import CURSOR, LIMIT, Call, Param, Reply, RouteTable, path_param
from gateway.problems import Problem
from gateway.routes.common import TARGET_ID, TARGET_TYPE, found, page
from gateway.routes.views import action_json, case_json, report_json, suspension_json

__all__ = ["routes"]

routes = RouteTable("moderation", "Reports, the moderation queue and moderators' actions")

_ACTIONS: Final = ("close", "reopen", "hide", "unhide", "delete")
_CASE: Final = path_param("case_id", "a case id (`case_<type>_<id>`)")
_USER: Final = path_param("user_id", "a user id (`usr_...`)")
_ACTION: Final = path_param("action", "one of " + ", ".join(f"`{a}`" for a in _ACTIONS),
                            pattern="^(" + "|".join(_ACTIONS) + ")$")


@routes.post("/reports", summary="Report content", body="ReportRequest",
             responses={201: "Report"}, problems=(401, 403, 404, 409, 422))
async def report_content(call: Call) -> Reply:
    """Content you can see and did not write, once per case (a second report is a 409);
    reports on one piece of content gather in one case of the queue."""
    body = call.body
    report = await call.gateway.content.moderation.report(
        body["target_type"], body["target_id"], call.user.user_id, reason=body["reason"],
        details=body.get("details", ""), correlation_id=call.correlation_id)
    return Reply(report_json(report), status=201)


@routes.get("/moderation/queue", summary="The moderation queue", role="moderator", params=(
    Param(name="status", schema={"type": "string", "enum": list(CASE_STATUSES),
                                 "default": "open"}, description="open or resolved cases"),
    LIMIT, CURSOR), responses={200: "CasePage"}, problems=(401, 403, 422))
async def moderation_queue(call: Call) -> Reply:
    """Most reported first, then oldest first, by cursor."""
    listing = await call.gateway.content.moderation.queue(
        call.user.user_id, status=call.query.get("status", "open"),
        limit=call.query.get("limit", 20), cursor=call.query.get("cursor"))
    return Reply(page(listing, case_json))


@routes.get("/moderation/cases/{case_id}", summary="A case", role="moderator",
            params=(_CASE,), responses={200: "Case"}, problems=(401, 403, 404))
async def get_case(call: Call) -> Reply:
    case_id = call.path["case_id"]
    case = await call.gateway.content.moderation.get_case(case_id, call.user.user_id)
    return Reply(case_json(found(case, "case_id", "case", case_id)))


@routes.get("/moderation/cases/{case_id}/reports", summary="A case's reports",
            role="moderator", params=(_CASE, LIMIT, CURSOR), responses={200: "ReportPage"},
            problems=(401, 403, 422))
async def list_case_reports(call: Call) -> Reply:
    """Oldest first, by cursor."""
    listing = await call.gateway.content.moderation.reports_of(
        call.path["case_id"], call.user.user_id, limit=call.query.get("limit", 20),
        cursor=call.query.get("cursor"))
    return Reply(page(listing, report_json))


@routes.post("/moderation/cases/{case_id}/resolve", summary="Resolve a case",
             role="moderator", params=(_CASE,), body="CaseResolution",
             responses={200: "Case"}, problems=(401, 403, 404, 409, 422))
async def resolve_case(call: Call) -> Reply:
    """``dismissed``, or ``actioned`` (optionally hiding, deleting or closing the content
    first, with ``note`` as the reason)."""
    body = call.body
    case = await call.gateway.content.moderation.resolve(
        call.path["case_id"], call.user.user_id, resolution=body["resolution"],
        note=body.get("note", ""), action=body.get("action"),
        correlation_id=call.correlation_id)
    return Reply(case_json(case))


@routes.post("/moderation/content/{target_type}/{target_id}/{action}",
             summary="Close, reopen, hide, unhide or delete content", role="moderator",
             params=(TARGET_TYPE, TARGET_ID, _ACTION), body="ModerationReason",
             responses={200: "ModerationOutcome"}, problems=(401, 403, 404, 409, 422))
async def moderate_content(call: Call) -> Reply:
    """Close and reopen: questions and discussions. Hide and unhide: any content, areas too
    (hidden content leaves every listing and search, and only its owners and moderators see
    it). Delete: with everything hanging from it (an area only when empty). Each is an event
    and an audit-log row with the moderator and the reason."""
    moderation = call.gateway.content.moderation
    kind, target_id, action = (call.path["target_type"], call.path["target_id"],
                               call.path["action"])
    reason = call.body["reason"]
    removed = 0
    if action == "delete":
        removed = await moderation.delete(kind, target_id, call.user.user_id, reason=reason,
                                          correlation_id=call.correlation_id)
    else:
        act = {"close": moderation.close, "reopen": moderation.reopen,
               "hide": moderation.hide, "unhide": moderation.unhide}[action]
        await act(kind, target_id, call.user.user_id, reason=reason,
                  correlation_id=call.correlation_id)
    return Reply({"action": action, "target_type": kind, "target_id": target_id,
                  "moderator_id": call.user.user_id, "reason": reason, "removed": removed})


@routes.get("/moderation/actions", summary="The moderation audit log", role="moderator",
            params=(Param(name="target_id", schema={"type": "string", "maxLength": 64},
                          description="the actions on one target"),
                    Param(name="moderator_id", schema={"type": "string", "maxLength": 64},
                          description="the actions of one moderator"),
                    LIMIT, CURSOR), responses={200: "ModerationActionPage"},
            problems=(401, 403, 422))
async def list_moderation_actions(call: Call) -> Reply:
    """Newest first, by cursor."""
    query = call.query
    listing = await call.gateway.content.moderation.actions(
        call.user.user_id, target_id=query.get("target_id"),
        by_moderator_id=query.get("moderator_id"), limit=query.get("limit", 20),
        cursor=query.get("cursor"))
    return Reply(page(listing, action_json))


def _until(raw: str | None) -> dt.datetime | None:
    if raw is None:
        return None
    try:
        until = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise Problem("validation-failed", f"until: {raw!r:.60} is not an RFC 3339 date-time",
                      status=422, field="until", rule="format") from None
    if until.tzinfo is None:
        raise Problem("validation-failed", f"until: {raw!r:.60} has no UTC offset; add one "
                      "(Z or +hh:mm)", status=422, field="until", rule="format")
    return until


@routes.post("/moderation/users/{user_id}/suspend", summary="Suspend a user",
             role="moderator", params=(_USER,), body="SuspendRequest",
             responses={200: "Suspension"}, problems=(401, 403, 404, 409, 422))
async def suspend_user(call: Call) -> Reply:
    """Until ``until`` (absent: until reinstated). A moderator suspends users; an admin
    suspends users and moderators; nobody suspends an admin or themselves. A suspended user
    cannot sign in nor write."""
    body = call.body
    user = await call.gateway.content.moderation.suspend_user(
        call.path["user_id"], call.user.user_id, reason=body["reason"],
        until=_until(body.get("until")), correlation_id=call.correlation_id)
    return Reply(suspension_json(user))


@routes.post("/moderation/users/{user_id}/reinstate", summary="Reinstate a suspended user",
             role="moderator", params=(_USER,), body="ModerationReason",
             responses={200: "Suspension"}, problems=(401, 403, 404, 409, 422))
async def reinstate_user(call: Call) -> Reply:
    """Ends the suspension (nothing changes for a user not suspended)."""
    user = await call.gateway.content.moderation.reinstate_user(
        call.path["user_id"], call.user.user_id, reason=call.body["reason"],
        correlation_id=call.correlation_id)
    return Reply(suspension_json(user))
