"""``subscribe(..., on_ready=...)``: a subscription read without a task parked on it."""

from __future__ import annotations

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from tektree.cluster.pubsub import LocalPubSub, Subscription, SubscriptionDropped


async def test_on_ready_is_called_when_a_payload_lands_in_an_empty_queue() -> None:
    pubsub = LocalPubSub()
    ready: list[Subscription] = []
    sub = pubsub.subscribe("room:r1", max_queue=4, on_ready=ready.append)
    await pubsub.publish("room:r1", {"n": 1})
    await pubsub.publish("room:r1", {"n": 2})
    assert ready == [sub]  # once: the queue was not empty for the second
    assert [sub.receive_nowait(), sub.receive_nowait()] == [{"n": 1}, {"n": 2}]
    await pubsub.publish("room:r1", {"n": 3})
    assert ready == [sub, sub]  # emptied, then a new payload
    assert sub.receive_nowait() == {"n": 3}


async def test_a_parked_reader_is_woken_instead() -> None:
    pubsub = LocalPubSub()
    ready: list[Subscription] = []
    sub = pubsub.subscribe("room:r1", on_ready=ready.append)
    async with trio.open_nursery() as nursery:
        got: list[object] = []

        async def read() -> None:
            got.append(await sub.receive())

        nursery.start_soon(read)
        await wait_all_tasks_blocked()
        await pubsub.publish("room:r1", "hello")
    assert (got, ready) == (["hello"], [])


async def test_on_ready_hears_of_the_drop() -> None:
    pubsub = LocalPubSub()
    ready: list[str | None] = []
    sub = pubsub.subscribe("room:r1", max_queue=1,
                           on_ready=lambda s: ready.append(s.dropped_reason))
    other = pubsub.subscribe("room:r1", max_queue=8)
    for n in range(3):
        await pubsub.publish("room:r1", n)
    assert ready[0] is None and ready[1] is not None and "full" in ready[1]
    assert len(ready) == 2
    with pytest.raises(SubscriptionDropped) as dropped:
        sub.receive_nowait()
    assert dropped.value.topic == "room:r1"
    assert [other.receive_nowait() for _ in range(3)] == [0, 1, 2]
