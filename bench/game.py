"""The game benchmark: the gamification loop end to end, and leaderboard reads beside raw Redis.

Three figures:

- ``xp_events_throughput``: XP-earning domain events (``knowledge.answer.submitted``) handled
  per second END TO END on an embedded node with the defaults (store on SQLite, cluster service
  in embedded mode, timers; kinds ``user``, ``leaderboard`` and ``room``): each event goes
  through :func:`actors.wiring.route_event` (what the outbox relay calls) to its profile, which
  journals it, tells the ``global`` and weekly boards (each journals the new score) and publishes
  its notifications. The clock stops once the system is quiescent, i.e. the boards have applied
  every update. The users are registered first (not timed). Absolute target: >= 5,000 events/s;
  no baseline (nothing else does this work).
- ``leaderboard_rank_throughput`` / ``leaderboard_top100_throughput``: sequential asks
  ``RankOf(user)`` and ``Top(limit=100)`` to one ``LeaderboardActor`` of 1,000,000 scored users
  (100,000 with ``--quick``), beside the same reads issued directly to a private
  ``redis-server`` as *sequential* coredis calls (``ZREVRANK``, and ``ZRANGE key 0 99 REV
  WITHSCORES``, the non-deprecated spelling of ``ZREVRANGE 0 99 WITHSCORES``), one round trip
  each, in the same run. Target: >= 0.5x of raw Redis. The actor's board is
  bulk-loaded from a snapshot document (:meth:`Leaderboard.from_snapshot`, what recovery does);
  Redis is loaded with ``ZADD`` in non-transactional pipelines of 10,000 members.
"""

from __future__ import annotations

import datetime as dt
import random
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import attrs
import coredis
import trio

from actors import events
from actors.leaderboard import LeaderboardActor, RankOf, Top
from actors.profile import UserProfileActor
from actors.rooms import RoomActor
from actors.wiring import route_event
from bench._harness import Deadline, Figure, Progress, measure_rate
from bench.cluster import AbsoluteFigure
from tektree import Node
from tektree.config import parse_config
from tektree.persistence import format_timestamp
from tektree.testing.redis import RedisServer, open_redis_server

__all__ = ["DEFAULT", "QUICK", "Counts", "measure", "run"]

RAW_REDIS = "raw redis-server, sequential coredis calls"
BOARD = "area:bench"
_EPOCH_US = 1_700_000_000_000_000


@attrs.frozen(kw_only=True)
class Counts:
    users: int  # profiles of the XP loop
    answers_per_user: int  # XP-earning events per user (timed)
    concurrency: int  # feeder tasks (each owns a slice of the users: per-user order is kept)
    board_users: int  # scored users of the leaderboard
    rank_queries: int
    top_queries: int
    seconds: float  # the time bound of each load loop


DEFAULT = Counts(users=10_000, answers_per_user=3, concurrency=64, board_users=1_000_000,
                 rank_queries=20_000, top_queries=2_000, seconds=20.0)
QUICK = Counts(users=2_000, answers_per_user=1, concurrency=64, board_users=100_000,
               rank_queries=5_000, top_queries=500, seconds=5.0)


# --------------------------------------------------------------------------- the XP loop

_KINDS: dict[str, type[Any]] = {
    "user": UserProfileActor, "leaderboard": LeaderboardActor, "room": RoomActor,
}


def _config(data_dir: str, kinds: dict[str, type[Any]]) -> Any:
    children: list[dict[str, Any]] = [
        {"type": "service", "name": "timers", "service": "timers"},
        {"type": "service", "name": "store", "service": "store"},
        {"type": "service", "name": "cluster", "service": "cluster"},
    ]
    children.extend({"type": "actors", "kind": kind,
                     "actor": f"{cls.__module__}:{cls.__qualname__}"}
                    for kind, cls in kinds.items())
    data = {"node": {"name": "bench", "data_dir": data_dir,
                     # as shipped: see tektree._gc and tektree._gil
                     "gc_young_threshold": 10_000, "switch_interval_ms": 1},
            "http": {"enabled": False}, "redis": {"url": ""},
            "supervisor": {"children": children}}
    return parse_config(data, source="<bench game>", env={})


