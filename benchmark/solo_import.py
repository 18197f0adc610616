"""solo-learn pretraining YAML files (scripts/pretrain/<dataset>/<method>.yaml) as this suite's configs,
so people can bring the recipes they already run.

What maps: `method` (by each method's `solo_name`), `method_kwargs` and `momentum.*` (by each method's
`solo_names`, the rest by equal name), `backbone.name`, `optimizer.{name, batch_size, lr,
weight_decay, kwargs}`, `scheduler.{warmup_epochs, warmup_start_lr}`, `max_epochs`, `data.dataset`
and `seed`. solo-learn's batch_size is per device and it scales lr by the global batch / 256
(solo/args/pretrain.py, parse_cfg), so here batch_size is batch_size x devices x nodes and lr is the
effective value, lr x that batch / 256 (the online classifier's `optimizer.classifier_lr` likewise,
for runs with `online_linear`). Everything else (paths, hardware, logging, checkpoints, Hydra
`defaults` such as the augmentation file) is reported as ignored: the
augmentation stays this suite's `aug` (default `strong`: the method's own solo-learn CIFAR recipe).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from benchmark.config import RunConfig
from benchmark.errors import ConfigError, choice_error
from benchmark.methods import METHODS
from benchmark.optim import OPTIMIZERS
from benchmark.yamlfiles import load_yaml

# solo-learn's scheduler names this suite's schedule reproduces (solo/methods/base.py, configure_optimizers)
SCHEDULERS = ("warmup_cosine",)
# solo-learn values that are this suite's own behaviour: taken, not reported as ignored
SAME_AS_HERE = {"scheduler.name": "warmup_cosine", "scheduler.min_lr": 0.0, "scheduler.interval": "step"}
# solo-learn optimizer.kwargs that hold several of this suite's optimizer_args (adamw betas)
SPLIT_KWARGS = {"betas": ("beta1", "beta2")}


@dataclass
class SoloImport:
    """A solo-learn file translated: the RunConfig values, what was ignored, and how lr was scaled."""

    values: dict[str, Any]
    ignored: list[str]
    lr_note: str | None = None
    taken: set[str] = field(default_factory=set)

    def summary(self, source: str) -> str:
        mapped = ", ".join(f"{key}={value}" for key, value in self.values.items())
        lines = [f"solo-learn config {source}: {mapped}"]
        if self.lr_note:
            lines.append(f"solo-learn config {source}: {self.lr_note}")
        lines.append(f"solo-learn config {source}: ignored {', '.join(self.ignored) or 'nothing'}")
        return "\n".join(lines)


def is_solo_config(values: Any) -> bool:
    """A solo-learn file has method_kwargs, or optimizer/backbone blocks (strings in this suite's files)."""
    return isinstance(values, Mapping) and (
        "method_kwargs" in values or any(isinstance(values.get(key), Mapping) for key in ("optimizer", "backbone"))
    )


def _leaves(values: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, name + "."))
        else:
            out[name] = value
    return out


def _method(name: Any) -> str:
    by_solo = {METHODS.get(here).solo_name or here: here for here in METHODS}
    if name not in by_solo:
        raise choice_error("solo-learn method", name, sorted(by_solo))
    return by_solo[name]


def translate(raw: Mapping[str, Any]) -> SoloImport:
    """The RunConfig values of a solo-learn pretraining file and the fields left out."""
    leaves = _leaves({key: value for key, value in raw.items() if key != "defaults"})
    if "method" not in leaves:
        raise ConfigError("solo-learn config has no `method`: which SSL method to train")
    out = SoloImport(values={}, ignored=[])
    method = _method(leaves["method"])
    cls = METHODS.get(method)
    fields = {f.name for f in dataclasses.fields(cls.Params)}

    def take(key: str, target: str, value: Any = None) -> None:
        out.values[target] = leaves[key] if value is None else value
        out.taken.add(key)

    take("method", "method", method)
    method_args: dict[str, Any] = {}
    for key, value in leaves.items():
        group, _, name = key.partition(".")
        if group == "method_kwargs":
            target = cls.solo_names.get(name, name)
        elif group == "momentum":  # momentum.base_tau: named by the methods that have a momentum target
            target = cls.solo_names.get(key, "")
        else:
            continue
        if target in fields:
            method_args[target] = value
            out.taken.add(key)
    if method_args:
        out.values["method_args"] = method_args
    for key, target in (
        ("backbone.name", "backbone"),
        ("data.dataset", "dataset"),
        ("max_epochs", "epochs"),
        ("seed", "seed"),
        ("optimizer.weight_decay", "weight_decay"),
        ("scheduler.warmup_epochs", "warmup_epochs"),
        ("scheduler.warmup_start_lr", "warmup_start_lr"),
    ):
        if key in leaves:
            take(key, target)
    _optimizer(leaves, out, OPTIMIZERS)
    for key, same in SAME_AS_HERE.items():
        if key not in leaves:
            continue
        if key == "scheduler.name" and leaves[key] not in SCHEDULERS:
            raise choice_error("solo-learn scheduler.name", leaves[key], SCHEDULERS)
        if leaves[key] == same:
            out.taken.add(key)
    out.ignored = _ignored(raw, leaves, out.taken)
    return out


