"""``UserProfileActor`` on a real embedded node: SQLite store, in-process pub/sub, boards."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import events
from actors.leaderboard import LeaderboardActor, RankOf, Top
from actors.profile import (
    ApplyEvent,
    GetProfile,
    GetQuests,
    GetXpTransactions,
    SetFeatured,
    SetLeaderboardOptOut,
    UserProfileActor,
    credits,
    notifications_topic,
)
from actors.rules import FixedClock, iso_week
from tektree import Node
from tektree.cluster.pubsub import LocalPubSub
from tektree.persistence import EVENTS, JOURNAL, format_timestamp
from tektree.testing import open_test_node, test_config

MONDAY = dt.datetime(2025, 12, 15, 10, 0, tzinfo=dt.UTC)  # ISO week 2025-W51
SERVICES = [
    {"type": "service", "name": "store", "service": "store"},
    {"type": "service", "name": "cluster", "service": "cluster"},
]


class Profile(UserProfileActor):
    clock = FixedClock(at=MONDAY)


class Board(LeaderboardActor):
    clock = FixedClock(at=MONDAY)


@pytest.fixture(autouse=True)
def _clock() -> Iterator[FixedClock]:
    Profile.clock = Board.clock = clock = FixedClock(at=MONDAY)
    yield clock


@asynccontextmanager
async def game_node(tmp_path: Path, **user_options: Any) -> AsyncIterator[Node]:
    actors = {"user": Profile, "leaderboard": Board}
    config = test_config(
        services=[*SERVICES, *(
            {"type": "actors", "kind": kind, "actor": f"{cls.__module__}:{cls.__qualname__}",
             "options": user_options if kind == "user" else {}}
            for kind, cls in actors.items()
        )],
        node={"data_dir": str(tmp_path)},
    )  # fmt: skip
    async with open_test_node(config, actors=actors) as node:
        yield node


def envelope(evt: object, event_id: str, at: dt.datetime) -> dict[str, Any]:
    return events.to_envelope(evt, event_id=event_id, producer_id="test",
                              timestamp=format_timestamp(at)).to_dict()


async def apply(node: Node, user: str, evt: object, event_id: str,
                at: dt.datetime = MONDAY) -> dict[str, Any]:
    with trio.fail_after(5):
        reply: dict[str, Any] = await node.system.ref("user", user).ask(
            ApplyEvent(envelope=envelope(evt, event_id, at)))
        await node.system.wait_quiescent()
    return reply


async def profile(node: Node, user: str) -> dict[str, Any]:
    result: dict[str, Any] = await node.system.ref("user", user).ask(GetProfile())
    return result


def registered(user: str) -> events.UserRegistered:
    return events.UserRegistered(user_id=user, email=f"{user}@example.com", handle=user)


def answered(user: str, answer: str, asker: str = "bob") -> events.AnswerSubmitted:
    return events.AnswerSubmitted(answer_id=answer, question_id="q1", author_id=user,
                                  question_author_id=asker)


async def outbox(node: Node, event_type: str, user: str) -> list[dict[str, Any]]:
    assert node.store is not None
    page = await node.store.find(EVENTS, {"event_type": event_type,
                                          "payload.user_id": user}, limit=1000)
    return page.items


async def play_the_loop(node: Node) -> None:
    """alice answers bob's question and bob accepts it (the numbers are in the test below)."""
    await apply(node, "alice", registered("alice"), "evt_reg_alice")
    await apply(node, "bob", registered("bob"), "evt_reg_bob")
    await apply(node, "bob", events.QuestionPosted(question_id="q1", author_id="bob",
                                                   title="How?"), "evt_q1")
    await apply(node, "alice", answered("alice", "a1"), "evt_a1")
    accepted = events.AnswerAccepted(answer_id="a1", question_id="q1", answer_author_id="alice",
                                     question_author_id="bob")
    await apply(node, "alice", accepted, "evt_acc_a1")
    await apply(node, "bob", accepted, "evt_acc_a1")


