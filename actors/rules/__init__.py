"""TekTree's game rules: pure functions over frozen values, no I/O, no clock reads.

Actors apply them: they pass the current state, the cause and the time (from a
:class:`~actors.rules.clock.Clock`) in, and store and emit what comes out.

* :mod:`actors.rules.clock`: the ``Clock`` protocol and UTC day / ISO week helpers.
* :mod:`actors.rules.xp`: the XP table, the daily cap and the idempotent ``award``.
* :mod:`actors.rules.levels`: the level curve (``50 * L * (L + 1)`` XP from level L to L + 1).
* :mod:`actors.rules.streaks`: daily streaks with freezes and milestones.
* :mod:`actors.rules.achievements`, :mod:`actors.rules.quests`,
  :mod:`actors.rules.leaderboard`: see their modules.

Imports stay in one alphabetical block (ruff's isort); each group of modules owns its
``__all__`` section below.
"""

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
)
from actors.rules.achievements import evaluate as evaluate_achievements
from actors.rules.clock import (
    Clock,
    FixedClock,
    SystemClock,
    day_bounds,
    day_id,
    iso_week,
    iso_week_monday,
    next_utc_midnight,
    utc_day,
    week_bounds,
)
from actors.rules.leaderboard import (
    BOARD_KEY_PREFIX,
    Board,
    BoardKind,
    BoardNameError,
    Leaderboard,
    area_board,
    board_key,
    parse_board,
    weekly_board,
)
from actors.rules.leaderboard import Entry as LeaderboardEntry
from actors.rules.levels import (
    LEVEL_STEP_XP,
    LevelInfo,
    level_for,
    levels_gained,
    total_xp_for_level,
    xp_for_level_up,
)
from actors.rules.quests import (
    QUESTS,
    PeriodProgress,
    QuestDef,
    QuestPeriod,
    QuestProgress,
    QuestState,
    QuestUpdate,
    check_quest_catalog,
)
from actors.rules.quests import period_end as quest_period_end
from actors.rules.quests import period_id as quest_period_id
from actors.rules.quests import progress as quest_progress
from actors.rules.quests import record as record_quest
from actors.rules.quests import record_all as record_quests
from actors.rules.streaks import (
    FREEZE_EVERY_DAYS,
    MAX_FREEZES,
    STREAK_MILESTONE_DAYS,
    FreezeEarned,
    FreezeSpent,
    LateActivityIgnored,
    MilestoneReached,
    StreakBroken,
    StreakEvent,
    StreakExtended,
    StreakStarted,
    StreakState,
    StreakUpdate,
    current_streak_on,
    record_activity,
)
from actors.rules.xp import (
    DEFAULT_CAP_EXEMPT,
    DEFAULT_XP_TABLE,
    REWARD_REASONS,
    Award,
    XpLedger,
    XpReason,
    XpTable,
    XpTableError,
    XpTransaction,
    award,
    charge,
    requested_xp,
    streak_milestone_reason,
    transaction_document,
    transaction_id_for,
)

# -- clock, xp, levels, streaks ----------------------------------------------------------------
__all__ = [
    "DEFAULT_CAP_EXEMPT",
    "DEFAULT_XP_TABLE",
    "FREEZE_EVERY_DAYS",
    "LEVEL_STEP_XP",
    "MAX_FREEZES",
    "REWARD_REASONS",
    "STREAK_MILESTONE_DAYS",
    "Award",
    "Clock",
    "FixedClock",
    "FreezeEarned",
    "FreezeSpent",
    "LateActivityIgnored",
    "LevelInfo",
    "MilestoneReached",
    "StreakBroken",
    "StreakEvent",
    "StreakExtended",
    "StreakStarted",
    "StreakState",
    "StreakUpdate",
    "SystemClock",
    "XpLedger",
    "XpReason",
    "XpTable",
    "XpTableError",
    "XpTransaction",
    "award",
    "charge",
    "current_streak_on",
    "day_bounds",
    "day_id",
    "iso_week",
    "iso_week_monday",
    "level_for",
    "levels_gained",
    "next_utc_midnight",
    "record_activity",
    "requested_xp",
    "streak_milestone_reason",
    "total_xp_for_level",
    "transaction_document",
    "transaction_id_for",
    "utc_day",
    "week_bounds",
    "xp_for_level_up",
]

# -- achievements, quests, leaderboard (the other rules module group) ---------------------------
# Add `from actors.rules.<module> import (...)` in alphabetical place in the block above and
# the names here, as `__all__ += [...]` (kept sorted; ruff's RUF022 checks each list).
__all__ += [
    "ACHIEVEMENTS",
    "ACHIEVEMENT_CATEGORIES",
    "BOARD_KEY_PREFIX",
    "MAX_FEATURED",
    "QUESTS",
    "STAT_COUNTERS",
    "AchievementDef",
    "Board",
    "BoardKind",
    "BoardNameError",
    "Criterion",
    "FeaturedAchievementError",
    "Leaderboard",
    "LeaderboardEntry",
    "PeriodProgress",
    "QuestDef",
    "QuestPeriod",
    "QuestProgress",
    "QuestState",
    "QuestUpdate",
    "area_board",
    "board_key",
    "check_achievement_catalog",
    "check_quest_catalog",
    "choose_featured",
    "evaluate_achievements",
    "parse_board",
    "quest_period_end",
    "quest_period_id",
    "quest_progress",
    "record_quest",
    "record_quests",
    "weekly_board",
]
