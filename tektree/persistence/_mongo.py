"""``MongoStore``: the ``DocumentStore`` on MongoDB through PyMongo's synchronous client.

Every driver call runs in a worker thread (``trio.to_thread.run_sync``) under a
``trio.CapacityLimiter`` of ``max_threads``, which is also the client's ``maxPoolSize``, so no
thread waits on the pool. A trio deadline cannot interrupt a thread: ``timeoutMS`` on the client
ends a stuck call, and ``serverSelectionTimeoutMS`` makes an unreachable server fail at start-up
with ``StoreUnavailable``.

``unit()``: on a replica set (or ``mongos``) it is one multi-document transaction. On a standalone
server (and mongomock) transactions do not exist: the unit runs as an ordered sequence that stops
at the first error, so the operations before the failing one stay applied
(``capabilities.atomic_units`` is then False).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pymongo
import pymongo.errors
import trio
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from tektree.persistence._errors import (
    DuplicateKeyError,
    InvalidQuery,
    StoreClosed,
    StoreError,
    StoreUnavailable,
)
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
    ID_FIELD,
    MISSING,
    check_collection,
    check_field,
    check_limit,
    decode_cursor,
    full_sort,
    get_path,
    normalize_filter,
    page_of,
)
from tektree.persistence._text import (
    SearchPage,
    SearchRequest,
    TextIndexSpec,
    mongo_text_find,
    strip_score,
)
from tektree.persistence._unit import (
    EVENTS_COLLECTION,
    CommitNotifier,
    DeleteOp,
    InsertOp,
    Op,
    OpResult,
    Unit,
    UpdateOp,
    delete_op,
    insert_op,
    update_op,
)

T = TypeVar("T")
_CREDENTIALS = re.compile(r"//([^:/@]+):([^@/]+)@")


def mask_url(url: str) -> str:
    """``mongodb://user:secret@host`` -> ``mongodb://user:***@host`` (for errors and logs)."""
    return _CREDENTIALS.sub(r"//\1:***@", url)


def _keyset(sort: Sequence[tuple[str, int]], values: Sequence[Any]) -> dict[str, Any]:
    """MongoDB filter for documents strictly after ``values`` in ``sort`` order (nulls first
    ascending, like MongoDB's own sort)."""
    alternatives: list[dict[str, Any]] = []
    for i, (field, direction) in enumerate(sort):
        clause: dict[str, Any] = {sort[j][0]: values[j] for j in range(i)}
        v = values[i]
        if direction == 1:
            clause[field] = {"$ne": None} if v is None else {"$gt": v}
        elif v is None:
            continue
        else:
            alternatives.append({**clause, "$or": [{field: {"$lt": v}}, {field: None}]})
            continue
        alternatives.append(clause)
    return {"$or": alternatives} if alternatives else {"_id": {"$in": []}}


