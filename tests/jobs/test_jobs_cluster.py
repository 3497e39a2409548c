"""Background jobs on a two-node cluster: the Redis queue, real ``tektree node`` processes
(``durable_cluster``), a worker killed with SIGKILL in the middle of a job."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reminders"))

from durable_cluster import eventually, open_nodes
from job_support import EFFECTS, RUNS

from tektree.cluster import open_redis_link
from tektree.jobs import DEAD, DONE, JobQueue
from tektree.jobs._redis import RedisJobBackend
from tektree.testing.redis import RedisServer

pytestmark = pytest.mark.slow


async def test_jobs_run_once_retry_dead_letter_and_survive_a_killed_worker(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with open_nodes(tmp_path, redis_server.url) as nodes, open_redis_link(
            redis_server.url) as link:
        queue = JobQueue(RedisJobBackend(link))
        await nodes.start("n1", "n2")
        await queue.enqueue("test.slow", {"seconds": 60, "retry_seconds": 0},
                            job_id="slow")

        async def slow_started() -> bool:
            return bool(await nodes.store.count(RUNS, {"job": "slow"}))

        await eventually(slow_started)
        [first] = (await nodes.store.find(RUNS, {"job": "slow"})).items
        victim = first["node"]
        await nodes.kill(victim)  # in the middle of the job
        survivor = "n2" if victim == "n1" else "n1"
        await nodes.start(victim)  # back, empty-handed: both nodes work the queue again
        await queue.enqueue("test.flaky", {"fail_times": 2}, job_id="flaky")
        await queue.enqueue("test.flaky", {"fail_times": 99}, job_id="poison")
        for i in range(60):  # 0.1 s each, 4 at once per node: work for both nodes
            await queue.enqueue("test.slow", {"seconds": 0.1}, job_id=f"noop-{i}")
        assert not (await queue.enqueue("test.slow", job_id="noop-0")).created

        async def settled() -> bool:
            jobs = [await queue.get(j) for j in ("flaky", "poison", *(f"noop-{i}"
                                                                       for i in range(60)))]
            return all(j is not None and j.status in (DONE, DEAD) for j in jobs)

        await eventually(settled, seconds=30)
        flaky = await queue.get("flaky")
        assert flaky is not None and flaky.status == DONE and flaky.attempts == 3
        [dead] = await queue.dead_letters()
        assert (dead.id, dead.attempts) == ("poison", 4)
        assert "failing attempt 4" in (dead.last_error or "")
        assert await nodes.store.count(EFFECTS, {"_id": {"$in": [f"noop-{i}"
                                                                  for i in range(60)]}}) == 60
        effects = (await nodes.store.find(EFFECTS)).items
        by_node = Counter(e["node"] for e in effects if e["_id"].startswith("noop-"))
        assert set(by_node) == {"n1", "n2"}, by_node  # both nodes took work

        async def slow_done() -> bool:  # the killed run was reaped and run again
            job = await queue.get("slow")
            return job is not None and job.status == DONE

        await eventually(slow_done, seconds=20)
        runs = (await nodes.store.find(RUNS, {"job": "slow"}, sort=[("at", 1)])).items
        assert [r["attempt"] for r in runs] == [1, 2]
        assert runs[1]["node"] in (survivor, victim)
        assert await nodes.store.count(EFFECTS, {"_id": "slow"}) == 1
        assert nodes.errors() == []
