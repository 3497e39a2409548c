"""Search over areas, questions and insights on SQLite (FTS5): relevance, filters, what may be
seen, the index in step with every write, bad queries and pages.

MongoDB: the same service runs on ``MongoStore``, whose ``$text`` path is covered by the store
contract (``tests/persistence/test_text_search.py``) against a real server only; mongomock 4.3
has no ``$text``, so these tests run on SQLite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from content_kit import BODY, World, open_world

from actors.accounts import Viewer
from actors.knowledge import KnowledgeError
from actors.search import MAX_DEPTH, SearchResult


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(tmp_path) as w:
        yield w


def _hits(results: tuple[SearchResult, ...]) -> list[tuple[str, str]]:
    return [(r.content_type, r.item.id) for r in results]


async def _ids(world: World, query: str, **kw: object) -> list[str]:
    return [r.item.id for r in (await world.search.search(query, **kw)).items]  # type: ignore[arg-type]


async def test_areas_questions_and_insights_in_relevance_order(world: World) -> None:
    ada = await world.user("ada")
    area = await world.areas.create_area(ada, title="Event sourcing",
                                         details="Patterns for storing every change")
    in_title = await world.knowledge.post_question(ada, title="Event sourcing with snapshots?",
                                                   body=BODY)
    in_body = await world.knowledge.post_question(
        ada, title="How should I store changes?", body="I read about event sourcing. " + BODY)
    unrelated = await world.knowledge.post_question(ada, title="How do trio nurseries work?",
                                                    body=BODY)
    insight = await world.content.create_insight(ada, title="Event sourcing in practice",
                                                 body=BODY)
    await world.content.publish_insight(insight.id, ada)
    questions = await world.search.search("event sourcing", content_types=["question"])
    assert _hits(questions.items) == [("question", in_title.id), ("question", in_body.id)]
    assert questions.items[0].score > questions.items[1].score
    everything = await world.search.search("event sourcing")
    assert sorted(_hits(everything.items)) == sorted([
        ("area", area.id), ("question", in_title.id), ("question", in_body.id),
        ("insight", insight.id)])
    scores = [r.score for r in everything.items]
    assert scores == sorted(scores, reverse=True)
    assert unrelated.id not in await _ids(world, "event sourcing")
    assert await _ids(world, '"changes store"') == []  # a phrase must appear as written
    assert await _ids(world, '"store changes"') == [in_body.id]
    assert await _ids(world, '"store every change"', content_types=["area"]) == [area.id]
    assert await _ids(world, "sourced -snapshots", content_types=["question"]) == [in_body.id]


async def test_filters_by_area_subtree_tag_and_status(world: World) -> None:
    ada = await world.user("ada")
    top = await world.areas.create_area(ada, title="Data")
    child = await world.areas.create_area(ada, title="Streams", parent_id=top.id)
    other = await world.areas.create_area(ada, title="Frontend")
    in_child = await world.knowledge.post_question(ada, title="Kafka consumer groups?",
                                                   body=BODY, area_ids=[child.id],
                                                   tags=["kafka"])
    elsewhere = await world.knowledge.post_question(ada, title="Kafka in the browser?",
                                                    body=BODY, area_ids=[other.id])
    insight = await world.content.create_insight(ada, title="Kafka partitions explained",
                                                 body=BODY, area_ids=[top.id], tags=["kafka"])
    await world.content.publish_insight(insight.id, ada)
    assert sorted(await _ids(world, "kafka", area_id=top.id)) == sorted([in_child.id,
                                                                          insight.id])
    assert await _ids(world, "kafka", area_id=other.id) == [elsewhere.id]
    assert sorted(await _ids(world, "kafka", tag="Kafka")) == sorted([in_child.id, insight.id])
    assert await _ids(world, "streams", area_id=top.id) == [child.id]  # areas below it too
    await world.questions.close(elsewhere.id, ada)
    assert await _ids(world, "kafka", status="closed") == [elsewhere.id]
    assert await _ids(world, "kafka", status="open") == [in_child.id]
    for kwargs, field, rule in [
        ({"status": "open", "content_types": ["area", "question"]}, "status", "combination"),
        ({"status": "pending"}, "status", "enum"),
        ({"content_types": ["answer"]}, "content_types", "enum"),
        ({"content_types": "question"}, "content_types", "type"),
        ({"tag": "Not A Tag"}, "tags", "format"),
        ({"area_id": "area_missing"}, "area_id", "exists"),
    ]:
        with pytest.raises(KnowledgeError) as info:
            await world.search.search("kafka", **kwargs)  # type: ignore[arg-type]
        assert (info.value.field, info.value.rule) == (field, rule)


async def test_only_what_anybody_may_see_is_found(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    draft = await world.content.create_insight(ada, title="Zeppelin draft notes", body=BODY)
    private = await world.content.create_insight(ada, title="Zeppelin private notes",
                                                 body=BODY, visibility="private")
    await world.content.publish_insight(private.id, ada)
    secret_area = await world.areas.create_area(ada, title="Zeppelin club",
                                                visibility="private")
    q = await world.knowledge.post_question(bob, title="Who built the first zeppelin?",
                                            body=BODY)
    assert await _ids(world, "zeppelin") == [q.id]
    await world.moderation.hide("question", q.id, mod, reason="plagiarised text")
    assert await _ids(world, "zeppelin") == []
    await world.moderation.unhide("question", q.id, mod, reason="cleared on appeal")
    assert await _ids(world, "zeppelin") == [q.id]
    await world.content.publish_insight(draft.id, ada)
    assert sorted(await _ids(world, "zeppelin")) == sorted([q.id, draft.id])
    with pytest.raises(KnowledgeError):  # the private area is not a filter for bob either
        await world.search.search("zeppelin", area_id=secret_area.id,
                                  viewer=Viewer(user_id=bob))


async def test_the_index_follows_edits_and_deletions_at_once(world: World) -> None:
    ada = await world.user("ada")
    mod = await world.user("mod", role="moderator")
    insight = await world.content.create_insight(ada, title="Quokka behaviour notes",
                                                 body=BODY)
    await world.content.publish_insight(insight.id, ada)
    assert await _ids(world, "quokka") == [insight.id]
    await world.content.update("insight", insight.id, ada,
                               {"title": "Wombat behaviour notes"})
    assert await _ids(world, "quokka") == [] and await _ids(world, "wombat") == [insight.id]
    area = await world.areas.create_area(ada, title="Marsupials")
    await world.areas.update_area(area.id, ada, {"details": "Wombats, mostly"})
    assert sorted(await _ids(world, "wombat")) == sorted([insight.id, area.id])
    await world.content.delete("insight", insight.id, ada)
    await world.moderation.delete("area", area.id, mod, reason="test area, not needed")
    assert await _ids(world, "wombat") == []


@pytest.mark.parametrize(("query", "fragment"), [
    ('"unclosed', "never closed"),
    ("-only -exclusions", "no word to look for"),
    ("", "no word to look for"),
    ("( ) * + ~", "no word to look for"),
    ("x" * 300, "at most 256"),
])
async def test_bad_queries_are_clear_errors(world: World, query: str, fragment: str) -> None:
    with pytest.raises(KnowledgeError) as info:
        await world.search.search(query)
    assert (info.value.field, info.value.rule) == ("q", "syntax")
    assert fragment in info.value.detail


async def test_fts_operators_typed_by_users_are_plain_words(world: World) -> None:
    ada = await world.user("ada")
    q = await world.knowledge.post_question(ada, title="NEAR and NOT in a title?", body=BODY)
    assert await _ids(world, "NEAR NOT AND OR") == [q.id]
    assert await _ids(world, 'near* "not" (and)') == [q.id]


async def test_pages_cover_the_results_once_and_cursors_are_bound(world: World) -> None:
    ada = await world.user("ada")
    posted = [await world.knowledge.post_question(ada, title=f"Narwhal question number {n}?",
                                                  body=BODY) for n in range(12)]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await world.search.search("narwhal", limit=5, cursor=cursor)
        seen += [r.item.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(q.id for q in posted) and len(seen) == 12
    first = await world.search.search("narwhal", limit=5)
    with pytest.raises(KnowledgeError) as info:
        await world.search.search("narwhal", content_types=["area"], cursor=first.next_cursor)
    assert (info.value.field, info.value.rule) == ("cursor", "valid")
    assert MAX_DEPTH == 500
