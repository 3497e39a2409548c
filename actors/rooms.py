"""``RoomActor``: one websocket room (members, presence, sequenced fan-out), and ``RoomFeed``.

Rooms are named ``notifications:<user>``, ``presence``, ``collaboration:<content id>`` and
``leaderboard:<board>``. A room keeps its members in memory only (presence is ephemeral: after a
restart the members' next heartbeat says ``known: False`` and their sockets join again).

Fan-out goes through the node's pub/sub (``ctx.system.extensions["pubsub"]``: in-process in
embedded mode, Redis across nodes in cluster mode) on the topic ``room:<name>``. Each frame is
``{"room", "epoch", "seq", "type", ...}``: ``seq`` counts the room's frames (1, 2, 3...) within
one activation, ``epoch`` names the activation, so a member sees a gap or a restart and resyncs
with ``Members()``. Presence changes travel in the same sequence as ``Broadcast`` frames
(``type: "message"``).

Presence changes are coalesced: a join, a new ``info``, a leave or an expiry is queued, and the
queue goes out as one ``presence.changes`` frame (``changes``: a list of ``{"change": "joined" |
"updated" | "left" | "expired", "member_id", "info"?}`` in the order they happened) a window
after its first change, or at once when it holds ``presence_max_batch`` (option, default 500)
changes. Why: one frame per change goes to every member, so n members joining at once cost ~n²/2
frames (3,000 joins: 4.5 million, and members were dropped as slow readers); batched, each
window costs one frame per member, whatever the number of joins in it. The window is
``presence_flush_seconds`` (option, default 0.05) in a small room and stretches with the room,
to ``members / presence_fanout_per_second`` (option, default 5,000 frames a second to its
members), at most 1 s: each window costs the gateways one send per member (~0.2 ms), so a
1,000-member room flushes every 0.2 s, a 3,000-member one every 0.6 s. A ``Broadcast`` is never
delayed: the queued changes go out first (so the sequence keeps the order things happened in),
then the broadcast, in the same turn. The reply to ``Join`` carries the room's ``seq`` at that
moment: the join shows in that frame (a full batch went out at once) or a later one.

Each member's socket reads the topic through its own bounded subscription (:class:`RoomFeed`):
the room never waits for a member, and a member too slow to keep up is dropped by the pub/sub
(``SubscriptionDropped``) while the others carry on. ``exclude`` is applied by the feeds, since
one frame is encoded once for every subscriber.

Heartbeats. Members are kept in order of their last heartbeat, and one timer is armed for the
oldest one's deadline (``heartbeat_timeout_seconds``, option, default 30): O(1) per heartbeat and
one timer per room, however many members. Keep the heartbeat interval below the kind's
``idle_timeout_seconds``, or an idle room passivates with its members.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import OrderedDict
from types import TracebackType
from typing import Any, Final

import attrs
import trio

from tektree import Actor, handler, message
from tektree.cluster.pubsub import DEFAULT_MAX_QUEUE, PubSub, Subscription
from tektree.persistence import format_timestamp

__all__ = [
    "ROOM_KIND",
    "ROOM_PREFIXES",
    "Broadcast",
    "ExpireIdle",
    "FlushPresence",
    "Heartbeat",
    "Join",
    "Leave",
    "Members",
    "RoomActor",
    "RoomFeed",
    "check_room_name",
    "room_topic",
]

ROOM_KIND: Final = "room"
#: Room names: ``presence`` exactly, or one of these prefixes followed by a non-empty id.
ROOM_PREFIXES: Final = ("notifications:", "collaboration:", "leaderboard:")
DEFAULT_HEARTBEAT_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_PRESENCE_FLUSH_SECONDS: Final = 0.05
DEFAULT_PRESENCE_MAX_BATCH: Final = 500
DEFAULT_PRESENCE_FANOUT_PER_SECOND: Final = 5000.0
#: The longest presence window, however big the room.
MAX_PRESENCE_FLUSH_SECONDS: Final = 1.0
_EXPIRE_TIMER: Final = "heartbeat-expiry"
_FLUSH_TIMER: Final = "presence-flush"
_OPTIONS: Final = frozenset({"heartbeat_timeout_seconds", "presence_fanout_per_second",
                             "presence_flush_seconds", "presence_max_batch", "role"})


def room_topic(room: str) -> str:
    """The pub/sub topic a room's frames are published on."""
    return f"room:{room}"


def check_room_name(name: str) -> str:
    """``name`` if it is a room name; ``ValueError`` naming the allowed forms otherwise."""
    if name == "presence" or any(
        name.startswith(prefix) and len(name) > len(prefix) for prefix in ROOM_PREFIXES
    ):
        return name
    raise ValueError(
        f"room {name!r} is not a room name: use 'presence' or "
        f"{', '.join(p + '<id>' for p in ROOM_PREFIXES)}"
    )


