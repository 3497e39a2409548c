"""The floor of a remote ask through Redis Streams: two plain-Python processes, nothing else.

The baseline of ``python -m bench cluster``'s ask figures, run as two fresh processes against the
bench's own ``redis-server``::

    python -c "from bench._cluster_floor import main; main()" --port P --role b --key K ...
    python -c "from bench._cluster_floor import main; main()" --port P --role a --key K ...

Blocking sockets with ``TCP_NODELAY``, RESP built by hand, the standard library only: no event
loop, no codec, no actor. It does what a remote ask needs at least, the way the transport does
it (one inbox stream per side, one consumer group):

- ``a`` (the asker), per ask: ``XADD`` the request to ``b``'s stream, ``XREADGROUP BLOCK`` on its
  own stream for the reply, ``XACK`` the reply: three round trips, in sequence;
- ``b`` (the actor): ``XREADGROUP BLOCK`` on its stream, then the reply's ``XADD`` to ``a``'s
  stream and the ``XACK`` of the request in one pipelined write.

Bounded in count and time: ``a`` stops after ``--count`` asks or ``--seconds``, then sends ``b`` a
stop frame and deletes both streams; ``b`` stops on that frame or at its own deadline (its blocking
reads time out every ``BLOCK_MS`` to check it). ``a`` prints one JSON line: ``asks``, ``seconds``,
``p50_us``, ``p99_us`` (the time of each ask, from its ``XADD`` to its reply; with ``--rate``,
from its scheduled time: asks offered on a schedule, one at a time, as an open-model client).
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["FloorConnection", "command", "main", "percentile"]

BLOCK_MS = 500
GROUP = b"g"
CONSUMER = b"c"
STOP = b"stop"
FRAME = b"x" * 150  # about an encoded envelope, as the ceiling's frame


def command(*args: bytes | str | int) -> bytes:
    """One RESP command."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class FloorConnection:
    """A blocking socket to Redis and a buffered reader of its replies."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def send(self, *commands: bytes) -> None:
        self.sock.sendall(b"".join(commands))

    def read(self) -> Any:
        """One reply: bytes, int, a list, None (nil); an error reply raises RuntimeError."""
        line = self.file.readline()
        if not line:
            raise RuntimeError("redis-server closed the connection")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return body
        if kind == b"-":
            raise RuntimeError(f"redis-server replied {body.decode(errors='replace')}")
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            return None if size < 0 else self.file.read(size + 2)[:-2]
        if kind == b"*":
            size = int(body)
            return None if size < 0 else [self.read() for _ in range(size)]
        raise RuntimeError(f"not RESP: {line!r}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _entries(reply: Any) -> list[tuple[bytes, bytes]]:
    """(entry id, frame) of each entry of a one-stream ``XREADGROUP`` reply (nil: none)."""
    if not reply:
        return []
    return [(entry[0], entry[1][1]) for entry in reply[0][1]]


def _read_group(stream: bytes) -> bytes:
    return command("XREADGROUP", "GROUP", GROUP, CONSUMER, "COUNT", 100, "BLOCK", BLOCK_MS,
                   "STREAMS", stream, ">")


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ascending ``sorted_values``; 0.0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(pct / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def serve(conn: FloorConnection, mine: bytes, peer: bytes, deadline: float) -> None:
    """Role ``b``: answer every request until the stop frame or the deadline."""
    while time.perf_counter() < deadline:
        conn.send(_read_group(mine))
        entries = _entries(conn.read())
        if not entries:
            continue
        ids = [entry_id for entry_id, _ in entries]
        replies = [command("XADD", peer, "*", "f", FRAME) for _ in entries]
        conn.send(*replies, command("XACK", mine, GROUP, *ids))
        for _ in range(len(replies) + 1):
            conn.read()
        if any(frame == STOP for _, frame in entries):
            return


def ask(conn: FloorConnection, mine: bytes, peer: bytes, count: int,
        deadline: float, rate: float = 0.0) -> dict[str, float]:
    """Role ``a``: ``count`` asks (or until the deadline); their figures.

    ``rate`` 0: in sequence, each ask timed from its ``XADD``. Otherwise on a schedule, ask
    ``i`` due at ``start + i / rate`` and timed from then (open model; one at a time: an ask
    due while the previous one is still out starts late, and its lateness counts)."""
    took: list[float] = []
    start = time.perf_counter()
    while len(took) < count and time.perf_counter() < deadline:
        now = time.perf_counter()
        sent = start + len(took) / rate if rate else now
        if sent >= deadline:
            break
        if sent > now:
            time.sleep(sent - now)
        conn.send(command("XADD", peer, "*", "f", FRAME))
        conn.read()
        while True:
            conn.send(_read_group(mine))
            entries = _entries(conn.read())
            if entries:
                break
            if time.perf_counter() >= deadline:
                raise RuntimeError("no reply from the floor's other process before the deadline")
        took.append((time.perf_counter() - sent) * 1e6)
        conn.send(command("XACK", mine, GROUP, *[entry_id for entry_id, _ in entries]))
        conn.read()
    seconds = time.perf_counter() - start
    took.sort()
    return {"asks": float(len(took)), "seconds": seconds, "p50_us": percentile(took, 50),
            "p99_us": percentile(took, 99)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One side of the remote-ask floor.")
    parser.add_argument("--port", type=int, required=True, help="the redis-server's port")
    parser.add_argument("--role", choices=["a", "b"], required=True)
    parser.add_argument("--key", required=True, help="prefix of the two streams")
    parser.add_argument("--count", type=int, default=3000, help="asks (role a)")
    parser.add_argument("--seconds", type=float, default=15.0, help="time bound")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="asks offered per second (role a; 0: in sequence)")
    args = parser.parse_args(argv)
    deadline = time.perf_counter() + args.seconds
    streams = {role: f"{args.key}:{role}".encode() for role in ("a", "b")}
    mine, peer = streams[args.role], streams["b" if args.role == "a" else "a"]
    conn = FloorConnection(args.port, timeout=args.seconds + BLOCK_MS / 1000)
    try:
        conn.send(command("XGROUP", "CREATE", mine, GROUP, "$", "MKSTREAM"))
        conn.read()
        if args.role == "b":
            print("ready", flush=True)
            serve(conn, mine, peer, deadline)
            return
        figures = ask(conn, mine, peer, args.count, deadline, args.rate)
        conn.send(command("XADD", peer, "*", "f", STOP))
        conn.read()
        print(json.dumps(figures), flush=True)
    finally:
        conn.close()


if __name__ == "__main__":  # pragma: no cover
    main()
