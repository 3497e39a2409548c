"""XP: what each action earns, the daily cap, and the idempotent :func:`award` rule.

The XP table (:class:`XpTable`, defaults below; load overrides with :meth:`XpTable.from_mapping`,
which names any unknown key or bad value). Field names are the :class:`XpReason` values.

==========================  =====  ==========================================================
reason                      XP     cause
==========================  =====  ==========================================================
``welcome``                 50     ``user.registered`` (once per user)
``question_posted``         5      ``knowledge.question.posted``, to the asker
``answer_submitted``        10     ``knowledge.answer.submitted``, to the answerer
``answer_upvoted``          10     an up-vote on an answer, to its author
``question_upvoted``        5      an up-vote on a question, to its author
``answer_accepted``         25     ``knowledge.answer.accepted``, to the answerer (cap-exempt)
``answer_accepted_asker``   5      the same event, to the asker who accepted (cap-exempt)
``insight_published``       25     ``knowledge.insight.shared``, to the author
``comment_added``           2      ``knowledge.comment.added``, to the commenter
``content_liked``           2      ``knowledge.content.liked``, to the content's author
``streak_7_days``           50     a 7-day streak milestone (cap-exempt)
``streak_30_days``          150    a 30-day streak milestone (cap-exempt)
``streak_100_days``         500    a 100-day streak milestone (cap-exempt)
``streak_365_days``         1500   a 365-day streak milestone (cap-exempt)
``achievement_unlocked``    --     the achievement's own ``xp_reward`` (cap-exempt)
``quest_completed``         --     the quest's own ``xp_reward`` (cap-exempt)
==========================  =====  ==========================================================

**Daily cap.** At most ``daily_cap`` (500) XP from capped reasons per UTC day (00:00:00 UTC to the
next midnight). An award that would pass the cap is cut to what is left (a partial award) and the
rest is recorded as ``capped_amount``; once the cap is reached, capped reasons earn 0 until
midnight UTC. Reasons in ``cap_exempt`` are always awarded in full and do not use up the cap: the
accepted answer (both halves: one acceptance per question, so it cannot be farmed, and it rewards
quality rather than volume), streak milestones, achievements and quests (each bounded by its own
rule). Exempt XP still counts in ``total_xp``. The cap window is the latest UTC day the ledger has
seen: an award dated earlier (a late, out-of-order event) is charged to that latest day, so no
day's charges ever pass the cap and the ledger needs no history of past days.

**Idempotency.** Each award is keyed by the id of the event that caused it; one event pays one
user at most once (so a self-accepted answer pays only the first of its two reasons, which also
stops the obvious farming loop). Two guards, both needed:

* the *durable* guard is the journal: the transaction id is derived from ``(user_id, event_id)``
  (``xp_txn:<user>:<event>``) and ``xp_transactions.transaction_id`` has a unique index, so an
  event applied at any time in the past is rejected by the store. The actor appends the
  transaction and saves the new ledger in one step, and keeps its old state if the append is a
  duplicate;
* the *in-memory* guard is :attr:`XpLedger.recent_event_ids`, the last ``idempotency_window``
  (1 024) event ids applied, checked by :func:`award` itself, so at-least-once redelivery (a
  Redis Streams pending entry claimed again, a retried ``tell``) is answered without touching the
  store. It is bounded so a profile snapshot stays small whatever the user's history; keeping every
  id forever would grow it without end and the journal already holds them.

Derived awards use ids derived from what they reward, unique per user for all time:
``MilestoneReached.award_event_id`` for streaks, e.g. ``achievement:<id>`` and
``quest:<id>:<period>`` for the others. Events that pay (even 0 XP because of the cap) are
recorded, so a capped event redelivered after midnight still pays nothing.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import attrs

from actors.rules.clock import day_id, utc_day

__all__ = [
    "DEFAULT_CAP_EXEMPT",
    "DEFAULT_XP_TABLE",
    "REWARD_REASONS",
    "Award",
    "XpLedger",
    "XpReason",
    "XpTable",
    "XpTableError",
    "XpTransaction",
    "award",
    "charge",
    "requested_xp",
    "streak_milestone_reason",
    "transaction_document",
    "transaction_id_for",
]


class XpReason(enum.StrEnum):
    """Why XP was awarded; stored as ``xp_transactions.source``."""

    WELCOME = "welcome"
    QUESTION_POSTED = "question_posted"
    ANSWER_SUBMITTED = "answer_submitted"
    ANSWER_UPVOTED = "answer_upvoted"
    QUESTION_UPVOTED = "question_upvoted"
    ANSWER_ACCEPTED = "answer_accepted"
    ANSWER_ACCEPTED_ASKER = "answer_accepted_asker"
    INSIGHT_PUBLISHED = "insight_published"
    COMMENT_ADDED = "comment_added"
    CONTENT_LIKED = "content_liked"
    STREAK_7_DAYS = "streak_7_days"
    STREAK_30_DAYS = "streak_30_days"
    STREAK_100_DAYS = "streak_100_days"
    STREAK_365_DAYS = "streak_365_days"
    ACHIEVEMENT_UNLOCKED = "achievement_unlocked"
    QUEST_COMPLETED = "quest_completed"


#: Reasons whose amount is set by the cause (an achievement's or quest's ``xp_reward``) and
#: passed to :func:`award` as ``amount=``; every other reason's amount comes from the table.
REWARD_REASONS: Final = frozenset({XpReason.ACHIEVEMENT_UNLOCKED, XpReason.QUEST_COMPLETED})

#: Reasons awarded in full whatever the daily cap, and not counted against it.
DEFAULT_CAP_EXEMPT: Final = frozenset(
    {
        XpReason.ANSWER_ACCEPTED,
        XpReason.ANSWER_ACCEPTED_ASKER,
        XpReason.STREAK_7_DAYS,
        XpReason.STREAK_30_DAYS,
        XpReason.STREAK_100_DAYS,
        XpReason.STREAK_365_DAYS,
        XpReason.ACHIEVEMENT_UNLOCKED,
        XpReason.QUEST_COMPLETED,
    }
)

_MILESTONE_REASONS: Final = {
    7: XpReason.STREAK_7_DAYS,
    30: XpReason.STREAK_30_DAYS,
    100: XpReason.STREAK_100_DAYS,
    365: XpReason.STREAK_365_DAYS,
}


def streak_milestone_reason(days: int) -> XpReason:
    """The reason paying the bonus for a ``days``-long streak milestone (7, 30, 100 or 365)."""
    try:
        return _MILESTONE_REASONS[days]
    except (KeyError, TypeError):
        raise ValueError(
            f"no streak milestone at {days!r} days; milestones are {sorted(_MILESTONE_REASONS)}"
        ) from None


class XpTableError(ValueError):
    """A bad XP table setting; ``key`` names the setting and ``value`` is what was given."""

    def __init__(self, key: str, value: object, rule: str) -> None:
        super().__init__(f"XP table setting {key!r}: {rule}, got {value!r}")
        self.key = key
        self.value = value


def _int_setting(minimum: int) -> Any:
    def check(instance: Any, attribute: Any, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise XpTableError(attribute.name, value, "must be an int")
        if value < minimum:
            raise XpTableError(attribute.name, value, f"must be >= {minimum}")

    return check


_REASON_VALUES: Final = frozenset(r.value for r in XpReason)


def _known_reasons() -> str:
    return ", ".join(r.value for r in XpReason)


def _reason(value: object, key: str) -> XpReason:
    if isinstance(value, str) and value in _REASON_VALUES:
        return XpReason(value)
    raise XpTableError(key, value, f"is not an XP reason (one of {_known_reasons()})")


def _award_reason(value: object) -> XpReason:
    if type(value) is XpReason:  # the usual case: XpReason(member) costs an Enum lookup
        return value
    if isinstance(value, str) and value in _REASON_VALUES:
        return XpReason(value)
    raise ValueError(
        f"award(reason=) must be an XpReason (one of {_known_reasons()}), got {value!r}"
    )


def _reason_set(value: Iterable[XpReason | str]) -> frozenset[XpReason]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise XpTableError("cap_exempt", value, "must be a list of XP reason names")
    return frozenset(_reason(item, "cap_exempt") for item in value)


_amount = _int_setting(0)


@attrs.frozen(kw_only=True, slots=True)
class XpTable:
    """XP per reason, the daily cap and the idempotency window (see the module doc's table)."""

    welcome: int = attrs.field(default=50, validator=_amount)
    question_posted: int = attrs.field(default=5, validator=_amount)
    answer_submitted: int = attrs.field(default=10, validator=_amount)
    answer_upvoted: int = attrs.field(default=10, validator=_amount)
    question_upvoted: int = attrs.field(default=5, validator=_amount)
    answer_accepted: int = attrs.field(default=25, validator=_amount)
    answer_accepted_asker: int = attrs.field(default=5, validator=_amount)
    insight_published: int = attrs.field(default=25, validator=_amount)
    comment_added: int = attrs.field(default=2, validator=_amount)
    content_liked: int = attrs.field(default=2, validator=_amount)
    streak_7_days: int = attrs.field(default=50, validator=_amount)
    streak_30_days: int = attrs.field(default=150, validator=_amount)
    streak_100_days: int = attrs.field(default=500, validator=_amount)
    streak_365_days: int = attrs.field(default=1500, validator=_amount)
    #: XP from capped reasons allowed per UTC day.
    daily_cap: int = attrs.field(default=500, validator=_amount)
    #: Reasons awarded in full and not counted against the cap.
    cap_exempt: frozenset[XpReason] = attrs.field(
        default=DEFAULT_CAP_EXEMPT, converter=_reason_set
    )
    #: How many recent event ids a ledger remembers (the in-memory idempotency guard).
    idempotency_window: int = attrs.field(default=1024, validator=_int_setting(1))

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> XpTable:
        """A table from config (a TOML table): defaults overridden by ``settings``.

        Unknown keys are rejected by name, with the closest valid key suggested.
        """
        if not isinstance(settings, Mapping):
            raise XpTableError("<table>", settings, "must be a mapping of setting -> value")
        known = [field.name for field in attrs.fields(cls)]
        for key in settings:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise XpTableError(
                    str(key), settings[key], f"unknown setting; {hint}known: {', '.join(known)}"
                )
        return cls(**settings)  # type: ignore[arg-type]  # each value is validated by name

    def as_mapping(self) -> dict[str, object]:
        """The settings as plain values, the inverse of :meth:`from_mapping`."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in attrs.fields(XpTable)}
        out["cap_exempt"] = sorted(r.value for r in self.cap_exempt)
        return out

    def amount_for(self, reason: XpReason) -> int:
        """The XP ``reason`` earns before the cap; reward reasons have no table amount."""
        reason = _award_reason(reason)
        if reason in REWARD_REASONS:
            raise ValueError(
                f"{reason.value!r} has no table amount: its XP is the achievement's or quest's "
                "xp_reward, passed as award(..., amount=...)"
            )
        amount: int = getattr(self, reason)  # the field named by the value (reason is a str)
        return amount

    def is_cap_exempt(self, reason: XpReason) -> bool:
        return reason in self.cap_exempt


DEFAULT_XP_TABLE: Final = XpTable()


# -- ledger ------------------------------------------------------------------------------------
def _non_empty_str(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty str, got {value!r}"
        )


def _non_negative(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be an int >= 0, got {value!r}"
        )


def _optional_day(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, datetime) or not isinstance(value, date)):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a date (a UTC day) or None, "
            f"got {value!r}"
        )


def _id_tuple(value: Iterable[str]) -> tuple[str, ...]:
    ids = value if type(value) is tuple else tuple(value)
    bad = [i for i in ids if not isinstance(i, str) or not i]
    if bad:
        raise ValueError(f"XpLedger.recent_event_ids must hold non-empty strs, got {bad[0]!r}")
    return ids


@attrs.frozen(kw_only=True, slots=True)
class XpLedger:
    """A user's XP state: the seed profile's ``total_xp``, ``daily_xp_earned`` and its day, and
    the recent event ids (the in-memory idempotency guard)."""

    user_id: str = attrs.field(validator=_non_empty_str)
    total_xp: int = attrs.field(default=0, validator=_non_negative)
    #: The UTC day ``daily_xp_earned`` is counted for: the latest day an award was dated.
    day: date | None = attrs.field(default=None, validator=_optional_day)
    #: XP from capped reasons counted against the cap on ``day`` (exempt XP is not counted).
    daily_xp_earned: int = attrs.field(default=0, validator=_non_negative)
    #: Ids of the latest events applied, oldest first, at most the table's idempotency window.
    recent_event_ids: tuple[str, ...] = attrs.field(default=(), converter=_id_tuple)

    def __attrs_post_init__(self) -> None:
        if self.day is None and self.daily_xp_earned:
            raise ValueError(
                f"XpLedger.daily_xp_earned={self.daily_xp_earned} needs the day it was earned on"
            )

    @property
    def daily_xp_reset_at(self) -> datetime | None:
        """When the daily counter next resets (midnight UTC after ``day``), as in the seed."""
        if self.day is None:
            return None
        return datetime.combine(self.day + timedelta(days=1), time(0), tzinfo=UTC)

    def daily_xp_on(self, day: date) -> int:
        """Capped XP already counted on UTC day ``day`` (0 on a day after the ledger's)."""
        return self.daily_xp_earned if self.day is not None and day <= self.day else 0


@attrs.frozen(kw_only=True, slots=True)
class XpTransaction:
    """One ``xp_transactions`` record (the journal); written even when the cap cut it to 0."""

    transaction_id: str
    user_id: str
    #: XP granted (after the cap).
    amount: int
    #: XP the reason was worth before the cap.
    requested_amount: int
    #: ``requested_amount - amount``: what the daily cap withheld.
    capped_amount: int
    reason: XpReason
    source_event_id: str
    #: XP counted against the cap on ``cap_day`` after this transaction.
    daily_total: int
    daily_cap: int
    cap_exempt: bool
    #: The UTC day whose cap this transaction was charged to (see the module doc on late events).
    cap_day: date
    #: When the causing event happened (the ``at`` given to :func:`award`).
    created_at: datetime

    @property
    def capped(self) -> bool:
        return self.capped_amount > 0

    def as_document(self) -> dict[str, object]:
        """The record in the seed's field names (``source``, ``timestamp``); the actor adds
        ``related_entity_type`` / ``related_entity_id`` from the causing event."""
        return transaction_document(
            user_id=self.user_id, event_id=self.source_event_id, reason=self.reason,
            requested=self.requested_amount, granted=self.amount, daily_total=self.daily_total,
            daily_cap=self.daily_cap, exempt=self.cap_exempt, cap_day=self.cap_day,
            timestamp=self.created_at,
        )  # fmt: skip


def transaction_document(
    *, user_id: str, event_id: str, reason: XpReason, requested: int, granted: int,
    daily_total: int, daily_cap: int, exempt: bool, cap_day: date, timestamp: object,
) -> dict[str, object]:
    """An :class:`XpTransaction`'s record (:meth:`XpTransaction.as_document`) from plain values,
    for a caller that charged with :func:`charge` and builds no transaction object."""
    return {
        "transaction_id": transaction_id_for(user_id, event_id),
        "user_id": user_id,
        "amount": granted,
        "requested_amount": requested,
        "capped_amount": requested - granted,
        "capped": requested > granted,
        "source": reason.value,
        "source_event_id": event_id,
        "daily_total": daily_total,
        "daily_cap": daily_cap,
        "cap_exempt": exempt,
        "cap_day": day_id(cap_day),
        "timestamp": timestamp,
    }  # fmt: skip


@attrs.frozen(kw_only=True, slots=True)
class Award:
    """The outcome of :func:`award`: the new ledger and the transaction to journal (``None`` for
    a duplicate, which changes nothing)."""

    state: XpLedger
    reason: XpReason
    event_id: str
    #: XP the reason was worth before the cap.
    requested: int
    #: XP granted: ``requested - capped_amount``, or 0 for a duplicate.
    amount: int
    capped_amount: int
    duplicate: bool
    transaction: XpTransaction | None

    @property
    def capped(self) -> bool:
        return self.capped_amount > 0


def transaction_id_for(user_id: str, event_id: str) -> str:
    """The journal key of ``event_id``'s award to ``user_id`` (unique index: the durable guard)."""
    return f"xp_txn:{user_id}:{event_id}"


def award(
    ledger: XpLedger,
    *,
    reason: XpReason,
    event_id: str,
    at: datetime,
    table: XpTable,
    amount: int | None = None,
) -> Award:
    """Award ``reason``'s XP for event ``event_id`` (which happened ``at``) to ``ledger``'s user.

    Idempotent on ``event_id`` within the ledger's window (see the module doc for the durable
    guard); capped at ``table.daily_cap`` per UTC day for non-exempt reasons, partially if need
    be. ``amount`` is required for (and only for) :data:`REWARD_REASONS`.
    """
    reason = _award_reason(reason)
    if not isinstance(event_id, str) or not event_id:
        raise ValueError(f"award(event_id) must be a non-empty str, got {event_id!r}")
    day = utc_day(at)
    requested = requested_xp(reason, table, amount)
    if event_id in ledger.recent_event_ids:
        return Award(
            state=ledger,
            reason=reason,
            event_id=event_id,
            requested=requested,
            amount=0,
            capped_amount=0,
            duplicate=True,
            transaction=None,
        )

    exempt = reason in table.cap_exempt
    cap_day, granted, used = charge(
        ledger.day, ledger.daily_xp_earned, day=day, requested=requested, exempt=exempt,
        daily_cap=table.daily_cap,
    )  # fmt: skip
    new_state = XpLedger(
        user_id=ledger.user_id,
        total_xp=ledger.total_xp + granted,
        day=cap_day,
        daily_xp_earned=used,
        recent_event_ids=(*ledger.recent_event_ids, event_id)[-table.idempotency_window :],
    )
    transaction = XpTransaction(
        transaction_id=transaction_id_for(ledger.user_id, event_id),
        user_id=ledger.user_id,
        amount=granted,
        requested_amount=requested,
        capped_amount=requested - granted,
        reason=reason,
        source_event_id=event_id,
        daily_total=used,
        daily_cap=table.daily_cap,
        cap_exempt=exempt,
        cap_day=cap_day,
        created_at=at if at.tzinfo is UTC else at.astimezone(UTC),
    )
    return Award(
        state=new_state,
        reason=reason,
        event_id=event_id,
        requested=requested,
        amount=granted,
        capped_amount=requested - granted,
        duplicate=False,
        transaction=transaction,
    )


def requested_xp(reason: XpReason, table: XpTable, amount: int | None = None) -> int:
    """What ``reason`` is worth before the cap: ``table``'s amount, or ``amount`` for the
    :data:`REWARD_REASONS` (required for them, refused for the others), as :func:`award` takes
    it."""
    if reason in REWARD_REASONS:
        if amount is None or isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(
                f"award(reason={reason.value!r}) needs amount= (the reward's xp_reward, an int "
                f">= 0), got amount={amount!r}"
            )
        return amount
    if amount is not None:
        raise ValueError(
            f"award(reason={reason.value!r}) takes its amount from the XP table; amount= is only "
            f"for {sorted(r.value for r in REWARD_REASONS)}, got amount={amount!r}"
        )
    return table.amount_for(reason)


def charge(
    ledger_day: date | None, daily_xp_earned: int, *, day: date, requested: int, exempt: bool,
    daily_cap: int,
) -> tuple[date, int, int]:
    """The daily cap of :func:`award` on plain values: ``requested`` XP dated UTC day ``day``,
    charged to a ledger whose counter is ``daily_xp_earned`` on ``ledger_day``. Returns
    ``(cap_day, granted, daily_total)``: the day charged (the latest seen: a new day resets the
    counter, a late event uses the ledger's), the XP granted and the counter after."""
    if ledger_day is None or day > ledger_day:
        cap_day, used = day, 0
    else:
        cap_day, used = ledger_day, daily_xp_earned
    if exempt:
        return cap_day, requested, used
    granted = min(requested, max(0, daily_cap - used))
    return cap_day, granted, used + granted
