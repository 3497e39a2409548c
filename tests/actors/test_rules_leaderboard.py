"""The leaderboard model against a brute-force reference (sort a dict), ties, opt-out, snapshots,
and the board names."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.rules.leaderboard import (
    Board,
    BoardNameError,
    Entry,
    Leaderboard,
    area_board,
    board_key,
    parse_board,
    weekly_board,
)

UTC = dt.UTC
T0 = dt.datetime(2025, 12, 16, 12, tzinfo=UTC)


def t(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# -- the reference model ----------------------------------------------------------------------


@attrs.define
class Reference:
    """Everything recomputed from a dict by sorting: obviously right, O(n log n) per read."""

    scores: dict[str, tuple[int, dt.datetime]] = attrs.Factory(dict)
    hidden: set[str] = attrs.Factory(set)

    def set_score(self, user: str, score: int, at: dt.datetime) -> None:
        if user not in self.scores or self.scores[user][0] != score:
            self.scores[user] = (score, at)

    def add(self, user: str, delta: int, at: dt.datetime) -> int:
        score = self.scores.get(user, (0, at))[0] + delta
        if user not in self.scores or delta != 0:
            self.scores[user] = (score, at)
        return score

    def order(self) -> list[str]:
        visible = [u for u in self.scores if u not in self.hidden]
        return sorted(visible, key=lambda u: (-self.scores[u][0], self.scores[u][1], u))

    def entries(self) -> list[Entry]:
        return [
            Entry(rank=i, user=u, score=self.scores[u][0]) for i, u in enumerate(self.order(), 1)
        ]


USERS = [f"usr_{c}" for c in "abcdefgh"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(USERS), st.integers(-3, 6), st.integers(0, 5)),
        st.tuples(st.just("add"), st.sampled_from(USERS), st.integers(-3, 3), st.integers(0, 5)),
        st.tuples(st.just("remove"), st.sampled_from(USERS)),
        st.tuples(st.just("opt_out"), st.sampled_from(USERS)),
        st.tuples(st.just("opt_in"), st.sampled_from(USERS)),
    ),
    max_size=50,
)


def apply(board: Leaderboard, reference: Reference, op: tuple[Any, ...]) -> None:
    match op:
        case ("set", user, score, seconds):
            board.set_score(user, score, t(seconds))
            reference.set_score(user, score, t(seconds))
        case ("add", user, delta, seconds):
            assert board.add(user, delta, t(seconds)) == reference.add(user, delta, t(seconds))
        case ("remove", user):
            assert board.remove(user) == (reference.scores.pop(user, None) is not None)
        case ("opt_out", user):
            board.opt_out(user)
            reference.hidden.add(user)
        case ("opt_in", user):
            board.opt_in(user)
            reference.hidden.discard(user)


def check_agrees(board: Leaderboard, reference: Reference) -> None:
    expected = reference.entries()
    order = reference.order()
    assert len(board) == len(expected)
    assert board.scored_users == len(reference.scores)
    assert board.top(len(USERS) + 2) == expected
    for user in USERS:
        assert board.score(user) == (
            reference.scores[user][0] if user in reference.scores else None
        )
        assert board.rank(user) == (order.index(user) + 1 if user in order else None)
        assert board.is_opted_out(user) == (user in reference.hidden)
    for n in range(4):
        for offset in range(len(expected) + 2):
            assert board.top(n, offset) == expected[offset : offset + n]
            assert board.rows(n, offset) == [
                (e.rank, e.user, e.score) for e in expected[offset : offset + n]]
    for user in USERS:
        for radius in range(3):
            if user in order:
                i = order.index(user)
                wanted = expected[max(0, i - radius) : i + radius + 1]
            else:
                wanted = []
            assert board.around(user, radius) == wanted


@settings(max_examples=400)
@given(ops=operations)
def test_agrees_with_the_reference_model(ops: list[tuple[Any, ...]]) -> None:
    board, reference = Leaderboard(), Reference()
    for op in ops:
        apply(board, reference, op)
        check_agrees(board, reference)


@settings(max_examples=200)
@given(ops=operations)
def test_snapshot_round_trips_through_json(ops: list[tuple[Any, ...]]) -> None:
    board, reference = Leaderboard(), Reference()
    for op in ops:
        apply(board, reference, op)
    document = board.snapshot()
    restored = Leaderboard.from_snapshot(json.loads(json.dumps(document)))
    assert restored.snapshot() == document
    check_agrees(restored, reference)
    # and the restored board keeps working like the original
    for op in ops:
        apply(restored, reference, op)
        check_agrees(restored, reference)


@given(ops=operations, data=st.data())
def test_order_does_not_depend_on_row_order(ops: list[tuple[Any, ...]], data: Any) -> None:
    board, reference = Leaderboard(), Reference()
    for op in ops:
        apply(board, reference, op)
    document = board.snapshot()
    columns = document["users"], document["scores"], document["reached"]
    rows = [list(row) for row in zip(*columns, strict=True)]
    shuffled = data.draw(st.permutations(rows))
    again = Leaderboard.from_snapshot({
        "version": 2, "users": [r[0] for r in shuffled], "scores": [r[1] for r in shuffled],
        "reached": [r[2] for r in shuffled], "opted_out": document["opted_out"]})
    assert again.top(len(USERS)) == board.top(len(USERS))
    # A version 1 document (a row per user) still reads.
    old = Leaderboard.from_snapshot(
        {"version": 1, "scores": shuffled, "opted_out": document["opted_out"]})
    assert old.snapshot() == document


# -- ties and reach time ----------------------------------------------------------------------


def test_higher_scores_rank_first() -> None:
    board = Leaderboard()
    board.set_score("usr_a", 10, t(0))
    board.set_score("usr_b", 30, t(0))
    board.set_score("usr_c", 20, t(0))
    assert [e.user for e in board.top(3)] == ["usr_b", "usr_c", "usr_a"]
    assert [e.rank for e in board.top(3)] == [1, 2, 3]


def test_equal_scores_rank_by_earlier_reach_time_then_user_id() -> None:
    board = Leaderboard()
    board.set_score("usr_z", 50, t(1))
    board.set_score("usr_m", 50, t(2))
    board.set_score("usr_b", 50, t(2))
    board.set_score("usr_a", 50, t(3))
    assert [e.user for e in board.top(4)] == ["usr_z", "usr_b", "usr_m", "usr_a"]


def test_setting_the_same_score_or_adding_zero_keeps_the_reach_time() -> None:
    board = Leaderboard()
    board.set_score("usr_a", 50, t(1))
    board.set_score("usr_b", 50, t(2))
    board.set_score("usr_a", 50, t(9))
    assert board.add("usr_a", 0, t(10)) == 50
    assert [e.user for e in board.top(2)] == ["usr_a", "usr_b"]
    board.add("usr_a", 1, t(11))
    board.add("usr_a", -1, t(12))  # back to 50, reached later than usr_b
    assert [e.user for e in board.top(2)] == ["usr_b", "usr_a"]


def test_reach_time_compares_instants_whatever_the_zone() -> None:
    board = Leaderboard()
    plus_two = dt.timezone(dt.timedelta(hours=2))
    board.set_score("usr_a", 5, dt.datetime(2025, 12, 16, 13, 30, tzinfo=plus_two))  # 11:30 UTC
    board.set_score("usr_b", 5, dt.datetime(2025, 12, 16, 12, 0, tzinfo=UTC))
    assert [e.user for e in board.top(2)] == ["usr_a", "usr_b"]


# -- opt-out ----------------------------------------------------------------------------------


def test_opted_out_users_are_hidden_but_keep_their_score() -> None:
    board = Leaderboard()
    for i, user in enumerate(["usr_a", "usr_b", "usr_c"]):
        board.set_score(user, 10 * (3 - i), t(i))
    board.opt_out("usr_a")
    assert board.rank("usr_a") is None and board.around("usr_a", 2) == []
    assert [e.user for e in board.top(5)] == ["usr_b", "usr_c"] and len(board) == 2
    assert board.rank("usr_b") == 1
    board.add("usr_a", 5, t(5))
    assert board.score("usr_a") == 35 and board.scored_users == 3
    board.opt_in("usr_a")
    assert board.top(1) == [Entry(rank=1, user="usr_a", score=35)]


def test_opt_out_is_remembered_for_users_without_a_score_and_across_remove() -> None:
    board = Leaderboard()
    board.opt_out("usr_a")
    board.set_score("usr_a", 10, t(0))
    assert board.rank("usr_a") is None and len(board) == 0
    assert board.remove("usr_a") is True
    board.set_score("usr_a", 10, t(0))
    assert board.rank("usr_a") is None
    assert board.snapshot()["opted_out"] == ["usr_a"]


def test_opt_out_and_in_are_idempotent() -> None:
    board = Leaderboard()
    board.set_score("usr_a", 1, t(0))
    board.opt_out("usr_a")
    board.opt_out("usr_a")
    board.opt_in("usr_a")
    board.opt_in("usr_a")
    assert board.rank("usr_a") == 1 and len(board) == 1


# -- reads and errors -------------------------------------------------------------------------


def test_unknown_users_have_no_rank_score_or_neighbourhood() -> None:
    board = Leaderboard()
    assert board.rank("usr_x") is None and board.score("usr_x") is None
    assert board.around("usr_x", 3) == [] and board.top(10) == [] and board.remove("usr_x") is False


def test_around_is_truncated_at_the_ends() -> None:
    board = Leaderboard()
    for i in range(10):
        board.set_score(f"usr_{i}", 100 - i, t(0))
    assert [e.rank for e in board.around("usr_0", 2)] == [1, 2, 3]
    assert [e.rank for e in board.around("usr_5", 2)] == [4, 5, 6, 7, 8]
    assert [e.rank for e in board.around("usr_9", 2)] == [8, 9, 10]
    assert [e.rank for e in board.around("usr_5", 0)] == [6]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda b: b.set_score("", 1, T0), ValueError, r"user = '': a user id is a non-empty"),
        (lambda b: b.set_score(7, 1, T0), ValueError, r"user = 7"),
        (lambda b: b.set_score("usr_a", 1.5, T0), TypeError, r"score = 1.5: scores are ints"),
        (lambda b: b.set_score("usr_a", True, T0), TypeError, r"score = True"),
        (lambda b: b.add("usr_a", 0.5, T0), TypeError, r"delta = 0.5: scores are ints"),
        (lambda b: b.set_score("usr_a", 1, dt.datetime(2025, 1, 1)), ValueError, r"naive"),
        (lambda b: b.set_score("usr_a", 1, 17), TypeError, r"at = 17: must be a timezone-aware"),
        (lambda b: b.top(-1), ValueError, r"n = -1: must be an int >= 0"),
        (lambda b: b.top(3, offset=-2), ValueError, r"offset = -2: must be an int >= 0"),
        (lambda b: b.around("usr_a", -1), ValueError, r"radius = -1: must be an int >= 0"),
    ],
)
def test_errors_name_the_value_and_rule(call: Any, error: type[Exception], match: str) -> None:
    board = Leaderboard()
    board.set_score("usr_a", 1, T0)
    with pytest.raises(error, match=match):
        call(board)
    document = board.snapshot()
    assert (document["users"], document["scores"]) == (["usr_a"], [1])


def test_an_unchanged_score_still_rejects_a_bad_time() -> None:
    board = Leaderboard()
    board.set_score("usr_a", 1, T0)
    with pytest.raises(ValueError, match="naive"):
        board.set_score("usr_a", 1, dt.datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        board.add("usr_a", 0, dt.datetime(2025, 1, 1))


def test_entry_is_a_validated_frozen_value() -> None:
    with pytest.raises(ValueError, match=r"Entry.rank must be an int >= 1, got 0"):
        Entry(rank=0, user="usr_a", score=1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Entry(rank=1, user="usr_a", score=1).score = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("document", "match"),
    [
        ({"version": 1, "scores": []}, r"keys are \['scores', 'version'\]; expected"),
        ({"version": 3, "scores": [], "opted_out": []}, r"version 3 is not supported"),
        ({"version": 2, "scores": [], "opted_out": []}, r"keys are \['opted_out', 'scores', "),
        (
            {"version": 2, "users": ["usr_a"], "scores": [], "reached": [], "opted_out": []},
            r"must be as long as each other, got \[1, 0, 0\]",
        ),
        (
            {"version": 2, "users": ["usr_a"], "scores": [1.5], "reached": [0], "opted_out": []},
            r"row \['usr_a', 1.5, 0\] is not \[user",
        ),
        ({"version": 1, "scores": {}, "opted_out": []}, r"'scores' must be a list"),
        ({"version": 1, "scores": [], "opted_out": "usr_a"}, r"'opted_out' must be a list"),
        ({"version": 1, "scores": [["usr_a", 1]], "opted_out": []}, r"row \['usr_a', 1\] is not"),
        ({"version": 1, "scores": [["usr_a", "1", 0]], "opted_out": []}, r"row .* is not \[user"),
        (
            {"version": 1, "scores": [["usr_a", 1, 0], ["usr_a", 2, 0]], "opted_out": []},
            r"lists user 'usr_a' twice",
        ),
    ],
)
def test_from_snapshot_names_what_is_wrong(document: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Leaderboard.from_snapshot(document)


# -- board names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "board"),
    [
        ("global", Board(kind="global")),
        ("weekly:2025-W50", Board(kind="weekly", week="2025-W50")),
        ("weekly:2020-W53", Board(kind="weekly", week="2020-W53")),
        ("area:66f1c0ffee", Board(kind="area", area_id="66f1c0ffee")),
        ("area:event-driven_architecture", Board(kind="area", area_id="event-driven_architecture")),
    ],
)
def test_parse_board_round_trips(name: str, board: Board) -> None:
    assert parse_board(name) == board
    assert board.name == name
    assert board_key(name) == board.key == f"leaderboard:{name}"


def test_board_keys_match_the_seed() -> None:
    assert board_key("global") == "leaderboard:global"
    assert board_key(weekly_board(dt.datetime(2025, 12, 10, tzinfo=UTC))) == (
        "leaderboard:weekly:2025-W50"
    )


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("Global", r"board 'Global': unknown board; a board name is 'global', 'weekly:YYYY-Www'"),
        ("weekly", r"board 'weekly': unknown board"),
        ("weekly:2025-50", r"board 'weekly:2025-50': ISO week must look like '2025-W50'"),
        ("weekly:2025-W53", r"ISO year 2025 has no week 53"),
        ("weekly:2025-W00", r"has no week 00"),
        ("area:", r"board 'area:': '' is not an area id"),
        ("area:a b", r"'a b' is not an area id"),
        ("area:x" + "y" * 64, r"is not an area id"),
        ("leaderboard:global", r"that is a Redis key; pass the board name 'global'"),
        ("monthly:2025-12", r"unknown board; a board name is .* or 'area:<area id>'"),
    ],
)
def test_parse_board_errors_name_the_board_and_the_forms(name: str, match: str) -> None:
    with pytest.raises(BoardNameError, match=match) as info:
        parse_board(name)
    assert info.value.board == name
    with pytest.raises(BoardNameError):
        board_key(name)


def test_parse_board_rejects_non_strings() -> None:
    with pytest.raises(BoardNameError, match="board None: a board name is a string"):
        parse_board(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "global", "week": "2025-W50"},
        {"kind": "weekly"},
        {"kind": "weekly", "week": "2025-W50", "area_id": "x"},
        {"kind": "area"},
        {"kind": "area", "area_id": "x", "week": "2025-W50"},
        {"kind": "daily"},
    ],
)
def test_board_rejects_inconsistent_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(BoardNameError):
        Board(**fields)


@pytest.mark.parametrize(
    ("when", "board"),
    [
        (dt.datetime(2025, 12, 14, 23, 59, 59, 999999, tzinfo=UTC), "weekly:2025-W50"),
        (dt.datetime(2025, 12, 15, tzinfo=UTC), "weekly:2025-W51"),
        (dt.datetime(2024, 12, 30, tzinfo=UTC), "weekly:2025-W01"),
        (dt.datetime(2021, 1, 3, 12, tzinfo=UTC), "weekly:2020-W53"),
        (
            dt.datetime(2025, 12, 15, 1, tzinfo=dt.timezone(dt.timedelta(hours=3))),
            "weekly:2025-W50",
        ),
    ],
)
def test_weekly_board_is_the_iso_week_of_the_utc_day(when: dt.datetime, board: str) -> None:
    assert weekly_board(when) == board
    assert parse_board(board).week == board.removeprefix("weekly:")


def test_weekly_board_rejects_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        weekly_board(dt.datetime(2025, 12, 15))


def test_area_board() -> None:
    assert area_board("66f1c0ffee") == "area:66f1c0ffee"
    with pytest.raises(BoardNameError, match=r"board 'area:a:b': 'a:b' is not an area id"):
        area_board("a:b")


# -- rank changes of a batch of movers --------------------------------------------------------

_MOVES = st.lists(
    st.tuples(st.sampled_from(["set", "hide", "show", "remove"]),
              st.integers(0, 11), st.integers(0, 5), st.integers(0, 60)),
    max_size=12,
)


@given(
    start=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 5), st.integers(0, 60)),
                   max_size=14),
    moves=_MOVES,
    limit=st.integers(1, 8),
)
@settings(max_examples=300, deadline=None)
def test_rank_changes_of_many_movers_agree_with_comparing_every_rank(
    start: list[tuple[int, int, int]], moves: list[tuple[str, int, int, int]], limit: int
) -> None:
    board = Leaderboard()
    for user, score, second in start:
        board.set_score(f"u{user}", score, t(second))
    ranks_before = {u: board.rank(u) for u in (f"u{i}" for i in range(12))}
    movers = {f"u{user}" for _, user, _, _ in moves}
    before = {u: board.visible_key(u) for u in movers}
    for kind, user, score, second in moves:
        name = f"u{user}"
        if kind == "set":
            board.set_score(name, score, t(second))
        elif kind == "hide":
            board.opt_out(name)
        elif kind == "show":
            board.opt_in(name)
        else:
            board.remove(name)
    changed = {u: (board.rank(u), was) for u, was in ranks_before.items() if board.rank(u) != was}
    listed, omitted = board.rank_changes(before, limit)
    assert len(listed) + omitted == len(changed)
    assert len(listed) == min(limit, len(changed))
    for entry in listed:
        user = entry["user_id"]
        assert (entry["rank"], entry["previous_rank"]) == changed[user]
        assert entry["score"] == (None if entry["rank"] is None else board.score(user))
    moved = [e for e in listed if e["user_id"] in movers]
    assert listed[: len(moved)] == moved  # the movers first, by their new rank
    assert [e["rank"] for e in listed[len(moved):]] == sorted(
        e["rank"] for e in listed[len(moved):])
    if len(listed) < limit:
        assert {e["user_id"] for e in listed} == set(changed)
    assert board.moves(before, limit) == (listed, omitted, {u: board.rank(u) for u in movers})


def test_rank_changes_of_one_mover_list_it_then_whom_it_passed() -> None:
    board = Leaderboard()
    for n, user in enumerate(["a", "b", "c", "d"]):
        board.set_score(user, 100 - 10 * n, t(n))
    before = {"d": board.visible_key("d")}
    board.set_score("d", 95, t(9))
    assert board.rank_changes(before, 10) == ([
        {"rank": 2, "user_id": "d", "previous_rank": 4, "score": 95},
        {"rank": 3, "user_id": "b", "previous_rank": 2, "score": 90},
        {"rank": 4, "user_id": "c", "previous_rank": 3, "score": 80}], 0)
    assert board.rank_changes(before, 2)[1] == 1
