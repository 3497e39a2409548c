"""The persistence layer's exceptions. Each names the value, the rule it broke and the fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tektree._errors import TekTreeError


class StoreError(TekTreeError):
    """Base class of every error a document store raises on purpose."""


class UnsupportedOperator(StoreError):
    """A filter or update uses an operator the store cannot run (never a silent full scan)."""

    def __init__(self, operator: str, *, where: str, supported: Iterable[str]) -> None:
        self.operator = operator
        self.where = where
        self.supported = tuple(sorted(supported))
        super().__init__(
            f"{where} operator {operator!r} is not supported; "
            f"supported {where} operators: {', '.join(self.supported)}"
        )


class InvalidQuery(StoreError):
    """A filter, update, sort, field or collection name is malformed; ``value`` is the culprit."""

    def __init__(self, detail: str, *, value: Any = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.value = value


class InvalidDocument(StoreError):
    """A document cannot be stored: no str ``_id``, or a value that is not JSON."""

    def __init__(self, collection: str, detail: str) -> None:
        super().__init__(f"document for collection {collection!r} rejected: {detail}")
        self.collection = collection
        self.detail = detail


class InvalidCursor(StoreError):
    """A pagination cursor was not produced by this store for the same sort."""

    def __init__(self, cursor: str, detail: str) -> None:
        super().__init__(
            f"cursor {cursor[:40]!r} is invalid: {detail}; pass the next_cursor of the "
            "previous page of the same query"
        )
        self.cursor = cursor
        self.detail = detail


class DuplicateKeyError(StoreError):
    """A write would give two documents the same key in a unique index."""

    def __init__(self, collection: str, index: str, key: Mapping[str, Any]) -> None:
        self.collection = collection
        self.index = index
        self.key = dict(key)
        shown = ", ".join(f"{f}={v!r}" for f, v in self.key.items()) or "unknown key"
        super().__init__(
            f"duplicate key in collection {collection!r}: unique index {index!r} "
            f"already holds {shown}"
        )


class StoreUnavailable(StoreError):
    """The store could not be reached or opened; ``target`` is the URL (credentials masked)
    or the file path."""

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(f"store at {target} is unavailable: {detail}")
        self.target = target
        self.detail = detail


class StoreClosed(StoreError):
    """An operation was started on a store whose context has exited."""

    def __init__(self, target: str) -> None:
        super().__init__(f"store at {target} is closed; use it inside its `async with` block")
        self.target = target


class DuplicateEvent(StoreError):
    """A journal append carried an ``event_id`` the actor's journal already holds."""

    def __init__(self, actor_id: str, event_id: str) -> None:
        super().__init__(
            f"journal of actor {actor_id!r} already holds event {event_id!r}; event ids are "
            "unique per actor (pass skip_duplicates=True for idempotent redelivery)"
        )
        self.actor_id = actor_id
        self.event_id = event_id


class JournalConflict(StoreError):
    """Another writer appended to the same actor's journal first (a stale activation)."""

    def __init__(self, actor_id: str, seq: int) -> None:
        super().__init__(
            f"journal of actor {actor_id!r} already has seq {seq}: another writer appended "
            "concurrently; only one activation may write an actor's journal (check its lease)"
        )
        self.actor_id = actor_id
        self.seq = seq


class StaleFencingToken(StoreError):
    """A journal append carried a fencing token lower than one already recorded for the actor:
    its writer's lease was taken over by a newer one."""

    def __init__(self, actor_id: str, token: int, current: int | None) -> None:
        super().__init__(
            f"journal of actor {actor_id!r} refused an append with fencing token {token}: "
            f"token {current} is already recorded; this activation lost its lease, stop it "
            "and let the lease holder serve the actor"
        )
        self.actor_id = actor_id
        self.token = token
        self.current = current


class StoreNotRunning(StoreError):
    """An actor asked for the node's store, but the node runs no ``store`` service."""

    def __init__(self, actor_id: str) -> None:
        super().__init__(
            f"actor {actor_id} needs the node's store, but no store service is running; add "
            '[[supervisor.children]] type = "service", name = "store", service = "store" to '
            "supervisor.toml, before the actor pools"
        )
        self.actor_id = actor_id
