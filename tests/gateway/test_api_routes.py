"""Every users, content, gamification, billing and operations route through the real app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gwkit import API, Harness, bearer, open_app
from test_api_auth import problem

from actors.rules import ACHIEVEMENTS, iso_week
from gateway.routes.gamification import board_name
from tektree import capture_logs
from tektree.persistence import EVENTS

BODY = "Some detailed body text that is long enough to pass."


async def ask(h: Harness, tokens: Any, title: str = "How do trio nurseries work?",
              **extra: Any) -> dict[str, Any]:
    response = await h.client.post(f"{API}/questions", headers=bearer(tokens),
                                   json={"title": title, "body": BODY, **extra})
    body: dict[str, Any] = await response.get_json()
    assert response.status_code == 201, body
    assert response.headers["Location"] == f"/api/v1/questions/{body['id']}"
    return body


async def answer(h: Harness, tokens: Any, qid: str) -> dict[str, Any]:
    response = await h.client.post(f"{API}/questions/{qid}/answers", headers=bearer(tokens),
                                   json={"body": BODY})
    body: dict[str, Any] = await response.get_json()
    assert response.status_code == 201, body
    return body


async def test_users_me_get_patch_and_public_profiles(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, tokens = await h.register("ann")
        patched = await h.client.patch(f"{API}/users/me", headers=bearer(tokens), json={
            "bio": "I like trio", "first_name": "Ann", "preferences": {"theme": "dark"}})
        body = await patched.get_json()
        assert patched.status_code == 200, body
        assert (body["bio"], body["first_name"], body["preferences"]) == (
            "I like trio", "Ann", {"theme": "dark"})
        empty = await h.client.patch(f"{API}/users/me", headers=bearer(tokens), json={})
        assert (await problem(empty, 422, "validation-failed"))["rule"] == "minProperties"
        avatar = await h.client.patch(f"{API}/users/me", headers=bearer(tokens),
                                      json={"avatar": "http://insecure.example/a.png"})
        assert (await problem(avatar, 422, "validation-failed"))["field"] == "avatar"
        for ident in (ann["uid"], "ann", "ANN"):
            public = await (await h.client.get(f"{API}/users/{ident}")).get_json()
            assert public["uid"] == ann["uid"] and public["bio"] == "I like trio"
            assert "email" not in public and "preferences" not in public
        missing = await h.client.get(f"{API}/users/nobody")
        assert (await problem(missing, 404, "not-found"))["field"] == "user"
        me_anonymous = await h.client.get(f"{API}/users/me")
        await problem(me_anonymous, 401, "unauthorized")


async def test_opting_out_hides_the_user_from_the_boards(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        ann, tokens = await h.register("ann")
        await h.relay_all()
        board = await (await h.client.get(f"{API}/leaderboards/global")).get_json()
        assert [e["user_id"] for e in board["items"]] == [ann["uid"]]
        await h.client.patch(f"{API}/users/me", headers=bearer(tokens),
                             json={"preferences": {"leaderboard_opt_out": True}})
        with_trio_wait = await h.relay_all()
        assert with_trio_wait >= 0
        board = await (await h.client.get(f"{API}/leaderboards/global")).get_json()
        assert board["items"] == []
        profile = await (await h.client.get(f"{API}/users/{ann['uid']}/gamification")).get_json()
        assert profile["leaderboard_opt_out"] is True


async def test_the_game_loop_over_rest(tmp_path: Path) -> None:
    """Ask, answer, vote, accept: XP, levels, quests, history and ranks follow."""
    async with open_app(tmp_path) as h:
        ann, ann_t = await h.register("ann")
        bob, bob_t = await h.register("bob")
        unknown_area = await h.client.post(f"{API}/questions", headers=bearer(bob_t), json={
            "title": "How do trio nurseries work?", "body": BODY, "area_ids": ["python"]})
        refused = await unknown_area.get_json()
        assert unknown_area.status_code == 404 and refused["detail"].startswith("area_ids:")
        question = await ask(h, bob_t, tags=["trio", "Async"])
        assert question["tags"] == ["trio", "async"] and question["created_by"] == bob["uid"]
        reply = await answer(h, ann_t, question["id"])
        up = await h.client.post(f"{API}/votes", headers=bearer(bob_t), json={
            "target_type": "answer", "target_id": reply["id"], "value": 1})
        assert (await up.get_json())["changed"] is True
        accepted = await h.client.post(f"{API}/answers/{reply['id']}/accept",
                                       headers=bearer(bob_t))
        assert (await accepted.get_json())["is_accepted"] is True
        await h.relay_all()
        profile = await (await h.client.get(f"{API}/users/{ann['uid']}/gamification")).get_json()
        # 60 (welcome + daily quest) + 20 (answer + First Answer) + 10 (up-vote) + 50 (accepted
        # + Problem Solver): the seed's numbers, as in the game-loop test
        assert (profile["total_xp"], profile["current_level"]) == (140, 2)
        assert set(profile["achievements"]) >= {"ach_first_answer"}
        history = await (await h.client.get(f"{API}/users/me/xp-transactions?limit=2",
                                            headers=bearer(ann_t))).get_json()
        assert len(history["items"]) == 2 and history["next_cursor"]
        rest = await (await h.client.get(
            f"{API}/users/me/xp-transactions?limit=100&cursor={history['next_cursor']}",
            headers=bearer(ann_t))).get_json()
        assert sum(t["amount"] for t in history["items"] + rest["items"]) == 140
        assert rest["next_cursor"] is None
        bad_cursor = await h.client.get(f"{API}/users/me/xp-transactions?cursor=zzz",
                                        headers=bearer(ann_t))
        assert (await problem(bad_cursor, 422, "validation-failed"))["field"] == "cursor"
        quests = await (await h.client.get(f"{API}/users/me/quests",
                                           headers=bearer(ann_t))).get_json()
        assert quests["items"] and {"quest_id", "progress", "target"} <= set(quests["items"][0])
        week = iso_week(__import__("datetime").datetime.now(__import__("datetime").UTC))
        for name in ("global", "weekly", f"weekly:{week}"):
            board = await (await h.client.get(f"{API}/leaderboards/{name}?limit=1")).get_json()
            assert board["items"] == [{"rank": 1, "user_id": ann["uid"], "score": 140,
                                       "handle": "ann"}], name
            assert board["next_offset"] == 1
        second = await (await h.client.get(f"{API}/leaderboards/global?limit=1&offset=1")
                        ).get_json()
        assert [e["handle"] for e in second["items"]] == ["bob"]
        rank = await (await h.client.get(f"{API}/leaderboards/global/users/{bob['uid']}?radius=1")
                      ).get_json()
        assert (rank["rank"], rank["ranked"]) == (2, 2)
        assert [e["handle"] for e in rank["around"]] == ["ann", "bob"]
        mine = await (await h.client.get(f"{API}/leaderboards/weekly/users/me",
                                         headers=bearer(ann_t))).get_json()
        assert (mine["rank"], mine["board"]) == (1, f"weekly:{week}")
        # every domain event written while serving a request carries its correlation id
        assert h.node.store is not None
        posted = (await h.node.store.find(EVENTS, {"event_type": "knowledge.answer.submitted"})
                  ).items[0]
        assert posted["correlation_id"].startswith("req_")


async def test_featured_achievements(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _ann, ann_t = await h.register("ann")
        _, bob_t = await h.register("bob")
        question = await ask(h, bob_t)
        await answer(h, ann_t, question["id"])
        await h.relay_all()
        ok = await h.client.put(f"{API}/users/me/featured-achievements", headers=bearer(ann_t),
                                json={"achievement_ids": ["ach_first_answer"]})
        assert (await ok.get_json()) == {"featured_achievements": ["ach_first_answer"]}
        locked = await h.client.put(f"{API}/users/me/featured-achievements",
                                    headers=bearer(ann_t),
                                    json={"achievement_ids": ["ach_first_steps"]})
        body = await problem(locked, 422, "validation-failed")
        assert body["achievement_id"] == "ach_first_steps"
        too_many = await h.client.put(f"{API}/users/me/featured-achievements",
                                      headers=bearer(ann_t), json={"achievement_ids": ["a"] * 4})
        assert (await problem(too_many, 422, "validation-failed"))["rule"] == "maxItems"


async def test_content_rules_come_back_as_problems(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _ann, ann_t = await h.register("ann")
        _, bob_t = await h.register("bob")
        question = await ask(h, bob_t)
        reply = await answer(h, ann_t, question["id"])
        short = await h.client.post(f"{API}/questions", headers=bearer(ann_t),
                                    json={"title": "short", "body": BODY})
        assert (await problem(short, 422, "validation-failed"))["field"] == "title"
        tags = await h.client.post(f"{API}/questions", headers=bearer(ann_t), json={
            "title": "A long enough title", "body": BODY, "tags": ["bad tag!"]})
        assert (await problem(tags, 422, "validation-failed"))["field"] == "tags"
        own = await h.client.post(f"{API}/votes", headers=bearer(ann_t), json={
            "target_type": "answer", "target_id": reply["id"], "value": 1})
        body = await problem(own, 403, "forbidden")
        assert (body["field"], body["rule"]) == ("user", "own_content")
        value = await h.client.post(f"{API}/votes", headers=bearer(bob_t), json={
            "target_type": "answer", "target_id": reply["id"], "value": 5})
        assert (await problem(value, 422, "validation-failed"))["field"] == "value"
        nothing = await h.client.post(f"{API}/votes", headers=bearer(bob_t), json={
            "target_type": "question", "target_id": "q_missing", "value": 1})
        assert (await problem(nothing, 404, "not-found"))["field"] == "target_id"
        not_asker = await h.client.post(f"{API}/answers/{reply['id']}/accept",
                                        headers=bearer(ann_t))
        assert (await problem(not_asker, 403, "forbidden"))["field"] == "user"
        assert (await h.gateway.knowledge.get_answer(reply["id"])).is_accepted is False  # type: ignore[union-attr]
        no_answer = await h.client.post(f"{API}/answers/a_missing/accept", headers=bearer(bob_t))
        await problem(no_answer, 404, "not-found")
        no_question = await h.client.post(f"{API}/questions/q_missing/answers",
                                          headers=bearer(ann_t), json={"body": BODY})
        await problem(no_question, 404, "not-found")
        anonymous = await h.client.post(f"{API}/questions", json={"title": "x", "body": "y"})
        await problem(anonymous, 401, "unauthorized")


async def test_questions_listing_and_reading(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        _, ann_t = await h.register("ann")
        ann_uid = (await (await h.client.get(f"{API}/users/me",
                                             headers=bearer(ann_t))).get_json())["uid"]
        made = [await ask(h, ann_t, title=f"Question number {i:02d}", tags=["t" + str(i % 2)])
                for i in range(5)]
        page = await (await h.client.get(f"{API}/questions?limit=2")).get_json()
        assert [q["id"] for q in page["items"]] == [made[4]["id"], made[3]["id"]]
        rest = await (await h.client.get(f"{API}/questions?limit=100&cursor="
                                         f"{page['next_cursor']}")).get_json()
        assert [q["id"] for q in rest["items"]] == [q["id"] for q in made[2::-1]]
        tagged = await (await h.client.get(f"{API}/questions?tag=t0")).get_json()
        assert len(tagged["items"]) == 3
        by_author = await (await h.client.get(f"{API}/questions?author_id={ann_uid}&status=open")
                           ).get_json()
        assert len(by_author["items"]) == 5
        for query, field in [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                             ("status=gone", "status"), ("sort=new", "sort")]:
            response = await h.client.get(f"{API}/questions?{query}")
            assert (await problem(response, 400, "invalid-parameter"))["field"] == field, query
        cursor = await h.client.get(f"{API}/questions?cursor=not-a-cursor")
        assert (await problem(cursor, 422, "validation-failed"))["field"] == "cursor"
        one = await (await h.client.get(f"{API}/questions/{made[0]['id']}")).get_json()
        assert one["view_count"] == 1
        again = await (await h.client.get(f"{API}/questions/{made[0]['id']}")).get_json()
        assert again["view_count"] == 2
        await problem(await h.client.get(f"{API}/questions/q_none"), 404, "not-found")
        qid = made[0]["id"]
        _, bob_t = await h.register("bob")
        answers = [await answer(h, bob_t, qid) for _ in range(3)]
        listed = await (await h.client.get(f"{API}/questions/{qid}/answers?limit=2")).get_json()
        assert [a["id"] for a in listed["items"]] == [a["id"] for a in answers[:2]]
        assert listed["next_cursor"]


async def test_achievements_and_board_names(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        catalog = await (await h.client.get(f"{API}/achievements")).get_json()
        assert [a["id"] for a in catalog["items"]] == [a.id for a in ACHIEVEMENTS]
        bad = await h.client.get(f"{API}/leaderboards/monthly")
        assert (await problem(bad, 404, "not-found"))["field"] == "board"
        week = await h.client.get(f"{API}/leaderboards/weekly:2025-W99")
        await problem(week, 404, "not-found")
        area = await (await h.client.get(f"{API}/leaderboards/area:python")).get_json()
        assert area == {"board": "area:python", "limit": 10, "offset": 0, "items": [],
                        "next_offset": None}
        unknown_user = await h.client.get(f"{API}/leaderboards/global/users/usr_nobody")
        await problem(unknown_user, 404, "not-found")
    assert board_name("weekly:2025-W50") == "weekly:2025-W50"


async def test_billing_routes_without_a_webhook_secret(tmp_path: Path) -> None:
    # The billing routes themselves: tests/gateway/test_billing_routes.py.
    async with open_app(tmp_path) as h:
        _, tokens = await h.register("ann")
        mine = await h.client.get(f"{API}/subscriptions/me", headers=bearer(tokens))
        assert mine.status_code == 200 and (await mine.get_json())["tier"] == "free"
        hook = await h.client.post(f"{API}/webhooks/polar", json={"type": "x"})
        body = await problem(hook, 503, "not-available")
        assert "webhook_secret" in body["detail"]


async def test_operations_routes(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        health = await h.client.get("/healthz")
        assert await health.get_json() == {"status": "ok", "node": "gw"}
        ready = await (await h.client.get("/readyz")).get_json()
        assert ready["status"] == "ready" and ready["checks"]["store"] is True
        metrics = await h.client.get("/metrics")
        text = (await metrics.get_data()).decode()
        assert 'tektree_http_requests_total{method="GET",route="/readyz",status="200"} 1.0' \
            in text
        jwks = await (await h.client.get("/.well-known/jwks.json")).get_json()
        assert jwks["keys"][0]["kid"] == h.gateway.tokens.key.kid
        docs = await h.client.get("/docs")
        page = (await docs.get_data()).decode()
        assert docs.mimetype == "text/html" and "/openapi.json" in page
        assert "http://" not in page and "https://" not in page  # offline: no CDN
        document = await (await h.client.get("/openapi.json")).get_json()
        assert document["openapi"] == "3.1.0"


async def test_unknown_routes_and_methods_are_problems(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        await problem(await h.client.get(f"{API}/nothing"), 404, "not-found")
        wrong = await h.client.delete(f"{API}/questions")
        await problem(wrong, 405, "method-not-allowed")
        assert "GET" in wrong.headers["Allow"]


async def test_body_size_limit(tmp_path: Path) -> None:
    async with open_app(tmp_path, options={"max_body_bytes": 1000}) as h:
        _, tokens = await h.register("ann")
        big = await h.client.post(f"{API}/questions", headers=bearer(tokens),
                                  json={"title": "A big question here", "body": "x" * 2000})
        body = await problem(big, 413, "payload-too-large")
        assert body["rule"] == "max_body_bytes" and "1000" in body["detail"]
        assert await h.store.count("questions") == 0


async def test_cors_allow_list(tmp_path: Path) -> None:
    allowed = "https://app.example.com"
    async with open_app(tmp_path, options={"cors_allowed_origins": [allowed]}) as h:
        preflight = await h.client.options(f"{API}/questions", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == allowed
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        simple = await h.client.get(f"{API}/achievements", headers={"Origin": allowed})
        assert simple.headers["Access-Control-Allow-Origin"] == allowed
        assert "X-Correlation-ID" in simple.headers["Access-Control-Expose-Headers"]
        evil = await h.client.options(f"{API}/questions", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert (await problem(evil, 403, "cors-origin-not-allowed"))["field"] == "Origin"
        plain = await h.client.get(f"{API}/achievements", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in plain.headers
        header = await h.client.options(f"{API}/questions", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-admin"})
        await problem(header, 403, "cors-origin-not-allowed")


async def test_path_and_query_parameters_are_checked_on_every_shape(tmp_path: Path) -> None:
    # Path segments are matched by their compiled pattern, queries only parsed when present:
    # a refusal still names the parameter and the rule, as the JSON Schema words it.
    async with open_app(tmp_path) as h:
        user, _ = await h.register("ann")
        ann = user["uid"]
        ok = await h.client.get(f"{API}/users/{ann}/gamification")
        assert ok.status_code == 200 and "RateLimit-Remaining" in ok.headers
        bad = await h.client.get(f"{API}/users/bad%24id/gamification")
        body = await problem(bad, 400, "invalid-parameter")
        assert (body["field"], body["rule"]) == ("uid", "pattern")
        assert body["detail"] == "uid: 'bad$id' does not match '^[A-Za-z0-9_:.-]{1,128}$'"
        too_long = await h.client.get(f"{API}/users/{'u' * 129}/gamification")
        assert (await problem(too_long, 400, "invalid-parameter"))["field"] == "uid"
        extra = await h.client.get(f"{API}/users/{ann}/gamification?limit=5")
        body = await problem(extra, 400, "invalid-parameter")
        assert (body["field"], body["rule"]) == ("limit", "unknown")
        assert "allowed: none" in body["detail"]


async def test_correlation_ids_reach_responses_logs_and_actor_messages(tmp_path: Path) -> None:
    async with open_app(tmp_path, options={"access_log": True}) as h:
        ann, tokens = await h.register("ann")
        with capture_logs() as logs:
            response = await h.client.post(f"{API}/questions", headers={
                **bearer(tokens), "X-Correlation-ID": "client-req-42"},
                json={"title": "Correlated question", "body": BODY})
        assert response.headers["X-Correlation-ID"] == "client-req-42"
        (line,) = [e for e in logs if e["event"] == "http request"]
        assert (line["correlation_id"], line["status"]) == ("client-req-42", 201)
        events = (await h.store.find(EVENTS, {"event_type": "knowledge.question.posted"})).items
        assert events[0]["correlation_id"] == "client-req-42"
        await h.relay_all()
        applied = (await h.store.find(EVENTS, {"event_type": "gamification.xp.earned"})).items
        assert "client-req-42" in {e["correlation_id"] for e in applied}
        # the actor messages of a request carry its id in their envelopes
        system = h.node.system
        sent: list[tuple[str, str | None]] = []
        make = system.make_envelope

        def spy(target: Any, message: Any, reply: Any, message_id: str | None = None) -> Any:
            envelope = make(target, message, reply, message_id)
            sent.append((str(target), envelope.correlation_id))
            return envelope

        system.make_envelope = spy  # type: ignore[method-assign]
        try:
            await h.client.get(f"{API}/users/{ann['uid']}/gamification",
                               headers={"X-Correlation-ID": "client-req-43"})
        finally:
            system.make_envelope = make  # type: ignore[method-assign]
        assert (f"user/{ann['uid']}", "client-req-43") in sent, sent
        generated = await h.client.get("/healthz")
        assert generated.headers["X-Correlation-ID"].startswith("req_")


async def test_an_unexpected_error_is_a_logged_500_problem(tmp_path: Path) -> None:
    async with open_app(tmp_path) as h:
        async def broken(question_id: str) -> None:
            raise RuntimeError("the store exploded")

        h.gateway.knowledge.view = broken  # type: ignore[method-assign]
        with capture_logs() as logs:
            response = await h.client.get(f"{API}/questions/q_1")
        body = await problem(response, 500, "internal-error")
        assert "exploded" not in body["detail"]  # the cause is in the log, not the answer
        (line,) = [e for e in logs if e["event"] == "request failed"]
        assert line["correlation_id"] == body["correlation_id"]
        assert "RuntimeError: the store exploded" in line["exception"]
