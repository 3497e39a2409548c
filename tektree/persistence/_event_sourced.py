"""``EventSourcedActor``: a virtual actor whose state is a fold of its journal.

```python
class Wallet(EventSourcedActor[dict[str, Any]]):
    snapshot_every = 100

    def initial_state(self) -> dict[str, Any]:
        return {"balance": 0}

    def apply(self, state: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        return {**state, "balance": state["balance"] + event["amount"]}   # pure: no I/O

    @handler
    async def deposit(self, msg: Deposit) -> int:
        await self.persist([{"type": "deposited", "amount": msg.amount}],
                           event_id=self.ctx.envelope.message_id)
        return self.state["balance"]
```

The style is a **pure fold**: ``apply(state, event)`` returns the next state and does nothing
else; it runs on recovery exactly as it ran live, so it must not read clocks, stores or
randomness (put those values in the event). Returning a new dict or mutating ``state`` in place
and returning it both work: ``apply`` runs only after the events are durable, so a failed
append never leaves a half-applied state. The state is a JSON object (``dict`` of JSON values):
it is what the snapshot stores.

Lifecycle: ``on_activate`` recovers (the latest snapshot, then the events after it, folded);
``persist`` appends, then applies, then snapshots every ``snapshot_every`` events (every
``snapshot_interval()``: an actor may stretch it as its state grows, or decide by
``snapshot_due()``);
``on_passivate`` snapshots if events came since the last snapshot. After a crash the activation
restarts from the journal, so nothing acknowledged is lost. Subclasses that override a hook call
``super()``'s.

Idempotence: ``persist``'s ``event_id`` is the id of what caused the events (the message id, or
the domain event id being handled). The journal holds each id once per actor, so a redelivered
message appends nothing, applies nothing, and ``persist`` returns False.

The store is the node's (the ``store`` service lends it through
``ctx.system.extensions["store"]``); without that service ``self.store`` raises
``StoreNotRunning``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import structlog

from tektree._actor import Actor
from tektree.persistence._errors import DuplicateEvent, StoreNotRunning
from tektree.persistence._events import DomainEvent
from tektree.persistence._journal import Journal, JournalEvent, StoredEvent
from tektree.persistence._protocol import DocumentStore
from tektree.persistence._service import STORE_EXTENSION

S = TypeVar("S", bound=dict[str, Any])

_log = structlog.get_logger("tektree.persistence")


def event_ids(event_id: str, count: int) -> list[str]:
    """The journal ids of the ``count`` events one cause produced: the cause's id for a single
    event, ``<id>#0``, ``<id>#1``... for several (stable, so a redelivery maps to the same)."""
    if count == 1:
        return [event_id]
    return [f"{event_id}#{i}" for i in range(count)]


