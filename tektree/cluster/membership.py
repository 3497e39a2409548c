"""Membership: the live nodes of the cluster, kept in Redis with heartbeats.

Each node keeps one entry in the sorted set ``{prefix}:members`` (score: the instant it expires,
in the Redis server's clock) and one hash ``{prefix}:member:<name>`` (roles, weight,
incarnation, info JSON) that expires with it. Every ``heartbeat_seconds`` a node runs one Lua
script (one round trip) that prunes expired entries, pushes its own expiry to
``TIME + ttl``, and returns the live entries: heartbeat and view read are one command. All
instants come from the server's ``TIME``, so node clocks never matter and a node always sees
itself alive after its own heartbeat, however late that heartbeat was.

Joins and graceful leaves are published on ``{prefix}:membership``: a leave is applied the
moment it arrives, a join triggers an immediate read. A node that dies without leaving drops
out of the others' view within ``ttl + heartbeat`` seconds.

When Redis is unreachable the node keeps its last view and reports ``ready = False`` while it
retries (backoff capped at one heartbeat). A restarted Redis has forgotten everyone: each node
re-registers and re-publishes its join on its next successful heartbeat; meanwhile members of
the last view stay in it for one ``ttl`` (the time they have to come back), so an outage of
Redis does not make every node look dead to every other.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from types import MappingProxyType
from typing import Any, cast

import anyio
import attrs
import coredis
import structlog
import trio
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.retry import CompositeRetryPolicy, ConstantRetryPolicy, ExponentialBackoffRetryPolicy

from tektree._pool import backoff_delay
from tektree.cluster._redis import TRANSIENT_ERRORS, RedisLink
from tektree.cluster.placement import Member

__all__ = ["MemberInfo", "Membership", "MembershipView", "read_members"]

_log = structlog.get_logger("tektree.cluster.membership")

# The live entries, as a flat array: name, expiry (ms, server clock), roles, weight,
# incarnation[, info] per member. Members whose hash is gone (expiring this very instant) are
# skipped. Keys of other members' hashes are derived from ARGV[1] (not declared in KEYS): this
# needs a single Redis, or a ``{hash tag}`` in the prefix on Redis Cluster.
_LIVE_LUA = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live(out, now, hash_prefix, with_info)
  local entries = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%d', now), '+inf',
                             'WITHSCORES')
  for i = 1, #entries, 2 do
    local f
    if with_info then
      f = redis.call('HMGET', hash_prefix .. entries[i], 'roles', 'weight', 'incarnation', 'info')
    else
      f = redis.call('HMGET', hash_prefix .. entries[i], 'roles', 'weight', 'incarnation')
    end
    if f[3] then
      out[#out + 1] = entries[i]
      out[#out + 1] = entries[i + 1]
      for j = 1, #f do out[#out + 1] = f[j] end
    end
  end
  return out
end
"""

# KEYS: members zset, this node's hash. ARGV: hash prefix, name, ttl ms, roles, weight,
# incarnation, info, channel, join message, "1" to publish the join even if already listed.
# Returns: now ms, 1 if this node was (re)added, then the live entries.
_BEAT_LUA = _LIVE_LUA + """
local now = now_ms()
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local added = redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('HSET', KEYS[2], 'roles', ARGV[4], 'weight', ARGV[5], 'incarnation', ARGV[6],
           'info', ARGV[7])
redis.call('PEXPIRE', KEYS[2], ttl)
if added == 1 or ARGV[10] == '1' then
  redis.call('PUBLISH', ARGV[8], ARGV[9])
end
return live({now, added}, now, ARGV[1], false)
"""

# KEYS: members zset. ARGV: hash prefix. Returns: now ms, then the live entries with info.
_READ_LUA = _LIVE_LUA + """
local now = now_ms()
return live({now}, now, ARGV[1], true)
"""


def _sorted_by_name(members: Iterable[Member]) -> tuple[Member, ...]:
    return tuple(sorted(members, key=lambda m: m.name))


