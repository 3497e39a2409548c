"""Accounts: registration, authentication, email verification, profiles, roles and tiers.

Stateless and store-backed (the seed's ``users`` collection), so any node can serve any call.
Email and handle are unique case-insensitively (unique indexes on their lowercase forms, so the
store, not a read-then-write race, decides). Passwords are hashed with argon2id in a worker
thread (~120 ms at the default cost here: never on the event loop). Every change that the rest
of TekTree reacts to is written with its domain event in one atomic unit (the outbox).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from actors import events
from tektree.persistence import DocumentStore, DuplicateKeyError, IndexSpec, format_timestamp

USERS: Final = "users"
EMAIL_TOKENS: Final = "email_tokens"

Role = Literal["user", "moderator", "admin"]
Tier = Literal["free", "pro", "team", "enterprise"]
ROLES: Final[tuple[str, ...]] = ("user", "moderator", "admin")
TIERS: Final[tuple[str, ...]] = ("free", "pro", "team", "enterprise")

INDEXES: Final = (
    (USERS, IndexSpec(fields=(("email_lower", 1),), unique=True, name="users_email_unique")),
    (USERS, IndexSpec(fields=(("handle_lower", 1),), unique=True, name="users_handle_unique")),
    (USERS, IndexSpec(fields=(("created_at", -1),), name="users_created_at")),
    (EMAIL_TOKENS, IndexSpec(fields=(("user_id", 1),), name="email_tokens_user")),
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+")
_HANDLE = re.compile(r"[A-Za-z0-9_]{3,30}")
_URL = re.compile(r"https://[^\s]{1,2000}")
PASSWORD_MIN: Final = 10
PASSWORD_MAX: Final = 256
PROFILE_FIELDS: Final = ("first_name", "last_name", "bio", "avatar", "preferences")
PREFERENCE_KEYS: Final = ("email_notifications", "digest", "theme", "language", "timezone",
                          "leaderboard_opt_out")
TOKEN_TTL: Final = dt.timedelta(hours=24)


class AccountError(Exception):
    """Bad input or a refused operation; ``field`` and ``rule`` name what and why."""

    def __init__(self, field: str, rule: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.rule = rule
        self.detail = detail


class AuthenticationFailed(Exception):
    """Wrong email or password (deliberately not saying which)."""

    def __init__(self) -> None:
        super().__init__("email or password is wrong")


class AccountSuspended(Exception):
    """The right password, but the account is suspended (said only after the password is
    verified, so it reveals nothing to whoever does not know it)."""

    def __init__(self, user_id: str, until: str | None, reason: str) -> None:
        when = f"until {until}" if until else "until a moderator reinstates it"
        super().__init__(f"account {user_id!r} is suspended {when}: {reason}")
        self.user_id = user_id
        self.until = until
        self.reason = reason


@attrs.frozen(kw_only=True)
class Viewer:
    """Who is reading or acting, as the gateway authenticated them (``user_id`` None: nobody
    signed in). Reads use ``role`` to show moderators what others cannot see; moderation
    re-reads the role from the store before acting."""

    user_id: str | None = None
    role: str = attrs.field(default="user", validator=attrs.validators.in_(ROLES))

    @property
    def is_moderator(self) -> bool:
        return self.role in ("moderator", "admin")


ANONYMOUS: Final = Viewer()


def active_suspension(doc: Mapping[str, Any] | None, now: str) -> Mapping[str, Any] | None:
    """The user document's suspension if it holds at ``now`` (ISO 8601, UTC), else None."""
    suspension = None if doc is None else doc.get("suspension")
    if not suspension:
        return None
    until = suspension.get("until")
    return suspension if until is None or until > now else None


async def ensure_active(store: DocumentStore, user_id: str, *, field: str = "user_id") -> None:
    """Refuse a write by a suspended user (``AccountError(field, "suspended")``). A user the
    store does not hold is not suspended: authentication is the gateway's."""
    suspension = active_suspension(await store.get(USERS, user_id), _now(None))
    if suspension is not None:
        until = suspension.get("until")
        raise AccountError(field, "suspended",
                           f"user {user_id!r} is suspended "
                           f"{'until ' + until if until else 'indefinitely'} and cannot post: "
                           f"{suspension.get('reason', '')}")


@attrs.frozen(kw_only=True)
class User:
    """A user as the rest of TekTree sees it (never the password hash)."""

    uid: str
    email: str
    email_verified: bool
    handle: str
    first_name: str
    last_name: str
    avatar: str
    bio: str
    tier: str
    role: str
    preferences: Mapping[str, Any]
    created_at: str
    updated_at: str
    #: ``{"by", "reason", "at", "until"}`` (``until`` None: indefinitely) while suspended.
    suspension: Mapping[str, Any] | None = None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> User:
        return cls(**{f.name: doc.get(f.name, f.default if f.default is not attrs.NOTHING
                                      else "") for f in attrs.fields(cls)})

    def is_suspended(self, now: dt.datetime | None = None) -> bool:
        return active_suspension({"suspension": self.suspension}, _now(now)) is not None


