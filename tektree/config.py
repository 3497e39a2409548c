"""Load a node's configuration from ``supervisor.toml``, the environment and CLI overrides.

Precedence, lowest first: built-in defaults, the TOML file, the environment variables listed in
:data:`ENV_OVERRIDES`, then ``overrides`` (dotted path -> value, from CLI flags). Everything goes
through one validator that walks the attrs fields of :mod:`tektree._config_schema` and their
types, so every problem is a :class:`~tektree._errors.ConfigError` whose ``path`` names the
setting: ``supervisor.children[2].strategy``, or ``$TEKTREE_HTTP_PORT (http.port)`` when the bad
value came from the environment.
"""

from __future__ import annotations

import difflib
import math
import operator
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import attrs

from tektree._config_schema import (
    RULES_KEY,
    ActorPoolSpec,
    ChildSpec,
    Config,
    HttpConfig,
    LogFormat,
    LoggingConfig,
    LogLevel,
    MailConfig,
    NodeConfig,
    Overflow,
    Pattern,
    RedisConfig,
    RestartType,
    Rules,
    ServiceSpec,
    StoreBackend,
    StoreConfig,
    Strategy,
    SupervisorSpec,
    rules,
)
from tektree._errors import ConfigError

__all__ = [
    "ENV_OVERRIDES",
    "ActorPoolSpec",
    "ChildSpec",
    "Config",
    "ConfigError",
    "HttpConfig",
    "LogFormat",
    "LogLevel",
    "LoggingConfig",
    "MailConfig",
    "NodeConfig",
    "Overflow",
    "Pattern",
    "RedisConfig",
    "RestartType",
    "Rules",
    "ServiceSpec",
    "StoreBackend",
    "StoreConfig",
    "Strategy",
    "SupervisorSpec",
    "env_overrides_markdown",
    "load_config",
    "parse_config",
    "parse_options",
    "rules",
]

ENV_OVERRIDES: Mapping[str, str] = types.MappingProxyType(
    {
        "TEKTREE_NODE_NAME": "node.name",
        "TEKTREE_DATA_DIR": "node.data_dir",
        "TEKTREE_DRAIN_TIMEOUT_SECONDS": "node.drain_timeout_seconds",
        "TEKTREE_ASK_TIMEOUT_SECONDS": "node.ask_timeout_seconds",
        "TEKTREE_CHECK_SERIALIZATION": "node.check_serialization",
        "TEKTREE_GC_YOUNG_THRESHOLD": "node.gc_young_threshold",
        "TEKTREE_SWITCH_INTERVAL_MS": "node.switch_interval_ms",
        "TEKTREE_HTTP_HOST": "http.host",
        "TEKTREE_HTTP_PORT": "http.port",
        "TEKTREE_LOG_LEVEL": "logging.level",
        "TEKTREE_LOG_FORMAT": "logging.format",
        "TEKTREE_REDIS_URL": "redis.url",
        "TEKTREE_STORE_BACKEND": "store.backend",
        "TEKTREE_MONGO_URL": "store.mongo_url",
        "TEKTREE_MONGO_DATABASE": "store.mongo_database",
        "TEKTREE_MAIL_FROM": "mail.from_address",
        "TEKTREE_SMTP_HOST": "mail.smtp_host",
        "TEKTREE_SMTP_PORT": "mail.smtp_port",
        "TEKTREE_SMTP_USERNAME": "mail.smtp_username",
        "TEKTREE_SMTP_PASSWORD": "mail.smtp_password",
    }
)
"""Environment variable -> dotted setting it overrides (after the file, before ``overrides``)."""

