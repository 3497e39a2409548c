"""What a job queue backend does, and the embedded one: jobs in the document store.

Every transition of a running job is conditional on its ``claim`` (a token written when the run
was claimed), so a worker whose claim lapsed (it stalled past its lease, and the job was
handed to another worker) changes nothing: only the current claim completes, retries, buries
or releases a job.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any, Final, Protocol

import attrs

from tektree.jobs._model import DEAD, DONE, JOB_STATUSES, QUEUED, RUNNING, Job
from tektree.persistence import DocumentStore, DuplicateKeyError, IndexSpec

__all__ = ["JOBS", "Enqueued", "JobBackend", "StoreJobBackend"]

JOBS: Final = "jobs"
INDEXES: Final = (
    (JOBS, IndexSpec(fields=(("type", 1), ("status", 1), ("run_at_ms", 1)), name="jobs_ready")),
    (JOBS, IndexSpec(fields=(("status", 1), ("lease_until_ms", 1)), name="jobs_leases")),
    (JOBS, IndexSpec(fields=(("status", 1), ("dead_ms", 1)), name="jobs_dead")),
    (JOBS, IndexSpec(fields=(("status", 1), ("finished_ms", 1)), name="jobs_finished")),
)


@attrs.frozen(kw_only=True)
class Enqueued:
    """The outcome of an enqueue: the job, and whether this call created it (False: a job
    with that id already existed and is returned as it is)."""

    job: Job
    created: bool


class JobBackend(Protocol):
    """Where jobs live (the store in embedded mode, Redis in a cluster)."""

    async def setup(self) -> None: ...

    async def enqueue(self, job: Job) -> Enqueued: ...

    async def claim(
        self, job_type: str, limit: int, *, owner: str, now_ms: int, lease_ms: int
    ) -> list[Job]: ...

    async def complete_many(
        self, done: Sequence[tuple[Job, Any]], *, now_ms: int, keep_ms: int
    ) -> int: ...

    async def retry(self, job: Job, *, run_at_ms: int, error: str) -> bool: ...

    async def bury(self, job: Job, *, now_ms: int, error: str) -> bool: ...

    async def release(self, job: Job, *, now_ms: int) -> bool: ...

    async def renew(self, jobs: Sequence[Job], *, lease_until_ms: int) -> list[str]: ...

    async def reap(self, *, now_ms: int, limit: int) -> int: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def dead(self, *, limit: int, offset: int) -> list[Job]: ...

    async def requeue(self, job_id: str, *, now_ms: int) -> bool: ...

    async def purge(self, *, finished_before_ms: int) -> int: ...

    async def counts(self) -> dict[str, int]: ...


def new_claim() -> str:
    return secrets.token_hex(8)


def job_from_document(doc: dict[str, Any]) -> Job:
    return Job(
        id=doc["_id"], type=doc["type"], payload=doc.get("payload") or {},
        status=doc["status"], attempts=int(doc.get("attempts", 0)),
        run_at_ms=int(doc.get("run_at_ms", 0)), created_ms=int(doc.get("created_ms", 0)),
        owner=doc.get("owner"), claim=doc.get("claim"),
        lease_until_ms=int(doc.get("lease_until_ms", 0)), last_error=doc.get("last_error"),
        finished_ms=doc.get("finished_ms"), dead_ms=doc.get("dead_ms"), result=doc.get("result"),
    )


def job_document(job: Job) -> dict[str, Any]:
    return {
        "_id": job.id, "type": job.type, "payload": job.payload, "status": job.status,
        "attempts": job.attempts, "run_at_ms": job.run_at_ms, "created_ms": job.created_ms,
        "owner": None, "claim": None, "lease_until_ms": 0, "last_error": None, "version": 0,
    }


def small_result(result: Any) -> Any:
    """What is kept of a handler's return value: JSON, at most 16 KB, else a note."""
    try:
        text = json.dumps(result, separators=(",", ":"), allow_nan=False, default=str)
    except (TypeError, ValueError):
        return {"note": f"result of type {type(result).__name__} not kept"}
    if len(text) > 16 * 1024:
        return {"note": f"result of {len(text)} bytes not kept"}
    return json.loads(text)