def _member_id(instance: Any, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty str, got {value!r}"
        )


@message("room.join")
class Join:
    """``info`` says where the member is (page, device...): shown by ``Members()``."""

    member_id: str = attrs.field(validator=_member_id)
    info: dict[str, Any] = attrs.Factory(dict)


@message("room.leave")
class Leave:
    member_id: str = attrs.field(validator=_member_id)


@message("room.heartbeat")
class Heartbeat:
    """Keep ``member_id`` present; ``info`` (optional) replaces where it is."""

    member_id: str = attrs.field(validator=_member_id)
    info: dict[str, Any] | None = None


@message("room.broadcast")
class Broadcast:
    """Send ``payload`` to every member but those in ``exclude``; replies with its ``seq``."""

    payload: Any
    exclude: tuple[str, ...] = ()


@message("room.members")
class Members:
    pass


@message("room.expire_idle")
class ExpireIdle:
    """The room's own heartbeat-expiry tick."""


@message("room.flush_presence")
class FlushPresence:
    """The room's own tick: publish the presence changes queued since the last frame."""


@attrs.define(slots=True)
class _Member:
    info: dict[str, Any]
    joined_at: str
    joined_seq: int
    last_seen: float


class RoomActor(Actor):
    """Kind ``room``, key = the room name (see the module docstring)."""

    __slots__ = ("epoch", "fanout", "flush_seconds", "joins", "max_batch", "members",
                 "pending", "pubsub", "seq", "timeout", "topic")

    async def on_activate(self) -> None:
        options = self.ctx.options
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ValueError(f"option {unknown[0]!r} of kind {ROOM_KIND!r} is unknown; "
                             f"known: {sorted(_OPTIONS)}")
        timeout = options.get("heartbeat_timeout_seconds", DEFAULT_HEARTBEAT_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"option heartbeat_timeout_seconds must be > 0, got {timeout!r}")
        flush = options.get("presence_flush_seconds", DEFAULT_PRESENCE_FLUSH_SECONDS)
        if isinstance(flush, bool) or not isinstance(flush, int | float) or flush < 0:
            raise ValueError(f"option presence_flush_seconds must be >= 0 (0: one frame per "
                             f"change), got {flush!r}")
        max_batch = options.get("presence_max_batch", DEFAULT_PRESENCE_MAX_BATCH)
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"option presence_max_batch must be an int >= 1, got {max_batch!r}")
        fanout = options.get("presence_fanout_per_second", DEFAULT_PRESENCE_FANOUT_PER_SECOND)
        if isinstance(fanout, bool) or not isinstance(fanout, int | float) or fanout <= 0:
            raise ValueError(f"option presence_fanout_per_second must be > 0, got {fanout!r}")
        pubsub = self.ctx.system.extensions.get("pubsub")
        if pubsub is None:
            raise RuntimeError(f"room {self.ctx.id.key!r} needs pub/sub: run the 'cluster' "
                               "service on this node (embedded mode gives in-process topics)")
        self.timeout = float(timeout)
        self.flush_seconds = float(flush)
        self.max_batch = max_batch
        self.fanout = float(fanout)
        #: Presence changes not yet published (see the module docstring).
        self.pending: list[dict[str, Any]] = []
        self.topic = room_topic(check_room_name(self.ctx.id.key))
        self.pubsub: PubSub = pubsub  # type: ignore[assignment]
        self.members: OrderedDict[str, _Member] = OrderedDict()  # oldest heartbeat first
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        self.joins = 0

    async def on_passivate(self) -> None:
        await self._flush()  # nothing accepted is lost

    async def _send(self, frame_type: str, **fields: Any) -> int:
        if self.pending and frame_type != "presence.changes":
            await self._flush()  # first what happened first
        self.seq += 1
        frame = {"room": self.ctx.id.key, "epoch": self.epoch, "seq": self.seq,
                 "type": frame_type, **fields}
        await self.pubsub.publish(self.topic, frame)
        return self.seq

    async def _change(self, change: str, member_id: str, **fields: Any) -> None:
        """Queue one presence change; publish the queue when it is full or immediate."""
        self.pending.append({"change": change, "member_id": member_id, **fields})
        if len(self.pending) >= self.max_batch or self.flush_seconds == 0:
            await self._flush()
        elif _FLUSH_TIMER not in self.ctx.timer_names:
            window = max(self.flush_seconds, min(len(self.members) / self.fanout,
                                                 MAX_PRESENCE_FLUSH_SECONDS))
            self.ctx.start_timer(_FLUSH_TIMER, window, FlushPresence())

    async def _flush(self) -> None:
        self.ctx.cancel_timer(_FLUSH_TIMER)
        if self.pending:
            changes, self.pending = self.pending, []
            await self._send("presence.changes", changes=changes)

    @handler
    async def flush_presence(self, msg: FlushPresence) -> None:
        await self._flush()

    def _arm(self) -> None:
        if self.members and _EXPIRE_TIMER not in self.ctx.timer_names:
            oldest = next(iter(self.members.values()))
            delay = max(0.0, oldest.last_seen + self.timeout - trio.current_time())
            self.ctx.start_timer(_EXPIRE_TIMER, delay, ExpireIdle())

    @handler
    async def join(self, msg: Join) -> dict[str, Any]:
        now = trio.current_time()
        member = self.members.get(msg.member_id)
        if member is None:
            self.joins += 1
            self.members[msg.member_id] = _Member(
                info=dict(msg.info), joined_at=format_timestamp(dt.datetime.now(dt.UTC)),
                joined_seq=self.joins, last_seen=now)
            await self._change("joined", msg.member_id, info=msg.info)
        else:
            member.last_seen = now
            self.members.move_to_end(msg.member_id)
            if member.info != msg.info:
                member.info = dict(msg.info)
                await self._change("updated", msg.member_id, info=msg.info)
        self._arm()
        return {"members": len(self.members), "epoch": self.epoch, "seq": self.seq}

    @handler
    async def leave(self, msg: Leave) -> bool:
        if self.members.pop(msg.member_id, None) is None:
            return False
        await self._change("left", msg.member_id)
        if not self.members:
            self.ctx.cancel_timer(_EXPIRE_TIMER)
        return True

    @handler
    async def heartbeat(self, msg: Heartbeat) -> dict[str, Any]:
        member = self.members.get(msg.member_id)
        if member is None:
            return {"known": False}  # expired or the room restarted: join again
        member.last_seen = trio.current_time()
        self.members.move_to_end(msg.member_id)
        if msg.info is not None and msg.info != member.info:
            member.info = dict(msg.info)
            await self._change("updated", msg.member_id, info=msg.info)
        return {"known": True}

    @handler
    async def expire_idle(self, msg: ExpireIdle) -> None:
        deadline = trio.current_time() - self.timeout
        while self.members:
            member_id, member = next(iter(self.members.items()))
            if member.last_seen > deadline:
                break
            del self.members[member_id]
            await self._change("expired", member_id)
        self._arm()

    @handler
    async def broadcast(self, msg: Broadcast) -> int:
        return await self._send("message", payload=msg.payload, exclude=list(msg.exclude))

    @handler
    def list_members(self, msg: Members) -> list[dict[str, Any]]:
        ordered = sorted(self.members.items(), key=lambda item: item[1].joined_seq)
        return [{"member_id": member_id, "info": member.info, "joined_at": member.joined_at}
                for member_id, member in ordered]


