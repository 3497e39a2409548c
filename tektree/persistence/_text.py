"""Full-text search, the sans-IO part: text index specs, the query language, result pages.

One text index per collection (MongoDB's rule), over string fields (or arrays of strings) with a
weight each. Both stores speak one query language, MongoDB's ``$text`` ``$search``:

- plain words are alternatives, ranked by relevance (``event sourcing`` finds documents with
  either word; those with both rank higher);
- a ``"quoted phrase"`` (or ``"word"``) is required: every result holds every phrase;
- ``-word`` and ``-"a phrase"`` exclude the documents that hold them.

Words are runs of letters, digits and ``_``: ``event-driven`` is the two words ``event`` and
``driven`` (so a hyphen inside a word never turns into an exclusion, a MongoDB pitfall). Matching
ignores case and diacritics and, with ``language="english"``, stems words (``sourcing`` finds
``sourced``). MongoDB also drops English stop words (``how``, ``do``...): a query made of stop
words only finds nothing there, while SQLite matches them (ranked low, as they are common).

Relevance scores are higher-is-better floats, comparable within one result set only (SQLite:
``-bm25``; MongoDB: ``textScore``). Results are ordered by score, then ``_id``; pages are offsets
into that order (a ranking changes as documents are written, so a keyset on it would not hold
either), at most :data:`MAX_SEARCH_DEPTH` results deep.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from tektree.persistence._errors import InvalidCursor, InvalidQuery
from tektree.persistence._protocol import Document, Filter
from tektree.persistence._query import check_collection, check_field

MAX_QUERY_CHARS: Final = 256
MAX_QUERY_ITEMS: Final = 32
#: How deep a search pages: ``offset + limit`` never passes it.
MAX_SEARCH_DEPTH: Final = 1000
LANGUAGES: Final = ("english", "none")
_WORD: Final = re.compile(r"\w+")


def _to_fields(value: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    return tuple((str(f), w) for f, w in value)


def _check_fields(instance: TextIndexSpec, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        raise ValueError("TextIndexSpec.fields must name at least one field")
    names = [f for f, _ in value]
    if len(set(names)) != len(names):
        raise ValueError(f"TextIndexSpec.fields names a field twice: {names}")
    for field, weight in value:
        check_field(field)
        if field == "_id":
            raise ValueError("TextIndexSpec.fields cannot index _id")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise ValueError(f"TextIndexSpec weight of {field!r} must be an int from 1 to 100, "
                             f"got {weight!r}")


@attrs.frozen(kw_only=True)
class TextIndexSpec:
    """A collection's text index: ``fields`` as ``(field, weight)`` pairs (a match in a field of
    weight 3 counts three times one in a field of weight 1), the stemming ``language``
    (``"english"`` or ``"none"``) and a stable ``name``."""

    fields: tuple[tuple[str, int], ...] = attrs.field(converter=_to_fields,
                                                      validator=_check_fields)
    language: str = attrs.field(default="english", validator=attrs.validators.in_(LANGUAGES))
    name: str = attrs.field(validator=attrs.validators.matches_re(r"^[A-Za-z_][A-Za-z0-9_]*$"))

    @name.default
    def _default_name(self) -> str:
        return "text_" + "_".join(f.replace(".", "_") for f, _ in self.fields)

    def to_json(self) -> str:
        return json.dumps({"fields": [list(f) for f in self.fields], "language": self.language})

    @classmethod
    def from_json(cls, name: str, text: str) -> TextIndexSpec:
        data = json.loads(text)
        return cls(fields=tuple((f, w) for f, w in data["fields"]), language=data["language"],
                   name=name)


@attrs.frozen(kw_only=True)
class TextQuery:
    """A parsed query: ``words`` (alternatives), ``phrases`` (each required), and the words and
    phrases that exclude a document. Every phrase is a tuple of words."""

    words: tuple[str, ...] = ()
    phrases: tuple[tuple[str, ...], ...] = ()
    excluded_words: tuple[str, ...] = ()
    excluded_phrases: tuple[tuple[str, ...], ...] = ()


@attrs.frozen(kw_only=True)
class SearchHit:
    """One result: the document and its relevance (higher is better)."""

    document: Document
    score: float


@attrs.frozen(kw_only=True)
class SearchPage:
    """One page of a search, best first, and the cursor of the next page (``None`` at the end or
    at :data:`MAX_SEARCH_DEPTH`)."""

    hits: list[SearchHit]
    next_cursor: str | None


# -- the query language --------------------------------------------------------------------------
def _tokens(text: str) -> list[tuple[bool, bool, str]]:
    """``(negated, quoted, raw)`` items of ``text``; an unclosed quote is an error."""
    out: list[tuple[bool, bool, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = text[i] == "-"
        j = i + 1 if negated else i
        if j < n and text[j] == '"':
            end = text.find('"', j + 1)
            if end < 0:
                raise InvalidQuery(
                    f"search query {text!r}: the quote at position {j} is never closed; close "
                    'it ("a phrase") or remove it', value=text)
            out.append((negated, True, text[j + 1 : end]))
            i = end + 1
            continue
        end = j
        while end < n and not text[end].isspace() and text[end] != '"':
            end += 1
        out.append((negated, False, text[j:end]))
        i = end
    return out


def parse_text_query(text: object) -> TextQuery:
    """Parse a search query (see the module's doc); :class:`InvalidQuery` names what is wrong."""
    if not isinstance(text, str):
        raise InvalidQuery(f"search query must be a string, got {text!r:.60}", value=text)
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidQuery(f"search query is {len(text)} characters; at most "
                           f"{MAX_QUERY_CHARS}", value=text)
    words: list[str] = []
    phrases: list[tuple[str, ...]] = []
    excluded_words: list[str] = []
    excluded_phrases: list[tuple[str, ...]] = []
    count = 0
    for negated, quoted, raw in _tokens(text):
        found = tuple(w.lower() for w in _WORD.findall(raw))
        if not found:
            continue
        count += 1 if quoted else len(found)
        if quoted:
            target_phrases = excluded_phrases if negated else phrases
            if found not in target_phrases:
                target_phrases.append(found)
            continue
        target = excluded_words if negated else words
        target.extend(w for w in found if w not in target)
    if count > MAX_QUERY_ITEMS:
        raise InvalidQuery(f"search query {text[:60]!r} has {count} words and phrases; at most "
                           f"{MAX_QUERY_ITEMS}", value=text)
    if not words and not phrases:
        raise InvalidQuery(
            f"search query {text[:60]!r} has no word to look for (only exclusions, "
            "punctuation or nothing); add at least one word", value=text)
    return TextQuery(words=tuple(words), phrases=tuple(phrases),
                     excluded_words=tuple(excluded_words),
                     excluded_phrases=tuple(excluded_phrases))


def _fts_string(words: tuple[str, ...]) -> str:
    return '"' + " ".join(words).replace('"', '""') + '"'


def to_fts5(query: TextQuery) -> str:
    """The FTS5 ``MATCH`` expression of ``query`` (every item quoted: no FTS5 syntax leaks in).

    Phrases are ANDed; with words as well, the words are ORed with the phrases after them, so
    the phrases alone decide what matches and the words still add to the rank (bm25 scores every
    phrase of the expression)."""
    phrases = [_fts_string(p) for p in query.phrases]
    words = [_fts_string((w,)) for w in query.words]
    if phrases:
        expr = " AND ".join(phrases)
        if words:
            expr = f"{expr} AND ({' OR '.join(words + phrases)})"
    else:
        expr = " OR ".join(words)
    excluded = [_fts_string((w,)) for w in query.excluded_words]
    excluded += [_fts_string(p) for p in query.excluded_phrases]
    if excluded:
        expr = f"({expr}) NOT ({' OR '.join(excluded)})"
    return expr


def to_mongo_search(query: TextQuery) -> str:
    """The ``$text`` ``$search`` string of ``query`` (MongoDB's own language)."""
    parts = list(query.words)
    parts += ['"' + " ".join(p) + '"' for p in query.phrases]
    parts += ["-" + w for w in query.excluded_words]
    parts += ['-"' + " ".join(p) + '"' for p in query.excluded_phrases]
    return " ".join(parts)


@attrs.frozen(kw_only=True)
class MongoTextFind:
    """The arguments of MongoDB's ``find`` for a text search (sans-IO, so they are tested
    without a server: mongomock does not implement ``$text``)."""

    filter: dict[str, Any]
    projection: dict[str, Any]
    sort: list[tuple[str, Any]]
    score_field: str


SCORE_FIELD: Final = "_tektree_text_score"


def mongo_text_find(query: TextQuery, filter: Filter | None) -> MongoTextFind:
    """``{"$text": {"$search": ...}, **filter}``, the score projected and sorted on, then
    ``_id`` (the same order as SQLite's)."""
    meta = {"$meta": "textScore"}
    return MongoTextFind(
        filter={"$text": {"$search": to_mongo_search(query)}, **dict(filter or {})},
        projection={SCORE_FIELD: meta},
        sort=[(SCORE_FIELD, meta), ("_id", 1)],
        score_field=SCORE_FIELD,
    )


# -- pages -----------------------------------------------------------------------------------------
def check_search_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidQuery(f"search limit must be an int from 1 to 100, got {limit!r}",
                           value=limit)
    return limit


def search_fingerprint(collection: str, query: TextQuery, filter: Filter | None) -> str:
    """What a cursor is bound to: the collection, the parsed query and the filter."""
    raw = json.dumps([collection, attrs.astuple(query), filter or {}], sort_keys=True,
                     default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_search_cursor(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "k": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_search_cursor(cursor: str | None, fingerprint: str, *,
                         depth: int = MAX_SEARCH_DEPTH) -> int:
    """The offset a cursor stands for (0 for ``None``), below ``depth``."""
    if cursor is None:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        offset, key = data["o"], data["k"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidCursor(str(cursor), "not a search cursor") from exc
    if key != fingerprint:
        raise InvalidCursor(cursor, "it was made for another search (query, filter or "
                                    "collection)")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < depth:
        raise InvalidCursor(cursor, f"offset {offset!r} is out of range")
    return offset


def search_page(rows: list[tuple[Document, float]], offset: int, limit: int,
                fingerprint: str) -> SearchPage:
    """A page from up to ``limit + 1`` rows fetched at ``offset`` (the extra one says more)."""
    size = min(limit, MAX_SEARCH_DEPTH - offset)
    more = len(rows) > size and offset + size < MAX_SEARCH_DEPTH
    hits = [SearchHit(document=doc, score=float(score)) for doc, score in rows[:size]]
    return SearchPage(hits=hits, next_cursor=encode_search_cursor(offset + size, fingerprint)
                      if more else None)


@attrs.frozen(kw_only=True)
class SearchRequest:
    """A validated ``search`` call, as both stores start it."""

    collection: str
    query: TextQuery
    filter: Filter | None
    limit: int
    offset: int
    fingerprint: str

    @classmethod
    def of(cls, collection: str, text: object, filter: Filter | None, limit: object,
           after: str | None) -> SearchRequest:
        check_collection(collection)
        query = parse_text_query(text)
        fingerprint = search_fingerprint(collection, query, filter)
        return cls(collection=collection, query=query, filter=filter,
                   limit=check_search_limit(limit),
                   offset=decode_search_cursor(after, fingerprint), fingerprint=fingerprint)

    @property
    def window(self) -> int:
        """How many rows to fetch at ``offset``: ``limit + 1``, cut at the search depth."""
        return min(self.limit, MAX_SEARCH_DEPTH - self.offset) + 1

    def page(self, rows: list[tuple[Document, float]]) -> SearchPage:
        return search_page(rows, self.offset, self.limit, self.fingerprint)

    def no_text_index(self) -> InvalidQuery:
        return InvalidQuery(f"collection {self.collection!r} has no text index; declare one "
                            "with ensure_text_index before searching it", value=self.collection)


def strip_score(doc: Mapping[str, Any], key: str) -> tuple[Document, float]:
    out = dict(doc)
    return out, float(out.pop(key, 0.0))


__all__ = [
    "LANGUAGES",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_ITEMS",
    "MAX_SEARCH_DEPTH",
    "SCORE_FIELD",
    "MongoTextFind",
    "SearchHit",
    "SearchPage",
    "SearchRequest",
    "TextIndexSpec",
    "TextQuery",
    "check_search_limit",
    "decode_search_cursor",
    "encode_search_cursor",
    "mongo_text_find",
    "parse_text_query",
    "search_fingerprint",
    "search_page",
    "strip_score",
    "to_fts5",
    "to_mongo_search",
]