def _optimizer(leaves: dict[str, Any], out: SoloImport, optimizers) -> None:
    """optimizer.name and kwargs; the global batch (per-device batch x devices x nodes) and solo-learn's
    lr scaled by it / 256, as solo/args/pretrain.py does before training."""
    name = leaves.get("optimizer.name")
    if name is not None:
        if name not in optimizers:
            raise choice_error("solo-learn optimizer.name", name, optimizers.names())
        out.values["optimizer"] = name
        out.taken.add("optimizer.name")
        known = {f.name for f in dataclasses.fields(optimizers.get(name).Params)}
        args: dict[str, Any] = {}
        for key, value in leaves.items():
            if not key.startswith("optimizer.kwargs."):
                continue
            kwarg = key.removeprefix("optimizer.kwargs.")
            targets = SPLIT_KWARGS.get(kwarg, (kwarg,))
            values = list(value) if len(targets) > 1 else [value]
            if all(target in known for target in targets) and len(values) == len(targets):
                args.update(zip(targets, values))
                out.taken.add(key)
        if "optimizer.exclude_bias_n_norm_wd" in leaves and "exclude_bias_n_norm_wd" in known:  # SGD, AdamW
            args["exclude_bias_n_norm_wd"] = leaves["optimizer.exclude_bias_n_norm_wd"]
            out.taken.add("optimizer.exclude_bias_n_norm_wd")
        if args:
            out.values["optimizer_args"] = args
    if "optimizer.batch_size" not in leaves:
        return
    devices = leaves.get("devices", [0])
    n_devices = len(devices) if isinstance(devices, list) else int(devices)
    nodes = int(leaves.get("num_nodes", 1))
    batch = int(leaves["optimizer.batch_size"]) * n_devices * nodes
    out.values["batch_size"] = batch
    out.taken.update({"optimizer.batch_size", "devices", "num_nodes"})
    if "optimizer.lr" in leaves:
        lr = float(leaves["optimizer.lr"])
        out.values["lr"] = lr * batch / 256
        out.taken.add("optimizer.lr")
        per_device = f"{leaves['optimizer.batch_size']} x {n_devices} devices x {nodes} nodes = {batch}"
        out.lr_note = (
            f"batch_size {per_device}; lr {lr} x {batch} / 256 = {out.values['lr']:g} "
            "(solo-learn scales lr by the global batch / 256, solo/args/pretrain.py)"
        )
    if "optimizer.classifier_lr" in leaves:  # scaled as lr is; it counts for runs with online_linear
        out.values["classifier_lr"] = float(leaves["optimizer.classifier_lr"]) * batch / 256
        out.taken.add("optimizer.classifier_lr")


def _ignored(raw: Mapping[str, Any], leaves: dict[str, Any], taken: set[str]) -> list[str]:
    """Fields left out: a whole top-level block where none of it was taken, else its leaves; and each
    Hydra `defaults` entry (augmentation and logging files, Hydra overrides)."""
    ignored: list[str] = []
    for top in raw:
        if top == "defaults":
            continue
        under = [key for key in leaves if key == top or key.startswith(f"{top}.")]
        left = [key for key in under if key not in taken]
        if left and len(left) == len(under) and (len(under) > 1 or under[0] != top):
            ignored.append(f"{top}.*")
        else:
            ignored.extend(left)
    for entry in raw.get("defaults") or []:
        if isinstance(entry, Mapping):
            ignored.extend(f"defaults: {key}: {value}" for key, value in entry.items())
        elif entry != "_self_":
            ignored.append(f"defaults: {entry}")
    return ignored


def load_config_file(path: str | Path, base: RunConfig | None = None) -> RunConfig:
    """A --config file as a RunConfig: this suite's keys, or a solo-learn pretraining file (detected by
    its blocks), translated with what was mapped and ignored said on stderr."""
    path = Path(path)
    if path.is_file():
        raw = load_yaml(path, "config file")
        if is_solo_config(raw):
            imported = translate(raw)
            config = RunConfig.from_dict(imported.values, base)
            print(imported.summary(path.name), file=sys.stderr, flush=True)
            return config
    return RunConfig.from_yaml(path, base)
