"""The WebSocket dialogue, sans-IO: endpoints, client frames, server frames, close codes.

No trio, no ASGI here: :func:`route` turns a socket's path and query into an
:class:`Endpoint` (or a :class:`Refusal` with its close code), :func:`parse_client_frame`
turns one received message into a :class:`ClientFrame` (or a :class:`FrameError` naming what
was wrong), and :func:`render` turns what the pub/sub carries into the JSON frame a client
reads (or ``None``: not for this kind of socket). :mod:`gateway.ws_hub` does the I/O.

Every frame is a JSON object with a ``type``. The server sends ``welcome`` once, then ``event``
frames (``event_type``, ``event_id``, ``payload``; room frames also ``room``, ``epoch`` and
``seq``; a room's presence changes come batched, one ``presence.changes`` event whose payload
is ``{"changes": [...]}``, see :mod:`actors.rooms`), and one reply per client request
(``pong``, ``presence.members``, ``ack``, ``error``), which echoes the request's ``id`` when
it had one. See the README's WebSocket section for the whole protocol.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs

from actors.leaderboard import leaderboard_topic
from actors.profile import notifications_topic
from actors.rooms import room_topic
from actors.rules import BoardNameError
from gateway.routes.gamification import board_name

__all__ = [
    "CLIENT_TYPES",
    "CLOSE_BAD_REQUEST",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_NOT_FOUND",
    "CLOSE_TOO_SLOW",
    "CLOSE_UNAUTHORIZED",
    "MAX_INFO_BYTES",
    "ClientFrame",
    "Endpoint",
    "FrameError",
    "Refusal",
    "Topic",
    "close_reason",
    "encode",
    "error_frame",
    "parse_client_frame",
    "render",
    "route",
]

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_INTERNAL_ERROR: Final = 1011
#: The socket's path or query is wrong (an unknown board, a malformed content id).
CLOSE_BAD_REQUEST: Final = 4400
#: No access token, a refused one, or the token expired while the socket was open.
CLOSE_UNAUTHORIZED: Final = 4401
#: No socket endpoint at that path.
CLOSE_NOT_FOUND: Final = 4404
#: The client did not read: its bounded queue of unsent frames overflowed.
CLOSE_TOO_SLOW: Final = 4408

#: Largest ``info`` object (presence) in bytes of JSON.
MAX_INFO_BYTES: Final = 1024
_MAX_ID_CHARS: Final = 64
_MAX_CLOSE_REASON_BYTES: Final = 123  # a close frame's payload is at most 125 bytes
_CONTENT_ID: Final = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

EndpointKind = Literal["notifications", "presence", "collaboration", "leaderboard"]
#: What a topic carries, and so how its payloads are rendered.
TopicKind = Literal["room", "notifications", "leaderboard"]

#: The client frame types each endpoint accepts.
CLIENT_TYPES: Final[Mapping[EndpointKind, frozenset[str]]] = {
    "notifications": frozenset({"ping", "presence.list"}),
    "presence": frozenset({"ping", "presence.list", "presence.update"}),
    "collaboration": frozenset({"ping", "presence.list", "presence.update", "edit"}),
    "leaderboard": frozenset({"ping", "presence.list"}),
}


def encode(frame: Mapping[str, Any]) -> str:
    """A frame as compact JSON text."""
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, default=str)


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (123 bytes of UTF-8)."""
    data = text.encode("utf-8")
    if len(data) <= _MAX_CLOSE_REASON_BYTES:
        return text
    return data[: _MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


# --------------------------------------------------------------------------- endpoints


@attrs.frozen(kw_only=True)
class Topic:
    """One pub/sub topic a socket reads, and how its payloads are rendered."""

    name: str
    kind: TopicKind


@attrs.frozen(kw_only=True)
class Endpoint:
    """What one socket is: its endpoint kind, its room, the topics it reads."""

    kind: EndpointKind
    room: str
    topics: tuple[Topic, ...]

    @property
    def accepts(self) -> frozenset[str]:
        return CLIENT_TYPES[self.kind]


class Refusal(Exception):
    """A socket that is not opened: close ``code`` with ``reason``."""

    def __init__(self, *, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


PATHS: Final = ("/ws/notifications", "/ws/presence", "/ws/collaboration/{content_id}",
                "/ws/leaderboard")


def route(path: str, query: Mapping[str, str], user_id: str,
          now: Callable[[], dt.datetime] | None = None) -> Endpoint:
    """The endpoint at ``path`` for ``user_id``; :class:`Refusal` (4404 or 4400) otherwise.

    ``query`` is the socket's query string, parsed (``board`` for the leaderboard socket).
    """
    # Notifications and leaderboard sockets read their domain topic only: their room's frames
    # are presence changes they do not show, and reading them would cost every member of a
    # 1,000-watcher board 1,000 frames per 1,000 joins.
    if path == "/ws/notifications":
        return Endpoint(kind="notifications", room=f"notifications:{user_id}", topics=(
            Topic(name=notifications_topic(user_id), kind="notifications"),))
    if path == "/ws/presence":
        return Endpoint(kind="presence", room="presence",
                        topics=(Topic(name=room_topic("presence"), kind="room"),))
    if path.startswith("/ws/collaboration/"):
        content_id = path[len("/ws/collaboration/"):]
        if not _CONTENT_ID.fullmatch(content_id):
            raise Refusal(code=CLOSE_BAD_REQUEST, reason=close_reason(
                f"content id {content_id[:40]!r} must be 1-128 of A-Z a-z 0-9 _ . : -"))
        room = f"collaboration:{content_id}"
        return Endpoint(kind="collaboration", room=room,
                        topics=(Topic(name=room_topic(room), kind="room"),))
    if path == "/ws/leaderboard":
        requested = query.get("board", "global")
        try:
            board = board_name(requested, None if now is None else now())
        except BoardNameError:
            raise Refusal(code=CLOSE_BAD_REQUEST, reason=close_reason(
                f"board {requested[:40]!r}: use global, weekly, weekly:2025-W50 "
                "or area:<id>")) from None
        return Endpoint(kind="leaderboard", room=f"leaderboard:{board}", topics=(
            Topic(name=leaderboard_topic(board), kind="leaderboard"),))
    raise Refusal(code=CLOSE_NOT_FOUND, reason=close_reason(
        f"no socket at {path[:40]}; open one of {', '.join(PATHS)}"))


# --------------------------------------------------------------------------- client frames


@attrs.frozen(kw_only=True)
class ClientFrame:
    """One valid request from a client; ``id`` (optional) is echoed in the reply."""

    type: str
    id: str | int | None = None
    info: dict[str, Any] | None = None  # presence.update
    edit: Any = None  # edit


@attrs.frozen(kw_only=True)
class FrameError:
    """A frame refused: ``error`` is a stable code, ``detail`` says what was wrong."""

    error: str
    detail: str
    id: str | int | None = None


def error_frame(error: FrameError) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "error": error.error, "detail": error.detail}
    if error.id is not None:
        frame["id"] = error.id
    return frame


def _request_id(data: Mapping[str, Any]) -> str | int | FrameError | None:
    value = data.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return FrameError(error="invalid-field", detail=f"id must be a string or an integer, "
                          f"got {type(value).__name__}")
    if isinstance(value, str) and len(value) > _MAX_ID_CHARS:
        return FrameError(error="invalid-field",
                          detail=f"id must be at most {_MAX_ID_CHARS} characters")
    return value


def _json_size(value: Any) -> int:
    return len(encode(value).encode("utf-8"))


def parse_client_frame(
    text: str | None, data: bytes | None, *, accepts: frozenset[str], max_bytes: int
) -> ClientFrame | FrameError:
    """The request in one received message, or what was wrong with it."""
    if text is None:
        size = 0 if data is None else len(data)
        return FrameError(error="binary-frame", detail=f"got a binary frame of {size} bytes; "
                          "send JSON objects as text frames")
    if len(text) > max_bytes or len(text.encode("utf-8")) > max_bytes:
        return FrameError(error="frame-too-large",
                          detail=f"a frame is at most {max_bytes} bytes of UTF-8")
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return FrameError(error="invalid-json", detail=f"not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        return FrameError(error="not-an-object",
                          detail=f"a frame is a JSON object, got {type(parsed).__name__}")
    request_id = _request_id(parsed)
    if isinstance(request_id, FrameError):
        return request_id
    kind = parsed.get("type")
    if not isinstance(kind, str) or not kind:
        return FrameError(error="missing-type", id=request_id,
                          detail="a frame needs a 'type' string, e.g. {\"type\": \"ping\"}")
    if kind not in CLIENT_TYPES["collaboration"] | CLIENT_TYPES["presence"]:
        return FrameError(error="unknown-type", id=request_id, detail=(
            f"unknown frame type {kind[:40]!r}; this socket accepts {', '.join(sorted(accepts))}"))
    if kind not in accepts:
        return FrameError(error="not-accepted-here", id=request_id, detail=(
            f"{kind!r} frames are not accepted on this socket; it accepts "
            f"{', '.join(sorted(accepts))}"))
    if kind == "presence.update":
        info = parsed.get("info")
        if not isinstance(info, dict):
            return FrameError(error="invalid-field", id=request_id,
                              detail="presence.update needs an 'info' object")
        if _json_size(info) > MAX_INFO_BYTES:
            return FrameError(error="invalid-field", id=request_id,
                              detail=f"info must be at most {MAX_INFO_BYTES} bytes of JSON")
        return ClientFrame(type=kind, id=request_id, info=info)
    if kind == "edit":
        if "edit" not in parsed:
            return FrameError(error="invalid-field", id=request_id,
                              detail="an edit frame needs an 'edit' member (any JSON value)")
        return ClientFrame(type=kind, id=request_id, edit=parsed["edit"])
    return ClientFrame(type=kind, id=request_id)


# --------------------------------------------------------------------------- server frames


def _room_event(frame: Mapping[str, Any], event_type: str, payload: Any) -> dict[str, Any]:
    room, epoch, seq = frame.get("room"), frame.get("epoch"), frame.get("seq")
    return {"type": "event", "event_type": event_type, "event_id": f"{room}:{epoch}:{seq}",
            "room": room, "epoch": epoch, "seq": seq, "payload": payload}


def _render_room(frame: Mapping[str, Any]) -> dict[str, Any] | None:
    frame_type = frame.get("type")
    if not isinstance(frame_type, str):
        return None
    if frame_type.startswith("presence."):
        payload = {key: value for key, value in frame.items()
                   if key not in ("room", "epoch", "seq", "type")}
        return _room_event(frame, frame_type, payload)
    if frame_type != "message":
        return None
    message = frame.get("payload")
    if isinstance(message, Mapping) and isinstance(message.get("event_type"), str):
        return _room_event(frame, message["event_type"], message.get("payload"))
    return _room_event(frame, "room.message", message)


def render(payload: Any, topic: TopicKind) -> dict[str, Any] | None:
    """The frame a socket shows for ``payload`` read on a ``topic`` topic; ``None`` for a
    payload it does not show."""
    if not isinstance(payload, Mapping):
        return None
    if topic == "room":
        return _render_room(payload)
    if topic == "notifications":  # a domain event envelope from the user's profile
        return {"type": "event", "event_type": payload.get("event_type"),
                "event_id": payload.get("event_id"), "timestamp": payload.get("timestamp"),
                "payload": payload.get("payload")}
    board, version = payload.get("board"), payload.get("version")
    return {"type": "event", "event_type": "leaderboard.rank.changed",
            "event_id": f"rank:{board}:{version}", "payload": payload}
