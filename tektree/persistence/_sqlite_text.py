"""The SQLite side of full-text search: an FTS5 table per text index, kept by triggers.

No trio here. For a collection ``c_<name>`` with a text index:

- ``x_<name>``: the FTS5 table, one column per indexed field (``porter unicode61
  remove_diacritics 2`` for English, ``unicode61 remove_diacritics 2`` for ``none``);
- ``k_<name>``: ``r INTEGER PRIMARY KEY, id TEXT UNIQUE``: the FTS row of each document. The
  document table's own rowid is not used: ``VACUUM`` may renumber the rowids of a table without an
  ``INTEGER PRIMARY KEY``, and the FTS rows would then point at the wrong documents;
- triggers after INSERT, UPDATE (only when an indexed field changed: a ``$inc`` of a counter
  leaves the FTS table alone) and DELETE on ``c_<name>``.

Triggers run inside the statement that fired them, so the text index changes in the same
transaction (and the same SAVEPOINT) as the document: a unit that rolls back leaves no trace in
it, whichever process wrote (the triggers live in the file's schema). Declaring the index fills it
from the documents already there.

Filters of a search follow MongoDB's semantics, not the plain ``find``'s: an equality matches a
field equal to the value *or an array holding it* (``{"tags": "go"}``), through ``json_each``;
they narrow what the FTS ``MATCH`` found, so they need no index of their own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import attrs

from tektree.persistence._errors import InvalidQuery
from tektree.persistence._query import ID_FIELD, Condition
from tektree.persistence._text import TextIndexSpec

TEXT_META: Final = "_tektree_text_indexes"
_RANGE_SQL: Final = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_TOKENIZERS: Final = {"english": "porter unicode61 remove_diacritics 2",
                      "none": "unicode61 remove_diacritics 2"}


@attrs.frozen(kw_only=True)
class TextIndexOp:
    """``ensure_text_index`` as a write operation (DDL is transactional in SQLite)."""

    collection: str
    spec: TextIndexSpec


def fts_table(collection: str) -> str:
    return f'"x_{collection}"'


def key_table(collection: str) -> str:
    return f'"k_{collection}"'


def _text_of(row: str, field: str) -> str:
    """The text of ``field`` in ``row`` (``new``/``old``): a string, or an array's items
    joined."""
    path = f"'$.{field}'"
    return (f"(CASE json_type({row}.doc, {path}) WHEN 'array' THEN (SELECT group_concat(value, "
            f"' ') FROM json_each({row}.doc, {path})) ELSE json_extract({row}.doc, {path}) END)")


def text_index_ddl(collection: str, spec: TextIndexSpec) -> list[str]:
    """The statements creating the FTS table, the key table, the triggers, and the backfill."""
    docs, fts, keys = f'"c_{collection}"', fts_table(collection), key_table(collection)
    cols = [f"c{i}" for i in range(len(spec.fields))]
    fields = [f for f, _ in spec.fields]
    tokenize = _TOKENIZERS[spec.language]

    def insert_row(row: str) -> str:
        values = ", ".join(_text_of(row, f) for f in fields)
        return (f"INSERT INTO {keys}(id) VALUES ({row}.id); INSERT INTO {fts}(rowid, "
                f"{', '.join(cols)}) VALUES ((SELECT r FROM {keys} WHERE id = {row}.id), "
                f"{values});")

    delete_row = (f"DELETE FROM {fts} WHERE rowid = (SELECT r FROM {keys} WHERE id = old.id); "
                  f"DELETE FROM {keys} WHERE id = old.id;")
    changed = " OR ".join(f"{_text_of('old', f)} IS NOT {_text_of('new', f)}" for f in fields)
    name = collection
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({', '.join(cols)}, tokenize='{tokenize}')",
        f"CREATE TABLE {keys} (r INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)",
        f'CREATE TRIGGER "xi_{name}" AFTER INSERT ON {docs} BEGIN {insert_row("new")} END',
        f'CREATE TRIGGER "xu_{name}" AFTER UPDATE OF doc ON {docs} WHEN {changed} BEGIN '
        f'{delete_row} {insert_row("new")} END',
        f'CREATE TRIGGER "xd_{name}" AFTER DELETE ON {docs} BEGIN {delete_row} END',
        f"INSERT INTO {keys}(id) SELECT id FROM {docs}",
        f"INSERT INTO {fts}(rowid, {', '.join(cols)}) SELECT k.r, "
        + ", ".join(_text_of("d", f) for f in fields)
        + f" FROM {docs} d JOIN {keys} k ON k.id = d.id",
    ]


def ensure_text_index(conn: sqlite3.Connection, op: TextIndexOp) -> int:
    """Declare ``op.spec`` on its collection inside the caller's transaction: 1 if created, 0 if
    the same spec was there; a different one is an error (one text index per collection)."""
    conn.execute(f"CREATE TABLE IF NOT EXISTS {TEXT_META} "
                 "(collection TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL)")
    row = conn.execute(f"SELECT name, spec FROM {TEXT_META} WHERE collection = ?",
                       (op.collection,)).fetchone()
    if row is not None:
        existing = TextIndexSpec.from_json(row[0], row[1])
        if existing != op.spec:
            raise InvalidQuery(
                f"collection {op.collection!r} has the text index {existing}; cannot declare "
                f"{op.spec} as well: a collection has one text index (change it under the "
                "same fields, or drop the old one first)", value=op.spec)
        return 0
    for statement in text_index_ddl(op.collection, op.spec):
        conn.execute(statement)
    conn.execute(f"INSERT INTO {TEXT_META} (collection, name, spec) VALUES (?, ?, ?)",
                 (op.collection, op.spec.name, op.spec.to_json()))
    return 1


def load_text_spec(conn: sqlite3.Connection, collection: str) -> TextIndexSpec | None:
    try:
        row = conn.execute(f"SELECT name, spec FROM {TEXT_META} WHERE collection = ?",
                           (collection,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else TextIndexSpec.from_json(row[0], row[1])


# -- filters with MongoDB's array semantics ------------------------------------------------------
def _each(field: str) -> str:
    return f"json_each(d.doc, '$.{field}')"


def member_where(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    """SQL over the document alias ``d`` where an equality or range also matches array items."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        if cond.field == ID_FIELD:
            clause, values = _id_clause(cond)
            parts.append(clause)
            params.extend(values)
            continue
        plain = f"json_extract(d.doc, '$.{cond.field}')"
        if cond.op in ("$eq", "$ne"):
            if cond.value is None:
                parts.append(f"{plain} IS {'' if cond.op == '$eq' else 'NOT '}NULL")
                continue
            exists = f"EXISTS (SELECT 1 FROM {_each(cond.field)} WHERE value = ?)"
            parts.append(exists if cond.op == "$eq" else f"NOT {exists}")
            params.append(cond.value)
        elif cond.op in _RANGE_SQL:
            parts.append(f"EXISTS (SELECT 1 FROM {_each(cond.field)} WHERE value "
                         f"{_RANGE_SQL[cond.op]} ?)")
            params.append(cond.value)
        else:  # $in / $nin
            values = [v for v in cond.value if v is not None]
            alts = []
            if values:
                alts.append(f"EXISTS (SELECT 1 FROM {_each(cond.field)} WHERE value IN "
                            f"({', '.join('?' * len(values))}))")
                params.extend(values)
            if len(values) != len(cond.value):
                alts.append(f"{plain} IS NULL")
            any_of = "(" + " OR ".join(alts) + ")" if alts else "0"
            parts.append(any_of if cond.op == "$in" else f"NOT {any_of}")
    return (" AND ".join(parts) if parts else "1"), params


