"""One open WebSocket: what it reads from the pub/sub, what it has to send, and its writer.

An idle socket owns no task of its own besides the ASGI task Hypercorn runs for it (parked in
``receive()`` for the client's next frame): its subscriptions are read with ``on_ready``
(:meth:`tektree.cluster.pubsub.PubSub.subscribe`), and the first payload that lands in an
empty queue starts a *writer* task in the hub's nursery. The writer sends until nothing is
left, then ends. So 10,000 idle sockets cost 10,000 parked ASGI tasks, not 20,000 or 30,000.

Every frame to the client goes through the writer, replies to the client's own requests
included: the ASGI task never waits on a send, so a client that stops reading cannot hold it,
and it can always be cancelled to close the socket. A socket whose client does not read is
dropped when one of its bounded queues overflows: the pub/sub drops its subscription
(``SubscriptionDropped``), or its replies pass ``max_replies``; it closes with 4408.

The ``welcome`` frame goes first: the socket subscribes before it joins its room (so it misses
nothing), and the frames published meanwhile (a room's batch showing its own join among them)
wait in its queue until the welcome is queued, so a client reads them after the welcome's
``seq``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import structlog
import trio

from gateway.ws_protocol import CLOSE_TOO_SLOW, Endpoint, TopicKind, close_reason, encode
from tektree.cluster.pubsub import PubSub, Subscription, SubscriptionDropped

if TYPE_CHECKING:
    from gateway.ws_hub import WsHub

__all__ = ["MAX_REPLIES", "WsSocket"]

#: Replies (pong, acks, errors) a socket may have unsent before it is dropped as too slow.
MAX_REPLIES: Final = 64

_log = structlog.get_logger("tektree.gateway.ws")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class WsSocket:
    """One accepted socket (see the module docstring); made and run by :class:`WsHub`."""

    __slots__ = ("closing", "endpoint", "expires_at", "feeds", "hub", "last_beat", "member_id",
                 "replies", "scope", "send", "user_id", "welcomed", "writing")

    def __init__(self, hub: WsHub, send: Send, endpoint: Endpoint, user_id: str,
                 member_id: str, expires_at: float) -> None:
        self.hub = hub
        self.send = send
        self.endpoint = endpoint
        self.user_id = user_id
        self.member_id = member_id
        self.expires_at = expires_at
        self.feeds: tuple[tuple[Subscription, TopicKind], ...] = ()
        #: Replies to send (ASGI messages), made on the first one: idle sockets have none.
        self.replies: deque[dict[str, Any]] | None = None
        self.writing = False
        #: Whether the ``welcome`` reply is queued: no pub/sub frame goes out before it.
        self.welcomed = False
        #: ``(code, reason)`` once the socket is closing; nothing more is sent but the close.
        self.closing: tuple[int, str] | None = None
        #: Around the ASGI task's receive loop: cancelled to close, its deadline is the
        #: token's expiry.
        self.scope = trio.CancelScope()
        self.last_beat = trio.current_time()

    def __repr__(self) -> str:
        return f"<WsSocket {self.endpoint.room} {self.member_id}>"

    # -- reading the pub/sub ----------------------------------------------------------------
    def subscribe(self, pubsub: PubSub, max_queue: int) -> None:
        """Subscribe to the endpoint's topics (before joining the room: no frame is missed)."""
        self.feeds = tuple(
            (pubsub.subscribe(topic.name, max_queue=max_queue, on_ready=self._ready), topic.kind)
            for topic in self.endpoint.topics)

    def unsubscribe(self) -> None:
        for subscription, _ in self.feeds:
            subscription.close()

    def _ready(self, subscription: Subscription) -> None:
        reason = subscription.dropped_reason
        if reason is not None:  # its writer may be stuck in a send: do not wait for it
            self.close_soon(CLOSE_TOO_SLOW, f"too slow: {reason}")
        elif self.welcomed:
            self._wake()

    def _wake(self) -> None:
        if not self.writing and self.closing is None:
            self.writing = True
            self.hub.spawn_writer(self)

    # -- sending ---------------------------------------------------------------------------
    def reply(self, frame: dict[str, Any]) -> None:
        """Queue a reply to the client; a client that lets them pile up is dropped."""
        if self.closing is not None:
            return
        replies = self.replies
        if replies is None:
            replies = self.replies = deque()
        if len(replies) >= MAX_REPLIES:
            self.close_soon(CLOSE_TOO_SLOW, f"too slow: {MAX_REPLIES} replies unread")
            return
        replies.append({"type": "websocket.send", "text": encode(frame)})
        if frame.get("type") == "welcome":
            self.welcomed = True
        self._wake()

    def _next_message(self) -> dict[str, Any] | None:
        """The next ASGI message to send, or None; raises ``SubscriptionDropped``."""
        replies = self.replies
        if replies:
            message = replies.popleft()
            if not replies:
                self.replies = None  # an empty deque costs ~600 bytes: idle sockets keep none
            return message
        if not self.welcomed:
            return None
        member_id, hub = self.member_id, self.hub
        for subscription, kind in self.feeds:
            while True:
                try:
                    payload = subscription.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if kind == "room" and isinstance(payload, dict) and member_id in (
                        payload.get("exclude") or ()):
                    continue
                rendered = hub.rendered(payload, kind)
                if rendered is not None:
                    return rendered
        return None

    async def write(self) -> None:
        """Send what is queued, then end (the hub starts it again when more arrives)."""
        send = self.send
        sent = 0
        try:
            while self.closing is None:
                message = self._next_message()
                if message is None:
                    break
                await send(message)
                sent += 1
        except SubscriptionDropped as exc:
            self.close_soon(CLOSE_TOO_SLOW, f"too slow: {exc.reason}")
        except Exception as exc:  # the connection went away under the send
            _log.debug("websocket send failed", room=self.endpoint.room, error=repr(exc))
            self.close_soon(CLOSE_TOO_SLOW, "send failed")
        finally:
            self.writing = False
            self.hub.frames_out += sent

    # -- closing ---------------------------------------------------------------------------
    def close_soon(self, code: int, reason: str) -> None:
        """Close with ``code`` and ``reason`` (the first call wins); the ASGI task does it."""
        if self.closing is None:
            self.closing = (code, close_reason(reason))
            self.scope.cancel()
