"""``bench._load`` and ``bench._load_client``: the open-model scheduler, the closed loop, the mix,
and the HTTP client against small local servers (one of them stalls on purpose).

Scheduler arithmetic runs on trio's virtual clock (``autojump_clock``), so its expectations are
exact; the HTTP tests use real loopback sockets and assert only what the stall guarantees by
construction (lower bounds), never a speed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing

from bench._load import (
    Failed,
    LoadResult,
    Operation,
    WeightedMix,
    expect,
    mark,
    percentiles_ms,
    run_closed,
    run_open,
)
from bench._load_client import ClientError, Pool, Response, parse_origin

# --------------------------------------------------------------------------- the scheduler


def _one_connection(slow: dict[int, float], fast: float = 0.01) -> Callable[[int], tuple[
        str, Operation]]:
    """A plan over one shared "connection" (a lock): request i holds it slow.get(i, fast) s."""
    lock = trio.Lock()

    def plan(i: int) -> tuple[str, Operation]:
        async def op() -> None:
            async with lock:
                await trio.sleep(slow.get(i, fast))
        return "op", op
    return plan


async def test_open_model_counts_latency_from_the_scheduled_time_behind_a_stall(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Request 0 holds the only connection for 1 s; requests 1..9 (due every 0.1 s meanwhile)
    # queue behind it. Timed from their scheduled sends, they carry the wait: request k ends
    # at 1.0 + 0.01 k, so its latency is 1.0 + 0.01 k - 0.1 k. Timed from the moment each got
    # the connection (what a closed loop sees), only request 0 would look slow.
    result = await run_open(_one_connection({0: 1.0}), name="stall", rate=10, seconds=2)
    assert (result.scheduled, result.started, result.ok, result.failed) == (20, 20, 20, 0)
    latencies = sorted(zip(*result.series.points("op"), strict=True))
    assert len(latencies) == 20
    for k, (at, latency_ms) in enumerate(latencies[:10]):
        assert at == pytest.approx(0.1 * k, abs=1e-6)
        assert latency_ms == pytest.approx(1000 * (1.0 + 0.01 * k - 0.1 * k), abs=1e-3)
    assert all(latency_ms == pytest.approx(10, abs=1e-3) for _, latency_ms in latencies[11:])
    assert result.total.percentile_us(100) == pytest.approx(1_000_000, rel=1e-3)
    assert sum(1 for _, ms in latencies if ms >= 500) == 6  # requests 0..5, not just 0
    assert result.max_start_lag_ms == pytest.approx(0, abs=1e-6)  # all sent on time
    assert result.window_seconds == 2.0 and result.achieved_rate == 10.0


async def test_the_closed_loop_times_from_the_actual_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    result = await run_closed(_one_connection({0: 1.0}), name="closed", workers=1, seconds=2)
    _, latencies = result.series.points("op")
    assert latencies[0] == pytest.approx(1000, abs=1e-3)
    assert all(ms == pytest.approx(10, abs=1e-3) for ms in latencies[1:])
    assert result.ok == result.started == result.scheduled == 1 + 100  # 1 s + 1 s / 0.01 s
    assert result.achieved_rate == pytest.approx(101 / 2, rel=0.02)


async def test_timeouts_are_errors_and_timed_at_the_time_given_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def plan(i: int) -> tuple[str, Operation]:
        async def op() -> None:
            await trio.sleep(5.0 if i % 2 else 0.0)
        return "op", op

    result = await run_open(plan, name="timeouts", rate=10, seconds=1, timeout_seconds=0.5)
    assert (result.ok, result.failed, result.unsent) == (5, 5, 0)
    assert result.errors == {"timeout": 5}
    assert result.total.count == 10  # the timed-out ones are in the histogram, at 0.5 s
    assert result.total.percentile_us(100) == pytest.approx(500_000, rel=1e-3)
    assert result.ops["op"].to_json()["errors"] == {"timeout": 5}


async def test_the_run_is_bounded_in_time_whatever_the_operations_do(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # An operation deaf to its deadline (shielded) holds the one in-flight slot for 5 s: the
    # scheduler gives up at seconds + timeout_seconds and counts the rest as never sent.
    def plan(i: int) -> tuple[str, Operation]:
        async def op() -> None:
            with trio.CancelScope(shield=True):
                await trio.sleep(5.0)
        return "op", op

    result = await run_open(plan, name="bounded", rate=10, seconds=1, timeout_seconds=1,
                            max_in_flight=1)
    assert (result.scheduled, result.started, result.unsent) == (10, 1, 9)
    assert result.errors["unsent"] == 9
    assert result.seconds == pytest.approx(5.0, abs=0.02)
    assert result.achieved_rate == 0.0  # its one success ended long after the window


async def test_failures_are_counted_by_kind_and_not_timed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def plan(i: int) -> tuple[str, Operation]:
        async def op() -> None:
            if i % 3 == 1:
                raise Failed("http 409", "conflict")
            if i % 3 == 2:
                raise ClientError("closed", "the server closed the connection")
        return ("a" if i < 6 else "b"), op

    result = await run_open(plan, name="kinds", rate=100, seconds=0.09)
    assert result.scheduled == 9
    assert result.ok == 3 and result.total.count == 3
    assert result.errors == {"http 409": 3, "closed": 3}
    assert result.ops["a"].errors == {"http 409": 2, "closed": 2}
    assert result.ops["b"].ok == 1
    document = result.to_json()
    assert document["ok"] + document["failed"] + document["unsent"] == document["scheduled"]


async def test_a_bug_in_an_operation_is_not_counted_but_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def plan(i: int) -> tuple[str, Operation]:
        async def op() -> None:
            raise KeyError("a bench bug")
        return "op", op

    with pytest.RaisesGroup(pytest.RaisesExc(KeyError), flatten_subgroups=True):
        await run_open(plan, name="bug", rate=10, seconds=0.5)


async def test_marks_time_the_phases_of_an_operation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def plan(i: int) -> tuple[str, Operation]:
        async def op() -> None:
            await trio.sleep(0.02)
            mark("first step")
            await trio.sleep(0.03)
        return "write", op

    result = await run_open(plan, name="phases", rate=10, seconds=0.5)
    phase = result.phases["write: first step"]
    assert phase.ok == result.ok == 5
    assert phase.latency.percentile_us(50) == pytest.approx(20_000, rel=1e-3)
    assert result.ops["write"].latency.percentile_us(50) == pytest.approx(50_000, rel=1e-3)


def test_run_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="rate and seconds must be > 0"):
        trio.run(partial(run_open, _one_connection({}), name="x", rate=0, seconds=1))
    with pytest.raises(ValueError, match="workers >= 1"):
        trio.run(partial(run_closed, _one_connection({}), name="x", workers=0, seconds=1))


def test_percentiles_are_in_milliseconds() -> None:
    result = LoadResult(name="x", model="open", target_rate=1.0, connections=1)
    for us in range(1, 1001):
        result.total.record_us(us * 1000)
    expected = {"p50": 500.0, "p95": 950.0, "p99": 990.0, "p99.9": 999.0, "max": 1000.0}
    assert percentiles_ms(result.total) == pytest.approx(expected, rel=1e-3)  # 3 digits
    assert list(percentiles_ms(LoadResult(name="e", model="open", target_rate=1.0,
                                          connections=1).total).values()) == [0.0] * 5


def test_a_weighted_mix_is_exact_over_every_cycle_and_repeatable() -> None:
    names = {"read": 60.0, "write": 30.0, "login": 7.5, "rare": 2.5}
    ops: dict[str, Callable[[int], Operation]] = {name: (lambda i: _noop) for name in names}
    mix = WeightedMix(weights=names, operations=ops, slots=200)
    drawn = [mix(i)[0] for i in range(400)]
    for name, weight in names.items():
        assert drawn[:200].count(name) == drawn[200:].count(name) == weight * 2
        assert mix.share(name) == weight / 100
    assert drawn == [WeightedMix(weights=names, operations=ops, slots=200)(i)[0]
                     for i in range(400)]
    with pytest.raises(ValueError, match="name the same operations"):
        WeightedMix(weights={"a": 1.0}, operations={"b": lambda i: _noop})
    with pytest.raises(ValueError, match="finite, >= 0 and sum > 0"):
        WeightedMix(weights={"a": 0.0}, operations={"a": lambda i: _noop})


async def _noop() -> None:
    pass


def test_expect_names_the_status_it_got() -> None:
    ok = Response(status=201, headers={}, body=b"{}")
    assert expect(ok, 200, 201) is ok
    with pytest.raises(Failed) as caught:
        expect(Response(status=503, headers={}, body=b"busy"), 200)
    assert caught.value.kind == "http 503"
    assert "busy" in str(caught.value)


# --------------------------------------------------------------------------- the client

Handler = Callable[[trio.SocketStream, bytes], Awaitable[bool]]


async def _read_request(stream: trio.SocketStream, buffer: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return None
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    del buffer[:end]
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(buffer) < length:
        buffer += await stream.receive_some(65536)
    del buffer[:length]
    return head


def _ok(body: bytes = b'{"ok": true}', extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


async def _serve(handler: Handler, nursery: trio.Nursery) -> str:
    """A tiny keep-alive HTTP server on a free loopback port: ``handler(stream, head)`` answers
    each request and returns whether to keep the connection open."""

    async def connection(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        async with stream:
            while (head := await _read_request(stream, buffer)) is not None:
                if not await handler(stream, head):
                    return

    listeners = await nursery.start(partial(trio.serve_tcp, connection, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_the_open_model_sees_a_real_server_stall_in_every_request_behind_it() -> None:
    stall = {"start": 0.0, "end": 0.0}
    seen = 0

    async def handler(stream: trio.SocketStream, head: bytes) -> bool:
        nonlocal seen
        seen += 1
        if seen == 5:  # the fifth request stalls the server for 0.3 s
            stall["start"] = trio.current_time()
            await trio.sleep(0.3)
            stall["end"] = trio.current_time()
        await stream.send_all(_ok())
        return True

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = await _serve(handler, nursery)
            async with Pool(url, 1) as pool:
                def plan(i: int) -> tuple[str, Operation]:
                    async def op() -> None:
                        expect(await pool.request("GET", "/x"), 200)
                    return "get", op
                # 2 s: the stall falls inside the schedule even if the fifth request is late
                result = await run_open(plan, name="real stall", rate=50, seconds=2.0)
            nursery.cancel_scope.cancel()
    assert result.ok == result.scheduled == 100 and result.failed == 0
    assert result.total.percentile_us(100) >= 300_000
    # Every request due while the server stalled could only be answered after the stall:
    # its latency from the scheduled time is at least the rest of the stall.
    behind = [(result.origin + at, ms) for at, ms in zip(*result.series.points("get"),
                                                          strict=True)
              if stall["start"] < result.origin + at < stall["end"]]
    assert len(behind) >= 10  # 0.3 s at 50/s, less the boundaries
    for due, latency_ms in behind:
        assert latency_ms >= (stall["end"] - due) * 1000 - 1.0


async def test_the_client_reads_chunked_and_sized_bodies_on_one_connection() -> None:
    async def handler(stream: trio.SocketStream, head: bytes) -> bool:
        if head.startswith(b"GET /chunked"):
            await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"4\r\n{\"a\"\r\n5;ext=1\r\n: 12}\r\n0\r\nX-Trailer: 1\r\n\r\n")
        elif head.startswith(b"POST"):
            await stream.send_all(_ok(b'{"posted": true}', b"X-Seen: yes\r\n"))
        else:
            await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = await _serve(handler, nursery)
            async with Pool(url, 1) as pool:
                assert (await pool.request("GET", "/chunked")).json() == {"a": 12}
                posted = await pool.json("POST", "/p", {"x": 1}, token="t0k")
                assert posted.json() == {"posted": True}
                assert posted.headers["x-seen"] == "yes"
                empty = await pool.request("GET", "/empty")
                assert (empty.status, empty.body) == (204, b"")
                assert pool.connects == 1
            nursery.cancel_scope.cancel()


async def test_a_closed_keep_alive_connection_is_replaced() -> None:
    async def handler(stream: trio.SocketStream, head: bytes) -> bool:
        await stream.send_all(_ok())
        return False  # close after each response, without saying so

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = await _serve(handler, nursery)
            async with Pool(url, 1) as pool:
                for _ in range(3):
                    assert (await pool.request("GET", "/")).status == 200
                assert pool.connects == 3
            nursery.cancel_scope.cancel()


async def test_client_failures_have_kinds() -> None:
    async def handler(stream: trio.SocketStream, head: bytes) -> bool:
        if head.startswith(b"GET /garbage"):
            await stream.send_all(b"SPDY/9 what\r\n\r\n")
        elif head.startswith(b"GET /nolength"):
            await stream.send_all(b"HTTP/1.1 200 OK\r\n\r\nbody")
        return False  # /hangup: closed with no response

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            url = await _serve(handler, nursery)
            async with Pool(url, 2) as pool:
                for target, kind in (("/garbage", "protocol"), ("/nolength", "protocol"),
                                     ("/hangup", "closed")):
                    with pytest.raises(ClientError) as caught:
                        await pool.request("GET", target)
                    assert caught.value.kind == kind, caught.value
            nursery.cancel_scope.cancel()
    with trio.socket.socket() as probe:  # a port nothing listens on
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Pool(f"http://127.0.0.1:{port}", 1) as pool:
        with pytest.raises(ClientError) as caught:
            await pool.request("GET", "/")
    assert caught.value.kind == "connect"
    with pytest.raises(ClientError, match="not JSON"):
        Response(status=200, headers={}, body=b"<html>").json()


def test_only_plain_http_base_urls_are_accepted() -> None:
    origin = parse_origin("http://127.0.0.1:8080/base/")
    assert (origin.host, origin.port, origin.prefix) == ("127.0.0.1", 8080, "/base")
    assert origin.host_header == "127.0.0.1:8080"
    assert parse_origin("http://[::1]:81").host_header == "[::1]:81"
    with pytest.raises(ValueError, match=r"plain HTTP/1\.1"):
        parse_origin("https://example.com")
    with pytest.raises(ValueError, match="size >= 1"):
        Pool("http://127.0.0.1:1", 0)
