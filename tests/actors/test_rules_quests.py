"""Quests: lazy rollover at UTC day / ISO week boundaries, clamped progress, one completion per
period, checked against a reference model over random record sequences."""

from __future__ import annotations

import datetime as dt
import json
import types
from collections import defaultdict

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.rules.achievements import STAT_COUNTERS
from actors.rules.quests import (
    QUESTS,
    PeriodProgress,
    QuestDef,
    QuestState,
    check_quest_catalog,
    period_end,
    period_id,
    progress,
    record,
    record_all,
)

UTC = dt.UTC
EMPTY = QuestState()
BY_ID = {q.id: q for q in QUESTS}
US = dt.timedelta(microseconds=1)


def at(*args: int, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)  # type: ignore[misc]


def _progress_of(state: QuestState, when: dt.datetime) -> dict[str, tuple[int, bool]]:
    return {row.quest.id: (row.progress, row.completed) for row in progress(state, when)}


# -- the catalog ------------------------------------------------------------------------------


def test_catalog_ids_are_unique_and_both_periods_are_covered() -> None:
    ids = [q.id for q in QUESTS]
    assert len(ids) == len(set(ids))
    assert {q.period for q in QUESTS} == {"daily", "weekly"}


def test_catalog_holds_the_issue_quests() -> None:
    wanted = {
        ("daily", "answers_submitted", 3),
        ("daily", "questions_posted", 1),
        ("daily", "xp_earned", 50),
        ("weekly", "xp_earned", 200),
        ("weekly", "answers_submitted", 10),
        ("weekly", "upvotes_received", 5),
    }
    assert {(q.period, q.counter, q.target) for q in QUESTS} == wanted


def test_catalog_counters_are_stats_counters_or_xp() -> None:
    assert {q.counter for q in QUESTS} <= STAT_COUNTERS | {"xp_earned"}


def test_check_quest_catalog_names_the_duplicate() -> None:
    with pytest.raises(ValueError, match=r"'quest_daily_ask_1' appears twice.*must be unique"):
        check_quest_catalog([*QUESTS, BY_ID["quest_daily_ask_1"]])
    with pytest.raises(TypeError, match="QuestDef"):
        check_quest_catalog([object()])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"id": "daily_x"}, ValueError, r"QuestDef.id = 'daily_x' is not a quest id"),
        ({"title": ""}, ValueError, r"QuestDef.title must not be empty"),
        ({"period": "monthly"}, ValueError, r"period = 'monthly' is not one of daily, weekly"),
        ({"counter": "XP"}, ValueError, r"counter = 'XP' is not a counter name"),
        ({"target": 0}, ValueError, r"QuestDef.target must be >= 1, got 0"),
        ({"target": 2.0}, TypeError, r"QuestDef.target must be an int, got 2.0"),
        ({"xp_reward": -5}, ValueError, r"QuestDef.xp_reward must be >= 0, got -5"),
    ],
)
def test_quest_def_errors_name_the_field_and_rule(
    changes: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        attrs.evolve(QUESTS[0], **changes)


def test_values_are_frozen_and_keyword_only() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        QUESTS[0].target = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        QuestDef("quest_x", "X", "daily", "level", 1, 1)  # type: ignore[misc]
    state = record(EMPTY, counter="questions_posted", amount=1, at=at(2025, 12, 16)).new_state
    assert state.daily is not None
    with pytest.raises(TypeError):
        state.daily.progress["quest_daily_ask_1"] = 0  # type: ignore[index]
    assert hash(state) == hash(attrs.evolve(state))


# -- period ids and boundaries ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "day", "week"),
    [
        (at(2025, 12, 16, 14), "2025-12-16", "2025-W51"),
        (at(2025, 12, 14, 23, 59, 59, 999999), "2025-12-14", "2025-W50"),
        (at(2025, 12, 15), "2025-12-15", "2025-W51"),
        (at(2024, 12, 29, 23, 59, 59, 999999), "2024-12-29", "2024-W52"),
        (at(2024, 12, 30), "2024-12-30", "2025-W01"),
        (at(2020, 12, 31, 12), "2020-12-31", "2020-W53"),
        (at(2021, 1, 3, 23, 59, 59, 999999), "2021-01-03", "2020-W53"),
        (at(2021, 1, 4), "2021-01-04", "2021-W01"),
        (at(2025, 12, 31, 23, 59, 59, 999999), "2025-12-31", "2026-W01"),
        (at(2026, 1, 1), "2026-01-01", "2026-W01"),
        # an aware non-UTC time is taken in UTC: 01:30 at +02:00 is 23:30 UTC the day before
        (at(2026, 1, 5, 1, 30, tz=dt.timezone(dt.timedelta(hours=2))), "2026-01-04", "2026-W01"),
    ],
)
def test_period_ids(when: dt.datetime, day: str, week: str) -> None:
    assert period_id("daily", when) == day
    assert period_id("weekly", when) == week


