"""Topics: local fan-out, two Redis-backed nodes in one process, slow readers, Redis restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from tektree import CodecError
from tektree._codec import decode_value
from tektree.cluster import open_redis_link
from tektree.cluster import pubsub as pubsub_module
from tektree.cluster.pubsub import (
    FRAME_VERSION,
    LocalPubSub,
    PublishTimeout,
    PubSub,
    PubSubStats,
    RedisPubSub,
    Subscription,
    SubscriptionDropped,
)
from tektree.testing.redis import RedisServer

DEADLINE = 15.0


@pytest.fixture
def encodes(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every value the pub/sub module encodes (it must be one frame per publish)."""
    seen: list[object] = []
    real: Callable[[object], bytes] = pubsub_module.encode_value  # type: ignore[attr-defined]

    def counting(value: object) -> bytes:
        seen.append(value)
        return real(value)

    monkeypatch.setattr(pubsub_module, "encode_value", counting)
    return seen


@asynccontextmanager
async def running_nodes(url: str, *names: str, **options: Any) -> AsyncIterator[list[RedisPubSub]]:
    """One RedisPubSub per name, each over its own RedisLink, running in a nursery."""
    async with AsyncExitStack() as stack:
        nodes = []
        for name in names:
            link = await stack.enter_async_context(open_redis_link(url, prefix="tt"))
            nodes.append(RedisPubSub(link, node=name, **options))
        async with trio.open_nursery() as nursery:
            for node in nodes:
                await nursery.start(node.run)
            yield nodes
            nursery.cancel_scope.cancel()


async def synced(*nodes: PubSub) -> None:
    with trio.fail_after(DEADLINE):
        for node in nodes:
            await node.wait_synced()


async def receive(sub: Subscription) -> Any:
    with trio.fail_after(DEADLINE):
        return await sub.receive()


def drain(sub: Subscription) -> list[Any]:
    received = []
    while True:
        try:
            received.append(sub.receive_nowait())
        except trio.WouldBlock:
            return received


# -- embedded mode ----------------------------------------------------------------------------


async def test_local_fan_out_to_1000_subscribers_encodes_once(encodes: list[object]) -> None:
    pubsub = LocalPubSub()
    subs = [pubsub.subscribe("leaderboard:global") for _ in range(1000)]
    other = pubsub.subscribe("room:other")
    payload = {"rank": 1, "user": "usr_abc", "scores": (10, 20)}

    await pubsub.publish("leaderboard:global", payload)

    assert len(encodes) == 1
    got = [sub.receive_nowait() for sub in subs]
    assert got[0] == {"rank": 1, "user": "usr_abc", "scores": [10, 20]}  # as remote nodes see it
    assert all(value is got[0] for value in got)  # decoded once, shared by all subscribers
    assert got[0] is not payload
    assert other.pending == 0
    assert pubsub.stats() == PubSubStats(
        topics=2, subscribers=1001, published=1, delivered=1000, dropped=0
    )


async def test_local_publish_to_a_topic_without_subscribers_encodes_nothing(
    encodes: list[object],
) -> None:
    pubsub = LocalPubSub()
    other = pubsub.subscribe("room:other")
    await pubsub.publish("notifications:offline", {"xp": 5})
    await pubsub.publish("notifications:offline", {1, 2})  # no frame, so no codec check
    assert encodes == [] and other.pending == 0
    assert pubsub.stats() == PubSubStats(
        topics=1, subscribers=1, published=2, delivered=0, dropped=0
    )
    await pubsub.publish("room:other", "hi")
    assert len(encodes) == 1 and drain(other) == ["hi"]


async def test_a_topic_going_from_one_subscriber_to_three_and_back_delivers_to_each() -> None:
    pubsub = LocalPubSub()
    first = pubsub.subscribe("t")
    await pubsub.publish("t", 1)
    second, third = pubsub.subscribe("t"), pubsub.subscribe("t")
    await pubsub.publish("t", 2)
    assert drain(second) == [2]
    second.close()
    await pubsub.publish("t", 3)
    assert drain(first) == [1, 2, 3]
    first.close()
    await pubsub.publish("t", 4)
    assert pubsub.stats() == PubSubStats(
        topics=1, subscribers=1, published=4, delivered=7, dropped=0)
    assert drain(third) == [2, 3, 4]
    assert pubsub.may_reach("t") and not pubsub.may_reach("other")
    third.close()
    assert (pubsub.stats().topics, pubsub.stats().subscribers) == (0, 0)
    assert not pubsub.may_reach("t")
    again = pubsub.subscribe("t")
    await pubsub.publish("t", 5)
    assert (again.pending, drain(again), again.pending) == (1, [5], 0)
    await pubsub.publish("t", 6)  # a drained queue fills again
    assert drain(again) == [6]