def hasher_for_tests() -> PasswordHasher:
    """A cheap argon2id for tests only (production uses the library's RFC 9106 defaults)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


# -- validation (pure) ---------------------------------------------------------------------------
def validate_email(value: object) -> str:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL.fullmatch(value.strip()):
        raise AccountError("email", "format", f"{value!r} is not an email address")
    return value.strip()


def validate_handle(value: object) -> str:
    if not isinstance(value, str) or not _HANDLE.fullmatch(value):
        raise AccountError("handle", "format",
                           f"{value!r} must be 3 to 30 letters, digits or '_'")
    return value


def validate_password(value: object) -> str:
    if not isinstance(value, str) or not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        shown = f"{len(value)} characters" if isinstance(value, str) else repr(type(value))
        raise AccountError("password", "length",
                           f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters, got {shown}")
    return value


def _text(field: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        got = f"{len(value)} characters" if isinstance(value, str) else f"{value!r}"
        raise AccountError(field, "length",
                           f"must be text of at most {limit} characters, got {got}")
    return value.strip()


def validate_profile_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check a profile update; returns the normalized changes. Unknown fields are errors."""
    out: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in PROFILE_FIELDS:
            raise AccountError(field, "unknown",
                               f"is not a profile field; allowed: {', '.join(PROFILE_FIELDS)}")
        if field in ("first_name", "last_name"):
            out[field] = _text(field, value, 100)
        elif field == "bio":
            out[field] = _text(field, value, 1000)
        elif field == "avatar":
            if value != "" and (not isinstance(value, str) or not _URL.fullmatch(value)):
                raise AccountError("avatar", "format", f"{value!r} is not an https:// URL")
            out[field] = value
        else:
            if not isinstance(value, Mapping):
                raise AccountError("preferences", "type", "must be an object")
            bad = sorted(set(value) - set(PREFERENCE_KEYS))
            if bad:
                raise AccountError(f"preferences.{bad[0]}", "unknown",
                                   f"allowed: {', '.join(PREFERENCE_KEYS)}")
            out[field] = dict(value)
    return out


def _now(clock: dt.datetime | None) -> str:
    return format_timestamp(clock or dt.datetime.now(dt.UTC))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- the service -----------------------------------------------------------------------------------
