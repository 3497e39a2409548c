"""The msgpack codec: messages, reply values, envelopes and ask replies to and from bytes.

Wire format
-----------
- A message is the array ``[tag, field1, field2, ...]``, its fields in declaration order.
- Values inside fields and replies: ``None``, ``bool``, ``int`` (-2**63 .. 2**64-1), ``float``,
  ``str``, ``bytes``, ``list``, ``tuple`` (sent as an array; a field annotated ``tuple[...]``
  gets its tuple back, elsewhere it arrives as a list), ``dict``, and four extension types:

  ====  ==============================================================
  ext   payload
  ====  ==============================================================
  1     a nested registered message: the packed ``[tag, field, ...]``
  2     an ``ActorId``: the packed ``[kind, key]``
  3     a ``frozenset``: the packed array of its members
  4     a ``datetime``: its ISO 8601 text (UTF-8); aware UTC ones round-trip exactly
  ====  ==============================================================

- An envelope is ``[1, message_id, [kind, key], sender [kind, key] | nil, reply_to,
  correlation_id, trace_id, deadline, message-array]``; the leading 1 is the format version.
  The local-only fields ``reply`` and ``from_timer`` are never encoded.
- An ask reply is ``[1, correlation_id, ok, value]``; when ``ok`` is false the value is
  ``[kind, key, error_type, error_message, traceback_text, node]`` and decodes to ActorFailed.

Schema evolution
----------------
Nodes of different versions talk to each other during a rolling deploy, so a message decodes
leniently: values beyond the fields the class knows are ignored (a newer sender), and missing
trailing fields take their defaults (an older sender). Hence the rule: **add fields only at the
end, and always with a default.** Never reorder, rename or remove a field in place; to retire
one, keep it (with a default) or register a new tag.

Hostile input
-------------
``decode_*`` raise :class:`~tektree._errors.CodecError` and nothing else for any bytes, with
``what`` naming the part that was wrong. A frame larger than ``max_bytes`` (default
:data:`MAX_FRAME_BYTES`) is refused before parsing; msgpack's ``unpackb`` bounds every declared
string, binary, array, map and extension length by the frame's own length, so a short frame
cannot make it allocate much; nested extension values are limited to :data:`MAX_EXT_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import msgpack

from tektree._envelope import Envelope
from tektree._errors import ActorFailed, CodecError
from tektree._ids import ActorId
from tektree._messages import _SPECS, MessageSpec, unknown_tag

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_EXT_DEPTH",
    "MAX_FRAME_BYTES",
    "decode_envelope",
    "decode_message",
    "decode_reply",
    "decode_value",
    "encode_envelope",
    "encode_message",
    "encode_reply",
    "encode_value",
    "roundtrip",
]

ENVELOPE_VERSION: Final = 1
REPLY_VERSION: Final = 1
MAX_FRAME_BYTES: Final = 1 << 20
"""Largest frame ``decode_*`` accept by default (1 MiB): parsed objects can take ~60x a frame."""
MAX_EXT_DEPTH: Final = 32
"""How deeply extension values (nested messages, frozensets, ...) may nest in one frame."""

EXT_MESSAGE: Final = 1
EXT_ACTOR_ID: Final = 2
EXT_FROZENSET: Final = 3
EXT_DATETIME: Final = 4

_ALLOWED = (
    "None, bool, int, float, str, bytes, list, tuple, dict, frozenset, datetime, ActorId "
    "and registered messages"
)

# -- encoding ---------------------------------------------------------------------------------


class _Unsupported(TypeError):
    """Raised from the packer's ``default`` hook; turned into a CodecError naming the field."""

    def __init__(self, value: object, hint: str = "", *, problem: str = "") -> None:
        self.value_type = type(value)
        self.hint = hint
        super().__init__(problem or f"object of type {type(value).__name__!r} is not serializable")


