"""Insights, discussions and replies, resources, comments, likes, views and question status on a
real store; concurrent likes; and the XP they earn, end to end through the outbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from content_kit import BODY, World, build_world, earned
from test_game_loop import relay_all

from actors.accounts import ANONYMOUS, AccountError, Viewer
from actors.content_base import estimated_read_time_minutes
from actors.content_core import AREAS, CONTENT_REFS
from actors.content_model import (
    COMMENTS,
    INSIGHTS,
    LIKES,
    MAX_REPLY_DEPTH,
    REPLIES,
    reply_path,
    validate_file,
)
from actors.knowledge import QUESTION_TAGS, KnowledgeError
from actors.leaderboard import LeaderboardActor
from actors.profile import UserProfileActor
from actors.rooms import RoomActor
from tektree.persistence import EVENTS
from tektree.testing import open_test_node, test_config

ARTICLE = "# Event sourcing\n\n" + "Store every change as an event and fold them. " * 60


async def _doc(world: World, collection: str, doc_id: str) -> dict[str, Any]:
    doc = await world.store.get(collection, doc_id)
    assert doc is not None
    return doc


# -- pure rules ------------------------------------------------------------------------------------
def test_read_time_counts_words_and_code_lines() -> None:
    assert estimated_read_time_minutes("one two three") == 1
    assert estimated_read_time_minutes("word " * 200) == 1
    assert estimated_read_time_minutes("word " * 201) == 2
    code = "```python\n" + "x = compute(a, b, c, d, e)\n" * 150 + "```\n"
    assert estimated_read_time_minutes("intro " * 100 + "\n" + code) == 2  # 100 + 150 lines
    assert estimated_read_time_minutes("don't re-read it") == 1


def test_reply_paths_sort_as_the_thread() -> None:
    a = reply_path(None, "2026-01-01T00:00:01Z", "rpl_a")
    b = reply_path(None, "2026-01-01T00:00:02Z", "rpl_b")
    a1 = reply_path(a, "2026-01-01T00:00:03Z", "rpl_c")
    a1x = reply_path(a1, "2026-01-01T00:00:04Z", "rpl_d")
    assert sorted([b, a1x, a, a1]) == [a, a1, a1x, b]
    assert a < a1 < a + "0" and not a < b < a + "0"


@pytest.mark.parametrize(("file", "field"), [
    ({"name": "../etc/passwd", "size_bytes": 1, "content_type": "text/plain"}, "file.name"),
    ({"name": "a.pdf", "size_bytes": 0, "content_type": "application/pdf"}, "file.size_bytes"),
    ({"name": "a.pdf", "size_bytes": 2**30, "content_type": "application/pdf"},
     "file.size_bytes"),
    ({"name": "a.pdf", "size_bytes": 10, "content_type": "pdf"}, "file.content_type"),
    ({"name": "a.pdf", "size_bytes": 10, "content_type": "application/pdf", "sha256": "xyz"},
     "file.sha256"),
    ({"name": "a.pdf", "size_bytes": 10, "content_type": "application/pdf", "owner": "me"},
     "file.owner"),
    ("a.pdf", "file"),
])
def test_bad_file_metadata_names_the_field(file: Any, field: str) -> None:
    with pytest.raises(KnowledgeError) as info:
        validate_file(file)
    assert info.value.field == field


# -- insights ------------------------------------------------------------------------------------
async def test_an_insight_is_a_draft_until_its_author_publishes_it(world: World) -> None:
    ada, cy, bob = await world.user("ada"), await world.user("cy"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    area = await world.areas.create_area(ada, title="Architecture")
    draft = await world.content.create_insight(
        ada, title="Event-Driven Architecture Best Practices", body=ARTICLE,
        insight_type="tutorial", tags=["Architecture", "events"], area_ids=[area.id],
        co_authors=[cy])
    assert (draft.status, draft.published_at, draft.slug) == (
        "draft", None, "event-driven-architecture-best-practices")
    assert draft.estimated_read_time_minutes == estimated_read_time_minutes(ARTICLE) == 3
    assert draft.tags == ("architecture", "events") and draft.co_authors == (cy,)
    for who, sees in [(ada, True), (cy, True), (bob, False), (mod, False)]:
        got = await world.content.get_insight(draft.id, viewer=await world.viewer(who))
        assert (got is not None) == sees
    assert (await world.content.list_insights()).items == ()
    assert [i.id for i in (await world.content.list_drafts(ada)).items] == [draft.id]
    assert (await _doc(world, AREAS, area.id))["content_count"] == 0
    with pytest.raises(KnowledgeError) as info:
        await world.content.publish_insight(draft.id, cy)  # a co-author does not publish
    assert (info.value.field, info.value.rule) == ("by_user_id", "forbidden")
    published = await world.content.publish_insight(draft.id, ada, correlation_id="req-p")
    again = await world.content.publish_insight(draft.id, ada)
    assert published.status == "published" and published.published_at is not None
    assert again.published_at == published.published_at
    (shared,) = await world.events("knowledge.insight.shared")
    assert shared["payload"] == {"insight_id": draft.id, "author_id": ada,
                                 "title": draft.title, "insight_type": "tutorial",
                                 "co_author_ids": [cy], "tags": ["architecture", "events"],
                                 "area_ids": [area.id]}
    assert shared["correlation_id"] == "req-p"
    assert (await _doc(world, AREAS, area.id))["content_count"] == 1
    assert await world.content.get_insight(draft.id, viewer=ANONYMOUS) == published
    for listing in [await world.content.list_insights(),
                    await world.content.list_insights(area_id=area.id),
                    await world.content.list_insights(tag="events"),
                    await world.content.list_insights(author_id=ada)]:
        assert [i.id for i in listing.items] == [draft.id]
    area_items = (await world.content.list_area_content(area.id)).items
    assert [(i.content_type, i.item.id) for i in area_items] == [("insight", draft.id)]


@pytest.mark.parametrize(("kwargs", "field", "rule"), [
    ({"title": "short"}, "title", "length"),
    ({"body": "too short"}, "body", "length"),
    ({"insight_type": "essay"}, "insight_type", "enum"),
    ({"visibility": "everyone"}, "visibility", "enum"),
    ({"co_authors": ["usr_nobody"]}, "co_authors", "exists"),
    ({"co_authors": ["bad id!"]}, "co_authors", "format"),
    ({"area_ids": ["area_missing"]}, "area_ids", "exists"),
    ({"tags": ["a", "b", "c", "d", "e", "f"]}, "tags", "count"),
])
async def test_bad_insight_input_names_field_and_rule(
    world: World, kwargs: dict[str, Any], field: str, rule: str
) -> None:
    ada = await world.user("ada")
    with pytest.raises(KnowledgeError) as info:
        await world.content.create_insight(ada, **{"title": "A good long title", "body": BODY,
                                                   **kwargs})
    assert (info.value.field, info.value.rule) == (field, rule)
    assert await world.store.count(INSIGHTS) == 0


async def test_editing_moves_counts_rows_and_read_time(world: World) -> None:
    ada, cy, bob = await world.user("ada"), await world.user("cy"), await world.user("bob")
    one = await world.areas.create_area(ada, title="Area one")
    two = await world.areas.create_area(ada, title="Area two")
    insight = await world.content.create_insight(ada, title="A first good title", body=BODY,
                                                 area_ids=[one.id], co_authors=[cy])
    await world.content.publish_insight(insight.id, ada)
    edited = await world.content.update("insight", insight.id, cy, {
        "title": "A better title now", "body": ARTICLE, "area_ids": [two.id], "tags": ["x"]})
    assert (edited.title, edited.slug) == ("A better title now", "a-better-title-now")
    assert edited.estimated_read_time_minutes == 3  # type: ignore[union-attr]
    assert [(await _doc(world, AREAS, a.id))["content_count"] for a in (one, two)] == [0, 1]
    facets = sorted(d["facet"] for d in (await world.store.find(
        CONTENT_REFS, {"content_id": insight.id})).items)
    assert facets == [f"area:{two.id}", "tag:x"]
    hidden_from_lists = await world.content.update("insight", insight.id, ada,
                                                   {"visibility": "private"})
    assert hidden_from_lists.visibility == "private"
    assert (await world.content.list_insights(area_id=two.id)).items == ()
    for who, changes, rule in [(bob, {"title": "Not my insight"}, "forbidden"),
                               (cy, {"co_authors": []}, "forbidden"),
                               (ada, {"featured": True}, "unknown"),
                               (ada, {}, "empty")]:
        with pytest.raises(KnowledgeError) as info:
            await world.content.update("insight", insight.id, who, changes)
        assert info.value.rule == rule
    updated = await world.events("knowledge.content.updated")
    assert [e["payload"]["changed_fields"] for e in updated] == [
        ["area_ids", "body", "tags", "title"], ["visibility"]]


async def test_moderators_feature_insights(world: World) -> None:
    ada = await world.user("ada")
    mod = await world.user("mod", role="moderator")
    a = await world.content.create_insight(ada, title="Featured one here", body=BODY)
    b = await world.content.create_insight(ada, title="Plain one here", body=BODY)
    with pytest.raises(KnowledgeError) as draft:
        await world.content.set_featured(a.id, mod, True)
    assert draft.value.rule == "status"
    for insight in (a, b):
        await world.content.publish_insight(insight.id, ada)
    with pytest.raises(KnowledgeError) as info:
        await world.content.set_featured(a.id, ada, True)
    assert (info.value.field, info.value.rule) == ("by_user_id", "forbidden")
    await world.content.set_featured(a.id, mod, True)
    assert [i.id for i in (await world.content.list_insights(featured=True)).items] == [a.id]
    with pytest.raises(KnowledgeError) as both:
        await world.content.list_insights(featured=True, tag="x")
    assert both.value.rule == "combination"


async def test_deleting_an_insight_takes_its_comments_likes_and_rows(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    area = await world.areas.create_area(ada, title="Area one")
    insight = await world.content.create_insight(ada, title="Soon to be deleted", body=BODY,
                                                 area_ids=[area.id], tags=["t"])
    await world.content.publish_insight(insight.id, ada)
    comment = await world.social.add_comment("insight", insight.id, bob, body="Nice one!")
    await world.social.like("comment", comment.id, ada)
    await world.social.like("insight", insight.id, bob)
    with pytest.raises(KnowledgeError) as info:
        await world.content.delete("insight", insight.id, bob)
    assert info.value.rule == "forbidden"
    assert await world.content.delete("insight", insight.id, ada) == 2
    assert await world.content.get_insight(insight.id, viewer=Viewer(user_id=ada)) is None
    for collection in (COMMENTS, LIKES, CONTENT_REFS):
        assert await world.store.count(collection) == 0
    assert (await _doc(world, AREAS, area.id))["content_count"] == 0
    (deleted,) = await world.events("knowledge.content.deleted")
    assert deleted["payload"] == {"target_type": "insight", "target_id": insight.id,
                                  "deleted_by": ada}
    with pytest.raises(KnowledgeError) as gone:
        await world.content.delete("insight", insight.id, ada)
    assert gone.value.rule == "exists"


# -- discussions and replies -----------------------------------------------------------------------
async def test_threaded_replies_read_back_as_the_thread(world: World) -> None:
    ada, bob, cy = await world.user("ada"), await world.user("bob"), await world.user("cy")
    area = await world.areas.create_area(ada, title="Concurrency")
    d = await world.content.start_discussion(ada, title="Structured concurrency, yes or no?",
                                             body=BODY, area_ids=[area.id], tags=["trio"])
    (started,) = await world.events("knowledge.discussion.started")
    assert started["payload"]["discussion_id"] == d.id
    first = await world.content.reply(d.id, bob, body="Yes, and here is why: " + BODY)
    second = await world.content.reply(d.id, cy, body="No, for these reasons: " + BODY)
    nested = await world.content.reply(d.id, ada, body="Replying to the first: " + BODY,
                                       parent_reply_id=first.id)
    deeper = await world.content.reply(d.id, cy, body="And to that reply too: " + BODY,
                                       parent_reply_id=nested.id)
    assert (first.depth, nested.depth, deeper.depth) == (0, 1, 2)
    assert (nested.parent_reply_id, deeper.parent_reply_id) == (first.id, nested.id)
    thread = (await world.content.list_replies(d.id)).items
    assert [r.id for r in thread] == [first.id, nested.id, deeper.id, second.id]
    got = await world.content.get_discussion(d.id)
    assert got is not None and got.reply_count == 4
    assert (await _doc(world, REPLIES, first.id))["reply_count"] == 1
    replied = await world.events("knowledge.discussion.replied")
    assert replied[2]["payload"] == {
        "reply_id": nested.id, "discussion_id": d.id, "author_id": ada,
        "discussion_author_id": ada, "parent_reply_id": first.id, "parent_author_id": bob,
        "depth": 1}
    page_one = await world.content.list_replies(d.id, limit=3)
    assert page_one.next_cursor is not None
    page_two = await world.content.list_replies(d.id, limit=3, cursor=page_one.next_cursor)
    assert [r.id for r in page_one.items + page_two.items] == [r.id for r in thread]
    withdrawn = await world.content.delete_reply(nested.id, ada)
    assert withdrawn.deleted and withdrawn.body == ""
    assert [r.id for r in (await world.content.list_replies(d.id)).items] == [
        r.id for r in thread]  # the tombstone keeps its place
    with pytest.raises(KnowledgeError) as info:
        await world.content.reply(d.id, bob, body=BODY, parent_reply_id=nested.id)
    assert (info.value.field, info.value.rule) == ("parent_reply_id", "status")
    assert [x.id for x in (await world.content.list_discussions(tag="trio")).items] == [d.id]
    assert [x.id for x in (await world.content.list_discussions()).items] == [d.id]


async def test_replies_nest_at_most_max_depth(world: World) -> None:
    ada = await world.user("ada")
    d = await world.content.start_discussion(ada, title="A deep discussion here", body=BODY)
    parent = None
    for _ in range(MAX_REPLY_DEPTH):
        parent = (await world.content.reply(d.id, ada, body=BODY,
                                            parent_reply_id=None if parent is None
                                            else parent.id))
    assert parent is not None and parent.depth == MAX_REPLY_DEPTH - 1
    with pytest.raises(KnowledgeError) as info:
        await world.content.reply(d.id, ada, body=BODY, parent_reply_id=parent.id)
    assert (info.value.field, info.value.rule) == ("parent_reply_id", "depth")
    other = await world.content.start_discussion(ada, title="Another discussion", body=BODY)
    with pytest.raises(KnowledgeError) as wrong:
        await world.content.reply(other.id, ada, body=BODY, parent_reply_id=parent.id)
    assert (wrong.value.field, wrong.value.rule) == ("parent_reply_id", "exists")


async def test_a_closed_discussion_takes_no_replies_or_comments(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    d = await world.content.start_discussion(ada, title="To be closed soon", body=BODY)
    await world.moderation.close("discussion", d.id, mod, reason="resolved elsewhere")
    for call in (world.content.reply(d.id, bob, body=BODY),
                 world.social.add_comment("discussion", d.id, bob, body="hello")):
        with pytest.raises(KnowledgeError) as info:
            await call
        assert info.value.rule == "status"
    await world.moderation.reopen("discussion", d.id, mod, reason="back on topic")
    assert (await world.content.reply(d.id, bob, body=BODY)).depth == 0


# -- resources -------------------------------------------------------------------------------------
async def test_links_and_files(world: World) -> None:
    ada = await world.user("ada")
    link = await world.content.share_resource(ada, title="The trio documentation",
                                              resource_type="link",
                                              url="https://trio.readthedocs.io/", tags=["trio"])
    pdf = await world.content.share_resource(
        ada, title="Event sourcing slides", resource_type="file", description="From a talk",
        file={"name": "slides.pdf", "size_bytes": 123_456, "content_type": "application/pdf",
              "sha256": "ab" * 32, "storage_key": "uploads/2026/slides.pdf"})
    assert link.url == "https://trio.readthedocs.io/" and link.file is None
    assert pdf.file is not None and pdf.file.size_bytes == 123_456 and pdf.url is None
    uploaded = await world.events("knowledge.resource.uploaded")
    assert [e["payload"]["resource_type"] for e in uploaded] == ["link", "file"]
    await world.content.record_download(pdf.id)
    assert (await world.content.get_resource(pdf.id)).download_count == 1  # type: ignore[union-attr]
    assert [r.id for r in (await world.content.list_resources()).items] == [pdf.id, link.id]
    assert [r.id for r in (await world.content.list_resources(tag="trio")).items] == [link.id]
    for kwargs, field in [({"resource_type": "link", "url": "javascript:alert(1)"}, "url"),
                          ({"resource_type": "link"}, "url"),
                          ({"resource_type": "file", "url": "https://x.io"}, "url"),
                          ({"resource_type": "link", "url": "https://x.io",
                            "file": {"name": "a"}}, "file"),
                          ({"resource_type": "video", "url": "https://x.io"},
                           "resource_type")]:
        with pytest.raises(KnowledgeError) as info:
            await world.content.share_resource(ada, title="A resource title", **kwargs)
        assert info.value.field == field
    moved = await world.content.update("resource", link.id, ada,
                                       {"url": "https://trio.readthedocs.io/en/stable/"})
    assert moved.url.endswith("/stable/")  # type: ignore[union-attr]


# -- comments, likes, views ------------------------------------------------------------------------
async def test_comments_on_any_content(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    q = await world.knowledge.post_question(ada, title="How do nurseries work?", body=BODY)
    a = await world.knowledge.submit_answer(q.id, bob, body=BODY)
    res = await world.content.share_resource(ada, title="Nursery diagram here",
                                             resource_type="link", url="https://x.io/n")
    for target_type, target_id in [("question", q.id), ("answer", a.id), ("resource", res.id)]:
        await world.social.add_comment(target_type, target_id, bob, body=f"On {target_type}")
        await world.social.add_comment(target_type, target_id, ada, body="Thanks")
    listed = (await world.social.list_comments("question", q.id)).items
    assert [(c.created_by, c.body) for c in listed] == [(bob, "On question"), (ada, "Thanks")]
    assert (await world.knowledge.get_question(q.id)).comment_count == 2  # type: ignore[union-attr]
    added = await world.events("knowledge.comment.added")
    assert len(added) == 6 and added[0]["payload"] == {
        "comment_id": listed[0].id, "target_type": "question", "target_id": q.id,
        "author_id": bob, "target_author_id": ada}
    edited = await world.social.edit_comment(listed[0].id, bob, body="On question, edited")
    assert edited.body == "On question, edited"
    await world.social.delete_comment(listed[1].id, ada)
    assert (await world.knowledge.get_question(q.id)).comment_count == 1  # type: ignore[union-attr]
    for args, field, rule in [(("reply", "x", bob), "target_type", "enum"),
                              (("insight", "ins_missing", bob), "target_id", "exists")]:
        with pytest.raises(KnowledgeError) as info:
            await world.social.add_comment(*args, body="hi")
        assert (info.value.field, info.value.rule) == (field, rule)
    with pytest.raises(KnowledgeError) as empty:
        await world.social.add_comment("question", q.id, bob, body="   ")
    assert empty.value.rule == "length"
    await world.questions.close(q.id, ada, reason="answered")
    with pytest.raises(KnowledgeError) as closed:
        await world.social.add_comment("question", q.id, bob, body="late")
    assert closed.value.rule == "status"


async def test_likes_one_per_user_per_target(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    insight = await world.content.create_insight(ada, title="Likeable insight here", body=BODY)
    with pytest.raises(KnowledgeError) as draft:
        await world.social.like("insight", insight.id, bob)  # bob cannot see a draft
    assert draft.value.rule == "exists"
    await world.content.publish_insight(insight.id, ada)
    assert await world.social.like("insight", insight.id, bob) is True
    assert await world.social.like("insight", insight.id, bob) is False
    assert await world.social.like("insight", insight.id, ada) is True  # own: counted, no XP
    assert (await _doc(world, INSIGHTS, insight.id))["like_count"] == 2
    assert await world.social.unlike("insight", insight.id, bob) is True
    assert await world.social.unlike("insight", insight.id, bob) is False
    assert not await world.social.has_liked("insight", insight.id, bob)
    assert await world.social.like("insight", insight.id, bob) is True
    assert (await _doc(world, INSIGHTS, insight.id))["like_count"] == 2
    liked = await world.events("knowledge.content.liked")
    assert len(liked) == 3 and len(await world.events("knowledge.content.unliked")) == 1
    assert liked[0]["payload"] == {"target_type": "insight", "target_id": insight.id,
                                   "liker_id": bob, "author_id": ada}
    with pytest.raises(KnowledgeError) as votes:
        await world.social.like("question", "q_x", bob)
    assert votes.value.rule == "enum" and "votes" in votes.value.detail


async def test_views_are_counted_on_what_the_viewer_sees(world: World) -> None:
    ada = await world.user("ada")
    d = await world.content.start_discussion(ada, title="Viewed discussion", body=BODY)
    q = await world.knowledge.post_question(ada, title="A viewed question?", body=BODY)
    private = await world.content.start_discussion(ada, title="A private discussion",
                                                   body=BODY, visibility="private")
    for _ in range(3):
        await world.social.record_view("discussion", d.id)
    await world.social.record_view("question", q.id)
    assert (await world.content.get_discussion(d.id)).view_count == 3  # type: ignore[union-attr]
    assert (await world.knowledge.get_question(q.id)).view_count == 1  # type: ignore[union-attr]
    with pytest.raises(KnowledgeError) as info:
        await world.social.record_view("discussion", private.id)
    assert info.value.rule == "exists"
    await world.social.record_view("discussion", private.id, viewer=Viewer(user_id=ada))


async def test_concurrent_likes_by_one_user_count_once(sqlite_world: World) -> None:
    world = sqlite_world
    ada, bob = await world.user("ada"), await world.user("bob")
    insight = await world.content.create_insight(ada, title="Hammered insight", body=BODY)
    await world.content.publish_insight(insight.id, ada)
    results: list[bool] = []

    async def like() -> None:
        results.append(await world.social.like("insight", insight.id, bob))

    async with trio.open_nursery() as nursery:
        for _ in range(12):
            nursery.start_soon(like)
    assert sorted(results) == [False] * 11 + [True]
    assert (await _doc(world, INSIGHTS, insight.id))["like_count"] == 1
    assert len(await world.events("knowledge.content.liked")) == 1
    likers = [await world.user(f"l{n}") for n in range(15)]
    async with trio.open_nursery() as nursery:
        for uid in likers:
            nursery.start_soon(world.social.like, "insight", insight.id, uid)
            nursery.start_soon(world.social.like, "insight", insight.id, uid)  # double clicks
    assert (await _doc(world, INSIGHTS, insight.id))["like_count"] == 16
    assert await world.store.count(LIKES, {"target_id": insight.id, "active": True}) == 16


# -- question status -----------------------------------------------------------------------------
async def test_questions_close_reopen_and_resolve(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    q = await world.knowledge.post_question(ada, title="How do I cancel a scope?", body=BODY,
                                            tags=["trio"])
    with pytest.raises(KnowledgeError) as info:
        await world.questions.close(q.id, bob)
    assert (info.value.field, info.value.rule) == ("by_user_id", "forbidden")
    closed = await world.questions.close(q.id, ada, reason="found it myself")
    assert closed.status == "closed"
    assert (await world.questions.close(q.id, ada)).status == "closed"  # no second event
    with pytest.raises(KnowledgeError) as no_answers:
        await world.knowledge.submit_answer(q.id, bob, body=BODY)
    assert no_answers.value.rule == "status"
    assert (await _doc(world, QUESTION_TAGS, f"{q.id}:trio"))["status"] == "closed"
    assert (await world.questions.reopen(q.id, ada)).status == "open"
    assert (await world.questions.resolve(q.id, ada)).status == "resolved"
    await world.moderation.close("question", q.id, mod, reason="off topic here")
    with pytest.raises(KnowledgeError) as moderated:
        await world.questions.reopen(q.id, ada)
    assert moderated.value.rule == "forbidden"
    await world.moderation.reopen("question", q.id, mod, reason="on topic after all")
    got = await world.knowledge.get_question(q.id)
    assert got is not None and got.status == "resolved"  # back to what it was
    kinds = [e["event_type"] for e in (await world.store.find(
        EVENTS, {"event_type": {"$in": ["knowledge.question.closed",
                                        "knowledge.question.reopened",
                                        "knowledge.question.resolved"]}}, limit=10)).items]
    assert sorted(kinds) == ["knowledge.question.closed", "knowledge.question.reopened",
                             "knowledge.question.resolved"]


async def test_a_suspended_user_posts_nothing(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    q = await world.knowledge.post_question(ada, title="A question before it all?", body=BODY)
    await world.moderation.suspend_user(bob, mod, reason="posting spam links")
    calls = [
        world.knowledge.post_question(bob, title="Buy cheap watches now?", body=BODY),
        world.knowledge.submit_answer(q.id, bob, body=BODY),
        world.knowledge.vote(bob, target_type="question", target_id=q.id, value=1),
        world.content.create_insight(bob, title="Spam insight here", body=BODY),
        world.content.start_discussion(bob, title="Spam discussion here", body=BODY),
        world.content.share_resource(bob, title="Spam link here", resource_type="link",
                                     url="https://spam.example"),
        world.social.add_comment("question", q.id, bob, body="spam"),
    ]
    for call in calls:
        with pytest.raises(AccountError) as info:
            await call
        assert info.value.rule == "suspended"
    assert await world.store.count(INSIGHTS) == 0 and await world.store.count(COMMENTS) == 0


# -- XP end to end on the embedded defaults ------------------------------------------------------
ACTORS: dict[str, Any] = {"user": UserProfileActor, "leaderboard": LeaderboardActor,
                          "room": RoomActor}


async def test_content_xp_flows_through_the_outbox_to_the_profiles(tmp_path: Path) -> None:
    config = test_config(
        services=[{"type": "service", "name": "store", "service": "store"},
                  {"type": "service", "name": "cluster", "service": "cluster"},
                  *({"type": "actors", "kind": kind,
                     "actor": f"{cls.__module__}:{cls.__qualname__}"}
                    for kind, cls in ACTORS.items())],
        node={"data_dir": str(tmp_path)})
    async with open_test_node(config, actors=ACTORS) as node:
        assert node.store is not None
        world = await build_world(node.store)
        ada, bob = await world.user("ada"), await world.user("bob")
        insight = await world.content.create_insight(ada, title="Earning some XP here",
                                                     body=ARTICLE)
        await world.content.publish_insight(insight.id, ada)
        await world.content.publish_insight(insight.id, ada)  # no second payment
        comment = await world.social.add_comment("insight", insight.id, bob, body="Great!")
        await world.social.like("insight", insight.id, bob)
        await world.social.unlike("insight", insight.id, bob)
        await world.social.like("insight", insight.id, bob)  # liked again: paid once
        await world.social.like("insight", insight.id, ada)  # own content: nothing
        await world.social.like("comment", comment.id, ada)
        await relay_all(node)
        assert await earned(node, ada) == [("insight_published", 25), ("content_liked", 2)]
        assert await earned(node, bob) == [("comment_added", 2), ("content_liked", 2)]
        # relayed again (a relay that died before marking), nothing changes
        before = [await earned(node, u) for u in (ada, bob)]
        await node.store.update(EVENTS, {"published": True}, {"$set": {"published": False}})
        await relay_all(node)
        assert [await earned(node, u) for u in (ada, bob)] == before
