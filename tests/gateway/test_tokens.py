"""RS256 tokens: issue, verify, and every way a forged or stale token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.tokens import (
    ACCESS_TTL_SECONDS,
    KEY_FILE,
    REFRESH_TTL_SECONDS,
    SigningKey,
    TokenAuthority,
    TokenError,
    generate_key,
    load_key,
    load_or_create_key,
    load_public_key,
)


class Clock:
    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_key()


@pytest.fixture(scope="module")
def other_key() -> SigningKey:
    return generate_key()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(key: SigningKey, clock: Clock) -> TokenAuthority:
    return TokenAuthority(key, clock=clock)


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def payload_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


def refused(tokens: TokenAuthority, token: Any, *, refresh: bool = False) -> str:
    with pytest.raises(TokenError) as info:
        (tokens.verify_refresh if refresh else tokens.verify_access)(token)
    assert info.value.detail and info.value.reason in str(info.value)
    return info.value.reason


def test_access_token_round_trip(tokens: TokenAuthority, clock: Clock) -> None:
    token, issued = tokens.issue_access(user_id="usr_1", role="moderator", session_id="fam_1")
    claims = tokens.verify_access(token)
    assert claims == issued
    assert (claims.user_id, claims.role, claims.session_id) == ("usr_1", "moderator", "fam_1")
    assert claims.expires_at - claims.issued_at == ACCESS_TTL_SECONDS == 900
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "kid": tokens.key.kid, "typ": "at+jwt"}


def test_pair_and_refresh_claims(tokens: TokenAuthority) -> None:
    pair = tokens.issue_pair(user_id="usr_1", role="user", family="fam_9")
    assert pair.to_json()["expires_in"] == 900 and pair.to_json()["token_type"] == "Bearer"
    claims = tokens.verify_refresh(pair.refresh_token)
    assert (claims.user_id, claims.family) == ("usr_1", "fam_9")
    assert claims.expires_at - claims.issued_at == REFRESH_TTL_SECONDS == 7 * 86400
    assert tokens.verify_access(pair.access_token).session_id == "fam_9"
    assert claims.token_id != pair.access_claims.token_id


def test_expired_after_fifteen_minutes_plus_leeway(tokens: TokenAuthority, clock: Clock) -> None:
    token, _ = tokens.issue_access(user_id="usr_1", role="user")
    clock.now += ACCESS_TTL_SECONDS + tokens.leeway_seconds - 1
    tokens.verify_access(token)  # inside the leeway (and now remembered)
    clock.now += 1
    assert refused(tokens, token) == "expired"  # the remembered claims expire as well


def test_expired_refresh(tokens: TokenAuthority, clock: Clock) -> None:
    token, _ = tokens.issue_refresh(user_id="usr_1", family="f")
    clock.now += REFRESH_TTL_SECONDS + 10
    assert refused(tokens, token, refresh=True) == "expired"


def test_dated_in_the_future(key: SigningKey, clock: Clock) -> None:
    ahead = TokenAuthority(key, clock=Clock(clock.now + 60))
    token, _ = ahead.issue_access(user_id="usr_1", role="user")
    assert refused(TokenAuthority(key, clock=clock), token) == "not_yet_valid"


def test_tampered_payload_is_a_bad_signature(tokens: TokenAuthority) -> None:
    token, _ = tokens.issue_access(user_id="usr_1", role="user")
    header, _, signature = token.split(".")
    forged = payload_of(token) | {"role": "admin"}
    assert refused(tokens, f"{header}.{b64(forged)}.{signature}") == "bad_signature"
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert refused(tokens, f"{token.rsplit('.', 1)[0]}.{flipped}") == "bad_signature"


def test_signed_by_another_key_under_our_kid(tokens: TokenAuthority,
                                              other_key: SigningKey) -> None:
    claims = payload_of(tokens.issue_access(user_id="usr_1", role="user")[0])
    forged = jwt.encode(claims | {"role": "admin"}, other_key.private_key, algorithm="RS256",
                        headers={"kid": tokens.key.kid})
    assert refused(tokens, forged) == "bad_signature"


def test_unknown_kid(tokens: TokenAuthority, other_key: SigningKey) -> None:
    claims = payload_of(tokens.issue_access(user_id="usr_1", role="user")[0])
    foreign = jwt.encode(claims, other_key.private_key, algorithm="RS256",
                         headers={"kid": other_key.kid})
    assert refused(tokens, foreign) == "unknown_key"
    no_kid = jwt.encode(claims, tokens.key.private_key, algorithm="RS256")
    assert refused(tokens, no_kid) == "unknown_key"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", None])
def test_alg_none(tokens: TokenAuthority, alg: str | None) -> None:
    claims = payload_of(tokens.issue_access(user_id="usr_1", role="admin")[0])
    header: dict[str, Any] = {"typ": "JWT", "kid": tokens.key.kid}
    if alg is not None:
        header["alg"] = alg
    assert refused(tokens, f"{b64(header)}.{b64(claims)}.") == "alg_none"


def test_hs256_signed_with_the_public_key(tokens: TokenAuthority) -> None:
    """The key-confusion attack: HMAC keyed by the (public) RSA key must not verify."""
    claims = payload_of(tokens.issue_access(user_id="usr_1", role="user")[0]) | {"role": "admin"}
    pem = tokens.key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'kid': tokens.key.kid})}.{b64(claims)}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert refused(tokens, f"{signing_input}.{b64(mac)}") == "wrong_algorithm"


def test_other_rsa_algorithm(tokens: TokenAuthority) -> None:
    claims = payload_of(tokens.issue_access(user_id="usr_1", role="user")[0])
    rs512 = jwt.encode(claims, tokens.key.private_key, algorithm="RS512",
                       headers={"kid": tokens.key.kid})
    assert refused(tokens, rs512) == "wrong_algorithm"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "....", "###.###.###", 42, None,
                                   f"{b64(b'[1]')}.{b64(b'{}')}.x"])
def test_malformed(tokens: TokenAuthority, token: Any) -> None:
    assert refused(tokens, token) == "malformed"


def test_payload_not_json(tokens: TokenAuthority) -> None:
    header = b64({"alg": "RS256", "kid": tokens.key.kid})
    body = b64(b"not json")
    signature = tokens.key.private_key.sign(
        f"{header}.{body}".encode(), *_pkcs1_sha256())
    assert refused(tokens, f"{header}.{body}.{b64(signature)}") == "malformed"


def _pkcs1_sha256() -> tuple[Any, Any]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15(), hashes.SHA256()


def sign(key: SigningKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def test_claims_checked(tokens: TokenAuthority, key: SigningKey) -> None:
    good = payload_of(tokens.issue_access(user_id="usr_1", role="user")[0])
    assert refused(tokens, sign(key, good | {"iss": "evil"})) == "wrong_issuer"
    assert refused(tokens, sign(key, good | {"aud": "other-api"})) == "wrong_audience"
    for claim in ("sub", "exp", "jti", "typ", "iat", "iss", "aud"):
        stripped = {k: v for k, v in good.items() if k != claim}
        assert refused(tokens, sign(key, stripped)) == "missing_claim", claim
    assert refused(tokens, sign(key, {k: v for k, v in good.items() if k != "role"})) == (
        "missing_claim")
    assert refused(tokens, sign(key, good | {"exp": "soon"})) == "malformed"
    assert refused(tokens, sign(key, good | {"sub": 7})) == "malformed"


def test_refresh_and_access_are_not_interchangeable(tokens: TokenAuthority) -> None:
    pair = tokens.issue_pair(user_id="usr_1", role="user", family="f")
    assert refused(tokens, pair.refresh_token) == "wrong_type"
    assert refused(tokens, pair.access_token, refresh=True) == "wrong_type"


def test_previous_key_accepted_during_rotation(key: SigningKey, other_key: SigningKey,
                                               clock: Clock) -> None:
    old = TokenAuthority(other_key, clock=clock)
    token, _ = old.issue_access(user_id="usr_1", role="user")
    rotated = TokenAuthority(key, previous_keys=[other_key.public], clock=clock)
    assert rotated.verify_access(token).user_id == "usr_1"
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [key.kid, other_key.kid]
    assert refused(TokenAuthority(key, clock=clock), token) == "unknown_key"


def test_jwks_verifies_tokens_with_a_standard_client(tokens: TokenAuthority) -> None:
    document = json.loads(json.dumps(tokens.jwks()))
    (jwk,) = document["keys"]
    assert {jwk["kty"], jwk["alg"], jwk["use"], jwk["e"]} == {"RSA", "RS256", "sig", "AQAB"}
    assert "d" not in jwk and "p" not in jwk  # nothing private is published
    token, _ = tokens.issue_access(user_id="usr_7", role="user")
    public = jwt.PyJWKSet.from_dict(document)[tokens.key.kid].key
    decoded = jwt.decode(token, public, algorithms=["RS256"], audience="tektree-api",
                         options={"verify_exp": False})
    assert decoded["sub"] == "usr_7"


def test_kid_is_the_rfc7638_thumbprint(tokens: TokenAuthority) -> None:
    numbers = tokens.key.private_key.public_key().public_numbers()

    def enc(value: int) -> str:
        return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    canonical = f'{{"e":"{enc(numbers.e)}","kty":"RSA","n":"{enc(numbers.n)}"}}'
    assert tokens.key.kid == b64(hashlib.sha256(canonical.encode()).digest())


def test_key_file_created_private_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / KEY_FILE
    first = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path).kid == first.kid
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]  # no temporary left


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE
    kids: list[str] = []
    threads = [threading.Thread(target=lambda: kids.append(load_or_create_key(path).kid))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(kids) == 4 and len(set(kids)) == 1
    assert load_key(path.read_bytes()).kid == kids[0]


def test_bad_key_files_are_named(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / KEY_FILE
    path.write_text("not a key")
    with pytest.raises(ValueError, match=str(path)):
        load_or_create_key(path)
    with pytest.raises(ValueError, match=r"public\.pem: not a PEM public key"):
        load_public_key(b"nope", source="public.pem")
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert load_public_key(public_pem).kid == key.kid


def test_lifetimes_validated(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="lifetimes"):
        TokenAuthority(key, access_ttl_seconds=0)
