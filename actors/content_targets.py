"""Every kind of content by name (``target_type``), and what removing one takes with it.

Likes, comments, reports and moderation address content as ``(target_type, target_id)``; the
table here says which collection holds each kind and what it allows. :func:`removal` lists what
a deletion removes, for the author's own delete (:mod:`actors.content`) and a moderator's
(:mod:`actors.moderation`) alike: the document, what hangs from it (a question's answers, a
discussion's replies, a reply's sub-thread), the comments on all of those, their likes and
votes, their listing rows; and it moves the counters that counted them (the areas'
``content_count``, a question's ``answer_count``, a discussion's ``reply_count``, a target's
``comment_count``). XP already paid for removed content stays paid (the journal is append-only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from actors.content_core import AREAS, CONTENT_REFS, count_content
from actors.content_model import (
    COMMENTS,
    DISCUSSIONS,
    INSIGHTS,
    LIKES,
    REPLIES,
    RESOURCES,
    subtree_range,
)
from actors.content_questions import reopened_status
from actors.knowledge import ANSWERS, QUESTION_TAGS, QUESTIONS, VOTES, KnowledgeError
from tektree.persistence import DocumentStore, Unit

#: The moderation service's cases (declared here so a deletion can close them).
CASES: Final = "moderation_cases"
#: A deletion takes at most this many documents with it.
MAX_REMOVAL: Final = 10_000


@attrs.frozen(kw_only=True)
class TargetKind:
    """One kind of content: its ``collection``, and whether it takes likes, comments and
    closing, and lives in areas (``content_count``, listing rows)."""

    name: str
    collection: str
    likeable: bool = False
    commentable: bool = False
    closable: bool = False
    in_areas: bool = False


TARGETS: Final[dict[str, TargetKind]] = {k.name: k for k in (
    TargetKind(name="question", collection=QUESTIONS, commentable=True, closable=True,
               in_areas=True),
    TargetKind(name="answer", collection=ANSWERS, commentable=True),
    TargetKind(name="insight", collection=INSIGHTS, likeable=True, commentable=True,
               in_areas=True),
    TargetKind(name="discussion", collection=DISCUSSIONS, likeable=True, commentable=True,
               closable=True, in_areas=True),
    TargetKind(name="reply", collection=REPLIES, likeable=True),
    TargetKind(name="resource", collection=RESOURCES, likeable=True, commentable=True,
               in_areas=True),
    TargetKind(name="comment", collection=COMMENTS, likeable=True),
    TargetKind(name="area", collection=AREAS),
)}
TARGET_TYPES: Final[tuple[str, ...]] = tuple(TARGETS)


def target_kind(value: object, *, field: str = "target_type",
                allows: str | None = None) -> TargetKind:
    """The kind named ``value``; with ``allows`` (``"likeable"``, ``"commentable"``,
    ``"closable"``), only among the kinds that allow it."""
    kinds = [k for k in TARGETS.values() if allows is None or getattr(k, allows)]
    for kind in kinds:
        if kind.name == value:
            return kind
    what = "" if allows is None else f" ({allows.removesuffix('able')}able ones)"
    hint = ("; questions and answers take votes, not likes"
            if allows == "likeable" and value in ("question", "answer") else "")
    raise KnowledgeError(field, "enum", f"{value!r:.60} is not one of{what} "
                                        f"{', '.join(k.name for k in kinds)}{hint}")


def counted(kind: TargetKind, doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` counts in its areas (an insight only once published)."""
    return kind.in_areas and doc.get("status") != "draft"


def author_of(doc: Mapping[str, Any]) -> str:
    return str(doc.get("created_by", ""))


def title_of(doc: Mapping[str, Any]) -> str:
    return str(doc.get("title") or doc.get("body", ""))[:120]


#: Where the content hanging from each kind lives.
_CHILDREN: Final = {"question": ANSWERS, "discussion": REPLIES, "reply": REPLIES}


@attrs.frozen(kw_only=True)
class Removal:
    """What deleting one piece of content writes (``write``) and how many documents go."""

    write: Callable[[Unit], None]
    removed: int


