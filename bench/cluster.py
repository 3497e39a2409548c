"""``python -m bench cluster``: messages between two nodes through Redis, beside Redis itself.

The setup is the honest one: a private ``redis-server``, a node in another process
(``bench._cluster_node``, hosting ``Sink`` actors with trivial handlers) and this process as the
measuring node; every message goes to actors whose rendezvous home is the other node, so it
crosses processes through Redis Streams both ways (the envelope to the remote inbox, the reply
to ours).

- ``remote_tell_throughput``: tells from one sender spread over 100 remote actors, timed until all
  were handled over there (each actor is asked for its count at the end: the ask queues behind
  the tells to that actor, so its answer says they were handled).
- ``remote_ask_throughput``: one task asking remote actors in sequence.
- ``remote_ask_p50_us``, ``remote_ask_p99_us``: asks offered at a fixed rate (open model: a
  scheduler task launches each on its schedule, latency counts from the scheduled send time).

Baselines, measured against the same server in the same run:

- the tells' ceiling: ``redis-benchmark -P 16`` XADD ops/s (the command the transport issues
  per frame);
- the asks' floor: two fresh plain-Python processes (``bench._cluster_floor``: blocking sockets,
  hand-built RESP, no event loop, no codec, no actor) doing the least a remote ask through two
  streams needs: in sequence for ``remote_ask_throughput`` (ratio value / floor asks/s), and
  offered at the latency figures' rate for as long for ``remote_ask_p50_us`` and
  ``remote_ask_p99_us`` (the floor's own p50 and p99 from the scheduled time; ratio
  floor / value).

The targets are absolute (>= 50,000 msg/s, >= 5,000 asks/s, p99 <= 3 ms): :class:`AbsoluteFigure`
judges ``met`` by the value while the ratio to the baseline is still shown.

Every round runs the ceiling, the floor, then the subject, interleaved, keeping the best of each.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from bench._cluster_node import KIND, READY, Count, Echo, Hit, Sink, node_config, wait_members
from bench._cpu import CpuMeter
from bench._harness import Better, Deadline, Figure, LatencyRecorder, Progress
from tektree import ActorRef, Node
from tektree._telemetry import configure_logging
from tektree.cluster._resp import RespConnection
from tektree.cluster._router import ClusterRouter
from tektree.testing import open_test_node
from tektree.testing.redis import RedisServer, open_redis_server

__all__ = [
    "DEFAULT",
    "QUICK",
    "AbsoluteFigure",
    "Counts",
    "RemoteNode",
    "Results",
    "ask_floor",
    "ask_latency",
    "ask_throughput",
    "measure",
    "open_remote_node",
    "redis_ceiling",
    "remote_keys",
    "run",
    "tell_throughput",
    "versions",
]

CEILING_NAME = "redis-benchmark -P 16 (ceiling)"
FLOOR_NAME = "floor: 2 plain-Python processes, blocking sockets, hand-built RESP"
FLOOR_OPEN_NAME = "floor (2 plain-Python processes) at the same offered rate"
LOCAL, REMOTE = "bench-client", "bench-remote"
_REPO_ROOT = Path(__file__).resolve().parent.parent
_NODE_CODE = "from bench._cluster_node import main; main()"
_FLOOR_CODE = "from bench._cluster_floor import main; main()"
#: The frame the ceiling appends: about the size of an encoded ``Hit`` envelope.
_CEILING_FRAME = "x" * 150
_HIT = Hit()


@attrs.frozen(kw_only=True)
class AbsoluteFigure(Figure):
    """A figure whose target is an absolute value (``threshold``, in ``unit``), not a ratio.

    The baseline and the ratio are shown as for any figure; ``met`` compares the value itself
    with ``threshold``: ``>=`` for rates, ``<=`` for costs.
    """

    threshold: float

    @property
    def met(self) -> bool | None:
        if self.better == "higher":
            return self.value >= self.threshold
        return self.value <= self.threshold


@attrs.frozen(kw_only=True)
class Counts:
    """How much load each measurement sends, within how long, and how many rounds."""

    tell: int
    tell_actors: int
    ask: int
    latency_rate: float  # asks offered per second
    latency_seconds: float
    ceiling_requests: int
    rounds: int
    seconds: float  # the time bound of each load loop


DEFAULT = Counts(tell=100_000, tell_actors=100, ask=3_000, latency_rate=1000.0,
                 latency_seconds=8.0, ceiling_requests=200_000, rounds=2, seconds=15.0)
QUICK = Counts(tell=20_000, tell_actors=100, ask=1_000, latency_rate=1000.0,
               latency_seconds=3.0, ceiling_requests=50_000, rounds=1, seconds=5.0)


# --------------------------------------------------------------------------- the processes


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


async def _kill(process: trio.Process) -> None:
    """SIGKILL ``process`` (by its pid) unless it exited; then reap it."""
    if process.returncode is None:
        os.kill(process.pid, signal.SIGKILL)
    with trio.CancelScope(shield=True):
        await process.wait()


class RemoteNode:
    """A ``bench._cluster_node`` process; its stderr is kept (the tail) for error messages."""

    def __init__(self, name: str, process: trio.Process) -> None:
        self.name = name
        self.process = process
        self.stderr = b""

    async def _read_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        try:
            while chunk := await stream.receive_some(65536):
                self.stderr = (self.stderr + chunk)[-8000:]
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _wait_ready(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        seen = b""
        while f"{READY} {self.name}".encode() not in seen:
            chunk = await stream.receive_some(4096)
            if not chunk:
                await self.process.wait()
                raise RuntimeError(
                    f"bench node {self.name} exited ({self.process.returncode}) before it was "
                    f"ready; stderr tail:\n{self.stderr.decode(errors='replace')}"
                )
            seen += chunk

    async def stop(self, timeout: float = 15.0) -> None:
        """Close its stdin (a graceful stop), then SIGKILL it by its pid after ``timeout``."""
        if self.process.stdin is not None:
            await self.process.stdin.aclose()
        with trio.move_on_after(timeout):
            await self.process.wait()
        await _kill(self.process)


@asynccontextmanager
async def open_remote_node(
    redis_url: str, name: str, *, peers: Sequence[str] = (), start_seconds: float = 30.0
) -> AsyncIterator[RemoteNode]:
    """Start a bench node process; yield once it serves and sees ``peers``; stop it after."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", _NODE_CODE, "--redis", redis_url, "--name", name,
         "--start-seconds", str(start_seconds), "--peers", *peers],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=str(_REPO_ROOT), env=_child_env(),
    )
    remote = RemoteNode(name, process)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(remote._read_stderr)
        try:
            with trio.fail_after(start_seconds + 5):
                await remote._wait_ready()
            yield remote
        finally:
            with trio.CancelScope(shield=True):
                await remote.stop()
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------------- measurements


