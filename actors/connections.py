"""Connections between users: what the ``connections`` visibility of areas and content means.

A connection is mutual consent: each user asks for it (``connect(a, b)`` and ``connect(b, a)``),
and the two are connected once both did; either one ``disconnect``s alone. One row per direction
(``connections``, ``_id`` ``<user>-><peer>``), so the consent of each side is its own write and
two users asking at once need no coordination.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Final

from actors.accounts import AccountError
from tektree.persistence import DocumentStore, DuplicateKeyError, IndexSpec, format_timestamp

CONNECTIONS: Final = "connections"
#: At most this many connections are read for one visibility decision over many owners.
MAX_CONNECTIONS_READ: Final = 1000

INDEXES: Final = (
    (CONNECTIONS, IndexSpec(fields=(("user_id", 1), ("created_at", -1)),
                            name="connections_user_time")),
    (CONNECTIONS, IndexSpec(fields=(("peer_id", 1), ("user_id", 1)),
                            name="connections_peer_user")),
)


def _row_id(user_id: str, peer_id: str) -> str:
    return f"{user_id}->{peer_id}"


class Connections:
    """The connection graph over a :class:`DocumentStore`."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    async def ensure_indexes(self) -> None:
        for collection, spec in INDEXES:
            await self.store.ensure_index(collection, spec)

    async def connect(self, user_id: str, peer_id: str) -> bool:
        """``user_id`` consents to a connection with ``peer_id``; True once both have."""
        if user_id == peer_id:
            raise AccountError("peer_id", "self", f"user {user_id!r} cannot connect to "
                               "themselves; name another user")
        with contextlib.suppress(DuplicateKeyError):  # asked before: the same consent
            await self.store.insert(CONNECTIONS, {
                "_id": _row_id(user_id, peer_id), "user_id": user_id, "peer_id": peer_id,
                "created_at": format_timestamp(dt.datetime.now(dt.UTC))})
        return await self.are_connected(user_id, peer_id)

    async def disconnect(self, user_id: str, peer_id: str) -> None:
        """``user_id`` withdraws consent: the two are no longer connected."""
        await self.store.delete(CONNECTIONS, _row_id(user_id, peer_id))

    async def are_connected(self, a: str, b: str) -> bool:
        if a == b:
            await self.store.get(CONNECTIONS, _row_id(a, b))  # a checkpoint, like the others
            return False
        return (await self.store.get(CONNECTIONS, _row_id(a, b)) is not None
                and await self.store.get(CONNECTIONS, _row_id(b, a)) is not None)

    async def connected_among(self, user_id: str, others: set[str]) -> set[str]:
        """Which of ``others`` are connected with ``user_id`` (at most
        :data:`MAX_CONNECTIONS_READ` of them are looked at)."""
        peers = sorted(others - {user_id})[:MAX_CONNECTIONS_READ]
        if not peers:
            return set()
        mine = await self.store.find(CONNECTIONS, {"user_id": user_id, "peer_id": {"$in": peers}},
                                     limit=len(peers))
        theirs = await self.store.find(CONNECTIONS, {"peer_id": user_id,
                                                     "user_id": {"$in": peers}},
                                       limit=len(peers))
        return ({d["peer_id"] for d in mine.items} & {d["user_id"] for d in theirs.items})


__all__ = ["CONNECTIONS", "INDEXES", "MAX_CONNECTIONS_READ", "Connections"]
