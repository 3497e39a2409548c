"""The WebSocket load client of ``bench.ws``: a separate process, so its memory is not counted.

``python -m bench._ws_client`` reads one JSON command per line on stdin and answers one JSON
line on stdout. Plain sockets and one ``epoll`` loop, no trio and no WebSocket library: holding
10,000 sockets and timing 1,000 arrivals must cost the client as little CPU as possible, since
it shares the machine's two cores with the server it measures.

Commands (``port`` is the server's; ``paths`` the request targets, one per socket):

- ``{"cmd": "connect", "port", "paths", "key_file"?, "users"?, "welcome": bool}``: open one
  socket per path (with ``users``, ``access_token=`` minted for each user with ``key_file``);
  with ``welcome``, wait for each socket's first frame. Answers ``{"connected", "seconds"}``.
- ``{"cmd": "arrivals", "timeout"}``: answers ``{"ready": true}`` at once, then, once every
  socket has read one more frame (or ``timeout`` passed), ``{"arrivals": [perf_counter...]}``
  (``time.perf_counter`` is the system's monotonic clock, the same in every process here).
- ``{"cmd": "churn", "port", "path", "seconds", "concurrency", "welcome"}``: open, handshake,
  (read the welcome,) close, over and over, ``concurrency`` at once, for ``seconds``. Answers
  ``{"completed", "errors", "seconds"}``.
- ``{"cmd": "close"}``: close every socket; ``{"cmd": "quit"}``.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

_KEY = base64.b64encode(os.urandom(16))
_MASK = b"\x00\x00\x00\x00"  # clients must mask; a zero mask keeps the payload as is


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def handshake(path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


CLOSE_FRAME = bytes([0x88, 0x82]) + _MASK + (1000).to_bytes(2, "big")


def frames(buffer: bytearray) -> int:
    """Count and remove the complete server frames at the start of ``buffer``."""
    count = 0
    while len(buffer) >= 2:
        length = buffer[1] & 0x7F
        head = 2
        if length == 126:
            if len(buffer) < 4:
                break
            length, head = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                break
            length, head = int.from_bytes(buffer[2:10], "big"), 10
        if len(buffer) < head + length:
            break
        del buffer[: head + length]
        count += 1
    return count


class Conn:
    __slots__ = ("buffer", "frames", "sock", "upgraded")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.upgraded = False
        self.frames = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            if b" 101 " not in status:
                raise RuntimeError(f"handshake refused: {status!r}")
            del self.buffer[: end + 4]
            self.upgraded = True
        self.frames += frames(self.buffer)


class Client:
    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.selector = selectors.EpollSelector()

    def _pump(self, done: Callable[[], bool], timeout: float,
              on_frame: Callable[[Conn], None] | None = None) -> None:
        deadline = time.perf_counter() + timeout
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError("the server did not answer in time")
            for key, _ in self.selector.select(min(left, 1.0)):
                conn: Conn = key.data
                try:
                    data = conn.sock.recv(262_144)
                except BlockingIOError:
                    continue
                if not data:
                    raise RuntimeError("the server closed a socket")
                before = conn.frames
                conn.feed(data)
                if on_frame is not None and conn.frames > before:
                    on_frame(conn)

    def connect(self, port: int, paths: list[str], welcome: bool, timeout: float = 60.0
                ) -> int:
        start = len(self.conns)
        batch = 64  # under Hypercorn's listen backlog (100): no SYN retransmits
        for first in range(0, len(paths), batch):
            fresh = []
            for path in paths[first : first + batch]:
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(handshake(path))
                sock.setblocking(False)
                conn = Conn(sock)
                self.selector.register(sock, selectors.EVENT_READ, conn)
                fresh.append(conn)
            self.conns.extend(fresh)
            if welcome:
                self._pump(lambda fresh=fresh: all(c.frames for c in fresh), timeout)  # type: ignore[misc]
            else:
                self._pump(lambda fresh=fresh: all(c.upgraded for c in fresh), timeout)  # type: ignore[misc]
        return len(self.conns) - start

    def arrivals(self, timeout: float) -> list[float]:
        marks = {id(c): c.frames for c in self.conns}
        times: dict[int, float] = {}

        def arrived(conn: Conn) -> None:
            if id(conn) not in times and conn.frames > marks[id(conn)]:
                times[id(conn)] = time.perf_counter()

        with contextlib.suppress(TimeoutError):
            self._pump(lambda: len(times) == len(self.conns), timeout, arrived)
        return sorted(times.values())

    def close(self) -> int:
        count = len(self.conns)
        for conn in self.conns:
            self.selector.unregister(conn.sock)
            conn.sock.close()
        self.conns = []
        return count

    def churn(self, port: int, path: str, seconds: float, concurrency: int, welcome: bool
              ) -> dict[str, Any]:
        """Connect, handshake, (welcome,) close; ``concurrency`` sockets in flight."""
        selector = selectors.EpollSelector()
        request = handshake(path)
        completed = errors = 0
        start = time.perf_counter()
        deadline = start + seconds

        def open_one() -> None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex(("127.0.0.1", port))
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                raise OSError(code, os.strerror(code))
            selector.register(sock, selectors.EVENT_WRITE, ["connecting", Conn(sock)])

        for _ in range(concurrency):
            open_one()
        while selector.get_map():
            for key, _ in selector.select(1.0):
                state = key.data
                conn: Conn = state[1]
                sock = conn.sock
                try:
                    if state[0] == "connecting":
                        sock.send(request)
                        state[0] = "upgrading"
                        selector.modify(sock, selectors.EVENT_READ, state)
                        continue
                    data = sock.recv(65_536)
                    if state[0] == "closing":
                        if data:
                            continue  # the server's close frame; then its EOF
                        finished = True
                    else:
                        if not data:
                            raise ConnectionError("closed before the handshake ended")
                        conn.feed(data)
                        finished = False
                        if conn.upgraded and (conn.frames or not welcome):
                            sock.send(CLOSE_FRAME)
                            state[0] = "closing"
                except (OSError, RuntimeError):
                    errors += 1
                    finished = True
                if finished:
                    selector.unregister(sock)
                    sock.close()
                    if state[0] == "closing":
                        completed += 1
                    if time.perf_counter() < deadline:
                        open_one()
        elapsed = time.perf_counter() - start
        selector.close()
        return {"completed": completed, "errors": errors, "seconds": elapsed}


def _tokens(key_file: str, users: list[str]) -> list[str]:
    from gateway.tokens import TokenAuthority, load_key

    with open(key_file, "rb") as file:
        authority = TokenAuthority(load_key(file.read()), access_ttl_seconds=3600)
    return [authority.issue_access(user_id=user, role="user")[0] for user in users]


def main() -> None:
    raise_fd_limit()
    client = Client()
    out = sys.stdout
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command["cmd"]
        reply: dict[str, Any]
        if cmd == "connect":
            paths = list(command["paths"])
            if command.get("users"):
                tokens = _tokens(command["key_file"], command["users"])
                paths = [f"{p}{'&' if '?' in p else '?'}access_token={t}"
                         for p, t in zip(paths, tokens, strict=True)]
            began = time.perf_counter()
            count = client.connect(command["port"], paths, command.get("welcome", False))
            reply = {"connected": count, "seconds": time.perf_counter() - began}
        elif cmd == "arrivals":
            out.write(json.dumps({"ready": True}) + "\n")
            out.flush()
            reply = {"arrivals": client.arrivals(command["timeout"])}
        elif cmd == "churn":
            reply = client.churn(command["port"], command["path"], command["seconds"],
                                 command["concurrency"], command.get("welcome", False))
        elif cmd == "close":
            reply = {"closed": client.close()}
        elif cmd == "quit":
            return
        else:
            reply = {"error": f"unknown command {cmd!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
