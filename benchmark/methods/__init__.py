"""SSL methods: one small module each (heads + loss + recipe), found by name.

A method is an nn.Module built as `cls(backbone, feat_dim, params, context)`. Its forward takes two
batches of views in which row i of the second is the positive of row i of the first and returns the
loss; `after_step(progress)` runs after each optimiser step (EMA targets, queues). Because the pair
contract is all a method sees, GPS positives need no change to any loss.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, cast

from benchmark.methods import barlow, byol, dino, mocov3, nnclr, simclr, simsiam, vicreg  # noqa: F401  (registers them)
from benchmark.methods.base import METHODS, MethodContext, Recipe, SSLMethod
from benchmark.methods.outputs import SOURCES
from benchmark.params import resolve_params

__all__ = [
    "METHODS",
    "SOURCES",
    "MethodContext",
    "Recipe",
    "SSLMethod",
    "build_method",
    "display_names",
    "resolve_method_params",
]


def display_names() -> dict[str, str]:
    """Every registered method's display name, in table order: what tables and plots show."""
    order = sorted(METHODS, key=lambda name: (METHODS.get(name).table_order, name))
    return {name: METHODS.get(name).display_name for name in order}


def resolve_method_params(method: str, overrides: Mapping[str, Any]):
    """The method's default parameters with the user's overrides, type-checked."""
    return resolve_params(METHODS.get(method).Params, overrides, "method_args", method)


def build_method(name: str, backbone, feat_dim: int, overrides: Mapping[str, Any], context: MethodContext) -> SSLMethod:
    # every registered method's constructor takes (backbone, feat_dim, params, context); the base class's
    # takes the backbone alone, so type[SSLMethod] does not say so
    cls = cast(Callable[[Any, int, Any, MethodContext], SSLMethod], METHODS.get(name))
    return cls(backbone, feat_dim, resolve_method_params(name, overrides), context)