async def test_register_answer_accept_level_up_and_leaderboards(tmp_path: Path) -> None:
    async with game_node(tmp_path) as node:
        pubsub = node.system.extensions["pubsub"]
        assert isinstance(pubsub, LocalPubSub)
        with pubsub.subscribe(notifications_topic("alice")) as notes:
            await play_the_loop(node)
            received = []
            while notes.pending:
                received.append(notes.receive_nowait())
        alice = await profile(node, "alice")
        # welcome 50 + daily XP quest 10; answer 10 + First Answer 10; accepted 25 + Problem
        # Solver 25 = 130: level 2 (from 100 XP), 270 to go to level 3 (at 400)
        assert (alice["total_xp"], alice["current_level"], alice["xp_to_next_level"]) == (
            130, 2, 270)
        assert alice["achievements"] == ["ach_first_answer", "ach_first_accepted"]
        assert alice["counters"]["answers_submitted"] == alice["counters"]["answers_accepted"] == 1
        assert alice["streak"]["current"] == 1
        # bob: welcome 50 + quest 10; question 5 + daily ask quest 5 + First Steps 10; asker 5
        assert (await profile(node, "bob"))["total_xp"] == 85

        level_ups = await outbox(node, "gamification.level.up", "alice")
        assert [e["payload"]["new_level"] for e in level_ups] == [2]
        assert level_ups[0]["metadata"]["source_event_id"] == "evt_acc_a1"
        kinds = [n["event_type"] for n in received]
        assert kinds.count("gamification.xp.earned") == 6
        assert "gamification.level.up" in kinds and "gamification.achievement.unlocked" in kinds
        first = received[0]
        assert first["payload"] == {"user_id": "alice", "amount": 50, "reason": "welcome",
                                    "source_event_id": "evt_reg_alice", "total_xp": 50,
                                    "capped_amount": 0}

        week = f"weekly:{iso_week(MONDAY)}"
        for board in ("global", week):
            top = await node.system.ref("leaderboard", board).ask(Top(limit=10))
            assert top == [{"rank": 1, "user_id": "alice", "score": 130},
                           {"rank": 2, "user_id": "bob", "score": 85}]
        rank = await node.system.ref("leaderboard", "global").ask(RankOf(user_id="bob", radius=1))
        assert (rank["rank"], rank["score"], [e["user_id"] for e in rank["around"]]) == (
            2, 85, ["alice", "bob"])


async def test_redelivered_events_change_nothing(tmp_path: Path) -> None:
    # a window of 1 remembered id: the second redelivery is caught by the journal, not memory
    async with game_node(tmp_path, xp_table={"idempotency_window": 1}) as node:
        first = await apply(node, "alice", registered("alice"), "evt_reg")
        assert first["status"] == "applied"
        assert (await apply(node, "alice", registered("alice"), "evt_reg"))["status"] == (
            "duplicate")
        await apply(node, "alice", answered("alice", "a1"), "evt_a1")
        before = await profile(node, "alice")
        assert node.store is not None
        journal = await node.store.count(JOURNAL, {"actor_id": "user/alice"})
        emitted = await node.store.count(EVENTS)
        again = (("evt_reg", registered("alice")), ("evt_a1", answered("alice", "a1")))
        for event_id, evt in again:
            assert (await apply(node, "alice", evt, event_id))["status"] == "duplicate"
        with trio.fail_after(5):
            await node.system.passivate_all()  # and after a restart: the journal remembers
        assert (await apply(node, "alice", registered("alice"), "evt_reg"))["status"] == (
            "duplicate")
        assert await profile(node, "alice") == before
        assert await node.store.count(JOURNAL, {"actor_id": "user/alice"}) == journal
        assert await node.store.count(EVENTS) == emitted


async def test_daily_cap_holds_across_the_day_and_resets_at_utc_midnight(
    tmp_path: Path, _clock: FixedClock
) -> None:
    async with game_node(tmp_path, xp_table={"daily_cap": 30}) as node:
        await apply(node, "alice", registered("alice"), "evt_reg")  # 50, cut to 30
        late = MONDAY.replace(hour=23, minute=59)
        reply = await apply(node, "alice", answered("alice", "a1"), "evt_a1", late)
        assert reply["xp"] == 10  # the answer is capped to 0; First Answer (10) is cap-exempt
        _clock.set(late)
        shown = await profile(node, "alice")
        assert (shown["total_xp"], shown["daily_xp_earned"], shown["daily_xp_cap"]) == (40, 30, 30)
        assert shown["daily_xp_reset_at"] == "2025-12-16T00:00:00.000000Z"
        page = await node.system.ref("user", "alice").ask(GetXpTransactions(limit=2))
        assert [(t["source"], t["amount"], t["capped_amount"]) for t in page["items"]] == [
            ("achievement_unlocked", 10, 0), ("answer_submitted", 0, 10)]

        tuesday = MONDAY + dt.timedelta(days=1)
        _clock.set(tuesday.replace(hour=0))
        assert (await profile(node, "alice"))["daily_xp_earned"] == 0  # a new UTC day
        reply = await apply(node, "alice", answered("alice", "a2"), "evt_a2", tuesday)
        assert reply["xp"] == 10
        assert (await profile(node, "alice"))["daily_xp_earned"] == 10


