"""Durable reminders on the embedded defaults (SQLite store, one node), with a manual wall clock.

Time is moved by hand (``ManualWallClock``); the tests then wait for the effects under
``trio.fail_after``, never sleeping.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import mongomock
import pytest
import trio
from reminder_support import DELIVERIES, EFFECTS, KIND, Arm, Disarm, Ping, Pinged

from kit import Tick
from tektree import ActorFailed, ActorId, Node, UnhandledMessage
from tektree.config import StoreConfig
from tektree.persistence import DocumentStore, DuplicateKeyError, store_service
from tektree.reminders import (
    FAILED_REMINDERS,
    REMINDERS,
    ReminderError,
    Reminders,
    ReminderService,
    RemindersNotRunning,
    ReminderSpec,
    reminders_service,
)
from tektree.testing import ManualWallClock, open_test_node, test_config

OPTIONS = {"poll_interval_seconds": 1.0, "lookahead_seconds": 2.0, "lease_seconds": 30.0,
           "fire_timeout_seconds": 5.0, "retry_initial_seconds": 1.0,
           "retry_max_seconds": 8.0, "max_attempts": 3}


def _config(data_dir: Path, options: dict[str, Any] | None = None, *,
            mongo: bool = False) -> Any:
    config = test_config(
        {KIND: Pinged},
        services=[{"type": "service", "name": "store", "service": "store"},
                  {"type": "service", "name": "reminders", "service": "reminders",
                   "options": {**OPTIONS, **(options or {})}}],
        node={"data_dir": str(data_dir)},
    )
    if mongo:
        config = attrs.evolve(config, store=StoreConfig(backend="mongodb",
                                                        mongo_url="mongodb://mongomock"))
    return config


@pytest.fixture(params=["sqlite", "mongomock"])
def mongo(request: pytest.FixtureRequest) -> Any:
    """None (the SQLite store), or a mongomock client standing in for MongoDB (kept across
    the restarts of a test, like a server)."""
    return mongomock.MongoClient() if request.param == "mongomock" else None


@asynccontextmanager
async def reminder_node(
    data_dir: Path, clock: ManualWallClock, options: dict[str, Any] | None = None,
    mongo: Any = None,
) -> AsyncIterator[Node]:
    services: dict[str, Any] = {"reminders": functools.partial(reminders_service, clock=clock)}
    if mongo is not None:
        services["store"] = functools.partial(store_service, mongo_client=mongo)
    async with open_test_node(_config(data_dir, options, mongo=mongo is not None),
                              actors={KIND: Pinged}, services=services) as node:
        yield node


def _store(node: Node) -> DocumentStore:
    assert node.store is not None
    return node.store


def _service(node: Node) -> ReminderService:
    service = node.system.extensions["reminders.service"]
    assert isinstance(service, ReminderService)
    return service


async def _deliveries(node: Node) -> list[dict[str, Any]]:
    page = await _store(node).find(DELIVERIES, sort=[("at", 1)])
    return page.items


async def settle(node: Node) -> None:
    """Until every reminder due by the clock's time is delivered and moved on."""
    with trio.fail_after(10):
        await _service(node).settle()


async def _count(node: Node, collection: str) -> int:
    return await _store(node).count(collection)


async def test_a_reminder_fires_at_its_time_not_before(tmp_path: Path, mongo: Any) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock, mongo=mongo) as node:
        ref = node.system.ref(KIND, "a")
        occurrence = await ref.ask(Arm(name="once", due_in_seconds=60, label="hello"))
        assert occurrence == f"rem:{KIND}/a|once@{round((clock.time() + 60) * 1000)}"

        clock.advance(59)
        await settle(node)  # due within the lookahead: claimed and held, not fired
        assert _service(node).statistics().held == 1
        assert await _deliveries(node) == []

        clock.advance(1)
        await settle(node)
        [delivery] = await _deliveries(node)
        assert (delivery["occurrence"], delivery["label"]) == (occurrence, "hello")
        table: Reminders = node.system.extensions["reminders"]  # type: ignore[assignment]
        assert await table.get(ActorId(KIND, "a"), "once") is None  # one-shot: gone


async def test_a_periodic_reminder_keeps_firing_and_survives_a_restart(
    tmp_path: Path, mongo: Any
) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock, mongo=mongo) as node:
        ref = node.system.ref(KIND, "p")
        await ref.ask(Arm(name="tick", due_in_seconds=10, period_seconds=10))
        for n in range(1, 4):
            clock.advance(10)
            await settle(node)
            assert len(await _deliveries(node)) == n

    # A new node on the same data directory: the schedule is in the store, not in memory.
    async with reminder_node(tmp_path, clock, mongo=mongo) as node:
        for n in range(4, 6):
            clock.advance(10)
            await settle(node)
            assert len(await _deliveries(node)) == n
        deliveries = await _deliveries(node)
    dues = [int(d["occurrence"].rsplit("@", 1)[1]) for d in deliveries]
    start = dues[0]
    assert dues == [start + 10_000 * i for i in range(5)]  # on its grid, none twice


async def test_missed_occurrences_collapse_into_one(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock) as node:
        await node.system.ref(KIND, "m").ask(Arm(name="tick", due_in_seconds=10,
                                                 period_seconds=10))
    clock.advance(95)  # the node was down through nine occurrences
    async with reminder_node(tmp_path, clock) as node:
        await settle(node)
        assert len(await _deliveries(node)) == 1
        clock.advance(5)  # the next one is back on the grid, at +100 s
        await settle(node)
        dues = [int(d["occurrence"].rsplit("@", 1)[1]) for d in await _deliveries(node)]
    assert dues[1] - dues[0] == 90_000


