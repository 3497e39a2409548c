"""An activation's context: what an actor sees of the runtime through ``self.ctx``.

The context is also the activation's cell, the runtime's record of it (mailbox, turn flags,
timers). Its runtime fields are slots; an idle activation costs this object, its actor object
and the actor's state, and no task and no queue (the mailbox deque exists only while messages
wait).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from tektree._envelope import Envelope
from tektree._ids import ActorId

if TYPE_CHECKING:
    from tektree._actor import Actor
    from tektree._pool import ActorPool
    from tektree._refs import ActorRef
    from tektree._system import ActorSystem
    from tektree._timers import TimerHandle
    from tektree.reminders import ActorReminders

# Cell states.
NEW = 0  # no actor instance; the next turn activates it
ACTIVE = 1
PASSIVATING = 2  # on_passivate running; messages queue and reactivate it afterwards
BACKOFF = 3  # crashed; waiting for its restart delay
GONE = 4  # removed from its pool

# Passivation requests (``passivate_requested``).
PASSIVATE_IDLE = 1  # from the idle reaper: dropped if the activation became busy meanwhile
PASSIVATE_EXPLICIT = 2  # from ctx.passivate() or node shutdown: always carried out
PASSIVATE_LOST = 3  # the cluster lease was lost: stop without saving, re-route the mail

_log = structlog.get_logger("tektree.actor")


class _Timer:
    __slots__ = ("handle", "interval", "message", "name", "pending")

    def __init__(
        self, name: str, message: Any, interval: float | None, handle: TimerHandle
    ) -> None:
        self.name = name
        self.message = message
        self.interval = interval
        self.handle = handle
        self.pending = False  # a tick sits in the mailbox; periodic ticks never pile up


class ActorContext:
    """``self.ctx`` of an actor: identity, messaging, timers, logging, lifecycle requests."""

    __slots__ = (
        "actor",
        "crash_count",
        "current",
        "id",
        "last_active",
        "mailbox",
        "passivate_requested",
        "pool",
        "running",
        "scheduled",
        "state",
        "timers",
        "waiting_senders",
    )

    def __init__(self, pool: ActorPool, actor_id: ActorId, now: float) -> None:
        self.pool = pool
        self.id = actor_id
        self.actor: Actor | None = None
        self.state = NEW
        self.mailbox: list[Envelope] | None = None
        self.scheduled = False
        self.running = False
        self.current: Envelope | None = None
        self.last_active = now
        self.timers: dict[str, _Timer] | None = None
        self.waiting_senders: deque[Any] | None = None
        self.passivate_requested = 0
        self.crash_count = 0

    def __repr__(self) -> str:
        return f"<ActorContext {self.id} state={self.state}>"

    # -- identity and messaging ------------------------------------------------------------
    @property
    def system(self) -> ActorSystem:
        return self.pool.system

    @property
    def self_ref(self) -> ActorRef:
        return self.pool.system.ref(self.id)

    def ref(self, kind: str | ActorId, key: str | None = None) -> ActorRef:
        """A reference to another actor; messages sent through it carry this actor as sender."""
        return self.pool.system.ref(kind, key)

    @property
    def fencing_token(self) -> int | None:
        """This activation's cluster lease token (None in embedded mode): pass it with every
        state write, so that a write from a stale activation is refused by the store."""
        return self.pool.fencing.get(self.id.key)

    @property
    def envelope(self) -> Envelope | None:
        """The envelope of the message being handled (sender, correlation id, deadline...)."""
        return self.current

    @property
    def options(self) -> Mapping[str, Any]:
        """The ``options`` table of this kind in ``supervisor.toml``."""
        return self.pool.spec.options

    @property
    def log(self) -> Any:
        """A structlog logger; every line carries node, actor id and correlation id."""
        return _log

    # -- lifecycle ---------------------------------------------------------------------------
    def passivate(self) -> None:
        """Deactivate after the current turn (``on_passivate`` runs, state is saved)."""
        self.passivate_requested = PASSIVATE_EXPLICIT

    # -- durable reminders -------------------------------------------------------------------
    @property
    def reminders(self) -> ActorReminders:
        """This actor's durable reminders (``register``, ``cancel``, ``get``, ``all``): kept in
        the store, they survive passivation, restarts and node deaths, and activate the actor
        when due (needs the ``reminders`` service; see :mod:`tektree.reminders`)."""
        from tektree.reminders._table import ActorReminders  # not loaded unless used

        return ActorReminders(self.pool.system, self.id)

    # -- timers ------------------------------------------------------------------------------
    def start_timer(self, name: str, delay_seconds: float, message: Any) -> None:
        """Deliver ``message`` to this actor once, after ``delay_seconds``. Replaces ``name``."""
        self._start_timer(name, delay_seconds, message, None)

    def start_periodic_timer(
        self,
        name: str,
        interval_seconds: float,
        message: Any,
        *,
        initial_delay_seconds: float | None = None,
    ) -> None:
        """Deliver ``message`` every ``interval_seconds``; a tick still queued is not doubled.

        Timer ticks do not count as activity: an actor with only timers still passivates when
        idle, and its timers are cancelled then (like Orleans timers, unlike reminders).
        """
        if interval_seconds <= 0:
            raise ValueError(f"interval_seconds must be > 0, got {interval_seconds!r}")
        first = interval_seconds if initial_delay_seconds is None else initial_delay_seconds
        self._start_timer(name, first, message, interval_seconds)

    def cancel_timer(self, name: str) -> bool:
        """Cancel a timer by name; returns whether one was running."""
        timers = self.timers
        if not timers or name not in timers:
            return False
        timers.pop(name).handle.cancel()
        return True

    def cancel_all_timers(self) -> None:
        timers = self.timers
        if timers:
            for timer in timers.values():
                timer.handle.cancel()
            self.timers = None

    @property
    def timer_names(self) -> tuple[str, ...]:
        return tuple(self.timers or ())

    def _start_timer(
        self, name: str, delay: float, message: Any, interval: float | None
    ) -> None:
        if delay < 0:
            raise ValueError(f"timer delay must be >= 0 seconds, got {delay!r}")
        pool = self.pool
        pool.check_handles(self.id, message)
        self.cancel_timer(name)
        if self.timers is None:
            self.timers = {}
        handle = pool.system.timers.call_later(delay, pool.fire_timer, self, name)
        self.timers[name] = _Timer(name, message, interval, handle)
