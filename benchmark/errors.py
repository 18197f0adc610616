"""Errors the command line turns into a one-line message and exit code 2."""

import difflib
from typing import Iterable


class ConfigError(ValueError):
    """Bad user input: raised before any data is loaded or any work starts."""


class TrainingError(RuntimeError):
    """A run that cannot go on (diverged loss, mismatched checkpoint); recorded in status.json."""


def choice_error(kind: str, value: object, choices: Iterable[str]) -> ConfigError:
    """An error naming the bad value, the closest valid choice and all valid ones."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {value!r}{hint}; valid: {', '.join(choices)}")
