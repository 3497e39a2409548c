"""Paid tiers: what each tier allows (request rate, burst, monthly quotas). Pure, no I/O.

The catalog (:data:`DEFAULT_TIERS`, overridable by a TOML tiers file, see :func:`load_tiers`):

==============  ==============  =========  =========  =================
tier            requests / min  questions  insights   resource uploads
==============  ==============  =========  =========  =================
``free``        100             30 / mo    5 / mo     10 / mo
``pro``         1,000           300 / mo   50 / mo    200 / mo
``team``        5,000           3,000 / mo 500 / mo   2,000 / mo
``enterprise``  unlimited       unlimited  unlimited  unlimited
==============  ==============  =========  =========  =================

**Rate limits** are token buckets (the seed: "burst allowance: 2x sustained rate for 10 seconds").
A tier sustains ``requests_per_minute``; a client may go at ``burst_multiplier`` times that rate
for ``burst_seconds``: the bucket refills at ``requests_per_minute / 60`` tokens a second and
holds :attr:`TierPolicy.bucket_capacity` = ``rate * (burst_multiplier - 1) * burst_seconds``
tokens on top of one second's worth, so a full bucket lets ``2x`` the rate through for 10 s before
the client falls back to the sustained rate. ``None`` means unlimited.

**Quotas** count per user, per kind, per calendar month (UTC), reset at the first instant of the
next month (:func:`quota_period`, :func:`quota_resets_at`). ``None`` means unlimited.

A tiers file is TOML with one table per tier, every key optional (missing keys keep the default)::

    [free]
    requests_per_minute = 100
    [free.quotas]
    questions = 30
    insights = 5
    resource_uploads = 10

Unknown tiers, keys or quota kinds are errors naming the key and the allowed names.
"""

from __future__ import annotations

import datetime as dt
import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = [
    "DEFAULT_TIERS",
    "QUOTA_KINDS",
    "TIER_NAMES",
    "TierCatalog",
    "TierError",
    "TierPolicy",
    "load_tiers",
    "quota_period",
    "quota_resets_at",
    "tiers_from_mapping",
]

TIER_NAMES: Final[tuple[str, ...]] = ("free", "pro", "team", "enterprise")
QUOTA_KINDS: Final[tuple[str, ...]] = ("questions", "insights", "resource_uploads")
_POLICY_KEYS: Final = ("requests_per_minute", "burst_multiplier", "burst_seconds", "quotas")


class TierError(ValueError):
    """A tiers file or mapping is wrong: ``key`` names where (``free.quotas.questions``)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"tiers: {key}: {detail}")
        self.key = key
        self.detail = detail


def _limit(key: str, value: object, *, allow_zero: bool = True) -> int | None:
    if value is None or value == "unlimited":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TierError(key, f"expected a whole number >= 0 or \"unlimited\", got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise TierError(key, f"expected a whole number {'>= 0' if allow_zero else '> 0'}, "
                             f"got {value!r}")
    return value


def _positive(key: str, value: object, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
        raise TierError(key, f"expected a number >= {low}, got {value!r}")
    return float(value)


def _unknown(key: str, name: str, allowed: tuple[str, ...]) -> TierError:
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return TierError(f"{key}{name}", f"unknown key{hint}; expected one of {', '.join(allowed)}")


@attrs.frozen(kw_only=True)
class TierPolicy:
    """What one tier allows. ``None`` = unlimited."""

    name: str
    requests_per_minute: int | None
    burst_multiplier: float = 2.0
    burst_seconds: float = 10.0
    quotas: Mapping[str, int | None] = attrs.field(factory=dict)

    @property
    def refill_per_second(self) -> float | None:
        """Tokens added to the bucket each second (the sustained rate)."""
        if self.requests_per_minute is None:
            return None
        return self.requests_per_minute / 60.0

    @property
    def bucket_capacity(self) -> float | None:
        """Tokens a full bucket holds: one second at the sustained rate plus the burst."""
        rate = self.refill_per_second
        if rate is None:
            return None
        return rate * (1.0 + (self.burst_multiplier - 1.0) * self.burst_seconds)

    def quota(self, kind: str) -> int | None:
        """The monthly limit of ``kind`` (``None`` = unlimited); an unknown kind is an error."""
        if kind not in QUOTA_KINDS:
            raise TierError(f"{self.name}.quotas.{kind}",
                            f"unknown quota kind; expected one of {', '.join(QUOTA_KINDS)}")
        return self.quotas.get(kind)


@attrs.frozen(kw_only=True)
class TierCatalog:
    """Every tier's policy, by name."""

    tiers: Mapping[str, TierPolicy]

    def __getitem__(self, tier: str) -> TierPolicy:
        try:
            return self.tiers[tier]
        except KeyError:
            raise TierError(tier, f"unknown tier; expected one of {', '.join(TIER_NAMES)}") \
                from None

    def names(self) -> tuple[str, ...]:
        return tuple(self.tiers)