async def test_no_reminder_fires_twice_among_many(tmp_path: Path, mongo: Any) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock, {"claim_batch": 50, "max_claimed": 120},
                             mongo=mongo) as node:
        table: Reminders = node.system.extensions["reminders"]  # type: ignore[assignment]
        specs = [ReminderSpec(actor=ActorId(KIND, f"u{i % 37}"), name=f"r{i}",
                              message=Ping(label=str(i)), due=clock.time() + 1 + (i % 5))
                 for i in range(400)]
        await table.register_many(specs)
        clock.advance(10)
        await settle(node)
        assert await table.count() == 0
        deliveries = await _deliveries(node)
    counts = Counter(d["occurrence"] for d in deliveries)
    assert len(counts) == 400
    assert [occ for occ, n in counts.items() if n > 1] == []


async def test_a_failing_delivery_is_retried_with_backoff_then_succeeds(
    tmp_path: Path, mongo: Any
) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock, mongo=mongo) as node:
        await node.system.ref(KIND, "f").ask(Arm(name="flaky", due_in_seconds=5, fail_times=2))
        seen = []
        for wait in (5, 1, 1, 1):  # due; retry after 1 s; (not yet); retry after 2 s
            clock.advance(wait)
            await settle(node)
            seen.append(len(await _deliveries(node)))
        assert seen == [1, 2, 2, 3]
        assert (await _count(node, REMINDERS), await _count(node, EFFECTS)) == (0, 1)


async def test_an_occurrence_failing_every_attempt_is_kept_as_failed(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock) as node:
        await node.system.ref(KIND, "x").ask(Arm(name="doomed", due_in_seconds=1, fail_times=99))
        for wait in (1, 1, 2):  # max_attempts = 3
            clock.advance(wait)
            await settle(node)
        assert len(await _deliveries(node)) == 3
        table: Reminders = node.system.extensions["reminders"]  # type: ignore[assignment]
        [failed], _ = await table.failed()
        assert failed["reminder_id"] == f"{KIND}/x|doomed"
        assert failed["attempts"] == 3 and "on purpose" in failed["last_error"]
        assert await _count(node, REMINDERS) == 0

        assert await table.retry_failed(failed["_id"])  # an operator puts it back
        await settle(node)
        assert len(await _deliveries(node)) == 4
        assert await _count(node, FAILED_REMINDERS) == 0


async def test_a_cancelled_reminder_does_not_fire(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock) as node:
        ref = node.system.ref(KIND, "c")
        await ref.ask(Arm(name="later", due_in_seconds=2))
        await settle(node)
        assert _service(node).statistics().held == 1  # already claimed, held in memory
        assert await ref.ask(Disarm(name="later"))
        clock.advance(10)
        await settle(node)
        assert await _deliveries(node) == []
        assert _service(node).statistics().superseded == 1


async def test_reregistering_replaces_the_reminder(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock) as node:
        ref = node.system.ref(KIND, "r")
        await ref.ask(Arm(name="n", due_in_seconds=2, label="old"))
        await settle(node)  # the old one is claimed and held
        await ref.ask(Arm(name="n", due_in_seconds=4, label="new"))
        clock.advance(4)
        await settle(node)
        clock.advance(10)
        await settle(node)
        assert [d["label"] for d in await _deliveries(node)] == ["new"]


async def test_bad_registrations_name_the_value(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock) as node:
        table: Reminders = node.system.extensions["reminders"]  # type: ignore[assignment]
        target = ActorId(KIND, "b")
        with pytest.raises(ReminderError, match="name = 'has space'"):
            await table.register(target, "has space", Ping(), due=clock.time())
        with pytest.raises(ReminderError, match=r"period_seconds = 0\.5"):
            await table.register(target, "fast", Ping(), due=clock.time(), period_seconds=0.5)
        with pytest.raises(ReminderError, match="not a registered message"):
            await table.register(target, "raw", {"not": "a message"}, due=clock.time())
        with pytest.raises(UnhandledMessage, match="has no handler for Tick"):
            await table.register(target, "wrong", Tick(), due=clock.time())
        assert await table.count() == 0


async def test_without_the_service_ctx_reminders_says_what_to_add(tmp_path: Path) -> None:
    config = test_config({KIND: Pinged},
                         services=[{"type": "service", "name": "store", "service": "store"}],
                         node={"data_dir": str(tmp_path)})
    async with open_test_node(config, actors={KIND: Pinged}) as node:
        with pytest.raises(ActorFailed) as caught:
            await node.system.ref(KIND, "n").ask(Arm(name="x", due_in_seconds=1))
        assert caught.value.error_type == RemindersNotRunning.__name__
        assert 'service = "reminders"' in str(caught.value)


async def test_bulk_load_inserts_new_reminders_and_refuses_existing_ones(tmp_path: Path) -> None:
    clock = ManualWallClock()
    async with reminder_node(tmp_path, clock) as node:
        table: Reminders = node.system.extensions["reminders"]  # type: ignore[assignment]
        specs = [ReminderSpec(actor=ActorId(KIND, "bulk"), name=f"r{i}", message=Ping(),
                              due=clock.time() + 1) for i in range(50)]
        assert await table.insert_many(specs) == 50
        with pytest.raises(DuplicateKeyError):
            await table.insert_many(specs[:1])
        clock.advance(1)
        await settle(node)
        assert len(await _deliveries(node)) == 50
