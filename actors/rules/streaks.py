"""Activity streaks: consecutive active UTC days, kept alive over missed days by freezes.

The rule, applied by :func:`record_activity` once per activity (any XP-earning action):

* **Days are UTC days** (``clock.utc_day(at)``). A second activity on the same day changes nothing.
* **Consecutive day**: the streak is *extended* by one.
* **Missed days**: a gap of ``k`` missed days (the days strictly between the last active day and
  today) needs ``k`` freezes. With enough freezes, ``k`` are *spent* (one ``FreezeSpent`` per
  missed day, oldest first) and the streak is extended by one: frozen days keep the streak alive
  but do not count in it. Without enough freezes the streak is *broken* and a new one *started* at
  1; the freezes are **kept** (none is spent on a gap they could not bridge: spending them would
  punish the same lapse twice), so they serve the new streak.
* **Freezes** are earned one per 7 days of the current streak (on reaching 7, 14, 21, ...), at most
  :data:`MAX_FREEZES` (6) held; one earned while 6 are held is simply not granted.
* **Milestones** at 7, 30, 100 and 365 days each raise a ``MilestoneReached`` event (the actor
  awards the matching ``XpReason.STREAK_*`` bonus from the XP table: 50, 150, 500 and 1 500 XP by
  default). The streak grows by exactly one per active day and restarts from 1 after a break, so
  each milestone is reached at most once per streak; a new streak can reach it again.
* **Late activity**: a day earlier than the last active day (an out-of-order or redelivered event)
  is ignored: the state is returned unchanged with one ``LateActivityIgnored`` event saying so.
  Rewriting history would need every past day, which the state deliberately does not keep.

:func:`current_streak_on` answers "what streak does this user show today?" without recording an
activity (0 once the missed days since the last active day outnumber the freezes held).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Final, TypeAlias

import attrs

__all__ = [
    "FREEZE_EVERY_DAYS",
    "MAX_FREEZES",
    "STREAK_MILESTONE_DAYS",
    "FreezeEarned",
    "FreezeSpent",
    "LateActivityIgnored",
    "MilestoneReached",
    "StreakBroken",
    "StreakEvent",
    "StreakExtended",
    "StreakStarted",
    "StreakState",
    "StreakUpdate",
    "current_streak_on",
    "record_activity",
]

#: Streak lengths (days) that raise a ``MilestoneReached`` event and earn a bonus.
STREAK_MILESTONE_DAYS: Final = (7, 30, 100, 365)
#: One freeze is earned each time the current streak reaches a multiple of this many days.
FREEZE_EVERY_DAYS: Final = 7
#: The most freezes a user can hold.
MAX_FREEZES: Final = 6


def _plain_date(instance: Any, attribute: Any, value: object) -> None:
    if value is None:
        return
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a date (a UTC day; "
            f"use clock.utc_day(dt)), got {value!r}"
        )


def _int_in(low: int, high: int | None = None) -> Any:
    def check(instance: Any, attribute: Any, value: object) -> None:
        where = f"{type(instance).__name__}.{attribute.name}"
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{where} must be an int, got {value!r}")
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in {low}..{high}"
            raise ValueError(f"{where} must be {bounds}, got {value!r}")

    return check


@attrs.frozen(kw_only=True, slots=True)
class StreakState:
    """A user's streak, as in the seed profile's ``streak`` sub-document.

    ``last_active_day`` is ``None`` exactly when no activity was ever recorded (``current == 0``).
    """

    current: int = attrs.field(default=0, validator=_int_in(0))
    longest: int = attrs.field(default=0, validator=_int_in(0))
    last_active_day: date | None = attrs.field(default=None, validator=_plain_date)
    freezes_available: int = attrs.field(default=0, validator=_int_in(0, MAX_FREEZES))

    def __attrs_post_init__(self) -> None:
        if self.longest < self.current:
            raise ValueError(
                f"StreakState.longest ({self.longest}) must be >= current ({self.current})"
            )
        if (self.last_active_day is None) != (self.current == 0):
            raise ValueError(
                "StreakState.last_active_day must be set exactly when current > 0, got "
                f"current={self.current}, last_active_day={self.last_active_day!r}"
            )


# -- events ------------------------------------------------------------------------------------
@attrs.frozen(kw_only=True, slots=True)
class StreakStarted:
    """A new streak of 1 began on ``day`` (the first ever, or the one after a break)."""

    day: date


@attrs.frozen(kw_only=True, slots=True)
class StreakExtended:
    """The streak grew to ``current`` days with activity on ``day``."""

    day: date
    current: int


@attrs.frozen(kw_only=True, slots=True)
class FreezeSpent:
    """A freeze covered ``missed_day``; ``freezes_left`` remain."""

    missed_day: date
    freezes_left: int


@attrs.frozen(kw_only=True, slots=True)
class FreezeEarned:
    """Reaching ``current`` days (a multiple of 7) earned a freeze; ``freezes_available`` now."""

    day: date
    current: int
    freezes_available: int


@attrs.frozen(kw_only=True, slots=True)
class MilestoneReached:
    """The streak reached ``days`` (one of :data:`STREAK_MILESTONE_DAYS`) on ``day``."""

    day: date
    days: int

    @property
    def award_event_id(self) -> str:
        """The id to award the bonus XP under: unique per user for all time (one streak length
        per day), so a redelivered activity cannot pay the bonus twice."""
        return f"streak_milestone:{self.day.isoformat()}:{self.days}"


@attrs.frozen(kw_only=True, slots=True)
class StreakBroken:
    """A ``length``-day streak ended: ``missed_days`` days were missed, more than the
    ``freezes_available`` held (which are kept)."""

    last_active_day: date
    length: int
    missed_days: int
    freezes_available: int


@attrs.frozen(kw_only=True, slots=True)
class LateActivityIgnored:
    """Activity on ``day``, before ``last_active_day``, arrived late and was ignored."""

    day: date
    last_active_day: date


#: Any event :func:`record_activity` reports.
StreakEvent: TypeAlias = (
    StreakStarted
    | StreakExtended
    | FreezeSpent
    | FreezeEarned
    | MilestoneReached
    | StreakBroken
    | LateActivityIgnored
)


@attrs.frozen(kw_only=True, slots=True)
class StreakUpdate:
    """The outcome of one activity: the new state and what happened, in order."""

    state: StreakState
    events: tuple[StreakEvent, ...] = ()

    @property
    def milestones(self) -> tuple[MilestoneReached, ...]:
        if not self.events:  # the usual case: a second activity the same day
            return ()
        return tuple(e for e in self.events if isinstance(e, MilestoneReached))


# -- the rule ----------------------------------------------------------------------------------
def _check_day(day: object, what: str) -> date:
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"{what} must be a date (a UTC day; use clock.utc_day(dt)), got {day!r}")
    return day


def record_activity(state: StreakState, day: date) -> StreakUpdate:
    """Apply activity on UTC day ``day`` to ``state`` (see the module doc for the rule)."""
    day = _check_day(day, "record_activity(day)")
    last = state.last_active_day
    if last is None:
        return _grow(state, day, current=0, freezes=state.freezes_available, events=[])
    if day == last:
        return StreakUpdate(state=state)
    if day < last:
        return StreakUpdate(
            state=state, events=(LateActivityIgnored(day=day, last_active_day=last),)
        )
    missed = (day - last).days - 1
    freezes = state.freezes_available
    events: list[StreakEvent] = []
    if missed > freezes:
        events.append(
            StreakBroken(
                last_active_day=last,
                length=state.current,
                missed_days=missed,
                freezes_available=freezes,
            )
        )
        return _grow(state, day, current=0, freezes=freezes, events=events)
    for offset in range(1, missed + 1):
        freezes -= 1
        events.append(FreezeSpent(missed_day=last + timedelta(days=offset), freezes_left=freezes))
    return _grow(state, day, current=state.current, freezes=freezes, events=events)


def _grow(
    state: StreakState, day: date, *, current: int, freezes: int, events: list[StreakEvent]
) -> StreakUpdate:
    current += 1
    events.append(
        StreakStarted(day=day) if current == 1 else StreakExtended(day=day, current=current)
    )
    if current % FREEZE_EVERY_DAYS == 0 and freezes < MAX_FREEZES:
        freezes += 1
        events.append(FreezeEarned(day=day, current=current, freezes_available=freezes))
    if current in STREAK_MILESTONE_DAYS:
        events.append(MilestoneReached(day=day, days=current))
    new_state = StreakState(
        current=current,
        longest=max(state.longest, current),
        last_active_day=day,
        freezes_available=freezes,
    )
    return StreakUpdate(state=new_state, events=tuple(events))


def current_streak_on(state: StreakState, day: date) -> int:
    """The streak to show on UTC day ``day`` without new activity: ``state.current`` while the
    days missed since the last active day (not counting ``day`` itself, which may still see
    activity) can be covered by the freezes held, else 0."""
    day = _check_day(day, "current_streak_on(day)")
    last = state.last_active_day
    if last is None:
        return 0
    if day <= last:
        return state.current
    missed = (day - last).days - 1
    return state.current if missed <= state.freezes_available else 0
