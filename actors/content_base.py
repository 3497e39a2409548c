"""Plumbing shared by the content services (areas, insights, discussions, resources, comments,
likes, search, moderation): the service base class and the validators beyond
:mod:`actors.knowledge`'s.

Every operation validates its inputs first and raises :class:`~actors.knowledge.KnowledgeError`
(``field``, ``rule``, ``detail``) for anything wrong, before touching the store. Rules used
across the services, for the gateway to map: ``exists`` (no such thing, or not visible to the
caller: 404), ``forbidden`` (403), ``suspended`` (an :class:`~actors.accounts.AccountError`, 403),
``unique`` and ``conflict`` (409), everything else (``length``, ``format``, ``enum``, ``count``,
``range``, ``type``, ``status``, ``valid``...) a bad request (400 or 422).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

from actors import events
from actors.accounts import USERS, Viewer
from actors.content_core import VISIBILITIES, Revision, revise
from actors.knowledge import KnowledgeError, find_page
from actors.quotas import Quotas
from tektree.persistence import (
    DocumentStore,
    DomainEvent,
    IndexSpec,
    Page,
    Unit,
    format_timestamp,
)

REASON_MAX: Final = 500
CO_AUTHORS_MAX: Final = 10
#: Reading speed behind ``estimated_read_time_minutes``.
WORDS_PER_MINUTE: Final = 200
_USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_URL = re.compile(r"https?://[^\s/$.?#][^\s]{0,2000}", re.IGNORECASE)
_READ_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")
_CODE_FENCE = re.compile(r"^\s*(```|~~~)")


def now_stamp(clock: dt.datetime | None = None) -> str:
    return format_timestamp(clock or dt.datetime.now(dt.UTC))


def validate_visibility(value: object) -> str:
    if value not in VISIBILITIES:
        raise KnowledgeError("visibility", "enum",
                             f"{value!r} is not one of {', '.join(VISIBILITIES)}")
    assert isinstance(value, str)
    return value


def validate_reason(value: object, *, required: bool = False) -> str:
    """A moderator's or author's reason: text of at most 500 characters (at least 3 when
    ``required``)."""
    low = 3 if required else 0
    if not isinstance(value, str) or not low <= len(value.strip()) <= REASON_MAX:
        got = f"{len(value.strip())} characters" if isinstance(value, str) else repr(value)
        raise KnowledgeError("reason", "length",
                             f"must be {low} to {REASON_MAX} characters, got {got}")
    return value.strip()


def validate_user_ids(field: str, value: object, *, limit: int) -> tuple[str, ...]:
    """User ids, deduplicated in order: at most ``limit`` of ``[A-Za-z0-9_-]{1,64}``."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise KnowledgeError(field, "type", f"must be a list of user ids, got {value!r:.60}")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not _USER_ID.fullmatch(item):
            raise KnowledgeError(field, "format", f"{item!r:.60} is not a user id")
        if item not in out:
            out.append(item)
    if len(out) > limit:
        raise KnowledgeError(field, "count", f"at most {limit} users, got {len(out)}")
    return tuple(out)


def validate_url(field: str, value: object) -> str:
    """An ``http://`` or ``https://`` URL of at most 2,000 characters (nothing else: no
    ``javascript:``, no ``file:``)."""
    if not isinstance(value, str) or not _URL.fullmatch(value.strip()):
        raise KnowledgeError(field, "format",
                             f"{value!r:.80} is not an http:// or https:// URL (at most 2000 "
                             "characters)")
    return value.strip()