datetimes = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(when=datetimes)
def test_the_day_changes_exactly_at_utc_midnight(when: dt.datetime) -> None:
    midnight = when.hour == when.minute == when.second == when.microsecond == 0
    assert (period_id("daily", when - US) != period_id("daily", when)) == midnight
    assert period_end("daily", when) - when <= dt.timedelta(days=1)
    assert period_id("daily", period_end("daily", when)) != period_id("daily", when)
    assert period_id("daily", period_end("daily", when) - US) == period_id("daily", when)


@given(when=datetimes)
def test_the_week_changes_exactly_at_monday_midnight_utc(when: dt.datetime) -> None:
    monday_midnight = when.weekday() == 0 and when.time() == dt.time(0)
    assert (period_id("weekly", when - US) != period_id("weekly", when)) == monday_midnight
    end = period_end("weekly", when)
    assert end.weekday() == 0 and end.time() == dt.time(0) and end.tzinfo is UTC
    assert dt.timedelta(0) < end - when <= dt.timedelta(days=7)
    assert period_id("weekly", end - US) == period_id("weekly", when)


def test_naive_times_are_rejected_with_the_rule() -> None:
    with pytest.raises(ValueError, match="naive"):
        record(EMPTY, counter="xp_earned", amount=1, at=dt.datetime(2025, 12, 16))
    with pytest.raises(ValueError, match="naive"):
        progress(EMPTY, dt.datetime(2025, 12, 16))
    with pytest.raises(ValueError, match="period = 'monthly'"):
        period_id("monthly", at(2025, 12, 16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period = 'monthly'"):
        period_end("monthly", at(2025, 12, 16))  # type: ignore[arg-type]


# -- record: rollover -------------------------------------------------------------------------


def test_daily_progress_rolls_over_exactly_at_utc_midnight() -> None:
    before = at(2025, 12, 16, 23, 59, 59, 999999)
    state = record(EMPTY, counter="answers_submitted", amount=2, at=before).new_state
    assert _progress_of(state, before)["quest_daily_answer_3"] == (2, False)
    midnight = before + US
    assert _progress_of(state, midnight)["quest_daily_answer_3"] == (0, False)  # read: stale
    update = record(state, counter="answers_submitted", amount=1, at=midnight)
    assert update.completed == ()  # 2 + 1 would have completed it, had the day not changed
    assert update.new_state.daily == PeriodProgress(
        period_id="2025-12-17", progress={"quest_daily_answer_3": 1}
    )
    # the week did not change (Tue -> Wed): weekly progress carries on
    assert _progress_of(update.new_state, midnight)["quest_weekly_answer_10"] == (3, False)


def test_weekly_progress_rolls_over_at_monday_midnight_utc_across_the_year() -> None:
    sunday = at(2024, 12, 29, 23, 59, 59, 999999)  # 2024-W52
    state = record(EMPTY, counter="upvotes_received", amount=4, at=sunday).new_state
    assert state.weekly is not None and state.weekly.period_id == "2024-W52"
    monday = sunday + US  # 2025-W01
    update = record(state, counter="upvotes_received", amount=4, at=monday)
    assert update.completed == ()
    assert update.new_state.weekly == PeriodProgress(
        period_id="2025-W01", progress={"quest_weekly_upvotes_5": 4}
    )
    assert update.new_state.periods().keys() == {"2024-12-30", "2025-W01"}


def test_a_new_year_inside_an_iso_week_keeps_the_weekly_progress() -> None:
    state = record(
        EMPTY, counter="xp_earned", amount=150, at=at(2025, 12, 31, 23, 59, 59, 999999)
    ).new_state
    update = record(state, counter="xp_earned", amount=50, at=at(2026, 1, 1))
    # a new day (the daily quest starts over and completes on its own 50) but the same week
    assert [q.id for q in update.completed] == ["quest_daily_xp_50", "quest_weekly_xp_200"]
    assert update.new_state.daily is not None
    assert update.new_state.daily.progress == {"quest_daily_xp_50": 50}


def test_any_record_rolls_the_periods_over_even_for_a_counter_no_quest_uses() -> None:
    state = record(EMPTY, counter="xp_earned", amount=10, at=at(2025, 12, 16)).new_state
    update = record(state, counter="comments_added", amount=1, at=at(2025, 12, 22))
    assert update.new_state == QuestState(
        daily=PeriodProgress(period_id="2025-12-22"),
        weekly=PeriodProgress(period_id="2025-W52"),
    )


def test_a_late_event_for_a_closed_period_is_ignored_for_that_period() -> None:
    state = record(
        EMPTY, counter="answers_submitted", amount=1, at=at(2025, 12, 17, 0, 5)
    ).new_state
    late = record(state, counter="answers_submitted", amount=2, at=at(2025, 12, 16, 23, 59))
    # the day is closed: today's progress is neither wiped nor credited; the week is the same
    assert late.new_state.daily == state.daily
    assert late.new_state.weekly is not None
    assert late.new_state.weekly.progress == {"quest_weekly_answer_10": 3}
    assert late.completed == ()


# -- record: completion and clamping ----------------------------------------------------------


def test_a_quest_completes_once_on_the_record_reaching_its_target() -> None:
    when = at(2025, 12, 16, 9)
    state = EMPTY
    completions = []
    for _ in range(5):
        update = record(state, counter="answers_submitted", amount=1, at=when)
        completions.append([q.id for q in update.completed])
        state = update.new_state
    assert completions == [[], [], ["quest_daily_answer_3"], [], []]
    assert _progress_of(state, when)["quest_daily_answer_3"] == (3, True)
    assert _progress_of(state, when)["quest_weekly_answer_10"] == (5, False)


def test_progress_clamps_at_the_target() -> None:
    when = at(2025, 12, 16, 9)
    update = record(EMPTY, counter="xp_earned", amount=10_000, at=when)
    assert {q.id for q in update.completed} == {"quest_daily_xp_50", "quest_weekly_xp_200"}
    state = update.new_state
    assert state.daily is not None and state.daily.progress == {"quest_daily_xp_50": 50}
    assert state.weekly is not None and state.weekly.progress == {"quest_weekly_xp_200": 200}
    again = record(state, counter="xp_earned", amount=10_000, at=when)
    assert again.completed == () and again.new_state == state


def test_zero_amount_records_nothing_but_still_rolls_over() -> None:
    state = record(EMPTY, counter="xp_earned", amount=0, at=at(2025, 12, 16)).new_state
    assert state == QuestState(
        daily=PeriodProgress(period_id="2025-12-16"), weekly=PeriodProgress(period_id="2025-W51")
    )
    assert record(state, counter="xp_earned", amount=0, at=at(2025, 12, 16, 5)).new_state is state


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"amount": -1}, ValueError, r"amount = -1: quest progress only grows"),
        ({"amount": 1.5}, ValueError, r"amount = 1.5"),
        ({"counter": "Answers"}, ValueError, r"counter = 'Answers' is not a counter name"),
        ({"at": "2025-12-16"}, TypeError, r"timezone-aware datetime"),
    ],
)
def test_record_errors_name_the_value_and_rule(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"counter": "xp_earned", "amount": 1, "at": at(2025, 12, 16)}
    with pytest.raises(error, match=match):
        record(EMPTY, **(args | kwargs))  # type: ignore[arg-type]


