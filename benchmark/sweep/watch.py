"""`gpsbench status --watch`: the status table again every few seconds until the sweep has finished.

On a terminal the table is redrawn in place; elsewhere (a log, a pipe) a refresh is printed only when
the table changed. Watching ends when every run is done or failed, or when no job is left that could
finish the rest (every unfinished run stale, interrupted or corrupt, seen twice CONFIRM_S apart, so
the moment between one local run's end and the next one's start does not count). Runs that were
never started (`new`) keep it watching: a local sweep starts them as slots free up.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import pandas as pd

from benchmark.progress import interactive
from benchmark.sweep.status import format_status, status_frame

FINAL = ("done", "failed")
LIVE = ("running", "queued", "unknown")  # a job works on it, or may (on a host we cannot see)
CONFIRM_S = 5.0  # longer than the local scheduler's poll (2 s) between one run's end and the next start
CLEAR = "\033[H\033[2J"  # cursor home, clear the screen


def verdict(frame: pd.DataFrame) -> str | None:
    """'finished', 'abandoned' (unfinished runs that no job will finish) or None (keep watching)."""
    states = set(frame["_state"]) if not frame.empty else set()
    if states and states <= set(FINAL):
        return "finished"
    if states & set(LIVE) or "new" in states:
        return None
    return "abandoned"


def _summary(frame: pd.DataFrame, outcome: str) -> tuple[str, int]:
    counts = frame["_state"].value_counts() if not frame.empty else pd.Series(dtype=int)
    if outcome == "finished":
        failed = int(counts.get("failed", 0))
        return f"all {len(frame)} runs finished" + (f", {failed} failed" if failed else ""), int(failed > 0)
    left = ", ".join(f"{n} {state}" for state, n in counts.items() if state not in FINAL)
    return f"no job is left to finish {left or 'the sweep (no runs)'}: run the sweep again to resume them", 1


def watch(sweep_dir: Path, interval: float, stream: TextIO | None = None) -> int:
    """Refresh every `interval` seconds; 0 when every run is done, 1 when some failed or were left
    unfinished, 130 on Ctrl-C (the runs go on)."""
    stream = stream if stream is not None else sys.stdout
    tty = interactive(stream)
    shown, doubt_since = None, None
    try:
        while True:
            frame = status_frame(sweep_dir)
            table = format_status(sweep_dir, frame)
            if verdict(frame) is None and not set(frame["_state"]) & set(LIVE):
                table += "\nno job runs the new runs yet (a running local sweep starts them as slots free up)"
            if tty:
                stamp = time.strftime("%H:%M:%S")
                print(f"{CLEAR}{sweep_dir}  {stamp}, every {interval:g} s; Ctrl-C stops watching", file=stream)
                print(table, file=stream, flush=True)
            elif table != shown:
                print(f"--- {sweep_dir} at {time.strftime('%Y-%m-%d %H:%M:%S')}", file=stream)
                print(table, file=stream, flush=True)
            shown = table
            outcome = verdict(frame)
            if outcome == "abandoned":  # confirmed CONFIRM_S later: a local sweep may be between two runs
                doubt_since = doubt_since if doubt_since is not None else time.monotonic()
                if time.monotonic() - doubt_since < CONFIRM_S:
                    outcome = None
            else:
                doubt_since = None
            if outcome is not None:
                line, code = _summary(frame, outcome)
                print(line, file=stream, flush=True)
                return code
            time.sleep(interval if doubt_since is None else min(interval, CONFIRM_S))
    except KeyboardInterrupt:
        print("\nstopped watching; the runs go on", file=stream, flush=True)
        return 130
