"""The level curve: how much XP each level costs, and which level a total XP is.

Levels start at 1 (0 XP). Going from level ``L`` to ``L + 1`` costs

    xp_for_level_up(L) = 50 * L * (L + 1)        (= 100 * (1 + 2 + ... + L))

so the cost grows quadratically: 100, 300, 600, 1 000, 1 500, ... 5 000 (level 9 to 10), 10 500
(level 14 to 15). The XP needed to *reach* level ``L`` is the sum of the steps below it, a cube:

    total_xp_for_level(L) = 50 * (L - 1) * L * (L + 1) / 3

(exact in integers: one of three consecutive integers is a multiple of 3). So level 2 is at
100 XP, 3 at 400, 5 at 2 000, 10 at 16 500, 20 at 133 000, 50 at 2 082 500.

Why this curve: the welcome bonus (50) plus a first answer or a few questions reach level 2 on
the first day; a steady contributor (~300 XP a day, under the 500 daily cap) reaches level 5 in
about a week, 10 in about two months and 20 in over a year, so early levels come fast and the high
ones stay rare. ``50 * L * (L + 1)`` is gentler than ``100 * L ** 2`` (level 10 at 16 500 XP
instead of 28 500) and its running total is a closed-form cube, inverted with an exact integer cube
root, which is O(log total) in integer operations and exact for any size of total (no float
rounding). The seed's sample profile (50 000 XP at level 15 with 1 500 to go) is illustrative and
fits no quadratic curve; under this curve 50 000 XP is level 14 with 6 000 XP to level 15.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import attrs

__all__ = [
    "LEVEL_STEP_XP",
    "LevelInfo",
    "level_for",
    "levels_gained",
    "total_xp_for_level",
    "xp_for_level_up",
]

#: The curve's one constant: level L -> L + 1 costs ``LEVEL_STEP_XP * L * (L + 1)``.
LEVEL_STEP_XP: Final = 50


def _check_int(value: object, what: str, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value!r}")
    return value


def xp_for_level_up(level: int) -> int:
    """XP needed to go from ``level`` to ``level + 1``: ``50 * level * (level + 1)``."""
    _check_int(level, "level", minimum=1)
    return LEVEL_STEP_XP * level * (level + 1)


def total_xp_for_level(level: int) -> int:
    """Total XP at which ``level`` is reached: ``50 * (level - 1) * level * (level + 1) / 3``."""
    _check_int(level, "level", minimum=1)
    return LEVEL_STEP_XP * (level - 1) * level * (level + 1) // 3


def _icbrt(n: int) -> int:
    """``floor(cbrt(n))`` for ``n >= 0``, exact for any size (integer Newton from above)."""
    if n < 2:
        return n
    x = 1 << ((n.bit_length() + 2) // 3)  # 2 ** ceil(bits / 3) > cbrt(n)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            return x
        x = y


def _level(total_xp: int) -> int:
    # Largest L >= 1 with total_xp_for_level(L) <= total_xp, i.e. with L**3 - L <= 3 * total // 50
    # (the left side is an integer, so flooring the right side changes nothing). L = icbrt(m)
    # satisfies it; L + 1 may too (the "- L" term); L + 2 never does.
    m = 3 * total_xp // LEVEL_STEP_XP
    level = max(1, _icbrt(m))
    if (level + 1) ** 3 - (level + 1) <= m:
        level += 1
    return level


def _check_info(instance: LevelInfo, attribute: Any, value: int) -> None:
    _check_int(value, f"LevelInfo.{attribute.name}", minimum=0)


@attrs.frozen(kw_only=True, slots=True)
class LevelInfo:
    """Where a total XP sits on the curve; always ``level_for(total_xp)``.

    ``xp_into_level + xp_to_next_level == xp_for_level_up(current_level)`` and
    ``xp_to_next_level > 0``.
    """

    total_xp: int = attrs.field(validator=_check_info)
    current_level: int = attrs.field(validator=_check_info)
    xp_into_level: int = attrs.field(validator=_check_info)
    xp_to_next_level: int = attrs.field(validator=_check_info)

    def __attrs_post_init__(self) -> None:
        level, into, to_next = self.current_level, self.xp_into_level, self.xp_to_next_level
        if (
            level < 1
            or total_xp_for_level(level) != self.total_xp - into
            or into + to_next != xp_for_level_up(level)
            or to_next <= 0
        ):
            raise ValueError(
                f"inconsistent LevelInfo: level {level} (+{into} XP, {to_next} to go) is not "
                f"where total_xp={self.total_xp} sits on the curve, which is "
                f"{level_for(self.total_xp)!r}; build it with level_for(total_xp)"
            )

    @property
    def next_level_total_xp(self) -> int:
        """Total XP at which the next level is reached."""
        return self.total_xp + self.xp_to_next_level

    @property
    def progress(self) -> float:
        """Fraction of the current level done, in ``[0, 1)`` (for progress bars)."""
        return self.xp_into_level / (self.xp_into_level + self.xp_to_next_level)


def level_for(total_xp: int) -> LevelInfo:
    """The level reached with ``total_xp`` XP, how far into it, and how much is left to the next.

    O(log total_xp) integer operations, exact for any total. The answer is a frozen value, so
    the latest ones are kept (every XP award asks, often for a total asked just before).
    """
    _check_int(total_xp, "total_xp", minimum=0)
    return _level_info(total_xp)


@functools.lru_cache(maxsize=4096)
def _level_info(total_xp: int) -> LevelInfo:
    level = _level(total_xp)
    floor = total_xp_for_level(level)
    into = total_xp - floor
    return LevelInfo(
        total_xp=total_xp,
        current_level=level,
        xp_into_level=into,
        xp_to_next_level=xp_for_level_up(level) - into,
    )


def levels_gained(old_total: int, new_total: int) -> list[int]:
    """Every level reached going from ``old_total`` XP to ``new_total`` XP, in order.

    ``[]`` when no level is crossed, including when ``new_total <= old_total`` (levels are never
    taken away). The list has one entry per level gained, so its length is the only cost beyond
    two O(log) lookups.
    """
    old_level = _level(_check_int(old_total, "old_total", minimum=0))
    new_level = _level(_check_int(new_total, "new_total", minimum=0))
    return list(range(old_level + 1, new_level + 1))
