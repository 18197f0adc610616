"""Tuning files (`sweeps/tune-*.yaml`): the fixed run config, a search space, the trial budget, the
objective (a validation metric: the test split never chooses anything), the sampler and the pruner.
Checked as a whole before any trial runs."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.config import RunConfig
from benchmark.errors import ConfigError, Problem, choice_error
from benchmark.params import parse_number, resolve_params
from benchmark.sweep.plan import drop_k_without_prior, set_key
from benchmark.sweep.spec import Resources, WandbSettings, check_config_key, check_header, format_problems, read_yaml

TUNE_KEYS = (
    "name",
    "description",
    "fixed",
    "space",
    "n_trials",
    "objective",
    "evaluate_every",
    "sampler",
    "pruner",
    "resources",
    "wandb",
)
# objective -> the metrics.jsonl key (logged every `evaluate_every` epochs) its pruner judges trials by.
# Validation only, never test accuracy; every one is maximised. rankme (RankMe, benchmark/quality.py)
# needs no labels: the effective rank of the val features.
OBJECTIVES = {"val_knn_acc": "val_knn_acc", "val_linear_acc": "val_knn_acc", "rankme": "rankme"}
PARAM_TYPES = ("float", "int", "categorical")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")


@dataclass(frozen=True)
class Param:
    """One dimension of the search space."""

    name: str  # a config key, or method_args.x / aug_args.x / prior_args.x
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            assert self.low is not None and self.high is not None  # a numeric param has bounds (_param)
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.choices))

    def corners(self) -> list[Any]:
        """Values that must all give valid configs: the bounds, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None  # a numeric param has bounds (_param)
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


SAMPLER_SEED_MAX = 2**32 - 1 - 1024  # optuna's samplers seed numpy (below 2**32); worker i adds i


@dataclass(frozen=True)
class SamplerSettings:
    name: str = "tpe"
    seed: int = 0
    n_startup_trials: int = 4

    def validate(self) -> None:
        if self.seed > SAMPLER_SEED_MAX:
            raise ConfigError(f"sampler.seed must be at most {SAMPLER_SEED_MAX} (numpy's seeds), got {self.seed}")


@dataclass(frozen=True)
class PrunerSettings:
    name: str = "median"
    n_startup_trials: int = 3  # median: trials finished before any is pruned
    n_warmup_steps: int = 2  # median: epochs before a trial can be pruned
    min_resource: int = 2  # hyperband: epochs


@dataclass(frozen=True)
class TuneSpec:
    name: str
    fixed: dict[str, Any]
    space: tuple[Param, ...]
    n_trials: int
    objective: str
    evaluate_every: int
    sampler: SamplerSettings
    pruner: PrunerSettings
    resources: Resources
    wandb: WandbSettings
    path: Path | None = None

    def config(self, params: dict[str, Any]) -> RunConfig:
        """The run of a trial: fixed settings, the trial's parameters, validation kNN every m epochs."""
        values: dict[str, Any] = {}
        for key, value in self.fixed.items():
            set_key(values, key, value)
        for key, value in params.items():
            set_key(values, key, value)
        values.setdefault("eval_every", self.evaluate_every)
        return RunConfig.from_dict(drop_k_without_prior(values))


