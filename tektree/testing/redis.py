"""A real ``redis-server`` for tests: started on a free loopback port, stopped by its pid.

``redis-server`` is found on ``PATH``; when it is missing the test is skipped, or fails when the
``CI`` environment variable is set (CI must exercise the real component).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

__all__ = [
    "RedisServer",
    "free_port",
    "open_redis_server",
    "redis_server_path",
    "require_redis_server",
]

READY_LINE = b"Ready to accept connections"


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def require_redis_server() -> None:
    """In a test: skip when ``redis-server`` is not installed, except under ``CI``, where a
    missing real component is a failure."""
    if redis_server_path() is not None:
        return
    import pytest  # only tests call this; the module itself needs no pytest

    message = "redis-server is not installed (apt-get install redis-server)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run against a real Redis")
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the server retries if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process; :meth:`stop` and :meth:`start` reuse the same port."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, *, timeout: float = 10.0) -> None:
        """Start and wait (bounded) until the server logs that it accepts connections."""
        binary = redis_server_path()
        if binary is None:
            raise RuntimeError(
                "redis-server is not on PATH; install it (apt-get install redis-server)"
            )
        self.process = await trio.lowlevel.open_process(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), "--logfile", "",
             "--protected-mode", "no"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        seen = b""
        with trio.fail_after(timeout):
            while READY_LINE not in seen:
                chunk = await self.process.stdout.receive_some(65536)
                if not chunk:
                    raise RuntimeError(f"redis-server on port {self.port} exited: {seen[-500:]!r}")
                seen += chunk
        self._drain_stdout()

    def _drain_stdout(self) -> None:
        # Keep reading its log so the pipe never fills; started in the caller's nursery-less
        # context, the reader is a system task tied to the run.
        process = self.process
        assert process is not None and process.stdout is not None
        stdout = process.stdout

        async def drain() -> None:
            try:
                while await stdout.receive_some(65536):
                    pass
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

        trio.lowlevel.spawn_system_task(drain)

    async def stop(self, *, timeout: float = 10.0) -> None:
        """SIGTERM the server by its pid and wait for it (SIGKILL after ``timeout``)."""
        process = self.process
        if process is None:
            return
        self.process = None
        if process.returncode is None:
            os.kill(process.pid, signal.SIGTERM)
            with trio.move_on_after(timeout) as waited:
                await process.wait()
            if waited.cancelled_caught:
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()

    async def kill(self) -> None:
        """SIGKILL (no shutdown): the abrupt death of the server."""
        process = self.process
        if process is None:
            return
        self.process = None
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()


@asynccontextmanager
async def open_redis_server() -> AsyncIterator[RedisServer]:
    """Start a private ``redis-server`` on a free loopback port; stop it by its pid after."""
    with tempfile.TemporaryDirectory(prefix="tektree-redis-") as directory:
        server = RedisServer(free_port(), Path(directory))
        await server.start()
        try:
            yield server
        finally:
            with trio.CancelScope(shield=True):
                await server.stop()
