"""TekTree's REST API as the HTTP benches call it: one function per request, over a :class:`Pool`.

Each returns what the next step needs and raises :class:`~bench._load.Failed` (``http N``) on an
unexpected status, so an operation built from them is counted by kind. :func:`populate` makes
the users (and one question each) a load run needs before it starts: registrations go through
the production password hashing, a few at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import attrs
import trio

from bench._load import Failed, expect
from bench._load_client import Pool

__all__ = [
    "API",
    "BODY",
    "PASSWORD",
    "Question",
    "User",
    "accept",
    "answer",
    "answer_event_id",
    "ask",
    "leaderboard",
    "login",
    "populate",
    "profile",
    "register",
    "vote",
]

API: Final = "/api/v1"
PASSWORD: Final = "correct horse battery staple"
BODY: Final = "A detailed answer body, long enough to pass the length rule of the API."
_TITLE: Final = "How does the bench measure question {n}?"


@attrs.define
class User:
    """A registered user and its current access token."""

    uid: str
    handle: str
    email: str
    token: str


@attrs.frozen
class Question:
    id: str
    author: str  # uid


async def register(pool: Pool, handle: str) -> User:
    """``POST /auth/register``: a new user (201)."""
    email = f"{handle}@bench.example.com"
    body = expect(await pool.json("POST", f"{API}/auth/register", {
        "email": email, "password": PASSWORD, "handle": handle}), 201).json()
    return User(uid=body["user"]["uid"], handle=handle, email=email,
                token=body["tokens"]["access_token"])


async def login(pool: Pool, user: User) -> None:
    """``POST /auth/login``: a fresh token pair (200); the user keeps the new access token."""
    body = expect(await pool.json("POST", f"{API}/auth/login", {
        "email": user.email, "password": PASSWORD}), 200).json()
    user.token = body["access_token"]


async def ask(pool: Pool, user: User, n: int) -> Question:
    """``POST /questions`` (201)."""
    body = expect(await pool.json("POST", f"{API}/questions", {
        "title": _TITLE.format(n=n), "body": BODY, "tags": ["bench"]}, token=user.token),
        201).json()
    return Question(id=body["id"], author=user.uid)


async def answer(pool: Pool, user: User, question_id: str) -> str:
    """``POST /questions/{id}/answers`` (201): the answer's id."""
    body = expect(await pool.json("POST", f"{API}/questions/{question_id}/answers",
                                  {"body": BODY}, token=user.token), 201).json()
    return str(body["id"])


def answer_event_id(answer_id: str) -> str:
    """The id of the ``knowledge.answer.submitted`` event of answer ``answer_id`` (the
    knowledge worker derives it from the answer: ``actors/knowledge.py``), which the author's
    ``gamification.xp.earned`` payload names as its ``source_event_id``."""
    return f"evt_answer_submitted_{answer_id}"


async def vote(pool: Pool, user: User, target_type: str, target_id: str, value: int = 1) -> None:
    """``POST /votes`` (200)."""
    expect(await pool.json("POST", f"{API}/votes", {
        "target_type": target_type, "target_id": target_id, "value": value},
        token=user.token), 200)


async def accept(pool: Pool, asker: User, answer_id: str) -> None:
    """``POST /answers/{id}/accept`` by the question's author (200)."""
    expect(await pool.json("POST", f"{API}/answers/{answer_id}/accept", token=asker.token), 200)


async def profile(pool: Pool, uid: str, token: str | None = None) -> dict[str, Any]:
    """``GET /users/{uid}/gamification`` (200): the gamification profile."""
    body = expect(await pool.json("GET", f"{API}/users/{uid}/gamification", token=token),
                  200).json()
    if not isinstance(body, dict) or "total_xp" not in body:
        raise Failed("bad body", f"a gamification profile without total_xp: {body!r:.200}")
    return body


async def leaderboard(pool: Pool, board: str = "global", limit: int = 20,
                      token: str | None = None) -> list[dict[str, Any]]:
    """``GET /leaderboards/{board}?limit=N`` (200): its items."""
    body = expect(await pool.json("GET", f"{API}/leaderboards/{board}?limit={limit}",
                                  token=token), 200).json()
    return list(body["items"])


async def populate(pool: Pool, count: int, *, prefix: str, concurrency: int = 4,
                   seconds: float = 120.0) -> tuple[list[User], list[Question]]:
    """``count`` users registered (``concurrency`` at a time) who each ask one question;
    within ``seconds`` (a ``trio.TooSlowError`` past it)."""
    users: list[User | None] = [None] * count
    questions: list[Question | None] = [None] * count
    room = trio.Semaphore(concurrency)

    async def one(k: int) -> None:
        async with room:
            user = await register(pool, f"{prefix}{k}")
            questions[k] = await ask(pool, user, k)
            users[k] = user

    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            for k in range(count):
                nursery.start_soon(one, k)
    return _all(users), _all(questions)


def _all(items: Sequence[Any]) -> list[Any]:
    assert all(item is not None for item in items)
    return list(items)
