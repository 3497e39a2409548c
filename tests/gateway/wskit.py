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

import attrs
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
                      query: Mapping[str, str] | None = None,
                      seconds: float = FRAME_SECONDS, **kwargs: Any
                      ) -> AsyncIterator[WebSocketConnection]:
    """A client socket on ``path`` (connected and handshaken within ``seconds``); the TCP
    stream is closed on the way out.

    (``open_websocket_url`` leaks its TCP socket when the *server* closes first: trio-websocket
    waits for the server's TCP close and never closes its own end; hence our own stream.)
    """
    url = urlsplit(ws_url(base, path, token, **(query or {})))
    assert url.hostname is not None and url.port is not None
    resource = url.path + ("?" + url.query if url.query else "")
    with trio.fail_after(seconds):
        stream = await trio.open_tcp_stream(url.hostname, url.port)
    async with stream, trio.open_nursery() as nursery:
        with trio.fail_after(seconds):
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


async def presence_change(ws: WebSocketConnection, change: str, member_id: str,
                          seconds: float = FRAME_SECONDS
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The next ``presence.changes`` frame with a ``change`` entry for ``member_id``: (the
    frame, the entry)."""
    def entry(frame: Mapping[str, Any]) -> dict[str, Any] | None:
        if frame.get("type") != "event" or frame.get("event_type") != "presence.changes":
            return None
        return next((c for c in frame["payload"]["changes"]
                     if (c["change"], c["member_id"]) == (change, member_id)), None)

    frame = await frame_where(ws, lambda f: entry(f) is not None, seconds)
    found = entry(frame)
    assert found is not None
    return frame, found


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


@attrs.define
class StormSocket:
    """One socket of :func:`join_storm`: its welcome, and the members its frames showed
    (member id → the ``seq`` of the frame that showed its join)."""

    member_id: str = ""
    welcome_seq: int = 0
    seen: dict[str, int] = attrs.Factory(dict)
    frames: int = 0
    closed: tuple[int, str] | None = None
    wake: trio.CancelScope | None = None
    missing: set[str] | None = None


def joined_members(frame: Mapping[str, Any]) -> list[str]:
    """The member ids a room event frame says joined: a ``presence.changes`` batch or (what
    rooms sent before batching, for measuring a build of then) one ``presence.joined``."""
    if frame.get("type") != "event":
        return []
    payload = frame.get("payload") or {}
    if frame.get("event_type") == "presence.joined":
        return [payload["member_id"]]
    if frame.get("event_type") == "presence.changes":
        return [c["member_id"] for c in payload["changes"] if c["change"] == "joined"]
    return []


async def join_storm(base: str, tokens: list[str], *, seconds: float = 120.0,
                     path: str = "/ws/presence") -> list[StormSocket]:
    """Open one socket per token on ``path`` at once; each reads its frames until it has seen
    its own join and the join of every member welcomed with a later ``seq`` (whose join the
    room handled after its own). Then every socket is closed.

    All within ``seconds``; a socket the server closes meanwhile is recorded in ``closed``.
    """
    sockets = [StormSocket() for _ in tokens]
    counts = {"welcomed": 0, "done": 0}
    all_welcomed, all_done = trio.Event(), trio.Event()

    def count(what: str) -> None:
        counts[what] += 1
        if counts[what] == len(tokens):
            (all_welcomed if what == "welcomed" else all_done).set()

    def complete(me: StormSocket) -> bool:
        if not all_welcomed.is_set():
            return False
        if me.missing is None:  # once, then kept up to date: O(joins) per socket, not O(n²)
            me.missing = {other.member_id for other in sockets
                          if other.welcome_seq > me.welcome_seq} | {me.member_id}
            me.missing.difference_update(me.seen)
        return not me.missing

    async def one(token: str, me: StormSocket) -> None:
        welcomed = finished = False
        try:
            async with open_socket(base, path, token, seconds=seconds) as ws:
                hello = await frame_where(ws, lambda _: True, seconds)
                assert hello["type"] == "welcome", f"the first frame is not the welcome: {hello}"
                me.member_id, me.welcome_seq = hello["member_id"], hello["seq"]
                welcomed = True
                count("welcomed")
                while not complete(me):
                    me.wake = trio.CancelScope()
                    with me.wake:  # cancelled when the last socket is welcomed: re-check
                        frame = await receive(ws)
                        me.frames += 1
                        joined = joined_members(frame)
                        me.seen.update(dict.fromkeys(joined, frame.get("seq")))
                        if me.missing is not None:
                            me.missing.difference_update(joined)
                finished = True
                count("done")
                await all_done.wait()  # nobody leaves before everyone has seen everyone
        except* ConnectionClosed as group:  # raised through open_socket's nursery
            reason = next(e.reason for e in group.exceptions if isinstance(e, ConnectionClosed))
            me.closed = (reason.code, reason.reason or "")
        finally:
            if not welcomed:
                count("welcomed")
            if not finished:
                count("done")

    async def wake_all() -> None:
        await all_welcomed.wait()
        for me in sockets:
            if me.wake is not None:
                me.wake.cancel()

    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wake_all)
            for token, me in zip(tokens, sockets, strict=True):
                nursery.start_soon(one, token, me)
    return sockets
