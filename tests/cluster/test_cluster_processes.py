"""A cluster of real ``tektree node`` processes on a real Redis and one shared SQLite file.

The test process is a client node (no worker role, so ``acct`` is never placed on it) sending
commands through ordinary refs. Workers are killed, joined, cut off from Redis and fed garbage;
afterwards every actor's balance must equal exactly what the client had acknowledged, and the
journal must show that no stale activation wrote after a newer one.
"""

from __future__ import annotations

from pathlib import Path

import coredis
import msgpack
import pytest
import trio
from cluster_support import (
    KIND,
    Balance,
    Deposit,
    Ledger,
    WhereAreYou,
    ask_until_answered,
    check_balances,
    gather,
    home_of,
    journal_violations,
    open_client,
    open_workers,
    read_journal,
    run_load,
    wait_for_workers,
    workers_in_view,
)
from coredis.response.types import StreamPending

from tektree import Envelope, encode_envelope
from tektree.cluster._router import ENVELOPE_FRAME, REPLY_FRAME
from tektree.persistence import (
    DuplicateEvent,
    Journal,
    JournalConflict,
    JournalEvent,
    StoreSettings,
    open_store,
)
from tektree.persistence._open import ensure_kernel_indexes
from tektree.persistence._sqlite import SqliteStore
from tektree.testing.redis import RedisServer

pytestmark = pytest.mark.slow


def _keys(count: int) -> list[str]:
    return [f"a{i:04d}" for i in range(count)]


def _text(value: str | bytes | None) -> str:
    assert value is not None
    return value.decode() if isinstance(value, bytes) else value


async def test_three_nodes_answer_10000_asks_to_1000_actors_exactly(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    keys = _keys(1000)
    ledger = Ledger()
    async with open_workers(tmp_path, redis_server.url) as workers, \
            open_client(redis_server.url) as client:
        await workers.start("n1", "n2", "n3")
        await wait_for_workers(client, ["n1", "n2", "n3"])
        started = trio.current_time()
        with trio.fail_after(90):
            await run_load(client, keys, ledger, rounds=10, concurrency=200, tag="t1",
                           attempt_seconds=30)
        elapsed = trio.current_time() - started
        assert ledger.total == 10_000
        assert not ledger.failures, ledger.failures  # generous timeouts: none may fail
        with trio.fail_after(30):
            balances = await gather(client, keys, Balance(), ledger)
            where = await gather(client, keys, WhereAreYou(), ledger)
        assert check_balances(balances, ledger) == []
        members = workers_in_view(client)
        assert {key: home_of(key, members) for key in keys} == where
        assert {"n1", "n2", "n3"} == set(where.values())
        print(f"10,000 asks in {elapsed:.1f} s ({10_000 / elapsed:.0f}/s)")
        assert workers.errors() == []
    assert journal_violations(read_journal(tmp_path / "shared.sqlite3")) == []


async def test_kill_9_of_a_worker_under_load_loses_nothing_and_fences_stale_writers(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    keys = _keys(300)
    ledger = Ledger()
    probe_ledger = Ledger()
    async with open_workers(tmp_path, redis_server.url) as workers, \
            open_client(redis_server.url) as client:
        await workers.start("n1", "n2", "n3")
        await wait_for_workers(client, ["n1", "n2", "n3"])
        with trio.fail_after(30):
            before = await gather(client, keys, WhereAreYou(), probe_ledger)
        victims = sorted(key for key, node in before.items() if node == "n2")
        assert 50 < len(victims) < 150
        loaded = trio.Event()
        recovered_after: dict[str, float] = {}

        def progress(done: int) -> None:
            if done >= 1500:
                loaded.set()

        async def probe(key: str, killed_at: float) -> None:
            # Answers from the new home, asked again until one comes (each try bounded).
            node = await ask_until_answered(client.system.ref(KIND, key), WhereAreYou(),
                                            probe_ledger, attempt_seconds=1.0)
            assert node != "n2"
            recovered_after[key] = trio.current_time() - killed_at

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: run_load(
                    client, keys, ledger, rounds=20, concurrency=100, tag="t2",
                    progress=progress, attempt_seconds=2.0,
                ))
                await loaded.wait()
                workers["n2"].kill()
                killed_at = trio.current_time()
                with trio.move_on_after(10):
                    async with trio.open_nursery() as probes:
                        for key in victims:
                            probes.start_soon(probe, key, killed_at)
                late = sorted(set(victims) - set(recovered_after))
                assert not late, f"{len(late)} actors of n2 not answering 10 s after the kill"
            balances = await gather(client, keys, Balance(), ledger)
        assert ledger.total == 300 * 20
        assert check_balances(balances, ledger) == []
        slowest = max(recovered_after.values())
        print(f"n2's {len(victims)} actors answered again within {slowest:.2f} s of the kill; "
              f"client retries: {dict(ledger.failures)}")
        assert workers.errors() == []
    journals = read_journal(tmp_path / "shared.sqlite3")
    assert journal_violations(journals) == []
    assert {a: len(e) for a, e in journals.items()} == {f"{KIND}/{k}": 20 for k in keys}
    # The check has teeth: n2's actors were written under (at least) two leases.
    moved = [journals[f"{KIND}/{k}"] for k in victims]
    assert all(len({e.fencing_token for e in events}) >= 2 for events in moved)


async def test_a_joining_worker_takes_over_only_the_actors_whose_home_moved_to_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    keys = _keys(300)
    ledger = Ledger()
    probe_ledger = Ledger()
    async with open_workers(tmp_path, redis_server.url) as workers, \
            open_client(redis_server.url) as client:
        await workers.start("n1", "n2")
        await wait_for_workers(client, ["n1", "n2"])
        two = workers_in_view(client)
        with trio.fail_after(120):
            before = await gather(client, keys, WhereAreYou(), probe_ledger)
            assert before == {key: home_of(key, two) for key in keys}
            halfway = trio.Event()

            def progress(done: int) -> None:
                if done >= 1500:
                    halfway.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: run_load(
                    client, keys, ledger, rounds=30, concurrency=100, tag="t3",
                    progress=progress,
                ))
                await halfway.wait()
                joined_at = trio.current_time()
                await workers.start("n3")
                await wait_for_workers(client, ["n1", "n2", "n3"])
                acked_at_join = ledger.total
                print(f"n3 joined {trio.current_time() - joined_at:.2f} s after its start, "
                      f"with {acked_at_join} of 9000 deposits acknowledged")
                assert acked_at_join < 8000, "the load ended before n3 joined: no test"
            after = await gather(client, keys, WhereAreYou(), probe_ledger)
            balances = await gather(client, keys, Balance(), ledger)
        three = workers_in_view(client)
        assert after == {key: home_of(key, three) for key in keys}
        migrated = {key for key in keys if before[key] != after[key]}
        assert migrated == {key for key in keys if home_of(key, three) == "n3"}
        assert all(after[key] == "n3" for key in migrated)
        assert 50 < len(migrated) < 150
        assert ledger.total == 300 * 30
        assert check_balances(balances, ledger) == []
        print(f"{len(migrated)} of 300 actors migrated to n3; client retries: "
              f"{dict(ledger.failures)}")
        assert workers.errors() == []
    journals = read_journal(tmp_path / "shared.sqlite3")
    assert journal_violations(journals) == []
    # Actors that stayed kept their one activation: a single lease wrote all their events.
    stayed = [journals[f"{KIND}/{k}"] for k in keys if before[k] == after[k]]
    assert all(len({e.fencing_token for e in events}) == 1 for events in stayed)
    # ... and the migrated ones were written by their old home, then by n3, under a new lease.
    assert all(len({e.fencing_token for e in journals[f"{KIND}/{k}"]}) >= 2 for k in migrated)


