"""A question's status beyond acceptance: closed, reopened, resolved without an answer.

open -> closed (by the asker here; by a moderator in :mod:`actors.moderation`) -> reopened (to
resolved if it had been, else to open); open -> resolved by the asker without accepting an
answer (accepting one resolves it too: :meth:`actors.knowledge.Knowledge.accept_answer`). A
closed question takes no answers. A question a moderator closed is reopened by a moderator only.

Every change is a guarded revision on ``status_rev`` (:func:`actors.content_core.revise`), the
same counter moderation uses, so concurrent closes and reopens never both commit; the question's
``question_tags`` rows follow its status in the same unit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from actors import events
from actors.accounts import ensure_active
from actors.content_base import StoreService, conflict, not_found, now_stamp, validate_reason
from actors.content_core import Revision, revise
from actors.knowledge import QUESTION_TAGS, QUESTIONS, KnowledgeError, Question
from tektree.persistence import DomainEvent, Unit

STATUS_REV = "status_rev"


def reopened_status(doc: Mapping[str, Any]) -> str:
    """Where a closed question goes when reopened: resolved if it was, else open."""
    return "resolved" if doc.get("accepted_answer_id") or doc.get("resolved_at") else "open"


def status_revision(
    collection: str, doc: Mapping[str, Any], status: str, stamp: str,
    envelope: Callable[[str], DomainEvent], changes: Mapping[str, Any],
) -> Revision:
    """The revision moving ``doc`` (a question or a discussion) to ``status``."""
    doc_id = doc["_id"]

    def follow(unit: Unit) -> None:
        if collection == QUESTIONS:
            unit.update(QUESTION_TAGS, {"question_id": doc_id}, {"$set": {"status": status}})

    return Revision(changes={"status": status, "updated_at": stamp, **changes},
                    event=envelope, more=follow)


def _asker_only(doc: Mapping[str, Any], by_user_id: str, action: str) -> None:
    if by_user_id != doc["created_by"]:
        raise KnowledgeError("by_user_id", "forbidden",
                             f"only the question's author {doc['created_by']!r} may {action} "
                             f"{doc['_id']!r}, not {by_user_id!r}")


class QuestionStatus(StoreService):
    """Close, reopen and resolve questions (the asker's side)."""

    async def close(
        self, question_id: str, by_user_id: str, *, reason: str = "",
        correlation_id: str | None = None,
    ) -> Question:
        """The asker closes their question: it takes no more answers. Closing a closed question
        changes nothing."""
        reason = validate_reason(reason)
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            _asker_only(doc, by_user_id, "close")
            if doc["status"] == "closed":
                return None
            closed = events.QuestionClosed(question_id=question_id, closed_by=by_user_id,
                                           reason=reason)
            return self._revision(doc, "closed", closed, correlation_id, stamp, {
                "closed_by": by_user_id, "closed_reason": reason, "closed_at": stamp,
                "closed_by_moderator": False})

        return await self._revise(question_id, by_user_id, decide)

    async def reopen(
        self, question_id: str, by_user_id: str, *, correlation_id: str | None = None
    ) -> Question:
        """The asker reopens the question they closed."""
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            _asker_only(doc, by_user_id, "reopen")
            if doc["status"] != "closed":
                return None
            if doc.get("closed_by_moderator"):
                raise KnowledgeError("question_id", "forbidden",
                                     f"question {question_id!r} was closed by a moderator; "
                                     "only a moderator may reopen it")
            reopened = events.QuestionReopened(question_id=question_id, reopened_by=by_user_id)
            return self._revision(doc, reopened_status(doc), reopened, correlation_id, stamp, {
                "closed_by": None, "closed_reason": None, "closed_at": None})

        return await self._revise(question_id, by_user_id, decide)

    async def resolve(
        self, question_id: str, by_user_id: str, *, correlation_id: str | None = None
    ) -> Question:
        """The asker marks their open question resolved without accepting an answer."""
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            _asker_only(doc, by_user_id, "resolve")
            if doc["status"] == "resolved":
                return None
            if doc["status"] == "closed":
                raise KnowledgeError("question_id", "status",
                                     f"question {question_id!r} is closed; reopen it first")
            resolved = events.QuestionResolved(question_id=question_id, resolved_by=by_user_id)
            return self._revision(doc, "resolved", resolved, correlation_id, stamp,
                                  {"resolved_at": stamp})

        return await self._revise(question_id, by_user_id, decide)

    def _revision(
        self, doc: Mapping[str, Any], status: str, evt: object, correlation_id: str | None,
        stamp: str, changes: Mapping[str, Any],
    ) -> Revision:
        def envelope(event_id: str) -> DomainEvent:
            return self.envelope(evt, event_id, correlation_id, stamp,
                                 {"previous_status": doc["status"]})

        return status_revision(QUESTIONS, doc, status, stamp, envelope, changes)

    async def _revise(
        self, question_id: str, by_user_id: str,
        decide: Callable[[dict[str, Any]], Revision | None],
    ) -> Question:
        await ensure_active(self.store, by_user_id, field="by_user_id")
        doc = await revise(
            self.store, QUESTIONS, question_id, rev_field=STATUS_REV, decide=decide,
            missing=lambda: not_found("question_id", "question", question_id),
            conflict=lambda: conflict("question_id", f"the status of {question_id!r}"))
        return Question.from_document(doc)


__all__ = ["STATUS_REV", "QuestionStatus", "reopened_status", "status_revision"]
