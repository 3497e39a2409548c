"""The level curve: ``50 * L * (L + 1)`` XP from level L to L + 1, levels start at 1."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.rules import levels
from actors.rules.levels import (
    LevelInfo,
    level_for,
    levels_gained,
    total_xp_for_level,
    xp_for_level_up,
)

totals = st.integers(min_value=0, max_value=10**7) | st.integers(min_value=0, max_value=10**60)


def _walk_level(total: int) -> int:
    """Reference: climb level by level with the per-level cost."""
    level, floor = 1, 0
    while floor + xp_for_level_up(level) <= total:
        floor += xp_for_level_up(level)
        level += 1
    return level


@pytest.mark.parametrize(
    ("level", "total"),
    [(1, 0), (2, 100), (3, 400), (4, 1_000), (5, 2_000), (10, 16_500), (15, 56_000),
     (20, 133_000), (50, 2_082_500), (100, 16_665_000)],
)
def test_documented_thresholds(level: int, total: int) -> None:
    assert total_xp_for_level(level) == total
    assert level_for(total).current_level == level
    assert level_for(total).xp_into_level == 0


@pytest.mark.parametrize(("level", "cost"), [(1, 100), (2, 300), (3, 600), (9, 4_500),
                                             (14, 10_500)])
def test_documented_step_costs(level: int, cost: int) -> None:
    assert xp_for_level_up(level) == cost


def test_step_cost_is_the_difference_of_totals_and_grows_quadratically() -> None:
    for level in range(1, 2_000):
        step = xp_for_level_up(level)
        assert step == total_xp_for_level(level + 1) - total_xp_for_level(level)
        assert step == 50 * level * (level + 1)
        # second difference of a quadratic is constant: 100 XP
        assert xp_for_level_up(level + 2) - 2 * xp_for_level_up(level + 1) + step == 100


def test_every_total_up_to_100k_matches_the_level_by_level_walk() -> None:
    level, floor = 1, 0
    for total in range(100_001):
        if total >= floor + xp_for_level_up(level):
            floor += xp_for_level_up(level)
            level += 1
        info = level_for(total)
        assert (info.current_level, info.xp_into_level) == (level, total - floor)


@given(totals)
def test_level_is_always_consistent_with_total_xp(total: int) -> None:
    info = level_for(total)
    assert info.total_xp == total
    assert info.current_level >= 1
    assert total_xp_for_level(info.current_level) <= total < total_xp_for_level(
        info.current_level + 1
    )
    assert info.xp_to_next_level > 0
    assert info.xp_into_level >= 0
    assert info.xp_into_level + info.xp_to_next_level == xp_for_level_up(info.current_level)
    assert info.next_level_total_xp == total_xp_for_level(info.current_level + 1)
    assert 0.0 <= info.progress < 1.0


@given(st.integers(min_value=1, max_value=10**20))
def test_thresholds_are_exact_at_any_size(level: int) -> None:
    at = total_xp_for_level(level)
    assert level_for(at).current_level == level
    assert level_for(at).xp_into_level == 0
    if level > 1:
        below = level_for(at - 1)
        assert (below.current_level, below.xp_to_next_level) == (level - 1, 1)


@given(totals, totals)
def test_level_is_monotonic_in_total_xp(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert level_for(low).current_level <= level_for(high).current_level


@given(st.integers(min_value=0, max_value=60_000))
def test_level_matches_the_walk(total: int) -> None:
    assert level_for(total).current_level == _walk_level(total)


@given(st.integers(min_value=0, max_value=10**80))
def test_integer_cube_root_is_exact(n: int) -> None:
    r = levels._icbrt(n)
    assert r**3 <= n < (r + 1) ** 3


@given(st.integers(min_value=0, max_value=200_000), st.integers(min_value=0, max_value=200_000))
def test_levels_gained_matches_a_brute_force_loop(old: int, new: int) -> None:
    brute = [level for level in range(2, 60) if old < total_xp_for_level(level) <= new]
    assert levels_gained(old, new) == brute


@given(totals, st.integers(min_value=0, max_value=10**6))
def test_levels_gained_chains(old: int, delta: int) -> None:
    mid, new = old + delta, old + 2 * delta
    assert levels_gained(old, new) == levels_gained(old, mid) + levels_gained(mid, new)
    gained = levels_gained(old, new)
    assert len(gained) == level_for(new).current_level - level_for(old).current_level


def test_levels_are_never_taken_away() -> None:
    assert levels_gained(5_000, 100) == []
    assert levels_gained(100, 100) == []


def test_huge_totals_are_fast_and_exact() -> None:
    info = level_for(10**90)
    assert total_xp_for_level(info.current_level) <= 10**90 < total_xp_for_level(
        info.current_level + 1
    )


def test_seed_sample_profile_under_this_curve() -> None:
    # The seed's 50 000 XP "level 15, 1 500 to go" fits no quadratic curve; here it is 14.
    info = level_for(50_000)
    assert (info.current_level, info.xp_into_level, info.xp_to_next_level) == (14, 4_500, 6_000)


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (lambda: level_for(-1), ValueError, "total_xp must be >= 0, got -1"),
        (lambda: level_for(True), TypeError, "total_xp must be an int, got True"),
        (lambda: level_for(1.5),  # type: ignore[arg-type]
         TypeError, "total_xp must be an int, got 1.5"),
        (lambda: total_xp_for_level(0), ValueError, "level must be >= 1, got 0"),
        (lambda: xp_for_level_up(0), ValueError, "level must be >= 1, got 0"),
        (lambda: levels_gained(-5, 10), ValueError, "old_total must be >= 0, got -5"),
        (lambda: levels_gained(5, "10"),  # type: ignore[arg-type]
         TypeError, "new_total must be an int, got '10'"),
    ],
)
def test_bad_inputs_name_the_value_and_the_rule(call: object, error: type, text: str) -> None:
    assert callable(call)
    with pytest.raises(error, match=text.replace(".", r"\.")):
        call()


def test_a_hand_built_level_info_must_agree_with_the_curve() -> None:
    assert LevelInfo(total_xp=150, current_level=2, xp_into_level=50, xp_to_next_level=250) == (
        level_for(150)
    )
    with pytest.raises(ValueError, match="inconsistent LevelInfo"):
        LevelInfo(total_xp=150, current_level=3, xp_into_level=50, xp_to_next_level=250)
    with pytest.raises(ValueError, match="must be >= 0"):
        LevelInfo(total_xp=150, current_level=2, xp_into_level=-1, xp_to_next_level=301)
