"""The game loop on a real two-node cluster: one SQLite store shared, Redis between the nodes.

The scenario of ``tests/actors/test_game_loop.py`` (register → answer → accepted → level up →
leaderboards → notification topic), with the two users homed on different nodes, the events
relayed from one node, the notifications read on the other, and the boards kept in Redis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import events
from actors.leaderboard import LeaderboardActor, Top
from actors.profile import GetProfile, UserProfileActor, notifications_topic
from actors.rooms import RoomActor
from actors.rules import FixedClock, iso_week
from actors.wiring import event_router
from tektree import Node
from tektree.cluster import Membership
from tektree.persistence import EVENTS, DomainEvent, OutboxRelay, format_timestamp
from tektree.testing import open_test_node, test_config
from tektree.testing.redis import RedisServer

SUNDAY = dt.datetime(2025, 12, 21, 22, 0, tzinfo=dt.UTC)
FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
        "lease_renew_seconds": 0.5, "lease_restart_grace": False}


class ClusterProfile(UserProfileActor):
    clock = FixedClock(at=SUNDAY)


ACTORS: dict[str, Any] = {"user": ClusterProfile, "leaderboard": LeaderboardActor,
                          "room": RoomActor}


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    ClusterProfile.clock = FixedClock(at=SUNDAY)
    yield


def _config(name: str, url: str, data_dir: Path) -> Any:
    return test_config(
        ACTORS,
        services=[{"type": "service", "name": "store", "service": "store"},
                  {"type": "service", "name": "cluster", "service": "cluster", "options": FAST}],
        node={"name": name, "data_dir": str(data_dir)},  # one SQLite file for both nodes
        redis_url=url,
    )


@asynccontextmanager
async def two_nodes(url: str, data_dir: Path) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(
            open_test_node(_config(name, url, data_dir), actors=ACTORS))
            for name in ("n1", "n2")]
        with trio.fail_after(10):
            for node in nodes:
                membership = node.system.extensions["cluster.membership"]
                assert isinstance(membership, Membership)
                while len(membership.view.members) != 2:
                    await membership.wait_for_change(membership.view.version)
        yield nodes


def _homed_on(node: Node, other: str) -> tuple[str, str]:
    """Two user ids: the first homed on ``node``, the second on the node named ``other``."""
    router = node.system.router
    assert router is not None
    here = there = None
    for i in range(200):
        user = f"user{i}"
        home = router.remote_home(node.system.ref("user", user).id)
        if home is None and here is None:
            here = user
        elif home == other and there is None:
            there = user
    assert here is not None and there is not None
    return here, there


def stamped(evt: object, event_id: str) -> DomainEvent:
    return events.to_envelope(evt, event_id=event_id, producer_id="knowledge",
                              timestamp=format_timestamp(SUNDAY),
                              correlation_id=f"req-{event_id}")


def the_story(ann: str, bob: str) -> list[DomainEvent]:
    return [
        stamped(events.UserRegistered(user_id=ann, email="a@x.io", handle="ann"), "e1"),
        stamped(events.UserRegistered(user_id=bob, email="b@x.io", handle="bob"), "e2"),
        stamped(events.QuestionPosted(question_id="q1", author_id=bob, title="Why?"), "e3"),
        stamped(events.AnswerSubmitted(answer_id="a1", question_id="q1", author_id=ann,
                                       question_author_id=bob), "e4"),
        stamped(events.AnswerAccepted(answer_id="a1", question_id="q1", answer_author_id=ann,
                                      question_author_id=bob), "e5"),
        stamped(events.ContentVoted(target_type="answer", target_id="a1", voter_id=bob,
                                    author_id=ann, value=1), "e6"),
    ]


async def relay_all(node: Node) -> None:
    assert node.store is not None
    relay = OutboxRelay(node.store, event_router(node.system, timeout=10))
    with trio.fail_after(30):
        while await relay.relay_once():
            pass


async def boards_settle(nodes: list[Node], expected: list[dict[str, Any]]) -> None:
    """Board updates are tells across nodes: wait until every board reads ``expected``."""
    with trio.fail_after(20):
        for board in ("global", f"weekly:{iso_week(SUNDAY)}"):
            for node in nodes:
                ref = node.system.ref("leaderboard", board)
                while True:
                    if await ref.ask(Top()) == expected:
                        break
                    await trio.sleep(0.05)


async def test_the_game_loop_on_two_nodes(redis_server: RedisServer, tmp_path: Path) -> None:
    async with two_nodes(redis_server.url, tmp_path) as (n1, n2):
        ann, bob = _homed_on(n1, "n2")
        pubsub = n2.system.extensions["pubsub"]
        with pubsub.subscribe(notifications_topic(ann)) as notes:
            await pubsub.wait_synced()
            assert n1.store is not None
            async with n1.store.unit() as unit:
                for evt in the_story(ann, bob):
                    unit.add_event(evt)
            await relay_all(n1)
            expected = [{"rank": 1, "user_id": ann, "score": 140},
                        {"rank": 2, "user_id": bob, "score": 85}]
            await boards_settle([n1, n2], expected)
            kinds = []
            with trio.fail_after(10):
                while kinds.count("gamification.xp.earned") < 7:
                    kinds.append((await notes.receive())["event_type"])
                while "gamification.level.up" not in kinds:
                    kinds.append((await notes.receive())["event_type"])
        # the activations live where the placement put them, one per user in the cluster
        assert ann in n1.system.pools["user"].cells and ann not in n2.system.pools["user"].cells
        assert bob in n2.system.pools["user"].cells and bob not in n1.system.pools["user"].cells
        for node in (n1, n2):
            profile = await node.system.ref("user", ann).ask(GetProfile())
            assert (profile["total_xp"], profile["current_level"]) == (140, 2)
            assert (await node.system.ref("user", bob).ask(GetProfile()))["total_xp"] == 85
        assert n2.store is not None
        level_up = (await n2.store.find(EVENTS, {"event_type": "gamification.level.up"})).items
        assert level_up[0]["correlation_id"] == "req-e5"

        # a relay that died before marking: every event is delivered again, nothing changes
        before = [await n2.system.ref("user", u).ask(GetProfile()) for u in (ann, bob)]
        emitted = await n1.store.count(EVENTS)
        await n1.store.update(EVENTS, {"published": True}, {"$set": {"published": False}})
        await relay_all(n2)
        await boards_settle([n1, n2], expected)
        after = [await n1.system.ref("user", u).ask(GetProfile()) for u in (ann, bob)]
        assert after == before
        assert await n1.store.count(EVENTS) == emitted
        assert await n1.store.count(EVENTS, {"published": False}) == 0