@attrs.frozen(kw_only=True)
class MembershipView:
    """The live members as one node last saw them; ``version`` grows with every change."""

    members: tuple[Member, ...] = attrs.field(default=(), converter=_sorted_by_name)
    version: int = 0
    by_name: Mapping[str, Member] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(
            self, "by_name", MappingProxyType({m.name: m for m in self.members})
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name


@attrs.frozen(kw_only=True)
class MemberInfo:
    """One live member as ``tektree cluster status`` shows it (see :func:`read_members`)."""

    member: Member
    info: Mapping[str, Any]
    #: Time left before the entry expires without a heartbeat, in the server's clock.
    expires_in_ms: int

    @property
    def name(self) -> str:
        return self.member.name

    @property
    def roles(self) -> frozenset[str]:
        return self.member.roles


@attrs.frozen
class _Entry:
    member: Member
    expires_ms: int
    info: Mapping[str, Any]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_entries(flat: list[Any], *, with_info: bool) -> list[_Entry]:
    stride = 6 if with_info else 5
    entries: list[_Entry] = []
    for i in range(0, len(flat) - stride + 1, stride):
        row = flat[i:i + stride]
        name = _text(row[0])
        try:
            member = Member(
                name=name,
                roles=json.loads(row[2]) if row[2] else (),
                weight=float(row[3]),
                incarnation=_text(row[4]),
            )
            info = json.loads(row[5]) if with_info and row[5] else {}
        except (TypeError, ValueError) as exc:
            _log.warning("unreadable member entry skipped", member=name, error=repr(exc))
            continue
        entries.append(_Entry(member, int(float(row[1])), info))
    return entries


class Membership:
    """This node's registration and its view of the live nodes.

    Start it with ``await nursery.start(membership.run)``: it returns once the node is
    registered and the first view is loaded. Stop it with :meth:`leave` (graceful: the others
    notice at once) or by cancelling :meth:`run` (the others notice after ``ttl_seconds``).
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        name: str,
        roles: Iterable[str] = (),
        weight: float = 1.0,
        heartbeat_seconds: float = 1.0,
        ttl_seconds: float = 3.0,
        incarnation: str | None = None,
    ) -> None:
        if not (math.isfinite(heartbeat_seconds) and heartbeat_seconds > 0):
            raise ValueError(f"heartbeat_seconds must be > 0, got {heartbeat_seconds!r}")
        if not (math.isfinite(ttl_seconds) and ttl_seconds > heartbeat_seconds):
            raise ValueError(
                f"ttl_seconds must be greater than heartbeat_seconds ({heartbeat_seconds!r}), "
                f"got {ttl_seconds!r}; a node would expire between its own heartbeats. "
                "Use about 3 heartbeats (the defaults are 1 s and 3 s)"
            )
        self._link = link
        #: This node as the others see it; ``incarnation`` is new on every start.
        self.self_member = Member(
            name=name, roles=roles, weight=weight,
            incarnation=incarnation or secrets.token_hex(8),
        )
        self.heartbeat_seconds = heartbeat_seconds
        self.ttl_seconds = ttl_seconds
        self._members_key = link.key("members")
        self._hash_prefix = link.key("member", "")
        self._channel = link.key("membership")
        self._script = link.client.register_script(_BEAT_LUA)
        self._info_json = "{}"
        self._view = MembershipView()
        self._changed = trio.Event()
        self._ready = False
        self._ready_changed = trio.Event()
        self._refresh = trio.Event()
        self._lock = trio.Lock()  # one Redis exchange at a time; a leave waits for a beat
        self._running = False
        self._left = False
        self._run_scope: trio.CancelScope | None = None
        self._failed = False  # a heartbeat failed since the last one that succeeded
        #: Members that left gracefully: (name, incarnation), until Redis no longer lists them.
        self._departed: set[tuple[str, str]] = set()
        #: Members missing after a Redis outage, kept until this server instant (ms).
        self._grace: dict[str, tuple[Member, int]] = {}

    # -- state --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.self_member.name

    @property
    def link(self) -> RedisLink:
        return self._link

    @property
    def view(self) -> MembershipView:
        return self._view

    @property
    def ready(self) -> bool:
        """True while heartbeats succeed; False while Redis is unreachable (the view is stale)."""
        return self._ready

    def set_info(self, info: Mapping[str, Any]) -> None:
        """Replace the status info (actor counts, mailbox depths) sent with the next heartbeat."""
        try:
            self._info_json = json.dumps(dict(info), separators=(",", ":"), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"membership info must be JSON-serialisable (str keys; str, number, bool, None, "
                f"list or dict values), got {info!r}: {exc}"
            ) from exc

    async def wait_for_change(self, after_version: int) -> MembershipView:
        """The first view whose version is greater than ``after_version``."""
        await trio.lowlevel.checkpoint()
        while self._view.version <= after_version:
            await self._changed.wait()
        return self._view

    def changes(self) -> AsyncIterator[MembershipView]:
        """``async for view in membership.changes()``: each new view from now on.

        A slow consumer skips to the latest view. (An iterator object, not an async generator:
        leaving the loop early needs no ``aclosing``.)
        """
        return _Changes(self)

    async def wait_readiness(self, ready: bool = True) -> None:
        """Return once :attr:`ready` equals ``ready``."""
        await trio.lowlevel.checkpoint()
        while self._ready != ready:
            await self._ready_changed.wait()

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[MembershipView] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Register, then heartbeat and follow the others until :meth:`leave` or cancellation."""
        if self._running or self._left:
            raise RuntimeError(
                f"membership of node {self.name!r} was already started; make a new Membership "
                "to join again"
            )
        self._running = True
        try:
            async with trio.open_nursery() as nursery:
                self._run_scope = nursery.cancel_scope
                await nursery.start(self._listen)  # subscribed before registering: no join missed
                await self._heartbeat(register=True)
                nursery.start_soon(self._beat_loop)
                task_status.started(self._view)
        finally:
            self._run_scope = None

    async def leave(self) -> None:
        """Leave gracefully: deregister, tell the others, and stop :meth:`run`.

        Waits for an in-flight heartbeat, then retries while Redis is unreachable: bound it
        with a deadline (cancelled, the entry simply expires after ``ttl_seconds``).
        """
        async with self._lock:
            if self._left:
                return
            self._left = True
            if self._run_scope is not None:
                self._run_scope.cancel()
            member = self.self_member
            message = _message("leave", member)

            async def deregister(client: coredis.Redis[bytes]) -> None:
                async with client.pipeline(transaction=True) as pipe:
                    pipe.zrem(self._members_key, [member.name])
                    pipe.delete([self._hash_prefix + member.name])
                    pipe.publish(self._channel, message)

            await self._link.call(deregister)
        self._set_ready(False)
        _log.info("left the cluster", node=self.name)

    # -- heartbeats ---------------------------------------------------------------------

    async def _beat_loop(self) -> None:
        next_beat = trio.current_time() + self.heartbeat_seconds
        while True:
            with trio.move_on_at(next_beat):
                await self._refresh.wait()
            self._refresh = trio.Event()
            next_beat = trio.current_time() + self.heartbeat_seconds
            await self._heartbeat(register=False)

    async def _heartbeat(self, *, register: bool) -> None:
        """One heartbeat and view read; on failure retry (backoff ≤ one heartbeat) until done."""
        attempt = 0
        while True:
            flat: list[Any] | None = None
            error: BaseException | None = None
            async with self._lock:
                if self._left:
                    return
                # A hung Redis must not hang the node: past ttl our entry is gone anyway.
                with trio.move_on_after(self.ttl_seconds):
                    try:
                        flat = await self._link.call(
                            lambda c: self._beat_once(c, register=register), retry=False
                        )
                    except TRANSIENT_ERRORS as exc:
                        error = exc
                if flat is not None:
                    self._applied(flat, register=register)
                    return
            if not self._failed:
                _log.warning("membership heartbeat failed; keeping the last view",
                             node=self.name, error=repr(error) if error else "timed out")
            self._failed = True
            self._set_ready(False)
            attempt += 1
            await trio.sleep(backoff_delay(attempt, 0.05, self.heartbeat_seconds))

    async def _beat_once(self, client: coredis.Redis[bytes], *, register: bool) -> list[Any]:
        member = self.self_member
        result: Any = await self._script(
            keys=[self._members_key, self._hash_prefix + member.name],
            args=[
                self._hash_prefix, member.name, max(1, round(self.ttl_seconds * 1000)),
                json.dumps(sorted(member.roles)), repr(float(member.weight)),
                member.incarnation, self._info_json, self._channel,
                _message("join", member), "1" if register else "0",
            ],
            client=client,
        )
        return cast(list[Any], result)

    def _applied(self, flat: list[Any], *, register: bool) -> None:
        now_ms, added = int(flat[0]), int(flat[1])
        entries = _parse_entries(flat[2:], with_info=False)
        live = {e.member.name: e.member for e in entries}
        recovered = self._failed
        self._failed = False
        if recovered:
            grace_until = now_ms + round(self.ttl_seconds * 1000)
            for member in self._view.members:
                if member.name not in live and member.name != self.name:
                    self._grace[member.name] = (member, grace_until)
            _log.info("membership heartbeat succeeded again", node=self.name,
                      re_registered=bool(added))
        elif added and not register:
            _log.warning("this node had expired from membership; registered again",
                         node=self.name)
        listed = {(m.name, m.incarnation) for m in live.values()}
        self._departed &= listed
        for name, (_, until) in list(self._grace.items()):
            if name in live or until <= now_ms:
                del self._grace[name]
        members = {m.name: m for m, _ in self._grace.values()}
        members.update(live)
        members[self.name] = self.self_member
        self._publish_view(
            m for m in members.values() if (m.name, m.incarnation) not in self._departed
        )
        self._set_ready(True)

    def _publish_view(self, members: Iterable[Member]) -> None:
        current = self._view
        view = MembershipView(members=tuple(members), version=current.version)
        if view.members == current.members:
            return
        joined = sorted(set(view.names) - set(current.names))
        gone = sorted(set(current.names) - set(view.names))
        self._view = MembershipView(members=view.members, version=current.version + 1)
        _log.info("membership changed", node=self.name, version=self._view.version,
                  joined=joined, gone=gone, members=list(self._view.names))
        self._changed.set()
        self._changed = trio.Event()

    def _set_ready(self, ready: bool) -> None:
        if ready != self._ready:
            self._ready = ready
            self._ready_changed.set()
            self._ready_changed = trio.Event()

    # -- pub/sub ------------------------------------------------------------------------

    async def _listen(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                      ) -> None:
        started = False
        attempt = 0
        while True:
            try:
                async with self._link.client.pubsub(
                    channels=[self._channel], ignore_subscribe_messages=True,
                    retry_policy=_PUBSUB_RETRY,
                ) as pubsub:
                    attempt = 0
                    if started:
                        self._refresh.set()  # messages may have been missed meanwhile
                    else:
                        started = True
                        task_status.started()
                    async for message in pubsub:
                        if _text(message["type"]) == "message":
                            self._received(message["data"])
            except* _SUBSCRIPTION_ERRORS as group:
                # coredis can raise these from its own task group, also while being cancelled
                # (its cleanup writes to a connection already closed): the cancellation goes on.
                _log.debug("membership subscription lost", node=self.name, error=repr(group))
            attempt += 1
            await trio.sleep(backoff_delay(attempt, 0.05, self.heartbeat_seconds))

    def _received(self, data: object) -> None:
        try:
            message = json.loads(data if isinstance(data, bytes | str) else b"")
            event, name, incarnation = message["event"], message["name"], message["incarnation"]
        except (TypeError, ValueError, KeyError):
            _log.warning("unreadable membership message ignored", node=self.name, data=data)
            return
        if name == self.name:
            return
        if event == "leave":
            # Applied at once; a read already in flight must not bring it back.
            self._departed.add((name, incarnation))
            self._grace.pop(name, None)
            if name in self._view.by_name:
                self._publish_view(m for m in self._view.members if m.name != name)
        elif event == "join":
            self._refresh.set()


class _Changes:
    def __init__(self, membership: Membership) -> None:
        self._membership = membership
        self._version = membership.view.version

    def __aiter__(self) -> _Changes:
        return self

    async def __anext__(self) -> MembershipView:
        view = await self._membership.wait_for_change(self._version)
        self._version = view.version
        return view


def _message(event: str, member: Member) -> str:
    return json.dumps({"event": event, "name": member.name, "incarnation": member.incarnation})


# All of them Exceptions (``except*`` refuses BaseException types).
_SUBSCRIPTION_ERRORS = cast(
    "tuple[type[Exception], ...]",
    (*TRANSIENT_ERRORS, anyio.ClosedResourceError, anyio.BrokenResourceError),
)

# coredis resubscribes by itself after a reconnection; its default backoff grows to 16 s.
_PUBSUB_RETRY = CompositeRetryPolicy(
    ExponentialBackoffRetryPolicy(
        (RedisConnectionError,), retries=None, base_delay=0.05, max_delay=1.0, jitter=True
    ),
    ConstantRetryPolicy((TimeoutError,), retries=2, delay=0.1),
)


async def read_members(link: RedisLink, *, retry: bool = True) -> list[MemberInfo]:
    """The live members with their status info, sorted by name (for ``tektree cluster status``).

    ``retry=False`` fails at once with a transient error when Redis is unreachable.
    """
    script = link.client.register_script(_READ_LUA)
    members_key, hash_prefix = link.key("members"), link.key("member", "")
    flat = cast(list[Any], await link.call(
        lambda c: script(keys=[members_key], args=[hash_prefix], client=c), retry=retry
    ))
    now_ms = int(flat[0])
    entries = _parse_entries(flat[1:], with_info=True)
    return sorted(
        (MemberInfo(member=e.member, info=e.info, expires_in_ms=e.expires_ms - now_ms)
         for e in entries),
        key=lambda info: info.name,
    )