class EventSourcedActor(Actor, Generic[S]):
    """Base class of event-sourced virtual actors (see the module docstring for an example)."""

    #: Save a snapshot once this many events were applied since the last one (>= 1).
    snapshot_every: ClassVar[int] = 100

    state: S
    #: The ``seq`` of the last event applied (0: none), and of the last snapshot saved.
    seq: int
    snapshot_seq: int
    #: How many journal events the last recovery folded (after its snapshot).
    recovered_events: int
    _journal: Journal

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        every = cls.snapshot_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise TypeError(
                f"{cls.__qualname__}.snapshot_every must be an int >= 1, got {every!r}"
            )

    # -- what subclasses write ----------------------------------------------------------------
    def initial_state(self) -> S:
        """The state before any event (a fresh dict each call)."""
        raise NotImplementedError(f"{type(self).__qualname__} must define initial_state()")

    def apply(self, state: S, event: Mapping[str, Any]) -> S:
        """The state after ``event``: a pure function of its arguments."""
        raise NotImplementedError(f"{type(self).__qualname__} must define apply(state, event)")

    def snapshot_interval(self) -> int:
        """Events between two snapshots now: ``snapshot_every``. An actor whose snapshot grows
        with its state (O(n) to write) overrides it to snapshot less often as it grows, so the
        snapshots' cost per event stays O(1)."""
        return self.snapshot_every

    def snapshot_due(self) -> bool:
        """Whether a snapshot is due after an append: once ``snapshot_interval()`` events came
        since the last one. An actor whose events hold varying amounts of work (a batch per
        event) overrides it to count that work instead."""
        return self.seq - self.snapshot_seq >= self.snapshot_interval()

    @property
    def fencing_token(self) -> int | None:
        """The token of this activation's cluster lease (``ctx.fencing_token``), recorded on
        every event it appends; an append with a token lower than one already recorded is
        refused (``StaleFencingToken``). None in embedded mode (no leases, no fencing)."""
        return self.ctx.fencing_token

    # -- the store -----------------------------------------------------------------------------
    @property
    def store(self) -> DocumentStore:
        store = self.ctx.system.extensions.get(STORE_EXTENSION)
        if store is None:
            raise StoreNotRunning(str(self.ctx.id))
        return store  # type: ignore[return-value]

    @property
    def journal_id(self) -> str:
        """The actor's key in the journal and snapshots: ``"kind/key"``."""
        return str(self.ctx.id)

    # -- lifecycle -----------------------------------------------------------------------------
    async def on_activate(self) -> None:
        await self.recover()

    async def on_passivate(self) -> None:
        if self.seq > self.snapshot_seq:
            await self.snapshot()

    async def recover(self) -> None:
        """Load the latest snapshot and fold the events after it (``on_activate`` does).

        In a cluster the activation's fencing token is recorded first, so that from this
        moment a stale activation elsewhere can no longer append to the journal."""
        self._journal = Journal(self.store)
        token = self.fencing_token
        if token is not None:
            await self._journal.raise_fence(self.journal_id, token)
        recovery = await self._journal.recover(self.journal_id)
        state: S = (
            self.initial_state() if recovery.state is None else recovery.state  # type: ignore[assignment]
        )
        for event in recovery.events:
            state = self.apply(state, event.data)
        self.state = state
        self.snapshot_seq = recovery.snapshot_seq
        self.seq = recovery.events[-1].seq if recovery.events else recovery.snapshot_seq
        self.recovered_events = len(recovery.events)

    # -- writing -------------------------------------------------------------------------------
    async def persist(
        self,
        events: Sequence[Mapping[str, Any]],
        *,
        event_id: str,
        outbox: Sequence[DomainEvent | Mapping[str, Any]] = (),
    ) -> bool:
        """Append ``events`` (JSON objects; ``"type"`` names each) as one atomic unit with the
        ``outbox`` domain events, then apply them to ``self.state``.

        Returns False, and changes nothing, when ``event_id`` was persisted before (a
        redelivered message). Snapshots every ``snapshot_every`` events. If the append raises,
        the state is unchanged.
        """
        if not events:
            raise ValueError(f"persist() of actor {self.journal_id} needs at least one event")
        ids = event_ids(event_id, len(events))
        return bool(await self._append(list(zip(ids, events, strict=True)), outbox))

    async def persist_each(
        self,
        events: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        outbox: Sequence[DomainEvent | Mapping[str, Any]] = (),
    ) -> set[str]:
        """Append ``(event_id, event)`` pairs, each event under its own id (the id of its
        cause), as one atomic unit with the ``outbox``, then apply the new ones in order.

        For a batch handler: many causes, one commit. Returns the ids appended; an id
        persisted before (a redelivery) is left out, appends and applies nothing. Ids must be
        distinct. If the append raises, the state is unchanged.
        """
        if not events:
            raise ValueError(f"persist_each() of actor {self.journal_id} needs at least one event")
        return {s.event_id for s in await self._append(events, outbox)}

    async def _append(
        self,
        events: Sequence[tuple[str, Mapping[str, Any]]],
        outbox: Sequence[DomainEvent | Mapping[str, Any]],
    ) -> list[StoredEvent]:
        batch = [
            JournalEvent(event_id=i, event_type=str(e.get("type") or "event"), data=dict(e))
            for i, e in events
        ]
        journal = self._journal
        try:
            stored = await journal.append(
                self.journal_id, batch, fencing_token=self.fencing_token, outbox=outbox
            )
        except DuplicateEvent:
            # Redelivered. With atomic units nothing of it is new; without (standalone MongoDB)
            # an earlier attempt may have stopped half-way: append what it did not.
            stored = await journal.append(
                self.journal_id,
                batch,
                fencing_token=self.fencing_token,
                skip_duplicates=True,
                outbox=outbox,
            )
        if not stored:
            return stored
        self._apply_stored(stored)
        if self.snapshot_due():
            try:
                await self.snapshot()
            except Exception as exc:  # the events are durable; the next threshold retries
                _log.warning("snapshot failed", actor=self.journal_id, seq=self.seq,
                             exc_info=exc)
        return stored

    def _apply_stored(self, stored: list[StoredEvent]) -> None:
        state = self.state
        for event in stored:
            if event.seq != self.seq + 1:
                # Events this activation never saw (another writer): the state is stale.
                raise RuntimeError(
                    f"journal of actor {self.journal_id} jumped from seq {self.seq} to "
                    f"{event.seq}: another activation wrote it; this one must restart"
                )
            state = self.apply(state, event.data)
            self.seq = event.seq
        self.state = state

    async def snapshot(self) -> None:
        """Save ``self.state`` as of ``self.seq`` now (``persist`` and ``on_passivate`` do)."""
        seq = self.seq
        await self._journal.save_snapshot(self.journal_id, seq, self.state)
        self.snapshot_seq = max(self.snapshot_seq, seq)
