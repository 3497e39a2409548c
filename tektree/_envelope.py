"""The envelope every message travels in, locally and between nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tektree._ids import ActorId


class Reply(Protocol):
    """Where the outcome of an ask goes: a local :class:`ReplySlot`, or a remote reply."""

    def set_value(self, value: Any) -> None: ...

    def set_error(self, error: BaseException) -> None: ...


class Envelope:
    """A message with its routing and tracing metadata.

    Wire fields: ``message_id`` (unique in the cluster: node name, incarnation and sequence; a
    reply names the ``message_id`` of its ask), ``target``, ``sender`` (the actor that sent it,
    if any), ``reply_to`` (the node that waits for the reply of an ask), ``correlation_id`` (the
    request it belongs to: set at the edge, inherited by every message sent while handling it,
    carried into every log line), ``trace_id`` (the distributed trace, inherited the same way),
    ``deadline`` (unix seconds after which nobody waits for the reply) and ``message``.

    Local-only fields, never encoded: ``reply`` (what the reply of an ask is given to: a local
    slot, or an object that sends it back to the asking node), ``from_timer`` (timer ticks do
    not count as activity for passivation) and ``ack`` (called once the message was handled:
    a message from another node is acknowledged on its stream only then, at-least-once).

    A plain slotted class, not attrs: it is built once per message on the hottest path.
    """

    __slots__ = (
        "ack",
        "correlation_id",
        "deadline",
        "from_timer",
        "message",
        "message_id",
        "reply",
        "reply_to",
        "sender",
        "target",
        "trace_id",
    )

    def __init__(
        self,
        message_id: str,
        target: ActorId,
        message: Any,
        sender: ActorId | None = None,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        trace_id: str | None = None,
        deadline: float | None = None,
        reply: Reply | None = None,
        from_timer: bool = False,
    ) -> None:
        self.message_id = message_id
        self.target = target
        self.message = message
        self.sender = sender
        self.reply_to = reply_to
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.deadline = deadline
        self.reply = reply
        self.from_timer = from_timer
        self.ack: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return (
            f"Envelope(message_id={self.message_id!r}, target={self.target}, "
            f"message={self.message!r}, sender={self.sender}, trace_id={self.trace_id!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Envelope):
            return NotImplemented
        return (
            self.message_id == other.message_id
            and self.target == other.target
            and self.message == other.message
            and self.sender == other.sender
            and self.reply_to == other.reply_to
            and self.correlation_id == other.correlation_id
            and self.trace_id == other.trace_id
            and self.deadline == other.deadline
        )

    __hash__ = None  # type: ignore[assignment]
