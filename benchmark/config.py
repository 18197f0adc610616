"""RunConfig: the typed, validated description of one training run, and its stable run_id.

Everything a user can set arrives here first (CLI flags, `--set key=value`, YAML files, sweep cells)
and is checked before any data is loaded, so a typo costs a second, not a training run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from benchmark.errors import ConfigError, choice_error
from benchmark.params import coerce, type_hints
from benchmark.yamlfiles import load_yaml

PRECISIONS = ("auto", "bf16", "fp32")
GPS_FIELDS = ("prior_args", "sampling", "include_self", "tau", "tau_neighbors", "metric", "knn_index")
WANDB_MODES = ("online", "offline", "disabled")
ARGS_BLOCKS = ("method_args", "aug_args", "prior_args", "optimizer_args")


@dataclass(frozen=True)
class RunConfig:
    # --- what is trained (all of it enters run_id) ---
    dataset: str = "digits"
    subset: int | None = None  # class-balanced subset of the training split (CPU runs)
    image_size: int | None = None  # resize on load; None keeps the dataset's native size
    method: str = "simclr"
    method_args: dict = field(default_factory=dict)  # overrides of the method's defaults
    aug: str = "strong"
    aug_args: dict = field(default_factory=dict)  # overrides of the preset's parameters
    backbone: str = "auto"  # "auto": the small CNN below 24 px (digits), else resnet18
    pretrained: bool = False
    weights: str | None = None  # local weights file for the backbone
    prior: str = "none"  # positive-pair prior (see benchmark/priors); "none" is plain SSL
    prior_args: dict = field(default_factory=dict)  # overrides of the prior's own settings
    k: int = 0  # neighbours to draw the positive from; 0 is plain SSL
    sampling: str = "knn-uniform"  # knn-uniform | radius | farthest-in-ball
    include_self: bool = False  # knn-uniform/radius: x itself is one more candidate
    tau: float | None = None  # radius rules: ball radius; None = adaptive (mean distance to tau_neighbors)
    tau_neighbors: int = 5
    metric: str = "l2"  # l2 (the paper's) or cosine
    knn_index: str = "auto"  # exact | ivf | hnsw | auto (exact up to 200,000 images, ivf above)
    epochs: int = 100
    batch_size: int = 256
    optimizer: str | None = None  # None: the method's recipe
    optimizer_args: dict = field(default_factory=dict)  # overrides of the optimiser's settings (LARS eta, ...)
    lr: float | None = None  # None: the method's base lr x batch_size / 256
    weight_decay: float | None = None
    warmup_epochs: int | None = None  # None: the recipe's 10, at most epochs // 10
    warmup_start_lr: float | None = None  # None: the recipe's 3e-5
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    seed: int = 0
    val_fraction: float = 0.1
    val_max: int = 5000
    knn_temperature: float = 0.07
    # --- how and where it runs (not in run_id) ---
    device: str = "auto"
    compile: bool = False
    checkpoint_every: int = 10
    eval_every: int = 0  # online kNN accuracy on val every n epochs (0: off)
    data_dir: str | None = None
    data_path: str | None = None
    wandb_mode: str | None = None  # None: env WANDB_MODE, else disabled
    wandb_project: str = "gps-bench"
    wandb_entity: str | None = None
    wandb_group: str | None = None
    progress: bool = True

    # ------------------------------------------------------------------ building
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: "RunConfig | None" = None) -> "RunConfig":
        """Build a config from user values (YAML, CLI, sweep cell), type-checked and validated."""
        known = {f.name: f for f in fields(cls)}
        hints = type_hints(cls)
        problems = []
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                problems.append(str(choice_error("config key", key, known)))
                continue
            try:
                clean[key] = coerce(key, value, hints[key])
            except ConfigError as err:
                problems.append(str(err))
        merged = dataclasses.replace(base or cls(), **clean)
        try:
            merged.validate()
        except ConfigError as err:
            problems.append(str(err))
        if problems:
            raise ConfigError("; ".join(problems))
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
                raise ConfigError(f"--set expects key=value, got {text!r}")
            try:
                value = yaml.safe_load(raw) if raw else ""
            except yaml.YAMLError as err:
                problem = " ".join(str(err).split())
                raise ConfigError(f"--set {text!r}: the value {raw!r} is not valid YAML ({problem})") from None
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
        from benchmark.augment import resolve_aug_params
        from benchmark.backbones import check_backbone
        from benchmark.data import DATASETS
        from benchmark.methods import METHODS, resolve_method_params
        from benchmark.neighbors import INDEXES, METRICS, SAMPLING_RULES
        from benchmark.optim import OPTIMIZERS, resolve_optim
        from benchmark.priors import check_prior

        problems: list[str] = []

        def check(fn) -> None:
            try:
                fn()
            except ConfigError as err:
                problems.append(str(err))

        check(lambda: DATASETS.get(self.dataset))
        check(lambda: METHODS.get(self.method))
        check(lambda: resolve_method_params(self.method, self.method_args) if self.method in METHODS else None)
        if self.method in METHODS:
            check(lambda: resolve_aug_params(self.aug, self.aug_args, image_size=32, method=self.method))
        check(lambda: check_backbone(self.backbone))
        if self.optimizer is not None:
            check(lambda: OPTIMIZERS.get(self.optimizer))
        if self.method in METHODS and (self.optimizer is None or self.optimizer in OPTIMIZERS):
            check(lambda: resolve_optim(self))  # optimizer_args against the optimiser that will run
        if self.precision not in PRECISIONS:
            problems.append(str(choice_error("precision", self.precision, PRECISIONS)))
        if self.wandb_mode is not None and self.wandb_mode not in WANDB_MODES:
            problems.append(str(choice_error("wandb_mode", self.wandb_mode, WANDB_MODES)))
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            problems.append(f"unknown device {self.device!r}; valid: auto, cpu, cuda, cuda:N")
        check(lambda: check_prior(self.prior, self.prior_args))
        check(lambda: SAMPLING_RULES.get(self.sampling))
        check(lambda: METRICS.get(self.metric))
        check(lambda: INDEXES.get(self.knn_index))
        if self.k < 0 or self.tau_neighbors < 1:
            problems.append(f"k must be >= 0 and tau_neighbors >= 1, got k={self.k}, tau_neighbors={self.tau_neighbors}")
        if self.prior == "none" and self.k > 0:
            problems.append(f"k={self.k} needs a prior to find neighbours in; prior is 'none' (set --prior, or k 0)")
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
        for name in ("lr", "weight_decay", "warmup_start_lr"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name} must be >= 0, got {value}")
        if self.knn_temperature <= 0:
            problems.append(f"knn_temperature must be > 0, got {self.knn_temperature}")
        for f in fields(self):  # an infinite radius is a ball holding every neighbour; elsewhere inf is a typo
            value = getattr(self, f.name)
            if f.name != "tau" and isinstance(value, float) and math.isinf(value):
                problems.append(f"{f.name} must be finite, got {value}")
        if problems:
            raise ConfigError("; ".join(problems))

    # ------------------------------------------------------------------ identity
    def result_fields(self) -> dict[str, Any]:
        """The fields that change the result: everything above the `device` marker."""
        names = [f.name for f in fields(self)]
        return {n: getattr(self, n) for n in names[: names.index("device")]}

    def resolved(self) -> dict[str, Any]:
        """Result fields with every default made explicit (method parameters, optimiser recipe)."""
        from benchmark.methods import resolve_method_params
        from benchmark.optim import resolve_optim

        values = self.result_fields()
        values["method_args"] = dataclasses.asdict(resolve_method_params(self.method, self.method_args))
        if not self.is_gps:  # plain SSL: the neighbour settings change nothing, so they do not enter run_id
            for key in GPS_FIELDS:
                values.pop(key)
            values["prior"], values["k"] = "none", 0
        values.update(resolve_optim(self))
        return values

    @property
    def is_gps(self) -> bool:
        """GPS positives: a prior and k >= 1 (the oracle needs no k); otherwise plain SSL."""
        return self.prior != "none" and (self.k > 0 or self.prior == "oracle")

    @property
    def run_id(self) -> str:
        """Stable 12-hex hash of what changes the result (not paths, devices or logging): the resolved
        config and, for data given by path, the data's content."""
        identity = self.resolved()
        if self.data_path is not None:
            from benchmark.data.identity import content_fingerprint

            identity["data_content"] = content_fingerprint(self.data_path)
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