def _default(obj: Any) -> Any:
    """msgpack's hook for every value it does not pack natively (strict types)."""
    cls = type(obj)
    if cls is tuple:
        return list(obj)
    if cls is ActorId:
        if type(obj.kind) is not str or type(obj.key) is not str:
            raise _Unsupported(obj, "an ActorId's kind and key must both be str")
        return msgpack.ExtType(EXT_ACTOR_ID, _pack([obj.kind, obj.key]))
    tag = getattr(cls, "__message_tag__", None)
    if tag is not None:
        spec = _SPECS.get(tag)
        if spec is not None and spec.cls is cls:
            return msgpack.ExtType(EXT_MESSAGE, _encode_array(obj, spec))
    if cls is frozenset:
        return msgpack.ExtType(EXT_FROZENSET, _pack(list(obj)))
    if cls is datetime:
        return msgpack.ExtType(EXT_DATETIME, obj.isoformat().encode())
    if cls is int:  # msgpack hands over the ints it cannot pack
        raise _Unsupported(
            obj, "send it as a str", problem="integer out of msgpack range (-2**63 .. 2**64-1)"
        )
    if cls is set:
        raise _Unsupported(obj, "use a tuple, list or frozenset")
    raise _Unsupported(obj, f"allowed are {_ALLOWED}")


def _new_packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, strict_types=True, default=_default)


_packers: list[msgpack.Packer] = [_new_packer()]
"""Idle packers. A nested value (``_default``) or another thread takes its own, so no packer is
ever used re-entrantly; a packer that raised is dropped rather than reused."""


def _pack(obj: object) -> bytes:
    try:
        packer = _packers.pop()
    except IndexError:
        packer = _new_packer()
    data: bytes = packer.pack(obj)
    _packers.append(packer)
    return data


def _spec_of(msg: object) -> MessageSpec:
    cls = type(msg)
    spec = _SPECS.get(getattr(cls, "__message_tag__", None))  # type: ignore[arg-type]
    if spec is None or spec.cls is not cls:
        raise CodecError(
            f"cannot encode {cls.__qualname__}: it is not a registered message; "
            "decorate it with @message('a.tag')",
            what="tag",
        )
    return spec


def _encode_array(msg: object, spec: MessageSpec) -> bytes:
    try:
        return _pack([spec.tag, *spec.values(msg)])
    except Exception as exc:
        raise _field_error(msg, spec, exc) from exc


def _why(exc: BaseException) -> str:
    if isinstance(exc, _Unsupported):
        return f"{exc}; {exc.hint}" if exc.hint else str(exc)
    if isinstance(exc, CodecError):
        return exc.detail
    if isinstance(exc, OverflowError):
        return "integer out of msgpack range (-2**63 .. 2**64-1); send it as a str"
    if isinstance(exc, ValueError) and "recursion" in str(exc):
        return "value nested too deeply (or containing itself); flatten it"
    return f"{type(exc).__name__}: {exc}"


def _field_error(msg: object, spec: MessageSpec, exc: BaseException) -> CodecError:
    """Find the field that failed (the slow path, taken only after a failure)."""
    for name, value in zip(spec.names, spec.values(msg), strict=True):
        try:
            _pack(value)
        except Exception as field_exc:
            return CodecError(f"cannot encode {spec.tag}.{name}: {_why(field_exc)}", what="field")
    return CodecError(f"cannot encode {spec.tag}: {_why(exc)}", what="field")


def encode_message(msg: object) -> bytes:
    """``msg`` as the msgpack array ``[tag, field, ...]``.

    Raises ``CodecError`` naming the tag, the field and the offending type if a field holds a
    value the wire cannot carry.
    """
    return _encode_array(msg, _spec_of(msg))


def encode_value(value: object) -> bytes:
    """Any allowed value (an ask's reply, for instance) as msgpack."""
    try:
        return _pack(value)
    except Exception as exc:
        raise CodecError(f"cannot encode value: {_why(exc)}", what="value") from exc


def _actor_id_array(aid: object, role: str) -> list[str]:
    if isinstance(aid, tuple) and len(aid) == 2 and type(aid[0]) is str and type(aid[1]) is str:
        return [aid[0], aid[1]]
    raise CodecError(
        f"cannot encode envelope: {role} must be an ActorId(kind: str, key: str), got {aid!r}",
        what="envelope",
    )


