"""The gateway service in a real node, spoken to over loopback HTTP/1.1."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
import trio

import kit
from gateway.app import PROBLEM_BASE, PROBLEM_CONTENT_TYPE
from gateway.service import LISTEN_BACKLOG
from tektree import Config, Node, NodeFailed, parse_config
from tektree.testing import open_test_node

TIMEOUT = 10


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def get(base: str, path: str, *, method: str = "GET") -> Reply:
    """``method path`` over a fresh connection: a minimal HTTP/1.1 client.

    The body is read by its Content-Length: Hypercorn's trio backend does not close the socket
    after answering a ``Connection: close`` request, so reading to EOF would hang.
    """
    url = urlsplit(base)
    assert url.hostname is not None and url.port is not None
    stream = await trio.open_tcp_stream(url.hostname, url.port)
    async with stream:
        request = f"{method} {path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += await _receive(stream)
        head, _, body = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        while len(body) < int(headers["content-length"]):
            body += await _receive(stream)
    return Reply(int(status_line.split()[1]), headers, body)


async def _receive(stream: trio.SocketStream) -> bytes:
    chunk = await stream.receive_some()
    assert chunk, "the server closed the connection mid-response"
    return chunk


def gateway_config(data_dir: Path, **http: Any) -> Config:
    return parse_config(
        {
            "node": {"name": "gw-test", "check_serialization": True, "data_dir": str(data_dir)},
            "http": {"enabled": True, "host": "127.0.0.1", "port": 0, **http},
            "supervisor": {"children": [
                {"type": "service", "name": "store", "service": "store"},
                {"type": "service", "name": "timers", "service": "timers"},
                {"type": "service", "name": "gateway", "service": "gateway.service:serve"},
                {"type": "actors", "kind": "counter", "actor": "kit:Counter"},
            ]},
        },
        source="<test>",
        env={},
    )


@pytest.fixture
def gateway_node(tmp_path: Path) -> Any:
    @asynccontextmanager
    async def open_node() -> AsyncIterator[tuple[Node, str]]:
        with trio.fail_after(TIMEOUT):
            async with open_test_node(gateway_config(tmp_path),
                                      actors={"counter": kit.Counter}) as node:
                yield node, node.bound["http"][0]

    return open_node


async def test_port_0_binds_a_free_port_and_reports_it(gateway_node: Any) -> None:
    async with gateway_node() as (node, base):
        assert node.bound["http"] == [base]
        assert base.startswith("http://127.0.0.1:")
        assert urlsplit(base).port != 0
    assert "http" not in node.bound


async def test_the_listening_socket_queues_connect_storms(gateway_node: Any) -> None:
    """The accept queue is LISTEN_BACKLOG deep (Hypercorn's default of 100 overflowed under
    socket reconnect storms), as the kernel reports it for the bound port."""
    ss = shutil.which("ss")
    if ss is None:
        if os.environ.get("CI"):
            pytest.fail("ss (iproute2) is needed to read the listen backlog")
        pytest.skip("ss (iproute2) not installed")
    async with gateway_node() as (_, base):
        port = urlsplit(base).port
        listing = await trio.run_process([ss, "-ltnH", f"sport = :{port}"],
                                         capture_stdout=True)
    [line] = listing.stdout.decode().splitlines()
    backlog = int(line.split()[2])  # Send-Q of a listening socket: its backlog
    somaxconn = int(await trio.Path("/proc/sys/net/core/somaxconn").read_text())
    assert backlog == min(LISTEN_BACKLOG, somaxconn)


async def test_healthz_is_200_json_with_the_node_name(gateway_node: Any) -> None:
    async with gateway_node() as (_, base):
        reply = await get(base, "/healthz")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"status": "ok", "node": "gw-test"}


async def test_metrics_expose_the_runtime_counters(gateway_node: Any) -> None:
    async with gateway_node() as (node, base):
        assert await node.system.ref("counter", "c1").ask(kit.Add(amount=2)) == 2
        reply = await get(base, "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.body.decode()
    assert 'tektree_messages_handled_total{kind="counter"} 1.0' in text


async def test_readyz_is_200_when_every_check_passes(gateway_node: Any) -> None:
    async with gateway_node() as (node, base):

        async def store_ok() -> bool:
            return True

        node.readiness["store"] = store_ok
        reply = await get(base, "/readyz")
    assert reply.status == 200
    assert reply.json() == {"status": "ready", "checks": {"accepting": True, "store": True}}


async def test_readyz_is_503_problem_naming_the_failing_check(gateway_node: Any) -> None:
    async with gateway_node() as (node, base):

        async def store_down() -> bool:
            return False

        async def redis_raises() -> bool:
            raise ConnectionError("refused")

        node.readiness["store"] = store_down
        node.readiness["redis"] = redis_raises
        reply = await get(base, "/readyz")
    assert reply.status == 503
    assert reply.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = reply.json()
    assert body["type"] == PROBLEM_BASE + "not-ready"
    assert body["status"] == 503
    assert body["title"]
    assert body["detail"] == "readiness checks failing: redis, store"
    assert body["checks"] == {"accepting": True, "store": False, "redis": False}


async def test_unknown_path_is_404_problem_naming_the_path(gateway_node: Any) -> None:
    async with gateway_node() as (_, base):
        reply = await get(base, "/no/such/route")
    assert reply.status == 404
    assert reply.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = reply.json()
    assert body["type"] == PROBLEM_BASE + "not-found"
    assert body["status"] == 404
    assert "/no/such/route" in body["detail"]


async def test_wrong_method_is_405_problem(gateway_node: Any) -> None:
    async with gateway_node() as (_, base):
        reply = await get(base, "/healthz", method="DELETE")
    assert reply.status == 405
    assert reply.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert reply.json()["type"] == PROBLEM_BASE + "method-not-allowed"


async def test_http_disabled_keeps_the_gateway_idle(tmp_path: Path) -> None:
    config = gateway_config(tmp_path, enabled=False)
    with trio.fail_after(TIMEOUT):
        async with open_test_node(config, actors={"counter": kit.Counter}) as node:
            assert "http" not in node.bound
            assert "gateway" in node.root.running_children


async def test_a_taken_port_fails_the_node_with_a_clear_reason(tmp_path: Path) -> None:
    # Regression: the bind error used to surface as nested ExceptionGroups.
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = attrs.evolve(gateway_config(tmp_path, port=port),
                              supervisor=attrs.evolve(gateway_config(tmp_path).supervisor,
                                                      max_restarts=0))
        node = Node(config)
        with pytest.raises(NodeFailed) as info:
            with trio.fail_after(10):
                await node.serve()
    assert f"cannot listen on http://127.0.0.1:{port}" in str(info.value)
    assert "Address already in use" in str(info.value)
