"""``Reminders``: register, replace, cancel and inspect durable reminders in the store.

This is the write side every node can use (registration needs only the store); the reminders
service (:mod:`tektree.reminders._service`) is what claims and fires them. An actor reaches it
through ``self.ctx.reminders`` (:class:`ActorReminders`), bound to its own id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import trio

from tektree._errors import TekTreeError
from tektree._ids import ActorId
from tektree._messages import tag_of
from tektree._wallclock import SystemWallClock, WallClock
from tektree.persistence import DocumentStore, DuplicateKeyError, IndexSpec, format_timestamp
from tektree.reminders._model import (
    FAILED_REMINDERS,
    REMINDERS,
    Reminder,
    ReminderError,
    bucket_of,
    check_name,
    due_ms_of,
    encode_payload,
    period_ms_of,
    reminder_id,
)

if TYPE_CHECKING:
    from tektree._system import ActorSystem

__all__ = [
    "INDEXES",
    "REMINDERS_EXTENSION",
    "ActorReminders",
    "ReminderSpec",
    "Reminders",
    "RemindersNotRunning",
]

#: The key of the node's :class:`Reminders` in ``ActorSystem.extensions``.
REMINDERS_EXTENSION: Final = "reminders"

INDEXES: Final = (
    (REMINDERS, IndexSpec(fields=(("due_ms", 1),), name="reminders_due")),
    (REMINDERS, IndexSpec(fields=(("actor", 1),), name="reminders_actor")),
    (FAILED_REMINDERS, IndexSpec(fields=(("failed_at", 1),), name="reminders_failed_at")),
)


class RemindersNotRunning(TekTreeError):
    """``ctx.reminders`` was used on a node without the reminders service."""

    def __init__(self, actor: ActorId | None) -> None:
        who = f"actor {actor}" if actor is not None else "this node"
        super().__init__(
            f"{who} uses durable reminders, but the node runs no reminders service; add "
            "[[supervisor.children]] type = \"service\", name = \"reminders\", service = "
            "\"reminders\" after the store service in supervisor.toml"
        )
        self.actor = actor


@attrs.frozen(kw_only=True)
class ReminderSpec:
    """One reminder to register: ``message`` for ``actor`` at ``due``, every ``period_seconds``."""

    actor: ActorId
    name: str
    message: Any
    due: float | dt.datetime
    period_seconds: float | None = None


def _now_text(clock: WallClock) -> str:
    return format_timestamp(dt.datetime.fromtimestamp(clock.time(), dt.UTC))


class Reminders:
    """The reminders of one store. ``system`` (when given) checks that the target kind handles
    the message, as ``tell`` would; ``on_registered`` lets the local service react at once."""

    def __init__(
        self,
        store: DocumentStore,
        *,
        clock: WallClock | None = None,
        system: ActorSystem | None = None,
        on_registered: Callable[[Reminder], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock or SystemWallClock()
        self.system = system
        self.on_registered = on_registered

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    # -- writing -------------------------------------------------------------------------------
    def _document(self, spec: ReminderSpec) -> dict[str, Any]:
        actor = spec.actor
        if not isinstance(actor, ActorId):
            raise ReminderError("actor", actor, "must be an ActorId(kind, key)")
        name = check_name(spec.name)
        try:
            tag = tag_of(spec.message)
        except TypeError as exc:
            raise ReminderError("message", spec.message, str(exc)) from None
        if self.system is not None:
            pool = self.system.pools.get(actor.kind)
            if pool is not None:  # a kind served elsewhere only is not checked here
                pool.check_handles(actor, spec.message)
        rid = reminder_id(actor, name)
        return {
            "actor": str(actor), "name": name, "message_tag": tag,
            "payload": encode_payload(spec.message), "due_ms": due_ms_of(spec.due),
            "period_ms": period_ms_of(spec.period_seconds), "bucket": bucket_of(rid),
            "owner": None, "claim": None, "lease_until_ms": 0, "attempts": 0,
            "last_error": None, "updated_at": _now_text(self.clock), "_rid": rid,
        }  # fmt: skip

    async def register(
        self,
        actor: ActorId,
        name: str,
        message: Any,
        *,
        due: float | dt.datetime,
        period_seconds: float | None = None,
    ) -> Reminder:
        """Create or replace ``actor``'s reminder ``name`` (any claim on the old one lapses).

        ``due`` is Unix seconds or an aware datetime; ``period_seconds`` (>= 1) makes it
        periodic: it keeps firing every period, across restarts, until cancelled.
        """
        (reminder,) = await self.register_many(
            [ReminderSpec(actor=actor, name=name, message=message, due=due,
                          period_seconds=period_seconds)]
        )
        return reminder

    async def register_many(self, specs: Iterable[ReminderSpec]) -> list[Reminder]:
        """Register several reminders in one atomic unit of the store."""
        docs = [self._document(spec) for spec in specs]
        if not docs:
            return []
        async with self.store.unit() as unit:
            for doc in docs:
                rid = doc.pop("_rid")
                unit.update(REMINDERS, rid, {"$set": doc, "$inc": {"version": 1}}, upsert=True)
        out = [
            Reminder.from_document({**doc, "_id": reminder_id(ActorId.parse(doc["actor"]),
                                                              doc["name"])})
            for doc in docs
        ]
        if self.on_registered is not None:
            for reminder in out:
                self.on_registered(reminder)
        return out

    async def insert_many(self, specs: Iterable[ReminderSpec]) -> int:
        """Bulk-load reminders that do not exist yet (a migration, a backfill): one insert of
        them all, refused whole (``DuplicateKeyError``) if any name exists; use
        :meth:`register_many` to create or replace."""
        docs = []
        for spec in specs:
            doc = self._document(spec)
            doc["_id"] = doc.pop("_rid")
            doc["version"] = 1
            docs.append(doc)
        if not docs:
            await trio.lowlevel.checkpoint()
            return 0
        await self.store.insert_many(REMINDERS, docs)
        if self.on_registered is not None:
            for doc in docs:
                self.on_registered(Reminder.from_document(doc))
        return len(docs)

    async def ensure(
        self,
        actor: ActorId,
        name: str,
        message: Any,
        *,
        due: float | dt.datetime,
        period_seconds: float | None = None,
    ) -> tuple[Reminder, bool]:
        """Register unless the same reminder (same message, same period on the same grid)
        already exists; then it is left as it is, its next due time included, so a restart
        never resets a schedule.
        Returns the reminder and whether it was (re)registered."""
        current = await self.get(actor, name)
        period_ms, due_ms = period_ms_of(period_seconds), due_ms_of(due)
        if (
            current is not None
            and current.payload == encode_payload(message)
            and current.period_ms == period_ms
            and (  # a one-shot at the same time, or a periodic one on the same grid
                current.due_ms == due_ms if period_ms is None
                else (current.due_ms - due_ms) % period_ms == 0
            )
        ):
            return current, False
        return await self.register(
            actor, name, message, due=due, period_seconds=period_seconds
        ), True

    async def cancel(self, actor: ActorId, name: str) -> bool:
        """Remove the reminder; an occurrence already being delivered still completes."""
        return bool(await self.store.delete(REMINDERS, reminder_id(actor, check_name(name))))

    # -- reading -------------------------------------------------------------------------------
    async def get(self, actor: ActorId, name: str) -> Reminder | None:
        doc = await self.store.get(REMINDERS, reminder_id(actor, check_name(name)))
        return None if doc is None else Reminder.from_document(doc)

    async def of_actor(self, actor: ActorId) -> list[Reminder]:
        """Every reminder of ``actor``, by name."""
        out: list[Reminder] = []
        cursor: str | None = None
        while True:
            page = await self.store.find(
                REMINDERS, {"actor": str(actor)}, sort=[("name", 1)], limit=500, after=cursor
            )
            out.extend(Reminder.from_document(doc) for doc in page.items)
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    async def of_kind(self, kind: str) -> list[Reminder]:
        """Every reminder of the actors of ``kind`` (ids ``kind/...``), by actor then name."""
        out: list[Reminder] = []
        cursor: str | None = None
        # "0" is the character after "/": the range holds exactly the ids "kind/...".
        query = {"actor": {"$gte": f"{kind}/", "$lt": f"{kind}0"}}
        while True:
            page = await self.store.find(REMINDERS, query, sort=[("actor", 1), ("name", 1)],
                                         limit=500, after=cursor)
            out.extend(Reminder.from_document(doc) for doc in page.items)
            if page.next_cursor is None:
                return out
            cursor = page.next_cursor

    async def count(self) -> int:
        return await self.store.count(REMINDERS)

    async def failed(self, *, limit: int = 100, after: str | None = None) -> tuple[
        list[dict[str, Any]], str | None
    ]:
        """One-shot occurrences that exhausted their attempts, oldest first, and the cursor of
        the next page."""
        page = await self.store.find(
            FAILED_REMINDERS, sort=[("failed_at", 1)], limit=limit, after=after
        )
        return [{k: v for k, v in doc.items() if k != "payload"} for doc in page.items], (
            page.next_cursor
        )

    async def retry_failed(self, occurrence: str) -> bool:
        """Put a failed one-shot occurrence back, due now, and drop its failure record (unless
        the reminder was registered again meanwhile: then only the record goes). Returns
        whether the record was found."""
        doc = await self.store.get(FAILED_REMINDERS, occurrence)
        if doc is None:
            return False
        revived = {k: v for k, v in doc.items() if k not in _FAILURE_FIELDS}
        revived.update(_id=doc["reminder_id"], due_ms=round(self.clock.time() * 1000),
                       owner=None, claim=None, lease_until_ms=0, attempts=0, last_error=None,
                       version=1)
        try:
            async with self.store.unit() as unit:
                unit.delete(FAILED_REMINDERS, occurrence)
                unit.insert(REMINDERS, revived)
        except DuplicateKeyError:
            await self.store.delete(FAILED_REMINDERS, occurrence)
        else:
            if self.on_registered is not None:
                self.on_registered(Reminder.from_document(revived))
        return True


#: Fields of a failure record that are not fields of the reminder.
_FAILURE_FIELDS: Final = frozenset({"_id", "reminder_id", "failed_at", "last_error", "attempts"})


class ActorReminders:
    """``self.ctx.reminders``: the durable reminders of one actor.

    ```python
    await self.ctx.reminders.register("digest", SendDigest(), due_in_seconds=3600,
                                      period_seconds=86400)
    ```

    Each occurrence is delivered as an ``ask`` whose envelope ``message_id`` is the
    occurrence id (``self.ctx.envelope.message_id``; :func:`tektree.reminders.occurrence`
    parses it): delivery is at-least-once (again after a node dies mid-delivery), so key the
    handler's effects on that id, as ``EventSourcedActor.persist(event_id=...)`` does.
    Unlike timers, reminders live in the store: they survive passivation, restarts and the
    death of the node that registered them, and they activate the actor when due.
    """

    __slots__ = ("_actor", "_system")

    def __init__(self, system: ActorSystem, actor: ActorId) -> None:
        self._system = system
        self._actor = actor

    def _table(self) -> Reminders:
        table = self._system.extensions.get(REMINDERS_EXTENSION)
        if not isinstance(table, Reminders):
            raise RemindersNotRunning(self._actor)
        return table

    async def register(
        self,
        name: str,
        message: Any,
        *,
        due_in_seconds: float | None = None,
        due_at: float | dt.datetime | None = None,
        period_seconds: float | None = None,
    ) -> Reminder:
        """Deliver ``message`` to this actor at ``due_at`` (Unix seconds or aware datetime) or
        after ``due_in_seconds``; with ``period_seconds``, every period after that (the first
        occurrence one period from now when neither is given). Replaces ``name``."""
        table = self._table()
        if due_in_seconds is not None and due_at is not None:
            raise ReminderError("due_at", due_at, "give due_at or due_in_seconds, not both")
        if due_at is None:
            delay = due_in_seconds if due_in_seconds is not None else period_seconds
            if delay is None:
                raise ReminderError("due_in_seconds", None,
                                    "a one-shot reminder needs due_at or due_in_seconds")
            if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                raise ReminderError("due_in_seconds", delay, "must be a number >= 0")
            due_at = table.clock.time() + delay
        return await table.register(
            self._actor, name, message, due=due_at, period_seconds=period_seconds
        )

    async def cancel(self, name: str) -> bool:
        return await self._table().cancel(self._actor, name)

    async def get(self, name: str) -> Reminder | None:
        return await self._table().get(self._actor, name)

    async def all(self) -> Sequence[Reminder]:
        return await self._table().of_actor(self._actor)