class StoreJobBackend:
    """Jobs in the ``jobs`` collection of a :class:`DocumentStore` (embedded mode)."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def setup(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    async def enqueue(self, job: Job) -> Enqueued:
        try:
            await self.store.insert(JOBS, job_document(job))
        except DuplicateKeyError:
            existing = await self.get(job.id)
            if existing is None:  # deleted in between (purged): enqueue again
                return await self.enqueue(job)
            return Enqueued(job=existing, created=False)
        return Enqueued(job=job, created=True)

    async def claim(
        self, job_type: str, limit: int, *, owner: str, now_ms: int, lease_ms: int
    ) -> list[Job]:
        page = await self.store.find(
            JOBS, {"type": job_type, "status": QUEUED, "run_at_ms": {"$lte": now_ms}},
            sort=[("run_at_ms", 1)], limit=limit,
        )
        if not page.items:
            return []
        # One conditional update claims them all (still queued), tagged with this pass's
        # token; one read returns those this worker won.
        ids = [doc["_id"] for doc in page.items]
        claim, lease_until = new_claim(), now_ms + lease_ms
        won = await self.store.update(JOBS, {"_id": {"$in": ids}, "status": QUEUED}, {
            "$set": {"status": RUNNING, "owner": owner, "claim": claim,
                     "lease_until_ms": lease_until, "started_ms": now_ms},
            "$inc": {"attempts": 1, "version": 1},
        })
        if won == len(ids):  # the common case: all of them, as read plus the claim
            for doc in page.items:
                doc.update(status=RUNNING, owner=owner, claim=claim,
                           lease_until_ms=lease_until, attempts=doc["attempts"] + 1)
            return [job_from_document(doc) for doc in page.items]
        if not won:
            return []
        mine = await self.store.find(JOBS, {"_id": {"$in": ids}, "claim": claim},
                                     sort=[("run_at_ms", 1)])
        return [job_from_document(doc) for doc in mine.items]

    async def _transition(self, job: Job, changes: dict[str, Any],
                          inc: dict[str, int] | None = None) -> bool:
        update: dict[str, Any] = {"$set": changes, "$inc": {"version": 1, **(inc or {})}}
        matched = await self.store.update(
            JOBS, {"_id": job.id, "claim": job.claim, "status": RUNNING}, update)
        return bool(matched)

    async def complete_many(
        self, done: Sequence[tuple[Job, Any]], *, now_ms: int, keep_ms: int
    ) -> int:
        """Mark several runs succeeded in one unit; how many were still held."""
        if not done:
            return 0
        finished = {"status": DONE, "finished_ms": now_ms, "owner": None, "claim": None,
                    "lease_until_ms": 0, "last_error": None}
        bare: dict[str | None, list[str]] = {}  # runs without a result, by claim token
        async with self.store.unit() as unit:
            for job, result in done:
                if result is None:
                    bare.setdefault(job.claim, []).append(job.id)
                    continue
                unit.update(JOBS, {"_id": job.id, "claim": job.claim, "status": RUNNING}, {
                    "$set": {**finished, "result": small_result(result)},
                    "$inc": {"version": 1}})
            for claim, ids in bare.items():  # one write per claim pass
                unit.update(JOBS, {"_id": {"$in": ids}, "claim": claim, "status": RUNNING},
                            {"$set": {**finished, "result": None}, "$inc": {"version": 1}})
        return sum(matched for matched in unit.results if isinstance(matched, int))

    async def retry(self, job: Job, *, run_at_ms: int, error: str) -> bool:
        return await self._transition(job, {
            "status": QUEUED, "run_at_ms": run_at_ms, "last_error": error, "owner": None,
            "claim": None, "lease_until_ms": 0})

    async def bury(self, job: Job, *, now_ms: int, error: str) -> bool:
        return await self._transition(job, {
            "status": DEAD, "dead_ms": now_ms, "last_error": error, "owner": None,
            "claim": None, "lease_until_ms": 0})

    async def release(self, job: Job, *, now_ms: int) -> bool:
        return await self._transition(job, {
            "status": QUEUED, "run_at_ms": now_ms, "owner": None, "claim": None,
            "lease_until_ms": 0}, inc={"attempts": -1})

    async def renew(self, jobs: Sequence[Job], *, lease_until_ms: int) -> list[str]:
        if not jobs:
            return []
        async with self.store.unit() as unit:
            for job in jobs:
                unit.update(JOBS, {"_id": job.id, "claim": job.claim, "status": RUNNING},
                            {"$set": {"lease_until_ms": lease_until_ms}})
        return [job.id for job, matched in zip(jobs, unit.results, strict=True) if not matched]

    async def reap(self, *, now_ms: int, limit: int) -> int:
        """Jobs whose worker vanished (lease passed): queued again, now."""
        page = await self.store.find(
            JOBS, {"status": RUNNING, "lease_until_ms": {"$lt": now_ms}},
            sort=[("lease_until_ms", 1)], limit=limit)
        if not page.items:
            return 0
        async with self.store.unit() as unit:
            for doc in page.items:
                unit.update(JOBS, {"_id": doc["_id"], "version": doc["version"]}, {
                    "$set": {"status": QUEUED, "run_at_ms": now_ms, "owner": None,
                             "claim": None, "lease_until_ms": 0,
                             "last_error": f"lease of {doc.get('owner')} expired"},
                    "$inc": {"version": 1}})
        return sum(1 for matched in unit.results if matched)

    async def get(self, job_id: str) -> Job | None:
        doc = await self.store.get(JOBS, job_id)
        return None if doc is None else job_from_document(doc)

    async def dead(self, *, limit: int, offset: int) -> list[Job]:
        page = await self.store.find(JOBS, {"status": DEAD}, sort=[("dead_ms", 1)],
                                     limit=limit + offset)
        return [job_from_document(doc) for doc in page.items[offset:]]

    async def requeue(self, job_id: str, *, now_ms: int) -> bool:
        return bool(await self.store.update(JOBS, {"_id": job_id, "status": DEAD}, {
            "$set": {"status": QUEUED, "attempts": 0, "run_at_ms": now_ms, "dead_ms": None},
            "$inc": {"version": 1}}))

    async def purge(self, *, finished_before_ms: int) -> int:
        return await self.store.delete(
            JOBS, {"status": DONE, "finished_ms": {"$lt": finished_before_ms}})

    async def counts(self) -> dict[str, int]:
        return {status: await self.store.count(JOBS, {"status": status})
                for status in JOB_STATUSES}