@asynccontextmanager
async def _node(kinds: dict[str, type[Any]]) -> AsyncIterator[Node]:
    with tempfile.TemporaryDirectory(prefix="bench-game-") as data_dir:
        node = Node(_config(data_dir, kinds), actor_classes=kinds)
        async with trio.open_nursery() as nursery:
            await nursery.start(node.serve)
            try:
                yield node
            finally:
                node.request_stop()


def _envelope(evt: object, event_id: str, at: dt.datetime) -> dict[str, Any]:
    return events.to_envelope(evt, event_id=event_id, producer_id="bench",
                              timestamp=format_timestamp(at)).to_dict()


async def _feed(node: Node, batches: list[list[dict[str, Any]]], deadline: Deadline) -> int:
    """Route every envelope, one feeder task per batch; how many were routed."""
    done = 0

    async def feeder(batch: list[dict[str, Any]]) -> None:
        nonlocal done
        for envelope in batch:
            if deadline.expired():
                return
            await route_event(node.system, envelope, timeout=30)
            done += 1

    async with trio.open_nursery() as nursery:
        for batch in batches:
            nursery.start_soon(feeder, batch)
    await node.system.wait_quiescent()
    return done


async def xp_events_throughput(counts: Counts, progress: Progress) -> float:
    """Events/s of XP-earning answers, route_event → profile → boards → notifications."""
    now = dt.datetime.now(dt.UTC)
    users = [f"u{i}" for i in range(counts.users)]
    slices = [users[i :: counts.concurrency] for i in range(counts.concurrency)]
    async with _node(_KINDS) as node:
        progress.step(f"xp loop: registering {counts.users:,} users")
        registered = [[_envelope(events.UserRegistered(user_id=u, email=f"{u}@x.io", handle=u),
                                 f"reg-{u}", now) for u in chunk] for chunk in slices]
        await _feed(node, registered, Deadline(counts.seconds * 3))
        answers = [[_envelope(events.AnswerSubmitted(answer_id=f"a-{u}-{n}", question_id=f"q{n}",
                                                     author_id=u, question_author_id="asker"),
                              f"ans-{u}-{n}", now)
                    for n in range(counts.answers_per_user) for u in chunk] for chunk in slices]
        total = sum(len(b) for b in answers)
        progress.step(f"xp loop: {total:,} answers end to end")
        start = time.perf_counter()
        done = await _feed(node, answers, Deadline(counts.seconds))
        return measure_rate(done, time.perf_counter() - start)


# --------------------------------------------------------------------------- leaderboards


def board_document(count: int, seed: int = 7) -> dict[str, Any]:
    """A ``Leaderboard.snapshot()`` document of ``count`` users with random scores and times."""
    rng = random.Random(seed)
    rows: list[list[Any]] = [
        [f"user{i}", rng.randrange(0, 1_000_000), _EPOCH_US + rng.randrange(0, 10**12)]
        for i in range(count)
    ]
    rows.sort(key=lambda r: (-r[1], r[2], r[0]))
    return {"version": 1, "scores": rows, "opted_out": []}


class _PreloadedBoard(LeaderboardActor):
    """A ``LeaderboardActor`` whose empty journal starts from a prepared board document."""

    document: ClassVar[dict[str, Any]] = {}

    def initial_state(self) -> dict[str, Any]:
        return {"board": self.document, "versions": {}}


