"""The actor system of one node: actor kinds, routing, message ids, quiescence."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio
from trio.lowlevel import checkpoint

from tektree._actor import Actor
from tektree._codec import roundtrip
from tektree._envelope import Envelope
from tektree._errors import ActorFailed, NodeStopping, UnknownActorKind
from tektree._ids import ActorId
from tektree._pool import ActorPool, PoolStatistics
from tektree._refs import ActorRef, can_run_inline
from tektree._reply import ReplySlot
from tektree._routing import Router
from tektree._telemetry import correlation_id, current_cell
from tektree._timers import TimerQueue

_log = structlog.get_logger("tektree.system")

if TYPE_CHECKING:
    from tektree.config import ActorPoolSpec


class ActorSystem:
    """Routes messages to the activations of this node's actor kinds.

    Built and run by :class:`tektree.Node`; tests use :func:`tektree.testing.open_test_node`.
    """

    #: tell/ask yield to the scheduler at least once every this many calls.
    YIELD_EVERY = 32

    def __init__(
        self,
        *,
        node_name: str,
        check_serialization: bool = False,
        ask_timeout_seconds: float = 5.0,
        stop_timeout_seconds: float = 5.0,
    ) -> None:
        self.node_name = node_name
        self.check_serialization = check_serialization
        self.default_ask_timeout = ask_timeout_seconds
        self.stop_timeout = stop_timeout_seconds
        self.pools: dict[str, ActorPool] = {}
        self.timers = TimerQueue()
        self.accepting = True
        self.quiet_lot = trio.lowlevel.ParkingLot()
        #: Tasks parked in :meth:`wait_quiescent` (a plain int: every turn reads it).
        self.quiet_waiting = 0
        self.supervisor_restarts: dict[str, int] = {}
        #: The cluster's router; None in embedded mode (every actor lives here).
        self.router: Router | None = None
        #: Node-wide resources that services lend to actors by name (``"store"``: the store).
        self.extensions: dict[str, object] = {}
        self._id_prefix = f"{node_name}.{secrets.token_hex(4)}."
        self._seq = itertools.count(1)
        self.budget = self.YIELD_EVERY

    def __repr__(self) -> str:
        return f"<ActorSystem {self.node_name} kinds={sorted(self.pools)}>"

    # -- kinds -------------------------------------------------------------------------------
    def add_pool(self, spec: ActorPoolSpec, actor_cls: type[Actor]) -> ActorPool:
        if not (isinstance(actor_cls, type) and issubclass(actor_cls, Actor)):
            raise TypeError(f"actor kind {spec.kind!r}: {actor_cls!r} is not an Actor subclass")
        if spec.kind in self.pools:
            raise ValueError(f"actor kind {spec.kind!r} is already registered on this node")
        pool = ActorPool(self, spec, actor_cls)
        self.pools[spec.kind] = pool
        return pool

    def _pool(self, kind: str) -> ActorPool:
        pool = self.pools.get(kind)
        if pool is None:
            raise UnknownActorKind(kind, tuple(sorted(self.pools)))
        return pool

    def ref(self, kind: str | ActorId, key: str | None = None) -> ActorRef:
        """``system.ref("user", "usr_1")`` or ``system.ref(actor_id)``."""
        if isinstance(kind, ActorId):
            return ActorRef(self, kind)
        if key is None:
            raise TypeError("ref(kind, key) needs a key when kind is a string")
        return ActorRef(self, ActorId(kind, key))

    # -- envelopes ---------------------------------------------------------------------------
    def make_envelope(
        self, target: ActorId, message: Any, reply: ReplySlot | None,
        message_id: str | None = None,
    ) -> Envelope:
        """A new envelope; ``message_id`` overrides the generated id (a durable reminder gives
        each occurrence its own stable id, so a redelivery carries the same one)."""
        if message_id is None:
            message_id = f"{self._id_prefix}{next(self._seq)}"
        cell = current_cell.get()
        if cell is not None:
            current = cell.current
            return Envelope(
                message_id,
                target,
                message,
                cell.id,
                None,
                current.correlation_id if current is not None else None,
                current.trace_id if current is not None else None,
                None,
                reply,
            )
        corr = correlation_id.get()
        return Envelope(message_id, target, message, None, None, corr, corr, None, reply)

    def admit(self, target: ActorId, message: Any) -> tuple[ActorPool, Any]:
        """Check a send from outside the hot path: node accepting, kind known, handled."""
        if not self.accepting and current_cell.get() is None:
            raise NodeStopping(self.node_name)
        pool = self.pools.get(target.kind)
        if pool is None:
            raise UnknownActorKind(target.kind, tuple(sorted(self.pools)))
        pool.check_handles(target, message)
        if self.check_serialization:
            message = roundtrip(message)
        return pool, message

    async def tell(self, target: ActorId, message: Any) -> None:
        await ActorRef(self, target).tell(message)

    def tell_nowait(self, target: ActorId, message: Any) -> None:
        ActorRef(self, target).tell_nowait(message)

    async def ask(self, target: ActorId, message: Any, *, timeout: float | None = None) -> Any:
        return await ActorRef(self, target).ask(message, timeout=timeout)

    # -- from other nodes ----------------------------------------------------------------------
    def deliver_inbound(
        self, env: Envelope, ack: Callable[[], None] | None = None, *, inline: bool = False
    ) -> Awaitable[None] | None:
        """Deliver a message that came from another node; ``ack`` runs once it was handled.

        A message whose target no longer lives here (placement moved) is forwarded to its
        home and acknowledged. Inbound messages are not refused for a full mailbox: the
        transport reads in bounded batches, which is the flow control between nodes.

        With ``inline``, an ask whose target is active and idle here with a ``def`` handler is
        not queued: the call returns an awaitable that runs the handler in the awaiting task
        (as a local ask's fast path does), sparing the pool's task a wake. The caller must
        await it before it delivers anything else, to keep the order of arrival.
        """
        router = self.router
        if router is not None:
            home = router.remote_home(env.target)
            if home is not None:
                router.send(home, env)
                if ack is not None:
                    ack()
                return None
        pool = self.pools.get(env.target.kind)
        if pool is None:
            if ack is not None:
                ack()
            raise UnknownActorKind(env.target.kind, tuple(sorted(self.pools)))
        env.ack = ack
        if env.reply_to is not None and router is not None:
            reply = env.reply = router.reply_for(env)
            if inline:
                cell = pool.cells.get(env.target.key)
                handler = pool.handlers.get(type(env.message))
                if (
                    cell is not None
                    and handler is not None
                    and can_run_inline(pool, cell, handler)
                ):
                    done, value = pool.run_inline_nowait(cell, handler, env)
                    if not done:
                        return _finish_inbound(env, value)
                    reply.set_value(value)  # RemoteReply: acks, then sends the reply
                    if env.ack is not None:
                        env.ack()
                    return None
        pool.deliver_nowait(env, force=True)
        return None

    def lease_lost(self, actor_id: ActorId) -> None:
        """The cluster says this node no longer holds ``actor_id``'s lease: stop it now."""
        pool = self.pools.get(actor_id.kind)
        if pool is not None:
            pool.lease_lost(actor_id.key)

    def evacuate(self) -> None:
        """After a membership change: passivate the activations whose home moved."""
        router = self.router
        if router is None:
            return
        for pool in self.pools.values():
            pool.evacuate(router)

    # -- node-wide state ---------------------------------------------------------------------
    def is_quiet(self) -> bool:
        return all(pool.idle for pool in self.pools.values())

    def check_quiet(self) -> None:
        if self.is_quiet():
            self.quiet_lot.unpark_all()

    async def wait_quiescent(self) -> None:
        """Wait until no message is queued or being handled anywhere on this node.

        Tests use it to wait for the effects of ``tell``s instead of sleeping; wrap it in
        ``trio.fail_after``.
        """
        await checkpoint()
        while not self.is_quiet():
            self.quiet_waiting += 1
            try:
                await self.quiet_lot.park()
            finally:
                self.quiet_waiting -= 1

    def stop_accepting(self) -> None:
        """Refuse new work from outside actors (``NodeStopping``); actors still talk."""
        self.accepting = False

    async def passivate_all(self) -> None:
        """Passivate every activation (``on_passivate`` saves state); wait until all are gone."""
        for pool in self.pools.values():
            pool.request_passivate_all()
        for pool in self.pools.values():
            await pool.wait_empty()

    def statistics(self) -> dict[str, PoolStatistics]:
        return {kind: pool.statistics() for kind, pool in self.pools.items()}


async def _finish_inbound(env: Envelope, rest: Awaitable[Any]) -> None:
    """The end of an inbound ask handled inline (``deliver_inbound(inline=True)``) whose turn
    had more to do after its handler (``ActorPool.run_inline_nowait``): reply, then ack."""
    try:
        result = await rest
    except ActorFailed:
        return  # the pool failed the ask and acked it, and its supervisor took over
    except Exception as exc:  # after the handler (a passivation it asked for failed)
        _log.error("inbound ask failed after its handler", actor=str(env.target),
                   exc_info=exc)
        if env.reply is not None:
            env.reply.set_error(exc)
    else:
        if env.reply is not None:
            env.reply.set_value(result)
    if env.ack is not None:
        env.ack()
