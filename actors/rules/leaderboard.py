"""The leaderboard model of embedded mode, and the board names shared with cluster mode.

:class:`Leaderboard` is a pure in-memory sorted board (no I/O, no clock: every update takes
its time as an argument), the structure a ``LeaderboardActor`` keeps when no Redis is
configured and persists to the store with :meth:`~Leaderboard.snapshot`.

**Order.** Higher score first. Equal scores are ordered by *reach time*, earlier first (who got
there first stays ahead), then by user id (so even equal reach times order deterministically).
The reach time of a user is the ``at`` of the last update that *changed* their score: setting
the same score again, or adding 0, keeps it. Ranks are positions in that order, 1-based, never
shared. (A Redis sorted set orders equal scores by member instead; the cluster adapter must
encode the reach time into its score to agree with this order.)

**Opt-out.** An opted-out user is hidden from :meth:`~Leaderboard.rank`,
:meth:`~Leaderboard.top`, :meth:`~Leaderboard.around` and ``len()``, but their score is still
kept and updated (:meth:`~Leaderboard.score` reads it), and they reappear at their right place
on :meth:`~Leaderboard.opt_in`. The preference is kept even for a user without a score.

**Cost.** A ``sortedcontainers.SortedList`` of ``(-score, reach time, user)`` keys holds the
visible users and a dict maps each user to their key: an update, a rank and a removal are
O(log n); ``top(n, offset)`` and ``around(user, radius)`` are O(log n + k) for k entries.

**Board names**: ``global``, ``weekly:YYYY-Www`` (the ISO week, see :func:`weekly_board`) and
``area:<area id>``; :func:`board_key` gives the Redis key (``leaderboard:weekly:2025-W50``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs
from sortedcontainers import SortedList

from actors.rules.clock import iso_week, iso_week_monday

__all__ = [
    "BOARD_KEY_PREFIX",
    "Board",
    "BoardKind",
    "BoardNameError",
    "Entry",
    "Leaderboard",
    "area_board",
    "board_key",
    "micros",
    "parse_board",
    "weekly_board",
]

BoardKind = Literal["global", "weekly", "area"]

#: The Redis key of a board is this prefix plus the board name.
BOARD_KEY_PREFIX: Final = "leaderboard:"

_SNAPSHOT_VERSION: Final = 2
#: The keys of each snapshot version :meth:`Leaderboard.from_snapshot` reads.
_SNAPSHOT_KEYS: Final = {
    1: frozenset({"version", "scores", "opted_out"}),
    2: frozenset({"version", "users", "scores", "reached", "opted_out"}),
}
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_AREA_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BOARD_FORMS: Final = (
    "a board name is 'global', 'weekly:YYYY-Www' (an ISO week, e.g. 'weekly:2025-W50') or "
    "'area:<area id>' (1 to 64 letters, digits, '_' or '-')"
)

# (-score, reach time in microseconds since the epoch, user): ascending order is board order.
_Key = tuple[int, int, str]


def _positive(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be an int >= 1, got {value!r}"
        )


def _int(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int:
        raise TypeError(f"{type(instance).__name__}.{attribute.name} must be an int, got {value!r}")


@attrs.frozen(kw_only=True)
class Entry:
    """One visible row of a board: ``rank`` is 1-based."""

    rank: int = attrs.field(validator=_positive)
    user: str = attrs.field(validator=attrs.validators.instance_of(str))
    score: int = attrs.field(validator=_int)


def _check_user(user: object) -> str:
    if not isinstance(user, str) or not user:
        raise ValueError(f"user = {user!r}: a user id is a non-empty string")
    return user


def _check_score(score: object, name: str = "score") -> int:
    if type(score) is not int:
        raise TypeError(f"{name} = {score!r}: scores are ints")
    return score


def _check_count(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} = {value!r}: must be an int >= 0")
    return value


def micros(at: object) -> int:
    """``at`` (a timezone-aware datetime) in µs since the epoch: a reach time as the board
    keeps it (and :meth:`Leaderboard.snapshot` stores it)."""
    if not isinstance(at, dt.datetime):
        raise TypeError(f"at = {at!r}: must be a timezone-aware datetime")
    if at.utcoffset() is None:
        raise ValueError(f"at = {at!r} is naive; rules take timezone-aware datetimes (use UTC)")
    delta = at - _EPOCH  # exact; ``delta // timedelta(microseconds=1)`` costs ~5x more
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class Leaderboard:
    """A sorted board of ``user -> score``; see the module docstring for order and costs."""

    __slots__ = ("_keys", "_opted_out", "_ranked")

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}  # every user with a score, visible or not
        self._ranked: Any = SortedList()  # the keys of the visible users
        self._opted_out: set[str] = set()

    # -- updates ---------------------------------------------------------------------------

    def set_score(self, user: str, score: int, at: dt.datetime) -> None:
        """Set ``user``'s score; ``at`` becomes their reach time if the score changes."""
        _check_user(user)
        _check_score(score)
        old = self._keys.get(user)
        if old is not None and old[0] == -score:
            micros(at)  # the same checks as a change, so a bad ``at`` is never silent
            return
        self._put(user, (-score, micros(at), user), old)

    def set_score_at(self, user: str, score: int, reached: int) -> None:
        """:meth:`set_score` with the time in µs since the epoch (see :func:`micros`)."""
        _check_user(user)
        _check_score(score)
        if type(reached) is not int:
            raise TypeError(f"reached = {reached!r}: a reach time is an int of µs")
        old = self._keys.get(user)
        if old is None or old[0] != -score:
            self._put(user, (-score, reached, user), old)

    def add(self, user: str, delta: int, at: dt.datetime) -> int:
        """Add ``delta`` (may be negative) to ``user``'s score (0 if absent); the new score."""
        _check_user(user)
        _check_score(delta, "delta")
        old = self._keys.get(user)
        score = (0 if old is None else -old[0]) + delta
        if old is not None and delta == 0:
            micros(at)
            return score
        self._put(user, (-score, micros(at), user), old)
        return score

    def _put(self, user: str, key: _Key, old: _Key | None) -> None:
        self._keys[user] = key
        if user in self._opted_out:
            return
        if old is not None:
            self._ranked.remove(old)
        self._ranked.add(key)

    def remove(self, user: str) -> bool:
        """Forget ``user``'s score (their opt-out preference stays); whether they had one."""
        old = self._keys.pop(_check_user(user), None)
        if old is None:
            return False
        if user not in self._opted_out:
            self._ranked.remove(old)
        return True

    def opt_out(self, user: str) -> None:
        """Hide ``user`` from ranks, top and around; their score is kept."""
        if _check_user(user) in self._opted_out:
            return
        self._opted_out.add(user)
        key = self._keys.get(user)
        if key is not None:
            self._ranked.remove(key)

    def opt_in(self, user: str) -> None:
        """Show ``user`` again, at the place their kept score and reach time give them."""
        if _check_user(user) not in self._opted_out:
            return
        self._opted_out.discard(user)
        key = self._keys.get(user)
        if key is not None:
            self._ranked.add(key)

    # -- reads -----------------------------------------------------------------------------

    def __len__(self) -> int:
        """How many users are ranked (opted-out users are not counted)."""
        return len(self._ranked)

    @property
    def scored_users(self) -> int:
        """How many users have a score, opted-out ones included."""
        return len(self._keys)

    def is_opted_out(self, user: str) -> bool:
        return _check_user(user) in self._opted_out

    def score(self, user: str) -> int | None:
        """``user``'s score (kept while opted out), or ``None`` if they have none."""
        key = self._keys.get(_check_user(user))
        return None if key is None else -key[0]

    def rank(self, user: str) -> int | None:
        """``user``'s 1-based rank, or ``None`` if they have no score or opted out."""
        key = self._keys.get(_check_user(user))
        if key is None or user in self._opted_out:
            return None
        position: int = self._ranked.bisect_left(key)
        return position + 1

    def top(self, n: int, offset: int = 0) -> list[Entry]:
        """The ``n`` visible entries from rank ``offset + 1`` on (fewer past the end)."""
        _check_count(n, "n")
        _check_count(offset, "offset")
        return self._entries(offset, offset + n)

    def around(self, user: str, radius: int) -> list[Entry]:
        """``user``'s entry with up to ``radius`` entries above and below it (fewer near the
        ends of the board); empty if ``user`` is not ranked."""
        _check_count(radius, "radius")
        rank = self.rank(user)
        if rank is None:
            return []
        return self._entries(max(0, rank - 1 - radius), rank + radius)

    def rows(self, n: int, offset: int = 0) -> list[tuple[int, str, int]]:
        """:meth:`top` as plain ``(rank, user, score)`` tuples: for hot paths (a rank-change
        payload, a top-100 read) that would only turn each :class:`Entry` into a dict."""
        _check_count(n, "n")
        _check_count(offset, "offset")
        return [
            (rank, key[2], -key[0])
            for rank, key in enumerate(self._ranked.islice(offset, offset + n), start=offset + 1)
        ]

    def visible_key(self, user: str) -> tuple[int, int, str] | None:
        """``user``'s place in board order (an opaque, comparable key), or None when they are
        not ranked: what :meth:`rank_changes` takes to describe where users were."""
        key = self._keys.get(user)
        return None if key is None or user in self._opted_out else key

    def rank_changes(
        self, before: Mapping[str, tuple[int, int, str] | None], limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Every rank changed since the users of ``before`` (the *movers*) were at the
        :meth:`visible_key` recorded there, everyone else having stayed put: at most ``limit``
        entries ``{"rank", "user_id", "previous_rank", "score"}`` (``rank`` or
        ``previous_rank`` None when unranked), the movers first (by their new rank), then the
        users they pushed or pulled, in rank order; and how many changed entries were left out.

        Cost O(m log n + limit) for m movers, whatever the distance they moved: the users
        between the movers' old and new places shift by a constant within each gap between
        those places, so the gaps are counted with bisections, not walked.
        """
        changes, omitted, _ = self.moves(before, limit)
        return changes, omitted

    def moves(
        self, before: Mapping[str, tuple[int, int, str] | None], limit: int
    ) -> tuple[list[dict[str, Any]], int, dict[str, int | None]]:
        """:meth:`rank_changes`, and the rank now of each user of ``before`` (None when not
        ranked), found on the way: a caller replying with those ranks need not look them up
        again. One bisection of the board per old or new place of a mover."""
        _check_count(limit, "limit")
        ranked = self._ranked
        keys, hidden = self._keys, self._opted_out
        now = {user: None if user in hidden else keys.get(user) for user in before}
        old_keys = sorted(k for k in before.values() if k is not None)
        new_keys = sorted(k for k in now.values() if k is not None)
        # Where each old and new place is in the board now (bisect_left). A key is in the board
        # iff it is a mover's new key: a key names its user, and a mover's old key that is not
        # their new one was removed.
        places: dict[_Key, int] = {}
        ranks: dict[str, int | None] = {}
        movers: list[dict[str, Any]] = []
        for user, old in before.items():
            new = now[user]  # even at the same key, a mover may have been passed by others
            # Before: the non-movers above ``old`` (they are above it now too) + the movers.
            previous = rank = None
            if old is not None:
                place = places.get(old)
                if place is None:
                    place = places[old] = ranked.bisect_left(old)
                previous = (place - bisect.bisect_left(new_keys, old)
                            + bisect.bisect_left(old_keys, old) + 1)
            if new is not None:
                place = places.get(new)
                if place is None:
                    place = places[new] = ranked.bisect_left(new)
                rank = place + 1
            ranks[user] = rank
            if rank != previous:
                movers.append({"rank": rank, "user_id": user, "previous_rank": previous,
                               "score": None if new is None else -new[0]})
        movers.sort(key=lambda c: (c["rank"] is None, c["rank"] or 0, c["previous_rank"] or 0))
        # The gaps between the movers' keys, old and new: a non-mover in a gap moved by
        # (movers above it before) - (movers above it now), the same for the whole gap.
        bounds = sorted(places)
        present = set(new_keys)
        changes = movers[:limit]
        total = len(movers)
        for i, low in enumerate(bounds):
            shift = bisect.bisect_right(old_keys, low) - bisect.bisect_right(new_keys, low)
            if shift == 0:
                continue
            first = places[low] + (low in present)  # bisect_right
            stop = places[bounds[i + 1]] if i + 1 < len(bounds) else len(ranked)
            if stop <= first:
                continue
            total += stop - first
            room = limit - len(changes)
            if room > 0:
                for rank, key in enumerate(ranked.islice(first, min(stop, first + room)),
                                           start=first + 1):
                    changes.append({"rank": rank, "user_id": key[2],
                                    "previous_rank": rank + shift, "score": -key[0]})
        return changes, total - len(changes), ranks

    def _entries(self, start: int, stop: int) -> list[Entry]:
        return [
            Entry(rank=rank, user=key[2], score=-key[0])
            for rank, key in enumerate(self._ranked.islice(start, stop), start=start + 1)
        ]

    # -- persistence -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able document of the whole board, read back by :meth:`from_snapshot`: the
        scored users in columns (``users``, ``scores``, ``reached``: reach times in µs since
        the epoch), the ranked users in board order then the opted-out ones in board order;
        ``opted_out`` lists the opted-out users (with or without a score), sorted. (Columns
        rather than a row per user: three lists instead of one per user to build, encode,
        decode and collect.)"""
        hidden = sorted(self._keys[user] for user in self._opted_out if user in self._keys)
        keys = [*self._ranked, *hidden]
        return {
            "version": _SNAPSHOT_VERSION,
            "users": [key[2] for key in keys],
            "scores": [-key[0] for key in keys],
            "reached": [key[1] for key in keys],
            "opted_out": sorted(self._opted_out),
        }

    @classmethod
    def from_snapshot(cls, document: Mapping[str, Any]) -> Leaderboard:
        """The board a :meth:`snapshot` document describes (or a version 1 document, ``scores``
        listing ``[user, score, reach time in µs]`` rows); errors name the bad part."""
        if not isinstance(document, Mapping):
            raise TypeError(f"leaderboard snapshot must be a mapping, got {document!r}")
        version = document.get("version")
        expected = _SNAPSHOT_KEYS.get(version) if type(version) is int else None
        if expected is None:
            raise ValueError(
                f"leaderboard snapshot version {version!r} is not supported "
                f"(this code reads versions {sorted(_SNAPSHOT_KEYS)})"
            )
        if set(document) != expected:
            raise ValueError(
                f"leaderboard snapshot keys are {sorted(document)}; expected {sorted(expected)}"
            )
        board = cls()
        opted_out = document["opted_out"]
        if not isinstance(opted_out, list):
            raise ValueError(f"leaderboard snapshot 'opted_out' must be a list, got {opted_out!r}")
        board._opted_out = {_check_user(user) for user in opted_out}
        for name in expected - {"version", "opted_out"}:
            if not isinstance(document[name], list):
                raise ValueError(
                    f"leaderboard snapshot {name!r} must be a list, got {document[name]!r}"
                )
        if version == 1:
            rows = document["scores"]
            for row in rows:
                if not (isinstance(row, list | tuple) and len(row) == 3):
                    raise ValueError(
                        f"leaderboard snapshot row {row!r} is not [user, score, reach time in µs]"
                    )
        else:
            columns = document["users"], document["scores"], document["reached"]
            if len({len(column) for column in columns}) != 1:
                raise ValueError(
                    "leaderboard snapshot columns 'users', 'scores' and 'reached' must be as "
                    f"long as each other, got {[len(column) for column in columns]}"
                )
            rows = zip(*columns, strict=True)
        keys = board._keys
        for user, score, reached in rows:
            if not (isinstance(user, str) and user and type(score) is int
                    and type(reached) is int):
                raise ValueError(f"leaderboard snapshot row {[user, score, reached]!r} is not "
                                 "[user, score, reach time in µs]")
            if user in keys:
                raise ValueError(f"leaderboard snapshot lists user {user!r} twice")
            keys[user] = (-score, reached, user)
        board._ranked = SortedList(
            key for user, key in keys.items() if user not in board._opted_out
        )
        return board


# -- board names ---------------------------------------------------------------------------


class BoardNameError(ValueError):
    """A board name that is none of the allowed forms; ``board`` is the offending name."""

    def __init__(self, board: object, reason: str) -> None:
        super().__init__(f"board {board!r}: {reason}; {_BOARD_FORMS}")
        self.board = board


@attrs.frozen(kw_only=True)
class Board:
    """A parsed board name: ``kind`` and its qualifier (``week`` for a weekly board,
    ``area_id`` for an area board, neither for the global one)."""

    kind: BoardKind
    week: str | None = None
    area_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind == "global":
            if self.week is not None or self.area_id is not None:
                raise BoardNameError(self.name, "the global board has no week or area id")
        elif self.kind == "weekly":
            if self.area_id is not None:
                raise BoardNameError(self.name, "a weekly board has no area id")
            try:
                iso_week_monday(self.week)  # type: ignore[arg-type]  # None is rejected there
            except ValueError as error:
                raise BoardNameError(self.name, str(error)) from None
        elif self.kind == "area":
            if self.week is not None:
                raise BoardNameError(self.name, "an area board has no week")
            if not isinstance(self.area_id, str) or _AREA_ID.fullmatch(self.area_id) is None:
                raise BoardNameError(self.name, f"{self.area_id!r} is not an area id")
        else:
            raise BoardNameError(self.kind, f"kind {self.kind!r} is not a board kind")

    @property
    def name(self) -> str:
        if self.kind == "weekly":
            return f"weekly:{self.week}"
        if self.kind == "area":
            return f"area:{self.area_id}"
        return "global"

    @property
    def key(self) -> str:
        """The board's Redis key (``leaderboard:<name>``)."""
        return BOARD_KEY_PREFIX + self.name


def parse_board(name: str) -> Board:
    """The :class:`Board` named ``name``; :class:`BoardNameError` for any other form."""
    if not isinstance(name, str):
        raise BoardNameError(name, "a board name is a string")
    if name == "global":
        return Board(kind="global")
    kind, sep, qualifier = name.partition(":")
    if sep and kind == "weekly":
        return Board(kind="weekly", week=qualifier)
    if sep and kind == "area":
        return Board(kind="area", area_id=qualifier)
    if name.startswith(BOARD_KEY_PREFIX):
        raise BoardNameError(
            name, f"that is a Redis key; pass the board name {name[len(BOARD_KEY_PREFIX) :]!r}"
        )
    raise BoardNameError(name, "unknown board")


def board_key(name: str) -> str:
    """The Redis key of board ``name``: ``board_key("global") == "leaderboard:global"``."""
    return parse_board(name).key


def weekly_board(at: dt.datetime) -> str:
    """The weekly board holding ``at`` (aware): ``"weekly:2025-W50"``, the ISO week of its UTC
    day (weeks start Monday 00:00 UTC)."""
    return f"weekly:{iso_week(at)}"


def area_board(area_id: str) -> str:
    """The board of one knowledge area: ``"area:<area_id>"``."""
    return Board(kind="area", area_id=area_id).name
