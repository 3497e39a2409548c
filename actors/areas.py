"""Areas: the hierarchy knowledge is organised in (the seed's ``areas`` collection).

An area has a ``parent_id`` (None at the top), a globally unique ``slug`` (its URL), tags, a
``visibility`` (:mod:`actors.content_core`), followers (``follower_count``) and ``content_count``
(the questions, published insights, discussions and resources in it, moved by their own units).

Breadcrumbs. Each area stores its ancestors, root first, as ``breadcrumbs`` (``id``, ``slug``,
``title`` each), with ``ancestor_ids`` and ``depth`` (0 at the top, at most
:data:`MAX_DEPTH` - 1). A move or a rename rewrites the breadcrumbs of the area and of every
descendant in one unit, top-down from the new parent, so no area ever reads a stale trail. Moving
an area under itself or one of its descendants is refused (``new_parent_id``, ``cycle``).

Concurrency. The tree's shape (creations, moves, renames, deletions) changes one revision at a
time: each such unit carries the event ``evt_area_tree_<rev>`` computed from the tree revision
it read (``area_tree``), so two concurrent changes never both commit and the second retries on a
fresh read. Otherwise a move could miss a child created meanwhile, or two crossing moves could
close a cycle. Areas are a curated taxonomy (created at human pace), so serialising their shape
costs nothing that matters; follows, tags, details and counters do not take part in it. Slugs are
unique by an index as well: a derived slug takes the first free ``-2``, ``-3``... suffix, an
explicit one that is taken is refused (``slug``, ``unique``).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import attrs
import trio

from actors import events
from actors.accounts import ANONYMOUS, Viewer, ensure_active
from actors.content_base import (
    StoreService,
    conflict,
    not_found,
    now_stamp,
    validate_reason,
    validate_visibility,
)
from actors.content_core import AREAS, visible_to
from actors.knowledge import (
    LIMIT_DEFAULT,
    KnowledgeError,
    Listing,
    slugify,
    validate_limit,
    validate_tags,
    validate_text,
)
from tektree.persistence import EVENTS, DuplicateKeyError, IndexSpec, Unit

AREA_FOLLOWERS: Final = "area_followers"
AREA_TREE: Final = "area_tree"
TREE_ID: Final = "tree"
#: Levels of the hierarchy: depths 0 (top) to MAX_DEPTH - 1.
MAX_DEPTH: Final = 8
#: At most this many areas move (or are renamed in their breadcrumbs) in one unit.
MAX_SUBTREE: Final = 2000
TITLE_MIN, TITLE_MAX = 3, 120
DETAILS_MAX: Final = 5000
SLUG_MAX: Final = 80
#: A change of the tree's shape computed from a stale read is retried at most this many times.
TREE_ATTEMPTS: Final = 64
UPDATABLE: Final = ("title", "slug", "details", "tags", "visibility")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

INDEXES: Final = (
    (AREAS, IndexSpec(fields=(("parent_id", 1), ("created_at", -1)), name="areas_parent_time")),
    (AREAS, IndexSpec(fields=(("tags", 1),), name="areas_tags")),
    (AREAS, IndexSpec(fields=(("created_by", 1),), name="areas_author")),
    (AREAS, IndexSpec(fields=(("slug", 1),), unique=True, name="areas_slug_unique")),
    (AREA_FOLLOWERS, IndexSpec(fields=(("user_id", 1), ("active", 1), ("created_at", -1)),
                               name="area_followers_user_time")),
    (AREA_FOLLOWERS, IndexSpec(fields=(("area_id", 1), ("active", 1), ("created_at", -1)),
                               name="area_followers_area_time")),
)


@attrs.frozen(kw_only=True)
class TreeChange:
    """What a change of the tree's shape writes: its ``event`` (None: nothing changes), the area
    as it will be, and the operations."""

    event: object | None
    doc: Mapping[str, Any]
    write: Callable[[Unit], None] = lambda unit: None


@attrs.frozen(kw_only=True)
class Breadcrumb:
    id: str
    slug: str
    title: str


@attrs.frozen(kw_only=True)
class Area:
    """An area as stored (``breadcrumbs``: its ancestors, root first)."""

    id: str
    title: str
    slug: str
    parent_id: str | None
    details: str
    tags: tuple[str, ...]
    breadcrumbs: tuple[Breadcrumb, ...]
    depth: int
    visibility: str
    created_by: str
    created_at: str
    updated_at: str
    follower_count: int
    content_count: int
    child_count: int
    hidden: bool

    @property
    def trail(self) -> str:
        """The seed's breadcrumb string: ``"Programming > Architecture > Event-Driven"``."""
        return " > ".join([*(c.title for c in self.breadcrumbs), self.title])

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Area:
        return cls(
            id=doc["_id"], title=doc["title"], slug=doc["slug"], parent_id=doc["parent_id"],
            details=doc["details"], tags=tuple(doc["tags"]),
            breadcrumbs=tuple(Breadcrumb(**c) for c in doc["breadcrumbs"]), depth=doc["depth"],
            visibility=doc["visibility"], created_by=doc["created_by"],
            created_at=doc["created_at"], updated_at=doc["updated_at"],
            follower_count=doc["follower_count"], content_count=doc["content_count"],
            child_count=doc["child_count"], hidden=bool(doc.get("hidden", False)),
        )


