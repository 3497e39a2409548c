"""``SqliteStore``: the embedded default store, one SQLite file under the data directory.

Threads: every SQLite call runs in a worker thread, never in the trio thread. ``find`` and
``count`` go through ``trio.to_thread.run_sync`` under one ``trio.CapacityLimiter``
(``max_threads``) and borrow a reader connection from a pool (WAL lets readers run beside the
writer); writes go to a single writer thread that group-commits. Point reads (``get``) are
batched onto the store's own reader threads, one ``IN (...)`` query per batch (see
``_sqlite_reads``).

Group commit: writers encode their documents (in the trio thread), append their operations to
a queue and wait. The writer thread, started by the first of them when none runs, takes
everything queued, runs it in one ``BEGIN IMMEDIATE ... COMMIT``, each writer's operations
under their own SAVEPOINT (so one writer's unique violation rolls back only its own
operations), hands the batch back to the trio thread, which wakes each writer with its own
result or error, and takes what was queued meanwhile at once; it ends when the queue is empty.
(A batch of plain document writes first runs without the savepoints, its inserts gathered into
multi-row statements; only if one of its writers fails is it rolled back and run again with
them: see ``commit_batch``.) While a batch commits, the next one gathers, so the cost of a
commit (an fsync) is shared by everyone waiting. The thread, not a trio task, starts each
commit (see ``_drain``), and it needs the GIL only between statements: the interpreter's switch
interval bounds how long it waits for it (``[node] switch_interval_ms``, ``tektree._gil``).

Durability: WAL with ``synchronous=FULL``: a write is acknowledged only after the WAL is synced,
so an acknowledged write survives a process kill *and* an OS crash or power loss. (``NORMAL``
would survive ``kill -9`` too but could lose the last commits on power loss; group commit makes
FULL's fsync cheap enough.)
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import attrs
import trio
from trio.lowlevel import (
    Abort,
    RaiseCancelT,
    Task,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

from tektree.persistence._errors import InvalidQuery, StoreClosed, StoreUnavailable
from tektree.persistence._metrics import StoreMetrics, StoreStatistics
from tektree.persistence._protocol import (
    Capabilities,
    Document,
    Filter,
    Health,
    IndexSpec,
    Page,
    SortSpec,
    Update,
)
from tektree.persistence._query import (
    check_collection,
    check_limit,
    decode_cursor,
    dumps,
    full_sort,
    normalize_filter,
    page_of,
)
from tektree.persistence._sqlite_ops import (
    IndexOp,
    Registry,
    WriteRequest,
    commit_batch,
    expr,
    fetch_docs,
    fetch_scalar,
    keyset,
    order_by,
    table,
    where,
)
from tektree.persistence._sqlite_reads import GetRequest, PointReader
from tektree.persistence._sqlite_text import (
    TextIndexOp,
    load_text_spec,
    member_where,
    search_sql,
)
from tektree.persistence._text import SearchPage, SearchRequest, TextIndexSpec, to_fts5
from tektree.persistence._unit import (
    EVENTS_COLLECTION,
    CommitNotifier,
    InsertOp,
    Op,
    OpResult,
    Unit,
    delete_op,
    insert_op,
    update_op,
)

T = TypeVar("T")
MAX_BATCH_REQUESTS: Final = 1024
BUSY_TIMEOUT_MS: Final = 10_000


@attrs.define
class _Request(WriteRequest):
    """A writer's request; its task parks on it until ``wake`` (no ``trio.Event``: one
    fewer object, park and unpark per write). ``task`` is None once it was woken or its
    wait was cancelled."""

    task: Task | None = None
    done: bool = False

    def abort(self, _: RaiseCancelT) -> Abort:
        self.task = None  # ``_write`` decides what the cancellation means
        return Abort.SUCCEEDED

    def wake(self) -> None:
        self.done = True
        task, self.task = self.task, None
        if task is not None:
            reschedule(task)


def _wake_all(batch: Sequence[_Request]) -> None:
    for req in batch:
        req.wake()


def _wait_regardless(_: RaiseCancelT) -> Abort:
    return Abort.FAILED


class _UnitBlock:
    """``async with store.unit() as u``: records ``u``'s writes, then commits them as one
    request when the block ends without an exception (a plain class: an
    ``asynccontextmanager`` costs an async generator and its machinery per unit, and every
    journal append is a unit)."""

    __slots__ = ("_store", "_unit")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._unit = Unit()

    async def __aenter__(self) -> Unit:
        return self._unit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            return  # the block failed: nothing was written; its exception goes on
        u = self._unit
        with self._store._metrics.timed("unit"):
            if u.ops:
                u.results = await self._store._write(u.ops)
            else:
                await trio.lowlevel.checkpoint()


def _connect(path: str, *, writer: bool) -> sqlite3.Connection:
    # The writer's multi-row INSERTs come in one shape per row count (see _sqlite_ops._flush):
    # room for them beside the usual statements in the connection's statement cache.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           cached_statements=1024 if writer else 128)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if writer:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            conn.close()
            raise sqlite3.OperationalError(f"could not switch to WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous=FULL")
    else:
        conn.execute("PRAGMA query_only=1")
    return conn


class SqliteStore:
    """The SQLite ``DocumentStore``. Open it with ``async with SqliteStore.open(path) as s``."""

    def __init__(self, path: str | Path, *, max_threads: int = 8) -> None:
        if max_threads < 2:
            raise ValueError(f"max_threads must be >= 2 (a writer and a reader), got {max_threads}")
        self.path = str(path)
        self._limiter = trio.CapacityLimiter(max_threads)
        self._metrics = StoreMetrics("sqlite", self._limiter)
        self._notifier = CommitNotifier()
        self._registry = Registry()
        self._known_tables: set[str] = set()
        self._readers: list[sqlite3.Connection] = []
        self._all_readers: list[sqlite3.Connection] = []
        self._writer_conn: sqlite3.Connection | None = None
        self._pending: list[_Request] = []
        self._reader = PointReader(
            functools.partial(_connect, self.path, writer=False),
            functools.partial(StoreClosed, self.path),
        )
        self._get_tables: dict[str, str] = {}
        self._text_specs: dict[str, TextIndexSpec] = {}
        #: Guards ``_pending``, ``_draining`` and each request's ``taken`` between the trio
        #: thread (which appends and, when cancelled, withdraws) and the writer thread.
        self._lock = threading.Lock()
        self._draining = False  # a writer thread runs, or has been started
        self._drained: trio.Event | None = None  # set once that thread has stopped
        self._token: trio.lowlevel.TrioToken | None = None
        self._closed = True

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | Path, *, max_threads: int = 8) -> AsyncIterator[SqliteStore]:
        store = cls(path, max_threads=max_threads)
        await store._start()
        try:
            store._reader.start()
            yield store
        finally:
            store._closed = True
            with trio.CancelScope(shield=True):
                if store._drained is not None:  # let the commit in flight finish
                    await store._drained.wait()
                await store._reader.aclose()
            store._close()

    async def _start(self) -> None:
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer_conn = await trio.to_thread.run_sync(self._open_writer)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(self.path, f"{type(exc).__name__}: {exc}") from exc
        self._token = trio.lowlevel.current_trio_token()
        self._closed = False

    def _open_writer(self) -> sqlite3.Connection:
        conn = _connect(self.path, writer=True)
        self._registry.load(conn)
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        self._known_tables = {n[2:] for (n,) in rows if n.startswith("c_")}
        return conn

    def _close(self) -> None:
        self._closed = True
        for req in self._pending:
            req.error = StoreClosed(self.path)
            req.wake()
        self._pending.clear()
        for conn in self._all_readers:
            conn.close()
        self._readers.clear()
        self._all_readers.clear()
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None

    # -- group commit ------------------------------------------------------------------------

    def _start_writer(self) -> None:
        """Start the writer thread (called with ``_draining`` just set): it commits what is
        pending, batch after batch, until nothing is."""
        drained = self._drained = trio.Event()
        token = self._token
        assert token is not None

        def deliver(_: object) -> None:  # in the writer thread, once ``_drain`` returned
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(drained.set)

        trio.lowlevel.start_thread_soon(self._drain, deliver, name="tektree sqlite writer")

    def _drain(self) -> None:
        """The writer thread: take everything pending, commit it (``commit_batch``), hand the
        batch back to the trio thread to wake its writers, and take what came meanwhile at
        once, until nothing is pending.

        The trio thread is not in that loop. When a trio task started each commit, a commit
        began only once the trio scheduler's batch that queued it had run to its end, i.e.
        after the whole wave of actors woken by the last commit had done their work: commits
        and the actors' work took turns, and the trio thread was idle a third of the time
        (the XP loop of ``python -m bench game``: batches of ~62 then ~4 writers, 4-5 ms from
        one commit's end to the next one's start). Now the next commit starts as the last one
        ends, with whatever half-wave has queued meanwhile, and the two overlap."""
        conn, token = self._writer_conn, self._token
        assert conn is not None and token is not None
        while True:
            with self._lock:
                batch = self._pending[:MAX_BATCH_REQUESTS]
                if not batch:
                    self._draining = False
                    return
                del self._pending[:MAX_BATCH_REQUESTS]
                for req in batch:
                    req.taken = True
                self._metrics.pending_writes = len(self._pending)
            self._metrics.batch(len(batch))
            try:
                self._known_tables |= commit_batch(
                    conn, self._registry, self._known_tables, batch
                )
            except BaseException as exc:  # commit_batch gave it to its requests already;
                for req in batch:  # any it failed before reaching get it here
                    if req.error is None:
                        req.error, req.results = exc, []
            try:
                token.run_sync_soon(_wake_all, batch)
            except trio.RunFinishedError:  # the trio run is gone: nobody waits any more
                return

    async def _write(self, ops: Sequence[Op | IndexOp | TextIndexOp]) -> list[OpResult]:
        if self._closed:
            raise StoreClosed(self.path)
        # Encoded here, not in the writer thread, which would hold the GIL for it in the
        # middle of the commit (and a document that cannot be stored fails before it queues).
        encoded = [
            [dumps(op.collection, d) for d in op.docs] if type(op) is InsertOp else None
            for op in ops
        ]
        req = _Request(ops=ops, encoded=encoded, task=current_task())
        with self._lock:
            self._pending.append(req)
            self._metrics.pending_writes = len(self._pending)
            start, self._draining = not self._draining, True
        if start:
            self._start_writer()
        try:
            await wait_task_rescheduled(req.abort)
        except trio.Cancelled:
            with self._lock:
                withdrawn = not req.taken
                if withdrawn:
                    self._pending.remove(req)  # never started: state unchanged
            if withdrawn:
                raise
            if not req.done:  # in flight: let it finish (uncancellably), then cancel
                req.task = current_task()
                await wait_task_rescheduled(_wait_regardless)
            raise
        if req.error is not None:
            raise req.error
        if any(isinstance(op, InsertOp) and op.collection == EVENTS_COLLECTION for op in ops):
            self._notifier.notify()
        return req.results

    # -- reads -------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreClosed(self.path)
        return await trio.to_thread.run_sync(self._with_reader, fn, limiter=self._limiter)

    def _with_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            conn = self._readers.pop()
        except IndexError:
            conn = _connect(self.path, writer=False)
            self._all_readers.append(conn)
        try:
            return fn(conn)
        finally:
            self._readers.append(conn)

    # -- the DocumentStore protocol ----------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(backend="sqlite", atomic_units=True)

    @property
    def commit_notifier(self) -> CommitNotifier:
        return self._notifier

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> str:
        with self._metrics.timed("insert"):
            op = insert_op(collection, [doc])
            await self._write([op])
            return str(op.docs[0]["_id"])

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        with self._metrics.timed("insert_many"):
            op = insert_op(collection, docs)
            if not op.docs:
                await trio.lowlevel.checkpoint()
                return []
            await self._write([op])
            return [str(d["_id"]) for d in op.docs]

    async def get(self, collection: str, doc_id: str) -> Document | None:
        # The hot path: no context manager, no regex after a collection's first read, no
        # Event; the caller parks until a reader task wakes it with its document.
        started = time.perf_counter()
        try:
            tbl = self._get_tables.get(collection)
            if tbl is None:
                tbl = self._get_tables[collection] = table(check_collection(collection))
            if self._closed:
                raise StoreClosed(self.path)
            request = GetRequest(self._reader, tbl, doc_id, current_task())
            self._reader.submit(request)
            doc: Document | None = await wait_task_rescheduled(request.abort)
        except BaseException as exc:
            if not isinstance(exc, trio.Cancelled):
                self._metrics.error("get", type(exc).__name__)
            self._metrics.observe("get", time.perf_counter() - started)
            raise
        self._metrics.observe("get", time.perf_counter() - started)
        return doc

    async def find(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        sort: SortSpec = (),
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        with self._metrics.timed("find"):
            check_collection(collection)
            check_limit(limit)
            order = full_sort(sort)
            clause, params = where(normalize_filter(filter))
            if after is not None:
                ks, ks_params = keyset(order, decode_cursor(after, order))
                clause, params = f"({clause}) AND {ks}", params + ks_params
            sql = f"SELECT doc FROM {table(collection)} WHERE {clause} ORDER BY {order_by(order)}"
            if limit is not None:
                sql += f" LIMIT {limit + 1}"
            docs = await self._read(lambda conn: fetch_docs(conn, sql, params))
            return page_of(docs, limit, order)

    async def update(
        self,
        collection: str,
        filter_or_id: Filter | str,
        update: Update,
        *,
        upsert: bool = False,
    ) -> int:
        with self._metrics.timed("update"):
            (matched,) = await self._write(
                [update_op(collection, filter_or_id, update, upsert=upsert)]
            )
            assert isinstance(matched, int)
            return matched

    async def delete(self, collection: str, filter_or_id: Filter | str) -> int:
        with self._metrics.timed("delete"):
            (deleted,) = await self._write([delete_op(collection, filter_or_id)])
            assert isinstance(deleted, int)
            return deleted

    async def count(self, collection: str, filter: Filter | None = None) -> int:
        with self._metrics.timed("count"):
            clause, params = where(normalize_filter(filter))
            sql = f"SELECT COUNT(*) FROM {table(check_collection(collection))} WHERE {clause}"
            return int(await self._read(lambda conn: fetch_scalar(conn, sql, params)) or 0)

    async def ensure_index(self, collection: str, spec: IndexSpec) -> None:
        with self._metrics.timed("ensure_index"):
            check_collection(collection)
            for field, _ in spec.fields:
                expr(normalize_filter({field: 0})[0].field)  # validates the field name
            await self._write([IndexOp(collection=collection, spec=spec)])

    async def ensure_text_index(self, collection: str, spec: TextIndexSpec) -> None:
        with self._metrics.timed("ensure_text_index"):
            check_collection(collection)
            await self._write([TextIndexOp(collection=collection, spec=spec)])
            self._text_specs[collection] = spec

    async def search(
        self,
        collection: str,
        text: str,
        *,
        filter: Filter | None = None,
        limit: int = 20,
        after: str | None = None,
    ) -> SearchPage:
        with self._metrics.timed("search"):
            req = SearchRequest.of(collection, text, filter, limit, after)
            clause, params = member_where(normalize_filter(filter))
            spec = self._text_specs.get(collection)
            if spec is None:
                spec = await self._read(lambda conn: load_text_spec(conn, collection))
                if spec is None:
                    raise req.no_text_index()
                self._text_specs[collection] = spec
            sql = search_sql(collection, spec, clause)
            args = [to_fts5(req.query), *params, req.window, req.offset]

            def run(conn: sqlite3.Connection) -> list[tuple[Document, float]]:
                try:
                    return [(json.loads(doc), score) for doc, score in conn.execute(sql, args)]
                except sqlite3.OperationalError as exc:
                    if "fts5" in str(exc) or "unterminated" in str(exc):
                        raise InvalidQuery(f"search query {text[:60]!r} was refused by the "
                                           f"text index: {exc}", value=text) from None
                    raise

            return req.page(await self._read(run))

    def unit(self) -> _UnitBlock:
        return _UnitBlock(self)

    async def health(self) -> Health:
        start = time.perf_counter()
        try:
            with self._metrics.timed("health"):
                await self._read(lambda conn: fetch_scalar(conn, "SELECT 1", ()))
        except Exception as exc:
            return Health(
                ok=False,
                latency_seconds=time.perf_counter() - start,
                backend="sqlite",
                error=f"{type(exc).__name__}: {exc}",
            )
        return Health(ok=True, latency_seconds=time.perf_counter() - start, backend="sqlite")

    def statistics(self) -> StoreStatistics:
        return self._metrics.statistics()

    def describe_indexes(self) -> dict[str, list[IndexSpec]]:
        """The declared indexes by collection (from the ``_tektree_indexes`` table)."""
        out: dict[str, list[IndexSpec]] = {}
        for coll, spec in self._registry.by_sql_name.values():
            out.setdefault(coll, []).append(spec)
        return out
