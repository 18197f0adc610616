"""Priors that embed with a network: a random one, a pretrained timm or CLIP model, or the backbone
of an earlier run of this suite (so a sweep can chain "train a prior, then use it")."""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.backbone_file import is_export, load_backbone, read_metadata
from benchmark.backbones import (
    CIFAR_STEM_MAX_SIZE,
    build_backbone,
    check_backbone,
    load_state,
    load_weights,
    resolve_backbone_name,
)
from benchmark.errors import ConfigError, DamagedFile, choice_error
from benchmark.evaluate import extract_features
from benchmark.priors.base import PRIORS, Prior, file_digest
from benchmark.rundir import is_run_id, read_object
from benchmark.safeload import load_torch


@dataclass(frozen=True)
class RandomParams:
    backbone: str = "auto"  # as the run's `backbone` key
    seed: int = 0

    def validate(self) -> None:
        check_backbone(self.backbone)


@PRIORS.register("random")
class RandomPrior(Prior):
    """A randomly initialised backbone (fixed seed), on the dataset's own normalisation."""

    Params = RandomParams

    def identity(self, data) -> dict:
        return {
            "backbone": resolve_backbone_name(self.params.backbone, data.image_size),
            "mean": data.mean,
            "std": data.std,
        }

    def embed(self, data, device: torch.device) -> torch.Tensor:
        torch.manual_seed(self.params.seed)
        model, _ = build_backbone(self.params.backbone, data.image_size)
        return extract_features(
            model.to(device), data.pretrain.images, data.mean, data.std, device, label="prior random"
        ).cpu()


PRIOR_INPUTS = ("model", "native")
TORCHVISION_WEIGHTS = "torchvision:"  # prior_args.weights: torchvision:<weights tag>, e.g. torchvision:IMAGENET1K_V2


@dataclass(frozen=True)
class TimmParams:
    # a local weights file; `torchvision:<tag>`: torchvision's weights of the same model (timm's ResNets
    # share torchvision's parameter names), downloaded by torchvision; None: timm's default weights
    weights: str | None = None
    batch_size: int = 256
    # model: the model's resolution and normalisation. native: the dataset's own resolution and mean/std,
    # as the official GPS code feeds its ImageNet ResNet-50 (32 px CIFAR images, CIFAR's statistics)
    input: str = "model"

    def validate(self) -> None:
        if self.input not in PRIOR_INPUTS:
            raise choice_error("prior_args.input", self.input, PRIOR_INPUTS)


@dataclass(frozen=True)
class ClipParams:
    weights: str | None = None  # local weights file; None: the `pretrained` tag (downloads)
    pretrained: str | None = None  # open_clip's pretrained tag, e.g. "openai", "laion2b_s34b_b79k"
    batch_size: int = 256


def _weights_identity(params: TimmParams | ClipParams, fallback: str) -> str:
    if params.weights and params.weights.startswith(TORCHVISION_WEIGHTS):
        return params.weights
    if params.weights:
        path = Path(params.weights)
        if not path.is_file():
            raise ConfigError(f"prior_args.weights {params.weights!r} does not exist")
        return file_digest(path)
    return fallback


def _torchvision_state(model_name: str, spec: str) -> dict:
    """torchvision's weights `spec` (torchvision:<tag>) of a model: its state dict, downloaded once
    into torch's hub cache. timm's ResNets use torchvision's parameter names, so the dict loads as is."""
    import torchvision

    tag = spec[len(TORCHVISION_WEIGHTS) :]
    try:
        weights = torchvision.models.get_model_weights(model_name)[tag]
    except (ValueError, KeyError):
        raise ConfigError(
            f"prior_args.weights {spec!r}: torchvision has no weights {tag!r} for {model_name!r}"
        ) from None
    try:
        return weights.get_state_dict(progress=False)
    except Exception as err:  # no network: the message says what to do instead
        raise ConfigError(
            f"prior_args.weights {spec!r} could not be downloaded ({type(err).__name__}); "
            f"pass prior_args.weights=<local file> (torchvision's {model_name} state dict)"
        ) from None


