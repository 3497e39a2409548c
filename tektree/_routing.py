"""The seam between the actor system and a cluster: where an actor lives, how to reach it.

In embedded mode ``ActorSystem.router`` is ``None`` and none of this runs. In cluster mode the
cluster service installs a :class:`Router`: placement says which node is an actor's home,
remote messages are handed to the transport, replies to remote asks come back by message id,
and an activation first takes the actor's cluster-wide lease (single activation, fencing).
Location transparency: actors and callers use the same ``tell``/``ask`` either way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from tektree._ids import ActorId

if TYPE_CHECKING:
    from tektree._envelope import Envelope
    from tektree._reply import ReplySlot


class Router(Protocol):
    """What the actor system needs from a cluster."""

    def remote_home(self, target: ActorId) -> str | None:
        """The node to send ``target``'s messages to, or ``None`` if it lives here."""
        ...

    def send(self, node: str, env: Envelope) -> None:
        """Hand ``env`` to the transport for ``node`` (buffered; never blocks; raises when the
        transport's buffer is full: check :meth:`full` first, then :meth:`wait_for_room`)."""
        ...

    def full(self) -> bool:
        """Whether the transport's buffer is full (a ``send`` now would raise)."""
        ...

    async def wait_for_room(self) -> None:
        """Return once the transport's buffer has room (at once if it has): a ``send`` right
        after, with no checkpoint between, does not raise."""
        ...

    def expect_reply(self, message_id: str, slot: ReplySlot) -> None:
        """Route the reply to the remote ask ``message_id`` into ``slot``."""
        ...

    def forget_reply(self, message_id: str) -> None: ...

    def reply_for(self, env: Envelope) -> Any:
        """The reply object of an ask that came from another node (sends the outcome back)."""
        ...

    async def acquire(self, actor_id: ActorId) -> tuple[int | None, str | None]:
        """Take the activation lease: ``(fencing_token, None)``; ``(None, holder)`` when a live
        node holds it; ``(None, None)`` when a node that is gone still holds it (retry)."""
        ...

    def release(self, actor_id: ActorId) -> None:
        """Give the lease back (the activation ended); asynchronous, never blocks."""
        ...
