"""The job backends' contract, the same tests on each: the store (SQLite, mongomock) and
Redis (a real ``redis-server``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import mongomock
import pytest

from tektree.cluster import open_redis_link
from tektree.jobs import DEAD, DONE, QUEUED, RUNNING, Job, JobBackend, StoreJobBackend
from tektree.jobs._redis import RedisJobBackend
from tektree.persistence import StoreSettings, open_store
from tektree.testing.redis import open_redis_server, require_redis_server

NOW = 1_767_225_600_000
LEASE = 10_000


@pytest.fixture(params=["sqlite", "mongomock", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[JobBackend]:
    kind = request.param
    if kind == "sqlite":
        async with open_store(StoreSettings(sqlite_path=f"{tmp_path}/jobs.sqlite3")) as store:
            b: JobBackend = StoreJobBackend(store)
            await b.setup()
            yield b
    elif kind == "mongomock":
        async with open_store(StoreSettings(backend="mongodb"),
                              mongo_client=mongomock.MongoClient()) as store:
            b = StoreJobBackend(store)
            await b.setup()
            yield b
    else:
        require_redis_server()
        async with open_redis_server() as server, open_redis_link(server.url) as link:
            b = RedisJobBackend(link)
            await b.setup()
            yield b


def _job(job_id: str, job_type: str = "t.a", run_at: int = NOW, **payload: object) -> Job:
    return Job(id=job_id, type=job_type, payload=dict(payload), status=QUEUED, run_at_ms=run_at,
               created_ms=NOW)


async def test_enqueue_dedupes_on_the_id(backend: JobBackend) -> None:
    first = await backend.enqueue(_job("j1", n=1))
    again = await backend.enqueue(_job("j1", n=2))
    assert first.created and not again.created
    assert again.job.payload == {"n": 1}
    stored = await backend.get("j1")
    assert stored is not None and (stored.status, stored.payload) == (QUEUED, {"n": 1})


async def test_claim_takes_ready_jobs_of_one_type_in_run_at_order(backend: JobBackend) -> None:
    await backend.enqueue(_job("late", run_at=NOW + 5000))
    await backend.enqueue(_job("second", run_at=NOW - 10))
    await backend.enqueue(_job("first", run_at=NOW - 20))
    await backend.enqueue(_job("other", job_type="t.b"))
    claimed = await backend.claim("t.a", 10, owner="n1", now_ms=NOW, lease_ms=LEASE)
    assert [j.id for j in claimed] == ["first", "second"]
    assert all(j.status == RUNNING and j.attempts == 1 and j.claim for j in claimed)
    assert await backend.claim("t.a", 10, owner="n2", now_ms=NOW, lease_ms=LEASE) == []
    [late] = await backend.claim("t.a", 10, owner="n2", now_ms=NOW + 5000, lease_ms=LEASE)
    assert late.id == "late" and late.owner == "n2"


async def test_only_the_current_claim_moves_a_job(backend: JobBackend) -> None:
    await backend.enqueue(_job("j"))
    [run] = await backend.claim("t.a", 1, owner="n1", now_ms=NOW, lease_ms=LEASE)
    assert await backend.complete_many([(run, {"ok": 1})], now_ms=NOW + 1, keep_ms=60_000) == 1
    assert await backend.complete_many([(run, {"ok": 2})], now_ms=NOW + 2, keep_ms=60_000) == 0
    assert not await backend.retry(run, run_at_ms=NOW, error="late")
    done = await backend.get("j")
    assert done is not None and (done.status, done.result) == (DONE, {"ok": 1})
    assert not (await backend.enqueue(_job("j"))).created  # finished: still deduped


async def test_retry_then_bury_then_requeue(backend: JobBackend) -> None:
    await backend.enqueue(_job("j"))
    [run] = await backend.claim("t.a", 1, owner="n1", now_ms=NOW, lease_ms=LEASE)
    assert await backend.retry(run, run_at_ms=NOW + 1000, error="boom 1")
    assert await backend.claim("t.a", 1, owner="n1", now_ms=NOW + 999, lease_ms=LEASE) == []
    [run] = await backend.claim("t.a", 1, owner="n1", now_ms=NOW + 1000, lease_ms=LEASE)
    assert (run.attempts, run.last_error) == (2, "boom 1")
    assert await backend.bury(run, now_ms=NOW + 1001, error="boom 2")
    [dead] = await backend.dead(limit=10, offset=0)
    assert (dead.id, dead.status, dead.attempts, dead.last_error) == ("j", DEAD, 2, "boom 2")
    assert await backend.requeue("j", now_ms=NOW + 2000)
    assert not await backend.requeue("j", now_ms=NOW + 2000)
    assert await backend.dead(limit=10, offset=0) == []
    [run] = await backend.claim("t.a", 1, owner="n2", now_ms=NOW + 2000, lease_ms=LEASE)
    assert run.attempts == 1


async def test_release_gives_the_attempt_back(backend: JobBackend) -> None:
    await backend.enqueue(_job("j"))
    [run] = await backend.claim("t.a", 1, owner="n1", now_ms=NOW, lease_ms=LEASE)
    assert await backend.release(run, now_ms=NOW + 5)
    [run] = await backend.claim("t.a", 1, owner="n2", now_ms=NOW + 5, lease_ms=LEASE)
    assert run.attempts == 1


async def test_expired_leases_are_reaped_and_renewals_keep_them(backend: JobBackend) -> None:
    for job_id in ("kept", "lost"):
        await backend.enqueue(_job(job_id))
    runs = await backend.claim("t.a", 2, owner="n1", now_ms=NOW, lease_ms=LEASE)
    kept = next(r for r in runs if r.id == "kept")
    assert await backend.renew([kept], lease_until_ms=NOW + 3 * LEASE) == []
    assert await backend.reap(now_ms=NOW + LEASE - 1, limit=10) == 0
    assert await backend.reap(now_ms=NOW + LEASE + 1, limit=10) == 1
    lost = await backend.get("lost")
    assert lost is not None and lost.status == QUEUED and "expired" in (lost.last_error or "")
    [again] = await backend.claim("t.a", 5, owner="n2", now_ms=NOW + LEASE + 1, lease_ms=LEASE)
    assert (again.id, again.attempts) == ("lost", 2)  # the vanished run counts
    stale = next(r for r in runs if r.id == "lost")
    assert await backend.renew([stale], lease_until_ms=NOW + 5 * LEASE) == ["lost"]
    assert await backend.complete_many([(stale, None)], now_ms=NOW, keep_ms=1000) == 0