async def _actor_reads(counts: Counts, users: list[str], progress: Progress
                       ) -> tuple[float, float]:
    async with _node({"leaderboard": _PreloadedBoard}) as node:
        ref = node.system.ref("leaderboard", BOARD)
        progress.step(f"actor: loading {counts.board_users:,} users")
        assert (await ref.ask(RankOf(user_id=users[0])))["ranked"] == counts.board_users
        progress.step("actor: rank queries")
        deadline, done, start = Deadline(counts.seconds), 0, time.perf_counter()
        for size in deadline.chunks(counts.rank_queries, 256):
            for user in users[done : done + size]:
                await ref.ask(RankOf(user_id=user))
            done += size
        rank = measure_rate(done, time.perf_counter() - start)
        progress.step("actor: top 100 queries")
        deadline, done, start = Deadline(counts.seconds), 0, time.perf_counter()
        top = Top(limit=100)
        for size in deadline.chunks(counts.top_queries, 64):
            for _ in range(size):
                await ref.ask(top)
            done += size
        return rank, measure_rate(done, time.perf_counter() - start)


async def _redis_reads(server: RedisServer, counts: Counts, document: dict[str, Any],
                       users: list[str], progress: Progress) -> tuple[float, float]:
    key = "leaderboard:" + BOARD
    client: coredis.Redis[bytes] = coredis.Redis.from_url(server.url, decode_responses=False)
    async with client:
        progress.step(f"redis: ZADD {counts.board_users:,} users")
        await client.delete([key])
        rows = document["scores"]
        for i in range(0, len(rows), 10_000):
            async with client.pipeline(transaction=False) as pipe:
                for j in range(i, min(i + 10_000, len(rows)), 1_000):
                    pipe.zadd(key, {r[0]: r[1] for r in rows[j : j + 1_000]})
        assert await client.zcard(key) == counts.board_users
        progress.step("redis: ZREVRANK")
        deadline, done, start = Deadline(counts.seconds), 0, time.perf_counter()
        for size in deadline.chunks(counts.rank_queries, 256):
            for user in users[done : done + size]:
                await client.zrevrank(key, user)
            done += size
        rank = measure_rate(done, time.perf_counter() - start)
        progress.step("redis: ZRANGE 0 99 REV WITHSCORES")
        deadline, done, start = Deadline(counts.seconds), 0, time.perf_counter()
        for size in deadline.chunks(counts.top_queries, 64):
            for _ in range(size):
                await client.zrange(key, 0, 99, rev=True, withscores=True)
            done += size
        return rank, measure_rate(done, time.perf_counter() - start)


async def leaderboard_reads(server: RedisServer, counts: Counts, progress: Progress
                            ) -> dict[str, float]:
    progress.step(f"building a board of {counts.board_users:,} users")
    document = board_document(counts.board_users)
    rng = random.Random(11)
    users = [f"user{rng.randrange(counts.board_users)}" for _ in range(counts.rank_queries)]
    _PreloadedBoard.document = document
    try:
        actor_rank, actor_top = await _actor_reads(counts, users, progress)
    finally:
        _PreloadedBoard.document = {}
    redis_rank, redis_top = await _redis_reads(server, counts, document, users, progress)
    return {"actor_rank": actor_rank, "actor_top": actor_top,
            "redis_rank": redis_rank, "redis_top": redis_top}


# --------------------------------------------------------------------------- the run


async def measure(server: RedisServer, counts: Counts, progress: Progress) -> list[Figure]:
    xp = await xp_events_throughput(counts, progress)
    reads = await leaderboard_reads(server, counts, progress)
    return [
        AbsoluteFigure(name="xp_events_throughput", value=xp, unit="events/s", better="higher",
                       threshold=5_000, target=">= 5,000 events/s"),
        Figure(name="leaderboard_rank_throughput", value=reads["actor_rank"], unit="queries/s",
               better="higher", baseline=reads["redis_rank"],
               baseline_name=RAW_REDIS + " (ZREVRANK)", target_ratio=0.5,
               target=">= 0.5x baseline"),
        Figure(name="leaderboard_top100_throughput", value=reads["actor_top"],
               unit="queries/s", better="higher", baseline=reads["redis_top"],
               baseline_name=RAW_REDIS + " (ZRANGE 0 99 REV WITHSCORES)"),
    ]


async def run(quick: bool, progress: Progress) -> list[Figure]:
    counts = QUICK if quick else DEFAULT
    async with open_redis_server() as server:
        return await measure(server, counts, progress)
