"""The cluster's job queue: jobs in Redis, every transition one Lua script (atomic).

Keys, under ``<prefix>:jobs:``:

- ``job:<id>``: a hash (type, payload JSON, status, attempts, run_at_ms, owner, claim,
  lease_until_ms, last_error, result JSON...). A finished job's hash expires after the
  retention (``keep_ms``): until then, enqueueing its id again is a no-op (dedupe).
- ``queue:<type>``: a sorted set of queued ids by ``run_at_ms`` (ready and delayed alike).
- ``running``: a sorted set of running ids by lease end; :meth:`reap` puts back the jobs of a
  worker that vanished.
- ``dead``: a sorted set of dead-lettered ids by the time they died.

As for reminder leases (:mod:`tektree.cluster.leases`), scripts touch keys of several jobs:
on Redis Cluster they would need a common hash tag; this targets a single Redis (or a
primary with replicas).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from tektree.cluster._redis import RedisLink
from tektree.jobs._backend import Enqueued, new_claim, small_result
from tektree.jobs._model import JOB_STATUSES, Job

__all__ = ["RedisJobBackend"]

_ENQUEUE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HGETALL', KEYS[1])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return false
"""
"""KEYS: job, queue. ARGV: id, run_at_ms, field, value, ... Returns the existing hash, or nil."""

_CLAIM: Final = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[5] .. id
  if redis.call('HGET', key, 'status') == 'queued' then
    redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'status', 'running', 'owner', ARGV[3], 'claim', ARGV[6] .. i,
               'lease_until_ms', ARGV[4], 'started_ms', ARGV[1])
    redis.call('ZADD', KEYS[2], ARGV[4], id)
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return out
"""
"""KEYS: queue, running. ARGV: now_ms, limit, owner, lease_until_ms, job key prefix, claim
prefix. Returns the claimed jobs' hashes."""

_FINISH: Final = """
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[2]
   or redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], 'owner', 'claim')
local mode = ARGV[3]
if mode == 'done' then
  redis.call('HSET', KEYS[1], 'status', 'done', 'finished_ms', ARGV[4], 'result', ARGV[5],
             'lease_until_ms', 0, 'last_error', '')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
elseif mode == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'run_at_ms', ARGV[4], 'last_error', ARGV[5],
             'lease_until_ms', 0)
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
elseif mode == 'dead' then
  redis.call('HSET', KEYS[1], 'status', 'dead', 'dead_ms', ARGV[4], 'last_error', ARGV[5],
             'lease_until_ms', 0)
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'status', 'queued', 'run_at_ms', ARGV[4], 'lease_until_ms', 0)
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
return 1
"""
"""KEYS: job, running, then the queue (retry, release) or dead set. ARGV: id, claim, mode
(done | retry | dead | release), time (finished, run again or died at), then: result and
retention ms (done), or the error (retry, dead). Returns 1, or 0 when the claim is not held."""

_RENEW: Final = """
local lost = {}
for i = 3, #ARGV, 2 do
  local key = ARGV[2] .. ARGV[i]
  if redis.call('HGET', key, 'claim') == ARGV[i + 1] then
    redis.call('HSET', key, 'lease_until_ms', ARGV[1])
    redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""
"""KEYS: running. ARGV: lease_until_ms, job key prefix, then (id, claim) pairs. Returns the
ids whose claim is no longer held."""

_REAP: Final = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0,
                       tonumber(ARGV[4]))
local n = 0
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[2] .. id
  if redis.call('HGET', key, 'status') == 'running' then
    local owner = redis.call('HGET', key, 'owner') or '?'
    redis.call('HDEL', key, 'owner', 'claim')
    redis.call('HSET', key, 'status', 'queued', 'run_at_ms', ARGV[1], 'lease_until_ms', 0,
               'last_error', 'lease of ' .. owner .. ' expired')
    redis.call('ZADD', ARGV[3] .. redis.call('HGET', key, 'type'), ARGV[1], id)
    n = n + 1
  end
end
return n
"""
"""KEYS: running. ARGV: now_ms, job key prefix, queue key prefix, limit. Returns how many
jobs were put back."""

