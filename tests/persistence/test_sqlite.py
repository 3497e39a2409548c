"""SqliteStore specifics: durability settings, indexes in SQL, group commit, cancellation."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tektree.persistence import (
    DuplicateKeyError,
    IndexSpec,
    InvalidDocument,
    InvalidQuery,
    SqliteStore,
    StoreClosed,
    StoreUnavailable,
)


class WriterHold:
    """Holds the store's writer thread in its next commit until :meth:`release`, so that the
    writes queued meanwhile are all taken as one batch (the thread starts each commit as soon
    as the last one ends, with whatever is queued then: one writer, if it is alone so far)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import tektree.persistence._sqlite as sqlite_module

        self._armed, self._entered = threading.Event(), threading.Event()
        self._release = threading.Event()
        commit_batch = sqlite_module.commit_batch

        def held(*args: Any) -> Any:
            if self._armed.is_set() and not self._release.is_set():
                self._entered.set()
                self._release.wait(30)
            return commit_batch(*args)

        monkeypatch.setattr(sqlite_module, "commit_batch", held)

    async def hold(self, store: SqliteStore, nursery: trio.Nursery, doc_id: str) -> None:
        """Start a write of ``{"_id": doc_id}`` to ``"held"`` and return once its commit waits."""
        self._armed.set()
        nursery.start_soon(store.insert, "held", {"_id": doc_id})
        assert await trio.to_thread.run_sync(self._entered.wait, 10)

    def release(self) -> None:
        self._release.set()


async def test_file_is_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "s.sqlite3"
    async with SqliteStore.open(path) as store:
        await store.insert("c", {"_id": "1"})
        assert store.capabilities.atomic_units
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()
    assert store._writer_conn is None  # closed with its context


async def test_declared_index_is_an_expression_index_the_planner_uses(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        spec = IndexSpec(fields=[("user_id", 1), ("stats.xp", -1)], name="user_xp")
        await store.ensure_index("profiles", spec)
        assert store.describe_indexes() == {"profiles": [spec]}
    raw = sqlite3.connect(tmp_path / "s.sqlite3")
    try:
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT doc FROM c_profiles WHERE "
            "json_extract(doc, '$.user_id') = ? ORDER BY json_extract(doc, '$.stats.xp') DESC",
            ("u",),
        ).fetchall()
    finally:
        raw.close()
    assert "ix_profiles__user_xp" in str(plan)
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:  # the registry survives reopen
        assert store.describe_indexes() == {"profiles": [spec]}
        with pytest.raises(InvalidQuery, match="cannot redeclare"):
            await store.ensure_index("profiles", IndexSpec(fields=[("x", 1)], name="user_xp"))


