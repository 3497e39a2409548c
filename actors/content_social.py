"""Comments, likes and views, on any kind of content that takes them
(:data:`actors.content_targets.TARGETS`).

- Comments (``knowledge.comment.added``, 2 XP to the commenter) go on questions, answers,
  insights, discussions and resources that the commenter may see and that are neither hidden,
  closed nor drafts; they read back oldest first, a hidden one with its body withheld.
- Likes (``knowledge.content.liked``, 2 XP to the content's author, never for liking one's own
  content, once per liker and target however often they unlike and like again): one per user
  and target, on insights, discussions, replies, resources and comments (questions and answers
  take votes instead). Unliking emits ``knowledge.content.unliked``. The target's
  ``like_count`` moves in the like's own unit, and two concurrent likes by one user count once.
- Views: ``view_count`` of a question, insight, discussion or resource, one per call.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, Final

from actors import events
from actors.accounts import ANONYMOUS, Viewer, ensure_active
from actors.content_base import not_found, now_stamp
from actors.content_model import COMMENT_MAX, COMMENT_MIN, COMMENTS, LIKES, Comment
from actors.content_service import ContentService, write_removal
from actors.content_targets import TARGETS, TargetKind, removal, target_kind
from actors.knowledge import LIMIT_DEFAULT, KnowledgeError, Listing, validate_limit, validate_text

#: The kinds whose views are counted.
VIEWED: Final = ("question", "insight", "discussion", "resource")


def like_id(target_type: str, target_id: str, user_id: str) -> str:
    return f"like_{target_type}_{target_id}_{user_id}"


def _open_for(kind: TargetKind, doc: dict[str, Any], action: str) -> None:
    """Refuse ``action`` on hidden, closed or draft content."""
    if doc.get("hidden"):
        state = "hidden by a moderator"
    elif doc.get("status") in ("closed", "draft"):
        state = str(doc["status"])
    else:
        return
    raise KnowledgeError("target_id", "status",
                         f"{kind.name} {doc['_id']!r} is {state}; it takes no {action}")


class Social(ContentService):
    """Comment, like and view operations."""

    # -- comments --------------------------------------------------------------------------------
    async def add_comment(
        self,
        target_type: str,
        target_id: str,
        author_id: str,
        *,
        body: str,
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Comment:
        kind = target_kind(target_type, allows="commentable")
        body = validate_text("body", body, COMMENT_MIN, COMMENT_MAX)
        await ensure_active(self.store, author_id, field="author_id")
        target = await self._target(kind, target_id, Viewer(user_id=author_id))
        _open_for(kind, target, "comments")
        stamp = now_stamp(now)
        cid = f"cmt_{secrets.token_hex(8)}"
        doc = {"_id": cid, "target_type": kind.name, "target_id": target_id, "body": body,
               "created_by": author_id, "created_at": stamp, "updated_at": stamp,
               "like_count": 0, "rev": 0}
        added = events.CommentAdded(comment_id=cid, target_type=kind.name, target_id=target_id,
                                    author_id=author_id, target_author_id=target["created_by"])
        async with self.store.unit() as unit:
            unit.add_event(self.envelope(added, f"evt_comment_added_{cid}", correlation_id,
                                         stamp))
            unit.insert(COMMENTS, doc)
            unit.update(kind.collection, target_id, {"$inc": {"comment_count": 1}})
        return Comment.from_document(doc)

    async def list_comments(
        self, target_type: str, target_id: str, *, viewer: Viewer = ANONYMOUS,
        limit: int = LIMIT_DEFAULT, cursor: str | None = None,
    ) -> Listing[Comment]:
        """The comments on a target the viewer may see, oldest first."""
        kind = target_kind(target_type, allows="commentable")
        limit = validate_limit(limit)
        await self._target(kind, target_id, viewer)
        page = await self.find(COMMENTS, {"target_id": target_id}, [("created_at", 1)], limit,
                               cursor)
        items = [Comment.from_document(d, redact=bool(d.get("hidden")) and not (
            viewer.is_moderator or viewer.user_id == d["created_by"])) for d in page.items]
        return Listing(items=tuple(items), next_cursor=page.next_cursor)

    async def edit_comment(self, comment_id: str, by_user_id: str, *, body: str,
                           correlation_id: str | None = None) -> Comment:
        body = validate_text("body", body, COMMENT_MIN, COMMENT_MAX)
        updated = events.ContentUpdated(target_type="comment", target_id=comment_id,
                                        updated_by=by_user_id, changed_fields=("body",))
        doc = await self._own_revision(TARGETS["comment"], comment_id, by_user_id,
                                       {"body": body}, updated, correlation_id)
        return Comment.from_document(doc)

    async def delete_comment(self, comment_id: str, by_user_id: str, *,
                             correlation_id: str | None = None) -> None:
        """The author deletes their comment (and its likes)."""
        kind = TARGETS["comment"]
        doc = await self.store.get(COMMENTS, comment_id)
        if doc is None:
            raise not_found("comment_id", "comment", comment_id)
        if doc["created_by"] != by_user_id:
            raise KnowledgeError("by_user_id", "forbidden",
                                 f"only the author {doc['created_by']!r} may delete "
                                 f"{comment_id!r}, not {by_user_id!r}")
        plan = await removal(self.store, kind, doc)
        deleted = events.ContentDeleted(target_type="comment", target_id=comment_id,
                                        deleted_by=by_user_id)
        await write_removal(self, plan, deleted, comment_id, correlation_id,
                            {"removed": plan.removed})

    # -- likes -----------------------------------------------------------------------------------
    async def like(self, target_type: str, target_id: str, user_id: str, *,
                   correlation_id: str | None = None) -> bool:
        """``user_id`` likes the target; True if they did not already."""
        kind = target_kind(target_type, allows="likeable")
        await ensure_active(self.store, user_id, field="user_id")
        target = await self._target(kind, target_id, Viewer(user_id=user_id))
        if target.get("hidden") or target.get("status") == "draft":
            raise KnowledgeError("target_id", "status",
                                 f"{kind.name} {target_id!r} is hidden or a draft; it takes no "
                                 "likes")
        return await self._toggle_like(kind, target, user_id, True, correlation_id)

    async def unlike(self, target_type: str, target_id: str, user_id: str, *,
                     correlation_id: str | None = None) -> bool:
        """``user_id`` takes their like back; True if they had liked it."""
        kind = target_kind(target_type, allows="likeable")
        target = await self.store.get(kind.collection, target_id)
        if target is None:
            raise not_found("target_id", kind.name, target_id)
        return await self._toggle_like(kind, target, user_id, False, correlation_id)

    async def has_liked(self, target_type: str, target_id: str, user_id: str) -> bool:
        kind = target_kind(target_type, allows="likeable")
        row = await self.store.get(LIKES, like_id(kind.name, target_id, user_id))
        return bool(row and row["active"])

    async def _toggle_like(self, kind: TargetKind, target: dict[str, Any], user_id: str,
                           active: bool, correlation_id: str | None) -> bool:
        target_id, author = target["_id"], target["created_by"]

        def evt(on: bool) -> object:
            cls = events.ContentLiked if on else events.ContentUnliked
            return cls(target_type=kind.name, target_id=target_id, liker_id=user_id,
                       author_id=author)

        return await self.toggle(
            LIKES, like_id(kind.name, target_id, user_id), active=active,
            fields={"user_id": user_id, "target_type": kind.name, "target_id": target_id,
                    "author_id": author},
            event=evt, counter=(kind.collection, target_id, "like_count"),
            correlation_id=correlation_id)

    # -- views -----------------------------------------------------------------------------------
    async def record_view(self, target_type: str, target_id: str, *,
                          viewer: Viewer = ANONYMOUS) -> None:
        """Count one view of content the viewer may see."""
        if target_type not in VIEWED:
            raise KnowledgeError("target_type", "enum",
                                 f"{target_type!r:.40} is not one of {', '.join(VIEWED)}")
        kind = TARGETS[target_type]
        await self._target(kind, target_id, viewer)
        await self.store.update(kind.collection, target_id, {"$inc": {"view_count": 1}})

    async def _target(self, kind: TargetKind, target_id: str, viewer: Viewer
                      ) -> dict[str, Any]:
        doc = await self._visible(kind.collection, target_id, viewer)
        if doc is None:
            raise not_found("target_id", kind.name, target_id)
        return doc


__all__ = ["VIEWED", "Social", "like_id"]
