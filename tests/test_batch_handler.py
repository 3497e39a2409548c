"""Batch handlers: the messages queued in a row go to one call, each ask gets its own reply."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tektree import Actor, ActorFailed, batch_handler, handler, message
from tektree.testing import open_test_node


@message("test.batch.put")
class Put:
    value: int


@message("test.batch.read")
class Read:
    pass


class Summer(Actor):
    """Sums ``Put``s in batches; ``gate`` holds the first batch so that the others queue."""

    calls: list[list[int]] = []
    gate: trio.Event | None = None

    async def on_activate(self) -> None:
        self.total = 0

    @batch_handler(Put)
    async def put(self, msgs: list[Put]) -> list[int]:
        Summer.calls.append([m.value for m in msgs])
        if Summer.gate is not None:
            await Summer.gate.wait()
        if any(m.value < 0 for m in msgs):
            raise ValueError("negative value")
        out = []
        for m in msgs:
            self.total += m.value
            out.append(self.total)
        return out

    @handler
    def read(self, msg: Read) -> int:
        return self.total


class WrongLength(Summer):
    @batch_handler(Put)
    async def put(self, msgs: list[Put]) -> list[int]:
        if Summer.gate is not None:
            await Summer.gate.wait()
        return [0]


async def _queue_behind_a_held_batch(ref: object, values: list[int]) -> dict[int, object]:
    """Ask ``Put(v)`` for each value while the first is held, so the rest queue behind it."""
    replies: dict[int, object] = {}
    Summer.gate = trio.Event()

    async def ask(value: int) -> None:
        try:
            replies[value] = await ref.ask(Put(value=value))  # type: ignore[attr-defined]
        except (ActorFailed, TypeError) as exc:
            replies[value] = exc

    async with trio.open_nursery() as nursery:
        for value in values:
            nursery.start_soon(ask, value)
            await trio.testing.wait_all_tasks_blocked()
        Summer.gate.set()
    Summer.gate = None
    return replies


async def test_queued_messages_of_the_class_are_handled_in_one_call() -> None:
    Summer.calls = []
    async with open_test_node(actors={"sum": Summer}) as node:
        ref = node.system.ref("sum", "a")
        with trio.fail_after(10):
            replies = await _queue_behind_a_held_batch(ref, [1, 2, 3, 4])
            assert await ref.ask(Read()) == 10
    assert Summer.calls == [[1], [2, 3, 4]]  # the first alone, the three queued behind it
    assert replies == {1: 1, 2: 3, 3: 6, 4: 10}  # each ask its own reply, in order


async def test_a_run_stops_at_a_message_of_another_class() -> None:
    Summer.calls = []
    async with open_test_node(actors={"sum": Summer}) as node:
        ref = node.system.ref("sum", "a")
        Summer.gate = trio.Event()
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ref.ask, Put(value=1))
                await trio.testing.wait_all_tasks_blocked()
                await ref.tell(Put(value=2))
                await ref.tell(Read())
                await ref.tell(Put(value=3))
                Summer.gate.set()
            Summer.gate = None
            await node.system.wait_quiescent()
    assert Summer.calls == [[1], [2], [3]]


async def test_a_failing_batch_fails_every_ask_of_it_and_the_rest_is_kept() -> None:
    Summer.calls = []
    async with open_test_node(actors={"sum": Summer}) as node:
        ref = node.system.ref("sum", "a")
        with trio.fail_after(10):
            replies = await _queue_behind_a_held_batch(ref, [1, 2, -1, 3])
            assert replies[1] == 1
            for value in (2, -1, 3):
                failure = replies[value]
                assert isinstance(failure, ActorFailed)
                assert "negative value" in str(failure)
            # Restarted fresh after the crash: the failed batch changed nothing durable.
            assert await ref.ask(Put(value=5)) == 5


async def test_a_batch_handler_returning_the_wrong_count_fails_each_ask_by_name() -> None:
    async with open_test_node(actors={"wrong": WrongLength}) as node:
        ref = node.system.ref("wrong", "a")
        with trio.fail_after(10):
            assert await ref.ask(Put(value=1)) == 0  # one message, one reply: fine
            replies = await _queue_behind_a_held_batch(ref, [1, 2, 3])
    assert replies[1] == 0
    for value in (2, 3):
        failure = replies[value]
        assert isinstance(failure, TypeError)
        assert "must return a list of 2 replies" in str(failure)


def test_batch_handler_must_be_async_and_named_with_its_class() -> None:
    with pytest.raises(TypeError, match="must be an async def"):

        class Sync(Actor):
            @batch_handler(Put)
            def put(self, msgs: list[Put]) -> list[int]:
                return []

    with pytest.raises(TypeError, match="takes the message class"):
        batch_handler(Put(value=1))  # type: ignore[arg-type]
