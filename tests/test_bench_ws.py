"""``bench.ws`` with tiny counts: both servers and the client run, the four figures come out."""

from __future__ import annotations

import io

import pytest

from bench import ws
from bench._harness import Progress

TINY = ws.Counts(idle=40, members=20, rounds=2, churn_seconds=0.5, churn_concurrency=4)


@pytest.mark.slow
async def test_measure_with_tiny_counts_gives_the_four_figures() -> None:
    stream = io.StringIO()
    figures = await ws.measure(TINY, Progress("ws", stream=stream))
    by_name = {f.name: f for f in figures}
    assert list(by_name) == ["ws_idle_bytes_per_socket", "ws_broadcast_p99_ms",
                             "ws_broadcast_p50_ms", "ws_connect_churn"]
    assert all(f.baseline is not None and f.baseline_name for f in figures)
    assert by_name["ws_broadcast_p99_ms"].value >= by_name["ws_broadcast_p50_ms"].value > 0
    assert by_name["ws_connect_churn"].value > 0
    assert by_name["ws_idle_bytes_per_socket"].met is not None
    assert by_name["ws_broadcast_p99_ms"].to_json()["target"].startswith("<= 150 ms")
    log = stream.getvalue()
    assert "missed arrivals: tektree 0, baseline 0" in log
    assert "40 sockets held" in log and "broadcast 2/2" in log
