"""The transactional outbox: domain events stored with the state change, relayed afterwards.

A writer records its state change and its events in one ``unit()`` (``unit.add_event``): both
commit or neither does. ``OutboxRelay`` publishes unpublished events in order and marks them
published. It is at-least-once: a relay that dies between publishing and marking publishes those
events again when it restarts. Subscribers make that exactly-once in effect by deduplicating on
``event_id`` (``Deduplicator`` in memory, ``DurableDeduplicator`` in the store).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import trio

from tektree.persistence._errors import DuplicateKeyError
from tektree.persistence._events import ENVELOPE_FIELDS, format_timestamp, utc_now
from tektree.persistence._protocol import Document, DocumentStore, IndexSpec
from tektree.persistence._unit import EVENTS_COLLECTION

EVENTS: Final = EVENTS_COLLECTION
OUTBOX_INDEXES: Final = (
    (EVENTS, IndexSpec(fields=(("event_type", 1), ("timestamp", 1)), name="type_time")),
    (EVENTS, IndexSpec(fields=(("published", 1), ("timestamp", 1)), name="unpublished")),
    (EVENTS, IndexSpec(fields=(("timestamp", 1),), name="time")),
)
_ORDER: Final = (("timestamp", 1), ("_id", 1))


def envelope(doc: Document) -> dict[str, Any]:
    """The event as published: its envelope fields, without the outbox's bookkeeping."""
    return {name: doc[name] for name in ENVELOPE_FIELDS if name in doc}