def test_record_and_progress_check_the_state_type() -> None:
    with pytest.raises(TypeError, match="state must be a QuestState"):
        record({}, counter="xp_earned", amount=1, at=at(2025, 12, 16))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="state must be a QuestState"):
        progress(None, at(2025, 12, 16))  # type: ignore[arg-type]


def test_custom_catalogs_are_checked_and_used() -> None:
    quest = QuestDef(
        id="quest_daily_comment", title="Comment twice", period="daily",
        counter="comments_added", target=2, xp_reward=5,
    )  # fmt: skip
    update = record(EMPTY, counter="comments_added", amount=2, at=at(2025, 12, 16), catalog=[quest])
    assert update.completed == (quest,)
    with pytest.raises(ValueError, match="appears twice"):
        record(EMPTY, counter="xp_earned", amount=1, at=at(2025, 12, 16), catalog=[quest, quest])


# -- the reference model ----------------------------------------------------------------------

events = st.lists(
    st.tuples(
        st.sampled_from(["answers_submitted", "questions_posted", "xp_earned",
                         "upvotes_received", "comments_added"]),
        st.integers(min_value=0, max_value=60),
        # steps of up to ~4 days, sometimes backwards (late deliveries)
        st.integers(min_value=-30 * 3600, max_value=4 * 24 * 3600),
    ),
    max_size=60,
)  # fmt: skip


