"""Who is calling: bearer access tokens, roles (RBAC) and the client address.

``Authorization: Bearer <access token>`` is verified by signature (:mod:`gateway.tokens`); a
missing, malformed or refused token is a 401 problem carrying the token's ``reason`` and a
``WWW-Authenticate`` challenge (RFC 6750). Roles rank ``user < moderator < admin``. The role in
the token is what the user had when it was issued; routes that need ``moderator`` or ``admin``
read the user's current role from the accounts instead (``Call.require_role``), so a demotion
takes effect at once, not 15 minutes later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from gateway.problems import Problem
from gateway.tokens import TokenAuthority, TokenError

__all__ = ["ROLE_RANK", "Principal", "bearer_token", "client_address", "has_role",
           "principal_from_header", "require_user"]

ROLE_RANK: Final[Mapping[str, int]] = {"user": 0, "moderator": 1, "admin": 2}


@attrs.frozen(kw_only=True)
class Principal:
    """An authenticated caller (from a verified access token)."""

    user_id: str
    role: str
    session_id: str
    expires_at: float


def has_role(role: str, needed: str) -> bool:
    """Whether ``role`` is at least ``needed`` (an unknown role is below every known one)."""
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


def _challenge(error: str, description: str) -> dict[str, str]:
    text = description.replace('"', "'")
    return {"WWW-Authenticate": f'Bearer error="{error}", error_description="{text}"'}


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None without one; 401 if malformed."""
    if header is None or header == "":
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem("unauthorized", "the Authorization header must be 'Bearer <access token>'",
                      headers=_challenge("invalid_request", "expected a Bearer token"),
                      reason="malformed_header")
    return token.strip()


def principal_from_header(tokens: TokenAuthority, header: str | None) -> Principal | None:
    """The caller named by ``header``, None when anonymous; a refused token is a 401."""
    token = bearer_token(header)
    if token is None:
        return None
    try:
        claims = tokens.verify_access(token)
    except TokenError as exc:
        raise Problem("invalid-token", f"access token refused ({exc.reason}): {exc.detail}",
                      headers=_challenge("invalid_token", exc.reason),
                      reason=exc.reason) from None
    return Principal(user_id=claims.user_id, role=claims.role, session_id=claims.session_id,
                     expires_at=claims.expires_at)


def require_user(principal: Principal | None) -> Principal:
    """The caller, or a 401 when the request carries no token."""
    if principal is None:
        raise Problem("unauthorized", "this route needs an access token "
                      "('Authorization: Bearer <token>' from POST /api/v1/auth/login)",
                      headers=_challenge("invalid_request", "no access token"),
                      reason="missing_token")
    return principal


def client_address(remote: str | None, forwarded_for: str | None, trusted_hops: int) -> str:
    """The client's IP: the peer address, or with ``trusted_hops`` proxies in front the entry
    of ``X-Forwarded-For`` that the outermost trusted proxy saw."""
    peer = remote or "unknown"
    if trusted_hops <= 0 or not forwarded_for:
        return peer
    hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    if not hops:
        return peer
    # The last entry was added by the proxy next to us; each trusted proxy added one.
    return hops[max(0, len(hops) - trusted_hops)]