class OutboxRelay:
    """Publishes the store's unpublished events, oldest first, through ``publish``.

    Start it with ``await nursery.start(relay.run)``. It wakes when a unit carrying events
    commits on this store, and polls every ``poll_interval_seconds`` for events written by other
    processes. A failing ``publish`` is retried for the same event (order is kept) with
    exponential backoff from ``backoff_initial_seconds`` up to ``backoff_max_seconds``.

    Concurrency: by default one event at a time, in order. With ``key`` (a function of the
    envelope, e.g. the user an event concerns) and ``concurrency`` > 1, the events of a batch
    are grouped by key and up to ``concurrency`` keys are published at once, each key's events
    in order (order *across* keys is not kept, and a key that keeps failing delays only its
    own events); the batch is marked published once all of it was. A ``publish`` that waits on
    a durable effect (an actor's ask) then costs one round trip per batch of keys, not one per
    event.
    """

    def __init__(
        self,
        store: DocumentStore,
        publish: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        batch_size: int = 100,
        poll_interval_seconds: float = 1.0,
        backoff_initial_seconds: float = 0.05,
        backoff_max_seconds: float = 5.0,
        key: Callable[[dict[str, Any]], str] | None = None,
        concurrency: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if poll_interval_seconds <= 0:
            raise ValueError(f"poll_interval_seconds must be > 0, got {poll_interval_seconds}")
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if concurrency > 1 and key is None:
            raise ValueError(f"concurrency={concurrency} needs key= (events of one key are "
                             "published in order, different keys at once)")
        self._store = store
        self._publish = publish
        self._key = key
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.poll_interval_seconds = poll_interval_seconds
        self.backoff_initial_seconds = backoff_initial_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.published = 0
        self.publish_failures = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        notifier = self._store.commit_notifier
        task_status.started()
        while True:
            generation = notifier.generation
            if await self.relay_once() < self.batch_size:
                with trio.move_on_after(self.poll_interval_seconds):
                    await notifier.wait_past(generation)

    async def relay_once(self) -> int:
        """Publish one batch of pending events and mark them; returns how many."""
        page = await self._store.find(
            EVENTS, {"published": False}, sort=list(_ORDER), limit=self.batch_size
        )
        if self._key is not None and self.concurrency > 1:
            await self._relay_by_key(page.items, self._key)
            return len(page.items)
        done: list[str] = []
        for doc in page.items:
            delay = self.backoff_initial_seconds
            while True:
                try:
                    await self._publish(envelope(doc))
                    break
                except Exception:
                    self.publish_failures += 1
                    await self._mark(done)  # keep the progress made before backing off
                    done = []
                    await trio.sleep(delay)
                    delay = min(delay * 2, self.backoff_max_seconds)
            done.append(doc["_id"])
            self.published += 1
        await self._mark(done)
        return len(page.items)

    async def _relay_by_key(self, docs: list[Document], key: Callable[[dict[str, Any]], str]
                            ) -> None:
        lanes: dict[str, list[dict[str, Any]]] = {}
        for doc in docs:
            event = envelope(doc)
            lanes.setdefault(key(event), []).append(event)
        limiter = trio.CapacityLimiter(self.concurrency)

        async def lane(events: list[dict[str, Any]]) -> None:
            async with limiter:
                for event in events:
                    delay = self.backoff_initial_seconds
                    while True:
                        try:
                            await self._publish(event)
                            break
                        except Exception:
                            self.publish_failures += 1
                            await trio.sleep(delay)
                            delay = min(delay * 2, self.backoff_max_seconds)
                    self.published += 1

        async with trio.open_nursery() as nursery:
            for events in lanes.values():
                nursery.start_soon(lane, events)
        await self._mark([doc["_id"] for doc in docs])

    async def _mark(self, ids: list[str]) -> None:
        if ids:
            await self._store.update(
                EVENTS,
                {"_id": {"$in": ids}},
                {"$set": {"published": True, "published_at": utc_now()}},
            )


class Deduplicator:
    """Subscriber side, in memory: ``first_time(event_id)`` is True once per id.

    Remembers the last ``max_entries`` ids (an LRU), enough to absorb redeliveries, which come
    soon after the original. Use ``DurableDeduplicator`` when effects must survive restarts.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            self.duplicates += 1
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
        return True


class DurableDeduplicator:
    """Subscriber side, in the store: one document per processed ``event_id``.

    For effects in the same store, record the id in the effect's own unit instead
    (``unit.insert(collection, {"_id": event_id})``): the unit then fails with
    ``DuplicateKeyError`` on a redelivery, and the effect and its record cannot part.
    """

    def __init__(self, store: DocumentStore, collection: str = "processed_events") -> None:
        self._store = store
        self.collection = collection

    async def first_time(self, event_id: str) -> bool:
        try:
            await self._store.insert(self.collection, {"_id": event_id, "at": utc_now()})
        except DuplicateKeyError:
            return False
        return True


def _as_timestamp(value: dt.datetime | str | None) -> str | None:
    return format_timestamp(value) if isinstance(value, dt.datetime) else value


class _Replay:
    def __init__(self, store: DocumentStore, query: dict[str, Any], batch_size: int) -> None:
        self._store = store
        self._query = query
        self._batch_size = batch_size
        self._buffer: list[Document] = []
        self._cursor: str | None = None
        self._exhausted = False

    def __aiter__(self) -> _Replay:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if not self._buffer:
            if self._exhausted:
                raise StopAsyncIteration
            page = await self._store.find(
                EVENTS, self._query, sort=list(_ORDER), limit=self._batch_size, after=self._cursor
            )
            self._buffer = list(reversed(page.items))
            self._cursor = page.next_cursor
            self._exhausted = page.next_cursor is None
            if not self._buffer:
                raise StopAsyncIteration
        return envelope(self._buffer.pop())


def replay(
    store: DocumentStore,
    *,
    event_type: str | None = None,
    since: dt.datetime | str | None = None,
    until: dt.datetime | str | None = None,
    batch_size: int = 500,
) -> AsyncIterator[dict[str, Any]]:
    """Stored events (published or not) in time order: ``async for event in replay(...)``.

    ``since`` is inclusive, ``until`` exclusive; both are aware datetimes or timestamps in the
    stored format (``2026-01-01T00:00:00.000000Z``).
    """
    query: dict[str, Any] = {}
    if event_type is not None:
        query["event_type"] = event_type
    bounds: dict[str, str] = {}
    if (lo := _as_timestamp(since)) is not None:
        bounds["$gte"] = lo
    if (hi := _as_timestamp(until)) is not None:
        bounds["$lt"] = hi
    if bounds:
        query["timestamp"] = bounds
    return _Replay(store, query, batch_size)
