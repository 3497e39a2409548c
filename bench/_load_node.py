"""The servers the HTTP benches measure, each in its own process on a free loopback port.

- :func:`open_bench_node`: a real ``tektree run`` on the repository's ``supervisor.toml``
  (embedded defaults: SQLite, no Redis, the production password hashing) with its own temporary
  data directory, stopped with SIGTERM at the end. The one change to the shipped configuration
  is explicit and written into the node's config file: the rate limits stay on, but every
  tier and the anonymous clients are allowed :data:`BENCH_REQUESTS_PER_MINUTE` through a
  ``tiers_file`` (and no monthly quotas), so a load test runs through the limiter's real code
  and is never refused by it. Nothing in the gateway knows it is being measured.
- :func:`open_ceiling`: ``bench._http_ceiling``, the bare quart-trio route on the same Hypercorn
  setup.

Both yield a :class:`ServerProcess` whose ``url`` is the base URL; their output is drained as
it comes (a full pipe would stall them) and its tail kept for error messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from bench._http_ceiling import READY as CEILING_READY
from gateway.options import gateway_options

__all__ = [
    "BENCH_REQUESTS_PER_MINUTE",
    "SUPERVISOR_TOML",
    "ServerProcess",
    "Servers",
    "bench_node_config",
    "open_bench_node",
    "open_ceiling",
    "open_servers",
    "toml_document",
]

_REPO_ROOT: Final = Path(__file__).resolve().parent.parent
SUPERVISOR_TOML: Final = _REPO_ROOT / "supervisor.toml"
#: Every tier's and the anonymous clients' rate on the bench node: 1,000,000 requests a second.
BENCH_REQUESTS_PER_MINUTE: Final = 60_000_000
_TIERS: Final = ("free", "pro", "team", "enterprise")
_QUOTAS: Final = ("questions", "insights", "resource_uploads")
_TAIL: Final = 16_000


# --------------------------------------------------------------------------- a TOML writer


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")


def toml_document(data: Mapping[str, Mapping[str, Any]]) -> str:
    """``data`` (top-level tables only) as TOML: one ``[table]`` each, nested values inline."""
    lines: list[str] = []
    for table, values in data.items():
        if not isinstance(values, Mapping):
            raise TypeError(f"top-level {table!r} must be a table, got {values!r}")
        lines.append(f"[{table}]")
        lines.extend(f"{json.dumps(key)} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the bench config


def bench_node_config(directory: Path, *, gateway: Mapping[str, Any] | None = None) -> Path:
    """Write the bench node's config (and its tiers file) into ``directory``; return its path.

    The repository's ``supervisor.toml`` as it is, but for the gateway service's
    ``tiers_file`` and ``anonymous_requests_per_minute`` (see the module) and any extra
    ``gateway`` options (checked by :func:`gateway.options.gateway_options`).
    """
    tiers = directory / "bench-tiers.toml"
    tiers.write_text(toml_document({
        tier: {"requests_per_minute": BENCH_REQUESTS_PER_MINUTE,
               "quotas": dict.fromkeys(_QUOTAS, "unlimited")}
        for tier in _TIERS
    }), encoding="utf-8")
    config = tomllib.loads(SUPERVISOR_TOML.read_text(encoding="utf-8"))
    children = config["supervisor"]["children"]
    gateways = [c for c in children if c.get("service") == "gateway.service:serve"]
    if len(gateways) != 1:
        raise RuntimeError(f"{SUPERVISOR_TOML} should list one gateway service "
                           f"(service = 'gateway.service:serve'), found {len(gateways)}")
    options = dict(gateways[0].get("options", {}))
    options.update(tiers_file=str(tiers),
                   anonymous_requests_per_minute=str(BENCH_REQUESTS_PER_MINUTE))
    options.update(gateway or {})
    gateway_options(options, "bench node gateway.options")  # a bad option fails here, clearly
    gateways[0]["options"] = options
    path = directory / "bench-node.toml"
    path.write_text("# Written by bench/_load_node.py: supervisor.toml with the bench's rate "
                    "limits.\n" + toml_document(config), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- processes


class ServerProcess:
    """A server subprocess: its base ``url`` once ready, and the tail of its output."""

    def __init__(self, name: str, process: trio.Process) -> None:
        self.name = name
        self.process = process
        self.url = ""
        self._tail = bytearray()
        self._ready_text = ""
        self._ready = trio.Event()

    @property
    def output_tail(self) -> str:
        return self._tail.decode(errors="replace")

    async def _drain(self, stream: trio.abc.ReceiveStream, find_ready: Any) -> None:
        pending = b""
        try:
            while chunk := await stream.receive_some(65536):
                self._tail += chunk
                del self._tail[:-_TAIL]
                if self._ready.is_set():
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    url = find_ready(line.decode(errors="replace"))
                    if url:
                        self.url = url
                        self._ready.set()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def _wait_ready(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                async def exited() -> None:
                    await self.process.wait()
                    nursery.cancel_scope.cancel()
                nursery.start_soon(exited)
                await self._ready.wait()
                nursery.cancel_scope.cancel()
        if not self._ready.is_set():
            state = (f"exited {self.process.returncode}" if self.process.returncode is not None
                     else f"not ready within {seconds:g} s")
            raise RuntimeError(f"{self.name} {state}; its output ends with:\n"
                               f"{self.output_tail[-4000:]}")

    async def stop(self, seconds: float = 15.0) -> int:
        """SIGTERM (and closed stdin), SIGKILL after ``seconds``; the exit code."""
        if self.process.returncode is None:
            if self.process.stdin is not None:
                with trio.CancelScope(shield=True):
                    await self.process.stdin.aclose()
            self.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(seconds) as scope:
            scope.shield = True
            await self.process.wait()
        if self.process.returncode is None:
            os.kill(self.process.pid, signal.SIGKILL)
            with trio.CancelScope(shield=True):
                await self.process.wait()
        assert self.process.returncode is not None
        return self.process.returncode


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEKTREE_")}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return env


@asynccontextmanager
async def _server(name: str, command: Sequence[str], find_ready: Any, *,
                  ready_from: str, start_seconds: float) -> AsyncIterator[ServerProcess]:
    process = await trio.lowlevel.open_process(
        list(command), cwd=str(_REPO_ROOT), env=_env(), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    server = ServerProcess(name, process)
    assert process.stdout is not None and process.stderr is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server._drain, process.stdout,
                           find_ready if ready_from == "stdout" else _never)
        nursery.start_soon(server._drain, process.stderr,
                           find_ready if ready_from == "stderr" else _never)
        try:
            await server._wait_ready(start_seconds)
            yield server
        finally:
            await server.stop()
            nursery.cancel_scope.cancel()


def _never(line: str) -> str:
    return ""


def _node_ready(line: str) -> str:
    if not line.startswith("{"):
        return ""
    try:
        entry = json.loads(line)
    except ValueError:
        return ""
    if entry.get("event") == "http listening":
        return str(entry["binds"][0])
    return ""


def _ceiling_ready(line: str) -> str:
    return line.split()[-1] if line.startswith(CEILING_READY) else ""


@asynccontextmanager
async def open_bench_node(*, start_seconds: float = 60.0,
                          gateway: Mapping[str, Any] | None = None,
                          ) -> AsyncIterator[ServerProcess]:
    """A ``tektree run`` process on the bench config (see the module), in a fresh data dir."""
    with tempfile.TemporaryDirectory(prefix="tektree-bench-") as tmp:
        directory = Path(tmp)
        config = bench_node_config(directory, gateway=gateway)
        command = [sys.executable, "-m", "tektree.cli", "run", "--config", str(config),
                   "--host", "127.0.0.1", "--port", "0", "--data-dir", str(directory / "data"),
                   "--log-level", "info", "--log-format", "json", "--name", "bench-node"]
        async with _server("tektree run (bench node)", command, _node_ready,
                           ready_from="stderr", start_seconds=start_seconds) as server:
            yield server


@asynccontextmanager
async def open_ceiling(*, start_seconds: float = 30.0) -> AsyncIterator[ServerProcess]:
    """The bare quart-trio route (``bench._http_ceiling``) in its own process."""
    command = [sys.executable, "-m", "bench._http_ceiling"]
    async with _server("the ceiling server (bench._http_ceiling)", command, _ceiling_ready,
                       ready_from="stdout", start_seconds=start_seconds) as server:
        yield server


@attrs.frozen
class Servers:
    """Base URLs of the node measured and of the ceiling."""

    node: str
    ceiling: str


@asynccontextmanager
async def open_servers(url: str | None = None) -> AsyncIterator[Servers]:
    """The ceiling in its own process, and a bench node unless ``url`` names one."""
    async with AsyncExitStack() as stack:
        ceiling: ServerProcess = await stack.enter_async_context(open_ceiling())
        if url is None:
            node: ServerProcess = await stack.enter_async_context(open_bench_node())
            url = node.url
        yield Servers(node=url.rstrip("/"), ceiling=ceiling.url)
