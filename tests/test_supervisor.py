"""Supervision: strategies, restart types, intensity, backoff and escalation."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from kit import Add, Boom, Counter, Gate, Get, Slow
from tektree import (
    ActorFailed,
    ConfigError,
    Node,
    NodeFailed,
    Supervisor,
    SupervisorFailed,
    TaskChild,
    capture_logs,
    parse_config,
)
from tektree.testing import open_test_node, test_config


class Ctl:
    """A controllable child: records its starts and stops; the test makes it crash or end."""

    def __init__(self, name: str, log: list[str], restart: str = "permanent") -> None:
        self.name = name
        self.log = log
        self.restart = restart
        self.starts: list[float] = []
        self._go = trio.Event()
        self._action = ""
        self.fail_start = 0

    def child(self) -> TaskChild:
        return TaskChild(name=self.name, fn=self.run, restart=self.restart, shutdown_seconds=1.0)

    def crash(self) -> None:
        self._action = "crash"
        self._go.set()

    def finish(self) -> None:
        self._action = "finish"
        self._go.set()

    async def run(self, *, task_status: trio.TaskStatus[Any]) -> None:
        self.starts.append(trio.current_time())
        if self.fail_start:
            self.fail_start -= 1
            self.log.append(f"failstart {self.name}")
            raise OSError(f"{self.name} cannot start")
        self._go = trio.Event()
        self.log.append(f"start {self.name}")
        task_status.started()
        try:
            await self._go.wait()
            if self._action == "crash":
                raise RuntimeError(f"{self.name} crashed")
        finally:
            self.log.append(f"stop {self.name}")


async def _settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


class Outcome:
    """Runs a supervisor in a nursery and keeps what it raised."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.failure: BaseException | None = None
        self.ended = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self.sup.run(task_status=task_status)
        except SupervisorFailed as exc:
            self.failure = exc
        finally:
            self.ended.set()


def _tree(strategy: str, log: list[str], **kw: Any) -> tuple[Supervisor, dict[str, Ctl]]:
    ctls = {n: Ctl(n, log) for n in "abc"}
    sup = Supervisor("s", [c.child() for c in ctls.values()], strategy=strategy,
                     backoff_initial_seconds=0.0, **kw)
    return sup, ctls


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("one_for_one", ["stop b", "start b"]),
        ("one_for_all", ["stop b", "stop c", "stop a", "start a", "start b", "start c"]),
        ("rest_for_one", ["stop b", "stop c", "start b", "start c"]),
    ],
)
async def test_strategies(strategy: str, expected: list[str]) -> None:
    log: list[str] = []
    sup, ctls = _tree(strategy, log)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert log == ["start a", "start b", "start c"]
        log.clear()
        ctls["b"].crash()
        await _settle()
        assert log == expected
        assert sup.running_children == ["a", "b", "c"]
        nursery.cancel_scope.cancel()
    assert log[-3:] == ["stop c", "stop b", "stop a"]  # shutdown: last started first


