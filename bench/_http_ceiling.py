"""The HTTP benches' ceiling: a bare quart-trio route returning fixed JSON, in its own process.

``python -m bench._http_ceiling`` serves ``GET /ceiling`` on a free loopback port through
``hypercorn.trio.serve`` with the gateway's own Hypercorn settings
(:func:`gateway.service.hypercorn_config`: one bind, no access log, the same graceful stop),
prints ``ceiling listening http://127.0.0.1:PORT`` on stdout, and stops when its stdin closes.
Nothing else runs in it (no node, no store, no middleware), so what it sustains is what one
Hypercorn trio process can do for a route that does no work: the most the gateway could reach.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any, Final

import hypercorn.trio
import trio
from quart_trio import QuartTrio

from gateway.service import hypercorn_config
from tektree.config import HttpConfig

__all__ = ["BODY", "PATH", "READY", "create_app", "main"]

PATH: Final = "/ceiling"
READY: Final = "ceiling listening"
#: About the size and shape of a gamification profile (``GET /users/{uid}/gamification``).
BODY: Final[dict[str, Any]] = {
    "user_id": "usr_0123456789abcdef", "total_xp": 1234, "current_level": 7,
    "xp_to_next_level": 166, "daily_xp_earned": 120, "daily_xp_cap": 500,
    "streak": {"current": 3, "longest": 12, "freezes": 1, "last_active_day": "2026-12-03"},
    "achievements": [{"id": "first_answer", "unlocked_at": "2026-12-01T10:00:00Z"}],
}


def create_app() -> QuartTrio:
    app = QuartTrio(__name__)

    @app.get(PATH)
    async def ceiling() -> dict[str, Any]:
        return BODY

    return app


async def _serve() -> None:
    config = hypercorn_config(HttpConfig(host="127.0.0.1", port=0))
    stop = trio.Event()

    async def watch_stdin() -> None:
        stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
        while await stdin.receive_some(1024):
            pass
        stop.set()

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn.trio.serve, create_app(), config,
                                            shutdown_trigger=stop.wait))
        print(f"{READY} {binds[0]}", flush=True)
        nursery.start_soon(watch_stdin)
        await stop.wait()


def main() -> None:
    trio.run(_serve)


if __name__ == "__main__":
    main()