def _id_clause(cond: Condition) -> tuple[str, list[Any]]:
    if cond.op in ("$in", "$nin"):
        values = list(cond.value)
        inner = f"d.id IN ({', '.join('?' * len(values))})" if values else "0"
        return (inner if cond.op == "$in" else f"NOT {inner}"), values
    sql_op = {"$eq": "=", "$ne": "IS NOT", **_RANGE_SQL}[cond.op]
    return f"d.id {sql_op} ?", [cond.value]


def search_sql(collection: str, spec: TextIndexSpec, clause: str) -> str:
    """Matching documents with their score (``-bm25`` with the spec's weights), best first;
    parameters: the MATCH expression, the clause's, then LIMIT and OFFSET."""
    fts, keys = fts_table(collection), key_table(collection)
    weights = ", ".join(f"{float(w)}" for _, w in spec.fields)
    return (f"SELECT d.doc, -bm25({fts}, {weights}) AS score FROM {fts} "
            f"JOIN {keys} k ON k.r = {fts}.rowid JOIN \"c_{collection}\" d ON d.id = k.id "
            f"WHERE {fts} MATCH ? AND ({clause}) ORDER BY score DESC, d.id LIMIT ? OFFSET ?")


__all__ = [
    "TEXT_META",
    "TextIndexOp",
    "ensure_text_index",
    "fts_table",
    "key_table",
    "load_text_spec",
    "member_where",
    "search_sql",
    "text_index_ddl",
]
