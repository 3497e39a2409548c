"""The lean RESP2 client: the sans-IO parser on any chunking, and a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tektree.cluster._redis import TRANSIENT_ERRORS
from tektree.cluster._resp import (
    HiredisParser,
    RespConnection,
    RespConnectionError,
    RespError,
    RespParser,
    RespProtocolError,
    encode_command,
)
from tektree.testing.redis import RedisServer

# -- a reference encoder for replies ----------------------------------------------------------

simple = st.text(st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=20)
replies = st.recursive(
    st.one_of(
        st.none(),
        st.binary(max_size=40),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        simple.map(lambda text: ("+", text)),
        simple.map(lambda text: ("-", "ERR " + text)),
    ),
    lambda children: st.lists(children, max_size=6),
    max_leaves=30,
)


def encode_reply(value: Any, *, nil_array: bool = False) -> bytes:
    if value is None:
        return b"*-1\r\n" if nil_array else b"$-1\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, tuple):
        return value[0].encode() + value[1].encode() + b"\r\n"
    return b"*%d\r\n" % len(value) + b"".join(encode_reply(item) for item in value)


def expected(value: Any) -> Any:
    if isinstance(value, tuple):
        return value[1] if value[0] == "+" else ("error", value[1])
    if isinstance(value, list):
        return [expected(item) for item in value]
    return value


def normalized(value: Any) -> Any:
    if isinstance(value, RespError):
        return ("error", value.message)
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return value


def drain(parser: RespParser) -> list[Any]:
    out = []
    while True:
        got, reply = parser.get()
        if not got:
            return out
        out.append(normalized(reply))


@given(st.lists(replies, min_size=1, max_size=8))
def test_replies_fed_byte_by_byte_parse_the_same(values: list[Any]) -> None:
    data = b"".join(encode_reply(value) for value in values)
    parser = RespParser()
    out: list[Any] = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        out.extend(drain(parser))
    assert out == [expected(value) for value in values]
    assert parser.buffered == 0


@given(st.lists(replies, min_size=1, max_size=8), st.data())
def test_replies_in_random_chunks_parse_the_same(values: list[Any], data: st.DataObject) -> None:
    payload = b"".join(encode_reply(value) for value in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=10)))
    parser = RespParser()
    out: list[Any] = []
    start = 0
    for cut in [*cuts, len(payload)]:
        parser.feed(payload[start:cut])
        start = cut
        out.extend(drain(parser))
    assert out == [expected(value) for value in values]


def as_bytes(value: Any) -> Any:
    """``expected(value)`` with simple strings as bytes (what the wire's parsers return)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return [as_bytes(item) for item in value]
    return value


@given(st.lists(replies, min_size=1, max_size=8), st.data())
def test_hiredis_and_the_pure_parser_agree_on_any_chunking(
    values: list[Any], data: st.DataObject
) -> None:
    payload = b"".join(encode_reply(value) for value in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=10)))
    parsers = [HiredisParser(), RespParser(simple_as_bytes=True)]
    outs: list[list[Any]] = [[], []]
    start = 0
    for cut in [*cuts, len(payload)]:
        for parser, out in zip(parsers, outs, strict=True):
            parser.feed(payload[start:cut])
            out.extend(normalized(reply) for reply in parser.take_all())
        start = cut
    want = [as_bytes(expected(value)) for value in values]
    assert outs == [want, want]


def test_hiredis_errors_carry_their_kind_and_bad_bytes_are_a_protocol_error() -> None:
    parser = HiredisParser()
    parser.feed(b"-NOGROUP no such group\r\n*2\r\n-BUSY x\r\n+OK\r\n")
    error, nested = parser.take_all()
    assert isinstance(error, RespError) and error.kind == "NOGROUP"
    assert isinstance(nested[0], RespError) and nested[0].kind == "BUSY" and nested[1] == b"OK"
    parser.feed(b"?what\r\n")
    with pytest.raises(RespProtocolError):
        parser.take_all()


def test_nil_array_error_kind_and_bad_type_byte() -> None:
    parser = RespParser()
    parser.feed(b"*-1\r\n-NOSCRIPT No matching script\r\n*2\r\n$-1\r\n*-1\r\n")
    assert parser.get() == (True, None)
    got, error = parser.get()
    assert got and isinstance(error, RespError) and error.kind == "NOSCRIPT"
    assert parser.get() == (True, [None, None])
    assert parser.get() == (False, None)
    parser.feed(b"!oops\r\n")
    with pytest.raises(RespProtocolError):
        parser.get()


def test_encode_command() -> None:
    assert encode_command([b"SET", "k\u00e9", 12]) == (
        b"*3\r\n$3\r\nSET\r\n$3\r\nk\xc3\xa9\r\n$2\r\n12\r\n"
    )
    with pytest.raises(TypeError):
        encode_command([True])