async def test_unique_index_over_existing_duplicates_fails(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.insert_many("u", [{"email": "a"}, {"email": "a"}])
        with pytest.raises(DuplicateKeyError):
            await store.ensure_index("u", IndexSpec(fields=[("email", 1)], unique=True))
        assert store.describe_indexes() == {}


async def test_group_commit_isolates_one_writers_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = WriterHold(monkeypatch)
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.ensure_index("u", IndexSpec(fields=[("email", 1)], unique=True, name="email"))
        await store.insert("u", {"_id": "taken", "email": "dup@x.io"})
        await store.insert("held", {"_id": "warm"})  # its table exists before the hold
        outcomes: dict[int, str] = {}

        async def write(i: int) -> None:
            email = "dup@x.io" if i == 7 else f"{i}@x.io"
            try:
                await store.insert("u", {"_id": f"u{i}", "email": email})
                outcomes[i] = "ok"
            except DuplicateKeyError as exc:
                outcomes[i] = f"dup {exc.key}"

        async with trio.open_nursery() as nursery:
            await writer.hold(store, nursery, "holder")
            for i in range(40):
                nursery.start_soon(write, i)
            await trio.testing.wait_all_tasks_blocked()
            writer.release()
        assert outcomes.pop(7) == "dup {'email': 'dup@x.io'}"
        assert set(outcomes.values()) == {"ok"}
        assert await store.count("u") == 40
        stats = store.statistics()
        assert stats.largest_batch == 40  # the queued writers shared one transaction
        assert stats.batched_writes == stats.operations["insert"].count + 1


async def test_a_failed_writer_in_a_batch_keeps_the_others_and_their_new_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch runs first without savepoints; a failure rolls it all back and it runs again,
    # each writer in its own savepoint: the tables the others created are there at the end.
    writer = WriterHold(monkeypatch)
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.insert("u", {"_id": "taken"})
        await store.insert("held", {"_id": "warm"})
        failed: list[str] = []

        async def write(i: int) -> None:
            if i == 3:
                try:
                    await store.insert("u", {"_id": "taken"})
                except DuplicateKeyError as exc:
                    failed.append(str(exc.key))
                return
            async with store.unit() as unit:
                unit.insert(f"fresh{i % 2}", {"_id": f"d{i}"})
                unit.update("u", f"c{i}", {"$inc": {"n": 1}}, upsert=True)

        async with trio.open_nursery() as nursery:
            await writer.hold(store, nursery, "holder")
            for i in range(8):
                nursery.start_soon(write, i)
            await trio.testing.wait_all_tasks_blocked()
            writer.release()
        assert failed == ["{'_id': 'taken'}"]
        assert store.statistics().largest_batch == 8
        assert (await store.count("fresh0"), await store.count("fresh1")) == (4, 3)
        assert await store.count("u", {"n": 1}) == 7
        await store.insert("fresh0", {"_id": "after"})  # the writer knows the table
        assert await store.count("fresh0") == 5


async def test_a_batch_gathers_its_inserts_and_keeps_their_order_with_other_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One batch: many inserts into two collections (more rows than one statement holds), and
    # writers whose updates and deletes must see the inserts queued before them in the batch.
    writer = WriterHold(monkeypatch)
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.insert("held", {"_id": "w"})  # the tables exist: no DDL in the batch
        await store.insert_many("a", [{"_id": "seed"}])
        await store.insert_many("b", [{"_id": "seed"}])
        order: list[str] = []

        async def bulk(i: int) -> None:
            await store.insert_many("a", [{"_id": f"a{i}-{n}", "i": i} for n in range(300)])
            order.append(f"bulk{i}")

        async def insert_then_update(i: int) -> None:
            async with store.unit() as unit:
                unit.insert("b", {"_id": f"b{i}", "n": 0})
                unit.insert("a", {"_id": f"x{i}", "i": -1})
                unit.update("b", f"b{i}", {"$inc": {"n": 1}})
                unit.delete("a", f"x{i}")
            order.append(f"unit{i}")

        async with trio.open_nursery() as nursery:
            await writer.hold(store, nursery, "holder")
            for i in range(3):
                nursery.start_soon(bulk, i)
                nursery.start_soon(insert_then_update, i)
            await trio.testing.wait_all_tasks_blocked()
            writer.release()
        assert sorted(order) == ["bulk0", "bulk1", "bulk2", "unit0", "unit1", "unit2"]
        stats = store.statistics()
        assert stats.largest_batch == 6  # they did share one transaction
        assert await store.count("a") == 1 + 900
        assert [await store.count("a", {"i": i}) for i in range(3)] == [300, 300, 300]
        assert await store.count("a", {"i": -1}) == 0  # each delete saw its insert
        assert await store.count("b", {"n": 1}) == 3  # each update saw its insert
        assert (await store.get("a", "a2-299")) == {"_id": "a2-299", "i": 2}


async def test_a_commit_goes_ahead_while_the_trio_thread_is_busy(tmp_path: Path) -> None:
    # The writer thread starts and runs each commit itself: a write queued by one task is
    # committed while another task keeps the trio thread busy without yielding (a trio task
    # that started the commits would wait for the busy task to yield).
    path = tmp_path / "s.sqlite3"
    async with SqliteStore.open(path) as store:
        await store.insert("c", {"_id": "first"})  # the table exists
        raw = sqlite3.connect(path)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.insert, "c", {"_id": "busy"})
                await trio.testing.wait_all_tasks_blocked()  # it is queued and waits
                deadline, seen = time.monotonic() + 10, False
                while not seen and time.monotonic() < deadline:  # never yields to trio
                    seen = raw.execute("SELECT 1 FROM c_c WHERE id = 'busy'").fetchone() is not None
                assert seen, "the write was not committed while the trio thread was busy"
        finally:
            raw.close()
        assert await store.get("c", "busy") == {"_id": "busy"}