def _router(node: Node) -> ClusterRouter:
    router = node.system.router
    if not isinstance(router, ClusterRouter):
        raise RuntimeError(f"node {node.name} is not in a cluster (no cluster router)")
    return router


def remote_keys(node: Node, remote: str, count: int) -> list[str]:
    """``count`` keys of ``sink`` actors whose home, seen from ``node``, is ``remote``."""
    router = _router(node)
    keys: list[str] = []
    for i in range(count * 50):
        key = f"s{i}"
        if router.remote_home(node.system.ref(KIND, key).id) == remote:
            keys.append(key)
            if len(keys) == count:
                return keys
    raise RuntimeError(f"placement put none of {count * 50} keys on {remote!r}: is it a member?")


async def _gather_counts(refs: Sequence[ActorRef], timeout: float) -> int:
    total = 0

    async def one(ref: ActorRef) -> None:
        nonlocal total
        hits = await ref.ask(Count(), timeout=timeout)  # not "total += await": a race
        total += hits

    async with trio.open_nursery() as nursery:
        for ref in refs:
            nursery.start_soon(one, ref)
    return total


async def tell_throughput(
    node: Node, keys: Sequence[str], count: int, deadline: Deadline, *, drain_seconds: float = 60.0
) -> float:
    """Tells (msg/s) from this task to the actors ``keys``, round robin, until all handled.

    The sending loop is bounded by ``deadline``; the final count (one ask per actor, queued
    behind its tells) waits for the backlog the receiver still has, up to ``drain_seconds``.
    """
    refs = [node.system.ref(KIND, key) for key in keys]
    before = await _gather_counts(refs, drain_seconds)
    sent = 0
    start = time.perf_counter()
    for size in deadline.chunks(count, chunk=len(refs)):
        for ref in refs[:size]:
            await ref.tell(_HIT)
        sent += size
    handled = await _gather_counts(refs, drain_seconds) - before
    elapsed = time.perf_counter() - start
    if handled != sent:
        raise RuntimeError(f"sent {sent} tells to {len(refs)} remote actors, {handled} handled")
    return sent / elapsed


