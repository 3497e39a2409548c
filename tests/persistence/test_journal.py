"""Journal and snapshots, against every backend."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from tektree.persistence import (
    DocumentStore,
    DomainEvent,
    DuplicateEvent,
    Journal,
    JournalConflict,
    JournalEvent,
    StaleFencingToken,
    StoredEvent,
)


def deposit(n: int, amount: int = 1) -> JournalEvent:
    return JournalEvent(event_id=f"e{n}", event_type="deposited", data={"amount": amount})


def fold(state: dict[str, Any] | None, events: list[StoredEvent]) -> dict[str, Any]:
    out = dict(state or {"balance": 0, "count": 0})
    for e in events:
        out["balance"] += e.data["amount"]
        out["count"] += 1
    return out


async def test_append_assigns_contiguous_seq(store: DocumentStore) -> None:
    journal = Journal(store)
    first = await journal.append("acct/1", [deposit(1), deposit(2)], fencing_token=7)
    second = await journal.append("acct/1", [deposit(3)])
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert first[0].fencing_token == 7 and second[0].fencing_token is None
    events = await journal.read("acct/1")
    assert [(e.seq, e.event_id) for e in events] == [(1, "e1"), (2, "e2"), (3, "e3")]
    assert [e.seq for e in await journal.read("acct/1", from_seq=2)] == [2, 3]
    assert await journal.read("acct/other") == []
    # a fresh Journal (a new activation) continues the sequence from the store
    assert [e.seq for e in await Journal(store).append("acct/1", [deposit(4)])] == [4]


async def test_duplicate_event_id_rejected_and_nothing_written(store: DocumentStore) -> None:
    journal = Journal(store)
    await journal.append("acct/1", [deposit(1)])
    with pytest.raises(DuplicateEvent) as info:
        await journal.append("acct/1", [deposit(2), deposit(1)])
    assert (info.value.actor_id, info.value.event_id) == ("acct/1", "e1")
    with pytest.raises(DuplicateEvent):
        await journal.append("acct/1", [deposit(5), deposit(5)])
    if store.capabilities.atomic_units:
        assert [e.event_id for e in await journal.read("acct/1")] == ["e1"]
    # the same event id in another actor's journal is fine
    assert [e.seq for e in await journal.append("acct/2", [deposit(1)])] == [1]


async def test_skip_duplicates_returns_only_new_events(store: DocumentStore) -> None:
    journal = Journal(store)
    await journal.append("a", [deposit(1), deposit(2)])
    new = await journal.append("a", [deposit(2), deposit(3), deposit(1)], skip_duplicates=True)
    assert [(e.event_id, e.seq) for e in new] == [("e3", 3)]
    assert await journal.append("a", [deposit(3)], skip_duplicates=True) == []
    assert len(await journal.read("a")) == 3


async def test_snapshot_every_n_then_recover(store: DocumentStore) -> None:
    journal = Journal(store)
    state: dict[str, Any] = {"balance": 0, "count": 0}
    for n in range(1, 24):
        stored = await journal.append("acct/9", [deposit(n, amount=n)])
        state = fold(state, stored)
        if n % 5 == 0:
            assert await journal.save_snapshot("acct/9", stored[-1].seq, state)
    recovery = await Journal(store).recover("acct/9")
    assert recovery.snapshot_seq == 20
    assert [e.seq for e in recovery.events] == [21, 22, 23]
    assert fold(recovery.state, recovery.events) == state == {"balance": 276, "count": 23}
    # an older snapshot never replaces a newer one
    assert not await journal.save_snapshot("acct/9", 10, {"balance": -1, "count": 0})
    snapshot = await journal.load_snapshot("acct/9")
    assert snapshot is not None and snapshot.seq == 20


async def test_recover_without_snapshot(store: DocumentStore) -> None:
    journal = Journal(store)
    assert await journal.recover("new") == (None, 0, [])
    await journal.append("acct", [deposit(1, 5), deposit(2, 7)])
    state, seq, events = await Journal(store).recover("acct")
    assert state is None and seq == 0 and fold(state, events) == {"balance": 12, "count": 2}


async def test_stale_writer_gets_journal_conflict(store: DocumentStore) -> None:
    old, new = Journal(store), Journal(store)
    await old.append("acct", [deposit(1)])
    await new.recover("acct")
    await new.append("acct", [deposit(2)], fencing_token=2)
    with pytest.raises(JournalConflict) as info:  # without a token, the seq index guards alone
        await old.append("acct", [deposit(3)])
    assert info.value.seq == 2
    assert [e.event_id for e in await new.read("acct")] == ["e1", "e2"]


async def test_concurrent_appends_from_many_actors(store: DocumentStore) -> None:
    journal = Journal(store)

    async def writer(actor: int) -> None:
        for n in range(5):
            await journal.append(f"w{actor}", [deposit(n)])

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for actor in range(50):
                nursery.start_soon(writer, actor)
    for actor in (0, 17, 49):
        assert [e.seq for e in await journal.read(f"w{actor}")] == [1, 2, 3, 4, 5]
    assert await store.count("journal") == 250


async def test_concurrent_appends_to_one_actor_queue_behind_each_other(
    store: DocumentStore,
) -> None:
    """The first append takes the actor's lock without waiting; the ones arriving while it
    is in flight wait for it: contiguous seqs, no JournalConflict, and the lock is gone once
    nobody holds or waits for it (also after a holder is cancelled)."""
    journal = Journal(store)

    async def writer(n: int) -> None:
        await journal.append("acct", [deposit(n)])

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(writer, n)
    events = await journal.read("acct")
    assert [e.seq for e in events] == list(range(1, 21))
    assert sorted(e.event_id for e in events) == sorted(f"e{n}" for n in range(20))
    assert journal._locks == {}
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, 20)
            nursery.start_soon(writer, 21)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()  # both cancelled: one in flight, one waiting
    assert journal._locks == {}
    await journal.append("acct", [deposit(22)])  # the lock was released: no hang
    seqs = [e.seq for e in await journal.read("acct")]
    assert seqs == list(range(1, len(seqs) + 1)) and 21 <= len(seqs) <= 23


async def test_an_append_cancelled_while_waiting_leaves_the_turn_to_the_next(
    store: DocumentStore,
) -> None:
    journal = Journal(store)
    waiting = trio.CancelScope()

    async def cancelled_writer() -> None:
        with waiting:
            await journal.append("acct", [deposit(1)])

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(journal.append, "acct", [deposit(0)])  # takes the turn at once
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(cancelled_writer)
            await trio.testing.wait_all_tasks_blocked()
            waiting.cancel()  # waiting for its turn, or in flight if the first was quick
            nursery.start_soon(journal.append, "acct", [deposit(2)])
        await journal.append("acct", [deposit(3)])  # the turn was left free: no hang
    events = await journal.read("acct")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    ids = [e.event_id for e in events]
    assert ids in (["e0", "e2", "e3"], ["e0", "e1", "e2", "e3"])
    assert journal._locks == {}


async def test_lower_fencing_token_is_refused_and_writes_nothing(store: DocumentStore) -> None:
    old, new = Journal(store), Journal(store)
    await old.append("acct", [deposit(1)], fencing_token=1)
    await new.recover("acct")
    await new.append("acct", [deposit(2)], fencing_token=2)
    await old.recover("acct")  # even with an up-to-date head, the old lease cannot write
    with pytest.raises(StaleFencingToken) as info:
        await old.append("acct", [deposit(3)], fencing_token=1)
    assert (info.value.actor_id, info.value.token, info.value.current) == ("acct", 1, 2)
    assert "fencing token 1" in str(info.value) and "token 2 is already recorded" in str(info.value)
    assert [e.event_id for e in await new.read("acct")] == ["e1", "e2"]
    assert await new.fence("acct") == 2
    # the same token and higher ones pass; the fence follows the highest; other actors are apart
    assert [e.seq for e in await new.append("acct", [deposit(4)], fencing_token=2)] == [3]
    assert [e.seq for e in await new.append("acct", [deposit(5)], fencing_token=5)] == [4]
    assert await new.fence("acct") == 5
    assert [e.seq for e in await old.append("other", [deposit(1)], fencing_token=1)] == [1]
    # a refused append sends no outbox event either
    with pytest.raises(StaleFencingToken):
        await old.append("acct", [deposit(6)], fencing_token=4,
                         outbox=[DomainEvent(event_type="x.y", event_id="evt_stale")])
    assert await store.get("events", "evt_stale") is None
    assert await store.count("journal", {"actor_id": "acct"}) == 4


async def test_stale_token_in_a_concurrent_race_is_refused(store: DocumentStore) -> None:
    journal = Journal(store)
    results: dict[int, str] = {}

    async def writer(token: int) -> None:
        try:
            await Journal(store).append("raced", [deposit(token)], fencing_token=token)
            results[token] = "ok"
        except StaleFencingToken:
            results[token] = "stale"
        except JournalConflict:
            results[token] = "conflict"  # lost the race for the next seq to a valid writer

    await journal.append("raced", [deposit(0)], fencing_token=3)
    async with trio.open_nursery() as nursery:
        for token in (1, 2, 3, 4):
            nursery.start_soon(writer, token)
    assert results[1] == results[2] == "stale"
    assert "ok" in (results[3], results[4])
    # 3 and 4 may both succeed (one after the other) or one may lose the race for the next
    # seq; either way the journal holds exactly the successful appends, in token order
    tokens = [e.fencing_token for e in await journal.read("raced")]
    assert len(tokens) == 1 + sum(r == "ok" for r in results.values())
    assert all(t is not None and t >= 3 for t in tokens)
    assert tokens == sorted(tokens, key=lambda t: t or 0)


async def test_outbox_and_extra_writes_commit_with_the_events(store: DocumentStore) -> None:
    journal = Journal(store)
    event = DomainEvent(event_type="acct.deposited", payload={"amount": 1}, event_id="evt_1")
    stored = await journal.append(
        "acct", [deposit(1)], outbox=[event],
        also=lambda unit: unit.update("balances", "acct", {"$inc": {"v": 1}}, upsert=True),
    )
    assert [e.seq for e in stored] == [1]
    doc = await store.get("events", "evt_1")
    assert doc is not None and doc["published"] is False
    assert (await store.get("balances", "acct") or {}).get("v") == 1
    # a redelivery (skip_duplicates) appends nothing and writes neither again
    again = DomainEvent(event_type="acct.deposited", event_id="evt_2")
    assert await journal.append("acct", [deposit(1)], skip_duplicates=True, outbox=[again]) == []
    assert await store.get("events", "evt_2") is None


async def test_a_raised_fence_shuts_out_the_stale_holder_before_the_new_one_writes(
    store: DocumentStore,
) -> None:
    # Regression: the fence used to move only on the new activation's first append, so the old
    # holder could still write between the new activation's recovery and that first append.
    old, new = Journal(store), Journal(store)
    await old.append("acct", [deposit(1)], fencing_token=1)
    await new.raise_fence("acct", 2)  # what EventSourcedActor.recover does first
    with pytest.raises(StaleFencingToken) as info:
        await old.append("acct", [deposit(2)], fencing_token=1)
    assert (info.value.token, info.value.current) == (1, 2)
    assert [e.seq for e in await new.append("acct", [deposit(3)], fencing_token=2)] == [2]
    with pytest.raises(StaleFencingToken):
        await old.raise_fence("acct", 1)  # a stale activation cannot raise it back down
    await new.raise_fence("acct", 2)  # idempotent for the holder
    assert await new.fence("acct") == 2
