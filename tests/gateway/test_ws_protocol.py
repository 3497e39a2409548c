"""The sans-IO WebSocket dialogue: routing, client frames, server frames, close reasons."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from gateway.ws_protocol import (
    CLIENT_TYPES,
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    ClientFrame,
    FrameError,
    Refusal,
    close_reason,
    encode,
    parse_client_frame,
    render,
    route,
)

WEDNESDAY = dt.datetime(2025, 12, 10, 12, 0, tzinfo=dt.UTC)


def test_each_path_names_its_room_and_topics() -> None:
    notes = route("/ws/notifications", {}, "usr_1")
    assert (notes.room, [(t.name, t.kind) for t in notes.topics]) == (
        "notifications:usr_1", [("notifications:usr_1", "notifications")])
    presence = route("/ws/presence", {}, "usr_1")
    assert (presence.room, [t.name for t in presence.topics]) == ("presence", ["room:presence"])
    collab = route("/ws/collaboration/q_42", {}, "usr_1")
    assert (collab.room, [t.name for t in collab.topics]) == (
        "collaboration:q_42", ["room:collaboration:q_42"])
    board = route("/ws/leaderboard", {}, "usr_1")
    assert (board.room, [t.name for t in board.topics]) == (
        "leaderboard:global", ["leaderboard:global"])
    weekly = route("/ws/leaderboard", {"board": "weekly"}, "usr_1", now=lambda: WEDNESDAY)
    assert weekly.room == "leaderboard:weekly:2025-W50"
    assert route("/ws/leaderboard", {"board": "area:a1"}, "u").room == "leaderboard:area:a1"
    assert "edit" in collab.accepts and "edit" not in presence.accepts


@pytest.mark.parametrize(("path", "query", "code", "says"), [
    ("/ws/elsewhere", {}, CLOSE_NOT_FOUND, "/ws/presence"),
    ("/ws/collaboration/", {}, CLOSE_BAD_REQUEST, "content id"),
    ("/ws/collaboration/" + "x" * 200, {}, CLOSE_BAD_REQUEST, "1-128"),
    ("/ws/leaderboard", {"board": "monthly"}, CLOSE_BAD_REQUEST, "'monthly'"),
])
def test_a_wrong_path_or_board_is_refused_with_its_reason(
        path: str, query: dict[str, str], code: int, says: str) -> None:
    with pytest.raises(Refusal) as refused:
        route(path, query, "usr_1")
    assert refused.value.code == code and says in refused.value.reason
    assert len(refused.value.reason.encode()) <= 123


def test_close_reasons_fit_a_close_frame() -> None:
    assert close_reason("short") == "short"
    long = close_reason("é" * 100)
    assert len(long.encode()) <= 123 and long.endswith("...")


ALL = CLIENT_TYPES["collaboration"]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"type": "ping"}', ClientFrame(type="ping")),
    ('{"type": "ping", "id": 7}', ClientFrame(type="ping", id=7)),
    ('{"type": "presence.list", "id": "a"}', ClientFrame(type="presence.list", id="a")),
    ('{"type": "presence.update", "info": {"page": "/q/1"}}',
     ClientFrame(type="presence.update", info={"page": "/q/1"})),
    ('{"type": "edit", "edit": null}', ClientFrame(type="edit", edit=None)),
])
def test_valid_client_frames(text: str, expected: ClientFrame) -> None:
    assert parse_client_frame(text, None, accepts=ALL, max_bytes=1024) == expected


@pytest.mark.parametrize(("text", "error"), [
    ("{", "invalid-json"),
    ("3", "not-an-object"),
    ('{"type": ""}', "missing-type"),
    ('{"type": "ping", "id": true}', "invalid-field"),
    ('{"type": "ping", "id": "' + "i" * 65 + '"}', "invalid-field"),
    ('{"type": "presence.update"}', "invalid-field"),
    ('{"type": "presence.update", "info": {"x": "' + "y" * 1100 + '"}}', "invalid-field"),
    ('{"type": "edit"}', "invalid-field"),
    ('{"type": "subscribe"}', "unknown-type"),
])
def test_invalid_client_frames_say_what_was_wrong(text: str, error: str) -> None:
    found = parse_client_frame(text, None, accepts=ALL, max_bytes=4096)
    assert isinstance(found, FrameError) and found.error == error, found
    assert found.detail


def test_frames_are_checked_against_the_socket_and_the_size_limit() -> None:
    found = parse_client_frame('{"type": "edit", "edit": 1, "id": 3}', None,
                               accepts=CLIENT_TYPES["notifications"], max_bytes=1024)
    assert isinstance(found, FrameError)
    assert (found.error, found.id) == ("not-accepted-here", 3)
    assert parse_client_frame("x" * 2000, None, accepts=ALL, max_bytes=1024) == FrameError(
        error="frame-too-large", detail="a frame is at most 1024 bytes of UTF-8")
    binary = parse_client_frame(None, b"abc", accepts=ALL, max_bytes=1024)
    assert isinstance(binary, FrameError) and binary.error == "binary-frame"


def test_room_frames_render_as_events_with_the_room_sequence() -> None:
    batch = [{"change": "joined", "member_id": "u~1", "info": {"user_id": "u"}},
             {"change": "left", "member_id": "v~2"}]
    joined = {"room": "presence", "epoch": "e1", "seq": 4, "type": "presence.changes",
              "changes": batch}
    assert render(joined, "room") == {
        "type": "event", "event_type": "presence.changes", "event_id": "presence:e1:4",
        "room": "presence", "epoch": "e1", "seq": 4, "payload": {"changes": batch}}
    edit = {"room": "collaboration:c", "epoch": "e1", "seq": 5, "type": "message",
            "exclude": ["u~1"], "payload": {"event_type": "collaboration.edit",
                                            "payload": {"edit": 1}}}
    rendered = render(edit, "room")
    assert rendered is not None
    assert (rendered["event_type"], rendered["payload"], rendered["seq"]) == (
        "collaboration.edit", {"edit": 1}, 5)
    plain = render({**edit, "payload": "hello"}, "room")
    assert plain is not None and (plain["event_type"], plain["payload"]) == (
        "room.message", "hello")
    assert render({"type": 3}, "room") is None
    assert render("not a frame", "room") is None


def test_domain_events_and_rank_changes_render_as_events() -> None:
    envelope = {"event_id": "evt_1", "event_type": "gamification.xp.earned",
                "timestamp": "2025-12-10T12:00:00.000000Z", "payload": {"amount": 10},
                "producer_id": "x"}
    assert render(envelope, "notifications") == {
        "type": "event", "event_type": "gamification.xp.earned", "event_id": "evt_1",
        "timestamp": "2025-12-10T12:00:00.000000Z", "payload": {"amount": 10}}
    change = {"board": "global", "version": 9, "changes": [], "omitted": 0}
    assert render(change, "leaderboard") == {
        "type": "event", "event_type": "leaderboard.rank.changed",
        "event_id": "rank:global:9", "payload": change}
    assert json.loads(encode({"a": "é"})) == {"a": "é"}
