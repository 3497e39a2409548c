"""The SQLite side of full-text search: an FTS5 table per text index, kept in step with the
documents in the transaction that writes them.

No trio here. For a collection ``c_<name>`` with a text index:

- ``x_<name>``: the FTS5 table, one column per indexed field (``porter unicode61
  remove_diacritics 2`` for English, ``unicode61 remove_diacritics 2`` for ``none``);
- ``k_<name>``: ``r INTEGER PRIMARY KEY, id TEXT UNIQUE``: the FTS row of each document. The
  document table's own rowid is not used: ``VACUUM`` may renumber the rowids of a table without an
  ``INTEGER PRIMARY KEY``, and the FTS rows would then point at the wrong documents;
- ``s_<name>``: the ids written since the FTS table was last brought up to date;
- triggers after INSERT, UPDATE (only when an indexed field changed: a ``$inc`` of a counter
  stages nothing) and DELETE on ``c_<name>``, which stage the document's id.

Why stage: FTS5 flushes its pending terms at every savepoint, and every trigger runs inside a
statement savepoint (as every writer's operations run inside their own, see ``commit_batch``), so
writing the FTS table from the triggers made one tiny segment per document (measured: 4 to 6
times slower inserts than writing it once per transaction). The store's writer applies what is
staged once, just before each commit (:func:`apply_staged`: for each staged id, the old FTS row
goes and the document's current text goes in), so the text index still changes in the same
transaction as the documents, and a unit that rolls back stages nothing. A writer that is not a
``SqliteStore`` (the ``sqlite3`` shell) stages as well; its documents become searchable at the
next commit of any store on the file. Declaring the index fills it from the documents already
there.

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


def staging_table(collection: str) -> str:
    return f'"s_{collection}"'


def _text_of(row: str, field: str) -> str:
    """The text of ``field`` in ``row`` (a table alias, or ``new``/``old``): a string, or an
    array's items joined."""
    path = f"'$.{field}'"
    return (f"(CASE json_type({row}.doc, {path}) WHEN 'array' THEN (SELECT group_concat(value, "
            f"' ') FROM json_each({row}.doc, {path})) ELSE json_extract({row}.doc, {path}) END)")


def text_index_ddl(collection: str, spec: TextIndexSpec) -> list[str]:
    """The statements creating the FTS, key and staging tables and the triggers."""
    docs, staged = f'"c_{collection}"', staging_table(collection)
    cols = [f"c{i}" for i in range(len(spec.fields))]
    fields = [f for f, _ in spec.fields]
    changed = " OR ".join(f"{_text_of('old', f)} IS NOT {_text_of('new', f)}" for f in fields)
    stage = f"INSERT OR IGNORE INTO {staged}(id) VALUES"
    return [
        f"CREATE VIRTUAL TABLE {fts_table(collection)} USING fts5({', '.join(cols)}, "
        f"tokenize='{_TOKENIZERS[spec.language]}')",
        f"CREATE TABLE {key_table(collection)} (r INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)",
        f"CREATE TABLE {staged} (id TEXT PRIMARY KEY)",
        f'CREATE TRIGGER "xi_{collection}" AFTER INSERT ON {docs} BEGIN {stage} (new.id); END',
        f'CREATE TRIGGER "xu_{collection}" AFTER UPDATE OF doc ON {docs} WHEN {changed} BEGIN '
        f"{stage} (new.id); END",
        f'CREATE TRIGGER "xd_{collection}" AFTER DELETE ON {docs} BEGIN {stage} (old.id); END',
        f"INSERT INTO {staged}(id) SELECT id FROM {docs}",
    ]


def apply_staged(conn: sqlite3.Connection, collection: str, spec: TextIndexSpec) -> None:
    """Bring the FTS table of ``collection`` up to date with the staged ids (inside the
    caller's transaction, after the last savepoint: one FTS flush per transaction)."""
    docs, fts = f'"c_{collection}"', fts_table(collection)
    keys, staged = key_table(collection), staging_table(collection)
    if conn.execute(f"SELECT 1 FROM {staged} LIMIT 1").fetchone() is None:
        return
    cols = ", ".join(f"c{i}" for i in range(len(spec.fields)))
    texts = ", ".join(_text_of("d", f) for f, _ in spec.fields)
    pending = f"(SELECT id FROM {staged})"
    conn.execute(f"DELETE FROM {fts} WHERE rowid IN (SELECT k.r FROM {keys} k "
                 f"WHERE k.id IN {pending})")
    conn.execute(f"DELETE FROM {keys} WHERE id IN {pending}")
    conn.execute(f"INSERT INTO {keys}(id) SELECT id FROM {docs} WHERE id IN {pending}")
    conn.execute(f"INSERT INTO {fts}(rowid, {cols}) SELECT k.r, {texts} FROM {docs} d "
                 f"JOIN {keys} k ON k.id = d.id WHERE d.id IN {pending}")
    conn.execute(f"DELETE FROM {staged}")


class TextIndexes:
    """The text indexes of the file, as the writer knows them: reloaded whenever the schema
    changed (``PRAGMA schema_version``), so an index another process declared is kept up to
    date here too. Used by the writer thread only."""

    def __init__(self) -> None:
        self.specs: dict[str, TextIndexSpec] = {}
        self._version = -1

    def apply_all(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        if version != self._version:
            self.specs = load_text_specs(conn)
            self._version = version
        for collection, spec in self.specs.items():
            apply_staged(conn, collection, spec)


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
    return load_text_specs(conn, collection).get(collection)


def load_text_specs(conn: sqlite3.Connection, collection: str | None = None
                    ) -> dict[str, TextIndexSpec]:
    """The declared text indexes (of one collection, or all), by collection."""
    sql = f"SELECT collection, name, spec FROM {TEXT_META}"
    args: tuple[str, ...] = ()
    if collection is not None:
        sql, args = sql + " WHERE collection = ?", (collection,)
    try:
        rows = conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    return {coll: TextIndexSpec.from_json(name, text) for coll, name, text in rows}


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
    "TextIndexes",
    "apply_staged",
    "ensure_text_index",
    "fts_table",
    "key_table",
    "load_text_spec",
    "load_text_specs",
    "member_where",
    "search_sql",
    "staging_table",
    "text_index_ddl",
]
