"""The SQLite side of ``SqliteStore``: SQL translation and the code that runs in worker threads.

No trio here. Documents live as JSON text in one table per collection (``c_<name>``: ``id`` TEXT
primary key, ``doc`` TEXT); fields are read with ``json_extract(doc, '$.path')``, and a declared
index is an expression index on exactly those expressions, so the planner uses it.

Value semantics follow SQLite where they differ from MongoDB: JSON ``true``/``false`` compare as
1/0; range operators compare across types in SQLite's order (NULL < numbers < text); a field
holding an array is compared as its JSON text (no array-membership match); a unique index allows
several documents that lack the field (MongoDB counts them as one ``null``).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from tektree.persistence._errors import DuplicateKeyError, InvalidQuery, StoreError
from tektree.persistence._protocol import Document, IndexSpec
from tektree.persistence._query import (
    ID_FIELD,
    MISSING,
    Condition,
    apply_update,
    dumps,
    get_path,
    upsert_seed,
)
from tektree.persistence._sqlite_text import TextIndexes, TextIndexOp, ensure_text_index
from tektree.persistence._unit import DeleteOp, InsertOp, Op, OpResult, UpdateOp

META_TABLE: Final = "_tektree_indexes"
_RANGE_SQL: Final = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


@attrs.frozen(kw_only=True)
class IndexOp:
    """``ensure_index`` as a write operation (DDL is transactional in SQLite)."""

    collection: str
    spec: IndexSpec


def table(collection: str) -> str:
    return f'"c_{collection}"'


def index_sql_name(collection: str, name: str) -> str:
    return f"ix_{collection}__{name}"


def expr(field: str) -> str:
    """The SQL expression of a (validated) field; the literal path lets expression indexes match."""
    return "id" if field == ID_FIELD else f"json_extract(doc, '$.{field}')"


def where(conditions: Sequence[Condition]) -> tuple[str, list[Any]]:
    parts: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        e = expr(cond.field)
        if cond.op == "$eq":
            if cond.value is None:
                parts.append(f"{e} IS NULL")
            else:
                parts.append(f"{e} = ?")
                params.append(cond.value)
        elif cond.op == "$ne":
            parts.append(f"{e} IS NOT ?")
            params.append(cond.value)
        elif cond.op in _RANGE_SQL:
            parts.append(f"{e} {_RANGE_SQL[cond.op]} ?")
            params.append(cond.value)
        else:  # $in / $nin
            values = [v for v in cond.value if v is not None]
            has_null = len(values) != len(cond.value)
            marks = ", ".join("?" * len(values))
            params.extend(values)
            if cond.op == "$in":
                alts = [f"{e} IN ({marks})"] if values else []
                alts += [f"{e} IS NULL"] if has_null else []
                parts.append("(" + " OR ".join(alts) + ")" if alts else "0")
            else:
                inner = f"{e} NOT IN ({marks})" if values else "1"
                null_part = f"{e} IS NOT NULL" if has_null else f"{e} IS NULL"
                joiner = " AND " if has_null else " OR "
                parts.append(f"({null_part}{joiner}{inner})")
    return (" AND ".join(parts) if parts else "1"), params


def order_by(sort: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{expr(f)} {'ASC' if d == 1 else 'DESC'}" for f, d in sort)


def keyset(sort: Sequence[tuple[str, int]], values: Sequence[Any]) -> tuple[str, list[Any]]:
    """Rows strictly after ``values`` in ``sort`` order (SQLite orders NULL first ascending)."""
    alternatives: list[str] = []
    params: list[Any] = []
    for i, (field, direction) in enumerate(sort):
        terms: list[str] = []
        for j in range(i):
            terms.append(f"{expr(sort[j][0])} IS ?")
            params.append(values[j])
        e, v = expr(field), values[i]
        if direction == 1:
            if v is None:
                terms.append(f"{e} IS NOT NULL")
            else:
                terms.append(f"{e} > ?")
                params.append(v)
        elif v is None:
            terms.append("0")
        else:
            terms.append(f"({e} < ? OR {e} IS NULL)")
            params.append(v)
        alternatives.append("(" + " AND ".join(terms) + ")")
    return "(" + " OR ".join(alternatives) + ")", params


def create_table_sql(collection: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table(collection)} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)"
    )


def create_index_sql(collection: str, spec: IndexSpec) -> str:
    cols = ", ".join(f"{expr(f)} {'ASC' if d == 1 else 'DESC'}" for f, d in spec.fields)
    unique = "UNIQUE " if spec.unique else ""
    name = index_sql_name(collection, spec.name)
    return f'CREATE {unique}INDEX IF NOT EXISTS "{name}" ON {table(collection)} ({cols})'


def spec_to_json(spec: IndexSpec) -> str:
    return json.dumps({"fields": [list(f) for f in spec.fields], "unique": spec.unique})


def spec_from_json(name: str, text: str) -> IndexSpec:
    data = json.loads(text)
    return IndexSpec(
        fields=tuple((f, d) for f, d in data["fields"]), unique=data["unique"], name=name
    )


class Registry:
    """The declared indexes, by SQL name (to name the key in a unique violation) and by
    collection. Mutated only by the writer thread; a plain dict read is safe under the GIL."""

    def __init__(self) -> None:
        self.by_sql_name: dict[str, tuple[str, IndexSpec]] = {}
        self.text = TextIndexes()

    def load(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {META_TABLE} "
            "(collection TEXT, name TEXT, spec TEXT, PRIMARY KEY (collection, name))"
        )
        for coll, name, text in conn.execute(f"SELECT collection, name, spec FROM {META_TABLE}"):
            self.by_sql_name[index_sql_name(coll, name)] = (coll, spec_from_json(name, text))

    def duplicate(
        self, exc: sqlite3.IntegrityError, collection: str, doc: Mapping[str, Any]
    ) -> StoreError:
        message = str(exc)
        if not message.startswith("UNIQUE constraint failed"):
            return StoreError(f"collection {collection!r}: integrity error: {message}")
        if ".id" in message and "index '" not in message:
            return DuplicateKeyError(collection, "_id_", {"_id": doc.get(ID_FIELD)})
        sql_name = message.split("index '", 1)[-1].rstrip("'")
        entry = self.by_sql_name.get(sql_name)
        if entry is None:
            return DuplicateKeyError(collection, sql_name, {})
        coll, spec = entry
        key = {f: (None if (v := get_path(doc, f)) is MISSING else v) for f, _ in spec.fields}
        return DuplicateKeyError(coll, spec.name, key)


def run_op(
    conn: sqlite3.Connection,
    registry: Registry,
    op: Op | IndexOp | TextIndexOp,
    texts: Sequence[str] | None = None,
) -> OpResult:
    """Run one operation on ``conn`` inside the caller's transaction (``texts``: an
    ``InsertOp``'s documents already encoded, else they are encoded here)."""
    if isinstance(op, InsertOp):
        return _insert(conn, registry, op, texts)
    if isinstance(op, UpdateOp):
        return _update(conn, registry, op)
    if isinstance(op, DeleteOp):
        clause, params = where(op.conditions)
        return conn.execute(f"DELETE FROM {table(op.collection)} WHERE {clause}", params).rowcount
    if isinstance(op, TextIndexOp):
        return ensure_text_index(conn, op)
    return _ensure_index(conn, registry, op)


