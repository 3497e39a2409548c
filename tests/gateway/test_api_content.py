"""The content issue's routes through the real app: areas, insights, discussions, resources,
comments, likes, views and question status (search and moderation:
``test_api_content_moderation.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gwkit import API, Harness, bearer, open_app
from test_api_auth import problem

from tektree.persistence import EVENTS

BODY = "Some detailed body text that is long enough to pass."


# -- steps the content tests share -------------------------------------------------------------
async def call(h: Harness, method: str, path: str, tokens: Any = None, *,
               status: int = 200, **kw: Any) -> Any:
    """``method path`` (under ``/api/v1``); its JSON body, after checking ``status``."""
    headers = {} if tokens is None else bearer(tokens)
    response = await getattr(h.client, method.lower())(API + path, headers=headers, **kw)
    body = None if response.status_code == 204 else await response.get_json()
    assert response.status_code == status, (method, path, response.status_code, body)
    return body


async def fails(h: Harness, method: str, path: str, tokens: Any, status: int, slug: str,
                **kw: Any) -> dict[str, Any]:
    """The problem ``method path`` answers (checked: status, type, correlation id)."""
    headers = {} if tokens is None else bearer(tokens)
    response = await getattr(h.client, method.lower())(API + path, headers=headers, **kw)
    return await problem(response, status, slug)


async def user(h: Harness, handle: str, role: str = "user") -> tuple[str, Any]:
    """A registered user (with ``role``): (their id, their tokens)."""
    who, tokens = await h.register(handle)
    if role != "user":
        await h.gateway.accounts.set_role(who["uid"], role)
    return who["uid"], tokens


async def area(h: Harness, tokens: Any, title: str, **extra: Any) -> dict[str, Any]:
    made: dict[str, Any] = await call(h, "POST", "/areas", tokens, status=201,
                                      json={"title": title, **extra})
    return made


async def insight(h: Harness, tokens: Any, title: str = "Structured concurrency in practice",
                  *, publish: bool = True, **extra: Any) -> dict[str, Any]:
    made: dict[str, Any] = await call(h, "POST", "/insights", tokens, status=201,
                                      json={"title": title, "body": BODY, **extra})
    if publish:
        made = await call(h, "POST", f"/insights/{made['id']}/publish", tokens)
    return made


async def question(h: Harness, tokens: Any, title: str = "How do trio nurseries work?",
                   **extra: Any) -> dict[str, Any]:
    made: dict[str, Any] = await call(h, "POST", "/questions", tokens, status=201,
                                      json={"title": title, "body": BODY, **extra})
    return made


# -- areas -------------------------------------------------------------------------------------
async def test_areas_hierarchy_breadcrumbs_and_moves(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        _, mod_t = await user(h, "mod", "moderator")
        programming = await area(h, ann_t, "Programming", tags=["code"])
        architecture = await area(h, ann_t, "Architecture", parent_id=programming["id"])
        events = await area(h, ann_t, "Event-Driven", parent_id=architecture["id"])
        assert events["trail"] == "Programming > Architecture > Event-Driven"
        assert [c["slug"] for c in events["breadcrumbs"]] == ["programming", "architecture"]
        assert (events["depth"], events["created_by"]) == (2, ann)
        by_slug = await call(h, "GET", "/areas/event-driven")
        assert by_slug["id"] == events["id"]
        top = await call(h, "GET", "/areas")
        assert [a["id"] for a in top["items"]] == [programming["id"]]
        children = await call(h, "GET", f"/areas/{programming['id']}/children")
        assert [a["id"] for a in children["items"]] == [architecture["id"]]
        assert (await call(h, "GET", f"/areas/{programming['id']}"))["child_count"] == 1
        # a move rewrites the breadcrumbs of the area and of its descendants
        design = await area(h, ann_t, "Design")
        moved = await call(h, "POST", f"/areas/{architecture['id']}/move", ann_t,
                           json={"new_parent_id": design["id"]})
        assert moved["trail"] == "Design > Architecture"
        below = await call(h, "GET", f"/areas/{events['id']}")
        assert below["trail"] == "Design > Architecture > Event-Driven"
        assert below["breadcrumbs"][0] == {"id": design["id"], "slug": "design",
                                           "title": "Design"}
        # a rename reaches every descendant's breadcrumbs; a moderator may change any area
        renamed = await call(h, "PATCH", f"/areas/{design['id']}", mod_t,
                             json={"title": "Software Design"})
        assert renamed["title"] == "Software Design"
        below = await call(h, "GET", f"/areas/{events['id']}")
        assert below["trail"] == "Software Design > Architecture > Event-Driven"
        to_top = await call(h, "POST", f"/areas/{events['id']}/move", ann_t,
                            json={"new_parent_id": None})
        assert (to_top["breadcrumbs"], to_top["depth"]) == ([], 0)
        # the errors, each naming its field
        await fails(h, "POST", "/areas", None, 401, "unauthorized", json={"title": "Nope"})
        body = await fails(h, "PATCH", f"/areas/{design['id']}", bob_t, 403, "forbidden",
                           json={"details": "mine now"})
        assert body["field"] == "user"
        body = await fails(h, "POST", f"/areas/{design['id']}/move", ann_t, 422,
                           "validation-failed", json={"new_parent_id": architecture["id"]})
        assert (body["field"], body["rule"]) == ("new_parent_id", "cycle")
        body = await fails(h, "POST", "/areas", ann_t, 409, "conflict",
                           json={"title": "Another design", "slug": "design"})
        assert (body["field"], body["rule"]) == ("slug", "unique")
        body = await fails(h, "GET", "/areas/area_missing", None, 404, "not-found")
        assert body["field"] == "area_id"
        body = await fails(h, "POST", "/areas", ann_t, 422, "validation-failed",
                           json={"title": "xy"})
        assert body["field"] == "title"
        body = await fails(h, "POST", "/areas", ann_t, 422, "validation-failed",
                           json={"title": "Fine title", "colour": "red"})
        assert body["field"] == "colour"
        body = await fails(h, "DELETE", f"/areas/{design['id']}", ann_t, 409, "conflict")
        assert body["rule"] == "not_empty"
        body = await fails(h, "GET", "/areas?limit=101", None, 400, "invalid-parameter")
        assert body["field"] == "limit"
        await call(h, "DELETE", f"/areas/{events['id']}", ann_t, status=204)
        await fails(h, "GET", f"/areas/{events['id']}", None, 404, "not-found")
        moves = (await h.store.find(EVENTS, {"event_type": "knowledge.area.moved"})).items
        assert moves and all(e["correlation_id"].startswith("req_") for e in moves)


async def test_following_areas_is_idempotent(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        python = await area(h, ann_t, "Python")
        private = await area(h, ann_t, "Secret plans", visibility="private")
        first = await call(h, "PUT", f"/areas/{python['id']}/follow", bob_t)
        again = await call(h, "PUT", f"/areas/{python['id']}/follow", bob_t)
        assert (first["changed"], again["changed"]) == (True, False)
        assert (await call(h, "GET", f"/areas/{python['id']}"))["follower_count"] == 1
        followed = await call(h, "GET", "/users/me/followed-areas", bob_t)
        assert [a["id"] for a in followed["items"]] == [python["id"]]
        gone = await call(h, "DELETE", f"/areas/{python['id']}/follow", bob_t)
        gone_again = await call(h, "DELETE", f"/areas/{python['id']}/follow", bob_t)
        assert (gone["following"], gone["changed"], gone_again["changed"]) == (False, True,
                                                                                False)
        assert (await call(h, "GET", f"/areas/{python['id']}"))["follower_count"] == 0
        # a private area is not there for anybody but its owner
        await fails(h, "PUT", f"/areas/{private['id']}/follow", bob_t, 404, "not-found")
        assert (await call(h, "GET", f"/areas/{private['id']}", ann_t))["visibility"] == \
            "private"
        await fails(h, "GET", f"/areas/{private['id']}", bob_t, 404, "not-found")
        await fails(h, "PUT", f"/areas/{python['id']}/follow", None, 401, "unauthorized")
        # an area that turned private is unfollowed all the same
        await call(h, "PUT", f"/areas/{python['id']}/follow", bob_t)
        await call(h, "PATCH", f"/areas/{python['id']}", ann_t, json={"visibility": "private"})
        assert (await call(h, "GET", "/users/me/followed-areas", bob_t))["items"] == []
        left = await call(h, "DELETE", f"/areas/{python['id']}/follow", bob_t)
        assert left["changed"] is True


# -- insights ----------------------------------------------------------------------------------
async def test_insights_drafts_co_authors_publication_and_listings(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, ann_t = await user(h, "ann")
        cat, cat_t = await user(h, "cat")
        _, bob_t = await user(h, "bob")
        python = await area(h, ann_t, "Python")
        draft = await insight(h, ann_t, publish=False, insight_type="tutorial",
                              area_ids=[python["id"]], tags=["trio"])
        assert (draft["status"], draft["published_at"]) == ("draft", None)
        assert draft["estimated_read_time_minutes"] == 1
        iid = draft["id"]
        await fails(h, "GET", f"/insights/{iid}", bob_t, 404, "not-found")
        await fails(h, "GET", f"/insights/{iid}", None, 404, "not-found")
        drafts = await call(h, "GET", "/insights/drafts", ann_t)
        assert [i["id"] for i in drafts["items"]] == [iid]
        # co-authors see and edit the draft; only the author changes them or publishes
        with_cat = await call(h, "PUT", f"/insights/{iid}/co-authors", ann_t,
                              json={"co_authors": [cat]})
        assert with_cat["co_authors"] == [cat]
        edited = await call(h, "PATCH", f"/insights/{iid}", cat_t,
                            json={"title": "Structured concurrency, revised"})
        assert edited["slug"] == "structured-concurrency-revised"
        body = await fails(h, "PUT", f"/insights/{iid}/co-authors", cat_t, 403, "forbidden",
                           json={"co_authors": []})
        assert body["field"] == "co_authors"
        body = await fails(h, "POST", f"/insights/{iid}/publish", cat_t, 403, "forbidden")
        assert body["field"] == "user"
        body = await fails(h, "PUT", f"/insights/{iid}/co-authors", ann_t, 404, "not-found",
                           json={"co_authors": ["usr_nobody"]})
        assert body["field"] == "co_authors"
        body = await fails(h, "PATCH", f"/insights/{iid}", bob_t, 403, "forbidden",
                           json={"title": "Taken over by bob"})
        published = await call(h, "POST", f"/insights/{iid}/publish", ann_t)
        again = await call(h, "POST", f"/insights/{iid}/publish", ann_t)
        assert published["status"] == "published" and again == published
        # reading counts views; the listings by area, author, type and tag
        seen = await call(h, "GET", f"/insights/{iid}", bob_t)
        assert seen["view_count"] == 1
        assert (await call(h, "GET", f"/insights/{iid}"))["view_count"] == 2
        article = await insight(h, cat_t, "Cancellation scopes explained")
        for query, expected in [(f"area_id={python['id']}", [iid]), (f"author_id={ann}", [iid]),
                                ("type=tutorial", [iid]), ("type=article", [article["id"]]),
                                ("tag=trio", [iid]), ("", [article["id"], iid])]:
            listed = await call(h, "GET", f"/insights?{query}")
            assert [i["id"] for i in listed["items"]] == expected, query
        first = await call(h, "GET", "/insights?limit=1")
        rest = await call(h, "GET", f"/insights?limit=1&cursor={first['next_cursor']}")
        assert [i["id"] for i in first["items"] + rest["items"]] == [article["id"], iid]
        assert rest["next_cursor"] is None
        area_now = await call(h, "GET", f"/areas/{python['id']}")
        assert area_now["content_count"] == 1
        mixed = await call(h, "GET", f"/areas/{python['id']}/content?type=insight")
        assert [(e["content_type"], e["item"]["id"]) for e in mixed["items"]] == [
            ("insight", iid)]
        # errors
        body = await fails(h, "GET", f"/insights?type=article&author_id={ann}", None, 422,
                           "validation-failed")
        assert body["rule"] == "combination"
        body = await fails(h, "GET", "/insights?type=novel", None, 400, "invalid-parameter")
        assert body["field"] == "type"
        body = await fails(h, "POST", "/insights", ann_t, 422, "validation-failed",
                           json={"title": "Short", "body": BODY})
        assert body["field"] == "title"
        body = await fails(h, "POST", "/insights", ann_t, 404, "not-found",
                           json={"title": "A title long enough", "body": BODY,
                                 "area_ids": ["area_missing"]})
        assert body["field"] == "area_ids"
        await fails(h, "POST", "/insights", None, 401, "unauthorized",
                    json={"title": "A title long enough", "body": BODY})
        await fails(h, "PUT", f"/insights/{iid}/featured", ann_t, 403, "forbidden",
                    json={"featured": True})
        await fails(h, "DELETE", f"/insights/{iid}", cat_t, 403, "forbidden")
        await call(h, "DELETE", f"/insights/{iid}", ann_t, status=204)
        await fails(h, "GET", f"/insights/{iid}", ann_t, 404, "not-found")
        assert (await call(h, "GET", f"/areas/{python['id']}"))["content_count"] == 0


async def test_moderators_feature_insights(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        _, mod_t = await user(h, "mod", "moderator")
        one = await insight(h, ann_t)
        await insight(h, ann_t, "Another insight title")
        featured = await call(h, "PUT", f"/insights/{one['id']}/featured", mod_t,
                              json={"featured": True})
        assert featured["featured"] is True
        listed = await call(h, "GET", "/insights?featured=true")
        assert [i["id"] for i in listed["items"]] == [one["id"]]
        draft = await insight(h, ann_t, "Still a draft here", publish=False)
        body = await fails(h, "PUT", f"/insights/{draft['id']}/featured", mod_t, 409,
                           "conflict", json={"featured": True})
        assert body["field"] == "insight_id"


# -- discussions and resources -----------------------------------------------------------------
async def test_discussions_with_threaded_replies(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        _, mod_t = await user(h, "mod", "moderator")
        started = await call(h, "POST", "/discussions", ann_t, status=201, json={
            "title": "Trio versus asyncio", "body": BODY, "tags": ["trio"]})
        did = started["id"]
        top = await call(h, "POST", f"/discussions/{did}/replies", bob_t, status=201,
                         json={"body": BODY})
        nested = await call(h, "POST", f"/discussions/{did}/replies", ann_t, status=201,
                            json={"body": BODY, "parent_reply_id": top["id"]})
        second = await call(h, "POST", f"/discussions/{did}/replies", ann_t, status=201,
                            json={"body": BODY})
        assert (nested["depth"], nested["parent_reply_id"]) == (1, top["id"])
        thread = await call(h, "GET", f"/discussions/{did}/replies")
        assert [r["id"] for r in thread["items"]] == [top["id"], nested["id"], second["id"]]
        page = await call(h, "GET", f"/discussions/{did}/replies?limit=2")
        assert len(page["items"]) == 2 and page["next_cursor"]
        read = await call(h, "GET", f"/discussions/{did}")
        assert (read["reply_count"], read["view_count"]) == (3, 1)
        listed = await call(h, "GET", "/discussions?tag=trio")
        assert [d["id"] for d in listed["items"]] == [did]
        edited = await call(h, "PATCH", f"/replies/{top['id']}", bob_t,
                            json={"body": "An edited reply that is long enough."})
        assert edited["body"].startswith("An edited")
        await fails(h, "PATCH", f"/replies/{top['id']}", ann_t, 403, "forbidden",
                    json={"body": "Not my reply to edit at all."})
        withdrawn = await call(h, "DELETE", f"/replies/{top['id']}", bob_t)
        assert (withdrawn["deleted"], withdrawn["body"]) == (True, "")
        thread = await call(h, "GET", f"/discussions/{did}/replies")
        assert [r["id"] for r in thread["items"]][:2] == [top["id"], nested["id"]]
        body = await fails(h, "POST", f"/discussions/{did}/replies", ann_t, 409, "conflict",
                           json={"body": BODY, "parent_reply_id": top["id"]})
        assert body["field"] == "parent_reply_id"
        body = await fails(h, "POST", f"/discussions/{did}/replies", ann_t, 422,
                           "validation-failed", json={"body": "short"})
        assert body["field"] == "body"
        await fails(h, "POST", "/discussions/dsc_missing/replies", ann_t, 404, "not-found",
                    json={"body": BODY})
        # a closed discussion takes no replies
        await call(h, "POST", f"/moderation/content/discussion/{did}/close", mod_t,
                   json={"reason": "heated enough"})
        body = await fails(h, "POST", f"/discussions/{did}/replies", bob_t, 409, "conflict",
                           json={"body": BODY})
        assert (body["field"], body["rule"]) == ("discussion_id", "status")
        await call(h, "PATCH", f"/discussions/{did}", ann_t,
                   json={"title": "Trio versus asyncio, again"})
        await call(h, "DELETE", f"/discussions/{did}", ann_t, status=204)
        body = await fails(h, "GET", f"/discussions/{did}", None, 404, "not-found")
        assert body["field"] == "discussion_id"


async def test_resources_links_and_files(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        link = await call(h, "POST", "/resources", ann_t, status=201, json={
            "title": "The trio documentation", "resource_type": "link",
            "url": "https://trio.readthedocs.io/", "tags": ["trio"]})
        assert (link["url"], link["file"]) == ("https://trio.readthedocs.io/", None)
        file = await call(h, "POST", "/resources", ann_t, status=201, json={
            "title": "Slides of the trio talk", "resource_type": "file",
            "file": {"name": "slides.pdf", "size_bytes": 123456,
                     "content_type": "application/pdf"}})
        assert file["file"]["name"] == "slides.pdf" and file["url"] is None
        listed = await call(h, "GET", "/resources?tag=trio")
        assert [r["id"] for r in listed["items"]] == [link["id"]]
        await call(h, "POST", f"/resources/{file['id']}/downloads", status=204)
        read = await call(h, "GET", f"/resources/{file['id']}", bob_t)
        assert (read["download_count"], read["view_count"]) == (1, 1)
        changed = await call(h, "PATCH", f"/resources/{link['id']}", ann_t,
                             json={"description": "Start here"})
        assert changed["description"] == "Start here"
        body = await fails(h, "POST", "/resources", ann_t, 422, "validation-failed", json={
            "title": "A file far too large", "resource_type": "file",
            "file": {"name": "big.iso", "size_bytes": 10**12,
                     "content_type": "application/octet-stream"}})
        assert body["field"] == "file.size_bytes"
        body = await fails(h, "POST", "/resources", ann_t, 422, "validation-failed", json={
            "title": "A link without an address", "resource_type": "link"})
        assert body["field"] == "url"
        body = await fails(h, "POST", "/resources", ann_t, 422, "validation-failed", json={
            "title": "A file with a path name", "resource_type": "file",
            "file": {"name": "../etc/passwd", "size_bytes": 1, "content_type": "text/plain"}})
        assert body["field"] == "file.name"
        await fails(h, "DELETE", f"/resources/{link['id']}", bob_t, 403, "forbidden")
        await call(h, "DELETE", f"/resources/{link['id']}", ann_t, status=204)
        await fails(h, "GET", f"/resources/{link['id']}", None, 404, "not-found")


# -- comments, likes, views, question status, XP -----------------------------------------------
async def test_comments_likes_and_views(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        bob, bob_t = await user(h, "bob")
        made = await insight(h, ann_t)
        iid = made["id"]
        asked = await question(h, ann_t)
        comment = await call(h, "POST", "/comments", bob_t, status=201, json={
            "target_type": "insight", "target_id": iid, "body": "Nice write-up!"})
        await call(h, "POST", "/comments", ann_t, status=201, json={
            "target_type": "question", "target_id": asked["id"], "body": "Any takers?"})
        listed = await call(h, "GET", f"/comments?target_type=insight&target_id={iid}")
        assert [c["id"] for c in listed["items"]] == [comment["id"]]
        assert listed["items"][0]["created_by"] == bob
        assert (await call(h, "GET", f"/insights/{iid}"))["comment_count"] == 1
        edited = await call(h, "PATCH", f"/comments/{comment['id']}", bob_t,
                            json={"body": "Very nice write-up!"})
        assert edited["body"] == "Very nice write-up!"
        # likes: idempotent both ways, counted once
        liked = await call(h, "PUT", f"/likes/insight/{iid}", bob_t)
        liked_again = await call(h, "PUT", f"/likes/insight/{iid}", bob_t)
        assert (liked["changed"], liked_again["changed"]) == (True, False)
        assert (await call(h, "GET", f"/likes/insight/{iid}", bob_t))["liked"] is True
        assert (await call(h, "GET", f"/insights/{iid}"))["like_count"] == 1
        await call(h, "PUT", f"/likes/comment/{comment['id']}", ann_t)
        unliked = await call(h, "DELETE", f"/likes/insight/{iid}", bob_t)
        unliked_again = await call(h, "DELETE", f"/likes/insight/{iid}", bob_t)
        assert (unliked["changed"], unliked_again["changed"]) == (True, False)
        assert (await call(h, "GET", f"/insights/{iid}"))["like_count"] == 0
        # views
        await call(h, "POST", "/views", status=204,
                   json={"target_type": "question", "target_id": asked["id"]})
        assert (await call(h, "GET", f"/questions/{asked['id']}"))["view_count"] == 2
        # errors
        body = await fails(h, "PUT", f"/likes/question/{asked['id']}", bob_t, 400,
                           "invalid-parameter")
        assert body["field"] == "target_type"
        await fails(h, "PUT", "/likes/insight/ins_missing", bob_t, 404, "not-found")
        await fails(h, "PUT", f"/likes/insight/{iid}", None, 401, "unauthorized")
        body = await fails(h, "POST", "/comments", bob_t, 422, "validation-failed", json={
            "target_type": "insight", "target_id": iid, "body": ""})
        assert body["field"] == "body"
        body = await fails(h, "POST", "/comments", bob_t, 404, "not-found", json={
            "target_type": "insight", "target_id": "ins_missing", "body": "Hello"})
        assert body["field"] == "target_id"
        body = await fails(h, "GET", "/comments?target_type=insight", None, 400,
                           "invalid-parameter")
        assert body["field"] == "target_id"
        await fails(h, "DELETE", f"/comments/{comment['id']}", ann_t, 403, "forbidden")
        await call(h, "DELETE", f"/comments/{comment['id']}", bob_t, status=204)
        await fails(h, "DELETE", f"/comments/{comment['id']}", bob_t, 404, "not-found")
        draft = await insight(h, ann_t, "A draft nobody comments", publish=False)
        body = await fails(h, "POST", "/comments", ann_t, 409, "conflict", json={
            "target_type": "insight", "target_id": draft["id"], "body": "Note to self"})
        assert body["rule"] == "status"


async def test_question_close_reopen_resolve(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await user(h, "ann")
        _, bob_t = await user(h, "bob")
        qid = (await question(h, ann_t))["id"]
        await fails(h, "POST", f"/questions/{qid}/close", bob_t, 403, "forbidden", json={})
        closed = await call(h, "POST", f"/questions/{qid}/close", ann_t,
                            json={"reason": "found it myself"})
        assert closed["status"] == "closed"
        body = await fails(h, "POST", f"/questions/{qid}/answers", bob_t, 409, "conflict",
                           json={"body": BODY})
        assert body["field"] == "question_id"
        body = await fails(h, "POST", f"/questions/{qid}/resolve", ann_t, 409, "conflict")
        assert body["rule"] == "status"
        assert (await call(h, "POST", f"/questions/{qid}/reopen", ann_t))["status"] == "open"
        assert (await call(h, "POST", f"/questions/{qid}/resolve", ann_t))["status"] == \
            "resolved"
        await fails(h, "POST", "/questions/q_missing/resolve", ann_t, 404, "not-found")
        await fails(h, "POST", f"/questions/{qid}/reopen", None, 401, "unauthorized")
        listed = await call(h, "GET", "/questions?status=resolved")
        assert [q["id"] for q in listed["items"]] == [qid]


async def test_xp_arrives_for_an_insight_a_comment_and_a_like(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, ann_t = await user(h, "ann")
        bob, bob_t = await user(h, "bob")
        await h.relay_all()
        before = {uid: (await call(h, "GET", f"/users/{uid}/gamification"))["total_xp"]
                  for uid in (ann, bob)}
        iid = (await insight(h, ann_t))["id"]
        await call(h, "POST", "/comments", bob_t, status=201, json={
            "target_type": "insight", "target_id": iid, "body": "Thanks for this!"})
        await call(h, "PUT", f"/likes/insight/{iid}", bob_t)
        await h.relay_all()

        async def sources(tokens: Any) -> list[tuple[str, int]]:
            history = await call(h, "GET", "/users/me/xp-transactions?limit=100", tokens)
            return [(t["source"], t["amount"]) for t in history["items"]
                    if t["source"] in ("insight_published", "comment_added", "content_liked")]

        assert sorted(await sources(ann_t)) == [("content_liked", 2), ("insight_published", 25)]
        assert await sources(bob_t) == [("comment_added", 2)]
        after = {uid: (await call(h, "GET", f"/users/{uid}/gamification"))["total_xp"]
                 for uid in (ann, bob)}
        assert after[ann] - before[ann] >= 27 and after[bob] - before[bob] >= 2
        # a like taken back and given again pays nothing more
        await call(h, "DELETE", f"/likes/insight/{iid}", bob_t)
        await call(h, "PUT", f"/likes/insight/{iid}", bob_t)
        await h.relay_all()
        assert [s for s in await sources(ann_t) if s[0] == "content_liked"] == [
            ("content_liked", 2)]
