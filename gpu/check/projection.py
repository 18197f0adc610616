"""Seconds from measured epochs: what the sweep still needs (to stop one that cannot finish in time), and
how long a 200-epoch run takes (the target: under 7 minutes)."""

from __future__ import annotations

import statistics
from typing import cast

from gpu.check.plan import EVAL_S, GPS_SETUP_S, ONLINE_EVAL_S, RUN_SETUP_S, eval_every
from gpu.check.runs import RunProgress, steady_epoch_seconds

TARGET_200_EPOCHS_S = 7 * 60


def project_remaining(runs: list[RunProgress], planned_epochs: int) -> float | None:
    """Seconds the sweep still needs, from what its runs measured (estimates where nothing is yet);
    None before any run has two epochs."""
    s = steady_epoch_seconds(runs)
    if s is None:
        return None
    done = [r for r in runs if r.result is not None and r.wall_seconds is not None]
    # a finished run's seconds outside its steady epochs: setup, compile (first epoch's excess), evaluations;
    # `done` holds runs with a result and wall seconds: mypy narrows neither a property nor an item of a list
    outside = [cast(float, r.wall_seconds) - s * len(r.epochs) for r in done]
    per_run_outside = statistics.mean(outside) if outside else None
    evals = [cast(dict, r.result)["eval_seconds"] for r in done if cast(dict, r.result).get("eval_seconds") is not None]
    final_eval = statistics.mean(evals) if evals else EVAL_S
    points = planned_epochs // eval_every(planned_epochs)
    remaining = 0.0
    for run in runs:
        if run.result is not None or run.state == "failed":
            continue
        if run.epochs or run.started:  # under way
            online_left = max(0, points - sum("val_knn_acc" in m for m in run.epochs))
            remaining += (planned_epochs - len(run.epochs)) * s + final_eval + online_left * ONLINE_EVAL_S
            continue
        estimate = RUN_SETUP_S + EVAL_S + points * ONLINE_EVAL_S
        gps = GPS_SETUP_S if str(run.axes.get("prior", "none")) != "none" else 0.0
        remaining += planned_epochs * s + (per_run_outside if per_run_outside is not None else estimate) + gps
    return remaining


def extrapolate(run: RunProgress, epochs: int = 200) -> dict | None:
    """The seconds of a run of `epochs` epochs from this one's measured epochs:
    epochs x steady + first epoch's excess + evaluation + the rest of the run's wall time."""
    seconds = run.epoch_seconds
    if len(seconds) < 2:
        return None
    steady = statistics.median(seconds[1:])
    first_excess = seconds[0] - steady
    eval_s = (run.result or {}).get("eval_seconds")
    wall = run.wall_seconds
    other = wall - sum(seconds) - eval_s if wall is not None and eval_s is not None else None
    total = epochs * steady + first_excess + (eval_s or 0.0) + (other or 0.0)
    terms = [(first_excess, "first epoch's excess over the median: compile, cuDNN autotuning")]
    terms.append(
        (eval_s, "evaluation: result.json eval_seconds")
        if eval_s is not None
        else (0.0, "evaluation not measured: the run did not finish")
    )
    if other is not None:
        terms.append((other, "the rest of the run's wall time: data, model, prior, online val kNN, checkpoints"))
    lines = [f"{epochs} x {steady:.3f} s (median epoch after the first, of {len(seconds) - 1})"]
    lines += [f"{'-' if value < 0 else '+'} {abs(value):.1f} s ({why})" for value, why in terms]
    lines.append(f"= {total:.0f} s = {total / 60:.2f} min")
    return {
        "epochs": epochs,
        "steady_epoch_seconds": steady,
        "first_epoch_excess_seconds": first_excess,
        "eval_seconds": eval_s,
        "other_seconds": other,
        "total_seconds": total,
        "complete": other is not None,
        "measured_epochs": len(seconds),
        "run_images_per_s": (run.result or {}).get("images_per_s"),
        "target_seconds": TARGET_200_EPOCHS_S,
        "meets_target": total < TARGET_200_EPOCHS_S,
        "formula": " ".join(lines),
        "formula_lines": lines,
    }
