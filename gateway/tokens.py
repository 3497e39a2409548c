"""Access and refresh tokens: RS256 JWTs signed by the node's key, verified with a reason.

```python
key = load_or_create_key(data_dir / KEY_FILE)        # generated on first start (0600)
tokens = TokenAuthority(key)
pair = tokens.issue_pair(user_id="usr_1", role="user", family="fam_1")
claims = tokens.verify_access(pair.access_token)     # AccessClaims, or raises TokenError
claims.user_id, claims.role, claims.expires_at
tokens.jwks()                                        # what /.well-known/jwks.json serves
```

Only ``RS256`` is accepted, whatever the token's header says (the header names the algorithm
but never chooses it): ``alg: none``, ``HS256`` signed with the public key (the classic
key-confusion attack) and any other algorithm are refused before a signature is checked. The key
is chosen by the header's ``kid`` (RFC 7638 thumbprint of the public key) among the signing key
and any older public keys still accepted during a rotation.

Expiry is checked against :attr:`TokenAuthority.clock` (``time.time`` unless given), not by
PyJWT, so tests move time instead of sleeping. Every refusal is a :class:`TokenError` whose
``reason`` is one of :data:`REASONS`; gateways map it to 401 and sockets to close code 4401.
Verified access tokens are remembered (an LRU keyed by the token itself, so a hit is exactly
as trustworthy as a fresh check); the expiry is checked again on every hit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import attrs
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "ACCESS_TTL_SECONDS",
    "ALGORITHM",
    "KEY_FILE",
    "REASONS",
    "REFRESH_TTL_SECONDS",
    "AccessClaims",
    "Reason",
    "RefreshClaims",
    "SigningKey",
    "TokenAuthority",
    "TokenError",
    "TokenPair",
    "VerifyingKey",
    "generate_key",
    "load_key",
    "load_or_create_key",
    "load_public_key",
]

ALGORITHM: Final = "RS256"
ACCESS_TTL_SECONDS: Final = 15 * 60
REFRESH_TTL_SECONDS: Final = 7 * 24 * 3600
#: The generated key's file name under the node's data directory.
KEY_FILE: Final = "jwt-rs256.pem"
KEY_BITS: Final = 2048
_CACHE_SIZE: Final = 4096

Reason = Literal[
    "malformed", "alg_none", "wrong_algorithm", "unknown_key", "bad_signature", "expired",
    "not_yet_valid", "wrong_issuer", "wrong_audience", "wrong_type", "missing_claim",
]
REASONS: Final[tuple[Reason, ...]] = (
    "malformed", "alg_none", "wrong_algorithm", "unknown_key", "bad_signature", "expired",
    "not_yet_valid", "wrong_issuer", "wrong_audience", "wrong_type", "missing_claim",
)
TokenType = Literal["access", "refresh"]


class TokenError(Exception):
    """A token refused: ``reason`` (one of :data:`REASONS`) says why, ``detail`` in words."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


# -- keys -----------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _public_jwk(public: rsa.RSAPublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    members = {"e": _int_b64(numbers.e), "kty": "RSA", "n": _int_b64(numbers.n)}
    # RFC 7638: the thumbprint hashes the required members, sorted, without whitespace.
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    kid = _b64(hashlib.sha256(canonical).digest())
    return {**members, "kid": kid, "use": "sig", "alg": ALGORITHM}


@attrs.frozen(kw_only=True)
class VerifyingKey:
    """A public key that tokens may be signed with, and its JWK (``kid`` = thumbprint)."""

    public_key: rsa.RSAPublicKey = attrs.field(repr=False)
    jwk: Mapping[str, str] = attrs.field(repr=False)

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @classmethod
    def of(cls, public: rsa.RSAPublicKey) -> VerifyingKey:
        return cls(public_key=public, jwk=_public_jwk(public))


@attrs.frozen(kw_only=True)
class SigningKey:
    """The RSA private key that signs tokens, with its public half."""

    private_key: rsa.RSAPrivateKey = attrs.field(repr=False)
    public: VerifyingKey

    @property
    def kid(self) -> str:
        return self.public.kid

    @classmethod
    def of(cls, private: rsa.RSAPrivateKey) -> SigningKey:
        return cls(private_key=private, public=VerifyingKey.of(private.public_key()))

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())


