"""Areas on a real store: hierarchy, unique slugs, breadcrumbs through moves and renames, cycles
refused, visibility, followers, content_count, and concurrent writers."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from content_kit import BODY, World

from actors.accounts import ANONYMOUS, AccountError, Viewer
from actors.areas import (
    AREA_FOLLOWERS,
    AREAS,
    MAX_DEPTH,
    Area,
    free_slug,
    validate_slug,
)
from actors.knowledge import KnowledgeError


async def _doc(world: World, area_id: str) -> dict[str, Any]:
    doc = await world.store.get(AREAS, area_id)
    assert doc is not None
    return doc


def _crumbs(area: Area) -> list[tuple[str, str, str]]:
    return [(c.id, c.slug, c.title) for c in area.breadcrumbs]


async def _chain(world: World, owner: str, *titles: str) -> list[Area]:
    """Areas nested one in the next, the first at the top."""
    out: list[Area] = []
    for title in titles:
        out.append(await world.areas.create_area(owner, title=title,
                                                 parent_id=out[-1].id if out else None))
    return out


# -- pure rules ------------------------------------------------------------------------------------
def test_free_slug_takes_the_first_free_suffix() -> None:
    assert free_slug("python", set()) == "python"
    assert free_slug("python", {"python", "python-2", "python-4"}) == "python-3"


@pytest.mark.parametrize("bad", ["Python", "a--b", "-a", "a-", "a b", "", "x" * 81, 3])
def test_bad_slugs_are_refused(bad: Any) -> None:
    with pytest.raises(KnowledgeError) as info:
        validate_slug(bad)
    assert (info.value.field, info.value.rule) == ("slug", "format")


# -- creation --------------------------------------------------------------------------------------
async def test_create_nested_areas_with_breadcrumbs_and_event(world: World) -> None:
    ada = await world.user("ada")
    top, mid, leaf = await _chain(world, ada, "Programming", "Architecture", "Event-Driven")
    assert (top.slug, top.parent_id, top.depth, top.breadcrumbs) == ("programming", None, 0, ())
    assert _crumbs(leaf) == [(top.id, "programming", "Programming"),
                             (mid.id, "architecture", "Architecture")]
    assert leaf.trail == "Programming > Architecture > Event-Driven" and leaf.depth == 2
    assert (await _doc(world, top.id))["child_count"] == 1
    assert (await _doc(world, leaf.id))["ancestor_ids"] == [top.id, mid.id]
    created = await world.events("knowledge.area.created")
    assert [e["payload"]["area_id"] for e in created] == [top.id, mid.id, leaf.id]
    assert created[2]["payload"] == {"area_id": leaf.id, "title": "Event-Driven",
                                     "created_by": ada, "parent_id": mid.id,
                                     "slug": "event-driven", "visibility": "public"}
    assert await world.areas.get_by_slug("event-driven") == leaf
    assert await world.areas.get_area(mid.id) == await world.areas.get_area(mid.id)


async def test_derived_slugs_are_made_unique_and_explicit_ones_refused(world: World) -> None:
    ada = await world.user("ada")
    first = await world.areas.create_area(ada, title="Python")
    second = await world.areas.create_area(ada, title="python!")
    third = await world.areas.create_area(ada, title="Python", slug="py")
    assert (first.slug, second.slug, third.slug) == ("python", "python-2", "py")
    with pytest.raises(KnowledgeError) as info:
        await world.areas.create_area(ada, title="Another", slug="python-2")
    assert (info.value.field, info.value.rule) == ("slug", "unique")
    assert await world.store.count(AREAS) == 3


@pytest.mark.parametrize(("kwargs", "field", "rule"), [
    ({"title": "ab"}, "title", "length"),
    ({"title": "x" * 121}, "title", "length"),
    ({"slug": "Bad Slug"}, "slug", "format"),
    ({"details": "x" * 5001}, "details", "length"),
    ({"tags": ["ok", "Not Ok"]}, "tags", "format"),
    ({"visibility": "secret"}, "visibility", "enum"),
    ({"parent_id": "area_nope"}, "parent_id", "exists"),
])
async def test_bad_area_input_names_field_and_rule(
    world: World, kwargs: dict[str, Any], field: str, rule: str
) -> None:
    ada = await world.user("ada")
    with pytest.raises(KnowledgeError) as info:
        await world.areas.create_area(ada, **{"title": "Valid title", **kwargs})
    assert (info.value.field, info.value.rule) == (field, rule)
    assert await world.store.count(AREAS) == 0


async def test_the_hierarchy_is_at_most_max_depth_levels(world: World) -> None:
    ada = await world.user("ada")
    chain = await _chain(world, ada, *(f"Level {i}" for i in range(MAX_DEPTH)))
    assert chain[-1].depth == MAX_DEPTH - 1
    with pytest.raises(KnowledgeError) as info:
        await world.areas.create_area(ada, title="Too deep", parent_id=chain[-1].id)
    assert (info.value.field, info.value.rule) == ("parent_id", "depth")
    other = await world.areas.create_area(ada, title="Another root")
    await world.areas.create_area(ada, title="Its child", parent_id=other.id)
    with pytest.raises(KnowledgeError) as moved:  # 2 levels under level 6 would make 9
        await world.areas.move_area(other.id, chain[-2].id, ada)
    assert (moved.value.field, moved.value.rule) == ("new_parent_id", "depth")


# -- moves and renames ---------------------------------------------------------------------------
async def test_a_moved_area_and_all_its_descendants_get_new_breadcrumbs(world: World) -> None:
    ada = await world.user("ada")
    prog, arch, events_area, sagas = await _chain(
        world, ada, "Programming", "Architecture", "Event-Driven", "Sagas")
    outbox = await world.areas.create_area(ada, title="Outbox", parent_id=events_area.id)
    systems = await world.areas.create_area(ada, title="Systems")
    moved = await world.areas.move_area(arch.id, systems.id, ada, correlation_id="req-m")
    assert moved.parent_id == systems.id and moved.depth == 1
    assert _crumbs(moved) == [(systems.id, "systems", "Systems")]
    for area, trail in [(events_area, "Systems > Architecture > Event-Driven"),
                        (sagas, "Systems > Architecture > Event-Driven > Sagas"),
                        (outbox, "Systems > Architecture > Event-Driven > Outbox")]:
        got = await world.areas.get_area(area.id)
        assert got is not None and got.trail == trail
        doc = await _doc(world, area.id)
        assert doc["ancestor_ids"] == [c.id for c in got.breadcrumbs]
        assert doc["depth"] == len(got.breadcrumbs)
    assert [c.id for c in (await world.areas.get_area(sagas.id)).breadcrumbs] == [  # type: ignore[union-attr]
        systems.id, arch.id, events_area.id]
    assert (await _doc(world, prog.id))["child_count"] == 0
    assert (await _doc(world, systems.id))["child_count"] == 1
    (evt,) = await world.events("knowledge.area.moved")
    assert evt["payload"] == {"area_id": arch.id, "moved_by": ada, "old_parent_id": prog.id,
                              "new_parent_id": systems.id, "descendants": 3}
    assert evt["correlation_id"] == "req-m"
    top = await world.areas.move_area(sagas.id, None, ada)  # to the top
    assert (top.parent_id, top.depth, top.breadcrumbs, top.trail) == (None, 0, (), "Sagas")
    assert await world.areas.subtree_ids(systems.id) == [systems.id, arch.id, events_area.id,
                                                         outbox.id]


async def test_moving_an_area_under_itself_or_a_descendant_is_refused(world: World) -> None:
    ada = await world.user("ada")
    a, b, c = await _chain(world, ada, "Alpha", "Beta", "Gamma")
    before = [await _doc(world, x.id) for x in (a, b, c)]
    for target in (a, b, c):
        with pytest.raises(KnowledgeError) as info:
            await world.areas.move_area(a.id, target.id, ada)
        assert (info.value.field, info.value.rule) == ("new_parent_id", "cycle")
    assert [await _doc(world, x.id) for x in (a, b, c)] == before
    assert await world.events("knowledge.area.moved") == []
    same = await world.areas.move_area(c.id, b.id, ada)  # already there: nothing to do
    assert same.parent_id == b.id and await world.events("knowledge.area.moved") == []


async def test_a_rename_reaches_every_descendants_breadcrumbs(world: World) -> None:
    ada = await world.user("ada")
    top, mid, leaf = await _chain(world, ada, "Programming", "Architecture", "Event-Driven")
    renamed = await world.areas.update_area(mid.id, ada, {"title": "Software Design",
                                                          "slug": "software-design"})
    assert (renamed.title, renamed.slug) == ("Software Design", "software-design")
    got = await world.areas.get_area(leaf.id)
    assert got is not None and got.trail == "Programming > Software Design > Event-Driven"
    assert _crumbs(got)[1] == (mid.id, "software-design", "Software Design")
    with pytest.raises(KnowledgeError) as info:
        await world.areas.update_area(leaf.id, ada, {"slug": "programming"})
    assert (info.value.field, info.value.rule) == ("slug", "unique")
    plain = await world.areas.update_area(leaf.id, ada, {"tags": ["EDA"], "details": "more"})
    assert plain.tags == ("eda",) and plain.details == "more" and plain.trail == got.trail
    updated = await world.events("knowledge.area.updated")
    assert [e["payload"]["changed_fields"] for e in updated] == [["slug", "title"],
                                                                 ["details", "tags"]]
    for changes, field in [({}, "changes"), ({"parent_id": top.id}, "parent_id")]:
        with pytest.raises(KnowledgeError) as bad:
            await world.areas.update_area(leaf.id, ada, changes)
        assert bad.value.field == field


async def test_only_the_creator_or_a_moderator_changes_an_area(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    area = await world.areas.create_area(ada, title="Mine")
    other = await world.areas.create_area(bob, title="Elsewhere")
    for call in (world.areas.update_area(area.id, bob, {"details": "x"}),
                 world.areas.move_area(area.id, other.id, bob),
                 world.areas.delete_area(area.id, bob)):
        with pytest.raises(KnowledgeError) as info:
            await call
        assert (info.value.field, info.value.rule) == ("by_user_id", "forbidden")
    assert (await world.areas.update_area(area.id, mod, {"details": "tidied"})).details == (
        "tidied")
    assert (await world.areas.move_area(area.id, other.id, mod)).parent_id == other.id


# -- visibility ------------------------------------------------------------------------------------
async def test_private_and_connections_areas_are_seen_by_whom_they_allow(world: World) -> None:
    ada, bob, cy = await world.user("ada"), await world.user("bob"), await world.user("cy")
    mod = await world.user("mod", role="moderator")
    private = await world.areas.create_area(ada, title="Private notes", visibility="private")
    friends = await world.areas.create_area(ada, title="For friends", visibility="connections")
    await world.connections.connect(ada, bob)
    assert await world.connections.connect(bob, ada)  # both consented
    await world.connections.connect(cy, ada)  # cy only asked
    seen = {uid: [a.id for a in (await world.areas.list_children(
        viewer=await world.viewer(uid))).items] for uid in (ada, bob, cy, mod)}
    assert sorted(seen[ada]) == sorted([private.id, friends.id])
    assert seen[bob] == [friends.id] and seen[cy] == [] and sorted(seen[mod]) == sorted(
        [private.id, friends.id])
    assert await world.areas.get_area(private.id, viewer=ANONYMOUS) is None
    assert await world.areas.get_area(friends.id, viewer=Viewer(user_id=bob)) is not None
    assert await world.areas.get_area(friends.id, viewer=Viewer(user_id=cy)) is None
    with pytest.raises(KnowledgeError) as info:  # cy cannot file a sub-area under it
        await world.areas.create_area(cy, title="Sneaky", parent_id=private.id)
    assert (info.value.field, info.value.rule) == ("parent_id", "exists")
    with pytest.raises(KnowledgeError) as posted:  # nor a question
        await world.knowledge.post_question(cy, title="A question for friends?", body=BODY,
                                            area_ids=[friends.id])
    assert (posted.value.field, posted.value.rule) == ("area_ids", "exists")


# -- followers and counts --------------------------------------------------------------------------
async def test_follow_unfollow_counts_and_events(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    area = await world.areas.create_area(ada, title="Trio")
    assert await world.areas.follow(area.id, bob) is True
    assert await world.areas.follow(area.id, bob) is False  # already following
    assert await world.areas.is_following(area.id, bob)
    assert [a.id for a in (await world.areas.list_followed(bob)).items] == [area.id]
    assert (await world.areas.get_area(area.id)).follower_count == 1  # type: ignore[union-attr]
    assert await world.areas.unfollow(area.id, bob) is True
    assert await world.areas.unfollow(area.id, bob) is False
    assert await world.areas.follow(area.id, bob) is True
    assert (await world.areas.get_area(area.id)).follower_count == 1  # type: ignore[union-attr]
    kinds = [e["event_type"] for e in await world.events("knowledge.area.followed")]
    kinds += [e["event_type"] for e in await world.events("knowledge.area.unfollowed")]
    assert sorted(kinds) == ["knowledge.area.followed"] * 2 + ["knowledge.area.unfollowed"]
    with pytest.raises(KnowledgeError) as info:
        await world.areas.follow("area_nope", bob)
    assert (info.value.field, info.value.rule) == ("area_id", "exists")


async def test_content_count_follows_content_and_empty_areas_delete(world: World) -> None:
    ada = await world.user("ada")
    top, child = await _chain(world, ada, "Databases", "Event stores")
    q = await world.knowledge.post_question(ada, title="Which event store for Python?",
                                            body=BODY, area_ids=[top.id, child.id])
    assert [(await _doc(world, a.id))["content_count"] for a in (top, child)] == [1, 1]
    for area_id, fragment in [(top.id, "1 sub-areas"), (child.id, "1 pieces")]:
        with pytest.raises(KnowledgeError) as info:
            await world.areas.delete_area(area_id, ada)
        assert info.value.rule == "not_empty" and fragment in info.value.detail
    mod = await world.user("mod", role="moderator")
    await world.moderation.delete("question", q.id, mod, reason="duplicate of another")
    assert [(await _doc(world, a.id))["content_count"] for a in (top, child)] == [0, 0]
    await world.areas.follow(child.id, ada)
    await world.areas.delete_area(child.id, ada, reason="merged")
    assert await world.areas.get_area(child.id) is None
    assert await world.store.count(AREA_FOLLOWERS, {"area_id": child.id}) == 0
    assert (await _doc(world, top.id))["child_count"] == 0
    (deleted,) = await world.events("knowledge.area.deleted")
    assert deleted["payload"]["deleted_by"] == ada and deleted["metadata"] == {
        "reason": "merged"}


async def test_a_suspended_user_creates_no_area(world: World) -> None:
    ada = await world.user("ada")
    mod = await world.user("mod", role="moderator")
    await world.moderation.suspend_user(ada, mod, reason="spam wave")
    with pytest.raises(AccountError) as info:
        await world.areas.create_area(ada, title="Spam area")
    assert (info.value.field, info.value.rule) == ("by_user_id", "suspended")
    assert await world.store.count(AREAS) == 0


# -- concurrency (SQLite: atomic units) --------------------------------------------------------
async def test_concurrent_creations_with_one_title_get_distinct_slugs(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    ada = await world.user("ada")
    parent = await world.areas.create_area(ada, title="Root")
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(lambda: world.areas.create_area(ada, title="Kafka",
                                                               parent_id=parent.id))
    docs = (await world.store.find(AREAS, {"parent_id": parent.id}, limit=100)).items
    slugs = sorted(d["slug"] for d in docs)
    assert len(docs) == 20 and slugs == sorted(["kafka", *(f"kafka-{n}" for n in range(2, 21))])
    assert (await _doc(world, parent.id))["child_count"] == 20


async def test_concurrent_creations_with_one_explicit_slug_keep_one(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    ada = await world.user("ada")
    outcomes: list[str] = []

    async def create(n: int) -> None:
        try:
            await world.areas.create_area(ada, title=f"Area {n}", slug="the-one")
            outcomes.append("created")
        except KnowledgeError as exc:
            outcomes.append(f"{exc.field}:{exc.rule}")

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(create, n)
    assert sorted(outcomes) == ["created"] + ["slug:unique"] * 9
    assert await world.store.count(AREAS, {"slug": "the-one"}) == 1


async def test_crossing_concurrent_moves_never_make_a_cycle(sqlite_world: World) -> None:
    world = sqlite_world
    ada = await world.user("ada")
    a = await world.areas.create_area(ada, title="Alpha")
    b = await world.areas.create_area(ada, title="Beta")
    outcomes: list[str] = []

    async def move(area: Area, under: Area) -> None:
        try:
            await world.areas.move_area(area.id, under.id, ada)
            outcomes.append("moved")
        except KnowledgeError as exc:
            outcomes.append(exc.rule)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(move, a, b)
        nursery.start_soon(move, b, a)
    assert sorted(outcomes) == ["cycle", "moved"]
    docs = {d["_id"]: d for d in (await world.store.find(AREAS, limit=10)).items}
    tops = [d for d in docs.values() if d["parent_id"] is None]
    assert len(tops) == 1  # one of them is at the top, the other under it
    child = next(d for d in docs.values() if d["parent_id"] is not None)
    assert child["ancestor_ids"] == [tops[0]["_id"]]


async def test_a_child_created_during_a_move_gets_the_new_breadcrumbs(
    sqlite_world: World,
) -> None:
    world = sqlite_world
    ada = await world.user("ada")
    a, b = await _chain(world, ada, "Alpha", "Beta")
    target = await world.areas.create_area(ada, title="Target")
    children: list[Area] = []

    async def create(n: int) -> None:
        children.append(await world.areas.create_area(ada, title=f"Child {n}",
                                                      parent_id=b.id))

    async with trio.open_nursery() as nursery:
        for n in range(5):
            nursery.start_soon(create, n)
        nursery.start_soon(lambda: world.areas.move_area(a.id, target.id, ada))
    for child in children:
        got = await world.areas.get_area(child.id)
        assert got is not None
        assert got.trail == f"Target > Alpha > Beta > {child.title}"
