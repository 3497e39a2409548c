"""Leaderboards in cluster mode: the board lives in a Redis sorted set, ranked as embedded mode."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import coredis
import trio

from actors.leaderboard import (
    LeaderboardActor,
    OptOut,
    RankOf,
    SetScore,
    Top,
    fold_score,
    unfold_score,
)
from actors.rules import Leaderboard
from tektree import Node
from tektree.cluster import Membership
from tektree.testing import open_test_node, test_config
from tektree.testing.redis import RedisServer

FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
        "lease_renew_seconds": 0.5, "lease_restart_grace": False}
T0 = dt.datetime(2025, 12, 1, 12, 0, tzinfo=dt.UTC)


def _config(name: str, url: str, data_dir: Path) -> Any:
    return test_config(
        {"leaderboard": LeaderboardActor},
        services=[{"type": "service", "name": "store", "service": "store"},
                  {"type": "service", "name": "cluster", "service": "cluster", "options": FAST}],
        node={"name": name, "data_dir": str(data_dir)},
        redis_url=url,
    )


@asynccontextmanager
async def two_nodes(url: str, data_dir: Path) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(open_test_node(
            _config(name, url, data_dir), actors={"leaderboard": LeaderboardActor}))
            for name in ("n1", "n2")]
        with trio.fail_after(10):
            for node in nodes:
                membership = node.system.extensions["cluster.membership"]
                assert isinstance(membership, Membership)
                while len(membership.view.members) != 2:
                    await membership.wait_for_change(membership.view.version)
        yield nodes


# (user, score, seconds after T0): ties on score broken by reach time, then by user id
UPDATES = [("cid", 40, 5), ("ann", 100, 3), ("bob", 100, 1), ("dan", 70, 2), ("eve", 100, 1),
           ("fay", 10, 9), ("cid", 100, 4), ("gus", 70, 2), ("dan", 70, 8)]


def test_the_fold_keeps_score_then_reach_time_order() -> None:
    us = (T0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    assert fold_score(100, us) < fold_score(100, us + 1_000_000) < fold_score(99, us)
    for score in (0, 1, 12345, (1 << 22) - 1):
        assert unfold_score(fold_score(score, us)) == score


async def test_a_board_set_through_one_node_ranks_as_the_embedded_model(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    model = Leaderboard()
    async with two_nodes(redis_server.url, tmp_path) as (n1, n2):
        with trio.fail_after(30):
            for i, (user, score, seconds) in enumerate(UPDATES):
                at = T0 + dt.timedelta(seconds=seconds)
                model.set_score(user, score, at)
                reply = await n1.system.ref("leaderboard", "global").ask(
                    SetScore(user_id=user, score=score, event_id=f"e{i}", at=at))
                assert reply["rank"] == model.rank(user)
            # a redelivered update changes nothing
            again = await n1.system.ref("leaderboard", "global").ask(
                SetScore(user_id="fay", score=10, event_id="e5", at=T0))
            assert again["status"] == "unchanged"
            expected = [{"rank": e.rank, "user_id": e.user, "score": e.score}
                        for e in model.top(100)]
            for node in (n1, n2):
                ref = node.system.ref("leaderboard", "global")
                assert await ref.ask(Top(limit=100)) == expected
                assert await ref.ask(Top(limit=2, offset=1)) == expected[1:3]
                for user in {u for u, _, _ in UPDATES}:
                    reply = await ref.ask(RankOf(user_id=user, radius=1))
                    assert reply["rank"] == model.rank(user)
                    assert reply["score"] == model.score(user)
                    assert reply["ranked"] == len(model)
                    assert reply["around"] == [
                        {"rank": e.rank, "user_id": e.user, "score": e.score}
                        for e in model.around(user, 1)]
            # opt-out is honoured: hidden from Redis, the score kept
            await n2.system.ref("leaderboard", "global").ask(OptOut(user_id="eve", opted_out=True))
            model.opt_out("eve")
            hidden = await n1.system.ref("leaderboard", "global").ask(RankOf(user_id="eve"))
            assert (hidden["rank"], hidden["opted_out"]) == (None, True)
            assert hidden["ranked"] == len(model)
            assert hidden["score"] is None and len(model) == 6
            assert [e["user_id"] for e in await n1.system.ref("leaderboard", "global").ask(
                Top())] == [e.user for e in model.top(10)]
    # the sorted set itself, as any reader sees it
    client: coredis.Redis[bytes] = coredis.Redis.from_url(redis_server.url)
    async with client:
        members = await client.zrange("leaderboard:global", 0, -1)
        assert [m.decode() for m in members] == [e.user for e in model.top(100)]
        assert int(await client.get("leaderboard:global:seq") or 0) >= len(UPDATES)


async def test_a_lost_redis_set_is_rebuilt_on_activation(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with two_nodes(redis_server.url, tmp_path) as (n1, _):
        ref = n1.system.ref("leaderboard", "area:x")
        with trio.fail_after(20):
            for i, (user, score, seconds) in enumerate(UPDATES[:4]):
                await ref.ask(SetScore(user_id=user, score=score, event_id=f"e{i}",
                                       at=T0 + dt.timedelta(seconds=seconds)))
            before = await ref.ask(Top())
    client: coredis.Redis[bytes] = coredis.Redis.from_url(redis_server.url)
    async with client:
        await client.delete(["leaderboard:area:x", "leaderboard:area:x:seq"])
    async with two_nodes(redis_server.url, tmp_path) as (_, n2):
        with trio.fail_after(20):
            assert await n2.system.ref("leaderboard", "area:x").ask(Top()) == before
