"""``LeaderboardActor`` on a real embedded node: journal + snapshots, ranks, live rank changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.leaderboard import (
    LeaderboardActor,
    OptOut,
    RankOf,
    SetScore,
    Top,
    leaderboard_topic,
)
from tektree import ActorFailed, Node
from tektree.cluster.pubsub import LocalPubSub, Subscription
from tektree.persistence import JOURNAL, SNAPSHOTS, Journal, JournalEvent
from tektree.testing import open_test_node, test_config

T0 = dt.datetime(2025, 12, 15, tzinfo=dt.UTC)
SERVICES = [
    {"type": "service", "name": "store", "service": "store"},
    {"type": "service", "name": "cluster", "service": "cluster"},
]


class SmallSnapshots(LeaderboardActor):
    snapshot_every = 3


@asynccontextmanager
async def board_node(
    tmp_path: Path, cls: type[LeaderboardActor] = LeaderboardActor, **options: Any
) -> AsyncIterator[Node]:
    config = test_config(
        services=[*SERVICES, {"type": "actors", "kind": "leaderboard",
                              "actor": "actors.leaderboard:LeaderboardActor",
                              "options": options}],
        node={"data_dir": str(tmp_path)},
    )  # fmt: skip
    async with open_test_node(config, actors={"leaderboard": cls}) as node:
        yield node


def score(user: str, points: int, n: int, version: int = 0) -> SetScore:
    return SetScore(user_id=user, score=points, event_id=f"e{n}",
                    at=T0 + dt.timedelta(seconds=n), version=version)


def drain(sub: Subscription) -> list[Any]:
    out = []
    while sub.pending:
        out.append(sub.receive_nowait())
    return out


async def test_top_and_rank_of_with_the_users_around(tmp_path: Path) -> None:
    async with board_node(tmp_path) as node:
        ref = node.system.ref("leaderboard", "global")
        for n, (user, points) in enumerate([("ann", 50), ("bea", 80), ("cid", 50), ("dov", 10)]):
            await ref.ask(score(user, points, n))
        assert await ref.ask(Top(limit=2, offset=1)) == [
            {"rank": 2, "user_id": "ann", "score": 50},  # reached 50 before cid
            {"rank": 3, "user_id": "cid", "score": 50}]
        rank = await ref.ask(RankOf(user_id="cid", radius=1))
        assert (rank["rank"], rank["score"], rank["ranked"]) == (3, 50, 4)
        assert [e["user_id"] for e in rank["around"]] == ["ann", "cid", "dov"]
        nobody = await ref.ask(RankOf(user_id="zed"))
        assert (nobody["rank"], nobody["around"]) == (None, [])


async def test_updates_are_idempotent_by_event_id_and_ordered_by_version(tmp_path: Path) -> None:
    async with board_node(tmp_path) as node:
        ref = node.system.ref("leaderboard", "global")
        assert (await ref.ask(score("ann", 10, 1, version=1)))["status"] == "applied"
        assert (await ref.ask(score("ann", 30, 1, version=9)))["status"] == "duplicate"
        assert (await ref.ask(score("ann", 20, 2, version=2)))["status"] == "applied"
        assert (await ref.ask(score("ann", 15, 3, version=1)))["status"] == "stale"
        assert await ref.ask(Top()) == [{"rank": 1, "user_id": "ann", "score": 20}]
        assert node.store is not None
        assert await node.store.count(JOURNAL, {"actor_id": "leaderboard/global"}) == 2


async def test_rank_changes_are_published_for_the_users_that_moved_only(tmp_path: Path) -> None:
    async with board_node(tmp_path) as node:
        ref = node.system.ref("leaderboard", "weekly:2025-W51")
        for n, user in enumerate(["ann", "bea", "cid", "dov"]):
            await ref.ask(score(user, 100 - 10 * n, n))
        pubsub = node.system.extensions["pubsub"]
        assert isinstance(pubsub, LocalPubSub)
        with pubsub.subscribe(leaderboard_topic("weekly:2025-W51")) as sub:
            await ref.ask(score("dov", 95, 10))  # 4th -> 2nd: bea and cid move down
            await ref.ask(score("ann", 101, 11))  # still 1st: no rank changed, nothing sent
            await ref.ask(score("eve", 1, 12))  # a newcomer at the bottom: only eve
            frames = drain(sub)
        assert len(frames) == 2
        assert frames[0]["board"] == "weekly:2025-W51" and frames[0]["omitted"] == 0
        assert [(c["user_id"], c["previous_rank"], c["rank"]) for c in frames[0]["changes"]] == [
            ("dov", 4, 2), ("bea", 2, 3), ("cid", 3, 4)]
        assert [(c["user_id"], c["previous_rank"], c["rank"]) for c in frames[1]["changes"]] == [
            ("eve", None, 5)]


async def test_rank_changes_are_capped_per_message(tmp_path: Path) -> None:
    async with board_node(tmp_path, rank_change_limit=3) as node:
        ref = node.system.ref("leaderboard", "global")
        for n in range(6):
            await ref.ask(score(f"u{n}", 10 + n, n))
        pubsub = node.system.extensions["pubsub"]
        assert isinstance(pubsub, LocalPubSub)
        with pubsub.subscribe(leaderboard_topic("global")) as sub:
            await ref.ask(score("top", 100, 10))  # pushes all six down
            (frame,) = drain(sub)
        assert [c["user_id"] for c in frame["changes"]] == ["top", "u5", "u4"]
        assert frame["omitted"] == 4


async def test_opt_out_hides_keeps_the_score_and_publishes(tmp_path: Path) -> None:
    async with board_node(tmp_path) as node:
        ref = node.system.ref("leaderboard", "global")
        for n, user in enumerate(["ann", "bea", "cid"]):
            await ref.ask(score(user, 30 - n, n))
        pubsub = node.system.extensions["pubsub"]
        assert isinstance(pubsub, LocalPubSub)
        with pubsub.subscribe(leaderboard_topic("global")) as sub:
            await ref.ask(OptOut(user_id="ann", opted_out=True))
            (frame,) = drain(sub)
        assert [(c["user_id"], c["rank"]) for c in frame["changes"]] == [
            ("ann", None), ("bea", 1), ("cid", 2)]
        hidden = await ref.ask(RankOf(user_id="ann"))
        assert (hidden["rank"], hidden["score"], hidden["opted_out"]) == (None, None, True)
        await ref.ask(OptOut(user_id="ann", opted_out=False))
        assert (await ref.ask(Top(limit=1)))[0]["user_id"] == "ann"


async def test_the_board_survives_passivation_and_crash_recovery(tmp_path: Path) -> None:
    async with board_node(tmp_path, SmallSnapshots) as node:
        ref = node.system.ref("leaderboard", "area:rust")
        for n in range(5):
            await ref.ask(score(f"u{n}", n * 10, n, version=1))
        await ref.ask(OptOut(user_id="u1", opted_out=True))
        assert node.store is not None
        snapshot = await node.store.get(SNAPSHOTS, "leaderboard/area:rust")
        # At 3 events (3 users); the next is due once as many events came as users are scored.
        assert snapshot is not None and snapshot["seq"] == 3
        for n in (2, 3):
            await ref.ask(score(f"u{n}", n * 10 + 1, 10 + n, version=2))
        snapshot = await node.store.get(SNAPSHOTS, "leaderboard/area:rust")
        assert snapshot is not None and snapshot["seq"] == 8  # 5 events after 3, 5 users
        before = await ref.ask(Top(limit=10))
        with trio.fail_after(5):
            await node.system.passivate_all()
        assert await ref.ask(Top(limit=10)) == before
        assert (await ref.ask(score("u4", 40, 99, version=1)))["status"] == "stale"


async def test_a_journal_of_iso_reach_times_still_folds(tmp_path: Path) -> None:
    # Score events once held their reach time as ISO text ("at"); they now hold "at_us".
    old = {"type": "leaderboard.score", "user": "ann", "score": 50,
           "at": "2025-12-15T00:00:02.000000Z", "version": 1, "opted_out": False}
    async with board_node(tmp_path) as node:
        assert node.store is not None
        await Journal(node.store).append("leaderboard/global", [
            JournalEvent(event_id="old", event_type="leaderboard.score", data=old)])
        ref = node.system.ref("leaderboard", "global")
        await ref.ask(score("bea", 50, 1, version=1))  # the same score, reached a second earlier
        await ref.ask(score("cid", 50, 3, version=1))
        assert [e["user_id"] for e in await ref.ask(Top())] == ["bea", "ann", "cid"]
        assert (await ref.ask(score("ann", 40, 4, version=1)))["status"] == "stale"
        page = await node.store.find(JOURNAL, {"actor_id": "leaderboard/global"}, sort=[("seq", 1)])
        # [user, score, reach time in µs, version, opted out]
        assert page.items[1]["data"]["scores"] == [
            ["bea", 50, (T0 + dt.timedelta(seconds=1)).timestamp() * 1e6, 1, False]]
        with trio.fail_after(5):
            await node.system.passivate_all()
        assert [e["user_id"] for e in await ref.ask(Top())] == ["bea", "ann", "cid"]


async def test_bad_board_names_and_arguments_fail_clearly(tmp_path: Path) -> None:
    async with board_node(tmp_path) as node:
        with pytest.raises(ActorFailed, match="BoardNameError"):
            await node.system.ref("leaderboard", "weekly:2025-W99").ask(Top())
    with pytest.raises(ValueError, match=r"Top\.limit must be an int in 0\.\.100"):
        Top(limit=1000)
    with pytest.raises(ValueError, match=r"SetScore\.score"):
        SetScore(user_id="ann", score=-1, event_id="e")


async def test_a_batch_of_versioned_updates_is_one_journal_event(tmp_path: Path) -> None:
    # Tells queue while nothing yields, so the ask after them ends one batch of all six.
    updates = [score("ann", 10, 1, version=1), score("bea", 20, 2, version=1),
               SetScore(user_id="ann", score=5, event_id="op", at=T0),  # no version: own id
               score("cid", 30, 3, version=1), score("ann", 40, 4, version=2)]
    async with board_node(tmp_path) as node, board_node(tmp_path) as other:
        ref = node.system.ref("leaderboard", "global")
        for update in updates:
            await ref.tell(update)
        last = await ref.ask(score("dov", 1, 5, version=1))
        assert last == {"status": "applied", "rank": 4}
        assert node.store is not None
        page = await node.store.find(JOURNAL, {"actor_id": "leaderboard/global"}, sort=[("seq", 1)])
        assert [(e["event_id"], e["event_type"]) for e in page.items] == [
            ("e1", "leaderboard.scores"), ("op", "leaderboard.score"),
            ("e3", "leaderboard.scores")]
        assert [row[:2] for row in page.items[2]["data"]["scores"]] == [
            ["cid", 30], ["ann", 40], ["dov", 1]]
        top = [(e["user_id"], e["score"]) for e in await ref.ask(Top())]
        assert top == [("ann", 40), ("cid", 30), ("bea", 20), ("dov", 1)]
        # Redelivered, every update is stale (versioned) or a duplicate (its own id).
        for update in updates[:-1]:
            await ref.tell(update)
        replies = await ref.ask(updates[-1])
        assert replies["status"] == "stale"
        assert await node.store.count(JOURNAL, {"actor_id": "leaderboard/global"}) == 3
        # Another activation recovers the same board from the journal alone (no snapshot yet).
        assert await other.system.ref("leaderboard", "global").ask(Top()) == await ref.ask(Top())


async def test_an_update_reusing_a_batch_id_does_not_drop_the_rest_of_its_batch(
    tmp_path: Path,
) -> None:
    async with board_node(tmp_path) as node:
        ref = node.system.ref("leaderboard", "global")
        assert (await ref.ask(score("ann", 10, 1, version=1)))["status"] == "applied"
        await ref.tell(score("ann", 30, 1, version=9))  # e1 again, as the first of a batch
        await ref.tell(score("bea", 20, 2, version=1))
        assert (await ref.ask(score("cid", 5, 3, version=1)))["status"] == "applied"
        top = [(e["user_id"], e["score"]) for e in await ref.ask(Top())]
        assert top == [("bea", 20), ("ann", 10), ("cid", 5)]
        assert node.store is not None
        page = await node.store.find(JOURNAL, {"actor_id": "leaderboard/global"}, sort=[("seq", 1)])
        assert [e["event_id"] for e in page.items] == ["e1", "e2"]  # the rest, appended again


async def test_no_rank_changes_are_built_for_a_topic_nobody_listens_to(tmp_path: Path) -> None:
    async with board_node(tmp_path) as node:
        ref = node.system.ref("leaderboard", "global")
        pubsub = node.system.extensions["pubsub"]
        assert isinstance(pubsub, LocalPubSub)
        published = pubsub.stats().published
        for n, user in enumerate(["ann", "bea", "cid"]):
            reply = await ref.ask(score(user, 10 * n, n))
            assert reply == {"status": "applied", "rank": 1}  # replies still carry the rank
        assert pubsub.stats().published == published
        with pubsub.subscribe(leaderboard_topic("global")) as sub:
            await ref.ask(score("ann", 100, 9))
            (frame,) = drain(sub)
        assert [(c["user_id"], c["previous_rank"], c["rank"]) for c in frame["changes"]] == [
            ("ann", 3, 1), ("cid", 1, 2), ("bea", 2, 3)]


async def test_snapshots_are_due_by_updates_folded_not_by_journal_events(tmp_path: Path) -> None:
    async with board_node(tmp_path, SmallSnapshots) as node:
        assert node.store is not None
        ref = node.system.ref("leaderboard", "global")
        for n in range(4):
            await ref.tell(score(f"u{n}", 10 + n, n, version=1))
        await ref.ask(score("u4", 1, 4, version=1))  # one event of 5 updates, 5 users
        snapshot = await node.store.get(SNAPSHOTS, "leaderboard/global")
        assert snapshot is not None and snapshot["seq"] == 1
        assert snapshot["state"]["board"]["users"] == ["u3", "u2", "u1", "u0", "u4"]
        for n in range(4):  # 4 updates after it, in 4 events: not yet 5
            await ref.ask(score(f"u{n}", 20 + n, 10 + n, version=2))
        assert (await node.store.get(SNAPSHOTS, "leaderboard/global") or {})["seq"] == 1
        await ref.ask(score("u4", 30, 20, version=2))
        assert (await node.store.get(SNAPSHOTS, "leaderboard/global") or {})["seq"] == 6
