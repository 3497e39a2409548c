"""Placement: which live node is the home of a key, by weighted rendezvous hashing.

Pure and sans-IO. Every node computes the same answer from the same member set, in any
process, with no coordination: each member draws a pseudo-random score per key from a stable
64-bit hash of (member name, key) and the highest score wins (highest random weight, HRW).

Weights follow the exponential race: ``score = -weight / ln(u)`` with ``u`` uniform in (0, 1),
so a member wins a key with probability ``weight / sum(weights)``. Removing a member moves only
the keys it owned; adding one moves only the keys it now owns (about ``weight / sum`` of them).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from hashlib import blake2b
from typing import Any

import attrs

__all__ = ["Member", "NoEligibleMember", "home", "moved", "score"]

_TWO_TO_53 = float(1 << 53)


def _check_weight(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not (
        isinstance(value, int | float) and math.isfinite(value) and value > 0
    ):
        raise ValueError(
            f"Member.{attribute.name} must be a finite number > 0, got {value!r}; "
            "use 1.0 for an ordinary node, 2.0 for one twice as big"
        )


def _check_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"Member.{attribute.name} must be a non-empty str, got {value!r}")


def _roles(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError(
            f"Member.roles must be an iterable of role names, got the str {value!r}; "
            f"write roles={{{value!r}}}"
        )
    return frozenset(value)


@attrs.frozen(kw_only=True)
class Member:
    """One live node as placement sees it."""

    name: str = attrs.field(validator=_check_name)
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_roles)
    weight: float = attrs.field(default=1.0, validator=_check_weight)
    #: Changes each time the node (re)starts: tells a restarted node from its predecessor.
    incarnation: str = ""


class NoEligibleMember(LookupError):
    """No member can be the home of a key (no members at all, or none with the role)."""

    def __init__(self, message: str, *, role: str | None, roles: dict[str, frozenset[str]]):
        super().__init__(message)
        self.role = role
        #: Each member's roles, by member name.
        self.roles = roles


@functools.lru_cache(maxsize=4096)
def _seeded(name: str) -> Any:
    """A blake2b state that has already absorbed the (length-prefixed) member name."""
    data = name.encode()
    return blake2b(len(data).to_bytes(4, "big") + data, digest_size=8)


def _unit(name: str, key: bytes) -> float:
    """A uniform in the open interval (0, 1), stable across processes and platforms."""
    hasher = _seeded(name).copy()
    hasher.update(key)
    # 53 bits, centred in its bucket: never 0.0, never 1.0, exact in a float.
    return ((int.from_bytes(hasher.digest(), "big") >> 11) + 0.5) / _TWO_TO_53


def score(member: Member, key: str) -> float:
    """The member's rendezvous score for ``key`` (higher wins)."""
    return -member.weight / math.log(_unit(member.name, key.encode()))


def home(key: str, members: Iterable[Member], *, role: str | None = None) -> Member:
    """The member that owns ``key``: the highest weighted rendezvous score.

    With ``role``, only members having that role are candidates. Ties (astronomically rare) go
    to the greater name, so the answer never depends on the order of ``members``.
    """
    encoded = key.encode()
    best: Member | None = None
    best_score = 0.0
    seen: list[Member] = []
    for member in members:
        seen.append(member)
        if role is not None and role not in member.roles:
            continue
        s = -member.weight / math.log(_unit(member.name, encoded))
        if best is None or s > best_score or (s == best_score and member.name > best.name):
            best, best_score = member, s
    if best is not None:
        return best
    roles = {m.name: m.roles for m in seen}
    if not seen:
        raise NoEligibleMember(
            f"no live member to place {key!r} on; start a node or wait for one to join",
            role=role, roles=roles,
        )
    listed = ", ".join(f"{name}: {sorted(r)}" for name, r in sorted(roles.items()))
    raise NoEligibleMember(
        f"no live member has role {role!r} to place {key!r} on (members' roles: {listed}); "
        f"start a node with role {role!r}",
        role=role, roles=roles,
    )


def moved(
    keys: Iterable[str],
    before: Iterable[Member],
    after: Iterable[Member],
    *,
    role: str | None = None,
) -> set[str]:
    """The keys whose home (by member name) differs between ``before`` and ``after``."""
    old, new = tuple(before), tuple(after)
    return {
        key for key in keys if home(key, old, role=role).name != home(key, new, role=role).name
    }
