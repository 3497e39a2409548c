"""The reminders node service: claims due reminders with a lease, fires them, moves them on.

```toml
[[supervisor.children]]
type = "service"
name = "reminders"
service = "reminders"        # after store and cluster
options = { poll_interval_seconds = 1.0, lookahead_seconds = 2.0, lease_seconds = 30.0 }
```

How a reminder fires exactly once in effect
-------------------------------------------
1. **Claim.** Every ``poll_interval_seconds`` the service reads the reminders of the buckets
   it owns that are due within ``lookahead_seconds`` and free (``lease_until_ms`` passed), and
   claims them with one conditional update (still free → ``owner`` = this node,
   ``lease_until_ms`` = now + ``lease_seconds``, ``claim`` = a token new to this pass), then
   reads back which carry its token. A reminder claimed by two nodes at once is impossible:
   for the second, it is no longer free.
2. **Fire.** Claimed reminders wait in a local heap until their due time. Just before firing,
   one point read checks that the claim still holds (same token, same owner: not cancelled,
   replaced or re-claimed after an expiry) and that the lease outlives the delivery; then the
   message is *asked* of the target virtual actor (activating it, wherever it lives), with the
   occurrence id (:func:`~tektree.reminders.occurrence_id`) as the envelope's message id.
3. **Move on.** After the reply, a write conditional on the claim token deletes a one-shot
   reminder (those of one claim pass in one delete) or moves a periodic one to its next due
   time on its grid (missed occurrences collapse into one). Completions are group-committed
   in one unit.

A node that dies between 2 and 3 leaves its claim to expire; the bucket's new owner claims the
reminder again and delivers the *same* occurrence id, which the handler deduplicates: delivery
is at-least-once, effects exactly-once. A failed delivery (the handler raised, the ask timed
out) is retried after an exponential backoff (the lease is set to the retry time), at most
``max_attempts`` times; then a periodic reminder skips to its next occurrence and a one-shot
one is moved to ``reminders_failed`` (``Reminders.failed()``, ``Reminders.retry_failed()``).

Spreading the work
------------------
The reminder id hashes to one of :data:`~tektree.reminders.BUCKETS` buckets, and each bucket's
owner is its home by rendezvous placement over the live members (those with ``role`` when the
option is set), recomputed when membership changes, so the claims spread over the nodes
instead of piling onto the first one up, and a dead node's buckets move to the survivors.
Embedded mode: one node owns every bucket.

Time is wall time (Unix milliseconds in the store); a lease is only as good as the agreement of
the nodes' clocks, so ``lease_seconds`` must exceed ``lookahead_seconds`` +
``fire_timeout_seconds`` by more than any clock skew (NTP keeps it to milliseconds).
"""

from __future__ import annotations

import heapq
import itertools
import math
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import structlog
import trio

from tektree._errors import CodecError, NodeStopping, TekTreeError, UnhandledMessage
from tektree._lifecycle import backoff_delay
from tektree._options import at_least, positive
from tektree._telemetry import correlation_id
from tektree._wallclock import Passes, WallAlarm, WallClock
from tektree.persistence import DocumentStore, Unit
from tektree.reminders._model import (
    BUCKETS,
    FAILED_REMINDERS,
    REMINDERS,
    Reminder,
    next_due_ms,
)
from tektree.reminders._table import Reminders

if TYPE_CHECKING:
    from tektree._system import ActorSystem

__all__ = ["ReminderOptions", "ReminderService", "ReminderStatistics"]

_log = structlog.get_logger("tektree.reminders")

#: A delivery is not started unless the claim's lease outlives its timeout by this much.
LEASE_SAFETY_MS: Final = 1000
#: Errors no retry can mend: the occurrence is given up at once.
_PERMANENT = (CodecError, UnhandledMessage)