def _optional_strs(a: object, b: object, c: object) -> bool:
    """Whether all three are a str or None (the envelope's optional strings)."""
    return (
        (a is None or type(a) is str)
        and (b is None or type(b) is str)
        and (c is None or type(c) is str)
    )


def _check_optional_str(value: object, role: str) -> None:
    if value is not None and type(value) is not str:
        raise CodecError(
            f"cannot encode envelope: {role} must be a str or None, got {type(value).__name__}",
            what="envelope",
        )


def encode_envelope(env: Envelope) -> bytes:
    """``env`` as one msgpack array (see the module docstring).

    The local-only ``reply`` and ``from_timer`` are not encoded.
    """
    spec = _spec_of(env.message)
    msg = env.message
    sender = env.sender
    deadline = env.deadline
    if type(env.message_id) is not str:
        raise CodecError(
            f"cannot encode envelope: message_id must be a str, got {env.message_id!r}",
            what="envelope",
        )
    reply_to, correlation_id, trace_id = env.reply_to, env.correlation_id, env.trace_id
    if not _optional_strs(reply_to, correlation_id, trace_id):  # one call, not three
        _check_optional_str(reply_to, "reply_to")
        _check_optional_str(correlation_id, "correlation_id")
        _check_optional_str(trace_id, "trace_id")
    if deadline is not None and type(deadline) is not float:
        if type(deadline) is not int:
            raise CodecError(
                "cannot encode envelope: deadline must be unix seconds (a float) or None, "
                f"got {deadline!r}",
                what="envelope",
            )
        deadline = float(deadline)
    frame = [
        ENVELOPE_VERSION,
        env.message_id,
        _actor_id_array(env.target, "target"),
        None if sender is None else _actor_id_array(sender, "sender"),
        reply_to,
        correlation_id,
        trace_id,
        deadline,
        [spec.tag, *spec.values(msg)],
    ]
    try:
        return _pack(frame)
    except Exception as exc:
        raise _field_error(msg, spec, exc) from exc


def encode_reply(correlation_id: str, ok: bool, value_or_error: object) -> bytes:
    """An ask's reply: the value when ``ok``, else the ``ActorFailed`` that ends the ask."""
    if type(correlation_id) is not str:
        raise CodecError(
            f"cannot encode reply: correlation_id must be a str, got {correlation_id!r}",
            what="reply",
        )
    if ok:
        payload = value_or_error
    else:
        err = value_or_error
        if not isinstance(err, ActorFailed):
            raise CodecError(
                "cannot encode reply: a failed reply carries an ActorFailed, got "
                f"{type(err).__name__}; wrap the exception in ActorFailed(actor_id, ...)",
                what="reply",
            )
        payload = [
            *_actor_id_array(err.actor_id, "actor_id"),
            err.error_type,
            err.error_message,
            err.traceback_text,
            err.node,
        ]
    try:
        return _pack([REPLY_VERSION, correlation_id, bool(ok), payload])
    except Exception as exc:
        raise CodecError(f"cannot encode reply value: {_why(exc)}", what="value") from exc


# -- decoding ---------------------------------------------------------------------------------


def _unpack(data: bytes, depth: int, use_list: bool = True) -> Any:
    return msgpack.unpackb(
        data,
        ext_hook=_HOOKS[depth],
        use_list=use_list,
        raw=False,
        strict_map_key=False,
        timestamp=3,  # msgpack's own timestamp ext (-1) decodes to an aware UTC datetime
    )


def _ext_message(data: bytes, depth: int) -> object:
    arr = _unpack(data, depth + 1)
    if type(arr) is not list:
        raise CodecError(
            f"ext type 1 must hold a message array [tag, field, ...], got {type(arr).__name__}"
        )
    return _build(arr)


def _ext_actor_id(data: bytes, depth: int) -> ActorId:
    return _actor_id(_unpack(data, depth + 1), "ext type 2 (ActorId)")


def _ext_frozenset(data: bytes, depth: int) -> frozenset[Any]:
    members = _unpack(data, depth + 1, use_list=False)
    if type(members) is not tuple:
        raise CodecError(f"ext type 3 must hold an array of members, got {type(members).__name__}")
    try:
        return frozenset(members)
    except TypeError as exc:
        raise CodecError(f"ext type 3 (frozenset) holds an unhashable member: {exc}") from exc


