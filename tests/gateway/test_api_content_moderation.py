"""Search and moderation through the real app: relevance and filters, reports and the queue,
hiding (gone for everybody but owners and moderators), closing, deleting, suspending."""

from __future__ import annotations

from pathlib import Path

from gwkit import open_app
from test_api_content import BODY, area, call, fails, insight, question, user

from tektree.persistence import EVENTS


async def test_search_finds_questions_and_insights_with_filters(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        python = await area(h, ann_t, "Python")
        asyncio_area = await area(h, ann_t, "Async frameworks", parent_id=python["id"])
        q = await question(h, ann_t, "How do trio nurseries cancel?", tags=["trio"],
                           area_ids=[asyncio_area["id"]])
        other = await question(h, ann_t, "Nurseries for plants, any tips?")
        ins = await insight(h, ann_t, "Trio nurseries in depth", tags=["trio"],
                            area_ids=[asyncio_area["id"]])
        hits = await call(h, "GET", "/search?q=trio")
        found = {(r["content_type"], r["item"]["id"]) for r in hits["items"]}
        assert {("question", q["id"]), ("insight", ins["id"])} <= found
        assert ("question", other["id"]) not in found
        assert all(isinstance(r["score"], float) for r in hits["items"])
        scores = [r["score"] for r in hits["items"]]
        assert scores == sorted(scores, reverse=True)
        only_questions = await call(h, "GET", "/search?q=nurseries&type=question")
        assert {r["item"]["id"] for r in only_questions["items"]} == {q["id"], other["id"]}
        # the area filter takes the areas below it too
        in_area = await call(h, "GET", f"/search?q=nurseries&area={python['id']}")
        assert {r["item"]["id"] for r in in_area["items"]} == {q["id"], ins["id"]}
        tagged = await call(h, "GET", "/search?q=nurseries&tag=trio&type=insight")
        assert [r["item"]["id"] for r in tagged["items"]] == [ins["id"]]
        areas_only = await call(h, "GET", "/search?q=async&type=area")
        assert [r["item"]["id"] for r in areas_only["items"]] == [asyncio_area["id"]]
        await call(h, "POST", f"/questions/{other['id']}/resolve", ann_t)
        resolved = await call(h, "GET", "/search?q=nurseries&status=resolved")
        assert [r["item"]["id"] for r in resolved["items"]] == [other["id"]]
        first = await call(h, "GET", "/search?q=nurseries&limit=1")
        rest = await call(h, "GET", f"/search?q=nurseries&limit=100&cursor="
                                    f"{first['next_cursor']}")
        assert len(first["items"] + rest["items"]) == 3 and rest["next_cursor"] is None
        # errors name the parameter
        body = await fails(h, "GET", '/search?q="unclosed', None, 422, "validation-failed")
        assert body["field"] == "q"
        body = await fails(h, "GET", "/search?q=x&type=answer", None, 400, "invalid-parameter")
        assert body["field"] == "type"
        body = await fails(h, "GET", "/search?q=x&type=insight&status=open", None, 422,
                           "validation-failed")
        assert body["field"] == "status"
        body = await fails(h, "GET", "/search", None, 400, "invalid-parameter")
        assert body["field"] == "q"
        body = await fails(h, "GET", "/search?q=x&area=area_missing", None, 404, "not-found")
        assert body["field"] == "area_id"
        body = await fails(h, "GET", "/search?q=trio&cursor=bogus", None, 422,
                           "validation-failed")
        assert body["field"] == "cursor"


async def test_hidden_content_is_gone_for_everybody_but_owners_and_moderators(
        tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        mod, mod_t = await user(h, "mod", "moderator")
        ins = await insight(h, ann_t, "Trio nurseries in depth")
        q = await question(h, ann_t, "How do trio nurseries cancel?")
        await fails(h, "POST", f"/moderation/content/insight/{ins['id']}/hide", bob_t, 403,
                    "forbidden", json={"reason": "I do not like it"})
        for kind, item in (("insight", ins), ("question", q)):
            outcome = await call(h, "POST", f"/moderation/content/{kind}/{item['id']}/hide",
                                 mod_t, json={"reason": "spam links"})
            assert (outcome["moderator_id"], outcome["reason"]) == (mod, "spam links")
        for tokens in (None, bob_t):
            await fails(h, "GET", f"/insights/{ins['id']}", tokens, 404, "not-found")
            await fails(h, "GET", f"/questions/{q['id']}", tokens, 404, "not-found")
        assert (await call(h, "GET", f"/insights/{ins['id']}", mod_t))["hidden"] is True
        assert (await call(h, "GET", f"/insights/{ins['id']}", ann_t))["hidden"] is True
        assert (await call(h, "GET", "/insights"))["items"] == []
        assert (await call(h, "GET", "/questions"))["items"] == []
        assert (await call(h, "GET", "/search?q=nurseries"))["items"] == []
        await fails(h, "PUT", f"/likes/insight/{ins['id']}", bob_t, 404, "not-found")
        # each action is an event with who and why, and a row of the audit log
        hidden = (await h.store.find(EVENTS, {"event_type": "moderation.content.hidden"})
                  ).items
        assert {(e["payload"]["target_id"], e["payload"]["moderator_id"],
                 e["payload"]["reason"]) for e in hidden} == {
            (ins["id"], mod, "spam links"), (q["id"], mod, "spam links")}
        assert all(e["correlation_id"].startswith("req_") for e in hidden)
        log = await call(h, "GET", f"/moderation/actions?target_id={ins['id']}", mod_t)
        assert [(a["action"], a["moderator_id"]) for a in log["items"]] == [("hide", mod)]
        await fails(h, "GET", "/moderation/actions", bob_t, 403, "forbidden")
        await call(h, "POST", f"/moderation/content/insight/{ins['id']}/unhide", mod_t,
                   json={"reason": "appeal granted"})
        assert (await call(h, "GET", f"/insights/{ins['id']}", bob_t))["hidden"] is False
        body = await fails(h, "POST", f"/moderation/content/insight/{ins['id']}/close",
                           mod_t, 422, "validation-failed", json={"reason": "no"})
        assert body["field"] == "reason"
        body = await fails(h, "POST", f"/moderation/content/insight/{ins['id']}/close",
                           mod_t, 422, "validation-failed", json={"reason": "not closable"})
        assert body["field"] == "target_type"
        await fails(h, "POST", "/moderation/content/insight/ins_missing/hide", mod_t, 404,
                    "not-found", json={"reason": "spam links"})
        body = await fails(h, "POST", f"/moderation/content/insight/{ins['id']}/ban", mod_t,
                           400, "invalid-parameter", json={"reason": "spam links"})
        assert body["field"] == "action"


async def test_reports_the_queue_and_resolution(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        _, cat_t = await user(h, "cat")
        mod, mod_t = await user(h, "mod", "moderator")
        ins = await insight(h, ann_t)
        reported = await call(h, "POST", "/reports", bob_t, status=201, json={
            "target_type": "insight", "target_id": ins["id"], "reason": "spam",
            "details": "links to a casino"})
        await call(h, "POST", "/reports", cat_t, status=201, json={
            "target_type": "insight", "target_id": ins["id"], "reason": "off_topic"})
        body = await fails(h, "POST", "/reports", bob_t, 409, "conflict", json={
            "target_type": "insight", "target_id": ins["id"], "reason": "spam"})
        assert (body["field"], body["rule"]) == ("user", "unique")
        body = await fails(h, "POST", "/reports", ann_t, 403, "forbidden", json={
            "target_type": "insight", "target_id": ins["id"], "reason": "spam"})
        assert body["rule"] == "own_content"
        body = await fails(h, "POST", "/reports", bob_t, 422, "validation-failed", json={
            "target_type": "insight", "target_id": ins["id"], "reason": "boring"})
        assert body["field"] == "reason"
        await fails(h, "POST", "/reports", None, 401, "unauthorized", json={
            "target_type": "insight", "target_id": ins["id"], "reason": "spam"})
        await fails(h, "GET", "/moderation/queue", bob_t, 403, "forbidden")
        await fails(h, "GET", "/moderation/queue", None, 401, "unauthorized")
        queue = await call(h, "GET", "/moderation/queue", mod_t)
        (case,) = queue["items"]
        assert (case["id"], case["report_count"], case["author_id"]) == (
            reported["case_id"], 2, ann)
        assert case["reasons"] == {"spam": 1, "off_topic": 1}
        assert (await call(h, "GET", f"/moderation/cases/{case['id']}", mod_t))["status"] == \
            "open"
        reports = await call(h, "GET", f"/moderation/cases/{case['id']}/reports", mod_t)
        assert [r["reason"] for r in reports["items"]] == ["spam", "off_topic"]
        await fails(h, "GET", "/moderation/cases/case_none", mod_t, 404, "not-found")
        body = await fails(h, "POST", f"/moderation/cases/{case['id']}/resolve", mod_t, 422,
                           "validation-failed", json={"resolution": "actioned",
                                                      "action": "hide"})
        assert (body["field"], body["rule"]) == ("note", "required")
        body = await fails(h, "POST", f"/moderation/cases/{case['id']}/resolve", mod_t, 422,
                           "validation-failed", json={"resolution": "actioned",
                                                      "action": "hide", "note": "x"})
        assert body["field"] == "reason"  # the domain's name for a moderator's why
        resolved = await call(h, "POST", f"/moderation/cases/{case['id']}/resolve", mod_t,
                              json={"resolution": "actioned", "action": "hide",
                                    "note": "casino spam"})
        assert (resolved["status"], resolved["resolved_by"]) == ("resolved", mod)
        await fails(h, "GET", f"/insights/{ins['id']}", bob_t, 404, "not-found")
        assert (await call(h, "GET", "/moderation/queue", mod_t))["items"] == []
        done = await call(h, "GET", "/moderation/queue?status=resolved", mod_t)
        assert [c["id"] for c in done["items"]] == [case["id"]]


async def test_moderators_close_and_delete_content(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        _, mod_t = await user(h, "mod", "moderator")
        python = await area(h, ann_t, "Python")
        q = await question(h, ann_t, area_ids=[python["id"]])
        await call(h, "POST", f"/moderation/content/question/{q['id']}/close", mod_t,
                   json={"reason": "duplicate of another"})
        await fails(h, "POST", f"/questions/{q['id']}/answers", bob_t, 409, "conflict",
                    json={"body": BODY})
        body = await fails(h, "POST", f"/questions/{q['id']}/reopen", ann_t, 403, "forbidden")
        assert body["field"] == "question_id"
        await call(h, "POST", f"/moderation/content/question/{q['id']}/reopen", mod_t,
                   json={"reason": "not a duplicate"})
        await call(h, "POST", f"/questions/{q['id']}/answers", bob_t, status=201,
                   json={"body": BODY})
        deleted = await call(h, "POST", f"/moderation/content/question/{q['id']}/delete",
                             mod_t, json={"reason": "illegal content"})
        assert deleted["removed"] >= 2  # the question and its answer
        await fails(h, "GET", f"/questions/{q['id']}", mod_t, 404, "not-found")
        assert (await call(h, "GET", f"/areas/{python['id']}"))["content_count"] == 0
        gone = (await h.store.find(EVENTS, {"event_type": "moderation.content.deleted"})).items
        assert [e["payload"]["reason"] for e in gone] == ["illegal content"]
        await call(h, "POST", f"/moderation/content/area/{python['id']}/delete", mod_t,
                   json={"reason": "an empty area"})
        await fails(h, "GET", f"/areas/{python['id']}", None, 404, "not-found")


async def test_suspending_and_reinstating_users(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, ann_t = await user(h, "ann")
        bob, bob_t = await user(h, "bob")
        mod, mod_t = await user(h, "mod", "moderator")
        admin, admin_t = await user(h, "root", "admin")
        await fails(h, "POST", f"/moderation/users/{ann}/suspend", bob_t, 403, "forbidden",
                    json={"reason": "I do not like ann"})
        suspended = await call(h, "POST", f"/moderation/users/{ann}/suspend", mod_t,
                               json={"reason": "repeated spam",
                                     "until": "2999-01-01T00:00:00Z"})
        assert (suspended["suspended"], suspended["by"], suspended["reason"]) == (
            True, mod, "repeated spam")
        assert suspended["until"].startswith("2999-01-01")
        body = await fails(h, "POST", "/questions", ann_t, 403, "forbidden",
                           json={"title": "A question while suspended", "body": BODY})
        assert body["rule"] == "suspended"
        body = await fails(h, "POST", "/insights", ann_t, 403, "forbidden",
                           json={"title": "An insight while suspended", "body": BODY})
        assert body["rule"] == "suspended"
        event = (await h.store.find(EVENTS, {"event_type": "moderation.user.suspended"})
                 ).items[0]
        assert (event["payload"]["moderator_id"], event["payload"]["reason"]) == (
            mod, "repeated spam")
        back = await call(h, "POST", f"/moderation/users/{ann}/reinstate", mod_t,
                          json={"reason": "served the time"})
        assert back["suspended"] is False
        await question(h, ann_t, "A question after the suspension")
        # who may suspend whom; bad input names the field
        body = await fails(h, "POST", f"/moderation/users/{admin}/suspend", mod_t, 403,
                           "forbidden", json={"reason": "admins are untouchable"})
        assert body["field"] == "user_id"
        body = await fails(h, "POST", f"/moderation/users/{mod}/suspend", mod_t, 422,
                           "validation-failed", json={"reason": "suspend myself"})
        assert (body["field"], body["rule"]) == ("user_id", "self")
        await call(h, "POST", f"/moderation/users/{mod}/suspend", admin_t,
                   json={"reason": "abuse of power"})
        await fails(h, "GET", "/moderation/queue", mod_t, 403, "forbidden")
        for until, rule in (("tomorrow", "format"), ("2999-01-01T00:00:00", "format"),
                            ("2000-01-01T00:00:00Z", "range")):
            body = await fails(h, "POST", f"/moderation/users/{bob}/suspend", admin_t, 422,
                               "validation-failed", json={"reason": "testing", "until": until})
            assert (body["field"], body["rule"]) == ("until", rule), until
        await fails(h, "POST", "/moderation/users/usr_missing/suspend", admin_t, 404,
                    "not-found", json={"reason": "nobody"})
        body = await fails(h, "POST", f"/moderation/users/{bob}/suspend", admin_t, 422,
                           "validation-failed", json={})
        assert body["field"] == "reason"
