"""Login sessions and refresh-token rotation, durable in the document store.

A login opens a session (a refresh-token *family*: ``auth_sessions/<family>``) that names the one
refresh token currently valid in it (``current_jti``). Refreshing presents that token; one
conditional update swaps ``current_jti`` to the new token's id only if the presented one is
still current and the session not revoked, so of two refreshes racing with the same token
exactly one wins. Presenting any other token of the family (one already spent: a stolen copy,
or the legitimate client after the thief used it) is reuse: the whole family is revoked, and
both holders must log in again (RFC 6819 5.2.2.3, OAuth 2.0 Security BCP 4.14).

Logout revokes the family. Access tokens are not looked up per request (they are short-lived,
15 minutes, and verified by signature alone), so a revoked session's access token lives until
it expires; its refresh token dies at once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, Final

import attrs

from gateway.tokens import RefreshClaims, TokenAuthority, TokenError, TokenPair
from tektree.persistence import DocumentStore, IndexSpec, format_timestamp

__all__ = ["SESSIONS", "SessionError", "Sessions"]

SESSIONS: Final = "auth_sessions"
INDEXES: Final = (
    (SESSIONS, IndexSpec(fields=(("user_id", 1), ("created_at", -1)), name="sessions_user")),
)


class SessionError(Exception):
    """A refresh refused: ``slug`` is the problem type (``invalid-token``,
    ``refresh-token-reused``, ``session-revoked``), ``detail`` says why."""

    def __init__(self, slug: str, detail: str, *, reason: str | None = None) -> None:
        super().__init__(f"{slug}: {detail}")
        self.slug = slug
        self.detail = detail
        self.reason = reason


def _now() -> str:
    return format_timestamp(dt.datetime.now(dt.UTC))


@attrs.define
class Sessions:
    """Sessions over ``store``, tokens from ``tokens``. Call :meth:`ensure_indexes` once."""

    store: DocumentStore
    tokens: TokenAuthority

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    async def open(self, *, user_id: str, role: str, via: str) -> TokenPair:
        """A new session (login, register): its first token pair."""
        family = f"ses_{secrets.token_urlsafe(16)}"
        pair = self.tokens.issue_pair(user_id=user_id, role=role, family=family)
        stamp = _now()
        await self.store.insert(SESSIONS, {
            "_id": family, "user_id": user_id, "current_jti": pair.refresh_claims.token_id,
            "created_at": stamp, "rotated_at": stamp, "rotations": 0, "via": via,
            "expires_at": _stamp(pair.refresh_claims.expires_at),
            "revoked_at": None, "revoked_reason": None,
        })
        return pair

    async def refresh(self, refresh_token: str, *, role_of: Any) -> TokenPair:
        """Rotate: the new pair, or :class:`SessionError`. ``role_of(user_id)`` (async) gives
        the role the new access token carries (read fresh: a role change shows at refresh)."""
        try:
            claims = self.tokens.verify_refresh(refresh_token)
        except TokenError as exc:
            raise SessionError("invalid-token", f"refresh token refused: {exc.detail}",
                               reason=exc.reason) from None
        session = await self.store.get(SESSIONS, claims.family)
        if session is None or session["user_id"] != claims.user_id:
            raise SessionError("session-revoked", "no such session; log in again")
        if session["revoked_at"] is not None:
            raise SessionError("session-revoked",
                               f"the session was revoked ({session['revoked_reason']}); "
                               "log in again")
        role = await role_of(claims.user_id)
        if role is None:
            await self.revoke(claims.family, reason="user gone")
            raise SessionError("session-revoked", "the user no longer exists")
        pair = self.tokens.issue_pair(user_id=claims.user_id, role=role, family=claims.family)
        swapped = await self.store.update(
            SESSIONS,
            {"_id": claims.family, "current_jti": claims.token_id, "revoked_at": None},
            {"$set": {"current_jti": pair.refresh_claims.token_id, "rotated_at": _now(),
                      "expires_at": _stamp(pair.refresh_claims.expires_at)},
             "$inc": {"rotations": 1}},
        )
        if swapped:
            return pair
        await self._on_reuse(claims)
        raise SessionError("refresh-token-reused",
                           "this refresh token was already used; its session is revoked, so "
                           "every token of it is refused: log in again")

    async def _on_reuse(self, claims: RefreshClaims) -> None:
        await self.revoke(claims.family, reason="refresh token reused")

    async def revoke(self, family: str, *, reason: str) -> bool:
        """Revoke a session (logout, reuse); True when it was live."""
        return bool(await self.store.update(
            SESSIONS, {"_id": family, "revoked_at": None},
            {"$set": {"revoked_at": _now(), "revoked_reason": reason}}))

    async def get(self, family: str) -> dict[str, Any] | None:
        return await self.store.get(SESSIONS, family)


def _stamp(epoch_seconds: float) -> str:
    return format_timestamp(dt.datetime.fromtimestamp(epoch_seconds, dt.UTC))
