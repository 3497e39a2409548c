"""The runtime benchmark's baseline: the naive actor design on plain trio.

One trio task per actor, reading its own ``trio.open_memory_channel`` with ``async for``; senders
``await send_channel.send(msg)``. Every message is the same pre-built frozen attrs instance, as the
subject side sends. Each function returns the figure values, bounded in count (its argument) and in
time (``seconds``): past the deadline a load loop stops and the figure is computed over what was
done. ``python -m bench._naive [--quick]`` prints these numbers alone.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import ClassVar

import attrs
import trio
import trio.testing

from bench._harness import (
    Deadline,
    Figure,
    LatencyRecorder,
    Progress,
    render_table,
    rss_bytes,
    run_in_fresh_process,
)

__all__ = ["MAILBOX_CAPACITY", "PING", "Ping", "ask", "density", "fanout", "tell_throughput"]

#: Buffer size of each naive actor's channel (a bounded mailbox).
MAILBOX_CAPACITY = 1000

#: Extra seconds allowed, past a load loop's deadline, for the actors to drain what was sent.
_DRAIN_GRACE_SECONDS = 10.0


@attrs.frozen(kw_only=True)
class Ping:
    """A small message, built once and sent every time."""

    tag: ClassVar[str] = "bench.ping"
    user_id: str
    amount: int


PING = Ping(user_id="usr_bench", amount=1)


@attrs.define(kw_only=True)
class _Tally:
    """Messages handled so far; ``done`` is set once ``handled`` reaches ``target``."""

    target: int
    handled: int = 0
    done: trio.Event = attrs.field(factory=trio.Event)

    def retarget(self, target: int) -> None:
        """Lower the target to what was actually sent (a load loop stopped at its deadline)."""
        self.target = target
        if self.handled >= target:
            self.done.set()


async def _counting_actor(receive: trio.MemoryReceiveChannel[Ping], tally: _Tally) -> None:
    async for _msg in receive:
        tally.handled += 1
        if tally.handled == tally.target:
            tally.done.set()


async def _wait_drained(tally: _Tally, sent: int) -> None:
    tally.retarget(sent)
    with trio.fail_after(_DRAIN_GRACE_SECONDS):
        await tally.done.wait()


async def tell_throughput(n: int = 200_000, *, seconds: float = 6.0) -> float:
    """Messages per second from one sender to one actor, until the actor has handled them all."""
    send, receive = trio.open_memory_channel[Ping](MAILBOX_CAPACITY)
    tally = _Tally(target=n)
    deadline = Deadline(seconds)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_counting_actor, receive, tally)
        await trio.testing.wait_all_tasks_blocked()
        sent = 0
        start = time.perf_counter()
        for size in deadline.chunks(n):
            for _ in range(size):
                await send.send(PING)
            sent += size
        await _wait_drained(tally, sent)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return sent / elapsed


@attrs.define(slots=True)
class _Reply:
    """A one-shot reply slot: the actor stores the result and sets the event."""

    event: trio.Event = attrs.field(factory=trio.Event)
    value: object = None


async def _replying_actor(receive: trio.MemoryReceiveChannel[tuple[Ping, _Reply]]) -> None:
    handled = 0
    async for _msg, reply in receive:
        handled += 1
        reply.value = handled
        reply.event.set()


async def ask(n: int = 20_000, *, seconds: float = 4.0) -> tuple[float, float, float]:
    """Sequential request/reply round trips: (round trips/s, p50 µs, p99 µs).

    Each request carries a fresh ``_Reply`` (a ``trio.Event`` plus a result attribute), the
    cheapest honest naive reply path. Latencies are kept as raw nanoseconds during the loop and
    fed to the HDR histogram afterwards, so recording costs nothing inside the timed loop.
    """
    send, receive = trio.open_memory_channel[tuple[Ping, _Reply]](MAILBOX_CAPACITY)
    deadline = Deadline(seconds)
    latencies_ns: list[int] = []
    clock = time.perf_counter_ns
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_replying_actor, receive)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for size in deadline.chunks(n, chunk=256):
            for _ in range(size):
                t0 = clock()
                reply = _Reply()
                await send.send((PING, reply))
                await reply.event.wait()
                latencies_ns.append(clock() - t0)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    recorder = LatencyRecorder()
    for ns in latencies_ns:
        recorder.record_ns(ns)
    return len(latencies_ns) / elapsed, recorder.percentile_us(50), recorder.percentile_us(99)


async def fanout(actors: int = 1000, per_actor: int = 100, *, seconds: float = 6.0) -> float:
    """Messages per second from one sender round-robin over ``actors`` actors, each its own task
    and channel, ``per_actor`` messages each, until all are handled."""
    tally = _Tally(target=actors * per_actor)
    sends: list[trio.MemorySendChannel[Ping]] = []
    deadline = Deadline(seconds)
    async with trio.open_nursery() as nursery:
        for _ in range(actors):
            send, receive = trio.open_memory_channel[Ping](MAILBOX_CAPACITY)
            sends.append(send)
            nursery.start_soon(_counting_actor, receive, tally)
        await trio.testing.wait_all_tasks_blocked()
        sent = 0
        start = time.perf_counter()
        for _round in range(per_actor):
            if deadline.expired():
                break
            for send in sends:
                await send.send(PING)
            sent += actors
        await _wait_drained(tally, sent)
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return sent / elapsed


async def density(n: int = 100_000, *, seconds: float = 10.0) -> tuple[float, float]:
    """(bytes of RSS per idle actor, µs per activation) for ``n`` idle actors in one nursery.

    Each actor is a task with its own channel pair, sent one activating message, then left idle
    in ``receive``. Bytes = RSS growth after ``gc.collect()`` / actors started; µs = the time to
    spawn them all and have each handle its first message / actors started. Run it in a fresh
    process (``run_in_fresh_process``): RSS deltas are only meaningful there.
    """
    tally = _Tally(target=n)
    refs: list[trio.MemorySendChannel[Ping]] = []
    deadline = Deadline(seconds)
    gc.collect()
    rss_before = rss_bytes()
    async with trio.open_nursery() as nursery:
        start = time.perf_counter()
        for size in deadline.chunks(n, chunk=512):
            for _ in range(size):
                send, receive = trio.open_memory_channel[Ping](MAILBOX_CAPACITY)
                nursery.start_soon(_counting_actor, receive, tally)  # then idles
                await send.send(PING)
                refs.append(send)
        await _wait_drained(tally, len(refs))
        elapsed = time.perf_counter() - start
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        rss_after = rss_bytes()
        for ref in refs:  # ends each actor's loop: far cheaper than cancelling 100k tasks
            ref.close()
    started = len(refs)
    return (rss_after - rss_before) / started, elapsed * 1e6 / started


async def _figures(quick: bool, progress: Progress) -> list[Figure]:
    scale = 10 if quick else 1
    progress.step("tell_throughput")
    tell = await tell_throughput(200_000 // scale)
    progress.step("ask")
    rate, p50, p99 = await ask(20_000 // scale)
    progress.step("fanout")
    fan = await fanout(1000, 100 // scale)
    progress.step("density (fresh process)")
    per_actor, activation = await run_in_fresh_process("bench._naive", "density", 100_000 // scale)
    return [
        Figure(name="tell_throughput", value=tell, unit="msg/s", better="higher"),
        Figure(name="ask_throughput", value=rate, unit="round trips/s", better="higher"),
        Figure(name="ask_p50_us", value=p50, unit="us", better="lower"),
        Figure(name="ask_p99_us", value=p99, unit="us", better="lower"),
        Figure(name="fanout_throughput", value=fan, unit="msg/s", better="higher"),
        Figure(name="idle_activation_bytes", value=per_actor, unit="bytes", better="lower"),
        Figure(name="activation_us", value=activation, unit="us", better="lower"),
    ]


def main() -> None:
    """Print the naive baseline's figures alone (no subject, no results file)."""
    parser = argparse.ArgumentParser(prog="python -m bench._naive", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller counts (about /10)")
    opts = parser.parse_args()
    with Progress("naive baseline" + (" --quick" if opts.quick else "")) as progress:
        figures = trio.run(_figures, opts.quick, progress)
    print(render_table(figures))


if __name__ == "__main__":
    main()
