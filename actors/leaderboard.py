r"""``LeaderboardActor``: one board (``global``, ``weekly:2025-W50``, ``area:<id>``), embedded mode.

The board is the pure :class:`~actors.rules.Leaderboard` (a sorted list in memory), made durable
by event sourcing. ``SetScore`` has a batch handler: the updates queued in a row while the
previous ones commit are appended in one unit, so a busy board costs one commit per batch, not
one per update (a board is one activation: one commit per update would cap every board, and the
whole XP loop, at the store's commit rate). Within the unit, each run of consecutive versioned
updates (the profiles' own) is *one* journal event ``leaderboard.scores``, ``{"scores": [[user,
score, reach time in µs since the epoch, version, opted out], ...]}``, appended under its first
update's ``event_id``; an unversioned update (``version=0``) is its own ``leaderboard.score``
event under its own ``event_id``, and so is each ``OptOut`` (``leaderboard.opt_out``).
Redelivery appends nothing: a redelivered versioned update is ``stale`` (its version is not
newer than the one applied), any other is refused by the journal's unique ``(actor, event_id)``
index (``duplicate``); a batch event refused for its first update's id (a new update reusing an
old id) is appended again without that one, after the rest of the unit. One event per batch
rather than per update: a journal row costs far more than its few bytes of payload (the row, its
indexes, its fold). Events journaled before ``leaderboard.scores`` (one ``leaderboard.score``
per update, some holding their reach time as ``at``, ISO 8601 text) still fold.

The whole board is snapshotted on passivation and once the updates folded since the last
snapshot reach ``max(snapshot_every, scored users)`` (counted in updates, not journal events,
since one event holds a batch): a snapshot writes the whole board, O(n), so taken every n
updates its cost per update stays O(1), and recovery reads one document plus a tail of at most
as many updates as the board has users. (Why a journal rather than periodic snapshots alone: an
update acknowledged here is never lost.)

Ordering. Every update from a profile carries ``version`` (the profile's journal ``seq``, which
only grows): an update older than the last one applied for that user is ignored, so a stale
score redelivered late never overwrites a newer one. Scores are absolute (not deltas), so
applying the newest one is always right. ``version=0`` (an operator's direct call) skips the
check.

Live updates. After updates that change ranks, one payload per batch of updates applied together
(one per update when they come one at a time) goes to the pub/sub topic ``leaderboard:<board>``:
``{"board", "version", "changes": [{"user_id", "rank", "previous_rank", "score"}...],
"omitted"}``, the updated users first (by new rank), then every user they passed or who moved up
into their old places, in rank order, at most ``rank_change_limit`` entries (``omitted`` counts
the rest: a client showing those ranks shifts them itself). Users whose rank did not change are
not listed. ``version`` is the board's journal ``seq`` after the batch.
(:meth:`~actors.rules.Leaderboard.rank_changes` computes it in O(movers · log n), however far
they moved.) When the topic surely reaches nobody (``PubSub.may_reach``: in embedded mode, no
subscriber; in cluster mode it may always reach another node's), no payload is computed.

``self.state`` is only the recovery base here: the live board is ``self.board``, and
:meth:`snapshot` saves that.

Cluster mode (Redis). When the node offers a Redis link (``system.extensions["redis"]``, set by
the cluster service when Redis is not embedded), the board is also kept in the Redis sorted set
``leaderboard:<board>`` (:func:`~actors.rules.board_key`), and ``Top`` / ``RankOf`` read it
(``ZRANK``, ``ZRANGE ... WITHSCORES``, ``ZCARD``). The journal stays the source of truth (it gives
idempotency and the version check); the sorted set is the index every node can read. Each applied
update writes the member (``ZADD``, or ``ZREM`` for an opted-out user) together with the board's
journal ``seq`` under ``leaderboard:<board>:seq`` in one ``MULTI``; on activation, a set whose
``seq`` is not the journal's is rebuilt from the board (written to a temporary key, then
``RENAME``\ d over it), so a write lost between the journal and Redis heals on the next
activation. Embedded mode (no link) is unchanged.

The member's Redis score folds the embedded order into one double (see :func:`fold_score`):
``-(score * 2**31 + (2**31 - 1 - reach second))``, read in *ascending* order, so a higher score
comes first, then an earlier reach time, then -- Redis orders equal scores by member -- the
smaller user id, as in :class:`~actors.rules.Leaderboard`. (``ZREVRANK`` would order ties by
*descending* member, hence ``ZRANK`` on the negated value.) Limits: the reach time is kept to the
second, counted from 2020-01-01 UTC and clamped to 0 .. 2**31 - 1 seconds (until 2088), so two
updates reaching the same score within the same second tie by user id here where embedded mode
orders them by microsecond; the fold is exact in a double's 53-bit mantissa for scores below
2**22 (4,194,304); above, the order by score stays right but ties by time coarsen and the score
read back from Redis may be off by one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import attrs

from actors.rules import Clock, Leaderboard, SystemClock, board_key, parse_board
from actors.rules.leaderboard import micros
from tektree import batch_handler, handler, message
from tektree.persistence import EventSourcedActor, Journal

__all__ = [
    "LEADERBOARD_KIND",
    "MAX_RADIUS",
    "MAX_TOP",
    "LeaderboardActor",
    "OptOut",
    "RankOf",
    "SetScore",
    "Top",
    "fold_score",
    "leaderboard_topic",
    "unfold_score",
]

LEADERBOARD_KIND: Final = "leaderboard"
SCORE: Final = "leaderboard.score"
SCORES: Final = "leaderboard.scores"
OPT_OUT: Final = "leaderboard.opt_out"
MAX_TOP: Final = 100
MAX_RADIUS: Final = 50
DEFAULT_RANK_CHANGE_LIMIT: Final = 100
_OPTIONS: Final = frozenset({"rank_change_limit", "role"})
REDIS_EXTENSION: Final = "redis"
_TIME_BITS: Final = 31
_TIME_MAX: Final = (1 << _TIME_BITS) - 1
_FOLD_EPOCH_US: Final = 1_577_836_800_000_000  # 2020-01-01T00:00:00Z in µs since 1970
_REBUILD_BATCH: Final = 10_000


def fold_score(score: int, reach_us: int) -> float:
    """The Redis score of ``score`` reached at ``reach_us`` (µs since 1970): ascending order of
    these is board order (see the module docstring for the limits)."""
    seconds = min(max((reach_us - _FOLD_EPOCH_US) // 1_000_000, 0), _TIME_MAX)
    return -float(score * (1 << _TIME_BITS) + (_TIME_MAX - seconds))


def unfold_score(folded: float) -> int:
    """The board score of a :func:`fold_score` value."""
    return int(-folded) >> _TIME_BITS


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
    #: The node's Redis link in cluster mode, else None (embedded mode).
    redis: Any
    key: str
    #: Updates (scores, opt-out changes) folded since the last snapshot, recovery included.
    updates_since_snapshot: int
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
        self.updates_since_snapshot = 0
        await super().on_activate()
        self._load(self.state)
        self.redis = self.ctx.system.extensions.get(REDIS_EXTENSION)
        self.key = board_key(self.name)
        if self.redis is not None:
            await self._sync_redis()

    # -- the fold ------------------------------------------------------------------------------
    def initial_state(self) -> dict[str, Any]:
        return {"board": Leaderboard().snapshot(), "versions": {}}

    def snapshot_due(self) -> bool:
        """Once the updates folded since the last snapshot reach ``max(snapshot_every, scored
        users)``: counted in updates, not journal events, since one event holds a batch."""
        return self.updates_since_snapshot >= max(self.snapshot_every, self.board.scored_users)

    def _load(self, state: dict[str, Any]) -> None:
        if self._loaded_from is not state:
            self.board = Leaderboard.from_snapshot(state["board"])
            self.versions = dict(state["versions"])
            self._loaded_from = state

    def apply(self, state: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        self._load(state)
        kind = event["type"]
        if kind == SCORES:
            for user, score, reached, version, opted_out in event["scores"]:
                self._fold(user, version, opted_out, score, reached)
        elif kind == SCORE:
            reached = event.get("at_us")
            if reached is None:  # journaled before at_us: ISO 8601 text
                reached = micros(dt.datetime.fromisoformat(event["at"]))
            self._fold(event["user"], event["version"], event["opted_out"], event["score"],
                       reached)
        else:
            self._fold(event["user"], event["version"], event["opted_out"], None, 0)
        return state

    def _fold(self, user: str, version: int, opted_out: bool, score: int | None,
              reached: int) -> None:
        """One update (a score, or an opt-out change when ``score`` is None) onto the board."""
        self.updates_since_snapshot += 1
        if version:
            if version <= self.versions.get(user, 0):
                return
            self.versions[user] = version
        if opted_out:
            self.board.opt_out(user)
        else:
            self.board.opt_in(user)
        if score is not None:
            self.board.set_score_at(user, score, reached)

    async def snapshot(self) -> None:
        seq = self.seq
        document = {"board": self.board.snapshot(), "versions": dict(self.versions)}
        updates = self.updates_since_snapshot
        await Journal(self.store).save_snapshot(self.journal_id, seq, document)
        self.snapshot_seq = max(self.snapshot_seq, seq)
        self.updates_since_snapshot -= updates

    # -- updates -------------------------------------------------------------------------------
    def _stale(self, user: str, version: int) -> bool:
        return bool(version) and version <= self.versions.get(user, 0)

    @batch_handler(SetScore)
    async def set_score(self, msgs: list[SetScore]) -> list[dict[str, Any]]:
        """The updates queued in a row, in order, appended in one journal unit (one commit for
        the lot); each gets its own status: ``applied``, ``duplicate`` (its ``event_id`` came
        before), ``stale`` (an older ``version``) or ``unchanged``."""
        statuses: list[str] = []
        events: list[tuple[str, dict[str, Any]]] = []
        run: list[list[Any]] | None = None  # the rows of the last event, while it is a batch
        under: list[str | None] = []  # the id of each message's journal event (None: none)
        ids: set[str] = set()
        versions: dict[str, int] = {}  # versions taken in this batch, not yet applied
        touched: set[str] = set()
        board, known = self.board, self.versions
        for msg in msgs:
            user, version, event_id = msg.user_id, msg.version, msg.event_id
            if version and version <= max(known.get(user, 0), versions.get(user, 0)):
                statuses.append("stale")
            elif event_id in ids:
                statuses.append("duplicate")
            elif (user not in touched and board.score(user) == msg.score
                  and board.is_opted_out(user) == msg.opted_out):
                statuses.append("unchanged")
            else:
                at = msg.at if msg.at is not None else self.clock.now()
                row = [user, msg.score, micros(at), version, msg.opted_out]
                if not version:  # no version to make a redelivery stale: journal its own id
                    run = None
                    events.append((event_id, {"type": SCORE, "user": user, "score": row[1],
                                              "at_us": row[2], "version": 0,
                                              "opted_out": row[4]}))
                elif run is None:
                    run = [row]
                    events.append((event_id, {"type": SCORES, "scores": run}))
                else:
                    run.append(row)
                ids.add(event_id)
                touched.add(user)
                if version:
                    versions[user] = version
                statuses.append("pending")
                under.append(events[-1][0])
                continue
            under.append(None)
        ranks: dict[str, int | None] = {}
        retry: list[int] = []  # messages of a batch event refused for its first one's id
        if events:
            stored, ranks = await self._persist_published(events, sorted(touched))
            for i, (status, journaled) in enumerate(zip(statuses, under, strict=True)):
                if status != "pending":
                    continue
                if journaled in stored:
                    statuses[i] = "applied"
                elif msgs[i].event_id != journaled:  # not the one whose id was journaled
                    retry.append(i)
                else:
                    statuses[i] = "duplicate"
        rank = board.rank
        replies = [{"status": s, "rank": ranks[m.user_id] if m.user_id in ranks
                    else rank(m.user_id)} for s, m in zip(statuses, msgs, strict=True)]
        if retry:
            for i, reply in zip(retry, await self.set_score([msgs[i] for i in retry]),
                                strict=True):
                replies[i] = reply
        return replies

    async def _persist_published(
        self, events: list[tuple[str, dict[str, Any]]], users: list[str]
    ) -> tuple[set[str], dict[str, int | None]]:
        """``persist_each``; then the places of ``users`` in Redis (cluster mode); then one
        rank-change payload for the lot, when the topic may reach a subscriber (else nothing
        is computed for it). The ids appended, and the ranks of ``users`` now, found on the way
        when the payload was built (else empty: the caller looks up the ranks it needs)."""
        board = self.board
        pubsub: Any = self.ctx.system.extensions.get("pubsub")
        topic = leaderboard_topic(self.name)
        listened = pubsub is not None and pubsub.may_reach(topic)
        before = {user: board.visible_key(user) for user in users} if listened else {}
        stored = await self.persist_each(events)
        if not stored:
            return stored, {}
        await self._index(users)
        if not listened:
            return stored, {}
        changes, omitted, ranks = board.moves(before, self.rank_change_limit)
        if changes:
            payload = {"board": self.name, "version": self.seq, "changes": changes,
                       "omitted": omitted}
            try:
                await pubsub.publish(topic, payload)
            except Exception as exc:  # fire-and-forget: Top/RankOf are the source of truth
                self.ctx.log.warning("rank change publish failed", topic=topic, error=repr(exc))
        return stored, ranks

    @handler
    async def opt_out(self, msg: OptOut) -> dict[str, Any]:
        user = msg.user_id
        if self._stale(user, msg.version) or self.board.is_opted_out(user) == msg.opted_out:
            return {"status": "unchanged", "opted_out": self.board.is_opted_out(user)}
        envelope = self.ctx.envelope
        event_id = f"opt:{user}:{msg.version}" if msg.version or envelope is None else (
            envelope.message_id)
        event = {"type": OPT_OUT, "user": user, "version": msg.version,
                 "opted_out": msg.opted_out}
        await self._persist_published([(event_id, event)], [user])
        return {"status": "applied", "opted_out": self.board.is_opted_out(user)}

    # -- the Redis index (cluster mode) ---------------------------------------------------------
    def _folded(self, user: str) -> float | None:
        """``user``'s Redis score, or None when they are not ranked (no score, opted out)."""
        key = self.board._keys.get(user)  # (-score, reach µs, user); the model's own index
        if key is None or self.board.is_opted_out(user):
            return None
        return fold_score(-key[0], key[1])

    async def _index(self, users: list[str]) -> None:
        """Write the places of ``users`` and the journal seq to Redis, in one transaction."""
        if self.redis is None:
            return
        folded, seq = [(user, self._folded(user)) for user in users], self.seq
        gone = [user for user, score in folded if score is None]
        placed = {user: score for user, score in folded if score is not None}

        async def write(client: Any) -> None:
            async with client.pipeline(transaction=True) as pipe:
                if gone:
                    pipe.zrem(self.key, gone)
                if placed:
                    pipe.zadd(self.key, placed)
                pipe.set(self.key + ":seq", str(seq))

        await self.redis.call(write)

    async def _sync_redis(self) -> None:
        """Rebuild the sorted set from the board unless it is already at the journal's seq."""
        seq_key = self.key + ":seq"
        stored = await self.redis.call(lambda client: client.get(seq_key))
        if stored is not None and int(stored) == self.seq:
            return
        members = {entry.user: fold_score(entry.score, self.board._keys[entry.user][1])
                   for entry in self.board.top(len(self.board))}
        items = list(members.items())
        temp = self.key + ":rebuild"

        async def rebuild(client: Any) -> None:
            await client.delete([temp])
            for start in range(0, len(items), _REBUILD_BATCH):
                await client.zadd(temp, dict(items[start : start + _REBUILD_BATCH]))
            async with client.pipeline(transaction=True) as pipe:
                if items:
                    pipe.rename(temp, self.key)
                else:
                    pipe.delete([self.key])
                pipe.set(seq_key, str(self.seq))

        await self.redis.call(rebuild)
        self.ctx.log.info("leaderboard rebuilt in redis", board=self.name, ranked=len(items))

    async def _range(self, start: int, stop: int) -> list[dict[str, Any]]:
        """Entries of ranks ``start + 1`` .. ``stop`` from Redis (``ZRANGE ... WITHSCORES``)."""
        if stop <= start:
            return []
        rows = await self.redis.call(
            lambda client: client.zrange(self.key, start, stop - 1, withscores=True))
        return [_entry(rank, _text(row[0]), unfold_score(float(row[1])))
                for rank, row in enumerate(rows, start=start + 1)]

    # -- reads ---------------------------------------------------------------------------------
    @handler
    async def top(self, msg: Top) -> list[dict[str, Any]]:
        if self.redis is not None:
            return await self._range(msg.offset, msg.offset + msg.limit)
        return [{"rank": rank, "user_id": user, "score": score}
                for rank, user, score in self.board.rows(msg.limit, msg.offset)]

    @handler
    async def rank_of(self, msg: RankOf) -> dict[str, Any]:
        if self.redis is not None:
            return await self._redis_rank_of(msg)
        user = msg.user_id
        rank = self.board.rank(user)
        return {
            "board": self.name, "user_id": user, "rank": rank,
            "score": None if rank is None else self.board.score(user),
            "opted_out": self.board.is_opted_out(user), "ranked": len(self.board),
            "around": [_entry(e.rank, e.user, e.score)
                       for e in self.board.around(user, msg.radius)],
        }  # fmt: skip

    async def _redis_rank_of(self, msg: RankOf) -> dict[str, Any]:
        user = msg.user_id

        async def read(client: Any) -> tuple[Any, Any]:
            return await client.zrank(self.key, user), await client.zcard(self.key)

        position, ranked = await self.redis.call(read)
        around: list[dict[str, Any]] = []
        score = self.board.score(user)  # kept while opted out; Redis drops opted-out users
        if position is not None:
            around = await self._range(max(0, position - msg.radius), position + msg.radius + 1)
            score = next(e["score"] for e in around if e["user_id"] == user)
        return {
            "board": self.name, "user_id": user,
            "rank": None if position is None else position + 1,
            "score": None if position is None else score,
            "opted_out": self.board.is_opted_out(user), "ranked": int(ranked), "around": around,
        }  # fmt: skip


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member
