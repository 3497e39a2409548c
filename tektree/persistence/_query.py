"""Sans-IO query logic shared by the stores: validating names, filters, updates and sorts,
applying updates to a document, and encoding pagination cursors.

The supported subset is deliberately small so that every backend runs all of it natively (SQL on
SQLite's JSON functions, the same operators on MongoDB). Anything else is rejected by name.
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import attrs
import orjson

from tektree.persistence._errors import (
    InvalidCursor,
    InvalidDocument,
    InvalidQuery,
    UnsupportedOperator,
)
from tektree.persistence._protocol import Document, Filter, Page, SortSpec, Update

FILTER_OPERATORS: Final = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"})
UPDATE_OPERATORS: Final = frozenset({"$set", "$inc", "$push", "$addToSet", "$unset"})
ID_FIELD: Final = "_id"

_FIELD_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_COLLECTION_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SCALARS: Final = (str, int, float, bool, type(None))


class _Missing:
    """The value of a path that a document does not have (distinct from ``None``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@attrs.frozen
class Condition:
    """One normalized filter condition: ``field op value``."""

    field: str
    op: str
    value: Any


#: Collection names already found valid: a set lookup instead of a regex match per
#: operation (a store uses a handful of names; bounded all the same).
_VALID_COLLECTIONS: Final[set[str]] = set()


def check_collection(name: str) -> str:
    if type(name) is str and name in _VALID_COLLECTIONS:
        return name
    if not isinstance(name, str) or not _COLLECTION_RE.match(name):
        raise InvalidQuery(
            f"collection name {name!r} is invalid: use 1-63 letters, digits or underscores, "
            "not starting with a digit",
            value=name,
        )
    if len(_VALID_COLLECTIONS) < 1024:
        _VALID_COLLECTIONS.add(name)
    return name


def check_field(name: str) -> str:
    if not isinstance(name, str) or not _FIELD_RE.match(name):
        raise InvalidQuery(
            f"field name {name!r} is invalid: use letters, digits and underscores, with dots "
            "between the parts of a nested field (e.g. 'streak.current')",
            value=name,
        )
    return name


#: ``json.dumps(doc, separators=(",", ":"), allow_nan=False, ensure_ascii=False)`` without
#: building a new ``JSONEncoder`` on every call (``json.dumps`` reuses its cached one only for
#: the default options): the same C encoder, the same text. ``encode`` keeps no state between
#: calls, so the writer and reader threads share it. It decides every document that
#: ``orjson`` cannot encode exactly (see ``dumps``).
_encode: Final = json.JSONEncoder(
    separators=(",", ":"), allow_nan=False, ensure_ascii=False
).encode


def dumps(collection: str, doc: Mapping[str, Any]) -> str:
    """Serialize a document to compact JSON, rejecting values JSON cannot hold.

    ``orjson`` encodes about ten times faster than ``json``, but it writes NaN and infinities
    as ``null`` and encodes UUIDs, enums, dataclasses and datetimes, which the store refuses.
    So its text is kept only when it decodes back to a document equal to ``doc`` (still
    several times cheaper than ``json``): then ``json`` would have written the same values.
    Anything else (NaN, a UUID, ints beyond 64 bits, non-str keys, tuples) is encoded by
    ``json`` exactly as before, or refused with its error."""
    try:
        text = orjson.dumps(doc)
        if orjson.loads(text) == doc:
            return text.decode()
    except (TypeError, ValueError):  # orjson's JSONEncodeError is a TypeError
        pass
    try:
        return _encode(doc)
    except (TypeError, ValueError) as exc:
        raise InvalidDocument(collection, f"{exc}; documents hold JSON values only") from exc


#: Tuples of top-level keys already found valid (all str, no '$', no '.'), so that a
#: document whose keys are those of an earlier one is checked with one set lookup; bounded.
_CHECKED_KEYS: Final[set[tuple[Any, ...]]] = set()
_CHECKED_KEYS_MAX: Final = 1024


def prepare_document(
    collection: str, doc: Mapping[str, Any], new_id: str | Callable[[], str]
) -> Document:
    """Copy ``doc`` for storage, giving it ``_id = new_id`` (or ``new_id()``: only called then)
    when it has none."""
    if type(doc) is not dict and not isinstance(doc, Mapping):
        raise InvalidDocument(collection, f"expected a dict, got {type(doc).__name__}")
    out: Document = dict(doc)
    if ID_FIELD in out:
        doc_id = out[ID_FIELD]
    else:
        doc_id = out[ID_FIELD] = new_id if isinstance(new_id, str) else new_id()
    if not isinstance(doc_id, str) or not doc_id:
        raise InvalidDocument(collection, f"_id must be a non-empty str, got {doc_id!r}")
    keys = tuple(out)
    if keys not in _CHECKED_KEYS:  # the documents of one writer mostly share their keys
        for key in keys:
            if not isinstance(key, str) or key.startswith("$") or "." in key:
                raise InvalidDocument(
                    collection, f"top-level key {key!r} must be a str without '$' or '.'"
                )
        if len(_CHECKED_KEYS) >= _CHECKED_KEYS_MAX:
            _CHECKED_KEYS.clear()
        _CHECKED_KEYS.add(keys)
    return out


def normalize_filter(filter: Filter | str | None) -> list[Condition]:
    """Validate a filter and flatten it to conditions; a str is an ``_id``."""
    if filter is None:
        return []
    if isinstance(filter, str):
        return [Condition(ID_FIELD, "$eq", filter)]
    if not isinstance(filter, Mapping):
        raise InvalidQuery(f"filter must be a dict or an _id str, got {filter!r}", value=filter)
    conditions: list[Condition] = []
    for field, spec in filter.items():
        if isinstance(field, str) and field.startswith("$"):
            raise UnsupportedOperator(field, where="filter", supported=FILTER_OPERATORS)
        check_field(field)
        if isinstance(spec, Mapping) and spec and all(str(k).startswith("$") for k in spec):
            for op, value in spec.items():
                if op not in FILTER_OPERATORS:
                    raise UnsupportedOperator(op, where="filter", supported=FILTER_OPERATORS)
                conditions.append(Condition(field, op, _check_operand(field, op, value)))
        else:
            conditions.append(Condition(field, "$eq", _check_operand(field, "$eq", spec)))
    return conditions


def _check_operand(field: str, op: str, value: Any) -> Any:
    if op in ("$in", "$nin"):
        if not isinstance(value, list | tuple):
            raise InvalidQuery(f"{field}: {op} takes a list of values, got {value!r}", value=value)
        for item in value:
            _check_scalar(field, op, item)
        return list(value)
    _check_scalar(field, op, value)
    return value


def _check_scalar(field: str, op: str, value: Any) -> None:
    if not isinstance(value, _SCALARS):
        raise InvalidQuery(
            f"{field}: {op} compares with scalars (str, int, float, bool, None) only, got "
            f"{value!r}; match nested fields with dotted names instead",
            value=value,
        )


def check_update(update: Update) -> None:
    if not isinstance(update, Mapping) or not update:
        raise InvalidQuery(
            f"update must be a non-empty dict of operators like {{'$set': {{...}}}}, got "
            f"{update!r}",
            value=update,
        )
    for op, fields in update.items():
        if op not in UPDATE_OPERATORS:
            raise UnsupportedOperator(op, where="update", supported=UPDATE_OPERATORS)
        if not isinstance(fields, Mapping) or not fields:
            raise InvalidQuery(f"{op} takes a non-empty dict of fields, got {fields!r}")
        for field, value in fields.items():
            check_field(field)
            if field == ID_FIELD or field.startswith(ID_FIELD + "."):
                raise InvalidQuery(f"{op} cannot change {field!r}: _id is immutable", value=field)
            if op == "$inc" and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidQuery(f"$inc of {field!r} takes a number, got {value!r}", value=value)


def get_path(doc: Mapping[str, Any], field: str) -> Any:
    node: Any = doc
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return MISSING
        node = node[part]
    return node


def _parent(doc: Document, field: str, *, create: bool) -> tuple[dict[str, Any] | None, str]:
    parts = field.split(".")
    node: Any = doc
    for part in parts[:-1]:
        if not isinstance(node, dict):
            raise InvalidQuery(f"cannot reach {field!r}: {part!r} is inside a non-document")
        if part not in node:
            if not create:
                return None, parts[-1]
            node[part] = {}
        node = node[part]
    if not isinstance(node, dict):
        raise InvalidQuery(f"cannot set {field!r}: its parent holds {node!r}, not a document")
    return node, parts[-1]


def _each(value: Any) -> list[Any]:
    if isinstance(value, Mapping) and set(value) == {"$each"}:
        return list(value["$each"])
    return [value]


def _overlapping(update: Update) -> bool:
    """Whether two fields of ``update`` are the same or one holds the other (``a``, ``a.b``):
    only then can writing one change a value that another put in place."""
    paths = sorted(field for fields in update.values() for field in fields)
    # '.' sorts before every other character of a field name: a field's extensions follow it.
    return any(b == a or b.startswith(a + ".") for a, b in itertools.pairwise(paths))


def apply_update(doc: Document, update: Update, *, owned: bool = False) -> Document:
    """Return a copy of ``doc`` with ``update`` applied (``check_update`` first).

    ``owned=True`` is for a caller that owns ``doc`` (just decoded) and only serializes the
    result: ``doc`` is changed in place and the update's values are put in it uncopied (no deep
    copy of a large ``$set`` value, such as a snapshot), unless fields of the update overlap."""
    if owned and not _overlapping(update):
        return _apply(doc, update, copy_values=False)
    return _apply(copy.deepcopy(doc), update, copy_values=True)


def _apply(out: Document, update: Update, *, copy_values: bool) -> Document:
    clone = copy.deepcopy if copy_values else _same
    for op, fields in update.items():
        for field, value in fields.items():
            if op == "$unset":
                parent, key = _parent(out, field, create=False)
                if parent is not None:
                    parent.pop(key, None)
                continue
            parent, key = _parent(out, field, create=True)
            assert parent is not None
            current = parent.get(key, MISSING)
            if op == "$set":
                parent[key] = clone(value)
            elif op == "$inc":
                if current is MISSING:
                    parent[key] = value
                elif isinstance(current, bool) or not isinstance(current, int | float):
                    raise InvalidQuery(f"$inc of {field!r}: it holds {current!r}, not a number")
                else:
                    parent[key] = current + value
            else:  # $push, $addToSet
                if current is MISSING:
                    current = parent[key] = []
                if not isinstance(current, list):
                    raise InvalidQuery(f"{op} to {field!r}: it holds {current!r}, not an array")
                for item in _each(value):
                    if op == "$push" or item not in current:
                        current.append(clone(item))
    return out


def _same(value: Any) -> Any:
    return value


def upsert_seed(conditions: Sequence[Condition], new_id: str) -> Document:
    """The document an upsert starts from: the filter's equality conditions (MongoDB's rule)."""
    seed: Document = {}
    for cond in conditions:
        if cond.op == "$eq":
            parent, key = _parent(seed, cond.field, create=True)
            assert parent is not None
            parent[key] = cond.value
    seed.setdefault(ID_FIELD, new_id)
    return seed


def full_sort(sort: SortSpec) -> list[tuple[str, Literal[1, -1]]]:
    """Validate a sort and append ``_id`` as the final tie-breaker (pagination needs a total
    order)."""
    out: list[tuple[str, Literal[1, -1]]] = []
    for item in sort:
        if not isinstance(item, tuple) or len(item) != 2 or item[1] not in (1, -1):
            raise InvalidQuery(f"sort items are (field, 1 | -1) tuples, got {item!r}", value=item)
        out.append((check_field(item[0]), item[1]))
    if not any(f == ID_FIELD for f, _ in out):
        out.append((ID_FIELD, 1))
    return out


def check_limit(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidQuery(f"limit must be a positive int or None, got {limit!r}", value=limit)
    return limit


def page_of(docs: list[Document], limit: int | None, sort: Sequence[tuple[str, int]]) -> Page:
    """A page from ``limit + 1`` fetched documents: the extra one only says there is more."""
    if limit is not None and len(docs) > limit:
        del docs[limit:]
        return Page(items=docs, next_cursor=encode_cursor(sort, docs[-1]))
    return Page(items=docs, next_cursor=None)


def encode_cursor(sort: Sequence[tuple[str, int]], doc: Mapping[str, Any]) -> str:
    values = [None if (v := get_path(doc, f)) is MISSING else v for f, _ in sort]
    raw = json.dumps({"s": [[f, d] for f, d in sort], "v": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sequence[tuple[str, int]]) -> list[Any]:
    """The sort values of the last item of the previous page."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        values = data["v"]
        signature = [tuple(x) for x in data["s"]]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise InvalidCursor(str(cursor), "not a cursor from this store") from exc
    if signature != [tuple(x) for x in sort] or len(values) != len(sort):
        raise InvalidCursor(cursor, f"it was made for sort {signature}, not {list(sort)}")
    return list(values)
