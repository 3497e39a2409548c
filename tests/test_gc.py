"""``[node] gc_young_threshold``: the started node freezes its objects and raises the young
threshold (process-wide, so each test puts the collector back as it found it); ``[node]
switch_interval_ms``: the running node sets the thread switch interval, then puts it back."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from tektree._gc import settle_collector
from tektree.testing import open_test_node


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def test_a_started_node_settles_the_collector(restored_collector: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    async with open_test_node(node={"gc_young_threshold": 12_345}) as node:
        assert node.config.node.gc_young_threshold == 12_345
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0  # what existed at the start is out of the collector


async def test_the_default_leaves_the_collector_alone(restored_collector: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    async with open_test_node() as node:
        assert node.config.node.gc_young_threshold == 0
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0


def test_settle_collector(restored_collector: None) -> None:
    gc.unfreeze()
    assert settle_collector(0) is False and gc.get_freeze_count() == 0
    assert settle_collector(5_000) is True
    assert gc.get_threshold()[0] == 5_000 and gc.get_freeze_count() > 0


async def test_a_running_node_sets_the_switch_interval_and_puts_it_back() -> None:
    before = sys.getswitchinterval()
    async with open_test_node(node={"switch_interval_ms": 0.75}) as node:
        assert node.config.node.switch_interval_ms == 0.75
        assert sys.getswitchinterval() == pytest.approx(0.00075)
    assert sys.getswitchinterval() == before
    async with open_test_node():  # the default leaves it alone
        assert sys.getswitchinterval() == before