async def test_streak_with_freezes_across_missed_days(tmp_path: Path, _clock: FixedClock) -> None:
    async with game_node(tmp_path) as node:
        def day(n: int) -> dt.datetime:
            return MONDAY + dt.timedelta(days=n - 1)

        for n in range(1, 8):
            await apply(node, "alice", answered("alice", f"a{n}"), f"evt_a{n}", day(n))
        seven = await profile(node, "alice")
        assert seven["streak"] | {"last_activity_at": None} == {
            "current": 7, "longest": 7, "freezes_available": 1, "last_activity_at": None}
        assert "ach_week_warrior" in seven["achievements"]
        milestones = await outbox(node, "gamification.streak.milestone", "alice")
        assert [(m["payload"]["days"], m["payload"]["bonus_xp"]) for m in milestones] == [(7, 50)]

        await apply(node, "alice", answered("alice", "a9"), "evt_a9", day(9))  # day 8 frozen
        _clock.set(day(9))
        assert (await profile(node, "alice"))["streak"]["current"] == 8
        assert (await profile(node, "alice"))["streak"]["freezes_available"] == 0

        await apply(node, "alice", answered("alice", "a12"), "evt_a12", day(12))  # 10, 11 missed
        _clock.set(day(12))
        streak = (await profile(node, "alice"))["streak"]
        assert (streak["current"], streak["longest"]) == (1, 8)
        _clock.set(day(14))  # day 13 missed, no freeze left: the streak shown is 0
        assert (await profile(node, "alice"))["streak"]["current"] == 0
        assert len(await outbox(node, "gamification.streak.milestone", "alice")) == 1


async def test_quests_complete_once_per_period_with_bonus(tmp_path: Path) -> None:
    async with game_node(tmp_path) as node:
        for n in range(1, 5):
            await apply(node, "alice", answered("alice", f"a{n}"), f"evt_a{n}")
        quests = {q["quest_id"]: q for q in await node.system.ref("user", "alice").ask(GetQuests())}
        daily = quests["quest_daily_answer_3"]
        assert (daily["progress"], daily["target"], daily["completed"]) == (3, 3, True)
        assert daily["resets_at"] == "2025-12-16T00:00:00.000000Z"
        assert quests["quest_weekly_answer_10"]["progress"] == 4
        completed = await outbox(node, "gamification.quest.completed", "alice")
        assert [c["payload"]["quest_id"] for c in completed] == ["quest_daily_answer_3"]
        # 4 answers 40 + First Answer 10 + the quest's 15
        assert (await profile(node, "alice"))["total_xp"] == 65


async def test_votes_pay_once_per_voter_and_only_up(tmp_path: Path) -> None:
    async with game_node(tmp_path) as node:
        def vote(value: int, previous: int, rev: int) -> tuple[events.ContentVoted, str]:
            return events.ContentVoted(target_type="answer", target_id="a1", voter_id="bob",
                                       author_id="alice", value=value,
                                       previous_value=previous), f"evt_v{rev}"

        assert (await apply(node, "alice", *vote(1, 0, 1)))["xp"] == 10
        assert (await apply(node, "alice", *vote(0, 1, 2)))["status"] == "ignored"
        assert (await apply(node, "alice", *vote(1, 0, 3)))["status"] == "duplicate"
        assert (await apply(node, "alice", *vote(-1, 1, 4)))["status"] == "ignored"
        shown = await profile(node, "alice")
        assert (shown["total_xp"], shown["counters"]["upvotes_received"]) == (10, 1)


async def test_featured_achievements_are_validated(tmp_path: Path) -> None:
    async with game_node(tmp_path) as node:
        await apply(node, "alice", answered("alice", "a1"), "evt_a1")
        ref = node.system.ref("user", "alice")
        refused = await ref.ask(SetFeatured(ids=("ach_week_warrior",)))
        assert refused["achievement_id"] == "ach_week_warrior"
        assert "not unlocked" in refused["error"]
        assert await ref.ask(SetFeatured(ids=("ach_first_answer",))) == {
            "featured_achievements": ["ach_first_answer"]}
        with trio.fail_after(5):
            await node.system.passivate_all()
        assert (await profile(node, "alice"))["featured_achievements"] == ["ach_first_answer"]