async def ask_throughput(node: Node, keys: Sequence[str], count: int, deadline: Deadline,
                         *, meter: CpuMeter | None = None) -> float:
    """Sequential remote asks per second from one task, round robin over ``keys``; ``meter``
    (if given) measures the CPU its processes use over the asks."""
    refs = [node.system.ref(KIND, key) for key in keys]
    done = 0
    if meter is not None:
        meter.start()
    start = time.perf_counter()
    for size in deadline.chunks(count, chunk=64):
        for i in range(done, done + size):
            if await refs[i % len(refs)].ask(Echo(n=i), timeout=5.0) != i:
                raise RuntimeError(f"remote echo of {i} came back wrong")
        done += size
    elapsed = time.perf_counter() - start
    if meter is not None:
        meter.stop(done)
    return done / elapsed


def _tick(schedule: Sequence[float], offset: float, stop: threading.Event,
          fire: Callable[[int, float], None]) -> None:
    """In a thread: ``fire(i, at)`` for each time ``at`` of ``schedule`` (trio's clock, which is
    ``time.perf_counter() + offset``), on time to within the OS timer's slack."""
    for i, at in enumerate(schedule):
        delay = at - offset - time.perf_counter()
        if delay > 0 and stop.wait(delay):
            return
        fire(i, at)


async def ask_latency(
    node: Node,
    keys: Sequence[str],
    *,
    rate: float,
    seconds: float,
    max_in_flight: int = 1000,
    ask_timeout: float = 5.0,
) -> LatencyRecorder:
    """Remote asks offered at ``rate`` per second for ``seconds`` (open model).

    Ask ``i`` is due at ``start + i / rate``; the latency counts from that scheduled time, so a
    late launch (the node's loop busy, or the ``max_in_flight`` bound reached) counts against
    the figure rather than hiding. The schedule is kept by a thread sleeping until each due
    time, which hands the ask to the trio loop (``run_sync_soon``): trio's own timers wake at
    millisecond granularity (``epoll_wait`` rounds its timeout up), which would add ~0.5 ms of
    the bench's own lateness to every ask at this rate.
    """
    refs = [node.system.ref(KIND, key) for key in keys]
    recorder = LatencyRecorder()
    room = trio.Semaphore(max_in_flight)
    total = max(1, round(rate * seconds))
    due, arrivals = trio.open_memory_channel[tuple[int, float]](math.inf)
    token = trio.lowlevel.current_trio_token()

    async def one(i: int, scheduled: float) -> None:
        try:
            if await refs[i % len(refs)].ask(Echo(n=i), timeout=ask_timeout) != i:
                raise RuntimeError(f"remote echo of {i} came back wrong")
            recorder.record_us((trio.current_time() - scheduled) * 1e6)
        finally:
            room.release()

    def fire(i: int, at: float) -> None:
        token.run_sync_soon(due.send_nowait, (i, at))

    start = trio.current_time() + 0.01
    schedule = [at for at in (start + i / rate for i in range(total)) if at <= start + seconds]
    stop = threading.Event()

    async def keep_schedule() -> None:
        try:
            await trio.to_thread.run_sync(
                _tick, schedule, trio.current_time() - time.perf_counter(), stop, fire
            )
        finally:
            token.run_sync_soon(due.close)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_schedule)
        try:
            async for i, scheduled in arrivals:
                await room.acquire()
                nursery.start_soon(one, i, scheduled)
        finally:
            stop.set()
    return recorder


