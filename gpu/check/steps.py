"""A step of the check as a child process in its own process group, its output copied line by line with
the step's name in front, stopped at its time limit or when its watcher gives a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from gpu.check.options import REPO


@dataclass
class StepOutcome:
    outcome: str  # done, failed (exit code N), cut off, stopped early, skipped: ...
    seconds: float
    limit: float | None
    rc: int | None = None
    note: str | None = None


class Child:
    """`cmd` started in a new session (so a stop reaches its whole group), its output copied here."""

    def __init__(self, name: str, cmd: list[str], env: dict):
        self.name = name
        print(f"[check] {name}: {' '.join(cmd)}", flush=True)
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._copy, daemon=True)
        self.reader.start()

    def _copy(self) -> None:
        assert self.proc.stdout is not None  # Popen with stdout=PIPE
        for line in self.proc.stdout:
            sys.stdout.write(f"[{self.name}] {line}")
            sys.stdout.flush()

    def stop(self, grace: float) -> None:
        """SIGINT to the group (a run saves `pending`, the sweep and perf exit), SIGKILL after `grace` s."""
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        self.reader.join(2)


def run_step(
    name: str,
    cmd: list[str],
    env: dict,
    limit: float,
    grace: float = 3.0,
    watch: Callable[[], str | None] | None = None,
    poll_s: float = 2.0,
) -> StepOutcome:
    """Run `cmd` until it ends, its time limit passes, or `watch()` returns a reason to stop it."""
    started = time.time()
    if limit <= 0:
        return StepOutcome("skipped: no time left", 0.0, limit)
    child = Child(name, cmd, env)
    reason = None
    try:
        while child.proc.poll() is None:
            if time.time() - started > limit:
                reason = f"cut off by its time limit ({limit:.0f} s)"
            elif watch is not None:
                reason = watch()
            if reason:
                print(f"[check] {name}: {reason}: stopping it", flush=True)
                child.stop(grace)
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:  # Ctrl-C reaches the foreground group only: stop the step's group too
        child.stop(grace)
        raise
    child.proc.wait()
    child.reader.join(5)
    seconds = time.time() - started
    rc = child.proc.returncode
    if reason:
        return StepOutcome("cut off" if reason.startswith("cut off") else "stopped early", seconds, limit, rc, reason)
    return StepOutcome("done" if rc == 0 else f"failed (exit code {rc})", seconds, limit, rc)
