"""Socket fan-out across gateway nodes: two real ``tektree node`` processes on one Redis.

Each node runs the whole product (store on one shared SQLite file, the game actors, the relay,
the gateway on a free loopback port, the same signing key); the sockets of one room are split
over both nodes, so every frame below crossed Redis pub/sub or an actor ask between processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from gwkit import API, CHEAP_HASH, register_http
from wskit import frame_where, of_type, open_socket, presence_change, request, welcome

from gateway.tokens import KEY_FILE, generate_key
from tektree.persistence._open import StoreSettings, open_store
from tektree.testing.redis import RedisServer

BODY = "Some detailed body text that is long enough to pass."
FAST = {"heartbeat_seconds": 0.2, "ttl_seconds": 0.8, "lease_ttl_seconds": 2.0,
        "lease_renew_seconds": 0.5, "lease_restart_grace": False}
START_SECONDS = 30.0


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value).lower() if isinstance(value, bool) else json.dumps(value)


def write_config(directory: Path, redis_url: str, *,
                 gateway_options: dict[str, Any] | None = None,
                 kinds: tuple[dict[str, Any], ...] = ()) -> Path:
    """Both nodes' TOML: the product's children (plus ``kinds``), one SQLite file, one key
    file."""
    key = directory / KEY_FILE
    key.write_bytes(generate_key().private_pem())
    key.chmod(0o600)
    gateway = {**CHEAP_HASH, "jwt_private_key_file": str(key), **(gateway_options or {})}
    children = [
        {"type": "service", "name": "store", "service": "store"},
        {"type": "service", "name": "timers", "service": "timers"},
        {"type": "service", "name": "cluster", "service": "cluster", "options": FAST},
        {"type": "actors", "kind": "user", "actor": "actors.profile:UserProfileActor"},
        {"type": "actors", "kind": "leaderboard", "actor": "actors.leaderboard:LeaderboardActor"},
        {"type": "actors", "kind": "room", "actor": "actors.rooms:RoomActor"},
        *kinds,
        {"type": "service", "name": "gamification",
         "service": "actors.wiring:gamification_relay_service",
         "options": {"poll_interval_seconds": 0.05}},
        {"type": "service", "name": "gateway", "service": "gateway.service:serve",
         "options": gateway},
    ]
    lines = ["[node]", "drain_timeout_seconds = 5.0", "", "[http]", 'host = "127.0.0.1"',
             "port = 0", "", "[redis]", f"url = {_toml(redis_url)}", "", "[store]",
             'backend = "sqlite"', f"sqlite_file = {_toml(str(directory / 'shared.sqlite3'))}"]
    for child in children:
        lines += ["", "[[supervisor.children]]"]
        lines += [f"{k} = {_toml(v)}" for k, v in child.items()]
    path = directory / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class NodeProcess:
    """One ``tektree node``; a task reads its stderr (JSON log lines) as they come."""

    def __init__(self, name: str, process: trio.Process) -> None:
        self.name = name
        self.process = process
        self.entries: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._changed = trio.Event()
        self.eof = False

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        try:
            while chunk := await self.process.stderr.receive_some():
                *complete, buffer = (buffer + chunk).split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    if line.startswith("{"):
                        self.entries.append(json.loads(line))
                self._changed.set()
                self._changed = trio.Event()
        finally:
            self.eof = True
            self._changed.set()

    async def wait_for(self, event: str) -> dict[str, Any]:
        with trio.fail_after(START_SECONDS):
            while True:
                for entry in self.entries:
                    if entry.get("event") == event:
                        return entry
                if self.eof:
                    raise AssertionError(f"{self.name} exited before {event!r}:\n"
                                         + "\n".join(self.lines[-30:]))
                await self._changed.wait()


@asynccontextmanager
async def two_gateways(tmp_path: Path, redis_url: str, *,
                       gateway_options: dict[str, Any] | None = None,
                       kinds: tuple[dict[str, Any], ...] = ()) -> AsyncIterator[list[str]]:
    """Two node processes serving the gateway: their base URLs; killed on the way out."""
    async with open_store(StoreSettings(sqlite_path=tmp_path / "shared.sqlite3")):
        pass  # created once, before two processes race to create its indexes
    config = write_config(tmp_path, redis_url, gateway_options=gateway_options, kinds=kinds)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEKTREE_")}
    nodes: list[NodeProcess] = []
    async with trio.open_nursery() as nursery:
        try:
            bases = []
            for name in ("n1", "n2"):  # one after the other: the first ensures the indexes
                process = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "tektree.cli", "node", "--config", str(config),
                     "--name", name, "--data-dir", str(tmp_path / f"data-{name}")],
                    cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                node = NodeProcess(name, process)
                nodes.append(node)
                nursery.start_soon(node.read_stderr)
                bases.append((await node.wait_for("http listening"))["binds"][0])
                await node.wait_for("node started")
            yield bases
        finally:
            for node in nodes:
                if node.process.returncode is None:
                    node.process.send_signal(signal.SIGKILL)
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                for node in nodes:
                    await node.process.wait()
            for node in nodes:
                (tmp_path / f"{node.name}.log").write_text("\n".join(node.lines) + "\n")
            nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_rooms_and_notifications_fan_out_across_two_gateway_nodes(
        tmp_path: Path, redis_server: RedisServer) -> None:
    async with two_gateways(tmp_path, redis_server.url) as (base1, base2), \
            httpx.AsyncClient(base_url=base1, timeout=20) as one, \
            httpx.AsyncClient(base_url=base2, timeout=20) as two:
        ann, ann_h = await register_http(one, "ann")
        bob, bob_h = await register_http(two, "bob")
        ann_token = ann_h["Authorization"].removeprefix("Bearer ")
        bob_token = bob_h["Authorization"].removeprefix("Bearer ")
        path = "/ws/collaboration/q_7"
        edited = of_type("event", "collaboration.edit")
        async with open_socket(base1, path, ann_token) as ann_ws:
            ann_me = await welcome(ann_ws)  # from its welcome on, a socket misses nothing
            async with open_socket(base2, path, bob_token) as bob_ws, \
                    open_socket(base2, "/ws/notifications", ann_token) as ann_notes:
                bob_me = await welcome(bob_ws)
                await welcome(ann_notes)
                _, joined = await presence_change(ann_ws, "joined", bob_me["member_id"])
                assert joined["info"] == {"user_id": bob}
                ack = await request(ann_ws, {"type": "edit", "edit": {"op": "insert"}}, "ack")
                seen = await frame_where(bob_ws, edited)  # written on n1, read on n2
                assert (seen["seq"], seen["payload"]["member_id"]) == (
                    ack["seq"], ann_me["member_id"])
                back = await request(bob_ws, {"type": "edit", "edit": {"op": "undo"}}, "ack")
                seen = await frame_where(ann_ws, edited)  # and back
                assert (seen["seq"], seen["payload"]["user_id"]) == (back["seq"], bob)
                assert back["seq"] > ack["seq"]
                listed = await request(bob_ws, {"type": "presence.list"}, "presence.members")
                assert {m["user_id"] for m in listed["members"]} == {ann, bob}

                # a REST write on n1, the XP frame on ann's socket held by n2
                question = (await one.post(f"{API}/questions", headers=bob_h, json={
                    "title": "Which node holds my socket?", "body": BODY})).json()
                answer = await one.post(f"{API}/questions/{question['id']}/answers",
                                        headers=ann_h, json={"body": BODY})
                assert answer.status_code == 201
                earned = await frame_where(ann_notes, lambda f: f.get(
                    "event_type") == "gamification.xp.earned" and f["payload"][
                    "reason"] == "answer_submitted", seconds=20)
                assert earned["payload"]["user_id"] == ann
            # bob's socket closed on n2: ann sees him leave on n1
            await presence_change(ann_ws, "left", bob_me["member_id"])