def generate_key(bits: int = KEY_BITS) -> SigningKey:
    """A fresh RSA key (tens to hundreds of ms: call it in a worker thread from trio)."""
    return SigningKey.of(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def load_key(pem: bytes, *, source: str = "<memory>") -> SigningKey:
    """The signing key in PEM (PKCS#8 or PKCS#1, unencrypted); ValueError names ``source``."""
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < KEY_BITS:
        raise ValueError(f"{source}: RS256 needs an RSA private key of at least {KEY_BITS} bits")
    return SigningKey.of(private)


def load_public_key(pem: bytes, *, source: str = "<memory>") -> VerifyingKey:
    """A public key still accepted (the previous key during a rotation), in PEM."""
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: not a PEM public key ({exc})") from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError(f"{source}: RS256 needs an RSA public key")
    return VerifyingKey.of(public)


def load_or_create_key(path: Path) -> SigningKey:
    """The key in ``path``; created there (mode 0600) when absent.

    Creation is atomic and never overwrites: the key is written to a private temporary file
    and hard-linked into place, so two processes starting on one data directory end up with
    the same key (the loser of the race reads the winner's). Blocking: run it in a thread.
    """
    try:
        return load_key(path.read_bytes(), source=str(path))
    except FileNotFoundError:
        pass
    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(key.private_pem())
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return load_key(path.read_bytes(), source=str(path))
    finally:
        temporary.unlink(missing_ok=True)
    return key


# -- claims -----------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class AccessClaims:
    """What a verified access token says: who, which role, until when (epoch seconds)."""

    user_id: str
    role: str
    token_id: str
    session_id: str
    issued_at: float
    expires_at: float


@attrs.frozen(kw_only=True)
class RefreshClaims:
    """A verified refresh token: its id and its rotation family (one per login)."""

    user_id: str
    token_id: str
    family: str
    issued_at: float
    expires_at: float


@attrs.frozen(kw_only=True)
class TokenPair:
    """What login, register and refresh return (the seed's token response)."""

    access_token: str
    refresh_token: str
    access_claims: AccessClaims
    refresh_claims: RefreshClaims
    token_type: str = "Bearer"

    @property
    def expires_in(self) -> int:
        return round(self.access_claims.expires_at - self.access_claims.issued_at)

    def to_json(self) -> dict[str, Any]:
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "token_type": self.token_type, "expires_in": self.expires_in}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(16)}"


_REQUIRED: Final = ("iss", "aud", "sub", "iat", "exp", "jti", "typ")
_DECODE_ERRORS: Final[tuple[tuple[type[Exception], Reason], ...]] = (
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidAudienceError, "wrong_audience"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.MissingRequiredClaimError, "missing_claim"),
    (jwt.InvalidAlgorithmError, "wrong_algorithm"),
    (jwt.InvalidTokenError, "malformed"),
)


