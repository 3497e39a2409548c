"""Fixtures of the content tests: the services on SQLite and on mongomock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from content_kit import World, open_world


@pytest.fixture(params=["sqlite", "mongomock"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """The content services on each backend (mongomock: units without atomicity)."""
    async with open_world(tmp_path, request.param) as w:
        yield w


@pytest.fixture
async def sqlite_world(tmp_path: Path) -> AsyncIterator[World]:
    """On SQLite only: for concurrent writers, which need atomic units."""
    async with open_world(tmp_path) as w:
        yield w
