"""SSL methods: one small module each (heads + loss + recipe), found by name.

A method is an nn.Module built as `cls(backbone, feat_dim, params, context)`. Its forward takes two
batches of views in which row i of the second is the positive of row i of the first and returns the
loss; `after_step(progress)` runs after each optimiser step (EMA targets, queues). Because the pair
contract is all a method sees, GPS positives need no change to any loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from benchmark.errors import ConfigError, choice_error
from benchmark.methods.base import METHODS, MethodContext, Recipe, SSLMethod
from benchmark.methods import barlow, byol, nnclr, simclr, vicreg  # noqa: F401  (register methods)

__all__ = ["METHODS", "MethodContext", "Recipe", "SSLMethod", "build_method", "resolve_method_params"]


def resolve_method_params(method: str, overrides: Mapping[str, Any]):
    """The method's default parameters with the user's overrides, type-checked."""
    cls = METHODS.get(method)
    known = {f.name: f for f in dataclasses.fields(cls.Params)}
    defaults = cls.Params()
    values = {}
    for key, value in overrides.items():
        if key not in known:
            raise choice_error(f"method_args key for {method}", key, known)
        default = getattr(defaults, key)
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and isinstance(default, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int)
        else:
            ok = isinstance(value, (int, float))
            value = float(value) if ok else value
        if not ok:
            raise ConfigError(f"method_args.{key} must be {type(default).__name__}, got {value!r}")
        values[key] = value
    params = cls.Params(**values)
    if hasattr(params, "validate"):
        params.validate()
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if not isinstance(value, bool) and isinstance(value, (int, float)) and value < 0:
            raise ConfigError(f"method_args.{field.name} must be >= 0, got {value}")
    return params


def build_method(name: str, backbone, feat_dim: int, overrides: Mapping[str, Any], context: MethodContext) -> SSLMethod:
    cls = METHODS.get(name)
    return cls(backbone, feat_dim, resolve_method_params(name, overrides), context)
