"""``python -m bench http`` and ``python -m bench mixed`` at their smallest, against the real
servers they start (a ``tektree run`` process and the ceiling process): the figures come out,
nothing failed, the counts add up. Never a speed."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from bench import http, mixed
from bench._harness import Progress
from bench._load import Failed
from bench._load_api import User
from bench._load_node import Servers, open_servers
from bench._load_ws import open_notifications
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


async def test_pushes_are_matched_by_cause_and_a_dropped_socket_fails_its_waits() -> None:
    """bench._load_ws against a real WebSocket server on loopback (trio-websocket's): a frame
    is matched to its wait whether it arrived before or after it, by its source_event_id
    whatever the order; a socket the server closes fails every wait on it as ``socket
    dropped``; the bench's own close at the end is no drop."""
    server_side: dict[str, WebSocketConnection] = {}
    opened = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        token = parse_qs(urlsplit(request.path).query)["access_token"][0]
        await ws.send_message(json.dumps({"type": "welcome"}))
        server_side[token] = ws
        if len(server_side) == 2:
            opened.set()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.get_message()

    def push(token: str, cause: str) -> Any:
        return server_side[token].send_message(json.dumps({
            "type": "event", "event_type": "gamification.xp.earned", "event_id": f"x:{cause}",
            "payload": {"source_event_id": cause, "amount": 10}}))

    alice = User(uid="usr_a", handle="alice", email="a@example.com", token="ta")
    bob = User(uid="usr_b", handle="bob", email="b@example.com", token="tb")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
            url = f"http://127.0.0.1:{server.port}"
            failures: list[str] = []

            async def wait_failing(user: User, cause: str) -> None:
                with pytest.raises(Failed) as caught:
                    await notes.wait(user, cause)
                failures.append(caught.value.kind)

            async with open_notifications(url, [alice, bob]) as notes:
                await opened.wait()
                await push("ta", "evt_1")  # before anyone waits
                await server_side["ta"].send_message(json.dumps({"type": "pong"}))
                assert await notes.wait(alice, "evt_1") > 0
                async with trio.open_nursery() as waits:
                    waits.start_soon(notes.wait, alice, "evt_3")
                    waits.start_soon(wait_failing, bob, "evt_4")
                    await trio.testing.wait_all_tasks_blocked()
                    await push("ta", "evt_2")  # nobody's: left unclaimed
                    await push("ta", "evt_3")
                    await server_side["tb"].aclose(code=4408, reason="too slow")
                assert failures == ["socket dropped"]
                await wait_failing(bob, "evt_5")  # a later wait fails at once
                assert (notes.frames, notes.matched, notes.unclaimed, notes.dropped) \
                    == (3, 2, 1, 1)
            assert failures == ["socket dropped"] * 2 and notes.dropped == 1
            nursery.cancel_scope.cancel()
