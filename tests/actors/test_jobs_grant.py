"""``GrantAchievement``: an achievement unlocked by an outside cause (the weekly top 10 job),
idempotent on the cause, paying its XP reward once, on the boards and in the outbox."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import trio

from actors.leaderboard import LeaderboardActor, RankOf
from actors.profile import GetProfile, GrantAchievement, UserProfileActor
from actors.rules import FixedClock
from tektree.persistence import EVENTS
from tektree.testing import open_test_node, test_config

MONDAY = dt.datetime(2025, 12, 15, 0, 5, tzinfo=dt.UTC)  # ISO week 2025-W51


class Profile(UserProfileActor):
    clock = FixedClock(at=MONDAY)


class Board(LeaderboardActor):
    clock = FixedClock(at=MONDAY)


async def test_a_granted_achievement_pays_once_per_cause(tmp_path: Path) -> None:
    actors: dict[str, Any] = {"user": Profile, "leaderboard": Board}
    config = test_config(actors, services=[
        {"type": "service", "name": "store", "service": "store"},
        {"type": "service", "name": "cluster", "service": "cluster"}],
        node={"data_dir": str(tmp_path)})
    async with open_test_node(config, actors=actors) as node:
        user = node.system.ref("user", "usr_top")
        grant = GrantAchievement(achievement_id="ach_top_contributor",
                                 cause_id="weekly_top10:2025-W50")
        with trio.fail_after(10):
            first = await user.ask(grant)
            again = await user.ask(grant)
            other = await user.ask(GrantAchievement(achievement_id="ach_top_contributor",
                                                    cause_id="weekly_top10:2025-W51"))
            bad = await user.ask(GrantAchievement(achievement_id="ach_nope", cause_id="c"))
            await node.system.wait_quiescent()
            profile = await user.ask(GetProfile())
            rank = await node.system.ref("leaderboard", "global").ask(RankOf(user_id="usr_top"))
        assert (first["status"], first["xp"]) == ("applied", 100)
        assert again["status"] == "duplicate"
        assert other["status"] == "already_unlocked"
        assert bad["status"] == "invalid" and "ach_nope" in bad["error"]
        assert profile["achievements"] == ["ach_top_contributor"]
        assert profile["total_xp"] == 100
        assert (rank["rank"], rank["score"]) == (1, 100)
        assert node.store is not None
        unlocked = await node.store.count(
            EVENTS, {"event_type": "gamification.achievement.unlocked"})
        assert unlocked == 1