def _ext_datetime(data: bytes, depth: int) -> datetime:
    try:
        return datetime.fromisoformat(data.decode())
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise CodecError(f"ext type 4 must hold an ISO 8601 datetime: {exc}") from exc


_EXT_DECODERS: dict[int, Callable[[bytes, int], object]] = {
    EXT_MESSAGE: _ext_message,
    EXT_ACTOR_ID: _ext_actor_id,
    EXT_FROZENSET: _ext_frozenset,
    EXT_DATETIME: _ext_datetime,
}


def _make_hook(depth: int) -> Callable[[int, bytes], object]:
    def hook(code: int, data: bytes) -> object:
        decoder = _EXT_DECODERS.get(code)
        if decoder is None:
            raise CodecError(
                f"unknown ext type code {code}; this node reads 1 (message), 2 (ActorId), "
                "3 (frozenset) and 4 (datetime)"
            )
        if depth >= MAX_EXT_DEPTH:
            raise CodecError(
                f"extension values nested deeper than {MAX_EXT_DEPTH} levels; flatten the value"
            )
        return decoder(data, depth)

    return hook


_HOOKS: tuple[Callable[[int, bytes], object], ...] = tuple(
    _make_hook(depth) for depth in range(MAX_EXT_DEPTH + 1)
)


def _load(data: bytes, max_bytes: int) -> Any:
    if type(data) is not bytes and not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"frame must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(
            f"frame of {len(data)} bytes exceeds the limit of {max_bytes} bytes; "
            "send large payloads by reference (a store key), not inline"
        )
    try:
        return _unpack(data, 0)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"frame is not valid msgpack: {type(exc).__name__}: {exc}") from exc


def _build(arr: list[Any]) -> object:
    """A message instance from its decoded array ``[tag, field, ...]``."""
    if not arr:
        raise CodecError("message array is empty; expected [tag, field, ...]", what="tag")
    tag = arr[0]
    if type(tag) is not str:
        raise CodecError(
            f"message tag must be a str, got {type(tag).__name__} {tag!r:.60}", what="tag"
        )
    spec = _SPECS.get(tag)
    if spec is None:
        raise unknown_tag(tag)
    if len(arr) <= spec.min_arity:
        sent = len(arr) - 1
        missing = [n for n in spec.names[sent:] if n in spec.required]
        raise CodecError(
            f"cannot decode {tag}: {sent} field(s) sent but required field(s) "
            f"{', '.join(missing)} missing; a field added later needs a default",
            what="field",
        )
    build = spec.build_exact
    if build is None:
        try:
            spec.resolve_converters()
        except Exception as exc:
            raise CodecError(
                f"cannot decode {tag}: the field annotations of {spec.qualname} do not resolve "
                f"({type(exc).__name__}: {exc}); declare the types they name at module level",
                what="tag",
            ) from exc
        build = spec.build_exact
    try:
        if len(arr) == spec.arity:
            return build(arr)  # type: ignore[misc]
        # zip stops at the shorter: extra values from a newer sender are ignored.
        kwargs = dict(zip(spec.init_names, arr[1:], strict=False))
        for name, convert in spec.converters or ():
            if name in kwargs:
                kwargs[name] = convert(kwargs[name])
        return spec.cls(**kwargs)
    except Exception as exc:
        raise CodecError(f"cannot decode {tag}: {type(exc).__name__}: {exc}", what="field") from exc


