"""An actor that registers reminders and records every delivery in the store, for the reminder
tests (embedded and multi-process: worker processes import this module by its path)."""

from __future__ import annotations

import time
from typing import Any

from tektree import Actor, handler, message
from tektree.persistence import DocumentStore, DuplicateKeyError
from tektree.reminders import occurrence

KIND = "pinged"
#: One document per delivery (a redelivery adds one), and one per occurrence (its effect).
DELIVERIES = "test_deliveries"
EFFECTS = "test_effects"


@message("test_reminders.ping")
class Ping:
    label: str = ""
    fail_times: int = 0


@message("test_reminders.arm")
class Arm:
    """Register reminder ``name`` delivering ``Ping(label)`` in ``due_in_seconds``."""

    name: str
    due_in_seconds: float
    period_seconds: float | None = None
    label: str = ""
    fail_times: int = 0


@message("test_reminders.disarm")
class Disarm:
    name: str


class Pinged(Actor):
    """Kind ``pinged``: ``Arm`` registers a reminder; each ``Ping`` is recorded."""

    @property
    def store(self) -> DocumentStore:
        store: Any = self.ctx.system.extensions["store"]
        return store  # type: ignore[no-any-return]

    @handler
    async def arm(self, msg: Arm) -> str:
        reminder = await self.ctx.reminders.register(
            msg.name, Ping(label=msg.label, fail_times=msg.fail_times),
            due_in_seconds=msg.due_in_seconds, period_seconds=msg.period_seconds)
        return reminder.occurrence_id

    @handler
    async def disarm(self, msg: Disarm) -> bool:
        return await self.ctx.reminders.cancel(msg.name)

    @handler
    async def ping(self, msg: Ping) -> str:
        envelope = self.ctx.envelope
        assert envelope is not None
        occ = occurrence(envelope)
        assert occ is not None, f"not a reminder delivery: {envelope.message_id}"
        await self.store.insert(DELIVERIES, {
            "occurrence": occ.id, "actor": str(self.ctx.id), "name": occ.name,
            "label": msg.label, "node": self.ctx.system.node_name, "at": time.time(),
        })
        tries = await self.store.count(DELIVERIES, {"occurrence": occ.id})
        if tries <= msg.fail_times:
            raise RuntimeError(f"failing delivery {tries} of {occ.id} on purpose")
        try:
            await self.store.insert(EFFECTS, {"_id": occ.id, "node": self.ctx.system.node_name})
        except DuplicateKeyError:
            return "duplicate"
        return "applied"