class Accounts:
    """Account operations over a :class:`DocumentStore`. Call :meth:`ensure_indexes` once."""

    def __init__(
        self,
        store: DocumentStore,
        *,
        hasher: PasswordHasher | None = None,
        hash_threads: int = 2,
        producer_id: str = "accounts",
    ) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self._limiter = trio.CapacityLimiter(hash_threads)
        self._producer = producer_id
        self._dummy_hash: str | None = None

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    async def _hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(self.hasher.hash, password, limiter=self._limiter)

    async def _verify(self, hashed: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self.hasher.verify(hashed, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await trio.to_thread.run_sync(check, limiter=self._limiter)

    async def register(
        self,
        *,
        email: str,
        password: str,
        handle: str,
        first_name: str = "",
        last_name: str = "",
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> User:
        email = validate_email(email)
        handle = validate_handle(handle)
        password = validate_password(password)
        first_name = _text("first_name", first_name, 100)
        last_name = _text("last_name", last_name, 100)
        uid = f"usr_{secrets.token_hex(8)}"
        stamp = _now(now)
        doc = {
            "_id": uid, "uid": uid, "email": email, "email_lower": email.lower(),
            "email_verified": False, "password_hash": await self._hash(password),
            "handle": handle, "handle_lower": handle.lower(), "first_name": first_name,
            "last_name": last_name, "avatar": "", "bio": "", "tier": "free", "role": "user",
            "preferences": {}, "created_at": stamp, "updated_at": stamp, "last_login_at": None,
        }
        registered = events.UserRegistered(user_id=uid, email=email, handle=handle)
        try:
            async with self.store.unit() as unit:
                unit.insert(USERS, doc)
                unit.add_event(events.to_envelope(
                    registered, event_id=f"evt_registered_{uid}", producer_id=self._producer,
                    correlation_id=correlation_id, timestamp=stamp))
        except DuplicateKeyError as exc:
            field = "handle" if "handle" in exc.index else "email"
            raise AccountError(field, "unique", f"{doc[field]!r} is already taken") from None
        return User.from_document(doc)

    async def authenticate(self, *, email: str, password: str) -> User:
        page = await self.store.find(USERS, {"email_lower": str(email).strip().lower()}, limit=1)
        if not page.items:
            # Same work as a real check, so timing does not reveal which emails exist.
            if self._dummy_hash is None:
                self._dummy_hash = await self._hash(secrets.token_hex(16))
            await self._verify(self._dummy_hash, str(password))
            raise AuthenticationFailed()
        doc = page.items[0]
        if not await self._verify(doc["password_hash"], str(password)):
            raise AuthenticationFailed()
        suspension = active_suspension(doc, _now(None))
        if suspension is not None:
            raise AccountSuspended(doc["_id"], suspension.get("until"),
                                   str(suspension.get("reason", "")))
        changes: dict[str, Any] = {"last_login_at": _now(None)}
        if self.hasher.check_needs_rehash(doc["password_hash"]):
            changes["password_hash"] = await self._hash(str(password))
        await self.store.update(USERS, doc["_id"], {"$set": changes})
        return User.from_document({**doc, **changes})

    async def get(self, uid: str) -> User | None:
        doc = await self.store.get(USERS, uid)
        return None if doc is None else User.from_document(doc)

    async def by_handle(self, handle: str) -> User | None:
        page = await self.store.find(USERS, {"handle_lower": handle.lower()}, limit=1)
        return User.from_document(page.items[0]) if page.items else None

    async def issue_email_token(self, uid: str, *, now: dt.datetime | None = None) -> str:
        """A single-use token (returned once; only its hash is stored) valid for 24 hours."""
        if await self.store.get(USERS, uid) is None:
            raise AccountError("user_id", "exists", f"no user {uid!r}")
        token = secrets.token_urlsafe(32)
        issued = now or dt.datetime.now(dt.UTC)
        await self.store.insert(EMAIL_TOKENS, {
            "_id": _token_hash(token), "user_id": uid,
            "expires_at": format_timestamp(issued + TOKEN_TTL),
        })
        return token

    async def verify_email(self, token: str, *, now: dt.datetime | None = None) -> User:
        record = await self.store.get(EMAIL_TOKENS, _token_hash(str(token)))
        if record is None:
            raise AccountError("token", "valid", "unknown or already used verification token")
        if record["expires_at"] < _now(now):
            await self.store.delete(EMAIL_TOKENS, record["_id"])
            raise AccountError("token", "expired", "the verification token has expired")
        uid = record["user_id"]
        async with self.store.unit() as unit:
            unit.delete(EMAIL_TOKENS, record["_id"])
            unit.update(USERS, uid, {"$set": {"email_verified": True, "updated_at": _now(now)}})
            unit.add_event(events.to_envelope(
                events.UserEmailVerified(user_id=uid), event_id=f"evt_verified_{record['_id']}",
                producer_id=self._producer))
        user = await self.get(uid)
        assert user is not None
        return user

    async def update_profile(
        self, uid: str, changes: Mapping[str, Any], *, correlation_id: str | None = None
    ) -> User:
        clean = validate_profile_changes(changes)
        if not clean:
            raise AccountError("body", "empty", f"name at least one of {', '.join(PROFILE_FIELDS)}")
        clean["updated_at"] = _now(None)
        await self._update_with_event(uid, clean, events.UserProfileUpdated(
            user_id=uid, changed_fields=tuple(sorted(k for k in clean if k != "updated_at"))),
            correlation_id)
        user = await self.get(uid)
        assert user is not None
        return user

    async def set_role(self, uid: str, role: str) -> User:
        if role not in ROLES:
            raise AccountError("role", "enum", f"{role!r} is not one of {', '.join(ROLES)}")
        return await self._set(uid, {"role": role})

    async def set_tier(self, uid: str, tier: str) -> User:
        if tier not in TIERS:
            raise AccountError("tier", "enum", f"{tier!r} is not one of {', '.join(TIERS)}")
        # An operator's tier holds until billing changes it next (no lapse of a canceled plan).
        return await self._set(uid, {"tier": tier, "tier_until": None})

    async def _set(self, uid: str, changes: dict[str, Any]) -> User:
        changes["updated_at"] = _now(None)
        if not await self.store.update(USERS, uid, {"$set": changes}):
            raise AccountError("user_id", "exists", f"no user {uid!r}")
        user = await self.get(uid)
        assert user is not None
        return user

    async def _update_with_event(
        self, uid: str, changes: dict[str, Any], evt: object, correlation_id: str | None
    ) -> None:
        if await self.store.get(USERS, uid) is None:
            raise AccountError("user_id", "exists", f"no user {uid!r}")
        async with self.store.unit() as unit:
            unit.update(USERS, uid, {"$set": changes})
            unit.add_event(events.to_envelope(
                evt, event_id=f"evt_{secrets.token_hex(12)}", producer_id=self._producer,
                correlation_id=correlation_id))


__all__ = [
    "ANONYMOUS",
    "EMAIL_TOKENS",
    "INDEXES",
    "ROLES",
    "TIERS",
    "USERS",
    "AccountError",
    "AccountSuspended",
    "Accounts",
    "AuthenticationFailed",
    "Role",
    "Tier",
    "User",
    "Viewer",
    "active_suspension",
    "ensure_active",
    "hasher_for_tests",
    "validate_email",
    "validate_handle",
    "validate_password",
    "validate_profile_changes",
]
