"""The content features on a real two-node cluster: one SQLite file shared (each node with its own
store on it, as two processes would be), Redis between the nodes, the users' profiles homed on
different nodes.

- a moved area's breadcrumbs, written on one node, read right on both, with children created on
  the other node during the move;
- likes and slugs kept unique when both nodes write at once;
- the XP of an insight, a comment and likes reaching profiles on both nodes through the outbox;
- a suspension decided on one node holding on the other; search seeing the other node's writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from content_kit import BODY, World, build_world, earned
from test_game_cluster import relay_all, two_nodes

from actors.accounts import AccountSuspended, Viewer
from actors.areas import AREAS
from actors.content_model import INSIGHTS
from actors.knowledge import KnowledgeError
from tektree import Node
from tektree.testing.redis import RedisServer

PASSWORD = "correct horse battery"


async def _worlds(nodes: list[Node]) -> list[World]:
    worlds = []
    for node in nodes:  # one after the other: the second finds the first's indexes
        assert node.store is not None
        worlds.append(await build_world(node.store))
    return worlds


async def _one_user_on_each(world: World, n1: Node) -> tuple[str, str]:
    """Two registered users: the first homed on ``n1``, the second on the other node."""
    router = n1.system.router
    assert router is not None
    here = there = None
    for n in range(64):
        uid = await world.user(f"u{n}_")
        if router.remote_home(n1.system.ref("user", uid).id) is None:
            here = here or uid
        else:
            there = there or uid
        if here and there:
            return here, there
    raise AssertionError("64 users, all homed on one node")


async def test_a_moved_area_on_two_nodes(redis_server: RedisServer, tmp_path: Path) -> None:
    async with two_nodes(redis_server.url, tmp_path) as nodes:
        w1, w2 = await _worlds(nodes)
        ada = await w1.user("ada")
        prog = await w1.areas.create_area(ada, title="Programming")
        arch = await w1.areas.create_area(ada, title="Architecture", parent_id=prog.id)
        eda = await w1.areas.create_area(ada, title="Event-Driven", parent_id=arch.id)
        systems = await w2.areas.create_area(ada, title="Systems")
        children: list[str] = []

        async def create_on_n1(n: int) -> None:
            area = await w1.areas.create_area(ada, title=f"Pattern {n}", parent_id=eda.id)
            children.append(area.id)

        async with trio.open_nursery() as nursery:
            for n in range(6):
                nursery.start_soon(create_on_n1, n)
            nursery.start_soon(lambda: w2.areas.move_area(arch.id, systems.id, ada))
        for world in (w1, w2):
            got = await world.areas.get_area(eda.id)
            assert got is not None and got.trail == "Systems > Architecture > Event-Driven"
            for child_id in children:
                child = await world.areas.get_area(child_id)
                assert child is not None
                assert child.trail.startswith("Systems > Architecture > Event-Driven > ")
                assert [c.id for c in child.breadcrumbs] == [systems.id, arch.id, eda.id]
        # crossing moves from the two nodes: one wins, no cycle
        outcomes: list[str] = []

        async def move(world: World, area_id: str, under: str) -> None:
            try:
                await world.areas.move_area(area_id, under, ada)
                outcomes.append("moved")
            except KnowledgeError as exc:
                outcomes.append(exc.rule)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(move, w1, prog.id, systems.id)
            nursery.start_soon(move, w2, systems.id, prog.id)
        assert sorted(outcomes) == ["cycle", "moved"]
        tops = await w1.store.count(AREAS, {"_id": {"$in": [prog.id, systems.id]},
                                            "parent_id": None})
        assert tops == 1


async def test_likes_and_slugs_stay_unique_across_nodes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with two_nodes(redis_server.url, tmp_path) as nodes:
        w1, w2 = await _worlds(nodes)
        ada, bob = await w1.user("ada"), await w1.user("bob")
        insight = await w1.content.create_insight(ada, title="Liked from two nodes", body=BODY)
        await w1.content.publish_insight(insight.id, ada)
        results: list[bool] = []

        async def like(world: World) -> None:
            results.append(await world.social.like("insight", insight.id, bob))

        async with trio.open_nursery() as nursery:
            for world in (w1, w2) * 4:
                nursery.start_soon(like, world)
                nursery.start_soon(lambda w=world: w.areas.create_area(ada, title="Kafka"))
        assert sorted(results) == [False] * 7 + [True]
        doc = await w2.store.get(INSIGHTS, insight.id)
        assert doc is not None and doc["like_count"] == 1
        slugs = sorted(d["slug"] for d in (await w2.store.find(AREAS, limit=20)).items)
        assert slugs == sorted(["kafka", *(f"kafka-{n}" for n in range(2, 9))])


async def test_content_xp_reaches_profiles_on_both_nodes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with two_nodes(redis_server.url, tmp_path) as (n1, n2):
        w1, w2 = await _worlds([n1, n2])
        ann, bob = await _one_user_on_each(w1, n1)
        insight = await w1.content.create_insight(ann, title="Insight across nodes",
                                                  body=BODY)
        await w1.content.publish_insight(insight.id, ann)
        comment = await w2.social.add_comment("insight", insight.id, bob, body="Well put")
        await w2.social.like("insight", insight.id, bob)
        await w1.social.like("comment", comment.id, ann)
        await w1.social.like("insight", insight.id, ann)  # own content: no XP
        await relay_all(n1)
        for node in (n1, n2):
            assert await earned(node, ann) == [("insight_published", 25), ("content_liked", 2)]
            assert await earned(node, bob) == [("comment_added", 2), ("content_liked", 2)]
        assert ann in n1.system.pools["user"].cells and bob in n2.system.pools["user"].cells


async def test_a_suspension_holds_on_the_other_node_and_search_sees_both(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with two_nodes(redis_server.url, tmp_path) as nodes:
        w1, w2 = await _worlds(nodes)
        bob = await w1.user("bob")
        mod = await w2.user("mod", role="moderator")
        q = await w1.knowledge.post_question(bob, title="Axolotl care on a budget?", body=BODY)
        found: Any = await w2.search.search("axolotl")
        assert [r.item.id for r in found.items] == [q.id]
        await w2.moderation.suspend_user(bob, mod, reason="spam on both nodes")
        email = (await w1.store.get("users", bob) or {})["email"]
        with pytest.raises(AccountSuspended) as info:
            await w1.accounts.authenticate(email=email, password=PASSWORD)
        assert info.value.user_id == bob
        await w2.moderation.hide("question", q.id, mod, reason="spam on both nodes")
        assert (await w1.search.search("axolotl")).items == ()
        assert await w1.knowledge.get_question(q.id, viewer=Viewer(user_id="someone")) is None
