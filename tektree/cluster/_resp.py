"""A lean RESP2 client on trio, for the transport's hot paths.

coredis spends ~100-300 us of Python per command (connection pool, command objects, response
callbacks); Redis itself answers in ~20 us. This module is the minimum: a sans-IO
:class:`RespParser` (bytes in, replies out), :func:`encode_command`, and :class:`RespConnection`,
one socket with :meth:`~RespConnection.execute` and :meth:`~RespConnection.pipeline` (one
``send_all``, then every reply).

Replies map to Python as: simple string → ``str``, error → :class:`RespError` (returned inside
pipelines and arrays, raised by ``execute``), integer → ``int``, bulk string → ``bytes`` (``None``
for nil), array → ``list`` (nested; ``None`` for a nil array).

A connection serves one command or pipeline at a time (a lock orders concurrent callers). A
blocking command (``XREADGROUP ... BLOCK``) holds it for as long as it blocks: give blocking
readers their own connection. Any transport failure, and any cancellation in the middle of a
command, closes the socket (its replies can no longer be matched to requests) and raises
:class:`RespConnectionError` (a ``ConnectionError``, hence an ``OSError`` with no errno: what
``RedisLink.call`` retries); the next call reconnects.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trio

__all__ = [
    "HiredisParser",
    "RespArg",
    "RespConnection",
    "RespConnectionError",
    "RespError",
    "RespParser",
    "RespProtocolError",
    "encode_command",
    "wire_parser",
]

RespArg = bytes | str | int | float

try:
    import hiredis as _hiredis_module  # noqa: F401  (optional: C RESP parsing for RespWire)
except ImportError:  # pragma: no cover - hiredis is a declared dependency
    _HIREDIS = False
else:
    _HIREDIS = True

_NEED_MORE: Any = object()
_CRLF = b"\r\n"


class RespError(Exception):
    """An error reply, e.g. ``NOSCRIPT No matching script``; ``kind`` is its first word."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = message.split(" ", 1)[0]


class RespConnectionError(ConnectionError):
    """The connection to Redis failed or was lost (closed; the next call reconnects)."""


class RespProtocolError(RespConnectionError):
    """Redis sent something that is not RESP2 (the connection is closed)."""


class _Incomplete(Exception):
    pass


class RespParser:
    """Sans-IO RESP2 parser: :meth:`feed` bytes, then :meth:`get` replies until it says none.

    ``simple_as_bytes`` returns simple strings (``+OK``) as ``bytes``, as :class:`HiredisParser`
    does, instead of ``str``."""

    __slots__ = ("_buf", "_pos", "_text")

    def __init__(self, *, simple_as_bytes: bool = False) -> None:
        self._buf = b""
        self._pos = 0
        self._text = not simple_as_bytes

    def feed(self, data: bytes) -> None:
        if self._pos:
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        else:
            self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def get(self) -> tuple[bool, Any]:
        """``(True, reply)`` for the next complete reply, or ``(False, None)`` for none yet."""
        buf = self._buf
        if self._pos >= len(buf):
            return False, None
        try:
            value, pos = _parse(buf, self._pos, len(buf), self._text)
        except _Incomplete:
            return False, None
        if pos >= len(buf):
            self._buf = b""
            self._pos = 0
        else:
            self._pos = pos
        return True, value

    def take_all(self) -> list[Any]:
        """Every complete reply buffered (possibly none), in order."""
        buf = self._buf
        pos = self._pos
        size = len(buf)
        text = self._text
        replies: list[Any] = []
        try:
            while pos < size:
                value, pos = _parse(buf, pos, size, text)
                replies.append(value)
        except _Incomplete:
            pass
        if pos >= size:
            self._buf = b""
            self._pos = 0
        else:
            self._pos = pos
        return replies