_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "free": {"requests_per_minute": 100,
             "quotas": {"questions": 30, "insights": 5, "resource_uploads": 10}},
    "pro": {"requests_per_minute": 1_000,
            "quotas": {"questions": 300, "insights": 50, "resource_uploads": 200}},
    "team": {"requests_per_minute": 5_000,
             "quotas": {"questions": 3_000, "insights": 500, "resource_uploads": 2_000}},
    "enterprise": {"requests_per_minute": None,
                   "quotas": {"questions": None, "insights": None, "resource_uploads": None}},
}


def _policy(name: str, base: Mapping[str, Any], override: Mapping[str, Any]) -> TierPolicy:
    for key in override:
        if key not in _POLICY_KEYS:
            raise _unknown(f"{name}.", key, _POLICY_KEYS)
    quotas_in = override.get("quotas", {})
    if not isinstance(quotas_in, Mapping):
        raise TierError(f"{name}.quotas", f"expected a table, got {quotas_in!r}")
    for kind in quotas_in:
        if kind not in QUOTA_KINDS:
            raise _unknown(f"{name}.quotas.", kind, QUOTA_KINDS)
    merged = {**base["quotas"], **quotas_in}
    quotas = {kind: _limit(f"{name}.quotas.{kind}", merged.get(kind)) for kind in QUOTA_KINDS}
    rpm = override.get("requests_per_minute", base.get("requests_per_minute"))
    return TierPolicy(
        name=name,
        requests_per_minute=_limit(f"{name}.requests_per_minute", rpm, allow_zero=False),
        burst_multiplier=_positive(f"{name}.burst_multiplier",
                                   override.get("burst_multiplier", 2.0), 1.0),
        burst_seconds=_positive(f"{name}.burst_seconds", override.get("burst_seconds", 10.0),
                                0.0),
        quotas=quotas,
    )


def tiers_from_mapping(data: Mapping[str, Any]) -> TierCatalog:
    """The default catalog with ``data``'s overrides applied (every key checked by name)."""
    for name, table in data.items():
        if name not in TIER_NAMES:
            raise _unknown("", name, TIER_NAMES)
        if not isinstance(table, Mapping):
            raise TierError(name, f"expected a table, got {table!r}")
    return TierCatalog(tiers={name: _policy(name, _DEFAULTS[name], data.get(name, {}))
                              for name in TIER_NAMES})


DEFAULT_TIERS: Final = tiers_from_mapping({})


def load_tiers(path: str | Path | None) -> TierCatalog:
    """The catalog from the TOML file at ``path`` (``None`` or ``""``: the defaults)."""
    if not path:
        return DEFAULT_TIERS
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise TierError(str(file), "tiers file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise TierError(str(file), f"not valid TOML: {exc}") from None
    return tiers_from_mapping(data)


def quota_period(at: dt.datetime) -> str:
    """The quota period containing ``at`` (UTC calendar month): ``"2025-12"``."""
    at = at.astimezone(dt.UTC)
    return f"{at.year:04d}-{at.month:02d}"


def quota_resets_at(at: dt.datetime) -> dt.datetime:
    """The first instant of the month after ``at`` (UTC): when its quotas reset."""
    at = at.astimezone(dt.UTC)
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)
