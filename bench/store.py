"""``python -m bench store``: SqliteStore beside raw ``sqlite3`` doing the same statements.

Each figure runs the store and its ceiling in the same process, interleaved, best of a few
rounds. Both sides use the same file settings (WAL, ``synchronous=FULL``) and the same SQL (JSON
text in ``c_<collection>``, ``json_extract`` expression indexes), so the ratio is the cost of the
store's layer: trio, worker threads, validation, group commit.

- ``insert_throughput``: 50 concurrent tasks each awaiting ``store.insert`` (group-committed) vs
  raw sqlite3 with one commit per insert, the same durability per acknowledged write.
- ``point_read_throughput``: 50 concurrent tasks doing ``store.get`` vs a raw sequential loop of
  ``SELECT doc ... WHERE id = ?`` + ``json.loads``.
- ``append_throughput``: ``Journal.append`` of one event from 50 concurrent writers (one actor
  each) vs raw sqlite3 inserting the same row with one commit per append.
- ``recovery_ms``: ``Journal.recover`` of an actor with a snapshot and 1,000 events after it vs
  the same two SELECTs with raw sqlite3 (lower is better).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import trio

from bench._harness import Deadline, Figure, Progress
from tektree.persistence import (
    Journal,
    JournalEvent,
    SqliteStore,
    StoreSettings,
    ensure_kernel_indexes,
    open_store,
)

CONCURRENCY = 50


@attrs.frozen
class Counts:
    inserts: int
    reads: int
    appends: int
    rounds: int
    seconds_per_side: float


FULL = Counts(inserts=6_000, reads=40_000, appends=6_000, rounds=3, seconds_per_side=6.0)
QUICK = Counts(inserts=1_500, reads=8_000, appends=1_500, rounds=2, seconds_per_side=2.0)


def _raw(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute('CREATE TABLE IF NOT EXISTS "c_docs" (id TEXT PRIMARY KEY, doc TEXT NOT NULL)')
    return conn


def _doc(i: int) -> dict[str, object]:
    return {"_id": f"d{i:07d}", "user_id": f"u{i % 97}", "amount": i % 50, "source": "bench"}


async def _concurrently(
    total: int, deadline: Deadline, op: Callable[[int], Awaitable[None]]
) -> int:
    """Run ``op(i)`` for i < total from CONCURRENCY tasks; returns how many ran in time."""
    done = 0

    async def worker(k: int) -> None:
        nonlocal done
        for i in range(k, total, CONCURRENCY):
            if deadline.expired():
                return
            await op(i)
            done += 1

    async with trio.open_nursery() as nursery:
        for k in range(CONCURRENCY):
            nursery.start_soon(worker, k)
    return done


async def _store_inserts(dir_: Path, n: int, seconds: float) -> float:
    async with SqliteStore.open(dir_ / "ins.sqlite3") as store:
        start = time.perf_counter()

        async def insert(i: int) -> None:
            await store.insert("docs", _doc(i))

        done = await _concurrently(n, Deadline(seconds), insert)
        return done / (time.perf_counter() - start)


def _raw_inserts(dir_: Path, n: int, seconds: float) -> float:
    conn = _raw(dir_ / "raw_ins.sqlite3")
    deadline, done = Deadline(seconds), 0
    start = time.perf_counter()
    for i in range(n):
        if deadline.expired():
            break
        doc = _doc(i)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute('INSERT INTO "c_docs" (id, doc) VALUES (?, ?)', (doc["_id"], json.dumps(doc)))
        conn.execute("COMMIT")
        done += 1
    conn.close()
    return done / (time.perf_counter() - start)


async def _store_reads(path: Path, n: int, rows: int, seconds: float) -> float:
    async with SqliteStore.open(path) as store:

        async def get(i: int) -> None:
            doc = await store.get("docs", f"d{(i * 7919) % rows:07d}")
            assert doc is not None

        start = time.perf_counter()
        done = await _concurrently(n, Deadline(seconds), get)
        return done / (time.perf_counter() - start)


def _raw_reads(path: Path, n: int, rows: int, seconds: float) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    deadline, done = Deadline(seconds), 0
    start = time.perf_counter()
    for i in range(n):
        if deadline.expired():
            break
        key = f"d{(i * 7919) % rows:07d}"
        (text,) = conn.execute('SELECT doc FROM "c_docs" WHERE id = ?', (key,)).fetchone()
        json.loads(text)
        done += 1
    conn.close()
    return done / (time.perf_counter() - start)


async def _store_appends(dir_: Path, n: int, seconds: float) -> float:
    async with open_store(StoreSettings(sqlite_path=dir_ / "app.sqlite3")) as store:
        journal = Journal(store)

        async def append(i: int) -> None:
            ev = JournalEvent(event_id=f"e{i}", event_type="xp", data={"amount": i % 50})
            await journal.append(f"actor{i % CONCURRENCY}", [ev])

        start = time.perf_counter()
        done = await _concurrently(n, Deadline(seconds), append)
        return done / (time.perf_counter() - start)


_JOURNAL_SQL = (
    'CREATE TABLE IF NOT EXISTS "c_journal" (id TEXT PRIMARY KEY, doc TEXT NOT NULL)',
    'CREATE UNIQUE INDEX IF NOT EXISTS j1 ON "c_journal" '
    "(json_extract(doc, '$.actor_id'), json_extract(doc, '$.seq'))",
    'CREATE UNIQUE INDEX IF NOT EXISTS j2 ON "c_journal" '
    "(json_extract(doc, '$.actor_id'), json_extract(doc, '$.event_id'))",
)


def _raw_appends(dir_: Path, n: int, seconds: float) -> float:
    conn = _raw(dir_ / "raw_app.sqlite3")
    for sql in _JOURNAL_SQL:
        conn.execute(sql)
    deadline, done = Deadline(seconds), 0
    seqs: dict[str, int] = {}
    start = time.perf_counter()
    for i in range(n):
        if deadline.expired():
            break
        actor = f"actor{i % CONCURRENCY}"
        seq = seqs[actor] = seqs.get(actor, 0) + 1
        doc = {"_id": f"{actor}#{seq}", "actor_id": actor, "seq": seq, "event_id": f"e{i}",
               "event_type": "xp", "data": {"amount": i % 50}}  # fmt: skip
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            'INSERT INTO "c_journal" (id, doc) VALUES (?, ?)', (doc["_id"], json.dumps(doc))
        )
        conn.execute("COMMIT")
        done += 1
    conn.close()
    return done / (time.perf_counter() - start)


async def _prepare_recovery(path: Path) -> None:
    async with open_store(StoreSettings(sqlite_path=path)) as store:
        journal = Journal(store)
        batch = [JournalEvent(event_id=f"e{i}", event_type="xp", data={"v": i}) for i in range(100)]
        await journal.append("hero", batch)
        await journal.save_snapshot("hero", 100, {"total": 4950, "items": list(range(50))})
        for chunk in range(10):
            events = [
                JournalEvent(event_id=f"e{i}", event_type="xp", data={"v": i})
                for i in range(100 + chunk * 100, 200 + chunk * 100)
            ]
            await journal.append("hero", events)


async def _store_recovery_ms(path: Path, rounds: int) -> float:
    async with SqliteStore.open(path) as store:
        await ensure_kernel_indexes(store)
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            state, seq, events = await Journal(store).recover("hero")
            best = min(best, (time.perf_counter() - start) * 1000)
            assert state is not None and seq == 100 and len(events) == 1000
        return best


def _raw_recovery_ms(path: Path, rounds: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        (snap,) = conn.execute('SELECT doc FROM "c_snapshots" WHERE id = ?', ("hero",)).fetchone()
        seq = json.loads(snap)["seq"]
        rows = conn.execute(
            "SELECT doc FROM \"c_journal\" WHERE json_extract(doc, '$.actor_id') = ? AND "
            "json_extract(doc, '$.seq') >= ? ORDER BY json_extract(doc, '$.seq')",
            ("hero", seq + 1),
        ).fetchall()
        events = [json.loads(t) for (t,) in rows]
        best = min(best, (time.perf_counter() - start) * 1000)
        assert len(events) == 1000
    conn.close()
    return best


async def run(quick: bool, progress: Progress) -> list[Figure]:
    counts = QUICK if quick else FULL
    root = Path(tempfile.mkdtemp(prefix="tektree-bench-store-"))
    best: dict[str, list[float]] = {}
    try:
        reads_db = root / "reads.sqlite3"
        async with SqliteStore.open(reads_db) as store:
            rows = counts.reads // 4
            for start in range(0, rows, 1000):
                await store.insert_many("docs", [_doc(i) for i in range(start, start + 1000)])
        await _prepare_recovery(root / "recovery.sqlite3")
        secs = counts.seconds_per_side
        for r in range(1, counts.rounds + 1):
            tag = f"round {r}/{counts.rounds}"
            round_dir = root / f"r{r}"
            round_dir.mkdir()
            progress.step(f"insert_throughput: raw sqlite3 ({tag})")
            best.setdefault("insert_raw", []).append(_raw_inserts(round_dir, counts.inserts, secs))
            progress.step(f"insert_throughput: SqliteStore ({tag})")
            best.setdefault("insert", []).append(
                await _store_inserts(round_dir, counts.inserts, secs)
            )
            progress.step(f"point_read_throughput: raw sqlite3 ({tag})")
            best.setdefault("read_raw", []).append(_raw_reads(reads_db, counts.reads, rows, secs))
            progress.step(f"point_read_throughput: SqliteStore ({tag})")
            best.setdefault("read", []).append(
                await _store_reads(reads_db, counts.reads, rows, secs)
            )
            progress.step(f"append_throughput: raw sqlite3 ({tag})")
            best.setdefault("append_raw", []).append(_raw_appends(round_dir, counts.appends, secs))
            progress.step(f"append_throughput: Journal ({tag})")
            best.setdefault("append", []).append(
                await _store_appends(round_dir, counts.appends, secs)
            )
            progress.step(f"recovery_ms ({tag})")
            best.setdefault("recovery_raw", []).append(
                _raw_recovery_ms(root / "recovery.sqlite3", 5)
            )
            best.setdefault("recovery", []).append(
                await _store_recovery_ms(root / "recovery.sqlite3", 5)
            )
            shutil.rmtree(round_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        Figure(
            name="insert_throughput",
            value=max(best["insert"]),
            unit="docs/s",
            better="higher",
            baseline=max(best["insert_raw"]),
            baseline_name="raw sqlite3, one commit per insert (WAL, synchronous=FULL)",
        ),
        Figure(
            name="point_read_throughput",
            value=max(best["read"]),
            unit="reads/s",
            better="higher",
            baseline=max(best["read_raw"]),
            baseline_name="raw sqlite3 SELECT by id + json.loads, sequential",
            target_ratio=0.5,
            target=">= 0.5x raw sqlite3",
        ),
        Figure(
            name="append_throughput",
            value=max(best["append"]),
            unit="events/s",
            better="higher",
            baseline=max(best["append_raw"]),
            baseline_name="raw sqlite3, one commit per append (WAL, synchronous=FULL)",
            target_ratio=0.5,
            target=">= 0.5x raw sqlite3",
        ),
        Figure(
            name="recovery_ms",
            value=min(best["recovery"]),
            unit="ms",
            better="lower",
            baseline=min(best["recovery_raw"]),
            baseline_name="raw sqlite3: snapshot + 1,000 events SELECT + json.loads",
        ),
    ]
