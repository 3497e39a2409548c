"""The subject side of the runtime benchmark: the same workloads as ``bench/_naive.py``, on
tektree's actor system (one node, one pool of a counting actor, ``check_serialization`` off).

Every load loop is bounded in count and time (``Deadline``); ``density`` runs in a fresh
interpreter (``run_in_fresh_process``), so it measures RSS in process.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from bench._harness import Deadline, LatencyRecorder, rss_bytes
from tektree import Actor, ActorId, ActorSystem, handler, message
from tektree.testing import open_test_node

__all__ = ["ask", "density", "fanout", "tell_throughput"]

_DRAIN_GRACE_SECONDS = 30.0


@message("bench.ping")
class Ping:
    user_id: str
    amount: int


PING = Ping(user_id="usr_bench", amount=1)


class _Tally:
    def __init__(self, target: int) -> None:
        self.target = target
        self.handled = 0
        self.done = trio.Event()

    def retarget(self, target: int) -> None:
        self.target = target
        if self.handled >= target:
            self.done.set()


_tally = _Tally(0)


class Counting(Actor):
    """Counts what it handles (like the naive actor) and answers asks with the count."""

    @handler
    def ping(self, msg: Ping) -> int:
        tally = _tally
        tally.handled += 1
        if tally.handled == tally.target:
            tally.done.set()
        return tally.handled


@asynccontextmanager
async def _system(target: int) -> AsyncIterator[ActorSystem]:
    global _tally
    _tally = _Tally(target)
    async with open_test_node(
        actors={"counting": Counting},
        node={"check_serialization": False},
        pool_options={"idle_timeout_seconds": 3600.0},
    ) as node:
        yield node.system


async def _wait_drained(sent: int) -> None:
    _tally.retarget(sent)
    with trio.fail_after(_DRAIN_GRACE_SECONDS):
        await _tally.done.wait()


async def tell_throughput(n: int = 200_000, *, seconds: float = 6.0) -> float:
    async with _system(n) as system:
        ref = system.ref("counting", "a")
        await ref.ask(PING)  # activate it first, as the naive actor's task is started first
        _tally.handled = 0
        deadline = Deadline(seconds)
        sent = 0
        start = time.perf_counter()
        for size in deadline.chunks(n):
            for _ in range(size):
                await ref.tell(PING)
            sent += size
        await _wait_drained(sent)
        return sent / (time.perf_counter() - start)


async def ask(n: int = 20_000, *, seconds: float = 4.0) -> tuple[float, float, float]:
    async with _system(n) as system:
        ref = system.ref("counting", "a")
        await ref.ask(PING)
        deadline = Deadline(seconds)
        latencies_ns: list[int] = []
        clock = time.perf_counter_ns
        start = time.perf_counter()
        for size in deadline.chunks(n, chunk=256):
            for _ in range(size):
                t0 = clock()
                await ref.ask(PING)
                latencies_ns.append(clock() - t0)
        elapsed = time.perf_counter() - start
    recorder = LatencyRecorder()
    for ns in latencies_ns:
        recorder.record_ns(ns)
    return len(latencies_ns) / elapsed, recorder.percentile_us(50), recorder.percentile_us(99)


async def fanout(actors: int = 1000, per_actor: int = 100, *, seconds: float = 6.0) -> float:
    async with _system(actors * per_actor) as system:
        refs = [system.ref("counting", f"a{i}") for i in range(actors)]
        for ref in refs:  # activate them first, as the naive actors' tasks are started first
            await ref.tell(PING)
        with trio.fail_after(_DRAIN_GRACE_SECONDS):
            await system.wait_quiescent()
        _tally.handled = 0
        deadline = Deadline(seconds)
        sent = 0
        start = time.perf_counter()
        for _round in range(per_actor):
            if deadline.expired():
                break
            for ref in refs:
                await ref.tell(PING)
            sent += actors
        await _wait_drained(sent)
        return sent / (time.perf_counter() - start)


async def density(n: int = 100_000, *, seconds: float = 10.0) -> tuple[float, float]:
    """(bytes of RSS per idle activation, µs per activation): each of ``n`` keys is sent one
    message, which activates it; then all sit idle (no task, no mailbox)."""
    async with _system(n) as system:
        deadline = Deadline(seconds)
        gc.collect()
        rss_before = rss_bytes()
        sent = 0
        start = time.perf_counter()
        for size in deadline.chunks(n, chunk=512):
            for i in range(sent, sent + size):
                await system.tell(_key(i), PING)
            sent += size
        await _wait_drained(sent)
        elapsed = time.perf_counter() - start
        with trio.fail_after(_DRAIN_GRACE_SECONDS):
            await system.wait_quiescent()
        gc.collect()
        rss_after = rss_bytes()
        activations = len(system.pools["counting"].cells)
        assert activations == sent, (activations, sent)
        # Leaving the block passivates every activation; that is not part of the measurement.
        return (rss_after - rss_before) / sent, elapsed / sent * 1e6


def _key(i: int) -> ActorId:
    return ActorId("counting", f"usr_{i:07d}")
