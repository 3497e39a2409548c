"""The lifecycle of one activation: activate, passivate, crash and restart, forward, remove.

:class:`ActorPool` (``tektree/_pool.py``) derives from :class:`ActivationLifecycle`: the pool
module holds delivery, scheduling and turns; this one what happens to an activation between
turns. Split for size (one concept per module), not for reuse.
"""

from __future__ import annotations

import traceback
from collections import deque
from typing import TYPE_CHECKING

import structlog
import trio
from trio.lowlevel import reschedule

from tektree._actor import Actor
from tektree._context import (
    ACTIVE,
    BACKOFF,
    GONE,
    NEW,
    PASSIVATE_EXPLICIT,
    PASSIVATE_IDLE,
    PASSIVATE_LOST,
    PASSIVATING,
    ActorContext,
)
from tektree._envelope import Envelope
from tektree._errors import ActorFailed, ActorStopped, SupervisorFailed

if TYPE_CHECKING:
    from tektree._routing import Router
    from tektree._system import ActorSystem
    from tektree.config import ActorPoolSpec

_log = structlog.get_logger("tektree.pool")

#: How long an activation waits before retrying a lease held by a node that is gone.
LEASE_RETRY_SECONDS = 0.25


def backoff_delay(restarts: int, initial: float, maximum: float) -> float:
    """Exponential backoff: ``initial * 2**(restarts-1)``, capped at ``maximum``; 0 for none."""
    if restarts <= 0 or initial <= 0:
        return 0.0
    return float(min(maximum, initial * 2 ** min(restarts - 1, 62)))


