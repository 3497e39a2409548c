"""Messages: frozen, keyword-only, slotted attrs classes registered under a stable tag.

A message class is declared once with :func:`message` and is from then on known to the codec
by its tag, which is what travels on the wire (never the Python class name, so classes can be
renamed and moved freely)::

    @message("demo.add")
    class Add:
        amount: int
        note: str | None = None

At registration the codec's per-class facts are computed once (:class:`MessageSpec`): the
wire field names in order, how many leading fields an older sender must send, the defaults of
the optional fields, and converters for the fields whose annotation asks for a Python type
msgpack does not have (a ``tuple[...]`` arrives as a list).
"""

from __future__ import annotations

import contextlib
import difflib
import operator
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, dataclass_transform

import attrs

from tektree._errors import CodecError

__all__ = [
    "MessageSpec",
    "is_message",
    "message",
    "message_spec",
    "message_type",
    "registered_tags",
    "tag_of",
]

_T = TypeVar("_T")

TAG_PATTERN: Final = re.compile(r"[a-z0-9_.:-]+")

Converter = Callable[[Any], Any]


class MessageSpec:
    """What the codec knows about one registered message class, computed once.

    - ``names``: the attribute names in wire order; ``values(msg)`` reads them as a tuple;
    - ``init_names``: the matching ``__init__`` keywords (they differ only for attrs aliases);
    - ``required``: the fields without a default; ``min_arity``: how many leading fields a
      frame must carry (up to and including the last required one);
    - ``defaults``: each optional field's default (an ``attrs.Factory`` stays a factory);
    - ``converters``: ``(init keyword, function)`` pairs turning a wire value back into the
      annotated Python type (``None`` until the annotations resolve, see
      :meth:`resolve_converters`);
    - ``build_exact(array)``: the instance from a decoded ``[tag, field, ...]`` array of exactly
      ``arity`` items (the common case), generated code that indexes the array and applies the
      converters inline, about 2.5x faster than ``cls(**dict(zip(...)))``; ``None`` until the
      annotations resolve.
    """

    __slots__ = (
        "_localns",
        "arity",
        "build_exact",
        "cls",
        "converters",
        "defaults",
        "init_names",
        "min_arity",
        "names",
        "qualname",
        "required",
        "tag",
        "values",
    )

    def __init__(self, tag: str, cls: type, localns: Mapping[str, Any] | None) -> None:
        fields = [a for a in attrs.fields(cls) if a.init]
        self.tag = tag
        self.cls = cls
        self.qualname = f"{cls.__module__}.{cls.__qualname__}"
        self.names: tuple[str, ...] = tuple(a.name for a in fields)
        self.init_names: tuple[str, ...] = tuple(a.alias or a.name for a in fields)
        self.required: tuple[str, ...] = tuple(a.name for a in fields if a.default is attrs.NOTHING)
        required_positions = [i for i, a in enumerate(fields) if a.default is attrs.NOTHING]
        self.min_arity = required_positions[-1] + 1 if required_positions else 0
        self.defaults: dict[str, Any] = {
            a.name: a.default for a in fields if a.default is not attrs.NOTHING
        }
        self.values: Callable[[Any], tuple[Any, ...]] = _values_getter(self.names)
        self.arity = len(self.names) + 1
        self._localns = localns
        self.converters: tuple[tuple[str, Converter], ...] | None = None
        self.build_exact: Callable[[list[Any]], object] | None = None
        # A forward reference to a class defined further down the module is resolved on first
        # decode instead, when the module has finished importing.
        with contextlib.suppress(NameError):
            self.resolve_converters()

    def resolve_converters(self) -> tuple[tuple[str, Converter], ...]:
        """Resolve the field annotations and build the decode converters (once)."""
        if self.converters is not None:
            return self.converters
        localns = dict(self._localns or {})
        localns.setdefault(self.cls.__name__, self.cls)
        try:
            hints = typing.get_type_hints(self.cls)
        except NameError:
            # A class defined in a function: try the names visible where it was declared,
            # then any registered message class the module itself does not define.
            module = sys.modules.get(self.cls.__module__)
            module_names = vars(module) if module is not None else {}
            fallback = {
                spec.cls.__name__: spec.cls
                for spec in _SPECS.values()
                if spec.cls.__name__ not in module_names
            }
            hints = typing.get_type_hints(self.cls, localns={**fallback, **localns})
        converters = []
        for name, init_name in zip(self.names, self.init_names, strict=True):
            conv = _converter_for(hints.get(name, Any))
            if conv is not None:
                converters.append((init_name, conv))
        self.build_exact = _generate_builder(self.cls, self.init_names, dict(converters))
        self.converters = tuple(converters)
        self._localns = None
        return self.converters

    def __repr__(self) -> str:
        return f"<MessageSpec {self.tag} -> {self.qualname} fields={self.names}>"


