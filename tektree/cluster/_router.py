"""The cluster's :class:`~tektree._routing.Router`: placement, remote sends, remote replies,
activation leases. Frames on a node's inbound stream start with one byte: ``E`` for an
envelope, ``R`` for the reply to an ask this node sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Protocol

import structlog

from tektree._codec import decode_envelope, decode_reply, encode_envelope, encode_reply
from tektree._envelope import Envelope
from tektree._errors import ActorFailed, CodecError, TekTreeError
from tektree._ids import ActorId
from tektree._reply import ReplySlot
from tektree._system import ActorSystem
from tektree.cluster.placement import Member, home

__all__ = ["ENVELOPE_FRAME", "REPLY_FRAME", "ClusterRouter", "RemoteReply"]

ENVELOPE_FRAME = b"E"
REPLY_FRAME = b"R"
_MISSING = object()
_CACHE_LIMIT = 200_000

_log = structlog.get_logger("tektree.cluster.router")


class FrameSink(Protocol):
    """What the router needs of the transport."""

    def send(self, dest_node: str, frame: bytes) -> None: ...

    def full(self) -> bool: ...

    async def wait_for_room(self) -> None: ...

    def ack(self, stream: str, entry_ids: list[bytes]) -> None: ...


class LeaseSource(Protocol):
    """What the router needs of the lease manager."""

    async def acquire(self, actor_key: str) -> Any: ...

    async def holder(self, actor_key: str) -> tuple[str, int] | None: ...

    def release_soon(self, actor_key: str) -> None: ...


class RemoteReply:
    """The reply object of an ask that came from another node: sends the outcome back.

    Given the inbound envelope, it acknowledges the entry itself just before sending the
    outcome (the handler is done: the runtime always sets the reply, then acks), so that the
    ack rides in the same write as the reply frame instead of a later one of its own; the
    envelope's ``ack`` is then cleared, so the runtime's own call does nothing.
    """

    __slots__ = ("_env", "_message_id", "_node", "_router")

    def __init__(self, router: ClusterRouter, node: str, message_id: str,
                 env: Envelope | None = None) -> None:
        self._router = router
        self._node = node
        self._message_id = message_id
        self._env = env

    def _ack(self) -> None:
        env = self._env
        if env is not None:
            ack = env.ack
            if ack is not None:
                env.ack = None
                ack()

    def set_value(self, value: Any) -> None:
        try:
            frame = encode_reply(self._message_id, True, value)
        except CodecError as exc:
            self.set_error(TekTreeError(f"reply could not be encoded: {exc}"))
            return
        self._ack()
        self._router.sink.send(self._node, REPLY_FRAME + frame)

    def set_error(self, error: BaseException) -> None:
        if not isinstance(error, ActorFailed):
            error = ActorFailed(
                ActorId("?", "?"), type(error).__qualname__, str(error), "",
                node=self._router.node,
            )
        frame = encode_reply(self._message_id, False, error)
        self._ack()
        self._router.sink.send(self._node, REPLY_FRAME + frame)


class ClusterRouter:
    """Routes by rendezvous placement over the live members; caches homes per view version."""

    def __init__(
        self,
        system: ActorSystem,
        *,
        node: str,
        sink: FrameSink,
        leases: LeaseSource,
        members: Callable[[], tuple[int, Sequence[Member]]],
        roles: Callable[[str], str | None] = lambda kind: None,
    ) -> None:
        self.system = system
        self.node = node
        self.sink = sink
        self.leases = leases
        self._members = members
        self._roles = roles
        self._cache: dict[ActorId, str | None] = {}
        self._version = -1
        self._pending: dict[str, ReplySlot] = {}
        self.forwarded = 0
        self.malformed = 0

    # -- placement ---------------------------------------------------------------------------
    def live(self) -> set[str]:
        return {m.name for m in self._members()[1]}

    def remote_home(self, target: ActorId) -> str | None:
        version, members = self._members()
        if version != self._version:
            self._cache.clear()
            self._version = version
        cached = self._cache.get(target, _MISSING)
        if cached is _MISSING:
            if not members:
                return None  # alone (or Redis unreachable at start): serve locally
            name = home(str(target), members, role=self._roles(target.kind)).name
            cached = None if name == self.node else name
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[target] = cached
        return cached  # type: ignore[return-value]

    # -- sending -----------------------------------------------------------------------------
    def send(self, node: str, env: Envelope) -> None:
        if env.reply is not None and env.reply_to is None:
            # A local ask forwarded to another node: its reply must come back here.
            env.reply_to = self.node
            self._pending[env.message_id] = env.reply  # type: ignore[assignment]
        self.forwarded += 1
        self.sink.send(node, ENVELOPE_FRAME + encode_envelope(env))

    def full(self) -> bool:
        return self.sink.full()

    async def wait_for_room(self) -> None:
        await self.sink.wait_for_room()

    def expect_reply(self, message_id: str, slot: ReplySlot) -> None:
        self._pending[message_id] = slot

    def forget_reply(self, message_id: str) -> None:
        self._pending.pop(message_id, None)

    def reply_for(self, env: Envelope) -> RemoteReply:
        assert env.reply_to is not None
        return RemoteReply(self, env.reply_to, env.message_id, env)

    # -- leases ------------------------------------------------------------------------------
    async def acquire(self, actor_id: ActorId) -> tuple[int | None, str | None]:
        lease = await self.leases.acquire(str(actor_id))
        if lease is not None:
            return int(lease.token), None
        holder = await self.leases.holder(str(actor_id))
        if holder is None:
            return None, None  # released meanwhile: the retry takes it
        node = holder[0]
        return None, (node if node in self.live() and node != self.node else None)

    def release(self, actor_id: ActorId) -> None:
        self.leases.release_soon(str(actor_id))

    # -- inbound -----------------------------------------------------------------------------
    def _malformed(self, stream: str, entry_id: bytes, exc: CodecError) -> None:
        self.malformed += 1
        _log.warning("malformed frame skipped", stream=stream,
                     entry_id=entry_id.decode(errors="replace"), error=str(exc))
        self.sink.ack(stream, [entry_id])

    def on_frame(
        self, stream: str, entry_id: bytes, frame: bytes, *, inline: bool = False
    ) -> Awaitable[None] | None:
        """One entry of this node's inbound stream (or of a dead node's, being re-routed).

        With ``inline``, an ask for an idle local activation may come back as an awaitable that
        handles it in the awaiting task (see ``ActorSystem.deliver_inbound``): await it before
        the next frame."""
        kind, body = frame[:1], frame[1:]
        if kind == REPLY_FRAME:
            try:
                message_id, ok, value = decode_reply(body)
            except CodecError as exc:
                self._malformed(stream, entry_id, exc)
                return None
            slot = self._pending.pop(message_id, None)
            if slot is not None:
                if ok:
                    slot.set_value(value)
                else:
                    slot.set_error(value)
            self.sink.ack(stream, [entry_id])
            return None
        ack = partial(self.sink.ack, stream, [entry_id])
        try:
            if kind != ENVELOPE_FRAME:
                raise CodecError(f"frame type {kind!r} is neither an envelope nor a reply")
            env = decode_envelope(body)
        except CodecError as exc:
            self._malformed(stream, entry_id, exc)
            return None
        try:
            return self.system.deliver_inbound(env, ack, inline=inline)
        except TekTreeError as exc:
            _log.warning("inbound message refused", stream=stream, target=str(env.target),
                         error=str(exc))
            if env.reply_to is not None:
                RemoteReply(self, env.reply_to, env.message_id).set_error(exc)
            return None
