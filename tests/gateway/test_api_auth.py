"""``/auth`` through the real app, and the attacks: forged, stale or reused tokens, other
users' resources, users acting above their role. Each refused attack changes nothing."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
from gwkit import API, PASSWORD, Harness, bearer, open_app

from actors.accounts import USERS
from gateway.problems import PROBLEM_BASE, PROBLEM_CONTENT_TYPE
from gateway.sessions import SESSIONS
from gateway.tokens import generate_key
from tektree import capture_logs


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return loaded


async def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    body: dict[str, Any] = await response.get_json()
    assert response.status_code == status, body
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert body["type"] == PROBLEM_BASE + slug, body
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]
    return body


async def test_register_returns_the_user_and_a_working_token_pair(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        response = await h.client.post(f"{API}/auth/register", json={
            "email": "Ann@Example.com", "password": PASSWORD, "handle": "ann",
            "first_name": "Ann"})
        assert response.status_code == 201
        body = await response.get_json()
        user, tokens = body["user"], body["tokens"]
        assert response.headers["Location"] == f"/api/v1/users/{user['uid']}"
        assert (user["handle"], user["first_name"], user["role"], user["tier"]) == (
            "ann", "Ann", "user", "free")
        assert "password_hash" not in user and user["email_verified"] is False
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
        me = await h.client.get(f"{API}/users/me", headers=bearer(tokens))
        assert (await me.get_json())["uid"] == user["uid"]
        # the registration's domain event is in the outbox, with the request's correlation id
        await h.relay_all()
        profile = await (await h.client.get(f"{API}/users/{user['uid']}/gamification")).get_json()
        assert profile["total_xp"] > 0  # the welcome bonus went through the relay


async def test_register_conflicts_and_validation(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        await h.register("ann")
        again = await h.client.post(f"{API}/auth/register", json={
            "email": "ANN@example.com", "password": PASSWORD, "handle": "other"})
        body = await problem(again, 409, "conflict")
        assert (body["field"], body["rule"]) == ("email", "unique")
        handle = await h.client.post(f"{API}/auth/register", json={
            "email": "x@example.com", "password": PASSWORD, "handle": "ANN"})
        assert (await problem(handle, 409, "conflict"))["field"] == "handle"
        short = await h.client.post(f"{API}/auth/register", json={
            "email": "y@example.com", "password": "short", "handle": "yan"})
        body = await problem(short, 422, "validation-failed")
        assert body["field"] == "password" and body["rule"] == "minLength"
        missing = await h.client.post(f"{API}/auth/register", json={"email": "z@example.com"})
        assert (await problem(missing, 422, "validation-failed"))["field"] == "password"
        extra = await h.client.post(f"{API}/auth/register", json={
            "email": "z@example.com", "password": PASSWORD, "handle": "zed", "role": "admin"})
        body = await problem(extra, 422, "validation-failed")
        assert (body["field"], body["rule"]) == ("role", "additionalProperties")
        bad_email = await h.client.post(f"{API}/auth/register", json={
            "email": "not-an-email", "password": PASSWORD, "handle": "zed"})
        assert (await problem(bad_email, 422, "validation-failed"))["field"] == "email"
        assert await h.store.count(USERS) == 1  # nothing refused was stored


async def test_bodies_must_be_json(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        text = await h.client.post(f"{API}/auth/login", data="email=a", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        await problem(text, 415, "unsupported-media-type")
        broken = await h.client.post(f"{API}/auth/login", data="{not json",
                                     headers={"Content-Type": "application/json"})
        await problem(broken, 400, "invalid-json")
        array = await h.client.post(f"{API}/auth/login", json=[1, 2])
        assert (await problem(array, 422, "validation-failed"))["rule"] == "type"


async def test_login_and_wrong_credentials(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        await h.register("ann")
        ok = await h.client.post(f"{API}/auth/login", json={"email": "ann@example.com",
                                                            "password": PASSWORD})
        assert ok.status_code == 200
        pair = await ok.get_json()
        assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
        wrong = await h.client.post(f"{API}/auth/login", json={"email": "ann@example.com",
                                                               "password": "x" * 12})
        unknown = await h.client.post(f"{API}/auth/login", json={"email": "nobody@example.com",
                                                                 "password": PASSWORD})
        first = await problem(wrong, 401, "invalid-credentials")
        second = await problem(unknown, 401, "invalid-credentials")
        assert first["detail"] == second["detail"]  # never says which one was wrong


async def test_refresh_rotates_and_a_reused_token_revokes_the_family(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, first = await h.register("ann")
        rotated = await h.client.post(f"{API}/auth/refresh",
                                      json={"refresh_token": first["refresh_token"]})
        assert rotated.status_code == 200
        second = await rotated.get_json()
        assert second["refresh_token"] != first["refresh_token"]
        family = claims_of(second["refresh_token"])["fam"]
        assert family == claims_of(first["refresh_token"])["fam"]
        # the thief replays the spent token: the whole family dies
        replay = await h.client.post(f"{API}/auth/refresh",
                                     json={"refresh_token": first["refresh_token"]})
        await problem(replay, 401, "refresh-token-reused")
        session = await h.store.get(SESSIONS, family)
        assert session["revoked_at"] is not None
        assert session["revoked_reason"] == "refresh token reused"
        # ... including the legitimate holder's newest token
        newest = await h.client.post(f"{API}/auth/refresh",
                                     json={"refresh_token": second["refresh_token"]})
        await problem(newest, 401, "session-revoked")
        assert (await h.store.get(SESSIONS, family))["rotations"] == 1


async def test_refresh_refuses_access_tokens_and_garbage(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        wrong_type = await h.client.post(f"{API}/auth/refresh",
                                         json={"refresh_token": tokens["access_token"]})
        assert (await problem(wrong_type, 401, "invalid-token"))["reason"] == "wrong_type"
        garbage = await h.client.post(f"{API}/auth/refresh", json={"refresh_token": "x.y.z"})
        assert (await problem(garbage, 401, "invalid-token"))["reason"] == "malformed"


async def test_logout_revokes_the_session(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        out = await h.client.post(f"{API}/auth/logout", headers=bearer(tokens))
        assert out.status_code == 204 and await out.get_data() == b""
        after = await h.client.post(f"{API}/auth/refresh",
                                    json={"refresh_token": tokens["refresh_token"]})
        await problem(after, 401, "session-revoked")
        anonymous = await h.client.post(f"{API}/auth/logout")
        assert (await problem(anonymous, 401, "unauthorized"))["reason"] == "missing_token"


async def test_verify_email_with_the_mailed_token(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        with capture_logs() as logs:
            user, _ = await h.register("ann")
        (mail,) = [e for e in logs if e["event"] == "verification email"]
        assert mail["user_id"] == user["uid"]
        verified = await h.client.post(f"{API}/auth/verify-email", json={"token": mail["token"]})
        assert verified.status_code == 200
        assert (await verified.get_json())["email_verified"] is True
        again = await h.client.post(f"{API}/auth/verify-email", json={"token": mail["token"]})
        assert (await problem(again, 422, "validation-failed"))["field"] == "token"


# -- attacks ---------------------------------------------------------------------------------------
async def _state(h: Harness) -> tuple[Any, ...]:
    users = (await h.store.find(USERS, {}, limit=100)).items
    return tuple(sorted((u["_id"], u["role"], u["tier"], u["bio"]) for u in users))


async def _refused_everywhere(h: Harness, token: str, reason: str) -> None:
    before = await _state(h)
    for method, path, body in [("GET", "/users/me", None),
                               ("PATCH", "/users/me", {"bio": "pwned"}),
                               ("POST", "/questions", {"title": "A forged question here",
                                                       "body": "x" * 30})]:
        response = await h.client.open(f"{API}{path}", method=method, json=body,
                                       headers=bearer(token))
        found = await problem(response, 401, "invalid-token")
        assert found["reason"] == reason, (path, found)
        assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert await _state(h) == before
    assert await h.store.count("questions") == 0


async def test_tampered_token(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        header, _, signature = tokens["access_token"].split(".")
        forged = b64(claims_of(tokens["access_token"]) | {"role": "admin", "sub": "usr_other"})
        await _refused_everywhere(h, f"{header}.{forged}.{signature}", "bad_signature")


async def test_expired_token(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        authority = h.gateway.tokens
        real_clock = authority.clock
        authority.clock = lambda: real_clock() - 3600  # issued an hour ago
        old, _ = authority.issue_access(user_id=claims_of(tokens["access_token"])["sub"],
                                        role="user")
        authority.clock = real_clock
        await _refused_everywhere(h, old, "expired")


async def test_wrong_algorithm_and_foreign_keys(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        claims = claims_of(tokens["access_token"])
        kid = h.gateway.tokens.key.kid
        hs256 = jwt.encode(claims, "a guessed secret of thirty-two bytes+", algorithm="HS256",
                           headers={"kid": kid})
        await _refused_everywhere(h, hs256, "wrong_algorithm")
        stranger = generate_key()
        foreign = jwt.encode(claims, stranger.private_key, algorithm="RS256",
                             headers={"kid": kid})
        await _refused_everywhere(h, foreign, "bad_signature")


async def test_alg_none_token(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        claims = claims_of(tokens["access_token"]) | {"role": "admin"}
        unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
        await _refused_everywhere(h, unsigned, "alg_none")


async def test_malformed_authorization_header(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        response = await h.client.get(f"{API}/users/me", headers={"Authorization": "Basic abc"})
        assert (await problem(response, 401, "unauthorized"))["reason"] == "malformed_header"


async def test_another_users_xp_history_is_forbidden(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, _ann_tokens = await h.register("ann")
        _bob, bob_tokens = await h.register("bob")
        await h.relay_all()
        own = await h.client.get(f"{API}/users/me/xp-transactions", headers=bearer(bob_tokens))
        assert own.status_code == 200 and (await own.get_json())["items"]
        other = await h.client.get(f"{API}/users/{ann['uid']}/xp-transactions",
                                   headers=bearer(bob_tokens))
        body = await problem(other, 403, "forbidden")
        assert body["required_role"] == "moderator" and body["role"] == "user"


async def test_a_user_acting_as_moderator_or_admin(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, _ann_tokens = await h.register("ann")
        bob, bob_tokens = await h.register("bob")
        before = await _state(h)
        for path, body in [(f"/users/{bob['uid']}/role", {"role": "admin"}),
                           (f"/users/{bob['uid']}/tier", {"tier": "enterprise"}),
                           (f"/users/{ann['uid']}/role", {"role": "user"})]:
            response = await h.client.put(f"{API}{path}", json=body, headers=bearer(bob_tokens))
            assert (await problem(response, 403, "forbidden"))["required_role"] == "admin"
        # a role claim the user wrote into the token is a forgery, refused as such
        header, _, signature = bob_tokens["access_token"].split(".")
        forged = f"{header}.{b64(claims_of(bob_tokens['access_token']) | {'role': 'admin'})}." \
                 f"{signature}"
        response = await h.client.put(f"{API}/users/{bob['uid']}/role", json={"role": "admin"},
                                      headers=bearer(forged))
        await problem(response, 401, "invalid-token")
        moderator_read = await h.client.get(f"{API}/users/{ann['uid']}/xp-transactions",
                                            headers=bearer(bob_tokens))
        await problem(moderator_read, 403, "forbidden")
        assert await _state(h) == before


async def test_roles_are_read_fresh_so_a_demotion_applies_at_once(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        admin, admin_tokens = await h.register("root")
        await h.gateway.accounts.set_role(admin["uid"], "admin")
        ann, ann_tokens = await h.register("ann")
        bob, _ = await h.register("bob")
        promote = await h.client.put(f"{API}/users/{ann['uid']}/role",
                                     json={"role": "moderator"}, headers=bearer(admin_tokens))
        assert (await promote.get_json())["role"] == "moderator"
        # ann's token still says "user", but her current role is what counts
        read = await h.client.get(f"{API}/users/{bob['uid']}/xp-transactions",
                                  headers=bearer(ann_tokens))
        assert read.status_code == 200
        await h.client.put(f"{API}/users/{ann['uid']}/role", json={"role": "user"},
                           headers=bearer(admin_tokens))
        again = await h.client.get(f"{API}/users/{bob['uid']}/xp-transactions",
                                   headers=bearer(ann_tokens))
        await problem(again, 403, "forbidden")
        # a refresh issues an access token carrying the current role
        await h.client.put(f"{API}/users/{ann['uid']}/role", json={"role": "moderator"},
                           headers=bearer(admin_tokens))
        _, fresh = await _login_refresh(h, ann_tokens)
        assert claims_of(fresh["access_token"])["role"] == "moderator"


async def _login_refresh(h: Harness, tokens: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    response = await h.client.post(f"{API}/auth/refresh",
                                   json={"refresh_token": tokens["refresh_token"]})
    return response, await response.get_json()


@pytest.mark.parametrize("value", ["", "a" * 129, "has space", "semi;colon", "caf\xe9"])
async def test_a_bad_correlation_id_is_refused_under_a_fresh_one(tmp_path: Path,
                                                                  value: str) -> None:
    async with open_app(tmp_path) as h:
        response = await h.client.get("/healthz", headers={"X-Correlation-ID": value})
        if value == "":
            assert response.status_code == 200  # empty = absent: one is made
            assert response.headers["X-Correlation-ID"].startswith("req_")
            return
        body = await problem(response, 400, "invalid-correlation-id")
        assert body["field"] == "X-Correlation-ID"
        assert response.headers["X-Correlation-ID"].startswith("req_")


async def test_two_refreshes_racing_with_one_token_leave_one_winner(tmp_path: Path) -> None:
    """Of two concurrent refreshes with the same token, one rotates and the other is reuse:
    the family is revoked, so neither new refresh token works afterwards."""
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        statuses: list[int] = []

        async def spend() -> None:
            response = await h.client.post(f"{API}/auth/refresh",
                                           json={"refresh_token": tokens["refresh_token"]})
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(spend)
        assert sorted(statuses) == [200, 401, 401, 401, 401]
        session = await h.store.get(SESSIONS, claims_of(tokens["refresh_token"])["fam"])
        assert session["rotations"] == 1 and session["revoked_at"] is not None
