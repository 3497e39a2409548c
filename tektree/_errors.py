"""The runtime's exceptions. Each carries the values it names as attributes."""

from __future__ import annotations

from tektree._ids import ActorId


class TekTreeError(Exception):
    """Base class of every error the runtime raises on purpose."""


class CodecError(TekTreeError):
    """A message, value or frame could not be encoded or decoded.

    ``what`` says which part was wrong (a tag, a field, the frame), so a bad frame from the wire
    can be logged and counted without guessing.
    """

    def __init__(self, detail: str, *, what: str = "frame") -> None:
        super().__init__(detail)
        self.detail = detail
        self.what = what


class ConfigError(TekTreeError):
    """A configuration value is unknown, mistyped or out of range; ``path`` names it."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


class UnhandledMessage(TekTreeError):
    """An actor received a message class it has no handler for."""

    def __init__(self, actor_id: ActorId, message_type: str, handled: tuple[str, ...]) -> None:
        shown = ", ".join(handled) or "nothing"
        super().__init__(
            f"actor {actor_id} has no handler for {message_type}; it handles: {shown}. "
            f"Add a method decorated with @handler taking a {message_type}."
        )
        self.actor_id = actor_id
        self.message_type = message_type
        self.handled = handled


class UnknownActorKind(TekTreeError):
    """A message was addressed to an actor kind that no pool on this node or cluster serves."""

    def __init__(self, kind: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"no actor kind {kind!r} is registered; known kinds: {', '.join(known) or 'none'}"
        )
        self.kind = kind
        self.known = known


class MailboxFull(TekTreeError):
    """The target's mailbox is at capacity and its overflow policy rejects new messages."""

    def __init__(self, actor_id: ActorId, capacity: int) -> None:
        super().__init__(
            f"mailbox of {actor_id} is full ({capacity} messages); "
            "wait with `await ref.tell(...)` or raise the kind's mailbox_capacity"
        )
        self.actor_id = actor_id
        self.capacity = capacity


class AskTimeout(TekTreeError):
    """No reply arrived before the ask's deadline. The message may still be handled later."""

    def __init__(self, actor_id: ActorId, message_type: str, timeout: float) -> None:
        super().__init__(f"ask {message_type} to {actor_id} got no reply within {timeout:g}s")
        self.actor_id = actor_id
        self.message_type = message_type
        self.timeout = timeout


class ActorFailed(TekTreeError):
    """The handler of an ask raised; carries where and what, so it survives crossing nodes."""

    def __init__(
        self,
        actor_id: ActorId,
        error_type: str,
        error_message: str,
        traceback_text: str,
        *,
        node: str | None = None,
    ) -> None:
        where = f" on node {node}" if node else ""
        super().__init__(f"actor {actor_id}{where} failed: {error_type}: {error_message}")
        self.actor_id = actor_id
        self.error_type = error_type
        self.error_message = error_message
        self.traceback_text = traceback_text
        self.node = node


class ActorStopped(TekTreeError):
    """The activation ended (its pool restarted, the node stopped) before handling the message."""

    def __init__(self, actor_id: ActorId, reason: str) -> None:
        super().__init__(f"actor {actor_id} stopped before handling the message: {reason}")
        self.actor_id = actor_id
        self.reason = reason


class NodeStopping(TekTreeError):
    """The node is shutting down and takes no new work from outside its actors."""

    def __init__(self, node: str) -> None:
        super().__init__(f"node {node} is stopping and takes no new work")
        self.node = node


class SupervisorFailed(TekTreeError):
    """A supervisor exceeded its restart intensity; its parent applies its own strategy."""

    def __init__(
        self, name: str, max_restarts: int, period_seconds: float, cause: BaseException | None
    ) -> None:
        because = f": last failure {type(cause).__name__}: {cause}" if cause is not None else ""
        super().__init__(
            f"supervisor {name!r} exceeded {max_restarts} restarts in {period_seconds:g}s{because}"
        )
        self.name = name
        self.max_restarts = max_restarts
        self.period_seconds = period_seconds
        self.cause = cause
