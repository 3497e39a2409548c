"""Achievements: a catalog in data and the pure rule that says which ones a user just unlocked.

An achievement is declared once in :data:`ACHIEVEMENTS` as an :class:`AchievementDef` whose
:class:`Criterion` names one counter of the user's stats and a threshold::

    Criterion(counter="streak_days", comparison="at_least", threshold=7)   # week warrior
    Criterion(counter="weekly_rank", comparison="at_most", threshold=10)   # weekly top 10

The user's actor keeps the counters (the vocabulary is :data:`STAT_COUNTERS`), calls
:func:`evaluate` after each change and adds the returned ids to the user's unlocked set:
an achievement is unlocked at the first stats snapshot that meets its criterion and never
again, even if the counter later falls back (a rank lost, a streak broken).

A counter missing from the stats counts as 0 for an ``at_least`` criterion and as "not
measured" for an ``at_most`` one: a user without a weekly rank is not in the weekly top 10.

The featured achievements shown on a profile are the user's choice, checked by
:func:`choose_featured`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Final, Literal, get_args

import attrs

__all__ = [
    "ACHIEVEMENTS",
    "ACHIEVEMENT_CATEGORIES",
    "MAX_FEATURED",
    "STAT_COUNTERS",
    "AchievementDef",
    "Comparison",
    "Criterion",
    "FeaturedAchievementError",
    "check_achievement_catalog",
    "choose_featured",
    "evaluate",
]

Comparison = Literal["at_least", "at_most"]
AchievementCategory = Literal["contribution", "quality", "consistency", "community", "competition"]

ACHIEVEMENT_CATEGORIES: Final[tuple[str, ...]] = get_args(AchievementCategory)

#: The stats counters the user's actor keeps (all are counts >= 0, except ``weekly_rank``,
#: a 1-based rank present only while the user is ranked on this week's board).
STAT_COUNTERS: Final = frozenset(
    {
        "questions_posted",
        "answers_submitted",
        "answers_accepted",
        "upvotes_received",
        "insights_published",
        "comments_added",
        "areas_created",
        "streak_days",
        "level",
        "weekly_rank",
    }
)

#: How many achievements a profile may feature.
MAX_FEATURED: Final = 3

_ID_PATTERN: Final = re.compile(r"ach_[a-z0-9_]+")
_COUNTER_PATTERN: Final = re.compile(r"[a-z][a-z0-9_]*")


def _non_empty(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.strip():
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must not be empty")


def _matches(pattern: re.Pattern[str], hint: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
        if pattern.fullmatch(value) is None:
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} = {value!r} is not {hint}"
            )

    return check


def _int_at_least(floor: int) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int:
            raise TypeError(
                f"{type(instance).__name__}.{attribute.name} must be an int, got {value!r}"
            )
        if value < floor:
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} must be >= {floor}, got {value!r}"
            )

    return check


def _one_of(choices: tuple[str, ...]) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in choices:
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} = {value!r} is not one of "
                f"{', '.join(choices)}"
            )

    return check


@attrs.frozen(kw_only=True)
class Criterion:
    """``stats[counter] >= threshold`` (``at_least``) or ``1 <= stats[counter] <= threshold``
    (``at_most``, for ranks, where a missing counter means "not ranked")."""

    counter: str = attrs.field(
        validator=_matches(_COUNTER_PATTERN, "a counter name (lowercase snake_case)")
    )
    comparison: Comparison = attrs.field(validator=_one_of(get_args(Comparison)))
    threshold: int = attrs.field(validator=_int_at_least(1))

    def met(self, stats: Mapping[str, int]) -> bool:
        value = stats.get(self.counter)
        if self.comparison == "at_least":
            return (value or 0) >= self.threshold
        return value is not None and 1 <= value <= self.threshold


@attrs.frozen(kw_only=True)
class AchievementDef:
    """One achievement of the catalog; ``id`` is stable (profiles store it), the rest may change."""

    id: str = attrs.field(
        validator=_matches(_ID_PATTERN, "an achievement id ('ach_' + snake_case)")
    )
    name: str = attrs.field(validator=_non_empty)
    description: str = attrs.field(validator=_non_empty)
    category: AchievementCategory = attrs.field(validator=_one_of(ACHIEVEMENT_CATEGORIES))
    xp_reward: int = attrs.field(validator=_int_at_least(0))
    criteria: Criterion = attrs.field(validator=attrs.validators.instance_of(Criterion))


class FeaturedAchievementError(ValueError):
    """A featured-achievements choice broke a rule; ``achievement_id`` is the offending id
    (``None`` when the rule is about the whole choice) and ``rule`` the rule it broke."""

    def __init__(self, achievement_id: str | None, rule: str) -> None:
        subject = "featured achievements" if achievement_id is None else repr(achievement_id)
        super().__init__(f"{subject}: {rule}")
        self.achievement_id = achievement_id
        self.rule = rule


def _achievement(
    id: str,
    name: str,
    description: str,
    category: AchievementCategory,
    xp_reward: int,
    counter: str,
    comparison: Comparison,
    threshold: int,
) -> AchievementDef:
    return AchievementDef(
        id=id,
        name=name,
        description=description,
        category=category,
        xp_reward=xp_reward,
        criteria=Criterion(counter=counter, comparison=comparison, threshold=threshold),
    )


def check_achievement_catalog(catalog: Iterable[AchievementDef]) -> tuple[AchievementDef, ...]:
    """The catalog as a tuple, after checking that its ids are unique."""
    entries = tuple(catalog)
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, AchievementDef):
            raise TypeError(f"achievement catalog entries must be AchievementDef, got {entry!r}")
        if entry.id in seen:
            raise ValueError(
                f"achievement id {entry.id!r} appears twice in the catalog; ids must be unique"
            )
        seen.add(entry.id)
    return entries


# fmt: off
#: The catalog, in display order.
ACHIEVEMENTS: Final[tuple[AchievementDef, ...]] = check_achievement_catalog((
    _achievement("ach_first_steps", "First Steps", "Post your first question.",
                 "contribution", 10, "questions_posted", "at_least", 1),
    _achievement("ach_first_answer", "First Answer", "Submit your first answer.",
                 "contribution", 10, "answers_submitted", "at_least", 1),
    _achievement("ach_first_accepted", "Problem Solver", "Get an answer accepted.",
                 "quality", 25, "answers_accepted", "at_least", 1),
    _achievement("ach_century_of_answers", "Century of Answers", "Submit 100 answers.",
                 "contribution", 200, "answers_submitted", "at_least", 100),
    _achievement("ach_helpful", "Helpful", "Receive 10 upvotes.",
                 "quality", 50, "upvotes_received", "at_least", 10),
    _achievement("ach_first_insight", "Storyteller", "Publish your first insight.",
                 "contribution", 25, "insights_published", "at_least", 1),
    _achievement("ach_area_pioneer", "Pioneer", "Create a knowledge area.",
                 "community", 25, "areas_created", "at_least", 1),
    _achievement("ach_conversationalist", "Conversationalist", "Add 25 comments.",
                 "community", 25, "comments_added", "at_least", 25),
    _achievement("ach_week_warrior", "Week Warrior", "Keep a 7-day streak.",
                 "consistency", 50, "streak_days", "at_least", 7),
    _achievement("ach_month_master", "Month Master", "Keep a 30-day streak.",
                 "consistency", 200, "streak_days", "at_least", 30),
    _achievement("ach_rising_star", "Rising Star", "Reach level 10.",
                 "consistency", 100, "level", "at_least", 10),
    _achievement("ach_top_contributor", "Top Contributor", "Finish a week in the top 10.",
                 "competition", 100, "weekly_rank", "at_most", 10),
))
# fmt: on


def _check_stats(stats: Mapping[str, int]) -> None:
    for counter, value in stats.items():
        if type(value) is not int:
            raise TypeError(f"stats[{counter!r}] must be an int, got {value!r}")
        if value < 0:
            raise ValueError(f"stats[{counter!r}] = {value!r}: counters must be >= 0")


def evaluate(
    stats: Mapping[str, int],
    unlocked: AbstractSet[str],
    catalog: Sequence[AchievementDef] = ACHIEVEMENTS,
    *,
    changed: AbstractSet[str] | None = None,
) -> list[AchievementDef]:
    """The achievements of ``catalog`` that ``stats`` meets and ``unlocked`` does not hold yet,
    in catalog order. The caller adds their ids to ``unlocked`` (and grants ``xp_reward``).

    ``changed``: the counters that changed since ``stats`` were last evaluated; only the
    achievements on those counters are checked (the others were checked then and their inputs
    are the same). None checks every achievement."""
    _check_stats(stats)
    entries = ACHIEVEMENTS if catalog is ACHIEVEMENTS else check_achievement_catalog(catalog)
    return [
        entry
        for entry in entries
        if (changed is None or entry.criteria.counter in changed)
        and entry.id not in unlocked
        and entry.criteria.met(stats)
    ]


def choose_featured(
    unlocked: AbstractSet[str],
    chosen: Sequence[str],
    max_featured: int = MAX_FEATURED,
) -> tuple[str, ...]:
    """The user's featured achievements, in the chosen order, after checking the rules:
    at most ``max_featured`` of them, each unlocked by the user, none twice."""
    if isinstance(chosen, str):
        raise TypeError(f"chosen must be a sequence of achievement ids, not the string {chosen!r}")
    if type(max_featured) is not int or max_featured < 0:
        raise ValueError(f"max_featured must be an int >= 0, got {max_featured!r}")
    if len(chosen) > max_featured:
        raise FeaturedAchievementError(
            None,
            f"at most {max_featured} achievements can be featured, got {len(chosen)}; remove some",
        )
    seen: set[str] = set()
    for achievement_id in chosen:
        if achievement_id in seen:
            raise FeaturedAchievementError(
                achievement_id, "is chosen twice; each achievement can be featured once"
            )
        if achievement_id not in unlocked:
            raise FeaturedAchievementError(
                achievement_id,
                "is not unlocked; only unlocked achievements can be featured",
            )
        seen.add(achievement_id)
    return tuple(chosen)
