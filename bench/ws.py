"""The WebSocket benchmark: idle sockets held, one event fanned out to 1,000, connect churn.

Each subject runs in a fresh server process (``bench._ws_server``), the client in another
(``bench._ws_client``, plain sockets on one epoll loop), so neither's memory pollutes the
other's and the client's CPU stays small. The subject is a TekTree node on embedded defaults
serving the gateway; the baseline is a naive quart-trio app on the same Hypercorn setup, whose
socket handler keeps each socket in a set and whose broadcast awaits ``websocket.send`` once per
socket.

Figures (ratio > 1 = better than the baseline):

- ``ws_idle_bytes_per_socket``: the server's RSS growth over ``idle`` sockets held open and
  idle, divided by ``idle``, measured after a warm-up of 200 sockets that stay open. TekTree:
  ``/ws/notifications``, one distinct user per socket (so one ``RoomActor`` activation, one
  verified token and one pub/sub topic each: the heaviest endpoint); the baseline: its
  ``/ws/leaderboard`` handler. Target: <= 30,000 bytes.
- ``ws_broadcast_p99_ms`` (and ``_p50_ms``): one event to every one of ``members`` sockets,
  latency from the send time to the arrival at each socket, all rounds in one HDR histogram.
  TekTree: ``members`` sockets on ``/ws/leaderboard?board=area:bench``, the event a
  ``SetScore`` told to the board's ``LeaderboardActor`` (journaled, then its rank change
  published to the board's topic, then written to every socket); the clock starts just before
  the tell. Baseline: the same number of sockets, the clock starts just before its loop.
  Target: p99 <= 150 ms.
- ``ws_connect_churn``: connects + closes per second, ``churn_concurrency`` at once, each
  one a full cycle (TCP connect, handshake, for TekTree the token check, the room join and the
  ``welcome`` frame, then a close handshake). No target: the baseline accepts and closes, with
  no token and no room, so it is a ceiling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import attrs
import psutil  # type: ignore[import-untyped, unused-ignore]
import trio

from bench._harness import Figure, LatencyRecorder, Progress, measure_rate
from bench.cluster import AbsoluteFigure

__all__ = ["DEFAULT", "QUICK", "Counts", "measure", "run"]

BASELINE = "naive quart-trio websocket handler (await send per socket) on the same Hypercorn"
WARM_SOCKETS = 200
IDLE_TARGET_BYTES = 30_000
P99_TARGET_MS = 150.0
_REPO = Path(__file__).resolve().parent.parent


@attrs.frozen(kw_only=True)
class Counts:
    idle: int  # idle sockets held by one node
    members: int  # sockets of the broadcast room
    rounds: int  # broadcasts timed
    churn_seconds: float
    churn_concurrency: int
    round_timeout: float = 10.0  # seconds one broadcast may take to reach every socket


DEFAULT = Counts(idle=10_000, members=1_000, rounds=20, churn_seconds=5.0, churn_concurrency=20)
QUICK = Counts(idle=2_000, members=1_000, rounds=5, churn_seconds=2.0, churn_concurrency=20)


class _Process:
    """A child speaking one JSON object per line on its stdin and stdout."""

    def __init__(self, process: trio.Process, name: str) -> None:
        assert process.stdout is not None and process.stdin is not None
        self.process = process
        self.name = name
        self._buffer = b""

    async def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(command).encode() + b"\n")

    async def reply(self, seconds: float = 120.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        with trio.fail_after(seconds):
            while b"\n" not in self._buffer:
                chunk = await self.process.stdout.receive_some()
                if not chunk:
                    raise RuntimeError(f"{self.name} exited (code {self.process.poll()}) "
                                       "before answering; see its stderr above")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    async def ask(self, *, within: float = 120.0, **command: Any) -> dict[str, Any]:
        await self.send(**command)
        return await self.reply(within)


@asynccontextmanager
async def _child(name: str, *args: str) -> AsyncIterator[_Process]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH")) if p)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", *args], cwd=str(_REPO), env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)
    child = _Process(process, name)
    try:
        yield child
    finally:
        with trio.move_on_after(5):
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await child.send(cmd="quit")
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                await stream.aclose()


@asynccontextmanager
async def _server(mode: str, data_dir: Path) -> AsyncIterator[tuple[_Process, int, Any]]:
    """A fresh server process: (it, its port, its psutil.Process)."""
    async with _child(f"{mode} server", "bench._ws_server", mode, str(data_dir)) as server:
        started = await server.reply(60)
        yield server, int(started["port"]), psutil.Process(int(started["pid"]))


def _users(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


async def _settled_rss(proc: Any) -> int:
    await trio.sleep(0.5)  # let the server finish the joins it was answering
    return int(proc.memory_info().rss)


async def idle_bytes(mode: str, port: int, proc: Any, client: _Process, key: str,
                     counts: Counts, progress: Progress, path: str | None = None) -> float:
    """RSS growth per idle socket held by a fresh ``mode`` server."""
    path = path or ("/ws/notifications" if mode == "tektree" else "/ws/leaderboard")
    tokens = mode == "tektree"
    progress.step(f"{mode}: warming up with {WARM_SOCKETS} sockets")
    await client.ask(cmd="connect", port=port, paths=[path] * WARM_SOCKETS, welcome=tokens,
                     key_file=key, users=_users("warm", WARM_SOCKETS) if tokens else None)
    before = await _settled_rss(proc)
    progress.step(f"{mode}: opening {counts.idle:,} idle sockets")
    opened = await client.ask(cmd="connect", port=port, paths=[path] * counts.idle,
                              welcome=tokens, key_file=key,
                              users=_users("idle", counts.idle) if tokens else None)
    after = await _settled_rss(proc)
    progress.step(f"{mode}: {opened['connected']:,} sockets held "
                  f"({opened['seconds']:.1f} s to open), "
                  f"{(after - before) / counts.idle:,.0f} bytes each")
    await client.ask(cmd="close")
    return (after - before) / counts.idle


async def broadcast(mode: str, server: _Process, port: int, client: _Process, key: str,
                    counts: Counts, progress: Progress) -> tuple[LatencyRecorder, int]:
    """(latencies of every member in every round, missed arrivals)."""
    tokens = mode == "tektree"
    path = "/ws/leaderboard?board=area:bench"
    recorder = LatencyRecorder()
    missed = 0
    published: list[float] = []  # TekTree: from the tell to the rank change's publish
    progress.step(f"{mode}: {counts.members:,} sockets join the broadcast room")
    await client.ask(cmd="connect", port=port, paths=[path] * counts.members,
                     welcome=tokens, key_file=key,
                     users=_users("watch", counts.members) if tokens else None)
    await trio.sleep(0.3)
    for rnd in range(counts.rounds + 1):  # round 0 warms the board up, not recorded
        await client.send(cmd="arrivals", timeout=counts.round_timeout)
        await client.reply()  # ready: its epoll loop is waiting
        sent = await server.ask(cmd="broadcast", round=rnd)
        t0 = sent["t0"]
        arrivals = (await client.reply(counts.round_timeout + 30))["arrivals"]
        if rnd == 0:
            continue
        if sent.get("published") is not None:
            published.append(sent["published"] - t0)
        for at in arrivals:
            recorder.record_us((at - t0) * 1e6)
        for _ in range(counts.members - len(arrivals)):
            recorder.record_us(counts.round_timeout * 1e6)
        missed += counts.members - len(arrivals)
        progress.step(f"{mode}: broadcast {rnd}/{counts.rounds}, last arrival "
                      f"{(max(arrivals, default=t0) - t0) * 1e3:.0f} ms")
        await trio.sleep(0.05)
    await client.ask(cmd="close")
    if published:
        published.sort()
        progress.step(f"{mode}: the board actor published its rank change "
                      f"{published[len(published) // 2] * 1e3:.1f} ms after the tell (median), "
                      f"{published[-1] * 1e3:.1f} ms at most: the journal write's share")
    pauses = await server.ask(cmd="gc")
    progress.step(f"{mode}: {pauses['full_collections']} full GC collections since the "
                  f"start, the longest {pauses['longest_ms']} ms")
    return recorder, missed


async def churn(mode: str, port: int, client: _Process, data_dir: Path, counts: Counts,
                progress: Progress) -> float:
    """Connects + closes per second."""
    progress.step(f"{mode}: connect churn for {counts.churn_seconds} s")
    tokens = mode == "tektree"
    path = "/ws/notifications" if tokens else "/ws/leaderboard"
    if tokens:
        path += "?access_token=" + _token(data_dir, "churner")
    churned = await client.ask(cmd="churn", port=port, path=path,
                               seconds=counts.churn_seconds,
                               concurrency=counts.churn_concurrency, welcome=tokens)
    if churned["errors"]:
        progress.step(f"{mode}: {churned['errors']} churn errors")
    return measure_rate(churned["completed"], churned["seconds"])


@attrs.frozen
class _Result:
    idle: float
    cast: LatencyRecorder
    missed: int
    churn: float


async def _subject(mode: str, data_dir: Path, client: _Process, counts: Counts,
                   progress: Progress) -> _Result:
    """The idle sockets on a fresh server; the broadcast and the churn on another one.

    (Not on the same: the collector's first full collection after 10,000 sockets closed at
    once walks their garbage, >1 s here, and would land in the middle of the broadcasts.)
    """
    key = str(data_dir / "jwt-rs256.pem")
    async with _server(mode, data_dir) as (_, port, proc):
        idle = await idle_bytes(mode, port, proc, client, key, counts, progress)
    async with _server(mode, data_dir) as (server, port, _):
        cast, missed = await broadcast(mode, server, port, client, key, counts, progress)
        rate = await churn(mode, port, client, data_dir, counts, progress)
    return _Result(idle=idle, cast=cast, missed=missed, churn=rate)


def _token(data_dir: Path, user: str) -> str:
    from gateway.tokens import TokenAuthority, load_key

    authority = TokenAuthority(load_key((data_dir / "jwt-rs256.pem").read_bytes()))
    return authority.issue_access(user_id=user, role="user")[0]


def _write_key(data_dir: Path) -> None:
    """One key for both subjects' data directories and the client's tokens."""
    from gateway.tokens import KEY_FILE, generate_key

    pem = generate_key().private_pem()
    for where in (data_dir, data_dir / "tektree", data_dir / "quart"):
        where.mkdir(exist_ok=True)
        (where / KEY_FILE).write_bytes(pem)
        (where / KEY_FILE).chmod(0o600)


async def measure(counts: Counts, progress: Progress) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        data_dir = Path(tmp)
        _write_key(data_dir)
        started = time.perf_counter()
        async with _child("client", "bench._ws_client") as client:
            ours = await _subject("tektree", data_dir / "tektree", client, counts, progress)
            theirs = await _subject("quart", data_dir / "quart", client, counts, progress)
        progress.step(f"measured in {time.perf_counter() - started:.0f} s; missed arrivals: "
                      f"tektree {ours.missed}, baseline {theirs.missed}")
    our_cast, their_cast = ours.cast, theirs.cast
    return [
        AbsoluteFigure(name="ws_idle_bytes_per_socket", value=ours.idle, unit="bytes",
                       better="lower", baseline=theirs.idle, baseline_name=BASELINE,
                       threshold=IDLE_TARGET_BYTES, target="<= 30,000 bytes per idle socket"),
        AbsoluteFigure(name="ws_broadcast_p99_ms", value=our_cast.percentile_us(99) / 1e3,
                       unit="ms", better="lower",
                       baseline=their_cast.percentile_us(99) / 1e3, baseline_name=BASELINE,
                       threshold=P99_TARGET_MS,
                       target=f"<= 150 ms to every one of {counts.members:,} members"),
        Figure(name="ws_broadcast_p50_ms", value=our_cast.percentile_us(50) / 1e3, unit="ms",
               better="lower", baseline=their_cast.percentile_us(50) / 1e3,
               baseline_name=BASELINE),
        Figure(name="ws_connect_churn", value=ours.churn, unit="connects+closes/s",
               better="higher", baseline=theirs.churn,
               baseline_name="the same handler, accepting and closing (no token, no room)"),
    ]


async def run(quick: bool, progress: Progress) -> list[Figure]:
    return await measure(QUICK if quick else DEFAULT, progress)