@PRIORS.register("timm")
class TimmPrior(Prior):
    """`timm:<model>`: pooled features of a pretrained timm model, on images at the model's resolution
    and normalisation (`input: model`) or at the dataset's own (`input: native`, the paper's way).
    `weights` may be a backbone exported by `gpsbench export` (benchmark/backbone_file.py reads it)."""

    Params = TimmParams
    needs_arg = True

    @classmethod
    def check_arg(cls, arg: str) -> None:
        import timm

        if not timm.is_model(arg):
            raise ConfigError(f"unknown timm model {arg!r} in prior 'timm:{arg}'; see timm.list_models()")

    def _model(self):
        import timm

        weights = self.params.weights
        if weights and weights.endswith(".safetensors") and is_export(weights):
            return self._exported(weights)
        try:
            model = timm.create_model(self.arg, pretrained=weights is None, num_classes=0)
        except Exception as err:
            raise ConfigError(
                f"prior timm:{self.arg}: pretrained weights could not be fetched ({type(err).__name__}); "
                "pass prior_args.weights=<local file>"
            ) from None
        if weights and weights.startswith(TORCHVISION_WEIGHTS):
            load_state(model, _torchvision_state(self.arg, weights), weights)
        elif weights:
            load_weights(model, Path(weights))
        cfg = timm.data.resolve_data_config({}, model=model)
        return model, cfg

    def _exported(self, path: str):
        """A backbone exported by `gpsbench export`, rebuilt as it trained (its stem included, which a
        bare timm model lacks); `input: model` feeds it at its training resolution and normalisation."""
        metadata = read_metadata(path)
        model_name = metadata["timm_model"]
        if model_name != self.arg:
            fix = f"use prior timm:{model_name}" if model_name else "no timm model: use prior run:<its run directory>"
            raise ConfigError(
                f"prior timm:{self.arg}: prior_args.weights {path!r} is an exported {metadata['backbone']}; {fix}"
            )
        size = int(metadata["image_size"])
        cfg = {"mean": json.loads(metadata["mean"]), "std": json.loads(metadata["std"]), "input_size": (3, size, size)}
        return load_backbone(path), cfg

    def _input(self, data, cfg) -> tuple[tuple, tuple, int | None]:
        """Normalisation and resolution the images are fed at (see PretrainedParams.input)."""
        if self.params.input == "native":
            return data.mean, data.std, None
        return cfg["mean"], cfg["std"], cfg["input_size"][-1]

    def identity(self, data) -> dict:
        identity = {"weights": _weights_identity(self.params, f"timm-pretrained:{self.arg}")}
        if self.params.input == "native":
            identity.update(mean=data.mean, std=data.std)
        return identity

    def embed(self, data, device: torch.device) -> torch.Tensor:
        model, cfg = self._model()
        mean, std, size = self._input(data, cfg)
        return extract_features(
            model.to(device),
            data.pretrain.images,
            mean,
            std,
            device,
            batch_size=self.params.batch_size,
            size=size,
            label=f"prior timm:{self.arg}",
        ).cpu()


@PRIORS.register("clip")
class ClipPrior(Prior):
    """`clip:<model>`: open_clip's image encoder (pretrained tag or a local weights file)."""

    Params = ClipParams
    needs_arg = True

    @classmethod
    def check_arg(cls, arg: str) -> None:
        try:
            import open_clip
        except ImportError:
            raise ConfigError("prior 'clip:...' needs open_clip: pip install open_clip_torch") from None
        if arg not in open_clip.list_models():
            raise ConfigError(f"unknown open_clip model {arg!r}; see open_clip.list_models()")

    def identity(self, data) -> dict:
        return {"weights": _weights_identity(self.params, f"clip:{self.arg}:{self.params.pretrained}")}

    def embed(self, data, device: torch.device) -> torch.Tensor:
        import open_clip

        source = self.params.weights or self.params.pretrained
        try:
            model = open_clip.create_model(self.arg, pretrained=source, device="cpu")
        except Exception as err:
            raise ConfigError(
                f"prior clip:{self.arg}: weights {source!r} could not be loaded ({type(err).__name__}: {err}); "
                "pass prior_args.weights=<local file>"
            ) from None
        visual = model.visual
        size = visual.image_size[0] if isinstance(visual.image_size, (tuple, list)) else visual.image_size
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        return extract_features(
            model.to(device),
            data.pretrain.images,
            mean,
            std,
            device,
            batch_size=self.params.batch_size,
            size=size,
            forward=model.encode_image,
            label=f"prior clip:{self.arg}",
        ).cpu()


