"""The header of an exported backbone, checked key by key before anything is rebuilt from it: a header
edited by hand (a key removed, a number that is not one) is one line naming the key, not a KeyError
or a ValueError from deep inside the loader."""

from __future__ import annotations

import json
from typing import Any, Callable


def _int(text: str) -> Any:
    value = int(text)
    if value < 1:
        raise ValueError("not positive")
    return value


def _flag(text: str) -> Any:
    value = json.loads(text)
    if not isinstance(value, bool):
        raise ValueError("not true or false")
    return value


def _channels(text: str) -> Any:
    value = json.loads(text)
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise ValueError("not a list of 3 numbers")
    return value


# key -> (what it must be, its parser): the keys that rebuild and feed the backbone
KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "backbone": ("a backbone name", str),
    "timm_model": ("a timm model name or empty", str),
    "cifar_stem": ("true or false (JSON)", _flag),
    "image_size": ("a positive integer", _int),
    "feature_dim": ("a positive integer", _int),
    "mean": ("a JSON list of 3 numbers", _channels),
    "std": ("a JSON list of 3 numbers", _channels),
}


def header_problem(metadata: dict[str, str]) -> str | None:
    """The first key that is missing or not what it must be, said in words; None when all are sound."""
    for key, (expected, parse) in KEYS.items():
        if key not in metadata:
            return f"no {key!r} (it must be {expected})"
        try:
            parse(metadata[key])
        except (ValueError, TypeError):
            return f"{key!r} is {metadata[key][:60]!r}, not {expected}"
    if not metadata["backbone"]:
        return "'backbone' is empty"
    return None