async def test_iteration_ends_when_the_subscription_closes() -> None:
    pubsub = LocalPubSub()
    received: list[Any] = []
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            sub = pubsub.subscribe("room:r1")

            async def reader() -> None:
                with sub:
                    async for payload in sub:
                        received.append(payload)
                        if payload == "bye":
                            break

            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            for payload in ["hi", 2, "bye"]:
                await pubsub.publish("room:r1", payload)
    assert received == ["hi", 2, "bye"]
    assert sub.closed and pubsub.stats().topics == 0 and pubsub.stats().subscribers == 0

    other = pubsub.subscribe("room:r1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: drain_to_end(other, received))
        await trio.testing.wait_all_tasks_blocked()
        other.close()  # from another task: the reader's loop ends cleanly
    with pytest.raises(trio.EndOfChannel):
        other.receive_nowait()


async def drain_to_end(sub: Subscription, into: list[Any]) -> None:
    async for payload in sub:
        into.append(payload)


async def test_slow_local_subscriber_is_dropped_and_the_fast_one_gets_everything() -> None:
    pubsub = LocalPubSub()
    slow = pubsub.subscribe("room:r1", max_queue=4)
    fast = pubsub.subscribe("room:r1", max_queue=4)
    received: list[int] = []
    for n in range(10):
        await pubsub.publish("room:r1", n)
        received.extend(drain(fast))
    assert received == list(range(10))
    assert slow.dropped_reason is not None and "queue of 4 payloads was full" in slow.dropped_reason
    with pytest.raises(SubscriptionDropped) as caught:
        await receive(slow)
    assert caught.value.topic == "room:r1" and caught.value.reason == slow.dropped_reason
    stats = pubsub.stats()
    assert (stats.subscribers, stats.dropped, stats.delivered) == (1, 1, 14)


async def test_cancelled_receive_takes_nothing() -> None:
    pubsub = LocalPubSub()
    sub = pubsub.subscribe("t")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sub.receive)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()  # cancels the parked receive
    await pubsub.publish("t", "x")
    with trio.CancelScope() as scope:
        scope.cancel()
        await sub.receive()
    assert sub.pending == 1
    assert await receive(sub) == "x"


async def test_bad_arguments_are_refused_with_the_rule(encodes: list[object]) -> None:
    pubsub = LocalPubSub()
    with pytest.raises(ValueError, match="non-empty str"):
        pubsub.subscribe("")
    with pytest.raises(ValueError, match="max_queue must be an int >= 1"):
        pubsub.subscribe("t", max_queue=0)
    sub = pubsub.subscribe("t")
    with pytest.raises(CodecError, match=r"cannot publish to topic 't'.*set"):
        await pubsub.publish("t", {1, 2})
    with pytest.raises(CodecError, match="above the 1048576-byte limit"):
        await pubsub.publish("t", b"x" * (1 << 20))
    assert sub.pending == 0 and pubsub.stats().published == 0
    with pytest.raises(ValueError, match="node must be a non-empty str"):
        LocalPubSub(node="")


# -- cluster mode -----------------------------------------------------------------------------


async def test_publish_reaches_each_subscriber_on_both_nodes_exactly_once(
    redis_server: RedisServer, encodes: list[object]
) -> None:
    async with running_nodes(redis_server.url, "a", "b") as (a, b):
        on_a = [a.subscribe("room:r1") for _ in range(2)]
        on_b = [b.subscribe("room:r1") for _ in range(3)]
        await synced(a, b)
        assert a.ready and b.ready

        await a.publish("room:r1", {"n": 1})
        assert len(encodes) == 1
        assert [sub.receive_nowait() for sub in on_a] == [{"n": 1}] * 2  # in process, no Redis
        assert [await receive(sub) for sub in on_b] == [{"n": 1}] * 3
        # Redis pushes A's echo of n=1 to A before B's n=2, so a missed suppression shows here.
        await b.publish("room:r1", {"n": 2})
        for sub in on_a + on_b:
            assert await receive(sub) == {"n": 2}
            assert drain(sub) == []
        assert a.stats().received == 1 and b.stats().received == 1
        assert a.stats().delivered == 4 and b.stats().delivered == 6


async def test_the_wire_frame_carries_node_and_sequence(redis_server: RedisServer) -> None:
    async with (
        running_nodes(redis_server.url, "a") as (a,),
        a.link.client.pubsub(channels=["tt:topic:t"], ignore_subscribe_messages=True) as raw,
    ):
        for n in range(2):
            await a.publish("t", ["x", n])
        frames: list[Any] = []
        with trio.fail_after(DEADLINE):
            while len(frames) < 2:
                message = await raw.get_message()
                if message is not None:
                    frames.append(decode_value(message["data"]))  # type: ignore[arg-type]
    assert frames == [[FRAME_VERSION, "a", 1, ["x", 0]], [FRAME_VERSION, "a", 2, ["x", 1]]]