def _parse(buf: bytes, pos: int, size: int, text: bool = True) -> tuple[Any, int]:
    """One reply starting at ``pos``: ``(value, position after it)``; ``_Incomplete`` if cut."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        length = int(buf[pos + 1 : end])
        if length < 0:
            return None, end + 2
        start = end + 2
        stop = start + length
        if stop + 2 > size:
            raise _Incomplete
        return buf[start:stop], stop + 2
    if kind == 42:  # * array
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        pos = end + 2
        items: list[Any] = []
        append = items.append
        for _ in range(count):
            # Inline the common case (a complete bulk string) to spare a call per element.
            if pos < size and buf[pos] == 36:
                end = buf.find(_CRLF, pos)
                if end < 0:
                    raise _Incomplete
                length = int(buf[pos + 1 : end])
                if length >= 0:
                    start = end + 2
                    stop = start + length
                    if stop + 2 > size:
                        raise _Incomplete
                    append(buf[start:stop])
                    pos = stop + 2
                    continue
            item, pos = _parse(buf, pos, size, text)
            append(item)
        return items, pos
    if kind == 43:  # + simple string
        if not text:
            return buf[pos + 1 : end], end + 2
        return buf[pos + 1 : end].decode(errors="replace"), end + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        return RespError(buf[pos + 1 : end].decode(errors="replace")), end + 2
    raise RespProtocolError(f"unexpected RESP type byte {bytes([kind])!r} at offset {pos}")


class HiredisParser:
    """:class:`RespParser`'s :meth:`~RespParser.feed` and :meth:`~RespParser.take_all` on
    ``hiredis.Reader`` (C): simple strings come back as ``bytes``, errors as :class:`RespError`
    values, bad bytes raise :class:`RespProtocolError`. Needs the ``hiredis`` package."""

    __slots__ = ("_gets", "feed")

    def __init__(self) -> None:
        import hiredis

        reader = hiredis.Reader(protocolError=RespProtocolError, replyError=RespError)
        self.feed: Callable[[bytes], None] = reader.feed
        self._gets: Callable[[], Any] = reader.gets

    def take_all(self) -> list[Any]:
        """Every complete reply buffered (possibly none), in order."""
        gets = self._gets
        replies: list[Any] = []
        while (reply := gets()) is not False:
            replies.append(reply)
        return replies


def wire_parser() -> HiredisParser | RespParser:
    """The fastest parser at hand with simple strings as ``bytes``: :class:`HiredisParser`, or
    :class:`RespParser` when ``hiredis`` is not installed."""
    if _HIREDIS:
        return HiredisParser()
    return RespParser(simple_as_bytes=True)


def _arg(arg: RespArg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):
        raise TypeError("booleans are not Redis arguments; pass 0/1 or a string")
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, float):
        return repr(arg).encode()
    if isinstance(arg, (bytearray, memoryview)):
        return bytes(arg)
    raise TypeError(f"cannot send {type(arg).__name__} to Redis: {arg!r}")


def encode_command(args: Sequence[RespArg]) -> bytes:
    """``*N\\r\\n`` then ``$len\\r\\narg\\r\\n`` per argument."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if type(arg) is bytes else _arg(arg)
        parts.append(b"$%d\r\n" % len(data))
        parts.append(data)
        parts.append(_CRLF)
    return b"".join(parts)


class _Target:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.scheme = parts.scheme
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        db: str | None = None
        if parts.scheme == "unix":
            self.path = parts.path
            self.host, self.port = "", 0
        elif parts.scheme in ("redis", "rediss"):
            self.path = ""
            self.host = parts.hostname or "localhost"
            self.port = parts.port or 6379
            if parts.path and parts.path != "/":
                db = parts.path.lstrip("/")
        else:
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} in {url!r}")
        db = query.get("db", [db])[0] if db is None else db
        self.db = int(db) if db else 0
        if "password" in query and self.password is None:
            self.password = query["password"][0]

    def hello(self) -> list[list[RespArg]]:
        """The commands that set a new connection up: AUTH, SELECT (as the URL says)."""
        hello: list[list[RespArg]] = []
        if self.password is not None:
            if self.username:
                hello.append(["AUTH", self.username, self.password])
            else:
                hello.append(["AUTH", self.password])
        if self.db:
            hello.append(["SELECT", self.db])
        return hello


