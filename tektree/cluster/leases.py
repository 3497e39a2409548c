"""Single activation cluster-wide: one Redis lease per actor, with a fencing token.

A node may run an actor only while it holds that actor's lease. The lease is the Redis key
``{prefix}:lease:<actor>`` holding ``"<node>|<token>"`` with a TTL (``ttl_seconds``); its holder
renews every lease it holds every ``renew_every_seconds`` in one round trip.

Fencing tokens
--------------
Each grant gets a token that is strictly greater than every token granted before for that actor,
so the store can refuse a write carrying an older token (a paused or partitioned ex-holder). The
token is ``max(last + 1, now_us)`` where ``last`` is the previous token (kept without expiry at
``{prefix}:fence:<actor>``) and ``now_us`` is Redis's own ``TIME`` in microseconds, read inside
the grant script. A plain ``INCR`` counter would start over at 1 after a Redis restart without
persistence and hand out tokens the store has already seen; the ``TIME`` floor keeps tokens
increasing across such a restart: every earlier token is at most the server clock at its grant
(a grant takes longer than a microsecond), and a restart takes longer still. That relies on the
Redis host's clock not stepping back by more than the downtime; with persistence the fence key
survives and ``last + 1`` alone guarantees it. Tokens stay below 2**53 (exact in Lua's doubles)
until the year 2255.

When a holder must stop
-----------------------
Each lease has a local deadline ``valid_until = t0 + ttl - safety_margin`` on this process's
monotonic clock, ``t0`` being the moment the successful grant or renewal was *sent*: Redis applied
its TTL after ``t0``, so by Redis's clock nobody can take the lease before ``t0 + ttl``. The
margin absorbs the difference between the two clocks' rates and the delay in acting on the loss.
If no renewal succeeds before ``valid_until`` (Redis unreachable, a long pause) the lease is
reported lost through ``on_lost`` and the node deactivates the actor without saving state.
A renewal that finds the lease gone or someone else's reports it lost the same way.

A Redis restart without persistence forgets every lease while the old holders still run until
their next renewal. To keep grants exclusive even then, Redis records when it first saw this
module (``{prefix}:lease-boot``, written by any grant or renewal when missing) and refuses grants
for ``ttl`` after that: by then every old holder has either renewed (and learnt of the loss) or
passed its own ``valid_until``. A fresh Redis therefore grants nothing for ``ttl`` after first
use; pass ``restart_grace=False`` when Redis persists its data or a delay at cold start matters
more. The fencing token remains the last line of defence either way.

Keys of different actors are used in one script: on Redis Cluster they would need a common
hash tag; this module targets a single Redis (or a primary with replicas).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import attrs
import coredis
import structlog
import trio

from tektree.cluster._redis import RedisLink

__all__ = ["Lease", "LeaseBusy", "Leases", "LeasesStatistics"]

_log = structlog.get_logger("tektree.cluster.leases")

GRANT_CHUNK: Final = 500
"""Actors granted per script call by :meth:`Leases.acquire_many`."""

RENEW_CHUNK: Final = 500
"""Leases renewed per script call; all chunks go in one pipeline (one round trip)."""

_ACQUIRE = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
local boot = tonumber(redis.call('GET', KEYS[1]))
if not boot then
  boot = now_ms
  redis.call('SET', KEYS[1], string.format('%d', boot))
end
local grace = boot + tonumber(ARGV[3]) - now_ms
local out = {}
for i = 2, #KEYS, 2 do
  local current = redis.call('GET', KEYS[i])
  local holder, token
  if current then
    holder, token = string.match(current, '^(.*)|(%d+)$')
  end
  if current and holder ~= ARGV[1] then
    out[#out + 1] = {0, holder or '', token or '0', redis.call('PTTL', KEYS[i])}
  elseif not current and grace > 0 then
    out[#out + 1] = {0, '', '0', grace}
  else
    local last = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
    token = string.format('%d', math.max(last + 1, now_us))
    redis.call('SET', KEYS[i + 1], token)
    redis.call('SET', KEYS[i], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
    out[#out + 1] = {1, ARGV[1], token, tonumber(ARGV[2])}
  end
end
return out
"""
"""KEYS: boot, then (lease, fence) per actor. ARGV: node, ttl_ms, grace_ms. Returns per actor
{granted, holder node, holder token, ms until it may be granted / the grant's ttl}."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Compare-and-delete. KEYS: lease. ARGV: the value we wrote ("node|token")."""