async def test_opt_out_hides_the_user_from_the_boards(tmp_path: Path) -> None:
    async with game_node(tmp_path) as node:
        await play_the_loop(node)
        ref = node.system.ref("user", "alice")
        assert await ref.ask(SetLeaderboardOptOut(opted_out=True)) == {
            "leaderboard_opt_out": True}
        await apply(node, "alice", answered("alice", "a2"), "evt_a2")  # still scored, hidden
        week = f"weekly:{iso_week(MONDAY)}"
        for board in ("global", week):
            top = await node.system.ref("leaderboard", board).ask(Top(limit=10))
            assert [e["user_id"] for e in top] == ["bob"]
        await ref.ask(SetLeaderboardOptOut(opted_out=False))
        with trio.fail_after(5):
            await node.system.wait_quiescent()
        top = await node.system.ref("leaderboard", "global").ask(Top(limit=10))
        assert top[0] == {"rank": 1, "user_id": "alice", "score": 140}


async def test_the_profile_view_follows_every_state_change_and_the_utc_day(
    tmp_path: Path, _clock: FixedClock
) -> None:
    # The view is cached per state and UTC day: each change below must show on the next read.
    async with game_node(tmp_path) as node:
        ref = node.system.ref("user", "alice")
        await apply(node, "alice", answered("alice", "a1"), "evt_a1")
        first = await profile(node, "alice")
        assert await profile(node, "alice") == first
        assert (first["daily_xp_earned"], first["featured_achievements"]) == (10, [])
        await ref.ask(SetFeatured(ids=("ach_first_answer",)))
        assert (await profile(node, "alice"))["featured_achievements"] == ["ach_first_answer"]
        await ref.ask(SetLeaderboardOptOut(opted_out=True))
        assert (await profile(node, "alice"))["leaderboard_opt_out"] is True
        await apply(node, "alice", answered("alice", "a2"), "evt_a2")
        second = await profile(node, "alice")
        assert (second["total_xp"], second["daily_xp_earned"], second["weekly_xp"]) == (
            first["total_xp"] + 10, 20, first["weekly_xp"] + 10)
        _clock.set(MONDAY + dt.timedelta(days=7))  # next Monday: a new day and ISO week
        later = await profile(node, "alice")
        assert (later["daily_xp_earned"], later["weekly_xp"], later["streak"]["current"]) == (
            0, 0, 0)
        assert later["daily_xp_reset_at"] != second["daily_xp_reset_at"]


async def test_transactions_page_newest_first(tmp_path: Path) -> None:
    async with game_node(tmp_path) as node:
        await play_the_loop(node)
        ref = node.system.ref("user", "alice")
        first = await ref.ask(GetXpTransactions(limit=4))
        assert [(t["source"], t["amount"]) for t in first["items"]] == [
            ("achievement_unlocked", 25), ("answer_accepted", 25),
            ("achievement_unlocked", 10), ("answer_submitted", 10)]
        rest = await ref.ask(GetXpTransactions(limit=4, cursor=first["next_cursor"]))
        assert [(t["source"], t["amount"]) for t in rest["items"]] == [
            ("quest_completed", 10), ("welcome", 50)]
        assert rest["next_cursor"] is None
        assert first["items"][1]["related_entity_id"] == "a1"
        assert first["items"][1]["transaction_id"] == "xp_txn:alice:evt_acc_a1"
        assert "error" in await ref.ask(GetXpTransactions(limit=0))


async def test_invalid_and_unrelated_events_do_not_crash_the_actor(tmp_path: Path) -> None:
    async with game_node(tmp_path) as node:
        ref = node.system.ref("user", "alice")
        bad = await ref.ask(ApplyEvent(envelope={"event_id": "e1",
                                                 "event_type": "knowledge.answer.submitted",
                                                 "payload": {"author_id": "alice"}}))
        assert bad["status"] == "invalid" and "payload.answer_id" in bad["error"]
        other = await apply(node, "alice", registered("bob"), "evt_reg_bob")
        assert other["status"] == "ignored"
        assert (await apply(node, "alice", registered("alice"), "evt_reg"))["xp"] == 60
        assert node.system.pools["user"].failures == 0


def test_credits_route_acceptance_to_both_users_and_self_acceptance_once() -> None:
    accepted = {"answer_id": "a1", "question_id": "q1", "answer_author_id": "alice",
                "question_author_id": "bob"}
    both = credits("knowledge.answer.accepted", "e1", accepted)
    assert [(c.user_id, c.reason) for c in both] == [("alice", "answer_accepted"),
                                                    ("bob", "answer_accepted_asker")]
    own = credits("knowledge.answer.accepted", "e1", {**accepted, "question_author_id": "alice"})
    assert [c.user_id for c in own] == ["alice"]
    assert credits("gamification.xp.earned", "e2", {"user_id": "alice"}) == []
