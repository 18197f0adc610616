"""Errors the command line turns into one line: bad input (exit 2), a failed run or a file that could
not be written (exit 1). Each says what is wrong and names the value or file."""

import difflib
from pathlib import Path
from typing import Iterable


class ConfigError(ValueError):
    """Bad user input: raised before any data is loaded or any work starts."""


class TrainingError(RuntimeError):
    """A run that cannot go on (diverged loss, mismatched checkpoint); recorded in status.json."""


class DamagedFile(ConfigError):
    """A file that cannot be read as what it should be (truncated, not JSON, missing keys)."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path}: {reason}")


class UnsafeFile(ConfigError):
    """A file whose loading would run code from it (a crafted pickle): refused, never executed."""


class StorageError(RuntimeError):
    """A file could not be written: the disk is full, a file-size limit or quota is reached, or the
    folder is not writable. The message names the path and what it needs."""


def choice_error(kind: str, value: object, choices: Iterable[str]) -> ConfigError:
    """An error naming the bad value, the closest valid choice and all valid ones."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(value), choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown {kind} {value!r}{hint}; valid: {', '.join(choices)}")
