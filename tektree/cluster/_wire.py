"""A RESP connection driven without a task, a lock or a checkpoint: the transport's hot paths.

:class:`~tektree.cluster._resp.RespConnection` is a clean async client, but each of its round
trips costs several trio scheduler passes (``send_all`` and ``receive_some`` each end with a
checkpoint, a wait re-arms the fd in epoll): ~50 us of Python per round trip on these machines,
more than Redis spends on the command. A :class:`RespWire` splits the round trip instead:

- :meth:`~RespWire.write_nowait` hands the bytes to the kernel at once, from whichever task is
  sending (an asker, a handler replying): no task wakes to write a single frame. What the kernel
  does not take (a full socket buffer) stays in :attr:`~RespWire.unsent` for :meth:`drain`.
- :meth:`~RespWire.read_nowait` returns every complete reply already received, without waiting;
  :meth:`~RespWire.wait_readable` parks until more bytes arrive.

Pairing replies with requests is the caller's job (replies come in request order). Replies are
parsed by ``hiredis`` when it is installed (:func:`~tektree.cluster._resp.wire_parser`); simple
strings come back as ``bytes`` either way. Any socket
failure closes the wire and raises :class:`RespConnectionError`; :meth:`connect` opens a new one.
Sockets are the standard library's, non-blocking, with ``TCP_NODELAY`` on TCP; ``rediss://``
wraps them in a non-blocking :class:`ssl.SSLSocket`.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

import trio

from tektree.cluster._resp import (
    RespArg,
    RespConnectionError,
    RespError,
    _Target,
    encode_command,
    wire_parser,
)

__all__ = ["RespWire"]

_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class RespWire:
    """One socket to the Redis at ``url``; AUTH and SELECT come from the URL."""

    __slots__ = (
        "_low_water", "_parser", "_sock", "_target", "connect_timeout", "receive_size", "unsent",
        "url",
    )

    def __init__(self, url: str, *, connect_timeout: float = 2.0,
                 receive_size: int = 262_144) -> None:
        self.url = url
        self._target = _Target(url)
        self.connect_timeout = connect_timeout
        self.receive_size = receive_size
        self._sock: socket.socket | None = None
        self._low_water = 0  # SO_RCVLOWAT in force: 1 and up on plain TCP; 0: not TCP
        self._parser = wire_parser()
        #: Bytes accepted by :meth:`write_nowait` that the kernel did not take yet.
        self.unsent = b""

    @property
    def connected(self) -> bool:
        return self._sock is not None

    async def connect(self) -> None:
        """Open the socket (closing any previous one), then AUTH / SELECT as the URL says."""
        self.close()
        target = self._target
        try:
            with trio.fail_after(self.connect_timeout):
                if target.scheme == "unix":
                    stream = await trio.open_unix_socket(target.path)
                else:
                    stream = await trio.open_tcp_stream(target.host, target.port)
                family, kind = stream.socket.family, stream.socket.type
                sock = socket.socket(family, kind, fileno=stream.socket.detach())
                sock.setblocking(False)
                self._low_water = 0
                if family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._low_water = 1
                self._sock = sock
                if target.scheme == "rediss":
                    self._low_water = 0  # TLS records: raw bytes are not reply bytes
                    await self._handshake(target.host)
                hello = target.hello()
                if hello:
                    for reply in await self.roundtrip(hello):
                        if isinstance(reply, RespError):
                            raise RespConnectionError(
                                f"Redis refused the connection setup: {reply}"
                            )
        except (OSError, trio.TooSlowError) as exc:
            self.close()
            if isinstance(exc, RespConnectionError):
                raise
            raise RespConnectionError(
                f"cannot connect to Redis at {target.host or target.path}:{target.port}: {exc}"
            ) from exc
        except BaseException:
            self.close()
            raise

    async def _handshake(self, host: str) -> None:
        assert self._sock is not None
        tls = ssl.create_default_context().wrap_socket(
            self._sock, server_hostname=host, do_handshake_on_connect=False
        )
        self._sock = tls
        while True:
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(tls)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(tls)

    def close(self) -> None:
        """Close the socket now (a task waiting on it is woken with an error)."""
        sock, self._sock = self._sock, None
        self._parser = wire_parser()
        self.unsent = b""
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    def _lost(self, why: str, exc: BaseException | None = None) -> RespConnectionError:
        self.close()
        error = RespConnectionError(f"connection to Redis lost: {why}")
        error.__cause__ = exc
        return error

    # -- writing ----------------------------------------------------------------------------

    def write_nowait(self, payload: bytes) -> None:
        """Send ``payload`` now, or as much of it as the kernel takes (the rest goes to
        :attr:`unsent`, after anything already there: order is kept)."""
        sock = self._sock
        if sock is None:
            raise RespConnectionError("not connected to Redis")
        if self.unsent:
            self.unsent += payload
            return
        try:
            sent = sock.send(payload)
        except _WOULD_BLOCK:
            sent = 0
        except OSError as exc:
            raise self._lost(repr(exc), exc) from exc
        if sent < len(payload):
            self.unsent = payload[sent:]

    async def drain(self) -> None:
        """Send :attr:`unsent` (waiting for room in the socket buffer as needed)."""
        while self.unsent:
            sock = self._sock
            if sock is None:
                raise RespConnectionError("not connected to Redis")
            try:
                sent = sock.send(self.unsent)
            except _WOULD_BLOCK:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                raise self._lost(repr(exc), exc) from exc
            self.unsent = self.unsent[sent:]

    # -- reading ----------------------------------------------------------------------------

    @property
    def low_water(self) -> bool:
        """Whether :meth:`wake_at` works here (plain TCP; Linux honours ``SO_RCVLOWAT`` in
        ``epoll`` for TCP, not for Unix sockets)."""
        return self._low_water > 0

    def wake_at(self, size: int) -> None:
        """Let :meth:`wait_readable` wake only once ``size`` bytes are in (``SO_RCVLOWAT``;
        a no-op where :attr:`low_water` is false; a syscall only when the mark changes). For
        a write whose first replies are known to be shorter than ``size`` while all of them
        are not: those replies then cost no wake of their own. Never more than the replies
        will hold: a wait would not end."""
        sock = self._sock
        if sock is not None and self._low_water and size != self._low_water:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(size, 1))
            self._low_water = max(size, 1)

    def wake_now(self) -> None:
        """Undo :meth:`wake_at`: a task in :meth:`wait_readable` wakes if any byte is in
        (Linux signals readiness when the mark is lowered)."""
        self.wake_at(1)

    def read_nowait(self) -> list[Any]:
        """Every complete reply received so far (possibly none), without waiting."""
        sock = self._sock
        if sock is None:
            raise RespConnectionError("not connected to Redis")
        parser = self._parser
        size = self.receive_size
        while True:
            try:
                data = sock.recv(size)
            except _WOULD_BLOCK:
                break
            except OSError as exc:
                raise self._lost(repr(exc), exc) from exc
            if not data:
                raise self._lost("Redis closed the connection")
            parser.feed(data)
            if len(data) < size and not isinstance(sock, ssl.SSLSocket):
                break  # the kernel had no more: spare the recv that would say so
        try:
            return parser.take_all()
        except RespConnectionError as exc:  # not RESP: the stream cannot be re-synced
            raise self._lost(str(exc), exc) from exc

    async def wait_readable(self) -> None:
        """Park until bytes arrive (or the socket fails or is closed)."""
        sock = self._sock
        if sock is None:
            raise RespConnectionError("not connected to Redis")
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            await trio.lowlevel.checkpoint()
            return
        try:
            await trio.lowlevel.wait_readable(sock)
        except trio.ClosedResourceError as exc:
            raise RespConnectionError("the connection was closed meanwhile") from exc

    async def roundtrip(self, commands: Sequence[Sequence[RespArg]]) -> list[Any]:
        """Send ``commands`` and wait for all their replies (nothing else may be in flight)."""
        self.write_nowait(b"".join([encode_command(c) for c in commands]))
        await self.drain()
        replies: list[Any] = []
        while True:
            replies.extend(self.read_nowait())
            if len(replies) >= len(commands):
                return replies
            await self.wait_readable()
