"""What a study found: the trials table, the best trial, parameter importances, the optimisation
history and importance plots, and the best parameters exported as a `per:` block for sweep files."""

from __future__ import annotations

from pathlib import Path

import optuna
import yaml

from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.sweep.plan import set_key
from benchmark.sweep.tuning import TuneSpec


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def report(study: optuna.Study, spec: TuneSpec) -> str:
    trials = study.get_trials(deepcopy=False)
    names = [p.name for p in spec.space]
    header = ["trial", "state", spec.objective, "last epoch", *names, "run_id"]
    rows = [header, ["---"] * len(header)]
    for t in trials:
        value = (
            t.value
            if t.value is not None
            else (t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        )
        last = max(t.intermediate_values) if t.intermediate_values else ""
        rows.append(
            [
                str(t.number),
                t.state.name.lower(),
                "" if value is None else f"{value:.4f}",
                str(last),
                *(_fmt(t.params.get(n, "")) for n in names),
                t.user_attrs.get("run_id", ""),
            ]
        )
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    lines.append("")
    lines.append(
        f"{spec.name}: "
        + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        + f" (budget: {spec.n_trials} complete or pruned)"
    )
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        lines.append(
            f"best: trial {best.number}, {spec.objective} {best.value:.4f}, "
            + ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
        )
    importances = param_importances(study)
    if importances:
        lines.append("importance: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    return "\n".join(lines)


def param_importances(study: optuna.Study) -> dict[str, float]:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2 or not complete[0].params:
        return {}
    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # e.g. every trial got the same value
        return {}


def plots(study: optuna.Study, spec: TuneSpec, folder: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    from benchmark.plots import _save  # importing it selects the Agg backend

    trials = study.get_trials(deepcopy=False)
    fig, ax = plt.subplots(figsize=(6, 4))
    best, xs, ys = [], [], []
    for t in trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value is not None  # a complete trial has its value
            xs.append(t.number)
            ys.append(t.value)
            best.append(max(ys))
    pruned = [
        (t.number, t.intermediate_values[max(t.intermediate_values)])
        for t in trials
        if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values
    ]
    ax.scatter(xs, ys, label="complete")
    if pruned:
        ax.scatter(*zip(*pruned), marker="x", label="pruned (last reported)")
    if xs:
        ax.step(xs, best, where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(spec.objective)
    ax.set_title(f"{spec.name}: optimisation history")
    ax.legend(fontsize=7)
    made = [_save(fig, folder / "history.png")]
    importances = param_importances(study)
    if importances:
        fig, ax = plt.subplots(figsize=(5, 0.6 + 0.4 * len(importances)))
        ax.barh(list(importances), list(importances.values()))
        ax.invert_yaxis()
        ax.set_xlabel("importance (fANOVA)")
        ax.set_title(f"{spec.name}: parameter importances")
        made.append(_save(fig, folder / "importances.png"))
    return made


def export(study: optuna.Study, spec: TuneSpec, path: Path) -> str:
    """The best trial's parameters as a `per:` block keyed by the tuned method, for a sweep's `include:`."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {spec.name} has no complete trial to export yet (run gpsbench tune first)")
    best = study.best_trial
    block: dict = {}
    for name, value in best.params.items():
        set_key(block, name, value)
    method = best.params.get("method", spec.fixed.get("method", RunConfig.method))
    block.pop("method", None)
    text = (
        f"# best of study {spec.name} ({spec.path}): trial {best.number}, {spec.objective} {best.value:.4f},\n"
        f"# {len(complete)} complete trials. Use it from a sweep file with `include: [{path}]`.\n"
        + yaml.safe_dump({"per": {"method": {method: block}}}, sort_keys=False)
    )
    Path(path).write_text(text)
    return text
