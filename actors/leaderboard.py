"""``LeaderboardActor``: one board (``global``, ``weekly:2025-W50``, ``area:<id>``), embedded mode.

The board is the pure :class:`~actors.rules.Leaderboard` (a sorted list in memory), made durable
by event sourcing: each accepted ``SetScore`` / ``OptOut`` is one journal event appended under its
``event_id`` (a redelivered update appends nothing), and the whole board is snapshotted every
``snapshot_every`` events and on passivation, so recovery reads one document plus a short tail.
Why a journal rather than periodic snapshots alone: an update acknowledged here is never lost,
and idempotency comes from the journal's unique ``(actor, event_id)`` index for free; the cost is
one small insert per update (group-committed by the store with the profile's own).

Ordering. Every update from a profile carries ``version`` (the profile's journal ``seq``, which
only grows): an update older than the last one applied for that user is ignored, so a stale
score redelivered late never overwrites a newer one. Scores are absolute (not deltas), so
applying the newest one is always right. ``version=0`` (an operator's direct call) skips the
check.

Live updates. After an update that changes ranks, one payload per message goes to the pub/sub
topic ``leaderboard:<board>``: ``{"board", "version", "changes": [{"user_id", "rank",
"previous_rank", "score"}...], "omitted"}``, the mover first, then every user it passed or who
passed up into its old place, at most ``rank_change_limit`` entries (``omitted`` counts the rest:
a client showing those ranks shifts them by one itself). Users whose rank did not change are not
listed.

``self.state`` is only the recovery base here: the live board is ``self.board``, and
:meth:`snapshot` saves that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from actors.rules import Clock, Leaderboard, SystemClock, parse_board
from tektree import handler, message
from tektree.persistence import EventSourcedActor, Journal, format_timestamp

__all__ = [
    "LEADERBOARD_KIND",
    "MAX_RADIUS",
    "MAX_TOP",
    "LeaderboardActor",
    "OptOut",
    "RankOf",
    "SetScore",
    "Top",
    "leaderboard_topic",
]

LEADERBOARD_KIND: Final = "leaderboard"
SCORE: Final = "leaderboard.score"
OPT_OUT: Final = "leaderboard.opt_out"
MAX_TOP: Final = 100
MAX_RADIUS: Final = 50
DEFAULT_RANK_CHANGE_LIMIT: Final = 100
_OPTIONS: Final = frozenset({"rank_change_limit", "role"})


def leaderboard_topic(board: str) -> str:
    """The pub/sub topic of a board's rank changes."""
    return f"leaderboard:{board}"


def _in_range(low: int, high: int | None) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[int], value: object) -> None:
        if type(value) is not int or value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"in {low}..{high}"
            raise ValueError(
                f"{type(instance).__name__}.{attribute.name} must be an int {bounds}, "
                f"got {value!r}"
            )

    return check


def _user_id(instance: Any, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty str, got {value!r}"
        )


@message("leaderboard.set_score")
class SetScore:
    """Set ``user_id``'s score; ``event_id`` makes it idempotent, ``at`` is the reach time."""

    user_id: str = attrs.field(validator=_user_id)
    score: int = attrs.field(validator=_in_range(0, None))
    event_id: str = attrs.field(validator=_user_id)
    at: dt.datetime | None = None
    version: int = attrs.field(default=0, validator=_in_range(0, None))
    opted_out: bool = False


@message("leaderboard.opt_out")
class OptOut:
    """Hide (or show again) ``user_id``; their score is kept."""

    user_id: str = attrs.field(validator=_user_id)
    opted_out: bool
    version: int = attrs.field(default=0, validator=_in_range(0, None))


@message("leaderboard.top")
class Top:
    limit: int = attrs.field(default=10, validator=_in_range(0, MAX_TOP))
    offset: int = attrs.field(default=0, validator=_in_range(0, None))


@message("leaderboard.rank_of")
class RankOf:
    user_id: str = attrs.field(validator=_user_id)
    radius: int = attrs.field(default=0, validator=_in_range(0, MAX_RADIUS))


def _entry(rank: int, user: str, score: int) -> dict[str, Any]:
    return {"rank": rank, "user_id": user, "score": score}


