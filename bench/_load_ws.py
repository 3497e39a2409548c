"""Each bench user's ``/ws/notifications`` socket, held open in the bench process, and the wait
for one event's frame on it: the last step of a write measured end to end.

:func:`open_notifications` connects one socket per user (``?access_token=`` from the user's
login, ``connect_concurrency`` handshakes at a time, each ready once its ``welcome`` frame is
read: from then on the socket misses nothing), and runs one reader task per socket. A reader
files every ``event`` frame by its payload's ``source_event_id`` (the id of the domain event
that caused it: for ``gamification.xp.earned``, the event the XP was paid for), with the time
it arrived; :meth:`Notifications.wait` returns when the frame of ``(user, source_event_id)``
is there, whether it arrived before the call (a push can beat the POST's own response) or
after. So writes are matched to their frames by cause, never by order.

A socket the server closes (or that breaks) is **dropped**: every wait on it, pending or later,
raises :class:`~bench._load.Failed` ``socket dropped``, and :attr:`Notifications.dropped` counts
it. The bench closes the sockets itself on the way out (not a drop).

Client: trio-websocket (wsproto), one connection and one reader task per socket. Measured here
against a raw trio stream parser, both reading frames at 200/s spread over 150 sockets from a
plain-socket server: ~170-185 us of CPU per frame against ~110 us (most of either is trio's
wake-up per frame), i.e. ~1.5% of a core more at 200 writes/s: not worth a hand-written client.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlencode

import attrs
import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, wrap_client_stream

from bench._load import Failed
from bench._load_api import User
from bench._load_client import parse_origin

__all__ = ["PATH", "Notifications", "open_notifications"]

PATH: Final = "/ws/notifications"
#: The error kind of a wait whose socket was closed under it.
DROPPED: Final = "socket dropped"


@attrs.define(eq=False)
class _Socket:
    user: User
    ws: WebSocketConnection | None = None
    stream: trio.SocketStream | None = None  # closed by us: trio-websocket may leave it open
    #: source_event_id -> trio time the frame arrived, for frames nobody waits for yet.
    arrived: dict[str, float] = attrs.Factory(dict)
    waiting: dict[str, trio.Event] = attrs.Factory(dict)
    dropped: str | None = None  # why, once dropped


@attrs.define(eq=False)
class Notifications:
    """The users' notification sockets (see the module); made by :func:`open_notifications`."""

    sockets: dict[str, _Socket] = attrs.Factory(dict)  # by uid
    frames: int = 0  # event frames read, on every socket
    matched: int = 0  # frames a wait took
    dropped: int = 0  # sockets the server closed or that broke
    closing: bool = False

    async def wait(self, user: User, source_event_id: str) -> float:
        """The trio time the frame caused by ``source_event_id`` arrived on ``user``'s socket
        (waiting for it if it has not); ``Failed("socket dropped")`` if the socket is gone."""
        sock = self.sockets[user.uid]
        at = sock.arrived.pop(source_event_id, None)
        if at is None:
            if sock.dropped is not None:
                raise Failed(DROPPED, f"{user.handle}'s socket: {sock.dropped}")
            event = sock.waiting[source_event_id] = trio.Event()
            try:
                await event.wait()
            finally:
                del sock.waiting[source_event_id]
            at = sock.arrived.pop(source_event_id, None)
            if at is None:  # woken by the drop
                raise Failed(DROPPED, f"{user.handle}'s socket: {sock.dropped}")
        self.matched += 1
        return at

    @property
    def unclaimed(self) -> int:
        """Frames filed that no wait took (late pushes of writes that timed out, and events
        the bench does not wait for, such as an achievement's XP)."""
        return sum(len(s.arrived) for s in self.sockets.values())

    def _file(self, sock: _Socket, frame: Any) -> None:
        if not isinstance(frame, dict) or frame.get("type") != "event":
            return  # the welcome, pongs
        self.frames += 1
        payload = frame.get("payload")
        cause = payload.get("source_event_id") if isinstance(payload, dict) else None
        if not isinstance(cause, str):
            return
        sock.arrived[cause] = trio.current_time()
        event = sock.waiting.get(cause)
        if event is not None:
            event.set()

    def _drop(self, sock: _Socket, why: str) -> None:
        if self.closing or sock.dropped is not None:
            return
        sock.dropped = why
        self.dropped += 1
        for event in sock.waiting.values():
            event.set()

    async def _read(self, sock: _Socket) -> None:
        assert sock.ws is not None
        try:
            while True:
                self._file(sock, json.loads(await sock.ws.get_message()))
        except ConnectionClosed as exc:
            reason = exc.reason
            self._drop(sock, "closed" if reason is None
                       else f"closed ({reason.code} {reason.reason or ''})")
        except (trio.BrokenResourceError, ValueError) as exc:
            self._drop(sock, repr(exc))


async def _connect(nursery: trio.Nursery, base_url: str, sock: _Socket,
                   seconds: float) -> None:
    """Open ``sock``'s socket and read up to its welcome frame (within ``seconds``)."""
    origin = parse_origin(base_url)
    target = f"{origin.prefix}{PATH}?{urlencode({'access_token': sock.user.token})}"
    with trio.fail_after(seconds):
        stream = await trio.open_tcp_stream(origin.host, origin.port)
        try:
            ws = await wrap_client_stream(nursery, stream, origin.host, target)
        except HandshakeError:
            await stream.aclose()
            raise
        first = json.loads(await ws.get_message())
    if not isinstance(first, dict) or first.get("type") != "welcome":
        raise RuntimeError(f"{sock.user.handle}'s {PATH} socket opened with {first!r:.200}, "
                           "expected a welcome frame")
    sock.ws, sock.stream = ws, stream


@asynccontextmanager
async def open_notifications(base_url: str, users: Sequence[User], *,
                             connect_concurrency: int = 16, seconds: float = 60.0,
                             close_seconds: float = 5.0) -> AsyncIterator[Notifications]:
    """Every user's ``/ws/notifications`` socket open and read (see the module), all within
    ``seconds`` (a ``trio.TooSlowError`` past it); closed on the way out."""
    notes = Notifications({user.uid: _Socket(user) for user in users})
    room = trio.Semaphore(connect_concurrency)
    async with trio.open_nursery() as nursery:
        async def connect(sock: _Socket) -> None:
            async with room:
                await _connect(nursery, base_url, sock, seconds)
            nursery.start_soon(notes._read, sock)

        try:
            with trio.fail_after(seconds):
                async with trio.open_nursery() as connecting:
                    for sock in notes.sockets.values():
                        connecting.start_soon(connect, sock)
            yield notes
        finally:
            notes.closing = True
            with trio.move_on_after(close_seconds) as scope:
                scope.shield = True
                async with trio.open_nursery() as closing:
                    for sock in notes.sockets.values():
                        if sock.ws is not None:
                            closing.start_soon(sock.ws.aclose)
            for sock in notes.sockets.values():
                if sock.stream is not None:
                    with trio.CancelScope(shield=True):
                        await sock.stream.aclose()
            nursery.cancel_scope.cancel()
