"""References to actors: ``tell`` and ``ask`` by id, wherever the actor lives.

This module holds the message hot path: every local message passes through
:meth:`ActorRef.tell` or :meth:`ActorRef.ask` once, so they are written flat.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import trio
from trio.lowlevel import checkpoint, checkpoint_if_cancelled

from tektree._context import ACTIVE
from tektree._errors import AskTimeout, MailboxFull, TekTreeError
from tektree._ids import ActorId
from tektree._reply import ReplySlot
from tektree._telemetry import current_cell

if TYPE_CHECKING:
    from tektree._actor import Handler
    from tektree._context import ActorContext
    from tektree._pool import ActorPool
    from tektree._system import ActorSystem


def can_run_inline(pool: ActorPool, cell: ActorContext, handler: Handler) -> bool:
    """Whether a message for ``cell`` may be handled in the sending task rather than queued:
    the activation is active and idle (nothing queued, no turn running) and the handler is a
    ``def`` (it never suspends). ``pool.run_inline_nowait`` then runs it with the turn held."""
    return (
        not handler.is_async
        and cell.state == ACTIVE
        and not cell.running
        and not cell.scheduled
        and not cell.mailbox
        and not cell.passivate_requested
        and pool.running
    )


def _admit(system: ActorSystem, target: ActorId, message: Any) -> tuple[ActorPool, Any]:
    """``system.admit``, without its call in the common case: a known kind that handles the
    message, the node accepting, no serialization check."""
    pool = system.pools.get(target.kind)
    if (
        pool is None
        or not system.accepting
        or system.check_serialization
        or type(message) not in pool.handlers
    ):
        return system.admit(target, message)
    return pool, message


def _expire(slot: ReplySlot, actor_id: ActorId, message: Any, timeout: float) -> None:
    slot.set_error(AskTimeout(actor_id, type(message).__qualname__, timeout))


class ActorRef:
    """A handle on a virtual actor, by id. Cheap to make; holds no activation alive.

    ``await ref.tell(msg)`` queues a message and returns; it waits only while the target's
    mailbox is full (backpressure). ``await ref.ask(msg, timeout=...)`` returns the handler's
    return value, or raises :class:`AskTimeout`, :class:`ActorFailed` (the handler raised; it
    carries the actor id, error type, message and traceback) or :class:`ActorStopped`: an ask
    always ends.

    Checkpoints: an ``ask`` is a cancellation point every time; both are full checkpoints
    (cancellation and scheduling) whenever they wait and at least every
    ``ActorSystem.YIELD_EVERY`` calls, rather than on every call: a full trio checkpoint
    (~3.7 µs here) costs more than the whole local delivery of a message (~1.5 µs).
    """

    __slots__ = ("_system", "id")

    def __init__(self, system: ActorSystem, actor_id: ActorId) -> None:
        self._system = system
        self.id = actor_id

    def __repr__(self) -> str:
        return f"ActorRef({self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    async def tell(self, message: Any) -> None:
        """Send without waiting for handling; waits only for mailbox room."""
        system = self._system
        target = self.id
        pool, message = _admit(system, target, message)
        env = system.make_envelope(target, message, None)
        router = system.router
        if router is not None:
            home = router.remote_home(target)
            if home is not None:
                if router.full():
                    # The transport's buffer is full (Redis is slower than this sender): wait
                    # for room, as a local tell waits for mailbox room.
                    await router.wait_for_room()
                router.send(home, env)  # buffered by the transport: never blocks here
                # The same budget as a local delivery: a loop of remote tells must let the
                # transport's writer run, or its buffer fills and send raises backpressure.
                system.budget -= 1
                if system.budget <= 0:
                    system.budget = system.YIELD_EVERY
                    await checkpoint()
                else:
                    await checkpoint_if_cancelled()
                return
        if pool.deliver_nowait(env):
            system.budget -= 1
            if system.budget <= 0:
                system.budget = system.YIELD_EVERY
                await checkpoint()
            return
        while True:
            await pool.wait_for_room(target.key)
            if pool.deliver_nowait(env):
                return

    def tell_nowait(self, message: Any) -> None:
        """Send now or raise :class:`MailboxFull`; usable from ``def`` handlers."""
        system = self._system
        pool, message = system.admit(self.id, message)
        if not pool.deliver_nowait(system.make_envelope(self.id, message, None)):
            raise MailboxFull(self.id, pool.capacity)

    async def ask(
        self, message: Any, *, timeout: float | None = None, message_id: str | None = None
    ) -> Any:
        """Send and wait for the reply (``timeout`` defaults to ``node.ask_timeout_seconds``).

        ``message_id`` sets the envelope's id (the handler reads it as ``ctx.envelope``'s):
        a sender that may deliver the same thing twice (a durable reminder, a retried job)
        passes the same id each time, and an idempotent handler keys its effects on it.
        """
        system = self._system
        target = self.id
        pool, message = _admit(system, target, message)
        if timeout is None:
            timeout = system.default_ask_timeout
        elif timeout <= 0:
            raise ValueError(f"ask timeout must be > 0 seconds, got {timeout!r}")
        router = system.router
        if router is not None:
            home = router.remote_home(target)
            if home is not None:
                ends = trio.current_time() + timeout
                if router.full():  # wait for room in the transport, within the ask's time
                    with trio.move_on_at(ends):
                        await router.wait_for_room()
                    if router.full():
                        raise AskTimeout(target, type(message).__qualname__, timeout)
                # Inline, not a coroutine of its own: the remote ask's whole path is hot.
                slot = ReplySlot()
                env = system.make_envelope(target, message, slot, message_id)
                env.reply_to = system.node_name
                env.deadline = time.time() + timeout
                message_id = env.message_id
                router.expect_reply(message_id, slot)
                expiry = system.timers.call_at(ends, _expire, slot, target, message, timeout)
                try:
                    router.send(home, env)
                    return await slot.wait()
                finally:
                    expiry.cancel()
                    router.forget_reply(message_id)
        cell = pool.cells.get(target.key)
        if cell is not None:
            if cell is current_cell.get():
                raise TekTreeError(
                    f"actor {target} asked itself: the reply could only come after the "
                    "current turn, so it would time out; call the method directly or tell"
                )
            handler = pool.handlers[type(message)]
            if not handler.is_async and can_run_inline(pool, cell, handler):
                # The fast path: the target is local, idle and its handler never suspends, so
                # run it here with its turn held (failures still go to its supervisor).
                done, result = pool.run_inline_nowait(
                    cell, handler, system.make_envelope(target, message, None, message_id)
                )
                if not done:
                    result = await result
                system.budget -= 1
                if system.budget <= 0:
                    system.budget = system.YIELD_EVERY
                    await checkpoint()
                else:
                    await checkpoint_if_cancelled()
                return result
        slot = ReplySlot()
        env = system.make_envelope(target, message, slot, message_id)
        env.deadline = time.time() + timeout
        expiry = system.timers.call_later(timeout, _expire, slot, target, message, timeout)
        try:
            if not pool.deliver_nowait(env):
                with trio.move_on_after(timeout):
                    while not pool.deliver_nowait(env):
                        await pool.wait_for_room(target.key)
                    return await slot.wait()
                raise AskTimeout(target, type(message).__qualname__, timeout)
            return await slot.wait()
        finally:
            expiry.cancel()
