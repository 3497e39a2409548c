"""``python -m bench http`` and ``python -m bench mixed`` at their smallest, against the real
servers they start (a ``tektree run`` process and the ceiling process): the figures come out,
nothing failed, the counts add up. Never a speed."""

from __future__ import annotations

import io
from typing import Any

import pytest
import trio

from bench import http, mixed
from bench._harness import Progress
from bench._load_node import Servers, open_servers
from bench._report import LastReport, LoadReport

TINY_HTTP = http.Counts(users=4, get_workers=2, get_seconds=0.5, warmup_seconds=0.2, rounds=1,
                        write_rate=40.0, write_seconds=1.0, baseline_seconds=0.5,
                        write_closed_seconds=0.5, write_closed_max=40, write_connections=8,
                        writes_per_user=20)
#: 100 requests over a mix laid out on 100 slots: every operation exactly its weight's times.
TINY_MIXED = mixed.Counts(users=4, rate=50.0, seconds=2.0, baseline_seconds=0.5,
                          connections=8, mix_slots=100)

HTTP_FIGURES = [
    ("profile_get_throughput", "req/s"), ("profile_get_p50_ms", "ms"),
    ("profile_get_p95_ms", "ms"), ("profile_get_p99_ms", "ms"), ("profile_get_p999_ms", "ms"),
    ("write_p50_ms", "ms"), ("write_p95_ms", "ms"),
    ("write_p99_ms", "ms"), ("write_p999_ms", "ms"), ("write_max_ms", "ms"),
    ("write_post_p99_ms", "ms"), ("write_throughput", "req/s"),
    ("write_achieved_rate", "req/s"), ("http_errors", "requests"),
]


async def _measure(bench: Any, counts: Any, stream: io.StringIO) -> LoadReport:
    with trio.fail_after(120):
        async with open_servers() as servers:
            report: LoadReport = await bench.measure(servers, counts, Progress("b", stream=stream))
    return report


@pytest.mark.slow
async def test_the_http_bench_at_its_smallest() -> None:
    stream = io.StringIO()
    report = await _measure(http, TINY_HTTP, stream)
    figures = {f.name: f for f in report.figures}
    assert [(f.name, f.unit) for f in report.figures] == HTTP_FIGURES
    assert figures["http_errors"].value == 0 and figures["http_errors"].met is True
    throughput = figures["profile_get_throughput"]
    assert throughput.value > 0 and throughput.baseline is not None and throughput.baseline > 0
    assert throughput.met is not None
    assert figures["write_p99_ms"].met is not None  # judged, whatever the verdict
    assert figures["write_max_ms"].value >= figures["write_p99_ms"].value \
        >= figures["write_p50_ms"].value > 0
    assert figures["write_achieved_rate"].baseline == 40.0
    names = [run.name for run in report.runs]
    assert names == ["ceiling closed loop (round 1/1)", "profile GET closed loop (round 1/1)",
                     "write closed loop", "ceiling at 40/s", "write at 40/s"]
    for run in report.runs:
        assert run.failed == run.unsent == 0, run.to_json()
        assert run.ok == run.started == run.scheduled > 0
        assert run.total.count == run.ok
    closed, write = report.runs[2], report.runs[-1]
    assert write.scheduled == 40
    for run in (closed, write):  # every write timed to its own socket push
        assert run.phases["write: POST answered"].ok == run.phases["write: socket push"].ok \
            == run.ops["write"].ok == run.ok
        assert set(run.phases) == {"write: POST answered", "write: socket push"}
    assert closed.ok + write.ok <= TINY_HTTP.writes_per_user * TINY_HTTP.writers
    assert TINY_HTTP.writers == 4  # (40 + 40) / 20 writes a user
    (sockets,) = (n for n in write.notes if " sockets held" in n)
    assert sockets.startswith("4 /ws/notifications sockets held") and \
        f"{closed.ok + write.ok:,} matched to writes" in sockets and \
        sockets.endswith(", 0 sockets dropped"), sockets
    assert http.WRITE_NOTE in write.notes
    assert "write at 40/s" in stream.getvalue()


@pytest.mark.slow
async def test_the_mixed_bench_at_its_smallest() -> None:
    report = await _measure(mixed, TINY_MIXED, io.StringIO())
    figures = {f.name: f for f in report.figures}
    assert list(figures) == [
        "mixed_achieved_rate", "mixed_p50_ms", "mixed_p95_ms", "mixed_p99_ms", "mixed_p999_ms",
        "mixed_max_ms", *(f"mixed_{op.replace(' ', '_')}_p99_ms" for op in mixed.WEIGHTS),
        "mixed_errors"]
    assert figures["mixed_errors"].value == 0
    baseline, mix = report.runs
    assert baseline.failed == mix.failed == mix.unsent == 0, mix.to_json()
    assert mix.scheduled == mix.ok == 100
    assert {name: stats.ok for name, stats in mix.ops.items()} == dict(mixed.WEIGHTS)
    assert sum(stats.latency.count for stats in mix.ops.values()) == mix.total.count == 100
    for name in mixed.WEIGHTS:
        assert figures[f"mixed_{name.replace(' ', '_')}_p99_ms"].value > 0


async def test_a_node_given_by_url_is_measured_instead_of_one_started() -> None:
    last = LastReport()
    seen: list[Servers] = []

    async def measure(servers: Servers) -> LoadReport:
        seen.append(servers)
        return LoadReport(bench="given")

    with trio.fail_after(60):
        figures = await last.measure(measure, Progress("given", stream=io.StringIO()),
                                     "http://127.0.0.1:9/")
    assert figures == []
    (servers,) = seen
    assert servers.node == "http://127.0.0.1:9"
    assert servers.ceiling.startswith("http://127.0.0.1:")  # the ceiling still runs
    assert last.details()["notes"] == ["node under test: http://127.0.0.1:9/ (given with --url)"]
