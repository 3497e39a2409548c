"""pytest plugin (registered by the ``tektree`` distribution): fixtures for actor tests."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest

from tektree._telemetry import capture_logs


@pytest.fixture
def tektree_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The log entries (dicts with node, actor and correlation id) emitted during the test."""
    with capture_logs() as entries:
        yield entries