class LeaderboardActor(EventSourcedActor[dict[str, Any]]):
    """Kind ``leaderboard``, key = the board name (see the module docstring)."""

    snapshot_every = 1000
    #: The reach time of a ``SetScore`` without ``at``.
    clock: ClassVar[Clock] = SystemClock()

    board: Leaderboard
    versions: dict[str, int]
    name: str
    rank_change_limit: int
    _loaded_from: object

    async def on_activate(self) -> None:
        options = self.ctx.options
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise ValueError(f"option {unknown[0]!r} of kind {LEADERBOARD_KIND!r} is unknown; "
                             f"known: {sorted(_OPTIONS)}")
        limit = options.get("rank_change_limit", DEFAULT_RANK_CHANGE_LIMIT)
        if type(limit) is not int or limit < 1:
            raise ValueError(f"option rank_change_limit must be an int >= 1, got {limit!r}")
        self.rank_change_limit = limit
        self.name = parse_board(self.ctx.id.key).name  # BoardNameError names the bad key
        self._loaded_from = None
        await super().on_activate()
        self._load(self.state)

    # -- the fold ------------------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {"board": Leaderboard().snapshot(), "versions": {}}

    def _load(self, state: dict[str, Any]) -> None:
        if self._loaded_from is not state:
            self.board = Leaderboard.from_snapshot(state["board"])
            self.versions = dict(state["versions"])
            self._loaded_from = state

    def apply(self, state: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        self._load(state)
        user, version = event["user"], event["version"]
        if version and version <= self.versions.get(user, 0):
            return state
        if version:
            self.versions[user] = version
        if event["opted_out"]:
            self.board.opt_out(user)
        else:
            self.board.opt_in(user)
        if event["type"] == SCORE:
            at = dt.datetime.fromisoformat(event["at"].replace("Z", "+00:00"))
            self.board.set_score(user, event["score"], at)
        return state

    async def snapshot(self) -> None:
        seq = self.seq
        document = {"board": self.board.snapshot(), "versions": dict(self.versions)}
        await Journal(self.store).save_snapshot(self.journal_id, seq, document)
        self.snapshot_seq = max(self.snapshot_seq, seq)

    # -- updates -------------------------------------------------------------------------------
    def _stale(self, user: str, version: int) -> bool:
        return bool(version) and version <= self.versions.get(user, 0)

    @handler
    async def set_score(self, msg: SetScore) -> dict[str, Any]:
        user = msg.user_id
        if self._stale(user, msg.version):
            return {"status": "stale", "rank": self.board.rank(user)}
        if (self.board.score(user) == msg.score
                and self.board.is_opted_out(user) == msg.opted_out):
            return {"status": "unchanged", "rank": self.board.rank(user)}
        at = msg.at if msg.at is not None else self.clock.now()
        before = self.board.rank(user)
        event = {"type": SCORE, "user": user, "score": msg.score, "at": format_timestamp(at),
                 "version": msg.version, "opted_out": msg.opted_out}
        if not await self.persist([event], event_id=msg.event_id):
            return {"status": "duplicate", "rank": self.board.rank(user)}
        await self._publish(user, before)
        return {"status": "applied", "rank": self.board.rank(user)}

    @handler
    async def opt_out(self, msg: OptOut) -> dict[str, Any]:
        user = msg.user_id
        if self._stale(user, msg.version) or self.board.is_opted_out(user) == msg.opted_out:
            return {"status": "unchanged", "opted_out": self.board.is_opted_out(user)}
        before = self.board.rank(user)
        envelope = self.ctx.envelope
        event_id = f"opt:{user}:{msg.version}" if msg.version or envelope is None else (
            envelope.message_id)
        event = {"type": OPT_OUT, "user": user, "version": msg.version,
                 "opted_out": msg.opted_out}
        await self.persist([event], event_id=event_id)
        await self._publish(user, before)
        return {"status": "applied", "opted_out": self.board.is_opted_out(user)}

    def rank_changes(self, user: str, before: int | None) -> tuple[list[dict[str, Any]], int]:
        """The entries whose rank changed when ``user`` went from rank ``before`` to its rank
        now (the mover first), at most ``rank_change_limit``, and how many were left out."""
        board = self.board
        after = board.rank(user)
        if after == before:
            return [], 0
        last = len(board)
        if before is None:
            assert after is not None
            low, high, shift = after + 1, last, 1  # a newcomer pushed everyone below down
        elif after is None:
            low, high, shift = before, last, -1  # a leaver pulled everyone below up
        elif after < before:
            low, high, shift = after + 1, before, 1
        else:
            low, high, shift = before, after - 1, -1
        score = None if after is None else board.score(user)
        changes = [{"rank": after, "user_id": user, "previous_rank": before, "score": score}]
        count = max(0, high - low + 1)
        take = min(count, self.rank_change_limit - 1)
        for entry in board.top(take, low - 1):
            changes.append({**_entry(entry.rank, entry.user, entry.score),
                            "previous_rank": entry.rank - shift})
        return changes, count - take

    async def _publish(self, user: str, before: int | None) -> None:
        changes, omitted = self.rank_changes(user, before)
        pubsub: Any = self.ctx.system.extensions.get("pubsub")
        if not changes or pubsub is None:
            return
        topic = leaderboard_topic(self.name)
        payload = {"board": self.name, "version": self.seq, "changes": changes,
                   "omitted": omitted}
        try:
            await pubsub.publish(topic, payload)
        except Exception as exc:  # fire-and-forget: Top/RankOf are the source of truth
            self.ctx.log.warning("rank change publish failed", topic=topic, error=repr(exc))

    # -- reads ---------------------------------------------------------------------------------
    @handler
    def top(self, msg: Top) -> list[dict[str, Any]]:
        return [_entry(e.rank, e.user, e.score) for e in self.board.top(msg.limit, msg.offset)]

    @handler
    def rank_of(self, msg: RankOf) -> dict[str, Any]:
        user = msg.user_id
        rank = self.board.rank(user)
        return {
            "board": self.name, "user_id": user, "rank": rank,
            "score": None if rank is None else self.board.score(user),
            "opted_out": self.board.is_opted_out(user), "ranked": len(self.board),
            "around": [_entry(e.rank, e.user, e.score)
                       for e in self.board.around(user, msg.radius)],
        }  # fmt: skip