class MongoStore:
    """The MongoDB ``DocumentStore``. Open it with ``async with MongoStore.open(url, db)``."""

    def __init__(
        self,
        url: str = "mongodb://localhost:27017",
        database: str = "tektree",
        *,
        client: Any = None,
        timeout_ms: int = 10_000,
        max_threads: int = 8,
    ) -> None:
        self.url = mask_url(url)
        self._limiter = trio.CapacityLimiter(max_threads)
        self._metrics = StoreMetrics("mongodb", self._limiter)
        self._notifier = CommitNotifier()
        self._owns_client = client is None
        if client is None:
            client = pymongo.MongoClient(
                url,
                maxPoolSize=max_threads,
                timeoutMS=timeout_ms,
                serverSelectionTimeoutMS=timeout_ms,
                connect=False,
                tz_aware=True,
            )
        self._client = client
        self._db = client[database]
        self._unique: dict[str, list[IndexSpec]] = {}
        self._atomic = False
        self._closed = True

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str = "mongodb://localhost:27017",
        database: str = "tektree",
        *,
        client: Any = None,
        timeout_ms: int = 10_000,
        max_threads: int = 8,
    ) -> AsyncIterator[MongoStore]:
        store = cls(url, database, client=client, timeout_ms=timeout_ms, max_threads=max_threads)
        try:
            await store._start()
            yield store
        finally:
            store._closed = True
            if store._owns_client:
                store._client.close()

    async def _start(self) -> None:
        try:
            await trio.to_thread.run_sync(self._client.admin.command, "ping", limiter=self._limiter)
        except pymongo.errors.PyMongoError as exc:
            raise StoreUnavailable(self.url, f"{type(exc).__name__}: {exc}") from exc
        self._atomic = await trio.to_thread.run_sync(self._supports_transactions)
        self._closed = False

    def _supports_transactions(self) -> bool:
        try:
            hello = self._client.admin.command("hello")
        except (NotImplementedError, pymongo.errors.OperationFailure):
            return False  # mongomock, or a server too old for ``hello``
        return bool(hello.get("setName") or hello.get("msg") == "isdbgrid")

    async def _call(self, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StoreClosed(self.url)
        try:
            return await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except (
            pymongo.errors.ConnectionFailure,
            pymongo.errors.ServerSelectionTimeoutError,
        ) as exc:
            raise StoreUnavailable(self.url, f"{type(exc).__name__}: {exc}") from exc
        except pymongo.errors.PyMongoError as exc:
            if isinstance(exc, pymongo.errors.ExecutionTimeout):
                raise StoreUnavailable(self.url, f"timed out: {exc}") from exc
            raise StoreError(f"MongoDB at {self.url}: {type(exc).__name__}: {exc}") from exc

    def _coll(self, name: str) -> Collection[Document]:
        coll: Collection[Document] = self._db[check_collection(name)]
        return coll

    # -- operations (run in a worker thread) -------------------------------------------------

    def _duplicate(
        self, exc: pymongo.errors.DuplicateKeyError, collection: str, doc: Mapping[str, Any]
    ) -> DuplicateKeyError:
        details = exc.details or {}
        key = details.get("keyValue")
        found = re.search(r"index: (\S+) dup key", str(details.get("errmsg", exc)))
        if key is not None and found:
            return DuplicateKeyError(collection, found.group(1), key)
        # mongomock (and old servers) do not say which index: find the one that conflicts.
        candidates = [IndexSpec(fields=((ID_FIELD, 1),), unique=True, name="_id_")]
        for spec in [*candidates, *self._unique.get(collection, [])]:
            probe = {f: (None if (v := get_path(doc, f)) is MISSING else v) for f, _ in spec.fields}
            if self._coll(collection).find_one(probe, projection={"_id": 1}) is not None:
                return DuplicateKeyError(collection, spec.name, probe)
        return DuplicateKeyError(collection, "unknown", {})

    def _run_op(self, op: Op, session: ClientSession | None) -> OpResult:
        coll = self._coll(op.collection)
        if isinstance(op, InsertOp):
            for doc in op.docs:
                try:
                    coll.insert_one(dict(doc), session=session)
                except pymongo.errors.DuplicateKeyError as exc:
                    raise self._duplicate(exc, op.collection, doc) from None
            return [str(d[ID_FIELD]) for d in op.docs]
        if isinstance(op, UpdateOp):
            return self._update(coll, op, session)
        assert isinstance(op, DeleteOp)
        return coll.delete_many(dict(op.raw_filter), session=session).deleted_count

    def _update(
        self, coll: Collection[Document], op: UpdateOp, session: ClientSession | None
    ) -> int:
        update = {k: dict(v) for k, v in op.update.items()}
        if op.upsert and not any(c.field == ID_FIELD and c.op == "$eq" for c in op.conditions):
            update["$setOnInsert"] = {ID_FIELD: op.upsert_id}  # str ids, never ObjectId
        try:
            result = coll.update_many(
                dict(op.raw_filter), update, upsert=op.upsert, session=session
            )
        except pymongo.errors.DuplicateKeyError as exc:
            fields = {f: v for k, v in op.update.items() if k == "$set" for f, v in v.items()}
            raise self._duplicate(exc, op.collection, fields) from None
        except pymongo.errors.WriteError as exc:
            raise InvalidQuery(f"update of {op.collection!r} rejected: {exc}") from exc
        return int(result.matched_count)

    def _run_ops(self, ops: Sequence[Op]) -> list[OpResult]:
        if not self._atomic:
            return [self._run_op(op, None) for op in ops]
        with self._client.start_session() as session:
            out: list[list[OpResult]] = []

            def body(s: ClientSession) -> None:
                out[:] = [[self._run_op(op, s) for op in ops]]

            session.with_transaction(body)
            return out[0]

    async def _write(self, ops: Sequence[Op]) -> list[OpResult]:
        results = await self._call(lambda: self._run_ops(ops))
        if any(isinstance(op, InsertOp) and op.collection == EVENTS_COLLECTION for op in ops):
            self._notifier.notify()
        return results

    # -- the DocumentStore protocol ----------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(backend="mongodb", atomic_units=self._atomic)

    @property
    def commit_notifier(self) -> CommitNotifier:
        return self._notifier

    async def insert(self, collection: str, doc: Mapping[str, Any]) -> str:
        with self._metrics.timed("insert"):
            op = insert_op(collection, [doc])
            await self._write([op])
            return str(op.docs[0][ID_FIELD])

    async def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        with self._metrics.timed("insert_many"):
            op = insert_op(collection, docs)
            if not op.docs:
                await trio.lowlevel.checkpoint()
                return []
            await self._write([op])
            return [str(d[ID_FIELD]) for d in op.docs]

    async def get(self, collection: str, doc_id: str) -> Document | None:
        with self._metrics.timed("get"):
            coll = self._coll(collection)
            return await self._call(lambda: coll.find_one({ID_FIELD: doc_id}))

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
            coll = self._coll(collection)
            normalize_filter(filter)
            check_limit(limit)
            order = full_sort(sort)
            query: dict[str, Any] = dict(filter or {})
            if after is not None:
                query = {"$and": [query, _keyset(order, decode_cursor(after, order))]}

            def run() -> list[Document]:
                cursor = coll.find(query, sort=list(order))
                if limit is not None:
                    cursor = cursor.limit(limit + 1)
                return list(cursor)

            docs = await self._call(run)
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
            op = update_op(collection, filter_or_id, update, upsert=upsert)
            (matched,) = await self._write([op])
            assert isinstance(matched, int)
            return matched

    async def delete(self, collection: str, filter_or_id: Filter | str) -> int:
        with self._metrics.timed("delete"):
            (deleted,) = await self._write([delete_op(collection, filter_or_id)])
            assert isinstance(deleted, int)
            return deleted

    async def count(self, collection: str, filter: Filter | None = None) -> int:
        with self._metrics.timed("count"):
            coll = self._coll(collection)
            normalize_filter(filter)
            query = dict(filter or {})
            return int(await self._call(lambda: coll.count_documents(query)))

    async def ensure_index(self, collection: str, spec: IndexSpec) -> None:
        with self._metrics.timed("ensure_index"):
            coll = self._coll(collection)
            for field, _ in spec.fields:
                check_field(field)

            def run() -> None:
                try:
                    coll.create_index(list(spec.fields), unique=spec.unique, name=spec.name)
                except pymongo.errors.DuplicateKeyError as exc:
                    raise DuplicateKeyError(collection, spec.name, {"existing": str(exc)}) from None
                except pymongo.errors.OperationFailure as exc:
                    raise InvalidQuery(
                        f"index {spec.name!r} on {collection!r} conflicts with an existing "
                        f"index: {exc}; choose another name",
                        value=spec,
                    ) from exc

            await self._call(run)
            if spec.unique:
                known = self._unique.setdefault(collection, [])
                if spec not in known:
                    known.append(spec)

    async def ensure_text_index(self, collection: str, spec: TextIndexSpec) -> None:
        with self._metrics.timed("ensure_text_index"):
            coll = self._coll(collection)

            def run() -> None:
                for name, info in coll.index_information().items():
                    if name != spec.name and any(kind == "text" for _, kind in info["key"]):
                        raise InvalidQuery(
                            f"collection {collection!r} already has the text index {name!r}; "
                            f"cannot declare {spec.name!r} as well: a collection has one text "
                            "index (drop the old one first)", value=spec)
                try:
                    coll.create_index([(f, "text") for f, _ in spec.fields], name=spec.name,
                                      weights=dict(spec.fields), default_language=spec.language)
                except pymongo.errors.OperationFailure as exc:
                    raise InvalidQuery(
                        f"collection {collection!r} already has another text index: {exc}; a "
                        "collection has one text index (drop the old one first)", value=spec,
                    ) from exc

            await self._call(run)

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
            normalize_filter(filter)
            coll = self._coll(collection)
            find = mongo_text_find(req.query, filter)

            def run() -> list[tuple[Document, float]]:
                try:
                    cursor = coll.find(find.filter, find.projection, sort=find.sort)
                    docs = list(cursor.skip(req.offset).limit(req.window))
                except pymongo.errors.OperationFailure as exc:
                    if exc.code == 27:  # IndexNotFound
                        raise req.no_text_index() from exc
                    raise
                return [strip_score(doc, find.score_field) for doc in docs]

            return req.page(await self._call(run))

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Unit]:
        u = Unit()
        yield u
        with self._metrics.timed("unit"):
            if u.ops:
                u.results = await self._write(u.ops)
            else:
                await trio.lowlevel.checkpoint()

    async def health(self) -> Health:
        start = time.perf_counter()
        try:
            with self._metrics.timed("health"):
                await self._call(lambda: self._client.admin.command("ping"))
        except Exception as exc:
            return Health(
                ok=False,
                latency_seconds=time.perf_counter() - start,
                backend="mongodb",
                error=f"{type(exc).__name__}: {exc}",
            )
        return Health(ok=True, latency_seconds=time.perf_counter() - start, backend="mongodb")

    def statistics(self) -> StoreStatistics:
        return self._metrics.statistics()
