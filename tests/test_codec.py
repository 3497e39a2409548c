from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tektree._codec import (
    MAX_EXT_DEPTH,
    decode_envelope,
    decode_message,
    decode_reply,
    decode_value,
    encode_envelope,
    encode_message,
    encode_reply,
    encode_value,
    roundtrip,
)
from tektree._envelope import Envelope
from tektree._errors import ActorFailed, CodecError
from tektree._ids import ActorId
from tektree._messages import _SPECS, message


@message("test.codec.inner")
class Inner:
    label: str
    weight: float = 1.0


@message("test.codec.everything")
class Everything:
    nothing: None = None
    flag: bool = False
    count: int = 0
    ratio: float = 0.0
    text: str = ""
    blob: bytes = b""
    items: list[int] = attrs.Factory(list)
    pair: tuple[str, int] = ("", 0)
    many: tuple[Inner, ...] = ()
    mapping: dict[str, int] = attrs.Factory(dict)
    int_keys: dict[int, str] = attrs.Factory(dict)
    inner: Inner | None = None
    who: ActorId | None = None
    tags: frozenset[str] = frozenset()
    when: dt.datetime | None = None
    anything: Any = None


@message("test.codec.add")
class Add:
    amount: int
    note: Any = None


@message("test.codec.positive")
class Positive:
    n: int = attrs.field(validator=attrs.validators.ge(0))


@pytest.fixture
def registry() -> Iterator[None]:
    saved = dict(_SPECS)
    try:
        yield
    finally:
        _SPECS.clear()
        _SPECS.update(saved)


# -- strategies -------------------------------------------------------------------------------

texts = st.text(max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=False)
actor_ids = st.builds(ActorId, texts, texts)
inners = st.builds(Inner, label=texts, weight=floats)
utc_datetimes = st.datetimes(timezones=st.just(dt.UTC))
scalars = st.none() | st.booleans() | ints | floats | texts | st.binary(max_size=20)
values = st.recursive(
    scalars | actor_ids | inners | utc_datetimes,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(texts, children, max_size=4)
        | st.frozensets(scalars, max_size=4)
    ),
    max_leaves=12,
)
everything = st.builds(
    Everything,
    flag=st.booleans(),
    count=ints,
    ratio=floats,
    text=texts,
    blob=st.binary(max_size=30),
    items=st.lists(ints, max_size=5),
    pair=st.tuples(texts, ints),
    many=st.lists(inners, max_size=3).map(tuple),
    mapping=st.dictionaries(texts, ints, max_size=4),
    int_keys=st.dictionaries(ints, texts, max_size=4),
    inner=st.none() | inners,
    who=st.none() | actor_ids,
    tags=st.frozensets(texts, max_size=4),
    when=st.none() | utc_datetimes,
    anything=values,
)
optional_texts = st.none() | texts
envelopes = st.builds(
    Envelope,
    message_id=texts,
    target=actor_ids,
    message=everything,
    sender=st.none() | actor_ids,
    reply_to=optional_texts,
    correlation_id=optional_texts,
    trace_id=optional_texts,
    deadline=st.none() | floats,
)


