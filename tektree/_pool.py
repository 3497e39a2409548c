"""The activations of one actor kind: a dynamic pool of identical children.

The pool is the kind's supervisor (OTP's ``simple_one_for_one``, modelled as its own type) and
its dispatcher. Activations own no task: a message to an activation appends to its mailbox and
puts the activation on the pool's run queue; a small, elastic set of worker tasks takes
activations off the run queue and handles up to ``batch_size`` messages per turn, with one
checkpoint per batch instead of two per message. A worker that enters an ``async`` handler
first makes sure another worker can serve the run queue, so one slow handler never stalls the
kind; at most ``max_concurrency`` handlers of the kind run at once. A batch handler
(:func:`~tektree.batch_handler`) gets the messages of its class queued in a row within the turn
in one call, and each of their asks its own reply once the call returns.

A crashing handler fails its ask with :class:`ActorFailed`, the activation is stopped and
restarted (fresh instance, ``on_activate`` again) after an exponential backoff, its queued
messages kept. Past ``max_restarts`` within ``period_seconds`` the pool fails and its parent
supervisor applies its own strategy. A pool restart drops the actor instances but keeps every
mailbox: nothing already accepted is lost.
"""

from __future__ import annotations

import contextlib
from collections import deque
from contextvars import Token
from time import perf_counter
from typing import TYPE_CHECKING, Any

import attrs
import structlog
import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule, wait_task_rescheduled

from tektree._actor import Actor, Handler
from tektree._codec import roundtrip
from tektree._context import (
    ACTIVE,
    BACKOFF,
    GONE,
    NEW,
    PASSIVATE_EXPLICIT,
    PASSIVATE_IDLE,
    ActorContext,
)
from tektree._envelope import Envelope
from tektree._errors import (
    ActorStopped,
    MailboxFull,
    SupervisorFailed,
    UnhandledMessage,
)
from tektree._ids import ActorId
from tektree._lifecycle import ActivationLifecycle
from tektree._lifecycle import backoff_delay as backoff_delay  # re-exported
from tektree._telemetry import LatencyHistogram, current_cell

if TYPE_CHECKING:
    from tektree._system import ActorSystem
    from tektree.config import ActorPoolSpec

_log = structlog.get_logger("tektree.pool")



