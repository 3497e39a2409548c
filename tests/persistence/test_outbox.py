"""The outbox: events written with the state change, relayed at least once, replayed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from tektree.persistence import (
    Deduplicator,
    DocumentStore,
    DomainEvent,
    DuplicateKeyError,
    DurableDeduplicator,
    IndexSpec,
    OutboxRelay,
    format_timestamp,
    replay,
    utc_now,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def event(n: int, event_type: str = "xp.earned", minutes: int | None = None) -> DomainEvent:
    when = T0 + dt.timedelta(minutes=n if minutes is None else minutes)
    return DomainEvent(
        event_id=f"evt_{n:03d}",
        event_type=event_type,
        timestamp=when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        payload={"n": n},
        trace_id="trace_1",
    )


async def write_with_state(store: DocumentStore, n: int, **kw: Any) -> None:
    async with store.unit() as u:
        u.update("profiles", "p", {"$inc": {"xp": 1}}, upsert=True)
        u.add_event(event(n, **kw))


async def test_event_is_written_with_the_state_change(store: DocumentStore) -> None:
    await write_with_state(store, 1)
    stored = await store.get("events", "evt_001")
    assert stored is not None and stored["published"] is False
    assert stored["event_type"] == "xp.earned" and stored["payload"] == {"n": 1}
    assert set(DomainEvent(event_type="t").to_dict()) <= set(stored)
    await store.ensure_index("profiles", IndexSpec(fields=[("xp", 1)], unique=True, name="xp"))
    await store.insert("profiles", {"_id": "other", "xp": 2})
    with pytest.raises(DuplicateKeyError):  # the state change fails: the event goes with it
        await write_with_state(store, 2)
    if store.capabilities.atomic_units:
        assert await store.get("events", "evt_002") is None


async def test_relay_wakes_on_commit_and_publishes_in_order(store: DocumentStore) -> None:
    published: list[dict[str, Any]] = []
    arrived = {3: trio.Event(), 5: trio.Event()}

    async def publish(e: dict[str, Any]) -> None:
        published.append(e)
        if len(published) in arrived:
            arrived[len(published)].set()

    relay = OutboxRelay(store, publish, batch_size=2, poll_interval_seconds=3600)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run)
            async with store.unit() as u:
                for n in (3, 1, 2):
                    u.add_event(event(n))
            await arrived[3].wait()  # woken by the commit notifier, not the hour-long poll
            async with store.unit() as u:
                u.add_event(event(5))
                u.add_event(event(4))
            await arrived[5].wait()
            # The relay marks 4 and 5 published after publishing them: stopping it now could
            # cancel that write while it still waits for the store's writer thread to take it.
            while await store.count("events", {"published": False}):
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    assert [e["event_id"] for e in published] == [f"evt_00{i}" for i in range(1, 6)]
    assert "published" not in published[0] and "_id" not in published[0]
    assert published[0]["trace_id"] == "trace_1"
    assert await store.count("events", {"published": False}) == 0


async def test_relay_publishes_pending_events_in_timestamp_order(store: DocumentStore) -> None:
    for n in (4, 2, 9, 1):
        await write_with_state(store, n)
    published: list[str] = []

    async def publish(e: dict[str, Any]) -> None:
        published.append(e["event_id"])

    relay = OutboxRelay(store, publish, batch_size=3)
    assert await relay.relay_once() == 3
    assert await relay.relay_once() == 1
    assert await relay.relay_once() == 0
    assert published == ["evt_001", "evt_002", "evt_004", "evt_009"]


async def test_publish_failure_is_retried_and_dedup_gives_exactly_once(
    store: DocumentStore,
) -> None:
    for n in range(1, 7):
        await write_with_state(store, n)
    dedup = Deduplicator()
    effects: list[str] = []
    attempts: dict[str, int] = {}

    async def publish(e: dict[str, Any]) -> None:
        attempts[e["event_id"]] = attempts.get(e["event_id"], 0) + 1
        if e["event_id"] == "evt_003" and attempts["evt_003"] == 1:
            raise ConnectionError("broker down")
        if dedup.first_time(e["event_id"]):
            effects.append(e["event_id"])

    relay = OutboxRelay(store, publish, batch_size=10, backoff_initial_seconds=0.001)
    with trio.fail_after(10):
        assert await relay.relay_once() == 6
    assert relay.publish_failures == 1 and attempts["evt_003"] == 2
    assert effects == [f"evt_{n:03d}" for n in range(1, 7)]
    assert await store.count("events", {"published": True}) == 6


async def test_relay_cancelled_mid_batch_then_restarted(store: DocumentStore) -> None:
    for n in range(1, 11):
        await write_with_state(store, n)
    received: list[str] = []
    dedup = Deduplicator()
    effects: list[str] = []
    crash_at_fourth = trio.Event()

    async def slow_publish(e: dict[str, Any]) -> None:
        received.append(e["event_id"])
        if dedup.first_time(e["event_id"]):
            effects.append(e["event_id"])
        if len(received) == 4:
            crash_at_fourth.set()
            await trio.sleep_forever()  # the relay dies here, mid-batch

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            relay = OutboxRelay(store, slow_publish, batch_size=10, poll_interval_seconds=3600)
            await nursery.start(relay.run)
            await crash_at_fourth.wait()
            nursery.cancel_scope.cancel()
    assert await store.count("events", {"published": False}) == 10  # nothing was marked

    done = trio.Event()

    async def publish(e: dict[str, Any]) -> None:
        received.append(e["event_id"])
        if dedup.first_time(e["event_id"]):
            effects.append(e["event_id"])
        if len(effects) == 10:
            done.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(OutboxRelay(store, publish, poll_interval_seconds=3600).run)
            await done.wait()
            nursery.cancel_scope.cancel()
    everything = [f"evt_{n:03d}" for n in range(1, 11)]
    assert set(received) == set(everything)  # at least once
    assert effects == everything  # exactly once in effect, in order
    assert dedup.duplicates == 4


async def test_durable_deduplicator(store: DocumentStore) -> None:
    dedup = DurableDeduplicator(store)
    assert await dedup.first_time("evt_1")
    assert not await dedup.first_time("evt_1")
    assert await DurableDeduplicator(store).first_time("evt_2")
    assert not await DurableDeduplicator(store).first_time("evt_1")


async def test_replay_by_type_and_time_range(store: DocumentStore) -> None:
    for n in range(12):
        await write_with_state(store, n, event_type="level.up" if n % 3 == 0 else "xp.earned")

    async def collect(**kw: Any) -> list[int]:
        return [e["payload"]["n"] async for e in replay(store, batch_size=2, **kw)]

    assert await collect() == list(range(12))
    assert await collect(event_type="level.up") == [0, 3, 6, 9]
    since, until = T0 + dt.timedelta(minutes=4), T0 + dt.timedelta(minutes=9)
    assert await collect(since=since, until=until) == [4, 5, 6, 7, 8]
    assert await collect(event_type="xp.earned", since=since, until=until) == [4, 5, 7, 8]
    assert await collect(event_type="xp.earned", since="2026-01-01T00:10:00.000000Z") == [10, 11]
    assert await collect(event_type="nothing") == []


def test_deduplicator_is_bounded() -> None:
    dedup = Deduplicator(max_entries=2)
    assert dedup.first_time("a") and dedup.first_time("b") and not dedup.first_time("a")
    assert dedup.first_time("c")  # evicts "b", the least recently seen
    assert dedup.first_time("b") and not dedup.first_time("c")


async def test_relay_by_key_publishes_keys_at_once_and_each_key_in_order(
    store: DocumentStore,
) -> None:
    for n in range(1, 13):
        await write_with_state(store, n)
    in_flight, most = 0, 0
    order: dict[int, list[int]] = {}
    release = trio.Event()

    async def publish(e: dict[str, Any]) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 3:
            release.set()  # three keys are being published together
        await release.wait()
        n = e["payload"]["n"]
        order.setdefault(n % 3, []).append(n)
        in_flight -= 1

    relay = OutboxRelay(store, publish, batch_size=20, concurrency=3,
                        key=lambda e: str(e["payload"]["n"] % 3))
    with trio.fail_after(10):
        assert await relay.relay_once() == 12
    assert most == 3 and relay.published == 12
    assert order == {1: [1, 4, 7, 10], 2: [2, 5, 8, 11], 0: [3, 6, 9, 12]}
    assert await store.count("events", {"published": True}) == 12


async def test_relay_by_key_retries_a_failing_key_without_losing_its_order(
    store: DocumentStore,
) -> None:
    for n in range(1, 7):
        await write_with_state(store, n)
    seen: list[int] = []
    failed = False

    async def publish(e: dict[str, Any]) -> None:
        nonlocal failed
        n = e["payload"]["n"]
        if n == 2 and not failed:
            failed = True
            raise ConnectionError("down once")
        seen.append(n)

    relay = OutboxRelay(store, publish, batch_size=10, concurrency=4,
                        key=lambda e: str(e["payload"]["n"] % 2), backoff_initial_seconds=0.001)
    with trio.fail_after(10):
        assert await relay.relay_once() == 6
    assert relay.publish_failures == 1
    assert [n for n in seen if n % 2 == 0] == [2, 4, 6]
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]


async def test_relay_concurrency_needs_a_key(store: DocumentStore) -> None:
    async def publish(e: dict[str, Any]) -> None:
        pass

    with pytest.raises(ValueError, match="needs key="):
        OutboxRelay(store, publish, concurrency=8)
    with pytest.raises(ValueError, match="concurrency must be an int >= 1"):
        OutboxRelay(store, publish, concurrency=0, key=str)


def test_an_envelope_dict_has_every_field_of_the_class_in_the_seed_order() -> None:
    """``to_dict`` spells its keys out: it must still name every attribute, in order."""
    from tektree.persistence._errors import InvalidDocument
    from tektree.persistence._events import ENVELOPE_FIELDS, event_document

    evt = DomainEvent(event_type="xp.earned", event_id="evt_x", payload={"amount": 5},
                      timestamp="2026-01-01T00:00:00.000000Z", trace_id="t", correlation_id="c",
                      producer_id="p", metadata={"m": 1})
    data = evt.to_dict()
    assert tuple(data) == ENVELOPE_FIELDS
    assert sorted(ENVELOPE_FIELDS) == sorted(a.name for a in DomainEvent.__attrs_attrs__)
    assert all(data[name] == getattr(evt, name) for name in ENVELOPE_FIELDS)
    doc = event_document(evt)
    assert doc["_id"] == "evt_x" and doc["published"] is False
    # A DomainEvent's document is built in one step: the same as from its envelope dict.
    assert list(doc.items()) == list(event_document(evt.to_dict()).items())
    assert list(doc) == ["_id", *ENVELOPE_FIELDS, "published"]
    with pytest.raises(InvalidDocument, match="lacks timestamp"):
        event_document({"event_id": "e", "event_type": "a.b", "timestamp": ""})
    with pytest.raises(InvalidDocument, match="lacks timestamp"):
        event_document(attrs.evolve(evt, timestamp=""))


@pytest.mark.parametrize("when", [
    dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(1969, 12, 31, 23, 59, 59, 5, tzinfo=dt.UTC),
    dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
    dt.datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 29, 3, 30, 0, 42, tzinfo=dt.timezone(dt.timedelta(hours=2))),
])
def test_timestamps_are_utc_with_microseconds(when: dt.datetime) -> None:
    # format_timestamp caches the text of the last second it formatted: twice the same.
    expected = when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert format_timestamp(when) == format_timestamp(when) == expected


def test_utc_now_is_the_current_time_formatted() -> None:
    before = format_timestamp(dt.datetime.now(dt.UTC))
    now = utc_now()
    after = format_timestamp(dt.datetime.now(dt.UTC))
    assert before <= now <= after and len(now) == 27