async def test_a_commit_that_fails_outright_fails_its_writers_and_the_next_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tektree.persistence._sqlite as sqlite_module

    commit_batch = sqlite_module.commit_batch
    failures = [RuntimeError("disk on fire")]

    def failing(*args: Any) -> Any:
        if failures:
            raise failures.pop()  # before it ran anything or touched a request
        return commit_batch(*args)

    monkeypatch.setattr(sqlite_module, "commit_batch", failing)
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        with pytest.raises(RuntimeError, match="disk on fire"):
            await store.insert("c", {"_id": "lost"})
        await store.insert("c", {"_id": "kept"})  # the writer thread goes on
        assert await store.get("c", "lost") is None
        assert await store.count("c") == 1


async def test_cancelled_queued_write_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = WriterHold(monkeypatch)
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.insert("held", {"_id": "warm"})
        async with trio.open_nursery() as nursery:
            await writer.hold(store, nursery, "holder")  # what follows stays queued
            for i in range(3):
                nursery.start_soon(store.insert, "c", {"_id": f"first{i}"})
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()
                await store.insert("c", {"_id": "cancelled"})
            writer.release()
        assert await store.get("c", "cancelled") is None
        assert await store.count("c") == 3


async def test_write_cancelled_in_flight_commits_then_raises_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tektree.persistence._sqlite as sqlite_module

    entered, release = threading.Event(), threading.Event()
    commit_batch = sqlite_module.commit_batch

    def slow_commit(*args: Any) -> Any:
        entered.set()
        release.wait(30)
        return commit_batch(*args)

    monkeypatch.setattr(sqlite_module, "commit_batch", slow_commit)
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        outcome: list[str] = []

        async def writer(scope: trio.CancelScope) -> None:
            with scope:
                await store.insert("c", {"_id": "in-flight"})
                outcome.append("returned")
            outcome.append("cancelled" if scope.cancelled_caught else "done")

        scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer, scope)
            assert await trio.to_thread.run_sync(entered.wait, 10)  # its batch is in the thread
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            assert outcome == []  # still waiting for the commit it is part of
            release.set()
        assert outcome == ["cancelled"]
        assert await store.get("c", "in-flight") == {"_id": "in-flight"}


