"""Accounts against a real SQLite store: uniqueness, validation, auth, verification, events."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors.accounts import (
    USERS,
    AccountError,
    Accounts,
    AuthenticationFailed,
    hasher_for_tests,
)
from tektree.persistence import DocumentStore, SqliteStore, ensure_kernel_indexes


@pytest.fixture
async def accounts(tmp_path: Path) -> AsyncIterator[Accounts]:
    async with SqliteStore.open(tmp_path / "t.sqlite3") as store:
        await ensure_kernel_indexes(store)
        service = Accounts(store, hasher=hasher_for_tests())
        await service.ensure_indexes()
        yield service


async def _events(store: DocumentStore, event_type: str) -> list[dict[str, object]]:
    return list((await store.find("events", {"event_type": event_type}, limit=100)).items)


async def test_register_stores_user_and_event_in_one_unit(accounts: Accounts) -> None:
    user = await accounts.register(email="Ada@Example.com", password="correct horse 1",
                                   handle="ada_l", first_name="Ada", correlation_id="req-1")
    assert user.uid.startswith("usr_") and user.tier == "free" and user.role == "user"
    assert not user.email_verified
    doc = await accounts.store.get(USERS, user.uid)
    assert doc is not None
    assert doc["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in str(doc)
    registered = await _events(accounts.store, "user.registered")
    assert len(registered) == 1
    assert registered[0]["payload"] == {"user_id": user.uid, "email": "Ada@Example.com",
                                        "handle": "ada_l", "tier": "free", "role": "user"}
    assert registered[0]["correlation_id"] == "req-1"


@pytest.mark.parametrize(("email", "handle", "field"), [
    ("ADA@example.COM", "other", "email"),
    ("other@example.com", "ADA_L", "handle"),
])
async def test_email_and_handle_are_unique_case_insensitively(
    accounts: Accounts, email: str, handle: str, field: str
) -> None:
    await accounts.register(email="ada@example.com", password="correct horse 1", handle="ada_l")
    with pytest.raises(AccountError) as info:
        await accounts.register(email=email, password="correct horse 2", handle=handle)
    assert (info.value.field, info.value.rule) == (field, "unique")
    assert await accounts.store.count(USERS) == 1
    assert len(await _events(accounts.store, "user.registered")) == 1  # nothing half-written


async def test_concurrent_registrations_of_one_handle_admit_exactly_one(
    accounts: Accounts,
) -> None:
    outcomes: list[str] = []

    async def attempt(i: int) -> None:
        try:
            await accounts.register(email=f"u{i}@example.com", password="long enough 1",
                                    handle="popular")
            outcomes.append("ok")
        except AccountError as exc:
            outcomes.append(exc.rule)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(attempt, i)
    assert sorted(outcomes) == ["ok"] + ["unique"] * 11


@pytest.mark.parametrize(("kwargs", "field", "rule", "named"), [
    ({"email": "not-an-email"}, "email", "format", "'not-an-email'"),
    ({"handle": "a"}, "handle", "format", "'a'"),
    ({"handle": "has space"}, "handle", "format", "'has space'"),
    ({"password": "short"}, "password", "length", "got 5 characters"),  # never echoed
    ({"first_name": "x" * 101}, "first_name", "length", "got 101 characters"),
])
async def test_bad_registration_input_names_the_field_and_rule(
    accounts: Accounts, kwargs: dict[str, str], field: str, rule: str, named: str
) -> None:
    base = {"email": "a@example.com", "password": "long enough 1", "handle": "abc"}
    with pytest.raises(AccountError) as info:
        await accounts.register(**{**base, **kwargs})
    assert (info.value.field, info.value.rule) == (field, rule)
    assert named in str(info.value)
    assert await accounts.store.count(USERS) == 0


async def test_authenticate(accounts: Accounts) -> None:
    user = await accounts.register(email="ada@example.com", password="correct horse 1",
                                   handle="ada")
    assert (await accounts.authenticate(email=" ADA@example.com ", password="correct horse 1")
            ).uid == user.uid
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate(email="ada@example.com", password="wrong horse 1")
    with pytest.raises(AuthenticationFailed):
        await accounts.authenticate(email="nobody@example.com", password="correct horse 1")
    doc = await accounts.store.get(USERS, user.uid)
    assert doc is not None and doc["last_login_at"] is not None


async def test_email_verification_token_is_single_use_and_expires(accounts: Accounts) -> None:
    user = await accounts.register(email="ada@example.com", password="correct horse 1",
                                   handle="ada")
    token = await accounts.issue_email_token(user.uid)
    assert (await accounts.verify_email(token)).email_verified
    with pytest.raises(AccountError) as reused:
        await accounts.verify_email(token)
    assert reused.value.rule == "valid"
    assert len(await _events(accounts.store, "user.email.verified")) == 1
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    stale = await accounts.issue_email_token(user.uid, now=old)
    with pytest.raises(AccountError) as expired:
        await accounts.verify_email(stale)
    assert expired.value.rule == "expired"


async def test_profile_updates_validate_and_emit(accounts: Accounts) -> None:
    user = await accounts.register(email="ada@example.com", password="correct horse 1",
                                   handle="ada")
    updated = await accounts.update_profile(user.uid, {
        "bio": "Engines", "avatar": "https://cdn.example.com/a.png",
        "preferences": {"theme": "dark"}})
    assert (updated.bio, updated.avatar, dict(updated.preferences)) == (
        "Engines", "https://cdn.example.com/a.png", {"theme": "dark"})
    emitted = await _events(accounts.store, "user.profile.updated")
    assert emitted[0]["payload"]["changed_fields"] == ["avatar", "bio", "preferences"]
    for changes, field in [({"email": "x@y.z"}, "email"), ({"avatar": "http://x"}, "avatar"),
                           ({"preferences": {"color": 1}}, "preferences.color"),
                           ({"bio": 5}, "bio")]:
        with pytest.raises(AccountError) as info:
            await accounts.update_profile(user.uid, changes)
        assert info.value.field == field


async def test_roles_and_tiers(accounts: Accounts) -> None:
    user = await accounts.register(email="ada@example.com", password="correct horse 1",
                                   handle="ada")
    assert (await accounts.set_role(user.uid, "moderator")).role == "moderator"
    assert (await accounts.set_tier(user.uid, "pro")).tier == "pro"
    with pytest.raises(AccountError, match="'root' is not one of user, moderator, admin"):
        await accounts.set_role(user.uid, "root")
    with pytest.raises(AccountError) as info:
        await accounts.set_tier("usr_missing", "pro")
    assert info.value.rule == "exists"
    assert (await accounts.by_handle("ADA")) == await accounts.get(user.uid)
