"""Insights, discussions (with threaded replies) and resources: writing, editing, publishing,
deleting, reading and listing them.

- Insights (article, tutorial, case study, tool review) start as drafts their owners (the author
  and the co-authors) see and edit; the author publishes (``knowledge.insight.shared``, which
  pays the author 25 XP). A draft is in no area yet: it counts in its areas' ``content_count``
  and is listed from its publication on. ``estimated_read_time_minutes`` follows the body.
- Discussions and their threaded replies: :mod:`actors.content_discussions`.
- Resources are links or file metadata (``knowledge.resource.uploaded``).

Each write validates first, then stores the document, its listing rows and counters with its
event in one unit (the outbox). Edits, publication and tombstones are guarded revisions on the
document's ``rev`` (the counter moderation uses too, so a hide and an edit never both commit
from the same read). Listings show what anybody may see (:mod:`actors.content_core`); the rest
is reached by id, under the visibility rule.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from actors import events
from actors.accounts import ANONYMOUS, Viewer, ensure_active
from actors.content_base import (
    CO_AUTHORS_MAX,
    estimated_read_time_minutes,
    not_found,
    now_stamp,
    validate_flag,
    validate_url,
    validate_user_ids,
    validate_visibility,
)
from actors.content_core import (
    CONTENT_REFS,
    Revision,
    count_content,
    is_listed,
    owners_of,
    unusable_areas,
    visible_to,
    write_refs,
)
from actors.content_core import (
    INDEXES as REF_INDEXES,
)
from actors.content_discussions import DiscussionOps
from actors.content_model import (
    BODY_MAX,
    BODY_MIN,
    DESCRIPTION_MAX,
    INSIGHT_BODY_MAX,
    INSIGHT_BODY_MIN,
    INSIGHT_TYPES,
    INSIGHTS,
    RESOURCE_TYPES,
    RESOURCES,
    TITLE_MAX,
    TITLE_MIN,
    Discussion,
    Insight,
    Resource,
    validate_choice,
    validate_file,
)
from actors.content_model import (
    INDEXES as MODEL_INDEXES,
)
from actors.content_service import write_removal
from actors.content_targets import TARGETS, removal
from actors.knowledge import (
    LIMIT_DEFAULT,
    KnowledgeError,
    Listing,
    Question,
    slugify,
    validate_area_ids,
    validate_limit,
    validate_tags,
    validate_text,
)
from actors.quotas import spending
from tektree.persistence import Unit

ContentRecord = Question | Insight | Discussion | Resource
_RECORDS: Final[dict[str, Callable[[Mapping[str, Any]], Any]]] = {
    "question": Question.from_document, "insight": Insight.from_document,
    "discussion": Discussion.from_document, "resource": Resource.from_document,
}
#: The fields an owner may change, by kind.
EDITABLE: Final[dict[str, tuple[str, ...]]] = {
    "insight": ("title", "body", "insight_type", "tags", "area_ids", "co_authors", "visibility"),
    "discussion": ("title", "body", "tags", "area_ids", "visibility"),
    "resource": ("title", "description", "url", "tags", "area_ids", "visibility"),
}


@attrs.frozen(kw_only=True)
class ContentItem:
    """One entry of a mixed listing (an area's content): its kind and its record."""

    content_type: str
    item: ContentRecord


def _body_limits(kind: str) -> tuple[int, int]:
    return (INSIGHT_BODY_MIN, INSIGHT_BODY_MAX) if kind == "insight" else (BODY_MIN, BODY_MAX)


def _validate_edit(kind: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    allowed = EDITABLE[kind]
    if not isinstance(changes, Mapping) or not changes:
        raise KnowledgeError("changes", "empty", f"name at least one of {', '.join(allowed)}")
    out: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in allowed:
            raise KnowledgeError(str(field), "unknown", f"is not a {kind} field that changes; "
                                                        f"allowed: {', '.join(allowed)}")
        if field == "title":
            out["title"] = validate_text("title", value, TITLE_MIN, TITLE_MAX)
        elif field == "body":
            out["body"] = validate_text("body", value, *_body_limits(kind))
        elif field == "description":
            out["description"] = validate_text("description", value, 0, DESCRIPTION_MAX)
        elif field == "url":
            out["url"] = validate_url("url", value)
        elif field == "insight_type":
            out["insight_type"] = validate_choice("insight_type", value, INSIGHT_TYPES)
        elif field == "tags":
            out["tags"] = list(validate_tags(value))
        elif field == "area_ids":
            out["areas"] = list(validate_area_ids(value))
        elif field == "co_authors":
            out["co_authors"] = list(validate_user_ids("co_authors", value,
                                                       limit=CO_AUTHORS_MAX))
        else:
            out["visibility"] = validate_visibility(value)
    return out


class Content(DiscussionOps):
    """Insight, discussion, reply and resource operations."""

    INDEXES = (*MODEL_INDEXES, *REF_INDEXES)

    # -- insights --------------------------------------------------------------------------------
    async def create_insight(
        self,
        author_id: str,
        *,
        title: str,
        body: str,
        insight_type: str = "article",
        tags: Sequence[str] = (),
        area_ids: Sequence[str] = (),
        co_authors: Sequence[str] = (),
        visibility: str = "public",
        now: dt.datetime | None = None,
    ) -> Insight:
        """A draft insight: only its owners (and nobody else, moderators included) see it until
        the author publishes it."""
        title = validate_text("title", title, TITLE_MIN, TITLE_MAX)
        body = validate_text("body", body, INSIGHT_BODY_MIN, INSIGHT_BODY_MAX)
        insight_type = validate_choice("insight_type", insight_type, INSIGHT_TYPES)
        clean_tags = validate_tags(tags)
        areas = validate_area_ids(area_ids)
        authors = validate_user_ids("co_authors", co_authors, limit=CO_AUTHORS_MAX)
        visibility = validate_visibility(visibility)
        await self._ready_to_post(author_id, areas, authors)
        stamp = now_stamp(now)
        doc = {
            "_id": f"ins_{secrets.token_hex(8)}", "title": title, "slug": slugify(
                title, fallback="insight"), "body": body, "insight_type": insight_type,
            "tags": list(clean_tags), "areas": list(areas), "co_authors": list(authors),
            "visibility": visibility, "status": "draft", "created_by": author_id,
            "created_at": stamp, "updated_at": stamp, "published_at": None, "view_count": 0,
            "like_count": 0, "comment_count": 0, "featured": False, "listed": False,
            "estimated_read_time_minutes": estimated_read_time_minutes(body), "rev": 0,
        }
        async with spending(self.quotas, author_id, "insights"):
            await self.store.insert(INSIGHTS, doc)
        return Insight.from_document(doc)

    async def publish_insight(
        self, insight_id: str, by_user_id: str, *, correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Insight:
        """The author publishes their draft: it enters its areas and the listings, and
        ``knowledge.insight.shared`` pays them. Publishing a published insight changes
        nothing."""
        await ensure_active(self.store, by_user_id, field="by_user_id")
        stamp = now_stamp(now)

        def decide(doc: dict[str, Any]) -> Revision | None:
            if doc["created_by"] != by_user_id:
                raise KnowledgeError("by_user_id", "forbidden",
                                     f"only the insight's author {doc['created_by']!r} may "
                                     f"publish {insight_id!r}, not {by_user_id!r}")
            if doc["status"] == "published":
                return None
            new = {**doc, "status": "published", "published_at": stamp}
            listed = is_listed(new)
            shared = events.InsightShared(
                insight_id=insight_id, author_id=by_user_id, title=doc["title"],
                insight_type=doc["insight_type"], co_author_ids=tuple(doc["co_authors"]),
                tags=tuple(doc["tags"]), area_ids=tuple(doc["areas"]))

            def more(unit: Unit) -> None:
                write_refs(unit, self._refs("insight", new, listed))
                count_content(unit, doc["areas"], 1)

            return Revision(
                changes={"status": "published", "published_at": stamp, "updated_at": stamp,
                         "listed": listed},
                event=lambda event_id: self.envelope(shared, event_id, correlation_id, stamp),
                more=more)

        doc = await self._revise(TARGETS["insight"], insight_id, decide)
        return Insight.from_document(doc)

    async def set_featured(
        self, insight_id: str, by_user_id: str, featured: bool, *,
        correlation_id: str | None = None,
    ) -> Insight:
        """Moderators and admins feature (or unfeature) a published insight."""
        featured = validate_flag("featured", featured)
        viewer = await self.viewer(by_user_id)
        if not viewer.is_moderator:
            raise KnowledgeError("by_user_id", "forbidden",
                                 f"only moderators and admins feature insights, not "
                                 f"{by_user_id!r}")
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            if doc["status"] != "published":
                raise KnowledgeError("insight_id", "status",
                                     f"insight {insight_id!r} is a draft; publish it first")
            if doc["featured"] == featured:
                return None
            updated = events.ContentUpdated(target_type="insight", target_id=insight_id,
                                            updated_by=by_user_id, changed_fields=("featured",))
            return Revision(changes={"featured": featured}, event=lambda event_id: self.envelope(
                updated, event_id, correlation_id, stamp))

        return Insight.from_document(await self._revise(TARGETS["insight"], insight_id, decide))

    async def get_insight(self, insight_id: str, *, viewer: Viewer = ANONYMOUS
                          ) -> Insight | None:
        doc = await self._visible(INSIGHTS, insight_id, viewer)
        return None if doc is None else Insight.from_document(doc)

    async def list_insights(
        self, *, area_id: str | None = None, tag: str | None = None,
        author_id: str | None = None, featured: bool | None = None,
        viewer: Viewer = ANONYMOUS, limit: int = LIMIT_DEFAULT, cursor: str | None = None,
        insight_type: str | None = None,
    ) -> Listing[Insight]:
        """Published insights anybody may see, newest first: all of them, or those of one area,
        tag, author or type, or the featured ones (one filter at a time)."""
        limit = validate_limit(limit)
        chosen = [name for name, v in (("area_id", area_id), ("tag", tag),
                                       ("author_id", author_id), ("featured", featured),
                                       ("insight_type", insight_type))
                  if v is not None]
        if len(chosen) > 1:
            raise KnowledgeError(chosen[1], "combination",
                                 f"filter by one of area_id, tag, author_id, featured, "
                                 f"insight_type at a time, not {' and '.join(chosen)}")
        filter_: dict[str, Any] = {"listed": True}
        if author_id is not None:
            filter_["created_by"] = author_id
        if insight_type is not None:
            filter_["insight_type"] = validate_choice("insight_type", insight_type,
                                                      INSIGHT_TYPES)
        if featured is not None:
            filter_["featured"] = validate_flag("featured", featured)
        return await self._feed(TARGETS["insight"], Insight.from_document, area_id=area_id,
                                tag=tag, viewer=viewer, limit=limit, cursor=cursor,
                                filter_=filter_, sort="published_at")

    async def list_drafts(
        self, author_id: str, *, limit: int = LIMIT_DEFAULT, cursor: str | None = None
    ) -> Listing[Insight]:
        """``author_id``'s own drafts, most recently changed first."""
        limit = validate_limit(limit)
        page = await self.find(INSIGHTS, {"created_by": author_id, "status": "draft"},
                               [("updated_at", -1)], limit, cursor)
        return Listing(items=tuple(Insight.from_document(d) for d in page.items),
                       next_cursor=page.next_cursor)

    # -- resources -------------------------------------------------------------------------------
    async def share_resource(
        self,
        author_id: str,
        *,
        title: str,
        resource_type: str,
        url: str | None = None,
        file: Mapping[str, Any] | None = None,
        description: str = "",
        tags: Sequence[str] = (),
        area_ids: Sequence[str] = (),
        visibility: str = "public",
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Resource:
        """A link (``url``) or a file (``file``: its metadata; the bytes are in object
        storage)."""
        title = validate_text("title", title, TITLE_MIN, TITLE_MAX)
        resource_type = validate_choice("resource_type", resource_type, RESOURCE_TYPES)
        if resource_type == "link":
            if file is not None:
                raise KnowledgeError("file", "forbidden", "a link resource has a url, no file")
            clean_url: str | None = validate_url("url", url)
            info = None
        else:
            if url is not None:
                raise KnowledgeError("url", "forbidden", "a file resource has a file, no url")
            clean_url, info = None, attrs.asdict(validate_file(file))
        description = validate_text("description", description, 0, DESCRIPTION_MAX)
        clean_tags = validate_tags(tags)
        areas = validate_area_ids(area_ids)
        visibility = validate_visibility(visibility)
        await self._ready_to_post(author_id, areas)
        stamp = now_stamp(now)
        rid = f"res_{secrets.token_hex(8)}"
        doc = {
            "_id": rid, "title": title, "slug": slugify(title, fallback="resource"),
            "description": description, "resource_type": resource_type, "url": clean_url,
            "file": info, "tags": list(clean_tags), "areas": list(areas),
            "visibility": visibility, "created_by": author_id, "created_at": stamp,
            "updated_at": stamp, "view_count": 0, "like_count": 0, "comment_count": 0,
            "download_count": 0, "rev": 0,
        }
        doc["listed"] = is_listed(doc)
        uploaded = events.ResourceUploaded(resource_id=rid, author_id=author_id, title=title,
                                           resource_type=resource_type, tags=clean_tags,
                                           area_ids=areas)
        async with spending(self.quotas, author_id, "resource_uploads",
                            correlation_id=correlation_id):
            await self._insert_counted("resource", doc, self.envelope(
                uploaded, f"evt_resource_uploaded_{rid}", correlation_id, stamp))
        return Resource.from_document(doc)

    async def get_resource(self, resource_id: str, *, viewer: Viewer = ANONYMOUS
                           ) -> Resource | None:
        doc = await self._visible(RESOURCES, resource_id, viewer)
        return None if doc is None else Resource.from_document(doc)

    async def list_resources(
        self, *, area_id: str | None = None, tag: str | None = None,
        viewer: Viewer = ANONYMOUS, limit: int = LIMIT_DEFAULT, cursor: str | None = None,
    ) -> Listing[Resource]:
        return await self._feed(TARGETS["resource"], Resource.from_document, area_id=area_id,
                                tag=tag, viewer=viewer, limit=limit, cursor=cursor)

    async def record_download(self, resource_id: str, *, viewer: Viewer = ANONYMOUS) -> None:
        """Count one download of a resource the viewer may see."""
        if await self._visible(RESOURCES, resource_id, viewer) is None:
            raise not_found("resource_id", "resource", resource_id)
        await self.store.update(RESOURCES, resource_id, {"$inc": {"download_count": 1}})

    # -- shared by the three kinds ---------------------------------------------------------------
    async def update(
        self, content_type: str, content_id: str, by_user_id: str, changes: Mapping[str, Any],
        *, correlation_id: str | None = None,
    ) -> Insight | Discussion | Resource:
        """An owner changes an insight, a discussion or a resource (``EDITABLE`` names the
        fields; an insight's co-authors are the author's to change). New areas must be visible
        to the editor; the areas' counts and the listing rows follow."""
        if content_type not in EDITABLE:
            raise KnowledgeError("content_type", "enum", f"{content_type!r:.40} is not one of "
                                                         f"{', '.join(EDITABLE)}")
        kind = TARGETS[content_type]
        clean = _validate_edit(content_type, changes)
        await ensure_active(self.store, by_user_id, field="by_user_id")
        bad = await unusable_areas(self.store, clean.get("areas", ()),
                                   Viewer(user_id=by_user_id))
        if bad:
            raise KnowledgeError("area_ids", "exists", f"no area {bad[0]!r} that "
                                                       f"{by_user_id!r} may post into")
        if "co_authors" in clean:
            await self.require_users("co_authors", clean["co_authors"])
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            if by_user_id not in owners_of(doc):
                raise KnowledgeError("by_user_id", "forbidden",
                                     f"only the owners of {content_id!r} may change it, not "
                                     f"{by_user_id!r}")
            if "co_authors" in clean and by_user_id != doc["created_by"]:
                raise KnowledgeError("co_authors", "forbidden",
                                     "only the insight's author changes its co-authors")
            if by_user_id in clean.get("co_authors", ()) and by_user_id == doc["created_by"]:
                raise KnowledgeError("co_authors", "self", "the author is not a co-author")
            return self._edit_revision(kind, doc, clean, by_user_id, stamp, correlation_id)

        doc = await self._revise(kind, content_id, decide)
        return _RECORDS[content_type](doc)  # type: ignore[no-any-return]

    async def delete(
        self, content_type: str, content_id: str, by_user_id: str, *,
        correlation_id: str | None = None,
    ) -> int:
        """The author deletes their insight, discussion or resource, and everything hanging from
        it (:func:`actors.content_targets.removal`); the number of documents removed."""
        if content_type not in EDITABLE:
            raise KnowledgeError("content_type", "enum", f"{content_type!r:.40} is not one of "
                                                         f"{', '.join(EDITABLE)}")
        kind = TARGETS[content_type]
        doc = await self.store.get(kind.collection, content_id)
        if doc is None or not await visible_to(self.store, Viewer(user_id=by_user_id), doc):
            raise not_found("content_id", content_type, content_id)
        if doc["created_by"] != by_user_id:
            raise KnowledgeError("by_user_id", "forbidden",
                                 f"only the author {doc['created_by']!r} may delete "
                                 f"{content_id!r}, not {by_user_id!r}")
        plan = await removal(self.store, kind, doc)
        deleted = events.ContentDeleted(target_type=content_type, target_id=content_id,
                                        deleted_by=by_user_id)
        await write_removal(self, plan, deleted, content_id, correlation_id,
                            {"removed": plan.removed})
        return plan.removed

    async def list_area_content(
        self, area_id: str, *, content_types: Sequence[str] | None = None,
        viewer: Viewer = ANONYMOUS, limit: int = LIMIT_DEFAULT, cursor: str | None = None,
    ) -> Listing[ContentItem]:
        """Everything in an area anybody may see (questions, insights, discussions, resources),
        newest first; ``content_types`` narrows it to one kind."""
        limit = validate_limit(limit)
        if content_types is not None and len(content_types) != 1:
            raise KnowledgeError("content_types", "count",
                                 "name one kind, or none for all of them")
        one = None if content_types is None else validate_choice(
            "content_types", content_types[0], tuple(_RECORDS))
        await self._area_for(area_id, viewer)
        filter_: dict[str, Any] = {"facet": f"area:{area_id}", "listed": True}
        if one is not None:
            filter_["content_type"] = one
        page = await self.find(CONTENT_REFS, filter_, [("at", -1)], limit, cursor)
        by_type: dict[str, list[str]] = {}
        for row in page.items:
            by_type.setdefault(row["content_type"], []).append(row["content_id"])
        docs: dict[str, dict[str, Any]] = {}
        for content_type, ids in by_type.items():
            found = await self.store.find(TARGETS[content_type].collection,
                                          {"_id": {"$in": ids}}, limit=len(ids))
            docs.update({d["_id"]: d for d in found.items})
        items = [ContentItem(content_type=row["content_type"],
                             item=_RECORDS[row["content_type"]](docs[row["content_id"]]))
                 for row in page.items if row["content_id"] in docs]
        return Listing(items=tuple(items), next_cursor=page.next_cursor)



__all__ = ["EDITABLE", "Content", "ContentItem", "ContentRecord", "write_removal"]
