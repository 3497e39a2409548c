"""SqliteStore specifics: durability settings, indexes in SQL, group commit, cancellation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

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


async def test_group_commit_isolates_one_writers_violation(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        await store.ensure_index("u", IndexSpec(fields=[("email", 1)], unique=True, name="email"))
        await store.insert("u", {"_id": "taken", "email": "dup@x.io"})
        outcomes: dict[int, str] = {}

        async def write(i: int) -> None:
            email = "dup@x.io" if i == 7 else f"{i}@x.io"
            try:
                await store.insert("u", {"_id": f"u{i}", "email": email})
                outcomes[i] = "ok"
            except DuplicateKeyError as exc:
                outcomes[i] = f"dup {exc.key}"

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(write, i)
        assert outcomes.pop(7) == "dup {'email': 'dup@x.io'}"
        assert set(outcomes.values()) == {"ok"}
        assert await store.count("u") == 40
        stats = store.statistics()
        assert stats.largest_batch > 1  # concurrent writers shared transactions
        assert stats.batched_writes == stats.operations["insert"].count + 1


async def test_cancelled_queued_write_changes_nothing(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(store.insert, "c", {"_id": f"first{i}"})
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()
                await store.insert("c", {"_id": "cancelled"})
        assert await store.get("c", "cancelled") is None
        assert await store.count("c") == 3


async def test_documents_must_be_json(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        with pytest.raises(InvalidDocument, match="JSON"):
            await store.insert("c", {"_id": "1", "when": object()})
        with pytest.raises(InvalidDocument, match="_id must be a non-empty str"):
            await store.insert("c", {"_id": 5})
        assert await store.count("c") == 0


async def test_closed_and_unopenable_stores(tmp_path: Path) -> None:
    async with SqliteStore.open(tmp_path / "s.sqlite3") as store:
        pass
    with pytest.raises(StoreClosed, match="closed"):
        await store.get("c", "1")
    (tmp_path / "a_dir.sqlite3").mkdir()
    with pytest.raises(StoreUnavailable, match=r"a_dir\.sqlite3"):
        async with SqliteStore.open(tmp_path / "a_dir.sqlite3"):
            pass
