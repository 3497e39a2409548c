"""Monthly quotas per tier and kind (questions, insights, resource uploads), counted atomically.

```python
quotas = Quotas(store, counter_for(store, redis_link), tiers=SubscriptionTiers(store))
async with spending(quotas, user_id, "questions", correlation_id=cid):
    ...  # write the question; an exception here gives the quota back
```

The limits are the tier catalog's (:mod:`actors.rules.tiers`, overridable by a tiers file), the
tier is the user's effective tier *now* (a :class:`TierReader`, e.g.
``actors.subscriptions.SubscriptionTiers``: an upgrade raises the limits on the next call), and
the period is the UTC calendar month (:func:`~actors.rules.tiers.quota_period`).

Counting is check-and-increment in one atomic step, so concurrent posts never pass the limit:

- :class:`RedisQuotaCounter` (cluster mode): key ``<prefix>:quota:{user}:{kind}:{period}``, one
  Lua script (:data:`TAKE_SCRIPT`) that refuses at the limit, else increments, and sets the key
  to expire a day after the period ends (the seed's "TTL: end of billing period", with slack for
  clocks; the expiry is relative, from the calling node's clock);
- :class:`StoreQuotaCounter` (embedded mode): a ``quota_counters`` document per key, taken by one
  conditional update (``count < limit``, ``$inc``, upsert): the store runs it as one write (in
  SQLite inside ``BEGIN IMMEDIATE``, so across processes too); at the limit the upsert collides
  with the existing document and is refused.

A refusal raises :class:`QuotaExceeded` (the quota, the limit, the count and when it resets) and
emits ``payment.quota.exceeded`` once per user, kind and period (its event id is derived from
them, so repeats collide in the outbox and are dropped). A write that fails after its quota was
taken gives it back (:func:`spending`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import attrs
import structlog
import trio

from actors import events
from actors.rules.tiers import (
    DEFAULT_TIERS,
    QUOTA_KINDS,
    TierCatalog,
    quota_period,
    quota_resets_at,
)
from tektree.persistence import DocumentStore, DuplicateKeyError, IndexSpec, format_timestamp

__all__ = [
    "QUOTA_COUNTERS",
    "TAKE_SCRIPT",
    "QuotaCounter",
    "QuotaExceeded",
    "QuotaUnavailable",
    "QuotaUse",
    "Quotas",
    "RedisQuotaCounter",
    "StoreQuotaCounter",
    "TierReader",
    "counter_for",
    "quota_key",
    "spending",
    "usage_json",
]

QUOTA_COUNTERS: Final = "quota_counters"
INDEXES: Final = (
    (QUOTA_COUNTERS, IndexSpec(fields=(("user_id", 1), ("period", 1)),
                               name="quota_counters_user_period")),
)
_log = structlog.get_logger("actors.quotas")
#: Keys stay a day past their period's end (clock slack between nodes).
_KEEP_AFTER_RESET: Final = dt.timedelta(days=1)


class QuotaExceeded(Exception):
    """``user_id`` has used its ``limit`` of ``quota`` for ``period``; it resets at
    ``resets_at``."""

    rule = "quota"

    def __init__(self, *, user_id: str, quota: str, tier: str, limit: int, used: int,
                 period: str, resets_at: dt.datetime) -> None:
        self.user_id = user_id
        self.quota = quota
        self.tier = tier
        self.limit = limit
        self.used = used
        self.period = period
        self.resets_at = resets_at
        self.field = quota
        self.detail = (f"the {tier} tier allows {limit} {quota.replace('_', ' ')} a month; "
                       f"{used} used in {period}; the quota resets at "
                       f"{format_timestamp(resets_at)} (upgrade for more)")
        super().__init__(f"{quota}: {self.detail}")


@attrs.frozen(kw_only=True)
class QuotaUse:
    """One quota of one user for one period: ``used`` of ``limit`` (None = unlimited)."""

    user_id: str
    kind: str
    tier: str
    used: int
    limit: int | None
    period: str
    resets_at: dt.datetime


class TierReader(Protocol):
    """The user's effective tier now."""

    async def tier_of(self, user_id: str) -> str: ...


class QuotaCounter(Protocol):
    """Where the counts live."""

    async def take(self, key: str, limit: int, *, expires_at: dt.datetime,
                   now: dt.datetime) -> tuple[bool, int]:
        """Count one more unless ``limit`` is reached: (taken, the count now). The count may
        be dropped after ``expires_at`` (``now`` is the caller's clock)."""
        ...

    async def give_back(self, key: str) -> None: ...

    async def used(self, key: str) -> int: ...


