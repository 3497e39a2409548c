"""Moderation: moderators and admins close, hide and delete content and suspend users; users
report content; reported content waits in a queue until a moderator resolves it.

Who. Every action re-reads the acting user's role from the store (a demoted moderator's token may
still say "moderator"): ``moderator`` and ``admin`` act, anybody else is refused
(``moderator_id``, ``forbidden``) before anything is written. A moderator suspends users; an
admin suspends users and moderators; nobody suspends an admin or themselves.

What. Each action is one unit: the change, its event (``moderation.content.closed``,
``.reopened``, ``.hidden``, ``.unhidden``, ``.deleted``, ``moderation.user.suspended``,
``.reinstated``, ``moderation.case.resolved``), with who (``moderator_id``) and why (``reason``,
required), and a row of the audit log (``moderation_actions``, listed by target or moderator).
Changes computed from a read are guarded revisions (:func:`actors.content_core.revise`): the
same action twice at once commits once.

- close / reopen: questions and discussions (no more answers or replies). A question closed by
  a moderator is reopened by a moderator only.
- hide / unhide: any content, areas included. Hidden content is out of every listing and of
  search, invisible to all but its owners and moderators; its place in a thread stays.
- delete: any content with what hangs from it (:func:`actors.content_targets.removal`); an area
  only when empty (:meth:`actors.areas.Areas.delete_area`).
- suspend / reinstate: a suspended user cannot sign in (:class:`actors.accounts.AccountSuspended`)
  nor write anything (``suspended``), until ``until`` or until reinstated.

Reports and the queue. A report names the content and a reason; reports on one piece of content
gather in one case (``moderation_cases``: the report count, the count per reason), queued most
reported first, oldest first among equals. A user reports a piece of content once per case;
reports arriving after a case was resolved open it again (its next ``round``). Deleting content
resolves its open cases (resolution ``removed``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from actors import events
from actors.accounts import USERS, AccountError, User, active_suspension, ensure_active
from actors.areas import Areas
from actors.content_base import conflict, not_found, now_stamp, validate_reason
from actors.content_core import Revision, is_listed, revise, set_listed
from actors.content_questions import STATUS_REV, reopened_status, status_revision
from actors.content_service import ContentService, write_removal
from actors.content_targets import (
    CASES,
    TARGETS,
    Removal,
    TargetKind,
    removal,
    target_kind,
    title_of,
)
from actors.knowledge import (
    LIMIT_DEFAULT,
    KnowledgeError,
    Listing,
    validate_limit,
    validate_text,
)
from tektree.persistence import DuplicateKeyError, IndexSpec, Unit, format_timestamp

REPORTS: Final = "moderation_reports"
ACTIONS: Final = "moderation_actions"
REPORT_REASONS: Final[tuple[str, ...]] = ("spam", "abuse", "harassment", "off_topic",
                                          "misinformation", "copyright", "other")
RESOLUTIONS: Final[tuple[str, ...]] = ("dismissed", "actioned")
CASE_ACTIONS: Final[tuple[str, ...]] = ("hide", "delete", "close")
CASE_STATUSES: Final[tuple[str, ...]] = ("open", "resolved")
DETAILS_MAX: Final = 1000
#: Who each role may suspend.
SUSPENDS: Final = {"moderator": ("user",), "admin": ("user", "moderator")}

INDEXES: Final = (
    (CASES, IndexSpec(fields=(("status", 1), ("report_count", -1), ("opened_at", 1)),
                      name="cases_queue")),
    (CASES, IndexSpec(fields=(("target_id", 1),), name="cases_target")),
    (REPORTS, IndexSpec(fields=(("case_id", 1), ("created_at", 1)), name="reports_case_time")),
    (REPORTS, IndexSpec(fields=(("reporter_id", 1), ("created_at", -1)),
                        name="reports_reporter_time")),
    (ACTIONS, IndexSpec(fields=(("target_id", 1), ("at", -1)), name="actions_target_time")),
    (ACTIONS, IndexSpec(fields=(("moderator_id", 1), ("at", -1)),
                        name="actions_moderator_time")),
)


@attrs.frozen(kw_only=True)
class Report:
    id: str
    case_id: str
    target_type: str
    target_id: str
    reporter_id: str
    reason: str
    details: str
    created_at: str

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Report:
        return cls(id=doc["_id"], case_id=doc["case_id"], target_type=doc["target_type"],
                   target_id=doc["target_id"], reporter_id=doc["reporter_id"],
                   reason=doc["reason"], details=doc["details"], created_at=doc["created_at"])


@attrs.frozen(kw_only=True)
class Case:
    """The reports on one piece of content, as the queue shows them."""

    id: str
    target_type: str
    target_id: str
    author_id: str
    status: str
    round: int
    report_count: int
    reasons: Mapping[str, int]
    opened_at: str
    last_reported_at: str
    resolution: str | None
    resolved_by: str | None
    resolved_at: str | None
    note: str

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Case:
        return cls(
            id=doc["_id"], target_type=doc["target_type"], target_id=doc["target_id"],
            author_id=doc["author_id"], status=doc["status"], round=doc["round"],
            report_count=doc["report_count"], reasons=dict(doc["reasons"]),
            opened_at=doc["opened_at"], last_reported_at=doc["last_reported_at"],
            resolution=doc.get("resolution"), resolved_by=doc.get("resolved_by"),
            resolved_at=doc.get("resolved_at"), note=doc.get("note", ""),
        )


@attrs.frozen(kw_only=True)
class ModerationAction:
    """A row of the audit log."""

    id: str
    action: str
    target_type: str
    target_id: str
    author_id: str
    moderator_id: str
    reason: str
    at: str

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ModerationAction:
        return cls(**{f.name: doc["_id" if f.name == "id" else f.name]
                      for f in attrs.fields(cls)})


def _inserter(row: dict[str, Any]) -> Callable[[Unit], None]:
    def insert(unit: Unit) -> None:
        unit.insert(ACTIONS, row)

    return insert


def _reported_twice(reporter_id: str, target_type: str, target_id: str) -> KnowledgeError:
    return KnowledgeError("reporter_id", "unique",
                          f"{reporter_id!r} already reported {target_type} {target_id!r}; a "
                          "moderator will look at it")


def case_id_of(target_type: str, target_id: str) -> str:
    return f"case_{target_type}_{target_id}"


class Moderation(ContentService):
    """Moderation operations (see the module's doc)."""

    INDEXES = INDEXES
    PRODUCER = "moderation"

    # -- content ---------------------------------------------------------------------------------
    async def close(self, target_type: str, target_id: str, moderator_id: str, *, reason: str,
                    correlation_id: str | None = None) -> None:
        """Close a question or a discussion: no more answers or replies."""
        await self._set_status(target_type, target_id, moderator_id, reason, True,
                               correlation_id)

    async def reopen(self, target_type: str, target_id: str, moderator_id: str, *, reason: str,
                     correlation_id: str | None = None) -> None:
        await self._set_status(target_type, target_id, moderator_id, reason, False,
                               correlation_id)

    async def hide(self, target_type: str, target_id: str, moderator_id: str, *, reason: str,
                   correlation_id: str | None = None) -> None:
        """Hide content from everybody but its owners and moderators."""
        await self._set_hidden(target_type, target_id, moderator_id, reason, True,
                               correlation_id)

    async def unhide(self, target_type: str, target_id: str, moderator_id: str, *,
                     reason: str, correlation_id: str | None = None) -> None:
        await self._set_hidden(target_type, target_id, moderator_id, reason, False,
                               correlation_id)

    async def delete(self, target_type: str, target_id: str, moderator_id: str, *,
                     reason: str, correlation_id: str | None = None) -> int:
        """Delete content and what hangs from it; the number of documents removed."""
        kind = target_kind(target_type)
        reason = validate_reason(reason, required=True)
        await self._moderator(moderator_id)
        doc = await self.store.get(kind.collection, target_id)
        if doc is None:
            raise not_found("target_id", kind.name, target_id)

        def evt(gone: Mapping[str, Any], removed: int = 1) -> object:
            return events.ContentDeletedByModerator(
                target_type=kind.name, target_id=target_id, author_id=gone["created_by"],
                moderator_id=moderator_id, reason=reason, title=title_of(gone),
                removed=removed)

        log = self._log("delete", kind, doc, moderator_id, reason)
        if kind.name == "area":
            await Areas(self.store).delete_area(target_id, moderator_id, reason=reason,
                                                correlation_id=correlation_id, event=evt,
                                                more=log)
            return 1
        plan = await removal(self.store, kind, doc)

        def write(unit: Unit) -> None:
            plan.write(unit)
            log(unit)

        await write_removal(self, Removal(write=write, removed=plan.removed),
                            evt(doc, plan.removed), target_id, correlation_id,
                            {"removed": plan.removed})
        return plan.removed

    # -- users -----------------------------------------------------------------------------------
    async def suspend_user(
        self, user_id: str, moderator_id: str, *, reason: str,
        until: dt.datetime | None = None, correlation_id: str | None = None,
    ) -> User:
        """Suspend ``user_id`` until ``until`` (None: until reinstated)."""
        reason = validate_reason(reason, required=True)
        stamp = now_stamp()
        if until is not None:
            if not isinstance(until, dt.datetime) or until.tzinfo is None:
                raise KnowledgeError("until", "type",
                                     f"must be a timezone-aware datetime, got {until!r:.60}")
            if format_timestamp(until) <= stamp:
                raise KnowledgeError("until", "range", f"{until.isoformat()} is not in the "
                                                       "future")
        until_stamp = None if until is None else format_timestamp(until)
        role = await self._moderator(moderator_id)
        if user_id == moderator_id:
            raise KnowledgeError("user_id", "self", "moderators do not suspend themselves")

        def decide(doc: dict[str, Any]) -> Revision | None:
            if doc.get("role", "user") not in SUSPENDS[role]:
                raise KnowledgeError("user_id", "forbidden",
                                     f"a {role} may suspend {' and '.join(SUSPENDS[role])}s "
                                     f"only; {user_id!r} is a {doc.get('role')}")
            suspension = {"by": moderator_id, "reason": reason, "at": stamp,
                          "until": until_stamp}
            suspended = events.UserSuspended(user_id=user_id, moderator_id=moderator_id,
                                             reason=reason, until=until_stamp)
            return self._user_revision("suspend", suspension, suspended, user_id, moderator_id,
                                       reason, stamp, correlation_id)

        return User.from_document(await self._revise_user(user_id, decide))

    async def reinstate_user(self, user_id: str, moderator_id: str, *, reason: str,
                             correlation_id: str | None = None) -> User:
        """End ``user_id``'s suspension (nothing changes if they are not suspended)."""
        reason = validate_reason(reason, required=True)
        await self._moderator(moderator_id)
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            if active_suspension(doc, stamp) is None:
                return None
            reinstated = events.UserReinstated(user_id=user_id, moderator_id=moderator_id,
                                               reason=reason)
            return self._user_revision("reinstate", None, reinstated, user_id, moderator_id,
                                       reason, stamp, correlation_id)

        return User.from_document(await self._revise_user(user_id, decide))

    # -- reports and the queue -------------------------------------------------------------------
    async def report(
        self, target_type: str, target_id: str, reporter_id: str, *, reason: str,
        details: str = "", correlation_id: str | None = None,
    ) -> Report:
        """``reporter_id`` reports content they can see for ``reason`` (one of
        :data:`REPORT_REASONS`); once per case."""
        kind = target_kind(target_type)
        if reason not in REPORT_REASONS:
            raise KnowledgeError("reason", "enum",
                                 f"{reason!r:.40} is not one of {', '.join(REPORT_REASONS)}")
        details = validate_text("details", details, 0, DETAILS_MAX)
        await ensure_active(self.store, reporter_id, field="reporter_id")
        doc = await self._visible(kind.collection, target_id, await self.viewer(reporter_id))
        if doc is None:
            raise not_found("target_id", kind.name, target_id)
        if doc["created_by"] == reporter_id:
            raise KnowledgeError("reporter_id", "own_content",
                                 f"{reporter_id!r} wrote {kind.name} {target_id!r}; report "
                                 "others' content only")
        stamp = now_stamp()
        case_id = case_id_of(kind.name, target_id)
        report_doc: dict[str, Any] = {}
        case = await self.store.get(CASES, case_id)
        if case is not None and case["status"] == "open" and await self.store.get(
                REPORTS, f"rpt_{target_id}_{reporter_id}_{case['round']}") is not None:
            # Read first, so that a store without atomic units refuses before writing (the
            # unique report id still decides between two concurrent reports).
            raise _reported_twice(reporter_id, kind.name, target_id)

        def decide(case: dict[str, Any]) -> Revision:
            reopen = case.get("status") != "open"
            round_ = int(case.get("round", 0)) + (1 if reopen else 0)
            report_doc.clear()
            report_doc.update({
                "_id": f"rpt_{target_id}_{reporter_id}_{round_}", "case_id": case_id,
                "target_type": kind.name, "target_id": target_id, "reporter_id": reporter_id,
                "reason": reason, "details": details, "created_at": stamp})
            reasons = {} if reopen else dict(case.get("reasons", {}))
            reasons[reason] = reasons.get(reason, 0) + 1
            changes: dict[str, Any] = {
                "target_type": kind.name, "target_id": target_id, "author_id": doc["created_by"],
                "status": "open", "round": round_, "reasons": reasons,
                "report_count": 1 if reopen else int(case["report_count"]) + 1,
                "last_reported_at": stamp}
            if reopen:
                changes.update({"opened_at": stamp, "resolution": None, "resolved_by": None,
                                "resolved_at": None, "note": ""})
            reported = events.ContentReported(
                report_id=report_doc["_id"], case_id=case_id, target_type=kind.name,
                target_id=target_id, author_id=doc["created_by"], reporter_id=reporter_id,
                reason=reason)
            def more(unit: Unit) -> None:
                unit.insert(REPORTS, report_doc)

            return Revision(changes=changes, more=more,
                            event=lambda event_id: self.envelope(reported, event_id,
                                                                 correlation_id, stamp))

        try:
            await revise(self.store, CASES, case_id, rev_field="rev", decide=decide,
                         missing=None, conflict=lambda: conflict("target_id", f"case {case_id}"))
        except DuplicateKeyError as exc:
            if exc.collection != REPORTS:
                raise
            raise _reported_twice(reporter_id, kind.name, target_id) from None
        return Report.from_document(report_doc)

    async def queue(
        self, moderator_id: str, *, status: str = "open", limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> Listing[Case]:
        """Cases of ``status``, most reported first, then oldest first."""
        await self._moderator(moderator_id)
        if status not in CASE_STATUSES:
            raise KnowledgeError("status", "enum",
                                 f"{status!r:.40} is not one of {', '.join(CASE_STATUSES)}")
        limit = validate_limit(limit)
        page = await self.find(CASES, {"status": status},
                               [("report_count", -1), ("opened_at", 1)], limit, cursor)
        return Listing(items=tuple(Case.from_document(d) for d in page.items),
                       next_cursor=page.next_cursor)

    async def get_case(self, case_id: str, moderator_id: str) -> Case | None:
        await self._moderator(moderator_id)
        doc = await self.store.get(CASES, case_id)
        return None if doc is None else Case.from_document(doc)

    async def reports_of(
        self, case_id: str, moderator_id: str, *, limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> Listing[Report]:
        """A case's reports, oldest first."""
        await self._moderator(moderator_id)
        limit = validate_limit(limit)
        page = await self.find(REPORTS, {"case_id": case_id}, [("created_at", 1)], limit, cursor)
        return Listing(items=tuple(Report.from_document(d) for d in page.items),
                       next_cursor=page.next_cursor)

    async def resolve(
        self, case_id: str, moderator_id: str, *, resolution: str, note: str = "",
        action: str | None = None, correlation_id: str | None = None,
    ) -> Case:
        """Resolve a case: ``dismissed`` (nothing wrong) or ``actioned``, optionally acting on
        the content first (``hide``, ``delete`` or ``close``, with ``note`` as the reason)."""
        if resolution not in RESOLUTIONS:
            raise KnowledgeError("resolution", "enum",
                                 f"{resolution!r:.40} is not one of {', '.join(RESOLUTIONS)}")
        if action is not None and (action not in CASE_ACTIONS or resolution != "actioned"):
            raise KnowledgeError("action", "enum",
                                 f"{action!r:.40}: an action ({', '.join(CASE_ACTIONS)}) goes "
                                 "with resolution 'actioned'")
        note = validate_reason(note, required=action is not None)
        await self._moderator(moderator_id)
        case = await self.store.get(CASES, case_id)
        if case is None:
            raise not_found("case_id", "case", case_id)
        if action is not None:
            act = {"hide": self.hide, "delete": self.delete, "close": self.close}[action]
            await act(case["target_type"], case["target_id"], moderator_id, reason=note,
                      correlation_id=correlation_id)
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            if doc["status"] == "resolved" and doc.get("resolution") != "removed":
                return None
            resolved = events.CaseResolved(case_id=case_id, target_type=doc["target_type"],
                                           target_id=doc["target_id"],
                                           moderator_id=moderator_id, resolution=resolution,
                                           note=note)
            return Revision(
                changes={"status": "resolved", "resolution": resolution,
                         "resolved_by": moderator_id, "resolved_at": stamp, "note": note},
                event=lambda event_id: self.envelope(resolved, event_id, correlation_id, stamp))

        doc = await revise(self.store, CASES, case_id, rev_field="rev", decide=decide,
                           missing=lambda: not_found("case_id", "case", case_id),
                           conflict=lambda: conflict("case_id", f"case {case_id!r}"))
        return Case.from_document(doc)

    async def actions(
        self, moderator_id: str, *, target_id: str | None = None,
        by_moderator_id: str | None = None, limit: int = LIMIT_DEFAULT,
        cursor: str | None = None,
    ) -> Listing[ModerationAction]:
        """The audit log, newest first: of one target, of one moderator, or all of it."""
        await self._moderator(moderator_id)
        limit = validate_limit(limit)
        filter_: dict[str, Any] = {}
        if target_id is not None:
            filter_["target_id"] = target_id
        if by_moderator_id is not None:
            filter_["moderator_id"] = by_moderator_id
        page = await self.find(ACTIONS, filter_, [("at", -1)], limit, cursor)
        return Listing(items=tuple(ModerationAction.from_document(d) for d in page.items),
                       next_cursor=page.next_cursor)

    # -- internals -------------------------------------------------------------------------------
    async def _moderator(self, moderator_id: str) -> str:
        """The acting user's role, if it is moderator or admin and they are not suspended."""
        role = await self.role_of(moderator_id)
        if role not in SUSPENDS:
            raise KnowledgeError("moderator_id", "forbidden",
                                 f"{moderator_id!r} is a {role}; only moderators and admins "
                                 "moderate")
        try:
            await ensure_active(self.store, moderator_id, field="moderator_id")
        except AccountError as exc:
            raise KnowledgeError("moderator_id", "suspended", exc.detail) from None
        return role

    def _log(self, action: str, kind: TargetKind, doc: Mapping[str, Any], moderator_id: str,
             reason: str) -> Callable[[Unit], None]:
        row = {"_id": f"act_{secrets.token_hex(8)}", "action": action, "target_type": kind.name,
               "target_id": doc["_id"], "author_id": doc.get("created_by", ""),
               "moderator_id": moderator_id, "reason": reason, "at": now_stamp()}
        return _inserter(row)

    def _user_revision(
        self, action: str, suspension: Mapping[str, Any] | None, evt: object, user_id: str,
        moderator_id: str, reason: str, stamp: str, correlation_id: str | None,
    ) -> Revision:
        row = {"_id": f"act_{secrets.token_hex(8)}", "action": action, "target_type": "user",
               "target_id": user_id, "author_id": user_id, "moderator_id": moderator_id,
               "reason": reason, "at": stamp}
        return Revision(changes={"suspension": suspension, "updated_at": stamp},
                        more=_inserter(row), event=lambda event_id: self.envelope(
                            evt, event_id, correlation_id, stamp))

    async def _revise_user(self, user_id: str,
                           decide: Callable[[dict[str, Any]], Revision | None]
                           ) -> dict[str, Any]:
        return await revise(self.store, USERS, user_id, rev_field="suspension_rev",
                            decide=decide, missing=lambda: not_found("user_id", "user", user_id),
                            conflict=lambda: conflict("user_id", f"user {user_id!r}"))

    async def _set_hidden(self, target_type: str, target_id: str, moderator_id: str,
                          reason: str, hidden: bool, correlation_id: str | None) -> None:
        kind = target_kind(target_type)
        reason = validate_reason(reason, required=True)
        await self._moderator(moderator_id)
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            if bool(doc.get("hidden")) == hidden:
                return None
            changes: dict[str, Any] = {"hidden": hidden, "hidden_by": moderator_id,
                                       "hidden_reason": reason, "hidden_at": stamp}
            listed = is_listed({**doc, "hidden": hidden})
            if kind.in_areas:
                changes["listed"] = listed
            cls = events.ContentHidden if hidden else events.ContentUnhidden
            evt = cls(target_type=kind.name, target_id=target_id, author_id=doc["created_by"],
                      moderator_id=moderator_id, reason=reason)
            log = self._log("hide" if hidden else "unhide", kind, doc, moderator_id, reason)

            def more(unit: Unit) -> None:
                if kind.in_areas:
                    set_listed(unit, target_id, listed)
                log(unit)

            return Revision(changes=changes, more=more, event=lambda event_id: self.envelope(
                evt, event_id, correlation_id, stamp))

        await self._revise_target(kind, target_id, "rev", decide)

    async def _set_status(self, target_type: str, target_id: str, moderator_id: str,
                          reason: str, close: bool, correlation_id: str | None) -> None:
        kind = target_kind(target_type, allows="closable")
        reason = validate_reason(reason, required=True)
        await self._moderator(moderator_id)
        stamp = now_stamp()

        def decide(doc: dict[str, Any]) -> Revision | None:
            if (doc["status"] == "closed") == close:
                return None
            if close:
                status, changes = "closed", {"closed_by": moderator_id, "closed_reason": reason,
                                             "closed_at": stamp, "closed_by_moderator": True}
            else:
                status = reopened_status(doc) if kind.name == "question" else "open"
                changes = {"closed_by": None, "closed_reason": None, "closed_at": None,
                           "closed_by_moderator": False}
            cls = events.ContentClosed if close else events.ContentReopened
            evt = cls(target_type=kind.name, target_id=target_id, author_id=doc["created_by"],
                      moderator_id=moderator_id, reason=reason)
            log = self._log("close" if close else "reopen", kind, doc, moderator_id, reason)
            revision = status_revision(kind.collection, doc, status, stamp, lambda event_id:
                                       self.envelope(evt, event_id, correlation_id, stamp,
                                                     {"previous_status": doc["status"]}),
                                       changes)

            def more(unit: Unit) -> None:
                revision.more(unit)
                log(unit)

            return attrs.evolve(revision, more=more)

        await self._revise_target(kind, target_id, STATUS_REV, decide)

    async def _revise_target(self, kind: TargetKind, target_id: str, rev_field: str,
                             decide: Callable[[dict[str, Any]], Revision | None]) -> None:
        await revise(self.store, kind.collection, target_id, rev_field=rev_field, decide=decide,
                     missing=lambda: not_found("target_id", kind.name, target_id),
                     conflict=lambda: conflict("target_id", f"{kind.name} {target_id!r}"))


__all__ = [
    "ACTIONS",
    "CASES",
    "CASE_ACTIONS",
    "INDEXES",
    "REPORTS",
    "REPORT_REASONS",
    "RESOLUTIONS",
    "TARGETS",
    "Case",
    "Moderation",
    "ModerationAction",
    "Report",
    "case_id_of",
]
