"""Test your actors against a real node, without mocks.

```python
from tektree.testing import open_test_node

async def test_counter() -> None:
    async with open_test_node(actors={"counter": Counter}) as node:
        ref = node.system.ref("counter", "c1")
        await ref.tell(Add(amount=2))
        assert await ref.ask(Get()) == 2
        with trio.fail_after(5):
            await node.system.wait_quiescent()
```

The node runs its real supervision tree (timers, one pool per kind) in the test's nursery,
with ``check_serialization`` on, so every local message and reply goes through the codec;
leaving the block stops it gracefully (drain, passivate every activation).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from tektree._actor import Actor
from tektree._node import Node, Service
from tektree._telemetry import capture_logs
from tektree._wallclock import ManualWallClock
from tektree.config import Config, parse_config

__all__ = ["ManualWallClock", "capture_logs", "open_test_node", "test_config"]


def test_config(
    actors: Mapping[str, type[Actor]] | None = None,
    *,
    pool_options: Mapping[str, Any] | None = None,
    supervisor: Mapping[str, Any] | None = None,
    services: list[Mapping[str, Any]] | None = None,
    node: Mapping[str, Any] | None = None,
    redis_url: str = "",
) -> Config:
    """A config for tests: no HTTP, serialization checked, timers plus one pool per kind."""
    children: list[Mapping[str, Any]] = [{"type": "service", "name": "timers", "service": "timers"}]
    children.extend(services or [])
    for kind, cls in (actors or {}).items():
        children.append({
            "type": "actors",
            "kind": kind,
            "actor": f"{cls.__module__}:{cls.__qualname__.replace('<locals>.', '')}",
            **(pool_options or {}),
        })
    data = {
        "node": {"name": "test", "check_serialization": True, "drain_timeout_seconds": 5.0,
                 **(node or {})},
        "http": {"enabled": False},
        "redis": {"url": redis_url},
        "supervisor": {**(supervisor or {}), "children": children},
    }
    return parse_config(data, source="<test>", env={})


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


@asynccontextmanager
async def open_test_node(
    config: Config | None = None,
    *,
    actors: Mapping[str, type[Actor]] | None = None,
    services: Mapping[str, Service] | None = None,
    **config_options: Any,
) -> AsyncIterator[Node]:
    """Start a node in a nursery for the body of the block; stop it gracefully after."""
    if config is None:
        config = test_config(actors, **config_options)
    node = Node(config, actor_classes=actors, services=services)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.serve)
        try:
            yield node
        finally:
            node.request_stop()