class ActorPool(ActivationLifecycle):
    """All activations of one kind on this node, their workers and their supervision."""

    def __init__(self, system: ActorSystem, spec: ActorPoolSpec, actor_cls: type[Actor]) -> None:
        self.system = system
        self.spec = spec
        self.kind = spec.kind
        self.actor_cls = actor_cls
        self.handlers: dict[type, Handler] = actor_cls.handlers()
        self.capacity = spec.mailbox_capacity
        self.batch_size = spec.batch_size
        self.cells: dict[str, ActorContext] = {}
        self.run_queue: deque[ActorContext] = deque()
        self._idle_workers: list[Task] = []
        self._n_workers = 0
        self._available = 0
        self._busy = 0  # cells whose turn is running
        self._nursery: trio.Nursery | None = None
        self.running = False
        self._restarts: deque[float] = deque()
        self._failure: SupervisorFailed | None = None
        self._stop_scope: trio.CancelScope | None = None
        self._emptied = trio.lowlevel.ParkingLot()
        self._clock = -1.0
        #: Fencing tokens of the leases held here (cluster mode only): key → token.
        self.fencing: dict[str, int] = {}
        # Metrics: plain counters, read by the collector at scrape time.
        self.queued = 0
        self.handled = 0
        self.failures = 0
        self.restarts_total = 0
        self.activations = 0
        self.passivations = 0
        self.dead_letters = 0
        self.latency = LatencyHistogram()

    def __repr__(self) -> str:
        return f"<ActorPool {self.kind} activations={len(self.cells)} queued={self.queued}>"

    def _now(self) -> float:
        """trio time, coarsened to 10 ms so that activations touched together share one float
        object (24 bytes each otherwise: a measurable share of an idle activation's cost)."""
        now = self.system.timers.now()
        if now - self._clock >= 0.01:
            self._clock = now
        return self._clock

    # -- sending -----------------------------------------------------------------------------
    def check_handles(self, actor_id: ActorId, message: Any) -> Handler:
        handler = self.handlers.get(type(message))
        if handler is None:
            raise UnhandledMessage(
                actor_id,
                type(message).__qualname__,
                tuple(sorted(t.__qualname__ for t in self.handlers)),
            )
        return handler

    def deliver_nowait(self, env: Envelope, *, force: bool = False) -> bool:
        """Queue ``env``; False when the mailbox is full and the policy is backpressure.

        ``force`` (messages from other nodes, timer ticks) ignores the capacity.
        """
        key = env.target.key
        cell = self.cells.get(key)
        if cell is None:
            cell = ActorContext(self, env.target, self._now())
            self.cells[key] = cell
        mailbox = cell.mailbox
        if mailbox is None:
            mailbox = cell.mailbox = []
        elif len(mailbox) >= self.capacity and not env.from_timer and not force:
            overflow = self.spec.overflow
            if overflow == "backpressure":
                return False
            if overflow == "reject":
                raise MailboxFull(env.target, self.capacity)
            self.queued -= 1
            dropped = mailbox.pop(0)
            self._reply_error(dropped, MailboxFull(env.target, self.capacity))
        mailbox.append(env)
        self.queued += 1
        if not cell.scheduled and not cell.running and cell.state <= ACTIVE:
            self._schedule(cell)
        return True

    async def wait_for_room(self, key: str) -> None:
        """Park until the mailbox of ``key`` drains a little (backpressure)."""
        cell = self.cells.get(key)
        if cell is None or cell.mailbox is None or len(cell.mailbox) < self.capacity:
            await trio.lowlevel.checkpoint()
            return
        waiters = cell.waiting_senders
        if waiters is None:
            waiters = cell.waiting_senders = deque()
        task = current_task()
        waiters.append(task)

        def abort(_: RaiseCancelT) -> Abort:
            with contextlib.suppress(ValueError):  # already woken
                waiters.remove(task)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def fire_timer(self, cell: ActorContext, name: str) -> None:
        """Timer callback (runs in the timer task): deliver the tick, re-arm a periodic one."""
        timers = cell.timers
        timer = timers.get(name) if timers else None
        if timer is None or cell.state == GONE or self.cells.get(cell.id.key) is not cell:
            return
        if timer.interval is None:
            del timers[name]  # type: ignore[union-attr]
        else:
            timer.handle = self.system.timers.call_later(
                timer.interval, self.fire_timer, cell, name
            )
            if timer.pending:
                return
            timer.pending = True
        env = self.system.make_envelope(cell.id, timer.message, None)
        env.from_timer = True
        self.deliver_nowait(env)

    # -- scheduling --------------------------------------------------------------------------
    def _schedule(self, cell: ActorContext) -> None:
        cell.scheduled = True
        self.run_queue.append(cell)
        if self._available <= 0:
            self._add_worker()

    def _add_worker(self) -> None:
        if self._idle_workers:
            self._available += 1
            reschedule(self._idle_workers.pop())
        elif self._nursery is not None and self._n_workers < self.spec.max_concurrency:
            self._n_workers += 1
            self._available += 1
            self._nursery.start_soon(self._worker)

    async def _worker(self) -> None:
        run_queue = self.run_queue
        idle = self._idle_workers
        me = current_task()
        parked = False

        def abort(_: RaiseCancelT) -> Abort:
            if me in idle:
                idle.remove(me)
            return Abort.SUCCEEDED

        try:
            while True:
                while run_queue:
                    await self._run_cell(run_queue.popleft())
                self._available -= 1
                parked = True
                idle.append(me)
                await wait_task_rescheduled(abort)
                parked = False  # whoever woke us counted us available again
        finally:
            self._n_workers -= 1
            if not parked:
                self._available -= 1

    # -- turns -------------------------------------------------------------------------------
    async def _run_cell(self, cell: ActorContext) -> None:
        cell.scheduled = False
        if cell.running or cell.state >= BACKOFF:
            return  # an inline ask holds the turn, or the cell is waiting or gone
        cell.running = True
        self._busy += 1
        token = current_cell.set(cell)
        handled = 0
        active = False
        batch: list[Envelope] = []
        index = start = 0
        try:
            if cell.actor is None and not await self._activate(cell):
                return
            actor = cell.actor
            handlers = self.handlers
            check = self.system.check_serialization
            latency = self.latency
            limit = self.batch_size
            crashed = False
            while not crashed and handled < limit and cell.actor is actor:
                mailbox = cell.mailbox
                if not mailbox:
                    break
                # Take a slice: the list is swapped out or cut once per batch, never popped
                # from the front per message. Arrivals meanwhile go to cell.mailbox.
                take = limit - handled
                if len(mailbox) <= take:
                    batch = mailbox
                    cell.mailbox = []
                else:
                    batch = mailbox[:take]
                    del mailbox[:take]
                self.queued -= len(batch)
                index = 0
                size = len(batch)
                while index < size:
                    env = batch[index]
                    start = index
                    index += 1
                    handled += 1
                    message = env.message
                    if env.from_timer:
                        self._timer_delivered(cell, message)
                    else:
                        active = True
                    h = handlers.get(type(message))
                    cell.current = env
                    started = perf_counter()
                    try:
                        if h is None:
                            self.check_handles(cell.id, message)
                            raise AssertionError("unreachable")  # pragma: no cover
                        if h.batched:
                            index, active = self._take_run(cell, batch, index, active)
                            handled += index - start - 1
                            self._available -= 1
                            if self.run_queue and self._available <= 0:
                                self._add_worker()
                            try:
                                result = await h.fn(actor, [e.message for e in batch[start:index]])
                            finally:
                                self._available += 1
                        elif h.is_async:
                            self._available -= 1
                            if self.run_queue and self._available <= 0:
                                self._add_worker()
                            try:
                                result = await h.fn(actor, message)
                            finally:
                                self._available += 1
                        else:
                            result = h.fn(actor, message)
                    except UnhandledMessage as exc:
                        for unhandled in batch[start:index]:
                            self._reply_error(unhandled, exc)
                        continue
                    except Exception as exc:
                        latency.observe(perf_counter() - started)
                        self._requeue_front(cell, batch[index:])
                        run, batch = batch[start:index], []
                        await self._crashed_run(cell, run, exc)
                        crashed = True
                        break
                    latency.observe(perf_counter() - started)
                    cell.crash_count = 0
                    if h.batched:
                        self._reply_run(cell, h, batch[start:index], result)
                        continue
                    reply = env.reply
                    if reply is not None:
                        if check:
                            result = self._checked_reply(env, result)
                        reply.set_value(result)
                    ack = env.ack
                    if ack is not None:
                        ack()
                batch = []
            if cell.passivate_requested:
                await self._maybe_passivate(cell, active)
        except BaseException:
            # Cancelled mid-batch (the pool is stopping): the message being handled fails its
            # ask; the rest of the batch goes back in front of the mailbox, not lost.
            if batch:
                self._requeue_front(cell, batch[index:])
                for interrupted in batch[start:index]:
                    self._reply_error(interrupted, ActorStopped(cell.id, "its pool stopped"))
            raise
        finally:
            current_cell.reset(token)
            self._busy -= 1
            self.handled += handled
            cell.running = False
            cell.current = None
            self._after_turn(cell, active)
        await trio.lowlevel.checkpoint()

    def _take_run(
        self, cell: ActorContext, batch: list[Envelope], index: int, active: bool
    ) -> tuple[int, bool]:
        """Extend a batch handler's run past ``index`` over the messages of the same class;
        the end of the run, and whether any of it was not a timer tick."""
        kind = type(batch[index - 1].message)
        size = len(batch)
        while index < size and type(batch[index].message) is kind:
            env = batch[index]
            if env.from_timer:
                self._timer_delivered(cell, env.message)
            else:
                active = True
            index += 1
        return index, active

    def _reply_run(self, cell: ActorContext, h: Handler, run: list[Envelope], result: Any) -> None:
        """Send each message of a batch handler's run its own reply."""
        if not isinstance(result, list) or len(result) != len(run):
            got = f"a list of {len(result)}" if isinstance(result, list) else type(result).__name__
            error = TypeError(f"batch handler {h.name} of {cell.id} must return a list of "
                              f"{len(run)} replies, one per message; it returned {got}")
            for env in run:
                self._reply_error(env, error)
            return
        check = self.system.check_serialization
        for env, value in zip(run, result, strict=True):
            reply = env.reply
            if reply is not None:
                reply.set_value(self._checked_reply(env, value) if check else value)
            if env.ack is not None:
                env.ack()

    async def _crashed_run(self, cell: ActorContext, run: list[Envelope], exc: Exception) -> None:
        """A handler raised on ``run`` (one message, or a batch handler's run): every ask of
        the run fails with the same ``ActorFailed``, then the activation is supervised."""
        failed = self._failure_of(cell, exc)
        for env in run[1:]:
            if env.reply is not None:
                env.reply.set_error(failed)
            if env.ack is not None:
                env.ack()
        await self._crashed(cell, run[0], exc, failed=failed)

    def _requeue_front(self, cell: ActorContext, rest: list[Envelope]) -> None:
        if not rest:
            return
        self.queued += len(rest)
        mailbox = cell.mailbox
        if mailbox is None:
            cell.mailbox = rest
        else:
            mailbox[0:0] = rest

    def _after_turn(self, cell: ActorContext, active: bool) -> None:
        mailbox = cell.mailbox
        if active:
            # Timer ticks are not activity; anything else moves the cell to the back of the
            # idle order (dicts keep insertion order: the reaper reads from the front). A cell
            # touched again within the same coarse tick is there already (nothing behind it
            # has a later time).
            cells = self.cells
            key = cell.id.key
            now = self._now()
            if cell.last_active is not now and cells.get(key) is cell:
                cell.last_active = now
                del cells[key]
                cells[key] = cell
        waiters = cell.waiting_senders
        if waiters:
            room = self.capacity - (len(mailbox) if mailbox else 0)
            while waiters and room > 0:
                reschedule(waiters.popleft())
                room -= 1
        if mailbox:
            if cell.state <= ACTIVE and not cell.scheduled:
                self._schedule(cell)
        elif cell.state != BACKOFF:
            cell.mailbox = None  # an idle activation keeps no queue
        system = self.system
        if system.quiet_waiting:
            system.check_quiet()

    def _timer_delivered(self, cell: ActorContext, message: Any) -> None:
        if cell.timers:
            for timer in cell.timers.values():
                if timer.message is message:
                    timer.pending = False

    def _checked_reply(self, env: Envelope, result: Any) -> Any:
        return roundtrip(result)

    def run_inline_nowait(
        self, cell: ActorContext, handler: Handler, env: Envelope
    ) -> tuple[bool, Any]:
        """Run a ``def`` handler in the calling task (the caller checked the cell is idle),
        without a coroutine when the turn needs no await (the common case): ``(True,
        result)``; else ``(False, awaitable)``, the rest of the turn (held meanwhile), to
        await at once: it returns the result, or raises the handler's failure as
        :class:`ActorFailed` once the activation was supervised."""
        cell.running = True
        self._busy += 1
        token = current_cell.set(cell)
        cell.current = env
        started = perf_counter()
        try:
            result = handler.fn(cell.actor, env.message)
        except Exception as exc:
            return False, self._inline_failed(cell, env, exc, started, token)
        except BaseException:
            self._end_inline(cell, token)
            raise
        self.latency.observe(perf_counter() - started)
        cell.crash_count = 0
        if cell.passivate_requested or self.system.check_serialization:
            return False, self._inline_rest(cell, env, result, token)
        self._end_inline(cell, token)
        return True, result

    async def _inline_failed(self, cell: ActorContext, env: Envelope, exc: Exception,
                             started: float, token: Token[ActorContext | None]) -> Any:
        try:
            self.latency.observe(perf_counter() - started)
            failed = self._failure_of(cell, exc)
            await self._crashed(cell, env, exc, failed=failed)
            raise failed from None
        finally:
            self._end_inline(cell, token)

    async def _inline_rest(self, cell: ActorContext, env: Envelope, result: Any,
                           token: Token[ActorContext | None]) -> Any:
        try:
            if cell.passivate_requested:
                await self._maybe_passivate(cell, True)
            if self.system.check_serialization:
                result = self._checked_reply(env, result)
            return result
        finally:
            self._end_inline(cell, token)

    def _end_inline(self, cell: ActorContext, token: Token[ActorContext | None]) -> None:
        current_cell.reset(token)
        self._busy -= 1
        self.handled += 1
        cell.running = False
        cell.current = None
        self._after_turn(cell, True)

    # -- lifecycle of one activation ---------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the kind until cancelled; raise :class:`SupervisorFailed` past its intensity."""
        self._failure = None
        self._restarts.clear()
        try:
            with trio.CancelScope() as self._stop_scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._n_workers = self._available = 0
                    self.running = True
                    # Rebuild the run queue: messages may have arrived while the pool was
                    # down between restarts; they are served now, not lost.
                    self.run_queue.clear()
                    for cell in self.cells.values():
                        cell.scheduled = False
                        if cell.mailbox and cell.state <= ACTIVE:
                            self._schedule(cell)
                    if self.spec.restart != "permanent":
                        nursery.start_soon(self._reaper)
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self.running = False
            self._nursery = None
            self._stop_scope = None
            self._idle_workers.clear()
            with trio.CancelScope(shield=True):
                await self._stop_all()
        if self._failure is not None:
            raise self._failure

    async def _stop_all(self) -> None:
        """After the workers are gone: stop every instance, keep every mailbox."""
        self.run_queue.clear()
        self._busy = 0
        for cell in list(self.cells.values()):
            cell.scheduled = False
            cell.running = False
            actor = cell.actor
            cell.actor = None
            cell.cancel_all_timers()
            if cell.state != BACKOFF:
                cell.state = NEW
            if actor is not None:
                await self._call_on_stop(actor, cell)
            if not cell.mailbox:
                self._remove(cell)
        system = self.system
        if system.quiet_waiting:
            system.check_quiet()

    async def _reaper(self) -> None:
        timeout = self.spec.idle_timeout_seconds
        while True:
            now = trio.current_time()
            expired = []
            next_check = now + timeout
            for cell in self.cells.values():
                due = cell.last_active + timeout
                if due > now:
                    next_check = due
                    break
                expired.append(cell)
            for cell in expired:
                if cell.state != ACTIVE:
                    continue
                if cell.passivate_requested != PASSIVATE_EXPLICIT:
                    cell.passivate_requested = PASSIVATE_IDLE
                if cell.running or cell.scheduled:
                    # Its turn ends by passivating unless it handled real (non-timer) work.
                    next_check = min(next_check, now + timeout / 8)
                else:
                    self._schedule(cell)
            await trio.sleep_until(max(next_check, now + timeout / 100))

    def request_passivate_all(self) -> None:
        """Ask every activation to passivate after its current work (node stop, migration)."""
        for cell in list(self.cells.values()):
            if cell.state == GONE:
                continue
            if cell.actor is None and not cell.mailbox:
                self._remove(cell)  # nothing to save, nothing to do (new, or backing off)
                continue
            cell.passivate_requested = PASSIVATE_EXPLICIT
            if cell.state == ACTIVE and not cell.scheduled and not cell.running:
                self._schedule(cell)

    async def wait_empty(self) -> None:
        while self.cells:
            await self._emptied.park()

    @property
    def idle(self) -> bool:
        return self.queued == 0 and self._busy == 0 and not self.run_queue

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            kind=self.kind,
            activations=len(self.cells),
            queued=self.queued,
            running=self._busy,
            workers=self._n_workers,
            handled=self.handled,
            failures=self.failures,
            restarts=self.restarts_total,
            activated=self.activations,
            passivated=self.passivations,
            dead_letters=self.dead_letters,
        )


@attrs.frozen(kw_only=True)
class PoolStatistics:
    """A snapshot of one pool's counters (see :meth:`ActorPool.statistics`)."""

    kind: str
    activations: int
    queued: int
    running: int
    workers: int
    handled: int
    failures: int
    restarts: int
    activated: int
    passivated: int
    dead_letters: int