async def _ids(store: DocumentStore, collection: str, filter_: Mapping[str, Any],
               what: str) -> list[dict[str, Any]]:
    page = await store.find(collection, filter_, limit=MAX_REMOVAL + 1)
    if len(page.items) > MAX_REMOVAL:
        raise KnowledgeError("target_id", "range",
                             f"{what} holds more than {MAX_REMOVAL} documents; it cannot be "
                             "deleted in one step")
    return list(page.items)


async def removal(store: DocumentStore, kind: TargetKind, doc: Mapping[str, Any]) -> Removal:
    """What deleting ``doc`` (of ``kind``) takes with it (see the module's doc)."""
    if kind.name == "area":
        raise KnowledgeError("target_type", "enum", "areas are deleted by Areas.delete_area")
    doc_id = doc["_id"]
    children: list[dict[str, Any]] = []
    if kind.name == "question":
        children = await _ids(store, ANSWERS, {"question_id": doc_id}, f"question {doc_id!r}")
    elif kind.name == "discussion":
        children = await _ids(store, REPLIES, {"discussion_id": doc_id},
                              f"discussion {doc_id!r}")
    elif kind.name == "reply":
        subtree = await _ids(store, REPLIES, {"discussion_id": doc["discussion_id"],
                                              "path": subtree_range(doc["path"])},
                             f"reply {doc_id!r}")
        children = [d for d in subtree if d["_id"] != doc_id]
    ids = [doc_id, *(c["_id"] for c in children)]
    comments = [] if kind.name == "comment" else await _ids(
        store, COMMENTS, {"target_id": {"$in": ids}}, f"{kind.name} {doc_id!r}")
    everything = ids + [c["_id"] for c in comments]
    parent = None
    if kind.name == "answer" and doc.get("is_accepted"):
        parent = await store.get(QUESTIONS, doc["question_id"])

    def write(unit: Unit) -> None:
        unit.delete(LIKES, {"target_id": {"$in": everything}})
        if comments:
            unit.delete(COMMENTS, {"target_id": {"$in": ids}})
        if kind.name in ("question", "answer"):
            unit.delete(VOTES, {"target_id": {"$in": ids}})
        unit.update(CASES, {"target_id": {"$in": everything}, "status": "open"},
                    {"$set": {"status": "resolved", "resolution": "removed"}})
        if children:
            unit.delete(_CHILDREN[kind.name], {"_id": {"$in": [c["_id"] for c in children]}})
        unit.delete(kind.collection, doc_id)
        if kind.in_areas:
            unit.delete(CONTENT_REFS, {"content_id": doc_id})
            if counted(kind, doc):
                count_content(unit, doc.get("areas", ()), -1)
        if kind.name == "question":
            unit.delete(QUESTION_TAGS, {"question_id": doc_id})
        _uncount(unit, kind, doc, len(ids), parent)

    return Removal(write=write, removed=len(everything))


def _uncount(unit: Unit, kind: TargetKind, doc: Mapping[str, Any], count: int,
             question: Mapping[str, Any] | None) -> None:
    """Move the counters of whatever the removed content hung from."""
    if kind.name == "answer":
        changes: dict[str, Any] = {"$inc": {"answer_count": -1}}
        if question is not None and question.get("accepted_answer_id") == doc["_id"]:
            status = question["status"]
            if status == "resolved":
                status = reopened_status({**question, "accepted_answer_id": None})
            changes["$set"] = {"accepted_answer_id": None, "status": status}
            unit.update(QUESTION_TAGS, {"question_id": question["_id"]},
                        {"$set": {"status": status}})
        unit.update(QUESTIONS, doc["question_id"], changes)
    elif kind.name == "reply":
        unit.update(DISCUSSIONS, doc["discussion_id"],
                    {"$inc": {"reply_count": -count}})
        if doc["parent_reply_id"] is not None:
            unit.update(REPLIES, doc["parent_reply_id"], {"$inc": {"reply_count": -1}})
    elif kind.name == "comment":
        target = TARGETS[doc["target_type"]]
        unit.update(target.collection, doc["target_id"], {"$inc": {"comment_count": -1}})


__all__ = [
    "CASES",
    "MAX_REMOVAL",
    "TARGETS",
    "TARGET_TYPES",
    "Removal",
    "TargetKind",
    "author_of",
    "counted",
    "removal",
    "target_kind",
    "title_of",
]
