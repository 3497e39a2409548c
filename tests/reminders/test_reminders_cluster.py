"""Durable reminders on a two-node cluster: real ``tektree node`` processes, a private
``redis-server``, one shared SQLite store; nodes killed with SIGKILL."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from durable_cluster import Nodes, eventually, open_nodes
from reminder_support import DELIVERIES, EFFECTS, KIND, Ping

from tektree import ActorId
from tektree.cluster import Member
from tektree.reminders import REMINDERS, Reminders, ReminderSpec, bucket_of, owned_buckets
from tektree.testing.redis import RedisServer

pytestmark = pytest.mark.slow

MEMBERS = [Member(name="n1"), Member(name="n2")]


def owned_by(node: str, count: int, prefix: str) -> list[ActorId]:
    """``count`` target actors whose reminder ``r`` lives in a bucket ``node`` claims."""
    mine = owned_buckets(node, MEMBERS)
    found = []
    for i in range(10_000):
        actor = ActorId(KIND, f"{prefix}{i}")
        if bucket_of(f"{actor}|r") in mine:
            found.append(actor)
            if len(found) == count:
                return found
    raise AssertionError(f"no bucket of {node}")


async def _deliveries(nodes: Nodes, **filter: Any) -> list[dict[str, Any]]:
    return (await nodes.store.find(DELIVERIES, filter or None, sort=[("at", 1)])).items


async def test_a_reminder_whose_node_is_killed_fires_once_elsewhere(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with open_nodes(tmp_path, redis_server.url) as nodes:
        await nodes.start("n1", "n2")
        await nodes.wait_split()
        [target] = owned_by("n1", 1, "k")
        table = Reminders(nodes.store)
        await table.register(target, "r", Ping(label="survivor"), due=time.time() + 2.0)
        rid = f"{target}|r"

        async def claimed_by_n1() -> bool:
            doc = await nodes.store.get(REMINDERS, rid)
            return doc is not None and doc["owner"] == "n1"

        await eventually(claimed_by_n1)  # n1 holds it, in memory, waiting for its time
        await nodes.kill("n1")

        async def delivered() -> bool:
            return bool(await _deliveries(nodes))

        await eventually(delivered, seconds=20)  # after n1's lease (3 s) expired

        async def gone() -> bool:
            return await nodes.store.get(REMINDERS, rid) is None

        await eventually(gone)
        [delivery] = await _deliveries(nodes)
        assert (delivery["node"], delivery["label"]) == ("n2", "survivor")
        assert await nodes.store.count(EFFECTS) == 1

        async def n2_fired_it() -> bool:
            return nodes.statistics("n2").get("fired") == 1

        await eventually(n2_fired_it)
        assert nodes.errors() == []


async def test_reminders_spread_over_the_nodes_and_none_fires_twice(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with open_nodes(tmp_path, redis_server.url) as nodes:
        await nodes.start("n1", "n2")
        await nodes.wait_split()
        now = time.time()
        specs = [ReminderSpec(actor=ActorId(KIND, f"s{i % 50}"), name=f"r{i}",
                              message=Ping(label=str(i)), due=now + 1 + (i % 20) / 10)
                 for i in range(300)]
        await Reminders(nodes.store).register_many(specs)

        async def all_fired() -> bool:
            return await nodes.store.count(REMINDERS) == 0

        await eventually(all_fired, seconds=30)
        deliveries = await _deliveries(nodes)
        counts = Counter(d["occurrence"] for d in deliveries)
        assert len(counts) == 300
        assert [occ for occ, n in counts.items() if n > 1] == []
        assert await nodes.store.count(EFFECTS) == 300

        async def both_reported() -> bool:
            return all(nodes.statistics(n).get("fired", 0) > 0 for n in ("n1", "n2")) and sum(
                nodes.statistics(n).get("fired", 0) for n in ("n1", "n2")) == 300

        await eventually(both_reported)  # the claims were spread, not piled on one node
        fired = [nodes.statistics(n)["fired"] for n in ("n1", "n2")]
        assert min(fired) >= 60, fired
        assert nodes.errors() == []


async def test_a_periodic_reminder_keeps_firing_after_its_node_dies(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with open_nodes(tmp_path, redis_server.url) as nodes:
        await nodes.start("n1", "n2")
        await nodes.wait_split()
        [target] = owned_by("n1", 1, "p")
        await Reminders(nodes.store).register(target, "r", Ping(label="tick"),
                                              due=time.time() + 1.0, period_seconds=1.0)

        async def fired(count: int) -> bool:
            return len(await _deliveries(nodes)) >= count

        await eventually(lambda: fired(2))
        await nodes.kill("n1")
        before = len(await _deliveries(nodes))
        await eventually(lambda: fired(before + 3), seconds=30)
        deliveries = await _deliveries(nodes)
        dues = sorted({int(d["occurrence"].rsplit("@", 1)[1]) for d in deliveries})
        assert all((b - a) % 1000 == 0 for a, b in itertools.pairwise(dues))
        assert deliveries[-1]["node"] == "n2"
        # Once in effect: a delivery n1 made but did not record may come again, never applied
        # twice.
        assert await nodes.store.count(EFFECTS) == len(dues)


async def test_embedded_a_reminder_claimed_by_a_killed_process_fires_once_after_restart(
    tmp_path: Path,
) -> None:
    async with open_nodes(tmp_path, "") as nodes:  # no Redis: embedded mode, one process
        await nodes.start("solo")
        target = ActorId(KIND, "e")
        await Reminders(nodes.store).register(target, "r", Ping(label="after"),
                                              due=time.time() + 1.5)

        async def claimed() -> bool:
            doc = await nodes.store.get(REMINDERS, f"{target}|r")
            return doc is not None and doc["owner"] == "solo"

        await eventually(claimed)
        await nodes.kill("solo")
        await nodes.start("solo-again")

        async def delivered() -> bool:
            return await nodes.store.count(REMINDERS) == 0 and bool(await _deliveries(nodes))

        await eventually(delivered)
        [delivery] = await _deliveries(nodes)
        assert delivery["node"] == "solo-again"
        assert await nodes.store.count(EFFECTS) == 1
