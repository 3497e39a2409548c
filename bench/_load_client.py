"""A small HTTP/1.1 keep-alive client over trio streams, for load generation.

Why not httpx: it runs on trio (through anyio) and is what the tests use, but a load generator
shares the machine's two cores with the server it measures, so every microsecond it spends per
request is taken from the server. Measured here against the bench's bare quart-trio route
(its own process, 16 connections, closed loop, three rounds each): this client spent 90-115 µs
of CPU per request and got 840-1,980 requests/s out of the route; httpx 0.29 spent 850-890 µs
and got 480-1,070/s. It speaks just what the bench needs: ``http://`` origins, keep-alive,
``Content-Length`` and chunked bodies.

:class:`Pool` holds at most ``size`` connections to one origin, opened lazily and reused; a
request waits for a free connection (time the open model counts, since latencies run from the
scheduled send time). Failures are :class:`ClientError`\\ s whose ``kind`` names what went
wrong (``connect``, ``closed``, ``protocol``), so the load report can count them by kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
import trio

__all__ = ["ClientError", "Connection", "Origin", "Pool", "Response", "parse_origin"]

_HEAD_LIMIT: Final = 64 * 1024
_RECEIVE: Final = 65536
_CRLF2: Final = b"\r\n\r\n"


class ClientError(Exception):
    """A request that got no (usable) response: ``kind`` is ``connect``, ``closed`` or
    ``protocol``."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@attrs.frozen(kw_only=True)
class Origin:
    """Where requests go: ``host``, ``port`` and the ``Host`` header naming them."""

    host: str
    port: int
    prefix: str = ""  # the base URL's path, prepended to every request target

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 80 else f"{host}:{self.port}"


def parse_origin(url: str) -> Origin:
    """The origin of a base URL like ``http://127.0.0.1:8080`` (``https`` is refused)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"the load client speaks plain HTTP/1.1: expected a base URL like "
                         f"'http://127.0.0.1:8080', got {url!r}")
    return Origin(host=parts.hostname, port=parts.port or 80, prefix=parts.path.rstrip("/"))


@attrs.frozen(kw_only=True, slots=True)
class Response:
    """A response: status, headers (names lowercased) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is a ``protocol`` :class:`ClientError`."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ClientError("protocol", f"status {self.status} body is not JSON ({exc}): "
                                          f"{self.body[:200]!r}") from None


