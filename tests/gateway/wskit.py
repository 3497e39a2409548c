"""WebSocket test support: socket URLs, tokens minted with the test key, frames read with
deadlines (trio-websocket as the client, against a real Hypercorn)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from gateway.tokens import KEY_FILE, TokenAuthority, load_key

FRAME_SECONDS = 10.0
_IDS = itertools.count(1)


def ws_url(base: str, path: str, token: str | None = None, **query: str) -> str:
    """``ws://host:port<path>?access_token=...`` from an ``http://`` base URL."""
    params = dict(query)
    if token is not None:
        params["access_token"] = token
    url = base.replace("http://", "ws://", 1) + path
    return url + ("?" + urlencode(params) if params else "")


def mint_token(data_dir: Path, user_id: str, *, ttl_seconds: float = 900.0,
               issued_ago_seconds: float = 0.0) -> str:
    """An access token signed with the node's key (what login returns), optionally dated
    ``issued_ago_seconds`` in the past so that it expires soon."""
    key = load_key((data_dir / KEY_FILE).read_bytes())
    authority = TokenAuthority(key, access_ttl_seconds=ttl_seconds,
                               clock=lambda: time.time() - issued_ago_seconds)
    return authority.issue_access(user_id=user_id, role="user")[0]


@asynccontextmanager
async def open_socket(base: str, path: str, token: str | None, *,
                      query: Mapping[str, str] | None = None, **kwargs: Any
                      ) -> AsyncIterator[WebSocketConnection]:
    """A client socket on ``path``; the TCP stream is closed on the way out.

    (``open_websocket_url`` leaks its TCP socket when the *server* closes first: trio-websocket
    waits for the server's TCP close and never closes its own end; hence our own stream.)
    """
    url = urlsplit(ws_url(base, path, token, **(query or {})))
    assert url.hostname is not None and url.port is not None
    resource = url.path + ("?" + url.query if url.query else "")
    with trio.fail_after(FRAME_SECONDS):
        stream = await trio.open_tcp_stream(url.hostname, url.port)
    async with stream, trio.open_nursery() as nursery:
        with trio.fail_after(FRAME_SECONDS):
            ws = await wrap_client_stream(nursery, stream, url.hostname, resource, **kwargs)
        try:
            yield ws
        finally:
            with trio.move_on_after(FRAME_SECONDS):
                await ws.aclose()
            nursery.cancel_scope.cancel()


async def receive(ws: WebSocketConnection) -> dict[str, Any]:
    message = await ws.get_message()
    assert isinstance(message, str), message
    frame = json.loads(message)
    assert isinstance(frame, dict)
    return frame


async def frame_where(ws: WebSocketConnection, match: Callable[[dict[str, Any]], bool],
                      seconds: float = FRAME_SECONDS) -> dict[str, Any]:
    """The next frame that ``match``es (the others are skipped), within ``seconds``."""
    with trio.fail_after(seconds):
        while True:
            frame = await receive(ws)
            if match(frame):
                return frame


def of_type(kind: str, event_type: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("type") == kind and (event_type is None
                                                or f.get("event_type") == event_type)


async def welcome(ws: WebSocketConnection) -> dict[str, Any]:
    frame = await frame_where(ws, of_type("welcome"))
    return frame


async def request(ws: WebSocketConnection, frame: dict[str, Any], reply: str,
                  seconds: float = FRAME_SECONDS) -> dict[str, Any]:
    """Send ``frame`` with a fresh id; the reply of type ``reply`` that carries that id."""
    ident = f"r{next(_IDS)}"
    await ws.send_message(json.dumps({**frame, "id": ident}))
    return await frame_where(ws, lambda f: f.get("id") == ident and f["type"] in (reply, "error"),
                             seconds)


async def closed(ws: WebSocketConnection, seconds: float = FRAME_SECONDS) -> tuple[int, str]:
    """Read until the server closes the socket: its (code, reason)."""
    with trio.fail_after(seconds):
        while True:
            try:
                await ws.get_message()
            except ConnectionClosed as exc:
                return exc.reason.code, exc.reason.reason or ""
