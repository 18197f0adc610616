"""Typed parameter dataclasses filled from user values: the one place values are type-checked."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from typing import Any, Mapping

from benchmark.errors import ConfigError, choice_error, shown

# a decimal number as people write it: 1e-5, 5E-4, 1.0e-6, .5, 3., 1_000
NUMBER = re.compile(r"^[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][-+]?\d+)?$")
INFINITY = re.compile(r"^[-+]?\.?inf(inity)?$", re.IGNORECASE)
INT64 = (-(2**63), 2**63 - 1)  # integers as torch (torch.manual_seed, tensors) and numpy take them


def parse_number(value: Any) -> float | None:
    """A number from a YAML value, or None. YAML 1.1 (PyYAML) reads `1e-5` and `5E-4` as strings (its
    floats need a dot and a signed exponent), and JSON writes 1e-05: so numbers may arrive as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and (NUMBER.match(value.strip()) or INFINITY.match(value.strip())):
        return float(value.strip().replace("_", "").replace(".inf", "inf").replace(".INF", "inf"))
    return None


def coerce(key: str, value: Any, hint: Any) -> Any:
    """Check `value` against a type hint (a type or a union of them); ints and numbers written as text
    are accepted for floats, NaN nowhere."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is type(None) and value is None:
            return None
        number = parse_number(value) if kind is float else None
        if number is not None and not math.isnan(number):
            return number
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            if not INT64[0] <= value <= INT64[1]:  # torch, numpy and JSON readers stop at 64 bits
                raise ConfigError(f"{key} must be a 64-bit integer (-2**63 to 2**63 - 1), got {shown(value)}")
            return value
        if kind in (str, bool) and isinstance(value, kind):
            return value
        if kind is dict and isinstance(value, dict):
            return dict(value)
        if kind is list and isinstance(value, list):
            return list(value)
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise ConfigError(f"{key} must be {names}, got {shown(value)} ({type(value).__name__})")


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a dataclass: resolving them evaluates strings, so once per class."""
    return typing.get_type_hints(cls)


def resolve_params(cls: Any, overrides: Mapping[str, Any], prefix: str, owner: str) -> Any:
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
        if isinstance(value, float) and math.isinf(value):
            raise ConfigError(f"{prefix}.{name} must be finite, got {value}")
    if hasattr(params, "validate"):
        params.validate()
    return params
