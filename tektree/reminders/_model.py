"""Reminders as data: the stored document, occurrence ids, buckets and the next due time.

Pure and sans-IO: no store, no trio. Times are integer milliseconds since the Unix epoch in
the store (``due_ms``), so that equality and ordering are exact on every backend.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
from collections.abc import Mapping
from hashlib import blake2b
from typing import Any, Final

import attrs

from tektree._codec import decode_message, encode_message
from tektree._ids import ActorId

__all__ = [
    "BUCKETS",
    "FAILED_REMINDERS",
    "MIN_PERIOD_SECONDS",
    "OCCURRENCE_PREFIX",
    "REMINDERS",
    "Occurrence",
    "Reminder",
    "ReminderError",
    "bucket_of",
    "check_name",
    "due_ms_of",
    "next_due_ms",
    "occurrence_id",
    "parse_occurrence",
    "reminder_id",
]

#: The store collection of live reminders, and of one-shot occurrences that exhausted their
#: delivery attempts (kept for inspection and :meth:`Reminders.retry_failed`).
REMINDERS: Final = "reminders"
FAILED_REMINDERS: Final = "reminders_failed"
#: Reminders are spread over this many buckets (a stable hash of the reminder id); in a
#: cluster each bucket is claimed by one node, its home by rendezvous placement. A constant,
#: not a setting: every node must agree on it.
BUCKETS: Final = 256
#: Shortest period of a periodic reminder (use a timer for anything faster).
MIN_PERIOD_SECONDS: Final = 1.0
#: Envelope message ids of reminder deliveries start with this.
OCCURRENCE_PREFIX: Final = "rem:"

_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class ReminderError(ValueError):
    """A reminder was registered with a bad value; ``field`` and ``value`` name it."""

    def __init__(self, field: str, value: object, detail: str) -> None:
        super().__init__(f"reminder {field} = {value!r:.80}: {detail}")
        self.field = field
        self.value = value
        self.detail = detail


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ReminderError(
            "name", name, "must be 1-100 letters, digits or any of '_.:-' (e.g. 'daily-digest')"
        )
    return name


def reminder_id(actor: ActorId, name: str) -> str:
    """The document id of ``actor``'s reminder ``name``: ``"kind/key|name"``."""
    return f"{actor}|{name}"


def bucket_of(rid: str) -> int:
    """The bucket of a reminder id: a stable 64-bit hash, the same in every process."""
    digest = blake2b(rid.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def occurrence_id(rid: str, due_ms: int) -> str:
    """The id of the occurrence of ``rid`` due at ``due_ms``: the envelope's message id when
    it is delivered, the same on every redelivery (handlers deduplicate on it)."""
    return f"{OCCURRENCE_PREFIX}{rid}@{due_ms}"


@attrs.frozen(kw_only=True)
class Occurrence:
    """What a handler can learn from a reminder delivery's message id."""

    id: str
    actor: ActorId
    name: str
    due_ms: int

    @property
    def due(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.due_ms / 1000, dt.UTC)


def parse_occurrence(message_id: str | None) -> Occurrence | None:
    """The occurrence a message id names, or None when it is not a reminder delivery."""
    if not message_id or not message_id.startswith(OCCURRENCE_PREFIX):
        return None
    body = message_id[len(OCCURRENCE_PREFIX):]
    rid, at, due = body.rpartition("@")
    actor_text, bar, name = rid.rpartition("|")
    if not (at and bar and due.isdigit()):
        return None
    try:
        actor = ActorId.parse(actor_text)
    except ValueError:
        return None
    return Occurrence(id=message_id, actor=actor, name=name, due_ms=int(due))


def due_ms_of(when: float | dt.datetime, field: str = "due") -> int:
    """Unix milliseconds of ``when``: Unix seconds, or an aware datetime."""
    if isinstance(when, dt.datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ReminderError(field, when, "must be timezone-aware (e.g. tzinfo=UTC)")
        return round(when.timestamp() * 1000)
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise ReminderError(field, when, "must be Unix seconds (a finite number) or a datetime")
    return round(when * 1000)


def period_ms_of(period_seconds: float | None) -> int | None:
    if period_seconds is None:
        return None
    if (
        isinstance(period_seconds, bool)
        or not isinstance(period_seconds, int | float)
        or not math.isfinite(period_seconds)
        or period_seconds < MIN_PERIOD_SECONDS
    ):
        raise ReminderError(
            "period_seconds", period_seconds,
            f"must be a number >= {MIN_PERIOD_SECONDS:g} (or None for a one-shot reminder); "
            "use ctx.start_periodic_timer for faster in-memory ticks",
        )
    return round(period_seconds * 1000)


def next_due_ms(due_ms: int, period_ms: int, now_ms: int) -> int:
    """The next due time of a periodic reminder after its occurrence at ``due_ms``.

    Occurrences stay on the grid ``due_ms + k * period_ms`` (no drift). If the node(s) were
    down across several occurrences, the missed ones collapse into the one just delivered:
    the next is the first grid point at or after ``now_ms`` (one due right now is not missed).
    """
    following = due_ms + period_ms
    if following >= now_ms:
        return following
    return due_ms + -(-(now_ms - due_ms) // period_ms) * period_ms  # first grid point >= now


def encode_payload(message: object) -> str:
    """A message as the store keeps it: the codec's msgpack, base64 (JSON-safe)."""
    return base64.b64encode(encode_message(message)).decode("ascii")


def decode_payload(text: str) -> object:
    return decode_message(base64.b64decode(text.encode("ascii")))


@attrs.frozen(kw_only=True)
class Reminder:
    """A reminder as stored: ``actor``'s ``name``, next due at ``due_ms``, every
    ``period_ms`` (None: once). ``owner``, ``lease_until_ms`` and ``claim`` (its token) are the
    current claim."""

    id: str
    actor: ActorId
    name: str
    message_tag: str
    due_ms: int
    period_ms: int | None
    bucket: int
    version: int
    owner: str | None = None
    lease_until_ms: int = 0
    claim: str | None = None
    attempts: int = 0
    last_error: str | None = None
    last_fired_ms: int | None = None
    payload: str = attrs.field(default="", repr=False)

    @property
    def due(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.due_ms / 1000, dt.UTC)

    @property
    def period_seconds(self) -> float | None:
        return None if self.period_ms is None else self.period_ms / 1000

    @property
    def occurrence_id(self) -> str:
        return occurrence_id(self.id, self.due_ms)

    def message(self) -> object:
        """The message delivered at each occurrence (decoded with the codec)."""
        return decode_payload(self.payload)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Reminder:
        return cls(
            id=doc["_id"], actor=ActorId.parse(doc["actor"]), name=doc["name"],
            message_tag=doc.get("message_tag", "?"), due_ms=int(doc["due_ms"]),
            period_ms=None if doc.get("period_ms") is None else int(doc["period_ms"]),
            bucket=int(doc["bucket"]), version=int(doc.get("version", 0)),
            owner=doc.get("owner"), lease_until_ms=int(doc.get("lease_until_ms", 0)),
            claim=doc.get("claim"),
            attempts=int(doc.get("attempts", 0)), last_error=doc.get("last_error"),
            last_fired_ms=doc.get("last_fired_ms"), payload=doc.get("payload", ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON view for operators (no payload bytes)."""
        return {
            "id": self.id, "actor": str(self.actor), "name": self.name,
            "message": self.message_tag, "due": self.due.isoformat(),
            "period_seconds": self.period_seconds, "owner": self.owner,
            "attempts": self.attempts, "last_error": self.last_error,
        }
