"""The study's journal (`journal.log`, optuna's JournalFileBackend) kept readable. A kill in the middle
of an append leaves a torn last line: optuna's reader skips it, but the next append goes on after it,
fusing the torn bytes with a whole record into a line no reader can parse, after which every `tune`
and `tune --export` of the study fails. So before a study is opened its torn tail is cut off, under
the journal's own lock, as metrics.jsonl's is; a line before the last that does not parse (damage no
append makes) is that study's damage, reported in one line with its number, the file left as it is."""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmark.errors import DamagedFile


def journal_lock(path: Path):
    """The lock optuna's JournalFileBackend takes by default for `path` (a symlink beside it)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    return JournalFileSymlinkLock(str(path))


def repair_journal(path: Path) -> str | None:
    """Cut a torn last line off the journal; returns what was cut (None: nothing was). DamagedFile
    when a line before it is not a record."""
    if not path.exists():
        return None
    lock = journal_lock(path)
    lock.acquire()
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        whole = data.rfind(b"\n") + 1  # bytes up to the end of the last complete line
        for number, line in enumerate(data[:whole].split(b"\n")[:-1], start=1):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise DamagedFile(
                    path,
                    f"line {number} is not a journal record ({line[:60]!r}): the study cannot be read past it; "
                    f"remove that line or the study's folder",
                )
        if whole == len(data):
            return None
        os.truncate(path, whole)
        return f"{path}: its last line was torn ({len(data) - whole} bytes, a write cut by a kill): cut off"
    finally:
        lock.release()
