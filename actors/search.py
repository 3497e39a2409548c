"""Search: full text over areas, questions and insights, with filters, in relevance order.

The seed's text indexes (areas: ``title``, ``details``; questions and insights: ``title``,
``body``; titles weigh 3 times the rest) are the store's own (SQLite FTS5 kept by triggers in the
same transaction as every document write; MongoDB text indexes), so what a unit wrote is
searchable the moment it commits and gone the moment it is deleted. The query language is
MongoDB's on both stores (:mod:`tektree.persistence._text`): words are alternatives ranked by
relevance, ``"quoted phrases"`` are required, ``-word`` excludes.

What is searched is what anybody may see: public areas, questions and published public insights
that no moderator hid. Filters: ``area_id`` (that area and every area below it; content filed in
any of them), ``tag``, ``status`` (a question's: open, closed, resolved; with it, only questions
are searched), ``content_types`` (a subset of area, question, insight).

Several kinds are merged by score, best first (MongoDB's ``textScore`` is comparable across
collections; SQLite's bm25 depends on each table's statistics, so on SQLite the merge is only
approximately by relevance: search one kind for a strict order). Pages are offsets into the
merged order, :data:`MAX_DEPTH` results deep at most.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from actors.accounts import ANONYMOUS, Viewer
from actors.areas import MAX_SUBTREE, Area, Areas
from actors.content_base import StoreService, not_found
from actors.content_core import AREAS
from actors.content_model import INSIGHTS, Insight
from actors.knowledge import (
    LIMIT_DEFAULT,
    QUESTIONS,
    KnowledgeError,
    Listing,
    Question,
    validate_limit,
    validate_status,
    validate_tags,
)
from tektree.persistence import (
    InvalidCursor,
    InvalidQuery,
    TextIndexSpec,
    decode_search_cursor,
    encode_search_cursor,
    parse_text_query,
)

SEARCHED: Final[tuple[str, ...]] = ("area", "question", "insight")
#: How deep the merged results page.
MAX_DEPTH: Final = 500
_STORE_PAGE: Final = 100

TEXT_INDEXES: Final = {
    AREAS: TextIndexSpec(fields=(("title", 3), ("details", 1)), name="areas_text"),
    QUESTIONS: TextIndexSpec(fields=(("title", 3), ("body", 1)), name="questions_text"),
    INSIGHTS: TextIndexSpec(fields=(("title", 3), ("body", 1)), name="insights_text"),
}
_COLLECTIONS: Final = {"area": AREAS, "question": QUESTIONS, "insight": INSIGHTS}
_RECORDS: Final[dict[str, Callable[[Mapping[str, Any]], Any]]] = {
    "area": Area.from_document, "question": Question.from_document,
    "insight": Insight.from_document,
}


@attrs.frozen(kw_only=True)
class SearchResult:
    """One hit: its kind, its record and its relevance (higher is better)."""

    content_type: str
    item: Area | Question | Insight
    score: float


class Search(StoreService):
    """Search operations; :meth:`ensure_indexes` declares the three text indexes."""

    async def ensure_indexes(self) -> None:
        for collection, spec in TEXT_INDEXES.items():
            await self.store.ensure_text_index(collection, spec)

    async def search(
        self,
        query: str,
        *,
        content_types: Sequence[str] | None = None,
        area_id: str | None = None,
        tag: str | None = None,
        status: str | None = None,
        viewer: Viewer = ANONYMOUS,
        limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> Listing[SearchResult]:
        """The best matches of ``query`` first (see the module's doc for the language and the
        filters). A malformed query is ``KnowledgeError("q", "syntax")`` naming what is
        wrong."""
        try:
            parsed = parse_text_query(query)
        except InvalidQuery as exc:
            raise KnowledgeError("q", "syntax", exc.detail) from None
        limit = validate_limit(limit)
        kinds = self._kinds(content_types, status)
        clean_tag = None if tag is None else validate_tags([tag])[0]
        clean_status = None if status is None else validate_status(status)
        fingerprint = hashlib.sha256(json.dumps(
            [attrs.astuple(parsed), kinds, area_id, clean_tag, clean_status],
            default=str).encode()).hexdigest()[:16]
        try:
            offset = decode_search_cursor(cursor, fingerprint, depth=MAX_DEPTH)
        except InvalidCursor as exc:
            raise KnowledgeError("cursor", "valid", exc.detail + "; pass the next_cursor of "
                                 "the previous page of the same search") from None
        areas = None if area_id is None else await self._subtree(area_id, viewer)
        size = min(limit, MAX_DEPTH - offset)
        wanted = offset + size + 1
        hits: list[SearchResult] = []
        for kind in kinds:
            filter_ = _filter(kind, areas, clean_tag, clean_status)
            hits += await self._top(kind, query, filter_, wanted)
        hits.sort(key=lambda h: (-h.score, SEARCHED.index(h.content_type), h.item.id))
        page = hits[offset:offset + size]
        more = len(hits) > offset + size and offset + size < MAX_DEPTH
        return Listing(items=tuple(page), next_cursor=encode_search_cursor(
            offset + size, fingerprint) if more else None)

    @staticmethod
    def _kinds(content_types: Sequence[str] | None, status: str | None) -> list[str]:
        if content_types is None:
            return ["question"] if status is not None else list(SEARCHED)
        if isinstance(content_types, str) or not content_types:
            raise KnowledgeError("content_types", "type",
                                 f"must be a non-empty list of {', '.join(SEARCHED)}")
        kinds = []
        for kind in content_types:
            if kind not in SEARCHED:
                raise KnowledgeError("content_types", "enum",
                                     f"{kind!r:.40} is not one of {', '.join(SEARCHED)}")
            if kind not in kinds:
                kinds.append(kind)
        if status is not None and kinds != ["question"]:
            raise KnowledgeError("status", "combination",
                                 "status filters questions only; search content_types "
                                 "['question'] with it")
        return kinds

    async def _subtree(self, area_id: str, viewer: Viewer) -> list[str]:
        areas = Areas(self.store)
        if await areas.get_area(area_id, viewer=viewer) is None:
            raise not_found("area_id", "area", area_id)
        return await areas.subtree_ids(area_id, limit=MAX_SUBTREE)

    async def _top(self, kind: str, query: str, filter_: Mapping[str, Any],
                   wanted: int) -> list[SearchResult]:
        """The best ``wanted`` hits of one kind, through the store's pages."""
        out: list[SearchResult] = []
        after = None
        while len(out) < wanted:
            page = await self.store.search(_COLLECTIONS[kind], query, filter=filter_,
                                           limit=min(_STORE_PAGE, wanted - len(out)),
                                           after=after)
            out += [SearchResult(content_type=kind, item=_RECORDS[kind](h.document),
                                 score=h.score) for h in page.hits]
            if page.next_cursor is None:
                break
            after = page.next_cursor
        return out


def _filter(kind: str, areas: list[str] | None, tag: str | None,
            status: str | None) -> dict[str, Any]:
    """What anybody may see of ``kind``, narrowed by the filters."""
    filter_: dict[str, Any] = {"hidden": {"$ne": True}}
    if kind == "insight":
        filter_["listed"] = True
    else:
        filter_["visibility"] = "public"
    if areas is not None:
        filter_["_id" if kind == "area" else "areas"] = {"$in": areas}
    if tag is not None:
        filter_["tags"] = tag
    if status is not None:
        filter_["status"] = status
    return filter_


__all__ = ["MAX_DEPTH", "SEARCHED", "TEXT_INDEXES", "Search", "SearchResult"]