def assert_same(a: Any, b: Any) -> None:
    """Equal, and of the same types at every depth: 1, 1.0 and True cannot pass for each other."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif attrs.has(type(a)):
        for field in attrs.fields(type(a)):
            assert_same(getattr(a, field.name), getattr(b, field.name))
    else:
        assert a == b


# -- round trips ------------------------------------------------------------------------------


@given(everything)
def test_message_round_trip(msg: Everything) -> None:
    back = decode_message(encode_message(msg))
    assert back == msg
    # Fields keep their annotated types; a value in an Any field loses only tuple-ness.
    assert_same(attrs.evolve(back, anything=None), attrs.evolve(msg, anything=None))  # type: ignore[misc]


@given(values)
def test_value_round_trip(value: Any) -> None:
    assert decode_value(encode_value(value)) == value
    assert roundtrip(value) == value


def test_specific_values_round_trip_exactly() -> None:
    when = dt.datetime(2026, 5, 14, 12, 30, 1, 123456, tzinfo=dt.UTC)
    msg = Everything(
        count=2**64 - 1,
        ratio=-0.0,
        text="ünïcødé ✓ 🌳",
        pair=("a", -(2**63)),
        many=(Inner(label="x"), Inner(label="y", weight=2.5)),
        int_keys={1: "one", -2: "minus two"},
        inner=Inner(label="nested"),
        who=ActorId("user", "usr_abc/with/slash"),
        tags=frozenset({"a", "b"}),
        when=when,
        anything={"list": [1, (2, 3)], "id": ActorId("room", "r1")},
    )
    back = roundtrip(msg)
    assert back == attrs.evolve(msg, anything={"list": [1, [2, 3]], "id": ActorId("room", "r1")})  # type: ignore[misc]
    assert type(back.pair) is tuple
    assert type(back.many) is tuple
    assert type(back.who) is ActorId
    assert back.when == when
    assert back.when.tzinfo == dt.UTC


def test_message_wire_shape_is_tag_then_fields() -> None:
    assert msgpack.unpackb(encode_message(Add(amount=5, note="hi"))) == ["test.codec.add", 5, "hi"]


@given(envelopes)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_envelope_round_trip(env: Envelope) -> None:
    assert decode_envelope(encode_envelope(env)) == env


def test_envelope_with_every_optional_field_unset() -> None:
    env = Envelope("m-1", ActorId("user", "u1"), Add(amount=1))
    back = decode_envelope(encode_envelope(env))
    assert back == env
    assert (back.sender, back.reply_to, back.correlation_id, back.trace_id, back.deadline) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_envelope_local_only_fields_are_not_encoded() -> None:
    env = Envelope(
        "m-1", ActorId("user", "u1"), Add(amount=1), deadline=12, reply=None, from_timer=True
    )
    frame = msgpack.unpackb(encode_envelope(env))
    assert frame == [
        1,
        "m-1",
        ["user", "u1"],
        None,
        None,
        None,
        None,
        12.0,
        ["test.codec.add", 1, None],
    ]
    back = decode_envelope(encode_envelope(env))
    assert back.from_timer is False
    assert back.reply is None
    assert type(back.deadline) is float


@given(st.text(), values)
def test_ok_reply_round_trip(correlation_id: str, value: Any) -> None:
    assert decode_reply(encode_reply(correlation_id, True, value)) == (correlation_id, True, value)


@given(st.text(), actor_ids, texts, texts, texts, st.none() | texts)
def test_failed_reply_round_trip(
    cid: str, aid: ActorId, etype: str, emsg: str, tb: str, node: str | None
) -> None:
    error = ActorFailed(aid, etype, emsg, tb, node=node)
    got_cid, ok, back = decode_reply(encode_reply(cid, False, error))
    assert (got_cid, ok) == (cid, False)
    assert isinstance(back, ActorFailed)
    assert type(back.actor_id) is ActorId
    assert (back.actor_id, back.error_type, back.error_message, back.traceback_text, back.node) == (
        aid,
        etype,
        emsg,
        tb,
        node,
    )
    assert str(back) == str(error)


def test_failed_reply_must_carry_actor_failed() -> None:
    with pytest.raises(CodecError, match="wrap the exception in ActorFailed"):
        encode_reply("c1", False, ValueError("boom"))


# -- encode errors ----------------------------------------------------------------------------


def test_unserializable_field_names_message_field_and_type() -> None:
    with pytest.raises(CodecError) as info:
        encode_message(Add(amount=1, note={1, 2}))
    assert info.value.what == "field"
    assert str(info.value) == (
        "cannot encode test.codec.add.note: object of type 'set' is not serializable; "
        "use a tuple, list or frozenset"
    )


def test_unserializable_value_deep_in_a_nested_message_names_both_fields() -> None:
    msg = Everything(inner=Inner(label="x", weight=object()))  # type: ignore[arg-type]
    with pytest.raises(
        CodecError,
        match=r"test\.codec\.everything\.inner: .*test\.codec\.inner\.weight: object of type",
    ):
        encode_message(msg)


def test_integer_out_of_range_is_named() -> None:
    with pytest.raises(CodecError, match=r"test\.codec\.add\.amount: integer out of msgpack range"):
        encode_message(Add(amount=2**64))


def test_unregistered_class_cannot_be_encoded() -> None:
    class Plain:
        pass

    with pytest.raises(CodecError, match="Plain: it is not a registered message"):
        encode_message(Plain())
    with pytest.raises(CodecError, match="object of type 'Plain' is not serializable"):
        encode_value([Plain()])


def test_bad_envelope_fields_are_named_on_encode() -> None:
    with pytest.raises(CodecError, match="target must be an ActorId"):
        encode_envelope(Envelope("m", "user/u1", Add(amount=1)))  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="trace_id must be a str or None"):
        encode_envelope(Envelope("m", ActorId("u", "1"), Add(amount=1), trace_id=5))  # type: ignore[arg-type]


# -- decode errors ----------------------------------------------------------------------------


def frame(*items: Any) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)  # type: ignore[no-any-return]


def test_unknown_tag_names_the_tag() -> None:
    with pytest.raises(CodecError, match=r"unknown message tag 'nobody\.knows'") as info:
        decode_message(frame("nobody.knows", 1))
    assert info.value.what == "tag"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "frame is not valid msgpack"),
        (b"\x93\x01", "frame is not valid msgpack"),  # truncated array
        (b"\xc1", "frame is not valid msgpack"),  # never-used byte
        (msgpack.packb({"a": 1}), "a message frame is an array"),
        (frame(), "message array is empty"),
        (frame(7, 1), "message tag must be a str, got int"),
        (frame("test.codec.add"), "required field\\(s\\) amount missing"),
        (b"\x92\xaetest.codec.add\xd4\xff\x01", "frame is not valid msgpack: .*timestamp"),
        (frame("test.codec.positive", -1), "cannot decode test.codec.positive: ValueError"),
        (frame("test.codec.add", msgpack.ExtType(9, b"")), "unknown ext type code 9"),
        (frame("test.codec.add", msgpack.ExtType(2, msgpack.packb([1]))), "ActorId"),
        (frame("test.codec.add", msgpack.ExtType(4, b"yesterday")), "ISO 8601"),
        (frame("test.codec.add", msgpack.ExtType(3, msgpack.packb([{}]))), "unhashable"),
    ],
)
def test_malformed_messages_are_rejected_with_the_reason(data: bytes, expected: str) -> None:
    with pytest.raises(CodecError, match=expected):
        decode_message(data)


def test_msgpack_timestamps_decode_to_aware_datetimes() -> None:
    data = b"\x92\xaetest.codec.add\xd6\xff\x00\x00\x00\x01"  # ext -1: 1 second after epoch
    assert decode_message(data) == Add(amount=dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC))


def test_validators_run_on_decode() -> None:
    with pytest.raises(CodecError, match=r"test\.codec\.positive.*'n' must be >= 0") as info:
        decode_message(frame("test.codec.positive", -5))
    assert info.value.what == "field"


def test_unsupported_envelope_version() -> None:
    data = frame(7, "m", ["u", "1"], None, None, None, None, None, ["test.codec.add", 1])
    with pytest.raises(
        CodecError, match="unsupported envelope version 7; this node reads version 1"
    ):
        decode_envelope(data)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ((1, "m"), "envelope version 1 has 9 elements, this one has 2"),
        ((1, 5, ["u", "1"], None, None, None, None, None, ["test.codec.add", 1]), "message_id"),
        ((1, "m", ["u"], None, None, None, None, None, ["test.codec.add", 1]), "target"),
        ((1, "m", ["u", "1"], "me", None, None, None, None, ["test.codec.add", 1]), "sender"),
        ((1, "m", ["u", "1"], None, 3, None, None, None, ["test.codec.add", 1]), "reply_to"),
        ((1, "m", ["u", "1"], None, None, None, None, "soon", ["test.codec.add", 1]), "deadline"),
        ((1, "m", ["u", "1"], None, None, None, None, None, "add"), "envelope message"),
        ((True, "m", ["u", "1"], None, None, None, None, None, ["test.codec.add", 1]), "version"),
    ],
)
def test_malformed_envelopes_are_rejected(items: tuple[Any, ...], expected: str) -> None:
    with pytest.raises(CodecError, match=expected):
        decode_envelope(frame(*items))


def test_oversized_frame_is_refused_before_parsing() -> None:
    with pytest.raises(CodecError, match="exceeds the limit of 10 bytes"):
        decode_value(encode_value("x" * 20), max_bytes=10)


def test_huge_declared_lengths_in_a_short_frame_are_refused() -> None:
    for data in (b"\xdd\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"):
        with pytest.raises(CodecError, match="frame is not valid msgpack"):
            decode_value(data)


def test_deeply_nested_extensions_are_refused() -> None:
    payload = msgpack.packb(["test.codec.add", 1])
    for _ in range(MAX_EXT_DEPTH + 2):
        payload = msgpack.packb(
            msgpack.ExtType(1, msgpack.packb(["test.codec.add", msgpack.ExtType(1, payload)]))
        )
    with pytest.raises(CodecError, match="nested deeper than"):
        decode_value(payload)


def test_deeply_nested_arrays_are_refused() -> None:
    with pytest.raises(CodecError, match="frame is not valid msgpack"):
        decode_value(b"\x91" * 100_000 + b"\xc0")


def test_malformed_replies_are_rejected() -> None:
    with pytest.raises(CodecError, match="unsupported reply version 2"):
        decode_reply(frame(2, "c", True, None))
    with pytest.raises(CodecError, match="a failed reply's value must be"):
        decode_reply(frame(1, "c", False, ["user", "u1", "E"]))
    with pytest.raises(CodecError, match="correlation_id must be a str and ok a bool"):
        decode_reply(frame(1, "c", 1, None))


# -- hostile input: only CodecError, ever -----------------------------------------------------

DECODERS: list[Callable[[bytes], object]] = [
    decode_message,
    decode_value,
    decode_envelope,
    decode_reply,
]

wire_scalars = (
    st.none()
    | st.booleans()
    | ints
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=10)
    | st.sampled_from(sorted(_SPECS))
)
wire_values = st.recursive(
    wire_scalars,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(wire_scalars, children, max_size=4)
        | st.builds(
            lambda code, inner: msgpack.ExtType(code, msgpack.packb(inner, use_bin_type=True)),
            st.integers(0, 6),
            children,
        )
        | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12))
    ),
    max_leaves=20,
)


def _only_codec_errors(data: bytes) -> None:
    for decode in DECODERS:
        try:
            decode(data)
        except CodecError as exc:
            assert exc.detail  # always says what was wrong


@given(st.binary(max_size=200))
def test_random_bytes_raise_only_codec_error(data: bytes) -> None:
    _only_codec_errors(data)


@given(wire_values)
@settings(max_examples=300)
def test_structured_garbage_raises_only_codec_error(value: Any) -> None:
    _only_codec_errors(msgpack.packb(value, use_bin_type=True))


@given(st.lists(wire_values, max_size=10), st.sampled_from(sorted(_SPECS)))
@settings(max_examples=300)
def test_plausible_frames_raise_only_codec_error(fields: list[Any], tag: str) -> None:
    message_array = [tag, *fields]
    _only_codec_errors(msgpack.packb(message_array, use_bin_type=True))
    envelope = [1, "m", ["u", "1"], None, None, None, None, None, message_array]
    _only_codec_errors(msgpack.packb(envelope, use_bin_type=True))
    _only_codec_errors(msgpack.packb([1, "c", False, fields], use_bin_type=True))


@given(everything, st.integers(0, 200), st.binary(min_size=1, max_size=3))
def test_corrupted_valid_frames_raise_only_codec_error(
    msg: Everything, at: int, junk: bytes
) -> None:
    data = encode_envelope(Envelope("m", ActorId("u", "1"), msg))
    at %= len(data)
    _only_codec_errors(data[:at] + junk + data[at + len(junk) :])
    _only_codec_errors(data[:at])


# -- schema evolution -------------------------------------------------------------------------


def _define(version: int) -> type:
    """The same message (same qualified name, same tag) at two versions of the code."""
    if version == 1:

        @message("test.codec.profile")
        class Profile:
            user: str
            xp: int

    else:

        @message("test.codec.profile")
        class Profile:  # type: ignore[no-redef]
            user: str
            xp: int
            level: int = 1
            badges: tuple[str, ...] = attrs.field(factory=tuple)

    return Profile


def test_newer_sender_older_reader_ignores_extra_fields(registry: None) -> None:
    v2 = _define(2)
    data = encode_message(v2(user="u1", xp=10, level=3, badges=("a",)))
    v1 = _define(1)
    back = decode_message(data)
    assert type(back) is v1
    assert back == v1(user="u1", xp=10)


def test_older_sender_newer_reader_fills_defaults(registry: None) -> None:
    v1 = _define(1)
    data = encode_message(v1(user="u1", xp=10))
    v2 = _define(2)
    back = decode_message(data)
    assert type(back) is v2
    assert back == v2(user="u1", xp=10, level=1, badges=())


def test_older_sender_missing_a_required_field_is_named(registry: None) -> None:
    _define(2)
    with pytest.raises(CodecError, match=r"test\.codec\.profile: 1 field\(s\) sent .* xp missing"):
        decode_message(frame("test.codec.profile", "u1"))