def validate_flag(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise KnowledgeError(field, "type", f"must be true or false, got {value!r:.40}")
    return value


def estimated_read_time_minutes(body: str, *, words_per_minute: int = WORDS_PER_MINUTE) -> int:
    """Minutes to read ``body`` (Markdown): its words at ``words_per_minute``, each line of a
    fenced code block counted as one more word (code is read slowly, but not word by word);
    rounded up, at least 1."""
    words, in_code = 0, False
    for line in body.splitlines():
        if _CODE_FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            words += 1 if line.strip() else 0
        else:
            words += len(_READ_WORD.findall(line))
    return max(1, math.ceil(words / words_per_minute))


def not_found(field: str, kind: str, value: str) -> KnowledgeError:
    return KnowledgeError(field, "exists", f"no {kind} {value!r}")


def conflict(field: str, what: str) -> KnowledgeError:
    return KnowledgeError(field, "conflict", f"{what} kept changing concurrently; retry")


class StoreService:
    """A stateless service over a :class:`DocumentStore`: its indexes (declare them once with
    :meth:`ensure_indexes`), its events' envelopes and its cursor pages. Caller ids are taken as
    authenticated by the caller (the gateway)."""

    INDEXES: ClassVar[tuple[tuple[str, IndexSpec], ...]] = ()
    PRODUCER: ClassVar[str] = "knowledge"

    def __init__(self, store: DocumentStore, *, producer_id: str | None = None,
                 quotas: Quotas | None = None) -> None:
        self.store = store
        self._producer = producer_id or self.PRODUCER
        #: Monthly quotas (``insights``, ``resource_uploads``) counted on creation (None: none).
        self.quotas = quotas

    async def ensure_indexes(self) -> None:
        for collection, spec in self.INDEXES:
            await self.store.ensure_index(collection, spec)

    def envelope(
        self, evt: object, event_id: str, correlation_id: str | None, stamp: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> DomainEvent:
        return events.to_envelope(evt, event_id=event_id, producer_id=self._producer,
                                  correlation_id=correlation_id, timestamp=stamp,
                                  metadata=metadata)

    async def find(
        self, collection: str, filter_: Mapping[str, Any],
        sort: list[tuple[str, Literal[1, -1]]], limit: int, cursor: str | None,
    ) -> Page:
        return await find_page(self.store, collection, filter_, sort, limit, cursor)

    async def toggle(
        self,
        collection: str,
        doc_id: str,
        *,
        active: bool,
        fields: Mapping[str, Any],
        event: Callable[[bool], object],
        counter: tuple[str, str, str] | None,
        correlation_id: str | None,
    ) -> bool:
        """Switch a membership row (a like, a follow) on or off; True if it changed.

        The row (``fields`` plus ``active``) is kept when switched off, so its revision counter
        survives: like, unlike, like again are three revisions, each with its own event id, and
        two concurrent likes by one user commit once (:func:`~actors.content_core.revise`).
        ``counter``: ``(collection, id, field)`` moved by one in the same unit."""
        stamp = now_stamp()
        changed = False

        def decide(doc: dict[str, Any]) -> Revision | None:
            nonlocal changed
            changed = bool(doc.get("active")) != active
            if not changed:
                return None
            changes = {**fields, "active": active, "updated_at": stamp,
                       "created_at": doc.get("created_at", stamp)}

            def more(unit: Unit) -> None:
                if counter is not None:
                    target, target_id, name = counter
                    unit.update(target, target_id, {"$inc": {name: 1 if active else -1}})

            return Revision(changes=changes, more=more, event=lambda event_id: self.envelope(
                event(active), event_id, correlation_id, stamp))

        await revise(self.store, collection, doc_id, rev_field="rev", decide=decide,
                     missing=None, conflict=lambda: conflict("active", f"{doc_id!r}"))
        return changed

    async def role_of(self, user_id: str) -> str:
        """The user's role as stored (``user`` for a user the store does not hold)."""
        doc = await self.store.get(USERS, user_id)
        return str((doc or {}).get("role", "user"))

    async def viewer(self, user_id: str) -> Viewer:
        """``user_id`` as a :class:`Viewer`, with the role the store holds."""
        return Viewer(user_id=user_id, role=await self.role_of(user_id))

    async def require_users(self, field: str, user_ids: Sequence[str]) -> None:
        """Every id of ``user_ids`` names a registered user."""
        if not user_ids:
            return
        page = await self.store.find(USERS, {"_id": {"$in": list(user_ids)}},
                                     limit=len(user_ids))
        known = {doc["_id"] for doc in page.items}
        for uid in user_ids:
            if uid not in known:
                raise KnowledgeError(field, "exists", f"no user {uid!r}")


__all__ = [
    "CO_AUTHORS_MAX",
    "REASON_MAX",
    "WORDS_PER_MINUTE",
    "StoreService",
    "conflict",
    "estimated_read_time_minutes",
    "not_found",
    "now_stamp",
    "validate_flag",
    "validate_reason",
    "validate_url",
    "validate_user_ids",
    "validate_visibility",
]
