"""The journal and snapshots of event-sourced actors, on any ``DocumentStore``.

An actor's journal is its events numbered ``seq`` = 1, 2, 3, ... with no gaps. One activation
writes an actor's journal at a time (the cluster lease guarantees it; ``fencing_token`` records
which lease wrote each event); the unique index on ``(actor_id, seq)`` is the safety net that
turns a stale writer's append into ``JournalConflict`` instead of a fork.

Fencing: an append carrying a ``fencing_token`` first raises the actor's fence (one document per
actor in ``journal_fences``: the highest token seen) in the same unit as the events, with a
conditional upsert that only matches while the fence is <= the token. A token lower than the
fence makes that upsert collide with the fence document, so the whole unit fails and the append
raises ``StaleFencingToken``: a writer whose lease was taken over cannot append even once, even
if it appends right after a newer writer recovered. The fence operation comes first in the unit,
so on a store without atomic units (standalone MongoDB) a refused append writes nothing either.
Appends without a token (embedded mode, no leases) are not fenced.

Appends of different actors from concurrent tasks are group-committed by the store. The next
``seq`` of each actor is cached after the first append or recovery; any failed append drops the
cache so the next one re-reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import attrs
import trio

from tektree.persistence._errors import (
    DuplicateEvent,
    DuplicateKeyError,
    JournalConflict,
    StaleFencingToken,
)
from tektree.persistence._events import DomainEvent, utc_now
from tektree.persistence._protocol import DocumentStore, IndexSpec
from tektree.persistence._unit import Unit

JOURNAL: Final = "journal"
SNAPSHOTS: Final = "snapshots"
FENCES: Final = "journal_fences"
JOURNAL_INDEXES: Final = (
    (JOURNAL, IndexSpec(fields=(("actor_id", 1), ("seq", 1)), unique=True, name="actor_seq")),
    (
        JOURNAL,
        IndexSpec(fields=(("actor_id", 1), ("event_id", 1)), unique=True, name="actor_event"),
    ),
)
_PAGE: Final = 1000


@attrs.frozen(kw_only=True)
class JournalEvent:
    """An event to append: ``event_id`` is unique within the actor's journal (the dedupe key)."""

    event_id: str
    event_type: str
    data: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen(kw_only=True)
class StoredEvent:
    """An event as the journal holds it."""

    actor_id: str
    seq: int
    event_id: str
    event_type: str
    data: dict[str, Any]
    timestamp: str
    fencing_token: int | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> StoredEvent:
        return cls(
            actor_id=doc["actor_id"],
            seq=doc["seq"],
            event_id=doc["event_id"],
            event_type=doc["event_type"],
            data=doc["data"],
            timestamp=doc["timestamp"],
            fencing_token=doc.get("fencing_token"),
        )


@attrs.frozen(kw_only=True)
class Snapshot:
    seq: int
    state: dict[str, Any]


class Recovery(NamedTuple):
    """What an activation needs: ``state`` (``None`` without snapshot), the snapshot's ``seq``
    (0 without), and the events after it, to fold onto the state."""

    state: dict[str, Any] | None
    snapshot_seq: int
    events: list[StoredEvent]


class _AppendLock:
    """One actor's turn to append, held by one append at a time, and how many appends hold,
    wait for or are leaving it. The appends that find it held wait in ``lot``, made by the
    first of them: the usual append is uncontended and makes nothing more (a ``trio.Lock``
    cost ~2 us per append to make, acquire and release)."""

    __slots__ = ("held", "lot", "users")

    def __init__(self) -> None:
        self.held = False
        self.lot: trio.lowlevel.ParkingLot | None = None
        self.users = 0

    async def take(self) -> None:
        """Hold the turn: at once if free, else when the holder hands it over (FIFO). A
        waiter cancelled before its turn came leaves without it."""
        if not self.held:
            self.held = True
            return
        if self.lot is None:
            self.lot = trio.lowlevel.ParkingLot()
        await self.lot.park()  # woken holding it: ``release`` hands it over, ``held`` stays

    def release(self) -> None:
        if self.lot is None or not self.lot.unpark():
            self.held = False  # nobody waits (any more): the turn is free


