"""Discussions and their threaded replies (the discussion half of
:class:`~actors.content.Content`).

A discussion (``knowledge.discussion.started``) takes replies (``knowledge.discussion.replied``)
to itself or to one of its replies, nested at most :data:`~actors.content_model.MAX_REPLY_DEPTH`
deep. Each reply has a ``path`` (its parent's path, then its own time and id), so the thread
reads back depth first, oldest first among siblings, in one indexed query, and a reply's
sub-thread is one range of paths. A closed or hidden discussion takes no replies; a hidden or
withdrawn reply keeps its place in the thread, its body withheld.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence

from actors import events
from actors.accounts import ANONYMOUS, Viewer, ensure_active
from actors.content_base import not_found, now_stamp, validate_visibility
from actors.content_core import is_listed
from actors.content_model import (
    BODY_MAX,
    BODY_MIN,
    DISCUSSIONS,
    MAX_REPLY_DEPTH,
    REPLIES,
    TITLE_MAX,
    TITLE_MIN,
    Discussion,
    Reply,
    reply_path,
)
from actors.content_service import ContentService
from actors.content_targets import TARGETS
from actors.knowledge import (
    LIMIT_DEFAULT,
    KnowledgeError,
    Listing,
    slugify,
    validate_area_ids,
    validate_limit,
    validate_tags,
    validate_text,
)


class DiscussionOps(ContentService):
    """Start, read and list discussions; reply, edit and withdraw replies."""

    async def start_discussion(
        self,
        author_id: str,
        *,
        title: str,
        body: str,
        tags: Sequence[str] = (),
        area_ids: Sequence[str] = (),
        visibility: str = "public",
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Discussion:
        title = validate_text("title", title, TITLE_MIN, TITLE_MAX)
        body = validate_text("body", body, BODY_MIN, BODY_MAX)
        clean_tags = validate_tags(tags)
        areas = validate_area_ids(area_ids)
        visibility = validate_visibility(visibility)
        await self._ready_to_post(author_id, areas)
        stamp = now_stamp(now)
        did = f"dsc_{secrets.token_hex(8)}"
        doc = {
            "_id": did, "title": title, "slug": slugify(title, fallback="discussion"),
            "body": body, "tags": list(clean_tags), "areas": list(areas),
            "visibility": visibility, "status": "open", "created_by": author_id,
            "created_at": stamp, "updated_at": stamp, "last_activity_at": stamp,
            "reply_count": 0, "view_count": 0, "like_count": 0, "comment_count": 0, "rev": 0,
        }
        doc["listed"] = is_listed(doc)
        started = events.DiscussionStarted(discussion_id=did, author_id=author_id, title=title,
                                           tags=clean_tags, area_ids=areas)
        await self._insert_counted("discussion", doc, self.envelope(
            started, f"evt_discussion_started_{did}", correlation_id, stamp))
        return Discussion.from_document(doc)

    async def get_discussion(self, discussion_id: str, *, viewer: Viewer = ANONYMOUS
                             ) -> Discussion | None:
        doc = await self._visible(DISCUSSIONS, discussion_id, viewer)
        return None if doc is None else Discussion.from_document(doc)

    async def list_discussions(
        self, *, area_id: str | None = None, tag: str | None = None,
        viewer: Viewer = ANONYMOUS, limit: int = LIMIT_DEFAULT, cursor: str | None = None,
    ) -> Listing[Discussion]:
        """Discussions anybody may see: of one area or tag (newest first), or all of them (most
        recently active first)."""
        return await self._feed(TARGETS["discussion"], Discussion.from_document,
                                area_id=area_id, tag=tag, viewer=viewer, limit=limit,
                                cursor=cursor, sort="last_activity_at")

    async def reply(
        self,
        discussion_id: str,
        author_id: str,
        *,
        body: str,
        parent_reply_id: str | None = None,
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Reply:
        """Reply to the discussion, or to one of its replies (``parent_reply_id``)."""
        body = validate_text("body", body, BODY_MIN, BODY_MAX)
        await ensure_active(self.store, author_id, field="author_id")
        discussion = await self._visible(DISCUSSIONS, discussion_id, Viewer(user_id=author_id))
        if discussion is None:
            raise not_found("discussion_id", "discussion", discussion_id)
        if discussion.get("hidden") or discussion["status"] != "open":
            state = "hidden" if discussion.get("hidden") else discussion["status"]
            raise KnowledgeError("discussion_id", "status",
                                 f"discussion {discussion_id!r} is {state}; it takes no replies")
        parent = None
        if parent_reply_id is not None:
            parent = await self.store.get(REPLIES, parent_reply_id)
            if parent is None or parent["discussion_id"] != discussion_id:
                raise not_found("parent_reply_id", f"reply in {discussion_id!r}",
                                parent_reply_id)
            if parent.get("deleted") or parent.get("hidden"):
                raise KnowledgeError("parent_reply_id", "status",
                                     f"reply {parent_reply_id!r} is deleted or hidden")
            if parent["depth"] + 1 >= MAX_REPLY_DEPTH:
                raise KnowledgeError("parent_reply_id", "depth",
                                     f"replies nest at most {MAX_REPLY_DEPTH} deep; reply to an "
                                     "earlier reply of the thread")
        stamp = now_stamp(now)
        rid = f"rpl_{secrets.token_hex(8)}"
        depth = 0 if parent is None else int(parent["depth"]) + 1
        doc = {
            "_id": rid, "discussion_id": discussion_id, "parent_reply_id": parent_reply_id,
            "depth": depth,
            "path": reply_path(None if parent is None else parent["path"], stamp, rid),
            "body": body, "created_by": author_id, "created_at": stamp, "updated_at": stamp,
            "reply_count": 0, "like_count": 0, "rev": 0,
        }
        replied = events.DiscussionReplied(
            reply_id=rid, discussion_id=discussion_id, author_id=author_id,
            discussion_author_id=discussion["created_by"], parent_reply_id=parent_reply_id,
            parent_author_id=None if parent is None else parent["created_by"],
            depth=depth)
        async with self.store.unit() as unit:
            unit.add_event(self.envelope(replied, f"evt_replied_{rid}", correlation_id, stamp))
            unit.insert(REPLIES, doc)
            unit.update(DISCUSSIONS, discussion_id, {"$inc": {"reply_count": 1},
                                                     "$set": {"last_activity_at": stamp}})
            if parent_reply_id is not None:
                unit.update(REPLIES, parent_reply_id, {"$inc": {"reply_count": 1}})
        return Reply.from_document(doc)

    async def list_replies(
        self, discussion_id: str, *, viewer: Viewer = ANONYMOUS, limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> Listing[Reply]:
        """The thread, depth first, oldest first among siblings; a hidden or deleted reply keeps
        its place with its body withheld (its author and moderators still read a hidden one)."""
        limit = validate_limit(limit)
        if await self._visible(DISCUSSIONS, discussion_id, viewer) is None:
            raise not_found("discussion_id", "discussion", discussion_id)
        page = await self.find(REPLIES, {"discussion_id": discussion_id}, [("path", 1)], limit,
                               cursor)
        items = [Reply.from_document(d, redact=bool(d.get("hidden")) and not (
            viewer.is_moderator or viewer.user_id == d["created_by"])) for d in page.items]
        return Listing(items=tuple(items), next_cursor=page.next_cursor)

    async def edit_reply(self, reply_id: str, by_user_id: str, *, body: str,
                         correlation_id: str | None = None) -> Reply:
        body = validate_text("body", body, BODY_MIN, BODY_MAX)
        doc = await self._own_revision(TARGETS["reply"], reply_id, by_user_id, {"body": body},
                                       events.ContentUpdated(target_type="reply",
                                                             target_id=reply_id,
                                                             updated_by=by_user_id,
                                                             changed_fields=("body",)),
                                       correlation_id)
        return Reply.from_document(doc)

    async def delete_reply(self, reply_id: str, by_user_id: str, *,
                           correlation_id: str | None = None) -> Reply:
        """The author withdraws a reply: it stays in the thread as a tombstone (the replies
        to it keep their place), its body gone."""
        doc = await self._own_revision(
            TARGETS["reply"], reply_id, by_user_id, {"deleted": True, "body": ""},
            events.ContentDeleted(target_type="reply", target_id=reply_id,
                                  deleted_by=by_user_id), correlation_id)
        return Reply.from_document(doc)


__all__ = ["DiscussionOps"]