async def test_documents_must_be_json(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        with pytest.raises(InvalidDocument, match="JSON"):
            await store.insert("c", {"_id": "1", "when": object()})
        with pytest.raises(InvalidDocument, match="_id must be a non-empty str"):
            await store.insert("c", {"_id": 5})
        assert await store.count("c") == 0


async def test_documents_keep_the_json_encoders_rules(tmp_path: Path) -> None:
    # orjson encodes the documents it can encode exactly; the rest keep json's behaviour:
    # NaN and infinities, UUIDs and datetimes refused (orjson would write null or a string),
    # ints beyond 64 bits and non-str keys of nested objects stored as json writes them.
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        for value in (float("nan"), [1, float("inf")], uuid.uuid4(), dt.datetime.now(dt.UTC)):
            with pytest.raises(InvalidDocument, match="JSON"):
                await store.insert("c", {"_id": "bad", "v": value})
        await store.insert("c", {"_id": "big", "v": 2**70, "m": {1: "one"}, "t": (1, 2)})
        assert await store.get("c", "big") == {
            "_id": "big", "v": 2**70, "m": {"1": "one"}, "t": [1, 2]
        }
        assert await store.count("c") == 1


async def test_top_level_keys_are_checked_on_every_document(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.insert("c", {"_id": "1", "a": 1})
        await store.insert("c", {"_id": "2", "a": 2})  # the same keys: checked once, stored
        for bad in ({"_id": "3", "$a": 1}, {"_id": "3", "a.b": 1}, {"_id": "3", 5: 1}):
            with pytest.raises(InvalidDocument, match="top-level key"):
                await store.insert("c", bad)
        assert await store.count("c") == 2


async def test_a_violation_in_insert_many_names_the_document_that_made_it(
    tmp_path: Path,
) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.ensure_index("c", IndexSpec(fields=[("k", 1)], unique=True, name="k"))
        await store.insert("c", {"_id": "0", "k": "taken"})
        docs = [{"_id": "1", "k": "a"}, {"_id": "2", "k": "taken"}, {"_id": "3", "k": "b"}]
        with pytest.raises(DuplicateKeyError) as info:
            await store.insert_many("c", docs)
        assert (info.value.index, info.value.key) == ("k", {"k": "taken"})
        with pytest.raises(InvalidDocument, match="JSON"):
            await store.insert_many("c", [{"_id": "4"}, {"_id": "5", "x": object()}])
        assert await store.count("c") == 1
        assert await store.insert_many("c", docs[::2]) == ["1", "3"]


async def test_updates_never_change_the_callers_values(tmp_path: Path) -> None:
    # The writer puts an update's values in the stored document uncopied unless two of its
    # fields overlap, where writing one would change the value another put there.
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        value = {"b": [1], "n": 1}
        await store.update("c", "x", {"$set": {"a": value}}, upsert=True)
        await store.update("c", "x", {"$set": {"a": value}, "$push": {"a.b": 2},
                                      "$inc": {"a.n": 1}})
        assert value == {"b": [1], "n": 1}
        assert await store.get("c", "x") == {"_id": "x", "a": {"b": [1, 2], "n": 2}}
        items = [[1], [2]]
        await store.update("c", "x", {"$set": {"items": items}, "$push": {"more": items[0]}})
        await store.update("c", "x", {"$push": {"more": 3}})
        assert items == [[1], [2]]
        doc = await store.get("c", "x")
        assert doc is not None and (doc["items"], doc["more"]) == ([[1], [2]], [[1], 3])


async def test_closed_and_unopenable_stores(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        pass
    with pytest.raises(StoreClosed, match="closed"):
        await store.get("c", "1")
    (tmp_path / "a_dir.sqlite3").mkdir()
    with pytest.raises(StoreUnavailable, match=r"a_dir\.sqlite3"):
        async with SqliteStore.open(tmp_path / "a_dir.sqlite3"):
            pass


async def test_concurrent_gets_share_thread_hops_and_each_gets_its_own_copy(
    tmp_path: Path,
) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.insert_many("a", [{"_id": f"k{i}", "n": i} for i in range(50)])
        await store.insert_many("b", [{"_id": f"k{i}", "m": -i} for i in range(10)])
        batches_before = store._reader.batches
        wanted = [(c, f"k{i}") for i in range(60) for c in ("a", "b", "nosuch")] * 2
        got: dict[int, object] = {}

        async def get(index: int, collection: str, doc_id: str) -> None:
            got[index] = await store.get(collection, doc_id)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for index, (collection, doc_id) in enumerate(wanted):
                    nursery.start_soon(get, index, collection, doc_id)
        for index, (collection, doc_id) in enumerate(wanted):
            i = int(doc_id[1:])
            expected = {
                "a": {"_id": doc_id, "n": i} if i < 50 else None,
                "b": {"_id": doc_id, "m": -i} if i < 10 else None,
                "nosuch": None,
            }[collection]
            assert got[index] == expected, (collection, doc_id)
        assert store._reader.batches - batches_before < len(wanted) / 10  # batched
        first, second = got[0], got[len(wanted) // 2]  # ("a", "k0") twice, in one batch
        assert first == second and first is not second
        assert store.statistics().operations["get"].count == len(wanted)


async def test_cancelled_get_raises_at_once_and_the_store_goes_on(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.insert("c", {"_id": "1"})
        for _ in range(20):  # cancelled while queued or while its batch is in a thread
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    for _ in range(5):
                        nursery.start_soon(store.get, "c", "1")
                    await trio.lowlevel.checkpoint()
                    scope.cancel()
            assert scope.cancelled_caught
        assert store._reader.queued == []
        assert await store.get("c", "1") == {"_id": "1"}


async def test_gets_waiting_when_the_store_closes_fail_with_store_closed(
    tmp_path: Path,
) -> None:
    outcomes: list[str] = []

    async def get(store: SqliteStore) -> None:
        try:
            await store.get("c", "1")
            outcomes.append("read")
        except StoreClosed:
            outcomes.append("closed")

    async with trio.open_nursery() as nursery, SqliteStore.open(tmp_path / "s.sqlite3") as store:
        for _ in range(50):
            nursery.start_soon(get, store)
        await trio.testing.wait_all_tasks_blocked()
    assert len(outcomes) == 50 and set(outcomes) <= {"read", "closed"}
