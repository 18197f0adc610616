"""Errors the command line turns into one line: bad input (exit 2), a failed run or a file that could
not be written (exit 1). Each says what is wrong and names the value or file."""

import difflib
from pathlib import Path
from typing import Iterable, Sequence, Union

SHOWN = 100  # characters of a bad value an error message repeats


def shown(value: object) -> str:
    """repr(value), cut to SHOWN characters: a message names the bad value, never a megabyte of it."""
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[: SHOWN - 15]}... ({len(text):,} characters)"


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


class ClusterError(RuntimeError):
    """The cluster did not take a submission (its controller went away, sbatch refused): one line, exit 1."""


class UnknownChoice(ConfigError):
    """An unknown name. Alone, its message names the closest valid choice and all valid ones; among
    other problems (`Problems`) it takes one short line and the valid choices are listed once."""

    def __init__(self, kind: str, value: object, choices: Iterable[str], where: str = "", note: str = ""):
        self.kind, self.value, self.choices = kind, value, sorted(choices)
        close = difflib.get_close_matches(str(value), self.choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.brief = f"{where + ': ' if where else ''}unknown {kind} {shown(value)}{hint}{note}"
        super().__init__(f"{self.brief}; valid: {', '.join(self.choices)}")


def choice_error(kind: str, value: object, choices: Iterable[str], where: str = "") -> UnknownChoice:
    """An error naming the bad value, the closest valid choice and all valid ones."""
    return UnknownChoice(kind, value, choices, where)


Problem = Union[str, ConfigError]  # one thing wrong with an input: a message, or the error that says it


class Problems(ConfigError):
    """Everything wrong with one input at once: one line per problem (each unknown name with its
    closest match), then the valid choices of each kind of name once, not once per problem."""

    def __init__(self, problems: Sequence[Problem], where: str = "", subject: str = ""):
        unique: dict[str, Problem] = {}
        for problem in problems:
            for item in problem.problems if isinstance(problem, Problems) else [problem]:
                unique.setdefault(str(item), item)
        self.problems: list[Problem] = list(unique.values())
        super().__init__(describe_problems(where, self.problems, subject))


def describe_problems(where: str, problems: Sequence[Problem], subject: str = "") -> str:
    """`where: problem` for one; else `where (or subject) has N problems:` and one line each."""
    if len(problems) == 1:
        return f"{where}: {problems[0]}" if where else str(problems[0])
    lines = [f"{where or subject or 'the input'} has {len(problems)} problems:"]
    valid: dict[str, list[str]] = {}
    for problem in problems:
        if isinstance(problem, UnknownChoice):
            lines.append(f"  - {problem.brief}")
            valid.setdefault(problem.kind, problem.choices)
        else:
            lines.append(f"  - {problem}")
    lines += [f"  {kind} must be one of: {', '.join(choices)}" for kind, choices in valid.items()]
    return "\n".join(lines)
