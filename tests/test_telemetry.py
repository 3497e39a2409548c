"""Logs carry node, actor and correlation id; metrics cover the runtime's counters."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
import trio
from prometheus_client import generate_latest

from kit import Add, Boom, Counter
from tektree import Actor, ActorFailed, correlation_id, handler, message
from tektree.testing import open_test_node


@message("test.telemetry.note")
class Note:
    text: str


@message("test.telemetry.relay")
class Relay:
    text: str


class Noter(Actor):
    @handler(Note)
    def note(self, msg: Note) -> None:
        self.ctx.log.info("noted", text=msg.text)

    @handler(Relay)
    async def relay(self, msg: Relay) -> None:
        self.ctx.log.info("relaying", text=msg.text)
        await self.ctx.ref("noter", "downstream").tell(Note(text=msg.text))


async def test_log_lines_carry_node_actor_and_correlation_id(
    tektree_logs: list[MutableMapping[str, Any]],
) -> None:
    async with open_test_node(actors={"noter": Noter}) as node:
        token = correlation_id.set("req-123")
        try:
            await node.system.ref("noter", "upstream").tell(Relay(text="hi"))
        finally:
            correlation_id.reset(token)
        with trio.fail_after(5):
            await node.system.wait_quiescent()
    relaying = next(e for e in tektree_logs if e["event"] == "relaying")
    noted = next(e for e in tektree_logs if e["event"] == "noted")
    assert relaying["actor"] == "noter/upstream"
    assert noted["actor"] == "noter/downstream"
    # The correlation id set by the caller travels with every message the request causes.
    assert relaying["correlation_id"] == noted["correlation_id"] == "req-123"
    assert relaying["node"] == noted["node"] == "test"
    assert {"level", "timestamp"} <= set(noted)


async def test_crash_is_logged_with_its_actor_and_traceback(
    tektree_logs: list[MutableMapping[str, Any]],
) -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        with pytest.raises(ActorFailed):
            await node.system.ref("counter", "c").ask(Boom(text="bad"))
    crashed = [e for e in tektree_logs if e["event"] == "actor crashed"]
    assert len(crashed) == 1
    assert crashed[0]["actor"] == "counter/c"
    assert "ValueError: bad" in crashed[0]["exception"]


async def test_metrics_cover_handled_latency_depth_activations_passivations_restarts() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c")
        for _ in range(10):
            await ref.tell(Add(amount=1))
        assert await ref.ask(Add(amount=0)) == 10
        with pytest.raises(ActorFailed):
            await ref.ask(Boom())
        await node.system.ref("counter", "d").ask(Add(amount=1))
        await node.system.passivate_all()
        text = generate_latest(node.metrics).decode()
    expected = {
        'tektree_messages_handled_total{kind="counter"} 13.0',
        'tektree_activations_total{kind="counter"} 2.0',
        'tektree_passivations_total{kind="counter"} 1.0',  # c crashed: nothing to save
        'tektree_actor_restarts_total{kind="counter"} 1.0',
        'tektree_actor_failures_total{kind="counter"} 1.0',
        'tektree_mailbox_depth{kind="counter"} 0.0',
        'tektree_active_activations{kind="counter"} 0.0',
        'tektree_handler_seconds_count{kind="counter"} 13.0',
    }
    missing = [line for line in expected if line not in text]
    assert missing == []
    assert 'tektree_handler_seconds_bucket{kind="counter",le="+Inf"} 13.0' in text
