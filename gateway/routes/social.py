"""Comments on any content, likes and views (``actors.content_social``).

Comments (2 XP to the commenter) go on questions, answers, insights, discussions and resources
the commenter sees, unless hidden, closed or a draft (409). Likes (2 XP to the content's author,
once per liker and target) go on insights, discussions, replies, resources and comments;
questions and answers take votes (``POST /votes``). Liking and unliking are idempotent.
"""

from __future__ import annotations

from typing import Final

from actors.content_targets import TARGETS
from gateway.api import CURSOR, LIMIT, Call, Param, Reply, RouteTable, path_param
from gateway.routes.common import page, viewer_of
from gateway.routes.views import comment_json

__all__ = ["routes"]

routes = RouteTable("social", "Comments, likes and views on any content")

_COMMENT: Final = path_param("comment_id", "a comment id (`cmt_...`)")
_COMMENTABLE: Final = [k.name for k in TARGETS.values() if k.commentable]
_LIKEABLE: Final = [k.name for k in TARGETS.values() if k.likeable]
_LIKE_PATH: Final = (
    path_param("target_type", "what is liked: " + ", ".join(f"`{k}`" for k in _LIKEABLE),
               pattern="^(" + "|".join(_LIKEABLE) + ")$"),
    path_param("target_id", "its id"),
)


@routes.post("/comments", summary="Comment on content", body="CommentRequest",
             responses={201: "Comment"}, problems=(401, 403, 404, 409, 422))
async def post_comment(call: Call) -> Reply:
    """Emits ``knowledge.comment.added`` (2 XP to the commenter)."""
    body = call.body
    comment = await call.gateway.content.social.add_comment(
        body["target_type"], body["target_id"], call.user.user_id, body=body["body"],
        correlation_id=call.correlation_id)
    return Reply(comment_json(comment), status=201)


@routes.get("/comments", summary="The comments on a piece of content", auth="optional",
            params=(
                Param(name="target_type", required=True,
                      schema={"type": "string", "enum": _COMMENTABLE},
                      description="the kind of content"),
                Param(name="target_id", required=True,
                      schema={"type": "string", "minLength": 1, "maxLength": 64},
                      description="its id"),
                LIMIT, CURSOR), responses={200: "CommentPage"}, problems=(404, 422))
async def list_comments(call: Call) -> Reply:
    """Oldest first, by cursor; a hidden comment keeps its place with its body withheld."""
    query = call.query
    listing = await call.gateway.content.social.list_comments(
        query["target_type"], query["target_id"], viewer=await viewer_of(call),
        limit=query.get("limit", 20), cursor=query.get("cursor"))
    return Reply(page(listing, comment_json))


@routes.patch("/comments/{comment_id}", summary="Edit your comment", params=(_COMMENT,),
              body="CommentChanges", responses={200: "Comment"},
              problems=(401, 403, 404, 409, 422))
async def edit_comment(call: Call) -> Reply:
    comment = await call.gateway.content.social.edit_comment(
        call.path["comment_id"], call.user.user_id, body=call.body["body"],
        correlation_id=call.correlation_id)
    return Reply(comment_json(comment))


@routes.route("DELETE", "/comments/{comment_id}", summary="Delete your comment",
              rate="write", params=(_COMMENT,), responses={204: None},
              problems=(401, 403, 404))
async def delete_comment(call: Call) -> Reply:
    """Only its author (moderators use ``/moderation/content/comment/{id}/delete``)."""
    await call.gateway.content.social.delete_comment(
        call.path["comment_id"], call.user.user_id, correlation_id=call.correlation_id)
    return Reply(None, status=204)


@routes.put("/likes/{target_type}/{target_id}", summary="Like content", params=_LIKE_PATH,
            responses={200: "Like"}, problems=(401, 403, 404, 409, 422))
async def like(call: Call) -> Reply:
    """Idempotent (``changed`` false when already liked). Emits ``knowledge.content.liked``:
    2 XP to the author, never for liking your own content, once per liker and target."""
    kind, target_id = call.path["target_type"], call.path["target_id"]
    changed = await call.gateway.content.social.like(kind, target_id, call.user.user_id,
                                                     correlation_id=call.correlation_id)
    return Reply({"target_type": kind, "target_id": target_id, "liked": True,
                  "changed": changed})


@routes.route("DELETE", "/likes/{target_type}/{target_id}", summary="Take a like back",
              rate="write", params=_LIKE_PATH, responses={200: "Like"},
              problems=(401, 404, 422))
async def unlike(call: Call) -> Reply:
    """Idempotent (``changed`` false when not liked)."""
    kind, target_id = call.path["target_type"], call.path["target_id"]
    changed = await call.gateway.content.social.unlike(kind, target_id, call.user.user_id,
                                                       correlation_id=call.correlation_id)
    return Reply({"target_type": kind, "target_id": target_id, "liked": False,
                  "changed": changed})


@routes.get("/likes/{target_type}/{target_id}", summary="Whether you like content",
            params=_LIKE_PATH, responses={200: "Like"}, problems=(401, 422))
async def get_like(call: Call) -> Reply:
    kind, target_id = call.path["target_type"], call.path["target_id"]
    liked = await call.gateway.content.social.has_liked(kind, target_id, call.user.user_id)
    return Reply({"target_type": kind, "target_id": target_id, "liked": liked,
                  "changed": False})


@routes.post("/views", summary="Count a view", auth="optional", body="ViewRequest",
             responses={204: None}, problems=(404, 422))
async def record_view(call: Call) -> Reply:
    """One view of a question, insight, discussion or resource the caller may see (reading
    one by id counts a view already: this is for clients showing it from a cache)."""
    await call.gateway.content.social.record_view(
        call.body["target_type"], call.body["target_id"], viewer=await viewer_of(call))
    return Reply(None, status=204)