class TokenAuthority:
    """Issues and verifies the node's tokens.

    ``previous_keys`` are public keys still accepted (tokens signed before a key rotation stay
    valid until they expire). ``leeway_seconds`` tolerates clock skew between nodes.
    """

    def __init__(
        self,
        key: SigningKey,
        *,
        previous_keys: Iterable[VerifyingKey] = (),
        issuer: str = "tektree",
        audience: str = "tektree-api",
        access_ttl_seconds: float = ACCESS_TTL_SECONDS,
        refresh_ttl_seconds: float = REFRESH_TTL_SECONDS,
        leeway_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if access_ttl_seconds <= 0 or refresh_ttl_seconds <= 0 or leeway_seconds < 0:
            raise ValueError("token lifetimes must be > 0 seconds and the leeway >= 0")
        self.key = key
        self.keys: dict[str, VerifyingKey] = {k.kid: k for k in previous_keys}
        self.keys[key.kid] = key.public
        self.issuer = issuer
        self.audience = audience
        self.access_ttl_seconds = float(access_ttl_seconds)
        self.refresh_ttl_seconds = float(refresh_ttl_seconds)
        self.leeway_seconds = float(leeway_seconds)
        self.clock = clock
        #: Verified access tokens by the SHA-256 digest of the token (33 bytes of key, not the
        #: ~700-character token: thousands of sockets each verify one), oldest first.
        self._verified: OrderedDict[bytes, AccessClaims] = OrderedDict()

    # -- issuing -----------------------------------------------------------------------
    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        headers = {"kid": self.key.kid, "typ": typ}
        return jwt.encode(claims, self.key.private_key, algorithm=ALGORITHM, headers=headers)

    def issue_access(
        self, *, user_id: str, role: str, session_id: str = ""
    ) -> tuple[str, AccessClaims]:
        """A signed access token (``access_ttl_seconds``) and its claims."""
        now = int(self.clock())
        claims = AccessClaims(user_id=user_id, role=role, token_id=_new_id("at"),
                              session_id=session_id, issued_at=float(now),
                              expires_at=float(int(now + self.access_ttl_seconds)))
        token = self._sign({
            "iss": self.issuer, "aud": self.audience, "sub": user_id, "typ": "access",
            "jti": claims.token_id, "sid": session_id, "role": role,
            "iat": now, "nbf": now, "exp": int(claims.expires_at),
        }, "at+jwt")
        return token, claims

    def issue_refresh(self, *, user_id: str, family: str) -> tuple[str, RefreshClaims]:
        """A signed refresh token (``refresh_ttl_seconds``) of rotation family ``family``."""
        now = int(self.clock())
        claims = RefreshClaims(user_id=user_id, token_id=_new_id("rt"), family=family,
                               issued_at=float(now),
                               expires_at=float(int(now + self.refresh_ttl_seconds)))
        token = self._sign({
            "iss": self.issuer, "aud": self.audience, "sub": user_id, "typ": "refresh",
            "jti": claims.token_id, "fam": family,
            "iat": now, "nbf": now, "exp": int(claims.expires_at),
        }, "JWT")
        return token, claims

    def issue_pair(self, *, user_id: str, role: str, family: str) -> TokenPair:
        """An access token and a refresh token of ``family`` (the session id of both)."""
        access, access_claims = self.issue_access(user_id=user_id, role=role, session_id=family)
        refresh, refresh_claims = self.issue_refresh(user_id=user_id, family=family)
        return TokenPair(access_token=access, refresh_token=refresh,
                         access_claims=access_claims, refresh_claims=refresh_claims)

    # -- verifying -----------------------------------------------------------------------
    def verify_access(self, token: str) -> AccessClaims:
        """The claims of a valid access token; :class:`TokenError` with its reason otherwise."""
        digest = (hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
                  if isinstance(token, str) else b"")
        cached = self._verified.get(digest)
        if cached is not None:
            self._check_expiry(cached.expires_at)
            self._verified.move_to_end(digest)
            return cached
        payload = self._decode(token, "access")
        role = payload.get("role")
        if not isinstance(role, str) or not role:
            raise TokenError("missing_claim", "an access token needs a 'role' claim")
        claims = AccessClaims(
            user_id=payload["sub"], role=role, token_id=payload["jti"],
            session_id=str(payload.get("sid", "")), issued_at=float(payload["iat"]),
            expires_at=float(payload["exp"]))
        self._verified[digest] = claims
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def verify_refresh(self, token: str) -> RefreshClaims:
        """The claims of a valid refresh token (whether it is still unspent is the session
        store's business, not the signature's)."""
        payload = self._decode(token, "refresh")
        family = payload.get("fam")
        if not isinstance(family, str) or not family:
            raise TokenError("missing_claim", "a refresh token needs a 'fam' claim")
        return RefreshClaims(user_id=payload["sub"], token_id=payload["jti"], family=family,
                             issued_at=float(payload["iat"]), expires_at=float(payload["exp"]))

    def _decode(self, token: str, typ: TokenType) -> dict[str, Any]:
        if not isinstance(token, str) or token.count(".") != 2:
            raise TokenError("malformed", "a JWT is three base64url parts joined by '.'")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenError("malformed", f"unreadable header: {exc}") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenError("alg_none", "unsigned tokens (alg: none) are never accepted")
        if alg != ALGORITHM:
            raise TokenError("wrong_algorithm", f"alg {alg!r} is not accepted; only {ALGORITHM}")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown_key", f"kid {kid!r} is not one of this issuer's keys "
                                            "(see /.well-known/jwks.json)")
        try:
            payload: dict[str, Any] = jwt.decode(
                token, key.public_key, algorithms=[ALGORITHM], audience=self.audience,
                issuer=self.issuer,
                options={"require": list(_REQUIRED), "verify_exp": False,
                         "verify_nbf": False, "verify_iat": False})
        except jwt.InvalidTokenError as exc:
            reason = next(r for kind, r in _DECODE_ERRORS if isinstance(exc, kind))
            raise TokenError(reason, str(exc)) from None
        if payload.get("typ") != typ:
            raise TokenError("wrong_type", f"a {payload.get('typ')!r} token where an {typ} "
                                           "token was expected")
        for name in ("sub", "jti"):
            if not isinstance(payload[name], str) or not payload[name]:
                raise TokenError("malformed", f"claim {name!r} must be a non-empty string")
        for name in ("iat", "exp", *(("nbf",) if "nbf" in payload else ())):
            value = payload[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TokenError("malformed", f"claim {name!r} must be a number of seconds")
        self._check_expiry(float(payload["exp"]))
        not_before = max(float(payload["iat"]), float(payload.get("nbf", 0)))
        if not_before > self.clock() + self.leeway_seconds:
            raise TokenError("not_yet_valid", "the token is dated in the future")
        return payload

    def _check_expiry(self, expires_at: float) -> None:
        now = self.clock()
        if now >= expires_at + self.leeway_seconds:
            raise TokenError("expired", f"the token expired {now - expires_at:.0f} s ago")

    # -- publishing -----------------------------------------------------------------------
    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JSON Web Key Set of every accepted key, the signing key first."""
        keys = [dict(self.key.public.jwk)]
        keys += [dict(k.jwk) for kid, k in self.keys.items() if kid != self.key.kid]
        return {"keys": keys}
