"""Point reads for ``SqliteStore``: ``get`` calls batched onto dedicated reader threads.

A ``get`` appends a request and parks its task (no ``trio.Event``). An idle reader thread takes
everything queued as one batch and reads it with one ``SELECT ... WHERE id IN (...)`` per
collection; when done it hands the batch back with ``TrioToken.run_sync_soon`` (no
``trio.to_thread`` round trip, no limiter, no thread-cache handoff), which wakes each caller
with its document and gives the thread the next batch that gathered meanwhile. So the cost of
a thread hop is shared by every reader waiting, as group commit shares a commit's fsync.

The threads are the store's own (not ``max_threads``' limiter): ``READ_THREADS`` of them, each
with a read-only connection, started and joined with the store.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final

import trio
from outcome import Error, Value
from trio.lowlevel import Abort, RaiseCancelT, Task, TrioToken, reschedule

from tektree.persistence._sqlite_ops import fetch_by_ids

if TYPE_CHECKING:
    from tektree.persistence._protocol import Document

#: Dedicated reader threads. The GIL serializes the JSON decoding, so with the pages cached
#: one thread fed big batches beats two fed half-size ones (measured 0.62x vs 0.46x raw
#: sqlite3 on the bench's 50 concurrent readers); the second only takes work once
#: ``SPILL_AT`` requests wait, i.e. when the first is stuck (on the disk) rather than busy.
READ_THREADS: Final = 2
SPILL_AT: Final = 128
#: Most requests handed to a thread at once.
MAX_READ_BATCH: Final = 1024


class GetRequest:
    """One point read. The caller's task parks on it; ``wake`` reschedules it with the
    document or the error. ``task`` is None once it was woken or cancelled."""

    __slots__ = ("doc", "doc_id", "error", "reader", "table", "task")

    def __init__(self, reader: PointReader, tbl: str, doc_id: str, task: Task) -> None:
        self.reader = reader
        self.table = tbl
        self.doc_id = doc_id
        self.task: Task | None = task
        self.doc: Document | None = None
        self.error: BaseException | None = None

    def abort(self, _: RaiseCancelT) -> Abort:
        # Queued: it leaves the queue. In flight: the read finishes in its thread and is
        # dropped. Either way nothing changed, so the cancellation takes effect at once.
        self.task = None
        with contextlib.suppress(ValueError):
            self.reader.queued.remove(self)
        return Abort.SUCCEEDED

    def wake(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            reschedule(task, Value(self.doc) if self.error is None else Error(self.error))


def read_batch(conn: sqlite3.Connection, batch: Sequence[GetRequest]) -> None:
    """In a reader thread: fill in each request's ``doc`` or ``error``."""
    by_table: dict[str, list[GetRequest]] = {}
    for g in batch:
        by_table.setdefault(g.table, []).append(g)
    for tbl, group in by_table.items():
        try:
            found = fetch_by_ids(conn, tbl, list(dict.fromkeys(g.doc_id for g in group)))
            for g in group:
                text = found.get(g.doc_id)
                g.doc = None if text is None else json.loads(text)
        except Exception as exc:
            for g in group:
                g.error = exc


class _Worker:
    __slots__ = ("inbox", "thread")

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[list[GetRequest] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None


class PointReader:
    """The reader threads of one store and the queue of ``get`` requests feeding them."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        closed_error: Callable[[], BaseException],
        *,
        threads: int = READ_THREADS,
    ) -> None:
        self._connect = connect
        self._closed_error = closed_error
        self._workers = [_Worker() for _ in range(threads)]
        self._idle: list[_Worker] = []
        self.queued: list[GetRequest] = []
        self.batches = 0
        self._token: TrioToken | None = None
        self._closing = False

    def start(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        for i, worker in enumerate(self._workers):
            worker.thread = threading.Thread(
                target=self._serve, args=(worker,), name=f"tektree-sqlite-reader-{i}", daemon=True
            )
            worker.thread.start()
            self._idle.append(worker)

    def submit(self, request: GetRequest) -> None:
        queued = self.queued
        queued.append(request)
        idle = self._idle
        if idle and (len(idle) == len(self._workers) or len(queued) >= SPILL_AT):
            self._dispatch()

    def _dispatch(self) -> None:
        worker = self._idle.pop()
        batch = self.queued[:MAX_READ_BATCH]
        del self.queued[:MAX_READ_BATCH]
        self.batches += 1
        worker.inbox.put(batch)

    def _done(self, worker: _Worker, batch: list[GetRequest]) -> None:
        """In the trio thread (``run_sync_soon``): wake the callers, feed the thread again."""
        for g in batch:
            g.wake()
        self._idle.append(worker)
        if self.queued and not self._closing:
            self._dispatch()  # what gathered meanwhile, however little: nothing else is due

    def _serve(self, worker: _Worker) -> None:
        token = self._token
        assert token is not None
        conn: sqlite3.Connection | None = None
        try:
            while (batch := worker.inbox.get()) is not None:
                try:
                    if conn is None:
                        conn = self._connect()
                    read_batch(conn, batch)
                except Exception as exc:  # the connection could not be opened
                    for g in batch:
                        g.error = g.error or exc
                try:
                    token.run_sync_soon(self._done, worker, batch)
                except trio.RunFinishedError:
                    return  # trio is gone: nobody is waiting any more
        finally:
            if conn is not None:
                conn.close()

    async def aclose(self) -> None:
        """Fail queued requests, let in-flight batches finish, stop and join the threads."""
        self._closing = True
        queued, self.queued = self.queued, []
        for g in queued:
            g.error = self._closed_error()
            g.wake()
        threads = [w.thread for w in self._workers if w.thread is not None]
        for worker in self._workers:
            worker.inbox.put(None)

        def join() -> None:
            for thread in threads:
                thread.join()

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(join)
            # Batches that finished while joining were handed back with run_sync_soon: let
            # those callbacks run before the caller closes anything.
            await trio.lowlevel.checkpoint()
        for worker in self._workers:
            worker.thread = None
