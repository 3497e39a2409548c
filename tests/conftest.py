from __future__ import annotations

from collections.abc import Iterator

import pytest

import kit


@pytest.fixture(autouse=True)
def _reset_kit() -> Iterator[None]:
    kit.reset()
    yield
    kit.reset()