@attrs.frozen(kw_only=True)
class ReminderOptions:
    """``options`` of the reminders service (see the module docstring)."""

    #: How often the owned buckets are polled for due reminders (seconds).
    poll_interval_seconds: float = attrs.field(default=1.0, validator=positive)
    #: Reminders due within this are claimed ahead and fired from memory at their time.
    lookahead_seconds: float = attrs.field(default=2.0, validator=at_least(0))
    #: A claim's lifetime: how late a reminder fires when its claimer dies.
    lease_seconds: float = attrs.field(default=30.0, validator=positive)
    #: How long one delivery (an ask of the target) may take.
    fire_timeout_seconds: float = attrs.field(default=10.0, validator=positive)
    #: Deliveries of one occurrence before it is given up.
    max_attempts: int = attrs.field(default=5, validator=at_least(1))
    #: Backoff between failed deliveries: first delay, doubling up to the max (seconds).
    retry_initial_seconds: float = attrs.field(default=1.0, validator=positive)
    retry_max_seconds: float = attrs.field(default=60.0, validator=positive)
    #: Reminders claimed per store round trip, and held claimed (not yet fired) at most.
    claim_batch: int = attrs.field(default=1000, validator=at_least(1))
    max_claimed: int = attrs.field(default=5000, validator=at_least(1))
    #: Deliveries running at once.
    max_in_flight: int = attrs.field(default=256, validator=at_least(1))
    #: When set, only members with this role own buckets (run the service on those nodes).
    role: str = ""
    #: How often the counters are logged ("reminders statistics", when they changed).
    stats_log_seconds: float = attrs.field(default=60.0, validator=positive)

    def __attrs_post_init__(self) -> None:
        floor = self.lookahead_seconds + self.fire_timeout_seconds + LEASE_SAFETY_MS / 1000
        if self.lease_seconds <= floor:
            raise ValueError(
                f"lease_seconds must exceed lookahead_seconds + fire_timeout_seconds + "
                f"{LEASE_SAFETY_MS / 1000:g} (= {floor:g}), got {self.lease_seconds!r}: a claim "
                "must outlive the wait for its due time and the delivery"
            )
        if self.retry_max_seconds < self.retry_initial_seconds:
            raise ValueError(
                f"retry_max_seconds ({self.retry_max_seconds!r}) must be >= "
                f"retry_initial_seconds ({self.retry_initial_seconds!r})"
            )


@attrs.frozen(kw_only=True)
class ReminderStatistics:
    """A snapshot of one node's reminder service counters."""

    claimed: int
    fired: int
    retried: int
    failed: int
    superseded: int
    released: int
    held: int
    in_flight: int
    owned_buckets: int


@attrs.define(slots=True, eq=False)
class _Claim:
    reminder: Reminder
    lease_until_ms: int


@attrs.frozen(slots=True)
class _Outcome:
    claim: _Claim
    #: "delivered", "failed", "release"
    kind: str
    at_ms: int
    error: str | None = None
    permanent: bool = False


def _ms(seconds: float) -> int:
    return math.floor(seconds * 1000)


def new_token() -> str:
    """A claim token: unique per claim pass (and per re-armed periodic occurrence)."""
    return secrets.token_hex(8)


