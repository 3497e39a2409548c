"""What every kind of content shares below the services: who may see it, which areas it lives
in, the rows that list it by area and tag, and the guarded revision of a document.

Visibility (areas and content alike). A document is seen by its owners (its author and
co-authors) and by moderators and admins, always; by anybody else only when it is not hidden,
not a draft, and its ``visibility`` allows: ``public`` (everyone, signed in or not), ``connections``
(users connected with its author, :mod:`actors.connections`), ``private`` (nobody else).

Listing rows (``content_refs``): SQLite compares an array field as its JSON text, so "the content
of area X" and "the content tagged Y" cannot be a query on the documents' ``areas`` and ``tags``.
Each piece of content has one row per area (``facet`` ``area:<id>``) and per tag (``tag:<t>``),
written in the content's own unit, with ``listed``: True while anybody may see it (public, not
hidden, published). Listings and feeds read ``listed`` rows only: what is private, for
connections, hidden or a draft is reached by its link (and the visibility rule), never listed.

Revisions (:func:`revise`): a change computed from what was read (close a question, hide an
answer, like an insight) must not be committed twice by two writers that read the same state. A
revised document carries a counter (``rev_field``); the change's event id is derived from the
counter's next value, so the second of two such writers collides on the event's unique id, its
whole unit rolls back, and it retries from a fresh read (the event goes first in the unit, so
even a store without atomic units stops before any change).

This module imports no service (the knowledge, content and area services all import it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from actors.accounts import Viewer
from actors.connections import Connections
from tektree.persistence import (
    EVENTS,
    DocumentStore,
    DomainEvent,
    DuplicateKeyError,
    IndexSpec,
    Unit,
)

AREAS: Final = "areas"
CONTENT_REFS: Final = "content_refs"
VISIBILITIES: Final[tuple[str, ...]] = ("public", "private", "connections")

INDEXES: Final = (
    (CONTENT_REFS, IndexSpec(fields=(("facet", 1), ("listed", 1), ("at", -1)),
                             name="content_refs_facet_time")),
    (CONTENT_REFS, IndexSpec(fields=(("facet", 1), ("content_type", 1), ("listed", 1),
                                     ("at", -1)), name="content_refs_facet_type_time")),
    (CONTENT_REFS, IndexSpec(fields=(("content_id", 1),), name="content_refs_content")),
)


def owners_of(doc: Mapping[str, Any]) -> set[str]:
    """Who owns a document: its ``created_by`` and its ``co_authors``."""
    return {doc["created_by"], *doc.get("co_authors", ())}


def is_listed(doc: Mapping[str, Any]) -> bool:
    """Whether anybody may see ``doc``: public, not hidden, not a draft."""
    return (doc.get("visibility", "public") == "public" and not doc.get("hidden")
            and doc.get("status") != "draft")


async def visible_to(store: DocumentStore, viewer: Viewer, doc: Mapping[str, Any]) -> bool:
    """The visibility rule of the module's doc, for one document."""
    if viewer.user_id is not None and viewer.user_id in owners_of(doc):
        return True
    if doc.get("status") == "draft":
        return False
    if viewer.is_moderator:
        return True
    if doc.get("hidden"):
        return False
    visibility = doc.get("visibility", "public")
    if visibility == "public":
        return True
    if visibility == "connections" and viewer.user_id is not None:
        return await Connections(store).are_connected(viewer.user_id, doc["created_by"])
    return False


async def unusable_areas(
    store: DocumentStore, area_ids: Sequence[str], viewer: Viewer
) -> list[str]:
    """The ids among ``area_ids`` naming no area ``viewer`` may see (content goes only into areas
    its author sees)."""
    if not area_ids:
        return []
    page = await store.find(AREAS, {"_id": {"$in": list(area_ids)}}, limit=len(area_ids))
    found = {doc["_id"]: doc for doc in page.items}
    return [a for a in area_ids
            if a not in found or not await visible_to(store, viewer, found[a])]


def ref_docs(
    content_type: str,
    content_id: str,
    *,
    area_ids: Iterable[str],
    tags: Iterable[str] = (),
    created_by: str,
    at: str,
    listed: bool,
) -> list[dict[str, Any]]:
    """The listing rows of one piece of content."""
    facets = [f"area:{a}" for a in area_ids] + [f"tag:{t}" for t in tags]
    return [{"_id": f"{content_id}:{facet}", "content_type": content_type,
             "content_id": content_id, "facet": facet, "created_by": created_by, "at": at,
             "listed": listed} for facet in facets]


def write_refs(unit: Unit, docs: list[dict[str, Any]], *, replace: str | None = None) -> None:
    """Record ``docs`` in ``unit``; ``replace``: the content id whose old rows go first."""
    if replace is not None:
        unit.delete(CONTENT_REFS, {"content_id": replace})
    if docs:
        unit.insert_many(CONTENT_REFS, docs)


def set_listed(unit: Unit, content_id: str, listed: bool) -> None:
    unit.update(CONTENT_REFS, {"content_id": content_id}, {"$set": {"listed": listed}})


def count_content(unit: Unit, area_ids: Iterable[str], delta: int) -> None:
    """Move ``content_count`` of each area by ``delta`` (1: content arrived, -1: it left)."""
    ids = list(area_ids)
    if ids and delta:
        unit.update(AREAS, {"_id": {"$in": ids}}, {"$inc": {"content_count": delta}})


# -- guarded revisions -----------------------------------------------------------------------------
#: A revision computed from a stale read is retried at most this many times.
MAX_ATTEMPTS: Final = 16


@attrs.frozen(kw_only=True)
class Revision:
    """What :func:`revise` writes: ``changes`` to ``$set`` on the document, the ``event`` (an
    envelope factory taking the derived event id), and ``more`` operations for the same unit."""

    changes: Mapping[str, Any]
    event: Callable[[str], DomainEvent]
    more: Callable[[Unit], None] = lambda unit: None


async def revise(
    store: DocumentStore,
    collection: str,
    doc_id: str,
    *,
    rev_field: str,
    decide: Callable[[dict[str, Any]], Revision | None],
    missing: Callable[[], Exception] | None,
    conflict: Callable[[], Exception],
) -> dict[str, Any]:
    """Read ``doc_id``, let ``decide`` compute the change (``None``: nothing to do; it may raise
    to refuse), and write it guarded by ``rev_field`` (see the module's doc). ``missing``: the
    error for an absent document, or ``None`` to start from an empty one (an upsert). Returns
    the document as written."""
    for _ in range(MAX_ATTEMPTS):
        doc = await store.get(collection, doc_id)
        if doc is None:
            if missing is not None:
                raise missing()
            doc = {"_id": doc_id}
        revision = decide(doc)
        if revision is None:
            return doc
        rev = int(doc.get(rev_field, 0)) + 1
        changes = {**revision.changes, rev_field: rev}
        try:
            async with store.unit() as unit:
                unit.add_event(revision.event(f"evt_{collection}_{rev_field}_{doc_id}_{rev}"))
                unit.update(collection, doc_id, {"$set": changes}, upsert=missing is None)
                revision.more(unit)
        except DuplicateKeyError as exc:
            if exc.collection == EVENTS:
                continue
            raise
        return {**doc, **changes}
    raise conflict()


__all__ = [
    "AREAS",
    "CONTENT_REFS",
    "INDEXES",
    "MAX_ATTEMPTS",
    "VISIBILITIES",
    "Revision",
    "count_content",
    "is_listed",
    "owners_of",
    "ref_docs",
    "revise",
    "set_listed",
    "unusable_areas",
    "visible_to",
    "write_refs",
]
