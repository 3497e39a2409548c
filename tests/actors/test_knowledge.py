"""Questions, answers, acceptance and votes against a real SQLite store: validation, events in
the same unit, pagination, counters equal to recounts, and concurrent writers."""

from __future__ import annotations

import datetime as dt
import random
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.knowledge import (
    ANSWERS,
    QUESTION_TAGS,
    QUESTIONS,
    VOTES,
    Knowledge,
    KnowledgeError,
    Question,
    counter_changes,
    slugify,
    validate_tags,
)
from tektree.persistence import DocumentStore, DuplicateKeyError, SqliteStore, ensure_kernel_indexes

BODY = "A body long enough to pass the twenty character rule."
T0 = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
async def kb(tmp_path: Path) -> AsyncIterator[Knowledge]:
    async with SqliteStore.open(tmp_path / "k.sqlite3") as store:
        await ensure_kernel_indexes(store)
        service = Knowledge(store)
        await service.ensure_indexes()
        yield service


async def _events(store: DocumentStore, event_type: str) -> list[dict[str, Any]]:
    return list((await store.find("events", {"event_type": event_type}, limit=1000)).items)


async def _ask(kb: Knowledge, author: str = "usr_asker", n: int = 0, **kw: Any) -> Question:
    return await kb.post_question(author, title=f"How do I do thing number {n}?", body=BODY,
                                  now=T0 + dt.timedelta(seconds=n), **kw)


async def _assert_counters_match_recount(kb: Knowledge, collection: str, target_id: str) -> None:
    doc = await kb.store.get(collection, target_id)
    assert doc is not None
    ups = await kb.store.count(VOTES, {"target_id": target_id, "value": 1})
    downs = await kb.store.count(VOTES, {"target_id": target_id, "value": -1})
    assert (doc["upvote_count"], doc["downvote_count"], doc["score"]) == (ups, downs, ups - downs)


# -- pure rules ------------------------------------------------------------------------------------
def test_slugify() -> None:
    assert slugify("How do I implement Event Sourcing?") == "how-do-i-implement-event-sourcing"
    assert slugify("  Café: naïve -- résumé  ") == "cafe-naive-resume"
    assert slugify("???  ???  ???") == "question"
    assert len(slugify("word " * 60)) <= 80 and not slugify("word " * 60).endswith("-")


def test_tags_are_lowercased_deduplicated_and_bounded() -> None:
    assert validate_tags(["Go", "event-sourcing", "go", " GO "]) == ("go", "event-sourcing")
    assert validate_tags(["a", "b", "c", "d", "e", "A"]) == ("a", "b", "c", "d", "e")
    for bad, rule in [(["a", "b", "c", "d", "e", "f"], "count"), (["c++"], "format"),
                      (["x" * 31], "format"), ([""], "format"), ("python", "type"),
                      ([3], "format")]:
        with pytest.raises(KnowledgeError) as info:
            validate_tags(bad)
        assert (info.value.field, info.value.rule) == ("tags", rule)


@pytest.mark.parametrize(("previous", "value", "expected"), [
    (0, 1, {"upvote_count": 1, "score": 1}),
    (1, -1, {"upvote_count": -1, "downvote_count": 1, "score": -2}),
    (-1, 0, {"downvote_count": -1, "score": 1}),
    (1, 1, {}),
])
def test_counter_changes_move_by_the_difference(
    previous: int, value: int, expected: dict[str, int]
) -> None:
    assert counter_changes(previous, value) == expected