class RespConnection:
    """One connection to the Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``),
    opened on first use and re-opened after a failure. AUTH and SELECT come from the URL."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0,
                 receive_size: int = 262_144) -> None:
        self.url = url
        self._target = _Target(url)
        self.connect_timeout = connect_timeout
        self.receive_size = receive_size
        self._stream: trio.abc.Stream | None = None
        self._parser = RespParser()
        self._lock = trio.Lock()
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._stream is not None

    async def _connect(self) -> trio.abc.Stream:
        target = self._target
        try:
            with trio.fail_after(self.connect_timeout):
                if target.scheme == "unix":
                    stream: trio.abc.Stream = await trio.open_unix_socket(target.path)
                elif target.scheme == "rediss":
                    stream = await trio.open_ssl_over_tcp_stream(
                        target.host, target.port, ssl_context=ssl.create_default_context()
                    )
                else:
                    stream = await trio.open_tcp_stream(target.host, target.port)
        except (OSError, trio.TooSlowError) as exc:
            raise RespConnectionError(
                f"cannot connect to Redis at {target.host or target.path}:{target.port}: {exc}"
            ) from exc
        self._stream = stream
        self._parser = RespParser()
        hello = target.hello()
        if hello:
            for reply in await self._roundtrip(stream, hello):
                if isinstance(reply, RespError):
                    await self._drop()
                    raise RespConnectionError(f"Redis refused the connection setup: {reply}")
        return stream

    async def _drop(self) -> None:
        stream, self._stream = self._stream, None
        self._parser = RespParser()
        if stream is not None:
            await trio.aclose_forcefully(stream)

    async def _roundtrip(
        self, stream: trio.abc.Stream, commands: Sequence[Sequence[RespArg]],
        on_reply: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        payload = b"".join([encode_command(command) for command in commands])
        await stream.send_all(payload)
        parser = self._parser
        replies: list[Any] = []
        want = len(commands)
        while True:
            while True:
                got, reply = parser.get()
                if not got:
                    break
                replies.append(reply)
                if on_reply is not None:
                    on_reply(len(replies) - 1, reply)
                if len(replies) == want:
                    return replies
            data = await stream.receive_some(self.receive_size)
            if not data:
                raise RespConnectionError("Redis closed the connection")
            parser.feed(bytes(data))

    async def pipeline(
        self, commands: Sequence[Sequence[RespArg]],
        on_reply: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """Send ``commands`` at once, return their replies in order (errors as
        :class:`RespError` values, not raised). ``on_reply(index, reply)`` is called as each
        arrives (e.g. to learn that the commands before a blocking one are done)."""
        if not commands:
            return []
        async with self._lock:
            if self._closed:
                raise RespConnectionError("the connection was closed")
            stream = self._stream
            if stream is None:
                stream = await self._connect()
            try:
                return await self._roundtrip(stream, commands, on_reply)
            except RespConnectionError:
                await self._drop()
                raise
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await self._drop()
                raise RespConnectionError(f"connection to Redis lost: {exc!r}") from exc
            except BaseException:
                # Cancelled (or worse) mid-command: replies may still come; start afresh.
                with trio.CancelScope(shield=True):
                    await self._drop()
                raise

    async def execute(self, *args: RespArg) -> Any:
        """One command; an error reply is raised as :class:`RespError`."""
        reply = (await self.pipeline([args]))[0]
        if isinstance(reply, RespError):
            raise reply
        return reply

    async def disconnect(self) -> None:
        """Close the socket now; the next call opens a new one."""
        await self._drop()

    async def aclose(self) -> None:
        """Close for good: later calls raise :class:`RespConnectionError`."""
        self._closed = True
        await self._drop()

    async def __aenter__(self) -> RespConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
