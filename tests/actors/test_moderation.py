"""Moderation on a real store: who may act (and that a refusal changes nothing), close, hide,
delete with everything hanging from it, suspensions, reports and the queue, the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import trio
from content_kit import BODY, World

from actors.accounts import (
    AccountError,
    AccountSuspended,
    AuthenticationFailed,
    Viewer,
    active_suspension,
)
from actors.content_core import AREAS
from actors.content_model import COMMENTS, DISCUSSIONS, LIKES, REPLIES
from actors.knowledge import ANSWERS, QUESTIONS, VOTES, KnowledgeError
from actors.moderation import ACTIONS, CASES, REPORTS, case_id_of
from tektree.persistence import EVENTS, format_timestamp

PASSWORD = "correct horse battery"


async def _snapshot(world: World) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for collection in (QUESTIONS, ANSWERS, DISCUSSIONS, REPLIES, COMMENTS, LIKES, AREAS, EVENTS,
                       CASES, REPORTS, ACTIONS, "users"):
        out[collection] = (await world.store.find(collection, sort=[("_id", 1)],
                                                  limit=1000)).items
    return out


async def _email(world: World, uid: str) -> str:
    doc = await world.store.get("users", uid)
    assert doc is not None
    return str(doc["email"])


# -- who may act -----------------------------------------------------------------------------------
async def test_a_plain_user_is_refused_every_moderator_action_and_nothing_changes(
    world: World,
) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    q = await world.knowledge.post_question(ada, title="A perfectly fine question?", body=BODY)
    await world.moderation.report("question", q.id, bob, reason="spam")
    before = await _snapshot(world)
    m = world.moderation
    calls = [
        m.close("question", q.id, bob, reason="not allowed"),
        m.reopen("question", q.id, bob, reason="not allowed"),
        m.hide("question", q.id, bob, reason="not allowed"),
        m.unhide("question", q.id, bob, reason="not allowed"),
        m.delete("question", q.id, bob, reason="not allowed"),
        m.suspend_user(ada, bob, reason="not allowed"),
        m.reinstate_user(ada, bob, reason="not allowed"),
        m.queue(bob),
        m.resolve(case_id_of("question", q.id), bob, resolution="dismissed"),
        m.actions(bob),
    ]
    for call in calls:
        with pytest.raises(KnowledgeError) as info:
            await call
        assert (info.value.field, info.value.rule) == ("moderator_id", "forbidden")
    assert await _snapshot(world) == before


async def test_a_reason_is_required(world: World) -> None:
    ada = await world.user("ada")
    mod = await world.user("mod", role="moderator")
    q = await world.knowledge.post_question(ada, title="A perfectly fine question?", body=BODY)
    for reason in ("", "  ", "x" * 501):
        with pytest.raises(KnowledgeError) as info:
            await world.moderation.hide("question", q.id, mod, reason=reason)
        assert (info.value.field, info.value.rule) == ("reason", "length")
    with pytest.raises(KnowledgeError) as kind:
        await world.moderation.hide("user", q.id, mod, reason="a reason")
    assert (kind.value.field, kind.value.rule) == ("target_type", "enum")
    with pytest.raises(KnowledgeError) as closable:
        await world.moderation.close("insight", "ins_x", mod, reason="a reason")
    assert closable.value.rule == "enum"


# -- hide ----------------------------------------------------------------------------------------
async def test_hidden_content_is_seen_by_its_author_and_moderators_only(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    area = await world.areas.create_area(ada, title="General")
    insight = await world.content.create_insight(ada, title="Questionable claims here",
                                                 body=BODY, area_ids=[area.id])
    await world.content.publish_insight(insight.id, ada)
    comment = await world.social.add_comment("insight", insight.id, bob, body="Rude words")
    await world.moderation.hide("comment", comment.id, mod, reason="abusive")
    await world.moderation.hide("comment", comment.id, mod, reason="abusive")  # once
    for who, body in [(ada, ""), (bob, "Rude words"), (mod, "Rude words")]:
        (shown,) = (await world.social.list_comments("insight", insight.id,
                                                     viewer=await world.viewer(who))).items
        assert shown.hidden and shown.body == body  # its place kept, its words withheld
    await world.moderation.hide("insight", insight.id, mod, reason="misleading health claims",
                                correlation_id="req-h")
    for who, sees in [(ada, True), (mod, True), (bob, False), (None, False)]:
        viewer = Viewer() if who is None else await world.viewer(who)
        assert (await world.content.get_insight(insight.id, viewer=viewer) is not None) == sees
    assert (await world.content.list_insights()).items == ()
    assert (await world.content.list_area_content(area.id)).items == ()
    with pytest.raises(KnowledgeError) as info:
        await world.social.like("insight", insight.id, bob)
    assert info.value.rule == "exists"
    hidden = await world.events("moderation.content.hidden")
    (on_insight,) = [e for e in hidden if e["payload"]["target_type"] == "insight"]
    assert len(hidden) == 2 and on_insight["payload"] == {
        "target_type": "insight", "target_id": insight.id, "author_id": ada,
        "moderator_id": mod, "reason": "misleading health claims"}
    assert on_insight["correlation_id"] == "req-h"
    assert on_insight["producer_id"] == "moderation"
    await world.moderation.unhide("insight", insight.id, mod, reason="sources added")
    assert [i.id for i in (await world.content.list_insights()).items] == [insight.id]
    log = (await world.moderation.actions(mod, target_id=insight.id)).items
    assert [(a.action, a.moderator_id, a.reason) for a in log] == [
        ("unhide", mod, "sources added"), ("hide", mod, "misleading health claims")]


async def test_two_moderators_hiding_at_once_hide_once(sqlite_world: World) -> None:
    world = sqlite_world
    ada = await world.user("ada")
    mods = [await world.user(f"mod{n}", role="moderator") for n in range(2)]
    q = await world.knowledge.post_question(ada, title="A contested question?", body=BODY)
    async with trio.open_nursery() as nursery:
        for mod in mods * 3:
            nursery.start_soon(lambda m=mod: world.moderation.hide("question", q.id, m,
                                                                   reason="contested"))
    assert len(await world.events("moderation.content.hidden")) == 1
    assert await world.store.count(ACTIONS, {"action": "hide"}) == 1


# -- delete --------------------------------------------------------------------------------------
async def test_deleting_a_question_takes_everything_hanging_from_it(world: World) -> None:
    ada, bob, cy = await world.user("ada"), await world.user("bob"), await world.user("cy")
    mod = await world.user("mod", role="moderator")
    area = await world.areas.create_area(ada, title="General")
    q = await world.knowledge.post_question(ada, title="A question to be deleted?", body=BODY,
                                            area_ids=[area.id], tags=["x"])
    a1 = await world.knowledge.submit_answer(q.id, bob, body=BODY)
    a2 = await world.knowledge.submit_answer(q.id, cy, body=BODY)
    await world.knowledge.vote(cy, target_type="answer", target_id=a1.id, value=1)
    await world.knowledge.vote(bob, target_type="question", target_id=q.id, value=1)
    comment = await world.social.add_comment("answer", a2.id, ada, body="Thanks")
    await world.social.like("comment", comment.id, cy)
    await world.moderation.report("question", q.id, bob, reason="off_topic")
    removed = await world.moderation.delete("question", q.id, mod, reason="duplicate post")
    assert removed == 4  # the question, two answers, one comment
    for collection in (QUESTIONS, ANSWERS, VOTES, COMMENTS, LIKES, "question_tags",
                       "content_refs"):
        assert await world.store.count(collection) == 0, collection
    assert (await world.store.get(AREAS, area.id))["content_count"] == 0  # type: ignore[index]
    case = await world.moderation.get_case(case_id_of("question", q.id), mod)
    assert case is not None and (case.status, case.resolution) == ("resolved", "removed")
    (deleted,) = await world.events("moderation.content.deleted")
    assert deleted["payload"] == {"target_type": "question", "target_id": q.id,
                                  "author_id": ada, "moderator_id": mod,
                                  "reason": "duplicate post",
                                  "title": "A question to be deleted?", "removed": 4}
    with pytest.raises(KnowledgeError) as again:
        await world.moderation.delete("question", q.id, mod, reason="duplicate post")
    assert again.value.rule == "exists"


async def test_deleting_the_accepted_answer_reopens_the_question(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    q = await world.knowledge.post_question(ada, title="Which answer is right?", body=BODY)
    a = await world.knowledge.submit_answer(q.id, bob, body=BODY)
    await world.knowledge.accept_answer(a.id, ada)
    await world.moderation.delete("answer", a.id, mod, reason="copied from elsewhere")
    got = await world.knowledge.get_question(q.id)
    assert got is not None
    assert (got.status, got.accepted_answer_id, got.answer_count) == ("open", None, 0)


async def test_deleting_a_reply_takes_its_sub_thread(world: World) -> None:
    ada, bob = await world.user("ada"), await world.user("bob")
    mod = await world.user("mod", role="moderator")
    d = await world.content.start_discussion(ada, title="A heated discussion", body=BODY)
    keep = await world.content.reply(d.id, ada, body=BODY)
    bad = await world.content.reply(d.id, bob, body=BODY)
    child = await world.content.reply(d.id, ada, body=BODY, parent_reply_id=bad.id)
    await world.content.reply(d.id, bob, body=BODY, parent_reply_id=child.id)
    await world.social.like("reply", child.id, bob)
    assert await world.moderation.delete("reply", bad.id, mod, reason="flame war") == 3
    assert [r.id for r in (await world.content.list_replies(d.id)).items] == [keep.id]
    assert (await world.content.get_discussion(d.id)).reply_count == 1  # type: ignore[union-attr]
    assert await world.store.count(LIKES) == 0


async def test_an_area_is_deleted_only_when_empty(world: World) -> None:
    ada = await world.user("ada")
    mod = await world.user("mod", role="moderator")
    area = await world.areas.create_area(ada, title="Spam area")
    child = await world.areas.create_area(ada, title="Spam child", parent_id=area.id)
    with pytest.raises(KnowledgeError) as info:
        await world.moderation.delete("area", area.id, mod, reason="spam")
    assert info.value.rule == "not_empty"
    await world.moderation.delete("area", child.id, mod, reason="spam")
    await world.moderation.delete("area", area.id, mod, reason="spam")
    assert await world.store.count(AREAS) == 0
    assert [e["payload"]["target_id"] for e in await world.events(
        "moderation.content.deleted")] == [child.id, area.id]
    assert await world.events("knowledge.area.deleted") == []
    assert await world.store.count(ACTIONS, {"action": "delete"}) == 2


# -- suspension ------------------------------------------------------------------------------------
async def test_a_suspended_user_cannot_sign_in_until_reinstated(world: World) -> None:
    bob = await world.user("bob")
    mod = await world.user("mod", role="moderator")
    email = await _email(world, bob)
    user = await world.moderation.suspend_user(bob, mod, reason="spam links in every post")
    assert user.is_suspended() and user.suspension is not None
    with pytest.raises(AccountSuspended) as info:
        await world.accounts.authenticate(email=email, password=PASSWORD)
    assert info.value.until is None and "spam links" in str(info.value)
    with pytest.raises(AuthenticationFailed):  # a wrong password says nothing of it
        await world.accounts.authenticate(email=email, password="wrong password!")
    with pytest.raises(AccountError) as posting:
        await world.knowledge.post_question(bob, title="Can I still post here?", body=BODY)
    assert posting.value.rule == "suspended"
    (suspended,) = await world.events("moderation.user.suspended")
    assert suspended["payload"] == {"user_id": bob, "moderator_id": mod,
                                    "reason": "spam links in every post", "until": None}
    back = await world.moderation.reinstate_user(bob, mod, reason="appeal accepted")
    assert not back.is_suspended()
    assert (await world.accounts.authenticate(email=email, password=PASSWORD)).uid == bob
    await world.moderation.reinstate_user(bob, mod, reason="again")  # not suspended: no-op
    assert len(await world.events("moderation.user.reinstated")) == 1


async def test_a_timed_suspension_ends_by_itself(world: World) -> None:
    bob = await world.user("bob")
    mod = await world.user("mod", role="moderator")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    await world.moderation.suspend_user(bob, mod, reason="cool down", until=until)
    doc = await world.store.get("users", bob)
    with pytest.raises(AccountSuspended) as info:
        await world.accounts.authenticate(email=await _email(world, bob), password=PASSWORD)
    assert info.value.until == format_timestamp(until)
    later = format_timestamp(until + dt.timedelta(seconds=1))
    assert active_suspension(doc, format_timestamp(until - dt.timedelta(minutes=1)))
    assert active_suspension(doc, later) is None
    for bad, rule in [(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1), "range"),
                      (dt.datetime(2030, 1, 1), "type")]:
        with pytest.raises(KnowledgeError) as refused:
            await world.moderation.suspend_user(bob, mod, reason="again", until=bad)
        assert (refused.value.field, refused.value.rule) == ("until", rule)


async def test_who_may_suspend_whom(world: World) -> None:
    user = await world.user("user")
    mod, mod2 = (await world.user("mod", role="moderator"),
                 await world.user("mod2", role="moderator"))
    admin, admin2 = (await world.user("admin", role="admin"),
                     await world.user("admin2", role="admin"))
    for actor, target, rule in [(mod, mod2, "forbidden"), (mod, admin, "forbidden"),
                                (admin, admin2, "forbidden"), (mod, mod, "self"),
                                (mod, "usr_nobody", "exists")]:
        with pytest.raises(KnowledgeError) as info:
            await world.moderation.suspend_user(target, actor, reason="testing the rules")
        assert (info.value.field, info.value.rule) == ("user_id", rule)
    await world.moderation.suspend_user(mod2, admin, reason="abused the tools")
    with pytest.raises(KnowledgeError) as suspended_mod:  # a suspended moderator acts no more
        await world.moderation.suspend_user(user, mod2, reason="testing the rules")
    assert (suspended_mod.value.field, suspended_mod.value.rule) == ("moderator_id",
                                                                     "suspended")
    await world.moderation.suspend_user(user, mod, reason="testing the rules")


# -- reports and the queue -------------------------------------------------------------------------
async def test_reports_gather_in_cases_queued_most_reported_first(world: World) -> None:
    ada = await world.user("ada")
    reporters = [await world.user(f"r{n}") for n in range(3)]
    mod = await world.user("mod", role="moderator")
    q1 = await world.knowledge.post_question(ada, title="First reported question?", body=BODY)
    q2 = await world.knowledge.post_question(ada, title="Second reported question?", body=BODY)
    await world.moderation.report("question", q1.id, reporters[0], reason="spam",
                                  details="links to a shop")
    for r in reporters:
        await world.moderation.report("question", q2.id, r, reason="abuse")
    with pytest.raises(KnowledgeError) as twice:
        await world.moderation.report("question", q2.id, reporters[0], reason="spam")
    assert (twice.value.field, twice.value.rule) == ("reporter_id", "unique")
    with pytest.raises(KnowledgeError) as own:
        await world.moderation.report("question", q1.id, ada, reason="spam")
    assert own.value.rule == "own_content"
    with pytest.raises(KnowledgeError) as reason:
        await world.moderation.report("question", q1.id, reporters[1], reason="boring")
    assert (reason.value.field, reason.value.rule) == ("reason", "enum")
    queue = (await world.moderation.queue(mod)).items
    assert [(c.target_id, c.report_count) for c in queue] == [(q2.id, 3), (q1.id, 1)]
    assert queue[0].reasons == {"abuse": 3} and queue[0].author_id == ada
    reports = (await world.moderation.reports_of(queue[1].id, mod)).items
    assert [(r.reporter_id, r.reason, r.details) for r in reports] == [
        (reporters[0], "spam", "links to a shop")]
    assert len(await world.events("moderation.content.reported")) == 4

    dismissed = await world.moderation.resolve(queue[1].id, mod, resolution="dismissed",
                                               note="not spam")
    assert (dismissed.status, dismissed.resolution, dismissed.resolved_by) == (
        "resolved", "dismissed", mod)
    assert [c.target_id for c in (await world.moderation.queue(mod)).items] == [q2.id]
    assert [c.target_id for c in (await world.moderation.queue(
        mod, status="resolved")).items] == [q1.id]
    # a new report after the resolution opens the case again, in its next round
    await world.moderation.report("question", q1.id, reporters[0], reason="spam")
    reopened = await world.moderation.get_case(queue[1].id, mod)
    assert reopened is not None
    assert (reopened.status, reopened.round, reopened.report_count) == ("open", 2, 1)

    actioned = await world.moderation.resolve(queue[0].id, mod, resolution="actioned",
                                              action="hide", note="abusive wording")
    assert (actioned.status, actioned.resolution) == ("resolved", "actioned")
    assert (await world.knowledge.get_question(q2.id)).hidden  # type: ignore[union-attr]
    removed = await world.moderation.resolve(reopened.id, mod, resolution="actioned",
                                             action="delete", note="spam, again")
    assert (removed.resolution, removed.resolved_by) == ("actioned", mod)
    assert await world.knowledge.get_question(q1.id) is None
    resolved = await world.events("moderation.case.resolved")
    assert [e["payload"]["resolution"] for e in resolved] == ["dismissed", "actioned",
                                                              "actioned"]
    for kwargs, field in [({"resolution": "maybe"}, "resolution"),
                          ({"resolution": "dismissed", "action": "hide"}, "action"),
                          ({"resolution": "actioned", "action": "ban"}, "action")]:
        with pytest.raises(KnowledgeError) as bad:
            await world.moderation.resolve(queue[0].id, mod, **kwargs)  # type: ignore[arg-type]
        assert bad.value.field == field


async def test_concurrent_reports_count_each_reporter_once(sqlite_world: World) -> None:
    world = sqlite_world
    ada = await world.user("ada")
    reporters = [await world.user(f"r{n}") for n in range(8)]
    mod = await world.user("mod", role="moderator")
    q = await world.knowledge.post_question(ada, title="A much reported question?", body=BODY)
    outcomes: list[str] = []

    async def report(uid: str) -> None:
        try:
            await world.moderation.report("question", q.id, uid, reason="spam")
            outcomes.append("ok")
        except KnowledgeError as exc:
            outcomes.append(exc.rule)

    async with trio.open_nursery() as nursery:
        for uid in reporters:
            nursery.start_soon(report, uid)
            nursery.start_soon(report, uid)
    assert sorted(outcomes) == ["ok"] * 8 + ["unique"] * 8
    case = await world.moderation.get_case(case_id_of("question", q.id), mod)
    assert case is not None and case.report_count == 8
    assert await world.store.count(REPORTS) == 8
