"""Knowledge: questions, answers, acceptance and votes (the core of the game loop).

Stateless and store-backed (the seed's ``questions`` and ``answers`` collections, plus ``votes``
and ``question_tags``), so any node can serve any call. Every change the rest of TekTree reacts
to is written with its domain event in one atomic unit (the outbox); counters move by ``$inc`` in
that same unit, so they always equal a recount of the documents behind them.

Concurrency without locks. A vote or an acceptance is computed from what was read, so two
writers that read the same state must not both commit. Each such unit carries an event whose id
is derived from the state it was computed from (``evt_voted_<vote>_<rev>``: the rev-th change of
that vote; ``evt_accepted_<answer>``: that answer's first acceptance). The events collection is
keyed by ``event_id``, so the second of two writers computed from the same state collides there,
its whole unit rolls back, and it retries from a fresh read. The event is recorded first in the
unit, so even a store without atomic units (MongoDB standalone) stops before any state change.

Tags: SQLite compares an array field as its JSON text (no array membership), so listing by tag
goes through ``question_tags`` (one row per question and tag, indexed by tag and time), written
in the question's unit and kept in step with the question's status. Areas: a question goes only
into areas its author may see; it counts in their ``content_count`` and is listed under them
through :mod:`actors.content_core`'s rows, like every other kind of content.

Status: open -> resolved by accepting an answer; closing, reopening and resolving without an
answer are :mod:`actors.content_questions`. A suspended user posts, answers, accepts and votes
nothing; a hidden question (:mod:`actors.moderation`) takes no answers and is left out of
listings.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final, Generic, Literal, TypeVar

import attrs

from actors import events
from actors.accounts import Viewer, ensure_active
from actors.content_core import count_content, ref_docs, unusable_areas, visible_to, write_refs
from actors.quotas import Quotas, spending
from tektree.persistence import (
    EVENTS,
    DocumentStore,
    DomainEvent,
    DuplicateKeyError,
    IndexSpec,
    InvalidCursor,
    Page,
    format_timestamp,
)

QUESTIONS: Final = "questions"
ANSWERS: Final = "answers"
VOTES: Final = "votes"
QUESTION_TAGS: Final = "question_tags"

STATUSES: Final[tuple[str, ...]] = ("open", "closed", "resolved")
#: Statuses under which a question takes new answers (a resolved question still learns).
ANSWERABLE: Final[tuple[str, ...]] = ("open", "resolved")
TARGET_TYPES: Final[tuple[str, ...]] = ("question", "answer")
TargetType = Literal["question", "answer"]

TITLE_MIN, TITLE_MAX = 10, 200
BODY_MIN, BODY_MAX = 20, 20_000
TAGS_MAX: Final = 5
AREAS_MAX: Final = 10
SLUG_MAX: Final = 80
LIMIT_DEFAULT: Final = 20
LIMIT_MAX: Final = 100
#: A vote or acceptance computed from a stale read is retried at most this many times.
MAX_ATTEMPTS: Final = 16

_TAG = re.compile(r"[a-z0-9-]{1,30}")
_AREA_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

INDEXES: Final = (
    (QUESTIONS, IndexSpec(fields=(("created_by", 1), ("created_at", -1)),
                          name="questions_author_time")),
    (QUESTIONS, IndexSpec(fields=(("areas", 1), ("created_at", -1)), name="questions_areas_time")),
    (QUESTIONS, IndexSpec(fields=(("tags", 1),), name="questions_tags")),
    (QUESTIONS, IndexSpec(fields=(("status", 1), ("created_at", -1)),
                          name="questions_status_time")),
    (QUESTIONS, IndexSpec(fields=(("created_at", -1),), name="questions_time")),
    (QUESTION_TAGS, IndexSpec(fields=(("tag", 1), ("created_at", -1)), name="question_tags_time")),
    (QUESTION_TAGS, IndexSpec(fields=(("question_id", 1),), name="question_tags_question")),
    (ANSWERS, IndexSpec(fields=(("question_id", 1), ("created_at", -1)),
                        name="answers_question_time")),
    (ANSWERS, IndexSpec(fields=(("created_by", 1),), name="answers_author")),
    (ANSWERS, IndexSpec(fields=(("is_accepted", 1),), name="answers_accepted")),
    (ANSWERS, IndexSpec(fields=(("question_id", 1), ("is_accepted", -1), ("score", -1),
                                ("created_at", 1)), name="answers_question_rank")),
    (VOTES, IndexSpec(fields=(("voter_id", 1), ("target_type", 1), ("target_id", 1)),
                      unique=True, name="votes_voter_target_unique")),
)

T = TypeVar("T")


class KnowledgeError(Exception):
    """Bad input or a refused operation; ``field`` and ``rule`` name what and why."""

    def __init__(self, field: str, rule: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.rule = rule
        self.detail = detail


@attrs.frozen(kw_only=True)
class Question:
    """A question as stored (the seed's field names: ``created_by``, ``areas``)."""

    id: str
    title: str
    slug: str
    body: str
    tags: tuple[str, ...]
    areas: tuple[str, ...]
    visibility: str
    created_by: str
    created_at: str
    updated_at: str
    status: str
    accepted_answer_id: str | None
    view_count: int
    upvote_count: int
    downvote_count: int
    score: int
    answer_count: int
    hidden: bool = False
    comment_count: int = 0

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Question:
        return cls(
            id=doc["_id"], title=doc["title"], slug=doc["slug"], body=doc["body"],
            tags=tuple(doc["tags"]), areas=tuple(doc["areas"]), visibility=doc["visibility"],
            created_by=doc["created_by"], created_at=doc["created_at"],
            updated_at=doc["updated_at"], status=doc["status"],
            accepted_answer_id=doc.get("accepted_answer_id"), view_count=doc["view_count"],
            upvote_count=doc["upvote_count"], downvote_count=doc["downvote_count"],
            score=doc["score"], answer_count=doc["answer_count"],
            hidden=bool(doc.get("hidden", False)), comment_count=doc.get("comment_count", 0),
        )


@attrs.frozen(kw_only=True)
class Answer:
    """An answer as stored."""

    id: str
    question_id: str
    body: str
    created_by: str
    created_at: str
    updated_at: str
    is_accepted: bool
    upvote_count: int
    downvote_count: int
    score: int

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Answer:
        return cls(
            id=doc["_id"], question_id=doc["question_id"], body=doc["body"],
            created_by=doc["created_by"], created_at=doc["created_at"],
            updated_at=doc["updated_at"], is_accepted=bool(doc["is_accepted"]),
            upvote_count=doc["upvote_count"], downvote_count=doc["downvote_count"],
            score=doc["score"],
        )


@attrs.frozen(kw_only=True)
class Vote:
    """The outcome of :meth:`Knowledge.vote`: the vote now, and what it was before."""

    voter_id: str
    target_type: str
    target_id: str
    value: int
    previous_value: int

    @property
    def changed(self) -> bool:
        return self.value != self.previous_value


@attrs.frozen(kw_only=True)
class Listing(Generic[T]):
    """One page of a listing (the shape of the store's ``Page``, with typed items)."""

    items: tuple[T, ...]
    next_cursor: str | None


# -- validation (pure) ---------------------------------------------------------------------------
def validate_text(field: str, value: object, low: int, high: int) -> str:
    """``value`` stripped, if it is text of ``low`` to ``high`` characters."""
    if not isinstance(value, str) or not low <= len(value.strip()) <= high:
        got = f"{len(value.strip())} characters" if isinstance(value, str) else repr(value)
        raise KnowledgeError(field, "length", f"must be {low} to {high} characters, got {got}")
    return value.strip()


def validate_tags(tags: object) -> tuple[str, ...]:
    """Tags lowercased and deduplicated (first one kept): at most 5 of ``[a-z0-9-]{1,30}``."""
    items = _sequence("tags", tags)
    out: list[str] = []
    for item in items:
        tag = item.strip().lower() if isinstance(item, str) else item
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise KnowledgeError("tags", "format",
                                 f"{item!r} must be 1 to 30 letters, digits or '-'")
        if tag not in out:
            out.append(tag)
    if len(out) > TAGS_MAX:
        raise KnowledgeError("tags", "count", f"at most {TAGS_MAX} tags, got {len(out)}")
    return tuple(out)


def validate_area_ids(area_ids: object) -> tuple[str, ...]:
    out: list[str] = []
    for item in _sequence("area_ids", area_ids):
        if not isinstance(item, str) or not _AREA_ID.fullmatch(item):
            raise KnowledgeError("area_ids", "format",
                                 f"{item!r} must be an id of 1 to 64 letters, digits, '_' or '-'")
        if item not in out:
            out.append(item)
    if len(out) > AREAS_MAX:
        raise KnowledgeError("area_ids", "count", f"at most {AREAS_MAX} areas, got {len(out)}")
    return tuple(out)


def _sequence(field: str, value: object) -> Sequence[object]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise KnowledgeError(field, "type", f"must be a list of strings, got {value!r}")
    return value


def slugify(title: str, *, fallback: str = "question") -> str:
    """``"How do I use Trio?"`` -> ``"how-do-i-use-trio"`` (ASCII, at most 80 characters)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-") or fallback


def validate_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIMIT_MAX:
        raise KnowledgeError("limit", "range", f"must be an int from 1 to {LIMIT_MAX}, "
                                               f"got {limit!r}")
    return limit


def validate_status(status: object) -> str:
    if status not in STATUSES:
        raise KnowledgeError("status", "enum", f"{status!r} is not one of {', '.join(STATUSES)}")
    assert isinstance(status, str)
    return status


def validate_vote(target_type: object, value: object) -> tuple[TargetType, int]:
    if target_type not in TARGET_TYPES:
        raise KnowledgeError("target_type", "enum",
                             f"{target_type!r} is not one of {', '.join(TARGET_TYPES)}")
    if isinstance(value, bool) or value not in (1, -1, 0):
        raise KnowledgeError("value", "enum",
                             f"{value!r} is not 1 (up), -1 (down) or 0 (withdraw)")
    assert isinstance(value, int)
    return ("question" if target_type == "question" else "answer"), value


def counter_changes(previous: int, value: int) -> dict[str, int]:
    """The ``$inc`` that moves a target's counters when a vote goes from ``previous`` to
    ``value`` (only the counters that change)."""
    deltas = {
        "upvote_count": (value == 1) - (previous == 1),
        "downvote_count": (value == -1) - (previous == -1),
        "score": value - previous,
    }
    return {name: delta for name, delta in deltas.items() if delta}


def _now(clock: dt.datetime | None) -> str:
    return format_timestamp(clock or dt.datetime.now(dt.UTC))


async def find_page(
    store: DocumentStore, collection: str, filter_: Mapping[str, Any],
    sort: list[tuple[str, Literal[1, -1]]], limit: int, cursor: str | None,
) -> Page:
    """``store.find`` with a bad cursor reported as ``KnowledgeError("cursor", "valid")``."""
    try:
        return await store.find(collection, filter_, sort=sort, limit=limit, after=cursor)
    except InvalidCursor as exc:
        raise KnowledgeError("cursor", "valid", exc.detail + "; pass the next_cursor of "
                             "the previous page of the same listing") from None


async def check_areas(store: DocumentStore, area_ids: Sequence[str], author_id: str) -> None:
    """Every area of ``area_ids`` exists and ``author_id`` may see it."""
    bad = await unusable_areas(store, area_ids, Viewer(user_id=author_id))
    if bad:
        raise KnowledgeError("area_ids", "exists", f"no area {bad[0]!r} that {author_id!r} may "
                             "post into")


def _stale(exc: DuplicateKeyError) -> bool:
    """A collision that means "computed from a stale read": retry from a fresh one."""
    return exc.collection in (EVENTS, VOTES)


# -- the service -----------------------------------------------------------------------------------
class Knowledge:
    """Question and answer operations over a :class:`DocumentStore`. Call :meth:`ensure_indexes`
    once. Author and voter ids are taken as authenticated by the caller (the gateway)."""

    def __init__(self, store: DocumentStore, *, producer_id: str = "knowledge",
                 quotas: Quotas | None = None) -> None:
        self.store = store
        self._producer = producer_id
        #: The monthly ``questions`` quota, counted when a question is posted (None: none).
        self.quotas = quotas

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    def _envelope(
        self, evt: object, event_id: str, correlation_id: str | None, stamp: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> DomainEvent:
        return events.to_envelope(evt, event_id=event_id, producer_id=self._producer,
                                  correlation_id=correlation_id, timestamp=stamp,
                                  metadata=metadata)

    # -- questions -------------------------------------------------------------------------------
    async def post_question(
        self,
        author_id: str,
        *,
        title: str,
        body: str,
        tags: Sequence[str] = (),
        area_ids: Sequence[str] = (),
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Question:
        title = validate_text("title", title, TITLE_MIN, TITLE_MAX)
        body = validate_text("body", body, BODY_MIN, BODY_MAX)
        clean_tags = validate_tags(tags)
        areas = validate_area_ids(area_ids)
        await ensure_active(self.store, author_id, field="author_id")
        await check_areas(self.store, areas, author_id)
        qid = f"q_{secrets.token_hex(8)}"
        stamp = _now(now)
        doc = {
            "_id": qid, "title": title, "slug": slugify(title), "body": body,
            "tags": list(clean_tags), "areas": list(areas), "visibility": "public",
            "created_by": author_id, "created_at": stamp, "updated_at": stamp,
            "view_count": 0, "upvote_count": 0, "downvote_count": 0, "score": 0,
            "answer_count": 0, "accepted_answer_id": None, "files": [], "status": "open",
            "comment_count": 0,
        }
        posted = events.QuestionPosted(question_id=qid, author_id=author_id, title=title,
                                       tags=clean_tags, area_ids=areas)
        async with spending(self.quotas, author_id, "questions",
                            correlation_id=correlation_id), self.store.unit() as unit:
            unit.add_event(self._envelope(posted, f"evt_question_posted_{qid}", correlation_id,
                                          stamp))
            unit.insert(QUESTIONS, doc)
            for tag in clean_tags:
                unit.insert(QUESTION_TAGS, {
                    "_id": f"{qid}:{tag}", "question_id": qid, "tag": tag,
                    "created_by": author_id, "status": "open", "created_at": stamp,
                })
            write_refs(unit, ref_docs("question", qid, area_ids=areas, created_by=author_id,
                                      at=stamp, listed=True))
            count_content(unit, areas, 1)
        return Question.from_document(doc)

    async def get_question(
        self, question_id: str, *, viewer: Viewer | None = None
    ) -> Question | None:
        """The question; with a ``viewer``, None when they may not see it (hidden)."""
        doc = await self.store.get(QUESTIONS, question_id)
        if doc is None or (viewer is not None and not await visible_to(self.store, viewer, doc)):
            return None
        return Question.from_document(doc)

    async def _question_doc(self, question_id: str) -> dict[str, Any]:
        doc = await self.store.get(QUESTIONS, question_id)
        if doc is None:
            raise KnowledgeError("question_id", "exists", f"no question {question_id!r}")
        return doc

    async def view(self, question_id: str) -> None:
        """Count one view of the question."""
        if not await self.store.update(QUESTIONS, question_id, {"$inc": {"view_count": 1}}):
            raise KnowledgeError("question_id", "exists", f"no question {question_id!r}")

    async def list_questions(
        self,
        *,
        tag: str | None = None,
        author_id: str | None = None,
        status: str | None = None,
        limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> Listing[Question]:
        """Questions newest first, optionally of one tag, author and/or status."""
        limit = validate_limit(limit)
        filter_: dict[str, Any] = {"hidden": {"$ne": True}}
        if author_id is not None:
            filter_["created_by"] = author_id
        if status is not None:
            filter_["status"] = validate_status(status)
        newest: list[tuple[str, Literal[1, -1]]] = [("created_at", -1)]
        if tag is None:
            page = await self._find(QUESTIONS, filter_, newest, limit, cursor)
            items = [Question.from_document(d) for d in page.items]
            return Listing(items=tuple(items), next_cursor=page.next_cursor)
        if not isinstance(tag, str) or not _TAG.fullmatch(tag.strip().lower()):
            raise KnowledgeError("tag", "format", f"{tag!r} must be 1 to 30 letters, digits or '-'")
        tag = tag.strip().lower()
        del filter_["hidden"]  # not on the tag rows: checked on the questions below
        page = await self._find(QUESTION_TAGS, {"tag": tag, **filter_}, newest, limit, cursor)
        ids = [row["question_id"] for row in page.items]
        docs = {} if not ids else {d["_id"]: d for d in (await self.store.find(
            QUESTIONS, {"_id": {"$in": ids}, "hidden": {"$ne": True}}, limit=len(ids))).items}
        items = [Question.from_document(docs[i]) for i in ids if i in docs]
        return Listing(items=tuple(items), next_cursor=page.next_cursor)

    async def _find(
        self, collection: str, filter_: Mapping[str, Any], sort: list[tuple[str, Literal[1, -1]]],
        limit: int, cursor: str | None,
    ) -> Page:
        return await find_page(self.store, collection, filter_, sort, limit, cursor)

    # -- answers ---------------------------------------------------------------------------------
    async def submit_answer(
        self,
        question_id: str,
        author_id: str,
        *,
        body: str,
        correlation_id: str | None = None,
        now: dt.datetime | None = None,
    ) -> Answer:
        body = validate_text("body", body, BODY_MIN, BODY_MAX)
        await ensure_active(self.store, author_id, field="author_id")
        question = await self._question_doc(question_id)
        if question.get("hidden"):
            raise KnowledgeError("question_id", "hidden",
                                 f"question {question_id!r} is hidden by a moderator")
        if question["status"] not in ANSWERABLE:
            raise KnowledgeError("question_id", "status",
                                 f"question {question_id!r} is {question['status']}; answers "
                                 f"are taken while it is {' or '.join(ANSWERABLE)}")
        aid = f"a_{secrets.token_hex(8)}"
        stamp = _now(now)
        doc = {
            "_id": aid, "question_id": question_id, "body": body, "code_snippets": [],
            "created_by": author_id, "created_at": stamp, "updated_at": stamp,
            "upvote_count": 0, "downvote_count": 0, "score": 0, "is_accepted": False,
            "accepted_at": None,
        }
        submitted = events.AnswerSubmitted(answer_id=aid, question_id=question_id,
                                           author_id=author_id,
                                           question_author_id=question["created_by"])
        async with self.store.unit() as unit:
            unit.add_event(self._envelope(submitted, f"evt_answer_submitted_{aid}",
                                          correlation_id, stamp))
            unit.insert(ANSWERS, doc)
            unit.update(QUESTIONS, question_id, {"$inc": {"answer_count": 1}})
        return Answer.from_document(doc)

    async def get_answer(self, answer_id: str) -> Answer | None:
        doc = await self.store.get(ANSWERS, answer_id)
        return None if doc is None else Answer.from_document(doc)

    async def list_answers(
        self, question_id: str, *, limit: int = LIMIT_DEFAULT, cursor: str | None = None
    ) -> Listing[Answer]:
        """The accepted answer first, then by score (up-votes minus down-votes), then oldest
        first. Score is live: a vote between two pages can move an answer across the page
        boundary (keyset pagination never repeats a position, but the answer has moved)."""
        limit = validate_limit(limit)
        await self._question_doc(question_id)
        page = await self._find(ANSWERS, {"question_id": question_id},
                                [("is_accepted", -1), ("score", -1), ("created_at", 1)],
                                limit, cursor)
        return Listing(items=tuple(Answer.from_document(d) for d in page.items),
                       next_cursor=page.next_cursor)

    async def accept_answer(
        self, answer_id: str, by_user_id: str, *, correlation_id: str | None = None
    ) -> Answer:
        """Accept ``answer_id`` (only the question's author may); accepting another answer
        switches the acceptance. ``knowledge.answer.accepted`` is emitted the first time an
        answer is accepted only: re-accepting the current answer is a no-op, and switching back
        to an answer accepted before changes the documents without paying its XP again."""
        await ensure_active(self.store, by_user_id, field="by_user_id")
        for _ in range(MAX_ATTEMPTS):
            answer = await self.store.get(ANSWERS, answer_id)
            if answer is None:
                raise KnowledgeError("answer_id", "exists", f"no answer {answer_id!r}")
            qid = answer["question_id"]
            question = await self._question_doc(qid)
            asker = question["created_by"]
            if by_user_id != asker:
                raise KnowledgeError("by_user_id", "forbidden",
                                     f"only the question's author {asker!r} may accept an "
                                     f"answer to {qid!r}, not {by_user_id!r}")
            if question["status"] == "closed":
                raise KnowledgeError("question_id", "status", f"question {qid!r} is closed")
            if question.get("accepted_answer_id") == answer_id and answer["is_accepted"]:
                return Answer.from_document(answer)
            stamp = _now(None)
            try:
                async with self.store.unit() as unit:
                    if answer.get("accepted_at") is None:
                        accepted = events.AnswerAccepted(
                            answer_id=answer_id, question_id=qid,
                            answer_author_id=answer["created_by"], question_author_id=asker)
                        unit.add_event(self._envelope(
                            accepted, f"evt_accepted_{answer_id}", correlation_id, stamp,
                            {"previous_answer_id": question.get("accepted_answer_id")}))
                    # By filter, not by the id read: applied at commit, so whatever was accepted
                    # meanwhile is unset too and one answer stays accepted.
                    unit.update(ANSWERS, {"question_id": qid, "is_accepted": True},
                                {"$set": {"is_accepted": False, "updated_at": stamp}})
                    unit.update(ANSWERS, answer_id, {"$set": {
                        "is_accepted": True, "updated_at": stamp,
                        "accepted_at": answer.get("accepted_at") or stamp}})
                    unit.update(QUESTIONS, qid, {"$set": {
                        "accepted_answer_id": answer_id, "status": "resolved",
                        "updated_at": stamp}})
                    unit.update(QUESTION_TAGS, {"question_id": qid},
                                {"$set": {"status": "resolved"}})
            except DuplicateKeyError as exc:
                if _stale(exc):
                    continue
                raise
            accepted_doc = await self.store.get(ANSWERS, answer_id)
            assert accepted_doc is not None
            return Answer.from_document(accepted_doc)
        raise KnowledgeError("answer_id", "conflict",
                             f"the acceptance of {answer_id!r} kept changing concurrently; retry")

    # -- votes -----------------------------------------------------------------------------------
    async def vote(
        self,
        voter_id: str,
        *,
        target_type: str,
        target_id: str,
        value: int,
        correlation_id: str | None = None,
    ) -> Vote:
        """Up-vote (1), down-vote (-1) or withdraw (0) ``voter_id``'s one vote on a question or
        an answer. The target's counters move by the difference in the vote's own unit; nothing
        is written (and no event emitted) when the vote does not change."""
        kind, value = validate_vote(target_type, value)
        await ensure_active(self.store, voter_id, field="voter_id")
        collection = QUESTIONS if kind == "question" else ANSWERS
        target = await self.store.get(collection, target_id)
        if target is None:
            raise KnowledgeError("target_id", "exists", f"no {kind} {target_id!r}")
        author = target["created_by"]
        if voter_id == author:
            raise KnowledgeError("voter_id", "own_content",
                                 f"{voter_id!r} wrote {kind} {target_id!r}; vote on others' "
                                 "content only")
        vote_id = f"v_{kind}_{target_id}_{voter_id}"
        for _ in range(MAX_ATTEMPTS):
            current = await self.store.get(VOTES, vote_id)
            previous = 0 if current is None else int(current["value"])
            if previous == value:
                return Vote(voter_id=voter_id, target_type=kind, target_id=target_id,
                            value=value, previous_value=previous)
            rev = 1 if current is None else int(current["rev"]) + 1
            stamp = _now(None)
            voted = events.ContentVoted(target_type=kind, target_id=target_id, voter_id=voter_id,
                                        author_id=author, value=value, previous_value=previous)
            try:
                async with self.store.unit() as unit:
                    unit.add_event(self._envelope(voted, f"evt_voted_{vote_id}_{rev}",
                                                  correlation_id, stamp))
                    if current is None:
                        unit.insert(VOTES, {
                            "_id": vote_id, "voter_id": voter_id, "target_type": kind,
                            "target_id": target_id, "author_id": author, "value": value,
                            "rev": rev, "created_at": stamp, "updated_at": stamp})
                    else:
                        unit.update(VOTES, {"_id": vote_id, "rev": rev - 1},
                                    {"$set": {"value": value, "rev": rev, "updated_at": stamp}})
                    unit.update(collection, target_id, {"$inc": counter_changes(previous, value)})
            except DuplicateKeyError as exc:
                if _stale(exc):
                    continue
                raise
            return Vote(voter_id=voter_id, target_type=kind, target_id=target_id, value=value,
                        previous_value=previous)
        raise KnowledgeError("value", "conflict",
                             f"the vote of {voter_id!r} on {target_id!r} kept changing "
                             "concurrently; retry")


__all__ = [
    "ANSWERABLE",
    "ANSWERS",
    "INDEXES",
    "QUESTIONS",
    "QUESTION_TAGS",
    "STATUSES",
    "TARGET_TYPES",
    "VOTES",
    "Answer",
    "Knowledge",
    "KnowledgeError",
    "Listing",
    "Question",
    "TargetType",
    "Vote",
    "check_areas",
    "counter_changes",
    "find_page",
    "slugify",
    "validate_area_ids",
    "validate_limit",
    "validate_status",
    "validate_tags",
    "validate_text",
    "validate_vote",
]
