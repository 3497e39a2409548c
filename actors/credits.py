"""Who a domain event pays, for what, under which idempotency key: the credit table.

Pure: :func:`credits` reads an event's type and payload and returns the XP credits it causes
(``user.registered`` → the welcome bonus to the new user; an accepted answer → the answerer and
the asker; a vote → the content's author, once per voter and target; ...). The profile actor
applies them; :mod:`actors.wiring` uses the table to decide which profiles an event concerns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from actors.rules import XpReason


class InvalidEvent(ValueError):
    """An envelope the rules cannot read; ``field`` names the part that is wrong."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"event {field}: {detail}")
        self.field = field


@attrs.frozen(kw_only=True)
class Credit:
    """What one domain event earns one user: ``reason`` (None: counted, no XP), the counters
    it bumps by one, the dedupe ``key`` and the entity it is about."""

    user_id: str
    reason: XpReason | None
    key: str
    counters: tuple[str, ...] = ()
    entity_type: str | None = None
    entity_id: str | None = None


def _field(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"payload.{name}", f"must be a non-empty string, got {value!r:.60}")
    return value


def credits(event_type: str, event_id: str, payload: Mapping[str, Any]) -> list[Credit]:
    """The users ``event_type`` credits, each at most once (the first role wins, so a
    self-accepted answer pays the answerer's half only). ``[]`` for events that earn nothing."""

    def f(name: str) -> str:
        return _field(payload, name)

    if event_type == "user.registered":
        return [Credit(user_id=f("user_id"), reason=XpReason.WELCOME, key=event_id,
                       entity_type="user", entity_id=f("user_id"))]
    if event_type == "knowledge.question.posted":
        return [Credit(user_id=f("author_id"), reason=XpReason.QUESTION_POSTED, key=event_id,
                       counters=("questions_posted",), entity_type="question",
                       entity_id=f("question_id"))]
    if event_type == "knowledge.answer.submitted":
        return [Credit(user_id=f("author_id"), reason=XpReason.ANSWER_SUBMITTED, key=event_id,
                       counters=("answers_submitted",), entity_type="answer",
                       entity_id=f("answer_id"))]
    if event_type == "knowledge.answer.accepted":
        answerer, asker = f("answer_author_id"), f("question_author_id")
        out = [Credit(user_id=answerer, reason=XpReason.ANSWER_ACCEPTED, key=event_id,
                      counters=("answers_accepted",), entity_type="answer",
                      entity_id=f("answer_id"))]
        if asker != answerer:
            out.append(Credit(user_id=asker, reason=XpReason.ANSWER_ACCEPTED_ASKER, key=event_id,
                              entity_type="answer", entity_id=f("answer_id")))
        return out
    if event_type == "knowledge.content.voted":
        target_type, voter, author = f("target_type"), f("voter_id"), f("author_id")
        if payload.get("value") != 1 or payload.get("previous_value") == 1 or voter == author:
            return []  # only a new up-vote pays; down-votes and withdrawals cost nothing
        reason = {"answer": XpReason.ANSWER_UPVOTED, "question": XpReason.QUESTION_UPVOTED}.get(
            target_type)
        if reason is None:
            raise InvalidEvent("payload.target_type",
                               f"must be 'answer' or 'question', got {target_type!r:.40}")
        return [Credit(user_id=author, reason=reason,
                       key=f"upvote:{target_type}:{f('target_id')}:{voter}",
                       counters=("upvotes_received",), entity_type=target_type,
                       entity_id=f("target_id"))]
    if event_type == "knowledge.content.liked":
        liker, author = f("liker_id"), f("author_id")
        if liker == author:
            return []
        return [Credit(user_id=author, reason=XpReason.CONTENT_LIKED,
                       key=f"like:{f('target_type')}:{f('target_id')}:{liker}",
                       entity_type=f("target_type"), entity_id=f("target_id"))]
    if event_type == "knowledge.insight.shared":
        return [Credit(user_id=f("author_id"), reason=XpReason.INSIGHT_PUBLISHED, key=event_id,
                       counters=("insights_published",), entity_type="insight",
                       entity_id=f("insight_id"))]
    if event_type == "knowledge.comment.added":
        return [Credit(user_id=f("author_id"), reason=XpReason.COMMENT_ADDED, key=event_id,
                       counters=("comments_added",), entity_type="comment",
                       entity_id=f("comment_id"))]
    if event_type == "knowledge.area.created":
        return [Credit(user_id=f("created_by"), reason=None, key=event_id,
                       counters=("areas_created",), entity_type="area", entity_id=f("area_id"))]
    return []


def event_time(envelope: Mapping[str, Any], default: dt.datetime) -> dt.datetime:
    """The envelope's ``timestamp`` as an aware UTC datetime (``default`` without one)."""
    stamp = envelope.get("timestamp")
    if stamp is None or stamp == "":
        return default
    if isinstance(stamp, dt.datetime):
        parsed = stamp
    elif isinstance(stamp, str):
        try:
            parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent("timestamp", f"{stamp!r:.60} is not ISO 8601") from None
    else:
        raise InvalidEvent("timestamp", f"must be an ISO 8601 string, got {stamp!r:.60}")
    if parsed.tzinfo is None:
        raise InvalidEvent("timestamp", f"{stamp!r:.60} has no timezone (use UTC, 'Z')")
    return parsed.astimezone(dt.UTC)


# -- the fold's state ------------------------------------------------------------------------------


__all__ = ["Credit", "InvalidEvent", "credits", "event_time"]
