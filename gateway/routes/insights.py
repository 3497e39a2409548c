"""Insights (drafts, publication, co-authors), discussions with threaded replies, and
resources (links and file metadata): ``actors.content``.

An insight starts as a draft only its owners see; the author publishes it
(``knowledge.insight.shared``: 25 XP). Reading one by id counts a view. Owners (the author and
an insight's co-authors) edit; the author deletes, with everything hanging from it.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import attrs

from actors.content_model import INSIGHT_TYPES, Discussion, Insight, Resource
from gateway.api import CURSOR, LIMIT, Call, Param, Reply, RouteTable, path_param
from gateway.routes.common import AREA_FILTER, TAG_FILTER, found, page, viewer_of
from gateway.routes.views import discussion_json, insight_json, reply_json, resource_json

__all__ = ["routes"]

routes = RouteTable("insights", "Insights, discussions with threaded replies, and resources")

_INSIGHT: Final = path_param("insight_id", "an insight id (`ins_...`)")
_DISCUSSION: Final = path_param("discussion_id", "a discussion id (`dsc_...`)")
_REPLY: Final = path_param("reply_id", "a reply id (`rpl_...`)")
_RESOURCE: Final = path_param("resource_id", "a resource id (`res_...`)")
V = TypeVar("V", Insight, Discussion, Resource)


def _viewed(record: V) -> V:
    """``record`` with the view just counted (read before it was)."""
    return attrs.evolve(record, view_count=record.view_count + 1)


def _located(kind: str, ident: str) -> dict[str, str]:
    return {"Location": f"/api/v1/{kind}s/{ident}"}


async def _delete(call: Call, kind: str, field: str) -> Reply:
    await call.gateway.content.content.delete(kind, call.path[field], call.user.user_id,
                                              correlation_id=call.correlation_id)
    return Reply(None, status=204)


async def _update(call: Call, kind: str, field: str, changes: dict[str, Any]) -> Any:
    return await call.gateway.content.content.update(
        kind, call.path[field], call.user.user_id, changes, correlation_id=call.correlation_id)


# -- insights ------------------------------------------------------------------------------------
@routes.post("/insights", summary="Write an insight (a draft)", body="InsightRequest",
             responses={201: "Insight"}, problems=(401, 403, 404, 422))
async def create_insight(call: Call) -> Reply:
    """An article, tutorial, case study or tool review, as a draft its owners see until the
    author publishes it."""
    body = call.body
    insight = await call.gateway.content.content.create_insight(
        call.user.user_id, title=body["title"], body=body["body"],
        insight_type=body.get("insight_type", "article"), tags=body.get("tags", ()),
        area_ids=body.get("area_ids", ()), co_authors=body.get("co_authors", ()),
        visibility=body.get("visibility", "public"))
    return Reply(insight_json(insight), status=201, headers=_located("insight", insight.id))


@routes.get("/insights", summary="List published insights", auth="optional", params=(
    AREA_FILTER, TAG_FILTER,
    Param(name="author_id", schema={"type": "string", "maxLength": 64},
          description="insights of one author"),
    Param(name="type", schema={"type": "string", "enum": list(INSIGHT_TYPES)},
          description="one insight type"),
    Param(name="featured", schema={"type": "boolean"}, description="featured ones only"),
    LIMIT, CURSOR), responses={200: "InsightPage"}, problems=(404, 422))
async def list_insights(call: Call) -> Reply:
    """Newest published first, by cursor; one filter at a time (area, tag, author, type or
    featured: two of them are a 422 naming the second)."""
    query = call.query
    listing = await call.gateway.content.content.list_insights(
        area_id=query.get("area_id"), tag=query.get("tag"), author_id=query.get("author_id"),
        insight_type=query.get("type"), featured=query.get("featured"),
        viewer=await viewer_of(call), limit=query.get("limit", 20), cursor=query.get("cursor"))
    return Reply(page(listing, insight_json))


@routes.get("/insights/drafts", summary="The signed-in user's drafts", params=(LIMIT, CURSOR),
            responses={200: "InsightPage"}, problems=(401, 422))
async def list_drafts(call: Call) -> Reply:
    """Most recently changed first, by cursor."""
    listing = await call.gateway.content.content.list_drafts(
        call.user.user_id, limit=call.query.get("limit", 20), cursor=call.query.get("cursor"))
    return Reply(page(listing, insight_json))


@routes.get("/insights/{insight_id}", summary="An insight", auth="optional",
            params=(_INSIGHT,), responses={200: "Insight"}, problems=(404,))
async def get_insight(call: Call) -> Reply:
    """A published insight the caller may see (a draft: its owners only), with this view
    counted once it is published."""
    services, viewer, iid = call.gateway.content, await viewer_of(call), call.path["insight_id"]
    insight = found(await services.content.get_insight(iid, viewer=viewer), "insight_id",
                    "insight", iid)
    if insight.status == "published":
        await services.social.record_view("insight", iid, viewer=viewer)
        insight = _viewed(insight)
    return Reply(insight_json(insight))


@routes.patch("/insights/{insight_id}", summary="Edit an insight", params=(_INSIGHT,),
              body="InsightChanges", responses={200: "Insight"},
              problems=(401, 403, 404, 409, 422))
async def update_insight(call: Call) -> Reply:
    """Its owners change it; only the author changes its co-authors."""
    return Reply(insight_json(await _update(call, "insight", "insight_id", call.body)))


@routes.put("/insights/{insight_id}/co-authors", summary="Set an insight's co-authors",
            params=(_INSIGHT,), body="CoAuthors", responses={200: "Insight"},
            problems=(401, 403, 404, 409, 422))
async def put_co_authors(call: Call) -> Reply:
    """The author names up to 10 registered users who co-own (see and edit) the insight."""
    changes = {"co_authors": call.body["co_authors"]}
    return Reply(insight_json(await _update(call, "insight", "insight_id", changes)))


@routes.post("/insights/{insight_id}/publish", summary="Publish an insight",
             params=(_INSIGHT,), responses={200: "Insight"}, problems=(401, 403, 404, 409))
async def publish_insight(call: Call) -> Reply:
    """The author publishes their draft: it enters its areas and the listings, and
    ``knowledge.insight.shared`` pays them. Publishing again changes nothing."""
    insight = await call.gateway.content.content.publish_insight(
        call.path["insight_id"], call.user.user_id, correlation_id=call.correlation_id)
    return Reply(insight_json(insight))


@routes.put("/insights/{insight_id}/featured", summary="Feature an insight (moderator)",
            role="moderator", params=(_INSIGHT,), body="FeaturedFlag",
            responses={200: "Insight"}, problems=(401, 403, 404, 409, 422))
async def put_featured_insight(call: Call) -> Reply:
    """Moderators and admins feature (or unfeature) a published insight."""
    insight = await call.gateway.content.content.set_featured(
        call.path["insight_id"], call.user.user_id, call.body["featured"],
        correlation_id=call.correlation_id)
    return Reply(insight_json(insight))


@routes.route("DELETE", "/insights/{insight_id}", summary="Delete an insight", rate="write",
              params=(_INSIGHT,), responses={204: None}, problems=(401, 403, 404))
async def delete_insight(call: Call) -> Reply:
    """The author deletes it with its comments and likes."""
    return await _delete(call, "insight", "insight_id")


# -- discussions and replies ---------------------------------------------------------------------
@routes.post("/discussions", summary="Start a discussion", body="DiscussionRequest",
             responses={201: "Discussion"}, problems=(401, 403, 404, 422))
async def start_discussion(call: Call) -> Reply:
    """Emits ``knowledge.discussion.started``."""
    body = call.body
    discussion = await call.gateway.content.content.start_discussion(
        call.user.user_id, title=body["title"], body=body["body"], tags=body.get("tags", ()),
        area_ids=body.get("area_ids", ()), visibility=body.get("visibility", "public"),
        correlation_id=call.correlation_id)
    return Reply(discussion_json(discussion), status=201,
                 headers=_located("discussion", discussion.id))


@routes.get("/discussions", summary="List discussions", auth="optional",
            params=(AREA_FILTER, TAG_FILTER, LIMIT, CURSOR),
            responses={200: "DiscussionPage"}, problems=(404, 422))
async def list_discussions(call: Call) -> Reply:
    """Of one area or tag (newest first), or all of them (most recently active first)."""
    query = call.query
    listing = await call.gateway.content.content.list_discussions(
        area_id=query.get("area_id"), tag=query.get("tag"), viewer=await viewer_of(call),
        limit=query.get("limit", 20), cursor=query.get("cursor"))
    return Reply(page(listing, discussion_json))


@routes.get("/discussions/{discussion_id}", summary="A discussion", auth="optional",
            params=(_DISCUSSION,), responses={200: "Discussion"}, problems=(404,))
async def get_discussion(call: Call) -> Reply:
    """With this view counted."""
    services, viewer = call.gateway.content, await viewer_of(call)
    did = call.path["discussion_id"]
    discussion = found(await services.content.get_discussion(did, viewer=viewer),
                       "discussion_id", "discussion", did)
    await services.social.record_view("discussion", did, viewer=viewer)
    return Reply(discussion_json(_viewed(discussion)))


@routes.patch("/discussions/{discussion_id}", summary="Edit a discussion",
              params=(_DISCUSSION,), body="DiscussionChanges", responses={200: "Discussion"},
              problems=(401, 403, 404, 409, 422))
async def update_discussion(call: Call) -> Reply:
    return Reply(discussion_json(await _update(call, "discussion", "discussion_id",
                                               call.body)))


@routes.route("DELETE", "/discussions/{discussion_id}", summary="Delete a discussion",
              rate="write", params=(_DISCUSSION,), responses={204: None},
              problems=(401, 403, 404))
async def delete_discussion(call: Call) -> Reply:
    """The author deletes it with its whole thread."""
    return await _delete(call, "discussion", "discussion_id")


@routes.post("/discussions/{discussion_id}/replies", summary="Reply in a discussion",
             params=(_DISCUSSION,), body="ReplyRequest", responses={201: "DiscussionReply"},
             problems=(401, 403, 404, 409, 422))
async def post_reply(call: Call) -> Reply:
    """To the discussion, or to one of its replies (``parent_reply_id``), at most 8 deep. A
    closed or hidden discussion takes no replies (409)."""
    reply = await call.gateway.content.content.reply(
        call.path["discussion_id"], call.user.user_id, body=call.body["body"],
        parent_reply_id=call.body.get("parent_reply_id"), correlation_id=call.correlation_id)
    return Reply(reply_json(reply), status=201)


@routes.get("/discussions/{discussion_id}/replies", summary="A discussion's thread",
            auth="optional", params=(_DISCUSSION, LIMIT, CURSOR),
            responses={200: "DiscussionReplyPage"}, problems=(404, 422))
async def list_replies(call: Call) -> Reply:
    """Depth first, oldest first among siblings (``depth`` and ``parent_reply_id`` give the
    tree); a withdrawn or hidden reply keeps its place with its body withheld."""
    listing = await call.gateway.content.content.list_replies(
        call.path["discussion_id"], viewer=await viewer_of(call),
        limit=call.query.get("limit", 20), cursor=call.query.get("cursor"))
    return Reply(page(listing, reply_json))


@routes.patch("/replies/{reply_id}", summary="Edit a reply", params=(_REPLY,),
              body="ReplyChanges", responses={200: "DiscussionReply"},
              problems=(401, 403, 404, 409, 422))
async def edit_reply(call: Call) -> Reply:
    reply = await call.gateway.content.content.edit_reply(
        call.path["reply_id"], call.user.user_id, body=call.body["body"],
        correlation_id=call.correlation_id)
    return Reply(reply_json(reply))


@routes.route("DELETE", "/replies/{reply_id}", summary="Withdraw a reply", rate="write",
              params=(_REPLY,), responses={200: "DiscussionReply"},
              problems=(401, 403, 404, 409))
async def delete_reply(call: Call) -> Reply:
    """It stays in the thread as a tombstone (the replies to it keep their place)."""
    reply = await call.gateway.content.content.delete_reply(
        call.path["reply_id"], call.user.user_id, correlation_id=call.correlation_id)
    return Reply(reply_json(reply))


# -- resources -----------------------------------------------------------------------------------
@routes.post("/resources", summary="Share a resource", body="ResourceRequest",
             responses={201: "Resource"}, problems=(401, 403, 404, 422))
async def share_resource(call: Call) -> Reply:
    """A link (``resource_type`` link, with ``url``) or a file's metadata (``file``: the bytes
    live in object storage). Emits ``knowledge.resource.uploaded``."""
    body = call.body
    resource = await call.gateway.content.content.share_resource(
        call.user.user_id, title=body["title"], resource_type=body["resource_type"],
        url=body.get("url"), file=body.get("file"), description=body.get("description", ""),
        tags=body.get("tags", ()), area_ids=body.get("area_ids", ()),
        visibility=body.get("visibility", "public"), correlation_id=call.correlation_id)
    return Reply(resource_json(resource), status=201, headers=_located("resource", resource.id))


@routes.get("/resources", summary="List resources", auth="optional",
            params=(AREA_FILTER, TAG_FILTER, LIMIT, CURSOR), responses={200: "ResourcePage"},
            problems=(404, 422))
async def list_resources(call: Call) -> Reply:
    """Newest first, by cursor; of one area or one tag."""
    query = call.query
    listing = await call.gateway.content.content.list_resources(
        area_id=query.get("area_id"), tag=query.get("tag"), viewer=await viewer_of(call),
        limit=query.get("limit", 20), cursor=query.get("cursor"))
    return Reply(page(listing, resource_json))


@routes.get("/resources/{resource_id}", summary="A resource", auth="optional",
            params=(_RESOURCE,), responses={200: "Resource"}, problems=(404,))
async def get_resource(call: Call) -> Reply:
    """With this view counted."""
    services, viewer = call.gateway.content, await viewer_of(call)
    rid = call.path["resource_id"]
    resource = found(await services.content.get_resource(rid, viewer=viewer), "resource_id",
                     "resource", rid)
    await services.social.record_view("resource", rid, viewer=viewer)
    return Reply(resource_json(_viewed(resource)))


@routes.post("/resources/{resource_id}/downloads", summary="Count a download",
             params=(_RESOURCE,), auth="optional", responses={204: None}, problems=(404,))
async def record_download(call: Call) -> Reply:
    """One download of a resource the caller may see."""
    await call.gateway.content.content.record_download(call.path["resource_id"],
                                                       viewer=await viewer_of(call))
    return Reply(None, status=204)


@routes.patch("/resources/{resource_id}", summary="Edit a resource", params=(_RESOURCE,),
              body="ResourceChanges", responses={200: "Resource"},
              problems=(401, 403, 404, 409, 422))
async def update_resource(call: Call) -> Reply:
    return Reply(resource_json(await _update(call, "resource", "resource_id", call.body)))


@routes.route("DELETE", "/resources/{resource_id}", summary="Delete a resource",
              rate="write", params=(_RESOURCE,), responses={204: None},
              problems=(401, 403, 404))
async def delete_resource(call: Call) -> Reply:
    return await _delete(call, "resource", "resource_id")
