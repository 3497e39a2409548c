"""The game loop end to end: outbox → ``route_event`` → profiles → leaderboards and topics."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import events
from actors.leaderboard import LeaderboardActor, Top
from actors.profile import (
    GetProfile,
    SetLeaderboardOptOut,
    UserProfileActor,
    notifications_topic,
)
from actors.rooms import RoomActor
from actors.rules import FixedClock, iso_week
from actors.wiring import event_key, event_router, gamification_relay_service, route_event
from tektree import Node
from tektree.cluster.pubsub import LocalPubSub
from tektree.persistence import EVENTS, DomainEvent, OutboxRelay, format_timestamp
from tektree.testing import open_test_node, test_config

SUNDAY = dt.datetime(2025, 12, 21, 22, 0, tzinfo=dt.UTC)  # the last day of 2025-W51
STORE = {"type": "service", "name": "store", "service": "store"}
CLUSTER = {"type": "service", "name": "cluster", "service": "cluster"}
RELAY = {"type": "service", "name": "gamification", "service": "gamification",
         "options": {"poll_interval_seconds": 0.05}}
ACTORS = {"user": UserProfileActor, "leaderboard": LeaderboardActor, "room": RoomActor}


class Profile(UserProfileActor):
    clock = FixedClock(at=SUNDAY)


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    Profile.clock = FixedClock(at=SUNDAY)
    yield


@asynccontextmanager
async def loop_node(tmp_path: Path, *, relay: bool = False) -> AsyncIterator[Node]:
    actors: dict[str, Any] = {**ACTORS, "user": Profile}
    config = test_config(
        services=[STORE, CLUSTER, *([RELAY] if relay else []), *(
            {"type": "actors", "kind": kind, "actor": f"{cls.__module__}:{cls.__qualname__}"}
            for kind, cls in ACTORS.items()
        )],
        node={"data_dir": str(tmp_path)},
    )  # fmt: skip
    async with open_test_node(config, actors=actors,
                              services={"gamification": gamification_relay_service}) as node:
        yield node


def stamped(evt: object, event_id: str, at: dt.datetime) -> DomainEvent:
    return events.to_envelope(evt, event_id=event_id, producer_id="knowledge",
                              timestamp=format_timestamp(at), correlation_id=f"req-{event_id}")


async def write(node: Node, *evts: DomainEvent) -> None:
    """What a knowledge worker does: the events go to the outbox in one unit."""
    assert node.store is not None
    async with node.store.unit() as unit:
        for evt in evts:
            unit.add_event(evt)


async def relay_all(node: Node) -> OutboxRelay:
    assert node.store is not None
    relay = OutboxRelay(node.store, event_router(node.system, timeout=5))
    with trio.fail_after(10):
        while await relay.relay_once():
            pass
        await node.system.wait_quiescent()
    return relay


def the_story(at: dt.datetime) -> list[DomainEvent]:
    return [
        stamped(events.UserRegistered(user_id="ann", email="a@x.io", handle="ann"), "e1", at),
        stamped(events.UserRegistered(user_id="bob", email="b@x.io", handle="bob"), "e2", at),
        stamped(events.QuestionPosted(question_id="q1", author_id="bob", title="Why?"), "e3", at),
        stamped(events.AnswerSubmitted(answer_id="a1", question_id="q1", author_id="ann",
                                       question_author_id="bob"), "e4", at),
        stamped(events.AnswerAccepted(answer_id="a1", question_id="q1", answer_author_id="ann",
                                      question_author_id="bob"), "e5", at),
        stamped(events.ContentVoted(target_type="answer", target_id="a1", voter_id="bob",
                                    author_id="ann", value=1), "e6", at),
    ]


async def test_outbox_events_drive_profiles_boards_and_notifications(tmp_path: Path) -> None:
    async with loop_node(tmp_path) as node:
        pubsub = node.system.extensions["pubsub"]
        assert isinstance(pubsub, LocalPubSub)
        with pubsub.subscribe(notifications_topic("ann")) as notes:
            await write(node, *the_story(SUNDAY))
            relay = await relay_all(node)
            kinds = []
            while notes.pending:
                kinds.append(notes.receive_nowait()["event_type"])
        ann = await node.system.ref("user", "ann").ask(GetProfile())
        # 60 (welcome + daily XP quest) + 20 (answer + First Answer) + 50 (accepted + Problem
        # Solver) + 10 (the up-vote) = 140, level 2
        assert (ann["total_xp"], ann["current_level"]) == (140, 2)
        assert "gamification.level.up" in kinds and kinds.count("gamification.xp.earned") == 7
        bob = await node.system.ref("user", "bob").ask(GetProfile())
        assert bob["total_xp"] == 85
        for board in ("global", f"weekly:{iso_week(SUNDAY)}"):
            assert await node.system.ref("leaderboard", board).ask(Top()) == [
                {"rank": 1, "user_id": "ann", "score": 140},
                {"rank": 2, "user_id": "bob", "score": 85}]
        # the profiles' own events went through the relay too, and were skipped
        assert node.store is not None
        assert await node.store.count(EVENTS, {"published": False}) == 0
        assert relay.published == await node.store.count(EVENTS)
        level_up = (await node.store.find(EVENTS, {"event_type": "gamification.level.up"})).items
        assert level_up[0]["correlation_id"] == "req-e5"


async def test_relayed_again_the_events_change_nothing(tmp_path: Path) -> None:
    async with loop_node(tmp_path) as node:
        await write(node, *the_story(SUNDAY))
        await relay_all(node)
        before = [await node.system.ref("user", u).ask(GetProfile()) for u in ("ann", "bob")]
        assert node.store is not None
        emitted = await node.store.count(EVENTS)
        # a relay that died before marking: every event is published again
        await node.store.update(EVENTS, {"published": True}, {"$set": {"published": False}})
        await relay_all(node)
        after = [await node.system.ref("user", u).ask(GetProfile()) for u in ("ann", "bob")]
        assert after == before
        assert await node.store.count(EVENTS) == emitted


async def test_the_weekly_board_of_the_next_iso_week_starts_empty(tmp_path: Path) -> None:
    async with loop_node(tmp_path) as node:
        await write(node, *the_story(SUNDAY))
        await relay_all(node)
        monday = SUNDAY + dt.timedelta(hours=3)  # 01:00 UTC, 2025-W52
        next_week = f"weekly:{iso_week(monday)}"
        assert next_week != f"weekly:{iso_week(SUNDAY)}"
        assert await node.system.ref("leaderboard", next_week).ask(Top()) == []
        await write(node, stamped(events.AnswerSubmitted(
            answer_id="a2", question_id="q1", author_id="bob", question_author_id="bob"),
            "e7", monday))
        await relay_all(node)
        # bob's week starts from this answer alone: 10 + First Answer 10
        assert await node.system.ref("leaderboard", next_week).ask(Top()) == [
            {"rank": 1, "user_id": "bob", "score": 20}]
        this_week = await node.system.ref("leaderboard", f"weekly:{iso_week(SUNDAY)}").ask(Top())
        assert [e["score"] for e in this_week] == [140, 85]  # the old week is untouched
        top = await node.system.ref("leaderboard", "global").ask(Top())
        assert [(e["user_id"], e["score"]) for e in top] == [("ann", 140), ("bob", 105)]


async def test_the_relay_service_delivers_as_events_commit(tmp_path: Path) -> None:
    async with loop_node(tmp_path, relay=True) as node:
        pubsub = node.system.extensions["pubsub"]
        assert isinstance(pubsub, LocalPubSub)
        with pubsub.subscribe(notifications_topic("ann")) as notes:
            await write(node, stamped(events.UserRegistered(
                user_id="ann", email="a@x.io", handle="ann"), "e1", SUNDAY))
            with trio.fail_after(10):
                note = await notes.receive()  # the relay woke on the commit: no polling wait
        assert note["event_type"] == "gamification.xp.earned"
        assert note["payload"]["amount"] == 50


async def test_the_relay_delivers_many_users_at_once_each_in_order(tmp_path: Path) -> None:
    async with loop_node(tmp_path) as node:
        users = [f"u{i}" for i in range(40)]
        for user in users:  # one unit per event, a user's events in time order
            await write(node, stamped(events.UserRegistered(
                user_id=user, email=f"{user}@x.io", handle=user), f"reg-{user}", SUNDAY))
        for n in range(3):
            for user in users:
                await write(node, stamped(events.AnswerSubmitted(
                    answer_id=f"a-{user}-{n}", question_id=f"q{n}", author_id=user,
                    question_author_id="asker"), f"ans-{user}-{n}", SUNDAY))
        assert node.store is not None
        relay = OutboxRelay(node.store, event_router(node.system, timeout=5), batch_size=500,
                            key=event_key, concurrency=64)  # as the relay service does
        with trio.fail_after(20):
            while await relay.relay_once():
                pass
            await node.system.wait_quiescent()
        assert await node.store.count(EVENTS, {"published": False}) == 0
        for user in users:
            profile = await node.system.ref("user", user).ask(GetProfile())
            # welcome, 3 answers, First Answer, daily quests "answer 3" and "earn 50 XP"
            assert profile["total_xp"] == 50 + 3 * 10 + 10 + 15 + 10
            assert profile["counters"]["answers_submitted"] == 3


def test_event_key_is_the_first_credited_user_else_the_event() -> None:
    accepted = stamped(events.AnswerAccepted(
        answer_id="a1", question_id="q1", answer_author_id="bea", question_author_id="ann"),
        "e1", SUNDAY).to_dict()
    assert event_key(accepted) == "user:bea"
    assert event_key({"event_id": "e2", "event_type": "payment.succeeded"}) == "event:e2"
    assert event_key({"event_id": "e3", "event_type": "knowledge.answer.submitted",
                      "payload": "not a mapping"}) == "event:e3"


async def test_content_in_areas_feeds_the_area_boards(tmp_path: Path) -> None:
    async with loop_node(tmp_path) as node:
        async def route(evt: object, event_id: str) -> dict[str, Any]:
            (reply,) = await route_event(node.system, stamped(evt, event_id, SUNDAY).to_dict())
            return reply

        first = await route(events.QuestionPosted(
            question_id="q1", author_id="ann", title="Lifetimes?",
            area_ids=("rust", "not an area!", "rust", "systems")), "e1")
        second = await route(events.QuestionPosted(
            question_id="q2", author_id="ann", title="Borrowck?", area_ids=("rust",)), "e2")
        await route(events.AnswerSubmitted(answer_id="a1", question_id="q9", author_id="ann",
                                           question_author_id="bea"), "e3")  # in no area
        with trio.fail_after(10):
            await node.system.wait_quiescent()
        rust = await node.system.ref("leaderboard", "area:rust").ask(Top())
        systems = await node.system.ref("leaderboard", "area:systems").ask(Top())
        # The XP earned through each area's content (bonuses included), not the total XP.
        assert rust == [{"rank": 1, "user_id": "ann", "score": first["xp"] + second["xp"]}]
        assert systems == [{"rank": 1, "user_id": "ann", "score": first["xp"]}]
        total = (await node.system.ref("leaderboard", "global").ask(Top()))[0]["score"]
        assert total > first["xp"] + second["xp"]
        await node.system.ref("user", "ann").ask(SetLeaderboardOptOut(opted_out=True))
        with trio.fail_after(10):
            await node.system.wait_quiescent()
        assert await node.system.ref("leaderboard", "area:systems").ask(Top()) == []


async def test_route_event_skips_malformed_and_unrouted_events(tmp_path: Path) -> None:
    async with loop_node(tmp_path) as node:
        assert await route_event(node.system, {"event_type": "user.registered"}) == []
        assert await route_event(node.system, {
            "event_id": "x", "event_type": "knowledge.answer.submitted",
            "payload": {"author_id": "ann"}}) == []  # no answer_id: skipped, not retried
        xp = stamped(events.XpEarned(user_id="ann", amount=5, reason="welcome",
                                     source_event_id="e0", total_xp=5), "e9", SUNDAY)
        assert await route_event(node.system, xp.to_dict()) == []
        assert "user" not in {kind for kind, pool in node.system.pools.items() if pool.cells}