class ReminderService:
    """One node's claimer, scheduler, firers and committer (see the module docstring).

    ``owned`` says which buckets this node owns now (None: all of them, embedded mode).
    """

    def __init__(
        self,
        *,
        table: Reminders,
        system: ActorSystem,
        node: str,
        options: ReminderOptions | None = None,
        clock: WallClock | None = None,
        owned: Callable[[], frozenset[int] | None] = lambda: None,
    ) -> None:
        self.table = table
        self.store: DocumentStore = table.store
        self.system = system
        self.node = node
        self.options = options or ReminderOptions()
        self.clock = clock or table.clock
        self._owned = owned
        self._lookahead_ms = _ms(self.options.lookahead_seconds)
        self._lease_ms = _ms(self.options.lease_seconds)
        self._timeout_ms = _ms(self.options.fire_timeout_seconds)
        self._claims: dict[str, _Claim] = {}
        self._heap: list[tuple[int, int, _Claim]] = []
        self._seq = itertools.count()
        self._outcomes: list[_Outcome] = []
        self._released_due: list[int] = []
        self._send, self._receive = trio.open_memory_channel[_Claim](math.inf)
        self._claim_alarm = WallAlarm(self.clock)
        self._schedule_alarm = WallAlarm(self.clock)
        self._commit_alarm = WallAlarm(self.clock)
        self._idle = trio.Event()
        self.stopping = False
        self._in_flight = 0
        self._starved = False
        self._passes = Passes()
        self._last_pass_full = False
        self._committing = False
        self.claimed = self.fired = self.retried = self.failed = 0
        self.superseded = self.released = 0

    # -- the outside ---------------------------------------------------------------------------
    def statistics(self) -> ReminderStatistics:
        owned = self._owned()
        return ReminderStatistics(
            claimed=self.claimed, fired=self.fired, retried=self.retried, failed=self.failed,
            superseded=self.superseded, released=self.released, held=len(self._claims),
            in_flight=self._in_flight, owned_buckets=BUCKETS if owned is None else len(owned),
        )

    def registered(self, reminder: Reminder) -> None:
        """A reminder was (re)registered through this node: claim it now if it is due soon
        and ours (otherwise the owner's next poll finds it)."""
        held = self._claims.get(reminder.id)
        if held is not None:
            # Replaced under our claim: the pre-fire check will drop the old claim; stop
            # counting it against max_claimed now.
            self._claims.pop(reminder.id, None)
        owned = self._owned()
        if self.stopping or (owned is not None and reminder.bucket not in owned):
            return
        if reminder.due_ms <= _ms(self.clock.time()) + self._lookahead_ms:
            self._claim_alarm.poke()

    def wake(self) -> None:
        """Poll for due reminders now."""
        self._claim_alarm.poke()

    def _idle_now(self) -> bool:
        if self._last_pass_full or self._in_flight or self._outcomes or self._committing:
            return False
        if self._starved and len(self._claims) < self.options.max_claimed:
            return False  # the last pass had no room, and room came (``_drop``): a pass is owed
        now_ms = _ms(self.clock.time())
        return not any(
            due <= now_ms and self._claims.get(claim.reminder.id) is claim
            for due, _, claim in self._heap
        )

    async def settle(self) -> None:
        """Return once nothing is due: a claim pass that started after this call has run, and
        every claimed reminder due by the clock's time has been delivered and its outcome
        committed. Tests call it after moving a ``ManualWallClock`` (under ``fail_after``)."""
        await self._passes.settle(self._claim_alarm, self._idle_now)

    # -- running -------------------------------------------------------------------------------
    async def run(
        self,
        *,
        stopping: trio.Event | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; once ``stopping`` is set, stop claiming and firing, let the
        deliveries in flight finish and release every claim still held (another node takes
        them at once), then idle until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._committer)
            async with trio.open_nursery() as work:
                work.start_soon(self._claimer)
                work.start_soon(self._scheduler)
                work.start_soon(self._log_statistics)
                for _ in range(self.options.max_in_flight):
                    work.start_soon(self._firer)
                task_status.started()
                if stopping is None:
                    await trio.sleep_forever()
                else:
                    await stopping.wait()
                self.stopping = True
                await self._drain_in_flight()
                work.cancel_scope.cancel()
            await self._release_held()
            await trio.sleep_forever()

    async def _log_statistics(self) -> None:
        last = None
        while True:
            await trio.sleep(self.options.stats_log_seconds)
            stats = self.statistics()
            if stats != last:
                _log.info("reminders statistics", node=self.node, **attrs.asdict(stats))
                last = stats

    async def _drain_in_flight(self) -> None:
        with trio.move_on_after(self.options.fire_timeout_seconds + 1):
            while self._in_flight:
                self._idle = trio.Event()
                await self._idle.wait()

    async def _release_held(self) -> None:
        held = [c for c in self._claims.values()]
        if not held:
            return
        now_ms = _ms(self.clock.time())
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await self._commit([_Outcome(claim=c, kind="release", at_ms=now_ms) for c in held])
        _log.info("reminder claims released", node=self.node, released=len(held))

    # -- claiming ------------------------------------------------------------------------------
    async def _claimer(self) -> None:
        options = self.options
        while True:
            # The next poll is due one interval after this one *started*: a clock that moved
            # during the query is not waited out again.
            next_poll = self.clock.time() + options.poll_interval_seconds
            self._passes.begin()
            room = options.max_claimed - len(self._claims)
            full = False
            if room > 0:
                limit = min(room, options.claim_batch)
                full = await self.claim_once(limit) >= limit
            self._starved = room <= 0 or full
            self._last_pass_full = full
            self._passes.end()
            if full:
                await trio.lowlevel.checkpoint()
                continue
            await self._claim_alarm.sleep_until(next_poll)

    async def claim_once(self, limit: int) -> int:
        """Claim up to ``limit`` due-soon reminders of the owned buckets; how many were read
        (claimed or not): ``limit`` means there may be more."""
        owned = self._owned()
        if owned is not None and not owned:
            await trio.lowlevel.checkpoint()
            return 0
        now_ms = _ms(self.clock.time())
        query: dict[str, Any] = {"due_ms": {"$lte": now_ms + self._lookahead_ms},
                                 "lease_until_ms": {"$lte": now_ms}}
        if owned is not None and len(owned) < BUCKETS:
            query["bucket"] = {"$in": sorted(owned)}
        page = await self.store.find(REMINDERS, query, sort=[("due_ms", 1)], limit=limit)
        candidates = [doc for doc in page.items if doc["_id"] not in self._claims]
        if not candidates:
            return len(page.items)
        # One conditional update claims them all (still free: lease passed), tagging them with
        # this pass's token; one read tells which were won (another node may have won some).
        ids = [doc["_id"] for doc in candidates]
        token, lease_until = new_token(), now_ms + self._lease_ms
        won = await self.store.update(
            REMINDERS, {"_id": {"$in": ids}, "lease_until_ms": {"$lte": now_ms}},
            {"$set": {"owner": self.node, "lease_until_ms": lease_until, "claim": token},
             "$inc": {"version": 1}})
        earliest = self._heap[0][0] if self._heap else None
        if won == len(ids):  # the common case: all of them, as read plus the claim
            for doc in candidates:
                doc.update(owner=self.node, lease_until_ms=lease_until, claim=token,
                           version=doc["version"] + 1)
            mine = candidates
        elif won:
            mine = (await self.store.find(REMINDERS, {"_id": {"$in": ids},
                                                      "claim": token})).items
        else:
            mine = []
        for doc in mine:
            self._hold(_Claim(reminder=Reminder.from_document(doc), lease_until_ms=lease_until))
            self.claimed += 1
        if self._heap and (earliest is None or self._heap[0][0] < earliest):
            self._schedule_alarm.poke()
        return len(page.items)

    def _hold(self, claim: _Claim) -> None:
        self._claims[claim.reminder.id] = claim
        heapq.heappush(self._heap, (claim.reminder.due_ms, next(self._seq), claim))

    # -- firing --------------------------------------------------------------------------------
    async def _scheduler(self) -> None:
        heap = self._heap
        while True:
            now_ms = _ms(self.clock.time())
            while heap and heap[0][0] <= now_ms:
                _, _, claim = heapq.heappop(heap)
                if self._claims.get(claim.reminder.id) is claim:
                    self._in_flight += 1  # from here until its firer is done with it
                    self._send.send_nowait(claim)
            await self._schedule_alarm.sleep_until(heap[0][0] / 1000 if heap else None)

    async def _firer(self) -> None:
        async for claim in self._receive:
            try:
                if self.stopping:
                    # Stays held: released below, for another node to take at once.
                    await trio.lowlevel.checkpoint()
                    continue
                outcome = await self._fire(claim)
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()
            if outcome is not None:
                self._outcomes.append(outcome)
                self._commit_alarm.poke()
            self._passes.progress()

    async def _fire(self, claim: _Claim) -> _Outcome | None:
        reminder = claim.reminder
        if self._claims.get(reminder.id) is not claim:
            await trio.lowlevel.checkpoint()
            return None
        if claim.lease_until_ms - _ms(self.clock.time()) < self._timeout_ms + LEASE_SAFETY_MS:
            # The claim would lapse during the delivery (this node fell behind): let it lapse
            # and be claimed afresh rather than risk a second deliverer.
            self._drop(claim)
            self.superseded += 1
            await trio.lowlevel.checkpoint()
            return None
        current = await self.store.get(REMINDERS, reminder.id)
        if (
            current is None
            or current.get("claim") != reminder.claim
            or current.get("owner") != self.node
        ):
            self._drop(claim)  # cancelled, replaced or re-claimed meanwhile
            self.superseded += 1
            return None
        try:
            message = reminder.message()
            token = correlation_id.set(reminder.occurrence_id)
            try:
                await self.system.ref(reminder.actor).ask(
                    message, timeout=self.options.fire_timeout_seconds,
                    message_id=reminder.occurrence_id,
                )
            finally:
                correlation_id.reset(token)
        except NodeStopping:
            return _Outcome(claim=claim, kind="release", at_ms=_ms(self.clock.time()))
        except _PERMANENT as exc:
            return self._failure(claim, exc, permanent=True)
        except (TekTreeError, LookupError) as exc:
            return self._failure(claim, exc, permanent=False)
        return _Outcome(claim=claim, kind="delivered", at_ms=_ms(self.clock.time()))

    def _failure(self, claim: _Claim, exc: BaseException, *, permanent: bool) -> _Outcome:
        error = f"{type(exc).__name__}: {exc}"[:1000]
        _log.warning("reminder delivery failed", reminder=claim.reminder.id,
                     occurrence=claim.reminder.occurrence_id,
                     attempt=claim.reminder.attempts + 1, error=error)
        return _Outcome(claim=claim, kind="failed", at_ms=_ms(self.clock.time()), error=error,
                        permanent=permanent)

    def _drop(self, claim: _Claim) -> None:
        if self._claims.get(claim.reminder.id) is claim:
            del self._claims[claim.reminder.id]
            if self._starved:
                self._claim_alarm.poke()

    # -- moving on -----------------------------------------------------------------------------
    async def _committer(self) -> None:
        while True:
            if not self._outcomes:
                await self._commit_alarm.sleep_until(None)
                continue
            batch, self._outcomes = self._outcomes, []
            self._committing = True
            try:
                await self._commit(batch)
            finally:
                self._committing = False
                self._passes.progress()

    async def _commit(self, batch: Sequence[_Outcome]) -> None:
        rearm: list[tuple[int, _Claim]] = []
        done: dict[str | None, list[str]] = {}  # delivered one-shots, by claim token
        async with self.store.unit() as unit:
            for outcome in batch:
                reminder = outcome.claim.reminder
                if outcome.kind == "delivered" and reminder.period_ms is None:
                    self.fired += 1
                    done.setdefault(reminder.claim, []).append(reminder.id)
                    continue
                position = len(unit.ops)  # the outcome's first (conditional) write
                again = self._record(unit, outcome)
                if again is not None:
                    rearm.append((position, again))
            for token, ids in done.items():  # one conditional delete per claim pass
                unit.delete(REMINDERS, {"_id": {"$in": ids}, "claim": token})
        for outcome in batch:
            self._drop(outcome.claim)
        for position, claim in rearm:
            if unit.results[position] and not self.stopping:
                self._hold(claim)
                self._schedule_alarm.poke()
        soon = _ms(self.clock.time()) + self._lookahead_ms
        if any(due <= soon for due in self._released_due):
            self._claim_alarm.poke()  # a released periodic one is due again: claim it now
        self._released_due.clear()

    def _record(self, unit: Unit, outcome: _Outcome) -> _Claim | None:
        """Record ``outcome``'s write(s) in ``unit`` (first the conditional one, on the claim
        token); returns the new claim when a periodic reminder stays claimed for its next
        occurrence. (Delivered one-shots are deleted together by ``_commit``.)"""
        reminder = outcome.claim.reminder
        where = {"_id": reminder.id, "claim": reminder.claim}
        now = outcome.at_ms
        free = {"owner": None, "claim": None}
        if outcome.kind == "release":
            self.released += 1
            unit.update(REMINDERS, where, {"$set": {**free, "lease_until_ms": 0},
                                           "$inc": {"version": 1}})
            return None
        attempts = reminder.attempts + 1
        if outcome.kind == "failed":
            options = self.options
            if not outcome.permanent and attempts < options.max_attempts:
                self.retried += 1
                delay = backoff_delay(attempts, options.retry_initial_seconds,
                                      options.retry_max_seconds)
                unit.update(REMINDERS, where, {
                    "$set": {**free, "lease_until_ms": now + _ms(delay),
                             "attempts": attempts, "last_error": outcome.error},
                    "$inc": {"version": 1}})
                return None
            self.failed += 1
            _log.error("reminder occurrence given up", reminder=reminder.id,
                       occurrence=reminder.occurrence_id, attempts=attempts,
                       error=outcome.error)
            if reminder.period_ms is None:
                unit.delete(REMINDERS, where)
                unit.update(FAILED_REMINDERS, reminder.occurrence_id, {"$set": {
                    "reminder_id": reminder.id, "actor": str(reminder.actor),
                    "name": reminder.name, "message_tag": reminder.message_tag,
                    "payload": reminder.payload, "due_ms": reminder.due_ms, "period_ms": None,
                    "bucket": reminder.bucket, "attempts": attempts,
                    "last_error": outcome.error, "failed_at": now}}, upsert=True)
                return None
        else:
            self.fired += 1
        assert reminder.period_ms is not None
        following = next_due_ms(reminder.due_ms, reminder.period_ms, now)
        changes: dict[str, Any] = {"due_ms": following, "attempts": 0, "last_fired_ms": now,
                                   "last_error": outcome.error}
        owned = self._owned()
        keep = (
            following <= now + self._lookahead_ms
            and not self.stopping
            and (owned is None or reminder.bucket in owned)
        )
        token = new_token() if keep else None
        lease_until = now + self._lease_ms if keep else 0
        changes.update(owner=self.node if keep else None, claim=token,
                       lease_until_ms=lease_until)
        unit.update(REMINDERS, where, {"$set": changes, "$inc": {"version": 1}})
        if not keep:
            self._released_due.append(following)
            return None
        return _Claim(
            reminder=attrs.evolve(reminder, due_ms=following, version=reminder.version + 1,
                                  attempts=0, owner=self.node, lease_until_ms=lease_until,
                                  claim=token, last_error=outcome.error, last_fired_ms=now),
            lease_until_ms=lease_until,
        )
