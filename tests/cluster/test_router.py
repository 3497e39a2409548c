"""The cluster router's reply to a remote ask: the inbound entry is acked in the reply's write."""

from __future__ import annotations

from typing import Any

from tektree import ActorId
from tektree._codec import decode_reply
from tektree._envelope import Envelope
from tektree._errors import ActorFailed
from tektree.cluster._router import REPLY_FRAME, RemoteReply


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def send(self, dest_node: str, frame: bytes) -> None:
        self.events.append(("send", (dest_node, frame)))

    def full(self) -> bool:
        return False

    async def wait_for_room(self) -> None:
        pass

    def ack(self, stream: str, entry_ids: list[bytes]) -> None:
        self.events.append(("ack", (stream, entry_ids)))


class Router:
    def __init__(self) -> None:
        self.sink = Sink()
        self.node = "n2"


def _inbound(sink: Sink) -> Envelope:
    env = Envelope("m-1", ActorId("counter", "c1"), None, reply_to="n1")
    env.ack = lambda: sink.ack("tektree:inbox:n2", [b"1-0"])
    return env


def test_a_remote_reply_acks_its_entry_just_before_sending_and_only_once() -> None:
    router = Router()
    env = _inbound(router.sink)
    reply = RemoteReply(router, "n1", "m-1", env)  # type: ignore[arg-type]
    reply.set_value(42)
    assert env.ack is None  # the runtime's own ack after the reply does nothing
    kinds = [kind for kind, _ in router.sink.events]
    assert kinds == ["ack", "send"]
    dest, frame = router.sink.events[1][1]
    assert dest == "n1" and frame[:1] == REPLY_FRAME
    assert decode_reply(frame[1:]) == ("m-1", True, 42)


def test_a_failed_remote_ask_is_acked_then_answered_with_the_error() -> None:
    router = Router()
    env = _inbound(router.sink)
    RemoteReply(router, "n1", "m-1", env).set_error(ValueError("bad"))  # type: ignore[arg-type]
    assert [kind for kind, _ in router.sink.events] == ["ack", "send"]
    message_id, ok, error = decode_reply(router.sink.events[1][1][1][1:])
    assert (message_id, ok) == ("m-1", False)
    assert isinstance(error, ActorFailed) and error.node == "n2"


def test_a_reply_without_its_envelope_only_sends() -> None:
    router = Router()
    RemoteReply(router, "n1", "m-1").set_value("x")  # type: ignore[arg-type]
    assert [kind for kind, _ in router.sink.events] == ["send"]
