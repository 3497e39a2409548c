"""The server side of ``bench.ws``, one fresh process per subject so its RSS is its own.

``python -m bench._ws_server tektree DATA_DIR`` runs a TekTree node on embedded defaults (store,
timers, cluster, the ``room`` and ``leaderboard`` kinds, the gateway on a free loopback port);
``python -m bench._ws_server quart DATA_DIR`` runs the baseline: a naive quart-trio app on the
same Hypercorn setup, whose ``/ws/leaderboard`` handler keeps each socket in a set, and whose
broadcast is a loop awaiting ``websocket.send`` once per socket.

It prints ``{"port", "pid"}`` on stdout, then reads one JSON command per line:
``{"cmd": "broadcast", "round": n}`` sends one event to every socket of the bench board and
answers ``{"t0": perf_counter}`` taken just before the send (TekTree: a ``SetScore`` told to
the board's ``LeaderboardActor``, whose rank change goes to the board's topic and from there
to every watcher; the baseline: the start of its loop); ``{"cmd": "quit"}`` stops.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio

from bench._ws_client import raise_fd_limit

BOARD = "area:bench"
PAUSES: _Pauses
PATH = "/ws/leaderboard"


def _config(data_dir: Path) -> Any:
    from tektree.config import parse_config

    children = [
        {"type": "service", "name": "store", "service": "store"},
        {"type": "service", "name": "timers", "service": "timers"},
        {"type": "service", "name": "cluster", "service": "cluster"},
        {"type": "actors", "kind": "leaderboard",
         "actor": "actors.leaderboard:LeaderboardActor"},
        {"type": "actors", "kind": "room", "actor": "actors.rooms:RoomActor"},
        {"type": "service", "name": "gateway", "service": "gateway.service:serve",
         "options": {"rate_limits": False}},
    ]
    return parse_config({
        "node": {"name": "bench-ws", "data_dir": str(data_dir),
                 "gc_young_threshold": 10_000, "switch_interval_ms": 1},  # as shipped
        "http": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "logging": {"level": "warning"},
        "redis": {"url": ""}, "supervisor": {"children": children},
    }, source="<bench ws>", env={})


class _Pauses:
    """The cyclic collector's full collections in this process: how many, the longest."""

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif info["generation"] == 2:
            self.full += 1
            self.longest = max(self.longest, time.perf_counter() - self._began)

    def report(self) -> dict[str, Any]:
        return {"full_collections": self.full, "longest_ms": round(self.longest * 1e3, 1)}


async def _commands(handle: Any) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    buffer = b""
    async with stdin:
        while True:
            while b"\n" not in buffer:
                chunk = await stdin.receive_some()
                if not chunk:
                    return
                buffer += chunk
            line, _, buffer = buffer.partition(b"\n")
            command = json.loads(line)
            if command["cmd"] == "quit":
                return
            reply = PAUSES.report() if command["cmd"] == "gc" else await handle(command)
            print(json.dumps(reply), flush=True)


async def tektree(data_dir: Path) -> None:
    from actors.leaderboard import SetScore
    from tektree import Node

    node = Node(_config(data_dir))
    async with trio.open_nursery() as nursery:
        await nursery.start(node.serve)
        port = int(node.bound["http"][0].rsplit(":", 1)[1])
        print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)
        board = node.system.ref("leaderboard", BOARD)
        run_id = os.urandom(4).hex()  # a data directory used twice still sees new events
        # a probe on the board's topic: when the rank change left the actor (after its journal)
        published: list[float] = []
        arrived = trio.Event()

        def probe(subscription: Any) -> None:
            published.append(time.perf_counter())
            subscription.receive_nowait()
            arrived.set()

        pubsub: Any = node.system.extensions["pubsub"]
        pubsub.subscribe(f"leaderboard:{BOARD}", on_ready=probe)

        async def handle(command: dict[str, Any]) -> dict[str, Any]:
            nonlocal arrived
            arrived = trio.Event()
            rnd = int(command["round"])
            # each mover enters below everyone: one change, a small frame like the baseline's
            message = SetScore(user_id=f"mover{run_id}:{rnd}", score=1_000_000 - rnd,
                               event_id=f"bench:{run_id}:{rnd}", version=0)
            t0 = time.perf_counter()
            await board.tell(message)
            with trio.move_on_after(10):
                await arrived.wait()
            return {"t0": t0, "published": published[-1] if published else None}

        await _commands(handle)
        node.request_stop()


async def quart(data_dir: Path) -> None:
    import hypercorn.trio
    from quart import websocket
    from quart_trio import QuartTrio

    from gateway.service import hypercorn_config
    from tektree.config import HttpConfig

    app = QuartTrio(__name__)
    sockets: set[Any] = set()

    @app.websocket(PATH)
    async def watch() -> None:
        ws = websocket._get_current_object()  # type: ignore[attr-defined]
        sockets.add(ws)
        try:
            while True:
                await websocket.receive()
        finally:
            sockets.discard(ws)

    config = hypercorn_config(HttpConfig(enabled=True, host="127.0.0.1", port=0))
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        binds = await nursery.start(lambda task_status: hypercorn.trio.serve(
            app, config, shutdown_trigger=stop.wait, task_status=task_status))
        port = int(binds[0].rsplit(":", 1)[1])
        print(json.dumps({"port": port, "pid": os.getpid()}), flush=True)

        async def handle(command: dict[str, Any]) -> dict[str, Any]:
            rnd = int(command["round"])
            text = json.dumps({"type": "event", "event_type": "leaderboard.rank.changed",
                               "payload": {"board": BOARD, "version": rnd, "changes": [
                                   {"rank": rnd, "user_id": f"mover{rnd}",
                                    "previous_rank": None, "score": 1_000_000 - rnd}]}})
            t0 = time.perf_counter()
            for ws in list(sockets):  # the naive loop: one awaited send after another
                await ws.send(text)
            return {"t0": t0}

        await _commands(handle)
        stop.set()


def main() -> None:
    from tektree import configure_logging

    configure_logging(level="warning")  # on stderr: stdout carries the replies
    raise_fd_limit()
    global PAUSES
    PAUSES = _Pauses()
    mode, data_dir = sys.argv[1], Path(sys.argv[2])
    trio.run(tektree if mode == "tektree" else quart, data_dir)


if __name__ == "__main__":
    main()
