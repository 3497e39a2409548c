"""TekTree's domain event catalog (from the seed's services), as versioned message classes.

Each event is a registered message whose tag is its ``event_type`` (``gamification.xp.earned``),
so it travels between actors like any message, and converts to and from the seed's envelope
(``event_id``, ``event_type``, ``event_version``, ``timestamp``, ``trace_id``,
``correlation_id``, ``source_service``, ``producer_id``, ``metadata``, ``payload``) for the
``events`` collection and the outbox. Evolve an event like any message: add payload fields only
at the end with a default (the version's minor part goes up); a breaking change is a new major
version, read by :func:`from_envelope` through :data:`UPGRADES`.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import attrs

from tektree import CodecError, message, message_spec, tag_of
from tektree.persistence import DomainEvent, utc_now

T = TypeVar("T")

SOURCE: Final = "tektree"

#: event_type -> class; every class here is also a registered message under that tag.
CATALOG: dict[str, type] = {}
#: event_type -> semantic version of its payload schema.
VERSIONS: dict[str, str] = {}
#: (event_type, major version read) -> function turning that payload into the current one.
UPGRADES: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


@typing.dataclass_transform(
    frozen_default=True, kw_only_default=True, field_specifiers=(attrs.field, attrs.Factory)
)
def event(event_type: str, version: str = "1.0.0") -> Callable[[type[T]], type[T]]:
    """Register a domain event class: a message tagged ``event_type`` at ``version``."""

    def register(cls: type[T]) -> type[T]:
        registered = message(event_type)(cls)
        CATALOG[event_type] = registered
        VERSIONS[event_type] = version
        return registered

    return register


# -- users -------------------------------------------------------------------------------------
@event("user.registered")
class UserRegistered:
    user_id: str
    email: str
    handle: str
    tier: str = "free"
    role: str = "user"


@event("user.profile.updated")
class UserProfileUpdated:
    user_id: str
    changed_fields: tuple[str, ...]


@event("user.authenticated")
class UserAuthenticated:
    user_id: str


@event("user.email.verified")
class UserEmailVerified:
    user_id: str


# -- knowledge ---------------------------------------------------------------------------------
@event("knowledge.area.created", "1.1.0")
class AreaCreated:
    area_id: str
    title: str
    created_by: str
    parent_id: str | None = None
    slug: str = ""
    visibility: str = "public"


@event("knowledge.area.updated")
class AreaUpdated:
    area_id: str
    updated_by: str
    changed_fields: tuple[str, ...]


@event("knowledge.area.moved")
class AreaMoved:
    """``area_id`` and its ``descendants`` sub-areas moved from one parent to another."""

    area_id: str
    moved_by: str
    old_parent_id: str | None
    new_parent_id: str | None
    descendants: int = 0


@event("knowledge.area.deleted")
class AreaDeleted:
    area_id: str
    deleted_by: str
    title: str
    parent_id: str | None = None


@event("knowledge.area.followed")
class AreaFollowed:
    area_id: str
    user_id: str


@event("knowledge.area.unfollowed")
class AreaUnfollowed:
    area_id: str
    user_id: str


@event("knowledge.question.posted")
class QuestionPosted:
    question_id: str
    author_id: str
    title: str
    tags: tuple[str, ...] = ()
    area_ids: tuple[str, ...] = ()


@event("knowledge.answer.submitted")
class AnswerSubmitted:
    answer_id: str
    question_id: str
    author_id: str
    question_author_id: str


@event("knowledge.answer.accepted")
class AnswerAccepted:
    answer_id: str
    question_id: str
    answer_author_id: str
    question_author_id: str


@event("knowledge.content.voted")
class ContentVoted:
    target_type: str  # "question" | "answer"
    target_id: str
    voter_id: str
    author_id: str
    value: int  # +1 | -1 | 0 (vote withdrawn)
    previous_value: int = 0


@event("knowledge.question.closed")
class QuestionClosed:
    """Closed by its author (a moderator's close is ``moderation.content.closed``)."""

    question_id: str
    closed_by: str
    reason: str = ""


@event("knowledge.question.reopened")
class QuestionReopened:
    question_id: str
    reopened_by: str


@event("knowledge.question.resolved")
class QuestionResolved:
    """Marked resolved by its author without accepting an answer (acceptance resolves too, with
    ``knowledge.answer.accepted``)."""

    question_id: str
    resolved_by: str


@event("knowledge.discussion.started", "1.1.0")
class DiscussionStarted:
    discussion_id: str
    author_id: str
    title: str
    tags: tuple[str, ...] = ()
    area_ids: tuple[str, ...] = ()


@event("knowledge.discussion.replied")
class DiscussionReplied:
    reply_id: str
    discussion_id: str
    author_id: str
    discussion_author_id: str
    parent_reply_id: str | None = None
    parent_author_id: str | None = None
    depth: int = 0


@event("knowledge.insight.shared", "1.1.0")
class InsightShared:
    insight_id: str
    author_id: str
    title: str
    insight_type: str = "article"
    co_author_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    area_ids: tuple[str, ...] = ()


@event("knowledge.resource.uploaded", "1.1.0")
class ResourceUploaded:
    resource_id: str
    author_id: str
    title: str
    resource_type: str = "link"
    tags: tuple[str, ...] = ()
    area_ids: tuple[str, ...] = ()


@event("knowledge.content.liked")
class ContentLiked:
    target_type: str
    target_id: str
    liker_id: str
    author_id: str


@event("knowledge.content.unliked")
class ContentUnliked:
    target_type: str
    target_id: str
    liker_id: str
    author_id: str


@event("knowledge.content.updated")
class ContentUpdated:
    target_type: str
    target_id: str
    updated_by: str
    changed_fields: tuple[str, ...]


@event("knowledge.content.deleted")
class ContentDeleted:
    """Deleted by its author (a moderator's delete is ``moderation.content.deleted``)."""

    target_type: str
    target_id: str
    deleted_by: str


@event("knowledge.comment.added", "1.1.0")
class CommentAdded:
    comment_id: str
    target_type: str
    target_id: str
    author_id: str
    target_author_id: str = ""


# -- moderation --------------------------------------------------------------------------------
@event("moderation.content.closed")
class ContentClosed:
    target_type: str
    target_id: str
    author_id: str
    moderator_id: str
    reason: str


@event("moderation.content.reopened")
class ContentReopened:
    target_type: str
    target_id: str
    author_id: str
    moderator_id: str
    reason: str


@event("moderation.content.hidden")
class ContentHidden:
    target_type: str
    target_id: str
    author_id: str
    moderator_id: str
    reason: str


@event("moderation.content.unhidden")
class ContentUnhidden:
    target_type: str
    target_id: str
    author_id: str
    moderator_id: str
    reason: str


@event("moderation.content.deleted")
class ContentDeletedByModerator:
    """Deleted by a moderator; ``title`` keeps what it was called (the document is gone)."""

    target_type: str
    target_id: str
    author_id: str
    moderator_id: str
    reason: str
    title: str = ""
    removed: int = 1


@event("moderation.content.reported")
class ContentReported:
    report_id: str
    case_id: str
    target_type: str
    target_id: str
    author_id: str
    reporter_id: str
    reason: str


@event("moderation.case.resolved")
class CaseResolved:
    case_id: str
    target_type: str
    target_id: str
    moderator_id: str
    resolution: str
    note: str = ""


@event("moderation.user.suspended")
class UserSuspended:
    user_id: str
    moderator_id: str
    reason: str
    until: str | None = None


@event("moderation.user.reinstated")
class UserReinstated:
    user_id: str
    moderator_id: str
    reason: str


# -- gamification ------------------------------------------------------------------------------
@event("gamification.xp.earned")
class XpEarned:
    user_id: str
    amount: int
    reason: str
    source_event_id: str
    total_xp: int
    capped_amount: int = 0


@event("gamification.level.up")
class LevelUp:
    user_id: str
    old_level: int
    new_level: int
    total_xp: int


@event("gamification.achievement.unlocked")
class AchievementUnlocked:
    user_id: str
    achievement_id: str
    name: str
    xp_reward: int = 0


@event("gamification.quest.completed")
class QuestCompleted:
    user_id: str
    quest_id: str
    period: str
    xp_reward: int = 0


@event("gamification.streak.milestone")
class StreakMilestone:
    user_id: str
    days: int
    bonus_xp: int = 0


# -- payment -----------------------------------------------------------------------------------
@event("payment.subscription.created")
class SubscriptionCreated:
    user_id: str
    tier: str
    status: str = "active"


@event("payment.subscription.upgraded")
class SubscriptionUpgraded:
    user_id: str
    old_tier: str
    new_tier: str


@event("payment.subscription.downgraded")
class SubscriptionDowngraded:
    user_id: str
    old_tier: str
    new_tier: str


@event("payment.subscription.cancelled")
class SubscriptionCancelled:
    user_id: str
    tier: str
    access_until: str | None = None


@event("payment.quota.exceeded", "1.1.0")
class QuotaExceeded:
    user_id: str
    quota: str
    limit: int
    period: str
    resets_at: str = ""


@event("payment.invoice.paid")
class InvoicePaid:
    user_id: str
    order_id: str
    amount_cents: int
    currency: str = "USD"


@event("payment.subscription.reactivated")
class SubscriptionReactivated:
    """A canceled subscription un-canceled before its period ended (Polar's
    ``subscription.uncanceled``)."""

    user_id: str
    tier: str


@event("payment.subscription.past_due")
class SubscriptionPastDue:
    """A renewal payment failed; the tier holds until ``access_until`` unless Polar revokes."""

    user_id: str
    tier: str
    access_until: str | None = None


def event_type_of(evt: object) -> str:
    """The ``event_type`` of a catalog event instance; TypeError for anything else."""
    tag = tag_of(evt)
    if tag not in CATALOG:
        raise TypeError(f"{type(evt).__qualname__} is a message but not a domain event")
    return tag


#: class -> (event_type, version, payload field names): what ``to_envelope`` looks up once per
#: class instead of once per event.
_SHAPES: dict[type, tuple[str, str, tuple[str, ...]]] = {}


def _shape(evt: object) -> tuple[str, str, tuple[str, ...]]:
    shape = _SHAPES.get(type(evt))
    if shape is None:
        event_type = event_type_of(evt)
        shape = _SHAPES[type(evt)] = (event_type, VERSIONS[event_type],
                                      tuple(message_spec(event_type).names))
    return shape


def _payload(evt: object, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(evt, name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def to_envelope(
    evt: object,
    *,
    event_id: str,
    producer_id: str,
    correlation_id: str | None = None,
    trace_id: str | None = None,
    timestamp: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> DomainEvent:
    """The seed's envelope around ``evt``; ``event_id`` must be deterministic for the cause
    (e.g. derived from the causing message id) so a redelivery produces the same id."""
    event_type, version, names = _shape(evt)
    return DomainEvent(
        event_type=event_type,
        event_id=event_id,
        event_version=version,
        payload=_payload(evt, names),
        timestamp=utc_now() if timestamp is None else timestamp,  # DomainEvent's default
        trace_id=trace_id,
        correlation_id=correlation_id,
        source_service=SOURCE,
        producer_id=producer_id,
        metadata={} if metadata is None else dict(metadata),
    )


def from_envelope(envelope: Mapping[str, Any]) -> object:
    """The catalog event inside a stored envelope (upgrading older major versions)."""
    event_type = envelope.get("event_type")
    cls = CATALOG.get(event_type) if isinstance(event_type, str) else None
    if cls is None or not isinstance(event_type, str):
        raise CodecError(
            f"unknown event_type {event_type!r}; the catalog has {len(CATALOG)} types",
            what="tag",
        )
    payload = dict(envelope.get("payload") or {})
    major = int(str(envelope.get("event_version", "1")).split(".")[0])
    current = int(VERSIONS[event_type].split(".")[0])
    if major != current:
        upgrade = UPGRADES.get((event_type, major))
        if upgrade is None:
            raise CodecError(
                f"{event_type} version {envelope.get('event_version')} cannot be read: this "
                f"node reads major version {current} and has no upgrade from {major}",
                what="frame",
            )
        payload = upgrade(payload)
    spec = message_spec(event_type)
    known = {k: v for k, v in payload.items() if k in spec.names}  # newer fields: ignored
    for field in attrs.fields(cls):
        if field.name in known and isinstance(known[field.name], list):
            known[field.name] = tuple(known[field.name])
    try:
        return cls(**known)
    except TypeError as exc:
        raise CodecError(f"{event_type} payload {payload!r} is invalid: {exc}",
                         what="field") from exc


__all__ = [
    "CATALOG",
    "UPGRADES",
    "VERSIONS",
    "AchievementUnlocked",
    "AnswerAccepted",
    "AnswerSubmitted",
    "AreaCreated",
    "AreaDeleted",
    "AreaFollowed",
    "AreaMoved",
    "AreaUnfollowed",
    "AreaUpdated",
    "CaseResolved",
    "CommentAdded",
    "ContentClosed",
    "ContentDeleted",
    "ContentDeletedByModerator",
    "ContentHidden",
    "ContentLiked",
    "ContentReopened",
    "ContentReported",
    "ContentUnhidden",
    "ContentUnliked",
    "ContentUpdated",
    "ContentVoted",
    "DiscussionReplied",
    "DiscussionStarted",
    "InsightShared",
    "InvoicePaid",
    "LevelUp",
    "QuestCompleted",
    "QuestionClosed",
    "QuestionPosted",
    "QuestionReopened",
    "QuestionResolved",
    "QuotaExceeded",
    "ResourceUploaded",
    "StreakMilestone",
    "SubscriptionCancelled",
    "SubscriptionCreated",
    "SubscriptionDowngraded",
    "SubscriptionPastDue",
    "SubscriptionReactivated",
    "SubscriptionUpgraded",
    "UserAuthenticated",
    "UserEmailVerified",
    "UserProfileUpdated",
    "UserRegistered",
    "UserReinstated",
    "UserSuspended",
    "XpEarned",
    "event",
    "event_type_of",
    "from_envelope",
    "to_envelope",
]
