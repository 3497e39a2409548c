"""The WebSocket endpoints: a lean ASGI handler mounted beside the Quart app for ``/ws/*``.

```python
hub = WsHub(node, gateway)
asgi = hub.mount(quart_app)            # /ws/* here, everything else to Quart
binds = await nursery.start(hub.serve_http, partial(hypercorn.trio.serve, asgi, config))
```

Why not Quart's websockets: Quart runs each socket through its request context machinery, with
a task of its own per socket on top of Hypercorn's, ~37-43 KB per idle socket here; a bare ASGI
handler on the same Hypercorn costs ~22 KB, and this one keeps close to it (see
:mod:`gateway.ws_socket` for how an idle socket holds no task but its ASGI one).

A socket's life: the access token (``?access_token=``) is verified and the path routed
(:func:`gateway.ws_protocol.route`); a refusal accepts the handshake and closes at once with
4401 (token) or 4400/4404 (path) and the reason, so a browser sees why. Then the socket
subscribes to its topics, joins its ``RoomActor`` (member id ``<user id>~<random>``, one per
socket, so a user's two tabs are two members), receives a ``welcome`` frame, and reads client
frames until it closes. The token's expiry (plus the authority's leeway, the moment a REST call
with it would be refused) is the deadline of the socket's cancel scope: it closes with 4401
then. Closing leaves the room and closes the subscriptions.

Fan-out across gateway nodes: rooms and boards publish on the node's pub/sub (Redis in a
cluster), and each node's sockets read their topics there; joins, heartbeats and edits are
asks to the ``RoomActor``, wherever placement put it.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Final
from urllib.parse import parse_qsl

import attrs
import structlog
import trio
from hypercorn.typing import ASGIFramework
from prometheus_client import Counter, Gauge

from actors.rooms import ROOM_KIND, Broadcast, Heartbeat, Join, Leave, Members
from gateway.context import Gateway
from gateway.correlation import CORRELATION_HEADER, check_correlation_id, new_id
from gateway.tokens import AccessClaims, TokenError
from gateway.ws_protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_UNAUTHORIZED,
    ClientFrame,
    Endpoint,
    FrameError,
    Refusal,
    TopicKind,
    close_reason,
    encode,
    error_frame,
    parse_client_frame,
    render,
    route,
)
from gateway.ws_socket import Send, WsSocket
from tektree import Node, TekTreeError, correlation_id
from tektree.cluster.pubsub import PubSub

__all__ = ["EXTENSION", "PATH_PREFIX", "WsHub", "WsMetrics", "WsSettings", "WsStats"]

PATH_PREFIX: Final = "/ws/"
#: The hub of a node serving sockets, in ``node.system.extensions``.
EXTENSION: Final = "gateway.ws"
#: Endpoints whose members show their user to the others.
_SHOWN: Final = frozenset({"presence", "collaboration"})
_RENDER_CACHE: Final = 512
_SYNC_SECONDS: Final = 5.0
_NO_TOKEN: Final = ("missing access token: connect with ?access_token=<access token> "
                    "from POST /api/v1/auth/login")

Receive = Callable[[], Awaitable[dict[str, Any]]]

_log = structlog.get_logger("tektree.gateway.ws")


@attrs.frozen(kw_only=True)
class WsSettings:
    """How sockets behave (the gateway's ``ws_*`` options)."""

    max_queue: int = 256
    """Frames a socket's topic may hold unsent before the socket is dropped as too slow."""
    max_frame_bytes: int = 65_536
    """Largest client frame handled; a larger one gets an error frame."""
    close_timeout_seconds: float = 2.0
    """How long a close frame may wait to go out before the connection is cut."""
    heartbeat_interval_seconds: float = 5.0
    """At most one room heartbeat per socket this often, however often the client pings."""


@attrs.frozen(kw_only=True)
class WsStats:
    """A snapshot of the hub's counters (see :meth:`WsHub.stats`)."""

    open: int
    accepted: int
    refused: int
    dropped: int
    frames_in: int
    frames_out: int
    bad_frames: int


@attrs.define
class WsMetrics:
    """Open sockets and closes by code, in the node's Prometheus registry."""

    sockets: Gauge
    closed: Counter
    _by_registry: ClassVar[weakref.WeakKeyDictionary[Any, WsMetrics]] = (
        weakref.WeakKeyDictionary())

    @classmethod
    def register(cls, registry: Any) -> WsMetrics:
        known = cls._by_registry.get(registry)
        if known is None:
            known = cls._by_registry[registry] = cls(
                sockets=Gauge("tektree_ws_sockets", "Open WebSockets", ["endpoint"],
                              registry=registry),
                closed=Counter("tektree_ws_closed", "WebSockets closed, by close code",
                               ["code"], registry=registry))
        return known


class WsHub:
    """Every socket of one gateway (see the module docstring)."""

    def __init__(self, node: Node, gateway: Gateway, settings: WsSettings | None = None) -> None:
        self.node = node
        self.gateway = gateway
        self.settings = settings or WsSettings()
        self.metrics = WsMetrics.register(node.metrics)
        self.sockets: set[WsSocket] = set()
        self.frames_out = 0
        self._accepted = self._refused = self._dropped = 0
        self._frames_in = self._bad_frames = 0
        self._nursery: trio.Nursery | None = None
        self._app: ASGIFramework | None = None
        self._cache: dict[tuple[int, TopicKind], tuple[Any, dict[str, Any] | None]] = {}

    def stats(self) -> WsStats:
        return WsStats(open=len(self.sockets), accepted=self._accepted, refused=self._refused,
                       dropped=self._dropped, frames_in=self._frames_in,
                       frames_out=self.frames_out, bad_frames=self._bad_frames)

    def mount(self, app: ASGIFramework) -> ASGIFramework:
        """An ASGI app serving ``/ws/*`` sockets here and everything else with ``app``."""
        self._app = app
        asgi: ASGIFramework = self.serve  # type: ignore[assignment]
        return asgi

    async def serve_http(
        self, server: Callable[..., Awaitable[Any]], *, task_status: trio.TaskStatus[Any]
    ) -> None:
        """Run ``server(task_status=...)`` (Hypercorn serving :meth:`mount`'s app) with the
        writers' nursery around it; when the node stops, close every socket with 1001 while
        the server drains its connections."""
        extensions = self.node.system.extensions
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            extensions[EXTENSION] = self  # for /metrics-like readers and tests: stats()
            nursery.start_soon(self._close_at_stop)
            try:
                await server(task_status=task_status)
            finally:
                self._nursery = None
                if extensions.get(EXTENSION) is self:
                    del extensions[EXTENSION]
                nursery.cancel_scope.cancel()

    async def _close_at_stop(self) -> None:
        await self.node.stopping.wait()
        for sock in list(self.sockets):
            sock.close_soon(CLOSE_GOING_AWAY, "the server is shutting down")

    def spawn_writer(self, sock: WsSocket) -> None:
        nursery = self._nursery
        if nursery is None:
            sock.writing = False
            sock.close_soon(CLOSE_GOING_AWAY, "the server is shutting down")
            return
        nursery.start_soon(sock.write)

    def rendered(self, payload: Any, topic: TopicKind) -> dict[str, Any] | None:
        """``payload`` as the ASGI ``websocket.send`` message a socket sends: encoded once,
        and the same message (read-only) for every socket of this node, since the pub/sub
        hands them all the same payload object."""
        key = (id(payload), topic)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is payload:
            return hit[1]
        frame = render(payload, topic)
        message = None if frame is None else {"type": "websocket.send", "text": encode(frame)}
        cache = self._cache
        cache[key] = (payload, message)  # the payload is kept: its id is not reused meanwhile
        if len(cache) > _RENDER_CACHE:
            del cache[next(iter(cache))]
        return message

    # -- one socket ------------------------------------------------------------------------
    def _admit(self, scope: Mapping[str, Any]) -> tuple[AccessClaims, Endpoint, PubSub]:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        token = query.get("access_token")
        if not token:
            raise Refusal(code=CLOSE_UNAUTHORIZED, reason=_NO_TOKEN)
        try:
            claims = self.gateway.tokens.verify_access(token)
        except TokenError as exc:
            raise Refusal(code=CLOSE_UNAUTHORIZED, reason=close_reason(
                f"access token refused ({exc.reason}): {exc.detail}")) from None
        endpoint = route(scope["path"], query, claims.user_id)
        pubsub = self.node.system.extensions.get("pubsub")
        if pubsub is None:
            raise Refusal(code=CLOSE_INTERNAL_ERROR, reason="no pub/sub on this node: run the "
                          "'cluster' service before the gateway")
        return claims, endpoint, pubsub  # type: ignore[return-value]

    async def _refuse(self, send: Send, refusal: Refusal) -> None:
        self._refused += 1
        self.metrics.closed.labels(str(refusal.code)).inc()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": refusal.code, "reason": refusal.reason})

    async def serve(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """The mounted ASGI app: a ``/ws/*`` socket is served here, from its handshake to its
        close (in its ASGI task: no frame of a wrapper stays on an idle socket's stack)."""
        if scope["type"] != "websocket" or not scope["path"].startswith(PATH_PREFIX):
            app: Any = self._app
            await app(scope, receive, send)
            return
        sock = await self._open(scope, receive, send)
        if sock is None:
            return
        gone = False
        try:
            with sock.scope:
                await self._welcome(sock)
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        gone = True
                        break
                    await self._handle(sock, message)
            if sock.scope.cancelled_caught and sock.closing is None:
                sock.closing = (CLOSE_UNAUTHORIZED, "access token expired: reconnect with a "
                                "fresh one (POST /api/v1/auth/refresh)")
        except TekTreeError as exc:  # the room could not be joined
            room = sock.endpoint.room
            _log.warning("websocket room unavailable", room=room, error=str(exc))
            sock.closing = sock.closing or (CLOSE_INTERNAL_ERROR, close_reason(
                f"room {room} unavailable: {type(exc).__name__}"))
        finally:
            sock.unsubscribe()
            self.sockets.discard(sock)
            self.metrics.sockets.labels(sock.endpoint.kind).dec()
            with trio.CancelScope(shield=True), \
                    trio.move_on_after(self.settings.close_timeout_seconds):
                await self._leave(sock)
                if not gone:
                    await self._close(sock, send)
            code = 1000 if sock.closing is None else sock.closing[0]
            self.metrics.closed.labels(str(code)).inc()

    async def _open(self, scope: dict[str, Any], receive: Receive, send: Send
                    ) -> WsSocket | None:
        """The handshake: the accepted socket, subscribed and counted; None when refused.

        (A function of its own, so that its temporaries do not live as long as the socket.)
        """
        if (await receive())["type"] != "websocket.connect":
            return None
        headers = dict(scope.get("headers") or ())
        cid = headers.get(CORRELATION_HEADER.lower().encode())
        correlation_id.set(check_correlation_id(cid.decode("latin-1"))[0] if cid else new_id())
        try:
            claims, endpoint, pubsub = self._admit(scope)
        except Refusal as refusal:
            await self._refuse(send, refusal)
            return None
        await send({"type": "websocket.accept"})
        # The query carried the token (~700 bytes) and has been read (and the accept logged):
        # the scope, which Hypercorn keeps as long as the socket, does not keep it.
        scope["query_string"] = b""
        sock = WsSocket(self, send, endpoint, claims.user_id,
                        f"{claims.user_id}~{secrets.token_hex(4)}", claims.expires_at)
        # The socket closes when a REST call with its token would be refused.
        tokens = self.gateway.tokens
        sock.scope.deadline = trio.current_time() + (
            claims.expires_at + tokens.leeway_seconds - tokens.clock())
        sock.subscribe(pubsub, self.settings.max_queue)
        # In a cluster, frames from other nodes arrive once Redis has our SUBSCRIBE: wait for
        # it, so the socket misses nothing published after its welcome (bounded: a Redis
        # that is down delays the handshake, it does not hang it).
        try:
            with trio.move_on_after(_SYNC_SECONDS):
                await pubsub.wait_synced()
        except BaseException:
            sock.unsubscribe()
            raise
        self.sockets.add(sock)
        self.metrics.sockets.labels(endpoint.kind).inc()
        self._accepted += 1
        return sock

    async def _welcome(self, sock: WsSocket) -> None:
        joined = await self._join(sock)
        sock.reply({"type": "welcome", "room": sock.endpoint.room, "member_id": sock.member_id,
                    "user_id": sock.user_id, "epoch": joined["epoch"], "seq": joined["seq"],
                    "expires_at": sock.expires_at})

    async def _close(self, sock: WsSocket, send: Send) -> None:
        code, reason = sock.closing or (1000, "")
        if code == 4408:
            self._dropped += 1
            _log.info("websocket dropped", room=sock.endpoint.room, member_id=sock.member_id,
                      reason=reason)
        sock.closing = (code, reason)
        await send({"type": "websocket.close", "code": code, "reason": reason})

    def _room(self, sock: WsSocket) -> Any:
        return self.node.system.ref(ROOM_KIND, sock.endpoint.room)

    def _info(self, sock: WsSocket) -> dict[str, Any]:
        """What a member shows the others: its user (none on a user's own notifications or a
        board: nobody lists those members but the user, and it costs every idle socket)."""
        return {"user_id": sock.user_id} if sock.endpoint.kind in _SHOWN else {}

    async def _join(self, sock: WsSocket) -> dict[str, Any]:
        reply: dict[str, Any] = await self._room(sock).ask(
            Join(member_id=sock.member_id, info=self._info(sock)))
        sock.last_beat = trio.current_time()
        return reply

    async def _leave(self, sock: WsSocket) -> None:
        try:
            await self._room(sock).tell(Leave(member_id=sock.member_id))
        except TekTreeError as exc:  # the room expires the member by itself
            _log.debug("websocket leave not sent", room=sock.endpoint.room, error=str(exc))

    async def _beat(self, sock: WsSocket, info: dict[str, Any] | None = None) -> None:
        """Keep the socket's membership alive (at most once per interval unless ``info``)."""
        now = trio.current_time()
        if info is None and now - sock.last_beat < self.settings.heartbeat_interval_seconds:
            return
        sock.last_beat = now
        if info is not None:
            info = {**info, "user_id": sock.user_id}
        known = await self._room(sock).ask(Heartbeat(member_id=sock.member_id, info=info))
        if not known["known"]:  # expired, or the room restarted: join again
            await self._room(sock).ask(Join(member_id=sock.member_id,
                                            info=info or self._info(sock)))

    async def _handle(self, sock: WsSocket, message: Mapping[str, Any]) -> None:
        self._frames_in += 1
        frame = parse_client_frame(message.get("text"), message.get("bytes"),
                                   accepts=sock.endpoint.accepts,
                                   max_bytes=self.settings.max_frame_bytes)
        if isinstance(frame, FrameError):
            self._bad_frames += 1
            sock.reply(error_frame(frame))
            return
        try:
            reply = await self._request(sock, frame)
        except TekTreeError as exc:
            reply = error_frame(FrameError(
                error="room-unavailable", id=frame.id,
                detail=f"room {sock.endpoint.room} did not answer: {type(exc).__name__}"))
        if frame.id is not None:
            reply["id"] = frame.id
        sock.reply(reply)

    async def _request(self, sock: WsSocket, frame: ClientFrame) -> dict[str, Any]:
        if frame.type == "ping":
            await self._beat(sock)
            return {"type": "pong"}
        if frame.type == "presence.list":
            members = await self._room(sock).ask(Members())
            return {"type": "presence.members", "room": sock.endpoint.room,
                    "members": [{"member_id": m["member_id"],
                                 "user_id": m["member_id"].rpartition("~")[0] or None,
                                 "info": m["info"], "joined_at": m["joined_at"]}
                                for m in members]}
        if frame.type == "presence.update":
            await self._beat(sock, frame.info)
            return {"type": "ack"}
        assert frame.type == "edit"
        seq = await self._room(sock).ask(Broadcast(
            payload={"event_type": "collaboration.edit",
                     "payload": {"member_id": sock.member_id, "user_id": sock.user_id,
                                 "edit": frame.edit}},
            exclude=(sock.member_id,)))
        sock.last_beat = trio.current_time()
        return {"type": "ack", "seq": seq}
