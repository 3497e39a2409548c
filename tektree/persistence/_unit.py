"""Write operations as data, the ``Unit`` that records them, and the commit notifier.

A store runs a list of operations together: one call (``insert``) is a list of one, a ``unit()``
is the list its body recorded. Operations are validated when recorded, so a bad filter raises at
the line that wrote it, not at commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from tektree.persistence._events import DomainEvent, event_document
from tektree.persistence._protocol import Document, Filter, Update
from tektree.persistence._query import (
    Condition,
    check_collection,
    check_update,
    normalize_filter,
    prepare_document,
)

EVENTS_COLLECTION = "events"


def new_id() -> str:
    return uuid.uuid4().hex


@attrs.frozen(kw_only=True)
class InsertOp:
    collection: str
    docs: tuple[Document, ...]


@attrs.frozen(kw_only=True)
class UpdateOp:
    collection: str
    conditions: tuple[Condition, ...]
    raw_filter: Mapping[str, Any]
    update: Update
    upsert: bool
    upsert_id: str


@attrs.frozen(kw_only=True)
class DeleteOp:
    collection: str
    conditions: tuple[Condition, ...]
    raw_filter: Mapping[str, Any]


Op = InsertOp | UpdateOp | DeleteOp
OpResult = list[str] | int


def insert_op(collection: str, docs: Sequence[Mapping[str, Any]]) -> InsertOp:
    check_collection(collection)
    if isinstance(docs, Mapping) or not isinstance(docs, Sequence):
        raise TypeError(f"insert_many takes a list of documents, got {type(docs).__name__}")
    return InsertOp(
        collection=collection,
        docs=tuple([prepare_document(collection, d, new_id) for d in docs]),
    )


def _raw(filter_or_id: Filter | str) -> Mapping[str, Any]:
    return {"_id": filter_or_id} if isinstance(filter_or_id, str) else filter_or_id


def update_op(
    collection: str, filter_or_id: Filter | str, update: Update, *, upsert: bool
) -> UpdateOp:
    check_collection(collection)
    conditions = normalize_filter(filter_or_id)
    check_update(update)
    return UpdateOp(
        collection=collection,
        conditions=tuple(conditions),
        raw_filter=_raw(filter_or_id),
        update=update,
        upsert=upsert,
        upsert_id=new_id(),
    )


def delete_op(collection: str, filter_or_id: Filter | str) -> DeleteOp:
    check_collection(collection)
    return DeleteOp(
        collection=collection,
        conditions=tuple(normalize_filter(filter_or_id)),
        raw_filter=_raw(filter_or_id),
    )


class Unit:
    """Records writes to run all-or-nothing when the ``async with store.unit()`` block exits.

    The recording methods are synchronous: nothing touches the store until the block ends
    without an exception. After it, ``results`` holds each operation's result in order (the
    inserted ids, or the matched/deleted count).
    """

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.results: list[OpResult] = []
        self.has_events = False

    def insert(self, collection: str, doc: Mapping[str, Any]) -> str:
        op = insert_op(collection, [doc])
        self.ops.append(op)
        return str(op.docs[0]["_id"])

    def insert_many(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> list[str]:
        op = insert_op(collection, docs)
        self.ops.append(op)
        return [str(d["_id"]) for d in op.docs]

    def update(
        self,
        collection: str,
        filter_or_id: Filter | str,
        update: Update,
        *,
        upsert: bool = False,
    ) -> None:
        self.ops.append(update_op(collection, filter_or_id, update, upsert=upsert))

    def delete(self, collection: str, filter_or_id: Filter | str) -> None:
        self.ops.append(delete_op(collection, filter_or_id))

    def add_event(self, event: DomainEvent | Mapping[str, Any]) -> str:
        """Write a domain event to the outbox (``events``, ``published: false``) with this unit."""
        doc = event_document(event)
        self.ops.append(InsertOp(collection=EVENTS_COLLECTION, docs=(doc,)))
        self.has_events = True
        return str(doc["_id"])


class CommitNotifier:
    """Wakes outbox relays when a unit carrying events commits.

    A generation counter closes the race between "found nothing" and "start waiting": read
    ``generation`` before looking, then ``wait_past(generation)`` returns at once if a commit
    happened in between.
    """

    def __init__(self) -> None:
        self.generation = 0
        #: The event a relay waits on: made by the first waiter, set and dropped by the next
        #: commit (most commits find no relay waiting, and make nothing).
        self._event: trio.Event | None = None

    def notify(self) -> None:
        self.generation += 1
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait_past(self, generation: int) -> None:
        if self.generation != generation:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()
