"""The sweep's watcher, polled while it runs: refreshes the summary when a run's epochs change, and gives a
reason to stop the sweep once its measured epochs project an end past the deadline (with the epoch count
that would fit, for a rerun)."""

from __future__ import annotations

import time
from pathlib import Path

from gpu.check.plan import BEHIND_SLACK, choose_epochs
from gpu.check.projection import project_remaining
from gpu.check.runs import RunProgress, read_runs, steady_epoch_seconds
from gpu.check.summary import snapshot


class SweepWatch:
    def __init__(
        self, sweep_dir: Path, epochs: int, deadline: float, limit: float, out: Path, work: Path, on_behind: str
    ):
        self.sweep_dir, self.epochs, self.deadline, self.limit = sweep_dir, epochs, deadline, limit
        self.out, self.work, self.on_behind = out, work, on_behind
        self.seen: dict[str, tuple] = {}  # run_id -> (state, epochs) last seen
        self.warned = False

    def __call__(self) -> str | None:
        runs = read_runs(self.sweep_dir)
        changed = [r for r in runs if self.seen.get(r.run_id) != (r.state, len(r.epochs))]
        if not changed:
            return None
        for run in changed:
            self._say(run, new_epoch=len(run.epochs) != self.seen.get(run.run_id, ("", 0))[1])
        self.seen.update({r.run_id: (r.state, len(r.epochs)) for r in changed})
        snapshot(self.out, self.work)
        return self._behind(runs)

    def _say(self, run: RunProgress, new_epoch: bool) -> None:
        if not new_epoch or not run.epochs:
            if run.state not in ("new", "running"):
                print(f"[check] sweep: {run.label}: {run.state}", flush=True)
            return
        last = run.epochs[-1]
        knn = f", val kNN {last['val_knn_acc']:.3f}" if "val_knn_acc" in last else ""
        state = f"; {run.state}" if run.state != "running" else ""
        print(
            f"[check] sweep: {run.label}: epoch {last['epoch']}/{self.epochs} {last['epoch_seconds']:.2f} s, "
            f"loss {last['loss']:.4f}{knn}{state}",
            flush=True,
        )

    def _behind(self, runs: list[RunProgress]) -> str | None:
        """A reason to stop when the projected end passes the deadline by more than BEHIND_SLACK of the limit."""
        remaining = project_remaining(runs, self.epochs)
        if remaining is None:
            return None
        now = time.time()
        if now + remaining - self.deadline <= BEHIND_SLACK * self.limit:
            return None
        s = steady_epoch_seconds(runs)
        assert s is not None  # project_remaining gave a figure, so the runs have steady epochs
        fits = choose_epochs(self.limit, s)
        message = (
            f"falling behind: {remaining:.0f} s still needed at {s:.2f} s per epoch, "
            f"{self.deadline - now:.0f} s left; {fits} epochs would fit this limit (--epochs {fits})"
        )
        if self.on_behind == "stop":
            return message
        if not self.warned:
            print(f"[check] sweep: {message}; going on (--on-behind continue)", flush=True)
            self.warned = True
        return None
