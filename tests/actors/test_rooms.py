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
from tektree import ActorFailed, ActorRef, Node
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


FLUSH = 0.05  # the default presence_flush_seconds


@asynccontextmanager
async def watched_room(name: str, **options: Any) -> AsyncIterator[tuple[Node, ActorRef, RoomFeed]]:
    """A node, a ref to its room ``name``, and a feed reading that room as member "watcher"."""
    async with room_node(**options) as node:
        with RoomFeed(pubsub_of(node), name, "watcher") as feed:
            yield node, node.system.ref("room", name), feed


def changes(frames: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (change, member id) entries of the ``presence.changes`` frames, in order."""
    return [(c["change"], c["member_id"]) for f in frames if f["type"] == "presence.changes"
            for c in f["changes"]]


async def next_frame(feed: RoomFeed) -> dict[str, Any]:
    with trio.fail_after(5):
        return await feed.receive()


async def test_join_leave_and_members_with_presence_frames(
        autojump_clock: trio.abc.Clock) -> None:
    async with watched_room("collaboration:doc1") as (_node, room, feed):
        start = trio.current_time()
        joined = await room.ask(Join(member_id="ann", info={"page": "/q/1"}))
        assert (joined["members"], joined["seq"]) == (1, 0)  # its frame is still to come
        await room.ask(Join(member_id="bob", info={"page": "/q/2"}))
        await room.ask(Join(member_id="ann", info={"page": "/q/3"}))  # moved: an update
        members = await room.ask(Members())
        assert [(m["member_id"], m["info"]) for m in members] == [
            ("ann", {"page": "/q/3"}), ("bob", {"page": "/q/2"})]
        assert await room.ask(Leave(member_id="ann")) is True
        assert await room.ask(Leave(member_id="ann")) is False
        assert drain(feed) == []  # nothing yet: the changes wait for the window's end
        frame = await next_frame(feed)
        assert trio.current_time() - start == pytest.approx(FLUSH)
        assert drain(feed) == []
        assert (frame["seq"], frame["type"]) == (1, "presence.changes")
        assert frame["changes"] == [
            {"change": "joined", "member_id": "ann", "info": {"page": "/q/1"}},
            {"change": "joined", "member_id": "bob", "info": {"page": "/q/2"}},
            {"change": "updated", "member_id": "ann", "info": {"page": "/q/3"}},
            {"change": "left", "member_id": "ann"}]
        assert [m["member_id"] for m in await room.ask(Members())] == ["bob"]


async def test_a_join_storm_costs_one_frame_per_window(autojump_clock: trio.abc.Clock) -> None:
    async with watched_room("presence") as (_node, room, feed):
        for window in range(3):
            async with trio.open_nursery() as nursery:  # 100 joins at once, per window
                for n in range(100):
                    nursery.start_soon(room.ask, Join(member_id=f"m{window}-{n}"))
            frame = await next_frame(feed)
            assert frame["seq"] == window + 1
            assert sorted(member for _, member in changes([frame])) == sorted(
                f"m{window}-{n}" for n in range(100))
        assert drain(feed) == [] and feed.gaps == 0
        assert len(await room.ask(Members())) == 300


async def test_a_full_batch_goes_out_at_once(autojump_clock: trio.abc.Clock) -> None:
    async with watched_room("presence", presence_max_batch=3) as (_node, room, feed):
        start = trio.current_time()
        replies = [await room.ask(Join(member_id=f"m{n}")) for n in range(7)]
        full = drain(feed)  # no time passed: only the full batches are out
        assert trio.current_time() == start
        assert [r["seq"] for r in replies] == [0, 0, 1, 1, 1, 2, 2]
        assert [(f["seq"], len(f["changes"])) for f in full] == [(1, 3), (2, 3)]
        rest = await next_frame(feed)
        assert (rest["seq"], changes([rest])) == (3, [("joined", "m6")])
        assert trio.current_time() - start == pytest.approx(FLUSH)


async def test_the_window_stretches_with_the_room(autojump_clock: trio.abc.Clock) -> None:
    async with watched_room("presence", presence_fanout_per_second=100) as (_, room, feed):
        async with trio.open_nursery() as nursery:
            for n in range(30):
                nursery.start_soon(room.ask, Join(member_id=f"m{n}"))
        start = trio.current_time()
        first = await next_frame(feed)  # armed with 1 member: the shortest window
        assert len(first["changes"]) == 30
        assert trio.current_time() - start <= FLUSH
        start = trio.current_time()
        await room.ask(Leave(member_id="m0"))  # 29 members: 29 / 100 s
        left = await next_frame(feed)
        assert trio.current_time() - start == pytest.approx(0.29)
        async with trio.open_nursery() as nursery:
            for n in range(30, 300):
                nursery.start_soon(room.ask, Join(member_id=f"m{n}"))
        assert len(changes([await next_frame(feed)])) == 270
        start = trio.current_time()
        await room.ask(Leave(member_id="m1"))  # 298 / 100 s, but at most 1 s
        last = await next_frame(feed)
        assert trio.current_time() - start == pytest.approx(1.0)
        assert (changes([left]), changes([last])) == ([("left", "m0")], [("left", "m1")])


async def test_a_broadcast_is_not_delayed_and_follows_the_changes_before_it(
        autojump_clock: trio.abc.Clock) -> None:
    async with watched_room("collaboration:doc2") as (_node, room, feed):
        start = trio.current_time()
        await room.ask(Join(member_id="ann"))
        assert await room.ask(Broadcast(payload="edit 1")) == 2
        assert await room.ask(Broadcast(payload="edit 2")) == 3
        frames = drain(feed)
        assert trio.current_time() == start  # out in the ask's own turn
        assert [(f["seq"], f["type"]) for f in frames] == [
            (1, "presence.changes"), (2, "message"), (3, "message")]
        assert changes(frames) == [("joined", "ann")]
        await room.ask(Leave(member_id="ann"))
        left = await next_frame(feed)
        assert (left["seq"], changes([left])) == (4, [("left", "ann")])
        assert feed.gaps == 0


async def test_a_passivating_room_publishes_its_waiting_changes(
        autojump_clock: trio.abc.Clock) -> None:
    async with watched_room("presence") as (node, room, feed):
        start = trio.current_time()
        await room.ask(Join(member_id="ann"))
        await node.system.passivate_all()
        assert changes(drain(feed)) == [("joined", "ann")]
        assert trio.current_time() == start  # sent on the way out, not lost with the timer


async def test_with_no_window_each_change_is_its_own_frame() -> None:
    async with watched_room("presence", presence_flush_seconds=0) as (_node, room, feed):
        assert (await room.ask(Join(member_id="ann")))["seq"] == 1
        await room.ask(Join(member_id="bob"))
        await room.ask(Leave(member_id="ann"))
        frames = drain(feed)
        assert [(f["seq"], len(f["changes"])) for f in frames] == [(1, 1), (2, 1), (3, 1)]
        assert changes(frames) == [("joined", "ann"), ("joined", "bob"), ("left", "ann")]


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("presence_flush_seconds", -1, "presence_flush_seconds must be >= 0"),
    ("presence_flush_seconds", "fast", "presence_flush_seconds must be >= 0"),
    ("presence_max_batch", 0, "presence_max_batch must be an int >= 1"),
    ("presence_max_batch", 2.5, "presence_max_batch must be an int >= 1"),
    ("presence_fanout_per_second", 0, "presence_fanout_per_second must be > 0"),
    ("presence_batch", 5, "option 'presence_batch' of kind 'room' is unknown"),
])
async def test_bad_room_options_are_named(option: str, value: Any, expected: str) -> None:
    async with room_node(**{option: value}) as node:
        with pytest.raises(ActorFailed, match=expected):
            await node.system.ref("room", "presence").ask(Members())


async def test_members_without_heartbeats_expire(autojump_clock: trio.abc.Clock) -> None:
    async with watched_room("presence") as (node, room, feed):
        await room.ask(Join(member_id="ann", info={"where": "home"}))
        await room.ask(Join(member_id="bob", info={"where": "q1"}))
        for _ in range(3):  # ann keeps beating for 24 s, bob stays silent
            await trio.sleep(TIMEOUT * 0.8)
            assert await room.ask(Heartbeat(member_id="ann")) == {"known": True}
        assert [m["member_id"] for m in await room.ask(Members())] == ["ann"]
        await trio.sleep(TIMEOUT + 1)
        assert await room.ask(Members()) == []
        assert await room.ask(Heartbeat(member_id="ann")) == {"known": False}
        frames = drain(feed)
        assert [changes([f]) for f in frames] == [
            [("joined", "ann"), ("joined", "bob")], [("expired", "bob")], [("expired", "ann")]]
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