def quota_key(user_id: str, kind: str, period: str) -> str:
    """The seed's ``quota:{user_id}:{quota_type}:{period}``."""
    return f"quota:{user_id}:{kind}:{period}"


def _parts(key: str) -> dict[str, str]:
    _, user_id, kind, period = key.rsplit(":", 3)
    return {"user_id": user_id, "kind": kind, "period": period}


class StoreQuotaCounter:
    """Counts in the ``quota_counters`` collection (embedded mode; see the module docstring)."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    async def take(self, key: str, limit: int, *, expires_at: dt.datetime,
                   now: dt.datetime) -> tuple[bool, int]:
        if limit <= 0:
            return False, await self.used(key)
        try:
            await self.store.update(
                QUOTA_COUNTERS, {"_id": key, "count": {"$lt": limit}},
                {"$inc": {"count": 1},
                 "$set": {**_parts(key), "expires_at": format_timestamp(expires_at)}},
                upsert=True)
        except DuplicateKeyError:  # the document exists and holds the limit already
            return False, await self.used(key)
        # The count after this take: another may have taken since, so read it back (a
        # display value; the decision above was atomic).
        return True, min(limit, await self.used(key))

    async def give_back(self, key: str) -> None:
        await self.store.update(QUOTA_COUNTERS, {"_id": key, "count": {"$gt": 0}},
                                {"$inc": {"count": -1}})

    async def used(self, key: str) -> int:
        doc = await self.store.get(QUOTA_COUNTERS, key)
        return 0 if doc is None else int(doc.get("count", 0))


#: KEYS[1] = the counter; ARGV = limit, seconds to keep it. Returns {taken (0|1), count}.
TAKE_SCRIPT: Final = """
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= limit then
  return {0, used}
end
used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, used}
"""

#: Gives one back, never below zero.
GIVE_BACK_SCRIPT: Final = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""


class QuotaUnavailable(Exception):
    """The quota counts cannot be reached (Redis down): the post is refused rather than
    counted nowhere; retry."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"quota counts unavailable: {detail}")
        self.detail = detail


class RedisQuotaCounter:
    """Counts in Redis (cluster mode): ``link`` is the node's ``RedisLink``
    (``system.extensions["redis"]``); one ``EVALSHA`` per take. While Redis is unreachable a
    take raises :class:`QuotaUnavailable` at once (no waiting, no count kept elsewhere, which
    could let two nodes pass the limit); a give-back that fails is logged and lost (the user is
    then charged one post too many, never one too few)."""

    def __init__(self, link: Any) -> None:
        self.link = link
        self._scripts: dict[str, Any] = {}
        from tektree.cluster import TRANSIENT_ERRORS  # not loaded on an embedded node

        self._transient: tuple[type[BaseException], ...] = tuple(TRANSIENT_ERRORS)

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.link.client.register_script(source)
        return script

    def redis_key(self, key: str) -> str:
        return str(self.link.key(key))

    async def take(self, key: str, limit: int, *, expires_at: dt.datetime,
                   now: dt.datetime) -> tuple[bool, int]:
        script = self._script(TAKE_SCRIPT)
        # A relative expiry from the caller's clock (like the rate limits' time): a node's
        # clock, not Redis's, says when its period ends.
        keep = max(1, math.ceil((expires_at - now).total_seconds()))
        args = (str(limit), str(keep))
        redis_key = self.redis_key(key)
        try:
            reply = await self.link.call(
                lambda client: script(keys=[redis_key], args=args, client=client), retry=False)
        except self._transient as exc:
            raise QuotaUnavailable(f"Redis unreachable ({exc!r})") from None
        return bool(int(reply[0])), int(reply[1])

    async def give_back(self, key: str) -> None:
        script = self._script(GIVE_BACK_SCRIPT)
        redis_key = self.redis_key(key)
        try:
            await self.link.call(lambda client: script(keys=[redis_key], args=(),
                                                       client=client), retry=False)
        except self._transient as exc:
            _log.warning("quota not given back: Redis unreachable", key=key, error=repr(exc))

    async def used(self, key: str) -> int:
        redis_key = self.redis_key(key)
        value = await self.link.call(lambda client: client.get(redis_key))
        return 0 if value is None else int(value)


def counter_for(store: DocumentStore, redis_link: Any | None) -> QuotaCounter:
    """Redis counters when the node has a Redis link (a cluster), else the store's."""
    return StoreQuotaCounter(store) if redis_link is None else RedisQuotaCounter(redis_link)