@pytest.mark.parametrize(
    ("restart", "action", "restarted"),
    [
        ("permanent", "finish", True),
        ("permanent", "crash", True),
        ("transient", "finish", False),
        ("transient", "crash", True),
        ("temporary", "crash", False),
        ("temporary", "finish", False),
    ],
)
async def test_restart_types(restart: str, action: str, restarted: bool) -> None:
    log: list[str] = []
    ctl = Ctl("x", log, restart=restart)
    sup = Supervisor("s", [ctl.child()], backoff_initial_seconds=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        getattr(ctl, action)()
        await _settle()
        assert (len(ctl.starts) == 2) is restarted
        assert sup.running_children == (["x"] if restarted else [])
        nursery.cancel_scope.cancel()


async def test_intensity_exceeded_fails_the_supervisor_after_stopping_children() -> None:
    log: list[str] = []
    sup, ctls = _tree("one_for_one", log, max_restarts=2, period_seconds=10.0)
    outcome = Outcome(sup)
    async with trio.open_nursery() as nursery:
        await nursery.start(outcome.run)
        for _ in range(3):
            ctls["b"].crash()
            await _settle()
    failure = outcome.failure
    assert isinstance(failure, SupervisorFailed)
    assert failure.name == "s"
    assert failure.max_restarts == 2
    assert isinstance(failure.cause, RuntimeError)
    assert log[-2:] == ["stop c", "stop a"]  # the rest stopped, last started first


async def test_restarts_outside_the_period_do_not_count(autojump_clock: trio.abc.Clock) -> None:
    log: list[str] = []
    sup, ctls = _tree("one_for_one", log, max_restarts=1, period_seconds=5.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        for _ in range(4):
            ctls["a"].crash()
            await _settle()
            await trio.sleep(6)
        assert len(ctls["a"].starts) == 5
        nursery.cancel_scope.cancel()


async def test_exponential_backoff_between_restarts(autojump_clock: trio.abc.Clock) -> None:
    log: list[str] = []
    ctl = Ctl("x", log)
    sup = Supervisor("s", [ctl.child()], max_restarts=10, period_seconds=100.0,
                     backoff_initial_seconds=1.0, backoff_max_seconds=4.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        crashes = []
        for _ in range(4):
            crashes.append(trio.current_time())
            ctl.crash()
            await trio.sleep(10)
        delays = [round(start - crash, 3) for crash, start in zip(crashes, ctl.starts[1:],
                                                                  strict=True)]
        assert delays == [1.0, 2.0, 4.0, 4.0]  # doubling, capped at backoff_max_seconds
        nursery.cancel_scope.cancel()


async def test_start_failures_are_retried_within_the_intensity() -> None:
    log: list[str] = []
    ok = Ctl("ok", log)
    ok.fail_start = 2
    sup = Supervisor("s", [ok.child()], max_restarts=3, backoff_initial_seconds=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sup.run)
        assert log == ["failstart ok", "failstart ok", "start ok"]
        nursery.cancel_scope.cancel()
    bad = Ctl("bad", log)
    bad.fail_start = 99
    sup = Supervisor("s2", [bad.child()], max_restarts=2, backoff_initial_seconds=0.0)
    outcome = Outcome(sup)
    with trio.fail_after(5):
        await outcome.run()
    assert isinstance(outcome.failure, SupervisorFailed)
    assert isinstance(outcome.failure.cause, OSError)
    assert log.count("failstart bad") == 3


async def test_a_failing_child_supervisor_escalates_to_its_parent() -> None:
    log: list[str] = []
    inner_ctl = Ctl("leaf", log)
    inner = Supervisor("inner", [inner_ctl.child()], max_restarts=0,
                       backoff_initial_seconds=0.0)
    sibling = Ctl("sibling", log)
    root = Supervisor("root", [inner, sibling.child()], strategy="one_for_one",
                      max_restarts=3, backoff_initial_seconds=0.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(root.run)
        log.clear()
        inner_ctl.crash()  # inner allows 0 restarts: it fails, root restarts it
        await _settle()
        assert log == ["stop leaf", "start leaf"]
        assert len(sibling.starts) == 1
        assert root.running_children == ["inner", "sibling"]
        nursery.cancel_scope.cancel()


async def test_actor_pool_past_its_intensity_is_restarted_by_the_root_keeping_mailboxes(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_node(
        actors={"counter": Counter},
        pool_options={"max_restarts": 1, "backoff_initial_seconds": 0.0},
        supervisor={"max_restarts": 5, "backoff_initial_seconds": 1.0},
    ) as node:
        ref = node.system.ref("counter", "c")
        other = node.system.ref("counter", "other")
        await other.tell(Add(amount=1))
        for _ in range(2):
            with pytest.raises(ActorFailed):
                await ref.ask(Boom())
        # The second crash exceeded the pool's intensity: the root restarts the pool. A message
        # sent while the pool is down waits in its mailbox and is served after the restart
        # (regression: it used to hang, queued but never given a worker).
        await trio.testing.wait_all_tasks_blocked()  # the root is in its 1 s backoff now
        assert node.system.supervisor_restarts.get("root", 0) == 1
        assert not node.system.pools["counter"].running
        with trio.fail_after(5):
            assert await ref.ask(Add(amount=2)) == 2
            assert await other.ask(Get()) == 0  # not saved: state is lost, the kind serves on


async def test_in_flight_ask_fails_when_its_pool_is_restarted() -> None:
    async with open_test_node(
        actors={"counter": Counter},
        pool_options={"max_restarts": 0, "backoff_initial_seconds": 0.0},
        supervisor={"max_restarts": 5, "backoff_initial_seconds": 0.0},
    ) as node:
        slow = node.system.ref("counter", "slow")
        results: list[BaseException] = []

        async def ask_slow() -> None:
            try:
                await slow.ask(Slow())
            except Exception as exc:
                results.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_slow)
            with trio.fail_after(5):
                await Gate.entered.wait()
            with pytest.raises(ActorFailed):
                await node.system.ref("counter", "c").ask(Boom())
        assert len(results) == 1
        assert type(results[0]).__name__ == "ActorStopped"


async def test_root_failure_stops_the_node_with_one_clear_log_line() -> None:
    async def always_fails(node: Node, spec: Any, *, task_status: trio.TaskStatus[Any]) -> None:
        raise RuntimeError("disk on fire")

    config = test_config(
        services=[{"type": "service", "name": "doomed", "service": "doomed"}],
        supervisor={"max_restarts": 2, "backoff_initial_seconds": 0.0},
    )
    node = Node(config, services={"doomed": always_fails})
    with capture_logs() as logs, pytest.raises(NodeFailed) as info:
        with trio.fail_after(10):
            await node.serve()
    assert isinstance(info.value.cause, SupervisorFailed)
    critical = [e for e in logs if e["level"] == "critical"]
    assert len(critical) == 1
    assert "node test stopping" in critical[0]["event"]
    assert "disk on fire" in critical[0]["event"]


def test_unknown_builtin_service_is_a_config_error_naming_the_path() -> None:
    config = parse_config(
        {"supervisor": {"children": [{"type": "service", "name": "x", "service": "nosuch"}]}},
        env={},
    )
    with pytest.raises(ConfigError) as info:
        Node(config)
    assert info.value.path == "supervisor.children[0].service"
    assert "timers" in str(info.value)


def test_unimportable_actor_class_is_a_config_error_naming_the_path() -> None:
    config = parse_config(
        {"supervisor": {"children": [
            {"type": "service", "name": "timers", "service": "timers"},
            {"type": "actors", "kind": "user", "actor": "nowhere.at_all:User"},
        ]}},
        env={},
    )
    with pytest.raises(ConfigError) as info:
        Node(config)
    assert info.value.path == "supervisor.children[1].actor"
