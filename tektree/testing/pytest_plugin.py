"""pytest plugin (registered by the ``tektree`` distribution): fixtures for actor tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import pytest

from tektree._telemetry import capture_logs
from tektree.testing.redis import RedisServer, open_redis_server, require_redis_server


@pytest.fixture
def tektree_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The log entries (dicts with node, actor and correlation id) emitted during the test."""
    with capture_logs() as entries:
        yield entries


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    """A private ``redis-server`` on a free loopback port (stopped by its pid after the test).

    Skipped when ``redis-server`` is not installed, except under ``CI``, where it fails.
    """
    require_redis_server()
    async with open_redis_server() as server:
        yield server
