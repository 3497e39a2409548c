"""``options`` tables of services, read into frozen attrs classes: unknown keys and mistyped
values are errors naming the option, what was expected and what was given.

```python
@attrs.frozen(kw_only=True)
class PollOptions:
    poll_interval_seconds: float = attrs.field(default=1.0, validator=positive)

options = read_options(PollOptions, spec.options, where="service reminders")
```
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from tektree._errors import ConfigError

__all__ = ["at_least", "positive", "read_options"]

T = TypeVar("T")


def positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    """Validator: a number > 0."""
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def at_least(floor: float) -> Any:
    """Validator: a number >= ``floor``."""

    def check(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
        if not value >= floor:
            raise ValueError(f"{attribute.name} must be >= {floor:g}, got {value!r}")

    return check


def _convert(name: str, hint: Any, value: Any, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}.options.{name}",
                           f"expected {expected}, got {value!r} ({type(value).__name__})")

    if hint is bool:
        if not isinstance(value, bool):
            raise bad("a boolean")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        if not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    origin = typing.get_origin(hint)
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise bad("an array")
        return tuple(value)
    if origin is Mapping or hint is Any:
        return value
    raise TypeError(f"{where}: option {name} has an unsupported type {hint!r}")


def read_options(cls: type[T], options: Mapping[str, Any], *, where: str) -> T:
    """An instance of the attrs class ``cls`` from a service's ``options`` table."""
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(f"{where}.options.{unknown[0]}",
                          f"unknown option; known: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(name, hints[name], value, where) for name, value in options.items()}
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}.options", str(exc)) from None