@functools.cache
def insert_sql(collection: str) -> str:
    return f"INSERT INTO {table(collection)} (id, doc) VALUES (?, ?)"


def _insert(
    conn: sqlite3.Connection, registry: Registry, op: InsertOp, texts: Sequence[str] | None
) -> list[str]:
    """One ``execute`` for one document (an outbox event, a journal event); one
    ``executemany`` for several (one cursor, one statement lookup), each bound in turn: the
    row that fails is the one last bound."""
    collection = op.collection
    if len(op.docs) == 1:
        (doc,) = op.docs
        text = texts[0] if texts is not None else dumps(collection, doc)
        try:
            conn.execute(insert_sql(collection), (doc[ID_FIELD], text))
        except sqlite3.IntegrityError as exc:
            raise registry.duplicate(exc, collection, doc) from None
        return [str(doc[ID_FIELD])]
    last: Document = {}

    def rows() -> Iterator[tuple[Any, str]]:
        nonlocal last
        for i, doc in enumerate(op.docs):
            last = doc
            yield doc[ID_FIELD], texts[i] if texts is not None else dumps(collection, doc)

    try:
        conn.executemany(insert_sql(collection), rows())
    except sqlite3.IntegrityError as exc:
        raise registry.duplicate(exc, collection, last) from None
    return [str(d[ID_FIELD]) for d in op.docs]


