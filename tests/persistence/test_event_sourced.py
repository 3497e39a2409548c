"""``EventSourcedActor`` on a real node with the real store service (SQLite file, mongomock)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import attrs
import mongomock
import pytest
import trio

from tektree import ActorFailed, Node, handler, message
from tektree.config import StoreConfig
from tektree.persistence import (
    EVENTS,
    JOURNAL,
    SNAPSHOTS,
    DomainEvent,
    EventSourcedActor,
    store_service,
)
from tektree.testing import open_test_node, test_config

STORE = {"type": "service", "name": "store", "service": "store"}


@message("test.persistence.es.add")
class Add:
    op_id: str
    amount: int = 1
    announce: bool = False


@message("test.persistence.es.get")
class Get:
    pass


@message("test.persistence.es.boom")
class Boom:
    pass


@message("test.persistence.es.stats")
class Stats:
    pass


class Counter(EventSourcedActor[dict[str, Any]]):
    snapshot_every = 5

    def initial_state(self) -> dict[str, Any]:
        return {"count": 0, "ops": 0}

    def apply(self, state: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        return {"count": state["count"] + event["amount"], "ops": state["ops"] + 1}

    @handler
    async def add(self, msg: Add) -> dict[str, Any]:
        outbox = (
            [DomainEvent(event_type="counter.added", event_id=f"evt_{msg.op_id}",
                         payload={"amount": msg.amount})]
            if msg.announce else []
        )  # fmt: skip
        new = await self.persist(
            [{"type": "added", "amount": msg.amount}], event_id=msg.op_id, outbox=outbox
        )
        return {"new": new, **self.state}

    @handler
    def get(self, msg: Get) -> dict[str, Any]:
        return self.state

    @handler
    def boom(self, msg: Boom) -> None:
        self.state = {"count": -999, "ops": -1}  # in-memory damage; the journal is the truth
        raise RuntimeError("boom")

    @handler
    def stats(self, msg: Stats) -> dict[str, int]:
        return {"seq": self.seq, "snapshot_seq": self.snapshot_seq,
                "recovered_events": self.recovered_events}  # fmt: skip


class Fenced(Counter):
    token: ClassVar[int] = 5

    @property
    def fencing_token(self) -> int | None:
        return Fenced.token


@pytest.fixture(params=["sqlite", "mongomock"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def counter_node(backend: str, tmp_path: Path, **actors: Any) -> AsyncIterator[Node]:
    config = test_config(
        actors or {"counter": Counter},
        services=[STORE],
        node={"data_dir": str(tmp_path)},
        pool_options={"backoff_initial_seconds": 0.0},
    )
    services = {}
    if backend == "mongomock":
        config = attrs.evolve(config, store=StoreConfig(backend="mongodb", mongo_url="mongodb://m"))
        services["store"] = functools.partial(store_service, mongo_client=mongomock.MongoClient())
    async with open_test_node(config, actors=actors or {"counter": Counter},
                              services=services) as node:  # fmt: skip
        yield node


async def test_persist_then_recover_after_passivation(backend: str, tmp_path: Path) -> None:
    async with counter_node(backend, tmp_path) as node:
        ref = node.system.ref("counter", "c1")
        assert await ref.ask(Add(op_id="op1", amount=3)) == {"new": True, "count": 3, "ops": 1}
        assert await ref.ask(Add(op_id="op2", amount=4)) == {"new": True, "count": 7, "ops": 2}
        with trio.fail_after(5):
            await node.system.passivate_all()
        assert "c1" not in node.system.pools["counter"].cells
        assert await ref.ask(Get()) == {"count": 7, "ops": 2}
        # on_passivate snapshotted the two events: recovery read none of them
        assert await ref.ask(Stats()) == {"seq": 2, "snapshot_seq": 2, "recovered_events": 0}
        assert node.store is not None
        assert await node.store.count(JOURNAL, {"actor_id": "counter/c1"}) == 2


async def test_recover_after_a_crash_restart(backend: str, tmp_path: Path) -> None:
    async with counter_node(backend, tmp_path) as node:
        ref = node.system.ref("counter", "c1")
        await ref.ask(Add(op_id="op1", amount=2))
        await ref.ask(Add(op_id="op2", amount=5))
        with pytest.raises(ActorFailed, match="boom"):
            await ref.ask(Boom())
        with trio.fail_after(5):
            assert await ref.ask(Get()) == {"count": 7, "ops": 2}
        assert await ref.ask(Stats()) == {"seq": 2, "snapshot_seq": 0, "recovered_events": 2}
        assert node.system.pools["counter"].activations == 2


async def test_redelivered_message_changes_nothing(backend: str, tmp_path: Path) -> None:
    async with counter_node(backend, tmp_path) as node:
        ref = node.system.ref("counter", "c1")
        assert (await ref.ask(Add(op_id="op1", amount=3, announce=True)))["new"] is True
        again = await ref.ask(Add(op_id="op1", amount=3, announce=True))
        assert again == {"new": False, "count": 3, "ops": 1}
        assert node.store is not None
        assert await node.store.count(JOURNAL, {"actor_id": "counter/c1"}) == 1
        assert await node.store.count(EVENTS, {"event_type": "counter.added"}) == 1
        # also after a restart: the journal, not memory, remembers the id
        with pytest.raises(ActorFailed):
            await ref.ask(Boom())
        assert (await ref.ask(Add(op_id="op1", amount=3)))["new"] is False
        assert await ref.ask(Get()) == {"count": 3, "ops": 1}


async def test_snapshot_every_n_and_recovery_reads_only_later_events(
    backend: str, tmp_path: Path
) -> None:
    async with counter_node(backend, tmp_path) as node:
        ref = node.system.ref("counter", "c1")
        for i in range(1, 13):
            await ref.ask(Add(op_id=f"op{i}", amount=i))
        assert node.store is not None
        snapshot = await node.store.get(SNAPSHOTS, "counter/c1")
        assert snapshot is not None and snapshot["seq"] == 10
        assert snapshot["state"] == {"count": 55, "ops": 10}
        with pytest.raises(ActorFailed):  # a crash: no on_passivate snapshot this time
            await ref.ask(Boom())
        assert await ref.ask(Get()) == {"count": 78, "ops": 12}
        stats = await ref.ask(Stats())
        assert stats == {"seq": 12, "snapshot_seq": 10, "recovered_events": 2}
        assert stats["recovered_events"] < await node.store.count(JOURNAL)


async def test_outbox_events_commit_with_the_journal(backend: str, tmp_path: Path) -> None:
    async with counter_node(backend, tmp_path) as node:
        ref = node.system.ref("counter", "c1")
        await ref.ask(Add(op_id="op7", amount=2, announce=True))
        assert node.store is not None
        event = await node.store.get(EVENTS, "evt_op7")
        assert event is not None
        assert (event["event_type"], event["payload"], event["published"]) == (
            "counter.added", {"amount": 2}, False,
        )  # fmt: skip


async def test_lower_fencing_token_crashes_the_stale_activation(
    backend: str, tmp_path: Path
) -> None:
    Fenced.token = 5
    async with counter_node(backend, tmp_path, counter=Fenced) as node:
        ref = node.system.ref("counter", "c1")
        await ref.ask(Add(op_id="op1"))
        Fenced.token = 3  # as if this activation held an older lease
        with pytest.raises(ActorFailed, match="StaleFencingToken") as info:
            await ref.ask(Add(op_id="op2"))
        assert info.value.error_type == "StaleFencingToken"
        Fenced.token = 6
        assert await ref.ask(Get()) == {"count": 1, "ops": 1}
        assert node.store is not None
        assert await node.store.count(JOURNAL, {"actor_id": "counter/c1"}) == 1


async def test_without_the_store_service_activation_fails_clearly(tmp_path: Path) -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        with pytest.raises(ActorFailed, match="no store service is running") as info:
            await node.system.ref("counter", "c1").ask(Get())
        assert "counter/c1" in str(info.value)