@dataclass(frozen=True)
class RunParams:
    pass


@PRIORS.register("run")
class RunPrior(Prior):
    """`run:<run dir or run_id>`: the backbone of an earlier run's checkpoint.pt; a run_id (12 hex
    digits, never a pattern) is looked up under the results dir (a sweep's cell: in its own sweep
    folder only, which the sweep gives as the results dir), and its checkpoint must be that run's."""

    Params = RunParams
    needs_arg = True

    @classmethod
    def table_name(cls, spec: str, arg: str | None) -> str:
        """`prior: simclr strong run` for a sweep's `run:method=simclr,aug=strong`; a run dir or run_id as is."""
        assert arg is not None  # needs_arg: a run: spec that reaches a table has its argument (check_prior)
        source = " ".join(part.split("=", 1)[-1] for part in arg.split(",")) if "=" in arg else arg
        return f"prior: {source} run"

    @classmethod
    def check_arg(cls, arg: str) -> None:
        if glob.has_magic(arg) and not Path(arg).is_dir():
            raise ConfigError(f"prior run:{arg}: give a run directory or a run_id (12 hex digits), not a pattern")

    def run_dir(self) -> Path:
        assert self.arg is not None  # needs_arg: build_prior checked the spec has its argument
        path = Path(self.arg)
        if (path / "checkpoint.pt").is_file():
            return path
        if not is_run_id(self.arg):
            raise ConfigError(
                f"prior run:{self.arg}: no checkpoint.pt in that directory, and it is not a run_id "
                f"(12 hex digits) to look up under {str(self.context.results_dir)!r}"
            )
        root = self.context.results_dir
        # a sweep's own folder holds its cells at <sweep>/<run_id>; a results tree at <results>/<sweep>/<run_id>:
        # look there before walking the whole tree
        direct = root / self.arg / "checkpoint.pt"
        found = (
            [direct]
            if direct.is_file()
            else sorted(root.glob(f"*/{self.arg}/checkpoint.pt")) or sorted(root.glob(f"**/{self.arg}/checkpoint.pt"))
        )
        if not found:
            raise ConfigError(
                f"prior run:{self.arg}: no checkpoint.pt at {str(path)!r} nor under "
                f"{str(self.context.results_dir)!r}/**/{self.arg}/ (train that run first)"
            )
        return found[0].parent

    def _check_source(self, checkpoint: Path) -> None:
        """A source named by its run_id must be that run: a checkpoint of another run put in its place
        (or found under its name in another folder) is refused, never embedded under this run's name."""
        if not is_run_id(str(self.arg)):
            return
        held = load_torch(checkpoint, "checkpoint")
        named = held.get("run_id") if isinstance(held, dict) else None
        if named != self.arg:
            raise DamagedFile(checkpoint, f"holds run {named}'s weights, not those of the source run {self.arg}")

    def identity(self, data) -> dict:
        return {"checkpoint": file_digest(self.run_dir() / "checkpoint.pt"), "mean": data.mean, "std": data.std}

    def embed(self, data, device: torch.device) -> torch.Tensor:
        run = self.run_dir()
        if not (run / "config.json").is_file():
            raise ConfigError(
                f"prior run:{self.arg}: {run / 'config.json'} is missing: it says which backbone to build"
            )
        config = read_object(run / "config.json")
        if not isinstance(config.get("backbone"), str):
            raise DamagedFile(run / "config.json", "names no backbone")
        pretrained_init = bool(config.get("pretrained") or config.get("weights"))
        # the architecture the run trained: its result names it; else as its config resolves here
        name = resolve_backbone_name(config["backbone"], data.image_size, pretrained_init)
        if (run / "result.json").is_file():
            name = read_object(run / "result.json").get("backbone", name)
        stem = data.image_size <= CIFAR_STEM_MAX_SIZE and not pretrained_init
        model, _ = build_backbone(name, data.image_size, cifar_stem=stem)
        self._check_source(run / "checkpoint.pt")
        load_weights(model, run / "checkpoint.pt")
        return extract_features(
            model.to(device), data.pretrain.images, data.mean, data.std, device, label=f"prior run:{run.name}"
        ).cpu()
