"""Streaks (consecutive UTC days, freezes, milestones) and the clock helpers they rest on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.rules.clock import (
    Clock,
    FixedClock,
    SystemClock,
    day_bounds,
    iso_week,
    iso_week_monday,
    next_utc_midnight,
    utc_day,
    week_bounds,
)
from actors.rules.streaks import (
    MAX_FREEZES,
    STREAK_MILESTONE_DAYS,
    FreezeEarned,
    FreezeSpent,
    LateActivityIgnored,
    MilestoneReached,
    StreakBroken,
    StreakExtended,
    StreakStarted,
    StreakState,
    current_streak_on,
    record_activity,
)

D0 = date(2025, 3, 1)


def _run(offsets: list[int], state: StreakState | None = None) -> tuple[StreakState, list[object]]:
    state = state or StreakState()
    events: list[object] = []
    for offset in offsets:
        update = record_activity(state, D0 + timedelta(days=offset))
        state = update.state
        events.extend(update.events)
    return state, events


def _kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- reference model ---------------------------------------------------------------------------
@attrs.define
class Model:
    """Walks the calendar day by day; a missed run is settled on the next active day."""

    current: int = 0
    longest: int = 0
    freezes: int = 0
    last: date | None = None
    milestones: list[tuple[date, int]] = attrs.Factory(list)

    def feed(self, day: date) -> None:
        if self.last is not None and day <= self.last:
            return  # same day: no-op; earlier day: ignored
        missed = 0
        if self.last is not None:
            cursor = self.last + timedelta(days=1)
            while cursor < day:
                missed += 1
                cursor += timedelta(days=1)
        if self.current and missed > self.freezes:
            self.current = 0
        elif self.current:
            self.freezes -= missed
        self.current += 1
        self.longest = max(self.longest, self.current)
        if self.current % 7 == 0:
            self.freezes = min(6, self.freezes + 1)
        if self.current in (7, 30, 100, 365):
            self.milestones.append((day, self.current))
        self.last = day


gaps = st.lists(st.sampled_from([0, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 8, -1, -4]), max_size=400) | (
    # long streaks with the odd short gap, to reach the 30- and 100-day milestones
    st.lists(st.sampled_from([1] * 30 + [0, 2, 3, -2]), min_size=100, max_size=400)
)


@given(gaps)
def test_streaks_follow_the_reference_model(steps: list[int]) -> None:
    model, state = Model(), StreakState()
    offset = 0
    for step in steps:
        offset += step
        day = D0 + timedelta(days=offset)
        before = state
        update = record_activity(state, day)
        state = update.state
        model.feed(day)
        assert (state.current, state.longest, state.freezes_available, state.last_active_day) == (
            model.current, model.longest, model.freezes, model.last
        )
        assert 0 <= state.freezes_available <= MAX_FREEZES
        if before.last_active_day is not None and day < before.last_active_day:
            assert update.state == before
            assert update.events == (LateActivityIgnored(day=day,
                                                          last_active_day=before.last_active_day),)
        if day == before.last_active_day:
            assert update.state == before and update.events == ()
    reached = [(e.day, e.days) for e in _all_events(steps) if isinstance(e, MilestoneReached)]
    assert reached == model.milestones


def _all_events(steps: list[int]) -> list[object]:
    offsets, offset = [], 0
    for step in steps:
        offset += step
        offsets.append(offset)
    return _run(offsets)[1]


@given(gaps)
def test_each_milestone_is_reached_at_most_once_per_streak(steps: list[int]) -> None:
    seen: set[int] = set()
    for event in _all_events(steps):
        if isinstance(event, StreakStarted):
            seen = set()
        if isinstance(event, MilestoneReached):
            assert event.days in STREAK_MILESTONE_DAYS
            assert event.days not in seen
            seen.add(event.days)


@given(gaps)
def test_events_tell_the_whole_story(steps: list[int]) -> None:
    """Replaying the events alone gives the same streak length and freezes."""
    offsets, offset = [], 0
    for step in steps:
        offset += step
        offsets.append(offset)
    state, events = _run(offsets)
    current = freezes = 0
    for event in events:
        if isinstance(event, StreakStarted):
            current = 1
        elif isinstance(event, StreakExtended):
            assert event.current == current + 1
            current = event.current
        elif isinstance(event, FreezeSpent):
            freezes -= 1
            assert event.freezes_left == freezes
        elif isinstance(event, FreezeEarned):
            freezes += 1
            assert (event.current, event.freezes_available) == (current, freezes)
        elif isinstance(event, StreakBroken):
            assert event.missed_days > event.freezes_available == freezes
    assert (current, freezes) == (state.current, state.freezes_available)


# -- the documented scenarios ------------------------------------------------------------------
SCENARIOS = [
    # (what, active day offsets, current, longest, freezes, event kinds of the last activity)
    ("first activity starts a streak", [0], 1, 1, 0, ["StreakStarted"]),
    ("next day extends", [0, 1], 2, 2, 0, ["StreakExtended"]),
    ("same day twice is a no-op", [0, 1, 1], 2, 2, 0, []),
    ("late day is ignored", [0, 1, 2, 0], 3, 3, 0, ["LateActivityIgnored"]),
    ("7th day earns a freeze and the milestone", list(range(7)), 7, 7, 1,
     ["StreakExtended", "FreezeEarned", "MilestoneReached"]),
    ("one missed day without freezes breaks", [0, 1, 2, 4], 1, 3, 0,
     ["StreakBroken", "StreakStarted"]),
    ("one missed day, one freeze: spent, streak goes on", [*range(7), 8], 8, 8, 0,
     ["FreezeSpent", "StreakExtended"]),
    ("two missed days, one freeze: broken, freeze kept", [*range(7), 9], 1, 7, 1,
     ["StreakBroken", "StreakStarted"]),
    ("two missed days, two freezes: both spent", [*range(14), 16], 15, 15, 0,
     ["FreezeSpent", "FreezeSpent", "StreakExtended"]),
    ("two missed days, three freezes: two spent", [*range(21), 23], 22, 22, 1,
     ["FreezeSpent", "FreezeSpent", "StreakExtended"]),
    ("freezes stop at 6", list(range(49)), 49, 49, 6, ["StreakExtended"]),
    ("six missed days, six freezes: all spent", [*range(42), 48], 43, 43, 0,
     ["FreezeSpent"] * 6 + ["StreakExtended"]),
    ("seven missed days, six freezes: broken, six kept", [*range(42), 49], 1, 42, 6,
     ["StreakBroken", "StreakStarted"]),
    ("frozen days do not count in the streak", [*range(7), 8, 9], 9, 9, 0, ["StreakExtended"]),
    ("30th day: milestone, no freeze (30 is not a multiple of 7)", list(range(30)), 30, 30, 4,
     ["StreakExtended", "MilestoneReached"]),
]


@pytest.mark.parametrize(("what", "offsets", "current", "longest", "freezes", "kinds"),
                         SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_documented_scenarios(what: str, offsets: list[int], current: int, longest: int,
                              freezes: int, kinds: list[str]) -> None:
    state, _ = _run(offsets[:-1])
    update = record_activity(state, D0 + timedelta(days=offsets[-1]))
    assert (update.state.current, update.state.longest, update.state.freezes_available) == (
        current, longest, freezes
    )
    assert _kinds(list(update.events)) == kinds


def test_a_full_year_reaches_every_milestone_once() -> None:
    state, events = _run(list(range(400)))
    milestones = [e for e in events if isinstance(e, MilestoneReached)]
    assert [m.days for m in milestones] == [7, 30, 100, 365]
    assert [m.day for m in milestones] == [D0 + timedelta(days=d - 1) for d in (7, 30, 100, 365)]
    assert len({m.award_event_id for m in milestones}) == 4
    assert milestones[0].award_event_id == "streak_milestone:2025-03-07:7"
    earned = [e for e in events if isinstance(e, FreezeEarned)]
    assert [e.current for e in earned] == [7, 14, 21, 28, 35, 42]
    assert state.freezes_available == MAX_FREEZES


def test_a_new_streak_can_reach_a_milestone_again() -> None:
    _, events = _run([*range(7), *range(20, 27)])
    assert [(e.days, e.day) for e in events if isinstance(e, MilestoneReached)] == [
        (7, D0 + timedelta(days=6)), (7, D0 + timedelta(days=26))
    ]


def test_broken_event_carries_the_lost_streak() -> None:
    state, _ = _run(list(range(10)))  # 10 days, one freeze
    update = record_activity(state, D0 + timedelta(days=13))
    assert update.events[0] == StreakBroken(
        last_active_day=D0 + timedelta(days=9), length=10, missed_days=3, freezes_available=1
    )
    assert update.milestones == ()


def test_freeze_spent_names_each_missed_day_in_order() -> None:
    state, _ = _run(list(range(14)))
    update = record_activity(state, D0 + timedelta(days=16))
    assert update.events[:2] == (
        FreezeSpent(missed_day=D0 + timedelta(days=14), freezes_left=1),
        FreezeSpent(missed_day=D0 + timedelta(days=15), freezes_left=0),
    )


@pytest.mark.parametrize(
    ("offset", "shown"),
    [(-3, 10), (9, 10), (10, 10), (11, 10), (12, 0), (40, 0)],
)
def test_current_streak_on_a_later_day(offset: int, shown: int) -> None:
    state, _ = _run(list(range(10)))  # last active day 9, one freeze
    assert current_streak_on(state, D0 + timedelta(days=offset)) == shown


def test_current_streak_on_without_activity_is_zero() -> None:
    assert current_streak_on(StreakState(), D0) == 0


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"freezes_available": 7}, r"freezes_available must be in 0\.\.6, got 7"),
        ({"current": -1}, "current must be >= 0, got -1"),
        ({"current": 3, "longest": 2, "last_active_day": D0}, r"longest \(2\) must be >= current"),
        ({"current": 3, "longest": 3}, "last_active_day must be set exactly when current > 0"),
        ({"last_active_day": D0}, "last_active_day must be set exactly when current > 0"),
        ({"current": 1, "longest": 1, "last_active_day": datetime(2025, 1, 1, tzinfo=UTC)},
         "must be a date"),
        ({"current": True}, "current must be an int"),
    ],
)
def test_streak_state_rejects_impossible_values(fields: dict[str, object], text: str) -> None:
    with pytest.raises((ValueError, TypeError), match=text):
        StreakState(**fields)  # type: ignore[arg-type]


def test_record_activity_wants_a_utc_day_not_a_datetime() -> None:
    with pytest.raises(TypeError, match=r"use clock\.utc_day\(dt\)"):
        record_activity(StreakState(), datetime(2025, 1, 1, tzinfo=UTC))


# -- clock: UTC days and ISO weeks --------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "week"),
    [
        (date(2020, 12, 31), "2020-W53"),
        (date(2021, 1, 3), "2020-W53"),
        (date(2021, 1, 4), "2021-W01"),
        (date(2024, 12, 29), "2024-W52"),
        (date(2024, 12, 30), "2025-W01"),
        (date(2025, 12, 8), "2025-W50"),
        (date(2026, 12, 31), "2026-W53"),
        (date(2027, 1, 1), "2026-W53"),
        (date(2008, 12, 29), "2009-W01"),
    ],
)
def test_iso_week_at_year_boundaries(day: date, week: str) -> None:
    assert iso_week(day) == week
    assert iso_week(datetime(day.year, day.month, day.day, 12, tzinfo=UTC)) == week
    assert iso_week_monday(week) <= day < iso_week_monday(week) + timedelta(days=7)


def test_iso_week_of_a_datetime_is_taken_in_utc() -> None:
    # Sunday 23:30 at UTC-2 is Monday 01:30 UTC: the next ISO week.
    late_sunday = datetime(2024, 12, 29, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert iso_week(late_sunday) == "2025-W01"


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31)))
def test_iso_week_agrees_with_week_bounds(day: date) -> None:
    start, end = week_bounds(day)
    assert start.weekday() == 0 and end - start == timedelta(days=7)
    assert start.date() <= day < end.date()
    assert iso_week_monday(iso_week(day)) == start.date()
    assert iso_week(start) == iso_week(end - timedelta(microseconds=1)) == iso_week(day)


@pytest.mark.parametrize("week", ["2021-W53", "2025-W00", "2025-W54", "2025W01", "25-W01", 2025])
def test_iso_week_monday_rejects_weeks_that_do_not_exist(week: object) -> None:
    with pytest.raises(ValueError, match=r"2025-W50|has no week"):
        iso_week_monday(week)  # type: ignore[arg-type]


def test_utc_day_converts_to_utc_and_rejects_naive_datetimes() -> None:
    assert utc_day(datetime(2025, 1, 1, 23, 59, 59, 999_999, tzinfo=UTC)) == date(2025, 1, 1)
    assert utc_day(datetime(2025, 1, 2, 0, 0, tzinfo=UTC)) == date(2025, 1, 2)
    assert utc_day(datetime(2025, 1, 1, 20, tzinfo=timezone(timedelta(hours=-5)))) == date(
        2025, 1, 2
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        utc_day(datetime(2025, 1, 1))
    with pytest.raises(TypeError, match="aware datetime"):
        utc_day(date(2025, 1, 1))  # type: ignore[arg-type]


def test_day_bounds_and_next_midnight() -> None:
    start, end = day_bounds(date(2025, 12, 31))
    assert (start, end) == (datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert next_utc_midnight(datetime(2025, 12, 31, tzinfo=UTC)) == end
    assert next_utc_midnight(datetime(2025, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == end


def test_clocks() -> None:
    clock = FixedClock(at=datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == datetime(2025, 1, 1, tzinfo=UTC) and clock.now().tzinfo is UTC
    assert clock.advance(timedelta(hours=25)) == datetime(2025, 1, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="forward only"):
        clock.advance(timedelta(seconds=-1))
    clock.set(datetime(2024, 6, 1, tzinfo=UTC))
    assert clock.now() == datetime(2024, 6, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(at=datetime(2025, 1, 1))
    system = SystemClock()
    assert isinstance(system, Clock) and isinstance(clock, Clock)
    assert system.now().tzinfo is UTC
