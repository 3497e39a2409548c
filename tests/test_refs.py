"""tell / ask: replies, failures, timeouts, backpressure, cancellation."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from kit import Add, Boom, Counter, Gate, Get, NotHandled, Saved, Slow
from tektree import (
    Actor,
    ActorFailed,
    ActorId,
    AskTimeout,
    CodecError,
    MailboxFull,
    TekTreeError,
    UnhandledMessage,
    UnknownActorKind,
    handler,
    message,
)
from tektree.testing import open_test_node


async def test_tell_then_ask_sees_every_tell_in_order() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c1")
        for _ in range(100):
            await ref.tell(Add(amount=1))
        assert await ref.ask(Get()) == 100
        assert await ref.ask(Add(amount=5)) == 105


async def test_ask_to_a_crashing_actor_raises_actor_failed_with_origin() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c1")
        await ref.ask(Add(amount=3))
        with pytest.raises(ActorFailed) as info:
            await ref.ask(Boom(text="kaput"))
        failed = info.value
        assert failed.actor_id == ActorId("counter", "c1")
        assert failed.error_type == "ValueError"
        assert failed.error_message == "kaput"
        assert "raise ValueError(msg.text)" in failed.traceback_text
        assert failed.node == "test"
        # The supervisor restarted the activation: it serves again, state reloaded.
        assert await ref.ask(Get()) == 0
        assert node.system.pools["counter"].restarts_total == 1


async def test_crash_in_mailbox_path_fails_only_that_ask_and_keeps_queued_messages() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c1")
        await ref.ask(Add(amount=1))  # active
        Gate.reset()
        results: dict[str, object] = {}

        async def ask(name: str, msg: object) -> None:
            try:
                results[name] = await ref.ask(msg)
            except ActorFailed as exc:
                results[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "slow", Slow(label="x"))
            await Gate.entered.wait()
            # Queue behind the slow turn: a crash, then an add that must survive it.
            nursery.start_soon(ask, "boom", Boom())
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ask, "add", Add(amount=10))
            await trio.testing.wait_all_tasks_blocked()
            Gate.event.set()
        assert results["slow"] == "done x"
        assert isinstance(results["boom"], ActorFailed)
        assert results["add"] == 10  # restarted from the saved state (nothing saved: 0) + 10


async def test_ask_timeout_always_ends_and_late_reply_is_dropped() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c1")
        with trio.fail_after(5):
            with pytest.raises(AskTimeout) as info:
                await ref.ask(Slow(label="late"), timeout=0.05)
        assert info.value.actor_id == ActorId("counter", "c1")
        assert info.value.message_type == "Slow"
        Gate.event.set()
        with trio.fail_after(5):
            await node.system.wait_quiescent()
        assert await ref.ask(Add(amount=1)) == 1


async def test_ask_timeout_with_autojump_clock(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c1")
        start = trio.current_time()
        with pytest.raises(AskTimeout):
            await ref.ask(Slow(), timeout=30)
        assert 30 <= trio.current_time() - start < 31
        Gate.event.set()


async def test_unhandled_message_is_refused_at_send_with_a_clear_error() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c1")
        with pytest.raises(UnhandledMessage) as info:
            await ref.tell(NotHandled())
        assert info.value.actor_id == ActorId("counter", "c1")
        assert "NotHandled" in str(info.value)
        assert "Add" in str(info.value) and "@handler" in str(info.value)
        with pytest.raises(UnknownActorKind) as kind_info:
            await node.system.ref("nosuch", "x").ask(Get())
        assert kind_info.value.kind == "nosuch"
        assert kind_info.value.known == ("counter",)


async def test_unserializable_message_is_caught_in_tests() -> None:
    @message("test.refs.carry")
    class Carry:
        payload: object

    class Taker(Actor):
        @handler(Carry)
        def take(self, msg: Carry) -> None:
            return None

    async with open_test_node(actors={"taker": Taker}) as node:
        with pytest.raises(CodecError) as info:
            await node.system.ref("taker", "t").tell(Carry(payload={1, 2}))
        assert "payload" in str(info.value)


async def test_an_actor_asking_itself_is_an_error_not_a_hang() -> None:
    @message("test.refs.self")
    class AskSelf:
        pass

    class Narcissus(Actor):
        @handler(AskSelf)
        async def ask_self(self, msg: AskSelf) -> str:
            try:
                await self.ctx.self_ref.ask(AskSelf(), timeout=1)
            except TekTreeError as exc:
                return str(exc)
            return "no error"

    async with open_test_node(actors={"n": Narcissus}) as node:
        with trio.fail_after(5):
            text = await node.system.ref("n", "1").ask(AskSelf())
        assert "asked itself" in text


@message("test.refs.hold")
class Hold:
    n: int


class Holder(Actor):
    """Blocks in its first message until the gate opens; records what it handled."""

    seen: list[int]

    async def on_activate(self) -> None:
        self.seen = []

    @handler
    async def hold(self, msg: Hold) -> None:
        if msg.n == 0:
            Gate.entered.set()
            await Gate.event.wait()
        self.seen.append(msg.n)
        Saved.states[f"seen{msg.n}"] = 1


async def test_full_mailbox_pushes_back_on_the_sender() -> None:
    async with open_test_node(
        actors={"holder": Holder}, pool_options={"mailbox_capacity": 4}
    ) as node:
        ref = node.system.ref("holder", "h")
        pool = node.system.pools["holder"]
        await ref.tell(Hold(n=0))
        await Gate.entered.wait()
        for n in range(1, 5):
            await ref.tell(Hold(n=n))
        assert pool.cells["h"].mailbox is not None and len(pool.cells["h"].mailbox) == 4
        blocked_sent = trio.Event()

        async def sender() -> None:
            await ref.tell(Hold(n=5))
            blocked_sent.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked()
            assert not blocked_sent.is_set()  # waiting for room: backpressure
            with pytest.raises(MailboxFull):
                ref.tell_nowait(Hold(n=99))
            Gate.event.set()
            with trio.fail_after(5):
                await blocked_sent.wait()
        with trio.fail_after(5):
            await node.system.wait_quiescent()
        assert sorted(k for k in Saved.states if k.startswith("seen")) == [
            f"seen{n}" for n in range(6)
        ]
        assert "seen99" not in Saved.states


async def test_cancelled_sender_leaves_the_mailbox_consistent() -> None:
    async with open_test_node(
        actors={"holder": Holder}, pool_options={"mailbox_capacity": 2}
    ) as node:
        ref = node.system.ref("holder", "h")
        pool = node.system.pools["holder"]
        await ref.tell(Hold(n=0))
        await Gate.entered.wait()
        await ref.tell(Hold(n=1))
        await ref.tell(Hold(n=2))
        queued_before = pool.queued
        with trio.move_on_after(0.05) as scope:
            await ref.tell(Hold(n=3))  # blocks: mailbox full
        assert scope.cancelled_caught
        assert pool.queued == queued_before == 2
        cell = pool.cells["h"]
        assert cell.waiting_senders is not None and len(cell.waiting_senders) == 0
        Gate.event.set()
        with trio.fail_after(5):
            await node.system.wait_quiescent()
        assert "seen3" not in Saved.states  # the cancelled send was never accepted
        assert {"seen0", "seen1", "seen2"} <= set(Saved.states)
        assert pool.queued == 0


async def test_cancelled_asker_does_not_lose_its_accepted_message() -> None:
    async with open_test_node(actors={"holder": Holder}) as node:
        ref = node.system.ref("holder", "h")
        await ref.tell(Hold(n=0))
        await Gate.entered.wait()
        with trio.move_on_after(0.05):
            await ref.ask(Hold(n=7))
        Gate.event.set()
        with trio.fail_after(5):
            await node.system.wait_quiescent()
        assert "seen7" in Saved.states  # accepted before the asker gave up: still handled


@attrs.frozen
class _Unregistered:
    x: int


async def test_handler_for_unregistered_class_is_rejected_at_build() -> None:
    class Bad(Actor):
        @handler
        def take(self, msg: _Unregistered) -> None:
            return None

    with pytest.raises(TypeError, match="not a registered message class"):
        Bad.handlers()


async def test_a_cancelled_quiescence_wait_is_no_longer_counted() -> None:
    async with open_test_node(actors={"holder": Holder}) as node:
        system = node.system
        await system.ref("holder", "h").tell(Hold(n=0))
        await Gate.entered.wait()
        with trio.move_on_after(0.05):
            await system.wait_quiescent()  # a turn holds: it parks, then is cancelled
        assert system.quiet_waiting == 0
        Gate.event.set()
        with trio.fail_after(5):
            await system.wait_quiescent()
        assert system.quiet_waiting == 0 and "seen0" in Saved.states
