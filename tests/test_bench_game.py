"""``bench.game`` with tiny counts: the three figures come out, the boards agree with the model."""

from __future__ import annotations

import io

from actors.rules import Leaderboard
from bench import game
from bench._harness import Progress
from tektree.testing.redis import RedisServer

TINY = game.Counts(users=20, answers_per_user=2, concurrency=4, board_users=500,
                   rank_queries=50, top_queries=10, seconds=10.0)


def test_the_board_document_is_a_snapshot_in_board_order() -> None:
    document = game.board_document(200)
    board = Leaderboard.from_snapshot(document)
    assert len(board) == 200
    assert [e.user for e in board.top(200)] == [row[0] for row in document["scores"]]


async def test_measure_with_tiny_counts_gives_the_three_figures(
    redis_server: RedisServer,
) -> None:
    stream = io.StringIO()
    figures = await game.measure(redis_server, TINY, Progress("game", stream=stream))
    by_name = {f.name: f for f in figures}
    assert list(by_name) == ["xp_events_throughput", "leaderboard_rank_throughput",
                             "leaderboard_top100_throughput"]
    assert all(f.value > 0 for f in figures)
    assert by_name["xp_events_throughput"].baseline is None
    assert by_name["leaderboard_rank_throughput"].baseline is not None
    assert by_name["leaderboard_top100_throughput"].baseline is not None
    assert "answers end to end" in stream.getvalue()