_REQUEUE: Final = """
if redis.call('HGET', KEYS[1], 'status') ~= 'dead' then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'run_at_ms', ARGV[2])
redis.call('HDEL', KEYS[1], 'dead_ms')
redis.call('ZADD', ARGV[3] .. redis.call('HGET', KEYS[1], 'type'), ARGV[2], ARGV[1])
return 1
"""
"""KEYS: job, dead. ARGV: id, now_ms, queue key prefix."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(value: str | None) -> int:
    return int(value) if value not in (None, "") else 0


def _job(flat: Sequence[Any]) -> Job:
    fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    result = fields.get("result")
    return Job(
        id=fields["id"], type=fields["type"], payload=json.loads(fields.get("payload") or "{}"),
        status=fields["status"],  # type: ignore[arg-type]
        attempts=_int(fields.get("attempts")), run_at_ms=_int(fields.get("run_at_ms")),
        created_ms=_int(fields.get("created_ms")), owner=fields.get("owner") or None,
        claim=fields.get("claim") or None, lease_until_ms=_int(fields.get("lease_until_ms")),
        last_error=fields.get("last_error") or None,
        finished_ms=_int(fields["finished_ms"]) if fields.get("finished_ms") else None,
        dead_ms=_int(fields["dead_ms"]) if fields.get("dead_ms") else None,
        result=json.loads(result) if result else None,
    )


class RedisJobBackend:
    """Jobs in Redis, through the node's :class:`~tektree.cluster.RedisLink` (retried while
    Redis is away)."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        client = link.client
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._renew = client.register_script(_RENEW)
        self._reap = client.register_script(_REAP)
        self._requeue = client.register_script(_REQUEUE)
        self._job_prefix = link.key("jobs", "job", "")
        self._queue_prefix = link.key("jobs", "queue", "")
        self._running = link.key("jobs", "running")
        self._dead = link.key("jobs", "dead")

    def _job_key(self, job_id: str) -> str:
        return self._job_prefix + job_id

    def _queue_key(self, job_type: str) -> str:
        return self._queue_prefix + job_type

    async def setup(self) -> None:
        await self.link.call(lambda client: client.ping())

    async def enqueue(self, job: Job) -> Enqueued:
        fields: list[str | int] = [
            "id", job.id, "type", job.type, "payload", json.dumps(job.payload),
            "status", job.status, "attempts", job.attempts, "run_at_ms", job.run_at_ms,
            "created_ms", job.created_ms,
        ]
        existing: Any = await self.link.call(lambda client: self._enqueue(
            keys=[self._job_key(job.id), self._queue_key(job.type)],
            args=[job.id, job.run_at_ms, *fields]))
        if existing:
            return Enqueued(job=_job(existing), created=False)
        return Enqueued(job=job, created=True)

    async def claim(
        self, job_type: str, limit: int, *, owner: str, now_ms: int, lease_ms: int
    ) -> list[Job]:
        prefix = f"{new_claim()}."
        rows: Any = await self.link.call(lambda client: self._claim(
            keys=[self._queue_key(job_type), self._running],
            args=[now_ms, limit, owner, now_ms + lease_ms, self._job_prefix, prefix]))
        return [_job(row) for row in rows]

    async def _finish_call(self, job: Job, mode: str, third_key: str,
                           args: Sequence[str | int]) -> bool:
        claim = job.claim
        assert claim is not None, f"job {job.id} is not claimed"
        done: Any = await self.link.call(lambda client: self._finish(
            keys=[self._job_key(job.id), self._running, third_key],
            args=[job.id, claim, mode, *args]))
        return bool(done)

    async def complete_many(
        self, done: Sequence[tuple[Job, Any]], *, now_ms: int, keep_ms: int
    ) -> int:
        """Several completions in one pipeline (one round trip); how many were still held."""
        if not done:
            return 0
        calls = [([self._job_key(job.id), self._running, self._queue_key(job.type)],
                  [job.id, job.claim or "", "done", now_ms, json.dumps(small_result(result)),
                   max(1, keep_ms)]) for job, result in done]

        async def run(client: Any) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                requests = [pipe.eval(_FINISH, keys, args) for keys, args in calls]
            return [await request for request in requests]

        results: Any = await self.link.call(run)
        return sum(1 for r in results if r)

    async def retry(self, job: Job, *, run_at_ms: int, error: str) -> bool:
        return await self._finish_call(job, "retry", self._queue_key(job.type),
                                       [run_at_ms, error])

    async def bury(self, job: Job, *, now_ms: int, error: str) -> bool:
        return await self._finish_call(job, "dead", self._dead, [now_ms, error])

    async def release(self, job: Job, *, now_ms: int) -> bool:
        return await self._finish_call(job, "release", self._queue_key(job.type), [now_ms])

    async def renew(self, jobs: Sequence[Job], *, lease_until_ms: int) -> list[str]:
        if not jobs:
            return []
        pairs: list[str | int] = []
        for job in jobs:
            pairs += [job.id, job.claim or ""]
        lost: Any = await self.link.call(lambda client: self._renew(
            keys=[self._running], args=[lease_until_ms, self._job_prefix, *pairs]))
        return [_text(item) for item in lost]

    async def reap(self, *, now_ms: int, limit: int) -> int:
        return int(await self.link.call(lambda client: self._reap(
            keys=[self._running],
            args=[now_ms, self._job_prefix, self._queue_prefix, limit])))

    async def get(self, job_id: str) -> Job | None:
        flat = await self.link.call(lambda client: client.hgetall(self._job_key(job_id)))
        if not flat:
            return None
        items: list[Any] = []
        for key, value in flat.items():
            items += [key, value]
        return _job(items)

    async def dead(self, *, limit: int, offset: int) -> list[Job]:
        ids = await self.link.call(
            lambda client: client.zrange(self._dead, offset, offset + limit - 1))
        jobs = []
        for raw in ids:
            job = await self.get(_text(raw))
            if job is not None:
                jobs.append(job)
        return jobs

    async def requeue(self, job_id: str, *, now_ms: int) -> bool:
        return bool(await self.link.call(lambda client: self._requeue(
            keys=[self._job_key(job_id), self._dead],
            args=[job_id, now_ms, self._queue_prefix])))

    async def purge(self, *, finished_before_ms: int) -> int:
        return 0  # finished jobs expire on their own (PEXPIRE at completion)

    async def counts(self) -> dict[str, int]:
        """Dead and running counts (queued ones are counted per type by ``queued``)."""
        running = await self.link.call(lambda client: client.zcard(self._running))
        dead = await self.link.call(lambda client: client.zcard(self._dead))
        out = dict.fromkeys(JOB_STATUSES, 0)
        out.update(running=int(running), dead=int(dead))
        return out

    async def queued(self, job_type: str) -> int:
        return int(await self.link.call(lambda client: client.zcard(self._queue_key(job_type))))