class ActivationLifecycle:
    """What happens to an activation outside its turns (the pool's base class)."""

    # Declared here, set by ActorPool.__init__.
    system: ActorSystem
    spec: ActorPoolSpec
    kind: str
    actor_cls: type[Actor]
    cells: dict[str, ActorContext]
    fencing: dict[str, int]
    queued: int
    failures: int
    restarts_total: int
    activations: int
    passivations: int
    dead_letters: int
    _restarts: deque[float]
    _failure: SupervisorFailed | None
    _stop_scope: trio.CancelScope | None
    _emptied: trio.lowlevel.ParkingLot

    def _schedule(self, cell: ActorContext) -> None:
        raise NotImplementedError  # ActorPool's

    def _requeue_front(self, cell: ActorContext, rest: list[Envelope]) -> None:
        raise NotImplementedError  # ActorPool's

    async def _activate(self, cell: ActorContext) -> bool:
        router = self.system.router
        if router is not None:
            home = router.remote_home(cell.id)
            if home is not None:  # placement moved while it waited: its home serves it
                self._forward(cell, home)
                return False
            token, holder = await router.acquire(cell.id)
            if token is None:
                if holder is None:
                    # Held by a node that is gone: its lease expires within its TTL; retry.
                    cell.state = BACKOFF
                    self.system.timers.call_later(
                        LEASE_RETRY_SECONDS, self._end_backoff, cell
                    )
                    return False
                self._forward(cell, holder)  # still active on a live node (a move under way)
                return False
            self.fencing[cell.id.key] = token
        actor = self.actor_cls(cell)
        cell.actor = actor
        cell.state = ACTIVE
        if cell.passivate_requested != PASSIVATE_EXPLICIT:
            cell.passivate_requested = 0
        self.activations += 1
        if not actor._has_on_activate:
            return True
        try:
            await actor.on_activate()
        except Exception as exc:
            # A failed activation fails what waits for it and is retried by the next message.
            failed = self._failure_of(cell, exc)
            _log.error("activation failed", actor=str(cell.id), exc_info=exc)
            self.failures += 1
            cell.actor = None
            cell.cancel_all_timers()
            self._drop_cell(cell, failed)
            self._record_restart(exc)
            return False
        return True

    async def _maybe_passivate(self, cell: ActorContext, active: bool) -> None:
        mailbox = cell.mailbox
        if cell.passivate_requested == PASSIVATE_IDLE and (
            active or (mailbox and any(not env.from_timer for env in mailbox))
        ):
            cell.passivate_requested = 0  # real work arrived meanwhile: keep it
            return
        requested = cell.passivate_requested
        cell.passivate_requested = 0
        actor = cell.actor
        if actor is None:
            return
        lost = requested == PASSIVATE_LOST
        cell.state = PASSIVATING
        cell.cancel_all_timers()
        try:
            if actor._has_on_passivate and not lost:
                await actor.on_passivate()
        except Exception as exc:
            self.failures += 1
            _log.error("on_passivate failed; state may not be saved", actor=str(cell.id),
                       exc_info=exc)
        await self._call_on_stop(actor, cell)
        cell.actor = None
        self.passivations += 1
        router = self.system.router
        if router is not None:
            if lost:
                self.fencing.pop(cell.id.key, None)  # not ours any more: nothing to release
            home = router.remote_home(cell.id)
            if lost or home is not None:
                self._forward(cell, home)
                return
        if cell.mailbox or self.spec.restart == "permanent":
            cell.state = NEW  # messages arrived meanwhile: reactivate
        else:
            self._remove(cell)

    async def _call_on_stop(self, actor: Actor, cell: ActorContext) -> None:
        if not actor._has_on_stop:
            return
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self.system.stop_timeout
                await actor.on_stop()
        except Exception as exc:
            _log.error("on_stop failed", actor=str(cell.id), exc_info=exc)

    def _failure_of(self, cell: ActorContext, exc: BaseException) -> ActorFailed:
        return ActorFailed(
            cell.id,
            type(exc).__qualname__,
            str(exc),
            "".join(traceback.format_exception(exc)),
            node=self.system.node_name,
        )

    async def _crashed(
        self,
        cell: ActorContext,
        env: Envelope,
        exc: Exception,
        *,
        failed: ActorFailed | None = None,
    ) -> None:
        """A handler raised: fail its ask, stop the activation, restart it or fail the pool."""
        self.failures += 1
        if failed is None:
            failed = self._failure_of(cell, exc)
        if env.reply is not None:
            env.reply.set_error(failed)
        if env.ack is not None:
            env.ack()
        _log.error(
            "actor crashed",
            actor=str(cell.id),
            message=type(env.message).__qualname__,
            exc_info=exc,
        )
        actor = cell.actor
        cell.actor = None
        cell.cancel_all_timers()
        cell.passivate_requested = 0
        if actor is not None:
            await self._call_on_stop(actor, cell)
        if not self._record_restart(exc):
            cell.state = NEW
            return
        if self.spec.restart == "temporary":
            self._drop_cell(cell, ActorStopped(cell.id, "crashed; temporary activations are "
                                                        "not restarted"))
            return
        cell.crash_count += 1
        delay = backoff_delay(
            cell.crash_count, self.spec.backoff_initial_seconds, self.spec.backoff_max_seconds
        )
        if delay > 0:
            cell.state = BACKOFF
            self.system.timers.call_later(delay, self._end_backoff, cell)
        else:
            cell.state = NEW

    def _end_backoff(self, cell: ActorContext) -> None:
        if cell.state != BACKOFF:
            return
        cell.state = NEW
        if cell.mailbox and not cell.scheduled and not cell.running:
            self._schedule(cell)
        elif not cell.mailbox:
            cell.mailbox = None

    def _record_restart(self, cause: BaseException) -> bool:
        """Count a restart; past the intensity, fail the pool. True if restarts may go on."""
        now = trio.current_time()
        window = self._restarts
        window.append(now)
        while window and window[0] < now - self.spec.period_seconds:
            window.popleft()
        self.restarts_total += 1
        if len(window) > self.spec.max_restarts:
            self._fail(SupervisorFailed(
                f"actors:{self.kind}", self.spec.max_restarts, self.spec.period_seconds, cause
            ))
            return False
        return True

    def _fail(self, failure: SupervisorFailed) -> None:
        if self._failure is None:
            self._failure = failure
            if self._stop_scope is not None:
                self._stop_scope.cancel()

    def _drop_cell(self, cell: ActorContext, error: BaseException) -> None:
        mailbox = cell.mailbox
        if mailbox:
            for env in mailbox:
                self._reply_error(env, error)
            self.queued -= len(mailbox)
        cell.mailbox = None
        self._remove(cell)

    def _remove(self, cell: ActorContext) -> None:
        cell.state = GONE
        cell.cancel_all_timers()
        if self.fencing.pop(cell.id.key, None) is not None:
            router = self.system.router
            if router is not None:
                router.release(cell.id)
        if self.cells.get(cell.id.key) is cell:
            del self.cells[cell.id.key]
        waiters = cell.waiting_senders
        while waiters:
            reschedule(waiters.popleft())  # they retry and recreate the cell
        if not self.cells:
            self._emptied.unpark_all()

    def _forward(self, cell: ActorContext, node: str | None) -> None:
        """Send the cell's queued messages to ``node`` (its home, or the lease holder; the
        router's placement when None) and drop the cell here."""
        router = self.system.router
        assert router is not None
        mailbox = cell.mailbox
        cell.mailbox = None
        if mailbox:
            self.queued -= len(mailbox)
            for env in mailbox:
                target = node or router.remote_home(env.target)
                if target is None:  # placement says here after all: keep it
                    self._requeue_front(cell, [env])
                    continue
                router.send(target, env)
                if env.ack is not None:
                    env.ack()
        if not cell.mailbox:
            self._remove(cell)
        else:
            cell.state = NEW

    def lease_lost(self, key: str) -> None:
        """Another node may own this actor now: stop it without saving, re-route its mail."""
        cell = self.cells.get(key)
        if cell is None:
            return
        self.fencing.pop(key, None)
        if cell.actor is None:
            if cell.mailbox and self.system.router is not None:
                self._forward(cell, None)
            return
        cell.passivate_requested = PASSIVATE_LOST
        if not cell.scheduled and not cell.running:
            self._schedule(cell)

    def evacuate(self, router: Router) -> None:
        """Passivate (state saved) every activation whose home moved; forward waiting mail."""
        for cell in list(self.cells.values()):
            if router.remote_home(cell.id) is None:
                continue
            if cell.actor is None:
                if cell.state == NEW and not cell.running:
                    self._forward(cell, None)
                continue
            cell.passivate_requested = PASSIVATE_EXPLICIT
            if not cell.scheduled and not cell.running:
                self._schedule(cell)

    def _dead_letter(self, env: Envelope, reason: str) -> None:
        self.dead_letters += 1
        _log.warning("dead letter", actor=str(env.target),
                     message=type(env.message).__qualname__, reason=reason)

    def _reply_error(self, env: Envelope, error: BaseException) -> None:
        """A message ends without being handled: fail its ask (or log a dead letter), ack it."""
        if env.reply is not None:
            env.reply.set_error(error)
        else:
            self._dead_letter(env, str(error))
        if env.ack is not None:
            env.ack()

    # -- the pool as a supervised child --------------------------------------------------------