class RoomFeed:
    """One member's reading end of a room: its frames, minus those that exclude the member.

    ``async for frame in feed``; a slow reader's feed raises ``SubscriptionDropped`` (resync
    with ``Members()`` and open a new feed). ``gaps`` counts frames missed within an epoch.
    """

    def __init__(
        self, pubsub: PubSub, room: str, member_id: str, *, max_queue: int = DEFAULT_MAX_QUEUE
    ) -> None:
        self.room = check_room_name(room)
        self.member_id = member_id
        self.subscription: Subscription = pubsub.subscribe(room_topic(room), max_queue=max_queue)
        self.gaps = 0
        self._last: tuple[str, int] | None = None

    def _wanted(self, frame: Any) -> bool:
        if not isinstance(frame, dict):
            return False
        epoch, seq = frame.get("epoch"), frame.get("seq")
        if isinstance(epoch, str) and isinstance(seq, int):
            if self._last is not None and self._last[0] == epoch and seq > self._last[1] + 1:
                self.gaps += seq - self._last[1] - 1
            self._last = (epoch, seq)
        return self.member_id not in (frame.get("exclude") or ())

    def receive_nowait(self) -> dict[str, Any]:
        """The next frame for this member; ``trio.WouldBlock`` if none is queued."""
        while True:
            frame = self.subscription.receive_nowait()
            if self._wanted(frame):
                return frame  # type: ignore[no-any-return]

    async def receive(self) -> dict[str, Any]:
        while True:
            frame = await self.subscription.receive()
            if self._wanted(frame):
                return frame  # type: ignore[no-any-return]

    def close(self) -> None:
        self.subscription.close()

    def __enter__(self) -> RoomFeed:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> RoomFeed:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