def _update(conn: sqlite3.Connection, registry: Registry, op: UpdateOp) -> int:
    clause, params = where(op.conditions)
    t = table(op.collection)
    rows = conn.execute(f"SELECT id, doc FROM {t} WHERE {clause}", params).fetchall()
    for doc_id, text in rows:
        new = apply_update(json.loads(text), op.update, owned=True)  # decoded here, dumped
        try:
            conn.execute(
                f"UPDATE {t} SET doc = ? WHERE id = ?", (dumps(op.collection, new), doc_id)
            )
        except sqlite3.IntegrityError as exc:
            raise registry.duplicate(exc, op.collection, new) from None
    if not rows and op.upsert:
        doc = apply_update(upsert_seed(op.conditions, op.upsert_id), op.update, owned=True)
        run_op(conn, registry, InsertOp(collection=op.collection, docs=(doc,)))
    return len(rows)


def _ensure_index(conn: sqlite3.Connection, registry: Registry, op: IndexOp) -> int:
    row = conn.execute(
        f"SELECT spec FROM {META_TABLE} WHERE collection = ? AND name = ?",
        (op.collection, op.spec.name),
    ).fetchone()
    if row is not None:
        existing = spec_from_json(op.spec.name, row[0])
        if existing != op.spec:
            raise InvalidQuery(
                f"index {op.spec.name!r} on {op.collection!r} exists as {existing}; "
                f"cannot redeclare it as {op.spec}: choose another name",
                value=op.spec,
            )
        # Declared by another process since this one opened: know it here too, or a unique
        # violation on it would not be recognised (a redelivered journal event would look like
        # a concurrent writer instead of a duplicate).
        sql_name = index_sql_name(op.collection, op.spec.name)
        registry.by_sql_name[sql_name] = (op.collection, existing)
        return 0
    try:
        conn.execute(create_index_sql(op.collection, op.spec))
    except sqlite3.IntegrityError as exc:
        raise DuplicateKeyError(
            op.collection, op.spec.name, {"existing_documents": str(exc)}
        ) from None
    conn.execute(
        f"INSERT INTO {META_TABLE} (collection, name, spec) VALUES (?, ?, ?)",
        (op.collection, op.spec.name, spec_to_json(op.spec)),
    )
    registry.by_sql_name[index_sql_name(op.collection, op.spec.name)] = (op.collection, op.spec)
    return 1


@attrs.define
class WriteRequest:
    """One writer's operations waiting for the group commit, and their outcome."""

    ops: Sequence[Op | IndexOp | TextIndexOp]
    #: The JSON text of each ``InsertOp``'s documents, ``None`` for other operations: encoded
    #: by the writer before it queued (``SqliteStore._write``).
    encoded: Sequence[list[str] | None]
    taken: bool = False
    results: list[OpResult] = attrs.Factory(list)
    error: BaseException | None = None


def commit_batch(
    conn: sqlite3.Connection, registry: Registry, known: set[str], batch: Sequence[WriteRequest]
) -> set[str]:
    """Run every request of ``batch`` in one transaction, each under its own SAVEPOINT so that
    one request's error rolls back only that request. Returns the tables created.

    A batch of plain document writes is first run without the savepoints (two statements per
    request fewer): if none of its requests fails, the outcome is the same; if one does, that
    transaction is rolled back whole and the batch runs again, savepoint by savepoint."""
    if {type(op) for req in batch for op in req.ops} <= _DATA_OPS:
        try:
            return _commit(conn, registry, known, batch, isolated=False)
        except _RequestFailed:
            for req in batch:
                req.error, req.results = None, []
    return _commit(conn, registry, known, batch, isolated=True)


_DATA_OPS: Final = frozenset({InsertOp, UpdateOp, DeleteOp})


class _RequestFailed(Exception):
    """A request of a batch run without savepoints failed: the transaction was rolled back."""