# -- pure rules ------------------------------------------------------------------------------------
def validate_slug(value: object) -> str:
    if not isinstance(value, str) or len(value) > SLUG_MAX or not _SLUG.fullmatch(value):
        raise KnowledgeError("slug", "format",
                             f"{value!r:.90} must be lowercase letters and digits in words joined "
                             f"by single '-', at most {SLUG_MAX} characters")
    return value


def free_slug(base: str, taken: set[str]) -> str:
    """``base`` if free, else ``base-2``, ``base-3``... the first free one."""
    if base not in taken:
        return base
    n = 2
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def crumb(doc: Mapping[str, Any]) -> dict[str, str]:
    return {"id": doc["_id"], "slug": doc["slug"], "title": doc["title"]}


def lineage(parent: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``breadcrumbs``, ``ancestor_ids`` and ``depth`` of a child of ``parent``."""
    if parent is None:
        return {"breadcrumbs": [], "ancestor_ids": [], "depth": 0}
    crumbs = [*parent["breadcrumbs"], crumb(parent)]
    return {"breadcrumbs": crumbs, "ancestor_ids": [c["id"] for c in crumbs],
            "depth": len(crumbs)}


def rebuilt_lineages(
    root: Mapping[str, Any], parent: Mapping[str, Any] | None,
    descendants: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """The new lineage of ``root`` (as it will be: new title and slug included) under
    ``parent``, and of each of its ``descendants`` (in breadth-first order), by id."""
    out = {root["_id"]: lineage(parent)}
    docs = {root["_id"]: root}
    for doc in descendants:
        parent_doc = docs[doc["parent_id"]]
        out[doc["_id"]] = lineage({**parent_doc, **out[parent_doc["_id"]]})
        docs[doc["_id"]] = doc
    return out


# -- the service -----------------------------------------------------------------------------------
class Areas(StoreService):
    """Area operations over a :class:`~tektree.persistence.DocumentStore`."""

    INDEXES = INDEXES

    # -- reads ---------------------------------------------------------------------------------
    async def get_area(self, area_id: str, *, viewer: Viewer = ANONYMOUS) -> Area | None:
        doc = await self.store.get(AREAS, area_id)
        if doc is None or not await visible_to(self.store, viewer, doc):
            return None
        return Area.from_document(doc)

    async def get_by_slug(self, slug: str, *, viewer: Viewer = ANONYMOUS) -> Area | None:
        page = await self.store.find(AREAS, {"slug": str(slug)}, limit=1)
        if not page.items or not await visible_to(self.store, viewer, page.items[0]):
            return None
        return Area.from_document(page.items[0])

    async def list_children(
        self, parent_id: str | None = None, *, viewer: Viewer = ANONYMOUS,
        limit: int = LIMIT_DEFAULT, cursor: str | None = None,
    ) -> Listing[Area]:
        """The sub-areas of ``parent_id`` (top-level areas for None), newest first. Areas the
        viewer may not see are left out of the page they fall in (a page can hold fewer than
        ``limit``; ``next_cursor`` still goes on)."""
        limit = validate_limit(limit)
        if parent_id is not None and await self.get_area(parent_id, viewer=viewer) is None:
            raise not_found("parent_id", "area", parent_id)
        filter_: dict[str, Any] = {"parent_id": parent_id}
        if not viewer.is_moderator:
            filter_["hidden"] = {"$ne": True}
        page = await self.find(AREAS, filter_, [("created_at", -1)], limit, cursor)
        items = [Area.from_document(d) for d in page.items
                 if await visible_to(self.store, viewer, d)]
        return Listing(items=tuple(items), next_cursor=page.next_cursor)

    async def subtree_ids(self, area_id: str, *, limit: int = MAX_SUBTREE) -> list[str]:
        """``area_id`` and the ids of its descendants, breadth first (at most ``limit``)."""
        return [d["_id"] for d in await self._subtree(area_id, limit=limit)]

    async def _subtree(self, area_id: str, *, limit: int = MAX_SUBTREE) -> list[dict[str, Any]]:
        root = await self.store.get(AREAS, area_id)
        if root is None:
            raise not_found("area_id", "area", area_id)
        found, level = [root], [area_id]
        while level and len(found) < limit:
            page = await self.store.find(AREAS, {"parent_id": {"$in": level}},
                                         sort=[("created_at", 1)], limit=limit - len(found) + 1)
            if len(found) + len(page.items) > limit:
                raise KnowledgeError("area_id", "range",
                                     f"area {area_id!r} has more than {limit - 1} descendants; "
                                     f"at most {MAX_SUBTREE - 1} move or are renamed at once")
            found.extend(page.items)
            level = [d["_id"] for d in page.items]
        return found

    # -- the tree's shape ----------------------------------------------------------------------
    async def create_area(
        self,
        by_user_id: str,
        *,
        title: str,
        slug: str | None = None,
        parent_id: str | None = None,
        details: str = "",
        tags: Sequence[str] = (),
        visibility: str = "public",
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Area:
        """A new area, under ``parent_id`` (which ``by_user_id`` must see) or at the top."""
        title = validate_text("title", title, TITLE_MIN, TITLE_MAX)
        explicit = None if slug is None else validate_slug(slug)
        details = validate_text("details", details, 0, DETAILS_MAX)
        clean_tags = validate_tags(tags)
        visibility = validate_visibility(visibility)
        await ensure_active(self.store, by_user_id, field="by_user_id")
        viewer = await self.viewer(by_user_id)
        area_id = f"area_{secrets.token_hex(8)}"
        stamp = now_stamp(now)

        async def build() -> TreeChange:
            parent = None
            if parent_id is not None:
                parent = await self.store.get(AREAS, parent_id)
                if parent is None or not await visible_to(self.store, viewer, parent):
                    raise not_found("parent_id", "area", parent_id)
                if parent["depth"] + 1 >= MAX_DEPTH:
                    raise KnowledgeError("parent_id", "depth",
                                         f"area {parent_id!r} is at the deepest level "
                                         f"({MAX_DEPTH} levels); choose a higher parent")
            doc = {
                "_id": area_id, "title": title,
                "slug": explicit or await self._free_slug(slugify(title, fallback="area")),
                "parent_id": parent_id, "details": details, "tags": list(clean_tags),
                **lineage(parent), "visibility": visibility, "created_by": by_user_id,
                "created_at": stamp, "updated_at": stamp, "follower_count": 0,
                "content_count": 0, "child_count": 0,
            }

            def write(unit: Unit) -> None:
                unit.insert(AREAS, doc)
                if parent_id is not None:
                    unit.update(AREAS, parent_id, {"$inc": {"child_count": 1}})

            created = events.AreaCreated(area_id=area_id, title=title, created_by=by_user_id,
                                         parent_id=parent_id, slug=doc["slug"],
                                         visibility=visibility)
            return TreeChange(event=created, doc=doc, write=write)

        doc = await self._change_tree(build, correlation_id, stamp)
        return Area.from_document(doc)

    async def update_area(
        self, area_id: str, by_user_id: str, changes: Mapping[str, Any], *,
        correlation_id: str | None = None,
    ) -> Area:
        """Change ``title``, ``slug``, ``details``, ``tags`` or ``visibility`` (its creator, a
        moderator or an admin). A new title or slug reaches every descendant's breadcrumbs."""
        clean = _validate_changes(changes)
        await ensure_active(self.store, by_user_id, field="by_user_id")
        stamp = now_stamp()
        if "title" not in clean and "slug" not in clean:
            doc = await self._managed(area_id, by_user_id)
            updated = events.AreaUpdated(area_id=area_id, updated_by=by_user_id,
                                         changed_fields=tuple(sorted(clean)))
            async with self.store.unit() as unit:
                unit.add_event(self.envelope(updated, f"evt_area_updated_{secrets.token_hex(8)}",
                                             correlation_id, stamp))
                unit.update(AREAS, area_id, {"$set": {**clean, "updated_at": stamp}})
            return Area.from_document({**doc, **clean, "updated_at": stamp})

        async def build() -> TreeChange:
            doc = await self._managed(area_id, by_user_id)
            new = {**doc, **clean, "updated_at": stamp}
            if new["slug"] != doc["slug"]:
                taken = await self.store.find(AREAS, {"slug": new["slug"]}, limit=1)
                if taken.items:
                    raise KnowledgeError("slug", "unique", f"{new['slug']!r} is already taken")
            subtree = await self._subtree(area_id)
            parent = None if doc["parent_id"] is None else await self.store.get(
                AREAS, doc["parent_id"])

            def write(unit: Unit) -> None:
                unit.update(AREAS, area_id, {"$set": {**clean, "updated_at": stamp}})
                self._relineage(unit, new, parent, subtree[1:], skip_root=True)

            updated = events.AreaUpdated(area_id=area_id, updated_by=by_user_id,
                                         changed_fields=tuple(sorted(clean)))
            return TreeChange(event=updated, doc=new, write=write)

        return Area.from_document(await self._change_tree(build, correlation_id, stamp))

    async def move_area(
        self, area_id: str, new_parent_id: str | None, by_user_id: str, *,
        correlation_id: str | None = None,
    ) -> Area:
        """Move ``area_id`` (and all its descendants) under ``new_parent_id`` (None: to the
        top). Its creator, a moderator or an admin may; the new parent must be visible to them
        and must not be the area or one of its descendants."""
        await ensure_active(self.store, by_user_id, field="by_user_id")
        stamp = now_stamp()
        async def build() -> TreeChange:
            doc = await self._managed(area_id, by_user_id)
            if doc["parent_id"] == new_parent_id:
                return TreeChange(event=None, doc=doc)
            parent = None
            if new_parent_id is not None:
                parent = await self.store.get(AREAS, new_parent_id)
                viewer = await self.viewer(by_user_id)
                if parent is None or not await visible_to(self.store, viewer, parent):
                    raise not_found("new_parent_id", "area", new_parent_id)
                if new_parent_id == area_id or area_id in parent["ancestor_ids"]:
                    raise KnowledgeError("new_parent_id", "cycle",
                                         f"area {new_parent_id!r} is {area_id!r} or one of its "
                                         "descendants; an area cannot move under itself")
            subtree = await self._subtree(area_id)
            height = max(d["depth"] for d in subtree) - doc["depth"]
            new_depth = 0 if parent is None else parent["depth"] + 1
            if new_depth + height >= MAX_DEPTH:
                raise KnowledgeError("new_parent_id", "depth",
                                     f"moved there, {area_id!r}'s deepest descendant would be "
                                     f"at level {new_depth + height + 1}; at most {MAX_DEPTH}")
            new = {**doc, "parent_id": new_parent_id, "updated_at": stamp}
            lineages = rebuilt_lineages(new, parent, subtree[1:])
            new.update(lineages[area_id])

            def write(unit: Unit) -> None:
                unit.update(AREAS, area_id, {"$set": {"parent_id": new_parent_id,
                                                      "updated_at": stamp}})
                if doc["parent_id"] is not None:
                    unit.update(AREAS, doc["parent_id"], {"$inc": {"child_count": -1}})
                if new_parent_id is not None:
                    unit.update(AREAS, new_parent_id, {"$inc": {"child_count": 1}})
                for doc_id, fields in lineages.items():
                    unit.update(AREAS, doc_id, {"$set": fields})

            moved = events.AreaMoved(area_id=area_id, moved_by=by_user_id,
                                     old_parent_id=doc["parent_id"],
                                     new_parent_id=new_parent_id, descendants=len(subtree) - 1)
            return TreeChange(event=moved, doc=new, write=write)

        return Area.from_document(await self._change_tree(build, correlation_id, stamp))

    async def delete_area(
        self, area_id: str, by_user_id: str, *, reason: str = "",
        correlation_id: str | None = None,
        event: Callable[[Mapping[str, Any]], object] | None = None,
        more: Callable[[Unit], None] | None = None,
    ) -> None:
        """Delete an empty area (no sub-areas, no content): its creator, a moderator or an
        admin. ``event``: the event to emit instead of ``knowledge.area.deleted``, and ``more``
        operations for the same unit (moderation records its own)."""
        reason = validate_reason(reason)
        await ensure_active(self.store, by_user_id, field="by_user_id")
        stamp = now_stamp()

        async def build() -> TreeChange:
            doc = await self._managed(area_id, by_user_id)
            if doc["child_count"] or doc["content_count"]:
                raise KnowledgeError("area_id", "not_empty",
                                     f"area {area_id!r} holds {doc['child_count']} sub-areas and "
                                     f"{doc['content_count']} pieces of content; move or delete "
                                     "them first")

            def write(unit: Unit) -> None:
                unit.delete(AREAS, area_id)
                unit.delete(AREA_FOLLOWERS, {"area_id": area_id})
                if doc["parent_id"] is not None:
                    unit.update(AREAS, doc["parent_id"], {"$inc": {"child_count": -1}})
                if more is not None:
                    more(unit)

            evt = event(doc) if event is not None else events.AreaDeleted(
                area_id=area_id, deleted_by=by_user_id, title=doc["title"],
                parent_id=doc["parent_id"])
            return TreeChange(event=evt, doc=doc, write=write)

        await self._change_tree(build, correlation_id, stamp, {"reason": reason})

    # -- followers -----------------------------------------------------------------------------
    async def follow(self, area_id: str, user_id: str, *,
                     correlation_id: str | None = None) -> bool:
        """``user_id`` follows the area (True if they did not already)."""
        return await self._follow(area_id, user_id, True, correlation_id)

    async def unfollow(self, area_id: str, user_id: str, *,
                       correlation_id: str | None = None) -> bool:
        """``user_id`` stops following the area (True if they followed it)."""
        return await self._follow(area_id, user_id, False, correlation_id)

    async def is_following(self, area_id: str, user_id: str) -> bool:
        row = await self.store.get(AREA_FOLLOWERS, f"{area_id}:{user_id}")
        return bool(row and row["active"])

    async def list_followed(
        self, user_id: str, *, limit: int = LIMIT_DEFAULT, cursor: str | None = None
    ) -> Listing[Area]:
        """The areas ``user_id`` follows, most recently followed first."""
        limit = validate_limit(limit)
        page = await self.find(AREA_FOLLOWERS, {"user_id": user_id, "active": True},
                               [("created_at", -1)], limit, cursor)
        ids = [row["area_id"] for row in page.items]
        docs = {} if not ids else {d["_id"]: d for d in (await self.store.find(
            AREAS, {"_id": {"$in": ids}}, limit=len(ids))).items}
        viewer = Viewer(user_id=user_id)
        items = [Area.from_document(docs[i]) for i in ids
                 if i in docs and await visible_to(self.store, viewer, docs[i])]
        return Listing(items=tuple(items), next_cursor=page.next_cursor)

    async def _follow(self, area_id: str, user_id: str, active: bool,
                      correlation_id: str | None) -> bool:
        if active:
            await ensure_active(self.store, user_id, field="user_id")
            if await self.get_area(area_id, viewer=Viewer(user_id=user_id)) is None:
                raise not_found("area_id", "area", area_id)

        def evt(on: bool) -> object:
            cls = events.AreaFollowed if on else events.AreaUnfollowed
            return cls(area_id=area_id, user_id=user_id)

        return await self.toggle(
            AREA_FOLLOWERS, f"{area_id}:{user_id}", active=active,
            fields={"area_id": area_id, "user_id": user_id}, event=evt,
            counter=(AREAS, area_id, "follower_count"), correlation_id=correlation_id)

    # -- internals -----------------------------------------------------------------------------
    async def _managed(self, area_id: str, by_user_id: str) -> dict[str, Any]:
        """The area, if ``by_user_id`` may manage it (its creator, a moderator, an admin)."""
        doc = await self.store.get(AREAS, area_id)
        viewer = await self.viewer(by_user_id)
        if doc is None or not await visible_to(self.store, viewer, doc):
            raise not_found("area_id", "area", area_id)
        if doc["created_by"] != by_user_id and not viewer.is_moderator:
            raise KnowledgeError("by_user_id", "forbidden",
                                 f"only the area's creator {doc['created_by']!r}, a moderator "
                                 f"or an admin may change {area_id!r}, not {by_user_id!r}")
        return doc

    async def _free_slug(self, base: str) -> str:
        base = base[:SLUG_MAX - 6].rstrip("-")
        page = await self.store.find(AREAS, {"slug": {"$gte": base, "$lt": base + "."}},
                                     limit=1000)
        taken = {d["slug"] for d in page.items}
        if page.next_cursor is not None:  # a thousand areas named alike: give up counting
            return f"{base}-{secrets.token_hex(2)}"
        return free_slug(base, taken)

    def _relineage(
        self, unit: Unit, root: Mapping[str, Any], parent: Mapping[str, Any] | None,
        descendants: Sequence[Mapping[str, Any]], *, skip_root: bool = False,
    ) -> None:
        """Record the new lineage of ``root``'s descendants (and of ``root``, unless
        ``skip_root``: its own place did not change)."""
        for doc_id, fields in rebuilt_lineages(root, parent, descendants).items():
            if not (skip_root and doc_id == root["_id"]):
                unit.update(AREAS, doc_id, {"$set": fields})

    async def _change_tree(
        self,
        build: Callable[[], Awaitable[TreeChange]],
        correlation_id: str | None,
        stamp: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run ``build`` (reads, decides, refuses) and write its change under the next tree
        revision, the claim first; retried on a fresh read when another change won."""
        for attempt in range(TREE_ATTEMPTS):
            tree = await self.store.get(AREA_TREE, TREE_ID)
            rev = (tree or {}).get("rev", 0) + 1
            change = await build()
            if change.event is None:
                return dict(change.doc)
            try:
                async with self.store.unit() as unit:
                    unit.add_event(self.envelope(change.event, f"evt_area_tree_{rev}",
                                                 correlation_id, stamp, metadata))
                    unit.update(AREA_TREE, TREE_ID, {"$set": {"rev": rev}}, upsert=True)
                    change.write(unit)
            except DuplicateKeyError as exc:
                if exc.collection == EVENTS:
                    # Another change of the tree won: back off a little, then read again.
                    await trio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
                    continue
                if exc.collection == AREAS and "slug" in exc.index:
                    raise KnowledgeError("slug", "unique",
                                         f"{exc.key.get('slug')!r} is already taken") from None
                raise
            return dict(change.doc)
        raise conflict("area_id", "the areas' hierarchy")


def _validate_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(changes, Mapping) or not changes:
        raise KnowledgeError("changes", "empty", f"name at least one of {', '.join(UPDATABLE)}")
    out: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "title":
            out[field] = validate_text("title", value, TITLE_MIN, TITLE_MAX)
        elif field == "slug":
            out[field] = validate_slug(value)
        elif field == "details":
            out[field] = validate_text("details", value, 0, DETAILS_MAX)
        elif field == "tags":
            out[field] = list(validate_tags(value))
        elif field == "visibility":
            out[field] = validate_visibility(value)
        else:
            raise KnowledgeError(str(field), "unknown",
                                 f"is not an area field that changes; allowed: "
                                 f"{', '.join(UPDATABLE)}")
    return out


__all__ = [
    "AREAS",
    "AREA_FOLLOWERS",
    "AREA_TREE",
    "INDEXES",
    "MAX_DEPTH",
    "MAX_SUBTREE",
    "Area",
    "Areas",
    "Breadcrumb",
    "crumb",
    "free_slug",
    "lineage",
    "rebuilt_lineages",
    "validate_slug",
]
