"""Micro-bench of the stream transport: ``python -m bench._cluster_transport [--batches N]``.

Two transports in one process, each with its own link, on a private ``redis-server``:

- write throughput: 1,000-frame batches of 150-byte frames, each batch one pipelined flush;
- end-to-end throughput: the same frames until the receiver got and acked all of them;
- one-way latency at low load: one frame at a time, ``send`` to ``on_frames``.
"""

from __future__ import annotations

import argparse
import statistics

import trio

from tektree.cluster._redis import open_redis_link
from tektree.cluster.transport import Inbound, StreamTransport
from tektree.testing.redis import open_redis_server

FRAME = b"x" * 150


async def measure(batches: int, batch_size: int, pings: int) -> dict[str, float]:
    async with (
        open_redis_server() as server,
        open_redis_link(server.url) as link_a,
        open_redis_link(server.url) as link_b,
    ):
        received = 0
        arrived = trio.Event()
        receiver: StreamTransport

        def on_frames(batch: list[Inbound]) -> None:
            nonlocal received
            received += len(batch)
            receiver.ack(batch[0].stream, [inbound.entry_id for inbound in batch])
            arrived.set()

        sender = StreamTransport(link_a, node="a", on_frames=lambda batch: None)
        receiver = StreamTransport(link_b, node="b", on_frames=on_frames)
        results: dict[str, float] = {}
        async with trio.open_nursery() as nursery:
            await nursery.start(sender.run)
            await nursery.start(receiver.run)
            total = batches * batch_size
            start = trio.current_time()
            write_seconds = 0.0
            for _ in range(batches):
                began = trio.current_time()
                for _ in range(batch_size):
                    sender.send("b", FRAME)
                await sender.flush()
                write_seconds += trio.current_time() - began
            while received < total:
                arrived = trio.Event()
                await arrived.wait()
            await receiver.flush()
            results["write_frames_per_s"] = total / write_seconds
            results["end_to_end_frames_per_s"] = total / (trio.current_time() - start)

            latencies = []
            for _ in range(pings):
                before = received
                arrived = trio.Event()
                began = trio.current_time()
                sender.send("b", FRAME)
                await arrived.wait()
                latencies.append(trio.current_time() - began)
                assert received == before + 1
            latencies.sort()
            results["latency_p50_ms"] = statistics.median(latencies) * 1000
            results["latency_p99_ms"] = latencies[int(len(latencies) * 0.99) - 1] * 1000
            nursery.cancel_scope.cancel()
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--pings", type=int, default=1000)
    args = parser.parse_args()
    results = trio.run(measure, args.batches, args.batch_size, args.pings)
    for name, value in results.items():
        print(f"{name:>26}: {value:,.2f}")


if __name__ == "__main__":
    main()
