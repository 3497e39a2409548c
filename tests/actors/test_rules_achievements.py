"""Achievements: the catalog, ``evaluate`` (each unlocked exactly once) and featured choices."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.rules.achievements import (
    ACHIEVEMENT_CATEGORIES,
    ACHIEVEMENTS,
    MAX_FEATURED,
    STAT_COUNTERS,
    AchievementDef,
    Criterion,
    FeaturedAchievementError,
    check_achievement_catalog,
    choose_featured,
    evaluate,
)

IDS = [a.id for a in ACHIEVEMENTS]
BY_ID = {a.id: a for a in ACHIEVEMENTS}


def _def(
    id: str = "ach_x", counter: str = "answers_submitted", threshold: int = 1
) -> AchievementDef:
    return AchievementDef(
        id=id,
        name="X",
        description="Do x.",
        category="contribution",
        xp_reward=5,
        criteria=Criterion(counter=counter, comparison="at_least", threshold=threshold),
    )


# -- the catalog ------------------------------------------------------------------------------


def test_catalog_ids_are_unique() -> None:
    assert len(IDS) == len(set(IDS))


def test_catalog_counters_are_known_counters() -> None:
    assert {a.criteria.counter for a in ACHIEVEMENTS} <= STAT_COUNTERS


def test_catalog_holds_the_issue_and_seed_achievements() -> None:
    wanted = {
        "ach_first_steps": ("questions_posted", "at_least", 1),
        "ach_first_answer": ("answers_submitted", "at_least", 1),
        "ach_first_accepted": ("answers_accepted", "at_least", 1),
        "ach_week_warrior": ("streak_days", "at_least", 7),
        "ach_month_master": ("streak_days", "at_least", 30),
        "ach_century_of_answers": ("answers_submitted", "at_least", 100),
        "ach_helpful": ("upvotes_received", "at_least", 10),
        "ach_top_contributor": ("weekly_rank", "at_most", 10),
    }
    for achievement_id, (counter, comparison, threshold) in wanted.items():
        criteria = BY_ID[achievement_id].criteria
        assert (criteria.counter, criteria.comparison, criteria.threshold) == (
            counter,
            comparison,
            threshold,
        )


def test_catalog_entries_are_frozen_keyword_only_slotted() -> None:
    entry = ACHIEVEMENTS[0]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        entry.xp_reward = 1  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")
    with pytest.raises(TypeError):
        AchievementDef("ach_x", "X", "x", "quality", 1, entry.criteria)  # type: ignore[misc]


def test_check_catalog_names_the_duplicate_id() -> None:
    with pytest.raises(ValueError, match=r"'ach_x' appears twice.*must be unique"):
        check_achievement_catalog([_def(), _def(counter="level")])


def test_check_catalog_rejects_other_objects() -> None:
    with pytest.raises(TypeError, match="AchievementDef"):
        check_achievement_catalog([_def(), "ach_y"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"id": "first_steps"}, r"AchievementDef.id = 'first_steps' is not an achievement id"),
        ({"id": "ach_Bad"}, r"'ach_Bad' is not an achievement id"),
        ({"name": "  "}, r"AchievementDef.name must not be empty"),
        ({"description": ""}, r"AchievementDef.description must not be empty"),
        ({"category": "fun"}, r"category = 'fun' is not one of contribution, quality"),
        ({"xp_reward": -1}, r"xp_reward must be >= 0, got -1"),
    ],
)
def test_achievement_def_errors_name_the_field_and_rule(
    changes: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        attrs.evolve(_def(), **changes)


def test_achievement_def_rejects_non_int_rewards_and_non_criteria() -> None:
    with pytest.raises(TypeError, match="xp_reward must be an int, got True"):
        attrs.evolve(_def(), xp_reward=True)
    with pytest.raises(TypeError, match="criteria"):
        attrs.evolve(_def(), criteria=("level", 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"counter": "Streak Days"}, r"Criterion.counter = 'Streak Days' is not a counter name"),
        ({"comparison": ">="}, r"comparison = '>=' is not one of at_least, at_most"),
        ({"threshold": 0}, r"Criterion.threshold must be >= 1, got 0"),
    ],
)
def test_criterion_errors_name_the_field_and_rule(kwargs: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {"counter": "level", "comparison": "at_least", "threshold": 1}
    with pytest.raises(ValueError, match=match):
        Criterion(**(fields | kwargs))  # type: ignore[arg-type]


def test_categories_cover_the_catalog() -> None:
    assert {a.category for a in ACHIEVEMENTS} <= set(ACHIEVEMENT_CATEGORIES)


# -- criteria ---------------------------------------------------------------------------------


@given(value=st.none() | st.integers(min_value=0, max_value=200), threshold=st.integers(1, 100))
def test_at_least_treats_a_missing_counter_as_zero(value: int | None, threshold: int) -> None:
    criterion = Criterion(counter="streak_days", comparison="at_least", threshold=threshold)
    stats = {} if value is None else {"streak_days": value}
    assert criterion.met(stats) == ((value or 0) >= threshold)


@given(value=st.none() | st.integers(min_value=0, max_value=200), threshold=st.integers(1, 100))
def test_at_most_needs_a_rank(value: int | None, threshold: int) -> None:
    criterion = Criterion(counter="weekly_rank", comparison="at_most", threshold=threshold)
    stats = {} if value is None else {"weekly_rank": value}
    assert criterion.met(stats) == (value is not None and 1 <= value <= threshold)


@pytest.mark.parametrize(
    ("stats", "expected"),
    [
        ({}, set()),
        ({"questions_posted": 1}, {"ach_first_steps"}),
        ({"answers_submitted": 99}, {"ach_first_answer"}),
        ({"answers_submitted": 100}, {"ach_first_answer", "ach_century_of_answers"}),
        ({"streak_days": 6}, set()),
        ({"streak_days": 7}, {"ach_week_warrior"}),
        ({"streak_days": 30}, {"ach_week_warrior", "ach_month_master"}),
        ({"upvotes_received": 9}, set()),
        ({"upvotes_received": 10}, {"ach_helpful"}),
        ({"answers_accepted": 1}, {"ach_first_accepted"}),
        ({"weekly_rank": 10}, {"ach_top_contributor"}),
        ({"weekly_rank": 11}, set()),
        ({"weekly_rank": 0}, set()),
        ({"level": 10}, {"ach_rising_star"}),
        ({"unrelated_counter": 5}, set()),
    ],
)
def test_thresholds_at_their_boundaries(stats: dict[str, int], expected: set[str]) -> None:
    assert {a.id for a in evaluate(stats, frozenset())} == expected


# -- evaluate ---------------------------------------------------------------------------------

stats_strategy = st.dictionaries(
    st.sampled_from(sorted(STAT_COUNTERS)), st.integers(min_value=0, max_value=150), max_size=6
)


@given(snapshots=st.lists(stats_strategy, max_size=30))
def test_each_achievement_unlocks_exactly_once_over_any_sequence(
    snapshots: list[dict[str, int]],
) -> None:
    unlocked: frozenset[str] = frozenset()
    ever_met: set[str] = set()
    unlocks: list[str] = []
    for stats in snapshots:
        new = evaluate(stats, unlocked)
        # in catalog order, none already unlocked, each met now
        assert [a.id for a in new] == [i for i in IDS if i in {a.id for a in new}]
        assert all(a.id not in unlocked and a.criteria.met(stats) for a in new)
        unlocks += [a.id for a in new]
        unlocked |= {a.id for a in new}
        ever_met |= {a.id for a in ACHIEVEMENTS if a.criteria.met(stats)}
        # everything met so far is unlocked by now, and nothing else
        assert unlocked == ever_met
    assert len(unlocks) == len(set(unlocks))


@given(stats=stats_strategy)
def test_evaluate_is_idempotent_once_applied(stats: dict[str, int]) -> None:
    first = evaluate(stats, frozenset())
    assert evaluate(stats, frozenset(a.id for a in first)) == []


def test_unlocked_ids_unknown_to_the_catalog_are_ignored() -> None:
    assert [a.id for a in evaluate({"level": 10}, frozenset({"ach_retired"}))] == [
        "ach_rising_star"
    ]


def test_evaluate_takes_a_custom_catalog_and_checks_it() -> None:
    catalog = (_def(id="ach_a", threshold=2), _def(id="ach_b", threshold=1))
    assert [a.id for a in evaluate({"answers_submitted": 1}, frozenset(), catalog)] == ["ach_b"]
    with pytest.raises(ValueError, match="'ach_a' appears twice"):
        evaluate({}, frozenset(), (*catalog, _def(id="ach_a")))


@pytest.mark.parametrize(
    ("stats", "error", "match"),
    [
        ({"streak_days": -1}, ValueError, r"stats\['streak_days'\] = -1: counters must be >= 0"),
        ({"level": 2.5}, TypeError, r"stats\['level'\] must be an int, got 2.5"),
        ({"level": True}, TypeError, r"stats\['level'\] must be an int, got True"),
    ],
)
def test_evaluate_rejects_bad_stats_by_name(
    stats: dict[str, int], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        evaluate(stats, frozenset())


# -- featured ---------------------------------------------------------------------------------


@given(
    unlocked=st.sets(st.sampled_from(IDS)),
    chosen=st.lists(st.sampled_from(IDS), max_size=5),
    max_featured=st.integers(min_value=0, max_value=5),
)
def test_choose_featured_accepts_exactly_the_valid_choices(
    unlocked: set[str], chosen: list[str], max_featured: int
) -> None:
    valid = (
        len(chosen) <= max_featured and len(set(chosen)) == len(chosen) and set(chosen) <= unlocked
    )
    if valid:
        assert choose_featured(frozenset(unlocked), chosen, max_featured) == tuple(chosen)
    else:
        with pytest.raises(FeaturedAchievementError):
            choose_featured(frozenset(unlocked), chosen, max_featured)


def test_featured_default_limit_is_three() -> None:
    assert MAX_FEATURED == 3
    unlocked = frozenset(IDS)
    assert choose_featured(unlocked, IDS[:3]) == tuple(IDS[:3])
    with pytest.raises(FeaturedAchievementError, match="at most 3 achievements") as info:
        choose_featured(unlocked, IDS[:4])
    assert info.value.achievement_id is None


def test_featured_error_names_a_locked_id_and_the_rule() -> None:
    with pytest.raises(
        FeaturedAchievementError, match=r"'ach_helpful': is not unlocked; only unlocked"
    ) as info:
        choose_featured(frozenset({"ach_first_steps"}), ["ach_first_steps", "ach_helpful"])
    assert info.value.achievement_id == "ach_helpful"
    assert "unlocked" in info.value.rule
    assert isinstance(info.value, ValueError)


def test_featured_error_names_a_repeated_id() -> None:
    with pytest.raises(FeaturedAchievementError, match=r"'ach_helpful': is chosen twice") as info:
        choose_featured(frozenset({"ach_helpful"}), ["ach_helpful", "ach_helpful"])
    assert info.value.achievement_id == "ach_helpful"


def test_featured_rejects_a_bare_string_and_a_bad_limit() -> None:
    with pytest.raises(TypeError, match="not the string 'ach_helpful'"):
        choose_featured(frozenset({"ach_helpful"}), "ach_helpful")
    with pytest.raises(ValueError, match="max_featured must be an int >= 0, got -1"):
        choose_featured(frozenset(), [], max_featured=-1)


def test_nothing_featured_is_valid() -> None:
    assert choose_featured(frozenset(), []) == ()


@given(stats=st.fixed_dictionaries({c: st.integers(0, 120) for c in sorted(STAT_COUNTERS)}),
       changed=st.sets(st.sampled_from(sorted(STAT_COUNTERS))),
       unlocked=st.sets(st.sampled_from(IDS)))
def test_evaluate_with_changed_checks_only_the_achievements_on_those_counters(
    stats: dict[str, int], changed: set[str], unlocked: set[str]
) -> None:
    everything = evaluate(stats, unlocked)
    assert evaluate(stats, unlocked, changed=changed) == [
        a for a in everything if a.criteria.counter in changed]
    assert evaluate(stats, unlocked, changed=set()) == []