def _generate_builder(
    cls: type, init_names: tuple[str, ...], converters: dict[str, Converter]
) -> Callable[[list[Any]], object]:
    """``def build(a): return cls(x=a[1], y=_c_y(a[2]), ...)`` for one class, compiled once."""
    namespace: dict[str, Any] = {"_cls": cls}
    args = []
    for i, name in enumerate(init_names, start=1):
        if name in converters:
            namespace[f"_c_{name}"] = converters[name]
            args.append(f"{name}=_c_{name}(a[{i}])")
        else:
            args.append(f"{name}=a[{i}]")
    source = f"def build(a):\n    return _cls({', '.join(args)})\n"
    exec(compile(source, f"<message builder {cls.__qualname__}>", "exec"), namespace)
    return typing.cast(Callable[[list[Any]], object], namespace["build"])


def _values_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda msg: ()
    if len(names) == 1:
        name = names[0]
        return lambda msg: (getattr(msg, name),)
    return operator.attrgetter(*names)


_SPECS: dict[str, MessageSpec] = {}
"""Tag -> spec. Read directly by the codec on its hot path."""


def _is_container(hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return origin in (tuple, list, dict, frozenset)


def _converter_for(hint: Any) -> Converter | None:
    """A function turning a decoded wire value into ``hint``'s shape, or None if none is needed.

    msgpack has one array type, decoded as a list; a field annotated ``tuple[...]`` (at any
    depth inside lists, dicts and frozensets) gets its tuple back. A converter only touches
    values of the wire shape and leaves anything else to the class's own validators.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is tuple or origin is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = _converter_for(args[0]) if args else None
            if item is None:
                return _to_tuple
            each: Converter = item
            return lambda v: tuple([each(x) for x in v]) if type(v) is list else v
        items = [_converter_for(a) for a in args]
        if all(c is None for c in items):
            return _to_tuple
        pairs = [c or _identity for c in items]

        def fixed(v: Any) -> Any:
            if type(v) is not list or len(v) != len(pairs):
                return v
            return tuple([c(x) for c, x in zip(pairs, v, strict=True)])

        return fixed
    if origin is list:
        item = _converter_for(args[0]) if args else None
        if item is None:
            return None
        each_item: Converter = item
        return lambda v: [each_item(x) for x in v] if type(v) is list else v
    if hint is frozenset or origin is frozenset:
        item = _converter_for(args[0]) if args else None
        if item is None:
            return lambda v: frozenset(v) if type(v) is list else v
        member: Converter = item
        return lambda v: frozenset([member(x) for x in v]) if type(v) in (list, frozenset) else v
    if origin is dict or origin is Mapping:
        key = _converter_for(args[0]) if args else None
        value = _converter_for(args[1]) if args else None
        if key is None and value is None:
            return None
        kc = key or _identity
        vc = value or _identity
        return lambda v: {kc(k): vc(x) for k, x in v.items()} if type(v) is dict else v
    if origin is typing.Union or origin is types.UnionType:
        arms = [a for a in args if a is not type(None)]
        containers = [a for a in arms if _is_container(a)]
        if len(containers) == 1:
            return _converter_for(containers[0])
        return None
    return None


def _identity(v: Any) -> Any:
    return v


def _to_tuple(v: Any) -> Any:
    return tuple(v) if type(v) is list else v


def _check_tag(tag: object) -> str:
    if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
        raise ValueError(
            f"message tag {tag!r} is invalid: a tag is a non-empty string of lowercase letters, "
            "digits and '_.:-', e.g. 'user.xp.add'"
        )
    return tag


def _register(tag: str, cls: type, localns: Mapping[str, Any] | None) -> MessageSpec:
    spec = MessageSpec(tag, cls, localns)
    taken = _SPECS.get(tag)
    if taken is not None and taken.qualname != spec.qualname:
        raise ValueError(
            f"message tag {tag!r} is already registered to {taken.qualname}; cannot register "
            f"{spec.qualname} under it. Give one of them another tag."
        )
    _SPECS[tag] = spec
    return spec


@dataclass_transform(
    frozen_default=True,
    kw_only_default=True,
    field_specifiers=(attrs.field, attrs.Factory),
)
def message(tag: str) -> Callable[[type[_T]], type[_T]]:
    """Make a plain annotated class a frozen, keyword-only, slotted message registered as ``tag``.

    Fields are declared as class annotations, with ``attrs.field(...)`` for validators,
    converters or factories. Do not also decorate the class with attrs: ``@message`` does it.
    Registering another class under a taken tag raises ``ValueError``; registering a class of
    the same qualified name again (a module reload) replaces the old one.
    """
    _check_tag(tag)
    caller = sys._getframe(1)
    localns = caller.f_locals if caller.f_code.co_name != "<module>" else None

    def decorate(cls: type[_T]) -> type[_T]:
        if "__attrs_attrs__" in cls.__dict__:
            raise TypeError(
                f"@message({tag!r}) on {cls.__qualname__}: the class is already an attrs class. "
                "@message makes it a frozen, kw_only, slotted attrs class itself; remove the "
                "attrs decorator below it."
            )
        made = attrs.frozen(kw_only=True, slots=True)(cls)
        _register(tag, made, localns)
        setattr(made, "__message_tag__", tag)  # noqa: B010 (read by tag_of on the hot path)
        return made

    return decorate


def message_spec(tag: str) -> MessageSpec:
    """The spec registered under ``tag``; ``CodecError(what="tag")`` if there is none."""
    spec = _SPECS.get(tag)
    if spec is None:
        raise unknown_tag(tag)
    return spec


def unknown_tag(tag: object) -> CodecError:
    """The error for a tag nobody registered (shared with the codec)."""
    close = difflib.get_close_matches(str(tag), list(_SPECS), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(t) for t in close)}?" if close else ""
    return CodecError(
        f"unknown message tag {tag!r}: no class is registered under it ({len(_SPECS)} tags "
        f"are){hint} Import the module that defines it, or check the sender's version.",
        what="tag",
    )


def message_type(tag: str) -> type:
    """The class registered under ``tag``; ``CodecError(what="tag")`` naming it if unknown."""
    return message_spec(tag).cls


def tag_of(obj: object) -> str:
    """The tag of a message class or instance; ``TypeError`` if it is not a registered message."""
    cls = obj if isinstance(obj, type) else type(obj)
    tag = getattr(cls, "__message_tag__", None)
    if tag is None or _SPECS.get(tag) is None or _SPECS[tag].cls is not cls:
        raise TypeError(
            f"{cls.__qualname__} is not a registered message; decorate it with @message('a.tag')"
        )
    return typing.cast(str, tag)


def is_message(obj: object) -> bool:
    """Whether ``obj`` is an instance of a registered message class (not the class itself)."""
    cls = type(obj)
    tag = getattr(cls, "__message_tag__", None)
    if tag is None:
        return False
    spec = _SPECS.get(tag)
    return spec is not None and spec.cls is cls


def registered_tags() -> tuple[str, ...]:
    """Every registered tag, sorted."""
    return tuple(sorted(_SPECS))