def _request_bytes(origin: Origin, method: str, target: str, body: bytes | None,
                   headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"{method} {origin.prefix}{target} HTTP/1.1", f"Host: {origin.host_header}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


class Connection:
    """One keep-alive connection; one request at a time (the pool sees to that)."""

    def __init__(self, stream: trio.SocketStream, origin: Origin) -> None:
        self._stream = stream
        self._origin = origin
        self._buffer = bytearray()
        self.reusable = True
        self.requests = 0

    @classmethod
    async def open(cls, origin: Origin) -> Connection:
        try:
            stream = await trio.open_tcp_stream(origin.host, origin.port)
        except OSError as exc:
            raise ClientError("connect", f"{origin.host}:{origin.port}: {exc}") from None
        return cls(stream, origin)

    async def _fill(self) -> None:
        try:
            chunk = await self._stream.receive_some(_RECEIVE)
        except (trio.BrokenResourceError, OSError) as exc:
            self.reusable = False
            raise ClientError("closed", f"the connection broke: {exc}") from None
        if not chunk:
            self.reusable = False
            raise ClientError("closed", "the server closed the connection")
        self._buffer += chunk

    async def request(self, method: str, target: str, *, body: bytes | None = None,
                      headers: Iterable[tuple[str, str]] = ()) -> Response:
        """Send one request and read its whole response."""
        data = _request_bytes(self._origin, method, target, body, headers)
        self.requests += 1
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.reusable = False
            raise ClientError("closed", f"sending failed: {exc}") from None
        try:
            return await self._read_response()
        except BaseException:
            # Cancelled (a timeout) or failed mid-response: the stream is out of step.
            self.reusable = False
            raise

    async def _read_response(self) -> Response:
        buffer = self._buffer
        while (end := buffer.find(_CRLF2)) < 0:
            if len(buffer) > _HEAD_LIMIT:
                raise ClientError("protocol", f"response head over {_HEAD_LIMIT} bytes")
            await self._fill()
        head = bytes(buffer[:end]).decode("latin-1")
        del buffer[:end + 4]
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ClientError("protocol", f"bad status line {status_line!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise ClientError("protocol", f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.reusable = False
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            length = headers.get("content-length")
            if length is None or not length.isdigit():
                raise ClientError("protocol", f"status {status} response without a usable "
                                              f"Content-Length ({length!r}) nor chunked body")
            body = await self._read_exactly(int(length))
        return Response(status=status, headers=headers, body=body)

    async def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        return body

    async def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            while (eol := self._buffer.find(b"\r\n")) < 0:
                await self._fill()
            size_text = bytes(self._buffer[:eol]).split(b";", 1)[0].strip()
            del self._buffer[:eol + 2]
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ClientError("protocol", f"bad chunk size {size_text!r}") from None
            if size == 0:
                while (end := self._buffer.find(b"\r\n")) != 0:  # trailers, then a blank line
                    if end < 0:
                        await self._fill()
                    else:
                        del self._buffer[:end + 2]
                del self._buffer[:2]
                return bytes(out)
            out += await self._read_exactly(size + 2)
            del out[-2:]

    async def aclose(self) -> None:
        self.reusable = False
        await self._stream.aclose()


class Pool:
    """At most ``size`` keep-alive connections to the origin of ``base_url``.

    ``await pool.request(...)`` takes an idle connection (or opens one while fewer than ``size``
    exist, or waits for one), sends, reads the response and puts the connection back. A reused
    connection that the server had closed while idle is retried once on a fresh one (nothing
    of the response had arrived, so the server never saw the request); any other failure is a
    :class:`ClientError`.
    """

    def __init__(self, base_url: str, size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs size >= 1 connection, got {size!r}")
        self.origin = parse_origin(base_url)
        self.size = size
        self._slots = trio.Semaphore(size)
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self.connects = 0

    async def _connection(self) -> Connection:
        if self._idle:
            return self._idle.pop()
        connection = await Connection.open(self.origin)
        self.connects += 1
        self._open.add(connection)
        return connection

    async def _discard(self, connection: Connection) -> None:
        self._open.discard(connection)
        with trio.CancelScope(shield=True):
            await connection.aclose()

    async def request(self, method: str, target: str, *, body: bytes | None = None,
                      headers: Iterable[tuple[str, str]] = ()) -> Response:
        """One request on a pooled connection (see the class)."""
        async with self._slots:
            for attempt in (1, 2):
                connection = await self._connection()
                reused = connection.requests > 0
                try:
                    response = await connection.request(method, target, body=body,
                                                        headers=headers)
                except ClientError as exc:
                    await self._discard(connection)
                    if exc.kind == "closed" and reused and attempt == 1 \
                            and not connection._buffer:
                        continue
                    raise
                except BaseException:
                    await self._discard(connection)
                    raise
                if connection.reusable:
                    self._idle.append(connection)
                else:
                    await self._discard(connection)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def json(self, method: str, target: str, payload: Any = None, *,
                   token: str | None = None) -> Response:
        """A request with a JSON body (when ``payload`` is not None) and a bearer token."""
        headers: list[tuple[str, str]] = []
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers.append(("Content-Type", "application/json"))
        if token is not None:
            headers.append(("Authorization", f"Bearer {token}"))
        return await self.request(method, target, body=body, headers=headers)

    async def aclose(self) -> None:
        """Close every connection."""
        self._idle.clear()
        with trio.CancelScope(shield=True):
            for connection in list(self._open):
                await connection.aclose()
        self._open.clear()

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
