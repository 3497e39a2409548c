"""``RoomActor`` and ``RoomFeed`` on an embedded node (in-process pub/sub), trio's clock jumped."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from actors.rooms import (
    Broadcast,
    Heartbeat,
    Join,
    Leave,
    Members,
    RoomActor,
    RoomFeed,
    check_room_name,
)
from tektree import ActorFailed, Node
from tektree.cluster.pubsub import PubSub, SubscriptionDropped
from tektree.testing import open_test_node, test_config

TIMEOUT = 10.0


@asynccontextmanager
async def room_node(**options: Any) -> AsyncIterator[Node]:
    config = test_config(
        services=[{"type": "service", "name": "cluster", "service": "cluster"},
                  {"type": "actors", "kind": "room", "actor": "actors.rooms:RoomActor",
                   "options": {"heartbeat_timeout_seconds": TIMEOUT, **options}}],
    )  # fmt: skip
    async with open_test_node(config, actors={"room": RoomActor}) as node:
        yield node


def pubsub_of(node: Node) -> PubSub:
    pubsub = node.system.extensions["pubsub"]
    return pubsub  # type: ignore[return-value]


def drain(feed: RoomFeed) -> list[dict[str, Any]]:
    frames = []
    while True:
        try:
            frames.append(feed.receive_nowait())
        except trio.WouldBlock:
            return frames


async def test_join_leave_and_members_with_presence_frames() -> None:
    async with room_node() as node:
        room = node.system.ref("room", "collaboration:doc1")
        with RoomFeed(pubsub_of(node), "collaboration:doc1", "watcher") as feed:
            assert (await room.ask(Join(member_id="ann", info={"page": "/q/1"})))["members"] == 1
            await room.ask(Join(member_id="bob", info={"page": "/q/2"}))
            await room.ask(Join(member_id="ann", info={"page": "/q/3"}))  # moved: an update
            members = await room.ask(Members())
            assert [(m["member_id"], m["info"]) for m in members] == [
                ("ann", {"page": "/q/3"}), ("bob", {"page": "/q/2"})]
            assert await room.ask(Leave(member_id="ann")) is True
            assert await room.ask(Leave(member_id="ann")) is False
            frames = drain(feed)
        assert [(f["seq"], f["type"], f.get("member_id")) for f in frames] == [
            (1, "presence.joined", "ann"), (2, "presence.joined", "bob"),
            (3, "presence.updated", "ann"), (4, "presence.left", "ann")]
        assert [m["member_id"] for m in await room.ask(Members())] == ["bob"]


async def test_members_without_heartbeats_expire(autojump_clock: trio.abc.Clock) -> None:
    async with room_node() as node:
        room = node.system.ref("room", "presence")
        with RoomFeed(pubsub_of(node), "presence", "watcher") as feed:
            await room.ask(Join(member_id="ann", info={"where": "home"}))
            await room.ask(Join(member_id="bob", info={"where": "q1"}))
            for _ in range(3):  # ann keeps beating for 24 s, bob stays silent
                await trio.sleep(TIMEOUT * 0.8)
                assert await room.ask(Heartbeat(member_id="ann")) == {"known": True}
            assert [m["member_id"] for m in await room.ask(Members())] == ["ann"]
            await trio.sleep(TIMEOUT + 1)
            assert await room.ask(Members()) == []
            assert await room.ask(Heartbeat(member_id="ann")) == {"known": False}
            expired = [f for f in drain(feed) if f["type"] == "presence.expired"]
        assert [f["member_ids"] for f in expired] == [["bob"], ["ann"]]
        assert node.system.timers.errors == 0


async def test_heartbeat_can_move_a_member(autojump_clock: trio.abc.Clock) -> None:
    async with room_node() as node:
        room = node.system.ref("room", "presence")
        await room.ask(Join(member_id="ann", info={"where": "home"}))
        await room.ask(Heartbeat(member_id="ann", info={"where": "q7"}))
        assert (await room.ask(Members()))[0]["info"] == {"where": "q7"}


async def test_broadcasts_arrive_in_order_with_sequence_numbers_and_exclusions() -> None:
    async with room_node() as node:
        room = node.system.ref("room", "leaderboard:global")
        pubsub = pubsub_of(node)
        with RoomFeed(pubsub, "leaderboard:global", "ann") as ann, \
                RoomFeed(pubsub, "leaderboard:global", "bob") as bob:
            for n in range(5):
                exclude = ("bob",) if n == 2 else ()
                await room.tell(Broadcast(payload={"n": n}, exclude=exclude))
            with trio.fail_after(5):
                await node.system.wait_quiescent()
            got_ann, got_bob = drain(ann), drain(bob)
        assert [(f["seq"], f["payload"]["n"]) for f in got_ann] == [(n + 1, n) for n in range(5)]
        assert [f["payload"]["n"] for f in got_bob] == [0, 1, 3, 4]
        assert len({f["epoch"] for f in got_ann}) == 1
        assert (ann.gaps, bob.gaps) == (0, 0)  # an excluded frame is not a gap


async def test_a_slow_member_is_dropped_and_the_room_carries_on() -> None:
    async with room_node() as node:
        room = node.system.ref("room", "notifications:ann")
        pubsub = pubsub_of(node)
        with RoomFeed(pubsub, "notifications:ann", "slow", max_queue=2) as slow, \
                RoomFeed(pubsub, "notifications:ann", "fast") as fast:
            with trio.fail_after(5):
                for n in range(5):  # never blocks, though "slow" reads nothing
                    assert await room.ask(Broadcast(payload=n)) == n + 1
            assert [f["payload"] for f in drain(fast)] == [0, 1, 2, 3, 4]
            with pytest.raises(SubscriptionDropped, match="slow subscriber"):
                slow.receive_nowait()  # its queue overflowed at the third frame: dropped
        assert pubsub.stats().dropped == 1


async def test_room_names_are_checked() -> None:
    assert check_room_name("collaboration:c1") == "collaboration:c1"
    with pytest.raises(ValueError, match="is not a room name"):
        check_room_name("notifications:")
    async with room_node() as node:
        with pytest.raises(ActorFailed, match="is not a room name"):
            await node.system.ref("room", "lobby").ask(Members())
