"""Daily and weekly quests: a catalog in data and a pure per-user progress state.

A quest (:class:`QuestDef`) asks for ``target`` units of one counter within one period: a UTC
day (period id ``2025-12-16``) or an ISO week starting Monday 00:00 UTC (``2025-W50``, the
ISO week-numbering year, so 2024-12-30 is in ``2025-W01``). The counters are the ones the
user's actor records (``answers_submitted``, ``questions_posted``, ``xp_earned``,
``upvotes_received``, ...); quest rewards should not be recorded as ``xp_earned``, or one
quest's reward would count towards the next.

:class:`QuestState` holds at most one daily and one weekly period. Periods roll over lazily:
:func:`record` for a later period starts it afresh (the old progress is discarded) and
:func:`progress` shows a stale period as empty, so no scheduler ever touches every user. An
event stamped in a period *older* than the one held (a late delivery) is ignored for that
period: a closed period is never reopened and today's progress is never wiped.

Within a period each quest's progress clamps at its target, and a quest completes once: on
the record that brings it to its target.
"""

from __future__ import annotations

import datetime as dt
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias, TypeVar, get_args

import attrs

from actors.rules.clock import day_id, iso_week, next_utc_midnight, utc_day, week_bounds

__all__ = [
    "QUESTS",
    "PeriodProgress",
    "QuestDef",
    "QuestPeriod",
    "QuestProgress",
    "QuestState",
    "QuestUpdate",
    "check_quest_catalog",
    "period_end",
    "period_id",
    "progress",
    "record",
    "record_all",
]

QuestPeriod = Literal["daily", "weekly"]
_PERIODS: Final[tuple[str, ...]] = get_args(QuestPeriod)

_ID_PATTERN: Final = re.compile(r"quest_[a-z0-9_]+")
_COUNTER_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]*")
_DAY_PATTERN: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEK_PATTERN: Final = re.compile(r"\d{4}-W\d{2}")


_T = TypeVar("_T")


def _derived(cls: type[_T], **fields: Any) -> _T:
    """``cls(**fields)`` (a frozen attrs class, every field given) for values derived here from
    validated ones, without running the converters and validators again: ``fields`` must be
    what they would produce (read-only mappings, frozensets, well-formed period ids). Tests
    check that such instances equal their validated rebuild."""
    instance = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(instance, name, value)
    return instance