# -- questions -----------------------------------------------------------------------------------
async def test_post_question_stores_document_and_event_in_one_unit(kb: Knowledge) -> None:
    await kb.store.insert("areas", {"_id": "area_1", "created_by": "usr_bo",
                                    "visibility": "public", "content_count": 0})
    q = await kb.post_question("usr_ada", title="  How do I implement Event Sourcing?  ",
                               body=BODY, tags=["Go", "event-sourcing", "go"],
                               area_ids=["area_1"], correlation_id="req-7")
    assert q.id.startswith("q_") and q.slug == "how-do-i-implement-event-sourcing"
    assert q.title == "How do I implement Event Sourcing?" and q.tags == ("go", "event-sourcing")
    assert (q.status, q.accepted_answer_id, q.created_by, q.areas) == (
        "open", None, "usr_ada", ("area_1",))
    assert (q.answer_count, q.upvote_count, q.downvote_count, q.view_count) == (0, 0, 0, 0)
    assert await kb.get_question(q.id) == q
    (posted,) = await _events(kb.store, "knowledge.question.posted")
    assert posted["payload"] == {"question_id": q.id, "author_id": "usr_ada",
                                 "title": q.title, "tags": ["go", "event-sourcing"],
                                 "area_ids": ["area_1"]}
    assert posted["correlation_id"] == "req-7" and posted["producer_id"] == "knowledge"


@pytest.mark.parametrize(("kwargs", "field", "rule"), [
    ({"title": "Too short"}, "title", "length"),
    ({"title": "x" * 201}, "title", "length"),
    ({"title": "          padded  "}, "title", "length"),
    ({"body": "short body"}, "body", "length"),
    ({"body": "x" * 20_001}, "body", "length"),
    ({"tags": ["ok", "Not Ok"]}, "tags", "format"),
    ({"tags": ["a", "b", "c", "d", "e", "f"]}, "tags", "count"),
    ({"area_ids": "area_1"}, "area_ids", "type"),
])
async def test_bad_question_input_names_field_and_rule(
    kb: Knowledge, kwargs: dict[str, Any], field: str, rule: str
) -> None:
    args: dict[str, Any] = {"title": "A perfectly fine title", "body": BODY, **kwargs}
    with pytest.raises(KnowledgeError) as info:
        await kb.post_question("usr_ada", **args)
    assert (info.value.field, info.value.rule) == (field, rule)
    assert await kb.store.count(QUESTIONS) == 0
    assert await kb.store.count("events") == 0


async def test_get_missing_question_and_views(kb: Knowledge) -> None:
    assert await kb.get_question("q_missing") is None
    q = await _ask(kb)
    for _ in range(3):
        await kb.view(q.id)
    got = await kb.get_question(q.id)
    assert got is not None and got.view_count == 3
    with pytest.raises(KnowledgeError) as info:
        await kb.view("q_missing")
    assert (info.value.rule, info.value.field) == ("exists", "question_id")
    assert "q_missing" in str(info.value)


