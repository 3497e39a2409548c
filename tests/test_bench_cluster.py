"""``bench/cluster.py``: its figures, and its measurements run for real with tiny counts."""

from __future__ import annotations

import io
import os
import shutil

import pytest
import trio

from bench import _cluster_floor, cluster
from bench._cluster_node import KIND, Count, Hit, Sink, node_config, wait_members
from bench._harness import Progress
from tektree.cluster import StreamTransport
from tektree.cluster._resp import RespConnection
from tektree.cluster._router import ClusterRouter
from tektree.testing import open_test_node
from tektree.testing.redis import RedisServer

TINY = cluster.Counts(tell=300, tell_actors=10, ask=40, latency_rate=200.0, latency_seconds=0.3,
                      ceiling_requests=2_000, rounds=1, seconds=10.0)

NAMES_AND_UNITS = [
    ("remote_tell_throughput", "msg/s"),
    ("remote_ask_throughput", "asks/s"),
    ("remote_ask_p50_us", "us"),
    ("remote_ask_p99_us", "us"),
]


def _need_redis_benchmark() -> None:
    if shutil.which("redis-benchmark") is None:
        message = "redis-benchmark is not installed (it ships with redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must run the cluster bench's ceiling")
        pytest.skip(message)


def test_an_absolute_figure_is_met_by_its_value_whatever_its_ratio() -> None:
    rate = cluster.AbsoluteFigure(name="r", value=60_000.0, unit="msg/s", better="higher",
                                  baseline=300_000.0, baseline_name="ceiling", threshold=50_000)
    assert rate.ratio == pytest.approx(0.2)
    assert rate.met is True
    assert rate.to_json()["met"] is True
    slow = cluster.AbsoluteFigure(name="p99", value=3_500.0, unit="us", better="lower",
                                  baseline=50.0, threshold=3_000)
    assert slow.met is False
    assert cluster.AbsoluteFigure(name="p99", value=3_000.0, unit="us", better="lower",
                                  threshold=3_000).met is True


def test_the_quick_run_is_smaller_than_the_default() -> None:
    assert cluster.QUICK.tell < cluster.DEFAULT.tell
    assert cluster.QUICK.latency_seconds * cluster.QUICK.rounds < (
        cluster.DEFAULT.latency_seconds * cluster.DEFAULT.rounds
    )
    assert cluster.QUICK.latency_rate == cluster.DEFAULT.latency_rate == 1000.0


async def test_measure_with_tiny_counts_gives_the_four_figures(redis_server: RedisServer) -> None:
    _need_redis_benchmark()
    stream = io.StringIO()
    with trio.fail_after(90):
        figures = await cluster.measure(redis_server, TINY, Progress("cluster", stream=stream))
    assert [(f.name, f.unit) for f in figures] == NAMES_AND_UNITS
    for figure in figures:
        assert figure.value > 0, figure
        assert figure.baseline is not None and figure.baseline > 0, figure
        assert figure.ratio is not None and figure.ratio > 0, figure
    by_name = {f.name: f for f in figures}
    assert by_name["remote_tell_throughput"].baseline_name == cluster.CEILING_NAME
    assert by_name["remote_ask_throughput"].baseline_name == cluster.FLOOR_NAME
    for name in ("remote_ask_p50_us", "remote_ask_p99_us"):
        assert by_name[name].baseline_name == cluster.FLOOR_OPEN_NAME
    assert by_name["remote_ask_p99_us"].value >= by_name["remote_ask_p50_us"].value
    assert by_name["remote_ask_p99_us"].met is not None
    assert by_name["remote_ask_p50_us"].met is None  # no target of its own
    assert "remote_ask latency" in stream.getvalue()


async def test_redis_ceiling_reports_rates_and_round_trip(redis_server: RedisServer) -> None:
    _need_redis_benchmark()
    with trio.fail_after(30):
        ceiling = await cluster.redis_ceiling(redis_server.port, 2_000)
    assert set(ceiling) == {"set", "get", "xadd", "ping_p50_us", "ping_p99_us"}
    assert all(value > 0 for value in ceiling.values())


async def test_the_floor_asks_through_the_same_server_and_cleans_up(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(60):
        floor = await cluster.ask_floor(redis_server.port, 200, 20.0, key="bench:floor:t")
        assert set(floor) == {"asks_per_s", "p50_us", "p99_us"}
        assert floor["asks_per_s"] > 0
        assert 0 < floor["p50_us"] <= floor["p99_us"]
        offered = await cluster.ask_floor(redis_server.port, 50, 20.0, key="bench:floor:o",
                                          rate=500.0)
        assert offered["asks_per_s"] <= 550  # on the schedule, not as fast as it can
        async with RespConnection(redis_server.url) as redis:
            keys = ["bench:floor:t:a", "bench:floor:t:b", "bench:floor:o:a", "bench:floor:o:b"]
            assert await redis.execute("EXISTS", *keys) == 0


def test_the_floor_speaks_resp_and_ranks_percentiles() -> None:
    assert _cluster_floor.command("XACK", b"s", 7) == b"*3\r\n$4\r\nXACK\r\n$1\r\ns\r\n$1\r\n7\r\n"
    values = [float(v) for v in range(1, 101)]
    assert _cluster_floor.percentile(values, 50) == 50.0
    assert _cluster_floor.percentile(values, 99) == 99.0
    assert _cluster_floor.percentile(values, 100) == 100.0
    assert _cluster_floor.percentile([], 99) == 0.0


async def test_a_loop_of_remote_tells_lets_the_transport_write_meanwhile(
    redis_server: RedisServer,
) -> None:
    # Regression: a remote tell only buffered its frame and never yielded, so a plain loop of
    # tells starved the transport's writer until the buffer held max_buffered_frames (50,000)
    # and the next tell raised TransportBackpressure. It now yields like a local delivery.
    names = [cluster.LOCAL, cluster.REMOTE]
    async with (
        open_test_node(node_config(names[0], redis_server.url), actors={KIND: Sink}) as local,
        open_test_node(node_config(names[1], redis_server.url), actors={KIND: Sink}),
    ):
        with trio.fail_after(30):
            await wait_members(local, names)
            (key,) = cluster.remote_keys(local, cluster.REMOTE, 1)
            ref = local.system.ref(KIND, key)
            router = local.system.router
            assert isinstance(router, ClusterRouter)
            assert isinstance(router.sink, StreamTransport)
            for _ in range(5_000):
                await ref.tell(Hit())
            assert router.sink.statistics().sent > 0  # written while the loop ran
            assert await ref.ask(Count()) == 5_000