@settings(max_examples=300)
@given(start=datetimes, steps=events)
def test_record_matches_a_reference_model(
    start: dt.datetime, steps: list[tuple[str, int, int]]
) -> None:
    state = EMPTY
    when = start
    newest: dict[str, str] = {}  # period -> newest period id seen
    sums: dict[tuple[str, str], int] = defaultdict(int)  # (period id, counter) -> total
    completed_in: dict[tuple[str, str], int] = defaultdict(int)  # (period id, quest) -> count
    for counter, amount, seconds in steps:
        when += dt.timedelta(seconds=seconds)
        update = record(state, counter=counter, amount=amount, at=when)
        expected_done = []
        for kind in ("daily", "weekly"):
            current = period_id(kind, when)  # type: ignore[arg-type]
            if current < newest.get(kind, current):
                continue  # a closed period
            newest[kind] = current
            before = sums[current, counter]
            sums[current, counter] += amount
            expected_done += [
                q.id
                for q in QUESTS
                if q.period == kind
                and q.counter == counter
                and before < q.target <= sums[current, counter]
            ]
        assert [q.id for q in update.completed] == expected_done
        for quest in update.completed:
            completed_in[period_id(quest.period, when), quest.id] += 1
        state = update.new_state
        # what progress() shows for the newest periods agrees with the sums, clamped
        for row in progress(state, when):
            if row.period_id != newest[row.quest.period]:
                continue
            total = sums[row.period_id, row.quest.counter]
            assert row.progress == min(total, row.quest.target)
            assert row.completed == (total >= row.quest.target)
            assert row.resets_at == period_end(row.quest.period, when)
        # held state: at most one period of each kind, every progress within its target
        for held in state.periods().values():
            assert all(0 < n <= BY_ID[q].target for q, n in held.progress.items())
            assert held.completed == {q for q, n in held.progress.items() if n == BY_ID[q].target}
    assert all(count == 1 for count in completed_in.values())


# -- display ----------------------------------------------------------------------------------


def test_progress_lists_every_quest_in_catalog_order_with_its_reset_time() -> None:
    when = at(2025, 12, 16, 14)
    rows = progress(EMPTY, when)
    assert [row.quest for row in rows] == list(QUESTS)
    assert {row.period_id for row in rows} == {"2025-12-16", "2025-W51"}
    assert {row.resets_at for row in rows} == {at(2025, 12, 17), at(2025, 12, 22)}
    assert all(row.progress == 0 and not row.completed for row in rows)


