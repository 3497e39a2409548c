"""Domain and runtime exceptions as problems: the one place that maps them to HTTP.

The domain raises errors naming ``field`` and ``rule`` (``AccountError``, ``KnowledgeError``);
their rule picks the status: ``unique`` 409, ``exists`` 404, ``forbidden``/``own_content`` 403,
``status``/``conflict`` 409, anything else (lengths, formats, enums) 422; also ``suspended`` (a
suspended user writing) 403 and ``not_empty`` (deleting an area with content) 409. Runtime
failures of an ask become 504 (timeout), 503 (the node is stopping) or 500 (the actor failed:
logged with its origin, never shown to the client).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Final

import structlog

from actors.accounts import AccountError, AuthenticationFailed
from actors.knowledge import KnowledgeError
from actors.quotas import QuotaExceeded, QuotaUnavailable
from actors.rules import BoardNameError
from gateway.problems import Problem
from tektree import ActorFailed, AskTimeout, MailboxFull, NodeStopping
from tektree.persistence import format_timestamp

__all__ = ["problem_for", "quota_problem"]

_log = structlog.get_logger("tektree.gateway")

_BY_RULE: Final = {
    "unique": ("conflict", 409),
    "exists": ("not-found", 404),
    "forbidden": ("forbidden", 403),
    "own_content": ("forbidden", 403),
    "status": ("conflict", 409),
    "conflict": ("conflict", 409),
    "suspended": ("forbidden", 403),
    "not_empty": ("conflict", 409),
}


def _public_field(field: str) -> str:
    # The domain names the acting user ``by_user_id`` / ``voter_id``: to a client it is them.
    return {"by_user_id": "user", "voter_id": "user", "moderator_id": "user",
            "reporter_id": "user"}.get(field, field)


def problem_for(exc: BaseException) -> Problem | None:
    """The problem ``exc`` is, or None for an unexpected error (a 500, logged by the app)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, AccountError | KnowledgeError):
        slug, status = _BY_RULE.get(exc.rule, ("validation-failed", 422))
        field = _public_field(exc.field)
        return Problem(slug, f"{field}: {exc.detail}", status=status, field=field,
                       rule=exc.rule)
    if isinstance(exc, QuotaExceeded):
        return quota_problem(exc)
    if isinstance(exc, QuotaUnavailable):
        _log.warning("quota counts unavailable", error=str(exc))
        return Problem("not-available", "the quota counts cannot be reached; retry",
                       headers={"Retry-After": "1"}, rule="capacity")
    if isinstance(exc, AuthenticationFailed):
        return Problem("invalid-credentials", "email or password is wrong", rule="credentials")
    if isinstance(exc, BoardNameError):
        return Problem("not-found", str(exc), field="board", rule="board_name")
    if isinstance(exc, AskTimeout):
        _log.warning("ask timed out", error=str(exc))
        return Problem("upstream-timeout", "the domain did not answer in time; retry")
    if isinstance(exc, NodeStopping | MailboxFull):
        return Problem("not-available", "this node is stopping or overloaded; retry",
                       headers={"Retry-After": "1"}, rule="capacity")
    if isinstance(exc, ActorFailed):
        _log.error("actor failed while serving a request", error=str(exc))
        return Problem("internal-error", "the server failed to handle the request; see its logs")
    return None


def quota_problem(exc: QuotaExceeded) -> Problem:
    """429 ``quota-exceeded``: the quota, the limit, the count and when it resets (also as
    ``Retry-After``, in seconds)."""
    wait = max(1, math.ceil((exc.resets_at - dt.datetime.now(dt.UTC)).total_seconds()))
    return Problem("quota-exceeded", f"{exc.quota}: {exc.detail}",
                   headers={"Retry-After": str(wait)}, field=exc.quota, rule="quota",
                   quota=exc.quota, tier=exc.tier, limit=exc.limit, used=exc.used,
                   period=exc.period, resets_at=format_timestamp(exc.resets_at))
