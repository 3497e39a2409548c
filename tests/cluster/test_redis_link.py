"""The Redis link: a real server, stopped and restarted under a waiting call."""

from __future__ import annotations

import trio

from tektree.cluster import open_redis_link
from tektree.testing.redis import RedisServer


async def test_call_survives_a_redis_restart(redis_server: RedisServer) -> None:
    async with open_redis_link(redis_server.url) as link:
        assert await link.call(lambda c: c.set("k", "v"))
        assert await link.ping()
        await redis_server.stop()
        assert not await link.ping()
        assert not link.ready
        result: list[object] = []

        async def incr() -> None:
            result.append(await link.call(lambda c: c.incr("counter")))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(incr)
            await trio.testing.wait_all_tasks_blocked()
            assert result == []  # retrying while Redis is down
            await redis_server.start()  # same port
            with trio.fail_after(10):
                await link.wait_ready()
        assert result == [1]  # a fresh server (no persistence): the counter starts over
        assert link.ready and link.failures == 1


async def test_keys_are_namespaced(redis_server: RedisServer) -> None:
    async with open_redis_link(redis_server.url, prefix="tt") as link:
        assert link.key("inbox", "n1") == "tt:inbox:n1"