async def test_list_questions_newest_first_across_pages(kb: Knowledge) -> None:
    posted = [await _ask(kb, n=n) for n in range(25)]
    seen: list[str] = []
    cursor: str | None = None
    sizes = []
    while True:
        page = await kb.list_questions(limit=10, cursor=cursor)
        sizes.append(len(page.items))
        seen += [q.id for q in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [10, 10, 5]
    assert seen == [q.id for q in reversed(posted)]


async def test_list_questions_by_tag_author_and_status(kb: Knowledge) -> None:
    tagged = [await _ask(kb, n=n, tags=["trio", f"t{n % 2}"]) for n in range(7)]
    await _ask(kb, "usr_other", n=50, tags=["asyncio"])
    page1 = await kb.list_questions(tag="TRIO", limit=4)
    page2 = await kb.list_questions(tag="trio", limit=4, cursor=page1.next_cursor)
    assert page2.next_cursor is None
    assert [q.id for q in page1.items + page2.items] == [q.id for q in reversed(tagged)]
    assert [q.id for q in (await kb.list_questions(tag="t1")).items] == [
        tagged[5].id, tagged[3].id, tagged[1].id]
    by_other = await kb.list_questions(author_id="usr_other")
    assert [q.created_by for q in by_other.items] == ["usr_other"]
    assert (await kb.list_questions(tag="nope")).items == ()
    # status follows acceptance, also through the tag listing
    a = await kb.submit_answer(tagged[2].id, "usr_helper", body=BODY)
    await kb.accept_answer(a.id, "usr_asker")
    resolved = await kb.list_questions(tag="trio", status="resolved")
    assert [q.id for q in resolved.items] == [tagged[2].id]
    assert len((await kb.list_questions(status="open")).items) == 7


@pytest.mark.parametrize(("kwargs", "field", "rule"), [
    ({"limit": 0}, "limit", "range"),
    ({"limit": 101}, "limit", "range"),
    ({"status": "pending"}, "status", "enum"),
    ({"tag": "c++"}, "tag", "format"),
    ({"cursor": "not-a-cursor"}, "cursor", "valid"),
])
async def test_bad_listing_arguments(
    kb: Knowledge, kwargs: dict[str, Any], field: str, rule: str
) -> None:
    await _ask(kb)
    with pytest.raises(KnowledgeError) as info:
        await kb.list_questions(**kwargs)
    assert (info.value.field, info.value.rule) == (field, rule)


async def test_a_failed_unit_leaves_neither_document_nor_event(
    kb: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("actors.knowledge.secrets",
                        types.SimpleNamespace(token_hex=lambda n: "ab" * n))
    await kb.store.insert(QUESTIONS, {"_id": "q_" + "ab" * 8, "squatter": True})
    with pytest.raises(DuplicateKeyError):
        await kb.post_question("usr_ada", title="A perfectly fine title", body=BODY,
                               tags=["trio"])
    assert await kb.store.count("events") == 0  # recorded before the insert, rolled back
    assert await kb.store.count(QUESTION_TAGS) == 0
    # the same for an answer: no answer_count increment, no event
    monkeypatch.undo()
    q = await _ask(kb)
    monkeypatch.setattr("actors.knowledge.secrets",
                        types.SimpleNamespace(token_hex=lambda n: "cd" * n))
    await kb.store.insert(ANSWERS, {"_id": "a_" + "cd" * 8, "squatter": True})
    with pytest.raises(DuplicateKeyError):
        await kb.submit_answer(q.id, "usr_helper", body=BODY)
    got = await kb.get_question(q.id)
    assert got is not None and got.answer_count == 0
    assert await _events(kb.store, "knowledge.answer.submitted") == []


# -- answers -------------------------------------------------------------------------------------
async def test_submit_answer_counts_and_emits(kb: Knowledge) -> None:
    q = await _ask(kb)
    a = await kb.submit_answer(q.id, "usr_helper", body=BODY, correlation_id="req-9")
    assert a.id.startswith("a_") and a.question_id == q.id and not a.is_accepted
    got = await kb.get_question(q.id)
    assert got is not None and got.answer_count == 1
    (submitted,) = await _events(kb.store, "knowledge.answer.submitted")
    assert submitted["payload"] == {"answer_id": a.id, "question_id": q.id,
                                    "author_id": "usr_helper", "question_author_id": "usr_asker"}
    assert submitted["correlation_id"] == "req-9"
    assert await kb.get_answer(a.id) == a


async def test_submit_answer_needs_an_existing_open_question(kb: Knowledge) -> None:
    with pytest.raises(KnowledgeError) as missing:
        await kb.submit_answer("q_nope", "usr_helper", body=BODY)
    assert (missing.value.field, missing.value.rule) == ("question_id", "exists")
    assert "q_nope" in missing.value.detail
    q = await _ask(kb)
    with pytest.raises(KnowledgeError) as short:
        await kb.submit_answer(q.id, "usr_helper", body="ok")
    assert (short.value.field, short.value.rule) == ("body", "length")
    await kb.store.update(QUESTIONS, q.id, {"$set": {"status": "closed"}})
    with pytest.raises(KnowledgeError) as closed:
        await kb.submit_answer(q.id, "usr_helper", body=BODY)
    assert (closed.value.field, closed.value.rule) == ("question_id", "status")
    assert await kb.store.count(ANSWERS) == 0


async def test_list_answers_accepted_then_score_then_oldest(kb: Knowledge) -> None:
    q = await _ask(kb)
    answers = [await kb.submit_answer(q.id, f"usr_h{n}", body=BODY,
                                      now=T0 + dt.timedelta(minutes=n)) for n in range(6)]
    await kb.vote("usr_v1", target_type="answer", target_id=answers[4].id, value=1)
    await kb.vote("usr_v2", target_type="answer", target_id=answers[4].id, value=1)
    await kb.vote("usr_v1", target_type="answer", target_id=answers[2].id, value=1)
    await kb.vote("usr_v1", target_type="answer", target_id=answers[0].id, value=-1)
    await kb.accept_answer(answers[5].id, "usr_asker")
    expected = [answers[i].id for i in (5, 4, 2, 1, 3, 0)]
    first = await kb.list_answers(q.id, limit=4)
    rest = await kb.list_answers(q.id, limit=4, cursor=first.next_cursor)
    assert rest.next_cursor is None
    assert [a.id for a in first.items + rest.items] == expected
    with pytest.raises(KnowledgeError) as info:
        await kb.list_answers("q_nope")
    assert info.value.rule == "exists"


# -- acceptance ----------------------------------------------------------------------------------
async def test_only_the_asker_accepts(kb: Knowledge) -> None:
    q = await _ask(kb)
    a = await kb.submit_answer(q.id, "usr_helper", body=BODY)
    for intruder in ("usr_helper", "usr_someone"):
        with pytest.raises(KnowledgeError) as info:
            await kb.accept_answer(a.id, intruder)
        assert (info.value.field, info.value.rule) == ("by_user_id", "forbidden")
        assert "usr_asker" in info.value.detail
    with pytest.raises(KnowledgeError) as missing:
        await kb.accept_answer("a_nope", "usr_asker")
    assert (missing.value.field, missing.value.rule) == ("answer_id", "exists")
    assert await _events(kb.store, "knowledge.answer.accepted") == []
    assert (await kb.get_answer(a.id)) == a


async def test_accepting_switches_and_emits_once_per_answer(kb: Knowledge) -> None:
    q = await _ask(kb)
    a1 = await kb.submit_answer(q.id, "usr_h1", body=BODY)
    a2 = await kb.submit_answer(q.id, "usr_h2", body=BODY)
    accepted = await kb.accept_answer(a1.id, "usr_asker", correlation_id="req-1")
    assert accepted.is_accepted
    got = await kb.get_question(q.id)
    assert got is not None and (got.status, got.accepted_answer_id) == ("resolved", a1.id)
    (event,) = await _events(kb.store, "knowledge.answer.accepted")
    assert event["payload"] == {"answer_id": a1.id, "question_id": q.id,
                                "answer_author_id": "usr_h1", "question_author_id": "usr_asker"}
    assert event["metadata"] == {"previous_answer_id": None}

    assert (await kb.accept_answer(a1.id, "usr_asker")).is_accepted  # no-op
    assert len(await _events(kb.store, "knowledge.answer.accepted")) == 1

    await kb.accept_answer(a2.id, "usr_asker")  # a switch: a new acceptance
    states = {a.id: a.is_accepted for a in (await kb.list_answers(q.id)).items}
    assert states == {a1.id: False, a2.id: True}
    got = await kb.get_question(q.id)
    assert got is not None and got.accepted_answer_id == a2.id
    evts = await _events(kb.store, "knowledge.answer.accepted")
    assert sorted(e["payload"]["answer_id"] for e in evts) == sorted([a1.id, a2.id])
    assert {e["metadata"]["previous_answer_id"] for e in evts} == {None, a1.id}

    await kb.accept_answer(a1.id, "usr_asker")  # back to a1: switched, not paid twice
    states = {a.id: a.is_accepted for a in (await kb.list_answers(q.id)).items}
    assert states == {a1.id: True, a2.id: False}
    assert len(await _events(kb.store, "knowledge.answer.accepted")) == 2


async def test_concurrent_acceptances_leave_one_accepted_answer(kb: Knowledge) -> None:
    q = await _ask(kb)
    answers = [await kb.submit_answer(q.id, f"usr_h{n}", body=BODY) for n in range(5)]
    async with trio.open_nursery() as nursery:
        for a in answers:
            nursery.start_soon(kb.accept_answer, a.id, "usr_asker")
            nursery.start_soon(kb.accept_answer, a.id, "usr_asker")  # a double click
    accepted = await kb.store.find(ANSWERS, {"question_id": q.id, "is_accepted": True})
    got = await kb.get_question(q.id)
    assert got is not None
    assert [d["_id"] for d in accepted.items] == [got.accepted_answer_id]
    evts = await _events(kb.store, "knowledge.answer.accepted")
    assert sorted(e["payload"]["answer_id"] for e in evts) == sorted(a.id for a in answers)


# -- votes ---------------------------------------------------------------------------------------
async def test_vote_change_withdraw_and_events(kb: Knowledge) -> None:
    q = await _ask(kb)
    a = await kb.submit_answer(q.id, "usr_helper", body=BODY)
    steps = [(1, 0), (1, None), (-1, 1), (0, -1), (0, None), (-1, 0)]
    for value, previous in steps:
        vote = await kb.vote("usr_v", target_type="answer", target_id=a.id, value=value)
        assert vote.changed == (previous is not None)
        await _assert_counters_match_recount(kb, ANSWERS, a.id)
    got = await kb.get_answer(a.id)
    assert got is not None and (got.upvote_count, got.downvote_count, got.score) == (0, 1, -1)
    evts = await _events(kb.store, "knowledge.content.voted")
    assert sorted((e["payload"]["value"], e["payload"]["previous_value"]) for e in evts) == sorted(
        (v, p) for v, p in steps if p is not None)
    assert evts[0]["payload"]["author_id"] == "usr_helper"
    assert await kb.store.count(VOTES) == 1
    await kb.vote("usr_v", target_type="question", target_id=q.id, value=1)
    got_q = await kb.get_question(q.id)
    assert got_q is not None and (got_q.upvote_count, got_q.score) == (1, 1)


@pytest.mark.parametrize(("kwargs", "field", "rule"), [
    ({"target_type": "insight"}, "target_type", "enum"),
    ({"value": 2}, "value", "enum"),
    ({"value": True}, "value", "enum"),
    ({"target_id": "a_nope"}, "target_id", "exists"),
    ({"target_type": "question"}, "target_id", "exists"),  # an answer id is no question
])
async def test_bad_votes_name_field_and_rule(
    kb: Knowledge, kwargs: dict[str, Any], field: str, rule: str
) -> None:
    q = await _ask(kb)
    a = await kb.submit_answer(q.id, "usr_helper", body=BODY)
    args: dict[str, Any] = {"target_type": "answer", "target_id": a.id, "value": 1, **kwargs}
    with pytest.raises(KnowledgeError) as info:
        await kb.vote("usr_v", **args)
    assert (info.value.field, info.value.rule) == (field, rule)
    assert await kb.store.count(VOTES) == 0


async def test_no_votes_on_ones_own_content(kb: Knowledge) -> None:
    q = await _ask(kb)
    a = await kb.submit_answer(q.id, "usr_helper", body=BODY)
    for voter, kind, target in [("usr_asker", "question", q.id), ("usr_helper", "answer", a.id)]:
        with pytest.raises(KnowledgeError) as info:
            await kb.vote(voter, target_type=kind, target_id=target, value=1)
        assert (info.value.field, info.value.rule) == ("voter_id", "own_content")
    assert await kb.store.count(VOTES) == 0
    assert await _events(kb.store, "knowledge.content.voted") == []


async def test_the_store_holds_one_vote_per_voter_and_target(kb: Knowledge) -> None:
    doc = {"voter_id": "u", "target_type": "answer", "target_id": "a_1", "value": 1}
    await kb.store.insert(VOTES, {"_id": "one", **doc})
    with pytest.raises(DuplicateKeyError) as info:
        await kb.store.insert(VOTES, {"_id": "two", **doc})
    assert info.value.index == "votes_voter_target_unique"


async def test_twenty_concurrent_voters_make_twenty_upvotes(kb: Knowledge) -> None:
    q = await _ask(kb)
    a = await kb.submit_answer(q.id, "usr_helper", body=BODY)
    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(lambda n=n: kb.vote(f"usr_v{n}", target_type="answer",
                                                   target_id=a.id, value=1))
    got = await kb.get_answer(a.id)
    assert got is not None and got.upvote_count == 20 and got.score == 20
    assert len(await _events(kb.store, "knowledge.content.voted")) == 20


@pytest.mark.parametrize("values", [(1, 1), (1, 1, 1, 1, 1), (1, -1), (1, -1, 0, 1, -1)])
async def test_concurrent_votes_by_one_user_count_once(
    kb: Knowledge, values: tuple[int, ...]
) -> None:
    q = await _ask(kb)
    a = await kb.submit_answer(q.id, "usr_helper", body=BODY)
    async with trio.open_nursery() as nursery:
        for value in values:
            nursery.start_soon(lambda v=value: kb.vote("usr_v", target_type="answer",
                                                       target_id=a.id, value=v))
    votes = (await kb.store.find(VOTES, {"target_id": a.id})).items
    assert len(votes) == 1
    await _assert_counters_match_recount(kb, ANSWERS, a.id)
    evts = await _events(kb.store, "knowledge.content.voted")
    # every event is one step of the vote's history: each starts where the previous ended
    chain = sorted(evts, key=lambda e: int(e["event_id"].rsplit("_", 1)[1]))
    assert [e["payload"]["previous_value"] for e in chain] == [0] + [
        e["payload"]["value"] for e in chain[:-1]]
    assert chain[-1]["payload"]["value"] == votes[0]["value"]


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_counters_equal_recounts_after_random_vote_sequences(
    kb: Knowledge, seed: int
) -> None:
    rng = random.Random(seed)
    q = await _ask(kb)
    targets = [("question", QUESTIONS, q.id)] + [
        ("answer", ANSWERS, (await kb.submit_answer(q.id, f"usr_h{n}", body=BODY)).id)
        for n in range(3)]
    voters = [f"usr_v{n}" for n in range(5)] + ["usr_h0"]
    for _ in range(12):  # rounds of concurrent votes, some by the same voter on the same target
        async with trio.open_nursery() as nursery:
            for _ in range(rng.randint(1, 8)):
                kind, _, target = rng.choice(targets)
                voter, value = rng.choice(voters), rng.choice((1, -1, 0))
                nursery.start_soon(_vote_or_own, kb, voter, kind, target, value)
    for _, collection, target in targets:
        await _assert_counters_match_recount(kb, collection, target)
    # the event stream replays to the same totals
    evts = await _events(kb.store, "knowledge.content.voted")
    for _, collection, target in targets:
        doc = await kb.store.get(collection, target)
        assert doc is not None
        assert doc["score"] == sum(e["payload"]["value"] - e["payload"]["previous_value"]
                                   for e in evts if e["payload"]["target_id"] == target)


async def _vote_or_own(kb: Knowledge, voter: str, kind: str, target: str, value: int) -> None:
    try:
        await kb.vote(voter, target_type=kind, target_id=target, value=value)
    except KnowledgeError as exc:
        assert exc.rule == "own_content"