def test_connection_errors_are_transient() -> None:
    assert issubclass(RespConnectionError, ConnectionError)
    assert issubclass(RespConnectionError, TRANSIENT_ERRORS)
    assert RespConnectionError("x").errno is None


# -- against a real Redis ------------------------------------------------------------------


async def test_set_get_incr_and_nil(redis_server: RedisServer) -> None:
    async with RespConnection(redis_server.url) as conn:
        assert await conn.execute("SET", "k", b"v\r\nw") == "OK"
        assert await conn.execute("GET", "k") == b"v\r\nw"
        assert await conn.execute("GET", "missing") is None
        assert await conn.execute("INCR", "n") == 1
        assert await conn.execute("INCRBY", "n", 41) == 42
        assert await conn.execute("BLPOP", "nothing", "0.01") is None  # nil array


async def test_a_pipeline_of_a_thousand(redis_server: RedisServer) -> None:
    async with RespConnection(redis_server.url) as conn:
        commands: list[list[Any]] = [["RPUSH", "list", i] for i in range(1000)]
        assert await conn.pipeline(commands) == list(range(1, 1001))
        assert await conn.pipeline([["LRANGE", "list", 0, -1]]) == [
            [b"%d" % i for i in range(1000)]
        ]


async def test_errors_are_raised_by_execute_and_returned_by_pipeline(
    redis_server: RedisServer,
) -> None:
    async with RespConnection(redis_server.url) as conn:
        with pytest.raises(RespError) as caught:
            await conn.execute("NOSUCHCOMMAND")
        assert caught.value.kind == "ERR"
        with pytest.raises(RespError, match="NOSCRIPT"):
            await conn.execute("EVALSHA", "0" * 40, 0)
        replies = await conn.pipeline([["SET", "s", "x"], ["INCR", "s"], ["GET", "s"]])
        assert replies[0] == "OK" and isinstance(replies[1], RespError) and replies[2] == b"x"


async def test_streams_xadd_xreadgroup_xack(redis_server: RedisServer) -> None:
    async with RespConnection(redis_server.url) as conn, \
            RespConnection(redis_server.url) as reader:
        assert await conn.execute("XGROUP", "CREATE", "s", "g", "0", "MKSTREAM") == "OK"
        ids = await conn.pipeline([["XADD", "s", "*", "f", b"frame-%d" % i] for i in range(3)])
        reply = await reader.execute(
            "XREADGROUP", "GROUP", "g", "c", "COUNT", 10, "STREAMS", "s", ">"
        )
        assert reply == [[b"s", [[ids[i], [b"f", b"frame-%d" % i]] for i in range(3)]]]
        assert await conn.execute("XACK", "s", "g", *ids) == 3
        # A blocking read on its own connection, answered by a write on the other.
        async with trio.open_nursery() as nursery:
            got: list[Any] = []

            async def read() -> None:
                got.append(await reader.execute(
                    "XREADGROUP", "GROUP", "g", "c", "BLOCK", 5000, "STREAMS", "s", ">"
                ))

            nursery.start_soon(read)
            await trio.sleep(0.05)
            new = await conn.execute("XADD", "s", "*", "f", "late")
        assert got == [[[b"s", [[new, [b"f", b"late"]]]]]]
        assert await reader.execute(
            "XREADGROUP", "GROUP", "g", "c", "BLOCK", 10, "STREAMS", "s", ">"
        ) is None  # timed out: a nil array
        # Cancelled in the middle of a blocking read: the next command still pairs correctly.
        with trio.move_on_after(0.05):
            await reader.execute("XREADGROUP", "GROUP", "g", "c", "BLOCK", 0, "STREAMS", "s", ">")
        assert await reader.execute("PING") == "PONG"


async def test_a_server_restart_raises_then_reconnects(redis_server: RedisServer) -> None:
    async with RespConnection(redis_server.url) as conn:
        assert await conn.execute("SET", "k", "1") == "OK"
        await redis_server.kill()
        with pytest.raises(RespConnectionError):
            await conn.execute("GET", "k")
        with pytest.raises(RespConnectionError):
            await conn.execute("GET", "k")  # refused while down
        await redis_server.start()
        assert await conn.execute("GET", "k") is None  # no persistence: a fresh server
        assert await conn.execute("PING") == "PONG"


async def test_auth_and_select_from_the_url(redis_server: RedisServer) -> None:
    async with RespConnection(redis_server.url) as admin:
        assert await admin.execute("CONFIG", "SET", "requirepass", "s3cret") == "OK"
        url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/3"
        async with RespConnection(url) as conn:
            assert await conn.execute("SET", "k", "in-db-3") == "OK"
        async with RespConnection(url.replace("/3", "/0")) as conn:
            assert await conn.execute("GET", "k") is None
        with pytest.raises(RespConnectionError, match="refused"):
            async with RespConnection(url.replace("s3cret", "wrong")) as conn:
                await conn.execute("PING")