def _owner(instance: Any, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _non_empty(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise ValueError(f"{_owner(instance, attribute)} must not be empty")


def _matches(pattern: re.Pattern[str], hint: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise ValueError(f"{_owner(instance, attribute)} = {value!r} is not {hint}")

    return check


def _int_at_least(floor: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int:
            raise TypeError(f"{_owner(instance, attribute)} must be an int, got {value!r}")
        if value < floor:
            raise ValueError(f"{_owner(instance, attribute)} must be >= {floor}, got {value!r}")

    return check


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in choices:
            raise ValueError(
                f"{_owner(instance, attribute)} = {value!r} is not one of {', '.join(choices)}"
            )

    return check


@attrs.frozen(kw_only=True)
class QuestDef:
    """One quest of the catalog: reach ``target`` of ``counter`` within one ``period``."""

    id: str = attrs.field(validator=_matches(_ID_PATTERN, "a quest id ('quest_' + snake_case)"))
    title: str = attrs.field(validator=_non_empty)
    period: QuestPeriod = attrs.field(validator=_one_of(_PERIODS))
    counter: str = attrs.field(
        validator=_matches(_COUNTER_PATTERN, "a counter name (lowercase snake_case)")
    )
    target: int = attrs.field(validator=_int_at_least(1))
    xp_reward: int = attrs.field(validator=_int_at_least(0))


def check_quest_catalog(catalog: Iterable[QuestDef]) -> tuple[QuestDef, ...]:
    """The catalog as a tuple, after checking that its ids are unique."""
    entries = tuple(catalog)
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, QuestDef):
            raise TypeError(f"quest catalog entries must be QuestDef, got {entry!r}")
        if entry.id in seen:
            raise ValueError(
                f"quest id {entry.id!r} appears twice in the catalog; ids must be unique"
            )
        seen.add(entry.id)
    return entries


def _quest(
    id: str, title: str, period: QuestPeriod, counter: str, target: int, xp_reward: int
) -> QuestDef:
    return QuestDef(
        id=id, title=title, period=period, counter=counter, target=target, xp_reward=xp_reward
    )


# fmt: off
#: The catalog, in display order.
QUESTS: Final[tuple[QuestDef, ...]] = check_quest_catalog((
    _quest("quest_daily_answer_3", "Answer 3 questions today", "daily", "answers_submitted", 3, 15),
    _quest("quest_daily_ask_1", "Post a question today", "daily", "questions_posted", 1, 5),
    _quest("quest_daily_xp_50", "Earn 50 XP today", "daily", "xp_earned", 50, 10),
    _quest("quest_weekly_xp_200", "Earn 200 XP this week", "weekly", "xp_earned", 200, 50),
    _quest("quest_weekly_answer_10", "Answer 10 questions this week", "weekly",
           "answers_submitted", 10, 50),
    _quest("quest_weekly_upvotes_5", "Get 5 upvotes this week", "weekly", "upvotes_received", 5,
           30),
))
# fmt: on


def period_id(period: QuestPeriod, at: dt.datetime) -> str:
    """The id of the ``period`` holding ``at``: ``YYYY-MM-DD`` (UTC day) or ``YYYY-Www`` (ISO
    week of the UTC day)."""
    if period == "daily":
        return day_id(utc_day(at))
    if period == "weekly":
        return iso_week(at)
    raise ValueError(f"period = {period!r} is not one of {', '.join(_PERIODS)}")


def period_end(period: QuestPeriod, at: dt.datetime) -> dt.datetime:
    """When the ``period`` holding ``at`` ends (exclusive): the next UTC midnight, or the next
    Monday 00:00 UTC."""
    if period == "daily":
        return next_utc_midnight(at)
    if period == "weekly":
        return week_bounds(at)[1]
    raise ValueError(f"period = {period!r} is not one of {', '.join(_PERIODS)}")


def _frozen_counts(value: Mapping[str, int]) -> Mapping[str, int]:
    return types.MappingProxyType(dict(value))


def _frozen_ids(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _counts(instance: Any, attribute: attrs.Attribute[Mapping[str, int]], value: Any) -> None:
    for quest_id, amount in value.items():
        if not isinstance(quest_id, str):
            raise TypeError(
                f"{_owner(instance, attribute)} keys must be quest ids, got {quest_id!r}"
            )
        if type(amount) is not int or amount < 0:
            raise ValueError(
                f"{_owner(instance, attribute)}[{quest_id!r}] = {amount!r}: progress is an int >= 0"
            )


@attrs.frozen(kw_only=True)
class PeriodProgress:
    """The progress of one period: ``progress`` maps quest id to the amount reached so far
    (clamped at the quest's target; quests without progress are absent) and ``completed``
    holds the quests completed in this period."""

    period_id: str = attrs.field(validator=attrs.validators.instance_of(str))
    progress: Mapping[str, int] = attrs.field(
        factory=dict, converter=_frozen_counts, validator=_counts, hash=False
    )
    completed: frozenset[str] = attrs.field(factory=frozenset, converter=_frozen_ids)


def _period_document(held: PeriodProgress | None) -> dict[str, Any] | None:
    if held is None:
        return None
    return {"period_id": held.period_id, "progress": dict(sorted(held.progress.items())),
            "completed": sorted(held.completed)}  # fmt: skip


def _period(pattern: re.Pattern[str], hint: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: PeriodProgress | None) -> None:
        if value is None:
            return
        if not isinstance(value, PeriodProgress):
            raise TypeError(
                f"{_owner(instance, attribute)} must be a PeriodProgress, got {value!r}"
            )
        if pattern.fullmatch(value.period_id) is None:
            raise ValueError(
                f"{_owner(instance, attribute)}.period_id = {value.period_id!r} is not {hint}"
            )

    return check


@attrs.frozen(kw_only=True)
class QuestState:
    """One user's quest progress: the current (or last seen) daily and weekly periods."""

    daily: PeriodProgress | None = attrs.field(
        default=None, validator=_period(_DAY_PATTERN, "a day id like '2025-12-16'")
    )
    weekly: PeriodProgress | None = attrs.field(
        default=None, validator=_period(_WEEK_PATTERN, "an ISO week id like '2025-W50'")
    )

    def periods(self) -> dict[str, PeriodProgress]:
        """The held periods keyed by period id."""
        return {p.period_id: p for p in (self.daily, self.weekly) if p is not None}

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able document, read back by :meth:`from_snapshot`."""
        return {"daily": _period_document(self.daily), "weekly": _period_document(self.weekly)}

    @classmethod
    def from_snapshot(cls, document: Mapping[str, Any]) -> QuestState:
        unknown = set(document) - set(_PERIODS)
        if unknown:
            raise ValueError(
                f"quest state snapshot has unknown keys {sorted(unknown)}; "
                f"expected {', '.join(_PERIODS)}"
            )
        held: dict[str, PeriodProgress | None] = {}
        for period in _PERIODS:
            entry = document.get(period)
            if entry is None:
                held[period] = None
                continue
            if not isinstance(entry, Mapping) or set(entry) != {
                "period_id",
                "progress",
                "completed",
            }:
                raise ValueError(
                    f"quest state snapshot {period!r} = {entry!r} is not "
                    "{'period_id': ..., 'progress': {...}, 'completed': [...]}"
                )
            held[period] = PeriodProgress(
                period_id=entry["period_id"],
                progress=entry["progress"],
                completed=entry["completed"],
            )
        return cls(daily=held["daily"], weekly=held["weekly"])


@attrs.frozen(kw_only=True)
class QuestUpdate:
    """What :func:`record` returns: the new state and the quests completed by this record."""

    new_state: QuestState
    completed: tuple[QuestDef, ...]


@attrs.frozen(kw_only=True)
class QuestProgress:
    """One quest of the current period, for display."""

    quest: QuestDef
    period_id: str
    progress: int
    completed: bool
    resets_at: dt.datetime


_NO_PROGRESS: Final[Mapping[str, int]] = types.MappingProxyType({})


class _Advance:
    """One period being advanced by an event's amounts: plain dicts until :meth:`result`
    builds the new :class:`PeriodProgress` (once, however many amounts)."""

    __slots__ = ("closed", "counts", "done", "held", "quests")

    def __init__(self, held: PeriodProgress | None, current_id: str,
                 quests: Mapping[str, Sequence[QuestDef]]) -> None:
        self.closed = held is not None and held.period_id > current_id  # a late event
        if not self.closed and (held is None or held.period_id != current_id):
            held = _derived(PeriodProgress, period_id=current_id, progress=_NO_PROGRESS,
                            completed=frozenset())  # current_id: from period_id()
        self.held = held
        self.quests = quests
        self.counts: dict[str, int] | None = None
        self.done: set[str] | None = None

    def add(self, counter: str, amount: int, completed: list[QuestDef]) -> None:
        held = self.held
        if self.closed or amount == 0 or held is None:
            return  # a closed period is gone; 0 changes nothing
        for quest in self.quests.get(counter, ()):
            if quest.id in held.completed or (
                    self.done is not None and quest.id in self.done):
                continue
            counts = self.counts = dict(held.progress) if self.counts is None else self.counts
            reached = min(quest.target, counts.get(quest.id, 0) + amount)
            counts[quest.id] = reached
            if reached >= quest.target:
                done = self.done = set(held.completed) if self.done is None else self.done
                done.add(quest.id)
                completed.append(quest)

    def result(self) -> PeriodProgress | None:
        held = self.held
        if self.counts is None or held is None:
            return held
        # ``counts`` is this advance's own copy, and each amount reached was checked by add().
        held = self.held = _derived(
            PeriodProgress, period_id=held.period_id,
            progress=types.MappingProxyType(self.counts),
            completed=held.completed if self.done is None else frozenset(self.done))
        self.counts = self.done = None
        return held


def record(
    state: QuestState,
    *,
    counter: str,
    amount: int,
    at: dt.datetime,
    catalog: Sequence[QuestDef] = QUESTS,
) -> QuestUpdate:
    """Add ``amount`` of ``counter`` at ``at`` to every quest of the current periods counting
    it; the quests that reach their target now are returned as completed (once per period)."""
    return record_all(state, [(counter, amount)], at=at, catalog=catalog)


_ByCounter: TypeAlias = dict[str, list[QuestDef]]


def _by_counter(catalog: Sequence[QuestDef], period: QuestPeriod) -> _ByCounter:
    """The quests of ``catalog`` in ``period`` by counter, each list in catalog order."""
    out: _ByCounter = {}
    for quest in catalog:
        if quest.period == period:
            out.setdefault(quest.counter, []).append(quest)
    return out


def _split(catalog: Sequence[QuestDef]) -> tuple[_ByCounter, _ByCounter]:
    """The daily and the weekly quests of ``catalog`` by counter (checked; the default one
    once)."""
    if catalog is QUESTS:
        return _QUESTS_SPLIT
    catalog = check_quest_catalog(catalog)
    return _by_counter(catalog, "daily"), _by_counter(catalog, "weekly")


def record_all(
    state: QuestState,
    amounts: Sequence[tuple[str, int]],
    *,
    at: dt.datetime,
    catalog: Sequence[QuestDef] = QUESTS,
) -> QuestUpdate:
    """:func:`record` of each ``(counter, amount)`` in turn, at the same ``at``: the periods
    and the catalog are worked out once for the lot (what one event does: its counters and the
    XP it earned)."""
    if not isinstance(state, QuestState):
        raise TypeError(f"state must be a QuestState, got {state!r}")
    for counter, amount in amounts:
        if not isinstance(counter, str) or _COUNTER_PATTERN.fullmatch(counter) is None:
            raise ValueError(
                f"counter = {counter!r} is not a counter name (lowercase snake_case)"
            )
        if type(amount) is not int or amount < 0:
            raise ValueError(
                f"amount = {amount!r}: quest progress only grows; amount is an int >= 0"
            )
    if not amounts:
        return QuestUpdate(new_state=state, completed=())
    dailies, weeklies = _split(catalog)
    completed: list[QuestDef] = []
    daily = _Advance(state.daily, period_id("daily", at), dailies)
    weekly = _Advance(state.weekly, period_id("weekly", at), weeklies)
    for counter, amount in amounts:  # per counter the daily quests, then the weekly ones
        daily.add(counter, amount, completed)
        weekly.add(counter, amount, completed)
    new_daily, new_weekly = daily.result(), weekly.result()
    if new_daily is state.daily and new_weekly is state.weekly:
        new_state = state
    else:
        new_state = _derived(QuestState, daily=new_daily, weekly=new_weekly)
    return QuestUpdate(new_state=new_state, completed=tuple(completed))


_QUESTS_SPLIT: Final = (_by_counter(QUESTS, "daily"), _by_counter(QUESTS, "weekly"))


def progress(
    state: QuestState, at: dt.datetime, catalog: Sequence[QuestDef] = QUESTS
) -> list[QuestProgress]:
    """Every quest of ``catalog`` with its progress in the period holding ``at`` (a period the
    state does not hold, or holds stale, shows as not started)."""
    if not isinstance(state, QuestState):
        raise TypeError(f"state must be a QuestState, got {state!r}")
    rows: list[QuestProgress] = []
    for quest in check_quest_catalog(catalog):
        current_id = period_id(quest.period, at)
        held = state.daily if quest.period == "daily" else state.weekly
        if held is None or held.period_id != current_id:
            held = PeriodProgress(period_id=current_id)
        rows.append(
            QuestProgress(
                quest=quest,
                period_id=current_id,
                progress=min(quest.target, held.progress.get(quest.id, 0)),
                completed=quest.id in held.completed,
                resets_at=period_end(quest.period, at),
            )
        )
    return rows