def _param(name: str, raw: Any, problems: list[Problem]) -> Param | None:
    where = f"space.{name}"
    if not isinstance(raw, dict):
        problems.append(f"{where} must be a mapping like {{type: float, low: 1e-3, high: 1.0, log: true}}, got {raw!r}")
        return None
    kind = raw.get("type")
    if kind not in PARAM_TYPES:
        problems.append(f"{where}: {choice_error('parameter type', kind, PARAM_TYPES)}")
        return None
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        problems.append(f"{where}: unknown keys {unknown} for a {kind} parameter; valid: {', '.join(sorted(allowed))}")
        return None
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            problems.append(f"{where}: choices must be a non-empty list, got {choices!r}")
            return None
        return Param(name, kind, choices=tuple(choices))
    raw_low, raw_high, log = raw.get("low"), raw.get("high"), bool(raw.get("log", False))
    low, high, step = parse_number(raw_low), parse_number(raw_high), raw.get("step")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        problems.append(f"{where}: low and high must be finite numbers, got low={raw_low!r}, high={raw_high!r}")
        return None
    if step is not None:
        step = parse_number(step)
        if step is None or not math.isfinite(step) or step <= 0:
            problems.append(f"{where}: step must be a positive number, got {raw.get('step')!r}")
            return None
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        problems.append(f"{where}: an int parameter needs integer bounds, got low={low}, high={high}")
        return None
    if low >= high:
        problems.append(f"{where}: low must be below high, got low={low}, high={high}")
        return None
    if log and low <= 0:
        problems.append(f"{where}: a log scale needs low > 0, got low={low}")
        return None
    if log and step is not None:
        problems.append(f"{where}: step and log cannot be combined")
        return None
    return Param(name, kind, float(low), float(high), log, step)


# long: every key of a tuning file checked in the file's order, all problems gathered into one error
def parse_tune(raw: Any, path: Path | None = None) -> TuneSpec:
    where, name, problems = check_header(raw, path, "tuning file", TUNE_KEYS)
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        problems.append(f"fixed must be a mapping of config keys, got {fixed!r}")
        fixed = {}
    for key in fixed:
        if problem := check_config_key(str(key), "fixed"):
            problems.append(problem)
    space_raw = raw.get("space")
    space: list[Param] = []
    if not isinstance(space_raw, dict) or not space_raw:
        problems.append(
            "space must be a non-empty mapping of config key -> {type, low, high, log} or {type: categorical, choices}"
        )
    else:
        for key, spec in space_raw.items():
            if problem := check_config_key(str(key), "space"):
                problems.append(problem)
            elif key in fixed:
                problems.append(f"space.{key} is also in fixed: set it in one place")
            elif (param := _param(str(key), spec, problems)) is not None:
                space.append(param)
    n_trials = raw.get("n_trials", 20)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        problems.append(f"n_trials must be an int >= 1, got {n_trials!r}")
    objective = raw.get("objective", "val_knn_acc")
    if objective not in OBJECTIVES:
        test_hint = (
            " (test accuracy never chooses anything: tune on the validation split)"
            if objective in ("knn_acc", "linear_acc", "knn200_acc")
            else ""
        )
        problems.append(str(choice_error("objective", objective, OBJECTIVES)) + test_hint)
    every = raw.get("evaluate_every", 2)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        problems.append(f"evaluate_every must be an int >= 1 (epochs between validation kNN checks), got {every!r}")
    settings = {}
    for key, cls, valid in (
        ("sampler", SamplerSettings, SAMPLERS),
        ("pruner", PrunerSettings, PRUNERS),
        ("resources", Resources, None),
        ("wandb", WandbSettings, None),
    ):
        value = raw.get(key) or {}
        try:
            settings[key] = resolve_params(cls, value if isinstance(value, dict) else {"name": value}, key, "tuning")
            if valid and settings[key].name not in valid:
                problems.append(str(choice_error(key, settings[key].name, valid)))
        except ConfigError as err:
            problems.append(str(err))
            settings[key] = cls()
    spec = None
    if not problems:
        spec = TuneSpec(
            name=name,
            fixed=fixed,
            space=tuple(space),
            n_trials=n_trials,
            objective=objective,
            evaluate_every=every,
            sampler=settings["sampler"],
            pruner=settings["pruner"],
            resources=settings["resources"],
            wandb=settings["wandb"],
            path=path,
        )
        for param in spec.space:  # every bound and choice must give a valid run
            for value in param.corners():
                try:
                    spec.config({param.name: value})
                except ConfigError as err:
                    problems.append(f"space.{param.name} = {value!r}: {err}")
    if problems:
        raise ConfigError(format_problems(where, problems))
    return spec


def load_tune(path: str | Path) -> TuneSpec:
    path, raw = read_yaml(path, "tuning file")
    return parse_tune(raw, path)
