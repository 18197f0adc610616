"""Priors that embed with a network: a random one, a pretrained timm or CLIP model, or the backbone
of an earlier run of this suite (so a sweep can chain "train a prior, then use it")."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.backbones import (
    CIFAR_STEM_MAX_SIZE, build_backbone, check_backbone, load_weights, resolve_backbone_name,
)
from benchmark.errors import ConfigError, DamagedFile
from benchmark.evaluate import extract_features
from benchmark.priors.base import PRIORS, Prior, file_digest
from benchmark.rundir import read_object


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
        return {"backbone": resolve_backbone_name(self.params.backbone, data.image_size), "mean": data.mean,
                "std": data.std}

    def embed(self, data, device: torch.device) -> torch.Tensor:
        torch.manual_seed(self.params.seed)
        model, _ = build_backbone(self.params.backbone, data.image_size)
        return extract_features(model.to(device), data.train.images, data.mean, data.std, device).cpu()


@dataclass(frozen=True)
class PretrainedParams:
    weights: str | None = None  # local weights file; None = download (timm: HF hub; clip: `pretrained` tag)
    pretrained: str | None = None  # clip only: open_clip's pretrained tag, e.g. "openai", "laion2b_s34b_b79k"
    batch_size: int = 256


def _weights_identity(params: PretrainedParams, fallback: str) -> str:
    if params.weights:
        path = Path(params.weights)
        if not path.is_file():
            raise ConfigError(f"prior_args.weights {params.weights!r} does not exist")
        return file_digest(path)
    return fallback


@PRIORS.register("timm")
class TimmPrior(Prior):
    """`timm:<model>`: pooled features of a pretrained timm model, on images resized to the model's
    resolution and normalised with its statistics."""

    Params = PretrainedParams
    needs_arg = True

    @classmethod
    def check_arg(cls, arg: str | None) -> None:
        import timm

        if not timm.is_model(arg):
            raise ConfigError(f"unknown timm model {arg!r} in prior 'timm:{arg}'; see timm.list_models()")

    def _model(self):
        import timm

        try:
            model = timm.create_model(self.arg, pretrained=self.params.weights is None, num_classes=0)
        except Exception as err:
            raise ConfigError(
                f"prior timm:{self.arg}: pretrained weights could not be fetched ({type(err).__name__}); "
                "pass prior_args.weights=<local file>"
            ) from None
        if self.params.weights:
            load_weights(model, Path(self.params.weights))
        cfg = timm.data.resolve_data_config({}, model=model)
        return model, cfg

    def identity(self, data) -> dict:
        return {"weights": _weights_identity(self.params, f"timm-pretrained:{self.arg}")}

    def embed(self, data, device: torch.device) -> torch.Tensor:
        model, cfg = self._model()
        return extract_features(model.to(device), data.train.images, cfg["mean"], cfg["std"], device,
                                batch_size=self.params.batch_size, size=cfg["input_size"][-1]).cpu()


@PRIORS.register("clip")
class ClipPrior(Prior):
    """`clip:<model>`: open_clip's image encoder (pretrained tag or a local weights file)."""

    Params = PretrainedParams
    needs_arg = True

    @classmethod
    def check_arg(cls, arg: str | None) -> None:
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
        return extract_features(model.to(device), data.train.images, mean, std, device,
                                batch_size=self.params.batch_size, size=size, forward=model.encode_image).cpu()


@dataclass(frozen=True)
class RunParams:
    pass


RUN_ID = re.compile(r"^[0-9a-f]{12}$")


@PRIORS.register("run")
class RunPrior(Prior):
    """`run:<run dir or run_id>`: the backbone of an earlier run's checkpoint.pt; a run_id (12 hex
    digits, never a pattern) is looked up under the results dir."""

    Params = RunParams
    needs_arg = True

    @classmethod
    def check_arg(cls, arg: str | None) -> None:
        if glob.has_magic(arg) and not Path(arg).is_dir():
            raise ConfigError(f"prior run:{arg}: give a run directory or a run_id (12 hex digits), not a pattern")

    def run_dir(self) -> Path:
        path = Path(self.arg)
        if (path / "checkpoint.pt").is_file():
            return path
        if not RUN_ID.match(self.arg):
            raise ConfigError(f"prior run:{self.arg}: no checkpoint.pt in that directory, and it is not a run_id "
                              f"(12 hex digits) to look up under {str(self.context.results_dir)!r}")
        root = self.context.results_dir
        # a sweep's runs sit at <results>/<sweep>/<run_id>: look there before walking the whole tree
        found = sorted(root.glob(f"*/{self.arg}/checkpoint.pt")) or sorted(root.glob(f"**/{self.arg}/checkpoint.pt"))
        if not found:
            raise ConfigError(
                f"prior run:{self.arg}: no checkpoint.pt at {str(path)!r} nor under "
                f"{str(self.context.results_dir)!r}/**/{self.arg}/ (train that run first)"
            )
        return found[0].parent

    def identity(self, data) -> dict:
        return {"checkpoint": file_digest(self.run_dir() / "checkpoint.pt"), "mean": data.mean, "std": data.std}

    def embed(self, data, device: torch.device) -> torch.Tensor:
        run = self.run_dir()
        if not (run / "config.json").is_file():
            raise ConfigError(f"prior run:{self.arg}: {run / 'config.json'} is missing: it says which backbone to build")
        config = read_object(run / "config.json")
        if not isinstance(config.get("backbone"), str):
            raise DamagedFile(run / "config.json", "names no backbone")
        stem = data.image_size <= CIFAR_STEM_MAX_SIZE and not (config.get("pretrained") or config.get("weights"))
        model, _ = build_backbone(config["backbone"], data.image_size, cifar_stem=stem)
        load_weights(model, run / "checkpoint.pt")
        return extract_features(model.to(device), data.train.images, data.mean, data.std, device).cpu()