class Quotas:
    """The quotas of every user (see the module docstring)."""

    def __init__(
        self,
        store: DocumentStore,
        counter: QuotaCounter,
        *,
        tiers: TierReader,
        catalog: TierCatalog = DEFAULT_TIERS,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        producer_id: str = "quotas",
    ) -> None:
        self.store = store
        self.counter = counter
        self.tiers = tiers
        self.catalog = catalog
        self.now = now
        self._producer = producer_id
        self._announced: OrderedDict[str, None] = OrderedDict()

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    def _check_kind(self, kind: str) -> None:
        if kind not in QUOTA_KINDS:
            raise ValueError(f"unknown quota kind {kind!r}; expected one of "
                             f"{', '.join(QUOTA_KINDS)}")

    async def consume(self, user_id: str, kind: str, *,
                      correlation_id: str | None = None) -> QuotaUse:
        """Count one ``kind`` for ``user_id`` now, or raise :class:`QuotaExceeded`."""
        self._check_kind(kind)
        at = self.now()
        tier = await self.tiers.tier_of(user_id)
        limit = self.catalog[tier].quota(kind)
        period, resets_at = quota_period(at), quota_resets_at(at)
        if limit is None:
            await trio.lowlevel.checkpoint()
            return QuotaUse(user_id=user_id, kind=kind, tier=tier, used=0, limit=None,
                            period=period, resets_at=resets_at)
        key = quota_key(user_id, kind, period)
        taken, used = await self.counter.take(key, limit, expires_at=resets_at + _KEEP_AFTER_RESET,
                                              now=at)
        if not taken:
            await self._announce(user_id, kind, limit, period, correlation_id, resets_at)
            raise QuotaExceeded(user_id=user_id, quota=kind, tier=tier, limit=limit,
                                used=used, period=period, resets_at=resets_at)
        return QuotaUse(user_id=user_id, kind=kind, tier=tier, used=used, limit=limit,
                        period=period, resets_at=resets_at)

    async def release(self, use: QuotaUse) -> None:
        """Give back what :meth:`consume` took (the write it paid for failed)."""
        if use.limit is not None:
            await self.counter.give_back(quota_key(use.user_id, use.kind, use.period))

    async def usage(self, user_id: str) -> list[QuotaUse]:
        """Every quota of ``user_id`` this period, in :data:`QUOTA_KINDS` order."""
        at = self.now()
        tier = await self.tiers.tier_of(user_id)
        period, resets_at = quota_period(at), quota_resets_at(at)
        policy = self.catalog[tier]
        out = []
        for kind in QUOTA_KINDS:
            used = await self.counter.used(quota_key(user_id, kind, period))
            out.append(QuotaUse(user_id=user_id, kind=kind, tier=tier, used=used,
                                limit=policy.quota(kind), period=period, resets_at=resets_at))
        return out

    async def _announce(self, user_id: str, kind: str, limit: int, period: str,
                        correlation_id: str | None, resets_at: dt.datetime) -> None:
        event_id = f"evt_quota_exceeded_{user_id}_{kind}_{period}"
        if event_id in self._announced:
            await trio.lowlevel.checkpoint()
            return
        evt = events.QuotaExceeded(user_id=user_id, quota=kind, limit=limit, period=period,
                                   resets_at=format_timestamp(resets_at))
        try:
            async with self.store.unit() as unit:
                unit.add_event(events.to_envelope(
                    evt, event_id=event_id, producer_id=self._producer,
                    correlation_id=correlation_id, timestamp=format_timestamp(self.now())))
        except DuplicateKeyError:
            pass  # announced already (by this node before a restart, or by another)
        self._announced[event_id] = None
        if len(self._announced) > 10_000:
            self._announced.popitem(last=False)


@asynccontextmanager
async def spending(quotas: Quotas | None, user_id: str, kind: str, *,
                   correlation_id: str | None = None) -> AsyncIterator[QuotaUse | None]:
    """Take one ``kind`` of ``user_id``'s quota for the block; give it back if the block
    fails. ``quotas`` None: no quotas (nothing counted)."""
    if quotas is None:
        yield None
        return
    use = await quotas.consume(user_id, kind, correlation_id=correlation_id)
    try:
        yield use
    except BaseException:
        with trio.CancelScope(shield=True):
            await quotas.release(use)
        raise


def usage_json(uses: list[QuotaUse]) -> Mapping[str, Any]:
    """Uses as ``{kind: {used, limit, period, resets_at}}`` (for replies)."""
    return {u.kind: {"used": u.used, "limit": u.limit, "period": u.period,
                     "resets_at": format_timestamp(u.resets_at)} for u in uses}