# -- state validation and snapshots -----------------------------------------------------------


def test_state_rejects_period_ids_of_the_wrong_kind() -> None:
    with pytest.raises(ValueError, match=r"QuestState.daily.period_id = '2025-W50' is not a day"):
        QuestState(daily=PeriodProgress(period_id="2025-W50"))
    with pytest.raises(ValueError, match=r"QuestState.weekly.period_id = '2025-12-16' is not"):
        QuestState(weekly=PeriodProgress(period_id="2025-12-16"))
    with pytest.raises(TypeError, match="must be a PeriodProgress"):
        QuestState(daily={"period_id": "2025-12-16"})  # type: ignore[arg-type]


def test_period_progress_rejects_negative_progress() -> None:
    with pytest.raises(ValueError, match=r"progress\['quest_x'\] = -1: progress is an int >= 0"):
        PeriodProgress(period_id="2025-12-16", progress={"quest_x": -1})


@settings(max_examples=100)
@given(start=datetimes, steps=events)
def test_snapshot_round_trips_through_json(
    start: dt.datetime, steps: list[tuple[str, int, int]]
) -> None:
    state = EMPTY
    when = start
    for counter, amount, seconds in steps:
        when += dt.timedelta(seconds=seconds)
        state = record(state, counter=counter, amount=amount, at=when).new_state
    document = json.loads(json.dumps(state.snapshot()))
    assert QuestState.from_snapshot(document) == state


@settings(max_examples=100)
@given(start=datetimes, steps=events)
def test_recorded_states_are_what_the_validating_constructors_build(
    start: dt.datetime, steps: list[tuple[str, int, int]]
) -> None:
    """record builds the states it derives without validating them again: they must be the
    very values the constructors (converters, validators) would build."""
    state = EMPTY
    when = start
    for counter, amount, seconds in steps:
        when += dt.timedelta(seconds=seconds)
        state = record(state, counter=counter, amount=amount, at=when).new_state
        periods = {kind: None if held is None else PeriodProgress(
            period_id=held.period_id, progress=held.progress, completed=held.completed)
            for kind, held in (("daily", state.daily), ("weekly", state.weekly))}  # fmt: skip
        assert QuestState(**periods) == state
        for held in state.periods().values():
            assert isinstance(held.progress, types.MappingProxyType)
            assert type(held.completed) is frozenset
            assert hash(held) == hash(PeriodProgress(period_id=held.period_id,
                                                     completed=held.completed))


def test_from_snapshot_names_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['monthly'\]"):
        QuestState.from_snapshot({"monthly": None})
    with pytest.raises(ValueError, match=r"snapshot 'daily' = \{'period_id': '2025-12-16'\}"):
        QuestState.from_snapshot({"daily": {"period_id": "2025-12-16"}})
    assert QuestState.from_snapshot({}) == EMPTY


_COUNTERS = st.sampled_from(["answers_submitted", "questions_posted", "xp_earned",
                             "upvotes_received", "comments_added"])


@given(
    steps=st.lists(st.lists(st.tuples(_COUNTERS, st.integers(0, 60)), max_size=3), max_size=8),
    hours=st.lists(st.integers(0, 24 * 9), min_size=8, max_size=8),
)
@settings(max_examples=200, deadline=None)
def test_record_all_is_record_of_each_amount_in_turn(
    steps: list[list[tuple[str, int]]], hours: list[int]
) -> None:
    one_by_one = all_at_once = EMPTY
    for amounts, hour in zip(steps, hours, strict=False):
        when = at(2025, 12, 12) + dt.timedelta(hours=hour)
        completed: list[QuestDef] = []
        for counter, amount in amounts:
            update = record(one_by_one, counter=counter, amount=amount, at=when)
            one_by_one = update.new_state
            completed.extend(update.completed)
        batch = record_all(all_at_once, amounts, at=when)
        all_at_once = batch.new_state
        assert all_at_once == one_by_one
        assert list(batch.completed) == completed
