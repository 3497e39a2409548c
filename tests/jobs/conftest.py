from __future__ import annotations

from collections.abc import Iterator

import pytest
from job_support import Gate


@pytest.fixture(autouse=True)
def _reset_gate() -> Iterator[None]:
    Gate.reset()
    yield
    Gate.reset()
