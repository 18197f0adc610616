"""Typed parameter dataclasses filled from user values: the one place values are type-checked."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Mapping, TypeVar

from benchmark.errors import ConfigError, choice_error

P = TypeVar("P")


def coerce(key: str, value: Any, hint: Any) -> Any:
    """Check `value` against a type hint (a type or a union of them); ints are accepted for floats."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is type(None) and value is None:
            return None
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind in (str, bool) and isinstance(value, kind):
            return value
        if kind is dict and isinstance(value, dict):
            return dict(value)
        if kind is list and isinstance(value, list):
            return list(value)
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise ConfigError(f"{key} must be {names}, got {value!r} ({type(value).__name__})")


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a dataclass: resolving them evaluates strings, so once per class."""
    return typing.get_type_hints(cls)


def resolve_params(cls: type[P], overrides: Mapping[str, Any], prefix: str, owner: str) -> P:
    """`cls()` with `overrides` applied: unknown keys and wrong types named; numbers must be >= 0;
    a `validate()` method on the dataclass checks anything finer."""
    hints = type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in overrides.items():
        if key not in known:
            raise choice_error(f"{prefix} key for {owner}", key, known)
        values[key] = coerce(f"{prefix}.{key}", value, hints[key])
    params = cls(**values)
    for name in known:
        value = getattr(params, name)
        if not isinstance(value, bool) and isinstance(value, (int, float)) and value < 0:
            raise ConfigError(f"{prefix}.{name} must be >= 0, got {value}")
    if hasattr(params, "validate"):
        params.validate()
    return params
