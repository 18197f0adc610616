"""RunConfig: the typed, validated description of one training run, and its stable run_id.

Everything a user can set arrives here first (CLI flags, `--set key=value`, YAML files, sweep cells)
and is checked before any data is loaded, so a typo costs a second, not a training run. The checks
live here and read the registries below the config (datasets, methods, augmentations, optimisers,
backbones, priors, sampling rules); nothing below the config imports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from benchmark.augment import LARGE_IMAGE_SIZE, NEIGHBOUR_VIEWS, resolve_aug_params
from benchmark.backbones import check_backbone
from benchmark.data import DATASETS, planned_image_size
from benchmark.data.identity import content_fingerprint
from benchmark.data.normalization import reference_normalization
from benchmark.errors import ConfigError, Problem, Problems, choice_error, shown
from benchmark.methods import METHODS, SOURCES, Recipe, resolve_method_params
from benchmark.neighbors import INDEXES, METRICS, SAMPLING_RULES, check_sampling, resolved_sampling_args
from benchmark.online import classifier_lr
from benchmark.optim import OPTIMIZERS, resolve_optim
from benchmark.params import coerce, type_hints
from benchmark.priors import PRIORS, check_prior, gives_gps, is_plain, parse_prior, prior_class
from benchmark.sources import content_identity
from benchmark.yamlfiles import load_yaml
from benchmark.yamllimits import load_bounded

PRECISIONS = ("auto", "bf16", "fp32")
WANDB_MODES = ("online", "offline", "disabled")
ARGS_BLOCKS = ("method_args", "aug_args", "prior_args", "optimizer_args", "sampling_args")


IDENTITY = "identity"  # field metadata: True if the field enters run_id (experiment), False if not (execution)
GPS_ONLY = "gps_only"  # field metadata: an experiment field that only counts for GPS runs
# field metadata: an experiment field added after run_ids were published enters run_id only when it is
# not at its legacy value (what every run trained with before the key existed; by default its default),
# so every config that trains as before keeps its id
NEW_KEY = "new_key"
LEGACY = "legacy"


def experiment(
    default: Any = dataclasses.MISSING,
    *,
    gps_only: bool = False,
    new_key: bool = False,
    legacy: Any = dataclasses.MISSING,
    **kwargs,
) -> Any:
    """A field that changes the result: it enters run_id (with gps_only, only for GPS runs; with
    new_key, only when set to something other than its legacy value, which is its default unless
    `legacy` names the behaviour earlier runs had)."""
    metadata = {IDENTITY: True, GPS_ONLY: gps_only, NEW_KEY: new_key}
    if legacy is not dataclasses.MISSING:
        metadata[LEGACY] = legacy
    return field(default=default, metadata=metadata, **kwargs)


def execution(default: Any = dataclasses.MISSING, **kwargs) -> Any:
    """A field of how and where a run executes (paths, device, logging): not in run_id."""
    return field(default=default, metadata={IDENTITY: False}, **kwargs)


def identity_declared(cls: type) -> type:
    """Class decorator: refuse a config class with a field that does not say whether it enters run_id,
    so no field joins or leaves the identity by where it sits in the class."""
    undeclared = [f.name for f in fields(cls) if IDENTITY not in f.metadata]
    if undeclared:
        raise TypeError(
            f"{cls.__name__} fields {', '.join(undeclared)} must be declared with experiment(...) "
            f"(enters run_id) or execution(...) (does not)"
        )
    return cls


@identity_declared
@dataclass(frozen=True)
class RunConfig:
    # --- what is trained: experiment(...) fields enter run_id (gps_only ones only for GPS runs) ---
    dataset: str = experiment("digits")
    subset: int | None = experiment(None)  # class-balanced subset of the training split (CPU runs)
    image_size: int | None = experiment(None)  # resize on load; None keeps the dataset's native size
    method: str = experiment("simclr")
    method_args: dict = experiment(default_factory=dict)  # overrides of the method's defaults
    aug: str = experiment("strong")
    aug_args: dict = experiment(default_factory=dict)  # overrides of the preset's parameters
    backbone: str = experiment("auto")  # "auto": the small CNN below 24 px (digits), else resnet18
    pretrained: bool = experiment(False)
    weights: str | None = experiment(None)  # local weights file for the backbone
    prior: str = experiment("none")  # positive-pair prior (see benchmark/priors); "none" is plain SSL
    prior_args: dict = experiment(default_factory=dict, gps_only=True)  # overrides of the prior's own settings
    k: int = experiment(0)  # neighbours to draw the positive from; 0 is plain SSL
    # positives drawn per anchor, each with its own augmentation (benchmark/positives.py); 1 is the pair
    positives: int = experiment(1, new_key=True)
    # the pipeline of a GPS positive's view: `first` (the official code: anchor and neighbour alike) or
    # `second` (the plain twin's second pipeline, every GPS run before this key); benchmark/augment.py
    neighbour_view: str = experiment("first", gps_only=True, new_key=True, legacy="second")
    sampling: str = experiment("knn-uniform", gps_only=True)  # a rule of neighbors.SAMPLING_RULES
    # the rule's own settings (kmeans-cluster: clusters, pool; hops: hops; benchmark/neighbors/graph_rules.py)
    sampling_args: dict = experiment(default_factory=dict, gps_only=True, new_key=True)
    include_self: bool = experiment(False, gps_only=True)  # x itself is one more candidate (rules that draw)
    # rules with a radius: the ball radius; None = adaptive (mean distance to tau_neighbors)
    tau: float | None = experiment(None, gps_only=True)
    tau_neighbors: int = experiment(5, gps_only=True)
    metric: str = experiment("l2", gps_only=True)  # l2 (the paper's) or cosine
    knn_index: str = experiment("auto", gps_only=True)  # exact | ivf | hnsw | auto (exact to 200,000 images)
    # rebuild the neighbour table from the model being trained every n epochs (0: never; benchmark/refresh.py)
    refresh_every: int = experiment(0, gps_only=True, new_key=True)
    refresh_from: str = experiment("backbone", gps_only=True, new_key=True)  # backbone | projector
    epochs: int = experiment(100)
    batch_size: int = experiment(256)
    optimizer: str | None = experiment(None)  # None: the method's recipe
    optimizer_args: dict = experiment(default_factory=dict)  # overrides of the optimiser's settings (LARS eta, ...)
    lr: float | None = experiment(None)  # None: the method's base lr x batch_size / 256
    weight_decay: float | None = experiment(None)
    warmup_epochs: int | None = experiment(None)  # None: the recipe's 10, at most epochs // 10
    warmup_start_lr: float | None = experiment(None)  # None: the recipe's 3e-5
    precision: str = experiment("auto")  # auto = bf16 autocast on CUDA, fp32 on CPU
    seed: int = experiment(0)
    val_fraction: float = experiment(0.1)
    val_max: int = experiment(5000)
    knn_temperature: float = experiment(0.07)
    # solo-learn's online linear classifier on the detached backbone features of the training views,
    # evaluated every eval_every epochs and at the end (benchmark/online.py); off: not trained at all
    online_linear: bool = experiment(False, new_key=True)
    classifier_lr: float | None = experiment(None, new_key=True)  # None: the recipe's, x batch / 256
    # --- how and where it runs: execution(...) fields are not in run_id ---
    device: str = execution("auto")
    compile: bool = execution(False)
    checkpoint_every: int = execution(10)
    # online kNN accuracy on val (and the online classifier) every n epochs (0: off); in run_id with
    # online_linear, whose test-selected reading it decides
    eval_every: int = execution(0)
    data_dir: str | None = execution(None)
    data_path: str | None = execution(None)  # the path is not in run_id, the data's content is (see run_id)
    wandb_mode: str | None = execution(None)  # None: env WANDB_MODE, else disabled
    wandb_project: str = execution("gps-bench")
    wandb_entity: str | None = execution(None)
    wandb_group: str | None = execution(None)
    progress: bool = execution(True)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: "RunConfig | None" = None) -> "RunConfig":
        """Build a config from user values (YAML, CLI, sweep cell), type-checked and validated."""
        known = {f.name: f for f in fields(cls)}
        # mypy checks the class object against Hashable by its instances' __hash__ (a mypy false positive)
        hints = type_hints(cls)  # type: ignore[arg-type]
        problems: list[Problem] = []
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                problems.append(choice_error("config key", key, known))
                continue
            try:
                clean[key] = coerce(key, value, hints[key])
            except ConfigError as err:
                problems.append(err)
        merged = dataclasses.replace(base or cls(), **clean)
        try:
            merged.validate()
        except ConfigError as err:
            problems.append(err)
        if problems:
            raise Problems(problems, subject="the config")
        return merged

    @classmethod
    def from_yaml(cls, path: str | Path, base: "RunConfig | None" = None) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        values = load_yaml(path, "config file") or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys to values")
        return cls.from_dict(values, base)

    def with_overrides(self, assignments: list[str]) -> "RunConfig":
        """Apply `key=value` strings; values are parsed as YAML (numbers, booleans, lists, null)."""
        values: dict[str, Any] = {}
        for text in assignments:
            key, sep, raw = text.partition("=")
            if not sep or not key:
                raise ConfigError(f"--set expects key=value, got {shown(text)}")
            try:  # within bounds: an alias bomb is refused before it expands (benchmark/yamllimits.py)
                value = load_bounded(raw, f"--set {shown(text)}") if raw else ""
            except yaml.YAMLError as err:
                problem = " ".join(str(err).split())
                raise ConfigError(
                    f"--set {shown(text)}: the value {shown(raw)} is not valid YAML ({problem})"
                ) from None
            if "." in key:  # method_args.temperature=0.5
                section, sub = key.split(".", 1)
                if section not in ARGS_BLOCKS:
                    raise ConfigError(f"only {', '.join(b + '.*' for b in ARGS_BLOCKS)} take dotted keys, got {key!r}")
                block = values.setdefault(section, dict(getattr(self, section)))
                *parents, leaf = sub.split(".")  # aug_args.view2.solarize_p=0.2
                for parent in parents:
                    nested = block.get(parent)
                    block[parent] = block = dict(nested) if isinstance(nested, dict) else {}
                block[leaf] = value
            else:
                values[key] = value
        return RunConfig.from_dict(values, self)

    # ---------------------------------------------------------------- validation
    def validate(self) -> None:
        """Check every choice against its registry and every number against its range."""
        problems = self._choice_problems() + self._value_problems()
        if problems:
            raise Problems(problems, subject="the config")

    def _choice_problems(self) -> list[Problem]:
        """Each named choice against its registry, and the method's settings against its recipe."""
        problems: list[Problem] = []
        check = _collect(problems)
        check(lambda: DATASETS.get(self.dataset))
        check(lambda: METHODS.get(self.method))
        check(lambda: resolve_method_params(self.method, self.method_args) if self.method in METHODS else None)
        if self.method in METHODS:
            check(lambda: resolve_aug_params(self.aug, self.aug_args, 32, METHODS.get(self.method).recipe.strong))
        check(lambda: check_backbone(self.backbone))
        if (optimizer := self.optimizer) is not None:
            check(lambda: OPTIMIZERS.get(optimizer))
        if self.method in METHODS and (self.optimizer is None or self.optimizer in OPTIMIZERS):
            # optimizer_args against the optimiser that will run
            check(lambda: resolve_optim(self, self.recipe))
        if self.precision not in PRECISIONS:
            problems.append(choice_error("precision", self.precision, PRECISIONS))
        if self.wandb_mode is not None and self.wandb_mode not in WANDB_MODES:
            problems.append(choice_error("wandb_mode", self.wandb_mode, WANDB_MODES))
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            problems.append(f"unknown device {self.device!r}; valid: auto, cpu, cuda, cuda:N")
        check(lambda: check_prior(self.prior, self.prior_args))
        check(lambda: SAMPLING_RULES.get(self.sampling))
        if self.neighbour_view not in NEIGHBOUR_VIEWS:
            problems.append(choice_error("neighbour_view", self.neighbour_view, NEIGHBOUR_VIEWS))
        if self.sampling in SAMPLING_RULES:
            check(lambda: check_sampling(self))
        check(lambda: METRICS.get(self.metric))
        check(lambda: INDEXES.get(self.knn_index))
        check(self.check_positives)
        return problems

    def _value_problems(self) -> list[Problem]:
        """Each number against its range, and the settings that must agree (k and prior, refresh)."""
        problems: list[Problem] = []
        check = _collect(problems)
        if self.k < 0 or self.tau_neighbors < 1:
            problems.append(
                f"k must be >= 0 and tau_neighbors >= 1, got k={self.k}, tau_neighbors={self.tau_neighbors}"
            )
        if is_plain(self.prior) and self.k > 0:
            problems.append(
                f"k={self.k} needs a prior to find neighbours in; prior is {self.prior!r} (set --prior, or k 0)"
            )
        check(lambda: SOURCES.get(self.refresh_from))
        check(self.check_refresh)
        if self.tau is not None and self.tau <= 0:
            problems.append(f"tau must be > 0 (or null for adaptive), got {self.tau}")
        for name, low in (("epochs", 0), ("batch_size", 2), ("checkpoint_every", 1), ("val_max", 1)):
            if getattr(self, name) < low:
                problems.append(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("subset", "image_size", "warmup_epochs"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "warmup_epochs" else 1):
                problems.append(f"{name} must be positive, got {value}")
        if self.eval_every < 0:
            problems.append(f"eval_every must be >= 0, got {self.eval_every}")
        if not 0.0 < self.val_fraction < 1.0:
            problems.append(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("lr", "weight_decay", "warmup_start_lr", "classifier_lr"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name} must be >= 0, got {value}")
        if self.knn_temperature <= 0:
            problems.append(f"knn_temperature must be > 0, got {self.knn_temperature}")
        for f in fields(self):  # an infinite radius is a ball holding every neighbour; elsewhere inf is a typo
            value = getattr(self, f.name)
            if f.name != "tau" and isinstance(value, float) and math.isinf(value):
                problems.append(f"{f.name} must be finite, got {value}")
        return problems

    def check_positives(self) -> None:
        """positives >= 1; with a rule that draws distinct positives, no more than its candidates."""
        m = self.positives
        if m < 1:
            raise ConfigError(f"positives must be >= 1 (positives drawn per anchor), got {m}")
        if m == 1 or self.sampling not in SAMPLING_RULES or parse_prior(self.prior)[0] not in PRIORS:
            return  # unknown names are reported by their own checks
        if not (self.is_gps and prior_class(self.prior).needs_k):
            return
        if SAMPLING_RULES.get(self.sampling).distinct_positives:
            candidates = self.k + int(self.include_self)
            if m > candidates:
                raise ConfigError(
                    f"positives={m} draws different neighbours, without replacement, among the {candidates} "
                    f"candidates of sampling {self.sampling!r} (k={self.k}, include_self={self.include_self}); "
                    f"valid: positives from 1 to {candidates}, or a larger k"
                )

    def check_refresh(self) -> None:
        """Config-time checks: refresh_every >= 0; a refresh needs a GPS run with a neighbour table and an
        epoch left after it."""
        every = self.refresh_every
        if every < 0:
            raise ConfigError(f"refresh_every must be >= 0 (0: never), got {every}")
        if every == 0:
            return
        if parse_prior(self.prior)[0] not in PRIORS:
            return  # the prior check names the unknown prior
        if not self.is_gps:
            raise ConfigError(
                f"refresh_every={every} rebuilds the neighbour table of a GPS run, but this run is plain SSL "
                f"(prior {self.prior!r}, k={self.k}); valid: refresh_every 0, or a prior with k >= 1"
            )
        if not prior_class(self.prior).needs_k:
            raise ConfigError(
                f"refresh_every={every} rebuilds a neighbour table, but prior {self.prior!r} draws its positives "
                f"without one; valid: refresh_every 0, or a prior with a neighbour table (pixel, timm:<model>, run:...)"
            )
        if every >= self.epochs:
            valid = f"0 or 1 to {self.epochs - 1}" if self.epochs > 1 else "0"
            raise ConfigError(
                f"refresh_every={every} never refreshes in a run of {self.epochs} epochs (the table is rebuilt "
                f"after epochs r, 2r, ... before the last); valid: {valid}"
            )

    # ------------------------------------------------------------------ identity
    def result_fields(self) -> dict[str, Any]:
        """The fields that change the result: those declared with experiment(...)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata[IDENTITY]}

    def resolved(self) -> dict[str, Any]:
        """Result fields with every default made explicit (method parameters, optimiser recipe)."""
        values = self.result_fields()
        values["method_args"] = dataclasses.asdict(resolve_method_params(self.method, self.method_args))
        values["sampling_args"] = resolved_sampling_args(self.sampling, self.sampling_args)
        if not self.is_gps:  # plain SSL: the neighbour settings change nothing, so they do not enter run_id
            for f in fields(self):
                if f.metadata.get(GPS_ONLY):
                    values.pop(f.name)
            values["prior"], values["k"] = "none", 0
        if not self.refresh_every:  # no refresh: what it would embed with changes nothing
            values.pop("refresh_from", None)
        if "neighbour_view" in values and not self._views_differ():  # one pipeline: the choice changes nothing
            values.pop("neighbour_view")
        for f in fields(self):
            default = f.default_factory() if callable(f.default_factory) else f.default  # {} for a dict field
            legacy = f.metadata.get(LEGACY, default)
            if f.metadata.get(NEW_KEY) and f.name in values and values[f.name] == legacy:
                values.pop(f.name)
        values.update(resolve_optim(self, self.recipe))
        if self.online_linear:  # the classifier's effective lr, and the epochs its test-selected reading is
            # chosen among (benchmark/online.py)
            values["classifier_lr"] = classifier_lr(self.classifier_lr, self.recipe, self.batch_size)
            values["eval_every"] = self.eval_every
        else:  # no classifier: its lr changes nothing
            values.pop("classifier_lr", None)
        return values

    def _views_differ(self) -> bool:
        """Whether the run's two pipelines differ at a small (32 px) or a large (96 px) image size, so
        that the neighbour's pipeline choice changes what a GPS run trains with."""
        strong = METHODS.get(self.method).recipe.strong
        return any(
            not resolve_aug_params(self.aug, self.aug_args, size, strong).symmetric for size in (32, LARGE_IMAGE_SIZE)
        )

    @property
    def recipe(self) -> Recipe:
        """The method's recipe with the optimiser values of its file for this run's data set and image
        size, as far as the config tells the size (Recipe.for_data)."""
        return METHODS.get(self.method).recipe.for_data(self.method, self.dataset, planned_image_size(self))

    @property
    def is_gps(self) -> bool:
        """GPS positives: a prior that is not plain and k >= 1 (none for a prior that needs no k, the
        oracle); otherwise plain SSL."""
        return gives_gps(self.prior, self.k)

    @property
    def run_id(self) -> str:
        """Stable 12-hex hash of what changes the result (not paths, devices or logging): the resolved
        config, the references' fixed normalisation constants of a data set that has them, and, for
        data given by path, the data's content; a weights file or a `run:<dir>` prior counts by its
        content too (benchmark/sources.py)."""
        identity = content_identity(self, self.resolved())
        normalization = reference_normalization(self.dataset)
        if normalization is not None:  # the references' fixed constants (runs before them used estimates)
            identity["normalization"] = {"mean": normalization.mean, "std": normalization.std}
        if self.data_path is not None:
            identity["data_content"] = content_fingerprint(self.data_path)
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _collect(problems: list[Problem]) -> Callable[[Callable[[], object]], None]:
    """A checker that runs a check and keeps its ConfigError in `problems`, so all are reported at once."""

    def check(fn: Callable[[], object]) -> None:
        try:
            fn()
        except ConfigError as err:
            problems.append(err)

    return check