async def test_redis_subscription_follows_the_first_and_last_local_subscriber(
    redis_server: RedisServer,
) -> None:
    async with running_nodes(redis_server.url, "a") as (a,):
        raw = a.link.client

        async def channels() -> set[bytes]:
            await synced(a)
            return await raw.pubsub_channels()

        assert await channels() == set()
        assert a.may_reach("room:r1")  # another node may subscribe: never known here
        first = a.subscribe("room:r1")
        second = a.subscribe("room:r1")
        a.subscribe("room:r2").close()  # in and out before the reader catches up
        assert await channels() == {b"tt:topic:room:r1"}
        first.close()
        assert await channels() == {b"tt:topic:room:r1"}
        second.close()
        assert await channels() == set()
        again = a.subscribe("room:r1")
        assert await channels() == {b"tt:topic:room:r1"}
        again.close()
        assert await channels() == set()


async def test_slow_remote_subscriber_is_dropped_and_the_fast_one_gets_everything(
    redis_server: RedisServer,
) -> None:
    async with running_nodes(redis_server.url, "a", "b") as (a, b):
        slow = b.subscribe("board", max_queue=5)
        fast = b.subscribe("board", max_queue=5)
        received: list[int] = []

        async def read_fast() -> None:
            async for n in fast:
                received.append(n)
                if n == 49:
                    return

        await synced(b)
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_fast)
                for n in range(50):
                    await a.publish("board", n)
        assert received == list(range(50))
        with pytest.raises(SubscriptionDropped, match="queue of 5 payloads was full"):
            await receive(slow)
        assert b.stats().dropped == 1 and b.stats().subscribers == 1


async def test_bad_frames_are_counted_and_skipped(redis_server: RedisServer) -> None:
    async with running_nodes(redis_server.url, "a", "b") as (a, b):
        sub = b.subscribe("t")
        await synced(b)
        await a.link.call(lambda c: c.publish("tt:topic:t", b"\xc1 not msgpack"))
        await a.link.call(lambda c: c.publish("tt:topic:t", b"\x93\x02\xa1a\x01"))  # [2, "a", 1]
        await a.publish("t", "ok")
        assert await receive(sub) == "ok"
        assert b.stats().bad_frames == 2 and b.stats().received == 1


async def test_redis_restart_resubscribes_existing_subscribers(
    redis_server: RedisServer, tektree_logs: list[Any]
) -> None:
    async with running_nodes(redis_server.url, "a", "b") as (a, b):
        on_a = a.subscribe("room:r1")
        on_b = b.subscribe("room:r1")
        await synced(a, b)

        await redis_server.stop()
        await trio.testing.wait_all_tasks_blocked()
        assert not a.ready and not b.ready
        with pytest.raises(PublishTimeout, match=r"'room:r1' did not reach Redis within 0\.2 s"):
            await a.publish("room:r1", "lost", timeout=0.2)
        assert await receive(on_a) == "lost"  # local delivery does not need Redis
        late = b.subscribe("room:r2")  # subscribed while Redis is down

        await redis_server.start()  # same port, empty server: no subscriptions left
        await synced(a, b)
        assert a.ready and b.ready
        assert b.stats().reconnects == 1 and a.stats().publish_timeouts == 1
        await a.publish("room:r1", "after")
        await a.publish("room:r2", "late")
        assert await receive(on_b) == "after"  # "lost" was not replayed
        assert await receive(late) == "late"
        assert drain(on_a) == ["after"]
    events = [entry["event"] for entry in tektree_logs if entry.get("node") == "b"]
    assert events.count("pubsub connection lost; reconnecting with backoff") == 1


async def test_a_node_starts_while_redis_is_down(redis_server: RedisServer) -> None:
    await redis_server.stop()
    async with running_nodes(redis_server.url, "a") as (a,):
        assert not a.ready  # started anyway: Redis being down does not hold the node
        sub = a.subscribe("t")
        await redis_server.start()
        await synced(a)
        assert a.ready and a.stats().reconnects == 0
        await a.publish("t", 1)
        assert await receive(sub) == 1


async def test_run_twice_is_refused(redis_server: RedisServer) -> None:
    async with running_nodes(redis_server.url, "a") as (a,):
        with pytest.raises(RuntimeError, match="already running for node 'a'"):
            await a.run()