_RENEW = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('SET', KEYS[1], string.format('%d', now_ms))
end
local lost = {}
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  else
    lost[#lost + 1] = i - 1
  end
end
return lost
"""
"""KEYS: boot, lease 1..n. ARGV: ttl_ms, value 1..n. Returns the (1-based) indices found lost."""


@attrs.frozen(kw_only=True)
class Lease:
    """This node's right to run ``actor``, proven by ``token`` (greater than any earlier one)."""

    actor: str
    token: int
    node: str

    @property
    def value(self) -> str:
        """What the lease key holds while this lease is current."""
        return f"{self.node}|{self.token}"


@attrs.frozen(kw_only=True)
class LeaseBusy:
    """Why :meth:`Leases.try_acquire` granted nothing.

    ``node`` and ``token`` name the current holder; both are ``None`` while Redis is in its
    restart grace (see the module docstring). ``retry_after_seconds`` is when the lease expires
    or the grace ends, if nobody renews it first.
    """

    actor: str
    node: str | None
    token: int | None
    retry_after_seconds: float


@attrs.frozen(kw_only=True)
class LeasesStatistics:
    """A snapshot of :meth:`Leases.statistics`. ``lost_stolen``: found gone or someone
    else's on renewal; ``lost_expired``: not renewed before the local deadline."""

    held: int
    granted: int
    refused: int
    released: int
    renewals: int
    lost_stolen: int
    lost_expired: int


class _Held:
    __slots__ = ("lease", "valid_until")

    def __init__(self, lease: Lease, valid_until: float) -> None:
        self.lease = lease
        self.valid_until = valid_until


class Leases:
    """The leases this node holds, their renewal and their loss.

    ``on_lost(lease)`` is called (synchronously, from :meth:`run`) when a held lease was found
    taken, gone, or could not be renewed in time: stop using it at once.
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        node: str,
        ttl_seconds: float = 10.0,
        renew_every_seconds: float = 3.0,
        safety_margin_seconds: float | None = None,
        on_lost: Callable[[Lease], None] | None = None,
        restart_grace: bool = True,
    ) -> None:
        if not node or "|" in node:
            raise ValueError(
                f"node name {node!r} must be non-empty and free of '|' (the lease value is "
                "'<node>|<token>'); rename the node"
            )
        margin = ttl_seconds / 10 if safety_margin_seconds is None else safety_margin_seconds
        if not 0 < renew_every_seconds < ttl_seconds - margin or margin < 0:
            raise ValueError(
                f"need 0 < renew_every_seconds ({renew_every_seconds}) < ttl_seconds "
                f"({ttl_seconds}) - safety_margin_seconds ({margin}), and a margin >= 0, so a "
                "lease is renewed before it may lapse; lower renew_every_seconds"
            )
        self._link = link
        self.node = node
        self.ttl_seconds = ttl_seconds
        self.renew_every_seconds = renew_every_seconds
        self.safety_margin_seconds = margin
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._grace_ms = self._ttl_ms if restart_grace else 0
        self._on_lost = on_lost
        self._held: dict[str, _Held] = {}
        self._acquiring: dict[str, trio.Event] = {}
        self._abandoned: list[Lease] = []
        self._changed = trio.Event()
        self._watch_until = math.inf
        self._boot_key = link.key("lease-boot")
        self._acquire = link.client.register_script(_ACQUIRE)
        self._release = link.client.register_script(_RELEASE)
        self._granted = self._refused = self._released = self._renewals = 0
        self._lost_stolen = self._lost_expired = 0

    # -- keys and local state -------------------------------------------------------------

    def lease_key(self, actor_key: str) -> str:
        return self._link.key("lease", actor_key)

    def fence_key(self, actor_key: str) -> str:
        return self._link.key("fence", actor_key)

    def held(self, actor_key: str) -> Lease | None:
        """The lease held for ``actor_key`` if its local deadline has not passed."""
        entry = self._held.get(actor_key)
        if entry is None or trio.current_time() >= entry.valid_until:
            return None
        return entry.lease

    def is_valid(self, lease: Lease) -> bool:
        """Whether ``lease`` is still current here (check it right before an external effect)."""
        return self.held(lease.actor) == lease

    def statistics(self) -> LeasesStatistics:
        return LeasesStatistics(
            held=len(self._held),
            granted=self._granted,
            refused=self._refused,
            released=self._released,
            renewals=self._renewals,
            lost_stolen=self._lost_stolen,
            lost_expired=self._lost_expired,
        )

    # -- acquire / release ----------------------------------------------------------------

    async def acquire(self, actor_key: str) -> Lease | None:
        """The lease on ``actor_key``, or ``None`` if another node holds it (or Redis is in its
        restart grace). See :meth:`try_acquire` to learn who holds it."""
        result = await self.try_acquire(actor_key)
        return result if isinstance(result, Lease) else None

    async def try_acquire(self, actor_key: str) -> Lease | LeaseBusy:
        """Take the lease on ``actor_key`` with a new fencing token, or say who holds it.

        A lease this node already holds is returned as is; concurrent calls for one key share a
        single round trip. Retries while Redis is unreachable (bound it with a deadline). A
        call cancelled in flight may leave a grant in Redis that nobody renews: it lapses
        after ``ttl_seconds``.
        """
        while True:
            lease = self.held(actor_key)
            if lease is not None:
                await trio.lowlevel.checkpoint()
                return lease
            pending = self._acquiring.get(actor_key)
            if pending is None:
                break
            await pending.wait()
        stale = self._held.get(actor_key)
        if stale is not None:  # past its deadline, not yet reported by the watchdog
            self._lose(stale.lease, "expired")
        done = self._acquiring[actor_key] = trio.Event()
        try:
            return await self._try_acquire(actor_key)
        finally:
            del self._acquiring[actor_key]
            done.set()

    async def _try_acquire(self, actor_key: str) -> Lease | LeaseBusy:
        return (await self._grant([actor_key], lambda keys, args: self._acquire(keys, args)))[0]

    async def acquire_many(self, actor_keys: Sequence[str]) -> dict[str, Lease | LeaseBusy]:
        """:meth:`try_acquire` for many actors, one round trip per ``GRANT_CHUNK`` of them (a
        node re-homing actors after a failure). Leases already held are returned as is."""
        results: dict[str, Lease | LeaseBusy] = {}
        wanted: list[str] = []
        for actor_key in dict.fromkeys(actor_keys):
            lease = self.held(actor_key)
            if lease is not None:
                results[actor_key] = lease
                continue
            stale = self._held.get(actor_key)
            if stale is not None:
                self._lose(stale.lease, "expired")
            wanted.append(actor_key)
        if not wanted:
            await trio.lowlevel.checkpoint()
            return results
        chunks = [wanted[i : i + GRANT_CHUNK] for i in range(0, len(wanted), GRANT_CHUNK)]
        granted: list[Lease | LeaseBusy] = []
        for chunk in chunks:  # one script call per chunk: Redis stays responsive in between
            granted.extend(await self._grant(chunk, self._eval_acquire))
        results.update(zip(wanted, granted, strict=True))
        return results

    def _eval_acquire(self, keys: list[str], args: list[str | int]) -> Awaitable[Any]:
        return self._link.client.eval(_ACQUIRE, keys, args)

    async def _grant(
        self,
        actor_keys: Sequence[str],
        run: Callable[[list[str], list[str | int]], Awaitable[Any]],
    ) -> list[Lease | LeaseBusy]:
        """One grant script for ``actor_keys``; records what was granted."""
        sent_at = 0.0
        keys = [self._boot_key]
        for actor_key in actor_keys:
            keys += [self.lease_key(actor_key), self.fence_key(actor_key)]
        args: list[str | int] = [self.node, self._ttl_ms, self._grace_ms]

        async def attempt(client: coredis.Redis[bytes]) -> Any:
            nonlocal sent_at
            sent_at = trio.current_time()
            return await run(keys, args)

        replies = await self._link.call(attempt)
        valid_until = sent_at + self.ttl_seconds - self.safety_margin_seconds
        results: list[Lease | LeaseBusy] = []
        for actor_key, (granted, node, token, wait_ms) in zip(actor_keys, replies, strict=True):
            if not granted:
                self._refused += 1
                results.append(LeaseBusy(
                    actor=actor_key,
                    node=node.decode() or None,
                    token=int(token) or None,
                    retry_after_seconds=max(0, int(wait_ms)) / 1000,
                ))
                continue
            self._granted += 1
            lease = Lease(actor=actor_key, token=int(token), node=self.node)
            entry = self._held.get(actor_key)
            if entry is not None and entry.lease.token > lease.token:
                results.append(entry.lease)  # a concurrent grant, newer than this one
                continue
            self._held[actor_key] = _Held(lease, valid_until)
            if valid_until < self._watch_until:
                self._changed.set()
            results.append(lease)
        return results

    async def release(self, lease: Lease) -> bool:
        """Give ``lease`` up (deleted only if it is still ours with that token).

        Forgotten locally at once; the delete is retried while Redis is unreachable, at most
        ``ttl_seconds`` (the lease lapses by then anyway). Returns whether Redis deleted it.
        """
        entry = self._held.get(lease.actor)
        if entry is not None and entry.lease == lease:
            del self._held[lease.actor]
        self._released += 1
        deleted = 0
        with trio.move_on_after(self.ttl_seconds):
            deleted = await self._link.call(
                lambda c: self._release([self.lease_key(lease.actor)], [lease.value])
            )
        return bool(deleted)

    async def holder(self, actor_key: str) -> tuple[str, int] | None:
        """``(node, token)`` of the current holder of ``actor_key`` according to Redis."""
        raw = await self._link.call(lambda c: c.get(self.lease_key(actor_key)))
        if raw is None:
            return None
        node, _, token = raw.decode().rpartition("|")
        return node, int(token)

    # -- renewal --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew held leases every ``renew_every_seconds``; report lost ones. Runs until
        cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watchdog)
            task_status.started()
            while True:
                await trio.sleep(self.renew_every_seconds)
                await self.renew_now()

    async def renew_now(self) -> None:
        """One renewal round trip for every held lease (chunked scripts in one pipeline), plus
        best-effort deletes of leases that lapsed locally while Redis was unreachable."""
        snapshot = [entry.lease for entry in self._held.values()]
        abandoned, self._abandoned = self._abandoned, []
        if not snapshot and not abandoned:
            await trio.lowlevel.checkpoint()
            return
        chunks = [snapshot[i : i + RENEW_CHUNK] for i in range(0, len(snapshot), RENEW_CHUNK)]
        sent_at = 0.0

        async def attempt(client: coredis.Redis[bytes]) -> list[Any]:
            nonlocal sent_at
            sent_at = trio.current_time()
            async with client.pipeline(transaction=False) as pipe:
                requests = [
                    pipe.eval(
                        _RENEW,
                        [self._boot_key, *(self.lease_key(lease.actor) for lease in chunk)],
                        [self._ttl_ms, *(lease.value for lease in chunk)],
                    )
                    for chunk in chunks
                ]
                for lease in abandoned:
                    pipe.eval(_RELEASE, [self.lease_key(lease.actor)], [lease.value])
            return [await request for request in requests]

        try:
            results = await self._link.call(attempt)
        except BaseException:
            self._abandoned.extend(abandoned)
            raise
        self._renewals += 1
        valid_until = sent_at + self.ttl_seconds - self.safety_margin_seconds
        lost: set[int] = set()
        for chunk_no, indices in enumerate(results):
            lost.update(chunk_no * RENEW_CHUNK + int(i) - 1 for i in indices)
        for index, lease in enumerate(snapshot):
            entry = self._held.get(lease.actor)
            if entry is None or entry.lease != lease:
                continue  # released, re-acquired or expired meanwhile
            if index in lost:
                self._lose(lease, "gone or taken")
            else:
                entry.valid_until = max(entry.valid_until, valid_until)

    def _lose(self, lease: Lease, why: str) -> None:
        del self._held[lease.actor]
        if why == "gone or taken":
            self._lost_stolen += 1
        else:
            self._lost_expired += 1
            self._abandoned.append(lease)
        _log.warning("lease lost", actor=lease.actor, token=lease.token, node=self.node, why=why)
        if self._on_lost is not None:
            self._on_lost(lease)

    async def _watchdog(self) -> None:
        """Report each lease whose local deadline passed without a successful renewal."""
        while True:
            self._changed = trio.Event()
            self._watch_until = min((e.valid_until for e in self._held.values()), default=math.inf)
            with trio.move_on_at(self._watch_until):
                await self._changed.wait()
            now = trio.current_time()
            for entry in [e for e in self._held.values() if e.valid_until <= now]:
                self._lose(entry.lease, "expired")