def decode_message(data: bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> object:
    """The message instance encoded in ``data``; ``CodecError`` for anything malformed."""
    arr = _load(data, max_bytes)
    if type(arr) is not list:
        raise CodecError(f"a message frame is an array [tag, field, ...], got {type(arr).__name__}")
    return _build(arr)


def decode_value(data: bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Any:
    """The value encoded in ``data`` by :func:`encode_value`."""
    return _load(data, max_bytes)


def _actor_id(value: object, role: str) -> ActorId:
    if type(value) is list and len(value) == 2 and type(value[0]) is str and type(value[1]) is str:
        return ActorId(value[0], value[1])
    raise CodecError(f"{role} must be [kind: str, key: str], got {value!r:.80}", what="actor_id")


def _optional_str(value: object, role: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise CodecError(
        f"envelope {role} must be a str or nil, got {type(value).__name__}", what="envelope"
    )


def decode_envelope(data: bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> Envelope:
    """The envelope encoded by :func:`encode_envelope`; ``CodecError`` for anything malformed."""
    frame = _load(data, max_bytes)
    if type(frame) is not list or not frame:
        raise CodecError(
            f"an envelope frame is a non-empty array, got {type(frame).__name__}", what="envelope"
        )
    version = frame[0]
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise CodecError(
            f"unsupported envelope version {version!r:.40}; "
            f"this node reads version {ENVELOPE_VERSION}",
            what="envelope",
        )
    if len(frame) != 9:
        raise CodecError(
            f"envelope version 1 has 9 elements, this one has {len(frame)}", what="envelope"
        )
    _, message_id, target, sender, reply_to, correlation_id, trace_id, deadline, body = frame
    if type(message_id) is not str:
        raise CodecError(
            f"envelope message_id must be a str, got {type(message_id).__name__}",
            what="envelope",
        )
    if deadline is not None and type(deadline) is not float:
        if type(deadline) is not int:
            raise CodecError(
                f"envelope deadline must be a number or nil, got {type(deadline).__name__}",
                what="envelope",
            )
        deadline = float(deadline)
    if type(body) is not list:
        raise CodecError(
            f"envelope message must be an array [tag, field, ...], got {type(body).__name__}",
            what="envelope",
        )
    if not _optional_strs(reply_to, correlation_id, trace_id):  # one call, not three
        _optional_str(reply_to, "reply_to")
        _optional_str(correlation_id, "correlation_id")
        _optional_str(trace_id, "trace_id")
    return Envelope(
        message_id,
        _actor_id(target, "envelope target"),
        _build(body),
        None if sender is None else _actor_id(sender, "envelope sender"),
        reply_to,
        correlation_id,
        trace_id,
        deadline,
    )


def decode_reply(data: bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> tuple[str, bool, Any]:
    """``(correlation_id, ok, value)``; when not ``ok`` the value is the ``ActorFailed``."""
    frame = _load(data, max_bytes)
    if type(frame) is not list or len(frame) != 4:
        raise CodecError(
            "a reply frame is the array [version, correlation_id, ok, value]", what="reply"
        )
    version, correlation_id, ok, payload = frame
    if type(version) is not int or version != REPLY_VERSION:
        raise CodecError(
            f"unsupported reply version {version!r:.40}; this node reads version {REPLY_VERSION}",
            what="reply",
        )
    if type(correlation_id) is not str or type(ok) is not bool:
        raise CodecError("a reply's correlation_id must be a str and ok a bool", what="reply")
    if ok:
        return correlation_id, True, payload
    if (
        type(payload) is not list
        or len(payload) != 6
        or not all(type(v) is str for v in payload[:5])
        or not (payload[5] is None or type(payload[5]) is str)
    ):
        raise CodecError(
            "a failed reply's value must be [kind, key, error_type, error_message, "
            "traceback_text, node] (all str, node may be nil)",
            what="reply",
        )
    kind, key, error_type, error_message, traceback_text, node = payload
    failure = ActorFailed(ActorId(kind, key), error_type, error_message, traceback_text, node=node)
    return correlation_id, False, failure


def roundtrip(obj: Any) -> Any:
    """Encode then decode ``obj`` (a message, an envelope or any allowed value).

    The runtime's ``check_serialization`` mode passes every local message and reply through it,
    so a value that could not cross nodes fails at once in a single-node test.
    """
    if isinstance(obj, Envelope):
        return decode_envelope(encode_envelope(obj))
    cls = type(obj)
    spec = _SPECS.get(getattr(cls, "__message_tag__", None))  # type: ignore[arg-type]
    if spec is not None and spec.cls is cls:
        return decode_message(_encode_array(obj, spec))
    return decode_value(encode_value(obj))