class Journal:
    """Append, read, snapshot and recover actors' journals."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store
        self._heads: dict[str, int] = {}
        self._locks: dict[str, _AppendLock] = {}

    async def append(
        self,
        actor_id: str,
        events: Sequence[JournalEvent],
        *,
        fencing_token: int | None = None,
        skip_duplicates: bool = False,
        outbox: Sequence[DomainEvent | Mapping[str, Any]] = (),
        also: Callable[[Unit], object] | None = None,
    ) -> list[StoredEvent]:
        """Append ``events`` atomically with the next contiguous ``seq`` numbers.

        Returns the events stored. An ``event_id`` already in the journal raises
        ``DuplicateEvent``, or with ``skip_duplicates=True`` (idempotent redelivery) is left out
        of the append and of the result. A ``fencing_token`` lower than the highest one already
        recorded for the actor raises ``StaleFencingToken`` and writes nothing.

        ``outbox`` (domain events for the ``events`` collection) and ``also`` (a function
        recording more writes on the unit) commit in the same unit as the events, and only
        when at least one event is appended: a redelivery that appends nothing writes nothing.
        """
        if len(events) > 1:
            ids = [e.event_id for e in events]
            if len(set(ids)) != len(ids):
                dup = next(i for i in ids if ids.count(i) > 1)
                raise DuplicateEvent(actor_id, dup)
        entry = self._locks.get(actor_id)
        if entry is None:
            entry = self._locks[actor_id] = _AppendLock()
        entry.users += 1
        try:
            # Uncontended (the usual case: one activation appends one unit at a time), the
            # turn is taken without a scheduler round trip; the append itself checkpoints.
            await entry.take()
            try:
                return await self._append_locked(
                    actor_id, events, fencing_token, skip_duplicates, outbox, also
                )
            finally:
                entry.release()
        finally:
            entry.users -= 1
            if not entry.users:  # no append in flight or waiting: forget the lock
                self._locks.pop(actor_id, None)

    async def _append_locked(
        self,
        actor_id: str,
        events: Sequence[JournalEvent],
        fencing_token: int | None,
        skip_duplicates: bool,
        outbox: Sequence[DomainEvent | Mapping[str, Any]],
        also: Callable[[Unit], object] | None,
    ) -> list[StoredEvent]:
        if skip_duplicates and events:
            page = await self._store.find(
                JOURNAL,
                {"actor_id": actor_id, "event_id": {"$in": [e.event_id for e in events]}},
            )
            seen = {doc["event_id"] for doc in page.items}
            events = [e for e in events if e.event_id not in seen]
        if not events:
            await trio.lowlevel.checkpoint()
            return []
        head = self._heads.get(actor_id)
        if head is None:
            head = await self.last_seq(actor_id)
        now = utc_now()
        stored: list[StoredEvent] = []
        docs: list[dict[str, Any]] = []
        for seq, e in enumerate(events, start=head + 1):
            stored.append(
                StoredEvent(
                    actor_id=actor_id,
                    seq=seq,
                    event_id=e.event_id,
                    event_type=e.event_type,
                    data=e.data,
                    timestamp=now,
                    fencing_token=fencing_token,
                )
            )
            docs.append(
                {
                    "_id": f"{actor_id}#{seq}",
                    "actor_id": actor_id,
                    "seq": seq,
                    "event_id": e.event_id,
                    "event_type": e.event_type,
                    "data": e.data,
                    "timestamp": now,
                    "fencing_token": fencing_token,
                }
            )
        try:
            async with self._store.unit() as unit:
                if fencing_token is not None:  # first: on a non-atomic store it stops the rest
                    unit.update(
                        FENCES,
                        {"_id": actor_id, "token": {"$lte": fencing_token}},
                        {"$set": {"token": fencing_token}},
                        upsert=True,
                    )
                unit.insert_many(JOURNAL, docs)
                for event in outbox:
                    unit.add_event(event)
                if also is not None:
                    also(unit)
        except DuplicateKeyError as exc:
            self._heads.pop(actor_id, None)
            if exc.collection == FENCES and fencing_token is not None:
                raise StaleFencingToken(
                    actor_id, fencing_token, await self.fence(actor_id)
                ) from None
            if exc.collection == JOURNAL and exc.index == "actor_event":
                if skip_duplicates:  # a concurrent writer stored it first: look again
                    return await self._append_locked(
                        actor_id, events, fencing_token, True, outbox, also
                    )
                raise DuplicateEvent(actor_id, str(exc.key.get("event_id"))) from None
            if exc.collection != JOURNAL:
                raise  # from the outbox or ``also``: not the journal's to explain
            raise JournalConflict(actor_id, int(exc.key.get("seq") or head + 1)) from None
        except BaseException:
            self._heads.pop(actor_id, None)
            raise
        self._heads[actor_id] = stored[-1].seq
        return stored

    async def raise_fence(self, actor_id: str, fencing_token: int) -> None:
        """Record ``fencing_token`` as the actor's highest now, before any write: from then on
        a write carrying a lower token (a stale activation elsewhere) is refused. A new
        activation calls it before recovering. Raises :class:`StaleFencingToken` if a higher
        token is already recorded."""
        try:
            async with self._store.unit() as unit:
                unit.update(
                    FENCES,
                    {"_id": actor_id, "token": {"$lte": fencing_token}},
                    {"$set": {"token": fencing_token}},
                    upsert=True,
                )
        except DuplicateKeyError as exc:
            if exc.collection != FENCES:
                raise
            raise StaleFencingToken(
                actor_id, fencing_token, await self.fence(actor_id)
            ) from None

    async def fence(self, actor_id: str) -> int | None:
        """The highest fencing token recorded for the actor (None before any fenced append)."""
        doc = await self._store.get(FENCES, actor_id)
        return None if doc is None else int(doc["token"])

    async def last_seq(self, actor_id: str) -> int:
        """The highest ``seq`` in the actor's journal (0 when empty)."""
        page = await self._store.find(JOURNAL, {"actor_id": actor_id}, sort=[("seq", -1)], limit=1)
        return int(page.items[0]["seq"]) if page.items else 0

    async def read(self, actor_id: str, from_seq: int = 0) -> list[StoredEvent]:
        """The actor's events with ``seq >= from_seq``, in order."""
        out: list[StoredEvent] = []
        cursor: str | None = None
        while True:
            page = await self._store.find(
                JOURNAL,
                {"actor_id": actor_id, "seq": {"$gte": from_seq}},
                sort=[("seq", 1)],
                limit=_PAGE,
                after=cursor,
            )
            out.extend(StoredEvent.from_document(d) for d in page.items)
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    async def save_snapshot(self, actor_id: str, seq: int, state: dict[str, Any]) -> bool:
        """Store ``state`` as of ``seq``; an older snapshot never replaces a newer one
        (returns False then)."""
        try:
            await self._store.update(
                SNAPSHOTS,
                {"_id": actor_id, "seq": {"$lte": seq}},
                {"$set": {"seq": seq, "state": state, "saved_at": utc_now()}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # a newer snapshot exists: the upsert's insert collided with it
        return True

    async def load_snapshot(self, actor_id: str) -> Snapshot | None:
        doc = await self._store.get(SNAPSHOTS, actor_id)
        return None if doc is None else Snapshot(seq=int(doc["seq"]), state=doc["state"])

    async def recover(self, actor_id: str) -> Recovery:
        """The latest snapshot and the events after it; also primes the next ``seq``."""
        snapshot = await self.load_snapshot(actor_id)
        base = 0 if snapshot is None else snapshot.seq
        events = await self.read(actor_id, from_seq=base + 1)
        if actor_id not in self._locks:  # no append in flight: the head is known
            self._heads[actor_id] = events[-1].seq if events else base
        return Recovery(snapshot.state if snapshot else None, base, events)