_ENV_BOOLS: Mapping[str, bool] = types.MappingProxyType(
    {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
)

_T = TypeVar("_T")


# --------------------------------------------------------------------------- public API


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read ``path`` (TOML), or the built-in defaults when it is None, and validate it.

    ``env`` defaults to ``os.environ``; ``overrides`` maps dotted paths to values and is applied
    last (values that are None are skipped, so unset CLI flags can be passed as they are).
    """
    if path is None:
        return parse_config({}, source="<defaults>", env=env, overrides=overrides)
    source = os.fspath(path)
    try:
        with open(source, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(source, "configuration file not found") from None
    except OSError as error:
        raise ConfigError(source, f"cannot read configuration file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, f"invalid TOML: {error}") from None
    return parse_config(data, source=source, env=env, overrides=overrides)


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<memory>",
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Validate an already-parsed TOML document (``data`` is not modified)."""
    env = os.environ if env is None else env
    labels: dict[str, str] = {}
    merged: Mapping[str, Any] = data
    for variable, setting in ENV_OVERRIDES.items():
        if variable in env:
            label = f"${variable} ({setting})"
            merged = _set_path(merged, setting, _parse_env(env[variable], setting, label))
            labels[setting] = label
    for setting, value in (overrides or {}).items():
        if value is not None:
            _field_type(setting, setting)
            merged = _set_path(merged, setting, value)
            for overridden in [k for k in labels if k == setting or k.startswith(f"{setting}.")]:
                del labels[overridden]
    walker = _Walker(labels)
    config = attrs.evolve(walker.build(Config, merged, ""), source=source)
    _check_tree(config.supervisor, "supervisor", {})
    return config


def parse_options(cls: type[_T], table: Mapping[str, Any], path: str) -> _T:
    """A service's or actor kind's ``options`` table as an instance of ``cls``, checked like the
    node's own settings: ``cls`` is a frozen attrs class whose fields carry
    ``metadata=rules(...)``; unknown keys, wrong types and broken constraints raise a
    :class:`ConfigError` naming ``path.key``."""
    return _Walker({}).build(cls, table, path)


def env_overrides_markdown() -> str:
    """The environment overrides as a markdown table, for the README."""
    lines = [
        "| Variable | Setting | Type | Default | Meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for variable, setting in ENV_OVERRIDES.items():
        field, hint = _field_type(setting, setting)
        rules = _rules(field)
        default = field.default
        lines.append(
            f"| `{variable}` | `{setting}` | {_type_name(hint)} | `{_toml_repr(default)}` "
            f"| {rules.doc if rules else ''} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the schema walk


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a schema class (annotations are strings under PEP 563)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _rules(field: attrs.Attribute[Any]) -> Rules | None:
    rules: Rules | None = field.metadata.get(RULES_KEY)
    return rules


def _settings(cls: type) -> dict[str, attrs.Attribute[Any]]:
    """The fields of ``cls`` that are configuration keys (those carrying :class:`Rules`)."""
    return {f.name: f for f in attrs.fields(cls) if _rules(f) is not None}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _choices(values: tuple[Any, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}allowed: {', '.join(allowed)}"


def _field_type(setting: str, label: str) -> tuple[attrs.Attribute[Any], Any]:
    """The field a dotted path names (sections only, no list indices) and its type."""
    cls: Any = Config
    field: attrs.Attribute[Any] | None = None
    walked = ""
    for key in setting.split("."):
        if not attrs.has(cls):
            raise ConfigError(label, f"{walked!r} is a {_type_name(cls)}, not a table")
        settings = _settings(cls)
        if key not in settings:
            raise ConfigError(label, _unknown_key(key, list(settings)))
        field, cls = settings[key], _hints(cls)[key]
        walked = _join(walked, key)
    if field is None:
        raise ConfigError(label, "empty setting path")
    return field, cls


def _set_path(data: Mapping[str, Any], setting: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with the dotted ``setting`` replaced; the input is left untouched."""
    head, _, rest = setting.partition(".")
    copy = dict(data)
    if not rest:
        copy[head] = value
        return copy
    inner = copy.get(head, {})
    if not isinstance(inner, Mapping):
        raise ConfigError(head, f"expected a table, got {_got(inner)}")
    copy[head] = _set_path(inner, rest, value)
    return copy


def _parse_env(text: str, setting: str, label: str) -> Any:
    """An environment string converted to the type of the setting it overrides."""
    _, hint = _field_type(setting, label)
    if hint is bool:
        try:
            return _ENV_BOOLS[text.strip().lower()]
        except KeyError:
            raise ConfigError(
                label, f"expected a boolean (true/false/1/0/yes/no), got {_got(text)}"
            ) from None
    for kind, parse, name in ((int, int, "an integer"), (float, float, "a number")):
        if hint is kind:
            try:
                return parse(text.strip())
            except ValueError:
                raise ConfigError(label, f"expected {name}, got {_got(text)}") from None
    return text


class _Walker:
    """Builds attrs instances from TOML tables, raising at the first problem with its path."""

    def __init__(self, labels: Mapping[str, str]) -> None:
        self._labels = labels

    def error(self, path: str, detail: str) -> ConfigError:
        return ConfigError(self._labels.get(path, path), detail)

    def build(self, cls: type[_T], table: Any, path: str, *, tagged: bool = False) -> _T:
        if not isinstance(table, Mapping):
            return self._fail_table(path, table)
        settings = _settings(cls)
        allowed = ["type", *settings] if tagged else list(settings)
        for key in table:
            if key not in allowed:
                raise self.error(_join(path, key), _unknown_key(key, allowed))
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for name, field in settings.items():
            if name in table:
                values[name] = self.convert(table[name], hints[name], _join(path, name))
            elif field.default is attrs.NOTHING:
                raise self.error(_join(path, name), "required key is missing")
        instance = cls(**values)
        for name, field in settings.items():
            self.check(instance, name, _rules(field), _join(path, name))
        return instance

    def _fail_table(self, path: str, value: Any) -> typing.NoReturn:
        raise self.error(path, f"expected a table, got {_got(value)}")

    def convert(self, value: Any, hint: Any, path: str) -> Any:
        converter = _CONVERTERS.get(hint)
        if converter is not None:
            return converter(self, value, path)
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin is Literal:
            if value not in args:
                raise self.error(path, f"{value!r} is not one of {_choices(args)}")
            return value
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            if not isinstance(value, list | tuple):
                raise self.error(path, f"expected an array of tables, got {_got(value)}")
            return tuple(
                self.convert(item, args[0], f"{path}[{i}]") for i, item in enumerate(value)
            )
        if origin is types.UnionType:
            return self.tagged(value, {cls.type_tag: cls for cls in args}, path)
        if origin is Mapping:
            if not isinstance(value, Mapping):
                self._fail_table(path, value)
            return value
        if attrs.has(hint):
            return self.build(hint, value, path)
        raise TypeError(f"{path}: the config schema uses an unsupported type {hint!r}")

    def tagged(self, value: Any, classes: Mapping[str, type], path: str) -> Any:
        """A table whose ``type`` key picks one class of a union (each has a ``type_tag``)."""
        if not isinstance(value, Mapping):
            self._fail_table(path, value)
        tags = _choices(tuple(classes))
        if "type" not in value:
            raise self.error(_join(path, "type"), f"required key is missing; one of {tags}")
        tag = value["type"]
        cls = classes.get(tag) if isinstance(tag, str) else None
        if cls is None:
            raise self.error(_join(path, "type"), f"{tag!r} is not one of {tags}")
        return self.build(cls, value, path, tagged=True)

    def check(self, instance: Any, name: str, rules: Rules | None, path: str) -> None:
        if rules is None:
            return
        value = getattr(instance, name)
        bounds = (
            (rules.gt, operator.gt, ">"),
            (rules.ge, operator.ge, ">="),
            (rules.le, operator.le, "<="),
        )
        for bound, holds, symbol in bounds:
            if bound is not None and not holds(value, bound):
                raise self.error(path, f"must be {symbol} {bound:g}, got {value!r}")
        if rules.ge_field is not None:
            floor = getattr(instance, rules.ge_field)
            if value < floor:
                raise self.error(path, f"must be >= {rules.ge_field} ({floor!r}), got {value!r}")
        if rules.pattern is not None and not rules.pattern.regex.fullmatch(value):
            raise self.error(path, f"{value!r} is not {rules.pattern.hint}")
        if rules.required_when is not None:
            other, wanted = rules.required_when
            if getattr(instance, other) == wanted and not value:
                sibling = path.rsplit(".", 1)[0] + "." + other if "." in path else other
                raise self.error(path, f"required (non-empty) when {sibling} = {wanted!r}")


def _to_str(walker: _Walker, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise walker.error(path, f"expected a string, got {_got(value)}")
    return value


def _to_bool(walker: _Walker, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise walker.error(path, f"expected a boolean (true or false), got {_got(value)}")
    return value


def _to_int(walker: _Walker, value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise walker.error(path, f"expected an integer, got {_got(value)}")
    return value


def _to_float(walker: _Walker, value: Any, path: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise walker.error(path, f"expected a number, got {_got(value)}")
    if not math.isfinite(value):
        raise walker.error(path, f"expected a finite number, got {value!r}")
    return float(value)


_CONVERTERS: Mapping[Any, Callable[[_Walker, Any, str], Any]] = types.MappingProxyType(
    {str: _to_str, bool: _to_bool, int: _to_int, float: _to_float}
)


def _check_tree(spec: SupervisorSpec, path: str, kinds: dict[str, str]) -> None:
    """Sibling names are unique; actor kinds are unique across the whole tree."""
    seen: dict[str, int] = {}
    for index, child in enumerate(spec.children):
        child_path = f"{path}.children[{index}]"
        key = "kind" if isinstance(child, ActorPoolSpec) else "name"
        if child.name in seen:
            raise ConfigError(
                f"{child_path}.{key}",
                f"{child.name!r} is already the name of {path}.children[{seen[child.name]}]; "
                "sibling children need unique names",
            )
        seen[child.name] = index
        if isinstance(child, ActorPoolSpec):
            if child.kind in kinds:
                raise ConfigError(
                    f"{child_path}.kind",
                    f"actor kind {child.kind!r} is already served by {kinds[child.kind]}; "
                    "each kind has one pool per node",
                )
            kinds[child.kind] = child_path
        elif isinstance(child, SupervisorSpec):
            _check_tree(child, child_path, kinds)


# --------------------------------------------------------------------------- docs helpers


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in typing.get_args(hint))
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
