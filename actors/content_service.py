"""The machinery the content services share: posting checks, listing rows, visibility reads,
guarded revisions (edits, tombstones) and removals. :class:`~actors.content.Content` is the
service; this is its base.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from actors import events
from actors.accounts import Viewer, ensure_active
from actors.content_base import (
    StoreService,
    conflict,
    estimated_read_time_minutes,
    not_found,
    now_stamp,
)
from actors.content_core import (
    AREAS,
    CONTENT_REFS,
    Revision,
    count_content,
    is_listed,
    ref_docs,
    revise,
    unusable_areas,
    visible_to,
    write_refs,
)
from actors.content_targets import TARGETS, Removal, TargetKind
from actors.knowledge import KnowledgeError, Listing, slugify, validate_limit, validate_tags
from tektree.persistence import EVENTS, DuplicateKeyError, Unit

T = TypeVar("T")


class ContentService(StoreService):
    """The base of the content services."""

    async def _ready_to_post(self, author_id: str, areas: Sequence[str],
                             co_authors: Sequence[str] = ()) -> None:
        await ensure_active(self.store, author_id, field="author_id")
        bad = await unusable_areas(self.store, areas, Viewer(user_id=author_id))
        if bad:
            raise KnowledgeError("area_ids", "exists",
                                 f"no area {bad[0]!r} that {author_id!r} may post into")
        if author_id in co_authors:
            raise KnowledgeError("co_authors", "self", "the author is not a co-author")
        await self.require_users("co_authors", co_authors)

    def _refs(self, content_type: str, doc: Mapping[str, Any],
              listed: bool) -> list[dict[str, Any]]:
        return ref_docs(content_type, doc["_id"], area_ids=doc["areas"], tags=doc["tags"],
                        created_by=doc["created_by"],
                        at=doc.get("published_at") or doc["created_at"], listed=listed)

    async def _insert_counted(self, content_type: str, doc: dict[str, Any], envelope: Any
                              ) -> None:
        async with self.store.unit() as unit:
            unit.add_event(envelope)
            unit.insert(TARGETS[content_type].collection, doc)
            write_refs(unit, self._refs(content_type, doc, doc["listed"]))
            count_content(unit, doc["areas"], 1)

    async def _visible(self, collection: str, doc_id: str, viewer: Viewer
                       ) -> dict[str, Any] | None:
        doc = await self.store.get(collection, doc_id)
        if doc is None or not await visible_to(self.store, viewer, doc):
            return None
        return doc

    async def _area_for(self, area_id: str, viewer: Viewer) -> dict[str, Any]:
        doc = await self._visible(AREAS, area_id, viewer)
        if doc is None:
            raise not_found("area_id", "area", area_id)
        return doc

    async def _feed(
        self, kind: TargetKind, record: Callable[[Mapping[str, Any]], T], *,
        area_id: str | None, tag: str | None, viewer: Viewer, limit: int, cursor: str | None,
        filter_: Mapping[str, Any] | None = None, sort: str = "created_at",
    ) -> Listing[T]:
        """What anybody may see of ``kind``: of one area or tag (through the listing rows,
        newest first), else the documents matching ``filter_`` (default: listed), by ``sort``
        descending."""
        limit = validate_limit(limit)
        if area_id is None and tag is None:
            page = await self.find(kind.collection, filter_ or {"listed": True},
                                   [(sort, -1)], limit, cursor)
            return Listing(items=tuple(record(d) for d in page.items),
                           next_cursor=page.next_cursor)
        if area_id is not None and tag is not None:
            raise KnowledgeError("tag", "combination", "filter by area_id or by tag, not both")
        if area_id is not None:
            await self._area_for(area_id, viewer)
            facet = f"area:{area_id}"
        else:
            facet = f"tag:{validate_tags([tag])[0]}"
        refs = await self.find(CONTENT_REFS, {"facet": facet, "content_type": kind.name,
                                              "listed": True}, [("at", -1)], limit, cursor)
        ids = [row["content_id"] for row in refs.items]
        found = {} if not ids else {d["_id"]: d for d in (await self.store.find(
            kind.collection, {"_id": {"$in": ids}}, limit=len(ids))).items}
        return Listing(items=tuple(record(found[i]) for i in ids if i in found),
                       next_cursor=refs.next_cursor)

    def _edit_revision(
        self, kind: TargetKind, doc: Mapping[str, Any], clean: Mapping[str, Any],
        by_user_id: str, stamp: str, correlation_id: str | None,
    ) -> Revision | None:
        changes = {k: v for k, v in clean.items() if doc.get(k) != v}
        if not changes:
            return None
        if "title" in changes:
            changes["slug"] = slugify(changes["title"], fallback=kind.name)
        if "body" in changes and kind.name == "insight":
            changes["estimated_read_time_minutes"] = estimated_read_time_minutes(
                changes["body"])
        new = {**doc, **changes, "updated_at": stamp}
        counted_now = kind.name != "insight" or doc["status"] == "published"
        if counted_now:
            changes["listed"] = is_listed(new)
            new["listed"] = changes["listed"]

        def more(unit: Unit) -> None:
            if not counted_now:
                return
            if "areas" in changes:
                count_content(unit, set(doc["areas"]) - set(new["areas"]), -1)
                count_content(unit, set(new["areas"]) - set(doc["areas"]), 1)
            write_refs(unit, self._refs(kind.name, new, new["listed"]), replace=doc["_id"])

        changed = tuple(sorted("area_ids" if k == "areas" else k for k in clean
                               if k in changes))
        updated = events.ContentUpdated(target_type=kind.name, target_id=doc["_id"],
                                        updated_by=by_user_id, changed_fields=changed)
        return Revision(changes={**changes, "updated_at": stamp}, more=more,
                        event=lambda event_id: self.envelope(updated, event_id, correlation_id,
                                                             stamp))

    async def _own_revision(
        self, kind: TargetKind, doc_id: str, by_user_id: str, changes: Mapping[str, Any],
        evt: object, correlation_id: str | None,
    ) -> dict[str, Any]:
        await ensure_active(self.store, by_user_id, field="by_user_id")
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            if doc["created_by"] != by_user_id:
                raise KnowledgeError("by_user_id", "forbidden",
                                     f"only the author {doc['created_by']!r} may change "
                                     f"{doc_id!r}, not {by_user_id!r}")
            if doc.get("deleted"):
                raise KnowledgeError("reply_id", "status", f"reply {doc_id!r} is deleted")
            return Revision(changes={**changes, "updated_at": stamp},
                            event=lambda event_id: self.envelope(evt, event_id,
                                                                 correlation_id, stamp))

        return await self._revise(kind, doc_id, decide)

    async def _revise(
        self, kind: TargetKind, doc_id: str,
        decide: Callable[[dict[str, Any]], Revision | None],
    ) -> dict[str, Any]:
        return await revise(
            self.store, kind.collection, doc_id, rev_field="rev", decide=decide,
            missing=lambda: not_found(f"{kind.name}_id", kind.name, doc_id),
            conflict=lambda: conflict(f"{kind.name}_id", f"{kind.name} {doc_id!r}"))


async def write_removal(
    service: StoreService, plan: Removal, evt: object, target_id: str, correlation_id: str | None,
    metadata: Mapping[str, Any],
) -> None:
    """Write a removal with its event, under the one event id every deletion of ``target_id``
    uses: of two concurrent deletions (the author's and a moderator's), the second collides and
    finds nothing left to delete."""
    stamp = now_stamp()
    try:
        async with service.store.unit() as unit:
            unit.add_event(service.envelope(evt, f"evt_removed_{target_id}", correlation_id,
                                            stamp, metadata))
            plan.write(unit)
    except DuplicateKeyError as exc:
        if exc.collection == EVENTS:
            raise not_found("target_id", "content", target_id) from None
        raise


__all__ = ["ContentService", "write_removal"]
