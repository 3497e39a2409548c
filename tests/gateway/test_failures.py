"""Domain and runtime exceptions as problems: one mapping, its statuses and what it hides."""

from __future__ import annotations

import pytest

from actors.accounts import AccountError, AuthenticationFailed
from actors.knowledge import KnowledgeError
from actors.rules import parse_board
from gateway.failures import problem_for
from tektree import ActorFailed, ActorId, AskTimeout, MailboxFull, NodeStopping


@pytest.mark.parametrize(("rule", "slug", "status"), [
    ("unique", "conflict", 409), ("exists", "not-found", 404), ("forbidden", "forbidden", 403),
    ("own_content", "forbidden", 403), ("status", "conflict", 409),
    ("conflict", "conflict", 409), ("length", "validation-failed", 422),
    ("format", "validation-failed", 422),
])
def test_domain_rules_pick_the_status(rule: str, slug: str, status: int) -> None:
    for error in (AccountError("handle", rule, "nope"), KnowledgeError("title", rule, "nope")):
        found = problem_for(error)
        assert found is not None and (found.slug, found.status) == (slug, status)
        assert found.extra["rule"] == rule and found.detail.endswith(": nope")


def test_the_acting_user_is_named_user() -> None:
    found = problem_for(KnowledgeError("voter_id", "own_content", "your own answer"))
    assert found is not None and found.extra["field"] == "user"


def test_runtime_failures() -> None:
    actor = ActorId("user", "u1")
    timeout = problem_for(AskTimeout(actor, "GetProfile", 5.0))
    assert timeout is not None and (timeout.status, timeout.slug) == (504, "upstream-timeout")
    for busy in (NodeStopping("n1"), MailboxFull(actor, 10)):
        found = problem_for(busy)
        assert found is not None and found.status == 503 and found.headers["Retry-After"] == "1"
    crashed = problem_for(ActorFailed(actor, "KeyError", "'secret'", "Traceback ..."))
    assert crashed is not None and crashed.status == 500
    assert "secret" not in crashed.detail and "Traceback" not in crashed.detail
    credentials = problem_for(AuthenticationFailed())
    assert credentials is not None and credentials.status == 401
    with pytest.raises(ValueError) as board:
        parse_board("monthly")
    found = problem_for(board.value)
    assert found is not None and (found.status, found.extra["field"]) == (404, "board")
    assert problem_for(RuntimeError("bug")) is None  # a 500, logged by the app
