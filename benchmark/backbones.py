"""Backbones: any timm model by name (CIFAR stem for small images), plus a small CNN for CPU runs."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from benchmark.errors import ConfigError
from benchmark.registry import Registry

CIFAR_STEM_MAX_SIZE = 64  # below this a 7x7/2 stem + maxpool throws away most of the image
SMALL_IMAGE_BACKBONE = 24  # "auto": the small CNN below this side (digits), resnet18 above

Builder = Callable[[], nn.Module]
BACKBONES: Registry[Builder] = Registry("backbone")


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU stages (32-64-128-256), global average pool: trains in seconds on 2 CPU cores."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        layers, channels = [], 3
        for i, width in enumerate(widths):
            layers += [
                nn.Conv2d(channels, width, 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


BACKBONES.register("small")(SmallCNN)


def resolve_backbone_name(name: str, image_size: int) -> str:
    if name == "auto":
        return "small" if image_size < SMALL_IMAGE_BACKBONE else "resnet18"
    return name


def check_backbone(name: str) -> None:
    import timm

    if name == "auto" or name in BACKBONES or timm.is_model(name):
        return
    close = difflib.get_close_matches(name, BACKBONES.names() + timm.list_models(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(
        f"unknown backbone {name!r}{hint}; valid: auto, {', '.join(BACKBONES.names())}, "
        "or any timm model name (python -c 'import timm; print(timm.list_models())')"
    )


def build_backbone(
    name: str, image_size: int, pretrained: bool = False, weights: str | Path | None = None,
    cifar_stem: bool | None = None,
) -> tuple[nn.Module, int]:
    """A feature extractor (images -> (N, D) features) and D.

    ImageNet-style stems get the CIFAR stem (3x3 stride-1 conv1, no maxpool) on images <= 64 px,
    unless pretrained weights are loaded: those were learnt with the original stem. `cifar_stem`
    overrides that choice (to rebuild an earlier run's backbone from its checkpoint).
    """
    if cifar_stem is None:
        cifar_stem = image_size <= CIFAR_STEM_MAX_SIZE and not (pretrained or weights)
    name = resolve_backbone_name(name, image_size)
    check_backbone(name)
    if name in BACKBONES:
        model = BACKBONES.get(name)()
    else:
        import timm

        try:
            model = timm.create_model(name, pretrained=pretrained and weights is None, num_classes=0)
        except Exception as err:
            if not pretrained:
                raise
            raise ConfigError(
                f"pretrained weights for {name!r} could not be fetched ({type(err).__name__}); "
                "pass weights: <local file> (a timm/torch state dict or a .safetensors file)"
            ) from None
        if cifar_stem:
            _cifar_stem(model)
    if weights is not None:
        load_weights(model, Path(weights))
    return model, int(model.num_features)


def _cifar_stem(model: nn.Module) -> None:
    conv1 = getattr(model, "conv1", None)
    if isinstance(conv1, nn.Conv2d) and hasattr(model, "maxpool"):
        model.conv1 = nn.Conv2d(conv1.in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a local weights file: a state dict, a {'state_dict'|'model'|'backbone': ...} checkpoint
    (including this suite's checkpoint.pt), or .safetensors. Classifier keys are ignored."""
    from benchmark.safeload import load_safetensors, load_torch

    if not path.is_file():
        raise ConfigError(f"weights file {str(path)!r} does not exist")
    state = load_safetensors(path) if path.suffix == ".safetensors" else load_torch(path, "weights file")
    if not isinstance(state, dict):
        raise ConfigError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    if isinstance(state.get("method"), dict):  # this suite's checkpoint.pt
        state = {k[len("backbone."):]: v for k, v in state["method"].items() if k.startswith("backbone.")}
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    own = model.state_dict()
    usable = {k: v for k, v in state.items()
              if k in own and isinstance(v, torch.Tensor) and own[k].shape == v.shape}
    if not usable:
        raise ConfigError(f"weights file {str(path)!r} has no tensor that fits {type(model).__name__}")
    model.load_state_dict(usable, strict=False)
    missing = sorted(set(own) - set(usable))
    if any(not k.endswith("num_batches_tracked") for k in missing):
        raise ConfigError(f"weights file {str(path)!r} lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")
