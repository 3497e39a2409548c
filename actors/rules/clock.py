"""Time for the rules, injected: a :class:`Clock` protocol and UTC calendar helpers.

Rules never read a clock: they take ``datetime``s (timezone-aware) or ``date``s (UTC days) as
arguments. Actors hold a :class:`Clock` (:class:`SystemClock` in production, :class:`FixedClock`
in tests) and pass ``clock.now()`` in. Every helper here is pure.

A TekTree *day* is a UTC calendar day: it starts at 00:00:00 UTC, whatever the user's zone. A
TekTree *week* is an ISO 8601 week (Monday to Sunday, week 1 holds the year's first Thursday),
written ``"2025-W50"`` as in the seed's ``leaderboard:weekly:2025-W50`` key. Near new year the
ISO year differs from the calendar year: 2024-12-30 is in ``2025-W01``, 2021-01-03 in
``2020-W53``.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol, runtime_checkable

import attrs

__all__ = [
    "Clock",
    "FixedClock",
    "SystemClock",
    "day_bounds",
    "day_id",
    "iso_week",
    "iso_week_monday",
    "next_utc_midnight",
    "utc_day",
    "week_bounds",
]

_ISO_WEEK = re.compile(r"(?P<year>\d{4})-W(?P<week>\d{2})")


@runtime_checkable
class Clock(Protocol):
    """Where an actor gets the current time from; ``now()`` is timezone-aware, in UTC."""

    def now(self) -> datetime: ...


@attrs.define(frozen=True, slots=True)
class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _require_aware(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} must be timezone-aware (rules work in UTC days), got naive {value!r}; "
            "use datetime.now(UTC) or attach tzinfo=UTC"
        )
    return value.astimezone(UTC)


def _fixed_clock_at(value: datetime) -> datetime:
    return _require_aware(value, "FixedClock.at")


@attrs.define(slots=True, kw_only=True)
class FixedClock:
    """A clock that stands still until a test moves it (``advance`` or ``set``).

    Not a value class: an actor holds one and sees the test move it.
    """

    at: datetime = attrs.field(converter=_fixed_clock_at)

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` (never backward) and return the new time."""
        if delta < timedelta(0):
            raise ValueError(f"FixedClock.advance() moves forward only, got delta={delta!r}")
        self.at = self.at + delta
        return self.at

    def set(self, at: datetime) -> None:
        """Put the clock at ``at`` (any aware datetime, even an earlier one)."""
        self.at = _fixed_clock_at(at)


#: The last ``utc_day`` answer, by the datetime object asked (datetimes are immutable): one
#: event's rules ask for the day of the same ``at`` several times (XP cap, streak, quests).
_last_day: tuple[datetime | None, date] = (None, date.min)


def utc_day(dt: datetime) -> date:
    """The UTC calendar day ``dt`` falls on (an aware ``datetime`` in any zone)."""
    global _last_day
    last = _last_day
    if last[0] is dt:
        return last[1]
    day = _require_aware(dt, "utc_day(dt)").date()
    _last_day = (dt, day)
    return day


@functools.lru_cache(maxsize=64)
def day_id(day: date) -> str:
    """The id of UTC day ``day``, ``day.isoformat()`` (``"2025-12-16"``): kept for the latest
    days, since every award and quest record asks for the same few."""
    return day.isoformat()


def _as_day(when: datetime | date, what: str) -> date:
    if isinstance(when, datetime):
        return utc_day(when)
    if isinstance(when, date):
        return when
    raise TypeError(f"{what} must be a date or an aware datetime, got {when!r}")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[start, end)`` of UTC day ``day``: midnight UTC to the next midnight UTC."""
    day = _as_day(day, "day_bounds(day)")
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start, start + timedelta(days=1)


def next_utc_midnight(dt: datetime) -> datetime:
    """The first 00:00 UTC strictly after ``dt`` (the seed's ``daily_xp_reset_at``)."""
    return day_bounds(utc_day(dt))[1]


def iso_week(when: datetime | date) -> str:
    """ISO 8601 week of ``when`` (a UTC day, or an aware datetime taken in UTC): ``"2025-W50"``."""
    return _iso_week_of(_as_day(when, "iso_week(when)"))


@functools.lru_cache(maxsize=64)
def _iso_week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


def iso_week_monday(week: str) -> date:
    """The Monday starting ISO week ``week`` (``"2025-W50"``); rejects weeks the year lacks."""
    match = _ISO_WEEK.fullmatch(week) if isinstance(week, str) else None
    if match is None:
        raise ValueError(f"ISO week must look like '2025-W50' (YYYY-Www), got {week!r}")
    year, number = int(match["year"]), int(match["week"])
    try:
        monday = date.fromisocalendar(year, number, 1)
    except ValueError:
        raise ValueError(
            f"ISO year {year} has no week {number:02d} (weeks run 01..52, or 01..53 in long "
            f"years), got {week!r}"
        ) from None
    return monday


def week_bounds(when: datetime | date) -> tuple[datetime, datetime]:
    """``[start, end)`` of the ISO week holding ``when``: Monday 00:00 UTC to the next Monday."""
    day = _as_day(when, "week_bounds(when)")
    monday = day - timedelta(days=day.weekday())
    start = datetime.combine(monday, time(0), tzinfo=UTC)
    return start, start + timedelta(days=7)
