"""Virtual actors: activation on first message, single activation, passivation, timers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from kit import Add, Counter, Gate, Get, Saved, Tick
from tektree import Actor, ActorFailed, ActorId, handler, message
from tektree.testing import open_test_node


@message("test.virtual.count_activations")
class Ping:
    pass


class Once(Actor):
    """Counts its activations per key; a slow on_activate widens the race window."""

    activations: dict[str, int] = {}

    async def on_activate(self) -> None:
        Once.activations[self.ctx.id.key] = Once.activations.get(self.ctx.id.key, 0) + 1
        await trio.sleep(0.01)

    @handler(Ping)
    def ping(self, msg: Ping) -> int:
        return Once.activations[self.ctx.id.key]


async def test_burst_of_1000_concurrent_asks_activates_one_instance() -> None:
    Once.activations = {}
    async with open_test_node(actors={"once": Once}) as node:
        ref = node.system.ref("once", "fresh")
        answers: list[int] = []

        async def ask() -> None:
            answers.append(await ref.ask(Ping()))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(1000):
                    nursery.start_soon(ask)
        assert len(answers) == 1000
        assert set(answers) == {1}
        assert Once.activations == {"fresh": 1}
        assert node.system.pools["once"].activations == 1


async def test_idle_activation_is_passivated_with_state_saved(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_node(
        actors={"counter": Counter}, pool_options={"idle_timeout_seconds": 60.0}
    ) as node:
        ref = node.system.ref("counter", "u1")
        assert await ref.ask(Add(amount=7)) == 7
        pool = node.system.pools["counter"]
        assert "u1" in pool.cells
        await trio.sleep(30)
        assert "u1" in pool.cells  # not idle long enough
        await trio.sleep(40)
        assert "u1" not in pool.cells
        assert Saved.states["u1"] == 7
        assert Saved.log[-2:] == ["passivate u1", "stop u1"]
        # The next message reactivates it with the saved state.
        assert await ref.ask(Get()) == 7
        assert Saved.log.count("activate u1") == 2


async def test_activity_postpones_passivation(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_node(
        actors={"counter": Counter}, pool_options={"idle_timeout_seconds": 60.0}
    ) as node:
        ref = node.system.ref("counter", "u1")
        for _ in range(5):
            await ref.tell(Add(amount=1))
            await trio.sleep(50)
        assert "u1" in node.system.pools["counter"].cells
        assert Saved.log.count("activate u1") == 1
        await trio.sleep(61)
        assert "u1" not in node.system.pools["counter"].cells


async def test_idle_activations_hold_no_task_and_no_queue() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        for i in range(2000):
            await node.system.tell(ActorId("counter", f"u{i}"), Add(amount=1))
        with trio.fail_after(10):
            await node.system.wait_quiescent()
        pool = node.system.pools["counter"]
        assert len(pool.cells) == 2000
        assert all(cell.mailbox is None for cell in pool.cells.values())
        assert pool.statistics().workers <= 2
        tasks = _count_tasks(trio.lowlevel.current_root_task())
        assert tasks < 50, tasks  # 2000 activations, a handful of tasks


def _count_tasks(task: trio.lowlevel.Task) -> int:
    return 1 + sum(_count_tasks(t) for n in task.child_nurseries for t in n.child_tasks)


async def test_message_arriving_during_passivation_reactivates() -> None:
    @message("test.virtual.slowsave")
    class Save:
        pass

    class SlowSaver(Actor):
        n: int

        async def on_activate(self) -> None:
            self.n = Saved.states.get(self.ctx.id.key, 0)

        async def on_passivate(self) -> None:
            Gate.entered.set()
            await Gate.event.wait()
            Saved.states[self.ctx.id.key] = self.n

        @handler(Save)
        def save(self, msg: Save) -> int:
            self.n += 1
            self.ctx.passivate()
            return self.n

    async with open_test_node(actors={"s": SlowSaver}) as node:
        ref = node.system.ref("s", "k")
        assert await ref.ask(Save()) == 1
        with trio.fail_after(5):
            await Gate.entered.wait()  # passivating now
        result: list[int] = []

        async def second() -> None:
            result.append(await ref.ask(Save()))

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(second)
                await trio.testing.wait_all_tasks_blocked()
                assert not result
                Gate.event.set()
        assert result == [2]  # reactivated from the state saved by the first passivation


async def test_activation_failure_fails_waiting_asks_and_is_retried() -> None:
    @message("test.virtual.hello")
    class Hello:
        pass

    class Fragile(Actor):
        attempts = 0

        async def on_activate(self) -> None:
            Fragile.attempts += 1
            if Fragile.attempts == 1:
                raise ConnectionError("store unreachable")

        @handler(Hello)
        def hello(self, msg: Hello) -> str:
            return "hi"

    async with open_test_node(actors={"f": Fragile}) as node:
        ref = node.system.ref("f", "k")
        with pytest.raises(ActorFailed) as info:
            await ref.ask(Hello())
        assert info.value.error_type == "ConnectionError"
        assert await ref.ask(Hello()) == "hi"
        assert Fragile.attempts == 2


async def test_one_shot_and_periodic_timers(autojump_clock: trio.abc.Clock) -> None:
    @message("test.virtual.arm")
    class Arm:
        periodic: bool

    class Timed(Actor):
        @handler(Arm)
        def arm(self, msg: Arm) -> None:
            if msg.periodic:
                self.ctx.start_periodic_timer("beat", 10.0, Tick())
            else:
                self.ctx.start_timer("once", 5.0, Tick())

        @handler(Tick)
        def tick(self, msg: Tick) -> None:
            Saved.log.append(f"tick {trio.current_time():.0f}")

    async with open_test_node(
        actors={"t": Timed}, pool_options={"idle_timeout_seconds": 1000.0}
    ) as node:
        start = trio.current_time()
        ref = node.system.ref("t", "k")
        await ref.ask(Arm(periodic=False))
        await trio.sleep(20)
        assert Saved.log == [f"tick {start + 5:.0f}"]
        Saved.log.clear()
        await ref.ask(Arm(periodic=True))
        await trio.sleep(35)
        assert Saved.log == [f"tick {start + 20 + 10 * i:.0f}" for i in (1, 2, 3)]
        cell = node.system.pools["t"].cells["k"]
        assert cell.timer_names == ("beat",)
        assert cell.cancel_timer("beat")
        Saved.log.clear()
        await trio.sleep(30)
        assert Saved.log == []


async def test_timers_do_not_keep_an_actor_alive_and_stop_at_passivation(
    autojump_clock: trio.abc.Clock,
) -> None:
    @message("test.virtual.beat")
    class Beat:
        pass

    class Beating(Actor):
        @handler(Beat)
        def beat(self, msg: Beat) -> None:
            self.ctx.start_periodic_timer("beat", 10.0, Tick())

        @handler(Tick)
        def tick(self, msg: Tick) -> None:
            Saved.log.append("tick")

    async with open_test_node(
        actors={"b": Beating}, pool_options={"idle_timeout_seconds": 60.0}
    ) as node:
        await node.system.ref("b", "k").ask(Beat())
        await trio.sleep(75)
        assert "k" not in node.system.pools["b"].cells  # ticks are not activity
        ticks = len(Saved.log)
        assert 5 <= ticks <= 7
        await trio.sleep(100)
        assert len(Saved.log) == ticks  # cancelled at passivation
        assert len(node.system.timers) == 0