# --------------------------------------------------------------------------- the floor


async def ask_floor(port: int, count: int, seconds: float, *, key: str,
                    rate: float = 0.0) -> dict[str, float]:
    """The floor of the ask figures: ``bench._cluster_floor``'s two processes, started fresh,
    asking ``count`` times (or for ``seconds``) through the server at ``port``, on the streams
    ``<key>:a`` and ``<key>:b`` (deleted after): in sequence, or offered at ``rate`` per second
    (open model, latency from the scheduled time). Returns ``asks_per_s``, ``p50_us`` and
    ``p99_us`` (the time of one ask)."""
    base = [sys.executable, "-c", _FLOOR_CODE, "--port", str(port), "--key", key,
            "--count", str(count), "--seconds", str(seconds), "--rate", str(rate)]
    server = await trio.lowlevel.open_process(
        [*base, "--role", "b"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        cwd=str(_REPO_ROOT), env=_child_env(),
    )
    try:
        with trio.fail_after(seconds + 15):
            assert server.stdout is not None
            if b"ready" not in await server.stdout.receive_some(100):
                raise RuntimeError("the floor's serving process did not start")
            asker = await trio.run_process(
                [*base, "--role", "a"], capture_stdout=True, capture_stderr=True, check=False,
                cwd=str(_REPO_ROOT), env=_child_env(),
            )
            if asker.returncode != 0:
                raise RuntimeError(f"the floor's asking process exited {asker.returncode}: "
                                   f"{asker.stderr.decode(errors='replace')[-1000:]}")
            await server.wait()
    finally:
        await _kill(server)
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            async with RespConnection(f"redis://127.0.0.1:{port}") as redis:
                await redis.execute("DEL", f"{key}:a", f"{key}:b")
    figures = json.loads(asker.stdout)
    if not figures["asks"]:
        raise RuntimeError(f"the floor answered no ask within {seconds} s")
    return {"asks_per_s": figures["asks"] / figures["seconds"],
            "p50_us": figures["p50_us"], "p99_us": figures["p99_us"]}


# --------------------------------------------------------------------------- redis-benchmark


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.strip())))