async def test_the_cluster_recovers_on_its_own_after_redis_is_down_for_5_seconds(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    keys = _keys(200)
    ledger = Ledger()
    probe_ledger = Ledger()
    async with open_workers(tmp_path, redis_server.url) as workers, \
            open_client(redis_server.url) as client:
        await workers.start("n1", "n2")
        await wait_for_workers(client, ["n1", "n2"])
        with trio.fail_after(30):
            await run_load(client, keys, ledger, rounds=2, concurrency=100, tag="t4a")
        stop = trio.Event()
        steady = trio.Event()
        steady_at = [float("inf")]

        def progress(done: int) -> None:
            if ledger.total >= steady_at[0]:
                steady.set()

        with trio.fail_after(90):
            async with trio.open_nursery() as nursery:
                # Load straddling the outage: commands in flight when Redis dies are retried
                # with their ids until acknowledged (Redis forgets its streams: they are lost).
                nursery.start_soon(lambda: run_load(
                    client, keys, ledger, rounds=100, concurrency=50, tag="t4b", stop=stop,
                    progress=progress,
                ))
                await redis_server.stop()
                down_at = trio.current_time()
                await trio.sleep(5)  # the outage itself
                acked_during_outage = ledger.total
                await redis_server.start()
                up_at = trio.current_time()
                print(f"redis was down {up_at - down_at:.1f} s")
                # Recovered: every actor answers again, with no help from the test.
                await gather(client, keys, WhereAreYou(), probe_ledger, attempt_seconds=1.0)
                recovered_in = trio.current_time() - up_at
                # ... and serves the load again: 500 more deposits acknowledged.
                steady_at[0] = ledger.total + 500
                await steady.wait()
                stop.set()
            balances = await gather(client, keys, Balance(), ledger)
        assert ledger.total > acked_during_outage + 500
        # The outage did stop activations (leases could not be renewed): they came back.
        assert any(w.events("lease lost") for w in workers.by_name.values())
        assert check_balances(balances, ledger) == []
        for worker in workers.by_name.values():
            assert worker.alive, f"{worker.name} exited:\n{worker.stderr_tail(80)}"
        print(f"all 200 actors answered {recovered_in:.2f} s after redis came back; "
              f"{ledger.total} deposits acknowledged; client retries: {dict(ledger.failures)}")
        assert workers.errors() == []
    assert journal_violations(read_journal(tmp_path / "shared.sqlite3")) == []


async def test_malformed_entries_in_a_workers_inbox_are_logged_skipped_and_acked(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    keys = _keys(50)
    ledger = Ledger()
    async with open_workers(tmp_path, redis_server.url) as workers, \
            open_client(redis_server.url) as client:
        (n1,) = await workers.start("n1")
        await wait_for_workers(client, ["n1"])
        with trio.fail_after(30):
            await run_load(client, keys, ledger, rounds=2, concurrency=50, tag="t5a")
        # (First asks may time out: a fresh Redis grants no lease for one lease TTL.)
        ledger.failures.clear()
        # A well-formed envelope whose message tag no node knows.
        good = encode_envelope(Envelope(
            "bad.1", client.system.ref(KIND, keys[0]).id,
            Deposit(command_id="never", amount=1_000_000), None, "client",
        ))
        frame = msgpack.unpackb(good)
        frame[8][0] = "no.such.tag"
        unknown_tag = ENVELOPE_FRAME + msgpack.packb(frame)
        garbage: list[dict[bytes, bytes]] = [
            {b"x": b"no frame field at all"},
            {b"f": b""},
            {b"f": b"Z-not-a-frame-type"},
            {b"f": ENVELOPE_FRAME + b"\xc1\xc1 not msgpack"},
            {b"f": ENVELOPE_FRAME + msgpack.packb([1, "short"])},
            {b"f": unknown_tag},
            {b"f": REPLY_FRAME + msgpack.packb({"not": "a reply"})},
        ]
        inbox = "tektree:inbox:n1"
        redis = coredis.Redis.from_url(redis_server.url, decode_responses=False)
        async with redis:
            ids = [_text(await redis.xadd(inbox, fields)) for fields in garbage]
            skipped = await n1.wait_for(
                "malformed frame skipped", seconds=10, count=len(garbage),
                where=lambda entry: entry.get("entry_id") in ids,
            )
            assert sorted(e["entry_id"] for e in skipped) == sorted(ids)
            assert all(e["stream"] == inbox and e["level"] == "warning" for e in skipped)
            unknown = next(e for e in skipped if e["entry_id"] == ids[5])
            assert "no.such.tag" in unknown["error"]
            with trio.fail_after(30):
                # Still serving, including the actor the bad envelope named ...
                await run_load(client, keys, ledger, rounds=2, concurrency=50, tag="t5b")
                balances = await gather(client, keys, Balance(), ledger)
            # ... and every bad entry was acknowledged and deleted: their acks were queued
            # before the replies to all the asks since, and a flush writes acks in order.
            summary = await redis.xpending(inbox, "tektree:g")
            assert isinstance(summary, StreamPending)
            assert summary.pending == 0
            left = {_text(e.identifier) for e in await redis.xrange(inbox, "-", "+")}
            assert not set(ids) & left
        assert check_balances(balances, ledger) == []
        assert not ledger.failures, ledger.failures
        assert n1.alive
        assert workers.errors() == []


async def test_a_store_opened_while_another_process_creates_the_indexes_still_dedupes(
    tmp_path: Path,
) -> None:
    # Regression (fixed in _sqlite_ops._ensure_index): the early return for an index another
    # process had declared did not register it in this process, so duplicates went unseen.
    # What two worker processes starting together on one fresh SQLite file do: B opens its
    # writer (and reads the index registry) before A creates the kernel's indexes. Seen in
    # this file's process tests: a worker's acct pool crash-looped on retried commands and the
    # node exited. (The process tests now create the store before starting any worker.)
    path = tmp_path / "shared.sqlite3"
    raised = "nothing"
    async with SqliteStore.open(path) as late:
        async with open_store(StoreSettings(sqlite_path=path)):
            pass
        await ensure_kernel_indexes(late)
        event = JournalEvent(event_id="cmd-1", event_type="deposited", data={"amount": 1})
        await Journal(late).append("acct/x", [event], fencing_token=1)
        try:  # a redelivered command, as a new activation appends it
            await Journal(late).append("acct/x", [event], fencing_token=1)
        except (DuplicateEvent, JournalConflict) as exc:
            raised = type(exc).__name__
    assert raised == "DuplicateEvent"
