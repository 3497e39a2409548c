"""Which tier a user is on, read per request, and what it allows them per route class.

:class:`TierSource` is the one question the gateway asks (``await tier_of(user_id)``), so a
tier change applies to the user's very next request. :class:`AccountTiers` answers it from the
accounts' ``users`` document (one point read through the store's batched reader, no cache to
go stale). The gateway uses ``actors.subscriptions.CurrentTiers``: the same read, plus the
``tier_until`` a canceled plan lapses at (billing writes both), so a period end applies to the
next request too.

:class:`RatePolicy` turns a tier (or an anonymous client) into the :class:`~gateway.ratelimit.
Quota` of its bucket, from the tier catalog of ``actors.rules.tiers``; ``None`` = unlimited.
"""

from __future__ import annotations

from typing import Final, Literal, Protocol

import attrs

from actors.accounts import USERS
from actors.rules.tiers import TierCatalog, TierError, TierPolicy
from gateway.ratelimit import Quota
from tektree.persistence import DocumentStore

__all__ = ["ROUTE_CLASSES", "AccountTiers", "RatePolicy", "RouteClass", "TierSource"]

RouteClass = Literal["read", "write", "auth"]
#: Each class has its own bucket per caller: reads cannot starve writes, and the anonymous
#: ``auth`` routes (register, login, refresh) are limited per client IP whoever calls.
ROUTE_CLASSES: Final[tuple[RouteClass, ...]] = ("read", "write", "auth")
DEFAULT_TIER: Final = "free"


class TierSource(Protocol):
    """Where a user's current tier comes from."""

    async def tier_of(self, user_id: str) -> str: ...


@attrs.define
class AccountTiers:
    """The ``tier`` of the user's accounts document (``free`` for an unknown user)."""

    store: DocumentStore

    async def tier_of(self, user_id: str) -> str:
        doc = await self.store.get(USERS, user_id)
        tier = None if doc is None else doc.get("tier")
        return tier if isinstance(tier, str) else DEFAULT_TIER


def _quota(policy: TierPolicy) -> Quota | None:
    rate, capacity = policy.refill_per_second, policy.bucket_capacity
    if rate is None or capacity is None:
        return None
    return Quota(rate=rate, capacity=max(1.0, capacity))


@attrs.frozen(kw_only=True)
class RatePolicy:
    """Quotas by tier, plus the anonymous clients' (per IP)."""

    catalog: TierCatalog
    anonymous_requests_per_minute: int | None
    #: Quotas by tier name (``None`` key: anonymous), made once: both are immutable.
    _quotas: dict[str | None, Quota | None] = attrs.field(
        init=False, factory=dict, eq=False, repr=False)

    def for_tier(self, tier: str) -> Quota | None:
        try:
            return self._quotas[tier]
        except KeyError:
            pass
        try:
            policy = self.catalog[tier]
        except TierError:  # a tier this catalog does not know: the default's limits
            policy = self.catalog[DEFAULT_TIER]
        quota = self._quotas[tier] = _quota(policy)
        return quota

    def anonymous(self) -> Quota | None:
        try:
            return self._quotas[None]
        except KeyError:
            quota = self._quotas[None] = _quota(TierPolicy(
                name="anonymous", requests_per_minute=self.anonymous_requests_per_minute))
            return quota