def _commit(
    conn: sqlite3.Connection,
    registry: Registry,
    known: set[str],
    batch: Sequence[WriteRequest],
    *,
    isolated: bool,
) -> set[str]:
    created = {op.collection for req in batch for op in req.ops} - known
    conn.execute("BEGIN IMMEDIATE")
    try:
        for collection in sorted(created):
            conn.execute(create_table_sql(collection))
        if not isolated:
            try:
                _run_coalesced(conn, registry, batch)
            except Exception:
                conn.execute("ROLLBACK")
                raise _RequestFailed from None
        else:
            for req in batch:
                conn.execute("SAVEPOINT w")
                try:
                    req.results = [run_op(conn, registry, op, texts)
                                   for op, texts in zip(req.ops, req.encoded, strict=True)]
                except Exception as exc:  # this request's own failure; the others go on
                    conn.execute("ROLLBACK TO w")
                    req.error, req.results = exc, []
                conn.execute("RELEASE w")
        registry.text.apply_all(conn)  # after the last savepoint: one FTS flush per commit
        conn.execute("COMMIT")
    except _RequestFailed:
        raise
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for req in batch:
            if req.error is None:
                req.error, req.results = exc, []
        raise
    return created


#: The largest multi-row ``INSERT`` of :func:`_run_coalesced`: 2 parameters a row, well under
#: SQLite's smallest default variable limit (999).
_MAX_ROWS: Final = 256


@functools.cache
def _insert_rows_sql(collection: str, rows: int) -> str:
    return f"INSERT INTO {table(collection)} (id, doc) VALUES " + ",".join(["(?,?)"] * rows)


def _run_coalesced(
    conn: sqlite3.Connection, registry: Registry, batch: Sequence[WriteRequest]
) -> None:
    """Run a batch's operations, its inserts gathered into multi-row ``INSERT`` statements.

    Every ``execute`` lets go of the GIL for its step and must take it back afterwards, which
    costs up to a switch interval while the trio thread runs Python: one statement per inserted
    document (a commit of 30 profile events inserts ~120 rows: journal and outbox) made the
    commit wait on the trio thread again and again. Here inserts wait, per collection and in
    their order, until the batch ends or another kind of operation comes (it may read what they
    wrote), then go as statements of up to :data:`_MAX_ROWS` rows (one shape per row count: the
    writer's connection caches 1,024 statements). Rows of different collections do not
    see each other, so writing them collection by collection changes nothing. Any failure
    fails the whole batch: ``commit_batch`` then runs it again request by request."""
    pending: dict[str, list[Any]] = {}
    for req in batch:
        results: list[OpResult] = []
        for op, texts in zip(req.ops, req.encoded, strict=True):
            if type(op) is InsertOp and texts is not None:
                params = pending.setdefault(op.collection, [])
                for doc, text in zip(op.docs, texts, strict=True):
                    params.append(doc[ID_FIELD])
                    params.append(text)
                results.append([str(d[ID_FIELD]) for d in op.docs])
                continue
            _flush(conn, pending)
            results.append(run_op(conn, registry, op))
        req.results = results
    _flush(conn, pending)


def _flush(conn: sqlite3.Connection, pending: dict[str, list[Any]]) -> None:
    for collection, params in pending.items():
        for start in range(0, len(params), 2 * _MAX_ROWS):
            chunk = params[start : start + 2 * _MAX_ROWS]
            conn.execute(_insert_rows_sql(collection, len(chunk) // 2), chunk)
    pending.clear()


def fetch_docs(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Document]:
    try:
        return [json.loads(text) for (text,) in conn.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


#: ``fetch_by_ids`` pads its ``IN (...)`` list to one of these lengths (repeating the last id), so
#: a handful of statement shapes stay in the connection's statement cache.
IN_LIST_SIZES: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def fetch_by_ids(conn: sqlite3.Connection, tbl: str, ids: Sequence[str]) -> dict[str, str]:
    """The JSON text of the documents of ``tbl`` among ``ids`` (missing ids are absent): one
    ``SELECT ... WHERE id IN (...)`` per 512 ids instead of one statement per id."""
    found: dict[str, str] = {}
    top = IN_LIST_SIZES[-1]
    try:
        for start in range(0, len(ids), top):
            chunk = list(ids[start : start + top])
            size = next(n for n in IN_LIST_SIZES if n >= len(chunk))
            chunk.extend(chunk[-1:] * (size - len(chunk)))
            marks = ",".join("?" * size)
            found.update(conn.execute(f"SELECT id, doc FROM {tbl} WHERE id IN ({marks})", chunk))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise
    return found


def fetch_scalar(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> Any:
    try:
        row = conn.execute(sql, params).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else row[0]
