"""RespWire against a real Redis: writes without waiting, replies read as they come, failures."""

from __future__ import annotations

import pytest
import trio

from tektree.cluster._resp import RespConnectionError, RespError
from tektree.cluster._wire import RespWire
from tektree.testing.redis import RedisServer


async def _replies(wire: RespWire, count: int) -> list[object]:
    replies: list[object] = []
    while len(replies) < count:
        await wire.wait_readable()
        replies.extend(wire.read_nowait())
    return replies


async def test_a_write_goes_out_at_once_and_its_replies_are_read_later(
    redis_server: RedisServer,
) -> None:
    wire = RespWire(redis_server.url)
    await wire.connect()
    try:
        assert wire.read_nowait() == []  # nothing asked, nothing there, no wait
        wire.write_nowait(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
        assert not wire.unsent
        with trio.fail_after(5):
            assert await _replies(wire, 2) == [b"OK", b"v"]
            replies = await wire.roundtrip([["INCR", "k"], ["PING"]])
        assert isinstance(replies[0], RespError) and replies[1] == b"PONG"
        big = b"x" * 4_000_000  # more than a socket buffer takes at once
        wire.write_nowait(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$%d\r\n%s\r\n" % (len(big), big))
        with trio.fail_after(10):
            await wire.drain()
            assert await _replies(wire, 1) == [b"OK"]
            assert await wire.roundtrip([["STRLEN", "b"]]) == [len(big)]
    finally:
        wire.close()


async def test_a_lost_server_raises_and_connect_opens_a_new_socket(
    redis_server: RedisServer,
) -> None:
    wire = RespWire(redis_server.url)
    with pytest.raises(RespConnectionError):
        wire.write_nowait(b"*1\r\n$4\r\nPING\r\n")  # never connected
    with trio.fail_after(20):
        await wire.connect()
        assert await wire.roundtrip([["PING"]]) == [b"PONG"]
        await redis_server.kill()
        with pytest.raises(RespConnectionError):
            await wire.roundtrip([["PING"]])
        assert not wire.connected
        with pytest.raises(RespConnectionError, match="cannot connect"):
            await wire.connect()
        await redis_server.start()
        await wire.connect()
        assert await wire.roundtrip([["PING"]]) == [b"PONG"]
    wire.close()


async def test_auth_and_select_come_from_the_url(redis_server: RedisServer) -> None:
    admin = RespWire(redis_server.url)
    with trio.fail_after(10):
        await admin.connect()
        assert await admin.roundtrip([["CONFIG", "SET", "requirepass", "s3cret"]]) == [b"OK"]
        url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/2"
        wire = RespWire(url)
        await wire.connect()
        assert await wire.roundtrip([["SET", "k", "in-db-2"], ["GET", "k"]]) == [b"OK", b"in-db-2"]
        wire.close()
        with pytest.raises(RespConnectionError, match="refused"):
            await RespWire(url.replace("s3cret", "wrong")).connect()
    admin.close()