async def _redis_benchmark(args: Sequence[str], timeout: float = 60.0) -> list[dict[str, str]]:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise RuntimeError("redis-benchmark is not on PATH; it ships with redis-server "
                           "(apt-get install redis-server / redis-tools)")
    with trio.fail_after(timeout):
        proc = await trio.run_process([binary, "--csv", *args], capture_stdout=True,
                                      capture_stderr=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark {' '.join(args)} exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')[-1000:]}")
    return _csv_rows(proc.stdout.decode())


async def redis_ceiling(port: int, requests: int) -> dict[str, float]:
    """What the server does under ``redis-benchmark -P 16`` (50 clients): ops/s of SET, GET and
    XADD of a 150-byte field, plus the p50/p99 of a one-client PING round trip, in us."""
    host = ["-h", "127.0.0.1", "-p", str(port)]
    out: dict[str, float] = {}
    for row in await _redis_benchmark([*host, "-P", "16", "-n", str(requests), "-t", "set,get"]):
        out[row["test"].lower()] = float(row["rps"])
    xadd = await _redis_benchmark([*host, "-P", "16", "-n", str(requests), "XADD",
                                   "bench:ceiling", "MAXLEN", "~", "10000", "*", "f",
                                   _CEILING_FRAME])
    out["xadd"] = float(xadd[0]["rps"])
    ping = await _redis_benchmark([*host, "-c", "1", "-n", str(max(1000, requests // 20)),
                                   "--precision", "3", "PING"])
    out["ping_p50_us"] = float(ping[0]["p50_latency_ms"]) * 1000
    out["ping_p99_us"] = float(ping[0]["p99_latency_ms"]) * 1000
    return out


# --------------------------------------------------------------------------- the run


@attrs.frozen(kw_only=True)
class _Spec:
    name: str
    unit: str
    better: Better
    threshold: float | None  # None: no target of its own (the p50, shown beside the p99)
    target: str | None
    baseline_key: str
    baseline_name: str


_SPECS = (
    _Spec(name="remote_tell_throughput", unit="msg/s", better="higher", threshold=50_000,
          target=">= 50,000 msg/s", baseline_key="xadd", baseline_name=CEILING_NAME),
    _Spec(name="remote_ask_throughput", unit="asks/s", better="higher", threshold=5_000,
          target=">= 5,000 asks/s", baseline_key="floor_asks", baseline_name=FLOOR_NAME),
    _Spec(name="remote_ask_p50_us", unit="us", better="lower", threshold=None,
          target=None, baseline_key="floor_p50_us", baseline_name=FLOOR_OPEN_NAME),
    _Spec(name="remote_ask_p99_us", unit="us", better="lower", threshold=3_000,
          target="<= 3,000 us at 1,000 asks/s offered", baseline_key="floor_p99_us",
          baseline_name=FLOOR_OPEN_NAME),
)


@attrs.define
class Results:
    """The best value of each figure and of each baseline over the rounds."""

    values: dict[str, float] = attrs.Factory(dict)
    baselines: dict[str, float] = attrs.Factory(dict)

    @staticmethod
    def _keep(into: dict[str, float], key: str, value: float, better: Better) -> None:
        old = into.get(key)
        if old is None or (value > old if better == "higher" else value < old):
            into[key] = value

    def add_value(self, name: str, value: float) -> None:
        spec = next(s for s in _SPECS if s.name == name)
        self._keep(self.values, name, value, spec.better)

    def add_baselines(self, ceiling: Mapping[str, float]) -> None:
        for key, value in ceiling.items():
            self._keep(self.baselines, key, value, "lower" if key.endswith("_us") else "higher")

    def figures(self) -> list[Figure]:
        figures: list[Figure] = []
        for spec in _SPECS:
            figure = Figure(
                name=spec.name, value=self.values[spec.name], unit=spec.unit,
                better=spec.better, baseline=self.baselines.get(spec.baseline_key),
                baseline_name=spec.baseline_name, target=spec.target,
            )
            if spec.threshold is not None:
                figure = AbsoluteFigure(threshold=spec.threshold,
                                        **attrs.asdict(figure, recurse=False))
            figures.append(figure)
        return figures


async def measure(server: RedisServer, counts: Counts, progress: Progress) -> list[Figure]:
    """All the rounds against ``server``: the remote node in its own process, this process's
    node measuring."""
    results = Results()
    async with open_test_node(node_config(LOCAL, server.url), actors={KIND: Sink}) as node:
        progress.step(f"starting node {REMOTE} (another process)")
        async with open_remote_node(server.url, REMOTE, peers=[LOCAL]) as remote:
            with trio.fail_after(30):
                await wait_members(node, [LOCAL, REMOTE])
            keys = remote_keys(node, REMOTE, counts.tell_actors)
            progress.step(f"activating {len(keys)} actors on {REMOTE}")
            await _gather_counts([node.system.ref(KIND, key) for key in keys], 30.0)
            for r in range(1, counts.rounds + 1):
                label = f"(round {r}/{counts.rounds})"
                progress.step(f"ceiling: redis-benchmark {label}")
                ceiling = await redis_ceiling(server.port, counts.ceiling_requests)
                results.add_baselines(ceiling)
                progress.step(f"ceiling: xadd {ceiling['xadd']:,.0f}/s, set {ceiling['set']:,.0f}"
                              f"/s, get {ceiling['get']:,.0f}/s {label}")
                progress.step(f"floor: {counts.ask:,} asks in sequence, 2 plain-Python "
                              f"processes {label}")
                floor = await ask_floor(server.port, counts.ask, counts.seconds,
                                        key=f"bench:floor:{r}")
                results.add_baselines({"floor_asks": floor["asks_per_s"]})
                progress.step(f"floor: {floor['asks_per_s']:,.0f} asks/s {label}")
                progress.step(f"floor: {counts.latency_rate:,.0f} asks/s offered for "
                              f"{counts.latency_seconds:g} s {label}")
                total = round(counts.latency_rate * counts.latency_seconds)
                floor = await ask_floor(server.port, total, counts.latency_seconds + 1,
                                        key=f"bench:floor:{r}:open", rate=counts.latency_rate)
                results.add_baselines({"floor_p50_us": floor["p50_us"],
                                       "floor_p99_us": floor["p99_us"]})
                progress.step(f"floor: p50 {floor['p50_us']:,.0f} us, p99 "
                              f"{floor['p99_us']:,.0f} us {label}")
                progress.step(f"remote_tell_throughput: {counts.tell:,} tells {label}")
                value = await tell_throughput(node, keys, counts.tell, Deadline(counts.seconds))
                results.add_value("remote_tell_throughput", value)
                progress.step(f"remote_tell_throughput: {value:,.0f} msg/s {label}")
                progress.step(f"remote_ask_throughput: {counts.ask:,} asks {label}")
                meter = CpuMeter({LOCAL: os.getpid(), REMOTE: remote.process.pid,
                                  "redis-server": server.pid})
                value = await ask_throughput(node, keys, counts.ask, Deadline(counts.seconds),
                                             meter=meter)
                results.add_value("remote_ask_throughput", value)
                progress.step(f"remote_ask_throughput: {value:,.0f} asks/s; CPU us/ask: "
                              f"{meter.line()} {label}")
                progress.step(f"remote_ask latency: {counts.latency_rate:,.0f} asks/s offered "
                              f"for {counts.latency_seconds:g} s {label}")
                recorder = await ask_latency(node, keys, rate=counts.latency_rate,
                                             seconds=counts.latency_seconds)
                p50, p99 = recorder.percentile_us(50), recorder.percentile_us(99)
                results.add_value("remote_ask_p50_us", p50)
                results.add_value("remote_ask_p99_us", p99)
                progress.step(f"remote_ask latency: p50 {p50:,.0f} us, p99 {p99:,.0f} us "
                              f"({recorder.count} asks) {label}")
    return results.figures()


_versions: dict[str, str] = {}


async def run(quick: bool, progress: Progress) -> list[Figure]:
    """Start a private Redis and measure; return the four figures of the cluster bench."""
    configure_logging(level="warning", node=LOCAL)  # the node's info lines would fill stdout
    counts = QUICK if quick else DEFAULT
    progress.step("starting redis-server")
    async with open_redis_server() as server:
        version = await trio.run_process(["redis-server", "--version"], capture_stdout=True)
        _versions["redis-server"] = _redis_version(version.stdout.decode())
        return await measure(server, counts, progress)


def _redis_version(text: str) -> str:
    for word in text.split():
        if word.startswith("v="):
            return word[2:]
    return text.strip()


def versions() -> Mapping[str, str]:
    """The version of the redis-server measured (after :func:`run`)."""
    return dict(_versions)
